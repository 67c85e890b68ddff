/*
 * work: the one work function both paths run. N rounds of SHA-256: round 1
 * hashes the input bytes, every later round hashes the previous 32-byte
 * digest; the result is the last digest as 64 lowercase hex characters.
 * iterations=1 is sha256(input).
 *
 * One round costs about one SHA-256 compression: the digest is fetched once
 * per process and each call reuses one context for all its rounds.
 */
#ifndef CONSUMA_WORK_H
#define CONSUMA_WORK_H

#include <stddef.h>
#include <stdint.h>

#define WORK_HEX_LEN 64

enum work_err {
	WORK_OK = 0,
	WORK_EINVAL, /* iterations < 1 or input NULL with len > 0 */
	WORK_NOMEM,
	WORK_CRYPTO, /* OpenSSL refused */
};

const char *work_strerror(enum work_err err);

/* Computes the work over input (len bytes) and writes 64 hex + NUL into
 * out_hex. Thread safe; allocates nothing that outlives the call. */
enum work_err work_sha256_iter(const void *input, size_t len, int64_t iterations,
			       char out_hex[WORK_HEX_LEN + 1]);

#endif
