/*
 * consuma-fcgi: the FastCGI responder behind lighttpd (or nginx). One
 * process serves one request at a time; run as many as you like (spawn-fcgi
 * pools), they share nothing but the database.
 *
 * Listening socket: fd 0, as spawn-fcgi and lighttpd hand it over, or
 * `--socket PATH` (a unix socket path, or HOST:PORT).
 *
 * Shutdown: SIGTERM or SIGINT set a flag; the request in hand is finished,
 * then the process exits 0. Signals are blocked everywhere except inside
 * ppoll(2) on the listening socket, so a signal can never interrupt a
 * request's reads or writes, and never arrives between "check the flag" and
 * "block in accept" (the window libfcgi's own FCGX_ShutdownPending leaves
 * open). The listening socket is non-blocking: when processes share one
 * socket and another took the connection, FCGX_Accept_r returns -EAGAIN and
 * we go back to ppoll.
 */
#define _GNU_SOURCE /* ppoll */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcgiapp.h>
#include "app.h"
#include "doorbell.h"
#include "http.h"
#include "ids.h"
#include "log.h"
#include "router.h"

#define PROGRAM        "consuma-fcgi"
#define LISTEN_BACKLOG 1024

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
	(void)sig;
	stop_requested = 1;
	FCGX_ShutdownPending();
}

static void describe_line(const char *name, const char *type_and_range, const char *default_value,
                          const char *help, void *arg)
{
	FILE *f = arg;

	fprintf(f, "  %-36s %s (default: %s)\n      %s\n", name, type_and_range, default_value,
	        help);
}

static void usage(FILE *f)
{
	fprintf(f,
	        "Usage: %s [--socket PATH]\n"
	        "       %s --help | --version\n\n"
	        "The consuma FastCGI responder: POST /sync, POST /async, GET /requests,\n"
	        "GET /requests/{id}, GET /healthz. Takes its listening socket on fd 0\n"
	        "(spawn-fcgi, lighttpd) unless --socket PATH (unix path or HOST:PORT) is\n"
	        "given. Stops on SIGTERM/SIGINT after the request in hand.\n\n"
	        "Exit codes: 0 clean stop, 1 runtime failure, 2 bad configuration or usage.\n\n"
	        "Configuration (environment):\n",
	        PROGRAM, PROGRAM);
	config_describe(describe_line, f);
}

/* Every request frees what it allocated, and SQLite drops its page cache
 * whenever another process wrote; glibc then trims the heap top back to the
 * kernel and the next request page-faults it in again. Keeping the freed
 * memory (bounded by what one request peaks at) measured +29% POST /sync
 * throughput. No-op where mallopt is intercepted (sanitizers). */
static void tune_malloc(void)
{
	mallopt(M_TRIM_THRESHOLD, 256 * 1024 * 1024);
	mallopt(M_TOP_PAD, 16 * 1024 * 1024);
	mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
}

/* Parses argv; returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, const char **socket_path)
{
	int i;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			return 0;
		}
		if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
			printf("%s %s\n", PROGRAM, CONSUMA_VERSION);
			return 0;
		}
		if (strcmp(a, "--socket") == 0 && i + 1 < argc) {
			*socket_path = argv[++i];
			continue;
		}
		if (strncmp(a, "--socket=", 9) == 0 && a[9] != '\0') {
			*socket_path = a + 9;
			continue;
		}
		fprintf(stderr, "%s: unknown or incomplete argument: %s (try --help)\n", PROGRAM,
		        a);
		return 2;
	}
	return -1;
}

static int setup_signals(sigset_t *during_poll)
{
	struct sigaction sa;
	sigset_t block;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	if (sigaction(SIGPIPE, &sa, NULL) != 0)
		return -1;
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: ppoll must return EINTR */
	if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0)
		return -1;
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	if (sigprocmask(SIG_BLOCK, &block, during_poll) != 0)
		return -1;
	sigdelset(during_poll, SIGTERM);
	sigdelset(during_poll, SIGINT);
	return 0;
}

static void serve_one(struct app *app, FCGX_Request *req)
{
	struct http_exchange x;

	if (!http_exchange_init(&x, app, req)) {
		http_error(&x, 404, "path: not a valid path");
		log_event(L_INFO, "request",
		          "route=- method=%s status=%d duration_ms=0 request_id=-", log_q(x.method),
		          x.status);
	} else {
		router_dispatch(&x);
	}
	/* the response goes out before the doorbell rings */
	FCGX_Finish_r(req);
	if (x.ring_doorbell)
		doorbell_ring(app->doorbell);
	http_exchange_done(&x);
}

/* The accept loop; returns the exit code. */
static int serve(struct app *app, int listen_fd, const sigset_t *during_poll)
{
	FCGX_Request req;
	long served = 0;
	int rc = 0;

	if (FCGX_InitRequest(&req, listen_fd, 0) != 0) {
		log_event(L_ERROR, "fcgi.init_failed", "fd=%d", listen_fd);
		return 1;
	}
	while (!stop_requested) {
		struct pollfd p = {.fd = listen_fd, .events = POLLIN};
		int r = ppoll(&p, 1, NULL, during_poll);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			log_event(L_ERROR, "fcgi.poll_failed", "errno=%d", errno);
			rc = 1;
			break;
		}
		r = FCGX_Accept_r(&req);
		if (r < 0) {
			if (r == -EAGAIN || r == -EWOULDBLOCK || r == -EINTR || r == -ECONNABORTED)
				continue;
			log_event(L_ERROR, "fcgi.accept_failed", "rc=%d", r);
			rc = 1;
			break;
		}
		serve_one(app, &req);
		limits_request_done(app->limits);
		served++;
	}
	log_event(L_INFO, "stopping", "reason=%s served=%ld", stop_requested ? "signal" : "error",
	          served);
	return rc;
}

int main(int argc, char **argv)
{
	static struct app app; /* lives as long as the process: limits keep &app.cfg */
	const char *socket_path = NULL;
	char err[512];
	enum store_err serr;
	sigset_t during_poll;
	int listen_fd = 0;
	int flags;
	int rc;

	rc = parse_args(argc, argv, &socket_path);
	if (rc >= 0)
		return rc;
	tune_malloc();
	log_init(PROGRAM, L_INFO);
	if (config_load(&app.cfg, err, sizeof(err)) != CONFIG_OK) {
		fprintf(stderr, "%s: %s\n", PROGRAM, err);
		return 2;
	}
	log_init(PROGRAM, (enum log_level)app.cfg.log_level);
	app.ssrf = ssrf_policy_new(&app.cfg, err, sizeof(err));
	if (app.ssrf == NULL) {
		fprintf(stderr, "%s: %s\n", PROGRAM, err);
		return 2;
	}
	app.started_mono_ms = ids_mono_ms();
	app.started_wall_ms = ids_now_ms();
	config_doorbell_path(&app.cfg, app.doorbell_path, sizeof(app.doorbell_path));
	if (FCGX_Init() != 0) {
		fprintf(stderr, "%s: FCGX_Init failed\n", PROGRAM);
		return 1;
	}
	if (socket_path != NULL) {
		listen_fd = FCGX_OpenSocket(socket_path, LISTEN_BACKLOG);
		if (listen_fd < 0) {
			fprintf(stderr, "%s: cannot listen on %s\n", PROGRAM, socket_path);
			return 1;
		}
	} else if (FCGX_IsCGI()) {
		fprintf(stderr,
		        "%s: fd 0 is not a listening socket; run under spawn-fcgi or lighttpd, "
		        "or pass --socket PATH\n",
		        PROGRAM);
		return 2;
	}
	flags = fcntl(listen_fd, F_GETFL);
	if (flags < 0 || fcntl(listen_fd, F_SETFL, flags | O_NONBLOCK) != 0) {
		fprintf(stderr, "%s: cannot make the listening socket non-blocking\n", PROGRAM);
		return 1;
	}
	if (setup_signals(&during_poll) != 0) {
		fprintf(stderr, "%s: cannot install signal handlers\n", PROGRAM);
		return 1;
	}

	app.store = store_open(app.cfg.database_path, &serr, err, sizeof(err));
	if (app.store == NULL) {
		log_event(L_ERROR, "store.open_failed", "path=%s error=%s message=%s",
		          log_q(app.cfg.database_path), store_strerror(serr), log_q(err));
		return 1;
	}
	app.writelock = writelock_open(app.cfg.database_path, err, sizeof(err));
	if (app.writelock == NULL)
		log_event(L_WARN, "writelock.unavailable", "why=%s", log_q(err));
	app.limits = limits_open(&app.cfg, err, sizeof(err));
	if (app.limits == NULL) {
		log_event(L_ERROR, "limits.open_failed", "why=%s", log_q(err));
		writelock_close(app.writelock);
		store_close(app.store);
		return 1;
	}
	limits_set_listen_fd(app.limits, listen_fd);
	app.doorbell = doorbell_new(app.doorbell_path);
	if (app.doorbell == NULL)
		log_event(L_WARN, "doorbell.unavailable",
		          "path=%s why=\"not a usable unix socket path\" effect=\"the deliverer "
		          "finds jobs by its poll interval\"",
		          log_q(app.doorbell_path));
	log_event(L_INFO, "started", "version=%s db=%s doorbell=%s", CONSUMA_VERSION,
	          log_q(app.cfg.database_path), log_q(app.doorbell_path));

	rc = serve(&app, listen_fd, &during_poll);

	limits_close(app.limits);
	writelock_close(app.writelock);
	store_close(app.store);
	doorbell_free(app.doorbell);
	ssrf_policy_free(app.ssrf);
	return rc;
}
