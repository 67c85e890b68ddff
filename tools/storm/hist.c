/*
 * hist: HDR-like histogram (see hist.h for the bucket layout, which
 * timeline.c shares at a coarser precision).
 */
#include "hist.h"

#include <string.h>

static size_t index_of(uint64_t v)
{
	return hist_layout_index(v, HIST_SUB_BITS, HIST_MAX_EXP);
}

static uint64_t highest_of(size_t idx)
{
	return hist_layout_top(idx, HIST_SUB_BITS);
}

void hist_init(struct hist *h)
{
	memset(h, 0, sizeof(*h));
}

void hist_record(struct hist *h, int64_t us)
{
	uint64_t v = us < 0 ? 0 : (uint64_t)us;
	if (h->count == 0 || v < h->min_us)
		h->min_us = v;
	if (v > h->max_us)
		h->max_us = v;
	h->count++;
	h->sum_us += (double)v;
	h->buckets[index_of(v)]++;
}

uint64_t hist_percentile(const struct hist *h, double p)
{
	if (h->count == 0)
		return 0;
	if (p <= 0)
		return h->min_us;
	if (p >= 100)
		return h->max_us;
	uint64_t rank = hist_rank(h->count, p);
	uint64_t seen = 0;
	for (size_t i = 0; i < HIST_BUCKETS; i++) {
		seen += h->buckets[i];
		if (seen >= rank) {
			uint64_t v = highest_of(i);
			if (v > h->max_us)
				v = h->max_us;
			if (v < h->min_us)
				v = h->min_us;
			return v;
		}
	}
	return h->max_us;
}

void hist_merge(struct hist *dst, const struct hist *src)
{
	if (src->count == 0)
		return;
	if (dst->count == 0 || src->min_us < dst->min_us)
		dst->min_us = src->min_us;
	if (src->max_us > dst->max_us)
		dst->max_us = src->max_us;
	dst->count += src->count;
	dst->sum_us += src->sum_us;
	for (size_t i = 0; i < HIST_BUCKETS; i++)
		dst->buckets[i] += src->buckets[i];
}

double hist_mean(const struct hist *h)
{
	return h->count ? h->sum_us / (double)h->count : 0.0;
}
