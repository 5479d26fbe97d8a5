/*
 * rekey guard: the startup guard as a command of rekey. The guard itself is
 * src/guard.c, shared with the rekey-guard binary; this file adds what only
 * rekey links: the checks that read the state DB and the providers
 * (--secret, --inventory, reuse across environments).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rekey/check.h"
#include "rekey/cli.h"
#include "rekey/crypto.h"
#include "rekey/ctx.h"
#include "rekey/engine.h"
#include "rekey/guard.h"
#include "rekey/policy.h"
#include "rekey/provider.h"
#include "rekey/secret.h"
#include "rekey/store.h"
#include "rekey/util.h"

static int
open_state(struct rk_ctx *ctx, struct rk_error *err)
{
	return rk_ctx_open_state(ctx, 0, err);
}

static int
check_reuse(struct rk_guard *g, const char *source, const char *name, const unsigned char *v,
	    size_t len, struct rk_error *err)
{
	struct rk_secret *s = NULL;
	char fp[RK_FP_HEX_LEN + 1], *other = NULL, reason[400];
	int r;

	if ((r = rk_secret_from(&s, v, len, err)) < 0)
		return r;
	rk_fingerprint(g->ctx->keys, s, fp);
	rk_secret_free(s);
	if ((r = rk_store_fp_other_env(g->ctx->store, fp, g->environment, &other, err)) < 0)
		return r;
	snprintf(reason, sizeof(reason),
		 "is the same value as inventory secret '%s' of another environment; each "
		 "environment needs its own: rotate one of them", other ? other : "");
	rk_guard_add_check(g, source, name, "reused_across_environments", other == NULL, reason);
	free(other);
	return 0;
}

static int
check_secret(struct rk_guard *g, const char *name, const struct rk_value_rules *forced,
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
	struct rk_loc loc = { 0 };
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
		if ((r = rk_guard_policy_rules(g, p, &own, &own_forbid, err)) < 0)
			goto out;
	}
	if ((r = rk_ctx_provider(g->ctx, json_string_value(json_object_get(spec, "provider")),
				 &prov, err)) < 0)
		goto out;
	if ((r = rk_loc_parse(&loc, prov, json_object_get(spec, "locator"), err)) < 0)
		goto out;
	/* The guard runs once at a service's start: no deadline beyond the provider's own. */
	if (rk_provider_read(prov, NULL, &loc, &val, &ver, &e2) < 0) {
		if (e2.code != RK_ENOTFOUND) {
			*err = e2;
			r = e2.code;
			goto out;
		}
		snprintf(reason, sizeof(reason), "does not exist in provider '%s': run `rekey "
			 "rotate %s`", prov->name, name);
		rk_guard_add_check(g, "secret", name, "present", 0, reason);
		goto out;
	}
	r = rk_guard_check_value(g, "secret", name, forced ? forced : &own, rk_secret_cdata(val),
			rk_secret_len(val), err);
out:
	rk_defaults_free(own_forbid);
	rk_secret_free(val);
	rk_loc_free(&loc);
	json_decref(row);
	return r;
}

static int
check_inventory(struct rk_guard *g, struct rk_error *err)
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
		rk_guard_add_check(g, "inventory", name, "not_overdue",
			  !json_is_true(json_object_get(e, "expired")), reason);
	}
	json_decref(plan);
	return 0;
}

static const struct rk_guard_state_ops state_ops = {
	.open = open_state,
	.check_reuse = check_reuse,
	.check_secret = check_secret,
	.check_inventory = check_inventory,
};

int
cmd_guard(struct rk_ctx *ctx, int argc, char **argv)
{
	return rk_guard_run(ctx, argc, argv, &state_ops, NULL);
}
