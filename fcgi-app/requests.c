/*
 * requests: GET /requests and GET /requests/{id} (see requests.h).
 *
 * The query string is parsed strictly: every known parameter is decoded
 * (percent escapes, '+' as space), given at most once and checked against
 * its type and range; a bad one is a 422 naming it. Unknown parameters are
 * ignored, as unknown JSON fields are, whatever their length: a name too
 * long to spell a known one, even fully percent-encoded, is not decoded.
 *
 * offset is bounded (OFFSET_MAX): SQLite walks every skipped row, so an
 * unbounded offset would be a table scan on request.
 *
 * With API keys both routes see the caller's own records only (an admin
 * key sees all): a record of another client is a 404 exactly like an
 * unknown id, from the same one-row lookup, so neither the answer nor its
 * time says that the id exists.
 */
#include <stdio.h>
#include <string.h>
#include <json-c/json.h>
#include "auth.h"
#include "ids.h"
#include "requests.h"
#include "store.h"

#define LIMIT_DEFAULT 50
#define LIMIT_MAX     200
#define OFFSET_MAX    10000
#define VALUE_MAX     64
/* the longest known name ("offset", "status") with every byte escaped */
#define KEY_RAW_MAX (3 * 6)

struct list_params {
	char mode[VALUE_MAX];
	char status[VALUE_MAX];
	int64_t limit;
	int64_t offset;
	bool seen_mode, seen_status, seen_limit, seen_offset;
};

static const char *const modes[] = {"sync", "async", NULL};
/* work states, callback states, and failed (either): see store.c */
static const char *const statuses[] = {"queued",   "running",    "completed",
                                       "pending",  "delivering", "delivered",
                                       "retrying", "failed",     NULL};

static bool one_of(const char *v, const char *const *set)
{
	for (; *set != NULL; set++) {
		if (strcmp(v, *set) == 0)
			return true;
	}
	return false;
}

/* Decimal digits only, no sign, no spaces, value within [min, max]. */
static bool parse_int(const char *s, int64_t min, int64_t max, int64_t *out)
{
	int64_t v = 0;

	if (s[0] == '\0')
		return false;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return false;
		if (v > (max - (*s - '0')) / 10)
			return false;
		v = v * 10 + (*s - '0');
	}
	if (v < min)
		return false;
	*out = v;
	return true;
}

/* Checks one decoded key=value pair; on a bad value answers 422 and returns
 * false. */
static bool take(struct http_exchange *x, struct list_params *p, const char *key, const char *value)
{
	bool *seen = NULL;

	if (strcmp(key, "mode") == 0)
		seen = &p->seen_mode;
	else if (strcmp(key, "status") == 0)
		seen = &p->seen_status;
	else if (strcmp(key, "limit") == 0)
		seen = &p->seen_limit;
	else if (strcmp(key, "offset") == 0)
		seen = &p->seen_offset;
	else
		return true;
	if (*seen) {
		http_error(x, 422, "%s: given more than once", key);
		return false;
	}
	*seen = true;
	if (seen == &p->seen_mode) {
		if (!one_of(value, modes)) {
			http_error(x, 422, "mode: must be sync or async");
			return false;
		}
		snprintf(p->mode, sizeof(p->mode), "%s", value);
	} else if (seen == &p->seen_status) {
		if (!one_of(value, statuses)) {
			http_error(x, 422,
			           "status: must be queued, running, completed, pending, "
			           "delivering, delivered, retrying or failed");
			return false;
		}
		snprintf(p->status, sizeof(p->status), "%s", value);
	} else if (seen == &p->seen_limit) {
		if (!parse_int(value, 1, LIMIT_MAX, &p->limit)) {
			http_error(x, 422, "limit: must be an integer from 1 to %d", LIMIT_MAX);
			return false;
		}
	} else if (!parse_int(value, 0, OFFSET_MAX, &p->offset)) {
		http_error(x, 422,
		           "offset: must be an integer from 0 to %d (narrow the list with mode "
		           "or status)",
		           OFFSET_MAX);
		return false;
	}
	return true;
}

static bool parse_query(struct http_exchange *x, struct list_params *p)
{
	const char *q = x->query;

	p->limit = LIMIT_DEFAULT;
	p->offset = 0;
	while (*q != '\0') {
		const char *amp = strchr(q, '&');
		size_t n = amp != NULL ? (size_t)(amp - q) : strlen(q);
		const char *eq = memchr(q, '=', n);
		size_t kn = eq != NULL ? (size_t)(eq - q) : n;
		char key[KEY_RAW_MAX + 1];
		char value[VALUE_MAX];

		if (n > 0 && kn <= KEY_RAW_MAX) {
			if (http_percent_decode(q, kn, key, sizeof(key), true) < 0) {
				http_error(x, 422, "query: malformed parameter name");
				return false;
			}
			if ((strcmp(key, "mode") == 0 || strcmp(key, "status") == 0 ||
			     strcmp(key, "limit") == 0 || strcmp(key, "offset") == 0)) {
				value[0] = '\0';
				if (eq != NULL && http_percent_decode(eq + 1, n - kn - 1, value,
				                                      sizeof(value), true) < 0) {
					http_error(x, 422, "%s: malformed or too long value", key);
					return false;
				}
				if (!take(x, p, key, value))
					return false;
			}
		}
		q += n;
		if (*q == '&')
			q++;
	}
	return true;
}

/* ---- rendering: the store's records as the API shows them ------------
 * Each helper returns false when memory ran out. A field the store reports
 * absent (0 time, "" text, NULL pointer) is JSON null. */

static bool put(json_object *o, const char *key, json_object *v)
{
	return http_json_add(o, key, true, v);
}

static bool put_null(json_object *o, const char *key)
{
	return http_json_add(o, key, false, NULL);
}

/* A string the store returns as a pointer: NULL is absent, "" is "". */
static bool put_str(json_object *o, const char *key, const char *v)
{
	return v ? put(o, key, json_object_new_string(v)) : put_null(o, key);
}

/* A fixed-size field of the store's structs: "" is absent. */
static bool put_text(json_object *o, const char *key, const char *v)
{
	return put_str(o, key, v[0] ? v : NULL);
}

static bool put_int(json_object *o, const char *key, int64_t v)
{
	return put(o, key, json_object_new_int64(v));
}

/* Durations are shown to the microsecond ("%.3f" ms), as POST /sync answers
 * them, instead of json-c's 17 significant digits of binary noise. */
static bool put_duration(json_object *o, const char *key, bool has, double v)
{
	char text[64];
	if (!has)
		return put_null(o, key);
	snprintf(text, sizeof text, "%.3f", v);
	return put(o, key, json_object_new_double_s(v, text));
}

static bool put_time(json_object *o, const char *key, int64_t ms)
{
	char t[IDS_RFC3339_LEN + 1];
	if (ms == 0)
		return put_null(o, key);
	ids_rfc3339(ms, t);
	return put(o, key, json_object_new_string(t));
}

static json_object *attempt_json(const struct store_attempt *a)
{
	json_object *o = json_object_new_object();
	bool ok = o && put_int(o, "attempt", a->number) && put_text(o, "state", a->state) &&
	          put_time(o, "started_at", a->started_at) &&
	          put_duration(o, "duration_ms", a->has_duration, a->duration_ms) &&
	          (a->http_status > 0 ? put_int(o, "http_status", a->http_status)
	                              : put_null(o, "http_status")) &&
	          put_str(o, "error", a->error_class) &&
	          put_str(o, "error_message", a->error_message) &&
	          put_time(o, "next_attempt_at", a->next_attempt_at);
	if (!ok) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* The record with its "delivery_trace" (see README); NULL when memory ran
 * out. */
json_object *requests_record_json(const struct store_request *r)
{
	bool async = strcmp(r->mode, "async") == 0;
	json_object *o = json_object_new_object();
	bool ok = o && put_text(o, "id", r->id) && put_text(o, "mode", r->mode) &&
	          put_text(o, "status", r->status) &&
	          put_text(o, "callback_status", r->callback_status) &&
	          put_int(o, "iterations", r->iterations) && put_text(o, "result", r->result) &&
	          put_duration(o, "duration_ms", r->has_duration, r->duration_ms) &&
	          put_str(o, "input_data", r->input_data) &&
	          put_str(o, "callback_url", r->callback_url) &&
	          put_time(o, "created_at", r->created_at) &&
	          put_time(o, "started_at", r->started_at) &&
	          put_time(o, "completed_at", r->completed_at) &&
	          put_time(o, "finished_at", r->finished_at);
	if (ok && async)
		ok = put_int(o, "attempts", r->attempts) &&
		     put_time(o, "next_attempt_at", r->next_attempt_at) &&
		     put_str(o, "last_error", r->last_error);
	else if (ok)
		ok = put_null(o, "attempts") && put_null(o, "next_attempt_at") &&
		     put_null(o, "last_error");
	json_object *trace = ok ? json_object_new_array() : NULL;
	ok = ok && put(o, "delivery_trace", trace);
	for (size_t i = 0; ok && i < r->n_trace; i++) {
		json_object *a = attempt_json(&r->trace[i]);
		ok = a && json_object_array_add(trace, a) == 0;
		if (!ok)
			json_object_put(a);
	}
	if (!ok) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

/* One item of the list: {"id","mode","status","callback_status",
 * "duration_ms","created_at"}. */
static json_object *item_json(const struct store_list_item *it)
{
	json_object *o = json_object_new_object();
	bool ok = o && put_text(o, "id", it->id) && put_text(o, "mode", it->mode) &&
	          put_text(o, "status", it->status) &&
	          put_text(o, "callback_status", it->callback_status) &&
	          put_duration(o, "duration_ms", it->has_duration, it->duration_ms) &&
	          put_time(o, "created_at", it->created_at);
	if (!ok) {
		json_object_put(o);
		return NULL;
	}
	return o;
}

json_object *requests_page_json(const struct store_page *p)
{
	json_object *arr = json_object_new_array_ext((int)p->n);
	for (size_t i = 0; arr && i < p->n; i++) {
		json_object *it = item_json(&p->items[i]);
		if (!it || json_object_array_add(arr, it) != 0) {
			json_object_put(it);
			json_object_put(arr);
			return NULL;
		}
	}
	return arr;
}

void requests_list(struct http_exchange *x, const char *tail)
{
	struct list_params p;
	struct list_query lq;
	struct store_page page = {0};
	enum store_err err;

	(void)tail;
	memset(&p, 0, sizeof(p));
	if (!parse_query(x, &p))
		return;
	lq.mode = p.seen_mode ? p.mode : NULL;
	lq.status = p.seen_status ? p.status : NULL;
	lq.limit = p.limit;
	lq.offset = p.offset;
	lq.owner = auth_scope(x);
	err = store_list_requests(x->store, &lq, &page);
	if (err != STORE_OK) {
		http_store_failed(x, err, "store_list_requests");
		return;
	}
	json_object *arr = requests_page_json(&page);
	store_page_clear(&page);
	if (!arr) {
		http_internal_error(x, "render list", "out of memory");
		return;
	}
	http_send_json(x, 200, arr);
	json_object_put(arr);
}

void requests_get(struct http_exchange *x, const char *tail)
{
	struct store_request r;
	enum store_err err;

	if (!ids_uuid_valid(tail)) {
		http_error(x, 404, "request_id: no such request");
		return;
	}
	err = store_get_request(x->store, tail, auth_scope(x), &r);
	if (err == STORE_NOTFOUND) {
		http_error(x, 404, "request_id: no such request");
		return;
	}
	if (err != STORE_OK) {
		http_store_failed(x, err, "store_get_request");
		return;
	}
	snprintf(x->request_id, sizeof(x->request_id), "%s", tail);
	json_object *o = requests_record_json(&r);
	store_request_clear(&r);
	if (!o) {
		http_internal_error(x, "render request", "out of memory");
		return;
	}
	http_send_json(x, 200, o);
	json_object_put(o);
}
