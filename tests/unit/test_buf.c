/*
 * test_buf: the bounded buffer, JSON string escaping and the allocation
 * wrapper's failure injection and array growth.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "alloc.h"
#include "buf.h"

static void test_append_and_limit(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 10);
	assert_string_equal(buf_str(&b), "");
	assert_int_equal(buf_puts(&b, "hello"), BUF_OK);
	assert_int_equal(buf_printf(&b, "%d", 1234), BUF_OK);
	assert_string_equal(buf_str(&b), "hello1234");
	assert_int_equal(buf_putc(&b, 'x'), BUF_OK); /* exactly 10 */
	assert_int_equal(b.len, 10);
	assert_int_equal(buf_putc(&b, 'y'), BUF_TOOBIG); /* 11 > max */
	assert_string_equal(buf_str(&b), "hello1234x");  /* unchanged */
	assert_int_equal(buf_puts(&b, ""), BUF_TOOBIG);  /* sticky */
	buf_reset(&b);
	assert_int_equal(buf_puts(&b, "ok"), BUF_OK);
	assert_string_equal(buf_str(&b), "ok");
	buf_free(&b);
	buf_free(&b); /* twice is fine */
}

static void test_printf_too_big(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, 5);
	assert_int_equal(buf_printf(&b, "%s", "123456"), BUF_TOOBIG);
	assert_int_equal(b.len, 0);
	buf_free(&b);
}

static void test_huge_append_does_not_overflow(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, SIZE_MAX - 1);
	assert_int_equal(buf_puts(&b, "a"), BUF_OK);
	assert_int_equal(buf_append(&b, "x", SIZE_MAX - 1), BUF_TOOBIG);
	buf_free(&b);
}

static void test_json_string(void **state)
{
	static const struct {
		const char *in;
		size_t len;
		const char *out;
	} cases[] = {
	    {"plain", 5, "\"plain\""},
	    {"q\"b\\", 4, "\"q\\\"b\\\\\""},
	    {"\n\r\t", 3, "\"\\n\\r\\t\""},
	    {"\x01\x1f\x7f", 3, "\"\\u0001\\u001f\\u007f\""},
	    {"a\0b", 3, "\"a\\u0000b\""},
	    {"\xc3\xa9", 2, "\"\xc3\xa9\""}, /* UTF-8 passes through */
	    {"\b\f", 2, "\"\\u0008\\u000c\""},
	    {"ab\"cd\ne\x01"
	     "fg",
	     10, "\"ab\\\"cd\\ne\\u0001fg\""}, /* runs between escapes */
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf b;

		buf_init(&b, 1024);
		assert_int_equal(buf_json_string(&b, cases[i].in, cases[i].len), BUF_OK);
		assert_string_equal(buf_str(&b), cases[i].out);
		buf_free(&b);
	}
}

static void test_alloc_failure(void **state)
{
	struct buf b;
	char *p;

	(void)state;
	buf_init(&b, 1 << 20);
	alloc_fail_after(0);
	assert_int_equal(buf_puts(&b, "x"), BUF_NOMEM);
	assert_null(cz_malloc(10));
	assert_null(cz_strdup("abc"));
	alloc_fail_after(1);
	p = cz_malloc(10); /* the first succeeds */
	assert_non_null(p);
	assert_null(cz_calloc(1, 10)); /* the second fails */
	alloc_fail_after(-1);
	cz_free(p);
	cz_free(NULL);
	buf_free(&b);
}

static void test_detach(void **state)
{
	struct buf b;
	char *s;

	(void)state;
	buf_init(&b, 100);
	buf_puts(&b, "keep");
	s = buf_detach(&b);
	assert_string_equal(s, "keep");
	assert_int_equal(b.len, 0);
	cz_free(s);
	buf_init(&b, 1);
	buf_puts(&b, "too long");
	assert_null(buf_detach(&b));
	buf_free(&b);
}

/* cz_grow: room only when the array is full, doubling from 16; refused,
 * changing nothing, when memory runs out or the size would overflow. */
static void test_grow(void **state)
{
	int *v = NULL;
	size_t cap = 0;

	(void)state;
	assert_true(cz_grow(&v, &cap, 0, sizeof *v));
	assert_int_equal(cap, 16);
	int *first = v;
	assert_true(cz_grow(&v, &cap, 15, sizeof *v)); /* not full yet */
	assert_ptr_equal(v, first);
	assert_int_equal(cap, 16);
	for (int i = 0; i < 16; i++)
		v[i] = i;
	assert_true(cz_grow(&v, &cap, 16, sizeof *v));
	assert_int_equal(cap, 32);
	assert_int_equal(v[15], 15); /* kept across the move */
	alloc_fail_after(0);
	int *before = v;
	assert_false(cz_grow(&v, &cap, 32, sizeof *v));
	alloc_fail_after(-1);
	assert_ptr_equal(v, before);
	assert_int_equal(cap, 32);
	size_t huge = SIZE_MAX / 2 + 1;
	assert_false(cz_grow(&v, &huge, huge, 1)); /* doubling overflows */
	assert_int_equal(huge, SIZE_MAX / 2 + 1);
	size_t big = 64;
	assert_false(cz_grow(&v, &big, 64, SIZE_MAX / 100)); /* bytes overflow */
	assert_int_equal(big, 64);
	assert_ptr_equal(v, before);
	cz_free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_append_and_limit),
	    cmocka_unit_test(test_printf_too_big),
	    cmocka_unit_test(test_huge_append_does_not_overflow),
	    cmocka_unit_test(test_json_string),
	    cmocka_unit_test(test_alloc_failure),
	    cmocka_unit_test(test_detach),
	    cmocka_unit_test(test_grow),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
