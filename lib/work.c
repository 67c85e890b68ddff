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

static void to_hex(const unsigned char d[SHA256_DIGEST_LENGTH], char out[WORK_HEX_LEN + 1])
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

enum work_err work_sha256_iter(const void *input, size_t len, int64_t iterations,
                               char out_hex[WORK_HEX_LEN + 1])
{
	unsigned char md[SHA256_DIGEST_LENGTH];
	enum work_err rc = WORK_OK;

	if (out_hex == NULL)
		return WORK_EINVAL;
	if (iterations < 1 || (input == NULL && len > 0)) {
		rc = WORK_EINVAL;
		goto out;
	}
	if (input == NULL)
		input = "";

	if (sha256(input, len, md) != 0) {
		rc = WORK_CRYPTO;
		goto out;
	}
	for (int64_t i = 1; i < iterations; i++) {
		if (sha256(md, sizeof(md), md) != 0) {
			rc = WORK_CRYPTO;
			goto out;
		}
	}
	to_hex(md, out_hex);
out:
	if (rc != WORK_OK)
		out_hex[0] = '\0';
	return rc;
}
