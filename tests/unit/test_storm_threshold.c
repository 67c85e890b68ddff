/*
 * test_storm_threshold: consuma-storm's --threshold expressions
 * (tools/storm/threshold.h): one table of expressions that parse, with
 * what they mean (series, statistic, percentile, operator, limit in ms or
 * as a fraction); one of expressions that must not, each with a reason;
 * and evaluation against made-up results: pass, fail, the boundary of each
 * operator, and no samples.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <string.h>
#include "threshold.h"

static const struct {
	const char *text;
	enum threshold_series series;
	enum threshold_stat stat;
	double pct;
	enum threshold_op op;
	double limit;
} goods[] = {
    {"async_accept.p99<50ms", TH_ASYNC_ACCEPT, TH_PCT, 99, TH_LT, 50},
    {"sync_response.p95<200ms", TH_SYNC_RESPONSE, TH_PCT, 95, TH_LT, 200},
    {"time_to_callback.p99<2s", TH_TIME_TO_CALLBACK, TH_PCT, 99, TH_LT, 2000},
    {"sync.failed_rate<0.01", TH_SYNC_RATE, TH_FAILED_RATE, 0, TH_LT, 0.01},
    {"async.refused_rate<0.05", TH_ASYNC_RATE, TH_REFUSED_RATE, 0, TH_LT, 0.05},
    {"async.refused_rate<=5%", TH_ASYNC_RATE, TH_REFUSED_RATE, 0, TH_LE, 0.05},
    {"sync_response.p99.9<1.5s", TH_SYNC_RESPONSE, TH_PCT, 99.9, TH_LT, 1500},
    {"sync_response.p999<1s", TH_SYNC_RESPONSE, TH_PCT, 99.9, TH_LT, 1000},
    {"sync_response.p9999<1s", TH_SYNC_RESPONSE, TH_PCT, 99.99, TH_LT, 1000},
    {"sync_response.p50 >= 250us", TH_SYNC_RESPONSE, TH_PCT, 50, TH_GE, 0.25},
    {"async_accept.max>0ms", TH_ASYNC_ACCEPT, TH_MAX, 0, TH_GT, 0},
    {"async_accept.min<=.5ms", TH_ASYNC_ACCEPT, TH_MIN, 0, TH_LE, 0.5},
    {"async_accept.mean<10ms", TH_ASYNC_ACCEPT, TH_MEAN, 0, TH_LT, 10},
    {"sync.failed_rate<1", TH_SYNC_RATE, TH_FAILED_RATE, 0, TH_LT, 1},
};

static void test_parse_good(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(goods) / sizeof(goods[0]); i++) {
		struct threshold t;
		char why[128] = "";
		print_message("good %zu: %s\n", i, goods[i].text);
		assert_true(threshold_parse(goods[i].text, &t, why, sizeof(why)));
		assert_string_equal(t.text, goods[i].text);
		assert_int_equal(t.series, goods[i].series);
		assert_int_equal(t.stat, goods[i].stat);
		assert_int_equal(t.op, goods[i].op);
		assert_true(fabs(t.limit - goods[i].limit) < 1e-9);
		if (t.stat == TH_PCT)
			assert_true(fabs(t.pct - goods[i].pct) < 1e-9);
	}
}

static const struct {
	const char *text;
	const char *why; /* the reason names this */
} bads[] = {
    {"", "expected"},
    {"async_accept", "expected"},
    {"nope.p99<5ms", "series"},
    {"async_accept.p99", "operator"},
    {"async_accept.p99=5ms", "operator"},
    {"async_accept.p99<", "number"},
    {"async_accept.p99<ms", "number"},
    {"async_accept.p99<-1ms", "number"},
    {"async_accept.p99<1.2.3ms", "number"},
    {"async_accept.p99<5", "unit"},
    {"async_accept.p99<5h", "unit"},
    {"async_accept.p99<5ms ", "unit"},
    {"async_accept.p100<5ms", "below 100"},
    {"async_accept.p0<5ms", "above 0"},
    {"async_accept.p<5ms", "pN"},
    {"async_accept.pxx<5ms", "percentile"},
    {"async_accept.avg<5ms", "pN"},
    {"async_accept.failed_rate<0.1", "pN"},
    {"sync.p99<5ms", "failed_rate"},
    {"sync.failed_rate<1.5", "at most 1"},
    {"sync.failed_rate<150%", "at most 1"},
    {"sync.failed_rate<0.1s", "fraction"},
    {"sync.failed<0.1", "failed_rate"},
    {"async_accept.p99<99999999999999999999999999999999ms", "number"},
};

static void test_parse_bad(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		struct threshold t;
		char why[128] = "";
		print_message("bad %zu: %s\n", i, bads[i].text);
		assert_false(threshold_parse(bads[i].text, &t, why, sizeof(why)));
		assert_non_null(strstr(why, bads[i].why));
	}
	char long_text[200];
	memset(long_text, 'a', sizeof(long_text) - 1);
	long_text[sizeof(long_text) - 1] = '\0';
	struct threshold t;
	char why[128];
	assert_false(threshold_parse(long_text, &t, why, sizeof(why)));
	assert_false(threshold_parse(NULL, &t, why, sizeof(why)));
}

/* sync: 100 successes at 1..100 ms, 10 refused and 5 other failures of 115
 * sent; async: ran, nothing accepted. */
static void results(struct result_mode *s, struct result_mode *a)
{
	memset(s, 0, sizeof(*s));
	memset(a, 0, sizeof(*a));
	s->ran = true;
	s->sent = 115;
	s->succeeded = 100;
	s->failed = 15;
	s->cause[CAUSE_HTTP_503] = 10;
	s->cause[CAUSE_TIMEOUT] = 5;
	for (int v = 1; v <= 100; v++)
		hist_record(&s->latency, v * 1000);
	a->ran = true;
	a->is_async = true;
	a->sent = 3;
	a->failed = 3;
	a->cause[CAUSE_HTTP_429] = 3;
}

static void test_eval(void **state)
{
	static const struct {
		const char *text;
		bool ok;
		bool have;
		double actual;
	} cases[] = {
	    {"sync_response.p99<100ms", true, true, 99},
	    {"sync_response.p99<98ms", false, true, 99},
	    {"sync_response.p99>98ms", true, true, 99},
	    /* max is exact: each operator at its boundary */
	    {"sync_response.max<100ms", false, true, 100},
	    {"sync_response.max<=100ms", true, true, 100},
	    {"sync_response.max>100ms", false, true, 100},
	    {"sync_response.max>=100ms", true, true, 100},
	    {"sync_response.max<=0.1s", true, true, 100},
	    {"sync_response.p50<0.051s", true, true, 50},
	    {"sync_response.min>=1ms", true, true, 1},
	    {"sync_response.mean<51ms", true, true, 50.5},
	    {"sync.failed_rate<0.2", true, true, 15.0 / 115},
	    {"sync.failed_rate<0.1", false, true, 15.0 / 115},
	    {"sync.refused_rate<10%", true, true, 10.0 / 115},
	    {"async.refused_rate<0.5", false, true, 1.0},
	    /* no samples: fails, whatever the limit */
	    {"async_accept.p99<1s", false, false, 0},
	    {"time_to_callback.p99<100s", false, false, 0},
	};
	struct result_mode s, a;
	(void)state;
	results(&s, &a);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct threshold t;
		char why[128];
		print_message("eval %zu: %s\n", i, cases[i].text);
		assert_true(threshold_parse(cases[i].text, &t, why, sizeof(why)));
		struct threshold_result r = threshold_eval(&t, &s, &a);
		assert_int_equal(r.ok, cases[i].ok);
		assert_int_equal(r.have, cases[i].have);
		if (r.have)
			assert_true(fabs(r.actual - cases[i].actual) <
			            cases[i].actual / 100 + 1e-9);
	}
	/* a mode that did not run */
	struct threshold t;
	char why[128];
	a.ran = false;
	assert_true(threshold_parse("async.failed_rate<1", &t, why, sizeof(why)));
	assert_true(threshold_needs_async(&t));
	assert_false(threshold_eval(&t, &s, &a).ok);
	assert_false(threshold_eval(&t, &s, NULL).ok);
	assert_string_equal(threshold_unit(&t), "");
	assert_true(threshold_parse("sync_response.p99<1s", &t, why, sizeof(why)));
	assert_false(threshold_needs_async(&t));
	assert_string_equal(threshold_unit(&t), "ms");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_good),
	    cmocka_unit_test(test_parse_bad),
	    cmocka_unit_test(test_eval),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
