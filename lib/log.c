/*
 * log: key=value event lines on stderr (see log.h).
 *
 * Escaping grows the output while copying (never sized first, copied later:
 * the kcgi lesson in STYLE.md): every byte that is not printable ASCII, and
 * the quote and backslash, becomes an escape; so a line can never be split
 * or forged by request data.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "ids.h"
#include "log.h"

#define LINE_MAX_BYTES 4096
#define Q_RING         8
#define Q_INPUT_CUT    256
#define Q_BUF_BYTES    (Q_INPUT_CUT * 4 + 8)

static const char *program = "consuma";
static enum log_level min_level = L_INFO;

static const char *level_names[] = {"debug", "info", "warn", "error"};

void log_init(const char *prog, enum log_level min)
{
	program = prog;
	min_level = min;
}

int log_level_parse(const char *s)
{
	size_t i;

	for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(s, level_names[i]) == 0)
			return (int)i;
	}
	return -1;
}

enum buf_err log_escape(struct buf *out, const char *s, size_t n)
{
	return buf_quote(out, s, n, BUF_QUOTE_ASCII);
}

const char *log_qn(const char *s, size_t n)
{
	static _Thread_local char ring[Q_RING][Q_BUF_BYTES];
	static _Thread_local unsigned next;
	char *slot = ring[next++ % Q_RING];
	bool cut = n > Q_INPUT_CUT;
	struct buf b;

	if (s == NULL)
		return "-";
	buf_init(&b, Q_BUF_BYTES - 1);
	log_escape(&b, s, cut ? Q_INPUT_CUT : n);
	if (cut)
		buf_append(&b, "...", 3);
	if (b.err != BUF_OK) {
		buf_free(&b);
		return "\"<unloggable>\"";
	}
	memcpy(slot, buf_str(&b), b.len + 1);
	buf_free(&b);
	return slot;
}

const char *log_q(const char *s)
{
	return s == NULL ? "-" : log_qn(s, strlen(s));
}

void log_event(enum log_level level, const char *event, const char *fmt, ...)
{
	/* the pid as text, made again only after a fork (no getpid per line) */
	static _Thread_local bool pid_known;
	static _Thread_local unsigned pid_forks;
	static _Thread_local char pid_text[24];
	char line[LINE_MAX_BYTES];
	int body;
	size_t len, head = 0;
	va_list ap;

	if (level < min_level)
		return;
	unsigned forks = ids_forks();
	if (!pid_known || forks != pid_forks) {
		snprintf(pid_text, sizeof pid_text, "%ld", (long)getpid());
		pid_known = true;
		pid_forks = forks;
	}
	/* the head copied piece by piece, not formatted: it is every line's */
	const char *const parts[] = {"level=", level_names[level], " prog=", program, " pid=",
	                             pid_text, " event=",          event,    " "};
	for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
		size_t n = strlen(parts[i]);
		if (n + 2 >= sizeof(line) - head) /* room for a body's byte and the newline */
			return;
		memcpy(line + head, parts[i], n);
		head += n;
	}
	line[head] = '\0';
	va_start(ap, fmt);
	body = vsnprintf(line + head, sizeof(line) - head - 1, fmt, ap);
	va_end(ap);
	len = head;
	if (body > 0)
		len +=
		    (size_t)body < sizeof(line) - head - 1 ? (size_t)body : sizeof(line) - head - 2;
	line[len++] = '\n';
	if (write(STDERR_FILENO, line, len) < 0) {
		/* Nowhere left to report it. */
	}
}
