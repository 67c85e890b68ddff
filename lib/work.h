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
 *
 * Rounds compose (the digest after k rounds, hashed n more times, is the
 * digest after k+n), so a long computation can run in steps: work_begin,
 * work_rounds until work_left is 0 (a caller that must stop early, the
 * deliverer's pool at shutdown, simply stops calling), work_result.
 * work_sha256_iter is those three in one call.
 */
#ifndef CONSUMA_WORK_H
#define CONSUMA_WORK_H

#include <stddef.h>
#include <stdint.h>

#define WORK_HEX_LEN    64
#define WORK_DIGEST_LEN 32

enum work_err {
	WORK_OK = 0,
	WORK_EINVAL, /* iterations < 1 or input NULL with len > 0 */
	WORK_NOMEM,
	WORK_CRYPTO, /* OpenSSL refused */
};

const char *work_strerror(enum work_err err);

/* A computation in progress. The caller owns it (a stack value is fine);
 * its fields are the module's. */
struct work_state {
	unsigned char md[WORK_DIGEST_LEN]; /* the digest after the rounds run so far */
	int64_t left;                      /* rounds still to run; -1 after a failure */
};

/* Runs round 1 over input (len bytes; NULL when len is 0) and sets up the
 * remaining iterations - 1. On error w holds no result (work_result
 * refuses it). Thread safe (w is the caller's); allocates nothing. */
enum work_err work_begin(struct work_state *w, const void *input, size_t len, int64_t iterations);
/* Runs up to max_rounds (>= 1) more rounds, fewer when fewer are left. */
enum work_err work_rounds(struct work_state *w, int64_t max_rounds);
/* The rounds still to run: 0 once the result is ready, -1 after a failure. */
int64_t work_left(const struct work_state *w);
/* The result as 64 hex + NUL; WORK_EINVAL ("" in out_hex) while rounds are
 * left. */
enum work_err work_result(const struct work_state *w, char out_hex[WORK_HEX_LEN + 1]);

/* Computes the work over input (len bytes) and writes 64 hex + NUL into
 * out_hex (on error out_hex is ""). input may be NULL when len is 0.
 * Thread safe; allocates nothing. */
enum work_err work_sha256_iter(const void *input, size_t len, int64_t iterations,
                               char out_hex[WORK_HEX_LEN + 1]);

#endif
