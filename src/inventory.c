/*
 * Inventory files into normalized secret specs, validated in one pass.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rekey/config.h"
#include "rekey/doc.h"
#include "rekey/inventory.h"
#include "rekey/policy.h"
#include "rekey/provider.h"
#include "rekey/util.h"

#define MAX_SECRETS 100000
#define DEFAULT_DEP_TIMEOUT_MS (60 * 1000)

static const struct rk_field top_fields[] = {
	{ "secrets", RK_T_ARRAY, RK_F_REQUIRED },
	{ NULL, 0, 0 },
};

static const struct rk_field secret_fields[] = {
	{ "name", RK_T_STRING, RK_F_REQUIRED },
	{ "provider", RK_T_STRING, 0 },
	{ "locator", RK_T_OBJECT, RK_F_REQUIRED },
	{ "policy", RK_T_STRING, 0 },
	{ "environment", RK_T_STRING, 0 },
	{ "owner", RK_T_STRING, 0 },
	{ "tier", RK_T_INT, 0 },
	{ "description", RK_T_STRING, 0 },
	{ "last_rotated", RK_T_STRING, 0 },
	{ "dependents", RK_T_ARRAY, 0 },
	{ NULL, 0, 0 },
};

static const struct rk_field k8s_dep_fields[] = {
	{ "kubernetes", RK_T_STRING, RK_F_REQUIRED },
	{ "timeout", RK_T_DURATION, 0 },
	{ NULL, 0, 0 },
};

static const struct rk_field exec_dep_fields[] = {
	{ "exec", RK_T_STRLIST, RK_F_REQUIRED },
	{ "timeout", RK_T_DURATION, 0 },
	{ NULL, 0, 0 },
};

static int
name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

int
rk_inventory_valid_name(const char *s)
{
	size_t n = strlen(s);
	const char *seg = s;

	if (n == 0 || n > 200 || s[0] == '-' || strstr(s, "..") != NULL)
		return 0;
	for (const char *p = s;; p++) {
		if (*p == '/' || *p == '\0') {
			size_t len = (size_t)(p - seg);
			/* "a//b", "/a", "a/" and "." segments: paths that name nothing. */
			if (len == 0 || (len == 1 && seg[0] == '.'))
				return 0;
			if (*p == '\0')
				return 1;
			seg = p + 1;
		} else if (!name_char(*p)) {
			return 0;
		}
	}
}

int
rk_inventory_valid_environment(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 64)
		return 0;
	for (; *s; s++)
		if (!name_char(*s))
			return 0;
	return 1;
}

static int
load_dependent(json_t *deps, const struct rk_doc *doc, const json_t *d,
	       const struct rk_config *cfg, struct rk_error *err)
{
	json_t *out = NULL;
	char *key = NULL;
	int64_t timeout_ms;
	int r;

	if (!json_is_object(d))
		return rk_doc_error(err, doc, d, RK_EINVAL,
				    "a dependent must be {kubernetes: PROVIDER/KIND/NAMESPACE/NAME}"
				    " or {exec: [argv...]}");
	if (json_object_get(d, "kubernetes") != NULL) {
		const char *ref, *slash;
		char prov[64];
		const struct rk_config_provider *cp;

		if ((r = rk_doc_check(doc, d, k8s_dep_fields, "dependent", err)) < 0)
			return r;
		ref = rk_doc_str(d, "kubernetes", "");
		slash = strchr(ref, '/');
		if (slash == NULL || (size_t)(slash - ref) >= sizeof(prov))
			return rk_doc_error_key(err, doc, d, "kubernetes", RK_EINVAL,
						"'%s' must be PROVIDER/KIND/NAMESPACE/NAME, e.g. "
						"cluster/deployment/payments/api", ref);
		memcpy(prov, ref, (size_t)(slash - ref));
		prov[slash - ref] = '\0';
		if ((cp = rk_config_provider(cfg, prov)) == NULL)
			return rk_doc_error_key(err, doc, d, "kubernetes", RK_EINVAL,
						"dependent names provider '%s', which is not in "
						"%s", prov, cfg->path);
		if (!(cp->ops->caps & RK_CAP_RESTART) || cp->ops->check_target == NULL)
			return rk_doc_error_key(err, doc, d, "kubernetes", RK_EINVAL,
						"provider '%s' (type %s) cannot restart workloads",
						prov, cp->ops->type);
		if ((r = cp->ops->check_target(slash + 1, err)) < 0) {
			char msg[sizeof(err->msg)];
			memcpy(msg, err->msg, sizeof(msg));
			rk_error_clear(err);
			return rk_doc_error_key(err, doc, d, "kubernetes", r, "%s", msg);
		}
		if ((r = rk_doc_duration_ms(doc, d, "timeout", 0, &timeout_ms, err)) < 0)
			return r;
		if (asprintf(&key, "kubernetes:%s", ref) < 0)
			return rk_error_set(err, RK_ENOMEM, "out of memory");
		out = json_pack("{s:s, s:s, s:s, s:I, s:s}", "kind", "kubernetes", "provider", prov,
				"target", slash + 1, "timeout_ms", (json_int_t)timeout_ms, "key", key);
	} else if (json_object_get(d, "exec") != NULL) {
		const json_t *argv;
		char *argv_text;

		if ((r = rk_doc_check(doc, d, exec_dep_fields, "dependent", err)) < 0)
			return r;
		argv = json_object_get(d, "exec");
		if (json_array_size(argv) == 0 || json_string_length(json_array_get(argv, 0)) == 0)
			return rk_doc_error_key(err, doc, d, "exec", RK_EINVAL,
						"exec must be a non-empty argv list (no shell), "
						"e.g. [systemctl, try-restart, app.service]");
		if ((r = rk_doc_duration_ms(doc, d, "timeout", DEFAULT_DEP_TIMEOUT_MS, &timeout_ms,
					    err)) < 0)
			return r;
		if (timeout_ms < 1000)
			return rk_doc_error_key(err, doc, d, "timeout", RK_EINVAL,
						"timeout must be at least 1s");
		if ((argv_text = json_dumps(argv, JSON_COMPACT)) == NULL)
			return rk_error_set(err, RK_ENOMEM, "out of memory");
		r = asprintf(&key, "exec:%s", argv_text);
		free(argv_text);
		if (r < 0)
			return rk_error_set(err, RK_ENOMEM, "out of memory");
		out = json_pack("{s:s, s:O, s:I, s:s}", "kind", "exec", "argv", argv, "timeout_ms",
				(json_int_t)timeout_ms, "key", key);
	} else {
		return rk_doc_error(err, doc, d, RK_EINVAL,
				    "a dependent must have a 'kubernetes' or an 'exec' key");
	}
	free(key);
	if (out == NULL || json_array_append_new(deps, out) < 0)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	return 0;
}

static int
load_secret(json_t *specs, const struct rk_doc *doc, const json_t *e, const struct rk_config *cfg,
	    const struct rk_policy_set *policies, int64_t now, struct rk_error *err)
{
	const struct rk_config_provider *cp;
	const char *name, *prov, *pol, *env;
	const json_t *loc, *deps, *d;
	json_t *spec = NULL, *depout = NULL;
	int64_t tier, last_rotated = 0;
	size_t i;
	int r;

	if ((r = rk_doc_check(doc, e, secret_fields, "secret", err)) < 0)
		return r;
	name = rk_doc_str(e, "name", "");
	if (!rk_inventory_valid_name(name))
		return rk_doc_error_key(err, doc, e, "name", RK_EINVAL,
					"secret name '%s' must be " RK_NAME_GRAMMAR, name);
	prov = rk_doc_str(e, "provider", "local");
	if ((cp = rk_config_provider(cfg, prov)) == NULL)
		return rk_doc_error_key(err, doc, e, "provider", RK_EINVAL,
					"secret '%s' names provider '%s', which is not configured in "
					"%s", name, prov, cfg->path);
	loc = json_object_get(e, "locator");
	{
		char what[300];
		snprintf(what, sizeof(what), "locator of '%s' (provider type %s)", name,
			 cp->ops->type);
		if ((r = rk_doc_check(doc, loc, cp->ops->locator_fields, what, err)) < 0)
			return r;
	}
	if (cp->ops->check_locator && (r = cp->ops->check_locator(doc, loc, err)) < 0)
		return r;
	pol = rk_doc_str(e, "policy", "default");
	if (rk_policy_find(policies, pol) == NULL)
		return rk_doc_error_key(err, doc, e, "policy", RK_EINVAL,
					"secret '%s' names policy '%s', which is neither built in nor "
					"in policy_dir", name, pol);
	env = rk_doc_str(e, "environment", cfg->environment ? cfg->environment
							     : RK_DEFAULT_ENVIRONMENT);
	if (!rk_inventory_valid_environment(env))
		return rk_doc_error_key(err, doc, e, "environment", RK_EINVAL,
					"environment '%s' of '%s' must be " RK_ENVIRONMENT_GRAMMAR,
					env, name);
	tier = rk_doc_int(e, "tier", RK_DEFAULT_TIER);
	if (tier < 0 || tier > 9)
		return rk_doc_error_key(err, doc, e, "tier", RK_EINVAL,
					"tier must be 0 (most critical) to 9");
	if (json_object_get(e, "last_rotated") != NULL &&
	    rk_parse_time(rk_doc_str(e, "last_rotated", ""), &last_rotated) < 0)
		return rk_doc_error_key(err, doc, e, "last_rotated", RK_EINVAL,
					"last_rotated must be a date (2026-01-31) or an RFC 3339 UTC "
					"time (2026-01-31T02:00:00Z)");
	/* A future time would make the secret look fresh until then: a typo, refused. */
	if (last_rotated > now + RK_LAST_ROTATED_SKEW_S) {
		char t[32];
		rk_format_time(now, t, sizeof(t));
		return rk_doc_error_key(err, doc, e, "last_rotated", RK_EINVAL,
					"last_rotated %s of '%s' is in the future (now: %s; up to "
					"%d minutes of clock skew are allowed)",
					rk_doc_str(e, "last_rotated", ""), name, t,
					RK_LAST_ROTATED_SKEW_S / 60);
	}
	if ((depout = json_array()) == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	deps = json_object_get(e, "dependents");
	json_array_foreach(deps, i, d) {
		if ((r = load_dependent(depout, doc, d, cfg, err)) < 0) {
			json_decref(depout);
			return r;
		}
	}
	spec = json_pack("{s:s, s:s, s:O, s:s, s:s, s:s, s:I, s:I, s:o}", "name", name,
			 "provider", prov, "locator", loc, "policy", pol, "environment", env,
			 "owner", rk_doc_str(e, "owner", ""), "tier", (json_int_t)tier,
			 "last_rotated", (json_int_t)last_rotated, "dependents", depout);
	if (spec == NULL || json_array_append_new(specs, spec) < 0)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	return 0;
}

int
rk_inventory_load(json_t **out, const char *path, const struct rk_config *cfg,
		  const struct rk_policy_set *policies, int64_t now, struct rk_error *err)
{
	struct rk_doc *doc = NULL;
	json_t *specs = NULL, *seen_names = NULL, *seen_locs = NULL;
	const json_t *list, *e;
	size_t i;
	int r;

	if ((r = rk_doc_load_file(&doc, path, err)) < 0)
		goto out;
	if ((r = rk_doc_check(doc, rk_doc_root(doc), top_fields, "inventory", err)) < 0)
		goto out;
	list = json_object_get(rk_doc_root(doc), "secrets");
	if (json_array_size(list) > MAX_SECRETS) {
		r = rk_error_set(err, RK_EINVAL, "%s: more than %d secrets", path, MAX_SECRETS);
		goto out;
	}
	specs = json_array();
	seen_names = json_object();
	seen_locs = json_object();
	if (specs == NULL || seen_names == NULL || seen_locs == NULL) {
		r = rk_error_set(err, RK_ENOMEM, "out of memory");
		goto out;
	}
	json_array_foreach(list, i, e) {
		const json_t *spec;
		const char *name;
		char *lockey = NULL, *loctext;

		if ((r = load_secret(specs, doc, e, cfg, policies, now, err)) < 0)
			goto out;
		spec = json_array_get(specs, json_array_size(specs) - 1);
		name = json_string_value(json_object_get(spec, "name"));
		if (json_object_get(seen_names, name) != NULL) {
			r = rk_doc_error_key(err, doc, e, "name", RK_EINVAL,
					     "secret '%s' is listed twice", name);
			goto out;
		}
		json_object_set_new(seen_names, name, json_true());
		/* Two names for one stored value would rotate it twice and race. */
		loctext = json_dumps(json_object_get(spec, "locator"), JSON_COMPACT | JSON_SORT_KEYS);
		if (loctext == NULL ||
		    asprintf(&lockey, "%s %s",
			     json_string_value(json_object_get(spec, "provider")), loctext) < 0) {
			free(loctext);
			r = rk_error_set(err, RK_ENOMEM, "out of memory");
			goto out;
		}
		free(loctext);
		if (json_object_get(seen_locs, lockey) != NULL) {
			r = rk_doc_error_key(err, doc, e, "locator", RK_EINVAL,
					     "secret '%s' has the same provider and locator as '%s'",
					     name, json_string_value(json_object_get(seen_locs, lockey)));
			free(lockey);
			goto out;
		}
		json_object_set_new(seen_locs, lockey, json_string(name));
		free(lockey);
	}
	*out = specs;
	specs = NULL;
	r = 0;
out:
	json_decref(specs);
	json_decref(seen_names);
	json_decref(seen_locs);
	rk_doc_free(doc);
	return r;
}
