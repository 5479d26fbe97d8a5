/*
 * rekey history NAME / rekey runs / rekey run RUN: what happened, read-only.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rekey/cli.h"
#include "rekey/ctx.h"
#include "rekey/store.h"
#include "rekey/util.h"

static const char history_usage[] =
	"usage: rekey history NAME\n\nPast rotations of one secret, newest first.\n";
static const char runs_usage[] =
	"usage: rekey runs [--limit N]\n\nRecent runs, newest first (default 20), and every "
	"unfinished run\nwhatever the limit. A run whose status is 'running' while no rekey "
	"runs was\ninterrupted: `rekey rotate --resume RUN` finishes it.\n";
static const char run_usage[] =
	"usage: rekey run RUN\n\nOne run: its rotations, every journal step and its "
	"dependents.\n";

static const char *
s(const json_t *o, const char *k)
{
	const char *v = json_string_value(json_object_get(o, k));

	return v ? v : "";
}

static const char *
t(const json_t *o, const char *k, char *buf, size_t n)
{
	int64_t v = json_integer_value(json_object_get(o, k));

	if (v == 0)
		return "-";
	rk_format_time(v, buf, n);
	return buf;
}

int
cmd_history(struct rk_ctx *ctx, int argc, char **argv)
{
	static const char *const h[] = { "RUN", "KIND", "STATE", "OLD", "NEW", "STARTED", "ERROR",
					 NULL };
	struct rk_error err = { 0 };
	json_t *rows = NULL, *row = NULL, *e;
	struct rk_table *tb;
	size_t i;
	int rc;

	if (rk_cli_wants_help(argc, argv, history_usage))
		return 0;
	if (argc != 2)
		return rk_cli_usage(history_usage, "history needs exactly one NAME");
	if ((rc = rk_cli_open(ctx, 0)) != 0)
		return rc;
	if (rk_store_secret_get(ctx->store, argv[1], &row, &err) < 0)
		rk_cli_typed_name(&err);
	if (err.code != 0 || rk_store_history(ctx->store, argv[1], &rows, &err) < 0) {
		json_decref(row);
		return rk_cli_fail(&err, "cannot read the history of '%s'", argv[1]);
	}
	json_decref(row);
	if (ctx->output_json) {
		rk_print_json(rows);
	} else {
		tb = rk_table_new(h);
		json_array_foreach(rows, i, e) {
			char b[32];
			rk_table_add(tb, s(e, "run_id"), s(e, "kind"), s(e, "state"),
				     s(e, "old_version"), s(e, "new_version"), t(e, "started_at", b,
										 sizeof(b)),
				     s(e, "error"));
		}
		rk_table_print(tb);
		rk_table_free(tb);
	}
	json_decref(rows);
	return 0;
}

int
cmd_runs(struct rk_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "limit", required_argument, NULL, 'l' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const h[] = { "RUN", "KIND", "STATUS", "STARTED", "SECRETS", "DONE",
					 "FAILED", "REASON", NULL };
	struct rk_error err = { 0 };
	long long limit = 20;
	json_t *rows = NULL, *e;
	struct rk_table *tb;
	size_t i;
	int rc, c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'l':
			if (rk_parse_int(optarg, 1, 100000, &limit) < 0)
				return rk_cli_usage(runs_usage, "--limit must be 1 to 100000");
			break;
		case 'h': fputs(runs_usage, stdout); return 0;
		default: return rk_cli_usage(runs_usage, "bad arguments");
		}
	}
	if (optind != argc)
		return rk_cli_usage(runs_usage, "runs takes no arguments");
	if ((rc = rk_cli_open(ctx, 0)) != 0)
		return rc;
	if (rk_store_run_list(ctx->store, (int)limit, &rows, &err) < 0)
		return rk_cli_fail(&err, "cannot list runs");
	if (ctx->output_json) {
		rk_print_json(rows);
	} else {
		size_t unfinished = 0;
		const char *first = NULL;
		json_array_foreach(rows, i, e) {
			if (strcmp(s(e, "status"), "running") == 0) {
				unfinished++;
				first = s(e, "id");
			}
		}
		if (unfinished == 1)
			printf("1 unfinished run: finish it with `rekey rotate --resume %s`\n\n", first);
		else if (unfinished > 1)
			printf("%zu unfinished runs: finish them with `rekey rotate --resume all`\n\n",
			       unfinished);
		tb = rk_table_new(h);
		json_array_foreach(rows, i, e) {
			char b[32], n1[16], n2[16], n3[16];
			snprintf(n1, sizeof(n1), "%lld",
				 (long long)json_integer_value(json_object_get(e, "secrets")));
			snprintf(n2, sizeof(n2), "%lld",
				 (long long)json_integer_value(json_object_get(e, "done")));
			snprintf(n3, sizeof(n3), "%lld",
				 (long long)json_integer_value(json_object_get(e, "failed")));
			rk_table_add(tb, s(e, "id"), s(e, "kind"), s(e, "status"),
				     t(e, "started_at", b, sizeof(b)), n1, n2, n3, s(e, "reason"));
		}
		rk_table_print(tb);
		rk_table_free(tb);
	}
	json_decref(rows);
	return 0;
}

int
cmd_run(struct rk_ctx *ctx, int argc, char **argv)
{
	static const char *const h[] = { "SECRET", "STEP", "DETAIL", "AT", NULL };
	static const char *const hd[] = { "DEPENDENT", "STATE", "ERROR", NULL };
	struct rk_error err = { 0 };
	json_t *run = NULL, *steps = NULL, *deps = NULL, *e;
	struct rk_table *tb;
	size_t i;
	int rc;

	if (rk_cli_wants_help(argc, argv, run_usage))
		return 0;
	if (argc != 2)
		return rk_cli_usage(run_usage, "run needs exactly one RUN id");
	if ((rc = rk_cli_open(ctx, 0)) != 0)
		return rc;
	if (rk_store_run_get(ctx->store, argv[1], &run, &err) < 0)
		rk_cli_typed_name(&err);
	if (err.code != 0 || rk_store_steps(ctx->store, argv[1], NULL, &steps, &err) < 0 ||
	    rk_store_dep_list(ctx->store, argv[1], &deps, &err) < 0) {
		rc = rk_cli_fail(&err, "cannot show run %s", argv[1]);
		goto out;
	}
	if (ctx->output_json) {
		json_object_set(run, "steps", steps);
		json_object_set(run, "dependents", deps);
		rk_print_json(run);
		goto out;
	}
	{
		char b1[32], b2[32];
		printf("run %s: %s %s, started %s, finished %s%s%s\n\n", s(run, "id"), s(run, "kind"),
		       s(run, "status"), t(run, "started_at", b1, sizeof(b1)),
		       t(run, "finished_at", b2, sizeof(b2)),
		       json_string_length(json_object_get(run, "reason")) ? ", reason: " : "",
		       s(run, "reason"));
	}
	tb = rk_table_new(h);
	json_array_foreach(steps, i, e) {
		char b[32];
		rk_table_add(tb, s(e, "secret"), s(e, "step"), s(e, "detail"), t(e, "ts", b, sizeof(b)));
	}
	rk_table_print(tb);
	rk_table_free(tb);
	if (json_array_size(deps)) {
		tb = rk_table_new(hd);
		json_array_foreach(deps, i, e)
			rk_table_add(tb, s(e, "dependent"), s(e, "state"), s(e, "error"));
		printf("\n");
		rk_table_print(tb);
		rk_table_free(tb);
	}
	if (strcmp(s(run, "status"), "running") == 0)
		printf("\nthis run did not finish; `rekey rotate --resume %s` finishes it\n",
		       s(run, "id"));
out:
	json_decref(run);
	json_decref(steps);
	json_decref(deps);
	return rc;
}
