/*
 * router: the route table of consuma-fcgi (see router.h).
 *
 * Paths are matched after percent-decoding, exactly (no trailing-slash
 * aliases), so lighttpd and nginx reach the same handler for the same
 * request whatever prefix rules they used to pick a pool.
 */
#include <string.h>
#include "async.h"
#include "health.h"
#include "log.h"
#include "redeliver.h"
#include "requests.h"
#include "router.h"
#include "scrape.h"
#include "sync.h"

typedef void (*handler_fn)(struct http_exchange *x, const char *tail);

/* Who may call a route once access control (API keys) exists; until then
 * every route is open and this is not checked. */
enum route_access {
	ROUTE_CLIENT, /* any client, its own records */
	ROUTE_ADMIN,  /* the admin key only */
};

struct route {
	const char *path;   /* exact path, or prefix when prefix is true */
	bool prefix;        /* the rest of the path is passed as tail */
	const char *suffix; /* with prefix: the path must end so; tail excludes it */
	const char *method; /* the one method served */
	const char *name;   /* for logs and limits_admit */
	handler_fn handler;
	enum route_access access;
};

/* First match wins: exact paths before the prefix routes they overlap. */
static const struct route routes[] = {
    {"/sync", false, NULL, "POST", "sync", sync_handle, ROUTE_CLIENT},
    {"/async", false, NULL, "POST", "async", async_handle, ROUTE_CLIENT},
    {"/requests", false, NULL, "GET", "requests", requests_list, ROUTE_CLIENT},
    {"/requests/redeliver", false, NULL, "POST", "redeliver", redeliver_bulk, ROUTE_ADMIN},
    {"/requests/", true, "/redeliver", "POST", "redeliver", redeliver_one, ROUTE_ADMIN},
    {"/requests/", true, NULL, "GET", "requests", requests_get, ROUTE_CLIENT},
    {"/healthz", false, NULL, "GET", "healthz", health_handle, ROUTE_CLIENT},
    {"/metrics", false, NULL, "GET", "metrics", scrape_handle, ROUTE_CLIENT},
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

static bool admit(struct http_exchange *x, const struct route *r, bool *overloaded)
{
	struct app *app = x->app;
	int64_t retry_after = 0;
	enum limits_verdict v;

	limits_client_addr(app->limits, http_param(x, "REMOTE_ADDR"),
	                   http_param(x, "HTTP_X_FORWARDED_FOR"), x->client, sizeof(x->client));
	v = limits_admit(app->limits, x->client, r->name, &retry_after);
	if (v == LIMITS_PASS)
		return true;
	if (retry_after < 1)
		retry_after = 1;
	*overloaded = v == LIMITS_OVERLOADED;
	http_header(x, "Retry-After", "%lld", (long long)retry_after);
	if (v == LIMITS_OVERLOADED)
		http_error(x, 503, "service: the %s pool is saturated; retry after %lld s", r->name,
		           (long long)retry_after);
	else
		http_error(x, 429, "rate limit exceeded for client %s on %s; retry after %lld s",
		           x->client, r->name, (long long)retry_after);
	return false;
}

void router_dispatch(struct http_exchange *x)
{
	const struct route *r;
	char tail[HTTP_PATH_MAX];
	bool overloaded = false;
	bool delivered;

	r = match(x->path, tail, sizeof(tail));
	if (r == NULL) {
		http_error(x, 404, "path: no such resource");
		goto log;
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
		goto log;
	}
	if (!admit(x, r, &overloaded)) {
		scrape_count_answer(x, false, overloaded);
		goto log;
	}
	r->handler(x, tail);
	if (x->status == 0)
		http_internal_error(x, "dispatch", "handler sent no response");
	scrape_count_answer(x, true, false);
log:
	/* status is what was sent; delivered says whether it reached the
	 * front. A 202 that did not is still a job: the client saw a 5xx or a
	 * reset and retries with its Idempotency-Key. */
	delivered = http_flush(x);
	log_event(delivered ? L_INFO : L_WARN, "request",
	          "route=%s method=%s status=%d delivered=%s duration_ms=%.3f request_id=%s "
	          "client=%s",
	          x->route, log_q(x->method), x->status, delivered ? "true" : "false",
	          (double)(ids_mono_ns() - x->start_ns) / 1e6,
	          x->request_id[0] != '\0' ? x->request_id : "-",
	          x->client[0] != '\0' ? log_q(x->client) : "-");
}
