/*
 * sign: Standard Webhooks signatures for callbacks.
 *
 *   webhook-signature: v1,<base64(HMAC-SHA256(key, "<id>.<timestamp>.<body>"))>
 *
 * The key is CONSUMA_CALLBACK_SECRET: "whsec_" followed by the base64 of the
 * raw key bytes. For rotation it may be a space-separated list of such
 * secrets: the header then carries one signature per secret, in the order
 * given, separated by spaces (the Standard Webhooks format), so a receiver
 * holding any one of them accepts. A key is read-only once made: thread
 * safe.
 */
#ifndef CONSUMA_SIGN_H
#define CONSUMA_SIGN_H

#include <stddef.h>
#include <stdint.h>

#define SIGN_KEYS_MAX   8  /* secrets in one CONSUMA_CALLBACK_SECRET */
#define SIGN_ONE_LEN    47 /* "v1," + base64 of 32 bytes */
#define SIGN_HEADER_MAX (SIGN_KEYS_MAX * (SIGN_ONE_LEN + 1)) /* every signature, spaces, NUL */

enum sign_err {
	SIGN_OK = 0,
	SIGN_BAD_SECRET, /* not 1..SIGN_KEYS_MAX of "whsec_" + valid base64 of 1..64 bytes */
	SIGN_NOMEM,
	SIGN_CRYPTO,
};

struct sign_key;

const char *sign_strerror(enum sign_err err);

/* Decodes a whsec_ secret, or a space-separated list of 1..SIGN_KEYS_MAX
 * of them. NULL on failure with *err set and why (may be NULL) saying
 * which secret and what is wrong with it, never its text. Free with
 * sign_key_free (NULL is a no-op). */
struct sign_key *sign_key_new(const char *secret, enum sign_err *err, char *why, size_t whylen);
void sign_key_free(struct sign_key *k);
/* How many secrets k holds (1..SIGN_KEYS_MAX). */
size_t sign_key_count(const struct sign_key *k);

/* Writes "v1,<base64>" for (msg_id, timestamp seconds, body) into out, one
 * per secret of k, separated by single spaces. */
enum sign_err sign_webhook(const struct sign_key *k, const char *msg_id, int64_t timestamp,
                           const char *body, size_t body_len, char *out, size_t outlen);

#endif
