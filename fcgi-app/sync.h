/*
 * sync: POST /sync. Validates the body, computes the work inline, records the
 * finished request and answers 200 with the result.
 */
#ifndef CONSUMA_FCGI_SYNC_H
#define CONSUMA_FCGI_SYNC_H

#include "http.h"

/* Answers POST /sync on x. Not thread safe (uses the process's store). */
void sync_handle(struct http_exchange *x, const char *tail);

#endif
