/*
 * shared: state shared by the deliverer's threads (see shared.h).
 */
#include "shared.h"

#include <assert.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "alloc.h"

int shared_init(struct shared *sh)
{
	memset(sh, 0, sizeof *sh);
	atomic_init(&sh->in_hand, 0);
	atomic_init(&sh->busy_workers, 0);
	atomic_init(&sh->pool_pending, 0);
	atomic_init(&sh->inflight, 0);
	atomic_init(&sh->sleep_until, INT64_MAX);
	atomic_init(&sh->wants_room, false);
	sh->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (sh->wake_fd < 0)
		return -1;
	if (pthread_mutex_init(&sh->mu, NULL) != 0) {
		close(sh->wake_fd);
		errno = ENOMEM;
		return -1;
	}
	return 0;
}

void shared_destroy(struct shared *sh)
{
	if (sh->wake_fd >= 0)
		close(sh->wake_fd);
	sh->wake_fd = -1;
	pthread_mutex_destroy(&sh->mu);
	cz_free(sh->exclusions);
	sh->exclusions = NULL;
}

void shared_wake(struct shared *sh)
{
	uint64_t one = 1;
	ssize_t w = write(sh->wake_fd, &one, sizeof one);
	(void)w; /* EAGAIN: the counter is full, a wake-up is pending anyway */
}

void shared_drain(struct shared *sh)
{
	uint64_t v;
	ssize_t r = read(sh->wake_fd, &v, sizeof v);
	(void)r;
}

struct store_exclude *exclude_copy(const char *const *keys, size_t n)
{
	if (n == 0)
		return NULL;
	size_t bytes = sizeof(struct store_exclude) + n * sizeof(char *);
	for (size_t i = 0; i < n; i++)
		bytes += strlen(keys[i]) + 1;
	struct store_exclude *ex = cz_malloc(bytes);
	if (!ex)
		return NULL;
	const char **ptrs = (const char **)(ex + 1);
	char *text = (char *)(ptrs + n);
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(keys[i]) + 1;
		memcpy(text, keys[i], len);
		ptrs[i] = text;
		text += len;
	}
	ex->keys = ptrs;
	ex->n = n;
	return ex;
}

/* Past this many key comparisons a change counts as lifting one. */
#define LIFTED_COMPARE_MAX 4096

static bool has_key(const struct store_exclude *ex, const char *key)
{
	for (size_t i = 0; ex && i < ex->n; i++)
		if (strcmp(ex->keys[i], key) == 0)
			return true;
	return false;
}

static bool lifted(const struct store_exclude *old, const struct store_exclude *ex)
{
	size_t n_old = old ? old->n : 0, n_new = ex ? ex->n : 0;
	if (n_old * n_new > LIFTED_COMPARE_MAX)
		return true;
	for (size_t i = 0; i < n_old; i++)
		if (!has_key(ex, old->keys[i]))
			return true;
	return false;
}

bool shared_set_exclusions(struct shared *sh, struct store_exclude *ex)
{
	pthread_mutex_lock(&sh->mu);
	bool freed = lifted(sh->exclusions, ex);
	cz_free(sh->exclusions);
	sh->exclusions = ex;
	sh->exclusions_gen++;
	pthread_mutex_unlock(&sh->mu);
	return freed;
}

void shared_get_exclusions(struct shared *sh, uint64_t *gen, struct store_exclude **mine)
{
	pthread_mutex_lock(&sh->mu);
	if (*gen != sh->exclusions_gen) {
		cz_free(*mine);
		*mine =
		    sh->exclusions ? exclude_copy(sh->exclusions->keys, sh->exclusions->n) : NULL;
		*gen = sh->exclusions_gen;
	}
	pthread_mutex_unlock(&sh->mu);
}

void shared_release(struct shared *sh, int64_t n)
{
	if (n <= 0)
		return;
	long long before = atomic_fetch_sub(&sh->in_hand, n);
	assert(before >= n); /* only jobs claimed are let go */
	(void)before;
	shared_poke(sh);
}

void shared_poke(struct shared *sh)
{
	if (atomic_load(&sh->wants_room) && atomic_exchange(&sh->wants_room, false))
		shared_wake(sh);
}
