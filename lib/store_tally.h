/*
 * store_tally: the counters a write transaction changes, kept by the store
 * in memory and written once per key at commit (both backends): the queue
 * depth, and the pending jobs per client and per destination key that the
 * intake bounds read. A row trigger did the same per job, several
 * statements each; a batch of jobs then paid them once per job and key.
 *
 * Inside the store only (store_int.h's rule): the backends include it.
 * Not thread safe: one per connection, like the connection.
 */
#ifndef CONSUMA_STORE_TALLY_H
#define CONSUMA_STORE_TALLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "store.h"

/* One counter of the open transaction: the value read at its first use
 * (base, when known) and what the transaction adds to it (delta). */
struct tally {
	char *key;
	int64_t base, delta;
	bool known;
};

struct tallies {
	struct tally *v;
	size_t n, cap;
};

/* The tally of key, or NULL. */
struct tally *tally_find(struct tallies *t, const char *key);
/* The tally of key, added with delta 0 (and base, when known) if there is
 * none; NULL when memory ran out (t unchanged). */
struct tally *tally_get(struct tallies *t, const char *key, int64_t base, bool known);
/* Frees every tally; t is empty and usable after. */
void tallies_clear(struct tallies *t);

/* The destination keys a job counts under: the elements of its
 * pending_keys (a JSON array of strings, repeats counted each time), or
 * its callback_host alone ("" when NULL). */
struct tally_keys {
	json_object *doc;
	char *text;     /* the keys split in a copy (the common shape), or NULL */
	const char **v; /* point into text or doc, or at callback_host */
	size_t n;
};

/* Fills k. STORE_IO (s's message set) when pending_keys is not a JSON
 * array of strings, STORE_NOMEM; k is empty on failure. Free with
 * tally_keys_clear. */
enum store_err tally_keys_of(struct store *s, const char *pending_keys, const char *callback_host,
                             struct tally_keys *k);
/* Frees k's insides; k is empty after. */
void tally_keys_clear(struct tally_keys *k);

#endif
