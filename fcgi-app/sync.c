/*
 * sync: POST /sync (see sync.h). The work runs inline in this process, which
 * is why /sync has its own FastCGI pool: a storm of slow /sync requests
 * holds only the sync pool's processes.
 *
 * The record of a /sync request is a log entry, not a promise: the answer
 * goes out first (http_finish), then the record is queued for the store's
 * next batch, written without an fsync (lib/store_commit.c). A crash may
 * lose the last few records; a client never waits on the disk for them.
 */
#include <stdio.h>
#include "alloc.h"
#include "auth.h"
#include "log.h"
#include "request.h"
#include "store.h"
#include "sync.h"
#include "work.h"

void sync_handle(struct http_exchange *x, const char *tail)
{
	struct job_request job = {0};
	struct sync_record rec = {0};
	enum work_err werr;
	enum store_err serr;
	char hex[WORK_HEX_LEN + 1];
	char dur[32];
	char *body = NULL;
	size_t len = 0;
	int64_t created;
	int64_t t0;
	double duration_ms;
	json_object *o = NULL;
	bool ok;

	(void)tail;
	ids_uuidv7(x->request_id);
	created = ids_now_ms();
	if (!http_read_job(x, REQUEST_SYNC, &job, &body, &len))
		goto out;

	limits_compute_enter(x->app->limits);
	t0 = ids_mono_ns();
	werr = work_sha256_iter(job.input_data, job.input_bytes, job.iterations, hex);
	t0 = ids_mono_ns() - t0;
	limits_compute_leave(x->app->limits, t0);
	duration_ms = (double)t0 / 1e6;
	if (werr != WORK_OK) {
		http_internal_error(x, "work", work_strerror(werr));
		goto out;
	}

	snprintf(dur, sizeof(dur), "%.3f", duration_ms);
	o = json_object_new_object();
	ok = o != NULL;
	if (ok) {
		ok = ok &&
		     http_json_add(o, "request_id", true, json_object_new_string(x->request_id));
		ok = ok && http_json_add(o, "status", true, json_object_new_string("completed"));
		ok = ok && http_json_add(o, "result", true, json_object_new_string(hex));
		ok = ok &&
		     http_json_add(o, "iterations", true, json_object_new_int64(job.iterations));
		ok = ok && http_json_add(o, "duration_ms", true,
		                         json_object_new_double_s(duration_ms, dur));
	}
	if (!ok) {
		http_internal_error(x, "response", "out of memory");
		goto out;
	}
	http_send_json(x, 200, o);
	http_finish(x);

	rec.id = x->request_id;
	rec.input_data = job.input_data;
	rec.iterations = job.iterations;
	rec.result = hex;
	rec.duration_ms = duration_ms;
	rec.created_at = created;
	rec.completed_at = ids_now_ms();
	rec.client_addr = x->client;
	rec.owner = auth_owner(x);
	serr = store_insert_sync(x->store, &rec);
	if (serr != STORE_OK)
		log_event(L_WARN, "sync.record_lost", "request_id=%s error=%s", x->request_id,
		          log_q(store_errmsg(x->store)));
out:
	json_object_put(o);
	request_free(&job);
	cz_free(body);
}
