/*
 * report: consuma-storm's three outputs, all from the same numbers.
 *
 * Terminal (stdout): a table per measured latency, the failures by cause, the
 * callback checks, a bar comparison of p50/p95/p99 (sync response vs async
 * accept vs time to callback) and a few sentences on what the numbers say.
 *
 * --json FILE, stable field names (times in milliseconds, rates per second;
 * a mode that did not run is null; a statistic of no samples is null):
 *   schema "consuma-storm/1", version, started_at (RFC 3339), ok (bool),
 *   exit_status, interrupted,
 *   settings {server_url, num_requests, concurrency, threads, mode, iterations,
 *             loop ("closed"|"open"), rate (null in closed loop), timeout_s,
 *             callback_host, callback_port, callback_wait_s, seed,
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
 *               unexpected, waited_s}}
 * ok is false (exit_status 1) when a request failed other than by refusal,
 * a callback was missing, wrong or badly signed, or the run was interrupted.
 * Latency counts succeeded requests only, from the request's start (closed
 * loop) or from when it was due (open loop).
 *
 * --html FILE: one self-contained XHTML page (no scripts, no external
 * files) with the tables, the sentences, the settings, the machine and an
 * inline SVG chart of the three latency distributions as percentile curves
 * (log latency against 0 % .. 99.9 %).
 */
#ifndef CONSUMA_STORM_REPORT_H
#define CONSUMA_STORM_REPORT_H

#include <stdbool.h>
#include <stdio.h>

#include "opts.h"
#include "result.h"

enum report_err {
	REPORT_OK = 0,
	REPORT_NOMEM,
	REPORT_IO, /* the file could not be written (see errno) */
};

struct report_run {
	const struct opts *o;
	struct result_mode sync;
	struct result_mode async;
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
/* Write the JSON / HTML report to path (replacing it). */
enum report_err report_json(const char *path, const struct report_run *r);
enum report_err report_html(const char *path, const struct report_run *r);

#endif
