/*
 * test_cidr: the one CIDR grammar of lib/cidr.h. One prefix: what parses,
 * its family, bits and canonical text (host bits cleared), and every class
 * of bad input (no address, bad bits, sign, leading zeros, too many
 * digits, whitespace, an embedded NUL, brackets, zone ids, hex IPv4).
 * Containment at byte and non-byte boundaries, /0 and across families.
 * Lists: separators, empty entries, the entry named on failure, failed
 * allocations, and the list that each of the three former parsers saw
 * (config validation, the SSRF lists, the trusted proxies).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include "alloc.h"
#include "cidr.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static void test_parse(void **state)
{
	static const struct {
		const char *in;
		int family;        /* 0: refused */
		const char *canon; /* cidr_format of the result */
	} cases[] = {
	    {"10.0.0.0/8", AF_INET, "10.0.0.0/8"},
	    {"10.1.2.3/8", AF_INET, "10.0.0.0/8"},
	    {"1.2.3.4", AF_INET, "1.2.3.4/32"},
	    {"1.2.3.4/32", AF_INET, "1.2.3.4/32"},
	    {"192.168.7.255/22", AF_INET, "192.168.4.0/22"},
	    {"255.255.255.255/1", AF_INET, "128.0.0.0/1"},
	    {"0.0.0.0/0", AF_INET, "0.0.0.0/0"},
	    {"8.8.8.9/0", AF_INET, "0.0.0.0/0"},
	    {"10.0.0.0/08", AF_INET, "10.0.0.0/8"},
	    {"::1", AF_INET6, "::1/128"},
	    {"::/0", AF_INET6, "::/0"},
	    {"2001:DB8::/32", AF_INET6, "2001:db8::/32"},
	    {"2001:db8:0:0:0:0:0:1/64", AF_INET6, "2001:db8::/64"},
	    {"fe80::1/10", AF_INET6, "fe80::/10"},
	    {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/127", AF_INET6,
	     "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127"},
	    {"::ffff:1.2.3.4", AF_INET6, "::ffff:1.2.3.4/128"},
	    {"64:ff9b::/96", AF_INET6, "64:ff9b::/96"},
	    /* refused */
	    {"", 0, NULL},
	    {"/8", 0, NULL},
	    {"10.0.0.0/", 0, NULL},
	    {"10.0.0.0/33", 0, NULL},
	    {"::1/129", 0, NULL},
	    {"10.0.0.0/-1", 0, NULL},
	    {"10.0.0.0/+8", 0, NULL},
	    {"1.2.3.4/0008", 0, NULL}, /* config.c's parser took four digits */
	    {"::/1280", 0, NULL},
	    {"10.0.0.0/8x", 0, NULL},
	    {"10.0.0.0/ 8", 0, NULL},
	    {"1.2.3.4/8/8", 0, NULL},
	    {"1.2.3", 0, NULL},
	    {"1.2.3.4.5", 0, NULL},
	    {"256.1.1.1", 0, NULL},
	    {"010.0.0.1", 0, NULL},
	    {"0x0a.0.0.0/8", 0, NULL},
	    {"example.com", 0, NULL},
	    {"[::1]", 0, NULL},
	    {"[::1]/128", 0, NULL},
	    {"fe80::1%eth0", 0, NULL},
	    {"1.2.3.4:80", 0, NULL},
	    {" 1.2.3.4", 0, NULL},
	    {"1.2.3.4\t", 0, NULL}, /* lib/ratelimit's parser took tabs as separators */
	    {"::1::2", 0, NULL},
	};
	size_t i;

	(void)state;
	for (i = 0; i < COUNT(cases); i++) {
		struct cidr p;
		char text[CIDR_TEXT_MAX];
		bool ok = cidr_parse(cases[i].in, strlen(cases[i].in), &p);

		if (ok != (cases[i].family != 0))
			fail_msg("\"%s\": %s", cases[i].in, ok ? "accepted" : "refused");
		if (!ok)
			continue;
		assert_int_equal(p.family, cases[i].family);
		cidr_format(&p, text, sizeof(text));
		if (strcmp(text, cases[i].canon) != 0)
			fail_msg("\"%s\": \"%s\", want \"%s\"", cases[i].in, text, cases[i].canon);
		/* the canonical text parses back to itself */
		{
			struct cidr q;

			assert_true(cidr_parse(text, strlen(text), &q));
			assert_memory_equal(&p, &q, sizeof(p));
		}
	}
}

static void test_parse_span(void **state)
{
	static const char with_nul[] = "10.0.0.1\0/8";
	struct cidr p;

	(void)state;
	/* n bytes, not up to a NUL: the rest of the string is not looked at */
	assert_true(cidr_parse("10.0.0.0/8,junk", 10, &p));
	assert_int_equal(p.bits, 8);
	assert_true(cidr_parse("10.0.0.0/24", 8, &p));
	assert_int_equal(p.bits, 32);
	assert_false(cidr_parse("10.0.0.0/8", 9, &p));
	assert_false(cidr_parse("10.0.0.0", 0, &p));
	/* an embedded NUL is refused, in the address and in the bits */
	assert_false(cidr_parse(with_nul, sizeof(with_nul) - 1, &p));
	assert_false(cidr_parse("10.0.0.0/\0"
	                        "8",
	                        11, &p));
	assert_false(cidr_parse("10.0.0.1\0", 9, &p));
}

static void test_contains(void **state)
{
	static const struct {
		const char *prefix, *addr;
		bool want;
	} cases[] = {
	    {"192.168.4.0/22", "192.168.4.0", true},
	    {"192.168.4.0/22", "192.168.7.255", true},
	    {"192.168.4.0/22", "192.168.8.0", false},
	    {"192.168.4.0/22", "192.168.3.255", false},
	    {"10.0.0.0/8", "10.255.255.255", true},
	    {"10.0.0.0/8", "11.0.0.0", false},
	    {"1.2.3.4", "1.2.3.4", true},
	    {"1.2.3.4", "1.2.3.5", false},
	    {"128.0.0.0/1", "127.255.255.255", false},
	    {"128.0.0.0/1", "128.0.0.0", true},
	    {"0.0.0.0/0", "255.255.255.255", true},
	    {"::/0", "2001:db8::1", true},
	    {"2001:db8::/32", "2001:db8:ffff::1", true},
	    {"2001:db8::/32", "2001:db9::", false},
	    {"fe80::/10", "febf::1", true},
	    {"fe80::/10", "fec0::1", false},
	    {"::1", "::1", true},
	    {"::1", "::2", false},
	    /* families do not mix */
	    {"0.0.0.0/0", "::ffff:10.0.0.1", false},
	    {"::/0", "10.0.0.1", false},
	    {"::ffff:0:0/96", "10.0.0.1", false},
	    {"::ffff:0:0/96", "::ffff:10.0.0.1", true},
	};
	size_t i;

	(void)state;
	for (i = 0; i < COUNT(cases); i++) {
		unsigned char a[16];
		int family = strchr(cases[i].addr, ':') != NULL ? AF_INET6 : AF_INET;
		struct cidr p;

		assert_true(cidr_parse(cases[i].prefix, strlen(cases[i].prefix), &p));
		assert_int_equal(inet_pton(family, cases[i].addr, a), 1);
		if (cidr_contains(&p, family, a) != cases[i].want)
			fail_msg("%s in %s: want %s", cases[i].addr, cases[i].prefix,
			         cases[i].want ? "yes" : "no");
	}
}

static void test_format_cut(void **state)
{
	struct cidr p;
	char text[8];

	(void)state;
	assert_true(cidr_parse("192.168.100.0/24", 16, &p));
	cidr_format(&p, text, sizeof(text));
	assert_string_equal(text, "192.168");
	cidr_format(&p, text, 1);
	assert_string_equal(text, "");
}

static void test_list(void **state)
{
	static const struct {
		const char *list;
		bool ok;
		const char *bad; /* the entry why names */
	} cases[] = {
	    {"", true, NULL},
	    {"   ", true, NULL},
	    {",,", true, NULL},
	    {"127.0.0.1", true, NULL},
	    {"127.0.0.1/32", true, NULL},
	    {"::/0", true, NULL},
	    {"10.0.0.0/8, ::1/128,192.168.0.0/16", true, NULL},
	    {"2001:db8::/32 , 10.0.0.0/8", true, NULL},
	    {"  ,, 1.2.3.4/32 ,", true, NULL},
	    {"0.0.0.0/0 ::/0", true, NULL},
	    {"10.0.0.0/33", false, "10.0.0.0/33"},
	    {"::1/129", false, "::1/129"},
	    {"10.0.0.0/", false, "10.0.0.0/"},
	    {"10.0.0.0/8x", false, "10.0.0.0/8x"},
	    {"127.0.0.1/32x", false, "127.0.0.1/32x"},
	    {"10.0.0.0/-1", false, "10.0.0.0/-1"},
	    {"10.0.0", false, "10.0.0"},
	    {"1.2.3/24", false, "1.2.3/24"},
	    {"example.com", false, "example.com"},
	    {"1.2.3.4/0008", false, "1.2.3.4/0008"},
	    {"8.8.8.8, bad, 9.9.9.9", false, "bad"},
	    {"10.0.0.0/8\t::1", false, "10.0.0.0/8\t::1"},
	};
	size_t i;

	(void)state;
	for (i = 0; i < COUNT(cases); i++) {
		char why[128] = "", want[128];
		struct cidr_list *l =
		    cidr_list_new(cases[i].list, "CONSUMA_TRUSTED_PROXIES", why, sizeof(why));

		if ((l != NULL) != cases[i].ok)
			fail_msg("\"%s\": got %s (%s)", cases[i].list, l != NULL ? "ok" : "error",
			         why);
		assert_int_equal(cidr_list_valid(cases[i].list), cases[i].ok);
		if (l == NULL) {
			snprintf(want, sizeof(want), "CONSUMA_TRUSTED_PROXIES: '%s' is not a CIDR",
			         cases[i].bad);
			assert_string_equal(why, want);
		}
		cidr_list_free(l);
	}
	cidr_list_free(NULL);
}

static void test_list_contains(void **state)
{
	static const unsigned char v4[4] = {10, 1, 2, 3}, other[4] = {11, 0, 0, 1};
	unsigned char v6[16], v6_other[16];
	char why[128];
	struct cidr_list *l =
	    cidr_list_new("192.0.2.0/24, 10.0.0.0/8 2001:db8::/32", "X", why, sizeof(why));
	struct cidr_list *empty = cidr_list_new("", "X", why, sizeof(why));

	(void)state;
	assert_non_null(l);
	assert_non_null(empty);
	assert_int_equal(inet_pton(AF_INET6, "2001:db8::7", v6), 1);
	assert_int_equal(inet_pton(AF_INET6, "2001:db9::7", v6_other), 1);
	assert_true(cidr_list_contains(l, AF_INET, v4));
	assert_false(cidr_list_contains(l, AF_INET, other));
	assert_true(cidr_list_contains(l, AF_INET6, v6));
	assert_false(cidr_list_contains(l, AF_INET6, v6_other));
	assert_false(cidr_list_contains(empty, AF_INET, v4));
	assert_false(cidr_list_contains(NULL, AF_INET, v4));
	cidr_list_free(l);
	cidr_list_free(empty);
}

static void test_list_nomem(void **state)
{
	char why[64] = "";

	(void)state;
	alloc_fail_after(0);
	assert_null(cidr_list_new("10.0.0.0/8", "X", why, sizeof(why)));
	alloc_fail_after(-1);
	assert_string_equal(why, "out of memory");
	/* validating allocates nothing */
	alloc_fail_after(0);
	assert_true(cidr_list_valid("10.0.0.0/8, ::1"));
	alloc_fail_after(-1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse),      cmocka_unit_test(test_parse_span),
	    cmocka_unit_test(test_contains),   cmocka_unit_test(test_format_cut),
	    cmocka_unit_test(test_list),       cmocka_unit_test(test_list_contains),
	    cmocka_unit_test(test_list_nomem),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
