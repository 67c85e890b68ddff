/*
 * test_clientaddr: the address a request is accounted to (lib/clientaddr):
 * REMOTE_ADDR unless it is a trusted proxy, then the right-most untrusted
 * X-Forwarded-For hop; spoofed entries, garbage, empty elements, ports and
 * brackets, normalization of IPv4-mapped and long IPv6 forms, prefixes off
 * byte boundaries, trust of IPv4 by IPv6 prefixes, the 64-hop bound and a
 * short output buffer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include "cidr.h"
#include "clientaddr.h"

static void test_client_addr(void **state)
{
	static const struct {
		const char *trusted, *remote, *xff, *want;
	} cases[] = {
	    /* no trust: REMOTE_ADDR, whatever the header says */
	    {"", "203.0.113.9", "1.1.1.1", "203.0.113.9"},
	    {"", "100.64.0.100", NULL, "100.64.0.100"}, /* one, two, three digits and 0 */
	    {"", "::ffff:0.9.10.255", NULL, "0.9.10.255"},
	    {"", "203.0.113.9", NULL, "203.0.113.9"},
	    /* untrusted remote: the header is ignored */
	    {"127.0.0.1/32", "203.0.113.9", "1.1.1.1", "203.0.113.9"},
	    /* trusted remote, no header: the proxy itself */
	    {"127.0.0.1/32", "127.0.0.1", NULL, "127.0.0.1"},
	    {"127.0.0.1/32", "127.0.0.1", "", "127.0.0.1"},
	    /* right-most untrusted entry; spoofed entries to its left are ignored */
	    {"127.0.0.1/32", "127.0.0.1", "198.51.100.7", "198.51.100.7"},
	    {"127.0.0.1/32", "127.0.0.1", "6.6.6.6, 198.51.100.7", "198.51.100.7"},
	    {"127.0.0.1/32, 10.0.0.0/8", "127.0.0.1", "6.6.6.6, 198.51.100.7, 10.1.2.3",
	     "198.51.100.7"},
	    /* every hop trusted: the left-most */
	    {"10.0.0.0/8 127.0.0.1", "127.0.0.1", "10.0.0.5,10.0.0.6", "10.0.0.5"},
	    /* garbage right of the untrusted hop: keep the trusted hop */
	    {"127.0.0.1", "127.0.0.1", "198.51.100.7, unknown", "127.0.0.1"},
	    {"127.0.0.1, 10.0.0.0/8", "127.0.0.1", "198.51.100.7, bogus, 10.0.0.9", "10.0.0.9"},
	    /* empty elements are skipped; ports and brackets stripped */
	    {"127.0.0.1", "127.0.0.1", "198.51.100.7, ,", "198.51.100.7"},
	    {"127.0.0.1", "127.0.0.1", "198.51.100.7:4711", "198.51.100.7"},
	    {"127.0.0.1", "127.0.0.1", "[2001:db8::1]:443", "2001:db8::1"},
	    /* normalization: IPv4-mapped IPv6 and long IPv6 forms */
	    {"", "::ffff:192.0.2.1", NULL, "192.0.2.1"},
	    {"127.0.0.1", "::ffff:127.0.0.1", "2001:DB8:0:0:0:0:0:1", "2001:db8::1"},
	    {"::1", "::1", "192.0.2.44", "192.0.2.44"},
	    /* prefixes that do not fall on a byte boundary */
	    {"192.168.4.0/22", "192.168.7.255", "192.0.2.1", "192.0.2.1"},
	    {"192.168.4.0/22", "192.168.8.0", "192.0.2.1", "192.168.8.0"},
	    /* one address space: IPv6 prefixes covering ::ffff:a.b.c.d trust IPv4,
	     * IPv4 prefixes never trust IPv6 */
	    {"::/0", "10.0.0.1", "198.51.100.7", "198.51.100.7"},
	    {"::ffff:10.0.0.0/104", "10.0.0.1", "198.51.100.7", "198.51.100.7"},
	    {"::ffff:10.0.0.0/104", "::ffff:10.0.0.1", "198.51.100.7", "198.51.100.7"},
	    {"0.0.0.0/0", "2001:db8::1", "198.51.100.7", "2001:db8::1"},
	    {"0.0.0.0/0", "::ffff:192.0.2.1", "198.51.100.7", "198.51.100.7"},
	    /* a remote address that does not parse is used as it is */
	    {"127.0.0.1", "unix:/run/x", "1.2.3.4", "unix:/run/x"},
	    {"127.0.0.1", NULL, "1.2.3.4", ""},
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char why[128], out[CLIENTADDR_MAX];
		struct cidr_list *t =
		    cidr_list_new(cases[i].trusted, "CONSUMA_TRUSTED_PROXIES", why, sizeof(why));

		assert_non_null(t);
		clientaddr_pick(t, cases[i].remote, cases[i].xff, out, sizeof(out));
		if (strcmp(out, cases[i].want) != 0)
			fail_msg("case %zu: got \"%s\", want \"%s\"", i, out, cases[i].want);
		cidr_list_free(t);
	}
}

static void test_client_addr_many_hops(void **state)
{
	char xff[8192] = "198.51.100.7";
	char why[64], out[CLIENTADDR_MAX];
	struct cidr_list *t =
	    cidr_list_new("127.0.0.0/8", "CONSUMA_TRUSTED_PROXIES", why, sizeof(why));
	size_t len = strlen(xff);
	int i;

	(void)state;
	for (i = 0; i < 200; i++)
		len += (size_t)snprintf(xff + len, sizeof(xff) - len, ", 127.0.0.%d", i % 250);
	clientaddr_pick(t, "127.0.0.1", xff, out, sizeof(out));
	/* the walk stops after 64 hops, on a trusted address, never past the buffer */
	assert_true(strncmp(out, "127.0.0.", 8) == 0);
	clientaddr_pick(t, "127.0.0.1", xff, out, 4);
	assert_int_equal(strlen(out), 3);
	cidr_list_free(t);
}

static void test_client_addr_no_list(void **state)
{
	char out[CLIENTADDR_MAX] = "x";

	(void)state;
	/* no list trusts nobody; an empty buffer is left alone */
	clientaddr_pick(NULL, "::ffff:127.0.0.1", "198.51.100.7", out, sizeof(out));
	assert_string_equal(out, "127.0.0.1");
	clientaddr_pick(NULL, "127.0.0.1", "198.51.100.7", out, 0);
	assert_string_equal(out, "127.0.0.1");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_client_addr),
	    cmocka_unit_test(test_client_addr_many_hops),
	    cmocka_unit_test(test_client_addr_no_list),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
