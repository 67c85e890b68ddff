/*
 * threshold: pass/fail criteria on a storm's totals (--threshold, k6's
 * idea). A failed threshold makes consuma-storm exit 99.
 *
 * Grammar (no spaces needed; spaces around the operator are allowed):
 *   EXPR    = SERIES "." STAT OP NUMBER UNIT | MODE "." RATE OP NUMBER ["%"]
 *   SERIES  = "sync_response" | "async_accept" | "time_to_callback"
 *   STAT    = "p" PCT | "min" | "max" | "mean"   PCT: 50, 99, 99.9, or 999
 *                                                 for 99.9 (as the JSON's p999)
 *   UNIT    = "us" | "ms" | "s"
 *   MODE    = "sync" | "async"
 *   RATE    = "failed_rate" | "refused_rate"     a fraction of the requests
 *                                                 sent (failed, as in the
 *                                                 JSON, includes refusals)
 *   OP      = "<" | "<=" | ">" | ">="
 * e.g. async_accept.p99<50ms, time_to_callback.p99<2s, sync.failed_rate<0.01.
 * A latency statistic of no samples fails its threshold.
 */
#ifndef CONSUMA_STORM_THRESHOLD_H
#define CONSUMA_STORM_THRESHOLD_H

#include <stdbool.h>
#include <stddef.h>

#include "result.h"

#define THRESHOLD_TEXT_MAX 96

enum threshold_series {
	TH_SYNC_RESPONSE = 0,
	TH_ASYNC_ACCEPT,
	TH_TIME_TO_CALLBACK,
	TH_SYNC_RATE,
	TH_ASYNC_RATE,
};

enum threshold_stat { TH_PCT = 0, TH_MIN, TH_MAX, TH_MEAN, TH_FAILED_RATE, TH_REFUSED_RATE };

enum threshold_op { TH_LT = 0, TH_LE, TH_GT, TH_GE };

struct threshold {
	char text[THRESHOLD_TEXT_MAX]; /* as given */
	enum threshold_series series;
	enum threshold_stat stat;
	double pct; /* TH_PCT: 0 < pct < 100 */
	enum threshold_op op;
	double limit; /* milliseconds, or a fraction for the rates */
};

/* What an evaluation found. */
struct threshold_result {
	bool ok;
	bool have;     /* the statistic had samples */
	double actual; /* milliseconds or a fraction; valid when have */
};

/* Parses s into t. False when it does not parse; then why holds a short
 * reason (no option name). */
bool threshold_parse(const char *s, struct threshold *t, char *why, size_t whylen);
/* True when t needs the async half of a run (else the sync half). */
bool threshold_needs_async(const struct threshold *t);
/* Evaluates t against a run's sync and async totals (either may not have
 * run: then the threshold fails for want of samples). */
struct threshold_result threshold_eval(const struct threshold *t, const struct result_mode *sync,
                                       const struct result_mode *async);
/* "ms" for latency thresholds, "" for rates. */
const char *threshold_unit(const struct threshold *t);

#endif
