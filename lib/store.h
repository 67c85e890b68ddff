/*
 * store: the SQLite database, the durable queue and the record of every
 * request. One struct store is one connection; it belongs to one thread at
 * a time (open one per thread). Many processes may open the same file.
 *
 *  - WAL mode; migrations from sql/ (compiled in) applied at open, under the
 *    write lock (BEGIN IMMEDIATE), idempotently, safe when many processes
 *    start at once.
 *  - Every write runs in BEGIN IMMEDIATE. A busy handler retries in
 *    microseconds (not SQLite's multi-millisecond sleeps) for up to
 *    STORE_BUSY_TIMEOUT_MS, so SQLITE_BUSY does not reach a client while
 *    writers contend.
 *  - The connection runs synchronous=NORMAL. A job insert commits at NORMAL
 *    and then fdatasyncs the WAL: when store_insert_job returns STORE_OK the
 *    job is on disk (store.c says why that is as durable as FULL).
 *  - Group commit (store_commit.c): a process with many request threads
 *    starts one store_committer and attaches it to each thread's connection
 *    (store_use_committer). store_insert_job on such a connection hands the
 *    job to the committer, which writes every job waiting at that moment in
 *    one transaction under the host's write lock and makes them durable
 *    with one fdatasync, then returns; store_insert_sync queues the record
 *    for the next transaction and returns at once (no fsync: a /sync record
 *    is a log entry). The caller knows nothing of locks or syncs.
 *  - PRAGMA mmap_size: pages are read through a shared mapping, so the page
 *    cache that another process's write invalidates is refilled without a
 *    pread per page.
 *
 * The deliverer's SQL (claims, leases, attempts, heartbeats) lives in
 * queue.c, which uses store_db() and the transaction helpers below.
 */
#ifndef CONSUMA_STORE_H
#define CONSUMA_STORE_H

#include <stdbool.h>
#include <stdint.h>
#include <sqlite3.h>
#include <json-c/json.h>

#define STORE_BUSY_TIMEOUT_MS 10000

struct store;

enum store_err {
	STORE_OK = 0,
	STORE_NOMEM,
	STORE_BUSY,      /* the busy handler gave up */
	STORE_IO,        /* SQLite failed: see store_errmsg */
	STORE_NOTFOUND,  /* no such row */
	STORE_CONFLICT,  /* idempotency key reused with a different body */
	STORE_MIGRATION, /* a migration failed or the schema is newer than us */
	STORE_FULL,      /* an intake bound refused the job: see store_job_result */
};

const char *store_strerror(enum store_err err);

/* Opens (creating if needed) the database at path and applies migrations.
 * Returns NULL on failure with *err set (and, when errmsg is not NULL, a
 * message written into it). */
struct store *store_open(const char *path, enum store_err *err, char *errmsg, size_t errlen);
/* store_close(NULL) is a no-op. Finalizes every prepared statement. */
void store_close(struct store *s);
/* The last SQLite error message of this connection. */
const char *store_errmsg(struct store *s);
/* The raw handle, for queue.c and tests. */
sqlite3 *store_db(struct store *s);

/* Transaction helpers: BEGIN IMMEDIATE / COMMIT / ROLLBACK. A failed
 * store_commit has already rolled back; store_rollback outside a transaction
 * is a no-op. */
enum store_err store_begin(struct store *s);
enum store_err store_commit(struct store *s);
void store_rollback(struct store *s);
/* Maps a SQLite result code to a store_err (SQLITE_OK/DONE/ROW -> STORE_OK). */
enum store_err store_from_sqlite(int rc);

/* A finished /sync request. */
struct sync_record {
	const char *id; /* UUIDv7 */
	const char *input_data;
	int64_t iterations;
	const char *result; /* 64 hex */
	double duration_ms;
	int64_t created_at; /* epoch ms */
	int64_t completed_at;
	const char *client_addr;
	const char *owner; /* the API key's client name; NULL when the service runs open */
};
/* Records a finished /sync request. Without a committer: inserted now, in
 * the caller's transaction when one is open, else in its own. With one:
 * copied and queued for the committer's next transaction, and STORE_OK
 * means queued (the record survives a killed process once written, never
 * promised to survive a power cut: the last few may be lost). May wait for
 * room when the committer's bounded queue is full. Thread safe with a
 * committer in the sense that the committer is; s stays one thread's. */
enum store_err store_insert_sync(struct store *s, const struct sync_record *r);

/* A new async job. */
struct job_insert {
	const char *id; /* UUIDv7, used unless the key matched */
	const char *input_data;
	int64_t iterations;
	const char *callback_url;
	const char *callback_host; /* lowercased */
	/* JSON array of the keys the per-destination bound counts the job
	 * under (ssrf_pending_keys); NULL counts it under callback_host alone */
	const char *pending_keys;
	const char *client_addr;
	const char *idempotency_key; /* NULL when the header was absent */
	const char *body_hash;       /* sha256 hex of the body, for the key check */
	int64_t created_at;          /* epoch ms */
	int64_t idempotency_ttl_ms;  /* a key older than this is forgotten */
	/* Intake bounds, checked in the same transaction (0: no bound). */
	int64_t max_queue_size;
	int64_t max_client_pending; /* the client's share of the queue */
	int64_t max_host_pending;   /* unfinished jobs per callback host */
	const char *owner;          /* the API key's client name; NULL when open */
};

enum job_refusal {
	JOB_ACCEPTED = 0,
	JOB_QUEUE_FULL,   /* queue_depth >= max_queue_size */
	JOB_CLIENT_SHARE, /* the client holds its share */
	JOB_HOST_PENDING, /* the callback host has too many unfinished jobs */
};

struct job_result {
	char id[37];              /* the job's id: new, or the first one's for a repeated key */
	char status[16];          /* its work status */
	bool replayed;            /* true when the idempotency key matched */
	enum job_refusal refusal; /* why, on STORE_FULL */
	int64_t queue_depth;      /* depth seen by the check */
};

/* Inserts the job durably (committed, then the WAL synced), or finds the earlier job for
 * the same (client_addr, idempotency_key) within the TTL (a replay is
 * answered even when a bound would refuse a new job; idempotency_ttl_ms <= 0
 * keeps keys forever). STORE_CONFLICT when the key matched with a different
 * body_hash (res->id is the first job's); STORE_FULL when a bound refused it
 * (res->refusal says which). STORE_IO when called inside a transaction: it
 * must own its commit to make it durable. A replay is synced too: the first
 * request's process may not have synced yet. With a committer attached the
 * job is written in the committer's next batch; the call returns when that
 * batch is durable (or failed: then nothing was promised, and a committed
 * job that missed its sync is found by an Idempotency-Key retry). */
enum store_err store_insert_job(struct store *s, const struct job_insert *job,
                                struct job_result *res);

/* ---- group commit (store_commit.c) ---- */
struct store_committer;

struct store_committer_stats {
	uint64_t transactions;      /* write transactions committed */
	uint64_t fsyncs;            /* WAL fdatasyncs (one per batch holding a job) */
	uint64_t jobs;              /* async jobs made durable, replays included */
	uint64_t sync_records;      /* /sync records written */
	uint64_t sync_records_lost; /* /sync records dropped with a failed batch */
};

/* Opens a connection of its own on path and starts the committer thread.
 * NULL on failure with *err (and errmsg) set. Thread safe to use from any
 * number of threads once started. */
struct store_committer *store_committer_start(const char *path, enum store_err *err, char *errmsg,
                                              size_t errlen);
/* Writes everything queued, stops the thread, logs the figures of
 * store_committer_stats (event store.committer), closes; NULL is a no-op.
 * Stop it only after every thread that uses it has stopped. */
void store_committer_stop(struct store_committer *c);
/* Counters since start (relaxed reads: each one exact, not a snapshot). */
void store_committer_stats(struct store_committer *c, struct store_committer_stats *out);
/* Makes store_insert_job and store_insert_sync on s go through c (NULL:
 * s writes itself again). s must not outlive c in that use. */
void store_use_committer(struct store *s, struct store_committer *c);

/* The full record of one request, as the API shows it (see README), with
 * "delivery_trace": one object per attempt. *out is a new json_object the
 * caller puts. STORE_NOTFOUND for an unknown id. */
enum store_err store_get_request(struct store *s, const char *id, json_object **out);
/* store_get_request seen by owner: a record of another owner (or of none)
 * is STORE_NOTFOUND, by the same one-row lookup as an unknown id. NULL
 * owner sees every record (an admin key, or the service running open). */
enum store_err store_get_request_owned(struct store *s, const char *id, const char *owner,
                                       json_object **out);

struct list_query {
	const char *mode;   /* "sync", "async" or NULL */
	const char *status; /* a status or NULL */
	int64_t limit;      /* 1..200 */
	int64_t offset;     /* >= 0 */
	const char *owner;  /* only this owner's records; NULL: everyone's */
};
/* A json array of {"id","mode","status","callback_status","duration_ms",
 * "created_at"}, newest first. "status" is the work status and
 * "callback_status" the callback's (null for sync), as in store_get_request;
 * q->status matches either. limit is clamped to 1..200, offset to >= 0. */
enum store_err store_list_requests(struct store *s, const struct list_query *q, json_object **out);

struct store_health {
	int64_t queue_depth;       /* unfinished async jobs (O(1) counter) */
	bool deliverer_seen;       /* any heartbeat row at all */
	int64_t deliverer_beat_ms; /* newest beat_at */
	int64_t deliverer_pid;
	int64_t deliverer_started_at;
	int64_t busy_workers; /* summed over live deliverers */
	int64_t workers;
	int64_t inflight;
	int64_t deliverers_alive; /* heartbeats newer than the stale bound */
};
/* Reads the health figures in one read transaction; stale_ms decides which
 * heartbeats count as alive. */
enum store_err store_health(struct store *s, int64_t stale_ms, struct store_health *h);

/* ---- operations: redelivery and the oldest-pending gauge (issue 13) -----
 * Their statements are prepared per call (not in the cached table): they
 * serve operator requests and scrapes, not the hot paths. */

enum store_redeliver {
	STORE_REDELIVERED = 0,  /* put back: due now, attempts continue its trace */
	STORE_REDELIVER_BUSY,   /* unfinished: still queued, running or retrying */
	STORE_REDELIVER_NOTJOB, /* a /sync record: there is no callback */
};

/* Puts the finished async job id back in the queue in one write
 * transaction: finished_at cleared, callback_status retrying (a failed work
 * status queued again), due at now_ms, the queue counters (depth, host,
 * client) counted up again as for a new job. Its attempts and webhook-id
 * stay: the deliverer appends attempt n+1 to the trace. *outcome says what
 * happened; *seq is the job's seq when redelivered. STORE_NOTFOUND for an
 * unknown id. */
enum store_err store_redeliver_one(struct store *s, const char *id, int64_t now_ms,
                                   enum store_redeliver *outcome, int64_t *seq);

struct redeliver_query {
	const char *callback_status; /* "failed" or "delivered" */
	int64_t since_ms;            /* created_at >= since_ms */
	int64_t until_ms;            /* created_at < until_ms */
	const char *callback_host;   /* lowercased; NULL for any */
	int64_t max_jobs;            /* at most this many, oldest first (<= 0: none) */
};

/* Counts the finished async jobs q matches (*matched); unless dry_run, puts
 * the oldest q->max_jobs of them back as store_redeliver_one does, in one
 * write transaction (*redelivered, and *min_seq the lowest seq put back, 0
 * for none). A dry run is a read and writes nothing. */
enum store_err store_redeliver_bulk(struct store *s, const struct redeliver_query *q, bool dry_run,
                                    int64_t now_ms, int64_t *matched, int64_t *redelivered,
                                    int64_t *min_seq);

/* The oldest unfinished async job, read forward from mark (a seq at or
 * below it; 0 when unknown). When mark is 0 or more than scan_max rows
 * behind the newest row, it is found through the requests_due index
 * instead (O(queue depth)), and so it is when the forward read finds
 * nothing. *found false when nothing is unfinished; then
 * *seq is one past the newest row (a mark for the next call), else the
 * job's seq, with *created_at its acceptance time. One read transaction. */
enum store_err store_oldest_pending(struct store *s, int64_t mark, int64_t scan_max, bool *found,
                                    int64_t *seq, int64_t *created_at);

#endif
