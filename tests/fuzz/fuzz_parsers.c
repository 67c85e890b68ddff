/*
 * fuzz_parsers: the small parsers that read hostile text, one harness with
 * the first byte choosing the parser and the rest its input:
 *   0  http_percent_decode (fcgi-app/http.c), path and query forms
 *   1  ids_uuid_valid (lib/ids.c)
 *   2  sign_key_new + sign_webhook (lib/sign.c), the whsec_ secret
 *   3  clientaddr_pick (lib/clientaddr.c), remote address and
 *      X-Forwarded-For split at the first newline
 *   4  retry_after_parse (deliverer/retry.c)
 *   5  request_utf8_valid (lib/request.c) against a reference decoder
 *   6  cidr_parse and cidr_list_new (lib/cidr.c), a CIDR list
 *
 * Beyond memory safety (ASan, UBSan), each has an invariant: decoded text
 * has no NUL and fits; a valid UUID has the 8-4-4-4-12 hex shape; a key
 * signs into "v1,<base64>", once per secret of a rotation list; the client
 * address is terminated and fits CLIENTADDR_MAX; a parsed Retry-After
 * is never negative; the UTF-8 validator agrees with the straightforward
 * one below; cidr_list_valid agrees with cidr_list_new, and a prefix's
 * canonical text fits CIDR_TEXT_MAX and parses back to the same prefix.
 */
#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "http.h"
#include "ids.h"
#include "cidr.h"
#include "clientaddr.h"
#include "request.h"
#include "retry.h"
#include "sign.h"

static char *text(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	FUZZ_CHECK(s != NULL);
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

static void percent(const uint8_t *data, size_t size)
{
	char out[256];
	for (int plus = 0; plus < 2; plus++) {
		long n = http_percent_decode((const char *)data, size, out, sizeof out, plus);
		if (n < 0)
			continue;
		FUZZ_CHECK((size_t)n < sizeof out && (size_t)n <= size);
		FUZZ_CHECK(strlen(out) == (size_t)n);
	}
}

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static void uuid(const uint8_t *data, size_t size)
{
	char *s = text(data, size);
	if (ids_uuid_valid(s)) {
		FUZZ_CHECK(strlen(s) == 36);
		for (int i = 0; i < 36; i++)
			FUZZ_CHECK((i == 8 || i == 13 || i == 18 || i == 23) ? s[i] == '-'
			                                                     : is_hex(s[i]));
	}
	free(s);
}

static void signing_key(const uint8_t *data, size_t size)
{
	char *s = text(data, size);
	enum sign_err err = SIGN_OK;
	struct sign_key *k = sign_key_new(s, &err, NULL, 0);
	if (k) {
		char sig[SIGN_HEADER_MAX];
		FUZZ_CHECK(sign_webhook(k, "id", 1, s, size, sig, sizeof sig) == SIGN_OK);
		/* one "v1,<44 base64>" per secret of a rotation list, space-separated */
		size_t n = sign_key_count(k);
		FUZZ_CHECK(n >= 1 && n <= SIGN_KEYS_MAX);
		FUZZ_CHECK(strlen(sig) == n * (SIGN_ONE_LEN + 1) - 1);
		for (size_t i = 0; i < n; i++)
			FUZZ_CHECK(
			    strncmp(sig + i * (SIGN_ONE_LEN + 1), "v1,", 3) == 0 &&
			    (i + 1 == n || sig[i * (SIGN_ONE_LEN + 1) + SIGN_ONE_LEN] == ' '));
		sign_key_free(k);
	} else {
		FUZZ_CHECK(err != SIGN_OK);
	}
	free(s);
}

static void client_addr(const uint8_t *data, size_t size)
{
	static struct cidr_list *trust;
	if (!trust) {
		char why[128];
		trust = cidr_list_new("127.0.0.1, 10.0.0.0/8 ::1/128,fd00::/8", "trust", why,
		                      sizeof why);
		FUZZ_CHECK(trust != NULL);
	}
	char *s = text(data, size);
	char *xff = strchr(s, '\n');
	if (xff)
		*xff++ = '\0';
	char out[CLIENTADDR_MAX];
	memset(out, 'x', sizeof out);
	clientaddr_pick(trust, s, xff, out, sizeof out);
	FUZZ_CHECK(memchr(out, '\0', sizeof out) != NULL);
	free(s);
}

static void retry_after(const uint8_t *data, size_t size)
{
	char *s = text(data, size);
	int64_t d = -1;
	if (retry_after_parse(s, 1700000000000LL, &d))
		FUZZ_CHECK(d >= 0);
	free(s);
}

static void cidr(const uint8_t *data, size_t size)
{
	struct cidr p, q;
	char canon[CIDR_TEXT_MAX + 1];
	if (cidr_parse((const char *)data, size, &p)) {
		memset(canon, 'x', sizeof canon);
		cidr_format(&p, canon, sizeof canon);
		FUZZ_CHECK(strlen(canon) < CIDR_TEXT_MAX);
		FUZZ_CHECK(cidr_parse(canon, strlen(canon), &q));
		FUZZ_CHECK(memcmp(&p, &q, sizeof p) == 0);
	}
	char *s = text(data, size), why[128];
	struct cidr_list *l = cidr_list_new(s, "fuzz", why, sizeof why);
	FUZZ_CHECK((l != NULL) == cidr_list_valid(s));
	cidr_list_free(l);
	free(s);
}

/* The reference: RFC 3629 by the table of well-formed byte sequences. */
static bool utf8_reference(const unsigned char *s, size_t n, size_t *chars)
{
	size_t i = 0, c = 0;
	while (i < n) {
		unsigned char b = s[i];
		size_t len;
		unsigned char lo = 0x80, hi = 0xBF;
		if (b == 0)
			return false;
		if (b < 0x80) {
			len = 1;
		} else if (b >= 0xC2 && b <= 0xDF) {
			len = 2;
		} else if (b >= 0xE0 && b <= 0xEF) {
			len = 3;
			if (b == 0xE0)
				lo = 0xA0;
			if (b == 0xED)
				hi = 0x9F; /* no surrogates */
		} else if (b >= 0xF0 && b <= 0xF4) {
			len = 4;
			if (b == 0xF0)
				lo = 0x90;
			if (b == 0xF4)
				hi = 0x8F;
		} else {
			return false;
		}
		if (n - i < len)
			return false;
		for (size_t k = 1; k < len; k++) {
			unsigned char x = s[i + k];
			if (k == 1 ? (x < lo || x > hi) : (x < 0x80 || x > 0xBF))
				return false;
		}
		i += len;
		c++;
	}
	*chars = c;
	return true;
}

static void utf8(const uint8_t *data, size_t size)
{
	size_t a = 0, b = 0;
	bool got = request_utf8_valid((const char *)data, size, &a);
	bool want = utf8_reference(data, size, &b);
	FUZZ_CHECK(got == want);
	if (got)
		FUZZ_CHECK(a == b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const uint8_t *in = data + 1;
	size_t n = size - 1;
	switch (data[0] % 7) {
	case 0:
		percent(in, n);
		break;
	case 1:
		uuid(in, n);
		break;
	case 2:
		signing_key(in, n);
		break;
	case 3:
		client_addr(in, n);
		break;
	case 4:
		retry_after(in, n);
		break;
	case 5:
		utf8(in, n);
		break;
	default:
		cidr(in, n);
		break;
	}
	return 0;
}
