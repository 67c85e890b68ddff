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
#include "requests.h"
#include "router.h"
#include "sync.h"

typedef void (*handler_fn)(struct http_exchange *x, const char *tail);

struct route {
	const char *path;   /* exact path, or prefix when prefix is true */
	bool prefix;        /* the rest of the path is passed as tail */
	const char *method; /* the one method served */
	const char *name;   /* for logs and limits_admit */
	handler_fn handler;
};

static const struct route routes[] = {
    {"/sync", false, "POST", "sync", sync_handle},
    {"/async", false, "POST", "async", async_handle},
    {"/requests", false, "GET", "requests", requests_list},
    {"/requests/", true, "GET", "requests", requests_get},
    {"/healthz", false, "GET", "healthz", health_handle},
};

static const struct route *match(const char *path, const char **tail)
{
	size_t i;

	for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		const struct route *r = &routes[i];
		size_t n = strlen(r->path);

		if (r->prefix) {
			if (strncmp(path, r->path, n) == 0 && path[n] != '\0' &&
			    strchr(path + n, '/') == NULL) {
				*tail = path + n;
				return r;
			}
		} else if (strcmp(path, r->path) == 0) {
			*tail = "";
			return r;
		}
	}
	return NULL;
}

static bool admit(struct http_exchange *x, const struct route *r)
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
	const char *tail = "";
	bool delivered;

	r = match(x->path, &tail);
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
	if (!admit(x, r))
		goto log;
	r->handler(x, tail);
	if (x->status == 0)
		http_internal_error(x, "dispatch", "handler sent no response");
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
