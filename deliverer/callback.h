/*
 * callback: the wire format of one callback attempt, as DESIGN.md and the
 * README promise it to receivers, in one place: the JSON body and the
 * request headers (content type, user agent, request id, attempt number,
 * and the Standard Webhooks webhook-id, webhook-timestamp and, with a
 * signing key, webhook-signature). deliver.c sends what this builds; the
 * transfer itself (URL, timeouts, the pinned address) is deliver.c's.
 *
 * Pure functions of their arguments; thread safe.
 */
#ifndef CONSUMA_DELIVERER_CALLBACK_H
#define CONSUMA_DELIVERER_CALLBACK_H

#include <stdint.h>
#include <curl/curl.h>

#include "buf.h"
#include "sign.h"

/* The callback body is ~350 bytes; a buffer bounded far above it. */
#define CALLBACK_BODY_MAX 4096

/* What the receiver learns about a finished job. */
struct callback_result {
	const char *request_id;
	const char *result; /* 64 lowercase hex */
	int64_t iterations;
	double duration_ms;
	int64_t created_at_ms;   /* epoch ms */
	int64_t completed_at_ms; /* epoch ms */
};

enum callback_err {
	CALLBACK_OK = 0,
	CALLBACK_NOMEM, /* the body outgrew its buffer, or an allocation failed */
	CALLBACK_SIGN,  /* the signing key refused (sign.h) */
};

const char *callback_strerror(enum callback_err err);

/* Replaces out's contents with the JSON body of DESIGN.md:
 * {"request_id","status":"completed","result","iterations","duration_ms",
 * "created_at","completed_at"}, times in RFC 3339 UTC with milliseconds. */
enum callback_err callback_body(struct buf *out, const struct callback_result *r);

/* Appends the request headers of attempt number attempt, started at
 * sent_at_ms (epoch; webhook-timestamp is its whole seconds), to *headers
 * (free with curl_slist_free_all, also after a failure: what was appended
 * stays). key NULL: unsigned, no webhook-signature; else one v1 signature
 * of body per secret of key. */
enum callback_err callback_headers(struct curl_slist **headers, const char *request_id,
                                   int64_t attempt, int64_t sent_at_ms, const struct sign_key *key,
                                   const char *body, size_t body_len);

#endif
