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

void requests_list(struct http_exchange *x, const char *tail)
{
	struct list_params p;
	struct list_query lq;
	json_object *arr = NULL;
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
	err = store_list_requests(x->store, &lq, &arr);
	if (err != STORE_OK) {
		http_store_failed(x, err, "store_list_requests");
		return;
	}
	http_send_json(x, 200, arr);
	json_object_put(arr);
}

void requests_get(struct http_exchange *x, const char *tail)
{
	json_object *o = NULL;
	enum store_err err;

	if (!ids_uuid_valid(tail)) {
		http_error(x, 404, "request_id: no such request");
		return;
	}
	err = store_get_request_owned(x->store, tail, auth_scope(x), &o);
	if (err == STORE_NOTFOUND) {
		http_error(x, 404, "request_id: no such request");
		return;
	}
	if (err != STORE_OK) {
		http_store_failed(x, err, "store_get_request");
		return;
	}
	snprintf(x->request_id, sizeof(x->request_id), "%s", tail);
	http_send_json(x, 200, o);
	json_object_put(o);
}
