/*
 * test_fcgi_http: consuma-fcgi's exchange helpers and route table
 * (fcgi-app/http.h, fcgi-app/router.h) without a web server.
 *
 * A fake FCGX_Request (a CGI environment, an input stream over a fixed
 * body, an output stream into a buffer) stands in for libfcgi's, so the
 * tests read exactly what a client would get: percent-decoding of paths and
 * query strings, the request path from REQUEST_URI or SCRIPT_NAME +
 * PATH_INFO, strict Content-Length and bounded body reading, the response
 * head and error bodies, and the router's 404 / 405 answers (routes that
 * pass to admission control and handlers need a database: integration
 * tests cover them).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "alloc.h"
#include "fake_fcgx.h"
#include "http.h"
#include "router.h"

/* ---- percent-decoding ---- */

struct pd_case {
	const char *in;
	size_t outlen;
	bool plus;
	long want; /* length, or -1 */
	const char *out;
};

static const struct pd_case pd_cases[] = {
    {"", 16, false, 0, ""},
    {"/requests", 64, false, 9, "/requests"},
    {"%41", 16, false, 1, "A"},
    {"%4a%4A", 16, false, 2, "JJ"},
    {"a%20b", 16, false, 3, "a b"},
    {"%2F", 16, false, 1, "/"},
    {"%25", 16, false, 1, "%"},
    {"%2541", 16, false, 3, "%41"}, /* decoded once, not twice */
    {"%C3%A9", 16, false, 2, "\xc3\xa9"},
    {"%ff", 16, false, 1, "\xff"},
    {"a+b", 16, false, 3, "a+b"}, /* paths: '+' is a plus */
    {"a+b", 16, true, 3, "a b"},  /* query strings: a space */
    {"%2B", 16, true, 1, "+"},    /* an escaped plus stays a plus */
    {"++", 16, true, 2, "  "},
    /* malformed escapes */
    {"%", 16, false, -1, NULL},
    {"%4", 16, false, -1, NULL},
    {"a%", 16, false, -1, NULL},
    {"%zz", 16, false, -1, NULL},
    {"%g1", 16, false, -1, NULL},
    {"%1g", 16, false, -1, NULL},
    {"% 1", 16, false, -1, NULL},
    {"%-1", 16, false, -1, NULL},
    {"%+1", 16, true, -1, NULL},
    /* a decoded NUL would cut the path short */
    {"%00", 16, false, -1, NULL},
    {"a%00b", 16, false, -1, NULL},
    /* room: n bytes need n + 1 */
    {"abc", 4, false, 3, "abc"},
    {"abc", 3, false, -1, NULL},
    {"%41%42", 3, false, 2, "AB"},
    {"%41%42", 2, false, -1, NULL},
    {"", 1, false, 0, ""},
    {"a", 1, false, -1, NULL},
    {"", 0, false, -1, NULL},
};

static void test_percent_decode(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(pd_cases) / sizeof(pd_cases[0]); i++) {
		const struct pd_case *c = &pd_cases[i];
		char out[64];
		long got;

		memset(out, 'Z', sizeof(out));
		got = http_percent_decode(c->in, strlen(c->in), out, c->outlen, c->plus);
		print_message("case %zu: '%s' outlen %zu -> %ld\n", i, c->in, c->outlen, got);
		assert_int_equal(got, c->want);
		if (got >= 0) {
			assert_memory_equal(out, c->out, (size_t)got + 1);
		}
		/* never a byte past outlen */
		for (size_t k = c->outlen; k < sizeof(out); k++)
			assert_int_equal(out[k], 'Z');
	}
	/* n, not the NUL, ends the input: an escape cut by n is malformed */
	char out[16];

	assert_int_equal(http_percent_decode("abcdef", 3, out, sizeof(out), false), 3);
	assert_string_equal(out, "abc");
	assert_int_equal(http_percent_decode("x%41", 3, out, sizeof(out), false), -1);
	assert_int_equal(http_percent_decode("x%41", 0, out, sizeof(out), false), 0);
	assert_string_equal(out, "");
}

static void test_reason(void **state)
{
	static const struct {
		int status;
		const char *reason;
	} cases[] = {
	    {200, "OK"},
	    {202, "Accepted"},
	    {400, "Bad Request"},
	    {404, "Not Found"},
	    {405, "Method Not Allowed"},
	    {411, "Length Required"},
	    {413, "Content Too Large"},
	    {422, "Unprocessable Content"},
	    {429, "Too Many Requests"},
	    {500, "Internal Server Error"},
	    {503, "Service Unavailable"},
	    {0, "Unknown"},
	    {201, "Unknown"},
	    {999, "Unknown"},
	    {-1, "Unknown"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_string_equal(http_reason(cases[i].status), cases[i].reason);
	for (int e = HTTP_BODY_OK; e <= HTTP_BODY_NOMEM; e++)
		assert_string_not_equal(http_body_strerror((enum http_body_err)e), "unknown error");
	assert_string_equal(http_body_strerror((enum http_body_err)99), "unknown error");
}

/* ---- the request path ---- */

struct path_case {
	const char *env[4];
	bool ok;
	const char *path;
	const char *query;
	const char *method;
};

static const struct path_case path_cases[] = {
    {{"REQUEST_METHOD=GET", "REQUEST_URI=/requests?limit=5&offset=0",
      "QUERY_STRING=limit=5&offset=0", NULL},
     true,
     "/requests",
     "limit=5&offset=0",
     "GET"},
    {{"REQUEST_METHOD=POST", "REQUEST_URI=/sync", NULL}, true, "/sync", "", "POST"},
    {{"REQUEST_URI=/requests/abc%2Ddef", NULL}, true, "/requests/abc-def", "", ""},
    {{"REQUEST_URI=/a%20b?x=%zz", "QUERY_STRING=x=%zz", NULL}, true, "/a b", "x=%zz", ""},
    {{"REQUEST_URI=/?", NULL}, true, "/", "", ""},
    {{"REQUEST_URI=/%zz", NULL}, false, NULL, NULL, NULL},
    {{"REQUEST_URI=/sync%00x", NULL}, false, NULL, NULL, NULL},
    {{"REQUEST_URI=/sync%", NULL}, false, NULL, NULL, NULL},
    /* no REQUEST_URI: SCRIPT_NAME + PATH_INFO, already decoded */
    {{"SCRIPT_NAME=/requests", "PATH_INFO=/a%41", NULL}, true, "/requests/a%41", "", ""},
    {{"SCRIPT_NAME=", "PATH_INFO=/healthz", NULL}, true, "/healthz", "", ""},
    {{"REQUEST_URI=", "SCRIPT_NAME=/sync", NULL}, true, "/sync", "", ""},
    {{NULL}, true, "", "", ""},
};

static void test_exchange_path(void **state)
{
	static struct fake f;

	(void)state;
	for (size_t i = 0; i < sizeof(path_cases) / sizeof(path_cases[0]); i++) {
		const struct path_case *c = &path_cases[i];
		struct http_exchange x;
		bool ok;

		fake_init(&f, c->env, NULL, 0);
		ok = http_exchange_init(&x, NULL, &f.fr);
		print_message("case %zu: %s -> %d '%s'\n", i, c->env[0] ? c->env[0] : "-", (int)ok,
		              x.path);
		assert_int_equal(ok, c->ok);
		assert_string_equal(x.route, "-");
		assert_int_equal(x.status, 0);
		if (ok) {
			assert_string_equal(x.path, c->path);
			assert_string_equal(x.query, c->query);
			assert_string_equal(x.method, c->method);
		}
		http_exchange_done(&x);
	}
}

/* A path that does not fit HTTP_PATH_MAX is refused, not cut. */
static void test_exchange_long_path(void **state)
{
	static struct fake f;
	static char uri[HTTP_PATH_MAX + 32];
	static char sn[HTTP_PATH_MAX + 32];
	const char *env[3] = {uri, NULL, NULL};
	struct http_exchange x;
	size_t pre = strlen("REQUEST_URI=");

	(void)state;
	/* HTTP_PATH_MAX - 1 bytes fit */
	memcpy(uri, "REQUEST_URI=", pre);
	uri[pre] = '/';
	memset(uri + pre + 1, 'a', HTTP_PATH_MAX - 2);
	uri[pre + HTTP_PATH_MAX - 1] = '\0';
	fake_init(&f, env, NULL, 0);
	assert_true(http_exchange_init(&x, NULL, &f.fr));
	assert_int_equal(strlen(x.path), HTTP_PATH_MAX - 1);
	http_exchange_done(&x);
	/* one more does not */
	uri[pre + HTTP_PATH_MAX - 1] = 'a';
	uri[pre + HTTP_PATH_MAX] = '\0';
	fake_init(&f, env, NULL, 0);
	assert_false(http_exchange_init(&x, NULL, &f.fr));
	http_exchange_done(&x);
	/* the same through SCRIPT_NAME */
	snprintf(sn, sizeof(sn), "SCRIPT_NAME=%s", uri + pre);
	env[0] = sn;
	fake_init(&f, env, NULL, 0);
	assert_false(http_exchange_init(&x, NULL, &f.fr));
	http_exchange_done(&x);
}

/* ---- the body ---- */

struct body_case {
	const char *length; /* CONTENT_LENGTH, NULL: absent */
	const char *body;   /* what arrived */
	size_t cap;
	enum http_body_err want;
	const char *got; /* on OK */
	int status;      /* what http_fail_body answers */
	const char *detail;
};

static const struct body_case body_cases[] = {
    {NULL, "", 100, HTTP_BODY_OK, "", 0, NULL},
    {"", "", 100, HTTP_BODY_OK, "", 0, NULL},
    {"0", "", 100, HTTP_BODY_OK, "", 0, NULL},
    {"5", "hello", 100, HTTP_BODY_OK, "hello", 0, NULL},
    {"5", "hello, and more", 100, HTTP_BODY_OK, "hello", 0, NULL}, /* no more than announced */
    {"00005", "hello", 100, HTTP_BODY_OK, "hello", 0, NULL},
    {"100", NULL, 100, HTTP_BODY_OK, NULL, 0, NULL}, /* exactly the cap */
    {"101", NULL, 100, HTTP_BODY_TOO_LARGE, NULL, 413, "larger than 100 bytes"},
    {"999999999999999999", "", 100, HTTP_BODY_TOO_LARGE, NULL, 413, "larger than"},
    {"9999999999999999999999999", "", 100, HTTP_BODY_TOO_LARGE, NULL, 413, "larger than"},
    {"18446744073709551617", "", SIZE_MAX, HTTP_BODY_TOO_LARGE, NULL, 413, "larger than"},
    {"6", "hello", 100, HTTP_BODY_TRUNCATED, NULL, 400, "shorter than Content-Length"},
    {"1", "", 100, HTTP_BODY_TRUNCATED, NULL, 400, "shorter"},
    {"-1", "", 100, HTTP_BODY_BAD_LENGTH, NULL, 400, "Content-Length"},
    {"+5", "hello", 100, HTTP_BODY_BAD_LENGTH, NULL, 400, "Content-Length"},
    {" 5", "hello", 100, HTTP_BODY_BAD_LENGTH, NULL, 400, "Content-Length"},
    {"5 ", "hello", 100, HTTP_BODY_BAD_LENGTH, NULL, 400, "Content-Length"},
    {"0x5", "hello", 100, HTTP_BODY_BAD_LENGTH, NULL, 400, "Content-Length"},
    {"5,5", "hello", 100, HTTP_BODY_BAD_LENGTH, NULL, 400, "Content-Length"},
    {"abc", "hello", 100, HTTP_BODY_BAD_LENGTH, NULL, 400, "not a decimal number"},
};

static void test_read_body(void **state)
{
	static struct fake f;
	static char full[101];

	(void)state;
	memset(full, 'b', 100);
	for (size_t i = 0; i < sizeof(body_cases) / sizeof(body_cases[0]); i++) {
		const struct body_case *c = &body_cases[i];
		char cl[64];
		const char *env[3] = {"REQUEST_METHOD=POST", NULL, NULL};
		const char *sent = c->body ? c->body : full;
		struct http_exchange x;
		char *body = (char *)"untouched";
		size_t len = 12345;
		enum http_body_err err;

		if (c->length != NULL) {
			snprintf(cl, sizeof(cl), "CONTENT_LENGTH=%s", c->length);
			env[1] = cl;
		}
		fake_init(&f, env, sent, strlen(sent));
		assert_true(http_exchange_init(&x, NULL, &f.fr));
		err = http_read_body(&x, c->cap, &body, &len);
		print_message("case %zu: length %s -> %d\n", i, c->length ? c->length : "-",
		              (int)err);
		assert_int_equal(err, c->want);
		if (err == HTTP_BODY_OK) {
			assert_non_null(body);
			if (c->got != NULL)
				assert_string_equal(body, c->got);
			else
				assert_string_equal(body, full);
			assert_int_equal(len, strlen(body));
			cz_free(body);
		} else {
			assert_null(body);
			assert_int_equal(len, 0);
			http_fail_body(&x, err, c->cap);
			assert_int_equal(x.status, c->status);
			assert_non_null(strstr(fake_output(&f), c->detail));
		}
		http_exchange_done(&x);
	}
}

/* No memory for the body: a 500, and nothing half-read is handed out. */
static void test_read_body_nomem(void **state)
{
	static struct fake f;
	const char *env[] = {"CONTENT_LENGTH=5", NULL};
	struct http_exchange x;
	char *body = NULL;
	size_t len = 0;

	(void)state;
	fake_init(&f, env, "hello", 5);
	assert_true(http_exchange_init(&x, NULL, &f.fr));
	alloc_fail_after(0);
	assert_int_equal(http_read_body(&x, 100, &body, &len), HTTP_BODY_NOMEM);
	alloc_fail_after(-1);
	assert_null(body);
	assert_int_equal(len, 0);
	http_fail_body(&x, HTTP_BODY_NOMEM, 100);
	assert_int_equal(x.status, 500);
	assert_non_null(strstr(fake_output(&f), "Status: 500 Internal Server Error\r\n"));
	assert_non_null(strstr(fake_output(&f), "internal error"));
	http_exchange_done(&x);
}

/* ---- responses ---- */

static void test_response_head(void **state)
{
	static struct fake f;
	const char *env[] = {"REQUEST_URI=/x", NULL};
	struct http_exchange x;
	json_object *o = json_object_new_object();

	(void)state;
	json_object_object_add(o, "url", json_object_new_string("http://a/b"));
	fake_init(&f, env, NULL, 0);
	assert_true(http_exchange_init(&x, NULL, &f.fr));
	http_header(&x, "Location", "/requests/%s", "abc");
	http_header(&x, "Retry-After", "%d", 7);
	assert_true(http_send_json(&x, 202, o));
	assert_int_equal(x.status, 202);
	/* slashes are not escaped; the length is the body's */
	assert_string_equal(fake_output(&f), "Status: 202 Accepted\r\n"
	                                     "Content-Type: application/json\r\n"
	                                     "Content-Length: 20\r\n"
	                                     "Cache-Control: no-store\r\n"
	                                     "Location: /requests/abc\r\n"
	                                     "Retry-After: 7\r\n"
	                                     "\r\n"
	                                     "{\"url\":\"http://a/b\"}");
	/* only the first response of an exchange is sent */
	assert_true(http_send_json(&x, 500, o));
	http_error(&x, 400, "x: late");
	assert_int_equal(x.status, 202);
	assert_null(strstr(fake_output(&f), "late"));
	assert_null(strstr(fake_output(&f), "Status: 500"));
	http_exchange_done(&x);
	json_object_put(o);

	/* an over-long header value is cut, never overrun */
	static char big[3000];
	memset(big, 'v', sizeof(big) - 1);
	fake_init(&f, env, NULL, 0);
	assert_true(http_exchange_init(&x, NULL, &f.fr));
	http_header(&x, "X-Big", "%s", big);
	http_error(&x, 404, "path: no such resource");
	assert_int_equal(x.status, 404);
	assert_non_null(strstr(fake_output(&f), "Status: 404 Not Found\r\n"));
	assert_non_null(strstr(fake_output(&f), "X-Big: vvv"));
	assert_null(strstr(fake_output(&f), big));
	http_exchange_done(&x);
}

/* Error bodies are {"detail": "..."} with the text JSON-escaped, whatever
 * the request put into it; Content-Length matches. */
static void test_error_body(void **state)
{
	static const struct {
		const char *detail;
		const char *json;
	} cases[] = {
	    {"path: no such resource", "{\"detail\":\"path: no such resource\"}"},
	    {"q: \"quoted\" \\ back", "{\"detail\":\"q: \\\"quoted\\\" \\\\ back\"}"},
	    {"nl\nand\ttab", "{\"detail\":\"nl\\nand\\ttab\"}"},
	    {"ctl \x01", "{\"detail\":\"ctl \\u0001\"}"},
	    {"", "{\"detail\":\"\"}"},
	};
	static struct fake f;
	const char *env[] = {"REQUEST_URI=/x", NULL};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct http_exchange x;
		char head[64];
		const char *out;
		const char *body;

		fake_init(&f, env, NULL, 0);
		assert_true(http_exchange_init(&x, NULL, &f.fr));
		http_error(&x, 422, "%s", cases[i].detail);
		out = fake_output(&f);
		print_message("case %zu: %s\n", i, out);
		body = strstr(out, "\r\n\r\n");
		assert_non_null(body);
		body += 4;
		assert_string_equal(body, cases[i].json);
		snprintf(head, sizeof(head), "Content-Length: %zu\r\n", strlen(body));
		assert_non_null(strstr(out, head));
		assert_non_null(strstr(out, "Status: 422 Unprocessable Content\r\n"));
		/* the body parses back to the detail */
		json_object *o = json_tokener_parse(body);
		json_object *d = NULL;

		assert_non_null(o);
		assert_true(json_object_object_get_ex(o, "detail", &d));
		assert_string_equal(json_object_get_string(d), cases[i].detail);
		json_object_put(o);
		http_exchange_done(&x);
	}
}

/* A busy database is a 503 the client may retry after 1 s. */
static void test_store_busy(void **state)
{
	static struct fake f;
	const char *env[] = {"REQUEST_URI=/sync", NULL};
	struct http_exchange x;

	(void)state;
	fake_init(&f, env, NULL, 0);
	assert_true(http_exchange_init(&x, NULL, &f.fr));
	http_store_failed(&x, STORE_BUSY, "insert");
	assert_int_equal(x.status, 503);
	assert_non_null(strstr(fake_output(&f), "Retry-After: 1\r\n"));
	assert_non_null(strstr(fake_output(&f), "database busy"));
	http_exchange_done(&x);
}

/* Retry-After goes out within 1..60 whatever the estimate, and the value
 * sent is the one returned (the message names it). */
static void test_retry_after_clamp(void **state)
{
	static const int64_t cases[][2] = {
	    {INT64_MIN, 1}, {-5, 1},  {0, 1},   {1, 1},      {2, 2},
	    {59, 59},       {60, 60}, {61, 60}, {86400, 60}, {INT64_MAX, 60},
	};
	const char *env[] = {"REQUEST_URI=/sync", NULL};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		static struct fake f;
		struct http_exchange x;
		char want[32];

		fake_init(&f, env, NULL, 0);
		assert_true(http_exchange_init(&x, NULL, &f.fr));
		assert_int_equal(http_retry_after(&x, cases[i][0]), cases[i][1]);
		http_error(&x, 503, "busy");
		snprintf(want, sizeof want, "Retry-After: %lld\r\n", (long long)cases[i][1]);
		assert_non_null(strstr(fake_output(&f), want));
		http_exchange_done(&x);
	}
}

/* ---- did the answer arrive ---- */

static void empty_ok(FCGX_Stream *s, int doClose)
{
	(void)s;
	(void)doClose; /* the bytes stay in outbuf, as if written */
}

static void empty_broken_pipe(FCGX_Stream *s, int doClose)
{
	(void)doClose;
	s->isClosed = 1;
	s->FCGI_errno = EPIPE;
}

/* http_finish tells an answer the front took from one whose write failed:
 * when the streams end (the response's one write), or already while it was
 * written. */
static void test_flush(void **state)
{
	static struct fake f;
	const char *env[] = {"REQUEST_URI=/async", NULL};
	struct http_exchange x;

	(void)state;
	fake_init(&f, env, NULL, 0);
	f.out.emptyBuffProc = empty_ok;
	assert_true(http_exchange_init(&x, NULL, &f.fr));
	http_error(&x, 202, "fine");
	assert_true(http_finish(&x));
	assert_false(x.write_failed);
	http_exchange_done(&x);

	fake_init(&f, env, NULL, 0);
	f.out.emptyBuffProc = empty_broken_pipe;
	assert_true(http_exchange_init(&x, NULL, &f.fr));
	http_error(&x, 202, "committed, never seen");
	assert_int_equal(x.status, 202);
	assert_false(http_finish(&x));
	assert_true(x.write_failed);
	http_exchange_done(&x);

	/* the stream broke before the answer: the write itself fails */
	fake_init(&f, env, NULL, 0);
	f.out.emptyBuffProc = empty_broken_pipe;
	f.out.stop = f.out.wrNext + 8; /* room for 8 bytes, then a write that fails */
	assert_true(http_exchange_init(&x, NULL, &f.fr));
	http_error(&x, 202, "a longer answer than the buffer holds");
	assert_true(x.write_failed);
	assert_false(http_finish(&x));
	http_exchange_done(&x);
}

/* ---- Content-Type of a job request: JSON or 415 ---- */

static void test_content_type(void **state)
{
	static const struct {
		const char *ct;
		bool json;
	} cases[] = {
	    {"application/json", true},
	    {"Application/JSON", true},
	    {"APPLICATION/JSON", true},
	    {" application/json ", true},
	    {"application/json; charset=utf-8", true},
	    {"application/json;charset=UTF-8", true},
	    {"application/json; charset=\"utf-8\"", true},
	    {"application/json ; CHARSET=Utf-8", true},
	    {"application/json;", true},
	    {"application/json; foo=bar", true},
	    {"application/json; foo=bar; charset=utf-8", true},
	    {"application/json; charset=latin1", false},
	    {"application/json; charset=utf-16", false},
	    {"application/json; charset=utf8x", false},
	    {"application/json; charset=\"utf-8", false},
	    {"application/json; charset", false},
	    {"application/json x", false},
	    {"application/jsonx", false},
	    {"application/json+ld", false},
	    {"application/jso", false},
	    {"application/ld+json", false},
	    {"text/json", false},
	    {"text/plain", false},
	    {"text/plain; charset=utf-8", false},
	    {"application/x-www-form-urlencoded", false},
	    {"multipart/form-data; boundary=x", false},
	    {"", false},
	    {NULL, false},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (http_content_type_json(cases[i].ct) != cases[i].json)
			fail_msg("Content-Type [%s]: want %d", cases[i].ct ? cases[i].ct : "(none)",
			         (int)cases[i].json);
	}
}

/* A job request that is not JSON is a 415 naming the header, before any of
 * its body is read; a JSON one reaches the parser. */
static void test_read_job_content_type(void **state)
{
	static const struct {
		const char *ct; /* NULL: no CONTENT_TYPE at all */
		int status;     /* 0: parsed */
	} cases[] = {
	    {NULL, 415},
	    {"CONTENT_TYPE=text/plain", 415},
	    {"CONTENT_TYPE=application/x-www-form-urlencoded", 415},
	    {"CONTENT_TYPE=application/json; charset=iso-8859-1", 415},
	    {"CONTENT_TYPE=application/json", 0},
	    {"CONTENT_TYPE=application/json; charset=utf-8", 0},
	};
	static struct fake f;
	static struct app app;
	static const char body[] = "{\"input_data\":\"hello\"}";
	char len[32];

	(void)state;
	memset(&app, 0, sizeof(app));
	app.cfg.max_body_bytes = 1024;
	app.cfg.max_iterations = 10;
	app.cfg.default_iterations = 1;
	snprintf(len, sizeof(len), "CONTENT_LENGTH=%zu", sizeof(body) - 1);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *env[] = {"REQUEST_METHOD=POST", "REQUEST_URI=/sync", len, cases[i].ct,
		                     NULL};
		struct job_request job = {0};
		struct http_exchange x;
		char *b = (char *)"untouched";
		size_t n = 99;
		bool ok;

		fake_init(&f, env, body, sizeof(body) - 1);
		assert_true(http_exchange_init(&x, &app, &f.fr));
		ok = http_read_job(&x, REQUEST_SYNC, &job, &b, &n);
		if (cases[i].status == 0) {
			assert_true(ok);
			assert_string_equal(job.input_data, "hello");
			assert_int_equal(n, sizeof(body) - 1);
			request_free(&job);
			cz_free(b);
		} else {
			assert_false(ok);
			assert_null(b);
			assert_int_equal(x.status, cases[i].status);
			assert_non_null(
			    strstr(fake_output(&f), "Status: 415 Unsupported Media Type\r\n"));
			assert_non_null(strstr(fake_output(&f),
			                       "{\"detail\":\"Content-Type: must be "
			                       "application/json"));
			/* nothing of the body was read */
			assert_ptr_equal(f.in.rdNext, f.inbuf);
		}
		http_exchange_done(&x);
	}
}

/* ---- the route table: 404 for unknown paths, 405 with Allow ---- */

struct route_case {
	const char *method;
	const char *uri;
	int status;
	const char *allow; /* the Allow header on 405 */
	const char *route; /* the route name logged */
};

static const struct route_case route_cases[] = {
    {"GET", "/", 404, NULL, "-"},
    {"GET", "/nope", 404, NULL, "-"},
    {"POST", "/sync/", 404, NULL, "-"}, /* no trailing-slash aliases */
    {"POST", "/SYNC", 404, NULL, "-"},
    {"POST", "/sync/x", 404, NULL, "-"},
    {"POST", "/syncx", 404, NULL, "-"},
    {"POST", "/async/", 404, NULL, "-"},
    {"GET", "/requests/", 404, NULL, "-"}, /* an empty id */
    {"GET", "/requests/a/b", 404, NULL, "-"},
    {"GET", "/requests//", 404, NULL, "-"},
    {"GET", "/requests%2Fa%2Fb", 404, NULL, "-"}, /* decoded before matching */
    {"GET", "/healthz/", 404, NULL, "-"},
    {"GET", "//sync", 404, NULL, "-"},
    {"GET", "/sync", 405, "POST", "sync"},
    {"PUT", "/sync", 405, "POST", "sync"},
    {"get", "/sync", 405, "POST", "sync"},
    {"post", "/sync", 405, "POST", "sync"}, /* methods are case-sensitive */
    {"GET", "/async", 405, "POST", "async"},
    {"POST", "/requests", 405, "GET", "requests"},
    {"DELETE", "/requests/abc", 405, "GET", "requests"},
    {"POST", "/requests%2Fabc", 405, "GET", "requests"},
    {"POST", "/healthz", 405, "GET", "healthz"},
    {"", "/healthz", 405, "GET", "healthz"},
    {"HEAD", "/healthz", 405, "GET", "healthz"},
};

static void test_routes(void **state)
{
	static struct fake f;

	(void)state;
	for (size_t i = 0; i < sizeof(route_cases) / sizeof(route_cases[0]); i++) {
		const struct route_case *c = &route_cases[i];
		char m[64];
		char u[128];
		char allow[64];
		const char *env[] = {m, u, "REMOTE_ADDR=127.0.0.1", NULL};
		struct http_exchange x;

		snprintf(m, sizeof(m), "REQUEST_METHOD=%s", c->method);
		snprintf(u, sizeof(u), "REQUEST_URI=%s", c->uri);
		fake_init(&f, env, NULL, 0);
		assert_true(http_exchange_init(&x, NULL, &f.fr));
		router_dispatch(&x);
		print_message("case %zu: %s %s -> %d\n", i, c->method, c->uri, x.status);
		assert_int_equal(x.status, c->status);
		assert_string_equal(x.route, c->route);
		if (c->allow != NULL) {
			snprintf(allow, sizeof(allow), "\r\nAllow: %s\r\n", c->allow);
			assert_non_null(strstr(fake_output(&f), allow));
		} else {
			assert_null(strstr(fake_output(&f), "Allow:"));
		}
		http_exchange_done(&x);
	}
}

/* The 405 detail names well-known methods, never an arbitrary one. */
static void test_405_detail(void **state)
{
	static struct fake f;
	const char *env[] = {"REQUEST_METHOD=X<script>", "REQUEST_URI=/sync", NULL};
	const char *env2[] = {"REQUEST_METHOD=PATCH", "REQUEST_URI=/sync", NULL};
	struct http_exchange x;

	(void)state;
	fake_init(&f, env, NULL, 0);
	assert_true(http_exchange_init(&x, NULL, &f.fr));
	router_dispatch(&x);
	assert_int_equal(x.status, 405);
	assert_null(strstr(fake_output(&f), "script"));
	assert_non_null(strstr(fake_output(&f), "this method is not allowed here; allowed: POST"));
	http_exchange_done(&x);

	fake_init(&f, env2, NULL, 0);
	assert_true(http_exchange_init(&x, NULL, &f.fr));
	router_dispatch(&x);
	assert_non_null(strstr(fake_output(&f), "method: PATCH is not allowed here"));
	http_exchange_done(&x);
}

/* http_json_add: values land, absent ones are JSON nulls, and a failed
 * allocation (a NULL value) is reported instead of becoming a null. */
static void test_json_add(void **state)
{
	json_object *o = json_object_new_object();

	(void)state;
	assert_non_null(o);
	assert_true(http_json_add(o, "a", true, json_object_new_int64(1)));
	assert_true(http_json_add(o, "b", false, NULL));
	assert_true(http_json_add(o, "c", false, json_object_new_string("dropped")));
	assert_string_equal(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
	                    "{\"a\":1,\"b\":null,\"c\":null}");
	/* json_object_new_* ran out of memory */
	assert_false(http_json_add(o, "d", true, NULL));
	assert_false(json_object_object_get_ex(o, "d", NULL));
	json_object_put(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_percent_decode), cmocka_unit_test(test_reason),
	    cmocka_unit_test(test_exchange_path),  cmocka_unit_test(test_exchange_long_path),
	    cmocka_unit_test(test_read_body),      cmocka_unit_test(test_read_body_nomem),
	    cmocka_unit_test(test_response_head),  cmocka_unit_test(test_error_body),
	    cmocka_unit_test(test_store_busy),     cmocka_unit_test(test_retry_after_clamp),
	    cmocka_unit_test(test_routes),         cmocka_unit_test(test_405_detail),
	    cmocka_unit_test(test_content_type),   cmocka_unit_test(test_read_job_content_type),
	    cmocka_unit_test(test_flush),          cmocka_unit_test(test_json_add),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
