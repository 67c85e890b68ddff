/*
 * ids: request ids (UUIDv7, time ordered), the clocks and time formats used
 * everywhere, and the one fast pseudo-random generator (for jitter). All
 * functions are thread safe.
 */
#ifndef CONSUMA_IDS_H
#define CONSUMA_IDS_H

#include <stdbool.h>
#include <stdint.h>

#define IDS_UUID_LEN    36 /* xxxxxxxx-xxxx-7xxx-yxxx-xxxxxxxxxxxx */
#define IDS_RFC3339_LEN 24 /* 2026-11-27T05:40:15.123Z */

/* Wall clock, Unix epoch milliseconds (UTC). */
int64_t ids_now_ms(void);
/* Monotonic clock in milliseconds / nanoseconds, for durations and timers. */
int64_t ids_mono_ms(void);
int64_t ids_mono_ns(void);

/* Writes a new UUIDv7 (RFC 9562) as 36 lowercase characters and a NUL.
 * Ids made in one process are strictly increasing. */
void ids_uuidv7(char out[IDS_UUID_LEN + 1]);
/* True when s is a canonical UUID: 36 characters, lowercase hex, dashes at
 * 8, 13, 18, 23 (any version). */
bool ids_uuid_valid(const char *s);
/* Formats epoch milliseconds as RFC 3339 UTC with milliseconds. */
void ids_rfc3339(int64_t ms, char out[IDS_RFC3339_LEN + 1]);

/* xorshift64 (Marsaglia 2003): advances *state and returns the new value.
 * Not for secrets: jitter and tests. A zero state, which xorshift never
 * leaves, is taken as a fixed odd seed instead. The state is the caller's
 * (one per thread). */
uint64_t ids_xorshift64(uint64_t *state);

/* How many times this process has forked since the first call (counted
 * by a pthread_atfork child handler): a per-thread cache of the pid or of
 * random bytes is stale when the count it was made at is not this one. */
unsigned ids_forks(void);

#endif
