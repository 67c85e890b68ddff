/*
 * result: what one mode of a storm measured. Plain data: load.c fills the
 * request side, recv.c the callback side, the report_*.c files print it. The JSON field
 * names report.c derives from these are documented in report.h.
 */
#ifndef CONSUMA_STORM_RESULT_H
#define CONSUMA_STORM_RESULT_H

#include <stdbool.h>
#include <stdint.h>

#include "hist.h"

/* Why a request failed. Every sent request ends as a success or as exactly
 * one of these. */
enum result_cause {
	CAUSE_HTTP_429 = 0, /* rate limited */
	CAUSE_HTTP_503,     /* queue full / unavailable */
	CAUSE_HTTP_OTHER,   /* any other unexpected status: see http_status[] */
	CAUSE_TIMEOUT,      /* --timeout passed (counted from the start) */
	CAUSE_CONNECT,      /* could not connect, or the connection broke */
	CAUSE_TRANSPORT,    /* any other transfer error */
	CAUSE_BAD_RESPONSE, /* expected status, but the body did not parse */
	CAUSE_WRONG_RESULT, /* sync: result differs from the local work */
	CAUSE_COUNT,
};

#define RESULT_STATUS_MAX 600 /* status codes 100..599 counted one by one */

struct result_callbacks {
	bool checked_signatures;
	uint64_t expected;      /* accepted requests */
	uint64_t received;      /* accepted requests whose callback arrived */
	uint64_t missing;       /* expected - received */
	uint64_t duplicated;    /* accepted requests called back more than once */
	uint64_t out_of_order;  /* arrived after a later-accepted request's */
	uint64_t wrong_result;  /* a callback body disagreed with the local work */
	uint64_t bad_signature; /* --secret given and a signature did not verify */
	uint64_t unexpected;    /* callbacks for unknown or not-accepted requests */
	double waited_s;        /* from the last accept to the end of the wait */
	double span_s;          /* first accepted request's start to the last callback */
};

struct result_mode {
	bool ran;
	bool is_async;
	bool interrupted;
	uint64_t sent;      /* requests started (or due and timed out unsent) */
	uint64_t succeeded; /* expected status and a body that checked out */
	uint64_t failed;    /* sent - succeeded */
	uint64_t cause[CAUSE_COUNT];
	uint64_t http_status[RESULT_STATUS_MAX]; /* unexpected statuses only */
	uint64_t refused_no_retry_after;         /* 429/503 without Retry-After */
	double duration_s;                       /* first start to last response */
	double requested_rate;                   /* 0 = closed loop */
	double achieved_rate;                    /* sent / duration_s */
	double succeeded_rate;                   /* succeeded / duration_s */
	struct hist latency;                     /* sync response or async accept */
	struct hist callback_latency;            /* async: send to callback */
	struct result_callbacks cb;
};

/* Requests the service refused at once (429, 503 with Retry-After): its
 * designed answer to a storm, reported but not a failure of the run. */
static inline uint64_t result_refused(const struct result_mode *m)
{
	return m->cause[CAUSE_HTTP_429] + m->cause[CAUSE_HTTP_503];
}

/* Adds src's counts, histograms and callback counts to dst (durations and
 * rates are left to the caller: they do not add up across threads). */
void result_merge(struct result_mode *dst, const struct result_mode *src);

#endif
