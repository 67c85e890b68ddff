/*
 * load: the libcurl multi loop (see load.h).
 *
 * Each transfer slot owns one easy handle and two bounded buffers (request
 * and response body); a finished transfer is classified, its slot refilled
 * with the next due request, and the handle added back, so steady state
 * allocates nothing but curl's own per-transfer state.
 */
#include "load.h"

#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>

#include "alloc.h"
#include "buf.h"
#include "ids.h"
#include "log.h"

#define RESP_MAX          (64 * 1024)
#define REQ_MAX           (16 * 1024)
#define URL_MAX           2048
#define LOGGED_FAILURES   5
#define PROGRESS_EVERY_NS 200000000LL

struct xfer {
	CURL *easy;
	uint64_t i;
	int64_t origin_ns; /* latency origin: due time (open loop) or start */
	struct buf req;
	struct buf resp;
	bool retry_after; /* the response carried Retry-After */
	char err[CURL_ERROR_SIZE];
};

struct run {
	const struct load_config *cfg;
	const struct opts *o;
	struct result_mode *out;
	CURLM *multi;
	struct curl_slist *headers;
	struct xfer *xfers;
	struct xfer **idle;
	int n_idle;
	int n_xfers;
	char url[URL_MAX];
	uint64_t started;
	uint64_t done;
	int logged;
	int64_t first_ns;
	int64_t last_ns;
};

const char *load_strerror(enum load_err err)
{
	switch (err) {
	case LOAD_OK:
		return "ok";
	case LOAD_NOMEM:
		return "out of memory";
	case LOAD_CURL:
		return "libcurl could not set up a transfer";
	}
	return "unknown error";
}

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct xfer *x = userdata;
	size_t n = size * nmemb;
	if (buf_append(&x->resp, ptr, n) != BUF_OK)
		return 0; /* too big: CURLE_WRITE_ERROR */
	return n;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct xfer *x = userdata;
	size_t n = size * nmemb;
	if (n >= 12 && strncasecmp(ptr, "retry-after:", 12) == 0)
		x->retry_after = true;
	return n;
}

static void fail(struct run *r, struct xfer *x, enum result_cause cause, long status,
                 const char *detail)
{
	r->out->failed++;
	r->out->cause[cause]++;
	if (cause == CAUSE_HTTP_OTHER && status >= 0 && status < RESULT_STATUS_MAX)
		r->out->http_status[status]++;
	/* Refusals are the service working as designed: counted, not logged. */
	if (cause != CAUSE_HTTP_429 && cause != CAUSE_HTTP_503 && r->logged < LOGGED_FAILURES) {
		r->logged++;
		log_event(L_WARN, "request.failed", "mode=%s i=%llu status=%ld detail=%s",
		          r->cfg->is_async ? "async" : "sync", (unsigned long long)x->i, status,
		          log_q(detail));
	}
}

static enum result_cause cause_of(CURLcode code)
{
	switch (code) {
	case CURLE_OPERATION_TIMEDOUT:
		return CAUSE_TIMEOUT;
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
		return CAUSE_CONNECT;
	case CURLE_WRITE_ERROR:
		return CAUSE_BAD_RESPONSE;
	default:
		return CAUSE_TRANSPORT;
	}
}

/* The string member `name` of the JSON object in body, or NULL. The result
 * points into *root; release with json_object_put(*root). */
static const char *json_str(const struct buf *body, const char *name, struct json_object **root)
{
	*root = NULL;
	struct json_tokener *tok = json_tokener_new();
	if (!tok)
		return NULL;
	struct json_object *j = json_tokener_parse_ex(tok, buf_str(body), (int)body->len);
	bool whole = j && json_tokener_get_error(tok) == json_tokener_success;
	json_tokener_free(tok);
	if (!whole) {
		json_object_put(j);
		return NULL;
	}
	*root = j;
	struct json_object *v = NULL;
	if (!json_object_is_type(j, json_type_object) || !json_object_object_get_ex(j, name, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static void finish(struct run *r, struct xfer *x, CURLcode code, int64_t now)
{
	const struct load_config *cfg = r->cfg;
	r->done++;
	r->last_ns = now;
	if (code != CURLE_OK) {
		fail(r, x, cause_of(code), 0, x->err[0] ? x->err : curl_easy_strerror(code));
		return;
	}
	long status = 0;
	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	long want = cfg->is_async ? 202 : 200;
	bool ok_status = r->o->raw ? (status >= 200 && status < 300) : status == want;
	if (!ok_status) {
		enum result_cause c = status == 429   ? CAUSE_HTTP_429
		                      : status == 503 ? CAUSE_HTTP_503
		                                      : CAUSE_HTTP_OTHER;
		if (c != CAUSE_HTTP_OTHER && !x->retry_after)
			r->out->refused_no_retry_after++;
		fail(r, x, c, status, buf_str(&x->resp));
		return;
	}
	if (!r->o->raw) {
		struct json_object *root = NULL;
		const char *field = cfg->is_async ? "request_id" : "result";
		const char *v = json_str(&x->resp, field, &root);
		enum result_cause bad = CAUSE_COUNT;
		if (!v || (cfg->is_async && !ids_uuid_valid(v)))
			bad = CAUSE_BAD_RESPONSE;
		else if (!cfg->is_async &&
		         strcmp(v, expect_result(cfg->ex, expect_pick(cfg->ex, x->i))) != 0)
			bad = CAUSE_WRONG_RESULT;
		else if (cfg->is_async)
			recv_note_accept(cfg->rv, x->i, v);
		json_object_put(root);
		if (bad != CAUSE_COUNT) {
			fail(r, x, bad, status, buf_str(&x->resp));
			return;
		}
	}
	r->out->succeeded++;
	hist_record(&r->out->latency, (now - x->origin_ns) / 1000);
}

static enum load_err setup_xfer(struct run *r, struct xfer *x)
{
	buf_init(&x->req, REQ_MAX);
	buf_init(&x->resp, RESP_MAX);
	x->easy = curl_easy_init();
	if (!x->easy)
		return LOAD_CURL;
	CURLcode c = CURLE_OK;
	c |= curl_easy_setopt(x->easy, CURLOPT_URL, r->url);
	c |= curl_easy_setopt(x->easy, CURLOPT_POST, 1L);
	c |= curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, r->headers);
	c |= curl_easy_setopt(x->easy, CURLOPT_WRITEFUNCTION, on_data);
	c |= curl_easy_setopt(x->easy, CURLOPT_WRITEDATA, x);
	c |= curl_easy_setopt(x->easy, CURLOPT_HEADERFUNCTION, on_header);
	c |= curl_easy_setopt(x->easy, CURLOPT_HEADERDATA, x);
	c |= curl_easy_setopt(x->easy, CURLOPT_PRIVATE, x);
	c |= curl_easy_setopt(x->easy, CURLOPT_ERRORBUFFER, x->err);
	c |= curl_easy_setopt(x->easy, CURLOPT_NOSIGNAL, 1L);
	c |= curl_easy_setopt(x->easy, CURLOPT_FOLLOWLOCATION, 0L);
	c |= curl_easy_setopt(x->easy, CURLOPT_TCP_NODELAY, 1L);
	c |= curl_easy_setopt(x->easy, CURLOPT_USERAGENT, "consuma-storm/" CONSUMA_VERSION);
	return c == CURLE_OK ? LOAD_OK : LOAD_CURL;
}

static enum buf_err build_body(struct run *r, struct xfer *x)
{
	const struct expect *ex = r->cfg->ex;
	struct buf *b = &x->req;
	buf_reset(b);
	const char *in = expect_input(ex, expect_pick(ex, x->i));
	buf_puts(b, "{\"input_data\":");
	buf_json_string(b, in, strlen(in));
	buf_printf(b, ",\"iterations\":%lld", (long long)r->o->iterations);
	if (r->cfg->is_async) {
		char cb[RECV_URL_MAX];
		recv_callback_url(r->cfg->rv, x->i, cb, sizeof(cb));
		buf_puts(b, ",\"callback_url\":");
		buf_json_string(b, cb, strlen(cb));
	}
	return buf_putc(b, '}');
}

/* Starts request i in slot x, or ends it at once when its deadline passed
 * while it waited for a slot. Returns false when x is still idle. */
static bool start(struct run *r, struct xfer *x, uint64_t i, int64_t origin_ns, int64_t now)
{
	x->i = i;
	x->origin_ns = origin_ns;
	x->err[0] = '\0';
	x->retry_after = false;
	buf_reset(&x->resp);
	r->started++;
	r->out->sent++;
	if (r->first_ns == 0)
		r->first_ns = now;
	int64_t timeout_ms = (int64_t)(r->o->timeout_s * 1000.0) - (now - origin_ns) / 1000000;
	if (timeout_ms <= 0) {
		r->done++;
		r->last_ns = now;
		fail(r, x, CAUSE_TIMEOUT, 0, "due longer than --timeout ago, never sent");
		return false;
	}
	if (build_body(r, x) != BUF_OK) {
		r->done++;
		r->last_ns = now;
		fail(r, x, CAUSE_TRANSPORT, 0, "request body too large");
		return false;
	}
	if (r->cfg->is_async)
		recv_note_start(r->cfg->rv, i, origin_ns);
	curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, buf_str(&x->req));
	curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->req.len);
	curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(x->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
	if (curl_multi_add_handle(r->multi, x->easy) != CURLM_OK) {
		r->done++;
		r->last_ns = now;
		fail(r, x, CAUSE_TRANSPORT, 0, "curl_multi_add_handle failed");
		return false;
	}
	return true;
}

static void report_progress(struct run *r, int64_t t0)
{
	if (!r->cfg->progress)
		return;
	struct load_progress p = {
	    .is_async = r->cfg->is_async,
	    .n = r->o->num_requests,
	    .started = r->started,
	    .done = r->done,
	    .failed = r->out->failed,
	    .elapsed_s = (double)(ids_mono_ns() - t0) / 1e9,
	};
	r->cfg->progress(r->cfg->progress_arg, &p);
}

static void make_url(struct run *r)
{
	const char *base = r->o->server_url;
	size_t l = strlen(base);
	while (l > 0 && base[l - 1] == '/')
		l--;
	if (r->o->raw)
		snprintf(r->url, sizeof(r->url), "%s", base);
	else
		snprintf(r->url, sizeof(r->url), "%.*s/%s", (int)l, base,
		         r->cfg->is_async ? "async" : "sync");
}

/* When request i is due in open loop; clamped so that absurd schedules
 * (--rate 0.001 with millions of requests) cannot overflow. */
static int64_t due_ns(int64_t t0, uint64_t i, double period_ns)
{
	double d = (double)t0 + (double)i * period_ns;
	return d < (double)(INT64_MAX / 2) ? (int64_t)d : INT64_MAX / 2;
}

static void teardown(struct run *r)
{
	for (int k = 0; k < r->n_xfers; k++) {
		struct xfer *x = &r->xfers[k];
		if (x->easy) {
			if (r->multi)
				curl_multi_remove_handle(r->multi, x->easy);
			curl_easy_cleanup(x->easy);
		}
		buf_free(&x->req);
		buf_free(&x->resp);
	}
	if (r->multi)
		curl_multi_cleanup(r->multi);
	curl_slist_free_all(r->headers);
	cz_free(r->xfers);
	cz_free(r->idle);
}

enum load_err load_run(const struct load_config *cfg, struct result_mode *out)
{
	const struct opts *o = cfg->o;
	struct run r;
	memset(&r, 0, sizeof(r));
	r.cfg = cfg;
	r.o = o;
	r.out = out;
	out->ran = true;
	out->is_async = cfg->is_async;
	out->requested_rate = o->rate;
	make_url(&r);
	enum load_err rc = LOAD_OK;

	uint64_t slots =
	    o->num_requests < (uint64_t)o->concurrency ? o->num_requests : (uint64_t)o->concurrency;
	r.n_xfers = (int)slots;
	r.xfers = cz_calloc(slots, sizeof(*r.xfers));
	r.idle = cz_calloc(slots, sizeof(*r.idle));
	r.multi = curl_multi_init();
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	if (h)
		r.headers = h;
	h = h ? curl_slist_append(r.headers, "Accept: application/json") : NULL;
	h = h ? curl_slist_append(r.headers, "Expect:") : NULL;
	if (!r.xfers || !r.idle || !h) {
		rc = LOAD_NOMEM;
		goto done;
	}
	if (!r.multi) {
		rc = LOAD_CURL;
		goto done;
	}
	curl_multi_setopt(r.multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)slots);
	curl_multi_setopt(r.multi, CURLMOPT_MAXCONNECTS, (long)slots);
	for (int k = 0; k < r.n_xfers; k++) {
		rc = setup_xfer(&r, &r.xfers[k]);
		if (rc != LOAD_OK)
			goto done;
		r.idle[r.n_idle++] = &r.xfers[k];
	}

	const uint64_t n = o->num_requests;
	const double period_ns = o->rate > 0 ? 1e9 / o->rate : 0;
	const int64_t t0 = ids_mono_ns();
	int64_t next_progress = t0 + PROGRESS_EVERY_NS;
	uint64_t next = 0;
	int running = 0;
	for (;;) {
		int64_t now = ids_mono_ns();
		if (*cfg->stop)
			out->interrupted = true;
		while (!out->interrupted && next < n && r.n_idle > 0) {
			int64_t due = period_ns > 0 ? due_ns(t0, next, period_ns) : now;
			if (due > now)
				break;
			struct xfer *x = r.idle[r.n_idle - 1];
			if (start(&r, x, next, due, now))
				r.n_idle--;
			next++;
		}
		if (r.n_idle == r.n_xfers && (next >= n || out->interrupted))
			break;

		long wait_ms = 100;
		if (!out->interrupted && period_ns > 0 && next < n && r.n_idle > 0) {
			int64_t due = due_ns(t0, next, period_ns);
			int64_t d = (due - now + 999999) / 1000000;
			wait_ms = d < 0 ? 0 : (d < 100 ? (long)d : 100);
		}
		if (curl_multi_poll(r.multi, NULL, 0, (int)wait_ms, NULL) != CURLM_OK) {
			rc = LOAD_CURL;
			goto done;
		}
		curl_multi_perform(r.multi, &running);
		CURLMsg *m;
		int left = 0;
		while ((m = curl_multi_info_read(r.multi, &left)) != NULL) {
			if (m->msg != CURLMSG_DONE)
				continue;
			struct xfer *x = NULL;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
			CURLcode code = m->data.result;
			curl_multi_remove_handle(r.multi, x->easy);
			finish(&r, x, code, ids_mono_ns());
			r.idle[r.n_idle++] = x;
		}
		now = ids_mono_ns();
		if (now >= next_progress) {
			report_progress(&r, t0);
			next_progress = now + PROGRESS_EVERY_NS;
		}
	}
	report_progress(&r, t0);
	if (r.first_ns && r.last_ns > r.first_ns)
		out->duration_s = (double)(r.last_ns - r.first_ns) / 1e9;
	if (out->duration_s > 0) {
		out->achieved_rate = (double)out->sent / out->duration_s;
		out->succeeded_rate = (double)out->succeeded / out->duration_s;
	}
done:
	teardown(&r);
	return rc;
}
