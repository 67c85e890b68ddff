/*
 * fuzz_request: request_parse (lib/request.c), the JSON body of POST /sync
 * and POST /async. The first byte picks the mode; the rest is the body.
 *
 * Invariants: an accepted body yields input_data of 1..10000 code points
 * of valid UTF-8 without NUL (input_bytes its length), iterations within
 * 1..max_iterations, a callback_url of 1..2048 bytes exactly in async mode;
 * a refused one names a field and an HTTP status of 413, 422 or 500. And
 * the plain path gives the answer json-c alone gives (request_test.h): the
 * same code and detail, the same fields.
 */
#include <string.h>

#include "config.h"
#include "fuzz.h"
#include "request.h"
#include "request_test.h"

static struct config cfg;
static int ready;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!ready) {
		char err[256];
		FUZZ_CHECK(config_load(&cfg, err, sizeof err) == CONFIG_OK);
		ready = 1;
	}
	if (size < 1)
		return 0;
	enum request_mode mode = (data[0] & 1) ? REQUEST_ASYNC : REQUEST_SYNC;
	struct job_request r;
	struct request_error e;
	enum request_err rc = request_parse((const char *)data + 1, size - 1, mode, &cfg, &r, &e);
	struct job_request rj;
	struct request_error ej;
	enum request_err rcj =
	    request_parse_json_c((const char *)data + 1, size - 1, mode, &cfg, &rj, &ej);
	FUZZ_CHECK(rc == rcj && e.http_status == ej.http_status);
	FUZZ_CHECK(strcmp(e.field, ej.field) == 0 && strcmp(e.detail, ej.detail) == 0);
	FUZZ_CHECK(r.iterations == rj.iterations && r.input_bytes == rj.input_bytes);
	FUZZ_CHECK((r.input_data == NULL) == (rj.input_data == NULL));
	FUZZ_CHECK(r.input_data == NULL || memcmp(r.input_data, rj.input_data, r.input_bytes) == 0);
	FUZZ_CHECK((r.callback_url == NULL) == (rj.callback_url == NULL));
	FUZZ_CHECK(r.callback_url == NULL || strcmp(r.callback_url, rj.callback_url) == 0);
	request_free(&rj);
	if (rc == REQUEST_OK) {
		size_t chars = 0;
		FUZZ_CHECK(r.input_data != NULL);
		FUZZ_CHECK(strlen(r.input_data) == r.input_bytes);
		FUZZ_CHECK(request_utf8_valid(r.input_data, r.input_bytes, &chars));
		FUZZ_CHECK(chars == r.input_chars);
		FUZZ_CHECK(chars >= 1 && chars <= REQUEST_INPUT_MAX_CHARS);
		FUZZ_CHECK(r.iterations >= 1 && r.iterations <= cfg.max_iterations);
		if (mode == REQUEST_ASYNC) {
			FUZZ_CHECK(r.callback_url != NULL);
			size_t n = strlen(r.callback_url);
			FUZZ_CHECK(n >= 1 && n <= REQUEST_URL_MAX_BYTES);
		} else {
			FUZZ_CHECK(r.callback_url == NULL);
		}
		request_free(&r);
	} else {
		FUZZ_CHECK(e.http_status == 413 || e.http_status == 422 || e.http_status == 500);
		FUZZ_CHECK(memchr(e.detail, '\0', sizeof e.detail) != NULL);
		FUZZ_CHECK(memchr(e.field, '\0', sizeof e.field) != NULL);
	}
	return 0;
}
