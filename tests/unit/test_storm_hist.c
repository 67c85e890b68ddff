/*
 * test_storm_hist: consuma-storm's latency histogram (tools/storm/hist.h).
 *
 * Percentiles read back are compared with the exact nearest-rank
 * percentile of the same samples, sorted: never below it, and above it by
 * at most the documented 1/128 (below 256 us, exact). Sample sets: small
 * exact values, bucket edges, spreads over many magnitudes, heavy ties,
 * counts where p * count / 100 is an integer (where rounding must not pick
 * the next sample). Min, max and mean are exact; empty and huge values have
 * their own tests, and merge must equal recording everything in one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "hist.h"
#include "ids.h"

#define NSAMPLES_MAX 20000

static const double percentiles[] = {0.001, 0.1,    1,   10,   25, 33.3, 50,   66.7,
                                     75,    90,     95,  97.5, 99, 99.5, 99.9, 99.95,
                                     99.99, 99.999, 100, 0,    -5, 150};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a;
	uint64_t y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest rank: the smallest sample with at least p % of the samples at or
 * below it. p is taken in millionths so the rank is computed in integers. */
static uint64_t exact_percentile(const uint64_t *sorted, size_t n, double p)
{
	if (p <= 0)
		return sorted[0];
	if (p >= 100)
		return sorted[n - 1];
	uint64_t pm = (uint64_t)(p * 1e6 + 0.5); /* p in 1e-6 % */
	uint64_t rank = (pm * n + 100000000 - 1) / 100000000;

	if (rank == 0)
		rank = 1;
	return sorted[rank - 1];
}

enum gen { G_SMALL, G_EDGES, G_WIDE, G_TIES, G_LINEAR, G_SPIKE };

struct set_case {
	const char *name;
	enum gen gen;
	size_t n;
};

static const struct set_case sets[] = {
    {"one sample", G_WIDE, 1},
    {"two samples", G_WIDE, 2},
    {"small exact values", G_SMALL, 1000},
    {"bucket edges", G_EDGES, 0},
    {"1..1000", G_LINEAR, 1000},
    {"1..10000", G_LINEAR, 10000},
    {"1..7", G_LINEAR, 7},
    {"1..3", G_LINEAR, 3},
    {"wide spread", G_WIDE, 20000},
    {"wide spread, 997", G_WIDE, 997},
    {"heavy ties", G_TIES, 5000},
    {"one slow outlier", G_SPIKE, 1000},
};

static size_t generate(const struct set_case *c, uint64_t *v)
{
	uint64_t s = 0x2545f4914f6cdd1dULL;
	size_t n = 0;

	switch (c->gen) {
	case G_SMALL:
		for (n = 0; n < c->n; n++)
			v[n] = ids_xorshift64(&s) % 256;
		break;
	case G_EDGES:
		/* both sides of every power of two and of sub-bucket borders */
		for (int e = 0; e < 43 && n + 6 <= NSAMPLES_MAX; e++) {
			uint64_t p = 1ULL << e;

			v[n++] = p - 1;
			v[n++] = p;
			v[n++] = p + 1;
			v[n++] = p + p / 2;
			v[n++] = p + p / 128;
			v[n++] = p + p / 128 - 1;
		}
		break;
	case G_WIDE:
		/* log-uniform over 1 us .. ~8 * 10^12 us */
		for (n = 0; n < c->n; n++) {
			int e = (int)(ids_xorshift64(&s) % 43);

			v[n] = (1ULL << e) + ids_xorshift64(&s) % (1ULL << e);
		}
		break;
	case G_TIES:
		for (n = 0; n < c->n; n++)
			v[n] = n % 5 == 0 ? 12345 : 1000;
		break;
	case G_LINEAR:
		for (n = 0; n < c->n; n++)
			v[n] = n + 1;
		break;
	case G_SPIKE:
		for (n = 0; n < c->n; n++)
			v[n] = 900 + n % 100;
		v[c->n / 2] = 30000000; /* one 30 s request */
		break;
	}
	return n;
}

static void test_against_sorted(void **state)
{
	static uint64_t v[NSAMPLES_MAX];
	static struct hist h;

	(void)state;
	for (size_t c = 0; c < sizeof(sets) / sizeof(sets[0]); c++) {
		size_t n = generate(&sets[c], v);
		long double sum = 0;

		hist_init(&h);
		for (size_t i = 0; i < n; i++) {
			hist_record(&h, (int64_t)v[i]);
			sum += v[i];
		}
		qsort(v, n, sizeof(v[0]), cmp_u64);
		assert_int_equal(h.count, n);
		assert_int_equal(h.min_us, v[0]);
		assert_int_equal(h.max_us, v[n - 1]);
		/* exact while the sum fits a double's mantissa, else within rounding */
		assert_true(hist_mean(&h) >= (double)(sum / n) * (1 - 1e-9));
		assert_true(hist_mean(&h) <= (double)(sum / n) * (1 + 1e-9));
		if (sets[c].gen == G_LINEAR)
			assert_true(hist_mean(&h) == (double)(n + 1) / 2);
		for (size_t k = 0; k < sizeof(percentiles) / sizeof(percentiles[0]); k++) {
			double p = percentiles[k];
			uint64_t want = exact_percentile(v, n, p);
			uint64_t got = hist_percentile(&h, p);

			print_message("%s (n=%zu): p%g exact %llu hist %llu\n", sets[c].name, n, p,
			              (unsigned long long)want, (unsigned long long)got);
			assert_true(got >= want);
			if (want < HIST_SUB)
				assert_int_equal(got, want);
			else
				assert_true(got - want <= want / HIST_HALF);
			/* always a value in [min, max] */
			assert_in_range(got, v[0], v[n - 1]);
		}
	}
}

static void test_empty(void **state)
{
	struct hist h;

	(void)state;
	memset(&h, 0xa5, sizeof(h));
	hist_init(&h);
	assert_int_equal(h.count, 0);
	assert_true(hist_mean(&h) == 0.0);
	for (size_t k = 0; k < sizeof(percentiles) / sizeof(percentiles[0]); k++)
		assert_int_equal(hist_percentile(&h, percentiles[k]), 0);
	hist_record(&h, 5);
	hist_init(&h);
	assert_int_equal(hist_percentile(&h, 50), 0);
	assert_int_equal(h.min_us, 0);
	assert_int_equal(h.max_us, 0);
}

/* Negative values count as 0; values past the last bucket (about 2^43 us)
 * land in it and never overflow: min, max and p100 stay exact. */
static void test_extremes(void **state)
{
	static const struct {
		int64_t v;
		uint64_t as;
	} single[] = {
	    {0, 0},
	    {-1, 0},
	    {INT64_MIN, 0},
	    {255, 255},
	    {256, 256},
	    {(1LL << 43) - 1, (1LL << 43) - 1},
	    {1LL << 43, 1ULL << 43},
	    {INT64_MAX, (uint64_t)INT64_MAX},
	};
	struct hist h;

	(void)state;
	for (size_t i = 0; i < sizeof(single) / sizeof(single[0]); i++) {
		hist_init(&h);
		hist_record(&h, single[i].v);
		assert_int_equal(h.min_us, single[i].as);
		assert_int_equal(h.max_us, single[i].as);
		/* one sample: every percentile is that sample */
		assert_int_equal(hist_percentile(&h, 50), single[i].as);
		assert_int_equal(hist_percentile(&h, 99.9), single[i].as);
		assert_int_equal(hist_percentile(&h, 100), single[i].as);
		assert_true(hist_mean(&h) == (double)single[i].as);
	}

	/* 1 and INT64_MAX: the top bucket reads as its highest value, clamped */
	hist_init(&h);
	hist_record(&h, 1);
	hist_record(&h, INT64_MAX);
	assert_int_equal(h.min_us, 1);
	assert_int_equal(h.max_us, (uint64_t)INT64_MAX);
	assert_int_equal(hist_percentile(&h, 50), 1);
	assert_int_equal(hist_percentile(&h, 100), (uint64_t)INT64_MAX);
	uint64_t top = hist_percentile(&h, 99);

	assert_true(top >= (1ULL << 42) && top <= (uint64_t)INT64_MAX);
	assert_true(hist_mean(&h) > 4e18);
	/* past the range: the last bucket, nowhere else */
	assert_int_equal(h.buckets[HIST_BUCKETS - 1], 1);
	assert_int_equal(h.buckets[HIST_BUCKETS - 2], 0);
	hist_record(&h, (1LL << 43) - 1);
	assert_int_equal(h.buckets[HIST_BUCKETS - 1], 2);

	/* many huge values: the counters and the sum keep up */
	hist_init(&h);
	for (int i = 0; i < 1000; i++)
		hist_record(&h, INT64_MAX - i);
	assert_int_equal(h.count, 1000);
	assert_int_equal(h.min_us, (uint64_t)INT64_MAX - 999);
	assert_true(hist_mean(&h) > 9.2e18);
}

/* Merging per-thread histograms gives what one histogram of everything
 * gives; merging an empty one changes nothing; merging into an empty one
 * copies. */
static void test_merge(void **state)
{
	static struct hist a;
	static struct hist b;
	static struct hist all;
	static struct hist empty;
	uint64_t s = 77;

	(void)state;
	hist_init(&a);
	hist_init(&b);
	hist_init(&all);
	hist_init(&empty);
	for (int i = 0; i < 3000; i++) {
		int64_t v = (int64_t)(ids_xorshift64(&s) % 5000000);

		hist_record(i % 3 ? &a : &b, v);
		hist_record(&all, v);
	}
	hist_record(&b, 0);
	hist_record(&all, 0);
	hist_merge(&a, &empty);
	hist_merge(&a, &b);
	assert_int_equal(a.count, all.count);
	assert_int_equal(a.min_us, all.min_us);
	assert_int_equal(a.max_us, all.max_us);
	assert_memory_equal(a.buckets, all.buckets, sizeof(a.buckets));
	assert_true(hist_mean(&a) > hist_mean(&all) * (1 - 1e-12));
	assert_true(hist_mean(&a) < hist_mean(&all) * (1 + 1e-12));
	for (size_t k = 0; k < sizeof(percentiles) / sizeof(percentiles[0]); k++)
		assert_int_equal(hist_percentile(&a, percentiles[k]),
		                 hist_percentile(&all, percentiles[k]));

	/* into an empty one: min comes from src, not from the zeroed dst */
	hist_init(&empty);
	hist_init(&b);
	hist_record(&b, 700);
	hist_record(&b, 900);
	hist_merge(&empty, &b);
	assert_int_equal(empty.count, 2);
	assert_int_equal(empty.min_us, 700);
	assert_int_equal(empty.max_us, 900);
	/* 700's bucket is 700..703 */
	assert_in_range(hist_percentile(&empty, 50), 700, 703);
	assert_int_equal(hist_percentile(&empty, 100), 900);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_against_sorted),
	    cmocka_unit_test(test_empty),
	    cmocka_unit_test(test_extremes),
	    cmocka_unit_test(test_merge),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
