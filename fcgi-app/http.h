/*
 * http: one HTTP exchange as consuma-fcgi sees it through FastCGI, and the
 * helpers every handler answers with. A response is a "Status:" header
 * (FastCGI's way of setting the status line), Content-Type:
 * application/json, Content-Length, any extra headers the handler added, and
 * a JSON body. Errors are always {"detail": "<field>: <what was wrong>"}.
 *
 * The body is read bounded: a CONTENT_LENGTH over the cap is refused (413)
 * before a byte of it is read, so a client cannot make a process buffer more
 * than CONSUMA_MAX_BODY_BYTES.
 *
 * One exchange belongs to the worker thread that accepted it, with that
 * thread's database connection; nothing here is shared. A parked exchange
 * (park.h) passes to the worker that answers it, with that one's
 * connection.
 */
#ifndef CONSUMA_FCGI_HTTP_H
#define CONSUMA_FCGI_HTTP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <fcgiapp.h>
#include <json-c/json.h>
#include "app.h"
#include "buf.h"
#include "ids.h"
#include "request.h"

#define HTTP_PATH_MAX    2048
#define HTTP_CLIENT_MAX  64
#define HTTP_HEADERS_MAX 4096

struct http_exchange {
	struct app *app;
	struct store *store; /* the worker thread's connection */
	FCGX_Request *fr;
	const char *method;                /* REQUEST_METHOD, never NULL */
	char path[HTTP_PATH_MAX];          /* percent-decoded path, no query */
	const char *query;                 /* raw QUERY_STRING, never NULL */
	char client[HTTP_CLIENT_MAX];      /* whom the request counts against: "key:<client>"
	                                    * with an API key, else the address */
	char owner[HTTP_CLIENT_MAX - 4];   /* the API key's client name; "" when open (auth.h) */
	bool admin;                        /* the API key's role is admin */
	const char *route;                 /* route name for logs, "-" until routed */
	char request_id[IDS_UUID_LEN + 1]; /* "" until a handler names one */
	int status;                        /* the status sent, 0 before */
	bool ring_doorbell;                /* ring after the response is flushed */
	uint64_t ring_batch;               /* for the jobs of this commit batch (0: always) */
	bool write_failed;                 /* a write of the response failed */
	char addr[HTTP_CLIENT_MAX];        /* the address when client is a key ("" else), logged */
	/* Parked (park.h): the handler queued its work and returned without an
	 * answer; resume answers, later, on whichever worker takes the
	 * exchange (router_resume), and frees park_state. */
	bool parked;
	void (*resume)(struct http_exchange *x);
	void *park_state;
	atomic_int park_holds;           /* park.c: who still holds it while parked */
	struct http_exchange *park_next; /* park.c's ready list */
	struct buf headers;              /* extra header lines, CRLF terminated */
	int64_t start_ns;                /* monotonic, for duration_ms */
};

enum http_body_err {
	HTTP_BODY_OK = 0,
	HTTP_BODY_TOO_LARGE,  /* CONTENT_LENGTH over the cap: 413, nothing read */
	HTTP_BODY_BAD_LENGTH, /* CONTENT_LENGTH is not a decimal number: 400 */
	HTTP_BODY_TRUNCATED,  /* fewer bytes arrived than announced: 400 */
	HTTP_BODY_NOMEM,      /* 500 */
};

const char *http_body_strerror(enum http_body_err err);

/* Prepares x for the request fr: method, decoded path (false when the path
 * does not decode: answer 404), query. Call http_exchange_done afterwards
 * either way. */
bool http_exchange_init(struct http_exchange *x, struct app *app, FCGX_Request *fr);
/* Frees what the exchange holds. */
void http_exchange_done(struct http_exchange *x);

/* A FastCGI parameter (CGI variable) of the request, or NULL. The string
 * belongs to libfcgi and lives until the request is finished. */
const char *http_param(const struct http_exchange *x, const char *name);

/* Retry-After, in whole seconds: every estimate goes out within 1..60 (a
 * client is never told to come back at once, nor to stay away long on a
 * guess); the answers that have no estimate say one of two fixed times. */
#define HTTP_RETRY_AFTER_MIN_S  1
#define HTTP_RETRY_AFTER_MAX_S  60
#define HTTP_RETRY_AFTER_BUSY_S 1 /* the database stayed busy: a moment */
/* something must come back: the database, a deliverer, room in the queue */
#define HTTP_RETRY_AFTER_UNAVAILABLE_S 5

/* Adds "Retry-After: s" with s clamped to HTTP_RETRY_AFTER_MIN_S..MAX_S;
 * returns the value sent, for the message that names it. */
int64_t http_retry_after(struct http_exchange *x, int64_t s);

/* Adds "Name: value" to the response headers. Values are formatted from
 * trusted data only (ids, numbers, method lists). */
void http_header(struct http_exchange *x, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Adds v under key to o (json_object_object_add); false when memory ran
 * out: v NULL (the json_object_new_* that made it failed) or the add
 * failed (v is freed). present false adds a JSON null instead, freeing v
 * if there is one. Chain with ok = ok && http_json_add(...): after a
 * failure the rest is not even allocated. */
bool http_json_add(json_object *o, const char *key, bool present, json_object *v);

/* Sends status, headers and body (a JSON object; not consumed). Only the
 * first call of an exchange sends anything; returns false on a write error. */
bool http_send_json(struct http_exchange *x, int status, json_object *body);
/* Ends the response: the client has it once this returns (the FastCGI
 * streams are closed, the response and END_REQUEST written in one write;
 * the request's parameters stay readable until the exchange is done).
 * Work after it costs the client nothing. Returns false when a write
 * failed, here or earlier (the front, or its connection to us, is gone:
 * the client never saw the answer, even if the work was done and a job
 * committed). Calling it again returns the same. */
bool http_finish(struct http_exchange *x);
/* Sends status, headers and len bytes of body with content_type (for
 * GET /metrics); otherwise as http_send_json. */
bool http_send_text(struct http_exchange *x, int status, const char *content_type, const char *body,
                    size_t len);
/* Sends {"detail": <fmt...>} with status. */
void http_error(struct http_exchange *x, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Sends 500 and logs what (and the request id, when there is one). */
void http_internal_error(struct http_exchange *x, const char *what, const char *cause);
/* Answers a store failure: a transient one (store_err_transient: busy,
 * out of space, the server unreachable) is a 503 with Retry-After the
 * client may retry, never a 202; anything else 500, logged with what and
 * the database's message. */
void http_store_failed(struct http_exchange *x, enum store_err err, const char *what);
/* The same with the database's message given (a parked job's, which came
 * from the committer's connection). */
void http_store_failed_msg(struct http_exchange *x, enum store_err err, const char *what,
                           const char *msg);
/* The standard reason phrase for status ("Unknown" for others). */
const char *http_reason(int status);

/* Reads the request body (CONTENT_LENGTH bytes) into *body, at most cap
 * bytes. On HTTP_BODY_OK *body is NUL-terminated, owned by the caller
 * (cz_free) and *len is its length; on error *body is NULL. */
enum http_body_err http_read_body(struct http_exchange *x, size_t cap, char **body, size_t *len);
/* Answers the error err with the right status and detail. */
void http_fail_body(struct http_exchange *x, enum http_body_err err, size_t cap);

/* Whether a Content-Type value is JSON as we read it: the media type
 * application/json (ASCII case-insensitive, blanks around it allowed) with
 * any parameters, but a charset parameter must be utf-8. NULL is false. */
bool http_content_type_json(const char *ct);

/* Checks Content-Type (415 unless http_content_type_json), reads the body
 * (at most CONSUMA_MAX_BODY_BYTES) and parses it as a job request of mode:
 * the common first step of POST /sync and POST /async.
 * Returns true with *job filled (request_free it) and *body, *len set (the
 * raw body, cz_free it); false when the answer (400/411/413/415/422/500)
 * has been given, with nothing left to free. */
bool http_read_job(struct http_exchange *x, enum request_mode mode, struct job_request *job,
                   char **body, size_t *len);

/* Percent-decodes in (n bytes) into out (outlen bytes, NUL-terminated);
 * '+' becomes a space when plus_is_space (query strings). Returns the
 * decoded length, or -1 on a malformed escape, a decoded NUL or no room. */
long http_percent_decode(const char *in, size_t n, char *out, size_t outlen, bool plus_is_space);

#endif
