/*
 * recv: the callback receiver (see recv.h for the design and the locking).
 */
#include "recv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "alloc.h"
#include "buf.h"
#include "hex.h"
#include "ids.h"
#include "log.h"
#include "sign.h"

#define TOKEN_LEN 16

enum slot_flag {
	F_WRONG = 1,  /* some callback body disagreed */
	F_BADSIG = 2, /* some callback's signature did not verify */
	F_HAS_ID = 4, /* cb_id holds the first callback's request_id */
};

struct slot {
	int64_t start_ns;
	int64_t cb_ns;        /* first callback's arrival */
	uint32_t accept_rank; /* 1-based order of the 202s; 0 = not accepted */
	uint16_t cb_count;    /* saturates */
	uint8_t flags;
	uint8_t id[16];    /* from the 202 */
	uint8_t cb_id[16]; /* from the first callback */
};

struct recv {
	struct MHD_Daemon *d;
	struct MHD_Response *r_ok, *r_404, *r_405, *r_413;
	struct sign_key *key;
	const struct expect *ex;
	uint64_t n;
	char base_url[RECV_URL_MAX / 2];
	char token[TOKEN_LEN + 1];

	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool sync_ready;
	struct slot *slots;
	uint32_t *arrivals; /* indices in first-arrival order */
	uint64_t n_arrivals;
	uint64_t accepted;
	uint64_t matched;  /* accepted and called back */
	uint64_t bad_path; /* callbacks to paths that are not ours */
	uint32_t next_rank;
};

struct conn {
	int64_t arrival_ns;
	struct buf body;
};

const char *recv_strerror(enum recv_err err)
{
	switch (err) {
	case RECV_OK:
		return "ok";
	case RECV_NOMEM:
		return "out of memory";
	case RECV_LISTEN:
		return "cannot listen on the callback address and port (in use?)";
	case RECV_BAD_SECRET:
		return "the signing secret does not decode";
	case RECV_THREAD:
		return "cannot set up the receiver's lock";
	}
	return "unknown error";
}

/* A canonical UUID (ids_uuid_valid) as 16 bytes. */
static bool uuid_bytes(const char *s, uint8_t out[16])
{
	if (!s || !ids_uuid_valid(s))
		return false;
	int k = 0;
	for (int i = 0; s[i] && k < 16;) {
		if (s[i] == '-') {
			i++;
			continue;
		}
		out[k++] = (uint8_t)(hex_digit(s[i]) << 4 | hex_digit(s[i + 1]));
		i += 2;
	}
	return k == 16;
}

static void make_token(char out[TOKEN_LEN + 1])
{
	uint64_t r = 0;
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (read(fd, &r, sizeof(r)) != (ssize_t)sizeof(r))
			r = 0;
		close(fd);
	}
	r ^= (uint64_t)ids_mono_ns() * 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid();
	snprintf(out, TOKEN_LEN + 1, "%016llx", (unsigned long long)r);
}

/* Index from "/callback/<token>/<digits>", or -1. */
static int64_t parse_path(const struct recv *rv, const char *url)
{
	static const char prefix[] = "/callback/";
	size_t pl = sizeof(prefix) - 1;
	if (strncmp(url, prefix, pl) != 0 || strncmp(url + pl, rv->token, TOKEN_LEN) != 0 ||
	    url[pl + TOKEN_LEN] != '/')
		return -1;
	const char *p = url + pl + TOKEN_LEN + 1;
	if (*p < '0' || *p > '9')
		return -1;
	uint64_t v = 0;
	for (; *p; p++) {
		if (*p < '0' || *p > '9' || v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (v >= rv->n)
		return -1;
	return (int64_t)v;
}

static bool signature_ok(const struct recv *rv, struct MHD_Connection *c, const struct buf *body)
{
	const char *id = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "webhook-id");
	const char *ts = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "webhook-timestamp");
	const char *sig = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "webhook-signature");
	if (!id || !ts || !sig || *ts < '0' || *ts > '9')
		return false;
	errno = 0;
	char *end = NULL;
	long long t = strtoll(ts, &end, 10);
	if (errno != 0 || *end != '\0')
		return false;
	char want[SIGN_HEADER_MAX];
	if (sign_webhook(rv->key, id, t, buf_str(body), body->len, want, sizeof(want)) != SIGN_OK)
		return false;
	/* The header may list several space-separated signatures (key rotation). */
	size_t wl = strlen(want);
	for (const char *p = sig; *p;) {
		while (*p == ' ')
			p++;
		size_t l = strcspn(p, " ");
		if (l == wl && memcmp(p, want, wl) == 0)
			return true;
		p += l;
	}
	return false;
}

/* True when the callback body says what the local work says for request i;
 * its request_id goes to id. */
static bool body_ok(const struct recv *rv, uint64_t i, const struct buf *body, uint8_t id[16],
                    bool *has_id)
{
	bool ok = false;
	*has_id = false;
	struct json_tokener *tok = json_tokener_new();
	if (!tok)
		return false;
	struct json_object *j = json_tokener_parse_ex(tok, buf_str(body), (int)body->len);
	if (!j || json_tokener_get_error(tok) != json_tokener_success ||
	    !json_object_is_type(j, json_type_object))
		goto done;
	struct json_object *v = NULL;
	if (json_object_object_get_ex(j, "request_id", &v) &&
	    json_object_is_type(v, json_type_string))
		*has_id = uuid_bytes(json_object_get_string(v), id);
	if (!*has_id)
		goto done;
	if (!json_object_object_get_ex(j, "status", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    strcmp(json_object_get_string(v), "completed") != 0)
		goto done;
	if (!json_object_object_get_ex(j, "iterations", &v) ||
	    !json_object_is_type(v, json_type_int) ||
	    json_object_get_int64(v) != expect_iterations(rv->ex))
		goto done;
	if (!json_object_object_get_ex(j, "result", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    strcmp(json_object_get_string(v), expect_result(rv->ex, expect_pick(rv->ex, i))) != 0)
		goto done;
	ok = true;
done:
	json_object_put(j);
	json_tokener_free(tok);
	return ok;
}

static void record(struct recv *rv, uint64_t i, int64_t arrival_ns, bool ok, bool sig_ok,
                   const uint8_t id[16], bool has_id)
{
	pthread_mutex_lock(&rv->mu);
	struct slot *s = &rv->slots[i];
	if (s->cb_count == 0) {
		s->cb_ns = arrival_ns;
		rv->arrivals[rv->n_arrivals++] = (uint32_t)i;
		if (has_id) {
			memcpy(s->cb_id, id, 16);
			s->flags |= F_HAS_ID;
		}
		if (s->accept_rank) {
			rv->matched++;
			if (rv->matched >= rv->accepted)
				pthread_cond_broadcast(&rv->cv);
		}
	} else if (!has_id || !(s->flags & F_HAS_ID) || memcmp(s->cb_id, id, 16) != 0) {
		ok = false;
	}
	if (s->cb_count < UINT16_MAX)
		s->cb_count++;
	if (!ok)
		s->flags |= F_WRONG;
	if (!sig_ok)
		s->flags |= F_BADSIG;
	pthread_mutex_unlock(&rv->mu);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
	(void)version;
	struct recv *rv = cls;
	struct conn *cc = *con_cls;
	if (!cc) {
		cc = cz_calloc(1, sizeof(*cc));
		if (!cc)
			return MHD_NO;
		cc->arrival_ns = ids_mono_ns();
		buf_init(&cc->body, RECV_BODY_MAX);
		*con_cls = cc;
		return MHD_YES;
	}
	if (*upload_size) {
		buf_append(&cc->body, upload, *upload_size);
		*upload_size = 0;
		return MHD_YES;
	}
	if (strcmp(method, "POST") != 0)
		return MHD_queue_response(c, MHD_HTTP_METHOD_NOT_ALLOWED, rv->r_405);
	int64_t i = parse_path(rv, url);
	if (i < 0) {
		pthread_mutex_lock(&rv->mu);
		rv->bad_path++;
		pthread_mutex_unlock(&rv->mu);
		return MHD_queue_response(c, MHD_HTTP_NOT_FOUND, rv->r_404);
	}
	uint8_t id[16] = {0};
	bool has_id = false;
	bool whole = cc->body.err == BUF_OK;
	bool ok = whole && body_ok(rv, (uint64_t)i, &cc->body, id, &has_id);
	bool sig_ok = !rv->key || (whole && signature_ok(rv, c, &cc->body));
	record(rv, (uint64_t)i, cc->arrival_ns, ok, sig_ok, id, has_id);
	if (!whole)
		return MHD_queue_response(c, MHD_HTTP_CONTENT_TOO_LARGE, rv->r_413);
	return MHD_queue_response(c, MHD_HTTP_OK, rv->r_ok);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)c;
	(void)toe;
	struct conn *cc = *con_cls;
	if (cc) {
		buf_free(&cc->body);
		cz_free(cc);
		*con_cls = NULL;
	}
}

__attribute__((format(printf, 2, 0))) static void on_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char msg[512];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	size_t l = strlen(msg);
	while (l > 0 && (msg[l - 1] == '\n' || msg[l - 1] == '\r'))
		msg[--l] = '\0';
	log_event(L_WARN, "receiver.error", "msg=%s", log_q(msg));
}

static struct MHD_Response *fixed(const char *body)
{
	/* An iovec response points at persistent data and keeps it const. */
	const struct MHD_IoVec iov = {body, strlen(body)};
	return MHD_create_response_from_iovec(&iov, 1, NULL, NULL);
}

static void set_base_url(struct recv *rv, const char *host, int port)
{
	bool v6 = strchr(host, ':') != NULL && host[0] != '[';
	snprintf(rv->base_url, sizeof(rv->base_url), "http://%s%s%s:%d/callback/%s", v6 ? "[" : "",
	         host, v6 ? "]" : "", port, rv->token);
}

struct recv *recv_new(const struct recv_config *cfg, enum recv_err *err)
{
	struct recv *rv = cz_calloc(1, sizeof(*rv));
	if (!rv) {
		*err = RECV_NOMEM;
		return NULL;
	}
	enum recv_err rc = RECV_OK;
	rv->ex = cfg->ex;
	rv->n = cfg->n;
	make_token(rv->token);
	set_base_url(rv, cfg->host, cfg->port);
	pthread_condattr_t ca;
	if (pthread_condattr_init(&ca) != 0) {
		rc = RECV_THREAD;
		goto fail;
	}
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	int e1 = pthread_mutex_init(&rv->mu, NULL);
	int e2 = pthread_cond_init(&rv->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (e1 != 0 || e2 != 0) {
		if (e1 == 0)
			pthread_mutex_destroy(&rv->mu);
		if (e2 == 0)
			pthread_cond_destroy(&rv->cv);
		rc = RECV_THREAD;
		goto fail;
	}
	rv->sync_ready = true;
	if (cfg->secret) {
		enum sign_err se = SIGN_OK;
		rv->key = sign_key_new(cfg->secret, &se, NULL, 0);
		if (!rv->key) {
			rc = se == SIGN_NOMEM ? RECV_NOMEM : RECV_BAD_SECRET;
			goto fail;
		}
	}
	rv->slots = cz_calloc((size_t)cfg->n, sizeof(*rv->slots));
	rv->arrivals = cz_calloc((size_t)cfg->n, sizeof(*rv->arrivals));
	rv->r_ok = fixed("{\"ok\":true}\n");
	rv->r_404 = fixed("{\"detail\":\"not a callback of this run\"}\n");
	rv->r_405 = fixed("{\"detail\":\"POST only\"}\n");
	rv->r_413 = fixed("{\"detail\":\"body too large\"}\n");
	if (!rv->slots || !rv->arrivals || !rv->r_ok || !rv->r_404 || !rv->r_405 || !rv->r_413) {
		rc = RECV_NOMEM;
		goto fail;
	}

	/* Bind to the callback host when it is an address; a name may resolve
	 * to anything, so then listen everywhere. */
	char host[64];
	size_t hl = strlen(cfg->host);
	if (hl >= 2 && cfg->host[0] == '[' && cfg->host[hl - 1] == ']' && hl - 2 < sizeof(host)) {
		memcpy(host, cfg->host + 1, hl - 2);
		host[hl - 2] = '\0';
	} else {
		snprintf(host, sizeof(host), "%s", cfg->host);
	}
	struct sockaddr_in a4;
	struct sockaddr_in6 a6;
	memset(&a4, 0, sizeof(a4));
	memset(&a6, 0, sizeof(a6));
	const struct sockaddr *sa = NULL;
	unsigned int flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ITC | MHD_USE_ERROR_LOG;
	if (inet_pton(AF_INET, host, &a4.sin_addr) == 1) {
		a4.sin_family = AF_INET;
		a4.sin_port = htons((uint16_t)cfg->port);
		sa = (const struct sockaddr *)&a4;
	} else if (inet_pton(AF_INET6, host, &a6.sin6_addr) == 1) {
		a6.sin6_family = AF_INET6;
		a6.sin6_port = htons((uint16_t)cfg->port);
		sa = (const struct sockaddr *)&a6;
		flags |= MHD_USE_IPv6;
	} else {
		flags |= MHD_USE_DUAL_STACK;
	}
	/* The logger must be the first option, or early messages bypass it. */
	if (sa)
		rv->d = MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL, on_request, rv,
		                         MHD_OPTION_EXTERNAL_LOGGER, on_log, NULL,
		                         MHD_OPTION_SOCK_ADDR, sa, MHD_OPTION_NOTIFY_COMPLETED,
		                         on_completed, NULL, MHD_OPTION_CONNECTION_TIMEOUT, 30U,
		                         MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024U, MHD_OPTION_END);
	else
		rv->d = MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL, on_request, rv,
		                         MHD_OPTION_EXTERNAL_LOGGER, on_log, NULL,
		                         MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
		                         MHD_OPTION_CONNECTION_TIMEOUT, 30U,
		                         MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024U, MHD_OPTION_END);
	if (!rv->d) {
		rc = RECV_LISTEN;
		goto fail;
	}
	*err = RECV_OK;
	return rv;
fail:
	recv_free(rv);
	*err = rc;
	return NULL;
}

void recv_free(struct recv *rv)
{
	if (!rv)
		return;
	if (rv->d)
		MHD_stop_daemon(rv->d);
	if (rv->r_ok)
		MHD_destroy_response(rv->r_ok);
	if (rv->r_404)
		MHD_destroy_response(rv->r_404);
	if (rv->r_405)
		MHD_destroy_response(rv->r_405);
	if (rv->r_413)
		MHD_destroy_response(rv->r_413);
	if (rv->sync_ready) {
		pthread_mutex_destroy(&rv->mu);
		pthread_cond_destroy(&rv->cv);
	}
	sign_key_free(rv->key);
	cz_free(rv->slots);
	cz_free(rv->arrivals);
	cz_free(rv);
}

void recv_callback_url(const struct recv *rv, uint64_t i, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s/%llu", rv->base_url, (unsigned long long)i);
}

void recv_note_start(struct recv *rv, uint64_t i, int64_t start_ns)
{
	pthread_mutex_lock(&rv->mu);
	rv->slots[i].start_ns = start_ns;
	pthread_mutex_unlock(&rv->mu);
}

void recv_note_accept(struct recv *rv, uint64_t i, const char *request_id)
{
	uint8_t id[16];
	bool valid = uuid_bytes(request_id, id);
	pthread_mutex_lock(&rv->mu);
	struct slot *s = &rv->slots[i];
	if (s->accept_rank == 0) {
		s->accept_rank = ++rv->next_rank;
		if (valid)
			memcpy(s->id, id, 16);
		rv->accepted++;
		if (s->cb_count > 0)
			rv->matched++;
	}
	pthread_mutex_unlock(&rv->mu);
}

bool recv_wait(struct recv *rv, int64_t until_ns)
{
	struct timespec ts = {.tv_sec = (time_t)(until_ns / 1000000000),
	                      .tv_nsec = (long)(until_ns % 1000000000)};
	pthread_mutex_lock(&rv->mu);
	while (rv->matched < rv->accepted) {
		int e = pthread_cond_timedwait(&rv->cv, &rv->mu, &ts);
		if (e == ETIMEDOUT)
			break;
	}
	bool done = rv->matched >= rv->accepted;
	pthread_mutex_unlock(&rv->mu);
	return done;
}

void recv_counts(struct recv *rv, uint64_t *received, uint64_t *accepted)
{
	pthread_mutex_lock(&rv->mu);
	*received = rv->matched;
	*accepted = rv->accepted;
	pthread_mutex_unlock(&rv->mu);
}

void recv_stop(struct recv *rv)
{
	if (rv->d) {
		MHD_stop_daemon(rv->d);
		rv->d = NULL;
	}
}

uint64_t recv_stray(struct recv *rv)
{
	pthread_mutex_lock(&rv->mu);
	uint64_t n = rv->bad_path;
	pthread_mutex_unlock(&rv->mu);
	return n;
}

void recv_summarize(struct recv *rv, uint64_t first, uint64_t n, struct result_callbacks *cb,
                    struct hist *latency, struct timeline *tl)
{
	memset(cb, 0, sizeof(*cb));
	cb->checked_signatures = rv->key != NULL;
	uint64_t end = first + n > rv->n ? rv->n : first + n;
	int64_t first_start = INT64_MAX, last_cb = INT64_MIN;
	pthread_mutex_lock(&rv->mu);
	for (uint64_t i = first; i < end; i++) {
		const struct slot *s = &rv->slots[i];
		if (!s->accept_rank) {
			cb->unexpected += s->cb_count;
			continue;
		}
		cb->expected++;
		if (s->cb_count == 0)
			continue;
		cb->received++;
		if (s->cb_count > 1)
			cb->duplicated++;
		if ((s->flags & F_WRONG) || !(s->flags & F_HAS_ID) ||
		    memcmp(s->id, s->cb_id, 16) != 0)
			cb->wrong_result++;
		if (s->flags & F_BADSIG)
			cb->bad_signature++;
		hist_record(latency, (s->cb_ns - s->start_ns) / 1000);
		if (s->start_ns < first_start)
			first_start = s->start_ns;
		if (s->cb_ns > last_cb)
			last_cb = s->cb_ns;
		if (tl)
			tl_callback(tl, s->cb_ns);
	}
	cb->missing = cb->expected - cb->received;
	if (cb->received)
		cb->span_s = (double)(last_cb - first_start) / 1e9;
	uint32_t max_rank = 0;
	for (uint64_t k = 0; k < rv->n_arrivals; k++) {
		uint64_t i = rv->arrivals[k];
		uint32_t r = rv->slots[i].accept_rank;
		if (r == 0 || i < first || i >= end)
			continue;
		if (r < max_rank)
			cb->out_of_order++;
		else
			max_rank = r;
	}
	pthread_mutex_unlock(&rv->mu);
}
