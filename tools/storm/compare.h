/*
 * compare: --compare A.json B.json ... --html out.html. Reads two or more
 * runs saved with --json (any server that speaks the API: consuma on
 * SQLite against consuma on PostgreSQL, or another implementation) and
 * renders them on one self-contained page, side by side: what each run was
 * (server, settings, machine), its totals and percentiles, and charts of
 * the percentiles, the latency and throughput over time, the queue depth
 * and, where the runs swept rates, latency against offered rate.
 */
#ifndef CONSUMA_STORM_COMPARE_H
#define CONSUMA_STORM_COMPARE_H

#include <stddef.h>

#include "opts.h"

enum compare_err {
	COMPARE_OK = 0,
	COMPARE_INPUT,  /* a file could not be read or is not a consuma-storm JSON */
	COMPARE_OUTPUT, /* the page could not be rendered or written */
};

/* Renders o->compare[0 .. o->n_compare - 1] into o->html_path. On failure
 * err holds a one-line reason naming the file. */
enum compare_err compare_html(const struct opts *o, char *err, size_t errlen);

#endif
