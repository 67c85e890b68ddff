/*
 * report_json: --json (fields in report.h) and --csv (the timeline).
 */
#include "report_int.h"

#include <math.h>
#include <string.h>

#define JSON_MAX (8 * 1024 * 1024)

static void json_num(struct buf *b, double v)
{
	if (isfinite(v))
		buf_printf(b, "%.3f", v);
	else
		buf_puts(b, "null");
}

static void json_lat(struct buf *b, const char *name, const struct hist *h)
{
	buf_printf(b, ",\"%s\":{\"count\":%llu", name, (unsigned long long)h->count);
	static const double ps[] = {0, 50, 95, 99, 99.9, 100};
	static const char *const pn[] = {"min", "p50", "p95", "p99", "p999", "max"};
	for (int k = 0; k < 6; k++) {
		buf_printf(b, ",\"%s\":", pn[k]);
		if (h->count)
			json_num(b, ms(hist_percentile(h, ps[k])));
		else
			buf_puts(b, "null");
	}
	buf_puts(b, ",\"mean\":");
	if (h->count)
		json_num(b, hist_mean(h) / 1000.0);
	else
		buf_puts(b, "null");
	buf_putc(b, '}');
}

static void json_mode(struct buf *b, const struct result_mode *m)
{
	if (!m->ran) {
		buf_puts(b, "null");
		return;
	}
	buf_printf(b,
	           "{\"sent\":%llu,\"succeeded\":%llu,\"failed\":%llu,\"refused\":%llu,"
	           "\"refused_without_retry_after\":%llu,\"failures\":{",
	           (unsigned long long)m->sent, (unsigned long long)m->succeeded,
	           (unsigned long long)m->failed, (unsigned long long)result_refused(m),
	           (unsigned long long)m->refused_no_retry_after);
	for (int c = 0; c < CAUSE_COUNT; c++)
		buf_printf(b, "%s\"%s\":%llu", c ? "," : "", report_cause_key[c],
		           (unsigned long long)m->cause[c]);
	buf_puts(b, ",\"by_status\":{");
	const char *sep = "";
	for (int s = 0; s < RESULT_STATUS_MAX; s++)
		if (m->http_status[s]) {
			buf_printf(b, "%s\"%d\":%llu", sep, s,
			           (unsigned long long)m->http_status[s]);
			sep = ",";
		}
	buf_puts(b, "}},\"duration_s\":");
	json_num(b, m->duration_s);
	buf_puts(b, ",\"requested_rate\":");
	if (m->requested_rate > 0)
		json_num(b, m->requested_rate);
	else
		buf_puts(b, "null");
	buf_puts(b, ",\"achieved_rate\":");
	json_num(b, m->achieved_rate);
	buf_puts(b, ",\"succeeded_rate\":");
	json_num(b, m->succeeded_rate);
	buf_printf(b, ",\"interrupted\":%s", m->interrupted ? "true" : "false");
	json_lat(b, "latency_ms", &m->latency);
	if (m->is_async) {
		json_lat(b, "callback_latency_ms", &m->callback_latency);
		const struct result_callbacks *cb = &m->cb;
		buf_printf(
		    b,
		    ",\"callbacks\":{\"expected\":%llu,\"received\":%llu,\"missing\":%llu,"
		    "\"duplicated\":%llu,\"out_of_order\":%llu,\"wrong_result\":%llu,"
		    "\"bad_signature\":%llu,\"unexpected\":%llu,\"waited_s\":",
		    (unsigned long long)cb->expected, (unsigned long long)cb->received,
		    (unsigned long long)cb->missing, (unsigned long long)cb->duplicated,
		    (unsigned long long)cb->out_of_order, (unsigned long long)cb->wrong_result,
		    (unsigned long long)cb->bad_signature, (unsigned long long)cb->unexpected);
		json_num(b, cb->waited_s);
		buf_puts(b, ",\"span_s\":");
		json_num(b, cb->span_s);
		buf_putc(b, '}');
	}
	buf_putc(b, '}');
}

static void json_str(struct buf *b, const char *s)
{
	buf_json_string(b, s, strlen(s));
}

/* A positive number, or null. */
static void json_opt(struct buf *b, double v)
{
	if (v > 0)
		json_num(b, v);
	else
		buf_puts(b, "null");
}

static void json_ms_or_null(struct buf *b, double v)
{
	if (isnan(v))
		buf_puts(b, "null");
	else
		json_num(b, v);
}

static void json_tl_mode(struct buf *b, const struct tl_interval *iv, int m, bool ran)
{
	if (!ran) {
		buf_puts(b, "null");
		return;
	}
	const struct tl_counts *c = &iv->mode[m];
	buf_printf(b, "{\"sent\":%llu,\"ok\":%llu,\"refused\":%llu,\"failed\":%llu,\"p50_ms\":",
	           (unsigned long long)c->sent, (unsigned long long)c->ok,
	           (unsigned long long)c->refused, (unsigned long long)c->failed);
	json_ms_or_null(b, report_tl_pct_ms(iv, m, 50));
	buf_puts(b, ",\"p99_ms\":");
	json_ms_or_null(b, report_tl_pct_ms(iv, m, 99));
	if (m == TL_ASYNC)
		buf_printf(b, ",\"callbacks\":%llu", (unsigned long long)iv->callbacks);
	buf_putc(b, '}');
}

static void json_int_or_null(struct buf *b, int64_t v)
{
	if (v < 0)
		buf_puts(b, "null");
	else
		buf_printf(b, "%lld", (long long)v);
}

static void json_timeline(struct buf *b, const struct report_run *r)
{
	const struct timeline *tl = r->tl;
	buf_puts(b, ",\"timeline_interval_s\":");
	if (tl)
		json_num(b, tl_width_s(tl));
	else
		buf_puts(b, "null");
	buf_puts(b, ",\"timeline\":[");
	for (size_t i = 0; tl && i < tl_count(tl); i++) {
		const struct tl_interval *iv = tl_at(tl, i);
		buf_puts(b, i ? ",\n{\"t_s\":" : "\n{\"t_s\":");
		json_num(b, (double)i * tl_width_s(tl));
		buf_puts(b, ",\"sync\":");
		json_tl_mode(b, iv, TL_SYNC, r->sync.ran);
		buf_puts(b, ",\"async\":");
		json_tl_mode(b, iv, TL_ASYNC, r->async.ran);
		buf_puts(b, ",\"server\":");
		const struct tl_server *sv = &iv->server;
		if (!sv->sampled) {
			buf_puts(b, "null}");
			continue;
		}
		buf_puts(b, "{\"queue_depth\":");
		json_int_or_null(b, sv->queue_depth);
		buf_puts(b, ",\"active_workers\":");
		json_int_or_null(b, sv->active_workers);
		buf_puts(b, ",\"inflight\":");
		json_int_or_null(b, sv->inflight);
		buf_puts(b, ",\"oldest_pending_age_s\":");
		if (sv->oldest_age_s >= 0)
			json_num(b, sv->oldest_age_s);
		else
			buf_puts(b, "null");
		buf_puts(b, "}}");
	}
	buf_putc(b, ']');
}

static void json_pct(struct buf *b, const char *name, const struct hist *h, double p)
{
	buf_printf(b, ",\"%s\":", name);
	if (h->count)
		json_num(b, ms(hist_percentile(h, p)));
	else
		buf_puts(b, "null");
}

static void json_step_mode(struct buf *b, const struct result_mode *m)
{
	if (!m->ran) {
		buf_puts(b, "null");
		return;
	}
	buf_printf(b, "{\"sent\":%llu,\"succeeded\":%llu,\"refused\":%llu,\"failed\":%llu,",
	           (unsigned long long)m->sent, (unsigned long long)m->succeeded,
	           (unsigned long long)result_refused(m), (unsigned long long)m->failed);
	buf_puts(b, "\"achieved_rate\":");
	json_num(b, m->achieved_rate);
	buf_puts(b, ",\"succeeded_rate\":");
	json_num(b, m->succeeded_rate);
	json_pct(b, "p50_ms", &m->latency, 50);
	json_pct(b, "p95_ms", &m->latency, 95);
	json_pct(b, "p99_ms", &m->latency, 99);
	if (m->is_async) {
		json_pct(b, "callback_p50_ms", &m->callback_latency, 50);
		json_pct(b, "callback_p99_ms", &m->callback_latency, 99);
	}
	buf_putc(b, '}');
}

static void json_sweep(struct buf *b, const struct report_run *r)
{
	buf_puts(b, ",\"sweep\":");
	if (r->n_steps == 0) {
		buf_puts(b, "null");
		return;
	}
	for (int i = 0; i < r->n_steps; i++) {
		buf_puts(b, i ? ",\n{\"rate\":" : "[\n{\"rate\":");
		json_num(b, r->steps[i].rate);
		buf_puts(b, ",\"sync\":");
		json_step_mode(b, &r->steps[i].sync);
		buf_puts(b, ",\"async\":");
		json_step_mode(b, &r->steps[i].async);
		buf_putc(b, '}');
	}
	buf_putc(b, ']');
}

static void json_thresholds(struct buf *b, const struct report_run *r)
{
	buf_puts(b, ",\"thresholds\":[");
	for (int k = 0; k < r->o->n_thresholds; k++) {
		const struct threshold *t = &r->o->thresholds[k];
		buf_puts(b, k ? ",{\"expr\":" : "{\"expr\":");
		json_str(b, t->text);
		buf_printf(b, ",\"ok\":%s,\"actual\":", r->th[k].ok ? "true" : "false");
		if (r->th[k].have)
			buf_printf(b, "%.6g", r->th[k].actual);
		else
			buf_puts(b, "null");
		buf_printf(b, ",\"limit\":%.6g,\"unit\":\"%s\"}", t->limit, threshold_unit(t));
	}
	buf_putc(b, ']');
}

static void csv_cell_ms(struct buf *b, double v)
{
	if (isnan(v))
		buf_puts(b, ",");
	else
		buf_printf(b, ",%.3f", v);
}

static void csv_cell_int(struct buf *b, bool have, int64_t v)
{
	if (have && v >= 0)
		buf_printf(b, ",%lld", (long long)v);
	else
		buf_puts(b, ",");
}

enum report_err report_csv(const char *path, const struct report_run *r)
{
	const struct timeline *tl = r->tl;
	struct buf b;
	buf_init(&b, JSON_MAX);
	buf_puts(&b, "t_s");
	static const char *const modes[2] = {"sync", "async"};
	for (int m = 0; m < 2; m++)
		buf_printf(&b, ",%s_sent,%s_ok,%s_refused,%s_failed,%s_p50_ms,%s_p99_ms", modes[m],
		           modes[m], modes[m], modes[m], modes[m], modes[m]);
	buf_puts(&b, ",async_callbacks,queue_depth,active_workers,inflight,oldest_pending_age_s\n");
	for (size_t i = 0; tl && i < tl_count(tl); i++) {
		const struct tl_interval *iv = tl_at(tl, i);
		buf_printf(&b, "%.3f", (double)i * tl_width_s(tl));
		for (int m = 0; m < 2; m++) {
			const struct tl_counts *c = &iv->mode[m];
			buf_printf(&b, ",%llu,%llu,%llu,%llu", (unsigned long long)c->sent,
			           (unsigned long long)c->ok, (unsigned long long)c->refused,
			           (unsigned long long)c->failed);
			csv_cell_ms(&b, report_tl_pct_ms(iv, m, 50));
			csv_cell_ms(&b, report_tl_pct_ms(iv, m, 99));
		}
		const struct tl_server *sv = &iv->server;
		buf_printf(&b, ",%llu", (unsigned long long)iv->callbacks);
		csv_cell_int(&b, sv->sampled, sv->queue_depth);
		csv_cell_int(&b, sv->sampled, sv->active_workers);
		csv_cell_int(&b, sv->sampled, sv->inflight);
		if (sv->sampled && sv->oldest_age_s >= 0)
			buf_printf(&b, ",%.3f\n", sv->oldest_age_s);
		else
			buf_puts(&b, ",\n");
	}
	enum report_err rc = report_write(path, &b);
	buf_free(&b);
	return rc;
}

enum report_err report_json(const char *path, const struct report_run *r)
{
	const struct opts *o = r->o;
	struct buf b;
	buf_init(&b, JSON_MAX);
	buf_puts(&b, "{\"schema\":\"consuma-storm/1\",\"version\":\"" CONSUMA_VERSION "\"");
	buf_puts(&b, ",\"started_at\":");
	json_str(&b, r->started_at);
	buf_printf(&b, ",\"ok\":%s,\"exit_status\":%d,\"interrupted\":%s", r->ok ? "true" : "false",
	           r->exit_status,
	           (r->sync.interrupted || r->async.interrupted) ? "true" : "false");
	buf_puts(&b, ",\"settings\":{\"server_url\":");
	json_str(&b, o->server_url);
	buf_printf(&b,
	           ",\"num_requests\":%llu,\"concurrency\":%d,\"mode\":\"%s\",\"iterations\":%lld",
	           (unsigned long long)o->num_requests, o->concurrency, opts_mode_name(o->mode),
	           (long long)o->iterations);
	buf_printf(&b, ",\"threads\":%d", o->threads);
	buf_printf(&b,
	           ",\"loop\":\"%s\",\"rate\":", o->rate > 0 || o->n_sweep > 0 ? "open" : "closed");
	json_opt(&b, o->rate);
	buf_puts(&b, ",\"mix\":");
	json_opt(&b, o->mode == OPTS_MIXED ? o->mix : 0);
	buf_puts(&b, ",\"interval_s\":");
	json_num(&b, o->interval_s);
	buf_puts(&b, ",\"sweep\":");
	if (o->n_sweep > 0) {
		for (int k = 0; k < o->n_sweep; k++) {
			buf_putc(&b, k ? ',' : '[');
			json_num(&b, o->sweep[k]);
		}
		buf_putc(&b, ']');
	} else {
		buf_puts(&b, "null");
	}
	buf_puts(&b, ",\"timeout_s\":");
	json_num(&b, o->timeout_s);
	buf_puts(&b, ",\"callback_host\":");
	json_str(&b, o->callback_host);
	buf_printf(&b, ",\"callback_port\":%d,\"callback_wait_s\":", o->callback_port);
	json_num(&b, o->callback_wait_s);
	buf_printf(&b, ",\"seed\":%llu,\"signatures_checked\":%s,\"raw\":%s}",
	           (unsigned long long)o->seed, o->secret ? "true" : "false",
	           o->raw ? "true" : "false");
	buf_puts(&b, ",\"machine\":{\"uname\":");
	json_str(&b, r->uname);
	buf_printf(&b, ",\"nproc\":%ld,\"cpu\":", r->nproc);
	json_str(&b, r->cpu);
	buf_puts(&b, "},\"sync\":");
	json_mode(&b, &r->sync);
	buf_puts(&b, ",\"async\":");
	json_mode(&b, &r->async);
	json_timeline(&b, r);
	json_sweep(&b, r);
	json_thresholds(&b, r);
	buf_puts(&b, "}\n");
	enum report_err rc = report_write(path, &b);
	buf_free(&b);
	return rc;
}
