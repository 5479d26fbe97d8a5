/*
 * rekey guard: the startup guard. Decides, before a process starts, whether
 * its secrets and settings are fit for it: present, not a known default or
 * placeholder, long and strong enough, not overdue, not reused from another
 * environment, and plain settings within the rules. Prints the variable, the
 * rule and the fix, never a value. Touches the state DB only for --secret and
 * --inventory, and never the network otherwise.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rekey/check.h"
#include "rekey/cli.h"
#include "rekey/config.h"
#include "rekey/crypto.h"
#include "rekey/ctx.h"
#include "rekey/embedded.h"
#include "rekey/engine.h"
#include "rekey/policy.h"
#include "rekey/provider.h"
#include "rekey/rules.h"
#include "rekey/secret.h"
#include "rekey/store.h"
#include "rekey/util.h"

#define MAX_SOURCES 256
#define GUARD_FILE_MAX (1u << 20)

static const char usage[] =
	"usage: rekey guard [--env-var NAME]... [--file PATH]... [--secret NAME]...\n"
	"                   [--inventory] [--policy P] [--rules FILE] [--environment ENV]\n"
	"                   [--warn-only] [--output json]\n\n"
	"Checks each value (from this process's environment, a file such as a mounted\n"
	"Kubernetes/Docker secret, or an inventory secret read from its provider):\n"
	"present, not a known default or placeholder, at least the policy's min_length,\n"
	"at least its min_entropy_bits (zxcvbn). With --inventory, also that no\n"
	"inventoried secret of ENV is overdue beyond grace and that no value equals one\n"
	"recorded for another environment. --rules adds rules on plain settings.\n"
	"The policy is --policy, else `default` (>= 16 characters, >= 64 bits).\n"
	"Exit: 0 pass, 1 a violation (0 with --warn-only), 2 usage or configuration.\n"
	"Never prints a value.\n";

struct guard {
	struct rk_ctx *ctx;
	json_t *checks;		/* every check with its result */
	int violations;
	struct rk_defaults *defaults;
	const char *environment;
	int inventory;
};

static void
add_check(struct guard *g, const char *source, const char *name, const char *check, int ok,
	  const char *reason)
{
	if (ok < 0)
		return;	/* not applicable */
	if (!ok)
		g->violations++;
	json_array_append_new(g->checks, json_pack("{s:s, s:s, s:s, s:b, s:s}", "source", source,
						   "name", name, "check", check, "ok", ok,
						   "reason", ok ? "" : reason));
}

/*
 * The value rules of a policy, built once per policy rather than per value.
 * *forbid (the policy's own list, NULL when it has none) is the caller's to
 * free, also when this fails.
 */
static int
policy_rules(const struct guard *g, const struct rk_policy *p, struct rk_value_rules *rules,
	     struct rk_defaults **forbid, struct rk_error *err)
{
	int r;

	memset(rules, 0, sizeof(*rules));
	*forbid = NULL;
	rules->min_length = p->min_length;
	rules->min_entropy_bits = p->min_entropy_bits;
	rules->defaults = g->defaults;
	if (p->forbid == NULL)
		return 0;
	if ((r = rk_defaults_parse(forbid, p->source, "", 0, err)) < 0)
		return r;
	for (char **f = p->forbid; *f; f++)
		if ((r = rk_defaults_add(*forbid, *f, err)) < 0)
			return r;
	rules->forbid = *forbid;
	return 0;
}

static int
check_value(struct guard *g, const char *source, const char *name,
	    const struct rk_value_rules *rules, const unsigned char *v, size_t len,
	    struct rk_error *err)
{
	struct rk_check_result res[RK_CHECK_VALUE_COUNT];
	int r;

	rk_check_value(v, len, rules, res);
	for (int i = 0; i < RK_CHECK_VALUE_COUNT; i++)
		add_check(g, source, name, rk_check_name(res[i].id), res[i].ok, res[i].reason);
	/* Reuse across environments needs the recorded fingerprints. */
	if (g->inventory && v != NULL && len > 0 && g->environment != NULL) {
		struct rk_secret *s = NULL;
		char fp[RK_FP_HEX_LEN + 1], *other = NULL, reason[400];
		if ((r = rk_secret_from(&s, v, len, err)) < 0)
			return r;
		rk_fingerprint(g->ctx->keys, s, fp);
		rk_secret_free(s);
		if ((r = rk_store_fp_other_env(g->ctx->store, fp, g->environment, &other, err)) < 0)
			return r;
		snprintf(reason, sizeof(reason),
			 "is the same value as inventory secret '%s' of another environment; each "
			 "environment needs its own: rotate one of them", other ? other : "");
		add_check(g, source, name, "reused_across_environments", other == NULL, reason);
		free(other);
	}
	return 0;
}

static int
check_file(struct guard *g, const struct rk_value_rules *rules, const char *path,
	   struct rk_error *err)
{
	char *text = NULL, reason[400];
	size_t len = 0;
	struct rk_error ferr = { 0 };
	int r;

	if (rk_read_file(path, GUARD_FILE_MAX, &text, &len, &ferr) < 0) {
		snprintf(reason, sizeof(reason), "cannot be read (%s); mount or create it",
			 ferr.msg);
		add_check(g, "file", path, "present", 0, reason);
		return 0;
	}
	/* Kubernetes and Docker secret mounts often end in one newline that is not the secret. */
	if (len > 0 && text[len - 1] == '\n')
		len--;
	if (len > 0 && text[len - 1] == '\r')
		len--;
	r = check_value(g, "file", path, rules, (const unsigned char *)text, len, err);
	rk_wipe_free(text, len);	/* the newline stripped above held no secret */
	return r;
}

static int
check_secret(struct guard *g, const char *name, const struct rk_value_rules *forced,
	     struct rk_error *err)
{
	json_t *row = NULL;
	const json_t *spec;
	const struct rk_policy *p;
	struct rk_value_rules own;
	struct rk_defaults *own_forbid = NULL;
	struct rk_provider *prov;
	struct rk_secret *val = NULL;
	struct rk_version ver;
	struct rk_error e2 = { 0 };
	char reason[600];
	int r;

	if ((r = rk_store_secret_get(g->ctx->store, name, &row, err)) < 0)
		return r;
	spec = json_object_get(row, "spec");
	if (forced == NULL) {
		/* Without --policy, a secret is judged by its own policy. */
		p = rk_policy_find(g->ctx->policies,
				   json_string_value(json_object_get(spec, "policy")));
		if (p == NULL) {
			r = rk_error_set(err, RK_EINVAL,
					 "secret '%s' uses a policy that no longer exists", name);
			goto out;
		}
		if ((r = policy_rules(g, p, &own, &own_forbid, err)) < 0)
			goto out;
	}
	if ((r = rk_ctx_provider(g->ctx, json_string_value(json_object_get(spec, "provider")),
				 &prov, err)) < 0)
		goto out;
	if (rk_provider_read(prov, json_object_get(spec, "locator"), &val, &ver, &e2) < 0) {
		if (e2.code != RK_ENOTFOUND) {
			*err = e2;
			r = e2.code;
			goto out;
		}
		snprintf(reason, sizeof(reason), "does not exist in provider '%s': run `rekey "
			 "rotate %s`", prov->name, name);
		add_check(g, "secret", name, "present", 0, reason);
		goto out;
	}
	r = check_value(g, "secret", name, forced ? forced : &own, rk_secret_cdata(val),
			rk_secret_len(val), err);
out:
	rk_defaults_free(own_forbid);
	rk_secret_free(val);
	json_decref(row);
	return r;
}

static int
check_inventory(struct guard *g, struct rk_error *err)
{
	json_t *plan = NULL, *e;
	size_t i;
	int r;

	if ((r = rk_engine_plan(g->ctx, rk_now(g->ctx), &plan, err)) < 0)
		return r;
	json_array_foreach(plan, i, e) {
		const char *name = json_string_value(json_object_get(e, "name"));
		char reason[500];
		if (g->environment &&
		    strcmp(json_string_value(json_object_get(e, "environment")), g->environment) != 0)
			continue;
		snprintf(reason, sizeof(reason), "is overdue beyond its policy's grace (%s): run "
			 "`rekey rotate %s`", json_string_value(json_object_get(e, "reason")), name);
		add_check(g, "inventory", name, "not_overdue",
			  !json_is_true(json_object_get(e, "expired")), reason);
	}
	json_decref(plan);
	return 0;
}

static void
print_text(const struct guard *g, int warn_only)
{
	size_t i;
	json_t *c;

	json_array_foreach(g->checks, i, c) {
		if (json_is_true(json_object_get(c, "ok")))
			continue;
		printf("%s %s %s: %s: %s\n", warn_only ? "WARN" : "FAIL",
		       json_string_value(json_object_get(c, "source")),
		       json_string_value(json_object_get(c, "name")),
		       json_string_value(json_object_get(c, "check")),
		       json_string_value(json_object_get(c, "reason")));
	}
	printf("guard: %zu checks, %d violation%s%s\n", json_array_size(g->checks), g->violations,
	       g->violations == 1 ? "" : "s", g->violations && warn_only ? " (warn only)" : "");
}

int
cmd_guard(struct rk_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "env-var", required_argument, NULL, 'e' },
		{ "file", required_argument, NULL, 'f' },
		{ "secret", required_argument, NULL, 's' },
		{ "inventory", no_argument, NULL, 'i' },
		{ "policy", required_argument, NULL, 'p' },
		{ "rules", required_argument, NULL, 'r' },
		{ "environment", required_argument, NULL, 'E' },
		{ "warn-only", no_argument, NULL, 'w' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *envs[MAX_SOURCES], *files[MAX_SOURCES], *secrets[MAX_SOURCES];
	size_t nenv = 0, nfile = 0, nsecret = 0;
	const char *policy_name = NULL, *rules_path = NULL, *environment = NULL;
	int warn_only = 0, c, rc = 1;
	struct guard g = { .ctx = ctx };
	struct rk_rules *rules = NULL;
	struct rk_value_rules pol_rules;
	struct rk_defaults *pol_forbid = NULL;
	const struct rk_policy *pol;
	const struct rk_embedded_file *kd;
	struct rk_error err = { 0 };

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'e':
		case 'f':
		case 's': {
			const char **list = c == 'e' ? envs : c == 'f' ? files : secrets;
			size_t *n = c == 'e' ? &nenv : c == 'f' ? &nfile : &nsecret;
			if (*n == MAX_SOURCES)
				return rk_cli_usage(usage, "at most %d of each source", MAX_SOURCES);
			list[(*n)++] = optarg;
			break;
		}
		case 'i': g.inventory = 1; break;
		case 'p': policy_name = optarg; break;
		case 'r': rules_path = optarg; break;
		case 'E': environment = optarg; break;
		case 'w': warn_only = 1; break;
		case 'h': fputs(usage, stdout); return 0;
		default: return rk_cli_usage(usage, "bad arguments");
		}
	}
	if (optind != argc)
		return rk_cli_usage(usage, "unexpected argument '%s'", argv[optind]);
	if (nenv + nfile + nsecret == 0 && !g.inventory && rules_path == NULL)
		return rk_cli_usage(usage, "nothing to check: give --env-var, --file, --secret, "
				    "--inventory or --rules");
	if (rk_ctx_load_config(ctx, &err) < 0)
		return rk_cli_fail(&err, "cannot load configuration");
	if ((pol = rk_policy_find(ctx->policies, policy_name ? policy_name : "default")) == NULL) {
		rk_error_set(&err, RK_EINVAL, "no policy named '%s' (built in or in policy_dir)",
			     policy_name);
		return rk_cli_fail(&err, "guard");
	}
	if (rules_path != NULL && rk_rules_load(&rules, rules_path, &err) < 0)
		return rk_cli_fail(&err, "invalid rules file");
	g.environment = environment ? environment : ctx->cfg->environment;
	if (g.inventory && g.environment == NULL)
		return rk_cli_usage(usage, "--inventory needs --environment ENV (or environment: in "
				    "rekey.yaml)");
	kd = rk_embedded_find("policy/known-defaults.txt");
	if (kd == NULL || rk_defaults_parse(&g.defaults, "policy/known-defaults.txt (built-in)",
					    kd->data, kd->len, &err) < 0) {
		rc = rk_cli_fail(&err, "cannot load the known-defaults list");
		goto out;
	}
	if (policy_rules(&g, pol, &pol_rules, &pol_forbid, &err) < 0) {
		rc = rk_cli_fail(&err, "invalid forbid list of policy '%s'", pol->name);
		goto out;
	}
	if ((nsecret > 0 || g.inventory) && rk_ctx_open_state(ctx, 0, &err) < 0) {
		rc = rk_cli_fail(&err, "--secret and --inventory need the state");
		goto out;
	}
	g.checks = json_array();
	for (size_t i = 0; i < nenv; i++) {
		const char *v = getenv(envs[i]);
		if (check_value(&g, "env", envs[i], &pol_rules, (const unsigned char *)v,
				v ? strlen(v) : 0,
				&err) < 0)
			goto fail;
	}
	for (size_t i = 0; i < nfile; i++)
		if (check_file(&g, &pol_rules, files[i], &err) < 0)
			goto fail;
	for (size_t i = 0; i < nsecret; i++)
		if (check_secret(&g, secrets[i], policy_name ? &pol_rules : NULL, &err) < 0)
			goto fail;
	if (g.inventory && check_inventory(&g, &err) < 0)
		goto fail;
	for (size_t i = 0; rules && i < rk_rules_count(rules); i++) {
		struct rk_rule_result rr;
		char reason[800];
		rk_rules_eval(rules, i, &rr);
		snprintf(reason, sizeof(reason), "%s (rule at %s)", rr.reason, rr.where);
		add_check(&g, "setting", rr.setting, rr.rule, rr.ok, reason);
	}
	if (ctx->output_json) {
		json_t *j = json_pack("{s:b, s:i, s:b, s:O}", "ok", g.violations == 0, "violations",
				      g.violations, "warn_only", warn_only, "checks", g.checks);
		rk_print_json(j);
		json_decref(j);
	} else {
		print_text(&g, warn_only);
	}
	rc = g.violations && !warn_only ? 1 : 0;
	goto out;
fail:
	rc = rk_cli_fail(&err, "guard could not complete its checks");
	if (rc == 0)
		rc = 1;
out:
	json_decref(g.checks);
	rk_defaults_free(pol_forbid);
	rk_defaults_free(g.defaults);
	rk_rules_free(rules);
	return rc;
}
