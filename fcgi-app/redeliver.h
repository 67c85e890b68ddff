/*
 * redeliver: POST /requests/{id}/redeliver and POST /requests/redeliver,
 * putting finished async jobs back to be delivered again (the replay of
 * webhook senders). Admin-only routes once access control exists (the
 * route table marks them).
 */
#ifndef CONSUMA_FCGI_REDELIVER_H
#define CONSUMA_FCGI_REDELIVER_H

#include <stdbool.h>
#include <stdint.h>
#include "http.h"

/* POST /requests/{id}/redeliver: tail is the id; the body is ignored but
 * the Content-Type must be JSON (415). 202, 404 unknown id, 409 still in
 * progress (or a /sync record). Thread safe (x's own connection). */
void redeliver_one(struct http_exchange *x, const char *tail);
/* POST /requests/redeliver with {"status","since","until","callback_host"?,
 * "dry_run"?}: 200 {"count"} for a dry run, else 202 {"count","matched",
 * "remaining"}. Thread safe (x's own connection). */
void redeliver_bulk(struct http_exchange *x, const char *tail);

/* Parses an RFC 3339 date-time ("2026-12-01T21:00:00Z", fractions and
 * +hh:mm offsets allowed) into epoch milliseconds. False on anything else,
 * trailing junk included. Pure. */
bool redeliver_parse_time(const char *s, int64_t *ms);

#endif
