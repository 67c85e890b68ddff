/*
 * park: requests that wait for the store without holding a thread (see
 * park.h).
 *
 * Wake-ups: the last park_release writes the eventfd only when the ready list was
 * empty, so a batch of any size costs one write and wakes one worker (the
 * workers register the eventfd with EPOLLEXCLUSIVE); park_take reads the
 * eventfd before it takes the list, so a request made ready after the read
 * either is in the list taken or writes the eventfd again. No ready
 * request is left without a wake-up.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "alloc.h"
#include "http.h"
#include "park.h"

struct park {
	pthread_mutex_t mu;
	int fd;
	size_t max, count; /* places taken (parked or being answered) */
	struct http_exchange *ready, **ready_tail;
};

struct park *park_new(size_t max)
{
	struct park *p = cz_calloc(1, sizeof *p);

	if (!p)
		return NULL;
	p->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->fd < 0) {
		cz_free(p);
		return NULL;
	}
	pthread_mutex_init(&p->mu, NULL);
	p->max = max;
	p->ready_tail = &p->ready;
	return p;
}

void park_free(struct park *p)
{
	if (!p)
		return;
	close(p->fd);
	pthread_mutex_destroy(&p->mu);
	cz_free(p);
}

int park_fd(const struct park *p)
{
	return p ? p->fd : -1;
}

bool park_enter(struct park *p)
{
	bool ok;

	if (!p)
		return false;
	pthread_mutex_lock(&p->mu);
	ok = p->count < p->max;
	if (ok)
		p->count++;
	pthread_mutex_unlock(&p->mu);
	return ok;
}

void park_leave(struct park *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	if (p->count > 0)
		p->count--;
	pthread_mutex_unlock(&p->mu);
}

size_t park_count(struct park *p)
{
	size_t n;

	if (!p)
		return 0;
	pthread_mutex_lock(&p->mu);
	n = p->count;
	pthread_mutex_unlock(&p->mu);
	return n;
}

void park_hold(struct http_exchange *x)
{
	atomic_store(&x->park_holds, 2);
}

void park_release(struct park *p, struct http_exchange *x)
{
	bool was_empty;

	if (atomic_fetch_sub(&x->park_holds, 1) != 1)
		return; /* the other holder makes it ready */
	x->park_next = NULL;
	pthread_mutex_lock(&p->mu);
	was_empty = p->ready == NULL;
	*p->ready_tail = x;
	p->ready_tail = &x->park_next;
	pthread_mutex_unlock(&p->mu);
	/* an eventfd write fails only when its counter would overflow, and
	 * then it is readable anyway */
	if (was_empty)
		(void)eventfd_write(p->fd, 1);
}

struct http_exchange *park_take(struct park *p)
{
	struct http_exchange *x;
	eventfd_t n;

	(void)eventfd_read(p->fd, &n); /* EAGAIN: another worker read it */
	pthread_mutex_lock(&p->mu);
	x = p->ready;
	p->ready = NULL;
	p->ready_tail = &p->ready;
	pthread_mutex_unlock(&p->mu);
	return x;
}
