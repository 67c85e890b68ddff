/*
 * recv: consuma-storm's callback receiver and the per-request bookkeeping of
 * an async run.
 *
 * A libmicrohttpd daemon (its own polling thread) accepts POST
 * /callback/<token>/<i>, where <token> is random per run (callbacks left over
 * from an earlier run are "unexpected", never counted) and <i> is the
 * request's index. Each callback is checked on arrival: body fields against
 * the local work (expect.h), the request_id against the one the 202 gave,
 * and with a secret the Standard Webhooks signature. It is answered 200
 * whatever it held: problems are counted, not pushed back as retries.
 *
 * Locking: one mutex guards every slot; the load loop writes start times
 * and accepts (recv_note_*), the receiver thread writes arrivals, and a
 * condition variable wakes recv_wait when the last awaited callback lands.
 */
#ifndef CONSUMA_STORM_RECV_H
#define CONSUMA_STORM_RECV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "expect.h"
#include "result.h"
#include "timeline.h"

#define RECV_BODY_MAX (64 * 1024)
#define RECV_URL_MAX  512

enum recv_err {
	RECV_OK = 0,
	RECV_NOMEM,
	RECV_LISTEN,     /* the daemon could not start (port in use?) */
	RECV_BAD_SECRET, /* the signing secret did not decode */
	RECV_THREAD,     /* mutex or condition variable setup failed */
};

struct recv_config {
	const char *host; /* the host the server calls back */
	int port;
	uint64_t n;              /* requests in the run (indices 0..n-1) */
	const struct expect *ex; /* borrowed, must outlive the receiver */
	const char *secret;      /* NULL: signatures are not checked */
};

struct recv;

const char *recv_strerror(enum recv_err err);

/* Starts listening. NULL on failure with *err set. Free with recv_free. */
struct recv *recv_new(const struct recv_config *cfg, enum recv_err *err);
/* Stops the daemon (joins its thread) and frees everything. NULL: no-op. */
void recv_free(struct recv *rv);

/* Writes request i's callback URL into out (RECV_URL_MAX bytes). */
void recv_callback_url(const struct recv *rv, uint64_t i, char *out, size_t outlen);

/* The load loop reports that request i starts (its latency origin), and
 * that its 202 named request_id (a canonical UUID). Thread safe. */
void recv_note_start(struct recv *rv, uint64_t i, int64_t start_ns);
void recv_note_accept(struct recv *rv, uint64_t i, const char *request_id);

/* Waits until every accepted request has a callback or until_ns (monotonic)
 * passes; true when none is outstanding. Thread safe. */
bool recv_wait(struct recv *rv, int64_t until_ns);
/* Callbacks arrived for accepted requests, and accepted requests. */
void recv_counts(struct recv *rv, uint64_t *received, uint64_t *accepted);

/* Stops accepting callbacks (joins the daemon's thread). Idempotent. */
void recv_stop(struct recv *rv);
/* Fills cb and latency (send to first callback, microseconds) from the
 * requests first .. first + n - 1, and adds their first callbacks to tl
 * when not NULL. Callbacks to paths that are not this run's are not in it:
 * see recv_stray. Thread safe; call after those requests' callback wait. */
void recv_summarize(struct recv *rv, uint64_t first, uint64_t n, struct result_callbacks *cb,
                    struct hist *latency, struct timeline *tl);
/* Callbacks to paths that are not this run's (another run's token). */
uint64_t recv_stray(struct recv *rv);

#endif
