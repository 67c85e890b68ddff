/*
 * test_fcgi_redeliver: the RFC 3339 parser of POST /requests/redeliver's
 * "since" and "until": UTC and offsets, fractions, the calendar's bounds
 * (leap years, month lengths), and everything else refused (lowercase
 * separators accepted, as RFC 3339 allows).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "redeliver.h"

static void test_parse_time(void **state)
{
	static const struct {
		const char *in;
		bool ok;
		int64_t ms;
	} cases[] = {
	    {"1970-01-01T00:00:00Z", true, 0},
	    {"2026-12-01T21:00:00Z", true, 1796158800000},
	    {"2026-12-01t21:00:00z", true, 1796158800000},
	    {"2026-12-01T21:00:00.5Z", true, 1796158800500},
	    {"2026-12-01T21:00:00.123456Z", true, 1796158800123},
	    {"2026-12-01T22:30:00+01:30", true, 1796158800000},
	    {"2026-12-01T20:00:00-01:00", true, 1796158800000},
	    {"2024-02-29T00:00:00Z", true, 1709164800000},
	    {"2000-02-29T00:00:00Z", true, 951782400000},
	    {"1900-02-29T00:00:00Z", false, 0}, /* before 1970, and no leap day */
	    {"2023-02-29T00:00:00Z", false, 0},
	    {"2026-04-31T00:00:00Z", false, 0},
	    {"2026-13-01T00:00:00Z", false, 0},
	    {"2026-00-01T00:00:00Z", false, 0},
	    {"2026-12-00T00:00:00Z", false, 0},
	    {"2026-12-01T24:00:00Z", false, 0},
	    {"2026-12-01T23:60:00Z", false, 0},
	    {"2026-12-01T21:00:00", false, 0},   /* no zone */
	    {"2026-12-01 21:00:00Z", false, 0},  /* space */
	    {"2026-12-01T21:00:00.Z", false, 0}, /* empty fraction */
	    {"2026-12-01T21:00:00Zjunk", false, 0},
	    {"2026-12-01T21:00:00+0100", false, 0},
	    {"2026-12-01T21:00:00+24:00", false, 0},
	    {"2026-12-01", false, 0},
	    {"+2026-12-01T21:00:00Z", false, 0},
	    {"2026-1-01T21:00:00Z", false, 0},
	    {"", false, 0},
	    {"yesterday", false, 0},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t ms = -1;
		bool ok = redeliver_parse_time(cases[i].in, &ms);

		if (ok != cases[i].ok || (ok && ms != cases[i].ms))
			fail_msg("%s: ok %d ms %lld, want ok %d ms %lld", cases[i].in, ok,
			         (long long)ms, cases[i].ok, (long long)cases[i].ms);
	}
	assert_false(redeliver_parse_time(NULL, NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_time),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
