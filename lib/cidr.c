/*
 * cidr: the one CIDR grammar (see cidr.h for it).
 *
 * A prefix is kept as its network with the host bits cleared, so that
 * matching is a byte compare of bits / 8 bytes and one masked byte, and the
 * canonical text is inet_ntop of the stored network. A list is one array
 * sized by a first pass over the text; both passes walk the entries with
 * next_entry, so counting and parsing cannot disagree about where an entry
 * ends.
 */
#include "cidr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "alloc.h"

#define BITS_DIGITS_MAX 3 /* "128" */

struct cidr_list {
	size_t n;
	struct cidr p[];
};

bool cidr_parse(const char *s, size_t n, struct cidr *out)
{
	char addr[INET6_ADDRSTRLEN];
	const char *slash = memchr(s, '/', n);
	size_t alen = slash != NULL ? (size_t)(slash - s) : n;
	int maxbits, bits;

	if (alen == 0 || alen >= sizeof(addr) || memchr(s, '\0', alen) != NULL)
		return false;
	memcpy(addr, s, alen);
	addr[alen] = '\0';
	memset(out, 0, sizeof(*out));
	if (inet_pton(AF_INET, addr, out->addr) == 1) {
		out->family = AF_INET;
		maxbits = 32;
	} else if (inet_pton(AF_INET6, addr, out->addr) == 1) {
		out->family = AF_INET6;
		maxbits = 128;
	} else {
		return false;
	}
	bits = maxbits;
	if (slash != NULL) {
		size_t i, nlen = n - alen - 1;

		if (nlen == 0 || nlen > BITS_DIGITS_MAX)
			return false;
		bits = 0;
		for (i = 0; i < nlen; i++) {
			char c = slash[1 + i];

			if (c < '0' || c > '9')
				return false;
			bits = bits * 10 + (c - '0');
		}
		if (bits > maxbits)
			return false;
	}
	out->bits = bits;
	for (int i = 0; i < 16; i++) {
		int keep = bits - i * 8;

		if (keep <= 0)
			out->addr[i] = 0;
		else if (keep < 8)
			out->addr[i] &= (unsigned char)(0xff << (8 - keep));
	}
	return true;
}

bool cidr_contains(const struct cidr *p, int family, const unsigned char *a)
{
	int full = p->bits / 8, rest = p->bits % 8;

	if (p->family != family)
		return false;
	if (memcmp(p->addr, a, (size_t)full) != 0)
		return false;
	if (rest == 0)
		return true;
	return (a[full] & (unsigned char)(0xff << (8 - rest))) == p->addr[full];
}

void cidr_format(const struct cidr *p, char *out, size_t outlen)
{
	char text[INET6_ADDRSTRLEN];

	if (inet_ntop(p->family, p->addr, text, sizeof(text)) == NULL)
		snprintf(text, sizeof(text), "?");
	snprintf(out, outlen, "%s/%d", text, p->bits);
}

static bool is_sep(char c)
{
	return c == ',' || c == ' ';
}

/* The next entry of the list at *s: its start, with *n its length, and *s
 * moved past it; NULL when only separators are left. */
static const char *next_entry(const char **s, size_t *n)
{
	const char *start = *s, *end;

	while (is_sep(*start))
		start++;
	if (*start == '\0')
		return NULL;
	for (end = start; *end != '\0' && !is_sep(*end); end++)
		;
	*n = (size_t)(end - start);
	*s = end;
	return start;
}

bool cidr_list_valid(const char *text)
{
	const char *s = text, *e;
	struct cidr p;
	size_t n;

	for (e = next_entry(&s, &n); e != NULL; e = next_entry(&s, &n))
		if (!cidr_parse(e, n, &p))
			return false;
	return true;
}

struct cidr_list *cidr_list_new(const char *text, const char *name, char *why, size_t whylen)
{
	struct cidr_list *l;
	const char *s = text, *e;
	size_t n, count = 0;

	while (next_entry(&s, &n) != NULL)
		count++;
	l = cz_calloc(1, sizeof(*l) + count * sizeof(l->p[0]));
	if (l == NULL) {
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	s = text;
	for (e = next_entry(&s, &n); e != NULL; e = next_entry(&s, &n)) {
		if (!cidr_parse(e, n, &l->p[l->n])) {
			snprintf(why, whylen, "%s: '%.*s' is not a CIDR", name,
			         (int)(n > 64 ? 64 : n), e);
			cz_free(l);
			return NULL;
		}
		l->n++;
	}
	return l;
}

void cidr_list_free(struct cidr_list *l)
{
	cz_free(l);
}

bool cidr_list_contains(const struct cidr_list *l, int family, const unsigned char *a)
{
	for (size_t i = 0; l != NULL && i < l->n; i++)
		if (cidr_contains(&l->p[i], family, a))
			return true;
	return false;
}
