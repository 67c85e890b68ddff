/*
 * load: one mode of a storm, driven with libcurl's multi interface on the
 * calling thread (no thread per request; --concurrency easy handles are
 * reused, so connections stay alive).
 *
 * Closed loop (no --rate): a request starts whenever one of the
 * --concurrency slots is free; latency counts from its actual start.
 * Open loop (--rate R): request i is due at t0 + i/R; it starts then if a
 * slot is free, else as soon as one is, and its latency (and its --timeout
 * deadline) counts from when it was due, so a stalled server shows as
 * queueing in the percentiles instead of slowing the client down (wrk2's
 * coordinated-omission correction).
 *
 * --threads splits the requests and the connections over worker threads,
 * each with its own multi handle (as wrk -t does), for when one core cannot
 * drive the server hard enough.
 *
 * --mode mixed interleaves the two paths in one schedule: request i goes to
 * /async when floor((i + 1) * mix) > floor(i * mix), else to /sync, so any
 * stretch of the storm holds the --mix share of async requests, and both
 * meet the server at the same moment. Every event also lands in the run's
 * timeline (timeline.h).
 */
#ifndef CONSUMA_STORM_LOAD_H
#define CONSUMA_STORM_LOAD_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "expect.h"
#include "opts.h"
#include "recv.h"
#include "result.h"
#include "timeline.h"

enum load_err {
	LOAD_OK = 0,
	LOAD_NOMEM,
	LOAD_CURL,   /* libcurl refused to set up a handle */
	LOAD_THREAD, /* a worker thread or its lock could not start */
};

struct load_progress {
	const char *label; /* "sync", "async" or "mixed" */
	uint64_t n;        /* requests in this mode */
	uint64_t started;  /* sent so far */
	uint64_t done;     /* answered or failed */
	uint64_t failed;
	double elapsed_s;
};

struct load_config {
	const struct opts *o;
	double rate;          /* this run's open-loop rate (o->rate or a --sweep step); 0 closed */
	bool is_async;        /* every request to /async (ignored when mixed) */
	bool mixed;           /* interleave by o->mix */
	uint64_t first_index; /* request indices first_index .. + num_requests */
	const struct expect *ex;     /* borrowed */
	struct recv *rv;             /* async: start times and accepts go here */
	struct timeline *tl;         /* every event goes here (merged after the run) */
	volatile sig_atomic_t *stop; /* set by a signal: start nothing new */
	/* Called about five times a second when not NULL. */
	void (*progress)(void *arg, const struct load_progress *p);
	void *progress_arg;
};

const char *load_strerror(enum load_err err);

/* True when request i of a mixed storm goes to /async. */
bool load_mixed_is_async(double mix, uint64_t i);

/* Runs o->num_requests requests on o->threads worker threads (at most one
 * per connection) and adds to the request side of sync and async (sent,
 * succeeded, causes, latency, rates) for the modes it sent, and to cfg->tl.
 * The latency histograms must be initialised. Returns when every request
 * has ended; each is bounded by --timeout. The calling thread supervises
 * (progress, stop). One run at a time; curl_global_init must have been
 * called. */
enum load_err load_run(const struct load_config *cfg, struct result_mode *sync,
                       struct result_mode *async);

#endif
