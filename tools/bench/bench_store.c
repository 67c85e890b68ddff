/*
 * bench_store PATH PHASE JOBS: the store's SQLite writes for JOBS async jobs,
 * one phase per run, for tools/bench/store.sh to count under callgrind
 * (instructions do not drift with the machine's speed, as time does here).
 *
 *   intake   the committer's transactions: 16 jobs each (job_in_tx)
 *   deliver  intake, then the deliverer's writes: claims of 64, and per 8
 *            jobs the flush that starts their attempts and the one that
 *            ends them (delivered)
 *   bare     the baseline: the same rows by plain INSERT, 16 per
 *            transaction, into a table without an index or trigger
 *
 * The database at PATH is created afresh. Exits 0 when every write
 * succeeded (prints what it did), 1 otherwise.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "ids.h"
#include "store.h"
#include "store_int.h"

#define BATCH 16
#define CLAIM 64
#define FLUSH 8

static int fail(const char *what)
{
	fprintf(stderr, "bench_store: %s failed\n", what);
	return 1;
}

static int bare(const char *path, int n)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	if (sqlite3_open(path, &db) != SQLITE_OK ||
	    sqlite3_exec(db,
	                 "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; "
	                 "CREATE TABLE r (seq INTEGER PRIMARY KEY, id TEXT, input_data TEXT, "
	                 "iterations INTEGER, callback_url TEXT, callback_host TEXT, "
	                 "client_addr TEXT, body_hash TEXT, created_at INTEGER, pending_keys TEXT)",
	                 NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db,
	                       "INSERT INTO r VALUES (NULL, ?1, 'hello', 1, "
	                       "'http://127.0.0.1:9/callback', '127.0.0.1', '127.0.0.1', 'aa', ?2, "
	                       "'[\"127.0.0.1/32\"]')",
	                       -1, &st, NULL) != SQLITE_OK)
		return fail("bare set-up");
	char id[IDS_UUID_LEN + 1];
	for (int i = 0; i < n; i += BATCH) {
		if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
			return fail("bare begin");
		for (int k = 0; k < BATCH; k++) {
			ids_uuidv7(id);
			sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
			sqlite3_bind_int64(st, 2, ids_now_ms());
			if (sqlite3_step(st) != SQLITE_DONE)
				return fail("bare insert");
			sqlite3_reset(st);
		}
		if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
			return fail("bare commit");
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	printf("bare: %d rows\n", n);
	return 0;
}

static int intake(struct store *s, int n)
{
	char id[BATCH][IDS_UUID_LEN + 1];
	for (int i = 0; i < n; i += BATCH) {
		if (s->ops->begin(s) != STORE_OK)
			return fail("begin");
		for (int k = 0; k < BATCH; k++) {
			ids_uuidv7(id[k]);
			struct job_insert j = {.id = id[k],
			                       .input_data = "hello",
			                       .iterations = 1,
			                       .callback_url = "http://127.0.0.1:9/callback",
			                       .callback_host = "127.0.0.1",
			                       .pending_keys = "[\"127.0.0.1/32\"]",
			                       .client_addr = "127.0.0.1",
			                       .body_hash = "aa",
			                       .created_at = ids_now_ms(),
			                       .max_queue_size = 100000000,
			                       .max_client_pending = 100000000};
			struct job_result r;
			if (s->ops->job_in_tx(s, &j, &r) != STORE_OK)
				return fail("job_in_tx");
		}
		if (s->ops->commit(s) != STORE_OK)
			return fail("commit");
	}
	printf("intake: %d jobs\n", n);
	return 0;
}

/* The two flushes of m claimed jobs: attempts started, then ended. */
static int flush_pair(struct store *s, struct store_job *j, int m)
{
	if (store_begin(s) != STORE_OK)
		return fail("begin");
	for (int k = 0; k < m; k++) {
		memset(j[k].result, 'a', 64);
		j[k].result[64] = '\0';
		if (store_attempt_begin(s, &j[k], true, 1, ids_now_ms()) != STORE_OK)
			return fail("attempt_begin");
	}
	if (store_commit(s) != STORE_OK || store_begin(s) != STORE_OK)
		return fail("flush");
	for (int k = 0; k < m; k++) {
		struct store_outcome o = {.number = 1,
		                          .http_status = 200,
		                          .verdict = STORE_DELIVERED,
		                          .now = ids_now_ms()};
		if (store_attempt_end(s, &j[k], &o) != STORE_OK)
			return fail("attempt_end");
	}
	return store_commit(s) == STORE_OK ? 0 : fail("commit");
}

static int deliver(struct store *s, int n)
{
	int done = 0, rc = 0;
	store_set_owner(s, "bench:1:store");
	while (done < n && rc == 0) {
		struct store_job *jobs = NULL;
		int got = 0;
		if (store_claim(s, ids_now_ms() + 1000, 60000, CLAIM, NULL, &jobs, &got) !=
		    STORE_OK)
			return fail("claim");
		if (got == 0)
			break;
		for (int i = 0; i < got && rc == 0; i += FLUSH)
			rc = flush_pair(s, jobs + i, got - i < FLUSH ? got - i : FLUSH);
		for (int k = 0; k < got; k++)
			store_job_clear(&jobs[k]);
		cz_free(jobs);
		done += got;
	}
	if (rc == 0 && done != n)
		return fail("claiming every job");
	if (rc == 0)
		printf("deliver: %d jobs\n", done);
	return rc;
}

int main(int argc, char **argv)
{
	int n = argc == 4 ? atoi(argv[3]) : 0;
	if (n <= 0 || n % BATCH != 0) {
		fprintf(stderr,
		        "usage: bench_store PATH intake|deliver|bare JOBS (a multiple of %d)\n",
		        BATCH);
		return 2;
	}
	unlink(argv[1]);
	if (strcmp(argv[2], "bare") == 0)
		return bare(argv[1], n);
	enum store_err err;
	char msg[256];
	struct store *s = store_open(argv[1], &err, msg, sizeof msg);
	if (!s) {
		fprintf(stderr, "bench_store: %s\n", msg);
		return 1;
	}
	int rc = intake(s, n);
	if (rc == 0 && strcmp(argv[2], "deliver") == 0)
		rc = deliver(s, n);
	store_close(s);
	return rc;
}
