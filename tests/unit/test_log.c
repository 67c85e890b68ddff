/*
 * test_log: the escaping of request data for log lines, class by class
 * (STYLE.md: test every class you escape), the length cut, and that a line
 * is one line whatever the data.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include "log.h"

static void test_escape_classes(void **state)
{
	static const struct {
		const char *in;
		size_t len;
		const char *out;
	} cases[] = {
	    {"plain text", 10, "\"plain text\""},
	    {"\"", 1, "\"\\\"\""},
	    {"\\", 1, "\"\\\\\""},
	    {"\n", 1, "\"\\n\""},
	    {"\r", 1, "\"\\r\""},
	    {"\t", 1, "\"\\t\""},
	    {"\a\b\f\v", 4, "\"\\x07\\x08\\x0c\\x0b\""},
	    {"\x1b[31m", 5, "\"\\x1b[31m\""},
	    {"a\0b", 3, "\"a\\x00b\""},
	    {"\x7f", 1, "\"\\x7f\""},
	    {"\xc3\xa9", 2, "\"\\xc3\\xa9\""},
	    {"\xff\xfe", 2, "\"\\xff\\xfe\""},
	    {"k=v event=forged", 16, "\"k=v event=forged\""},
	    {"", 0, "\"\""},
	    {"ab\"cd\ne\x01"
	     "fg",
	     10, "\"ab\\\"cd\\ne\\x01fg\""}, /* runs between escapes */
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct buf b;

		buf_init(&b, 4096);
		assert_int_equal(log_escape(&b, cases[i].in, cases[i].len), BUF_OK);
		assert_string_equal(buf_str(&b), cases[i].out);
		buf_free(&b);
	}
}

static void test_every_byte_is_printable_after_escape(void **state)
{
	char in[256];
	struct buf b;
	size_t i;

	(void)state;
	for (i = 0; i < 256; i++)
		in[i] = (char)i;
	buf_init(&b, 1 << 16);
	assert_int_equal(log_escape(&b, in, sizeof(in)), BUF_OK);
	for (i = 0; i < b.len; i++)
		assert_true(b.data[i] >= 0x20 && b.data[i] < 0x7f);
	buf_free(&b);
}

static void test_q_cut_and_ring(void **state)
{
	char big[1000];
	const char *a, *b;

	(void)state;
	memset(big, '\n', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	a = log_q(big);
	assert_true(strlen(a) < 256 * 2 + 8);
	assert_non_null(strstr(a, "...")); /* says it was cut */
	assert_null(strchr(a, '\n'));
	b = log_q("second");
	assert_string_equal(b, "\"second\"");
	assert_true(a != b); /* ring: the first is still intact */
	assert_non_null(strstr(a, "\\n\\n"));
	assert_string_equal(log_q(NULL), "-");
	assert_string_equal(log_qn("abcdef", 3), "\"abc\"");
}

static void test_line_is_one_line(void **state)
{
	int fds[2], saved;
	char out[8192];
	ssize_t n;

	(void)state;
	assert_int_equal(pipe(fds), 0);
	saved = dup(STDERR_FILENO);
	dup2(fds[1], STDERR_FILENO);
	log_init("test", L_INFO);
	log_event(L_DEBUG, "hidden", "x=1");
	log_event(L_INFO, "shown", "data=%s n=%d", log_q("evil\nlevel=error"), 7);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(fds[1]);
	n = read(fds[0], out, sizeof(out) - 1);
	close(fds[0]);
	assert_true(n > 0);
	out[n] = '\0';
	assert_null(strstr(out, "hidden"));
	assert_non_null(strstr(out, "level=info prog=test"));
	assert_non_null(strstr(out, "event=shown data=\"evil\\nlevel=error\" n=7\n"));
	assert_int_equal(strchr(out, '\n') - out, n - 1); /* exactly one line */
}

/* A fork's child logs its own pid: log_event keeps the pid as text per
 * thread and makes it again only after a fork (ids_forks), not per line. */
static void test_pid_after_fork(void **state)
{
	int fds[2], saved;
	char out[8192], want[64];

	(void)state;
	assert_int_equal(pipe(fds), 0);
	saved = dup(STDERR_FILENO);
	dup2(fds[1], STDERR_FILENO);
	log_init("test", L_INFO);
	log_event(L_INFO, "parent", "n=1"); /* the parent's pid is cached now */
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		log_event(L_INFO, "child", "n=2");
		_exit(0);
	}
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(fds[1]);
	ssize_t n = read(fds[0], out, sizeof(out) - 1);
	close(fds[0]);
	assert_true(n > 0);
	out[n] = '\0';
	snprintf(want, sizeof want, "pid=%ld event=parent", (long)getpid());
	assert_non_null(strstr(out, want));
	snprintf(want, sizeof want, "pid=%ld event=child", (long)pid);
	assert_non_null(strstr(out, want));
}

static void test_level_parse(void **state)
{
	(void)state;
	assert_int_equal(log_level_parse("debug"), L_DEBUG);
	assert_int_equal(log_level_parse("error"), L_ERROR);
	assert_int_equal(log_level_parse("Error"), -1);
	assert_int_equal(log_level_parse(""), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_escape_classes),
	    cmocka_unit_test(test_every_byte_is_printable_after_escape),
	    cmocka_unit_test(test_q_cut_and_ring),
	    cmocka_unit_test(test_line_is_one_line),
	    cmocka_unit_test(test_pid_after_fork),
	    cmocka_unit_test(test_level_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
