/*
 * test_deliverer_retry: the callback retry policy (deliverer/retry.h).
 *
 * One table of attempt outcomes (every HTTP class, every transport failure,
 * Retry-After present or not) with the action, error class and breaker
 * verdict each must give; then the backoff schedule (doubling, cap, +-25%
 * jitter over many draws, determinism for a seed), the max-attempts rule
 * (known and unknown outcomes), Retry-After parsing in both forms, the
 * message naming the delay actually applied, and retry_hold.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "retry.h"

static const struct retry_policy policy = {.base_ms = 1000, .max_ms = 60000, .max_attempts = 5};

struct outcome_case {
	enum retry_transport transport;
	int status;
	int64_t retry_after_ms;
	enum store_verdict want;
	const char *error_class; /* NULL when delivered */
	bool host_failure;
	int64_t delay_ms; /* exact delay when >= 0 (Retry-After); -1: the backoff */
	const char *message_has;
};

#define RESP(st, ra, act, cls, hf, d, msg)                                                         \
	{                                                                                          \
		RETRY_T_RESPONSE, st, ra, act, cls, hf, d, msg                                     \
	}
#define TRANS(t, act, cls, hf, msg)                                                                \
	{                                                                                          \
		t, 0, -1, act, cls, hf, -1, msg                                                    \
	}

static const struct outcome_case outcomes[] = {
    /* 2xx: delivered, whatever the Retry-After */
    RESP(200, -1, STORE_DELIVERED, NULL, false, -1, ""),
    RESP(201, -1, STORE_DELIVERED, NULL, false, -1, ""),
    RESP(204, 5000, STORE_DELIVERED, NULL, false, -1, ""),
    RESP(299, -1, STORE_DELIVERED, NULL, false, -1, ""),
    /* 1xx and out-of-range codes: the receiver does not speak HTTP as expected */
    RESP(100, -1, STORE_FAILED, "http", false, -1, "unexpected status"),
    RESP(199, -1, STORE_FAILED, "http", false, -1, "unexpected status"),
    RESP(0, -1, STORE_FAILED, "http", false, -1, "unexpected status"),
    RESP(600, -1, STORE_FAILED, "http", false, -1, "unexpected status"),
    RESP(-1, -1, STORE_FAILED, "http", false, -1, "unexpected status"),
    /* 3xx: redirects are not followed and not retried */
    RESP(300, -1, STORE_FAILED, "http", false, -1, "redirects are not followed"),
    RESP(301, -1, STORE_FAILED, "http", false, -1, "HTTP 301"),
    RESP(302, -1, STORE_FAILED, "http", false, -1, "redirects"),
    RESP(307, -1, STORE_FAILED, "http", false, -1, "redirects"),
    RESP(399, -1, STORE_FAILED, "http", false, -1, "redirects"),
    /* 4xx: refused for good, except 408 and 429 */
    RESP(400, -1, STORE_FAILED, "http", false, -1, "HTTP 400: the receiver refused"),
    RESP(401, -1, STORE_FAILED, "http", false, -1, "refused"),
    RESP(403, -1, STORE_FAILED, "http", false, -1, "refused"),
    RESP(404, -1, STORE_FAILED, "http", false, -1, "HTTP 404"),
    RESP(413, -1, STORE_FAILED, "http", false, -1, "refused"),
    RESP(499, -1, STORE_FAILED, "http", false, -1, "refused"),
    RESP(410, -1, STORE_FAILED, "http", false, -1, "gone (HTTP 410)"),
    RESP(410, 1000, STORE_FAILED, "http", false, -1, "gone"),
    RESP(408, -1, STORE_RETRY, "http", true, -1, "HTTP 408"),
    /* Retry-After is only honoured on 429 and 503 */
    RESP(408, 7000, STORE_RETRY, "http", true, -1, "HTTP 408"),
    RESP(429, -1, STORE_RETRY, "http", true, -1, "HTTP 429"),
    RESP(429, 7000, STORE_RETRY, "http", true, 7000, "HTTP 429 (Retry-After 7000 ms)"),
    RESP(429, 0, STORE_RETRY, "http", true, 0, "Retry-After 0 ms"),
    RESP(429, 60000, STORE_RETRY, "http", true, 60000, "HTTP 429 (Retry-After 60000 ms)"),
    /* bounded by the cap, and the message says the delay applied */
    RESP(429, 60001, STORE_RETRY, "http", true, 60000,
         "HTTP 429 (Retry-After 60001 ms, capped: retrying in 60000 ms)"),
    RESP(429, 3600000, STORE_RETRY, "http", true, 60000,
         "(Retry-After 3600000 ms, capped: retrying in 60000 ms)"),
    RESP(429, 86400000, STORE_RETRY, "http", true, 60000, "capped: retrying in 60000 ms"),
    RESP(500, -1, STORE_RETRY, "http", true, -1, "HTTP 500"),
    RESP(500, 7000, STORE_RETRY, "http", true, -1, "HTTP 500"),
    RESP(502, -1, STORE_RETRY, "http", true, -1, "HTTP 502"),
    RESP(503, -1, STORE_RETRY, "http", true, -1, "HTTP 503"),
    RESP(503, 3000, STORE_RETRY, "http", true, 3000, "HTTP 503 (Retry-After 3000 ms)"),
    RESP(503, 999999, STORE_RETRY, "http", true, 60000,
         "HTTP 503 (Retry-After 999999 ms, capped: retrying in 60000 ms)"),
    RESP(504, 3000, STORE_RETRY, "http", true, -1, "HTTP 504"),
    RESP(599, -1, STORE_RETRY, "http", true, -1, "HTTP 599"),
    /* transport failures: retried and counted against the host ... */
    TRANS(RETRY_T_REFUSED, STORE_RETRY, "connect", true, "connection refused"),
    TRANS(RETRY_T_CONNECT, STORE_RETRY, "connect", true, "could not connect"),
    TRANS(RETRY_T_TIMEOUT, STORE_RETRY, "timeout", true, "timed out"),
    TRANS(RETRY_T_CLOSED, STORE_RETRY, "closed", true, "closed without a response"),
    TRANS(RETRY_T_NETWORK, STORE_RETRY, "network", true, "network error"),
    TRANS(RETRY_T_TLS, STORE_RETRY, "tls", true, "TLS error"),
    TRANS(RETRY_T_DNS, STORE_RETRY, "dns", true, "did not resolve"),
    /* ... except our own failures, which say nothing about the host */
    TRANS(RETRY_T_INTERNAL, STORE_RETRY, "internal", false, "internal error"),
    /* the SSRF verdict and a bad URL do not change by waiting */
    TRANS(RETRY_T_DENIED, STORE_FAILED, "refused", false, "destination refused"),
    TRANS(RETRY_T_BAD_URL, STORE_FAILED, "url", false, "callback_url"),
};

static void decide(const struct retry_policy *p, const struct retry_input *in,
                   struct retry_decision *out)
{
	uint64_t rng = 42;

	retry_decide(p, in, &rng, out);
}

static void test_outcomes(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(outcomes) / sizeof(outcomes[0]); i++) {
		const struct outcome_case *c = &outcomes[i];
		struct retry_input in = {.transport = c->transport,
		                         .http_status = c->status,
		                         .retry_after_ms = c->retry_after_ms,
		                         .attempts_known = 1,
		                         .attempts_total = 1};
		struct retry_decision d;

		decide(&policy, &in, &d);
		print_message("case %zu: transport %d status %d -> action %d class %s: %s\n", i,
		              (int)c->transport, c->status, (int)d.action,
		              d.error_class ? d.error_class : "(null)", d.message);
		assert_int_equal(d.action, c->want);
		if (c->error_class == NULL) {
			assert_null(d.error_class);
			assert_false(d.host_failure);
			continue;
		}
		assert_non_null(d.error_class);
		assert_string_equal(d.error_class, c->error_class);
		assert_int_equal(d.host_failure, c->host_failure);
		assert_non_null(strstr(d.message, c->message_has));
		if (c->want != STORE_RETRY)
			continue;
		if (c->delay_ms >= 0) {
			assert_int_equal(d.delay_ms, c->delay_ms);
		} else {
			/* first failure: the base, +-25% */
			assert_in_range(d.delay_ms, 750, 1250);
		}
	}
}

/* curl's text (or the policy's reason) reaches the message; an empty or
 * NULL detail falls back to a fixed text; a huge one is cut, never overrun. */
static void test_detail(void **state)
{
	static const struct {
		enum retry_transport t;
		const char *detail;
		const char *want;
	} cases[] = {
	    {RETRY_T_REFUSED, "Failed to connect to 127.0.0.1 port 9", "port 9"},
	    {RETRY_T_REFUSED, NULL, "nothing listens"},
	    {RETRY_T_REFUSED, "", "nothing listens"},
	    {RETRY_T_CONNECT, "No route to host", "could not connect: No route to host"},
	    {RETRY_T_TIMEOUT, NULL, "timed out: deadline passed"},
	    {RETRY_T_TIMEOUT, "Operation timed out after 10000 ms", "after 10000 ms"},
	    {RETRY_T_NETWORK, "Connection reset by peer", "network error: Connection reset"},
	    {RETRY_T_TLS, "SSL certificate problem", "TLS error: SSL certificate problem"},
	    {RETRY_T_TLS, NULL, "handshake failed"},
	    {RETRY_T_DNS, "callback_url: host x.invalid does not resolve", "x.invalid"},
	    {RETRY_T_DENIED, "callback_url: 10.0.0.1 is a private address", "private address"},
	    {RETRY_T_BAD_URL, NULL, "callback_url: invalid"},
	    {RETRY_T_INTERNAL, "out of memory", "internal error: out of memory"},
	};
	char huge[RETRY_MESSAGE_MAX * 3];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct retry_input in = {.transport = cases[i].t,
		                         .retry_after_ms = -1,
		                         .detail = cases[i].detail,
		                         .attempts_known = 1,
		                         .attempts_total = 1};
		struct retry_decision d;

		decide(&policy, &in, &d);
		print_message("detail case %zu: %s\n", i, d.message);
		assert_non_null(strstr(d.message, cases[i].want));
	}
	memset(huge, 'x', sizeof(huge) - 1);
	huge[sizeof(huge) - 1] = '\0';
	for (int t = RETRY_T_REFUSED; t <= RETRY_T_INTERNAL; t++) {
		struct retry_input in = {.transport = (enum retry_transport)t,
		                         .retry_after_ms = -1,
		                         .detail = huge,
		                         .attempts_known = 1,
		                         .attempts_total = 1};
		struct retry_decision d;

		decide(&policy, &in, &d);
		assert_true(strlen(d.message) < RETRY_MESSAGE_MAX);
	}
}

/* CONSUMA_CALLBACK_MAX_RETRIES counts attempts in all: with 5, the fifth
 * known failure is final; unknown outcomes do not count until twice the
 * limit. Permanent failures fail on the first attempt either way. */
static void test_max_attempts(void **state)
{
	static const struct {
		int64_t known;
		int64_t total;
		enum store_verdict want;
	} cases[] = {
	    {0, 0, STORE_RETRY},   {1, 1, STORE_RETRY},   {4, 4, STORE_RETRY},
	    {5, 5, STORE_FAILED},  {6, 6, STORE_FAILED},  {100, 100, STORE_FAILED},
	    {1, 5, STORE_RETRY},                          /* four attempts lost in crashes */
	    {4, 9, STORE_RETRY},   {1, 10, STORE_FAILED}, /* bounded all the same */
	    {4, 10, STORE_FAILED}, {0, 11, STORE_FAILED},
	};
	static const int statuses[] = {500, 503, 429, 408};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		for (size_t s = 0; s < sizeof(statuses) / sizeof(statuses[0]); s++) {
			struct retry_input in = {.transport = RETRY_T_RESPONSE,
			                         .http_status = statuses[s],
			                         .retry_after_ms = 2000,
			                         .attempts_known = cases[i].known,
			                         .attempts_total = cases[i].total};
			struct retry_decision d;

			decide(&policy, &in, &d);
			print_message("known %lld total %lld status %d -> %d\n",
			              (long long)cases[i].known, (long long)cases[i].total,
			              statuses[s], (int)d.action);
			assert_int_equal(d.action, cases[i].want);
			/* the last reason is kept on the final failure */
			assert_string_equal(d.error_class, "http");
			assert_true(d.host_failure);
		}
		struct retry_input t = {.transport = RETRY_T_TIMEOUT,
		                        .retry_after_ms = -1,
		                        .attempts_known = cases[i].known,
		                        .attempts_total = cases[i].total};
		struct retry_decision d;

		decide(&policy, &t, &d);
		assert_int_equal(d.action, cases[i].want);
		assert_non_null(strstr(d.message, "timed out"));
	}
	/* max_attempts 1: the first failure is final, success still delivers */
	struct retry_policy one = {.base_ms = 10, .max_ms = 100, .max_attempts = 1};
	struct retry_input in = {.transport = RETRY_T_REFUSED,
	                         .retry_after_ms = -1,
	                         .attempts_known = 1,
	                         .attempts_total = 1};
	struct retry_decision d;

	decide(&one, &in, &d);
	assert_int_equal(d.action, STORE_FAILED);
	assert_string_equal(d.error_class, "connect");
	in.transport = RETRY_T_RESPONSE;
	in.http_status = 200;
	in.attempts_known = 7;
	in.attempts_total = 9;
	decide(&one, &in, &d);
	assert_int_equal(d.action, STORE_DELIVERED);
}

/* The delay retry_decide picks is the backoff for the attempts known. */
static void test_decide_uses_schedule(void **state)
{
	(void)state;
	for (int64_t n = 1; n <= 4; n++) {
		struct retry_input in = {.transport = RETRY_T_RESPONSE,
		                         .http_status = 500,
		                         .retry_after_ms = -1,
		                         .attempts_known = n,
		                         .attempts_total = n};
		struct retry_decision d;
		uint64_t a = 7;
		uint64_t b = 7;

		retry_decide(&policy, &in, &a, &d);
		assert_int_equal(d.action, STORE_RETRY);
		assert_int_equal(d.delay_ms, retry_backoff_ms(&policy, n, &b));
		assert_int_equal(a, b); /* the caller's state advanced */
	}
}

/* base * 2^(n-1) capped at max, +-25%: checked as bounds over many draws,
 * and the draws must actually spread over most of the band. */
static void test_backoff_schedule(void **state)
{
	static const struct {
		struct retry_policy p;
		int64_t n;
		int64_t nominal;
	} cases[] = {
	    {{1000, 60000, 5}, 1, 1000},        {{1000, 60000, 5}, 2, 2000},
	    {{1000, 60000, 5}, 3, 4000},        {{1000, 60000, 5}, 6, 32000},
	    {{1000, 60000, 5}, 7, 60000}, /* 64000 capped */
	    {{1000, 60000, 5}, 50, 60000},      {{1000, 60000, 5}, 1000000, 60000},
	    {{2000, 60000, 5}, 0, 2000}, /* no attempt known: the base */
	    {{2000, 60000, 5}, 5, 32000},       {{5000, 5000, 5}, 3, 5000}, /* base == max */
	    {{9000, 4000, 5}, 1, 4000}, /* base above max: capped */
	    {{1, 86400000, 100}, 28, 86400000}, {{3600000, 86400000, 100}, 100, 86400000},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct retry_policy *p = &cases[i].p;
		int64_t nom = cases[i].nominal;
		int64_t lo_bound = nom - nom / 4 - 1;
		int64_t hi_bound = nom + nom / 4 + 1;
		int64_t lo = INT64_MAX;
		int64_t hi = 0;
		uint64_t rng = 0x12345678u + i;

		if (hi_bound > p->max_ms)
			hi_bound = p->max_ms;
		for (int k = 0; k < 4000; k++) {
			int64_t d = retry_backoff_ms(p, cases[i].n, &rng);

			if (d < lo)
				lo = d;
			if (d > hi)
				hi = d;
		}
		print_message("case %zu: nominal %lld drew %lld..%lld\n", i, (long long)nom,
		              (long long)lo, (long long)hi);
		assert_true(lo >= lo_bound);
		assert_true(hi <= hi_bound);
		/* the jitter is real: the draws reach near both ends of the band */
		assert_true(lo <= nom - nom / 5);
		assert_true(hi >= (nom < p->max_ms ? nom + nom / 5 : p->max_ms));
	}
}

/* Same seed, same schedule; a zero seed still works; tiny delays stay >= 1. */
static void test_backoff_rng(void **state)
{
	struct retry_policy p = {.base_ms = 1000, .max_ms = 60000, .max_attempts = 5};
	uint64_t a = 99;
	uint64_t b = 99;
	uint64_t z = 0;
	int differ = 0;
	int64_t prev = -1;

	(void)state;
	for (int k = 0; k < 100; k++) {
		int64_t da = retry_backoff_ms(&p, 3, &a);

		assert_int_equal(da, retry_backoff_ms(&p, 3, &b));
		if (prev >= 0 && da != prev)
			differ++;
		prev = da;
	}
	assert_true(differ > 50);
	assert_in_range(retry_backoff_ms(&p, 1, &z), 750, 1250);
	assert_int_not_equal(z, 0);

	struct retry_policy tiny = {.base_ms = 1, .max_ms = 1, .max_attempts = 5};
	struct retry_policy zero = {.base_ms = 0, .max_ms = 0, .max_attempts = 5};
	for (int k = 0; k < 100; k++) {
		assert_int_equal(retry_backoff_ms(&tiny, 1, &a), 1);
		assert_int_equal(retry_backoff_ms(&zero, 5, &a), 1);
		assert_in_range(retry_backoff_ms(&(struct retry_policy){3, 3, 5}, 2, &a), 2, 3);
	}
}

struct ra_case {
	const char *value;
	bool ok;
	int64_t delay_ms;
};

/* 1994-11-06 08:49:37 UTC */
#define RA_DATE_S 784111777LL

static const struct ra_case ra_cases[] = {
    {"0", true, 0},
    {"1", true, 1000},
    {"120", true, 120000},
    {"  120", true, 120000},
    {"120 \t\r\n", true, 120000},
    {"000000000000000000000000007", true, 7000},
    {"86400", true, 86400000},
    /* absurdly long: clamped (the cap applies later), never overflowed */
    {"99999999999999999999999999999999", true, -2},
    {"Sun, 06 Nov 1994 08:49:37 GMT", true, 10000}, /* now is 10 s before */
    {"Sun, 06 Nov 1994 08:49:47 GMT", true, 20000},
    {"Sun, 06 Nov 1994 08:49:27 GMT", true, 0}, /* now: 0 */
    {"Sat, 05 Nov 1994 08:49:37 GMT", true, 0}, /* in the past: 0 */
    {"Mon, 07 Nov 1994 08:49:37 GMT", true, 86410000},
    {" Sun, 06 Nov 1994 08:49:37 GMT ", true, 10000},
    /* neither form */
    {NULL, false, 0},
    {"", false, 0},
    {"   ", false, 0},
    {"-1", false, 0},
    {"+5", false, 0},
    {"1.5", false, 0},
    {"1e3", false, 0},
    {"0x10", false, 0},
    {"12abc", false, 0},
    {"12 34", false, 0},
    {"soon", false, 0},
    {"Sunday, 06-Nov-94 08:49:37 GMT", false, 0}, /* RFC 850: obsolete */
    {"Sun Nov  6 08:49:37 1994", false, 0},       /* asctime: obsolete */
    {"Sun, 06 Nov 1994 08:49:37 UTC", false, 0},
    {"Sun, 06 Nov 1994 08:49:37", false, 0},
    {"Sun, 06 Nov 1994 08:49:37 GMT junk", false, 0},
    {"Sun, 32 Nov 1994 08:49:37 GMT", false, 0},
    {"Sun, 06 Foo 1994 08:49:37 GMT", false, 0},
    {"Sun, 06 Nov 1994 25:49:37 GMT", false, 0},
    {"Sun, 06 Nov 1994 08:61:37 GMT", false, 0},
    {"Sun, 06 Nov 1994 08:49:37 GMT                                      ", true, 10000},
    /* spaces inside are tolerated, but not past the 63-byte bound */
    {"Sun,                                   06 Nov 1994 08:49:37 GMT", true, 10000},
    {"Sun,                                    06 Nov 1994 08:49:37 GMT", false, 0},
};

static void test_retry_after_parse(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(ra_cases) / sizeof(ra_cases[0]); i++) {
		const struct ra_case *c = &ra_cases[i];
		int64_t d = -12345;
		bool ok = retry_after_parse(c->value, RA_DATE_S * 1000 - 10000, &d);

		print_message("case %zu: '%s' -> %d %lld\n", i, c->value ? c->value : "(null)",
		              (int)ok, (long long)d);
		assert_int_equal(ok, c->ok);
		if (!ok) {
			assert_int_equal(d, -12345); /* untouched */
			continue;
		}
		if (c->delay_ms == -2) {
			/* clamped: positive, over a year, and no overflow */
			assert_true(d > 365LL * 86400 * 1000);
			assert_true(d < INT64_MAX / 2);
		} else {
			assert_int_equal(d, c->delay_ms);
		}
	}
}

/* A parsed Retry-After fed to the decision is bounded by the cap. */
static void test_retry_after_to_decision(void **state)
{
	int64_t d = 0;

	(void)state;
	assert_true(retry_after_parse("100000000000", 0, &d));
	struct retry_input in = {.transport = RETRY_T_RESPONSE,
	                         .http_status = 503,
	                         .retry_after_ms = d,
	                         .attempts_known = 1,
	                         .attempts_total = 1};
	struct retry_decision out;

	decide(&policy, &in, &out);
	assert_int_equal(out.action, STORE_RETRY);
	assert_int_equal(out.delay_ms, policy.max_ms);

	assert_true(retry_after_parse("Fri, 31 Dec 9999 23:59:59 GMT", 0, &d));
	in.http_status = 429;
	in.retry_after_ms = d;
	decide(&policy, &in, &out);
	assert_int_equal(out.delay_ms, policy.max_ms);
}

/* The message never claims a delay that was not applied: an uncapped
 * Retry-After says only what was asked (and applied), no "capped". */
static void test_retry_after_message(void **state)
{
	static const struct {
		int status;
		int64_t asked_ms;
		const char *want;
	} cases[] = {
	    {429, 1, "HTTP 429 (Retry-After 1 ms)"},
	    {503, 59999, "HTTP 503 (Retry-After 59999 ms)"},
	    {503, 60000, "HTTP 503 (Retry-After 60000 ms)"},
	    {503, 60001, "HTTP 503 (Retry-After 60001 ms, capped: retrying in 60000 ms)"},
	    {429, 3600000, "HTTP 429 (Retry-After 3600000 ms, capped: retrying in 60000 ms)"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct retry_input in = {.transport = RETRY_T_RESPONSE,
		                         .http_status = cases[i].status,
		                         .retry_after_ms = cases[i].asked_ms,
		                         .attempts_known = 1,
		                         .attempts_total = 1};
		struct retry_decision d;

		decide(&policy, &in, &d);
		assert_int_equal(d.action, STORE_RETRY);
		assert_string_equal(d.message, cases[i].want);
	}
	/* the last attempt: nothing is applied, the message says what was asked */
	struct retry_input last = {.transport = RETRY_T_RESPONSE,
	                           .http_status = 429,
	                           .retry_after_ms = 3600000,
	                           .attempts_known = policy.max_attempts,
	                           .attempts_total = policy.max_attempts};
	struct retry_decision d;

	decide(&policy, &last, &d);
	assert_int_equal(d.action, STORE_FAILED);
	assert_string_equal(d.message, "HTTP 429 (Retry-After 3600000 ms)");
}

/* retry_hold raises a retry's delay to the breaker's cool-down and says so;
 * a longer delay, a final failure or a delivery is left alone. */
static void test_hold(void **state)
{
	struct retry_input in = {.transport = RETRY_T_RESPONSE,
	                         .http_status = 503,
	                         .retry_after_ms = 2000,
	                         .attempts_known = 1,
	                         .attempts_total = 1};
	struct retry_decision d;

	(void)state;
	decide(&policy, &in, &d);
	retry_hold(&d, 30000, "circuit breaker open");
	assert_int_equal(d.delay_ms, 30000);
	assert_string_equal(
	    d.message, "HTTP 503 (Retry-After 2000 ms); retry held 30000 ms: circuit breaker open");

	decide(&policy, &in, &d);
	retry_hold(&d, 1500, "circuit breaker open");
	assert_int_equal(d.delay_ms, 2000);
	assert_string_equal(d.message, "HTTP 503 (Retry-After 2000 ms)");

	in.http_status = 200;
	decide(&policy, &in, &d);
	retry_hold(&d, 30000, "circuit breaker open");
	assert_int_equal(d.action, STORE_DELIVERED);
	assert_int_equal(d.delay_ms, 0);

	in.http_status = 404;
	decide(&policy, &in, &d);
	retry_hold(&d, 30000, "circuit breaker open");
	assert_int_equal(d.action, STORE_FAILED);
	assert_null(strstr(d.message, "held"));

	/* a full message stays terminated and in bounds */
	char detail[2 * RETRY_MESSAGE_MAX];
	memset(detail, 'x', sizeof detail - 1);
	detail[sizeof detail - 1] = '\0';
	struct retry_input t = {.transport = RETRY_T_TIMEOUT,
	                        .detail = detail,
	                        .retry_after_ms = -1,
	                        .attempts_known = 1,
	                        .attempts_total = 1};
	decide(&policy, &t, &d);
	retry_hold(&d, 3600000, "circuit breaker open");
	assert_int_equal(d.delay_ms, 3600000);
	assert_int_equal(strlen(d.message), RETRY_MESSAGE_MAX - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_outcomes),
	    cmocka_unit_test(test_detail),
	    cmocka_unit_test(test_max_attempts),
	    cmocka_unit_test(test_decide_uses_schedule),
	    cmocka_unit_test(test_backoff_schedule),
	    cmocka_unit_test(test_backoff_rng),
	    cmocka_unit_test(test_retry_after_parse),
	    cmocka_unit_test(test_retry_after_to_decision),
	    cmocka_unit_test(test_retry_after_message),
	    cmocka_unit_test(test_hold),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
