/*
 * store_commit: group commit for a process with many request threads (see
 * store.h, "Group commit").
 *
 * DESIGN
 *   One committer per process owns one connection and one thread. A thread
 *   that accepts an async job (store_insert_job on a store attached to the
 *   committer) queues a waiter that lives on its own stack and sleeps, or
 *   (store_insert_job_then) one allocated here that carries a function to
 *   call with the outcome, and goes on; a thread that answered a /sync
 *   request queues a copy of its record and goes on at once. The committer takes everything queued, writes it in one
 *   transaction through the backend's batch entries (store_int.h; SQLite:
 *   BEGIN IMMEDIATE ... COMMIT under the host's write lock, then one
 *   fdatasync of the WAL when the batch holds a job, outside the lock;
 *   PostgreSQL: one BEGIN ... COMMIT, whose commit is the WAL flush), and
 *   only then wakes the job's threads, which answer 202. While it
 *   syncs, new work queues up behind it: the next batch is as large as the
 *   arrivals during one commit and one fsync, which is PostgreSQL's WAL
 *   group flush without a commit_delay (no wait is added when the queue is
 *   short, so a lone request pays one commit and one fsync as before).
 *
 *   Jobs of one batch are independent answers: a refusal (STORE_REFUSED), a
 *   key reused with another body (STORE_CONFLICT) or a replay is that job's
 *   outcome and the transaction goes on; the bounds are read inside the
 *   same transaction, so the jobs of a batch count against each other as if
 *   they had come one by one. A hard error (I/O, busy past the busy
 *   handler's patience) rolls the whole batch back and every job of it is
 *   answered with that error: none of them was promised.
 *
 *   /sync records are log entries, not promises (DESIGN.md): they ride in
 *   the next transaction, are never waited for and never cause an fsync of
 *   their own. A record queue that reaches RECORDS_QUEUED_MAX makes the
 *   next logger wait for room, which bounds memory and slows a thread that
 *   has already answered its client. A batch that fails loses its records
 *   (logged with their count): the cost of a crash, which may lose the last
 *   few /sync records too, never a 202.
 *
 *   SQLite's write lock: flock(2) on "<database>.wlock", held around each
 *   batch transaction by every committer of the host (one per consuma-fcgi
 *   process; store_sqlite.c), so writers queue on a kernel lock that wakes
 *   the next one at once instead of polling SQLite's lock, and WAL
 *   checkpoints get their turn (the measurements are in git history of
 *   fcgi-app/writelock.h: +28% /sync, +64% /async, WAL steady at ~4 MB).
 *   The fsync runs after the lock is released, so two processes' syncs
 *   overlap.
 *
 * Locking: mu guards the queues and the flags. A waiter belongs to its
 * thread until it is queued, to the committer from when it is taken off the
 * queue until its semaphore is posted, and to its thread again after (a
 * semaphore per waiter wakes exactly the threads of the batch, and none of
 * them has to take mu again: a broadcast woke every waiting thread, most
 * of them to sleep again, and measured a tenth of the pool's CPU). A
 * waiter with a function is the committer's from the queue on: it calls
 * the function once the outcome is final and frees the waiter; the job and
 * the result it points to are the caller's until then.
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "ids.h"
#include "log.h"
#include "store_int.h"

#define BATCH_JOBS_MAX     1024 /* bounds one transaction's size */
#define BATCH_RECORDS_MAX  4096
#define RECORDS_QUEUED_MAX 8192 /* bounds the memory of unwritten /sync records */

struct waiter {
	const struct job_insert *job;
	struct job_result *res;
	enum store_err err;
	char msg[256];
	/* once err is final: then called with then_arg when set (the waiter
	 * was allocated for it and is freed after), else done is posted, which
	 * wakes exactly the thread whose stack holds the waiter */
	store_done_fn then;
	void *then_arg;
	sem_t done;
	struct waiter *next;
};

/* A /sync record with its own copy of every string (the request is gone
 * by the time it is written). */
struct record {
	struct sync_record r;
	struct record *next;
	char text[];
};

struct store_committer {
	struct store *conn;
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t mu;
	pthread_cond_t wake; /* the committer: work queued, or stop */
	pthread_cond_t room; /* loggers: the record queue has room */
	struct waiter *jobs, **jobs_tail;
	struct record *recs, **recs_tail;
	size_t nrecs;
	bool stopping;
	bool stopped; /* the thread has left its loop: nothing more is written */
	_Atomic uint64_t transactions, fsyncs, jobs_done, records_written, records_lost;
	_Atomic int64_t last_ok_ms, last_failed_ms; /* wall time of the newest batch of each kind */
	_Atomic int last_error;                     /* enum store_err of the newest failure */
};

static void count(_Atomic uint64_t *n, uint64_t by)
{
	atomic_fetch_add_explicit(n, by, memory_order_relaxed);
}

/* A batch (or its sync) failed: /healthz reports it (store_committer_stats). */
static void note_failure(struct store_committer *c, enum store_err err)
{
	atomic_store_explicit(&c->last_error, (int)err, memory_order_relaxed);
	atomic_store_explicit(&c->last_failed_ms, ids_now_ms(), memory_order_relaxed);
}

static void fail_jobs(struct waiter *jobs, enum store_err err, const char *msg)
{
	for (struct waiter *w = jobs; w; w = w->next) {
		w->err = err;
		snprintf(w->msg, sizeof w->msg, "%s", msg);
	}
}

static size_t drop_records(struct record *recs)
{
	size_t n = 0;
	while (recs) {
		struct record *next = recs->next;
		cz_free(recs);
		recs = next;
		n++;
	}
	return n;
}

/* One transaction for everything taken; fills every waiter's err. */
static void write_batch(struct store_committer *c, struct waiter *jobs, struct record *recs)
{
	enum store_err err;
	size_t written = 0, lost = 0, durable = 0;

	const struct store_ops *ops = c->conn->ops;
	err = ops->batch_begin(c->conn);
	if (err != STORE_OK)
		goto failed;
	for (struct record *r = recs; r; r = r->next) {
		err = ops->sync_record_in_tx(c->conn, &r->r);
		if (err == STORE_OK) {
			written++;
			continue;
		}
		if (!ops->in_tx(c->conn))
			goto failed; /* the database rolled the transaction back */
		log_event(L_WARN, "store.sync_record_lost", "request_id=%s error=%s", r->r.id,
		          log_q(store_errmsg(c->conn)));
		lost++;
	}
	for (struct waiter *w = jobs; w; w = w->next) {
		err = ops->job_in_tx(c->conn, w->job, w->res);
		if (err != STORE_OK && err != STORE_REFUSED && err != STORE_CONFLICT)
			goto failed;
		w->err = err;
		if (err == STORE_OK)
			durable++;
	}
	err = ops->batch_commit(c->conn, durable);
	if (err != STORE_OK)
		goto lost; /* rolled back, lock released */
	uint64_t batch = atomic_fetch_add_explicit(&c->transactions, 1, memory_order_relaxed) + 1;
	atomic_store_explicit(&c->last_ok_ms, ids_now_ms(), memory_order_relaxed);
	count(&c->records_written, written);
	count(&c->records_lost, lost);
	drop_records(recs);
	if (durable == 0)
		return;
	/* Outside the lock: other processes commit while this one syncs. */
	err = ops->make_durable(c->conn);
	count(&c->fsyncs, 1);
	if (err != STORE_OK) {
		note_failure(c, err);
		/* committed but not promised: 500, never 202 (an Idempotency-Key
		 * retry finds the job) */
		for (struct waiter *w = jobs; w; w = w->next)
			if (w->err == STORE_OK) {
				w->err = err;
				snprintf(w->msg, sizeof w->msg, "%s", store_errmsg(c->conn));
			}
		return;
	}
	count(&c->jobs_done, durable);
	for (struct waiter *w = jobs; w; w = w->next)
		if (w->err == STORE_OK)
			w->res->batch = batch;
	return;
failed:
	ops->batch_abort(c->conn);
lost:
	note_failure(c, err);
	fail_jobs(jobs, err, store_errmsg(c->conn));
	lost = drop_records(recs);
	if (lost > 0) {
		count(&c->records_lost, lost);
		log_event(L_WARN, "store.sync_records_lost", "count=%zu error=%s", lost,
		          log_q(store_errmsg(c->conn)));
	}
}

/* How long to wait after an empty batch for an owed notice failed (the
 * server is away: the deliverers' fallback poll covers it meanwhile). */
#define NOTICE_RETRY_MS 1000

static void wait_ms(struct store_committer *c, int64_t ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	pthread_cond_timedwait(&c->wake, &c->mu, &ts);
}

/* Idle, with mu held: waits for work, and meanwhile sends the deliverers a
 * wake-up the last batch owes them (store_ops.notice_owed_ms) with an
 * empty batch once the backend lets it go. */
static void wait_for_work(struct store_committer *c)
{
	const struct store_ops *ops = c->conn->ops;
	int64_t retry_at = 0;
	while (!c->jobs && !c->recs && !c->stopping) {
		int64_t owed = ops->notice_owed_ms ? ops->notice_owed_ms(c->conn) : -1;
		int64_t now = ids_mono_ms();
		if (owed < 0) {
			pthread_cond_wait(&c->wake, &c->mu);
		} else if (owed > 0 || now < retry_at) {
			wait_ms(c, owed > 0 ? owed : retry_at - now);
		} else {
			pthread_mutex_unlock(&c->mu);
			bool sent = ops->batch_begin(c->conn) == STORE_OK &&
			            ops->batch_commit(c->conn, 0) == STORE_OK;
			pthread_mutex_lock(&c->mu);
			if (!sent)
				retry_at = ids_mono_ms() + NOTICE_RETRY_MS;
		}
	}
}

static void *committer_main(void *arg)
{
	struct store_committer *c = arg;

	pthread_mutex_lock(&c->mu);
	for (;;) {
		wait_for_work(c);
		if (!c->jobs && !c->recs)
			break; /* stopping, and everything queued is written */

		struct waiter *jobs = c->jobs, **jt = &c->jobs;
		for (size_t n = 0; *jt && n < BATCH_JOBS_MAX; n++)
			jt = &(*jt)->next;
		c->jobs = *jt;
		*jt = NULL;
		if (!c->jobs)
			c->jobs_tail = &c->jobs;

		struct record *recs = c->recs, **rt = &c->recs;
		size_t nr = 0;
		for (; *rt && nr < BATCH_RECORDS_MAX; nr++)
			rt = &(*rt)->next;
		c->recs = *rt;
		*rt = NULL;
		if (!c->recs)
			c->recs_tail = &c->recs;
		c->nrecs -= nr;
		pthread_cond_broadcast(&c->room);
		pthread_mutex_unlock(&c->mu);

		write_batch(c, jobs, recs);
		for (struct waiter *w = jobs; w;) {
			struct waiter *next = w->next; /* w is its thread's once posted */
			if (w->then) {
				w->then(w->then_arg, w->err, w->err == STORE_OK ? "" : w->msg);
				cz_free(w);
			} else {
				sem_post(&w->done);
			}
			w = next;
		}
		pthread_mutex_lock(&c->mu);
	}
	c->stopped = true;
	pthread_cond_broadcast(&c->room);
	pthread_mutex_unlock(&c->mu);
	return NULL;
}

struct store_committer *store_committer_start(const char *target, enum store_err *err, char *errmsg,
                                              size_t errlen)
{
	struct store_committer *c = cz_calloc(1, sizeof *c);
	enum store_err e = STORE_NOMEM;

	if (!c) {
		if (errmsg && errlen)
			snprintf(errmsg, errlen, "out of memory");
		goto out;
	}
	c->jobs_tail = &c->jobs;
	c->recs_tail = &c->recs;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->wake, NULL);
	pthread_cond_init(&c->room, NULL);
	c->conn = store_open(target, &e, errmsg, errlen);
	if (!c->conn)
		goto out;
	if (pthread_create(&c->thread, NULL, committer_main, c) != 0) {
		e = STORE_NOMEM;
		if (errmsg && errlen)
			snprintf(errmsg, errlen, "cannot start the committer thread");
		goto out;
	}
	c->thread_started = true;
	e = STORE_OK;
out:
	if (e != STORE_OK) {
		store_committer_stop(c);
		c = NULL;
	}
	if (err)
		*err = e;
	return c;
}

void store_committer_stop(struct store_committer *c)
{
	if (!c)
		return;
	if (c->thread_started) {
		pthread_mutex_lock(&c->mu);
		c->stopping = true;
		pthread_cond_signal(&c->wake);
		pthread_mutex_unlock(&c->mu);
		pthread_join(c->thread, NULL);
		struct store_committer_stats st;
		store_committer_stats(c, &st);
		log_event(L_INFO, "store.committer",
		          "transactions=%llu fsyncs=%llu jobs=%llu sync_records=%llu "
		          "sync_records_lost=%llu",
		          (unsigned long long)st.transactions, (unsigned long long)st.fsyncs,
		          (unsigned long long)st.jobs, (unsigned long long)st.sync_records,
		          (unsigned long long)st.sync_records_lost);
	}
	store_close(c->conn);
	pthread_cond_destroy(&c->room);
	pthread_cond_destroy(&c->wake);
	pthread_mutex_destroy(&c->mu);
	cz_free(c);
}

void store_committer_stats(struct store_committer *c, struct store_committer_stats *out)
{
	memset(out, 0, sizeof *out);
	if (!c)
		return;
	out->transactions = atomic_load_explicit(&c->transactions, memory_order_relaxed);
	out->fsyncs = atomic_load_explicit(&c->fsyncs, memory_order_relaxed);
	out->jobs = atomic_load_explicit(&c->jobs_done, memory_order_relaxed);
	out->sync_records = atomic_load_explicit(&c->records_written, memory_order_relaxed);
	out->sync_records_lost = atomic_load_explicit(&c->records_lost, memory_order_relaxed);
	out->last_ok_ms = atomic_load_explicit(&c->last_ok_ms, memory_order_relaxed);
	out->last_failed_ms = atomic_load_explicit(&c->last_failed_ms, memory_order_relaxed);
	out->last_error =
	    (enum store_err)atomic_load_explicit(&c->last_error, memory_order_relaxed);
}

/* Queues w for the next batch; false when the committer is stopping. */
static bool queue_job(struct store_committer *c, struct waiter *w)
{
	pthread_mutex_lock(&c->mu);
	bool open = !c->stopping;
	if (open) {
		*c->jobs_tail = w;
		c->jobs_tail = &w->next;
		pthread_cond_signal(&c->wake);
	}
	pthread_mutex_unlock(&c->mu);
	return open;
}

bool store_committer_submit_then(struct store_committer *c, const struct job_insert *job,
                                 struct job_result *res, store_done_fn done, void *arg)
{
	struct waiter *w = cz_calloc(1, sizeof *w);

	if (!w)
		return false;
	memset(res, 0, sizeof *res);
	w->job = job;
	w->res = res;
	w->err = STORE_IO;
	w->then = done;
	w->then_arg = arg;
	if (queue_job(c, w))
		return true;
	cz_free(w);
	return false;
}

enum store_err store_committer_submit(struct store_committer *c, const struct job_insert *job,
                                      struct job_result *res, char *msg, size_t msglen)
{
	struct waiter w = {.job = job, .res = res, .err = STORE_IO};

	memset(res, 0, sizeof *res);
	if (sem_init(&w.done, 0, 0) != 0) {
		snprintf(msg, msglen, "sem_init: %s", strerror(errno));
		return STORE_IO;
	}
	/* w lives on this stack until its semaphore is posted, and the
	 * committer detaches the list and resets jobs_tail before it posts:
	 * the pointer never outlives w. */
	if (!queue_job(c, &w)) { /* cppcheck-suppress autoVariables */
		sem_destroy(&w.done);
		snprintf(msg, msglen, "the store's committer is stopping");
		return STORE_IO;
	}
	while (sem_wait(&w.done) != 0 && errno == EINTR)
		;
	sem_destroy(&w.done);
	snprintf(msg, msglen, "%s", w.err == STORE_OK ? "" : w.msg);
	return w.err;
}

static size_t text_len(const char *s)
{
	return s ? strlen(s) + 1 : 0;
}

static const char *copy_in(char **p, const char *s)
{
	size_t n;
	const char *at = *p;

	if (!s)
		return NULL;
	n = strlen(s) + 1;
	memcpy(*p, s, n);
	*p += n;
	return at;
}

enum store_err store_committer_log(struct store_committer *c, const struct sync_record *r)
{
	size_t n = text_len(r->id) + text_len(r->input_data) + text_len(r->result) +
	           text_len(r->client_addr) + text_len(r->owner);
	struct record *rec = cz_malloc(sizeof *rec + n);
	char *p;

	if (!rec)
		return STORE_NOMEM;
	rec->r = *r;
	rec->next = NULL;
	p = rec->text;
	rec->r.id = copy_in(&p, r->id);
	rec->r.input_data = copy_in(&p, r->input_data);
	rec->r.result = copy_in(&p, r->result);
	rec->r.client_addr = copy_in(&p, r->client_addr);
	rec->r.owner = copy_in(&p, r->owner);

	pthread_mutex_lock(&c->mu);
	while (c->nrecs >= RECORDS_QUEUED_MAX && !c->stopped)
		pthread_cond_wait(&c->room, &c->mu);
	if (c->stopped) {
		pthread_mutex_unlock(&c->mu);
		cz_free(rec);
		return STORE_IO;
	}
	*c->recs_tail = rec;
	c->recs_tail = &rec->next;
	c->nrecs++;
	pthread_cond_signal(&c->wake);
	pthread_mutex_unlock(&c->mu);
	return STORE_OK;
}
