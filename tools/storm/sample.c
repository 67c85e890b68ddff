/*
 * sample: the /healthz and /metrics sampler thread (see sample.h).
 */
#include "sample.h"

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "alloc.h"
#include "buf.h"
#include "ids.h"

#define BODY_MAX (256 * 1024)
#define URL_MAX  2048

struct sample {
	pthread_t tid;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	CURL *easy;
	struct timeline *tl;
	int64_t period_ns;
	bool metrics; /* /metrics answered 200 the first time */
	char health_url[URL_MAX];
	char metrics_url[URL_MAX];
	struct buf body;
};

const char *sample_strerror(enum sample_err err)
{
	switch (err) {
	case SAMPLE_OK:
		return "ok";
	case SAMPLE_NOMEM:
		return "out of memory";
	case SAMPLE_THREAD:
		return "cannot start the server sampler";
	}
	return "unknown error";
}

static int64_t int_member(struct json_object *o, const char *name)
{
	struct json_object *v = NULL;
	if (!o || !json_object_object_get_ex(o, name, &v) || !json_object_is_type(v, json_type_int))
		return -1;
	return json_object_get_int64(v);
}

bool sample_parse_health(const char *body, size_t len, struct tl_server *out)
{
	*out = tl_server_none();
	struct json_tokener *tok = json_tokener_new();
	if (!tok)
		return false;
	struct json_object *j = json_tokener_parse_ex(tok, body, (int)len);
	size_t end = json_tokener_get_parse_end(tok);
	while (end < len && (body[end] == '\n' || body[end] == '\r' || body[end] == ' '))
		end++;
	bool ok = j && json_tokener_get_error(tok) == json_tokener_success && end == len &&
	          json_object_is_type(j, json_type_object);
	json_tokener_free(tok);
	if (ok) {
		struct json_object *d = NULL;
		out->sampled = true;
		out->queue_depth = int_member(j, "queue_depth");
		out->active_workers = int_member(j, "active_workers");
		if (json_object_object_get_ex(j, "deliverer", &d))
			out->inflight = int_member(d, "inflight");
	}
	json_object_put(j);
	return ok;
}

/* The value of an unlabelled sample line "name value", or NAN. */
static double metric(const char *body, const char *name)
{
	size_t nl = strlen(name);
	for (const char *p = body; p && *p;) {
		if (strncmp(p, name, nl) == 0 && p[nl] == ' ') {
			char *end = NULL;
			errno = 0;
			double v = strtod(p + nl + 1, &end);
			if (errno == 0 && end != p + nl + 1 && isfinite(v))
				return v;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	return NAN;
}

void sample_parse_metrics(const char *body, struct tl_server *out)
{
	double age = metric(body, "consuma_oldest_pending_age_seconds");
	if (!isnan(age)) {
		out->oldest_age_s = age;
		out->sampled = true;
	}
	double depth = metric(body, "consuma_queue_depth");
	if (out->queue_depth < 0 && !isnan(depth)) {
		out->queue_depth = (int64_t)depth;
		out->sampled = true;
	}
}

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct buf *b = userdata;
	size_t n = size * nmemb;
	return buf_append(b, ptr, n) == BUF_OK ? n : 0;
}

/* GET url into s->body; true on 200. */
static bool get(struct sample *s, const char *url)
{
	buf_reset(&s->body);
	curl_easy_setopt(s->easy, CURLOPT_URL, url);
	long status = 0;
	if (curl_easy_perform(s->easy) != CURLE_OK)
		return false;
	curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
	/* a degraded /healthz answers 503 with the same body */
	return status == 200 || (status == 503 && url == s->health_url);
}

static void sample_once(struct sample *s, int tick)
{
	int64_t at = ids_mono_ns();
	struct tl_server sv = tl_server_none();
	if (get(s, s->health_url))
		sample_parse_health(buf_str(&s->body), s->body.len, &sv);
	if (tick == 0)
		s->metrics = get(s, s->metrics_url);
	else if (s->metrics && !get(s, s->metrics_url))
		buf_reset(&s->body);
	if (s->metrics)
		sample_parse_metrics(buf_str(&s->body), &sv);
	if (sv.sampled)
		tl_server(s->tl, at, &sv);
}

static void *sample_main(void *arg)
{
	struct sample *s = arg;
	int64_t next = ids_mono_ns();
	for (int tick = 0;; tick++) {
		sample_once(s, tick);
		next += s->period_ns;
		struct timespec ts = {.tv_sec = (time_t)(next / 1000000000),
		                      .tv_nsec = (long)(next % 1000000000)};
		pthread_mutex_lock(&s->mu);
		while (!s->stop && ids_mono_ns() < next)
			if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT)
				break;
		bool stop = s->stop;
		pthread_mutex_unlock(&s->mu);
		if (stop)
			break;
		if (ids_mono_ns() > next + s->period_ns)
			next = ids_mono_ns(); /* a slow server: skip, do not catch up */
	}
	return NULL;
}

static void base_url(char *out, size_t len, const char *server_url, const char *route)
{
	size_t l = strlen(server_url);
	while (l > 0 && server_url[l - 1] == '/')
		l--;
	snprintf(out, len, "%.*s/%s", (int)l, server_url, route);
}

struct sample *sample_start(const char *server_url, double interval_s, const struct timeline *like,
                            enum sample_err *err)
{
	struct sample *s = cz_calloc(1, sizeof(*s));
	if (!s) {
		*err = SAMPLE_NOMEM;
		return NULL;
	}
	buf_init(&s->body, BODY_MAX);
	s->period_ns = (int64_t)(interval_s * 1e9);
	base_url(s->health_url, sizeof(s->health_url), server_url, "healthz");
	base_url(s->metrics_url, sizeof(s->metrics_url), server_url, "metrics");
	s->tl = tl_new_like(like);
	s->easy = curl_easy_init();
	if (!s->tl || !s->easy) {
		*err = s->tl ? SAMPLE_THREAD : SAMPLE_NOMEM;
		goto fail;
	}
	long timeout_ms = (long)(interval_s * 1000) < 2000 ? (long)(interval_s * 1000) : 2000;
	if (timeout_ms < 200)
		timeout_ms = 200;
	curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, &s->body);
	curl_easy_setopt(s->easy, CURLOPT_TIMEOUT_MS, timeout_ms);
	curl_easy_setopt(s->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(s->easy, CURLOPT_PROXY, "");
	curl_easy_setopt(s->easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(s->easy, CURLOPT_USERAGENT, "consuma-storm/" CONSUMA_VERSION);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	int e1 = pthread_mutex_init(&s->mu, NULL);
	int e2 = pthread_cond_init(&s->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (e1 != 0 || e2 != 0 || pthread_create(&s->tid, NULL, sample_main, s) != 0) {
		if (e1 == 0)
			pthread_mutex_destroy(&s->mu);
		if (e2 == 0)
			pthread_cond_destroy(&s->cv);
		*err = SAMPLE_THREAD;
		goto fail;
	}
	*err = SAMPLE_OK;
	return s;
fail:
	if (s->easy)
		curl_easy_cleanup(s->easy);
	tl_free(s->tl);
	buf_free(&s->body);
	cz_free(s);
	return NULL;
}

void sample_stop(struct sample *s, struct timeline *into)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->stop = true;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
	pthread_join(s->tid, NULL);
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	if (into)
		tl_merge(into, s->tl);
	curl_easy_cleanup(s->easy);
	tl_free(s->tl);
	buf_free(&s->body);
	cz_free(s);
}
