/*
 * ratelimit: the per-client sliding-window rate limiter shared by every
 * consuma-fcgi process of a host. (The client address it is keyed by is
 * lib/clientaddr's; the rest of admission control is fcgi-app/limits.c.)
 *
 * The limiter admits at most `limit` requests per key in any `window_ms`
 * (a true sliding log: exact, no two-bucket approximation). Its state is a
 * fixed-size file mapped MAP_SHARED (like nginx's limit_req zone); every
 * process that opens the same path with the same parameters shares it. See
 * ratelimit.c for the layout, the locking and the crash repair.
 *
 * Memory is bounded by the parameters alone: the zone holds `entries` slots
 * of 80 + 8 * limit bytes (a ring of the last `limit` admission times per
 * key); ratelimit_open refuses parameters whose zone would pass
 * RATELIMIT_ZONE_MAX_BYTES. When every slot a key may use is taken, the
 * stalest one (least recently seen) is evicted.
 *
 * Times are milliseconds of one clock that every process shares
 * (CLOCK_MONOTONIC: ratelimit_now_ms); the zone remembers the boot it was
 * made in and is re-created after a reboot.
 */
#ifndef CONSUMA_RATELIMIT_H
#define CONSUMA_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RATELIMIT_KEY_MAX         64 /* bytes of a key, NUL included */
#define RATELIMIT_ZONE_MAX_BYTES  ((int64_t)256 * 1024 * 1024)
#define RATELIMIT_LOCK_TIMEOUT_MS 200 /* a stopped lock holder cannot stall requests longer */

struct ratelimit;

enum ratelimit_err {
	RATELIMIT_OK = 0,
	RATELIMIT_INVALID, /* parameters out of range, or an empty or too long key */
	RATELIMIT_TOOBIG,  /* the zone would pass RATELIMIT_ZONE_MAX_BYTES */
	RATELIMIT_IO,      /* creating or mapping the zone failed (why says what) */
	RATELIMIT_NOMEM,
	RATELIMIT_BUSY,    /* the zone lock was not taken within RATELIMIT_LOCK_TIMEOUT_MS */
	RATELIMIT_BROKEN,  /* the zone lock is unrecoverable: close and open again */
	RATELIMIT_CORRUPT, /* ratelimit_verify found an inconsistency (why says which) */
};

const char *ratelimit_strerror(enum ratelimit_err err);

struct ratelimit_params {
	int64_t limit;     /* requests admitted per window and key, 1..100000 */
	int64_t window_ms; /* 1..86400000 */
	int64_t entries;   /* keys tracked before eviction, 1..1048576 */
};

/* The zone's file size for p (header, tags and slots), or -1 when p is out
 * of range. Thread safe. */
int64_t ratelimit_zone_bytes(const struct ratelimit_params *p);

/* Maps the zone at path, creating it (or re-creating it when its magic,
 * version, parameters, size or boot differ) without a race when many
 * processes start at once. NULL on failure with *err set and why filled.
 * Free with ratelimit_close (NULL is a no-op); the zone file stays. One
 * struct per process and thread: not thread safe, but any number of
 * processes may use one zone at once. Do not use it across fork(). */
struct ratelimit *ratelimit_open(const char *path, const struct ratelimit_params *p,
                                 enum ratelimit_err *err, char *why, size_t whylen);
void ratelimit_close(struct ratelimit *rl);

/* The shared clock for ratelimit_hit (CLOCK_MONOTONIC milliseconds). */
int64_t ratelimit_now_ms(void);

/* Counts one request of key (a NUL-terminated string of 1..63 bytes) at
 * now_ms. On RATELIMIT_OK *allowed says whether it passes; when it does not,
 * *retry_after_ms is exactly how long until one more would pass (1..window),
 * and the refused request is not counted. Any other return leaves *allowed
 * true (callers fail open) and *retry_after_ms 0. */
enum ratelimit_err ratelimit_hit(struct ratelimit *rl, const char *key, int64_t now_ms,
                                 bool *allowed, int64_t *retry_after_ms);

/* Milliseconds to whole Retry-After seconds: rounded up, at least 1. */
int64_t ratelimit_retry_after_s(int64_t ms);

struct ratelimit_stats {
	int64_t used;           /* slots holding a key */
	int64_t evictions;      /* keys evicted to make room */
	int64_t live_evictions; /* of those, keys with admissions still inside the window */
	int64_t recoveries;     /* locks taken over from a process that died holding them */
	int64_t busy;           /* hits of this process that failed open on a lock timeout */
};
/* Reads the zone's counters (without the lock: approximate under load). */
void ratelimit_stats(const struct ratelimit *rl, struct ratelimit_stats *st);

/* Checks every slot under the lock: tags match keys, keys sit where their
 * hash sends them and appear once, rings are in range and ordered.
 * RATELIMIT_CORRUPT with why naming the first problem. For tests and
 * operators; O(entries * limit). */
enum ratelimit_err ratelimit_verify(struct ratelimit *rl, char *why, size_t whylen);

#endif
