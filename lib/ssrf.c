/*
 * ssrf: the address policy for callback destinations and the libcurl guard
 * that pins a delivery to addresses that were checked.
 *
 * Policy (one table, longest prefix wins, see rules[] below). The verdict
 * for one address is decided in this order; the first step that applies
 * decides:
 *
 *   1. CONSUMA_CALLBACK_DENY_CIDRS    deny   (the operator's deny beats all)
 *   2. CONSUMA_CALLBACK_ALLOW_CIDRS   allow  (known partners; beats every
 *                                             built-in rule, metadata too)
 *   3. the longest matching rule of the table:
 *      K_GLOBAL    allow (public unicast: 0.0.0.0/0 and 2000::/3 fallbacks)
 *      K_PRIVATE   deny, unless allow_private (loopback, RFC 1918, CGNAT,
 *                  unique-local, site-local, benchmarking)
 *      K_FIXED     deny always (unspecified, link-local, multicast,
 *                  broadcast, reserved, documentation, IETF assignments,
 *                  everything outside 2000::/3)
 *      K_METADATA  deny always: cloud metadata endpoints, listed even where
 *                  a class already covers them so that allow_private does
 *                  not open them (169.254.169.254 under allow_private ...)
 *      K_EMBED     deny always: IPv4-mapped, IPv4-compatible, 6to4, Teredo
 *                  (a real destination never needs these spellings; the
 *                  reason names the embedded IPv4)
 *      K_NAT64     the well-known prefix 64:ff9b::/96 only (the IPv4 is
 *                  the last 32 bits there): judged by the embedded IPv4,
 *                  through steps 1..3 again. The local-use 64:ff9b:1::/48
 *                  is K_FIXED: not globally reachable.
 *
 * allow_private (CONSUMA_ALLOW_PRIVATE_CALLBACKS) relaxes K_PRIVATE only.
 *
 * Resolution is lib/resolve.c's (resolve_system, a timed getaddrinfo) unless
 * a resolver was injected (ssrf_policy_set_resolver); ssrf_check_url only
 * judges what it returns.
 *
 * The guard (ssrf_curl_setup): CURLOPT_RESOLVE feeds curl the checked
 * addresses, so curl does no lookup of its own, and the open-socket
 * callback re-checks every address curl is about to connect to, so even an
 * address that reached curl another way is refused before connect().
 */
#include "ssrf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "buf.h"
#include "cidr.h"
#include "log.h"
#include "why.h"

enum kind { K_GLOBAL, K_PRIVATE, K_FIXED, K_METADATA, K_EMBED, K_NAT64 };

struct rule_src {
	const char *cidr;
	enum kind kind;
	const char *name;
};

/* The built-in policy: IANA IPv4 and IPv6 special-purpose address
 * registries, plus cloud metadata endpoints. Longest prefix wins. */
static const struct rule_src rules[] = {
    /* IPv4 */
    {"0.0.0.0/0", K_GLOBAL, "public"},
    {"0.0.0.0/8", K_FIXED, "'this network' (0.0.0.0/8)"},
    {"10.0.0.0/8", K_PRIVATE, "private (RFC 1918)"},
    {"100.64.0.0/10", K_PRIVATE, "shared address space (CGNAT, 100.64.0.0/10)"},
    {"127.0.0.0/8", K_PRIVATE, "loopback"},
    {"169.254.0.0/16", K_FIXED, "link-local (169.254.0.0/16)"},
    {"172.16.0.0/12", K_PRIVATE, "private (RFC 1918)"},
    {"192.0.0.0/24", K_FIXED, "IETF protocol assignments (192.0.0.0/24)"},
    {"192.0.2.0/24", K_FIXED, "documentation (192.0.2.0/24)"},
    {"192.88.99.0/24", K_FIXED, "6to4 relay anycast (192.88.99.0/24, deprecated)"},
    {"192.168.0.0/16", K_PRIVATE, "private (RFC 1918)"},
    {"198.18.0.0/15", K_PRIVATE, "benchmarking (198.18.0.0/15)"},
    {"198.51.100.0/24", K_FIXED, "documentation (198.51.100.0/24)"},
    {"203.0.113.0/24", K_FIXED, "documentation (203.0.113.0/24)"},
    {"224.0.0.0/4", K_FIXED, "multicast"},
    {"240.0.0.0/4", K_FIXED, "reserved (240.0.0.0/4)"},
    {"255.255.255.255/32", K_FIXED, "broadcast"},
    /* IPv4 cloud metadata */
    {"169.254.169.254/32", K_METADATA, "cloud metadata (AWS, GCP, Azure, OCI instance metadata)"},
    {"169.254.170.2/32", K_METADATA, "cloud metadata (AWS ECS task metadata)"},
    {"169.254.0.23/32", K_METADATA, "cloud metadata (Tencent Cloud)"},
    {"168.63.129.16/32", K_METADATA, "cloud metadata (Azure WireServer)"},
    {"100.100.100.200/32", K_METADATA, "cloud metadata (Alibaba Cloud)"},
    {"192.0.0.192/32", K_METADATA, "cloud metadata (Oracle Cloud Classic)"},
    /* IPv6 */
    {"::/0", K_FIXED, "not global unicast (outside 2000::/3)"},
    {"2000::/3", K_GLOBAL, "public"},
    {"::/128", K_FIXED, "unspecified"},
    {"::1/128", K_PRIVATE, "loopback"},
    {"::ffff:0:0/96", K_EMBED, "IPv4-mapped (::ffff:0:0/96)"},
    {"::/96", K_EMBED, "IPv4-compatible (::/96, deprecated)"},
    {"64:ff9b::/96", K_NAT64, "NAT64 (64:ff9b::/96)"},
    /* RFC 8215: not globally reachable (IANA), and a local-use translator
     * may carry the IPv4 at any of RFC 6052's offsets (in the /48 layout
     * 64:ff9b:1:a00:0:100:: is 10.0.0.1): refused whatever it embeds. */
    {"64:ff9b:1::/48", K_FIXED, "local-use NAT64 (64:ff9b:1::/48, not globally reachable)"},
    {"100::/64", K_FIXED, "discard-only (100::/64)"},
    {"2001::/23", K_FIXED, "IETF protocol assignments (2001::/23)"},
    {"2001::/32", K_EMBED, "Teredo (2001::/32)"},
    {"2001:2::/48", K_PRIVATE, "benchmarking (2001:2::/48)"},
    {"2001:db8::/32", K_FIXED, "documentation (2001:db8::/32)"},
    {"2002::/16", K_EMBED, "6to4 (2002::/16)"},
    {"3fff::/20", K_FIXED, "documentation (3fff::/20)"},
    {"fc00::/7", K_PRIVATE, "unique-local (fc00::/7)"},
    {"fe80::/10", K_FIXED, "link-local (fe80::/10)"},
    {"fec0::/10", K_PRIVATE, "site-local (fec0::/10, deprecated)"},
    {"ff00::/8", K_FIXED, "multicast"},
    /* IPv6 cloud metadata */
    {"fd00:ec2::254/128", K_METADATA, "cloud metadata (AWS instance metadata, IPv6)"},
    {"fd20:ce::254/128", K_METADATA, "cloud metadata (GCP metadata server, IPv6)"},
};

#define NRULES (sizeof(rules) / sizeof(rules[0]))

struct ssrf_policy {
	bool allow_private;
	int dns_timeout_ms;
	struct cidr builtin[NRULES];
	struct cidr_list *deny;
	struct cidr_list *allow;
	resolve_fn resolve;
	void *resolve_arg;
};

struct ssrf_policy *ssrf_policy_new(const struct config *cfg, char *why, size_t whylen)
{
	struct ssrf_policy *p = cz_calloc(1, sizeof(*p));

	if (p == NULL) {
		why_set(why, whylen, "out of memory");
		return NULL;
	}
	p->allow_private = cfg->allow_private_callbacks;
	p->dns_timeout_ms = (int)cfg->dns_timeout_ms;
	p->resolve = resolve_system;
	p->resolve_arg = NULL;
	for (size_t i = 0; i < NRULES; i++) {
		if (!cidr_parse(rules[i].cidr, strlen(rules[i].cidr), &p->builtin[i])) {
			why_set(why, whylen, "ssrf: built-in rule %s does not parse",
			        rules[i].cidr);
			goto fail;
		}
	}
	p->deny =
	    cidr_list_new(cfg->callback_deny_cidrs, "CONSUMA_CALLBACK_DENY_CIDRS", why, whylen);
	if (p->deny == NULL)
		goto fail;
	p->allow =
	    cidr_list_new(cfg->callback_allow_cidrs, "CONSUMA_CALLBACK_ALLOW_CIDRS", why, whylen);
	if (p->allow == NULL)
		goto fail;
	return p;
fail:
	ssrf_policy_free(p);
	return NULL;
}

void ssrf_policy_free(struct ssrf_policy *p)
{
	if (p == NULL)
		return;
	cidr_list_free(p->deny);
	cidr_list_free(p->allow);
	cz_free(p);
}

void ssrf_policy_set_resolver(struct ssrf_policy *p, resolve_fn fn, void *arg)
{
	if (fn == NULL) {
		p->resolve = resolve_system;
		p->resolve_arg = NULL;
	} else {
		p->resolve = fn;
		p->resolve_arg = arg;
	}
}

static void addr_text(int family, const unsigned char *a, char *out, size_t outlen)
{
	if (inet_ntop(family, a, out, (socklen_t)outlen) == NULL)
		snprintf(out, outlen, "?");
}

/* The verdict for one raw address; the class goes to why on a deny. */
static enum ssrf_verdict judge(const struct ssrf_policy *p, int family, const unsigned char *a,
                               char *why, size_t whylen)
{
	const struct cidr *best = NULL;
	size_t bi = 0;
	unsigned char v4[4];
	char text[INET_ADDRSTRLEN];
	char inner[SSRF_REASON_MAX];

	if (cidr_list_contains(p->deny, family, a)) {
		why_set(why, whylen, "denied by CONSUMA_CALLBACK_DENY_CIDRS");
		return SSRF_DENY_ADDRESS;
	}
	if (cidr_list_contains(p->allow, family, a))
		return SSRF_ALLOW;
	for (size_t i = 0; i < NRULES; i++) {
		const struct cidr *r = &p->builtin[i];
		if (cidr_contains(r, family, a) && (best == NULL || r->bits > best->bits)) {
			best = r;
			bi = i;
		}
	}
	if (best == NULL) { /* cannot happen: both families have a /0 rule */
		why_set(why, whylen, "unclassified");
		return SSRF_DENY_ADDRESS;
	}
	switch (rules[bi].kind) {
	case K_GLOBAL:
		return SSRF_ALLOW;
	case K_PRIVATE:
		if (p->allow_private)
			return SSRF_ALLOW;
		why_set(why, whylen, "%s", rules[bi].name);
		return SSRF_DENY_ADDRESS;
	case K_FIXED:
	case K_METADATA:
		why_set(why, whylen, "%s", rules[bi].name);
		return SSRF_DENY_ADDRESS;
	case K_EMBED:
		if (a[0] == 0x20 && a[1] == 0x02) { /* 6to4: bits 16..47 */
			memcpy(v4, a + 2, 4);
		} else if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0 && a[3] == 0) {
			for (int i = 0; i < 4; i++) /* Teredo: the client, inverted */
				v4[i] = (unsigned char)~a[12 + i];
		} else {
			memcpy(v4, a + 12, 4);
		}
		addr_text(AF_INET, v4, text, sizeof(text));
		why_set(why, whylen, "%s embedding %s; embedded IPv4 forms are refused",
		        rules[bi].name, text);
		return SSRF_DENY_ADDRESS;
	case K_NAT64:
		memcpy(v4, a + 12, 4);
		if (judge(p, AF_INET, v4, inner, sizeof(inner)) == SSRF_ALLOW)
			return SSRF_ALLOW;
		addr_text(AF_INET, v4, text, sizeof(text));
		why_set(why, whylen, "%s embedding %s, which is %s", rules[bi].name, text, inner);
		return SSRF_DENY_ADDRESS;
	}
	why_set(why, whylen, "unclassified");
	return SSRF_DENY_ADDRESS;
}

enum ssrf_verdict ssrf_check_addr(const struct ssrf_policy *p, const struct sockaddr *sa, char *why,
                                  size_t whylen)
{
	if (why != NULL && whylen > 0)
		why[0] = '\0';
	if (sa == NULL) {
		why_set(why, whylen, "no address");
		return SSRF_DENY_ADDRESS;
	}
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
		return judge(p, AF_INET, (const unsigned char *)&s4->sin_addr, why, whylen);
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
		return judge(p, AF_INET6, (const unsigned char *)&s6->sin6_addr, why, whylen);
	}
	why_set(why, whylen, "not an IP address (family %d)", (int)sa->sa_family);
	return SSRF_DENY_ADDRESS;
}

/* Text of a sockaddr's address ("127.0.0.1", "::1"). */
static void sa_text(const struct sockaddr *sa, char *out, size_t outlen)
{
	if (sa->sa_family == AF_INET)
		addr_text(AF_INET,
		          (const unsigned char *)&((const struct sockaddr_in *)(const void *)sa)
		              ->sin_addr,
		          out, outlen);
	else if (sa->sa_family == AF_INET6)
		addr_text(AF_INET6,
		          (const unsigned char *)&((const struct sockaddr_in6 *)(const void *)sa)
		              ->sin6_addr,
		          out, outlen);
	else
		snprintf(out, outlen, "?");
}

/* ---- checking a URL ----------------------------------------------------- */

static void set_port(struct sockaddr_storage *ss, int port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)(void *)ss)->sin_port = htons((uint16_t)port);
	else if (ss->ss_family == AF_INET6)
		((struct sockaddr_in6 *)(void *)ss)->sin6_port = htons((uint16_t)port);
}

/* Fills one sockaddr from an IP literal host. */
static bool literal_addr(const char *host, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)(void *)ss)->sin_addr) == 1) {
		ss->ss_family = AF_INET;
		return true;
	}
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)(void *)ss)->sin6_addr) == 1) {
		ss->ss_family = AF_INET6;
		return true;
	}
	return false;
}

enum ssrf_verdict ssrf_check_url(const struct ssrf_policy *p, const char *url,
                                 struct ssrf_target *t, char *why, size_t whylen)
{
	struct url_parts u;
	enum url_err ue;

	if (why != NULL && whylen > 0)
		why[0] = '\0';
	memset(t, 0, sizeof(*t));
	ue = url_parse(url, &u, why, whylen);
	if (ue == URL_NOMEM)
		return SSRF_NOMEM;
	if (ue != URL_OK)
		return SSRF_DENY_URL;
	return ssrf_check_parsed(p, &u, t, why, whylen);
}

enum ssrf_verdict ssrf_check_parsed(const struct ssrf_policy *p, const struct url_parts *u,
                                    struct ssrf_target *t, char *why, size_t whylen)
{
	struct sockaddr_storage got[SSRF_MAX_ADDRS];
	char cls[SSRF_REASON_MAX], text[INET6_ADDRSTRLEN];
	struct url_parts parts = *u; /* u may be t->url */
	int n = 0;

	if (why != NULL && whylen > 0)
		why[0] = '\0';
	memset(t, 0, sizeof(*t));
	t->url = parts;
	if (t->url.host_is_ip) {
		if (!literal_addr(t->url.host, &got[0])) {
			why_set(why, whylen, "callback_url: bad IP literal");
			return SSRF_DENY_URL;
		}
		n = 1;
	} else {
		int raw =
		    p->resolve(t->url.host, p->dns_timeout_ms, got, SSRF_MAX_ADDRS, p->resolve_arg);
		if (raw > SSRF_MAX_ADDRS)
			raw = SSRF_MAX_ADDRS;
		/* IP addresses only, once each (an injected resolver may repeat) */
		n = resolve_unique(got, raw);
	}
	if (n <= 0) {
		why_set(why, whylen, "destination refused: %s did not resolve (within %d ms)",
		        t->url.host, p->dns_timeout_ms);
		return SSRF_DENY_RESOLVE;
	}
	for (int i = 0; i < n; i++) {
		set_port(&got[i], t->url.port);
		if (ssrf_check_addr(p, (const struct sockaddr *)&got[i], cls, sizeof(cls)) !=
		    SSRF_ALLOW) {
			sa_text((const struct sockaddr *)&got[i], text, sizeof(text));
			why_set(why, whylen, "destination refused: %s is %s", text, cls);
			return SSRF_DENY_ADDRESS;
		}
	}
	t->naddrs = n;
	memcpy(t->addrs, got, (size_t)n * sizeof(got[0]));
	return SSRF_ALLOW;
}

/* ---- the intake bound's keys ---------------------------------------------- */

/* One address's key: the unit a destination is counted in, as a prefix in
 * canonical text. */
static void addr_key(const struct sockaddr_storage *ss, char *out, size_t outlen)
{
	static const unsigned char nat64[12] = {0x00, 0x64, 0xff, 0x9b};
	struct cidr key = {.family = AF_INET, .bits = 32};
	const unsigned char *a6;

	a6 = (const unsigned char *)&((const struct sockaddr_in6 *)(const void *)ss)->sin6_addr;
	if (ss->ss_family == AF_INET) {
		memcpy(key.addr, &((const struct sockaddr_in *)(const void *)ss)->sin_addr, 4);
	} else if (memcmp(a6, nat64, sizeof(nat64)) == 0) {
		/* the well-known NAT64 prefix reaches the IPv4 it carries */
		memcpy(key.addr, a6 + 12, 4);
	} else {
		/* one /64 is one site: a host is free to answer from any of its
		 * 2^64 interface identifiers */
		key.family = AF_INET6;
		key.bits = 64;
		memcpy(key.addr, a6, 8);
	}
	cidr_format(&key, out, outlen);
}

static void add_key(struct buf *b, char seen[][INET6_ADDRSTRLEN + 8], int *nseen, const char *key)
{
	for (int i = 0; i < *nseen; i++)
		if (strcmp(seen[i], key) == 0)
			return;
	snprintf(seen[*nseen], sizeof(seen[0]), "%s", key);
	(*nseen)++;
	if (b->len > 1)
		buf_putc(b, ',');
	buf_json_string(b, key, strlen(key));
}

bool ssrf_pending_keys(const struct ssrf_target *t, char *out, size_t outlen)
{
	char seen[SSRF_MAX_ADDRS][INET6_ADDRSTRLEN + 8];
	char key[INET6_ADDRSTRLEN + 8];
	int nseen = 0;
	struct buf b;
	bool ok;

	buf_init(&b, outlen > 0 ? outlen - 1 : 0);
	buf_putc(&b, '[');
	if (!t->url.host_is_ip) {
		size_t n = strlen(t->url.host);

		if (n > 0 && t->url.host[n - 1] == '.')
			n--;
		/* url_parse lowercased it already; names never contain '/', so
		 * no name can collide with an address key */
		buf_json_string(&b, t->url.host, n);
	}
	for (int i = 0; i < t->naddrs && i < SSRF_MAX_ADDRS; i++) {
		addr_key(&t->addrs[i], key, sizeof(key));
		add_key(&b, seen, &nseen, key);
	}
	buf_putc(&b, ']');
	ok = b.err == BUF_OK && outlen > 0;
	if (ok)
		memcpy(out, buf_str(&b), b.len + 1);
	else if (outlen > 0)
		out[0] = '\0';
	buf_free(&b);
	return ok;
}

/* ---- the libcurl guard --------------------------------------------------- */

curl_socket_t ssrf_open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *a)
{
	const struct ssrf_policy *p = clientp;
	char cls[SSRF_REASON_MAX], text[INET6_ADDRSTRLEN];
	int fd;

	if (purpose != CURLSOCKTYPE_IPCXN || a == NULL)
		return CURL_SOCKET_BAD;
	if (ssrf_check_addr(p, &a->addr, cls, sizeof(cls)) != SSRF_ALLOW) {
		sa_text(&a->addr, text, sizeof(text));
		log_event(L_WARN, "ssrf.connect_refused", "address=%s class=%s", log_q(text),
		          log_q(cls));
		return CURL_SOCKET_BAD;
	}
	fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
	return fd < 0 ? CURL_SOCKET_BAD : fd;
}

CURLcode ssrf_curl_setup(const struct ssrf_policy *p, CURL *h, const struct ssrf_target *t,
                         struct curl_slist **resolve_list)
{
	struct curl_slist *list = NULL;
	struct buf b;
	CURLcode rc = CURLE_OK;

	*resolve_list = NULL;
	buf_init(&b, 4096);
	if (!t->url.host_is_ip) {
		char text[INET6_ADDRSTRLEN];

		buf_printf(&b, "%s:%d:", t->url.host, t->url.port);
		for (int i = 0; i < t->naddrs; i++) {
			sa_text((const struct sockaddr *)&t->addrs[i], text, sizeof(text));
			if (t->addrs[i].ss_family == AF_INET6)
				buf_printf(&b, "%s[%s]", i ? "," : "", text);
			else
				buf_printf(&b, "%s%s", i ? "," : "", text);
		}
		if (b.err != BUF_OK || t->naddrs <= 0) {
			rc = b.err == BUF_NOMEM ? CURLE_OUT_OF_MEMORY : CURLE_BAD_FUNCTION_ARGUMENT;
			goto out;
		}
		list = curl_slist_append(NULL, buf_str(&b));
		if (list == NULL) {
			rc = CURLE_OUT_OF_MEMORY;
			goto out;
		}
	}
	/* Always set, NULL for a literal: curl does not copy the list, so a
	 * reused handle must never keep pointing at an earlier, freed one. */
	rc = curl_easy_setopt(h, CURLOPT_RESOLVE, list);
	if (rc != CURLE_OK)
		goto out;
	/* Nothing may re-route the connection past the pin. */
	rc = curl_easy_setopt(h, CURLOPT_CONNECT_TO, NULL);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, NULL);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, ssrf_open_socket);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, p);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(h, CURLOPT_MAXREDIRS, 0L);
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(h, CURLOPT_PROXY, "");
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(h, CURLOPT_PRE_PROXY, "");
	if (rc == CURLE_OK)
		rc = curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
out:
	buf_free(&b);
	if (rc != CURLE_OK) {
		if (list != NULL) {
			curl_easy_setopt(h, CURLOPT_RESOLVE, NULL);
			curl_slist_free_all(list);
		}
		return rc;
	}
	*resolve_list = list;
	return CURLE_OK;
}
