/*
 * clientaddr: the address a request is accounted to (the rate limit's key,
 * the logs): REMOTE_ADDR, or, when REMOTE_ADDR is a trusted proxy
 * (CONSUMA_TRUSTED_PROXIES, a lib/cidr list), the right-most
 * X-Forwarded-For entry that is not one. Entries left of it are whatever
 * the client chose to send, so they are never believed.
 *
 * Trust works in one address space: an IPv4 address, and an IPv4-mapped
 * IPv6 address (which counts as its IPv4 address), is trusted by an IPv4
 * prefix of the list and by an IPv6 prefix that covers its ::ffff:a.b.c.d
 * form (so ::/0 trusts every address).
 */
#ifndef CONSUMA_CLIENTADDR_H
#define CONSUMA_CLIENTADDR_H

#include <stddef.h>
#include "cidr.h"

#define CLIENTADDR_MAX 64 /* room for any address clientaddr_pick writes */

/* Writes the address to account a request to, normalized (inet_ntop form,
 * IPv4 for IPv4-mapped IPv6), to out: remote_addr, unless remote_addr is
 * in trusted (NULL or empty: nobody is) and xff (X-Forwarded-For, may be
 * NULL) is present; then the right-most xff entry that is not trusted
 * (walking left past trusted hops, at most 64; the left-most entry when
 * all are trusted). Entries may carry a port ("v4:port", "[v6]:port");
 * empty entries are skipped; an entry that is not an address ends the walk
 * at the hop to its right. A remote_addr that does not parse is copied as
 * it is (cut to fit; NULL gives ""). out holds at least CLIENTADDR_MAX
 * bytes for any address. Thread safe. */
void clientaddr_pick(const struct cidr_list *trusted, const char *remote_addr, const char *xff,
                     char *out, size_t outlen);

#endif
