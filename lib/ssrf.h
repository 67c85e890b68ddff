/*
 * ssrf: the address policy for callback destinations, and the guard that
 * pins a libcurl connection to an address that was checked.
 *
 * The policy is one table of IPv4 and IPv6 prefixes (IANA special-purpose
 * registries, cloud metadata, everything outside 2000::/3 ...) plus the
 * operator's CONSUMA_CALLBACK_DENY_CIDRS and CONSUMA_CALLBACK_ALLOW_CIDRS.
 * IPv4 embedded in IPv6: the well-known NAT64 prefix 64:ff9b::/96 is
 * judged by the embedded address; the local-use NAT64 prefix
 * 64:ff9b:1::/48 and the mapped, compatible, 6to4 and Teredo forms are
 * refused outright.
 * Precedence: operator DENY_CIDRS > operator ALLOW_CIDRS > the table.
 * allow_private relaxes only the private classes (loopback, RFC 1918,
 * CGNAT, unique-local, site-local, benchmarking): never the URL rules, the
 * metadata list, link-local, multicast, unspecified or embedded forms.
 *
 * A policy is built once and read-only after: thread safe.
 */
#ifndef CONSUMA_SSRF_H
#define CONSUMA_SSRF_H

#include <stdbool.h>
#include <stddef.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <curl/curl.h>
#include "config.h"
#include "resolve.h"
#include "url.h"

#define SSRF_REASON_MAX 256
#define SSRF_MAX_ADDRS  16

struct ssrf_policy;

enum ssrf_verdict {
	SSRF_ALLOW = 0,
	SSRF_DENY_URL,     /* the URL itself was refused (url.h) */
	SSRF_DENY_ADDRESS, /* an address is in a denied class */
	SSRF_DENY_RESOLVE, /* nothing resolved, or the lookup timed out */
	SSRF_NOMEM,
};

/* Builds the policy from cfg (allow_private, deny/allow CIDR lists, DNS
 * timeout). NULL on failure (bad CIDR: why says which). Free with
 * ssrf_policy_free (NULL is a no-op). */
struct ssrf_policy *ssrf_policy_new(const struct config *cfg, char *why, size_t whylen);
void ssrf_policy_free(struct ssrf_policy *p);
/* Replaces the resolver (resolve.h's resolve_system by default: unit tests,
 * the fuzz harness's stub; nothing else changes); NULL restores the system
 * one. Call before the policy is shared. */
void ssrf_policy_set_resolver(struct ssrf_policy *p, resolve_fn fn, void *arg);

/* Classifies one address: SSRF_ALLOW, or SSRF_DENY_ADDRESS with the class
 * ("loopback", "private (RFC 1918)", ...) in why. */
enum ssrf_verdict ssrf_check_addr(const struct ssrf_policy *p, const struct sockaddr *sa, char *why,
                                  size_t whylen);

/* A checked destination: what to pin the connection to. */
struct ssrf_target {
	struct url_parts url;
	int naddrs;
	struct sockaddr_storage addrs[SSRF_MAX_ADDRS];
};

/* Parses url, resolves its host and checks every address. On SSRF_ALLOW
 * fills *t. Otherwise why reads like "destination refused: 127.0.0.1 is
 * loopback" or "callback_url: userinfo is not allowed". */
enum ssrf_verdict ssrf_check_url(const struct ssrf_policy *p, const char *url,
                                 struct ssrf_target *t, char *why, size_t whylen);
/* ssrf_check_url after its url_parse, for a caller that has parsed the URL
 * already (u, which may be t->url): resolves, checks and fills *t alike. */
enum ssrf_verdict ssrf_check_parsed(const struct ssrf_policy *p, const struct url_parts *u,
                                    struct ssrf_target *t, char *why, size_t whylen);

/* Room for ssrf_pending_keys: the name and every address, quoted. */
#define SSRF_KEYS_MAX (URL_HOST_MAX + 8 + SSRF_MAX_ADDRS * (INET6_ADDRSTRLEN + 8))

/* The keys the intake bound per destination (CONSUMA_MAX_PENDING_PER_HOST)
 * counts a checked target under, as a JSON array of strings, so that no
 * respelling of one destination gets a bound of its own: the host name
 * normalised (lowercase, trailing dot removed; left out for an IP literal)
 * and every checked address in canonical form, IPv4 as "a.b.c.d/32", IPv6
 * by its /64 ("2001:db8:1:2::/64"; NAT64 64:ff9b::/96 by the IPv4 it
 * carries), each once. A job counts against all of them: wildcard DNS
 * shares the addresses, "localhost" the 127.0.0.1 of "127.0.0.1", "[0::1]"
 * the "::/64" of "[::1]". Writes at most outlen bytes (SSRF_KEYS_MAX is
 * always enough); false when they do not fit. Thread safe. */
bool ssrf_pending_keys(const struct ssrf_target *t, char *out, size_t outlen);

/* Prepares an easy handle for a delivery to t: CURLOPT_RESOLVE pinned to
 * the checked addresses, an open-socket callback that checks the peer
 * again before connect, protocols http/https only, no redirects, no proxy.
 * The slist it creates is returned in *resolve_list; free it with
 * curl_slist_free_all after the transfer. */
CURLcode ssrf_curl_setup(const struct ssrf_policy *p, CURL *h, const struct ssrf_target *t,
                         struct curl_slist **resolve_list);

/* The CURLOPT_OPENSOCKETFUNCTION that ssrf_curl_setup installs, exposed
 * for tests: clientp is the policy. Returns a new socket (close-on-exec)
 * when the address passes ssrf_check_addr, CURL_SOCKET_BAD (and a log
 * line) when it does not. Thread safe. */
curl_socket_t ssrf_open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *addr);

#endif
