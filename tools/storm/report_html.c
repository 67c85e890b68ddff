/*
 * report_html: --html, one self-contained page (no scripts, no external
 * files): the charts, the sentences, the tables, the settings, the machine.
 */
#include "report_int.h"

#include <math.h>
#include <string.h>

#include "alloc.h"

#define HTML_MAX (8 * 1024 * 1024)

void report_html_text(struct buf *b, const char *s)
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

void report_html_kv(struct buf *b, const char *k, const char *v)
{
	buf_puts(b, "<tr><th>");
	report_html_text(b, k);
	buf_puts(b, "</th><td>");
	report_html_text(b, v);
	buf_puts(b, "</td></tr>\n");
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
	report_causes(&t, m, ALL);
	report_html_text(b, buf_str(&t));
	buf_free(&t);
	buf_puts(b, "</td></tr>\n");
}

void report_html_head(struct buf *b, const char *title)
{
	buf_puts(b, "<!DOCTYPE html>\n<html xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n"
	            "<head>\n<meta charset=\"utf-8\"/>\n<title>");
	report_html_text(b, title);
	buf_puts(b, "</title>\n<style>\nbody{font-family:sans-serif;margin:2em;color:#222;"
	            "max-width:100em}\n"
	            "table{border-collapse:collapse;margin:0.5em 0 1.5em}\n"
	            "th,td{border:1px solid #ccc;padding:0.25em 0.6em;text-align:right}\n"
	            "th{background:#f4f4f4}\ntd.l,th.l{text-align:left}\n"
	            ".ok{color:#1a7f37}.bad{color:#c62828}\n"
	            ".charts{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}\n"
	            "svg{border:1px solid #eee}\n</style>\n</head>\n<body>\n");
}

void report_html_lines(struct buf *b, const char *text)
{
	buf_puts(b, "<ul>\n");
	for (const char *p = text; *p;) {
		size_t l = strcspn(p, "\n");
		char *line = cz_strndup(p, l);
		if (line) {
			buf_puts(b, "<li>");
			report_html_text(b, line);
			buf_puts(b, "</li>\n");
			cz_free(line);
		}
		p += l;
		if (*p == '\n')
			p++;
	}
	buf_puts(b, "</ul>\n");
}

/* The timeline as columns: x (interval start, s) and what the charts draw. */
struct tl_cols {
	size_t n;
	double *t;
	double *v[16];
};

enum col {
	C_SYNC_OK,
	C_SYNC_REFUSED,
	C_SYNC_OTHER,
	C_ASYNC_OK,
	C_ASYNC_REFUSED,
	C_ASYNC_OTHER,
	C_SYNC_P50,
	C_SYNC_P99,
	C_ASYNC_P50,
	C_ASYNC_P99,
	C_CALLBACKS,
	C_QUEUE,
	C_BUSY,
	C_COLS,
};

static bool cols_fill(struct tl_cols *c, const struct timeline *tl)
{
	memset(c, 0, sizeof(*c));
	c->n = tl_count(tl);
	double w = tl_width_s(tl);
	c->t = cz_calloc(c->n ? c->n : 1, sizeof(double));
	bool ok = c->t != NULL;
	for (int k = 0; k < C_COLS; k++) {
		c->v[k] = cz_calloc(c->n ? c->n : 1, sizeof(double));
		ok = ok && c->v[k];
	}
	if (!ok)
		return false;
	for (size_t i = 0; i < c->n; i++) {
		const struct tl_interval *iv = tl_at(tl, i);
		c->t[i] = (double)i * w;
		for (int m = 0; m < 2; m++) {
			const struct tl_counts *k = &iv->mode[m];
			c->v[m ? C_ASYNC_OK : C_SYNC_OK][i] = (double)k->ok / w;
			c->v[m ? C_ASYNC_REFUSED : C_SYNC_REFUSED][i] = (double)k->refused / w;
			c->v[m ? C_ASYNC_OTHER : C_SYNC_OTHER][i] =
			    (double)(k->failed - k->refused) / w;
			c->v[m ? C_ASYNC_P50 : C_SYNC_P50][i] = report_tl_pct_ms(iv, m, 50);
			c->v[m ? C_ASYNC_P99 : C_SYNC_P99][i] = report_tl_pct_ms(iv, m, 99);
		}
		c->v[C_CALLBACKS][i] = (double)iv->callbacks / w;
		c->v[C_QUEUE][i] = iv->server.sampled && iv->server.queue_depth >= 0
		                       ? (double)iv->server.queue_depth
		                       : NAN;
		c->v[C_BUSY][i] = iv->server.sampled && iv->server.active_workers >= 0
		                      ? (double)iv->server.active_workers
		                      : NAN;
	}
	return true;
}

static void cols_free(struct tl_cols *c)
{
	cz_free(c->t);
	for (int k = 0; k < C_COLS; k++)
		cz_free(c->v[k]);
}

static struct chart_line line(const char *label, const char *color, const char *dash,
                              const struct tl_cols *c, enum col k)
{
	return (struct chart_line){label, color, dash, c->t, c->v[k], c->n};
}

/* Throughput by outcome per mode, p50/p99 per mode, queue and callbacks. */
static void time_charts(struct buf *b, const struct report_run *r)
{
	struct tl_cols c;
	if (!r->tl || tl_count(r->tl) == 0)
		return;
	if (!cols_fill(&c, r->tl)) {
		cols_free(&c);
		return;
	}
	buf_printf(b, "<h2>Over time (%g s intervals)</h2>\n<div class=\"charts\">\n",
	           tl_width_s(r->tl));
	for (int m = 0; m < 2; m++) {
		const struct result_mode *rm = m ? &r->async : &r->sync;
		if (!rm->ran)
			continue;
		struct chart_line l[3] = {
		    line(m ? "202 accepted/s" : "200 answered/s", m ? COLOR_ASYNC : COLOR_SYNC, "",
		         &c, m ? C_ASYNC_OK : C_SYNC_OK),
		    line("refused (429/503)/s", COLOR_REFUSED, "6 3", &c,
		         m ? C_ASYNC_REFUSED : C_SYNC_REFUSED),
		    line("other failures/s", COLOR_FAILED, "2 2", &c,
		         m ? C_ASYNC_OTHER : C_SYNC_OTHER),
		};
		struct chart ch = {m ? "async throughput by outcome over time"
		                     : "sync throughput by outcome over time",
		                   m ? "/async: requests per second by outcome"
		                     : "/sync: requests per second by outcome",
		                   "seconds since the first request",
		                   "requests/s",
		                   false,
		                   false,
		                   l,
		                   3,
		                   NULL,
		                   0};
		report_svg_lines(b, &ch);
	}
	struct chart_line lat[4];
	int nl = 0;
	if (r->sync.ran) {
		lat[nl++] = line("sync p50", COLOR_SYNC, "6 3", &c, C_SYNC_P50);
		lat[nl++] = line("sync p99", COLOR_SYNC, "", &c, C_SYNC_P99);
	}
	if (r->async.ran) {
		lat[nl++] = line("async accept p50", COLOR_ASYNC, "6 3", &c, C_ASYNC_P50);
		lat[nl++] = line("async accept p99", COLOR_ASYNC, "", &c, C_ASYNC_P99);
	}
	struct chart ch = {"latency p50 and p99 per mode over time",
	                   "Latency per interval: p50 and p99",
	                   "seconds since the first request",
	                   "latency, ms (log scale)",
	                   false,
	                   true,
	                   lat,
	                   nl,
	                   NULL,
	                   0};
	report_svg_lines(b, &ch);
	struct chart_line q[3];
	int nq = 0;
	q[nq++] = line("queue depth (/healthz)", COLOR_QUEUE, "", &c, C_QUEUE);
	q[nq++] = line("busy deliverer workers", COLOR_FAILED, "2 2", &c, C_BUSY);
	if (r->async.ran)
		q[nq++] = line("callbacks received/s", COLOR_CALLBACK, "6 3", &c, C_CALLBACKS);
	struct chart cq = {"queue depth and callbacks over time",
	                   "Server queue and callbacks",
	                   "seconds since the first request",
	                   "jobs, callbacks/s",
	                   false,
	                   false,
	                   q,
	                   nq,
	                   NULL,
	                   0};
	report_svg_lines(b, &cq);
	buf_puts(b, "</div>\n");
	cols_free(&c);
}

/* Latency against offered rate, one line per series and percentile. */
static void sweep_chart(struct buf *b, const struct report_run *r)
{
	int n = r->n_steps;
	if (n == 0)
		return;
	double *x = cz_calloc((size_t)n, sizeof(double));
	double *y[6];
	bool ok = x != NULL;
	for (int k = 0; k < 6; k++) {
		y[k] = cz_calloc((size_t)n, sizeof(double));
		ok = ok && y[k];
	}
	if (ok) {
		for (int i = 0; i < n; i++) {
			const struct report_step *st = &r->steps[i];
			const struct hist *h[3] = {&st->sync.latency, &st->async.latency,
			                           &st->async.callback_latency};
			x[i] = st->rate;
			for (int k = 0; k < 3; k++) {
				y[2 * k][i] = h[k]->count ? ms(hist_percentile(h[k], 50)) : NAN;
				y[2 * k + 1][i] = h[k]->count ? ms(hist_percentile(h[k], 99)) : NAN;
			}
		}
		struct chart_line l[6];
		int nl = 0;
		const size_t un = (size_t)n;
		if (r->sync.ran) {
			l[nl++] = (struct chart_line){"sync p50", COLOR_SYNC, "6 3", x, y[0], un};
			l[nl++] = (struct chart_line){"sync p99", COLOR_SYNC, "", x, y[1], un};
		}
		if (r->async.ran) {
			l[nl++] = (struct chart_line){
			    "async accept p50", COLOR_ASYNC, "6 3", x, y[2], un};
			l[nl++] =
			    (struct chart_line){"async accept p99", COLOR_ASYNC, "", x, y[3], un};
			l[nl++] = (struct chart_line){
			    "to callback p99", COLOR_CALLBACK, "2 2", x, y[5], un};
		}
		double lo = x[0], hi = x[0];
		for (int i = 0; i < n; i++) {
			lo = fmin(lo, x[i]);
			hi = fmax(hi, x[i]);
		}
		struct chart ch = {"latency against offered rate",
		                   "Latency against offered rate (--sweep)",
		                   "offered rate, requests/s",
		                   "latency, ms (log scale)",
		                   hi > 20 * lo,
		                   true,
		                   l,
		                   nl,
		                   NULL,
		                   0};
		buf_puts(b, "<div>\n<h2>Sweep: latency against offered rate</h2>\n");
		report_svg_lines(b, &ch);
		buf_puts(b, "</div>\n");
	}
	cz_free(x);
	for (int k = 0; k < 6; k++)
		cz_free(y[k]);
}

static void sweep_table(struct buf *b, const struct report_run *r)
{
	if (r->n_steps == 0)
		return;
	buf_puts(b, "<table>\n<tr><th>offered/s</th><th class=\"l\">mode</th><th>sent</th>"
	            "<th>answered/s</th><th>ok/s</th><th>refused</th><th>failed</th><th>p50 ms</th>"
	            "<th>p99 ms</th><th>callback p50 ms</th><th>callback p99 ms</th></tr>\n");
	for (int i = 0; i < r->n_steps; i++) {
		const struct report_step *st = &r->steps[i];
		const struct result_mode *modes[2] = {&st->sync, &st->async};
		for (int m = 0; m < 2; m++) {
			const struct result_mode *rm = modes[m];
			if (!rm->ran)
				continue;
			char c[STEP_CELLS][STEP_CELL_LEN];
			report_step_cells(rm, c);
			buf_printf(
			    b,
			    "<tr><td>%g</td><th class=\"l\">%s</th><td>%llu</td><td>%.1f</td>"
			    "<td>%.1f</td><td>%llu</td><td>%llu</td><td>%s</td><td>%s</td>"
			    "<td>%s</td><td>%s</td></tr>\n",
			    st->rate, m ? "async" : "sync", (unsigned long long)rm->sent,
			    rm->achieved_rate, rm->succeeded_rate,
			    (unsigned long long)result_refused(rm), (unsigned long long)rm->failed,
			    c[0], c[1], c[2], c[3]);
		}
	}
	buf_puts(b, "</table>\n");
}

enum report_err report_html(const char *path, const struct report_run *r)
{
	const struct opts *o = r->o;
	struct buf b;
	buf_init(&b, HTML_MAX);
	report_html_head(&b, "consuma storm report");
	buf_puts(&b, "<h1>consuma storm report</h1>\n<p>");
	report_html_text(&b, r->started_at);
	buf_puts(&b, " &#8212; ");
	report_html_text(&b, o->server_url);
	buf_printf(&b, " &#8212; <strong class=\"%s\">%s</strong> (exit %d)</p>\n",
	           r->exit_status == 0 ? "ok" : "bad",
	           !r->ok             ? "problems found"
	           : r->th_failed > 0 ? "a threshold failed"
	                              : "nothing lost or wrong",
	           r->exit_status);

	struct series s[3];
	int n = report_series(r, s);
	buf_puts(&b, "<div class=\"charts\">\n<div>\n<h2>Latency by percentile</h2>\n");
	report_svg_percentiles(&b, s, n);
	buf_puts(&b, "</div>\n");
	sweep_chart(&b, r);
	buf_puts(&b, "</div>\n");
	time_charts(&b, r);

	struct buf t;
	buf_init(&t, TEXT_MAX);
	report_sentences(&t, r);
	buf_puts(&b, "<h2>What the numbers say</h2>\n");
	report_html_lines(&b, buf_str(&t));
	if (o->n_thresholds > 0) {
		buf_reset(&t);
		report_thresholds(&t, r);
		buf_puts(&b, "<h2>Thresholds</h2>\n");
		report_html_lines(&b, buf_str(&t));
	}
	buf_free(&t);
	if (r->n_steps > 0) {
		buf_puts(&b, "<h2>Sweep</h2>\n");
		sweep_table(&b, r);
	}

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
		report_html_text(&b, s[k].label);
		buf_printf(&b, "</th><td>%llu</td>", (unsigned long long)h->count);
		static const double ps[] = {0, 50, 95, 99, 99.9, 100};
		char v[32];
		for (int q = 0; q < 6; q++)
			buf_printf(&b, "<td>%s</td>",
			           h->count
			               ? report_fmt_ms(v, sizeof(v), ms(hist_percentile(h, ps[q])))
			               : "-");
		buf_printf(&b, "<td>%s</td></tr>\n",
		           h->count ? report_fmt_ms(v, sizeof(v), hist_mean(h) / 1000.0) : "-");
	}
	buf_puts(&b, "</table>\n");
	if (r->async.ran) {
		const struct result_callbacks *cb = &r->async.cb;
		buf_printf(
		    &b,
		    "<h2>Callbacks</h2>\n<table>\n<tr><th>expected</th><th>received</th>"
		    "<th>missing</th><th>duplicated</th><th>out of order</th><th>wrong "
		    "result</th><th>bad signature</th><th>unexpected</th><th>waited</th>"
		    "<th>first POST to last callback</th></tr>\n"
		    "<tr><td>%llu</td><td>%llu</td><td>%llu</td><td>%llu</td><td>%llu</td>"
		    "<td>%llu</td><td>%s%llu</td><td>%llu</td><td>%.1f s</td><td>%.2f s</td></tr>\n"
		    "</table>\n",
		    (unsigned long long)cb->expected, (unsigned long long)cb->received,
		    (unsigned long long)cb->missing, (unsigned long long)cb->duplicated,
		    (unsigned long long)cb->out_of_order, (unsigned long long)cb->wrong_result,
		    cb->checked_signatures ? "" : "not checked: ",
		    (unsigned long long)cb->bad_signature, (unsigned long long)cb->unexpected,
		    cb->waited_s, cb->span_s);
	}

	char v[64];
	buf_puts(&b, "<h2>Settings</h2>\n<table>\n");
	report_html_kv(&b, "server URL", o->server_url);
	snprintf(v, sizeof(v), "%s%s", opts_mode_name(o->mode), o->raw ? " (raw)" : "");
	report_html_kv(&b, "mode", v);
	snprintf(v, sizeof(v), "%llu per mode", (unsigned long long)o->num_requests);
	report_html_kv(&b, "requests", v);
	snprintf(v, sizeof(v), "%d", o->concurrency);
	report_html_kv(&b, "concurrency", v);
	snprintf(v, sizeof(v), "%d", o->threads);
	report_html_kv(&b, "threads", v);
	snprintf(v, sizeof(v), "%lld", (long long)o->iterations);
	report_html_kv(&b, "iterations", v);
	if (o->rate > 0)
		snprintf(v, sizeof(v), "open, %.1f requests/s", o->rate);
	else if (o->n_sweep > 0)
		snprintf(v, sizeof(v), "open, a sweep of %d rates", o->n_sweep);
	else
		snprintf(v, sizeof(v), "closed");
	report_html_kv(&b, "loop", v);
	if (o->mode == OPTS_MIXED) {
		snprintf(v, sizeof(v), "%.0f %% async", o->mix * 100);
		report_html_kv(&b, "mix", v);
	}
	snprintf(v, sizeof(v), "%g s", r->tl ? tl_width_s(r->tl) : o->interval_s);
	report_html_kv(&b, "timeline interval", v);
	snprintf(v, sizeof(v), "%.1f s", o->timeout_s);
	report_html_kv(&b, "timeout", v);
	snprintf(v, sizeof(v), "%s:%d, wait %.1f s", o->callback_host, o->callback_port,
	         o->callback_wait_s);
	report_html_kv(&b, "callbacks", v);
	report_html_kv(&b, "signatures", o->secret ? "verified" : "not checked");
	snprintf(v, sizeof(v), "%llu", (unsigned long long)o->seed);
	report_html_kv(&b, "seed", v);
	buf_puts(&b, "</table>\n<h2>Machine</h2>\n<table>\n");
	report_html_kv(&b, "uname", r->uname);
	snprintf(v, sizeof(v), "%ld", r->nproc);
	report_html_kv(&b, "online processors", v);
	if (r->cpu[0])
		report_html_kv(&b, "cpu", r->cpu);
	report_html_kv(&b, "consuma-storm", CONSUMA_VERSION);
	buf_puts(&b, "</table>\n</body>\n</html>\n");
	enum report_err rc = report_write(path, &b);
	buf_free(&b);
	return rc;
}
