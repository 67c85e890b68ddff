/*
 * store_int: what the store's own files share and nobody else sees (the
 * shape of SQLite's sqliteInt.h beside sqlite3.h, and of its VFS: one table
 * of functions per backend).
 *
 *   store.c         the public entry points: checks, then s->ops->...
 *   store_sqlite.c  the SQLite backend (sql/sqlite/)
 *   store_pg.c      the PostgreSQL backend (sql/postgres/)
 *   store_commit.c  the group committer, backend-neutral through the ops
 *
 * A backend's connection struct begins with a struct store (the base), so
 * a struct store * is cast to the backend's own type inside its file.
 */
#ifndef CONSUMA_STORE_INT_H
#define CONSUMA_STORE_INT_H

#include "store.h"

/* The base every backend connection starts with. */
struct store {
	const struct store_ops *ops;
	struct store_committer *committer; /* NULL: this connection writes itself */
	char owner[STORE_OWNER_MAX];       /* lease owner id (store_set_owner) */
	uint64_t token_next;               /* lease tokens: random 63-bit start, then counting */
	char msg[512];                     /* our own message for the last failure, "" if none */
};

/* Sets s->msg (printf style). */
void store_set_msg(struct store *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The callback_status a verdict leaves the job in (both backends write
 * it). */
const char *store_verdict_status(enum store_verdict v);
/* A fresh lease token of this connection (positive, never repeated). */
int64_t store_next_token(struct store *s);

/* One backend. Every entry is required unless it says otherwise. The
 * contracts are those of the public function of the same name in store.h,
 * with s already checked. */
struct store_ops {
	const char *name; /* "sqlite", "postgres" */
	/* target is the string store_open was given */
	struct store *(*open)(const char *target, enum store_err *err, char *errmsg, size_t errlen);
	void (*close)(struct store *s);
	const char *(*errmsg)(struct store *s); /* the driver's last message */

	enum store_err (*begin)(struct store *s);
	enum store_err (*commit)(struct store *s);
	void (*rollback)(struct store *s);
	/* true when the connection is inside a transaction */
	bool (*in_tx)(struct store *s);

	/* The intake of one job inside the caller's open write transaction:
	 * the idempotency key, the intake bounds, the row. STORE_OK (res says
	 * new or replayed), STORE_REFUSED or STORE_CONFLICT are this job's
	 * answer and leave the transaction usable (PostgreSQL: no statement
	 * of a refused or conflicting job may fail, or use a savepoint);
	 * any other error means the transaction must be rolled back. */
	enum store_err (*job_in_tx)(struct store *s, const struct job_insert *job,
	                            struct job_result *res);
	/* Optional (NULL: STORE_NOTFOUND, store_insert_job decides): the read
	 * of store_find_replay, outside a transaction. STORE_OK with res
	 * filled (replayed) for a live key of the same body, STORE_CONFLICT
	 * for another body, STORE_NOTFOUND for none (an expired key is left
	 * alone); store.c makes a replay durable. */
	enum store_err (*find_replay)(struct store *s, const struct job_insert *job,
	                              struct job_result *res);
	/* Inserts a /sync record inside the caller's open write transaction. */
	enum store_err (*sync_record_in_tx)(struct store *s, const struct sync_record *r);
	/* Called after a commit that wrote (or replayed) a job: returns once
	 * every transaction committed so far is durable (SQLite: fdatasync of
	 * the WAL, store_sqlite.c says why; PostgreSQL: nothing to do, a
	 * commit at synchronous_commit=on is already flushed). */
	enum store_err (*make_durable)(struct store *s);

	/* The committer's batch: a write transaction that may hold many jobs
	 * and records. batch_begin takes whatever lock the backend needs
	 * across processes (SQLite: the host's flock on <db>.wlock, then
	 * BEGIN IMMEDIATE; PostgreSQL: BEGIN). batch_commit commits and
	 * releases that lock; when jobs > 0 it first tells the deliverers
	 * (PostgreSQL: NOTIFY inside the transaction, at most once per few
	 * ms); on failure the batch is rolled back and the lock released.
	 * batch_abort rolls back and releases the lock. After a successful
	 * batch_commit with jobs the committer calls make_durable. */
	enum store_err (*batch_begin)(struct store *s);
	enum store_err (*batch_commit)(struct store *s, size_t jobs);
	void (*batch_abort)(struct store *s);

	enum store_err (*get_request)(struct store *s, const char *id, const char *owner,
	                              struct store_request *out);
	enum store_err (*list_requests)(struct store *s, const struct list_query *q,
	                                struct store_page *out);
	enum store_err (*health)(struct store *s, int64_t stale_ms, struct store_health *h);
	enum store_err (*drained)(struct store *s, int64_t since_s, int64_t *jobs);
	enum store_err (*redeliver_one)(struct store *s, const char *id, int64_t now_ms,
	                                enum store_redeliver *outcome, int64_t *seq);
	enum store_err (*redeliver_bulk)(struct store *s, const struct redeliver_query *q,
	                                 bool dry_run, int64_t now_ms, int64_t *matched,
	                                 int64_t *redelivered, int64_t *min_seq);
	enum store_err (*oldest_pending)(struct store *s, int64_t mark, int64_t scan_max,
	                                 bool *found, int64_t *seq, int64_t *created_at);

	enum store_err (*claim)(struct store *s, int64_t now, int64_t lease_ms, int max,
	                        const struct store_exclude *ex, struct store_job **jobs, int *n);
	enum store_err (*next_due)(struct store *s, const struct store_exclude *ex, int64_t after,
	                           bool *found, int64_t *due);
	enum store_err (*attempt_begin)(struct store *s, const struct store_job *j,
	                                bool store_result, int64_t number, int64_t started_at);
	enum store_err (*attempt_end)(struct store *s, const struct store_job *j,
	                              const struct store_outcome *o);
	enum store_err (*release)(struct store *s, const struct store_job *j, bool store_result,
	                          int64_t due_at);
	enum store_err (*renew)(struct store *s, int64_t now, int64_t lease_ms, int64_t *renewed);
	enum store_err (*handback_all)(struct store *s, int64_t now, int64_t *released);
	enum store_err (*heartbeat)(struct store *s, int64_t now, const struct store_beat *b);
	enum store_err (*heartbeat_remove)(struct store *s);
	enum store_err (*recover_dead)(struct store *s, int64_t now,
	                               bool (*is_dead)(const char *owner, int64_t pid, void *arg),
	                               void *arg, int64_t *recovered);
	enum store_err (*prune)(struct store *s, int64_t cutoff_ms, int64_t max_rows,
	                        int64_t *deleted);
	/* optional (NULL: never): when a committed batch's wake-up of the
	 * deliverers was held back (PostgreSQL's NOTIFY gap), the ms until it
	 * may go (0: now); -1 when nothing is owed. The committer, idle, then
	 * commits an empty batch for it, so the last jobs of a burst do not
	 * wait for the deliverers' fallback poll. */
	int64_t (*notice_owed_ms)(struct store *s);
	/* optional (NULL: *fd = -1, drain 0) */
	enum store_err (*listen)(struct store *s, int *fd);
	int (*listen_drain)(struct store *s);
};

extern const struct store_ops store_sqlite_ops;
#ifdef CONSUMA_HAVE_POSTGRES
extern const struct store_ops store_pg_ops;
#endif

/* The committer's entry points, reached through store_insert_job and
 * store_insert_sync of a store that store_use_committer attached. */
enum store_err store_committer_submit(struct store_committer *c, const struct job_insert *job,
                                      struct job_result *res, char *msg, size_t msglen);
bool store_committer_submit_then(struct store_committer *c, const struct job_insert *job,
                                 struct job_result *res, store_done_fn done, void *arg);
enum store_err store_committer_log(struct store_committer *c, const struct sync_record *r);

/* For tests of the SQLite backend only: the raw handle (sqlite3 *). */
void *store_sqlite_handle(struct store *s);

#endif
