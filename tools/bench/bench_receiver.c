/*
 * bench_receiver: a callback receiver for tools/bench/deliver.sh that is
 * not the bottleneck. One thread, epoll, HTTP/1.1 keep-alive; every request
 * is answered "200 OK" with an empty body and counted, nothing else is
 * kept. The Python receiver of the tests tops out near 1,500 requests/s on
 * this machine, well below what the deliverer should reach.
 *
 *   bench_receiver --port-file F [--expect N] [--timeout S]
 *
 * Binds 127.0.0.1 on a free port and writes it to F. With --expect, exits
 * once N requests have arrived (or after S seconds, default 120) and prints
 * "requests=N first_ms=T0 last_ms=T1" (epoch milliseconds of the first and
 * last arrival) on stdout. SIGTERM prints the same and exits.
 */
#define _GNU_SOURCE /* memmem, accept4 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "ids.h"

#define CONN_BUF   16384
#define MAX_EVENTS 256

struct conn {
	int fd;
	size_t len;
	char buf[CONN_BUF];
};

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
	(void)sig;
	stop = 1;
}

static bool parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
	char *end = NULL;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

/* Content-Length of the header block [p, p+n), 0 when absent, -1 when bad. */
static int64_t content_length(const char *p, size_t n)
{
	static const char name[] = "\r\ncontent-length:";
	size_t nl = sizeof name - 1;
	for (size_t i = 0; i + nl <= n; i++) {
		if (strncasecmp(p + i, name, nl) != 0)
			continue;
		int64_t v = 0;
		size_t k = i + nl;
		while (k < n && p[k] == ' ')
			k++;
		if (k >= n || p[k] < '0' || p[k] > '9')
			return -1;
		while (k < n && p[k] >= '0' && p[k] <= '9' && v < 100000000)
			v = v * 10 + (p[k++] - '0');
		return v;
	}
	return 0;
}

/* Answers every complete request in c's buffer; false when c must close. */
static bool serve(struct conn *c, uint64_t *count, int64_t *first, int64_t *last)
{
	static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
	for (;;) {
		char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
		if (!end)
			return c->len < sizeof c->buf; /* a header over 16 KiB: close */
		size_t head = (size_t)(end - c->buf) + 4;
		int64_t body = content_length(c->buf, head);
		if (body < 0 || head + (size_t)body > sizeof c->buf)
			return false;
		if (c->len < head + (size_t)body)
			return true; /* the body is still coming */
		if (write(c->fd, ok, sizeof ok - 1) != (ssize_t)(sizeof ok - 1))
			return false;
		int64_t now = ids_now_ms();
		if (*count == 0)
			*first = now;
		*last = now;
		(*count)++;
		size_t used = head + (size_t)body;
		memmove(c->buf, c->buf + used, c->len - used);
		c->len -= used;
	}
}

static int listen_loopback(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t al = sizeof a;
	if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 4096) != 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &al) != 0) {
		close(fd);
		return -1;
	}
	*port = ntohs(a.sin_port);
	return fd;
}

int main(int argc, char **argv)
{
	const char *port_file = NULL;
	int64_t expect = 0, timeout_s = 120;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--port-file") == 0 && i + 1 < argc)
			port_file = argv[++i];
		else if (strcmp(argv[i], "--expect") == 0 && i + 1 < argc &&
		         parse_i64(argv[i + 1], 1, INT64_MAX, &expect))
			i++;
		else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc &&
		         parse_i64(argv[i + 1], 1, 86400, &timeout_s))
			i++;
		else {
			fprintf(stderr, "usage: bench_receiver --port-file F [--expect N] "
			                "[--timeout S]\n");
			return 2;
		}
	}
	if (!port_file) {
		fprintf(stderr, "bench_receiver: --port-file is required\n");
		return 2;
	}
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	signal(SIGPIPE, SIG_IGN);
	int port = 0;
	int lfd = listen_loopback(&port);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (lfd < 0 || ep < 0) {
		perror("bench_receiver: listen");
		return 1;
	}
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	FILE *pf = fopen(port_file, "w");
	if (!pf || fprintf(pf, "%d\n", port) < 0 || fclose(pf) != 0) {
		perror("bench_receiver: port file");
		return 1;
	}

	uint64_t count = 0;
	int64_t first = 0, last = 0;
	int64_t deadline = ids_mono_ms() + timeout_s * 1000;
	struct epoll_event evs[MAX_EVENTS];
	while (!stop && (expect == 0 || count < (uint64_t)expect) && ids_mono_ms() < deadline) {
		int n = epoll_wait(ep, evs, MAX_EVENTS, 200);
		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			if (!c) {
				int fd;
				while ((fd = accept4(lfd, NULL, NULL,
				                     SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
					struct conn *nc = cz_calloc(1, sizeof *nc);
					if (!nc) {
						close(fd);
						continue;
					}
					int one = 1;
					setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
					nc->fd = fd;
					struct epoll_event cev = {.events = EPOLLIN,
					                          .data.ptr = nc};
					epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
				}
				continue;
			}
			ssize_t r = read(c->fd, c->buf + c->len, sizeof c->buf - c->len);
			bool keep = r > 0;
			if (keep) {
				c->len += (size_t)r;
				keep = serve(c, &count, &first, &last);
			} else if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
				keep = true;
			}
			if (!keep) {
				epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
				close(c->fd);
				cz_free(c);
			}
		}
	}
	printf("requests=%llu first_ms=%lld last_ms=%lld\n", (unsigned long long)count,
	       (long long)first, (long long)last);
	return expect && count < (uint64_t)expect ? 1 : 0;
}
