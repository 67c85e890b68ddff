/*
 * fuzz_storm_opts: consuma-storm's command line (tools/storm/opts.c). The
 * input is split at NUL bytes into at most 32 arguments after argv[0].
 *
 * Invariants: OPTS_OK leaves every value inside its documented bound (the
 * OPTS_MAX_* and OPTS_MIN_* of opts.h, the mode one of the four, the mix
 * strictly between 0 and 1) and a server URL; OPTS_USAGE writes a message.
 */
#include <string.h>

#include "fuzz.h"
#include "opts.h"

#define MAX_ARGS 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size + 1);
	FUZZ_CHECK(buf != NULL);
	memcpy(buf, data, size);
	buf[size] = '\0';
	char *argv[MAX_ARGS + 2];
	int argc = 0;
	char prog[] = "consuma-storm";
	argv[argc++] = prog;
	for (size_t i = 0; i < size && argc <= MAX_ARGS;) {
		argv[argc++] = buf + i;
		i += strlen(buf + i) + 1;
	}
	argv[argc] = NULL;

	struct opts o;
	char err[256];
	err[0] = '\0';
	enum opts_result r = opts_parse(argc, argv, &o, err, sizeof err);
	switch (r) {
	case OPTS_OK:
		FUZZ_CHECK(o.server_url != NULL);
		FUZZ_CHECK(o.num_requests <= OPTS_MAX_REQUESTS);
		FUZZ_CHECK(o.concurrency >= 1 && o.concurrency <= OPTS_MAX_CONCURRENCY);
		FUZZ_CHECK(o.threads >= 1 && o.threads <= OPTS_MAX_THREADS);
		FUZZ_CHECK(o.mode == OPTS_SYNC || o.mode == OPTS_ASYNC || o.mode == OPTS_BOTH ||
		           o.mode == OPTS_MIXED);
		FUZZ_CHECK(o.mix > 0.0 && o.mix < 1.0);
		FUZZ_CHECK(o.interval_s >= OPTS_MIN_INTERVAL && o.interval_s <= OPTS_MAX_INTERVAL);
		FUZZ_CHECK(o.iterations >= 1 && o.iterations <= OPTS_MAX_ITERATIONS);
		FUZZ_CHECK(o.callback_port >= 0 && o.callback_port <= 65535);
		FUZZ_CHECK(o.rate >= 0 && o.rate <= OPTS_MAX_RATE);
		FUZZ_CHECK(o.timeout_s > 0 && o.timeout_s <= OPTS_MAX_SECONDS);
		FUZZ_CHECK(o.callback_wait_s >= 0 && o.callback_wait_s <= OPTS_MAX_SECONDS);
		break;
	case OPTS_USAGE:
		FUZZ_CHECK(err[0] != '\0' && memchr(err, '\0', sizeof err) != NULL);
		break;
	case OPTS_HELP:
	case OPTS_VERSION:
		break;
	}
	free(buf);
	return 0;
}
