/*
 * cidr: IPv4 and IPv6 prefixes in CIDR notation, the one grammar of every
 * list of addresses consuma reads (CONSUMA_CALLBACK_DENY_CIDRS,
 * CONSUMA_CALLBACK_ALLOW_CIDRS, CONSUMA_TRUSTED_PROXIES) and of the SSRF
 * policy's built-in table: config validation, the SSRF policy and the
 * trusted-proxy list all parse with this module, so a value that passes
 * config_load is a value they accept.
 *
 * Grammar (ABNF, RFC 5234):
 *
 *   list    = *sep [ prefix *( 1*sep prefix ) *sep ]
 *   sep     = "," / " "
 *   prefix  = address [ "/" bits ]
 *   address = an IPv4 dotted quad or an IPv6 address, as inet_pton(3)
 *             reads them: four decimal octets without leading zeros, or
 *             RFC 4291 text (IPv4 tail allowed); no brackets, zone id,
 *             port, hex or octal IPv4, whitespace or NUL
 *   bits    = 1*3DIGIT, at most 32 after an IPv4 and 128 after an IPv6
 *             address; no sign, no whitespace
 *
 * No bits means the one address (/32 or /128). Host bits may be set and are
 * cleared ("10.1.2.3/8" is 10.0.0.0/8). Separators are commas and spaces
 * only (a tab is part of an entry, so refused); empty entries ("a,,b", a
 * trailing comma) are skipped; the empty list is valid and holds nothing.
 *
 * Families do not mix: an IPv4 prefix contains IPv4 addresses only and an
 * IPv6 prefix IPv6 addresses only (::ffff:0:0/96 does not contain
 * 10.0.0.1). A caller that wants IPv4-mapped IPv6 judged as IPv4, or the
 * other way round, converts the address first.
 *
 * Everything here is pure or read-only after construction: thread safe.
 */
#ifndef CONSUMA_CIDR_H
#define CONSUMA_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <netinet/in.h>

/* Room for cidr_format's text: an IPv6 address, "/128" and the NUL. */
#define CIDR_TEXT_MAX (INET6_ADDRSTRLEN + 4)

struct cidr {
	int family;             /* AF_INET or AF_INET6 */
	int bits;               /* 0..32 or 0..128 */
	unsigned char addr[16]; /* the network, host bits zero; AF_INET uses 4 bytes */
};

/* Parses the n bytes at s (not NUL-terminated) as one prefix of the
 * grammar above into *out. false when they are not one; *out is then
 * unspecified. */
bool cidr_parse(const char *s, size_t n, struct cidr *out);

/* True when the address a (4 bytes for AF_INET, 16 for AF_INET6, network
 * order) lies in p. An address of the other family never does. */
bool cidr_contains(const struct cidr *p, int family, const unsigned char *a);

/* Writes p as its canonical text, inet_ntop's form of the network and the
 * bits ("10.0.0.0/8", "2001:db8::/32", "::1/128"); cut to fit outlen, and
 * CIDR_TEXT_MAX is always enough. */
void cidr_format(const struct cidr *p, char *out, size_t outlen);

struct cidr_list;

/* Parses a list of the grammar above. NULL on a bad entry (why says
 * "<name>: '<entry>' is not a CIDR") or out of memory. Free with
 * cidr_list_free (NULL is a no-op). */
struct cidr_list *cidr_list_new(const char *text, const char *name, char *why, size_t whylen);
void cidr_list_free(struct cidr_list *l);

/* True when text is a list of the grammar above (what cidr_list_new
 * accepts), without allocating. */
bool cidr_list_valid(const char *text);

/* True when one of l's prefixes contains the address (cidr_contains); a
 * NULL or empty list contains nothing. */
bool cidr_list_contains(const struct cidr_list *l, int family, const unsigned char *a);

#endif
