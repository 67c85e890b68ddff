/*
 * report_say: the sentences of a report, what the numbers say, and its
 * one-line verdict; the terminal and the HTML page both print them.
 */
#include "report_int.h"

#include <math.h>
#include <string.h>

static const char *plural(uint64_t n, const char *noun)
{
	if (strcmp(noun, "job") == 0)
		return n == 1 ? "job" : "jobs";
	return n == 1 ? "callback" : "callbacks";
}

/* Per mode of a --sweep: up to which offered rate it kept up (answered
 * 95 % of the rate), and what the next rate did to its p99. */
static void sweep_sentences(struct buf *b, const struct report_run *r)
{
	for (int m = 0; m < 2 && r->n_steps > 0; m++) {
		int kept = -1, broke = -1;
		for (int i = 0; i < r->n_steps; i++) {
			const struct result_mode *rm = m ? &r->steps[i].async : &r->steps[i].sync;
			if (!rm->ran)
				break;
			bool up = rm->succeeded_rate >= 0.95 * rm->requested_rate;
			if (up && broke < 0)
				kept = i;
			else if (!up && broke < 0)
				broke = i;
		}
		const char *path = m ? "/async" : "/sync";
		const struct result_mode *first = m ? &r->steps[0].async : &r->steps[0].sync;
		if (!first->ran)
			continue;
		if (broke < 0) {
			buf_printf(b, "Sweep: %s kept up with every offered rate, up to %g/s.\n",
			           path, r->steps[r->n_steps - 1].rate);
			continue;
		}
		const struct result_mode *bm = m ? &r->steps[broke].async : &r->steps[broke].sync;
		char x[32];
		if (kept >= 0)
			buf_printf(b, "Sweep: %s kept up to %g/s; at %g/s", path,
			           r->steps[kept].rate, r->steps[broke].rate);
		else
			buf_printf(b, "Sweep: %s fell behind from the first rate; at %g/s", path,
			           r->steps[broke].rate);
		if (r->o->mode == OPTS_MIXED)
			buf_printf(b, " (%g/s of it to %s)", bm->requested_rate, path);
		buf_printf(b, " it answered %.1f/s with a result", bm->succeeded_rate);
		if (bm->latency.count)
			buf_printf(
			    b, " and p99 was %s ms",
			    report_fmt_ms(x, sizeof(x), ms(hist_percentile(&bm->latency, 99))));
		buf_puts(b, ": that is the knee.\n");
	}
}

/* While /sync was refusing, how fast /async accepted in the same intervals. */
static void isolation_sentence(struct buf *b, const struct report_run *r)
{
	if (!r->tl || !r->sync.ran || !r->async.ran)
		return;
	double worst_a = 0, worst_s = 0;
	int n = 0;
	for (size_t i = 0; i < tl_count(r->tl); i++) {
		const struct tl_interval *iv = tl_at(r->tl, i);
		double a99 = report_tl_pct_ms(iv, TL_ASYNC, 99);
		double s99 = report_tl_pct_ms(iv, TL_SYNC, 99);
		if (!iv->mode[TL_SYNC].refused || isnan(a99))
			continue;
		n++;
		worst_a = fmax(worst_a, a99);
		if (!isnan(s99))
			worst_s = fmax(worst_s, s99);
	}
	if (n == 0)
		return;
	char x[32], y[32];
	buf_printf(b,
	           "In the %d %s in which /sync was refusing, /async still accepted with p99 at "
	           "most %s ms",
	           n, n == 1 ? "interval" : "intervals", report_fmt_ms(x, sizeof(x), worst_a));
	if (worst_s > 0)
		buf_printf(b, " (/sync's p99 up to %s ms)", report_fmt_ms(y, sizeof(y), worst_s));
	buf_puts(b, ".\n");
}

/* One sentence per line. */
void report_sentences(struct buf *b, const struct report_run *r)
{
	const struct opts *o = r->o;
	const struct result_mode *s = &r->sync, *a = &r->async;
	char x[32], y[32], z[32], w[32];
	bool have_s = s->ran && s->latency.count > 0;
	bool have_a = a->ran && a->latency.count > 0;
	bool have_c = a->ran && a->callback_latency.count > 0;
	double s50 = ms(hist_percentile(&s->latency, 50));
	double s99 = ms(hist_percentile(&s->latency, 99));
	double a50 = ms(hist_percentile(&a->latency, 50));
	double a99 = ms(hist_percentile(&a->latency, 99));
	double c50 = ms(hist_percentile(&a->callback_latency, 50));
	double c99 = ms(hist_percentile(&a->callback_latency, 99));

	if (s->ran && a->ran) {
		uint64_t good = a->cb.received - a->cb.wrong_result;
		buf_printf(b,
		           "The headline: /sync gave %llu of %llu callers their result; /async "
		           "accepted %llu of %llu and ",
		           (unsigned long long)s->succeeded, (unsigned long long)s->sent,
		           (unsigned long long)a->succeeded, (unsigned long long)a->sent);
		if (good == a->succeeded)
			buf_puts(b, "delivered every result by callback.\n");
		else
			buf_printf(b, "delivered %llu correct results by callback.\n",
			           (unsigned long long)good);
	}
	if (have_s) {
		if (s->succeeded < s->sent)
			buf_printf(
			    b, "Sync: %llu of %llu callers got their answer; of those, half had it",
			    (unsigned long long)s->succeeded, (unsigned long long)s->sent);
		else
			buf_puts(b, "Sync: half the callers had their answer");
		buf_printf(b,
		           " within %s ms; 1 in 100 waited longer than %s ms, the slowest "
		           "%s ms.\n",
		           report_fmt_ms(x, sizeof(x), s50), report_fmt_ms(y, sizeof(y), s99),
		           report_fmt_ms(z, sizeof(z), ms(s->latency.max_us)));
	}
	if (have_a) {
		if (a->succeeded < a->sent)
			buf_printf(b,
			           "Async: %llu of %llu callers got a 202; of those, half had it",
			           (unsigned long long)a->succeeded, (unsigned long long)a->sent);
		else
			buf_puts(b, "Async: half the callers had their 202");
		buf_printf(b, " within %s ms (p99 %s ms)", report_fmt_ms(x, sizeof(x), a50),
		           report_fmt_ms(y, sizeof(y), a99));
		if (have_s && a50 > 0 && a50 < s50)
			buf_printf(b, ", %.1fx sooner than a sync answer at the median", s50 / a50);
		else if (have_s)
			buf_puts(b, ", no sooner than a sync answer at the median");
		if (have_c)
			buf_printf(
			    b, "; the result itself came by callback after %s ms (p99 %s ms)",
			    report_fmt_ms(z, sizeof(z), c50), report_fmt_ms(w, sizeof(w), c99));
		buf_puts(b, ".\n");
	}
	if (have_s && have_c)
		buf_printf(
		    b, "To the result, async took %s ms at the median against %s ms for sync%s\n",
		    report_fmt_ms(x, sizeof(x), c50), report_fmt_ms(y, sizeof(y), s50),
		    c50 >= s50 ? "; what async buys is a caller that is free after the 202, "
		                 "not a faster result."
		               : ": under this load the queue and the deliverer's workers "
		                 "beat the synchronous path even to the result.");
	const struct result_mode *modes[2] = {s, a};
	for (int k = 0; k < 2 && r->n_steps == 0; k++) {
		const struct result_mode *m = modes[k];
		if (!m->ran)
			continue;
		const char *path = m->is_async ? "/async" : "/sync";
		const char *good = m->is_async ? "a 202" : "a result";
		double rate = m->requested_rate;
		if (rate > 0)
			buf_printf(b, "Open loop at %.1f requests/s: %s answered %.1f/s", rate,
			           path, m->achieved_rate);
		else
			buf_printf(b, "Closed loop, %d in flight: %s answered %.1f requests/s",
			           o->concurrency, path, m->achieved_rate);
		if (m->succeeded < m->sent)
			buf_printf(b, ", %.1f/s of them with %s", m->succeeded_rate, good);
		if (rate > 0 && m->achieved_rate < 0.95 * rate)
			buf_puts(b,
			         "; it fell behind, so requests queued: latency counts from when "
			         "each was due, and the tail shows the wait");
		buf_puts(b, ".\n");
	}
	sweep_sentences(b, r);
	isolation_sentence(b, r);
	uint64_t failed = (s->ran ? s->failed : 0) + (a->ran ? a->failed : 0);
	if (failed == 0)
		buf_puts(b, "No request failed or was refused.\n");
	for (int k = 0; k < 2; k++) {
		const struct result_mode *m = modes[k];
		if (!m->ran || !m->failed)
			continue;
		uint64_t refused = result_refused(m);
		if (refused) {
			buf_printf(b, "%llu of %llu %s requests were refused at once (",
			           (unsigned long long)refused, (unsigned long long)m->sent,
			           m->is_async ? "async" : "sync");
			report_causes(b, m, REFUSALS);
			buf_puts(b, "): the service said no early instead of letting them wait; a "
			            "refusal is an answer, not a loss");
			if (m->refused_no_retry_after)
				buf_printf(
				    b, ", but %llu came without the Retry-After the API promises",
				    (unsigned long long)m->refused_no_retry_after);
			buf_puts(b, ".\n");
		}
		if (m->failed > refused) {
			buf_printf(b, "%llu of %llu %s requests failed: ",
			           (unsigned long long)(m->failed - refused),
			           (unsigned long long)m->sent, m->is_async ? "async" : "sync");
			report_causes(b, m, OTHERS);
			buf_puts(b, ".\n");
		}
	}
	if (a->ran && a->cb.expected > 0) {
		const struct result_callbacks *cb = &a->cb;
		if (cb->missing && a->interrupted)
			buf_printf(
			    b,
			    "%llu of %llu accepted jobs had not called back when the run was "
			    "interrupted.\n",
			    (unsigned long long)cb->missing, (unsigned long long)cb->expected);
		else if (cb->missing)
			buf_printf(b,
			           "%llu of %llu accepted jobs never called back within the %.0f s "
			           "callback wait.\n",
			           (unsigned long long)cb->missing,
			           (unsigned long long)cb->expected, o->callback_wait_s);
		else
			buf_printf(b, "Every accepted job called back%s.\n",
			           cb->duplicated ? "" : " exactly once");
		if (cb->duplicated)
			buf_printf(b,
			           "%llu %s called back more than once (delivery is at-least-once; "
			           "deduplicate by webhook-id).\n",
			           (unsigned long long)cb->duplicated,
			           plural(cb->duplicated, "job"));
		if (cb->wrong_result)
			buf_printf(b,
			           "%llu %s disagreed with the request (the result computed here, "
			           "request_id, status or iterations): that is a bug.\n",
			           (unsigned long long)cb->wrong_result,
			           plural(cb->wrong_result, "callback"));
		else if (cb->received)
			buf_puts(b, "Every callback's result matched the work computed here.\n");
		if (cb->checked_signatures && cb->bad_signature)
			buf_printf(b, "%llu %s failed signature verification.\n",
			           (unsigned long long)cb->bad_signature,
			           plural(cb->bad_signature, "callback"));
		else if (cb->checked_signatures && cb->received)
			buf_puts(b, "Every callback's signature verified.\n");
		if (cb->out_of_order)
			buf_printf(
			    b,
			    "%llu %s arrived after one for a later-accepted job: jobs start in "
			    "acceptance order but finish in parallel, so order by created_at "
			    "when it matters.\n",
			    (unsigned long long)cb->out_of_order,
			    plural(cb->out_of_order, "callback"));
	}
	if ((s->ran && s->interrupted) || (a->ran && a->interrupted))
		buf_puts(b, "The run was interrupted: these numbers cover only part of it.\n");
}

/* One line: OK, or what went wrong, counted. */
void report_verdict(struct buf *b, const struct report_run *r)
{
	const struct result_mode *modes[2] = {&r->sync, &r->async};
	uint64_t refused = 0, failed = 0, missing = 0, wrong = 0, badsig = 0;
	bool interrupted = false;
	for (int k = 0; k < 2; k++) {
		const struct result_mode *m = modes[k];
		if (!m->ran)
			continue;
		refused += result_refused(m);
		failed += m->failed - result_refused(m);
		interrupted |= m->interrupted;
		if (m->is_async) {
			missing += m->cb.missing;
			wrong += m->cb.wrong_result;
			badsig += m->cb.bad_signature;
		}
	}
	if (r->ok) {
		buf_puts(b, "OK, nothing lost or wrong");
		if (refused)
			buf_printf(b, "; %llu requests refused with 429/503",
			           (unsigned long long)refused);
		if (r->th_failed)
			buf_printf(b, "; but %d of %d thresholds FAILED", r->th_failed,
			           r->o->n_thresholds);
		return;
	}
	buf_puts(b, "PROBLEMS:");
	const char *sep = " ";
	if (failed) {
		buf_printf(b, "%s%llu requests failed", sep, (unsigned long long)failed);
		sep = ", ";
	}
	if (missing) {
		buf_printf(b, "%s%llu callbacks missing", sep, (unsigned long long)missing);
		sep = ", ";
	}
	if (wrong) {
		buf_printf(b, "%s%llu wrong callbacks", sep, (unsigned long long)wrong);
		sep = ", ";
	}
	if (badsig) {
		buf_printf(b, "%s%llu bad signatures", sep, (unsigned long long)badsig);
		sep = ", ";
	}
	if (interrupted)
		buf_printf(b, "%sinterrupted", sep);
}

void report_thresholds(struct buf *b, const struct report_run *r)
{
	static const char *const op_text[] = {"<", "<=", ">", ">="};
	for (int k = 0; k < r->o->n_thresholds; k++) {
		const struct threshold *t = &r->o->thresholds[k];
		const struct threshold_result *res = &r->th[k];
		const char *unit = threshold_unit(t);
		bool rate = !*unit;
		if (!res->have) {
			buf_printf(b, "FAILED %s: no samples to judge\n", t->text);
			continue;
		}
		char actual[32], by[32];
		if (rate) {
			snprintf(actual, sizeof(actual), "%.4f", res->actual);
			snprintf(by, sizeof(by), "%.4f", fabs(res->actual - t->limit));
		} else {
			report_fmt_ms(actual, sizeof(actual), res->actual);
			report_fmt_ms(by, sizeof(by), fabs(res->actual - t->limit));
		}
		if (res->ok)
			buf_printf(b, "ok %s: %s%s%s\n", t->text, actual, rate ? "" : " ", unit);
		else
			buf_printf(b,
			           "FAILED %s: %s%s%s, %s%s%s past the limit (wanted %s %g%s%s)\n",
			           t->text, actual, rate ? "" : " ", unit, by, rate ? "" : " ",
			           unit, op_text[t->op], t->limit, rate ? "" : " ", unit);
	}
}
