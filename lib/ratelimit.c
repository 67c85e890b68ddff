/*
 * ratelimit: the shared sliding-window limiter (see ratelimit.h).
 *
 * DESIGN
 *
 * Zone file, mapped MAP_SHARED by every process:
 *
 *   [header: 4096 bytes][tags: entries x u64, padded to 64][slots: entries x slot_bytes]
 *
 * The header holds the magic (published last), the layout and parameters,
 * the boot id, the 128-bit SipHash key (random per zone, so nobody can aim
 * keys at one set of slots), one robust process-shared mutex, the update
 * journal (`busy`) and statistics. A tag is the keyed hash of the key in the
 * slot (0: empty). A key lives in one of WAYS consecutive slots starting at
 * hash % entries; a lookup scans those tags (two cache lines); a new key
 * takes an empty slot among them or evicts the stalest (oldest last_ms), so
 * eviction needs no list that a dying process could leave half linked.
 *
 * Exactness: each slot keeps the admission times of its key in a ring of
 * `limit` int64 milliseconds, plus one 64-bit state word (oldest index << 32
 * | count). A hit drops the expired times (t <= now - window) from the
 * oldest end, then admits if fewer than `limit` remain, writing the time
 * into the ring before publishing the new state word with one release
 * store. Refused hits are not counted. So at most `limit` admissions lie in
 * any window, and Retry-After is oldest + window - now, exactly. Memory per
 * slot grows with limit (8 bytes per request of the window); the zone size
 * is capped (RATELIMIT_ZONE_MAX_BYTES) instead of approximating: an exact
 * answer for an O(1)-per-key structure does not exist for a sliding log.
 *
 * Locking and crashes: one pthread mutex, PTHREAD_PROCESS_SHARED and
 * PTHREAD_MUTEX_ROBUST, taken with a timeout (a stopped holder makes hits
 * fail open after RATELIMIT_LOCK_TIMEOUT_MS instead of stalling requests).
 * Before touching a slot the holder writes busy = slot + 1, after it 0.
 * Every multi-word change is ordered so that any prefix of it leaves the
 * slot valid (ring before state word; tag cleared before the key is
 * rewritten and set after). A process killed while holding the lock makes
 * the next locker see EOWNERDEAD: it marks the mutex consistent, validates
 * the journalled slot (drops the key if its tag does not match, clears its
 * history if the ring is not ordered) and carries on. ENOTRECOVERABLE marks
 * the zone broken; every process then re-creates it on its next open.
 *
 * Creation: a zone is built complete in a private temporary file
 * (posix_fallocate so a full disk fails here and never as SIGBUS later,
 * mutex, seed, magic last) and then published with link(2), which fails if
 * another process published first; the loser drops its file and maps the
 * winner's. So the path never shows a half-made zone, and four processes
 * starting at once end up on one file. A zone with a wrong magic, version,
 * size, parameters or boot id is replaced by rename(2) while holding flock
 * on the old file, after checking the path still names it, so concurrent
 * replacers do not undo each other.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "alloc.h"
#include "ratelimit.h"
#include "ratelimit_test.h"

#define ZONE_MAGIC    UINT64_C(0x31544d4c52534e43) /* "CNSRLMT1" */
#define ZONE_BROKEN   UINT64_C(0x4e454b4f52425a43) /* "CZBROKEN" */
#define ZONE_VERSION  1
#define HEADER_BYTES  4096
#define WAYS          16
#define BOOT_ID_LEN   40
#define OPEN_ATTEMPTS 8
#define FLOCK_WAIT_MS 2000

struct header {
	_Atomic uint64_t magic; /* ZONE_MAGIC once complete; ZONE_BROKEN when given up */
	uint32_t version;
	uint32_t ways;
	int64_t size;
	int64_t limit;
	int64_t window_ms;
	int64_t entries;
	int64_t slot_bytes;
	int64_t tags_off;
	int64_t slots_off;
	uint64_t seed[2];
	char boot_id[BOOT_ID_LEN];
	pthread_mutex_t lock;
	_Atomic int64_t busy; /* journal: slot index + 1 being changed, 0 none */
	_Atomic int64_t used;
	_Atomic int64_t evictions;
	_Atomic int64_t live_evictions;
	_Atomic int64_t recoveries;
};
_Static_assert(sizeof(struct header) <= HEADER_BYTES, "the header fits its page");

struct slot {
	_Atomic int64_t last_ms; /* the key's latest hit (admitted or not) */
	_Atomic uint64_t state;  /* oldest ring index << 32 | admissions in the ring */
	char key[RATELIMIT_KEY_MAX];
	int64_t ring[]; /* limit admission times */
};
_Static_assert(sizeof(struct slot) == 80, "ratelimit.h documents 80 + 8 * limit");

struct ratelimit {
	struct header *h;
	_Atomic uint64_t *tags;
	unsigned char *slots;
	size_t size;
	struct ratelimit_params p;
	int64_t busy_failures;
};

const char *ratelimit_strerror(enum ratelimit_err err)
{
	switch (err) {
	case RATELIMIT_OK:
		return "ok";
	case RATELIMIT_INVALID:
		return "invalid parameters or key";
	case RATELIMIT_TOOBIG:
		return "rate-limit zone too large";
	case RATELIMIT_IO:
		return "rate-limit zone I/O error";
	case RATELIMIT_NOMEM:
		return "out of memory";
	case RATELIMIT_BUSY:
		return "rate-limit zone lock timed out";
	case RATELIMIT_BROKEN:
		return "rate-limit zone broken";
	case RATELIMIT_CORRUPT:
		return "rate-limit zone inconsistent";
	}
	return "unknown error";
}

/* ---- SipHash-2-4 (Aumasson and Bernstein), written from the paper ---- */

static uint64_t rotl(uint64_t x, int b)
{
	return (x << b) | (x >> (64 - b));
}

static void sipround(uint64_t v[4])
{
	v[0] += v[1];
	v[1] = rotl(v[1], 13);
	v[1] ^= v[0];
	v[0] = rotl(v[0], 32);
	v[2] += v[3];
	v[3] = rotl(v[3], 16);
	v[3] ^= v[2];
	v[0] += v[3];
	v[3] = rotl(v[3], 21);
	v[3] ^= v[0];
	v[2] += v[1];
	v[1] = rotl(v[1], 17);
	v[1] ^= v[2];
	v[2] = rotl(v[2], 32);
}

static uint64_t load_le64(const unsigned char *p)
{
	uint64_t x = 0;
	int i;

	for (i = 7; i >= 0; i--)
		x = (x << 8) | p[i];
	return x;
}

static uint64_t siphash24(const uint64_t key[2], const unsigned char *in, size_t len)
{
	uint64_t v[4] = {
	    key[0] ^ UINT64_C(0x736f6d6570736575), key[1] ^ UINT64_C(0x646f72616e646f6d),
	    key[0] ^ UINT64_C(0x6c7967656e657261), key[1] ^ UINT64_C(0x7465646279746573)};
	uint64_t b = (uint64_t)len << 56;
	size_t i, full = len - len % 8;

	for (i = 0; i < full; i += 8) {
		uint64_t m = load_le64(in + i);

		v[3] ^= m;
		sipround(v);
		sipround(v);
		v[0] ^= m;
	}
	for (i = 0; i < len % 8; i++)
		b |= (uint64_t)in[full + i] << (8 * i);
	v[3] ^= b;
	sipround(v);
	sipround(v);
	v[0] ^= b;
	v[2] ^= 0xff;
	for (i = 0; i < 4; i++)
		sipround(v);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

/* ---- layout ---- */

static bool params_valid(const struct ratelimit_params *p)
{
	return p != NULL && p->limit >= 1 && p->limit <= 100000 && p->window_ms >= 1 &&
	       p->window_ms <= 86400000 && p->entries >= 1 && p->entries <= 1048576;
}

static int64_t slot_bytes(const struct ratelimit_params *p)
{
	return (int64_t)sizeof(struct slot) + 8 * p->limit;
}

static int64_t tags_bytes(const struct ratelimit_params *p)
{
	return (p->entries * 8 + 63) / 64 * 64;
}

int64_t ratelimit_zone_bytes(const struct ratelimit_params *p)
{
	if (!params_valid(p))
		return -1;
	return HEADER_BYTES + tags_bytes(p) + p->entries * slot_bytes(p);
}

static struct slot *slot_at(const struct ratelimit *rl, int64_t i)
{
	return (struct slot *)(void *)(rl->slots + i * slot_bytes(&rl->p));
}

static int64_t ways(const struct ratelimit_params *p)
{
	return p->entries < WAYS ? p->entries : WAYS;
}

static uint64_t hash_key(const struct ratelimit *rl, const char *key, size_t len)
{
	return siphash24(rl->h->seed, (const unsigned char *)key, len);
}

static uint64_t tag_of(uint64_t h)
{
	return h != 0 ? h : 1;
}

static void read_boot_id(char out[BOOT_ID_LEN])
{
	int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	ssize_t n = -1;

	memset(out, 0, BOOT_ID_LEN);
	if (fd >= 0) {
		n = read(fd, out, BOOT_ID_LEN - 1);
		close(fd);
	}
	if (n <= 0) {
		memset(out, 0, BOOT_ID_LEN);
		return;
	}
	out[strcspn(out, "\n")] = '\0';
}

static bool header_matches(const struct header *h, const struct ratelimit_params *p, int64_t size,
                           const char boot_id[BOOT_ID_LEN])
{
	return atomic_load_explicit(&h->magic, memory_order_acquire) == ZONE_MAGIC &&
	       h->version == ZONE_VERSION && h->ways == WAYS && h->size == size &&
	       h->limit == p->limit && h->window_ms == p->window_ms && h->entries == p->entries &&
	       h->slot_bytes == slot_bytes(p) && h->tags_off == HEADER_BYTES &&
	       h->slots_off == HEADER_BYTES + tags_bytes(p) &&
	       memcmp(h->boot_id, boot_id, BOOT_ID_LEN) == 0;
}

/* ---- creation ---- */

enum build_mode { BUILD_LINK, BUILD_RENAME };

static enum ratelimit_err init_zone(void *map, const struct ratelimit_params *p, int64_t size,
                                    char *why, size_t whylen)
{
	struct header *h = map;
	pthread_mutexattr_t attr;
	int rc;

	h->version = ZONE_VERSION;
	h->ways = WAYS;
	h->size = size;
	h->limit = p->limit;
	h->window_ms = p->window_ms;
	h->entries = p->entries;
	h->slot_bytes = slot_bytes(p);
	h->tags_off = HEADER_BYTES;
	h->slots_off = HEADER_BYTES + tags_bytes(p);
	read_boot_id(h->boot_id);
	if (getrandom(h->seed, sizeof(h->seed), 0) != (ssize_t)sizeof(h->seed)) {
		snprintf(why, whylen, "getrandom: %s", strerror(errno));
		return RATELIMIT_IO;
	}
	rc = pthread_mutexattr_init(&attr);
	if (rc == 0)
		rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
	if (rc == 0)
		rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
	if (rc == 0)
		rc = pthread_mutex_init(&h->lock, &attr);
	pthread_mutexattr_destroy(&attr);
	if (rc != 0) {
		snprintf(why, whylen, "robust shared mutex: %s", strerror(rc));
		return RATELIMIT_IO;
	}
	atomic_store_explicit(&h->magic, ZONE_MAGIC, memory_order_release);
	return RATELIMIT_OK;
}

/* Builds a complete zone in a temporary file and publishes it at path:
 * BUILD_LINK only if nothing is there (someone else winning is not an
 * error), BUILD_RENAME replacing what is there. */
static enum ratelimit_err build(const char *path, const struct ratelimit_params *p,
                                enum build_mode mode, char *why, size_t whylen)
{
	char tmp[4096];
	int64_t size = ratelimit_zone_bytes(p);
	uint32_t nonce = 0;
	void *map = MAP_FAILED;
	enum ratelimit_err rc = RATELIMIT_IO;
	int fd, n, e;

	if (getrandom(&nonce, sizeof(nonce), 0) != (ssize_t)sizeof(nonce))
		nonce =
		    (uint32_t)clock(); /* only makes the name unlikely to collide; O_EXCL decides */
	n = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld.%08" PRIx32, path, (long)getpid(), nonce);
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		snprintf(why, whylen, "zone path too long");
		return RATELIMIT_INVALID;
	}
	fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		snprintf(why, whylen, "create %s: %s", tmp, strerror(errno));
		return RATELIMIT_IO;
	}
	e = posix_fallocate(fd, 0, (off_t)size);
	if (e != 0) {
		snprintf(why, whylen, "allocate %" PRId64 " bytes for %s: %s", size, tmp,
		         strerror(e));
		goto out;
	}
	map = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED) {
		snprintf(why, whylen, "mmap %s: %s", tmp, strerror(errno));
		goto out;
	}
	rc = init_zone(map, p, size, why, whylen);
	if (rc != RATELIMIT_OK)
		goto out;
	if (mode == BUILD_RENAME) {
		if (rename(tmp, path) != 0) {
			snprintf(why, whylen, "rename %s: %s", path, strerror(errno));
			rc = RATELIMIT_IO;
		}
	} else if (link(tmp, path) != 0 && errno != EEXIST) {
		snprintf(why, whylen, "link %s: %s", path, strerror(errno));
		rc = RATELIMIT_IO;
	}
out:
	if (map != MAP_FAILED)
		munmap(map, (size_t)size);
	unlink(tmp); /* after a rename it names nothing any more: harmless */
	close(fd);
	return rc;
}

/* Maps fd when it is a complete zone for p; NULL otherwise. */
static void *map_if_valid(int fd, const struct ratelimit_params *p, const char *boot_id)
{
	int64_t size = ratelimit_zone_bytes(p);
	struct stat st;
	void *map;

	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size != (off_t)size)
		return NULL;
	map = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return NULL;
	if (!header_matches(map, p, size, boot_id)) {
		munmap(map, (size_t)size);
		return NULL;
	}
	return map;
}

/* fd names a file that is not a valid zone: replace it, unless another
 * process already did (then the caller simply opens the path again). */
static enum ratelimit_err replace(int fd, const char *path, const struct ratelimit_params *p,
                                  char *why, size_t whylen)
{
	struct stat mine, now;
	int waited;

	for (waited = 0; flock(fd, LOCK_EX | LOCK_NB) != 0; waited++) {
		if (errno != EWOULDBLOCK && errno != EINTR) {
			snprintf(why, whylen, "flock %s: %s", path, strerror(errno));
			return RATELIMIT_IO;
		}
		if (waited >= FLOCK_WAIT_MS) {
			snprintf(why, whylen, "flock %s: still held after %d ms", path,
			         FLOCK_WAIT_MS);
			return RATELIMIT_IO;
		}
		usleep(1000);
	}
	if (fstat(fd, &mine) != 0 || stat(path, &now) != 0 || mine.st_dev != now.st_dev ||
	    mine.st_ino != now.st_ino)
		return RATELIMIT_OK; /* replaced (or removed) meanwhile */
	return build(path, p, BUILD_RENAME, why, whylen);
}

struct ratelimit *ratelimit_open(const char *path, const struct ratelimit_params *p,
                                 enum ratelimit_err *err, char *why, size_t whylen)
{
	struct ratelimit *rl = NULL;
	char boot_id[BOOT_ID_LEN];
	int64_t size = ratelimit_zone_bytes(p);
	void *map = NULL;
	enum ratelimit_err rc = RATELIMIT_OK;
	int attempt;

	if (size < 0) {
		snprintf(why, whylen, "rate limit parameters out of range");
		*err = RATELIMIT_INVALID;
		return NULL;
	}
	if (size > RATELIMIT_ZONE_MAX_BYTES) {
		snprintf(why, whylen,
		         "zone of %" PRId64 " entries x %" PRId64 " requests needs %" PRId64
		         " bytes, more than %" PRId64
		         ": lower CONSUMA_RATE_LIMIT_ZONE_ENTRIES or CONSUMA_RATE_LIMIT_REQUESTS",
		         p->entries, p->limit, size, RATELIMIT_ZONE_MAX_BYTES);
		*err = RATELIMIT_TOOBIG;
		return NULL;
	}
	read_boot_id(boot_id);
	for (attempt = 0; attempt < OPEN_ATTEMPTS && map == NULL; attempt++) {
		int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);

		if (fd < 0) {
			if (errno != ENOENT) {
				snprintf(why, whylen, "open %s: %s", path, strerror(errno));
				rc = RATELIMIT_IO;
				break;
			}
			rc = build(path, p, BUILD_LINK, why, whylen);
			if (rc != RATELIMIT_OK)
				break;
			continue;
		}
		map = map_if_valid(fd, p, boot_id);
		if (map == NULL)
			rc = replace(fd, path, p, why, whylen);
		close(fd);
		if (rc != RATELIMIT_OK)
			break;
	}
	if (map == NULL) {
		if (rc == RATELIMIT_OK) {
			snprintf(why, whylen, "%s kept changing while opening it", path);
			rc = RATELIMIT_IO;
		}
		*err = rc;
		return NULL;
	}
	rl = cz_calloc(1, sizeof(*rl));
	if (rl == NULL) {
		munmap(map, (size_t)size);
		snprintf(why, whylen, "out of memory");
		*err = RATELIMIT_NOMEM;
		return NULL;
	}
	rl->h = map;
	rl->tags = (_Atomic uint64_t *)(void *)((unsigned char *)map + HEADER_BYTES);
	rl->slots = (unsigned char *)map + HEADER_BYTES + tags_bytes(p);
	rl->size = (size_t)size;
	rl->p = *p;
	*err = RATELIMIT_OK;
	return rl;
}

void ratelimit_close(struct ratelimit *rl)
{
	if (rl == NULL)
		return;
	munmap(rl->h, rl->size);
	cz_free(rl);
}

int64_t ratelimit_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t ratelimit_retry_after_s(int64_t ms)
{
	int64_t s = ms / 1000 + (ms % 1000 > 0 ? 1 : 0);

	return s < 1 ? 1 : s;
}

/* ---- slots ---- */

static uint64_t pack(uint64_t oldest, uint64_t count)
{
	return oldest << 32 | count;
}

static bool key_valid(const char *key, size_t *len)
{
	*len = key != NULL ? strnlen(key, RATELIMIT_KEY_MAX) : 0;
	return *len > 0 && *len < RATELIMIT_KEY_MAX;
}

/* True when the ring of s is in range and ordered. */
static bool ring_valid(const struct ratelimit *rl, const struct slot *s)
{
	uint64_t st = atomic_load_explicit(&s->state, memory_order_relaxed);
	uint64_t oldest = st >> 32, count = st & 0xffffffffu, i;
	uint64_t n = (uint64_t)rl->p.limit;

	if (oldest >= n || count > n)
		return false;
	for (i = 1; i < count; i++) {
		if (s->ring[(oldest + i - 1) % n] > s->ring[(oldest + i) % n])
			return false;
	}
	return count == 0 || s->ring[(oldest + count - 1) % n] <=
	                         atomic_load_explicit(&s->last_ms, memory_order_relaxed);
}

/* Why slot i is not a valid occupied slot, or NULL when it is. */
static const char *slot_problem(const struct ratelimit *rl, int64_t i)
{
	const struct slot *s = slot_at(rl, i);
	uint64_t tag = atomic_load_explicit(&rl->tags[i], memory_order_relaxed);
	size_t len;
	uint64_t h;

	if (!key_valid(s->key, &len))
		return "key not a terminated string";
	h = hash_key(rl, s->key, len);
	if (tag_of(h) != tag)
		return "tag does not match key";
	if ((i - (int64_t)(h % (uint64_t)rl->p.entries) + rl->p.entries) % rl->p.entries >=
	    ways(&rl->p))
		return "key outside its probe window";
	if (!ring_valid(rl, s))
		return "ring out of range or order";
	return NULL;
}

/* After a holder died: make the slot it journalled valid again, and
 * recount the slots in use (the dead process may have died between a
 * change and its count). */
static void repair(struct ratelimit *rl)
{
	int64_t b = atomic_load_explicit(&rl->h->busy, memory_order_relaxed);
	int64_t i = b - 1, k, used = 0;

	if (i >= 0 && i < rl->p.entries &&
	    atomic_load_explicit(&rl->tags[i], memory_order_relaxed) != 0) {
		struct slot *s = slot_at(rl, i);
		size_t len;

		if (!key_valid(s->key, &len) || tag_of(hash_key(rl, s->key, len)) != rl->tags[i])
			atomic_store_explicit(&rl->tags[i], 0, memory_order_release);
		else if (!ring_valid(rl, s))
			atomic_store_explicit(&s->state, 0, memory_order_release);
	}
	for (k = 0; k < rl->p.entries; k++)
		used += atomic_load_explicit(&rl->tags[k], memory_order_relaxed) != 0;
	atomic_store_explicit(&rl->h->used, used, memory_order_relaxed);
	atomic_store_explicit(&rl->h->busy, 0, memory_order_release);
}

static enum ratelimit_err lock_zone(struct ratelimit *rl)
{
	struct header *h = rl->h;
	struct timespec ts;
	int rc;

	if (atomic_load_explicit(&h->magic, memory_order_acquire) != ZONE_MAGIC)
		return RATELIMIT_BROKEN;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += (long)(RATELIMIT_LOCK_TIMEOUT_MS % 1000) * 1000000;
	ts.tv_sec += RATELIMIT_LOCK_TIMEOUT_MS / 1000 + ts.tv_nsec / 1000000000;
	ts.tv_nsec %= 1000000000;
	rc = pthread_mutex_timedlock(&h->lock, &ts);
	if (rc == EOWNERDEAD) {
		pthread_mutex_consistent(&h->lock);
		repair(rl);
		atomic_fetch_add_explicit(&h->recoveries, 1, memory_order_relaxed);
		rc = 0;
	}
	if (rc == ETIMEDOUT) {
		rl->busy_failures++;
		return RATELIMIT_BUSY;
	}
	if (rc != 0) {
		atomic_store_explicit(&h->magic, ZONE_BROKEN, memory_order_release);
		return RATELIMIT_BROKEN;
	}
	return RATELIMIT_OK;
}

static void unlock_zone(struct ratelimit *rl)
{
	pthread_mutex_unlock(&rl->h->lock);
}

static void journal(struct ratelimit *rl, int64_t i)
{
	atomic_store_explicit(&rl->h->busy, i + 1, memory_order_release);
}

static void journal_done(struct ratelimit *rl)
{
	atomic_store_explicit(&rl->h->busy, 0, memory_order_release);
}

/* Puts key into slot i (empty or evicted), stopping early for the test
 * hook. Caller holds the lock and has journalled i. */
static void install(struct ratelimit *rl, int64_t i, const char *key, size_t len, uint64_t tag,
                    int64_t now_ms, bool die_halfway)
{
	struct slot *s = slot_at(rl, i);
	uint64_t old = atomic_load_explicit(&rl->tags[i], memory_order_relaxed);

	if (old == 0) {
		atomic_fetch_add_explicit(&rl->h->used, 1, memory_order_relaxed);
	} else {
		atomic_fetch_add_explicit(&rl->h->evictions, 1, memory_order_relaxed);
		if (atomic_load_explicit(&s->last_ms, memory_order_relaxed) >
		    now_ms - rl->p.window_ms)
			atomic_fetch_add_explicit(&rl->h->live_evictions, 1, memory_order_relaxed);
	}
	atomic_store_explicit(&rl->tags[i], 0, memory_order_release);
	if (die_halfway) {
		memcpy(s->key, key, len / 2);
		raise(SIGKILL);
	}
	memset(s->key, 0, sizeof(s->key));
	memcpy(s->key, key, len);
	atomic_store_explicit(&s->state, 0, memory_order_relaxed);
	atomic_store_explicit(&s->last_ms, now_ms, memory_order_relaxed);
	atomic_store_explicit(&rl->tags[i], tag, memory_order_release);
}

/* The slot of key: found, or installed in an empty or the stalest slot of
 * its window. Caller holds the lock. */
static int64_t find_slot(struct ratelimit *rl, const char *key, size_t len, int64_t now_ms,
                         bool die_installing)
{
	uint64_t h = hash_key(rl, key, len), tag = tag_of(h);
	int64_t n = rl->p.entries, start = (int64_t)(h % (uint64_t)n);
	int64_t k, victim = -1, victim_ms = INT64_MAX;

	for (k = 0; k < ways(&rl->p); k++) {
		int64_t i = (start + k) % n;
		uint64_t t = atomic_load_explicit(&rl->tags[i], memory_order_relaxed);
		int64_t seen;

		if (t == tag && strcmp(slot_at(rl, i)->key, key) == 0)
			return i;
		if (t == 0) {
			if (victim_ms != INT64_MIN) {
				victim = i;
				victim_ms = INT64_MIN; /* an empty slot beats any stale one */
			}
			continue;
		}
		seen = atomic_load_explicit(&slot_at(rl, i)->last_ms, memory_order_relaxed);
		if (seen < victim_ms) {
			victim = i;
			victim_ms = seen;
		}
	}
	journal(rl, victim);
	install(rl, victim, key, len, tag, now_ms, die_installing);
	return victim;
}

enum ratelimit_test_stage { STAGE_NONE = -1, STAGE_JOURNAL = 0, STAGE_RING = 1, STAGE_INSTALL = 2 };

static enum ratelimit_err hit(struct ratelimit *rl, const char *key, int64_t now_ms, bool *allowed,
                              int64_t *retry_after_ms, int die_at)
{
	uint64_t n = (uint64_t)rl->p.limit, st, oldest, count;
	struct slot *s;
	enum ratelimit_err rc;
	size_t len;
	int64_t i, last;

	*allowed = true;
	*retry_after_ms = 0;
	if (!key_valid(key, &len))
		return RATELIMIT_INVALID;
	rc = lock_zone(rl);
	if (rc != RATELIMIT_OK)
		return rc;
	i = find_slot(rl, key, len, now_ms, die_at == STAGE_INSTALL);
	s = slot_at(rl, i);
	journal(rl, i);
	if (die_at == STAGE_JOURNAL)
		raise(SIGKILL);
	/* One order per key even when processes read the clock in one order
	 * and take the lock in another. */
	last = atomic_load_explicit(&s->last_ms, memory_order_relaxed);
	if (now_ms < last)
		now_ms = last;
	st = atomic_load_explicit(&s->state, memory_order_relaxed);
	oldest = st >> 32;
	count = st & 0xffffffffu;
	while (count > 0 && s->ring[oldest] <= now_ms - rl->p.window_ms) {
		oldest = (oldest + 1) % n;
		count--;
	}
	if (count < n) {
		s->ring[(oldest + count) % n] = now_ms;
		if (die_at == STAGE_RING)
			raise(SIGKILL);
		count++;
	} else {
		*allowed = false;
		*retry_after_ms = s->ring[oldest] + rl->p.window_ms - now_ms;
	}
	atomic_store_explicit(&s->last_ms, now_ms, memory_order_relaxed);
	atomic_store_explicit(&s->state, pack(oldest, count), memory_order_release);
	journal_done(rl);
	unlock_zone(rl);
	return RATELIMIT_OK;
}

enum ratelimit_err ratelimit_hit(struct ratelimit *rl, const char *key, int64_t now_ms,
                                 bool *allowed, int64_t *retry_after_ms)
{
	return hit(rl, key, now_ms, allowed, retry_after_ms, STAGE_NONE);
}

enum ratelimit_err ratelimit_test_die_in_update(struct ratelimit *rl, const char *key,
                                                int64_t now_ms, int stage)
{
	bool allowed;
	int64_t retry;

	if (stage < STAGE_JOURNAL || stage > STAGE_INSTALL)
		return RATELIMIT_INVALID;
	return hit(rl, key, now_ms, &allowed, &retry, stage);
}

void ratelimit_stats(const struct ratelimit *rl, struct ratelimit_stats *st)
{
	st->used = atomic_load_explicit(&rl->h->used, memory_order_relaxed);
	st->evictions = atomic_load_explicit(&rl->h->evictions, memory_order_relaxed);
	st->live_evictions = atomic_load_explicit(&rl->h->live_evictions, memory_order_relaxed);
	st->recoveries = atomic_load_explicit(&rl->h->recoveries, memory_order_relaxed);
	st->busy = rl->busy_failures;
}

enum ratelimit_err ratelimit_verify(struct ratelimit *rl, char *why, size_t whylen)
{
	enum ratelimit_err rc = lock_zone(rl);
	int64_t i, k, used = 0, n = rl->p.entries;

	if (rc != RATELIMIT_OK) {
		snprintf(why, whylen, "%s", ratelimit_strerror(rc));
		return rc;
	}
	if (atomic_load_explicit(&rl->h->busy, memory_order_relaxed) != 0) {
		snprintf(why, whylen, "journal names a slot while nobody holds the lock");
		rc = RATELIMIT_CORRUPT;
		goto out;
	}
	for (i = 0; i < n; i++) {
		const char *problem;

		if (atomic_load_explicit(&rl->tags[i], memory_order_relaxed) == 0)
			continue;
		used++;
		problem = slot_problem(rl, i);
		for (k = 1; problem == NULL && k < ways(&rl->p); k++) {
			int64_t j = (i + k) % n;

			if (j != i && rl->tags[j] == rl->tags[i] &&
			    strcmp(slot_at(rl, j)->key, slot_at(rl, i)->key) == 0)
				problem = "key held by two slots";
		}
		if (problem != NULL) {
			snprintf(why, whylen, "slot %" PRId64 ": %s", i, problem);
			rc = RATELIMIT_CORRUPT;
			goto out;
		}
	}
	if (used != atomic_load_explicit(&rl->h->used, memory_order_relaxed)) {
		snprintf(why, whylen, "%" PRId64 " slots in use, counter says %" PRId64, used,
		         (int64_t)atomic_load_explicit(&rl->h->used, memory_order_relaxed));
		rc = RATELIMIT_CORRUPT;
	}
out:
	unlock_zone(rl);
	return rc;
}
