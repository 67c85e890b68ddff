/*
 * expect: the seeded input pool and its locally computed results (see
 * expect.h). splitmix64 turns (seed, index) into well-mixed 64-bit words.
 */
#include "expect.h"

#include <stdio.h>

#include "alloc.h"

struct entry {
	char input[EXPECT_INPUT_LEN + 1];
	char result[WORK_HEX_LEN + 1];
};

struct expect {
	uint64_t seed;
	size_t n;
	int64_t iterations;
	struct entry pool[EXPECT_POOL_MAX];
};

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

struct expect *expect_new(uint64_t seed, uint64_t n_requests, int64_t iterations, int compute,
                          enum work_err *err)
{
	struct expect *e = cz_calloc(1, sizeof(*e));
	if (!e) {
		*err = WORK_NOMEM;
		return NULL;
	}
	e->seed = seed;
	e->iterations = iterations;
	e->n = n_requests < EXPECT_POOL_MAX ? (size_t)n_requests : EXPECT_POOL_MAX;
	if (e->n == 0)
		e->n = 1;
	for (size_t k = 0; k < e->n; k++) {
		uint64_t a = splitmix64(seed ^ splitmix64(2 * k));
		uint64_t b = splitmix64(seed ^ splitmix64(2 * k + 1));
		snprintf(e->pool[k].input, sizeof(e->pool[k].input), "storm-%016llx%016llx",
		         (unsigned long long)a, (unsigned long long)b);
		if (!compute)
			continue;
		enum work_err rc = work_sha256_iter(e->pool[k].input, EXPECT_INPUT_LEN, iterations,
		                                    e->pool[k].result);
		if (rc != WORK_OK) {
			*err = rc;
			cz_free(e);
			return NULL;
		}
	}
	*err = WORK_OK;
	return e;
}

void expect_free(struct expect *e)
{
	cz_free(e);
}

size_t expect_pick(const struct expect *e, uint64_t i)
{
	return (size_t)(splitmix64(e->seed + 0x632be59bd9b4e019ULL * (i + 1)) % e->n);
}

const char *expect_input(const struct expect *e, size_t k)
{
	return e->pool[k].input;
}

const char *expect_result(const struct expect *e, size_t k)
{
	return e->pool[k].result;
}

int64_t expect_iterations(const struct expect *e)
{
	return e->iterations;
}
