/*
 * router: the route table of consuma-fcgi (see router.h).
 *
 * Paths are matched after percent-decoding, exactly (no trailing-slash
 * aliases), so lighttpd and nginx reach the same handler for the same
 * request whatever prefix rules they used to pick a pool.
 *
 * Order for a matched route: method (405), API key (401/403, auth.h; the
 * route's `need` says who may call it), then admission control (429/503)
 * counted per client key when there is one, else per address.
 */
#include <stdio.h>
#include <string.h>
#include "async.h"
#include "auth.h"
#include "health.h"
#include "log.h"
#include "redeliver.h"
#include "requests.h"
#include "router.h"
#include "scrape.h"
#include "sync.h"

typedef void (*handler_fn)(struct http_exchange *x, const char *tail);

struct route {
	const char *path;   /* exact path, or prefix when prefix is true */
	bool prefix;        /* the rest of the path is passed as tail */
	const char *suffix; /* with prefix: the path must end so; tail excludes it */
	const char *method; /* the one method served */
	const char *name;   /* for logs and limits_admit */
	handler_fn handler;
	enum auth_need need; /* AUTH_KEY: any client (its own records); AUTH_ADMIN: the
	                      * admin key only; AUTH_NONE: anyone (auth.h) */
};

/* First match wins: exact paths before the prefix routes they overlap. */
static const struct route routes[] = {
    {"/sync", false, NULL, "POST", "sync", sync_handle, AUTH_KEY},
    {"/async", false, NULL, "POST", "async", async_handle, AUTH_KEY},
    {"/requests", false, NULL, "GET", "requests", requests_list, AUTH_KEY},
    {"/requests/redeliver", false, NULL, "POST", "redeliver", redeliver_bulk, AUTH_ADMIN},
    {"/requests/", true, "/redeliver", "POST", "redeliver", redeliver_one, AUTH_ADMIN},
    {"/requests/", true, NULL, "GET", "requests", requests_get, AUTH_KEY},
    {"/healthz", false, NULL, "GET", "healthz", health_handle, AUTH_NONE},
    /* every client's figures: for the operator's scraper, an admin key */
    {"/metrics", false, NULL, "GET", "metrics", scrape_handle, AUTH_ADMIN},
};

/* path minus the route's prefix and suffix into tail (one non-empty
 * segment, no '/'), or false. */
static bool match_prefix(const struct route *r, const char *path, char *tail, size_t tailmax)
{
	size_t n = strlen(r->path);
	size_t len = strlen(path);
	size_t sn = r->suffix != NULL ? strlen(r->suffix) : 0;
	size_t mid;

	if (strncmp(path, r->path, n) != 0 || len < n + sn + 1)
		return false;
	if (sn > 0 && strcmp(path + len - sn, r->suffix) != 0)
		return false;
	mid = len - n - sn;
	if (mid >= tailmax || memchr(path + n, '/', mid) != NULL)
		return false;
	memcpy(tail, path + n, mid);
	tail[mid] = '\0';
	return true;
}

static const struct route *match(const char *path, char *tail, size_t tailmax)
{
	size_t i;

	for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		const struct route *r = &routes[i];

		if (r->prefix) {
			if (match_prefix(r, path, tail, tailmax))
				return r;
		} else if (strcmp(path, r->path) == 0) {
			tail[0] = '\0';
			return r;
		}
	}
	return NULL;
}

/* The API key, then whom the request counts against: the key's client
 * when there is one (rate limit, queue share and Idempotency-Key are then
 * per client, whatever address it comes from), else the address. */
static bool authenticate(struct http_exchange *x, const struct route *r)
{
	struct app *app = x->app;

	limits_client_addr(app->limits, http_param(x, "REMOTE_ADDR"),
	                   http_param(x, "HTTP_X_FORWARDED_FOR"), x->client, sizeof(x->client));
	auth_refresh(app->auth);
	if (!auth_check(app->auth, x, r->need))
		return false;
	if (x->owner[0] != '\0') {
		memcpy(x->addr, x->client, HTTP_CLIENT_MAX); /* still logged */
		snprintf(x->client, sizeof(x->client), "key:%s", x->owner);
	}
	return true;
}

static bool admit(struct http_exchange *x, const struct route *r, bool *overloaded)
{
	struct app *app = x->app;
	int64_t retry_after = 0;
	enum limits_verdict v;

	v = limits_admit(app->limits, x->client, r->name, &retry_after);
	if (v == LIMITS_PASS)
		return true;
	*overloaded = v == LIMITS_OVERLOADED;
	retry_after = http_retry_after(x, retry_after);
	if (v == LIMITS_OVERLOADED)
		http_error(x, 503, "service: the %s pool is saturated; retry after %lld s", r->name,
		           (long long)retry_after);
	else
		http_error(x, 429, "rate limit exceeded for client %s on %s; retry after %lld s",
		           x->client, r->name, (long long)retry_after);
	return false;
}

/* The end of every exchange: the response out, the log line. status is
 * what was sent; delivered says whether it reached the front. A 202 that
 * did not is still a job: the client saw a 5xx or a reset and retries with
 * its Idempotency-Key. http_finish ends the streams and the request, so
 * the response, its end and END_REQUEST leave in one write(2) (a flush
 * first made that two, and woke the front twice per request). */
static void finish(struct http_exchange *x)
{
	bool delivered = http_finish(x);
	/* milliseconds to the microsecond, as %.3f would print them, in whole
	 * numbers: every request has this line, and printf's float conversion
	 * was a third of its cost */
	long long us = (ids_mono_ns() - x->start_ns + 500) / 1000;

	log_event(delivered ? L_INFO : L_WARN, "request",
	          "route=%s method=%s status=%d delivered=%s duration_ms=%lld.%03lld request_id=%s "
	          "client=%s%s%s",
	          x->route, log_q(x->method), x->status, delivered ? "true" : "false", us / 1000,
	          us % 1000, x->request_id[0] != '\0' ? x->request_id : "-",
	          x->client[0] != '\0' ? log_q(x->client) : "-", x->addr[0] != '\0' ? " addr=" : "",
	          x->addr[0] != '\0' ? log_q(x->addr) : "");
}

/* After the handler has answered (or not: that is a 500). */
static void answered(struct http_exchange *x)
{
	if (x->status == 0)
		http_internal_error(x, "dispatch", "handler sent no response");
	scrape_count_answer(x, true, false);
	finish(x);
}

void router_dispatch(struct http_exchange *x)
{
	const struct route *r;
	char tail[HTTP_PATH_MAX];
	bool overloaded = false;

	r = match(x->path, tail, sizeof(tail));
	if (r == NULL) {
		http_error(x, 404, "path: no such resource");
		goto out;
	}
	x->route = r->name;
	if (strcmp(x->method, r->method) != 0) {
		http_header(x, "Allow", "%s", r->method);
		http_error(x, 405, "method: %s is not allowed here; allowed: %s",
		           strcmp(x->method, "GET") == 0 || strcmp(x->method, "POST") == 0 ||
		                   strcmp(x->method, "PUT") == 0 ||
		                   strcmp(x->method, "DELETE") == 0 ||
		                   strcmp(x->method, "PATCH") == 0 || strcmp(x->method, "HEAD") == 0
		               ? x->method
		               : "this method",
		           r->method);
		goto out;
	}
	if (!authenticate(x, r)) {
		scrape_count_answer(x, true, false); /* a 401/403: counted by its status */
		goto out;
	}
	if (!admit(x, r, &overloaded)) {
		scrape_count_answer(x, false, overloaded);
		goto out;
	}
	r->handler(x, tail);
	if (!x->parked)
		answered(x);
	return;
out:
	finish(x);
}

void router_resume(struct http_exchange *x)
{
	x->parked = false;
	x->resume(x);
	answered(x);
}
