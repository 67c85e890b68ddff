/*
 * store_sqlite_queue: the SQLite backend's half for the deliverer: claims,
 * leases, attempts, heartbeats, recovery, retention (store.h, "the
 * deliverer's queue", is the contract).
 *
 * Every statement is prepared once per connection and reset after each use.
 * The job-state columns move like this (DESIGN.md):
 *
 *   claim      status queued -> running; lease_* set; next_attempt_at = expiry
 *   begin      status -> completed (result stored) when not yet, in the
 *              same UPDATE; callback_status -> delivering; attempts += 1;
 *              attempt 'sending'
 *   end        attempt 'done'; callback_status -> delivered | retrying | failed;
 *              lease cleared; finished_at set when delivered or failed (the
 *              job leaves the counters, store_sqlite.c's sq_count_job)
 *   release    lease cleared, due at a given time, no attempt counted
 *
 * Writes on one job carry `lease_token = ?`; sqlite3_changes() == 0 then
 * means another deliverer holds it now (STORE_FENCED).
 */
#include "store_sqlite.h"

#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <json-c/json.h>

#include "alloc.h"
#include "ids.h"

enum stmt {
	Q_CLAIM_SELECT,
	Q_CLAIM_LATE,
	Q_MAX_SEQ,
	Q_CLAIM_UPDATE,
	Q_CLAIM_READ,
	Q_MARK_UNKNOWN,
	Q_COUNT_UNKNOWN,
	Q_NEXT_DUE,
	Q_STORE_RESULT,
	Q_ATTEMPT_JOB,
	Q_ATTEMPT_JOB_RESULT,
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
/* claim_origin: a row's claim key (store_claim_key says what it is),
 * written at insert and kept in requests_due (sql/sqlite/011), so the walk
 * past excluded jobs reads the index alone. n is NULL when nothing is
 * excluded: the OR then stops before the key is read (store.c passes no
 * list when it is empty). A row without a key (written by hand) is not
 * left out. */
#define NOT_EXCLUDED(n)                                                                            \
	"(" n " IS NULL OR claim_origin IS NULL OR claim_origin NOT IN (SELECT value FROM "        \
	"json_each(" n ")))"
/* The claim and the due-time read name requests_due (partial on the
 * unfinished jobs, in due order): without statistics the planner prefers
 * requests_mode_created and would walk every async row ever accepted.
 * Owner-wide statements use requests_lease_owner (sql/sqlite/002_deliverer.sql). */
#define UNKNOWN_MSG "outcome unknown: the deliverer stopped during this attempt"

static const char *const queue_sql[Q__COUNT] = {
    /* The claim's two halves (sq_claim): the walk to the due jobs, outside
     * the write lock, and the claim of each, which takes it only if it is
     * still claimable, then reads it as it is then (not with RETURNING,
     * which SQLite buffers in a temporary b-tree per execution). */
    [Q_CLAIM_SELECT] = "SELECT seq FROM requests INDEXED BY requests_due "
                       "WHERE " UNFINISHED " AND next_attempt_at > ?4 AND next_attempt_at <= ?1 "
                       "AND (lease_expires_at IS NULL OR lease_expires_at <= ?1) "
                       "AND " NOT_EXCLUDED("?2") " ORDER BY next_attempt_at, seq LIMIT ?3",
    /* rows committed after a claim mark was taken, due before it: the
     * walk is over the rowid range past the mark's seq */
    [Q_CLAIM_LATE] = "SELECT seq FROM requests NOT INDEXED "
                     "WHERE seq > ?4 AND " UNFINISHED " AND next_attempt_at <= ?5 "
                     "AND (lease_expires_at IS NULL OR lease_expires_at <= ?1) "
                     "AND " NOT_EXCLUDED("?2") " ORDER BY next_attempt_at, seq LIMIT ?3",
    [Q_MAX_SEQ] = "SELECT coalesce(max(seq), 0) FROM requests",
    [Q_CLAIM_UPDATE] = "UPDATE requests SET lease_owner = ?1, lease_token = ?2, "
                       "lease_expires_at = ?3, next_attempt_at = ?3, "
                       "status = CASE WHEN status = 'queued' THEN 'running' ELSE status END, "
                       "callback_status = CASE WHEN callback_status = 'delivering' "
                       "THEN 'retrying' ELSE callback_status END, "
                       "started_at = coalesce(started_at, ?4) "
                       "WHERE seq = ?5 AND " UNFINISHED " AND next_attempt_at <= ?4 "
                       "AND (lease_expires_at IS NULL OR lease_expires_at <= ?4)",
    [Q_CLAIM_READ] = "SELECT seq, id, status, input_data, iterations, callback_url, "
                     "coalesce(callback_host, ''), result, duration_ms, created_at, "
                     "completed_at, attempts, client_addr, pending_keys FROM requests "
                     "WHERE seq = ?1",
    [Q_MARK_UNKNOWN] = "UPDATE attempts SET state = 'unknown', error_class = 'unknown', "
                       "error_message = '" UNKNOWN_MSG "' "
                       "WHERE request_seq = ?1 AND state = 'sending'",
    [Q_COUNT_UNKNOWN] = "SELECT count(*) FROM attempts WHERE request_seq = ?1 "
                        "AND state = 'unknown'",
    [Q_NEXT_DUE] = "SELECT next_attempt_at FROM requests INDEXED BY requests_due WHERE " UNFINISHED
                   " AND next_attempt_at > ?2 AND " NOT_EXCLUDED(
                       "?1") " ORDER BY next_attempt_at, seq LIMIT 1",
    [Q_STORE_RESULT] = "UPDATE requests SET status = 'completed', result = ?3, "
                       "duration_ms = ?4, completed_at = ?5 "
                       "WHERE seq = ?1 AND lease_token = ?2",
    /* Q_ATTEMPT_JOB and Q_STORE_RESULT in one write of the row, for the
     * first attempt after the compute (the usual case) */
    [Q_ATTEMPT_JOB_RESULT] = "UPDATE requests SET callback_status = 'delivering', "
                             "attempts = max(attempts, ?3), status = 'completed', result = ?4, "
                             "duration_ms = ?5, completed_at = ?6 "
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

/* Ends the caller's transaction: commits when err is STORE_OK, else (or
 * when the commit fails) rolls back; returns the outcome. */
static enum store_err end_tx(struct sq *q, enum store_err err)
{
	if (err == STORE_OK)
		err = store_commit(&q->base);
	if (err != STORE_OK)
		store_rollback(&q->base);
	return err;
}

/* sq_step_done, and STORE_FENCED when no row changed. */
static enum store_err step_fenced(struct sq *q, sqlite3_stmt *st, const char *what)
{
	enum store_err err = sq_step_done(q, st, what);
	if (err == STORE_OK && sqlite3_changes(q->db) == 0)
		err = STORE_FENCED;
	return err;
}

static void bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

static char *column_strdup(sqlite3_stmt *st, int col, size_t *len)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	size_t n = (size_t)sqlite3_column_bytes(st, col);
	if (len)
		*len = n;
	return cz_strndup(t ? (const char *)t : "", n);
}

/* column_strdup, or NULL for a NULL column; *nomem set when memory ran out. */
static char *column_strdup_or_null(sqlite3_stmt *st, int col, bool *nomem)
{
	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return NULL;
	char *s = column_strdup(st, col, NULL);
	if (!s)
		*nomem = true;
	return s;
}

static enum store_err exclude_json(const struct store_exclude *ex, char **out);

/* The queue's statements are prepared on a connection's first queue call:
 * consuma-fcgi's connections never make one. */
static enum store_err queue_ready(struct sq *q)
{
	for (int i = 0; i < Q__COUNT; i++) {
		if (q->qst[i])
			continue;
		int rc = sqlite3_prepare_v3(q->db, queue_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
		                            &q->qst[i], NULL);
		if (rc != SQLITE_OK)
			return sq_fail(q, rc, "prepare queue statement");
	}
	return STORE_OK;
}
_Static_assert((int)Q__COUNT <= SQ_QUEUE_MAX, "struct sq holds every queue statement");

/* Reads one claimed row into j. */
static enum store_err read_job(sqlite3_stmt *st, struct store_job *j)
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
	bool nomem = false;
	j->client_addr = column_strdup_or_null(st, 12, &nomem);
	j->pending_keys = column_strdup_or_null(st, 13, &nomem);
	if (nomem || !j->input_data || !j->callback_url || !j->callback_host) {
		store_job_clear(j);
		return STORE_NOMEM;
	}
	return STORE_OK;
}

/* Marks a dead holder's 'sending' attempts unknown and counts the unknown
 * ones of j. */
static enum store_err recover_attempts(struct sq *q, struct store_job *j)
{
	sqlite3_stmt *st = q->qst[Q_MARK_UNKNOWN];
	sqlite3_bind_int64(st, 1, j->seq);
	enum store_err err = sq_step_done(q, st, "mark unknown attempts");
	if (err != STORE_OK)
		return err;
	st = q->qst[Q_COUNT_UNKNOWN];
	sqlite3_bind_int64(st, 1, j->seq);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		j->unknown = sqlite3_column_int64(st, 0);
	err = rc == SQLITE_ROW ? STORE_OK : sq_fail(q, rc, "count unknown attempts");
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return err;
}

/* The claim in two steps. The walk to the due jobs reads outside the
 * write lock: while a breaker holds back a large backlog it passes every
 * excluded job, and under the lock that walk held the API's commits back
 * (intake while callbacks failed: see README, Benchmarks). Then, in one
 * write transaction, each candidate is claimed only if it is still
 * unfinished, due and unleased (another deliverer may have taken it since
 * the walk), and read back as the claim left it.
 *
 * The claim mark. Claims that leave origins out walk past all their due
 * jobs, and they come often: an origin is left out while it is saturated
 * (hosts.c), i.e. whenever one busy receiver is the bottleneck, and every
 * doorbell ring then walked its whole backlog to find nothing (391 walks
 * of ~1,400 rows in a 20,000-job storm, a sixth of the deliverer's CPU).
 * So a walk that saw every due row and left some out marks how far it
 * looked: every due row up to next_attempt_at `due` and seq `seq` was of an
 * excluded origin (or leased). A later claim with the same exclusions
 * walks only what can have become claimable since:
 *   - rows due after the mark (new jobs, retries, expired leases, hand-
 *     backs: all get next_attempt_at = the writer's now), the index range
 *     (mark.due, now];
 *   - rows committed after it that are due before it (a job stamped before
 *     its group commit landed), the rowid range past mark.seq (SQLite
 *     gives a row max(seq) + 1, in commit order under the write lock).
 * What that misses: a row another writer moved to a due time at or before
 * the mark in the instant between its stamp and its commit (a hand-back or
 * a redeliver racing the walk), or a seq reused after a prune took the
 * newest row. A mark lasts CLAIM_MARK_NS from the full walk that began
 * it, so such a row is claimed by the next full walk, at most that much
 * later. Claims with other exclusions, or none, leave the mark alone (the
 * rows behind it stay left out or leased, whatever they claim meanwhile). */
#define CLAIM_MARK_NS 1000000000LL

/* One walk, appending the seqs it returns to seqs[*n..max): Q_CLAIM_SELECT
 * over the due rows past next_attempt_at `from` (INT64_MIN: all), or
 * Q_CLAIM_LATE over the rows past seq `from` due by `due`. */
static enum store_err walk(struct sq *q, enum stmt which, int64_t now, const char *exclude,
                           int64_t from, int64_t due, int max, int64_t *seqs, int *n)
{
	sqlite3_stmt *sel = q->qst[which];
	int rc = SQLITE_DONE;
	sqlite3_bind_int64(sel, 1, now);
	bind_text_or_null(sel, 2, exclude);
	sqlite3_bind_int(sel, 3, max - *n);
	sqlite3_bind_int64(sel, 4, from);
	if (which == Q_CLAIM_LATE)
		sqlite3_bind_int64(sel, 5, due);
	while (*n < max && (rc = sqlite3_step(sel)) == SQLITE_ROW)
		seqs[(*n)++] = sqlite3_column_int64(sel, 0);
	enum store_err err = *n < max && rc != SQLITE_DONE ? sq_fail(q, rc, "claim") : STORE_OK;
	sqlite3_reset(sel);
	sqlite3_clear_bindings(sel);
	return err;
}

static enum store_err max_seq(struct sq *q, int64_t *seq)
{
	sqlite3_stmt *st = q->qst[Q_MAX_SEQ];
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*seq = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? STORE_OK : sq_fail(q, rc, "claim: newest seq");
}

/* Up to max candidates, in due order, into seqs; from the claim mark when
 * it holds for these exclusions, which a walk that sees every due row then
 * moves (or begins). */
static enum store_err claim_candidates(struct sq *q, int64_t now, const char *exclude, int max,
                                       int64_t *seqs, int *n)
{
	struct sq_claim_mark *m = &q->mark;
	*n = 0;
	if (!exclude)
		return walk(q, Q_CLAIM_SELECT, now, NULL, INT64_MIN, 0, max, seqs, n);
	int64_t mono = ids_mono_ns(), top = 0;
	bool from_mark =
	    m->valid && strcmp(m->exclude, exclude) == 0 && mono - m->since_ns < CLAIM_MARK_NS;
	enum store_err err = max_seq(q, &top); /* before the walks: later rows are past it */
	if (err == STORE_OK && from_mark)
		err = walk(q, Q_CLAIM_LATE, now, exclude, m->seq, m->due, max, seqs, n);
	if (err == STORE_OK)
		err = walk(q, Q_CLAIM_SELECT, now, exclude, from_mark ? m->due : INT64_MIN, 0, max,
		           seqs, n);
	if (err != STORE_OK || *n == max) {
		/* a full batch from the mark keeps it; a full walk that stopped
		 * at max has not seen enough to begin one; an error drops it */
		m->valid = from_mark && err == STORE_OK;
		return err;
	}
	if (!from_mark) {
		char *copy = cz_strdup(exclude);
		if (!copy) {
			m->valid = false;
			return STORE_OK; /* no mark: the next claim walks it all */
		}
		cz_free(m->exclude);
		m->exclude = copy;
		m->since_ns = mono;
	}
	m->due = now;
	m->seq = top;
	m->valid = true;
	return STORE_OK;
}

/* Claims the job seq if it is still claimable: *claimed says whether it
 * was, and j holds it then. */
static enum store_err claim_one(struct sq *q, int64_t seq, int64_t now, int64_t expires,
                                struct store_job *j, bool *claimed)
{
	sqlite3_stmt *up = q->qst[Q_CLAIM_UPDATE], *rd = q->qst[Q_CLAIM_READ];
	int64_t token = store_next_token(&q->base);
	enum store_err err = STORE_OK;
	sqlite3_bind_text(up, 1, q->base.owner, -1, SQLITE_STATIC);
	sqlite3_bind_int64(up, 2, token);
	sqlite3_bind_int64(up, 3, expires);
	sqlite3_bind_int64(up, 4, now);
	sqlite3_bind_int64(up, 5, seq);
	int rc = sqlite3_step(up);
	*claimed = rc == SQLITE_DONE && sqlite3_changes(q->db) == 1;
	if (rc != SQLITE_DONE)
		err = sq_fail(q, rc, "claim"); /* before the reset, with its message */
	sqlite3_reset(up);
	sqlite3_clear_bindings(up);
	if (!*claimed)
		return err;
	sqlite3_bind_int64(rd, 1, seq);
	rc = sqlite3_step(rd);
	err = rc == SQLITE_ROW ? read_job(rd, j) : sq_fail(q, rc, "claim: read the job");
	j->lease_token = token;
	sqlite3_reset(rd);
	if (err != STORE_OK) {
		store_job_clear(j);
		*claimed = false;
	}
	return err;
}

enum store_err sq_claim(struct store *b, int64_t now, int64_t lease_ms, int max,
                        const struct store_exclude *ex, struct store_job **jobs, int *n)
{
	struct sq *q = SQ(b);
	enum store_err ready = queue_ready(q);
	if (ready != STORE_OK)
		return ready;
	struct store_job *arr = NULL;
	int64_t *seqs = NULL;
	char *exclude = NULL;
	int found = 0, count = 0;
	*jobs = NULL;
	*n = 0;
	enum store_err err = exclude_json(ex, &exclude);
	if (err != STORE_OK)
		return err;
	seqs = cz_calloc((size_t)max, sizeof *seqs);
	err = seqs ? claim_candidates(q, now, exclude, max, seqs, &found) : STORE_NOMEM;
	cz_free(exclude);
	if (err != STORE_OK || found == 0)
		goto out;
	arr = cz_calloc((size_t)found, sizeof *arr);
	err = arr ? store_begin(&q->base) : STORE_NOMEM;
	if (err != STORE_OK)
		goto out;
	for (int i = 0; i < found && err == STORE_OK; i++) {
		bool claimed = false;
		err = claim_one(q, seqs[i], now, now + lease_ms, &arr[count], &claimed);
		if (claimed)
			count++;
		if (err == STORE_OK && claimed && arr[count - 1].attempts > 0)
			err = recover_attempts(q, &arr[count - 1]);
	}
	err = end_tx(q, err);
out:
	cz_free(seqs);
	if (err != STORE_OK) {
		for (int i = 0; i < count; i++)
			store_job_clear(&arr[i]);
		count = 0;
	}
	if (count == 0) {
		cz_free(arr);
		arr = NULL;
	}
	*jobs = arr;
	*n = count;
	return err;
}

enum store_err sq_next_due(struct store *b, const struct store_exclude *ex, int64_t after,
                           bool *found, int64_t *due)
{
	struct sq *q = SQ(b);
	enum store_err ready = queue_ready(q);
	if (ready != STORE_OK)
		return ready;
	sqlite3_stmt *st = q->qst[Q_NEXT_DUE];
	char *exclude = NULL;
	enum store_err err = exclude_json(ex, &exclude);
	if (err != STORE_OK)
		return err;
	bind_text_or_null(st, 1, exclude);
	sqlite3_bind_int64(st, 2, after);
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
		*found = true;
		*due = sqlite3_column_int64(st, 0);
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		err = sq_fail(q, rc, "next due");
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	cz_free(exclude);
	return err;
}

static enum store_err store_result(struct sq *q, const struct store_job *j)
{
	sqlite3_stmt *st = q->qst[Q_STORE_RESULT];
	sqlite3_bind_int64(st, 1, j->seq);
	sqlite3_bind_int64(st, 2, j->lease_token);
	sqlite3_bind_text(st, 3, j->result, 64, SQLITE_STATIC);
	sqlite3_bind_double(st, 4, j->duration_ms);
	sqlite3_bind_int64(st, 5, j->completed_at);
	return step_fenced(q, st, "store result");
}

/* Marks the job delivering and counts attempt `number`; stores j's result
 * in the same write of the row when store_res. */
static enum store_err count_attempt(struct sq *q, const struct store_job *j, bool store_res,
                                    int64_t number)
{
	sqlite3_stmt *st = q->qst[store_res ? Q_ATTEMPT_JOB_RESULT : Q_ATTEMPT_JOB];
	sqlite3_bind_int64(st, 1, j->seq);
	sqlite3_bind_int64(st, 2, j->lease_token);
	sqlite3_bind_int64(st, 3, number);
	if (store_res) {
		sqlite3_bind_text(st, 4, j->result, 64, SQLITE_STATIC);
		sqlite3_bind_double(st, 5, j->duration_ms);
		sqlite3_bind_int64(st, 6, j->completed_at);
	}
	return step_fenced(q, st, "count attempt");
}

enum store_err sq_attempt_begin(struct store *b, const struct store_job *j, bool store_res,
                                int64_t number, int64_t started_at)
{
	struct sq *q = SQ(b);
	enum store_err ready = queue_ready(q);
	if (ready != STORE_OK)
		return ready;
	enum store_err err = count_attempt(q, j, store_res, number);
	if (err != STORE_OK)
		return err;
	sqlite3_stmt *st = q->qst[Q_ATTEMPT_INSERT];
	sqlite3_bind_int64(st, 1, j->seq);
	sqlite3_bind_int64(st, 2, number);
	sqlite3_bind_int64(st, 3, started_at);
	sqlite3_bind_int64(st, 4, j->lease_token);
	return sq_step_done(q, st, "insert attempt");
}

static enum store_err end_job(struct sq *q, const struct store_job *j, enum store_verdict v,
                              int64_t now, int64_t next_attempt_at, const char *last_error)
{
	if (sqlite3_get_autocommit(q->db)) { /* its counts need the commit (store.h) */
		store_set_msg(&q->base, "a job's end outside a transaction");
		return STORE_IO;
	}
	sqlite3_stmt *st = q->qst[Q_JOB_END];
	sqlite3_bind_int64(st, 1, j->seq);
	sqlite3_bind_int64(st, 2, j->lease_token);
	sqlite3_bind_text(st, 3, store_verdict_status(v), -1, SQLITE_STATIC);
	if (v == STORE_RETRY) {
		sqlite3_bind_null(st, 4);
		sqlite3_bind_int64(st, 5, next_attempt_at);
	} else {
		sqlite3_bind_int64(st, 4, now);
		sqlite3_bind_null(st, 5);
	}
	bind_text_or_null(st, 6, v == STORE_DELIVERED ? NULL : last_error);
	enum store_err err = step_fenced(q, st, "end job");
	/* the lease proves the row unfinished: it leaves the counts now */
	if (err == STORE_OK && v != STORE_RETRY)
		err = sq_count_job(q, -1, j->client_addr, j->pending_keys, j->callback_host, now);
	return err;
}

enum store_err sq_attempt_end(struct store *b, const struct store_job *j,
                              const struct store_outcome *o)
{
	struct sq *q = SQ(b);
	enum store_err ready = queue_ready(q);
	if (ready != STORE_OK)
		return ready;
	sqlite3_stmt *st = q->qst[Q_ATTEMPT_DONE];
	sqlite3_bind_int64(st, 1, j->seq);
	sqlite3_bind_int64(st, 2, o->number);
	sqlite3_bind_double(st, 3, o->duration_ms);
	if (o->http_status > 0)
		sqlite3_bind_int(st, 4, o->http_status);
	else
		sqlite3_bind_null(st, 4);
	bind_text_or_null(st, 5, o->error_class);
	bind_text_or_null(st, 6, o->error_message);
	if (o->verdict == STORE_RETRY)
		sqlite3_bind_int64(st, 7, o->next_attempt_at);
	else
		sqlite3_bind_null(st, 7);
	sqlite3_bind_int64(st, 8, j->lease_token);
	enum store_err err = sq_step_done(q, st, "complete attempt");
	if (err != STORE_OK)
		return err;
	return end_job(q, j, o->verdict, o->now, o->next_attempt_at, o->error_message);
}

enum store_err sq_release(struct store *b, const struct store_job *j, bool store_res,
                          int64_t due_at)
{
	struct sq *q = SQ(b);
	enum store_err ready = queue_ready(q);
	if (ready != STORE_OK)
		return ready;
	enum store_err err = STORE_OK;
	if (store_res)
		err = store_result(q, j);
	if (err != STORE_OK)
		return err;
	sqlite3_stmt *st = q->qst[Q_RELEASE];
	sqlite3_bind_int64(st, 1, j->seq);
	sqlite3_bind_int64(st, 2, j->lease_token);
	sqlite3_bind_int64(st, 3, due_at);
	return step_fenced(q, st, "release");
}

/* Runs one owner-wide statement (?1 owner, ?2 time) in its own
 * transaction, or inside the caller's when one is open. */
static enum store_err owner_update(struct sq *q, enum stmt which, int64_t t, int64_t *changed)
{
	sqlite3_stmt *st = q->qst[which];
	sqlite3_bind_text(st, 1, q->base.owner, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, t);
	enum store_err err = sq_step_done(q, st, "owner update");
	if (changed)
		*changed = err == STORE_OK ? sqlite3_changes(q->db) : 0;
	return err;
}

enum store_err sq_renew(struct store *b, int64_t now, int64_t lease_ms, int64_t *renewed)
{
	struct sq *q = SQ(b);
	enum store_err ready = queue_ready(q);
	if (ready != STORE_OK)
		return ready;
	enum store_err err = store_begin(&q->base);
	if (err == STORE_OK)
		err = owner_update(q, Q_RENEW, now + lease_ms, renewed);
	return end_tx(q, err);
}

enum store_err sq_handback_all(struct store *b, int64_t now, int64_t *released)
{
	struct sq *q = SQ(b);
	enum store_err ready = queue_ready(q);
	if (ready != STORE_OK)
		return ready;
	enum store_err err = store_begin(&q->base);
	if (err != STORE_OK)
		return err;
	sqlite3_stmt *st = q->qst[Q_HANDBACK_ATTEMPTS];
	sqlite3_bind_text(st, 1, q->base.owner, -1, SQLITE_STATIC);
	err = sq_step_done(q, st, "hand back attempts");
	if (err == STORE_OK)
		err = owner_update(q, Q_HANDBACK_JOBS, now, released);
	return end_tx(q, err);
}

enum store_err sq_heartbeat(struct store *b, int64_t now, const struct store_beat *beat)
{
	struct sq *q = SQ(b);
	enum store_err ready = queue_ready(q);
	if (ready != STORE_OK)
		return ready;
	sqlite3_stmt *st = q->qst[Q_HEARTBEAT];
	sqlite3_bind_text(st, 1, q->base.owner, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, beat->pid);
	sqlite3_bind_int64(st, 3, beat->started_at);
	sqlite3_bind_int64(st, 4, now);
	sqlite3_bind_int64(st, 5, beat->busy_workers);
	sqlite3_bind_int64(st, 6, beat->workers);
	sqlite3_bind_int64(st, 7, beat->inflight);
	enum store_err err = store_begin(&q->base);
	if (err != STORE_OK) {
		sqlite3_clear_bindings(st);
		return err;
	}
	err = sq_step_done(q, st, "heartbeat");
	return end_tx(q, err);
}

static enum store_err delete_heartbeat(struct sq *q, const char *owner)
{
	sqlite3_stmt *st = q->qst[Q_HEARTBEAT_DEL];
	sqlite3_bind_text(st, 1, owner, -1, SQLITE_STATIC);
	return sq_step_done(q, st, "delete heartbeat");
}

enum store_err sq_heartbeat_remove(struct store *b)
{
	struct sq *q = SQ(b);
	enum store_err ready = queue_ready(q);
	if (ready != STORE_OK)
		return ready;
	enum store_err err = store_begin(&q->base);
	if (err == STORE_OK)
		err = delete_heartbeat(q, q->base.owner);
	return end_tx(q, err);
}

enum store_err sq_recover_dead(struct store *b, int64_t now,
                               bool (*is_dead)(const char *owner, int64_t pid, void *arg),
                               void *arg, int64_t *recovered)
{
	struct sq *q = SQ(b);
	enum store_err ready = queue_ready(q);
	if (ready != STORE_OK)
		return ready;
	int64_t total = 0;
	enum store_err err = store_begin(&q->base);
	if (err != STORE_OK)
		return err;
	sqlite3_stmt *st = q->qst[Q_OWNERS];
	sqlite3_bind_text(st, 1, q->base.owner, -1, SQLITE_STATIC);
	/* Collect first: the owner rows change while we walk them otherwise. */
	char(*dead)[STORE_OWNER_MAX] = NULL;
	size_t ndead = 0, cap = 0;
	int rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *owner = (const char *)sqlite3_column_text(st, 0);
		int64_t pid = sqlite3_column_int64(st, 1);
		if (!owner || !is_dead(owner, pid, arg))
			continue;
		if (!cz_grow(&dead, &cap, ndead, sizeof *dead)) {
			err = STORE_NOMEM;
			break;
		}
		snprintf(dead[ndead++], STORE_OWNER_MAX, "%s", owner);
	}
	if (err == STORE_OK && rc != SQLITE_DONE)
		err = sq_fail(q, rc, "read heartbeats");
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	for (size_t i = 0; i < ndead && err == STORE_OK; i++) {
		sqlite3_stmt *ex = q->qst[Q_EXPIRE_OWNER];
		sqlite3_bind_text(ex, 1, dead[i], -1, SQLITE_STATIC);
		sqlite3_bind_int64(ex, 2, now);
		err = sq_step_done(q, ex, "expire leases");
		if (err == STORE_OK) {
			total += sqlite3_changes(q->db);
			err = delete_heartbeat(q, dead[i]);
		}
	}
	cz_free(dead);
	err = end_tx(q, err);
	if (recovered)
		*recovered = err == STORE_OK ? total : 0;
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

enum store_err sq_prune(struct store *b, int64_t cutoff_ms, int64_t max_rows, int64_t *deleted)
{
	struct sq *q = SQ(b);
	sqlite3_stmt *st = NULL;
	int64_t n = 0;

	*deleted = 0;
	if (max_rows <= 0)
		return STORE_OK;
	enum store_err err = store_begin(b);
	if (err != STORE_OK)
		return err;
	/* Attempts first: they reference the requests rows (foreign_keys=ON). */
	for (int i = 0; i < 2 && err == STORE_OK; i++) {
		int rc = sqlite3_prepare_v2(q->db, prune_sql[i], -1, &st, NULL);
		if (rc != SQLITE_OK) {
			err = sq_fail(q, rc, "prepare prune");
			break;
		}
		sqlite3_bind_int64(st, 1, cutoff_ms);
		sqlite3_bind_int64(st, 2, max_rows);
		rc = sqlite3_step(st);
		if (rc != SQLITE_DONE)
			err = sq_fail(q, rc, "prune");
		else if (i == 1)
			n = sqlite3_changes64(q->db);
		sqlite3_finalize(st);
		st = NULL;
	}
	if (err == STORE_OK)
		err = store_commit(b);
	if (err != STORE_OK) {
		store_rollback(b);
		return err;
	}
	*deleted = n;
	return STORE_OK;
}

/* The exclusion list as the statements bind it: a JSON array of strings
 * for json_each, or NULL (*out) when there is none. */
static enum store_err exclude_json(const struct store_exclude *ex, char **out)
{
	*out = NULL;
	if (!ex || ex->n == 0)
		return STORE_OK;
	json_object *arr = json_object_new_array_ext((int)ex->n);
	if (!arr)
		return STORE_NOMEM;
	for (size_t i = 0; i < ex->n; i++) {
		json_object *k = json_object_new_string(ex->keys[i]);
		if (!k || json_object_array_add(arr, k) != 0) {
			json_object_put(k);
			json_object_put(arr);
			return STORE_NOMEM;
		}
	}
	*out = cz_strdup(json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN));
	json_object_put(arr);
	return *out ? STORE_OK : STORE_NOMEM;
}

void sq_queue_finalize(struct sq *q)
{
	cz_free(q->mark.exclude);
	q->mark = (struct sq_claim_mark){0};
	for (int i = 0; i < Q__COUNT; i++) {
		sqlite3_finalize(q->qst[i]);
		q->qst[i] = NULL;
	}
}
