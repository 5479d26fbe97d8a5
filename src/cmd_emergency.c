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

enum sel_kind { SEL_PROVIDER, SEL_ENVIRONMENT, SEL_OWNER, SEL_TIER, SEL_NAME };

struct sel {
	enum sel_kind kind;
	const char *value;	/* borrowed from argv */
	long long tier;
};

#define SEL_MAX 32

static int
parse_sel(const char *arg, struct sel *s)
{
	static const struct {
		const char *prefix;
		enum sel_kind kind;
	} forms[] = {
		{ "provider=", SEL_PROVIDER }, { "environment=", SEL_ENVIRONMENT },
		{ "owner=", SEL_OWNER },       { "tier<=", SEL_TIER },
		{ "name=", SEL_NAME },
	};

	for (size_t i = 0; i < RK_ARRAY_SIZE(forms); i++) {
		size_t n = strlen(forms[i].prefix);
		if (strncmp(arg, forms[i].prefix, n) != 0)
			continue;
		s->kind = forms[i].kind;
		s->value = arg + n;
		if (s->value[0] == '\0')
			return -1;
		if (s->kind == SEL_TIER && rk_parse_int(s->value, 0, 1000, &s->tier) < 0)
			return -1;
		return 0;
	}
	return -1;
}

static int
in_scope(const json_t *row, const struct sel *sels, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const char *v = NULL;
		switch (sels[i].kind) {
		case SEL_PROVIDER: v = json_string_value(json_object_get(row, "provider")); break;
		case SEL_ENVIRONMENT: v = json_string_value(json_object_get(row, "environment")); break;
		case SEL_OWNER: v = json_string_value(json_object_get(row, "owner")); break;
		case SEL_NAME:
			if (fnmatch(sels[i].value, json_string_value(json_object_get(row, "name")),
				    0) != 0)
				return 0;
			continue;
		case SEL_TIER:
			if (json_integer_value(json_object_get(row, "tier")) > sels[i].tier)
				return 0;
			continue;
		}
		if (v == NULL || strcmp(v, sels[i].value) != 0)
			return 0;
	}
	return 1;
}

/* ---- the plan ---- */

static int
by_tier_then_name(const void *a, const void *b)
{
	const json_t *x = *(const json_t *const *)a, *y = *(const json_t *const *)b;
	json_int_t tx = json_integer_value(json_object_get(x, "tier"));
	json_int_t ty = json_integer_value(json_object_get(y, "tier"));

	if (tx != ty)
		return tx < ty ? -1 : 1;
	return strcmp(json_string_value(json_object_get(x, "name")),
		      json_string_value(json_object_get(y, "name")));
}

/* Adds 1 to the counter `what` of provider `name` in provs, made on first use. */
static void
count_for(json_t *provs, const char *name, const char *what)
{
	json_t *pe = json_object_get(provs, name);

	if (pe == NULL) {
		pe = json_pack("{s:s, s:I, s:I}", "provider", name, "secrets", (json_int_t)0,
			       "restarts", (json_int_t)0);
		json_object_set_new(provs, name, pe);
	}
	json_object_set_new(pe, what, json_integer(json_integer_value(json_object_get(pe, what)) + 1));
}

/*
 * The plan of rows (in scope): waves by tier, dependents once each with the
 * secrets that feed them, calls per provider and an estimate from the
 * providers' rate limits. *names gets the secrets in wave order.
 */
static int
make_plan(struct rk_ctx *ctx, const json_t *rows, const char *reason, const json_t *scope,
	  json_t **plan, json_t **names, struct rk_error *err)
{
	size_t n = json_array_size(rows), i;
	const json_t **sorted = calloc(n ? n : 1, sizeof(*sorted));
	json_t *waves = json_array(), *deps = json_object(), *provs = json_object();
	json_t *deplist = json_array(), *provlist = json_array(), *wave = NULL;
	double est = 0;
	const char *key;
	json_t *v;
	int r = 0;

	*plan = NULL;
	*names = json_array();
	if (sorted == NULL || !waves || !deps || !provs || !deplist || !provlist || !*names) {
		r = rk_error_set(err, RK_ENOMEM, "out of memory");
		goto out;
	}
	for (i = 0; i < n; i++)
		sorted[i] = json_array_get(rows, i);
	qsort(sorted, n, sizeof(*sorted), by_tier_then_name);
	for (i = 0; i < n; i++) {
		const json_t *row = sorted[i], *dep;
		const char *name = json_string_value(json_object_get(row, "name"));
		const char *prov = json_string_value(json_object_get(row, "provider"));
		json_int_t tier = json_integer_value(json_object_get(row, "tier"));
		size_t k;
		if (wave == NULL || json_integer_value(json_object_get(wave, "tier")) != tier) {
			wave = json_pack("{s:I, s:[]}", "tier", tier, "secrets");
			json_array_append_new(waves, wave);
		}
		json_array_append_new(json_object_get(wave, "secrets"), json_string(name));
		json_array_append_new(*names, json_string(name));
		count_for(provs, prov, "secrets");
		json_array_foreach(json_object_get(json_object_get(row, "spec"), "dependents"), k, dep) {
			const char *dk = json_string_value(json_object_get(dep, "key"));
			json_t *de = json_object_get(deps, dk);
			if (de == NULL) {
				de = json_pack("{s:s, s:[]}", "dependent", dk, "secrets");
				json_object_set_new(deps, dk, de);
				json_array_append(deplist, de);
				if (json_object_get(dep, "provider") != NULL)
					count_for(provs, json_string_value(json_object_get(dep, "provider")),
						  "restarts");
			}
			json_array_append_new(json_object_get(de, "secrets"), json_string(name));
		}
	}
	/* Calls and time per provider: they run side by side, so the run takes the longest. */
	json_object_foreach(provs, key, v) {
		struct rk_provider *p = NULL;
		struct rk_plan_calls pc = { 0 };
		json_int_t ns = json_integer_value(json_object_get(v, "secrets"));
		json_int_t nr = json_integer_value(json_object_get(v, "restarts"));
		double secs = 0;
		unsigned calls;
		if ((r = rk_ctx_provider(ctx, key, &p, err)) < 0)
			goto out;
		if (p->ops->plan_calls != NULL)
			p->ops->plan_calls(p, &pc);
		calls = (unsigned)ns * (pc.reads + pc.writes) + (unsigned)nr * pc.restart_calls;
		if (pc.rps > 0)
			secs = calls / pc.rps;
		if (secs > est)
			est = secs;
		json_object_set_new(v, "type", json_string(p->ops->type));
		json_object_set_new(v, "calls", json_integer(calls));
		json_object_set_new(v, "rate_limit_rps", json_real(pc.rps));
		json_object_set_new(v, "concurrency", json_integer(pc.concurrency));
		json_object_set_new(v, "estimate_seconds", json_real(secs));
		json_array_append(provlist, v);
	}
	*plan = json_pack("{s:b, s:s, s:O, s:I, s:O, s:O, s:O, s:f}", "dry_run", 0, "reason",
			  reason ? reason : "", "scope", scope, "secrets", (json_int_t)n, "waves",
			  waves, "dependents", deplist, "providers", provlist, "estimate_seconds",
			  est);
	if (*plan == NULL)
		r = rk_error_set(err, RK_ENOMEM, "out of memory");
out:
	if (r < 0) {
		json_decref(*names);
		*names = NULL;
	}
	free(sorted);
	json_decref(waves);
	json_decref(deps);
	json_decref(provs);
	json_decref(deplist);
	json_decref(provlist);
	return r;
}

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

/* Pauses (on) or lets go on the scheduler: a lock in the state DB naming the run. */
static void
pause_scheduler(struct rk_ctx *ctx, const char *run_id, int on)
{
	struct rk_error err = { 0 };

	if ((on ? rk_store_lock_set(ctx->store, "scheduler", run_id, rk_now(ctx), &err)
		: rk_store_lock_clear(ctx->store, "scheduler", run_id, &err)) < 0)
		rk_log_err(&err, "cannot %s the scheduler", on ? "pause" : "resume");
}

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
	struct sel sels[SEL_MAX];
	struct progress pg;
	struct rk_ha *ha = NULL;
	int64_t wait_ms = 0;
	size_t nsel = 0, i;
	const char *resume = NULL;
	int dry = 0, yes = 0, c, rc = 1;
	long long par;
	json_t *rows = NULL, *scope = json_array(), *in = NULL, *plan = NULL, *names = NULL;
	json_t *rep = NULL, *row;
	char run_id[64];

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'm': ro.reason = optarg; break;
		case 's':
			if (nsel == SEL_MAX) {
				json_decref(scope);
				return rk_cli_usage(usage, "at most %d --scope selectors", SEL_MAX);
			}
			if (parse_sel(optarg, &sels[nsel]) < 0) {
				json_decref(scope);
				return rk_cli_usage(usage, "bad --scope '%s': use provider=NAME, "
						    "environment=ENV, owner=OWNER, tier<=N or "
						    "name=GLOB", optarg);
			}
			json_array_append_new(scope, json_string(optarg));
			nsel++;
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
		if (nsel || dry || ro.reason)
			return rk_cli_usage(usage, "--resume RUN takes no --scope, --dry-run or --reason");
		if ((c = rk_cli_open(ctx, 1)) != 0)
			return c;
		pause_scheduler(ctx, resume, 1);
		rc = rk_cli_resume(ctx, resume, ro.parallel, wait_ms);
		pause_scheduler(ctx, resume, 0);
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
	if (rk_store_secret_list(ctx->store, &rows, &err) < 0 || (in = json_array()) == NULL) {
		rc = rk_cli_fail(&err, "nothing was rotated");
		goto out;
	}
	json_array_foreach(rows, i, row)
		if (in_scope(row, sels, nsel))
			json_array_append(in, row);
	if (json_array_size(in) == 0) {
		rk_error_set(&err, RK_ENOTFOUND, "no secret in the inventory matches the scope%s",
			     nsel ? "" : " (the inventory is empty)");
		rc = rk_cli_fail(&err, "nothing was rotated");
		goto out;
	}
	if (make_plan(ctx, in, ro.reason, scope, &plan, &names, &err) < 0) {
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
	pause_scheduler(ctx, run_id, 1);
	rk_cli_catch_stop(ctx);
	c = rk_engine_rotate(ctx, names, &ro, &rep, &err);
	pause_scheduler(ctx, run_id, 0);
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
	json_decref(rows);
	json_decref(in);
	json_decref(scope);
	json_decref(plan);
	json_decref(names);
	json_decref(rep);
	return rc;
}
