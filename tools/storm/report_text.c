/*
 * report_text: the terminal report (report_terminal): tables, bars, the
 * timeline table, the sweep table, the thresholds and the sentences.
 */
#include "report_int.h"

#include <math.h>
#include <string.h>

#include "alloc.h"

#define BAR_WIDTH    40
#define WRAP         78
#define TIMELINE_MIN 4  /* the table shows for runs longer than this many intervals */
#define TABLE_ROWS   30 /* at most this many rows: neighbours are summed */

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
		fprintf(f, " %8s", report_fmt_ms(v, sizeof(v), ms(hist_percentile(h, ps[k]))));
	fprintf(f, " %8s\n", report_fmt_ms(v, sizeof(v), hist_mean(h) / 1000.0));
}

/* Each line of text as an item, word-wrapped when wrapped is true (the
 * thresholds are not: one line each stays greppable). */
static void print_lines(FILE *f, const char *text, bool wrapped)
{
	for (const char *p = text; *p;) {
		size_t l = strcspn(p, "\n");
		char *line = cz_strndup(p, l);
		if (line && wrapped)
			wrap(f, line, "  - ", 4);
		else if (line)
			fprintf(f, "  - %s\n", line);
		cz_free(line);
		p += l;
		if (*p == '\n')
			p++;
	}
}

/* " 12.3" ms, or "-" without successes. */
static const char *cell_ms(char *out, size_t len, double v)
{
	if (isnan(v))
		snprintf(out, len, "-");
	else
		report_fmt_ms(out, len, v);
	return out;
}

/* The timeline, at most TABLE_ROWS rows (neighbouring intervals summed
 * when there are more; their p's are then the worst of them). */
static void timeline_table(FILE *f, const struct report_run *r)
{
	const struct timeline *tl = r->tl;
	if (!tl || tl_count(tl) <= TIMELINE_MIN)
		return;
	size_t n = tl_count(tl);
	size_t per = (n + TABLE_ROWS - 1) / TABLE_ROWS;
	double w = tl_width_s(tl);
	fprintf(f, "\ntimeline (%g s per row)", w * (double)per);
	fputs("   sent/ok/refused/failed, p50 and p99 ms per mode\n", f);
	fprintf(f, "%8s", "t (s)");
	if (r->sync.ran)
		fprintf(f, "  %-23s %7s %7s", "sync", "p50", "p99");
	if (r->async.ran)
		fprintf(f, "  %-23s %7s %7s %6s", "async", "p50", "p99", "cb");
	fprintf(f, " %6s %5s\n", "queue", "busy");
	for (size_t i = 0; i < n; i += per) {
		uint64_t c[2][4] = {{0}}, cb = 0;
		double p50[2] = {NAN, NAN}, p99[2] = {NAN, NAN};
		int64_t queue = -1, busy = -1;
		for (size_t j = i; j < i + per && j < n; j++) {
			const struct tl_interval *iv = tl_at(tl, j);
			for (int m = 0; m < 2; m++) {
				c[m][0] += iv->mode[m].sent;
				c[m][1] += iv->mode[m].ok;
				c[m][2] += iv->mode[m].refused;
				c[m][3] += iv->mode[m].failed;
				double a = report_tl_pct_ms(iv, m, 50),
				       b = report_tl_pct_ms(iv, m, 99);
				if (!isnan(a))
					p50[m] = isnan(p50[m]) ? a : fmax(p50[m], a);
				if (!isnan(b))
					p99[m] = isnan(p99[m]) ? b : fmax(p99[m], b);
			}
			cb += iv->callbacks;
			if (iv->server.sampled) {
				if (iv->server.queue_depth > queue)
					queue = iv->server.queue_depth;
				if (iv->server.active_workers > busy)
					busy = iv->server.active_workers;
			}
		}
		fprintf(f, "%8.1f", (double)i * w);
		char x[32], y[32], cell[64];
		for (int m = 0; m < 2; m++) {
			const struct result_mode *rm = m ? &r->async : &r->sync;
			if (!rm->ran)
				continue;
			snprintf(cell, sizeof(cell), "%llu/%llu/%llu/%llu",
			         (unsigned long long)c[m][0], (unsigned long long)c[m][1],
			         (unsigned long long)c[m][2], (unsigned long long)c[m][3]);
			fprintf(f, "  %-23s %7s %7s", cell, cell_ms(x, sizeof(x), p50[m]),
			        cell_ms(y, sizeof(y), p99[m]));
			if (m)
				fprintf(f, " %6llu", (unsigned long long)cb);
		}
		if (queue >= 0)
			fprintf(f, " %6lld", (long long)queue);
		else
			fprintf(f, " %6s", "-");
		if (busy >= 0)
			fprintf(f, " %5lld\n", (long long)busy);
		else
			fprintf(f, " %5s\n", "-");
	}
}

static void sweep_table(FILE *f, const struct report_run *r)
{
	if (r->n_steps == 0)
		return;
	fprintf(f, "\n%-10s %-6s %7s %10s %8s %7s %7s %8s %8s %8s %8s\n", "sweep (/s)", "mode",
	        "sent", "answered/s", "ok/s", "refused", "failed", "p50 ms", "p99 ms", "cb p50",
	        "cb p99");
	for (int i = 0; i < r->n_steps; i++) {
		const struct report_step *st = &r->steps[i];
		for (int m = 0; m < 2; m++) {
			const struct result_mode *rm = m ? &st->async : &st->sync;
			if (!rm->ran)
				continue;
			char c[STEP_CELLS][STEP_CELL_LEN];
			report_step_cells(rm, c);
			fprintf(f, "%-10g %-6s %7llu %10.1f %8.1f %7llu %7llu %8s %8s %8s %8s\n",
			        st->rate, m ? "async" : "sync", (unsigned long long)rm->sent,
			        rm->achieved_rate, rm->succeeded_rate,
			        (unsigned long long)result_refused(rm),
			        (unsigned long long)rm->failed, c[0], c[1], c[2], c[3]);
		}
	}
}

void report_terminal(FILE *f, const struct report_run *r, bool utf8)
{
	const struct opts *o = r->o;
	char loop[64] = "closed loop";
	if (o->rate > 0)
		snprintf(loop, sizeof(loop), "open loop at %.1f/s", o->rate);
	fprintf(f, "\nconsuma-storm %s: %llu requests %s%s against %s\n", CONSUMA_VERSION,
	        (unsigned long long)o->num_requests, o->mode == OPTS_MIXED ? "in all" : "per mode",
	        o->n_sweep > 0 ? " per rate" : "", o->server_url);
	char threads[32] = "";
	if (o->threads > 1)
		snprintf(threads, sizeof(threads), " on %d threads", o->threads);
	char mode[48];
	if (o->mode == OPTS_MIXED)
		snprintf(mode, sizeof(mode), "mixed (%.0f %% async)", o->mix * 100);
	else
		snprintf(mode, sizeof(mode), "%s", opts_mode_name(o->mode));
	if (o->n_sweep > 0)
		snprintf(loop, sizeof(loop), "open loop, sweep of %d rates", o->n_sweep);
	fprintf(f, "mode %s, concurrency %d%s, %lld iterations, %s, seed %llu%s\n\n", mode,
	        o->concurrency, threads, (long long)o->iterations, loop,
	        (unsigned long long)o->seed, o->raw ? ", raw (no body checks)" : "");

	fprintf(f, "%-9s %8s %8s %8s %11s %10s %12s %10s\n", "requests", "sent", "ok", "failed",
	        "answered/s", "ok/s", "requested/s", "duration");
	if (r->sync.ran)
		mode_row(f, "sync", &r->sync);
	if (r->async.ran)
		mode_row(f, "async", &r->async);

	struct series s[3];
	int n = report_series(r, s);
	fprintf(f, "\n%-18s %7s %8s %8s %8s %8s %8s %8s %8s\n", "latency (ms)", "count", "min",
	        "p50", "p95", "p99", "p99.9", "max", "mean");
	for (int k = 0; k < n; k++)
		latency_row(f, &s[k]);

	struct buf t;
	buf_init(&t, TEXT_MAX);
	fputc('\n', f);
	if (r->sync.ran) {
		report_causes(&t, &r->sync, ALL);
		fprintf(f, "%-16s %s\n", "failures sync", buf_str(&t));
		buf_reset(&t);
	}
	if (r->async.ran) {
		report_causes(&t, &r->async, ALL);
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
		if (cb->span_s > 0)
			buf_printf(&t, "; first POST to last callback %.2f s (%.0f jobs/s)",
			           cb->span_s, (double)cb->received / cb->span_s);
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
					report_fmt_ms(v, sizeof(v), val);
				fprintf(f, "%-5s %-17s ", k == 0 ? pn[p] : "", s[k].label);
				bar(f, s[k].h->count ? val : 0, max, utf8);
				fprintf(f, " %9s ms\n", v);
			}
		}
	}

	timeline_table(f, r);
	sweep_table(f, r);
	if (o->n_thresholds > 0) {
		buf_reset(&t);
		report_thresholds(&t, r);
		fputs("\nThresholds:\n", f);
		print_lines(f, buf_str(&t), false);
	}
	buf_reset(&t);
	report_sentences(&t, r);
	fputs("\nWhat the numbers say:\n", f);
	print_lines(f, buf_str(&t), true);
	buf_reset(&t);
	report_verdict(&t, r);
	fprintf(f, "\nResult: %s (exit %d)\n", buf_str(&t), r->exit_status);
	buf_free(&t);
}
