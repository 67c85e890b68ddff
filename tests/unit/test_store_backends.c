/*
 * test_store_backends: one table of store cases, run against both backends
 * through the public interface (store.h): SQLite on a temporary file, and
 * PostgreSQL on a real server. The cases that only one backend has (the
 * PostgreSQL migrations table, a row lock held elsewhere, a killed backend,
 * a server stopped and started) skip on the other; the SQLite-only ones
 * (its VFS, its locks) stay in test_store.c and test_queue.c.
 *
 * The PostgreSQL server is CONSUMA_TEST_DATABASE_URL when set (the URL
 * must allow CREATE DATABASE), else a private cluster this test starts
 * itself: initdb and pg_ctl from /usr/lib/postgresql/<version>/bin
 * (PG_BINDIR overrides) in a temporary directory, on a free loopback port,
 * as the postgres user when run as root, stopped by its postmaster's pid at
 * the end. Without either, the PostgreSQL run is skipped.
 *
 * Each case gets a database of its own (a fresh file; CREATE DATABASE ...
 * TEMPLATE template0), so no case sees another's rows; store_open applies
 * the migrations. `sql()` reaches behind the store (libpq or sqlite3 on a
 * connection of its own) only to look at rows or to set up what the API
 * cannot: a row lock held elsewhere, a killed backend.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>
#ifdef CONSUMA_HAVE_POSTGRES
#include <libpq-fe.h>
#endif

#include "alloc.h"
#include "store_int.h" /* the backend's batch entries, as the committer calls them */

static char server_url[512]; /* the maintenance database of the server */
static char cluster_dir[256];
static char pg_ctl[300], pg_data[300], pg_log[300], pg_opts[600];
static uid_t pg_uid;
static gid_t pg_gid;
static pid_t postmaster;
static int db_counter;
static bool run_pg; /* the group being run: PostgreSQL, else SQLite */

/* ---- the private cluster ------------------------------------------------ */

static bool find_bindir(char *out, size_t len)
{
	const char *env = getenv("PG_BINDIR");
	if (env && env[0]) {
		snprintf(out, len, "%s", env);
		return true;
	}
	DIR *d = opendir("/usr/lib/postgresql");
	struct dirent *e;
	int best = 0;
	if (!d)
		return false;
	while ((e = readdir(d)) != NULL) {
		int v = atoi(e->d_name);
		char path[512];
		snprintf(path, sizeof path, "/usr/lib/postgresql/%s/bin/initdb", e->d_name);
		if (v > best && access(path, X_OK) == 0) {
			best = v;
			snprintf(out, len, "/usr/lib/postgresql/%d/bin", v);
		}
	}
	closedir(d);
	return best > 0;
}

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t n = sizeof a;
	int fd = socket(AF_INET, SOCK_STREAM, 0), port = 0;
	if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &n) == 0)
		port = ntohs(a.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

/* Runs argv as the postgres user when we are root; true on exit 0. */
static bool run_as_pg(char *const argv[], uid_t uid, gid_t gid)
{
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		if (null >= 0) {
			dup2(null, 1);
			dup2(null, 2);
		}
		if (getuid() == 0 && (setgid(gid) != 0 || setuid(uid) != 0))
			_exit(126);
		execv(argv[0], argv);
		_exit(127);
	}
	int st = 0;
	if (pid < 0 || waitpid(pid, &st, 0) != pid)
		return false;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

static bool read_postmaster_pid(void)
{
	char pidfile[320];
	snprintf(pidfile, sizeof pidfile, "%s/postmaster.pid", pg_data);
	FILE *f = fopen(pidfile, "r");
	if (!f || fscanf(f, "%d", &postmaster) != 1)
		postmaster = 0;
	if (f)
		fclose(f);
	return postmaster > 0;
}

static bool pg_ctl_start(void)
{
	char *argv[] = {pg_ctl, "-D", pg_data, "-o", pg_opts, "-l", pg_log, "-w", "start", NULL};
	return run_as_pg(argv, pg_uid, pg_gid) && read_postmaster_pid();
}

/* Stops the server by its postmaster's pid (fast shutdown) and waits. */
static void pg_stop(void)
{
	if (postmaster <= 0)
		return;
	kill(postmaster, SIGINT);
	for (int i = 0; i < 3000 && kill(postmaster, 0) == 0; i++)
		usleep(10000);
	postmaster = 0;
}

static bool start_cluster(void)
{
	char bindir[256], initdb[300];
	pg_uid = getuid();
	pg_gid = getgid();
	if (!find_bindir(bindir, sizeof bindir))
		return false;
	if (getuid() == 0) {
		struct passwd *pw = getpwnam("postgres");
		if (!pw)
			return false;
		pg_uid = pw->pw_uid;
		pg_gid = pw->pw_gid;
	}
	snprintf(cluster_dir, sizeof cluster_dir, "/tmp/consuma-pgtest.XXXXXX");
	if (!mkdtemp(cluster_dir) || chown(cluster_dir, pg_uid, pg_gid) != 0)
		return false;
	int port = free_port();
	snprintf(initdb, sizeof initdb, "%s/initdb", bindir);
	snprintf(pg_ctl, sizeof pg_ctl, "%s/pg_ctl", bindir);
	snprintf(pg_data, sizeof pg_data, "%s/data", cluster_dir);
	snprintf(pg_log, sizeof pg_log, "%s/log", cluster_dir);
	snprintf(pg_opts, sizeof pg_opts,
	         "-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60",
	         port, cluster_dir);
	char *init_argv[] = {initdb, "-D",    pg_data,     "-U", "postgres",
	                     "-A",   "trust", "--no-sync", NULL};
	if (!run_as_pg(init_argv, pg_uid, pg_gid) || !pg_ctl_start())
		return false;
	snprintf(server_url, sizeof server_url, "postgresql://postgres@127.0.0.1:%d/postgres",
	         port);
	return true;
}

static void stop_cluster(void)
{
	pg_stop();
	if (cluster_dir[0]) {
		char cmd[400];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", cluster_dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", cluster_dir);
	}
}

/* ---- helpers ------------------------------------------------------------ */

/* The URL of database name on the server. */
static void db_url(const char *name, char *out, size_t len)
{
	const char *slash = strrchr(server_url, '/');
	snprintf(out, len, "%.*s/%s", (int)(slash - server_url), server_url, name);
}

static bool sql_sqlite(const char *path, const char *q, char *out, size_t len)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	bool ok = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) == SQLITE_OK &&
	          sqlite3_prepare_v2(db, q, -1, &st, NULL) == SQLITE_OK;
	int rc = ok ? sqlite3_step(st) : SQLITE_ERROR;
	ok = rc == SQLITE_ROW || rc == SQLITE_DONE;
	if (!ok)
		fprintf(stderr, "sql: %s: %s\n", q, sqlite3_errmsg(db));
	if (out)
		snprintf(out, len, "%s",
		         rc == SQLITE_ROW && sqlite3_column_text(st, 0)
		             ? (const char *)sqlite3_column_text(st, 0)
		             : "");
	sqlite3_finalize(st);
	sqlite3_close(db);
	return ok;
}

#ifdef CONSUMA_HAVE_POSTGRES
/* Runs q on a connection of its own to url, left open (a transaction it
 * opened stays open) until pg_release; NULL when q failed. */
static void *pg_hold(const char *url, const char *q, char *out, size_t len)
{
	PGconn *c = PQconnectdb(url);
	bool ok = PQstatus(c) == CONNECTION_OK;
	if (ok) {
		PGresult *r = PQexec(c, q);
		ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
		if (!ok)
			fprintf(stderr, "sql: %s: %s", q, PQerrorMessage(c));
		if (out)
			snprintf(out, len, "%s", ok && PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "");
		PQclear(r);
	}
	if (!ok) {
		PQfinish(c);
		return NULL;
	}
	return c;
}

static void pg_release(void *c)
{
	PQfinish(c);
}
#else
static void *pg_hold(const char *url, const char *q, char *out, size_t len)
{
	(void)url;
	(void)q;
	(void)out;
	(void)len;
	return NULL;
}

static void pg_release(void *c)
{
	(void)c;
}
#endif

/* Runs one statement on target (a URL or a file); its first value into out
 * (may be NULL). */
static bool sql(const char *target, const char *q, char *out, size_t len)
{
	if (!store_target_is_url(target))
		return sql_sqlite(target, q, out, len);
	void *c = pg_hold(target, q, out, len);
	pg_release(c);
	return c != NULL;
}

static int64_t sql_int(const char *url, const char *q)
{
	char v[64];
	assert_true(sql(url, q, v, sizeof v));
	return strtoll(v, NULL, 10);
}

struct fx {
	bool pg;
	char dir[64];  /* SQLite: the temporary directory of the file */
	char url[600]; /* the target: a URL or a file path */
	struct store *s;
};

static int setup(void **state)
{
	if (run_pg && !server_url[0]) {
		skip();
		return 0;
	}
	struct fx *f = calloc(1, sizeof *f);
	assert_non_null(f);
	f->pg = run_pg;
	if (f->pg) {
		char name[64], q[128];
		snprintf(name, sizeof name, "consuma_t%d_%d", (int)getpid(), ++db_counter);
		snprintf(q, sizeof q, "CREATE DATABASE %s TEMPLATE template0", name);
		assert_true(sql(server_url, q, NULL, 0));
		db_url(name, f->url, sizeof f->url);
	} else {
		snprintf(f->dir, sizeof f->dir, "/tmp/consuma-st.XXXXXX");
		assert_non_null(mkdtemp(f->dir));
		snprintf(f->url, sizeof f->url, "%s/consuma.db", f->dir);
	}
	enum store_err err;
	char msg[256];
	f->s = store_open(f->url, &err, msg, sizeof msg);
	if (!f->s)
		fail_msg("store_open: %d %s", err, msg);
	store_set_owner(f->s, "test-owner");
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	if (!f)
		return 0;
	store_close(f->s);
	if (f->dir[0]) {
		char cmd[128];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", f->dir);
	}
	free(f);
	return 0;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void make_id(char *out, int n)
{
	snprintf(out, 37, "0190a000-0000-7000-8000-%012d", n);
}

/* A job as the API writes it; the bounds off unless the case sets them. */
static struct job_insert job(const char *id, const char *url)
{
	return (struct job_insert){
	    .id = id,
	    .input_data = "hello",
	    .iterations = 1,
	    .callback_url = url,
	    .callback_host = "127.0.0.1",
	    .client_addr = "10.0.0.1",
	    .body_hash = "h1",
	    .created_at = now_ms(),
	};
}

static void insert_ok(struct store *s, struct job_insert *j)
{
	struct job_result res;
	enum store_err err = store_insert_job(s, j, &res);
	if (err != STORE_OK)
		fail_msg("insert %s: %d %s", j->id, err, store_errmsg(s));
	assert_false(res.replayed);
	assert_string_equal(res.id, j->id);
}

static struct store *open_more(const char *url)
{
	enum store_err err;
	char msg[256];
	struct store *s = store_open(url, &err, msg, sizeof msg);
	if (!s)
		fail_msg("store_open: %d %s", err, msg);
	return s;
}

/* ---- cases ---------------------------------------------------------------- */

static void test_backend_name(void **state)
{
	struct fx *f = *state;
	assert_string_equal(store_backend(f->s), f->pg ? "postgres" : "sqlite");
	assert_int_equal(store_target_is_url(f->url), f->pg);
}

/* Many processes opening a fresh database at once: each script once. */
static void test_migrations_concurrent(void **state)
{
	struct fx *f = *state;
	if (!f->pg)
		skip(); /* test_store.c has SQLite's */
	char name[64], q[128], url[600];
	snprintf(name, sizeof name, "consuma_m%d", (int)getpid());
	snprintf(q, sizeof q, "CREATE DATABASE %s TEMPLATE template0", name);
	assert_true(sql(server_url, q, NULL, 0));
	db_url(name, url, sizeof url);
	pid_t kids[6];
	for (int i = 0; i < 6; i++) {
		kids[i] = fork();
		if (kids[i] == 0) {
			enum store_err err;
			struct store *s = store_open(url, &err, NULL, 0);
			store_close(s);
			_exit(s ? 0 : 1);
		}
	}
	for (int i = 0; i < 6; i++) {
		int st;
		assert_int_equal(waitpid(kids[i], &st, 0), kids[i]);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	assert_int_equal(sql_int(url, "SELECT count(*) FROM consuma_schema"),
	                 sql_int(url, "SELECT max(version) FROM consuma_schema"));
	/* a schema newer than ours is refused */
	assert_true(sql(url, "INSERT INTO consuma_schema VALUES (9999, 'future', 0)", NULL, 0));
	enum store_err err;
	assert_null(store_open(url, &err, NULL, 0));
	assert_int_equal(err, STORE_MIGRATION);
	(void)f;
}

static void test_job_roundtrip(void **state)
{
	struct fx *f = *state;
	char id[37];
	make_id(id, 1);
	struct job_insert j = job(id, "http://127.0.0.1:9/cb");
	j.owner = "alice";
	insert_ok(f->s, &j);

	struct store_request r;
	assert_int_equal(store_get_request(f->s, id, NULL, &r), STORE_OK);
	assert_string_equal(r.mode, "async");
	assert_string_equal(r.status, "queued");
	assert_string_equal(r.callback_status, "pending");
	assert_string_equal(r.input_data, "hello");
	assert_string_equal(r.callback_url, "http://127.0.0.1:9/cb");
	assert_string_equal(r.result, "");
	assert_false(r.has_duration);
	assert_int_equal(r.n_trace, 0);
	assert_true(r.next_attempt_at > 0);
	store_request_clear(&r);
	assert_int_equal(store_get_request(f->s, id, "alice", &r), STORE_OK);
	store_request_clear(&r);
	assert_int_equal(store_get_request(f->s, id, "bob", &r), STORE_NOTFOUND);
	assert_int_equal(store_get_request(f->s, "nope", NULL, &r), STORE_NOTFOUND);

	struct sync_record sr = {.id = "0190a000-0000-7000-8000-999999999999",
	                         .input_data = "x",
	                         .iterations = 2,
	                         .result = "ab",
	                         .duration_ms = 1.25,
	                         .created_at = now_ms(),
	                         .completed_at = now_ms(),
	                         .client_addr = "10.0.0.2"};
	assert_int_equal(store_insert_sync(f->s, &sr), STORE_OK);
	/* the id exists: SQLite refuses the insert, PostgreSQL drops the
	 * record at commit (its batch writes the records together) */
	assert_int_equal(store_insert_sync(f->s, &sr), f->pg ? STORE_OK : STORE_IO);
	assert_int_equal(sql_int(f->url, "SELECT count(*) FROM requests WHERE mode = 'sync'"), 1);

	struct store_page pg;
	struct list_query lq = {.limit = 10};
	assert_int_equal(store_list_requests(f->s, &lq, &pg), STORE_OK);
	assert_int_equal(pg.n, 2);
	assert_string_equal(pg.items[0].mode, "sync"); /* newest first */
	assert_true(pg.items[0].has_duration);
	assert_true(pg.items[0].duration_ms == 1.25);
	store_page_clear(&pg);
	lq.mode = "async";
	assert_int_equal(store_list_requests(f->s, &lq, &pg), STORE_OK);
	assert_int_equal(pg.n, 1);
	store_page_clear(&pg);
	lq.mode = NULL;
	lq.status = "pending";
	assert_int_equal(store_list_requests(f->s, &lq, &pg), STORE_OK);
	assert_int_equal(pg.n, 1);
	store_page_clear(&pg);
	lq.status = NULL;
	lq.owner = "alice";
	assert_int_equal(store_list_requests(f->s, &lq, &pg), STORE_OK);
	assert_int_equal(pg.n, 1);
	store_page_clear(&pg);
	lq = (struct list_query){.mode = "weird", .limit = 10};
	assert_int_equal(store_list_requests(f->s, &lq, &pg), STORE_OK);
	assert_int_equal(pg.n, 0);
	store_page_clear(&pg);
}

static void test_idempotency(void **state)
{
	struct fx *f = *state;
	char a[37], b[37], c[37];
	struct job_result res;
	make_id(a, 1);
	make_id(b, 2);
	make_id(c, 3);
	struct job_insert j = job(a, "http://127.0.0.1:9/cb");
	j.idempotency_key = "k1";
	j.idempotency_ttl_ms = 60000;
	insert_ok(f->s, &j);
	j.id = b;
	assert_int_equal(store_insert_job(f->s, &j, &res), STORE_OK);
	assert_true(res.replayed);
	assert_string_equal(res.id, a);
	assert_string_equal(res.status, "queued");
	j.body_hash = "h2";
	assert_int_equal(store_insert_job(f->s, &j, &res), STORE_CONFLICT);
	assert_string_equal(res.id, a);
	/* another client's same key is another key */
	j.body_hash = "h1";
	j.client_addr = "10.9.9.9";
	insert_ok(f->s, &j);
	/* a key older than the TTL is forgotten */
	j.client_addr = "10.0.0.1";
	j.id = c;
	j.created_at += 60000;
	insert_ok(f->s, &j);
	assert_int_equal(
	    sql_int(f->url, "SELECT count(*) FROM requests WHERE idempotency_key = 'k1'"), 2);
}

/* In one batch: a replay, a conflict and a refusal are answers, and the
 * transaction goes on (no statement of theirs may fail). */
static void test_batch_survives_answers(void **state)
{
	struct fx *f = *state;
	struct store *s = f->s;
	char ids[4][37];
	struct job_result res;
	for (int i = 0; i < 4; i++)
		make_id(ids[i], i + 1);
	struct job_insert j = job(ids[0], "http://127.0.0.1:9/cb");
	j.idempotency_key = "k";
	struct sync_record sr = {.id = "0190a000-0000-7000-8000-999999999999",
	                         .input_data = "x",
	                         .iterations = 1,
	                         .result = "r"};
	assert_int_equal(store_insert_sync(s, &sr), STORE_OK);
	assert_int_equal(s->ops->batch_begin(s), STORE_OK);
	assert_int_equal(s->ops->job_in_tx(s, &j, &res), STORE_OK);
	assert_false(res.replayed);
	j.id = ids[1];
	assert_int_equal(s->ops->job_in_tx(s, &j, &res), STORE_OK); /* its own batch's key */
	assert_true(res.replayed);
	assert_string_equal(res.id, ids[0]);
	j.body_hash = "other";
	assert_int_equal(s->ops->job_in_tx(s, &j, &res), STORE_CONFLICT);
	struct job_insert k = job(ids[2], "http://127.0.0.1:9/cb");
	k.max_queue_size = 1; /* the batch's own first job counts */
	assert_int_equal(s->ops->job_in_tx(s, &k, &res), STORE_REFUSED);
	assert_int_equal(res.refusal, JOB_QUEUE_FULL);
	assert_int_equal(s->ops->sync_record_in_tx(s, &sr), f->pg ? STORE_OK : STORE_IO);
	assert_true(s->ops->in_tx(s));
	k.max_queue_size = 0;
	assert_int_equal(s->ops->job_in_tx(s, &k, &res), STORE_OK);
	assert_int_equal(s->ops->batch_commit(s, 2), STORE_OK);
	assert_int_equal(s->ops->make_durable(s), STORE_OK);
	assert_false(s->ops->in_tx(s));
	assert_int_equal(sql_int(f->url, "SELECT count(*) FROM requests WHERE mode = 'async'"), 2);
	assert_int_equal(sql_int(f->url, "SELECT count(*) FROM requests WHERE mode = 'sync'"), 1);

	/* an aborted batch leaves nothing */
	make_id(ids[3], 9);
	k.id = ids[3];
	assert_int_equal(s->ops->batch_begin(s), STORE_OK);
	assert_int_equal(s->ops->job_in_tx(s, &k, &res), STORE_OK);
	s->ops->batch_abort(s);
	assert_int_equal(sql_int(f->url, "SELECT count(*) FROM requests WHERE mode = 'async'"), 2);
}

static void test_bounds(void **state)
{
	struct fx *f = *state;
	char id[37];
	struct job_result res;
	for (int i = 0; i < 3; i++) {
		make_id(id, i + 1);
		struct job_insert j = job(id, "http://127.0.0.1:9/cb");
		j.max_queue_size = 3;
		insert_ok(f->s, &j);
	}
	make_id(id, 10);
	struct job_insert j = job(id, "http://127.0.0.1:9/cb");
	j.max_queue_size = 3;
	assert_int_equal(store_insert_job(f->s, &j, &res), STORE_REFUSED);
	assert_int_equal(res.refusal, JOB_QUEUE_FULL);
	assert_int_equal(res.queue_depth, 3);
	j.max_queue_size = 0;
	j.max_client_pending = 3;
	assert_int_equal(store_insert_job(f->s, &j, &res), STORE_REFUSED);
	assert_int_equal(res.refusal, JOB_CLIENT_SHARE);
	j.client_addr = "10.0.0.77";
	j.max_host_pending = 3;
	assert_int_equal(store_insert_job(f->s, &j, &res), STORE_REFUSED);
	assert_int_equal(res.refusal, JOB_HOST_PENDING);
	/* counted under its resolved keys: a new key has room */
	j.pending_keys = "[\"other.example\", \"192.0.2.1/32\"]";
	insert_ok(f->s, &j);
	make_id(id, 11);
	j.id = id;
	j.pending_keys = "[\"x.example\", \"192.0.2.1/32\"]";
	j.max_host_pending = 1;
	assert_int_equal(store_insert_job(f->s, &j, &res), STORE_REFUSED);
	assert_int_equal(res.refusal, JOB_HOST_PENDING);

	struct store_health h;
	assert_int_equal(store_health(f->s, 10000, &h), STORE_OK);
	assert_int_equal(h.queue_depth, 4);
	assert_false(h.deliverer_seen);
}

/* Claims, the lease's fencing and the end of a job. */
static void test_claim_deliver(void **state)
{
	struct fx *f = *state;
	char id[37];
	make_id(id, 1);
	struct job_insert j = job(id, "http://127.0.0.1:9/cb");
	insert_ok(f->s, &j);
	struct store *other = open_more(f->url);
	store_set_owner(other, "other-owner");

	int64_t now = now_ms() + 1;
	struct store_job *jobs = NULL;
	int n = 0;
	assert_int_equal(store_claim(f->s, now, 1000, 10, NULL, &jobs, &n), STORE_OK);
	assert_int_equal(n, 1);
	struct store_job mine = jobs[0];
	assert_string_equal(mine.id, id);
	assert_false(mine.computed);
	assert_int_equal(mine.attempts, 0);
	assert_true(mine.lease_token > 0);
	assert_string_equal(mine.input_data, "hello");
	assert_int_equal(mine.input_len, 5);
	assert_string_equal(mine.callback_host, "127.0.0.1");

	struct store_job *o = NULL;
	int on = 0;
	assert_int_equal(store_claim(other, now, 1000, 10, NULL, &o, &on), STORE_OK);
	assert_int_equal(on, 0); /* leased */

	bool found;
	int64_t due;
	assert_int_equal(store_next_due(other, NULL, INT64_MIN, &found, &due), STORE_OK);
	assert_true(found);
	assert_int_equal(due, now + 1000);

	/* begin an attempt, then lose the lease to the other owner */
	memcpy(mine.result, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", 65);
	mine.duration_ms = 2.5;
	mine.completed_at = now;
	assert_int_equal(store_begin(f->s), STORE_OK);
	assert_int_equal(store_attempt_begin(f->s, &mine, true, 1, now), STORE_OK);
	assert_int_equal(store_commit(f->s), STORE_OK);

	assert_int_equal(store_claim(other, now + 1000, 1000, 10, NULL, &o, &on), STORE_OK);
	assert_int_equal(on, 1);
	assert_true(o[0].computed);
	assert_int_equal(o[0].attempts, 1);
	assert_int_equal(o[0].unknown, 1); /* our 'sending' attempt */
	assert_true(o[0].lease_token != mine.lease_token);

	struct store_outcome out = {.number = 1,
	                            .duration_ms = 3,
	                            .http_status = 200,
	                            .verdict = STORE_DELIVERED,
	                            .now = now + 1100};
	assert_int_equal(store_begin(f->s), STORE_OK);
	assert_int_equal(store_attempt_end(f->s, &mine, &out), STORE_FENCED);
	assert_int_equal(store_release(f->s, &mine, false, now), STORE_FENCED);
	assert_int_equal(store_attempt_begin(f->s, &mine, false, 2, now), STORE_FENCED);
	assert_int_equal(store_commit(f->s), STORE_OK); /* fenced writes leave it usable */

	/* the new holder delivers */
	assert_int_equal(store_begin(other), STORE_OK);
	assert_int_equal(store_attempt_begin(other, &o[0], false, 2, now + 1000), STORE_OK);
	out.number = 2;
	assert_int_equal(store_attempt_end(other, &o[0], &out), STORE_OK);
	assert_int_equal(store_commit(other), STORE_OK);

	struct store_request r;
	assert_int_equal(store_get_request(f->s, id, NULL, &r), STORE_OK);
	assert_string_equal(r.status, "completed");
	assert_string_equal(r.callback_status, "delivered");
	assert_int_equal(r.attempts, 2);
	assert_int_equal(r.n_trace, 2);
	assert_string_equal(r.trace[0].state, "unknown");
	assert_non_null(r.trace[0].error_class);
	assert_string_equal(r.trace[1].state, "done");
	assert_int_equal(r.trace[1].http_status, 200);
	assert_true(r.finished_at > 0);
	assert_int_equal(r.next_attempt_at, 0);
	assert_string_equal(r.result,
	                    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
	store_request_clear(&r);

	struct store_health h;
	assert_int_equal(store_health(f->s, 10000, &h), STORE_OK);
	assert_int_equal(h.queue_depth, 0);
	int64_t drained = 0;
	assert_int_equal(store_drained(f->s, (now + 1100) / 1000, &drained), STORE_OK);
	assert_int_equal(drained, 1);

	store_job_clear(&mine);
	cz_free(jobs);
	store_job_clear(&o[0]);
	cz_free(o);
	store_close(other);
}

/* Retry, release, renew, hand back; exclusions by claim key. */
static void test_retry_release(void **state)
{
	struct fx *f = *state;
	char a[37], b[37];
	make_id(a, 1);
	make_id(b, 2);
	struct job_insert j = job(a, "http://Host-A:8001/x");
	insert_ok(f->s, &j);
	j = job(b, "http://host-b:8002?q");
	insert_ok(f->s, &j);
	int64_t now = now_ms() + 1;

	char key[64];
	store_claim_key("http://Host-A:8001/x", key, sizeof key);
	assert_string_equal(key, "http://host-a:8001");
	const char *keys[] = {key};
	struct store_exclude ex = {.keys = keys, .n = 1};
	struct store_job *jobs;
	int n;
	assert_int_equal(store_claim(f->s, now, 5000, 10, &ex, &jobs, &n), STORE_OK);
	assert_int_equal(n, 1);
	assert_string_equal(jobs[0].id, b);
	/* the SQL claim key agrees with store_claim_key */
	char sqlkey[128];
	if (!f->pg)
		goto renew; /* SQLite's is an expression inside its claim */
	assert_true(sql(f->url,
	                "SELECT consuma_claim_key('http://host-b:8002?q') || '|' || "
	                "consuma_claim_key('HTTP://X.example#f') || '|' || consuma_claim_key('no')",
	                sqlkey, sizeof sqlkey));
	char k2[64], k3[64], k4[64], want[256];
	store_claim_key("http://host-b:8002?q", k2, sizeof k2);
	store_claim_key("HTTP://X.example#f", k3, sizeof k3);
	store_claim_key("no", k4, sizeof k4);
	snprintf(want, sizeof want, "%s|%s|%s", k2, k3, k4);
	assert_string_equal(sqlkey, want);
renew:;
	int64_t renewed = 0;
	assert_int_equal(store_renew(f->s, now, 9000, &renewed), STORE_OK);
	assert_int_equal(renewed, 1);

	/* retry: released, due later */
	assert_int_equal(store_begin(f->s), STORE_OK);
	assert_int_equal(store_attempt_begin(f->s, &jobs[0], false, 1, now), STORE_OK);
	struct store_outcome o = {.number = 1,
	                          .duration_ms = 1,
	                          .http_status = 503,
	                          .error_class = "http_5xx",
	                          .error_message = "503",
	                          .verdict = STORE_RETRY,
	                          .next_attempt_at = now + 60000,
	                          .now = now};
	assert_int_equal(store_attempt_end(f->s, &jobs[0], &o), STORE_OK);
	assert_int_equal(store_commit(f->s), STORE_OK);
	struct store_request r;
	assert_int_equal(store_get_request(f->s, b, NULL, &r), STORE_OK);
	assert_string_equal(r.callback_status, "retrying");
	assert_int_equal(r.next_attempt_at, now + 60000);
	assert_string_equal(r.last_error, "503");
	assert_int_equal(r.trace[0].next_attempt_at, now + 60000);
	store_request_clear(&r);
	store_job_clear(&jobs[0]);
	cz_free(jobs);

	/* release without an attempt; hand back */
	assert_int_equal(store_claim(f->s, now, 5000, 10, NULL, &jobs, &n), STORE_OK);
	assert_int_equal(n, 1);
	assert_string_equal(jobs[0].id, a);
	assert_int_equal(store_begin(f->s), STORE_OK);
	assert_int_equal(store_release(f->s, &jobs[0], false, now + 5), STORE_OK);
	assert_int_equal(store_commit(f->s), STORE_OK);
	assert_int_equal(store_get_request(f->s, a, NULL, &r), STORE_OK);
	assert_string_equal(r.status, "queued");
	store_request_clear(&r);
	store_job_clear(&jobs[0]);
	cz_free(jobs);
	assert_int_equal(store_claim(f->s, now + 5, 5000, 10, NULL, &jobs, &n), STORE_OK);
	assert_int_equal(n, 1);
	int64_t released = 0;
	assert_int_equal(store_handback_all(f->s, now, &released), STORE_OK);
	assert_int_equal(released, 1);
	store_job_clear(&jobs[0]);
	cz_free(jobs);
	assert_int_equal(store_claim(f->s, now + 5, 5000, 10, NULL, &jobs, &n), STORE_OK);
	assert_int_equal(n, 1);
	store_job_clear(&jobs[0]);
	cz_free(jobs);
}

/* A row another transaction holds is skipped, not waited for. */
static void test_skip_locked(void **state)
{
	struct fx *f = *state;
	if (!f->pg)
		skip(); /* SQLite has one writer: no row locks to skip */
	char a[37], b[37];
	make_id(a, 1);
	make_id(b, 2);
	struct job_insert j = job(a, "http://127.0.0.1:9/cb");
	insert_ok(f->s, &j);
	j.id = b;
	insert_ok(f->s, &j);
	char q[160];
	snprintf(q, sizeof q, "BEGIN; SELECT 1 FROM requests WHERE id = '%s' FOR UPDATE", a);
	void *c = pg_hold(f->url, q, NULL, 0);
	assert_non_null(c);
	struct store_job *jobs;
	int n;
	assert_int_equal(store_claim(f->s, now_ms() + 1, 5000, 10, NULL, &jobs, &n), STORE_OK);
	assert_int_equal(n, 1);
	assert_string_equal(jobs[0].id, b);
	store_job_clear(&jobs[0]);
	cz_free(jobs);
	pg_release(c);
}

static bool dead_other(const char *owner, int64_t pid, void *arg)
{
	(void)pid;
	(void)arg;
	return strcmp(owner, "other-owner") == 0;
}

static void test_heartbeat_recover(void **state)
{
	struct fx *f = *state;
	char id[37];
	make_id(id, 1);
	struct job_insert j = job(id, "http://127.0.0.1:9/cb");
	insert_ok(f->s, &j);
	struct store *other = open_more(f->url);
	store_set_owner(other, "other-owner");
	int64_t now = now_ms() + 1;
	struct store_beat beat = {
	    .pid = 42, .started_at = now - 5, .busy_workers = 1, .workers = 4, .inflight = 2};
	assert_int_equal(store_heartbeat(other, now, &beat), STORE_OK);
	assert_int_equal(store_heartbeat(f->s, now, &beat), STORE_OK);
	struct store_job *jobs;
	int n;
	assert_int_equal(store_claim(other, now, 600000, 10, NULL, &jobs, &n), STORE_OK);
	assert_int_equal(n, 1);
	store_job_clear(&jobs[0]);
	cz_free(jobs);

	struct store_health h;
	assert_int_equal(store_health(f->s, 60000, &h), STORE_OK);
	assert_true(h.deliverer_seen);
	assert_int_equal(h.deliverers_alive, 2);
	assert_int_equal(h.workers, 8);
	assert_int_equal(h.deliverer_pid, 42);

	int64_t recovered = 0;
	assert_int_equal(store_recover_dead(f->s, now, dead_other, NULL, &recovered), STORE_OK);
	assert_int_equal(recovered, 1);
	assert_int_equal(store_claim(f->s, now, 1000, 10, NULL, &jobs, &n), STORE_OK);
	assert_int_equal(n, 1);
	store_job_clear(&jobs[0]);
	cz_free(jobs);
	assert_int_equal(store_health(f->s, 60000, &h), STORE_OK);
	assert_int_equal(h.deliverers_alive, 1);
	assert_int_equal(store_heartbeat_remove(f->s), STORE_OK);
	assert_int_equal(store_health(f->s, 60000, &h), STORE_OK);
	assert_false(h.deliverer_seen);
	store_close(other);
}

/* Finishes job id (claimed now) with verdict v. */
static void finish(struct store *s, int64_t now, enum store_verdict v)
{
	struct store_job *jobs;
	int n;
	assert_int_equal(store_claim(s, now, 5000, 1, NULL, &jobs, &n), STORE_OK);
	assert_int_equal(n, 1);
	assert_int_equal(store_begin(s), STORE_OK);
	assert_int_equal(store_attempt_begin(s, &jobs[0], false, jobs[0].attempts + 1, now),
	                 STORE_OK);
	struct store_outcome o = {.number = jobs[0].attempts + 1,
	                          .verdict = v,
	                          .now = now,
	                          .error_class = v == STORE_FAILED ? "x" : NULL,
	                          .error_message = v == STORE_FAILED ? "gave up" : NULL};
	assert_int_equal(store_attempt_end(s, &jobs[0], &o), STORE_OK);
	assert_int_equal(store_commit(s), STORE_OK);
	store_job_clear(&jobs[0]);
	cz_free(jobs);
}

static void test_redeliver_prune(void **state)
{
	struct fx *f = *state;
	char ids[4][37];
	for (int i = 0; i < 4; i++) {
		make_id(ids[i], i + 1);
		struct job_insert j = job(ids[i], "http://127.0.0.1:9/cb");
		j.pending_keys = "[\"a\", \"b\"]";
		insert_ok(f->s, &j);
	}
	int64_t now = now_ms() + 1000; /* every job is due */
	finish(f->s, now + 1, STORE_FAILED);
	finish(f->s, now + 2, STORE_DELIVERED);
	finish(f->s, now + 3, STORE_FAILED);
	assert_int_equal(sql_int(f->url, "SELECT sum(n) FROM host_pending WHERE host = 'a'"), 1);

	enum store_redeliver out;
	int64_t seq = 0;
	assert_int_equal(store_redeliver_one(f->s, ids[0], now + 10, &out, &seq), STORE_OK);
	assert_int_equal(out, STORE_REDELIVERED);
	assert_true(seq > 0);
	int64_t seq2 = 0;
	assert_int_equal(store_redeliver_one(f->s, ids[0], now + 10, &out, &seq2), STORE_OK);
	assert_int_equal(out, STORE_REDELIVER_BUSY);
	assert_int_equal(store_redeliver_one(f->s, "missing", now, &out, &seq2), STORE_NOTFOUND);
	struct store_request r;
	assert_int_equal(store_get_request(f->s, ids[0], NULL, &r), STORE_OK);
	assert_string_equal(r.callback_status, "retrying");
	assert_int_equal(r.finished_at, 0);
	assert_int_equal(r.next_attempt_at, now + 10);
	store_request_clear(&r);
	assert_int_equal(sql_int(f->url, "SELECT sum(n) FROM host_pending WHERE host = 'b'"), 2);

	struct redeliver_query q = {
	    .callback_status = "failed", .since_ms = 0, .until_ms = now + 100000, .max_jobs = 10};
	int64_t matched, redelivered, min_seq;
	assert_int_equal(
	    store_redeliver_bulk(f->s, &q, true, now + 20, &matched, &redelivered, &min_seq),
	    STORE_OK);
	assert_int_equal(matched, 1);
	assert_int_equal(redelivered, 0);
	assert_int_equal(
	    store_redeliver_bulk(f->s, &q, false, now + 20, &matched, &redelivered, &min_seq),
	    STORE_OK);
	assert_int_equal(redelivered, 1);
	assert_true(min_seq > seq);
	struct store_health h;
	assert_int_equal(store_health(f->s, 1000, &h), STORE_OK);
	assert_int_equal(h.queue_depth, 3);

	bool found;
	int64_t oseq, created;
	assert_int_equal(store_oldest_pending(f->s, 0, 100, &found, &oseq, &created), STORE_OK);
	assert_true(found);
	assert_int_equal(oseq, seq);
	assert_int_equal(store_oldest_pending(f->s, seq + 1, 100, &found, &oseq, &created),
	                 STORE_OK);
	assert_true(found);

	/* prune: only the finished one (ids[1], delivered) goes */
	int64_t deleted = -1;
	assert_int_equal(store_prune(f->s, now + 100000, 100, &deleted), STORE_OK);
	assert_int_equal(deleted, 1);
	assert_int_equal(store_get_request(f->s, ids[1], NULL, &r), STORE_NOTFOUND);
	assert_int_equal(sql_int(f->url, "SELECT count(*) FROM attempts"), 2);
	/* the fold keeps every sum */
	if (f->pg)
		assert_int_equal(sql_int(f->url, "SELECT count(*) FROM counters WHERE shard <> 0"),
		                 0);
	assert_int_equal(sql_int(f->url, "SELECT sum(value) FROM counters"), 3);
	assert_int_equal(sql_int(f->url, "SELECT sum(n) FROM host_pending WHERE host = 'a'"), 3);
	assert_int_equal(store_health(f->s, 1000, &h), STORE_OK);
	assert_int_equal(h.queue_depth, 3);
	for (int i = 0; i < 3; i++)
		finish(f->s, now + 200 + i, STORE_DELIVERED);
	assert_int_equal(store_prune(f->s, now + 100000, 100, &deleted), STORE_OK);
	assert_int_equal(deleted, 3);
	assert_int_equal(sql_int(f->url, "SELECT count(*) FROM host_pending"), 0);
	assert_int_equal(sql_int(f->url, "SELECT count(*) FROM client_pending"), 0);
	assert_int_equal(store_health(f->s, 1000, &h), STORE_OK);
	assert_int_equal(h.queue_depth, 0);
}

/* The committer's notice reaches a listener; one per batch at most. */
static void test_listen_notify(void **state)
{
	struct fx *f = *state;
	struct store *d = open_more(f->url);
	int fd = -1;
	assert_int_equal(store_listen(d, &fd), STORE_OK);
	if (!f->pg) { /* SQLite's wake-up is the host's doorbell */
		assert_int_equal(fd, -1);
		assert_int_equal(store_listen_drain(d), 0);
		store_close(d);
		return;
	}
	assert_true(fd >= 0);
	char id[37];
	make_id(id, 1);
	struct job_insert j = job(id, "http://127.0.0.1:9/cb");
	enum store_err err;
	struct store_committer *c = store_committer_start(f->url, &err, NULL, 0);
	assert_non_null(c);
	store_use_committer(f->s, c); /* the committer's batch sends the notice */
	insert_ok(f->s, &j);
	store_use_committer(f->s, NULL);
	store_committer_stop(c);
	struct pollfd p = {.fd = fd, .events = POLLIN};
	assert_int_equal(poll(&p, 1, 5000), 1);
	int got = 0;
	for (int i = 0; i < 50 && got == 0; i++) {
		got = store_listen_drain(d);
		if (got == 0)
			usleep(10000);
	}
	assert_true(got >= 1);
	assert_int_equal(store_listen_drain(d), 0);
	store_close(d);
}

/* A killed backend is STORE_UNAVAILABLE once, then the store reconnects
 * by itself; inside a transaction it stays failed until the rollback. */
static void test_reconnect(void **state)
{
	struct fx *f = *state;
	if (!f->pg)
		skip();
	struct store_health h;
	assert_int_equal(store_health(f->s, 1000, &h), STORE_OK);
	char q[256];
	snprintf(q, sizeof q,
	         "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
	         "current_database() AND pid <> pg_backend_pid()");
	assert_true(sql(f->url, q, NULL, 0));
	usleep(100000);
	enum store_err err = store_health(f->s, 1000, &h);
	assert_int_equal(err, STORE_UNAVAILABLE);
	assert_true(store_err_transient(err));
	assert_int_equal(store_health(f->s, 1000, &h), STORE_OK);

	char id[37];
	make_id(id, 1);
	struct job_insert j = job(id, "http://127.0.0.1:9/cb");
	insert_ok(f->s, &j);
	assert_int_equal(store_begin(f->s), STORE_OK);
	assert_true(sql(f->url, q, NULL, 0));
	usleep(100000);
	struct store_job *jobs;
	int n;
	int64_t renewed;
	err = store_renew(f->s, now_ms(), 1000, &renewed); /* own transaction: rolls ours back */
	assert_true(err == STORE_UNAVAILABLE || err == STORE_OK);
	store_rollback(f->s);
	assert_int_equal(store_claim(f->s, now_ms() + 1, 1000, 5, NULL, &jobs, &n), STORE_OK);
	assert_int_equal(n, 1);
	store_job_clear(&jobs[0]);
	cz_free(jobs);
}

/* Two connections racing for one key: one job, the other a replay. */
struct racer {
	const char *url;
	char id[37];
	struct job_result res;
	enum store_err err;
};

static void *race(void *arg)
{
	struct racer *r = arg;
	struct store *s = open_more(r->url);
	struct job_insert j = job(r->id, "http://127.0.0.1:9/cb");
	j.idempotency_key = "race";
	r->err = store_insert_job(s, &j, &r->res);
	store_close(s);
	return NULL;
}

static void test_idempotency_race(void **state)
{
	struct fx *f = *state;
	struct racer r[4];
	pthread_t t[4];
	for (int i = 0; i < 4; i++) {
		r[i].url = f->url;
		make_id(r[i].id, i + 1);
		assert_int_equal(pthread_create(&t[i], NULL, race, &r[i]), 0);
	}
	int fresh = 0;
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(r[i].err, STORE_OK);
		fresh += !r[i].res.replayed;
	}
	assert_int_equal(fresh, 1);
	for (int i = 1; i < 4; i++)
		assert_string_equal(r[i].res.id, r[0].res.id);
	assert_int_equal(sql_int(f->url, "SELECT count(*) FROM requests"), 1);
}

/* Two deliverers draining one queue at once: every job claimed, attempted
 * and delivered exactly once (SKIP LOCKED on PostgreSQL, one writer at a
 * time on SQLite). */
struct drainer {
	const char *url;
	char owner[32];
	int delivered, fenced;
	enum store_err err;
};

static void *drain_queue(void *arg)
{
	struct drainer *d = arg;
	struct store *s = open_more(d->url);
	store_set_owner(s, d->owner);
	for (int idle = 0; idle < 3 && d->err == STORE_OK;) {
		struct store_job *jobs = NULL;
		int n = 0;
		int64_t now = now_ms() + 1000;
		d->err = store_claim(s, now, 60000, 5, NULL, &jobs, &n);
		idle = n == 0 ? idle + 1 : 0;
		if (d->err == STORE_OK && n > 0)
			d->err = store_begin(s);
		for (int i = 0; d->err == STORE_OK && i < n; i++) {
			struct store_outcome o = {
			    .number = 1, .verdict = STORE_DELIVERED, .now = now};
			d->err = store_attempt_begin(s, &jobs[i], false, 1, now);
			if (d->err == STORE_OK)
				d->err = store_attempt_end(s, &jobs[i], &o);
			if (d->err == STORE_FENCED) {
				d->fenced++;
				d->err = STORE_OK;
			} else if (d->err == STORE_OK) {
				d->delivered++;
			}
		}
		if (d->err == STORE_OK && n > 0)
			d->err = store_commit(s);
		store_rollback(s);
		for (int i = 0; i < n; i++)
			store_job_clear(&jobs[i]);
		cz_free(jobs);
	}
	store_close(s);
	return NULL;
}

static void test_two_deliverers(void **state)
{
	struct fx *f = *state;
	enum store_err err;
	struct store_committer *c = store_committer_start(f->url, &err, NULL, 0);
	assert_non_null(c);
	store_use_committer(f->s, c);
	for (int i = 0; i < 200; i++) {
		char id[37];
		make_id(id, i + 1);
		struct job_insert j = job(id, "http://127.0.0.1:9/cb");
		insert_ok(f->s, &j);
	}
	store_use_committer(f->s, NULL);
	store_committer_stop(c);
	struct drainer d[2] = {{.url = f->url, .owner = "one"}, {.url = f->url, .owner = "two"}};
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&t[i], NULL, drain_queue, &d[i]), 0);
	for (int i = 0; i < 2; i++) {
		pthread_join(t[i], NULL);
		assert_int_equal(d[i].err, STORE_OK);
		assert_int_equal(d[i].fenced, 0);
	}
	assert_int_equal(d[0].delivered + d[1].delivered, 200);
	assert_int_equal(sql_int(f->url, "SELECT count(*) FROM attempts"), 200);
	assert_int_equal(
	    sql_int(f->url, "SELECT count(*) FROM requests WHERE callback_status = 'delivered' "
	                    "AND attempts = 1"),
	    200);
	struct store_health h;
	assert_int_equal(store_health(f->s, 1000, &h), STORE_OK);
	assert_int_equal(h.queue_depth, 0);
}

/* The server goes away and comes back: every call in between is
 * STORE_UNAVAILABLE (transient: the API's 503), and the same connection
 * works again afterwards without a restart. Only on our own cluster. */
static void test_server_restart(void **state)
{
	struct fx *f = *state;
	if (!f->pg || !cluster_dir[0])
		skip();
	char id[37];
	struct job_result res;
	struct store_health h;
	make_id(id, 1);
	struct job_insert j = job(id, "http://127.0.0.1:9/cb");
	pg_stop();
	assert_int_equal(store_insert_job(f->s, &j, &res), STORE_UNAVAILABLE);
	assert_int_equal(store_health(f->s, 1000, &h), STORE_UNAVAILABLE);
	assert_int_equal(store_health(f->s, 1000, &h), STORE_UNAVAILABLE);
	assert_true(pg_ctl_start());
	enum store_err err = STORE_UNAVAILABLE;
	for (int i = 0; i < 100 && err == STORE_UNAVAILABLE; i++) {
		err = store_insert_job(f->s, &j, &res);
		if (err == STORE_UNAVAILABLE)
			usleep(50000);
	}
	assert_int_equal(err, STORE_OK);
	assert_int_equal(store_health(f->s, 1000, &h), STORE_OK);
	assert_int_equal(h.queue_depth, 1);
}

int main(void)
{
	const char *env = getenv("CONSUMA_TEST_DATABASE_URL");
#ifdef CONSUMA_HAVE_POSTGRES
	if (env && env[0])
		snprintf(server_url, sizeof server_url, "%s", env);
	else if (!start_cluster())
		stop_cluster(); /* what it started */
	if (!server_url[0])
		fprintf(stderr,
		        "test_store_backends: no PostgreSQL server (set "
		        "CONSUMA_TEST_DATABASE_URL or install postgresql): its cases skip\n");
#else
	(void)env;
	fprintf(stderr, "test_store_backends: built without libpq: SQLite only\n");
#endif
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_backend_name, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_migrations_concurrent, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_job_roundtrip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_idempotency, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_batch_survives_answers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bounds, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_claim_deliver, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_retry_release, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_skip_locked, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_heartbeat_recover, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_redeliver_prune, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_listen_notify, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reconnect, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_idempotency_race, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_two_deliverers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_server_restart, setup, teardown),
	};
	run_pg = false;
	int rc = cmocka_run_group_tests_name("sqlite", tests, NULL, NULL);
#ifdef CONSUMA_HAVE_POSTGRES
	run_pg = true;
	rc += cmocka_run_group_tests_name("postgres", tests, NULL, NULL);
	stop_cluster();
#endif
	return rc;
}
