/*
 * report_int: what the report's files share, not part of report.h (as
 * SQLite's sqliteInt.h): report.c (formatting, causes, writing),
 * report_say.c (sentences), report_svg.c (charts), report_html.c (page
 * helpers that compare.c uses too).
 */
#ifndef CONSUMA_STORM_REPORT_INT_H
#define CONSUMA_STORM_REPORT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "hist.h"
#include "report.h"

#define TEXT_MAX (64 * 1024)

struct series {
	const char *label;
	const struct hist *h;
	const char *color;
	const char *dash;
};

extern const char *const report_cause_key[CAUSE_COUNT];
extern const char *const report_cause_text[CAUSE_COUNT];

static inline double ms(uint64_t us)
{
	return (double)us / 1000.0;
}

/* A latency in ms with as many decimals as make sense for its size. */
const char *report_fmt_ms(char *out, size_t len, double v);
/* The latency series a run measured (sync response, async accept, time to
 * callback), at most 3. */
int report_series(const struct report_run *r, struct series s[3]);

enum report_which { ALL, REFUSALS, OTHERS };
/* The causes of m's failures as "503 unavailable x3, ..." ("none"). */
void report_causes(struct buf *b, const struct result_mode *m, enum report_which which);
/* Writes b to path whole, or reports why not. */
enum report_err report_write(const char *path, const struct buf *b);

/* One sentence per line: what the numbers say. */
void report_sentences(struct buf *b, const struct report_run *r);
/* One line: OK, or what went wrong, counted. */
void report_verdict(struct buf *b, const struct report_run *r);
/* One line per threshold: "ok  async_accept.p99<50ms (12.3 ms)" or what
 * failed and by how much. */
void report_thresholds(struct buf *b, const struct report_run *r);

/* A sweep step's latency cells for one mode: p50, p99, callback p50,
 * callback p99, formatted ("-" without samples; the callback ones "" for
 * sync). */
enum { STEP_CELLS = 4, STEP_CELL_LEN = 32 };
void report_step_cells(const struct result_mode *m, char cells[STEP_CELLS][STEP_CELL_LEN]);

/* The timeline's per-interval p of mode m in ms, NAN without successes. */
double report_tl_pct_ms(const struct tl_interval *iv, int m, double p);

/* HTML text with &, <, >, quotes escaped and control characters replaced. */
void report_html_text(struct buf *b, const char *s);
/* A <tr> of a key and a value, both escaped. */
void report_html_kv(struct buf *b, const char *k, const char *v);
/* <!DOCTYPE ...> through <body>, with the shared style sheet. */
void report_html_head(struct buf *b, const char *title);
/* Each line of text as an escaped <li>. */
void report_html_lines(struct buf *b, const char *text);

/* ---- charts (report_svg.c) ---- */

/* The percentile curves of up to 3 distributions. */
void report_svg_percentiles(struct buf *b, const struct series *s, int n);

struct chart_line {
	const char *label;
	const char *color;
	const char *dash; /* "" solid, else an SVG stroke-dasharray */
	const double *x;
	const double *y; /* NAN: no point (the line breaks there) */
	size_t n;
};

struct chart_tick {
	double x;
	const char *label;
};

struct chart {
	const char *aria; /* what the chart shows, for the aria-label */
	const char *title;
	const char *xlabel;
	const char *ylabel;
	bool xlog;
	bool ylog;
	const struct chart_line *lines;
	int n_lines;
	const struct chart_tick *xticks; /* NULL: round numbers */
	int n_xticks;
};

/* A line chart: linear or log axes, a legend under the plot. */
void report_svg_lines(struct buf *b, const struct chart *c);

#define COLOR_SYNC     "#d62728"
#define COLOR_ASYNC    "#1f77b4"
#define COLOR_CALLBACK "#2ca02c"
#define COLOR_REFUSED  "#ff7f0e"
#define COLOR_FAILED   "#7f7f7f"
#define COLOR_QUEUE    "#9467bd"

#endif
