/*
 * store_pg: the PostgreSQL backend of the store (store.h is the contract,
 * store_int.h the table of functions; sql/postgres/ the schema). Several
 * hosts share one queue: every intake bound, lease and idempotency key lives
 * in the database, never in a process.
 *
 * Connection
 *   One PGconn per struct store (one thread at a time). The target URL is
 *   passed to PQconnectdbParams with expand_dbname, after defaults it may
 *   override (connect_timeout, tcp_user_timeout and keepalives, so a server
 *   that vanishes without a RST is noticed in seconds, not at the TCP
 *   retransmission timeout) and before client_encoding=UTF8, which it may
 *   not. Statements are prepared once per connection (PQprepare, on first
 *   use) and sent with parameters, never spliced into SQL text.
 *
 * Migrations
 *   sql/postgres/NNN_*.sql, compiled in (consuma_pg_migrations). The table
 *   consuma_schema holds the applied versions. At open a lock-free read says
 *   whether anything is to do; if so, one transaction takes
 *   pg_advisory_xact_lock(MIGRATE_LOCK), reads the version again (another
 *   host may have migrated while we waited), runs every newer script and
 *   records it, and commits: DDL is transactional here, so a failure
 *   leaves the old schema whole, and two hosts starting at once apply each
 *   script once. A schema newer than the newest script we know is refused
 *   (STORE_MIGRATION).
 *
 * Durability
 *   A 202 means committed at synchronous_commit=on: the commit record is
 *   flushed (and on a synchronous standby, if one is configured) before
 *   COMMIT returns, and before the transaction becomes visible to anyone,
 *   so a replayed key names a job that is already durable and
 *   make_durable has nothing left to do. Every transaction sets it itself
 *   (SET LOCAL): the first job of a transaction sets it on, whatever the
 *   server's or the role's default, and every other transaction (the
 *   deliverer's bookkeeping, /sync records, claims) runs at off, as SQLite's
 *   synchronous=NORMAL: a commit returns without waiting for the WAL flush
 *   and a crash of the server may lose its last few hundred milliseconds of
 *   them, which costs a repeated delivery (at-least-once) or a /sync record,
 *   never an accepted job. lock_timeout is STORE_BUSY_TIMEOUT_MS the same
 *   way, so a write never waits on a row lock longer than SQLite's busy
 *   handler would (then STORE_BUSY).
 *
 * Idempotency, and PgBouncer
 *   A key is a unique index (requests_idempotency), never an advisory lock:
 *   the insert says ON CONFLICT DO NOTHING and, when another transaction
 *   won the race, reads the winner's row and answers the replay. Nothing
 *   here keeps session state across transactions (SET LOCAL, transaction
 *   advisory locks only), so the API's connections work through PgBouncer
 *   in transaction mode (PgBouncer 1.21 or newer, with max_prepared_statements
 *   set, since the statements are prepared). The deliverer's connection
 *   LISTENs, which needs a session: point it at the server or a session pool.
 *
 * Claims
 *   One statement: the due rows in (next_attempt_at, seq) order through
 *   requests_due, FOR UPDATE SKIP LOCKED so two deliverers never wait for
 *   each other and never take the same row, then the lease (owner, a fresh
 *   token per row, expiry as the next due time) and the dead holder's
 *   'sending' attempts marked 'unknown', as in SQLite. Every later write on
 *   a job carries its token; no row changed is STORE_FENCED. A dead owner's
 *   leases are simply due again after their expiry, and store_recover_dead
 *   expires them at once when the deliverer that starts knows the owner is
 *   dead. No transaction is ever open across a callback: the deliverer's
 *   writes are short batches of their own.
 *   The renewal (every lease row of this owner, on the deliverer's main
 *   connection) skips the rows its own delivery batch (the other
 *   connection) holds locked: waiting for them, while the batch waited for
 *   a row the renewal had locked, was a deadlock that cost a renewal or an
 *   attempt's write (4 in 2,000 jobs at a 2 s lease, the duplicates of
 *   test_hosts_pg). A skipped row is being written by its owner right now;
 *   the next renewal, a third of a lease later, moves it.
 *
 * Intake
 *   queue_depth, client_pending and host_pending are counters in the
 *   database kept by triggers (sql/postgres/001_init.sql), so every host
 *   sees the same figures and a check reads a handful of rows. They are
 *   split by writer so that no row is hot; the file says what that costs
 *   (a bound can be passed by the jobs of batches committing at the same
 *   moment on other connections). store_prune folds them. A batch's jobs
 *   are checked one by one and written together at commit ("the intake
 *   batch" below): a batch of n jobs to one destination costs about four
 *   round trips (BEGIN, the counters, one INSERT, COMMIT with its NOTIFY),
 *   not n of each.
 *
 * Wake-up
 *   The committer sends NOTIFY consuma_jobs inside its batch transaction
 *   (delivered at commit, to every listener), at most once per
 *   NOTIFY_GAP_MS: NOTIFY takes a database-wide lock at commit, so a
 *   notice per commit (or a row trigger, one per job) would make the
 *   committers take turns. A batch inside the gap owes its notice to the
 *   next batch; the deliverer's fallback poll covers the last one of a
 *   burst. store_listen gives the deliverer the socket to poll.
 *
 * Retention
 *   store_prune deletes finished rows in batches by seq (attempts go with
 *   them by ON DELETE CASCADE), rather than dropping a partition per day:
 *   partitioning would put the partition key into every unique index (id,
 *   the idempotency key), so it would lose the uniqueness both rely on.
 *   Measured: 100000 finished rows with an attempt each went in 101
 *   batches of 1000 in 5.0 s (~49 ms a batch, 20000 rows/s, on the shared
 *   2-core test machine under a load average of 10): a day of a busy
 *   queue is pruned in minutes, a batch at a time, never one long lock.
 *
 * Measured (the shared 2-core test machine, load average 4-10, the
 * private cluster of tools/pg.sh with fsync and synchronous_commit on, the
 * same Release build both ways; throwaway drivers, not yet tools/bench.sh):
 *   POST /async through lighttpd and two API processes (wrk -t2 -c32
 *   -d10s, no deliverer): 3394 req/s against SQLite's 4435 (0.77x), 6.8
 *   jobs per commit against 4.3. The whole async path (consuma-storm,
 *   4000 jobs, callbacks checked): 1048 against 2190 jobs/s (0.48x; 0.37
 *   to 0.48 over runs): the deliverer's two writes per job are two round
 *   trips each way on a machine whose two cores also run the server.
 *   Through one committer at the store (64 threads): 13919 jobs/s against
 *   32607; /sync records 48463/s against 60087.
 *
 * Errors
 *   A lost connection (CONNECTION_BAD, SQLSTATE class 08, 57P01-57P03,
 *   53300 too many connections) is STORE_UNAVAILABLE; the next call outside
 *   a transaction tries PQreset, so the service recovers without a restart
 *   (a connection that died inside a transaction stays failed until the
 *   caller's rollback: a reset there would run the rest of the caller's
 *   writes outside its transaction). 53100 (disk full) is STORE_FULL;
 *   40001, 40P01, 55P03 and 57014 (serialization, deadlock, lock and
 *   statement timeouts) are STORE_BUSY; anything else is STORE_IO with the
 *   server's message in store_errmsg.
 */
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "alloc.h"
#include "ids.h"
#include "log.h"
#include "migrations.h"
#include "store_int.h"
#include "store_tally.h"

/* pg_advisory_xact_lock key of the migrations ("consuma" in ASCII). */
#define MIGRATE_LOCK    "27988542868516193"
#define NOTIFY_CHANNEL  "consuma_jobs"
#define NOTIFY_GAP_MS   3
#define FOLD_ROWS       "1000"
#define DRAIN_KEEP_S    3600
#define PARAMS_MAX      16
#define RESET_PAUSE_MS  1000
#define TEXT_OID        25
#define INT8_OID        20
#define FLOAT8_OID      701
#define BOOL_OID        16
#define TEXT_ARRAY_OID  1009
#define INT8_ARRAY_OID  1016
#define UNKNOWN_MSG     "outcome unknown: the deliverer stopped during this attempt"
#define UNFINISHED      "finished_at IS NULL AND mode = 'async'"
#define NOT_EXCLUDED(n) "(" n "::text[] IS NULL OR claim_key <> ALL (" n "::text[]))"
#define SET_LOCALS_OFF  "SET LOCAL synchronous_commit TO off; SET LOCAL lock_timeout TO '10s'"

enum ps_id {
	PS_IDEM_FIND,
	PS_IDEM_FORGET,
	PS_BASES,
	PS_GET,
	PS_DEPTH,
	PS_HEARTBEATS,
	PS_DRAINED,
	PS_CLAIM,
	PS_NEXT_DUE,
	PS_ATTEMPT_BEGIN,
	PS_ATTEMPT_END,
	PS_RELEASE,
	PS_RENEW,
	PS_HANDBACK,
	PS_HEARTBEAT,
	PS_HEARTBEAT_DEL,
	PS_OWNERS,
	PS_EXPIRE_OWNER,
	PS_PRUNE,
	PS_LIST, /* the first of LIST_VARIANTS */
	PS__COUNT = PS_LIST + 16
};

struct ps {
	const char *sql;
	int n;
	Oid types[PARAMS_MAX];
};

#define T TEXT_OID
#define I INT8_OID
#define F FLOAT8_OID
#define B BOOL_OID

static const struct ps ps_table[PS_LIST] = {
    [PS_IDEM_FIND] = {"SELECT seq, id, status, body_hash, created_at FROM requests "
                      "WHERE coalesce(client_addr, '') = coalesce($1, '') "
                      "AND idempotency_key = $2",
                      2,
                      {T, T}},
    [PS_IDEM_FORGET] = {"UPDATE requests SET idempotency_key = NULL WHERE seq = $1", 1, {I}},
    /* The counters a job's bounds read: the depth, the client's share, and
     * one row per key of $2 (none: one row, key NULL). */
    [PS_BASES] = {"SELECT (SELECT coalesce(sum(value), 0) FROM counters "
                  "WHERE name = 'queue_depth'), "
                  "(SELECT coalesce(sum(n), 0) FROM client_pending "
                  "WHERE client = coalesce($1, '')), k.key, "
                  "(SELECT coalesce(sum(n), 0) FROM host_pending WHERE host = k.key) "
                  "FROM (SELECT 1) one LEFT JOIN unnest($2::text[]) AS k(key) ON true",
                  2,
                  {T, TEXT_ARRAY_OID}},
    /* the record and its attempts in one statement: one snapshot */
    [PS_GET] = {"SELECT r.id, r.mode, r.status, coalesce(r.callback_status, ''), r.iterations, "
                "coalesce(r.result, ''), r.duration_ms, r.input_data, r.callback_url, "
                "r.created_at, r.started_at, r.completed_at, r.finished_at, r.attempts, "
                "r.next_attempt_at, r.last_error, a.number, a.state, a.started_at, "
                "a.duration_ms, a.http_status, a.error_class, a.error_message, "
                "a.next_attempt_at FROM requests r LEFT JOIN attempts a "
                "ON a.request_seq = r.seq AND r.mode = 'async' "
                "WHERE r.id = $1 AND ($2::text IS NULL OR r.owner = $2) ORDER BY a.number",
                2,
                {T, T}},
    [PS_DEPTH] = {"SELECT coalesce(sum(value), 0) FROM counters WHERE name = 'queue_depth'",
                  0,
                  {0}},
    [PS_HEARTBEATS] = {"SELECT owner, pid, started_at, beat_at, busy_workers, workers, inflight "
                       "FROM heartbeats ORDER BY beat_at DESC",
                       0,
                       {0}},
    [PS_DRAINED] = {"SELECT coalesce(sum(n), 0) FROM drain WHERE second >= $1", 1, {I}},
    /* $1 now, $2 exclusions, $3 max, $4 owner, $5 tokens (one per row, in
     * claim order), $6 lease expiry. The main query's snapshot does not see
     * m's changes: the attempts it marked unknown are counted from m. */
    [PS_CLAIM] =
        {"WITH c AS (SELECT seq, next_attempt_at AS due FROM requests "
         "WHERE " UNFINISHED " AND next_attempt_at <= $1 "
         "AND (lease_expires_at IS NULL OR lease_expires_at <= $1) "
         "AND " NOT_EXCLUDED(
             "$2") " ORDER BY next_attempt_at, seq LIMIT $3 "
                   "FOR UPDATE SKIP LOCKED), "
                   "n AS (SELECT seq, row_number() OVER (ORDER BY due, seq) AS rn FROM c), "
                   "u AS (UPDATE requests r SET lease_owner = $4, lease_token = ($5)[n.rn], "
                   "lease_expires_at = $6, next_attempt_at = $6, "
                   "status = CASE WHEN r.status = 'queued' THEN 'running' ELSE r.status END, "
                   "callback_status = CASE WHEN r.callback_status = 'delivering' "
                   "THEN 'retrying' ELSE r.callback_status END, "
                   "started_at = coalesce(r.started_at, $1) FROM n WHERE r.seq = n.seq "
                   "RETURNING r.seq, n.rn, r.id, r.status, r.input_data, r.iterations, "
                   "r.callback_url, coalesce(r.callback_host, '') AS host, r.result, "
                   "r.duration_ms, r.created_at, r.completed_at, r.attempts, r.lease_token), "
                   "m AS (UPDATE attempts a SET state = 'unknown', error_class = 'unknown', "
                   "error_message = '" UNKNOWN_MSG "' FROM u WHERE a.request_seq = u.seq "
                   "AND u.attempts > 0 AND a.state = 'sending' RETURNING a.request_seq) "
                   "SELECT u.seq, u.id, u.status, u.input_data, u.iterations, u.callback_url, "
                   "u.host, u.result, u.duration_ms, u.created_at, u.completed_at, u.attempts, "
                   "u.lease_token, (SELECT count(*) FROM attempts a WHERE a.request_seq = u.seq "
                   "AND a.state = 'unknown') + (SELECT count(*) FROM m "
                   "WHERE m.request_seq = u.seq) FROM u ORDER BY u.rn",
         6,
         {I, TEXT_ARRAY_OID, I, T, INT8_ARRAY_OID, I}},
    [PS_NEXT_DUE] = {"SELECT next_attempt_at FROM requests WHERE " UNFINISHED
                     " AND next_attempt_at > $2 AND " NOT_EXCLUDED(
                         "$1") " ORDER BY next_attempt_at, seq LIMIT 1",
                     2,
                     {TEXT_ARRAY_OID, INT8_OID}},
    /* $3: store the result ($4 result, $5 duration, $6 completed_at) */
    [PS_ATTEMPT_BEGIN] = {"WITH u AS (UPDATE requests SET "
                          "status = CASE WHEN $3 THEN 'completed' ELSE status END, "
                          "result = CASE WHEN $3 THEN $4 ELSE result END, "
                          "duration_ms = CASE WHEN $3 THEN $5 ELSE duration_ms END, "
                          "completed_at = CASE WHEN $3 THEN $6 ELSE completed_at END, "
                          "callback_status = 'delivering', attempts = greatest(attempts, $7) "
                          "WHERE seq = $1 AND lease_token = $2 RETURNING seq) "
                          "INSERT INTO attempts (request_seq, number, state, started_at, "
                          "lease_token) SELECT seq, $7, 'sending', $8, $2 FROM u",
                          8,
                          {I, I, B, T, F, I, I, I}},
    /* The attempt row is completed even when the job is fenced; the count
     * of j says whether the job moved. A job finishes here and nowhere
     * else, so this statement takes it off the counters (f: j's row when
     * it finished; a finished row has no token, so j never finishes one
     * twice), in plain SQL: a row trigger's plpgsql call per job halved
     * the deliverer's throughput (sql/postgres/001_init.sql). */
    [PS_ATTEMPT_END] =
        {"WITH a AS (UPDATE attempts SET state = 'done', duration_ms = $3, "
         "http_status = $4, error_class = $5, error_message = $6, "
         "next_attempt_at = $7 WHERE request_seq = $1 AND number = $8 "
         "AND lease_token = $2 AND state = 'sending' RETURNING 1), "
         "j AS (UPDATE requests SET callback_status = $9, finished_at = $10, "
         "next_attempt_at = $11, last_error = $12, lease_owner = NULL, "
         "lease_token = NULL, lease_expires_at = NULL "
         "WHERE seq = $1 AND lease_token = $2 "
         "RETURNING finished_at, client_addr, pending_keys, callback_host), "
         "f AS (SELECT * FROM j WHERE finished_at IS NOT NULL), "
         "d AS (INSERT INTO counters (name, shard, value) "
         "SELECT 'queue_depth', pg_backend_pid(), -1 FROM f "
         "ON CONFLICT (name, shard) DO UPDATE "
         "SET value = counters.value + excluded.value), "
         "c AS (INSERT INTO client_pending (client, shard, n) "
         "SELECT coalesce(client_addr, ''), pg_backend_pid(), -1 FROM f "
         "ON CONFLICT (client, shard) DO UPDATE SET n = client_pending.n + excluded.n), "
         "h AS (INSERT INTO host_pending (host, shard, n) "
         "SELECT k, pg_backend_pid(), -count(*) FROM f, "
         "consuma_pending_keys(f.pending_keys, f.callback_host) k "
         "WHERE k IS NOT NULL GROUP BY k ORDER BY k "
         "ON CONFLICT (host, shard) DO UPDATE SET n = host_pending.n + excluded.n), "
         "r AS (INSERT INTO drain (second, shard, n) "
         "SELECT finished_at / 1000, pg_backend_pid(), 1 FROM f "
         "ON CONFLICT (second, shard) DO UPDATE SET n = drain.n + 1) "
         "SELECT (SELECT count(*) FROM j), (SELECT count(*) FROM a)",
         12,
         {I, I, F, I, T, T, I, I, T, I, I, T}},
    [PS_RELEASE] = {"UPDATE requests SET "
                    "status = CASE WHEN $3 THEN 'completed' WHEN status = 'running' "
                    "THEN 'queued' ELSE status END, "
                    "result = CASE WHEN $3 THEN $4 ELSE result END, "
                    "duration_ms = CASE WHEN $3 THEN $5 ELSE duration_ms END, "
                    "completed_at = CASE WHEN $3 THEN $6 ELSE completed_at END, "
                    "next_attempt_at = $7, lease_owner = NULL, lease_token = NULL, "
                    "lease_expires_at = NULL WHERE seq = $1 AND lease_token = $2",
                    7,
                    {I, I, B, T, F, I, I}},
    /* SKIP LOCKED: see "Claims" at the top (a renewal never waits). */
    [PS_RENEW] = {"UPDATE requests SET lease_expires_at = $2, next_attempt_at = $2 "
                  "WHERE seq IN (SELECT seq FROM requests WHERE lease_owner = $1 AND " UNFINISHED
                  " FOR UPDATE SKIP LOCKED)",
                  2,
                  {T, I}},
    [PS_HANDBACK] = {"WITH a AS (UPDATE attempts SET state = 'unknown', error_class = 'unknown', "
                     "error_message = '" UNKNOWN_MSG "' WHERE state = 'sending' "
                     "AND request_seq IN (SELECT seq FROM requests "
                     "WHERE lease_owner = $1 AND " UNFINISHED ")) "
                     "UPDATE requests SET lease_owner = NULL, lease_token = NULL, "
                     "lease_expires_at = NULL, next_attempt_at = $2, "
                     "status = CASE WHEN status = 'running' THEN 'queued' ELSE status END, "
                     "callback_status = CASE WHEN callback_status = 'delivering' "
                     "THEN 'retrying' ELSE callback_status END "
                     "WHERE lease_owner = $1 AND " UNFINISHED,
                     2,
                     {T, I}},
    [PS_HEARTBEAT] = {"INSERT INTO heartbeats (owner, pid, started_at, beat_at, busy_workers, "
                      "workers, inflight) VALUES ($1, $2, $3, $4, $5, $6, $7) "
                      "ON CONFLICT (owner) DO UPDATE SET pid = excluded.pid, "
                      "started_at = excluded.started_at, beat_at = excluded.beat_at, "
                      "busy_workers = excluded.busy_workers, workers = excluded.workers, "
                      "inflight = excluded.inflight",
                      7,
                      {T, I, I, I, I, I, I}},
    [PS_HEARTBEAT_DEL] = {"DELETE FROM heartbeats WHERE owner = $1", 1, {T}},
    [PS_OWNERS] = {"SELECT owner, pid FROM heartbeats WHERE owner <> $1", 1, {T}},
    [PS_EXPIRE_OWNER] = {"UPDATE requests SET lease_expires_at = $2, next_attempt_at = $2 "
                         "WHERE lease_owner = $1 AND " UNFINISHED,
                         2,
                         {T, I}},
    /* The oldest $2 rows by seq (the primary key's order: the work is
     * bounded by $2 whatever the table size), of them the finished ones
     * older than $1; attempts go by ON DELETE CASCADE. */
    [PS_PRUNE] = {"DELETE FROM requests WHERE seq IN (SELECT seq FROM (SELECT seq, finished_at "
                  "FROM requests ORDER BY seq LIMIT $2) o "
                  "WHERE finished_at IS NOT NULL AND finished_at < $1)",
                  2,
                  {I, I}},
};

#undef T
#undef I
#undef F
#undef B

/* The list: 16 statements, one per shape of the query (owner or not, mode
 * none, sync, async or another, status or not), so that the mode is a
 * literal where it can be and the planner can use requests_async, and an
 * owner's list walks requests_owner. The parameters are always $1 mode,
 * $2 status, $3 owner, $4 limit, $5 offset. */
#define LIST_OWNER  8
#define LIST_STATUS 4
static const char *const list_modes[4] = {"", "mode = 'sync'", "mode = 'async'", "mode = $1"};

/* A /sync record waiting for the batch's INSERT at commit. */
struct queued_rec {
	struct sync_record r; /* its strings point into text */
	char *text;
};

/* A job checked and waiting for the batch's INSERT at commit. */
struct queued_job {
	struct job_insert job; /* its strings point into text */
	char *text;
	struct job_result *res; /* the caller's answer, fixed up on a key race */
};

struct pg {
	struct store base;
	struct queued_job *queued; /* the intake batch (see "the intake batch") */
	size_t nqueued, capqueued;
	struct queued_rec *recs;
	size_t nrecs, caprecs;
	bool depth_known;
	int64_t depth_base, depth_delta;
	struct tallies clients, hosts;
	PGconn *conn;
	bool prepared[PS__COUNT];
	bool in_tx;      /* the caller's transaction (or ours) is open */
	bool tx_durable; /* synchronous_commit is on in the open transaction */
	bool listening;
	bool notify_owed;        /* a batch with jobs committed without a notice */
	int64_t reset_failed_ms; /* monotonic; 0: the last reset worked */
	int64_t notified_ms;
	char drvmsg[512];
};

static void batch_clear(struct pg *p);
static enum store_err flush_batch(struct pg *p);

static struct pg *pg_of(struct store *s)
{
	return (struct pg *)s;
}

/* ---- parameters ---------------------------------------------------------- */

struct params {
	const char *v[PARAMS_MAX];
	char num[PARAMS_MAX][32];
	int n;
};

static void p_text(struct params *q, const char *v)
{
	q->v[q->n++] = v;
}

static void p_int(struct params *q, int64_t v)
{
	snprintf(q->num[q->n], sizeof q->num[q->n], "%" PRId64, v);
	q->v[q->n] = q->num[q->n];
	q->n++;
}

static void p_real(struct params *q, double v)
{
	snprintf(q->num[q->n], sizeof q->num[q->n], "%.17g", v);
	q->v[q->n] = q->num[q->n];
	q->n++;
}

static void p_bool(struct params *q, bool v)
{
	p_text(q, v ? "t" : "f");
}

/* v[0..n) as a text[] literal, each element quoted and escaped for
 * PostgreSQL's array syntax (cz_malloc'd; NULL when memory ran out). */
static char *text_array(const char *const *v, size_t n)
{
	size_t size = 3;
	for (size_t i = 0; i < n; i++)
		size += 3 + 2 * strlen(v[i]);
	char *buf = cz_malloc(size);
	if (!buf)
		return NULL;
	size_t at = 0;
	buf[at++] = '{';
	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			buf[at++] = ',';
		buf[at++] = '"';
		for (const char *c = v[i]; *c; c++) {
			if (*c == '"' || *c == '\\')
				buf[at++] = '\\';
			buf[at++] = *c;
		}
		buf[at++] = '"';
	}
	buf[at++] = '}';
	buf[at] = '\0';
	return buf;
}

/* ---- errors ------------------------------------------------------------ */

static bool lost(struct pg *p)
{
	return PQstatus(p->conn) == CONNECTION_BAD;
}

static enum store_err from_sqlstate(struct pg *p, const char *st)
{
	if (lost(p) || !st)
		return lost(p) ? STORE_UNAVAILABLE : STORE_IO;
	if (strncmp(st, "08", 2) == 0 || strcmp(st, "57P01") == 0 || strcmp(st, "57P02") == 0 ||
	    strcmp(st, "57P03") == 0 || strcmp(st, "53300") == 0)
		return STORE_UNAVAILABLE;
	if (strcmp(st, "53100") == 0)
		return STORE_FULL;
	if (strcmp(st, "40001") == 0 || strcmp(st, "40P01") == 0 || strcmp(st, "55P03") == 0 ||
	    strcmp(st, "57014") == 0)
		return STORE_BUSY;
	return STORE_IO;
}

/* Copies msg without its trailing newline. */
static void set_driver_msg(struct pg *p, const char *what, const char *msg)
{
	size_t n = msg ? strlen(msg) : 0;
	while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		n--;
	store_set_msg(&p->base, "%s: %.*s", what, (int)n, msg ? msg : "");
}

/* Records r's failure (r may be NULL: no result at all) and frees r. */
static enum store_err fail(struct pg *p, PGresult *r, const char *what)
{
	enum store_err err;
	if (r) {
		err = from_sqlstate(p, PQresultErrorField(r, PG_DIAG_SQLSTATE));
		set_driver_msg(p, what, PQresultErrorMessage(r));
		PQclear(r);
	} else {
		err = lost(p) ? STORE_UNAVAILABLE : STORE_NOMEM;
		set_driver_msg(p, what, PQerrorMessage(p->conn));
	}
	return err;
}

/* True when r failed with SQLSTATE state. */
static bool has_state(const PGresult *r, const char *state)
{
	const char *st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	return st && strcmp(st, state) == 0;
}

static bool result_ok(const PGresult *r)
{
	ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
	return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

/* ---- the connection -------------------------------------------------------- */

static enum store_err relisten(struct pg *p);

/* Outside a transaction, a lost connection is reset (the statements and
 * the LISTEN are a fresh connection's to redo), at most once per
 * RESET_PAUSE_MS, so that while the server is away every caller is
 * answered STORE_UNAVAILABLE at once instead of each waiting out a
 * connect_timeout; inside a transaction it stays lost until the caller's
 * rollback. */
static enum store_err usable(struct pg *p)
{
	if (!lost(p))
		return STORE_OK;
	if (p->in_tx) {
		store_set_msg(&p->base, "the connection to PostgreSQL was lost in a transaction");
		return STORE_UNAVAILABLE;
	}
	int64_t now = ids_mono_ms();
	if (p->reset_failed_ms && now - p->reset_failed_ms < RESET_PAUSE_MS)
		return STORE_UNAVAILABLE; /* answer at once; the message is the last try's */
	PQreset(p->conn);
	if (lost(p)) {
		p->reset_failed_ms = now;
		set_driver_msg(p, "reconnect", PQerrorMessage(p->conn));
		return STORE_UNAVAILABLE;
	}
	p->reset_failed_ms = 0;
	memset(p->prepared, 0, sizeof p->prepared);
	log_event(L_INFO, "store.reconnected", "backend=postgres");
	return p->listening ? relisten(p) : STORE_OK;
}

/* Runs sql (no parameters, possibly several statements) to completion. */
static enum store_err exec_simple(struct pg *p, const char *sql, const char *what)
{
	PGresult *r = PQexec(p->conn, sql);
	if (!result_ok(r))
		return fail(p, r, what);
	PQclear(r);
	return STORE_OK;
}

static void list_sql(int variant, char *buf, size_t len)
{
	const char *mode = list_modes[variant & 3];
	bool status = variant & LIST_STATUS, owner = variant & LIST_OWNER;
	int n = 0;
	const char *conds[3];
	if (owner)
		conds[n++] = "owner = $3";
	if (mode[0])
		conds[n++] = mode;
	if (status)
		conds[n++] = "(status = $2 OR callback_status = $2)";
	snprintf(buf, len,
	         "SELECT id, mode, status, coalesce(callback_status, ''), duration_ms, created_at "
	         "FROM requests%s%s%s%s%s%s ORDER BY seq DESC LIMIT $4 OFFSET $5",
	         n > 0 ? " WHERE " : "", n > 0 ? conds[0] : "", n > 1 ? " AND " : "",
	         n > 1 ? conds[1] : "", n > 2 ? " AND " : "", n > 2 ? conds[2] : "");
}

static enum store_err prepare(struct pg *p, enum ps_id id)
{
	static const Oid list_types[5] = {TEXT_OID, TEXT_OID, TEXT_OID, INT8_OID, INT8_OID};
	char name[16], sql[512];
	const char *text;
	const Oid *types;
	int n;
	if (id >= PS_LIST) {
		list_sql((int)(id - PS_LIST), sql, sizeof sql);
		text = sql;
		types = list_types;
		n = 5;
	} else {
		text = ps_table[id].sql;
		types = ps_table[id].types;
		n = ps_table[id].n;
	}
	snprintf(name, sizeof name, "cz%d", (int)id);
	PGresult *r = PQprepare(p->conn, name, text, n, types);
	if (!result_ok(r))
		return fail(p, r, "prepare");
	PQclear(r);
	p->prepared[id] = true;
	return STORE_OK;
}

/* Runs the prepared statement id; NULL with *err set on failure. */
static PGresult *run(struct pg *p, enum ps_id id, const struct params *q, enum store_err *err,
                     const char *what)
{
	char name[16];
	*err = usable(p);
	if (*err != STORE_OK)
		return NULL;
	if (!p->prepared[id]) {
		*err = prepare(p, id);
		if (*err != STORE_OK)
			return NULL;
	}
	snprintf(name, sizeof name, "cz%d", (int)id);
	PGresult *r = PQexecPrepared(p->conn, name, q ? q->n : 0, q ? q->v : NULL, NULL, NULL, 0);
	if (!result_ok(r) && !p->in_tx && has_state(r, "26000")) {
		/* a pooler gave us a server connection that never saw our
		 * statements: prepare them again, here and on first use */
		PQclear(r);
		memset(p->prepared, 0, sizeof p->prepared);
		*err = prepare(p, id);
		if (*err != STORE_OK)
			return NULL;
		r = PQexecPrepared(p->conn, name, q ? q->n : 0, q ? q->v : NULL, NULL, NULL, 0);
	}
	if (!result_ok(r)) {
		*err = fail(p, r, what);
		return NULL;
	}
	*err = STORE_OK;
	return r;
}

/* Runs a statement that returns no rows; *changed its row count. */
static enum store_err run_cmd(struct pg *p, enum ps_id id, const struct params *q, int64_t *changed,
                              const char *what)
{
	enum store_err err;
	PGresult *r = run(p, id, q, &err, what);
	if (!r)
		return err;
	if (changed)
		*changed = strtoll(PQcmdTuples(r), NULL, 10);
	PQclear(r);
	return STORE_OK;
}

/* ---- columns --------------------------------------------------------------- */

static bool is_null(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) != 0;
}

static int64_t col_int(const PGresult *r, int row, int col)
{
	return is_null(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

static double col_real(const PGresult *r, int row, int col)
{
	return is_null(r, row, col) ? 0 : strtod(PQgetvalue(r, row, col), NULL);
}

static void col_copy(const PGresult *r, int row, int col, char *dst, size_t size)
{
	snprintf(dst, size, "%s", is_null(r, row, col) ? "" : PQgetvalue(r, row, col));
}

/* A cz_malloc'd copy; NULL for SQL NULL. *ok false when memory ran out. */
static char *col_dup(const PGresult *r, int row, int col, bool *ok)
{
	if (is_null(r, row, col))
		return NULL;
	char *v = cz_strndup(PQgetvalue(r, row, col), (size_t)PQgetlength(r, row, col));
	if (!v)
		*ok = false;
	return v;
}

/* ---- open, migrate, close -------------------------------------------------- */

static int newest_migration(void)
{
	int v = 0;
	for (size_t i = 0; i < consuma_pg_migrations_count; i++)
		if (consuma_pg_migrations[i].version > v)
			v = consuma_pg_migrations[i].version;
	return v;
}

/* The applied version (0: none); under the lock or not. */
static enum store_err schema_version(struct pg *p, int *version)
{
	PGresult *r = PQexec(p->conn, "SELECT to_regclass('consuma_schema') IS NOT NULL");
	if (!result_ok(r))
		return fail(p, r, "read schema version");
	bool exists = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	*version = 0;
	if (!exists)
		return STORE_OK;
	r = PQexec(p->conn, "SELECT coalesce(max(version), 0) FROM consuma_schema");
	if (!result_ok(r))
		return fail(p, r, "read schema version");
	*version = (int)col_int(r, 0, 0);
	PQclear(r);
	return STORE_OK;
}

static enum store_err check_version(struct pg *p, int current, int newest)
{
	if (current <= newest)
		return STORE_OK;
	store_set_msg(&p->base, "the database schema is version %d, newer than this program's %d",
	              current, newest);
	return STORE_MIGRATION;
}

static enum store_err apply(struct pg *p, const struct migration *m)
{
	PGresult *r = PQexec(p->conn, m->sql);
	if (!result_ok(r)) {
		fail(p, r, m->name);
		return STORE_MIGRATION;
	}
	PQclear(r);
	char version[16];
	const char *v[3] = {version, m->name, NULL};
	char now[32];
	snprintf(version, sizeof version, "%d", m->version);
	snprintf(now, sizeof now, "%" PRId64, ids_now_ms());
	v[2] = now;
	r = PQexecParams(p->conn,
	                 "INSERT INTO consuma_schema (version, name, applied_at) "
	                 "VALUES ($1::integer, $2, $3::bigint)",
	                 3, NULL, v, NULL, NULL, 0);
	if (!result_ok(r))
		return fail(p, r, "record migration");
	PQclear(r);
	return STORE_OK;
}

static enum store_err migrate(struct pg *p)
{
	int newest = newest_migration(), current = 0, from;
	enum store_err err = schema_version(p, &current);
	if (err == STORE_OK)
		err = check_version(p, current, newest);
	if (err != STORE_OK || current == newest)
		return err;
	err = exec_simple(p,
	                  "BEGIN; SELECT pg_advisory_xact_lock(" MIGRATE_LOCK "); "
	                  "CREATE TABLE IF NOT EXISTS consuma_schema (version integer PRIMARY KEY, "
	                  "name text NOT NULL, applied_at bigint NOT NULL)",
	                  "migration lock");
	if (err != STORE_OK)
		goto out;
	err = schema_version(p, &current); /* another host may have migrated */
	if (err == STORE_OK)
		err = check_version(p, current, newest);
	if (err != STORE_OK || current == newest)
		goto out;
	from = current;
	for (int v = current + 1; v <= newest && err == STORE_OK; v++)
		for (size_t i = 0; i < consuma_pg_migrations_count && err == STORE_OK; i++)
			if (consuma_pg_migrations[i].version == v)
				err = apply(p, &consuma_pg_migrations[i]);
	if (err == STORE_OK)
		err = exec_simple(p, "COMMIT", "commit migration");
	if (err == STORE_OK)
		log_event(L_INFO, "store.migrated", "backend=postgres from=%d to=%d", from, newest);
out:
	if (PQtransactionStatus(p->conn) != PQTRANS_IDLE && !lost(p))
		PQclear(PQexec(p->conn, "ROLLBACK"));
	return err;
}

/* The server's NOTICEs (a migration's "already exists, skipping") are not
 * events of ours; libpq would print them on stderr. */
static void ignore_notice(void *arg, const char *message)
{
	(void)arg;
	(void)message;
}

static void pg_close(struct store *s)
{
	struct pg *p = pg_of(s);
	if (!p)
		return;
	batch_clear(p);
	PQfinish(p->conn);
	cz_free(p);
}

static struct store *pg_open(const char *target, enum store_err *err, char *errmsg, size_t errlen)
{
	/* the URL may override the keywords before it, never those after */
	static const char *const keys[] = {"connect_timeout",
	                                   "tcp_user_timeout",
	                                   "keepalives_idle",
	                                   "keepalives_interval",
	                                   "keepalives_count",
	                                   "fallback_application_name",
	                                   "dbname",
	                                   "client_encoding",
	                                   NULL};
	const char *vals[] = {"10", "10000", "10", "5", "3", "consuma", target, "UTF8", NULL};
	enum store_err e = STORE_NOMEM;
	struct pg *p = cz_calloc(1, sizeof *p);
	if (!p) {
		if (errmsg && errlen)
			snprintf(errmsg, errlen, "out of memory");
		goto out;
	}
	p->base.ops = &store_pg_ops;
	p->conn = PQconnectdbParams(keys, vals, 1);
	if (!p->conn) {
		store_set_msg(&p->base, "out of memory");
		goto out;
	}
	if (lost(p)) {
		e = STORE_UNAVAILABLE;
		set_driver_msg(p, "connect", PQerrorMessage(p->conn));
		goto out;
	}
	PQsetNoticeProcessor(p->conn, ignore_notice, NULL);
	e = migrate(p);
out:
	if (e != STORE_OK && p) {
		if (errmsg && errlen)
			snprintf(errmsg, errlen, "%s",
			         p->base.msg[0] ? p->base.msg : store_strerror(e));
		pg_close(&p->base);
		p = NULL;
	}
	if (err)
		*err = e;
	return p ? &p->base : NULL;
}

static const char *pg_errmsg(struct store *s)
{
	struct pg *p = pg_of(s);
	const char *m = PQerrorMessage(p->conn);
	size_t n = strlen(m);
	while (n > 0 && m[n - 1] == '\n')
		n--;
	snprintf(p->drvmsg, sizeof p->drvmsg, "%.*s", (int)n, m);
	return p->drvmsg;
}

/* ---- transactions ------------------------------------------------------ */

static void pg_rollback(struct store *s)
{
	struct pg *p = pg_of(s);
	batch_clear(p);
	if (!p->in_tx)
		return;
	p->in_tx = false;
	p->tx_durable = false;
	if (!lost(p) && PQtransactionStatus(p->conn) != PQTRANS_IDLE) {
		PGresult *r = PQexec(p->conn, "ROLLBACK");
		if (!result_ok(r) && !lost(p)) /* a lost one has no transaction left */
			log_event(L_WARN, "store.rollback_failed", "backend=postgres error=%s",
			          log_q(PQerrorMessage(p->conn)));
		PQclear(r);
	}
}

static enum store_err pg_begin(struct store *s)
{
	struct pg *p = pg_of(s);
	if (p->in_tx)
		pg_rollback(s); /* a transaction the caller lost track of */
	enum store_err err = usable(p);
	if (err == STORE_OK)
		err = exec_simple(p, "BEGIN; " SET_LOCALS_OFF, "begin");
	if (err == STORE_OK) {
		p->in_tx = true;
		p->tx_durable = false;
	} else if (PQtransactionStatus(p->conn) != PQTRANS_IDLE && !lost(p)) {
		PQclear(PQexec(p->conn, "ROLLBACK"));
	}
	return err;
}

/* Writes the batch's jobs and commits; tail is sent with the COMMIT in one
 * round trip (a NOTIFY, or ""). A transaction that wrote a job commits at
 * synchronous_commit=on, set just before the COMMIT (SET LOCAL applies to
 * the commit whatever the session's or the server's default). A failed
 * commit has rolled back; COMMIT of a transaction that had failed answers
 * ROLLBACK, which is a failure here. */
static enum store_err commit_with(struct pg *p, const char *tail)
{
	enum store_err err = STORE_OK;
	char sql[160];
	if (!p->in_tx) {
		store_set_msg(&p->base, "commit: no transaction is open");
		return STORE_IO;
	}
	if (p->nqueued > 0 || p->nrecs > 0) {
		err = flush_batch(p);
		if (err != STORE_OK) {
			pg_rollback(&p->base);
			return err;
		}
	}
	snprintf(sql, sizeof sql, "%s%sCOMMIT",
	         p->tx_durable ? "SET LOCAL synchronous_commit TO on; " : "", tail);
	PGresult *r = PQexec(p->conn, sql);
	if (!result_ok(r)) {
		err = fail(p, r, "commit");
	} else {
		if (strcmp(PQcmdStatus(r), "COMMIT") != 0) {
			store_set_msg(&p->base,
			              "commit: the transaction had failed and was rolled back");
			err = STORE_IO;
		}
		PQclear(r);
	}
	if (err != STORE_OK && !lost(p) && PQtransactionStatus(p->conn) != PQTRANS_IDLE)
		PQclear(PQexec(p->conn, "ROLLBACK")); /* the SET or the tail failed */
	p->in_tx = false;
	p->tx_durable = false;
	return err;
}

static enum store_err pg_commit(struct store *s)
{
	return commit_with(pg_of(s), "");
}

static bool pg_in_tx(struct store *s)
{
	struct pg *p = pg_of(s);
	return p->in_tx && PQtransactionStatus(p->conn) == PQTRANS_INTRANS;
}

/* A read-only transaction with one snapshot for all its statements. */
static enum store_err begin_read(struct pg *p)
{
	if (p->in_tx)
		pg_rollback(&p->base);
	enum store_err err = usable(p);
	if (err == STORE_OK)
		err = exec_simple(p, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY", "begin");
	p->in_tx = err == STORE_OK;
	return err;
}

/* Runs one write of ours in its own short transaction. */
static enum store_err own_cmd(struct pg *p, enum ps_id id, const struct params *q, int64_t *changed,
                              const char *what)
{
	enum store_err err = pg_begin(&p->base);
	if (err == STORE_OK)
		err = run_cmd(p, id, q, changed, what);
	if (err == STORE_OK)
		err = pg_commit(&p->base);
	pg_rollback(&p->base);
	return err;
}

/* ---- intake ---------------------------------------------------------------- */

/* Looks the key up. *found: a live key (res filled, maybe STORE_CONFLICT);
 * an expired one is forgotten. */
static enum store_err find_key(struct pg *p, const struct job_insert *job, struct job_result *res,
                               bool *found)
{
	struct params q = {.n = 0};
	enum store_err err;
	int64_t stale_seq = 0;
	*found = false;
	p_text(&q, job->client_addr);
	p_text(&q, job->idempotency_key);
	PGresult *r = run(p, PS_IDEM_FIND, &q, &err, "find idempotency key");
	if (!r)
		return err;
	if (PQntuples(r) == 1) {
		int64_t age = job->created_at - col_int(r, 0, 4);
		if (job->idempotency_ttl_ms > 0 && age >= job->idempotency_ttl_ms) {
			stale_seq = col_int(r, 0, 0);
		} else {
			bool has = !is_null(r, 0, 3);
			const char *hash = has ? PQgetvalue(r, 0, 3) : NULL;
			bool same = (!hash && !job->body_hash) ||
			            (hash && job->body_hash && strcmp(hash, job->body_hash) == 0);
			*found = true;
			col_copy(r, 0, 1, res->id, sizeof res->id);
			col_copy(r, 0, 2, res->status, sizeof res->status);
			res->replayed = true;
			if (!same) {
				store_set_msg(&p->base,
				              "idempotency key reused with a different body");
				err = STORE_CONFLICT;
			}
		}
	}
	PQclear(r);
	if (err != STORE_OK || stale_seq == 0)
		return err;
	q.n = 0;
	p_int(&q, stale_seq);
	return run_cmd(p, PS_IDEM_FORGET, &q, NULL, "forget idempotency key");
}

/* ---- the intake batch ------------------------------------------------------
 * A job is checked at job_in_tx and written at commit: the rows of a whole
 * batch go in by one multi-row INSERT, whose statement trigger counts them
 * in one upsert per counter (sql/postgres/001_init.sql), where a row trigger
 * took a plpgsql call and three upserts per job (~10x the insert itself).
 * The bounds are read once per transaction and key (a tally: the value
 * read, plus what the transaction's unwritten jobs add), so a batch's jobs
 * count against each other as in SQLite. A key repeated inside the batch is
 * answered from the batch. A key that another transaction committed
 * between our look-up and our INSERT is skipped by ON CONFLICT DO NOTHING
 * and its job answered as a replay of the winner's row (res is the
 * caller's until the batch is answered, as the committer keeps it), even
 * when the bodies differ: two hosts racing with one key and two bodies in
 * the same few milliseconds get a 202 naming the first job for the second,
 * not a 409. The transaction's own reads do not see its unwritten jobs. */

/* Forgets the batch: its unwritten jobs and its tallies. */
static void batch_clear(struct pg *p)
{
	for (size_t i = 0; i < p->nqueued; i++)
		cz_free(p->queued[i].text);
	cz_free(p->queued);
	p->queued = NULL;
	p->nqueued = p->capqueued = 0;
	for (size_t i = 0; i < p->nrecs; i++)
		cz_free(p->recs[i].text);
	cz_free(p->recs);
	p->recs = NULL;
	p->nrecs = p->caprecs = 0;
	p->depth_known = false;
	p->depth_base = p->depth_delta = 0;
	tallies_clear(&p->clients);
	tallies_clear(&p->hosts);
}

static const char *client_of(const struct job_insert *job)
{
	return job->client_addr ? job->client_addr : "";
}

/* Reads the counters of job that the transaction has no tally of yet. */
static enum store_err read_bases(struct pg *p, const struct job_insert *job,
                                 const struct tally_keys *k)
{
	bool need = !p->depth_known || !tally_find(&p->clients, client_of(job));
	for (size_t i = 0; !need && i < k->n; i++)
		need = !tally_find(&p->hosts, k->v[i]);
	if (!need)
		return STORE_OK;
	char *arr = text_array(k->v, k->n);
	if (!arr)
		return STORE_NOMEM;
	struct params q = {.n = 0};
	enum store_err err;
	p_text(&q, job->client_addr);
	p_text(&q, arr);
	PGresult *r = run(p, PS_BASES, &q, &err, "read counters");
	cz_free(arr);
	if (!r)
		return err;
	if (!p->depth_known) {
		p->depth_base = col_int(r, 0, 0);
		p->depth_known = true;
	}
	if (!tally_get(&p->clients, client_of(job), col_int(r, 0, 1), true))
		err = STORE_NOMEM;
	for (int i = 0; err == STORE_OK && i < PQntuples(r); i++)
		if (!is_null(r, i, 2) &&
		    !tally_get(&p->hosts, PQgetvalue(r, i, 2), col_int(r, i, 3), true))
			err = STORE_NOMEM;
	PQclear(r);
	return err;
}

static enum store_err check_bounds(struct pg *p, const struct job_insert *job,
                                   const struct tally_keys *k, struct job_result *res)
{
	enum store_err err = read_bases(p, job, k);
	if (err != STORE_OK)
		return err;
	struct tally *c = tally_find(&p->clients, client_of(job));
	int64_t host = 0;
	for (size_t i = 0; i < k->n; i++) {
		struct tally *h = tally_find(&p->hosts, k->v[i]);
		if (h && h->base + h->delta > host)
			host = h->base + h->delta;
	}
	res->queue_depth = p->depth_base + p->depth_delta;
	if (job->max_queue_size > 0 && res->queue_depth >= job->max_queue_size)
		res->refusal = JOB_QUEUE_FULL;
	else if (job->max_client_pending > 0 && c && c->base + c->delta >= job->max_client_pending)
		res->refusal = JOB_CLIENT_SHARE;
	else if (job->max_host_pending > 0 && host >= job->max_host_pending)
		res->refusal = JOB_HOST_PENDING;
	return res->refusal == JOB_ACCEPTED ? STORE_OK : STORE_REFUSED;
}

static size_t text_size(const char *s)
{
	return s ? strlen(s) + 1 : 0;
}

static const char *text_copy(char **at, const char *s)
{
	if (!s)
		return NULL;
	size_t n = strlen(s) + 1;
	char *to = *at;
	memcpy(to, s, n);
	*at += n;
	return to;
}

/* Queues a copy of job for the commit and counts it in the tallies. */
static enum store_err queue_job(struct pg *p, const struct job_insert *job,
                                const struct tally_keys *k, struct job_result *res)
{
	if (!cz_grow(&p->queued, &p->capqueued, p->nqueued, sizeof *p->queued))
		return STORE_NOMEM;
	struct queued_job *qj = &p->queued[p->nqueued];
	size_t n = text_size(job->id) + text_size(job->input_data) + text_size(job->callback_url) +
	           text_size(job->callback_host) + text_size(job->pending_keys) +
	           text_size(job->client_addr) + text_size(job->idempotency_key) +
	           text_size(job->body_hash) + text_size(job->owner);
	qj->text = cz_malloc(n ? n : 1);
	if (!qj->text)
		return STORE_NOMEM;
	char *at = qj->text;
	qj->job = *job;
	qj->job.id = text_copy(&at, job->id);
	qj->job.input_data = text_copy(&at, job->input_data);
	qj->job.callback_url = text_copy(&at, job->callback_url);
	qj->job.callback_host = text_copy(&at, job->callback_host);
	qj->job.pending_keys = text_copy(&at, job->pending_keys);
	qj->job.client_addr = text_copy(&at, job->client_addr);
	qj->job.idempotency_key = text_copy(&at, job->idempotency_key);
	qj->job.body_hash = text_copy(&at, job->body_hash);
	qj->job.owner = text_copy(&at, job->owner);
	qj->res = res;
	p->nqueued++;
	p->depth_delta++;
	tally_find(&p->clients, client_of(job))->delta++;
	for (size_t i = 0; i < k->n; i++)
		tally_find(&p->hosts, k->v[i])->delta++;
	return STORE_OK;
}

/* The batch's own job with job's key, if any. */
static const struct queued_job *queued_key(struct pg *p, const struct job_insert *job)
{
	for (size_t i = 0; i < p->nqueued; i++) {
		const struct job_insert *q = &p->queued[i].job;
		if (q->idempotency_key && strcmp(q->idempotency_key, job->idempotency_key) == 0 &&
		    strcmp(client_of(q), client_of(job)) == 0)
			return &p->queued[i];
	}
	return NULL;
}

static bool same_body(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Queued for the batch's INSERT at commit, like a job. A record whose id
 * exists is dropped there (ON CONFLICT, logged): the transaction stays
 * whole for the others. */
static enum store_err pg_sync_record_in_tx(struct store *s, const struct sync_record *rec)
{
	struct pg *p = pg_of(s);
	if (!p->in_tx) {
		store_set_msg(s, "sync_record_in_tx outside a transaction");
		return STORE_IO;
	}
	if (!cz_grow(&p->recs, &p->caprecs, p->nrecs, sizeof *p->recs))
		return STORE_NOMEM;
	struct queued_rec *qr = &p->recs[p->nrecs];
	size_t n = text_size(rec->id) + text_size(rec->input_data) + text_size(rec->result) +
	           text_size(rec->client_addr) + text_size(rec->owner);
	qr->text = cz_malloc(n ? n : 1);
	if (!qr->text)
		return STORE_NOMEM;
	char *at = qr->text;
	qr->r = *rec;
	qr->r.id = text_copy(&at, rec->id);
	qr->r.input_data = text_copy(&at, rec->input_data);
	qr->r.result = text_copy(&at, rec->result);
	qr->r.client_addr = text_copy(&at, rec->client_addr);
	qr->r.owner = text_copy(&at, rec->owner);
	p->nrecs++;
	return STORE_OK;
}

static enum store_err pg_job_in_tx(struct store *s, const struct job_insert *job,
                                   struct job_result *res)
{
	struct pg *p = pg_of(s);
	enum store_err err = STORE_OK;
	bool found = false;
	memset(res, 0, sizeof *res);
	if (!p->in_tx) {
		store_set_msg(s, "job_in_tx outside a transaction");
		return STORE_IO;
	}
	p->tx_durable = true; /* a replay too: its answer is a promise */
	if (job->idempotency_key) {
		const struct queued_job *first = queued_key(p, job);
		if (first) {
			snprintf(res->id, sizeof res->id, "%s", first->job.id);
			snprintf(res->status, sizeof res->status, "queued");
			res->replayed = true;
			if (same_body(first->job.body_hash, job->body_hash))
				return STORE_OK;
			store_set_msg(s, "idempotency key reused with a different body");
			return STORE_CONFLICT;
		}
		err = find_key(p, job, res, &found);
		if (err != STORE_OK || found)
			return err;
	}
	struct tally_keys k;
	err = tally_keys_of(&p->base, job->pending_keys, job->callback_host, &k);
	if (err == STORE_OK)
		err = check_bounds(p, job, &k, res);
	if (err == STORE_OK)
		err = queue_job(p, job, &k, res);
	tally_keys_clear(&k);
	if (err != STORE_OK)
		return err;
	snprintf(res->id, sizeof res->id, "%s", job->id);
	snprintf(res->status, sizeof res->status, "queued");
	return STORE_OK;
}

#define FLUSH_ROWS 512

/* head, then n rows of cols (NULL: the next parameter, $1 on; else SQL as
 * it is), then tail; cz_malloc'd, NULL when memory ran out. */
static char *values_sql(const char *head, const char *const cols[], size_t ncols, size_t n,
                        const char *tail)
{
	size_t row = 4;
	for (size_t c = 0; c < ncols; c++)
		row += (cols[c] ? strlen(cols[c]) : 7) + 2;
	size_t size = strlen(head) + strlen(tail) + n * row + 1, at = 0, param = 1;
	char *sql = cz_malloc(size);
	if (!sql)
		return NULL;
	at += (size_t)snprintf(sql, size, "%s", head);
	for (size_t i = 0; i < n; i++)
		for (size_t c = 0; c < ncols; c++) {
			const char *pre = c > 0 ? ", " : i > 0 ? ", (" : "(";
			if (cols[c])
				at += (size_t)snprintf(sql + at, size - at, "%s%s", pre, cols[c]);
			else
				at += (size_t)snprintf(sql + at, size - at, "%s$%zu", pre, param++);
			if (c + 1 == ncols)
				at += (size_t)snprintf(sql + at, size - at, ")");
		}
	snprintf(sql + at, size - at, "%s", tail);
	return sql;
}

/* Runs sql with n rows of per_row parameters each (vals; row_types the
 * types of one row). */
static PGresult *run_rows(struct pg *p, const char *sql, size_t n, size_t per_row,
                          const char **vals, const Oid *row_types, enum store_err *err,
                          const char *what)
{
	Oid *types = cz_calloc(n * per_row, sizeof *types);
	if (!types) {
		*err = STORE_NOMEM;
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		memcpy(&types[i * per_row], row_types, per_row * sizeof *types);
	PGresult *r = PQexecParams(p->conn, sql, (int)(n * per_row), types, vals, NULL, NULL, 0);
	cz_free(types);
	*err = STORE_OK;
	if (!result_ok(r)) {
		*err = fail(p, r, what);
		return NULL;
	}
	return r;
}

/* Writes queued[from, from + n) with one INSERT; the jobs whose key another
 * transaction took meanwhile become replays of its row. */
static enum store_err flush_rows(struct pg *p, size_t from, size_t n)
{
	static const char *const cols[] = {NULL, "'async'", "'queued'", "'pending'", NULL,
	                                   NULL, NULL,      NULL,       NULL,        NULL,
	                                   NULL, NULL,      NULL,       NULL,        NULL};
	static const Oid types[] = {TEXT_OID, TEXT_OID, INT8_OID, TEXT_OID, TEXT_OID, TEXT_OID,
	                            TEXT_OID, TEXT_OID, INT8_OID, TEXT_OID, TEXT_OID, INT8_OID};
	enum { PER_ROW = sizeof types / sizeof *types };
	enum store_err err = STORE_NOMEM;
	char *sql = values_sql("INSERT INTO requests (id, mode, status, callback_status, "
	                       "input_data, iterations, callback_url, callback_host, client_addr, "
	                       "idempotency_key, body_hash, created_at, pending_keys, owner, "
	                       "next_attempt_at) VALUES ",
	                       cols, sizeof cols / sizeof *cols, n,
	                       " ON CONFLICT ((coalesce(client_addr, '')), idempotency_key) "
	                       "WHERE idempotency_key IS NOT NULL DO NOTHING RETURNING id");
	const char **vals = cz_calloc(n * PER_ROW, sizeof *vals);
	char(*nums)[32] = cz_calloc(n * 2, sizeof *nums);
	PGresult *r = NULL;
	if (!sql || !vals || !nums)
		goto out;
	for (size_t i = 0; i < n; i++) {
		const struct job_insert *j = &p->queued[from + i].job;
		snprintf(nums[2 * i], sizeof nums[0], "%" PRId64, j->iterations);
		snprintf(nums[2 * i + 1], sizeof nums[0], "%" PRId64, j->created_at);
		const char *v[PER_ROW] = {j->id,
		                          j->input_data,
		                          nums[2 * i],
		                          j->callback_url,
		                          j->callback_host,
		                          j->client_addr,
		                          j->idempotency_key,
		                          j->body_hash,
		                          nums[2 * i + 1],
		                          j->pending_keys,
		                          j->owner,
		                          nums[2 * i + 1]};
		memcpy(&vals[i * PER_ROW], v, sizeof v);
	}
	r = run_rows(p, sql, n, PER_ROW, vals, types, &err, "insert jobs");
	size_t got = r ? (size_t)PQntuples(r) : n;
	for (size_t i = 0; got < n && err == STORE_OK && i < n; i++) {
		struct queued_job *qj = &p->queued[from + i];
		bool written = false;
		for (size_t t = 0; !written && t < got; t++)
			written = strcmp(PQgetvalue(r, (int)t, 0), qj->job.id) == 0;
		bool found = false;
		if (!written)
			err = find_key(p, &qj->job, qj->res, &found);
		if (!written && err == STORE_CONFLICT)
			err = STORE_OK; /* answered as a replay: the 202 names the first job */
		if (!written && err == STORE_OK && !found) {
			store_set_msg(&p->base, "idempotency key taken by a row that is gone");
			err = STORE_IO;
		}
	}
out:
	PQclear(r);
	cz_free(sql);
	cz_free(vals);
	cz_free(nums);
	return err;
}

/* Writes recs[from, from + n) with one INSERT; a record whose id exists is
 * dropped (logged). */
static enum store_err flush_recs(struct pg *p, size_t from, size_t n)
{
	static const char *const cols[] = {NULL, "'sync'", "'completed'", NULL, NULL, NULL, NULL,
	                                   NULL, NULL,     NULL,          NULL, NULL, NULL};
	static const Oid types[] = {TEXT_OID, TEXT_OID, INT8_OID, TEXT_OID, FLOAT8_OID, INT8_OID,
	                            INT8_OID, INT8_OID, INT8_OID, TEXT_OID, TEXT_OID};
	enum { PER_ROW = sizeof types / sizeof *types };
	enum store_err err = STORE_NOMEM;
	char *sql = values_sql("INSERT INTO requests (id, mode, status, input_data, iterations, "
	                       "result, duration_ms, created_at, started_at, completed_at, "
	                       "finished_at, client_addr, owner) VALUES ",
	                       cols, sizeof cols / sizeof *cols, n, " ON CONFLICT (id) DO NOTHING");
	const char **vals = cz_calloc(n * PER_ROW, sizeof *vals);
	char(*nums)[32] = cz_calloc(n * 4, sizeof *nums);
	if (!sql || !vals || !nums)
		goto out;
	for (size_t i = 0; i < n; i++) {
		const struct sync_record *c = &p->recs[from + i].r;
		char(*num)[32] = &nums[4 * i];
		snprintf(num[0], sizeof num[0], "%" PRId64, c->iterations);
		snprintf(num[1], sizeof num[1], "%.17g", c->duration_ms);
		snprintf(num[2], sizeof num[2], "%" PRId64, c->created_at);
		snprintf(num[3], sizeof num[3], "%" PRId64, c->completed_at);
		const char *v[PER_ROW] = {c->id,  c->input_data,  num[0],  c->result,
		                          num[1], num[2],         num[2],  num[3],
		                          num[3], c->client_addr, c->owner};
		memcpy(&vals[i * PER_ROW], v, sizeof v);
	}
	PGresult *r = run_rows(p, sql, n, PER_ROW, vals, types, &err, "insert sync records");
	int64_t written = r ? strtoll(PQcmdTuples(r), NULL, 10) : 0;
	if (r && written < (int64_t)n)
		log_event(L_WARN, "store.sync_record_lost", "count=%lld why=%s",
		          (long long)((int64_t)n - written), log_q("the id exists"));
	PQclear(r);
out:
	cz_free(sql);
	cz_free(vals);
	cz_free(nums);
	return err;
}

/* Writes the batch's queued records and jobs (inside its transaction). */
static enum store_err flush_batch(struct pg *p)
{
	enum store_err err = STORE_OK;
	for (size_t from = 0; err == STORE_OK && from < p->nrecs; from += FLUSH_ROWS)
		err = flush_recs(p, from,
		                 p->nrecs - from < FLUSH_ROWS ? p->nrecs - from : FLUSH_ROWS);
	for (size_t from = 0; err == STORE_OK && from < p->nqueued; from += FLUSH_ROWS)
		err = flush_rows(p, from,
		                 p->nqueued - from < FLUSH_ROWS ? p->nqueued - from : FLUSH_ROWS);
	batch_clear(p);
	return err;
}

/* Nothing to do: a commit at synchronous_commit=on is flushed before it
 * returns and before anyone sees it (the file's header). */
static enum store_err pg_make_durable(struct store *s)
{
	(void)s;
	return STORE_OK;
}

static enum store_err pg_batch_begin(struct store *s)
{
	return pg_begin(s);
}

/* NOTIFY rides in the batch's transaction (the listeners get it at commit),
 * at most once per NOTIFY_GAP_MS; a batch inside the gap leaves the notice
 * owed to the next one. */
static enum store_err pg_batch_commit(struct store *s, size_t jobs)
{
	struct pg *p = pg_of(s);
	int64_t now = ids_mono_ms();
	bool notify = (jobs > 0 || p->notify_owed) && now - p->notified_ms >= NOTIFY_GAP_MS;
	enum store_err err = commit_with(p, notify ? "NOTIFY " NOTIFY_CHANNEL "; " : "");
	pg_rollback(s);
	if (err != STORE_OK)
		return err;
	if (notify) {
		p->notified_ms = now;
		p->notify_owed = false;
	} else if (jobs > 0) {
		p->notify_owed = true;
	}
	return STORE_OK;
}

static int64_t pg_notice_owed_ms(struct store *s)
{
	struct pg *p = pg_of(s);
	if (!p->notify_owed)
		return -1;
	int64_t left = p->notified_ms + NOTIFY_GAP_MS - ids_mono_ms();
	return left > 0 ? left : 0;
}

static void pg_batch_abort(struct store *s)
{
	pg_rollback(s);
}

/* ---- reads ------------------------------------------------------------- */

static enum store_err read_trace(const PGresult *r, struct store_request *out)
{
	int rows = PQntuples(r);
	if (is_null(r, 0, 16))
		return STORE_OK; /* the LEFT JOIN found no attempt */
	out->trace = cz_calloc((size_t)rows, sizeof *out->trace);
	if (!out->trace)
		return STORE_NOMEM;
	out->n_trace = (size_t)rows;
	bool ok = true;
	for (int i = 0; i < rows; i++) {
		struct store_attempt *a = &out->trace[i];
		a->number = col_int(r, i, 16);
		col_copy(r, i, 17, a->state, sizeof a->state);
		a->started_at = col_int(r, i, 18);
		a->has_duration = !is_null(r, i, 19);
		a->duration_ms = col_real(r, i, 19);
		a->http_status = (int)col_int(r, i, 20);
		a->error_class = col_dup(r, i, 21, &ok);
		a->error_message = col_dup(r, i, 22, &ok);
		a->next_attempt_at = col_int(r, i, 23);
	}
	return ok ? STORE_OK : STORE_NOMEM;
}

static enum store_err pg_get_request(struct store *s, const char *id, const char *owner,
                                     struct store_request *out)
{
	struct pg *p = pg_of(s);
	struct params q = {.n = 0};
	enum store_err err;
	bool ok = true;
	memset(out, 0, sizeof *out);
	p_text(&q, id);
	p_text(&q, owner);
	PGresult *r = run(p, PS_GET, &q, &err, "read request");
	if (!r)
		return err;
	if (PQntuples(r) == 0) {
		PQclear(r);
		return STORE_NOTFOUND;
	}
	col_copy(r, 0, 0, out->id, sizeof out->id);
	col_copy(r, 0, 1, out->mode, sizeof out->mode);
	col_copy(r, 0, 2, out->status, sizeof out->status);
	col_copy(r, 0, 3, out->callback_status, sizeof out->callback_status);
	out->iterations = col_int(r, 0, 4);
	col_copy(r, 0, 5, out->result, sizeof out->result);
	out->has_duration = !is_null(r, 0, 6);
	out->duration_ms = col_real(r, 0, 6);
	out->input_data = col_dup(r, 0, 7, &ok);
	out->callback_url = col_dup(r, 0, 8, &ok);
	out->created_at = col_int(r, 0, 9);
	out->started_at = col_int(r, 0, 10);
	out->completed_at = col_int(r, 0, 11);
	out->finished_at = col_int(r, 0, 12);
	if (strcmp(out->mode, "async") == 0) {
		out->attempts = col_int(r, 0, 13);
		out->next_attempt_at = is_null(r, 0, 12) ? col_int(r, 0, 14) : 0;
		out->last_error = col_dup(r, 0, 15, &ok);
		err = read_trace(r, out);
	}
	PQclear(r);
	if (err == STORE_OK && !ok)
		err = STORE_NOMEM;
	if (err != STORE_OK)
		store_request_clear(out);
	return err;
}

static enum store_err pg_list_requests(struct store *s, const struct list_query *lq,
                                       struct store_page *out)
{
	struct pg *p = pg_of(s);
	struct params q = {.n = 0};
	enum store_err err;
	int variant = 0;
	memset(out, 0, sizeof *out);
	if (lq->mode)
		variant = strcmp(lq->mode, "sync") == 0    ? 1
		          : strcmp(lq->mode, "async") == 0 ? 2
		                                           : 3;
	if (lq->status)
		variant |= LIST_STATUS;
	if (lq->owner)
		variant |= LIST_OWNER;
	p_text(&q, lq->mode);
	p_text(&q, lq->status);
	p_text(&q, lq->owner);
	p_int(&q, lq->limit < 1 ? 1 : lq->limit > STORE_LIST_MAX ? STORE_LIST_MAX : lq->limit);
	p_int(&q, lq->offset < 0 ? 0 : lq->offset);
	PGresult *r = run(p, (enum ps_id)(PS_LIST + variant), &q, &err, "list requests");
	if (!r)
		return err;
	int rows = PQntuples(r);
	if (rows > 0) {
		out->items = cz_calloc((size_t)rows, sizeof *out->items);
		if (!out->items) {
			PQclear(r);
			return STORE_NOMEM;
		}
	}
	for (int i = 0; i < rows; i++) {
		struct store_list_item *it = &out->items[i];
		col_copy(r, i, 0, it->id, sizeof it->id);
		col_copy(r, i, 1, it->mode, sizeof it->mode);
		col_copy(r, i, 2, it->status, sizeof it->status);
		col_copy(r, i, 3, it->callback_status, sizeof it->callback_status);
		it->has_duration = !is_null(r, i, 4);
		it->duration_ms = col_real(r, i, 4);
		it->created_at = col_int(r, i, 5);
	}
	out->n = (size_t)rows;
	PQclear(r);
	return STORE_OK;
}

static enum store_err pg_health(struct store *s, int64_t stale_ms, struct store_health *h)
{
	struct pg *p = pg_of(s);
	enum store_err err;
	memset(h, 0, sizeof *h);
	int64_t alive_after = ids_now_ms() - stale_ms;
	PGresult *r = run(p, PS_DEPTH, NULL, &err, "read queue depth");
	if (!r)
		return err;
	h->queue_depth = col_int(r, 0, 0);
	PQclear(r);
	r = run(p, PS_HEARTBEATS, NULL, &err, "read heartbeats");
	if (!r)
		return err;
	for (int i = 0; i < PQntuples(r); i++) {
		int64_t beat = col_int(r, i, 3);
		if (i == 0) { /* newest first */
			h->deliverer_seen = true;
			h->deliverer_pid = col_int(r, i, 1);
			h->deliverer_started_at = col_int(r, i, 2);
			h->deliverer_beat_ms = beat;
		}
		if (beat >= alive_after) {
			h->deliverers_alive++;
			h->busy_workers += col_int(r, i, 4);
			h->workers += col_int(r, i, 5);
			h->inflight += col_int(r, i, 6);
		}
	}
	PQclear(r);
	return STORE_OK;
}

static enum store_err pg_drained(struct store *s, int64_t since_s, int64_t *jobs)
{
	struct pg *p = pg_of(s);
	struct params q = {.n = 0};
	enum store_err err;
	*jobs = 0;
	p_int(&q, since_s);
	PGresult *r = run(p, PS_DRAINED, &q, &err, "read drain");
	if (!r)
		return err;
	*jobs = col_int(r, 0, 0);
	PQclear(r);
	return STORE_OK;
}

/* ---- operations: redelivery and the oldest pending job ---------------------
 * Prepared per call (PQexecParams, unnamed): operator requests and scrapes.
 * The counters follow finished_at by the trigger, both ways, so re-opening a
 * job is one UPDATE. */

#define REDELIVER_SET                                                                              \
	"callback_status = 'retrying', finished_at = NULL, next_attempt_at = $1, "                 \
	"status = CASE WHEN status = 'failed' THEN 'queued' ELSE status END"
#define REDELIVER_MATCH                                                                            \
	"mode = 'async' AND finished_at IS NOT NULL AND callback_status = $2 "                     \
	"AND created_at >= $3 AND created_at < $4 AND ($5::text IS NULL OR callback_host = $5)"

/* The parameters of the redelivery statements, $1..$6. */
static const Oid redeliver_types[6] = {INT8_OID, TEXT_OID, INT8_OID, INT8_OID, TEXT_OID, INT8_OID};

/* Runs sql with q (types NULL: the statement's casts say); NULL with *err
 * set. */
static PGresult *run_once(struct pg *p, const char *sql, const struct params *q, const Oid *types,
                          enum store_err *err, const char *what)
{
	*err = usable(p);
	if (*err != STORE_OK)
		return NULL;
	PGresult *r =
	    PQexecParams(p->conn, sql, q ? q->n : 0, types, q ? q->v : NULL, NULL, NULL, 0);
	if (!result_ok(r)) {
		*err = fail(p, r, what);
		return NULL;
	}
	return r;
}

static enum store_err notify_in_tx(struct pg *p)
{
	return exec_simple(p, "NOTIFY " NOTIFY_CHANNEL, "notify");
}

static enum store_err pg_redeliver_one(struct store *s, const char *id, int64_t now_ms,
                                       enum store_redeliver *outcome, int64_t *seq)
{
	struct pg *p = pg_of(s);
	struct params q = {.n = 0};
	enum store_err err;
	*outcome = STORE_REDELIVER_NOTJOB;
	*seq = 0;
	err = pg_begin(s);
	if (err != STORE_OK)
		return err;
	p_text(&q, id);
	PGresult *r = run_once(p,
	                       "SELECT seq, mode = 'async', finished_at IS NOT NULL FROM requests "
	                       "WHERE id = $1 FOR UPDATE",
	                       &q, NULL, &err, "read request");
	if (!r)
		goto out;
	if (PQntuples(r) == 0) {
		PQclear(r);
		err = STORE_NOTFOUND;
		goto out;
	}
	*seq = col_int(r, 0, 0);
	bool async = strcmp(PQgetvalue(r, 0, 1), "t") == 0;
	bool finished = strcmp(PQgetvalue(r, 0, 2), "t") == 0;
	PQclear(r);
	if (!async || !finished) {
		*outcome = async ? STORE_REDELIVER_BUSY : STORE_REDELIVER_NOTJOB;
		goto out;
	}
	q.n = 0;
	p_int(&q, now_ms);
	p_int(&q, *seq);
	r = run_once(p, "UPDATE requests SET " REDELIVER_SET " WHERE seq = $2::bigint", &q, NULL,
	             &err, "redeliver");
	if (!r)
		goto out;
	PQclear(r);
	err = notify_in_tx(p);
	if (err == STORE_OK)
		err = pg_commit(s);
	if (err == STORE_OK)
		*outcome = STORE_REDELIVERED;
out:
	pg_rollback(s);
	return err;
}

static enum store_err pg_redeliver_bulk(struct store *s, const struct redeliver_query *rq,
                                        bool dry_run, int64_t now_ms, int64_t *matched,
                                        int64_t *redelivered, int64_t *min_seq)
{
	struct pg *p = pg_of(s);
	struct params q = {.n = 0};
	enum store_err err;
	*matched = *redelivered = *min_seq = 0;
	p_int(&q, now_ms);
	p_text(&q, rq->callback_status);
	p_int(&q, rq->since_ms);
	p_int(&q, rq->until_ms);
	p_text(&q, rq->callback_host);
	p_int(&q, rq->max_jobs);
	err = pg_begin(s);
	if (err != STORE_OK)
		return err;
	PGresult *r = run_once(p, "SELECT count(*) FROM requests WHERE " REDELIVER_MATCH, &q,
	                       redeliver_types, &err, "count redelivery");
	if (!r)
		goto out;
	*matched = col_int(r, 0, 0);
	PQclear(r);
	if (dry_run || *matched == 0 || rq->max_jobs <= 0)
		goto out; /* the rollback ends the read */
	r = run_once(p,
	             "WITH s AS (SELECT seq FROM requests WHERE " REDELIVER_MATCH
	             " ORDER BY seq LIMIT $6 FOR UPDATE), "
	             "u AS (UPDATE requests r SET " REDELIVER_SET
	             " FROM s WHERE r.seq = s.seq RETURNING r.seq) "
	             "SELECT count(*), coalesce(min(seq), 0) FROM u",
	             &q, redeliver_types, &err, "redeliver");
	if (!r)
		goto out;
	*redelivered = col_int(r, 0, 0);
	*min_seq = col_int(r, 0, 1);
	PQclear(r);
	err = *redelivered > 0 ? notify_in_tx(p) : STORE_OK;
	if (err == STORE_OK)
		err = pg_commit(s);
	if (err != STORE_OK)
		*redelivered = *min_seq = 0;
out:
	pg_rollback(s);
	return err;
}

/* The first unfinished job from mark (scratch: from the start); the
 * planner picks the walk (requests_due or the primary key). */
static enum store_err first_pending(struct pg *p, bool forward, int64_t mark, bool *found,
                                    int64_t *seq, int64_t *created_at)
{
	struct params q = {.n = 0};
	enum store_err err;
	p_int(&q, forward ? mark : 0);
	PGresult *r = run_once(p,
	                       "SELECT seq, created_at FROM requests WHERE seq >= $1::bigint "
	                       "AND " UNFINISHED " ORDER BY seq LIMIT 1",
	                       &q, NULL, &err, "oldest pending");
	if (!r)
		return err;
	*found = PQntuples(r) == 1;
	if (*found) {
		*seq = col_int(r, 0, 0);
		*created_at = col_int(r, 0, 1);
	}
	PQclear(r);
	return STORE_OK;
}

static enum store_err pg_oldest_pending(struct store *s, int64_t mark, int64_t scan_max,
                                        bool *found, int64_t *seq, int64_t *created_at)
{
	struct pg *p = pg_of(s);
	enum store_err err;
	int64_t newest;
	*found = false;
	*seq = *created_at = 0;
	err = begin_read(p); /* one snapshot for both reads */
	if (err != STORE_OK)
		return err;
	PGresult *r = run_once(p, "SELECT coalesce(max(seq), 0) FROM requests", NULL, NULL, &err,
	                       "newest row");
	if (!r)
		goto out;
	newest = col_int(r, 0, 0);
	PQclear(r);
	bool forward = mark > 0 && mark <= newest + 1 && newest - mark <= scan_max;
	err = first_pending(p, forward, mark, found, seq, created_at);
	if (err == STORE_OK && forward && !*found)
		err = first_pending(p, false, 0, found, seq, created_at);
	if (err == STORE_OK && !*found)
		*seq = newest + 1;
out:
	pg_rollback(s);
	return err;
}

/* ---- the deliverer's queue ---------------------------------------------- */

/* The exclusions as a text[] literal (cz_malloc'd), NULL for none;
 * *err set when memory ran out. */
static char *exclusions(const struct store_exclude *ex, enum store_err *err)
{
	*err = STORE_OK;
	if (!ex || ex->n == 0)
		return NULL;
	char *buf = text_array(ex->keys, ex->n);
	if (!buf)
		*err = STORE_NOMEM;
	return buf;
}

static enum store_err read_job(const PGresult *r, int row, struct store_job *j)
{
	bool ok = true;
	memset(j, 0, sizeof *j);
	j->seq = col_int(r, row, 0);
	col_copy(r, row, 1, j->id, sizeof j->id);
	j->computed = strcmp(PQgetvalue(r, row, 2), "completed") == 0 && !is_null(r, row, 7) &&
	              PQgetlength(r, row, 7) == 64;
	j->input_data = col_dup(r, row, 3, &ok);
	j->input_len = (size_t)PQgetlength(r, row, 3);
	j->iterations = col_int(r, row, 4);
	j->callback_url = col_dup(r, row, 5, &ok);
	j->callback_host = col_dup(r, row, 6, &ok);
	if (j->computed) {
		col_copy(r, row, 7, j->result, sizeof j->result);
		j->duration_ms = col_real(r, row, 8);
		j->completed_at = col_int(r, row, 10);
	}
	j->created_at = col_int(r, row, 9);
	j->attempts = col_int(r, row, 11);
	j->lease_token = col_int(r, row, 12);
	j->unknown = col_int(r, row, 13);
	if (!ok || !j->input_data || !j->callback_url || !j->callback_host) {
		store_job_clear(j);
		return STORE_NOMEM;
	}
	return STORE_OK;
}

/* max fresh tokens as an int8[] literal (cz_malloc'd). */
static char *tokens(struct store *s, int max)
{
	size_t size = (size_t)max * 21 + 3, at = 0;
	char *buf = cz_malloc(size);
	if (!buf)
		return NULL;
	buf[at++] = '{';
	for (int i = 0; i < max; i++)
		at += (size_t)snprintf(buf + at, size - at, "%s%" PRId64, i ? "," : "",
		                       store_next_token(s));
	snprintf(buf + at, size - at, "}");
	return buf;
}

static enum store_err pg_claim(struct store *s, int64_t now, int64_t lease_ms, int max,
                               const struct store_exclude *ex, struct store_job **jobs, int *n)
{
	struct pg *p = pg_of(s);
	struct params q = {.n = 0};
	struct store_job *arr = NULL;
	enum store_err err;
	int count = 0;
	*jobs = NULL;
	*n = 0;
	if (max <= 0)
		return STORE_OK;
	char *excl = exclusions(ex, &err);
	if (err != STORE_OK)
		return err;
	char *toks = tokens(s, max);
	if (!toks) {
		cz_free(excl);
		return STORE_NOMEM;
	}
	p_int(&q, now);
	p_text(&q, excl);
	p_int(&q, max);
	p_text(&q, s->owner);
	p_text(&q, toks);
	p_int(&q, now + lease_ms);
	err = pg_begin(s);
	PGresult *r = err == STORE_OK ? run(p, PS_CLAIM, &q, &err, "claim") : NULL;
	cz_free(excl);
	cz_free(toks);
	if (!r)
		goto out;
	int rows = PQntuples(r);
	if (rows > 0) {
		arr = cz_calloc((size_t)rows, sizeof *arr);
		err = arr ? STORE_OK : STORE_NOMEM;
	}
	for (; err == STORE_OK && count < rows; count++)
		err = read_job(r, count, &arr[count]);
	PQclear(r);
	if (err == STORE_OK)
		err = pg_commit(s);
out:
	pg_rollback(s);
	if (err != STORE_OK) {
		for (int i = 0; i < count; i++)
			store_job_clear(&arr[i]);
		cz_free(arr);
		return err;
	}
	*jobs = arr;
	*n = count;
	return STORE_OK;
}

static enum store_err pg_next_due(struct store *s, const struct store_exclude *ex, int64_t after,
                                  bool *found, int64_t *due)
{
	struct pg *p = pg_of(s);
	struct params q = {.n = 0};
	enum store_err err;
	*found = false;
	char *excl = exclusions(ex, &err);
	if (err != STORE_OK)
		return err;
	p_text(&q, excl);
	p_int(&q, after);
	PGresult *r = run(p, PS_NEXT_DUE, &q, &err, "next due");
	cz_free(excl);
	if (!r)
		return err;
	if (PQntuples(r) == 1) {
		*found = true;
		*due = col_int(r, 0, 0);
	}
	PQclear(r);
	return STORE_OK;
}

/* The job, its token, and its result when store_result ($3..$6). */
static void p_job(struct params *q, const struct store_job *j, bool store_result)
{
	p_int(q, j->seq);
	p_int(q, j->lease_token);
	p_bool(q, store_result);
	p_text(q, store_result ? j->result : NULL);
	p_real(q, j->duration_ms);
	p_int(q, j->completed_at);
}

static enum store_err fenced(enum store_err err, int64_t changed)
{
	return err == STORE_OK && changed == 0 ? STORE_FENCED : err;
}

static enum store_err pg_attempt_begin(struct store *s, const struct store_job *j,
                                       bool store_result, int64_t number, int64_t started_at)
{
	struct params q = {.n = 0};
	int64_t changed = 0;
	p_job(&q, j, store_result);
	p_int(&q, number);
	p_int(&q, started_at);
	enum store_err err = run_cmd(pg_of(s), PS_ATTEMPT_BEGIN, &q, &changed, "attempt begin");
	return fenced(err, changed);
}

static enum store_err pg_attempt_end(struct store *s, const struct store_job *j,
                                     const struct store_outcome *o)
{
	struct params q = {.n = 0};
	enum store_err err;
	bool retry = o->verdict == STORE_RETRY;
	p_int(&q, j->seq);
	p_int(&q, j->lease_token);
	p_real(&q, o->duration_ms);
	if (o->http_status > 0)
		p_int(&q, o->http_status);
	else
		p_text(&q, NULL);
	p_text(&q, o->error_class);
	p_text(&q, o->error_message);
	if (retry)
		p_int(&q, o->next_attempt_at);
	else
		p_text(&q, NULL);
	p_int(&q, o->number);
	p_text(&q, store_verdict_status(o->verdict));
	if (retry) {
		p_text(&q, NULL);
		p_int(&q, o->next_attempt_at);
	} else {
		p_int(&q, o->now);
		p_text(&q, NULL);
	}
	p_text(&q, o->verdict == STORE_DELIVERED ? NULL : o->error_message);
	PGresult *r = run(pg_of(s), PS_ATTEMPT_END, &q, &err, "attempt end");
	if (!r)
		return err;
	int64_t moved = col_int(r, 0, 0);
	PQclear(r);
	return fenced(STORE_OK, moved);
}

static enum store_err pg_release(struct store *s, const struct store_job *j, bool store_result,
                                 int64_t due_at)
{
	struct params q = {.n = 0};
	int64_t changed = 0;
	p_job(&q, j, store_result);
	p_int(&q, due_at);
	enum store_err err = run_cmd(pg_of(s), PS_RELEASE, &q, &changed, "release");
	return fenced(err, changed);
}

/* One owner-wide write ($1 owner, $2 time) in its own transaction. */
static enum store_err owner_write(struct store *s, enum ps_id id, int64_t t, int64_t *changed,
                                  const char *what)
{
	struct params q = {.n = 0};
	int64_t n = 0;
	p_text(&q, s->owner);
	p_int(&q, t);
	enum store_err err = own_cmd(pg_of(s), id, &q, &n, what);
	if (changed)
		*changed = err == STORE_OK ? n : 0;
	return err;
}

static enum store_err pg_renew(struct store *s, int64_t now, int64_t lease_ms, int64_t *renewed)
{
	return owner_write(s, PS_RENEW, now + lease_ms, renewed, "renew");
}

static enum store_err pg_handback_all(struct store *s, int64_t now, int64_t *released)
{
	return owner_write(s, PS_HANDBACK, now, released, "hand back");
}

static enum store_err pg_heartbeat(struct store *s, int64_t now, const struct store_beat *b)
{
	struct params q = {.n = 0};
	p_text(&q, s->owner);
	p_int(&q, b->pid);
	p_int(&q, b->started_at);
	p_int(&q, now);
	p_int(&q, b->busy_workers);
	p_int(&q, b->workers);
	p_int(&q, b->inflight);
	return own_cmd(pg_of(s), PS_HEARTBEAT, &q, NULL, "heartbeat");
}

static enum store_err pg_heartbeat_remove(struct store *s)
{
	struct params q = {.n = 0};
	p_text(&q, s->owner);
	return own_cmd(pg_of(s), PS_HEARTBEAT_DEL, &q, NULL, "remove heartbeat");
}

/* The owners is_dead calls dead, read before any transaction opens (the
 * callback may take its time). */
static enum store_err dead_owners(struct pg *p,
                                  bool (*is_dead)(const char *owner, int64_t pid, void *arg),
                                  void *arg, char (**dead)[STORE_OWNER_MAX], int *ndead)
{
	struct params q = {.n = 0};
	enum store_err err;
	*dead = NULL;
	*ndead = 0;
	p_text(&q, p->base.owner);
	PGresult *r = run(p, PS_OWNERS, &q, &err, "read owners");
	if (!r)
		return err;
	int rows = PQntuples(r);
	if (rows > 0) {
		*dead = cz_calloc((size_t)rows, sizeof **dead);
		if (!*dead) {
			PQclear(r);
			return STORE_NOMEM;
		}
	}
	for (int i = 0; i < rows; i++)
		if (is_dead(PQgetvalue(r, i, 0), col_int(r, i, 1), arg))
			snprintf((*dead)[(*ndead)++], STORE_OWNER_MAX, "%s", PQgetvalue(r, i, 0));
	PQclear(r);
	return STORE_OK;
}

static enum store_err pg_recover_dead(struct store *s, int64_t now,
                                      bool (*is_dead)(const char *owner, int64_t pid, void *arg),
                                      void *arg, int64_t *recovered)
{
	struct pg *p = pg_of(s);
	char(*dead)[STORE_OWNER_MAX] = NULL;
	int ndead = 0;
	int64_t total = 0, n = 0;
	if (recovered)
		*recovered = 0;
	enum store_err err = dead_owners(p, is_dead, arg, &dead, &ndead);
	if (err == STORE_OK && ndead > 0)
		err = pg_begin(s);
	for (int i = 0; i < ndead && err == STORE_OK; i++) {
		struct params q = {.n = 0};
		p_text(&q, dead[i]);
		p_int(&q, now);
		err = run_cmd(p, PS_EXPIRE_OWNER, &q, &n, "expire leases");
		total += n;
		q.n = 1;
		if (err == STORE_OK)
			err = run_cmd(p, PS_HEARTBEAT_DEL, &q, NULL, "remove heartbeat");
	}
	if (err == STORE_OK && ndead > 0)
		err = pg_commit(s);
	pg_rollback(s);
	cz_free(dead);
	if (recovered && err == STORE_OK)
		*recovered = total;
	return err;
}

/* One transaction: the finished rows among the oldest max_rows, the drain
 * seconds older than an hour, and a fold of the counters. */
static enum store_err pg_prune(struct store *s, int64_t cutoff_ms, int64_t max_rows,
                               int64_t *deleted)
{
	struct pg *p = pg_of(s);
	struct params q = {.n = 0};
	int64_t n = 0;
	char sql[128];
	if (deleted)
		*deleted = 0;
	if (max_rows <= 0)
		return STORE_OK;
	p_int(&q, cutoff_ms);
	p_int(&q, max_rows);
	enum store_err err = pg_begin(s);
	if (err == STORE_OK)
		err = run_cmd(p, PS_PRUNE, &q, &n, "prune");
	snprintf(sql, sizeof sql,
	         "DELETE FROM drain WHERE second < %" PRId64 "; "
	         "SELECT consuma_fold_counters(" FOLD_ROWS ")",
	         ids_now_ms() / 1000 - DRAIN_KEEP_S);
	if (err == STORE_OK)
		err = exec_simple(p, sql, "prune drain and fold counters");
	if (err == STORE_OK)
		err = pg_commit(s);
	pg_rollback(s);
	if (deleted && err == STORE_OK)
		*deleted = n;
	return err;
}

/* ---- wake-up ------------------------------------------------------------ */

static enum store_err relisten(struct pg *p)
{
	return exec_simple(p, "LISTEN " NOTIFY_CHANNEL, "listen");
}

/* The socket changes when the connection is reset and is gone while it is
 * down (-1, STORE_UNAVAILABLE): a caller polls the descriptor of its latest
 * call, so it calls again each time it polls (no round trip once
 * listening); the reset itself is the next statement's, which LISTENs
 * again. */
static enum store_err pg_listen(struct store *s, int *fd)
{
	struct pg *p = pg_of(s);
	*fd = -1;
	if (lost(p)) {
		store_set_msg(s, "listen: the connection to PostgreSQL is down");
		return STORE_UNAVAILABLE;
	}
	if (!p->listening) {
		enum store_err err = relisten(p);
		if (err != STORE_OK)
			return err;
		p->listening = true;
	}
	*fd = PQsocket(p->conn);
	return STORE_OK;
}

static int pg_listen_drain(struct store *s)
{
	struct pg *p = pg_of(s);
	int n = 0;
	PGnotify *note;
	if (lost(p) || !PQconsumeInput(p->conn))
		return 0;
	while ((note = PQnotifies(p->conn)) != NULL) {
		PQfreemem(note);
		n++;
	}
	return n;
}

const struct store_ops store_pg_ops = {
    .name = "postgres",
    .open = pg_open,
    .close = pg_close,
    .errmsg = pg_errmsg,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .in_tx = pg_in_tx,
    .job_in_tx = pg_job_in_tx,
    .sync_record_in_tx = pg_sync_record_in_tx,
    .make_durable = pg_make_durable,
    .batch_begin = pg_batch_begin,
    .batch_commit = pg_batch_commit,
    .batch_abort = pg_batch_abort,
    .notice_owed_ms = pg_notice_owed_ms,
    .get_request = pg_get_request,
    .list_requests = pg_list_requests,
    .health = pg_health,
    .drained = pg_drained,
    .redeliver_one = pg_redeliver_one,
    .redeliver_bulk = pg_redeliver_bulk,
    .oldest_pending = pg_oldest_pending,
    .claim = pg_claim,
    .next_due = pg_next_due,
    .attempt_begin = pg_attempt_begin,
    .attempt_end = pg_attempt_end,
    .release = pg_release,
    .renew = pg_renew,
    .handback_all = pg_handback_all,
    .heartbeat = pg_heartbeat,
    .heartbeat_remove = pg_heartbeat_remove,
    .recover_dead = pg_recover_dead,
    .prune = pg_prune,
    .listen = pg_listen,
    .listen_drain = pg_listen_drain,
};
