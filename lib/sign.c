/*
 * sign: Standard Webhooks signatures (see sign.h).
 *
 * The secret is decoded strictly: "whsec_", then canonical base64 (length a
 * multiple of 4, the standard alphabet, '=' only as the last one or two
 * characters); EVP_DecodeBlock alone would skip whitespace and count the
 * padding as key bytes. The HMAC is streamed over id, '.', timestamp, '.',
 * body with OpenSSL 3's EVP_MAC, so the body is never copied.
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

#define KEY_MAX 64

struct sign_key {
	EVP_MAC *mac;
	size_t len;
	unsigned char key[KEY_MAX];
};

const char *sign_strerror(enum sign_err err)
{
	switch (err) {
	case SIGN_OK:
		return "ok";
	case SIGN_BAD_SECRET:
		return "secret must be \"whsec_\" followed by the base64 of 1..64 bytes";
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

struct sign_key *sign_key_new(const char *secret, enum sign_err *err)
{
	struct sign_key *k;
	int n;

	*err = SIGN_OK;
	if (secret == NULL || strncmp(secret, "whsec_", 6) != 0) {
		*err = SIGN_BAD_SECRET;
		return NULL;
	}
	k = cz_calloc(1, sizeof(*k));
	if (k == NULL) {
		*err = SIGN_NOMEM;
		return NULL;
	}
	n = b64_decode_strict(secret + 6, k->key);
	if (n < 0) {
		*err = SIGN_BAD_SECRET;
		goto fail;
	}
	k->len = (size_t)n;
	k->mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (k->mac == NULL) {
		*err = SIGN_CRYPTO;
		goto fail;
	}
	return k;
fail:
	sign_key_free(k);
	return NULL;
}

void sign_key_free(struct sign_key *k)
{
	if (k == NULL)
		return;
	EVP_MAC_free(k->mac);
	OPENSSL_cleanse(k->key, sizeof(k->key));
	cz_free(k);
}

enum sign_err sign_webhook(const struct sign_key *k, const char *msg_id, int64_t timestamp,
                           const char *body, size_t body_len, char *out, size_t outlen)
{
	EVP_MAC_CTX *ctx = NULL;
	OSSL_PARAM params[2];
	unsigned char mac[EVP_MAX_MD_SIZE];
	size_t maclen = 0;
	char ts[24];
	int tslen, b64len;
	enum sign_err rc = SIGN_CRYPTO;

	if (outlen > 0)
		out[0] = '\0';
	/* "v1," + base64 of 32 bytes (44) + NUL */
	if (outlen < 3 + 44 + 1)
		return SIGN_CRYPTO;
	tslen = snprintf(ts, sizeof(ts), "%" PRId64, timestamp);
	ctx = EVP_MAC_CTX_new(k->mac);
	if (ctx == NULL)
		return SIGN_NOMEM;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
	params[1] = OSSL_PARAM_construct_end();
	if (EVP_MAC_init(ctx, k->key, k->len, params) != 1)
		goto out;
	if (EVP_MAC_update(ctx, (const unsigned char *)msg_id, strlen(msg_id)) != 1 ||
	    EVP_MAC_update(ctx, (const unsigned char *)".", 1) != 1 ||
	    EVP_MAC_update(ctx, (const unsigned char *)ts, (size_t)tslen) != 1 ||
	    EVP_MAC_update(ctx, (const unsigned char *)".", 1) != 1 ||
	    (body_len > 0 && EVP_MAC_update(ctx, (const unsigned char *)body, body_len) != 1))
		goto out;
	if (EVP_MAC_final(ctx, mac, &maclen, sizeof(mac)) != 1 || maclen != 32)
		goto out;
	memcpy(out, "v1,", 3);
	b64len = EVP_EncodeBlock((unsigned char *)out + 3, mac, (int)maclen);
	if (b64len != 44)
		goto out;
	out[3 + b64len] = '\0';
	rc = SIGN_OK;
out:
	if (rc != SIGN_OK)
		out[0] = '\0';
	EVP_MAC_CTX_free(ctx);
	return rc;
}
