/*
 * The startup guard, as `rekey guard` and the rekey-guard binary both run it
 * (include/rekey/guard.h). Decides, before a process starts, whether its
 * secrets and settings are fit for it: present, not a known default or
 * placeholder, long and strong enough, not overdue, not reused from another
 * environment, and plain settings within the rules. Prints the variable, the
 * rule and the fix, never a value. Touches the state DB only for --secret and
 * --inventory (through the state ops), and never the network otherwise.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rekey/check.h"
#include "rekey/cli.h"
#include "rekey/config.h"
#include "rekey/ctx.h"
#include "rekey/embedded.h"
#include "rekey/guard.h"
#include "rekey/log.h"
#include "rekey/policy.h"
#include "rekey/rules.h"
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

void
rk_guard_add_check(struct rk_guard *g, const char *source, const char *name, const char *check, int ok,
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

/* Built once per policy rather than per value. */
int
rk_guard_policy_rules(const struct rk_guard *g, const struct rk_policy *p, struct rk_value_rules *rules,
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

int
rk_guard_check_value(struct rk_guard *g, const char *source, const char *name,
	    const struct rk_value_rules *rules, const unsigned char *v, size_t len,
	    struct rk_error *err)
{
	struct rk_check_result res[RK_CHECK_VALUE_COUNT];

	rk_check_value(v, len, rules, res);
	for (int i = 0; i < RK_CHECK_VALUE_COUNT; i++)
		rk_guard_add_check(g, source, name, rk_check_name(res[i].id), res[i].ok, res[i].reason);
	/* Reuse across environments needs the recorded fingerprints. */
	if (g->inventory && v != NULL && len > 0 && g->environment != NULL)
		return g->state->check_reuse(g, source, name, v, len, err);
	return 0;
}

static int
check_file(struct rk_guard *g, const struct rk_value_rules *rules, const char *path,
	   struct rk_error *err)
{
	char *text = NULL, reason[400];
	size_t len = 0;
	struct rk_error ferr = { 0 };
	int r;

	if (rk_read_file(path, GUARD_FILE_MAX, &text, &len, &ferr) < 0) {
		snprintf(reason, sizeof(reason), "cannot be read (%s); mount or create it",
			 ferr.msg);
		rk_guard_add_check(g, "file", path, "present", 0, reason);
		return 0;
	}
	/* Kubernetes and Docker secret mounts often end in one newline that is not the secret. */
	if (len > 0 && text[len - 1] == '\n')
		len--;
	if (len > 0 && text[len - 1] == '\r')
		len--;
	r = rk_guard_check_value(g, "file", path, rules, (const unsigned char *)text, len, err);
	rk_wipe_free(text, len);	/* the newline stripped above held no secret */
	return r;
}

static void
print_text(const struct rk_guard *g, int warn_only)
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
rk_guard_run(struct rk_ctx *ctx, int argc, char **argv, const struct rk_guard_state_ops *state,
	     const struct rk_guard_handover *handover)
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
	struct rk_guard g = { .ctx = ctx, .state = state };
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
	if ((nsecret > 0 || g.inventory) && state == NULL) {
		/* rekey-guard has no state DB and no providers: rekey makes this run. */
		handover->run(handover->arg, &err);
		return rk_cli_fail(&err, "--secret and --inventory need the full rekey");
	}
	if (rk_ctx_load_config(ctx, &err) < 0) {
		/*
		 * rekey-guard carries only the local provider: a configuration that
		 * names another type (or is wrong) is rekey's to judge and report.
		 * When rekey is not there, the error stands as it is.
		 */
		if (handover != NULL) {
			struct rk_error herr = { 0 };

			handover->run(handover->arg, &herr);
			rk_log(RK_LOG_WARN, "guard.handover", "error", herr.msg,
			       "msg", "cannot hand the configuration over to rekey, ignoring", NULL);
		}
		return rk_cli_fail(&err, "cannot load configuration");
	}
	if ((pol = rk_policy_find(ctx->policies, policy_name ? policy_name : "default")) == NULL) {
		rk_error_set(&err, RK_EINVAL, "no policy named '%s' (built in or in policy_dir)",
			     policy_name);
		return rk_cli_fail(&err, "guard");
	}
	if (rules_path != NULL && rk_rules_load(&rules, rules_path, &err) < 0)
		return rk_cli_fail(&err, "invalid rules file");
	g.environment = environment ? environment : ctx->cfg->environment;
	if (g.inventory && g.environment == NULL) {
		rc = rk_cli_usage(usage, "--inventory needs --environment ENV (or environment: in "
				  "rekey.yaml)");
		goto out;
	}
	kd = rk_embedded_find("policy/known-defaults.txt");
	if (kd == NULL || rk_defaults_parse(&g.defaults, "policy/known-defaults.txt (built-in)",
					    kd->data, kd->len, &err) < 0) {
		rc = rk_cli_fail(&err, "cannot load the known-defaults list");
		goto out;
	}
	/* The large corpus is hashed const data: attaching it costs nothing. */
	rk_defaults_set_corpus(g.defaults, &rk_known_secrets);
	if (rk_guard_policy_rules(&g, pol, &pol_rules, &pol_forbid, &err) < 0) {
		rc = rk_cli_fail(&err, "invalid forbid list of policy '%s'", pol->name);
		goto out;
	}
	if ((nsecret > 0 || g.inventory) && state->open(ctx, &err) < 0) {
		rc = rk_cli_fail(&err, "--secret and --inventory need the state");
		goto out;
	}
	g.checks = json_array();
	for (size_t i = 0; i < nenv; i++) {
		const char *v = getenv(envs[i]);
		if (rk_guard_check_value(&g, "env", envs[i], &pol_rules, (const unsigned char *)v,
				v ? strlen(v) : 0,
				&err) < 0)
			goto fail;
	}
	for (size_t i = 0; i < nfile; i++)
		if (check_file(&g, &pol_rules, files[i], &err) < 0)
			goto fail;
	for (size_t i = 0; i < nsecret; i++)
		if (state->check_secret(&g, secrets[i], policy_name ? &pol_rules : NULL, &err) < 0)
			goto fail;
	if (g.inventory && state->check_inventory(&g, &err) < 0)
		goto fail;
	for (size_t i = 0; rules && i < rk_rules_count(rules); i++) {
		struct rk_rule_result rr;
		char reason[800];
		rk_rules_eval(rules, i, &rr);
		snprintf(reason, sizeof(reason), "%s (rule at %s)", rr.reason, rr.where);
		rk_guard_add_check(&g, "setting", rr.setting, rr.rule, rr.ok, reason);
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
