/*
 * metrics: the shared counters zone (see metrics.h).
 *
 * DESIGN
 *
 * Why a zone. GET /metrics must be cheap to scrape every second during a
 * storm, so nothing may be counted at scrape time (no table scan), and the
 * work is spread over many processes: the two spawn-fcgi pools and the
 * deliverer(s). Each process adds to one file mapped MAP_SHARED as the work
 * happens; whichever API process answers a scrape copies the zone, O(1).
 * The gauges that live in the database (queue depth, heartbeats) come from
 * store_health, already O(1); the one gauge the database cannot give
 * cheaply, the oldest unfinished job's age, is read forward from a
 * low-water mark kept here (fcgi-app/scrape.c).
 *
 * Layout: one struct zone, a header (magic published last, version, size)
 * and fixed arrays of _Atomic uint64_t. No lock: every update is one
 * relaxed atomic add (or a compare-and-swap for the deliverer slots and the
 * mark), so a process killed at any instant leaves the zone valid, at worst
 * one observation short. A histogram keeps non-cumulative bucket counts and
 * its sum in nanoseconds; the reader derives _count from the buckets, so a
 * scrape never shows a count that disagrees with its +Inf bucket.
 *
 * Labels are fixed at compile time (reasons, outcomes, HTTP classes): no
 * label grows with traffic.
 *
 * Creation and repair follow lib/ratelimit.c: a zone is built complete in a
 * private temporary file (posix_fallocate, header, magic last) and
 * published with link(2), which fails when another process published first
 * (the loser maps the winner's). A file at the path with a wrong magic,
 * version or size is replaced with rename(2); after mapping, the path is
 * checked to still name the mapped file, so a process never keeps counting
 * into a zone that was replaced under it. No boot id: counters may outlive
 * a reboot (Prometheus only needs them not to go down, and a reset is
 * handled anyway).
 */
#include "metrics.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "log.h"

#define ZONE_MAGIC    UINT64_C(0x315254454d4e5343) /* "CSNMETR1" */
#define ZONE_VERSION  1
#define OPEN_ATTEMPTS 8

const double metrics_bucket_le[METRICS_BUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1,      2.5,   5,      10,    30,   60,    120,  300, 1800, 3600,
};

struct zhist {
	_Atomic uint64_t bucket[METRICS_BUCKETS + 1];
	_Atomic uint64_t sum_ns;
};

struct zslot {
	_Atomic int64_t pid; /* 0: free */
	_Atomic int64_t updated_ms;
	_Atomic int64_t open_breakers;
};

struct zone {
	_Atomic uint64_t magic;
	uint32_t version;
	uint32_t size;
	_Atomic int64_t pending_mark;
	_Atomic uint64_t counter[METRICS_COUNTER__COUNT];
	_Atomic uint64_t refused[METRICS_REFUSAL__COUNT];
	_Atomic uint64_t sync[METRICS_SYNC__COUNT];
	_Atomic uint64_t attempts[METRICS_ATTEMPT__COUNT][METRICS_HTTP_CLASSES];
	struct zhist hist[METRICS_H__COUNT];
	struct zslot deliverer[METRICS_DELIVERER_SLOTS];
};

struct metrics {
	struct zone *z;
	_Atomic uint64_t published[METRICS_COUNTER__COUNT]; /* metrics_publish_total */
};

bool metrics_zone_path(const char *database_path, char *out, size_t outlen)
{
	int n = snprintf(out, outlen, "%s.metrics", database_path);
	return n > 0 && (size_t)n < outlen;
}

/* ---- creation ---- */

static bool zone_valid(const struct zone *z)
{
	return atomic_load_explicit(&z->magic, memory_order_acquire) == ZONE_MAGIC &&
	       z->version == ZONE_VERSION && z->size == sizeof(struct zone);
}

/* Builds a zone in a temporary file and publishes it at path: by link(2)
 * when replace is false (losing to another process is no error), by
 * rename(2) otherwise. */
static bool build(const char *path, bool replace, char *why, size_t whylen)
{
	char tmp[4096];
	uint32_t nonce = 0;
	struct zone *z = MAP_FAILED;
	bool ok = false;
	int fd, n, e;

	if (getrandom(&nonce, sizeof nonce, GRND_NONBLOCK) != (ssize_t)sizeof nonce)
		nonce = (uint32_t)clock(); /* O_EXCL decides; this only avoids collisions */
	n = snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%08" PRIx32, path, (long)getpid(), nonce);
	if (n < 0 || (size_t)n >= sizeof tmp) {
		snprintf(why, whylen, "metrics zone path too long");
		return false;
	}
	fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		snprintf(why, whylen, "create %s: %s", tmp, strerror(errno));
		return false;
	}
	e = posix_fallocate(fd, 0, (off_t)sizeof(struct zone));
	if (e != 0) {
		snprintf(why, whylen, "allocate %s: %s", tmp, strerror(e));
		goto out;
	}
	z = mmap(NULL, sizeof *z, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (z == MAP_FAILED) {
		snprintf(why, whylen, "mmap %s: %s", tmp, strerror(errno));
		goto out;
	}
	z->version = ZONE_VERSION;
	z->size = sizeof(struct zone);
	atomic_store_explicit(&z->magic, ZONE_MAGIC, memory_order_release);
	if (replace) {
		if (rename(tmp, path) != 0) {
			snprintf(why, whylen, "rename to %s: %s", path, strerror(errno));
			goto out;
		}
	} else if (link(tmp, path) != 0 && errno != EEXIST) {
		snprintf(why, whylen, "link %s: %s", path, strerror(errno));
		goto out;
	}
	ok = true;
out:
	if (z != MAP_FAILED)
		munmap(z, sizeof *z);
	unlink(tmp); /* after a rename it names nothing: harmless */
	close(fd);
	return ok;
}

/* Maps fd when it is a valid zone that path still names; NULL otherwise
 * (*stale true when the file is simply not a zone and should be replaced). */
static struct zone *map_checked(int fd, const char *path, bool *stale)
{
	struct stat mine, now;
	struct zone *z;

	*stale = false;
	if (fstat(fd, &mine) != 0 || !S_ISREG(mine.st_mode))
		return NULL;
	if (mine.st_size != (off_t)sizeof(struct zone)) {
		*stale = true;
		return NULL;
	}
	z = mmap(NULL, sizeof *z, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (z == MAP_FAILED)
		return NULL;
	if (!zone_valid(z)) {
		*stale = true;
		munmap(z, sizeof *z);
		return NULL;
	}
	if (stat(path, &now) != 0 || now.st_dev != mine.st_dev || now.st_ino != mine.st_ino) {
		munmap(z, sizeof *z); /* replaced meanwhile: open the new one */
		return NULL;
	}
	return z;
}

struct metrics *metrics_open(const char *path, char *why, size_t whylen)
{
	struct zone *z = NULL;
	struct metrics *m;

	snprintf(why, whylen, "%s kept changing while opening it", path);
	for (int attempt = 0; attempt < OPEN_ATTEMPTS && z == NULL; attempt++) {
		bool stale = false;
		int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);

		if (fd < 0) {
			if (errno != ENOENT) {
				snprintf(why, whylen, "open %s: %s", path, strerror(errno));
				return NULL;
			}
			if (!build(path, false, why, whylen))
				return NULL;
			continue;
		}
		z = map_checked(fd, path, &stale);
		close(fd);
		if (z == NULL && stale && !build(path, true, why, whylen))
			return NULL;
	}
	if (z == NULL)
		return NULL;
	m = cz_calloc(1, sizeof *m);
	if (m == NULL) {
		munmap(z, sizeof *z);
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	m->z = z;
	return m;
}

struct metrics *metrics_open_beside(const char *database_path)
{
	char path[4096];
	char why[512] = "zone path too long";
	struct metrics *m = NULL;

	if (metrics_zone_path(database_path, path, sizeof path))
		m = metrics_open(path, why, sizeof why);
	if (m == NULL)
		log_event(L_WARN, "metrics.unavailable",
		          "why=%s effect=\"not counted in /metrics\"", log_q(why));
	return m;
}

void metrics_close(struct metrics *m)
{
	if (m == NULL)
		return;
	munmap(m->z, sizeof *m->z);
	cz_free(m);
}

/* ---- counting ---- */

static void add(_Atomic uint64_t *v, uint64_t n)
{
	atomic_fetch_add_explicit(v, n, memory_order_relaxed);
}

void metrics_count(struct metrics *m, enum metrics_counter c, uint64_t n)
{
	if (m != NULL && (unsigned)c < METRICS_COUNTER__COUNT)
		add(&m->z->counter[c], n);
}

void metrics_publish_total(struct metrics *m, enum metrics_counter c, uint64_t total)
{
	uint64_t old;

	if (m == NULL || (unsigned)c >= METRICS_COUNTER__COUNT)
		return;
	old = atomic_load_explicit(&m->published[c], memory_order_relaxed);
	while (total > old)
		if (atomic_compare_exchange_weak(&m->published[c], &old, total)) {
			add(&m->z->counter[c], total - old);
			return;
		}
}

void metrics_refused(struct metrics *m, enum metrics_refusal r)
{
	if (m != NULL && (unsigned)r < METRICS_REFUSAL__COUNT)
		add(&m->z->refused[r], 1);
}

void metrics_observe(struct metrics *m, enum metrics_histogram h, int64_t ns)
{
	int i = 0;
	double s;

	if (m == NULL || (unsigned)h >= METRICS_H__COUNT)
		return;
	if (ns < 0)
		ns = 0;
	s = (double)ns / 1e9;
	while (i < METRICS_BUCKETS && s > metrics_bucket_le[i])
		i++;
	add(&m->z->hist[h].bucket[i], 1);
	add(&m->z->hist[h].sum_ns, (uint64_t)ns);
}

void metrics_sync(struct metrics *m, enum metrics_sync_outcome o, int64_t duration_ns)
{
	if (m == NULL || (unsigned)o >= METRICS_SYNC__COUNT)
		return;
	add(&m->z->sync[o], 1);
	if (o == METRICS_SYNC_COMPLETED)
		metrics_observe(m, METRICS_H_SYNC_DURATION, duration_ns);
}

void metrics_attempt(struct metrics *m, enum metrics_attempt_outcome o, int http_status,
                     int64_t duration_ns)
{
	int cls = http_status >= 100 && http_status <= 599 ? http_status / 100 : 0;

	if (m == NULL || (unsigned)o >= METRICS_ATTEMPT__COUNT)
		return;
	add(&m->z->attempts[o][cls], 1);
	if (duration_ns >= 0)
		metrics_observe(m, METRICS_H_ATTEMPT, duration_ns);
}

/* ---- deliverer gauges ---- */

static bool pid_gone(int64_t pid)
{
	return pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

void metrics_deliverer_gauges(struct metrics *m, int64_t pid, int64_t now_ms, int64_t open_breakers)
{
	struct zslot *mine = NULL;

	if (m == NULL || pid <= 0)
		return;
	for (int i = 0; i < METRICS_DELIVERER_SLOTS && mine == NULL; i++)
		if (atomic_load_explicit(&m->z->deliverer[i].pid, memory_order_relaxed) == pid)
			mine = &m->z->deliverer[i];
	/* first report: take a free slot, else one whose process is gone */
	for (int pass = 0; pass < 2 && mine == NULL; pass++)
		for (int i = 0; i < METRICS_DELIVERER_SLOTS && mine == NULL; i++) {
			struct zslot *s = &m->z->deliverer[i];
			int64_t owner = atomic_load_explicit(&s->pid, memory_order_relaxed);
			bool takeable = pass == 0 ? owner == 0 : pid_gone(owner);

			if (takeable && atomic_compare_exchange_strong(&s->pid, &owner, pid))
				mine = s;
		}
	if (mine == NULL)
		return; /* more deliverers than slots: this one's gauges are not shown */
	atomic_store_explicit(&mine->open_breakers, open_breakers, memory_order_relaxed);
	atomic_store_explicit(&mine->updated_ms, now_ms, memory_order_release);
}

void metrics_deliverer_gone(struct metrics *m, int64_t pid)
{
	if (m == NULL || pid <= 0)
		return;
	for (int i = 0; i < METRICS_DELIVERER_SLOTS; i++) {
		int64_t owner = pid;

		if (atomic_compare_exchange_strong(&m->z->deliverer[i].pid, &owner, 0))
			atomic_store(&m->z->deliverer[i].open_breakers, 0);
	}
}

/* ---- reading ---- */

static void copy(uint64_t *dst, const _Atomic uint64_t *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = atomic_load_explicit(&src[i], memory_order_relaxed);
}

void metrics_read(const struct metrics *m, int64_t now_ms, int64_t stale_ms,
                  struct metrics_snapshot *out)
{
	const struct zone *z;

	memset(out, 0, sizeof *out);
	if (m == NULL)
		return;
	z = m->z;
	copy(out->counter, z->counter, METRICS_COUNTER__COUNT);
	copy(out->refused, z->refused, METRICS_REFUSAL__COUNT);
	copy(out->sync, z->sync, METRICS_SYNC__COUNT);
	for (int o = 0; o < METRICS_ATTEMPT__COUNT; o++)
		copy(out->attempts[o], z->attempts[o], METRICS_HTTP_CLASSES);
	for (int h = 0; h < METRICS_H__COUNT; h++) {
		copy(out->hist[h].bucket, z->hist[h].bucket, METRICS_BUCKETS + 1);
		for (int b = 0; b <= METRICS_BUCKETS; b++)
			out->hist[h].count += out->hist[h].bucket[b];
		out->hist[h].sum_ns =
		    atomic_load_explicit(&z->hist[h].sum_ns, memory_order_relaxed);
	}
	for (int i = 0; i < METRICS_DELIVERER_SLOTS; i++) {
		const struct zslot *s = &z->deliverer[i];

		if (atomic_load_explicit(&s->pid, memory_order_relaxed) == 0)
			continue;
		if (now_ms - atomic_load_explicit(&s->updated_ms, memory_order_acquire) > stale_ms)
			continue;
		out->open_breakers += atomic_load_explicit(&s->open_breakers, memory_order_relaxed);
	}
}

int64_t metrics_pending_mark(const struct metrics *m)
{
	return m == NULL ? 0 : atomic_load(&m->z->pending_mark);
}

void metrics_pending_mark_advance(struct metrics *m, int64_t old, int64_t new_mark)
{
	if (m != NULL)
		atomic_compare_exchange_strong(&m->z->pending_mark, &old, new_mark);
}

void metrics_pending_mark_lower(struct metrics *m, int64_t seq)
{
	int64_t cur;

	if (m == NULL || seq <= 0)
		return;
	cur = atomic_load(&m->z->pending_mark);
	while (cur > seq && !atomic_compare_exchange_weak(&m->z->pending_mark, &cur, seq))
		;
}
