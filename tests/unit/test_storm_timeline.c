/*
 * test_storm_timeline: consuma-storm's per-interval counts
 * (tools/storm/timeline.h): events land in the interval of their moment,
 * the columns sum to what was recorded, a run longer than the fixed number
 * of intervals merges neighbours without losing a count, workers' parts
 * merge into one, and the interval percentiles stay within the bucket
 * error. Times are made up: no clock is read.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>
#include "timeline.h"

#define T0  1000000000LL /* any monotonic origin */
#define SEC 1000000000LL

/* Sums of every column over all intervals. */
struct sums {
	uint64_t sent[2], ok[2], refused[2], failed[2], lat[2], callbacks;
};

static struct sums sum(const struct timeline *tl)
{
	struct sums s;
	memset(&s, 0, sizeof(s));
	for (size_t k = 0; k < tl_count(tl); k++) {
		const struct tl_interval *iv = tl_at(tl, k);
		for (int m = 0; m < 2; m++) {
			s.sent[m] += iv->mode[m].sent;
			s.ok[m] += iv->mode[m].ok;
			s.refused[m] += iv->mode[m].refused;
			s.failed[m] += iv->mode[m].failed;
			s.lat[m] += iv->mode[m].latency.count;
		}
		s.callbacks += iv->callbacks;
	}
	return s;
}

static void test_events_land_in_their_interval(void **state)
{
	static const struct {
		int64_t at; /* ns after T0 */
		size_t interval;
	} cases[] = {
	    {-5 * SEC, 0}, /* before the origin: the first interval */
	    {0, 0},        {SEC / 2 - 1, 0}, {SEC / 2, 1}, {3 * SEC + 1, 6},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct timeline *tl = tl_new(T0, 0.5);
		assert_non_null(tl);
		tl_sent(tl, TL_SYNC, T0 + cases[i].at);
		assert_int_equal(tl_count(tl), cases[i].interval + 1);
		assert_int_equal(tl_at(tl, cases[i].interval)->mode[TL_SYNC].sent, 1);
		assert_int_equal(tl_at(tl, cases[i].interval)->mode[TL_ASYNC].sent, 0);
		for (size_t k = 0; k < cases[i].interval; k++) {
			assert_int_equal(tl_at(tl, k)->mode[TL_SYNC].sent, 0);
			assert_false(tl_at(tl, k)->server.sampled);
		}
		tl_free(tl);
	}
	tl_free(NULL);
}

static void test_outcomes(void **state)
{
	struct timeline *tl = tl_new(T0, 1);
	(void)state;
	assert_non_null(tl);
	tl_done(tl, TL_ASYNC, TL_OK, T0, 2000);
	tl_done(tl, TL_ASYNC, TL_REFUSED, T0, 0);
	tl_done(tl, TL_ASYNC, TL_FAILED, T0, 0);
	tl_callback(tl, T0 + SEC);
	const struct tl_interval *iv = tl_at(tl, 0);
	assert_int_equal(iv->mode[TL_ASYNC].ok, 1);
	assert_int_equal(iv->mode[TL_ASYNC].refused, 1);
	assert_int_equal(iv->mode[TL_ASYNC].failed, 2); /* refusals are failures too */
	assert_int_equal(iv->mode[TL_ASYNC].latency.count, 1);
	assert_int_equal(tl_at(tl, 1)->callbacks, 1);
	tl_free(tl);
}

/* A run ten times longer than the intervals there are: pairs merge, the
 * width doubles, and every count is still there. */
static void test_long_run_coarsens(void **state)
{
	struct timeline *tl = tl_new(T0, 1);
	const uint64_t n = TL_MAX_INTERVALS * 10;
	(void)state;
	assert_non_null(tl);
	for (uint64_t i = 0; i < n; i++) {
		int64_t at = T0 + (int64_t)i * SEC;
		tl_sent(tl, TL_SYNC, at);
		tl_done(tl, TL_SYNC, i % 3 ? TL_OK : TL_REFUSED, at, 1000);
		tl_callback(tl, at);
	}
	assert_true(tl_width_s(tl) == 16.0); /* 3600 s in at most 360: 1 -> 16 */
	assert_true(tl_count(tl) <= TL_MAX_INTERVALS);
	assert_int_equal(tl_count(tl), (n + 15) / 16);
	struct sums s = sum(tl);
	assert_int_equal(s.sent[TL_SYNC], n);
	assert_int_equal(s.ok[TL_SYNC] + s.failed[TL_SYNC], n);
	assert_int_equal(s.refused[TL_SYNC], n / 3);
	assert_int_equal(s.lat[TL_SYNC], s.ok[TL_SYNC]);
	assert_int_equal(s.callbacks, n);
	assert_int_equal(tl_at(tl, 0)->mode[TL_SYNC].sent, 16);
	tl_free(tl);
}

/* Workers' parts of different widths merge at the coarser one. */
static void test_merge(void **state)
{
	struct timeline *all = tl_new(T0, 1);
	(void)state;
	assert_non_null(all);
	struct timeline *a = tl_new_like(all), *b = tl_new_like(all);
	assert_non_null(a);
	assert_non_null(b);
	tl_sent(a, TL_SYNC, T0 + 2 * SEC);
	for (int64_t i = 0; i < TL_MAX_INTERVALS + 5; i++)
		tl_sent(b, TL_ASYNC, T0 + i * SEC); /* b coarsens once */
	struct tl_server sv = tl_server_none();
	sv.sampled = true;
	sv.queue_depth = 7;
	tl_server(a, T0, &sv);
	sv.queue_depth = 3;
	tl_server(b, T0, &sv);
	tl_merge(all, a);
	tl_merge(all, b);
	assert_true(tl_width_s(all) == 2.0);
	struct sums s = sum(all);
	assert_int_equal(s.sent[TL_SYNC], 1);
	assert_int_equal(s.sent[TL_ASYNC], TL_MAX_INTERVALS + 5);
	assert_int_equal(tl_at(all, 1)->mode[TL_SYNC].sent, 1); /* 2 s in 2 s intervals */
	assert_true(tl_at(all, 0)->server.sampled);
	assert_int_equal(tl_at(all, 0)->server.queue_depth, 7); /* the largest sample */
	tl_free(a);
	tl_free(b);
	tl_free(all);
}

static void test_percentiles(void **state)
{
	static const int64_t values[] = {0, 1, 63, 64, 1000, 123456, 5000000, 86400000000LL};
	(void)state;
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		struct timeline *tl = tl_new(T0, 1);
		assert_non_null(tl);
		tl_done(tl, TL_SYNC, TL_OK, T0, values[i]);
		double got = (double)tl_hist_percentile(&tl_at(tl, 0)->mode[TL_SYNC].latency, 50);
		double want = (double)values[i];
		/* the bucket's highest value: at or above, within 1/32 */
		assert_true(got >= want);
		assert_true(got <= want + want / 32.0 + 1);
		tl_free(tl);
	}
	struct timeline *tl = tl_new(T0, 1);
	assert_non_null(tl);
	for (int64_t v = 1; v <= 100; v++)
		tl_done(tl, TL_SYNC, TL_OK, T0, v * 1000);
	const struct tl_hist *h = &tl_at(tl, 0)->mode[TL_SYNC].latency;
	double p50 = (double)tl_hist_percentile(h, 50), p99 = (double)tl_hist_percentile(h, 99);
	assert_true(fabs(p50 - 50000) <= 50000 / 32.0 + 1);
	assert_true(fabs(p99 - 99000) <= 99000 / 32.0 + 1);
	struct tl_hist empty;
	memset(&empty, 0, sizeof(empty));
	assert_int_equal(tl_hist_percentile(&empty, 99), 0);
	tl_free(tl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_events_land_in_their_interval),
	    cmocka_unit_test(test_outcomes),
	    cmocka_unit_test(test_long_run_coarsens),
	    cmocka_unit_test(test_merge),
	    cmocka_unit_test(test_percentiles),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
