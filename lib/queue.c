/*
 * queue: the deliverer's SQL (see queue.h for the contract).
 *
 * Every statement is prepared once per connection and reset after each use.
 * The job-state columns move like this (DESIGN.md):
 *
 *   claim      status queued -> running; lease_* set; next_attempt_at = expiry
 *   begin      status -> completed (result stored) when not yet;
 *              callback_status -> delivering; attempts += 1; attempt 'sending'
 *   end        attempt 'done'; callback_status -> delivered | retrying | failed;
 *              lease cleared; finished_at set when delivered or failed (the
 *              requests_finished trigger then decrements the counters)
 *   release    lease cleared, due at a given time, no attempt counted
 *
 * Writes on one job carry `lease_token = ?`; sqlite3_changes() == 0 then
 * means another deliverer holds it now (QUEUE_FENCED).
 */
#include "queue.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "alloc.h"
#include "ids.h"

enum stmt {
	Q_CLAIM_SELECT,
	Q_CLAIM_UPDATE,
	Q_MARK_UNKNOWN,
	Q_COUNT_UNKNOWN,
	Q_NEXT_DUE,
	Q_STORE_RESULT,
	Q_ATTEMPT_JOB,
	Q_ATTEMPT_INSERT,
	Q_ATTEMPT_DONE,
	Q_JOB_END,
	Q_RELEASE,
	Q_RENEW,
	Q_HANDBACK_ATTEMPTS,
	Q_HANDBACK_JOBS,
	Q_HEARTBEAT,
	Q_HEARTBEAT_DEL,
	Q_OWNERS,
	Q_EXPIRE_OWNER,
	Q__COUNT
};

#define UNFINISHED "finished_at IS NULL AND mode = 'async'"
/* A row's claim key (queue_claim_key says what it is; the C there follows
 * these string functions step by step). */
#define CK_AT   "instr(callback_url, '://')"
#define CK_REST "replace(replace(substr(callback_url, " CK_AT " + 3), '?', '/'), '#', '/')"
#define CLAIM_KEY                                                                                  \
	"lower(substr(callback_url, 1, " CK_AT " + 2 + instr(" CK_REST " || '/', '/') - 1))"
/* n is NULL when nothing is excluded: the OR then stops before the key is
 * computed, which costs ten times a plain row visit (see exclusions()). */
#define NOT_EXCLUDED(n)                                                                            \
	"(" n " IS NULL OR " CLAIM_KEY " NOT IN (SELECT value FROM json_each(" n ")))"
/* The claim and the due-time read name requests_due (partial on the
 * unfinished jobs, in due order): without statistics the planner prefers
 * requests_mode_created and would walk every async row ever accepted.
 * Owner-wide statements use requests_lease_owner (sql/002_deliverer.sql). */
#define UNKNOWN_MSG "outcome unknown: the deliverer stopped during this attempt"

static const char *const stmt_sql[Q__COUNT] = {
    [Q_CLAIM_SELECT] = "SELECT seq, id, status, input_data, iterations, callback_url, "
                       "coalesce(callback_host, ''), result, duration_ms, created_at, "
                       "completed_at, attempts FROM requests INDEXED BY requests_due "
                       "WHERE " UNFINISHED " AND next_attempt_at <= ?1 "
                       "AND (lease_expires_at IS NULL OR lease_expires_at <= ?1) "
                       "AND " NOT_EXCLUDED("?2") " ORDER BY next_attempt_at, seq LIMIT ?3",
    [Q_CLAIM_UPDATE] = "UPDATE requests SET lease_owner = ?1, lease_token = ?2, "
                       "lease_expires_at = ?3, next_attempt_at = ?3, "
                       "status = CASE WHEN status = 'queued' THEN 'running' ELSE status END, "
                       "callback_status = CASE WHEN callback_status = 'delivering' "
                       "THEN 'retrying' ELSE callback_status END, "
                       "started_at = coalesce(started_at, ?4) WHERE seq = ?5",
    [Q_MARK_UNKNOWN] = "UPDATE attempts SET state = 'unknown', error_class = 'unknown', "
                       "error_message = '" UNKNOWN_MSG "' "
                       "WHERE request_seq = ?1 AND state = 'sending'",
    [Q_COUNT_UNKNOWN] = "SELECT count(*) FROM attempts WHERE request_seq = ?1 "
                        "AND state = 'unknown'",
    [Q_NEXT_DUE] = "SELECT next_attempt_at FROM requests INDEXED BY requests_due WHERE " UNFINISHED
                   " AND " NOT_EXCLUDED("?1") " ORDER BY next_attempt_at, seq LIMIT 1",
    [Q_STORE_RESULT] = "UPDATE requests SET status = 'completed', result = ?3, "
                       "duration_ms = ?4, completed_at = ?5 "
                       "WHERE seq = ?1 AND lease_token = ?2",
    [Q_ATTEMPT_JOB] = "UPDATE requests SET callback_status = 'delivering', "
                      "attempts = max(attempts, ?3) WHERE seq = ?1 AND lease_token = ?2",
    [Q_ATTEMPT_INSERT] = "INSERT INTO attempts (request_seq, number, state, started_at, "
                         "lease_token) VALUES (?1, ?2, 'sending', ?3, ?4)",
    [Q_ATTEMPT_DONE] = "UPDATE attempts SET state = 'done', duration_ms = ?3, "
                       "http_status = ?4, error_class = ?5, error_message = ?6, "
                       "next_attempt_at = ?7 WHERE request_seq = ?1 AND number = ?2 "
                       "AND lease_token = ?8 AND state = 'sending'",
    [Q_JOB_END] = "UPDATE requests SET callback_status = ?3, finished_at = ?4, "
                  "next_attempt_at = ?5, last_error = ?6, lease_owner = NULL, "
                  "lease_token = NULL, lease_expires_at = NULL "
                  "WHERE seq = ?1 AND lease_token = ?2",
    [Q_RELEASE] = "UPDATE requests SET next_attempt_at = ?3, lease_owner = NULL, "
                  "lease_token = NULL, lease_expires_at = NULL, "
                  "status = CASE WHEN status = 'running' THEN 'queued' ELSE status END "
                  "WHERE seq = ?1 AND lease_token = ?2",
    [Q_RENEW] = "UPDATE requests SET lease_expires_at = ?2, next_attempt_at = ?2 "
                "WHERE lease_owner = ?1 AND " UNFINISHED,
    [Q_HANDBACK_ATTEMPTS] = "UPDATE attempts SET state = 'unknown', error_class = 'unknown', "
                            "error_message = '" UNKNOWN_MSG "' WHERE state = 'sending' "
                            "AND request_seq IN (SELECT seq FROM requests "
                            "WHERE lease_owner = ?1 AND " UNFINISHED ")",
    [Q_HANDBACK_JOBS] = "UPDATE requests SET lease_owner = NULL, lease_token = NULL, "
                        "lease_expires_at = NULL, next_attempt_at = ?2, "
                        "status = CASE WHEN status = 'running' THEN 'queued' ELSE status END, "
                        "callback_status = CASE WHEN callback_status = 'delivering' "
                        "THEN 'retrying' ELSE callback_status END "
                        "WHERE lease_owner = ?1 AND " UNFINISHED,
    [Q_HEARTBEAT] = "INSERT INTO heartbeats (owner, pid, started_at, beat_at, busy_workers, "
                    "workers, inflight) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
                    "ON CONFLICT (owner) DO UPDATE SET pid = excluded.pid, "
                    "started_at = excluded.started_at, beat_at = excluded.beat_at, "
                    "busy_workers = excluded.busy_workers, workers = excluded.workers, "
                    "inflight = excluded.inflight",
    [Q_HEARTBEAT_DEL] = "DELETE FROM heartbeats WHERE owner = ?1",
    [Q_OWNERS] = "SELECT owner, pid FROM heartbeats WHERE owner != ?1",
    [Q_EXPIRE_OWNER] = "UPDATE requests SET lease_expires_at = ?2, next_attempt_at = ?2 "
                       "WHERE lease_owner = ?1 AND " UNFINISHED,
};

struct queue {
	struct store *s;
	sqlite3 *db;
	char owner[QUEUE_OWNER_MAX];
	uint64_t token_next; /* random 63-bit start, then counting */
	sqlite3_stmt *st[Q__COUNT];
};

const char *queue_strerror(enum queue_err err)
{
	switch (err) {
	case QUEUE_OK:
		return "ok";
	case QUEUE_NOMEM:
		return "out of memory";
	case QUEUE_DB:
		return "database error";
	case QUEUE_FENCED:
		return "lease lost to another deliverer";
	}
	return "unknown error";
}

void queue_job_clear(struct queue_job *j)
{
	if (!j)
		return;
	cz_free(j->input_data);
	cz_free(j->callback_url);
	cz_free(j->callback_host);
	j->input_data = NULL;
	j->callback_url = NULL;
	j->callback_host = NULL;
}

static uint64_t random_token_base(void)
{
	uint64_t v = 0;
	if (getrandom(&v, sizeof v, GRND_NONBLOCK) != (ssize_t)sizeof v)
		v = (uint64_t)ids_mono_ns() * 0x9e3779b97f4a7c15ULL ^ (uint64_t)getpid();
	return (v >> 2) | 1; /* leaves room to count up inside a positive int64 */
}

static int64_t next_token(struct queue *q)
{
	q->token_next++;
	if (q->token_next >= (uint64_t)INT64_MAX)
		q->token_next = 1;
	return (int64_t)q->token_next;
}

struct queue *queue_new(struct store *s, const char *owner)
{
	struct queue *q = cz_calloc(1, sizeof *q);
	if (!q)
		return NULL;
	q->s = s;
	q->db = store_db(s);
	snprintf(q->owner, sizeof q->owner, "%s", owner);
	q->token_next = random_token_base();
	for (int i = 0; i < Q__COUNT; i++) {
		int rc = sqlite3_prepare_v3(q->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
		                            &q->st[i], NULL);
		if (rc != SQLITE_OK) {
			queue_free(q);
			return NULL;
		}
	}
	return q;
}

void queue_free(struct queue *q)
{
	if (!q)
		return;
	for (int i = 0; i < Q__COUNT; i++)
		sqlite3_finalize(q->st[i]);
	cz_free(q);
}

const char *queue_errmsg(struct queue *q)
{
	return sqlite3_errmsg(q->db);
}

/* Runs a bound write statement to completion and resets it. */
static enum queue_err step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? QUEUE_OK : QUEUE_DB;
}

/* Like step_done, and QUEUE_FENCED when no row changed. */
static enum queue_err step_fenced(struct queue *q, sqlite3_stmt *st)
{
	enum queue_err err = step_done(st);
	if (err == QUEUE_OK && sqlite3_changes(q->db) == 0)
		err = QUEUE_FENCED;
	return err;
}

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

/* The exclusion list to bind: NULL for none (no list, "", or "[]"), so the
 * claim and the due-time read skip computing every row's claim key. */
static const char *exclusions(const char *exclude_json)
{
	if (!exclude_json || !exclude_json[0] || strcmp(exclude_json, "[]") == 0)
		return NULL;
	return exclude_json;
}

static char *column_strdup(sqlite3_stmt *st, int col, size_t *len)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	size_t n = (size_t)sqlite3_column_bytes(st, col);
	if (len)
		*len = n;
	return cz_strndup(t ? (const char *)t : "", n);
}

/* Reads one claimed row into j. */
static enum queue_err read_job(sqlite3_stmt *st, struct queue_job *j)
{
	memset(j, 0, sizeof *j);
	j->seq = sqlite3_column_int64(st, 0);
	snprintf(j->id, sizeof j->id, "%s", (const char *)sqlite3_column_text(st, 1));
	const unsigned char *status = sqlite3_column_text(st, 2);
	const unsigned char *result = sqlite3_column_text(st, 7);
	j->computed = status && strcmp((const char *)status, "completed") == 0 && result &&
	              sqlite3_column_bytes(st, 7) == 64;
	j->input_data = column_strdup(st, 3, &j->input_len);
	j->iterations = sqlite3_column_int64(st, 4);
	j->callback_url = column_strdup(st, 5, NULL);
	j->callback_host = column_strdup(st, 6, NULL);
	if (j->computed) {
		memcpy(j->result, result, 64);
		j->result[64] = '\0';
		j->duration_ms = sqlite3_column_double(st, 8);
		j->completed_at = sqlite3_column_int64(st, 10);
	}
	j->created_at = sqlite3_column_int64(st, 9);
	j->attempts = sqlite3_column_int64(st, 11);
	if (!j->input_data || !j->callback_url || !j->callback_host) {
		queue_job_clear(j);
		return QUEUE_NOMEM;
	}
	return QUEUE_OK;
}

/* Marks a dead holder's 'sending' attempts unknown and counts the unknown
 * ones of j. */
static enum queue_err recover_attempts(struct queue *q, struct queue_job *j)
{
	sqlite3_stmt *st = q->st[Q_MARK_UNKNOWN];
	sqlite3_bind_int64(st, 1, j->seq);
	enum queue_err err = step_done(st);
	if (err != QUEUE_OK)
		return err;
	st = q->st[Q_COUNT_UNKNOWN];
	sqlite3_bind_int64(st, 1, j->seq);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		j->unknown = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_ROW ? QUEUE_OK : QUEUE_DB;
}

enum queue_err queue_claim(struct queue *q, int64_t now, int64_t lease_ms, int max,
                           const char *exclude_json, struct queue_job **jobs, int *n)
{
	enum queue_err err = QUEUE_OK;
	struct queue_job *arr = NULL;
	int count = 0;
	*jobs = NULL;
	*n = 0;
	if (max <= 0)
		return QUEUE_OK;
	arr = cz_calloc((size_t)max, sizeof *arr);
	if (!arr)
		return QUEUE_NOMEM;
	if (store_begin(q->s) != STORE_OK) {
		err = QUEUE_DB;
		goto fail;
	}
	sqlite3_stmt *sel = q->st[Q_CLAIM_SELECT];
	sqlite3_bind_int64(sel, 1, now);
	bind_text_or_null(sel, 2, exclusions(exclude_json));
	sqlite3_bind_int(sel, 3, max);
	int rc;
	while (count < max && (rc = sqlite3_step(sel)) == SQLITE_ROW) {
		err = read_job(sel, &arr[count]);
		if (err != QUEUE_OK)
			break;
		count++;
	}
	if (err == QUEUE_OK && count < max && rc != SQLITE_DONE)
		err = QUEUE_DB;
	sqlite3_reset(sel);
	sqlite3_clear_bindings(sel);
	if (err != QUEUE_OK)
		goto rollback;

	int64_t expires = now + lease_ms;
	sqlite3_stmt *up = q->st[Q_CLAIM_UPDATE];
	for (int i = 0; i < count; i++) {
		arr[i].lease_token = next_token(q);
		sqlite3_bind_text(up, 1, q->owner, -1, SQLITE_STATIC);
		sqlite3_bind_int64(up, 2, arr[i].lease_token);
		sqlite3_bind_int64(up, 3, expires);
		sqlite3_bind_int64(up, 4, now);
		sqlite3_bind_int64(up, 5, arr[i].seq);
		err = step_done(up);
		if (err == QUEUE_OK && arr[i].attempts > 0)
			err = recover_attempts(q, &arr[i]);
		if (err != QUEUE_OK)
			goto rollback;
	}
	if (store_commit(q->s) != STORE_OK) {
		err = QUEUE_DB;
		goto rollback;
	}
	if (count == 0) {
		cz_free(arr);
		arr = NULL;
	}
	*jobs = arr;
	*n = count;
	return QUEUE_OK;
rollback:
	store_rollback(q->s);
fail:
	for (int i = 0; i < count; i++)
		queue_job_clear(&arr[i]);
	cz_free(arr);
	return err;
}

enum queue_err queue_next_due(struct queue *q, const char *exclude_json, bool *found, int64_t *due)
{
	sqlite3_stmt *st = q->st[Q_NEXT_DUE];
	*found = false;
	bind_text_or_null(st, 1, exclusions(exclude_json));
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
		*found = true;
		*due = sqlite3_column_int64(st, 0);
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? QUEUE_OK : QUEUE_DB;
}

static enum queue_err store_result(struct queue *q, const struct queue_job *j)
{
	sqlite3_stmt *st = q->st[Q_STORE_RESULT];
	sqlite3_bind_int64(st, 1, j->seq);
	sqlite3_bind_int64(st, 2, j->lease_token);
	sqlite3_bind_text(st, 3, j->result, 64, SQLITE_STATIC);
	sqlite3_bind_double(st, 4, j->duration_ms);
	sqlite3_bind_int64(st, 5, j->completed_at);
	return step_fenced(q, st);
}

/* Marks the job delivering and counts attempt `number`. */
static enum queue_err count_attempt(struct queue *q, const struct queue_job *j, int64_t number)
{
	sqlite3_stmt *st = q->st[Q_ATTEMPT_JOB];
	sqlite3_bind_int64(st, 1, j->seq);
	sqlite3_bind_int64(st, 2, j->lease_token);
	sqlite3_bind_int64(st, 3, number);
	return step_fenced(q, st);
}

enum queue_err queue_attempt_begin(struct queue *q, const struct queue_job *j, bool store_res,
                                   int64_t number, int64_t started_at)
{
	enum queue_err err = QUEUE_OK;
	if (store_res)
		err = store_result(q, j);
	if (err == QUEUE_OK)
		err = count_attempt(q, j, number);
	if (err != QUEUE_OK)
		return err;
	sqlite3_stmt *st = q->st[Q_ATTEMPT_INSERT];
	sqlite3_bind_int64(st, 1, j->seq);
	sqlite3_bind_int64(st, 2, number);
	sqlite3_bind_int64(st, 3, started_at);
	sqlite3_bind_int64(st, 4, j->lease_token);
	return step_done(st);
}

static const char *verdict_status(enum queue_verdict v)
{
	switch (v) {
	case QUEUE_DELIVERED:
		return "delivered";
	case QUEUE_RETRY:
		return "retrying";
	case QUEUE_FAILED:
		return "failed";
	}
	return "failed";
}

static enum queue_err end_job(struct queue *q, const struct queue_job *j, enum queue_verdict v,
                              int64_t now, int64_t next_attempt_at, const char *last_error)
{
	sqlite3_stmt *st = q->st[Q_JOB_END];
	sqlite3_bind_int64(st, 1, j->seq);
	sqlite3_bind_int64(st, 2, j->lease_token);
	sqlite3_bind_text(st, 3, verdict_status(v), -1, SQLITE_STATIC);
	if (v == QUEUE_RETRY) {
		sqlite3_bind_null(st, 4);
		sqlite3_bind_int64(st, 5, next_attempt_at);
	} else {
		sqlite3_bind_int64(st, 4, now);
		sqlite3_bind_null(st, 5);
	}
	bind_text_or_null(st, 6, v == QUEUE_DELIVERED ? NULL : last_error);
	return step_fenced(q, st);
}

enum queue_err queue_attempt_end(struct queue *q, const struct queue_job *j,
                                 const struct queue_outcome *o)
{
	sqlite3_stmt *st = q->st[Q_ATTEMPT_DONE];
	sqlite3_bind_int64(st, 1, j->seq);
	sqlite3_bind_int64(st, 2, o->number);
	sqlite3_bind_double(st, 3, o->duration_ms);
	if (o->http_status > 0)
		sqlite3_bind_int(st, 4, o->http_status);
	else
		sqlite3_bind_null(st, 4);
	bind_text_or_null(st, 5, o->error_class);
	bind_text_or_null(st, 6, o->error_message);
	if (o->verdict == QUEUE_RETRY)
		sqlite3_bind_int64(st, 7, o->next_attempt_at);
	else
		sqlite3_bind_null(st, 7);
	sqlite3_bind_int64(st, 8, j->lease_token);
	enum queue_err err = step_done(st);
	if (err != QUEUE_OK)
		return err;
	return end_job(q, j, o->verdict, o->now, o->next_attempt_at, o->error_message);
}

enum queue_err queue_release(struct queue *q, const struct queue_job *j, bool store_res,
                             int64_t due_at)
{
	enum queue_err err = QUEUE_OK;
	if (store_res)
		err = store_result(q, j);
	if (err != QUEUE_OK)
		return err;
	sqlite3_stmt *st = q->st[Q_RELEASE];
	sqlite3_bind_int64(st, 1, j->seq);
	sqlite3_bind_int64(st, 2, j->lease_token);
	sqlite3_bind_int64(st, 3, due_at);
	return step_fenced(q, st);
}

/* Runs one owner-wide statement (?1 owner, ?2 time) in its own
 * transaction, or inside the caller's when one is open. */
static enum queue_err owner_update(struct queue *q, enum stmt which, int64_t t, int64_t *changed)
{
	sqlite3_stmt *st = q->st[which];
	sqlite3_bind_text(st, 1, q->owner, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, t);
	enum queue_err err = step_done(st);
	if (changed)
		*changed = err == QUEUE_OK ? sqlite3_changes(q->db) : 0;
	return err;
}

enum queue_err queue_renew(struct queue *q, int64_t now, int64_t lease_ms, int64_t *renewed)
{
	if (store_begin(q->s) != STORE_OK)
		return QUEUE_DB;
	enum queue_err err = owner_update(q, Q_RENEW, now + lease_ms, renewed);
	if (err == QUEUE_OK && store_commit(q->s) != STORE_OK)
		err = QUEUE_DB;
	if (err != QUEUE_OK)
		store_rollback(q->s);
	return err;
}

enum queue_err queue_handback_all(struct queue *q, int64_t now, int64_t *released)
{
	if (store_begin(q->s) != STORE_OK)
		return QUEUE_DB;
	sqlite3_stmt *st = q->st[Q_HANDBACK_ATTEMPTS];
	sqlite3_bind_text(st, 1, q->owner, -1, SQLITE_STATIC);
	enum queue_err err = step_done(st);
	if (err == QUEUE_OK)
		err = owner_update(q, Q_HANDBACK_JOBS, now, released);
	if (err == QUEUE_OK && store_commit(q->s) != STORE_OK)
		err = QUEUE_DB;
	if (err != QUEUE_OK)
		store_rollback(q->s);
	return err;
}

enum queue_err queue_heartbeat(struct queue *q, int64_t now, const struct queue_beat *b)
{
	sqlite3_stmt *st = q->st[Q_HEARTBEAT];
	sqlite3_bind_text(st, 1, q->owner, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, b->pid);
	sqlite3_bind_int64(st, 3, b->started_at);
	sqlite3_bind_int64(st, 4, now);
	sqlite3_bind_int64(st, 5, b->busy_workers);
	sqlite3_bind_int64(st, 6, b->workers);
	sqlite3_bind_int64(st, 7, b->inflight);
	if (store_begin(q->s) != STORE_OK) {
		sqlite3_clear_bindings(st);
		return QUEUE_DB;
	}
	enum queue_err err = step_done(st);
	if (err == QUEUE_OK && store_commit(q->s) != STORE_OK)
		err = QUEUE_DB;
	if (err != QUEUE_OK)
		store_rollback(q->s);
	return err;
}

static enum queue_err delete_heartbeat(struct queue *q, const char *owner)
{
	sqlite3_stmt *st = q->st[Q_HEARTBEAT_DEL];
	sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
	return step_done(st);
}

enum queue_err queue_heartbeat_remove(struct queue *q)
{
	if (store_begin(q->s) != STORE_OK)
		return QUEUE_DB;
	enum queue_err err = delete_heartbeat(q, q->owner);
	if (err == QUEUE_OK && store_commit(q->s) != STORE_OK)
		err = QUEUE_DB;
	if (err != QUEUE_OK)
		store_rollback(q->s);
	return err;
}

enum queue_err queue_recover_dead(struct queue *q, int64_t now,
                                  bool (*is_dead)(const char *owner, int64_t pid, void *arg),
                                  void *arg, int64_t *recovered)
{
	enum queue_err err = QUEUE_OK;
	int64_t total = 0;
	if (store_begin(q->s) != STORE_OK)
		return QUEUE_DB;
	sqlite3_stmt *st = q->st[Q_OWNERS];
	sqlite3_bind_text(st, 1, q->owner, -1, SQLITE_STATIC);
	/* Collect first: the owner rows change while we walk them otherwise. */
	char(*dead)[QUEUE_OWNER_MAX] = NULL;
	int ndead = 0, cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *owner = (const char *)sqlite3_column_text(st, 0);
		int64_t pid = sqlite3_column_int64(st, 1);
		if (!owner || !is_dead(owner, pid, arg))
			continue;
		if (ndead == cap) {
			int ncap = cap ? cap * 2 : 8;
			void *p = cz_realloc(dead, (size_t)ncap * sizeof *dead);
			if (!p) {
				err = QUEUE_NOMEM;
				break;
			}
			dead = p;
			cap = ncap;
		}
		snprintf(dead[ndead++], QUEUE_OWNER_MAX, "%s", owner);
	}
	if (err == QUEUE_OK && rc != SQLITE_DONE)
		err = QUEUE_DB;
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	for (int i = 0; i < ndead && err == QUEUE_OK; i++) {
		sqlite3_stmt *ex = q->st[Q_EXPIRE_OWNER];
		sqlite3_bind_text(ex, 1, dead[i], -1, SQLITE_STATIC);
		sqlite3_bind_int64(ex, 2, now);
		err = step_done(ex);
		if (err == QUEUE_OK)
			total += sqlite3_changes(q->db);
		if (err == QUEUE_OK)
			err = delete_heartbeat(q, dead[i]);
	}
	cz_free(dead);
	if (err == QUEUE_OK && store_commit(q->s) != STORE_OK)
		err = QUEUE_DB;
	if (err != QUEUE_OK)
		store_rollback(q->s);
	if (recovered)
		*recovered = err == QUEUE_OK ? total : 0;
	return err;
}

/* The oldest ?2 rows by seq, of which the finished ones older than ?1. The
 * inner LIMIT walks the table's rowid b-tree from the start, so the work is
 * bounded by max_rows; the outer filter leaves unfinished rows alone. */
#define PRUNE_SET                                                                                  \
	"SELECT seq FROM (SELECT seq, finished_at FROM requests ORDER BY seq LIMIT ?2) "           \
	"WHERE finished_at IS NOT NULL AND finished_at < ?1"

static const char *const prune_sql[2] = {
    "DELETE FROM attempts WHERE request_seq IN (" PRUNE_SET ")",
    "DELETE FROM requests WHERE seq IN (" PRUNE_SET ")",
};

enum queue_err queue_prune(struct store *s, int64_t cutoff_ms, int64_t max_rows, int64_t *deleted)
{
	sqlite3 *db = store_db(s);
	sqlite3_stmt *st = NULL;
	enum queue_err err = QUEUE_OK;
	int64_t n = 0;

	if (deleted)
		*deleted = 0;
	if (max_rows <= 0)
		return QUEUE_OK;
	if (store_begin(s) != STORE_OK)
		return QUEUE_DB;
	/* Attempts first: they reference the requests rows (foreign_keys=ON). */
	for (int i = 0; i < 2 && err == QUEUE_OK; i++) {
		if (sqlite3_prepare_v2(db, prune_sql[i], -1, &st, NULL) != SQLITE_OK) {
			err = QUEUE_DB;
			break;
		}
		sqlite3_bind_int64(st, 1, cutoff_ms);
		sqlite3_bind_int64(st, 2, max_rows);
		if (sqlite3_step(st) != SQLITE_DONE)
			err = QUEUE_DB;
		else if (i == 1)
			n = sqlite3_changes64(db);
		sqlite3_finalize(st);
		st = NULL;
	}
	if (err == QUEUE_OK && store_commit(s) != STORE_OK)
		err = QUEUE_DB;
	if (err != QUEUE_OK) {
		store_rollback(s);
		return err;
	}
	if (deleted)
		*deleted = n;
	return QUEUE_OK;
}

void queue_claim_key(const char *callback_url, char *out, size_t outlen)
{
	if (outlen == 0)
		return;
	const char *sep = strstr(callback_url, "://");
	/* instr() is 1-based and 0 when absent: the authority starts 3 bytes
	 * after the match, or at byte 2 without one, as in CLAIM_KEY */
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
