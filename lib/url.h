/*
 * url: the one parser for callback URLs, built on libcurl's URL API
 * (curl_url), the same parser that later connects, so what is checked is
 * what is dialled. Syntax rules only; the address policy is ssrf.h.
 *
 * Refused: schemes other than http/https; userinfo; empty, malformed,
 * percent-encoded or non-ASCII hosts; ports outside 1..65535; whitespace,
 * backslashes and control characters anywhere; more than 2048 bytes; IPv4
 * literals in any form but plain dotted decimal without leading zeros
 * (octal, hex, short and trailing-dot forms are refused whatever they mean).
 * Thread safe.
 */
#ifndef CONSUMA_URL_H
#define CONSUMA_URL_H

#include <stdbool.h>
#include <stddef.h>

#define URL_MAX_BYTES 2048
#define URL_HOST_MAX  256

enum url_err {
	URL_OK = 0,
	URL_TOO_LONG,
	URL_BAD_CHAR, /* whitespace, backslash, control or non-ASCII byte */
	URL_BAD_SCHEME,
	URL_USERINFO,
	URL_BAD_HOST,
	URL_BAD_PORT,
	URL_BAD_IPV4,  /* a non-canonical IPv4 literal */
	URL_MALFORMED, /* curl_url refused it */
	URL_NOMEM,
};

struct url_parts {
	bool https;
	char host[URL_HOST_MAX]; /* lowercased; IPv6 without brackets and zone */
	bool host_is_ip;         /* an IPv4 or IPv6 literal */
	int port;                /* explicit, or 80/443 */
};

const char *url_strerror(enum url_err err);

/* Parses and checks url. On URL_OK fills *out. On error, when why is not
 * NULL, writes a sentence naming what was wrong. */
enum url_err url_parse(const char *url, struct url_parts *out, char *why, size_t whylen);

#endif
