/*
 * Emergency mode's shared half: which secrets a scope takes, the plan of a
 * run over them, and the scheduler pause (see include/rekey/emergency.h).
 */
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "rekey/ctx.h"
#include "rekey/emergency.h"
#include "rekey/log.h"
#include "rekey/provider.h"
#include "rekey/store.h"
#include "rekey/util.h"

int
rk_scope_add(struct rk_scope *sc, const char *arg)
{
	static const struct {
		const char *prefix;
		enum rk_sel_kind kind;
	} forms[] = {
		{ "provider=", RK_SEL_PROVIDER }, { "environment=", RK_SEL_ENVIRONMENT },
		{ "owner=", RK_SEL_OWNER },       { "tier<=", RK_SEL_TIER },
		{ "name=", RK_SEL_NAME },
	};
	struct rk_sel *s = &sc->sel[sc->n];

	if (sc->n >= RK_SCOPE_MAX)
		return -1;

	for (size_t i = 0; i < RK_ARRAY_SIZE(forms); i++) {
		size_t n = strlen(forms[i].prefix);
		if (strncmp(arg, forms[i].prefix, n) != 0)
			continue;
		s->kind = forms[i].kind;
		s->value = arg + n;
		if (s->value[0] == '\0')
			return -1;
		if (s->kind == RK_SEL_TIER && rk_parse_int(s->value, 0, 1000, &s->tier) < 0)
			return -1;
		sc->n++;
		return 0;
	}
	return -1;
}

static int
in_scope(const json_t *row, const struct rk_scope *sc)
{
	const struct rk_sel *sels = sc->sel;

	for (size_t i = 0; i < sc->n; i++) {
		const char *v = NULL;
		switch (sels[i].kind) {
		case RK_SEL_PROVIDER: v = json_string_value(json_object_get(row, "provider")); break;
		case RK_SEL_ENVIRONMENT: v = json_string_value(json_object_get(row, "environment")); break;
		case RK_SEL_OWNER: v = json_string_value(json_object_get(row, "owner")); break;
		case RK_SEL_NAME:
			if (fnmatch(sels[i].value, json_string_value(json_object_get(row, "name")),
				    0) != 0)
				return 0;
			continue;
		case RK_SEL_TIER:
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

/* The plan of rows (in scope): see rk_emergency_plan. */
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

void
rk_emergency_pause(struct rk_ctx *ctx, const char *run_id, int on)
{
	struct rk_error err = { 0 };

	if ((on ? rk_store_lock_set(ctx->store, "scheduler", run_id, rk_now(ctx), &err)
		: rk_store_lock_clear(ctx->store, "scheduler", run_id, &err)) < 0)
		rk_log_err(&err, "cannot %s the scheduler", on ? "pause" : "resume");
}

int
rk_emergency_plan(struct rk_ctx *ctx, const struct rk_scope *scope, const json_t *scope_json,
		  const char *reason, json_t **plan, json_t **names, struct rk_error *err)
{
	json_t *rows = NULL, *in = json_array(), *row;
	size_t i;
	int r;

	*plan = *names = NULL;
	if (in == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	if ((r = rk_store_secret_list(ctx->store, &rows, err)) < 0)
		goto out;
	json_array_foreach(rows, i, row)
		if (in_scope(row, scope))
			json_array_append(in, row);
	if (json_array_size(in) == 0) {
		r = rk_error_set(err, RK_ENOTFOUND, "no secret in the inventory matches the scope%s",
				 scope->n ? "" : " (the inventory is empty)");
		goto out;
	}
	r = make_plan(ctx, in, reason, scope_json, plan, names, err);
out:
	json_decref(rows);
	json_decref(in);
	return r;
}
