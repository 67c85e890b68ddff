/*
 * deliver: the delivery thread (see deliver.h).
 *
 * One turn of the loop:
 *   1. take the jobs the pool finished (inbox) and sort them: ready ones
 *      join the waiting list (acceptance order); refused, unresolvable and
 *      failed ones become attempts that end without sending, or hand-backs;
 *   2. run curl and collect the transfers that ended, deciding each one's
 *      fate with retry.c;
 *   3. dispatch: walk the waiting list in order and start what the bounds
 *      allow (global in-flight cap, per-origin cap, breaker), jobs that are
 *      not suspect before suspect ones (hosts.c: the half-open trial and
 *      the slots of an origin with failing URLs); jobs of an origin whose
 *      breaker is open are handed back, due when it closes;
 *   4. flush: one transaction writes the 'sending' rows (and results not yet
 *      stored) of the jobs about to start, the outcomes of the attempts that
 *      ended and the hand-backs; only after COMMIT are the new requests
 *      added to curl, so no callback leaves before its attempt is on disk;
 *   5. curl_multi_poll until a socket is ready, a curl timer fires, or
 *      deliver_submit/deliver_stop wakes it (curl_multi_wakeup).
 *
 * A failed flush (database busy past the store's bound) keeps every list
 * as it is and is retried after a short pause; nothing is sent meanwhile.
 * A write that finds the lease taken by another deliverer (STORE_FENCED)
 * drops the job from our hands without sending.
 */
#include "deliver.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "callback.h"
#include "hosts.h"
#include "ids.h"
#include "log.h"
#include "metrics.h"
#include "store.h"
#include "retry.h"
#include "why.h"

#define SPARE_MAX          64   /* easy handles kept for reuse */
#define POLL_MAX_MS        1000 /* longest sleep without a reason to wake */
#define DB_RETRY_MS        100  /* pause after a failed flush */
#define FINAL_FLUSH_TRIALS 5
#define GAUGES_EVERY_MS    1000 /* how often the open-breaker gauge is published */

/* Every job in the delivery thread's hands is on exactly one of these. */
enum list_id {
	LIST_NONE = 0,
	LIST_INBOX,
	LIST_WAITING,
	LIST_STARTING,
	LIST_ENDED,
	LIST_HANDBACK,
	LIST_ACTIVE
};

struct list {
	struct djob *head, *tail;
	size_t n;
	enum list_id id;
};

struct deliver {
	const struct config *cfg;
	struct store *s;
	const struct ssrf_policy *policy;
	const struct sign_key *key;
	struct shared *sh;
	CURLM *multi;
	pthread_t thread;
	bool running;

	pthread_mutex_t mu; /* guards inbox and stop */
	struct list inbox;
	bool stop;

	/* delivery thread only */
	struct hosts *hosts;
	struct list waiting;  /* ready, in acceptance order */
	struct list starting; /* dispatched, 'sending' row not yet written */
	struct list ended;    /* attempt over, outcome not yet written */
	struct list handback; /* to release without an attempt */
	int64_t inflight;     /* starting + active, between turns (asserted) */
	struct list active;   /* in curl */
	struct retry_policy rp;
	uint64_t rng;
	CURL *spare[SPARE_MAX];
	int nspare;
	int64_t db_retry_at;      /* monotonic ms */
	struct metrics *metrics;  /* the host's counters zone (GET /metrics); may be NULL */
	int64_t gauges_at;        /* monotonic ms of the next gauge report */
	int64_t flushes, flushed; /* write transactions, and the rows they wrote */
};

/* ---- lists ---------------------------------------------------------------- */

/* A job is on one list at a time (pool.c's next is its own, before the
 * job reaches the inbox); j->on says which. */
static void list_push(struct list *l, struct djob *j)
{
	assert(j->on == LIST_NONE && l->id != LIST_NONE);
	j->on = (int)l->id;
	j->next = NULL;
	j->prev = l->tail;
	if (l->tail)
		l->tail->next = j;
	else
		l->head = j;
	l->tail = j;
	l->n++;
}

static void list_remove(struct list *l, struct djob *j)
{
	assert(j->on == (int)l->id && l->n > 0);
	j->on = LIST_NONE;
	if (j->prev)
		j->prev->next = j->next;
	else
		l->head = j->next;
	if (j->next)
		j->next->prev = j->prev;
	else
		l->tail = j->prev;
	j->prev = j->next = NULL;
	l->n--;
}

/* Takes l's jobs (a list of the same id) and leaves l empty. */
static struct list list_take(struct list *l)
{
	struct list all = *l;
	*l = (struct list){.id = l->id};
	return all;
}

static struct djob *list_pop(struct list *l)
{
	struct djob *j = l->head;
	if (j)
		list_remove(l, j);
	return j;
}

/* ---- job endings ----------------------------------------------------------- */

/* The job leaves our hands (outcome written, handed back, or fenced). */
static void finish_job(struct deliver *d, struct djob *j)
{
	if (j->host)
		hosts_leave(d->hosts, j->host);
	djob_free(j);
	shared_release(d->sh, 1);
}

/* A job with an attempt before this claim (failed, or outcome unknown),
 * or one to a URL path that failed lately at its origin: hosts.c caps such
 * jobs' share of an origin's slots, and dispatch offers slots to the
 * others first. */
static bool suspect(struct deliver *d, const struct djob *j)
{
	return j->q.attempts > 0 || hosts_suspect(d->hosts, j->host, j->path);
}

static int64_t attempts_known(const struct djob *j)
{
	return j->q.attempts - j->q.unknown + 1;
}

static void decide(struct deliver *d, struct djob *j, enum retry_transport t, const char *detail,
                   int64_t retry_after_ms)
{
	struct retry_input in = {
	    .transport = t,
	    .http_status = j->http_status,
	    .retry_after_ms = retry_after_ms,
	    .detail = detail,
	    .attempts_known = attempts_known(j),
	    .attempts_total = j->number,
	};
	retry_decide(&d->rp, &in, &d->rng, &j->decision);
}

/* Applies the breaker to an ended attempt. A retry that ends while the
 * destination's breaker is open (this failure opened it, or it was in
 * flight when others did) waits at least for the cool-down and the trial
 * grace (hosts.c: the jobs that are not suspect are claimed for the trial
 * first), and last_error says so. */
static void account_host(struct deliver *d, struct djob *j, bool neutral)
{
	if (!j->host)
		return;
	int64_t now = ids_mono_ms();
	bool opened = hosts_finished(d->hosts, j->host, j->suspect, j->path,
	                             j->decision.host_failure, neutral, now);
	int64_t until;
	if (!hosts_open(d->hosts, j->host, now, &until))
		return;
	if (opened)
		log_event(L_WARN, "breaker.open", "origin=%s cooldown_ms=%lld",
		          log_q(hosts_name(j->host)), (long long)(until - now));
	if (opened)
		metrics_count(d->metrics, METRICS_BREAKER_OPENS, 1);
	retry_hold(&j->decision, until - now + hosts_trial_grace_ms(d->hosts),
	           "the destination's circuit breaker is open");
}

/* An attempt that ends before anything is sent (refused, bad URL, DNS). */
static void end_without_sending(struct deliver *d, struct djob *j, enum retry_transport t)
{
	j->number = j->q.attempts + 1;
	j->nosend = true;
	j->http_status = 0;
	j->duration_ms = 0;
	decide(d, j, t, j->why, -1);
	if (j->host) {
		j->suspect = suspect(d, j);
		hosts_started(d->hosts, j->host, j->suspect);
		account_host(d, j, t != RETRY_T_DNS);
	}
	list_push(&d->ended, j);
}

static void hand_back(struct deliver *d, struct djob *j, int64_t due_at)
{
	j->due_at = due_at;
	list_push(&d->handback, j);
}

/* ---- intake ---------------------------------------------------------------- */

/* The destination key of hosts.h: scheme, host and port of the checked
 * URL. A job whose URL did not parse (it ends without sending) is keyed by
 * its claim key alone. */
static void origin_of(const struct djob *j, const char *claim_key, char *out, size_t outlen)
{
	const struct url_parts *u = &j->target.url;
	if (!u->host[0]) {
		snprintf(out, outlen, "%s", claim_key);
		return;
	}
	bool v6 = strchr(u->host, ':') != NULL;
	snprintf(out, outlen, "%s://%s%s%s:%d", u->https ? "https" : "http", v6 ? "[" : "", u->host,
	         v6 ? "]" : "", u->port);
}

static void intake(struct deliver *d, struct djob *j)
{
	char claim_key[URL_HOST_MAX + 32], origin[URL_HOST_MAX + 32];
	store_claim_key(j->q.callback_url, claim_key, sizeof claim_key);
	origin_of(j, claim_key, origin, sizeof origin);
	j->host = hosts_get(d->hosts, origin, claim_key);
	j->path = hosts_path_key(j->q.callback_url);
	if (j->host)
		hosts_hold(d->hosts, j->host);
	if (j->prep == DJOB_ABANDONED) {
		hand_back(d, j, ids_now_ms());
		return;
	}
	if (j->prep == DJOB_CHECKED) {
		switch (j->dest) {
		case SSRF_ALLOW:
			if (j->host)
				list_push(&d->waiting, j);
			else
				hand_back(d, j, ids_now_ms() + d->rp.base_ms);
			return;
		case SSRF_DENY_ADDRESS:
			end_without_sending(d, j, RETRY_T_DENIED);
			return;
		case SSRF_DENY_URL:
			end_without_sending(d, j, RETRY_T_BAD_URL);
			return;
		case SSRF_DENY_RESOLVE:
			end_without_sending(d, j, RETRY_T_DNS);
			return;
		case SSRF_NOMEM:
			snprintf(j->why, sizeof j->why, "out of memory checking the destination");
			break;
		}
	}
	/* our side failed: back to the queue without an attempt */
	log_event(L_ERROR, "job.compute_failed", "request_id=%s error=%s", j->q.id, log_q(j->why));
	hand_back(d, j, ids_now_ms() + d->rp.base_ms);
}

static bool take_inbox(struct deliver *d)
{
	pthread_mutex_lock(&d->mu);
	struct list in = list_take(&d->inbox);
	bool stop = d->stop;
	pthread_mutex_unlock(&d->mu);
	struct djob *j;
	while ((j = list_pop(&in)) != NULL)
		intake(d, j);
	return stop;
}

/* ---- curl ------------------------------------------------------------------- */

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
	struct djob *j = arg;
	(void)ptr; /* the body is counted, never kept */
	size_t n = size * nmemb;
	if (j->resp_bytes + n > j->resp_max) {
		j->resp_cut = true;
		return 0; /* over the cap: curl aborts with CURLE_WRITE_ERROR */
	}
	j->resp_bytes += n;
	return n;
}

/* The callback of j's attempt (callback.h) into j->body and j->headers. */
static bool build_request(struct deliver *d, struct djob *j)
{
	const struct callback_result r = {
	    .request_id = j->q.id,
	    .result = j->q.result,
	    .iterations = j->q.iterations,
	    .duration_ms = j->q.duration_ms,
	    .created_at_ms = j->q.created_at,
	    .completed_at_ms = j->q.completed_at,
	};
	return callback_body(&j->body, &r) == CALLBACK_OK &&
	       callback_headers(&j->headers, j->q.id, j->number, j->started_at, d->key,
	                        j->body.data, j->body.len) == CALLBACK_OK;
}

static CURL *get_easy(struct deliver *d)
{
	if (d->nspare > 0)
		return d->spare[--d->nspare];
	return curl_easy_init();
}

static void put_easy(struct deliver *d, CURL *h)
{
	if (!h)
		return;
	if (d->nspare < SPARE_MAX) {
		curl_easy_reset(h);
		d->spare[d->nspare++] = h;
	} else {
		curl_easy_cleanup(h);
	}
}

static void drop_transfer_state(struct deliver *d, struct djob *j)
{
	put_easy(d, j->easy);
	j->easy = NULL;
	curl_slist_free_all(j->headers);
	j->headers = NULL;
	curl_slist_free_all(j->resolve);
	j->resolve = NULL;
}

/* Adds j's request to curl; false when our side failed (j's attempt is then
 * over with an internal error). */
static bool start_transfer(struct deliver *d, struct djob *j)
{
	j->resp_bytes = 0;
	j->resp_cut = false;
	j->resp_max = (size_t)d->cfg->callback_max_response_bytes;
	j->errbuf[0] = '\0';
	j->easy = get_easy(d);
	if (!j->easy || !build_request(d, j))
		goto fail;
	CURL *h = j->easy;
	if (ssrf_curl_setup(d->policy, h, &j->target, &j->resolve) != CURLE_OK)
		goto fail;
	bool ok = curl_easy_setopt(h, CURLOPT_URL, j->q.callback_url) == CURLE_OK &&
	          curl_easy_setopt(h, CURLOPT_POST, 1L) == CURLE_OK &&
	          curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)j->body.len) == CURLE_OK &&
	          curl_easy_setopt(h, CURLOPT_POSTFIELDS, j->body.data) == CURLE_OK &&
	          curl_easy_setopt(h, CURLOPT_HTTPHEADER, j->headers) == CURLE_OK &&
	          curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)d->cfg->callback_timeout_ms) ==
	              CURLE_OK &&
	          curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
	                           (long)d->cfg->callback_connect_timeout_ms) == CURLE_OK &&
	          curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
	          curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK &&
	          curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body) == CURLE_OK &&
	          curl_easy_setopt(h, CURLOPT_WRITEDATA, j) == CURLE_OK &&
	          curl_easy_setopt(h, CURLOPT_ERRORBUFFER, j->errbuf) == CURLE_OK &&
	          curl_easy_setopt(h, CURLOPT_PRIVATE, j) == CURLE_OK;
	if (!ok)
		goto fail;
	j->started_ns = ids_mono_ns();
	if (curl_multi_add_handle(d->multi, h) != CURLM_OK)
		goto fail;
	list_push(&d->active, j);
	return true;
fail:
	drop_transfer_state(d, j);
	j->http_status = 0;
	j->duration_ms = 0;
	decide(d, j, RETRY_T_INTERNAL, "could not set up the request", -1);
	account_host(d, j, true);
	d->inflight--;
	list_push(&d->ended, j);
	return false;
}

static enum retry_transport transport_of(CURLcode rc, long os_errno)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
		return os_errno == ECONNREFUSED ? RETRY_T_REFUSED : RETRY_T_CONNECT;
	case CURLE_OPERATION_TIMEDOUT:
		return RETRY_T_TIMEOUT;
	case CURLE_GOT_NOTHING:
		return RETRY_T_CLOSED;
	case CURLE_COULDNT_RESOLVE_HOST:
		return RETRY_T_DNS;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
		return RETRY_T_TLS;
	default:
		return RETRY_T_NETWORK;
	}
}

/* A transfer ended: fill in the outcome and queue it for the next flush. */
static void transfer_done(struct deliver *d, struct djob *j, CURLcode rc)
{
	CURL *h = j->easy;
	long code = 0, os_errno = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	curl_easy_getinfo(h, CURLINFO_OS_ERRNO, &os_errno);
	j->duration_ms = (double)(ids_mono_ns() - j->started_ns) / 1e6;
	j->http_status = 0;
	int64_t retry_after = -1;
	enum retry_transport t;
	char detail[CURL_ERROR_SIZE + 64];
	snprintf(detail, sizeof detail, "%s", j->errbuf[0] ? j->errbuf : curl_easy_strerror(rc));
	if (rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && j->resp_cut && code > 0)) {
		t = RETRY_T_RESPONSE;
		j->http_status = (int)code;
		if (code == 429 || code == 503) {
			struct curl_header *hdr = NULL;
			if (curl_easy_header(h, "Retry-After", 0, CURLH_HEADER, -1, &hdr) ==
			        CURLHE_OK &&
			    !retry_after_parse(hdr->value, ids_now_ms(), &retry_after))
				retry_after = -1;
		}
	} else {
		t = transport_of(rc, os_errno);
	}
	curl_multi_remove_handle(d->multi, h);
	list_remove(&d->active, j);
	d->inflight--;
	drop_transfer_state(d, j);
	decide(d, j, t, detail, retry_after);
	if (j->resp_cut && j->decision.action != STORE_DELIVERED) {
		why_append(j->decision.message, sizeof j->decision.message,
		           " (response cut at %zu bytes)", j->resp_max);
	}
	account_host(d, j, false);
	list_push(&d->ended, j);
}

static void collect(struct deliver *d)
{
	int running = 0;
	curl_multi_perform(d->multi, &running);
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(d->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		struct djob *j = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&j);
		if (j)
			transfer_done(d, j, m->data.result);
	}
}

/* ---- dispatch ------------------------------------------------------------- */

/* One sweep of the waiting list in arrival order. The first sweep hands
 * back the jobs of origins whose breaker is open (due when it closes; a
 * suspect job a trial grace later) and starts the jobs that are not
 * suspect; the second starts suspect ones. So a half-open origin's one
 * trial is a job that is not suspect when there is one, and a free slot
 * goes to such a job before a suspect one (hosts.c says why). */
static void dispatch_sweep(struct deliver *d, bool suspect_ones, int64_t now)
{
	struct djob *j = d->waiting.head;
	while (j && d->inflight < d->cfg->max_inflight_deliveries) {
		struct djob *next = j->next;
		int64_t until;
		bool s = suspect(d, j);
		if (!suspect_ones && hosts_open(d->hosts, j->host, now, &until)) {
			int64_t later = s ? hosts_trial_grace_ms(d->hosts) : 0;
			list_remove(&d->waiting, j);
			hand_back(d, j, ids_now_ms() + (until - now) + later);
		} else if (s == suspect_ones && hosts_may_start(d->hosts, j->host, s, now)) {
			list_remove(&d->waiting, j);
			j->suspect = s;
			hosts_started(d->hosts, j->host, s);
			d->inflight++;
			list_push(&d->starting, j);
		}
		j = next;
	}
}

static void dispatch(struct deliver *d)
{
	int64_t now = ids_mono_ms();
	dispatch_sweep(d, false, now);
	dispatch_sweep(d, true, now);
}

/* ---- flush ------------------------------------------------------------------ */

/* An attempt that ended: its outcome (and, for one that ended before
 * sending, its attempt row first). */
static enum store_err write_ended(struct deliver *d, struct djob *j, int64_t now)
{
	enum store_err err = STORE_OK;
	if (j->nosend) {
		err = store_attempt_begin(d->s, &j->q, !j->stored && j->q.computed, j->number, now);
		if (err != STORE_OK)
			return err;
	}
	struct store_outcome o = {
	    .number = j->number,
	    .duration_ms = j->duration_ms,
	    .http_status = j->http_status,
	    .error_class = j->decision.error_class,
	    .error_message = j->decision.action == STORE_DELIVERED ? NULL : j->decision.message,
	    .verdict = j->decision.action,
	    .next_attempt_at = j->decision.action == STORE_RETRY ? now + j->decision.delay_ms : 0,
	    .now = now,
	};
	j->due_at = o.next_attempt_at;
	return store_attempt_end(d->s, &j->q, &o);
}

/* A job about to start: its attempt's 'sending' row (and its result, when
 * not stored yet). */
static enum store_err write_start(struct deliver *d, struct djob *j, int64_t now)
{
	j->number = j->q.attempts + 1;
	j->started_at = now;
	return store_attempt_begin(d->s, &j->q, !j->stored, j->number, now);
}

/* A job to hand back without an attempt, due at j->due_at. */
static enum store_err write_handback(struct deliver *d, struct djob *j, int64_t now)
{
	(void)now;
	return store_release(d->s, &j->q, !j->stored && j->q.computed, j->due_at);
}

typedef enum store_err (*write_fn)(struct deliver *d, struct djob *j, int64_t now);

/* Runs write for every job of l and marks the fenced ones; false (logged)
 * when the database failed. */
static bool write_list(struct deliver *d, struct list *l, write_fn write, int64_t now)
{
	for (struct djob *j = l->head; j; j = j->next) {
		enum store_err err = write(d, j, now);
		j->fenced = err == STORE_FENCED;
		if (err != STORE_OK && err != STORE_FENCED) {
			log_event(L_ERROR, "deliver.write_failed", "request_id=%s error=%s",
			          j->q.id, log_q(store_errmsg(d->s)));
			return false;
		}
	}
	return true;
}

static void log_outcome(const struct djob *j)
{
	const struct retry_decision *dc = &j->decision;
	if (j->fenced) {
		log_event(L_WARN, "callback.fenced", "request_id=%s attempt=%lld", j->q.id,
		          (long long)j->number);
		return;
	}
	switch (dc->action) {
	case STORE_DELIVERED:
		log_event(L_DEBUG, "callback.delivered",
		          "request_id=%s attempt=%lld status=%d duration_ms=%.1f", j->q.id,
		          (long long)j->number, j->http_status, j->duration_ms);
		break;
	case STORE_RETRY:
		log_event(L_INFO, "callback.retrying",
		          "request_id=%s attempt=%lld status=%d error_class=%s error=%s "
		          "retry_in_ms=%lld",
		          j->q.id, (long long)j->number, j->http_status, dc->error_class,
		          log_q(dc->message), (long long)dc->delay_ms);
		break;
	case STORE_FAILED:
		log_event(L_WARN, "callback.failed",
		          "request_id=%s attempt=%lld status=%d error_class=%s error=%s", j->q.id,
		          (long long)j->number, j->http_status, dc->error_class,
		          log_q(dc->message));
		break;
	}
}

/* Counts an ended attempt whose outcome was just committed. */
static void count_outcome(struct deliver *d, const struct djob *j, int64_t now_ms)
{
	enum metrics_attempt_outcome o = METRICS_ATTEMPT_FAILED;
	if (j->fenced)
		return;
	if (j->nosend) {
		metrics_attempt(d->metrics, METRICS_ATTEMPT_REFUSED, 0, -1);
		return;
	}
	if (j->decision.action == STORE_DELIVERED) {
		o = METRICS_ATTEMPT_DELIVERED;
		metrics_observe(d->metrics, METRICS_H_E2E, (now_ms - j->q.created_at) * 1000000);
	} else if (j->decision.action == STORE_RETRY) {
		o = METRICS_ATTEMPT_RETRY;
	}
	metrics_attempt(d->metrics, o, j->http_status, (int64_t)(j->duration_ms * 1e6));
}

/* Writes the three lists in one transaction; on success applies the
 * effects (start transfers, free finished jobs). False when the database
 * refused: everything stays queued for the next try. */
static bool flush(struct deliver *d)
{
	if (!d->starting.n && !d->ended.n && !d->handback.n)
		return true;
	int64_t now = ids_now_ms();
	if (store_begin(d->s) != STORE_OK) {
		log_event(L_ERROR, "deliver.begin_failed", "error=%s", log_q(store_errmsg(d->s)));
		return false;
	}
	if (!write_list(d, &d->starting, write_start, now) ||
	    !write_list(d, &d->ended, write_ended, now) ||
	    !write_list(d, &d->handback, write_handback, now) || store_commit(d->s) != STORE_OK) {
		store_rollback(d->s);
		return false;
	}
	d->flushes++;
	d->flushed += (int64_t)(d->starting.n + d->ended.n + d->handback.n);
	int64_t wake_before = atomic_load(&d->sh->sleep_until);
	bool wake = false;
	struct djob *j;
	struct list ended = list_take(&d->ended), handback = list_take(&d->handback);
	while ((j = list_pop(&d->starting)) != NULL) {
		if (j->fenced) {
			log_outcome(j);
			hosts_unstart(d->hosts, j->host, j->suspect);
			d->inflight--;
			finish_job(d, j);
			continue;
		}
		j->stored = true;
		start_transfer(d, j); /* on failure j joins d->ended for the next flush */
	}
	while ((j = list_pop(&ended)) != NULL) {
		log_outcome(j);
		count_outcome(d, j, now);
		if (!j->fenced && j->decision.action == STORE_RETRY && j->due_at < wake_before)
			wake = true;
		finish_job(d, j);
	}
	while ((j = list_pop(&handback)) != NULL) {
		if (!j->fenced && j->due_at < wake_before)
			wake = true;
		finish_job(d, j);
	}
	if (wake)
		shared_wake(d->sh);
	return true;
}

/* ---- the thread ------------------------------------------------------------- */

static void publish_exclusions(struct deliver *d)
{
	struct store_exclude *ex = NULL;
	/* only a host that left the list can make a claim scan find more */
	if (hosts_exclusions(d->hosts, ids_mono_ms(), &ex) && shared_set_exclusions(d->sh, ex))
		shared_wake(d->sh);
}

/* The open-breaker gauge of this deliverer, at most once per second. */
static void report_gauges(struct deliver *d)
{
	int64_t now = ids_mono_ms();
	if (!d->metrics || now < d->gauges_at)
		return;
	d->gauges_at = now + GAUGES_EVERY_MS;
	metrics_deliverer_gauges(d->metrics, (int64_t)getpid(), ids_now_ms(),
	                         hosts_open_count(d->hosts, now));
}

static int poll_timeout(struct deliver *d)
{
	long t = -1;
	curl_multi_timeout(d->multi, &t);
	if (t < 0 || t > POLL_MAX_MS)
		t = POLL_MAX_MS;
	int64_t now = ids_mono_ms();
	if (d->starting.n || d->ended.n || d->handback.n) {
		int64_t left = d->db_retry_at - now;
		if (left < t)
			t = left < 0 ? 0 : (long)left;
	}
	int64_t change = hosts_next_change(d->hosts, now);
	if (change >= 0 && change - now < t)
		t = change - now < 0 ? 0 : (long)(change - now);
	return (int)t;
}

/* The last turn: write what we know, hand back everything not in flight,
 * abandon the transfers still running. */
static void final_turn(struct deliver *d)
{
	collect(d);
	struct djob *j;
	while ((j = list_pop(&d->starting)) != NULL) {
		hosts_unstart(d->hosts, j->host, j->suspect);
		d->inflight--;
		hand_back(d, j, ids_now_ms());
	}
	while ((j = list_pop(&d->waiting)) != NULL)
		hand_back(d, j, ids_now_ms());
	bool ok = false;
	for (int i = 0; i < FINAL_FLUSH_TRIALS && !ok; i++)
		ok = flush(d);
	if (!ok)
		log_event(L_ERROR, "deliver.final_flush_failed",
		          "ended=%zu handback=%zu (leases will expire)", d->ended.n, d->handback.n);
	/* After a successful flush, jobs whose set-up failed sit in ended: one
	 * more flush records them; whatever is left is freed. */
	if (ok && d->ended.n)
		flush(d);
	while ((j = list_pop(&d->ended)) != NULL)
		finish_job(d, j);
	while ((j = list_pop(&d->handback)) != NULL)
		finish_job(d, j);
	while ((j = list_pop(&d->starting)) != NULL)
		finish_job(d, j);
	/* Transfers in flight: their 'sending' rows stay for the hand-back. */
	while ((j = list_pop(&d->active)) != NULL) {
		metrics_attempt(d->metrics, METRICS_ATTEMPT_UNKNOWN, 0, -1);
		curl_multi_remove_handle(d->multi, j->easy);
		drop_transfer_state(d, j);
		d->inflight--;
		finish_job(d, j);
	}
	assert(d->inflight == 0 && !d->waiting.n && !d->starting.n && !d->active.n);
	atomic_store(&d->sh->inflight, 0);
}

static void *run(void *arg)
{
	struct deliver *d = arg;
	for (;;) {
		bool stop = take_inbox(d);
		if (stop)
			break;
		collect(d);
		if (ids_mono_ms() >= d->db_retry_at) {
			dispatch(d);
			if (!flush(d))
				d->db_retry_at = ids_mono_ms() + DB_RETRY_MS;
			else if (d->ended.n)
				flush(d); /* set-up failures of this turn's starts */
		}
		assert(d->inflight == (int64_t)(d->starting.n + d->active.n));
		atomic_store(&d->sh->inflight, (int)d->active.n);
		publish_exclusions(d);
		report_gauges(d);
		curl_multi_poll(d->multi, NULL, 0, poll_timeout(d), NULL);
	}
	final_turn(d);
	log_event(L_INFO, "deliver.stopped", "transactions=%lld rows=%lld", (long long)d->flushes,
	          (long long)d->flushed);
	metrics_deliverer_gone(d->metrics, (int64_t)getpid());
	return NULL;
}

const char *deliver_strerror(enum deliver_err err)
{
	switch (err) {
	case DELIVER_OK:
		return "ok";
	case DELIVER_NOMEM:
		return "out of memory";
	case DELIVER_SYSTEM:
		return "the delivery thread could not be set up";
	}
	return "unknown deliver error";
}

struct deliver *deliver_new(const struct config *cfg, struct store *s, const char *owner,
                            const struct ssrf_policy *policy, const struct sign_key *key,
                            struct shared *sh, enum deliver_err *err, char *why, size_t whylen)
{
	struct deliver *d = cz_calloc(1, sizeof *d);
	*err = d ? DELIVER_OK : DELIVER_NOMEM;
	why_set(why, whylen, "%s", d ? "ok" : "out of memory");
	if (!d)
		return NULL;
	d->cfg = cfg;
	d->s = s;
	d->policy = policy;
	d->key = key;
	d->sh = sh;
	d->rp = (struct retry_policy){
	    .base_ms = cfg->callback_backoff_base_ms,
	    .max_ms = cfg->callback_backoff_max_ms,
	    .max_attempts = cfg->callback_max_retries,
	};
	d->rng = (uint64_t)ids_mono_ns() | 1;
	d->inbox.id = LIST_INBOX;
	d->waiting.id = LIST_WAITING;
	d->starting.id = LIST_STARTING;
	d->ended.id = LIST_ENDED;
	d->handback.id = LIST_HANDBACK;
	d->active.id = LIST_ACTIVE;
	int rc = pthread_mutex_init(&d->mu, NULL);
	if (rc != 0) {
		*err = DELIVER_SYSTEM;
		why_set(why, whylen, "mutex: %s", strerror(rc));
		cz_free(d);
		return NULL;
	}
	d->metrics = metrics_open_beside(cfg->database_path);
	store_set_owner(s, owner);
	d->hosts = hosts_new(cfg->max_per_host, cfg->breaker_failures, cfg->breaker_cooldown_ms);
	d->multi = curl_multi_init();
	if (!d->hosts || !d->multi) {
		*err = !d->hosts ? DELIVER_NOMEM : DELIVER_SYSTEM;
		why_set(why, whylen, "%s", !d->hosts ? "out of memory" : "curl_multi_init failed");
		deliver_free(d);
		return NULL;
	}
	/* Connections are reused per host; keep enough of them warm. */
	curl_multi_setopt(d->multi, CURLMOPT_MAXCONNECTS, (long)cfg->max_inflight_deliveries);
	return d;
}

int deliver_start(struct deliver *d)
{
	int rc = pthread_create(&d->thread, NULL, run, d);
	if (rc == 0)
		d->running = true;
	return rc;
}

/* Wakes the thread only for the first job of an empty inbox: the thread
 * takes the whole inbox after its poll returns, so a job pushed behind
 * others is taken with the first, whose wake-up is still due (or came and
 * was followed by the take); one pushed after a take sees it empty. */
void deliver_submit(struct deliver *d, struct djob *j)
{
	pthread_mutex_lock(&d->mu);
	bool first = d->inbox.n == 0;
	list_push(&d->inbox, j);
	pthread_mutex_unlock(&d->mu);
	if (first)
		curl_multi_wakeup(d->multi);
}

void deliver_stop(struct deliver *d)
{
	if (!d->running)
		return;
	pthread_mutex_lock(&d->mu);
	d->stop = true;
	pthread_mutex_unlock(&d->mu);
	curl_multi_wakeup(d->multi);
	pthread_join(d->thread, NULL);
	d->running = false;
}

void deliver_free(struct deliver *d)
{
	if (!d)
		return;
	deliver_stop(d);
	struct djob *j;
	while ((j = list_pop(&d->inbox)) != NULL) {
		djob_free(j);
		shared_release(d->sh, 1);
	}
	for (int i = 0; i < d->nspare; i++)
		curl_easy_cleanup(d->spare[i]);
	if (d->multi)
		curl_multi_cleanup(d->multi);
	hosts_free(d->hosts);
	metrics_close(d->metrics);
	pthread_mutex_destroy(&d->mu);
	cz_free(d);
}
