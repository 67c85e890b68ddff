/*
 * bench_ratelimit: nanoseconds per rate-limiter check (lib/ratelimit) in the
 * situations a consuma-fcgi process meets, single process, in one run:
 *
 *   many clients    4096 keys in turn, each under its limit (admitted path)
 *                   with a simulated clock
 *   one client over one key past its limit (refused path)
 *   zone overflow   100000 keys through an 8192-entry zone (every hit evicts)
 *   + clock         as "many clients" plus a ratelimit_now_ms() per hit, as
 *                   limits_admit does (the simulated clock still decides)
 *   client address  clientaddr_pick (lib/clientaddr) with a 3-hop
 *                   X-Forwarded-For
 *   listen queue    limits_listen_pending (fcgi-app/limits.c) on a unix
 *                   socket (the /sync saturation check, one netlink round
 *                   trip)
 *
 * Usage: bench_ratelimit [HITS (1000000)] [REPEATS (5)]
 * Prints the best of REPEATS per row; asserts nothing about speed.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include "cidr.h"
#include "clientaddr.h"
#include "ids.h"
#include "limits.h"
#include "ratelimit.h"

#define KEYS 4096

static char keys[KEYS][CLIENTADDR_MAX];
static volatile int64_t clock_sink;

static int64_t parse_count(const char *s, int64_t def)
{
	char *end = NULL;
	long long v;

	if (s == NULL)
		return def;
	v = strtoll(s, &end, 10);
	if (end == s || *end != '\0' || v < 1 || v > 1000000000LL) {
		fprintf(stderr, "bench_ratelimit: bad count %s\n", s);
		exit(2);
	}
	return v;
}

static struct ratelimit *open_zone(const char *dir, const char *name, int64_t limit,
                                   int64_t window_ms, int64_t entries)
{
	struct ratelimit_params p = {limit, window_ms, entries};
	enum ratelimit_err err;
	char path[512], why[256];
	struct ratelimit *rl;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	rl = ratelimit_open(path, &p, &err, why, sizeof(why));
	if (rl == NULL) {
		fprintf(stderr, "bench_ratelimit: %s\n", why);
		exit(1);
	}
	return rl;
}

enum scenario { MANY, OVER, OVERFLOW, MANY_CLOCK };

/* ns per hit over n hits; counts admissions into *admitted. */
static double run(struct ratelimit *rl, enum scenario sc, int64_t n, int64_t *admitted)
{
	char key[32];
	static int64_t now = 1000000; /* simulated clock: keeps going across runs */
	int64_t i, t0;
	bool allowed;
	int64_t retry;

	*admitted = 0;
	t0 = ids_mono_ns();
	for (i = 0; i < n; i++) {
		const char *k;

		switch (sc) {
		case OVER:
			k = keys[0];
			break;
		case OVERFLOW:
			snprintf(key, sizeof(key), "10.%d.%d.%d", (int)(i / 65536 % 2),
			         (int)(i / 256 % 256), (int)(i % 256));
			k = key;
			break;
		default:
			k = keys[i % KEYS];
			break;
		}
		if (sc == MANY_CLOCK)
			clock_sink += ratelimit_now_ms(); /* its cost, not its value */
		if (i % 64 == 0)
			now++;
		if (ratelimit_hit(rl, k, now, &allowed, &retry) != RATELIMIT_OK) {
			fprintf(stderr, "bench_ratelimit: hit failed\n");
			exit(1);
		}
		*admitted += allowed;
	}
	return (double)(ids_mono_ns() - t0) / (double)n;
}

static double run_addr(int64_t n)
{
	char why[128], out[CLIENTADDR_MAX];
	struct cidr_list *t = cidr_list_new("127.0.0.1/32, 10.0.0.0/8", "trust", why, sizeof(why));
	int64_t i, t0;
	size_t sink = 0;

	if (t == NULL)
		exit(1);
	t0 = ids_mono_ns();
	for (i = 0; i < n; i++) {
		clientaddr_pick(t, "127.0.0.1", "198.51.100.7, 10.1.2.3, 10.4.5.6", out,
		                sizeof(out));
		sink += (size_t)out[0];
	}
	cidr_list_free(t);
	if (sink == 0)
		fprintf(stderr, "(sink)\n");
	return (double)(ids_mono_ns() - t0) / (double)n;
}

static double run_listen(const char *dir, int64_t n)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	int64_t i, t0, pending = 0;
	size_t len = strlen(dir);

	if (fd < 0 || len + sizeof("/q.sock") > sizeof(sa.sun_path))
		return -1;
	memcpy(sa.sun_path, dir, len);
	memcpy(sa.sun_path + len, "/q.sock", sizeof("/q.sock"));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 16) != 0) {
		close(fd);
		return -1;
	}
	t0 = ids_mono_ns();
	for (i = 0; i < n; i++) {
		if (limits_listen_pending(fd, &pending) != LIMITS_LISTEN_OK) {
			close(fd);
			return -1;
		}
	}
	t0 = ids_mono_ns() - t0;
	close(fd);
	unlink(sa.sun_path);
	return (double)t0 / (double)n;
}

int main(int argc, char **argv)
{
	int64_t hits = parse_count(argc > 1 ? argv[1] : NULL, 1000000);
	int64_t repeats = parse_count(argc > 2 ? argv[2] : NULL, 5);
	char dir[] = "/tmp/bench-ratelimit.XXXXXX";
	const char *names[] = {"many clients (admitted)", "one client over its limit",
	                       "zone overflow (evicting)", "many clients + clock"};
	struct ratelimit *zones[4];
	double best[6];
	int64_t admitted[4] = {0};
	int64_t r;
	int s;
	char cmd[600];

	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	for (s = 0; s < KEYS; s++)
		snprintf(keys[s], sizeof(keys[s]), "198.51.%d.%d", s / 256, s % 256);
	/* 100 requests per key (the default) and 8192 entries (the default); a
	 * 1 s window so that 4096 keys in turn stay under their limit with the
	 * simulated clock (1 ms per 64 hits: 16 hits per key and window). */
	zones[MANY] = open_zone(dir, "many", 100, 1000, 8192);
	zones[OVER] = open_zone(dir, "over", 100, 60000, 8192);
	zones[OVERFLOW] = open_zone(dir, "overflow", 100, 60000, 8192);
	zones[MANY_CLOCK] = open_zone(dir, "clock", 100, 1000, 8192);
	for (s = 0; s < 6; s++)
		best[s] = 1e18;
	for (r = 0; r < repeats; r++) {
		double ns;

		for (s = 0; s < 4; s++) {
			ns = run(zones[s], (enum scenario)s, hits, &admitted[s]);
			if (ns < best[s])
				best[s] = ns;
		}
		ns = run_addr(hits);
		if (ns < best[4])
			best[4] = ns;
		ns = run_listen(dir, hits / 20 > 0 ? hits / 20 : 1);
		if (ns >= 0 && ns < best[5])
			best[5] = ns;
	}
	printf("%-32s %10s %12s\n", "rate limiter check", "ns/op", "admitted");
	for (s = 0; s < 4; s++)
		printf("%-32s %10.1f %11.1f%%\n", names[s], best[s],
		       100.0 * (double)admitted[s] / (double)hits);
	printf("%-32s %10.1f %12s\n", "client address (3-hop XFF)", best[4], "-");
	printf("%-32s %10.1f %12s\n", "listen queue (sock_diag)", best[5], "-");
	for (s = 0; s < 4; s++)
		ratelimit_close(zones[s]);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "bench_ratelimit: could not remove %s\n", dir);
	return 0;
}
