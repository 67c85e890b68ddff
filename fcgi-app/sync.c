/*
 * sync: POST /sync (see sync.h). The work runs inline in this process, which
 * is why /sync has its own FastCGI pool: a storm of slow /sync requests
 * holds only the sync pool's processes.
 */
#include <stdio.h>
#include "alloc.h"
#include "request.h"
#include "store.h"
#include "sync.h"
#include "work.h"

void sync_handle(struct http_exchange *x, const char *tail)
{
	struct app *app = x->app;
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

	(void)tail;
	ids_uuidv7(x->request_id);
	created = ids_now_ms();
	if (!http_read_job(x, REQUEST_SYNC, &job, &body, &len))
		goto out;

	t0 = ids_mono_ns();
	werr = work_sha256_iter(job.input_data, job.input_bytes, job.iterations, hex);
	duration_ms = (double)(ids_mono_ns() - t0) / 1e6;
	if (werr != WORK_OK) {
		http_internal_error(x, "work", work_strerror(werr));
		goto out;
	}

	rec.id = x->request_id;
	rec.input_data = job.input_data;
	rec.iterations = job.iterations;
	rec.result = hex;
	rec.duration_ms = duration_ms;
	rec.created_at = created;
	rec.completed_at = ids_now_ms();
	rec.client_addr = x->client;
	writelock_hold(app->writelock);
	serr = store_insert_sync(app->store, &rec);
	writelock_drop(app->writelock);
	if (serr != STORE_OK) {
		http_store_failed(x, serr, "store_insert_sync");
		goto out;
	}

	snprintf(dur, sizeof(dur), "%.3f", duration_ms);
	o = json_object_new_object();
	if (o == NULL) {
		http_internal_error(x, "response", "out of memory");
		goto out;
	}
	json_object_object_add(o, "request_id", json_object_new_string(x->request_id));
	json_object_object_add(o, "status", json_object_new_string("completed"));
	json_object_object_add(o, "result", json_object_new_string(hex));
	json_object_object_add(o, "iterations", json_object_new_int64(job.iterations));
	json_object_object_add(o, "duration_ms", json_object_new_double_s(duration_ms, dur));
	http_send_json(x, 200, o);
out:
	json_object_put(o);
	request_free(&job);
	cz_free(body);
}
