/*
 * app: the state one consuma-fcgi process holds for its whole life (the
 * loaded configuration, its database connection, admission control, its
 * start time). It holds nothing between requests beyond these: every request
 * reads and writes the database. Filled once by main.c, then only read by
 * the handlers. One per process; the FastCGI loop is single threaded.
 */
#ifndef CONSUMA_FCGI_APP_H
#define CONSUMA_FCGI_APP_H

#include <stdint.h>
#include "config.h"
#include "doorbell.h"
#include "limits.h"
#include "ssrf.h"
#include "store.h"
#include "writelock.h"

struct app {
	struct config cfg;
	struct store *store;
	struct limits *limits;
	struct writelock *writelock; /* NULL: writes unserialized */
	char doorbell_path[CONFIG_PATH_MAX];
	struct doorbell *doorbell; /* NULL when the path cannot be a unix socket */
	struct ssrf_policy *ssrf;  /* callback address policy, built once */
	int64_t started_mono_ms;   /* for uptime_seconds */
	int64_t started_wall_ms;
};

#endif
