/*
 * result: adding one mode's results to another (see result.h): a worker's
 * part to the run, a --sweep step to the sweep's totals.
 */
#include "result.h"

void result_merge(struct result_mode *dst, const struct result_mode *src)
{
	dst->sent += src->sent;
	dst->succeeded += src->succeeded;
	dst->failed += src->failed;
	for (int c = 0; c < CAUSE_COUNT; c++)
		dst->cause[c] += src->cause[c];
	for (int s = 0; s < RESULT_STATUS_MAX; s++)
		dst->http_status[s] += src->http_status[s];
	dst->refused_no_retry_after += src->refused_no_retry_after;
	dst->interrupted |= src->interrupted;
	hist_merge(&dst->latency, &src->latency);
	hist_merge(&dst->callback_latency, &src->callback_latency);
	struct result_callbacks *d = &dst->cb;
	const struct result_callbacks *s = &src->cb;
	d->checked_signatures |= s->checked_signatures;
	d->expected += s->expected;
	d->received += s->received;
	d->missing += s->missing;
	d->duplicated += s->duplicated;
	d->out_of_order += s->out_of_order;
	d->wrong_result += s->wrong_result;
	d->bad_signature += s->bad_signature;
	d->unexpected += s->unexpected;
	d->waited_s += s->waited_s;
	d->span_s += s->span_s;
}
