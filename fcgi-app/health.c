/*
 * health: GET /healthz (see health.h).
 *
 *   ok        the database answers, and the deliverer is alive or has never
 *             run (a stack without a deliverer yet is not broken: "unknown")
 *   degraded  the database fails, or this process's writes fail (the newest
 *             batch of its committer failed, within WRITE_FAILING_MS: a
 *             full disk answers reads and refuses writes), or a deliverer
 *             used to beat and its newest heartbeat is older than
 *             CONSUMA_HEARTBEAT_STALE_SECONDS (accepted jobs would wait; a
 *             deliverer whose heartbeat writes fail goes stale the same
 *             way): 503 with the same body. Recovery needs no restart: the
 *             next batch that commits clears it.
 *
 * Open to everyone, with or without API keys (a load balancer has none), so
 * it says nothing private: no client, no key count, no record. "auth" is
 * "open" when the service runs without a keys file, "keys" with one.
 */
#include <stdio.h>
#include "auth.h"
#include "health.h"
#include "ids.h"
#include "store.h"

/* How long a failed write batch keeps /healthz degraded when no write
 * has succeeded since (with no traffic, nothing tells us it would fail
 * still). */
#define WRITE_FAILING_MS 10000

/* The error of this process's newest write batch when it failed recently
 * and nothing committed since; STORE_OK otherwise. */
static enum store_err writes_failing(const struct app *app)
{
	struct store_committer_stats st;
	store_committer_stats(app->committer, &st);
	if (st.last_failed_ms > st.last_ok_ms &&
	    ids_now_ms() - st.last_failed_ms < WRITE_FAILING_MS)
		return st.last_error != STORE_OK ? st.last_error : STORE_IO;
	return STORE_OK;
}

static json_object *rfc3339(int64_t ms)
{
	char s[IDS_RFC3339_LEN + 1];

	ids_rfc3339(ms, s);
	return json_object_new_string(s);
}

/* The deliverer section; NULL when memory ran out. */
static json_object *deliverer_section(const struct store_health *h, bool db_ok)
{
	json_object *d = json_object_new_object();
	const char *status = "unknown";
	bool seen = db_ok && h->deliverer_seen;
	bool ok = true;

	if (d == NULL)
		return NULL;
	if (seen)
		status = h->deliverers_alive > 0 ? "alive" : "stale";
	ok = ok && http_json_add(d, "status", true, json_object_new_string(status));
	ok = ok &&
	     http_json_add(d, "pid", seen, seen ? json_object_new_int64(h->deliverer_pid) : NULL);
	ok = ok && http_json_add(d, "started_at", seen && h->deliverer_started_at > 0,
	                         seen ? rfc3339(h->deliverer_started_at) : NULL);
	ok = ok && http_json_add(d, "last_heartbeat", seen && h->deliverer_beat_ms > 0,
	                         seen ? rfc3339(h->deliverer_beat_ms) : NULL);
	ok = ok && http_json_add(d, "workers", true, json_object_new_int64(seen ? h->workers : 0));
	ok = ok && http_json_add(d, "busy_workers", true,
	                         json_object_new_int64(seen ? h->busy_workers : 0));
	ok =
	    ok && http_json_add(d, "inflight", true, json_object_new_int64(seen ? h->inflight : 0));
	if (!ok) {
		json_object_put(d);
		return NULL;
	}
	return d;
}

void health_handle(struct http_exchange *x, const char *tail)
{
	struct app *app = x->app;
	struct store_health h = {0};
	enum store_err err;
	bool db_ok;
	bool degraded;
	char up[32];
	double uptime_s;
	json_object *o;
	bool ok;

	(void)tail;
	err = store_health(x->store, app->cfg.heartbeat_stale_ms, &h);
	db_ok = err == STORE_OK;
	enum store_err write_err = writes_failing(app);
	degraded = !db_ok || write_err != STORE_OK || (h.deliverer_seen && h.deliverers_alive == 0);
	uptime_s = (double)(ids_mono_ms() - app->started_mono_ms) / 1000.0;
	snprintf(up, sizeof(up), "%.3f", uptime_s);

	o = json_object_new_object();
	ok = o != NULL;
	if (ok) {
		ok = ok && http_json_add(o, "status", true,
		                         json_object_new_string(degraded ? "degraded" : "ok"));
		ok = ok && http_json_add(o, "queue_depth", db_ok,
		                         db_ok ? json_object_new_int64(h.queue_depth) : NULL);
		ok = ok && http_json_add(o, "active_workers", true,
		                         json_object_new_int64(db_ok ? h.busy_workers : 0));
		ok = ok && http_json_add(o, "db_connected", true, json_object_new_boolean(db_ok));
		ok = ok && http_json_add(o, "backend", true,
		                         json_object_new_string(store_backend(x->store)));
		ok = ok && http_json_add(o, "uptime_seconds", true,
		                         json_object_new_double_s(uptime_s, up));
		ok = ok &&
		     http_json_add(o, "version", true, json_object_new_string(CONSUMA_VERSION));
		ok = ok &&
		     http_json_add(o, "auth", true, json_object_new_string(auth_mode(app->auth)));
		ok = ok && http_json_add(o, "deliverer", true, deliverer_section(&h, db_ok));
		ok = ok && http_json_add(o, "writes_ok", true,
		                         json_object_new_boolean(write_err == STORE_OK));
		if (!db_ok)
			ok = ok && http_json_add(o, "detail", true,
			                         json_object_new_string(store_strerror(err)));
		else if (write_err != STORE_OK)
			ok = ok && http_json_add(o, "detail", true,
			                         json_object_new_string(store_strerror(write_err)));
	}
	if (!ok) {
		json_object_put(o);
		http_internal_error(x, "health", "out of memory");
		return;
	}
	if (degraded)
		http_retry_after(x, HTTP_RETRY_AFTER_UNAVAILABLE_S);
	http_send_json(x, degraded ? 503 : 200, o);
	json_object_put(o);
}
