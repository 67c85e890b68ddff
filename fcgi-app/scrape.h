/*
 * scrape: GET /metrics, the Prometheus text exposition (version 0.0.4) of
 * the host's counters zone (lib/metrics.h) and the store's O(1) gauges.
 * Also the mapping from a handler's outcome to the zone's labels, so every
 * counting call elsewhere is one line. (Named scrape, not metrics, so that
 * its header does not shadow lib/metrics.h on the include path.)
 */
#ifndef CONSUMA_FCGI_SCRAPE_H
#define CONSUMA_FCGI_SCRAPE_H

#include "http.h"
#include "store.h"

/* Answers GET /metrics on x. Not thread safe. */
void scrape_handle(struct http_exchange *x, const char *tail);

/* Counts an intake bound's refusal of POST /async (queue full, client
 * share, host pending). */
void scrape_count_refusal(struct app *app, enum job_refusal why);

/* Counts what the answer to x says about the service, once per request,
 * after the handler: refusals by reason (413, 415, 422, 400) and every POST
 * /sync by outcome with its duration. admitted false: the router's
 * admission refused it (verdict in overloaded). */
void scrape_count_answer(struct http_exchange *x, bool admitted, bool overloaded);

#endif
