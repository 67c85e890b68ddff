/*
 * alloc: the one allocation wrapper of libconsuma.
 *
 * Out-of-memory policy: every allocation goes through cz_*; they return NULL
 * on failure and callers propagate an error (never abort). Tests make
 * allocations fail on purpose with alloc_fail_after() (curl's torture mode).
 * All functions are thread safe.
 */
#ifndef CONSUMA_ALLOC_H
#define CONSUMA_ALLOC_H

#include <stdbool.h>
#include <stddef.h>

void *cz_malloc(size_t n);
void *cz_calloc(size_t count, size_t size);
void *cz_realloc(void *p, size_t n);
/* Makes room for one more element in the array *pp of *cap elements of
 * size bytes, n of them used: when n == *cap, doubles *cap (first 16) and
 * reallocates *pp. False when memory ran out or the size would overflow
 * (*pp and *cap unchanged). */
bool cz_grow(void *pp, size_t *cap, size_t n, size_t size);
/* A copy of s (NULL when s is NULL or memory ran out); free with cz_free. */
char *cz_strdup(const char *s);
/* A NUL-terminated copy of the first n bytes of s. */
char *cz_strndup(const char *s, size_t n);
/* cz_free(NULL) is a no-op. */
void cz_free(void *p);

/* For a long-running program that allocates and frees the same working set
 * over and over (a request, a job): keeps freed memory in the process
 * instead of trimming the heap back to the kernel after every free of a
 * large block, which costs an madvise and page faults to get it back
 * (glibc's per-thread arenas trim too). Call once at start-up, before
 * threads. No-op where mallopt is intercepted (sanitizers). */
void cz_keep_freed_memory(void);

/* Test hook: the n+1-th allocation from now on, and every one after it,
 * fails. n < 0 switches failures off (the default). */
void alloc_fail_after(long n);

#endif
