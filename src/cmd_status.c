/*
 * rekey list / status [NAME] / plan [--at TIME]: the schedule, read-only.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rekey/cli.h"
#include "rekey/ctx.h"
#include "rekey/engine.h"
#include "rekey/store.h"
#include "rekey/util.h"

static const char list_usage[] =
	"usage: rekey list\n\n"
	"One line per secret: provider, policy, environment, tier, age, next due,\n"
	"state (ok, due, overdue, expired, attention) and the last result.\n";

static const char status_usage[] =
	"usage: rekey status [NAME]\n\n"
	"Without NAME: the list with a summary. With NAME: everything rekey knows\n"
	"about that secret (never its value).\n";

static const char plan_usage[] =
	"usage: rekey plan [--at TIME]\n\n"
	"What `rekey rotate --due` would rotate now (or at TIME: 2026-01-31 or\n"
	"2026-01-31T02:00:00Z) and why. Changes nothing.\n";

static const char *
state_of(const json_t *p)
{
	const char *w = rk_engine_state(p);

	return strcmp(w, "needs_attention") == 0 ? "attention" : w;	/* the table's word */
}

static int
open_plan(struct rk_ctx *ctx, int64_t at, json_t **plan)
{
	struct rk_error err = { 0 };
	int rc;

	if ((rc = rk_cli_open(ctx, 0)) != 0)
		return rc;
	if (rk_engine_plan(ctx, at, plan, &err) < 0)
		return rk_cli_fail(&err, "cannot compute the schedule");
	return 0;
}

static void
print_list(const struct rk_ctx *ctx, const json_t *plan)
{
	static const char *const h[] = { "NAME", "PROVIDER", "POLICY", "ENV", "TIER", "AGE",
					 "NEXT DUE", "STATE", "LAST RESULT", NULL };
	struct rk_table *t = rk_table_new(h);
	int64_t now = rk_now(ctx);
	size_t i;
	json_t *p;

	json_array_foreach(plan, i, p) {
		char age[40], next[40], tier[8];
		int64_t last = json_integer_value(json_object_get(p, "last_rotated"));
		int64_t due = json_integer_value(json_object_get(p, "next_due"));
		if (last) {
			rk_format_duration(now - last, age, sizeof(age));
		} else {
			snprintf(age, sizeof(age), "-");
		}
		if (last == 0)
			snprintf(next, sizeof(next), "now");
		else
			rk_fmt_rel(due, now, next, sizeof(next));
		snprintf(tier, sizeof(tier), "%lld",
			 (long long)json_integer_value(json_object_get(p, "tier")));
		rk_table_add(t, json_string_value(json_object_get(p, "name")),
			     json_string_value(json_object_get(p, "provider")),
			     json_string_value(json_object_get(p, "policy")),
			     json_string_value(json_object_get(p, "environment")), tier, age, next,
			     state_of(p), json_string_value(json_object_get(p, "last_result")));
	}
	rk_table_print(t);
	rk_table_free(t);
}

int
cmd_list(struct rk_ctx *ctx, int argc, char **argv)
{
	json_t *plan = NULL;
	int rc;

	if (rk_cli_wants_help(argc, argv, list_usage))
		return 0;
	if (argc > 1)
		return rk_cli_usage(list_usage, "list takes no arguments");
	if ((rc = open_plan(ctx, rk_now(ctx), &plan)) != 0)
		return rc;
	if (ctx->output_json)
		rk_print_json(plan);
	else
		print_list(ctx, plan);
	json_decref(plan);
	return 0;
}

/* 1 when an emergency run pauses the scheduler; holder[0..n) gets its run id. */
static int
paused_by(struct rk_ctx *ctx, char *holder, size_t n)
{
	struct rk_error err = { 0 };

	return rk_store_lock_get(ctx->store, "scheduler", holder, n, &err) == 0 && holder[0];
}

static int
status_one(struct rk_ctx *ctx, const char *name, const json_t *plan)
{
	struct rk_error err = { 0 };
	json_t *row = NULL, *p = NULL, *e;
	size_t i;
	char t1[40], t2[40], holder[128];

	if (rk_store_secret_get(ctx->store, name, &row, &err) < 0) {
		rk_cli_typed_name(&err);
		return rk_cli_fail(&err, "cannot show '%s'", name);
	}
	json_array_foreach(plan, i, e)
		if (strcmp(json_string_value(json_object_get(e, "name")), name) == 0)
			p = e;
	json_object_set(row, "schedule", p);
	json_object_set_new(row, "state", json_string(state_of(p)));
	if (paused_by(ctx, holder, sizeof(holder)))
		json_object_set_new(row, "scheduler_paused_by", json_string(holder));
	if (ctx->output_json) {
		rk_print_json(row);
		json_decref(row);
		return 0;
	}
	{
		const json_t *spec = json_object_get(row, "spec");
		char *loc = json_dumps(json_object_get(spec, "locator"), JSON_COMPACT);
		rk_fmt_rel(json_integer_value(json_object_get(p, "last_rotated")), rk_now(ctx), t1,
			   sizeof(t1));
		rk_fmt_rel(json_integer_value(json_object_get(p, "next_due")), rk_now(ctx), t2,
			   sizeof(t2));
		printf("name:             %s\n", name);
		printf("provider:         %s %s\n", json_string_value(json_object_get(row, "provider")),
		       loc ? loc : "");
		printf("policy:           %s\n", json_string_value(json_object_get(row, "policy")));
		printf("environment:      %s\n",
		       json_string_value(json_object_get(row, "environment")));
		printf("owner:            %s\n", json_string_value(json_object_get(row, "owner")));
		printf("tier:             %lld\n",
		       (long long)json_integer_value(json_object_get(row, "tier")));
		printf("last rotated:     %s\n", t1);
		printf("next due:         %s\n",
		       json_integer_value(json_object_get(p, "last_rotated")) ? t2 : "now");
		printf("state:            %s (%s)\n", state_of(p),
		       json_string_value(json_object_get(p, "reason")));
		printf("current version:  %s\n",
		       json_string_value(json_object_get(row, "current_version")));
		printf("fingerprint:      %.16s\n",
		       json_string_value(json_object_get(row, "current_fp")));
		printf("last result:      %s %s\n",
		       json_string_value(json_object_get(row, "last_result")),
		       json_string_value(json_object_get(row, "last_run")));
		if (json_string_length(json_object_get(row, "last_error")))
			printf("last error:       %s\n",
			       json_string_value(json_object_get(row, "last_error")));
		printf("failures in a row: %lld\n",
		       (long long)json_integer_value(json_object_get(row, "failures")));
		json_array_foreach(json_object_get(spec, "dependents"), i, e)
			printf("dependent:        %s\n", json_string_value(json_object_get(e, "key")));
		free(loc);
	}
	json_decref(row);
	return 0;
}

int
cmd_status(struct rk_ctx *ctx, int argc, char **argv)
{
	json_t *plan = NULL, *p;
	int rc, counts[5] = { 0 };
	size_t i;
	char holder[128];

	if (rk_cli_wants_help(argc, argv, status_usage))
		return 0;
	if (argc > 2)
		return rk_cli_usage(status_usage, "status takes at most one NAME");
	if ((rc = open_plan(ctx, rk_now(ctx), &plan)) != 0)
		return rc;
	if (argc == 2) {
		rc = status_one(ctx, argv[1], plan);
		json_decref(plan);
		return rc;
	}
	if (paused_by(ctx, holder, sizeof(holder))) {
		/* Every entry says so, and the text a line. */
		json_array_foreach(plan, i, p)
			json_object_set_new(p, "scheduler_paused_by", json_string(holder));
		if (!ctx->output_json)
			printf("scheduler paused by emergency run %s\n", holder);
	}
	if (ctx->output_json) {
		rk_print_json(plan);
		json_decref(plan);
		return 0;
	}
	print_list(ctx, plan);
	json_array_foreach(plan, i, p) {
		const char *s = state_of(p);
		counts[strcmp(s, "ok") == 0	   ? 0
		       : strcmp(s, "due") == 0	   ? 1
		       : strcmp(s, "overdue") == 0 ? 2
		       : strcmp(s, "expired") == 0 ? 3
						   : 4]++;
	}
	printf("\n%zu secrets: %d ok, %d due, %d overdue, %d expired (past grace), %d need "
	       "attention\n", json_array_size(plan), counts[0], counts[1], counts[2], counts[3],
	       counts[4]);
	json_decref(plan);
	return 0;
}

/*
 * When nothing would rotate, say so and what comes next: the secret due
 * soonest, or a due one waiting for its window (secrets that need attention
 * wait for a person and are counted apart).
 */
static void
print_nothing_due(const json_t *plan, int64_t at, int at_given)
{
	const char *next = NULL;
	int64_t when = 0;
	int waits_window = 0, waiting = 0, attention = 0;
	char at_text[48] = "", rel[48];
	size_t i;
	json_t *p;

	json_array_foreach(plan, i, p) {
		int64_t t;
		int w = 0;
		if (json_is_true(json_object_get(p, "needs_attention"))) {
			attention++;
			continue;
		}
		if (json_is_true(json_object_get(p, "due"))) {
			t = json_integer_value(json_object_get(p, "next_window"));
			w = 1;
			waiting++;
		} else {
			t = json_integer_value(json_object_get(p, "next_due"));
		}
		if (t > 0 && (next == NULL || t < when)) {
			next = json_string_value(json_object_get(p, "name"));
			when = t;
			waits_window = w;
		}
	}
	if (at_given) {
		char t[32];
		rk_format_time(at, t, sizeof(t));
		snprintf(at_text, sizeof(at_text), " at %s", t);
	}
	printf("\n");
	if (json_array_size(plan) == 0) {
		printf("nothing would rotate%s: the inventory is empty (add secrets with `rekey "
		       "apply -f FILE`)\n", at_text);
		return;
	}
	/* Relative to now ("in 29d"); with --at, a time (relative to a made-up moment is puzzling). */
	if (next != NULL && at_given) {
		char t[32];
		rk_format_time(when, t, sizeof(t));
		snprintf(rel, sizeof(rel), "%s%s", waits_window ? "at " : "due ", t);
	} else if (next != NULL) {
		rk_fmt_rel(when, at, rel, sizeof(rel));
	}
	if (waiting > 0)
		printf("nothing would rotate%s: %d due secret%s wait%s for %s window", at_text,
		       waiting, waiting == 1 ? "" : "s", waiting == 1 ? "s" : "",
		       waiting == 1 ? "its" : "their");
	else if (attention == 0)
		printf("nothing is due%s", at_text);
	else
		printf("nothing would rotate%s", at_text);
	if (attention > 0)
		printf("%s%d need%s attention (see `rekey status`)", waiting ? ", " : ": ",
		       attention, attention == 1 ? "s" : "");
	if (next != NULL && waits_window)
		printf("; next: %s when its window opens %s", next, rel);
	else if (next != NULL)
		printf("; next: %s %s", next, rel);
	printf("\n");
}

int
cmd_plan(struct rk_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "at", required_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static const char *const h[] = { "NAME", "PROVIDER", "POLICY", "ROTATE", "REASON", NULL };
	int64_t at = 0;
	json_t *plan = NULL, *p;
	struct rk_table *t;
	int c, rc, n = 0;
	size_t i;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'a':
			if (rk_parse_time(optarg, &at) < 0)
				return rk_cli_usage(plan_usage, "--at: '%s' is not a date or RFC 3339 "
						    "UTC time", optarg);
			break;
		case 'h': fputs(plan_usage, stdout); return 0;
		default: return rk_cli_usage(plan_usage, "bad arguments");
		}
	}
	if (optind != argc)
		return rk_cli_usage(plan_usage, "plan takes no NAME");
	if ((rc = open_plan(ctx, at ? at : rk_now(ctx), &plan)) != 0)
		return rc;
	json_array_foreach(plan, i, p) {
		int go = rk_engine_picks(p, 0);
		json_object_set_new(p, "will_rotate", json_boolean(go));
		n += go;
	}
	if (ctx->output_json) {
		rk_print_json(plan);
		json_decref(plan);
		return 0;
	}
	t = rk_table_new(h);
	json_array_foreach(plan, i, p)
		rk_table_add(t, json_string_value(json_object_get(p, "name")),
			     json_string_value(json_object_get(p, "provider")),
			     json_string_value(json_object_get(p, "policy")),
			     json_is_true(json_object_get(p, "will_rotate")) ? "yes" : "no",
			     json_string_value(json_object_get(p, "reason")));
	rk_table_print(t);
	rk_table_free(t);
	if (n > 0)
		printf("\n%d of %zu secrets would rotate; run `rekey rotate --due` to rotate them\n",
		       n, json_array_size(plan));
	else
		print_nothing_due(plan, at ? at : rk_now(ctx), at != 0);
	json_decref(plan);
	return 0;
}
