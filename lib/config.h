/*
 * config: every CONSUMA_* environment variable, typed, bounded and with a
 * default, in one table (config.c). config_load() validates all of them at
 * start-up; a value that does not parse or is out of range is an error that
 * names the variable and the accepted range, and the program exits 2.
 * Nothing silently falls back.
 *
 * Durations are kept in the unit their field's name ends in: a variable
 * given in seconds or hours lands in a _ms field, converted once here.
 *
 * The loaded struct is read-only afterwards and may be shared by threads.
 */
#ifndef CONSUMA_CONFIG_H
#define CONSUMA_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_PATH_MAX 1024
#define CONFIG_LIST_MAX 4096
#define CONFIG_STR_MAX  256

struct config {
	/* -- the nine of ORIGIN.md -- */
	int64_t default_iterations;          /* CONSUMA_DEFAULT_ITERATIONS */
	int64_t max_workers;                 /* CONSUMA_MAX_WORKERS (0: number of CPUs) */
	int64_t max_queue_size;              /* CONSUMA_MAX_QUEUE_SIZE */
	int64_t callback_timeout_ms;         /* CONSUMA_CALLBACK_TIMEOUT (seconds) */
	int64_t callback_max_retries;        /* CONSUMA_CALLBACK_MAX_RETRIES, attempts in all */
	int64_t rate_limit_requests;         /* CONSUMA_RATE_LIMIT_REQUESTS (0: off) */
	int64_t rate_limit_window_ms;        /* CONSUMA_RATE_LIMIT_WINDOW (seconds) */
	bool allow_private_callbacks;        /* CONSUMA_ALLOW_PRIVATE_CALLBACKS */
	char database_path[CONFIG_PATH_MAX]; /* CONSUMA_DATABASE_PATH */
	char database_url[CONFIG_PATH_MAX]; /* CONSUMA_DATABASE_URL (secret: may hold a password) */

	/* -- intake -- */
	int64_t max_iterations;              /* CONSUMA_MAX_ITERATIONS */
	int64_t max_body_bytes;              /* CONSUMA_MAX_BODY_BYTES */
	int64_t idempotency_ttl_ms;          /* CONSUMA_IDEMPOTENCY_TTL (seconds) */
	char doorbell_path[CONFIG_PATH_MAX]; /* CONSUMA_DOORBELL_PATH ("": <db>.bell) */
	int64_t fcgi_threads;                /* CONSUMA_FCGI_THREADS (0: see config.c) */

	/* -- deliverer -- */
	int64_t max_inflight_deliveries;     /* CONSUMA_MAX_INFLIGHT_DELIVERIES */
	int64_t callback_connect_timeout_ms; /* CONSUMA_CALLBACK_CONNECT_TIMEOUT_MS */
	int64_t callback_max_response_bytes; /* CONSUMA_CALLBACK_MAX_RESPONSE_BYTES */
	int64_t callback_backoff_base_ms;    /* CONSUMA_CALLBACK_BACKOFF_BASE_MS */
	int64_t callback_backoff_max_ms;     /* CONSUMA_CALLBACK_BACKOFF_MAX_MS */
	int64_t lease_ms;                    /* CONSUMA_LEASE_SECONDS */
	int64_t claim_batch;                 /* CONSUMA_CLAIM_BATCH */
	int64_t shutdown_grace_ms;           /* CONSUMA_SHUTDOWN_GRACE (seconds) */
	int64_t poll_interval_ms;            /* CONSUMA_POLL_INTERVAL_MS */
	int64_t heartbeat_stale_ms;          /* CONSUMA_HEARTBEAT_STALE_SECONDS */
	int64_t retention_ms;                /* CONSUMA_RETENTION_HOURS (0: keep forever) */

	/* -- callback safety -- */
	int64_t dns_timeout_ms;                     /* CONSUMA_DNS_TIMEOUT_MS */
	char callback_deny_cidrs[CONFIG_LIST_MAX];  /* CONSUMA_CALLBACK_DENY_CIDRS */
	char callback_allow_cidrs[CONFIG_LIST_MAX]; /* CONSUMA_CALLBACK_ALLOW_CIDRS */
	char callback_secret[CONFIG_LIST_MAX];      /* CONSUMA_CALLBACK_SECRET (whsec_... list) */
	int64_t max_per_host;                       /* CONSUMA_MAX_PER_HOST */
	int64_t breaker_failures;                   /* CONSUMA_BREAKER_FAILURES */
	int64_t breaker_cooldown_ms;                /* CONSUMA_BREAKER_COOLDOWN_MS */
	int64_t max_pending_per_host;               /* CONSUMA_MAX_PENDING_PER_HOST */

	/* -- storm survival -- */
	double max_queue_share;                /* CONSUMA_MAX_QUEUE_SHARE, 0..1 */
	char trusted_proxies[CONFIG_LIST_MAX]; /* CONSUMA_TRUSTED_PROXIES */
	char rate_limit_zone[CONFIG_PATH_MAX]; /* CONSUMA_RATE_LIMIT_ZONE ("": <db>.ratelimit) */
	int64_t rate_limit_zone_entries;       /* CONSUMA_RATE_LIMIT_ZONE_ENTRIES */
	int64_t sync_max_wait_ms;              /* CONSUMA_SYNC_MAX_WAIT_MS */

	/* -- access -- */
	char api_keys_file[CONFIG_PATH_MAX]; /* CONSUMA_API_KEYS_FILE ("": the service runs open) */

	/* -- operations -- */
	int log_level; /* CONSUMA_LOG_LEVEL (enum log_level) */
};

enum config_err {
	CONFIG_OK = 0,
	CONFIG_INVALID, /* a variable's value does not parse or is out of range */
};

/* Fills c from the environment: every variable's default, then its value
 * when set. On CONFIG_INVALID, err holds "CONSUMA_X: <why>; accepted: <range>"
 * (naming the first bad variable) and c is unspecified. Not thread safe
 * (reads the environment); call once at start-up. */
enum config_err config_load(struct config *c, char *err, size_t errlen);

/* The store's target: CONSUMA_DATABASE_URL when set, else the SQLite
 * path (store_open picks the backend from it). */
const char *config_database(const struct config *c);
/* What logs may print of it: the path, or the variable's name for a URL
 * (which may hold a password). */
const char *config_database_label(const struct config *c);

/* Paths derived from the database path when not set explicitly. */
void config_doorbell_path(const struct config *c, char *out, size_t outlen);
void config_rate_limit_zone(const struct config *c, char *out, size_t outlen);

/* Writes every variable as NAME=value lines (the secret masked) to out,
 * for --help and the README's table; one call per line via the callback. */
void config_describe(void (*line)(const char *name, const char *type_and_range,
                                  const char *default_value, const char *help, void *arg),
                     void *arg);

#endif
