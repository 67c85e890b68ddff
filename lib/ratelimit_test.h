/*
 * ratelimit_test: the crash hook of lib/ratelimit's unit test, kept out of
 * ratelimit.h because it is no part of the limiter's interface: only
 * ratelimit.c and tests/unit/test_ratelimit.c include this header.
 */
#ifndef CONSUMA_RATELIMIT_TEST_H
#define CONSUMA_RATELIMIT_TEST_H

#include <stdint.h>
#include "ratelimit.h"

/* Takes the lock, starts counting key at now_ms, and kills the calling
 * process with SIGKILL halfway through the update (stage 0: after the
 * journal entry, 1: after the ring write, 2: while installing a new key),
 * so that the test can watch the next locker repair the zone. Only ever
 * returns on error. */
enum ratelimit_err ratelimit_test_die_in_update(struct ratelimit *rl, const char *key,
                                                int64_t now_ms, int stage);

#endif
