/*
 * hosts: per-destination concurrency bound and circuit breaker (see
 * hosts.h). A chained hash table of hosts keyed by the lowercased callback
 * host; a host lives while it has jobs in hand or an open breaker, so the
 * table holds at most the deliverer's capacity plus the open breakers.
 *
 * Breaker states: closed (count consecutive retryable failures) -> open
 * (until now + cooldown) -> half-open (after the cool-down: one trial
 * delivery at a time) -> closed on success, open again on failure.
 */
#include "hosts.h"

#include <string.h>

#include "alloc.h"

#define NBUCKETS 1024
/* Past this many hosts, idle ones that only remember failures are swept. */
#define SWEEP_AT 4096

enum breaker { CLOSED, OPEN, HALF_OPEN };

struct host {
	struct host *next; /* bucket chain */
	char *name;
	int64_t in_hand;
	int64_t inflight;
	int64_t failures; /* consecutive */
	enum breaker state;
	int64_t open_until;
};

struct hosts {
	int64_t max_per_host;
	int64_t breaker_failures;
	int64_t cooldown_ms;
	struct host *bucket[NBUCKETS];
	int64_t count;
	uint64_t excl_hash; /* of the last exclusion list */
	bool excl_valid;
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ULL; /* FNV-1a */
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

struct hosts *hosts_new(int64_t max_per_host, int64_t breaker_failures, int64_t cooldown_ms)
{
	struct hosts *hs = cz_calloc(1, sizeof *hs);
	if (!hs)
		return NULL;
	hs->max_per_host = max_per_host > 0 ? max_per_host : 1;
	hs->breaker_failures = breaker_failures;
	hs->cooldown_ms = cooldown_ms;
	return hs;
}

void hosts_free(struct hosts *hs)
{
	if (!hs)
		return;
	for (int i = 0; i < NBUCKETS; i++) {
		struct host *h = hs->bucket[i];
		while (h) {
			struct host *n = h->next;
			cz_free(h->name);
			cz_free(h);
			h = n;
		}
	}
	cz_free(hs);
}

struct host *hosts_get(struct hosts *hs, const char *name)
{
	uint64_t b = hash_str(name) % NBUCKETS;
	for (struct host *h = hs->bucket[b]; h; h = h->next)
		if (strcmp(h->name, name) == 0)
			return h;
	struct host *h = cz_calloc(1, sizeof *h);
	if (!h)
		return NULL;
	h->name = cz_strdup(name);
	if (!h->name) {
		cz_free(h);
		return NULL;
	}
	h->next = hs->bucket[b];
	hs->bucket[b] = h;
	hs->count++;
	return h;
}

const char *hosts_name(const struct host *h)
{
	return h->name;
}

static void forget(struct hosts *hs, struct host *h)
{
	struct host **pp = &hs->bucket[hash_str(h->name) % NBUCKETS];
	while (*pp && *pp != h)
		pp = &(*pp)->next;
	if (*pp)
		*pp = h->next;
	cz_free(h->name);
	cz_free(h);
	hs->count--;
}

/* Forgets idle hosts whose breaker is not open (their failure counts go). */
static void sweep(struct hosts *hs)
{
	for (int i = 0; i < NBUCKETS; i++) {
		struct host **pp = &hs->bucket[i];
		while (*pp) {
			struct host *h = *pp;
			if (h->in_hand == 0 && h->inflight == 0 && h->state != OPEN) {
				*pp = h->next;
				cz_free(h->name);
				cz_free(h);
				hs->count--;
			} else {
				pp = &h->next;
			}
		}
	}
}

void hosts_hold(struct hosts *hs, struct host *h)
{
	(void)hs;
	h->in_hand++;
}

void hosts_leave(struct hosts *hs, struct host *h)
{
	if (h->in_hand > 0)
		h->in_hand--;
	/* Forget a quiet host; one with failures counting keeps its count so
	 * that a host failing one job at a time still trips the breaker. */
	if (h->in_hand == 0 && h->inflight == 0 && h->state == CLOSED && h->failures == 0)
		forget(hs, h);
	else if (hs->count > SWEEP_AT)
		sweep(hs);
}

/* Moves an open breaker whose cool-down ended to half-open. */
static void tick(struct host *h, int64_t now)
{
	if (h->state == OPEN && now >= h->open_until)
		h->state = HALF_OPEN;
}

bool hosts_open(struct hosts *hs, struct host *h, int64_t now, int64_t *until)
{
	(void)hs;
	tick(h, now);
	if (h->state == OPEN && until)
		*until = h->open_until;
	return h->state == OPEN;
}

bool hosts_may_start(struct hosts *hs, struct host *h, int64_t now)
{
	tick(h, now);
	if (h->state == OPEN)
		return false;
	if (h->state == HALF_OPEN)
		return h->inflight == 0;
	return h->inflight < hs->max_per_host;
}

void hosts_started(struct hosts *hs, struct host *h)
{
	(void)hs;
	h->inflight++;
}

void hosts_unstart(struct hosts *hs, struct host *h)
{
	(void)hs;
	if (h->inflight > 0)
		h->inflight--;
}

bool hosts_finished(struct hosts *hs, struct host *h, bool failure, bool neutral, int64_t now)
{
	if (h->inflight > 0)
		h->inflight--;
	if (neutral)
		return false;
	if (!failure) {
		h->failures = 0;
		h->state = CLOSED;
		return false;
	}
	h->failures++;
	if (hs->breaker_failures <= 0 || hs->cooldown_ms <= 0)
		return false;
	if (h->state == HALF_OPEN || (h->state == CLOSED && h->failures >= hs->breaker_failures)) {
		h->state = OPEN;
		h->open_until = now + hs->cooldown_ms;
		return true;
	}
	return false;
}

bool hosts_exclusions(struct hosts *hs, int64_t now, struct buf *out)
{
	buf_reset(out);
	buf_putc(out, '[');
	bool first = true;
	uint64_t hash = 1469598103934665603ULL;
	for (int i = 0; i < NBUCKETS; i++) {
		for (struct host *h = hs->bucket[i]; h; h = h->next) {
			tick(h, now);
			bool saturated = h->in_hand >= 2 * hs->max_per_host;
			if (h->state != OPEN && !saturated)
				continue;
			if (!first)
				buf_putc(out, ',');
			first = false;
			buf_json_string(out, h->name, strlen(h->name));
			hash = (hash ^ hash_str(h->name)) * 1099511628211ULL;
		}
	}
	buf_putc(out, ']');
	bool changed = !hs->excl_valid || hash != hs->excl_hash;
	hs->excl_hash = hash;
	hs->excl_valid = true;
	return changed;
}

int64_t hosts_next_change(struct hosts *hs, int64_t now)
{
	int64_t best = -1;
	for (int i = 0; i < NBUCKETS; i++)
		for (struct host *h = hs->bucket[i]; h; h = h->next) {
			tick(h, now);
			if (h->state == OPEN && (best < 0 || h->open_until < best))
				best = h->open_until;
		}
	return best;
}
