/*
 * ids: clocks, UUIDv7 and RFC 3339 (see ids.h).
 *
 * UUIDv7 layout (RFC 9562): 48 bits of Unix milliseconds, version 7, then 12
 * bits of "rand_a" that we use as a counter within the millisecond (method 1
 * of the RFC), the variant, and 62 random bits. The last (ms, counter) pair
 * is kept under a mutex so ids made in one process are strictly increasing
 * even when the wall clock stalls or steps back.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include "ids.h"

static pthread_mutex_t uuid_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t last_ms;
static unsigned last_counter;

int64_t ids_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t ids_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t ids_mono_ms(void)
{
	return ids_mono_ns() / 1000000;
}

/* Forks seen by this process since the first call (a pthread_atfork
 * child handler counts them): per-thread caches made before a fork are
 * stale in the child, which would otherwise share the parent's pid and
 * random bytes. */
static atomic_uint forks;
static pthread_once_t forks_once = PTHREAD_ONCE_INIT;

static void count_fork(void)
{
	atomic_fetch_add_explicit(&forks, 1, memory_order_relaxed);
}

static void watch_forks(void)
{
	pthread_atfork(NULL, NULL, count_fork);
}

unsigned ids_forks(void)
{
	pthread_once(&forks_once, watch_forks);
	return atomic_load_explicit(&forks, memory_order_relaxed);
}

static void fill_random(unsigned char *p, size_t n)
{
	while (n > 0) {
		ssize_t got = getrandom(p, n, 0);

		if (got <= 0)
			continue; /* EINTR; getrandom does not fail otherwise once seeded */
		p += got;
		n -= (size_t)got;
	}
}

/* 16 random bytes from this thread's pool, refilled by one getrandom per
 * RANDOM_POOL / 16 ids (a syscall per id was ~0.4 us of each /async), and
 * thrown away after a fork. */
#define RANDOM_POOL 512
static void take_random(unsigned char b[16])
{
	static _Thread_local unsigned char pool[RANDOM_POOL];
	static _Thread_local size_t left;
	static _Thread_local unsigned seen;
	unsigned now = ids_forks();
	if (left < 16 || seen != now) {
		fill_random(pool, sizeof pool);
		left = sizeof pool;
		seen = now;
	}
	left -= 16;
	memcpy(b, pool + left, 16);
	memset(pool + left, 0, 16); /* nothing handed out stays behind */
}

void ids_uuidv7(char out[IDS_UUID_LEN + 1])
{
	unsigned char b[16];
	int64_t ms = ids_now_ms();
	unsigned counter;

	take_random(b);
	pthread_mutex_lock(&uuid_lock);
	if (ms > last_ms) {
		last_ms = ms;
		last_counter =
		    ((unsigned)b[6] << 8 | b[7]) & 0x3ff; /* random start, room to grow */
	} else {
		ms = last_ms;
		last_counter++;
		if (last_counter > 0xfff) { /* counter exhausted: borrow the next millisecond */
			last_ms++;
			ms = last_ms;
			last_counter = 0;
		}
	}
	counter = last_counter;
	pthread_mutex_unlock(&uuid_lock);

	b[0] = (unsigned char)(ms >> 40);
	b[1] = (unsigned char)(ms >> 32);
	b[2] = (unsigned char)(ms >> 24);
	b[3] = (unsigned char)(ms >> 16);
	b[4] = (unsigned char)(ms >> 8);
	b[5] = (unsigned char)ms;
	b[6] = (unsigned char)(0x70 | ((counter >> 8) & 0x0f));
	b[7] = (unsigned char)(counter & 0xff);
	b[8] = (unsigned char)(0x80 | (b[8] & 0x3f));
	/* 8-4-4-4-12 lowercase hex digits; by hand, since snprintf's format
	 * walk cost ~6,000 instructions per id (one per request) */
	static const char digits[] = "0123456789abcdef";
	size_t o = 0;
	for (size_t i = 0; i < sizeof b; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = digits[b[i] >> 4];
		out[o++] = digits[b[i] & 0x0f];
	}
	out[o] = '\0';
}

bool ids_uuid_valid(const char *s)
{
	size_t i;

	if (s == NULL)
		return false;
	for (i = 0; i < IDS_UUID_LEN; i++) {
		char c = s[i];

		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (c != '-')
				return false;
		} else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
			return false;
		}
	}
	return s[IDS_UUID_LEN] == '\0';
}

void ids_rfc3339(int64_t ms, char out[IDS_RFC3339_LEN + 1])
{
	time_t secs = (time_t)(ms / 1000);
	int millis = (int)(ms % 1000);
	struct tm tm;
	char tmp[64];

	if (millis < 0) {
		millis += 1000;
		secs -= 1;
	}
	gmtime_r(&secs, &tm);
	/* Format wide, then copy: the compiler cannot bound struct tm's fields. */
	snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
	         (tm.tm_year + 1900) % 10000, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	         tm.tm_sec, millis);
	memcpy(out, tmp, IDS_RFC3339_LEN);
	out[IDS_RFC3339_LEN] = '\0';
}

uint64_t ids_xorshift64(uint64_t *state)
{
	uint64_t x = *state != 0 ? *state : 0x9e3779b97f4a7c15ULL;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*state = x;
	return x;
}
