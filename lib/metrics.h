/*
 * metrics: the counters and histograms of GET /metrics, kept as the work
 * happens by every process of a host (many consuma-fcgi processes in two
 * pools, one or more deliverers) in one shared-memory zone, so a scrape
 * sums nothing and scans nothing: it copies a few hundred words.
 *
 * The zone is a small fixed-size file (<database>.metrics, next to the rate
 * limiter's <database>.ratelimit) mapped MAP_SHARED; every figure in it is
 * a C11 atomic, added to with relaxed fetch_add. metrics.c says how the zone
 * is created, found and replaced. Losing it (deleted, or replaced because
 * its layout changed) only resets the counters, which Prometheus handles as
 * a counter reset.
 *
 * Every function accepts m == NULL and then does nothing (a process whose
 * zone could not be opened still serves; /metrics says so). The counting
 * calls are thread safe and async-signal safe (atomics only); open and
 * close are not.
 */
#ifndef CONSUMA_METRICS_H
#define CONSUMA_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Plain counters. */
enum metrics_counter {
	METRICS_JOBS_ACCEPTED = 0, /* POST /async answered 202 with a new job */
	METRICS_JOBS_REDELIVERED,  /* jobs put back by POST /requests/.../redeliver */
	METRICS_INTAKE_FSYNCS,     /* WAL fdatasyncs made to promise 202s */
	METRICS_INTAKE_JOBS,       /* jobs those fsyncs made durable */
	METRICS_BREAKER_OPENS,     /* a destination's circuit breaker opened */
	METRICS_COUNTER__COUNT
};

/* consuma_requests_refused_total{reason}: said no early. */
enum metrics_refusal {
	METRICS_REFUSED_RATE_LIMIT = 0, /* 429, per-client rate limit */
	METRICS_REFUSED_SYNC_SATURATED, /* 503, the /sync pool's estimated wait */
	METRICS_REFUSED_QUEUE_FULL,     /* 503, CONSUMA_MAX_QUEUE_SIZE */
	METRICS_REFUSED_CLIENT_SHARE,   /* 429, CONSUMA_MAX_QUEUE_SHARE */
	METRICS_REFUSED_HOST_PENDING,   /* 429, CONSUMA_MAX_PENDING_PER_HOST */
	METRICS_REFUSED_BAD_REQUEST,    /* 422, 415 (and 400 other than the callback URL) */
	METRICS_REFUSED_CALLBACK_URL,   /* 400, the callback URL refused */
	METRICS_REFUSED_BODY_TOO_LARGE, /* 413 */
	METRICS_REFUSAL__COUNT
};

/* consuma_sync_requests_total{outcome}: every POST /sync answer. */
enum metrics_sync_outcome {
	METRICS_SYNC_COMPLETED = 0, /* 200 */
	METRICS_SYNC_REFUSED,       /* 429 or 503 before the work */
	METRICS_SYNC_INVALID,       /* 4xx: the request was wrong */
	METRICS_SYNC_ERROR,         /* 5xx other than a refusal */
	METRICS_SYNC__COUNT
};

/* consuma_callback_attempts_total{outcome,http_class}. */
enum metrics_attempt_outcome {
	METRICS_ATTEMPT_DELIVERED = 0, /* 2xx */
	METRICS_ATTEMPT_RETRY,         /* failed, another attempt is scheduled */
	METRICS_ATTEMPT_FAILED,        /* failed, the job failed for good */
	METRICS_ATTEMPT_UNKNOWN,       /* abandoned in flight (shutdown): outcome unknown */
	METRICS_ATTEMPT_REFUSED,       /* ended before sending: address refused, bad URL, DNS */
	METRICS_ATTEMPT__COUNT
};

/* http_class: 0 "none" (no response), 1..5 "1xx".."5xx". */
#define METRICS_HTTP_CLASSES 6

enum metrics_histogram {
	METRICS_H_SYNC_DURATION = 0, /* a completed POST /sync, request in to answer out */
	METRICS_H_ATTEMPT,           /* one sent callback attempt */
	METRICS_H_E2E,               /* created (202) to delivered */
	METRICS_H__COUNT
};

/* Upper bounds of the histogram buckets, in seconds (+Inf is implied). */
#define METRICS_BUCKETS 20
extern const double metrics_bucket_le[METRICS_BUCKETS];

/* Deliverer processes whose own gauges (open breakers) the zone holds. */
#define METRICS_DELIVERER_SLOTS 16

struct metrics;

/* A copy of the zone, for rendering. */
struct metrics_snapshot {
	uint64_t counter[METRICS_COUNTER__COUNT];
	uint64_t refused[METRICS_REFUSAL__COUNT];
	uint64_t sync[METRICS_SYNC__COUNT];
	uint64_t attempts[METRICS_ATTEMPT__COUNT][METRICS_HTTP_CLASSES];
	struct {
		uint64_t bucket[METRICS_BUCKETS + 1]; /* not cumulative; the last is +Inf */
		uint64_t count;                       /* the sum of the buckets */
		uint64_t sum_ns;
	} hist[METRICS_H__COUNT];
	int64_t open_breakers; /* summed over deliverers that reported recently */
};

/* "<database_path>.metrics" into out. False when it does not fit. Thread
 * safe. */
bool metrics_zone_path(const char *database_path, char *out, size_t outlen);

/* Maps the zone at path, creating it, or replacing a file that is not a
 * zone of this layout, without a race when many processes start at once.
 * NULL on failure with why filled. Free with metrics_close (NULL is a
 * no-op); the file stays. Do not use across fork(). */
struct metrics *metrics_open(const char *path, char *why, size_t whylen);
void metrics_close(struct metrics *m);
/* metrics_open of metrics_zone_path(database_path); on failure logs
 * event=metrics.unavailable (the process runs on, uncounted) and returns
 * NULL. One line for a program's start-up. */
struct metrics *metrics_open_beside(const char *database_path);

void metrics_count(struct metrics *m, enum metrics_counter c, uint64_t n);
/* For a figure this process already counts itself (the store committer's
 * fsyncs and jobs): adds to counter c what total grew by since the last
 * call with c, so the zone holds the sum over processes. Thread safe; a
 * total lower than a previous one is ignored. */
void metrics_publish_total(struct metrics *m, enum metrics_counter c, uint64_t total);
void metrics_refused(struct metrics *m, enum metrics_refusal r);
/* One /sync answer; duration_ns is observed only for METRICS_SYNC_COMPLETED. */
void metrics_sync(struct metrics *m, enum metrics_sync_outcome o, int64_t duration_ns);
/* One callback attempt that ended. http_status 0: no response. duration_ns
 * < 0: nothing was sent (not observed). */
void metrics_attempt(struct metrics *m, enum metrics_attempt_outcome o, int http_status,
                     int64_t duration_ns);
void metrics_observe(struct metrics *m, enum metrics_histogram h, int64_t ns);

/* A deliverer reports its number of open circuit breakers at now_ms (epoch
 * ms); pid names its slot (taken on first report). */
void metrics_deliverer_gauges(struct metrics *m, int64_t pid, int64_t now_ms,
                              int64_t open_breakers);
/* A deliverer stopping frees its slot. */
void metrics_deliverer_gone(struct metrics *m, int64_t pid);

/* Copies the zone into *out; deliverer slots older than stale_ms at now_ms
 * are left out of the gauges. With m == NULL, *out is all zeros. */
void metrics_read(const struct metrics *m, int64_t now_ms, int64_t stale_ms,
                  struct metrics_snapshot *out);

/* The low-water mark of the oldest unfinished job's seq (0: unknown), kept
 * so the oldest-pending-age gauge reads forward from it instead of scanning
 * (see fcgi-app/scrape.c). advance moves it from old to new only if nobody
 * changed it meanwhile; lower moves it down to seq (a redelivered job). */
int64_t metrics_pending_mark(const struct metrics *m);
void metrics_pending_mark_advance(struct metrics *m, int64_t old, int64_t new_mark);
void metrics_pending_mark_lower(struct metrics *m, int64_t seq);

#endif
