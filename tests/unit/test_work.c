/*
 * test_work: the work function against vectors computed independently of
 * this code (Python's hashlib, round 1 over the UTF-8 bytes, every later
 * round over the previous raw 32-byte digest; the two-round "hello" vector
 * was also checked with `printf hello | openssl dgst -sha256 -binary |
 * openssl dgst -sha256`), plus bad arguments and concurrent callers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <pthread.h>
#include <cmocka.h>

#include "work.h"

#define MULTIBYTE                                                                                  \
	"h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93 \xe6\x97\xa5\xe6\x9c\xac" /* "héllo wörld ✓ 日本" */

struct vector {
	const char *input;
	size_t len;
	int64_t iterations;
	const char *hex;
};

#define V(s, n, h)                                                                                 \
	{                                                                                          \
		s, sizeof(s) - 1, n, h                                                             \
	}

static const struct vector vectors[] = {
    V("hello", 1, "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"),
    V("hello", 2, "9595c9df90075148eb06860365df33584b75bff782a510c6cd4883a419833d50"),
    V("hello", 1000, "f6eec10c841b542f37ffb4ca00f82c5b6b4b11b79636d20201078b667ac37159"),
    V("hello", 50000, "f6ff07025a2c5702133ffdad8684ed8a00f62d716792347fa17c1acd6d00d96d"),
    V(MULTIBYTE, 1, "3deac840ad210963933ffdd4161c06444129ff3b6da4b43e400857824444e596"),
    V(MULTIBYTE, 2, "a11d40172a00318f59903154f2cdfe165a5675c37deb05dda11110be63dcf7e5"),
    V(MULTIBYTE, 1000, "36cae8e717be1ae2d43de708cb6ddea7b3e4a778cf2dd4c9a36c2ad0f9dca2af"),
    V(MULTIBYTE, 50000, "ae9c461f186018d7e385b1ef866e170e3df303d3eaf41e620033773cc41ddd42"),
    V("", 1, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    V("", 2, "5df6e0e2761359d30a8275058e299fcc0381534545f55cf43e41983f5d4c9456"),
    V("", 1000, "ccacebeaa615bc6656e00e68c86e9a2664a98f6742fa3eb280dda3200432026b"),
    /* an embedded NUL is hashed like any byte (request.c refuses it first) */
    V("a\0b", 1, "59b271ae1bbcb1d31d41929817f4b16fb439eb4f31520b5ad1d5ce98920a7138"),
};

static void test_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		const struct vector *v = &vectors[i];
		char hex[WORK_HEX_LEN + 1];

		memset(hex, 'x', sizeof(hex));
		assert_int_equal(work_sha256_iter(v->input, v->len, v->iterations, hex), WORK_OK);
		assert_string_equal(hex, v->hex);
	}
}

/* A multi-block first round: 100 x "é" is 200 bytes (four blocks). */
static void test_long_input(void **state)
{
	char in[200];
	char hex[WORK_HEX_LEN + 1];

	(void)state;
	for (size_t i = 0; i < sizeof(in); i += 2) {
		in[i] = '\xc3';
		in[i + 1] = '\xa9';
	}
	assert_int_equal(work_sha256_iter(in, sizeof(in), 3, hex), WORK_OK);
	assert_string_equal(hex,
	                    "8d6604e467da776cc9bb5a9ad68e3634d1152ebf2988579989c90fffb5cd2f22");
}

static void test_empty_input_null_pointer(void **state)
{
	char hex[WORK_HEX_LEN + 1];

	(void)state;
	assert_int_equal(work_sha256_iter(NULL, 0, 1, hex), WORK_OK);
	assert_string_equal(hex,
	                    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_bad_arguments(void **state)
{
	static const struct {
		const void *input;
		size_t len;
		int64_t iterations;
	} bad[] = {
	    {"hello", 5, 0},
	    {"hello", 5, -1},
	    {"hello", 5, INT64_MIN},
	    {NULL, 5, 1},
	};
	char hex[WORK_HEX_LEN + 1];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(hex, 'x', sizeof(hex));
		assert_int_equal(work_sha256_iter(bad[i].input, bad[i].len, bad[i].iterations, hex),
		                 WORK_EINVAL);
		assert_string_equal(hex, "");
	}
	assert_int_equal(work_sha256_iter("hello", 5, 1, NULL), WORK_EINVAL);
}

/* The same vectors run in steps of every size from one round to more than
 * are left: the result never depends on how the rounds were cut. */
static void test_rounds_in_steps(void **state)
{
	static const int64_t steps[] = {1, 2, 7, 999, 1000, 16384, INT64_MAX};

	(void)state;
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		const struct vector *v = &vectors[i];

		for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
			struct work_state w;
			char hex[WORK_HEX_LEN + 1];
			int64_t calls = 0;

			if (steps[k] == 1 && v->iterations > 1000)
				continue; /* 50000 calls add nothing the 1000-round vectors miss */
			assert_int_equal(work_begin(&w, v->input, v->len, v->iterations), WORK_OK);
			assert_int_equal(work_left(&w), v->iterations - 1);
			while (work_left(&w) > 0) {
				int64_t before = work_left(&w);

				/* not ready yet: no result, and the state is unchanged */
				assert_int_equal(work_result(&w, hex), WORK_EINVAL);
				assert_string_equal(hex, "");
				assert_int_equal(work_rounds(&w, steps[k]), WORK_OK);
				assert_int_equal(work_left(&w),
				                 before > steps[k] ? before - steps[k] : 0);
				calls++;
			}
			assert_true(calls <= (v->iterations - 1) / steps[k] + 1);
			assert_int_equal(work_rounds(&w, 5), WORK_OK); /* nothing left: no-op */
			assert_int_equal(work_result(&w, hex), WORK_OK);
			assert_string_equal(hex, v->hex);
		}
	}
}

static void test_rounds_bad_arguments(void **state)
{
	struct work_state w;
	char hex[WORK_HEX_LEN + 1];

	(void)state;
	assert_int_equal(work_begin(NULL, "a", 1, 1), WORK_EINVAL);
	assert_int_equal(work_begin(&w, "a", 1, 0), WORK_EINVAL);
	/* a failed begin holds no result and runs nothing */
	assert_int_equal(work_result(&w, hex), WORK_EINVAL);
	assert_string_equal(hex, "");
	assert_int_equal(work_rounds(&w, 1), WORK_EINVAL);
	assert_int_equal(work_begin(&w, NULL, 3, 1), WORK_EINVAL);
	assert_int_equal(work_result(&w, hex), WORK_EINVAL);

	assert_int_equal(work_begin(&w, "a", 1, 3), WORK_OK);
	assert_int_equal(work_rounds(&w, 0), WORK_EINVAL);
	assert_int_equal(work_rounds(&w, -1), WORK_EINVAL);
	assert_int_equal(work_left(&w), 2);
	assert_int_equal(work_rounds(NULL, 1), WORK_EINVAL);
	assert_int_equal(work_result(NULL, hex), WORK_EINVAL);
	assert_int_equal(work_result(&w, NULL), WORK_EINVAL);
}

static void test_strerror(void **state)
{
	(void)state;
	assert_string_equal(work_strerror(WORK_OK), "ok");
	assert_non_null(strstr(work_strerror(WORK_EINVAL), "iterations"));
	assert_non_null(work_strerror(WORK_NOMEM));
	assert_non_null(work_strerror(WORK_CRYPTO));
	assert_non_null(work_strerror((enum work_err)99));
}

#define THREADS 4
#define REPEATS 8

struct worker {
	pthread_t tid;
	int failures;
};

static void *run_worker(void *arg)
{
	struct worker *w = arg;

	for (int r = 0; r < REPEATS; r++) {
		/* alternate so threads interleave different inputs */
		const struct vector *v = &vectors[(r % 2) ? 3 : 6];
		char hex[WORK_HEX_LEN + 1];

		if (work_sha256_iter(v->input, v->len, v->iterations, hex) != WORK_OK ||
		    strcmp(hex, v->hex) != 0)
			w->failures++;
	}
	return NULL;
}

static void test_threads(void **state)
{
	struct worker w[THREADS];

	(void)state;
	memset(w, 0, sizeof(w));
	for (int i = 0; i < THREADS; i++)
		assert_int_equal(pthread_create(&w[i].tid, NULL, run_worker, &w[i]), 0);
	for (int i = 0; i < THREADS; i++) {
		assert_int_equal(pthread_join(w[i].tid, NULL), 0);
		assert_int_equal(w[i].failures, 0);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vectors),
	    cmocka_unit_test(test_long_input),
	    cmocka_unit_test(test_empty_input_null_pointer),
	    cmocka_unit_test(test_bad_arguments),
	    cmocka_unit_test(test_rounds_in_steps),
	    cmocka_unit_test(test_rounds_bad_arguments),
	    cmocka_unit_test(test_strerror),
	    cmocka_unit_test(test_threads),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
