/*
 * queue: the deliverer's SQL over the requests/attempts/heartbeats tables of
 * sql/001_init.sql: claims with leases, fencing, attempts, heartbeats,
 * lease renewal, hand-back and crash recovery.
 *
 * Leases. A claim sets lease_owner, a fresh lease_token and
 * lease_expires_at on each claimed row, and moves next_attempt_at to the
 * lease expiry: an expired lease is then simply due again through the
 * requests_due index, and another deliverer may claim it. Every later
 * write on a job carries its lease_token (`WHERE lease_token = ?`): a holder
 * that stalled past its lease and lost the job to a newer claim changes
 * nothing (QUEUE_FENCED), so it can never overwrite the new owner's outcome.
 *
 * Attempts. queue_attempt_begin writes the attempt row in state 'sending'
 * (and the computed result, when it is not stored yet) before the request
 * leaves; queue_attempt_end completes it in the same transaction that moves
 * the job on. When a claim takes a job whose previous holder died, the
 * attempts it left 'sending' become 'unknown' (the receiver may or may not
 * have seen them) and the job is retried with the same webhook-id.
 *
 * Transactions. queue_claim, queue_renew, queue_handback_all,
 * queue_heartbeat, queue_recover_owner and queue_prune run their own short
 * transaction.
 * queue_attempt_begin, queue_attempt_end and queue_release run inside the
 * caller's store_begin()/store_commit(), so the deliverer can batch many
 * jobs into one transaction.
 *
 * One struct queue wraps one struct store (one connection): it belongs to
 * one thread at a time, like the store.
 */
#ifndef CONSUMA_QUEUE_H
#define CONSUMA_QUEUE_H

#include <stdbool.h>
#include <stdint.h>
#include "store.h"

#define QUEUE_OWNER_MAX 128

enum queue_err {
	QUEUE_OK = 0,
	QUEUE_NOMEM,
	QUEUE_DB,     /* SQLite failed: see queue_errmsg */
	QUEUE_FENCED, /* the job's lease_token no longer matches: hands off */
};

const char *queue_strerror(enum queue_err err);

/* One claimed job. The strings are owned by the struct: queue_job_clear
 * frees them. */
struct queue_job {
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
};

/* Frees the strings of j (not j itself); NULL is a no-op. */
void queue_job_clear(struct queue_job *j);

struct queue;

/* Wraps s for the deliverer's statements; owner is this deliverer's lease
 * owner id (copied). NULL when memory ran out or a statement did not
 * prepare. s stays the caller's. */
struct queue *queue_new(struct store *s, const char *owner);
/* Finalizes the statements. NULL is a no-op. */
void queue_free(struct queue *q);
/* The store's last error message. */
const char *queue_errmsg(struct queue *q);

/* The key claims leave jobs out by: callback_url's scheme and authority as
 * spelled, lowercased (everything before the first '/', '?' or '#' after
 * "://"), so "http://127.0.0.1:8001/x" gives "http://127.0.0.1:8001" and
 * two ports of one host are two keys. Written into out (always
 * terminated, cut at outlen - 1). Thread safe. */
void queue_claim_key(const char *callback_url, char *out, size_t outlen);

/* Claims up to max due, unfinished async jobs in acceptance order
 * (next_attempt_at, seq) whose lease is absent or expired and whose
 * claim key (queue_claim_key) is not in exclude_json (a JSON array of
 * strings, NULL for none), leasing them to this owner until now + lease_ms, all in one
 * BEGIN IMMEDIATE transaction. Queued rows become running. Attempts left
 * 'sending' by a dead holder become 'unknown'. *jobs is a cz_malloc'd array
 * of *n jobs (NULL when 0): the caller clears each and cz_frees the array. */
enum queue_err queue_claim(struct queue *q, int64_t now, int64_t lease_ms, int max,
                           const char *exclude_json, struct queue_job **jobs, int *n);

/* The earliest next_attempt_at of any unfinished async job whose claim key
 * is not in exclude_json; *found false when there is none. A read. */
enum queue_err queue_next_due(struct queue *q, const char *exclude_json, bool *found, int64_t *due);

/* Inside the caller's transaction: before attempt number `number` is sent,
 * stores j's result when store_result (work status completed), marks the
 * job delivering, counts the attempt and inserts the attempt row in state
 * 'sending'. QUEUE_FENCED when the lease was lost (nothing written). */
enum queue_err queue_attempt_begin(struct queue *q, const struct queue_job *j, bool store_result,
                                   int64_t number, int64_t started_at);

enum queue_verdict {
	QUEUE_DELIVERED,
	QUEUE_RETRY,
	QUEUE_FAILED,
};

struct queue_outcome {
	int64_t number;            /* the attempt */
	double duration_ms;        /* of the attempt */
	int http_status;           /* 0: no response */
	const char *error_class;   /* NULL on success */
	const char *error_message; /* NULL on success */
	enum queue_verdict verdict;
	int64_t next_attempt_at; /* QUEUE_RETRY: when */
	int64_t now;             /* finished_at for delivered/failed */
};

/* Inside the caller's transaction: completes the attempt row and moves the
 * job to delivered, retrying (lease released, due at next_attempt_at) or
 * failed. QUEUE_FENCED when the lease was lost (the attempt row is still
 * completed if it is ours and 'sending'; the job is not touched). */
enum queue_err queue_attempt_end(struct queue *q, const struct queue_job *j,
                                 const struct queue_outcome *o);

/* Inside the caller's transaction: hands j back (lease released, due at
 * due_at) without counting an attempt; stores its result first when
 * store_result. QUEUE_FENCED when the lease was lost. */
enum queue_err queue_release(struct queue *q, const struct queue_job *j, bool store_result,
                             int64_t due_at);

/* Moves every lease this owner holds to now + lease_ms. *renewed counts
 * the rows (may be NULL). */
enum queue_err queue_renew(struct queue *q, int64_t now, int64_t lease_ms, int64_t *renewed);

/* One transaction: every unfinished job this owner holds is handed back
 * (lease released, due now, queued again when it was running) and its
 * attempts left 'sending' become 'unknown'. *released counts the jobs. */
enum queue_err queue_handback_all(struct queue *q, int64_t now, int64_t *released);

struct queue_beat {
	int64_t pid;
	int64_t started_at;
	int64_t busy_workers;
	int64_t workers;
	int64_t inflight;
};

/* Upserts this owner's heartbeat row with beat_at = now. */
enum queue_err queue_heartbeat(struct queue *q, int64_t now, const struct queue_beat *b);
/* Deletes this owner's heartbeat row (clean exit). */
enum queue_err queue_heartbeat_remove(struct queue *q);

/* Crash recovery at start-up: calls is_dead(owner, pid, arg) for every
 * other owner's heartbeat; for each one it reports dead, expires that
 * owner's leases (due now) and deletes its heartbeat, so its jobs need not
 * wait out the lease. *recovered counts the jobs. */
enum queue_err queue_recover_dead(struct queue *q, int64_t now,
                                  bool (*is_dead)(const char *owner, int64_t pid, void *arg),
                                  void *arg, int64_t *recovered);

/* Retention: one BEGIN IMMEDIATE transaction that looks at the oldest
 * max_rows rows of `requests` in acceptance order (seq, the rowid: no
 * extra index, so intake pays nothing) and deletes those among them with
 * finished_at < cutoff_ms, together with their attempts rows. Unfinished
 * rows are never touched, and the queue counters do not change (a row left
 * them when it finished). The work per call is bounded by max_rows whatever
 * the table size. Rows go oldest-first by acceptance order: an old job that
 * is still unfinished stays at the front and only delays the pruning of the
 * rows behind it within one batch (it takes one of the max_rows places
 * until it finishes). *deleted counts the requests rows removed (0 on
 * error; may be NULL). Uses s's connection: call from the thread that owns
 * s, outside any open transaction. */
enum queue_err queue_prune(struct store *s, int64_t cutoff_ms, int64_t max_rows, int64_t *deleted);

#endif
