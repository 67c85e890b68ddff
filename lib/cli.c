/*
 * cli: the daemons' shared start-up front (see cli.h).
 */
#include "cli.h"

#include <stdarg.h>
#include <string.h>

#include "config.h"
#include "log.h"

static void describe_line(const char *name, const char *type_and_range, const char *default_value,
                          const char *help, void *arg)
{
	fprintf((FILE *)arg, "  %-36s %s (default: %s)\n      %s\n", name, type_and_range,
	        default_value, help);
}

void cli_help(FILE *f, const struct cli_program *p)
{
	for (size_t i = 0; p->synopsis[i] != NULL; i++)
		fprintf(f, "%s %s %s\n", i == 0 ? "Usage:" : "      ", p->name, p->synopsis[i]);
	fprintf(f,
	        "\n%s\n"
	        "Exit codes: %d clean stop, %d runtime failure, %d bad configuration or usage.\n\n"
	        "Configuration (environment):\n",
	        p->about, CLI_EXIT_OK, CLI_EXIT_RUNTIME, CLI_EXIT_USAGE);
	config_describe(describe_line, f);
}

bool cli_answered(const struct cli_program *p, const char *arg)
{
	if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
		cli_help(stdout, p);
		return true;
	}
	if (strcmp(arg, "--version") == 0 || strcmp(arg, "-V") == 0) {
		printf("%s %s\n", p->name, CONSUMA_VERSION);
		return true;
	}
	return false;
}

int cli_fail(int code, const char *step, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	if (vsnprintf(msg, sizeof msg, fmt, ap) < 0)
		msg[0] = '\0';
	va_end(ap);
	log_event(L_ERROR, "start.failed", "step=%s exit=%d error=%s", step, code, log_q(msg));
	return code;
}
