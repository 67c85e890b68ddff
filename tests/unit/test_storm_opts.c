/*
 * test_storm_opts: consuma-storm's command line (tools/storm/opts.h).
 *
 * The defaults are the original load generator's (ORIGIN.md); then one
 * table of argument vectors: each option's good values and its bounds, and
 * the bad values (empty, sign, junk, overflow, out of range, wrong form),
 * each of which must be a usage error whose message names the option. The
 * options of the storm over time (--mode mixed, --mix, --interval,
 * --threshold, --sweep, --compare, --csv) include the combinations that
 * only make sense together.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "opts.h"

#define MAXARGS 12

/* opts_parse takes argv as main() gets it: writable strings that live on
 * and that the parsed options point into. So parse() copies each argument
 * here, never reused, as long-lived as main's argv. */
static char arg_pool[1 << 16];
static size_t arg_pool_used;

static enum opts_result parse(const char *const *args, struct opts *o, char *err, size_t errlen)
{
	char *argv[MAXARGS + 2];
	int argc = 0;

	for (const char *a = "consuma-storm"; a != NULL && argc <= MAXARGS; a = args[argc - 1]) {
		size_t n = strlen(a) + 1;
		assert_true(n <= sizeof(arg_pool) - arg_pool_used);
		argv[argc++] = memcpy(arg_pool + arg_pool_used, a, n);
		arg_pool_used += n;
	}
	argv[argc] = NULL;
	err[0] = '\0';
	return opts_parse(argc, argv, o, err, errlen);
}

static void test_defaults(void **state)
{
	const char *none[] = {NULL};
	struct opts o;
	char err[256];

	(void)state;
	assert_int_equal(parse(none, &o, err, sizeof(err)), OPTS_OK);
	/* ORIGIN.md's load generator, with 127.0.0.1 for localhost */
	assert_string_equal(o.server_url, "http://127.0.0.1:8000");
	assert_int_equal(o.num_requests, 100);
	assert_int_equal(o.concurrency, 20);
	assert_int_equal(o.mode, OPTS_BOTH);
	assert_int_equal(o.iterations, 10000);
	assert_int_equal(o.callback_port, 9000);
	assert_true(o.timeout_s == 120.0);
	/* ours */
	assert_int_equal(o.threads, 1);
	assert_string_equal(o.callback_host, "127.0.0.1");
	assert_true(o.callback_wait_s == 60.0);
	assert_true(o.rate == 0.0);
	assert_null(o.secret);
	assert_null(o.api_key);
	assert_null(o.json_path);
	assert_null(o.html_path);
	assert_int_equal(o.seed, 1);
	assert_false(o.raw);
	assert_true(o.progress);
	assert_false(o.dry_run);
	assert_true(o.mix == 0.5);
	assert_true(o.interval_s == 1.0);
	assert_int_equal(o.n_thresholds, 0);
	assert_int_equal(o.n_sweep, 0);
	assert_int_equal(o.n_compare, 0);
	assert_null(o.csv_path);
	assert_string_equal(opts_mode_name(OPTS_MIXED), "mixed");
	assert_non_null(strstr(opts_usage(), "(default 0.5)"));
	assert_non_null(strstr(opts_usage(), "(default 1)"));
	assert_string_equal(opts_mode_name(OPTS_SYNC), "sync");
	assert_string_equal(opts_mode_name(OPTS_ASYNC), "async");
	assert_string_equal(opts_mode_name(OPTS_BOTH), "both");
	assert_string_equal(opts_mode_name((enum opts_mode)0), "?");
	/* the help text states the same defaults */
	assert_non_null(strstr(opts_usage(), "default http://127.0.0.1:8000"));
	assert_non_null(strstr(opts_usage(), "(default 100)"));
	assert_non_null(strstr(opts_usage(), "(default 20)"));
	assert_non_null(strstr(opts_usage(), "default both"));
	assert_non_null(strstr(opts_usage(), "(default 10000)"));
	assert_non_null(strstr(opts_usage(), "(default 9000)"));
	assert_non_null(strstr(opts_usage(), "(default 120)"));
}

/* Which field a good case checks. */
enum field {
	F_NONE,
	F_URL,
	F_NUM,
	F_CONC,
	F_THREADS,
	F_MODE,
	F_ITER,
	F_PORT,
	F_CBHOST,
	F_CBWAIT,
	F_TIMEOUT,
	F_RATE,
	F_SECRET,
	F_API_KEY,
	F_JSON,
	F_HTML,
	F_SEED,
	F_RAW,
	F_PROGRESS,
	F_DRY,
	F_MIX,
	F_INTERVAL,
	F_THRESHOLDS, /* u: how many; s: the last one's text */
	F_SWEEP,      /* u: how many; d: the last rate */
	F_COMPARE,    /* u: how many; s: the last file */
	F_CSV,
};

struct good_case {
	const char *args[MAXARGS + 1];
	enum field field;
	uint64_t u; /* integer fields, mode, booleans */
	double d;   /* seconds and rates */
	const char *s;
};

#define SECRET      "whsec_c2VjcmV0LWtleS1mb3ItdGVzdHM="
#define API_KEY_64  "ck_0123456789abcdef0123456789abcdef0123456789abcdef0123456789abc"
#define API_KEY_256 API_KEY_64 API_KEY_64 API_KEY_64 API_KEY_64

static const struct good_case goods[] = {
    {{"--server-url", "http://127.0.0.1:8000", NULL}, F_URL, 0, 0, "http://127.0.0.1:8000"},
    {{"--server-url", "https://api.example/", NULL}, F_URL, 0, 0, "https://api.example/"},
    {{"--server-url=http://[::1]:8080", NULL}, F_URL, 0, 0, "http://[::1]:8080"},
    {{"--num-requests", "1", NULL}, F_NUM, 1, 0, NULL},
    {{"--num-requests", "10000000", NULL}, F_NUM, 10000000, 0, NULL},
    {{"--num-requests=250", NULL}, F_NUM, 250, 0, NULL},
    {{"--num-requests", "007", NULL}, F_NUM, 7, 0, NULL},
    {{"--concurrency", "1", NULL}, F_CONC, 1, 0, NULL},
    {{"--concurrency", "10000", NULL}, F_CONC, 10000, 0, NULL},
    {{"--threads", "1", NULL}, F_THREADS, 1, 0, NULL},
    {{"--threads", "64", NULL}, F_THREADS, 64, 0, NULL},
    {{"--mode", "sync", NULL}, F_MODE, OPTS_SYNC, 0, NULL},
    {{"--mode", "async", NULL}, F_MODE, OPTS_ASYNC, 0, NULL},
    {{"--mode", "both", NULL}, F_MODE, OPTS_BOTH, 0, NULL},
    {{"--mode", "mixed", NULL}, F_MODE, OPTS_MIXED, 0, NULL},
    {{"--mode", "mixed", NULL}, F_MIX, 0, 0.5, NULL},
    {{"--mix", "0.25", "--mode", "mixed", NULL}, F_MIX, 0, 0.25, NULL},
    {{"--mode", "mixed", "--mix", "0.001", NULL}, F_MIX, 0, 0.001, NULL},
    {{"--mode", "mixed", "--mix", ".999", NULL}, F_MIX, 0, 0.999, NULL},
    {{"--interval", "0.05", NULL}, F_INTERVAL, 0, 0.05, NULL},
    {{"--interval", "3600", NULL}, F_INTERVAL, 0, 3600, NULL},
    {{"--interval", "2.5", NULL}, F_INTERVAL, 0, 2.5, NULL},
    {{"--threshold", "async_accept.p99<50ms", NULL}, F_THRESHOLDS, 1, 0, "async_accept.p99<50ms"},
    {{"--threshold", "sync_response.p95<200ms", "--threshold", "time_to_callback.p99<2s", NULL},
     F_THRESHOLDS,
     2,
     0,
     "time_to_callback.p99<2s"},
    {{"--threshold=sync.failed_rate<0.01", NULL}, F_THRESHOLDS, 1, 0, "sync.failed_rate<0.01"},
    {{"--threshold", "async.refused_rate<0.05", NULL},
     F_THRESHOLDS,
     1,
     0,
     "async.refused_rate<0.05"},
    {{"--mode", "sync", "--threshold", "sync_response.max <= 1s", NULL},
     F_THRESHOLDS,
     1,
     0,
     "sync_response.max <= 1s"},
    {{"--mode", "mixed", "--threshold", "async_accept.mean>=1us", NULL},
     F_THRESHOLDS,
     1,
     0,
     "async_accept.mean>=1us"},
    {{"--sweep", "10", NULL}, F_SWEEP, 1, 10, NULL},
    {{"--sweep", "10,50.5,100", NULL}, F_SWEEP, 3, 100, NULL},
    {{"--sweep", "0.001,10000000", NULL}, F_SWEEP, 2, 10000000, NULL},
    {{"--sweep", "1,2", "--num-requests", "5000000", NULL}, F_SWEEP, 2, 2, NULL},
    {{"--sweep",
      "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32",
      NULL},
     F_SWEEP,
     32,
     32,
     NULL},
    {{"--compare", "a.json", "b.json", "--html", "c.html", NULL}, F_COMPARE, 2, 0, "b.json"},
    {{"--html", "c.html", "--compare=a.json", "b.json", "x.json", NULL}, F_COMPARE, 3, 0, "x.json"},
    {{"--csv", "t.csv", NULL}, F_CSV, 0, 0, "t.csv"},
    {{"--iterations", "1", NULL}, F_ITER, 1, 0, NULL},
    {{"--iterations", "1000000", NULL}, F_ITER, 1000000, 0, NULL},
    {{"--callback-port", "1", NULL}, F_PORT, 1, 0, NULL},
    {{"--callback-port", "65535", NULL}, F_PORT, 65535, 0, NULL},
    {{"--callback-host", "localhost", NULL}, F_CBHOST, 0, 0, "localhost"},
    {{"--callback-host", "10.1.2.3", NULL}, F_CBHOST, 0, 0, "10.1.2.3"},
    {{"--callback-host", "::1", NULL}, F_CBHOST, 0, 0, "::1"},
    {{"--callback-host", "[fe80::1]", NULL}, F_CBHOST, 0, 0, "[fe80::1]"},
    {{"--callback-host", "my-host.example", NULL}, F_CBHOST, 0, 0, "my-host.example"},
    {{"--callback-wait", "0", NULL}, F_CBWAIT, 0, 0, NULL},
    {{"--callback-wait", "86400", NULL}, F_CBWAIT, 0, 86400, NULL},
    {{"--callback-wait", "0.5", NULL}, F_CBWAIT, 0, 0.5, NULL},
    {{"--timeout", "0.001", NULL}, F_TIMEOUT, 0, 0.001, NULL},
    {{"--timeout", ".5", NULL}, F_TIMEOUT, 0, 0.5, NULL},
    {{"--timeout", "86400", NULL}, F_TIMEOUT, 0, 86400, NULL},
    {{"--timeout", "1e2", NULL}, F_TIMEOUT, 0, 100, NULL},
    {{"--rate", "0.001", NULL}, F_RATE, 0, 0.001, NULL},
    {{"--rate", "250.5", NULL}, F_RATE, 0, 250.5, NULL},
    {{"--rate", "10000000", NULL}, F_RATE, 0, 10000000, NULL},
    {{"--secret", SECRET, NULL}, F_SECRET, 0, 0, SECRET},
    {{"--api-key", "ck_0123abcd", NULL}, F_API_KEY, 0, 0, "ck_0123abcd"},
    {{"--api-key=a-b.c_d~e+f/g==", NULL}, F_API_KEY, 0, 0, "a-b.c_d~e+f/g=="},
    {{"--api-key", API_KEY_256, NULL}, F_API_KEY, 0, 0, API_KEY_256},
    {{"--json", "out.json", NULL}, F_JSON, 0, 0, "out.json"},
    {{"--html", "/tmp/r.html", NULL}, F_HTML, 0, 0, "/tmp/r.html"},
    {{"--seed", "0", NULL}, F_SEED, 0, 0, NULL},
    {{"--seed", "18446744073709551615", NULL}, F_SEED, UINT64_MAX, 0, NULL},
    {{"--raw", NULL}, F_RAW, 1, 0, NULL},
    {{"--raw", "--mode", "sync", NULL}, F_RAW, 1, 0, NULL},
    {{"--no-progress", NULL}, F_PROGRESS, 0, 0, NULL},
    {{"--dry-run", NULL}, F_DRY, 1, 0, NULL},
    /* the last one wins */
    {{"--concurrency", "5", "--concurrency", "6", NULL}, F_CONC, 6, 0, NULL},
    {{"--mode", "async", "--mode", "sync", NULL}, F_MODE, OPTS_SYNC, 0, NULL},
    /* "--" ends the options */
    {{"--num-requests", "3", "--", NULL}, F_NUM, 3, 0, NULL},
};

static void test_good(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(goods) / sizeof(goods[0]); i++) {
		const struct good_case *c = &goods[i];
		struct opts o;
		char err[256];
		enum opts_result r = parse(c->args, &o, err, sizeof(err));

		print_message("good %zu: %s %s -> %d '%s'\n", i, c->args[0],
		              c->args[1] ? c->args[1] : "", (int)r, err);
		assert_int_equal(r, OPTS_OK);
		switch (c->field) {
		case F_NONE:
			break;
		case F_URL:
			assert_string_equal(o.server_url, c->s);
			break;
		case F_NUM:
			assert_int_equal(o.num_requests, c->u);
			break;
		case F_CONC:
			assert_int_equal(o.concurrency, c->u);
			break;
		case F_THREADS:
			assert_int_equal(o.threads, c->u);
			break;
		case F_MODE:
			assert_int_equal(o.mode, c->u);
			break;
		case F_ITER:
			assert_int_equal(o.iterations, c->u);
			break;
		case F_PORT:
			assert_int_equal(o.callback_port, c->u);
			break;
		case F_CBHOST:
			assert_string_equal(o.callback_host, c->s);
			break;
		case F_CBWAIT:
			assert_true(o.callback_wait_s == c->d);
			break;
		case F_TIMEOUT:
			assert_true(o.timeout_s == c->d);
			break;
		case F_RATE:
			assert_true(o.rate == c->d);
			break;
		case F_SECRET:
			assert_string_equal(o.secret, c->s);
			break;
		case F_API_KEY:
			assert_string_equal(o.api_key, c->s);
			break;
		case F_JSON:
			assert_string_equal(o.json_path, c->s);
			break;
		case F_HTML:
			assert_string_equal(o.html_path, c->s);
			break;
		case F_SEED:
			assert_int_equal(o.seed, c->u);
			break;
		case F_RAW:
			assert_true(o.raw);
			assert_int_equal(o.mode, OPTS_SYNC); /* --raw means sync */
			break;
		case F_PROGRESS:
			assert_false(o.progress);
			break;
		case F_DRY:
			assert_true(o.dry_run);
			break;
		case F_MIX:
			assert_int_equal(o.mode, OPTS_MIXED);
			assert_true(o.mix == c->d);
			break;
		case F_INTERVAL:
			assert_true(o.interval_s == c->d);
			break;
		case F_THRESHOLDS:
			assert_int_equal(o.n_thresholds, c->u);
			assert_string_equal(o.thresholds[o.n_thresholds - 1].text, c->s);
			break;
		case F_SWEEP:
			assert_int_equal(o.n_sweep, c->u);
			assert_true(o.sweep[o.n_sweep - 1] == c->d);
			break;
		case F_COMPARE:
			assert_int_equal(o.n_compare, c->u);
			assert_string_equal(o.compare[o.n_compare - 1], c->s);
			assert_string_equal(o.html_path, "c.html");
			break;
		case F_CSV:
			assert_string_equal(o.csv_path, c->s);
			break;
		}
	}
}

struct bad_case {
	const char *args[MAXARGS + 1];
	const char *names; /* the message must contain this */
};

static const struct bad_case bads[] = {
    {{"--server-url", "", NULL}, "--server-url"},
    {{"--server-url", "127.0.0.1:8000", NULL}, "--server-url"},
    {{"--server-url", "ftp://x/", NULL}, "--server-url"},
    {{"--server-url", "http:/x", NULL}, "--server-url"},
    {{"--server-url", "http://", NULL}, "--server-url"},
    {{"--server-url", "https://:8000", NULL}, "--server-url"},
    {{"--timeout", "0x10", NULL}, "--timeout"},
    {{"--callback-wait", "0x1p3", NULL}, "--callback-wait"},
    {{"--num-requests", "", NULL}, "--num-requests"},
    {{"--num-requests", "0", NULL}, "--num-requests"},
    {{"--num-requests", "10000001", NULL}, "--num-requests"},
    {{"--num-requests", "-1", NULL}, "--num-requests"},
    {{"--num-requests", "+5", NULL}, "--num-requests"},
    {{"--num-requests", " 5", NULL}, "--num-requests"},
    {{"--num-requests", "5 ", NULL}, "--num-requests"},
    {{"--num-requests", "12x", NULL}, "--num-requests"},
    {{"--num-requests", "1.5", NULL}, "--num-requests"},
    {{"--num-requests", "1e3", NULL}, "--num-requests"},
    {{"--num-requests", "0x10", NULL}, "--num-requests"},
    {{"--num-requests", "99999999999999999999999", NULL}, "--num-requests"},
    {{"--num-requests=", NULL}, "--num-requests"},
    {{"--concurrency", "0", NULL}, "--concurrency"},
    {{"--concurrency", "10001", NULL}, "--concurrency"},
    {{"--concurrency", "-20", NULL}, "--concurrency"},
    {{"--concurrency", "4294967316", NULL}, "--concurrency"}, /* 20 mod 2^32 */
    {{"--concurrency", "abc", NULL}, "--concurrency"},
    {{"--threads", "0", NULL}, "--threads"},
    {{"--threads", "65", NULL}, "--threads"},
    {{"--mode", "", NULL}, "--mode"},
    {{"--mode", "SYNC", NULL}, "--mode"},
    {{"--mode", "sync ", NULL}, "--mode"},
    {{"--mode", "all", NULL}, "--mode"},
    {{"--iterations", "0", NULL}, "--iterations"},
    {{"--iterations", "1000001", NULL}, "--iterations"},
    {{"--iterations", "-10000", NULL}, "--iterations"},
    {{"--callback-port", "0", NULL}, "--callback-port"},
    {{"--callback-port", "65536", NULL}, "--callback-port"},
    {{"--callback-port", "-1", NULL}, "--callback-port"},
    {{"--callback-port", "9000x", NULL}, "--callback-port"},
    {{"--callback-host", "", NULL}, "--callback-host"},
    {{"--callback-host", "a b", NULL}, "--callback-host"},
    {{"--callback-host", "host/path", NULL}, "--callback-host"},
    {{"--callback-host", "user@host", NULL}, "--callback-host"},
    {{"--callback-wait", "-1", NULL}, "--callback-wait"},
    {{"--callback-wait", "86400.5", NULL}, "--callback-wait"},
    {{"--callback-wait", "nan", NULL}, "--callback-wait"},
    {{"--callback-wait", "", NULL}, "--callback-wait"},
    {{"--timeout", "0", NULL}, "--timeout"},
    {{"--timeout", "0.0009", NULL}, "--timeout"},
    {{"--timeout", "86401", NULL}, "--timeout"},
    {{"--timeout", "-5", NULL}, "--timeout"},
    {{"--timeout", "inf", NULL}, "--timeout"},
    {{"--timeout", "nan", NULL}, "--timeout"},
    {{"--timeout", "1e999", NULL}, "--timeout"},
    {{"--timeout", "10s", NULL}, "--timeout"},
    {{"--timeout", ".", NULL}, "--timeout"},
    {{"--rate", "0", NULL}, "--rate"},
    {{"--rate", "10000001", NULL}, "--rate"},
    {{"--rate", "-1", NULL}, "--rate"},
    {{"--rate", "fast", NULL}, "--rate"},
    {{"--secret", "", NULL}, "--secret"},
    {{"--secret", "c2VjcmV0", NULL}, "--secret"},
    {{"--secret", "whsec_", NULL}, "--secret"},
    {{"--secret", "whsec_!!!notbase64", NULL}, "--secret"},
    {{"--secret", SECRET " " SECRET, NULL}, "--secret"}, /* one secret only */
    {{"--api-key", "", NULL}, "--api-key"},
    {{"--api-key", "ck 01", NULL}, "--api-key"},
    {{"--api-key", "ck_01\n", NULL}, "--api-key"},
    {{"--api-key", "=ck", NULL}, "--api-key"},
    {{"--api-key", "ck=01", NULL}, "--api-key"},
    {{"--api-key", "ck_\"", NULL}, "--api-key"},
    {{"--api-key", API_KEY_256 "a", NULL}, "--api-key"},
    {{"--api-key", NULL}, "--api-key"},
    {{"--json", "", NULL}, "--json"},
    {{"--html", "", NULL}, "--html"},
    {{"--seed", "-1", NULL}, "--seed"},
    {{"--seed", "18446744073709551616", NULL}, "--seed"},
    {{"--seed", "x", NULL}, "--seed"},
    /* a missing value names the option */
    {{"--num-requests", NULL}, "--num-requests"},
    {{"--timeout", NULL}, "--timeout"},
    {{"--mode", NULL}, "--mode"},
    /* unknown options and stray arguments */
    {{"--bogus", NULL}, "--bogus"},
    {{"-x", NULL}, "-x"},
    {{"--raw=1", NULL}, "--raw"},
    {{"stray", NULL}, "stray"},
    {{"--num-requests", "3", "stray", NULL}, "stray"},
    {{"--", "stray", NULL}, "stray"},
    /* --raw is a sync benchmark */
    {{"--raw", "--mode", "async", NULL}, "--raw"},
    {{"--raw", "--mode", "mixed", NULL}, "--raw"},
    /* mixed storms */
    {{"--mode", "Mixed", NULL}, "--mode"},
    {{"--mix", "0.5", NULL}, "--mix"}, /* without --mode mixed */
    {{"--mode", "both", "--mix", "0.5", NULL}, "--mix"},
    {{"--mode", "mixed", "--mix", "0", NULL}, "--mix"},
    {{"--mode", "mixed", "--mix", "1", NULL}, "--mix"},
    {{"--mode", "mixed", "--mix", "1.5", NULL}, "--mix"},
    {{"--mode", "mixed", "--mix", "-0.5", NULL}, "--mix"},
    {{"--mode", "mixed", "--mix", "half", NULL}, "--mix"},
    {{"--mode", "mixed", "--mix", "", NULL}, "--mix"},
    {{"--mode", "mixed", "--mix", NULL}, "--mix"},
    /* the timeline */
    {{"--interval", "0", NULL}, "--interval"},
    {{"--interval", "0.049", NULL}, "--interval"},
    {{"--interval", "3601", NULL}, "--interval"},
    {{"--interval", "1s", NULL}, "--interval"},
    {{"--interval", "-1", NULL}, "--interval"},
    {{"--interval", "nan", NULL}, "--interval"},
    {{"--csv", "", NULL}, "--csv"},
    /* thresholds: each part of the grammar */
    {{"--threshold", "", NULL}, "--threshold"},
    {{"--threshold", "async_accept", NULL}, "--threshold"},
    {{"--threshold", "async_accept.p99", NULL}, "--threshold"},
    {{"--threshold", "async_accept.p99<", NULL}, "--threshold"},
    {{"--threshold", "async_accept.p99<50", NULL}, "--threshold"}, /* no unit */
    {{"--threshold", "async_accept.p99<50min", NULL}, "--threshold"},
    {{"--threshold", "async_accept.p99=50ms", NULL}, "--threshold"},
    {{"--threshold", "async_accept.p99<<50ms", NULL}, "--threshold"},
    {{"--threshold", "async_accept.p99<-5ms", NULL}, "--threshold"},
    {{"--threshold", "async_accept.p99<1.2.3ms", NULL}, "--threshold"},
    {{"--threshold", "async_accept.p100<50ms", NULL}, "--threshold"},
    {{"--threshold", "async_accept.p0<50ms", NULL}, "--threshold"},
    {{"--threshold", "async_accept.px<50ms", NULL}, "--threshold"},
    {{"--threshold", "async_accept.median<50ms", NULL}, "--threshold"},
    {{"--threshold", "async_accept.failed_rate<0.1", NULL}, "--threshold"},
    {{"--threshold", "sync.p99<50ms", NULL}, "--threshold"},
    {{"--threshold", "sync.failed_rate<2", NULL}, "--threshold"},
    {{"--threshold", "sync.failed_rate<0.1ms", NULL}, "--threshold"},
    {{"--threshold", "sync.ok_rate<0.1", NULL}, "--threshold"},
    {{"--threshold", "db_query.p99<5ms", NULL}, "--threshold"},
    {{"--threshold", "async_accept.p99<50ms ", NULL}, "--threshold"},
    /* a threshold on a mode the run does not send */
    {{"--mode", "sync", "--threshold", "async_accept.p99<50ms", NULL}, "--threshold"},
    {{"--threshold", "time_to_callback.p99<2s", "--mode", "sync", NULL}, "--threshold"},
    {{"--mode", "async", "--threshold", "sync.failed_rate<0.01", NULL}, "--threshold"},
    /* sweeps */
    {{"--sweep", "", NULL}, "--sweep"},
    {{"--sweep", "10,", NULL}, "--sweep"},
    {{"--sweep", ",10", NULL}, "--sweep"},
    {{"--sweep", "10,,20", NULL}, "--sweep"},
    {{"--sweep", "0", NULL}, "--sweep"},
    {{"--sweep", "10,-5", NULL}, "--sweep"},
    {{"--sweep", "10000001", NULL}, "--sweep"},
    {{"--sweep", "10;20", NULL}, "--sweep"},
    {{"--sweep", "10 20", NULL}, "--sweep"},
    {{"--sweep",
      "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33",
      NULL},
     "--sweep"},
    {{"--sweep", "10,20", "--rate", "5", NULL}, "--sweep"},
    {{"--sweep", "10,20", "--num-requests", "5000001", NULL}, "--sweep"}, /* 10000002 in all */
    /* compare */
    {{"--compare", "a.json", "--html", "c.html", NULL}, "--compare"},
    {{"--compare", "a.json", "b.json", NULL}, "--compare"}, /* no --html */
    {{"--compare", "", "b.json", "--html", "c.html", NULL}, "--compare"},
    {{"--compare", NULL}, "--compare"},
    {{"--compare", "1", "2", "3", "4", "5", "6", "7", "8", "9", "--html", "c.html", NULL},
     "--compare"}, /* at most 8 */
};

static void test_bad(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
		const struct bad_case *c = &bads[i];
		struct opts o;
		char err[256];
		enum opts_result r = parse(c->args, &o, err, sizeof(err));

		print_message("bad %zu: %s %s -> %d '%s'\n", i, c->args[0],
		              c->args[1] ? c->args[1] : "", (int)r, err);
		assert_int_equal(r, OPTS_USAGE);
		assert_non_null(strstr(err, c->names));
		assert_null(strchr(err, '\n')); /* one line */
	}
	/* the secret itself never appears in the message */
	struct opts o;
	char err[256];
	const char *leak[] = {"--secret", "whsec_!!!TOPSECRET", NULL};

	assert_int_equal(parse(leak, &o, err, sizeof(err)), OPTS_USAGE);
	assert_null(strstr(err, "TOPSECRET"));
	const char *leak_key[] = {"--api-key", "ck_TOPSECRET\"", NULL};

	assert_int_equal(parse(leak_key, &o, err, sizeof(err)), OPTS_USAGE);
	assert_null(strstr(err, "TOPSECRET"));
	/* a short error buffer is cut, never overrun */
	char small[8];
	const char *b[] = {"--concurrency", "999999", NULL};

	memset(small, 'z', sizeof(small));
	assert_int_equal(parse(b, &o, small, sizeof(small)), OPTS_USAGE);
	assert_int_equal(strlen(small), sizeof(small) - 1);
}

static void test_help_version(void **state)
{
	static const struct {
		const char *args[MAXARGS + 1];
		enum opts_result want;
	} cases[] = {
	    {{"--help", NULL}, OPTS_HELP},
	    {{"--version", NULL}, OPTS_VERSION},
	    {{"--num-requests", "5", "--help", NULL}, OPTS_HELP},
	    /* help stops parsing: a later bad value does not matter */
	    {{"--help", "--num-requests", "0", NULL}, OPTS_HELP},
	    {{"--num-requests", "0", "--help", NULL}, OPTS_USAGE},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct opts o;
		char err[256];

		assert_int_equal(parse(cases[i].args, &o, err, sizeof(err)), cases[i].want);
	}
	assert_non_null(strstr(opts_usage(), "usage: consuma-storm"));
}

/* Parsing twice in one process starts from the defaults and from argv[1]
 * each time (getopt's state is reset). */
static void test_reparse(void **state)
{
	const char *first[] = {"--concurrency", "7", "--mode", "async", NULL};
	const char *second[] = {"--num-requests", "9", NULL};
	struct opts o;
	char err[256];

	(void)state;
	assert_int_equal(parse(first, &o, err, sizeof(err)), OPTS_OK);
	assert_int_equal(o.concurrency, 7);
	assert_int_equal(parse(second, &o, err, sizeof(err)), OPTS_OK);
	assert_int_equal(o.num_requests, 9);
	assert_int_equal(o.concurrency, 20);
	assert_int_equal(o.mode, OPTS_BOTH);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults), cmocka_unit_test(test_good),
	    cmocka_unit_test(test_bad),      cmocka_unit_test(test_help_version),
	    cmocka_unit_test(test_reparse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
