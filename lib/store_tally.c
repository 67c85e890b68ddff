/*
 * store_tally: the counters of an open write transaction (see store_tally.h).
 */
#include "store_tally.h"

#include <string.h>

#include "alloc.h"
#include "store_int.h"

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
	if (!cz_grow(&t->v, &t->cap, t->n, sizeof *t->v))
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
	cz_free(k->text);
	cz_free(k->v);
	memset(k, 0, sizeof *k);
}

/* The length of the JSON white space p starts with. */
static size_t spaces(const char *p)
{
	size_t n = 0;
	while (p[n] == ' ' || p[n] == '\t' || p[n] == '\n' || p[n] == '\r')
		n++;
	return n;
}

/* The shape ssrf_pending_keys writes, ["a","b"]: strings without escapes
 * or control bytes, split in a copy of the text (json-c's parse of it cost
 * ~6,000 instructions, twice per job). False for anything else, which
 * json-c then reads (k untouched, or cleared when memory ran out). */
static bool simple_keys(const char *json, struct tally_keys *k, bool *nomem)
{
	const char *p = json + spaces(json);
	size_t quotes = 0;
	if (*p != '[')
		return false;
	for (const char *q = p; *q; q++) {
		if (*q == '\\' || (unsigned char)*q < 0x20)
			return false;
		quotes += *q == '"';
	}
	char *text = cz_strdup(p);
	const char **v = cz_calloc(quotes / 2 + 1, sizeof *v);
	if (!text || !v) {
		cz_free(text);
		cz_free(v);
		*nomem = true;
		return false;
	}
	size_t n = 0;
	char *c = text + 1;
	c += spaces(c);
	bool ok = true;
	if (*c == ']') {
		c++;
	} else {
		for (;;) {
			char *end = *c == '"' ? strchr(c + 1, '"') : NULL;
			if (!end) {
				ok = false;
				break;
			}
			*end = '\0';
			v[n++] = c + 1;
			c = end + 1;
			c += spaces(c);
			if (*c == ']') {
				c++;
				break;
			}
			if (*c != ',') {
				ok = false;
				break;
			}
			c++;
			c += spaces(c);
		}
	}
	if (!ok || c[spaces(c)] != '\0') {
		cz_free(text);
		cz_free(v);
		return false;
	}
	k->text = text;
	k->v = v;
	k->n = n;
	return true;
}

enum store_err tally_keys_of(struct store *s, const char *pending_keys, const char *callback_host,
                             struct tally_keys *k)
{
	memset(k, 0, sizeof *k);
	size_t n = 1;
	bool nomem = false;
	if (pending_keys && simple_keys(pending_keys, k, &nomem))
		return STORE_OK;
	if (nomem)
		return STORE_NOMEM;
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
