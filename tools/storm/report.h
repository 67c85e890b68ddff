/*
 * report: consuma-storm's outputs, all from the same numbers, one file per
 * output: report_text.c (terminal), report_json.c (JSON and CSV),
 * report_html.c with report_svg.c (the page and its charts), report_say.c
 * (the sentences); report.c holds what they share (report_int.h).
 *
 * Terminal (stdout): a table per measured latency, the failures by cause, the
 * callback checks, a bar comparison of p50/p95/p99 (sync response vs async
 * accept vs time to callback), the timeline as a table when the run spans
 * more than a few intervals, the sweep, the thresholds and a few sentences
 * on what the numbers say.
 *
 * --json FILE, stable field names (times in milliseconds, rates per second;
 * a mode that did not run is null; a statistic of no samples is null):
 *   schema "consuma-storm/1", version, started_at (RFC 3339), ok (bool),
 *   exit_status, interrupted,
 *   settings {server_url, num_requests, concurrency, threads, mode, iterations,
 *             loop ("closed"|"open"), rate (null in closed loop), mix (null
 *             unless mixed), interval_s, sweep (the rates, or null),
 *             timeout_s, callback_host, callback_port, callback_wait_s, seed,
 *             signatures_checked, raw},
 *   machine {uname, nproc, cpu},
 *   sync, async: {sent, succeeded, failed (= sent - succeeded),
 *             refused (the failed ones answered 429 or 503: the service
 *             saying no early, which alone does not make ok false),
 *             refused_without_retry_after (of those, answered without the
 *             Retry-After header the API promises),
 *             failures {http_429, http_503, http_other, timeout, connect,
 *                       transport, bad_response, wrong_result,
 *                       by_status {"<code>": count} (the http_other ones)},
 *             duration_s, requested_rate (null in closed loop), achieved_rate
 *             (sent per second), succeeded_rate (succeeded per second),
 *             interrupted,
 *             latency_ms {count, min, p50, p95, p99, p999, max, mean}
 *               (sync: response time; async: time to the 202),
 *             async only: callback_latency_ms {same fields} (send to
 *               callback), callbacks {expected, received, missing,
 *               duplicated, out_of_order, wrong_result, bad_signature,
 *               unexpected, waited_s, span_s (the first accepted
 *               request's start to the last callback: the whole path)}}
 *   timeline_interval_s (the width of one entry: --interval, doubled for
 *             runs longer than TL_MAX_INTERVALS of them),
 *   timeline: [{t_s (start of the interval from the first request),
 *             sync, async: {sent, ok, refused, failed, p50_ms, p99_ms}
 *               (null when the mode did not run; the p's null without
 *               successes), async adds callbacks,
 *             server: {queue_depth, active_workers, inflight,
 *               oldest_pending_age_s} (null when not sampled)}]:
 *             sent counts when a request started, the outcomes and the
 *             latency when it ended, callbacks when the first arrived, so
 *             each column sums to the run's totals (failed includes
 *             refused, as above; callbacks sum to callbacks.received),
 *   sweep: null, or [{rate, sync, async: {sent, succeeded, refused, failed,
 *             achieved_rate, succeeded_rate, p50_ms, p95_ms, p99_ms},
 *             async adds callback_p50_ms, callback_p99_ms}] (the totals
 *             above are then the sum of the steps),
 *   thresholds: [{expr, ok, actual (null without samples), limit, unit}]
 * ok is false (exit_status 1) when a request failed other than by refusal,
 * a callback was missing, wrong or badly signed, or the run was interrupted;
 * otherwise exit_status is 99 when a threshold failed.
 * Latency counts succeeded requests only, from the request's start (closed
 * loop) or from when it was due (open loop).
 *
 * --csv FILE: the timeline, one row per interval, the same columns
 * flattened (sync_sent, ..., async_callbacks, queue_depth, ...).
 *
 * --html FILE: one self-contained XHTML page (no scripts, no external
 * files) with the tables, the sentences, the settings, the machine, an
 * inline SVG chart of the three latency distributions as percentile curves
 * (log latency against 0 % .. 99.9 %) and, over time, throughput by outcome
 * per mode, p50/p99 per mode, queue depth and callbacks; with --sweep,
 * latency against offered rate.
 */
#ifndef CONSUMA_STORM_REPORT_H
#define CONSUMA_STORM_REPORT_H

#include <stdbool.h>
#include <stdio.h>

#include "opts.h"
#include "result.h"
#include "threshold.h"
#include "timeline.h"

enum report_err {
	REPORT_OK = 0,
	REPORT_NOMEM,
	REPORT_IO, /* the file could not be written (see errno) */
};

/* One --sweep rate's results. */
struct report_step {
	double rate;
	struct result_mode sync;
	struct result_mode async;
};

struct report_run {
	const struct opts *o;
	struct result_mode sync; /* totals (a sweep's: the sum of its steps) */
	struct result_mode async;
	const struct timeline *tl; /* borrowed; NULL: no timeline */
	struct report_step *steps; /* --sweep: o->n_sweep of them, else NULL */
	int n_steps;               /* steps that ran */
	struct threshold_result th[OPTS_MAX_THRESHOLDS];
	int th_failed;
	char started_at[32];
	char uname[400];
	char cpu[128];
	long nproc;
	bool ok;
	int exit_status;
};

const char *report_strerror(enum report_err err);

/* Fills the machine fields of r (uname, cpu model, online processors). */
void report_machine(struct report_run *r);
/* Writes the terminal report to f; utf8 picks block characters for bars.
 * Not thread safe with other writers of f. */
void report_terminal(FILE *f, const struct report_run *r, bool utf8);
/* Write the JSON / CSV / HTML report to path (replacing it). */
enum report_err report_json(const char *path, const struct report_run *r);
enum report_err report_csv(const char *path, const struct report_run *r);
enum report_err report_html(const char *path, const struct report_run *r);

#endif
