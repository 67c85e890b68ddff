/*
 * test_fcgi_requests: GET /requests query parsing and GET /requests/{id}
 * (fcgi-app/requests.h) against a real SQLite store in a temporary
 * directory, through a fake FCGX_Request (as in test_fcgi_http).
 *
 * One table of query strings: the defaults, each parameter's bounds,
 * percent-decoding and '+', repeated and unknown parameters, malformed
 * escapes, over-long values, overflow; each either answers 200 with the
 * expected number of rows or 422 naming the parameter.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "fake_fcgx.h"
#include "http.h"
#include "ids.h"
#include "requests.h"
#include "store.h"

#define NROWS 250

static char tmpdir[] = "/tmp/test_fcgi_requests.XXXXXX";
static char dbpath[256];
static struct app app;
static struct store *db; /* the connection the handlers use */
static char first_id[IDS_UUID_LEN + 1];

/* ---- a fake libfcgi request ---- */

/* A GET of uri with query as its QUERY_STRING. */
static struct fake *fake_new(const char *uri, const char *query)
{
	struct fake *f = calloc(1, sizeof(*f));
	char uri_var[8192], query_var[8192];
	const char *env[] = {"REQUEST_METHOD=GET", uri_var, query_var, NULL};

	assert_non_null(f);
	snprintf(uri_var, sizeof(uri_var), "REQUEST_URI=%s", uri);
	snprintf(query_var, sizeof(query_var), "QUERY_STRING=%s", query);
	fake_init(f, env, NULL, 0);
	return f;
}

/* The body after the head, NUL-terminated. */
static const char *fake_body(struct fake *f)
{
	const char *b;

	b = strstr(fake_output(f), "\r\n\r\n");
	assert_non_null(b);
	return b + 4;
}

/* ---- fixture: NROWS finished /sync records ---- */

static int setup(void **state)
{
	enum store_err err = STORE_IO;
	char msg[256] = "";

	(void)state;
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	snprintf(dbpath, sizeof(dbpath), "%s/db.sqlite", tmpdir);
	db = store_open(dbpath, &err, msg, sizeof(msg));
	if (db == NULL) {
		fprintf(stderr, "store_open: %s\n", msg);
		return -1;
	}
	if (store_begin(db) != STORE_OK)
		return -1;
	for (int i = 0; i < NROWS; i++) {
		char id[IDS_UUID_LEN + 1];
		struct sync_record r = {
		    .id = id,
		    .input_data = "x",
		    .iterations = 1,
		    .result = "0000000000000000000000000000000000000000000000000000000000000000",
		    .duration_ms = 1.0,
		    .created_at = 1700000000000LL + i,
		    .completed_at = 1700000000001LL + i,
		    .client_addr = "127.0.0.1",
		};

		ids_uuidv7(id);
		if (i == 0)
			memcpy(first_id, id, sizeof(id));
		if (store_insert_sync(db, &r) != STORE_OK)
			return -1;
	}
	return store_commit(db) == STORE_OK ? 0 : -1;
}

static int teardown(void **state)
{
	static const char *const suffix[] = {"", "-wal", "-shm"};
	char p[300];

	(void)state;
	store_close(db);
	for (size_t i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s%s", dbpath, suffix[i]);
		unlink(p);
	}
	return rmdir(tmpdir);
}

/* ---- GET /requests ---- */

struct list_case {
	const char *query;
	int status;
	int rows;           /* on 200 */
	const char *detail; /* on 422: the detail contains this */
};

static const struct list_case list_cases[] = {
    /* defaults: 50 newest */
    {"", 200, 50, NULL},
    {"&&&", 200, 50, NULL},
    {"=x", 200, 50, NULL},
    {"unknown=1&other", 200, 50, NULL},
    {"unknown=%zz", 200, 50, NULL}, /* values of unknown keys are not read */
    {"Limit=1", 200, 50, NULL},     /* keys are case-sensitive */
    /* limit */
    {"limit=1", 200, 1, NULL},
    {"limit=200", 200, 200, NULL},
    {"limit=007", 200, 7, NULL},
    {"limit=%31%30", 200, 10, NULL},
    {"l%69mit=3", 200, 3, NULL},
    {"&&limit=3&", 200, 3, NULL},
    {"limit=0", 422, 0, "limit: must be an integer from 1 to 200"},
    {"limit=201", 422, 0, "limit:"},
    {"limit=-1", 422, 0, "limit:"},
    {"limit=+5", 422, 0, "limit:"}, /* '+' is a space */
    {"limit=%2B5", 422, 0, "limit:"},
    {"limit=5%20", 422, 0, "limit:"},
    {"limit=1e2", 422, 0, "limit:"},
    {"limit=0x10", 422, 0, "limit:"},
    {"limit=", 422, 0, "limit:"},
    {"limit", 422, 0, "limit:"},
    {"limit=99999999999999999999999", 422, 0, "limit:"},
    {"limit=5&limit=6", 422, 0, "limit: given more than once"},
    {"limit=5&li%6Dit=5", 422, 0, "given more than once"},
    {"limit=%", 422, 0, "limit: malformed"},
    {"limit=%3", 422, 0, "limit: malformed"},
    {"limit=%00", 422, 0, "limit: malformed"},
    /* offset */
    {"offset=0", 200, 50, NULL},
    {"offset=240", 200, 10, NULL},
    {"offset=249&limit=200", 200, 1, NULL},
    {"offset=250", 200, 0, NULL},
    {"offset=10000", 200, 0, NULL},
    {"offset=010000", 200, 0, NULL},
    {"offset=10001", 422, 0, "offset: must be an integer from 0 to 10000"},
    {"offset=1000000000000", 422, 0, "offset: must be an integer from 0 to 10000"},
    {"offset=9223372036854775807", 422, 0, "offset:"},
    {"offset=99999999999999999999999", 422, 0, "offset:"},
    {"offset=-1", 422, 0, "offset:"},
    {"offset=", 422, 0, "offset:"},
    {"offset=1&offset=1", 422, 0, "offset: given more than once"},
    /* mode */
    {"mode=sync", 200, 50, NULL},
    {"mode=async", 200, 0, NULL},
    {"mode=sync&limit=200&offset=100", 200, 150, NULL},
    {"mode=SYNC", 422, 0, "mode: must be sync or async"},
    {"mode=", 422, 0, "mode:"},
    {"mode=sync+", 422, 0, "mode:"},
    {"mode=sync%00", 422, 0, "mode: malformed"},
    {"mode=both", 422, 0, "mode:"},
    {"mode=sync&mode=sync", 422, 0, "mode: given more than once"},
    /* status: work states, callback states and failed */
    {"status=completed", 200, 50, NULL},
    {"status=completed&mode=sync&limit=1", 200, 1, NULL},
    {"status=queued", 200, 0, NULL},
    {"status=running", 200, 0, NULL},
    {"status=pending", 200, 0, NULL},
    {"status=delivering", 200, 0, NULL},
    {"status=delivered", 200, 0, NULL},
    {"status=retrying", 200, 0, NULL},
    {"status=failed", 200, 0, NULL},
    {"status=done", 422, 0, "status: must be queued"},
    {"status=Completed", 422, 0, "status:"},
    {"status=completed%20", 422, 0, "status:"},
    {"status=completed&status=failed", 422, 0, "status: given more than once"},
    /* value bound: 63 bytes fit, 64 do not */
    {"status=ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc", 422, 0,
     "status: must be"},
    {"status=cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc", 422, 0,
     "status: malformed or too long value"},
    /* a malformed key */
    {"%zz=1", 422, 0, "query: malformed parameter name"},
    {"%=1", 422, 0, "query: malformed parameter name"},
    {"a%00=1", 422, 0, "query: malformed parameter name"},
    {"%6F%66%66%73%65%74=249", 200, 1, NULL}, /* "offset" fully escaped still counts */
    /* unknown parameters are ignored whatever their length */
    {"abcdefghijklmnopqrs=1&limit=2", 200, 2, NULL},
    {"%6F%66%66%73%65%74x=1&limit=2", 200, 2, NULL},
    /* the first bad parameter answers */
    {"limit=0&mode=bad", 422, 0, "limit:"},
    {"mode=bad&limit=0", 422, 0, "mode:"},
};

static void test_list(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(list_cases) / sizeof(list_cases[0]); i++) {
		const struct list_case *c = &list_cases[i];
		struct fake *f = fake_new("/requests", c->query);
		struct http_exchange x;
		json_object *o;

		assert_true(http_exchange_init(&x, &app, &f->fr));
		x.store = db;
		requests_list(&x, "");
		print_message("case %zu: '%s' -> %d %.120s\n", i, c->query, x.status, fake_body(f));
		assert_int_equal(x.status, c->status);
		o = json_tokener_parse(fake_body(f));
		assert_non_null(o);
		if (c->status == 200) {
			assert_true(json_object_is_type(o, json_type_array));
			assert_int_equal(json_object_array_length(o), c->rows);
		} else {
			json_object *d = NULL;

			assert_true(json_object_object_get_ex(o, "detail", &d));
			assert_non_null(strstr(json_object_get_string(d), c->detail));
		}
		json_object_put(o);
		http_exchange_done(&x);
		free(f);
	}
}

/* An unknown parameter of any length, even one that is no valid escape
 * sequence, is ignored; the known ones around it still count. */
static void test_long_unknown(void **state)
{
	static const char *const fills[] = {"x", "%zz", "%41", "%00"};
	static char query[3 * 1000 + 64];

	(void)state;
	for (size_t i = 0; i < sizeof(fills) / sizeof(fills[0]); i++) {
		size_t n = 0;
		json_object *o;

		n += (size_t)snprintf(query + n, sizeof(query) - n, "limit=3&");
		while (n + 16 < 3 * 1000)
			n += (size_t)snprintf(query + n, sizeof(query) - n, "%s", fills[i]);
		snprintf(query + n, sizeof(query) - n, "=1&mode=sync");
		struct fake *f = fake_new("/requests", query);
		struct http_exchange x;

		assert_true(http_exchange_init(&x, &app, &f->fr));
		x.store = db;
		requests_list(&x, "");
		if (x.status != 200)
			fail_msg("a %zu-byte unknown name of %s: status %d", n, fills[i], x.status);
		o = json_tokener_parse(fake_body(f));
		assert_int_equal(json_object_array_length(o), 3);
		json_object_put(o);
		http_exchange_done(&x);
		free(f);
	}
}

static json_object *list(const char *query)
{
	struct fake *f = fake_new("/requests", query);
	struct http_exchange x;
	json_object *o;

	assert_true(http_exchange_init(&x, &app, &f->fr));
	x.store = db;
	requests_list(&x, "");
	assert_int_equal(x.status, 200);
	o = json_tokener_parse(fake_body(f));
	assert_non_null(o);
	http_exchange_done(&x);
	free(f);
	return o;
}

static const char *id_at(json_object *arr, size_t i)
{
	json_object *id = NULL;

	assert_true(json_object_object_get_ex(json_object_array_get_idx(arr, i), "id", &id));
	return json_object_get_string(id);
}

/* Newest first, and offset moves the window by exactly that many rows. */
static void test_paging(void **state)
{
	json_object *all = list("limit=200");
	json_object *page = list("limit=3&offset=197");
	json_object *last = list("limit=1&offset=249");

	(void)state;
	assert_int_equal(json_object_array_length(all), 200);
	for (size_t i = 1; i < 200; i++)
		assert_true(strcmp(id_at(all, i - 1), id_at(all, i)) > 0); /* UUIDv7: time order */
	assert_int_equal(json_object_array_length(page), 3);
	assert_string_equal(id_at(page, 0), id_at(all, 197));
	assert_string_equal(id_at(page, 2), id_at(all, 199));
	assert_string_equal(id_at(last, 0), first_id); /* the oldest is last */
	json_object_put(all);
	json_object_put(page);
	json_object_put(last);
}

/* ---- GET /requests/{id} ---- */

static void test_get(void **state)
{
	char upper[IDS_UUID_LEN + 1];
	char unknown[IDS_UUID_LEN + 1];
	const struct {
		const char *tail;
		int status;
	} cases[] = {
	    {first_id, 200},      {unknown, 404},
	    {upper, 404},         {"", 404},
	    {"not-a-uuid", 404},  {"00000000-0000-0000-0000-000000000000", 404},
	    {"' OR 1=1 --", 404},
	};

	(void)state;
	ids_uuidv7(unknown);
	snprintf(upper, sizeof(upper), "%s", first_id);
	for (char *p = upper; *p; p++)
		if (*p >= 'a' && *p <= 'f')
			*p = (char)(*p - 'a' + 'A');
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct fake *f;
		struct http_exchange x;

		if (strcmp(upper, first_id) == 0 && cases[i].tail == upper)
			continue; /* no hex letters to upper-case: nothing to test */
		f = fake_new("/requests/x", "");
		assert_true(http_exchange_init(&x, &app, &f->fr));
		x.store = db;
		requests_get(&x, cases[i].tail);
		print_message("case %zu: '%s' -> %d\n", i, cases[i].tail, x.status);
		assert_int_equal(x.status, cases[i].status);
		json_object *o = json_tokener_parse(fake_body(f));
		json_object *v = NULL;

		assert_non_null(o);
		if (cases[i].status == 200) {
			assert_true(json_object_object_get_ex(o, "id", &v));
			assert_string_equal(json_object_get_string(v), first_id);
			assert_string_equal(x.request_id, first_id);
		} else {
			assert_true(json_object_object_get_ex(o, "detail", &v));
			assert_string_equal(json_object_get_string(v),
			                    "request_id: no such request");
		}
		json_object_put(o);
		http_exchange_done(&x);
		free(f);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_list),
	    cmocka_unit_test(test_long_unknown),
	    cmocka_unit_test(test_paging),
	    cmocka_unit_test(test_get),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
