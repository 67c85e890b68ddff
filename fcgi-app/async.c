/*
 * async: POST /async (see async.h).
 *
 * Order of checks, cheapest first, so that nothing a client can make slow
 * runs before what can answer without it:
 *   1. body (413/415/422), callback URL syntax (400), Idempotency-Key (422);
 *   2. a repeated Idempotency-Key (store_find_replay, a read): the first
 *      request's id and status (202), or 422 for another body, without
 *      resolving anything. Safe for the SSRF guard: a replay creates no job
 *      and sends nothing anywhere; the job it names passed the address
 *      check when it was accepted (no row is ever written without one) and
 *      is checked again at delivery. A key that is not there (or expired)
 *      goes on, and the insert transaction still decides (a concurrent
 *      first request is replayed there, as before);
 *   3. the callback host's lookup, behind the lookups-in-flight gate
 *      (app->lookups, lib/resolve.h): a name server that answers slowly
 *      holds this worker thread for up to CONSUMA_DNS_TIMEOUT_MS, so only
 *      part of the process's threads may wait on lookups, and one client
 *      only a share of that part; beyond either bound the answer is 503 at
 *      once, Retry-After = the DNS timeout. An IP literal needs no lookup
 *      and no place;
 *   4. the address policy on every address (400), then one store
 *      transaction that enforces the intake bounds and the key.
 * The answers to a refused job:
 *   queue full                 503 + Retry-After (the service is saturated)
 *   client holds its share     429 + Retry-After (this client is sending too
 *                              much; others are still served)
 *   callback host saturated    429 + Retry-After, naming the host
 *   lookups in flight          503 + Retry-After, naming callback_url
 *   key reused, other body     422
 * The doorbell is rung only after the response has been flushed, so the
 * client's 202 never waits on the deliverer. The job goes to the group
 * committer (lib/store_commit.c) and the exchange is parked
 * (fcgi-app/park.h): the worker thread goes on with the next connection,
 * and the answer is given when the committer hands the outcome back, once
 * the job is durable; the 202 goes out only after that. A job that cannot
 * be parked (no committer, the park full, the body not read to its end)
 * waits for store_insert_job on its thread, with the same outcome.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "alloc.h"
#include "async.h"
#include "auth.h"
#include "park.h"
#include "request.h"
#include "resolve.h"
#include "scrape.h"
#include "ssrf.h"
#include "store.h"
#include "url.h"
#include "work.h"

#define KEY_MAX 255

bool async_idempotency_key_valid(const char *key)
{
	size_t n = 0;

	if (key == NULL)
		return false;
	for (; key[n] != '\0'; n++) {
		unsigned char c = (unsigned char)key[n];

		if (c < 0x20 || c > 0x7e || n >= KEY_MAX)
			return false;
	}
	return n >= 1;
}

static int64_t client_share(const struct config *cfg)
{
	double share = floor(cfg->max_queue_share * (double)cfg->max_queue_size);

	if (cfg->max_queue_size <= 0)
		return 0;
	if (share < 1.0)
		return 1;
	return (int64_t)share;
}

static void refused(struct http_exchange *x, const struct job_result *res,
                    const struct url_parts *parts)
{
	struct app *app = x->app;
	int64_t retry =
	    http_retry_after(x, limits_queue_retry_after(app->limits, x->store, res->queue_depth));

	scrape_count_refusal(app, res->refusal);
	switch (res->refusal) {
	case JOB_QUEUE_FULL:
		http_error(x, 503,
		           "queue is full (%lld jobs waiting, bound %lld); retry after %lld s",
		           (long long)res->queue_depth, (long long)app->cfg.max_queue_size,
		           (long long)retry);
		return;
	case JOB_CLIENT_SHARE:
		http_error(x, 429,
		           "client %s holds its share of the queue (%lld unfinished jobs); retry "
		           "after %lld s",
		           x->client, (long long)client_share(&app->cfg), (long long)retry);
		return;
	case JOB_HOST_PENDING:
		http_error(x, 429,
		           "callback_url: host %s has too many unfinished jobs (bound %lld); retry "
		           "after %lld s",
		           parts->host, (long long)app->cfg.max_pending_per_host, (long long)retry);
		return;
	case JOB_ACCEPTED:
		break;
	}
	http_internal_error(x, "store_insert_job", "STORE_REFUSED without a refusal");
}

static void key_conflict(struct http_exchange *x, const struct job_result *res)
{
	http_error(x, 422, "Idempotency-Key: already used with a different body (request_id %s)",
	           res->id[0] != '\0' ? res->id : "-");
}

static void url_refused(struct http_exchange *x, const char *why)
{
	http_error(x, 400, "%s%s",
	           strncmp(why, "callback_url: ", 14) == 0 ? "" : "callback_url: ", why);
}

/* A place at the lookups-in-flight gate when host is a name (a literal
 * needs none: *entered stays false); false when refused, answered 503. */
static bool lookup_admitted(struct http_exchange *x, const struct url_parts *parts, bool *entered)
{
	struct resolve_gate *g = x->app->lookups;
	enum resolve_gate_verdict v;
	long long retry = (x->app->cfg.dns_timeout_ms + 999) / 1000;

	*entered = false;
	if (parts->host_is_ip)
		return true;
	v = resolve_gate_enter(g, x->client);
	if (v == RESOLVE_GATE_PASS) {
		*entered = true;
		return true;
	}
	if (retry < 1)
		retry = 1;
	http_header(x, "Retry-After", "%lld", retry);
	http_error(x, 503, "callback_url: no lookup of %s now: %s (bound %d); retry after %lld s",
	           parts->host, resolve_gate_strerror(v),
	           v == RESOLVE_GATE_CLIENT ? resolve_gate_max_per_client(g)
	                                    : resolve_gate_max_inflight(g),
	           retry);
	return false;
}

/* What a job request holds from its checks to its answer. */
struct async_job {
	struct job_request job;
	struct job_insert ins;
	struct job_result res;
	struct url_parts parts;
	char body_hash[WORK_HEX_LEN + 1];
	char pending_keys[SSRF_KEYS_MAX];
	char *body;
	enum store_err err; /* the store's outcome */
	char msg[256];      /* its message, for a parked job */
};

static void async_job_free(struct async_job *a)
{
	request_free(&a->job);
	cz_free(a->body);
	cz_free(a);
}

/* The answer, once the store's outcome is known. */
static void answer(struct http_exchange *x, struct async_job *a)
{
	struct app *app = x->app;
	struct job_result *res = &a->res;

	if (a->err == STORE_CONFLICT) {
		key_conflict(x, res);
		return;
	}
	if (a->err == STORE_REFUSED) {
		refused(x, res, &a->parts);
		return;
	}
	if (a->err != STORE_OK) {
		http_store_failed_msg(x, a->err, "store_insert_job",
		                      a->msg[0] != '\0' ? a->msg : store_errmsg(x->store));
		return;
	}
	if (res->replayed) {
		res->id[sizeof(res->id) - 1] = '\0';
		memcpy(x->request_id, res->id, sizeof(x->request_id));
	}

	/* written as it goes out, not built with json-c and serialized (that
	 * cost ~3,800 instructions more a 202: tools/bench.sh fcgi) */
	const char *status = res->replayed ? res->status : "accepted";
	const char *message = res->replayed ? "replayed: this Idempotency-Key was already used; "
	                                      "this is the first request's id and current status"
	                                    : "accepted; the result will be POSTed to callback_url";
	struct buf body;
	buf_init(&body, 1024);
	buf_puts(&body, "{\"request_id\":");
	buf_json_string(&body, x->request_id, strlen(x->request_id));
	buf_puts(&body, ",\"status\":");
	buf_json_string(&body, status, strlen(status));
	buf_puts(&body, ",\"message\":");
	buf_json_string(&body, message, strlen(message));
	if (buf_putc(&body, '}') != BUF_OK) {
		http_internal_error(x, "response", "out of memory");
		buf_free(&body);
		return;
	}
	http_header(x, "Location", "/requests/%s", x->request_id);
	if (res->replayed)
		http_header(x, "Idempotency-Replayed", "true");
	/* committed: wake the deliverer even if the client has gone */
	x->ring_doorbell = !res->replayed;
	x->ring_batch = res->batch;
	metrics_count(app->metrics, METRICS_JOBS_ACCEPTED, res->replayed ? 0 : 1);
	http_send_text(x, 202, "application/json", buf_str(&body), body.len);
	buf_free(&body);
}

/* The committer's hand-back of a parked job (its thread: only note the
 * outcome and pass the exchange on). */
static void stored(void *arg, enum store_err err, const char *msg)
{
	struct http_exchange *x = arg;
	struct async_job *a = x->park_state;

	a->err = err;
	snprintf(a->msg, sizeof a->msg, "%s", msg);
	park_release(x->app->park, x);
}

/* router_resume of a parked job, on the worker that took it. */
static void resume(struct http_exchange *x)
{
	struct async_job *a = x->park_state;

	x->park_state = NULL;
	answer(x, a);
	async_job_free(a);
}

/* Queues the job for the committer and parks the exchange (park.h), when
 * it may wait without its thread: the body read to its end (so that the
 * answer's close needs no wait), a place under the park's bound, a store
 * with a committer. False: nothing was queued, wait here. */
static bool park(struct http_exchange *x, struct async_job *a)
{
	struct park *p = x->app->park;

	if (FCGX_HasSeenEOF(x->fr->in) != EOF || !park_enter(p))
		return false;
	x->park_state = a;
	x->resume = resume;
	x->parked = true;
	park_hold(x);
	if (store_insert_job_then(x->store, &a->ins, &a->res, stored, x))
		return true;
	x->parked = false;
	x->park_state = NULL;
	park_leave(p);
	return false;
}

void async_handle(struct http_exchange *x, const char *tail)
{
	struct app *app = x->app;
	struct async_job *a = cz_calloc(1, sizeof *a);
	struct job_insert *ins;
	struct ssrf_target target;
	enum ssrf_verdict verdict;
	enum url_err uerr;
	enum work_err werr;
	enum store_err serr;
	char why[256] = "";
	size_t len = 0;
	const char *key;
	bool entered;

	(void)tail;
	if (a == NULL) {
		http_internal_error(x, "async", "out of memory");
		return;
	}
	ins = &a->ins;
	ids_uuidv7(x->request_id);
	if (!http_read_job(x, REQUEST_ASYNC, &a->job, &a->body, &len))
		goto out;
	/* the URL's syntax, before any lookup (ssrf_check_parsed takes the
	 * parts on from here) */
	uerr = url_parse(a->job.callback_url, &a->parts, why, sizeof(why));
	if (uerr == URL_NOMEM) {
		http_internal_error(x, "url_parse", "out of memory");
		goto out;
	}
	if (uerr != URL_OK) {
		url_refused(x, why);
		goto out;
	}
	key = http_param(x, "HTTP_IDEMPOTENCY_KEY");
	if (key != NULL && !async_idempotency_key_valid(key)) {
		http_error(x, 422, "Idempotency-Key: must be 1..%d printable ASCII characters",
		           KEY_MAX);
		goto out;
	}
	ins->client_addr = x->client; /* "key:<client>" with an API key: share, key per client */
	ins->idempotency_key = key;
	ins->created_at = ids_now_ms();
	ins->idempotency_ttl_ms = app->cfg.idempotency_ttl_ms;
	/* The body's hash is what a replay of the key compares: without a key
	 * there is no replay, and the row keeps no hash. */
	if (key != NULL) {
		werr = work_sha256_iter(a->body, len, 1, a->body_hash);
		if (werr != WORK_OK) {
			http_internal_error(x, "body_hash", work_strerror(werr));
			goto out;
		}
		ins->body_hash = a->body_hash;
		serr = store_find_replay(x->store, ins, &a->res);
		if (serr == STORE_OK || serr == STORE_CONFLICT) {
			a->err = serr;
			goto answer;
		}
		if (serr != STORE_NOTFOUND) {
			http_store_failed(x, serr, "store_find_replay");
			goto out;
		}
	}

	/* Address policy: every address the host resolves to (within
	 * CONSUMA_DNS_TIMEOUT_MS) must pass. */
	if (!lookup_admitted(x, &a->parts, &entered))
		goto out;
	verdict = ssrf_check_parsed(app->ssrf, &a->parts, &target, why, sizeof(why));
	if (entered)
		resolve_gate_leave(app->lookups, x->client);
	if (verdict == SSRF_NOMEM) {
		http_internal_error(x, "ssrf_check_parsed", "out of memory");
		goto out;
	}
	if (verdict != SSRF_ALLOW) {
		url_refused(x, why);
		goto out;
	}
	a->parts = target.url;

	ins->id = x->request_id;
	ins->input_data = a->job.input_data;
	ins->iterations = a->job.iterations;
	ins->callback_url = a->job.callback_url;
	ins->callback_host = a->parts.host;
	/* the bound per destination counts addresses, not spellings */
	if (!ssrf_pending_keys(&target, a->pending_keys, sizeof(a->pending_keys))) {
		http_internal_error(x, "ssrf_pending_keys", "keys do not fit");
		goto out;
	}
	ins->pending_keys = a->pending_keys;
	ins->owner = auth_owner(x);
	ins->max_queue_size = app->cfg.max_queue_size;
	ins->max_client_pending = client_share(&app->cfg);
	ins->max_host_pending = app->cfg.max_pending_per_host;
	if (park(x, a))
		return; /* answered by resume, once the job's batch is durable */
	/* Durable (or refused, or failed: then never 202) when it returns. */
	a->err = store_insert_job(x->store, ins, &a->res);
answer:
	answer(x, a);
out:
	async_job_free(a);
}
