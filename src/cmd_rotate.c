/*
 * rekey rotate NAME... | --due [--dry-run] [--ignore-window] [--no-restart]
 * rekey rotate --resume RUN
 * rekey rollback NAME [--to VERSION]
 *
 * With `ha` in rekey.yaml each holds the leader lease (src/ha.c) from before
 * the first provider write to the end, so that two instances never rotate
 * at once; a dry run writes nothing and takes none.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rekey/cli.h"
#include "rekey/ctx.h"
#include "rekey/engine.h"
#include "rekey/ha.h"
#include "rekey/store.h"
#include "rekey/util.h"

_Static_assert(RK_PARALLEL_MAX == 256, "the --parallel usage message says 256");

static const char rotate_usage[] =
	"usage: rekey rotate NAME... [--dry-run] [--no-restart] [--reason TEXT] [--parallel N]\n"
	"                            [--wait-lease DURATION]\n"
	"       rekey rotate --due [--ignore-window] [--dry-run] [--no-restart] [--parallel N]\n"
	"                          [--wait-lease DURATION]\n"
	"       rekey rotate --resume RUN|all [--parallel N] [--wait-lease DURATION]\n\n"
	"Rotates the named secrets now (a secret marked needs_attention is cleared by\n"
	"naming it), or every secret that is due and inside its rotation window\n"
	"(--due). Dependents restart once each, after all their secrets are promoted.\n"
	"--resume finishes a run interrupted by a crash or a stop (see `rekey runs`).\n"
	"--parallel N runs N rotations at once (default: the sum of the providers'\n"
	"concurrency caps), never more than a provider's cap on one provider, lower\n"
	"tiers first. SIGTERM or Ctrl-C stops cleanly: no new rotation starts, calls\n"
	"in flight are abandoned where the journal has them, and the command prints\n"
	"the --resume command that finishes the run.\n"
	"With `ha` in rekey.yaml the run holds the leader lease: when another rekey\n"
	"holds it the command exits 75 at once, or with --wait-lease waits up to\n"
	"DURATION (30s, 5m) for it; a lease lost during the run stops it as SIGTERM does.\n"
	"Exit: 0 all rotated, 3 some failed or stopped, 1 all failed, 2 usage, 75 locked\n"
	"or the lease is held by another rekey.\n";

static const char rollback_usage[] =
	"usage: rekey rollback NAME [--to VERSION] [--no-restart] [--reason TEXT]\n"
	"                      [--wait-lease DURATION]\n\n"
	"Makes the value that was current just before the secret's latest change (a\n"
	"rotation or a rollback), or the value of VERSION, current again as a new\n"
	"version, runs the policy's verify and set hooks, and restarts the secret's\n"
	"dependents (not with --no-restart). With `ha` in rekey.yaml it holds the leader\n"
	"lease meanwhile (--wait-lease DURATION: wait that long for another holder).\n"
	"Exit: 0 rolled back, 3 rolled back but a dependent failed, 1 failed, 2 usage,\n"
	"75 the lease is held by another rekey.\n";

/* The flag SIGTERM and SIGINT set: the engine stops starting and waiting. */
static atomic_int *stop_flag;

static void
on_stop_signal(int sig)
{
	(void)sig;
	if (stop_flag != NULL)
		atomic_store(stop_flag, 1);	/* lock-free: safe in a handler */
}

/*
 * From here on SIGTERM/SIGINT stop the run cleanly: steps in flight finish
 * or are abandoned where the journal has them, and --resume goes on.
 */
static void
catch_stop_signals(struct rk_ctx *ctx)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_stop_signal;
	sigemptyset(&sa.sa_mask);
	stop_flag = &ctx->stop;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
}

int
rk_cli_hold_lease(struct rk_ctx *ctx, int64_t wait_ms, const char *nothing, struct rk_ha **ha)
{
	struct rk_error err = { 0 };

	if (rk_ha_acquire(ctx, wait_ms, ha, &err) < 0)
		return rk_cli_fail(&err, "%s", nothing);
	return 0;
}

/* Another instance may have started meanwhile: the report says so (and at least exit 3). */
int
rk_cli_lease_verdict(const struct rk_ha *ha, json_t *rep, int rc)
{
	if (!rk_ha_lost(ha))
		return rc;
	json_object_set_new(rep, "lease_lost", json_true());
	fprintf(stderr, "rekey: the leader lease was lost during the run: no provider write "
		"started after that\n");
	return rc == 0 ? 3 : rc;
}

int
rk_cli_parse_wait(const char *arg, const char *usage, int64_t *wait_ms)
{
	if (rk_parse_duration_ms(arg, wait_ms) < 0)
		return rk_cli_usage(usage, "--wait-lease takes a duration like 30s or 5m");
	return 0;
}

/* The words for a result code, made only when printing. */
static const char *
result_words(const char *code)
{
	static const struct { const char *code, *words; } tab[] = {
		{ "rotated", "rotated" },
		{ "restored", "rolled back" },
		{ "rolled_back", "failed, undone" },
		{ "failed", "failed" },
		{ "interrupted", "interrupted (resume the run)" },
		{ "pending", "pending (resume the run)" },
		{ "restarted", "restarted" },
		{ "skipped", "skipped (unchanged)" },
		{ "not_restarted", "not restarted (--no-restart)" },
	};
	for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++)
		if (strcmp(tab[i].code, code) == 0)
			return tab[i].words;
	return code;
}

static int
status_exit(const json_t *report)
{
	const char *s = json_string_value(json_object_get(report, "status"));

	if (s == NULL || strcmp(s, "done") == 0)
		return 0;
	return strcmp(s, "partial") == 0 || strcmp(s, "interrupted") == 0 ? 3 : 1;
}

static void
print_report(const json_t *rep)
{
	static const char *const h[] = { "SECRET", "PROVIDER", "RESULT", "VERSION", "ERROR", NULL };
	static const char *const hd[] = { "DEPENDENT", "RESULT", "ERROR", NULL };
	struct rk_table *t = rk_table_new(h);
	size_t i, ok = 0;
	json_t *e, *rb;

	json_array_foreach(json_object_get(rep, "secrets"), i, e) {
		char ver[300];
		const char *ov = json_string_value(json_object_get(e, "old_version"));
		const char *nv = json_string_value(json_object_get(e, "new_version"));
		snprintf(ver, sizeof(ver), "%s -> %s", ov && ov[0] ? ov : "(none)",
			 nv && nv[0] ? nv : "-");
		const char *res = json_string_value(json_object_get(e, "result"));
		rk_table_add(t, json_string_value(json_object_get(e, "name")),
			     json_string_value(json_object_get(e, "provider")), result_words(res),
			     ver, json_string_value(json_object_get(e, "error")));
		ok += strcmp(res, "rotated") == 0 || strcmp(res, "restored") == 0;
	}
	rk_table_print(t);
	rk_table_free(t);
	if (json_array_size(json_object_get(rep, "dependents")) > 0) {
		t = rk_table_new(hd);
		json_array_foreach(json_object_get(rep, "dependents"), i, e)
			rk_table_add(t, json_string_value(json_object_get(e, "dependent")),
				     result_words(json_string_value(json_object_get(e, "result"))),
				     json_string_value(json_object_get(e, "error")));
		printf("\n");
		rk_table_print(t);
		rk_table_free(t);
	}
	printf("\nrun %s: %s (%zu of %zu %s)\n", json_string_value(json_object_get(rep, "run_id")),
	       json_string_value(json_object_get(rep, "status")), ok,
	       json_array_size(json_object_get(rep, "secrets")),
	       strcmp(json_string_value(json_object_get(rep, "kind")), "rollback") == 0
		       ? "rolled back"
		       : "rotated");
	if (json_object_get(rep, "retry") != NULL &&
	    strcmp(json_string_value(json_object_get(rep, "status")), "interrupted") == 0)
		printf("stopped before the end; finish with: %s\n",
		       json_string_value(json_object_get(rep, "retry")));
	if ((e = json_object_get(rep, "rollback")) != NULL) {
		/* restart.on_failure: rollback ran a rollback run of its own. */
		printf("\na restart failed and the policy says restart.on_failure: rollback:\n\n");
		if (json_object_get(e, "run_id") != NULL)
			print_report(e);
		else
			printf("rollback failed: %s\n",
			       json_string_value(json_object_get(e, "error")));
		json_array_foreach(json_object_get(e, "not_rolled_back"), i, rb)
			printf("not rolled back: %s: %s\n",
			       json_string_value(json_object_get(rb, "name")),
			       json_string_value(json_object_get(rb, "error")));
	}
}

static int
do_resume(struct rk_ctx *ctx, const char *run, int parallel, int64_t wait_ms)
{
	struct rk_error err = { 0 };
	struct rk_ha *ha = NULL;
	json_t *rep = NULL, *e;
	size_t i;
	int rc = 0;

	/* An unknown RUN is the user's input; the engine's own "not found"s are not. */
	if (strcmp(run, "all") != 0) {
		if (rk_store_run_get(ctx->store, run, &rep, &err) < 0) {
			rk_cli_typed_name(&err);
			return rk_cli_fail(&err, "cannot resume %s", run);
		}
		json_decref(rep);
		rep = NULL;
	}
	catch_stop_signals(ctx);
	if ((rc = rk_cli_hold_lease(ctx, wait_ms, "nothing was resumed", &ha)) != 0)
		return rc;
	if (rk_engine_resume(ctx, strcmp(run, "all") == 0 ? NULL : run, parallel, &rep, &err) < 0) {
		rk_ha_release(ha);
		return rk_cli_fail(&err, "cannot resume %s", run);
	}
	if (json_is_array(rep)) {
		json_array_foreach(rep, i, e) {
			int x = status_exit(e);
			if (!ctx->output_json)
				print_report(e);
			rc = x > rc ? x : rc;
		}
		if (!ctx->output_json && json_array_size(rep) == 0)
			printf("no unfinished runs\n");
	} else {
		if (!ctx->output_json)
			print_report(rep);
		rc = status_exit(rep);
	}
	rc = rk_cli_lease_verdict(ha, rep, rc);
	if (ctx->output_json)
		rk_print_json(rep);
	json_decref(rep);
	rk_ha_release(ha);
	return rc;
}

int
cmd_rotate(struct rk_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "due", no_argument, NULL, 'd' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "resume", required_argument, NULL, 'r' },
		{ "ignore-window", no_argument, NULL, 'w' },
		{ "no-restart", no_argument, NULL, 'R' },
		{ "reason", required_argument, NULL, 'm' },
		{ "parallel", required_argument, NULL, 'P' },
		{ "wait-lease", required_argument, NULL, 'W' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct rk_error err = { 0 };
	struct rk_rotate_opts ro = { .kind = "rotate" };
	struct rk_ha *ha = NULL;
	int64_t wait_ms = 0;
	long long par;
	const char *resume = NULL;
	int due = 0, dry = 0, ignore_window = 0, c, rc = 1;
	json_t *names = NULL, *known = NULL, *rep = NULL, *p;
	size_t i;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'd': due = 1; break;
		case 'n': dry = 1; break;
		case 'r': resume = optarg; break;
		case 'w': ignore_window = 1; break;
		case 'R': ro.no_restart = 1; break;
		case 'm': ro.reason = optarg; break;
		case 'P':
			if (rk_parse_int(optarg, 1, RK_PARALLEL_MAX, &par) < 0)
				return rk_cli_usage(rotate_usage, "--parallel takes a number from 1 "
						    "to 256");
			ro.parallel = (int)par;
			break;
		case 'W':
			if ((rc = rk_cli_parse_wait(optarg, rotate_usage, &wait_ms)) != 0)
				return rc;
			break;
		case 'h': fputs(rotate_usage, stdout); return 0;
		default: return rk_cli_usage(rotate_usage, "bad arguments");
		}
	}
	if ((resume != NULL) + due + (optind < argc) != 1)
		return rk_cli_usage(rotate_usage, "give NAME..., --due or --resume RUN (one of them)");
	if ((c = rk_cli_open(ctx, !dry)) != 0)
		return c;
	if (resume != NULL)
		return do_resume(ctx, resume, ro.parallel, wait_ms);
	/*
	 * --due (not a dry run) takes the lease before it computes what is due:
	 * another instance may rotate those secrets until we hold it.
	 */
	if (due && !dry) {
		catch_stop_signals(ctx);
		if ((rc = rk_cli_hold_lease(ctx, wait_ms, "nothing was rotated", &ha)) != 0)
			goto out;
		rc = 1;
	}
	if (due) {
		if (rk_engine_due(ctx, rk_now(ctx), ignore_window, &names, &err) < 0) {
			rc = rk_cli_fail(&err, "cannot compute the schedule");
			goto out;
		}
	} else if ((names = json_array()) == NULL) {
		rk_error_set(&err, RK_ENOMEM, "out of memory");
		rc = rk_cli_fail(&err, "nothing was rotated");
		goto out;
	} else {
		/* The inventory's names as a set: one pass, any number of names. */
		if (rk_store_secret_names(ctx->store, &known, &err) < 0) {
			rc = rk_cli_fail(&err, "nothing was rotated");
			goto out;
		}
		for (int k = optind; k < argc; k++) {
			if (json_object_get(known, argv[k]) == NULL) {
				rk_error_set(&err, RK_EINVAL,
					     "no secret named '%s' in the inventory (see `rekey list`)",
					     argv[k]);
				rc = rk_cli_fail(&err, "nothing was rotated");
				goto out;
			}
			json_array_append_new(names, json_string(argv[k]));
		}
	}
	/* A secret with a rotation still in flight must be finished first, not raced. */
	if (rk_engine_check_idle(ctx, names, &err) < 0) {
		rc = rk_cli_fail(&err, "nothing was rotated");
		goto out;
	}
	if (dry || json_array_size(names) == 0) {
		if (ctx->output_json) {
			json_t *j = json_pack("{s:b, s:O}", "dry_run", dry, "would_rotate", names);
			rk_print_json(j);
			json_decref(j);
		} else if (json_array_size(names) == 0) {
			printf("nothing to rotate\n");
		} else {
			json_array_foreach(names, i, p)
				printf("would rotate %s\n", json_string_value(p));
		}
		rc = 0;
		goto out;
	}
	ro.manual = !due;
	catch_stop_signals(ctx);
	if (ha == NULL && (rc = rk_cli_hold_lease(ctx, wait_ms, "nothing was rotated", &ha)) != 0)
		goto out;
	rc = 1;
	if (rk_engine_rotate(ctx, names, &ro, &rep, &err) < 0) {
		rc = rk_cli_fail(&err, "rotation did not start; nothing was changed");
		goto out;
	}
	rc = rk_cli_lease_verdict(ha, rep, status_exit(rep));
	if (ctx->output_json)
		rk_print_json(rep);
	else
		print_report(rep);
out:
	rk_ha_release(ha);
	json_decref(rep);
	json_decref(names);
	json_decref(known);
	return rc;
}

int
cmd_rollback(struct rk_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "to", required_argument, NULL, 't' },
		{ "no-restart", no_argument, NULL, 'R' },
		{ "reason", required_argument, NULL, 'm' },
		{ "wait-lease", required_argument, NULL, 'W' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct rk_error err = { 0 };
	struct rk_rotate_opts ro = { .kind = "rollback", .manual = 1 };
	struct rk_ha *ha = NULL;
	int64_t wait_ms = 0;
	const char *to = NULL;
	json_t *rep = NULL;
	int c, rc;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 't': to = optarg; break;
		case 'R': ro.no_restart = 1; break;
		case 'm': ro.reason = optarg; break;
		case 'W':
			if ((rc = rk_cli_parse_wait(optarg, rollback_usage, &wait_ms)) != 0)
				return rc;
			break;
		case 'h': fputs(rollback_usage, stdout); return 0;
		default: return rk_cli_usage(rollback_usage, "bad arguments");
		}
	}
	if (optind + 1 != argc)
		return rk_cli_usage(rollback_usage, "rollback needs exactly one NAME");
	if ((c = rk_cli_open(ctx, 1)) != 0)
		return c;
	/* An unknown NAME is the user's input (exit 2); the engine's own "not found"s are not. */
	if (rk_store_secret_get(ctx->store, argv[optind], &rep, &err) < 0) {
		rk_cli_typed_name(&err);
		return rk_cli_fail(&err, "nothing was rolled back");
	}
	json_decref(rep);
	rep = NULL;
	if ((rc = rk_cli_hold_lease(ctx, wait_ms, "nothing was rolled back", &ha)) != 0)
		return rc;
	if (rk_engine_rollback(ctx, argv[optind], to, &ro, &rep, &err) < 0) {
		rk_ha_release(ha);
		return rk_cli_fail(&err, "cannot roll back '%s'", argv[optind]);
	}
	rc = rk_cli_lease_verdict(ha, rep, status_exit(rep));
	if (ctx->output_json)
		rk_print_json(rep);
	else
		print_report(rep);
	json_decref(rep);
	rk_ha_release(ha);
	return rc;
}

/* ---- shared with rekey emergency (cmd_emergency.c) ---- */

void
rk_cli_print_run(const json_t *rep)
{
	print_report(rep);
}

int
rk_cli_run_exit(const json_t *rep)
{
	return status_exit(rep);
}

void
rk_cli_catch_stop(struct rk_ctx *ctx)
{
	catch_stop_signals(ctx);
}

int
rk_cli_resume(struct rk_ctx *ctx, const char *run, int parallel, int64_t wait_ms)
{
	return do_resume(ctx, run, parallel, wait_ms);
}
