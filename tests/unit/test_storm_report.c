/*
 * test_storm_report: consuma-storm's outputs (tools/storm/report.h) from
 * made-up results, no server: the JSON parses and its timeline's columns
 * sum to the totals, the CSV has a header and a row per interval, the
 * terminal shows the timeline table only past a few intervals and names
 * the thresholds, and the HTML page holds every chart.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "report.h"

#define T0  1000000000LL
#define SEC 1000000000LL

struct fixture {
	struct opts o;
	struct report_run r;
	struct timeline *tl;
	char dir[64];
};

/* n_intervals of a mixed storm: each second 4 sync (1 refused) and 4 async
 * (all accepted, called back a second later). */
static void fill(struct fixture *f, int n_intervals)
{
	char err[128];
	char *argv[] = {"consuma-storm",
	                "--mode",
	                "mixed",
	                "--threshold",
	                "async_accept.p99<1s",
	                "--threshold",
	                "sync.refused_rate<0.1",
	                NULL};
	assert_int_equal(opts_parse(7, argv, &f->o, err, sizeof(err)), OPTS_OK);
	memset(&f->r, 0, sizeof(f->r));
	f->r.o = &f->o;
	snprintf(f->r.started_at, sizeof(f->r.started_at), "2026-01-01T00:00:00.000Z");
	f->tl = tl_new(T0, 1);
	assert_non_null(f->tl);
	f->r.tl = f->tl;
	struct result_mode *s = &f->r.sync, *a = &f->r.async;
	s->ran = a->ran = true;
	a->is_async = true;
	for (int k = 0; k < n_intervals; k++) {
		int64_t at = T0 + k * SEC + SEC / 10;
		for (int i = 0; i < 4; i++) {
			tl_sent(f->tl, TL_SYNC, at);
			tl_sent(f->tl, TL_ASYNC, at);
			s->sent++;
			a->sent++;
			if (i == 0) {
				tl_done(f->tl, TL_SYNC, TL_REFUSED, at, 0);
				s->failed++;
				s->cause[CAUSE_HTTP_503]++;
			} else {
				tl_done(f->tl, TL_SYNC, TL_OK, at, 200000);
				s->succeeded++;
				hist_record(&s->latency, 200000);
			}
			tl_done(f->tl, TL_ASYNC, TL_OK, at, 5000);
			a->succeeded++;
			hist_record(&a->latency, 5000);
			tl_callback(f->tl, at + SEC);
			a->cb.expected++;
			a->cb.received++;
			hist_record(&a->callback_latency, 1000000);
		}
		struct tl_server sv = tl_server_none();
		sv.sampled = true;
		sv.queue_depth = k;
		sv.active_workers = 2;
		tl_server(f->tl, at, &sv);
	}
	s->duration_s = a->duration_s = n_intervals;
	f->r.ok = true;
	for (int k = 0; k < f->o.n_thresholds; k++) {
		f->r.th[k] = threshold_eval(&f->o.thresholds[k], s, a);
		f->r.th_failed += !f->r.th[k].ok;
	}
	f->r.exit_status = f->r.th_failed ? 99 : 0;
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_storm_report.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
}

static void done(struct fixture *f)
{
	const char *names[] = {"r.json", "r.csv", "r.html"};
	char p[128];
	for (size_t k = 0; k < 3; k++) {
		snprintf(p, sizeof(p), "%s/%s", f->dir, names[k]);
		unlink(p);
	}
	rmdir(f->dir);
	tl_free(f->tl);
}

static char *slurp(const char *path)
{
	FILE *fp = fopen(path, "r");
	assert_non_null(fp);
	static char text[1 << 20];
	size_t n = fread(text, 1, sizeof(text) - 1, fp);
	text[n] = '\0';
	fclose(fp);
	return text;
}

static int64_t get_int(struct json_object *o, const char *a, const char *b)
{
	struct json_object *x = NULL, *y = NULL;
	assert_true(json_object_object_get_ex(o, a, &x));
	assert_true(json_object_object_get_ex(x, b, &y));
	return json_object_get_int64(y);
}

static void test_json_timeline_sums(void **state)
{
	struct fixture f;
	char path[128];
	(void)state;
	fill(&f, 6);
	snprintf(path, sizeof(path), "%s/r.json", f.dir);
	assert_int_equal(report_json(path, &f.r), REPORT_OK);
	struct json_object *j = json_object_from_file(path);
	assert_non_null(j);
	struct json_object *tl = NULL;
	assert_true(json_object_object_get_ex(j, "timeline", &tl));
	assert_int_equal(json_object_array_length(tl), 7); /* the last callbacks land at 6.1 s */
	static const struct {
		const char *mode, *col, *total;
	} sums[] = {
	    {"sync", "sent", "sent"},       {"sync", "ok", "succeeded"},
	    {"sync", "refused", "refused"}, {"sync", "failed", "failed"},
	    {"async", "sent", "sent"},      {"async", "ok", "succeeded"},
	};
	for (size_t k = 0; k < sizeof(sums) / sizeof(sums[0]); k++) {
		int64_t sum = 0;
		for (size_t i = 0; i < json_object_array_length(tl); i++)
			sum += get_int(json_object_array_get_idx(tl, i), sums[k].mode, sums[k].col);
		assert_int_equal(sum, get_int(j, sums[k].mode, sums[k].total));
	}
	int64_t cb = 0;
	for (size_t i = 0; i < json_object_array_length(tl); i++)
		cb += get_int(json_object_array_get_idx(tl, i), "async", "callbacks");
	struct json_object *async = NULL;
	assert_true(json_object_object_get_ex(j, "async", &async));
	assert_int_equal(cb, get_int(async, "callbacks", "received"));
	assert_int_equal(get_int(json_object_array_get_idx(tl, 3), "server", "queue_depth"), 3);
	assert_int_equal(get_int(j, "settings", "interval_s"), 1);
	struct json_object *th = NULL;
	assert_true(json_object_object_get_ex(j, "thresholds", &th));
	assert_int_equal(json_object_array_length(th), 2);
	/* refused_rate is 0.25: the second threshold fails */
	struct json_object *ok = NULL;
	assert_true(json_object_object_get_ex(json_object_array_get_idx(th, 1), "ok", &ok));
	assert_false(json_object_get_boolean(ok));
	json_object_put(j);
	done(&f);
}

static void test_csv(void **state)
{
	struct fixture f;
	char path[128];
	(void)state;
	fill(&f, 3);
	snprintf(path, sizeof(path), "%s/r.csv", f.dir);
	assert_int_equal(report_csv(path, &f.r), REPORT_OK);
	const char *text = slurp(path);
	assert_int_equal(strncmp(text, "t_s,sync_sent,sync_ok,sync_refused,sync_failed,", 47), 0);
	int rows = 0;
	for (const char *p = text; *p; p++)
		rows += *p == '\n';
	assert_int_equal(rows, 1 + 4); /* header, 3 intervals and the last callbacks' */
	assert_non_null(strstr(text, "\n1.000,4,3,1,1,"));
	done(&f);
}

static void test_terminal(void **state)
{
	static const struct {
		int intervals;
		bool table;
	} cases[] = {{2, false}, {3, false}, {4, true}, {40, true}};
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fixture f;
		char *text = NULL;
		size_t len = 0;
		fill(&f, cases[i].intervals);
		FILE *m = open_memstream(&text, &len);
		assert_non_null(m);
		report_terminal(m, &f.r, false);
		fclose(m);
		/* intervals = fill's seconds + 1 for the callbacks; the table from 5 */
		assert_int_equal(strstr(text, "timeline (") != NULL, cases[i].table);
		assert_non_null(strstr(text, "mode mixed (50 % async)"));
		assert_non_null(strstr(text, "  - ok async_accept.p99<1s: 5.00 ms\n"));
		assert_non_null(
		    strstr(text, "  - FAILED sync.refused_rate<0.1: 0.2500, 0.1500 past"));
		assert_non_null(strstr(text, "thresholds FAILED (exit 99)"));
		free(text);
		done(&f);
	}
}

static void test_html(void **state)
{
	static const char *const charts[] = {
	    "latency by percentile",
	    "sync throughput by outcome over time",
	    "async throughput by outcome over time",
	    "latency p50 and p99 per mode over time",
	    "queue depth and callbacks over time",
	};
	struct fixture f;
	char path[128], want[96];
	(void)state;
	fill(&f, 5);
	snprintf(path, sizeof(path), "%s/r.html", f.dir);
	assert_int_equal(report_html(path, &f.r), REPORT_OK);
	const char *text = slurp(path);
	for (size_t k = 0; k < sizeof(charts) / sizeof(charts[0]); k++) {
		snprintf(want, sizeof(want), "aria-label=\"%s\"", charts[k]);
		assert_non_null(strstr(text, want));
	}
	assert_null(strstr(text, "<script"));
	/* self-contained: nothing loaded from elsewhere */
	assert_null(strstr(text, " src="));
	assert_null(strstr(text, "href="));
	assert_null(strstr(text, "@import"));
	assert_non_null(strstr(text, "a threshold failed"));
	done(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_json_timeline_sums),
	    cmocka_unit_test(test_csv),
	    cmocka_unit_test(test_terminal),
	    cmocka_unit_test(test_html),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
