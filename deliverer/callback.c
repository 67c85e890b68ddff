/*
 * callback: the callback wire format (see callback.h).
 *
 * The request id goes into the body and the headers as it is: ids are made
 * by lib/ids.c (hex and dashes), never taken from a client, so there is
 * nothing to escape.
 */
#include "callback.h"

#include <stdarg.h>
#include <stdio.h>

#include "ids.h"

const char *callback_strerror(enum callback_err err)
{
	switch (err) {
	case CALLBACK_OK:
		return "ok";
	case CALLBACK_NOMEM:
		return "out of memory building the callback";
	case CALLBACK_SIGN:
		return "the callback could not be signed";
	}
	return "unknown callback error";
}

enum callback_err callback_body(struct buf *out, const struct callback_result *r)
{
	char created[IDS_RFC3339_LEN + 1], completed[IDS_RFC3339_LEN + 1];

	ids_rfc3339(r->created_at_ms, created);
	ids_rfc3339(r->completed_at_ms, completed);
	buf_reset(out);
	buf_printf(out,
	           "{\"request_id\":\"%s\",\"status\":\"completed\",\"result\":\"%s\","
	           "\"iterations\":%lld,\"duration_ms\":%.3f,\"created_at\":\"%s\","
	           "\"completed_at\":\"%s\"}",
	           r->request_id, r->result, (long long)r->iterations, r->duration_ms, created,
	           completed);
	return out->err == BUF_OK ? CALLBACK_OK : CALLBACK_NOMEM;
}

static enum callback_err add(struct curl_slist **l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Appends one header line. */
static enum callback_err add(struct curl_slist **l, const char *fmt, ...)
{
	char line[sizeof "webhook-signature: " + SIGN_HEADER_MAX];
	struct curl_slist *n;
	va_list ap;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (len < 0 || (size_t)len >= sizeof line)
		return CALLBACK_NOMEM;
	n = curl_slist_append(*l, line);
	if (n == NULL)
		return CALLBACK_NOMEM;
	*l = n;
	return CALLBACK_OK;
}

enum callback_err callback_headers(struct curl_slist **headers, const char *request_id,
                                   int64_t attempt, int64_t sent_at_ms, const struct sign_key *key,
                                   const char *body, size_t body_len)
{
	int64_t ts = sent_at_ms / 1000;
	char sig[SIGN_HEADER_MAX];
	enum callback_err rc;

	rc = add(headers, "Content-Type: application/json");
	if (rc == CALLBACK_OK)
		rc = add(headers, "User-Agent: consuma/%s", CONSUMA_VERSION);
	if (rc == CALLBACK_OK) /* no value: curl sends none, and waits for no 100-continue */
		rc = add(headers, "Expect:");
	if (rc == CALLBACK_OK)
		rc = add(headers, "X-Request-ID: %s", request_id);
	if (rc == CALLBACK_OK)
		rc = add(headers, "X-Attempt-Number: %lld", (long long)attempt);
	/* The same webhook-id for every attempt of a job: receivers dedupe on it. */
	if (rc == CALLBACK_OK)
		rc = add(headers, "webhook-id: %s", request_id);
	if (rc == CALLBACK_OK)
		rc = add(headers, "webhook-timestamp: %lld", (long long)ts);
	if (rc != CALLBACK_OK || key == NULL)
		return rc;
	/* one v1, signature per CONSUMA_CALLBACK_SECRET entry (rotation) */
	if (sign_webhook(key, request_id, ts, body, body_len, sig, sizeof sig) != SIGN_OK)
		return CALLBACK_SIGN;
	return add(headers, "webhook-signature: %s", sig);
}
