/*
 * log: one line per event on stderr, key=value pairs (journald adds time).
 *
 *   level=info prog=consuma-fcgi pid=42 event=request.accepted request_id=... mode=async
 *
 * Request data must never reach a line raw: wrap it in log_q(), which quotes
 * and escapes it (quotes, backslashes, every control and non-ASCII byte).
 * Each line is written with one write(2), so lines from threads and
 * processes never interleave. Thread safe.
 */
#ifndef CONSUMA_LOG_H
#define CONSUMA_LOG_H

#include <stddef.h>
#include "buf.h"

enum log_level { L_DEBUG = 0, L_INFO, L_WARN, L_ERROR };

/* Sets the program name and the lowest level written (default info). */
void log_init(const char *program, enum log_level min);
/* Parses "debug", "info", "warn", "error"; returns -1 for anything else. */
int log_level_parse(const char *s);

/* Writes "level=L prog=P pid=N event=EVENT " followed by fmt. */
void log_event(enum log_level level, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* s quoted and escaped for a log value, cut at 256 input bytes (then "...");
 * the result lives in a thread-local ring of 8 buffers: use it within the
 * log_event call. NULL prints as "-". */
const char *log_q(const char *s);
const char *log_qn(const char *s, size_t n);

/* Appends s (n bytes) to out quoted and escaped as log_q does, without the
 * length cut. Exposed for tests. */
enum buf_err log_escape(struct buf *out, const char *s, size_t n);

#endif
