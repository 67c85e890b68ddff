/*
 * shared: the few figures the deliverer's threads share, and the wake-up
 * of the claim loop.
 *
 *  - in_hand: jobs claimed and not yet finished or handed back (claim loop
 *    adds, whoever lets go of a job subtracts). The claim loop keeps it at
 *    or below its capacity.
 *  - busy_workers, inflight: for the heartbeat.
 *  - pool_pending: jobs waiting for a compute worker; the claim loop keeps
 *    that backlog short so unclaimed jobs stay in the database, where
 *    another deliverer may take them.
 *  - sleep_until: the wall time the claim loop sleeps until; the delivery
 *    thread wakes it earlier when a retry it scheduled is due sooner.
 *  - wants_room: the claim loop waits for capacity; wake it when jobs end.
 *  - exclusions: the claim keys (origins, store_claim_key) the claim loop
 *    must leave alone (hosts.h), published by the delivery thread as an
 *    immutable list with a generation number; the claim loop copies it
 *    only when the generation moved.
 *
 * Thread safe: atomics, and a mutex for the exclusion list.
 */
#ifndef CONSUMA_DELIVERER_SHARED_H
#define CONSUMA_DELIVERER_SHARED_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "store.h"

struct shared {
	atomic_llong in_hand;
	atomic_int busy_workers;
	atomic_llong pool_pending; /* jobs queued for the compute pool */
	int64_t pool_low_water;    /* the pool pokes the claim loop at or below it */
	atomic_int inflight;
	atomic_llong sleep_until;
	atomic_bool wants_room;
	int wake_fd; /* eventfd the claim loop polls */
	pthread_mutex_t mu;
	struct store_exclude *exclusions; /* guarded by mu; NULL for none */
	uint64_t exclusions_gen;          /* guarded by mu; counts replacements */
};

/* 0 on success, -1 with errno set (eventfd). */
int shared_init(struct shared *sh);
void shared_destroy(struct shared *sh);
/* Wakes the claim loop. Async-signal safe. */
void shared_wake(struct shared *sh);
/* Reads and clears pending wake-ups. */
void shared_drain(struct shared *sh);
/* A list of n claim keys, copied into one cz_malloc'd block (cz_free it);
 * NULL when n is 0 or memory ran out (no exclusions: still correct, only
 * less polite to an open breaker). */
struct store_exclude *exclude_copy(const char *const *keys, size_t n);
/* Replaces the exclusion list; takes ex (NULL for none). True when the
 * change may have made a job claimable: a key of the old list is not in
 * ex (or the lists are too long to compare cheaply). A key added excludes
 * more and frees nothing, so it needs no claim scan. */
bool shared_set_exclusions(struct shared *sh, struct store_exclude *ex);
/* Brings *mine (the caller's own copy, NULL at first) up to date when the
 * list changed since *gen (0 at first); cz_free *mine when done. */
void shared_get_exclusions(struct shared *sh, uint64_t *gen, struct store_exclude **mine);
/* One job fewer in hand; wakes the claim loop when it waits for room. */
void shared_release(struct shared *sh, int64_t n);
/* Wakes the claim loop when it waits for room (the pool took a job). */
void shared_poke(struct shared *sh);

#endif
