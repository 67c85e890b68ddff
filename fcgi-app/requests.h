/*
 * requests: GET /requests (filtered, paged list, newest first) and
 * GET /requests/{id} (one record with its delivery trace).
 */
#ifndef CONSUMA_FCGI_REQUESTS_H
#define CONSUMA_FCGI_REQUESTS_H

#include "http.h"

/* GET /requests?mode=&status=&limit=&offset=. Not thread safe. */
void requests_list(struct http_exchange *x, const char *tail);
/* GET /requests/{id}; tail is the id part of the path. Not thread safe. */
void requests_get(struct http_exchange *x, const char *tail);

#endif
