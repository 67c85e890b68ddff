/*
 * clientaddr: the client address behind trusted proxies (see clientaddr.h).
 *
 * Every address is held as 16 bytes, IPv4 as ::ffff:a.b.c.d, so that an
 * IPv4 address and its IPv4-mapped spelling are one address: they are
 * trusted alike and written alike (inet_ntop of the IPv4). X-Forwarded-For
 * is walked from the right without copying it, entry by entry between
 * commas, at most XFF_MAX_HOPS entries, so a long header costs a bounded
 * walk whatever it holds.
 */
#include "clientaddr.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#define XFF_MAX_HOPS 64

/* Parses an IPv4 or IPv6 address of n bytes into 16 bytes (IPv4 mapped). */
static bool parse_addr(const char *s, size_t n, unsigned char out[16], bool *v4)
{
	char tmp[INET6_ADDRSTRLEN + 1];

	if (n == 0 || n >= sizeof(tmp))
		return false;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	if (inet_pton(AF_INET, tmp, out + 12) == 1) {
		memset(out, 0, 10);
		out[10] = 0xff;
		out[11] = 0xff;
		*v4 = true;
		return true;
	}
	*v4 = false;
	return inet_pton(AF_INET6, tmp, out) == 1;
}

static bool is_v4_mapped(const unsigned char a[16])
{
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	return memcmp(a, mapped, 12) == 0;
}

static bool is_trusted(const struct cidr_list *trusted, const unsigned char a[16])
{
	if (is_v4_mapped(a) && cidr_list_contains(trusted, AF_INET, a + 12))
		return true;
	return cidr_list_contains(trusted, AF_INET6, a);
}

/* Parses one X-Forwarded-For entry: an address, possibly as "[v6]:port"
 * or "v4:port". */
static bool parse_hop(const char *s, size_t n, unsigned char out[16])
{
	const char *colon;
	bool v4;

	if (n > 2 && s[0] == '[') {
		const char *close = memchr(s, ']', n);

		return close != NULL && parse_addr(s + 1, (size_t)(close - s - 1), out, &v4);
	}
	if (parse_addr(s, n, out, &v4))
		return true;
	colon = memchr(s, ':', n);
	if (colon != NULL && memchr(colon + 1, ':', n - (size_t)(colon - s) - 1) == NULL &&
	    parse_addr(s, (size_t)(colon - s), out, &v4))
		return v4;
	return false;
}

static void format_addr(const unsigned char a[16], char *out, size_t outlen)
{
	char tmp[INET6_ADDRSTRLEN];
	size_t n = 0;

	if (is_v4_mapped(a)) {
		/* by hand: glibc's inet_ntop formats an IPv4 address with
		 * sprintf, ~2,000 instructions of every request */
		for (int i = 12; i < 16; i++) {
			unsigned v = a[i];
			if (i > 12)
				tmp[n++] = '.';
			if (v >= 100)
				tmp[n++] = (char)('0' + v / 100);
			if (v >= 10)
				tmp[n++] = (char)('0' + v / 10 % 10);
			tmp[n++] = (char)('0' + v % 10);
		}
	} else if (inet_ntop(AF_INET6, a, tmp, sizeof(tmp)) != NULL) {
		n = strlen(tmp);
	}
	if (n >= outlen)
		n = outlen - 1; /* outlen > 0 (clientaddr_pick) */
	memcpy(out, tmp, n);
	out[n] = '\0';
}

void clientaddr_pick(const struct cidr_list *trusted, const char *remote_addr, const char *xff,
                     char *out, size_t outlen)
{
	unsigned char a[16];
	size_t end;
	int hops;
	bool v4;

	if (outlen == 0)
		return;
	if (remote_addr == NULL || !parse_addr(remote_addr, strlen(remote_addr), a, &v4)) {
		snprintf(out, outlen, "%s", remote_addr != NULL ? remote_addr : "");
		return;
	}
	format_addr(a, out, outlen);
	if (xff == NULL || !is_trusted(trusted, a))
		return;
	end = strlen(xff);
	for (hops = 0; end > 0 && hops < XFF_MAX_HOPS; hops++) {
		size_t start = end, b, e;

		while (start > 0 && xff[start - 1] != ',')
			start--;
		for (b = start; b < end && (xff[b] == ' ' || xff[b] == '\t'); b++)
			;
		for (e = end; e > b && (xff[e - 1] == ' ' || xff[e - 1] == '\t'); e--)
			;
		end = start > 0 ? start - 1 : 0;
		if (b == e)
			continue; /* an empty element ("a,,b", a trailing comma) */
		if (!parse_hop(xff + b, e - b, a))
			return; /* not an address: keep the trusted hop to its right */
		format_addr(a, out, outlen);
		if (!is_trusted(trusted, a))
			return;
	}
}
