/*
 * http: the exchange, response helpers and bounded body reading (see http.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "alloc.h"
#include "hex.h"
#include "http.h"
#include "log.h"

/* The longest decimal CONTENT_LENGTH we parse; anything longer is over any
 * cap we can have and is refused as too large. */
#define LENGTH_DIGITS_MAX 18

const char *http_body_strerror(enum http_body_err err)
{
	switch (err) {
	case HTTP_BODY_OK:
		return "ok";
	case HTTP_BODY_TOO_LARGE:
		return "body too large";
	case HTTP_BODY_BAD_LENGTH:
		return "invalid Content-Length";
	case HTTP_BODY_TRUNCATED:
		return "body shorter than Content-Length";
	case HTTP_BODY_NOMEM:
		return "out of memory";
	}
	return "unknown error";
}

const char *http_reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 202:
		return "Accepted";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 411:
		return "Length Required";
	case 413:
		return "Content Too Large";
	case 415:
		return "Unsupported Media Type";
	case 422:
		return "Unprocessable Content";
	case 429:
		return "Too Many Requests";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	default:
		return "Unknown";
	}
}

long http_percent_decode(const char *in, size_t n, char *out, size_t outlen, bool plus_is_space)
{
	size_t i = 0;
	size_t o = 0;

	if (outlen == 0)
		return -1;
	while (i < n) {
		char c = in[i];

		if (c == '%') {
			int hi;
			int lo;

			if (n - i < 3)
				return -1;
			hi = hex_digit(in[i + 1]);
			lo = hex_digit(in[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			c = (char)(hi * 16 + lo);
			i += 3;
		} else {
			if (c == '+' && plus_is_space)
				c = ' ';
			i++;
		}
		if (c == '\0' || o + 1 >= outlen)
			return -1;
		out[o++] = c;
	}
	out[o] = '\0';
	return (long)o;
}

bool http_exchange_init(struct http_exchange *x, struct app *app, FCGX_Request *fr)
{
	const char *uri;
	const char *q;
	size_t n;
	char joined[HTTP_PATH_MAX];

	memset(x, 0, sizeof(*x));
	x->app = app;
	x->fr = fr;
	x->route = "-";
	x->start_ns = ids_mono_ns();
	buf_init(&x->headers, HTTP_HEADERS_MAX);
	x->method = http_param(x, "REQUEST_METHOD");
	if (x->method == NULL)
		x->method = "";
	x->query = http_param(x, "QUERY_STRING");
	if (x->query == NULL)
		x->query = "";

	/* REQUEST_URI is the raw request target in lighttpd and nginx alike;
	 * SCRIPT_NAME + PATH_INFO is the fallback for servers that lack it. */
	uri = http_param(x, "REQUEST_URI");
	if (uri != NULL && uri[0] != '\0') {
		q = strchr(uri, '?');
		n = q != NULL ? (size_t)(q - uri) : strlen(uri);
	} else {
		const char *sn = http_param(x, "SCRIPT_NAME");
		const char *pi = http_param(x, "PATH_INFO");
		int w = snprintf(joined, sizeof(joined), "%s%s", sn != NULL ? sn : "",
		                 pi != NULL ? pi : "");

		if (w < 0 || (size_t)w >= sizeof(joined))
			return false;
		/* these are already decoded by the server: copy as they are */
		memcpy(x->path, joined, (size_t)w + 1);
		return true;
	}
	return http_percent_decode(uri, n, x->path, sizeof(x->path), false) >= 0;
}

void http_exchange_done(struct http_exchange *x)
{
	buf_free(&x->headers);
}

const char *http_param(const struct http_exchange *x, const char *name)
{
	return FCGX_GetParam(name, x->fr->envp);
}

void http_header(struct http_exchange *x, const char *name, const char *fmt, ...)
{
	char line[1024 + 64];
	size_t n = strlen(name);
	va_list ap;
	int v;

	if (n + 2 >= sizeof line - 2)
		return;
	memcpy(line, name, n);
	memcpy(line + n, ": ", 2);
	n += 2;
	va_start(ap, fmt);
	v = vsnprintf(line + n, sizeof line - n - 2, fmt, ap);
	va_end(ap);
	if (v < 0)
		return;
	n += (size_t)v < sizeof line - n - 2 ? (size_t)v : sizeof line - n - 3;
	memcpy(line + n, "\r\n", 2);
	/* one append: a line that does not fit leaves none of it behind */
	buf_append(&x->headers, line, n + 2);
}

/* v in decimal, written backwards from the end of out: returns the first
 * digit. */
static const char *decimal(uint64_t v, char out[static 21])
{
	char *p = out + 20;

	*p = '\0';
	do
		*--p = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	return p;
}

static bool send_typed(struct http_exchange *x, int status, const char *content_type,
                       const char *body, size_t len)
{
	char status_s[21], len_s[21];

	if (x->status != 0)
		return true;
	x->status = status;
	/* put piece by piece into libfcgi's buffer, not formatted: the head of
	 * every response went through vsnprintf and a heap buffer, ~6,000
	 * instructions of a 202's (tools/bench.sh fcgi); and libfcgi's own
	 * FCGX_FPrintF knows no %zu */
	const char *const head[] = {"Status: ",
	                            decimal((uint64_t)status, status_s),
	                            " ",
	                            http_reason(status),
	                            "\r\nContent-Type: ",
	                            content_type,
	                            "\r\nContent-Length: ",
	                            decimal(len, len_s),
	                            "\r\nCache-Control: no-store\r\n",
	                            buf_str(&x->headers),
	                            "\r\n"};
	for (size_t i = 0; i < sizeof head / sizeof head[0]; i++) {
		if (FCGX_PutStr(head[i], (int)strlen(head[i]), x->fr->out) < 0)
			goto failed;
	}
	if (len > 0 && FCGX_PutStr(body, (int)len, x->fr->out) < 0)
		goto failed;
	return true;
failed:
	x->write_failed = true;
	return false;
}

static bool send_raw(struct http_exchange *x, int status, const char *body, size_t len)
{
	return send_typed(x, status, "application/json", body, len);
}

bool http_send_text(struct http_exchange *x, int status, const char *content_type, const char *body,
                    size_t len)
{
	return send_typed(x, status, content_type, body, len);
}

int64_t http_retry_after(struct http_exchange *x, int64_t s)
{
	if (s < HTTP_RETRY_AFTER_MIN_S)
		s = HTTP_RETRY_AFTER_MIN_S;
	if (s > HTTP_RETRY_AFTER_MAX_S)
		s = HTTP_RETRY_AFTER_MAX_S;
	http_header(x, "Retry-After", "%lld", (long long)s);
	return s;
}

bool http_json_add(json_object *o, const char *key, bool present, json_object *v)
{
	if (!present) {
		json_object_put(v);
		v = NULL;
	} else if (v == NULL) {
		return false;
	}
	if (json_object_object_add(o, key, v) != 0) {
		json_object_put(v);
		return false;
	}
	return true;
}

bool http_send_json(struct http_exchange *x, int status, json_object *body)
{
	size_t len = 0;
	const char *s = json_object_to_json_string_length(
	    body, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);

	if (s == NULL) {
		static const char oom[] = "{\"detail\":\"internal error\"}";

		return send_raw(x, 500, oom, sizeof(oom) - 1);
	}
	return send_raw(x, status, s, len);
}

bool http_finish(struct http_exchange *x)
{
	/* Closing stderr, then stdout, sends the stream ends and END_REQUEST
	 * (libfcgi writes it when the last writer closes); FCGX_Finish_r later
	 * finds both closed and only frees. */
	int err = FCGX_FClose(x->fr->err);

	if ((FCGX_FClose(x->fr->out) | err) != 0)
		x->write_failed = true;
	return !x->write_failed;
}

void http_error(struct http_exchange *x, int status, const char *fmt, ...)
{
	char detail[1024];
	struct buf b;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	buf_init(&b, sizeof(detail) * 6 + 32);
	buf_puts(&b, "{\"detail\":");
	buf_json_string(&b, detail, strlen(detail));
	buf_putc(&b, '}');
	if (b.err != BUF_OK) {
		static const char oom[] = "{\"detail\":\"internal error\"}";

		send_raw(x, 500, oom, sizeof(oom) - 1);
	} else {
		send_raw(x, status, buf_str(&b), b.len);
	}
	buf_free(&b);
}

void http_internal_error(struct http_exchange *x, const char *what, const char *cause)
{
	log_event(L_ERROR, "request.error", "route=%s request_id=%s what=%s cause=%s", x->route,
	          x->request_id[0] != '\0' ? x->request_id : "-", what, log_q(cause));
	http_error(x, 500, "internal error (request_id %s)",
	           x->request_id[0] != '\0' ? x->request_id : "-");
}

void http_store_failed(struct http_exchange *x, enum store_err err, const char *what)
{
	http_store_failed_msg(x, err, what, store_errmsg(x->store));
}

void http_store_failed_msg(struct http_exchange *x, enum store_err err, const char *what,
                           const char *msg)
{
	if (!store_err_transient(err)) {
		http_internal_error(x, what, msg);
		return;
	}
	if (err != STORE_BUSY) /* an operator has to act: say so in the log */
		log_event(L_ERROR, "store.unavailable",
		          "route=%s request_id=%s what=%s error=%s cause=%s", x->route,
		          x->request_id[0] != '\0' ? x->request_id : "-", what, store_strerror(err),
		          log_q(msg));
	/* a lock wait passes at once, space and a server coming back take longer */
	http_retry_after(x, err == STORE_BUSY ? HTTP_RETRY_AFTER_BUSY_S
	                                      : HTTP_RETRY_AFTER_UNAVAILABLE_S);
	http_error(x, 503, "%s; retry later", store_strerror(err));
}

/* Parses CONTENT_LENGTH strictly: decimal digits only, no sign, no spaces.
 * Absent or empty means 0 (no body). */
static enum http_body_err content_length(const char *s, size_t cap, size_t *out)
{
	size_t n = 0;
	size_t digits = 0;

	*out = 0;
	if (s == NULL || s[0] == '\0')
		return HTTP_BODY_OK;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return HTTP_BODY_BAD_LENGTH;
		if (++digits > LENGTH_DIGITS_MAX)
			return HTTP_BODY_TOO_LARGE;
		n = n * 10 + (size_t)(*s - '0');
	}
	if (n > cap)
		return HTTP_BODY_TOO_LARGE;
	*out = n;
	return HTTP_BODY_OK;
}

enum http_body_err http_read_body(struct http_exchange *x, size_t cap, char **body, size_t *len)
{
	enum http_body_err rc;
	size_t want = 0;
	size_t got = 0;
	char *b = NULL;

	*body = NULL;
	*len = 0;
	rc = content_length(http_param(x, "CONTENT_LENGTH"), cap, &want);
	if (rc != HTTP_BODY_OK)
		goto out;
	b = cz_malloc(want + 1);
	if (b == NULL) {
		rc = HTTP_BODY_NOMEM;
		goto out;
	}
	while (got < want) {
		size_t chunk = want - got;
		int r;

		if (chunk > (1u << 20))
			chunk = 1u << 20;
		r = FCGX_GetStr(b + got, (int)chunk, x->fr->in);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	if (got < want) {
		rc = HTTP_BODY_TRUNCATED;
		goto out;
	}
	/* The end of FCGI_STDIN (its empty record), which the server sends
	 * right after the last byte: once it is read nothing is left unread,
	 * and serve_one closes without libfcgi's linger. A byte past
	 * CONTENT_LENGTH instead (no server sends one) leaves the linger on. */
	(void)FCGX_GetChar(x->fr->in);
	b[got] = '\0';
	*body = b;
	*len = got;
	b = NULL;
out:
	cz_free(b);
	return rc;
}

void http_fail_body(struct http_exchange *x, enum http_body_err err, size_t cap)
{
	switch (err) {
	case HTTP_BODY_OK:
		return;
	case HTTP_BODY_TOO_LARGE:
		http_error(x, 413, "body: larger than %zu bytes", cap);
		return;
	case HTTP_BODY_BAD_LENGTH:
		http_error(x, 400, "Content-Length: not a decimal number");
		return;
	case HTTP_BODY_TRUNCATED:
		http_error(x, 400, "body: shorter than Content-Length");
		return;
	case HTTP_BODY_NOMEM:
		http_internal_error(x, "read_body", "out of memory");
		return;
	}
}

static bool ows(char c)
{
	return c == ' ' || c == '\t';
}

/* Whether s[0..n) is word, ASCII case-insensitively. */
static bool word_is(const char *s, size_t n, const char *word)
{
	size_t i;

	for (i = 0; i < n && word[i] != '\0'; i++) {
		char c = s[i];

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c != word[i])
			return false;
	}
	return i == n && word[i] == '\0';
}

bool http_content_type_json(const char *ct)
{
	static const char type[] = "application/json";
	const char *p = ct;

	if (ct == NULL)
		return false;
	while (ows(*p))
		p++;
	if (strlen(p) < sizeof(type) - 1 || !word_is(p, sizeof(type) - 1, type))
		return false;
	p += sizeof(type) - 1;
	/* parameters (RFC 9110 section 8.3.1): ; name=value, name=value ... */
	for (;;) {
		const char *name;
		const char *eq;
		const char *v;
		size_t vn;

		while (ows(*p))
			p++;
		if (*p == '\0')
			return true;
		if (*p != ';')
			return false; /* application/jsonx, application/json+foo */
		p++;
		while (ows(*p))
			p++;
		name = p;
		p += strcspn(p, "=;");
		if (*p != '=') {
			if (p == name)
				continue; /* an empty parameter: "application/json;" */
			return false;
		}
		eq = p;
		v = ++p;
		if (*v == '"') {
			const char *close = strchr(v + 1, '"');

			if (close == NULL)
				return false;
			vn = (size_t)(close - v - 1);
			v++;
			p = close + 1;
		} else {
			vn = strcspn(v, "; \t");
			p = v + vn;
		}
		/* we read UTF-8 only (RFC 8259 section 8.1): another charset
		 * would be misread, so it is refused rather than guessed at */
		if (word_is(name, (size_t)(eq - name), "charset") && !word_is(v, vn, "utf-8"))
			return false;
	}
}

bool http_read_job(struct http_exchange *x, enum request_mode mode, struct job_request *job,
                   char **body, size_t *len)
{
	const struct config *cfg = &x->app->cfg;
	size_t cap = (size_t)cfg->max_body_bytes;
	struct request_error perr = {0};
	enum http_body_err berr;
	enum request_err rerr;

	/* before a byte is read: a browser's cross-origin "simple request"
	 * (text/plain, a form) must never become a job */
	*body = NULL;
	*len = 0;
	if (!http_content_type_json(http_param(x, "CONTENT_TYPE"))) {
		http_error(x, 415,
		           "Content-Type: must be application/json (charset=utf-8 allowed)");
		return false;
	}
	berr = http_read_body(x, cap, body, len);
	if (berr != HTTP_BODY_OK) {
		http_fail_body(x, berr, cap);
		return false;
	}
	rerr = request_parse(*body, *len, mode, cfg, job, &perr);
	if (rerr == REQUEST_OK)
		return true;
	if (rerr == REQUEST_NOMEM)
		http_internal_error(x, "request_parse", "out of memory");
	else
		http_error(x, perr.http_status != 0 ? perr.http_status : 422, "%s", perr.detail);
	cz_free(*body);
	*body = NULL;
	return false;
}
