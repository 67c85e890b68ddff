/*
 * async: POST /async. Validates the body and the callback URL's syntax,
 * inserts the job durably (the 202 means it is on disk), honours
 * Idempotency-Key, and asks for the deliverer's doorbell to be rung once the
 * answer is out.
 */
#ifndef CONSUMA_FCGI_ASYNC_H
#define CONSUMA_FCGI_ASYNC_H

#include <stdbool.h>
#include <stddef.h>
#include "http.h"

/* Answers POST /async on x. Not thread safe (uses the process's store). */
void async_handle(struct http_exchange *x, const char *tail);

/* True when key is a valid Idempotency-Key: 1..255 bytes of printable
 * ASCII (0x20..0x7e). Pure. */
bool async_idempotency_key_valid(const char *key);

#endif
