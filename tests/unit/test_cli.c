/*
 * test_cli: the daemons' shared start-up front (lib/cli.h): the --help
 * layout (usage forms, about, exit codes, every CONSUMA_* variable in the
 * "NAME type (default: X)" form test_docs.sh reads), which arguments are
 * answered, and that a failure report returns its exit code.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cli.h"
#include "log.h"

static const char *const forms[] = {"[--socket PATH]", "--help | --version", NULL};
static const struct cli_program prog = {
    .name = "consuma-test",
    .synopsis = forms,
    .about = "Does a test.\n",
};

/* noinline: inlined, gcc 12's -Wdangling-pointer takes the buffer
 * open_memstream wrote through &text for the local itself (Release). */
static __attribute__((noinline)) char *help_text(void)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	assert_non_null(f);
	cli_help(f, &prog);
	assert_int_equal(fclose(f), 0);
	return text;
}

static void test_help_layout(void **state)
{
	(void)state;
	char *text = help_text();
	const char *head = "Usage: consuma-test [--socket PATH]\n"
	                   "       consuma-test --help | --version\n"
	                   "\n"
	                   "Does a test.\n"
	                   "\n"
	                   "Exit codes: 0 clean stop, 1 runtime failure, 2 bad configuration or "
	                   "usage.\n"
	                   "\n"
	                   "Configuration (environment):\n"
	                   "  CONSUMA_";
	assert_memory_equal(text, head, strlen(head));
	/* each variable: a name line ending "(default: X)", then its help */
	const char *v = strstr(text, "  CONSUMA_MAX_BODY_BYTES ");
	assert_non_null(v);
	const char *eol = strchr(v, '\n');
	assert_non_null(eol);
	assert_memory_equal(eol - strlen("(default: 65536)"), "(default: 65536)",
	                    strlen("(default: 65536)"));
	assert_memory_equal(eol + 1, "      largest request body", 26);
	/* the secret's default is never shown, whatever the environment says */
	assert_non_null(strstr(text, "  CONSUMA_CALLBACK_SECRET "));
	free(text);
}

static void test_answered(void **state)
{
	static const char *const no[] = {"--socket", "-v", "--versions", "help", "", "--"};

	(void)state;
	for (size_t i = 0; i < sizeof no / sizeof no[0]; i++)
		assert_false(cli_answered(&prog, no[i]));
	/* these print to stdout */
	assert_true(cli_answered(&prog, "-V"));
	assert_true(cli_answered(&prog, "--version"));
	assert_true(cli_answered(&prog, "-h"));
	assert_true(cli_answered(&prog, "--help"));
}

static void test_fail_returns_code(void **state)
{
	(void)state;
	log_init("consuma-test", L_ERROR);
	assert_int_equal(cli_fail(CLI_EXIT_USAGE, "config", "X: %s", "bad"), 2);
	assert_int_equal(cli_fail(CLI_EXIT_RUNTIME, "store", "%s", "gone"), 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_help_layout),
	    cmocka_unit_test(test_answered),
	    cmocka_unit_test(test_fail_returns_code),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
