/*
 * test_why: the failure-reason formatter (lib/why.h): set and append,
 * truncation at every buffer size around the text, a full buffer left as
 * it is, and no buffer at all.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "why.h"

static void test_set_and_append(void **state)
{
	char why[32];

	(void)state;
	why_set(why, sizeof why, "%s: %d", "port", 70000);
	assert_string_equal(why, "port: 70000");
	why_append(why, sizeof why, " (%s)", "too big");
	assert_string_equal(why, "port: 70000 (too big)");
	why_set(why, sizeof why, "again");
	assert_string_equal(why, "again");
}

/* Every size from 1 to past the text: a prefix, always terminated, never
 * a byte written past whylen. */
static void test_truncation(void **state)
{
	const char *text = "host: not a valid name";
	size_t n = strlen(text);

	(void)state;
	for (size_t size = 1; size <= n + 2; size++) {
		char buf[64];

		memset(buf, 'x', sizeof buf);
		why_set(buf, size, "%s", text);
		assert_int_equal(strlen(buf), size - 1 < n ? size - 1 : n);
		assert_memory_equal(buf, text, strlen(buf));
		if (size <= n)
			assert_int_equal(buf[size], 'x');

		memset(buf, 'x', sizeof buf);
		why_set(buf, size, "host");
		why_append(buf, size, "%s", text + 4);
		assert_int_equal(strlen(buf), size - 1 < n ? size - 1 : n);
		assert_memory_equal(buf, text, strlen(buf));
		if (size <= n)
			assert_int_equal(buf[size], 'x');
	}
}

static void test_full_and_absent(void **state)
{
	char full[4] = {'a', 'b', 'c', 'd'}; /* no terminator: left alone */
	char one[1] = {'z'};

	(void)state;
	why_append(full, sizeof full, "more");
	assert_memory_equal(full, "abcd", 4);
	why_set(one, sizeof one, "text");
	assert_int_equal(one[0], '\0');
	why_set(NULL, 10, "nothing");
	why_append(NULL, 10, "nothing");
	why_set(one, 0, "nothing");
	why_append(one, 0, "nothing");
	assert_int_equal(one[0], '\0');
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_set_and_append),
	    cmocka_unit_test(test_truncation),
	    cmocka_unit_test(test_full_and_absent),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
