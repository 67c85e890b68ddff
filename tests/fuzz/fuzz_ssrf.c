/*
 * fuzz_ssrf: ssrf_check_url (lib/ssrf.c) with a stub resolver, so that
 * whatever a name "resolves" to is part of the input and nothing touches
 * the network.
 *
 * Input: byte 0 flags (bit 0: allow_private, bit 1: an operator deny and
 * allow list), byte 1 how many stub addresses (mod 5), then 17 bytes per
 * address (family selector, 16 address bytes), then the URL.
 *
 * Invariants of SSRF_ALLOW: curl_url parses the same URL to the same
 * scheme, host (for an IPv6 literal: the same address, as curl rewrites
 * the spelling) and port the guard recorded; at least one address is
 * pinned, each with that port, and each passes ssrf_check_addr again; an
 * IP-literal host pins exactly itself. A refusal always says why.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>
#include <curl/curl.h>

#include "config.h"
#include "fuzz.h"
#include "ssrf.h"

#define STUB_MAX 4

struct stub {
	int n;
	struct sockaddr_storage addrs[STUB_MAX];
};

static int stub_resolve(const char *host, int timeout_ms, struct sockaddr_storage *addrs, int max,
                        void *arg)
{
	const struct stub *s = arg;
	(void)host;
	(void)timeout_ms;
	int n = s->n < max ? s->n : max;
	memcpy(addrs, s->addrs, (size_t)n * sizeof addrs[0]);
	return n;
}

static struct stub stub;
static struct ssrf_policy *policies[4];

static struct ssrf_policy *policy(int flags)
{
	if (policies[flags])
		return policies[flags];
	struct config c;
	char why[256];
	memset(&c, 0, sizeof c);
	c.allow_private_callbacks = (flags & 1) != 0;
	c.dns_timeout_ms = 100;
	if (flags & 2) {
		snprintf(c.callback_deny_cidrs, sizeof c.callback_deny_cidrs,
		         "8.8.4.0/24,2606::/16");
		snprintf(c.callback_allow_cidrs, sizeof c.callback_allow_cidrs,
		         "10.20.0.0/16,fd00:1234::/32,2002::/16");
	}
	policies[flags] = ssrf_policy_new(&c, why, sizeof why);
	FUZZ_CHECK(policies[flags] != NULL);
	ssrf_policy_set_resolver(policies[flags], stub_resolve, &stub);
	return policies[flags];
}

static void take_addr(const uint8_t *b, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof *ss);
	switch (b[0] % 3) {
	case 0: {
		struct sockaddr_in *s4 = (struct sockaddr_in *)(void *)ss;
		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, b + 1, 4);
		break;
	}
	case 1: {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)(void *)ss;
		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, b + 1, 16);
		break;
	}
	default:
		ss->ss_family = AF_UNIX; /* not an IP address: must be ignored */
		break;
	}
}

static int port_of(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)(const void *)ss)->sin_port);
	return ntohs(((const struct sockaddr_in6 *)(const void *)ss)->sin6_port);
}

/* curl_url's view of url must be the guard's. */
static void check_curl_agrees(const char *url, const struct ssrf_target *t)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL, *port = NULL;
	FUZZ_CHECK(u != NULL);
	FUZZ_CHECK(curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK);
	FUZZ_CHECK(curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK);
	FUZZ_CHECK(strcasecmp(scheme, t->url.https ? "https" : "http") == 0);
	FUZZ_CHECK(curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK);
	size_t n = strlen(host);
	const char *h = host;
	if (n >= 2 && host[0] == '[' && host[n - 1] == ']') {
		h = host + 1;
		n -= 2;
	}
	if (t->url.host_is_ip && h != host) {
		/* curl rewrites IPv6 literals ([::01] is [::1]): the same address */
		char text[64];
		unsigned char a[16], b[16];
		FUZZ_CHECK(n < sizeof text);
		memcpy(text, h, n);
		text[n] = '\0';
		FUZZ_CHECK(inet_pton(AF_INET6, text, a) == 1);
		FUZZ_CHECK(inet_pton(AF_INET6, t->url.host, b) == 1);
		FUZZ_CHECK(memcmp(a, b, sizeof a) == 0);
	} else {
		FUZZ_CHECK(strlen(t->url.host) == n && strncasecmp(h, t->url.host, n) == 0);
	}
	FUZZ_CHECK(curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK);
	FUZZ_CHECK(atoi(port) == t->url.port);
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	int flags = data[0] & 3;
	int k = data[1] % (STUB_MAX + 1);
	size_t off = 2;
	stub.n = 0;
	for (int i = 0; i < k && off + 17 <= size; i++, off += 17)
		take_addr(data + off, &stub.addrs[stub.n++]);
	size_t ulen = size - off;
	char *url = malloc(ulen + 1);
	FUZZ_CHECK(url != NULL);
	memcpy(url, data + off, ulen);
	url[ulen] = '\0';

	struct ssrf_policy *p = policy(flags);
	struct ssrf_target t;
	char why[SSRF_REASON_MAX];
	enum ssrf_verdict v = ssrf_check_url(p, url, &t, why, sizeof why);
	FUZZ_CHECK(memchr(why, '\0', sizeof why) != NULL);
	if (v == SSRF_ALLOW) {
		check_curl_agrees(url, &t);
		FUZZ_CHECK(t.naddrs >= 1 && t.naddrs <= SSRF_MAX_ADDRS);
		for (int i = 0; i < t.naddrs; i++) {
			char cls[SSRF_REASON_MAX];
			const struct sockaddr *sa = (const struct sockaddr *)&t.addrs[i];
			FUZZ_CHECK(sa->sa_family == AF_INET || sa->sa_family == AF_INET6);
			FUZZ_CHECK(port_of(&t.addrs[i]) == t.url.port);
			FUZZ_CHECK(ssrf_check_addr(p, sa, cls, sizeof cls) == SSRF_ALLOW);
		}
		if (t.url.host_is_ip) {
			unsigned char bin[16];
			const struct sockaddr_storage *a = &t.addrs[0];
			FUZZ_CHECK(t.naddrs == 1);
			if (a->ss_family == AF_INET) {
				FUZZ_CHECK(inet_pton(AF_INET, t.url.host, bin) == 1);
				FUZZ_CHECK(
				    memcmp(bin,
				           &((const struct sockaddr_in *)(const void *)a)->sin_addr,
				           4) == 0);
			} else {
				FUZZ_CHECK(inet_pton(AF_INET6, t.url.host, bin) == 1);
				FUZZ_CHECK(
				    memcmp(
				        bin,
				        &((const struct sockaddr_in6 *)(const void *)a)->sin6_addr,
				        16) == 0);
			}
		}
	} else {
		FUZZ_CHECK(v == SSRF_DENY_URL || v == SSRF_DENY_ADDRESS || v == SSRF_DENY_RESOLVE ||
		           v == SSRF_NOMEM);
		FUZZ_CHECK(why[0] != '\0');
	}
	free(url);
	return 0;
}
