/*
 * test_deliverer_shared: the exclusion list the delivery thread publishes
 * to the claim loop (deliverer/shared.h). A replacement says whether it may
 * have made a job claimable (a key left the list), because only then does
 * the claim loop need a scan: with one busy origin excluded and lifted
 * hundreds of times a second, a scan at every addition walked the whole
 * backlog past that origin's jobs for nothing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>
#include "alloc.h"
#include "shared.h"

static struct store_exclude *list_of(const char *const *keys, size_t n)
{
	struct store_exclude *ex = exclude_copy(keys, n);
	if (n > 0)
		assert_non_null(ex);
	return ex;
}

static void test_lifted_only_when_a_key_leaves(void **state)
{
	static const char *const a[] = {"http://a"};
	static const char *const ab[] = {"http://a", "http://b"};
	static const char *const b[] = {"http://b"};
	struct shared sh;
	uint64_t gen = 0;
	struct store_exclude *mine = NULL;

	(void)state;
	assert_int_equal(shared_init(&sh), 0);
	assert_false(shared_set_exclusions(&sh, list_of(a, 1)));  /* none -> a: adds */
	assert_false(shared_set_exclusions(&sh, list_of(ab, 2))); /* a -> a, b: adds */
	assert_false(shared_set_exclusions(&sh, list_of(ab, 2))); /* the same */
	assert_true(shared_set_exclusions(&sh, list_of(b, 1)));   /* a leaves */
	assert_true(shared_set_exclusions(&sh, list_of(a, 1)));   /* b leaves, a comes */
	assert_true(shared_set_exclusions(&sh, NULL));            /* a leaves */
	assert_false(shared_set_exclusions(&sh, NULL));           /* none -> none */
	/* the claim loop sees every replacement, lifted or not */
	assert_false(shared_set_exclusions(&sh, list_of(b, 1)));
	shared_get_exclusions(&sh, &gen, &mine);
	assert_non_null(mine);
	assert_int_equal(mine->n, 1);
	assert_string_equal(mine->keys[0], "http://b");
	cz_free(mine);
	shared_destroy(&sh);
}

/* Lists too long to compare key by key count as lifted: a wasted scan at
 * worst, never a claimable job left waiting. */
static void test_long_lists_count_as_lifted(void **state)
{
	enum { N = 100 };
	static char names[N][24];
	const char *keys[N];
	struct shared sh;

	(void)state;
	for (int i = 0; i < N; i++) {
		snprintf(names[i], sizeof names[i], "http://h%d", i);
		keys[i] = names[i];
	}
	assert_int_equal(shared_init(&sh), 0);
	assert_false(shared_set_exclusions(&sh, list_of(keys, N)));
	assert_true(shared_set_exclusions(&sh, list_of(keys, N)));
	shared_destroy(&sh);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_lifted_only_when_a_key_leaves),
	    cmocka_unit_test(test_long_lists_count_as_lifted),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
