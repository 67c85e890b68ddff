/*
 * resolve: timed lookups and the lookups-in-flight gate (see resolve.h).
 *
 * Timed lookup (resolve_system): getaddrinfo runs in a detached thread; the
 * caller waits on a condition variable for at most timeout_ms. A lookup
 * that outlives its caller finishes on its own and frees its state (the
 * state is reference counted: caller and thread each hold one reference).
 * The number of such threads is bounded by RESOLVE_MAX_THREADS; beyond it a
 * lookup fails at once rather than piling up threads behind a dead DNS.
 *
 * The gate: one mutex over a count in flight and a small table of the
 * clients holding places (at most max_inflight of them, since each holds
 * at least one place), searched linearly: it is as long as the bound, a
 * few dozen entries at most. Nobody waits at the gate; a caller that finds
 * no place is told so at once.
 */
#include "resolve.h"

#include <errno.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "log.h"
#include "url.h"

/* ---- timed lookup -------------------------------------------------------- */

static atomic_int resolve_threads; /* process-wide: lookups running in threads */

struct lookup {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int refs;
	bool done;
	int rc;
	struct addrinfo *res;
	char host[URL_HOST_MAX];
};

static void lookup_unref(struct lookup *l)
{
	bool last;

	pthread_mutex_lock(&l->mu);
	last = --l->refs == 0;
	pthread_mutex_unlock(&l->mu);
	if (!last)
		return;
	if (l->res != NULL)
		freeaddrinfo(l->res);
	pthread_cond_destroy(&l->cv);
	pthread_mutex_destroy(&l->mu);
	cz_free(l);
}

static void *lookup_main(void *arg)
{
	struct lookup *l = arg;
	struct addrinfo hints, *res = NULL;
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(l->host, NULL, &hints, &res);
	pthread_mutex_lock(&l->mu);
	l->rc = rc;
	l->res = rc == 0 ? res : NULL;
	l->done = true;
	pthread_cond_signal(&l->cv);
	pthread_mutex_unlock(&l->mu);
	lookup_unref(l);
	atomic_fetch_sub(&resolve_threads, 1);
	return NULL;
}

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET)
		return memcmp(&((const struct sockaddr_in *)(const void *)a)->sin_addr,
		              &((const struct sockaddr_in *)(const void *)b)->sin_addr,
		              sizeof(struct in_addr)) == 0;
	return memcmp(&((const struct sockaddr_in6 *)(const void *)a)->sin6_addr,
	              &((const struct sockaddr_in6 *)(const void *)b)->sin6_addr,
	              sizeof(struct in6_addr)) == 0;
}

/* Appends ss to addrs[0..n) unless it is there already or not IP; the new n. */
static int add_unique(struct sockaddr_storage *addrs, int n, const struct sockaddr_storage *ss)
{
	if (ss->ss_family != AF_INET && ss->ss_family != AF_INET6)
		return n;
	for (int i = 0; i < n; i++)
		if (same_addr(&addrs[i], ss))
			return n;
	if (&addrs[n] != ss)
		addrs[n] = *ss;
	return n + 1;
}

int resolve_unique(struct sockaddr_storage *addrs, int n)
{
	int kept = 0;

	for (int i = 0; i < n; i++)
		kept = add_unique(addrs, kept, &addrs[i]);
	return kept;
}

/* Takes a place among the helper threads; false (logged) when all are taken. */
static bool thread_place(const char *host)
{
	if (atomic_fetch_add(&resolve_threads, 1) < RESOLVE_MAX_THREADS)
		return true;
	atomic_fetch_sub(&resolve_threads, 1);
	log_event(L_WARN, "ssrf.resolve_busy", "host=%s threads=%d", log_q(host),
	          RESOLVE_MAX_THREADS);
	return false;
}

/* Starts the lookup of host; NULL when no thread could be started. */
static struct lookup *lookup_start(const char *host)
{
	struct lookup *l = cz_calloc(1, sizeof(*l));
	pthread_attr_t attr;
	pthread_condattr_t ca;
	pthread_t tid;
	int rc;

	if (l == NULL)
		return NULL;
	memcpy(l->host, host, strlen(host) + 1);
	l->refs = 2;
	pthread_mutex_init(&l->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->cv, &ca);
	pthread_condattr_destroy(&ca);

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&tid, &attr, lookup_main, l);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		l->refs = 1;
		lookup_unref(l);
		return NULL;
	}
	return l;
}

int resolve_system(const char *host, int timeout_ms, struct sockaddr_storage *addrs, int max,
                   void *arg)
{
	struct lookup *l;
	struct timespec deadline;
	int n = 0, rc = 0;

	(void)arg;
	if (host == NULL || strlen(host) >= URL_HOST_MAX || max <= 0)
		return 0;
	if (!thread_place(host))
		return 0;
	l = lookup_start(host);
	if (l == NULL) {
		atomic_fetch_sub(&resolve_threads, 1);
		return 0;
	}

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&l->mu);
	while (!l->done && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&l->cv, &l->mu, &deadline);
	if (l->done && l->rc == 0) {
		for (struct addrinfo *ai = l->res; ai != NULL && n < max; ai = ai->ai_next) {
			struct sockaddr_storage ss;

			if (ai->ai_addrlen > sizeof(ss))
				continue;
			memset(&ss, 0, sizeof(ss));
			memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
			n = add_unique(addrs, n, &ss);
		}
	}
	pthread_mutex_unlock(&l->mu);
	lookup_unref(l);
	return n;
}

/* ---- the gate ------------------------------------------------------------ */

struct holder {
	char key[RESOLVE_GATE_KEY_MAX];
	int n; /* places held; 0: the entry is free */
};

struct resolve_gate {
	pthread_mutex_t mu;
	int max_inflight;
	int max_per_client;
	int inflight;
	struct holder *holders; /* max_inflight entries */
};

struct resolve_gate *resolve_gate_new(int max_inflight, int max_per_client)
{
	struct resolve_gate *g = cz_calloc(1, sizeof(*g));

	if (g == NULL)
		return NULL;
	g->max_inflight = max_inflight < 1 ? 1 : max_inflight;
	g->max_per_client = max_per_client < 1 ? 1 : max_per_client;
	g->holders = cz_calloc((size_t)g->max_inflight, sizeof(*g->holders));
	if (g->holders == NULL) {
		cz_free(g);
		return NULL;
	}
	pthread_mutex_init(&g->mu, NULL);
	return g;
}

void resolve_gate_free(struct resolve_gate *g)
{
	if (g == NULL)
		return;
	pthread_mutex_destroy(&g->mu);
	cz_free(g->holders);
	cz_free(g);
}

/* client's entry, or NULL; with create, a free entry made client's. */
static struct holder *holder_of(struct resolve_gate *g, const char *client, bool create)
{
	struct holder *free_entry = NULL;

	for (int i = 0; i < g->max_inflight; i++) {
		struct holder *h = &g->holders[i];

		if (h->n == 0) {
			if (free_entry == NULL)
				free_entry = h;
		} else if (strncmp(h->key, client, sizeof(h->key) - 1) == 0) {
			return h;
		}
	}
	if (!create || free_entry == NULL)
		return NULL;
	memset(free_entry->key, 0, sizeof(free_entry->key));
	strncat(free_entry->key, client, sizeof(free_entry->key) - 1);
	return free_entry;
}

enum resolve_gate_verdict resolve_gate_enter(struct resolve_gate *g, const char *client)
{
	enum resolve_gate_verdict v = RESOLVE_GATE_PASS;
	struct holder *h;

	if (g == NULL)
		return RESOLVE_GATE_PASS;
	if (client == NULL)
		client = "";
	pthread_mutex_lock(&g->mu);
	h = g->inflight < g->max_inflight ? holder_of(g, client, true) : NULL;
	if (h == NULL) /* fewer clients than places in flight: only a full gate has no entry */
		v = RESOLVE_GATE_FULL;
	else if (h->n >= g->max_per_client)
		v = RESOLVE_GATE_CLIENT;
	else {
		h->n++;
		g->inflight++;
	}
	pthread_mutex_unlock(&g->mu);
	return v;
}

void resolve_gate_leave(struct resolve_gate *g, const char *client)
{
	struct holder *h;

	if (g == NULL)
		return;
	if (client == NULL)
		client = "";
	pthread_mutex_lock(&g->mu);
	h = holder_of(g, client, false);
	if (h != NULL) {
		h->n--;
		g->inflight--;
	}
	pthread_mutex_unlock(&g->mu);
}

int resolve_gate_max_inflight(const struct resolve_gate *g)
{
	return g != NULL ? g->max_inflight : 0;
}

int resolve_gate_max_per_client(const struct resolve_gate *g)
{
	return g != NULL ? g->max_per_client : 0;
}

const char *resolve_gate_strerror(enum resolve_gate_verdict v)
{
	switch (v) {
	case RESOLVE_GATE_PASS:
		return "a place is free";
	case RESOLVE_GATE_FULL:
		return "every place for host name lookups in this process is taken";
	case RESOLVE_GATE_CLIENT:
		return "this client holds every place for host name lookups it may hold";
	}
	return "unknown verdict";
}
