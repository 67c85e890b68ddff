/*
 * test_fcgi_park: the park of consuma-fcgi (fcgi-app/park.c), where a
 * POST /async waits for its commit batch without its thread: the bound on
 * places, the two holders of a parked exchange (it is ready only once both
 * let go, in either order), one eventfd wake-up per run of ready exchanges
 * and none lost, and the ready ones taken in order; and the store's half,
 * store_insert_job_then, whose committer calls back with the same outcome
 * store_insert_job gives (a new job, a replay, a refusal), each job durable
 * when its call comes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "http.h"
#include "ids.h"
#include "park.h"
#include "store.h"

/* Whether the park's eventfd is readable now. */
static bool readable(const struct park *p)
{
	struct pollfd pfd = {.fd = park_fd(p), .events = POLLIN};

	return poll(&pfd, 1, 0) == 1;
}

static void test_bound(void **state)
{
	struct park *p = park_new(2);

	(void)state;
	assert_non_null(p);
	assert_true(park_enter(p));
	assert_true(park_enter(p));
	assert_false(park_enter(p)); /* full: the caller waits on its thread */
	assert_int_equal(park_count(p), 2);
	park_leave(p);
	assert_true(park_enter(p));
	park_leave(p);
	park_leave(p);
	assert_int_equal(park_count(p), 0);
	park_free(p);
	/* NULL is a park that takes nobody */
	assert_false(park_enter(NULL));
	assert_int_equal(park_count(NULL), 0);
	assert_int_equal(park_fd(NULL), -1);
}

/* Both holders of x let go in a row: x is ready. */
static void make_ready(struct park *p, struct http_exchange *x)
{
	memset(x, 0, sizeof *x);
	park_hold(x);
	park_release(p, x);
	park_release(p, x);
}

static void test_two_holders(void **state)
{
	struct park *p = park_new(8);
	struct http_exchange a, b;

	(void)state;
	memset(&a, 0, sizeof a);
	/* the store lets go first (the committer was quicker than the
	 * handler's return), then the handler's thread */
	park_hold(&a);
	park_release(p, &a);
	assert_false(readable(p));
	assert_null(park_take(p));
	park_release(p, &a);
	assert_true(readable(p));
	/* the other order */
	make_ready(p, &b);
	struct http_exchange *x = park_take(p);
	assert_ptr_equal(x, &a); /* oldest first */
	assert_ptr_equal(x->park_next, &b);
	assert_null(b.park_next);
	assert_false(readable(p)); /* taken: the eventfd was read */
	assert_null(park_take(p));
	park_free(p);
}

static void test_no_lost_wakeup(void **state)
{
	struct park *p = park_new(8);
	struct http_exchange a, b;

	(void)state;
	make_ready(p, &a);
	assert_ptr_equal(park_take(p), &a);
	/* made ready after a take: readable again */
	make_ready(p, &b);
	assert_true(readable(p));
	assert_ptr_equal(park_take(p), &b);
	park_free(p);
}

/* ---- store_insert_job_then ---- */

struct outcome {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int calls;
	enum store_err err;
	char msg[256];
};

static void done(void *arg, enum store_err err, const char *msg)
{
	struct outcome *o = arg;

	pthread_mutex_lock(&o->mu);
	o->calls++;
	o->err = err;
	snprintf(o->msg, sizeof o->msg, "%s", msg);
	pthread_cond_signal(&o->cv);
	pthread_mutex_unlock(&o->mu);
}

static enum store_err wait_outcome(struct outcome *o)
{
	pthread_mutex_lock(&o->mu);
	while (o->calls == 0)
		pthread_cond_wait(&o->cv, &o->mu);
	enum store_err err = o->err;
	o->calls = 0;
	pthread_mutex_unlock(&o->mu);
	return err;
}

static void job(struct job_insert *j, char *id, const char *key, const char *hash)
{
	memset(j, 0, sizeof *j);
	ids_uuidv7(id);
	j->id = id;
	j->input_data = "hello";
	j->iterations = 1;
	j->callback_url = "http://127.0.0.1:9/cb";
	j->callback_host = "127.0.0.1";
	j->client_addr = "10.0.0.1";
	j->idempotency_key = key;
	j->body_hash = hash;
	j->created_at = ids_now_ms();
	j->max_queue_size = 2;
}

static void test_insert_then(void **state)
{
	char dir[] = "/tmp/consuma-park-XXXXXX";
	char path[256], id1[IDS_UUID_LEN + 1], id2[IDS_UUID_LEN + 1], id3[IDS_UUID_LEN + 1];
	struct outcome o = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
	struct job_insert j1, j2, j3;
	struct job_result r;
	struct store_request got;
	enum store_err err;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/consuma.db", dir);
	struct store_committer *c = store_committer_start(path, &err, NULL, 0);
	assert_non_null(c);
	struct store *s = store_open(path, &err, NULL, 0);
	assert_non_null(s);
	/* without a committer: nothing queued, the caller waits itself */
	job(&j1, id1, "k1", "h1");
	assert_false(store_insert_job_then(s, &j1, &r, done, &o));
	store_use_committer(s, c);

	assert_true(store_insert_job_then(s, &j1, &r, done, &o));
	assert_int_equal(wait_outcome(&o), STORE_OK);
	assert_string_equal(o.msg, "");
	assert_false(r.replayed);
	assert_true(r.batch >= 1); /* durable, in a committer batch */
	/* read back on a connection of its own */
	struct store *reader = store_open(path, &err, NULL, 0);
	assert_non_null(reader);
	memset(&got, 0, sizeof got);
	assert_int_equal(store_get_request(reader, id1, NULL, &got), STORE_OK);
	assert_string_equal(got.status, "queued");
	store_request_clear(&got);

	/* the same key and body: the first job's answer */
	job(&j2, id2, "k1", "h1");
	assert_true(store_insert_job_then(s, &j2, &r, done, &o));
	assert_int_equal(wait_outcome(&o), STORE_OK);
	assert_true(r.replayed);
	assert_string_equal(r.id, id1);
	/* another body under the key */
	job(&j2, id2, "k1", "h2");
	assert_true(store_insert_job_then(s, &j2, &r, done, &o));
	assert_int_equal(wait_outcome(&o), STORE_CONFLICT);
	/* the queue bound (2): one more fits, the next is refused */
	job(&j2, id2, NULL, "h3");
	assert_true(store_insert_job_then(s, &j2, &r, done, &o));
	assert_int_equal(wait_outcome(&o), STORE_OK);
	job(&j3, id3, NULL, "h4");
	assert_true(store_insert_job_then(s, &j3, &r, done, &o));
	assert_int_equal(wait_outcome(&o), STORE_REFUSED);
	assert_int_equal(r.refusal, JOB_QUEUE_FULL);

	store_close(reader);
	store_close(s);
	store_committer_stop(c);
	snprintf(path, sizeof path, "rm -rf '%s'", dir);
	assert_int_equal(system(path), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bound),
	    cmocka_unit_test(test_two_holders),
	    cmocka_unit_test(test_no_lost_wakeup),
	    cmocka_unit_test(test_insert_then),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
