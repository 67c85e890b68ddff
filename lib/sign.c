/*
 * sign: Standard Webhooks signatures (see sign.h).
 *
 * The secret is decoded strictly: "whsec_", then canonical base64 (length a
 * multiple of 4, the standard alphabet, '=' only as the last one or two
 * characters); EVP_DecodeBlock alone would skip whitespace and count the
 * padding as key bytes. The HMAC is streamed over id, '.', timestamp, '.',
 * body with OpenSSL 3's EVP_MAC, so the body is never copied; once per
 * secret of a rotation list.
 */
#include "sign.h"

#include <inttypes.h>
#include <stdbool.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "why.h"

#define KEY_MAX 64

struct secret {
	size_t len;
	unsigned char key[KEY_MAX];
};

struct sign_key {
	EVP_MAC *mac;
	size_t n;
	struct secret s[SIGN_KEYS_MAX];
};

const char *sign_strerror(enum sign_err err)
{
	switch (err) {
	case SIGN_OK:
		return "ok";
	case SIGN_BAD_SECRET:
		return "secret must be \"whsec_\" followed by the base64 of 1..64 bytes (up to 8, "
		       "space-separated)";
	case SIGN_NOMEM:
		return "out of memory";
	case SIGN_CRYPTO:
		return "OpenSSL HMAC failed";
	}
	return "unknown error";
}

static bool b64_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

/* Strictly decodes s into out (at most KEY_MAX bytes); returns the byte
 * count, or -1 when s is not canonical base64 of 1..KEY_MAX bytes. */
static int b64_decode_strict(const char *s, unsigned char *out)
{
	size_t n = strlen(s), pad = 0, i;
	unsigned char tmp[KEY_MAX + 3];
	int got;

	if (n == 0 || n % 4 != 0 || n / 4 * 3 > sizeof(tmp))
		return -1;
	if (s[n - 1] == '=')
		pad++;
	if (s[n - 2] == '=')
		pad++;
	for (i = 0; i < n - pad; i++)
		if (!b64_char(s[i]))
			return -1;
	got = EVP_DecodeBlock(tmp, (const unsigned char *)s, (int)n);
	if (got < 0 || (size_t)got != n / 4 * 3)
		return -1;
	got -= (int)pad;
	if (got < 1 || got > KEY_MAX)
		return -1;
	memcpy(out, tmp, (size_t)got);
	OPENSSL_cleanse(tmp, sizeof(tmp));
	return got;
}

struct sign_key *sign_key_new(const char *secret, enum sign_err *err, char *why, size_t whylen)
{
	struct sign_key *k;
	char one[6 + (KEY_MAX + 2) / 3 * 4 + 1];

	*err = SIGN_OK;
	why_set(why, whylen, "ok");
	if (secret == NULL) {
		*err = SIGN_BAD_SECRET;
		why_set(why, whylen, "no secret");
		return NULL;
	}
	k = cz_calloc(1, sizeof(*k));
	if (k == NULL) {
		*err = SIGN_NOMEM;
		why_set(why, whylen, "out of memory");
		return NULL;
	}
	/* secrets separated by single spaces: no empty one, nothing around them */
	for (;;) {
		size_t len = strcspn(secret, " ");
		int n;

		*err = SIGN_BAD_SECRET;
		if (k->n == SIGN_KEYS_MAX) {
			why_set(why, whylen, "more than %d secrets", SIGN_KEYS_MAX);
			goto fail;
		}
		if (len < 6 || strncmp(secret, "whsec_", 6) != 0) {
			why_set(why, whylen, "secret %zu: %s", k->n + 1,
			        len == 0 ? "empty (a space too many)"
			                 : "does not start with whsec_");
			goto fail;
		}
		n = -1;
		if (len < sizeof(one)) {
			memcpy(one, secret + 6, len - 6);
			one[len - 6] = '\0';
			n = b64_decode_strict(one, k->s[k->n].key);
		}
		if (n < 0) {
			why_set(why, whylen, "secret %zu: not the padded base64 of 1..%d bytes",
			        k->n + 1, KEY_MAX);
			goto fail;
		}
		*err = SIGN_OK;
		k->s[k->n++].len = (size_t)n;
		secret += len;
		if (*secret == '\0')
			break;
		secret++;
	}
	k->mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (k->mac == NULL) {
		*err = SIGN_CRYPTO;
		why_set(why, whylen, "OpenSSL has no HMAC");
		goto fail;
	}
	OPENSSL_cleanse(one, sizeof(one));
	return k;
fail:
	OPENSSL_cleanse(one, sizeof(one));
	sign_key_free(k);
	return NULL;
}

void sign_key_free(struct sign_key *k)
{
	if (k == NULL)
		return;
	EVP_MAC_free(k->mac);
	OPENSSL_cleanse(k->s, sizeof(k->s));
	cz_free(k);
}

size_t sign_key_count(const struct sign_key *k)
{
	return k != NULL ? k->n : 0;
}

/* Writes "v1,<base64>" (SIGN_ONE_LEN bytes, no NUL) for one secret. */
static enum sign_err sign_one(const struct sign_key *k, const struct secret *sec,
                              const char *msg_id, const char *ts, size_t tslen, const char *body,
                              size_t body_len, char *out)
{
	EVP_MAC_CTX *ctx = NULL;
	OSSL_PARAM params[2];
	unsigned char mac[EVP_MAX_MD_SIZE];
	char b64[4 * 32 / 3 + 4 + 1];
	size_t maclen = 0;
	int b64len;
	enum sign_err rc = SIGN_CRYPTO;

	ctx = EVP_MAC_CTX_new(k->mac);
	if (ctx == NULL)
		return SIGN_NOMEM;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (EVP_MAC_init(ctx, sec->key, sec->len, params) != 1)
		goto out;
	if (EVP_MAC_update(ctx, (const unsigned char *)msg_id, strlen(msg_id)) != 1 ||
	    EVP_MAC_update(ctx, (const unsigned char *)".", 1) != 1 ||
	    EVP_MAC_update(ctx, (const unsigned char *)ts, tslen) != 1 ||
	    EVP_MAC_update(ctx, (const unsigned char *)".", 1) != 1 ||
	    (body_len > 0 && EVP_MAC_update(ctx, (const unsigned char *)body, body_len) != 1))
		goto out;
	if (EVP_MAC_final(ctx, mac, &maclen, sizeof(mac)) != 1 || maclen != 32)
		goto out;
	b64len = EVP_EncodeBlock((unsigned char *)b64, mac, (int)maclen);
	if (b64len != 44)
		goto out;
	memcpy(out, "v1,", 3);
	memcpy(out + 3, b64, 44);
	rc = SIGN_OK;
out:
	EVP_MAC_CTX_free(ctx);
	return rc;
}

enum sign_err sign_webhook(const struct sign_key *k, const char *msg_id, int64_t timestamp,
                           const char *body, size_t body_len, char *out, size_t outlen)
{
	char ts[24];
	int tslen;
	size_t i, pos = 0;
	enum sign_err rc = SIGN_OK;

	if (outlen > 0)
		out[0] = '\0';
	/* every signature, the spaces between them and the NUL */
	if (k->n == 0 || outlen < k->n * (SIGN_ONE_LEN + 1))
		return SIGN_CRYPTO;
	tslen = snprintf(ts, sizeof(ts), "%" PRId64, timestamp);
	for (i = 0; i < k->n && rc == SIGN_OK; i++) {
		if (i > 0)
			out[pos++] = ' ';
		rc = sign_one(k, &k->s[i], msg_id, ts, (size_t)tslen, body, body_len, out + pos);
		pos += SIGN_ONE_LEN;
	}
	out[rc == SIGN_OK ? pos : 0] = '\0';
	return rc;
}
