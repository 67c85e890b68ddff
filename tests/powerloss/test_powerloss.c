/*
 * test_powerloss: "killing the power loses nothing", proved by cutting the
 * power at every sync point and at random points between them (crashvfs.c
 * models what the device holds), under the real store and queue code.
 *
 * One run (one seed) follows a seeded random schedule of steps; a step
 * ends when the database is quiet:
 *   - intake: up to MAX_BATCH request threads of NPROC "processes" (each a
 *     store_committer with its threads' connections attached, as
 *     consuma-fcgi runs) call store_insert_job at once, as POST /async does
 *     (new jobs, and Idempotency-Key replays of earlier ones); the
 *     committers batch what arrives together, commit, fdatasync and return.
 *     Often a checkpoint (PASSIVE, FULL, RESTART or TRUNCATE) runs from
 *     another connection meanwhile: checkpoints race intake, restart and
 *     truncate the WAL under the committers' feet;
 *   - POST /sync records (store_insert_sync: queued, written by the
 *     committer in its next transaction, never synced);
 *   - a deliverer on its own connection: store_claim, then batched
 *     transactions of store_attempt_begin / store_attempt_end like
 *     deliverer/deliver.c's flush; it sometimes dies holding leases, or
 *     hands them back;
 *   - checkpoints between steps, and now and then a restart of every
 *     process (the WAL checkpointed, deleted, created again).
 * The intake threads make a run's interleavings, and so its crash images,
 * vary from one execution to the next; the schedule is the seed's.
 * After every step the harness dumps every row of every table from a
 * reader connection: the model is the list of states the database went
 * through, one per step.
 *
 * A crash point is a crashvfs hook event: before and after every sync and
 * directory sync, every truncate and delete, and a random share of the
 * writes. There the device image is written to a fresh directory; after the
 * step it is opened with store_open (SQLite's recovery: WAL replay, -shm
 * rebuilt, hot journal rolled back) and checked:
 *   1. store_open succeeds and PRAGMA integrity_check says ok;
 *   2. every job whose 202 would have been sent (its store_insert_job, or
 *      the replay's, returned STORE_OK before the cut) is there, with its
 *      input, iterations and callback URL; every job row present is whole;
 *   3. the database is exactly the state after one step between the last
 *      WAL sync and the cut (no torn transaction, no row from nowhere, no
 *      step lost that a sync had covered), or, inside an intake step whose
 *      jobs went into several transactions, every row as before or after
 *      the step and the step's new jobs a prefix; a /sync record lost is one
 *      committed after the last WAL sync (counted: the store header says a
 *      power cut may lose them);
 *   4. the deliverer's state machine: attempts numbered 1..attempts, only the
 *      last one may be 'sending', no 'done' attempt without its outcome, no
 *      job left 'delivering' after its attempt was done, delivered only with
 *      a 2xx attempt and a result, counters equal to the rows;
 *   5. a new deliverer claims every unfinished job and every 'sending'
 *      attempt becomes 'unknown' (store_sqlite_queue.c's recovery).
 * test_model checks the shim alone (a FULL commit survives every cut, an
 * OFF one only some). Two negative controls must lose jobs: answering before the sync, and
 * checkpointing from a synchronous=OFF connection (no WAL sync before the
 * copy, no database sync after it: a WAL restart then writes over frames
 * that are durable nowhere), so the harness is seen to catch what it is for.
 * A failure names the seed and the crash point; `test_powerloss --seed S
 * --keep DIR` repeats that schedule and keeps a failing image.
 *
 * Usage: test_powerloss (the ctest scenarios, cmocka) or
 *        test_powerloss --seeds A-B [--steps N] [--keep DIR] (a sweep).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "alloc.h"
#include "crashvfs.h"
#include "log.h"
#include "store.h"
#include "store_int.h"
#include "work.h"

/* The raw handle, for the checks' own SQL and checkpoints. */
static sqlite3 *db_of(struct store *s)
{
	return store_sqlite_handle(s);
}

#define NPROC        3
#define MAX_HELD     64
#define LEASE_MS     5000
#define MAX_BATCH    6 /* request threads submitting at once */
#define ABSENT       0
#define CHECK_FAR_MS 4000000000000LL /* the recovering deliverer's "now" */

/* What one run does, and how often. */
struct scenario {
	const char *name;
	int steps;
	int w_intake, w_record, w_claim, w_flush, w_die, w_checkpoint, w_restart;
	double p_race;  /* share of intake steps with a checkpoint beside them */
	double p_write; /* share of writes that are crash points */
	/* Negative controls, which must lose jobs: */
	bool ack_unsynced;  /* answer 202 when the job is handed over, not when it is durable */
	bool ckpt_sync_off; /* checkpoint from a synchronous=OFF connection */
};

struct job {
	char id[37];
	char key[40]; /* "" without Idempotency-Key */
	char *input;
	char url[96];
	char host[32];
	char client[24];
	char body_hash[WORK_HEX_LEN + 1];
	int64_t iterations;
	int64_t created_at;
	int64_t ack_ev; /* the event count when its 202 would have gone out */
};

/* One consuma-fcgi process: its committer and its request threads'
 * connections, attached to it. */
struct proc {
	struct store_committer *c;
	struct store *conn[MAX_BATCH];
	int64_t logged;  /* /sync records handed to this committer */
	int64_t tx_base; /* transactions of its earlier committers (restarts) */
};

struct held {
	struct store_job j;
	bool sending;
	int64_t number;
};

struct deliverer {
	struct store *s;
	int gen;
	struct held held[MAX_HELD];
	int nheld;
};

struct ver {
	int step;
	uint64_t h; /* ABSENT: no row */
};

/* One row of the model, by table and primary key. */
struct obj {
	char *key;
	struct ver *v;
	int nv, cap;
	int seen;     /* the dump stamp that last saw it */
	uint64_t rec; /* its hash in the recovered database */
	int rec_seen;
};

struct objtab {
	struct obj **slot;
	size_t cap, n;
};

/* A crash image waiting to be checked after its step. */
struct crash {
	int id;
	int64_t ev;
	int step;
	int floor;
	struct crashvfs_event what;
	bool racing; /* a checkpoint wrote while request threads waited */
	struct crashvfs_image info;
	char dir[PATH_MAX + 64];
};

struct totals {
	int64_t crashes, acked_checked, lost, failures;
	int64_t acked_jobs, jobs, replays, records;
	int64_t records_lost, records_lost_max;
	int64_t acks_after_restart; /* 202s whose wait spanned a WAL restart or truncation */
	int64_t relaxed;            /* images matched inside a step of several transactions */
	int64_t checkpoints, restarts, racing, torn, garbage, dropped, shm_stale, shm_torn;
	int64_t unknown_recovered, wal_restarts, wal_truncates, dirsyncs;
	int64_t at[5]; /* crash points by crashvfs_op */
};

struct run {
	const struct scenario *sc;
	uint64_t seed, rng;
	char dir[PATH_MAX], db[PATH_MAX + 16], crashroot[PATH_MAX + 16];
	const char *keep;
	struct crashvfs *cv;
	struct proc proc[NPROC];
	struct deliverer d;
	struct store *check; /* dumps and explicit checkpoints */
	struct job *jobs;
	int njobs, capjobs;
	int nrecords, caprecords;
	int *record_step; /* the step that committed each /sync record */
	int job_serial;
	int64_t now;
	int step;
	_Atomic int64_t ev; /* crash-point events so far */
	uint64_t hook_rng;
	bool in_intake; /* request threads are submitting */
	int *multi;     /* committer transactions in each step */
	int floor;      /* every step <= floor is durable (the last WAL sync) */
	int stamp;
	struct objtab model;
	struct crash pend[64];
	int npend;
	int ncrash;
	struct totals *t;
	char fail[1024];
	char report[2048]; /* the first failure, with its seed and crash point */
};

static uint64_t rnd(struct run *r)
{
	uint64_t z = (r->rng += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static int pick(struct run *r, int n)
{
	return n > 0 ? (int)(rnd(r) % (uint64_t)n) : 0;
}

static bool chance(struct run *r, double p)
{
	return (double)(rnd(r) >> 11) / 9007199254740992.0 < p;
}

static void failf(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void failf(struct run *r, const char *fmt, ...)
{
	if (r->fail[0])
		return; /* the first failure is the one to read */
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->fail, sizeof r->fail, fmt, ap);
	va_end(ap);
}

static void rm_tree(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	char p[PATH_MAX + 300];
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
		struct stat st;
		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
			rm_tree(p);
		else
			unlink(p);
	}
	closedir(d);
	rmdir(dir);
}

/* ---- the model: every state the database went through ---------------------- */

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint64_t key_hash(const char *k)
{
	return fnv(0xcbf29ce484222325ULL, k, strlen(k));
}

static struct obj **obj_slot(struct objtab *t, const char *key)
{
	size_t i = (size_t)key_hash(key) & (t->cap - 1);
	while (t->slot[i] && strcmp(t->slot[i]->key, key) != 0)
		i = (i + 1) & (t->cap - 1);
	return &t->slot[i];
}

static struct obj *obj_find(struct objtab *t, const char *key)
{
	return t->cap ? *obj_slot(t, key) : NULL;
}

static void obj_push(struct obj *o, int step, uint64_t h)
{
	if (o->nv == o->cap) {
		o->cap = o->cap ? o->cap * 2 : 4;
		o->v = realloc(o->v, (size_t)o->cap * sizeof *o->v);
		assert_non_null(o->v);
	}
	o->v[o->nv++] = (struct ver){step, h};
}

static struct obj *obj_get(struct objtab *t, const char *key)
{
	if (t->n * 2 >= t->cap) {
		struct objtab bigger = {calloc(t->cap ? t->cap * 2 : 1024, sizeof(struct obj *)),
		                        t->cap ? t->cap * 2 : 1024, t->n};
		assert_non_null(bigger.slot);
		for (size_t i = 0; i < t->cap; i++)
			if (t->slot[i])
				*obj_slot(&bigger, t->slot[i]->key) = t->slot[i];
		free(t->slot);
		*t = bigger;
	}
	struct obj **s = obj_slot(t, key);
	if (!*s) {
		*s = calloc(1, sizeof **s);
		assert_non_null(*s);
		(*s)->key = strdup(key);
		obj_push(*s, -1, ABSENT);
		t->n++;
	}
	return *s;
}

static void objtab_free(struct objtab *t)
{
	for (size_t i = 0; i < t->cap; i++)
		if (t->slot[i]) {
			free(t->slot[i]->key);
			free(t->slot[i]->v);
			free(t->slot[i]);
		}
	free(t->slot);
	*t = (struct objtab){0};
}

/* The state of o after step j. */
static uint64_t obj_at(const struct obj *o, int j)
{
	uint64_t h = ABSENT;
	for (int i = 0; i < o->nv && o->v[i].step <= j; i++)
		h = o->v[i].h;
	return h;
}

static const char *const dump_tables[] = {"requests",       "attempts", "counters",  "host_pending",
                                          "client_pending", "drain",    "heartbeats"};

typedef void (*row_fn)(struct run *r, const char *key, uint64_t h);

/* Every row of every table, as (table:primary key, hash of all columns). */
static bool dump(struct run *r, sqlite3 *db, row_fn fn)
{
	for (size_t t = 0; t < sizeof dump_tables / sizeof dump_tables[0]; t++) {
		char sql[64], key[256];
		sqlite3_stmt *st = NULL;
		snprintf(sql, sizeof sql, "SELECT * FROM %s", dump_tables[t]);
		if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
			failf(r, "dump %s: %s", dump_tables[t], sqlite3_errmsg(db));
			sqlite3_finalize(st);
			return false;
		}
		int rc;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			uint64_t h = 0xcbf29ce484222325ULL;
			int n = sqlite3_column_count(st);
			for (int c = 0; c < n; c++) {
				unsigned char type = (unsigned char)sqlite3_column_type(st, c);
				const unsigned char *v = sqlite3_column_text(st, c);
				h = fnv(h, &type, 1);
				if (v)
					h = fnv(h, v, (size_t)sqlite3_column_bytes(st, c) + 1);
			}
			const unsigned char *k0 = sqlite3_column_text(st, 0);
			const unsigned char *k1 = t == 1 ? sqlite3_column_text(st, 1) : NULL;
			snprintf(key, sizeof key, "%s:%s%s%s", dump_tables[t],
			         k0 ? (const char *)k0 : "", k1 ? ":" : "",
			         k1 ? (const char *)k1 : "");
			fn(r, key, h | 1); /* never ABSENT */
		}
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE) {
			failf(r, "dump %s: %s", dump_tables[t], sqlite3_errmsg(db));
			return false;
		}
	}
	return true;
}

static void model_row(struct run *r, const char *key, uint64_t h)
{
	struct obj *o = obj_get(&r->model, key);
	o->seen = r->stamp;
	if (o->v[o->nv - 1].h != h)
		obj_push(o, r->step, h);
}

/* Records the state after the current step. */
static void model_step(struct run *r)
{
	r->stamp++;
	assert_true(dump(r, db_of(r->check), model_row));
	for (size_t i = 0; i < r->model.cap; i++) {
		struct obj *o = r->model.slot[i];
		if (o && o->seen != r->stamp && o->v[o->nv - 1].h != ABSENT)
			obj_push(o, r->step, ABSENT);
	}
}

/* ---- the calls into the store (what POST /async, POST /sync and the
 * deliverer do; adapt here when lib/store's interface moves) ---------------- */

static struct store *open_store(struct run *r, const char *path)
{
	enum store_err err = STORE_IO;
	char msg[512] = "";
	struct store *s = store_open(path, &err, msg, sizeof msg);
	if (!s)
		failf(r, "store_open %s: %s: %s", path, store_strerror(err), msg);
	return s;
}

static bool control(const struct scenario *sc)
{
	return sc->ack_unsynced || sc->ckpt_sync_off;
}

static void new_job(struct run *r, struct job *j)
{
	static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789 .,-_";
	int n = r->job_serial++;
	int lenclass = pick(r, 10);
	size_t len = lenclass < 7   ? 10 + (size_t)pick(r, 190)
	             : lenclass < 9 ? 200 + (size_t)pick(r, 1800)
	                            : 2000 + (size_t)pick(r, 8000);
	memset(j, 0, sizeof *j);
	snprintf(j->id, sizeof j->id, "0190a000-0000-7000-8000-%012x", (unsigned)n);
	if (chance(r, 0.3))
		snprintf(j->key, sizeof j->key, "key-%" PRIu64 "-%d", r->seed, n);
	j->input = malloc(len + 1);
	assert_non_null(j->input);
	for (size_t i = 0; i < len; i++)
		j->input[i] = alphabet[pick(r, (int)sizeof alphabet - 1)];
	j->input[len] = '\0';
	int h = pick(r, 5);
	snprintf(j->host, sizeof j->host, "h%d.example", h);
	snprintf(j->url, sizeof j->url, "http://h%d.example/cb/%d?job=%s", h, n, j->id);
	snprintf(j->client, sizeof j->client, "10.0.0.%d", pick(r, 4));
	j->iterations = 1 + pick(r, 3);
	j->created_at = r->now;
	j->ack_ev = INT64_MAX;
	assert_int_equal(work_sha256_iter(j->input, len, 1, j->body_hash), WORK_OK);
}

static void job_insert_of(const struct job *j, struct job_insert *ins, int64_t now)
{
	*ins = (struct job_insert){
	    .id = j->id,
	    .input_data = j->input,
	    .iterations = j->iterations,
	    .callback_url = j->url,
	    .callback_host = j->host,
	    .client_addr = j->client,
	    .idempotency_key = j->key[0] ? j->key : NULL,
	    .body_hash = j->body_hash,
	    .created_at = now,
	    .idempotency_ttl_ms = 3600 * 1000,
	};
}

static void acked(struct run *r, int idx, int64_t ev)
{
	if (r->jobs[idx].ack_ev == INT64_MAX) {
		r->jobs[idx].ack_ev = ev;
		r->t->acked_jobs++;
	}
}

/* One request thread of POST /async: store_insert_job on its connection,
 * which hands the job to its process's committer and returns once the
 * committer's batch is durable. The 202 would go out at return: the event
 * count read then orders it against every crash point. */
struct submit {
	struct run *r;
	struct store *s;
	struct job fresh; /* a new job, or */
	int replay;       /* the index of the job whose body and key are sent again */
	struct job_insert ins;
	struct job_result res;
	enum store_err err;
	char msg[256];
	int64_t ack_ev;
	int64_t resets_before, resets_after;
};

static void *submit_main(void *arg)
{
	struct submit *w = arg;
	w->resets_before = crashvfs_wal_resets(w->r->cv);
	if (w->r->sc->ack_unsynced) /* the control answers before the store does */
		w->ack_ev = atomic_load(&w->r->ev);
	w->err = store_insert_job(w->s, &w->ins, &w->res);
	if (!w->r->sc->ack_unsynced)
		w->ack_ev = atomic_load(&w->r->ev);
	snprintf(w->msg, sizeof w->msg, "%s", w->err == STORE_OK ? "" : store_errmsg(w->s));
	w->resets_after = crashvfs_wal_resets(w->r->cv);
	return NULL;
}

static int add_job(struct run *r, const struct job *j)
{
	if (r->njobs == r->capjobs) {
		r->capjobs = r->capjobs ? r->capjobs * 2 : 256;
		r->jobs = realloc(r->jobs, (size_t)r->capjobs * sizeof *r->jobs);
		assert_non_null(r->jobs);
	}
	r->jobs[r->njobs] = *j;
	r->t->jobs++;
	return r->njobs++;
}

static int checkpoint_now(struct run *r, int mode);

/* n request threads of random processes submit at once (new jobs, and
 * Idempotency-Key replays of earlier ones); the committers batch what
 * arrives together. With `race`, a checkpoint runs meanwhile. */
static void intake(struct run *r, int n, int race_mode)
{
	struct submit w[MAX_BATCH];
	pthread_t th[MAX_BATCH];
	for (int i = 0; i < n; i++) {
		struct proc *p = &r->proc[pick(r, NPROC)];
		w[i] = (struct submit){.r = r, .s = p->conn[i], .replay = -1};
		if (r->njobs > 0 && chance(r, 0.15)) {
			int k = pick(r, r->njobs);
			if (r->jobs[k].key[0])
				w[i].replay = k;
		}
		const struct job *send = &w[i].fresh;
		if (w[i].replay >= 0)
			send = &r->jobs[w[i].replay];
		else
			new_job(r, &w[i].fresh);
		job_insert_of(send, &w[i].ins, r->now);
	}
	r->in_intake = true;
	for (int i = 0; i < n; i++)
		assert_int_equal(pthread_create(&th[i], NULL, submit_main, &w[i]), 0);
	int ckpt_rc = race_mode >= 0 ? checkpoint_now(r, race_mode) : SQLITE_OK;
	for (int i = 0; i < n; i++)
		pthread_join(th[i], NULL);
	r->in_intake = false;
	if (ckpt_rc != SQLITE_OK && ckpt_rc != SQLITE_BUSY)
		failf(r, "checkpoint racing intake: %s", sqlite3_errmsg(db_of(r->check)));
	for (int i = 0; i < n; i++) {
		if (w[i].err != STORE_OK) {
			failf(r, "store_insert_job: %s: %s", store_strerror(w[i].err), w[i].msg);
			if (w[i].replay < 0)
				free(w[i].fresh.input);
			continue;
		}
		int idx = w[i].replay;
		if (idx >= 0) {
			if (!w[i].res.replayed || strcmp(w[i].res.id, r->jobs[idx].id) != 0)
				failf(r, "replay of %s answered %s (replayed %d)", r->jobs[idx].id,
				      w[i].res.id, w[i].res.replayed);
			r->t->replays++;
		} else {
			idx = add_job(r, &w[i].fresh);
		}
		acked(r, idx, w[i].ack_ev);
		if (w[i].resets_after > w[i].resets_before)
			r->t->acks_after_restart++;
	}
}

static void record_id(int n, char id[37])
{
	snprintf(id, 37, "0190b000-0000-7000-8000-%012x", (unsigned)n);
}

/* Waits (bounded) until p's committer has written every record handed to
 * it: a step ends when the database is quiet. */
static void wait_records(struct run *r, struct proc *p)
{
	struct store_committer_stats st;
	for (int i = 0; i < 50000; i++) {
		store_committer_stats(p->c, &st);
		if ((int64_t)(st.sync_records + st.sync_records_lost) >= p->logged)
			break;
		struct timespec ts = {0, 200000};
		nanosleep(&ts, NULL);
	}
	if ((int64_t)(st.sync_records + st.sync_records_lost) < p->logged)
		failf(r, "the committer did not write its /sync records within 10 s");
	if (st.sync_records_lost)
		failf(r, "the committer lost %llu /sync records",
		      (unsigned long long)st.sync_records_lost);
}

/* POST /sync: a log entry, handed to the committer, never synced. */
static void sync_record(struct run *r, struct proc *p)
{
	char id[37], input[64];
	if (r->nrecords == r->caprecords) {
		r->caprecords = r->caprecords ? r->caprecords * 2 : 64;
		r->record_step = realloc(r->record_step, (size_t)r->caprecords * sizeof(int));
		assert_non_null(r->record_step);
	}
	int n = r->nrecords;
	record_id(n, id);
	snprintf(input, sizeof input, "sync record %d of seed %" PRIu64, n, r->seed);
	struct sync_record rec = {
	    .id = id,
	    .input_data = input,
	    .iterations = 1,
	    .result = "0000000000000000000000000000000000000000000000000000000000000000",
	    .duration_ms = 0.5,
	    .created_at = r->now,
	    .completed_at = r->now,
	    .client_addr = "10.0.1.1",
	};
	enum store_err err = store_insert_sync(p->conn[0], &rec);
	if (err != STORE_OK) {
		failf(r, "store_insert_sync: %s: %s", store_strerror(err),
		      store_errmsg(p->conn[0]));
		return;
	}
	p->logged++;
	wait_records(r, p);
	r->record_step[r->nrecords++] = r->step;
	r->t->records++;
}

static void deliverer_new(struct run *r)
{
	char owner[64];
	snprintf(owner, sizeof owner, "powerloss:%" PRIu64 ":%d", r->seed, ++r->d.gen);
	store_set_owner(r->d.s, owner);
}

static void held_drop(struct deliverer *d, int i)
{
	store_job_clear(&d->held[i].j);
	d->held[i] = d->held[--d->nheld];
}

static void deliverer_drop_all(struct deliverer *d)
{
	while (d->nheld > 0)
		held_drop(d, d->nheld - 1);
}

static void deliverer_claim(struct run *r)
{
	struct deliverer *d = &r->d;
	struct store_job *jobs = NULL;
	int n = 0;
	int want = 1 + pick(r, 4);
	if (d->nheld + want > MAX_HELD)
		return;
	if (store_claim(d->s, r->now, LEASE_MS, want, NULL, &jobs, &n) != STORE_OK) {
		failf(r, "queue_claim: %s", store_errmsg(d->s));
		return;
	}
	for (int i = 0; i < n; i++) {
		for (int k = 0; k < d->nheld; k++)
			if (d->held[k].j.seq ==
			    jobs[i].seq) { /* our lease expired and we took it again */
				held_drop(d, k);
				break;
			}
		d->held[d->nheld++] = (struct held){.j = jobs[i]};
	}
	cz_free(jobs);
}

/* One flush of deliver.c: attempts starting and attempts ended, one
 * transaction. */
static void deliverer_flush(struct run *r)
{
	struct deliverer *d = &r->d;
	bool begin[MAX_HELD] = {0}, end[MAX_HELD] = {0};
	int any = 0;
	for (int i = 0; i < d->nheld; i++) {
		if (d->held[i].sending)
			end[i] = chance(r, 0.7);
		else
			begin[i] = chance(r, 0.6);
		any += begin[i] || end[i];
	}
	if (!any)
		return;
	if (store_begin(d->s) != STORE_OK) {
		failf(r, "deliverer begin: %s", store_errmsg(d->s));
		return;
	}
	bool fenced[MAX_HELD] = {0}, finished[MAX_HELD] = {0};
	enum store_err err = STORE_OK;
	for (int i = 0; i < d->nheld && err == STORE_OK; i++) {
		struct held *h = &d->held[i];
		if (begin[i]) {
			bool store_res = !h->j.computed;
			if (store_res) {
				assert_int_equal(work_sha256_iter(h->j.input_data, h->j.input_len,
				                                  h->j.iterations, h->j.result),
				                 WORK_OK);
				h->j.duration_ms = 0.25;
				h->j.completed_at = r->now;
			}
			h->number = h->j.attempts + 1;
			err = store_attempt_begin(d->s, &h->j, store_res, h->number, r->now);
		} else if (end[i]) {
			int v = pick(r, 10);
			struct store_outcome o = {
			    .number = h->number,
			    .duration_ms = 1.5,
			    .http_status = v < 6   ? 200
			                   : v < 9 ? 503
			                           : 400,
			    .error_class = v < 6   ? NULL
			                   : v < 9 ? "http_5xx"
			                           : "http_4xx",
			    .error_message = v < 6 ? NULL : "the receiver said no",
			    .verdict = v < 6   ? STORE_DELIVERED
			               : v < 9 ? STORE_RETRY
			                       : STORE_FAILED,
			    .next_attempt_at = r->now + 500 + pick(r, 3000),
			    .now = r->now,
			};
			err = store_attempt_end(d->s, &h->j, &o);
			finished[i] = true;
		}
		if (err == STORE_FENCED) {
			fenced[i] = true;
			err = STORE_OK;
		}
	}
	if (err != STORE_OK || store_commit(d->s) != STORE_OK) {
		failf(r, "deliverer flush: %s", store_errmsg(d->s));
		store_rollback(d->s);
		return;
	}
	for (int i = d->nheld - 1; i >= 0; i--) {
		if (fenced[i] || finished[i]) {
			held_drop(d, i);
		} else if (begin[i]) {
			d->held[i].sending = true;
			d->held[i].j.computed = true;
			d->held[i].j.attempts = d->held[i].number;
		}
	}
}

/* The deliverer stops: killed (its leases run out and its 'sending'
 * attempts wait for the next claim) or by SIGTERM (handed back). */
static void deliverer_stop(struct run *r, bool killed)
{
	struct deliverer *d = &r->d;
	if (!killed && store_handback_all(d->s, r->now, NULL) != STORE_OK)
		failf(r, "queue_handback_all: %s", store_errmsg(d->s));
	deliverer_drop_all(d);
	deliverer_new(r);
}

static int checkpoint_mode(struct run *r)
{
	static const int modes[] = {SQLITE_CHECKPOINT_PASSIVE, SQLITE_CHECKPOINT_PASSIVE,
	                            SQLITE_CHECKPOINT_FULL, SQLITE_CHECKPOINT_RESTART,
	                            SQLITE_CHECKPOINT_TRUNCATE};
	return modes[pick(r, 5)];
}

/* Touches nothing of r but the count: it may run beside the committers. */
static int checkpoint_now(struct run *r, int mode)
{
	int log = 0, done = 0;
	int rc = sqlite3_wal_checkpoint_v2(db_of(r->check), "main", mode, &log, &done);
	r->t->checkpoints++;
	return rc;
}

static void checkpoint(struct run *r)
{
	int rc = checkpoint_now(r, checkpoint_mode(r));
	if (rc != SQLITE_OK && rc != SQLITE_BUSY)
		failf(r, "checkpoint: %s", sqlite3_errmsg(db_of(r->check)));
}

static void open_all(struct run *r)
{
	for (int i = 0; i < NPROC; i++) {
		struct proc *p = &r->proc[i];
		enum store_err err = STORE_IO;
		char msg[512] = "";
		p->c = store_committer_start(r->db, &err, msg, sizeof msg);
		p->logged = 0;
		if (!p->c) {
			failf(r, "store_committer_start: %s: %s", store_strerror(err), msg);
			return;
		}
		for (int k = 0; k < MAX_BATCH; k++) {
			p->conn[k] = open_store(r, r->db);
			if (!p->conn[k])
				return;
			store_use_committer(p->conn[k], p->c);
		}
	}
	r->d.s = open_store(r, r->db);
	r->check = open_store(r, r->db);
	if (r->check && r->sc->ckpt_sync_off)
		assert_int_equal(
		    sqlite3_exec(db_of(r->check), "PRAGMA synchronous = OFF", NULL, NULL, NULL),
		    SQLITE_OK);
	if (r->d.s && r->check)
		deliverer_new(r);
}

/* Transactions every committer of the run has written. */
static int64_t transactions(const struct run *r)
{
	int64_t n = 0;
	for (int i = 0; i < NPROC; i++) {
		struct store_committer_stats st;
		store_committer_stats(r->proc[i].c, &st);
		n += r->proc[i].tx_base + (int64_t)st.transactions;
	}
	return n;
}

static void close_all(struct run *r)
{
	for (int i = 0; i < NPROC; i++) {
		struct proc *p = &r->proc[i];
		for (int k = 0; k < MAX_BATCH; k++) {
			store_close(p->conn[k]);
			p->conn[k] = NULL;
		}
		struct store_committer_stats st;
		store_committer_stats(p->c, &st);
		p->tx_base += (int64_t)st.transactions;
		store_committer_stop(p->c);
		p->c = NULL;
	}
	deliverer_drop_all(&r->d);
	store_close(r->d.s);
	store_close(r->check);
	r->d.s = r->check = NULL;
}

/* Every process stops cleanly and starts again: the last close
 * checkpoints and deletes the WAL, the first open creates a new one. */
static void restart(struct run *r)
{
	close_all(r);
	open_all(r);
	r->t->restarts++;
}

/* ---- crash points -------------------------------------------------------------- */

/* The crash points' own random stream: the hook runs on committer threads
 * too, under the shim's lock, and must not touch the schedule's. */
static uint64_t next_hook_rand(struct run *r)
{
	uint64_t z = (r->hook_rng += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void on_event(void *arg, const struct crashvfs_event *ev)
{
	struct run *r = arg; /* under the shim's lock, on whichever thread did the I/O */
	atomic_fetch_add(&r->ev, 1);
	if (ev->after && ev->op == CRASHVFS_SYNC && ev->file == CRASHVFS_WAL &&
	    r->step - 1 > r->floor)
		r->floor = r->step - 1;
	bool take = ev->op != CRASHVFS_WRITE ||
	            (double)(next_hook_rand(r) >> 11) / 9007199254740992.0 < r->sc->p_write;
	if (!take || r->npend == (int)(sizeof r->pend / sizeof r->pend[0]) || r->fail[0])
		return;
	struct crash *c = &r->pend[r->npend];
	*c = (struct crash){
	    .id = ++r->ncrash, .ev = atomic_load(&r->ev), .step = r->step, .floor = r->floor};
	c->what = *ev;
	c->racing = ev->file == CRASHVFS_DB && r->in_intake;
	snprintf(c->dir, sizeof c->dir, "%s/c%d", r->crashroot, c->id);
	char err[512] = "";
	if (mkdir(c->dir, 0700) != 0) {
		failf(r, "mkdir %s: %s", c->dir, strerror(errno));
		return;
	}
	uint64_t seed = r->seed * 0x100000001b3ULL ^ (uint64_t)c->id * 0x9e3779b97f4a7c15ULL;
	if (crashvfs_crash_image(r->cv, seed, c->dir, &c->info, err, sizeof err) != 0) {
		failf(r, "crash %d: %s", c->id, err);
		return;
	}
	r->npend++;
}

static const char *op_name(enum crashvfs_op op)
{
	static const char *const names[] = {"write", "truncate", "sync", "dirsync", "delete"};
	return names[op];
}

static const char *file_name(enum crashvfs_file f)
{
	static const char *const names[] = {"db", "wal", "journal", "dir"};
	return names[f];
}

static void recovered_row(struct run *r, const char *key, uint64_t h)
{
	struct obj *o = obj_find(&r->model, key);
	if (!o) {
		failf(r, "row %s is in the recovered database but was never committed", key);
		return;
	}
	o->rec = h;
	o->rec_seen = r->stamp;
}

static uint64_t recovered(const struct run *r, const struct obj *o)
{
	return o->rec_seen == r->stamp ? o->rec : ABSENT;
}

static bool is_counter(const char *key)
{
	static const char *const tables[] = {
	    "counters:", "host_pending:", "client_pending:", "drain:"};
	for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++)
		if (strncmp(key, tables[i], strlen(tables[i])) == 0)
			return true;
	return false;
}

/* Inside step k, whose request threads' jobs went into several committer
 * transactions, the database passed through states the model never
 * dumped. The recovered one may be such a state if every row is as before
 * or as after the step, and the rows the step added that are there are the
 * older ones (seq order is commit order: the WAL keeps a prefix). The
 * counters' intermediate values are checked against the rows instead
 * (check_states). */
static bool inside_step(const struct run *r, int k)
{
	int64_t newest_present = -1, oldest_missing = INT64_MAX;
	for (size_t i = 0; i < r->model.cap; i++) {
		const struct obj *o = r->model.slot[i];
		if (!o || is_counter(o->key))
			continue;
		uint64_t h = recovered(r, o), before = obj_at(o, k - 1), after = obj_at(o, k);
		if (h != before && h != after)
			return false;
		long long seq;
		if (before == ABSENT && after != ABSENT &&
		    sscanf(o->key, "requests:%lld", &seq) == 1) {
			if (h == ABSENT && seq < oldest_missing)
				oldest_missing = seq;
			if (h != ABSENT && seq > newest_present)
				newest_present = seq;
		}
	}
	return newest_present < oldest_missing;
}

/* 3: the recovered rows are the state after one step in [lo, hi] (or one
 * inside such a step, when it held several transactions). */
static void check_prefix(struct run *r, sqlite3 *db, int lo, int hi)
{
	int n = hi - lo + 1;
	char *ok = malloc((size_t)n);
	assert_non_null(ok);
	memset(ok, 1, (size_t)n);
	r->stamp++;
	if (!dump(r, db, recovered_row) || r->fail[0]) {
		free(ok);
		return;
	}
	const struct obj *stray = NULL; /* a row in no state of [lo, hi] */
	for (size_t i = 0; i < r->model.cap; i++) {
		struct obj *o = r->model.slot[i];
		if (!o)
			continue;
		uint64_t h = recovered(r, o);
		bool some = false;
		for (int j = lo; j <= hi; j++) {
			if (obj_at(o, j) != h)
				ok[j - lo] = 0;
			else
				some = true;
		}
		if (!some && !stray && !is_counter(o->key))
			stray = o;
	}
	bool any = false;
	for (int j = 0; j < n; j++)
		any |= ok[j];
	free(ok);
	if (any)
		return;
	for (int k = lo + 1; k <= hi; k++)
		if (r->multi[k] >= 2 && inside_step(r, k)) {
			r->t->relaxed++;
			return;
		}
	if (stray)
		failf(r,
		      "row %s is %s after recovery, a state it never had between steps %d and %d",
		      stray->key, recovered(r, stray) == ABSENT ? "missing" : "different", lo, hi);
	else
		failf(r,
		      "the recovered rows match no single step between %d and %d (a torn "
		      "transaction)",
		      lo, hi);
}

static int64_t sql_int(struct run *r, sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st = NULL;
	int64_t v = -1;
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	else
		failf(r, "%s: %s", sql, sqlite3_errmsg(db));
	sqlite3_finalize(st);
	return v;
}

static bool text_is(sqlite3_stmt *st, int col, const char *want)
{
	const unsigned char *v = sqlite3_column_text(st, col);
	return v && strcmp((const char *)v, want) == 0;
}

/* 2: acknowledged jobs present, every job row whole. */
static void check_jobs(struct run *r, const struct crash *c, sqlite3 *db)
{
	sqlite3_stmt *st = NULL;
	const char *sql =
	    "SELECT input_data, iterations, callback_url, callback_host, client_addr, "
	    "created_at FROM requests WHERE id = ?1 AND mode = 'async'";
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	for (int i = 0; i < r->njobs; i++) {
		const struct job *j = &r->jobs[i];
		bool was_acked = j->ack_ev < c->ev;
		sqlite3_bind_text(st, 1, j->id, -1, SQLITE_STATIC);
		int rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			if (!text_is(st, 0, j->input) ||
			    sqlite3_column_int64(st, 1) != j->iterations ||
			    !text_is(st, 2, j->url) || !text_is(st, 3, j->host) ||
			    !text_is(st, 4, j->client) ||
			    sqlite3_column_int64(st, 5) != j->created_at)
				failf(r,
				      "job %s is there but not as it was inserted (half-written)",
				      j->id);
		} else if (rc == SQLITE_DONE && was_acked) {
			r->t->lost++;
			failf(r, "job %s was acknowledged (202) and is lost", j->id);
		} else if (rc != SQLITE_DONE) {
			failf(r, "read job %s: %s", j->id, sqlite3_errmsg(db));
		}
		if (was_acked)
			r->t->acked_checked++;
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
}

/* 4: the deliverer's state machine, as rows. Each query counts violations. */
static void check_states(struct run *r, sqlite3 *db)
{
	static const struct {
		const char *what, *sql;
	} rules[] = {
	    {"a job's attempts count differs from its attempt rows",
	     "SELECT count(*) FROM requests r WHERE mode = 'async' AND attempts != "
	     "(SELECT count(*) FROM attempts a WHERE a.request_seq = r.seq)"},
	    {"attempt numbers are not 1..attempts",
	     "SELECT count(*) FROM attempts a JOIN requests r ON r.seq = a.request_seq "
	     "WHERE a.number < 1 OR a.number > r.attempts"},
	    {"an attempt is 'sending' but is not the job's last",
	     "SELECT count(*) FROM attempts a JOIN requests r ON r.seq = a.request_seq "
	     "WHERE a.state = 'sending' AND a.number != r.attempts"},
	    {"an attempt is 'done' without its outcome",
	     "SELECT count(*) FROM attempts WHERE state = 'done' AND (duration_ms IS NULL OR "
	     "(http_status IS NULL AND error_class IS NULL))"},
	    {"a job is still 'delivering' though its last attempt is done",
	     "SELECT count(*) FROM requests r WHERE callback_status = 'delivering' AND EXISTS "
	     "(SELECT 1 FROM attempts a WHERE a.request_seq = r.seq AND a.number = r.attempts "
	     "AND a.state = 'done')"},
	    {"a job is delivered without a 2xx attempt, a result or finished_at",
	     "SELECT count(*) FROM requests r WHERE callback_status = 'delivered' AND "
	     "(finished_at IS NULL OR result IS NULL OR NOT EXISTS (SELECT 1 FROM attempts a "
	     "WHERE a.request_seq = r.seq AND a.state = 'done' AND a.http_status BETWEEN 200 AND "
	     "299))"},
	    {"a job has attempts but no stored result",
	     "SELECT count(*) FROM requests WHERE mode = 'async' AND attempts > 0 AND "
	     "(result IS NULL OR status != 'completed')"},
	    {"host_pending differs from the unfinished jobs per callback host",
	     "SELECT (SELECT count(*) FROM host_pending h WHERE n != (SELECT count(*) FROM "
	     "requests WHERE mode = 'async' AND finished_at IS NULL AND coalesce(callback_host, "
	     "'') "
	     "= h.host)) + (SELECT count(DISTINCT coalesce(callback_host, '')) FROM requests "
	     "WHERE mode = 'async' AND finished_at IS NULL AND coalesce(callback_host, '') NOT IN "
	     "(SELECT host FROM host_pending))"},
	    {"client_pending differs from the unfinished jobs per client",
	     "SELECT (SELECT count(*) FROM client_pending c WHERE n != (SELECT count(*) FROM "
	     "requests WHERE mode = 'async' AND finished_at IS NULL AND coalesce(client_addr, '') "
	     "= c.client)) + (SELECT count(DISTINCT coalesce(client_addr, '')) FROM requests "
	     "WHERE mode = 'async' AND finished_at IS NULL AND coalesce(client_addr, '') NOT IN "
	     "(SELECT client FROM client_pending))"},
	    {"queue_depth differs from the unfinished jobs",
	     "SELECT (SELECT value FROM counters WHERE name = 'queue_depth') != "
	     "(SELECT count(*) FROM requests WHERE mode = 'async' AND finished_at IS NULL)"},
	};
	for (size_t i = 0; i < sizeof rules / sizeof rules[0]; i++) {
		int64_t n = sql_int(r, db, rules[i].sql);
		if (n != 0)
			failf(r, "%s (%" PRId64 ")", rules[i].what, n);
	}
}

/* 5: a new deliverer takes every unfinished job; 'sending' becomes
 * 'unknown'. */
static void check_recovery(struct run *r, struct store *s)
{
	sqlite3 *db = db_of(s);
	int64_t unfinished = sql_int(
	    r, db, "SELECT count(*) FROM requests WHERE mode = 'async' AND finished_at IS NULL");
	int64_t sending = sql_int(r, db, "SELECT count(*) FROM attempts WHERE state = 'sending'");
	int64_t unknown_before = sql_int(r, db,
	                                 "SELECT count(*) FROM attempts a JOIN requests r ON "
	                                 "r.seq = a.request_seq WHERE a.state = 'unknown' AND "
	                                 "r.finished_at IS NULL");
	store_set_owner(s, "powerloss:recovery");
	struct store_job *jobs = NULL;
	int n = 0;
	if (store_claim(s, CHECK_FAR_MS, LEASE_MS, (int)unfinished + 1, NULL, &jobs, &n) !=
	    STORE_OK) {
		failf(r, "recovery claim: %s", store_errmsg(s));
	} else {
		int64_t unknown_seen = 0;
		for (int i = 0; i < n; i++) {
			unknown_seen += jobs[i].unknown;
			store_job_clear(&jobs[i]);
		}
		cz_free(jobs);
		if (n != unfinished)
			failf(r,
			      "the recovering deliverer claimed %d of %" PRId64 " unfinished jobs",
			      n, unfinished);
		if (sql_int(r, db, "SELECT count(*) FROM attempts WHERE state = 'sending'") != 0)
			failf(r, "'sending' attempts left after the recovering claim");
		if (unknown_seen != unknown_before + sending)
			failf(r,
			      "the claim reports %" PRId64 " unknown attempts, expected %" PRId64,
			      unknown_seen, unknown_before + sending);
		r->t->unknown_recovered += sending;
	}
}

/* /sync records committed before the cut and missing after it: the store
 * header says a power cut may lose them (check_prefix has shown that each
 * lost one was committed after the last WAL sync). */
static void count_lost_records(struct run *r, const struct crash *c, sqlite3 *db)
{
	int64_t lost = 0;
	sqlite3_stmt *st = NULL;
	assert_int_equal(
	    sqlite3_prepare_v2(db, "SELECT 1 FROM requests WHERE id = ?1", -1, &st, NULL),
	    SQLITE_OK);
	for (int i = 0; i < r->nrecords && r->record_step[i] < c->step; i++) {
		char id[37];
		record_id(i, id);
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		if (sqlite3_step(st) != SQLITE_ROW)
			lost++;
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	r->t->records_lost += lost;
	if (lost > r->t->records_lost_max)
		r->t->records_lost_max = lost;
}

static void check_image(struct run *r, struct crash *c)
{
	char path[PATH_MAX + 128];
	snprintf(path, sizeof path, "%s/store.db", c->dir);
	struct store *s = open_store(r, path);
	if (!s)
		goto out;
	sqlite3 *db = db_of(s);
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW || !text_is(st, 0, "ok"))
		failf(r, "integrity_check: %s",
		      st && sqlite3_column_text(st, 0) ? (const char *)sqlite3_column_text(st, 0)
		                                       : sqlite3_errmsg(db));
	sqlite3_finalize(st);
	if (!r->fail[0])
		check_prefix(r, db, c->floor, c->step);
	if (!r->fail[0] || control(r->sc))
		check_jobs(r, c, db);
	if (!r->fail[0]) {
		check_states(r, db);
		count_lost_records(r, c, db);
	}
	if (!r->fail[0])
		check_recovery(r, s);
	store_close(s);
out:
	r->t->crashes++;
	r->t->at[c->what.op]++;
	r->t->racing += c->racing;
	r->t->torn += c->info.pieces_kept && c->info.pieces_dropped;
	r->t->garbage += c->info.pieces_garbage;
	r->t->dropped += c->info.pieces_dropped;
	r->t->shm_stale += c->info.shm == 1;
	r->t->shm_torn += c->info.shm == 2;
	if (r->fail[0] && !control(r->sc) && !r->report[0]) {
		snprintf(r->report, sizeof r->report,
		         "powerloss: FAIL scenario=%s seed=%" PRIu64
		         " crash=%d step=%d %s %s of the "
		         "%s (floor step %d): %s",
		         r->sc->name, r->seed, c->id, c->step, c->what.after ? "after" : "before",
		         op_name(c->what.op), file_name(c->what.file), c->floor, r->fail);
		if (r->keep) {
			char kept[PATH_MAX + 64];
			snprintf(kept, sizeof kept, "%s/seed%" PRIu64 "-crash%d", r->keep, r->seed,
			         c->id);
			if (rename(c->dir, kept) == 0)
				fprintf(stderr, "powerloss: image kept in %s\n", kept);
		}
	}
	rm_tree(c->dir);
}

static void check_pending(struct run *r)
{
	for (int i = 0; i < r->npend; i++) {
		if (r->fail[0]) {
			rm_tree(r->pend[i].dir);
			continue;
		}
		check_image(r, &r->pend[i]);
		if (control(r->sc))
			r->fail[0] = '\0'; /* the control counts its losses and goes on */
	}
	r->npend = 0;
}

/* ---- one run -------------------------------------------------------------------- */

static void do_step(struct run *r)
{
	const struct scenario *sc = r->sc;
	int w[] = {sc->w_intake, sc->w_record,     sc->w_claim,  sc->w_flush,
	           sc->w_die,    sc->w_checkpoint, sc->w_restart};
	int total = 0;
	for (size_t i = 0; i < sizeof w / sizeof w[0]; i++)
		total += w[i];
	int x = pick(r, total), a = 0;
	while (x >= w[a])
		x -= w[a++];
	r->now += pick(r, 200);
	switch (a) {
	case 0: {
		int n = 1 + pick(r, MAX_BATCH);
		intake(r, n, chance(r, sc->p_race) ? checkpoint_mode(r) : -1);
		break;
	}
	case 1:
		sync_record(r, &r->proc[pick(r, NPROC)]);
		break;
	case 2:
		deliverer_claim(r);
		break;
	case 3:
		deliverer_flush(r);
		break;
	case 4:
		deliverer_stop(r, chance(r, 0.7));
		break;
	case 5:
		checkpoint(r);
		break;
	default:
		restart(r);
		break;
	}
}

/* Where runs write: POWERLOSS_DIR, else a roomy tmpfs (the live files'
 * fsyncs cost nothing there; durability is the model's business, not the
 * disk's), else TMPDIR. */
static const char *scratch_dir(void)
{
	const char *dir = getenv("POWERLOSS_DIR");
	struct statvfs fs;
	if (dir && dir[0])
		return dir;
	if (statvfs("/dev/shm", &fs) == 0 && access("/dev/shm", W_OK) == 0 &&
	    (uint64_t)fs.f_bavail * fs.f_frsize >= (uint64_t)1 << 30)
		return "/dev/shm";
	dir = getenv("TMPDIR");
	return dir && dir[0] ? dir : "/tmp";
}

static void run_seed(const struct scenario *sc, uint64_t seed, const char *keep, struct totals *t)
{
	struct run *r = calloc(1, sizeof *r);
	assert_non_null(r);
	r->sc = sc;
	r->seed = seed;
	r->rng = seed * 0x2545f4914f6cdd1dULL + 1;
	r->keep = keep;
	r->t = t;
	r->now = 1700000000000LL;
	/* a kept image is renamed into keep: the run lives on its filesystem */
	snprintf(r->dir, sizeof r->dir, "%s/powerloss.XXXXXX", keep ? keep : scratch_dir());
	assert_non_null(mkdtemp(r->dir));
	snprintf(r->db, sizeof r->db, "%s/store.db", r->dir);
	snprintf(r->crashroot, sizeof r->crashroot, "%s/crash", r->dir);
	assert_int_equal(mkdir(r->crashroot, 0700), 0);
	r->hook_rng = seed ^ 0x5bd1e995u;
	r->multi = calloc((size_t)sc->steps + 2, sizeof *r->multi);
	assert_non_null(r->multi);

	r->cv = crashvfs_install(r->dir, seed);
	assert_non_null(r->cv);
	sqlite3_randomness(0, NULL); /* reseeded from the shim: WAL salts repeat */
	crashvfs_set_hook(r->cv, on_event, r);

	open_all(r); /* step 0: a fresh database, migrated */
	if (!r->fail[0])
		model_step(r);
	check_pending(r);
	for (r->step = 1; r->step <= sc->steps && !r->fail[0]; r->step++) {
		int64_t tx = transactions(r);
		do_step(r);
		r->multi[r->step] = (int)(transactions(r) - tx);
		if (!r->fail[0])
			model_step(r);
		check_pending(r);
	}
	const struct crashvfs_counts *k = crashvfs_counts(r->cv);
	t->wal_restarts += k->wal_restarts;
	t->wal_truncates += k->wal_truncates;
	t->dirsyncs += k->dirsyncs;

	crashvfs_discard(r->cv); /* the abandoned connections close without a trace */
	close_all(r);
	crashvfs_uninstall(r->cv);
	if (r->fail[0]) {
		t->failures++;
		fprintf(stderr, "%s\n", r->report[0] ? r->report : r->fail);
		fprintf(stderr,
		        "powerloss: reproduce with: test_powerloss --seed %" PRIu64
		        " --steps %d --keep DIR\n",
		        seed, sc->steps);
	}
	for (int i = 0; i < r->njobs; i++)
		free(r->jobs[i].input);
	free(r->jobs);
	free(r->record_step);
	free(r->multi);
	objtab_free(&r->model);
	rm_tree(r->dir);
	free(r);
}

static void print_headline(const struct totals *t)
{
	printf("powerloss: %" PRId64 " crash points, %" PRId64 " acknowledged jobs, %" PRId64
	       " lost\n",
	       t->crashes, t->acked_jobs, t->lost);
	fflush(stdout);
}

static void print_totals(const char *name, const struct totals *t)
{
	printf("powerloss[%s]: %" PRId64 " crash points, %" PRId64 " acknowledged jobs, %" PRId64
	       " losses of an acknowledged job\n",
	       name, t->crashes, t->acked_jobs, t->lost);
	printf("powerloss[%s]: crash points at write %" PRId64 ", truncate %" PRId64
	       ", sync %" PRId64 ", dirsync %" PRId64 ", delete %" PRId64 "; %" PRId64
	       " while a checkpoint raced waiting jobs\n",
	       name, t->at[0], t->at[1], t->at[2], t->at[3], t->at[4], t->racing);
	printf("powerloss[%s]: %" PRId64 " jobs (%" PRId64 " replays), %" PRId64
	       " acknowledged-job checks, %" PRId64 " /sync records; %" PRId64
	       " checkpoints, %" PRId64 " WAL restarts, %" PRId64 " WAL truncations, %" PRId64
	       " restarts, %" PRId64 " directory syncs\n",
	       name, t->jobs, t->replays, t->acked_checked, t->records, t->checkpoints,
	       t->wal_restarts, t->wal_truncates, t->restarts, t->dirsyncs);
	printf("powerloss[%s]: images: %" PRId64 " torn, %" PRId64
	       " sector pieces dropped, %" PRId64 " garbage; -shm stale %" PRId64 ", torn %" PRId64
	       "; %" PRId64 " 'sending' attempts recovered as 'unknown'; failures %" PRId64 "\n",
	       name, t->torn, t->dropped, t->garbage, t->shm_stale, t->shm_torn,
	       t->unknown_recovered, t->failures);
	printf("powerloss[%s]: %" PRId64 " 202s whose wait spanned a WAL restart or truncation; "
	       "%" PRId64 " images matched inside a step of several transactions\n",
	       name, t->acks_after_restart, t->relaxed);
	printf("powerloss[%s]: /sync records lost to a cut (never synced, as documented): %" PRId64
	       " in all, at most %" PRId64 " at one cut\n",
	       name, t->records_lost, t->records_lost_max);
	fflush(stdout);
}

/* ---- scenarios ----------------------------------------------------------------- */

static const struct scenario mixed = {
    .name = "mixed",
    .steps = 90,
    .w_intake = 40,
    .w_record = 10,
    .w_claim = 8,
    .w_flush = 14,
    .w_die = 2,
    .w_checkpoint = 4,
    .w_restart = 1,
    .p_race = 0.3,
    .p_write = 0.04,
};

static const struct scenario checkpoints = {
    .name = "checkpoints",
    .steps = 70,
    .w_intake = 40,
    .w_record = 4,
    .w_claim = 4,
    .w_flush = 6,
    .w_die = 0,
    .w_checkpoint = 20,
    .w_restart = 2,
    .p_race = 0.8,
    .p_write = 0.04,
};

static const struct scenario unsynced = {
    .name = "ack-before-sync",
    .steps = 40,
    .w_intake = 40,
    .w_record = 10,
    .w_checkpoint = 2,
    .p_race = 0.2,
    .p_write = 0.05,
    .ack_unsynced = true,
};

static const struct scenario sync_off = {
    .name = "checkpoint-sync-off",
    .steps = 50,
    .w_intake = 40,
    .w_checkpoint = 20,
    .p_race = 0.8,
    .p_write = 0.02,
    .ckpt_sync_off = true,
};

/* Odd seeds are the mixed scenario and even ones the checkpoint-heavy one,
 * here and in the sweep, so that a seed names one run. */
static void run_seeds(const struct scenario *sc, uint64_t from, uint64_t to, struct totals *t)
{
	for (uint64_t s = from; s <= to; s += 2)
		run_seed(sc, s, getenv("POWERLOSS_KEEP"), t);
	print_totals(sc->name, t);
}

static void add_totals(struct totals *sum, const struct totals *t)
{
	int64_t *a = (int64_t *)sum;
	const int64_t *b = (const int64_t *)t;
	int64_t max = sum->records_lost_max > t->records_lost_max ? sum->records_lost_max
	                                                          : t->records_lost_max;
	for (size_t i = 0; i < sizeof *t / sizeof(int64_t); i++)
		a[i] += b[i];
	sum->records_lost_max = max;
}

/* The group's state: the totals of the scenarios that must lose nothing. */
static int group_setup(void **state)
{
	*state = calloc(1, sizeof(struct totals));
	return *state ? 0 : -1;
}

static int group_teardown(void **state)
{
	print_headline(*state);
	free(*state);
	return 0;
}

/* Intake, delivery, checkpoints and restarts interleaved: nothing lost. */
static void test_mixed(void **state)
{
	struct totals t = {0};
	run_seeds(&mixed, 1, 3, &t);
	add_totals(*state, &t);
	assert_int_equal(t.failures, 0);
	assert_int_equal(t.lost, 0);
	assert_true(t.acked_jobs > 100);
	assert_true(t.at[CRASHVFS_SYNC] > 100);
	assert_true(t.unknown_recovered > 0);
}

/* The store header's claims: checkpoints racing intake, WAL restarts and
 * truncations lose no acknowledged job. */
static void test_checkpoints(void **state)
{
	struct totals t = {0};
	run_seeds(&checkpoints, 2, 2, &t);
	add_totals(*state, &t);
	assert_int_equal(t.failures, 0);
	assert_int_equal(t.lost, 0);
	assert_true(t.wal_restarts > 0);
	assert_true(t.wal_truncates > 0);
	assert_true(t.racing > 0);
	assert_true(t.acks_after_restart > 0);
	assert_true(t.at[CRASHVFS_DELETE] > 0);
}

/* The control: a 202 sent before the WAL sync is lost to some cuts, so the
 * harness sees losses when there are some. */
static void test_control_ack_before_sync(void **state)
{
	(void)state;
	struct totals t = {0};
	run_seeds(&unsynced, 21, 21, &t);
	assert_true(t.lost > 0);
}

/* The control of the store header's checkpoint argument: a checkpoint that
 * does not sync (synchronous=OFF) lets a WAL restart write over a job's
 * frames before they are anywhere durable, and its 202 is then a lie. */
static void test_control_checkpoint_sync_off(void **state)
{
	(void)state;
	struct totals t = {0};
	run_seeds(&sync_off, 31, 31, &t);
	assert_true(t.acks_after_restart > 0);
	assert_true(t.lost > 0);
}

/* Counts the rows of t in the image a cut now would leave (-1: no table). */
static int rows_after_cut(struct crashvfs *cv, const char *dir, uint64_t seed)
{
	char img[PATH_MAX + 32], path[PATH_MAX + 64], err[256];
	struct crashvfs_image info;
	snprintf(img, sizeof img, "%s/img", dir);
	assert_int_equal(mkdir(img, 0700), 0);
	assert_int_equal(crashvfs_crash_image(cv, seed, img, &info, err, sizeof err), 0);
	snprintf(path, sizeof path, "%s/m.db", img);
	sqlite3 *db = NULL;
	int n = -1;
	assert_int_equal(
	    sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
	    SQLITE_OK);
	sqlite3_stmt *st = NULL;
	if (sqlite3_prepare_v2(db, "SELECT count(*) FROM t", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	rm_tree(img);
	return n;
}

/* The shim itself: a commit at synchronous=FULL (WAL and directory synced)
 * is in every image; at synchronous=OFF (nothing synced, not even the new
 * files' directory entries) some images lose it and some keep it. */
static void test_model(void **state)
{
	(void)state;
	static const struct {
		const char *sync;
		bool always;
	} cases[] = {{"FULL", true}, {"OFF", false}};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		char dir[PATH_MAX], path[PATH_MAX + 16], sql[128];
		snprintf(dir, sizeof dir, "%s/powerloss-model.XXXXXX", scratch_dir());
		assert_non_null(mkdtemp(dir));
		snprintf(path, sizeof path, "%s/m.db", dir);
		struct crashvfs *cv = crashvfs_install(dir, 7);
		assert_non_null(cv);
		sqlite3 *db = NULL;
		assert_int_equal(
		    sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
		    SQLITE_OK);
		snprintf(sql, sizeof sql,
		         "PRAGMA journal_mode = WAL; PRAGMA synchronous = %s; "
		         "CREATE TABLE t (x); INSERT INTO t VALUES (1)",
		         cases[c].sync);
		assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
		int kept = 0, lost = 0;
		for (uint64_t seed = 1; seed <= 64; seed++) {
			int n = rows_after_cut(cv, dir, seed);
			kept += n == 1;
			lost += n != 1;
		}
		crashvfs_discard(cv);
		sqlite3_close(db);
		crashvfs_uninstall(cv);
		rm_tree(dir);
		if (cases[c].always) {
			assert_int_equal(lost, 0);
		} else {
			assert_true(lost > 0);
			assert_true(kept > 0);
		}
	}
}

static int parse_range(const char *s, uint64_t *from, uint64_t *to)
{
	char *end = NULL;
	errno = 0;
	unsigned long long a = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	unsigned long long b = a;
	if (*end == '-') {
		const char *p = end + 1;
		b = strtoull(p, &end, 10);
		if (errno || end == p)
			return -1;
	}
	if (*end || b < a)
		return -1;
	*from = a;
	*to = b;
	return 0;
}

int main(int argc, char **argv)
{
	log_init("test_powerloss", L_WARN);
	if (argc > 1) {
		uint64_t from = 0, to = 0;
		int steps = 0;
		const char *keep = NULL;
		for (int i = 1; i < argc; i++) {
			if ((strcmp(argv[i], "--seeds") == 0 || strcmp(argv[i], "--seed") == 0) &&
			    i + 1 < argc) {
				if (parse_range(argv[++i], &from, &to) != 0) {
					fprintf(stderr, "test_powerloss: bad seed range %s\n",
					        argv[i]);
					return 2;
				}
			} else if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc) {
				uint64_t a, b;
				if (parse_range(argv[++i], &a, &b) != 0 || a != b || a < 1 ||
				    a > 100000) {
					fprintf(stderr, "test_powerloss: bad step count %s\n",
					        argv[i]);
					return 2;
				}
				steps = (int)a;
			} else if (strcmp(argv[i], "--keep") == 0 && i + 1 < argc) {
				keep = argv[++i];
			} else {
				fprintf(stderr, "usage: test_powerloss [--seeds A[-B]] [--steps N] "
				                "[--keep DIR]\n");
				return 2;
			}
		}
		if (keep)
			setenv("POWERLOSS_KEEP", keep, 1);
		struct scenario sc = mixed, ck = checkpoints;
		if (steps > 0)
			sc.steps = ck.steps = steps;
		struct totals t = {0};
		for (uint64_t s = from; s <= to; s++)
			run_seed(s % 2 ? &sc : &ck, s, keep, &t);
		print_totals("sweep", &t);
		print_headline(&t);
		return t.failures || t.lost ? 1 : 0;
	}
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_model),
	    cmocka_unit_test(test_mixed),
	    cmocka_unit_test(test_checkpoints),
	    cmocka_unit_test(test_control_ack_before_sync),
	    cmocka_unit_test(test_control_checkpoint_sync_off),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
