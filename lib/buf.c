/*
 * buf: bounded growable buffer (see buf.h). Capacity doubles, never past
 * max + 1 (the NUL); the first failure sticks.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "alloc.h"
#include "buf.h"

const char *buf_strerror(enum buf_err err)
{
	switch (err) {
	case BUF_OK:
		return "ok";
	case BUF_NOMEM:
		return "out of memory";
	case BUF_TOOBIG:
		return "buffer limit reached";
	}
	return "unknown buffer error";
}

void buf_init(struct buf *b, size_t max)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->max = max;
	b->err = BUF_OK;
}

static enum buf_err reserve(struct buf *b, size_t extra)
{
	size_t need, cap;
	char *p;

	if (b->err != BUF_OK)
		return b->err;
	if (extra > b->max || b->len > b->max - extra) {
		b->err = BUF_TOOBIG;
		return b->err;
	}
	need = b->len + extra + 1;
	if (need <= b->cap)
		return BUF_OK;
	cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	if (cap > b->max + 1)
		cap = b->max + 1;
	p = cz_realloc(b->data, cap);
	if (p == NULL) {
		b->err = BUF_NOMEM;
		return b->err;
	}
	b->data = p;
	b->cap = cap;
	return BUF_OK;
}

enum buf_err buf_append(struct buf *b, const void *data, size_t len)
{
	enum buf_err rc = reserve(b, len);

	if (rc != BUF_OK)
		return rc;
	if (len > 0)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return BUF_OK;
}

enum buf_err buf_puts(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

enum buf_err buf_putc(struct buf *b, char c)
{
	return buf_append(b, &c, 1);
}

enum buf_err buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;
	enum buf_err rc;

	if (b->err != BUF_OK)
		return b->err;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->err = BUF_NOMEM;
		return b->err;
	}
	rc = reserve(b, (size_t)n);
	if (rc != BUF_OK)
		return rc;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return BUF_OK;
}

enum buf_err buf_quote(struct buf *b, const char *s, size_t len, enum buf_quoting how)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char last = how == BUF_QUOTE_JSON ? 0xff : 0x7e; /* the last byte kept as is */
	size_t i, plain = 0; /* s[plain..i) needs no escape: one append */

	buf_putc(b, '"');
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[6] = {'\\', (char)c, 0, 0, 0, 0};
		size_t n = 2;

		if (c >= 0x20 && c <= last && c != 0x7f && c != '"' && c != '\\')
			continue;
		buf_append(b, s + plain, i - plain);
		plain = i + 1;
		if (c == '"' || c == '\\') {
			/* esc is backslash and c already */
		} else if (c == '\n' || c == '\r' || c == '\t') {
			esc[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
		} else if (how == BUF_QUOTE_JSON) {
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			n = 6;
		} else {
			esc[1] = 'x';
			esc[2] = hex[c >> 4];
			esc[3] = hex[c & 15];
			n = 4;
		}
		buf_append(b, esc, n);
	}
	buf_append(b, s + plain, len - plain);
	return buf_putc(b, '"');
}

enum buf_err buf_json_string(struct buf *b, const char *s, size_t len)
{
	return buf_quote(b, s, len, BUF_QUOTE_JSON);
}

const char *buf_str(const struct buf *b)
{
	return b->data != NULL ? b->data : "";
}

void buf_reset(struct buf *b)
{
	b->len = 0;
	b->err = BUF_OK;
	if (b->data != NULL)
		b->data[0] = '\0';
}

void buf_free(struct buf *b)
{
	cz_free(b->data);
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->err = BUF_OK;
}

char *buf_detach(struct buf *b)
{
	char *p;

	if (b->err != BUF_OK)
		return NULL;
	p = b->data != NULL ? b->data : cz_strdup("");
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	return p;
}
