/*
 * store: the public entry points (see store.h for the contract). Each one
 * checks what is the same for every backend, then calls the backend's
 * function through s->ops (store_int.h). What is written once for both
 * backends lives here: the choice of backend, the error texts, the lease
 * owner and tokens, the claim key, freeing what reads return, and the
 * intake path without a committer (begin, job, commit, make durable).
 */
#include "store.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "alloc.h"
#include "ids.h"
#include "store_int.h"
#include "why.h"

const char *store_strerror(enum store_err err)
{
	switch (err) {
	case STORE_OK:
		return "ok";
	case STORE_NOMEM:
		return "out of memory";
	case STORE_BUSY:
		return "database busy";
	case STORE_IO:
		return "database error";
	case STORE_FULL:
		return "database out of space";
	case STORE_UNAVAILABLE:
		return "database unavailable";
	case STORE_NOTFOUND:
		return "not found";
	case STORE_CONFLICT:
		return "idempotency key reused with a different body";
	case STORE_REFUSED:
		return "intake bound reached";
	case STORE_FENCED:
		return "lease lost to another deliverer";
	case STORE_MIGRATION:
		return "schema migration failed";
	}
	return "unknown store error";
}

bool store_err_transient(enum store_err err)
{
	return err == STORE_BUSY || err == STORE_FULL || err == STORE_UNAVAILABLE;
}

bool store_target_is_url(const char *target)
{
	return target != NULL && (strncmp(target, "postgresql://", 13) == 0 ||
	                          strncmp(target, "postgres://", 11) == 0);
}

void store_set_msg(struct store *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	why_vset(s->msg, sizeof s->msg, fmt, ap);
	va_end(ap);
}

/* ---- open, close ------------------------------------------------------- */

static uint64_t random_token_base(void)
{
	uint64_t v = 0;
	if (getrandom(&v, sizeof v, GRND_NONBLOCK) != (ssize_t)sizeof v)
		v = (uint64_t)ids_mono_ns() * 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid();
	return (v >> 2) | 1; /* leaves room to count up inside a positive int64 */
}

int64_t store_next_token(struct store *s)
{
	s->token_next++;
	if (s->token_next >= (uint64_t)INT64_MAX)
		s->token_next = 1;
	return (int64_t)s->token_next;
}

struct store *store_open(const char *target, enum store_err *err, char *errmsg, size_t errlen)
{
	const struct store_ops *ops = &store_sqlite_ops;
	if (store_target_is_url(target)) {
#ifdef CONSUMA_HAVE_POSTGRES
		ops = &store_pg_ops;
#else
		if (err)
			*err = STORE_IO;
		if (errmsg && errlen)
			snprintf(errmsg, errlen, "this build has no PostgreSQL backend (libpq)");
		return NULL;
#endif
	}
	struct store *s = ops->open(target, err, errmsg, errlen);
	if (s) {
		s->ops = ops;
		s->token_next = random_token_base();
	}
	return s;
}

void store_close(struct store *s)
{
	if (s)
		s->ops->close(s);
}

const char *store_errmsg(struct store *s)
{
	if (!s)
		return "no database connection";
	return s->msg[0] ? s->msg : s->ops->errmsg(s);
}

const char *store_backend(const struct store *s)
{
	return s ? s->ops->name : "none";
}

/* ---- transactions ------------------------------------------------------ */

enum store_err store_begin(struct store *s)
{
	s->msg[0] = '\0';
	return s->ops->begin(s);
}

enum store_err store_commit(struct store *s)
{
	return s->ops->commit(s);
}

void store_rollback(struct store *s)
{
	if (s)
		s->ops->rollback(s);
}

/* ---- writes ------------------------------------------------------------ */

enum store_err store_insert_sync(struct store *s, const struct sync_record *r)
{
	s->msg[0] = '\0';
	if (s->committer) {
		enum store_err err = store_committer_log(s->committer, r);
		if (err != STORE_OK)
			store_set_msg(s, "the store's committer has stopped");
		return err;
	}
	bool own = !s->ops->in_tx(s); /* else: the caller's transaction */
	enum store_err err = STORE_OK;
	if (own) {
		err = s->ops->begin(s);
		if (err != STORE_OK)
			return err;
	}
	err = s->ops->sync_record_in_tx(s, r);
	if (err == STORE_OK && own)
		err = s->ops->commit(s);
	if (own)
		s->ops->rollback(s);
	return err;
}

/* Without a committer: this connection commits the job, then makes it
 * durable. */
static enum store_err insert_job_here(struct store *s, const struct job_insert *job,
                                      struct job_result *res)
{
	enum store_err err;
	if (s->ops->in_tx(s)) {
		store_set_msg(s, "store_insert_job inside a transaction cannot commit durably");
		return STORE_IO;
	}
	err = s->ops->begin(s);
	if (err == STORE_OK)
		err = s->ops->job_in_tx(s, job, res);
	if (err == STORE_OK)
		err = s->ops->commit(s);
	s->ops->rollback(s); /* a replay's read, a refusal, or a failure */
	/* A replay is made durable too: the first request's process may not
	 * have synced yet. */
	if (err == STORE_OK)
		err = s->ops->make_durable(s);
	return err;
}

enum store_err store_insert_job(struct store *s, const struct job_insert *job,
                                struct job_result *res)
{
	s->msg[0] = '\0';
	if (s->committer)
		return store_committer_submit(s->committer, job, res, s->msg, sizeof s->msg);
	return insert_job_here(s, job, res);
}

bool store_insert_job_then(struct store *s, const struct job_insert *job, struct job_result *res,
                           store_done_fn done, void *arg)
{
	return s->committer && store_committer_submit_then(s->committer, job, res, done, arg);
}

enum store_err store_find_replay(struct store *s, const struct job_insert *job,
                                 struct job_result *res)
{
	enum store_err err;
	s->msg[0] = '\0';
	memset(res, 0, sizeof *res);
	if (!job->idempotency_key || !s->ops->find_replay)
		return STORE_NOTFOUND;
	if (s->ops->in_tx(s)) {
		store_set_msg(s, "store_find_replay inside a transaction");
		return STORE_IO;
	}
	err = s->ops->find_replay(s, job, res);
	if (err == STORE_NOTFOUND)
		memset(res, 0, sizeof *res);
	/* the first request's process may not have made it durable yet: a
	 * replay promises what its 202 promised */
	if (err == STORE_OK)
		err = s->ops->make_durable(s);
	return err;
}

void store_use_committer(struct store *s, struct store_committer *c)
{
	s->committer = c;
}

/* ---- reads ------------------------------------------------------------- */

void store_request_clear(struct store_request *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_trace; i++) {
		cz_free(r->trace[i].error_class);
		cz_free(r->trace[i].error_message);
	}
	cz_free(r->trace);
	cz_free(r->input_data);
	cz_free(r->callback_url);
	cz_free(r->last_error);
	memset(r, 0, sizeof *r);
}

void store_page_clear(struct store_page *p)
{
	if (!p)
		return;
	cz_free(p->items);
	p->items = NULL;
	p->n = 0;
}

enum store_err store_get_request(struct store *s, const char *id, const char *owner,
                                 struct store_request *out)
{
	memset(out, 0, sizeof *out);
	s->msg[0] = '\0';
	enum store_err err = s->ops->get_request(s, id, owner, out);
	if (err != STORE_OK)
		store_request_clear(out);
	return err;
}

enum store_err store_list_requests(struct store *s, const struct list_query *q,
                                   struct store_page *out)
{
	struct list_query clamped = *q;
	clamped.limit = q->limit < 1 ? 1 : q->limit > STORE_LIST_MAX ? STORE_LIST_MAX : q->limit;
	clamped.offset = q->offset < 0 ? 0 : q->offset;
	out->items = NULL;
	out->n = 0;
	s->msg[0] = '\0';
	enum store_err err = s->ops->list_requests(s, &clamped, out);
	if (err != STORE_OK)
		store_page_clear(out);
	return err;
}

enum store_err store_health(struct store *s, int64_t stale_ms, struct store_health *h)
{
	memset(h, 0, sizeof *h);
	s->msg[0] = '\0';
	return s->ops->health(s, stale_ms, h);
}

enum store_err store_drained(struct store *s, int64_t since_s, int64_t *jobs)
{
	*jobs = 0;
	s->msg[0] = '\0';
	return s->ops->drained(s, since_s, jobs);
}

enum store_err store_redeliver_one(struct store *s, const char *id, int64_t now_ms,
                                   enum store_redeliver *outcome, int64_t *seq)
{
	s->msg[0] = '\0';
	*seq = 0;
	return s->ops->redeliver_one(s, id, now_ms, outcome, seq);
}

enum store_err store_redeliver_bulk(struct store *s, const struct redeliver_query *q, bool dry_run,
                                    int64_t now_ms, int64_t *matched, int64_t *redelivered,
                                    int64_t *min_seq)
{
	s->msg[0] = '\0';
	*matched = 0;
	*redelivered = 0;
	*min_seq = 0;
	return s->ops->redeliver_bulk(s, q, dry_run, now_ms, matched, redelivered, min_seq);
}

enum store_err store_oldest_pending(struct store *s, int64_t mark, int64_t scan_max, bool *found,
                                    int64_t *seq, int64_t *created_at)
{
	s->msg[0] = '\0';
	*found = false;
	return s->ops->oldest_pending(s, mark, scan_max, found, seq, created_at);
}

/* ---- the deliverer's queue ---------------------------------------------- */

void store_set_owner(struct store *s, const char *owner)
{
	snprintf(s->owner, sizeof s->owner, "%s", owner ? owner : "");
}

void store_job_clear(struct store_job *j)
{
	if (!j)
		return;
	cz_free(j->input_data);
	cz_free(j->callback_url);
	cz_free(j->callback_host);
	cz_free(j->client_addr);
	cz_free(j->pending_keys);
	j->input_data = NULL;
	j->callback_url = NULL;
	j->callback_host = NULL;
	j->client_addr = NULL;
	j->pending_keys = NULL;
}

void store_claim_key(const char *callback_url, char *out, size_t outlen)
{
	if (outlen == 0)
		return;
	const char *sep = strstr(callback_url, "://");
	/* instr() is 1-based and 0 when absent: the authority starts 3 bytes
	 * after the match, or at byte 2 without one, as in SQLite's claim_key
	 * (sql/sqlite/008_claim_key.sql) */
	size_t start = sep ? (size_t)(sep - callback_url) + 3 : 2;
	size_t len = strlen(callback_url);
	size_t end = start < len ? start + strcspn(callback_url + start, "/?#") : len;
	size_t i = 0;
	for (; i < end && i + 1 < outlen; i++) {
		char c = callback_url[i];
		out[i] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
	}
	out[i] = '\0';
}

const char *store_verdict_status(enum store_verdict v)
{
	switch (v) {
	case STORE_DELIVERED:
		return "delivered";
	case STORE_RETRY:
		return "retrying";
	case STORE_FAILED:
		return "failed";
	}
	return "failed";
}

/* A list with nothing in it is no list: the backends skip the per-row key
 * then. */
static const struct store_exclude *exclusions(const struct store_exclude *ex)
{
	return ex && ex->n > 0 ? ex : NULL;
}

enum store_err store_claim(struct store *s, int64_t now, int64_t lease_ms, int max,
                           const struct store_exclude *ex, struct store_job **jobs, int *n)
{
	*jobs = NULL;
	*n = 0;
	s->msg[0] = '\0';
	if (max <= 0)
		return STORE_OK;
	return s->ops->claim(s, now, lease_ms, max, exclusions(ex), jobs, n);
}

enum store_err store_next_due(struct store *s, const struct store_exclude *ex, int64_t after,
                              bool *found, int64_t *due)
{
	*found = false;
	s->msg[0] = '\0';
	return s->ops->next_due(s, exclusions(ex), after, found, due);
}

enum store_err store_attempt_begin(struct store *s, const struct store_job *j, bool store_result,
                                   int64_t number, int64_t started_at)
{
	s->msg[0] = '\0';
	return s->ops->attempt_begin(s, j, store_result, number, started_at);
}

enum store_err store_attempt_end(struct store *s, const struct store_job *j,
                                 const struct store_outcome *o)
{
	s->msg[0] = '\0';
	return s->ops->attempt_end(s, j, o);
}

enum store_err store_release(struct store *s, const struct store_job *j, bool store_result,
                             int64_t due_at)
{
	s->msg[0] = '\0';
	return s->ops->release(s, j, store_result, due_at);
}

enum store_err store_renew(struct store *s, int64_t now, int64_t lease_ms, int64_t *renewed)
{
	int64_t n = 0;
	s->msg[0] = '\0';
	enum store_err err = s->ops->renew(s, now, lease_ms, &n);
	if (renewed)
		*renewed = n;
	return err;
}

enum store_err store_handback_all(struct store *s, int64_t now, int64_t *released)
{
	int64_t n = 0;
	s->msg[0] = '\0';
	enum store_err err = s->ops->handback_all(s, now, &n);
	if (released)
		*released = n;
	return err;
}

enum store_err store_heartbeat(struct store *s, int64_t now, const struct store_beat *b)
{
	s->msg[0] = '\0';
	return s->ops->heartbeat(s, now, b);
}

enum store_err store_heartbeat_remove(struct store *s)
{
	s->msg[0] = '\0';
	return s->ops->heartbeat_remove(s);
}

enum store_err store_recover_dead(struct store *s, int64_t now,
                                  bool (*is_dead)(const char *owner, int64_t pid, void *arg),
                                  void *arg, int64_t *recovered)
{
	int64_t n = 0;
	s->msg[0] = '\0';
	enum store_err err = s->ops->recover_dead(s, now, is_dead, arg, &n);
	if (recovered)
		*recovered = n;
	return err;
}

enum store_err store_prune(struct store *s, int64_t cutoff_ms, int64_t max_rows, int64_t *deleted)
{
	int64_t n = 0;
	s->msg[0] = '\0';
	enum store_err err = s->ops->prune(s, cutoff_ms, max_rows, &n);
	if (deleted)
		*deleted = err == STORE_OK ? n : 0;
	return err;
}

enum store_err store_listen(struct store *s, int *fd)
{
	*fd = -1;
	s->msg[0] = '\0';
	return s->ops->listen ? s->ops->listen(s, fd) : STORE_OK;
}

int store_listen_drain(struct store *s)
{
	return s->ops->listen_drain ? s->ops->listen_drain(s) : 0;
}
