/*
 * The command table, global options and the output helpers.
 *
 * Global options may stand before or after the command name; each command
 * parses the rest of its arguments itself (src/cmd_*.c).
 */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rekey/cli.h"
#include "rekey/ctx.h"
#include "rekey/log.h"
#include "rekey/util.h"

#define REKEY_VERSION "0.1.0"

struct rk_cmd {
	const char *name;
	int (*fn)(struct rk_ctx *, int, char **);
	const char *summary;
};

static const struct rk_cmd commands[] = {
	{ "init", cmd_init, "create the state dir, DB and keys" },
	{ "apply", cmd_apply, "make the inventory match a file; prints the diff" },
	{ "list", cmd_list, "list secrets: provider, policy, age, next due" },
	{ "status", cmd_status, "status of all secrets or one" },
	{ "plan", cmd_plan, "what would rotate now (or at TIME) and why" },
	{ "rotate", cmd_rotate, "rotate secrets now (NAME..., --due, --resume RUN)" },
	{ "rollback", cmd_rollback, "restore a secret's previous value" },
	{ "emergency", cmd_emergency, "rotate everything in scope now, restart dependents once" },
	{ "history", cmd_history, "past rotations of a secret" },
	{ "runs", cmd_runs, "recent runs" },
	{ "run", cmd_run, "one run in detail" },
	{ "audit", cmd_audit, "read or verify the audit log" },
	{ "backup", cmd_backup, "write an encrypted backup of the state (--to FILE)" },
	{ "restore", cmd_restore, "replace the state with a backup (--from FILE)" },
	{ "doctor", cmd_doctor, "check config, state, provider reachability and permissions" },
	{ "get", cmd_get, "print the current value of a local secret" },
	{ "guard", cmd_guard, "startup guard: refuse default, weak, overdue or reused secrets" },
	{ "serve", cmd_serve, "the daemon: scheduler, HTTP API, metrics, leader election" },
	{ NULL, NULL, NULL },
};

static void
usage(FILE *f)
{
	fprintf(f, "usage: rekey [-c CONFIG] [--output text|json] [--log-format text|json]\n"
		   "             [--log-level debug|info|warn|error] COMMAND [ARGS]\n\n"
		   "commands:\n");
	for (const struct rk_cmd *c = commands; c->name; c++)
		fprintf(f, "  %-10s %s\n", c->name, c->summary);
	fprintf(f, "\n`rekey COMMAND --help` describes a command. Exit codes: 0 ok, 1 failed,\n"
		   "2 usage or configuration error, 3 partial failure, 75 locked by another rekey.\n");
}

void
rk_cli_typed_name(struct rk_error *err)
{
	if (err->code == RK_ENOTFOUND)
		err->code = RK_EINVAL;
}

int
rk_cli_wants_help(int argc, char **argv, const char *use)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			break;
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			fputs(use, stdout);
			return 1;
		}
	}
	return 0;
}

int
rk_cli_open(struct rk_ctx *ctx, int lock)
{
	struct rk_error err = { 0 };

	if (rk_ctx_load_config(ctx, &err) < 0)
		return rk_cli_fail(&err, "cannot load configuration");
	if (rk_ctx_open_state(ctx, lock, &err) < 0)
		return rk_cli_fail(&err, "cannot open the state");
	return 0;
}

struct rk_table {
	size_t ncols;
	const char *const *headers;
	char **cells;	/* row-major */
	size_t nrows, cap;
};

struct rk_table *
rk_table_new(const char *const *headers)
{
	struct rk_table *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return NULL;
	t->headers = headers;
	while (headers[t->ncols])
		t->ncols++;
	return t;
}

static char *
sanitize(const char *s)
{
	char *c = strdup(s ? s : "");

	for (char *p = c; p && *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	return c;
}

void
rk_table_add(struct rk_table *t, ...)
{
	va_list ap;

	if (t == NULL)
		return;
	if (t->nrows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		char **n = realloc(t->cells, cap * t->ncols * sizeof(*n));
		if (n == NULL)
			return;
		t->cells = n;
		t->cap = cap;
	}
	va_start(ap, t);
	for (size_t c = 0; c < t->ncols; c++)
		t->cells[t->nrows * t->ncols + c] = sanitize(va_arg(ap, const char *));
	va_end(ap);
	t->nrows++;
}

void
rk_table_print(const struct rk_table *t)
{
	size_t w[32] = { 0 };

	if (t == NULL || t->ncols > 32)
		return;
	for (size_t c = 0; c < t->ncols; c++)
		w[c] = strlen(t->headers[c]);
	for (size_t r = 0; r < t->nrows; r++)
		for (size_t c = 0; c < t->ncols; c++) {
			const char *s = t->cells[r * t->ncols + c];
			size_t l = s ? strlen(s) : 0;
			if (l > w[c])
				w[c] = l;
		}
	for (size_t c = 0; c < t->ncols; c++)
		printf("%-*s%s", c + 1 < t->ncols ? (int)w[c] : 0, t->headers[c],
		       c + 1 < t->ncols ? "  " : "\n");
	for (size_t r = 0; r < t->nrows; r++)
		for (size_t c = 0; c < t->ncols; c++) {
			const char *s = t->cells[r * t->ncols + c];
			printf("%-*s%s", c + 1 < t->ncols ? (int)w[c] : 0, s ? s : "",
			       c + 1 < t->ncols ? "  " : "\n");
		}
}

void
rk_table_free(struct rk_table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}

void
rk_fmt_rel(long long t, long long now, char *buf, unsigned n)
{
	char d[32];

	if (t == 0) {
		snprintf(buf, n, "never");
	} else if (t <= now) {
		rk_format_duration(now - t, d, sizeof(d));
		snprintf(buf, n, "%s ago", d);
	} else {
		rk_format_duration(t - now, d, sizeof(d));
		snprintf(buf, n, "in %s", d);
	}
}

int
rk_cli_main(int argc, char **argv)
{
	struct rk_ctx ctx;
	const char *cmd_name = NULL;
	int i, rc, cmd_at = -1;

	rk_ctx_init(&ctx);
	if ((rc = rk_cli_global_options(&ctx, &argc, argv)) >= 0)
		return rc;
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--version") == 0) {
			printf("rekey %s\n", REKEY_VERSION);
			return 0;
		}
		if (argv[i][0] != '-') {
			cmd_at = i;
			cmd_name = argv[i];
			break;
		}
		if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		}
		return rk_cli_usage("", "unknown option %s (see rekey --help)\n", argv[i]);
	}
	if (cmd_name == NULL) {
		usage(stderr);
		return 2;
	}
	for (const struct rk_cmd *c = commands; c->name; c++) {
		if (strcmp(c->name, cmd_name) == 0) {
			optind = 1;
			rc = c->fn(&ctx, argc - cmd_at, argv + cmd_at);
			rk_ctx_cleanup(&ctx);
			return rc;
		}
	}
	fprintf(stderr, "rekey: unknown command '%s'\n\n", cmd_name);
	usage(stderr);
	return 2;
}
