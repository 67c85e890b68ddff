/*
 * opts: consuma-storm's command line. The names and defaults of the original
 * load generator are kept (--server-url, --num-requests, --concurrency,
 * --mode, --iterations, --callback-port, --timeout); the rest are ours.
 * Every value is parsed strictly (no trailing junk, no overflow, bounds
 * checked); a bad one is a usage error that names the option.
 */
#ifndef CONSUMA_STORM_OPTS_H
#define CONSUMA_STORM_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "threshold.h"

#define OPTS_MAX_REQUESTS    10000000ULL /* bounded memory: about 80 bytes each in async mode */
#define OPTS_MAX_CONCURRENCY 10000
#define OPTS_MAX_THREADS     64
#define OPTS_MAX_ITERATIONS  1000000
#define OPTS_MAX_SECONDS     86400.0
#define OPTS_MAX_RATE        10000000.0
#define OPTS_MAX_THRESHOLDS  16
#define OPTS_MAX_SWEEP       32
#define OPTS_MAX_COMPARE     8
#define OPTS_MIN_INTERVAL    0.05
#define OPTS_MAX_INTERVAL    3600.0
#define OPTS_MAX_API_KEY     256 /* bytes of --api-key */

/* Bits: 1 sends /sync, 2 sends /async, 4 interleaves them in one storm. */
enum opts_mode { OPTS_SYNC = 1, OPTS_ASYNC = 2, OPTS_BOTH = 3, OPTS_MIXED = 7 };

struct opts {
	const char *server_url; /* base URL, no trailing slash needed */
	uint64_t num_requests;  /* per mode; mixed: in all, split by mix */
	int concurrency;        /* transfers in flight at most */
	int threads;            /* worker threads sharing them */
	enum opts_mode mode;
	int64_t iterations;
	int callback_port;
	const char *callback_host;
	double callback_wait_s; /* after the last accept */
	double timeout_s;       /* per request */
	double rate;            /* requests/s; 0 = closed loop */
	double mix;             /* mixed: the share of async requests, 0 < mix < 1 */
	double interval_s;      /* timeline resolution */
	struct threshold thresholds[OPTS_MAX_THRESHOLDS];
	int n_thresholds;
	double sweep[OPTS_MAX_SWEEP]; /* open-loop rates, one run each */
	int n_sweep;
	const char *compare[OPTS_MAX_COMPARE]; /* saved --json files to put side by side */
	int n_compare;
	const char *csv_path;
	const char *secret;  /* whsec_...; NULL = signatures not checked */
	const char *api_key; /* sent as Authorization: Bearer; NULL = none */
	const char *json_path;
	const char *html_path;
	uint64_t seed;
	bool raw;      /* POST to server_url as given, any 2xx is success */
	bool progress; /* live line on stderr (on when it is a tty) */
	bool dry_run;  /* check the options, print the settings, send nothing */
};

enum opts_result {
	OPTS_OK = 0,
	OPTS_USAGE, /* message written to the error buffer */
	OPTS_HELP,
	OPTS_VERSION,
};

/* Fills o from argv. On OPTS_USAGE, err holds a one-line message naming the
 * option. Strings in o point into argv. Not thread safe (getopt). */
enum opts_result opts_parse(int argc, char **argv, struct opts *o, char *err, size_t errlen);
/* The --help text. */
const char *opts_usage(void);
/* "sync", "async", "both" or "mixed". */
const char *opts_mode_name(enum opts_mode m);

#endif
