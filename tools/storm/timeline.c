/*
 * timeline: per-interval counts (see timeline.h). The histogram has the
 * layout of hist.h with fewer sub-buckets (TL_SUB_BITS).
 */
#include "timeline.h"

#include <math.h>
#include <string.h>

#include "alloc.h"
#include "hist.h"

struct timeline {
	int64_t t0_ns;
	int64_t width_ns;
	size_t used; /* 1 + the highest interval written */
	struct tl_interval *iv;
};

static size_t index_of(uint64_t v)
{
	return hist_layout_index(v, TL_SUB_BITS, TL_MAX_EXP);
}

static uint64_t highest_of(size_t idx)
{
	return hist_layout_top(idx, TL_SUB_BITS);
}

uint64_t tl_hist_percentile(const struct tl_hist *h, double p)
{
	if (h->count == 0)
		return 0;
	uint64_t rank = hist_rank(h->count, p);
	uint64_t seen = 0;
	for (size_t i = 0; i < TL_BUCKETS; i++) {
		seen += h->buckets[i];
		if (seen >= rank)
			return highest_of(i);
	}
	return highest_of(TL_BUCKETS - 1);
}

struct tl_server tl_server_none(void)
{
	return (struct tl_server){false, -1, -1, -1, -1.0};
}

static void hist_add(struct tl_hist *d, const struct tl_hist *s)
{
	if (!s->count)
		return;
	d->count += s->count;
	for (size_t i = 0; i < TL_BUCKETS; i++)
		d->buckets[i] += s->buckets[i];
}

static void server_max(struct tl_server *d, const struct tl_server *s)
{
	if (!s->sampled)
		return;
	if (!d->sampled) {
		*d = *s;
		return;
	}
	d->queue_depth = d->queue_depth > s->queue_depth ? d->queue_depth : s->queue_depth;
	d->active_workers =
	    d->active_workers > s->active_workers ? d->active_workers : s->active_workers;
	d->inflight = d->inflight > s->inflight ? d->inflight : s->inflight;
	d->oldest_age_s = fmax(d->oldest_age_s, s->oldest_age_s);
}

static void interval_add(struct tl_interval *d, const struct tl_interval *s)
{
	for (int m = 0; m < 2; m++) {
		d->mode[m].sent += s->mode[m].sent;
		d->mode[m].ok += s->mode[m].ok;
		d->mode[m].refused += s->mode[m].refused;
		d->mode[m].failed += s->mode[m].failed;
		hist_add(&d->mode[m].latency, &s->mode[m].latency);
	}
	d->callbacks += s->callbacks;
	server_max(&d->server, &s->server);
}

static void interval_clear(struct tl_interval *iv)
{
	memset(iv, 0, sizeof(*iv));
	iv->server = tl_server_none();
}

struct timeline *tl_new(int64_t t0_ns, double interval_s)
{
	struct timeline *tl = cz_calloc(1, sizeof(*tl));
	if (!tl)
		return NULL;
	tl->iv = cz_calloc(TL_MAX_INTERVALS, sizeof(*tl->iv));
	if (!tl->iv) {
		cz_free(tl);
		return NULL;
	}
	tl->t0_ns = t0_ns;
	tl->width_ns = (int64_t)(interval_s * 1e9);
	if (tl->width_ns < 1000000)
		tl->width_ns = 1000000;
	return tl;
}

struct timeline *tl_new_like(const struct timeline *tl)
{
	struct timeline *t = tl_new(tl->t0_ns, 1.0);
	if (t)
		t->width_ns = tl->width_ns;
	return t;
}

void tl_free(struct timeline *tl)
{
	if (!tl)
		return;
	cz_free(tl->iv);
	cz_free(tl);
}

/* Pairs of intervals become one, twice as wide. */
static void coarsen(struct timeline *tl)
{
	size_t half = (tl->used + 1) / 2;
	for (size_t k = 0; k < half; k++) {
		struct tl_interval a = tl->iv[2 * k];
		if (2 * k + 1 < tl->used)
			interval_add(&a, &tl->iv[2 * k + 1]);
		tl->iv[k] = a;
	}
	for (size_t k = half; k < tl->used; k++)
		memset(&tl->iv[k], 0, sizeof(tl->iv[k]));
	tl->used = half;
	tl->width_ns *= 2;
}

static struct tl_interval *slot(struct timeline *tl, int64_t at_ns)
{
	int64_t d = at_ns - tl->t0_ns;
	if (d < 0)
		d = 0;
	uint64_t k = (uint64_t)(d / tl->width_ns);
	while (k >= TL_MAX_INTERVALS) {
		coarsen(tl);
		k = (uint64_t)(d / tl->width_ns);
	}
	if (k >= tl->used) {
		for (size_t j = tl->used; j <= k; j++)
			tl->iv[j].server = tl_server_none();
		tl->used = (size_t)k + 1;
	}
	return &tl->iv[k];
}

void tl_sent(struct timeline *tl, enum tl_mode m, int64_t at_ns)
{
	slot(tl, at_ns)->mode[m].sent++;
}

void tl_done(struct timeline *tl, enum tl_mode m, enum tl_outcome out, int64_t at_ns,
             int64_t latency_us)
{
	struct tl_counts *c = &slot(tl, at_ns)->mode[m];
	if (out == TL_OK) {
		c->ok++;
		c->latency.count++;
		c->latency.buckets[index_of(latency_us < 0 ? 0 : (uint64_t)latency_us)]++;
		return;
	}
	c->failed++;
	if (out == TL_REFUSED)
		c->refused++;
}

void tl_callback(struct timeline *tl, int64_t at_ns)
{
	slot(tl, at_ns)->callbacks++;
}

void tl_server(struct timeline *tl, int64_t at_ns, const struct tl_server *s)
{
	server_max(&slot(tl, at_ns)->server, s);
}

void tl_merge(struct timeline *dst, struct timeline *src)
{
	while (dst->width_ns < src->width_ns)
		coarsen(dst);
	while (src->width_ns < dst->width_ns)
		coarsen(src);
	for (size_t k = 0; k < src->used; k++) {
		if (k >= dst->used) {
			interval_clear(&dst->iv[k]);
			dst->used = k + 1;
		}
		interval_add(&dst->iv[k], &src->iv[k]);
	}
}

size_t tl_count(const struct timeline *tl)
{
	return tl->used;
}

double tl_width_s(const struct timeline *tl)
{
	return (double)tl->width_ns / 1e9;
}

const struct tl_interval *tl_at(const struct timeline *tl, size_t k)
{
	return &tl->iv[k];
}
