/*
 * resolve: host name lookups in bounded time, and a bound on the lookups a
 * process has in flight.
 *
 * resolve_system is getaddrinfo that gives up after timeout_ms (the lookup
 * itself runs on in a helper thread and cleans up after itself). It is the
 * default resolver of the SSRF policy (ssrf.h), which takes any function of
 * the resolve_fn shape instead (tests, the fuzz harness).
 *
 * A resolve_gate bounds how many callers wait on lookups at once, in total
 * and per client: a request thread that waits up to timeout_ms on a slow
 * name server is a thread that answers nobody else, so a process lets only
 * part of its threads wait, and one client only a share of that part
 * (fcgi-app/async.c).
 */
#ifndef CONSUMA_RESOLVE_H
#define CONSUMA_RESOLVE_H

#include <netinet/in.h>
#include <sys/socket.h>

/* Lookups still running after their caller gave up, at most. */
#define RESOLVE_MAX_THREADS 64
/* A gate's client keys are told apart by their first this many bytes. */
#define RESOLVE_GATE_KEY_MAX 128

/* A resolver: fills up to max addresses for host, returns how many (0 when
 * nothing resolved), within timeout_ms. arg is the resolver's own. */
typedef int (*resolve_fn)(const char *host, int timeout_ms, struct sockaddr_storage *addrs, int max,
                          void *arg);

/* The system resolver: getaddrinfo(host) in a detached helper thread,
 * waited on for at most timeout_ms. Fills up to max IPv4 and IPv6
 * addresses (ports 0), each once, in getaddrinfo's order, and returns how
 * many: 0 when nothing resolved, the wait timed out, or RESOLVE_MAX_THREADS
 * abandoned lookups are still running (logged: a dead name server must not
 * pile up threads). arg is unused. Thread safe. */
int resolve_system(const char *host, int timeout_ms, struct sockaddr_storage *addrs, int max,
                   void *arg);

/* Keeps the IPv4 and IPv6 entries of addrs[0..n), each address once
 * (ports ignored), in their order; returns how many are left. For what a
 * resolver of unknown quality returned. */
int resolve_unique(struct sockaddr_storage *addrs, int n);

/* ---- the gate: lookups in flight ---------------------------------------- */

struct resolve_gate;

enum resolve_gate_verdict {
	RESOLVE_GATE_PASS = 0,
	RESOLVE_GATE_FULL,   /* the process's bound is reached */
	RESOLVE_GATE_CLIENT, /* this client's bound is reached; others still pass */
};

/* A gate that lets max_inflight callers in at once, at most max_per_client
 * of them with one client key (both at least 1). NULL when out of memory.
 * resolve_gate_free(NULL) is a no-op. */
struct resolve_gate *resolve_gate_new(int max_inflight, int max_per_client);
void resolve_gate_free(struct resolve_gate *g);

/* Takes a place for client (a string key, see RESOLVE_GATE_KEY_MAX), or says why
 * not at once: the gate never waits. RESOLVE_GATE_PASS must be paired with
 * one resolve_gate_leave for the same client. A NULL gate always passes.
 * Thread safe. */
enum resolve_gate_verdict resolve_gate_enter(struct resolve_gate *g, const char *client);
/* Gives back the place client took. NULL gate: no-op. Thread safe. */
void resolve_gate_leave(struct resolve_gate *g, const char *client);
/* The bounds g was made with (0 for a NULL gate). */
int resolve_gate_max_inflight(const struct resolve_gate *g);
int resolve_gate_max_per_client(const struct resolve_gate *g);
/* What a verdict means, for the answer ("..." naming the bound). */
const char *resolve_gate_strerror(enum resolve_gate_verdict v);

#endif
