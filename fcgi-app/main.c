/*
 * consuma-fcgi: the FastCGI responder behind lighttpd (or nginx). One
 * process serves CONSUMA_FCGI_THREADS requests at once, one per worker
 * thread; run a few processes per pool (spawn-fcgi), they share nothing but
 * the database (and the rate limiter's zone).
 *
 * Threads: N workers, each with its own FCGX_Request and its own database
 * connection, and its own epoll set: the listening socket registered with
 * EPOLLEXCLUSIVE (a new connection wakes one idle worker, not all of them:
 * with every worker in poll(2), a third of the pool's CPU went to wake-ups
 * that found nothing to accept) and the stop eventfd (which wakes them
 * all). The woken worker takes the connection with FCGX_Accept_r; the
 * socket is non-blocking, so a worker (or another process of the pool)
 * that lost the race gets -EAGAIN and waits again. Their writes go through one
 * store committer per process (lib/store_commit.c), which batches every
 * waiting job into one transaction and one fdatasync: the more requests in
 * flight, the fewer syncs per job. A POST /async does not hold its worker
 * while its batch commits: the request is parked (fcgi-app/park.h) and the
 * worker takes the next connection; when the batch is durable the park's
 * eventfd, the third member of every worker's epoll set, wakes one worker,
 * which answers the whole batch. So a batch holds as many jobs as there
 * are requests in flight, not as many as there are threads.
 *
 * Listening socket: fd 0, as spawn-fcgi and lighttpd hand it over, or
 * `--socket PATH` (a unix socket path, or HOST:PORT).
 *
 * Shutdown: SIGTERM, SIGINT and SIGPIPE are blocked in every thread; the
 * main thread takes SIGTERM and SIGINT with sigwait(2), sets the stop flag
 * and makes an eventfd readable that every worker polls beside the
 * listening socket. Each worker finishes the request in hand and returns;
 * the main thread answers the requests still parked (their batches are
 * still coming: the committer runs until then), then the committer writes
 * what is queued, and the process exits 0. A
 * worker that fails (poll or accept error) stops the process the same way,
 * through SIGUSR1, and the exit code is 1. No signal ever interrupts a
 * request's reads or writes. SIGHUP, taken by the same sigwait, reads the
 * API keys file again (fcgi-app/auth.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <fcgiapp.h>
#include "alloc.h"
#include "app.h"
#include "auth.h"
#include "cli.h"
#include "doorbell.h"
#include "http.h"
#include "ids.h"
#include "log.h"
#include "park.h"
#include "router.h"

#define PROGRAM        "consuma-fcgi"
#define LISTEN_BACKLOG 1024
/* A POST /async is parked while it commits (park.h), so threads are for
 * the CPUs and for what blocks one: a /sync at the compute gate, a
 * callback host's lookup (at most half of them). 4 per CPU measured 8-13%
 * less pool CPU per POST /async than 8 per CPU (fewer sleeping threads to
 * wake: the busy ones take the next connection from the queue). */
#define THREADS_PER_CPU 4
/* Of a process's threads, at most 1/LOOKUP_SHARE may wait on callback host
 * lookups at once, and one client's requests at most 1/LOOKUP_CLIENT_SHARE
 * (each at least one): however slow a name server, the rest answer
 * /healthz, GETs and IP-literal callbacks (fcgi-app/async.c). */
#define LOOKUP_SHARE        2
#define LOOKUP_CLIENT_SHARE 8
/* Requests parked at once per process (park.h): about 30 KB each with
 * libfcgi's buffers, and a committer batch holds at most as many jobs. */
#define PARKED_MAX 1024

/* What the workers share beyond struct app. */
struct pool {
	struct app *app;
	int listen_fd;
	int stop_fd;        /* eventfd: readable once the process stops */
	atomic_bool failed; /* a worker hit an error the process cannot serve past */
	atomic_long served; /* requests answered */
};

struct worker {
	struct pool *pool;
	struct store *store; /* this thread's connection */
	pthread_t thread;
	bool started;
};

/* One connection from the front: the worker's until its request is
 * parked, then the park's until a worker answers it. */
struct conn {
	FCGX_Request req;
	struct http_exchange x;
};

static struct conn *conn_new(int listen_fd)
{
	struct conn *c = cz_calloc(1, sizeof *c);

	if (c != NULL && FCGX_InitRequest(&c->req, listen_fd, 0) != 0) {
		cz_free(c);
		c = NULL;
	}
	if (c == NULL)
		log_event(L_ERROR, "fcgi.init_failed", "fd=%d", listen_fd);
	return c;
}

static void conn_free(struct conn *c)
{
	if (c == NULL)
		return;
	FCGX_Free(&c->req, 1);
	cz_free(c);
}

static const char *const synopsis[] = {
    "[--socket PATH]",
    "--mint-key CLIENT ROLE   (a new API key and its keys-file line)",
    "--help | --version",
    NULL,
};

static const struct cli_program program = {
    .name = PROGRAM,
    .synopsis = synopsis,
    .about = "The consuma FastCGI responder: POST /sync, POST /async, GET /requests,\n"
             "GET /requests/{id}, GET /healthz. Takes its listening socket on fd 0\n"
             "(spawn-fcgi, lighttpd) unless --socket PATH (unix path or HOST:PORT) is\n"
             "given. Serves CONSUMA_FCGI_THREADS requests at once. Stops on\n"
             "SIGTERM/SIGINT after the requests in hand. SIGHUP reads the API keys\n"
             "file again (so does a change to it, within a second).\n",
};

/* Parses argv; returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, const char **socket_path)
{
	int i;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (cli_answered(&program, a))
			return CLI_EXIT_OK;
		if (strcmp(a, "--mint-key") == 0 && i + 2 < argc && i + 3 == argc)
			return auth_mint_key(argv[i + 1], argv[i + 2]);
		if (strcmp(a, "--socket") == 0 && i + 1 < argc) {
			*socket_path = argv[++i];
			continue;
		}
		if (strncmp(a, "--socket=", 9) == 0 && a[9] != '\0') {
			*socket_path = a + 9;
			continue;
		}
		return cli_fail(CLI_EXIT_USAGE, "args",
		                "unknown or incomplete argument: %s (try --help)", a);
	}
	return -1;
}

/* Ignores SIGPIPE and blocks the signals the main thread waits for in
 * this thread and every thread it starts afterwards; -1 with errno set. */
static int block_signals(sigset_t *waited)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &sa, NULL) != 0)
		return -1;
	sigemptyset(waited);
	sigaddset(waited, SIGTERM);
	sigaddset(waited, SIGINT);
	sigaddset(waited, SIGUSR1); /* a worker failed */
	sigaddset(waited, SIGHUP);  /* read the API keys file again */
	errno = pthread_sigmask(SIG_BLOCK, waited, NULL);
	return errno == 0 ? 0 : -1;
}

/* The end of an answered exchange. libfcgi's close shuts the socket for
 * writing and reads until the server closes its end (up to 2 s), so that
 * data we never read cannot turn the close into a reset that loses our
 * response. With the end of the input seen (http_read_body) there is none:
 * the worker closes at once and takes the next connection. That wait held
 * a worker per request for a round trip through lighttpd; skipping it
 * measured +19% and +25% POST /async (two runs of 8 alternating rounds).
 * FCGX_Detach only marks the request so that FCGX_Finish_r closes without
 * the shutdown. The response goes out before the doorbell rings, once per
 * commit batch (doorbell_ring_batch). */
static void end_exchange(struct pool *p, struct http_exchange *x)
{
	FCGX_Request *req = x->fr;

	if (FCGX_HasSeenEOF(req->in) == EOF)
		FCGX_Detach(req);
	FCGX_Finish_r(req);
	if (x->ring_doorbell)
		doorbell_ring_batch(p->app->doorbell, x->ring_batch);
	http_exchange_done(x);
	atomic_fetch_add(&p->served, 1);
}

/* Serves the connection c has accepted; false when its request was
 * parked (c is the park's now). */
static bool serve_one(struct worker *w, struct conn *c)
{
	struct app *app = w->pool->app;
	struct http_exchange *x = &c->x;

	if (!http_exchange_init(x, app, &c->req)) {
		http_error(x, 404, "path: not a valid path");
		log_event(L_INFO, "request",
		          "route=- method=%s status=%d duration_ms=0 request_id=-",
		          log_q(x->method), x->status);
	} else {
		x->store = w->store;
		router_dispatch(x);
		if (x->parked) {
			park_release(app->park, x); /* x may be answered and gone from here on */
			return false;
		}
	}
	end_exchange(w->pool, x);
	return true;
}

/* Answers every parked request that is ready, with w's connection. */
static void answer_parked(struct worker *w)
{
	struct park *park = w->pool->app->park;
	struct http_exchange *x = park_take(park);

	while (x != NULL) {
		struct http_exchange *next = x->park_next;

		x->store = w->store;
		router_resume(x);
		end_exchange(w->pool, x);
		conn_free((struct conn *)((char *)x - offsetof(struct conn, x)));
		park_leave(park);
		x = next;
	}
}

/* This worker's wait set: the listening socket and the park's eventfd
 * (exclusive wake-ups) and the stop eventfd. -1 on failure, logged. */
static int wait_set(const struct pool *p)
{
	struct epoll_event lev = {.events = EPOLLIN | EPOLLEXCLUSIVE, .data.fd = p->listen_fd};
	struct epoll_event sev = {.events = EPOLLIN, .data.fd = p->stop_fd};
	struct epoll_event pev = {.events = EPOLLIN | EPOLLEXCLUSIVE,
	                          .data.fd = park_fd(p->app->park)};
	int ep = epoll_create1(EPOLL_CLOEXEC);

	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, p->listen_fd, &lev) != 0 ||
	    epoll_ctl(ep, EPOLL_CTL_ADD, p->stop_fd, &sev) != 0 ||
	    (pev.data.fd >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, pev.data.fd, &pev) != 0)) {
		log_event(L_ERROR, "fcgi.epoll_failed", "errno=%d", errno);
		if (ep >= 0)
			close(ep);
		return -1;
	}
	return ep;
}

enum next { NEXT_FAILED = -1, NEXT_STOP, NEXT_ACCEPTED, NEXT_PARKED_READY };

/* Waits for the next thing to do: parked requests to answer come before
 * a new connection. */
static enum next wait_next(const struct pool *p, int ep, FCGX_Request *req)
{
	for (;;) {
		struct epoll_event ev[3];
		bool ready = false;
		int r = epoll_wait(ep, ev, 3, -1);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			log_event(L_ERROR, "fcgi.poll_failed", "errno=%d", errno);
			return NEXT_FAILED;
		}
		for (int i = 0; i < r; i++) {
			if (ev[i].data.fd == p->stop_fd)
				return NEXT_STOP;
			ready = ready || ev[i].data.fd != p->listen_fd;
		}
		if (ready)
			return NEXT_PARKED_READY;
		r = FCGX_Accept_r(req);
		if (r >= 0)
			return NEXT_ACCEPTED;
		if (r != -EAGAIN && r != -EWOULDBLOCK && r != -EINTR && r != -ECONNABORTED) {
			log_event(L_ERROR, "fcgi.accept_failed", "rc=%d", r);
			return NEXT_FAILED;
		}
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct pool *p = w->pool;
	struct conn *c = NULL;
	int ep = wait_set(p);

	if (ep < 0)
		goto failed;
	for (;;) {
		enum next r;

		if (c == NULL && (c = conn_new(p->listen_fd)) == NULL)
			goto failed;
		r = wait_next(p, ep, &c->req);
		if (r == NEXT_STOP)
			break;
		if (r == NEXT_FAILED)
			goto failed;
		if (r == NEXT_PARKED_READY)
			answer_parked(w);
		else if (!serve_one(w, c))
			c = NULL; /* parked: the next connection needs its own */
	}
	conn_free(c);
	close(ep);
	return NULL;
failed:
	conn_free(c);
	if (ep >= 0)
		close(ep);
	atomic_store(&p->failed, true);
	kill(getpid(), SIGUSR1);
	return NULL;
}

/* After the workers have stopped: answers the requests still parked. The
 * committer runs until main stops it, so each one's outcome comes. */
static void drain_parked(struct app *app, struct worker *w, int n)
{
	struct worker *answering = NULL;

	for (int i = 0; i < n && answering == NULL; i++)
		if (w[i].store != NULL)
			answering = &w[i];
	while (answering != NULL && park_count(app->park) > 0) {
		struct pollfd pfd = {.fd = park_fd(app->park), .events = POLLIN};

		if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
			break;
		answer_parked(answering);
	}
}

static int thread_count(const struct config *cfg)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	if (cfg->fcgi_threads > 0)
		return (int)cfg->fcgi_threads;
	if (cpus < 1)
		cpus = 1;
	return (int)(cpus * THREADS_PER_CPU > 256 ? 256 : cpus * THREADS_PER_CPU);
}

/* Starts n workers, waits for a stop signal (or a failed worker), stops
 * them; returns the exit code. */
static int serve(struct app *app, int listen_fd, int n, const sigset_t *waited)
{
	struct pool p = {.app = app, .listen_fd = listen_fd};
	struct worker *w = cz_calloc((size_t)n, sizeof(*w));
	char err[512];
	int started = 0;
	int rc = 1;
	int sig = 0;

	p.stop_fd = eventfd(0, EFD_CLOEXEC);
	if (w == NULL || p.stop_fd < 0) {
		cli_fail(rc, "workers", "%s", w == NULL ? "out of memory" : strerror(errno));
		goto out;
	}
	for (int i = 0; i < n; i++) {
		enum store_err serr;

		w[i].pool = &p;
		w[i].store = store_open(config_database(&app->cfg), &serr, err, sizeof(err));
		if (w[i].store == NULL) {
			cli_fail(rc, "store", "%s: %s: %s", config_database_label(&app->cfg),
			         store_strerror(serr), err);
			goto stop;
		}
		store_use_committer(w[i].store, app->committer);
		if (pthread_create(&w[i].thread, NULL, worker_main, &w[i]) != 0) {
			cli_fail(rc, "workers", "cannot start a thread");
			goto stop;
		}
		w[i].started = true;
		started++;
	}
	log_event(L_INFO, "started", "version=%s db=%s doorbell=%s threads=%d", CONSUMA_VERSION,
	          log_q(config_database_label(&app->cfg)), log_q(app->doorbell_path), n);
	while (sigwait(waited, &sig) != 0 || sig == SIGHUP) {
		if (sig == SIGHUP)
			auth_sighup(app->auth);
		sig = 0;
	}
	rc = atomic_load(&p.failed) ? 1 : 0;
stop:
	if (p.stop_fd >= 0 && eventfd_write(p.stop_fd, 1) != 0)
		log_event(L_ERROR, "fcgi.stop_failed", "errno=%d", errno);
	for (int i = 0; i < n; i++)
		if (w[i].started)
			pthread_join(w[i].thread, NULL);
	drain_parked(app, w, n);
	for (int i = 0; i < n; i++)
		store_close(w[i].store);
	log_event(L_INFO, "stopping", "reason=%s served=%ld threads=%d",
	          sig == SIGUSR1 ? "error"
	          : sig != 0     ? "signal"
	                         : "start_failed",
	          atomic_load(&p.served), started);
out:
	if (p.stop_fd >= 0)
		close(p.stop_fd);
	cz_free(w);
	return rc;
}

int main(int argc, char **argv)
{
	static struct app app; /* lives as long as the process: limits keep &app.cfg */
	const char *socket_path = NULL;
	char err[512];
	enum store_err serr;
	enum apikeys_err kerr;
	sigset_t waited;
	int listen_fd = 0;
	int threads;
	int flags;
	int rc;

	log_init(PROGRAM, L_INFO);
	rc = parse_args(argc, argv, &socket_path);
	if (rc >= 0)
		return rc;
	/* Every request frees what it allocated, and SQLite drops its page
	 * cache whenever another process wrote: keeping the freed memory
	 * measured +29% POST /sync throughput. */
	cz_keep_freed_memory();
	if (config_load(&app.cfg, err, sizeof(err)) != CONFIG_OK)
		return cli_fail(CLI_EXIT_USAGE, "config", "%s", err);
	log_init(PROGRAM, (enum log_level)app.cfg.log_level);
	app.ssrf = ssrf_policy_new(&app.cfg, err, sizeof(err));
	if (app.ssrf == NULL)
		return cli_fail(CLI_EXIT_USAGE, "config", "%s", err);
	app.auth = auth_open(&app.cfg, &kerr, err, sizeof(err));
	if (app.auth == NULL) {
		ssrf_policy_free(app.ssrf);
		return cli_fail(kerr == APIKEYS_NOMEM ? CLI_EXIT_RUNTIME : CLI_EXIT_USAGE,
		                "api_keys", "%s", err);
	}
	app.started_mono_ms = ids_mono_ms();
	app.started_wall_ms = ids_now_ms();
	config_doorbell_path(&app.cfg, app.doorbell_path, sizeof(app.doorbell_path));
	rc = CLI_EXIT_RUNTIME;
	if (FCGX_Init() != 0) {
		cli_fail(rc, "fcgi", "FCGX_Init failed");
		goto out;
	}
	if (socket_path != NULL) {
		listen_fd = FCGX_OpenSocket(socket_path, LISTEN_BACKLOG);
		if (listen_fd < 0) {
			cli_fail(rc, "listen", "cannot listen on %s", socket_path);
			goto out;
		}
	} else if (FCGX_IsCGI()) {
		rc = cli_fail(CLI_EXIT_USAGE, "listen",
		              "fd 0 is not a listening socket; run under spawn-fcgi or lighttpd, "
		              "or pass --socket PATH");
		goto out;
	}
	flags = fcntl(listen_fd, F_GETFL);
	if (flags < 0 || fcntl(listen_fd, F_SETFL, flags | O_NONBLOCK) != 0) {
		cli_fail(rc, "listen", "cannot make the listening socket non-blocking: %s",
		         strerror(errno));
		goto out;
	}
	if (block_signals(&waited) != 0) {
		cli_fail(rc, "signals", "cannot set up signal handling: %s", strerror(errno));
		goto out;
	}
	app.committer = store_committer_start(config_database(&app.cfg), &serr, err, sizeof(err));
	if (app.committer == NULL) {
		cli_fail(rc, "store", "%s: %s: %s", config_database_label(&app.cfg),
		         store_strerror(serr), err);
		goto out;
	}
	threads = thread_count(&app.cfg);
	app.limits = limits_open(&app.cfg, err, sizeof(err));
	if (app.limits == NULL) {
		cli_fail(rc, "limits", "%s", err);
		goto out;
	}
	limits_set_listen_fd(app.limits, listen_fd, threads);
	app.lookups = resolve_gate_new(threads / LOOKUP_SHARE, threads / LOOKUP_CLIENT_SHARE);
	if (app.lookups == NULL) {
		log_event(L_ERROR, "fcgi.start_failed", "why=\"out of memory\"");
		limits_close(app.limits);
		store_committer_stop(app.committer);
		return 1;
	}
	log_event(L_INFO, "lookups.bounds", "in_flight=%d per_client=%d",
	          resolve_gate_max_inflight(app.lookups), resolve_gate_max_per_client(app.lookups));
	app.park = park_new(PARKED_MAX);
	if (app.park == NULL)
		log_event(
		    L_WARN, "fcgi.park_unavailable",
		    "why=\"out of memory or file descriptors\" effect=\"each POST /async holds "
		    "its thread until its job is durable\"");
	app.metrics = metrics_open_beside(app.cfg.database_path);
	app.doorbell = doorbell_new(app.doorbell_path);
	if (app.doorbell == NULL)
		log_event(L_WARN, "doorbell.unavailable",
		          "path=%s why=\"not a usable unix socket path\" effect=\"the deliverer "
		          "finds jobs by its poll interval\"",
		          log_q(app.doorbell_path));

	rc = serve(&app, listen_fd, threads, &waited);

out:
	limits_close(app.limits);
	resolve_gate_free(app.lookups);
	metrics_close(app.metrics);
	store_committer_stop(app.committer); /* writes what is queued, logs its figures */
	park_free(app.park);
	doorbell_free(app.doorbell);
	ssrf_policy_free(app.ssrf);
	auth_close(app.auth);
	return rc;
}
