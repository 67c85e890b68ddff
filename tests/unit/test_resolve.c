/*
 * test_resolve: the timed system resolver on numeric hosts (no query leaves
 * the machine), resolve_unique over a table, and the lookups-in-flight
 * gate: its bounds one call at a time, then under threads whose "lookup"
 * is a resolver that hangs until the test releases it (the slow name
 * server the gate exists for): the callers beyond the bound are refused at
 * once while the admitted ones still hang.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "resolve.h"

#define MAXA 16

static void test_system_numeric(void **state)
{
	struct sockaddr_storage a[MAXA];

	(void)state;
	assert_int_equal(resolve_system("127.0.0.1", 2000, a, MAXA, NULL), 1);
	assert_int_equal(a[0].ss_family, AF_INET);
	assert_int_equal(resolve_system("::1", 2000, a, MAXA, NULL), 1);
	assert_int_equal(a[0].ss_family, AF_INET6);
	/* nothing asked for, nothing to ask about */
	assert_int_equal(resolve_system("127.0.0.1", 2000, a, 0, NULL), 0);
	assert_int_equal(resolve_system(NULL, 2000, a, MAXA, NULL), 0);
}

static void test_system_bad_hosts(void **state)
{
	struct sockaddr_storage a[MAXA];
	char longest[300];

	(void)state;
	memset(longest, 'a', sizeof(longest) - 1);
	longest[sizeof(longest) - 1] = '\0';
	/* longer than any URL host: refused before a thread is started */
	assert_int_equal(resolve_system(longest, 2000, a, MAXA, NULL), 0);
}

/* ---- resolve_unique ---------------------------------------------------- */

static struct sockaddr_storage addr(const char *text, int port)
{
	struct sockaddr_storage ss;

	memset(&ss, 0, sizeof(ss));
	if (text == NULL) {
		ss.ss_family = AF_UNIX;
	} else if (strchr(text, ':') != NULL) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)(void *)&ss;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons((uint16_t)port);
		assert_int_equal(inet_pton(AF_INET6, text, &s6->sin6_addr), 1);
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)(void *)&ss;
		s4->sin_family = AF_INET;
		s4->sin_port = htons((uint16_t)port);
		assert_int_equal(inet_pton(AF_INET, text, &s4->sin_addr), 1);
	}
	return ss;
}

static void text_of(const struct sockaddr_storage *ss, char *out, size_t outlen)
{
	const void *a =
	    ss->ss_family == AF_INET
	        ? (const void *)&((const struct sockaddr_in *)(const void *)ss)->sin_addr
	        : (const void *)&((const struct sockaddr_in6 *)(const void *)ss)->sin6_addr;
	assert_non_null(inet_ntop(ss->ss_family, a, out, (socklen_t)outlen));
}

struct unique_case {
	const char *in[6]; /* NULL entries (up to n) are AF_UNIX */
	int n;
	const char *want; /* the survivors, space separated */
};

static const struct unique_case unique_cases[] = {
    {{NULL}, 0, ""},
    {{"192.0.2.1"}, 1, "192.0.2.1"},
    {{"192.0.2.1", "192.0.2.1"}, 2, "192.0.2.1"},
    {{"192.0.2.1", "192.0.2.2", "192.0.2.1"}, 3, "192.0.2.1 192.0.2.2"},
    {{NULL, "::1", NULL, "::1"}, 4, "::1"},
    {{"::1", "127.0.0.1", "::1", "127.0.0.1", NULL}, 5, "::1 127.0.0.1"},
    /* one spelling of one address: IPv4-mapped is another address */
    {{"::ffff:127.0.0.1", "127.0.0.1"}, 2, "::ffff:127.0.0.1 127.0.0.1"},
    {{NULL, NULL}, 2, ""},
};

static void test_unique(void **state)
{
	(void)state;
	for (size_t c = 0; c < sizeof(unique_cases) / sizeof(unique_cases[0]); c++) {
		const struct unique_case *k = &unique_cases[c];
		struct sockaddr_storage a[6];
		char got[256] = "", text[INET6_ADDRSTRLEN];
		int n;

		for (int i = 0; i < k->n; i++)
			a[i] = addr(k->in[i], 1000 + i); /* the ports differ: ignored */
		n = resolve_unique(a, k->n);
		for (int i = 0; i < n; i++) {
			text_of(&a[i], text, sizeof(text));
			snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s", i ? " " : "",
			         text);
		}
		if (strcmp(got, k->want) != 0)
			fail_msg("case %zu: got [%s], want [%s]", c, got, k->want);
	}
}

/* ---- the gate, one call at a time ---------------------------------------- */

static void test_gate_bounds(void **state)
{
	struct resolve_gate *g = resolve_gate_new(3, 2);
	char long_a[RESOLVE_GATE_KEY_MAX + 20], long_b[RESOLVE_GATE_KEY_MAX + 20];

	(void)state;
	assert_non_null(g);
	assert_int_equal(resolve_gate_max_inflight(g), 3);
	assert_int_equal(resolve_gate_max_per_client(g), 2);
	assert_int_equal(resolve_gate_enter(g, "a"), RESOLVE_GATE_PASS);
	assert_int_equal(resolve_gate_enter(g, "a"), RESOLVE_GATE_PASS);
	assert_int_equal(resolve_gate_enter(g, "a"), RESOLVE_GATE_CLIENT);
	/* "a" is not a prefix of "ab": keys compare whole */
	assert_int_equal(resolve_gate_enter(g, "ab"), RESOLVE_GATE_PASS);
	/* full: everyone is refused, whatever they hold */
	assert_int_equal(resolve_gate_enter(g, "c"), RESOLVE_GATE_FULL);
	assert_int_equal(resolve_gate_enter(g, "ab"), RESOLVE_GATE_FULL);
	/* a place given back is anyone's */
	resolve_gate_leave(g, "a");
	assert_int_equal(resolve_gate_enter(g, "c"), RESOLVE_GATE_PASS);
	assert_int_equal(resolve_gate_enter(g, "a"), RESOLVE_GATE_FULL);
	resolve_gate_leave(g, "c");
	assert_int_equal(resolve_gate_enter(g, "a"), RESOLVE_GATE_PASS);
	assert_int_equal(resolve_gate_enter(g, "a"), RESOLVE_GATE_FULL);
	/* a leave for a client holding nothing changes nothing */
	resolve_gate_leave(g, "nobody");
	assert_int_equal(resolve_gate_enter(g, "c"), RESOLVE_GATE_FULL);
	resolve_gate_leave(g, "a");
	resolve_gate_leave(g, "a");
	resolve_gate_leave(g, "ab");
	/* empty again: the whole bound is there, twice over */
	for (int round = 0; round < 2; round++) {
		assert_int_equal(resolve_gate_enter(g, "x"), RESOLVE_GATE_PASS);
		assert_int_equal(resolve_gate_enter(g, "y"), RESOLVE_GATE_PASS);
		assert_int_equal(resolve_gate_enter(g, "z"), RESOLVE_GATE_PASS);
		assert_int_equal(resolve_gate_enter(g, "w"), RESOLVE_GATE_FULL);
		resolve_gate_leave(g, "x");
		resolve_gate_leave(g, "y");
		resolve_gate_leave(g, "z");
	}
	/* keys longer than RESOLVE_GATE_KEY_MAX - 1 are told apart by their
	 * first RESOLVE_GATE_KEY_MAX - 1 bytes */
	memset(long_a, 'k', sizeof(long_a) - 1);
	long_a[sizeof(long_a) - 1] = '\0';
	memcpy(long_b, long_a, sizeof(long_b));
	long_b[sizeof(long_b) - 2] = 'b';
	assert_int_equal(resolve_gate_enter(g, long_a), RESOLVE_GATE_PASS);
	assert_int_equal(resolve_gate_enter(g, long_b), RESOLVE_GATE_PASS);
	assert_int_equal(resolve_gate_enter(g, long_a), RESOLVE_GATE_CLIENT);
	resolve_gate_leave(g, long_b);
	resolve_gate_leave(g, long_a);
	assert_int_equal(resolve_gate_enter(g, NULL), RESOLVE_GATE_PASS); /* NULL is "" */
	assert_int_equal(resolve_gate_enter(g, ""), RESOLVE_GATE_PASS);
	assert_int_equal(resolve_gate_enter(g, NULL), RESOLVE_GATE_CLIENT);
	resolve_gate_leave(g, "");
	resolve_gate_leave(g, NULL);
	resolve_gate_free(g);
}

static void test_gate_edges(void **state)
{
	struct resolve_gate *g;

	(void)state;
	/* a NULL gate lets everyone through and counts nothing */
	assert_int_equal(resolve_gate_enter(NULL, "a"), RESOLVE_GATE_PASS);
	resolve_gate_leave(NULL, "a");
	assert_int_equal(resolve_gate_max_inflight(NULL), 0);
	resolve_gate_free(NULL);
	/* bounds below 1 are 1: a gate always lets someone through */
	g = resolve_gate_new(0, -3);
	assert_non_null(g);
	assert_int_equal(resolve_gate_max_inflight(g), 1);
	assert_int_equal(resolve_gate_max_per_client(g), 1);
	assert_int_equal(resolve_gate_enter(g, "a"), RESOLVE_GATE_PASS);
	assert_int_equal(resolve_gate_enter(g, "b"), RESOLVE_GATE_FULL);
	resolve_gate_leave(g, "a");
	resolve_gate_free(g);
	/* each allocation failing in turn: NULL, nothing leaks */
	for (long n = 0; n < 2; n++) {
		alloc_fail_after(n);
		g = resolve_gate_new(4, 2);
		alloc_fail_after(-1);
		assert_null(g);
	}
	assert_string_equal(resolve_gate_strerror(RESOLVE_GATE_FULL),
	                    "every place for host name lookups in this process is taken");
	assert_non_null(strstr(resolve_gate_strerror(RESOLVE_GATE_CLIENT), "client"));
}

/* ---- the gate under threads, in front of a hanging resolver ---------------- */

/* A resolver that hangs until released: the name server that never answers. */
struct hang {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool released;
	int waiting; /* callers inside the resolver now */
};

static int hang_resolve(const char *host, int timeout_ms, struct sockaddr_storage *addrs, int max,
                        void *arg)
{
	struct hang *h = arg;

	(void)host;
	(void)timeout_ms;
	(void)addrs;
	(void)max;
	pthread_mutex_lock(&h->mu);
	h->waiting++;
	pthread_cond_broadcast(&h->cv);
	while (!h->released)
		pthread_cond_wait(&h->cv, &h->mu);
	h->waiting--;
	pthread_mutex_unlock(&h->mu);
	return 0;
}

struct caller {
	pthread_t thread;
	struct resolve_gate *gate;
	struct hang *hang;
	const char *client;
	enum resolve_gate_verdict verdict;
	bool finished;
};

/* What POST /async does: a place at the gate, the lookup, the place back. */
static void *caller_main(void *arg)
{
	struct caller *c = arg;
	struct sockaddr_storage a[MAXA];

	c->verdict = resolve_gate_enter(c->gate, c->client);
	if (c->verdict == RESOLVE_GATE_PASS) {
		hang_resolve("slow.test", 2000, a, MAXA, c->hang);
		resolve_gate_leave(c->gate, c->client);
	}
	pthread_mutex_lock(&c->hang->mu);
	c->finished = true;
	pthread_cond_broadcast(&c->hang->cv);
	pthread_mutex_unlock(&c->hang->mu);
	return NULL;
}

static int count(const struct caller *c, int n, enum resolve_gate_verdict v)
{
	int k = 0;

	for (int i = 0; i < n; i++)
		k += c[i].verdict == v;
	return k;
}

/* Starts n callers, clients[i] each, at gate g in front of h. */
static void start_callers(struct caller *c, int n, const char *const *clients,
                          struct resolve_gate *g, struct hang *h)
{
	pthread_mutex_init(&h->mu, NULL);
	pthread_cond_init(&h->cv, NULL);
	h->released = false;
	h->waiting = 0;
	memset(c, 0, (size_t)n * sizeof(*c));
	for (int i = 0; i < n; i++) {
		c[i].gate = g;
		c[i].hang = h;
		c[i].client = clients[i];
		assert_int_equal(pthread_create(&c[i].thread, NULL, caller_main, &c[i]), 0);
	}
}

/* Waits until held callers hang in the resolver and every other one has
 * returned; never more than held inside meanwhile. */
static void wait_settled(const struct caller *c, int n, struct hang *h, int held)
{
	pthread_mutex_lock(&h->mu);
	for (;;) {
		int finished = 0;

		for (int i = 0; i < n; i++)
			finished += c[i].finished;
		assert_true(h->waiting <= held);
		if (h->waiting == held && finished == n - held)
			break;
		pthread_cond_wait(&h->cv, &h->mu);
	}
	pthread_mutex_unlock(&h->mu);
}

static void release_callers(struct caller *c, int n, struct hang *h)
{
	pthread_mutex_lock(&h->mu);
	h->released = true;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
	for (int i = 0; i < n; i++)
		pthread_join(c[i].thread, NULL);
	pthread_cond_destroy(&h->cv);
	pthread_mutex_destroy(&h->mu);
}

static void test_gate_with_hanging_resolver(void **state)
{
	enum { TOTAL = 4, PER_CLIENT = 2, N = 12 };
	/* 6 callers of client a, then one each of b..g */
	static const char *const clients[N] = {"a", "a", "a", "a", "a", "a",
	                                       "b", "c", "d", "e", "f", "g"};
	struct resolve_gate *g = resolve_gate_new(TOTAL, PER_CLIENT);
	struct caller c[N];
	struct hang h;
	int a_in = 0;

	(void)state;
	assert_non_null(g);
	start_callers(c, N, clients, g, &h);
	/* every caller the gate refused returns while the admitted ones hang */
	wait_settled(c, N, &h, TOTAL);
	assert_int_equal(count(c, N, RESOLVE_GATE_PASS), TOTAL);
	assert_int_equal(count(c, N, RESOLVE_GATE_PASS) + count(c, N, RESOLVE_GATE_CLIENT) +
	                     count(c, N, RESOLVE_GATE_FULL),
	                 N);
	/* client a never held more than its share */
	for (int i = 0; i < N; i++)
		a_in += strcmp(c[i].client, "a") == 0 && c[i].verdict == RESOLVE_GATE_PASS;
	assert_true(a_in <= PER_CLIENT);
	/* while they hang, nobody else gets in */
	assert_int_equal(resolve_gate_enter(g, "h"), RESOLVE_GATE_FULL);
	release_callers(c, N, &h);
	/* every place came back */
	for (int i = 0; i < TOTAL; i++)
		assert_int_equal(resolve_gate_enter(g, i < PER_CLIENT ? "a" : "z"),
		                 RESOLVE_GATE_PASS);
	assert_int_equal(resolve_gate_enter(g, "y"), RESOLVE_GATE_FULL);
	resolve_gate_free(g);
}

/* One client alone reaches its own bound, never the process's. */
static void test_gate_one_client_hanging(void **state)
{
	enum { TOTAL = 4, PER_CLIENT = 1, N = 6 };
	static const char *const clients[N] = {"203.0.113.7", "203.0.113.7", "203.0.113.7",
	                                       "203.0.113.7", "203.0.113.7", "203.0.113.7"};
	struct resolve_gate *g = resolve_gate_new(TOTAL, PER_CLIENT);
	struct caller c[N];
	struct hang h;

	(void)state;
	assert_non_null(g);
	start_callers(c, N, clients, g, &h);
	wait_settled(c, N, &h, PER_CLIENT);
	assert_int_equal(count(c, N, RESOLVE_GATE_PASS), PER_CLIENT);
	assert_int_equal(count(c, N, RESOLVE_GATE_CLIENT), N - PER_CLIENT);
	/* the rest of the process's places are there for everyone else */
	for (int i = 0; i < TOTAL - PER_CLIENT; i++) {
		char other[16];
		snprintf(other, sizeof(other), "other-%d", i);
		assert_int_equal(resolve_gate_enter(g, other), RESOLVE_GATE_PASS);
	}
	release_callers(c, N, &h);
	resolve_gate_free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_system_numeric),
	    cmocka_unit_test(test_system_bad_hosts),
	    cmocka_unit_test(test_unique),
	    cmocka_unit_test(test_gate_bounds),
	    cmocka_unit_test(test_gate_edges),
	    cmocka_unit_test(test_gate_with_hanging_resolver),
	    cmocka_unit_test(test_gate_one_client_hanging),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
