/*
 * work: the one work function both paths run. N rounds of SHA-256: round 1
 * hashes the input bytes, every later round hashes the previous 32-byte
 * digest; the result is the last digest as 64 lowercase hex characters.
 * iterations=1 is sha256(input).
 *
 * One round costs about one SHA-256 compression: the rounds run on a stack
 * context through OpenSSL's low-level SHA-256, which measures faster than
 * any EVP variant (a fetched digest with a reused or copied context); see
 * work.c and tools/bench/work.sh.
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
 * out_hex (on error out_hex is ""). input may be NULL when len is 0.
 * Thread safe; allocates nothing. */
enum work_err work_sha256_iter(const void *input, size_t len, int64_t iterations,
                               char out_hex[WORK_HEX_LEN + 1]);

#endif
