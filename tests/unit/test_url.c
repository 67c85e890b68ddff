/*
 * test_url: the callback URL parser, one table of URLs with the expected
 * error (or the parts on success). Address verdicts are test_ssrf's; this
 * table is about syntax: every IPv4 spelling, IPv6 literals and zone ids,
 * userinfo and the "#@" / "?@" tricks, bad bytes, ports, schemes, lengths.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "url.h"

struct url_case {
	const char *url;
	enum url_err want;
	const char *host; /* on URL_OK */
	int port;
	bool https;
	bool is_ip;
};

#define OK(u, h, p, s, ip)                                                                         \
	{                                                                                          \
		u, URL_OK, h, p, s, ip                                                             \
	}
#define BAD(u, e)                                                                                  \
	{                                                                                          \
		u, e, NULL, 0, false, false                                                        \
	}

static const struct url_case cases[] = {
    /* accepted */
    OK("http://example.com/", "example.com", 80, false, false),
    OK("https://example.com/", "example.com", 443, true, false),
    OK("http://example.com", "example.com", 80, false, false),
    OK("HTTP://EXAMPLE.COM/Path", "example.com", 80, false, false),
    OK("HtTpS://Example.Com:8443/a?b=c#d", "example.com", 8443, true, false),
    OK("http://example.com:1/", "example.com", 1, false, false),
    OK("http://example.com:65535/", "example.com", 65535, false, false),
    OK("http://example.com./", "example.com.", 80, false, false),
    OK("http://xn--bcher-kva.example/", "xn--bcher-kva.example", 80, false, false),
    OK("http://my_host.example/", "my_host.example", 80, false, false),
    OK("http://a-b.example/", "a-b.example", 80, false, false),
    OK("http://localhost:9000/callback", "localhost", 9000, false, false),
    OK("http://1.2.3.example/", "1.2.3.example", 80, false, false),
    OK("http://0x7f.example/", "0x7f.example", 80, false, false),
    OK("http://8.8.8.8/", "8.8.8.8", 80, false, true),
    OK("http://0.0.0.0/", "0.0.0.0", 80, false, true),
    OK("http://255.255.255.255/", "255.255.255.255", 80, false, true),
    OK("https://127.0.0.1:8443/x", "127.0.0.1", 8443, true, true),
    OK("http://10.0.0.1?q=1", "10.0.0.1", 80, false, true),
    OK("http://10.0.0.1#frag", "10.0.0.1", 80, false, true),
    OK("http://[::1]/", "::1", 80, false, true),
    OK("http://[::1]:8080/", "::1", 8080, false, true),
    OK("http://[2001:DB8::1]/", "2001:db8::1", 80, false, true),
    OK("http://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1", 80, false, true),
    OK("http://[0:0:0:0:0:ffff:7f00:1]/", "0:0:0:0:0:ffff:7f00:1", 80, false, true),
    /* the fragment and query are not the authority: the host is what is before them */
    OK("http://8.8.8.8#@127.0.0.1/", "8.8.8.8", 80, false, true),
    OK("http://8.8.8.8?@127.0.0.1/", "8.8.8.8", 80, false, true),
    OK("http://127.0.0.1#@8.8.8.8/", "127.0.0.1", 80, false, true),
    OK("http://8.8.8.8/@127.0.0.1", "8.8.8.8", 80, false, true),
    OK("http://8.8.8.8/a@b:c@d", "8.8.8.8", 80, false, true),

    /* IPv4 in any but plain dotted decimal form */
    BAD("http://127.1/", URL_BAD_IPV4),
    BAD("http://127.0.1/", URL_BAD_IPV4),
    BAD("http://2130706433/", URL_BAD_IPV4),
    BAD("http://0x7f000001/", URL_BAD_IPV4),
    BAD("http://0x7f.0.0.1/", URL_BAD_IPV4),
    BAD("http://0x7F.0x0.0x0.0x1/", URL_BAD_IPV4),
    BAD("http://0177.0.0.1/", URL_BAD_IPV4),
    BAD("http://017700000001/", URL_BAD_IPV4),
    BAD("http://127.0.0.01/", URL_BAD_IPV4),
    BAD("http://127.000.000.001/", URL_BAD_IPV4),
    BAD("http://127.0.0.1./", URL_BAD_IPV4),
    BAD("http://8.8.8.8./", URL_BAD_IPV4),
    BAD("http://256.0.0.1/", URL_BAD_IPV4),
    BAD("http://1.2.3.4.5/", URL_BAD_IPV4),
    BAD("http://1.2.3.0x4/", URL_BAD_IPV4),
    BAD("http://0/", URL_BAD_IPV4),
    BAD("http://0x/", URL_BAD_IPV4),
    BAD("http://example.123/", URL_BAD_IPV4),
    BAD("http://example.0x10/", URL_BAD_IPV4),
    BAD("http://1234/", URL_BAD_IPV4),

    /* hosts */
    BAD("http:///", URL_BAD_HOST),
    BAD("http://", URL_BAD_HOST),
    BAD("http://:80/", URL_BAD_HOST),
    BAD("http:///example.com/", URL_BAD_HOST),
    BAD("http://ex%41mple.com/", URL_BAD_HOST),
    BAD("http://%38.8.8.8/", URL_BAD_HOST),
    BAD("http://8.8.8.8%2f@127.0.0.1/", URL_USERINFO),
    BAD("http://example..com/", URL_BAD_HOST),
    BAD("http://.example.com/", URL_BAD_HOST),
    BAD("http://./", URL_BAD_HOST),
    BAD("http://exa!mple.com/", URL_BAD_HOST),
    BAD("http://exa$mple.com/", URL_BAD_HOST),
    BAD("http://exa=mple.com/", URL_BAD_HOST),
    BAD("http://[::1/", URL_BAD_HOST),
    BAD("http://::1/", URL_BAD_HOST),
    BAD("http://[::1]x/", URL_BAD_HOST),
    BAD("http://[]/", URL_BAD_HOST),
    BAD("http://[12345::]/", URL_BAD_HOST),
    BAD("http://[::ffff:127.0.0.01]/", URL_BAD_HOST),
    BAD("http://[v1.x]/", URL_BAD_HOST),
    BAD("http://[fe80::1%25eth0]/", URL_BAD_HOST),
    BAD("http://[fe80::1%eth0]/", URL_BAD_HOST),
    BAD("http://[::1%251]/", URL_BAD_HOST),
    BAD("http://[127.0.0.1]/", URL_BAD_HOST),

    /* userinfo */
    BAD("http://user@example.com/", URL_USERINFO),
    BAD("http://user:pass@example.com/", URL_USERINFO),
    BAD("http://:@example.com/", URL_USERINFO),
    BAD("http://@example.com/", URL_USERINFO),
    BAD("http://8.8.8.8@127.0.0.1/", URL_USERINFO),
    BAD("http://example.com:80@127.0.0.1/", URL_USERINFO),
    BAD("http://[::1]@example.com/", URL_USERINFO),

    /* bytes */
    BAD("http://8.8.8.8\\@127.0.0.1/", URL_BAD_CHAR),
    BAD("http:\\\\8.8.8.8\\", URL_BAD_CHAR),
    BAD("http://8.8.8.8/a\\b", URL_BAD_CHAR),
    BAD("http://8.8.8.8/ x", URL_BAD_CHAR),
    BAD(" http://8.8.8.8/", URL_BAD_CHAR),
    BAD("http://8.8.8.8/\t", URL_BAD_CHAR),
    BAD("http://8.8.8.8/\n", URL_BAD_CHAR),
    BAD("http://8.8.\r8.8/", URL_BAD_CHAR),
    BAD("http://8.8.8.8/\x01", URL_BAD_CHAR),
    BAD("http://8.8.8.8/\x7f", URL_BAD_CHAR),
    BAD("http://8.8.8.8/\xff", URL_BAD_CHAR),
    BAD("http://b\xc3\xbc"
        "cher.example/",
        URL_BAD_CHAR),

    /* ports */
    BAD("http://example.com:0/", URL_BAD_PORT),
    BAD("http://example.com:00/", URL_BAD_PORT),
    BAD("http://example.com:65536/", URL_BAD_PORT),
    BAD("http://example.com:99999/", URL_BAD_PORT),
    BAD("http://example.com:123456/", URL_BAD_PORT),
    BAD("http://example.com:99999999999999999999/", URL_BAD_PORT),
    BAD("http://example.com:080/", URL_BAD_PORT),
    BAD("http://example.com:/", URL_BAD_PORT),
    BAD("http://example.com:-1/", URL_BAD_PORT),
    BAD("http://example.com:+80/", URL_BAD_PORT),
    BAD("http://example.com:8x/", URL_BAD_PORT),
    BAD("http://example.com:80:80/", URL_BAD_PORT),
    BAD("http://[::1]:0/", URL_BAD_PORT),
    BAD("http://[::1]:65536/", URL_BAD_PORT),

    /* schemes */
    BAD("ftp://example.com/", URL_BAD_SCHEME),
    BAD("file:///etc/passwd", URL_BAD_SCHEME),
    BAD("gopher://example.com/", URL_BAD_SCHEME),
    BAD("dict://example.com:11211/", URL_BAD_SCHEME),
    BAD("ws://example.com/", URL_BAD_SCHEME),
    BAD("httpx://example.com/", URL_BAD_SCHEME),
    BAD("http:/example.com/", URL_BAD_SCHEME),
    BAD("http:example.com", URL_BAD_SCHEME),
    BAD("//example.com/", URL_BAD_SCHEME),
    BAD("example.com", URL_BAD_SCHEME),
    BAD("javascript:alert(1)", URL_BAD_SCHEME),
    BAD("", URL_MALFORMED),
};

static void test_table(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct url_case *c = &cases[i];
		struct url_parts p;
		char why[256];
		enum url_err got;

		memset(&p, 0x5a, sizeof(p));
		got = url_parse(c->url, &p, why, sizeof(why));
		if (got != c->want)
			fail_msg("case %zu [%s]: got %s (%s), want %s", i, c->url,
			         url_strerror(got), why, url_strerror(c->want));
		if (got != URL_OK) {
			if (strncmp(why, "callback_url: ", 14) != 0)
				fail_msg("case %zu [%s]: reason [%s] does not name the field", i,
				         c->url, why);
			continue;
		}
		if (strcmp(p.host, c->host) != 0 || p.port != c->port || p.https != c->https ||
		    p.host_is_ip != c->is_ip)
			fail_msg("case %zu [%s]: got host=%s port=%d https=%d ip=%d", i, c->url,
			         p.host, p.port, p.https, p.host_is_ip);
	}
}

static void test_lengths(void **state)
{
	char url[URL_MAX_BYTES + 2];
	char label[80];
	char why[256];
	struct url_parts p;
	size_t n;

	(void)state;
	/* exactly 2048 bytes: accepted; 2049: refused */
	n = (size_t)snprintf(url, sizeof(url), "http://example.com/");
	memset(url + n, 'a', URL_MAX_BYTES - n);
	url[URL_MAX_BYTES] = '\0';
	assert_int_equal(url_parse(url, &p, why, sizeof(why)), URL_OK);
	url[URL_MAX_BYTES] = 'a';
	url[URL_MAX_BYTES + 1] = '\0';
	assert_int_equal(url_parse(url, &p, why, sizeof(why)), URL_TOO_LONG);

	/* a 63-byte label is fine, 64 is not */
	memset(label, 'a', 63);
	label[63] = '\0';
	snprintf(url, sizeof(url), "http://%s.example/", label);
	assert_int_equal(url_parse(url, &p, why, sizeof(why)), URL_OK);
	memset(label, 'a', 64);
	label[64] = '\0';
	snprintf(url, sizeof(url), "http://%s.example/", label);
	assert_int_equal(url_parse(url, &p, why, sizeof(why)), URL_BAD_HOST);

	/* a host of 254 bytes is too long */
	n = (size_t)snprintf(url, sizeof(url), "http://");
	for (int i = 0; i < 5; i++)
		n += (size_t)snprintf(
		    url + n, sizeof(url) - n, "%.50s.",
		    "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
	snprintf(url + n, sizeof(url) - n, "ccc/");
	assert_int_equal(url_parse(url, &p, why, sizeof(why)), URL_BAD_HOST);
}

static void test_null_and_why(void **state)
{
	char why[8];

	(void)state;
	assert_int_equal(url_parse(NULL, NULL, NULL, 0), URL_MALFORMED);
	/* out may be NULL (a pure check); why is cut, never overrun */
	assert_int_equal(url_parse("http://user@x/", NULL, why, sizeof(why)), URL_USERINFO);
	assert_int_equal(strlen(why), sizeof(why) - 1);
	assert_int_equal(url_parse("http://x.example/", NULL, NULL, 0), URL_OK);
	for (int e = URL_OK; e <= URL_NOMEM; e++)
		assert_non_null(url_strerror((enum url_err)e));
	assert_string_not_equal(url_strerror(URL_BAD_PORT), url_strerror(URL_BAD_HOST));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table),
	    cmocka_unit_test(test_lengths),
	    cmocka_unit_test(test_null_and_why),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
