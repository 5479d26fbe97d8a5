/*
 * What the command lines of both binaries (rekey and rekey-guard) share: the
 * global options and the helpers that report a failure or print JSON. Kept
 * apart from src/cli.c, whose command table links every command and with it
 * SQLite, curl and the providers, none of which rekey-guard may load.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "rekey/cli.h"
#include "rekey/ctx.h"
#include "rekey/log.h"
#include "rekey/util.h"

int
rk_cli_fail(const struct rk_error *err, const char *fmt, ...)
{
	char what[300];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	rk_log_err(err, "%s", what);
	return rk_exit_code(err->code ? err->code : RK_EINTERNAL);
}

int
rk_cli_usage(const char *use, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "rekey: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n%s", use);
	return 2;
}

void
rk_print_json(const json_t *v)
{
	json_dumpf(v, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	fputc('\n', stdout);
}

/* Removes argv[i] (and its value when has_value) in place. */
static void
drop_args(int *argc, char **argv, int i, int count)
{
	for (int k = i; k + count <= *argc; k++)
		argv[k] = argv[k + count];
	*argc -= count;
}

int
rk_cli_global_options(struct rk_ctx *ctx, int *argc, char **argv)
{
	enum rk_log_format lf = RK_LOG_AUTO;
	enum rk_log_level ll = RK_LOG_INFO;
	int i;

	/* Global options, wherever they stand (before "--"). */
	for (i = 1; i < *argc;) {
		const char *a = argv[i], *val = NULL;
		int takes = strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0 ||
			    strcmp(a, "--output") == 0 || strcmp(a, "--log-format") == 0 ||
			    strcmp(a, "--log-level") == 0;
		if (strcmp(a, "--") == 0)
			break;
		if (!takes) {
			i++;
			continue;
		}
		if (i + 1 >= *argc) {
			rk_log_setup(ll, lf);
			return rk_cli_usage("", "option %s needs a value\n", a);
		}
		val = argv[i + 1];
		if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
			ctx->config_path = val;
		} else if (strcmp(a, "--output") == 0) {
			if (strcmp(val, "json") != 0 && strcmp(val, "text") != 0)
				return rk_cli_usage("", "--output must be text or json\n");
			ctx->output_json = strcmp(val, "json") == 0;
		} else if (strcmp(a, "--log-format") == 0) {
			if (strcmp(val, "json") == 0)
				lf = RK_LOG_JSON;
			else if (strcmp(val, "text") == 0)
				lf = RK_LOG_TEXT;
			else
				return rk_cli_usage("", "--log-format must be text or json\n");
		} else if (rk_log_parse_level(val, &ll) < 0) {
			return rk_cli_usage("", "--log-level must be debug, info, warn or error\n");
		}
		drop_args(argc, argv, i, 2);
	}
	rk_log_setup(ll, lf);
	return -1;
}
