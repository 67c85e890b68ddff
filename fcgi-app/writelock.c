/*
 * writelock: one flock(2) shared by the consuma-fcgi processes (see
 * writelock.h). flock locks belong to the open file description: every
 * process opens the file itself, so the lock is per process, and the kernel
 * drops it when a holder dies.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>
#include "alloc.h"
#include "config.h"
#include "writelock.h"

struct writelock {
	int fd;
	bool held;
};

struct writelock *writelock_open(const char *db_path, char *why, size_t whylen)
{
	char path[CONFIG_PATH_MAX + 8];
	struct writelock *w;
	int n = snprintf(path, sizeof(path), "%s.wlock", db_path);

	if (n < 0 || (size_t)n >= sizeof(path)) {
		snprintf(why, whylen, "lock file path too long");
		return NULL;
	}
	w = cz_calloc(1, sizeof(*w));
	if (w == NULL) {
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	w->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (w->fd < 0) {
		snprintf(why, whylen, "%s: %s", path, strerror(errno));
		cz_free(w);
		return NULL;
	}
	return w;
}

void writelock_close(struct writelock *w)
{
	if (w == NULL)
		return;
	writelock_drop(w);
	close(w->fd);
	cz_free(w);
}

void writelock_hold(struct writelock *w)
{
	if (w == NULL || w->held)
		return;
	while (flock(w->fd, LOCK_EX) != 0) {
		if (errno != EINTR)
			return; /* go on unserialized: the busy handler still guards */
	}
	w->held = true;
}

void writelock_drop(struct writelock *w)
{
	if (w == NULL || !w->held)
		return;
	flock(w->fd, LOCK_UN);
	w->held = false;
}
