/*
 * fuzz.h: what every libFuzzer harness of tests/fuzz shares. A harness is
 * one file fuzz_<name>.c defining LLVMFuzzerTestOneInput; it checks
 * invariants with FUZZ_CHECK (an abort, so libFuzzer keeps the input as a
 * crash), not only the absence of memory errors. Built only with
 * -DCONSUMA_FUZZ=ON and clang (CMakeLists.txt), run by tools/fuzz.sh.
 */
#ifndef CONSUMA_FUZZ_H
#define CONSUMA_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__,       \
			        #cond);                                                            \
			abort();                                                                   \
		}                                                                                  \
	} while (0)

#endif
