/*
 * consuma-storm: the load runner behind tools/storm.sh.
 *
 * Sends --num-requests requests to POST /sync and/or POST /async (sync
 * first), receives the async callbacks itself, checks every result against
 * the work computed locally, and reports latency distributions, failures by
 * cause and callback integrity (report.h). Exit status: 0 nothing failed,
 * was lost or was wrong; 1 otherwise (or a runtime failure); 2 usage.
 *
 * Threads: the main thread runs the curl multi loop (load.c); libmicrohttpd
 * runs the callback receiver on its own thread (recv.c). Signals only set
 * `stop`: the loop then starts nothing new, lets the requests in flight end
 * (each bounded by --timeout), skips the callback wait and reports.
 */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "alloc.h"
#include "expect.h"
#include "ids.h"
#include "load.h"
#include "log.h"
#include "opts.h"
#include "recv.h"
#include "report.h"

#define WAIT_STEP_NS 200000000LL

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void install_signals(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESETHAND; /* a second Ctrl-C ends the program at once */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

/* Each transfer and each callback connection needs a descriptor. */
static void raise_nofile(int want)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	rlim_t need = (rlim_t)want * 2 + 256;
	if (rl.rlim_cur >= need)
		return;
	rl.rlim_cur = rl.rlim_max < need ? rl.rlim_max : need;
	setrlimit(RLIMIT_NOFILE, &rl);
}

static bool utf8_locale(void)
{
	const char *vars[] = {"LC_ALL", "LC_CTYPE", "LANG"};
	for (size_t k = 0; k < 3; k++) {
		const char *v = getenv(vars[k]);
		if (!v || !*v)
			continue;
		char low[64];
		size_t l = 0;
		for (; v[l] && l < sizeof(low) - 1; l++)
			low[l] = (char)(v[l] >= 'A' && v[l] <= 'Z' ? v[l] - 'A' + 'a' : v[l]);
		low[l] = '\0';
		return strstr(low, "utf-8") || strstr(low, "utf8");
	}
	return false;
}

static void show_progress(void *arg, const struct load_progress *p)
{
	(void)arg;
	fprintf(stderr, "\r\033[K[%s] %llu/%llu sent, %llu done, %llu failed, %.1f s",
	        p->is_async ? "async" : "sync", (unsigned long long)p->started,
	        (unsigned long long)p->n, (unsigned long long)p->done,
	        (unsigned long long)p->failed, p->elapsed_s);
}

static void clear_progress(const struct opts *o)
{
	if (o->progress)
		fputs("\r\033[K", stderr);
}

/* Waits for the callbacks of every accepted request, at most
 * --callback-wait from now (the last accept). */
static void wait_callbacks(const struct opts *o, struct recv *rv, struct result_mode *m)
{
	int64_t t0 = ids_mono_ns();
	int64_t deadline = t0 + (int64_t)(o->callback_wait_s * 1e9);
	for (;;) {
		int64_t now = ids_mono_ns();
		if (stop_flag || now >= deadline)
			break;
		int64_t until = now + WAIT_STEP_NS < deadline ? now + WAIT_STEP_NS : deadline;
		bool all = recv_wait(rv, until);
		if (o->progress) {
			uint64_t got = 0, want = 0;
			recv_counts(rv, &got, &want);
			fprintf(stderr,
			        "\r\033[K[async] callbacks %llu/%llu, waited %.1f of %.0f s",
			        (unsigned long long)got, (unsigned long long)want,
			        (double)(ids_mono_ns() - t0) / 1e9, o->callback_wait_s);
		}
		if (all)
			break;
	}
	m->cb.waited_s = (double)(ids_mono_ns() - t0) / 1e9;
	if (stop_flag)
		m->interrupted = true;
	clear_progress(o);
}

/* Nothing lost or wrong: every request answered (a refusal with 429/503 is
 * an answer), every accepted job called back with the right, correctly
 * signed result, and the run was not cut short. */
static bool run_ok(const struct report_run *r)
{
	const struct result_mode *modes[2] = {&r->sync, &r->async};
	for (int k = 0; k < 2; k++) {
		const struct result_mode *m = modes[k];
		if (!m->ran)
			continue;
		if (m->interrupted || m->failed != result_refused(m) ||
		    m->succeeded + m->failed != m->sent)
			return false;
		if (m->is_async && (m->cb.missing || m->cb.wrong_result || m->cb.bad_signature))
			return false;
	}
	return true;
}

int main(int argc, char **argv)
{
	log_init("consuma-storm", L_INFO);
	struct opts o;
	char err[512];
	switch (opts_parse(argc, argv, &o, err, sizeof(err))) {
	case OPTS_OK:
		break;
	case OPTS_USAGE:
		fprintf(stderr, "consuma-storm: %s\nTry 'consuma-storm --help'.\n", err);
		return 2;
	case OPTS_HELP:
		fputs(opts_usage(), stdout);
		return 0;
	case OPTS_VERSION:
		printf("consuma-storm %s\n", CONSUMA_VERSION);
		return 0;
	}
	if (o.dry_run) {
		printf("consuma-storm %s: %llu requests per mode, mode %s, concurrency %d, %lld "
		       "iterations, %s loop, server %s, callbacks to %s:%d\n",
		       CONSUMA_VERSION, (unsigned long long)o.num_requests, opts_mode_name(o.mode),
		       o.concurrency, (long long)o.iterations, o.rate > 0 ? "open" : "closed",
		       o.server_url, o.callback_host, o.callback_port);
		return 0;
	}
	if (!isatty(STDERR_FILENO))
		o.progress = false;
	install_signals();
	raise_nofile(o.concurrency);

	int status = 1;
	struct expect *ex = NULL;
	struct recv *rv = NULL;
	struct report_run *r = cz_calloc(1, sizeof(*r));
	if (!r) {
		fprintf(stderr, "consuma-storm: out of memory\n");
		return 1;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "consuma-storm: libcurl failed to initialise\n");
		cz_free(r);
		return 1;
	}
	r->o = &o;
	ids_rfc3339(ids_now_ms(), r->started_at);
	report_machine(r);
	hist_init(&r->sync.latency);
	hist_init(&r->async.latency);
	hist_init(&r->async.callback_latency);

	enum work_err we = WORK_OK;
	ex = expect_new(o.seed, o.num_requests, o.iterations, !o.raw, &we);
	if (!ex) {
		fprintf(stderr, "consuma-storm: computing the expected results: %s\n",
		        work_strerror(we));
		goto done;
	}
	if (o.mode & OPTS_ASYNC) {
		struct recv_config rc = {
		    .host = o.callback_host,
		    .port = o.callback_port,
		    .n = o.num_requests,
		    .ex = ex,
		    .secret = o.secret,
		};
		enum recv_err re = RECV_OK;
		rv = recv_new(&rc, &re);
		if (!rv) {
			fprintf(stderr, "consuma-storm: callback receiver on %s port %d: %s\n",
			        o.callback_host, o.callback_port, recv_strerror(re));
			goto done;
		}
	}
	struct load_config lc = {
	    .o = &o,
	    .ex = ex,
	    .stop = &stop_flag,
	    .progress = o.progress ? show_progress : NULL,
	};
	if (o.mode & OPTS_SYNC) {
		lc.is_async = false;
		enum load_err le = load_run(&lc, &r->sync);
		clear_progress(&o);
		if (le != LOAD_OK) {
			fprintf(stderr, "consuma-storm: sync run: %s\n", load_strerror(le));
			goto done;
		}
	}
	if ((o.mode & OPTS_ASYNC) && !stop_flag) {
		lc.is_async = true;
		lc.rv = rv;
		enum load_err le = load_run(&lc, &r->async);
		clear_progress(&o);
		if (le != LOAD_OK) {
			fprintf(stderr, "consuma-storm: async run: %s\n", load_strerror(le));
			goto done;
		}
		if (!stop_flag)
			wait_callbacks(&o, rv, &r->async);
		else
			r->async.interrupted = true;
		recv_summarize(rv, &r->async.cb, &r->async.callback_latency);
	}
	if ((o.mode & OPTS_ASYNC) && !r->async.ran) {
		/* interrupted before the async half started */
		r->async.ran = true;
		r->async.is_async = true;
		r->async.interrupted = true;
	}

	r->ok = run_ok(r);
	r->exit_status = r->ok ? 0 : 1;
	status = r->exit_status;
	report_terminal(stdout, r, utf8_locale());
	fflush(stdout);
	if (o.json_path) {
		enum report_err e = report_json(o.json_path, r);
		if (e != REPORT_OK) {
			fprintf(stderr, "consuma-storm: --json %s: %s\n", o.json_path,
			        report_strerror(e));
			status = 1;
		}
	}
	if (o.html_path) {
		enum report_err e = report_html(o.html_path, r);
		if (e != REPORT_OK) {
			fprintf(stderr, "consuma-storm: --html %s: %s\n", o.html_path,
			        report_strerror(e));
			status = 1;
		}
	}
done:
	recv_free(rv);
	expect_free(ex);
	cz_free(r);
	curl_global_cleanup();
	return status;
}
