/*
 * hosts: per-destination concurrency bound and circuit breaker (see
 * hosts.h). A chained hash table keyed by origin ("scheme://host:port",
 * host lowercased, port explicit); an origin lives while it has jobs in
 * hand or an open breaker, so the table holds at most the deliverer's
 * capacity plus the open breakers.
 *
 * Breaker states: closed (count consecutive retryable failures) -> open
 * (until now + cooldown) -> half-open (after the cool-down: one trial
 * delivery at a time) -> closed on success, open again on failure.
 *
 * Why the origin and not the host name: two services on different ports of
 * one host fail independently; sharing slots, a breaker and a claim
 * exclusion let one starve the other. Claims are filtered by the origin as
 * spelled in the URL (store_claim_key): the origin keeps the claim key of
 * its first job, so another spelling of it ("HTTP://h:80" for "http://h")
 * is not left out of claims; such a job is claimed and then handed back or
 * held like any other, which costs a claim, never correctness.
 *
 * Which job is the half-open trial (issue 11, item 1). The breaker is per
 * origin but failures are often per URL: an origin whose /hang never
 * answers may answer /ok at once. Trialling in acceptance order made every
 * trial one of the old failing jobs (they are the oldest), so each
 * cool-down burnt one more attempt of a bad job and reopened the breaker,
 * and healthy jobs waited until every bad job had run out of attempts
 * (10 bad jobs, 5 attempts each, one per cool-down: half an hour at the
 * defaults). The candidates we weighed:
 *   - rotating trials over the jobs in hand: fair between bad jobs, but a
 *     healthy job still waits its turn behind every bad one, one cool-down
 *     each;
 *   - a job never tried: carries the most news, but a queue of never-tried
 *     jobs to the same failing URL is trialled one per cool-down too;
 *   - the least recently failed job, where "failed" is known per job (it
 *     was tried before) and per URL path (hosts_path_key: the URL without
 *     its query; the last FAILED_PATHS paths that failed at this origin,
 *     cleared by a success on the path).
 * We take the last: a job is suspect when it was tried before or its path
 * failed lately, and deliver.c's dispatch offers slots, the trial
 * included, to the other jobs first; among suspect ones the waiting list's
 * arrival order rotates them (a failed trial leaves the list). So a
 * healthy job in hand is the trial as soon as the cool-down ends, unless
 * its own path is failing; the worst case left is a healthy job whose
 * path differs from the failing jobs' only in the query (each of those is
 * then trialled once, and becomes suspect by being tried).
 *
 * "In hand" is the catch: when the cool-down ends the origin's jobs are
 * mostly in the queue (handed back, or retries), and the claim brings them
 * in due order, one by one through the compute pool; the first to arrive
 * would be the trial, and a bad job's retry that was scheduled before the
 * breaker opened is due first. Two rules close that gap:
 *   - a grace: for grace_ms after the cool-down (a quarter of it, at most
 *     TRIAL_GRACE_MAX_MS) only a job that is not suspect may be the trial;
 *     a suspect one waits, and is trialled after the grace when no other
 *     came (an origin with only failing jobs loses that much per cycle);
 *   - due times (deliver.c): while an origin is open, jobs that are not
 *     suspect are handed back due when the cool-down ends, suspect ones
 *     (hand-backs and retries that end meanwhile) a grace later, so the
 *     claim brings the others first and a full claim batch of bad jobs
 *     cannot crowd them out.
 *
 * The same split keeps slots honest while the breaker is closed: suspect
 * jobs take at most ceil(max_per_host / 2) slots (inflight_suspect), so
 * failing URLs that hang for the whole timeout never hold every slot of an
 * origin, and a healthy job is never queued behind them (no head-of-line
 * blocking inside an origin). A healthy origin loses nothing: only jobs
 * that failed before, or whose path is failing, are capped.
 */
#include "hosts.h"
#include "shared.h"

#include <string.h>

#include "alloc.h"

#define NBUCKETS 1024
/* Past this many hosts, idle ones that only remember failures are swept. */
#define SWEEP_AT 4096
/* At most this long after a cool-down, a half-open origin waits for a job
 * that is not suspect to trial before it trials a suspect one. */
#define TRIAL_GRACE_MAX_MS 1000
/* URL paths per origin remembered as failing lately. */
#define FAILED_PATHS 16

enum breaker { CLOSED, OPEN, HALF_OPEN };

struct host {
	struct host *next; /* bucket chain */
	char *name;        /* the origin */
	char *claim_key;   /* what claims are filtered by */
	int64_t in_hand;
	int64_t inflight;
	int64_t inflight_suspect;            /* of inflight, suspect jobs */
	uint64_t failed_paths[FAILED_PATHS]; /* path keys, 0 for none */
	int failed_next;                     /* the slot to overwrite next */
	int64_t failures;                    /* consecutive */
	enum breaker state;
	int64_t open_until;
};

struct hosts {
	int64_t max_per_host;
	int64_t breaker_failures;
	int64_t cooldown_ms;
	int64_t grace_ms; /* a suspect job's wait for another trial */
	struct host *bucket[NBUCKETS];
	int64_t count;
	uint64_t excl_hash;     /* of the last exclusion list */
	const char **excl_keys; /* hosts_exclusions' scratch: the keys of this walk */
	size_t excl_cap;
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
	hs->grace_ms = cooldown_ms / 4 < TRIAL_GRACE_MAX_MS ? cooldown_ms / 4 : TRIAL_GRACE_MAX_MS;
	return hs;
}

static void host_free(struct host *h)
{
	cz_free(h->name);
	cz_free(h->claim_key);
	cz_free(h);
}

void hosts_free(struct hosts *hs)
{
	if (!hs)
		return;
	for (int i = 0; i < NBUCKETS; i++) {
		struct host *h = hs->bucket[i];
		while (h) {
			struct host *n = h->next;
			host_free(h);
			h = n;
		}
	}
	cz_free(hs->excl_keys);
	cz_free(hs);
}

struct host *hosts_get(struct hosts *hs, const char *origin, const char *claim_key)
{
	uint64_t b = hash_str(origin) % NBUCKETS;
	for (struct host *h = hs->bucket[b]; h; h = h->next)
		if (strcmp(h->name, origin) == 0)
			return h;
	struct host *h = cz_calloc(1, sizeof *h);
	if (!h)
		return NULL;
	h->name = cz_strdup(origin);
	h->claim_key = cz_strdup(claim_key);
	if (!h->name || !h->claim_key) {
		host_free(h);
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
	host_free(h);
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
				host_free(h);
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

/* Slots a suspect job may take: half, rounded up, so that the others keep
 * the rest and max_per_host 1 still lets suspect jobs through. */
static int64_t suspect_share(const struct hosts *hs)
{
	return hs->max_per_host - hs->max_per_host / 2;
}

bool hosts_may_start(struct hosts *hs, struct host *h, bool suspect, int64_t now)
{
	tick(h, now);
	if (h->state == OPEN)
		return false;
	if (h->state == HALF_OPEN)
		return h->inflight == 0 && (!suspect || now >= h->open_until + hs->grace_ms);
	if (suspect && h->inflight_suspect >= suspect_share(hs))
		return false;
	return h->inflight < hs->max_per_host;
}

void hosts_started(struct hosts *hs, struct host *h, bool suspect)
{
	(void)hs;
	h->inflight++;
	if (suspect)
		h->inflight_suspect++;
}

void hosts_unstart(struct hosts *hs, struct host *h, bool suspect)
{
	(void)hs;
	if (h->inflight > 0)
		h->inflight--;
	if (suspect && h->inflight_suspect > 0)
		h->inflight_suspect--;
}

uint64_t hosts_path_key(const char *url)
{
	uint64_t k = 1469598103934665603ULL; /* FNV-1a, up to the query */
	for (; *url && *url != '?' && *url != '#'; url++) {
		k ^= (unsigned char)*url;
		k *= 1099511628211ULL;
	}
	return k ? k : 1; /* 0 marks a free slot */
}

static int find_path(const struct host *h, uint64_t path)
{
	for (int i = 0; i < FAILED_PATHS; i++)
		if (h->failed_paths[i] == path)
			return i;
	return -1;
}

bool hosts_suspect(const struct hosts *hs, const struct host *h, uint64_t path)
{
	(void)hs;
	return path != 0 && find_path(h, path) >= 0;
}

/* A failure marks the path; a success clears it (it is healthy again). */
static void note_path(struct host *h, uint64_t path, bool failed)
{
	if (path == 0)
		return;
	int i = find_path(h, path);
	if (failed && i < 0) {
		h->failed_paths[h->failed_next] = path;
		h->failed_next = (h->failed_next + 1) % FAILED_PATHS;
	} else if (!failed && i >= 0) {
		h->failed_paths[i] = 0;
	}
}

bool hosts_finished(struct hosts *hs, struct host *h, bool suspect, uint64_t path, bool failure,
                    bool neutral, int64_t now)
{
	hosts_unstart(hs, h, suspect);
	if (neutral)
		return false;
	note_path(h, path, failure);
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

bool hosts_exclusions(struct hosts *hs, int64_t now, struct store_exclude **out)
{
	size_t n = 0;
	uint64_t hash = 1469598103934665603ULL;
	*out = NULL;
	for (int i = 0; i < NBUCKETS; i++) {
		for (struct host *h = hs->bucket[i]; h; h = h->next) {
			tick(h, now);
			bool saturated = h->in_hand >= 2 * hs->max_per_host;
			if (h->state != OPEN && !saturated)
				continue;
			if (!cz_grow(&hs->excl_keys, &hs->excl_cap, n, sizeof *hs->excl_keys))
				continue; /* fewer exclusions: still correct */
			hs->excl_keys[n++] = h->claim_key;
			hash = (hash ^ hash_str(h->claim_key)) * 1099511628211ULL;
		}
	}
	bool changed = !hs->excl_valid || hash != hs->excl_hash;
	hs->excl_hash = hash;
	hs->excl_valid = true;
	if (changed)
		*out = exclude_copy(hs->excl_keys, n);
	return changed;
}

int64_t hosts_open_count(struct hosts *hs, int64_t now)
{
	int64_t n = 0;
	for (int i = 0; i < NBUCKETS; i++)
		for (struct host *h = hs->bucket[i]; h; h = h->next) {
			tick(h, now);
			n += h->state == OPEN;
		}
	return n;
}

int64_t hosts_next_change(struct hosts *hs, int64_t now)
{
	int64_t best = -1;
	for (int i = 0; i < NBUCKETS; i++)
		for (struct host *h = hs->bucket[i]; h; h = h->next) {
			tick(h, now);
			int64_t t = -1;
			if (h->state == OPEN)
				t = h->open_until;
			else if (h->state == HALF_OPEN && h->inflight == 0 &&
			         now < h->open_until + hs->grace_ms)
				t = h->open_until + hs->grace_ms; /* suspect jobs may trial then */
			if (t >= 0 && (best < 0 || t < best))
				best = t;
		}
	return best;
}

int64_t hosts_trial_grace_ms(const struct hosts *hs)
{
	return hs->grace_ms;
}
