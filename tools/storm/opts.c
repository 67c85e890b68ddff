/*
 * opts: command-line parsing for consuma-storm (see opts.h).
 */
#include "opts.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sign.h"

enum {
	O_SERVER_URL = 256,
	O_NUM_REQUESTS,
	O_CONCURRENCY,
	O_THREADS,
	O_MODE,
	O_ITERATIONS,
	O_CALLBACK_PORT,
	O_CALLBACK_HOST,
	O_CALLBACK_WAIT,
	O_TIMEOUT,
	O_RATE,
	O_SECRET,
	O_API_KEY,
	O_JSON,
	O_HTML,
	O_SEED,
	O_MIX,
	O_INTERVAL,
	O_THRESHOLD,
	O_SWEEP,
	O_COMPARE,
	O_CSV,
	O_RAW,
	O_NO_PROGRESS,
	O_DRY_RUN,
	O_HELP,
	O_VERSION,
};

static const struct option longopts[] = {
    {"server-url", required_argument, NULL, O_SERVER_URL},
    {"num-requests", required_argument, NULL, O_NUM_REQUESTS},
    {"concurrency", required_argument, NULL, O_CONCURRENCY},
    {"threads", required_argument, NULL, O_THREADS},
    {"mode", required_argument, NULL, O_MODE},
    {"iterations", required_argument, NULL, O_ITERATIONS},
    {"callback-port", required_argument, NULL, O_CALLBACK_PORT},
    {"callback-host", required_argument, NULL, O_CALLBACK_HOST},
    {"callback-wait", required_argument, NULL, O_CALLBACK_WAIT},
    {"timeout", required_argument, NULL, O_TIMEOUT},
    {"rate", required_argument, NULL, O_RATE},
    {"secret", required_argument, NULL, O_SECRET},
    {"api-key", required_argument, NULL, O_API_KEY},
    {"json", required_argument, NULL, O_JSON},
    {"html", required_argument, NULL, O_HTML},
    {"seed", required_argument, NULL, O_SEED},
    {"mix", required_argument, NULL, O_MIX},
    {"interval", required_argument, NULL, O_INTERVAL},
    {"threshold", required_argument, NULL, O_THRESHOLD},
    {"sweep", required_argument, NULL, O_SWEEP},
    {"compare", required_argument, NULL, O_COMPARE},
    {"csv", required_argument, NULL, O_CSV},
    {"raw", no_argument, NULL, O_RAW},
    {"no-progress", no_argument, NULL, O_NO_PROGRESS},
    {"dry-run", no_argument, NULL, O_DRY_RUN},
    {"help", no_argument, NULL, O_HELP},
    {"version", no_argument, NULL, O_VERSION},
    {NULL, 0, NULL, 0},
};

static const char usage_text[] =
    "usage: consuma-storm [options]\n"
    "\n"
    "Drives consuma's POST /sync and POST /async with a request storm, receives\n"
    "the callbacks itself, and reports what each path did.\n"
    "\n"
    "  --server-url URL      API base URL (default http://127.0.0.1:8000)\n"
    "  --num-requests N      requests per mode (and per rate of a --sweep),\n"
    "                        1..10000000 (default 100)\n"
    "  --concurrency N       requests in flight at most, 1..10000 (default 20)\n"
    "  --threads N           worker threads sharing the connections, 1..64 (default 1)\n"
    "  --mode M              sync, async, both or mixed (default both; sync runs\n"
    "                        first; mixed: both in one storm, --num-requests in all)\n"
    "  --mix F               mixed: the share of async requests, 0..1 exclusive\n"
    "                        (default 0.5)\n"
    "  --iterations N        SHA-256 rounds per request, 1..1000000 (default 10000)\n"
    "  --rate R              open loop: start R requests/s on a fixed schedule and\n"
    "                        count latency from each scheduled start (wrk2's\n"
    "                        coordinated-omission correction); default closed loop\n"
    "  --timeout S           seconds per request, counted from its start (default 120)\n"
    "  --callback-host H     host the server calls back (default 127.0.0.1); the\n"
    "                        receiver binds to it when it is an IP address, else to all\n"
    "  --callback-port P     callback receiver port (default 9000)\n"
    "  --callback-wait S     seconds to wait for callbacks after the last accept\n"
    "                        (default 60)\n"
    "  --secret whsec_...    verify every callback's webhook-signature (one secret)\n"
    "  --api-key KEY         send Authorization: Bearer KEY (CONSUMA_API_KEYS_FILE)\n"
    "  --seed N              seeds the request inputs (default 1)\n"
    "  --interval S          timeline resolution in seconds, 0.05..3600 (default 1)\n"
    "  --threshold EXPR      fail the run (exit 99) unless EXPR holds, e.g.\n"
    "                        async_accept.p99<50ms, sync_response.p95<200ms,\n"
    "                        time_to_callback.p99<2s, sync.failed_rate<0.01,\n"
    "                        async.refused_rate<5%; repeatable (at most 16)\n"
    "  --sweep R1,R2,...     one open-loop run per rate (requests/s, at most 32),\n"
    "                        reported as latency against offered rate\n"
    "  --compare A.json B.json ...\n"
    "                        put 2..8 saved --json runs side by side in --html;\n"
    "                        storms nothing\n"
    "  --json FILE           write the results as JSON\n"
    "  --csv FILE            write the timeline as CSV\n"
    "  --html FILE           write a self-contained HTML report with charts\n"
    "  --raw                 benchmark mode: POST a sync body to --server-url exactly\n"
    "                        as given, count any 2xx as success, check no body\n"
    "  --no-progress         no live progress line (it only shows on a terminal)\n"
    "  --dry-run             check the options, print the settings, send nothing\n"
    "  --help, --version\n"
    "\n"
    "Exit status: 0 nothing was lost or wrong (a refusal with 429 or 503 is an\n"
    "answer, reported but not a failure); 1 a request failed otherwise, a callback\n"
    "was missing, wrong or badly signed, or the run was interrupted; 2 usage;\n"
    "99 nothing was lost or wrong but a --threshold failed.\n";

const char *opts_usage(void)
{
	return usage_text;
}

const char *opts_mode_name(enum opts_mode m)
{
	switch (m) {
	case OPTS_SYNC:
		return "sync";
	case OPTS_ASYNC:
		return "async";
	case OPTS_BOTH:
		return "both";
	case OPTS_MIXED:
		return "mixed";
	}
	return "?";
}

static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	if (!s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	char *end = NULL;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

static int parse_seconds(const char *s, double lo, double hi, double *out)
{
	/* decimal only (an exponent is fine): strtod would also take hex ("0x10") */
	if (!s || !((*s >= '0' && *s <= '9') || *s == '.') ||
	    strspn(s, "0123456789.eE+-") != strlen(s))
		return -1;
	errno = 0;
	char *end = NULL;
	double v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

static enum opts_result bad(char *err, size_t errlen, const char *opt, const char *want,
                            const char *got)
{
	snprintf(err, errlen, "%s: expected %s, got '%s'", opt, want, got ? got : "");
	return OPTS_USAGE;
}

static void defaults(struct opts *o)
{
	memset(o, 0, sizeof(*o));
	o->server_url = "http://127.0.0.1:8000";
	o->num_requests = 100;
	o->concurrency = 20;
	o->threads = 1;
	o->mode = OPTS_BOTH;
	o->iterations = 10000;
	o->callback_port = 9000;
	o->callback_host = "127.0.0.1";
	o->callback_wait_s = 60;
	o->timeout_s = 120;
	o->seed = 1;
	o->mix = 0.5;
	o->interval_s = 1;
	o->progress = true;
}

/* http(s)://, then a host of at least one character before any '/', ':' or
 * the end; curl does the rest of the parsing when it connects. */
static int valid_url(const char *s)
{
	const char *host;

	if (strncmp(s, "http://", 7) == 0)
		host = s + 7;
	else if (strncmp(s, "https://", 8) == 0)
		host = s + 8;
	else
		return 0;
	return *host != '\0' && *host != '/' && *host != ':' && *host != '?' && *host != '#';
}

/* RFC 6750's token68: what may follow "Bearer ". */
static int valid_api_key(const char *s)
{
	size_t n =
	    strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/");

	if (n == 0)
		return 0;
	n += strspn(s + n, "=");
	return n <= OPTS_MAX_API_KEY && s[n] == '\0';
}

static int valid_host(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 253)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '-' || c == ':' || c == '[' || c == ']'))
			return 0;
	}
	return 1;
}

/* "R1,R2,...": each a rate as --rate takes it. */
static int parse_sweep(const char *s, struct opts *o)
{
	o->n_sweep = 0;
	for (const char *p = s;;) {
		size_t l = strcspn(p, ",");
		char one[32];
		if (l == 0 || l >= sizeof(one) || o->n_sweep >= OPTS_MAX_SWEEP)
			return -1;
		memcpy(one, p, l);
		one[l] = '\0';
		if (parse_seconds(one, 0.001, OPTS_MAX_RATE, &o->sweep[o->n_sweep]) != 0)
			return -1;
		o->n_sweep++;
		if (p[l] == '\0')
			return 0;
		p += l + 1;
	}
}

/* What the options mean together, once all are read (their order is free). */
static enum opts_result check_combinations(struct opts *o, bool mix_given, char *err, size_t errlen)
{
	if (o->raw && o->mode == OPTS_BOTH)
		o->mode = OPTS_SYNC;
	if (o->raw && o->mode != OPTS_SYNC) {
		snprintf(err, errlen, "--raw: works with --mode sync only");
		return OPTS_USAGE;
	}
	if (mix_given && o->mode != OPTS_MIXED) {
		snprintf(err, errlen, "--mix: works with --mode mixed only");
		return OPTS_USAGE;
	}
	if (o->n_sweep > 0 && o->num_requests * (uint64_t)o->n_sweep > OPTS_MAX_REQUESTS) {
		/* the receiver keeps a slot per request of the whole run */
		snprintf(err, errlen,
		         "--sweep: %d rates of --num-requests %llu pass the %llu requests of a run",
		         o->n_sweep, (unsigned long long)o->num_requests,
		         (unsigned long long)OPTS_MAX_REQUESTS);
		return OPTS_USAGE;
	}
	if (o->n_sweep > 0 && o->rate > 0) {
		snprintf(err, errlen, "--sweep: gives the rates itself; drop --rate");
		return OPTS_USAGE;
	}
	if (o->n_compare > 0 && !o->html_path) {
		snprintf(err, errlen, "--compare: needs --html FILE for the page");
		return OPTS_USAGE;
	}
	for (int k = 0; k < o->n_thresholds; k++) {
		const struct threshold *t = &o->thresholds[k];
		bool async = threshold_needs_async(t);
		if (!(o->mode & (async ? OPTS_ASYNC : OPTS_SYNC))) {
			snprintf(err, errlen, "--threshold: '%s' needs --mode %s, both or mixed",
			         t->text, async ? "async" : "sync");
			return OPTS_USAGE;
		}
	}
	return OPTS_OK;
}

enum opts_result opts_parse(int argc, char **argv, struct opts *o, char *err, size_t errlen)
{
	bool mix_given = false;
	defaults(o);
	opterr = 0;
	optind = 1;
	for (;;) {
		int prev = optind;
		int c = getopt_long(argc, argv, "+:", longopts, NULL);
		if (c == -1)
			break;
		const char *name = argv[prev];
		uint64_t u = 0;
		switch (c) {
		case O_SERVER_URL:
			if (!valid_url(optarg))
				return bad(err, errlen, "--server-url",
				           "an http:// or https:// URL", optarg);
			o->server_url = optarg;
			break;
		case O_NUM_REQUESTS:
			if (parse_u64(optarg, 1, OPTS_MAX_REQUESTS, &u) != 0)
				return bad(err, errlen, "--num-requests", "an integer 1..10000000",
				           optarg);
			o->num_requests = u;
			break;
		case O_CONCURRENCY:
			if (parse_u64(optarg, 1, OPTS_MAX_CONCURRENCY, &u) != 0)
				return bad(err, errlen, "--concurrency", "an integer 1..10000",
				           optarg);
			o->concurrency = (int)u;
			break;
		case O_THREADS:
			if (parse_u64(optarg, 1, OPTS_MAX_THREADS, &u) != 0)
				return bad(err, errlen, "--threads", "an integer 1..64", optarg);
			o->threads = (int)u;
			break;
		case O_MODE:
			if (strcmp(optarg, "sync") == 0)
				o->mode = OPTS_SYNC;
			else if (strcmp(optarg, "async") == 0)
				o->mode = OPTS_ASYNC;
			else if (strcmp(optarg, "both") == 0)
				o->mode = OPTS_BOTH;
			else if (strcmp(optarg, "mixed") == 0)
				o->mode = OPTS_MIXED;
			else
				return bad(err, errlen, "--mode", "sync, async, both or mixed",
				           optarg);
			break;
		case O_ITERATIONS:
			if (parse_u64(optarg, 1, OPTS_MAX_ITERATIONS, &u) != 0)
				return bad(err, errlen, "--iterations", "an integer 1..1000000",
				           optarg);
			o->iterations = (int64_t)u;
			break;
		case O_CALLBACK_PORT:
			if (parse_u64(optarg, 1, 65535, &u) != 0)
				return bad(err, errlen, "--callback-port", "a port 1..65535",
				           optarg);
			o->callback_port = (int)u;
			break;
		case O_CALLBACK_HOST:
			if (!valid_host(optarg))
				return bad(err, errlen, "--callback-host",
				           "a host name or IP address", optarg);
			o->callback_host = optarg;
			break;
		case O_CALLBACK_WAIT:
			if (parse_seconds(optarg, 0, OPTS_MAX_SECONDS, &o->callback_wait_s) != 0)
				return bad(err, errlen, "--callback-wait", "seconds 0..86400",
				           optarg);
			break;
		case O_TIMEOUT:
			if (parse_seconds(optarg, 0.001, OPTS_MAX_SECONDS, &o->timeout_s) != 0)
				return bad(err, errlen, "--timeout", "seconds 0.001..86400",
				           optarg);
			break;
		case O_RATE:
			if (parse_seconds(optarg, 0.001, OPTS_MAX_RATE, &o->rate) != 0)
				return bad(err, errlen, "--rate",
				           "requests per second 0.001..10000000", optarg);
			break;
		case O_SECRET: {
			enum sign_err se = SIGN_OK;
			/* one secret: the receiver checks one signature per callback */
			struct sign_key *k =
			    strchr(optarg, ' ') ? NULL : sign_key_new(optarg, &se, NULL, 0);
			if (!k)
				return bad(err, errlen, "--secret",
				           "whsec_ followed by base64 of 1..64 bytes", "<hidden>");
			sign_key_free(k);
			o->secret = optarg;
			break;
		}
		case O_API_KEY:
			if (!valid_api_key(optarg))
				return bad(err, errlen, "--api-key",
				           "1..256 characters of A-Z a-z 0-9 - . _ ~ + / (then =)",
				           "<hidden>");
			o->api_key = optarg;
			break;
		case O_JSON:
			if (!*optarg)
				return bad(err, errlen, "--json", "a file name", optarg);
			o->json_path = optarg;
			break;
		case O_HTML:
			if (!*optarg)
				return bad(err, errlen, "--html", "a file name", optarg);
			o->html_path = optarg;
			break;
		case O_SEED:
			if (parse_u64(optarg, 0, UINT64_MAX, &u) != 0)
				return bad(err, errlen, "--seed", "an unsigned 64-bit integer",
				           optarg);
			o->seed = u;
			break;
		case O_MIX:
			if (parse_seconds(optarg, 0, 1, &o->mix) != 0 || o->mix <= 0 || o->mix >= 1)
				return bad(err, errlen, "--mix",
				           "a fraction between 0 and 1 (exclusive)", optarg);
			mix_given = true;
			break;
		case O_INTERVAL:
			if (parse_seconds(optarg, OPTS_MIN_INTERVAL, OPTS_MAX_INTERVAL,
			                  &o->interval_s) != 0)
				return bad(err, errlen, "--interval", "seconds 0.05..3600", optarg);
			break;
		case O_THRESHOLD: {
			char why[160];
			if (o->n_thresholds >= OPTS_MAX_THRESHOLDS) {
				snprintf(err, errlen, "--threshold: at most %d",
				         OPTS_MAX_THRESHOLDS);
				return OPTS_USAGE;
			}
			if (!threshold_parse(optarg, &o->thresholds[o->n_thresholds], why,
			                     sizeof(why))) {
				snprintf(err, errlen, "--threshold: %s, got '%s'", why, optarg);
				return OPTS_USAGE;
			}
			o->n_thresholds++;
			break;
		}
		case O_SWEEP:
			if (parse_sweep(optarg, o) != 0)
				return bad(err, errlen, "--sweep",
				           "1..32 comma-separated rates 0.001..10000000", optarg);
			break;
		case O_COMPARE:
			/* --compare A.json B.json ...: the files up to the next option */
			if (!*optarg)
				return bad(err, errlen, "--compare", "2..8 JSON files", optarg);
			o->n_compare = 1;
			o->compare[0] = optarg;
			while (optind < argc && argv[optind][0] != '-') {
				if (o->n_compare >= OPTS_MAX_COMPARE || !*argv[optind])
					return bad(err, errlen, "--compare", "2..8 JSON files",
					           argv[optind]);
				o->compare[o->n_compare++] = argv[optind++];
			}
			if (o->n_compare < 2)
				return bad(err, errlen, "--compare", "2..8 JSON files", optarg);
			break;
		case O_CSV:
			if (!*optarg)
				return bad(err, errlen, "--csv", "a file name", optarg);
			o->csv_path = optarg;
			break;
		case O_RAW:
			o->raw = true;
			break;
		case O_NO_PROGRESS:
			o->progress = false;
			break;
		case O_DRY_RUN:
			o->dry_run = true;
			break;
		case O_HELP:
			return OPTS_HELP;
		case O_VERSION:
			return OPTS_VERSION;
		case ':':
			snprintf(err, errlen, "%s: needs a value", name);
			return OPTS_USAGE;
		default:
			snprintf(err, errlen, "unknown option '%s'", name);
			return OPTS_USAGE;
		}
	}
	if (optind < argc) {
		snprintf(err, errlen, "unexpected argument '%s'", argv[optind]);
		return OPTS_USAGE;
	}
	return check_combinations(o, mix_given, err, errlen);
}
