/*
 * limits: admission control of consuma-fcgi, called by the router before a
 * request reaches its handler: the per-client rate limit shared by every
 * consuma-fcgi process of the host (lib/ratelimit.h), the client address
 * (lib/clientaddr.h: X-Forwarded-For only from trusted proxies), the
 * saturation check of the sync pool (its listen queue, read from the
 * kernel), and the Retry-After estimate for a full queue. One struct
 * limits per process, shared by its worker threads: every call is thread
 * safe.
 */
#ifndef CONSUMA_LIMITS_H
#define CONSUMA_LIMITS_H

#include <stddef.h>
#include <stdint.h>
#include "config.h"
#include "store.h"

struct limits;

enum limits_verdict {
	LIMITS_PASS = 0,
	LIMITS_RATE_LIMITED, /* answer 429 with Retry-After: *retry_after_s */
	LIMITS_OVERLOADED,   /* sync pool saturated: answer 503 with Retry-After: *retry_after_s */
};

/* Sets up admission control from cfg (maps the shared rate-limit zone).
 * NULL on failure with why filled. limits_close(NULL) is a no-op. */
struct limits *limits_open(const struct config *cfg, char *why, size_t whylen);
void limits_close(struct limits *l);

/* The address to account the request to: remote_addr, or the right-most
 * X-Forwarded-For entry not in CONSUMA_TRUSTED_PROXIES when remote_addr is a
 * trusted proxy. xff may be NULL. */
void limits_client_addr(const struct limits *l, const char *remote_addr, const char *xff, char *out,
                        size_t outlen);

/* The listening socket whose queue tells a sync-pool process it is
 * saturated (fd 0, as spawn-fcgi and lighttpd hand it over, until set) and
 * how many requests the process serves at once. Call before the threads
 * start. */
void limits_set_listen_fd(struct limits *l, int fd, int threads);

/* Counts one request of client on route ("sync", "async", "requests",
 * "healthz"; healthz is never limited). For "sync", first sheds with
 * LIMITS_OVERLOADED when the requests waiting behind this one (at the
 * compute gate and in the listen queue) would wait longer than
 * CONSUMA_SYNC_MAX_WAIT_MS, estimated from this process's recent /sync
 * compute times (a shed request is not counted against the client's
 * rate). */
enum limits_verdict limits_admit(struct limits *l, const char *client, const char *route,
                                 int64_t *retry_after_s);

/* The compute gate: enter waits until fewer hashes than the machine has
 * CPUs are being computed by this process; leave frees the place and feeds
 * the compute time into the wait estimate. Every enter needs one leave. */
void limits_compute_enter(struct limits *l);
void limits_compute_leave(struct limits *l, int64_t compute_ns);

/* Retry-After (within http.h's HTTP_RETRY_AFTER_MIN_S..MAX_S) for a POST
 * /async refused because the queue is full, from the backlog and the recent
 * drain rate. */
int64_t limits_queue_retry_after(struct limits *l, struct store *s, int64_t queue_depth);

/* The arithmetic of limits_queue_retry_after: Retry-After seconds (within
 * http.h's 1..60) for a POST /async refused with the queue at depth of max_size, when
 * `finished` jobs finished in the last `over_ms`: the time the queue needs
 * to drain depth - max_size + 1 jobs at that rate, rounded up; 60 when
 * nothing drained. Pure: thread safe. */
int64_t limits_drain_retry_after_s(int64_t depth, int64_t max_size, int64_t finished,
                                   int64_t over_ms);

enum limits_listen_err {
	LIMITS_LISTEN_OK = 0,
	LIMITS_LISTEN_INVALID, /* fd is not a listening unix or TCP socket */
	LIMITS_LISTEN_IO,      /* the kernel would not say */
};

const char *limits_listen_strerror(enum limits_listen_err err);

/* Connections waiting in the accept queue of the listening socket fd (a
 * unix socket, through NETLINK_SOCK_DIAG; TCP, through TCP_INFO), that is
 * requests a single-threaded FastCGI process has not taken yet. Costs a few
 * system calls; *pending is 0 on failure. Thread safe. */
enum limits_listen_err limits_listen_pending(int fd, int64_t *pending);

#endif
