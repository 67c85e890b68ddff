/*
 * sign: Standard Webhooks signatures for callbacks.
 *
 *   webhook-signature: v1,<base64(HMAC-SHA256(key, "<id>.<timestamp>.<body>"))>
 *
 * The key is CONSUMA_CALLBACK_SECRET: "whsec_" followed by the base64 of the
 * raw key bytes. A key is read-only once made: thread safe.
 */
#ifndef CONSUMA_SIGN_H
#define CONSUMA_SIGN_H

#include <stddef.h>
#include <stdint.h>

#define SIGN_HEADER_MAX 128 /* "v1," + base64 of 32 bytes + NUL fits easily */

enum sign_err {
	SIGN_OK = 0,
	SIGN_BAD_SECRET, /* not "whsec_" + valid base64 of 1..64 bytes */
	SIGN_NOMEM,
	SIGN_CRYPTO,
};

struct sign_key;

const char *sign_strerror(enum sign_err err);

/* Decodes a whsec_ secret. NULL on failure with *err set. Free with
 * sign_key_free (NULL is a no-op). */
struct sign_key *sign_key_new(const char *secret, enum sign_err *err);
void sign_key_free(struct sign_key *k);

/* Writes "v1,<base64>" for (msg_id, timestamp seconds, body) into out. */
enum sign_err sign_webhook(const struct sign_key *k, const char *msg_id, int64_t timestamp,
                           const char *body, size_t body_len, char *out, size_t outlen);

#endif
