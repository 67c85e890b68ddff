/*
 * fake_fcgx: a libfcgi request held in memory, for the fcgi-app unit tests
 * (test_fcgi_*.c): a CGI environment, an input stream over a fixed body that
 * ends after it, and an output stream into a buffer that stops (closes)
 * when full, so a handler runs exactly as under libfcgi and its whole
 * answer can be read back. Large: allocate it static or on the heap.
 */
#ifndef CONSUMA_TEST_FAKE_FCGX_H
#define CONSUMA_TEST_FAKE_FCGX_H

#include <stdio.h>
#include <string.h>
#include <fcgiapp.h>

#define FAKE_OUT_MAX (1 << 20)
#define FAKE_ENV_MAX 16

struct fake {
	FCGX_Request fr;
	FCGX_Stream in;
	FCGX_Stream out;
	char *envp[FAKE_ENV_MAX];
	char env[FAKE_ENV_MAX - 1][8192]; /* room for a long query string */
	unsigned char inbuf[4096];
	unsigned char outbuf[FAKE_OUT_MAX + 1];
};

static inline void fake_fill_closed(FCGX_Stream *s)
{
	s->isClosed = 1;
}

static inline void fake_empty_closed(FCGX_Stream *s, int doClose)
{
	(void)doClose;
	s->isClosed = 1;
}

/* env: NULL-terminated "NAME=value" strings (at most FAKE_ENV_MAX - 1);
 * body: what the client sent (at most sizeof inbuf). */
static inline void fake_init(struct fake *f, const char *const *env, const char *body,
                             size_t body_len)
{
	size_t i;

	memset(f, 0, sizeof(*f));
	for (i = 0; env != NULL && env[i] != NULL && i < FAKE_ENV_MAX - 1; i++) {
		snprintf(f->env[i], sizeof(f->env[i]), "%s", env[i]);
		f->envp[i] = f->env[i];
	}
	f->envp[i] = NULL;
	assert_true(body_len <= sizeof(f->inbuf));
	if (body_len > 0)
		memcpy(f->inbuf, body, body_len);
	f->in.rdNext = f->inbuf;
	f->in.stop = f->inbuf + body_len;
	f->in.stopUnget = f->inbuf;
	f->in.isReader = 1;
	f->in.isClosed = 0; /* fake_fill_closed ends it: all of it is here */
	f->in.fillBuffProc = fake_fill_closed;
	f->out.wrNext = f->outbuf;
	f->out.stop = f->outbuf + FAKE_OUT_MAX;
	f->out.emptyBuffProc = fake_empty_closed;
	f->fr.in = &f->in;
	f->fr.out = &f->out;
	f->fr.envp = f->envp;
}

/* Everything the handler wrote, head included, NUL-terminated. */
static inline const char *fake_output(struct fake *f)
{
	*f->out.wrNext = '\0';
	return (const char *)f->outbuf;
}

#endif
