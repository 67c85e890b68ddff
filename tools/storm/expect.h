/*
 * expect: the inputs consuma-storm sends and the results it expects back.
 *
 * A run draws its input_data from a small pool of distinct strings, all
 * derived from --seed, so the same seed sends the same bytes in the same
 * order. The expected result of every pool entry is computed once, locally,
 * with the service's own work function before the storm starts; checking a
 * response or a callback is then a string compare. The pool is read-only
 * after expect_new: thread safe.
 */
#ifndef CONSUMA_STORM_EXPECT_H
#define CONSUMA_STORM_EXPECT_H

#include <stddef.h>
#include <stdint.h>

#include "work.h"

#define EXPECT_POOL_MAX  32 /* distinct inputs per run at most */
#define EXPECT_INPUT_LEN 38 /* "storm-" + 32 hex */

struct expect;

/* A pool of min(n_requests, EXPECT_POOL_MAX) inputs with their results for
 * `iterations` rounds; with compute == 0 the results are left empty (raw
 * mode checks nothing). NULL on failure with *err set. Free with
 * expect_free (NULL is a no-op). */
struct expect *expect_new(uint64_t seed, uint64_t n_requests, int64_t iterations, int compute,
                          enum work_err *err);
void expect_free(struct expect *e);

/* The pool entry request i uses. */
size_t expect_pick(const struct expect *e, uint64_t i);
/* The input of entry k (NUL-terminated, EXPECT_INPUT_LEN bytes). */
const char *expect_input(const struct expect *e, size_t k);
/* The expected hex result of entry k ("" when not computed). */
const char *expect_result(const struct expect *e, size_t k);
/* The iterations the results were computed for. */
int64_t expect_iterations(const struct expect *e);

#endif
