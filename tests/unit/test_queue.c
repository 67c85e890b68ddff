/*
 * test_queue: the deliverer's queue (store.h; the SQLite backend's
 * lib/store_sqlite_queue.c) against real database files:
 * claim order, batch size and host exclusions (and the claim mark that
 * lets excluded walks go on from the last); one owner at a time; an
 * expired lease claimable again; fencing of a holder that lost its lease;
 * the job and attempt rows after delivered, retry and failed outcomes (with
 * the queue counters); hand-back of a stopping deliverer and of one job;
 * renewal; recovery of a dead holder's 'sending' attempts as 'unknown'; the
 * heartbeat row; the next due time; and retention (queue_prune): age
 * cutoff, unfinished rows kept, attempts pruned with their request, the
 * batch bound, counters untouched.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "alloc.h"
#include "store.h"
#include "store_int.h"

#define LEASE_MS 30000

static char tmpdir[256];

/* The raw handle, for the checks' own SQL. */
static sqlite3 *db_of(struct store *s)
{
	return store_sqlite_handle(s);
}
static int dbcount;

struct fx {
	struct store *s; /* = a: for the raw SQL of the checks */
	struct store *a; /* owner "host:1:a" */
	struct store *b; /* owner "host:2:b", a second connection on the file */
};

static int64_t sql_int(struct store *s, const char *sql)
{
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(db_of(s), sql, -1, &st, NULL), SQLITE_OK);
	int64_t v = -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static void sql_text(struct store *s, const char *sql, char *out, size_t n)
{
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_prepare_v2(db_of(s), sql, -1, &st, NULL), SQLITE_OK);
	out[0] = '\0';
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		snprintf(out, n, "%s", (const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
}

/* Inserts an async job due at `due` for host. */
/* Enqueues an async job through the store, as consuma-fcgi does (so it is
 * counted: the counters are the store's, sql/sqlite/010). */
static void insert_job(struct store *s, const char *id, const char *url, const char *host,
                       int64_t due)
{
	char input[64];
	snprintf(input, sizeof input, "in-%s", id);
	struct job_insert j = {.id = id,
	                       .input_data = input,
	                       .iterations = 1,
	                       .callback_url = url,
	                       .callback_host = host,
	                       .body_hash = "aa",
	                       .created_at = due};
	struct job_result r;
	assert_int_equal(store_insert_job(s, &j, &r), STORE_OK);
}

static void add_job(struct store *s, const char *id, const char *host, int64_t due)
{
	char url[256];
	snprintf(url, sizeof url, "http://%s/cb", host);
	insert_job(s, id, url, host, due);
}

static int setup(void **state)
{
	struct fx *f = cz_calloc(1, sizeof *f);
	char path[300];
	snprintf(path, sizeof path, "%s/q%d.db", tmpdir, ++dbcount);
	enum store_err err;
	char msg[256];
	f->a = store_open(path, &err, msg, sizeof msg);
	f->b = store_open(path, &err, msg, sizeof msg);
	assert_non_null(f->a);
	assert_non_null(f->b);
	store_set_owner(f->a, "host:1:a");
	store_set_owner(f->b, "host:2:b");
	f->s = f->a;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	store_close(f->a);
	store_close(f->b);
	cz_free(f);
	return 0;
}

static void free_jobs(struct store_job *jobs, int n)
{
	for (int i = 0; i < n; i++)
		store_job_clear(&jobs[i]);
	cz_free(jobs);
}

/* Claims with q at now and returns the ids, comma separated. */
static int claim_ids(struct store *q, int64_t now, int max, const struct store_exclude *excl,
                     char *out, size_t n, struct store_job **keep)
{
	struct store_job *jobs = NULL;
	int got = -1;
	assert_int_equal(store_claim(q, now, LEASE_MS, max, excl, &jobs, &got), STORE_OK);
	out[0] = '\0';
	for (int i = 0; i < got; i++) {
		size_t len = strlen(out);
		snprintf(out + len, n - len, "%s%s", i ? "," : "", jobs[i].id);
	}
	if (keep)
		*keep = jobs;
	else
		free_jobs(jobs, got);
	return got;
}

static void test_claim_order_batch_exclusions(void **state)
{
	struct fx *f = *state;
	/* due times out of insertion order; one not yet due */
	add_job(f->s, "j1", "a.example", 300);
	add_job(f->s, "j2", "b.example", 100);
	add_job(f->s, "j3", "a.example", 100);
	add_job(f->s, "j4", "c.example", 200);
	add_job(f->s, "j5", "a.example", 5000);
	char ids[256];
	const char *const a_key[] = {"http://a.example"};
	const struct store_exclude a_out = {a_key, 1}, none = {a_key, 0};
	const struct {
		int max;
		const struct store_exclude *excl;
		const char *want;
	} rows[] = {
	    {2, NULL, "j2,j3"}, /* due time, then acceptance order */
	    {10, &a_out, "j4"}, /* a.example left out */
	    {10, &none, "j1"},  /* the rest that is due; j5 is not */
	    {10, NULL, ""},     /* everything due is leased now */
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		claim_ids(f->a, 1000, rows[i].max, rows[i].excl, ids, sizeof ids, NULL);
		assert_string_equal(ids, rows[i].want);
	}
	assert_int_equal(sql_int(f->s, "SELECT count(*) FROM requests WHERE status = 'running' "
	                               "AND lease_owner = 'host:1:a'"),
	                 4);
	/* The leased rows are due again exactly when the lease expires. */
	assert_int_equal(sql_int(f->s, "SELECT count(*) FROM requests WHERE lease_expires_at = "
	                               "next_attempt_at AND next_attempt_at = 1000 + 30000"),
	                 4);
}

/* The claim mark (store_sqlite_queue.c): a claim that leaves an origin out
 * and sees only its jobs marks how far it looked, and the next claim with
 * the same exclusions walks on from there; what became claimable since is
 * still found: a job committed after the mark but stamped before it (a
 * late group commit), one handed back due after it, and, once the mark
 * has run its second, a row moved behind it by another writer. Other
 * exclusions, or none, see everything behind the mark. */
static void test_claim_mark(void **state)
{
	struct fx *f = *state;
	char ids[256];
	const char *const keys[] = {"http://a.example", "http://b.example"};
	const struct store_exclude a_out = {keys, 1}, b_out = {keys + 1, 1};
	add_job(f->s, "a1", "a.example", 100);
	add_job(f->s, "a2", "a.example", 200);
	add_job(f->s, "c1", "c.example", 5000);
	assert_int_equal(claim_ids(f->a, 1000, 10, &a_out, ids, sizeof ids, NULL), 0);
	add_job(f->s, "b1", "b.example", 500); /* behind the mark, committed after it */
	struct store_job *held = NULL;
	claim_ids(f->a, 1100, 10, &a_out, ids, sizeof ids, &held);
	assert_string_equal(ids, "b1");
	/* handed back, due after the mark (its seq is not new) */
	assert_int_equal(store_begin(f->a), STORE_OK);
	assert_int_equal(store_release(f->a, &held[0], false, 1150), STORE_OK);
	assert_int_equal(store_commit(f->a), STORE_OK);
	free_jobs(held, 1);
	claim_ids(f->a, 1200, 10, &a_out, ids, sizeof ids, NULL);
	assert_string_equal(ids, "b1");
	/* c1 moved behind the mark by another writer, between two walks */
	assert_int_equal(sqlite3_exec(db_of(f->s),
	                              "UPDATE requests SET next_attempt_at = 50 WHERE id = 'c1'",
	                              NULL, NULL, NULL),
	                 SQLITE_OK);
	usleep(1100 * 1000); /* the mark's life (CLAIM_MARK_NS) */
	claim_ids(f->a, 1300, 10, &a_out, ids, sizeof ids, NULL);
	assert_string_equal(ids, "c1");
	/* other exclusions, then none: a.example's jobs behind the mark */
	claim_ids(f->a, 1400, 1, &b_out, ids, sizeof ids, NULL);
	assert_string_equal(ids, "a1");
	claim_ids(f->a, 1400, 10, NULL, ids, sizeof ids, NULL);
	assert_string_equal(ids, "a2");
}

/* Inserts a job due at 0 with callback_url url (and no callback_host). */
static void add_job_url(struct store *s, const char *id, const char *url)
{
	insert_job(s, id, url, NULL, 0);
}

/* 008's claim_key column, the expression 011 backfilled claim_origin with
 * on upgraded databases (012 dropped the column). */
#define CLAIM_KEY_008                                                                              \
	"lower(substr(callback_url, 1, instr(callback_url, '://') + 2 + "                          \
	"instr(replace(replace(substr(callback_url, instr(callback_url, '://') + 3), "             \
	"'?', '/'), '#', '/') || '/', '/') - 1))"

/* Claims leave jobs out by origin as spelled (issue 11, item 1): the key
 * store_claim_key computes in C, which the insert stores (claim_origin,
 * sql/sqlite/011), is the one 008's SQL computed (claim_key, which 011
 * backfilled old rows with), for every URL shape, so an exclusion leaves
 * out exactly its origin. */
static void test_claim_key(void **state)
{
	struct fx *f = *state;
	static const struct {
		const char *url;
		const char *key;
	} cases[] = {
	    {"http://a.example/cb", "http://a.example"},
	    {"http://127.0.0.1:8001/hang", "http://127.0.0.1:8001"},
	    {"HTTPS://A.Example:8443/X/Y", "https://a.example:8443"},
	    {"http://[::1]:9/", "http://[::1]:9"},
	    {"http://h.example?q=1", "http://h.example"},
	    {"http://h.example#frag", "http://h.example"},
	    {"http://h.example", "http://h.example"},
	    {"http://h.example:80/?a/b", "http://h.example:80"},
	    {"http:/odd/path", "http:"},
	    {"x", "x"},
	    {"", ""},
	};
	char key[64], ids[64], id[16], slash[72];
	const char *keys[2];
	const struct store_exclude excl = {keys, 2}, own = {keys, 1};

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		store_claim_key(cases[i].url, key, sizeof key);
		assert_string_equal(key, cases[i].key);
		snprintf(id, sizeof id, "k%zu", i);
		add_job_url(f->s, id, cases[i].url);
		char sql[512];
		snprintf(sql, sizeof sql,
		         "SELECT claim_origin = " CLAIM_KEY_008 " AND claim_origin IS NOT NULL "
		         "FROM requests WHERE id = '%s'",
		         id);
		assert_int_equal(sql_int(f->s, sql), 1);
		/* another origin's exclusion leaves it claimable ... */
		snprintf(slash, sizeof slash, "%s/", key);
		keys[0] = slash;
		keys[1] = "http://other.example";
		bool found = false;
		int64_t due = -1;
		assert_int_equal(store_next_due(f->a, &excl, INT64_MIN, &found, &due), STORE_OK);
		assert_true(found);
		/* ... its own leaves it out; then it is claimed */
		keys[0] = key;
		assert_int_equal(claim_ids(f->a, 1000, 10, &own, ids, sizeof ids, NULL), 0);
		assert_int_equal(claim_ids(f->a, 1000, 10, NULL, ids, sizeof ids, NULL), 1);
		assert_string_equal(ids, id);
	}
	/* two ports of one host are two keys */
	add_job_url(f->s, "p1", "http://127.0.0.1:8001/x");
	add_job_url(f->s, "p2", "http://127.0.0.1:8002/x");
	keys[0] = "http://127.0.0.1:8001";
	assert_int_equal(claim_ids(f->a, 1000, 10, &own, ids, sizeof ids, NULL), 1);
	assert_string_equal(ids, "p2");
	/* the key is cut, never overrun, at the buffer */
	store_claim_key("http://a.example/cb", key, 5);
	assert_string_equal(key, "http");
	store_claim_key("http://a.example/cb", key, 1);
	assert_string_equal(key, "");
}

static void test_lease_exclusive_then_expired(void **state)
{
	struct fx *f = *state;
	add_job(f->s, "k1", "h", 0);
	char ids[64];
	assert_int_equal(claim_ids(f->a, 1000, 10, NULL, ids, sizeof ids, NULL), 1);
	/* Another owner sees nothing while the lease lives... */
	assert_int_equal(claim_ids(f->b, 1000 + LEASE_MS - 1, 10, NULL, ids, sizeof ids, NULL), 0);
	/* ...and takes it when it expired. */
	assert_int_equal(claim_ids(f->b, 1000 + LEASE_MS, 10, NULL, ids, sizeof ids, NULL), 1);
	char owner[64];
	sql_text(f->s, "SELECT lease_owner FROM requests WHERE id = 'k1'", owner, sizeof owner);
	assert_string_equal(owner, "host:2:b");
}

static void test_fencing(void **state)
{
	struct fx *f = *state;
	add_job(f->s, "f1", "h", 0);
	struct store_job *ja = NULL, *jb = NULL;
	char ids[64];
	assert_int_equal(claim_ids(f->a, 1000, 1, NULL, ids, sizeof ids, &ja), 1);
	/* A sends attempt 1, stalls past its lease; B claims. */
	assert_int_equal(store_begin(f->s), STORE_OK);
	memcpy(ja[0].result, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	       65);
	ja[0].computed = true;
	assert_int_equal(store_attempt_begin(f->a, &ja[0], true, 1, 1001), STORE_OK);
	assert_int_equal(store_commit(f->s), STORE_OK);
	assert_int_equal(claim_ids(f->b, 1000 + LEASE_MS, 1, NULL, ids, sizeof ids, &jb), 1);
	assert_int_equal(jb[0].attempts, 1);
	assert_int_equal(jb[0].unknown, 1); /* A's 'sending' attempt became unknown */
	assert_true(jb[0].computed);        /* and the result A stored is kept */
	assert_int_equal(sql_int(f->s, "SELECT count(*) FROM attempts WHERE state = 'unknown'"), 1);

	/* Every write A tries now is fenced; B's go through. */
	struct store_outcome o = {
	    .number = 1, .http_status = 200, .verdict = STORE_DELIVERED, .now = 2000};
	assert_int_equal(store_begin(f->s), STORE_OK);
	assert_int_equal(store_attempt_end(f->a, &ja[0], &o), STORE_FENCED);
	assert_int_equal(store_attempt_begin(f->a, &ja[0], false, 2, 2000), STORE_FENCED);
	assert_int_equal(store_release(f->a, &ja[0], false, 2000), STORE_FENCED);
	assert_int_equal(store_commit(f->s), STORE_OK);
	assert_int_equal(store_begin(f->b), STORE_OK); /* B's own connection */
	assert_int_equal(store_attempt_begin(f->b, &jb[0], false, 2, 2001), STORE_OK);
	o.number = 2;
	assert_int_equal(store_attempt_end(f->b, &jb[0], &o), STORE_OK);
	assert_int_equal(store_commit(f->b), STORE_OK);
	char st[64];
	sql_text(f->s,
	         "SELECT callback_status || ' ' || attempts || ' ' || (finished_at IS NOT NULL) "
	         "FROM requests WHERE id = 'f1'",
	         st, sizeof st);
	assert_string_equal(st, "delivered 2 1");
	sql_text(
	    f->s,
	    "SELECT group_concat(state, ',') FROM (SELECT state FROM attempts ORDER BY number)", st,
	    sizeof st);
	assert_string_equal(st, "unknown,done");
	free_jobs(ja, 1);
	free_jobs(jb, 1);
}

static void test_outcomes(void **state)
{
	struct fx *f = *state;
	add_job(f->s, "o1", "h", 0);
	add_job(f->s, "o2", "h", 0);
	add_job(f->s, "o3", "h", 0);
	assert_int_equal(sql_int(f->s, "SELECT value FROM counters WHERE name = 'queue_depth'"), 3);
	struct store_job *j = NULL;
	char ids[64];
	assert_int_equal(claim_ids(f->a, 1000, 3, NULL, ids, sizeof ids, &j), 3);
	const struct {
		enum store_verdict v;
		int http;
		const char *cls, *msg;
		const char *want_job, *want_attempt;
	} rows[] = {
	    {STORE_DELIVERED, 200, NULL, NULL, "completed delivered 1 -", "done 200 - -"},
	    {STORE_RETRY, 503, "http", "HTTP 503", "completed retrying 0 5000",
	     "done 503 http 5000"},
	    {STORE_FAILED, 410, "http", "gone", "completed failed 1 -", "done 410 http -"},
	};
	assert_int_equal(store_begin(f->s), STORE_OK);
	for (int i = 0; i < 3; i++) {
		memset(j[i].result, 'a', 64);
		j[i].result[64] = '\0';
		assert_int_equal(store_attempt_begin(f->a, &j[i], true, 1, 1500), STORE_OK);
	}
	assert_int_equal(store_commit(f->s), STORE_OK);
	char st[64];
	sql_text(f->s, "SELECT callback_status FROM requests WHERE id = 'o1'", st, sizeof st);
	assert_string_equal(st, "delivering");
	assert_int_equal(store_begin(f->s), STORE_OK);
	for (int i = 0; i < 3; i++) {
		struct store_outcome o = {.number = 1,
		                          .duration_ms = 1.5,
		                          .http_status = rows[i].http,
		                          .error_class = rows[i].cls,
		                          .error_message = rows[i].msg,
		                          .verdict = rows[i].v,
		                          .next_attempt_at = 5000,
		                          .now = 2000};
		assert_int_equal(store_attempt_end(f->a, &j[i], &o), STORE_OK);
	}
	assert_int_equal(store_commit(f->s), STORE_OK);
	for (int i = 0; i < 3; i++) {
		char sql[512];
		snprintf(sql, sizeof sql,
		         "SELECT status || ' ' || callback_status || ' ' || (finished_at IS NOT "
		         "NULL) || ' ' || coalesce(next_attempt_at, '-') FROM requests WHERE id = "
		         "'%s'",
		         j[i].id);
		sql_text(f->s, sql, st, sizeof st);
		assert_string_equal(st, rows[i].want_job);
		snprintf(
		    sql, sizeof sql,
		    "SELECT state || ' ' || http_status || ' ' || coalesce(error_class, '-') || "
		    "' ' || coalesce(next_attempt_at, '-') FROM attempts WHERE request_seq = "
		    "%lld",
		    (long long)j[i].seq);
		sql_text(f->s, sql, st, sizeof st);
		assert_string_equal(st, rows[i].want_attempt);
	}
	/* Delivered and failed left the queue; the retry did not. */
	assert_int_equal(sql_int(f->s, "SELECT value FROM counters WHERE name = 'queue_depth'"), 1);
	assert_int_equal(
	    sql_int(f->s, "SELECT count(*) FROM requests WHERE lease_owner IS NOT NULL"), 0);
	/* The retry is due at its time, for anyone. */
	bool found = false;
	int64_t due = 0;
	assert_int_equal(store_next_due(f->b, NULL, INT64_MIN, &found, &due), STORE_OK);
	assert_true(found);
	assert_int_equal(due, 5000);
	/* only what is due later than after: none after 5000 */
	assert_int_equal(store_next_due(f->b, NULL, 4999, &found, &due), STORE_OK);
	assert_true(found);
	assert_int_equal(due, 5000);
	assert_int_equal(store_next_due(f->b, NULL, 5000, &found, &due), STORE_OK);
	assert_false(found);
	assert_int_equal(claim_ids(f->b, 4999, 10, NULL, ids, sizeof ids, NULL), 0);
	assert_int_equal(claim_ids(f->b, 5000, 10, NULL, ids, sizeof ids, NULL), 1);
	assert_string_equal(ids, "o2");
	free_jobs(j, 3);
}

static void test_release_renew_handback(void **state)
{
	struct fx *f = *state;
	add_job(f->s, "r1", "h", 0);
	add_job(f->s, "r2", "h", 0);
	add_job(f->s, "r3", "h", 0);
	struct store_job *j = NULL;
	char ids[64];
	assert_int_equal(claim_ids(f->a, 1000, 3, NULL, ids, sizeof ids, &j), 3);
	/* Renewal moves every lease of the owner. */
	int64_t n = 0;
	assert_int_equal(store_renew(f->a, 20000, LEASE_MS, &n), STORE_OK);
	assert_int_equal(n, 3);
	assert_int_equal(sql_int(f->s, "SELECT min(lease_expires_at) FROM requests"), 50000);
	/* One job handed back alone (breaker): queued again, no attempt. */
	assert_int_equal(store_begin(f->s), STORE_OK);
	assert_int_equal(store_release(f->a, &j[0], false, 7000), STORE_OK);
	assert_int_equal(store_attempt_begin(f->a, &j[1], true, 1, 21000), STORE_OK);
	assert_int_equal(store_commit(f->s), STORE_OK);
	char st[64];
	sql_text(f->s,
	         "SELECT status || ' ' || attempts || ' ' || next_attempt_at || ' ' || "
	         "coalesce(lease_owner, '-') FROM requests WHERE id = 'r1'",
	         st, sizeof st);
	assert_string_equal(st, "queued 0 7000 -");
	/* Stopping: everything held comes back due now, 'sending' -> unknown. */
	assert_int_equal(store_handback_all(f->a, 22000, &n), STORE_OK);
	assert_int_equal(n, 2);
	assert_int_equal(sql_int(f->s,
	                         "SELECT count(*) FROM requests WHERE lease_owner IS NOT NULL "
	                         "OR callback_status = 'delivering' OR status = 'running'"),
	                 0);
	assert_int_equal(sql_int(f->s, "SELECT count(*) FROM attempts WHERE state = 'unknown'"), 1);
	sql_text(f->s, "SELECT callback_status FROM requests WHERE id = 'r2'", st, sizeof st);
	assert_string_equal(st, "retrying");
	assert_int_equal(claim_ids(f->b, 22000, 10, NULL, ids, sizeof ids, NULL), 3);
	free_jobs(j, 3);
}

static bool dead_if_pid_2(const char *owner, int64_t pid, void *arg)
{
	(void)owner;
	(void)arg;
	return pid == 2;
}

static void test_heartbeat_and_recovery(void **state)
{
	struct fx *f = *state;
	struct store_beat beat = {
	    .pid = 1, .started_at = 10, .busy_workers = 1, .workers = 2, .inflight = 3};
	assert_int_equal(store_heartbeat(f->a, 100, &beat), STORE_OK);
	beat.pid = 2;
	assert_int_equal(store_heartbeat(f->b, 100, &beat), STORE_OK);
	beat.pid = 1;
	beat.inflight = 7;
	assert_int_equal(store_heartbeat(f->a, 200, &beat), STORE_OK); /* upsert */
	assert_int_equal(sql_int(f->s, "SELECT count(*) FROM heartbeats"), 2);
	assert_int_equal(sql_int(f->s, "SELECT inflight FROM heartbeats WHERE owner = 'host:1:a'"),
	                 7);
	/* B (pid 2) dies holding a job: A's recovery expires B's lease now. */
	add_job(f->s, "d1", "h", 0);
	char ids[64];
	assert_int_equal(claim_ids(f->b, 1000, 1, NULL, ids, sizeof ids, NULL), 1);
	int64_t n = -1;
	assert_int_equal(store_recover_dead(f->a, 1500, dead_if_pid_2, NULL, &n), STORE_OK);
	assert_int_equal(n, 1);
	assert_int_equal(sql_int(f->s, "SELECT count(*) FROM heartbeats"), 1);
	assert_int_equal(claim_ids(f->a, 1500, 1, NULL, ids, sizeof ids, NULL), 1);
	assert_int_equal(store_heartbeat_remove(f->a), STORE_OK);
	assert_int_equal(sql_int(f->s, "SELECT count(*) FROM heartbeats"), 0);
}

/* Inserts a finished sync record (finished_at = fin) and returns its seq. */
static int64_t add_sync(struct store *s, const char *id, int64_t fin)
{
	char sql[512];
	snprintf(sql, sizeof sql,
	         "INSERT INTO requests (id, mode, status, input_data, iterations, result, "
	         "created_at, started_at, completed_at, finished_at) VALUES ('%s', 'sync', "
	         "'completed', 'x', 1, 'r', %lld, %lld, %lld, %lld)",
	         id, (long long)fin, (long long)fin, (long long)fin, (long long)fin);
	assert_int_equal(sqlite3_exec(db_of(s), sql, NULL, NULL, NULL), SQLITE_OK);
	return sqlite3_last_insert_rowid(db_of(s));
}

static int64_t counters_sum(struct store *s)
{
	return sql_int(s,
	               "SELECT (SELECT value FROM counters WHERE name = 'queue_depth') * 1000000 "
	               "+ (SELECT coalesce(sum(n), 0) FROM host_pending) * 1000 "
	               "+ (SELECT coalesce(sum(n), 0) FROM client_pending)");
}

static void test_prune_age_unfinished_attempts(void **state)
{
	struct fx *f = *state;
	/* Async jobs run through the real claim/attempt path; each has one
	 * attempt row. Cutoff 5000: finished strictly before it goes. */
	const struct {
		const char *id;
		enum store_verdict v; /* retry: stays unfinished */
		int64_t fin;
		bool pruned;
	} rows[] = {
	    {"p1", STORE_DELIVERED, 2000, true},  {"p2", STORE_FAILED, 9000, false},
	    {"p3", STORE_RETRY, 2000, false},     {"p4", STORE_FAILED, 3000, true},
	    {"p5", STORE_DELIVERED, 5000, false}, {"p6", STORE_DELIVERED, 4999, true},
	};
	const int n = (int)(sizeof rows / sizeof rows[0]);
	for (int i = 0; i < n; i++)
		add_job(f->s, rows[i].id, "h", 0);
	add_job(f->s, "p7", "h", 0); /* never claimed: queued, no attempts */
	int64_t sync_old = add_sync(f->s, "s-old", 1000);
	add_sync(f->s, "s-new", 6000);

	struct store_job *j = NULL;
	char ids[128];
	assert_int_equal(claim_ids(f->a, 1000, n, NULL, ids, sizeof ids, &j), n);
	assert_int_equal(store_begin(f->s), STORE_OK);
	for (int i = 0; i < n; i++) {
		memset(j[i].result, 'a', 64);
		j[i].result[64] = '\0';
		assert_int_equal(store_attempt_begin(f->a, &j[i], true, 1, 1500), STORE_OK);
		struct store_outcome o = {.number = 1,
		                          .http_status = 500,
		                          .error_class = "http",
		                          .error_message = "HTTP 500",
		                          .verdict = rows[i].v,
		                          .next_attempt_at = 99000,
		                          .now = rows[i].fin};
		assert_int_equal(store_attempt_end(f->a, &j[i], &o), STORE_OK);
	}
	assert_int_equal(store_commit(f->s), STORE_OK);
	assert_int_equal(sql_int(f->s, "SELECT count(*) FROM attempts"), n);
	int64_t counters = counters_sum(f->s);
	assert_int_equal(sql_int(f->s, "SELECT value FROM counters WHERE name = 'queue_depth'"), 2);

	int64_t deleted = -1;
	assert_int_equal(store_prune(f->s, 5000, 1000, &deleted), STORE_OK);
	assert_int_equal(deleted, 4); /* p1, p4, p6, s-old */
	for (int i = 0; i < n; i++) {
		char sql[256];
		snprintf(sql, sizeof sql, "SELECT count(*) FROM requests WHERE id = '%s'",
		         rows[i].id);
		assert_int_equal(sql_int(f->s, sql), rows[i].pruned ? 0 : 1);
		snprintf(sql, sizeof sql, "SELECT count(*) FROM attempts WHERE request_seq = %lld",
		         (long long)j[i].seq);
		assert_int_equal(sql_int(f->s, sql), rows[i].pruned ? 0 : 1);
	}
	char left[128];
	sql_text(f->s, "SELECT group_concat(id, ',') FROM (SELECT id FROM requests ORDER BY seq)",
	         left, sizeof left);
	assert_string_equal(left, "p2,p3,p5,p7,s-new");
	char sql[128];
	snprintf(sql, sizeof sql, "SELECT count(*) FROM requests WHERE seq = %lld",
	         (long long)sync_old);
	assert_int_equal(sql_int(f->s, sql), 0);
	/* Finished rows had already left the counters: pruning changes none. */
	assert_int_equal(counters_sum(f->s), counters);
	/* Nothing more to do; max_rows <= 0 does nothing. */
	assert_int_equal(store_prune(f->s, 5000, 1000, &deleted), STORE_OK);
	assert_int_equal(deleted, 0);
	assert_int_equal(store_prune(f->s, 1000000, 0, &deleted), STORE_OK);
	assert_int_equal(deleted, 0);
	/* A later cutoff takes the rest of the finished ones, never p3 or p7. */
	assert_int_equal(store_prune(f->s, 1000000, 1000, NULL), STORE_OK);
	sql_text(f->s, "SELECT group_concat(id, ',') FROM (SELECT id FROM requests ORDER BY seq)",
	         left, sizeof left);
	assert_string_equal(left, "p3,p7");
	assert_int_equal(sql_int(f->s, "SELECT count(*) FROM attempts"), 1);
	assert_int_equal(counters_sum(f->s), counters);
	free_jobs(j, n);
}

static void test_prune_batch_bound(void **state)
{
	struct fx *f = *state;
	/* 25 old finished rows, the third an old job still unfinished. */
	for (int i = 1; i <= 25; i++) {
		char id[16];
		snprintf(id, sizeof id, "b%02d", i);
		if (i == 3)
			add_job(f->s, id, "h", 0);
		else
			add_sync(f->s, id, 1000);
	}
	int64_t counters = counters_sum(f->s);
	/* Each call looks at the oldest 10 rows only; the unfinished one keeps
	 * its place at the front and costs one slot per batch. */
	const struct {
		int64_t want_deleted, want_left;
		const char *want_first_finished;
	} steps[] = {
	    {9, 16, "b11"}, /* b01..b10 without b03 */
	    {9, 7, "b20"},  /* b03 + b11..b19 */
	    {6, 1, ""},     /* b03 + b20..b25 */
	    {0, 1, ""},
	};
	for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
		int64_t deleted = -1;
		char first[16];
		assert_int_equal(store_prune(f->s, 5000, 10, &deleted), STORE_OK);
		assert_int_equal(deleted, steps[i].want_deleted);
		assert_int_equal(sql_int(f->s, "SELECT count(*) FROM requests"),
		                 steps[i].want_left);
		sql_text(
		    f->s,
		    "SELECT id FROM requests WHERE finished_at IS NOT NULL ORDER BY seq LIMIT 1",
		    first, sizeof first);
		assert_string_equal(first, steps[i].want_first_finished);
		assert_int_equal(sql_int(f->s, "SELECT count(*) FROM requests WHERE id = 'b03'"),
		                 1);
	}
	assert_int_equal(counters_sum(f->s), counters);
}

int main(void)
{
	snprintf(tmpdir, sizeof tmpdir, "%s/consuma-test-queue.XXXXXX",
	         getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_claim_order_batch_exclusions, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_claim_mark, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_claim_key, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lease_exclusive_then_expired, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fencing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_outcomes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_release_renew_handback, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_heartbeat_and_recovery, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_prune_age_unfinished_attempts, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_prune_batch_bound, setup, teardown),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	char cmd[400];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", tmpdir);
	return rc;
}
