/*
 * hist: an HDR-like latency histogram for consuma-storm.
 *
 * Values are microseconds. Below 256 every value has its own bucket; above,
 * each power of two is split into 128 linear buckets, so a percentile read
 * back is within 1/128 (0.8 %) of the true sample. Exact min, max and sum are
 * kept beside the buckets. Memory is fixed (about 40 KiB, embedded in the
 * struct), so recording never allocates and never fails: values past the last
 * bucket (about 2^42 us, 50 days) land in it.
 * Not thread safe: one owner records, and reads after recording ends.
 */
#ifndef CONSUMA_STORM_HIST_H
#define CONSUMA_STORM_HIST_H

#include <stddef.h>
#include <stdint.h>

#define HIST_SUB_BITS 8
#define HIST_SUB      (1 << HIST_SUB_BITS) /* 256 */
#define HIST_HALF     (HIST_SUB / 2)       /* 128 */
#define HIST_MAX_EXP  35                   /* shifts 1..35 */
#define HIST_BUCKETS  (HIST_SUB + HIST_MAX_EXP * HIST_HALF)

struct hist {
	uint64_t count;
	uint64_t min_us;
	uint64_t max_us;
	double sum_us;
	uint64_t buckets[HIST_BUCKETS];
};

/* The bucket layout, shared with histograms of other precision
 * (timeline.h): with b = sub_bits, value v below 2^b has bucket v; above,
 * with e the shift that brings v into [2^(b-1), 2^b), bucket
 * 2^b + (e - 1) * 2^(b-1) + (v >> e) - 2^(b-1), the last bucket taking
 * everything past max_exp shifts. hist_layout_top is a bucket's highest
 * value, ((v >> e) + 1) << e minus one. */
static inline size_t hist_layout_index(uint64_t v, int sub_bits, int max_exp)
{
	const uint64_t sub = 1ULL << sub_bits, half = sub / 2;
	if (v < sub)
		return (size_t)v;
	int e = (63 - __builtin_clzll(v)) - (sub_bits - 1);
	if (e > max_exp)
		return (size_t)(sub + (uint64_t)max_exp * half - 1);
	return (size_t)(sub + (uint64_t)(e - 1) * half + ((v >> e) - half));
}

static inline uint64_t hist_layout_top(size_t idx, int sub_bits)
{
	const uint64_t sub = 1ULL << sub_bits, half = sub / 2;
	if (idx < sub)
		return idx;
	uint64_t rel = idx - sub;
	int e = (int)(rel / half) + 1;
	return (((rel % half) + half + 1) << e) - 1;
}

/* The 1-based rank of percentile p (0 < p < 100) among count values. */
static inline uint64_t hist_rank(uint64_t count, double p)
{
	double want = p / 100.0 * (double)count;
	uint64_t rank = (uint64_t)want;
	/* want carries rounding error (99.9 / 100 * 1000 is 999.0000000000001):
	 * a fraction that small is not a reason to take the next rank */
	if ((double)rank < want - want * 1e-12)
		rank++;
	return rank == 0 ? 1 : rank;
}

/* Empties h. */
void hist_init(struct hist *h);
/* Records one value; negative values count as 0. */
void hist_record(struct hist *h, int64_t us);
/* The value at percentile p (0..100): the smallest recorded bucket value at
 * or below which p % of the values fall, clamped to [min, max]; p <= 0 gives
 * min, p >= 100 gives max. 0 when h is empty. */
uint64_t hist_percentile(const struct hist *h, double p);
/* Adds every value recorded in src to dst. */
void hist_merge(struct hist *dst, const struct hist *src);
/* Mean in microseconds; 0 when empty. */
double hist_mean(const struct hist *h);

#endif
