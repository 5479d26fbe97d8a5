/*
 * rekey doctor: checks the configuration, the state directory, and for every
 * provider its reachability, TLS, authentication and the permissions rekey
 * needs on the inventory's paths. One line per check; changes nothing.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rekey/audit.h"
#include "rekey/cli.h"
#include "rekey/config.h"
#include "rekey/crypto.h"
#include "rekey/ctx.h"
#include "rekey/policy.h"
#include "rekey/provider.h"
#include "rekey/store.h"
#include "rekey/util.h"

static const char usage[] =
	"usage: rekey doctor\n\n"
	"Checks rekey.yaml and the policies, the state directory and DB, and for each\n"
	"provider: reachability, TLS, authentication and the permissions rekey needs on\n"
	"the paths of the inventory. Prints one line per check and exits 1 when any\n"
	"fails, 2 when the configuration itself does not load. Changes nothing.\n";

struct report {
	json_t *checks;
	int failed;
	int json;
};

static void
report_line(const char *line, int ok, void *arg)
{
	struct report *rep = arg;

	if (!ok)
		rep->failed++;
	if (rep->json)
		json_array_append_new(rep->checks, json_pack("{s:s, s:b}", "check", line, "ok", ok));
	else
		printf("%s %s\n", ok ? "ok  " : "FAIL", line);
}

static void
reportf(struct report *rep, int ok, const char *fmt, ...) RK_PRINTF(3, 4);

static void
reportf(struct report *rep, int ok, const char *fmt, ...)
{
	char line[800];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	report_line(line, ok, rep);
}

/* The dependents restarted through provider cp, each once. */
static void
doctor_targets(struct report *rep, const struct rk_config_provider *cp, struct rk_provider *p,
	       const json_t *rows)
{
	json_t *seen = json_object();
	const char **targets = NULL;
	size_t n = 0, k, d;
	const json_t *row, *dep;
	struct rk_error err = { 0 };

	json_array_foreach(rows, k, row) {
		json_array_foreach(json_object_get(json_object_get(row, "spec"), "dependents"), d, dep) {
			const char *prov = json_string_value(json_object_get(dep, "provider"));
			const char *t = json_string_value(json_object_get(dep, "target"));
			const char **nt;
			if (prov == NULL || t == NULL || strcmp(prov, cp->name) != 0 ||
			    json_object_get(seen, t) != NULL)
				continue;
			if ((nt = realloc(targets, (n + 1) * sizeof(*nt))) == NULL)
				goto out;
			targets = nt;
			targets[n++] = t;
			json_object_set_new(seen, t, json_true());
		}
	}
	if (n > 0 && cp->ops->doctor_targets(p, targets, n, report_line, rep, &err) < 0)
		reportf(rep, 0, "provider %s: %s", cp->name, err.msg);
out:
	free(targets);
	json_decref(seen);
}

int
cmd_doctor(struct rk_ctx *ctx, int argc, char **argv)
{
	struct report rep = { .json = ctx->output_json };
	struct rk_error err = { 0 };
	json_t *rows = NULL;
	struct stat st;
	int64_t n;
	int config_rc = 0;

	if (rk_cli_wants_help(argc, argv, usage))
		return 0;
	if (argc > 1)
		return rk_cli_usage(usage, "doctor takes no arguments");
	rep.checks = json_array();
	if (rk_ctx_load_config(ctx, &err) < 0) {
		/* Every other check needs it: report it, and exit as every command does (2). */
		reportf(&rep, 0, "configuration: %s", err.msg);
		config_rc = rk_exit_code(err.code);
		goto out;
	}
	reportf(&rep, 1, "configuration %s and %zu policies load", ctx->cfg->path,
		rk_policy_count(ctx->policies));
	if (stat(ctx->cfg->state_dir, &st) != 0) {
		reportf(&rep, 0, "state directory %s does not exist: run `rekey init`",
			ctx->cfg->state_dir);
	} else if ((st.st_mode & 077) != 0) {
		reportf(&rep, 0, "state directory %s has mode %03o: run chmod 700 %s",
			ctx->cfg->state_dir, (unsigned)(st.st_mode & 0777), ctx->cfg->state_dir);
	} else if (rk_ctx_open_state(ctx, 0, &err) < 0) {
		reportf(&rep, 0, "state: %s", err.msg);
	} else {
		reportf(&rep, 1, "state directory %s, DB and keys are private and readable",
			ctx->cfg->state_dir);
		rk_error_clear(&err);
		if (rk_audit_verify(ctx->store, ctx->keys, &n, &err) < 0)
			reportf(&rep, 0, "audit log: %s", err.msg);
		else
			reportf(&rep, 1, "audit log intact (%lld rows)", (long long)n);
		rk_error_clear(&err);
		if (rk_store_secret_list(ctx->store, &rows, &err) < 0)
			reportf(&rep, 0, "inventory: %s", err.msg);
	}
	for (size_t i = 0; i < ctx->cfg->nproviders; i++) {
		const struct rk_config_provider *cp = &ctx->cfg->providers[i];
		struct rk_provider *p = NULL;
		const json_t **locs;
		size_t nlocs = 0, k;
		json_t *row;

		rk_error_clear(&err);
		if (ctx->keys == NULL) {
			reportf(&rep, 0, "provider %s: not checked (no state)", cp->name);
			continue;
		}
		if (rk_ctx_provider(ctx, cp->name, &p, &err) < 0) {
			reportf(&rep, 0, "provider %s (%s): %s", cp->name, cp->ops->type, err.msg);
			continue;
		}
		reportf(&rep, 1, "provider %s (%s): configuration valid", cp->name, cp->ops->type);
		if (cp->ops->doctor == NULL)
			continue;
		locs = calloc(json_array_size(rows) + 1, sizeof(*locs));
		json_array_foreach(rows, k, row) {
			const json_t *spec = json_object_get(row, "spec");
			if (locs && strcmp(json_string_value(json_object_get(spec, "provider")),
					   cp->name) == 0)
				locs[nlocs++] = json_object_get(spec, "locator");
		}
		if (cp->ops->doctor(p, locs, nlocs, report_line, &rep, &err) < 0)
			reportf(&rep, 0, "provider %s: %s", cp->name, err.msg);
		free(locs);
		if (cp->ops->doctor_targets != NULL)
			doctor_targets(&rep, cp, p, rows);
	}
out:
	if (rep.json) {
		json_t *j = json_pack("{s:b, s:O}", "ok", rep.failed == 0, "checks", rep.checks);
		rk_print_json(j);
		json_decref(j);
	} else {
		printf("%s\n", rep.failed ? "doctor: some checks failed" : "doctor: all checks passed");
	}
	json_decref(rep.checks);
	json_decref(rows);
	return config_rc ? config_rc : rep.failed ? 1 : 0;
}
