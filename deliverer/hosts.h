/*
 * hosts: per-destination bounds for the delivery thread (issue 4, item 8).
 *
 *  - At most max_per_host deliveries in flight to one callback host. Jobs
 *    over the bound wait in the delivery thread without holding up other
 *    hosts (no head-of-line blocking: the dispatcher skips them).
 *  - A circuit breaker: after breaker_failures consecutive retryable
 *    failures the host is open for cooldown_ms. Its jobs are handed back to
 *    the queue, due when the cool-down ends, without an attempt being
 *    counted. Then one trial delivery (half-open): success closes the
 *    breaker, failure opens it again. breaker_failures 0 disables it.
 *  - A host whose jobs in hand reach 2 * max_per_host, or whose breaker is
 *    open, is excluded from claims (hosts_exclusions) so a hanging host
 *    cannot fill the deliverer's capacity.
 *
 * Times are monotonic milliseconds. Owned by the delivery thread: not
 * thread safe.
 */
#ifndef CONSUMA_DELIVERER_HOSTS_H
#define CONSUMA_DELIVERER_HOSTS_H

#include <stdbool.h>
#include <stdint.h>
#include "buf.h"

struct hosts;
struct host;

/* NULL when memory ran out. */
struct hosts *hosts_new(int64_t max_per_host, int64_t breaker_failures, int64_t cooldown_ms);
/* Frees every host. NULL is a no-op. */
void hosts_free(struct hosts *hs);

/* The host named name, created on first use (NULL when memory ran out).
 * The pointer stays valid while the host has jobs in hand. */
struct host *hosts_get(struct hosts *hs, const char *name);
const char *hosts_name(const struct host *h);

/* A job for h entered / left the delivery thread. A host with nothing in
 * hand and a closed breaker is forgotten on leave. */
void hosts_hold(struct hosts *hs, struct host *h);
void hosts_leave(struct hosts *hs, struct host *h);

/* True while h's breaker is open at now; *until then says when it closes. */
bool hosts_open(struct hosts *hs, struct host *h, int64_t now, int64_t *until);
/* True when one more delivery to h may start now (bound and breaker). */
bool hosts_may_start(struct hosts *hs, struct host *h, int64_t now);
void hosts_started(struct hosts *hs, struct host *h);
/* A delivery to h ended. failure: a retryable failure (counts toward the
 * breaker); neutral: nothing was learnt about the host (internal error,
 * cancelled). Returns true when this outcome opened the breaker. */
bool hosts_finished(struct hosts *hs, struct host *h, bool failure, bool neutral, int64_t now);
/* Undoes hosts_started for a delivery that never left. */
void hosts_unstart(struct hosts *hs, struct host *h);

/* Writes the JSON array of hosts to leave out of claims at now into out
 * (reset first). Returns true when it differs from the previous call. */
bool hosts_exclusions(struct hosts *hs, int64_t now, struct buf *out);
/* The earliest time an open breaker closes, or -1. */
int64_t hosts_next_change(struct hosts *hs, int64_t now);

#endif
