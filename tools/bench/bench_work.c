/*
 * bench_work: ns per iteration of work_sha256_iter() against the cheapest
 * bare OpenSSL SHA-256 of one 32-byte block callable in a loop (the
 * low-level SHA256_Init/Update/Final on a stack context, chained like the
 * work), measured in the same run, plus the EVP variants work.c decided
 * against, for the record. Each variant runs `repeats` times, interleaved,
 * and the best run counts (the machine is shared; the minimum is the least
 * disturbed). Prints a table; never asserts speed (exit 1 only when the
 * variants disagree on the digest, i.e. a bug).
 *
 *   bench_work [iterations (default 2000000)] [repeats (default 5)]
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

#include "work.h"

#define SEED     "hello"
#define SEED_LEN 5

enum variant { V_WORK, V_BASE, V_EVP_INIT2, V_EVP_COPY, V_EVP_DIGEST, V_ONESHOT, V_COUNT };

static const char *const names[V_COUNT] = {
    [V_WORK] = "work_sha256_iter",
    [V_BASE] = "baseline: SHA256_Init/Update/Final (stack ctx)",
    [V_EVP_INIT2] = "EVP_DigestInit_ex2, fetched md, reused ctx",
    [V_EVP_COPY] = "EVP_MD_CTX_copy_ex of an initialised ctx",
    [V_EVP_DIGEST] = "EVP_Digest, fetched md",
    [V_ONESHOT] = "SHA256() one-shot",
};

static double now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static void hex(const unsigned char d[32], char out[WORK_HEX_LEN + 1])
{
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* Runs one variant for n iterations (round 1 over SEED, like the work);
 * writes the final digest as hex. Returns 0 or -1 when OpenSSL failed. */
static int run(enum variant v, int64_t n, EVP_MD *md, char out[WORK_HEX_LEN + 1])
{
	unsigned char d[32];
	unsigned int dl = 0;
	int ok = 1;

	if (v == V_WORK)
		return work_sha256_iter(SEED, SEED_LEN, n, out) == WORK_OK ? 0 : -1;

	SHA256((const unsigned char *)SEED, SEED_LEN, d);
	if (v == V_BASE) {
		for (int64_t i = 1; i < n; i++) {
			SHA256_CTX c;

			ok &= SHA256_Init(&c) & SHA256_Update(&c, d, 32) & SHA256_Final(d, &c);
		}
	} else if (v == V_EVP_INIT2 || v == V_EVP_COPY) {
		EVP_MD_CTX *ctx = EVP_MD_CTX_new();
		EVP_MD_CTX *base = EVP_MD_CTX_new();

		ok = ctx != NULL && base != NULL && EVP_DigestInit_ex2(base, md, NULL) == 1;
		for (int64_t i = 1; ok && i < n; i++) {
			if (v == V_EVP_INIT2)
				ok &= EVP_DigestInit_ex2(ctx, md, NULL);
			else
				ok &= EVP_MD_CTX_copy_ex(ctx, base);
			ok &= EVP_DigestUpdate(ctx, d, 32) & EVP_DigestFinal_ex(ctx, d, &dl);
		}
		EVP_MD_CTX_free(ctx);
		EVP_MD_CTX_free(base);
	} else if (v == V_EVP_DIGEST) {
		for (int64_t i = 1; i < n; i++)
			ok &= EVP_Digest(d, 32, d, &dl, md, NULL);
	} else {
		for (int64_t i = 1; i < n; i++)
			ok &= SHA256(d, 32, d) != NULL;
	}
	hex(d, out);
	return ok ? 0 : -1;
}

static int64_t arg(const char *s, int64_t dflt, int64_t min, int64_t max)
{
	char *end;
	long long v;

	if (s == NULL)
		return dflt;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		return -1;
	return v;
}

int main(int argc, char **argv)
{
	int64_t n = arg(argc > 1 ? argv[1] : NULL, 2000000, 2, 1000000000);
	int64_t repeats = arg(argc > 2 ? argv[2] : NULL, 5, 1, 100);
	double best[V_COUNT];
	char first[WORK_HEX_LEN + 1] = "";
	EVP_MD *md;

	if (argc > 3 || n < 0 || repeats < 0) {
		fprintf(stderr, "usage: bench_work [iterations 2..1e9] [repeats 1..100]\n");
		return 2;
	}
	md = EVP_MD_fetch(NULL, "SHA256", NULL);
	if (md == NULL) {
		fprintf(stderr, "bench_work: EVP_MD_fetch(SHA256) failed\n");
		return 1;
	}
	for (int v = 0; v < V_COUNT; v++)
		best[v] = -1;
	for (int64_t r = 0; r < repeats; r++) {
		for (int v = 0; v < V_COUNT; v++) {
			char out[WORK_HEX_LEN + 1];
			double t0 = now_ns();
			double ns;

			if (run((enum variant)v, n, md, out) != 0) {
				fprintf(stderr, "bench_work: %s failed\n", names[v]);
				return 1;
			}
			ns = (now_ns() - t0) / (double)n;
			if (first[0] == '\0')
				memcpy(first, out, sizeof(first));
			else if (strcmp(first, out) != 0) {
				fprintf(stderr, "bench_work: %s gives %s, work gives %s\n",
				        names[v], out, first);
				return 1;
			}
			if (best[v] < 0 || ns < best[v])
				best[v] = ns;
		}
	}
	EVP_MD_free(md);

#if defined(__SANITIZE_ADDRESS__)
	printf("note: built with AddressSanitizer; numbers are not representative\n");
#endif
	printf("iterations=%" PRId64 " repeats=%" PRId64 " (best run of each)\n", n, repeats);
	printf("%-48s %10s %8s\n", "variant", "ns/iter", "x base");
	for (int v = 0; v < V_COUNT; v++)
		printf("%-48s %10.1f %8.2f\n", names[v], best[v], best[v] / best[V_BASE]);
	printf("work/baseline ratio: %.2f (target <= 1.20)\n", best[V_WORK] / best[V_BASE]);
	return 0;
}
