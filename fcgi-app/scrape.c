/*
 * scrape: GET /metrics (see scrape.h).
 *
 * A scrape reads three things, none of which grows with traffic:
 *   - the counters zone (lib/metrics.c): a copy of a few hundred atomics;
 *   - store_health: the queue-depth counter row and the heartbeat rows
 *     (one per deliverer);
 *   - the oldest unfinished job, for consuma_oldest_pending_age_seconds:
 *     no index orders the unfinished jobs by age, so the zone keeps a
 *     low-water mark (the seq of the oldest unfinished job last seen) and
 *     the scrape reads forward from it by rowid. Jobs finish roughly in
 *     acceptance order, so the mark moves forward and each scrape skips
 *     only the rows that finished since the last one; a redelivered job
 *     lowers the mark. When the mark is unknown, or further than
 *     PENDING_SCAN_MAX rows behind, the oldest is found through
 *     requests_due (the unfinished jobs only, bounded by the queue size).
 *     An empty queue costs no query at all.
 * If the database fails, the zone's figures are still served, with
 * consuma_database_up 0 and without the database's gauges.
 *
 * Labels are fixed sets (reasons, outcomes, HTTP classes): a label value
 * never comes from a request.
 */
#include <stdio.h>
#include <string.h>
#include "ids.h"
#include "metrics.h"
#include "scrape.h"

#define PENDING_SCAN_MAX 100000
#define EXPOSITION_MAX   (256 * 1024)
#define CONTENT_TYPE     "text/plain; version=0.0.4"

static const char *const refusal_names[METRICS_REFUSAL__COUNT] = {
    [METRICS_REFUSED_RATE_LIMIT] = "rate_limit",
    [METRICS_REFUSED_SYNC_SATURATED] = "sync_saturated",
    [METRICS_REFUSED_QUEUE_FULL] = "queue_full",
    [METRICS_REFUSED_CLIENT_SHARE] = "client_share",
    [METRICS_REFUSED_HOST_PENDING] = "host_pending",
    [METRICS_REFUSED_BAD_REQUEST] = "bad_request",
    [METRICS_REFUSED_CALLBACK_URL] = "callback_url",
    [METRICS_REFUSED_BODY_TOO_LARGE] = "body_too_large",
};

static const char *const sync_names[METRICS_SYNC__COUNT] = {
    [METRICS_SYNC_COMPLETED] = "completed",
    [METRICS_SYNC_REFUSED] = "refused",
    [METRICS_SYNC_INVALID] = "invalid",
    [METRICS_SYNC_ERROR] = "error",
};

static const char *const attempt_names[METRICS_ATTEMPT__COUNT] = {
    [METRICS_ATTEMPT_DELIVERED] = "delivered", [METRICS_ATTEMPT_RETRY] = "retry",
    [METRICS_ATTEMPT_FAILED] = "failed",       [METRICS_ATTEMPT_UNKNOWN] = "unknown",
    [METRICS_ATTEMPT_REFUSED] = "refused",
};

static const char *const class_names[METRICS_HTTP_CLASSES] = {"none", "1xx", "2xx",
                                                              "3xx",  "4xx", "5xx"};

void scrape_count_refusal(struct app *app, enum job_refusal why)
{
	switch (why) {
	case JOB_QUEUE_FULL:
		metrics_refused(app->metrics, METRICS_REFUSED_QUEUE_FULL);
		return;
	case JOB_CLIENT_SHARE:
		metrics_refused(app->metrics, METRICS_REFUSED_CLIENT_SHARE);
		return;
	case JOB_HOST_PENDING:
		metrics_refused(app->metrics, METRICS_REFUSED_HOST_PENDING);
		return;
	case JOB_ACCEPTED:
		return;
	}
}

/* The committer counts its fsyncs and jobs per process; the zone gets
 * what they grew by. Called after every /async and at every scrape, so the
 * zone is behind by at most the requests in flight. */
static void publish_commits(struct app *app)
{
	struct store_committer_stats st;

	store_committer_stats(app->committer, &st);
	metrics_publish_total(app->metrics, METRICS_INTAKE_FSYNCS, st.fsyncs);
	metrics_publish_total(app->metrics, METRICS_INTAKE_JOBS, st.jobs);
}

void scrape_count_answer(struct http_exchange *x, bool admitted, bool overloaded)
{
	struct metrics *m = x->app->metrics;
	bool sync = x->route != NULL && strcmp(x->route, "sync") == 0;

	if (x->route != NULL && strcmp(x->route, "async") == 0)
		publish_commits(x->app);

	if (!admitted)
		metrics_refused(m, overloaded ? METRICS_REFUSED_SYNC_SATURATED
		                              : METRICS_REFUSED_RATE_LIMIT);
	else if (x->status == 413)
		metrics_refused(m, METRICS_REFUSED_BODY_TOO_LARGE);
	else if (x->status == 422 || x->status == 415)
		metrics_refused(m, METRICS_REFUSED_BAD_REQUEST);
	else if (x->status == 400)
		metrics_refused(m, x->route != NULL && strcmp(x->route, "async") == 0
		                       ? METRICS_REFUSED_CALLBACK_URL
		                       : METRICS_REFUSED_BAD_REQUEST);
	if (!sync)
		return;
	if (!admitted)
		metrics_sync(m, METRICS_SYNC_REFUSED, 0);
	else if (x->status >= 200 && x->status < 300)
		metrics_sync(m, METRICS_SYNC_COMPLETED, ids_mono_ns() - x->start_ns);
	else if (x->status >= 400 && x->status < 500)
		metrics_sync(m, METRICS_SYNC_INVALID, 0);
	else
		metrics_sync(m, METRICS_SYNC_ERROR, 0);
}

/* ---- rendering ---- */

static void family(struct buf *b, const char *name, const char *type, const char *help)
{
	buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void gauge(struct buf *b, const char *name, const char *help, double v)
{
	family(b, name, "gauge", help);
	buf_printf(b, "%s %.15g\n", name, v);
}

static void counter(struct buf *b, const char *name, const char *help, uint64_t v)
{
	family(b, name, "counter", help);
	buf_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

static void labelled(struct buf *b, const char *name, const char *help, const char *label,
                     const char *const *names, const uint64_t *v, int n)
{
	family(b, name, "counter", help);
	for (int i = 0; i < n; i++)
		buf_printf(b, "%s{%s=\"%s\"} %llu\n", name, label, names[i],
		           (unsigned long long)v[i]);
}

static void histogram(struct buf *b, const char *name, const char *help,
                      const struct metrics_snapshot *s, enum metrics_histogram h)
{
	uint64_t cum = 0;

	family(b, name, "histogram", help);
	for (int i = 0; i < METRICS_BUCKETS; i++) {
		cum += s->hist[h].bucket[i];
		buf_printf(b, "%s_bucket{le=\"%g\"} %llu\n", name, metrics_bucket_le[i],
		           (unsigned long long)cum);
	}
	cum += s->hist[h].bucket[METRICS_BUCKETS];
	buf_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
	buf_printf(b, "%s_sum %.9f\n", name, (double)s->hist[h].sum_ns / 1e9);
	buf_printf(b, "%s_count %llu\n", name, (unsigned long long)s->hist[h].count);
}

/* Seconds since the oldest unfinished job was accepted (0: none). */
static enum store_err oldest_pending_age(struct http_exchange *x, int64_t depth, int64_t now_ms,
                                         double *age_s)
{
	struct app *app = x->app;
	int64_t mark = metrics_pending_mark(app->metrics);
	int64_t seq = 0, created = 0;
	bool found = false;
	enum store_err err;

	*age_s = 0;
	if (depth <= 0)
		return STORE_OK;
	err = store_oldest_pending(x->store, mark, PENDING_SCAN_MAX, &found, &seq, &created);
	if (err != STORE_OK)
		return err;
	metrics_pending_mark_advance(app->metrics, mark, seq);
	if (found && now_ms > created)
		*age_s = (double)(now_ms - created) / 1000.0;
	return STORE_OK;
}

static void render_database(struct buf *b, const struct store_health *h, double oldest_s,
                            int64_t now_ms)
{
	gauge(b, "consuma_queue_depth", "Unfinished async jobs (queued, running or retrying).",
	      (double)h->queue_depth);
	gauge(b, "consuma_oldest_pending_age_seconds",
	      "Age of the oldest unfinished async job (0 when none).", oldest_s);
	gauge(b, "consuma_deliverers_alive",
	      "Deliverers whose heartbeat is newer than CONSUMA_HEARTBEAT_STALE_SECONDS.",
	      (double)h->deliverers_alive);
	if (h->deliverer_seen)
		gauge(b, "consuma_deliverer_heartbeat_age_seconds",
		      "Age of the newest deliverer heartbeat (absent when none ever beat).",
		      now_ms > h->deliverer_beat_ms
		          ? (double)(now_ms - h->deliverer_beat_ms) / 1000.0
		          : 0.0);
	gauge(b, "consuma_deliverer_workers", "Compute threads of the live deliverers.",
	      (double)h->workers);
	gauge(b, "consuma_deliverer_busy_workers",
	      "Compute threads of the live deliverers that are computing.",
	      (double)h->busy_workers);
	gauge(b, "consuma_deliverer_inflight_deliveries",
	      "Callbacks in flight at the live deliverers.", (double)h->inflight);
}

static void render_zone(struct buf *b, const struct metrics_snapshot *s)
{
	counter(b, "consuma_jobs_accepted_total", "POST /async answered 202 with a new job.",
	        s->counter[METRICS_JOBS_ACCEPTED]);
	counter(b, "consuma_jobs_redelivered_total",
	        "Finished async jobs put back to be delivered again.",
	        s->counter[METRICS_JOBS_REDELIVERED]);
	labelled(b, "consuma_requests_refused_total", "Requests refused early, by reason.",
	         "reason", refusal_names, s->refused, METRICS_REFUSAL__COUNT);
	labelled(b, "consuma_sync_requests_total", "POST /sync answers, by outcome.", "outcome",
	         sync_names, s->sync, METRICS_SYNC__COUNT);
	family(b, "consuma_callback_attempts_total", "counter",
	       "Callback attempts that ended, by outcome and HTTP status class.");
	for (int o = 0; o < METRICS_ATTEMPT__COUNT; o++)
		for (int c = 0; c < METRICS_HTTP_CLASSES; c++)
			buf_printf(
			    b,
			    "consuma_callback_attempts_total{outcome=\"%s\",http_class=\"%s\"} "
			    "%llu\n",
			    attempt_names[o], class_names[c],
			    (unsigned long long)s->attempts[o][c]);
	counter(b, "consuma_callback_breaker_opens_total",
	        "Times an origin's circuit breaker opened.", s->counter[METRICS_BREAKER_OPENS]);
	gauge(b, "consuma_callback_breakers_open",
	      "Origins whose circuit breaker is open at the live deliverers.",
	      (double)s->open_breakers);
	histogram(b, "consuma_callback_e2e_seconds",
	          "From acceptance (202) to the delivered callback.", s, METRICS_H_E2E);
	histogram(b, "consuma_callback_attempt_seconds", "Duration of one sent callback attempt.",
	          s, METRICS_H_ATTEMPT);
	histogram(b, "consuma_sync_duration_seconds",
	          "A completed POST /sync, from request to answer in the application.", s,
	          METRICS_H_SYNC_DURATION);
	counter(b, "consuma_intake_fsyncs_total", "WAL fdatasyncs that made 202s durable.",
	        s->counter[METRICS_INTAKE_FSYNCS]);
	counter(b, "consuma_intake_jobs_total", "Jobs made durable by those fsyncs.",
	        s->counter[METRICS_INTAKE_JOBS]);
}

void scrape_handle(struct http_exchange *x, const char *tail)
{
	struct app *app = x->app;
	struct metrics_snapshot snap;
	struct store_health h = {0};
	int64_t now_ms = ids_now_ms();
	int64_t stale_ms = app->cfg.heartbeat_stale_ms;
	double oldest_s = 0;
	enum store_err err;
	struct buf b;

	(void)tail;
	publish_commits(app);
	err = store_health(x->store, stale_ms, &h);
	if (err == STORE_OK)
		err = oldest_pending_age(x, h.queue_depth, now_ms, &oldest_s);
	metrics_read(app->metrics, now_ms, stale_ms, &snap);

	buf_init(&b, EXPOSITION_MAX);
	gauge(&b, "consuma_database_up", "1 when the database answered this scrape.",
	      err == STORE_OK ? 1 : 0);
	gauge(&b, "consuma_metrics_zone_up",
	      "1 when this process counts into the shared counters zone.",
	      app->metrics != NULL ? 1 : 0);
	if (err == STORE_OK)
		render_database(&b, &h, oldest_s, now_ms);
	render_zone(&b, &snap);
	if (b.err != BUF_OK)
		http_internal_error(x, "metrics", buf_strerror(b.err));
	else
		http_send_text(x, 200, CONTENT_TYPE, buf_str(&b), b.len);
	buf_free(&b);
}
