/*
 * pool: compute threads fed by the claim loop (see pool.h).
 *
 * Locking: one mutex guards the FIFO and the stop flags; workers wait on a
 * condition variable. The work runs outside the lock.
 */
#include "pool.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "ids.h"
#include "why.h"
#include "work.h"

/* Rounds per chunk: ~5 ms on this machine, the latency of an abandon. */
#define CHUNK_ROUNDS 16384

struct pool {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct djob *head, *tail;
	bool stopping;
	atomic_bool abandon;
	int nthreads;
	pthread_t *threads;
	const struct ssrf_policy *policy;
	pool_done_fn done;
	void *arg;
	struct shared *sh;
};

/* Runs the work a chunk of rounds at a time (work.h), looking at the
 * abandon flag between chunks; false when abandoned or failed (prep says). */
static bool compute(struct pool *p, struct djob *j)
{
	struct store_job *q = &j->q;
	int64_t t0 = ids_mono_ns();
	struct work_state w;
	enum work_err err = work_begin(&w, q->input_data, q->input_len, q->iterations);
	while (err == WORK_OK && work_left(&w) > 0) {
		if (atomic_load(&p->abandon)) {
			j->prep = DJOB_ABANDONED;
			return false;
		}
		err = work_rounds(&w, CHUNK_ROUNDS);
	}
	if (err == WORK_OK)
		err = work_result(&w, q->result);
	if (err != WORK_OK) {
		j->prep = DJOB_COMPUTE_ERR;
		snprintf(j->why, sizeof j->why, "work failed: %s", work_strerror(err));
		return false;
	}
	q->duration_ms = (double)(ids_mono_ns() - t0) / 1e6;
	q->completed_at = ids_now_ms();
	q->computed = true;
	return true;
}

static void process(struct pool *p, struct djob *j)
{
	if (atomic_load(&p->abandon)) {
		j->prep = DJOB_ABANDONED;
		return;
	}
	if (!j->q.computed) {
		atomic_fetch_add(&p->sh->busy_workers, 1);
		bool ok = compute(p, j);
		atomic_fetch_sub(&p->sh->busy_workers, 1);
		if (!ok)
			return;
	}
	j->prep = DJOB_CHECKED;
	j->dest = ssrf_check_url(p->policy, j->q.callback_url, &j->target, j->why, sizeof j->why);
}

static void *worker(void *arg)
{
	struct pool *p = arg;
	for (;;) {
		pthread_mutex_lock(&p->mu);
		while (!p->head && !p->stopping)
			pthread_cond_wait(&p->cv, &p->mu);
		struct djob *j = p->head;
		if (j) {
			p->head = j->next;
			if (!p->head)
				p->tail = NULL;
			j->next = NULL;
		}
		pthread_mutex_unlock(&p->mu);
		if (!j)
			break; /* stopping and nothing left */
		if (atomic_fetch_sub(&p->sh->pool_pending, 1) - 1 <= p->sh->pool_low_water)
			shared_poke(p->sh);
		process(p, j);
		p->done(j, p->arg);
	}
	return NULL;
}

const char *pool_strerror(enum pool_err err)
{
	switch (err) {
	case POOL_OK:
		return "ok";
	case POOL_NOMEM:
		return "out of memory";
	case POOL_THREAD:
		return "a compute thread could not be started";
	}
	return "unknown pool error";
}

struct pool *pool_new(int n, const struct ssrf_policy *policy, pool_done_fn done, void *arg,
                      struct shared *sh, enum pool_err *err, char *why, size_t whylen)
{
	struct pool *p = cz_calloc(1, sizeof *p);
	*err = POOL_NOMEM;
	why_set(why, whylen, "out of memory");
	if (!p)
		return NULL;
	p->threads = cz_calloc((size_t)n, sizeof *p->threads);
	int rc = p->threads ? pthread_mutex_init(&p->mu, NULL) : 0;
	if (!p->threads || rc != 0) {
		if (rc != 0) {
			*err = POOL_THREAD;
			why_set(why, whylen, "mutex: %s", strerror(rc));
		}
		cz_free(p->threads);
		cz_free(p);
		return NULL;
	}
	pthread_cond_init(&p->cv, NULL);
	atomic_init(&p->abandon, false);
	p->policy = policy;
	p->done = done;
	p->arg = arg;
	p->sh = sh;
	for (int i = 0; i < n; i++) {
		rc = pthread_create(&p->threads[i], NULL, worker, p);
		if (rc != 0) {
			*err = POOL_THREAD;
			why_set(why, whylen, "thread %d of %d: %s", i + 1, n, strerror(rc));
			p->nthreads = i;
			pool_free(p);
			return NULL;
		}
		p->nthreads = i + 1;
	}
	*err = POOL_OK;
	why_set(why, whylen, "ok");
	return p;
}

void pool_submit(struct pool *p, struct djob *j)
{
	j->next = NULL;
	atomic_fetch_add(&p->sh->pool_pending, 1);
	pthread_mutex_lock(&p->mu);
	if (p->tail)
		p->tail->next = j;
	else
		p->head = j;
	p->tail = j;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
}

void pool_stop(struct pool *p, bool abandon)
{
	if (abandon)
		atomic_store(&p->abandon, true);
	pthread_mutex_lock(&p->mu);
	p->stopping = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (int i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	p->nthreads = 0;
}

void pool_free(struct pool *p)
{
	if (!p)
		return;
	if (p->nthreads > 0)
		pool_stop(p, true);
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	cz_free(p->threads);
	cz_free(p);
}
