/*
 * sample: the server's side of the timeline. A thread asks GET /healthz
 * once per --interval during the storm and the callback wait (queue depth,
 * busy deliverer workers, callbacks in flight), and GET /metrics too when
 * the server answers it (consuma_oldest_pending_age_seconds). Each sample
 * lands in the interval in which it was asked for. A server without these
 * routes leaves the timeline's server figures empty; nothing fails.
 *
 * The thread owns its curl handle and its own timeline part; sample_stop
 * joins it and merges that part, so nothing is shared while it runs but the
 * stop flag under a mutex.
 */
#ifndef CONSUMA_STORM_SAMPLE_H
#define CONSUMA_STORM_SAMPLE_H

#include "timeline.h"

enum sample_err {
	SAMPLE_OK = 0,
	SAMPLE_NOMEM,
	SAMPLE_THREAD, /* the thread, its lock or its curl handle could not start */
};

struct sample;

const char *sample_strerror(enum sample_err err);

/* Starts sampling server_url (the API base URL) every interval_s into a
 * timeline like `like`. NULL on failure with *err set. */
struct sample *sample_start(const char *server_url, double interval_s, const struct timeline *like,
                            enum sample_err *err);
/* Stops the thread, adds what it sampled to into, frees s. NULL: no-op. */
void sample_stop(struct sample *s, struct timeline *into);

/* Parses a /healthz body into out (figures it lacks stay -1). False when
 * it is not a JSON object. Pure. */
bool sample_parse_health(const char *body, size_t len, struct tl_server *out);
/* Reads consuma_oldest_pending_age_seconds (and consuma_queue_depth when
 * out has none) from a Prometheus text body. Pure. */
void sample_parse_metrics(const char *body, struct tl_server *out);

#endif
