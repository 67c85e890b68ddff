/*
 * test_ssrf: the callback destination policy.
 *
 * Every URL goes through ssrf_check_url with an injected resolver (names
 * under .test resolve from a table here), so no DNS query is ever sent; the
 * only packets these tests send go to a listener on 127.0.0.1 (the pinning
 * and connect-time checks, through real libcurl transfers).
 *
 * Tables: the main one (allow_private=false), a subset with
 * allow_private=true showing that only the private classes relax, and the
 * operator's deny/allow CIDRs with their precedence. Then rebinding between
 * two checks, the open-socket callback called directly, and libcurl
 * transfers proving the pin, the connect-time refusal, no redirect
 * following and no proxy from the environment. The system resolver has
 * its own tests (test_resolve.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include "alloc.h"
#include "config.h"
#include "ssrf.h"

/* ---- the fake resolver --------------------------------------------------- */

struct fake_name {
	const char *name;
	const char *addrs[4];
};

static const struct fake_name names[] = {
    {"public.test", {"8.8.8.8", "2606:4700:4700::1111"}},
    {"v6only.test", {"2001:4860:4860::8888"}},
    {"xn--bcher-kva.test", {"93.184.216.34"}},
    {"private.test", {"10.0.0.1"}},
    {"mixed.test", {"8.8.8.8", "127.0.0.1"}},
    {"mixed6.test", {"2606:4700:4700::1111", "fd00::1"}},
    {"loop6.test", {"::1"}},
    {"localhost", {"127.0.0.1", "::1"}},
    {"meta.test", {"169.254.169.254"}},
    {"azure.test", {"168.63.129.16"}},
    {"mapped.test", {"::ffff:8.8.8.8"}},
    {"nat64.test", {"64:ff9b::808:808"}},
    {"dup.test", {"8.8.8.8", "8.8.8.8", "8.8.8.8"}},
    {"nothing.test", {NULL}},
    {"pinned.invalid", {"127.0.0.1"}}, /* a name no real DNS can answer */
    {"a.wild.test", {"93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"}},
    {"b.wild.test", {"93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"}},
    {"site64.test", {"2606:2800:220:1::1", "2606:2800:220:1:ffff::2", "2606:2800:220:2::1"}},
};

static int fill(const char *text, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (inet_pton(AF_INET, text, &((struct sockaddr_in *)ss)->sin_addr) == 1) {
		ss->ss_family = AF_INET;
		return 1;
	}
	if (inet_pton(AF_INET6, text, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
		ss->ss_family = AF_INET6;
		return 1;
	}
	return 0;
}

static int lookups; /* how often the fake resolver was asked */

static int fake_resolve(const char *host, int timeout_ms, struct sockaddr_storage *addrs, int max,
                        void *arg)
{
	char h[URL_HOST_MAX];
	size_t n = strlen(host);

	(void)timeout_ms;
	(void)arg;
	lookups++;
	snprintf(h, sizeof(h), "%s", host);
	if (n > 0 && h[n - 1] == '.')
		h[n - 1] = '\0';
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		int k = 0;
		if (strcmp(names[i].name, h) != 0)
			continue;
		for (int j = 0; j < 4 && names[i].addrs[j] != NULL && k < max; j++)
			k += fill(names[i].addrs[j], &addrs[k]);
		return k;
	}
	return 0;
}

/* public at the first lookup, loopback from then on */
static int rebind_resolve(const char *host, int timeout_ms, struct sockaddr_storage *addrs, int max,
                          void *arg)
{
	int *calls = arg;

	(void)host;
	(void)timeout_ms;
	if (max < 1)
		return 0;
	return fill((*calls)++ == 0 ? "8.8.8.8" : "127.0.0.1", &addrs[0]);
}

static struct ssrf_policy *policy(bool allow_private, const char *deny, const char *allow)
{
	struct config c;
	char why[256];
	struct ssrf_policy *p;

	memset(&c, 0, sizeof(c));
	c.allow_private_callbacks = allow_private;
	c.dns_timeout_ms = 500;
	snprintf(c.callback_deny_cidrs, sizeof(c.callback_deny_cidrs), "%s", deny);
	snprintf(c.callback_allow_cidrs, sizeof(c.callback_allow_cidrs), "%s", allow);
	p = ssrf_policy_new(&c, why, sizeof(why));
	if (p == NULL)
		fail_msg("ssrf_policy_new: %s", why);
	ssrf_policy_set_resolver(p, fake_resolve, NULL);
	return p;
}

/* ---- the tables ---------------------------------------------------------- */

struct vcase {
	const char *url;
	enum ssrf_verdict want;
	const char *reason; /* a substring of why when denied */
};

#define A(u)                                                                                       \
	{                                                                                          \
		u, SSRF_ALLOW, NULL                                                                \
	}
#define U(u)                                                                                       \
	{                                                                                          \
		u, SSRF_DENY_URL, "callback_url: "                                                 \
	}
#define D(u, r)                                                                                    \
	{                                                                                          \
		u, SSRF_DENY_ADDRESS, r                                                            \
	}
#define R(u)                                                                                       \
	{                                                                                          \
		u, SSRF_DENY_RESOLVE, "did not resolve"                                            \
	}

static const struct vcase strict[] = {
    /* IPv4 literal forms: only plain dotted decimal, whatever the others mean */
    D("http://127.0.0.1/", "destination refused: 127.0.0.1 is loopback"),
    U("http://127.1/"),
    U("http://127.0.1/"),
    U("http://0x7f.0.0.1/"),
    U("http://0x7f000001/"),
    U("http://2130706433/"),
    U("http://017700000001/"),
    U("http://0177.0.0.1/"),
    U("http://127.0.0.1./"),
    U("http://127.000.000.001/"),
    U("http://127.0.0.01/"),
    A("http://8.8.8.8/"),
    U("http://8.8.8.8./"),
    U("http://008.8.8.8/"),
    U("http://0x08.8.8.8/"),
    U("http://134744072/"),
    U("http://8.8.2056/"),
    U("http://8.526344/"),
    U("http://256.1.1.1/"),
    U("http://1.2.3.4.5/"),
    U("http://1.2.3/"),
    U("http://public.test.0x10/"),
    U("http://0/"),
    /* first and last address of every denied IPv4 range, and the neighbours */
    D("http://0.0.0.0/", "'this network'"),
    D("http://0.255.255.255/", "'this network'"),
    A("http://1.0.0.0/"),
    A("http://9.255.255.255/"),
    D("http://10.0.0.0/", "private (RFC 1918)"),
    D("http://10.255.255.255/", "private (RFC 1918)"),
    A("http://11.0.0.0/"),
    A("http://100.63.255.255/"),
    D("http://100.64.0.0/", "CGNAT"),
    D("http://100.127.255.255/", "CGNAT"),
    A("http://100.128.0.0/"),
    A("http://126.255.255.255/"),
    D("http://127.0.0.0/", "loopback"),
    D("http://127.255.255.255/", "loopback"),
    A("http://128.0.0.0/"),
    A("http://169.253.255.255/"),
    D("http://169.254.0.0/", "link-local"),
    D("http://169.254.255.255/", "link-local"),
    A("http://169.255.0.0/"),
    A("http://172.15.255.255/"),
    D("http://172.16.0.0/", "private (RFC 1918)"),
    D("http://172.31.255.255/", "private (RFC 1918)"),
    A("http://172.32.0.0/"),
    D("http://192.0.0.0/", "IETF protocol assignments"),
    D("http://192.0.0.255/", "IETF protocol assignments"),
    D("http://192.0.2.0/", "documentation"),
    D("http://192.0.2.255/", "documentation"),
    A("http://192.0.3.0/"),
    D("http://192.88.99.0/", "6to4 relay"),
    D("http://192.88.99.255/", "6to4 relay"),
    A("http://192.167.255.255/"),
    D("http://192.168.0.0/", "private (RFC 1918)"),
    D("http://192.168.255.255/", "private (RFC 1918)"),
    A("http://192.169.0.0/"),
    A("http://198.17.255.255/"),
    D("http://198.18.0.0/", "benchmarking"),
    D("http://198.19.255.255/", "benchmarking"),
    A("http://198.20.0.0/"),
    D("http://198.51.100.0/", "documentation"),
    D("http://198.51.100.255/", "documentation"),
    D("http://203.0.113.0/", "documentation"),
    D("http://203.0.113.255/", "documentation"),
    A("http://223.255.255.255/"),
    D("http://224.0.0.0/", "multicast"),
    D("http://239.255.255.255/", "multicast"),
    D("http://240.0.0.0/", "reserved"),
    D("http://255.255.255.254/", "reserved"),
    D("http://255.255.255.255/", "broadcast"),
    /* cloud metadata */
    D("http://169.254.169.254/latest/meta-data/", "cloud metadata"),
    D("http://169.254.170.2/", "cloud metadata"),
    D("http://168.63.129.16/", "cloud metadata (Azure WireServer)"),
    A("http://168.63.129.15/"),
    A("http://168.63.129.17/"),
    D("http://100.100.100.200/", "cloud metadata (Alibaba"),
    D("http://[fd00:ec2::254]/", "cloud metadata"),
    D("http://[fd20:ce::254]/", "cloud metadata"),
    /* IPv6 ranges */
    D("http://[::]/", "unspecified"),
    D("http://[::1]/", "destination refused: ::1 is loopback"),
    D("http://[0:0:0:0:0:0:0:1]/", "loopback"),
    D("http://[::2]/", "IPv4-compatible"),
    D("http://[::7f00:1]/", "IPv4-compatible (::/96, deprecated) embedding 127.0.0.1"),
    D("http://[::808:808]/", "IPv4-compatible (::/96, deprecated) embedding 8.8.8.8"),
    D("http://[::ffff:0:0]/", "IPv4-mapped"),
    D("http://[::ffff:ffff:ffff]/", "IPv4-mapped"),
    D("http://[::ffff:127.0.0.1]/", "IPv4-mapped (::ffff:0:0/96) embedding 127.0.0.1"),
    D("http://[::ffff:7f00:1]/", "IPv4-mapped"),
    D("http://[0:0:0:0:0:ffff:7f00:1]/", "IPv4-mapped"),
    D("http://[::ffff:8.8.8.8]/", "IPv4-mapped (::ffff:0:0/96) embedding 8.8.8.8"),
    D("http://[64:ff9b::7f00:1]/", "NAT64 (64:ff9b::/96) embedding 127.0.0.1, which is loopback"),
    D("http://[64:ff9b::127.0.0.1]/", "which is loopback"),
    D("http://[64:ff9b::a00:1]/", "which is private (RFC 1918)"),
    D("http://[64:ff9b::a9fe:a9fe]/", "which is cloud metadata"),
    D("http://[64:ff9b::]/", "which is 'this network'"),
    D("http://[64:ff9b::ffff:ffff]/", "which is broadcast"),
    A("http://[64:ff9b::808:808]/"),
    A("http://[64:ff9b::8.8.4.4]/"),
    /* local-use NAT64 is not globally reachable: refused whatever it
     * embeds, at whichever RFC 6052 offset (the /48 layout puts 10.0.0.1
     * in 64:ff9b:1:a00:0:100::, 127.0.0.1 in 64:ff9b:1:7f00:0:100::) */
    /* other spellings of a denied IPv6 literal are denied as the address
     * (fuzz_ssrf found curl and the guard spelling [::01] apart) */
    D("http://[::01]/", "::1 is loopback"),
    D("http://[0:0::1]/", "::1 is loopback"),
    D("http://[0000::0001]/", "::1 is loopback"),
    D("http://[64:ff9b:1:a00:0:100:808:808]/",
      "64:ff9b:1:a00:0:100:808:808 is local-use NAT64 (64:ff9b:1::/48, not globally reachable)"),
    D("http://[64:ff9b:1:7f00:0:100::]/", "local-use NAT64"),
    D("http://[64:ff9b:1::7f00:1]/", "local-use NAT64"),
    D("http://[64:ff9b:1::808:808]/", "local-use NAT64"),
    D("http://[64:ff9b:1::]/", "local-use NAT64"),
    D("http://[64:ff9b:1:ffff:ffff:ffff:ffff:ffff]/", "local-use NAT64"),
    /* the /48's neighbours are outside 2000::/3 like the rest of 0::/3 */
    D("http://[64:ff9b:2::808:808]/", "outside 2000::/3"),
    D("http://[64:ff9b:0:1::808:808]/", "outside 2000::/3"),
    D("http://[2002::]/", "6to4"),
    D("http://[2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff]/", "6to4"),
    D("http://[2002:7f00:1::]/", "6to4 (2002::/16) embedding 127.0.0.1"),
    D("http://[2002:808:808::1]/", "6to4 (2002::/16) embedding 8.8.8.8"),
    D("http://[2001::]/", "Teredo"),
    D("http://[2001:0:ffff:ffff:ffff:ffff:ffff:ffff]/", "Teredo"),
    D("http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/", "Teredo (2001::/32) embedding 127.0.0.1"),
    D("http://[2001:0:4136:e378:8000:63bf:f7f7:f7f7]/", "Teredo (2001::/32) embedding 8.8.8.8"),
    D("http://[2001:1::1]/", "IETF protocol assignments"),
    D("http://[2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff]/", "IETF protocol assignments"),
    A("http://[2001:200::1]/"),
    D("http://[2001:2::]/", "benchmarking"),
    D("http://[2001:db8::]/", "documentation"),
    D("http://[2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]/", "documentation"),
    A("http://[2001:db9::1]/"),
    D("http://[3fff::]/", "documentation (3fff::/20)"),
    D("http://[3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff]/", "documentation"),
    A("http://[3fff:1000::1]/"),
    D("http://[100::]/", "discard-only"),
    D("http://[100::ffff:ffff:ffff:ffff]/", "discard-only"),
    D("http://[fc00::]/", "unique-local"),
    D("http://[fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]/", "unique-local"),
    D("http://[fe80::]/", "link-local"),
    D("http://[febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff]/", "link-local"),
    D("http://[fec0::]/", "site-local"),
    D("http://[feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]/", "site-local"),
    D("http://[ff00::]/", "multicast"),
    D("http://[ff02::1]/", "multicast"),
    D("http://[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]/", "multicast"),
    D("http://[1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]/", "outside 2000::/3"),
    D("http://[4000::]/", "outside 2000::/3"),
    D("http://[5f00::1]/", "outside 2000::/3"),
    D("http://[e000::1]/", "outside 2000::/3"),
    A("http://[2000::]/"),
    A("http://[3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]/"),
    A("http://[2606:4700:4700::1111]/"),
    A("http://[2001:4860:4860::8888]:8443/hook"),
    A("https://[2a00:1450:4001:830::200e]/"),
    /* zone ids and bad literals */
    U("http://[fe80::1%25eth0]/"),
    U("http://[fe80::1%eth0]/"),
    U("http://[::1%251]/"),
    U("http://[::1/"),
    U("http://::1/"),
    U("http://[::ffff:127.0.0.01]/"),
    U("http://[127.0.0.1]/"),
    /* userinfo and the "#@" / "?@" tricks */
    U("http://user@8.8.8.8/"),
    U("http://user:pass@8.8.8.8/"),
    U("http://:@8.8.8.8/"),
    U("http://@8.8.8.8/"),
    U("http://8.8.8.8@127.0.0.1/"),
    U("http://public.test@127.0.0.1/"),
    D("http://127.0.0.1#@8.8.8.8/", "127.0.0.1 is loopback"),
    D("http://127.0.0.1?@8.8.8.8/", "127.0.0.1 is loopback"),
    A("http://8.8.8.8#@127.0.0.1/"),
    A("http://8.8.8.8?@127.0.0.1/"),
    A("http://8.8.8.8/@127.0.0.1"),
    U("http://8.8.8.8%40127.0.0.1/"),
    U("http://public.test%2f@127.0.0.1/"),
    /* backslashes, control and non-ASCII bytes, percent-encoded hosts */
    U("http://8.8.8.8\\@127.0.0.1/"),
    U("http://8.8.8.8\\.127.0.0.1/"),
    U("http:\\\\8.8.8.8\\"),
    U("http://8.8.8.8/\\"),
    U("http://8.8.8.8/\t"),
    U("http://8.8.8.8/\n"),
    U("http://8.8.\r8.8/"),
    U("http://8.8.8.8/\x7f"),
    U("http://8.8.8.8/\x01"),
    U(" http://8.8.8.8/"),
    U("http://8.8.8.8/ x"),
    U("http://ex\xc3\xa4mple.test/"),
    U("http://8.8.8.8/\xff"),
    U("http://%38.8.8.8/"),
    U("http://publ%69c.test/"),
    A("http://xn--bcher-kva.test/"),
    /* ports */
    U("http://8.8.8.8:0/"),
    A("http://8.8.8.8:1/"),
    A("http://8.8.8.8:65535/"),
    U("http://8.8.8.8:65536/"),
    U("http://8.8.8.8:080/"),
    U("http://8.8.8.8:-1/"),
    U("http://8.8.8.8:+80/"),
    U("http://8.8.8.8:/"),
    U("http://8.8.8.8:99999999999999999999/"),
    U("http://8.8.8.8:80:80/"),
    U("http://8.8.8.8:8x/"),
    A("http://[2606:4700:4700::1111]:443/"),
    U("http://[::1]:65536/"),
    /* schemes */
    U("ftp://8.8.8.8/"),
    U("file:///etc/passwd"),
    U("gopher://8.8.8.8/"),
    U("dict://8.8.8.8:11211/"),
    U("ws://8.8.8.8/"),
    A("HTTP://8.8.8.8/"),
    A("HtTpS://8.8.8.8/"),
    A("https://8.8.8.8/"),
    U("http:/8.8.8.8/"),
    U("http:8.8.8.8"),
    U("//8.8.8.8/"),
    U("8.8.8.8"),
    U("http:///8.8.8.8/"),
    U("javascript:alert(1)"),
    U(""),
    U("http://"),
    U("http://:80/"),
    /* names, through the injected resolver */
    A("http://public.test/"),
    A("http://PUBLIC.Test/"),
    A("http://public.test./"),
    A("http://public.test:8080/path?q=1#frag"),
    A("http://v6only.test/"),
    A("http://nat64.test/"),
    A("http://dup.test/"),
    D("http://private.test/", "destination refused: 10.0.0.1 is private (RFC 1918)"),
    D("http://mixed.test/", "destination refused: 127.0.0.1 is loopback"),
    D("http://mixed6.test/", "destination refused: fd00::1 is unique-local"),
    D("http://loop6.test/", "::1 is loopback"),
    D("http://localhost:9000/", "127.0.0.1 is loopback"),
    D("http://meta.test/", "169.254.169.254 is cloud metadata"),
    D("http://azure.test/", "168.63.129.16 is cloud metadata"),
    D("http://mapped.test/", "::ffff:8.8.8.8 is IPv4-mapped"),
    R("http://nothing.test/"),
    R("http://unknown.test/"),
    U("http://public..test/"),
    U("http://.public.test/"),
};

/* allow_private=true: only the private classes relax */
static const struct vcase relaxed[] = {
    A("http://127.0.0.1/"),
    A("http://127.255.255.255/"),
    A("http://10.1.2.3/"),
    A("http://172.16.0.1/"),
    A("http://192.168.1.1/"),
    A("http://100.64.0.1/"),
    A("http://198.18.0.1/"),
    A("http://[::1]:8080/"),
    A("http://[fd12::1]/"),
    A("http://[fec0::1]/"),
    A("http://[64:ff9b::7f00:1]/"),
    /* fuzz_ssrf: curl rewrites [::01] to [::1]; the guard judges the address */
    A("http://[::01]/"),
    A("http://[0:0::1]:8080/"),
    D("http://[64:ff9b:1::7f00:1]/", "local-use NAT64"),
    D("http://[64:ff9b:1:a00:0:100::]/", "local-use NAT64"),
    A("http://localhost:9000/"),
    A("http://private.test/"),
    A("http://mixed.test/"),
    A("http://public.test/"),
    D("http://169.254.169.254/", "cloud metadata"),
    D("http://[fd00:ec2::254]/", "cloud metadata"),
    D("http://100.100.100.200/", "cloud metadata"),
    D("http://168.63.129.16/", "cloud metadata"),
    D("http://meta.test/", "cloud metadata"),
    D("http://169.254.1.1/", "link-local"),
    D("http://[fe80::1]/", "link-local"),
    D("http://0.0.0.0/", "'this network'"),
    D("http://[::]/", "unspecified"),
    D("http://224.0.0.1/", "multicast"),
    D("http://[ff02::1]/", "multicast"),
    D("http://255.255.255.255/", "broadcast"),
    D("http://240.0.0.1/", "reserved"),
    D("http://192.0.2.1/", "documentation"),
    D("http://[::ffff:127.0.0.1]/", "IPv4-mapped"),
    D("http://[::7f00:1]/", "IPv4-compatible"),
    D("http://[2002:7f00:1::]/", "6to4"),
    D("http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/", "Teredo"),
    D("http://[64:ff9b::a9fe:a9fe]/", "cloud metadata"),
    D("http://[4000::1]/", "outside 2000::/3"),
    D("http://mapped.test/", "IPv4-mapped"),
    U("http://127.1/"),
    U("http://0x7f000001/"),
    U("http://127.0.0.1./"),
    U("http://user@127.0.0.1/"),
    A("http://127.0.0.1#@8.8.8.8/"),
    U("ftp://127.0.0.1/"),
    U("http://[fe80::1%25lo]/"),
    U("http://127.0.0.1:0/"),
    R("http://nothing.test/"),
};

#define OP_DENY  "8.8.4.0/24, 2606:4700::/32,10.20.30.0/24"
#define OP_ALLOW "10.20.0.0/16 168.63.129.16 127.0.0.1/32, fd00:1234::/32, 2002::/16"

/* operator lists: deny beats allow beats every built-in rule */
static const struct vcase operator[] = {
    D("http://8.8.4.4/", "8.8.4.4 is denied by CONSUMA_CALLBACK_DENY_CIDRS"),
    D("http://8.8.4.0/", "CONSUMA_CALLBACK_DENY_CIDRS"),
    D("http://8.8.4.255/", "CONSUMA_CALLBACK_DENY_CIDRS"),
    A("http://8.8.5.0/"),
    A("http://8.8.8.8/"),
    D("http://[2606:4700:4700::1111]/", "CONSUMA_CALLBACK_DENY_CIDRS"),
    D("http://public.test/", "2606:4700:4700::1111 is denied by CONSUMA_CALLBACK_DENY_CIDRS"),
    A("http://v6only.test/"),
    A("http://10.20.1.1/"),
    A("http://10.20.255.255/"),
    D("http://10.20.30.1/", "CONSUMA_CALLBACK_DENY_CIDRS"),
    D("http://10.21.0.1/", "private (RFC 1918)"),
    A("http://168.63.129.16/"),
    A("http://127.0.0.1/"),
    D("http://127.0.0.2/", "loopback"),
    A("http://[fd00:1234::1]/"),
    D("http://[fd00:1235::1]/", "unique-local"),
    A("http://[2002:7f00:1::]/"),
    D("http://[64:ff9b::808:404]/", "embedding 8.8.4.4, which is denied by"),
    A("http://[64:ff9b::a14:101]/"),
    U("http://user@10.20.1.1/"),
};

static void run_table(const struct vcase *cases, size_t n, struct ssrf_policy *p, const char *label)
{
	for (size_t i = 0; i < n; i++) {
		const struct vcase *c = &cases[i];
		struct ssrf_target t;
		char why[SSRF_REASON_MAX];
		enum ssrf_verdict got = ssrf_check_url(p, c->url, &t, why, sizeof(why));

		if (got != c->want)
			fail_msg("%s %zu [%s]: got verdict %d (%s), want %d", label, i, c->url,
			         (int)got, why, (int)c->want);
		if (got == SSRF_ALLOW) {
			if (t.naddrs < 1 || t.naddrs > SSRF_MAX_ADDRS)
				fail_msg("%s %zu [%s]: %d addresses", label, i, c->url, t.naddrs);
		} else if (c->reason != NULL && strstr(why, c->reason) == NULL) {
			fail_msg("%s %zu [%s]: reason [%s] lacks [%s]", label, i, c->url, why,
			         c->reason);
		}
	}
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static void test_strict_table(void **state)
{
	struct ssrf_policy *p = policy(false, "", "");

	(void)state;
	assert_true(COUNT(strict) >= 150);
	run_table(strict, COUNT(strict), p, "strict");
	ssrf_policy_free(p);
}

static void test_relaxed_table(void **state)
{
	struct ssrf_policy *p = policy(true, "", "");

	(void)state;
	run_table(relaxed, COUNT(relaxed), p, "relaxed");
	ssrf_policy_free(p);
}

static void test_operator_table(void **state)
{
	struct ssrf_policy *p = policy(false, OP_DENY, OP_ALLOW);

	(void)state;
	run_table(operator, COUNT(operator), p, "operator");
	ssrf_policy_free(p);
}

static void test_bad_cidrs(void **state)
{
	static const char *bad[] = {"10.0.0.0/33", "::/129",      "10.0.0",     "example.com",
	                            "10.0.0.0/",   "10.0.0.0/-1", "1.2.3.4/8x", "0x0a.0.0.0/8"};
	struct config c;
	char why[256];

	(void)state;
	for (size_t i = 0; i < COUNT(bad); i++) {
		memset(&c, 0, sizeof(c));
		snprintf(c.callback_deny_cidrs, sizeof(c.callback_deny_cidrs), "8.8.8.8, %s",
		         bad[i]);
		why[0] = '\0';
		assert_null(ssrf_policy_new(&c, why, sizeof(why)));
		if (strstr(why, "CONSUMA_CALLBACK_DENY_CIDRS") == NULL)
			fail_msg("[%s]: %s", bad[i], why);
		memset(&c, 0, sizeof(c));
		snprintf(c.callback_allow_cidrs, sizeof(c.callback_allow_cidrs), "%s", bad[i]);
		assert_null(ssrf_policy_new(&c, why, sizeof(why)));
		assert_non_null(strstr(why, "CONSUMA_CALLBACK_ALLOW_CIDRS"));
	}
	/* host bits are cleared, separators are commas and spaces, /0 works */
	memset(&c, 0, sizeof(c));
	snprintf(c.callback_deny_cidrs, sizeof(c.callback_deny_cidrs), " 8.8.8.9/24 ,, ::/0 ");
	{
		struct ssrf_policy *p = ssrf_policy_new(&c, why, sizeof(why));
		struct ssrf_target t;

		assert_non_null(p);
		ssrf_policy_set_resolver(p, fake_resolve, NULL);
		assert_int_equal(ssrf_check_url(p, "http://8.8.8.1/", &t, why, sizeof(why)),
		                 SSRF_DENY_ADDRESS);
		assert_int_equal(ssrf_check_url(p, "http://[2606:4700::1]/", &t, why, sizeof(why)),
		                 SSRF_DENY_ADDRESS);
		assert_int_equal(ssrf_check_url(p, "http://8.8.9.1/", &t, why, sizeof(why)),
		                 SSRF_ALLOW);
		ssrf_policy_free(p);
	}
	ssrf_policy_free(NULL);
}

/* public at intake, loopback at delivery: the second check refuses and says why */
static void test_rebinding(void **state)
{
	struct ssrf_policy *p = policy(false, "", "");
	struct ssrf_target t;
	char why[SSRF_REASON_MAX];
	int calls = 0;

	(void)state;
	ssrf_policy_set_resolver(p, rebind_resolve, &calls);
	assert_int_equal(ssrf_check_url(p, "http://rebind.test/cb", &t, why, sizeof(why)),
	                 SSRF_ALLOW);
	assert_int_equal(t.naddrs, 1);
	assert_int_equal(ssrf_check_url(p, "http://rebind.test/cb", &t, why, sizeof(why)),
	                 SSRF_DENY_ADDRESS);
	assert_string_equal(why, "destination refused: 127.0.0.1 is loopback");
	assert_int_equal(calls, 2);
	/* an IP literal is never looked up */
	ssrf_policy_set_resolver(p, fake_resolve, NULL);
	lookups = 0;
	assert_int_equal(ssrf_check_url(p, "http://8.8.8.8/", &t, why, sizeof(why)), SSRF_ALLOW);
	assert_int_equal(ssrf_check_url(p, "http://[::1]/", &t, why, sizeof(why)),
	                 SSRF_DENY_ADDRESS);
	assert_int_equal(lookups, 0);
	ssrf_policy_free(p);
}

static void test_target_contents(void **state)
{
	struct ssrf_policy *p = policy(false, "", "");
	struct ssrf_target t;
	char why[SSRF_REASON_MAX];
	const struct sockaddr_in *s4;
	const struct sockaddr_in6 *s6;

	(void)state;
	assert_int_equal(ssrf_check_url(p, "https://Public.TEST:8443/x", &t, why, sizeof(why)),
	                 SSRF_ALLOW);
	assert_string_equal(t.url.host, "public.test");
	assert_int_equal(t.url.port, 8443);
	assert_true(t.url.https);
	assert_false(t.url.host_is_ip);
	assert_int_equal(t.naddrs, 2);
	s4 = (const struct sockaddr_in *)&t.addrs[0];
	s6 = (const struct sockaddr_in6 *)&t.addrs[1];
	assert_int_equal(s4->sin_family, AF_INET);
	assert_int_equal(ntohs(s4->sin_port), 8443);
	assert_int_equal(s6->sin6_family, AF_INET6);
	assert_int_equal(ntohs(s6->sin6_port), 8443);
	/* duplicates are collapsed */
	assert_int_equal(ssrf_check_url(p, "http://dup.test/", &t, why, sizeof(why)), SSRF_ALLOW);
	assert_int_equal(t.naddrs, 1);
	ssrf_policy_free(p);
}

/* The intake bound's keys: every spelling of one destination gives the
 * same keys (or shares an address key), each key once. */
static void test_pending_keys(void **state)
{
	static const struct {
		const char *url;
		const char *keys;
	} cases[] = {
	    /* one IPv6 address, four spellings, any port: one /64 */
	    {"http://[::1]:9/", "[\"::/64\"]"},
	    {"http://[0::1]:9/", "[\"::/64\"]"},
	    {"http://[0:0::1]:10/", "[\"::/64\"]"},
	    {"http://[0000::0001]/", "[\"::/64\"]"},
	    {"http://[0:0:0:0:0:0:0:1]/x", "[\"::/64\"]"},
	    /* IPv4 literal and a name for it share 127.0.0.1/32 */
	    {"http://127.0.0.1:9/", "[\"127.0.0.1/32\"]"},
	    {"http://localhost:9/", "[\"localhost\",\"127.0.0.1/32\",\"::/64\"]"},
	    {"http://LOCALHOST/", "[\"localhost\",\"127.0.0.1/32\",\"::/64\"]"},
	    {"http://localhost./", "[\"localhost\",\"127.0.0.1/32\",\"::/64\"]"},
	    /* wildcard DNS: different names, the same address keys */
	    {"http://a.wild.test/",
	     "[\"a.wild.test\",\"93.184.216.34/32\",\"2606:2800:220:1::/64\"]"},
	    {"http://b.wild.test/",
	     "[\"b.wild.test\",\"93.184.216.34/32\",\"2606:2800:220:1::/64\"]"},
	    /* one /64 is one key; another /64 another */
	    {"http://site64.test/",
	     "[\"site64.test\",\"2606:2800:220:1::/64\",\"2606:2800:220:2::/64\"]"},
	    {"http://[2606:2800:220:1:ffff:ffff:ffff:ffff]/", "[\"2606:2800:220:1::/64\"]"},
	    /* NAT64 reaches the IPv4 it carries */
	    {"http://nat64.test/", "[\"nat64.test\",\"8.8.8.8/32\"]"},
	    {"http://[64:ff9b::8.8.8.8]/", "[\"8.8.8.8/32\"]"},
	    {"http://8.8.8.8/", "[\"8.8.8.8/32\"]"},
	    {"http://dup.test/", "[\"dup.test\",\"8.8.8.8/32\"]"},
	};
	struct ssrf_policy *p = policy(true, "", "");
	struct ssrf_target t;
	char why[SSRF_REASON_MAX];
	char keys[SSRF_KEYS_MAX];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (ssrf_check_url(p, cases[i].url, &t, why, sizeof(why)) != SSRF_ALLOW)
			fail_msg("%s: refused: %s", cases[i].url, why);
		assert_true(ssrf_pending_keys(&t, keys, sizeof(keys)));
		if (strcmp(keys, cases[i].keys) != 0)
			fail_msg("%s: keys %s, want %s", cases[i].url, keys, cases[i].keys);
	}
	/* too small a buffer: false and an empty string, never a cut array */
	assert_int_equal(ssrf_check_url(p, "http://localhost/", &t, why, sizeof(why)), SSRF_ALLOW);
	assert_false(ssrf_pending_keys(&t, keys, 10));
	assert_string_equal(keys, "");
	assert_false(ssrf_pending_keys(&t, keys, 0));
	/* the longest host and the most addresses still fit SSRF_KEYS_MAX */
	memset(&t, 0, sizeof(t));
	memset(t.url.host, 'a', sizeof(t.url.host) - 1);
	t.naddrs = SSRF_MAX_ADDRS;
	for (int i = 0; i < SSRF_MAX_ADDRS; i++) {
		char a[64];
		snprintf(a, sizeof(a), "2606:2800:%x:ffff:ffff:ffff:ffff:ffff", i);
		assert_int_equal(fill(a, &t.addrs[i]), 1);
	}
	assert_true(ssrf_pending_keys(&t, keys, sizeof(keys)));
	ssrf_policy_free(p);
}

/* curl hands the callback a struct curl_sockaddr whose addr member is
 * followed by room for a sockaddr_storage (Curl_sockaddr_ex); so must we. */
union csa_room {
	struct curl_sockaddr a;
	unsigned char room[sizeof(struct curl_sockaddr) + sizeof(struct sockaddr_storage)];
};

static struct curl_sockaddr *csa(union csa_room *r, const char *text)
{
	struct sockaddr_storage ss;

	memset(r, 0, sizeof(*r));
	assert_int_equal(fill(text, &ss), 1);
	r->a.family = ss.ss_family;
	r->a.socktype = SOCK_STREAM;
	r->a.protocol = IPPROTO_TCP;
	r->a.addrlen =
	    ss.ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
	memcpy(&r->a.addr, &ss, r->a.addrlen);
	return &r->a;
}

/* The open-socket callback, called directly: a socket is made (never
 * connected) for an allowed address, none for a denied one. */
static void test_open_socket(void **state)
{
	static const struct {
		const char *addr;
		bool strict_ok, relaxed_ok;
	} cases[] = {
	    {"8.8.8.8", true, true},          {"2606:4700:4700::1111", true, true},
	    {"127.0.0.1", false, true},       {"::1", false, true},
	    {"10.0.0.1", false, true},        {"169.254.169.254", false, false},
	    {"0.0.0.0", false, false},        {"::ffff:127.0.0.1", false, false},
	    {"64:ff9b::7f00:1", false, true}, {"224.0.0.1", false, false},
	};
	struct ssrf_policy *strictp = policy(false, "", "");
	struct ssrf_policy *relaxedp = policy(true, "", "");

	(void)state;
	for (size_t i = 0; i < COUNT(cases); i++) {
		union csa_room r;
		struct curl_sockaddr *a = csa(&r, cases[i].addr);
		curl_socket_t s1 = ssrf_open_socket(strictp, CURLSOCKTYPE_IPCXN, a);
		curl_socket_t s2 = ssrf_open_socket(relaxedp, CURLSOCKTYPE_IPCXN, a);

		if ((s1 != CURL_SOCKET_BAD) != cases[i].strict_ok ||
		    (s2 != CURL_SOCKET_BAD) != cases[i].relaxed_ok)
			fail_msg("%s: strict %d relaxed %d", cases[i].addr, s1, s2);
		if (s1 != CURL_SOCKET_BAD)
			close(s1);
		if (s2 != CURL_SOCKET_BAD)
			close(s2);
	}
	{
		union csa_room r;
		struct curl_sockaddr *a = csa(&r, "8.8.8.8");
		assert_int_equal(ssrf_open_socket(strictp, CURLSOCKTYPE_ACCEPT, a),
		                 CURL_SOCKET_BAD);
		a->family = AF_UNIX;
		a->addr.sa_family = AF_UNIX;
		assert_int_equal(ssrf_open_socket(strictp, CURLSOCKTYPE_IPCXN, a), CURL_SOCKET_BAD);
	}
	ssrf_policy_free(strictp);
	ssrf_policy_free(relaxedp);
}

/* a resolver that answers nonsense: more than asked, and non-IP families */
static int odd_resolve(const char *host, int timeout_ms, struct sockaddr_storage *addrs, int max,
                       void *arg)
{
	(void)host;
	(void)timeout_ms;
	(void)arg;
	for (int i = 0; i < max; i++) {
		memset(&addrs[i], 0, sizeof(addrs[i]));
		addrs[i].ss_family = AF_UNIX;
	}
	return max + 5;
}

static void test_odd_resolver_and_oom(void **state)
{
	struct config c;
	struct ssrf_policy *p;
	struct ssrf_target t;
	char why[SSRF_REASON_MAX];

	(void)state;
	p = policy(false, "", "");
	ssrf_policy_set_resolver(p, odd_resolve, NULL);
	assert_int_equal(ssrf_check_url(p, "http://odd.test/", &t, why, sizeof(why)),
	                 SSRF_DENY_RESOLVE);
	/* NULL restores the system resolver; a literal never reaches it */
	ssrf_policy_set_resolver(p, NULL, NULL);
	assert_int_equal(ssrf_check_url(p, "http://8.8.8.8/", &t, why, sizeof(why)), SSRF_ALLOW);
	ssrf_policy_free(p);

	/* every allocation of ssrf_policy_new failing in turn: NULL, nothing leaks */
	memset(&c, 0, sizeof(c));
	snprintf(c.callback_deny_cidrs, sizeof(c.callback_deny_cidrs), "10.0.0.0/8");
	snprintf(c.callback_allow_cidrs, sizeof(c.callback_allow_cidrs), "10.1.0.0/16");
	for (long n = 0; n < 3; n++) {
		alloc_fail_after(n);
		p = ssrf_policy_new(&c, why, sizeof(why));
		alloc_fail_after(-1);
		assert_null(p);
		assert_string_equal(why, "out of memory");
	}
	alloc_fail_after(3);
	p = ssrf_policy_new(&c, why, sizeof(why));
	alloc_fail_after(-1);
	assert_non_null(p);
	ssrf_policy_free(p);
}

/* ---- libcurl transfers to a listener on 127.0.0.1 ------------------------ */

struct listener {
	int fd;
	int stop[2]; /* written to when the transfer is over */
	int port;
	int accepted;
	char response[256];
	char request[2048];
};

static void listener_open(struct listener *l, const char *response)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	memset(l, 0, sizeof(*l));
	snprintf(l->response, sizeof(l->response), "%s", response);
	l->fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(l->fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(l->fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(l->fd, 8), 0);
	assert_int_equal(getsockname(l->fd, (struct sockaddr *)&sin, &len), 0);
	l->port = ntohs(sin.sin_port);
}

/* Serves connections, one response each, until told to stop (or 5 s). */
static void *listener_main(void *arg)
{
	struct listener *l = arg;

	for (int round = 0; round < 4; round++) {
		struct pollfd pfd[2] = {{l->fd, POLLIN, 0}, {l->stop[0], POLLIN, 0}};
		int c;
		ssize_t got;

		if (poll(pfd, 2, 5000) <= 0 || (pfd[0].revents & POLLIN) == 0)
			break;
		c = accept(l->fd, NULL, NULL);
		if (c < 0)
			break;
		l->accepted++;
		got = recv(c, l->request, sizeof(l->request) - 1, 0);
		if (got > 0)
			l->request[got] = '\0';
		if (send(c, l->response, strlen(l->response), MSG_NOSIGNAL) < 0) {
			/* the client went away; nothing to do */
		}
		close(c);
	}
	return NULL;
}

static size_t discard(char *ptr, size_t size, size_t nmemb, void *arg)
{
	(void)ptr;
	(void)arg;
	return size * nmemb;
}

/* One transfer to url through ssrf_curl_setup(t); returns the curl result
 * and the HTTP status in *status. */
static CURLcode transfer(struct ssrf_policy *p, const struct ssrf_target *t, const char *url,
                         struct listener *l, long *status)
{
	pthread_t th;
	CURL *h = curl_easy_init();
	struct curl_slist *pins = NULL;
	CURLcode rc;

	assert_non_null(h);
	assert_int_equal(pipe(l->stop), 0);
	assert_int_equal(pthread_create(&th, NULL, listener_main, l), 0);
	assert_int_equal(ssrf_curl_setup(p, h, t, &pins), CURLE_OK);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 3000L);
	rc = curl_easy_perform(h);
	assert_int_equal(write(l->stop[1], "x", 1), 1);
	*status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	curl_easy_cleanup(h);
	curl_slist_free_all(pins);
	pthread_join(th, NULL);
	close(l->stop[0]);
	close(l->stop[1]);
	return rc;
}

/* A name that no DNS could resolve (.invalid) reaches the listener: curl
 * used the pinned address and did no lookup of its own. The environment's
 * proxy is ignored, and a 302 is returned, not followed. */
static void test_curl_pins_and_ignores_proxy(void **state)
{
	struct ssrf_policy *p = policy(true, "", "");
	struct listener l, other;
	struct ssrf_target t;
	char url[128], why[SSRF_REASON_MAX], resp[256];
	long status;

	(void)state;
	listener_open(&other, "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
	snprintf(resp, sizeof(resp),
	         "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:%d/\r\nContent-Length: "
	         "0\r\nConnection: close\r\n\r\n",
	         other.port);
	listener_open(&l, resp);
	setenv("http_proxy", "http://127.0.0.1:9/", 1);
	setenv("HTTP_PROXY", "http://127.0.0.1:9/", 1);
	setenv("ALL_PROXY", "http://127.0.0.1:9/", 1);

	snprintf(url, sizeof(url), "http://PINNED.invalid.:%d/cb", l.port);
	assert_int_equal(ssrf_check_url(p, url, &t, why, sizeof(why)), SSRF_ALLOW);
	assert_int_equal(transfer(p, &t, url, &l, &status), CURLE_OK);
	assert_int_equal(status, 302);
	assert_int_equal(l.accepted, 1);
	assert_non_null(strstr(l.request, "GET /cb "));
	assert_int_equal(other.accepted, 0); /* the redirect was not followed */

	unsetenv("http_proxy");
	unsetenv("HTTP_PROXY");
	unsetenv("ALL_PROXY");
	close(l.fd);
	close(other.fd);
	ssrf_policy_free(p);
}

/* The connect-time check: even when a target carries a denied address
 * (here forged: the check would have refused it), curl is refused the
 * socket and nothing connects. */
static void test_curl_refuses_at_connect(void **state)
{
	struct ssrf_policy *relaxedp = policy(true, "", "");
	struct ssrf_policy *strictp = policy(false, "", "");
	struct listener l;
	struct ssrf_target t;
	char url[128], why[SSRF_REASON_MAX];
	long status;

	(void)state;
	listener_open(&l, "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n");
	snprintf(url, sizeof(url), "http://localhost:%d/", l.port);
	assert_int_equal(ssrf_check_url(relaxedp, url, &t, why, sizeof(why)), SSRF_ALLOW);
	assert_int_equal(transfer(strictp, &t, url, &l, &status), CURLE_COULDNT_CONNECT);
	assert_int_equal(l.accepted, 0);
	/* the same transfer under the policy that allowed it goes through */
	assert_int_equal(transfer(relaxedp, &t, url, &l, &status), CURLE_OK);
	assert_int_equal(status, 204);
	assert_int_equal(l.accepted, 1);
	/* an IP literal gets no pin list but the same connect-time check */
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", l.port);
	assert_int_equal(ssrf_check_url(relaxedp, url, &t, why, sizeof(why)), SSRF_ALLOW);
	l.accepted = 0;
	assert_int_equal(transfer(strictp, &t, url, &l, &status), CURLE_COULDNT_CONNECT);
	assert_int_equal(l.accepted, 0);
	close(l.fd);
	ssrf_policy_free(relaxedp);
	ssrf_policy_free(strictp);
}

static void test_protocols(void **state)
{
	struct ssrf_policy *p = policy(true, "", "");
	struct ssrf_target t;
	struct curl_slist *pins = NULL;
	char why[SSRF_REASON_MAX];
	CURL *h = curl_easy_init();

	(void)state;
	/* a handle set up for a name, its pin list freed, then reused for a
	 * literal: the handle must not keep the freed list (ASan would see it) */
	assert_int_equal(ssrf_check_url(p, "http://pinned.invalid:9/", &t, why, sizeof(why)),
	                 SSRF_ALLOW);
	assert_int_equal(ssrf_curl_setup(p, h, &t, &pins), CURLE_OK);
	assert_non_null(pins);
	curl_slist_free_all(pins);
	assert_int_equal(ssrf_check_url(p, "http://127.0.0.1:9/", &t, why, sizeof(why)),
	                 SSRF_ALLOW);
	assert_int_equal(ssrf_curl_setup(p, h, &t, &pins), CURLE_OK);
	assert_null(pins);
	curl_easy_setopt(h, CURLOPT_URL, "http://127.0.0.1:9/");
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 3000L);
	curl_easy_perform(h); /* loopback port 9: refused or answered, either will do */
	/* a URL of another scheme set by mistake is refused by curl itself */
	curl_easy_setopt(h, CURLOPT_URL, "file:///etc/passwd");
	assert_int_equal(curl_easy_perform(h), CURLE_UNSUPPORTED_PROTOCOL);
	curl_easy_cleanup(h);
	ssrf_policy_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_strict_table),
	    cmocka_unit_test(test_relaxed_table),
	    cmocka_unit_test(test_operator_table),
	    cmocka_unit_test(test_bad_cidrs),
	    cmocka_unit_test(test_rebinding),
	    cmocka_unit_test(test_target_contents),
	    cmocka_unit_test(test_pending_keys),
	    cmocka_unit_test(test_open_socket),
	    cmocka_unit_test(test_odd_resolver_and_oom),
	    cmocka_unit_test(test_curl_pins_and_ignores_proxy),
	    cmocka_unit_test(test_curl_refuses_at_connect),
	    cmocka_unit_test(test_protocols),
	};
	int rc;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	curl_global_cleanup();
	return rc;
}
