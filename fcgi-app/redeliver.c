/*
 * redeliver: the replay routes (see redeliver.h).
 *
 * A redelivered job keeps its id, so its webhook-id, and its attempts: the
 * next attempt is number n+1 in the same delivery_trace. It is given the
 * attempts its CONSUMA_CALLBACK_MAX_RETRIES budget has left, and at least
 * one: a job that failed after the whole budget gets one more attempt per
 * redelivery (as a manual retry in Svix or Hookdeck does), so an operator
 * who replays into a receiver that is still down costs it one request per
 * job, not a new round of retries.
 *
 * Pacing. The bulk route does not send anything itself: it re-opens the
 * jobs, due now in acceptance order (lib/store.c), and the deliverer's
 * bounds pace them as they pace any traffic, per origin: at most
 * CONSUMA_MAX_PER_HOST in flight, of which a redelivered job (tried before,
 * so "suspect" to deliverer/hosts.h) takes at most half; at most twice the
 * bound claimed (other origins are not starved); and an open circuit
 * breaker holds an origin's jobs until its cool-down ends. A replay runs at
 * the receiver's pace, never faster. It also cannot push the queue past
 * CONSUMA_MAX_QUEUE_SIZE: a run takes the oldest matching jobs that fit in
 * the room the queue has, says how many remain, and is simply called again
 * (503 when there is no room at all).
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "alloc.h"
#include "ids.h"
#include "metrics.h"
#include "redeliver.h"
#include "store.h"

#define HOST_MAX 255

static bool digits(const char **p, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*p)[i]))
			return false;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	*out = v;
	return true;
}

static bool expect(const char **p, const char *set)
{
	if (**p == '\0' || strchr(set, **p) == NULL)
		return false;
	(*p)++;
	return true;
}

static bool leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

bool redeliver_parse_time(const char *s, int64_t *ms)
{
	static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	struct tm tm = {0};
	int y, mo, d, h, mi, sec, oh = 0, om = 0, frac_ms = 0, sign = 0;
	const char *p = s;
	time_t t;

	if (s == NULL || !digits(&p, 4, &y) || !expect(&p, "-") || !digits(&p, 2, &mo) ||
	    !expect(&p, "-") || !digits(&p, 2, &d) || !expect(&p, "Tt") || !digits(&p, 2, &h) ||
	    !expect(&p, ":") || !digits(&p, 2, &mi) || !expect(&p, ":") || !digits(&p, 2, &sec))
		return false;
	if (*p == '.') {
		int n = 0;

		for (p++; isdigit((unsigned char)*p); p++, n++)
			if (n < 3)
				frac_ms = frac_ms * 10 + (*p - '0');
		if (n == 0)
			return false;
		for (; n < 3; n++)
			frac_ms *= 10;
	}
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if (*p == '+' || *p == '-') {
		sign = *p == '-' ? -1 : 1;
		p++;
		if (!digits(&p, 2, &oh) || !expect(&p, ":") || !digits(&p, 2, &om) || oh > 23 ||
		    om > 59)
			return false;
	} else {
		return false;
	}
	if (*p != '\0' || y < 1970 || mo < 1 || mo > 12 || d < 1 ||
	    d > mdays[mo - 1] + (mo == 2 && leap(y)) || h > 23 || mi > 59 || sec > 60)
		return false;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = timegm(&tm);
	if (t == (time_t)-1)
		return false;
	*ms = ((int64_t)t - (int64_t)sign * (oh * 3600 + om * 60)) * 1000 + frac_ms;
	return true;
}

/* Both routes change state on a POST: like every POST they want a JSON
 * Content-Type (a browser's cross-origin "simple request", a form or
 * text/plain, must never trigger a replay). 415 and false otherwise. */
static bool json_post(struct http_exchange *x)
{
	if (http_content_type_json(http_param(x, "CONTENT_TYPE")))
		return true;
	http_error(x, 415, "Content-Type: must be application/json (charset=utf-8 allowed)");
	return false;
}

void redeliver_one(struct http_exchange *x, const char *tail)
{
	struct app *app = x->app;
	enum store_redeliver outcome;
	enum store_err err;
	int64_t seq = 0;
	json_object *o;
	bool ok;

	if (!ids_uuid_valid(tail)) {
		http_error(x, 404, "request_id: no such request");
		return;
	}
	if (!json_post(x))
		return;
	memcpy(x->request_id, tail, IDS_UUID_LEN + 1);
	err = store_redeliver_one(x->store, tail, ids_now_ms(), &outcome, &seq);
	if (err == STORE_NOTFOUND) {
		http_error(x, 404, "request_id: no such request");
		return;
	}
	if (err != STORE_OK) {
		http_store_failed(x, err, "store_redeliver_one");
		return;
	}
	if (outcome == STORE_REDELIVER_BUSY) {
		http_error(x, 409,
		           "request_id: %s is still in progress; redeliver it once it has "
		           "been delivered or has failed",
		           tail);
		return;
	}
	if (outcome == STORE_REDELIVER_NOTJOB) {
		http_error(x, 409, "request_id: %s is a /sync request; there is no callback", tail);
		return;
	}
	metrics_count(app->metrics, METRICS_JOBS_REDELIVERED, 1);
	metrics_pending_mark_lower(app->metrics, seq);
	o = json_object_new_object();
	ok = o != NULL;
	if (ok) {
		ok = ok && http_json_add(o, "request_id", true, json_object_new_string(tail));
		ok = ok && http_json_add(o, "status", true, json_object_new_string("accepted"));
		ok = ok && http_json_add(
		               o, "message", true,
		               json_object_new_string(
		                   "redelivery scheduled; new attempts join its delivery_trace"));
	}
	if (!ok) {
		json_object_put(o);
		http_internal_error(x, "response", "out of memory");
		return;
	}
	http_header(x, "Location", "/requests/%s", tail);
	x->ring_doorbell = true;
	http_send_json(x, 202, o);
	json_object_put(o);
}

struct bulk_params {
	const char *status;
	int64_t since_ms, until_ms;
	char host[HOST_MAX + 1];
	bool has_host;
	bool dry_run;
};

/* Reads one RFC 3339 field; answers 422 and returns false when it is bad. */
static bool time_field(struct http_exchange *x, json_object *body, const char *name, int64_t *ms)
{
	json_object *v = NULL;

	if (!json_object_object_get_ex(body, name, &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    !redeliver_parse_time(json_object_get_string(v), ms)) {
		http_error(x, 422,
		           "%s: required, an RFC 3339 date-time such as "
		           "2026-12-01T21:00:00Z",
		           name);
		return false;
	}
	return true;
}

/* Checks the body of POST /requests/redeliver; answers 422 on a bad field. */
static bool bulk_parse(struct http_exchange *x, json_object *body, struct bulk_params *p)
{
	json_object *v = NULL;

	if (!json_object_is_type(body, json_type_object)) {
		http_error(x, 422, "body: must be a JSON object");
		return false;
	}
	if (!json_object_object_get_ex(body, "status", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    (strcmp(json_object_get_string(v), "failed") != 0 &&
	     strcmp(json_object_get_string(v), "delivered") != 0)) {
		http_error(x, 422, "status: required, \"failed\" or \"delivered\"");
		return false;
	}
	p->status = json_object_get_string(v);
	if (!time_field(x, body, "since", &p->since_ms) ||
	    !time_field(x, body, "until", &p->until_ms))
		return false;
	if (p->until_ms <= p->since_ms) {
		http_error(x, 422, "until: must be later than since");
		return false;
	}
	if (json_object_object_get_ex(body, "callback_host", &v) && v != NULL) {
		const char *h = json_object_get_string(v);
		size_t n = (size_t)json_object_get_string_len(v);

		if (!json_object_is_type(v, json_type_string) || n < 1 || n > HOST_MAX ||
		    strlen(h) != n) {
			http_error(x, 422, "callback_host: a host name of 1..%d bytes", HOST_MAX);
			return false;
		}
		for (size_t i = 0; i <= n; i++)
			p->host[i] = (char)tolower((unsigned char)h[i]);
		p->has_host = true;
	}
	if (json_object_object_get_ex(body, "dry_run", &v) && v != NULL) {
		if (!json_object_is_type(v, json_type_boolean)) {
			http_error(x, 422, "dry_run: must be true or false");
			return false;
		}
		p->dry_run = json_object_get_boolean(v);
	}
	return true;
}

static void bulk_run(struct http_exchange *x, struct bulk_params *p)
{
	struct app *app = x->app;
	struct redeliver_query q = {
	    .callback_status = p->status,
	    .since_ms = p->since_ms,
	    .until_ms = p->until_ms,
	    .callback_host = p->has_host ? p->host : NULL,
	};
	struct store_health h = {0};
	int64_t matched = 0, done = 0, min_seq = 0;
	enum store_err err = STORE_OK;
	json_object *o;
	bool ok;

	if (!p->dry_run) {
		err = store_health(x->store, app->cfg.heartbeat_stale_ms, &h);
		q.max_jobs = app->cfg.max_queue_size - h.queue_depth;
	}
	if (err == STORE_OK)
		err = store_redeliver_bulk(x->store, &q, p->dry_run, ids_now_ms(), &matched, &done,
		                           &min_seq);
	if (err != STORE_OK) {
		http_store_failed(x, err, "store_redeliver_bulk");
		return;
	}
	if (!p->dry_run && matched > 0 && done == 0) {
		int64_t retry = http_retry_after(x, HTTP_RETRY_AFTER_UNAVAILABLE_S);

		http_error(x, 503,
		           "queue is full (%lld jobs waiting, bound %lld): nothing redelivered of "
		           "%lld matching jobs; retry after %lld s",
		           (long long)h.queue_depth, (long long)app->cfg.max_queue_size,
		           (long long)matched, (long long)retry);
		return;
	}
	metrics_count(app->metrics, METRICS_JOBS_REDELIVERED, (uint64_t)done);
	metrics_pending_mark_lower(app->metrics, min_seq);
	o = json_object_new_object();
	ok = o != NULL;
	if (ok) {
		ok = ok && http_json_add(o, "count", true,
		                         json_object_new_int64(p->dry_run ? matched : done));
		if (!p->dry_run) {
			ok =
			    ok && http_json_add(o, "matched", true, json_object_new_int64(matched));
			ok = ok && http_json_add(o, "remaining", true,
			                         json_object_new_int64(matched - done));
		}
	}
	if (!ok) {
		json_object_put(o);
		http_internal_error(x, "response", "out of memory");
		return;
	}
	x->ring_doorbell = done > 0;
	http_send_json(x, p->dry_run ? 200 : 202, o);
	json_object_put(o);
}

/* The body as one strict JSON value, nothing after it but blanks; NULL
 * when it is not. */
static json_object *parse_body(const char *body, size_t len)
{
	struct json_tokener *tok = json_tokener_new_ex(8);
	json_object *j = NULL;
	size_t end;

	if (tok == NULL)
		return NULL;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	j = json_tokener_parse_ex(tok, body, (int)len);
	end = json_tokener_get_parse_end(tok);
	while (end < len && body[end] != '\0' && strchr(" \t\r\n", body[end]) != NULL)
		end++;
	if (json_tokener_get_error(tok) != json_tokener_success || end < len) {
		json_object_put(j);
		j = NULL;
	}
	json_tokener_free(tok);
	return j;
}

void redeliver_bulk(struct http_exchange *x, const char *tail)
{
	struct bulk_params p = {0};
	enum http_body_err berr;
	size_t cap = (size_t)x->app->cfg.max_body_bytes;
	char *body = NULL;
	size_t len = 0;
	json_object *j = NULL;

	(void)tail;
	if (!json_post(x))
		return;
	berr = http_read_body(x, cap, &body, &len);
	if (berr != HTTP_BODY_OK) {
		http_fail_body(x, berr, cap);
		return;
	}
	j = parse_body(body, len);
	if (j == NULL)
		http_error(x, 422, "body: not a valid JSON object");
	else if (bulk_parse(x, j, &p))
		bulk_run(x, &p);
	json_object_put(j);
	cz_free(body);
}
