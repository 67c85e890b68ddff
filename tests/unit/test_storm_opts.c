/*
 * test_storm_opts: consuma-storm's command line (tools/storm/opts.h).
 *
 * The defaults are the original load generator's (ORIGIN.md); then one
 * table of argument vectors: each option's good values and its bounds, and
 * the bad values (empty, sign, junk, overflow, out of range, wrong form),
 * each of which must be a usage error whose message names the option.
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

#define MAXARGS 8

static enum opts_result parse(const char *const *args, struct opts *o, char *err, size_t errlen)
{
	char *argv[MAXARGS + 2];
	int argc = 0;

	argv[argc++] = (char *)"consuma-storm";
	for (; args[argc - 1] != NULL && argc <= MAXARGS; argc++)
		argv[argc] = (char *)args[argc - 1];
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
	assert_null(o.json_path);
	assert_null(o.html_path);
	assert_int_equal(o.seed, 1);
	assert_false(o.raw);
	assert_true(o.progress);
	assert_false(o.dry_run);
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
	F_JSON,
	F_HTML,
	F_SEED,
	F_RAW,
	F_PROGRESS,
	F_DRY,
};

struct good_case {
	const char *args[MAXARGS + 1];
	enum field field;
	uint64_t u; /* integer fields, mode, booleans */
	double d;   /* seconds and rates */
	const char *s;
};

#define SECRET "whsec_c2VjcmV0LWtleS1mb3ItdGVzdHM="

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
