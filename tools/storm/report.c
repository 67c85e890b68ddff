/*
 * report: terminal, JSON and HTML output (see report.h for the fields).
 *
 * Everything is rendered into bounded buffers first and written in one go,
 * so a report is either written whole or reported as an error.
 */
#include "report.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "hist.h"

#define JSON_MAX  (1024 * 1024)
#define HTML_MAX  (4 * 1024 * 1024)
#define TEXT_MAX  (64 * 1024)
#define BAR_WIDTH 40
#define WRAP      78

struct series {
	const char *label;
	const struct hist *h;
	const char *color;
	const char *dash;
};

static const char *const cause_key[CAUSE_COUNT] = {
    "http_429", "http_503",  "http_other",   "timeout",
    "connect",  "transport", "bad_response", "wrong_result",
};

static const char *const cause_text[CAUSE_COUNT] = {
    "429 too many requests", "503 unavailable", "other HTTP status", "timeout",
    "connection error",      "transfer error",  "unreadable body",   "wrong result",
};

const char *report_strerror(enum report_err err)
{
	switch (err) {
	case REPORT_OK:
		return "ok";
	case REPORT_NOMEM:
		return "out of memory (or report too large)";
	case REPORT_IO:
		return "cannot write the file";
	}
	return "unknown error";
}

void report_machine(struct report_run *r)
{
	struct utsname u;
	if (uname(&u) == 0)
		snprintf(r->uname, sizeof(r->uname), "%s %s %s %s", u.sysname, u.release, u.version,
		         u.machine);
	else
		snprintf(r->uname, sizeof(r->uname), "unknown");
	r->nproc = sysconf(_SC_NPROCESSORS_ONLN);
	r->cpu[0] = '\0';
	FILE *f = fopen("/proc/cpuinfo", "r");
	if (!f)
		return;
	char line[512];
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "model name", 10) != 0)
			continue;
		const char *p = strchr(line, ':');
		if (!p)
			break;
		p++;
		while (*p == ' ' || *p == '\t')
			p++;
		size_t l = strcspn(p, "\n");
		snprintf(r->cpu, sizeof(r->cpu), "%.*s", (int)l, p);
		break;
	}
	fclose(f);
}

static double ms(uint64_t us)
{
	return (double)us / 1000.0;
}

/* A latency in ms with as many decimals as make sense for its size. */
static const char *fmt_ms(char *out, size_t len, double v)
{
	if (v < 100)
		snprintf(out, len, "%.2f", v);
	else if (v < 10000)
		snprintf(out, len, "%.1f", v);
	else
		snprintf(out, len, "%.0f", v);
	return out;
}

static int n_series(const struct report_run *r, struct series s[3])
{
	int n = 0;
	if (r->sync.ran)
		s[n++] = (struct series){"sync response", &r->sync.latency, "#d62728", ""};
	if (r->async.ran) {
		s[n++] = (struct series){"async accept", &r->async.latency, "#1f77b4", ""};
		s[n++] = (struct series){"time to callback", &r->async.callback_latency, "#2ca02c",
		                         "6 3"};
	}
	return n;
}

/* ---- sentences: what the numbers say ---------------------------------- */

enum which { ALL, REFUSALS, OTHERS };

static bool is_refusal(int c)
{
	return c == CAUSE_HTTP_429 || c == CAUSE_HTTP_503;
}

static void causes_text(struct buf *b, const struct result_mode *m, enum which which)
{
	const char *sep = "";
	for (int c = 0; c < CAUSE_COUNT; c++) {
		if (!m->cause[c] || (which == REFUSALS && !is_refusal(c)) ||
		    (which == OTHERS && is_refusal(c)))
			continue;
		if (c == CAUSE_HTTP_OTHER) {
			for (int s = 0; s < RESULT_STATUS_MAX; s++)
				if (m->http_status[s]) {
					buf_printf(b, "%sHTTP %d x%llu", sep, s,
					           (unsigned long long)m->http_status[s]);
					sep = ", ";
				}
			continue;
		}
		buf_printf(b, "%s%s x%llu", sep, cause_text[c], (unsigned long long)m->cause[c]);
		sep = ", ";
	}
	if (!*sep)
		buf_puts(b, "none");
}

/* "job" or "jobs", "callback" or "callbacks". */
static const char *plural(uint64_t n, const char *noun)
{
	if (strcmp(noun, "job") == 0)
		return n == 1 ? "job" : "jobs";
	return n == 1 ? "callback" : "callbacks";
}

/* One sentence per line. */
static void sentences(struct buf *b, const struct report_run *r)
{
	const struct opts *o = r->o;
	const struct result_mode *s = &r->sync, *a = &r->async;
	char x[32], y[32], z[32], w[32];
	bool have_s = s->ran && s->latency.count > 0;
	bool have_a = a->ran && a->latency.count > 0;
	bool have_c = a->ran && a->callback_latency.count > 0;
	double s50 = ms(hist_percentile(&s->latency, 50));
	double s99 = ms(hist_percentile(&s->latency, 99));
	double a50 = ms(hist_percentile(&a->latency, 50));
	double a99 = ms(hist_percentile(&a->latency, 99));
	double c50 = ms(hist_percentile(&a->callback_latency, 50));
	double c99 = ms(hist_percentile(&a->callback_latency, 99));

	if (s->ran && a->ran) {
		uint64_t good = a->cb.received - a->cb.wrong_result;
		buf_printf(b,
		           "The headline: /sync gave %llu of %llu callers their result; /async "
		           "accepted %llu of %llu and ",
		           (unsigned long long)s->succeeded, (unsigned long long)s->sent,
		           (unsigned long long)a->succeeded, (unsigned long long)a->sent);
		if (good == a->succeeded)
			buf_puts(b, "delivered every result by callback.\n");
		else
			buf_printf(b, "delivered %llu correct results by callback.\n",
			           (unsigned long long)good);
	}
	if (have_s) {
		if (s->succeeded < s->sent)
			buf_printf(
			    b, "Sync: %llu of %llu callers got their answer; of those, half had it",
			    (unsigned long long)s->succeeded, (unsigned long long)s->sent);
		else
			buf_puts(b, "Sync: half the callers had their answer");
		buf_printf(b,
		           " within %s ms; 1 in 100 waited longer than %s ms, the slowest "
		           "%s ms.\n",
		           fmt_ms(x, sizeof(x), s50), fmt_ms(y, sizeof(y), s99),
		           fmt_ms(z, sizeof(z), ms(s->latency.max_us)));
	}
	if (have_a) {
		if (a->succeeded < a->sent)
			buf_printf(b,
			           "Async: %llu of %llu callers got a 202; of those, half had it",
			           (unsigned long long)a->succeeded, (unsigned long long)a->sent);
		else
			buf_puts(b, "Async: half the callers had their 202");
		buf_printf(b, " within %s ms (p99 %s ms)", fmt_ms(x, sizeof(x), a50),
		           fmt_ms(y, sizeof(y), a99));
		if (have_s && a50 > 0 && a50 < s50)
			buf_printf(b, ", %.1fx sooner than a sync answer at the median", s50 / a50);
		else if (have_s)
			buf_puts(b, ", no sooner than a sync answer at the median");
		if (have_c)
			buf_printf(b,
			           "; the result itself came by callback after %s ms (p99 %s ms)",
			           fmt_ms(z, sizeof(z), c50), fmt_ms(w, sizeof(w), c99));
		buf_puts(b, ".\n");
	}
	if (have_s && have_c)
		buf_printf(
		    b, "To the result, async took %s ms at the median against %s ms for sync%s\n",
		    fmt_ms(x, sizeof(x), c50), fmt_ms(y, sizeof(y), s50),
		    c50 >= s50 ? "; what async buys is a caller that is free after the 202, "
		                 "not a faster result."
		               : ": under this load the queue and the deliverer's workers "
		                 "beat the synchronous path even to the result.");
	const struct result_mode *modes[2] = {s, a};
	for (int k = 0; k < 2; k++) {
		const struct result_mode *m = modes[k];
		if (!m->ran)
			continue;
		const char *path = m->is_async ? "/async" : "/sync";
		const char *good = m->is_async ? "a 202" : "a result";
		if (o->rate > 0)
			buf_printf(b, "Open loop at %.1f requests/s: %s answered %.1f/s", o->rate,
			           path, m->achieved_rate);
		else
			buf_printf(b, "Closed loop, %d in flight: %s answered %.1f requests/s",
			           o->concurrency, path, m->achieved_rate);
		if (m->succeeded < m->sent)
			buf_printf(b, ", %.1f/s of them with %s", m->succeeded_rate, good);
		if (o->rate > 0 && m->achieved_rate < 0.95 * o->rate)
			buf_puts(b,
			         "; it fell behind, so requests queued: latency counts from when "
			         "each was due, and the tail shows the wait");
		buf_puts(b, ".\n");
	}
	uint64_t failed = (s->ran ? s->failed : 0) + (a->ran ? a->failed : 0);
	if (failed == 0)
		buf_puts(b, "No request failed or was refused.\n");
	for (int k = 0; k < 2; k++) {
		const struct result_mode *m = modes[k];
		if (!m->ran || !m->failed)
			continue;
		uint64_t refused = result_refused(m);
		if (refused) {
			buf_printf(b, "%llu of %llu %s requests were refused at once (",
			           (unsigned long long)refused, (unsigned long long)m->sent,
			           m->is_async ? "async" : "sync");
			causes_text(b, m, REFUSALS);
			buf_puts(b, "): the service said no early instead of letting them wait; a "
			            "refusal is an answer, not a loss");
			if (m->refused_no_retry_after)
				buf_printf(
				    b, ", but %llu came without the Retry-After the API promises",
				    (unsigned long long)m->refused_no_retry_after);
			buf_puts(b, ".\n");
		}
		if (m->failed > refused) {
			buf_printf(b, "%llu of %llu %s requests failed: ",
			           (unsigned long long)(m->failed - refused),
			           (unsigned long long)m->sent, m->is_async ? "async" : "sync");
			causes_text(b, m, OTHERS);
			buf_puts(b, ".\n");
		}
	}
	if (a->ran && a->cb.expected > 0) {
		const struct result_callbacks *cb = &a->cb;
		if (cb->missing && a->interrupted)
			buf_printf(
			    b,
			    "%llu of %llu accepted jobs had not called back when the run was "
			    "interrupted.\n",
			    (unsigned long long)cb->missing, (unsigned long long)cb->expected);
		else if (cb->missing)
			buf_printf(b,
			           "%llu of %llu accepted jobs never called back within the %.0f s "
			           "callback wait.\n",
			           (unsigned long long)cb->missing,
			           (unsigned long long)cb->expected, o->callback_wait_s);
		else
			buf_printf(b, "Every accepted job called back%s.\n",
			           cb->duplicated ? "" : " exactly once");
		if (cb->duplicated)
			buf_printf(b,
			           "%llu %s called back more than once (delivery is at-least-once; "
			           "deduplicate by webhook-id).\n",
			           (unsigned long long)cb->duplicated,
			           plural(cb->duplicated, "job"));
		if (cb->wrong_result)
			buf_printf(b,
			           "%llu %s disagreed with the request (the result computed here, "
			           "request_id, status or iterations): that is a bug.\n",
			           (unsigned long long)cb->wrong_result,
			           plural(cb->wrong_result, "callback"));
		else if (cb->received)
			buf_puts(b, "Every callback's result matched the work computed here.\n");
		if (cb->checked_signatures && cb->bad_signature)
			buf_printf(b, "%llu %s failed signature verification.\n",
			           (unsigned long long)cb->bad_signature,
			           plural(cb->bad_signature, "callback"));
		else if (cb->checked_signatures && cb->received)
			buf_puts(b, "Every callback's signature verified.\n");
		if (cb->out_of_order)
			buf_printf(
			    b,
			    "%llu %s arrived after one for a later-accepted job: jobs start in "
			    "acceptance order but finish in parallel, so order by created_at "
			    "when it matters.\n",
			    (unsigned long long)cb->out_of_order,
			    plural(cb->out_of_order, "callback"));
	}
	if ((s->ran && s->interrupted) || (a->ran && a->interrupted))
		buf_puts(b, "The run was interrupted: these numbers cover only part of it.\n");
}

/* One line: OK, or what went wrong, counted. */
static void verdict(struct buf *b, const struct report_run *r)
{
	const struct result_mode *modes[2] = {&r->sync, &r->async};
	uint64_t refused = 0, failed = 0, missing = 0, wrong = 0, badsig = 0;
	bool interrupted = false;
	for (int k = 0; k < 2; k++) {
		const struct result_mode *m = modes[k];
		if (!m->ran)
			continue;
		refused += result_refused(m);
		failed += m->failed - result_refused(m);
		interrupted |= m->interrupted;
		if (m->is_async) {
			missing += m->cb.missing;
			wrong += m->cb.wrong_result;
			badsig += m->cb.bad_signature;
		}
	}
	if (r->ok) {
		buf_puts(b, "OK, nothing lost or wrong");
		if (refused)
			buf_printf(b, "; %llu requests refused with 429/503",
			           (unsigned long long)refused);
		return;
	}
	buf_puts(b, "PROBLEMS:");
	const char *sep = " ";
	if (failed) {
		buf_printf(b, "%s%llu requests failed", sep, (unsigned long long)failed);
		sep = ", ";
	}
	if (missing) {
		buf_printf(b, "%s%llu callbacks missing", sep, (unsigned long long)missing);
		sep = ", ";
	}
	if (wrong) {
		buf_printf(b, "%s%llu wrong callbacks", sep, (unsigned long long)wrong);
		sep = ", ";
	}
	if (badsig) {
		buf_printf(b, "%s%llu bad signatures", sep, (unsigned long long)badsig);
		sep = ", ";
	}
	if (interrupted)
		buf_printf(b, "%sinterrupted", sep);
}

/* ---- terminal ---------------------------------------------------------- */

/* Writes text word-wrapped at WRAP columns: the first line after `first`,
 * the others indented by `indent` spaces. */
static void wrap(FILE *f, const char *text, const char *first, size_t indent)
{
	fputs(first, f);
	size_t col = strlen(first), start = col;
	const char *p = text;
	while (*p) {
		while (*p == ' ')
			p++;
		size_t l = strcspn(p, " ");
		if (l == 0)
			break;
		if (col > start && col + 1 + l > WRAP) {
			fprintf(f, "\n%*s", (int)indent, "");
			col = start = indent;
		} else if (col > start) {
			fputc(' ', f);
			col++;
		}
		fwrite(p, 1, l, f);
		col += l;
		p += l;
	}
	fputc('\n', f);
}

static void bar(FILE *f, double v, double max, bool utf8)
{
	static const char *const part[8] = {"", "▏", "▎", "▍", "▌", "▋", "▊", "▉"};
	int eighths = max > 0 ? (int)lround(v / max * BAR_WIDTH * 8) : 0;
	if (eighths == 0 && v > 0)
		eighths = 1;
	int full = eighths / 8, rest = eighths % 8, used = full + (rest ? 1 : 0);
	for (int k = 0; k < full; k++)
		fputs(utf8 ? "█" : "#", f);
	if (rest)
		fputs(utf8 ? part[rest] : (rest >= 4 ? "#" : "."), f);
	for (int k = used; k < BAR_WIDTH; k++)
		fputc(' ', f);
}

static void mode_row(FILE *f, const char *name, const struct result_mode *m)
{
	char req[32] = "-";
	if (m->requested_rate > 0)
		snprintf(req, sizeof(req), "%.1f", m->requested_rate);
	fprintf(f, "%-9s %8llu %8llu %8llu %11.1f %10.1f %12s %8.2f s%s\n", name,
	        (unsigned long long)m->sent, (unsigned long long)m->succeeded,
	        (unsigned long long)m->failed, m->achieved_rate, m->succeeded_rate, req,
	        m->duration_s, m->interrupted ? "  (interrupted)" : "");
}

static void latency_row(FILE *f, const struct series *s)
{
	const struct hist *h = s->h;
	fprintf(f, "%-18s %7llu", s->label, (unsigned long long)h->count);
	if (h->count == 0) {
		fputs("        -        -        -        -        -        -        -\n", f);
		return;
	}
	static const double ps[] = {0, 50, 95, 99, 99.9, 100};
	char v[32];
	for (size_t k = 0; k < sizeof(ps) / sizeof(ps[0]); k++)
		fprintf(f, " %8s", fmt_ms(v, sizeof(v), ms(hist_percentile(h, ps[k]))));
	fprintf(f, " %8s\n", fmt_ms(v, sizeof(v), hist_mean(h) / 1000.0));
}

void report_terminal(FILE *f, const struct report_run *r, bool utf8)
{
	const struct opts *o = r->o;
	char loop[64] = "closed loop";
	if (o->rate > 0)
		snprintf(loop, sizeof(loop), "open loop at %.1f/s", o->rate);
	fprintf(f, "\nconsuma-storm %s: %llu requests per mode against %s\n", CONSUMA_VERSION,
	        (unsigned long long)o->num_requests, o->server_url);
	char threads[32] = "";
	if (o->threads > 1)
		snprintf(threads, sizeof(threads), " on %d threads", o->threads);
	fprintf(f, "mode %s, concurrency %d%s, %lld iterations, %s, seed %llu%s\n\n",
	        opts_mode_name(o->mode), o->concurrency, threads, (long long)o->iterations, loop,
	        (unsigned long long)o->seed, o->raw ? ", raw (no body checks)" : "");

	fprintf(f, "%-9s %8s %8s %8s %11s %10s %12s %10s\n", "requests", "sent", "ok", "failed",
	        "answered/s", "ok/s", "requested/s", "duration");
	if (r->sync.ran)
		mode_row(f, "sync", &r->sync);
	if (r->async.ran)
		mode_row(f, "async", &r->async);

	struct series s[3];
	int n = n_series(r, s);
	fprintf(f, "\n%-18s %7s %8s %8s %8s %8s %8s %8s %8s\n", "latency (ms)", "count", "min",
	        "p50", "p95", "p99", "p99.9", "max", "mean");
	for (int k = 0; k < n; k++)
		latency_row(f, &s[k]);

	struct buf t;
	buf_init(&t, TEXT_MAX);
	fputc('\n', f);
	if (r->sync.ran) {
		causes_text(&t, &r->sync, ALL);
		fprintf(f, "%-16s %s\n", "failures sync", buf_str(&t));
		buf_reset(&t);
	}
	if (r->async.ran) {
		causes_text(&t, &r->async, ALL);
		fprintf(f, "%-16s %s\n", "failures async", buf_str(&t));
		buf_reset(&t);
		const struct result_callbacks *cb = &r->async.cb;
		buf_printf(&t,
		           "%llu expected, %llu received, %llu missing, %llu duplicated, %llu out "
		           "of acceptance order, %llu wrong result, ",
		           (unsigned long long)cb->expected, (unsigned long long)cb->received,
		           (unsigned long long)cb->missing, (unsigned long long)cb->duplicated,
		           (unsigned long long)cb->out_of_order,
		           (unsigned long long)cb->wrong_result);
		if (cb->checked_signatures)
			buf_printf(&t, "%llu bad signature", (unsigned long long)cb->bad_signature);
		else
			buf_puts(&t, "signatures not checked (no --secret)");
		if (cb->unexpected)
			buf_printf(&t, ", %llu unexpected", (unsigned long long)cb->unexpected);
		buf_printf(&t, "; waited %.1f s", cb->waited_s);
		wrap(f, buf_str(&t), "callbacks        ", 17);
		buf_reset(&t);
	}

	double max = 0;
	for (int k = 0; k < n; k++) {
		double v = ms(hist_percentile(s[k].h, 99));
		if (s[k].h->count && v > max)
			max = v;
	}
	if (max > 0) {
		fputs("\n", f);
		static const double ps[] = {50, 95, 99};
		static const char *const pn[] = {"p50", "p95", "p99"};
		for (int p = 0; p < 3; p++) {
			for (int k = 0; k < n; k++) {
				char v[32] = "-";
				double val = ms(hist_percentile(s[k].h, ps[p]));
				if (s[k].h->count)
					fmt_ms(v, sizeof(v), val);
				fprintf(f, "%-5s %-17s ", k == 0 ? pn[p] : "", s[k].label);
				bar(f, s[k].h->count ? val : 0, max, utf8);
				fprintf(f, " %9s ms\n", v);
			}
		}
	}

	sentences(&t, r);
	fputs("\nWhat the numbers say:\n", f);
	const char *p = buf_str(&t);
	while (*p) {
		size_t l = strcspn(p, "\n");
		char *line = cz_strndup(p, l);
		if (line) {
			wrap(f, line, "  - ", 4);
			cz_free(line);
		}
		p += l;
		if (*p == '\n')
			p++;
	}
	buf_reset(&t);
	verdict(&t, r);
	fprintf(f, "\nResult: %s (exit %d)\n", buf_str(&t), r->exit_status);
	buf_free(&t);
}

/* ---- JSON -------------------------------------------------------------- */

static void json_num(struct buf *b, double v)
{
	if (isfinite(v))
		buf_printf(b, "%.3f", v);
	else
		buf_puts(b, "null");
}

static void json_lat(struct buf *b, const char *name, const struct hist *h)
{
	buf_printf(b, ",\"%s\":{\"count\":%llu", name, (unsigned long long)h->count);
	static const double ps[] = {0, 50, 95, 99, 99.9, 100};
	static const char *const pn[] = {"min", "p50", "p95", "p99", "p999", "max"};
	for (int k = 0; k < 6; k++) {
		buf_printf(b, ",\"%s\":", pn[k]);
		if (h->count)
			json_num(b, ms(hist_percentile(h, ps[k])));
		else
			buf_puts(b, "null");
	}
	buf_puts(b, ",\"mean\":");
	if (h->count)
		json_num(b, hist_mean(h) / 1000.0);
	else
		buf_puts(b, "null");
	buf_putc(b, '}');
}

static void json_mode(struct buf *b, const struct result_mode *m)
{
	if (!m->ran) {
		buf_puts(b, "null");
		return;
	}
	buf_printf(b,
	           "{\"sent\":%llu,\"succeeded\":%llu,\"failed\":%llu,\"refused\":%llu,"
	           "\"refused_without_retry_after\":%llu,\"failures\":{",
	           (unsigned long long)m->sent, (unsigned long long)m->succeeded,
	           (unsigned long long)m->failed, (unsigned long long)result_refused(m),
	           (unsigned long long)m->refused_no_retry_after);
	for (int c = 0; c < CAUSE_COUNT; c++)
		buf_printf(b, "%s\"%s\":%llu", c ? "," : "", cause_key[c],
		           (unsigned long long)m->cause[c]);
	buf_puts(b, ",\"by_status\":{");
	const char *sep = "";
	for (int s = 0; s < RESULT_STATUS_MAX; s++)
		if (m->http_status[s]) {
			buf_printf(b, "%s\"%d\":%llu", sep, s,
			           (unsigned long long)m->http_status[s]);
			sep = ",";
		}
	buf_puts(b, "}},\"duration_s\":");
	json_num(b, m->duration_s);
	buf_puts(b, ",\"requested_rate\":");
	if (m->requested_rate > 0)
		json_num(b, m->requested_rate);
	else
		buf_puts(b, "null");
	buf_puts(b, ",\"achieved_rate\":");
	json_num(b, m->achieved_rate);
	buf_puts(b, ",\"succeeded_rate\":");
	json_num(b, m->succeeded_rate);
	buf_printf(b, ",\"interrupted\":%s", m->interrupted ? "true" : "false");
	json_lat(b, "latency_ms", &m->latency);
	if (m->is_async) {
		json_lat(b, "callback_latency_ms", &m->callback_latency);
		const struct result_callbacks *cb = &m->cb;
		buf_printf(
		    b,
		    ",\"callbacks\":{\"expected\":%llu,\"received\":%llu,\"missing\":%llu,"
		    "\"duplicated\":%llu,\"out_of_order\":%llu,\"wrong_result\":%llu,"
		    "\"bad_signature\":%llu,\"unexpected\":%llu,\"waited_s\":",
		    (unsigned long long)cb->expected, (unsigned long long)cb->received,
		    (unsigned long long)cb->missing, (unsigned long long)cb->duplicated,
		    (unsigned long long)cb->out_of_order, (unsigned long long)cb->wrong_result,
		    (unsigned long long)cb->bad_signature, (unsigned long long)cb->unexpected);
		json_num(b, cb->waited_s);
		buf_putc(b, '}');
	}
	buf_putc(b, '}');
}

static void json_str(struct buf *b, const char *s)
{
	buf_json_string(b, s, strlen(s));
}

static enum report_err write_file(const char *path, const struct buf *b)
{
	if (b->err != BUF_OK)
		return REPORT_NOMEM;
	FILE *f = fopen(path, "w");
	if (!f)
		return REPORT_IO;
	size_t w = fwrite(b->data ? b->data : "", 1, b->len, f);
	int e1 = ferror(f);
	int e2 = fclose(f);
	return (w != b->len || e1 || e2) ? REPORT_IO : REPORT_OK;
}

enum report_err report_json(const char *path, const struct report_run *r)
{
	const struct opts *o = r->o;
	struct buf b;
	buf_init(&b, JSON_MAX);
	buf_puts(&b, "{\"schema\":\"consuma-storm/1\",\"version\":\"" CONSUMA_VERSION "\"");
	buf_puts(&b, ",\"started_at\":");
	json_str(&b, r->started_at);
	buf_printf(&b, ",\"ok\":%s,\"exit_status\":%d,\"interrupted\":%s", r->ok ? "true" : "false",
	           r->exit_status,
	           (r->sync.interrupted || r->async.interrupted) ? "true" : "false");
	buf_puts(&b, ",\"settings\":{\"server_url\":");
	json_str(&b, o->server_url);
	buf_printf(&b,
	           ",\"num_requests\":%llu,\"concurrency\":%d,\"mode\":\"%s\",\"iterations\":%lld",
	           (unsigned long long)o->num_requests, o->concurrency, opts_mode_name(o->mode),
	           (long long)o->iterations);
	buf_printf(&b, ",\"threads\":%d", o->threads);
	buf_printf(&b, ",\"loop\":\"%s\",\"rate\":", o->rate > 0 ? "open" : "closed");
	if (o->rate > 0)
		json_num(&b, o->rate);
	else
		buf_puts(&b, "null");
	buf_puts(&b, ",\"timeout_s\":");
	json_num(&b, o->timeout_s);
	buf_puts(&b, ",\"callback_host\":");
	json_str(&b, o->callback_host);
	buf_printf(&b, ",\"callback_port\":%d,\"callback_wait_s\":", o->callback_port);
	json_num(&b, o->callback_wait_s);
	buf_printf(&b, ",\"seed\":%llu,\"signatures_checked\":%s,\"raw\":%s}",
	           (unsigned long long)o->seed, o->secret ? "true" : "false",
	           o->raw ? "true" : "false");
	buf_puts(&b, ",\"machine\":{\"uname\":");
	json_str(&b, r->uname);
	buf_printf(&b, ",\"nproc\":%ld,\"cpu\":", r->nproc);
	json_str(&b, r->cpu);
	buf_puts(&b, "},\"sync\":");
	json_mode(&b, &r->sync);
	buf_puts(&b, ",\"async\":");
	json_mode(&b, &r->async);
	buf_puts(&b, "}\n");
	enum report_err rc = write_file(path, &b);
	buf_free(&b);
	return rc;
}

/* ---- HTML -------------------------------------------------------------- */

static void html_text(struct buf *b, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&':
			buf_puts(b, "&amp;");
			break;
		case '<':
			buf_puts(b, "&lt;");
			break;
		case '>':
			buf_puts(b, "&gt;");
			break;
		case '"':
			buf_puts(b, "&quot;");
			break;
		case '\'':
			buf_puts(b, "&#39;");
			break;
		default:
			if ((unsigned char)*s < 0x20 && *s != '\n' && *s != '\t')
				buf_putc(b, '?');
			else
				buf_putc(b, *s);
		}
	}
}

static void html_kv(struct buf *b, const char *k, const char *v)
{
	buf_puts(b, "<tr><th>");
	html_text(b, k);
	buf_puts(b, "</th><td>");
	html_text(b, v);
	buf_puts(b, "</td></tr>\n");
}

#define SVG_W  760
#define SVG_H  440
#define PAD_L  72
#define PAD_R  24
#define PAD_T  24
#define PAD_B  76
#define POINTS 240

/* Percentile curves: x is -log10(1 - p) (0 %, 90 %, 99 %, 99.9 % equally
 * spaced, the HdrHistogram convention), y is log10 of the latency. */
static void svg_chart(struct buf *b, const struct series *s, int n)
{
	double lo = INFINITY, hi = 0;
	uint64_t most = 0;
	for (int k = 0; k < n; k++) {
		if (!s[k].h->count)
			continue;
		double mn = ms(s[k].h->min_us), mx = ms(s[k].h->max_us);
		lo = fmin(lo, mn < 0.01 ? 0.01 : mn);
		hi = fmax(hi, mx);
		if (s[k].h->count > most)
			most = s[k].h->count;
	}
	buf_printf(b,
	           "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
	           "viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"latency by percentile\">\n",
	           SVG_W, SVG_H, SVG_W, SVG_H);
	buf_printf(b, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n",
	           SVG_W, SVG_H);
	if (most == 0) {
		buf_puts(b, "<text x=\"40\" y=\"40\">no latency samples</text>\n</svg>\n");
		return;
	}
	double y0 = floor(log10(lo)), y1 = ceil(log10(hi));
	if (y1 <= y0)
		y1 = y0 + 1;
	double xmax = ceil(log10((double)most));
	if (xmax < 2)
		xmax = 2;
	if (xmax > 5)
		xmax = 5;
	const double pw = SVG_W - PAD_L - PAD_R, ph = SVG_H - PAD_T - PAD_B;
#define SX(x) (PAD_L + (x) / xmax * pw)
#define SY(v) (PAD_T + ph - (log10(v) - y0) / (y1 - y0) * ph)
	buf_puts(b, "<g font-family=\"sans-serif\" font-size=\"12\" fill=\"#333333\">\n");
	for (double d = y0; d <= y1 + 1e-9; d += 1) {
		double v = pow(10, d);
		char label[32];
		if (v >= 1000)
			snprintf(label, sizeof(label), "%g s", v / 1000);
		else
			snprintf(label, sizeof(label), "%g ms", v);
		buf_printf(b,
		           "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#dddddd\"/>"
		           "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
		           PAD_L, SY(v), SVG_W - PAD_R, SY(v), PAD_L - 6, SY(v) + 4, label);
	}
	static const struct {
		double x;
		const char *label;
	} ticks[] = {{0, "0%"},    {0.30103, "50%"}, {1, "90%"},    {2, "99%"},
	             {3, "99.9%"}, {4, "99.99%"},    {5, "99.999%"}};
	for (size_t k = 0; k < sizeof(ticks) / sizeof(ticks[0]); k++) {
		if (ticks[k].x > xmax + 1e-9)
			break;
		buf_printf(
		    b,
		    "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#dddddd\"/>"
		    "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
		    SX(ticks[k].x), PAD_T, SX(ticks[k].x), PAD_T + ph, SX(ticks[k].x),
		    PAD_T + ph + 16, ticks[k].label);
	}
	buf_printf(b,
	           "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">percentile (log scale "
	           "toward the tail)</text>\n",
	           PAD_L + pw / 2, SVG_H - 36);
	buf_printf(b,
	           "<text x=\"14\" y=\"%.1f\" text-anchor=\"middle\" transform=\"rotate(-90 14 "
	           "%.1f)\">latency (log scale)</text>\n",
	           PAD_T + ph / 2, PAD_T + ph / 2);
	buf_printf(b,
	           "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
	           "stroke=\"#999999\"/>\n</g>\n",
	           PAD_L, PAD_T, pw, ph);
	for (int k = 0; k < n; k++) {
		const struct hist *h = s[k].h;
		if (!h->count)
			continue;
		buf_printf(
		    b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s%s%s points=\"",
		    s[k].color, *s[k].dash ? " stroke-dasharray=\"" : "", s[k].dash,
		    *s[k].dash ? "\"" : "");
		for (int i = 0; i <= POINTS; i++) {
			double x = xmax * i / POINTS;
			double p = 100.0 * (1.0 - pow(10, -x));
			double v = ms(hist_percentile(h, p));
			if (v < pow(10, y0))
				v = pow(10, y0);
			buf_printf(b, "%s%.1f,%.1f", i ? " " : "", SX(x), SY(v));
		}
		buf_puts(b, "\"/>\n");
		/* the legend sits under the plot, where no curve can hide it */
		int lx = PAD_L + k * 200, ly = SVG_H - 10;
		buf_printf(
		    b,
		    "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" "
		    "stroke-width=\"3\"%s%s%s/><text x=\"%d\" y=\"%d\" font-family=\"sans-serif\" "
		    "font-size=\"12\">",
		    lx, ly - 4, lx + 28, ly - 4, s[k].color,
		    *s[k].dash ? " stroke-dasharray=\"" : "", s[k].dash, *s[k].dash ? "\"" : "",
		    lx + 34, ly);
		html_text(b, s[k].label);
		buf_puts(b, "</text>\n");
	}
#undef SX
#undef SY
	buf_puts(b, "</svg>\n");
}

static void html_mode_row(struct buf *b, const char *name, const struct result_mode *m)
{
	char req[32] = "-";
	if (m->requested_rate > 0)
		snprintf(req, sizeof(req), "%.1f", m->requested_rate);
	buf_printf(b,
	           "<tr><th>%s</th><td>%llu</td><td>%llu</td><td>%llu</td><td>%.1f</td>"
	           "<td>%.1f</td><td>%s</td><td>%.2f s</td><td class=\"l\">",
	           name, (unsigned long long)m->sent, (unsigned long long)m->succeeded,
	           (unsigned long long)m->failed, m->achieved_rate, m->succeeded_rate, req,
	           m->duration_s);
	struct buf t;
	buf_init(&t, TEXT_MAX);
	causes_text(&t, m, ALL);
	html_text(b, buf_str(&t));
	buf_free(&t);
	buf_puts(b, "</td></tr>\n");
}

enum report_err report_html(const char *path, const struct report_run *r)
{
	const struct opts *o = r->o;
	struct buf b;
	buf_init(&b, HTML_MAX);
	buf_puts(&b, "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n"
	             "<head>\n<meta charset=\"utf-8\"/>\n<title>consuma storm report</title>\n"
	             "<style>\nbody{font-family:sans-serif;margin:2em;color:#222;max-width:60em}\n"
	             "table{border-collapse:collapse;margin:0.5em 0 1.5em}\n"
	             "th,td{border:1px solid #ccc;padding:0.25em 0.6em;text-align:right}\n"
	             "th{background:#f4f4f4}\ntd.l,th.l{text-align:left}\n"
	             ".ok{color:#1a7f37}.bad{color:#c62828}\n</style>\n</head>\n<body>\n");
	buf_puts(&b, "<h1>consuma storm report</h1>\n<p>");
	html_text(&b, r->started_at);
	buf_printf(&b, " &#8212; <strong class=\"%s\">%s</strong> (exit %d)</p>\n",
	           r->ok ? "ok" : "bad", r->ok ? "nothing lost or wrong" : "problems found",
	           r->exit_status);

	struct series s[3];
	int n = n_series(r, s);
	buf_puts(&b, "<h2>Latency by percentile</h2>\n");
	svg_chart(&b, s, n);

	struct buf t;
	buf_init(&t, TEXT_MAX);
	sentences(&t, r);
	buf_puts(&b, "<h2>What the numbers say</h2>\n<ul>\n");
	const char *p = buf_str(&t);
	while (*p) {
		size_t l = strcspn(p, "\n");
		char *line = cz_strndup(p, l);
		if (line) {
			buf_puts(&b, "<li>");
			html_text(&b, line);
			buf_puts(&b, "</li>\n");
			cz_free(line);
		}
		p += l;
		if (*p == '\n')
			p++;
	}
	buf_puts(&b, "</ul>\n");
	buf_free(&t);

	buf_puts(&b,
	         "<h2>Requests</h2>\n<table>\n<tr><th class=\"l\">mode</th><th>sent</th>"
	         "<th>ok</th><th>failed</th><th>answered/s</th><th>ok/s</th><th>requested/s</th>"
	         "<th>duration</th><th class=\"l\">failures</th></tr>\n");
	if (r->sync.ran)
		html_mode_row(&b, "sync", &r->sync);
	if (r->async.ran)
		html_mode_row(&b, "async", &r->async);
	buf_puts(&b, "</table>\n<h2>Latency (ms)</h2>\n<table>\n<tr><th class=\"l\">"
	             "measure</th><th>count</th><th>min</th><th>p50</th><th>p95</th><th>p99</th>"
	             "<th>p99.9</th><th>max</th><th>mean</th></tr>\n");
	for (int k = 0; k < n; k++) {
		const struct hist *h = s[k].h;
		buf_puts(&b, "<tr><th class=\"l\">");
		html_text(&b, s[k].label);
		buf_printf(&b, "</th><td>%llu</td>", (unsigned long long)h->count);
		static const double ps[] = {0, 50, 95, 99, 99.9, 100};
		char v[32];
		for (int q = 0; q < 6; q++)
			buf_printf(&b, "<td>%s</td>",
			           h->count ? fmt_ms(v, sizeof(v), ms(hist_percentile(h, ps[q])))
			                    : "-");
		buf_printf(&b, "<td>%s</td></tr>\n",
		           h->count ? fmt_ms(v, sizeof(v), hist_mean(h) / 1000.0) : "-");
	}
	buf_puts(&b, "</table>\n");
	if (r->async.ran) {
		const struct result_callbacks *cb = &r->async.cb;
		buf_printf(
		    &b,
		    "<h2>Callbacks</h2>\n<table>\n<tr><th>expected</th><th>received</th>"
		    "<th>missing</th><th>duplicated</th><th>out of order</th><th>wrong "
		    "result</th><th>bad signature</th><th>unexpected</th><th>waited</th></tr>\n"
		    "<tr><td>%llu</td><td>%llu</td><td>%llu</td><td>%llu</td><td>%llu</td>"
		    "<td>%llu</td><td>%s%llu</td><td>%llu</td><td>%.1f s</td></tr>\n</table>\n",
		    (unsigned long long)cb->expected, (unsigned long long)cb->received,
		    (unsigned long long)cb->missing, (unsigned long long)cb->duplicated,
		    (unsigned long long)cb->out_of_order, (unsigned long long)cb->wrong_result,
		    cb->checked_signatures ? "" : "not checked: ",
		    (unsigned long long)cb->bad_signature, (unsigned long long)cb->unexpected,
		    cb->waited_s);
	}

	char v[64];
	buf_puts(&b, "<h2>Settings</h2>\n<table>\n");
	html_kv(&b, "server URL", o->server_url);
	snprintf(v, sizeof(v), "%s%s", opts_mode_name(o->mode), o->raw ? " (raw)" : "");
	html_kv(&b, "mode", v);
	snprintf(v, sizeof(v), "%llu per mode", (unsigned long long)o->num_requests);
	html_kv(&b, "requests", v);
	snprintf(v, sizeof(v), "%d", o->concurrency);
	html_kv(&b, "concurrency", v);
	snprintf(v, sizeof(v), "%d", o->threads);
	html_kv(&b, "threads", v);
	snprintf(v, sizeof(v), "%lld", (long long)o->iterations);
	html_kv(&b, "iterations", v);
	if (o->rate > 0)
		snprintf(v, sizeof(v), "open, %.1f requests/s", o->rate);
	else
		snprintf(v, sizeof(v), "closed");
	html_kv(&b, "loop", v);
	snprintf(v, sizeof(v), "%.1f s", o->timeout_s);
	html_kv(&b, "timeout", v);
	snprintf(v, sizeof(v), "%s:%d, wait %.1f s", o->callback_host, o->callback_port,
	         o->callback_wait_s);
	html_kv(&b, "callbacks", v);
	html_kv(&b, "signatures", o->secret ? "verified" : "not checked");
	snprintf(v, sizeof(v), "%llu", (unsigned long long)o->seed);
	html_kv(&b, "seed", v);
	buf_puts(&b, "</table>\n<h2>Machine</h2>\n<table>\n");
	html_kv(&b, "uname", r->uname);
	snprintf(v, sizeof(v), "%ld", r->nproc);
	html_kv(&b, "online processors", v);
	if (r->cpu[0])
		html_kv(&b, "cpu", r->cpu);
	html_kv(&b, "consuma-storm", CONSUMA_VERSION);
	buf_puts(&b, "</table>\n</body>\n</html>\n");
	enum report_err rc = write_file(path, &b);
	buf_free(&b);
	return rc;
}
