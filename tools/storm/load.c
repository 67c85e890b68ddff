/*
 * load: the libcurl multi loop (see load.h).
 *
 * Each transfer slot owns one easy handle and two bounded buffers (request
 * and response body); a finished transfer is classified, its slot refilled
 * with the next due request, and the handle added back, so steady state
 * allocates nothing but curl's own per-transfer state.
 *
 * With --threads T, T worker threads each run this loop over their share:
 * request i belongs to thread i mod T, the connections are split as evenly,
 * and the open-loop schedule is one clock (t0) for all, so the union is
 * exactly the single-thread schedule. Each worker fills its own
 * result_mode; the calling thread supervises (stop flag, progress line) and
 * merges the parts at the end. Shared state: the atomics of struct shared,
 * and recv's mutex-guarded notes.
 *
 * Events come from epoll through curl_multi_socket_action (curl's socket
 * and timer callbacks keep the epoll set and one deadline up to date): the
 * cost of a wake-up is the sockets that are ready, not every connection, so
 * the instrument stays cheaper than the server it measures.
 */
#include "load.h"

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <strings.h>
#include <sys/epoll.h>
#include <unistd.h>

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
	uint64_t i; /* the request's index (recv and expect use it) */
	bool is_async;
	int64_t origin_ns; /* latency origin: due time (open loop) or start */
	struct buf req;
	struct buf resp;
	bool retry_after; /* the response carried Retry-After */
	char err[CURL_ERROR_SIZE];
};

struct shared {
	const struct load_config *cfg;
	int64_t t0; /* the open-loop schedule's origin, one for all workers */
	atomic_bool stop;
	atomic_uint_fast64_t started;
	atomic_uint_fast64_t done;
	atomic_uint_fast64_t failed;
	pthread_mutex_t mu; /* with cv: a worker that ends wakes the supervisor */
	pthread_cond_t cv;
	int finished;
};

struct run {
	const struct load_config *cfg;
	const struct opts *o;
	struct shared *sh;
	struct result_mode *out[2]; /* this worker's part: sync, async */
	struct timeline *tl;        /* this worker's part */
	uint64_t first;             /* this worker's requests: first, first + stride, ... */
	uint64_t stride;
	uint64_t n_mine;
	int slots; /* connections of this worker */
	enum load_err rc;
	CURLM *multi;
	struct curl_slist *headers;
	struct xfer *xfers;
	struct xfer **idle;
	int n_idle;
	int n_xfers;
	char url[2][URL_MAX]; /* /sync, /async */
	int logged;
	int64_t first_ns[2];
	int64_t last_ns[2];
	int epfd;
	int64_t timer_ns; /* when curl wants CURL_SOCKET_TIMEOUT; -1: never */
};

#define EVENTS_MAX 64

const char *load_strerror(enum load_err err)
{
	switch (err) {
	case LOAD_OK:
		return "ok";
	case LOAD_NOMEM:
		return "out of memory";
	case LOAD_CURL:
		return "libcurl could not set up a transfer";
	case LOAD_THREAD:
		return "cannot start a worker thread";
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
	struct result_mode *out = r->out[x->is_async];
	bool refused = cause == CAUSE_HTTP_429 || cause == CAUSE_HTTP_503;
	out->failed++;
	atomic_fetch_add_explicit(&r->sh->failed, 1, memory_order_relaxed);
	out->cause[cause]++;
	if (cause == CAUSE_HTTP_OTHER && status >= 0 && status < RESULT_STATUS_MAX)
		out->http_status[status]++;
	tl_done(r->tl, x->is_async ? TL_ASYNC : TL_SYNC, refused ? TL_REFUSED : TL_FAILED,
	        r->last_ns[x->is_async], 0);
	/* Refusals are the service working as designed: counted, not logged. */
	if (!refused && r->logged < LOGGED_FAILURES) {
		r->logged++;
		log_event(L_WARN, "request.failed", "mode=%s i=%llu status=%ld detail=%s",
		          x->is_async ? "async" : "sync", (unsigned long long)x->i, status,
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
	atomic_fetch_add_explicit(&r->sh->done, 1, memory_order_relaxed);
	r->last_ns[x->is_async] = now;
	if (code != CURLE_OK) {
		fail(r, x, cause_of(code), 0, x->err[0] ? x->err : curl_easy_strerror(code));
		return;
	}
	long status = 0;
	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	long want = x->is_async ? 202 : 200;
	bool ok_status = r->o->raw ? (status >= 200 && status < 300) : status == want;
	if (!ok_status) {
		enum result_cause c = status == 429   ? CAUSE_HTTP_429
		                      : status == 503 ? CAUSE_HTTP_503
		                                      : CAUSE_HTTP_OTHER;
		if (c != CAUSE_HTTP_OTHER && !x->retry_after)
			r->out[x->is_async]->refused_no_retry_after++;
		fail(r, x, c, status, buf_str(&x->resp));
		return;
	}
	if (!r->o->raw) {
		struct json_object *root = NULL;
		const char *field = x->is_async ? "request_id" : "result";
		const char *v = json_str(&x->resp, field, &root);
		enum result_cause bad = CAUSE_COUNT;
		if (!v || (x->is_async && !ids_uuid_valid(v)))
			bad = CAUSE_BAD_RESPONSE;
		else if (!x->is_async &&
		         strcmp(v, expect_result(cfg->ex, expect_pick(cfg->ex, x->i))) != 0)
			bad = CAUSE_WRONG_RESULT;
		else if (x->is_async)
			recv_note_accept(cfg->rv, x->i, v);
		json_object_put(root);
		if (bad != CAUSE_COUNT) {
			fail(r, x, bad, status, buf_str(&x->resp));
			return;
		}
	}
	struct result_mode *out = r->out[x->is_async];
	int64_t lat_us = (now - x->origin_ns) / 1000;
	out->succeeded++;
	hist_record(&out->latency, lat_us);
	tl_done(r->tl, x->is_async ? TL_ASYNC : TL_SYNC, TL_OK, now, lat_us);
}

/* curl's CURLMOPT_SOCKETFUNCTION: mirror what it wants to watch in epoll.
 * curl_multi_assign marks the sockets epoll already holds, so each change
 * is one epoll_ctl. */
static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	(void)easy;
	struct run *r = userp;
	if (what == CURL_POLL_REMOVE) {
		epoll_ctl(r->epfd, EPOLL_CTL_DEL, fd, NULL); /* gone already is fine */
		curl_multi_assign(r->multi, fd, NULL);
		return 0;
	}
	struct epoll_event ev;
	memset(&ev, 0, sizeof(ev));
	ev.data.fd = fd;
	if (what & CURL_POLL_IN)
		ev.events |= EPOLLIN;
	if (what & CURL_POLL_OUT)
		ev.events |= EPOLLOUT;
	int op = socketp ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
	if (epoll_ctl(r->epfd, op, fd, &ev) != 0) {
		/* the marks and epoll disagree (a closed and reused fd): retry */
		op = op == EPOLL_CTL_MOD ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
		epoll_ctl(r->epfd, op, fd, &ev);
	}
	curl_multi_assign(r->multi, fd, r);
	return 0;
}

/* curl's CURLMOPT_TIMERFUNCTION: one deadline, -1 for none. */
static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
	(void)multi;
	struct run *r = userp;
	r->timer_ns = timeout_ms < 0 ? -1 : ids_mono_ns() + (int64_t)timeout_ms * 1000000;
	return 0;
}

static enum load_err setup_xfer(struct run *r, struct xfer *x)
{
	buf_init(&x->req, REQ_MAX);
	buf_init(&x->resp, RESP_MAX);
	x->easy = curl_easy_init();
	if (!x->easy)
		return LOAD_CURL;
	CURLcode c = CURLE_OK;
	c |= curl_easy_setopt(x->easy, CURLOPT_URL, r->url[r->cfg->is_async && !r->cfg->mixed]);
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
	/* a storm goes straight to the server, never through an http_proxy
	 * from the environment (this also spares curl the lookups) */
	c |= curl_easy_setopt(x->easy, CURLOPT_PROXY, "");
	c |= curl_easy_setopt(x->easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
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
	if (x->is_async) {
		char cb[RECV_URL_MAX];
		recv_callback_url(r->cfg->rv, x->i, cb, sizeof(cb));
		buf_puts(b, ",\"callback_url\":");
		buf_json_string(b, cb, strlen(cb));
	}
	return buf_putc(b, '}');
}

/* Ends request x at once, unsent. */
static void end_unsent(struct run *r, struct xfer *x, enum result_cause cause, const char *why,
                       int64_t now)
{
	atomic_fetch_add_explicit(&r->sh->done, 1, memory_order_relaxed);
	r->last_ns[x->is_async] = now;
	fail(r, x, cause, 0, why);
}

/* Starts request k of this run (index first_index + k) in slot x, or ends
 * it at once when its deadline passed while it waited for a slot. Returns
 * false when x is still idle. */
static bool start(struct run *r, struct xfer *x, uint64_t k, int64_t origin_ns, int64_t now)
{
	const struct load_config *cfg = r->cfg;
	x->i = cfg->first_index + k;
	x->is_async = cfg->mixed ? load_mixed_is_async(r->o->mix, k) : cfg->is_async;
	x->origin_ns = origin_ns;
	x->err[0] = '\0';
	x->retry_after = false;
	buf_reset(&x->resp);
	atomic_fetch_add_explicit(&r->sh->started, 1, memory_order_relaxed);
	r->out[x->is_async]->sent++;
	tl_sent(r->tl, x->is_async ? TL_ASYNC : TL_SYNC, now);
	if (r->first_ns[x->is_async] == 0)
		r->first_ns[x->is_async] = now;
	int64_t timeout_ms = (int64_t)(r->o->timeout_s * 1000.0) - (now - origin_ns) / 1000000;
	if (timeout_ms <= 0) {
		end_unsent(r, x, CAUSE_TIMEOUT, "due longer than --timeout ago, never sent", now);
		return false;
	}
	if (build_body(r, x) != BUF_OK) {
		end_unsent(r, x, CAUSE_TRANSPORT, "request body too large", now);
		return false;
	}
	if (x->is_async)
		recv_note_start(cfg->rv, x->i, origin_ns);
	if (cfg->mixed)
		curl_easy_setopt(x->easy, CURLOPT_URL, r->url[x->is_async]);
	curl_easy_setopt(x->easy, CURLOPT_POSTFIELDS, buf_str(&x->req));
	curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->req.len);
	curl_easy_setopt(x->easy, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	curl_easy_setopt(x->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
	if (curl_multi_add_handle(r->multi, x->easy) != CURLM_OK) {
		end_unsent(r, x, CAUSE_TRANSPORT, "curl_multi_add_handle failed", now);
		return false;
	}
	return true;
}

static void report_progress(struct shared *sh)
{
	const struct load_config *cfg = sh->cfg;
	if (!cfg->progress)
		return;
	struct load_progress p = {
	    .label = cfg->mixed      ? "mixed"
	             : cfg->is_async ? "async"
	                             : "sync",
	    .n = cfg->o->num_requests,
	    .started = atomic_load_explicit(&sh->started, memory_order_relaxed),
	    .done = atomic_load_explicit(&sh->done, memory_order_relaxed),
	    .failed = atomic_load_explicit(&sh->failed, memory_order_relaxed),
	    .elapsed_s = (double)(ids_mono_ns() - sh->t0) / 1e9,
	};
	cfg->progress(cfg->progress_arg, &p);
}

static void make_url(struct run *r)
{
	const char *base = r->o->server_url;
	size_t l = strlen(base);
	while (l > 0 && base[l - 1] == '/')
		l--;
	for (int k = 0; k < 2; k++) {
		if (r->o->raw)
			snprintf(r->url[k], sizeof(r->url[k]), "%s", base);
		else
			snprintf(r->url[k], sizeof(r->url[k]), "%.*s/%s", (int)l, base,
			         k ? "async" : "sync");
	}
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
	if (r->epfd >= 0)
		close(r->epfd);
	curl_slist_free_all(r->headers);
	cz_free(r->xfers);
	cz_free(r->idle);
}

/* One worker: its share of the requests through its own multi handle. */
static enum load_err work_loop(struct run *pr)
{
	struct run r = *pr;
	struct shared *sh = r.sh;
	bool interrupted = false;
	r.epfd = -1;
	r.timer_ns = -1;
	make_url(&r);
	enum load_err rc = LOAD_OK;

	uint64_t slots = r.n_mine < (uint64_t)r.slots ? r.n_mine : (uint64_t)r.slots;
	r.n_xfers = (int)slots;
	r.xfers = cz_calloc(slots, sizeof(*r.xfers));
	r.idle = cz_calloc(slots, sizeof(*r.idle));
	r.multi = curl_multi_init();
	struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
	if (h)
		r.headers = h;
	h = h ? curl_slist_append(r.headers, "Accept: application/json") : NULL;
	h = h ? curl_slist_append(r.headers, "Expect:") : NULL;
	if (h && r.o->api_key) {
		char authz[sizeof "Authorization: Bearer " + OPTS_MAX_API_KEY];
		snprintf(authz, sizeof authz, "Authorization: Bearer %s", r.o->api_key);
		h = curl_slist_append(r.headers, authz);
	}
	if (!r.xfers || !r.idle || !h) {
		rc = LOAD_NOMEM;
		goto done;
	}
	r.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (!r.multi || r.epfd < 0) {
		rc = LOAD_CURL;
		goto done;
	}
	curl_multi_setopt(r.multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(r.multi, CURLMOPT_SOCKETDATA, &r);
	curl_multi_setopt(r.multi, CURLMOPT_TIMERFUNCTION, on_timer);
	curl_multi_setopt(r.multi, CURLMOPT_TIMERDATA, &r);
	curl_multi_setopt(r.multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)slots);
	curl_multi_setopt(r.multi, CURLMOPT_MAXCONNECTS, (long)slots);
	for (int k = 0; k < r.n_xfers; k++) {
		rc = setup_xfer(&r, &r.xfers[k]);
		if (rc != LOAD_OK)
			goto done;
		r.idle[r.n_idle++] = &r.xfers[k];
	}

	const uint64_t n = r.n_mine;
	const double period_ns = r.cfg->rate > 0 ? 1e9 / r.cfg->rate : 0;
	const int64_t t0 = sh->t0;
	uint64_t next = 0; /* the next of this worker's requests: r.first + next * r.stride */
	int running = 0;
	for (;;) {
		int64_t now = ids_mono_ns();
		if (atomic_load_explicit(&sh->stop, memory_order_relaxed))
			interrupted = true;
		while (!interrupted && next < n && r.n_idle > 0) {
			uint64_t i = r.first + next * r.stride;
			int64_t due = period_ns > 0 ? due_ns(t0, i, period_ns) : now;
			if (due > now)
				break;
			struct xfer *x = r.idle[r.n_idle - 1];
			if (start(&r, x, i, due, now))
				r.n_idle--;
			next++;
		}
		if (r.n_idle == r.n_xfers && (next >= n || interrupted))
			break;

		/* A transfer just added asks for an immediate timeout: run it now,
		 * not after the next wake-up, or it would start up to 1 ms late. */
		if (r.timer_ns >= 0 && r.timer_ns <= ids_mono_ns()) {
			r.timer_ns = -1;
			curl_multi_socket_action(r.multi, CURL_SOCKET_TIMEOUT, 0, &running);
		}
		now = ids_mono_ns();
		long wait_ms = 100;
		if (!interrupted && period_ns > 0 && next < n && r.n_idle > 0) {
			int64_t due = due_ns(t0, r.first + next * r.stride, period_ns);
			int64_t d = (due - now + 999999) / 1000000;
			wait_ms = d < 0 ? 0 : (d < wait_ms ? (long)d : wait_ms);
		}
		if (r.timer_ns >= 0) {
			int64_t d = (r.timer_ns - now + 999999) / 1000000;
			wait_ms = d < 0 ? 0 : (d < wait_ms ? (long)d : wait_ms);
		}
		struct epoll_event evs[EVENTS_MAX];
		int nev = epoll_wait(r.epfd, evs, EVENTS_MAX, (int)wait_ms);
		if (nev < 0 && errno != EINTR) {
			rc = LOAD_CURL;
			goto done;
		}
		for (int k = 0; k < nev; k++) {
			int flags = 0;
			if (evs[k].events & EPOLLIN)
				flags |= CURL_CSELECT_IN;
			if (evs[k].events & EPOLLOUT)
				flags |= CURL_CSELECT_OUT;
			if (evs[k].events & (EPOLLERR | EPOLLHUP))
				flags |= CURL_CSELECT_ERR;
			curl_multi_socket_action(r.multi, evs[k].data.fd, flags, &running);
		}
		if (r.timer_ns >= 0 && ids_mono_ns() >= r.timer_ns) {
			r.timer_ns = -1; /* the action may set a new one */
			curl_multi_socket_action(r.multi, CURL_SOCKET_TIMEOUT, 0, &running);
		}
		for (;;) {
			int left = 0;
			CURLMsg *m = curl_multi_info_read(r.multi, &left);
			if (!m)
				break;
			if (m->msg != CURLMSG_DONE)
				continue;
			struct xfer *x = NULL;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
			CURLcode code = m->data.result;
			curl_multi_remove_handle(r.multi, x->easy);
			finish(&r, x, code, ids_mono_ns());
			r.idle[r.n_idle++] = x;
		}
	}
done:
	teardown(&r);
	for (int k = 0; k < 2; k++) {
		pr->first_ns[k] = r.first_ns[k];
		pr->last_ns[k] = r.last_ns[k];
		r.out[k]->interrupted |= interrupted;
	}
	return rc;
}

static void *worker_main(void *arg)
{
	struct run *r = arg;
	r->rc = work_loop(r);
	pthread_mutex_lock(&r->sh->mu);
	r->sh->finished++;
	pthread_cond_signal(&r->sh->cv);
	pthread_mutex_unlock(&r->sh->mu);
	return NULL;
}

bool load_mixed_is_async(double mix, uint64_t i)
{
	return floor((double)(i + 1) * mix) > floor((double)i * mix);
}

/* The modes a run sends: bit 0 sync, bit 1 async. */
static int modes_of(const struct load_config *cfg)
{
	return cfg->mixed ? 3 : cfg->is_async ? 2 : 1;
}

enum load_err load_run(const struct load_config *cfg, struct result_mode *sync,
                       struct result_mode *async)
{
	const struct opts *o = cfg->o;
	struct result_mode *outs[2] = {sync, async};
	const int modes = modes_of(cfg);
	uint64_t t = (uint64_t)o->threads;
	if (t > (uint64_t)o->concurrency)
		t = (uint64_t)o->concurrency;
	if (t > o->num_requests)
		t = o->num_requests;
	if (t < 1)
		t = 1;
	const int threads = (int)t;

	enum load_err rc = LOAD_OK;
	struct shared sh;
	memset(&sh, 0, sizeof(sh));
	sh.cfg = cfg;
	atomic_init(&sh.stop, false);
	atomic_init(&sh.started, 0);
	atomic_init(&sh.done, 0);
	atomic_init(&sh.failed, 0);
	bool mu_ready = false, cv_ready = false;
	int started = 0;
	struct run *runs = cz_calloc((size_t)threads, sizeof(*runs));
	struct result_mode *parts = cz_calloc((size_t)threads * 2, sizeof(*parts));
	pthread_t *tids = cz_calloc((size_t)threads, sizeof(*tids));
	bool *live = cz_calloc((size_t)threads, sizeof(*live));
	if (!runs || !parts || !tids || !live) {
		rc = LOAD_NOMEM;
		goto done;
	}
	for (int k = 0; k < threads; k++) {
		runs[k].tl = tl_new_like(cfg->tl);
		if (!runs[k].tl) {
			rc = LOAD_NOMEM;
			goto done;
		}
	}
	if (pthread_mutex_init(&sh.mu, NULL) != 0) {
		rc = LOAD_THREAD;
		goto done;
	}
	mu_ready = true;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	cv_ready = pthread_cond_init(&sh.cv, &ca) == 0;
	pthread_condattr_destroy(&ca);
	if (!cv_ready) {
		rc = LOAD_THREAD;
		goto done;
	}

	sh.t0 = ids_mono_ns();
	for (int k = 0; k < threads; k++) {
		struct run *r = &runs[k];
		r->cfg = cfg;
		r->o = o;
		r->sh = &sh;
		r->out[0] = &parts[2 * k];
		r->out[1] = &parts[2 * k + 1];
		hist_init(&parts[2 * k].latency);
		hist_init(&parts[2 * k + 1].latency);
		r->first = (uint64_t)k;
		r->stride = (uint64_t)threads;
		r->n_mine = (o->num_requests - (uint64_t)k + t - 1) / t;
		r->slots = o->concurrency / threads + (k < o->concurrency % threads ? 1 : 0);
		if (pthread_create(&tids[k], NULL, worker_main, r) != 0) {
			rc = LOAD_THREAD;
			atomic_store(&sh.stop, true);
			break;
		}
		live[k] = true;
		started++;
	}

	/* Supervise: pass a signal on, keep the progress line fresh. */
	for (;;) {
		if (*cfg->stop)
			atomic_store(&sh.stop, true);
		report_progress(&sh);
		int64_t until = ids_mono_ns() + PROGRESS_EVERY_NS;
		struct timespec ts = {.tv_sec = (time_t)(until / 1000000000),
		                      .tv_nsec = (long)(until % 1000000000)};
		pthread_mutex_lock(&sh.mu);
		if (sh.finished < started)
			pthread_cond_timedwait(&sh.cv, &sh.mu, &ts);
		bool all = sh.finished >= started;
		pthread_mutex_unlock(&sh.mu);
		if (all)
			break;
	}
	report_progress(&sh);

	for (int m = 0; m < 2; m++) {
		if (!(modes & (1 << m)))
			continue;
		struct result_mode *out = outs[m];
		out->ran = true;
		out->is_async = m == 1;
		out->requested_rate =
		    cfg->rate > 0 ? (cfg->mixed ? (m ? o->mix : 1 - o->mix) : 1) * cfg->rate : 0;
	}
	int64_t first[2] = {0, 0}, last[2] = {0, 0};
	for (int k = 0; k < threads; k++) {
		if (!live[k])
			continue;
		pthread_join(tids[k], NULL);
		if (runs[k].rc != LOAD_OK && rc == LOAD_OK)
			rc = runs[k].rc;
		tl_merge(cfg->tl, runs[k].tl);
		for (int m = 0; m < 2; m++) {
			if (!(modes & (1 << m)))
				continue;
			result_merge(outs[m], &parts[2 * k + m]);
			if (runs[k].first_ns[m] &&
			    (first[m] == 0 || runs[k].first_ns[m] < first[m]))
				first[m] = runs[k].first_ns[m];
			if (runs[k].last_ns[m] > last[m])
				last[m] = runs[k].last_ns[m];
		}
	}
	for (int m = 0; m < 2; m++) {
		if (!(modes & (1 << m)))
			continue;
		struct result_mode *out = outs[m];
		/* a --sweep adds its steps: durations add up, rates are recomputed */
		if (first[m] && last[m] > first[m])
			out->duration_s += (double)(last[m] - first[m]) / 1e9;
		if (out->duration_s > 0) {
			out->achieved_rate = (double)out->sent / out->duration_s;
			out->succeeded_rate = (double)out->succeeded / out->duration_s;
		}
	}
done:
	if (cv_ready)
		pthread_cond_destroy(&sh.cv);
	if (mu_ready)
		pthread_mutex_destroy(&sh.mu);
	for (int k = 0; runs && k < threads; k++)
		tl_free(runs[k].tl);
	cz_free(runs);
	cz_free(parts);
	cz_free(tids);
	cz_free(live);
	return rc;
}
