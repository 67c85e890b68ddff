/*
 * work: N rounds of SHA-256, the one work function of both paths.
 *
 * Why the low-level SHA256_* API and not EVP: in OpenSSL 3 every EVP call
 * goes through the provider dispatch, and the per-round cost of
 * EVP_DigestInit_ex2 + Update + Final_ex on a reused context with a digest
 * fetched once is about 1.65x that of SHA256_Init/Update/Final on a stack
 * context (copying a pre-initialised EVP context with EVP_MD_CTX_copy_ex is
 * about 1.45x; the one-shot SHA256() about 6x, because it fetches the
 * digest on every call). Rounds 2..N hash 32 bytes, which is one
 * compression either way, so the dispatch overhead is what decides.
 * tools/bench/work.sh measures all of them against each other.
 *
 * The low-level functions are deprecated in OpenSSL 3 but present in every
 * 3.x build that does not set no-deprecated (Debian's does not); they keep
 * all their state in the caller's SHA256_CTX, so the module has no shared
 * state and is thread safe without locks.
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "work.h"

#include <openssl/sha.h>

_Static_assert(WORK_DIGEST_LEN == SHA256_DIGEST_LENGTH, "work.h's digest length");

const char *work_strerror(enum work_err err)
{
	switch (err) {
	case WORK_OK:
		return "ok";
	case WORK_EINVAL:
		return "invalid argument (iterations < 1 or no input)";
	case WORK_NOMEM:
		return "out of memory";
	case WORK_CRYPTO:
		return "OpenSSL SHA-256 failed";
	}
	return "unknown work error";
}

static void to_hex(const unsigned char d[WORK_DIGEST_LEN], char out[WORK_HEX_LEN + 1])
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < SHA256_DIGEST_LENGTH; i++) {
		out[2 * i] = digits[d[i] >> 4];
		out[2 * i + 1] = digits[d[i] & 0x0f];
	}
	out[WORK_HEX_LEN] = '\0';
}

/* One SHA-256 of n bytes into md (which may alias in: Update copies the
 * input into the context before Final writes md). */
static int sha256(const void *in, size_t n, unsigned char md[SHA256_DIGEST_LENGTH])
{
	SHA256_CTX c;

	if (SHA256_Init(&c) != 1 || SHA256_Update(&c, in, n) != 1 || SHA256_Final(md, &c) != 1)
		return -1;
	return 0;
}

enum work_err work_begin(struct work_state *w, const void *input, size_t len, int64_t iterations)
{
	if (w == NULL)
		return WORK_EINVAL;
	w->left = -1; /* failed: work_result refuses */
	if (iterations < 1 || (input == NULL && len > 0))
		return WORK_EINVAL;
	if (sha256(input != NULL ? input : "", len, w->md) != 0)
		return WORK_CRYPTO;
	w->left = iterations - 1;
	return WORK_OK;
}

enum work_err work_rounds(struct work_state *w, int64_t max_rounds)
{
	if (w == NULL || max_rounds < 1 || w->left < 0)
		return WORK_EINVAL;
	int64_t n = max_rounds < w->left ? max_rounds : w->left;
	for (int64_t i = 0; i < n; i++) {
		if (sha256(w->md, sizeof w->md, w->md) != 0) {
			w->left = -1;
			return WORK_CRYPTO;
		}
	}
	if (n > 0)
		w->left -= n;
	return WORK_OK;
}

int64_t work_left(const struct work_state *w)
{
	return w->left;
}

enum work_err work_result(const struct work_state *w, char out_hex[WORK_HEX_LEN + 1])
{
	if (out_hex == NULL)
		return WORK_EINVAL;
	if (w == NULL || w->left != 0) {
		out_hex[0] = '\0';
		return WORK_EINVAL;
	}
	to_hex(w->md, out_hex);
	return WORK_OK;
}

enum work_err work_sha256_iter(const void *input, size_t len, int64_t iterations,
                               char out_hex[WORK_HEX_LEN + 1])
{
	struct work_state w;
	enum work_err rc;

	if (out_hex == NULL)
		return WORK_EINVAL;
	rc = work_begin(&w, input, len, iterations);
	if (rc == WORK_OK)
		rc = work_rounds(&w, w.left > 0 ? w.left : 1);
	if (rc == WORK_OK)
		return work_result(&w, out_hex);
	out_hex[0] = '\0';
	return rc;
}
