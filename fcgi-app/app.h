/*
 * app: the state one consuma-fcgi process holds for its whole life (the
 * loaded configuration, admission control, the store's group committer,
 * its start time). It holds nothing between requests beyond these: every
 * request reads and writes the database. Filled once by main.c before the
 * worker threads start, then only read by the handlers; the objects it
 * points to are thread safe (limits, committer, doorbell, ssrf policy,
 * lookups gate, auth).
 * Each worker thread has its own database connection (http_exchange).
 */
#ifndef CONSUMA_FCGI_APP_H
#define CONSUMA_FCGI_APP_H

#include <stdint.h>
#include "config.h"
#include "doorbell.h"
#include "limits.h"
#include "metrics.h"
#include "resolve.h"
#include "ssrf.h"
#include "store.h"

struct auth;
struct park;

struct app {
	struct config cfg;
	struct store_committer *committer; /* every thread's writes, batched */
	struct limits *limits;
	char doorbell_path[CONFIG_PATH_MAX];
	struct doorbell *doorbell; /* NULL when the path cannot be a unix socket */
	struct ssrf_policy *ssrf;  /* callback address policy, built once */
	/* callback host lookups in flight (POST /async); NULL: unbounded */
	struct resolve_gate *lookups;
	struct metrics *metrics; /* the host's counters zone; NULL: not counted */
	struct auth *auth;       /* API keys (auth.h); never NULL once started */
	struct park *park;       /* parked requests (park.h); NULL: none are parked */
	int64_t started_mono_ms; /* for uptime_seconds */
	int64_t started_wall_ms;
};

#endif
