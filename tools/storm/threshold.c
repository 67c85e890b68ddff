/*
 * threshold: --threshold expressions (see threshold.h for the grammar).
 */
#include "threshold.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hist.h"
#include "why.h"

static const struct {
	const char *name;
	enum threshold_series series;
} series_names[] = {
    {"sync_response", TH_SYNC_RESPONSE},
    {"async_accept", TH_ASYNC_ACCEPT},
    {"time_to_callback", TH_TIME_TO_CALLBACK},
    {"sync", TH_SYNC_RATE},
    {"async", TH_ASYNC_RATE},
};

static bool fail(char *why, size_t whylen, const char *msg)
{
	why_set(why, whylen, "%s", msg);
	return false;
}

/* A decimal number (digits, at most one '.'), all of [s, s + len). */
static bool decimal(const char *s, size_t len, double *out)
{
	char tmp[32];
	if (len == 0 || len >= sizeof(tmp) || strspn(s, "0123456789.") < len)
		return false;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	const char *dot = strchr(tmp, '.');
	if ((dot && strchr(dot + 1, '.')) || strcmp(tmp, ".") == 0)
		return false;
	errno = 0;
	char *end = NULL;
	double v = strtod(tmp, &end);
	if (errno != 0 || *end != '\0' || !isfinite(v))
		return false;
	*out = v;
	return true;
}

static bool parse_stat(const char *s, size_t len, struct threshold *t, char *why, size_t whylen)
{
	bool rate = t->series == TH_SYNC_RATE || t->series == TH_ASYNC_RATE;
	if (rate) {
		if (len == 11 && strncmp(s, "failed_rate", 11) == 0)
			t->stat = TH_FAILED_RATE;
		else if (len == 12 && strncmp(s, "refused_rate", 12) == 0)
			t->stat = TH_REFUSED_RATE;
		else
			return fail(why, whylen, "sync and async take failed_rate or refused_rate");
		return true;
	}
	if (len == 3 && strncmp(s, "min", 3) == 0)
		t->stat = TH_MIN;
	else if (len == 3 && strncmp(s, "max", 3) == 0)
		t->stat = TH_MAX;
	else if (len == 4 && strncmp(s, "mean", 4) == 0)
		t->stat = TH_MEAN;
	else if (len >= 2 && s[0] == 'p') {
		double p = 0;
		if (!decimal(s + 1, len - 1, &p))
			return fail(why, whylen, "a percentile is p and a number: p50, p99, p99.9");
		/* p999 is 99.9 and p9999 99.99, as the JSON's field names */
		if (!memchr(s + 1, '.', len - 1) && len - 1 > 2 && s[1] == '9' && s[2] == '9')
			p = p / pow(10, (double)(len - 3));
		if (!(p > 0 && p < 100))
			return fail(why, whylen, "a percentile is above 0 and below 100");
		t->stat = TH_PCT;
		t->pct = p;
	} else {
		return fail(why, whylen, "a latency takes pN, min, max or mean");
	}
	return true;
}

bool threshold_parse(const char *s, struct threshold *t, char *why, size_t whylen)
{
	memset(t, 0, sizeof(*t));
	if (!s || strlen(s) >= sizeof(t->text))
		return fail(why, whylen, "empty or too long");
	snprintf(t->text, sizeof(t->text), "%s", s);
	const char *dot = strchr(s, '.');
	if (!dot)
		return fail(why, whylen, "expected SERIES.STAT<VALUE, e.g. async_accept.p99<50ms");
	size_t nl = (size_t)(dot - s);
	size_t k = 0;
	for (; k < sizeof(series_names) / sizeof(series_names[0]); k++)
		if (strlen(series_names[k].name) == nl && strncmp(s, series_names[k].name, nl) == 0)
			break;
	if (k == sizeof(series_names) / sizeof(series_names[0]))
		return fail(why, whylen,
		            "the series is sync_response, async_accept, time_to_callback, sync or "
		            "async");
	t->series = series_names[k].series;
	const char *stat = dot + 1;
	size_t sl = strcspn(stat, "<>= ");
	if (!parse_stat(stat, sl, t, why, whylen))
		return false;
	const char *p = stat + sl;
	while (*p == ' ')
		p++;
	if (p[0] == '<')
		t->op = p[1] == '=' ? TH_LE : TH_LT;
	else if (p[0] == '>')
		t->op = p[1] == '=' ? TH_GE : TH_GT;
	else
		return fail(why, whylen, "the operator is <, <=, > or >=");
	p += p[1] == '=' ? 2 : 1;
	while (*p == ' ')
		p++;
	size_t vl = strspn(p, "0123456789.");
	double v = 0;
	if (!decimal(p, vl, &v))
		return fail(why, whylen, "the limit is a number");
	const char *unit = p + vl;
	bool rate = t->stat == TH_FAILED_RATE || t->stat == TH_REFUSED_RATE;
	if (rate) {
		if (strcmp(unit, "%") == 0)
			v /= 100;
		else if (*unit)
			return fail(why, whylen,
			            "a rate is a fraction (0.01) or a percentage (1%)");
		if (v > 1)
			return fail(why, whylen, "a rate is at most 1 (100%)");
	} else if (strcmp(unit, "ms") == 0) {
		/* as given */
	} else if (strcmp(unit, "s") == 0) {
		v *= 1000;
	} else if (strcmp(unit, "us") == 0) {
		v /= 1000;
	} else {
		return fail(why, whylen, "a latency limit needs a unit: us, ms or s");
	}
	t->limit = v;
	return true;
}

bool threshold_needs_async(const struct threshold *t)
{
	return t->series == TH_ASYNC_ACCEPT || t->series == TH_TIME_TO_CALLBACK ||
	       t->series == TH_ASYNC_RATE;
}

const char *threshold_unit(const struct threshold *t)
{
	return t->stat == TH_FAILED_RATE || t->stat == TH_REFUSED_RATE ? "" : "ms";
}

static bool compare(double v, enum threshold_op op, double limit)
{
	switch (op) {
	case TH_LT:
		return v < limit;
	case TH_LE:
		return v <= limit;
	case TH_GT:
		return v > limit;
	case TH_GE:
		return v >= limit;
	}
	return false;
}

struct threshold_result threshold_eval(const struct threshold *t, const struct result_mode *sync,
                                       const struct result_mode *async)
{
	struct threshold_result r = {false, false, 0};
	const struct result_mode *m = threshold_needs_async(t) ? async : sync;
	if (!m || !m->ran)
		return r;
	if (t->stat == TH_FAILED_RATE || t->stat == TH_REFUSED_RATE) {
		if (m->sent == 0)
			return r;
		uint64_t n = t->stat == TH_FAILED_RATE ? m->failed : result_refused(m);
		r.actual = (double)n / (double)m->sent;
	} else {
		const struct hist *h =
		    t->series == TH_TIME_TO_CALLBACK ? &m->callback_latency : &m->latency;
		if (h->count == 0)
			return r;
		switch (t->stat) {
		case TH_MIN:
			r.actual = (double)h->min_us / 1000.0;
			break;
		case TH_MAX:
			r.actual = (double)h->max_us / 1000.0;
			break;
		case TH_MEAN:
			r.actual = hist_mean(h) / 1000.0;
			break;
		default:
			r.actual = (double)hist_percentile(h, t->pct) / 1000.0;
			break;
		}
	}
	r.have = true;
	r.ok = compare(r.actual, t->op, t->limit);
	return r;
}
