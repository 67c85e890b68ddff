/*
 * router: maps an exchange's method and path to its handler. Unknown paths
 * get 404, a known path with another method 405 with Allow; a matched
 * route checks the API key its table entry asks for (auth.h: 401, or 403
 * for an admin-only route) and passes admission control (limits.h: rate
 * limit per client) before its handler runs. Writes the one log line per
 * request.
 */
#ifndef CONSUMA_FCGI_ROUTER_H
#define CONSUMA_FCGI_ROUTER_H

#include "http.h"

/* Answers the exchange: routes it, admits it, runs the handler, makes sure
 * a response was sent (500 otherwise) and logs event=request. Not thread
 * safe (one exchange at a time per process). */
void router_dispatch(struct http_exchange *x);

#endif
