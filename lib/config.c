/*
 * config: the CONSUMA_* table (see config.h).
 *
 * One row per variable: name, type, bounds, default, help text and where
 * the value lands in struct config. config_load() applies every default,
 * then parses every variable that is set, then checks the relations between
 * variables; the first problem stops it with a message that names the
 * variable and the accepted values (Redis createIntConfig, lighttpd's typed
 * keys).
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "cidr.h"
#include "config.h"
#include "store.h"
#include "log.h"
#include "sign.h"

enum type {
	T_INT,
	T_SECONDS,
	T_HOURS,
	T_BOOL,
	T_DOUBLE,
	T_STR,
	T_CIDRS,
	T_SECRET,
	T_DBURL,
	T_LEVEL
};

struct var {
	const char *name;
	enum type type;
	size_t offset;
	size_t size; /* T_STR/T_CIDRS/T_SECRET/T_DBURL: the field's bytes */
	int64_t imin, imax;
	double dmin, dmax;
	const char *def; /* as it would be written in the environment */
	const char *help;
};

#define OFF(f) offsetof(struct config, f)
#define INT(n, f, d, lo, hi, h)                                                                    \
	{                                                                                          \
		n, T_INT, OFF(f), 0, lo, hi, 0, 0, d, h                                            \
	}
/* A duration given in s or h and kept in milliseconds (the field ends _ms),
 * so no caller converts: bounds and default are in the variable's unit. */
#define SECONDS(n, f, d, lo, hi, h)                                                                \
	{                                                                                          \
		n, T_SECONDS, OFF(f), 0, lo, hi, 0, 0, d, h                                        \
	}
#define HOURS(n, f, d, lo, hi, h)                                                                  \
	{                                                                                          \
		n, T_HOURS, OFF(f), 0, lo, hi, 0, 0, d, h                                          \
	}
#define BOOL(n, f, d, h)                                                                           \
	{                                                                                          \
		n, T_BOOL, OFF(f), 0, 0, 1, 0, 0, d, h                                             \
	}
#define STR(n, f, d, h)                                                                            \
	{                                                                                          \
		n, T_STR, OFF(f), sizeof(((struct config *)0)->f), 0, 0, 0, 0, d, h                \
	}
#define CIDRS(n, f, h)                                                                             \
	{                                                                                          \
		n, T_CIDRS, OFF(f), sizeof(((struct config *)0)->f), 0, 0, 0, 0, "", h             \
	}

static const struct var vars[] = {
    INT("CONSUMA_DEFAULT_ITERATIONS", default_iterations, "50000", 1, 100000000,
        "SHA-256 iterations when a request names none"),
    INT("CONSUMA_MAX_WORKERS", max_workers, "0", 0, 256,
        "deliverer compute threads (0: the number of CPUs)"),
    INT("CONSUMA_MAX_QUEUE_SIZE", max_queue_size, "1000", 1, 100000000,
        "unfinished async jobs before POST /async answers 503"),
    SECONDS("CONSUMA_CALLBACK_TIMEOUT", callback_timeout_ms, "10", 1, 300,
            "total time of one callback attempt, seconds"),
    INT("CONSUMA_CALLBACK_MAX_RETRIES", callback_max_retries, "5", 1, 100,
        "callback attempts in all before a job fails"),
    INT("CONSUMA_RATE_LIMIT_REQUESTS", rate_limit_requests, "100", 0, 100000,
        "requests per window per client (its API key, else its address; 0: no limit)"),
    SECONDS("CONSUMA_RATE_LIMIT_WINDOW", rate_limit_window_ms, "60", 1, 86400,
            "rate limit sliding window, seconds"),
    BOOL("CONSUMA_ALLOW_PRIVATE_CALLBACKS", allow_private_callbacks, "false",
         "allow callbacks to private and loopback addresses (local testing only)"),
    STR("CONSUMA_DATABASE_PATH", database_path, "requests.db",
        "SQLite database file (one host); also names the doorbell, rate-limit zone and metrics "
        "files beside it"),
    {"CONSUMA_DATABASE_URL", T_DBURL, OFF(database_url), sizeof(((struct config *)0)->database_url),
     0, 0, 0, 0, "",
     "postgresql://user:password@host:port/db: use PostgreSQL instead of SQLite (several "
     "hosts on one queue); empty: SQLite at CONSUMA_DATABASE_PATH"},

    INT("CONSUMA_MAX_ITERATIONS", max_iterations, "1000000", 1, 100000000,
        "largest iterations a request may ask for"),
    INT("CONSUMA_MAX_BODY_BYTES", max_body_bytes, "65536", 1024, 16777216,
        "largest request body; larger gets 413"),
    SECONDS("CONSUMA_IDEMPOTENCY_TTL", idempotency_ttl_ms, "86400", 1, 2592000,
            "how long an Idempotency-Key is remembered, seconds"),
    STR("CONSUMA_DOORBELL_PATH", doorbell_path, "",
        "unix datagram socket that wakes the deliverer (default: <database>.bell)"),
    INT("CONSUMA_FCGI_THREADS", fcgi_threads, "0", 0, 256,
        "requests one consuma-fcgi process serves at once (0: 4 per CPU)"),

    INT("CONSUMA_MAX_INFLIGHT_DELIVERIES", max_inflight_deliveries, "256", 1, 100000,
        "callbacks in flight at once"),
    INT("CONSUMA_CALLBACK_CONNECT_TIMEOUT_MS", callback_connect_timeout_ms, "3000", 1, 60000,
        "connect timeout of one callback attempt"),
    INT("CONSUMA_CALLBACK_MAX_RESPONSE_BYTES", callback_max_response_bytes, "65536", 0, 16777216,
        "callback response bytes read before the attempt is cut"),
    INT("CONSUMA_CALLBACK_BACKOFF_BASE_MS", callback_backoff_base_ms, "2000", 1, 3600000,
        "first retry delay; doubles per attempt"),
    INT("CONSUMA_CALLBACK_BACKOFF_MAX_MS", callback_backoff_max_ms, "60000", 1, 86400000,
        "largest retry delay (also caps Retry-After)"),
    SECONDS("CONSUMA_LEASE_SECONDS", lease_ms, "30", 1, 3600,
            "how long a claimed job stays invisible to other deliverers"),
    INT("CONSUMA_CLAIM_BATCH", claim_batch, "64", 1, 10000, "jobs claimed per transaction"),
    SECONDS("CONSUMA_SHUTDOWN_GRACE", shutdown_grace_ms, "10", 0, 3600,
            "seconds the deliverer lets work in hand finish on SIGTERM"),
    INT("CONSUMA_POLL_INTERVAL_MS", poll_interval_ms, "1000", 10, 60000,
        "deliverer fallback poll when no doorbell rings"),
    SECONDS("CONSUMA_HEARTBEAT_STALE_SECONDS", heartbeat_stale_ms, "5", 2, 3600,
            "a deliverer heartbeat older than this makes /healthz degraded"),
    HOURS("CONSUMA_RETENTION_HOURS", retention_ms, "168", 0, 87600,
          "finished requests older than this are deleted by the deliverer (0: keep forever)"),

    INT("CONSUMA_DNS_TIMEOUT_MS", dns_timeout_ms, "2000", 1, 60000,
        "time allowed to resolve a callback host"),
    CIDRS("CONSUMA_CALLBACK_DENY_CIDRS", callback_deny_cidrs,
          "extra callback destinations to refuse (comma-separated CIDRs)"),
    CIDRS("CONSUMA_CALLBACK_ALLOW_CIDRS", callback_allow_cidrs,
          "callback destinations allowed even in a denied class (known partners)"),
    {"CONSUMA_CALLBACK_SECRET", T_SECRET, OFF(callback_secret),
     sizeof(((struct config *)0)->callback_secret), 0, 0, 0, 0, "",
     "whsec_<base64> keys that sign callbacks (Standard Webhooks), space-separated: one "
     "signature per key; empty: unsigned"},
    INT("CONSUMA_MAX_PER_HOST", max_per_host, "8", 1, 10000,
        "concurrent deliveries to one destination origin (scheme, host, port)"),
    INT("CONSUMA_BREAKER_FAILURES", breaker_failures, "5", 0, 1000,
        "consecutive failures that open an origin's circuit breaker (0: never)"),
    INT("CONSUMA_BREAKER_COOLDOWN_MS", breaker_cooldown_ms, "30000", 0, 3600000,
        "how long an open breaker holds an origin's jobs"),
    INT("CONSUMA_MAX_PENDING_PER_HOST", max_pending_per_host, "500", 0, 100000000,
        "unfinished jobs per callback host before 429 at intake (0: no bound)"),

    {"CONSUMA_MAX_QUEUE_SHARE", T_DOUBLE, OFF(max_queue_share), 0, 0, 0, 0.0, 1.0, "0.5",
     "fraction of the queue one client (API key, else address) may hold (0 < share <= 1)"},
    CIDRS("CONSUMA_TRUSTED_PROXIES", trusted_proxies,
          "proxies whose X-Forwarded-For is believed (comma-separated CIDRs)"),
    STR("CONSUMA_RATE_LIMIT_ZONE", rate_limit_zone, "",
        "shared-memory file of the rate limiter (default: <database>.ratelimit)"),
    INT("CONSUMA_RATE_LIMIT_ZONE_ENTRIES", rate_limit_zone_entries, "8192", 64, 1048576,
        "client addresses the rate-limit zone tracks before evicting the stalest"),
    INT("CONSUMA_SYNC_MAX_WAIT_MS", sync_max_wait_ms, "1000", 1, 600000,
        "estimated wait in a /sync process's queue above which /sync answers 503"),

    STR("CONSUMA_API_KEYS_FILE", api_keys_file, "",
        "file of '<client> <role> <sha256 hex>' lines; empty: no API keys, the service runs "
        "open"),

    {"CONSUMA_LOG_LEVEL", T_LEVEL, OFF(log_level), 0, 0, 3, 0, 0, "info",
     "debug, info, warn or error"},
};

#define NVARS (sizeof(vars) / sizeof(vars[0]))

/* A printable, bounded echo of a bad value for the error message. */
static void echo(const char *v, char *out, size_t outlen)
{
	size_t i, j = 0;

	for (i = 0; v[i] != '\0' && j + 1 < outlen && i < 40; i++)
		out[j++] = isprint((unsigned char)v[i]) ? v[i] : '?';
	out[j] = '\0';
	if (v[i] != '\0' && outlen > 4 && j + 4 < outlen) {
		memcpy(out + j, "...", 4);
	}
}

static bool parse_int(const char *s, int64_t *out)
{
	char *end;
	long long v;

	if (*s == '\0' || isspace((unsigned char)*s) || *s == '+')
		return false;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0')
		return false;
	*out = v;
	return true;
}

static bool parse_double(const char *s, double *out)
{
	char *end;
	double v;

	if (*s == '\0' || isspace((unsigned char)*s))
		return false;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || *end != '\0' || !isfinite(v))
		return false;
	*out = v;
	return true;
}

static int parse_bool(const char *s)
{
	static const char *yes[] = {"true", "1", "yes", "on"};
	static const char *no[] = {"false", "0", "no", "off"};
	size_t i;

	for (i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0)
			return 1;
		if (strcasecmp(s, no[i]) == 0)
			return 0;
	}
	return -1;
}

/* One whsec_ secret of n bytes at s. */
static bool one_secret_valid(const char *s, size_t n)
{
	size_t i, pad = 0;

	if (n < 6 || strncmp(s, "whsec_", 6) != 0)
		return false;
	s += 6;
	n -= 6;
	if (n == 0 || n % 4 != 0)
		return false;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (c == '=') {
			if (i < n - 2)
				return false;
			pad++;
		} else if (pad > 0 || !(isalnum((unsigned char)c) || c == '+' || c == '/')) {
			return false;
		}
	}
	return n / 4 * 3 - pad >= 1 && n / 4 * 3 - pad <= 64;
}

/* Empty, or 1..SIGN_KEYS_MAX secrets separated by single spaces (key
 * rotation: every callback is signed with each). */
static bool secret_valid(const char *s)
{
	size_t count = 0;

	if (*s == '\0')
		return true;
	for (;;) {
		size_t n = strcspn(s, " ");

		if (++count > SIGN_KEYS_MAX || !one_secret_valid(s, n))
			return false;
		s += n;
		if (*s == '\0')
			return true;
		s++; /* the one space; an empty secret after it is refused above */
	}
}

static const char *range_text(const struct var *v, char *buf, size_t len)
{
	switch (v->type) {
	case T_INT:
	case T_SECONDS:
	case T_HOURS:
		snprintf(buf, len, "an integer in %lld..%lld", (long long)v->imin,
		         (long long)v->imax);
		break;
	case T_BOOL:
		snprintf(buf, len, "true or false");
		break;
	case T_DOUBLE:
		snprintf(buf, len, "a number in (%g, %g]", v->dmin, v->dmax);
		break;
	case T_STR:
		snprintf(buf, len, "a path of at most %zu bytes", v->size - 1);
		break;
	case T_CIDRS:
		snprintf(buf, len, "comma-separated IPv4/IPv6 addresses or CIDRs");
		break;
	case T_DBURL:
		snprintf(buf, len,
		         "empty, or a postgresql:// or postgres:// URL of at most %zu bytes",
		         v->size - 1);
		break;
	case T_SECRET:
		snprintf(buf, len,
		         "empty, or whsec_ + base64 of 1..64 bytes; up to %d, space-separated",
		         SIGN_KEYS_MAX);
		break;
	case T_LEVEL:
		snprintf(buf, len, "debug, info, warn or error");
		break;
	}
	return buf;
}

/* Parses raw into the field of v; false when it does not fit. */
static bool assign(struct config *c, const struct var *v, const char *raw)
{
	char *field = (char *)c + v->offset;
	int64_t i;
	double d;
	int b;

	switch (v->type) {
	case T_INT:
	case T_SECONDS:
	case T_HOURS:
		if (!parse_int(raw, &i) || i < v->imin || i > v->imax)
			return false;
		/* the bounds keep these far from overflow */
		if (v->type == T_SECONDS)
			i *= 1000;
		else if (v->type == T_HOURS)
			i *= 3600 * 1000;
		memcpy(field, &i, sizeof(i));
		return true;
	case T_BOOL:
		b = parse_bool(raw);
		if (b < 0)
			return false;
		*(bool *)(void *)field = b == 1;
		return true;
	case T_DOUBLE:
		if (!parse_double(raw, &d) || !(d > v->dmin) || d > v->dmax)
			return false;
		memcpy(field, &d, sizeof(d));
		return true;
	case T_CIDRS:
		if (!cidr_list_valid(raw))
			return false;
		__attribute__((fallthrough));
	case T_STR:
	case T_SECRET:
	case T_DBURL:
		if (v->type == T_SECRET && !secret_valid(raw))
			return false;
		if (v->type == T_DBURL && raw[0] != '\0' && !store_target_is_url(raw))
			return false;
		if (strlen(raw) >= v->size || memchr(raw, '\n', strlen(raw)) != NULL)
			return false;
		memcpy(field, raw, strlen(raw) + 1);
		return true;
	case T_LEVEL:
		b = log_level_parse(raw);
		if (b < 0)
			return false;
		*(int *)(void *)field = b;
		return true;
	}
	return false;
}

enum config_err config_load(struct config *c, char *err, size_t errlen)
{
	char range[96], shown[48];
	size_t i;

	memset(c, 0, sizeof(*c));
	for (i = 0; i < NVARS; i++) {
		if (!assign(c, &vars[i], vars[i].def)) {
			snprintf(err, errlen, "%s: bad built-in default", vars[i].name);
			return CONFIG_INVALID;
		}
	}
	for (i = 0; i < NVARS; i++) {
		const char *raw = getenv(vars[i].name);

		if (raw == NULL)
			continue;
		if (!assign(c, &vars[i], raw)) {
			echo(raw, shown, sizeof(shown));
			snprintf(err, errlen, "%s: invalid value '%s'; accepted: %s", vars[i].name,
			         vars[i].type == T_SECRET || vars[i].type == T_DBURL ? "<hidden>"
			                                                             : shown,
			         range_text(&vars[i], range, sizeof(range)));
			return CONFIG_INVALID;
		}
	}
	if (c->database_path[0] == '\0') {
		snprintf(
		    err, errlen,
		    "CONSUMA_DATABASE_PATH: must not be empty; accepted: a path of 1..%zu bytes",
		    sizeof(c->database_path) - 1);
		return CONFIG_INVALID;
	}
	if (c->default_iterations > c->max_iterations) {
		snprintf(err, errlen,
		         "CONSUMA_DEFAULT_ITERATIONS: %lld is above CONSUMA_MAX_ITERATIONS (%lld); "
		         "accepted: 1..CONSUMA_MAX_ITERATIONS",
		         (long long)c->default_iterations, (long long)c->max_iterations);
		return CONFIG_INVALID;
	}
	if (c->callback_backoff_max_ms < c->callback_backoff_base_ms) {
		snprintf(err, errlen,
		         "CONSUMA_CALLBACK_BACKOFF_MAX_MS: %lld is below "
		         "CONSUMA_CALLBACK_BACKOFF_BASE_MS (%lld); accepted: >= the base",
		         (long long)c->callback_backoff_max_ms,
		         (long long)c->callback_backoff_base_ms);
		return CONFIG_INVALID;
	}
	if (c->retention_ms != 0 && c->retention_ms < c->idempotency_ttl_ms) {
		snprintf(err, errlen,
		         "CONSUMA_RETENTION_HOURS: %lld hours is shorter than "
		         "CONSUMA_IDEMPOTENCY_TTL (%lld s), so a key would be forgotten early; "
		         "accepted: 0 or >= CONSUMA_IDEMPOTENCY_TTL",
		         (long long)(c->retention_ms / (3600 * 1000)),
		         (long long)(c->idempotency_ttl_ms / 1000));
		return CONFIG_INVALID;
	}
	return CONFIG_OK;
}

static void derived(const char *explicit_path, const char *db, const char *suffix, char *out,
                    size_t outlen)
{
	if (explicit_path[0] != '\0')
		snprintf(out, outlen, "%s", explicit_path);
	else
		snprintf(out, outlen, "%s%s", db, suffix);
}

const char *config_database(const struct config *c)
{
	return c->database_url[0] != '\0' ? c->database_url : c->database_path;
}

const char *config_database_label(const struct config *c)
{
	return c->database_url[0] != '\0' ? "CONSUMA_DATABASE_URL" : c->database_path;
}

void config_doorbell_path(const struct config *c, char *out, size_t outlen)
{
	derived(c->doorbell_path, c->database_path, ".bell", out, outlen);
}

void config_rate_limit_zone(const struct config *c, char *out, size_t outlen)
{
	derived(c->rate_limit_zone, c->database_path, ".ratelimit", out, outlen);
}

void config_describe(void (*line)(const char *name, const char *type_and_range,
                                  const char *default_value, const char *help, void *arg),
                     void *arg)
{
	char range[96];
	size_t i;

	for (i = 0; i < NVARS; i++)
		line(vars[i].name, range_text(&vars[i], range, sizeof(range)), vars[i].def,
		     vars[i].help, arg);
}
