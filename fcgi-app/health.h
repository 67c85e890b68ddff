/*
 * health: GET /healthz. Database reachability, queue depth, this process's
 * uptime and the deliverer's heartbeat; 503 when degraded.
 */
#ifndef CONSUMA_FCGI_HEALTH_H
#define CONSUMA_FCGI_HEALTH_H

#include "http.h"

/* Answers GET /healthz on x. Not thread safe. */
void health_handle(struct http_exchange *x, const char *tail);

#endif
