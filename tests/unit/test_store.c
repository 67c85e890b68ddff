/*
 * test_store: the SQLite store against real database files in a temporary
 * directory: open and migrations (twice, from four processes at once, a newer
 * schema refused), four processes inserting 5,000 durable jobs each with no
 * SQLITE_BUSY surfacing, a lock held elsewhere waited out, idempotency
 * (replay, conflict, expiry), intake bounds and their counters, the WAL
 * sync that makes a job insert durable (watched through a VFS shim), the
 * JSON of get, list and health, ownership (get and list scoped to an
 * owner, through its index); files created owner-only, and a second
 * connection in one process that leaves the first one's locks alone.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <sqlite3.h>

#include "alloc.h"
#include "ids.h"
#include "migrations.h"
#include "requests.h"
#include "store.h"
#include "store_int.h"
#include "store_sqlite.h"

#define CHILDREN       4
#define ROWS_PER_CHILD 5000

static char tmpdir[256];
static int dbcount;

static sqlite3 *db_of(struct store *s)
{
	return store_sqlite_handle(s);
}

/* The record of id as GET /requests/{id} renders it (*o NULL unless OK). */
static enum store_err get_json(struct store *s, const char *id, const char *owner, json_object **o)
{
	struct store_request r;
	enum store_err err = store_get_request(s, id, owner, &r);
	*o = NULL;
	if (err != STORE_OK)
		return err;
	*o = requests_record_json(&r);
	store_request_clear(&r);
	assert_non_null(*o);
	return STORE_OK;
}

/* A page as GET /requests renders it. */
static enum store_err list_json(struct store *s, const struct list_query *q, json_object **list)
{
	struct store_page p;
	enum store_err err = store_list_requests(s, q, &p);
	*list = NULL;
	if (err != STORE_OK)
		return err;
	*list = requests_page_json(&p);
	store_page_clear(&p);
	assert_non_null(*list);
	return STORE_OK;
}

static int newest(void)
{
	int v = 0;
	for (size_t i = 0; i < consuma_sqlite_migrations_count; i++)
		if (consuma_sqlite_migrations[i].version > v)
			v = consuma_sqlite_migrations[i].version;
	return v;
}

/* A fresh database path in the temporary directory. */
static void fresh_path(char *out, size_t n)
{
	snprintf(out, n, "%s/db%d.sqlite", tmpdir, ++dbcount);
}

static struct store *open_ok(const char *path)
{
	enum store_err err = STORE_IO;
	char msg[256] = "";
	struct store *s = store_open(path, &err, msg, sizeof msg);
	if (!s)
		fprintf(stderr, "store_open: %s: %s\n", store_strerror(err), msg);
	assert_non_null(s);
	assert_int_equal(err, STORE_OK);
	return s;
}

static int64_t query_int(struct store *s, const char *sql)
{
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(db_of(s), sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	int64_t v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static const char *query_text(struct store *s, const char *sql, char *out, size_t n)
{
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(db_of(s), sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	snprintf(out, n, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return out;
}

static void exec_ok(struct store *s, const char *sql)
{
	char *emsg = NULL;
	int rc = sqlite3_exec(db_of(s), sql, NULL, NULL, &emsg);
	if (rc != SQLITE_OK)
		fprintf(stderr, "%s: %s\n", sql, emsg);
	sqlite3_free(emsg);
	assert_int_equal(rc, SQLITE_OK);
}

static struct job_insert job_template(const char *id)
{
	struct job_insert j = {
	    .id = id,
	    .input_data = "hello",
	    .iterations = 10,
	    .callback_url = "http://example.com/cb",
	    .callback_host = "example.com",
	    .client_addr = "192.0.2.1",
	    .idempotency_key = NULL,
	    .body_hash = "aa",
	    .created_at = 1000000,
	    .idempotency_ttl_ms = 60000,
	};
	return j;
}

static enum store_err insert_new(struct store *s, struct job_insert *j, struct job_result *r,
                                 char id[IDS_UUID_LEN + 1])
{
	ids_uuidv7(id);
	j->id = id;
	return store_insert_job(s, j, r);
}

/* Finishes (verdict v, at finished_at) the unfinished async jobs that
 * match where, the way the deliverer does (claim, first attempt, outcome
 * in one transaction), so the store counts them as in service (the
 * counters are the store's since sql/sqlite/010: an UPDATE by hand would
 * leave them be); the other due jobs are handed back due as they were. */
static void finish_as(struct store *s, const char *where, int64_t finished_at, enum store_verdict v)
{
	char sql[512];
	struct store_job *jobs = NULL;
	int n = 0;
	store_set_owner(s, "test:1:finish");
	assert_int_equal(store_claim(s, ids_now_ms(), 60000, 100000, NULL, &jobs, &n), STORE_OK);
	assert_int_equal(store_begin(s), STORE_OK);
	for (int i = 0; i < n; i++) {
		snprintf(sql, sizeof sql,
		         "SELECT count(*) FROM requests WHERE seq = %" PRId64 " AND (%s)",
		         jobs[i].seq, where);
		if (query_int(s, sql) == 0) {
			assert_int_equal(store_release(s, &jobs[i], false, jobs[i].created_at),
			                 STORE_OK);
			continue;
		}
		memset(jobs[i].result, 'a', 64);
		jobs[i].result[64] = '\0';
		int64_t number = jobs[i].attempts + 1;
		assert_int_equal(store_attempt_begin(s, &jobs[i], true, number, finished_at),
		                 STORE_OK);
		struct store_outcome o = {.number = number,
		                          .http_status = v == STORE_DELIVERED ? 200 : 410,
		                          .verdict = v,
		                          .now = finished_at};
		assert_int_equal(store_attempt_end(s, &jobs[i], &o), STORE_OK);
	}
	assert_int_equal(store_commit(s), STORE_OK);
	for (int i = 0; i < n; i++)
		store_job_clear(&jobs[i]);
	cz_free(jobs);
}

static void finish_where(struct store *s, const char *where, int64_t finished_at)
{
	finish_as(s, where, finished_at, STORE_DELIVERED);
}

/* ---- fork helpers --------------------------------------------------------- */

/* Starts n children that wait on a pipe until release() so they start
 * together; each runs fn(path, i) and exits with its return value. */
static void run_children(int n, const char *path, int (*fn)(const char *, int), int exit_codes[])
{
	int gate[2];
	pid_t pids[CHILDREN];
	assert_true(n <= CHILDREN);
	assert_int_equal(pipe(gate), 0);
	for (int i = 0; i < n; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			char c;
			close(gate[1]);
			ssize_t r = read(gate[0], &c, 1); /* EOF when the parent closes */
			(void)r;
			_exit(fn(path, i));
		}
	}
	close(gate[0]);
	close(gate[1]);
	for (int i = 0; i < n; i++) {
		int status = 0;
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		exit_codes[i] = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	}
}

/* ---- open and migrations ---------------------------------------------------- */

static void test_open_close(void **state)
{
	(void)state;
	char path[320], buf[32];
	fresh_path(path, sizeof path);
	struct store *s = open_ok(path);
	assert_string_equal(query_text(s, "PRAGMA journal_mode", buf, sizeof buf), "wal");
	assert_int_equal(query_int(s, "PRAGMA foreign_keys"), 1);
	assert_int_equal(query_int(s, "PRAGMA synchronous"), 1); /* NORMAL */
	assert_int_equal(query_int(s, "PRAGMA user_version"), newest());
	assert_int_equal(query_int(s, "SELECT value FROM counters WHERE name='queue_depth'"), 0);
	assert_string_equal(store_errmsg(s), "not an error");
	store_close(s);
	store_close(NULL);
	assert_null(db_of(NULL));

	/* A path that cannot be created fails with a message naming it. */
	enum store_err err = STORE_OK;
	char msg[256] = "";
	snprintf(path, sizeof path, "%s/no/such/dir/x.db", tmpdir);
	assert_null(store_open(path, &err, msg, sizeof msg));
	assert_int_equal(err, STORE_IO);
	assert_non_null(strstr(msg, "no/such/dir"));

	/* Out of memory: NULL and STORE_NOMEM, nothing leaked. */
	fresh_path(path, sizeof path);
	alloc_fail_after(0);
	s = store_open(path, &err, msg, sizeof msg);
	alloc_fail_after(-1);
	assert_null(s);
	assert_int_equal(err, STORE_NOMEM);
	assert_string_equal(msg, "out of memory");
}

static void test_migrations_twice(void **state)
{
	(void)state;
	char path[320];
	fresh_path(path, sizeof path);
	struct store *s = open_ok(path);
	int64_t tables = query_int(s, "SELECT count(*) FROM sqlite_schema");
	store_close(s);
	s = open_ok(path);
	assert_int_equal(query_int(s, "PRAGMA user_version"), newest());
	assert_int_equal(query_int(s, "SELECT count(*) FROM sqlite_schema"), tables);
	assert_int_equal(query_int(s, "SELECT count(*) FROM counters"), 1);
	store_close(s);
}

/* How many of sql's VDBE instructions are opcode (EXPLAIN). */
static int count_opcode(struct store *s, const char *sql, const char *opcode)
{
	char explain[512];
	sqlite3_stmt *st = NULL;
	int n = 0;
	snprintf(explain, sizeof explain, "EXPLAIN %s", sql);
	assert_int_equal(sqlite3_prepare_v2(db_of(s), explain, -1, &st, NULL), SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW)
		n += strcmp((const char *)sqlite3_column_text(st, 1), opcode) == 0;
	sqlite3_finalize(st);
	return n;
}

/* sqlite3_exec's primary result code (the store turns on extended ones) */
static int exec_rc(struct store *s, const char *sql)
{
	return sqlite3_exec(db_of(s), sql, NULL, NULL, NULL) & 0xff;
}

/* 009: the status CHECKs compare value by value, so a write builds no
 * temporary b-tree, on the connection that migrated as on a new one, and
 * still refuse every value they refused. */
static void test_checks_without_lists(void **state)
{
	(void)state;
	char path[320];
	const char *writes[] = {
	    "INSERT INTO requests (id, mode, status, callback_status, input_data, iterations, "
	    "created_at) VALUES ('e1', 'async', 'queued', 'pending', 'x', 1, 1)",
	    "UPDATE requests SET status = 'running', callback_status = 'delivering' WHERE seq = 1",
	    "INSERT INTO attempts (request_seq, number, state, started_at) VALUES (1, 1, "
	    "'sending', 1)",
	    "UPDATE attempts SET state = 'done' WHERE request_seq = 1",
	};
	fresh_path(path, sizeof path);
	for (int pass = 0; pass < 2; pass++) { /* the migrating connection, then a new one */
		struct store *s = open_ok(path);
		assert_int_equal(
		    query_int(s, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' "
		                 "AND sql LIKE '%status IN (%' OR sql LIKE '%state IN (%'"),
		    0);
		for (size_t i = 0; i < sizeof writes / sizeof writes[0]; i++)
			assert_int_equal(count_opcode(s, writes[i], "OpenEphemeral"), 0);
		store_close(s);
	}
	struct store *s = open_ok(path);
	for (size_t i = 0; i < sizeof writes / sizeof writes[0]; i++)
		assert_int_equal(exec_rc(s, writes[i]), SQLITE_OK);
	assert_int_equal(exec_rc(s, "UPDATE requests SET status = 'sent' WHERE seq = 1"),
	                 SQLITE_CONSTRAINT);
	assert_int_equal(exec_rc(s, "UPDATE requests SET callback_status = 'sent' WHERE seq = 1"),
	                 SQLITE_CONSTRAINT);
	assert_int_equal(exec_rc(s, "UPDATE attempts SET state = 'sent' WHERE request_seq = 1"),
	                 SQLITE_CONSTRAINT);
	/* NULL passes, as it did: a /sync record has no callback_status */
	assert_int_equal(exec_rc(s, "UPDATE requests SET callback_status = NULL WHERE seq = 1"),
	                 SQLITE_OK);
	char buf[32];
	assert_string_equal(query_text(s, "PRAGMA integrity_check", buf, sizeof buf), "ok");
	store_close(s);
}

static void test_newer_schema_refused(void **state)
{
	(void)state;
	char path[320], sql[64], msg[256] = "";
	fresh_path(path, sizeof path);
	struct store *s = open_ok(path);
	snprintf(sql, sizeof sql, "PRAGMA user_version = %d", newest() + 1);
	exec_ok(s, sql);
	store_close(s);
	enum store_err err = STORE_OK;
	assert_null(store_open(path, &err, msg, sizeof msg));
	assert_int_equal(err, STORE_MIGRATION);
	assert_non_null(strstr(msg, "newer"));
}

static int child_open(const char *path, int i)
{
	(void)i;
	enum store_err err;
	char msg[256];
	struct store *s = store_open(path, &err, msg, sizeof msg);
	if (!s) {
		fprintf(stderr, "child open: %s\n", msg);
		return 1;
	}
	store_close(s);
	return 0;
}

static void test_migrations_concurrent(void **state)
{
	(void)state;
	for (int round = 0; round < 5; round++) {
		char path[320];
		int codes[CHILDREN];
		fresh_path(path, sizeof path);
		run_children(CHILDREN, path, child_open, codes);
		for (int i = 0; i < CHILDREN; i++)
			assert_int_equal(codes[i], 0);
		struct store *s = open_ok(path);
		assert_int_equal(query_int(s, "PRAGMA user_version"), newest());
		assert_int_equal(query_int(s, "SELECT count(*) FROM counters"), 1);
		store_close(s);
	}
}

/* ---- concurrency ------------------------------------------------------------ */

/* Exit code: 0 all rows inserted, 2 a SQLITE_BUSY surfaced, 1 other error. */
static int child_insert(const char *path, int i)
{
	enum store_err err;
	char msg[256], id[IDS_UUID_LEN + 1], client[32];
	struct store *s = store_open(path, &err, msg, sizeof msg);
	if (!s) {
		fprintf(stderr, "child open: %s\n", msg);
		return 1;
	}
	snprintf(client, sizeof client, "198.51.100.%d", i);
	struct job_insert j = job_template(NULL);
	j.client_addr = client;
	int rc = 0;
	for (int n = 0; n < ROWS_PER_CHILD && rc == 0; n++) {
		struct job_result r;
		j.created_at = ids_now_ms();
		err = insert_new(s, &j, &r, id);
		if (err != STORE_OK) {
			fprintf(stderr, "child %d row %d: %s: %s\n", i, n, store_strerror(err),
			        store_errmsg(s));
			rc = err == STORE_BUSY ? 2 : 1;
		}
	}
	store_close(s);
	return rc;
}

static void test_concurrent_inserts(void **state)
{
	(void)state;
	char path[320];
	int codes[CHILDREN];
	fresh_path(path, sizeof path);
	struct store *s = open_ok(path);
	store_close(s);
	int64_t t0 = ids_mono_ms();
	run_children(CHILDREN, path, child_insert, codes);
	int64_t ms = ids_mono_ms() - t0;
	for (int i = 0; i < CHILDREN; i++)
		assert_int_equal(codes[i], 0);
	s = open_ok(path);
	int64_t total = CHILDREN * ROWS_PER_CHILD;
	assert_int_equal(query_int(s, "SELECT count(*) FROM requests"), total);
	assert_int_equal(query_int(s, "SELECT count(DISTINCT id) FROM requests"), total);
	assert_int_equal(query_int(s, "SELECT value FROM counters WHERE name='queue_depth'"),
	                 total);
	assert_int_equal(query_int(s, "SELECT count(*) FROM client_pending WHERE n = 5000"),
	                 CHILDREN);
	store_close(s);
	/* Information only: the bench scripts own speed. */
	fprintf(stderr, "# %d processes x %d durable job inserts: %" PRId64 " ms (%.0f/s)\n",
	        CHILDREN, ROWS_PER_CHILD, ms, ms > 0 ? (double)total * 1000.0 / (double)ms : 0.0);
}

/* Holds the write lock for 300 ms, then commits. */
static int child_hold_lock(const char *path, int i)
{
	(void)i;
	enum store_err err;
	char msg[256];
	struct store *s = store_open(path, &err, msg, sizeof msg);
	if (!s)
		return 1;
	if (store_begin(s) != STORE_OK)
		return 1;
	struct timespec ts = {.tv_sec = 0, .tv_nsec = 300 * 1000000L};
	nanosleep(&ts, NULL);
	int rc = store_commit(s) == STORE_OK ? 0 : 1;
	store_close(s);
	return rc;
}

static void test_busy_waits(void **state)
{
	(void)state;
	char path[320], id[IDS_UUID_LEN + 1];
	fresh_path(path, sizeof path);
	struct store *s = open_ok(path);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(child_hold_lock(path, 0));
	/* Wait until the child holds the lock: BEGIN IMMEDIATE fails at once
	 * without a busy handler. */
	sqlite3 *probe = NULL;
	assert_int_equal(sqlite3_open_v2(path, &probe, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	bool locked = false;
	for (int i = 0; i < 200 && !locked; i++) {
		int rc = sqlite3_exec(probe, "BEGIN IMMEDIATE", NULL, NULL, NULL);
		if (rc == SQLITE_OK)
			sqlite3_exec(probe, "ROLLBACK", NULL, NULL, NULL);
		else
			locked = true;
		if (!locked) {
			struct timespec ts = {.tv_sec = 0, .tv_nsec = 5 * 1000000L};
			nanosleep(&ts, NULL);
		}
	}
	sqlite3_close(probe);
	assert_true(locked);

	/* Readers do not wait for the writer (WAL). */
	struct list_query q = {NULL, NULL, 10, 0, NULL};
	json_object *list = NULL;
	struct store_health h;
	assert_int_equal(list_json(s, &q, &list), STORE_OK);
	json_object_put(list);
	assert_int_equal(store_health(s, 1000, &h), STORE_OK);

	/* The writer waits the lock out instead of failing. */
	struct job_insert j = job_template(NULL);
	struct job_result r;
	int64_t t0 = ids_mono_ms();
	assert_int_equal(insert_new(s, &j, &r, id), STORE_OK);
	assert_true(ids_mono_ms() - t0 >= 50); /* it did wait for the lock */
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	store_close(s);
}

/* ---- the job insert ---------------------------------------------------------- */

/* A VFS shim over the default one that watches the WAL file: how many bytes
 * were written to it since its last xSync, and how many xSyncs there were.
 * A job insert is durable when, at its return, nothing written to the WAL
 * is unsynced. */
struct shim_file {
	sqlite3_file base;
	sqlite3_file *real; /* follows this struct in the same allocation */
	bool wal;
};

static sqlite3_vfs shim_vfs;
static sqlite3_vfs *shim_real;
static int64_t wal_unsynced; /* bytes written to a WAL since its last sync */
static int wal_syncs;

#define REAL(f) (((struct shim_file *)(f))->real)

static int shim_close(sqlite3_file *f)
{
	int rc = REAL(f)->pMethods ? REAL(f)->pMethods->xClose(REAL(f)) : SQLITE_OK;
	return rc;
}
static int shim_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off)
{
	return REAL(f)->pMethods->xRead(REAL(f), p, n, off);
}
static int shim_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off)
{
	if (((struct shim_file *)f)->wal)
		wal_unsynced += n;
	return REAL(f)->pMethods->xWrite(REAL(f), p, n, off);
}
static int shim_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	return REAL(f)->pMethods->xTruncate(REAL(f), size);
}
static int shim_sync(sqlite3_file *f, int flags)
{
	int rc = REAL(f)->pMethods->xSync(REAL(f), flags);
	if (rc == SQLITE_OK && ((struct shim_file *)f)->wal) {
		wal_unsynced = 0;
		wal_syncs++;
	}
	return rc;
}
static int shim_size(sqlite3_file *f, sqlite3_int64 *size)
{
	return REAL(f)->pMethods->xFileSize(REAL(f), size);
}
static int shim_lock(sqlite3_file *f, int l)
{
	return REAL(f)->pMethods->xLock(REAL(f), l);
}
static int shim_unlock(sqlite3_file *f, int l)
{
	return REAL(f)->pMethods->xUnlock(REAL(f), l);
}
static int shim_reserved(sqlite3_file *f, int *out)
{
	return REAL(f)->pMethods->xCheckReservedLock(REAL(f), out);
}
static int shim_fcntl(sqlite3_file *f, int op, void *arg)
{
	return REAL(f)->pMethods->xFileControl(REAL(f), op, arg);
}
static int shim_sector(sqlite3_file *f)
{
	return REAL(f)->pMethods->xSectorSize(REAL(f));
}
static int shim_caps(sqlite3_file *f)
{
	return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f));
}
static int shim_shm_map(sqlite3_file *f, int pg, int sz, int extend, void volatile **pp)
{
	return REAL(f)->pMethods->xShmMap(REAL(f), pg, sz, extend, pp);
}
static int shim_shm_lock(sqlite3_file *f, int off, int n, int flags)
{
	return REAL(f)->pMethods->xShmLock(REAL(f), off, n, flags);
}
static void shim_shm_barrier(sqlite3_file *f)
{
	REAL(f)->pMethods->xShmBarrier(REAL(f));
}
static int shim_shm_unmap(sqlite3_file *f, int del)
{
	return REAL(f)->pMethods->xShmUnmap(REAL(f), del);
}
static int shim_fetch(sqlite3_file *f, sqlite3_int64 off, int n, void **pp)
{
	return REAL(f)->pMethods->xFetch(REAL(f), off, n, pp);
}
static int shim_unfetch(sqlite3_file *f, sqlite3_int64 off, void *p)
{
	return REAL(f)->pMethods->xUnfetch(REAL(f), off, p);
}

static const sqlite3_io_methods shim_methods = {
    3,
    shim_close,
    shim_read,
    shim_write,
    shim_truncate,
    shim_sync,
    shim_size,
    shim_lock,
    shim_unlock,
    shim_reserved,
    shim_fcntl,
    shim_sector,
    shim_caps,
    shim_shm_map,
    shim_shm_lock,
    shim_shm_barrier,
    shim_shm_unmap,
    shim_fetch,
    shim_unfetch,
};

static int shim_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *f, int flags,
                     int *out_flags)
{
	(void)vfs;
	struct shim_file *sf = (struct shim_file *)f;
	sf->real = (sqlite3_file *)(sf + 1);
	sf->wal = (flags & SQLITE_OPEN_WAL) != 0;
	int rc = shim_real->xOpen(shim_real, name, sf->real, flags, out_flags);
	/* xClose is called even after a failed open when pMethods is set */
	f->pMethods = sf->real->pMethods ? &shim_methods : NULL;
	return rc;
}

static void shim_install(void)
{
	shim_real = sqlite3_vfs_find(NULL);
	assert_non_null(shim_real);
	shim_vfs = *shim_real;
	shim_vfs.zName = "test_store_shim";
	shim_vfs.szOsFile = (int)sizeof(struct shim_file) + shim_real->szOsFile;
	shim_vfs.xOpen = shim_open;
	shim_vfs.pNext = NULL;
	assert_int_equal(sqlite3_vfs_register(&shim_vfs, 1), SQLITE_OK);
	wal_unsynced = 0;
	wal_syncs = 0;
}

static void shim_remove(void)
{
	assert_int_equal(sqlite3_vfs_unregister(&shim_vfs), SQLITE_OK);
	assert_int_equal(sqlite3_vfs_register(shim_real, 1), SQLITE_OK);
}

static void test_insert_job_durable(void **state)
{
	(void)state;
	char path[320], id[IDS_UUID_LEN + 1], id2[IDS_UUID_LEN + 1];
	fresh_path(path, sizeof path);
	shim_install();
	struct store *s = open_ok(path);
	struct job_insert j = job_template(NULL);
	struct job_result r;

	/* store_insert_job: committed and the WAL synced before it returns. */
	int syncs = wal_syncs;
	assert_int_equal(insert_new(s, &j, &r, id), STORE_OK);
	assert_int_equal(wal_unsynced, 0);
	assert_true(wal_syncs > syncs);
	/* The connection stays NORMAL: only the job insert syncs. */
	assert_int_equal(query_int(s, "PRAGMA synchronous"), 1);

	/* A replay writes nothing new but still syncs (the first request's
	 * commit may not be synced yet by its own process). */
	j.idempotency_key = "k-durable";
	assert_int_equal(insert_new(s, &j, &r, id), STORE_OK);
	syncs = wal_syncs;
	assert_int_equal(insert_new(s, &j, &r, id2), STORE_OK);
	assert_true(r.replayed);
	assert_string_equal(r.id, id);
	assert_true(wal_syncs > syncs);
	assert_int_equal(wal_unsynced, 0);
	j.idempotency_key = NULL;
	shim_remove();

	ids_uuidv7(id);
	j.id = id;
	assert_int_equal(store_insert_job(s, &j, &r), STORE_OK);
	assert_string_equal(r.id, id);
	assert_string_equal(r.status, "queued");
	assert_false(r.replayed);
	assert_int_equal(r.refusal, JOB_ACCEPTED);
	assert_int_equal(r.batch, 0); /* no committer: no batch */
	char sql[400];
	snprintf(sql, sizeof sql,
	         "SELECT count(*) FROM requests WHERE id='%s' AND mode='async' AND "
	         "status='queued' AND callback_status='pending' AND next_attempt_at=%d "
	         "AND finished_at IS NULL AND attempts=0",
	         id, 1000000);
	assert_int_equal(query_int(s, sql), 1);

	/* Inside a caller's transaction it cannot commit durably: refused. */
	assert_int_equal(store_begin(s), STORE_OK);
	assert_int_equal(insert_new(s, &j, &r, id), STORE_IO);
	store_rollback(s);
	assert_int_equal(query_int(s, "PRAGMA synchronous"), 1);
	store_close(s);
}

/* ---- group commit --------------------------------------------------- */

#define COMMIT_THREADS 16

struct submitter {
	struct store *s;
	struct job_insert j;
	struct job_result r;
	char id[IDS_UUID_LEN + 1];
	enum store_err err;
	int syncs_before, syncs_after; /* WAL syncs seen around the call */
};

static int submitted;
static pthread_mutex_t submitted_mu = PTHREAD_MUTEX_INITIALIZER;

static void *submit_one(void *arg)
{
	struct submitter *t = arg;
	pthread_mutex_lock(&submitted_mu);
	submitted++;
	pthread_mutex_unlock(&submitted_mu);
	t->syncs_before = wal_syncs;
	t->err = store_insert_job(t->s, &t->j, &t->r);
	t->syncs_after = wal_syncs;
	return NULL;
}

/* Whether some thread waits for the flock on fd (a "->" line for its
 * inode in /proc/locks), polled for up to about timeout_ms. */
static bool flock_waiter(int fd, int timeout_ms)
{
	struct stat sb;
	if (fstat(fd, &sb) != 0)
		return false;
	char ino[32];
	snprintf(ino, sizeof ino, ":%llu ", (unsigned long long)sb.st_ino);
	for (int waited = 0; waited <= timeout_ms; waited++) {
		FILE *f = fopen("/proc/locks", "r");
		char line[256];
		bool found = false;
		while (f && !found && fgets(line, sizeof line, f))
			found = strstr(line, "-> FLOCK") && strstr(line, ino);
		if (f)
			fclose(f);
		if (found)
			return true;
		usleep(1000);
	}
	return false;
}

/* Many threads, one committer: every job is durable when its call returns,
 * the jobs that queued while the write lock was taken share one commit and
 * one fsync, the bounds count the jobs of a batch against each other, and a
 * /sync record is written without an fsync of its own. */
static void test_group_commit(void **state)
{
	(void)state;
	char path[320], lock[340];
	struct submitter t[COMMIT_THREADS];
	pthread_t th[COMMIT_THREADS];
	struct store_committer_stats st;
	enum store_err err;
	fresh_path(path, sizeof path);
	shim_install();
	struct store *setup = open_ok(path);
	store_close(setup);
	struct store_committer *c = store_committer_start(path, &err, NULL, 0);
	assert_non_null(c);

	/* Hold the host's write lock, as another process would, while every
	 * thread queues its job: the committer takes the first, blocks on the
	 * lock, and finds the others queued when it gets it. The others start
	 * only once the committer waits for the lock (/proc/locks), so the
	 * first batch is the first job alone however the threads are
	 * scheduled. */
	snprintf(lock, sizeof lock, "%s.wlock", path);
	int lfd = open(lock, O_RDWR | O_CREAT, 0600);
	assert_true(lfd >= 0);
	assert_int_equal(flock(lfd, LOCK_EX), 0);
	submitted = 0;
	for (int i = 0; i < COMMIT_THREADS; i++) {
		t[i].s = open_ok(path);
		store_use_committer(t[i].s, c);
		t[i].j = job_template(NULL);
		ids_uuidv7(t[i].id);
		t[i].j.id = t[i].id;
		t[i].j.max_queue_size = COMMIT_THREADS - 1; /* the last one is refused */
		assert_int_equal(pthread_create(&th[i], NULL, submit_one, &t[i]), 0);
		if (i == 0)
			assert_true(flock_waiter(lfd, 5000));
	}
	for (int waited = 0;; waited++) {
		pthread_mutex_lock(&submitted_mu);
		int n = submitted;
		pthread_mutex_unlock(&submitted_mu);
		if (n == COMMIT_THREADS || waited > 5000)
			break;
		usleep(1000);
	}
	usleep(100 * 1000); /* past the counter, into the committer's queue */
	flock(lfd, LOCK_UN);
	close(lfd);

	int ok = 0, full = 0, first_batch = 0;
	for (int i = 0; i < COMMIT_THREADS; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		if (t[i].err == STORE_OK) {
			ok++;
			assert_string_equal(t[i].r.id, t[i].id);
			/* the batch that made it durable: the doorbell rings once
			 * per batch (checked against the count below) */
			assert_true(t[i].r.batch >= 1);
			first_batch += t[i].r.batch == 1;
			/* a WAL sync ran after the job was queued, before the answer */
			assert_true(t[i].syncs_after > t[i].syncs_before);
		} else {
			assert_int_equal(t[i].err, STORE_REFUSED);
			assert_int_equal(t[i].r.refusal, JOB_QUEUE_FULL);
			full++;
		}
	}
	assert_int_equal(ok, COMMIT_THREADS - 1);
	assert_int_equal(full, 1);
	/* the first job's batch was its own; the jobs queued behind the lock
	 * shared a later one */
	assert_int_equal(first_batch, 1);
	store_committer_stats(c, &st);
	print_message("group commit: %d jobs in %llu transactions, %llu fsyncs\n", ok,
	              (unsigned long long)st.transactions, (unsigned long long)st.fsyncs);
	assert_int_equal(st.jobs, (uint64_t)ok);
	for (int i = 0; i < COMMIT_THREADS; i++)
		assert_true(t[i].r.batch <= st.transactions);
	assert_true(st.fsyncs >= 1);
	assert_true(st.fsyncs < (uint64_t)ok); /* many jobs per fsync */
	assert_int_equal(query_int(t[0].s, "SELECT count(*) FROM requests WHERE mode='async'"), ok);

	/* A /sync record: queued, written by the next transaction, never synced. */
	char rid[IDS_UUID_LEN + 1];
	ids_uuidv7(rid);
	struct sync_record rec = {.id = rid,
	                          .input_data = "hello",
	                          .iterations = 1,
	                          .result = "00",
	                          .duration_ms = 0.5,
	                          .created_at = 1,
	                          .completed_at = 2,
	                          .client_addr = "c"};
	int syncs = wal_syncs;
	assert_int_equal(store_insert_sync(t[0].s, &rec), STORE_OK);
	char sql[200];
	snprintf(sql, sizeof sql, "SELECT count(*) FROM requests WHERE id='%s' AND mode='sync'",
	         rid);
	int64_t found = 0;
	for (int waited = 0; waited < 10000 && found == 0; waited++) {
		found = query_int(t[0].s, sql);
		if (found == 0)
			usleep(1000);
	}
	assert_int_equal(found, 1);
	assert_int_equal(wal_syncs, syncs); /* written, not synced */

	/* Stopping writes what is still queued. */
	ids_uuidv7(rid);
	assert_int_equal(store_insert_sync(t[0].s, &rec), STORE_OK);
	for (int i = 0; i < COMMIT_THREADS; i++)
		store_close(t[i].s);
	store_committer_stop(c);
	shim_remove();
	struct store *check = open_ok(path);
	snprintf(sql, sizeof sql, "SELECT count(*) FROM requests WHERE id='%s' AND mode='sync'",
	         rid);
	assert_int_equal(query_int(check, sql), 1);
	store_close(check);
	store_committer_stop(NULL);
}

static void test_idempotency(void **state)
{
	(void)state;
	char path[320], id1[IDS_UUID_LEN + 1], id2[IDS_UUID_LEN + 1];
	fresh_path(path, sizeof path);
	struct store *s = open_ok(path);
	struct job_insert j = job_template(NULL);
	struct job_result r;
	j.idempotency_key = "key-1";
	j.body_hash = "hash-a";
	assert_int_equal(insert_new(s, &j, &r, id1), STORE_OK);
	assert_false(r.replayed);

	/* Replay within the TTL: the first id and status, no second row. */
	j.created_at += 59999;
	assert_int_equal(insert_new(s, &j, &r, id2), STORE_OK);
	assert_true(r.replayed);
	assert_string_equal(r.id, id1);
	assert_string_equal(r.status, "queued");
	assert_int_equal(query_int(s, "SELECT count(*) FROM requests"), 1);
	exec_ok(s, "UPDATE requests SET status='completed'");
	assert_int_equal(insert_new(s, &j, &r, id2), STORE_OK);
	assert_string_equal(r.status, "completed");

	/* A replay is answered even when the queue is full. */
	j.max_queue_size = 1;
	assert_int_equal(insert_new(s, &j, &r, id2), STORE_OK);
	assert_true(r.replayed);
	j.max_queue_size = 0;

	/* Same key, different body: conflict, nothing inserted. */
	j.body_hash = "hash-b";
	assert_int_equal(insert_new(s, &j, &r, id2), STORE_CONFLICT);
	assert_string_equal(r.id, id1);
	assert_int_equal(query_int(s, "SELECT count(*) FROM requests"), 1);

	/* Same key from another client: its own job. */
	j.client_addr = "192.0.2.99";
	assert_int_equal(insert_new(s, &j, &r, id2), STORE_OK);
	assert_false(r.replayed);
	assert_string_equal(r.id, id2);
	j.client_addr = "192.0.2.1";

	/* Past the TTL the key is forgotten: a new job with the key, even with
	 * another body, and the old row no longer holds it. */
	j.created_at = 1000000 + 60000;
	assert_int_equal(insert_new(s, &j, &r, id2), STORE_OK);
	assert_false(r.replayed);
	assert_string_equal(r.id, id2);
	char sql[200];
	snprintf(sql, sizeof sql, "SELECT idempotency_key IS NULL FROM requests WHERE id='%s'",
	         id1);
	assert_int_equal(query_int(s, sql), 1);
	snprintf(sql, sizeof sql, "SELECT idempotency_key = 'key-1' FROM requests WHERE id='%s'",
	         id2);
	assert_int_equal(query_int(s, sql), 1);
	/* ...and the new row is the one replayed from now on. */
	char id3[IDS_UUID_LEN + 1];
	assert_int_equal(insert_new(s, &j, &r, id3), STORE_OK);
	assert_true(r.replayed);
	assert_string_equal(r.id, id2);
	assert_int_equal(query_int(s, "SELECT count(*) FROM requests"), 3);
	store_close(s);
}

/* store_find_replay: the read-only key check answers what the insert
 * would for a live key, and leaves everything else to the insert. */
static void test_find_replay(void **state)
{
	(void)state;
	char path[320], id1[IDS_UUID_LEN + 1], id2[IDS_UUID_LEN + 1];
	fresh_path(path, sizeof path);
	struct store *s = open_ok(path);
	struct job_insert j = job_template(NULL);
	struct job_result r;

	/* no key: nothing to find */
	assert_int_equal(store_find_replay(s, &j, &r), STORE_NOTFOUND);
	assert_false(r.replayed);
	j.idempotency_key = "key-r";
	j.body_hash = "hash-a";
	/* a key nobody used yet */
	assert_int_equal(store_find_replay(s, &j, &r), STORE_NOTFOUND);
	assert_false(r.replayed);
	assert_int_equal(insert_new(s, &j, &r, id1), STORE_OK);

	/* the same body within the TTL: the first id and its status */
	j.created_at += 59999;
	j.id = NULL; /* never read */
	assert_int_equal(store_find_replay(s, &j, &r), STORE_OK);
	assert_true(r.replayed);
	assert_string_equal(r.id, id1);
	assert_string_equal(r.status, "queued");
	exec_ok(s, "UPDATE requests SET status='running'");
	assert_int_equal(store_find_replay(s, &j, &r), STORE_OK);
	assert_string_equal(r.status, "running");
	/* another body: the conflict, naming the first job */
	j.body_hash = "hash-b";
	assert_int_equal(store_find_replay(s, &j, &r), STORE_CONFLICT);
	assert_string_equal(r.id, id1);
	j.body_hash = "hash-a";
	/* another client's key of the same name is not this one */
	j.client_addr = "192.0.2.99";
	assert_int_equal(store_find_replay(s, &j, &r), STORE_NOTFOUND);
	j.client_addr = "192.0.2.1";
	/* past the TTL: not found, and left for the insert to clear */
	j.created_at = 1000000 + 60000;
	assert_int_equal(store_find_replay(s, &j, &r), STORE_NOTFOUND);
	assert_false(r.replayed);
	char sql[200];
	snprintf(sql, sizeof sql, "SELECT idempotency_key = 'key-r' FROM requests WHERE id='%s'",
	         id1);
	assert_int_equal(query_int(s, sql), 1);
	assert_int_equal(insert_new(s, &j, &r, id2), STORE_OK);
	assert_false(r.replayed);
	assert_int_equal(store_find_replay(s, &j, &r), STORE_OK);
	assert_string_equal(r.id, id2);
	/* it wrote nothing */
	assert_int_equal(query_int(s, "SELECT count(*) FROM requests"), 2);
	store_close(s);
}

struct bound_case {
	const char *name;
	int64_t max_queue, max_client, max_host;
	int fill_same_client_host; /* jobs inserted first from 192.0.2.1 to example.com */
	int fill_other;            /* jobs from other clients to other hosts */
	const char *client, *host; /* of the refused job */
	enum store_err want;
	enum job_refusal refusal;
};

static const struct bound_case bound_cases[] = {
    {"no bounds", 0, 0, 0, 5, 5, "192.0.2.1", "example.com", STORE_OK, JOB_ACCEPTED},
    {"queue below", 11, 0, 0, 5, 5, "192.0.2.1", "example.com", STORE_OK, JOB_ACCEPTED},
    {"queue full", 10, 0, 0, 5, 5, "192.0.2.7", "other.test", STORE_REFUSED, JOB_QUEUE_FULL},
    {"client share", 100, 5, 0, 5, 5, "192.0.2.1", "new.test", STORE_REFUSED, JOB_CLIENT_SHARE},
    {"client below", 100, 6, 0, 5, 5, "192.0.2.1", "new.test", STORE_OK, JOB_ACCEPTED},
    {"other client", 100, 5, 0, 5, 5, "192.0.2.50", "new.test", STORE_OK, JOB_ACCEPTED},
    {"host pending", 100, 0, 5, 5, 5, "192.0.2.50", "example.com", STORE_REFUSED, JOB_HOST_PENDING},
    {"host below", 100, 0, 6, 5, 5, "192.0.2.50", "example.com", STORE_OK, JOB_ACCEPTED},
    {"queue before client", 10, 5, 5, 5, 5, "192.0.2.1", "example.com", STORE_REFUSED,
     JOB_QUEUE_FULL},
    {"client before host", 100, 5, 5, 5, 5, "192.0.2.1", "example.com", STORE_REFUSED,
     JOB_CLIENT_SHARE},
};

static void test_bounds(void **state)
{
	(void)state;
	for (size_t c = 0; c < sizeof bound_cases / sizeof bound_cases[0]; c++) {
		const struct bound_case *bc = &bound_cases[c];
		char path[320], id[IDS_UUID_LEN + 1], other[32];
		fresh_path(path, sizeof path);
		struct store *s = open_ok(path);
		struct job_insert j = job_template(NULL);
		struct job_result r;
		for (int i = 0; i < bc->fill_same_client_host; i++)
			assert_int_equal(insert_new(s, &j, &r, id), STORE_OK);
		for (int i = 0; i < bc->fill_other; i++) {
			snprintf(other, sizeof other, "203.0.113.%d", i);
			j.client_addr = other;
			j.callback_host = other;
			assert_int_equal(insert_new(s, &j, &r, id), STORE_OK);
		}
		j.client_addr = bc->client;
		j.callback_host = bc->host;
		j.max_queue_size = bc->max_queue;
		j.max_client_pending = bc->max_client;
		j.max_host_pending = bc->max_host;
		enum store_err err = insert_new(s, &j, &r, id);
		if (err != bc->want || r.refusal != bc->refusal)
			fail_msg("case %s: got %s/%d", bc->name, store_strerror(err), r.refusal);
		assert_int_equal(r.queue_depth, bc->fill_same_client_host + bc->fill_other);
		int64_t rows = bc->fill_same_client_host + bc->fill_other + (err == STORE_OK);
		assert_int_equal(query_int(s, "SELECT count(*) FROM requests"), rows);

		if (err == STORE_REFUSED) {
			/* Finishing one job of the bound's kind frees one place. */
			finish_where(
			    s,
			    "seq = (SELECT min(seq) FROM requests WHERE client_addr = '192.0.2.1')",
			    2000000);
			assert_int_equal(insert_new(s, &j, &r, id), STORE_OK);
			assert_int_equal(r.refusal, JOB_ACCEPTED);
		}
		store_close(s);
	}
}

static void test_counters(void **state)
{
	(void)state;
	char path[320], id[IDS_UUID_LEN + 1];
	fresh_path(path, sizeof path);
	struct store *s = open_ok(path);
	struct job_insert j = job_template(NULL);
	struct job_result r;
	for (int i = 0; i < 3; i++)
		assert_int_equal(insert_new(s, &j, &r, id), STORE_OK);
	assert_int_equal(query_int(s, "SELECT value FROM counters WHERE name='queue_depth'"), 3);
	assert_int_equal(query_int(s, "SELECT n FROM client_pending WHERE client='192.0.2.1'"), 3);
	assert_int_equal(query_int(s, "SELECT n FROM host_pending WHERE host='example.com'"), 3);
	finish_where(s, "seq = 1", 1);
	finish_where(s, "seq = 1", 2); /* no double count */
	assert_int_equal(query_int(s, "SELECT value FROM counters WHERE name='queue_depth'"), 2);
	assert_int_equal(query_int(s, "SELECT n FROM client_pending WHERE client='192.0.2.1'"), 2);
	finish_where(s, "seq = 2", 5000000);
	assert_int_equal(query_int(s, "SELECT n FROM drain WHERE second = 5000"), 1);
	/* the drain keeps an hour: a finish two hours later drops that second */
	finish_where(s, "1", 5000000 + 7200000);
	assert_int_equal(query_int(s, "SELECT count(*) FROM drain WHERE second = 5000"), 0);
	assert_int_equal(query_int(s, "SELECT n FROM drain WHERE second = 12200"), 1);
	assert_int_equal(query_int(s, "SELECT value FROM counters WHERE name='queue_depth'"), 0);
	assert_int_equal(query_int(s, "SELECT count(*) FROM client_pending"), 0);
	assert_int_equal(query_int(s, "SELECT count(*) FROM host_pending"), 0);
	/* Sync records never count. */
	struct sync_record rec = {
	    "0190a0a0-0000-7000-8000-000000000001", "x", 1, "ab", 1.5, 5, 6, "192.0.2.1", NULL};
	assert_int_equal(store_insert_sync(s, &rec), STORE_OK);
	assert_int_equal(query_int(s, "SELECT value FROM counters WHERE name='queue_depth'"), 0);
	/* A duplicate id is an error, not a crash, and the message says why. */
	assert_int_equal(store_insert_sync(s, &rec), STORE_IO);
	assert_non_null(strstr(store_errmsg(s), "UNIQUE"));
	store_close(s);
}

/* pending_keys (sql/005): a job counts once under each of its keys, the
 * bound refuses a job when any key is full, and finishing frees them all. */
static void test_pending_keys(void **state)
{
	static const struct {
		const char *keys;
		enum store_err want;
	} steps[] = {
	    {"[\"::/64\"]", STORE_OK},
	    {"[\"::/64\"]", STORE_REFUSED},
	    {"[\"localhost\",\"127.0.0.1/32\",\"::/64\"]", STORE_REFUSED},
	    {"[\"127.0.0.1/32\"]", STORE_OK},
	    {"[\"a.wild.test\",\"93.184.216.34/32\"]", STORE_OK},
	    {"[\"b.wild.test\",\"93.184.216.34/32\"]", STORE_REFUSED},
	    {"[\"b.wild.test\",\"93.184.216.35/32\"]", STORE_OK},
	};
	char path[320], id[IDS_UUID_LEN + 1];
	struct job_insert j = job_template(NULL);
	struct job_result r;

	(void)state;
	fresh_path(path, sizeof path);
	struct store *s = open_ok(path);
	j.max_host_pending = 1;
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		j.pending_keys = steps[i].keys;
		enum store_err err = insert_new(s, &j, &r, id);
		if (err != steps[i].want)
			fail_msg("step %zu (%s): %s", i, steps[i].keys, store_strerror(err));
		if (err == STORE_REFUSED)
			assert_int_equal(r.refusal, JOB_HOST_PENDING);
	}
	assert_int_equal(query_int(s, "SELECT n FROM host_pending WHERE host='b.wild.test'"), 1);
	assert_int_equal(query_int(s, "SELECT count(*) FROM host_pending"), 6);
	/* one job's finish takes off its own keys and no other (sql/007: one
	 * or two keys by keyed updates, three through json_each) */
	finish_where(s, "pending_keys LIKE '%a.wild.test%'", 1);
	assert_int_equal(query_int(s, "SELECT count(*) FROM host_pending"), 4);
	assert_int_equal(query_int(s, "SELECT count(*) FROM host_pending WHERE host IN "
	                              "('a.wild.test', '93.184.216.34/32')"),
	                 0);
	finish_where(s, "pending_keys = '[\"::/64\"]'", 1);
	assert_int_equal(query_int(s, "SELECT count(*) FROM host_pending WHERE host = '::/64'"), 0);
	assert_int_equal(query_int(s, "SELECT n FROM host_pending WHERE host='b.wild.test'"), 1);
	finish_where(s, "1", 1);
	assert_int_equal(query_int(s, "SELECT count(*) FROM host_pending"), 0);
	/* a repeated key counts twice and is taken off twice: exact either way */
	j.pending_keys = "[\"dup.test\",\"dup.test\"]";
	j.max_host_pending = 3;
	assert_int_equal(insert_new(s, &j, &r, id), STORE_OK);
	assert_int_equal(query_int(s, "SELECT n FROM host_pending WHERE host='dup.test'"), 2);
	assert_int_equal(insert_new(s, &j, &r, id), STORE_OK);
	assert_int_equal(insert_new(s, &j, &r, id), STORE_REFUSED);
	finish_where(s, "1", 1);
	assert_int_equal(query_int(s, "SELECT count(*) FROM host_pending"), 0);
	j.max_host_pending = 1;
	/* a row without keys (written before sql/005) counts under its host */
	j.pending_keys = NULL;
	assert_int_equal(insert_new(s, &j, &r, id), STORE_OK);
	assert_int_equal(insert_new(s, &j, &r, id), STORE_REFUSED);
	assert_int_equal(query_int(s, "SELECT n FROM host_pending WHERE host='example.com'"), 1);
	finish_where(s, "1", 1);
	assert_int_equal(query_int(s, "SELECT count(*) FROM host_pending"), 0);
	/* keys read past the common shape (store_tally.c splits ["a","b"]
	 * itself): spaces, an escape, not an array */
	j.max_host_pending = 0;
	j.pending_keys = "[\"esc\\u0061ped.test\"]";
	assert_int_equal(insert_new(s, &j, &r, id), STORE_OK);
	j.pending_keys = " [ \"sp, aced]\" ,\"escaped.test\" ] ";
	assert_int_equal(insert_new(s, &j, &r, id), STORE_OK);
	assert_int_equal(query_int(s, "SELECT n FROM host_pending WHERE host='escaped.test'"), 2);
	assert_int_equal(query_int(s, "SELECT n FROM host_pending WHERE host='sp, aced]'"), 1);
	assert_int_equal(query_int(s, "SELECT count(*) FROM host_pending"), 2);
	j.pending_keys = "{\"a.test\": 1}";
	assert_int_equal(insert_new(s, &j, &r, id), STORE_IO);
	j.pending_keys = "[]"; /* counted under no key */
	assert_int_equal(insert_new(s, &j, &r, id), STORE_OK);
	assert_int_equal(query_int(s, "SELECT count(*) FROM host_pending"), 2);
	store_close(s);
}

/* The database and its WAL are created owner-only whatever the umask; an
 * existing file keeps the mode its owner gave it. */
static void test_private_file(void **state)
{
	char path[320], wal[340], id[IDS_UUID_LEN + 1];
	struct job_insert j = job_template(NULL);
	struct job_result r;
	struct stat st;
	mode_t old = umask(0);

	(void)state;
	fresh_path(path, sizeof path);
	struct store *s = open_ok(path);
	assert_int_equal(insert_new(s, &j, &r, id), STORE_OK);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	snprintf(wal, sizeof wal, "%s-wal", path);
	assert_int_equal(stat(wal, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	store_close(s);
	assert_int_equal(chmod(path, 0640), 0);
	s = open_ok(path);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0640);
	store_close(s);
	umask(old);
}

/* Whether another process would find a lock of ours on SQLite's SHARED
 * byte range of the database file (a connection in WAL mode holds a
 * shared lock there for as long as it is open). Asked from a child: any
 * descriptor of the file this process closed would drop its locks. */
static bool shared_lock_held(const char *path)
{
	int status = 0;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		struct flock fl = {
		    .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0x40000002, .l_len = 510};
		int fd = open(path, O_RDONLY | O_CLOEXEC);

		if (fd < 0 || fcntl(fd, F_GETLK, &fl) != 0)
			_exit(2);
		_exit(fl.l_type != F_UNLCK ? 1 : 0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) != 2);
	return WEXITSTATUS(status) == 1;
}

/* Opening a second connection in the same process (a worker thread's) must
 * not drop the first one's locks: a descriptor of the file opened and
 * closed outside SQLite would release every POSIX lock of the process, and
 * another process closing last would then delete the WAL under us. */
static void test_open_keeps_locks(void **state)
{
	char path[320];

	(void)state;
	fresh_path(path, sizeof path);
	struct store *a = open_ok(path);
	assert_true(shared_lock_held(path));
	struct store *b = open_ok(path); /* the file exists now */
	assert_true(shared_lock_held(path));
	store_close(b);
	assert_true(shared_lock_held(path));
	store_close(a);
	assert_false(shared_lock_held(path));
	/* and a first open that creates the file */
	fresh_path(path, sizeof path);
	a = open_ok(path);
	b = open_ok(path);
	store_close(b);
	assert_true(shared_lock_held(path));
	store_close(a);
}

/* ---- reads ----------------------------------------------------------------- */

static json_object *field(json_object *o, const char *key)
{
	json_object *v = NULL;
	if (!json_object_object_get_ex(o, key, &v))
		fail_msg("missing field %s in %s", key, json_object_to_json_string(o));
	return v;
}

static void assert_str_field(json_object *o, const char *key, const char *want)
{
	json_object *v = field(o, key);
	assert_true(json_object_is_type(v, json_type_string));
	assert_string_equal(json_object_get_string(v), want);
}

static void assert_null_field(json_object *o, const char *key)
{
	if (field(o, key) != NULL)
		fail_msg("%s is not null", key);
}

#define SYNC_ID  "0190a0a0-0000-7000-8000-0000000000a1"
#define ASYNC_ID "0190a0a0-0000-7000-8000-0000000000b2"

static struct store *populated(void)
{
	char path[320];
	fresh_path(path, sizeof path);
	struct store *s = open_ok(path);
	struct sync_record rec = {SYNC_ID,       "abc",         3,           "deadbeef", 2.5,
	                          1700000000000, 1700000000002, "192.0.2.1", NULL};
	assert_int_equal(store_insert_sync(s, &rec), STORE_OK);
	struct job_insert j = job_template(ASYNC_ID);
	struct job_result r;
	j.created_at = 1700000001000;
	assert_int_equal(store_insert_job(s, &j, &r), STORE_OK);
	return s;
}

static void test_get_request(void **state)
{
	(void)state;
	struct store *s = populated();
	json_object *o = NULL;

	assert_int_equal(get_json(s, SYNC_ID, NULL, &o), STORE_OK);
	assert_str_field(o, "id", SYNC_ID);
	assert_str_field(o, "mode", "sync");
	assert_str_field(o, "status", "completed");
	assert_str_field(o, "result", "deadbeef");
	assert_str_field(o, "input_data", "abc");
	assert_str_field(o, "created_at", "2023-11-14T22:13:20.000Z");
	assert_str_field(o, "completed_at", "2023-11-14T22:13:20.002Z");
	assert_int_equal(json_object_get_int64(field(o, "iterations")), 3);
	assert_true(json_object_get_double(field(o, "duration_ms")) == 2.5);
	static const char *const sync_nulls[] = {"callback_status", "callback_url", "attempts",
	                                         "next_attempt_at", "last_error"};
	for (size_t i = 0; i < sizeof sync_nulls / sizeof sync_nulls[0]; i++)
		assert_null_field(o, sync_nulls[i]);
	assert_true(json_object_is_type(field(o, "delivery_trace"), json_type_array));
	assert_int_equal(json_object_array_length(field(o, "delivery_trace")), 0);
	json_object_put(o);

	/* Two attempts, written out of order: the trace lists them by number. */
	exec_ok(s, "INSERT INTO attempts (request_seq, number, state, started_at, duration_ms, "
	           "http_status, error_class, error_message, next_attempt_at) VALUES "
	           "(2, 2, 'done', 1700000003000, 12.5, 200, NULL, NULL, NULL), "
	           "(2, 1, 'done', 1700000002000, 30.0, 503, 'http_status', 'HTTP 503', "
	           "1700000003000)");
	exec_ok(s, "UPDATE requests SET status='completed', callback_status='delivered', "
	           "result='ff', duration_ms=4.0, started_at=1700000001500, "
	           "completed_at=1700000001900, finished_at=1700000003100, attempts=2, "
	           "last_error='HTTP 503' WHERE seq=2");
	assert_int_equal(get_json(s, ASYNC_ID, NULL, &o), STORE_OK);
	assert_str_field(o, "mode", "async");
	assert_str_field(o, "status", "completed");
	assert_str_field(o, "callback_status", "delivered");
	assert_str_field(o, "callback_url", "http://example.com/cb");
	assert_str_field(o, "finished_at", "2023-11-14T22:13:23.100Z");
	assert_str_field(o, "last_error", "HTTP 503");
	assert_int_equal(json_object_get_int64(field(o, "attempts")), 2);
	assert_null_field(o, "next_attempt_at"); /* finished: nothing is due */
	json_object *trace = field(o, "delivery_trace");
	assert_int_equal(json_object_array_length(trace), 2);
	json_object *a1 = json_object_array_get_idx(trace, 0);
	json_object *a2 = json_object_array_get_idx(trace, 1);
	assert_int_equal(json_object_get_int(field(a1, "attempt")), 1);
	assert_str_field(a1, "state", "done");
	assert_str_field(a1, "started_at", "2023-11-14T22:13:22.000Z");
	assert_int_equal(json_object_get_int(field(a1, "http_status")), 503);
	assert_str_field(a1, "error", "http_status");
	assert_str_field(a1, "error_message", "HTTP 503");
	assert_str_field(a1, "next_attempt_at", "2023-11-14T22:13:23.000Z");
	assert_int_equal(json_object_get_int(field(a2, "attempt")), 2);
	assert_null_field(a2, "error");
	assert_null_field(a2, "next_attempt_at");
	assert_true(json_object_get_double(field(a2, "duration_ms")) == 12.5);
	json_object_put(o);

	/* An unfinished job shows when it is due. */
	exec_ok(s, "UPDATE requests SET finished_at=NULL, next_attempt_at=1700000009000 "
	           "WHERE seq=2");
	assert_int_equal(get_json(s, ASYNC_ID, NULL, &o), STORE_OK);
	assert_str_field(o, "next_attempt_at", "2023-11-14T22:13:29.000Z");
	json_object_put(o);

	o = (json_object *)1;
	assert_int_equal(get_json(s, "0190a0a0-0000-7000-8000-00000000ffff", NULL, &o),
	                 STORE_NOTFOUND);
	assert_null(o);
	assert_true(sqlite3_get_autocommit(db_of(s)));
	store_close(s);
}

struct list_case {
	const char *mode, *status;
	int64_t limit, offset;
	const char *want; /* ids' last characters, newest first */
};

static void test_list_requests(void **state)
{
	(void)state;
	char path[320];
	fresh_path(path, sizeof path);
	struct store *s = open_ok(path);
	/* Rows a..f; b and c share a created_at (seq breaks the tie). */
	static const struct {
		char tag;
		bool async;
		int64_t created;
		const char *status, *cb;
	} rows[] = {
	    {'a', false, 100, "completed", NULL},      {'b', true, 200, "queued", "pending"},
	    {'c', true, 200, "completed", "retrying"}, {'d', true, 300, "completed", "failed"},
	    {'e', false, 400, "completed", NULL},      {'f', true, 500, "completed", "delivered"},
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		char id[IDS_UUID_LEN + 1];
		snprintf(id, sizeof id, "0190a0a0-0000-7000-8000-00000000000%c", rows[i].tag);
		if (rows[i].async) {
			struct job_insert j = job_template(id);
			struct job_result r;
			j.created_at = rows[i].created;
			assert_int_equal(store_insert_job(s, &j, &r), STORE_OK);
			char sql[200];
			snprintf(
			    sql, sizeof sql,
			    "UPDATE requests SET status='%s', callback_status='%s' WHERE id='%s'",
			    rows[i].status, rows[i].cb, id);
			exec_ok(s, sql);
		} else {
			struct sync_record rec = {
			    id,          "x", 1, "00", 1.0, rows[i].created, rows[i].created + 1,
			    "192.0.2.1", NULL};
			assert_int_equal(store_insert_sync(s, &rec), STORE_OK);
		}
	}
	static const struct list_case cases[] = {
	    {NULL, NULL, 50, 0, "fedcba"},
	    {NULL, NULL, 2, 0, "fe"},
	    {NULL, NULL, 2, 2, "dc"},
	    {NULL, NULL, 50, 6, ""},
	    {NULL, NULL, 0, 0, "f"},         /* limit clamped to 1 */
	    {NULL, NULL, 500, -3, "fedcba"}, /* clamped to 200 and 0 */
	    {"sync", NULL, 50, 0, "ea"},
	    {"async", NULL, 50, 0, "fdcb"},
	    {NULL, "completed", 50, 0, "fedca"},
	    {NULL, "queued", 50, 0, "b"},
	    {NULL, "pending", 50, 0, "b"},
	    {NULL, "retrying", 50, 0, "c"},
	    {NULL, "delivered", 50, 0, "f"},
	    {NULL, "failed", 50, 0, "d"},
	    {"sync", "completed", 50, 0, "ea"},
	    {"sync", "delivered", 50, 0, ""},
	    {"async", "completed", 1, 1, "d"},
	    {NULL, "running", 50, 0, ""},
	};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		const struct list_case *lc = &cases[c];
		struct list_query q = {lc->mode, lc->status, lc->limit, lc->offset, NULL};
		json_object *list = NULL;
		char got[16] = "";
		assert_int_equal(list_json(s, &q, &list), STORE_OK);
		size_t n = json_object_array_length(list);
		for (size_t i = 0; i < n && i < sizeof got - 1; i++) {
			json_object *item = json_object_array_get_idx(list, i);
			const char *id = json_object_get_string(field(item, "id"));
			got[i] = id[strlen(id) - 1];
			got[i + 1] = '\0';
			assert_int_equal(json_object_object_length(item), 6);
			const char *mode = json_object_get_string(field(item, "mode"));
			assert_true(strcmp(mode, "sync") == 0 || strcmp(mode, "async") == 0);
			field(item, "status");
			field(item, "duration_ms");
			if (strcmp(mode, "sync") == 0)
				assert_null_field(item, "callback_status");
			assert_int_equal(strlen(json_object_get_string(field(item, "created_at"))),
			                 IDS_RFC3339_LEN);
		}
		if (strcmp(got, lc->want) != 0)
			fail_msg("case %zu (mode %s status %s limit %" PRId64 " offset %" PRId64
			         "): got \"%s\" want \"%s\"",
			         c, lc->mode ? lc->mode : "-", lc->status ? lc->status : "-",
			         lc->limit, lc->offset, got, lc->want);
		json_object_put(list);
	}
	store_close(s);
}

/* Newest first is acceptance order (seq), also when a later request carries
 * an older created_at (a /sync record's created_at is taken before its
 * work); migration 004 left only the indexes the intake needs. */
static void test_list_acceptance_order(void **state)
{
	(void)state;
	char path[320];
	fresh_path(path, sizeof path);
	struct store *s = open_ok(path);
	struct sync_record rec = {
	    "0190a0a0-0000-7000-8000-00000000000a", "x", 1, "00", 1.0, 500, 501, "192.0.2.1", NULL};
	assert_int_equal(store_insert_sync(s, &rec), STORE_OK);
	struct job_insert j = job_template("0190a0a0-0000-7000-8000-00000000000b");
	struct job_result r;
	j.created_at = 100; /* older, accepted later */
	assert_int_equal(store_insert_job(s, &j, &r), STORE_OK);
	static const struct {
		const char *mode;
		const char *want;
	} cases[] = {{NULL, "ba"}, {"async", "b"}, {"sync", "a"}};
	for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
		struct list_query q = {cases[c].mode, NULL, 50, 0, NULL};
		json_object *list = NULL;
		char got[8] = "";
		assert_int_equal(list_json(s, &q, &list), STORE_OK);
		for (size_t i = 0; i < json_object_array_length(list) && i + 1 < sizeof got; i++) {
			const char *id = json_object_get_string(
			    json_object_object_get(json_object_array_get_idx(list, i), "id"));
			got[i] = id[strlen(id) - 1];
		}
		assert_string_equal(got, cases[c].want);
		json_object_put(list);
	}
	char names[200];
	query_text(s,
	           "SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_master "
	           "WHERE type = 'index' AND tbl_name = 'requests' ORDER BY name)",
	           names, sizeof names);
	assert_string_equal(names, "requests_async,requests_due,requests_idempotency,"
	                           "requests_lease_owner,requests_owner,"
	                           "sqlite_autoindex_requests_1");
	store_close(s);
}

/* ---- ownership -------------------------------------------------------------- */

/* The ids a list returns, as their last characters, newest first. */
static void list_tail(struct store *s, const struct list_query *q, char *got, size_t n)
{
	json_object *list = NULL;
	size_t i;

	assert_int_equal(list_json(s, q, &list), STORE_OK);
	for (i = 0; i < json_object_array_length(list) && i + 1 < n; i++) {
		const char *id = json_object_get_string(
		    json_object_object_get(json_object_array_get_idx(list, i), "id"));
		got[i] = id[strlen(id) - 1];
	}
	got[i] = '\0';
	json_object_put(list);
}

static void test_owner(void **state)
{
	(void)state;
	char path[512];
	fresh_path(path, sizeof path);
	struct store *s = open_ok(path);
	/* rows 1..6: sync alice, async alice, sync bob, async bob, sync open, async open */
	static const struct {
		const char *owner;
		bool async;
	} rows[] = {{"alice", false}, {"alice", true}, {"bob", false},
	            {"bob", true},    {NULL, false},   {NULL, true}};
	char ids[6][IDS_UUID_LEN + 1];
	for (size_t i = 0; i < 6; i++) {
		snprintf(ids[i], sizeof ids[i], "0190a0a0-0000-7000-8000-00000000000%zu", i + 1);
		if (rows[i].async) {
			struct job_insert j = job_template(ids[i]);
			struct job_result r;
			j.owner = rows[i].owner;
			assert_int_equal(store_insert_job(s, &j, &r), STORE_OK);
		} else {
			struct sync_record rec = {ids[i], "x", 1,           "00",         1.0,
			                          500,    501, "192.0.2.1", rows[i].owner};
			assert_int_equal(store_insert_sync(s, &rec), STORE_OK);
		}
	}
	/* get: own and admin (NULL) found; another owner's and an unowned record
	 * answer exactly as an unknown id */
	static const struct {
		size_t row;
		const char *owner;
		enum store_err want;
	} gets[] = {
	    {0, "alice", STORE_OK},       {1, "alice", STORE_OK},
	    {2, "alice", STORE_NOTFOUND}, {3, "alice", STORE_NOTFOUND},
	    {4, "alice", STORE_NOTFOUND}, {5, "alice", STORE_NOTFOUND},
	    {2, "bob", STORE_OK},         {1, "bob", STORE_NOTFOUND},
	    {0, NULL, STORE_OK},          {3, NULL, STORE_OK},
	    {4, NULL, STORE_OK},          {1, "alicE", STORE_NOTFOUND},
	    {1, "", STORE_NOTFOUND},
	};
	for (size_t i = 0; i < sizeof gets / sizeof gets[0]; i++) {
		json_object *o = NULL;
		enum store_err err = get_json(s, ids[gets[i].row], gets[i].owner, &o);
		if (err != gets[i].want)
			fail_msg("get %zu as %s: %s", i, gets[i].owner ? gets[i].owner : "(all)",
			         store_strerror(err));
		assert_true((o != NULL) == (gets[i].want == STORE_OK));
		json_object_put(o);
	}
	json_object *o = NULL;
	assert_int_equal(get_json(s, "0190a0a0-0000-7000-8000-0000000000ff", "alice", &o),
	                 STORE_NOTFOUND);
	assert_null(o);
	/* list: every mode x status statement, scoped and not */
	static const struct {
		const char *owner, *mode, *status, *want;
	} lists[] = {
	    {"alice", NULL, NULL, "21"},       {"bob", NULL, NULL, "43"},
	    {NULL, NULL, NULL, "654321"},      {"alice", "sync", NULL, "1"},
	    {"alice", "async", NULL, "2"},     {"bob", "async", NULL, "4"},
	    {"alice", NULL, "completed", "1"}, {"alice", NULL, "pending", "2"},
	    {"bob", "sync", "completed", "3"}, {"bob", "async", "queued", "4"},
	    {"bob", "async", "completed", ""}, {"carol", NULL, NULL, ""},
	    {NULL, "async", "queued", "642"},
	};
	for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++) {
		struct list_query q = {lists[i].mode, lists[i].status, 50, 0, lists[i].owner};
		char got[8];
		list_tail(s, &q, got, sizeof got);
		if (strcmp(got, lists[i].want) != 0)
			fail_msg("list %zu: got [%s], want [%s]", i, got, lists[i].want);
	}
	/* an owner's list walks its index, not the whole table */
	sqlite3_stmt *st = NULL;
	bool indexed = false;
	assert_int_equal(sqlite3_prepare_v2(db_of(s),
	                                    "EXPLAIN QUERY PLAN SELECT id FROM requests WHERE "
	                                    "owner = 'alice' ORDER BY seq DESC LIMIT 5",
	                                    -1, &st, NULL),
	                 SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW)
		indexed = indexed || strstr((const char *)sqlite3_column_text(st, 3),
		                            "USING INDEX requests_owner") != NULL;
	sqlite3_finalize(st);
	assert_true(indexed);
	store_close(s);
}

static void test_health(void **state)
{
	(void)state;
	struct store *s = populated();
	struct store_health h;
	assert_int_equal(store_health(s, 10000, &h), STORE_OK);
	assert_int_equal(h.queue_depth, 1);
	assert_false(h.deliverer_seen);
	assert_int_equal(h.deliverers_alive, 0);

	int64_t now = ids_now_ms();
	char sql[400];
	snprintf(sql, sizeof sql,
	         "INSERT INTO heartbeats VALUES ('old', 11, 1, %" PRId64 ", 4, 4, 9), "
	         "('new', 22, 2, %" PRId64 ", 1, 2, 3), ('mid', 33, 3, %" PRId64 ", 1, 3, 1)",
	         now - 60000, now, now - 1000);
	exec_ok(s, sql);
	assert_int_equal(store_health(s, 10000, &h), STORE_OK);
	assert_true(h.deliverer_seen);
	assert_int_equal(h.deliverer_pid, 22);
	assert_int_equal(h.deliverer_started_at, 2);
	assert_int_equal(h.deliverer_beat_ms, now);
	assert_int_equal(h.deliverers_alive, 2);
	assert_int_equal(h.busy_workers, 2);
	assert_int_equal(h.workers, 5);
	assert_int_equal(h.inflight, 4);
	assert_true(sqlite3_get_autocommit(db_of(s)));
	store_close(s);
}

static void test_errors(void **state)
{
	(void)state;
	static const struct {
		int rc;
		enum store_err want;
	} map[] = {
	    {SQLITE_OK, STORE_OK},
	    {SQLITE_ROW, STORE_OK},
	    {SQLITE_DONE, STORE_OK},
	    {SQLITE_BUSY, STORE_BUSY},
	    {SQLITE_BUSY_SNAPSHOT, STORE_BUSY},
	    {SQLITE_LOCKED, STORE_BUSY},
	    {SQLITE_NOMEM, STORE_NOMEM},
	    {SQLITE_FULL, STORE_FULL},
	    {SQLITE_IOERR_FSYNC, STORE_IO},
	    {SQLITE_CONSTRAINT, STORE_IO},
	    {SQLITE_CORRUPT, STORE_IO},
	};
	for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
		assert_int_equal(sq_from_rc(map[i].rc), map[i].want);
	for (int e = STORE_OK; e <= STORE_MIGRATION; e++) {
		assert_non_null(store_strerror(e));
		assert_string_not_equal(store_strerror(e), "unknown store error");
	}
	assert_string_equal(store_strerror((enum store_err)99), "unknown store error");
	assert_string_equal(store_errmsg(NULL), "no database connection");

	/* A failed commit leaves no transaction open. */
	char path[320];
	fresh_path(path, sizeof path);
	struct store *s = open_ok(path);
	assert_int_equal(store_begin(s), STORE_OK);
	assert_int_equal(store_begin(s), STORE_IO); /* nested BEGIN */
	assert_non_null(strstr(store_errmsg(s), "within a transaction"));
	store_rollback(s);
	assert_true(sqlite3_get_autocommit(db_of(s)));
	store_rollback(s); /* no-op outside a transaction */
	assert_int_equal(store_commit(s), STORE_IO);
	assert_true(sqlite3_get_autocommit(db_of(s)));
	store_close(s);
}

/* A full disk is STORE_FULL (transient: the API answers 503 with
 * Retry-After), never a job that looks accepted; once there is room again
 * the same connection writes, without a reopen. max_page_count stands in
 * for the disk (the integration test test_disk_full fills a real tmpfs). */
static void test_disk_full(void **state)
{
	(void)state;
	char path[320], id[37];
	fresh_path(path, sizeof path);
	struct store *s = open_ok(path);
	int64_t pages = query_int(s, "PRAGMA page_count");
	char sql[64];
	snprintf(sql, sizeof sql, "PRAGMA max_page_count = %lld", (long long)pages);
	exec_ok(s, sql);
	struct job_insert j = job_template(NULL);
	struct job_result r;
	enum store_err err = STORE_OK;
	int accepted = 0;
	for (int i = 0; i < 10000 && err == STORE_OK; i++) {
		err = insert_new(s, &j, &r, id);
		accepted += err == STORE_OK;
	}
	assert_int_equal(err, STORE_FULL);
	assert_true(store_err_transient(err));
	assert_true(sqlite3_get_autocommit(db_of(s))); /* nothing left open */
	int64_t rows = query_int(s, "SELECT count(*) FROM requests");
	assert_int_equal(rows, accepted); /* the refused job left nothing behind */
	assert_int_equal(query_int(s, "SELECT value FROM counters WHERE name = 'queue_depth'"),
	                 accepted);
	exec_ok(s, "PRAGMA max_page_count = 1000000");
	assert_int_equal(insert_new(s, &j, &r, id), STORE_OK);
	assert_int_equal(query_int(s, "SELECT count(*) FROM requests"), accepted + 1);
	store_close(s);
}

/* ---- fixture ----------------------------------------------------------------- */

static int make_tmpdir(void **state)
{
	(void)state;
	const char *base = getenv("TMPDIR");
	snprintf(tmpdir, sizeof tmpdir, "%s/consuma-store.XXXXXX", base && *base ? base : "/tmp");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_tmpdir(void **state)
{
	(void)state;
	static const char *const suffixes[] = {"", "-wal", "-shm", "-journal", ".wlock"};
	char p[400];
	for (int i = 1; i <= dbcount; i++)
		for (size_t k = 0; k < sizeof suffixes / sizeof suffixes[0]; k++) {
			snprintf(p, sizeof p, "%s/db%d.sqlite%s", tmpdir, i, suffixes[k]);
			unlink(p);
		}
	return rmdir(tmpdir) == 0 || errno == ENOENT ? 0 : -1;
}

/* ---- operations: redelivery, oldest pending (issue 13) -------------------- */

static int64_t depth_of(struct store *s)
{
	return query_int(s, "SELECT value FROM counters WHERE name='queue_depth'");
}

static void test_redeliver_one(void **state)
{
	(void)state;
	char path[320], id[IDS_UUID_LEN + 1], sql[256];
	fresh_path(path, sizeof path);
	struct store *s = open_ok(path);
	struct job_insert j = job_template(NULL);
	struct job_result r;
	enum store_redeliver out;
	int64_t seq = -1;
	assert_int_equal(insert_new(s, &j, &r, id), STORE_OK);

	/* unfinished: refused, nothing changes */
	assert_int_equal(store_redeliver_one(s, id, 5, &out, &seq), STORE_OK);
	assert_int_equal(out, STORE_REDELIVER_BUSY);
	assert_int_equal(depth_of(s), 1);
	/* failed after 3 attempts: back in the queue, counted, attempts kept */
	snprintf(sql, sizeof sql, "id = '%s'", id);
	finish_as(s, sql, 7, STORE_FAILED);
	exec_ok(s, "UPDATE requests SET attempts = 3"); /* not a counted column */
	assert_int_equal(depth_of(s), 0);
	assert_int_equal(query_int(s, "SELECT count(*) FROM host_pending"), 0);
	assert_int_equal(store_redeliver_one(s, id, 9000, &out, &seq), STORE_OK);
	assert_int_equal(out, STORE_REDELIVERED);
	assert_int_equal(seq, 1);
	assert_int_equal(depth_of(s), 1);
	assert_int_equal(query_int(s, "SELECT n FROM host_pending WHERE host='example.com'"), 1);
	assert_int_equal(query_int(s, "SELECT n FROM client_pending WHERE client='192.0.2.1'"), 1);
	assert_int_equal(query_int(s,
	                           "SELECT finished_at IS NULL AND next_attempt_at = 9000 AND "
	                           "attempts = 3 AND callback_status = 'retrying' FROM requests"),
	                 1);
	/* again while it is due: in progress */
	assert_int_equal(store_redeliver_one(s, id, 9001, &out, &seq), STORE_OK);
	assert_int_equal(out, STORE_REDELIVER_BUSY);
	/* it finishes again: counted down as any job */
	finish_where(s, "1", 9500);
	assert_int_equal(depth_of(s), 0);
	assert_int_equal(query_int(s, "SELECT count(*) FROM host_pending"), 0);
	/* unknown id; a sync record */
	assert_int_equal(
	    store_redeliver_one(s, "0190a0a0-0000-7000-8000-0000000000ff", 1, &out, &seq),
	    STORE_NOTFOUND);
	struct sync_record rec = {
	    "0190a0a0-0000-7000-8000-000000000001", "x", 1, "ab", 1.5, 5, 6, "192.0.2.1", NULL};
	assert_int_equal(store_insert_sync(s, &rec), STORE_OK);
	assert_int_equal(store_redeliver_one(s, rec.id, 1, &out, &seq), STORE_OK);
	assert_int_equal(out, STORE_REDELIVER_NOTJOB);
	assert_int_equal(depth_of(s), 0);
	/* a job counted under several keys is counted under each again, and
	 * its finish takes each off (a repeated key twice) */
	struct job_insert k = job_template(NULL);
	char kid[IDS_UUID_LEN + 1];
	k.pending_keys = "[\"example.com\",\"192.0.2.7/32\",\"192.0.2.7/32\"]";
	assert_int_equal(insert_new(s, &k, &r, kid), STORE_OK);
	assert_int_equal(query_int(s, "SELECT n FROM host_pending WHERE host='192.0.2.7/32'"), 2);
	snprintf(sql, sizeof sql, "id = '%s'", kid);
	finish_as(s, sql, 1, STORE_FAILED);
	assert_int_equal(query_int(s, "SELECT count(*) FROM host_pending"), 0);
	assert_int_equal(store_redeliver_one(s, kid, 5, &out, &seq), STORE_OK);
	assert_int_equal(out, STORE_REDELIVERED);
	assert_int_equal(query_int(s, "SELECT n FROM host_pending WHERE host='192.0.2.7/32'"), 2);
	assert_int_equal(query_int(s, "SELECT n FROM host_pending WHERE host='example.com'"), 1);
	finish_as(s, sql, 1, STORE_FAILED);
	assert_int_equal(query_int(s, "SELECT count(*) FROM host_pending"), 0);
	assert_int_equal(depth_of(s), 0);
	store_close(s);
}

static void test_redeliver_bulk(void **state)
{
	(void)state;
	char path[320], id[IDS_UUID_LEN + 1];
	fresh_path(path, sizeof path);
	struct store *s = open_ok(path);
	struct job_result r;
	/* created_at 1000..1009; even ones failed, 3 and 5 delivered, 1, 7, 9 unfinished;
	 * hosts a (i < 5) and b */
	for (int i = 0; i < 10; i++) {
		struct job_insert j = job_template(NULL);
		j.created_at = 1000 + i;
		j.callback_host = i < 5 ? "a.example" : "b.example";
		assert_int_equal(insert_new(s, &j, &r, id), STORE_OK);
	}
	finish_as(s, "created_at % 2 = 0", 2000, STORE_FAILED);
	finish_where(s, "created_at IN (1003, 1005)", 2000);
	assert_int_equal(depth_of(s), 3);
	static const struct {
		const char *status, *host;
		int64_t since, until, want;
	} cases[] = {
	    {"failed", NULL, 0, 5000, 5},           /* 1000 1002 1004 1006 1008 */
	    {"failed", NULL, 1002, 1006, 2},        /* since inclusive, until exclusive */
	    {"failed", "a.example", 0, 5000, 3},    /* 1000 1002 1004 */
	    {"failed", "b.example", 1007, 5000, 1}, /* 1008 */
	    {"failed", "c.example", 0, 5000, 0},    {"delivered", NULL, 0, 5000, 2},
	    {"failed", NULL, 1009, 5000, 0}, /* 1009 is unfinished */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct redeliver_query q = {cases[i].status, cases[i].since, cases[i].until,
		                            cases[i].host, 100};
		int64_t matched = -1, done = -1, min_seq = -1;
		assert_int_equal(store_redeliver_bulk(s, &q, true, 1, &matched, &done, &min_seq),
		                 STORE_OK);
		if (matched != cases[i].want)
			fail_msg("case %zu: matched %lld, want %lld", i, (long long)matched,
			         (long long)cases[i].want);
		assert_int_equal(done, 0);
	}
	assert_int_equal(depth_of(s), 3); /* dry runs wrote nothing */

	/* a real run bounded to 2: the oldest two, counted per host */
	struct redeliver_query q = {"failed", 0, 5000, NULL, 2};
	int64_t matched, done, min_seq;
	assert_int_equal(store_redeliver_bulk(s, &q, false, 7777, &matched, &done, &min_seq),
	                 STORE_OK);
	assert_int_equal(matched, 5);
	assert_int_equal(done, 2);
	assert_int_equal(min_seq, 1);
	assert_int_equal(depth_of(s), 5);
	char text[64];
	assert_string_equal(query_text(s,
	                               "SELECT group_concat(created_at) FROM (SELECT created_at "
	                               "FROM requests WHERE next_attempt_at = 7777 AND "
	                               "finished_at IS NULL ORDER BY seq)",
	                               text, sizeof text),
	                    "1000,1002");
	/* the rest, then nothing is left */
	q.max_jobs = 100;
	assert_int_equal(store_redeliver_bulk(s, &q, false, 7778, &matched, &done, &min_seq),
	                 STORE_OK);
	assert_int_equal(matched, 3);
	assert_int_equal(done, 3);
	assert_int_equal(min_seq, 5);
	assert_int_equal(depth_of(s), 8);
	assert_int_equal(query_int(s, "SELECT n FROM host_pending WHERE host='a.example'"), 4);
	assert_int_equal(query_int(s, "SELECT n FROM host_pending WHERE host='b.example'"), 4);
	assert_int_equal(store_redeliver_bulk(s, &q, false, 7779, &matched, &done, &min_seq),
	                 STORE_OK);
	assert_int_equal(matched, 0);
	assert_int_equal(done, 0);
	/* no room: nothing is put back */
	finish_as(s, "1", 3000, STORE_FAILED);
	/* every row finished: the rest is not counted */
	exec_ok(s, "UPDATE requests SET finished_at = 3000, callback_status = 'failed'");
	assert_int_equal(depth_of(s), 0);
	q.max_jobs = 0;
	assert_int_equal(store_redeliver_bulk(s, &q, false, 1, &matched, &done, &min_seq),
	                 STORE_OK);
	assert_int_equal(matched, 10);
	assert_int_equal(done, 0);
	assert_int_equal(depth_of(s), 0);
	store_close(s);
}

static void test_oldest_pending(void **state)
{
	(void)state;
	char path[320], id[IDS_UUID_LEN + 1];
	fresh_path(path, sizeof path);
	struct store *s = open_ok(path);
	struct job_result r;
	bool found = true;
	int64_t seq = -1, created = -1;

	assert_int_equal(store_oldest_pending(s, 0, 100, &found, &seq, &created), STORE_OK);
	assert_false(found);
	assert_int_equal(seq, 1); /* empty table: the mark is one past nothing */
	for (int i = 0; i < 6; i++) {
		struct job_insert j = job_template(NULL);
		j.created_at = 1000 + i;
		assert_int_equal(insert_new(s, &j, &r, id), STORE_OK);
	}
	struct sync_record rec = {
	    "0190a0a0-0000-7000-8000-000000000001", "x", 1, "ab", 1.5, 5, 6, "192.0.2.1", NULL};
	assert_int_equal(store_insert_sync(s, &rec), STORE_OK); /* seq 7, never pending */
	finish_where(s, "seq IN (1, 2, 4)", 1);
	/* the oldest retry is due later than a younger job: age is by acceptance */
	exec_ok(s, "UPDATE requests SET next_attempt_at = 99999 WHERE seq = 3");
	static const struct {
		int64_t mark, scan_max;
		bool found;
		int64_t seq, created;
	} cases[] = {
	    {0, 100, true, 3, 1002},  /* from scratch */
	    {1, 100, true, 3, 1002},  /* forward from a low mark */
	    {3, 100, true, 3, 1002},  /* at it */
	    {4, 100, true, 5, 1004},  /* a mark past it reads forward (redeliveries lower it) */
	    {1, 2, true, 3, 1002},    /* too far behind: from scratch */
	    {50, 100, true, 3, 1002}, /* past the newest row (a new database): from scratch */
	    {7, 100, true, 3, 1002},  /* nothing forward of the mark: from scratch */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		assert_int_equal(store_oldest_pending(s, cases[i].mark, cases[i].scan_max, &found,
		                                      &seq, &created),
		                 STORE_OK);
		if (found != cases[i].found || seq != cases[i].seq || created != cases[i].created)
			fail_msg("case %zu: found %d seq %lld created %lld", i, found,
			         (long long)seq, (long long)created);
	}
	finish_where(s, "1", 1);
	assert_int_equal(store_oldest_pending(s, 3, 100, &found, &seq, &created), STORE_OK);
	assert_false(found);
	assert_int_equal(seq, 8); /* one past the newest row */
	store_close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_open_close),
	    cmocka_unit_test(test_migrations_twice),
	    cmocka_unit_test(test_checks_without_lists),
	    cmocka_unit_test(test_newer_schema_refused),
	    cmocka_unit_test(test_migrations_concurrent),
	    cmocka_unit_test(test_insert_job_durable),
	    cmocka_unit_test(test_group_commit),
	    cmocka_unit_test(test_idempotency),
	    cmocka_unit_test(test_find_replay),
	    cmocka_unit_test(test_bounds),
	    cmocka_unit_test(test_counters),
	    cmocka_unit_test(test_get_request),
	    cmocka_unit_test(test_list_requests),
	    cmocka_unit_test(test_list_acceptance_order),
	    cmocka_unit_test(test_owner),
	    cmocka_unit_test(test_health),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_disk_full),
	    cmocka_unit_test(test_busy_waits),
	    cmocka_unit_test(test_concurrent_inserts),
	    cmocka_unit_test(test_pending_keys),
	    cmocka_unit_test(test_private_file),
	    cmocka_unit_test(test_open_keeps_locks),
	    cmocka_unit_test(test_redeliver_one),
	    cmocka_unit_test(test_redeliver_bulk),
	    cmocka_unit_test(test_oldest_pending),
	};
	return cmocka_run_group_tests(tests, make_tmpdir, remove_tmpdir);
}
