/*
 * store_sqlite: the SQLite backend of the store (store.h is the contract,
 * store_int.h the table of functions this file fills; the deliverer's half
 * is store_sqlite_queue.c).
 *
 * Connection set-up (store_open)
 *   sqlite3_open_v2 with SQLITE_OPEN_NOMUTEX: one connection belongs to one
 *   thread at a time, so SQLite's per-connection mutex would only cost.
 *   journal_mode=WAL (readers never block the writer, the writer never
 *   blocks readers), foreign_keys=ON, synchronous=NORMAL, then migrations.
 *   Setting WAL needs a lock of its own on a fresh file: when many processes
 *   open a new database at once it is retried until STORE_BUSY_TIMEOUT_MS.
 *   mmap_size: pages are read through a shared mapping, so the page cache
 *   another process's write invalidates is refilled without a pread per
 *   page. temp_store=MEMORY: statement journals, IN (SELECT ... json_each)
 *   lists and redelivery's set are temporary b-trees, which SQLite keeps
 *   in files by default (when a finish trigger still built one per job,
 *   sql/sqlite/005: 38 us a job with files, 26 us in memory). They hold a
 *   few keys each; redelivery's set is bounded by its max_jobs.
 *
 * Migrations
 *   sql/sqlite/NNN_*.sql, compiled in (migrations.h). PRAGMA user_version holds the
 *   last applied version. At open we read it; when it is behind we take the
 *   write lock (BEGIN IMMEDIATE), read it again (another process may have
 *   migrated meanwhile), run every newer script and set user_version in the
 *   same transaction, then commit: a crash leaves the old version whole. A
 *   database newer than the newest script we know is refused
 *   (STORE_MIGRATION) instead of being written by code that does not know
 *   its schema.
 *
 * Durability: group commit
 *   The connection runs synchronous=NORMAL. In WAL mode that writes a
 *   commit's frames to the WAL file (write(2), page cache) without syncing:
 *   the commit survives a killed process (the kernel has the data) but not
 *   a power cut. Only the async job insert carries a promise (a 202 means on
 *   disk), so store_insert_job commits at NORMAL and then store_wal_sync()
 *   fdatasyncs the WAL through SQLite's own handle for it
 *   (SQLITE_FCNTL_JOURNAL_POINTER, xSync(SQLITE_SYNC_NORMAL): the same call
 *   synchronous=FULL makes at every commit, including the one-time sync of
 *   the directory of a new WAL). In consuma-fcgi the commit and the sync
 *   are the committer's (store_commit.c): one transaction for every job
 *   waiting, the host's write lock (flock on <database>.wlock) and SQLite's
 *   released, then one fdatasync for the whole batch, then the 202s. The
 *   fsync (~0.1-0.5 ms) is outside the one-writer section, several
 *   processes' syncs overlap, and one sync answers many jobs.
 *   synchronous=FULL would sync inside COMMIT, holding SQLite's write lock,
 *   so every writer would wait for every fsync.
 *
 *   Why the job is on disk when store_wal_sync returns OK. Our commit appended
 *   frames F (ending in a commit frame) to the WAL file before COMMIT
 *   returned. At the moment our fdatasync starts, either
 *   (a) F are still in the WAL file at their offsets: fdatasync writes every
 *       dirty page of the file (also the frames and header before F, which
 *       recovery needs to validate F's checksum chain, and the file size)
 *       and returns after the device has them. Recovery after a power cut
 *       replays F. Or
 *   (b) F were overwritten: SQLite writes over WAL frames only after a WAL
 *       restart (a writer starting at frame 1 again; also truncation by
 *       wal_checkpoint(TRUNCATE) or the unlink at the last close), and it
 *       restarts only when checkpoints have backfilled every frame
 *       (nBackfill == mxFrame) and no reader uses the WAL. Every checkpoint
 *       that copies frames syncs the WAL first (so F were durable in the WAL
 *       before any copy), and the checkpoint that completes the backfill
 *       (mxSafeFrame == mxFrame, the only kind that makes nBackfill reach
 *       mxFrame, since mxFrame never shrinks before a restart) syncs the
 *       database file after its copy and before recording nBackfill; that
 *       fsync flushes every page copied into the file by any earlier
 *       partial checkpoint too (walCheckpoint() in SQLite 3.40). So F's
 *       pages are durable in the database before F can be overwritten.
 *       walCheckpoint() makes those syncs whenever the checkpointing
 *       connection runs synchronous NORMAL or FULL, which every consuma
 *       connection does (store_open; the sqlite3 shell defaults to FULL).
 *       Only synchronous=OFF would skip them: nothing here uses it.
 *   Either way F are on disk. The same holds for a replayed idempotency key:
 *   its answer names a job another process committed and may not have
 *   synced yet, so the replay syncs too (any connection's sync covers every
 *   frame written before it). A killed process between commit and sync
 *   never answered 202; its job is committed and will be delivered
 *   (at-least-once, as for any unanswered request).
 *   /sync records and the deliverer's bookkeeping stay NORMAL: losing their
 *   last commits to a power cut costs a record or a repeated delivery
 *   (at-least-once), never an accepted job.
 *
 * Busy handling
 *   Every write first takes the host's write lock (flock, see "the write
 *   lock" below), then BEGIN IMMEDIATE, which takes SQLite's write lock up
 *   front: waits for it (a writer without the flock, such as the sqlite3
 *   shell, or a checkpoint) go through the busy handler. (A deferred transaction
 *   that reads and then writes gets SQLITE_BUSY_SNAPSHOT in WAL mode without
 *   the handler ever being asked, when another writer committed since its
 *   snapshot.) The handler sleeps ~20 us, doubling to 1 ms, each sleep
 *   jittered by +-50% so contending processes do not wake in lockstep, and
 *   gives up after STORE_BUSY_TIMEOUT_MS: SQLite's own busy_timeout sleeps
 *   in whole milliseconds and more, far longer than a write lock is held.
 *
 * Status as the API shows it
 *   "status" is always the work status (queued, running, completed, failed)
 *   and "callback_status" the callback's (pending, delivering, delivered,
 *   retrying, failed; null for sync requests), in GET /requests/{id} and in
 *   every GET /requests item alike, so a client reads one field name the same
 *   way everywhere and sees both halves of an async job without a second
 *   call. The list's status filter matches either field: queued, running and
 *   completed are work states, pending, delivering, delivered and retrying
 *   are callback states, failed matches a failed work or a failed delivery.
 *
 * Statements are prepared once per connection (SQLITE_PREPARE_PERSISTENT)
 * and reset after each use. Not thread safe: one connection, one thread.
 */
#include "store_sqlite.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "ids.h"
#include "log.h"
#include "migrations.h"
#include "url.h"

enum stmt_id {
	ST_BEGIN,
	ST_BEGIN_READ,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_INSERT_SYNC,
	ST_IDEM_FIND,
	ST_IDEM_FORGET,
	ST_DEPTH,
	ST_CLIENT_PENDING,
	ST_HOST_PENDING,
	ST_COUNT_DEPTH,
	ST_COUNT_CLIENT,
	ST_DROP_CLIENT,
	ST_COUNT_HOST,
	ST_DROP_HOST,
	ST_COUNT_DRAIN,
	ST_TRIM_DRAIN,
	ST_INSERT_JOB,
	ST_GET,
	ST_ATTEMPTS,
	ST_LIST_ALL,
	ST_LIST_MODE,
	ST_LIST_STATUS,
	ST_LIST_MODE_STATUS,
	ST_LIST_SYNC,
	ST_LIST_SYNC_STATUS,
	ST_LIST_ASYNC,
	ST_LIST_ASYNC_STATUS,
	/* the eight above in the same order, for one owner (ST_LIST_OWNED) */
	ST_OWN_ALL,
	ST_OWN_MODE,
	ST_OWN_STATUS,
	ST_OWN_MODE_STATUS,
	ST_OWN_SYNC,
	ST_OWN_SYNC_STATUS,
	ST_OWN_ASYNC,
	ST_OWN_ASYNC_STATUS,
	ST_HEARTBEATS,
	ST__COUNT
};

#define LIST_COLUMNS                                                                               \
	"SELECT id, mode, status, callback_status, duration_ms, created_at FROM requests "
/* Newest first is acceptance order: seq is the rowid (sql/sqlite/004_lean_intake.sql).
 * The mode is spelled as a literal where it can be, so the planner can use
 * the partial index requests_async (a bound parameter cannot imply it). */
#define LIST_ORDER   " ORDER BY seq DESC LIMIT :limit OFFSET :offset"
#define STATUS_MATCH "(status = :status OR callback_status = :status)"
/* An owner's list walks requests_owner (sql/sqlite/006_owner.sql). */
#define ST_LIST_OWNED (ST_OWN_ALL - ST_LIST_ALL)
/* The eight lists of prefix P (ST_LIST_ or ST_OWN_): W is the scope's
 * WHERE ("" or one owner's), A what joins the next condition to it. */
#define LIST_STMTS(P, W, A)                                                                        \
	[P##ALL] = LIST_COLUMNS W LIST_ORDER,                                                      \
	[P##MODE] = LIST_COLUMNS W A "mode = :mode" LIST_ORDER,                                    \
	[P##STATUS] = LIST_COLUMNS W A STATUS_MATCH LIST_ORDER,                                    \
	[P##MODE_STATUS] = LIST_COLUMNS W A "mode = :mode AND " STATUS_MATCH LIST_ORDER,           \
	[P##SYNC] = LIST_COLUMNS W A "mode = 'sync'" LIST_ORDER,                                   \
	[P##SYNC_STATUS] = LIST_COLUMNS W A "mode = 'sync' AND " STATUS_MATCH LIST_ORDER,          \
	[P##ASYNC] = LIST_COLUMNS W A "mode = 'async'" LIST_ORDER,                                 \
	[P##ASYNC_STATUS] = LIST_COLUMNS W A "mode = 'async' AND " STATUS_MATCH LIST_ORDER

static const char *const stmt_sql[ST__COUNT] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_BEGIN_READ] = "BEGIN DEFERRED",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_INSERT_SYNC] = "INSERT INTO requests (id, mode, status, input_data, iterations, "
                       "result, duration_ms, created_at, started_at, completed_at, "
                       "finished_at, client_addr, owner) VALUES (?1, 'sync', 'completed', ?2, "
                       "?3, ?4, ?5, ?6, ?6, ?7, ?7, ?8, ?9)",
    [ST_IDEM_FIND] = "SELECT seq, id, status, body_hash, created_at FROM requests "
                     "WHERE client_addr IS ?1 AND idempotency_key = ?2",
    [ST_IDEM_FORGET] = "UPDATE requests SET idempotency_key = NULL WHERE seq = ?1",
    [ST_DEPTH] = "SELECT value FROM counters WHERE name = 'queue_depth'",
    [ST_CLIENT_PENDING] = "SELECT n FROM client_pending WHERE client = coalesce(?1, '')",
    [ST_HOST_PENDING] = "SELECT n FROM host_pending WHERE host = ?1",
    /* the transaction's counts, at commit (?1 key, ?2 change; see sq_counts):
     * a count that reaches 0 leaves its table */
    [ST_COUNT_DEPTH] = "UPDATE counters SET value = value + ?2 WHERE name = 'queue_depth'",
    [ST_COUNT_CLIENT] = "INSERT INTO client_pending (client, n) VALUES (?1, ?2) "
                        "ON CONFLICT (client) DO UPDATE SET n = n + excluded.n",
    [ST_DROP_CLIENT] = "DELETE FROM client_pending WHERE client = ?1 AND n <= 0",
    [ST_COUNT_HOST] = "INSERT INTO host_pending (host, n) VALUES (?1, ?2) "
                      "ON CONFLICT (host) DO UPDATE SET n = n + excluded.n",
    [ST_DROP_HOST] = "DELETE FROM host_pending WHERE host = ?1 AND n <= 0",
    [ST_COUNT_DRAIN] = "INSERT INTO drain (second, n) VALUES (?1, ?2) "
                       "ON CONFLICT (second) DO UPDATE SET n = n + excluded.n",
    /* the drain keeps the last hour (fcgi-app/limits.c reads 10 s) */
    [ST_TRIM_DRAIN] = "DELETE FROM drain WHERE second < ?2 - 3600",
    [ST_INSERT_JOB] = "INSERT INTO requests (id, mode, status, callback_status, "
                      "input_data, iterations, callback_url, callback_host, client_addr, "
                      "idempotency_key, body_hash, created_at, next_attempt_at, pending_keys, "
                      "owner, claim_origin) VALUES (?1, 'async', 'queued', 'pending', ?2, ?3, ?4, "
                      "?5, ?6, ?7, ?8, ?9, ?9, ?10, ?11, ?12)",
    [ST_GET] = "SELECT seq, id, mode, status, callback_status, iterations, result, "
               "duration_ms, input_data, callback_url, created_at, started_at, "
               "completed_at, finished_at, attempts, next_attempt_at, last_error "
               "FROM requests WHERE id = ?1 AND (?2 IS NULL OR owner = ?2)",
    [ST_ATTEMPTS] = "SELECT number, state, started_at, duration_ms, http_status, "
                    "error_class, error_message, next_attempt_at FROM attempts "
                    "WHERE request_seq = ?1 ORDER BY number",
    LIST_STMTS(ST_LIST_, "", "WHERE "),
    LIST_STMTS(ST_OWN_, "WHERE owner = :owner", " AND "),
    [ST_HEARTBEATS] = "SELECT owner, pid, started_at, beat_at, busy_workers, workers, "
                      "inflight FROM heartbeats ORDER BY beat_at DESC",
};

_Static_assert((int)ST__COUNT <= SQ_STMT_MAX, "struct sq holds every statement");

#define BUSY_FIRST_US 20
#define BUSY_MAX_US   1000
/* Reads through a shared mapping of the database file (store.h). */
#define STORE_MMAP_BYTES "268435456"

enum store_err sq_from_rc(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return STORE_OK;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return STORE_BUSY;
	case SQLITE_NOMEM:
		return STORE_NOMEM;
	case SQLITE_FULL:
		return STORE_FULL;
	default:
		return STORE_IO;
	}
}

/* Records SQLite's message for rc (read before a rollback replaces it). */
enum store_err sq_fail(struct sq *s, int rc, const char *what)
{
	store_set_msg(&s->base, "%s: %s (%d)", what, sqlite3_errmsg(s->db), rc);
	return sq_from_rc(rc);
}

static void sleep_us(int64_t us)
{
	struct timespec ts = {.tv_sec = us / 1000000, .tv_nsec = (us % 1000000) * 1000};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* SQLite calls this while a lock it needs is held elsewhere; count restarts
 * at 0 for every new lock wait. Returning 0 makes the call fail with
 * SQLITE_BUSY. */
static int busy_wait(void *arg, int count)
{
	struct sq *s = arg;
	int64_t now = ids_mono_ns();
	if (count == 0)
		s->busy_start_ns = now;
	if (now - s->busy_start_ns >= (int64_t)STORE_BUSY_TIMEOUT_MS * 1000000)
		return 0;
	int64_t base = BUSY_FIRST_US;
	for (int i = 0; i < count && base < BUSY_MAX_US; i++)
		base *= 2;
	if (base > BUSY_MAX_US)
		base = BUSY_MAX_US;
	sleep_us(base / 2 + (int64_t)(ids_xorshift64(&s->rng) % (uint64_t)base));
	return 1;
}

/* The cached statement id, prepared on first use; NULL with s->base.msg set on
 * failure. */
static sqlite3_stmt *stmt(struct sq *s, enum stmt_id id, int *rc)
{
	if (s->stmt[id]) {
		*rc = SQLITE_OK;
		return s->stmt[id];
	}
	*rc = sqlite3_prepare_v3(s->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &s->stmt[id],
	                         NULL);
	if (*rc != SQLITE_OK) {
		sq_fail(s, *rc, "prepare");
		sqlite3_finalize(s->stmt[id]);
		s->stmt[id] = NULL;
	}
	return s->stmt[id];
}

static void done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/* Runs a cached statement that returns no rows. */
static int run(struct sq *s, enum stmt_id id)
{
	int rc;
	sqlite3_stmt *st = stmt(s, id, &rc);
	if (!st)
		return rc;
	rc = sqlite3_step(st);
	done(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? SQLITE_OK : rc;
}

static int bind_text(sqlite3_stmt *st, int i, const char *v)
{
	return v ? sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

/* Binds by name when the statement has that parameter. */
static int bind_named_text(sqlite3_stmt *st, const char *name, const char *v)
{
	int i = sqlite3_bind_parameter_index(st, name);
	return i > 0 ? bind_text(st, i, v) : SQLITE_OK;
}

static int bind_named_int(sqlite3_stmt *st, const char *name, int64_t v)
{
	int i = sqlite3_bind_parameter_index(st, name);
	return i > 0 ? sqlite3_bind_int64(st, i, v) : SQLITE_OK;
}

/* ---- transactions ------------------------------------------------------ */

static void sq_rollback(struct store *b);
static void counts_clear(struct sq *s);
static enum store_err counts_write(struct sq *s);

static bool is_file_path(const char *path);

/* ---- the write lock ----------------------------------------------------
 * Every writer on the host (each committer, and the deliverer's
 * connections) takes the same flock on <database>.wlock around its
 * BEGIN IMMEDIATE ... COMMIT: they take turns in the kernel's queue, which
 * wakes the next one the moment the lock is free, instead of spinning in
 * the busy handler (sleeps of 20 us to 1 ms, retried). The committer's
 * fdatasync follows outside it (store_commit.c). Without the lock file (an
 * in-memory database, a path too long, no permission) transactions go on
 * unserialized: SQLite's own lock and the busy handler still guard them. */

static void lock_hold(struct sq *s)
{
	if (s->lock_fd < 0 && is_file_path(s->path)) {
		char path[sizeof s->path + 8];
		snprintf(path, sizeof path, "%s.wlock", s->path);
		s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (s->lock_fd < 0)
			log_event(L_WARN, "store.writelock_unavailable", "path=%s why=%s",
			          log_q(path), log_q(strerror(errno)));
	}
	if (s->lock_fd < 0)
		return;
	while (flock(s->lock_fd, LOCK_EX) != 0)
		if (errno != EINTR)
			return;
}

static void lock_drop(struct sq *s)
{
	if (s->lock_fd >= 0)
		flock(s->lock_fd, LOCK_UN);
}

static enum store_err sq_begin(struct store *b)
{
	struct sq *s = SQ(b);
	s->base.msg[0] = '\0';
	counts_clear(s);
	lock_hold(s);
	int rc = run(s, ST_BEGIN);
	if (rc != SQLITE_OK) {
		lock_drop(s);
		return sq_fail(s, rc, "begin immediate");
	}
	return STORE_OK;
}

/* On failure the transaction is rolled back, so the connection is never left
 * inside one. */
static enum store_err sq_commit(struct store *b)
{
	struct sq *s = SQ(b);
	enum store_err err = counts_write(s);
	if (err == STORE_OK) {
		int rc = run(s, ST_COMMIT);
		if (rc == SQLITE_OK) {
			counts_clear(s);
			lock_drop(s);
			return STORE_OK;
		}
		err = sq_fail(s, rc, "commit");
	}
	sq_rollback(&s->base);
	return err;
}

static void sq_rollback(struct store *b)
{
	struct sq *s = SQ(b);
	if (!s)
		return;
	counts_clear(s);
	if (!sqlite3_get_autocommit(s->db)) {
		int rc = run(s, ST_ROLLBACK);
		if (rc != SQLITE_OK)
			log_event(L_WARN, "store.rollback_failed", "rc=%d error=%s", rc,
			          log_q(sqlite3_errmsg(s->db)));
	}
	lock_drop(s); /* also when SQLite rolled back by itself (SQLITE_FULL) */
}

static enum store_err begin_read(struct sq *s)
{
	int rc = run(s, ST_BEGIN_READ);
	return rc == SQLITE_OK ? STORE_OK : sq_fail(s, rc, "begin");
}

enum store_err sq_step_done(struct sq *s, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);
	enum store_err err = rc == SQLITE_DONE ? STORE_OK : sq_fail(s, rc, what);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return err;
}

/* The committer's batch is a plain transaction under the write lock
 * (.batch_begin and .batch_abort are sq_begin and sq_rollback). */
static enum store_err sq_batch_commit(struct store *b, size_t jobs)
{
	(void)jobs; /* the doorbell is rung by the caller, after the 202s */
	return sq_commit(b);
}

/* ---- open, migrate, close --------------------------------------------- */

static int exec_sql(struct sq *s, const char *sql, const char *what)
{
	char *emsg = NULL;
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, &emsg);
	if (rc != SQLITE_OK)
		store_set_msg(&s->base, "%s: %s (%d)", what, emsg ? emsg : sqlite3_errmsg(s->db),
		              rc);
	sqlite3_free(emsg);
	return rc;
}

/* journal_mode=WAL needs an exclusive lock on a database not yet in WAL
 * mode; concurrent first opens may see SQLITE_BUSY without the busy handler
 * being asked, so retry here, bounded by the same timeout. */
static enum store_err set_wal(struct sq *s)
{
	int64_t deadline = ids_mono_ns() + (int64_t)STORE_BUSY_TIMEOUT_MS * 1000000;
	for (int tries = 0;; tries++) {
		sqlite3_stmt *st = NULL;
		int rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
		if (rc == SQLITE_OK)
			rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			const char *mode = (const char *)sqlite3_column_text(st, 0);
			bool wal = mode && strcmp(mode, "wal") == 0;
			if (!wal)
				store_set_msg(&s->base, "journal_mode=WAL refused, the mode is %s",
				              mode ? mode : "unknown");
			sqlite3_finalize(st);
			return wal ? STORE_OK : STORE_IO;
		}
		enum store_err err = sq_fail(s, rc, "journal_mode=WAL");
		sqlite3_finalize(st);
		if (err != STORE_BUSY || ids_mono_ns() >= deadline)
			return err;
		sleep_us(tries < 10 ? 100 : 1000);
	}
}

static int newest_migration(void)
{
	int v = 0;
	for (size_t i = 0; i < consuma_sqlite_migrations_count; i++)
		if (consuma_sqlite_migrations[i].version > v)
			v = consuma_sqlite_migrations[i].version;
	return v;
}

/* PRAGMA name's value: user_version (the migrations applied) or
 * schema_version (SQLite's schema cookie). */
static int read_pragma_int(struct sq *s, const char *name, int *value)
{
	char sql[64];
	sqlite3_stmt *st = NULL;
	snprintf(sql, sizeof sql, "PRAGMA %s", name);
	int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*value = sqlite3_column_int(st, 0);
		rc = SQLITE_OK;
	} else {
		sq_fail(s, rc, name);
	}
	sqlite3_finalize(st);
	return rc;
}

static int read_user_version(struct sq *s, int *version)
{
	return read_pragma_int(s, "user_version", version);
}

/* A migration may edit the stored schema text (009 does, with
 * writable_schema), which SQLite does not notice by itself: one more
 * schema_version makes every connection parse the schema again, this one
 * as soon as it next prepares a statement. */
static int bump_schema_version(struct sq *s)
{
	char pragma[64];
	int v = 0;
	int rc = read_pragma_int(s, "schema_version", &v);
	if (rc != SQLITE_OK)
		return rc;
	snprintf(pragma, sizeof pragma, "PRAGMA schema_version = %d", v + 1);
	return exec_sql(s, pragma, "raise schema_version");
}

static enum store_err check_version(struct sq *s, int current, int newest)
{
	if (current <= newest)
		return STORE_OK;
	store_set_msg(&s->base, "the database schema is version %d, newer than this program's %d",
	              current, newest);
	return STORE_MIGRATION;
}

static enum store_err migrate(struct sq *s)
{
	int newest = newest_migration();
	int current = 0;
	enum store_err err;
	int rc = read_user_version(s, &current);
	if (rc != SQLITE_OK)
		return sq_from_rc(rc);
	err = check_version(s, current, newest);
	if (err != STORE_OK || current == newest)
		return err;

	err = sq_begin(&s->base);
	if (err != STORE_OK)
		return err;
	rc = read_user_version(s, &current); /* another process may have migrated */
	if (rc != SQLITE_OK) {
		err = sq_from_rc(rc);
		goto out;
	}
	err = check_version(s, current, newest);
	if (err != STORE_OK || current == newest)
		goto out;
	int from = current;
	for (int v = current + 1; v <= newest; v++) {
		for (size_t i = 0; i < consuma_sqlite_migrations_count; i++) {
			const struct migration *m = &consuma_sqlite_migrations[i];
			if (m->version != v)
				continue;
			if (exec_sql(s, m->sql, m->name) != SQLITE_OK) {
				err = STORE_MIGRATION;
				goto out;
			}
		}
		/* after each script: the next one parses the schema this one
		 * wrote (an ALTER TABLE after 009's edit of the text) */
		rc = bump_schema_version(s);
		if (rc != SQLITE_OK) {
			err = sq_from_rc(rc);
			goto out;
		}
	}
	char pragma[64];
	snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", newest);
	rc = exec_sql(s, pragma, "set user_version");
	if (rc != SQLITE_OK) {
		err = sq_from_rc(rc);
		goto out;
	}
	err = sq_commit(&s->base);
	if (err == STORE_OK)
		log_event(L_INFO, "store.migrated", "from=%d to=%d", from, newest);
out:
	sq_rollback(&s->base);
	return err;
}

/* The database holds every client's data: a file this open creates is made
 * owner-only, whatever the umask, at the moment SQLite creates it (its
 * -wal and -shm files copy the database file's mode), so no other user can
 * open it even briefly. Done with the umask, not open()+close() of our own:
 * closing any descriptor of the file would drop every POSIX lock this
 * process holds on it, under its other threads' connections; and not with
 * a chmod afterwards, which would leave a window. The umask is process-wide:
 * tightening it for that moment can only make another thread's file more
 * private, and two threads doing so at once can at worst leave it at 077.
 * An existing file keeps its mode. */
static bool is_file_path(const char *path)
{
	return path != NULL && path[0] != '\0' && strcmp(path, ":memory:") != 0 &&
	       strncmp(path, "file:", 5) != 0;
}

static void sq_close(struct store *b);

/* Once per process, before SQLite's first use: no memory statistics.
 * With them on (the library's default) every sqlite3_malloc and
 * sqlite3_free takes a global mutex to count bytes nothing here reads,
 * and a job's insert makes dozens of them; measured in README,
 * Benchmarks. A process that used SQLite before (sqlite3_config then
 * refuses, SQLITE_MISUSE) keeps the defaults, which are as correct. */
static void sq_configure(void)
{
	(void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

static struct store *sq_open(const char *path, enum store_err *err, char *errmsg, size_t errlen)
{
	static pthread_once_t configured = PTHREAD_ONCE_INIT;
	enum store_err e = STORE_OK;
	(void)pthread_once(&configured, sq_configure);
	struct sq *s = cz_calloc(1, sizeof *s);
	if (!s) {
		e = STORE_NOMEM;
		if (errmsg && errlen)
			snprintf(errmsg, errlen, "out of memory");
		goto out;
	}
	s->base.ops = &store_sqlite_ops;
	s->lock_fd = -1;
	if (snprintf(s->path, sizeof s->path, "%s", path) >= (int)sizeof s->path) {
		e = STORE_IO;
		store_set_msg(&s->base, "the database path is too long");
		goto out;
	}
	s->rng = (uint64_t)ids_mono_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)s;

	struct stat before;
	bool creating = is_file_path(path) && stat(path, &before) != 0 && errno == ENOENT;
	mode_t umask_was = creating ? umask(077) : 0;
	int rc = sqlite3_open_v2(
	    path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (creating)
		umask(umask_was);
	if (rc != SQLITE_OK) {
		if (s->db)
			e = sq_fail(s, rc, "open");
		else {
			e = STORE_NOMEM;
			store_set_msg(&s->base, "open: out of memory");
		}
		if (e == STORE_OK)
			e = STORE_IO;
		goto out;
	}
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_handler(s->db, busy_wait, s);

	e = set_wal(s);
	if (e != STORE_OK)
		goto out;
	if (exec_sql(s,
	             "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; "
	             "PRAGMA mmap_size = " STORE_MMAP_BYTES "; PRAGMA temp_store = MEMORY",
	             "pragmas") != SQLITE_OK) {
		e = STORE_IO;
		goto out;
	}
	e = migrate(s);
out:
	if (e != STORE_OK && s) {
		if (errmsg && errlen)
			snprintf(errmsg, errlen, "%s: %s", path,
			         s->base.msg[0] ? s->base.msg : store_strerror(e));
		sq_close(&s->base);
		s = NULL;
	}
	if (err)
		*err = e;
	return s ? &s->base : NULL;
}

static void sq_close(struct store *b)
{
	struct sq *s = SQ(b);
	if (!s)
		return;
	for (int i = 0; i < ST__COUNT; i++)
		sqlite3_finalize(s->stmt[i]);
	sq_queue_finalize(s);
	if (s->db) {
		sq_rollback(&s->base);
		int rc = sqlite3_close(s->db);
		if (rc != SQLITE_OK) /* a statement left unfinalized */
			log_event(L_WARN, "store.close_failed", "rc=%d error=%s", rc,
			          log_q(sqlite3_errmsg(s->db)));
	}
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	counts_clear(s);
	cz_free(s);
}

static const char *sq_errmsg(struct store *b)
{
	return sqlite3_errmsg(SQ(b)->db);
}

/* ---- writes ------------------------------------------------------------ */

static enum store_err sq_sync_record_in_tx(struct store *b, const struct sync_record *r)
{
	struct sq *s = SQ(b);
	enum store_err err = STORE_OK;
	int rc;
	sqlite3_stmt *st = stmt(s, ST_INSERT_SYNC, &rc);
	if (!st)
		return sq_from_rc(rc);
	bind_text(st, 1, r->id);
	bind_text(st, 2, r->input_data);
	sqlite3_bind_int64(st, 3, r->iterations);
	bind_text(st, 4, r->result);
	sqlite3_bind_double(st, 5, r->duration_ms);
	sqlite3_bind_int64(st, 6, r->created_at);
	sqlite3_bind_int64(st, 7, r->completed_at);
	bind_text(st, 8, r->client_addr);
	bind_text(st, 9, r->owner);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		err = sq_fail(s, rc, "insert sync record");
	done(st);
	return err;
}

static bool sq_in_tx(struct store *b)
{
	struct sq *s = SQ(b);
	return !sqlite3_get_autocommit(s->db);
}

/* Reads a counter's row through a cached statement (0 when it has none);
 * arg is the key, NULL for ST_DEPTH. */
static int read_count(struct sq *s, enum stmt_id id, const char *arg, int64_t *out)
{
	int rc;
	sqlite3_stmt *st = stmt(s, id, &rc);
	if (!st)
		return rc;
	if (arg)
		bind_text(st, 1, arg);
	rc = sqlite3_step(st);
	*out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		rc = SQLITE_OK;
	else
		sq_fail(s, rc, "read counter");
	done(st);
	return rc;
}

static void copy_text(char *dst, size_t size, const unsigned char *src)
{
	snprintf(dst, size, "%s", src ? (const char *)src : "");
}

/* Reads job's key. *found: a live key (res filled; STORE_CONFLICT when
 * the body differs); else *stale_seq is the row of an expired key, or 0. */
static enum store_err read_key(struct sq *s, const struct job_insert *job, struct job_result *res,
                               bool *found, int64_t *stale_seq)
{
	int rc;
	enum store_err err = STORE_OK;
	*found = false;
	*stale_seq = 0;
	sqlite3_stmt *st = stmt(s, ST_IDEM_FIND, &rc);
	if (!st)
		return sq_from_rc(rc);
	bind_text(st, 1, job->client_addr);
	bind_text(st, 2, job->idempotency_key);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		int64_t age = job->created_at - sqlite3_column_int64(st, 4);
		if (job->idempotency_ttl_ms > 0 && age >= job->idempotency_ttl_ms) {
			*stale_seq = sqlite3_column_int64(st, 0);
		} else {
			const char *hash = (const char *)sqlite3_column_text(st, 3);
			bool same = (!hash && !job->body_hash) ||
			            (hash && job->body_hash && strcmp(hash, job->body_hash) == 0);
			*found = true;
			copy_text(res->id, sizeof res->id, sqlite3_column_text(st, 1));
			copy_text(res->status, sizeof res->status, sqlite3_column_text(st, 2));
			res->replayed = true;
			if (!same) {
				store_set_msg(&s->base,
				              "idempotency key reused with a different body");
				err = STORE_CONFLICT;
			}
		}
	} else if (rc != SQLITE_DONE) {
		err = sq_fail(s, rc, "find idempotency key");
	}
	done(st);
	return err;
}

/* Looks the key up inside the write transaction. *found: 1 a live key
 * (res filled, or STORE_CONFLICT), 0 no key (an expired one is cleared). */
static enum store_err find_key(struct sq *s, const struct job_insert *job, struct job_result *res,
                               bool *found)
{
	int rc;
	int64_t stale_seq = 0;
	enum store_err err = read_key(s, job, res, found, &stale_seq);
	if (err != STORE_OK || stale_seq == 0)
		return err;

	sqlite3_stmt *st = stmt(s, ST_IDEM_FORGET, &rc);
	if (!st)
		return sq_from_rc(rc);
	sqlite3_bind_int64(st, 1, stale_seq);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		err = sq_fail(s, rc, "forget idempotency key");
	done(st);
	return err;
}

/* store_find_replay's read: one statement, its own read transaction. */
static enum store_err sq_find_replay(struct store *b, const struct job_insert *job,
                                     struct job_result *res)
{
	bool found = false;
	int64_t stale_seq = 0;
	enum store_err err = read_key(SQ(b), job, res, &found, &stale_seq);
	if (err == STORE_OK && !found)
		err = STORE_NOTFOUND;
	return err;
}

/* ---- the transaction's counts -------------------------------------------
 * The counter tables (queue depth, pending jobs per client and per
 * destination key, jobs finished per second) change with every async job
 * that is enqueued or finishes. Row triggers kept them until
 * sql/sqlite/010_counts_by_the_store.sql: several statements per job, 9 for
 * a job that finished, where one per key per transaction does (a flush of
 * the deliverer or a batch of the committer shares one client and a few
 * keys). The store now counts in memory (struct sq_counts) and writes the
 * sums at commit, inside the transaction, so the tables stay exact at
 * every commit as before; a rollback drops them with the rows. The intake
 * bounds read a counter once per transaction and add what the transaction
 * changed, so a batch's jobs count against each other as they did. */

static const char *client_key(const char *client_addr)
{
	return client_addr ? client_addr : "";
}

static void counts_clear(struct sq *s)
{
	struct sq_counts *c = &s->counts;
	tallies_clear(&c->clients);
	tallies_clear(&c->hosts);
	cz_free(c->drained);
	memset(c, 0, sizeof *c);
}

static enum store_err count_keys(struct sq *s, int sign, const char *client_addr,
                                 const struct tally_keys *k, int64_t finished_at)
{
	struct sq_counts *c = &s->counts;
	struct tally *t = tally_get(&c->clients, client_key(client_addr), 0, false);
	if (!t)
		return STORE_NOMEM;
	for (size_t i = 0; i < k->n; i++)
		if (!tally_get(&c->hosts, k->v[i], 0, false))
			return STORE_NOMEM;
	struct sq_drained *d = NULL;
	if (sign < 0) {
		int64_t second = finished_at / 1000;
		for (size_t i = 0; !d && i < c->ndrained; i++)
			if (c->drained[i].second == second)
				d = &c->drained[i];
		if (!d) {
			if (!cz_grow(&c->drained, &c->capdrained, c->ndrained, sizeof *c->drained))
				return STORE_NOMEM;
			d = &c->drained[c->ndrained++];
			*d = (struct sq_drained){.second = second};
		}
		d->n++;
	}
	/* every allocation is done: the counts change together */
	c->depth_delta += sign;
	t->delta += sign;
	for (size_t i = 0; i < k->n; i++)
		tally_find(&c->hosts, k->v[i])->delta += sign;
	return STORE_OK;
}

enum store_err sq_count_job(struct sq *s, int sign, const char *client_addr,
                            const char *pending_keys, const char *callback_host,
                            int64_t finished_at)
{
	struct tally_keys k;
	enum store_err err = tally_keys_of(&s->base, pending_keys, callback_host, &k);
	if (err == STORE_OK)
		err = count_keys(s, sign, client_addr, &k, finished_at);
	tally_keys_clear(&k);
	return err;
}

/* Runs a counting statement: ?1 the key (text, or the number k1 when key
 * is NULL), ?2 v. */
static enum store_err write_count(struct sq *s, enum stmt_id id, const char *key, int64_t k1,
                                  int64_t v)
{
	int rc;
	sqlite3_stmt *st = stmt(s, id, &rc);
	if (!st)
		return sq_from_rc(rc);
	if (key)
		bind_text(st, 1, key);
	else
		sqlite3_bind_int64(st, 1, k1);
	sqlite3_bind_int64(st, 2, v);
	return sq_step_done(s, st, "write counters");
}

static enum store_err write_tallies(struct sq *s, const struct tallies *t, enum stmt_id count,
                                    enum stmt_id drop)
{
	enum store_err err = STORE_OK;
	for (size_t i = 0; err == STORE_OK && i < t->n; i++) {
		if (t->v[i].delta == 0)
			continue;
		err = write_count(s, count, t->v[i].key, 0, t->v[i].delta);
		if (err == STORE_OK && t->v[i].delta < 0)
			err = write_count(s, drop, t->v[i].key, 0, 0);
	}
	return err;
}

/* Writes the open transaction's counts (sq_commit, before COMMIT). */
static enum store_err counts_write(struct sq *s)
{
	const struct sq_counts *c = &s->counts;
	enum store_err err = STORE_OK;
	if (c->depth_delta != 0)
		err = write_count(s, ST_COUNT_DEPTH, NULL, 0, c->depth_delta);
	if (err == STORE_OK)
		err = write_tallies(s, &c->clients, ST_COUNT_CLIENT, ST_DROP_CLIENT);
	if (err == STORE_OK)
		err = write_tallies(s, &c->hosts, ST_COUNT_HOST, ST_DROP_HOST);
	int64_t newest = INT64_MIN;
	for (size_t i = 0; err == STORE_OK && i < c->ndrained; i++) {
		err = write_count(s, ST_COUNT_DRAIN, NULL, c->drained[i].second, c->drained[i].n);
		if (c->drained[i].second > newest)
			newest = c->drained[i].second;
	}
	if (err == STORE_OK && c->ndrained > 0)
		err = write_count(s, ST_TRIM_DRAIN, NULL, 0, newest);
	return err;
}

/* A counter's value inside the transaction: its row, read at first use,
 * plus what the transaction changed. */
static enum store_err counted(struct sq *s, struct tallies *t, enum stmt_id id, const char *key,
                              int64_t *out)
{
	struct tally *c = tally_get(t, key, 0, false);
	if (!c)
		return STORE_NOMEM;
	if (!c->known) {
		int rc = read_count(s, id, key, &c->base);
		if (rc != SQLITE_OK)
			return sq_from_rc(rc);
		c->known = true;
	}
	*out = c->base + c->delta;
	return STORE_OK;
}

/* The intake bounds, from the counters as the caller's write transaction
 * has them. */
static enum store_err check_bounds(struct sq *s, const struct job_insert *job,
                                   const struct tally_keys *k, struct job_result *res)
{
	struct sq_counts *c = &s->counts;
	int64_t n = 0;
	enum store_err err = STORE_OK;
	if (!c->depth_known) {
		int rc = read_count(s, ST_DEPTH, NULL, &c->depth_base);
		if (rc != SQLITE_OK)
			return sq_from_rc(rc);
		c->depth_known = true;
	}
	res->queue_depth = c->depth_base + c->depth_delta;
	if (job->max_queue_size > 0 && res->queue_depth >= job->max_queue_size) {
		res->refusal = JOB_QUEUE_FULL;
		return STORE_REFUSED;
	}
	if (job->max_client_pending > 0) {
		err = counted(s, &c->clients, ST_CLIENT_PENDING, client_key(job->client_addr), &n);
		if (err != STORE_OK)
			return err;
		if (n >= job->max_client_pending) {
			res->refusal = JOB_CLIENT_SHARE;
			return STORE_REFUSED;
		}
	}
	if (job->max_host_pending > 0) {
		int64_t busiest = 0; /* of the job's destination keys */
		for (size_t i = 0; i < k->n; i++) {
			err = counted(s, &c->hosts, ST_HOST_PENDING, k->v[i], &n);
			if (err != STORE_OK)
				return err;
			if (n > busiest)
				busiest = n;
		}
		if (busiest >= job->max_host_pending) {
			res->refusal = JOB_HOST_PENDING;
			return STORE_REFUSED;
		}
	}
	return STORE_OK;
}

static enum store_err insert_job_row(struct sq *s, const struct job_insert *job)
{
	int rc;
	enum store_err err = STORE_OK;
	sqlite3_stmt *st = stmt(s, ST_INSERT_JOB, &rc);
	if (!st)
		return sq_from_rc(rc);
	bind_text(st, 1, job->id);
	bind_text(st, 2, job->input_data);
	sqlite3_bind_int64(st, 3, job->iterations);
	bind_text(st, 4, job->callback_url);
	bind_text(st, 5, job->callback_host);
	bind_text(st, 6, job->client_addr);
	bind_text(st, 7, job->idempotency_key);
	bind_text(st, 8, job->body_hash);
	sqlite3_bind_int64(st, 9, job->created_at);
	bind_text(st, 10, job->pending_keys);
	bind_text(st, 11, job->owner);
	char origin[URL_MAX_BYTES + 1]; /* the claim key is a prefix of the URL */
	store_claim_key(job->callback_url ? job->callback_url : "", origin, sizeof origin);
	bind_text(st, 12, origin);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		err = sq_fail(s, rc, "insert job");
	done(st);
	return err;
}

static enum store_err sq_job_in_tx(struct store *b, const struct job_insert *job,
                                   struct job_result *res)
{
	struct sq *s = SQ(b);
	enum store_err err;
	bool found = false;
	memset(res, 0, sizeof *res);
	if (job->idempotency_key) {
		err = find_key(s, job, res, &found);
		if (err != STORE_OK || found)
			return err;
	}
	if (sqlite3_get_autocommit(s->db)) {
		store_set_msg(b, "job_in_tx outside a transaction");
		return STORE_IO;
	}
	struct tally_keys k;
	err = tally_keys_of(b, job->pending_keys, job->callback_host, &k);
	if (err == STORE_OK)
		err = check_bounds(s, job, &k, res);
	if (err == STORE_OK)
		err = insert_job_row(s, job);
	if (err == STORE_OK)
		err = count_keys(s, +1, job->client_addr, &k, 0);
	tally_keys_clear(&k);
	if (err != STORE_OK)
		return err;
	snprintf(res->id, sizeof res->id, "%s", job->id);
	snprintf(res->status, sizeof res->status, "queued");
	return STORE_OK;
}

static enum store_err sq_make_durable(struct store *b)
{
	struct sq *s = SQ(b);
	sqlite3_file *wal = NULL;
	int rc = sqlite3_file_control(s->db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &wal);
	if (rc != SQLITE_OK || !wal || !wal->pMethods) {
		store_set_msg(&s->base, "sync: no WAL file is open on this connection (%d)", rc);
		return STORE_IO;
	}
	rc = wal->pMethods->xSync(wal, SQLITE_SYNC_NORMAL);
	if (rc != SQLITE_OK) {
		store_set_msg(&s->base, "sync: fdatasync of the WAL failed (%d)", rc);
		return STORE_IO;
	}
	return STORE_OK;
}

/* ---- reads ------------------------------------------------------------- */

/* Column helpers: NULL reads as 0 / "" / a NULL pointer (store.h). */
static int64_t col_int(sqlite3_stmt *st, int col)
{
	return sqlite3_column_type(st, col) == SQLITE_NULL ? 0 : sqlite3_column_int64(st, col);
}

static void col_copy(sqlite3_stmt *st, int col, char *dst, size_t size)
{
	const unsigned char *t = sqlite3_column_text(st, col);
	snprintf(dst, size, "%s", t ? (const char *)t : "");
}

/* A cz_malloc'd copy of the column, NULL for NULL; false when memory ran
 * out. */
static bool col_dup(sqlite3_stmt *st, int col, char **out)
{
	*out = NULL;
	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return true;
	const char *t = (const char *)sqlite3_column_text(st, col);
	*out = t ? cz_strndup(t, (size_t)sqlite3_column_bytes(st, col)) : NULL;
	return *out != NULL;
}

static bool col_real(sqlite3_stmt *st, int col, double *out)
{
	bool has = sqlite3_column_type(st, col) != SQLITE_NULL;
	*out = has ? sqlite3_column_double(st, col) : 0;
	return has;
}

/* The delivery trace of one request, in attempt order. */
static enum store_err read_trace(struct sq *s, int64_t seq, struct store_request *r)
{
	int rc;
	size_t cap = 0;
	enum store_err err = STORE_OK;
	sqlite3_stmt *st = stmt(s, ST_ATTEMPTS, &rc);
	if (!st)
		return sq_from_rc(rc);
	sqlite3_bind_int64(st, 1, seq);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (!cz_grow(&r->trace, &cap, r->n_trace, sizeof *r->trace)) {
			err = STORE_NOMEM;
			break;
		}
		struct store_attempt *a = &r->trace[r->n_trace++];
		memset(a, 0, sizeof *a);
		a->number = col_int(st, 0);
		col_copy(st, 1, a->state, sizeof a->state);
		a->started_at = col_int(st, 2);
		a->has_duration = col_real(st, 3, &a->duration_ms);
		a->http_status = (int)col_int(st, 4);
		a->next_attempt_at = col_int(st, 7);
		if (!col_dup(st, 5, &a->error_class) || !col_dup(st, 6, &a->error_message)) {
			err = STORE_NOMEM;
			break;
		}
	}
	if (err == STORE_OK && rc != SQLITE_DONE)
		err = sq_fail(s, rc, "read attempts");
	done(st);
	return err;
}

/* Fills r from the ST_GET row. */
static enum store_err read_record(sqlite3_stmt *st, struct store_request *r)
{
	col_copy(st, 1, r->id, sizeof r->id);
	col_copy(st, 2, r->mode, sizeof r->mode);
	col_copy(st, 3, r->status, sizeof r->status);
	col_copy(st, 4, r->callback_status, sizeof r->callback_status);
	r->iterations = col_int(st, 5);
	col_copy(st, 6, r->result, sizeof r->result);
	r->has_duration = col_real(st, 7, &r->duration_ms);
	r->created_at = col_int(st, 10);
	r->started_at = col_int(st, 11);
	r->completed_at = col_int(st, 12);
	r->finished_at = col_int(st, 13);
	if (strcmp(r->mode, "async") == 0) {
		r->attempts = col_int(st, 14);
		r->next_attempt_at = r->finished_at ? 0 : col_int(st, 15);
		if (!col_dup(st, 16, &r->last_error))
			return STORE_NOMEM;
	}
	if (!col_dup(st, 8, &r->input_data) || !col_dup(st, 9, &r->callback_url))
		return STORE_NOMEM;
	return STORE_OK;
}

static enum store_err sq_get_request(struct store *b, const char *id, const char *owner,
                                     struct store_request *out)
{
	struct sq *s = SQ(b);
	int rc;
	int64_t seq = 0;
	enum store_err err = begin_read(s);
	if (err != STORE_OK)
		return err;
	sqlite3_stmt *st = stmt(s, ST_GET, &rc);
	if (!st) {
		err = sq_from_rc(rc);
		goto out;
	}
	bind_text(st, 1, id);
	bind_text(st, 2, owner);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		err = read_record(st, out);
		seq = sqlite3_column_int64(st, 0);
	} else if (rc == SQLITE_DONE) {
		err = STORE_NOTFOUND;
	} else {
		err = sq_fail(s, rc, "read request");
	}
	done(st);
	if (err == STORE_OK && strcmp(out->mode, "async") == 0)
		err = read_trace(s, seq, out);
	if (err == STORE_OK)
		err = sq_commit(&s->base);
out:
	sq_rollback(&s->base);
	return err;
}

static enum stmt_id list_stmt_all(const struct list_query *q)
{
	if (!q->mode)
		return q->status ? ST_LIST_STATUS : ST_LIST_ALL;
	if (strcmp(q->mode, "async") == 0)
		return q->status ? ST_LIST_ASYNC_STATUS : ST_LIST_ASYNC;
	if (strcmp(q->mode, "sync") == 0)
		return q->status ? ST_LIST_SYNC_STATUS : ST_LIST_SYNC;
	return q->status ? ST_LIST_MODE_STATUS : ST_LIST_MODE;
}

static enum stmt_id list_stmt(const struct list_query *q)
{
	enum stmt_id id = list_stmt_all(q);
	return q->owner ? (enum stmt_id)(id + ST_LIST_OWNED) : id;
}

/* q is clamped (store.c). */
static enum store_err sq_list_requests(struct store *b, const struct list_query *q,
                                       struct store_page *out)
{
	struct sq *s = SQ(b);
	int rc;
	enum store_err err = STORE_OK;
	out->items = cz_calloc((size_t)q->limit, sizeof *out->items);
	if (!out->items)
		return STORE_NOMEM;
	sqlite3_stmt *st = stmt(s, list_stmt(q), &rc);
	if (!st)
		return sq_from_rc(rc);
	bind_named_text(st, ":mode", q->mode);
	bind_named_text(st, ":status", q->status);
	bind_named_text(st, ":owner", q->owner);
	bind_named_int(st, ":limit", q->limit);
	bind_named_int(st, ":offset", q->offset);
	while (out->n < (size_t)q->limit && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_list_item *it = &out->items[out->n++];
		col_copy(st, 0, it->id, sizeof it->id);
		col_copy(st, 1, it->mode, sizeof it->mode);
		col_copy(st, 2, it->status, sizeof it->status);
		col_copy(st, 3, it->callback_status, sizeof it->callback_status);
		it->has_duration = col_real(st, 4, &it->duration_ms);
		it->created_at = col_int(st, 5);
	}
	if (out->n < (size_t)q->limit && rc != SQLITE_DONE)
		err = sq_fail(s, rc, "list requests");
	done(st);
	return err;
}

static enum store_err sq_health(struct store *b, int64_t stale_ms, struct store_health *h)
{
	struct sq *s = SQ(b);
	int rc;
	memset(h, 0, sizeof *h);
	s->base.msg[0] = '\0';
	int64_t alive_after = ids_now_ms() - stale_ms;
	enum store_err err = begin_read(s);
	if (err != STORE_OK)
		return err;
	rc = read_count(s, ST_DEPTH, NULL, &h->queue_depth);
	if (rc != SQLITE_OK) {
		err = sq_from_rc(rc);
		goto out;
	}
	sqlite3_stmt *st = stmt(s, ST_HEARTBEATS, &rc);
	if (!st) {
		err = sq_from_rc(rc);
		goto out;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int64_t beat = sqlite3_column_int64(st, 3);
		if (!h->deliverer_seen) { /* newest first */
			h->deliverer_seen = true;
			h->deliverer_pid = sqlite3_column_int64(st, 1);
			h->deliverer_started_at = sqlite3_column_int64(st, 2);
			h->deliverer_beat_ms = beat;
		}
		if (beat >= alive_after) {
			h->deliverers_alive++;
			h->busy_workers += sqlite3_column_int64(st, 4);
			h->workers += sqlite3_column_int64(st, 5);
			h->inflight += sqlite3_column_int64(st, 6);
		}
	}
	if (rc != SQLITE_DONE)
		err = sq_fail(s, rc, "read heartbeats");
	done(st);
	if (err == STORE_OK)
		err = sq_commit(&s->base);
out:
	sq_rollback(&s->base);
	return err;
}

/* ---- operations: redelivery and the oldest-pending gauge (issue 13) ----
 *
 * Redelivery re-opens a finished job: finished_at back to NULL (the row
 * re-enters requests_due, where the deliverer claims it like any due job),
 * due now, and counted again as a new job is ("the transaction's counts";
 * its end counts it down as any job's): here by one statement per counter
 * for the whole set, queue_depth, client_pending, and host_pending once
 * under each of the job's pending_keys (or its callback_host, for rows
 * older than them).
 * The jobs to re-open are first gathered into a temporary table, so the
 * counters and the update see exactly the same set.
 *
 * Pacing is the deliverer's: the jobs are due now in acceptance order and
 * it starts at most CONSUMA_MAX_PER_HOST at once per origin (a job tried
 * before at most half of them), holds at most twice that in hand per origin
 * (a replay to one origin cannot take the claims from the others) and stops
 * at an open breaker; a replay runs at the receiver's own pace, never
 * faster. */

#define REDELIVER_MATCH                                                                            \
	"mode = 'async' AND finished_at IS NOT NULL AND callback_status = :status "                \
	"AND created_at >= :since AND created_at < :until "                                        \
	"AND (:host IS NULL OR callback_host = :host)"

static const char *const redeliver_apply_sql[] = {
    "UPDATE counters SET value = value + (SELECT count(*) FROM temp.redeliver_set) "
    "WHERE name = 'queue_depth'",
    /* once per key of each job, as requests_enqueued (sql/sqlite/005_pending_keys.sql) */
    "INSERT INTO host_pending (host, n) SELECT k.value, count(*) "
    "FROM temp.redeliver_set x JOIN requests r ON r.seq = x.seq, "
    "json_each(coalesce(r.pending_keys, json_array(coalesce(r.callback_host, '')))) k "
    "WHERE true GROUP BY k.value ON CONFLICT (host) DO UPDATE SET n = n + excluded.n",
    "INSERT INTO client_pending (client, n) SELECT coalesce(r.client_addr, ''), count(*) "
    "FROM temp.redeliver_set x JOIN requests r ON r.seq = x.seq WHERE true GROUP BY 1 "
    "ON CONFLICT (client) DO UPDATE SET n = n + excluded.n",
    "UPDATE requests SET finished_at = NULL, next_attempt_at = :now, "
    "callback_status = 'retrying', "
    "status = CASE WHEN status = 'failed' THEN 'queued' ELSE status END "
    "WHERE seq IN (SELECT seq FROM temp.redeliver_set)",
};

/* Prepares sql (not cached); NULL with s->base.msg set on failure. */
static sqlite3_stmt *prepare_once(struct sq *s, const char *sql, int *rc)
{
	sqlite3_stmt *st = NULL;
	*rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	if (*rc != SQLITE_OK) {
		sq_fail(s, *rc, "prepare");
		sqlite3_finalize(st);
		return NULL;
	}
	return st;
}

static void bind_redeliver(sqlite3_stmt *st, const struct redeliver_query *q)
{
	bind_named_text(st, ":status", q->callback_status);
	bind_named_int(st, ":since", q->since_ms);
	bind_named_int(st, ":until", q->until_ms);
	bind_named_text(st, ":host", q->callback_host);
	bind_named_int(st, ":limit", q->max_jobs);
}

/* Runs sql to completion; q and now are bound where it names them. */
static enum store_err run_once(struct sq *s, const char *sql, const struct redeliver_query *q,
                               int64_t now_ms, int64_t *value)
{
	int rc;
	enum store_err err = STORE_OK;
	sqlite3_stmt *st = prepare_once(s, sql, &rc);
	if (!st)
		return sq_from_rc(rc);
	if (q)
		bind_redeliver(st, q);
	bind_named_int(st, ":now", now_ms);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (value)
			*value = sqlite3_column_int64(st, 0);
	if (rc != SQLITE_DONE)
		err = sq_fail(s, rc, "redeliver");
	sqlite3_finalize(st);
	return err;
}

/* Inside the caller's write transaction: empties the set. */
static enum store_err redeliver_set_reset(struct sq *s)
{
	enum store_err err =
	    run_once(s, "CREATE TEMP TABLE IF NOT EXISTS redeliver_set (seq INTEGER PRIMARY KEY)",
	             NULL, 0, NULL);
	if (err == STORE_OK)
		err = run_once(s, "DELETE FROM temp.redeliver_set", NULL, 0, NULL);
	return err;
}

/* Inside the caller's write transaction: re-opens every job of the set. */
static enum store_err redeliver_set_apply(struct sq *s, int64_t now_ms)
{
	enum store_err err = STORE_OK;
	for (size_t i = 0; err == STORE_OK && i < sizeof redeliver_apply_sql / sizeof(char *); i++)
		err = run_once(s, redeliver_apply_sql[i], NULL, now_ms, NULL);
	return err;
}

static enum store_err sq_redeliver_one(struct store *b, const char *id, int64_t now_ms,
                                       enum store_redeliver *outcome, int64_t *seq)
{
	struct sq *s = SQ(b);
	int rc;
	bool async = false, finished = false;
	*outcome = STORE_REDELIVER_NOTJOB;
	*seq = 0;
	s->base.msg[0] = '\0';
	enum store_err err = sq_begin(&s->base);
	if (err != STORE_OK)
		return err;
	sqlite3_stmt *st =
	    prepare_once(s,
	                 "SELECT seq, mode = 'async', finished_at IS NOT NULL FROM requests "
	                 "WHERE id = ?1",
	                 &rc);
	if (!st) {
		err = sq_from_rc(rc);
		goto out;
	}
	bind_text(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*seq = sqlite3_column_int64(st, 0);
		async = sqlite3_column_int(st, 1) != 0;
		finished = sqlite3_column_int(st, 2) != 0;
	} else if (rc == SQLITE_DONE) {
		err = STORE_NOTFOUND;
	} else {
		err = sq_fail(s, rc, "read request");
	}
	sqlite3_finalize(st);
	if (err != STORE_OK)
		goto out;
	if (!async || !finished) {
		*outcome = async ? STORE_REDELIVER_BUSY : STORE_REDELIVER_NOTJOB;
		goto out; /* nothing to write: the rollback ends the read */
	}
	err = redeliver_set_reset(s);
	if (err == STORE_OK) {
		char sql[96];
		snprintf(sql, sizeof sql,
		         "INSERT INTO temp.redeliver_set (seq) VALUES (%" PRId64 ")", *seq);
		err = run_once(s, sql, NULL, 0, NULL);
	}
	if (err == STORE_OK)
		err = redeliver_set_apply(s, now_ms);
	if (err == STORE_OK)
		err = sq_commit(&s->base);
	if (err == STORE_OK)
		*outcome = STORE_REDELIVERED;
out:
	sq_rollback(&s->base);
	return err;
}

static enum store_err sq_redeliver_bulk(struct store *b, const struct redeliver_query *q,
                                        bool dry_run, int64_t now_ms, int64_t *matched,
                                        int64_t *redelivered, int64_t *min_seq)
{
	struct sq *s = SQ(b);
	enum store_err err;
	*matched = *redelivered = *min_seq = 0;
	s->base.msg[0] = '\0';
	err = dry_run ? begin_read(s) : sq_begin(&s->base);
	if (err != STORE_OK)
		return err;
	err = run_once(s, "SELECT count(*) FROM requests WHERE " REDELIVER_MATCH, q, 0, matched);
	if (err != STORE_OK || dry_run || *matched == 0 || q->max_jobs <= 0)
		goto out;
	err = redeliver_set_reset(s);
	if (err == STORE_OK)
		err = run_once(s,
		               "INSERT INTO temp.redeliver_set (seq) SELECT seq FROM requests "
		               "WHERE " REDELIVER_MATCH " ORDER BY seq LIMIT :limit",
		               q, 0, NULL);
	if (err == STORE_OK)
		err = run_once(s, "SELECT count(*) FROM temp.redeliver_set", NULL, 0, redelivered);
	if (err == STORE_OK)
		err = run_once(s, "SELECT coalesce(min(seq), 0) FROM temp.redeliver_set", NULL, 0,
		               min_seq);
	if (err == STORE_OK)
		err = redeliver_set_apply(s, now_ms);
	if (err == STORE_OK)
		err = sq_commit(&s->base);
	if (err != STORE_OK)
		*redelivered = *min_seq = 0;
out:
	sq_rollback(&s->base); /* a dry run's read, or a failure */
	return err;
}

#define PENDING_FORWARD                                                                            \
	"SELECT seq, created_at FROM requests NOT INDEXED WHERE seq >= ?1 "                        \
	"AND mode = 'async' AND finished_at IS NULL ORDER BY seq LIMIT 1"
#define PENDING_SCRATCH                                                                            \
	"SELECT seq, created_at FROM requests INDEXED BY requests_due "                            \
	"WHERE finished_at IS NULL AND mode = 'async' AND ?1 >= 0 ORDER BY seq LIMIT 1"

/* The first unfinished job sql finds from mark; *found false when none. */
static enum store_err first_pending(struct sq *s, const char *sql, int64_t mark, bool *found,
                                    int64_t *seq, int64_t *created_at)
{
	int rc;
	enum store_err err = STORE_OK;
	sqlite3_stmt *st = prepare_once(s, sql, &rc);
	if (!st)
		return sq_from_rc(rc);
	sqlite3_bind_int64(st, 1, mark);
	rc = sqlite3_step(st);
	*found = rc == SQLITE_ROW;
	if (rc == SQLITE_ROW) {
		*seq = sqlite3_column_int64(st, 0);
		*created_at = sqlite3_column_int64(st, 1);
	} else if (rc != SQLITE_DONE) {
		err = sq_fail(s, rc, "oldest pending");
	}
	sqlite3_finalize(st);
	return err;
}

static enum store_err sq_oldest_pending(struct store *b, int64_t mark, int64_t scan_max,
                                        bool *found, int64_t *seq, int64_t *created_at)
{
	struct sq *s = SQ(b);
	int64_t newest = 0;
	*found = false;
	*seq = *created_at = 0;
	s->base.msg[0] = '\0';
	enum store_err err = begin_read(s);
	if (err != STORE_OK)
		return err;
	err = run_once(s, "SELECT coalesce(max(seq), 0) FROM requests", NULL, 0, &newest);
	if (err != STORE_OK)
		goto out;
	/* Forward from the mark by rowid (NOT INDEXED keeps the planner off
	 * requests_due, whose order is not seq). From scratch through
	 * requests_due (the unfinished jobs only) when the mark is unusable,
	 * or when the forward read found nothing: the caller asks only when
	 * the queue is not empty, so a job below the mark exists (a seq
	 * reused after retention pruned the newest rows). */
	bool forward = mark > 0 && mark <= newest + 1 && newest - mark <= scan_max;
	err = first_pending(s, forward ? PENDING_FORWARD : PENDING_SCRATCH, mark, found, seq,
	                    created_at);
	if (err == STORE_OK && forward && !*found)
		err = first_pending(s, PENDING_SCRATCH, mark, found, seq, created_at);
	if (err == STORE_OK && !*found)
		*seq = newest + 1;
	if (err == STORE_OK)
		err = sq_commit(&s->base);
out:
	sq_rollback(&s->base);
	return err;
}

/* Jobs finished since since_s, from the drain table (sql/sqlite/003_drain.sql). */
static enum store_err sq_drained(struct store *b, int64_t since_s, int64_t *jobs)
{
	static const char sql[] = "SELECT coalesce(sum(n), 0) FROM drain WHERE second >= ?1";
	struct sq *s = SQ(b);
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(s->db, sql, sizeof sql, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, since_s);
		rc = sqlite3_step(st);
	}
	enum store_err err = rc == SQLITE_ROW ? STORE_OK : sq_fail(s, rc, "read drain");
	if (rc == SQLITE_ROW)
		*jobs = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return err;
}

void *store_sqlite_handle(struct store *b)
{
	return b && b->ops == &store_sqlite_ops ? SQ(b)->db : NULL;
}

const struct store_ops store_sqlite_ops = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .errmsg = sq_errmsg,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .in_tx = sq_in_tx,
    .job_in_tx = sq_job_in_tx,
    .find_replay = sq_find_replay,
    .sync_record_in_tx = sq_sync_record_in_tx,
    .make_durable = sq_make_durable,
    .batch_begin = sq_begin,
    .batch_commit = sq_batch_commit,
    .batch_abort = sq_rollback,
    .get_request = sq_get_request,
    .list_requests = sq_list_requests,
    .health = sq_health,
    .drained = sq_drained,
    .redeliver_one = sq_redeliver_one,
    .redeliver_bulk = sq_redeliver_bulk,
    .oldest_pending = sq_oldest_pending,
    .claim = sq_claim,
    .next_due = sq_next_due,
    .attempt_begin = sq_attempt_begin,
    .attempt_end = sq_attempt_end,
    .release = sq_release,
    .renew = sq_renew,
    .handback_all = sq_handback_all,
    .heartbeat = sq_heartbeat,
    .heartbeat_remove = sq_heartbeat_remove,
    .recover_dead = sq_recover_dead,
    .prune = sq_prune,
};
