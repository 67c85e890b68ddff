/*
 * consuma-storm: the load runner behind tools/storm.sh.
 *
 * Sends --num-requests requests to POST /sync and/or POST /async (sync
 * first, or interleaved with --mode mixed; once per rate with --sweep),
 * receives the async callbacks itself, checks every result against the work
 * computed locally, and reports latency distributions, failures by cause,
 * callback integrity and a timeline of all of it (report.h). --compare
 * renders saved runs side by side instead (compare.h). Exit status: 0
 * nothing failed, was lost or was wrong; 1 otherwise (or a runtime
 * failure); 2 usage; 99 a --threshold failed.
 *
 * Threads: the worker threads run the curl multi loops (load.c), the main
 * thread supervises them; libmicrohttpd runs the callback receiver on its
 * own thread (recv.c); one thread samples the server (sample.c). Signals
 * only set `stop`: the loop then starts nothing new, lets the requests in
 * flight end (each bounded by --timeout), skips the callback wait and
 * reports.
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
#include "compare.h"
#include "sample.h"
#include "timeline.h"

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
		for (; l < sizeof(low) - 1 && v[l]; l++)
			low[l] = (char)(v[l] >= 'A' && v[l] <= 'Z' ? v[l] - 'A' + 'a' : v[l]);
		low[l] = '\0';
		return strstr(low, "utf-8") || strstr(low, "utf8");
	}
	return false;
}

static void show_progress(void *arg, const struct load_progress *p)
{
	(void)arg;
	fprintf(stderr, "\r\033[K[%s] %llu/%llu sent, %llu done, %llu failed, %.1f s", p->label,
	        (unsigned long long)p->started, (unsigned long long)p->n,
	        (unsigned long long)p->done, (unsigned long long)p->failed, p->elapsed_s);
}

static void clear_progress(const struct opts *o)
{
	if (o->progress)
		fputs("\r\033[K", stderr);
}

/* Waits for the callbacks of every accepted request, at most
 * --callback-wait from now (the last accept); returns the seconds waited. */
static double wait_callbacks(const struct opts *o, struct recv *rv)
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
	clear_progress(o);
	return (double)(ids_mono_ns() - t0) / 1e9;
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

/* One storm at one rate: both halves or the mixed storm, then the
 * callbacks of its async requests. Returns false on a runtime failure. */
static bool run_step(struct load_config *lc, struct recv *rv, struct timeline *tl,
                     struct result_mode *sync, struct result_mode *async)
{
	const struct opts *o = lc->o;
	const char *what[2] = {"sync", "async"};
	for (int half = 0; half < 2; half++) {
		if (o->mode == OPTS_MIXED && half == 1)
			break;
		if (o->mode != OPTS_MIXED && !(o->mode & (half ? OPTS_ASYNC : OPTS_SYNC)))
			continue;
		if (half == 1 && stop_flag)
			break;
		lc->is_async = half == 1;
		lc->mixed = o->mode == OPTS_MIXED;
		enum load_err le = load_run(lc, sync, async);
		clear_progress(o);
		if (le != LOAD_OK) {
			fprintf(stderr, "consuma-storm: %s run: %s\n",
			        lc->mixed ? "mixed" : what[half], load_strerror(le));
			return false;
		}
	}
	if (!(o->mode & OPTS_ASYNC))
		return true;
	if (!async->ran) {
		/* interrupted before the async half started */
		async->ran = true;
		async->is_async = true;
		async->interrupted = true;
		return true;
	}
	double waited = 0;
	if (!stop_flag)
		waited = wait_callbacks(o, rv);
	if (stop_flag)
		async->interrupted = true;
	recv_summarize(rv, lc->first_index, o->num_requests, &async->cb, &async->callback_latency,
	               tl);
	async->cb.waited_s = waited;
	return true;
}

/* A sweep's totals: the steps added up, rates over the summed durations. */
static void add_step(struct result_mode *total, const struct result_mode *step)
{
	if (!step->ran)
		return;
	total->ran = true;
	total->is_async = step->is_async;
	result_merge(total, step);
	total->duration_s += step->duration_s;
	if (total->duration_s > 0) {
		total->achieved_rate = (double)total->sent / total->duration_s;
		total->succeeded_rate = (double)total->succeeded / total->duration_s;
	}
}

static void dry_run(const struct opts *o)
{
	char loop[64] = "closed loop";
	if (o->n_sweep > 0)
		snprintf(loop, sizeof(loop), "open loop, sweep of %d rates", o->n_sweep);
	else if (o->rate > 0)
		snprintf(loop, sizeof(loop), "open loop at %g/s", o->rate);
	printf("consuma-storm %s: %llu requests %s, mode %s, concurrency %d, %lld "
	       "iterations, %s, %g s intervals, %d thresholds, server %s, callbacks to %s:%d\n",
	       CONSUMA_VERSION, (unsigned long long)o->num_requests,
	       o->mode == OPTS_MIXED ? "in all" : "per mode", opts_mode_name(o->mode),
	       o->concurrency, (long long)o->iterations, loop, o->interval_s, o->n_thresholds,
	       o->server_url, o->callback_host, o->callback_port);
}

static int write_outputs(const struct opts *o, const struct report_run *r, int status)
{
	static const struct {
		const char *what;
		enum report_err (*write)(const char *path, const struct report_run *r);
	} outputs[] = {{"--json", report_json}, {"--csv", report_csv}, {"--html", report_html}};
	const char *paths[] = {o->json_path, o->csv_path, o->html_path};
	for (size_t k = 0; k < sizeof(outputs) / sizeof(outputs[0]); k++) {
		if (!paths[k])
			continue;
		enum report_err e = outputs[k].write(paths[k], r);
		if (e != REPORT_OK) {
			fprintf(stderr, "consuma-storm: %s %s: %s\n", outputs[k].what, paths[k],
			        report_strerror(e));
			status = 1;
		}
	}
	return status;
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
	if (o.n_compare > 0) {
		enum compare_err ce = compare_html(&o, err, sizeof(err));
		if (ce != COMPARE_OK) {
			fprintf(stderr, "consuma-storm: --compare: %s\n", err);
			return ce == COMPARE_INPUT ? 2 : 1;
		}
		return 0;
	}
	if (o.dry_run) {
		dry_run(&o);
		return 0;
	}
	if (!isatty(STDERR_FILENO))
		o.progress = false;
	install_signals();
	raise_nofile(o.concurrency);

	int status = 1;
	const int n_steps = o.n_sweep > 0 ? o.n_sweep : 1;
	const uint64_t n_all = o.num_requests * (uint64_t)n_steps;
	struct expect *ex = NULL;
	struct recv *rv = NULL;
	struct timeline *tl = NULL;
	struct sample *sampler = NULL;
	struct report_run *r = cz_calloc(1, sizeof(*r));
	struct report_step *steps = o.n_sweep ? cz_calloc((size_t)o.n_sweep, sizeof(*steps)) : NULL;
	if (!r || (o.n_sweep && !steps)) {
		fprintf(stderr, "consuma-storm: out of memory\n");
		cz_free(r);
		cz_free(steps);
		return 1;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "consuma-storm: libcurl failed to initialise\n");
		cz_free(r);
		cz_free(steps);
		return 1;
	}
	r->o = &o;
	r->steps = steps;
	ids_rfc3339(ids_now_ms(), r->started_at);
	report_machine(r);
	hist_init(&r->sync.latency);
	hist_init(&r->async.latency);
	hist_init(&r->async.callback_latency);

	enum work_err we = WORK_OK;
	ex = expect_new(o.seed, n_all, o.iterations, !o.raw, &we);
	if (!ex) {
		fprintf(stderr, "consuma-storm: computing the expected results: %s\n",
		        work_strerror(we));
		goto done;
	}
	if (o.mode & OPTS_ASYNC) {
		struct recv_config rc = {
		    .host = o.callback_host,
		    .port = o.callback_port,
		    .n = n_all,
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
	tl = tl_new(ids_mono_ns(), o.interval_s);
	if (!tl) {
		fprintf(stderr, "consuma-storm: out of memory for the timeline\n");
		goto done;
	}
	r->tl = tl;
	if (!o.raw) {
		enum sample_err se = SAMPLE_OK;
		sampler = sample_start(o.server_url, o.interval_s, tl, &se);
		if (!sampler)
			log_event(L_WARN, "sampler.off", "detail=%s", log_q(sample_strerror(se)));
	}
	struct load_config lc = {
	    .o = &o,
	    .ex = ex,
	    .rv = rv,
	    .tl = tl,
	    .stop = &stop_flag,
	    .progress = o.progress ? show_progress : NULL,
	};
	for (int k = 0; k < n_steps && !stop_flag; k++) {
		struct result_mode *sync = &r->sync, *async = &r->async;
		if (o.n_sweep) {
			steps[k].rate = o.sweep[k];
			sync = &steps[k].sync;
			async = &steps[k].async;
			hist_init(&sync->latency);
			hist_init(&async->latency);
			hist_init(&async->callback_latency);
		}
		lc.rate = o.n_sweep ? o.sweep[k] : o.rate;
		lc.first_index = (uint64_t)k * o.num_requests;
		if (!run_step(&lc, rv, tl, sync, async))
			goto done;
		if (o.n_sweep) {
			add_step(&r->sync, sync);
			add_step(&r->async, async);
			r->n_steps = k + 1;
		}
	}
	sample_stop(sampler, tl);
	sampler = NULL;
	if (rv) {
		recv_stop(rv);
		r->async.cb.unexpected += recv_stray(rv);
	}

	r->ok = run_ok(r);
	for (int k = 0; k < o.n_thresholds; k++) {
		r->th[k] = threshold_eval(&o.thresholds[k], &r->sync, &r->async);
		if (!r->th[k].ok)
			r->th_failed++;
	}
	r->exit_status = !r->ok ? 1 : r->th_failed ? 99 : 0;
	status = r->exit_status;
	report_terminal(stdout, r, utf8_locale());
	fflush(stdout);
	status = write_outputs(&o, r, status);
done:
	sample_stop(sampler, NULL);
	recv_free(rv);
	expect_free(ex);
	tl_free(tl);
	cz_free(steps);
	cz_free(r);
	curl_global_cleanup();
	return status;
}
