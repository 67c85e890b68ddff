/*
 * store: the SQLite database of consuma (see store.h for the contract).
 *
 * Connection set-up (store_open)
 *   sqlite3_open_v2 with SQLITE_OPEN_NOMUTEX: one connection belongs to one
 *   thread at a time, so SQLite's per-connection mutex would only cost.
 *   journal_mode=WAL (readers never block the writer, the writer never
 *   blocks readers), foreign_keys=ON, synchronous=NORMAL, then migrations.
 *   Setting WAL needs a lock of its own on a fresh file: when many processes
 *   open a new database at once it is retried until STORE_BUSY_TIMEOUT_MS.
 *
 * Migrations
 *   sql/NNN_*.sql, compiled in (migrations.h). PRAGMA user_version holds the
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
 *   Every write starts with BEGIN IMMEDIATE, which takes the write lock up
 *   front: its waits go through the busy handler. (A deferred transaction
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
#include "store.h"

#include <errno.h>
#include <inttypes.h>
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
#include "store_int.h"

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
/* Newest first is acceptance order: seq is the rowid (sql/004_lean_intake.sql).
 * The mode is spelled as a literal where it can be, so the planner can use
 * the partial index requests_async (a bound parameter cannot imply it). */
#define LIST_ORDER   " ORDER BY seq DESC LIMIT :limit OFFSET :offset"
#define STATUS_MATCH "(status = :status OR callback_status = :status)"
/* An owner's list walks requests_owner (sql/006_owner.sql). */
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
    /* the busiest of the job's destination keys (sql/005_pending_keys.sql) */
    [ST_HOST_PENDING] = "SELECT coalesce(max(n), 0) FROM host_pending WHERE host IN (SELECT "
                        "value FROM json_each(coalesce(?1, json_array(coalesce(?2, '')))))",
    [ST_INSERT_JOB] = "INSERT INTO requests (id, mode, status, callback_status, "
                      "input_data, iterations, callback_url, callback_host, client_addr, "
                      "idempotency_key, body_hash, created_at, next_attempt_at, pending_keys, "
                      "owner) VALUES (?1, 'async', 'queued', 'pending', ?2, ?3, ?4, ?5, ?6, ?7, "
                      "?8, ?9, ?9, ?10, ?11)",
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

struct store {
	sqlite3 *db;
	sqlite3_stmt *stmt[ST__COUNT];
	int64_t busy_start_ns;             /* when the current lock wait began */
	uint64_t rng;                      /* xorshift state for the busy handler's jitter */
	char msg[512];                     /* our own message for the last failure, "" if none */
	struct store_committer *committer; /* NULL: this connection writes itself */
};

#define BUSY_FIRST_US 20
#define BUSY_MAX_US   1000
/* Reads through a shared mapping of the database file (store.h). */
#define STORE_MMAP_BYTES "268435456"

const char *store_strerror(enum store_err err)
{
	switch (err) {
	case STORE_OK:
		return "ok";
	case STORE_NOMEM:
		return "out of memory";
	case STORE_BUSY:
		return "database busy";
	case STORE_IO:
		return "database error";
	case STORE_NOTFOUND:
		return "not found";
	case STORE_CONFLICT:
		return "idempotency key reused with a different body";
	case STORE_MIGRATION:
		return "schema migration failed";
	case STORE_FULL:
		return "intake bound reached";
	}
	return "unknown store error";
}

enum store_err store_from_sqlite(int rc)
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
	default:
		return STORE_IO;
	}
}

static void set_msg(struct store *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_msg(struct store *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (vsnprintf(s->msg, sizeof s->msg, fmt, ap) < 0)
		s->msg[0] = '\0';
	va_end(ap);
}

/* Records SQLite's message for rc (read before a rollback replaces it). */
static enum store_err fail(struct store *s, int rc, const char *what)
{
	set_msg(s, "%s: %s (%d)", what, sqlite3_errmsg(s->db), rc);
	return store_from_sqlite(rc);
}

static uint64_t next_random(struct store *s)
{
	uint64_t x = s->rng;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	s->rng = x;
	return x;
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
	struct store *s = arg;
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
	sleep_us(base / 2 + (int64_t)(next_random(s) % (uint64_t)base));
	return 1;
}

/* The cached statement id, prepared on first use; NULL with s->msg set on
 * failure. */
static sqlite3_stmt *stmt(struct store *s, enum stmt_id id, int *rc)
{
	if (s->stmt[id]) {
		*rc = SQLITE_OK;
		return s->stmt[id];
	}
	*rc = sqlite3_prepare_v3(s->db, stmt_sql[id], -1, SQLITE_PREPARE_PERSISTENT, &s->stmt[id],
	                         NULL);
	if (*rc != SQLITE_OK) {
		fail(s, *rc, "prepare");
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
static int run(struct store *s, enum stmt_id id)
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

enum store_err store_begin(struct store *s)
{
	s->msg[0] = '\0';
	int rc = run(s, ST_BEGIN);
	if (rc != SQLITE_OK)
		return fail(s, rc, "begin immediate");
	return STORE_OK;
}

/* On failure the transaction is rolled back, so the connection is never left
 * inside one. */
enum store_err store_commit(struct store *s)
{
	int rc = run(s, ST_COMMIT);
	if (rc == SQLITE_OK)
		return STORE_OK;
	enum store_err err = fail(s, rc, "commit");
	store_rollback(s);
	return err;
}

void store_rollback(struct store *s)
{
	if (!s || sqlite3_get_autocommit(s->db))
		return;
	int rc = run(s, ST_ROLLBACK);
	if (rc != SQLITE_OK)
		log_event(L_WARN, "store.rollback_failed", "rc=%d error=%s", rc,
		          log_q(sqlite3_errmsg(s->db)));
}

static enum store_err begin_read(struct store *s)
{
	int rc = run(s, ST_BEGIN_READ);
	return rc == SQLITE_OK ? STORE_OK : fail(s, rc, "begin");
}

/* ---- open, migrate, close --------------------------------------------- */

static int exec_sql(struct store *s, const char *sql, const char *what)
{
	char *emsg = NULL;
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, &emsg);
	if (rc != SQLITE_OK)
		set_msg(s, "%s: %s (%d)", what, emsg ? emsg : sqlite3_errmsg(s->db), rc);
	sqlite3_free(emsg);
	return rc;
}

/* journal_mode=WAL needs an exclusive lock on a database not yet in WAL
 * mode; concurrent first opens may see SQLITE_BUSY without the busy handler
 * being asked, so retry here, bounded by the same timeout. */
static enum store_err set_wal(struct store *s)
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
				set_msg(s, "journal_mode=WAL refused, the mode is %s",
				        mode ? mode : "unknown");
			sqlite3_finalize(st);
			return wal ? STORE_OK : STORE_IO;
		}
		enum store_err err = fail(s, rc, "journal_mode=WAL");
		sqlite3_finalize(st);
		if (err != STORE_BUSY || ids_mono_ns() >= deadline)
			return err;
		sleep_us(tries < 10 ? 100 : 1000);
	}
}

static int newest_migration(void)
{
	int v = 0;
	for (size_t i = 0; i < consuma_migrations_count; i++)
		if (consuma_migrations[i].version > v)
			v = consuma_migrations[i].version;
	return v;
}

static int read_user_version(struct store *s, int *version)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*version = sqlite3_column_int(st, 0);
		rc = SQLITE_OK;
	} else {
		fail(s, rc, "read user_version");
	}
	sqlite3_finalize(st);
	return rc;
}

static enum store_err check_version(struct store *s, int current, int newest)
{
	if (current <= newest)
		return STORE_OK;
	set_msg(s, "the database schema is version %d, newer than this program's %d", current,
	        newest);
	return STORE_MIGRATION;
}

static enum store_err migrate(struct store *s)
{
	int newest = newest_migration();
	int current = 0;
	enum store_err err;
	int rc = read_user_version(s, &current);
	if (rc != SQLITE_OK)
		return store_from_sqlite(rc);
	err = check_version(s, current, newest);
	if (err != STORE_OK || current == newest)
		return err;

	err = store_begin(s);
	if (err != STORE_OK)
		return err;
	rc = read_user_version(s, &current); /* another process may have migrated */
	if (rc != SQLITE_OK) {
		err = store_from_sqlite(rc);
		goto out;
	}
	err = check_version(s, current, newest);
	if (err != STORE_OK || current == newest)
		goto out;
	int from = current;
	for (int v = current + 1; v <= newest; v++) {
		for (size_t i = 0; i < consuma_migrations_count; i++) {
			const struct migration *m = &consuma_migrations[i];
			if (m->version != v)
				continue;
			if (exec_sql(s, m->sql, m->name) != SQLITE_OK) {
				err = STORE_MIGRATION;
				goto out;
			}
		}
	}
	char pragma[64];
	snprintf(pragma, sizeof pragma, "PRAGMA user_version = %d", newest);
	rc = exec_sql(s, pragma, "set user_version");
	if (rc != SQLITE_OK) {
		err = store_from_sqlite(rc);
		goto out;
	}
	err = store_commit(s);
	if (err == STORE_OK)
		log_event(L_INFO, "store.migrated", "from=%d to=%d", from, newest);
out:
	store_rollback(s);
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

struct store *store_open(const char *path, enum store_err *err, char *errmsg, size_t errlen)
{
	enum store_err e = STORE_OK;
	struct store *s = cz_calloc(1, sizeof *s);
	if (!s) {
		e = STORE_NOMEM;
		if (errmsg && errlen)
			snprintf(errmsg, errlen, "out of memory");
		goto out;
	}
	s->rng = (uint64_t)ids_mono_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)s;
	if (s->rng == 0)
		s->rng = 0x9e3779b97f4a7c15u;

	struct stat before;
	bool creating = is_file_path(path) && stat(path, &before) != 0 && errno == ENOENT;
	mode_t umask_was = creating ? umask(077) : 0;
	int rc = sqlite3_open_v2(
	    path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (creating)
		umask(umask_was);
	if (rc != SQLITE_OK) {
		if (s->db)
			e = fail(s, rc, "open");
		else {
			e = STORE_NOMEM;
			set_msg(s, "open: out of memory");
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
	             "PRAGMA mmap_size = " STORE_MMAP_BYTES,
	             "pragmas") != SQLITE_OK) {
		e = STORE_IO;
		goto out;
	}
	e = migrate(s);
out:
	if (e != STORE_OK && s) {
		if (errmsg && errlen)
			snprintf(errmsg, errlen, "%s: %s", path,
			         s->msg[0] ? s->msg : store_strerror(e));
		store_close(s);
		s = NULL;
	}
	if (err)
		*err = e;
	return s;
}

void store_close(struct store *s)
{
	if (!s)
		return;
	for (int i = 0; i < ST__COUNT; i++)
		sqlite3_finalize(s->stmt[i]);
	if (s->db) {
		store_rollback(s);
		int rc = sqlite3_close(s->db);
		if (rc != SQLITE_OK) /* a statement of queue.c left unfinalized */
			log_event(L_WARN, "store.close_failed", "rc=%d error=%s", rc,
			          log_q(sqlite3_errmsg(s->db)));
	}
	cz_free(s);
}

const char *store_errmsg(struct store *s)
{
	if (!s)
		return "no database connection";
	return s->msg[0] ? s->msg : sqlite3_errmsg(s->db);
}

sqlite3 *store_db(struct store *s)
{
	return s ? s->db : NULL;
}

/* ---- writes ------------------------------------------------------------ */

enum store_err store_sync_record_in_tx(struct store *s, const struct sync_record *r)
{
	enum store_err err = STORE_OK;
	int rc;
	sqlite3_stmt *st = stmt(s, ST_INSERT_SYNC, &rc);
	if (!st)
		return store_from_sqlite(rc);
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
		err = fail(s, rc, "insert sync record");
	done(st);
	return err;
}

enum store_err store_insert_sync(struct store *s, const struct sync_record *r)
{
	s->msg[0] = '\0';
	if (s->committer) {
		enum store_err err = store_committer_log(s->committer, r);
		if (err != STORE_OK)
			set_msg(s, "the store's committer has stopped");
		return err;
	}
	bool own = sqlite3_get_autocommit(s->db) != 0; /* else: the caller's transaction */
	enum store_err err = STORE_OK;
	if (own) {
		err = store_begin(s);
		if (err != STORE_OK)
			return err;
	}
	err = store_sync_record_in_tx(s, r);
	if (err == STORE_OK && own)
		err = store_commit(s);
	if (own)
		store_rollback(s);
	return err;
}

bool store_in_tx(struct store *s)
{
	return !sqlite3_get_autocommit(s->db);
}

void store_use_committer(struct store *s, struct store_committer *c)
{
	s->committer = c;
}

/* Reads one integer column of a one-row cached statement; 0 when no row.
 * arg2 is ST_HOST_PENDING's second parameter (its fallback key). */
static int read_count2(struct store *s, enum stmt_id id, const char *arg, const char *arg2,
                       int64_t *out)
{
	int rc;
	sqlite3_stmt *st = stmt(s, id, &rc);
	if (!st)
		return rc;
	if (id != ST_DEPTH)
		bind_text(st, 1, arg);
	if (id == ST_HOST_PENDING)
		bind_text(st, 2, arg2);
	rc = sqlite3_step(st);
	*out = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
	if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		rc = SQLITE_OK;
	else
		fail(s, rc, "read counter");
	done(st);
	return rc;
}

static int read_count(struct store *s, enum stmt_id id, const char *arg, int64_t *out)
{
	return read_count2(s, id, arg, NULL, out);
}

static void copy_text(char *dst, size_t size, const unsigned char *src)
{
	snprintf(dst, size, "%s", src ? (const char *)src : "");
}

/* Looks the key up inside the write transaction. *found: 1 a live key
 * (res filled, or STORE_CONFLICT), 0 no key (an expired one is cleared). */
static enum store_err find_key(struct store *s, const struct job_insert *job,
                               struct job_result *res, bool *found)
{
	int rc;
	int64_t stale_seq = 0;
	enum store_err err = STORE_OK;
	*found = false;
	sqlite3_stmt *st = stmt(s, ST_IDEM_FIND, &rc);
	if (!st)
		return store_from_sqlite(rc);
	bind_text(st, 1, job->client_addr);
	bind_text(st, 2, job->idempotency_key);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		int64_t age = job->created_at - sqlite3_column_int64(st, 4);
		if (job->idempotency_ttl_ms > 0 && age >= job->idempotency_ttl_ms) {
			stale_seq = sqlite3_column_int64(st, 0);
		} else {
			const char *hash = (const char *)sqlite3_column_text(st, 3);
			bool same = (!hash && !job->body_hash) ||
			            (hash && job->body_hash && strcmp(hash, job->body_hash) == 0);
			*found = true;
			copy_text(res->id, sizeof res->id, sqlite3_column_text(st, 1));
			copy_text(res->status, sizeof res->status, sqlite3_column_text(st, 2));
			res->replayed = true;
			if (!same) {
				set_msg(s, "idempotency key reused with a different body");
				err = STORE_CONFLICT;
			}
		}
	} else if (rc != SQLITE_DONE) {
		err = fail(s, rc, "find idempotency key");
	}
	done(st);
	if (err != STORE_OK || stale_seq == 0)
		return err;

	st = stmt(s, ST_IDEM_FORGET, &rc);
	if (!st)
		return store_from_sqlite(rc);
	sqlite3_bind_int64(st, 1, stale_seq);
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		err = fail(s, rc, "forget idempotency key");
	done(st);
	return err;
}

/* The intake bounds, read from the counter tables in the caller's write
 * transaction. */
static enum store_err check_bounds(struct store *s, const struct job_insert *job,
                                   struct job_result *res)
{
	int64_t n = 0;
	int rc = read_count(s, ST_DEPTH, NULL, &res->queue_depth);
	if (rc != SQLITE_OK)
		return store_from_sqlite(rc);
	if (job->max_queue_size > 0 && res->queue_depth >= job->max_queue_size) {
		res->refusal = JOB_QUEUE_FULL;
		return STORE_FULL;
	}
	if (job->max_client_pending > 0) {
		rc = read_count(s, ST_CLIENT_PENDING, job->client_addr, &n);
		if (rc != SQLITE_OK)
			return store_from_sqlite(rc);
		if (n >= job->max_client_pending) {
			res->refusal = JOB_CLIENT_SHARE;
			return STORE_FULL;
		}
	}
	if (job->max_host_pending > 0) {
		rc = read_count2(s, ST_HOST_PENDING, job->pending_keys, job->callback_host, &n);
		if (rc != SQLITE_OK)
			return store_from_sqlite(rc);
		if (n >= job->max_host_pending) {
			res->refusal = JOB_HOST_PENDING;
			return STORE_FULL;
		}
	}
	return STORE_OK;
}

static enum store_err insert_job_row(struct store *s, const struct job_insert *job)
{
	int rc;
	enum store_err err = STORE_OK;
	sqlite3_stmt *st = stmt(s, ST_INSERT_JOB, &rc);
	if (!st)
		return store_from_sqlite(rc);
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
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		err = fail(s, rc, "insert job");
	done(st);
	return err;
}

enum store_err store_job_in_tx(struct store *s, const struct job_insert *job,
                               struct job_result *res)
{
	enum store_err err;
	bool found = false;
	memset(res, 0, sizeof *res);
	if (job->idempotency_key) {
		err = find_key(s, job, res, &found);
		if (err != STORE_OK || found)
			return err;
	}
	err = check_bounds(s, job, res);
	if (err != STORE_OK)
		return err;
	err = insert_job_row(s, job);
	if (err != STORE_OK)
		return err;
	snprintf(res->id, sizeof res->id, "%s", job->id);
	snprintf(res->status, sizeof res->status, "queued");
	return STORE_OK;
}

enum store_err store_wal_sync(struct store *s)
{
	sqlite3_file *wal = NULL;
	int rc = sqlite3_file_control(s->db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &wal);
	if (rc != SQLITE_OK || !wal || !wal->pMethods) {
		set_msg(s, "sync: no WAL file is open on this connection (%d)", rc);
		return STORE_IO;
	}
	rc = wal->pMethods->xSync(wal, SQLITE_SYNC_NORMAL);
	if (rc != SQLITE_OK) {
		set_msg(s, "sync: fdatasync of the WAL failed (%d)", rc);
		return STORE_IO;
	}
	return STORE_OK;
}

/* Without a committer: this connection commits the job, then syncs. */
static enum store_err insert_job_here(struct store *s, const struct job_insert *job,
                                      struct job_result *res)
{
	enum store_err err;
	if (!sqlite3_get_autocommit(s->db)) {
		set_msg(s, "store_insert_job inside a transaction cannot commit durably");
		return STORE_IO;
	}
	err = store_begin(s);
	if (err == STORE_OK)
		err = store_job_in_tx(s, job, res);
	if (err == STORE_OK)
		err = store_commit(s);
	store_rollback(s); /* a replay's read, a refusal, or a failure */
	/* A replay syncs too: the first request's process may not have. */
	if (err == STORE_OK)
		err = store_wal_sync(s);
	return err;
}

enum store_err store_insert_job(struct store *s, const struct job_insert *job,
                                struct job_result *res)
{
	s->msg[0] = '\0';
	if (s->committer)
		return store_committer_submit(s->committer, job, res, s->msg, sizeof s->msg);
	return insert_job_here(s, job, res);
}

/* ---- reads ------------------------------------------------------------- */

/* json helpers: each returns false when memory ran out. */
static bool put(json_object *o, const char *key, json_object *v, bool null_ok)
{
	if (!v && !null_ok)
		return false;
	if (json_object_object_add(o, key, v) != 0) {
		json_object_put(v);
		return false;
	}
	return true;
}

static bool put_text(json_object *o, const char *key, sqlite3_stmt *st, int col)
{
	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return put(o, key, NULL, true);
	const char *t = (const char *)sqlite3_column_text(st, col);
	int n = sqlite3_column_bytes(st, col);
	return put(o, key, t ? json_object_new_string_len(t, n) : NULL, false);
}

static bool put_int(json_object *o, const char *key, sqlite3_stmt *st, int col)
{
	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return put(o, key, NULL, true);
	return put(o, key, json_object_new_int64(sqlite3_column_int64(st, col)), false);
}

/* Durations are shown to the microsecond ("%.3f" ms), as POST /sync answers
 * them, instead of json-c's 17 significant digits of binary noise. */
static bool put_real(json_object *o, const char *key, sqlite3_stmt *st, int col)
{
	char text[64];
	double v;

	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return put(o, key, NULL, true);
	v = sqlite3_column_double(st, col);
	snprintf(text, sizeof(text), "%.3f", v);
	return put(o, key, json_object_new_double_s(v, text), false);
}

static bool put_time(json_object *o, const char *key, sqlite3_stmt *st, int col)
{
	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return put(o, key, NULL, true);
	char t[IDS_RFC3339_LEN + 1];
	ids_rfc3339(sqlite3_column_int64(st, col), t);
	return put(o, key, json_object_new_string(t), false);
}

/* The delivery trace of one request, in attempt order. */
static enum store_err read_trace(struct store *s, int64_t seq, json_object *trace)
{
	int rc;
	enum store_err err = STORE_OK;
	sqlite3_stmt *st = stmt(s, ST_ATTEMPTS, &rc);
	if (!st)
		return store_from_sqlite(rc);
	sqlite3_bind_int64(st, 1, seq);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_object *a = json_object_new_object();
		if (!a || json_object_array_add(trace, a) != 0) {
			json_object_put(a);
			err = STORE_NOMEM;
			break;
		}
		bool ok = put_int(a, "attempt", st, 0) && put_text(a, "state", st, 1) &&
		          put_time(a, "started_at", st, 2) && put_real(a, "duration_ms", st, 3) &&
		          put_int(a, "http_status", st, 4) && put_text(a, "error", st, 5) &&
		          put_text(a, "error_message", st, 6) &&
		          put_time(a, "next_attempt_at", st, 7);
		if (!ok) {
			err = STORE_NOMEM;
			break;
		}
	}
	if (err == STORE_OK && rc != SQLITE_DONE)
		err = fail(s, rc, "read attempts");
	done(st);
	return err;
}

/* Builds the record from the ST_GET row; *seq is the row's seq. */
static enum store_err record_json(sqlite3_stmt *st, json_object *o, bool *async)
{
	const char *mode = (const char *)sqlite3_column_text(st, 2);
	*async = mode && strcmp(mode, "async") == 0;
	bool finished = sqlite3_column_type(st, 13) != SQLITE_NULL;
	bool ok = put_text(o, "id", st, 1) && put_text(o, "mode", st, 2) &&
	          put_text(o, "status", st, 3) && put_text(o, "callback_status", st, 4) &&
	          put_int(o, "iterations", st, 5) && put_text(o, "result", st, 6) &&
	          put_real(o, "duration_ms", st, 7) && put_text(o, "input_data", st, 8) &&
	          put_text(o, "callback_url", st, 9) && put_time(o, "created_at", st, 10) &&
	          put_time(o, "started_at", st, 11) && put_time(o, "completed_at", st, 12) &&
	          put_time(o, "finished_at", st, 13);
	if (ok && *async)
		ok = put_int(o, "attempts", st, 14) &&
		     (finished ? put(o, "next_attempt_at", NULL, true)
		               : put_time(o, "next_attempt_at", st, 15)) &&
		     put_text(o, "last_error", st, 16);
	else if (ok)
		ok = put(o, "attempts", NULL, true) && put(o, "next_attempt_at", NULL, true) &&
		     put(o, "last_error", NULL, true);
	return ok ? STORE_OK : STORE_NOMEM;
}

enum store_err store_get_request(struct store *s, const char *id, json_object **out)
{
	return store_get_request_owned(s, id, NULL, out);
}

enum store_err store_get_request_owned(struct store *s, const char *id, const char *owner,
                                       json_object **out)
{
	int rc;
	bool async = false;
	int64_t seq = 0;
	json_object *o = NULL;
	*out = NULL;
	s->msg[0] = '\0';
	enum store_err err = begin_read(s);
	if (err != STORE_OK)
		return err;
	sqlite3_stmt *st = stmt(s, ST_GET, &rc);
	if (!st) {
		err = store_from_sqlite(rc);
		goto out;
	}
	bind_text(st, 1, id);
	bind_text(st, 2, owner);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		o = json_object_new_object();
		err = o ? record_json(st, o, &async) : STORE_NOMEM;
		seq = sqlite3_column_int64(st, 0);
	} else if (rc == SQLITE_DONE) {
		err = STORE_NOTFOUND;
	} else {
		err = fail(s, rc, "read request");
	}
	done(st);
	if (err != STORE_OK)
		goto out;

	json_object *trace = json_object_new_array();
	if (!put(o, "delivery_trace", trace, false)) {
		err = STORE_NOMEM;
		goto out;
	}
	if (async)
		err = read_trace(s, seq, trace);
	if (err == STORE_OK)
		err = store_commit(s);
out:
	store_rollback(s);
	if (err != STORE_OK) {
		json_object_put(o);
		o = NULL;
	}
	*out = o;
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

enum store_err store_list_requests(struct store *s, const struct list_query *q, json_object **out)
{
	int rc;
	enum store_err err = STORE_OK;
	*out = NULL;
	s->msg[0] = '\0';
	int64_t limit = q->limit < 1 ? 1 : q->limit > 200 ? 200 : q->limit;
	int64_t offset = q->offset < 0 ? 0 : q->offset;
	enum stmt_id id = list_stmt(q);
	json_object *list = json_object_new_array();
	if (!list)
		return STORE_NOMEM;
	sqlite3_stmt *st = stmt(s, id, &rc);
	if (!st) {
		json_object_put(list);
		return store_from_sqlite(rc);
	}
	bind_named_text(st, ":mode", q->mode);
	bind_named_text(st, ":status", q->status);
	bind_named_text(st, ":owner", q->owner);
	bind_named_int(st, ":limit", limit);
	bind_named_int(st, ":offset", offset);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_object *item = json_object_new_object();
		if (!item || json_object_array_add(list, item) != 0) {
			json_object_put(item);
			err = STORE_NOMEM;
			break;
		}
		bool ok =
		    put_text(item, "id", st, 0) && put_text(item, "mode", st, 1) &&
		    put_text(item, "status", st, 2) && put_text(item, "callback_status", st, 3) &&
		    put_real(item, "duration_ms", st, 4) && put_time(item, "created_at", st, 5);
		if (!ok) {
			err = STORE_NOMEM;
			break;
		}
	}
	if (err == STORE_OK && rc != SQLITE_DONE)
		err = fail(s, rc, "list requests");
	done(st);
	if (err != STORE_OK) {
		json_object_put(list);
		return err;
	}
	*out = list;
	return STORE_OK;
}

enum store_err store_health(struct store *s, int64_t stale_ms, struct store_health *h)
{
	int rc;
	memset(h, 0, sizeof *h);
	s->msg[0] = '\0';
	int64_t alive_after = ids_now_ms() - stale_ms;
	enum store_err err = begin_read(s);
	if (err != STORE_OK)
		return err;
	rc = read_count(s, ST_DEPTH, NULL, &h->queue_depth);
	if (rc != SQLITE_OK) {
		err = store_from_sqlite(rc);
		goto out;
	}
	sqlite3_stmt *st = stmt(s, ST_HEARTBEATS, &rc);
	if (!st) {
		err = store_from_sqlite(rc);
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
		err = fail(s, rc, "read heartbeats");
	done(st);
	if (err == STORE_OK)
		err = store_commit(s);
out:
	store_rollback(s);
	return err;
}

/* ---- operations: redelivery and the oldest-pending gauge (issue 13) ----
 *
 * Redelivery re-opens a finished job: finished_at back to NULL (the row
 * re-enters requests_due, where the deliverer claims it like any due job),
 * due now, and the counters the requests_enqueued trigger keeps for a new
 * job are counted up here, since no trigger fires when finished_at goes
 * back to NULL (requests_finished counts them down again when it ends):
 * queue_depth, client_pending, and host_pending once under each of the
 * job's pending_keys (or its callback_host, for rows older than them).
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
    /* once per key of each job, as requests_enqueued (sql/005_pending_keys.sql) */
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

/* Prepares sql (not cached); NULL with s->msg set on failure. */
static sqlite3_stmt *prepare_once(struct store *s, const char *sql, int *rc)
{
	sqlite3_stmt *st = NULL;
	*rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
	if (*rc != SQLITE_OK) {
		fail(s, *rc, "prepare");
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
static enum store_err run_once(struct store *s, const char *sql, const struct redeliver_query *q,
                               int64_t now_ms, int64_t *value)
{
	int rc;
	enum store_err err = STORE_OK;
	sqlite3_stmt *st = prepare_once(s, sql, &rc);
	if (!st)
		return store_from_sqlite(rc);
	if (q)
		bind_redeliver(st, q);
	bind_named_int(st, ":now", now_ms);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW)
		if (value)
			*value = sqlite3_column_int64(st, 0);
	if (rc != SQLITE_DONE)
		err = fail(s, rc, "redeliver");
	sqlite3_finalize(st);
	return err;
}

/* Inside the caller's write transaction: empties the set. */
static enum store_err redeliver_set_reset(struct store *s)
{
	enum store_err err =
	    run_once(s, "CREATE TEMP TABLE IF NOT EXISTS redeliver_set (seq INTEGER PRIMARY KEY)",
	             NULL, 0, NULL);
	if (err == STORE_OK)
		err = run_once(s, "DELETE FROM temp.redeliver_set", NULL, 0, NULL);
	return err;
}

/* Inside the caller's write transaction: re-opens every job of the set. */
static enum store_err redeliver_set_apply(struct store *s, int64_t now_ms)
{
	enum store_err err = STORE_OK;
	for (size_t i = 0; err == STORE_OK && i < sizeof redeliver_apply_sql / sizeof(char *); i++)
		err = run_once(s, redeliver_apply_sql[i], NULL, now_ms, NULL);
	return err;
}

enum store_err store_redeliver_one(struct store *s, const char *id, int64_t now_ms,
                                   enum store_redeliver *outcome, int64_t *seq)
{
	int rc;
	bool async = false, finished = false;
	*outcome = STORE_REDELIVER_NOTJOB;
	*seq = 0;
	s->msg[0] = '\0';
	enum store_err err = store_begin(s);
	if (err != STORE_OK)
		return err;
	sqlite3_stmt *st =
	    prepare_once(s,
	                 "SELECT seq, mode = 'async', finished_at IS NOT NULL FROM requests "
	                 "WHERE id = ?1",
	                 &rc);
	if (!st) {
		err = store_from_sqlite(rc);
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
		err = fail(s, rc, "read request");
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
		err = store_commit(s);
	if (err == STORE_OK)
		*outcome = STORE_REDELIVERED;
out:
	store_rollback(s);
	return err;
}

enum store_err store_redeliver_bulk(struct store *s, const struct redeliver_query *q, bool dry_run,
                                    int64_t now_ms, int64_t *matched, int64_t *redelivered,
                                    int64_t *min_seq)
{
	enum store_err err;
	*matched = *redelivered = *min_seq = 0;
	s->msg[0] = '\0';
	err = dry_run ? begin_read(s) : store_begin(s);
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
		err = store_commit(s);
	if (err != STORE_OK)
		*redelivered = *min_seq = 0;
out:
	store_rollback(s); /* a dry run's read, or a failure */
	return err;
}

#define PENDING_FORWARD                                                                            \
	"SELECT seq, created_at FROM requests NOT INDEXED WHERE seq >= ?1 "                        \
	"AND mode = 'async' AND finished_at IS NULL ORDER BY seq LIMIT 1"
#define PENDING_SCRATCH                                                                            \
	"SELECT seq, created_at FROM requests INDEXED BY requests_due "                            \
	"WHERE finished_at IS NULL AND mode = 'async' AND ?1 >= 0 ORDER BY seq LIMIT 1"

/* The first unfinished job sql finds from mark; *found false when none. */
static enum store_err first_pending(struct store *s, const char *sql, int64_t mark, bool *found,
                                    int64_t *seq, int64_t *created_at)
{
	int rc;
	enum store_err err = STORE_OK;
	sqlite3_stmt *st = prepare_once(s, sql, &rc);
	if (!st)
		return store_from_sqlite(rc);
	sqlite3_bind_int64(st, 1, mark);
	rc = sqlite3_step(st);
	*found = rc == SQLITE_ROW;
	if (rc == SQLITE_ROW) {
		*seq = sqlite3_column_int64(st, 0);
		*created_at = sqlite3_column_int64(st, 1);
	} else if (rc != SQLITE_DONE) {
		err = fail(s, rc, "oldest pending");
	}
	sqlite3_finalize(st);
	return err;
}

enum store_err store_oldest_pending(struct store *s, int64_t mark, int64_t scan_max, bool *found,
                                    int64_t *seq, int64_t *created_at)
{
	int64_t newest = 0;
	*found = false;
	*seq = *created_at = 0;
	s->msg[0] = '\0';
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
		err = store_commit(s);
out:
	store_rollback(s);
	return err;
}
