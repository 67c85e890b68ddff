/*
 * test_ids: UUIDv7 shape and ordering, a child's ids not the parent's
 * after a fork (the random bytes are pooled per thread), id validation,
 * RFC 3339 formatting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include "ids.h"

static void test_uuidv7_shape_and_order(void **state)
{
	char prev[IDS_UUID_LEN + 1] = "";
	char id[IDS_UUID_LEN + 1];
	int i;

	(void)state;
	for (i = 0; i < 20000; i++) {
		ids_uuidv7(id);
		assert_int_equal(strlen(id), IDS_UUID_LEN);
		assert_true(ids_uuid_valid(id));
		assert_int_equal(id[14], '7');           /* version */
		assert_non_null(strchr("89ab", id[19])); /* variant */
		assert_true(strcmp(prev, id) < 0);       /* strictly increasing */
		memcpy(prev, id, sizeof(id));
	}
}

static void test_uuidv7_time(void **state)
{
	char id[IDS_UUID_LEN + 1];
	char hex[13];
	int64_t before = ids_now_ms(), ms;

	(void)state;
	ids_uuidv7(id);
	memcpy(hex, id, 8);
	memcpy(hex + 8, id + 9, 4);
	hex[12] = '\0';
	ms = (int64_t)strtoll(hex, NULL, 16);
	assert_true(ms >= before && ms <= ids_now_ms() + 1000);
}

/* The ids a fork's child makes after the parent had pooled random bytes:
 * without the pool's fork check the child would take the very bytes the
 * parent takes next, and the two ids would share their random tail. */
static void test_uuidv7_after_fork(void **state)
{
	char first[IDS_UUID_LEN + 1], mine[IDS_UUID_LEN + 1], child[IDS_UUID_LEN + 1] = "";
	int fds[2];

	(void)state;
	ids_uuidv7(first); /* fills this thread's pool */
	assert_int_equal(pipe(fds), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		char id[IDS_UUID_LEN + 1];
		ids_uuidv7(id);
		_exit(write(fds[1], id, IDS_UUID_LEN) == IDS_UUID_LEN ? 0 : 1);
	}
	close(fds[1]);
	ids_uuidv7(mine);
	assert_int_equal(read(fds[0], child, IDS_UUID_LEN), IDS_UUID_LEN);
	close(fds[0]);
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_true(ids_uuid_valid(child));
	/* the last 12 digits are random bytes alone (no time, no counter) */
	assert_string_not_equal(child + 24, mine + 24);
	assert_string_not_equal(child + 24, first + 24);
}

static void test_uuid_valid(void **state)
{
	static const struct {
		const char *s;
		bool ok;
	} cases[] = {
	    {"0190b2a4-7c1e-7abc-8def-0123456789ab", true},
	    {"0190B2A4-7C1E-7ABC-8DEF-0123456789AB", false},  /* uppercase */
	    {"0190b2a4-7c1e-7abc-8def-0123456789a", false},   /* short */
	    {"0190b2a4-7c1e-7abc-8def-0123456789abc", false}, /* long */
	    {"0190b2a47c1e-7abc-8def-0123456789ab-", false},
	    {"0190b2a4-7c1e-7abc-8def-0123456789ag", false},
	    {"", false},
	    {"../../etc/passwd", false},
	    {"0190b2a4-7c1e-7abc-8def-0123456789a%", false},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_int_equal(ids_uuid_valid(cases[i].s), cases[i].ok);
	assert_false(ids_uuid_valid(NULL));
}

static void test_rfc3339(void **state)
{
	static const struct {
		int64_t ms;
		const char *s;
	} cases[] = {
	    {0, "1970-01-01T00:00:00.000Z"},
	    {1, "1970-01-01T00:00:00.001Z"},
	    {1795758015123, "2026-11-27T05:40:15.123Z"},
	    {951782400000, "2000-02-29T00:00:00.000Z"},
	    {-1, "1969-12-31T23:59:59.999Z"},
	};
	char out[IDS_RFC3339_LEN + 1];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ids_rfc3339(cases[i].ms, out);
		assert_string_equal(out, cases[i].s);
	}
}

static void test_clocks(void **state)
{
	int64_t a = ids_mono_ns(), b = ids_mono_ns();

	(void)state;
	assert_true(b >= a);
	assert_true(ids_now_ms() > 1700000000000LL);
}

/* The xorshift64 sequence from seed 1 (computed independently), and the
 * fixed seed a zero state stands for. */
static void test_xorshift64(void **state)
{
	static const uint64_t from_one[] = {1082269761ULL, 1152992998833853505ULL,
	                                    11177516664432764457ULL};
	uint64_t s = 1, z = 0;

	(void)state;
	for (size_t i = 0; i < sizeof from_one / sizeof from_one[0]; i++) {
		assert_true(ids_xorshift64(&s) == from_one[i]);
		assert_true(s == from_one[i]);
	}
	assert_true(ids_xorshift64(&z) == 15860402102123842989ULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_uuidv7_shape_and_order),
	    cmocka_unit_test(test_uuidv7_time),
	    cmocka_unit_test(test_uuidv7_after_fork),
	    cmocka_unit_test(test_uuid_valid),
	    cmocka_unit_test(test_rfc3339),
	    cmocka_unit_test(test_clocks),
	    cmocka_unit_test(test_xorshift64),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
