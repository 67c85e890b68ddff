/*
 * retry: the callback retry policy, as pure functions (no I/O, no clock):
 * given how one attempt ended, decide delivered, try again after a delay,
 * or fail for good. The rules and their reasons are in retry.c's header.
 * Thread safe (the caller owns the random state).
 */
#ifndef CONSUMA_DELIVERER_RETRY_H
#define CONSUMA_DELIVERER_RETRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h" /* enum store_verdict: the decision is what the store records */

#define RETRY_MESSAGE_MAX 320

struct retry_policy {
	int64_t base_ms;      /* CONSUMA_CALLBACK_BACKOFF_BASE_MS */
	int64_t max_ms;       /* CONSUMA_CALLBACK_BACKOFF_MAX_MS */
	int64_t max_attempts; /* CONSUMA_CALLBACK_MAX_RETRIES: attempts in all */
};

/* How an attempt ended. */
enum retry_transport {
	RETRY_T_RESPONSE = 0, /* an HTTP status arrived */
	RETRY_T_REFUSED,      /* ECONNREFUSED */
	RETRY_T_CONNECT,      /* could not connect otherwise */
	RETRY_T_TIMEOUT,      /* connect or total deadline */
	RETRY_T_CLOSED,       /* connection closed without a response */
	RETRY_T_NETWORK,      /* send/receive error, reset */
	RETRY_T_TLS,
	RETRY_T_DNS,      /* the host did not resolve at delivery */
	RETRY_T_DENIED,   /* the SSRF policy refused the destination */
	RETRY_T_BAD_URL,  /* the URL no longer parses */
	RETRY_T_INTERNAL, /* our side failed (memory, curl setup) */
};

struct retry_input {
	enum retry_transport transport;
	int http_status;        /* RETRY_T_RESPONSE */
	int64_t retry_after_ms; /* from Retry-After, -1 when absent or unusable */
	const char *detail;     /* curl's error text or the policy's reason; may be NULL */
	int64_t attempts_known; /* attempts with a known outcome, this one included */
	int64_t attempts_total; /* every attempt, this one and unknown ones included */
};

struct retry_decision {
	enum store_verdict action; /* what the store records: delivered, retry, failed */
	int64_t delay_ms;          /* STORE_RETRY */
	bool host_failure;         /* counts toward the destination's circuit breaker */
	const char *error_class;   /* NULL when delivered */
	char message[RETRY_MESSAGE_MAX];
};

/* Decides what follows an attempt. rng is the caller's ids_xorshift64 state
 * (any non-zero value), advanced for the jitter. */
void retry_decide(const struct retry_policy *p, const struct retry_input *in, uint64_t *rng,
                  struct retry_decision *out);

/* Raises a STORE_RETRY decision's delay to at least min_delay_ms (the
 * destination's circuit breaker is open that long) and says so in the
 * message, with why; any other decision, or a longer delay, is left as is. */
void retry_hold(struct retry_decision *d, int64_t min_delay_ms, const char *why);

/* The backoff before attempt n+1 after n failed attempts (n >= 1):
 * base * 2^(n-1), capped at max, then +-25% jitter (never above max). */
int64_t retry_backoff_ms(const struct retry_policy *p, int64_t n, uint64_t *rng);

/* Parses a Retry-After value: delta-seconds (digits only) or an IMF-fixdate
 * ("Sun, 06 Nov 1994 08:49:37 GMT") relative to now_ms. Returns false when
 * it is neither; a date in the past gives 0. */
bool retry_after_parse(const char *value, int64_t now_ms, int64_t *delay_ms);

#endif
