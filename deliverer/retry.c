/*
 * retry: the callback retry policy.
 *
 *   2xx                     delivered.
 *   408, 429, 5xx           retried (the receiver is busy or broken for now).
 *                           Retry-After on 429 and 503 sets the delay,
 *                           bounded by CONSUMA_CALLBACK_BACKOFF_MAX_MS; the
 *                           message names the delay applied when the bound
 *                           cut what the receiver asked for.
 *   410                     failed at once, reason "gone": the receiver says
 *                           the resource is gone for good.
 *   3xx                     failed at once. Redirects are never followed (an
 *                           open redirect would carry the callback past the
 *                           SSRF guard), and the same request will get the
 *                           same redirect again: retrying only burns attempts.
 *   other 4xx (400, 401,    failed at once. The receiver understood and
 *   403, 404, 413, ...)     refused this request; sending the same body again
 *                           would be refused again. 408 and 429 are the two
 *                           4xx that say "later", and they are retried.
 *   1xx and other codes     failed at once (the receiver is not speaking the
 *                           protocol we expect).
 *   connection refused,     retried: the receiver may be restarting.
 *   connect errors,
 *   timeouts, closed
 *   without answer, reset,
 *   TLS errors, DNS failure
 *   destination refused     failed at once (DESIGN.md: the SSRF guard's
 *   by the address policy   verdict does not change by waiting).
 *   bad URL                 failed at once.
 *
 * Backoff: base * 2^(n-1) after the n-th failed attempt, capped at the max,
 * +-25% jitter so receivers that recover are not hit by a synchronized herd.
 * CONSUMA_CALLBACK_MAX_RETRIES counts attempts in all: when the attempts
 * with a known outcome reach it, a retryable failure becomes the final
 * failure with that last reason. Attempts whose outcome is unknown (the
 * deliverer died while they were in flight) do not count, so a crash never
 * eats a job's last chance; they are still bounded: at twice the limit in
 * all, the job fails.
 *
 * Every retryable failure also counts toward the destination's circuit
 * breaker (host_failure); permanent failures do not: a host that answers
 * 404 is up.
 */
#define _XOPEN_SOURCE 700 /* strptime */
#include "retry.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ids.h"
#include "why.h"

int64_t retry_backoff_ms(const struct retry_policy *p, int64_t n, uint64_t *rng)
{
	int64_t d = p->base_ms;
	for (int64_t i = 1; i < n && d < p->max_ms; i++)
		d *= 2;
	if (d > p->max_ms)
		d = p->max_ms;
	/* jitter in [-25%, +25%] */
	int64_t span = d / 2;
	int64_t j = span > 0 ? (int64_t)(ids_xorshift64(rng) % (uint64_t)(span + 1)) - span / 2 : 0;
	d += j;
	if (d > p->max_ms)
		d = p->max_ms;
	return d < 1 ? 1 : d;
}

bool retry_after_parse(const char *value, int64_t now_ms, int64_t *delay_ms)
{
	if (!value)
		return false;
	while (*value == ' ' || *value == '\t')
		value++;
	size_t len = strlen(value);
	while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t' ||
	                   value[len - 1] == '\r' || value[len - 1] == '\n'))
		len--;
	if (len == 0)
		return false;
	bool digits = true;
	for (size_t i = 0; i < len; i++)
		if (value[i] < '0' || value[i] > '9')
			digits = false;
	if (digits) {
		int64_t secs = 0;
		for (size_t i = 0; i < len; i++) {
			if (secs > 100000000) /* over three years: clamp, the cap applies anyway */
				break;
			secs = secs * 10 + (value[i] - '0');
		}
		*delay_ms = secs * 1000;
		return true;
	}
	char copy[64];
	if (len >= sizeof copy)
		return false;
	memcpy(copy, value, len);
	copy[len] = '\0';
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	const char *end = strptime(copy, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (!end || *end != '\0')
		return false;
	time_t t = timegm(&tm);
	if (t == (time_t)-1)
		return false;
	int64_t d = (int64_t)t * 1000 - now_ms;
	*delay_ms = d > 0 ? d : 0;
	return true;
}

static const char *detail_or(const char *detail, const char *fallback)
{
	return detail && detail[0] ? detail : fallback;
}

/* Fills class, message and whether the failure is worth retrying. */
static bool classify(const struct retry_input *in, struct retry_decision *out)
{
	int st = in->http_status;
	char *m = out->message;
	size_t ml = sizeof out->message;
	switch (in->transport) {
	case RETRY_T_RESPONSE:
		out->error_class = "http";
		if (st == 410) {
			snprintf(m, ml,
			         "gone (HTTP 410): the receiver will not take callbacks again");
			return false;
		}
		if (st == 408 || st == 429 || (st >= 500 && st <= 599)) {
			/* retry_decide adds the Retry-After part once the delay is known */
			snprintf(m, ml, "HTTP %d", st);
			out->host_failure = true;
			return true;
		}
		if (st >= 300 && st <= 399)
			snprintf(m, ml, "HTTP %d: redirects are not followed", st);
		else if (st >= 400 && st <= 499)
			snprintf(m, ml, "HTTP %d: the receiver refused the callback", st);
		else
			snprintf(m, ml, "HTTP %d: unexpected status", st);
		return false;
	case RETRY_T_REFUSED:
		out->error_class = "connect";
		snprintf(m, ml, "connection refused (%s)",
		         detail_or(in->detail, "nothing listens at the destination"));
		break;
	case RETRY_T_CONNECT:
		out->error_class = "connect";
		snprintf(m, ml, "could not connect: %s", detail_or(in->detail, "connect failed"));
		break;
	case RETRY_T_TIMEOUT:
		out->error_class = "timeout";
		snprintf(m, ml, "timed out: %s", detail_or(in->detail, "deadline passed"));
		break;
	case RETRY_T_CLOSED:
		out->error_class = "closed";
		snprintf(m, ml, "connection closed without a response");
		break;
	case RETRY_T_NETWORK:
		out->error_class = "network";
		snprintf(m, ml, "network error: %s",
		         detail_or(in->detail, "send or receive failed"));
		break;
	case RETRY_T_TLS:
		out->error_class = "tls";
		snprintf(m, ml, "TLS error: %s", detail_or(in->detail, "handshake failed"));
		break;
	case RETRY_T_DNS:
		out->error_class = "dns";
		snprintf(m, ml, "%s", detail_or(in->detail, "the host did not resolve"));
		break;
	case RETRY_T_INTERNAL:
		out->error_class = "internal";
		snprintf(m, ml, "internal error: %s",
		         detail_or(in->detail, "delivery setup failed"));
		break;
	case RETRY_T_DENIED:
		out->error_class = "refused";
		snprintf(m, ml, "%s", detail_or(in->detail, "destination refused"));
		return false;
	case RETRY_T_BAD_URL:
		out->error_class = "url";
		snprintf(m, ml, "%s", detail_or(in->detail, "callback_url: invalid"));
		return false;
	}
	out->host_failure = in->transport != RETRY_T_INTERNAL;
	return true;
}

static bool honours_retry_after(const struct retry_input *in)
{
	int st = in->http_status;
	return in->transport == RETRY_T_RESPONSE && (st == 429 || st == 503) &&
	       in->retry_after_ms >= 0;
}

/* Appends to the message; a message that is full stays cut, never overrun. */
/* What the receiver asked for, and, when the cap cut it, the delay applied:
 * last_error must not claim a wait that never happened. */
static void note_retry_after(const struct retry_input *in, struct retry_decision *out)
{
	if (out->action == STORE_RETRY && out->delay_ms < in->retry_after_ms)
		why_append(out->message, sizeof out->message,
		           " (Retry-After %lld ms, capped: retrying in %lld ms)",
		           (long long)in->retry_after_ms, (long long)out->delay_ms);
	else
		why_append(out->message, sizeof out->message, " (Retry-After %lld ms)",
		           (long long)in->retry_after_ms);
}

void retry_decide(const struct retry_policy *p, const struct retry_input *in, uint64_t *rng,
                  struct retry_decision *out)
{
	memset(out, 0, sizeof *out);
	if (in->transport == RETRY_T_RESPONSE && in->http_status >= 200 && in->http_status <= 299) {
		out->action = STORE_DELIVERED;
		return;
	}
	if (!classify(in, out)) {
		out->action = STORE_FAILED;
		return;
	}
	if (in->attempts_known >= p->max_attempts || in->attempts_total >= 2 * p->max_attempts) {
		out->action = STORE_FAILED;
		if (honours_retry_after(in))
			note_retry_after(in, out);
		return;
	}
	out->action = STORE_RETRY;
	if (honours_retry_after(in)) {
		out->delay_ms = in->retry_after_ms < p->max_ms ? in->retry_after_ms : p->max_ms;
		note_retry_after(in, out);
	} else {
		out->delay_ms = retry_backoff_ms(p, in->attempts_known, rng);
	}
}

void retry_hold(struct retry_decision *d, int64_t min_delay_ms, const char *why)
{
	if (d->action != STORE_RETRY || d->delay_ms >= min_delay_ms)
		return;
	d->delay_ms = min_delay_ms;
	why_append(d->message, sizeof d->message, "; retry held %lld ms: %s",
	           (long long)min_delay_ms, why);
}
