/*
 * alloc: the allocation wrapper (see alloc.h). The failure injection is one
 * atomic countdown shared by all threads: cheap enough to leave in release
 * builds, so the same binary that ships is the one tests torture.
 */
#include <malloc.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "alloc.h"

static atomic_long fail_countdown = -1;

static int should_fail(void)
{
	long n = atomic_load_explicit(&fail_countdown, memory_order_relaxed);

	if (n < 0)
		return 0;
	if (n == 0)
		return 1;
	/* Decrement once; a lost race only shifts which call fails. */
	atomic_fetch_sub_explicit(&fail_countdown, 1, memory_order_relaxed);
	return 0;
}

void alloc_fail_after(long n)
{
	atomic_store(&fail_countdown, n < 0 ? -1 : n);
}

void *cz_malloc(size_t n)
{
	if (should_fail())
		return NULL;
	return malloc(n == 0 ? 1 : n);
}

void *cz_calloc(size_t count, size_t size)
{
	if (should_fail())
		return NULL;
	return calloc(count == 0 ? 1 : count, size == 0 ? 1 : size);
}

void *cz_realloc(void *p, size_t n)
{
	if (should_fail())
		return NULL;
	return realloc(p, n == 0 ? 1 : n);
}

bool cz_grow(void *pp, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return true;
	size_t more = *cap ? *cap * 2 : 16;
	if (more < *cap || size == 0 || more > SIZE_MAX / size)
		return false;
	void *p = cz_realloc(*(void **)pp, more * size);
	if (!p)
		return false;
	*(void **)pp = p;
	*cap = more;
	return true;
}

char *cz_strndup(const char *s, size_t n)
{
	char *copy;

	if (s == NULL)
		return NULL;
	copy = cz_malloc(n + 1);
	if (copy == NULL)
		return NULL;
	memcpy(copy, s, n);
	copy[n] = '\0';
	return copy;
}

char *cz_strdup(const char *s)
{
	if (s == NULL)
		return NULL;
	return cz_strndup(s, strlen(s));
}

void cz_free(void *p)
{
	free(p);
}

void cz_keep_freed_memory(void)
{
	mallopt(M_TRIM_THRESHOLD, 256 * 1024 * 1024);
	mallopt(M_TOP_PAD, 16 * 1024 * 1024);
	mallopt(M_MMAP_THRESHOLD, 32 * 1024 * 1024);
}
