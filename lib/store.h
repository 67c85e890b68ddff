/*
 * store: consuma's database behind one interface: the durable queue, the
 * record of every request, the deliverer's leases and heartbeats. SQL lives
 * only behind this header; callers get data (structs), never rows or JSON.
 *
 * Two backends, chosen at open by the target string:
 *  - "postgresql://..." or "postgres://..." (CONSUMA_DATABASE_URL): PostgreSQL
 *    (store_pg.c, sql/postgres/). Several hosts share one queue: claims with
 *    FOR UPDATE SKIP LOCKED, the intake bounds as counters in the database,
 *    commits durable at synchronous_commit=on.
 *  - anything else is a file path (CONSUMA_DATABASE_PATH): SQLite
 *    (store_sqlite.c, sql/sqlite/), one host, zero set-up.
 *
 * One struct store is one connection; it belongs to one thread at a time
 * (open one per thread). Many processes may open the same database.
 *
 *  - Migrations (one numbered folder per backend, compiled in) are applied
 *    at open, under a lock (SQLite's write lock, PostgreSQL's advisory
 *    lock), idempotently, safe when many processes start at once.
 *  - When store_insert_job returns STORE_OK the job is on disk.
 *  - Group commit (store_commit.c): a process with many request threads
 *    starts one store_committer and attaches it to each thread's connection
 *    (store_use_committer). store_insert_job on such a connection hands the
 *    job to the committer, which writes every job waiting at that moment in
 *    one transaction and makes them durable at once (SQLite: under the
 *    host's write lock, then one fdatasync; PostgreSQL: one commit, so one
 *    WAL flush), then returns (store_insert_job_then returns at once and
 *    calls back with the outcome instead); store_insert_sync queues the record for the
 *    next transaction and returns at once (a /sync record is a log entry,
 *    never synced for its own sake). The caller knows nothing of locks or
 *    syncs.
 *
 * Errors reach the caller as they are: a transient one (STORE_BUSY,
 * STORE_FULL, STORE_UNAVAILABLE: store_err_transient) is worth a retry
 * later, and the API answers it 503 with Retry-After; STORE_IO is not.
 */
#ifndef CONSUMA_STORE_H
#define CONSUMA_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_BUSY_TIMEOUT_MS 10000
/* A deliverer's lease owner id, terminator included. */
#define STORE_OWNER_MAX 128

struct store;

enum store_err {
	STORE_OK = 0,
	STORE_NOMEM,
	STORE_BUSY,        /* the database stayed locked past the busy timeout */
	STORE_IO,          /* the database failed: see store_errmsg */
	STORE_FULL,        /* out of space: the disk (or the database's quota) is full */
	STORE_UNAVAILABLE, /* the database server cannot be reached (PostgreSQL) */
	STORE_NOTFOUND,    /* no such row */
	STORE_CONFLICT,    /* idempotency key reused with a different body */
	STORE_REFUSED,     /* an intake bound refused the job: see store_job_result */
	STORE_FENCED,      /* the job's lease_token no longer matches: hands off */
	STORE_MIGRATION,   /* a migration failed or the schema is newer than us */
};

const char *store_strerror(enum store_err err);
/* STORE_BUSY, STORE_FULL and STORE_UNAVAILABLE: the same call may succeed
 * later without anyone changing the request. */
bool store_err_transient(enum store_err err);

/* True when target names a PostgreSQL server (a postgresql:// or
 * postgres:// URL) rather than a SQLite file. */
bool store_target_is_url(const char *target);

/* Opens (creating the SQLite file if needed) the database named by target
 * and applies migrations. Returns NULL on failure with *err set (and, when
 * errmsg is not NULL, a message written into it). */
struct store *store_open(const char *target, enum store_err *err, char *errmsg, size_t errlen);
/* store_close(NULL) is a no-op. */
void store_close(struct store *s);
/* The last error message of this connection. */
const char *store_errmsg(struct store *s);
/* "sqlite" or "postgres", as /healthz names it. */
const char *store_backend(const struct store *s);

/* Transaction helpers, for batching the deliverer's writes: a write
 * transaction / commit / rollback. A failed store_commit has already rolled
 * back; store_rollback outside a transaction is a no-op. */
enum store_err store_begin(struct store *s);
enum store_err store_commit(struct store *s);
void store_rollback(struct store *s);

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
	const char *body_hash;       /* sha256 hex of the body, for the key check (NULL: no key) */
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
	enum job_refusal refusal; /* why, on STORE_REFUSED */
	int64_t queue_depth;      /* depth seen by the check */
	uint64_t batch;           /* the committer's batch that made it durable, counted from 1
	                           * in this process (0: written without a committer) */
};

/* Inserts the job durably, or finds the earlier job for the same
 * (client_addr, idempotency_key) within the TTL (a replay is answered even
 * when a bound would refuse a new job; idempotency_ttl_ms <= 0 keeps keys
 * forever). STORE_CONFLICT when the key matched with a different body_hash
 * (res->id is the first job's); STORE_REFUSED when a bound refused it
 * (res->refusal says which). STORE_IO when called inside a transaction: it
 * must own its commit to make it durable. A replay is made durable too: the
 * first request's process may not have synced yet. With a committer attached the
 * job is written in the committer's next batch; the call returns when that
 * batch is durable (or failed: then nothing was promised, and a committed
 * job that missed its sync is found by an Idempotency-Key retry). */
enum store_err store_insert_job(struct store *s, const struct job_insert *job,
                                struct job_result *res);

/* store_insert_job for a thread that must not wait for the disk: with a
 * committer attached to s, queues the job for the committer's next batch
 * and returns true at once; done(arg, err, msg) is called once, on the
 * committer's thread, when the outcome is final (the outcomes and the
 * promise of store_insert_job: STORE_OK only once the job is durable),
 * with *res filled and msg the failure's message ("" on success). job and
 * res must stay valid until then, and done must not wait: it hands the
 * answer to a thread of the caller's. Without a committer (or once it has
 * stopped) it does nothing and returns false: call store_insert_job. */
typedef void (*store_done_fn)(void *arg, enum store_err err, const char *msg);
bool store_insert_job_then(struct store *s, const struct job_insert *job, struct job_result *res,
                           store_done_fn done, void *arg);

/* The read-only half of store_insert_job's key check, so that a repeated
 * Idempotency-Key is answered before the work a new job needs (the
 * callback host's lookup): finds job->idempotency_key of job->client_addr
 * within the TTL (reads client_addr, idempotency_key, body_hash, created_at
 * and idempotency_ttl_ms only; writes nothing). STORE_OK with res->replayed,
 * id and status when the body_hash matches, once that job is durable (the
 * first request's process may not have synced yet); STORE_CONFLICT when it
 * differs (res->id is the first job's); STORE_NOTFOUND when there is no
 * live key (or no key at all, or a backend without this read): then
 * store_insert_job decides, in its transaction, as before. The caller's
 * connection, outside a transaction (STORE_IO inside one). */
enum store_err store_find_replay(struct store *s, const struct job_insert *job,
                                 struct job_result *res);

/* ---- group commit (store_commit.c) ---- */
struct store_committer;

struct store_committer_stats {
	uint64_t transactions;      /* write transactions committed */
	uint64_t fsyncs;            /* durable commits: one per batch holding a job (SQLite: a WAL
	                             * fdatasync; PostgreSQL: a commit at synchronous_commit=on) */
	uint64_t jobs;              /* async jobs made durable, replays included */
	uint64_t sync_records;      /* /sync records written */
	uint64_t sync_records_lost; /* /sync records dropped with a failed batch */
	int64_t last_ok_ms;         /* wall time of the newest committed batch, 0: none */
	int64_t last_failed_ms;     /* of the newest failed batch (or sync), 0: none */
	enum store_err last_error;  /* why it failed */
};

/* Opens a connection of its own on target (store_open) and starts the committer thread.
 * NULL on failure with *err (and errmsg) set. Thread safe to use from any
 * number of threads once started. */
struct store_committer *store_committer_start(const char *target, enum store_err *err, char *errmsg,
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

/* ---- reads: the API's records ------------------------------------------
 * Times are epoch ms, 0 when absent (NULL in the row); a string pointer is
 * NULL when absent, a fixed array "" when absent. */

/* One attempt of the delivery trace. */
struct store_attempt {
	int64_t number;
	char state[16]; /* sending, done, unknown */
	int64_t started_at;
	bool has_duration;
	double duration_ms;
	int http_status; /* 0: no response */
	char *error_class;
	char *error_message;
	int64_t next_attempt_at;
};

/* The full record of one request, as GET /requests/{id} shows it. */
struct store_request {
	char id[37];
	char mode[8];             /* sync, async */
	char status[16];          /* the work status */
	char callback_status[16]; /* "" for sync */
	int64_t iterations;
	char result[65]; /* "" until computed */
	bool has_duration;
	double duration_ms;
	char *input_data;
	char *callback_url;
	int64_t created_at;
	int64_t started_at;
	int64_t completed_at;
	int64_t finished_at;
	int64_t attempts;        /* async only */
	int64_t next_attempt_at; /* async and unfinished only */
	char *last_error;
	struct store_attempt *trace; /* attempt order; async only */
	size_t n_trace;
};
/* Frees what r owns (not r); NULL is a no-op. */
void store_request_clear(struct store_request *r);

/* The record of id into *out (cleared first; store_request_clear it after
 * STORE_OK). A record of another owner (or of none) is STORE_NOTFOUND, by
 * the same one-row lookup as an unknown id; NULL owner sees every record
 * (an admin key, or the service running open). One read transaction. */
enum store_err store_get_request(struct store *s, const char *id, const char *owner,
                                 struct store_request *out);

#define STORE_LIST_MAX 200

struct list_query {
	const char *mode;   /* "sync", "async" or NULL */
	const char *status; /* a status or NULL: matches the work or the callback status */
	int64_t limit;      /* clamped to 1..STORE_LIST_MAX */
	int64_t offset;     /* clamped to >= 0 */
	const char *owner;  /* only this owner's records; NULL: everyone's */
};

struct store_list_item {
	char id[37];
	char mode[8];
	char status[16];
	char callback_status[16]; /* "" for sync */
	bool has_duration;
	double duration_ms;
	int64_t created_at;
};

struct store_page {
	struct store_list_item *items; /* newest first */
	size_t n;
};
void store_page_clear(struct store_page *p);

/* One page of the list, newest first (acceptance order). */
enum store_err store_list_requests(struct store *s, const struct list_query *q,
                                   struct store_page *out);

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

/* Jobs the deliverers finished in the seconds since since_s (epoch seconds,
 * inclusive), summed over every deliverer (the drain table): the rate
 * /async's queue Retry-After is computed from. */
enum store_err store_drained(struct store *s, int64_t since_s, int64_t *jobs);

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

/* ---- the deliverer's queue ----------------------------------------------
 *
 * Leases. A claim sets lease_owner, a fresh lease_token and
 * lease_expires_at on each claimed row, and moves next_attempt_at to the
 * lease expiry: an expired lease is then simply due again, and another
 * deliverer may claim it. Every later write on a job carries its
 * lease_token: a holder that stalled past its lease and lost the job to a
 * newer claim changes nothing (STORE_FENCED), so it can never overwrite the
 * new owner's outcome.
 *
 * Attempts. store_attempt_begin writes the attempt row in state 'sending'
 * (and the computed result, when it is not stored yet) before the request
 * leaves; store_attempt_end completes it in the same transaction that moves
 * the job on. When a claim takes a job whose previous holder died, the
 * attempts it left 'sending' become 'unknown' (the receiver may or may not
 * have seen them) and the job is retried with the same webhook-id.
 *
 * Transactions. store_claim, store_renew, store_handback_all,
 * store_heartbeat, store_recover_dead and store_prune run their own short
 * transaction. store_attempt_begin, store_attempt_end and store_release run
 * inside the caller's store_begin()/store_commit(), so the deliverer can
 * batch many jobs into one transaction. No transaction is ever open across
 * a callback.
 *
 * A connection that claims names its owner first (store_set_owner). */

/* This connection's lease owner id (copied, cut at STORE_OWNER_MAX - 1). */
void store_set_owner(struct store *s, const char *owner);

/* One claimed job. The strings are owned by the struct: store_job_clear
 * frees them. */
struct store_job {
	int64_t seq;
	char id[37];
	char *input_data;
	size_t input_len;
	int64_t iterations;
	char *callback_url;
	char *callback_host;  /* "" when the row has none */
	bool computed;        /* a result is stored (work status completed) */
	char result[65];      /* when computed */
	double duration_ms;   /* compute time, when computed */
	int64_t created_at;   /* epoch ms */
	int64_t completed_at; /* epoch ms, when computed */
	int64_t attempts;     /* attempts started before this claim */
	int64_t unknown;      /* of those, how many ended with outcome unknown */
	int64_t lease_token;
	/* SQLite counts the job under these when it finishes (store_sqlite.c,
	 * "the transaction's counts"); NULL when the row has none, and always
	 * on PostgreSQL, whose statement counts them */
	char *client_addr;
	char *pending_keys;
};

/* Frees the strings of j (not j itself); NULL is a no-op. */
void store_job_clear(struct store_job *j);

/* The key claims leave jobs out by: callback_url's scheme and authority as
 * spelled, lowercased (everything before the first '/', '?' or '#' after
 * "://"), so "http://127.0.0.1:8001/x" gives "http://127.0.0.1:8001" and
 * two ports of one host are two keys. Written into out (always
 * terminated, cut at outlen - 1). Thread safe. */
void store_claim_key(const char *callback_url, char *out, size_t outlen);

/* The claim keys (store_claim_key) a claim leaves out. */
struct store_exclude {
	const char *const *keys;
	size_t n;
};

/* Claims up to max due, unfinished async jobs in acceptance order
 * (next_attempt_at, seq) whose lease is absent or expired and whose claim
 * key is not in ex (NULL or n == 0: none), leasing them to this owner until
 * now + lease_ms, all in one transaction. Queued rows become running.
 * Attempts left 'sending' by a dead holder become 'unknown'. *jobs is a
 * cz_malloc'd array of *n jobs (NULL when 0): the caller clears each and
 * cz_frees the array. With exclusions, SQLite may walk on from where the
 * last claim with the same ones saw only left-out jobs (its claim mark):
 * a job made due behind that point at the very moment of that walk is
 * then claimed up to a second later (store_sqlite_queue.c). */
enum store_err store_claim(struct store *s, int64_t now, int64_t lease_ms, int max,
                           const struct store_exclude *ex, struct store_job **jobs, int *n);

/* The earliest next_attempt_at later than after (INT64_MIN: any) of any
 * unfinished async job whose claim key is not in ex; *found false when
 * there is none. A read. After a claim that took every due job it could,
 * after = the claim's now: the walk then starts past the due jobs held
 * back (a breaker's backlog), which the claim has just walked. */
enum store_err store_next_due(struct store *s, const struct store_exclude *ex, int64_t after,
                              bool *found, int64_t *due);

/* Inside the caller's transaction: before attempt number `number` is sent,
 * stores j's result when store_result (work status completed), marks the
 * job delivering, counts the attempt and inserts the attempt row in state
 * 'sending'. STORE_FENCED when the lease was lost (nothing written). */
enum store_err store_attempt_begin(struct store *s, const struct store_job *j, bool store_result,
                                   int64_t number, int64_t started_at);

enum store_verdict {
	STORE_DELIVERED,
	STORE_RETRY,
	STORE_FAILED,
};

struct store_outcome {
	int64_t number;            /* the attempt */
	double duration_ms;        /* of the attempt */
	int http_status;           /* 0: no response */
	const char *error_class;   /* NULL on success */
	const char *error_message; /* NULL on success */
	enum store_verdict verdict;
	int64_t next_attempt_at; /* STORE_RETRY: when */
	int64_t now;             /* finished_at for delivered/failed */
};

/* Inside the caller's transaction: completes the attempt row and moves the
 * job to delivered, retrying (lease released, due at next_attempt_at) or
 * failed. STORE_FENCED when the lease was lost (the attempt row is still
 * completed if it is ours and 'sending'; the job is not touched). */
enum store_err store_attempt_end(struct store *s, const struct store_job *j,
                                 const struct store_outcome *o);

/* Inside the caller's transaction: hands j back (lease released, due at
 * due_at) without counting an attempt; stores its result first when
 * store_result. STORE_FENCED when the lease was lost. */
enum store_err store_release(struct store *s, const struct store_job *j, bool store_result,
                             int64_t due_at);

/* Moves every lease this owner holds to now + lease_ms. *renewed counts
 * the rows (may be NULL). */
enum store_err store_renew(struct store *s, int64_t now, int64_t lease_ms, int64_t *renewed);

/* One transaction: every unfinished job this owner holds is handed back
 * (lease released, due now, queued again when it was running) and its
 * attempts left 'sending' become 'unknown'. *released counts the jobs. */
enum store_err store_handback_all(struct store *s, int64_t now, int64_t *released);

struct store_beat {
	int64_t pid;
	int64_t started_at;
	int64_t busy_workers;
	int64_t workers;
	int64_t inflight;
};

/* Upserts this owner's heartbeat row with beat_at = now. */
enum store_err store_heartbeat(struct store *s, int64_t now, const struct store_beat *b);
/* Deletes this owner's heartbeat row (clean exit). */
enum store_err store_heartbeat_remove(struct store *s);

/* Crash recovery at start-up: calls is_dead(owner, pid, arg) for every
 * other owner's heartbeat; for each one it reports dead, expires that
 * owner's leases (due now) and deletes its heartbeat, so its jobs need not
 * wait out the lease. *recovered counts the jobs. (With several hosts a pid
 * means nothing on another host: is_dead decides from the owner id.) */
enum store_err store_recover_dead(struct store *s, int64_t now,
                                  bool (*is_dead)(const char *owner, int64_t pid, void *arg),
                                  void *arg, int64_t *recovered);

/* Retention: one transaction that looks at the oldest max_rows rows of
 * requests in acceptance order and deletes those among them with
 * finished_at < cutoff_ms, together with their attempts. Unfinished rows
 * are never touched and the queue counters do not change (a row left them
 * when it finished). The work per call is bounded by max_rows whatever the
 * table size; an old unfinished job only takes one of the max_rows places
 * until it finishes. *deleted counts the requests rows removed (0 on error;
 * may be NULL). Outside any open transaction. */
enum store_err store_prune(struct store *s, int64_t cutoff_ms, int64_t max_rows, int64_t *deleted);

/* Wake-up across hosts. Makes this connection listen for the committers'
 * new-job notices and sets *fd to a descriptor to poll(2) for POLLIN (-1
 * when the backend has none: SQLite's wake-up is the host's doorbell; -1
 * and STORE_UNAVAILABLE while a PostgreSQL connection is down). The
 * descriptor changes when the connection is reset: call it again before
 * each poll (once listening it costs no round trip).
 * store_listen_drain consumes what arrived; returns how many notices. */
enum store_err store_listen(struct store *s, int *fd);
int store_listen_drain(struct store *s);

#endif
