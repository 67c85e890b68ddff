/*
 * djob: one claimed job on its way through the deliverer. It belongs to one
 * thread at a time: the claim loop makes it, the compute pool fills in the
 * result and the checked destination, the delivery thread sends it and
 * frees it. The store_job inside carries the lease token that fences every
 * write.
 */
#ifndef CONSUMA_DELIVERER_DJOB_H
#define CONSUMA_DELIVERER_DJOB_H

#include <stdbool.h>
#include <stdint.h>
#include <curl/curl.h>

#include "buf.h"
#include "store.h"
#include "retry.h"
#include "ssrf.h"

/* How far the pool got. What the destination check found is the policy's
 * own verdict (dest), not a copy of it. */
enum djob_prep {
	DJOB_CHECKED = 0, /* computed, destination checked: dest says whether to send */
	DJOB_COMPUTE_ERR, /* the work function failed (memory, OpenSSL) */
	DJOB_ABANDONED,   /* shutdown interrupted the work */
};

struct host;

struct djob {
	struct store_job q;
	bool stored; /* the result is in the database */
	enum djob_prep prep;
	enum ssrf_verdict dest;    /* DJOB_CHECKED: ssrf_check_url's verdict */
	char why[SSRF_REASON_MAX]; /* the pool's reason when not sendable */
	struct ssrf_target target;

	/* delivery thread only */
	struct djob *prev, *next; /* the list the job is on */
	int on;                   /* which list (deliver.c: a job is on one at most), 0 none */
	struct host *host;
	uint64_t path;      /* hosts_path_key of the callback URL */
	bool suspect;       /* as started: tried before, or its path is failing */
	int64_t number;     /* the attempt being made */
	int64_t started_at; /* epoch ms */
	int64_t started_ns; /* monotonic */
	CURL *easy;
	struct curl_slist *headers;
	struct curl_slist *resolve;
	struct buf body;
	size_t resp_bytes;
	size_t resp_max;
	bool resp_cut;
	char errbuf[CURL_ERROR_SIZE];
	struct retry_decision decision; /* once the attempt ended */
	int http_status;
	double duration_ms;
	int64_t due_at; /* for a hand-back */
	bool fenced;    /* set by a flush when the lease was lost */
	bool nosend;    /* the attempt ended before anything was sent */
};

/* A job holding q (moved in: q's strings now belong to the job). NULL when
 * memory ran out (q untouched). */
struct djob *djob_new(struct store_job *q);
/* Frees j and what it owns (the easy handle is the caller's to release
 * first). NULL is a no-op. */
void djob_free(struct djob *j);

#endif
