/*
 * pool: the compute pool. N threads take claimed jobs in order, run the
 * shared work function when the result is not stored yet, check the
 * callback destination (ssrf_check_url: parse, resolve, classify; the DNS
 * lookup happens here so the delivery thread never blocks on it) and pass
 * the job on to done(). A worker's step cannot fail: what went wrong is
 * written into the job (djob->prep, djob->dest), and the job always comes
 * back.
 *
 * Long work runs in chunks of rounds (work_rounds), so a shutdown
 * interrupts it within one chunk.
 *
 * pool_submit is thread safe; pool_stop is called once, by the owner.
 */
#ifndef CONSUMA_DELIVERER_POOL_H
#define CONSUMA_DELIVERER_POOL_H

#include <stdatomic.h>
#include <stdbool.h>

#include "djob.h"
#include "shared.h"
#include "ssrf.h"

struct pool;

/* Called on a worker thread for each job, ready or not. */
typedef void (*pool_done_fn)(struct djob *j, void *arg);

enum pool_err {
	POOL_OK = 0,
	POOL_NOMEM,
	POOL_THREAD, /* a thread or its mutex could not be made */
};

const char *pool_strerror(enum pool_err err);

/* Starts n threads. sh->busy_workers counts the workers computing and
 * sh->pool_pending the jobs queued; taking a job while the queue is at or
 * below sh->pool_low_water pokes the claim loop (shared_poke). NULL on
 * failure (no thread left running), with *err and why (may be NULL). */
struct pool *pool_new(int n, const struct ssrf_policy *policy, pool_done_fn done, void *arg,
                      struct shared *sh, enum pool_err *err, char *why, size_t whylen);
void pool_submit(struct pool *p, struct djob *j);
/* Stops the threads and joins them. abandon: jobs still queued, and work
 * in progress (at its next chunk), come back through done() as
 * DJOB_ABANDONED; otherwise the queue is worked off first. */
void pool_stop(struct pool *p, bool abandon);
/* Stops (abandoning) if needed and frees. NULL is a no-op. */
void pool_free(struct pool *p);

#endif
