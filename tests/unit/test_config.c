/*
 * test_config: every CONSUMA_* variable's defaults and bad values. The
 * variables are enumerated through config_describe(), so a variable added
 * to the table is tested without touching this file.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "config.h"

struct var_info {
	char name[64];
	char range[96];
	char def[64];
};

static struct var_info infos[64];
static size_t ninfos;

static void collect(const char *name, const char *range, const char *def, const char *help,
                    void *arg)
{
	(void)help;
	(void)arg;
	if (ninfos < sizeof(infos) / sizeof(infos[0])) {
		snprintf(infos[ninfos].name, sizeof(infos[ninfos].name), "%s", name);
		snprintf(infos[ninfos].range, sizeof(infos[ninfos].range), "%s", range);
		snprintf(infos[ninfos].def, sizeof(infos[ninfos].def), "%s", def);
		ninfos++;
	}
}

static void clear_env(void)
{
	size_t i;

	for (i = 0; i < ninfos; i++)
		unsetenv(infos[i].name);
}

static int setup(void **state)
{
	(void)state;
	ninfos = 0;
	config_describe(collect, NULL);
	clear_env();
	return 0;
}

static void expect_bad(const char *name, const char *value)
{
	struct config c;
	char err[512];

	setenv(name, value, 1);
	if (config_load(&c, err, sizeof(err)) != CONFIG_INVALID)
		fail_msg("%s=%s was accepted", name, value);
	if (strstr(err, name) == NULL || strstr(err, "accepted") == NULL)
		fail_msg("error for %s=%s does not name the variable and range: %s", name, value,
		         err);
	unsetenv(name);
}

static void expect_good(const char *name, const char *value)
{
	struct config c;
	char err[512] = "";

	setenv(name, value, 1);
	if (config_load(&c, err, sizeof(err)) != CONFIG_OK)
		fail_msg("%s=%s was refused: %s", name, value, err);
	unsetenv(name);
}

static void test_defaults(void **state)
{
	struct config c;
	char err[256];
	char path[CONFIG_PATH_MAX];

	(void)state;
	assert_int_equal(config_load(&c, err, sizeof(err)), CONFIG_OK);
	/* ORIGIN.md's nine */
	assert_int_equal(c.default_iterations, 50000);
	assert_int_equal(c.max_queue_size, 1000);
	assert_int_equal(c.callback_timeout_ms, 10000);
	assert_int_equal(c.callback_max_retries, 5);
	assert_int_equal(c.rate_limit_requests, 100);
	assert_int_equal(c.rate_limit_window_ms, 60000);
	assert_false(c.allow_private_callbacks);
	assert_string_equal(c.database_path, "requests.db");
	assert_int_equal(c.max_workers, 0);
	/* added */
	assert_int_equal(c.max_iterations, 1000000);
	assert_int_equal(c.max_body_bytes, 65536);
	assert_int_equal(c.callback_backoff_base_ms, 2000);
	assert_int_equal(c.callback_backoff_max_ms, 60000);
	assert_int_equal(c.max_inflight_deliveries, 256);
	assert_int_equal(c.max_per_host, 8);
	assert_true(c.max_queue_share > 0.49 && c.max_queue_share < 0.51);
	config_doorbell_path(&c, path, sizeof(path));
	assert_string_equal(path, "requests.db.bell");
	config_rate_limit_zone(&c, path, sizeof(path));
	assert_string_equal(path, "requests.db.ratelimit");
	assert_true(ninfos >= 30);
}

static void test_good_values(void **state)
{
	struct config c;
	char err[256];

	(void)state;
	setenv("CONSUMA_ALLOW_PRIVATE_CALLBACKS", "TRUE", 1);
	setenv("CONSUMA_MAX_QUEUE_SIZE", "1", 1);
	setenv("CONSUMA_CALLBACK_DENY_CIDRS", "10.0.0.0/8, ::1/128,192.0.2.1", 1);
	setenv("CONSUMA_CALLBACK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 1);
	setenv("CONSUMA_DOORBELL_PATH", "/tmp/x.sock", 1);
	setenv("CONSUMA_MAX_QUEUE_SHARE", "1", 1);
	setenv("CONSUMA_LOG_LEVEL", "debug", 1);
	assert_int_equal(config_load(&c, err, sizeof(err)), CONFIG_OK);
	assert_true(c.allow_private_callbacks);
	assert_int_equal(c.max_queue_size, 1);
	assert_string_equal(c.callback_deny_cidrs, "10.0.0.0/8, ::1/128,192.0.2.1");
	assert_string_equal(c.doorbell_path, "/tmp/x.sock");
	assert_int_equal(c.log_level, 0);
	clear_env();
	expect_good("CONSUMA_MAX_WORKERS", "256");
	expect_good("CONSUMA_MAX_WORKERS", "0");
	expect_good("CONSUMA_RATE_LIMIT_REQUESTS", "0");
	expect_good("CONSUMA_CALLBACK_SECRET", "");
	expect_good("CONSUMA_CALLBACK_SECRET", "whsec_YWJj whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
	expect_good("CONSUMA_API_KEYS_FILE", "/etc/consuma/api-keys");
}

/* Every variable, every class of bad value its type has. */
static void test_bad_values(void **state)
{
	static const char *int_bad[] = {"",
	                                "abc",
	                                "1.5",
	                                " 5",
	                                "5 ",
	                                "+5",
	                                "0x10",
	                                "5k",
	                                "99999999999999999999",
	                                "-99999999999999999999"};
	static const char *bool_bad[] = {"", "maybe", "2", "truee", "-1", "y es"};
	static const char *double_bad[] = {"", "0", "-0.5", "1.01", "nan", "inf", "x", "0.5x"};
	static const char *cidr_bad[] = {
	    "10.0.0.0/33",    "foo",         "1.2.3.4/-1", "::1/129",      "1.2.3.4/",    "/8",
	    "10.0.0.0/8,bad", "1.2.3.4/8/8", "256.1.1.1",  "1.2.3.4/0008", "10.0.0.0/8\t"};
	/* one more than SIGN_KEYS_MAX secrets */
	static const char too_many_secrets[] =
	    "whsec_YWJj whsec_YWJj whsec_YWJj whsec_YWJj whsec_YWJj "
	    "whsec_YWJj whsec_YWJj whsec_YWJj whsec_YWJj";
	static const char *secret_bad[] = {"abc",
	                                   "whsec_",
	                                   "whsec_!!!!",
	                                   "whsec_abc",
	                                   "whsec_YWJj=YWJj",
	                                   "WHSEC_YWJj",
	                                   "whsec_YWJj ",
	                                   " whsec_YWJj",
	                                   "whsec_YWJj  whsec_YWJj",
	                                   "whsec_YWJj abc",
	                                   too_many_secrets};
	static const char *level_bad[] = {"", "loud", "INFO2", "0"};
	size_t i, j;
	char big[CONFIG_LIST_MAX + 10];

	(void)state;
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	for (i = 0; i < ninfos; i++) {
		const char *n = infos[i].name;
		const char *r = infos[i].range;
		long long lo, hi;
		char v[64];

		if (sscanf(r, "an integer in %lld..%lld", &lo, &hi) == 2) {
			for (j = 0; j < sizeof(int_bad) / sizeof(int_bad[0]); j++)
				expect_bad(n, int_bad[j]);
			snprintf(v, sizeof(v), "%lld", lo - 1);
			expect_bad(n, v);
			snprintf(v, sizeof(v), "%lld", hi + 1);
			expect_bad(n, v);
			snprintf(v, sizeof(v), "%lld", lo);
			/* the bounds themselves are accepted, unless a relation refuses them */
			if (strcmp(n, "CONSUMA_CALLBACK_BACKOFF_MAX_MS") != 0 &&
			    strcmp(n, "CONSUMA_MAX_ITERATIONS") != 0)
				expect_good(n, v);
		} else if (strcmp(r, "true or false") == 0) {
			for (j = 0; j < sizeof(bool_bad) / sizeof(bool_bad[0]); j++)
				expect_bad(n, bool_bad[j]);
		} else if (strncmp(r, "a number", 8) == 0) {
			for (j = 0; j < sizeof(double_bad) / sizeof(double_bad[0]); j++)
				expect_bad(n, double_bad[j]);
		} else if (strncmp(r, "comma-separated", 15) == 0) {
			for (j = 0; j < sizeof(cidr_bad) / sizeof(cidr_bad[0]); j++)
				expect_bad(n, cidr_bad[j]);
		} else if (strncmp(r, "empty, or whsec_", 16) == 0) {
			for (j = 0; j < sizeof(secret_bad) / sizeof(secret_bad[0]); j++)
				expect_bad(n, secret_bad[j]);
		} else if (strncmp(r, "empty, or a postgresql://", 25) == 0) {
			static const char *url_bad[] = {"requests.db", "mysql://x/y",
			                                "postgresql:/x", "http://db/x",
			                                " postgresql://x/y"};
			for (j = 0; j < sizeof(url_bad) / sizeof(url_bad[0]); j++)
				expect_bad(n, url_bad[j]);
			expect_good(n, "postgresql://consuma@127.0.0.1:5432/consuma");
			expect_bad(n, big);
		} else if (strncmp(r, "debug", 5) == 0) {
			for (j = 0; j < sizeof(level_bad) / sizeof(level_bad[0]); j++)
				expect_bad(n, level_bad[j]);
		} else if (strncmp(r, "a path", 6) == 0) {
			expect_bad(n, big);
			expect_bad(n, "a\nb");
		} else {
			fail_msg("no bad values for %s (%s)", n, r);
		}
	}
	expect_bad("CONSUMA_DATABASE_PATH", "");
}

static void test_relations(void **state)
{
	struct config c;
	char err[512];

	(void)state;
	setenv("CONSUMA_DEFAULT_ITERATIONS", "2000", 1);
	setenv("CONSUMA_MAX_ITERATIONS", "1000", 1);
	assert_int_equal(config_load(&c, err, sizeof(err)), CONFIG_INVALID);
	assert_non_null(strstr(err, "CONSUMA_DEFAULT_ITERATIONS"));
	clear_env();
	setenv("CONSUMA_CALLBACK_BACKOFF_BASE_MS", "5000", 1);
	setenv("CONSUMA_CALLBACK_BACKOFF_MAX_MS", "4000", 1);
	assert_int_equal(config_load(&c, err, sizeof(err)), CONFIG_INVALID);
	assert_non_null(strstr(err, "CONSUMA_CALLBACK_BACKOFF_MAX_MS"));
	clear_env();
	/* retention shorter than the idempotency TTL would forget keys early */
	setenv("CONSUMA_IDEMPOTENCY_TTL", "7200", 1);
	setenv("CONSUMA_RETENTION_HOURS", "1", 1);
	assert_int_equal(config_load(&c, err, sizeof(err)), CONFIG_INVALID);
	assert_non_null(strstr(err, "CONSUMA_RETENTION_HOURS"));
	setenv("CONSUMA_RETENTION_HOURS", "2", 1);
	assert_int_equal(config_load(&c, err, sizeof(err)), CONFIG_OK);
	/* durations given in s or h are kept in ms, converted once by the load */
	assert_int_equal(c.retention_ms, 2 * 3600 * 1000);
	assert_int_equal(c.idempotency_ttl_ms, 7200 * 1000);
	setenv("CONSUMA_RETENTION_HOURS", "0", 1);
	assert_int_equal(config_load(&c, err, sizeof(err)), CONFIG_OK);
	clear_env();
}

/* Variables given in seconds or hours: bounds in that unit, the field in
 * milliseconds, at both ends of each range. */
static void test_units(void **state)
{
	static const struct {
		const char *name, *value;
		size_t offset;
		int64_t ms;
	} cases[] = {
	    {"CONSUMA_CALLBACK_TIMEOUT", "1", offsetof(struct config, callback_timeout_ms), 1000},
	    {"CONSUMA_CALLBACK_TIMEOUT", "300", offsetof(struct config, callback_timeout_ms),
	     300000},
	    {"CONSUMA_RATE_LIMIT_WINDOW", "86400", offsetof(struct config, rate_limit_window_ms),
	     86400000},
	    {"CONSUMA_IDEMPOTENCY_TTL", "604800", offsetof(struct config, idempotency_ttl_ms),
	     604800000}, /* the longest the default retention allows */
	    {"CONSUMA_LEASE_SECONDS", "7", offsetof(struct config, lease_ms), 7000},
	    {"CONSUMA_SHUTDOWN_GRACE", "0", offsetof(struct config, shutdown_grace_ms), 0},
	    {"CONSUMA_HEARTBEAT_STALE_SECONDS", "3600", offsetof(struct config, heartbeat_stale_ms),
	     3600000},
	    {"CONSUMA_RETENTION_HOURS", "87600", offsetof(struct config, retention_ms),
	     87600LL * 3600000},
	};
	static const char *const over[][2] = {
	    {"CONSUMA_CALLBACK_TIMEOUT", "301"},
	    {"CONSUMA_CALLBACK_TIMEOUT", "1000"}, /* 1000 ms is not 1000 s */
	    {"CONSUMA_LEASE_SECONDS", "3601"},
	    {"CONSUMA_RETENTION_HOURS", "87601"},
	};
	struct config c;
	char err[256];

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int64_t got;

		clear_env();
		setenv(cases[i].name, cases[i].value, 1);
		assert_int_equal(config_load(&c, err, sizeof(err)), CONFIG_OK);
		memcpy(&got, (const char *)&c + cases[i].offset, sizeof got);
		assert_int_equal(got, cases[i].ms);
	}
	for (size_t i = 0; i < sizeof over / sizeof over[0]; i++) {
		clear_env();
		setenv(over[i][0], over[i][1], 1);
		assert_int_equal(config_load(&c, err, sizeof(err)), CONFIG_INVALID);
		assert_non_null(strstr(err, over[i][0]));
	}
	clear_env();
}

static void test_secret_not_echoed(void **state)
{
	struct config c;
	char err[512];

	(void)state;
	setenv("CONSUMA_CALLBACK_SECRET", "whsec_notbase64!!", 1);
	assert_int_equal(config_load(&c, err, sizeof(err)), CONFIG_INVALID);
	assert_null(strstr(err, "notbase64"));
	clear_env();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup(test_defaults, setup),
	    cmocka_unit_test_setup(test_good_values, setup),
	    cmocka_unit_test_setup(test_bad_values, setup),
	    cmocka_unit_test_setup(test_relations, setup),
	    cmocka_unit_test_setup(test_units, setup),
	    cmocka_unit_test_setup(test_secret_not_echoed, setup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
