/*
 * buf: a growable byte buffer with a maximum fixed at creation (curl's
 * dynbuf). Appending past the maximum, or running out of memory, leaves the
 * buffer unchanged and sets a sticky error: later appends are no-ops that
 * return the same error, so a sequence of appends can be checked once.
 * The contents are always NUL-terminated. Not thread safe (one owner).
 */
#ifndef CONSUMA_BUF_H
#define CONSUMA_BUF_H

#include <stddef.h>

enum buf_err {
	BUF_OK = 0,
	BUF_NOMEM,  /* an allocation failed */
	BUF_TOOBIG, /* the append would pass the maximum */
};

struct buf {
	char *data;       /* NULL until the first append */
	size_t len;       /* bytes in use, excluding the NUL */
	size_t cap;       /* bytes allocated */
	size_t max;       /* the most len may ever be */
	enum buf_err err; /* sticky: the first failure */
};

const char *buf_strerror(enum buf_err err);

/* An empty buffer that will never hold more than max bytes. */
void buf_init(struct buf *b, size_t max);
enum buf_err buf_append(struct buf *b, const void *data, size_t len);
enum buf_err buf_puts(struct buf *b, const char *s);
enum buf_err buf_putc(struct buf *b, char c);
enum buf_err buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* How buf_quote escapes: as JSON (RFC 8259: \uXXXX; bytes >= 0x80 pass
 * as they are), or to printable ASCII (\xXX, every byte >= 0x7f
 * escaped too: lib/log.c's lines). Both escape the quote, the backslash
 * and the control bytes, with \n, \r and \t by name. */
enum buf_quoting { BUF_QUOTE_JSON, BUF_QUOTE_ASCII };
/* Appends s (len bytes) in double quotes, escaped as how says. */
enum buf_err buf_quote(struct buf *b, const char *s, size_t len, enum buf_quoting how);
/* Appends s (len bytes) as a quoted JSON string, escaping as RFC 8259 says. */
enum buf_err buf_json_string(struct buf *b, const char *s, size_t len);
/* The contents as a C string; "" before the first append. */
const char *buf_str(const struct buf *b);
/* Empties the buffer and clears the error; keeps the memory. */
void buf_reset(struct buf *b);
/* Frees the memory; the buffer may be used again after buf_init. */
void buf_free(struct buf *b);
/* Hands the contents to the caller (free with cz_free) and empties b.
 * NULL when the buffer has an error. */
char *buf_detach(struct buf *b);

#endif
