/*
 * hosts: per-destination bounds for the delivery thread (issue 4, item 8;
 * issue 11, item 1). A destination is an origin: scheme, host and port, so
 * two services on different ports of one host are bounded apart.
 *
 *  - At most max_per_host deliveries in flight to one origin. Jobs over the
 *    bound wait in the delivery thread without holding up other origins
 *    (the dispatcher skips them).
 *  - Inside an origin, suspect jobs (tried before, or to a URL path that
 *    failed lately at this origin: hosts_suspect) take at most
 *    ceil(max_per_host / 2) of its slots, and the dispatcher offers slots
 *    to the other jobs first. A few hanging URLs of an origin therefore
 *    never hold every slot: a healthy job to the same origin waits at most
 *    for other healthy jobs (or, with max_per_host 1, for one delivery's
 *    timeout).
 *  - A circuit breaker: after breaker_failures consecutive retryable
 *    failures the origin is open for cooldown_ms. Its jobs are handed back
 *    to the queue, due when the cool-down ends, without an attempt being
 *    counted. Then one trial delivery (half-open): success closes the
 *    breaker, failure opens it again. breaker_failures 0 disables it.
 *    Which job is the trial is the caller's choice (deliver.c offers jobs
 *    that are not suspect first); the breaker allows one at a time, and
 *    for a short grace after the cool-down only one that is not suspect.
 *  - An origin whose jobs in hand reach 2 * max_per_host, or whose breaker
 *    is open, is excluded from claims (hosts_exclusions) so a hanging
 *    origin cannot fill the deliverer's capacity. Claims are filtered by
 *    the claim key given at hosts_get (store_claim_key).
 *
 * Times are monotonic milliseconds. Owned by the delivery thread: not
 * thread safe.
 */
#ifndef CONSUMA_DELIVERER_HOSTS_H
#define CONSUMA_DELIVERER_HOSTS_H

#include <stdbool.h>
#include <stdint.h>

#include "store.h"
#include "buf.h"

struct hosts;
struct host;

/* NULL when memory ran out. */
struct hosts *hosts_new(int64_t max_per_host, int64_t breaker_failures, int64_t cooldown_ms);
/* Frees every host. NULL is a no-op. */
void hosts_free(struct hosts *hs);

/* The destination with key origin ("https://example.com:443"), created on
 * first use with claim_key, the string claims are filtered by (NULL when
 * memory ran out). The pointer stays valid while the origin has jobs in
 * hand. */
struct host *hosts_get(struct hosts *hs, const char *origin, const char *claim_key);
const char *hosts_name(const struct host *h);

/* A job for h entered / left the delivery thread. A host with nothing in
 * hand and a closed breaker is forgotten on leave. */
void hosts_hold(struct hosts *hs, struct host *h);
void hosts_leave(struct hosts *hs, struct host *h);

/* True while h's breaker is open at now; *until then says when it closes. */
bool hosts_open(struct hosts *hs, struct host *h, int64_t now, int64_t *until);
/* The key of url's path for hosts_suspect: the URL up to its query or
 * fragment, hashed (never 0). Pure. */
uint64_t hosts_path_key(const char *url);
/* True when a delivery to path (hosts_path_key) at h failed lately and no
 * delivery to it succeeded since. */
bool hosts_suspect(const struct hosts *hs, const struct host *h, uint64_t path);

/* True when one more delivery to h may start now (bound, breaker, and for
 * a suspect job its share of the slots). suspect: the job had an attempt
 * before, or hosts_suspect said so; pass the same value to started,
 * unstart and finished. */
bool hosts_may_start(struct hosts *hs, struct host *h, bool suspect, int64_t now);
void hosts_started(struct hosts *hs, struct host *h, bool suspect);
/* A delivery to h, to path (hosts_path_key, 0 for none), ended. failure: a
 * retryable failure (counts toward the breaker, marks the path failing);
 * neutral: nothing was learnt about the host (internal error, cancelled).
 * A success clears the path. Returns true when this outcome opened the
 * breaker. */
bool hosts_finished(struct hosts *hs, struct host *h, bool suspect, uint64_t path, bool failure,
                    bool neutral, int64_t now);
/* Undoes hosts_started for a delivery that never left. */
void hosts_unstart(struct hosts *hs, struct host *h, bool suspect);

/* The claim keys to leave out of claims at now. Returns true when the set
 * differs from the previous call's, and then *out is the new list
 * (exclude_copy: NULL for none; the caller owns it); else *out is NULL and
 * nothing is allocated (the delivery thread asks at every turn). */
bool hosts_exclusions(struct hosts *hs, int64_t now, struct store_exclude **out);
/* Origins whose breaker is open at now (for GET /metrics). */
int64_t hosts_open_count(struct hosts *hs, int64_t now);
/* The earliest time an open breaker closes or a half-open origin's grace
 * for suspect trials ends, or -1. */
int64_t hosts_next_change(struct hosts *hs, int64_t now);
/* How long after a cool-down a half-open origin keeps its trial for a job
 * that is not suspect (hosts.c): suspect jobs handed back or retried while
 * it is open are due that much after the cool-down ends. */
int64_t hosts_trial_grace_ms(const struct hosts *hs);

#endif
