/*
 * test_request: request_parse() against a table of hostile bodies (each with
 * the HTTP status and the field its detail must name), a table of good
 * bodies with what they must yield, the UTF-8 validator on its own, and
 * allocation failures (ASan reports any leak on those paths). Every body of
 * those tables and of plain[] (the edges of request.c's plain path) must get
 * the same answer from request_parse and from json-c alone
 * (request_parse_json_c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "alloc.h"
#include "config.h"
#include "request.h"
#include "request_test.h"

#define CAP 65536

static struct config cfg;

static int setup(void **state)
{
	char err[512];

	(void)state;
	unsetenv("CONSUMA_MAX_ITERATIONS");
	unsetenv("CONSUMA_DEFAULT_ITERATIONS");
	unsetenv("CONSUMA_MAX_BODY_BYTES");
	if (config_load(&cfg, err, sizeof(err)) != CONFIG_OK) {
		fprintf(stderr, "config_load: %s\n", err);
		return -1;
	}
	/* the bounds this file's tables are written for */
	cfg.max_iterations = 1000000;
	cfg.default_iterations = 50000;
	cfg.max_body_bytes = CAP;
	return 0;
}

/* ---- generated bodies --------------------------------------------------- */

struct gen {
	char *p;
	size_t len;
	size_t cap;
};

static void put(struct gen *g, const char *s, size_t n)
{
	if (g->len + n + 1 > g->cap) {
		g->cap = (g->len + n + 1) * 2;
		g->p = realloc(g->p, g->cap);
		assert_non_null(g->p);
	}
	memcpy(g->p + g->len, s, n);
	g->len += n;
	g->p[g->len] = '\0';
}

static void puts_(struct gen *g, const char *s)
{
	put(g, s, strlen(s));
}

static void repeat(struct gen *g, const char *s, size_t times)
{
	for (size_t i = 0; i < times; i++)
		puts_(g, s);
}

/* {"input_data":"<n x unit>"} */
static struct gen text_body(const char *unit, size_t n)
{
	struct gen g = {0};

	puts_(&g, "{\"input_data\":\"");
	repeat(&g, unit, n);
	puts_(&g, "\"}");
	return g;
}

static struct gen e_acute(size_t n)
{
	return text_body("\xc3\xa9", n);
}

static struct gen ascii(size_t n)
{
	return text_body("a", n);
}

/* {"x":[[[...]]],"input_data":"a"}, n levels of arrays */
static struct gen deep_inside(size_t n)
{
	struct gen g = {0};

	puts_(&g, "{\"x\":");
	repeat(&g, "[", n);
	repeat(&g, "]", n);
	puts_(&g, ",\"input_data\":\"a\"}");
	return g;
}

static struct gen deep_objects(size_t n)
{
	struct gen g = {0};

	repeat(&g, "{\"a\":", n);
	puts_(&g, "1");
	repeat(&g, "}", n);
	return g;
}

static struct gen deep_top(size_t n)
{
	struct gen g = {0};

	repeat(&g, "[", n);
	repeat(&g, "]", n);
	return g;
}

/* A valid body of exactly n bytes. */
static struct gen sized(size_t n)
{
	static const char head[] = "{\"input_data\":\"x\",\"pad\":\"";
	struct gen g = {0};

	puts_(&g, head);
	repeat(&g, "p", n - (sizeof(head) - 1) - 2);
	puts_(&g, "\"}");
	assert_int_equal(g.len, n);
	return g;
}

/* async body whose callback_url is n bytes */
static struct gen url_of(size_t n)
{
	struct gen g = {0};

	puts_(&g, "{\"input_data\":\"a\",\"callback_url\":\"http://example.com/");
	repeat(&g, "u", n - strlen("http://example.com/"));
	puts_(&g, "\"}");
	return g;
}

/* ---- bad bodies ----------------------------------------------------------- */

struct bad {
	const char *name;
	const char *body; /* literal (may hold NULs) ... */
	size_t len;
	struct gen (*make)(size_t); /* ... or generated */
	size_t arg;
	enum request_mode mode;
	enum request_err rc;
	int status;
	const char *field;
};

#define S REQUEST_SYNC
#define A REQUEST_ASYNC
#define INV(name, lit, mode, field)                                                                \
	{                                                                                          \
		name, lit, sizeof(lit) - 1, NULL, 0, mode, REQUEST_INVALID, 422, field             \
	}
#define GEN(name, fn, arg, mode, rc, status, field)                                                \
	{                                                                                          \
		name, NULL, 0, fn, arg, mode, rc, status, field                                    \
	}
#define OKURL ",\"callback_url\":\"http://example.com/cb\"}"

static const struct bad bad[] = {
    /* the body as a whole */
    INV("empty body", "", S, "body"),
    INV("blank body", " \r\n\t", S, "body"),
    INV("array", "[1,2]", S, "body"),
    INV("string", "\"hello\"", S, "body"),
    INV("number", "42", S, "body"),
    INV("null", "null", S, "body"),
    INV("true", "true", A, "body"),
    INV("lone brace", "{", S, "body"),
    INV("truncated after value", "{\"input_data\":\"abc\"", S, "body"),
    INV("truncated in string", "{\"input_data\":\"ab", S, "body"),
    INV("truncated after key", "{\"input_data\"", S, "body"),
    INV("truncated escape", "{\"input_data\":\"ab\\", S, "body"),
    INV("trailing comma", "{\"input_data\":\"abc\",}", S, "body"),
    INV("missing colon", "{\"input_data\" \"abc\"}", S, "body"),
    INV("unquoted key", "{input_data:\"abc\"}", S, "body"),
    INV("single quotes", "{'input_data':'abc'}", S, "body"),
    INV("comment", "{\"input_data\":\"abc\" /* c */}", S, "body"),
    INV("trailing junk", "{\"input_data\":\"abc\"} x", S, "body"),
    INV("two objects", "{\"input_data\":\"abc\"}{}", S, "body"),
    INV("NaN in unknown field", "{\"input_data\":\"a\",\"x\":NaN}", S, "body"),
    INV("Infinity in unknown field", "{\"input_data\":\"a\",\"x\":Infinity}", S, "body"),
    INV("leading zero", "{\"input_data\":\"a\",\"iterations\":010}", S, "body"),
    INV("plus sign", "{\"input_data\":\"a\",\"iterations\":+1}", S, "body"),
    INV("bad escape", "{\"input_data\":\"a\\x\"}", S, "body"),
    INV("short \\u escape", "{\"input_data\":\"a\\u12\"}", S, "body"),
    INV("UTF-8 BOM", "\xef\xbb\xbf{\"input_data\":\"a\"}", S, "body"),
    INV("form feed as blank", "{\"input_data\":\f\"a\"}", S, "body"),
    INV("raw NUL in string", "{\"input_data\":\"a\0b\"}", S, "body"),
    INV("raw NUL after object", "{\"input_data\":\"a\"}\0", S, "body"),
    INV("raw tab in string", "{\"input_data\":\"a\tb\"}", S, "body"),
    INV("raw newline in string", "{\"input_data\":\"a\nb\"}", S, "body"),
    INV("lone high surrogate escape", "{\"input_data\":\"\\ud800\"}", S, "body"),
    INV("lone low surrogate escape", "{\"input_data\":\"x\\udc00\"}", S, "body"),
    INV("high then letter", "{\"input_data\":\"\\ud83dx\"}", S, "body"),
    INV("high then non-surrogate", "{\"input_data\":\"\\ud83d\\u0041\"}", S, "body"),
    INV("two highs", "{\"input_data\":\"\\ud83d\\ud83d\"}", S, "body"),
    INV("\\u0000 in the input_data key", "{\"input_data\\u0000x\":\"a\"}", S, "body"),
    INV("\\u0000 in an unknown key", "{\"input_data\":\"a\",\"z\\u0000\" : 1}", S, "body"),
    INV("lone surrogate in unknown field", "{\"input_data\":\"a\",\"z\":\"\\uDBFF\"}", S, "body"),
    /* invalid UTF-8 anywhere, not only in input_data */
    INV("bad UTF-8 in an unknown key", "{\"input_data\":\"a\",\"z\xff\":1}", S, "body"),
    INV("bad UTF-8 in an unknown value", "{\"input_data\":\"a\",\"z\":\"\xc0\xaf\"}", S, "body"),
    INV("raw surrogate in an unknown value", "{\"input_data\":\"a\",\"z\":\"\xed\xa0\x80\"}", S,
        "body"),
    INV("truncated UTF-8 in a nested unknown", "{\"input_data\":\"a\",\"z\":[\"\xe2\x9c\"]}", S,
        "body"),
    INV("bad UTF-8 in callback_url on /sync (ignored field)",
        "{\"input_data\":\"a\",\"callback_url\":\"\xf5\"}", S, "body"),
    GEN("10,000-deep arrays inside", deep_inside, 10000, S, REQUEST_INVALID, 422, "body"),
    GEN("10,000-deep objects", deep_objects, 10000, S, REQUEST_INVALID, 422, "body"),
    GEN("33-deep objects", deep_objects, 33, S, REQUEST_INVALID, 422, "body"),
    GEN("10,000-deep arrays at top", deep_top, 10000, S, REQUEST_INVALID, 422, "body"),
    GEN("body one byte over the cap", sized, CAP + 1, S, REQUEST_TOO_LARGE, 413, "body"),
    GEN("body far over the cap", sized, 4 * CAP, A, REQUEST_TOO_LARGE, 413, "body"),

    /* input_data */
    INV("input_data missing", "{}", S, "input_data"),
    INV("input_data missing, others there", "{\"iterations\":5}", S, "input_data"),
    INV("input_data null", "{\"input_data\":null}", S, "input_data"),
    INV("input_data number", "{\"input_data\":123}", S, "input_data"),
    INV("input_data boolean", "{\"input_data\":true}", S, "input_data"),
    INV("input_data array", "{\"input_data\":[\"a\"]}", S, "input_data"),
    INV("input_data object", "{\"input_data\":{}}", S, "input_data"),
    INV("input_data empty", "{\"input_data\":\"\"}", S, "input_data"),
    GEN("input_data 10001 x e-acute", e_acute, 10001, S, REQUEST_INVALID, 422, "input_data"),
    GEN("input_data 10001 ASCII", ascii, 10001, A, REQUEST_INVALID, 422, "input_data"),
    INV("input_data overlong slash C0 AF", "{\"input_data\":\"\xc0\xaf\"}", S, "input_data"),
    INV("input_data overlong E0 80 AF", "{\"input_data\":\"\xe0\x80\xaf\"}", S, "input_data"),
    INV("input_data overlong F0 80 80 AF", "{\"input_data\":\"\xf0\x80\x80\xaf\"}", S,
        "input_data"),
    INV("input_data raw surrogate ED A0 80", "{\"input_data\":\"\xed\xa0\x80\"}", S, "input_data"),
    INV("input_data truncated E2 9C", "{\"input_data\":\"a\xe2\x9c\"}", S, "input_data"),
    INV("input_data truncated mid-string",
        "{\"input_data\":\"\xe2\x9c"
        "a\"}",
        S, "input_data"),
    INV("input_data 0xFF", "{\"input_data\":\"\xff\"}", S, "input_data"),
    INV("input_data 0xFE", "{\"input_data\":\"a\xfe\"}", S, "input_data"),
    INV("input_data above U+10FFFF", "{\"input_data\":\"\xf4\x90\x80\x80\"}", S, "input_data"),
    INV("input_data lone continuation", "{\"input_data\":\"\x80\"}", S, "input_data"),
    INV("input_data \\u0000 inside", "{\"input_data\":\"a\\u0000b\"}", S, "input_data"),
    INV("input_data only \\u0000", "{\"input_data\":\"\\u0000\"}", A, "input_data"),

    /* iterations */
    INV("iterations 0", "{\"input_data\":\"a\",\"iterations\":0}", S, "iterations"),
    INV("iterations -0", "{\"input_data\":\"a\",\"iterations\":-0}", S, "iterations"),
    INV("iterations -1", "{\"input_data\":\"a\",\"iterations\":-1}", S, "iterations"),
    INV("iterations 1000001", "{\"input_data\":\"a\",\"iterations\":1000001}", S, "iterations"),
    INV("iterations 1e3", "{\"input_data\":\"a\",\"iterations\":1e3}", S, "iterations"),
    INV("iterations 1E3", "{\"input_data\":\"a\",\"iterations\":1E3}", S, "iterations"),
    INV("iterations 1.0", "{\"input_data\":\"a\",\"iterations\":1.0}", S, "iterations"),
    INV("iterations 1.", "{\"input_data\":\"a\",\"iterations\":1.}", S, "iterations"),
    INV("iterations 1e400", "{\"input_data\":\"a\",\"iterations\":1e400}", S, "iterations"),
    INV("iterations 2^63-1", "{\"input_data\":\"a\",\"iterations\":9223372036854775807}", S,
        "iterations"),
    INV("iterations 2^63", "{\"input_data\":\"a\",\"iterations\":9223372036854775808}", S,
        "iterations"),
    INV("iterations 2^64", "{\"input_data\":\"a\",\"iterations\":18446744073709551616}", S,
        "iterations"),
    INV("iterations 10^30", "{\"input_data\":\"a\",\"iterations\":1000000000000000000000000000000}",
        S, "iterations"),
    INV("iterations -2^63-1", "{\"input_data\":\"a\",\"iterations\":-9223372036854775809}", S,
        "iterations"),
    INV("iterations \"10\"", "{\"input_data\":\"a\",\"iterations\":\"10\"}", S, "iterations"),
    INV("iterations true", "{\"input_data\":\"a\",\"iterations\":true}", S, "iterations"),
    INV("iterations null", "{\"input_data\":\"a\",\"iterations\":null}", S, "iterations"),
    INV("iterations array", "{\"input_data\":\"a\",\"iterations\":[10]}", A, "iterations"),
    INV("iterations object", "{\"input_data\":\"a\",\"iterations\":{}}", S, "iterations"),
    INV("duplicate iterations, last bad",
        "{\"input_data\":\"a\",\"iterations\":5,\"iterations\":0}", S, "iterations"),

    /* callback_url, async only */
    INV("callback_url missing", "{\"input_data\":\"a\"}", A, "callback_url"),
    INV("callback_url null", "{\"input_data\":\"a\",\"callback_url\":null}", A, "callback_url"),
    INV("callback_url number", "{\"input_data\":\"a\",\"callback_url\":42}", A, "callback_url"),
    INV("callback_url array", "{\"input_data\":\"a\",\"callback_url\":[]}", A, "callback_url"),
    INV("callback_url empty", "{\"input_data\":\"a\",\"callback_url\":\"\"}", A, "callback_url"),
    INV("callback_url \\u0000", "{\"input_data\":\"a\",\"callback_url\":\"http://a/\\u0000\"}", A,
        "callback_url"),
    INV("callback_url 0xFF", "{\"input_data\":\"a\",\"callback_url\":\"http://a/\xff\"}", A,
        "callback_url"),
    GEN("callback_url 2049 bytes", url_of, 2049, A, REQUEST_INVALID, 422, "callback_url"),

    /* the first bad field in table order is the one named */
    INV("two bad fields", "{\"input_data\":1,\"iterations\":0}", S, "input_data"),
    INV("bad iterations before missing url", "{\"input_data\":\"a\",\"iterations\":0}", A,
        "iterations"),
};

static void test_bad_bodies(void **state)
{
	int failures = 0;

	(void)state;
	assert_true(sizeof(bad) / sizeof(bad[0]) >= 40);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const struct bad *b = &bad[i];
		struct gen g = {0};
		const char *body = b->body;
		size_t len = b->len;
		struct job_request out;
		struct request_error err;
		enum request_err rc;
		char prefix[64];

		if (b->make != NULL) {
			g = b->make(b->arg);
			body = g.p;
			len = g.len;
		}
		memset(&out, 0xab, sizeof(out));
		rc = request_parse(body, len, b->mode, &cfg, &out, &err);
		snprintf(prefix, sizeof(prefix), "%s: ", b->field);
		if (rc != b->rc || err.http_status != b->status ||
		    strcmp(err.field, b->field) != 0 ||
		    strncmp(err.detail, prefix, strlen(prefix)) != 0 || out.input_data != NULL ||
		    out.callback_url != NULL || out.iterations != 0) {
			print_error("case \"%s\": rc=%d status=%d field=%s detail=\"%s\"; "
			            "expected rc=%d status=%d field=%s\n",
			            b->name, rc, err.http_status, err.field, err.detail, b->rc,
			            b->status, b->field);
			failures++;
		}
		free(g.p);
	}
	assert_int_equal(failures, 0);
}

/* ---- good bodies ---------------------------------------------------------- */

struct good {
	const char *name;
	const char *body;
	size_t len;
	struct gen (*make)(size_t);
	size_t arg;
	enum request_mode mode;
	const char *input; /* expected input_data; NULL: do not compare */
	size_t bytes;
	size_t chars;
	int64_t iterations; /* -1: cfg.default_iterations */
	const char *url;    /* expected callback_url; NULL: must be NULL */
};

#define OK(name, lit, mode, in, b, c, it, url)                                                     \
	{                                                                                          \
		name, lit, sizeof(lit) - 1, NULL, 0, mode, in, b, c, it, url                       \
	}
#define OKGEN(name, fn, arg, mode, b, c, it, url)                                                  \
	{                                                                                          \
		name, NULL, 0, fn, arg, mode, NULL, b, c, it, url                                  \
	}

static const struct good good[] = {
    OK("minimal sync", "{\"input_data\":\"hello\"}", S, "hello", 5, 5, -1, NULL),
    OK("iterations 1", "{\"input_data\":\"hello\",\"iterations\":1}", S, "hello", 5, 5, 1, NULL),
    OK("iterations max", "{\"iterations\":1000000,\"input_data\":\"hello\"}", S, "hello", 5, 5,
       1000000, NULL),
    OK("blanks around", " \r\n\t{ \"input_data\" : \"hello\" ,\n\"iterations\" : 2 }\n \t", S,
       "hello", 5, 5, 2, NULL),
    OK("multibyte",
       "{\"input_data\":\"h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93 \xe6\x97\xa5\xe6\x9c\xac\"}", S,
       "h\xc3\xa9llo w\xc3\xb6rld \xe2\x9c\x93 \xe6\x97\xa5\xe6\x9c\xac", 24, 16, -1, NULL),
    OK("four-byte character", "{\"input_data\":\"\xf0\x9f\x98\x80\"}", S, "\xf0\x9f\x98\x80", 4, 1,
       -1, NULL),
    OK("U+10FFFF", "{\"input_data\":\"\xf4\x8f\xbf\xbf\"}", S, "\xf4\x8f\xbf\xbf", 4, 1, -1, NULL),
    OK("escaped surrogate pair", "{\"input_data\":\"\\ud83d\\ude00\"}", S, "\xf0\x9f\x98\x80", 4, 1,
       -1, NULL),
    OK("escapes", "{\"input_data\":\"\\u00e9\\t\\n\\\"\\\\\\/\"}", S, "\xc3\xa9\t\n\"\\/", 7, 6, -1,
       NULL),
    OK("escaped control character", "{\"input_data\":\"\\u0001\"}", S, "\x01", 1, 1, -1, NULL),
    OK("unknown fields ignored",
       "{\"x\":{\"y\":[1,2.5,-3e2,true,false,null]},\"input_data\":\"a\",\"cl\xc3\xa9\":"
       "\"\xf0\x9f\x98\x80\"}",
       S, "a", 1, 1, -1, NULL),
    OK("callback_url ignored on sync", "{\"input_data\":\"a\",\"callback_url\":5}", S, "a", 1, 1,
       -1, NULL),
    OK("async", "{\"input_data\":\"a\",\"iterations\":7" OKURL, A, "a", 1, 1, 7,
       "http://example.com/cb"),
    OK("duplicate key: the last wins",
       "{\"input_data\":\"a\",\"iterations\":\"x\",\"iterations\":3}", S, "a", 1, 1, 3, NULL),
    OK("\\u0000 in an unknown value", "{\"z\":\"\\u0000\",\"input_data\":\"a\"}", S, "a", 1, 1, -1,
       NULL),
    OK("escaped key name", "{\"input\\u005fdata\":\"a\"}", S, "a", 1, 1, -1, NULL),
    OKGEN("10000 x e-acute (20000 bytes)", e_acute, 10000, S, 20000, 10000, -1, NULL),
    OKGEN("10000 ASCII", ascii, 10000, S, 10000, 10000, -1, NULL),
    OKGEN("body exactly at the cap", sized, CAP, S, 1, 1, -1, NULL),
    OKGEN("callback_url 2048 bytes", url_of, 2048, A, 1, 1, -1, NULL),
};

static void test_good_bodies(void **state)
{
	int failures = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		const struct good *t = &good[i];
		struct gen g = {0};
		const char *body = t->body;
		size_t len = t->len;
		struct job_request out;
		struct request_error err;
		enum request_err rc;
		int64_t want_it = t->iterations < 0 ? cfg.default_iterations : t->iterations;

		if (t->make != NULL) {
			g = t->make(t->arg);
			body = g.p;
			len = g.len;
		}
		rc = request_parse(body, len, t->mode, &cfg, &out, &err);
		if (rc != REQUEST_OK || out.input_data == NULL || out.input_bytes != t->bytes ||
		    strlen(out.input_data) != t->bytes || out.input_chars != t->chars ||
		    out.iterations != want_it ||
		    (t->input != NULL && strcmp(out.input_data, t->input) != 0) ||
		    (t->mode == REQUEST_SYNC && out.callback_url != NULL) ||
		    (t->mode == REQUEST_ASYNC && out.callback_url == NULL) ||
		    (t->url != NULL && strcmp(out.callback_url, t->url) != 0) ||
		    err.http_status != 0) {
			print_error(
			    "case \"%s\": rc=%d detail=\"%s\" bytes=%zu chars=%zu it=%lld\n",
			    t->name, rc, err.detail, out.input_bytes, out.input_chars,
			    (long long)out.iterations);
			failures++;
		}
		if (t->make == url_of && rc == REQUEST_OK && strlen(out.callback_url) != t->arg)
			failures++;
		request_free(&out);
		assert_null(out.input_data);
		free(g.p);
	}
	assert_int_equal(failures, 0);
}

/* json-c's limit counts the body object itself: 32 levels pass, 33 fail. */
static void test_depth_limit(void **state)
{
	struct gen g = {0};
	struct job_request out;
	struct request_error err;

	(void)state;
	puts_(&g, "{\"input_data\":\"a\",\"x\":");
	repeat(&g, "[", 31);
	repeat(&g, "]", 31);
	puts_(&g, "}");
	assert_int_equal(request_parse(g.p, g.len, REQUEST_SYNC, &cfg, &out, &err), REQUEST_OK);
	request_free(&out);
	free(g.p);
	g = deep_inside(32);
	assert_int_equal(request_parse(g.p, g.len, REQUEST_SYNC, &cfg, &out, &err),
	                 REQUEST_INVALID);
	assert_string_equal(err.field, "body");
	assert_non_null(strstr(err.detail, "nested"));
	free(g.p);
}

/* json-c 0.16 saturates integers past int64 silently; even with a bound
 * of INT64_MAX the saturated values are refused, not taken as the bound. */
static void test_int64_saturation(void **state)
{
	static const char *const bodies[] = {
	    "{\"input_data\":\"a\",\"iterations\":9223372036854775808}",
	    "{\"input_data\":\"a\",\"iterations\":99999999999999999999999}",
	    "{\"input_data\":\"a\",\"iterations\":9223372036854775807}",
	};
	static const char big[] = "{\"input_data\":\"a\",\"iterations\":9223372036854775806}";
	struct config c = cfg;
	struct job_request out;
	struct request_error err;

	(void)state;
	c.max_iterations = INT64_MAX;
	for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		assert_int_equal(
		    request_parse(bodies[i], strlen(bodies[i]), REQUEST_SYNC, &c, &out, &err),
		    REQUEST_INVALID);
		assert_string_equal(err.field, "iterations");
	}
	assert_int_equal(request_parse(big, sizeof(big) - 1, REQUEST_SYNC, &c, &out, &err),
	                 REQUEST_OK);
	assert_int_equal(out.iterations, INT64_MAX - 1);
	request_free(&out);
}

/* The default comes from the configuration as config_load() fills it. */
static void test_default_from_config(void **state)
{
	static const char body[] = "{\"input_data\":\"hello\"}";
	struct config c;
	char msg[512];
	struct job_request out;
	struct request_error err;

	(void)state;
	setenv("CONSUMA_DEFAULT_ITERATIONS", "1234", 1);
	assert_int_equal(config_load(&c, msg, sizeof(msg)), CONFIG_OK);
	unsetenv("CONSUMA_DEFAULT_ITERATIONS");
	assert_int_equal(request_parse(body, sizeof(body) - 1, REQUEST_SYNC, &c, &out, &err),
	                 REQUEST_OK);
	assert_int_equal(out.iterations, 1234);
	request_free(&out);
}

/* The body need not be NUL-terminated: parse a slice of a larger buffer. */
static void test_not_terminated(void **state)
{
	static const char buf[] = "{\"input_data\":\"hey\"}GARBAGE";
	struct job_request out;
	struct request_error err;

	(void)state;
	assert_int_equal(request_parse(buf, 20, REQUEST_SYNC, &cfg, &out, &err), REQUEST_OK);
	assert_string_equal(out.input_data, "hey");
	request_free(&out);
	assert_int_equal(request_parse(buf, 21, REQUEST_SYNC, &cfg, &out, &err), REQUEST_INVALID);
	assert_string_equal(err.field, "body");
	assert_int_equal(request_parse(NULL, 0, REQUEST_SYNC, &cfg, &out, &err), REQUEST_INVALID);
	assert_string_equal(err.field, "body");
	assert_int_equal(err.http_status, 422);
}

static void test_details(void **state)
{
	static const struct {
		const char *body;
		enum request_mode mode;
		const char *detail;
	} cases[] = {
	    {"", S, "body: is empty; expected a JSON object"},
	    {"42", S, "body: must be a JSON object"},
	    {" [{}]", S, "body: must be a JSON object"},
	    {"{\"input_data\":\"a\"", S, "body: truncated JSON (ends inside the object)"},
	    {"{\"input_data\":\"a\",\"iterations\":0}", S,
	     "iterations: must be between 1 and 1000000"},
	    {"{\"input_data\":\"a\",\"iterations\":\"10\"}", S,
	     "iterations: must be an integer, got a string"},
	    {"{\"input_data\":\"a\",\"iterations\":1e3}", S,
	     "iterations: must be an integer, got a number with a fraction or an exponent"},
	    {"{\"input_data\":\"\"}", S, "input_data: must be 1..10000 characters, got 0"},
	    {"{}", S, "input_data: is required"},
	    {"{\"input_data\":\"a\"}", A, "callback_url: is required for /async"},
	    {"{\"input_data\":\"a\\u0000\"}", S,
	     "input_data: must not contain NUL (\\u0000), found at byte 1"},
	    {"{\"input_data\":\"ab\xff\"}", S, "input_data: is not valid UTF-8 at byte 2"},
	    {"{\"input_data\":\"ab\",\"k\xff\":1}", S, "body: is not valid UTF-8 at offset 21"},
	    {"{\"input_data\":\"a\0\"}", S, "body: contains a NUL byte at offset 16"},
	};
	struct job_request out;
	struct request_error err;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t len = strlen(cases[i].body);

		if (i == sizeof(cases) / sizeof(cases[0]) - 1)
			len = 19; /* the one with a raw NUL */
		assert_int_not_equal(
		    request_parse(cases[i].body, len, cases[i].mode, &cfg, &out, &err), REQUEST_OK);
		assert_string_equal(err.detail, cases[i].detail);
	}
}

/* ---- the UTF-8 validator -------------------------------------------------- */

static void test_utf8(void **state)
{
	static const struct {
		const char *s;
		size_t n;
		bool ok;
		size_t chars;
	} cases[] = {
#define U(lit, ok, chars) {lit, sizeof(lit) - 1, ok, chars}
	    U("", true, 0),
	    U("hello", true, 5),
	    U("\x7f", true, 1),
	    U("\xc2\x80", true, 1),         /* U+0080, smallest two-byte */
	    U("\xdf\xbf", true, 1),         /* U+07FF */
	    U("\xe0\xa0\x80", true, 1),     /* U+0800 */
	    U("\xed\x9f\xbf", true, 1),     /* U+D7FF, just below surrogates */
	    U("\xee\x80\x80", true, 1),     /* U+E000, just above */
	    U("\xef\xbf\xbf", true, 1),     /* U+FFFF */
	    U("\xf0\x90\x80\x80", true, 1), /* U+10000 */
	    U("\xf4\x8f\xbf\xbf", true, 1), /* U+10FFFF */
	    U("a\xc3\xa9z", true, 3),
	    U("\0", false, 0), /* NUL */
	    U("a\0b", false, 0),
	    U("\x80", false, 0), /* lone continuation */
	    U("\xbf", false, 0),
	    U("\xc0\x80", false, 0),         /* overlong NUL */
	    U("\xc1\xbf", false, 0),         /* overlong */
	    U("\xe0\x9f\xbf", false, 0),     /* overlong three-byte */
	    U("\xf0\x8f\xbf\xbf", false, 0), /* overlong four-byte */
	    U("\xed\xa0\x80", false, 0),     /* U+D800 */
	    U("\xed\xbf\xbf", false, 0),     /* U+DFFF */
	    U("\xf4\x90\x80\x80", false, 0), /* U+110000 */
	    U("\xf5\x80\x80\x80", false, 0),
	    U("\xf8\x88\x80\x80\x80", false, 0), /* five-byte form */
	    U("\xfe", false, 0),
	    U("\xff", false, 0),
	    U("\xc3", false, 0), /* truncated */
	    U("\xe2\x9c", false, 0),
	    U("\xf0\x9f\x98", false, 0),
	    U("\xe2\x9c"
	      "a",
	      false, 0), /* bad continuation */
	    U("\xc3\xc3\xa9", false, 0),
#undef U
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t chars = 999;
		bool ok = request_utf8_valid(cases[i].s, cases[i].n, &chars);

		if (ok != cases[i].ok || (ok && chars != cases[i].chars))
			fail_msg("utf8 case %zu: ok=%d chars=%zu", i, ok, chars);
	}
	/* a truncated sequence at the very end of an exactly sized buffer:
	 * ASan catches a read past n */
	for (size_t n = 1; n <= 3; n++) {
		char *p = malloc(n);

		assert_non_null(p);
		memcpy(p, "\xf0\x9f\x98", n);
		assert_false(request_utf8_valid(p, n, NULL));
		free(p);
	}
	/* n ends inside a sequence whose remaining bytes follow in memory */
	assert_false(request_utf8_valid("\xe2\x9c\x93", 2, NULL));
	assert_false(request_utf8_valid("a\xf0\x9f\x98\x80", 4, NULL));
	assert_false(request_utf8_valid("\xc3\xa9", 1, NULL));
	assert_true(request_utf8_valid("a\xf0\x9f\x98\x80", 5, NULL));
	assert_true(request_utf8_valid(NULL, 0, NULL));
	assert_false(request_utf8_valid(NULL, 1, NULL));
	assert_true(request_utf8_valid("ok", 2, NULL));
}

/* ---- out of memory --------------------------------------------------------- */

static void test_nomem(void **state)
{
	static const char body[] = "{\"input_data\":\"a\"" OKURL;
	struct job_request out;
	struct request_error err;

	(void)state;
	for (long n = 0; n < 2; n++) {
		alloc_fail_after(n);
		enum request_err rc =
		    request_parse(body, sizeof(body) - 1, REQUEST_ASYNC, &cfg, &out, &err);
		alloc_fail_after(-1);
		assert_int_equal(rc, REQUEST_NOMEM);
		assert_int_equal(err.http_status, 500);
		assert_null(out.input_data);
		assert_null(out.callback_url);
	}
	alloc_fail_after(2);
	assert_int_equal(request_parse(body, sizeof(body) - 1, REQUEST_ASYNC, &cfg, &out, &err),
	                 REQUEST_OK);
	alloc_fail_after(-1);
	request_free(&out);
	request_free(NULL);
}

/* ---- the plain path against json-c ------------------------------------------ */

/* Whether request_parse and request_parse_json_c answer body alike: the
 * same code, status, field and detail, or the same fields parsed. */
static bool same_answer(const char *name, const char *body, size_t len, enum request_mode mode)
{
	struct job_request a, b;
	struct request_error ea, eb;
	enum request_err ra = request_parse(body, len, mode, &cfg, &a, &ea);
	enum request_err rb = request_parse_json_c(body, len, mode, &cfg, &b, &eb);
	bool same =
	    ra == rb && ea.http_status == eb.http_status && strcmp(ea.field, eb.field) == 0 &&
	    strcmp(ea.detail, eb.detail) == 0 && a.input_bytes == b.input_bytes &&
	    a.input_chars == b.input_chars && a.iterations == b.iterations &&
	    (a.input_data == NULL) == (b.input_data == NULL) &&
	    (a.callback_url == NULL) == (b.callback_url == NULL) &&
	    (a.input_data == NULL || memcmp(a.input_data, b.input_data, a.input_bytes + 1) == 0) &&
	    (a.callback_url == NULL || strcmp(a.callback_url, b.callback_url) == 0);
	if (!same)
		print_error("case \"%s\" (%s): plain path rc=%d \"%s\" it=%lld, json-c rc=%d "
		            "\"%s\" it=%lld\n",
		            name, mode == REQUEST_SYNC ? "sync" : "async", ra, ea.detail,
		            (long long)a.iterations, rb, eb.detail, (long long)b.iterations);
	request_free(&a);
	request_free(&b);
	return same;
}

/* same_answer on a table's body: the literal, or what make(arg) builds. */
static bool same_answer_made(const char *name, const char *body, size_t len,
                             struct gen (*make)(size_t), size_t arg, enum request_mode mode)
{
	struct gen g = {0};
	if (make != NULL) {
		g = make(arg);
		body = g.p;
		len = g.len;
	}
	bool same = same_answer(name, body, len, mode);
	free(g.p);
	return same;
}

/* Bodies at the edges of the plain path's form: some it takes, some it
 * must leave to json-c. */
static const char *const plain[] = {
    "{}",
    " {} ",
    "{ }",
    "{\"input_data\":\"hello\",\"iterations\":1,\"callback_url\":\"http://127.0.0.1:9/cb\"}",
    "\n{ \"input_data\" :\t\"a\" , \"iterations\" : 12 }\r\n",
    "{\"input_data\":\"a\",\"iterations\":0}",
    "{\"input_data\":\"a\",\"iterations\":-1}",
    "{\"input_data\":\"a\",\"iterations\":-0}",
    "{\"input_data\":\"a\",\"iterations\":00}",
    "{\"input_data\":\"a\",\"iterations\":07}",
    "{\"input_data\":\"a\",\"iterations\":-}",
    "{\"input_data\":\"a\",\"iterations\":1.}",
    "{\"input_data\":\"a\",\"iterations\":1e2}",
    "{\"input_data\":\"a\",\"iterations\":1E2}",
    "{\"input_data\":\"a\",\"iterations\":12x}",
    "{\"input_data\":\"a\",\"iterations\":999999999999999999}",
    "{\"input_data\":\"a\",\"iterations\":-999999999999999999}",
    "{\"input_data\":\"a\",\"iterations\":9223372036854775807}",
    "{\"input_data\":\"a\",\"iterations\":9223372036854775808}",
    "{\"input_data\":\"a\",\"iterations\":-9223372036854775809}",
    "{\"input_data\":\"a\",\"iterations\":1000001}",
    "{\"input_data\":\"a\",\"iterations\":\"1\"}",
    "{\"input_data\":\"a\",\"iterations\":true}",
    "{\"input_data\":\"a\",\"iterations\":null}",
    "{\"input_data\":\"a\",\"iterations\":[1]}",
    "{\"input_data\":7}",
    "{\"input_data\":\"\"}",
    "{\"input_data\":\"a\",\"input_data\":\"b\"}",
    "{\"input_data\":\"a\",\"iterations\":1,\"iterations\":2}",
    "{\"x\":1,\"x\":2,\"input_data\":\"a\"}",
    "{\"input_data\":\"a\",\"x\":\"\\n\"}",
    "{\"input_data\":\"a\\u0041\"}",
    "{\"input_data\":\"a\tb\"}",
    "{\"input_data\":\"\xc3\xa9\"}",
    "{\"input_data\":\"\xc3\"}",
    "{\"input_data\":\"a\",\"\xff\":1}",
    "{\"input_data\":\"a\",\"x\":\"\xed\xa0\x80\"}",
    "{\"input_data\":\"a\",}",
    "{\"input_data\":\"a\" \"iterations\":1}",
    "{\"input_data\":\"a\"}}",
    "{\"input_data\":\"a\"} {}",
    "{\"input_data\":\"a\"",
    "{\"input_data\":\"a",
    "{\"input_data\":",
    "{\"input_data\"",
    "{\"input_data",
    "{,}",
    "{:1}",
    "{\"\":1,\"input_data\":\"a\"}",
    "{\"input_data\":\"a\",\"callback_url\":\"\"}",
    "{\"input_data\":\"a\",\"callback_url\":1}",
    "{\"input_datax\":\"a\"}",
    "{\"input_dat\":\"a\"}",
};

static void test_plain_path_as_json_c(void **state)
{
	int failures = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		for (int m = 0; m < 2; m++) {
			if (!same_answer(plain[i], plain[i], strlen(plain[i]),
			                 (enum request_mode)m))
				failures++;
		}
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const struct bad *t = &bad[i];
		if (!same_answer_made(t->name, t->body, t->len, t->make, t->arg, t->mode))
			failures++;
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		const struct good *t = &good[i];
		if (!same_answer_made(t->name, t->body, t->len, t->make, t->arg, t->mode))
			failures++;
	}
	assert_int_equal(failures, 0);
}

static void test_strerror(void **state)
{
	(void)state;
	assert_string_equal(request_strerror(REQUEST_OK), "ok");
	assert_non_null(request_strerror(REQUEST_TOO_LARGE));
	assert_non_null(request_strerror(REQUEST_INVALID));
	assert_non_null(request_strerror(REQUEST_NOMEM));
	assert_non_null(request_strerror((enum request_err)99));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bad_bodies),
	    cmocka_unit_test(test_good_bodies),
	    cmocka_unit_test(test_depth_limit),
	    cmocka_unit_test(test_default_from_config),
	    cmocka_unit_test(test_not_terminated),
	    cmocka_unit_test(test_details),
	    cmocka_unit_test(test_utf8),
	    cmocka_unit_test(test_nomem),
	    cmocka_unit_test(test_strerror),
	    cmocka_unit_test(test_int64_saturation),
	    cmocka_unit_test(test_plain_path_as_json_c),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
