/*
 * requests: GET /requests (filtered, paged list, newest first) and
 * GET /requests/{id} (one record with its delivery trace).
 */
#ifndef CONSUMA_FCGI_REQUESTS_H
#define CONSUMA_FCGI_REQUESTS_H

#include <json-c/json.h>

#include "http.h"
#include "store.h"

/* GET /requests?mode=&status=&limit=&offset=. Not thread safe. */
void requests_list(struct http_exchange *x, const char *tail);
/* GET /requests/{id}; tail is the id part of the path. Not thread safe. */
void requests_get(struct http_exchange *x, const char *tail);

/* The JSON the two routes answer (see README): one record with its
 * "delivery_trace", and a page of the list. NULL when memory ran out. */
json_object *requests_record_json(const struct store_request *r);
json_object *requests_page_json(const struct store_page *p);

#endif
