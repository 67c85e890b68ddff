/*
 * limits: admission control of consuma-fcgi (see limits.h).
 *
 *  - Rate limit: lib/ratelimit's shared zone, one key per client address,
 *    every route but healthz and metrics counted against the same budget.
 *    The zone is an optimisation of nothing: when it cannot be used (lock timeout,
 *    broken zone) requests pass and a warning is logged at most once per
 *    second, so the limiter can never take the API down with it.
 *  - Client address: lib/clientaddr's right-most-untrusted rule over
 *    X-Forwarded-For, believed only from CONSUMA_TRUSTED_PROXIES (a
 *    lib/cidr list).
 *  - Sync saturation: a sync-pool process computes at most as many hashes
 *    at once as the machine has CPUs (the compute gate,
 *    limits_compute_enter/leave): more would only slice the same cores
 *    thinner and make every request slower. Requests beyond that wait at
 *    the gate inside the process, and, once every worker thread is taken,
 *    in the listen queue (the kernel's accept queue). The wait of the last
 *    one in line is about (requests waiting) x (mean compute time) /
 *    (CPUs); the mean is an exponentially weighted average of this
 *    process's recent /sync compute times. The listen queue is read
 *    (limits_listen_pending: a netlink sock_diag query for a unix socket,
 *    TCP_INFO for TCP) only while every thread is in the compute
 *    phase: with a thread free, the next connection is taken at once and
 *    waits at the gate, where it is counted. When that estimate passes
 *    CONSUMA_SYNC_MAX_WAIT_MS, the request is answered 503 at once with
 *    Retry-After = the estimate in seconds, sent within http.h's 1..60
 *    (lighttpd 1.4.69 cannot do this: a full unix-socket backlog makes it
 *    answer 500, see proxy-conf/lighttpd-limits.conf). Counting time, not requests, keeps
 *    cheap requests flowing under a burst and still bounds the waiting room
 *    for expensive ones. Before the first sample nothing is shed.
 *  - Queue Retry-After: backlog over the drain rate
 *    (limits_drain_retry_after_s). The drain rate comes
 *    from the store's drain figures (store_drained; sql/sqlite/003_drain.sql) (jobs finished per second,
 *    kept by a trigger), summed over the last DRAIN_WINDOW_S seconds: a read
 *    of at most DRAIN_WINDOW_S + 1 rows whatever the queue depth. It is
 *    read at most once per DRAIN_REFRESH_MS per process, so a storm of
 *    refusals costs one query per second, not one per request.
 *  - Threads: one struct limits serves every worker thread of a process;
 *    mu guards its mutable fields (the estimate, the drain cache, the zone
 *    handle). Each call holds it for well under a microsecond.
 */
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include "alloc.h"
#include "cidr.h"
#include "clientaddr.h"
#include "http.h"
#include "ids.h"
#include "limits.h"
#include "log.h"
#include "ratelimit.h"

#define DRAIN_WINDOW_S   10
#define DRAIN_REFRESH_MS 1000
#define WARN_EVERY_MS    1000

struct limits {
	const struct config *cfg;
	pthread_mutex_t mu;
	struct ratelimit *rl; /* NULL when CONSUMA_RATE_LIMIT_REQUESTS is 0 */
	struct ratelimit_params params;
	struct cidr_list *trust;
	char zone[CONFIG_PATH_MAX];
	int64_t warned_ms;     /* last fail-open warning */
	int64_t drain_read_ms; /* when `drained` was read (monotonic); 0 never */
	int64_t drained;       /* jobs finished in the DRAIN_WINDOW_S before that */
	bool drain_known;      /* the read worked */
	int listen_fd;         /* for the sync pool's saturation check */
	int threads;           /* requests this process serves at once */
	int cores;             /* hashes computed at once (the compute gate) */
	int computing;         /* in the gate */
	int gate_waiting;      /* waiting at the gate */
	pthread_cond_t gate;   /* a place in the gate came free */
	double sync_mean_ms;   /* weighted mean /sync compute time; 0 before a sample */
	bool listen_warned;    /* logged once that the check cannot work */
};

static struct ratelimit *open_zone(struct limits *l, char *why, size_t whylen)
{
	enum ratelimit_err err;
	struct ratelimit *rl = ratelimit_open(l->zone, &l->params, &err, why, whylen);

	if (rl != NULL)
		log_event(L_INFO, "limits.zone",
		          "path=%s requests=%lld window_s=%lld entries=%lld bytes=%lld",
		          log_q(l->zone), (long long)l->params.limit,
		          (long long)(l->params.window_ms / 1000), (long long)l->params.entries,
		          (long long)ratelimit_zone_bytes(&l->params));
	return rl;
}

struct limits *limits_open(const struct config *cfg, char *why, size_t whylen)
{
	struct limits *l = cz_calloc(1, sizeof(*l));

	if (l == NULL) {
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	l->cfg = cfg;
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->gate, NULL);
	l->listen_fd = 0;
	l->threads = 1;
	l->cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (l->cores < 1)
		l->cores = 1;
	l->trust = cidr_list_new(cfg->trusted_proxies, "CONSUMA_TRUSTED_PROXIES", why, whylen);
	if (l->trust == NULL)
		goto fail;
	if (cfg->rate_limit_requests > 0) {
		l->params.limit = cfg->rate_limit_requests;
		l->params.window_ms = cfg->rate_limit_window_ms;
		l->params.entries = cfg->rate_limit_zone_entries;
		config_rate_limit_zone(cfg, l->zone, sizeof(l->zone));
		l->rl = open_zone(l, why, whylen);
		if (l->rl == NULL)
			goto fail;
	}
	return l;
fail:
	limits_close(l);
	return NULL;
}

void limits_close(struct limits *l)
{
	if (l == NULL)
		return;
	ratelimit_close(l->rl);
	cidr_list_free(l->trust);
	pthread_cond_destroy(&l->gate);
	pthread_mutex_destroy(&l->mu);
	cz_free(l);
}

void limits_client_addr(const struct limits *l, const char *remote_addr, const char *xff, char *out,
                        size_t outlen)
{
	clientaddr_pick(l != NULL ? l->trust : NULL, remote_addr, xff, out, outlen);
}

static void warn_fail_open(struct limits *l, enum ratelimit_err err, const char *client)
{
	int64_t now = ids_mono_ms();

	if (l->warned_ms != 0 && now - l->warned_ms < WARN_EVERY_MS)
		return;
	l->warned_ms = now;
	log_event(L_WARN, "limits.fail_open", "why=%s client=%s", log_q(ratelimit_strerror(err)),
	          log_q(client));
}

void limits_set_listen_fd(struct limits *l, int fd, int threads)
{
	if (l == NULL)
		return;
	l->listen_fd = fd;
	l->threads = threads > 0 ? threads : 1;
}

/* The wait, in ms, of the last request queued behind this one: 0 when
 * nothing waits or nothing is known yet. */
static double sync_wait_estimate_ms(struct limits *l)
{
	int64_t pending = 0;
	enum limits_listen_err err;

	if (l->sync_mean_ms <= 0.0)
		return 0.0;
	if (l->computing + l->gate_waiting + 1 >= l->threads) {
		err = limits_listen_pending(l->listen_fd, &pending);
		if (err != LIMITS_LISTEN_OK) {
			if (!l->listen_warned)
				log_event(L_WARN, "limits.listen_queue_unknown", "fd=%d why=%s",
				          l->listen_fd, log_q(limits_listen_strerror(err)));
			l->listen_warned = true;
			pending = 0;
		}
	}
	return (double)(pending + l->gate_waiting) * l->sync_mean_ms / (double)l->cores;
}

void limits_compute_enter(struct limits *l)
{
	if (l == NULL)
		return;
	pthread_mutex_lock(&l->mu);
	l->gate_waiting++;
	while (l->computing >= l->cores)
		pthread_cond_wait(&l->gate, &l->mu);
	l->gate_waiting--;
	l->computing++;
	pthread_mutex_unlock(&l->mu);
}

void limits_compute_leave(struct limits *l, int64_t compute_ns)
{
	double ms = (double)compute_ns / 1e6;

	if (l == NULL)
		return;
	pthread_mutex_lock(&l->mu);
	l->computing--;
	/* Weight 1/8: a few slow requests move the mean, one outlier does not. */
	l->sync_mean_ms =
	    l->sync_mean_ms <= 0.0 ? ms : l->sync_mean_ms + (ms - l->sync_mean_ms) / 8.0;
	pthread_cond_signal(&l->gate);
	pthread_mutex_unlock(&l->mu);
}

static enum limits_verdict admit(struct limits *l, const char *client, const char *route,
                                 int64_t *retry_after_s)
{
	char key[RATELIMIT_KEY_MAX];
	enum ratelimit_err err;
	int64_t retry_ms = 0;
	bool allowed = true;

	*retry_after_s = 0;
	if (l == NULL || route == NULL || strcmp(route, "healthz") == 0 ||
	    strcmp(route, "metrics") == 0)
		return LIMITS_PASS;
	if (strcmp(route, "sync") == 0) {
		double wait_ms = sync_wait_estimate_ms(l);

		if (wait_ms > (double)l->cfg->sync_max_wait_ms) {
			double s = ceil(wait_ms / 1000.0);

			/* http_retry_after clamps what is sent; fmin keeps the cast
			 * defined */
			*retry_after_s = (int64_t)fmin(s, 86400.0);
			return LIMITS_OVERLOADED;
		}
	}
	if (l->rl == NULL)
		return LIMITS_PASS;
	/* Addresses are at most 45 bytes; anything longer (a REMOTE_ADDR that
	 * is not an address) is cut rather than left unlimited. */
	snprintf(key, sizeof(key), "%s", client != NULL && client[0] != '\0' ? client : "-");
	err = ratelimit_hit(l->rl, key, ratelimit_now_ms(), &allowed, &retry_ms);
	if (err == RATELIMIT_BROKEN) {
		char why[256];

		/* Another process gave the zone up: map the one that replaces it. */
		ratelimit_close(l->rl);
		l->rl = open_zone(l, why, sizeof(why));
		if (l->rl == NULL) {
			log_event(L_ERROR, "limits.zone_lost", "why=%s", log_q(why));
			/* l->rl stays NULL: limiting is off until the process restarts */
		} else {
			err = ratelimit_hit(l->rl, key, ratelimit_now_ms(), &allowed, &retry_ms);
		}
	}
	if (err != RATELIMIT_OK) {
		warn_fail_open(l, err, key);
		return LIMITS_PASS;
	}
	if (allowed)
		return LIMITS_PASS;
	*retry_after_s = ratelimit_retry_after_s(retry_ms);
	return LIMITS_RATE_LIMITED;
}

enum limits_verdict limits_admit(struct limits *l, const char *client, const char *route,
                                 int64_t *retry_after_s)
{
	enum limits_verdict v;

	*retry_after_s = 0;
	if (l == NULL)
		return LIMITS_PASS;
	pthread_mutex_lock(&l->mu);
	v = admit(l, client, route, retry_after_s);
	pthread_mutex_unlock(&l->mu);
	return v;
}

/* Jobs finished in the last DRAIN_WINDOW_S seconds, by every deliverer. */
static bool read_drained(struct store *s, int64_t *out)
{
	return s != NULL && store_drained(s, ids_now_ms() / 1000 - DRAIN_WINDOW_S, out) == STORE_OK;
}

int64_t limits_queue_retry_after(struct limits *l, struct store *s, int64_t queue_depth)
{
	int64_t now = ids_mono_ms();
	int64_t max_size = l != NULL ? l->cfg->max_queue_size : queue_depth;

	int64_t retry;

	if (l == NULL)
		return limits_drain_retry_after_s(queue_depth, max_size, 0, 0);
	pthread_mutex_lock(&l->mu);
	if (l->drain_read_ms == 0 || now - l->drain_read_ms >= DRAIN_REFRESH_MS) {
		int64_t drained = 0;

		l->drain_known = read_drained(s, &drained);
		l->drained = drained;
		l->drain_read_ms = now;
		if (!l->drain_known)
			log_event(L_WARN, "limits.drain_unknown", "why=%s",
			          log_q(s != NULL ? store_errmsg(s) : "no store"));
	}
	retry = limits_drain_retry_after_s(queue_depth, max_size, l->drain_known ? l->drained : 0,
	                                   (int64_t)DRAIN_WINDOW_S * 1000);
	pthread_mutex_unlock(&l->mu);
	return retry;
}

/* ---- listen queue ---- */

const char *limits_listen_strerror(enum limits_listen_err err)
{
	switch (err) {
	case LIMITS_LISTEN_OK:
		return "ok";
	case LIMITS_LISTEN_INVALID:
		return "not a listening unix or TCP socket";
	case LIMITS_LISTEN_IO:
		return "the kernel would not say";
	}
	return "unknown error";
}

static enum limits_listen_err unix_pending(int fd, int64_t *pending)
{
	struct {
		struct nlmsghdr nlh;
		struct unix_diag_req req;
	} msg;
	struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
	union {
		struct nlmsghdr nlh;
		unsigned char bytes[4096];
	} reply;
	enum limits_listen_err rc = LIMITS_LISTEN_IO;
	struct stat st;
	ssize_t got;
	int nl;

	if (fstat(fd, &st) != 0)
		return LIMITS_LISTEN_IO;
	nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
	if (nl < 0)
		return LIMITS_LISTEN_IO;
	memset(&msg, 0, sizeof(msg));
	msg.nlh.nlmsg_len = sizeof(msg);
	msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
	msg.nlh.nlmsg_flags = NLM_F_REQUEST;
	msg.req.sdiag_family = AF_UNIX;
	msg.req.udiag_states = 1u << 10; /* TCP_LISTEN */
	msg.req.udiag_ino = (uint32_t)st.st_ino;
	msg.req.udiag_show = UDIAG_SHOW_RQLEN;
	msg.req.udiag_cookie[0] = INET_DIAG_NOCOOKIE;
	msg.req.udiag_cookie[1] = INET_DIAG_NOCOOKIE;
	if (sendto(nl, &msg, sizeof(msg), 0, (struct sockaddr *)&kernel, sizeof(kernel)) !=
	    (ssize_t)sizeof(msg))
		goto out;
	got = recv(nl, &reply, sizeof(reply), 0);
	if (got < (ssize_t)NLMSG_LENGTH(sizeof(struct unix_diag_msg)) ||
	    reply.nlh.nlmsg_type != SOCK_DIAG_BY_FAMILY || reply.nlh.nlmsg_len > (uint32_t)got)
		goto out;
	{
		struct unix_diag_msg *m = NLMSG_DATA(&reply.nlh);
		struct rtattr *a = (struct rtattr *)(m + 1);
		unsigned int left = reply.nlh.nlmsg_len - NLMSG_LENGTH(sizeof(*m));

		for (; RTA_OK(a, left); a = RTA_NEXT(a, left)) {
			if (a->rta_type == UNIX_DIAG_RQLEN &&
			    RTA_PAYLOAD(a) >= sizeof(struct unix_diag_rqlen)) {
				struct unix_diag_rqlen q;

				memcpy(&q, RTA_DATA(a), sizeof(q));
				*pending = q.udiag_rqueue;
				rc = LIMITS_LISTEN_OK;
				break;
			}
		}
	}
out:
	close(nl);
	return rc;
}

enum limits_listen_err limits_listen_pending(int fd, int64_t *pending)
{
	int listening = 0, domain = 0;
	socklen_t len = sizeof(listening);

	*pending = 0;
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) != 0 || !listening)
		return LIMITS_LISTEN_INVALID;
	len = sizeof(domain);
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0)
		return LIMITS_LISTEN_IO;
	if (domain == AF_UNIX)
		return unix_pending(fd, pending);
	if (domain == AF_INET || domain == AF_INET6) {
		struct tcp_info ti;

		len = sizeof(ti);
		memset(&ti, 0, sizeof(ti));
		if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0)
			return LIMITS_LISTEN_IO;
		*pending = ti.tcpi_unacked; /* a listener reports its accept queue here */
		return LIMITS_LISTEN_OK;
	}
	return LIMITS_LISTEN_INVALID;
}

/* ---- the queue's Retry-After ---- */

int64_t limits_drain_retry_after_s(int64_t depth, int64_t max_size, int64_t finished,
                                   int64_t over_ms)
{
	double need = (double)depth - (double)max_size + 1.0, s;

	if (need < 1.0)
		need = 1.0;
	if (finished <= 0 || over_ms <= 0)
		return HTTP_RETRY_AFTER_MAX_S;
	s = ceil(need * ((double)over_ms / 1000.0) / (double)finished);
	if (s < HTTP_RETRY_AFTER_MIN_S)
		return HTTP_RETRY_AFTER_MIN_S;
	if (s > HTTP_RETRY_AFTER_MAX_S)
		return HTTP_RETRY_AFTER_MAX_S;
	return (int64_t)s;
}
