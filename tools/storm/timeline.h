/*
 * timeline: what a storm did over time, one interval (--interval) at a time.
 *
 * Per interval and per mode: requests started (sent), and of the requests
 * that ended in it, how many succeeded, were refused (429/503) and failed
 * (every one that did not succeed, refusals included, as in the run's
 * totals), with a compact latency histogram of the successes for the
 * interval's p50 and p99; the async callbacks that arrived in it; and the
 * largest server figures sampled in it (GET /healthz). Each event lands in
 * the interval of the moment it happened, so the intervals' sums are the
 * run's totals.
 *
 * Memory is fixed at creation: TL_MAX_INTERVALS intervals, allocated zeroed
 * (pages never touched cost nothing). A run longer than that merges
 * neighbouring intervals pairwise and doubles the width, so recording never
 * allocates and never fails. Not thread safe: each worker records into its
 * own timeline and tl_merge joins them after the run.
 */
#ifndef CONSUMA_STORM_TIMELINE_H
#define CONSUMA_STORM_TIMELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TL_MAX_INTERVALS 360
#define TL_SUB_BITS      6 /* 32 buckets per power of two: within 3 % */
#define TL_SUB           (1 << TL_SUB_BITS)
#define TL_HALF          (TL_SUB / 2)
#define TL_MAX_EXP       37
#define TL_BUCKETS       (TL_SUB + TL_MAX_EXP * TL_HALF)

enum tl_mode { TL_SYNC = 0, TL_ASYNC = 1 };

enum tl_outcome { TL_OK = 0, TL_REFUSED, TL_FAILED };

/* Latency of one interval's successes, microseconds. */
struct tl_hist {
	uint64_t count;
	uint32_t buckets[TL_BUCKETS];
};

struct tl_counts {
	uint64_t sent;
	uint64_t ok;
	uint64_t refused; /* 429 or 503: part of failed */
	uint64_t failed;  /* every request that did not succeed */
	struct tl_hist latency;
};

/* A server sample; -1 where the server did not say. */
struct tl_server {
	bool sampled;
	int64_t queue_depth;    /* /healthz queue_depth */
	int64_t active_workers; /* /healthz active_workers (busy deliverer workers) */
	int64_t inflight;       /* /healthz deliverer.inflight: callbacks being posted */
	double oldest_age_s;    /* /metrics consuma_oldest_pending_age_seconds; < 0 none */
};

struct tl_interval {
	struct tl_counts mode[2]; /* TL_SYNC, TL_ASYNC */
	uint64_t callbacks;       /* first callbacks of accepted requests */
	struct tl_server server;
};

struct timeline;

/* A timeline whose interval 0 starts at t0_ns (monotonic) and lasts
 * interval_s. NULL when out of memory. Free with tl_free (NULL: no-op). */
struct timeline *tl_new(int64_t t0_ns, double interval_s);
void tl_free(struct timeline *tl);
/* An empty timeline with tl's origin and width (a worker's part). */
struct timeline *tl_new_like(const struct timeline *tl);

/* Record one event at monotonic time at_ns (before t0 counts in interval 0). */
void tl_sent(struct timeline *tl, enum tl_mode m, int64_t at_ns);
void tl_done(struct timeline *tl, enum tl_mode m, enum tl_outcome out, int64_t at_ns,
             int64_t latency_us);
void tl_callback(struct timeline *tl, int64_t at_ns);
/* Keeps the largest of each figure sampled within the interval. */
void tl_server(struct timeline *tl, int64_t at_ns, const struct tl_server *s);

/* Adds everything src recorded to dst (same t0); the coarser width wins. */
void tl_merge(struct timeline *dst, struct timeline *src);

/* Intervals that hold anything, up to the last one that does. */
size_t tl_count(const struct timeline *tl);
/* The width of one interval now (--interval, doubled per merge). */
double tl_width_s(const struct timeline *tl);
/* Interval k (k < tl_count). */
const struct tl_interval *tl_at(const struct timeline *tl, size_t k);

/* The value at percentile p (0..100) in microseconds, 0 when empty. */
uint64_t tl_hist_percentile(const struct tl_hist *h, double p);
/* A server sample with nothing in it. */
struct tl_server tl_server_none(void);

#endif
