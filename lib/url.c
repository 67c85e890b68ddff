/*
 * url: the strict parser for callback URLs (see url.h for the rules).
 *
 * Design: two parsers must agree. A strict scan of the raw string takes the
 * scheme, the authority and in it the host and port, with the narrowest
 * grammar we accept (no userinfo, no percent-encoding, no legacy IPv4
 * forms). libcurl's URL API (curl_url) then parses the same string, because
 * curl is what will connect. The URL is refused unless curl's idea of the
 * scheme, host and port equals ours: no parser differential can survive
 * (the "#@" and "?@" tricks, a userinfo curl would find and we would not,
 * curl's own IPv4 normalisation of "127.1" ...).
 */
#include "url.h"
#include "why.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

const char *url_strerror(enum url_err err)
{
	switch (err) {
	case URL_OK:
		return "ok";
	case URL_TOO_LONG:
		return "URL too long";
	case URL_BAD_CHAR:
		return "URL contains whitespace, a backslash, a control or a non-ASCII byte";
	case URL_BAD_SCHEME:
		return "scheme must be http or https";
	case URL_USERINFO:
		return "userinfo is not allowed";
	case URL_BAD_HOST:
		return "bad host";
	case URL_BAD_PORT:
		return "bad port";
	case URL_BAD_IPV4:
		return "IPv4 literal not in plain dotted-decimal form";
	case URL_MALFORMED:
		return "malformed URL";
	case URL_NOMEM:
		return "out of memory";
	}
	return "unknown error";
}

static enum url_err fail(enum url_err err, char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The reason into why (why.h), and err back. */
static enum url_err fail(enum url_err err, char *why, size_t whylen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	why_vset(why, whylen, fmt, ap);
	va_end(ap);
	return err;
}

static char lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_hex(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool is_alnum(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* A label that an IPv4 parser (WHATWG, inet_aton, curl) would read as a
 * number: all decimal digits, or "0x" followed by hex digits. */
static bool label_is_numeric(const char *s, size_t n)
{
	size_t i;

	if (n == 0)
		return false;
	if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		for (i = 2; i < n; i++)
			if (!is_hex(s[i]))
				return false;
		return true;
	}
	for (i = 0; i < n; i++)
		if (!is_digit(s[i]))
			return false;
	return true;
}

/* True when host (n bytes) is exactly four decimal labels 0..255 without
 * leading zeros. */
static bool is_canonical_ipv4(const char *s, size_t n)
{
	size_t i = 0;
	int labels = 0;

	while (labels < 4) {
		size_t start = i;
		int v = 0;

		while (i < n && is_digit(s[i]) && i - start < 3) {
			v = v * 10 + (s[i] - '0');
			i++;
		}
		if (i == start || v > 255 || (i - start > 1 && s[start] == '0'))
			return false;
		labels++;
		if (labels < 4) {
			if (i >= n || s[i] != '.')
				return false;
			i++;
		}
	}
	return i == n;
}

/* Checks a registered-name or IPv4 host (not bracketed): letters, digits,
 * '-', '_' and '.', labels of 1..63 bytes, and the numeric-last-label rule. */
static enum url_err check_name(const char *h, size_t n, char *why, size_t whylen)
{
	size_t i, start = 0, last_start = 0, last_len = 0, body = n;

	if (n == 0)
		return fail(URL_BAD_HOST, why, whylen, "callback_url: host is empty");
	if (n > 253)
		return fail(URL_BAD_HOST, why, whylen,
		            "callback_url: host is longer than 253 bytes");
	for (i = 0; i < n; i++) {
		char c = h[i];
		if (c == '%')
			return fail(URL_BAD_HOST, why, whylen,
			            "callback_url: percent-encoded host is not allowed");
		if (!is_alnum(c) && c != '-' && c != '_' && c != '.')
			return fail(URL_BAD_HOST, why, whylen,
			            "callback_url: host contains '%c' (byte 0x%02x)", c,
			            (unsigned char)c);
	}
	/* A trailing dot is a fully-qualified name; judge the labels before it. */
	if (h[n - 1] == '.')
		body = n - 1;
	for (i = 0; i <= body; i++) {
		if (i == body || h[i] == '.') {
			size_t len = i - start;
			if (len == 0)
				return fail(URL_BAD_HOST, why, whylen,
				            "callback_url: host has an empty label");
			if (len > 63)
				return fail(URL_BAD_HOST, why, whylen,
				            "callback_url: host has a label longer than 63 bytes");
			last_start = start;
			last_len = len;
			start = i + 1;
		}
	}
	if (label_is_numeric(h + last_start, last_len) && !is_canonical_ipv4(h, n))
		return fail(
		    URL_BAD_IPV4, why, whylen,
		    "callback_url: IPv4 address must be plain dotted decimal "
		    "(a.b.c.d, no leading zeros, no octal, hex, short or trailing-dot form)");
	return URL_OK;
}

/* The strict scan: fills out (host still mixed case) from the raw string. */
static enum url_err scan(const char *url, struct url_parts *out, char *why, size_t whylen)
{
	const char *p, *auth, *end, *host, *hend, *port = NULL;
	size_t hlen;
	enum url_err rc;

	if (strncasecmp(url, "https://", 8) == 0) {
		out->https = true;
		auth = url + 8;
	} else if (strncasecmp(url, "http://", 7) == 0) {
		out->https = false;
		auth = url + 7;
	} else {
		return fail(URL_BAD_SCHEME, why, whylen,
		            "callback_url: scheme must be http:// or https://");
	}
	end = auth + strcspn(auth, "/?#");
	for (p = auth; p < end; p++)
		if (*p == '@')
			return fail(URL_USERINFO, why, whylen,
			            "callback_url: userinfo is not allowed");
	if (end == auth)
		return fail(URL_BAD_HOST, why, whylen, "callback_url: host is empty");

	if (*auth == '[') {
		char tmp[INET6_ADDRSTRLEN + 1];
		struct in6_addr a6;

		host = auth + 1;
		hend = memchr(host, ']', (size_t)(end - host));
		if (hend == NULL)
			return fail(URL_BAD_HOST, why, whylen,
			            "callback_url: IPv6 literal without ']'");
		hlen = (size_t)(hend - host);
		if (memchr(host, '%', hlen) != NULL)
			return fail(URL_BAD_HOST, why, whylen,
			            "callback_url: IPv6 zone ids are not allowed");
		if (hlen == 0 || hlen >= sizeof(tmp))
			return fail(URL_BAD_HOST, why, whylen, "callback_url: bad IPv6 literal");
		memcpy(tmp, host, hlen);
		tmp[hlen] = '\0';
		if (inet_pton(AF_INET6, tmp, &a6) != 1)
			return fail(URL_BAD_HOST, why, whylen, "callback_url: bad IPv6 literal");
		out->host_is_ip = true;
		p = hend + 1;
		if (p < end) {
			if (*p != ':')
				return fail(URL_BAD_HOST, why, whylen,
				            "callback_url: junk after the IPv6 literal");
			port = p + 1;
		}
	} else {
		host = auth;
		hend = memchr(auth, ':', (size_t)(end - auth));
		if (hend == NULL) {
			hend = end;
		} else {
			port = hend + 1;
		}
		hlen = (size_t)(hend - host);
		rc = check_name(host, hlen, why, whylen);
		if (rc != URL_OK)
			return rc;
		out->host_is_ip = is_canonical_ipv4(host, hlen);
	}
	if (hlen >= sizeof(out->host))
		return fail(URL_BAD_HOST, why, whylen, "callback_url: host too long");
	for (size_t i = 0; i < hlen; i++)
		out->host[i] = lower(host[i]);
	out->host[hlen] = '\0';

	if (port == NULL) {
		out->port = out->https ? 443 : 80;
		return URL_OK;
	}
	{
		size_t n = (size_t)(end - port);
		long v = 0;

		if (n == 0)
			return fail(URL_BAD_PORT, why, whylen,
			            "callback_url: port is empty (omit the ':' for the default)");
		if (port[0] == '0')
			return fail(URL_BAD_PORT, why, whylen,
			            n == 1 ? "callback_url: port 0 is outside 1..65535"
			                   : "callback_url: port has a leading zero");
		if (n > 5)
			return fail(URL_BAD_PORT, why, whylen,
			            "callback_url: port is outside 1..65535");
		for (size_t i = 0; i < n; i++) {
			if (!is_digit(port[i]))
				return fail(URL_BAD_PORT, why, whylen,
				            "callback_url: port must be a number 1..65535");
			v = v * 10 + (port[i] - '0');
		}
		if (v < 1 || v > 65535)
			return fail(URL_BAD_PORT, why, whylen,
			            "callback_url: port %ld is outside 1..65535", v);
		out->port = (int)v;
	}
	return URL_OK;
}

/* Two spellings of one host are the same when they are byte-equal ignoring
 * case, or both IPv6 literals of the same address (curl rewrites those). */
static bool same_host(const struct url_parts *mine, const char *curl_host)
{
	size_t n = strlen(curl_host);

	if (mine->host_is_ip && n >= 2 && curl_host[0] == '[' && curl_host[n - 1] == ']') {
		char tmp[INET6_ADDRSTRLEN + 1];
		struct in6_addr a, b;

		if (n - 2 >= sizeof(tmp))
			return false;
		memcpy(tmp, curl_host + 1, n - 2);
		tmp[n - 2] = '\0';
		if (inet_pton(AF_INET6, tmp, &a) != 1 || inet_pton(AF_INET6, mine->host, &b) != 1)
			return false;
		return memcmp(&a, &b, sizeof(a)) == 0;
	}
	return strcasecmp(mine->host, curl_host) == 0;
}

/* What curl makes of url must be what scan() made of it. */
static enum url_err cross_check(const char *url, const struct url_parts *mine, char *why,
                                size_t whylen)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL, *user = NULL, *pass = NULL;
	CURLUcode uc;
	enum url_err rc = URL_OK;

	if (u == NULL)
		return fail(URL_NOMEM, why, whylen, "callback_url: out of memory");
	/* CURLU_DISALLOW_USER: curl refuses userinfo itself too (belt and braces) */
	uc = curl_url_set(u, CURLUPART_URL, url, CURLU_DISALLOW_USER);
	if (uc == CURLUE_OUT_OF_MEMORY) {
		rc = fail(URL_NOMEM, why, whylen, "callback_url: out of memory");
		goto out;
	}
	if (uc != CURLUE_OK) {
		rc = fail(URL_MALFORMED, why, whylen, "callback_url: malformed URL (%s)",
		          curl_url_strerror(uc));
		goto out;
	}
	if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
	    curl_url_get(u, CURLUPART_PASSWORD, &pass, 0) == CURLUE_OK) {
		rc = fail(URL_USERINFO, why, whylen, "callback_url: userinfo is not allowed");
		goto out;
	}
	if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    strcmp(scheme, mine->https ? "https" : "http") != 0) {
		rc = fail(URL_BAD_SCHEME, why, whylen,
		          "callback_url: scheme must be http:// or https://");
		goto out;
	}
	if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !same_host(mine, host)) {
		rc = fail(URL_MALFORMED, why, whylen,
		          "callback_url: host is ambiguous (parsers disagree)");
		goto out;
	}
	if (curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
		rc = fail(URL_BAD_PORT, why, whylen, "callback_url: bad port");
		goto out;
	}
	{
		char expect[8];
		snprintf(expect, sizeof(expect), "%d", mine->port);
		if (strcmp(expect, port) != 0)
			rc = fail(URL_BAD_PORT, why, whylen,
			          "callback_url: port is ambiguous (parsers disagree)");
	}
out:
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_free(user);
	curl_free(pass);
	curl_url_cleanup(u);
	return rc;
}

enum url_err url_parse(const char *url, struct url_parts *out, char *why, size_t whylen)
{
	struct url_parts tmp;
	size_t i, n;
	enum url_err rc;

	if (why != NULL && whylen > 0)
		why[0] = '\0';
	if (url == NULL)
		return fail(URL_MALFORMED, why, whylen, "callback_url: missing");
	n = strnlen(url, URL_MAX_BYTES + 1);
	if (n > URL_MAX_BYTES)
		return fail(URL_TOO_LONG, why, whylen, "callback_url: longer than %d bytes",
		            URL_MAX_BYTES);
	if (n == 0)
		return fail(URL_MALFORMED, why, whylen, "callback_url: empty");
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)url[i];
		if (c <= 0x20 || c >= 0x7f || c == '\\')
			return fail(URL_BAD_CHAR, why, whylen,
			            "callback_url: byte 0x%02x at offset %zu is not allowed "
			            "(whitespace, backslash, control or non-ASCII)",
			            c, i);
	}
	memset(&tmp, 0, sizeof(tmp));
	rc = scan(url, &tmp, why, whylen);
	if (rc != URL_OK)
		return rc;
	rc = cross_check(url, &tmp, why, whylen);
	if (rc != URL_OK)
		return rc;
	if (out != NULL)
		*out = tmp;
	return URL_OK;
}
