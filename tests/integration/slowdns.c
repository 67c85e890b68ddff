/*
 * slowdns: an LD_PRELOAD shim for the integration tests, a name server that
 * hangs on demand without a packet leaving the machine (test_lookups.sh).
 * It replaces getaddrinfo for two kinds of names and passes every other
 * name to the real one:
 *
 *   *.slow.test   hangs until the file named by SLOWDNS_RELEASE exists (at
 *                 most SLOWDNS_MAX_HOLD_S seconds), then "does not resolve"
 *                 (EAI_NONAME); each hold is first logged as one line
 *                 "hold <name>" to the file named by SLOWDNS_LOG, so a test
 *                 knows when a lookup is in flight;
 *   *.fast.test   resolves at once to 127.0.0.1.
 *
 * Only the tests build and load it; the product has no test hooks.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* RTLD_NEXT */
#endif
#include <dlfcn.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SLOWDNS_MAX_HOLD_S 120

typedef int (*getaddrinfo_fn)(const char *, const char *, const struct addrinfo *,
                              struct addrinfo **);

static int ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n > k && strcmp(s + n - k, suffix) == 0;
}

static void log_hold(const char *node)
{
	const char *path = getenv("SLOWDNS_LOG");
	char line[512];
	int fd, n;

	if (path == NULL)
		return;
	n = snprintf(line, sizeof(line), "hold %s\n", node);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	if (n > 0 && write(fd, line, (size_t)n) != n)
		n = -1; /* a test that cannot see the hold fails by itself */
	close(fd);
}

static void hold(const char *node)
{
	const char *release = getenv("SLOWDNS_RELEASE");
	struct timespec tick = {.tv_sec = 0, .tv_nsec = 20 * 1000000L};

	log_hold(node);
	for (int i = 0; i < SLOWDNS_MAX_HOLD_S * 50; i++) {
		if (release != NULL && access(release, F_OK) == 0)
			return;
		nanosleep(&tick, NULL);
	}
}

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
	getaddrinfo_fn real = (getaddrinfo_fn)dlsym(RTLD_NEXT, "getaddrinfo");

	if (real == NULL)
		return EAI_SYSTEM;
	if (node != NULL && ends_with(node, ".slow.test")) {
		hold(node);
		return EAI_NONAME;
	}
	if (node != NULL && ends_with(node, ".fast.test"))
		return real("127.0.0.1", service, hints, res);
	return real(node, service, hints, res);
}
