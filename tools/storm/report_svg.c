/*
 * report_svg: the inline SVG charts of the HTML pages (report_html.c and
 * compare.c): the percentile curves and a general line chart for what
 * changes over time or over the offered rate.
 */
#include "report_int.h"

#include <math.h>
#include <string.h>

#define SVG_W  760
#define SVG_H  440
#define PAD_L  72
#define PAD_R  24
#define PAD_T  24
#define PAD_B  76
#define POINTS 240

/* Percentile curves: x is -log10(1 - p) (0 %, 90 %, 99 %, 99.9 % equally
 * spaced, the HdrHistogram convention), y is log10 of the latency. */
void report_svg_percentiles(struct buf *b, const struct series *s, int n)
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
		report_html_text(b, s[k].label);
		buf_puts(b, "</text>\n");
	}
#undef SX
#undef SY
	buf_puts(b, "</svg>\n");
}

#define LC_W 760
#define LC_H 300
#define LC_L 72
#define LC_R 24
#define LC_T 30
#define LC_B 70

/* A round step for about `want` ticks over span. */
static double nice_step(double span, int want)
{
	double raw = span / want;
	double mag = pow(10, floor(log10(raw)));
	double f = raw / mag;
	return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * mag;
}

struct axis {
	bool log;
	double lo, hi; /* in axis units: log10 of the value for log axes */
};

static double to_axis(const struct axis *a, double v)
{
	return a->log ? log10(v) : v;
}

static void axis_fit(struct axis *a, bool log, double lo, double hi)
{
	a->log = log;
	if (log) {
		a->lo = floor(log10(lo));
		a->hi = ceil(log10(hi));
		if (a->hi <= a->lo)
			a->hi = a->lo + 1;
		return;
	}
	if (lo > 0)
		lo = 0; /* counts and rates read best from zero */
	if (hi <= lo)
		hi = lo + 1;
	double step = nice_step(hi - lo, 5);
	a->lo = floor(lo / step) * step;
	a->hi = ceil(hi / step) * step;
}

static void tick_label(char *out, size_t len, double v)
{
	if (fabs(v) >= 1e6)
		snprintf(out, len, "%gM", v / 1e6);
	else if (fabs(v) >= 1e4)
		snprintf(out, len, "%gk", v / 1e3);
	else
		snprintf(out, len, "%g", v);
}

void report_svg_lines(struct buf *b, const struct chart *c)
{
	double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
	for (int k = 0; k < c->n_lines; k++)
		for (size_t i = 0; i < c->lines[k].n; i++) {
			double x = c->lines[k].x[i], y = c->lines[k].y[i];
			if (!isfinite(x) || !isfinite(y) || (c->xlog && x <= 0) ||
			    (c->ylog && y <= 0))
				continue;
			xlo = fmin(xlo, x);
			xhi = fmax(xhi, x);
			ylo = fmin(ylo, y);
			yhi = fmax(yhi, y);
		}
	int rows = (c->n_lines + 3) / 4;
	int h = LC_H + (rows > 2 ? (rows - 2) * 14 : 0);
	buf_printf(b,
	           "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
	           "viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"",
	           LC_W, h, LC_W, h);
	report_html_text(b, c->aria);
	buf_printf(b, "\">\n<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n",
	           LC_W, h);
	buf_printf(b,
	           "<text x=\"%d\" y=\"18\" font-family=\"sans-serif\" font-size=\"14\" "
	           "font-weight=\"bold\" fill=\"#222222\">",
	           LC_L);
	report_html_text(b, c->title);
	buf_puts(b, "</text>\n");
	if (!isfinite(xlo)) {
		buf_printf(b,
		           "<text x=\"%d\" y=\"%d\" font-family=\"sans-serif\" font-size=\"12\">"
		           "nothing to show</text>\n</svg>\n",
		           LC_L, LC_T + 30);
		return;
	}
	struct axis ax, ay;
	if (xhi <= xlo)
		xhi = xlo + (c->xlog ? xlo : 1);
	axis_fit(&ax, c->xlog, xlo, xhi);
	if (!c->xlog) {
		ax.lo = xlo; /* time and rates start where the data starts */
		ax.hi = xhi;
	}
	axis_fit(&ay, c->ylog, ylo, yhi);
	const double pw = LC_W - LC_L - LC_R, ph = LC_H - LC_T - LC_B;
#define PX(v) (LC_L + (to_axis(&ax, v) - ax.lo) / (ax.hi - ax.lo) * pw)
#define PY(v) (LC_T + ph - (to_axis(&ay, v) - ay.lo) / (ay.hi - ay.lo) * ph)
	buf_puts(b, "<g font-family=\"sans-serif\" font-size=\"11\" fill=\"#333333\">\n");
	char label[32];
	double ystep = ay.log ? 1 : nice_step(ay.hi - ay.lo, 5);
	for (double t = ay.lo; t <= ay.hi + ystep * 1e-9; t += ystep) {
		double v = ay.log ? pow(10, t) : t;
		tick_label(label, sizeof(label), v);
		buf_printf(b,
		           "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#dddddd\"/>"
		           "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
		           LC_L, PY(v), LC_W - LC_R, PY(v), LC_L - 6, PY(v) + 4, label);
	}
	double xstep = ax.log ? 1 : nice_step(ax.hi - ax.lo, 8);
	double xfirst = ax.log ? ax.lo : ceil(ax.lo / xstep) * xstep;
	for (int k = 0; c->xticks && k < c->n_xticks; k++) {
		double v = c->xticks[k].x;
		buf_printf(
		    b,
		    "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eeeeee\"/>"
		    "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">",
		    PX(v), LC_T, PX(v), LC_T + ph, PX(v), LC_T + ph + 14);
		report_html_text(b, c->xticks[k].label);
		buf_puts(b, "</text>\n");
	}
	for (double t = xfirst; !c->xticks && t <= ax.hi + xstep * 1e-9; t += xstep) {
		double v = ax.log ? pow(10, t) : t;
		tick_label(label, sizeof(label), v);
		buf_printf(
		    b,
		    "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eeeeee\"/>"
		    "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n",
		    PX(v), LC_T, PX(v), LC_T + ph, PX(v), LC_T + ph + 14, label);
	}
	buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">", LC_L + pw / 2,
	           LC_T + ph + 30);
	report_html_text(b, c->xlabel);
	buf_printf(b,
	           "</text>\n<text x=\"14\" y=\"%.1f\" text-anchor=\"middle\" "
	           "transform=\"rotate(-90 14 %.1f)\">",
	           LC_T + ph / 2, LC_T + ph / 2);
	report_html_text(b, c->ylabel);
	buf_printf(b,
	           "</text>\n<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
	           "stroke=\"#999999\"/>\n</g>\n",
	           LC_L, LC_T, pw, ph);
	for (int k = 0; k < c->n_lines; k++) {
		const struct chart_line *l = &c->lines[k];
		const char *dash = l->dash ? l->dash : "";
		bool open = false;
		size_t drawn = 0;
		for (size_t i = 0; i < l->n; i++) {
			double x = l->x[i], y = l->y[i];
			bool ok = isfinite(x) && isfinite(y) && !(c->xlog && x <= 0) &&
			          !(c->ylog && y <= 0);
			if (!ok) {
				if (open)
					buf_puts(b, "\"/>\n");
				open = false;
				continue;
			}
			if (!open)
				buf_printf(b,
				           "<polyline fill=\"none\" stroke=\"%s\" "
				           "stroke-width=\"2\"%s%s%s "
				           "points=\"",
				           l->color, *dash ? " stroke-dasharray=\"" : "", dash,
				           *dash ? "\"" : "");
			buf_printf(b, "%s%.1f,%.1f", open ? " " : "", PX(x), PY(y));
			open = true;
			drawn++;
		}
		if (open)
			buf_puts(b, "\"/>\n");
		/* a single point shows as a dot: a one-point polyline draws nothing */
		if (drawn == 1)
			for (size_t i = 0; i < l->n; i++)
				if (isfinite(l->x[i]) && isfinite(l->y[i]))
					buf_printf(b,
					           "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" "
					           "fill=\"%s\"/>\n",
					           PX(l->x[i]), PY(l->y[i]), l->color);
		int lx = LC_L + (k % 4) * 170, ly = LC_H - 22 + (k / 4) * 14;
		buf_printf(b,
		           "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" "
		           "stroke-width=\"3\"%s%s%s/><text x=\"%d\" y=\"%d\" "
		           "font-family=\"sans-serif\" font-size=\"11\">",
		           lx, ly - 4, lx + 24, ly - 4, l->color,
		           *dash ? " stroke-dasharray=\"" : "", dash, *dash ? "\"" : "", lx + 30,
		           ly);
		report_html_text(b, l->label);
		buf_puts(b, "</text>\n");
	}
#undef PX
#undef PY
	buf_puts(b, "</svg>\n");
}
