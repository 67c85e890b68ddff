/*
 * compare: saved runs side by side (see compare.h). The files are parsed
 * with json-c and only read: a field a run lacks (an older schema, a mode
 * that did not run) shows as "-" and leaves its line out of a chart.
 */
#include "compare.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "alloc.h"
#include "report_int.h"

#define PAGE_MAX  (8 * 1024 * 1024)
#define FILE_MAX  (64 * 1024 * 1024)
#define LABEL_MAX 8
#define LINES_MAX (OPTS_MAX_COMPARE * 3)

static const char *const palette[OPTS_MAX_COMPARE] = {
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
};

struct run {
	const char *file;
	char label[LABEL_MAX];
	struct json_object *j;
	/* the timeline as columns (NULL when the run has none) */
	size_t n;
	double *t, *p99[2], *ok[2], *queue;
};

/* The member at a dotted path, or NULL. */
static struct json_object *at(struct json_object *o, const char *path)
{
	char part[64];
	while (o && *path) {
		size_t l = strcspn(path, ".");
		if (l >= sizeof(part))
			return NULL;
		memcpy(part, path, l);
		part[l] = '\0';
		struct json_object *v = NULL;
		if (!json_object_is_type(o, json_type_object) ||
		    !json_object_object_get_ex(o, part, &v))
			return NULL;
		o = v;
		path += l + (path[l] == '.');
	}
	return o;
}

static double num(struct json_object *o, const char *path)
{
	struct json_object *v = at(o, path);
	if (!v ||
	    !(json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int)))
		return NAN;
	return json_object_get_double(v);
}

static const char *str(struct json_object *o, const char *path)
{
	struct json_object *v = at(o, path);
	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "-";
}

static bool cols(struct run *r)
{
	struct json_object *tl = at(r->j, "timeline");
	if (!tl || !json_object_is_type(tl, json_type_array))
		return true;
	r->n = json_object_array_length(tl);
	size_t n = r->n ? r->n : 1;
	double **all[] = {&r->t, &r->p99[0], &r->p99[1], &r->ok[0], &r->ok[1], &r->queue};
	for (size_t k = 0; k < sizeof(all) / sizeof(all[0]); k++) {
		*all[k] = cz_calloc(n, sizeof(double));
		if (!*all[k])
			return false;
	}
	double w = num(r->j, "timeline_interval_s");
	if (!(w > 0))
		w = 1;
	for (size_t i = 0; i < r->n; i++) {
		struct json_object *e = json_object_array_get_idx(tl, i);
		r->t[i] = num(e, "t_s");
		r->p99[0][i] = num(e, "sync.p99_ms");
		r->p99[1][i] = num(e, "async.p99_ms");
		r->ok[0][i] = num(e, "sync.ok") / w;
		r->ok[1][i] = num(e, "async.ok") / w;
		r->queue[i] = num(e, "server.queue_depth");
	}
	return true;
}

static void run_free(struct run *r)
{
	json_object_put(r->j);
	cz_free(r->t);
	for (int m = 0; m < 2; m++) {
		cz_free(r->p99[m]);
		cz_free(r->ok[m]);
	}
	cz_free(r->queue);
}

static enum compare_err load(struct run *r, const char *file, int k, char *err, size_t errlen)
{
	memset(r, 0, sizeof(*r));
	r->file = file;
	snprintf(r->label, sizeof(r->label), "%c", 'A' + k);
	r->j = json_object_from_file(file);
	if (!r->j) {
		snprintf(err, errlen, "%s: cannot read it as JSON", file);
		return COMPARE_INPUT;
	}
	const char *schema = str(r->j, "schema");
	if (strncmp(schema, "consuma-storm/", 14) != 0) {
		snprintf(err, errlen, "%s: not a consuma-storm --json file (schema '%s')", file,
		         schema);
		return COMPARE_INPUT;
	}
	if (!cols(r)) {
		snprintf(err, errlen, "%s: out of memory", file);
		return COMPARE_OUTPUT;
	}
	return COMPARE_OK;
}

/* A number cell with `decimals` places (-1: %g), "-" when absent. */
static void cell_num(struct buf *b, double v, int decimals)
{
	if (isnan(v))
		buf_puts(b, "<td>-</td>");
	else if (decimals < 0)
		buf_printf(b, "<td>%g</td>", v);
	else
		buf_printf(b, "<td>%.*f</td>", decimals, v);
}

static void runs_table(struct buf *b, const struct run *runs, int n)
{
	buf_puts(b, "<h2>Runs</h2>\n<table>\n<tr><th>run</th><th class=\"l\">server</th>"
	            "<th class=\"l\">file</th><th class=\"l\">started</th><th>mode</th>"
	            "<th>loop</th><th>rate/s</th><th>concurrency</th><th>requests</th>"
	            "<th>iterations</th><th class=\"l\">machine</th><th>exit</th></tr>\n");
	for (int k = 0; k < n; k++) {
		struct json_object *j = runs[k].j;
		buf_printf(b, "<tr><th style=\"color:%s\">%s</th><td class=\"l\">", palette[k],
		           runs[k].label);
		report_html_text(b, str(j, "settings.server_url"));
		buf_puts(b, "</td><td class=\"l\">");
		report_html_text(b, runs[k].file);
		buf_puts(b, "</td><td class=\"l\">");
		report_html_text(b, str(j, "started_at"));
		buf_puts(b, "</td><td>");
		report_html_text(b, str(j, "settings.mode"));
		buf_puts(b, "</td><td>");
		report_html_text(b, str(j, "settings.loop"));
		buf_puts(b, "</td>");
		cell_num(b, num(j, "settings.rate"), -1);
		cell_num(b, num(j, "settings.concurrency"), 0);
		cell_num(b, num(j, "settings.num_requests"), 0);
		cell_num(b, num(j, "settings.iterations"), 0);
		buf_puts(b, "<td class=\"l\">");
		report_html_text(b, str(j, "machine.cpu"));
		buf_printf(b, " (%.0f cpus)</td>", num(j, "machine.nproc"));
		cell_num(b, num(j, "exit_status"), 0);
		buf_puts(b, "</tr>\n");
	}
	buf_puts(b, "</table>\n");
}

static const struct {
	const char *label;
	const char *mode;
	const char *lat;
	const char *dash;
} measures[3] = {
    {"sync response", "sync", "sync.latency_ms", ""},
    {"async accept", "async", "async.latency_ms", "6 3"},
    {"time to callback", "async", "async.callback_latency_ms", "2 2"},
};

static void totals_table(struct buf *b, const struct run *runs, int n)
{
	static const char *const pn[] = {"p50", "p95", "p99", "p999", "max"};
	buf_puts(b, "<h2>Totals</h2>\n<table>\n<tr><th class=\"l\">measure</th><th>run</th>"
	            "<th>sent</th><th>ok</th><th>refused</th><th>failed</th><th>answered/s</th>"
	            "<th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>p99.9 ms</th>"
	            "<th>max ms</th></tr>\n");
	char path[96];
	for (int m = 0; m < 3; m++)
		for (int k = 0; k < n; k++) {
			struct json_object *j = runs[k].j;
			if (!at(j, measures[m].lat) ||
			    json_object_is_type(at(j, measures[m].mode), json_type_null))
				continue;
			buf_printf(b, "<tr><th class=\"l\">%s</th><th style=\"color:%s\">%s</th>",
			           measures[m].label, palette[k], runs[k].label);
			static const char *const counts[] = {"sent", "succeeded", "refused",
			                                     "failed", "achieved_rate"};
			for (int c = 0; c < 5; c++) {
				snprintf(path, sizeof(path), "%s.%s", measures[m].mode, counts[c]);
				cell_num(b, m == 2 ? NAN : num(j, path), c == 4 ? 1 : 0);
			}
			for (int p = 0; p < 5; p++) {
				snprintf(path, sizeof(path), "%s.%s", measures[m].lat, pn[p]);
				cell_num(b, num(j, path), 2);
			}
			buf_puts(b, "</tr>\n");
		}
	buf_puts(b, "</table>\n");
}

/* Each run's percentiles: x is -log10(1 - p), as the run page's chart. */
static void percentile_chart(struct buf *b, const struct run *runs, int n)
{
	static const double ps[] = {50, 95, 99, 99.9};
	static const char *const pn[] = {"p50", "p95", "p99", "p999"};
	static double xs[4];
	double ys[LINES_MAX][4];
	struct chart_line l[LINES_MAX];
	char labels[LINES_MAX][48];
	int nl = 0;
	for (int p = 0; p < 4; p++)
		xs[p] = -log10(1 - ps[p] / 100);
	for (int k = 0; k < n; k++)
		for (int m = 0; m < 3 && nl < LINES_MAX; m++) {
			char path[96];
			bool any = false;
			for (int p = 0; p < 4; p++) {
				snprintf(path, sizeof(path), "%s.%s", measures[m].lat, pn[p]);
				ys[nl][p] = num(runs[k].j, path);
				any |= !isnan(ys[nl][p]);
			}
			if (!any)
				continue;
			snprintf(labels[nl], sizeof(labels[nl]), "%s %s", runs[k].label,
			         measures[m].label);
			l[nl] = (struct chart_line){labels[nl], palette[k], measures[m].dash,
			                            xs,         ys[nl],     4};
			nl++;
		}
	static const char *const tick_text[] = {"50%", "95%", "99%", "99.9%"};
	struct chart_tick ticks[4];
	for (int p = 0; p < 4; p++)
		ticks[p] = (struct chart_tick){xs[p], tick_text[p]};
	struct chart c = {
	    .aria = "latency by percentile, each run",
	    .title = "Latency by percentile",
	    .xlabel = "percentile (log scale toward the tail)",
	    .ylabel = "latency, ms (log scale)",
	    .ylog = true,
	    .lines = l,
	    .n_lines = nl,
	    .xticks = ticks,
	    .n_xticks = 4,
	};
	report_svg_lines(b, &c);
}

/* One chart over time: for each run and mode the column picked. */
static void time_chart(struct buf *b, const struct run *runs, int n, const char *aria,
                       const char *title, const char *ylabel, bool ylog, int which)
{
	struct chart_line l[LINES_MAX];
	char labels[LINES_MAX][48];
	int nl = 0;
	static const char *const mode[2] = {"sync", "async"};
	for (int k = 0; k < n; k++) {
		const struct run *r = &runs[k];
		if (!r->n)
			continue;
		for (int m = 0; m < 2 && nl < LINES_MAX; m++) {
			const double *y = which == 0 ? r->p99[m] : which == 1 ? r->ok[m] : r->queue;
			if (which == 2 && m == 1)
				break;
			bool any = false;
			for (size_t i = 0; i < r->n; i++)
				any |= isfinite(y[i]) && (which == 2 || y[i] > 0);
			if (!any)
				continue;
			snprintf(labels[nl], sizeof(labels[nl]), "%s %s", r->label,
			         which == 2 ? "queue depth" : mode[m]);
			l[nl] = (struct chart_line){labels[nl], palette[k], m ? "6 3" : "",
			                            r->t,       y,          r->n};
			nl++;
		}
	}
	struct chart c = {
	    aria, title, "seconds since the first request", ylabel, false, ylog, l, nl, NULL, 0};
	report_svg_lines(b, &c);
}

/* p99 against offered rate, for the runs that swept. */
static void sweep_chart(struct buf *b, const struct run *runs, int n)
{
	double xs[LINES_MAX][OPTS_MAX_SWEEP], ys[LINES_MAX][OPTS_MAX_SWEEP];
	struct chart_line l[LINES_MAX];
	char labels[LINES_MAX][48];
	int nl = 0;
	static const char *const mode[2] = {"sync", "async"};
	for (int k = 0; k < n; k++) {
		struct json_object *sw = at(runs[k].j, "sweep");
		if (!sw || !json_object_is_type(sw, json_type_array))
			continue;
		size_t steps = json_object_array_length(sw);
		if (steps > OPTS_MAX_SWEEP)
			steps = OPTS_MAX_SWEEP;
		for (int m = 0; m < 2 && nl < LINES_MAX; m++) {
			char path[32];
			snprintf(path, sizeof(path), "%s.p99_ms", mode[m]);
			bool any = false;
			for (size_t i = 0; i < steps; i++) {
				struct json_object *e = json_object_array_get_idx(sw, i);
				xs[nl][i] = num(e, "rate");
				ys[nl][i] = num(e, path);
				any |= !isnan(ys[nl][i]);
			}
			if (!any)
				continue;
			snprintf(labels[nl], sizeof(labels[nl]), "%s %s p99", runs[k].label,
			         mode[m]);
			l[nl] = (struct chart_line){labels[nl], palette[k], m ? "6 3" : "",
			                            xs[nl],     ys[nl],     steps};
			nl++;
		}
	}
	if (nl == 0)
		return;
	struct chart c = {"p99 against offered rate, each run",
	                  "p99 against offered rate (--sweep)",
	                  "offered rate, requests/s",
	                  "p99, ms (log scale)",
	                  false,
	                  true,
	                  l,
	                  nl,
	                  NULL,
	                  0};
	report_svg_lines(b, &c);
}

enum compare_err compare_html(const struct opts *o, char *err, size_t errlen)
{
	struct run runs[OPTS_MAX_COMPARE];
	int n = 0;
	enum compare_err rc = COMPARE_OK;
	for (; n < o->n_compare; n++) {
		rc = load(&runs[n], o->compare[n], n, err, errlen);
		if (rc != COMPARE_OK) {
			run_free(&runs[n]);
			goto done;
		}
	}
	struct buf b;
	buf_init(&b, PAGE_MAX);
	report_html_head(&b, "consuma storm comparison");
	buf_puts(&b, "<h1>consuma storm comparison</h1>\n<p>");
	for (int k = 0; k < n; k++) {
		buf_printf(&b, "%s<strong style=\"color:%s\">%s</strong> ", k ? ", " : "",
		           palette[k], runs[k].label);
		report_html_text(&b, str(runs[k].j, "settings.server_url"));
	}
	buf_puts(&b, "</p>\n");
	runs_table(&b, runs, n);
	totals_table(&b, runs, n);
	buf_puts(&b, "<h2>Charts</h2>\n<div class=\"charts\">\n");
	percentile_chart(&b, runs, n);
	time_chart(&b, runs, n, "p99 per interval, each run", "p99 per interval",
	           "p99, ms (log scale)", true, 0);
	time_chart(&b, runs, n, "successes per second, each run", "Successes per second",
	           "requests/s", false, 1);
	time_chart(&b, runs, n, "server queue depth, each run", "Server queue depth", "jobs", false,
	           2);
	sweep_chart(&b, runs, n);
	buf_puts(&b, "</div>\n</body>\n</html>\n");
	if (report_write(o->html_path, &b) != REPORT_OK) {
		snprintf(err, errlen, "%s: cannot write the page", o->html_path);
		rc = COMPARE_OUTPUT;
	}
	buf_free(&b);
done:
	for (int k = 0; k < n; k++)
		run_free(&runs[k]);
	return rc;
}
