/*
 * cli: what consuma-fcgi's and consuma-deliverer's main.c share before they
 * serve: one --help layout (the usage forms, what the program does, the
 * exit codes, then every CONSUMA_* variable of config.c's table, one
 * layout that test_docs.sh reads), --version and -V, and one way to report
 * a start-up failure: a log line (event=start.failed step=... error=...)
 * on stderr, and the exit code, 2 for bad usage or configuration, 1 for
 * anything else.
 *
 * Thread safe as log.h is; called from main() only.
 */
#ifndef CONSUMA_CLI_H
#define CONSUMA_CLI_H

#include <stdbool.h>
#include <stdio.h>

#define CLI_EXIT_OK      0
#define CLI_EXIT_RUNTIME 1 /* a runtime failure: the program could not start or serve */
#define CLI_EXIT_USAGE   2 /* bad arguments or configuration */

struct cli_program {
	const char *name;            /* "consuma-fcgi" */
	const char *const *synopsis; /* the argument list of each usage form; NULL ends it */
	const char *about;           /* what it does, signals: whole lines, each ending "\n" */
};

/* Writes the --help text of p to f. */
void cli_help(FILE *f, const struct cli_program *p);

/* --help/-h (the help on stdout) and --version/-V ("NAME VERSION"): true
 * when arg was one of them and has been answered (exit CLI_EXIT_OK). */
bool cli_answered(const struct cli_program *p, const char *arg);

/* Reports a start-up failure at step ("config", "store", ...) with the
 * message of fmt, and returns code, for `return cli_fail(...)`. */
int cli_fail(int code, const char *step, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
