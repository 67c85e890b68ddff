/*
 * test_hex: hex_digit against a reference for every byte value.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "hex.h"

static void test_every_byte(void **state)
{
	static const char lower[] = "0123456789abcdef";
	static const char upper[] = "0123456789ABCDEF";
	(void)state;
	for (int b = 0; b < 256; b++) {
		char c = (char)b;
		const char *l = b != 0 ? memchr(lower, b, 16) : NULL;
		const char *u = b != 0 ? memchr(upper, b, 16) : NULL;
		int want = l ? (int)(l - lower) : u ? (int)(u - upper) : -1;
		assert_int_equal(hex_digit(c), want);
	}
}

static void test_boundaries(void **state)
{
	(void)state;
	assert_int_equal(hex_digit('0'), 0);
	assert_int_equal(hex_digit('9'), 9);
	assert_int_equal(hex_digit('a'), 10);
	assert_int_equal(hex_digit('F'), 15);
	assert_int_equal(hex_digit('/'), -1); /* '0' - 1 */
	assert_int_equal(hex_digit(':'), -1); /* '9' + 1 */
	assert_int_equal(hex_digit('g'), -1);
	assert_int_equal(hex_digit('G'), -1);
	assert_int_equal(hex_digit('`'), -1);
	assert_int_equal(hex_digit('@'), -1);
	assert_int_equal(hex_digit('\0'), -1);
	assert_int_equal(hex_digit((char)0xff), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_byte),
	    cmocka_unit_test(test_boundaries),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
