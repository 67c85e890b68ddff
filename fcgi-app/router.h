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
 * a response was sent (500 otherwise), ends the response (http_finish) and
 * logs event=request. When the handler parked the exchange (x->parked,
 * park.h) it returns without an answer: router_resume gives it later. One
 * exchange per call; calls on different exchanges may run at once. */
void router_dispatch(struct http_exchange *x);
/* The rest of router_dispatch for a parked exchange whose work is done:
 * the handler's resume, then the checks, the end and the log line. */
void router_resume(struct http_exchange *x);

#endif
