/*
 * deliver: the delivery thread. One thread drives a libcurl multi handle:
 * many callbacks in flight, connections reused, bounded per destination
 * origin (hosts.h) and in all (CONSUMA_MAX_INFLIGHT_DELIVERIES). It is also
 * the only writer of job outcomes: each turn of its loop gathers what
 * happened (jobs ready to send, attempts ended, jobs to hand back) and
 * writes it in one transaction, before any request of that turn is sent.
 *
 * deliver_submit and deliver_stop are thread safe; the rest runs on the
 * delivery thread.
 */
#ifndef CONSUMA_DELIVERER_DELIVER_H
#define CONSUMA_DELIVERER_DELIVER_H

#include <stdbool.h>

#include "config.h"
#include "djob.h"
#include "shared.h"
#include "sign.h"
#include "ssrf.h"
#include "store.h"

struct deliver;

enum deliver_err {
	DELIVER_OK = 0,
	DELIVER_NOMEM,
	DELIVER_SYSTEM, /* a mutex or libcurl could not be set up */
};

const char *deliver_strerror(enum deliver_err err);

/* Prepares the delivery thread on its own store connection s (owned by
 * the caller, used only by the thread). key may be NULL (no signatures).
 * NULL on failure, with *err and why (may be NULL) saying what failed. */
struct deliver *deliver_new(const struct config *cfg, struct store *s, const char *owner,
                            const struct ssrf_policy *policy, const struct sign_key *key,
                            struct shared *sh, enum deliver_err *err, char *why, size_t whylen);
/* Starts the thread: 0, or an errno value. */
int deliver_start(struct deliver *d);
/* Hands a job from the pool to the thread. Thread safe. */
void deliver_submit(struct deliver *d, struct djob *j);
/* Asks the thread to stop and joins it. Before it returns, the thread
 * writes what it knows in one last transaction: finished attempts, results
 * computed but not stored, and every job not in flight handed back due now.
 * Transfers still in flight are abandoned; their attempts stay 'sending'
 * for store_handback_all to mark unknown. */
void deliver_stop(struct deliver *d);
/* NULL is a no-op. Stops first when needed. */
void deliver_free(struct deliver *d);

#endif
