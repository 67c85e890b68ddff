/*
 * store_sqlite: what the SQLite backend's two files share
 * (store_sqlite.c: the connection, intake and the API's reads;
 * store_sqlite_queue.c: the deliverer's queue). Nobody else includes it.
 */
#ifndef CONSUMA_STORE_SQLITE_H
#define CONSUMA_STORE_SQLITE_H

#include <sqlite3.h>

#include "store_int.h"
#include "store_tally.h"

#define SQ_STMT_MAX  48 /* store_sqlite.c's statements */
#define SQ_QUEUE_MAX 24 /* store_sqlite_queue.c's */

/* The counter tables' changes of the open write transaction
 * (sql/sqlite/010_counts_by_the_store.sql): kept here, written once per
 * key at commit (sq_commit), dropped at rollback. */
struct sq_drained {
	int64_t second, n;
};
struct sq_counts {
	bool depth_known;
	int64_t depth_base, depth_delta; /* counters.queue_depth */
	struct tallies clients, hosts;   /* client_pending, host_pending */
	struct sq_drained *drained;      /* drain: async jobs finished per second */
	size_t ndrained, capdrained;
};

/* One SQLite connection. */
struct sq {
	struct store base;
	sqlite3 *db;
	sqlite3_stmt *stmt[SQ_STMT_MAX]; /* prepared on first use */
	sqlite3_stmt *qst[SQ_QUEUE_MAX]; /* the queue's, prepared at its first call */
	int64_t busy_start_ns;           /* when the current lock wait began */
	uint64_t rng;                    /* xorshift state for the busy handler's jitter */
	int lock_fd;                     /* the host's write lock (<db>.wlock): -1 until a write */
	char path[4096];                 /* the database file, for the lock's name */
	struct sq_counts counts;         /* what the open write transaction changes */
	struct sq_claim_mark {           /* how far excluded claims have looked */
		bool valid;
		int64_t due;      /* every due row up to this next_attempt_at ... */
		int64_t seq;      /* ... and this seq was of an excluded origin */
		char *exclude;    /* the exclusions that held then (exclude_json) */
		int64_t since_ns; /* monotonic: the full walk that began the mark */
	} mark;
};

#define SQ(b) ((struct sq *)(b))

/* Maps a SQLite result code to a store_err (SQLITE_OK/DONE/ROW -> STORE_OK,
 * SQLITE_FULL -> STORE_FULL, BUSY/LOCKED -> STORE_BUSY). */
enum store_err sq_from_rc(int rc);
/* Records SQLite's message for rc in the base's msg and maps rc. */
enum store_err sq_fail(struct sq *s, int rc, const char *what);
/* Runs a bound statement that returns no rows to completion and resets
 * it; its error mapped and recorded. */
enum store_err sq_step_done(struct sq *s, sqlite3_stmt *st, const char *what);

/* Counts one async job in the open write transaction's counters: sign +1
 * for a job enqueued, -1 for one that finished at finished_at (epoch ms),
 * under its client (client_addr, NULL is "") and its destination keys
 * (tally_keys_of). Written at commit; the caller holds the transaction.
 * STORE_NOMEM or STORE_IO (bad pending_keys), message set. */
enum store_err sq_count_job(struct sq *s, int sign, const char *client_addr,
                            const char *pending_keys, const char *callback_host,
                            int64_t finished_at);

/* store_sqlite_queue.c: finalizes the queue's statements (prepared on the
 * connection's first queue call). */
void sq_queue_finalize(struct sq *s);

/* The queue's entries of store_sqlite_ops (store_sqlite_queue.c). */
enum store_err sq_claim(struct store *b, int64_t now, int64_t lease_ms, int max,
                        const struct store_exclude *ex, struct store_job **jobs, int *n);
enum store_err sq_next_due(struct store *b, const struct store_exclude *ex, int64_t after,
                           bool *found, int64_t *due);
enum store_err sq_attempt_begin(struct store *b, const struct store_job *j, bool store_res,
                                int64_t number, int64_t started_at);
enum store_err sq_attempt_end(struct store *b, const struct store_job *j,
                              const struct store_outcome *o);
enum store_err sq_release(struct store *b, const struct store_job *j, bool store_res,
                          int64_t due_at);
enum store_err sq_renew(struct store *b, int64_t now, int64_t lease_ms, int64_t *renewed);
enum store_err sq_handback_all(struct store *b, int64_t now, int64_t *released);
enum store_err sq_heartbeat(struct store *b, int64_t now, const struct store_beat *beat);
enum store_err sq_heartbeat_remove(struct store *b);
enum store_err sq_recover_dead(struct store *b, int64_t now,
                               bool (*is_dead)(const char *owner, int64_t pid, void *arg),
                               void *arg, int64_t *recovered);
enum store_err sq_prune(struct store *b, int64_t cutoff_ms, int64_t max_rows, int64_t *deleted);

#endif
