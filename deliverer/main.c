/*
 * consuma-deliverer: the only component that computes async work and talks
 * to callback URLs (DESIGN.md). This file holds the claim loop and the
 * process life cycle; the compute pool is pool.c, the delivery thread
 * deliver.c, the retry policy retry.c, the per-host bounds hosts.c, the
 * queue's SQL lib/store_sqlite_queue.c and lib/store_pg.c behind lib/store.h.
 *
 * Threads:
 *   main      the claim loop: blocks in ppoll(2) on the doorbell socket and
 *             an eventfd, with a timeout of min(poll interval, time to the
 *             earliest due job, next heartbeat, next lease renewal, next
 *             prune); claims due jobs in batches while there is room (in
 *             hand < capacity, and a short queue for the compute pool);
 *             beats every second; renews the leases it holds every
 *             lease/3; prunes finished records past CONSUMA_RETENTION_HOURS
 *             every minute (bounded batches, see prune()).
 *             A doorbell ring starts a claim scan, but rings that come
 *             sooner than CLAIM_SCAN_SHARE times the last scan's duration
 *             after it wait for that moment (the bell is not polled
 *             meanwhile; the eventfd still is): while a breaker holds back
 *             thousands of due jobs every scan walks past them, and one scan
 *             per 202 made the deliverer as busy as the whole API pool,
 *             taking the CPU intake needs. This bounds scanning to about a
 *             tenth of the thread whatever the backlog, and costs nothing
 *             when scans are cheap (a 0.1 ms scan holds rings for 1 ms).
 *   pool      CONSUMA_MAX_WORKERS compute threads (pool.c).
 *   deliver   one curl multi thread (deliver.c), the only writer of outcomes.
 *
 * Signals are blocked in every thread and let through only inside the main
 * thread's ppoll, so a handler (which only counts) always interrupts the
 * sleep and never a half-done step.
 *   SIGTERM   stop claiming; let the jobs in hand finish for up to
 *             CONSUMA_SHUTDOWN_GRACE seconds; then stop the threads, hand
 *             back whatever is left in one transaction and exit 0.
 *   2nd SIGTERM, or SIGINT: the same without waiting.
 *
 * Crash recovery: leases expire by themselves; at start-up and every few
 * seconds, the leases of deliverers on this host whose process is gone are
 * expired at once; a claim turns the attempts a dead holder left 'sending'
 * into 'unknown'.
 */
#define _GNU_SOURCE /* ppoll */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <curl/curl.h>
#ifdef HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "alloc.h"
#include "cli.h"
#include "config.h"
#include "deliver.h"
#include "djob.h"
#include "doorbell.h"
#include "ids.h"
#include "log.h"
#include "pool.h"
#include "store.h"
#include "shared.h"
#include "sign.h"
#include "ssrf.h"
#include "store.h"

#define PROGRAM           "consuma-deliverer"
#define BEAT_EVERY_MS     1000
#define RECOVER_EVERY_MS  5000 /* looks for dead neighbours */
#define RENEW_MIN_MS      100  /* renewals at lease/3, but not more often than this */
#define DB_ERROR_PAUSE    500
#define HOSTNAME_MAX      64
#define PRUNE_EVERY_MS    60000
#define PRUNE_BATCH       1000 /* rows looked at per transaction */
#define PRUNE_BATCHES     10   /* transactions per pass at most */
#define CLAIM_SCAN_SHARE  10   /* bell-driven claim scans: at most 1/10 of the time */
#define CLAIM_HOLD_MAX_MS 200  /* the longest a ring waits for the next scan */

static volatile sig_atomic_t term_count;
static volatile sig_atomic_t int_seen;

static void on_signal(int sig)
{
	if (sig == SIGINT)
		int_seen = 1;
	else if (term_count < 100)
		term_count++;
}

struct ctx {
	struct config cfg;
	struct store *s_main;
	struct store *s_deliver;
	struct ssrf_policy *policy;
	struct sign_key *key;
	struct shared sh;
	bool sh_ready;
	struct deliver *d;
	struct pool *pool;
	int bell_fd;
	int listen_fd; /* the database's new-job notices (PostgreSQL), or -1 */
	bool listens;  /* the store has notices: listen_fd is asked for each turn */
	int workers;
	int64_t capacity;
	int64_t pool_backlog; /* most jobs queued for the pool */
	int64_t started_at;
	int64_t claims, claimed, due_reads; /* claim transactions, their jobs, due-time reads */
	char hostname[HOSTNAME_MAX];
	char owner[STORE_OWNER_MAX];
};

static void notify(const char *state)
{
#ifdef HAVE_SYSTEMD
	sd_notify(0, state);
#else
	(void)state;
#endif
}

static const char *const synopsis[] = {
    "[--check-url URL]",
    "--help | --version",
    NULL,
};

static const struct cli_program program = {
    .name = PROGRAM,
    .synopsis = synopsis,
    .about = "Claims async jobs from the SQLite queue (CONSUMA_DATABASE_PATH), computes\n"
             "them and POSTs each result to its callback URL, recording every attempt.\n"
             "--check-url URL prints 'allow' or 'deny: <reason>' for URL under the\n"
             "callback policy and exits 0 or 1; it sends nothing.\n"
             "SIGTERM drains for up to CONSUMA_SHUTDOWN_GRACE seconds, then hands back\n"
             "what is left and exits 0; a second SIGTERM or SIGINT does so at once.\n",
};

static int check_url(const struct config *cfg, const char *url)
{
	char why[SSRF_REASON_MAX];
	struct ssrf_policy *p = ssrf_policy_new(cfg, why, sizeof why);
	if (!p)
		return cli_fail(CLI_EXIT_USAGE, "config", "%s", why);
	struct ssrf_target *t = cz_calloc(1, sizeof *t);
	if (!t) {
		ssrf_policy_free(p);
		return cli_fail(CLI_EXIT_RUNTIME, "check_url", "out of memory");
	}
	why[0] = '\0';
	enum ssrf_verdict v = ssrf_check_url(p, url, t, why, sizeof why);
	if (v == SSRF_ALLOW)
		printf("allow\n");
	else
		printf("deny: %s\n", why[0] ? why : "refused");
	cz_free(t);
	ssrf_policy_free(p);
	return v == SSRF_ALLOW ? 0 : 1;
}

/* ---- start-up ------------------------------------------------------------- */

static bool owner_is_dead(const char *owner, int64_t pid, void *arg)
{
	const struct ctx *c = arg;
	size_t hl = strlen(c->hostname);
	if (strncmp(owner, c->hostname, hl) != 0 || owner[hl] != ':')
		return false; /* another machine's: only its lease expiry tells */
	if (pid <= 0 || pid == (int64_t)getpid())
		return pid != (int64_t)getpid();
	if (kill((pid_t)pid, 0) == -1)
		return errno == ESRCH;
	/* A killed deliverer stays a zombie until its parent reaps it: dead. */
	char path[64], stat[256];
	snprintf(path, sizeof path, "/proc/%lld/stat", (long long)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return false;
	size_t n = fread(stat, 1, sizeof stat - 1, f);
	fclose(f);
	stat[n] = '\0';
	const char *paren = strrchr(stat, ')'); /* the name may hold spaces */
	return paren && paren[1] == ' ' && paren[2] == 'Z';
}

static void make_owner(struct ctx *c)
{
	if (gethostname(c->hostname, sizeof c->hostname) != 0)
		snprintf(c->hostname, sizeof c->hostname, "localhost");
	c->hostname[sizeof c->hostname - 1] = '\0';
	for (char *p = c->hostname; *p; p++)
		if (*p == ':')
			*p = '_';
	uint32_t r = 0;
	if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
		r = (uint32_t)ids_mono_ns();
	snprintf(c->owner, sizeof c->owner, "%s:%ld:%08x", c->hostname, (long)getpid(), r);
}

/* Takes back at once the leases of deliverers on this host whose process is
 * gone (at start-up, and now and then: a neighbour may crash). */
static void recover(struct ctx *c)
{
	int64_t recovered = 0;
	if (store_recover_dead(c->s_main, ids_now_ms(), owner_is_dead, c, &recovered) != STORE_OK)
		log_event(L_WARN, "recover.failed", "error=%s", log_q(store_errmsg(c->s_main)));
	else if (recovered > 0)
		log_event(L_INFO, "recover.dead_owner", "jobs=%lld", (long long)recovered);
}

static struct store *open_store(const struct config *cfg)
{
	enum store_err err;
	char msg[256] = "";
	struct store *s = store_open(config_database(cfg), &err, msg, sizeof msg);
	if (!s)
		cli_fail(CLI_EXIT_RUNTIME, "store", "%s: %s: %s", config_database_label(cfg),
		         store_strerror(err), msg);
	return s;
}

static void pool_done(struct djob *j, void *arg)
{
	struct ctx *c = arg;
	deliver_submit(c->d, j);
}

static int setup(struct ctx *c)
{
	char why[SSRF_REASON_MAX];
	c->policy = ssrf_policy_new(&c->cfg, why, sizeof why);
	if (!c->policy)
		return cli_fail(CLI_EXIT_USAGE, "config", "%s", why);
	if (c->cfg.callback_secret[0]) {
		enum sign_err se;
		c->key = sign_key_new(c->cfg.callback_secret, &se, why, sizeof why);
		if (!c->key)
			return cli_fail(se == SIGN_BAD_SECRET ? CLI_EXIT_USAGE : CLI_EXIT_RUNTIME,
			                "config", "CONSUMA_CALLBACK_SECRET: %s: %s",
			                sign_strerror(se), why);
	}
	c->s_main = open_store(&c->cfg);
	c->s_deliver = c->s_main ? open_store(&c->cfg) : NULL;
	if (!c->s_deliver)
		return CLI_EXIT_RUNTIME;
	make_owner(c);
	store_set_owner(c->s_main, c->owner);
	recover(c);

	char bell[CONFIG_PATH_MAX];
	config_doorbell_path(&c->cfg, bell, sizeof bell);
	c->bell_fd = doorbell_listen(bell);
	if (c->bell_fd < 0)
		log_event(L_WARN, "doorbell.listen_failed", "path=%s error=%s poll_ms=%lld",
		          log_q(bell), log_q(strerror(errno)), (long long)c->cfg.poll_interval_ms);
	/* Across hosts the doorbell reaches only this host's pools: the
	 * database's notices reach every deliverer (PostgreSQL LISTEN). */
	if (store_listen(c->s_main, &c->listen_fd) != STORE_OK)
		log_event(L_WARN, "store.listen_failed", "error=%s poll_ms=%lld",
		          log_q(store_errmsg(c->s_main)), (long long)c->cfg.poll_interval_ms);
	c->listens = c->listen_fd >= 0;

	if (shared_init(&c->sh) != 0)
		return cli_fail(CLI_EXIT_RUNTIME, "eventfd", "%s", strerror(errno));
	c->sh_ready = true;
	c->workers = (int)c->cfg.max_workers;
	if (c->workers <= 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		c->workers = n > 0 ? (int)n : 1;
	}
	c->capacity = c->cfg.max_inflight_deliveries + c->cfg.claim_batch;
	c->pool_backlog = c->cfg.claim_batch + 4 * (int64_t)c->workers;
	c->sh.pool_low_water = c->pool_backlog / 2; /* refill in batches, not job by job */
	enum deliver_err de;
	c->d = deliver_new(&c->cfg, c->s_deliver, c->owner, c->policy, c->key, &c->sh, &de, why,
	                   sizeof why);
	if (!c->d)
		return cli_fail(CLI_EXIT_RUNTIME, "deliver", "%s: %s", deliver_strerror(de), why);
	int err = deliver_start(c->d);
	if (err != 0)
		return cli_fail(CLI_EXIT_RUNTIME, "deliver", "cannot start the delivery thread: %s",
		                strerror(err));
	enum pool_err pe;
	c->pool = pool_new(c->workers, c->policy, pool_done, c, &c->sh, &pe, why, sizeof why);
	if (!c->pool)
		return cli_fail(CLI_EXIT_RUNTIME, "pool", "%s: %s", pool_strerror(pe), why);
	return 0;
}

/* ---- the claim loop ---------------------------------------------------------- */

static void beat(struct ctx *c)
{
	struct store_beat b = {
	    .pid = getpid(),
	    .started_at = c->started_at,
	    .busy_workers = atomic_load(&c->sh.busy_workers),
	    .workers = c->workers,
	    .inflight = atomic_load(&c->sh.inflight),
	};
	if (store_heartbeat(c->s_main, ids_now_ms(), &b) != STORE_OK)
		log_event(L_WARN, "heartbeat.failed", "error=%s", log_q(store_errmsg(c->s_main)));
	notify("WATCHDOG=1");
}

static void renew(struct ctx *c)
{
	if (store_renew(c->s_main, ids_now_ms(), c->cfg.lease_ms, NULL) != STORE_OK)
		log_event(L_WARN, "lease.renew_failed", "error=%s", log_q(store_errmsg(c->s_main)));
}

/* Claims up to room jobs and feeds them to the pool. Returns how many, or
 * -1 on a database error. */
static int claim(struct ctx *c, int64_t room, const struct store_exclude *excl)
{
	int want = (int)(room < c->cfg.claim_batch ? room : c->cfg.claim_batch);
	struct store_job *jobs = NULL;
	int n = 0;
	enum store_err err =
	    store_claim(c->s_main, ids_now_ms(), c->cfg.lease_ms, want, excl, &jobs, &n);
	if (err != STORE_OK) {
		log_event(L_ERROR, "claim.failed", "error=%s detail=%s", store_strerror(err),
		          log_q(store_errmsg(c->s_main)));
		return -1;
	}
	c->claims++;
	c->claimed += n;
	for (int i = 0; i < n; i++) {
		struct djob *j = djob_new(&jobs[i]);
		if (!j) {
			/* Out of memory: the lease runs out and the job comes back. */
			log_event(L_ERROR, "claim.nomem", "request_id=%s", jobs[i].id);
			store_job_clear(&jobs[i]);
			continue;
		}
		atomic_fetch_add(&c->sh.in_hand, 1);
		pool_submit(c->pool, j);
	}
	cz_free(jobs);
	if (n > 0)
		log_event(L_DEBUG, "claim.batch", "jobs=%d", n);
	return n;
}

/* Deletes finished records older than the retention, oldest first, in at
 * most PRUNE_BATCHES short transactions of PRUNE_BATCH rows each, so one
 * pass never holds the write lock long nor runs unbounded; whatever is
 * left waits for the next pass. One log line per pass. */
static void prune(struct ctx *c)
{
	int64_t cutoff = ids_now_ms() - c->cfg.retention_ms;
	int64_t total = 0, got = 0;
	int batches = 0;
	enum store_err err = STORE_OK;

	do {
		err = store_prune(c->s_main, cutoff, PRUNE_BATCH, &got);
		if (err != STORE_OK)
			break;
		total += got;
		batches++;
	} while (got >= PRUNE_BATCH && batches < PRUNE_BATCHES);
	if (err != STORE_OK)
		log_event(L_WARN, "prune.failed", "deleted=%lld error=%s detail=%s",
		          (long long)total, store_strerror(err), log_q(store_errmsg(c->s_main)));
	else
		log_event(total > 0 ? L_INFO : L_DEBUG, "prune.done", "deleted=%lld batches=%d",
		          (long long)total, batches);
}

static void drain_fds(struct ctx *c)
{
	if (c->bell_fd >= 0)
		doorbell_drain(c->bell_fd);
	if (c->listen_fd >= 0)
		store_listen_drain(c->s_main);
	shared_drain(&c->sh);
}

static int64_t min64(int64_t a, int64_t b)
{
	return a < b ? a : b;
}

/* The claim loop's timers: a period (0: off) and when each is next due
 * (monotonic ms). A turn runs the duties that are due and sleeps no later
 * than the earliest next. The poll timer has no duty of its own (the claim
 * scan runs every turn): it only bounds the sleep, from the turn's start. */
struct timer {
	int64_t every_ms;
	void (*run)(struct ctx *c); /* NULL: a bound on the sleep only */
	bool while_draining;        /* keeps running after the first SIGTERM */
	int64_t next;
};

enum { T_BEAT, T_RECOVER, T_RENEW, T_PRUNE, T_POLL, T_COUNT };

/* Runs the timers due at mono; returns the earliest next. */
static int64_t run_timers(struct ctx *c, struct timer *t, bool draining, int64_t mono)
{
	int64_t wake = INT64_MAX;
	for (int i = 0; i < T_COUNT; i++) {
		if (t[i].every_ms <= 0 || (draining && !t[i].while_draining))
			continue;
		if (!t[i].run || mono >= t[i].next) {
			if (t[i].run)
				t[i].run(c);
			t[i].next = mono + t[i].every_ms;
		}
		wake = min64(wake, t[i].next);
	}
	return wake;
}

/* Returns when it is time to stop: at once on SIGINT or a second SIGTERM,
 * after the first once the jobs in hand are done or the grace is over. */
static void claim_loop(struct ctx *c)
{
	sigset_t none;
	sigemptyset(&none);
	int64_t start = ids_mono_ms();
	int64_t renew_ms = c->cfg.lease_ms / 3;
	if (renew_ms < RENEW_MIN_MS)
		renew_ms = RENEW_MIN_MS;
	struct timer timers[T_COUNT] = {
	    [T_BEAT] = {BEAT_EVERY_MS, beat, true, start},
	    [T_RECOVER] = {RECOVER_EVERY_MS, recover, true, start + RECOVER_EVERY_MS},
	    [T_RENEW] = {renew_ms, renew, true, start + renew_ms},
	    [T_PRUNE] = {c->cfg.retention_ms > 0 ? PRUNE_EVERY_MS : 0, prune, false,
	                 start + PRUNE_EVERY_MS},
	    [T_POLL] = {c->cfg.poll_interval_ms, NULL, true, start},
	};
	bool draining = false;
	int64_t deadline = 0;
	int64_t bell_hold_until = 0;       /* rings before this wait for it (see above) */
	bool bell_rang = false;            /* the last wake-up was the doorbell alone */
	struct store_exclude *excl = NULL; /* this thread's copy (shared.h) */
	uint64_t excl_gen = 0;

	for (;;) {
		int64_t mono = ids_mono_ms();
		if (int_seen || term_count >= 2) {
			log_event(L_INFO, "shutdown.now", "in_hand=%lld",
			          (long long)atomic_load(&c->sh.in_hand));
			break;
		}
		if (term_count == 1 && !draining) {
			draining = true;
			deadline = mono + c->cfg.shutdown_grace_ms;
			notify("STOPPING=1");
			log_event(L_INFO, "shutdown.draining", "in_hand=%lld grace_ms=%lld",
			          (long long)atomic_load(&c->sh.in_hand),
			          (long long)c->cfg.shutdown_grace_ms);
		}
		if (draining) {
			atomic_store(&c->sh.wants_room, true);
			if (atomic_load(&c->sh.in_hand) <= 0 || mono >= deadline)
				break;
		}
		int64_t wake = run_timers(c, timers, draining, mono);
		if (draining)
			wake = min64(wake, deadline);
		int64_t now = ids_now_ms();
		atomic_store(&c->sh.sleep_until, now + (wake - mono));

		bool holding = bell_rang && mono < bell_hold_until;
		if (holding)
			wake = min64(wake, bell_hold_until);
		if (!draining && !holding) {
			int64_t scan_start_ns = ids_mono_ns();
			shared_get_exclusions(&c->sh, &excl_gen, &excl);
			int64_t room = min64(c->capacity - atomic_load(&c->sh.in_hand),
			                     c->pool_backlog - atomic_load(&c->sh.pool_pending));
			int got = 0;
			if (room > 0) {
				got = claim(c, room, excl);
				if (got < 0) {
					wake = min64(wake, mono + DB_ERROR_PAUSE);
					got = 0;
				} else if (got > 0 && got == (int)min64(room, c->cfg.claim_batch)) {
					continue; /* a full batch: more may be due */
				}
			}
			if (room - got <= 0) {
				atomic_store(&c->sh.wants_room, true);
				if (c->capacity - atomic_load(&c->sh.in_hand) > 0 &&
				    c->pool_backlog - atomic_load(&c->sh.pool_pending) > 0)
					continue; /* room came back meanwhile */
			} else {
				/* The claim took every due job it could. With
				 * destinations held back, the walk starts after now:
				 * the claim has just walked past the held due jobs (a
				 * backlog behind a breaker made that walk the scan's
				 * cost), and a job committed since rang the bell.
				 * With none held the walk is short, and a due job
				 * committed since is claimed at once. */
				bool found = false;
				int64_t due = 0;
				int64_t after = excl && excl->n > 0 ? now : INT64_MIN;
				c->due_reads++;
				if (store_next_due(c->s_main, excl, after, &found, &due) ==
				        STORE_OK &&
				    found) {
					if (due <= now && got > 0)
						continue;
					if (due > now)
						wake = min64(wake, mono + (due - now));
				}
			}
			bell_hold_until =
			    mono + min64(CLAIM_HOLD_MAX_MS, (ids_mono_ns() - scan_start_ns) *
			                                        CLAIM_SCAN_SHARE / 1000000);
			atomic_store(&c->sh.sleep_until, now + (wake - mono));
		}

		int64_t timeout = wake - ids_mono_ms();
		if (timeout < 0)
			timeout = 0;
		struct pollfd fds[3] = {{.fd = c->sh.wake_fd, .events = POLLIN}};
		nfds_t nfds = 1;
		if (!holding && c->bell_fd >= 0)
			fds[nfds++] = (struct pollfd){.fd = c->bell_fd, .events = POLLIN};
		/* the socket of the connection as it is now (-1 while it is
		 * down): a reset replaces it, and a closed one polls ready */
		if (c->listens)
			store_listen(c->s_main, &c->listen_fd);
		if (!holding && c->listen_fd >= 0)
			fds[nfds++] = (struct pollfd){.fd = c->listen_fd, .events = POLLIN};
		struct timespec ts = {.tv_sec = timeout / 1000,
		                      .tv_nsec = (timeout % 1000) * 1000000};
		int rc = ppoll(fds, nfds, &ts, &none);
		if (rc < 0 && errno != EINTR)
			log_event(L_WARN, "poll.failed", "error=%s", log_q(strerror(errno)));
		bell_rang = rc > 0 && fds[0].revents == 0;
		if (!holding || fds[0].revents != 0)
			drain_fds(c);
	}
	cz_free(excl);
}

static int shutdown_all(struct ctx *c)
{
	int rc = 0;
	if (c->pool)
		pool_stop(c->pool, true);
	if (c->d)
		deliver_stop(c->d);
	if (c->s_main) {
		int64_t released = 0;
		if (store_handback_all(c->s_main, ids_now_ms(), &released) != STORE_OK) {
			log_event(L_ERROR, "shutdown.handback_failed", "error=%s",
			          log_q(store_errmsg(c->s_main)));
			rc = 1;
		} else if (released > 0) {
			log_event(L_INFO, "shutdown.handback", "jobs=%lld", (long long)released);
		}
		store_heartbeat_remove(c->s_main);
	}
	return rc;
}

static void teardown(struct ctx *c)
{
	pool_free(c->pool);
	deliver_free(c->d);
	store_close(c->s_deliver);
	store_close(c->s_main);
	sign_key_free(c->key);
	ssrf_policy_free(c->policy);
	if (c->bell_fd >= 0)
		close(c->bell_fd);
	if (c->sh_ready)
		shared_destroy(&c->sh);
}

/* Signals reach only the main thread's ppoll: blocked here, before any
 * thread exists, so every thread inherits the mask; SIGPIPE is ignored.
 * -1 with errno set. */
static int install_signals(void)
{
	struct sigaction sa;
	sigset_t block;

	memset(&sa, 0, sizeof sa);
	sigemptyset(&sa.sa_mask);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	errno = pthread_sigmask(SIG_BLOCK, &block, NULL);
	if (errno != 0)
		return -1;
	sa.sa_handler = on_signal;
	if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0)
		return -1;
	sa.sa_handler = SIG_IGN;
	return sigaction(SIGPIPE, &sa, NULL);
}

int main(int argc, char **argv)
{
	const char *url = NULL;
	log_init(PROGRAM, L_INFO);
	for (int i = 1; i < argc; i++) {
		if (cli_answered(&program, argv[i]))
			return CLI_EXIT_OK;
		if (strcmp(argv[i], "--check-url") == 0 && i + 1 < argc) {
			url = argv[++i];
			continue;
		}
		return cli_fail(CLI_EXIT_USAGE, "args",
		                "unknown or incomplete argument: %s (try --help)", argv[i]);
	}

	static struct ctx c; /* large (the config): not on the stack */
	c.bell_fd = -1;
	c.listen_fd = -1;
	char err[512];
	if (config_load(&c.cfg, err, sizeof err) != CONFIG_OK)
		return cli_fail(CLI_EXIT_USAGE, "config", "%s", err);
	log_init(PROGRAM, (enum log_level)c.cfg.log_level);
	/* Every finished job's statements (the counter triggers' temporary
	 * b-trees and statement journals) freed enough to make glibc trim a
	 * thread's heap: two madvise calls and the page faults to refill per
	 * job, measured. */
	cz_keep_freed_memory();
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return cli_fail(CLI_EXIT_RUNTIME, "curl", "curl_global_init failed");
	if (url) {
		int rc = check_url(&c.cfg, url);
		curl_global_cleanup();
		return rc;
	}
	if (install_signals() != 0) {
		int rc = cli_fail(CLI_EXIT_RUNTIME, "signals", "cannot set up signal handling: %s",
		                  strerror(errno));
		curl_global_cleanup();
		return rc;
	}

	c.started_at = ids_now_ms();
	int rc = setup(&c);
	if (rc == 0) {
		log_event(L_INFO, "deliverer.started",
		          "owner=%s workers=%d capacity=%lld max_inflight=%lld max_per_host=%lld",
		          log_q(c.owner), c.workers, (long long)c.capacity,
		          (long long)c.cfg.max_inflight_deliveries, (long long)c.cfg.max_per_host);
		notify("READY=1");
		claim_loop(&c);
		notify("STOPPING=1");
		rc = shutdown_all(&c);
		log_event(L_INFO, "deliverer.stopped",
		          "exit=%d claims=%lld claimed=%lld due_reads=%lld", rc,
		          (long long)c.claims, (long long)c.claimed, (long long)c.due_reads);
	} else {
		shutdown_all(&c);
	}
	teardown(&c);
	curl_global_cleanup();
	return rc;
}
