/*
 * test_deliverer_callback: the callback wire format (deliverer/callback.h)
 * against what DESIGN.md and the README promise receivers.
 *
 * Body: exactly the seven fields, with their types, "status":"completed",
 * times in RFC 3339 UTC with milliseconds, and room for the largest values
 * under CALLBACK_BODY_MAX. Headers: the exact lines in order, unsigned and
 * signed; the same webhook-id for every attempt; webhook-timestamp in whole
 * seconds; the signature checked against the Standard Webhooks example
 * vector and, with two secrets, one v1 signature per secret.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <json-c/json.h>

#include "callback.h"

#define ID  "01a21b9d-2043-723c-aaef-37c86d69c4ed"
#define HEX "f6ff07025a2c5702133ffdad8684ed8a00f62d716792347fa17c1acd6d00d96d"

static const struct callback_result result = {
    .request_id = ID,
    .result = HEX,
    .iterations = 50000,
    .duration_ms = 12.3456,
    .created_at_ms = 1764645615123,   /* 2025-12-02T03:20:15.123Z */
    .completed_at_ms = 1764645615200, /* 2025-12-02T03:20:15.200Z */
};

static json_object *field(json_object *o, const char *name, json_type type)
{
	json_object *v = NULL;

	assert_true(json_object_object_get_ex(o, name, &v));
	assert_int_equal(json_object_get_type(v), type);
	return v;
}

static void test_body_fields(void **state)
{
	struct buf b;

	(void)state;
	buf_init(&b, CALLBACK_BODY_MAX);
	assert_int_equal(callback_body(&b, &result), CALLBACK_OK);
	json_object *o = json_tokener_parse(buf_str(&b));
	assert_non_null(o);
	assert_int_equal(json_object_object_length(o), 7);
	assert_string_equal(json_object_get_string(field(o, "request_id", json_type_string)), ID);
	assert_string_equal(json_object_get_string(field(o, "status", json_type_string)),
	                    "completed");
	assert_string_equal(json_object_get_string(field(o, "result", json_type_string)), HEX);
	assert_int_equal(json_object_get_int64(field(o, "iterations", json_type_int)), 50000);
	double ms = json_object_get_double(field(o, "duration_ms", json_type_double));
	assert_true(ms > 12.345 && ms < 12.347); /* three decimals */
	assert_string_equal(json_object_get_string(field(o, "created_at", json_type_string)),
	                    "2025-12-02T03:20:15.123Z");
	assert_string_equal(json_object_get_string(field(o, "completed_at", json_type_string)),
	                    "2025-12-02T03:20:15.200Z");
	json_object_put(o);
	/* the exact bytes: receivers sign-check the body as sent */
	assert_string_equal(buf_str(&b),
	                    "{\"request_id\":\"" ID "\",\"status\":\"completed\",\"result\":\"" HEX
	                    "\",\"iterations\":50000,\"duration_ms\":12.346,\"created_at\":"
	                    "\"2025-12-02T03:20:15.123Z\",\"completed_at\":"
	                    "\"2025-12-02T03:20:15.200Z\"}");

	/* a second call replaces, not appends */
	assert_int_equal(callback_body(&b, &result), CALLBACK_OK);
	assert_int_equal(buf_str(&b)[0], '{');
	assert_null(strstr(buf_str(&b) + 1, "{"));
	buf_free(&b);
}

/* The largest values (iterations at CONSUMA_MAX_ITERATIONS' bound, long
 * durations, far dates) fit the body's bound; a bound that is too small is
 * an error, not a cut body. */
static void test_body_bounds(void **state)
{
	struct callback_result big = result;
	struct buf b;

	(void)state;
	big.iterations = 100000000;
	big.duration_ms = 1e12;
	big.created_at_ms = 253402300799999; /* 9999-12-31T23:59:59.999Z */
	big.completed_at_ms = 253402300799999;
	buf_init(&b, CALLBACK_BODY_MAX);
	assert_int_equal(callback_body(&b, &big), CALLBACK_OK);
	assert_true(b.len < CALLBACK_BODY_MAX / 8);
	buf_free(&b);

	buf_init(&b, 64);
	assert_int_equal(callback_body(&b, &result), CALLBACK_NOMEM);
	buf_free(&b);
}

static void assert_lines(const struct curl_slist *l, const char *const *want, size_t n)
{
	size_t i = 0;

	for (; l != NULL; l = l->next, i++) {
		assert_true(i < n);
		assert_string_equal(l->data, want[i]);
	}
	assert_int_equal(i, n);
}

static void test_headers_unsigned(void **state)
{
	static const char *const want[] = {
	    "Content-Type: application/json",
	    "User-Agent: consuma/" CONSUMA_VERSION,
	    "Expect:",
	    "X-Request-ID: " ID,
	    "X-Attempt-Number: 3",
	    "webhook-id: " ID,
	    "webhook-timestamp: 1764645615",
	};
	struct curl_slist *h = NULL;
	static const char body[] = "{}";

	(void)state;
	assert_int_equal(callback_headers(&h, ID, 3, 1764645615999, NULL, body, sizeof body - 1),
	                 CALLBACK_OK);
	assert_lines(h, want, sizeof want / sizeof want[0]);
	curl_slist_free_all(h);
}

/* The Standard Webhooks example (also in test_sign.c), through the headers. */
static void test_headers_signed(void **state)
{
	static const char body[] = "{\"test\": 2432232314}";
	enum sign_err se;
	struct sign_key *k = sign_key_new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &se, NULL, 0);
	struct curl_slist *h = NULL;
	const struct curl_slist *last;

	(void)state;
	assert_non_null(k);
	assert_int_equal(callback_headers(&h, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1, 1614265330000, k,
	                                  body, sizeof body - 1),
	                 CALLBACK_OK);
	for (last = h; last->next != NULL; last = last->next)
		;
	assert_string_equal(last->data,
	                    "webhook-signature: v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
	curl_slist_free_all(h);
	sign_key_free(k);
}

/* Two secrets (rotation): one v1 signature each, in order, one space
 * apart; each the same as that secret alone gives. */
static void test_headers_rotation(void **state)
{
	static const char body[] = "{}";
	enum sign_err se;
	struct sign_key *both = sign_key_new("whsec_QQ== whsec_AAEC", &se, NULL, 0);
	struct sign_key *one = sign_key_new("whsec_QQ==", &se, NULL, 0);
	struct sign_key *two = sign_key_new("whsec_AAEC", &se, NULL, 0);
	struct curl_slist *h[3] = {NULL, NULL, NULL};
	const char *sig[3];

	(void)state;
	assert_non_null(both);
	assert_non_null(one);
	assert_non_null(two);
	const struct sign_key *keys[3] = {both, one, two};
	for (int i = 0; i < 3; i++) {
		const struct curl_slist *l;

		assert_int_equal(callback_headers(&h[i], ID, 2, 5000, keys[i], body, 2),
		                 CALLBACK_OK);
		for (l = h[i]; l->next != NULL; l = l->next)
			;
		assert_true(strncmp(l->data, "webhook-signature: v1,", 22) == 0);
		sig[i] = l->data + strlen("webhook-signature: ");
	}
	char joined[2 * SIGN_ONE_LEN + 2];
	snprintf(joined, sizeof joined, "%s %s", sig[1], sig[2]);
	assert_string_equal(sig[0], joined);
	for (int i = 0; i < 3; i++)
		curl_slist_free_all(h[i]);
	sign_key_free(both);
	sign_key_free(one);
	sign_key_free(two);
}

/* Every attempt of a job carries the same webhook-id and its own number. */
static void test_headers_attempts(void **state)
{
	(void)state;
	for (int64_t n = 1; n <= 3; n++) {
		struct curl_slist *h = NULL;
		char want[32];
		bool id = false, number = false;

		assert_int_equal(callback_headers(&h, ID, n, 0, NULL, "", 0), CALLBACK_OK);
		snprintf(want, sizeof want, "X-Attempt-Number: %lld", (long long)n);
		for (const struct curl_slist *l = h; l != NULL; l = l->next) {
			id = id || strcmp(l->data, "webhook-id: " ID) == 0;
			number = number || strcmp(l->data, want) == 0;
			assert_null(strstr(l->data, "webhook-signature"));
		}
		assert_true(id && number);
		curl_slist_free_all(h);
	}
}

static void test_strerror(void **state)
{
	(void)state;
	assert_string_equal(callback_strerror(CALLBACK_OK), "ok");
	assert_non_null(strstr(callback_strerror(CALLBACK_NOMEM), "memory"));
	assert_non_null(strstr(callback_strerror(CALLBACK_SIGN), "signed"));
	assert_non_null(callback_strerror((enum callback_err)99));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_body_fields),      cmocka_unit_test(test_body_bounds),
	    cmocka_unit_test(test_headers_unsigned), cmocka_unit_test(test_headers_signed),
	    cmocka_unit_test(test_headers_rotation), cmocka_unit_test(test_headers_attempts),
	    cmocka_unit_test(test_strerror),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
