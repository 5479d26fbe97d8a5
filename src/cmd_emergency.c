/*
 * rekey emergency --reason TEXT [--scope SEL]... [--dry-run] [--yes]
 *                 [--parallel N] [--no-restart] [--resume RUN]
 *
 * The 2am command: every secret in scope rotated in one run, tier 0 first,
 * each dependent restarted once after its last secret, the scheduler paused
 * meanwhile, and a report that says where everything stands and the one
 * command that finishes what is left.
 */
#include <fnmatch.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rekey/cli.h"
#include "rekey/config.h"
#include "rekey/crypto.h"
#include "rekey/ctx.h"
#include "rekey/emergency.h"
#include "rekey/engine.h"
#include "rekey/ha.h"
#include "rekey/log.h"
#include "rekey/provider.h"
#include "rekey/store.h"
#include "rekey/util.h"

static const char usage[] =
	"usage: rekey emergency --reason TEXT [--scope SEL]... [--dry-run] [--yes]\n"
	"                       [--parallel N] [--no-restart] [--wait-lease DURATION]\n"
	"       rekey emergency --resume RUN [--parallel N] [--wait-lease DURATION]\n\n"
	"Rotates every secret in scope now, in one run: tier 0 first, many at once\n"
	"(bounded per provider by its concurrency and rate limit), each dependent\n"
	"restarted once after the last of its secrets. The scheduler of `rekey serve`\n"
	"is paused while it runs.\n"
	"  --scope SEL   provider=NAME, environment=ENV, owner=OWNER, tier<=N or\n"
	"                name=GLOB; several are ANDed (default: every secret)\n"
	"  --dry-run     print the plan (waves, dependents, calls, estimate); change nothing\n"
	"  --yes         do not ask (required without a terminal)\n"
	"  --resume RUN  finish RUN: what was cut off, and what failed (a provider down)\n"
	"  --wait-lease DURATION  with `ha` in rekey.yaml: wait that long for another\n"
	"                instance's leader lease (default: exit 75 at once)\n"
	"Exit: 0 all done, 3 partial, 1 nothing done, 2 usage, 75 locked.\n";

/* At most `max` names of a list, then "and N more". */
static void
print_names(FILE *f, const json_t *names, size_t max)
{
	size_t i, n = json_array_size(names);
	const json_t *v;

	json_array_foreach(names, i, v) {
		if (i == max) {
			fprintf(f, " and %zu more", n - max);
			break;
		}
		fprintf(f, "%s%s", i ? ", " : " ", json_string_value(v));
	}
	fputc('\n', f);
}

static void
print_plan(FILE *f, const json_t *plan)
{
	const json_t *w, *d, *p;
	size_t i;

	fprintf(f, "Emergency plan: %lld secrets, %zu dependents",
		(long long)json_integer_value(json_object_get(plan, "secrets")),
		json_array_size(json_object_get(plan, "dependents")));
	if (json_string_value(json_object_get(plan, "reason"))[0])
		fprintf(f, " (reason: %s)", json_string_value(json_object_get(plan, "reason")));
	fputc('\n', f);
	json_array_foreach(json_object_get(plan, "waves"), i, w) {
		fprintf(f, "  wave %zu, tier %lld: %zu secrets:", i + 1,
			(long long)json_integer_value(json_object_get(w, "tier")),
			json_array_size(json_object_get(w, "secrets")));
		print_names(f, json_object_get(w, "secrets"), 8);
	}
	if (json_array_size(json_object_get(plan, "dependents")) > 0)
		fprintf(f, "Dependents, each restarted once after the last of its secrets:\n");
	json_array_foreach(json_object_get(plan, "dependents"), i, d) {
		if (i == 20) {
			fprintf(f, "  and %zu more\n",
				json_array_size(json_object_get(plan, "dependents")) - 20);
			break;
		}
		fprintf(f, "  %s after", json_string_value(json_object_get(d, "dependent")));
		print_names(f, json_object_get(d, "secrets"), 4);
	}
	fprintf(f, "Calls per provider:\n");
	json_array_foreach(json_object_get(plan, "providers"), i, p) {
		double rps = json_real_value(json_object_get(p, "rate_limit_rps"));
		fprintf(f, "  %-16s %6lld secrets %6lld restarts %8lld calls", json_string_value(json_object_get(p, "provider")),
			(long long)json_integer_value(json_object_get(p, "secrets")),
			(long long)json_integer_value(json_object_get(p, "restarts")),
			(long long)json_integer_value(json_object_get(p, "calls")));
		if (rps > 0)
			fprintf(f, " at %g/s: ~%.0f s\n", rps,
				json_real_value(json_object_get(p, "estimate_seconds")));
		else
			fprintf(f, " (no rate limit)\n");
	}
	fprintf(f, "Estimate: at least %.0f s from the rate limits (rollouts not counted)\n",
		json_real_value(json_object_get(plan, "estimate_seconds")));
}

/* Asks on the terminal; 1 when the operator typed yes. */
static int
confirm(size_t n)
{
	char line[32];

	fprintf(stderr, "Rotate these %zu secrets now? Type 'yes' to go on: ", n);
	fflush(stderr);
	if (fgets(line, sizeof(line), stdin) == NULL)
		return 0;
	line[strcspn(line, "\r\n")] = '\0';
	return strcmp(line, "yes") == 0;
}

/* ---- progress ---- */

struct progress {
	pthread_mutex_t mu;
	size_t total, done, failed;
	int64_t last_ms;
};

static void
progress_draw(struct progress *pg)
{
	char bar[41];
	size_t fill = pg->total ? pg->done * 40 / pg->total : 40;

	memset(bar, '#', fill);
	memset(bar + fill, '.', 40 - fill);
	bar[40] = '\0';
	fprintf(stderr, "\r[%s] %zu/%zu done, %zu failed", bar, pg->done, pg->total, pg->failed);
	fflush(stderr);
}

static void
on_progress(void *arg, const char *secret, const char *result)
{
	struct progress *pg = arg;
	int64_t now = rk_mono_ms();

	(void)secret;
	pthread_mutex_lock(&pg->mu);
	pg->done++;
	pg->failed += strcmp(result, "failed") == 0 || strcmp(result, "rolled_back") == 0;
	/* At most ten redraws a second, and always the last one. */
	if (now - pg->last_ms >= 100 || pg->done == pg->total) {
		pg->last_ms = now;
		progress_draw(pg);
	}
	pthread_mutex_unlock(&pg->mu);
}

/* ---- the command ---- */

static void
print_totals(const json_t *rep)
{
	const json_t *t = json_object_get(rep, "totals");
	const char *retry = json_string_value(json_object_get(rep, "retry"));

	printf("totals: %lld secrets: %lld rotated, %lld failed, %lld unfinished; %lld dependents: "
	       "%lld restarted, %lld failed\n",
	       (long long)json_integer_value(json_object_get(t, "secrets")),
	       (long long)json_integer_value(json_object_get(t, "rotated")),
	       (long long)json_integer_value(json_object_get(t, "failed")),
	       (long long)json_integer_value(json_object_get(t, "unfinished")),
	       (long long)json_integer_value(json_object_get(t, "dependents")),
	       (long long)json_integer_value(json_object_get(t, "restarted")),
	       (long long)json_integer_value(json_object_get(t, "restart_failed")));
	if (retry != NULL)
		printf("to finish: %s\n", retry);
}

int
cmd_emergency(struct rk_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "reason", required_argument, NULL, 'm' },
		{ "scope", required_argument, NULL, 's' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "yes", no_argument, NULL, 'y' },
		{ "parallel", required_argument, NULL, 'P' },
		{ "no-restart", no_argument, NULL, 'R' },
		{ "resume", required_argument, NULL, 'r' },
		{ "wait-lease", required_argument, NULL, 'W' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct rk_error err = { 0 };
	struct rk_rotate_opts ro = { .kind = "emergency", .manual = 1 };
	struct rk_scope sc = { 0 };
	struct progress pg;
	struct rk_ha *ha = NULL;
	int64_t wait_ms = 0;
	const char *resume = NULL;
	int dry = 0, yes = 0, c, rc = 1;
	long long par;
	json_t *scope = json_array(), *plan = NULL, *names = NULL;
	json_t *rep = NULL;
	char run_id[64];

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'm': ro.reason = optarg; break;
		case 's':
			if (sc.n == RK_SCOPE_MAX) {
				json_decref(scope);
				return rk_cli_usage(usage, "at most %d --scope selectors", RK_SCOPE_MAX);
			}
			if (rk_scope_add(&sc, optarg) < 0) {
				json_decref(scope);
				return rk_cli_usage(usage, "bad --scope '%s': use provider=NAME, "
						    "environment=ENV, owner=OWNER, tier<=N or "
						    "name=GLOB", optarg);
			}
			json_array_append_new(scope, json_string(optarg));
			break;
		case 'n': dry = 1; break;
		case 'y': yes = 1; break;
		case 'P':
			if (rk_parse_int(optarg, 1, RK_PARALLEL_MAX, &par) < 0) {
				json_decref(scope);
				return rk_cli_usage(usage, "--parallel takes a number from 1 to 256");
			}
			ro.parallel = (int)par;
			break;
		case 'R': ro.no_restart = 1; break;
		case 'r': resume = optarg; break;
		case 'W':
			if ((c = rk_cli_parse_wait(optarg, usage, &wait_ms)) != 0) {
				json_decref(scope);
				return c;
			}
			break;
		case 'h': fputs(usage, stdout); json_decref(scope); return 0;
		default: json_decref(scope); return rk_cli_usage(usage, "bad arguments");
		}
	}
	if (optind < argc) {
		json_decref(scope);
		return rk_cli_usage(usage, "unexpected argument '%s' (a scope is --scope SEL)",
				    argv[optind]);
	}
	if (resume != NULL) {
		json_decref(scope);
		if (sc.n || dry || ro.reason)
			return rk_cli_usage(usage, "--resume RUN takes no --scope, --dry-run or --reason");
		if ((c = rk_cli_open(ctx, 1)) != 0)
			return c;
		rk_emergency_pause(ctx, resume, 1);
		rc = rk_cli_resume(ctx, resume, ro.parallel, wait_ms);
		rk_emergency_pause(ctx, resume, 0);
		return rc;
	}
	if (ro.reason == NULL || ro.reason[0] == '\0') {
		json_decref(scope);
		return rk_cli_usage(usage, "--reason TEXT is required: it goes into the run and the "
				    "audit log");
	}
	if ((c = rk_cli_open(ctx, !dry)) != 0) {
		json_decref(scope);
		return c;
	}
	if (rk_emergency_plan(ctx, &sc, scope, ro.reason, &plan, &names, &err) < 0) {
		rc = rk_cli_fail(&err, "nothing was rotated");
		goto out;
	}
	if (dry) {
		json_object_set_new(plan, "dry_run", json_true());
		if (ctx->output_json)
			rk_print_json(plan);
		else
			print_plan(stdout, plan);
		rc = 0;
		goto out;
	}
	if (!yes) {
		if (!isatty(STDIN_FILENO)) {
			rc = rk_cli_usage(usage, "refusing to rotate %zu secrets without --yes (there "
					  "is no terminal to ask on); check the plan with --dry-run",
					  json_array_size(names));
			goto out;
		}
		print_plan(stderr, plan);
		if (!confirm(json_array_size(names))) {
			fprintf(stderr, "not confirmed: nothing was changed\n");
			rc = 1;
			goto out;
		}
	}
	/* A secret with a rotation still in flight must be finished first, not raced. */
	if (rk_engine_check_idle(ctx, names, &err) < 0) {
		rc = rk_cli_fail(&err, "nothing was rotated");
		goto out;
	}
	rk_cli_catch_stop(ctx);	/* SIGTERM ends a wait for the lease too */
	if ((rc = rk_cli_hold_lease(ctx, wait_ms, "nothing was rotated", &ha)) != 0)
		goto out;
	rc = 1;
	rk_new_run_id(run_id, sizeof(run_id), rk_now(ctx));
	ro.run_id = run_id;
	memset(&pg, 0, sizeof(pg));
	if (!ctx->output_json && isatty(STDERR_FILENO)) {
		pthread_mutex_init(&pg.mu, NULL);
		pg.total = json_array_size(names);
		rk_engine_set_progress(on_progress, &pg);
	}
	rk_emergency_pause(ctx, run_id, 1);
	rk_cli_catch_stop(ctx);
	c = rk_engine_rotate(ctx, names, &ro, &rep, &err);
	rk_emergency_pause(ctx, run_id, 0);
	if (pg.total) {
		rk_engine_set_progress(NULL, NULL);
		fputc('\n', stderr);
		pthread_mutex_destroy(&pg.mu);
	}
	if (c < 0) {
		rc = rk_cli_fail(&err, "the emergency run did not start; nothing was changed");
		goto out;
	}
	json_object_set_new(rep, "reason", json_string(ro.reason));
	rc = rk_cli_lease_verdict(ha, rep, rk_cli_run_exit(rep));
	if (ctx->output_json) {
		rk_print_json(rep);
	} else {
		rk_cli_print_run(rep);
		print_totals(rep);
	}
out:
	rk_ha_release(ha);
	json_decref(scope);
	json_decref(plan);
	json_decref(names);
	json_decref(rep);
	return rc;
}
