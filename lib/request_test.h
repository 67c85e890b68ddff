/*
 * request_test: request_parse without its plain path (lib/request.c), so
 * that tests/unit/test_request.c and tests/fuzz/fuzz_request.c can check
 * that both paths answer every body the same. No part of request.h's
 * interface: only request.c and those tests include this header.
 */
#ifndef CONSUMA_REQUEST_TEST_H
#define CONSUMA_REQUEST_TEST_H

#include "request.h"

/* request_parse with every body taken through gates 2 and 3 (json-c). */
enum request_err request_parse_json_c(const char *body, size_t len, enum request_mode mode,
                                      const struct config *cfg, struct job_request *out,
                                      struct request_error *err);

#endif
