/*
 * request: parses and validates the JSON body of POST /sync and POST /async
 * through one table of {field, type, bounds} (kcgi's kvalid). Input is
 * hostile: the parser rejects anything that is not exactly what the API
 * says, and every error names the field it is about.
 *
 *   input_data    string, 1..10000 characters (Unicode scalar values, not
 *                 bytes) of valid UTF-8 with no NUL
 *   iterations    optional JSON integer 1..cfg->max_iterations (default
 *                 cfg->default_iterations); strings, floats (1e3, 1.0),
 *                 booleans and null are refused
 *   callback_url  (async only) string, 1..2048 bytes; its syntax and
 *                 address policy are checked by url.h / ssrf.h, not here
 *
 * Unknown fields are ignored; of duplicate keys the last one wins (as in
 * JSON.parse). The body must be strict RFC 8259 JSON, a single object, at
 * most 32 levels deep: request.c refuses what json-c alone would let
 * through (NUL bytes, raw control characters in strings, single quotes,
 * NaN/Infinity, lone \uD800-\uDFFF escapes). Thread safe (no shared state).
 */
#ifndef CONSUMA_REQUEST_H
#define CONSUMA_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "config.h"

#define REQUEST_INPUT_MAX_CHARS 10000
#define REQUEST_URL_MAX_BYTES   2048
#define REQUEST_DETAIL_MAX      256

enum request_mode { REQUEST_SYNC, REQUEST_ASYNC };

enum request_err {
	REQUEST_OK = 0,
	REQUEST_TOO_LARGE, /* body over cfg->max_body_bytes: HTTP 413 */
	REQUEST_INVALID,   /* malformed JSON or a bad field: HTTP 422 */
	REQUEST_NOMEM,     /* HTTP 500 */
};

struct job_request {
	char *input_data;   /* NUL-terminated UTF-8 (cz_malloc'd) */
	size_t input_bytes; /* strlen(input_data) */
	size_t input_chars; /* code points */
	int64_t iterations; /* the default when the field was absent */
	char *callback_url; /* async only, else NULL (cz_malloc'd) */
};

struct request_error {
	int http_status;                 /* 413, 422 or 500 (0 on success) */
	char field[32];                  /* "input_data", "iterations", "callback_url", "body" */
	char detail[REQUEST_DETAIL_MAX]; /* "<field>: <what is wrong>" */
};

const char *request_strerror(enum request_err err);

/* Parses body (len bytes, need not be NUL-terminated). On REQUEST_OK, out is
 * filled and owned by the caller (request_free). On any error, out is zeroed
 * and err says why; nothing needs freeing. */
enum request_err request_parse(const char *body, size_t len, enum request_mode mode,
                               const struct config *cfg, struct job_request *out,
                               struct request_error *err);

/* Frees what request_parse allocated; request_free(NULL) is a no-op. */
void request_free(struct job_request *r);

/* Validates s (n bytes) as UTF-8 with no NUL, no surrogates, no overlong
 * forms; on success stores the number of code points in *chars. Pure. */
bool request_utf8_valid(const char *s, size_t n, size_t *chars);

#endif
