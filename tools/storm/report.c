/*
 * report: what the report's outputs share (see report.h for the outputs
 * and report_int.h for how they are split): error strings, the machine,
 * number formatting, the series, failure causes as text, and writing a
 * rendered buffer to its file in one go.
 */
#include "report_int.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

const char *const report_cause_key[CAUSE_COUNT] = {
    "http_429", "http_503",  "http_other",   "timeout",
    "connect",  "transport", "bad_response", "wrong_result",
};

const char *const report_cause_text[CAUSE_COUNT] = {
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

/* A latency in ms with as many decimals as make sense for its size. */
const char *report_fmt_ms(char *out, size_t len, double v)
{
	if (v < 100)
		snprintf(out, len, "%.2f", v);
	else if (v < 10000)
		snprintf(out, len, "%.1f", v);
	else
		snprintf(out, len, "%.0f", v);
	return out;
}

int report_series(const struct report_run *r, struct series s[3])
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

static bool is_refusal(int c)
{
	return c == CAUSE_HTTP_429 || c == CAUSE_HTTP_503;
}

void report_causes(struct buf *b, const struct result_mode *m, enum report_which which)
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
		buf_printf(b, "%s%s x%llu", sep, report_cause_text[c],
		           (unsigned long long)m->cause[c]);
		sep = ", ";
	}
	if (!*sep)
		buf_puts(b, "none");
}

/* "job" or "jobs", "callback" or "callbacks". */

enum report_err report_write(const char *path, const struct buf *b)
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

double report_tl_pct_ms(const struct tl_interval *iv, int m, double p)
{
	const struct tl_hist *h = &iv->mode[m].latency;
	return h->count ? ms(tl_hist_percentile(h, p)) : NAN;
}

void report_step_cells(const struct result_mode *m, char cells[STEP_CELLS][STEP_CELL_LEN])
{
	const struct hist *h[STEP_CELLS] = {&m->latency, &m->latency, &m->callback_latency,
	                                    &m->callback_latency};
	static const double ps[STEP_CELLS] = {50, 99, 50, 99};
	for (int k = 0; k < STEP_CELLS; k++) {
		if (k >= 2 && !m->is_async)
			snprintf(cells[k], STEP_CELL_LEN, "%s", "");
		else if (!h[k]->count)
			snprintf(cells[k], STEP_CELL_LEN, "-");
		else
			report_fmt_ms(cells[k], STEP_CELL_LEN, ms(hist_percentile(h[k], ps[k])));
	}
}
