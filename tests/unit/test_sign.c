/*
 * test_sign: Standard Webhooks signatures. The vectors come from outside
 * this code: the Standard Webhooks specification's published example, and
 * values computed with Python's hmac and `openssl dgst -sha256 -mac HMAC`
 * (the commands are in the comments). Secret decoding is strict: a table of
 * good and bad secrets with the decoded key length.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "alloc.h"
#include "sign.h"

struct vector {
	const char *secret;
	const char *id;
	int64_t ts;
	const char *body;
	size_t body_len;
	const char *want;
};

#define BODY(s) s, sizeof(s) - 1

static const struct vector vectors[] = {
    /* The Standard Webhooks specification's example (also in the svix and
     * standardwebhooks libraries' tests). */
    {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
     BODY("{\"test\": 2432232314}"), "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="},
    /* printf 'id.0.' | openssl dgst -sha256 -mac HMAC -macopt hexkey:41 -binary | base64 */
    {"whsec_QQ==", "id", 0, BODY(""), "v1,qr1ulTHMBqjfwRyLKrBy8qMoqEIKu7qHDeWUxF6kKnU="},
    /* python3: key bytes(range(64)); hmac.new(k, b"<id>.<ts>." + body, sha256) */
    {"whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0"
     "+Pw==",
     "019348ab-0000-7000-8000-000000000001", 1764200000,
     BODY("{\"request_id\":\"x\",\"status\":\"completed\"}"),
     "v1,24PAi31nFLfxCjmWGKqS7klYz0EyO0dqNMkUV5Ljm3Q="},
    /* a NUL inside the body and a negative timestamp: key 00 01 02 */
    {"whsec_AAEC", "msg", -1, BODY("a\0b"), "v1,VYV5B9N5iFCSlRWvXGDkXkJwtv3/hJSr6Q7wnjtGyCU="},
    /* rotation: two secrets, one signature each, in the order given. The
     * second: python3 hmac.new(b"A", b"msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330."
     * b'{"test": 2432232314}', sha256), base64 */
    {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw whsec_QQ==", "msg_p5jXN8AQM9LWM0D4loKWxJek",
     1614265330, BODY("{\"test\": 2432232314}"),
     "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= "
     "v1,VAux9uNSj6zbc0s5zoiFavs+2tHiHFyWWuBCCWPNN1Y="},
    {"whsec_QQ== whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
     1614265330, BODY("{\"test\": 2432232314}"),
     "v1,VAux9uNSj6zbc0s5zoiFavs+2tHiHFyWWuBCCWPNN1Y= "
     "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="},
};

static void test_vectors(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
		const struct vector *v = &vectors[i];
		enum sign_err err;
		struct sign_key *k = sign_key_new(v->secret, &err, NULL, 0);
		char out[SIGN_HEADER_MAX];

		assert_non_null(k);
		assert_int_equal(err, SIGN_OK);
		assert_int_equal(
		    sign_webhook(k, v->id, v->ts, v->body, v->body_len, out, sizeof(out)), SIGN_OK);
		if (strcmp(out, v->want) != 0)
			fail_msg("vector %zu: got %s, want %s", i, out, v->want);
		sign_key_free(k);
	}
}

static void test_one_byte_changes_signature(void **state)
{
	enum sign_err err;
	struct sign_key *k = sign_key_new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &err, NULL, 0);
	char a[SIGN_HEADER_MAX], b[SIGN_HEADER_MAX];

	(void)state;
	assert_non_null(k);
	assert_int_equal(sign_webhook(k, "m", 1, "body", 4, a, sizeof(a)), SIGN_OK);
	assert_int_equal(sign_webhook(k, "m", 1, "bodY", 4, b, sizeof(b)), SIGN_OK);
	assert_string_not_equal(a, b);
	assert_int_equal(sign_webhook(k, "m", 2, "body", 4, b, sizeof(b)), SIGN_OK);
	assert_string_not_equal(a, b);
	assert_int_equal(sign_webhook(k, "n", 1, "body", 4, b, sizeof(b)), SIGN_OK);
	assert_string_not_equal(a, b);
	/* deterministic */
	assert_int_equal(sign_webhook(k, "m", 1, "body", 4, b, sizeof(b)), SIGN_OK);
	assert_string_equal(a, b);
	/* too small an output buffer is refused, never truncated */
	assert_int_not_equal(sign_webhook(k, "m", 1, "body", 4, b, 20), SIGN_OK);
	sign_key_free(k);
}

struct secret_case {
	const char *secret;
	enum sign_err want;
};

static const struct secret_case secrets[] = {
    {"whsec_QQ==", SIGN_OK},                             /* 1 byte */
    {"whsec_QUI=", SIGN_OK},                             /* 2 bytes */
    {"whsec_QUJD", SIGN_OK},                             /* 3 bytes */
    {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", SIGN_OK}, /* 24 bytes */
    {"whsec_", SIGN_BAD_SECRET},                         /* empty */
    {"", SIGN_BAD_SECRET},
    {"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", SIGN_BAD_SECRET}, /* no prefix */
    {"WHSEC_QQ==", SIGN_BAD_SECRET},
    {"whsec_QQ=", SIGN_BAD_SECRET}, /* length not a multiple of 4 */
    {"whsec_QQ", SIGN_BAD_SECRET},  /* unpadded */
    {"whsec_Q===", SIGN_BAD_SECRET},
    {"whsec_====", SIGN_BAD_SECRET},
    {"whsec_QQ=A", SIGN_BAD_SECRET}, /* padding in the middle */
    {"whsec_Q=Q=", SIGN_BAD_SECRET},
    {"whsec_QQ==QUJD", SIGN_BAD_SECRET}, /* data after padding */
    {"whsec_QQ==\n", SIGN_BAD_SECRET},   /* trailing newline */
    {"whsec_ QQ==", SIGN_BAD_SECRET},    /* leading space */
    {" whsec_QQ==", SIGN_BAD_SECRET},
    {"whsec_QU I=", SIGN_BAD_SECRET},        /* inner space */
    {"whsec_ab-_", SIGN_BAD_SECRET},         /* URL-safe alphabet */
    {"whsec_QUJD\xc3\xa4", SIGN_BAD_SECRET}, /* non-ASCII */
    /* 64 bytes: accepted; 65 bytes: refused */
    {"whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+"
     "Pw==",
     SIGN_OK},
    {"whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+"
     "P0A=",
     SIGN_BAD_SECRET},
    /* rotation lists: single spaces between secrets, 1..8 of them */
    {"whsec_QQ== whsec_QUI=", SIGN_OK},
    {"whsec_QQ== whsec_QQ== whsec_QQ== whsec_QQ== whsec_QQ== whsec_QQ== whsec_QQ== whsec_QQ==",
     SIGN_OK},
    {"whsec_QQ== whsec_QQ== whsec_QQ== whsec_QQ== whsec_QQ== whsec_QQ== whsec_QQ== whsec_QQ== "
     "whsec_QQ==",
     SIGN_BAD_SECRET},                           /* nine */
    {"whsec_QQ==  whsec_QUI=", SIGN_BAD_SECRET}, /* two spaces */
    {"whsec_QQ== ", SIGN_BAD_SECRET},            /* trailing space */
    {"whsec_QQ== QUI=", SIGN_BAD_SECRET},        /* second without prefix */
    {"whsec_QQ== whsec_QQ", SIGN_BAD_SECRET},    /* second unpadded */
    {"whsec_QQ==\twhsec_QUI=", SIGN_BAD_SECRET}, /* tab */
};

static void test_secrets(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++) {
		enum sign_err err = SIGN_CRYPTO;
		char why[128] = "";
		struct sign_key *k = sign_key_new(secrets[i].secret, &err, why, sizeof why);

		if (err != secrets[i].want || (k != NULL) != (secrets[i].want == SIGN_OK))
			fail_msg("secret %zu [%s]: got %s, want %s", i, secrets[i].secret,
			         sign_strerror(err), sign_strerror(secrets[i].want));
		/* the reason never repeats the secret */
		if (err != SIGN_OK && strlen(secrets[i].secret) > 6 &&
		    strstr(why, secrets[i].secret + 6) != NULL)
			fail_msg("secret %zu: the reason quotes it: %s", i, why);
		assert_true(why[0] != '\0');
		sign_key_free(k);
	}
	assert_null(sign_key_new(NULL, &(enum sign_err){SIGN_OK}, NULL, 0));
	/* the reason names which secret of a list is wrong */
	{
		enum sign_err err;
		char why[128];

		assert_null(sign_key_new("whsec_QQ== whsec_QUI= whsec_!", &err, why, sizeof why));
		assert_int_equal(err, SIGN_BAD_SECRET);
		assert_non_null(strstr(why, "secret 3"));
		assert_null(sign_key_new("whsec_QQ== QUI=", &err, why, sizeof why));
		assert_non_null(strstr(why, "secret 2: does not start with whsec_"));
	}
	sign_key_free(NULL);
	assert_string_not_equal(sign_strerror(SIGN_BAD_SECRET), sign_strerror(SIGN_OK));
}

static void test_out_of_memory(void **state)
{
	enum sign_err err = SIGN_OK;

	(void)state;
	alloc_fail_after(0);
	assert_null(sign_key_new("whsec_QQ==", &err, NULL, 0));
	alloc_fail_after(-1);
	assert_int_equal(err, SIGN_NOMEM);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vectors),
	    cmocka_unit_test(test_one_byte_changes_signature),
	    cmocka_unit_test(test_secrets),
	    cmocka_unit_test(test_out_of_memory),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
