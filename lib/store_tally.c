/*
 * store_tally: the counters of an open write transaction (see store_tally.h).
 */
#include "store_tally.h"

#include <string.h>

#include "alloc.h"
#include "store_int.h"

bool tally_grow(void *v, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return true;
	size_t more = *cap ? *cap * 2 : 16;
	void *p = cz_realloc(*(void **)v, more * size);
	if (!p)
		return false;
	*(void **)v = p;
	*cap = more;
	return true;
}

/* A transaction touches few keys (one client and one or two destinations
 * per job, most of a batch's jobs sharing them): a list walk is enough. */
struct tally *tally_find(struct tallies *t, const char *key)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->v[i].key, key) == 0)
			return &t->v[i];
	return NULL;
}

struct tally *tally_get(struct tallies *t, const char *key, int64_t base, bool known)
{
	struct tally *have = tally_find(t, key);
	if (have)
		return have;
	if (!tally_grow(&t->v, &t->cap, t->n, sizeof *t->v))
		return NULL;
	char *k = cz_strdup(key);
	if (!k)
		return NULL;
	t->v[t->n] = (struct tally){.key = k, .base = base, .known = known};
	return &t->v[t->n++];
}

void tallies_clear(struct tallies *t)
{
	for (size_t i = 0; i < t->n; i++)
		cz_free(t->v[i].key);
	cz_free(t->v);
	memset(t, 0, sizeof *t);
}

void tally_keys_clear(struct tally_keys *k)
{
	json_object_put(k->doc);
	cz_free(k->v);
	memset(k, 0, sizeof *k);
}

enum store_err tally_keys_of(struct store *s, const char *pending_keys, const char *callback_host,
                             struct tally_keys *k)
{
	memset(k, 0, sizeof *k);
	size_t n = 1;
	if (pending_keys) {
		k->doc = json_tokener_parse(pending_keys);
		if (!k->doc || !json_object_is_type(k->doc, json_type_array)) {
			tally_keys_clear(k);
			store_set_msg(s, "pending_keys is not a JSON array");
			return STORE_IO;
		}
		n = json_object_array_length(k->doc);
	}
	k->v = cz_calloc(n ? n : 1, sizeof *k->v);
	if (!k->v) {
		tally_keys_clear(k);
		return STORE_NOMEM;
	}
	for (size_t i = 0; k->doc && i < n; i++) {
		json_object *e = json_object_array_get_idx(k->doc, i);
		if (!json_object_is_type(e, json_type_string)) {
			tally_keys_clear(k);
			store_set_msg(s, "pending_keys holds a value that is not a string");
			return STORE_IO;
		}
		k->v[i] = json_object_get_string(e);
	}
	if (!k->doc)
		k->v[0] = callback_host ? callback_host : "";
	k->n = n;
	return STORE_OK;
}
