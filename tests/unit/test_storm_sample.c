/*
 * test_storm_sample: what consuma-storm reads from the server while it
 * storms (tools/storm/sample.h): /healthz bodies, healthy, degraded and
 * foreign, and Prometheus text from /metrics. The sampler thread itself is
 * exercised by the integration tests against a real stack.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>
#include "sample.h"

static void test_health(void **state)
{
	static const struct {
		const char *body;
		bool ok;
		int64_t queue, busy, inflight;
	} cases[] = {
	    {"{\"status\":\"ok\",\"queue_depth\":12,\"active_workers\":3,\"db_connected\":true,"
	     "\"deliverer\":{\"workers\":4,\"busy_workers\":3,\"inflight\":2}}",
	     true, 12, 3, 2},
	    /* degraded: the database is gone, queue_depth is null */
	    {"{\"status\":\"degraded\",\"queue_depth\":null,\"active_workers\":0}", true, -1, 0,
	     -1},
	    /* another server's health: an object without our fields */
	    {"{\"healthy\":true}", true, -1, -1, -1},
	    {"{\"queue_depth\":\"12\"}", true, -1, -1, -1},
	    {"[1,2,3]", false, -1, -1, -1},
	    {"ok", false, -1, -1, -1},
	    {"", false, -1, -1, -1},
	    {"{\"queue_depth\":1", false, -1, -1, -1},
	    {"{\"queue_depth\":1} trailing", false, -1, -1, -1},
	};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct tl_server sv;
		print_message("health %zu: %s\n", i, cases[i].body);
		bool ok = sample_parse_health(cases[i].body, strlen(cases[i].body), &sv);
		assert_int_equal(ok, cases[i].ok);
		assert_int_equal(sv.sampled, cases[i].ok);
		assert_int_equal(sv.queue_depth, cases[i].queue);
		assert_int_equal(sv.active_workers, cases[i].busy);
		assert_int_equal(sv.inflight, cases[i].inflight);
	}
}

static void test_metrics(void **state)
{
	static const char text[] = "# HELP consuma_queue_depth Jobs not finished.\n"
	                           "# TYPE consuma_queue_depth gauge\n"
	                           "consuma_queue_depth 42\n"
	                           "consuma_oldest_pending_age_seconds_total 9\n"
	                           "consuma_oldest_pending_age_seconds 1.5\n";
	struct tl_server sv = tl_server_none();
	(void)state;
	sample_parse_metrics(text, &sv);
	assert_true(sv.sampled);
	assert_true(sv.oldest_age_s == 1.5); /* not the _total that shares the prefix */
	assert_int_equal(sv.queue_depth, 42);
	/* /healthz's figure wins over /metrics' */
	sv = tl_server_none();
	sv.queue_depth = 7;
	sample_parse_metrics(text, &sv);
	assert_int_equal(sv.queue_depth, 7);
	/* nothing we know */
	sv = tl_server_none();
	sample_parse_metrics("up 1\nconsuma_queue_depth NaN-ish\n", &sv);
	assert_false(sv.sampled);
	assert_int_equal(sv.queue_depth, -1);
	assert_true(sv.oldest_age_s < 0);
	sample_parse_metrics("", &sv);
	assert_false(sv.sampled);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_health),
	    cmocka_unit_test(test_metrics),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
