/*
 * djob: allocation of the deliverer's job record (see djob.h).
 */
#include "djob.h"

#include <string.h>

#include "alloc.h"
#include "callback.h"

struct djob *djob_new(struct store_job *q)
{
	struct djob *j = cz_calloc(1, sizeof *j);
	if (!j)
		return NULL;
	j->q = *q;
	memset(q, 0, sizeof *q);
	j->stored = j->q.computed;
	buf_init(&j->body, CALLBACK_BODY_MAX);
	return j;
}

void djob_free(struct djob *j)
{
	if (!j)
		return;
	store_job_clear(&j->q);
	curl_slist_free_all(j->headers);
	curl_slist_free_all(j->resolve);
	buf_free(&j->body);
	cz_free(j);
}
