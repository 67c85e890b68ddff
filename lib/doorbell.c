/*
 * doorbell: one empty datagram on a unix socket wakes the deliverer (see
 * doorbell.h). SOCK_DGRAM keeps each ring a single message, and a full
 * socket queue (EAGAIN) means the deliverer has wake-ups pending already,
 * so dropping the ring is correct.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include "alloc.h"
#include "doorbell.h"

static int make_addr(const char *path, struct sockaddr_un *sun)
{
	size_t n = strlen(path);

	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (n == 0 || n >= sizeof(sun->sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sun->sun_path, path, n + 1);
	return 0;
}

struct doorbell {
	int fd;
	struct sockaddr_un addr;
	_Atomic uint64_t rung; /* the newest batch a ring was sent for */
};

struct doorbell *doorbell_new(const char *path)
{
	struct doorbell *b;

	if (path == NULL)
		return NULL;
	b = cz_calloc(1, sizeof(*b));
	if (b == NULL)
		return NULL;
	if (make_addr(path, &b->addr) != 0) {
		cz_free(b);
		return NULL;
	}
	b->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (b->fd < 0) {
		cz_free(b);
		return NULL;
	}
	return b;
}

void doorbell_free(struct doorbell *b)
{
	if (b == NULL)
		return;
	close(b->fd);
	cz_free(b);
}

void doorbell_ring(struct doorbell *b)
{
	if (b == NULL)
		return;
	/* ENOENT/ECONNREFUSED (nobody listens) and EAGAIN (a full queue: wake-ups
	 * are pending anyway) are all fine to ignore. */
	(void)sendto(b->fd, "", 0, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&b->addr,
	             sizeof(b->addr));
}

void doorbell_ring_batch(struct doorbell *b, uint64_t batch)
{
	if (b == NULL)
		return;
	if (batch != 0) {
		uint64_t seen = atomic_load_explicit(&b->rung, memory_order_relaxed);
		do {
			if (seen >= batch)
				return; /* a ring after this batch was durable went out */
		} while (!atomic_compare_exchange_weak_explicit(
		    &b->rung, &seen, batch, memory_order_relaxed, memory_order_relaxed));
	}
	doorbell_ring(b);
}

int doorbell_listen(const char *path)
{
	struct sockaddr_un sun;
	struct stat st;
	int fd;

	if (make_addr(path, &sun) != 0)
		return -1;
	/* Replace a stale socket file left by a crash; never remove anything else. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			errno = EEXIST;
			return -1;
		}
		unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) != 0) {
		int saved = errno;

		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

int doorbell_drain(int fd)
{
	char b[16];
	int n = 0;

	while (recv(fd, b, sizeof(b), MSG_DONTWAIT) >= 0)
		n++;
	return n;
}
