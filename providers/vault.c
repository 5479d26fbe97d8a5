/*
 * The `vault` provider: HashiCorp Vault and OpenBao (same API), KV version 2
 * secrets and Transit keys, over the shared HTTP client.
 *
 * This file is what the core sees: the ops table, the locator (checked,
 * then parsed once into struct vault_loc, the mount resolved against the
 * instance's), each operation handed to its engine, and doctor. The
 * instance and its authenticated calls are in vault_auth.c, the engines in
 * vault_kv.c and vault_transit.c (providers/vault_int.h lists them).
 *
 * KV v2: a rotation replaces one key of an entry and keeps the others, with
 * the entry's version as the write's precondition; Vault keeps versions, so
 * rollback writes an old version's data as a new one. Transit: Vault makes
 * the key material; rekey rotates the key and fingerprints a descriptor of
 * the version. Every operation's struct rk_call goes into each of its
 * requests and bounds the waits between them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rekey/provider_kit.h"
#include "rekey/util.h"
#include "vault_int.h"

static const struct rk_field vault_locator_fields[] = {
	{ "path", RK_T_STRING, 0 },
	{ "key", RK_T_STRING, 0 },
	{ "mount", RK_T_STRING, 0 },
	{ "transit_key", RK_T_STRING, 0 },
	{ "min_decryption_keep", RK_T_INT, 0 },
	{ NULL, 0, 0 },
};

static int
vault_check_locator(const struct rk_doc *doc, const json_t *loc, struct rk_error *err)
{
	const char *path = rk_doc_str(loc, "path", NULL), *key = rk_doc_str(loc, "key", NULL);
	const char *tk = rk_doc_str(loc, "transit_key", NULL);

	if (tk != NULL) {
		if (path || key)
			return rk_doc_error(err, doc, loc, RK_EINVAL,
					    "a vault locator is either {path, key} (KV v2) or "
					    "{transit_key}, not both");
		if (!rk_vault_safe_path(tk) || strchr(tk, '/'))
			return rk_doc_error_key(err, doc, loc, "transit_key", RK_EINVAL,
						"transit_key must be a key name");
		if (json_object_get(loc, "min_decryption_keep") &&
		    rk_doc_int(loc, "min_decryption_keep", 0) < 1)
			return rk_doc_error_key(err, doc, loc, "min_decryption_keep", RK_EINVAL,
						"min_decryption_keep must be at least 1");
		return 0;
	}
	if (path == NULL || key == NULL)
		return rk_doc_error(err, doc, loc, RK_EINVAL,
				    "a vault KV v2 locator needs path and key, e.g. {path: "
				    "payments/db, key: password}");
	if (!rk_vault_safe_path(path))
		return rk_doc_error_key(err, doc, loc, "path", RK_EINVAL,
					"path must be relative, without '..', '?', '#', '%%' or a "
					"trailing '/'");
	if (key[0] == '\0')
		return rk_doc_error_key(err, doc, loc, "key", RK_EINVAL, "key must not be empty");
	if (json_object_get(loc, "mount") && !rk_vault_safe_path(rk_doc_str(loc, "mount", "")))
		return rk_doc_error_key(err, doc, loc, "mount", RK_EINVAL,
					"mount must be a plain mount path");
	if (json_object_get(loc, "min_decryption_keep"))
		return rk_doc_error_key(err, doc, loc, "min_decryption_keep", RK_EINVAL,
					"min_decryption_keep applies to transit keys only");
	return 0;
}

static void
vault_free_locator(void *loc)
{
	struct vault_loc *vl = loc;

	if (vl == NULL)
		return;
	free(vl->mount);
	free(vl->path);
	free(vl->key);
	free(vl->transit_key);
	free(vl);
}

/* The mount a locator does not name is the instance's, resolved here once. */
static int
vault_parse_locator(const struct rk_provider *p, const json_t *loc, void **out,
		    struct rk_error *err)
{
	const struct vault *v = (const struct vault *)p;
	const char *tk = rk_doc_str(loc, "transit_key", NULL);
	const char *path = rk_doc_str(loc, "path", NULL), *key = rk_doc_str(loc, "key", NULL);
	struct vault_loc *vl = calloc(1, sizeof(*vl));
	int r;

	if (vl == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	if (tk != NULL) {
		vl->engine = VAULT_TRANSIT;
		vl->min_decryption_keep = (long)rk_doc_int(loc, "min_decryption_keep", 0);
		if ((r = rk_kit_dupstr(&vl->mount, v->transit_mount, err)) < 0 ||
		    (r = rk_kit_dupstr(&vl->transit_key, tk, err)) < 0)
			goto out;
	} else if (path == NULL || key == NULL) {
		r = rk_error_set(err, RK_EINVAL, "vault %s: a locator needs path and key (KV v2, "
				 "e.g. {path: payments/db, key: password}) or transit_key",
				 p->name);
		goto out;
	} else {
		vl->engine = VAULT_KV;
		if ((r = rk_kit_dupstr(&vl->mount, rk_doc_str(loc, "mount", v->kv_mount),
					 err)) < 0 ||
		    (r = rk_kit_dupstr(&vl->path, path, err)) < 0 ||
		    (r = rk_kit_dupstr(&vl->key, key, err)) < 0)
			goto out;
	}
	*out = vl;
	vl = NULL;
	r = 0;
out:
	vault_free_locator(vl);
	return r;
}

static int
vault_generates(const void *loc)
{
	return ((const struct vault_loc *)loc)->engine == VAULT_TRANSIT;
}

/* ---- ops ---- */

static int
parse_version(const struct rk_version *ver, long *n, struct rk_error *err)
{
	return rk_version_parse(ver, n, "vault", err);
}

/* Version n (0: the current one) of either engine; *ver (optional) gets its number. */
static int
read_at(struct rk_provider *p, const struct rk_call *call, const struct vault_loc *loc, long n,
	struct rk_secret **out, struct rk_version *ver, struct rk_error *err)
{
	struct vault *v = (struct vault *)p;

	if (loc->engine == VAULT_TRANSIT)
		return rk_vault_transit_read(v, call, loc, n, out, ver, err);
	return rk_vault_kv_read(v, call, loc, n, out, ver, err);
}

static int
vault_read(struct rk_provider *p, const struct rk_call *call, const void *loc,
	   struct rk_secret **out, struct rk_version *ver, struct rk_error *err)
{
	return read_at(p, call, loc, 0, out, ver, err);
}

static int
vault_read_version(struct rk_provider *p, const struct rk_call *call, const void *loc,
		   const struct rk_version *ver, struct rk_secret **out, struct rk_error *err)
{
	long n;
	int r;

	if ((r = parse_version(ver, &n, err)) < 0)
		return r;
	if (n == 0)
		return rk_error_set(err, RK_ENOTFOUND, "no version given");
	return read_at(p, call, loc, n, out, NULL, err);
}

static int
vault_find_staged(struct rk_provider *p, const struct rk_call *call, const void *loc_,
		  const struct rk_stage_req *req, struct rk_version *ver, struct rk_error *err)
{
	struct vault *v = (struct vault *)p;
	const struct vault_loc *loc = loc_;
	long expected;
	int r;

	if ((r = parse_version(req->expected, &expected, err)) < 0)
		return r;
	if (loc->engine == VAULT_TRANSIT)
		return rk_vault_transit_find_staged(v, call, loc, expected, ver, err);
	return rk_vault_kv_find_staged(v, call, loc, expected, req->value, ver, err);
}

static int
vault_stage(struct rk_provider *p, const struct rk_call *call, const void *loc_,
	    const struct rk_stage_req *req, struct rk_version *new_ver, struct rk_error *err)
{
	struct vault *v = (struct vault *)p;
	const struct vault_loc *loc = loc_;
	long expected;
	int r;

	if ((r = parse_version(req->expected, &expected, err)) < 0)
		return r;
	if (loc->engine == VAULT_TRANSIT)
		return rk_vault_transit_rotate(v, call, loc, expected, new_ver, err);
	return rk_vault_kv_stage(v, call, loc, expected, req, new_ver, err);
}

static int
vault_promote(struct rk_provider *p, const struct rk_call *call, const void *loc,
	      const struct rk_version *new_ver, const struct rk_version *old_ver,
	      struct rk_error *err)
{
	(void)p, (void)call, (void)loc, (void)new_ver, (void)old_ver, (void)err;
	return 0;	/* a KV write or a rotate is current at once */
}

static int
vault_rollback(struct rk_provider *p, const struct rk_call *call, const void *loc_,
	       const struct rk_version *to, const struct rk_stage_req *req,
	       struct rk_version *new_ver, struct rk_error *err)
{
	const struct vault_loc *loc = loc_;
	long n, expected;
	int r;

	if (loc->engine == VAULT_TRANSIT)
		return rk_error_set(err, RK_EUNSUPPORTED,
				    "a transit key cannot be rolled back; older versions still "
				    "decrypt unless min_decryption_version was raised");
	if ((r = parse_version(to, &n, err)) < 0 ||
	    (r = parse_version(req->expected, &expected, err)) < 0)
		return r;
	return rk_vault_kv_rollback((struct vault *)p, call, loc, n, expected, req, new_ver, err);
}

/* ---- doctor ---- */

/* What rekey needs on each path it checks with sys/capabilities-self. */
enum need { NEED_KV, NEED_META, NEED_TKEY, NEED_ROTATE, NEED_CONFIG };

static const struct {
	const char *caps[4];	/* every one of them, NULL-terminated */
	const char *words;
	int optional;		/* reported, but doctor does not fail for it */
} needs[] = {
	[NEED_KV] = { { "create", "update", "read", NULL }, "create, update, read", 0 },
	[NEED_META] = { { "patch", NULL }, "patch (to tag custom_metadata; optional)", 1 },
	[NEED_TKEY] = { { "read", NULL }, "read", 0 },
	[NEED_ROTATE] = { { "update", NULL }, "update", 0 },
	[NEED_CONFIG] = { { "update", NULL }, "update, to raise min_decryption_version", 0 },
};

/* Appends MOUNT/MID/NAME[SUFFIX] to check and, at the same index, what it needs. */
static void
need_path(json_t *paths, json_t *kinds, enum need kind, const char *mount, const char *mid,
	  const char *name, const char *suffix)
{
	char path[1200];

	snprintf(path, sizeof(path), "%s/%s/%s%s", mount, mid, name, suffix);
	json_array_append_new(paths, json_string(path));
	json_array_append_new(kinds, json_integer(kind));
}

static int
has_cap(const json_t *caps, const char *want)
{
	size_t k;
	json_t *c;

	json_array_foreach(caps, k, c)
		if (json_is_string(c) && strcmp(json_string_value(c), want) == 0)
			return 1;
	return 0;
}

/* Root, or every capability the path's kind needs. */
static int
has_needed(const json_t *caps, enum need kind)
{
	if (has_cap(caps, "root"))
		return 1;
	for (size_t k = 0; needs[kind].caps[k] != NULL; k++)
		if (!has_cap(caps, needs[kind].caps[k]))
			return 0;
	return 1;
}

/* The paths one locator needs, and for a Transit key whether it exists. */
static void
doctor_locator(struct vault *v, const struct vault_loc *loc, json_t *paths, json_t *kinds,
	       void (*report)(const char *line, int ok, void *arg), void *arg)
{
	struct rk_error e = { 0 };
	char line[700];
	long latest = 0;

	if (loc->engine == VAULT_KV) {
		need_path(paths, kinds, NEED_KV, loc->mount, "data", loc->path, "");
		need_path(paths, kinds, NEED_META, loc->mount, "metadata", loc->path, "");
		return;
	}
	/* The three paths of the README's ACL: read, rotate, config. */
	need_path(paths, kinds, NEED_TKEY, loc->mount, "keys", loc->transit_key, "");
	need_path(paths, kinds, NEED_ROTATE, loc->mount, "keys", loc->transit_key, "/rotate");
	need_path(paths, kinds, NEED_CONFIG, loc->mount, "keys", loc->transit_key, "/config");
	if (rk_vault_transit_read_key(v, NULL, loc, &latest, NULL, &e) < 0)
		snprintf(line, sizeof(line), "%s", e.msg);
	else
		snprintf(line, sizeof(line), "vault %s: transit key %s/%s exists (version %ld)",
			 v->base.name, loc->mount, loc->transit_key, latest);
	report(line, e.code == 0, arg);
}

static int
vault_doctor(struct rk_provider *p, const json_t *const *locs, size_t nlocs,
	     void (*report)(const char *line, int ok, void *arg), void *arg, struct rk_error *err)
{
	struct vault *v = (struct vault *)p;
	struct rk_http_resp resp = { 0 };
	struct rk_error e = { 0 };
	json_t *j = NULL, *paths = NULL, *kinds = NULL, *body = NULL;
	char line[700], *text = NULL;

	(void)err;	/* every problem is a reported line, not an error */
	/* Reachability and TLS: sys/health needs no token. */
	if (rk_vault_raw_call(v, NULL, NULL, "GET",
			      "/v1/sys/health?standbyok=true&perfstandbyok=true", NULL, NULL, 0, 1,
			      0, &resp, &e) < 0) {
		snprintf(line, sizeof(line), "vault %s: reachable over TLS: %s", v->base.name, e.msg);
		report(line, 0, arg);
		return 0;	/* nothing else can work */
	}
	if (rk_kit_json_object(&v->base, "health", &resp, &j, &e) < 0 || resp.status != 200) {
		snprintf(line, sizeof(line), "vault %s: healthy: HTTP %ld%s%s (sealed, standby or "
			 "not initialised?)", v->base.name, resp.status, e.code ? ": " : "", e.msg);
		report(line, 0, arg);
	} else {
		snprintf(line, sizeof(line), "vault %s: reachable and healthy (version %s)",
			 v->base.name, json_string_value(json_object_get(j, "version"))
					       ? json_string_value(json_object_get(j, "version"))
					       : "?");
		report(line, 1, arg);
	}
	json_decref(j);
	j = NULL;
	rk_http_resp_free(&resp);
	rk_error_clear(&e);
	/* Authentication. */
	if (rk_vault_call(v, NULL, "GET", "/v1/auth/token/lookup-self", NULL, NULL, 1, 1, &resp,
			  &e) < 0 || resp.status != 200) {
		if (e.code == 0)
			rk_vault_status_error(v, "token lookup", &resp, &e);
		snprintf(line, sizeof(line), "vault %s: authenticated: %s", v->base.name, e.msg);
		report(line, 0, arg);
		rk_http_resp_free(&resp);
		return 0;
	}
	snprintf(line, sizeof(line), "vault %s: authenticated (%s)", v->base.name,
		 v->method == AUTH_TOKEN ? "token file" : v->method == AUTH_APPROLE ? "approle"
										: "kubernetes");
	report(line, 1, arg);
	rk_http_resp_free(&resp);
	/* Permissions: what sys/capabilities-self says for each path rekey writes. */
	paths = json_array();
	kinds = json_array();
	for (size_t i = 0; i < nlocs; i++) {
		void *loc = NULL;
		rk_error_clear(&e);
		if (vault_parse_locator(p, locs[i], &loc, &e) < 0) {
			report(e.msg, 0, arg);
			continue;
		}
		doctor_locator(v, loc, paths, kinds, report, arg);
		vault_free_locator(loc);
	}
	if (json_array_size(paths) == 0)
		goto out;
	body = json_pack("{s:O}", "paths", paths);
	text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	rk_error_clear(&e);
	if (text == NULL ||
	    rk_vault_call(v, NULL, "POST", "/v1/sys/capabilities-self",
			  "Content-Type: application/json", text, 1, 0, &resp, &e) < 0 ||
	    resp.status != 200 ||
	    rk_kit_json_object(&v->base, "capabilities", &resp, &j, &e) < 0) {
		if (e.code == 0 && resp.status)
			rk_vault_status_error(v, "capabilities", &resp, &e);
		snprintf(line, sizeof(line), "vault %s: permissions: %s", v->base.name, e.msg);
		report(line, 0, arg);
		goto out;
	}
	{
		size_t i;
		json_t *pth;
		json_array_foreach(paths, i, pth) {
			const char *ps = json_string_value(pth);
			enum need kind = (enum need)json_integer_value(json_array_get(kinds, i));
			int ok = has_needed(json_object_get(j, ps), kind);

			snprintf(line, sizeof(line), "vault %s: permission on %s (needs %s)%s",
				 v->base.name, ps, needs[kind].words, ok ? "" : ": missing");
			report(line, ok || needs[kind].optional, arg);
		}
	}
out:
	rk_wipe_free_str(text);
	json_decref(body);
	json_decref(paths);
	json_decref(kinds);
	json_decref(j);
	rk_http_resp_free(&resp);
	return 0;
}

/* As many rotations in flight as the HTTP client lets requests be (`concurrency`). */
static unsigned
vault_concurrency(const struct rk_provider *p)
{
	const struct vault *v = (const struct vault *)p;

	return v->hcfg.concurrency > 0 ? (unsigned)v->hcfg.concurrency : 1;
}

/* KV: read, write, metadata patch, read back (a Transit key: rotate and read). */
static void
vault_plan_calls(const struct rk_provider *p, struct rk_plan_calls *out)
{
	const struct vault *v = (const struct vault *)p;

	out->reads = 2;
	out->writes = 2;
	out->restart_calls = 0;
	out->rps = v->hcfg.rps;
	out->concurrency = (unsigned)v->hcfg.concurrency;
}

const struct rk_provider_ops rk_provider_vault = {
	.type = "vault",
	.caps = RK_CAP_VERSIONS,
	.config_fields = rk_vault_config_fields,
	.locator_fields = vault_locator_fields,
	.check_config = rk_vault_check_config,
	.open = rk_vault_open,
	.check_locator = vault_check_locator,
	.parse_locator = vault_parse_locator,
	.free_locator = vault_free_locator,
	.generates = vault_generates,
	.read = vault_read,
	.read_version = vault_read_version,
	.find_staged = vault_find_staged,
	.stage = vault_stage,
	.promote = vault_promote,
	.rollback = vault_rollback,
	.doctor = vault_doctor,
	.close = rk_vault_close,
	.concurrency = vault_concurrency,
	.plan_calls = vault_plan_calls,
};
