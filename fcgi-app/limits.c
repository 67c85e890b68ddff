/*
 * limits: admission control (see limits.h). This first version admits
 * everything and estimates Retry-After as a flat 1 s; the rate limiter over
 * the shared zone replaces it (storm-survival work).
 */
#include <stdio.h>
#include <string.h>
#include "alloc.h"
#include "limits.h"

struct limits {
	const struct config *cfg;
};

struct limits *limits_open(const struct config *cfg, char *why, size_t whylen)
{
	struct limits *l = cz_calloc(1, sizeof(*l));

	if (l == NULL) {
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	l->cfg = cfg;
	return l;
}

void limits_close(struct limits *l)
{
	cz_free(l);
}

void limits_client_addr(const struct limits *l, const char *remote_addr, const char *xff,
			char *out, size_t outlen)
{
	(void)l;
	(void)xff;
	snprintf(out, outlen, "%s", remote_addr != NULL ? remote_addr : "");
}

enum limits_verdict limits_admit(struct limits *l, const char *client, const char *route,
				 int64_t *retry_after_s)
{
	(void)l;
	(void)client;
	(void)route;
	*retry_after_s = 0;
	return LIMITS_PASS;
}

int64_t limits_queue_retry_after(struct limits *l, struct store *s, int64_t queue_depth)
{
	(void)l;
	(void)s;
	(void)queue_depth;
	return 1;
}
