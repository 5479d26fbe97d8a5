/*
 * The `vault` provider: HashiCorp Vault and OpenBao (same API), KV version 2
 * secrets and Transit keys, over the shared HTTP client.
 *
 * KV v2: a rotation replaces one key of an entry and keeps the others: read
 * the entry and its version, write the whole map back with options.cas = that
 * version (a precondition, not an idempotency key: a retried write whose
 * first attempt landed gets a 400), then tag the key's custom_metadata with
 * the run (a separate PATCH; a data write ignores custom_metadata). After any
 * failed or unknown write the latest versions are read back and compared with
 * the value rekey wrote: ours -> carry on; someone else's -> conflict, never
 * overwritten. Versions are kept by Vault, so rollback writes an old
 * version's data as a new version (what `vault kv rollback` does).
 *
 * Transit: Vault makes the key material; a rotation is `rotate` guarded by
 * reading latest_version first (rotate itself is not idempotent), and the
 * "value" rekey fingerprints is a descriptor of the version.
 *
 * Auth: a token file, AppRole or Kubernetes login; the token lives in
 * sodium memory, is renewed at 2/3 of its lease, and a 403 causes one
 * re-login (or re-read of the token file) before the call fails.
 * Errors are decided on the HTTP status (the contract's rule), and Vault's
 * {"errors": [...]} text is carried into the message.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sodium.h>

#include "rekey/http.h"
#include "rekey/log.h"
#include "rekey/provider.h"
#include "rekey/provider_kit.h"
#include "rekey/resilience.h"
#include "rekey/secret.h"
#include "rekey/util.h"

#define VAULT_DEFAULT_K8S_JWT "/var/run/secrets/kubernetes.io/serviceaccount/token"

enum auth_method { AUTH_TOKEN, AUTH_APPROLE, AUTH_KUBERNETES };

struct vault {
	struct rk_provider base;
	struct rk_http *http;
	struct rk_http_cfg hcfg;
	char *namespace_;
	char *kv_mount;
	char *transit_mount;
	enum auth_method method;
	char *token_file;	/* token auth */
	char *role_id;		/* approle (not a secret: an identifier) */
	char *secret_id_file;
	char *role;		/* kubernetes */
	char *jwt_file;
	char *auth_mount;
	struct rk_cred_file token_cf;	/* token_file, read again when it changes */
	struct rk_cred_file cred_cf;	/* secret_id_file or jwt_file, read at each login */
	pthread_mutex_t lock;	/* guards the token and its times */
	struct rk_secret *token;
	int64_t token_renew_at;	/* monotonic ms; 0: never renew */
	int renewable;
};

static const struct rk_field vault_config_fields[] = {
	{ "type", RK_T_STRING, RK_F_REQUIRED },
	{ "address", RK_T_STRING, RK_F_REQUIRED },
	{ "namespace", RK_T_STRING, 0 },
	{ "kv_mount", RK_T_STRING, 0 },
	{ "transit_mount", RK_T_STRING, 0 },
	{ "auth", RK_T_OBJECT, RK_F_REQUIRED },
	RK_HTTP_CFG_FIELDS,
	{ NULL, 0, 0 },
};

static const struct rk_field vault_auth_fields[] = {
	{ "method", RK_T_STRING, RK_F_REQUIRED },
	{ "token_file", RK_T_STRING, 0 },
	{ "role_id", RK_T_STRING, 0 },
	{ "secret_id_file", RK_T_STRING, 0 },
	{ "role", RK_T_STRING, 0 },
	{ "jwt_file", RK_T_STRING, 0 },
	{ "mount", RK_T_STRING, 0 },
	{ NULL, 0, 0 },
};

static const struct rk_field vault_locator_fields[] = {
	{ "path", RK_T_STRING, 0 },
	{ "key", RK_T_STRING, 0 },
	{ "mount", RK_T_STRING, 0 },
	{ "transit_key", RK_T_STRING, 0 },
	{ "min_decryption_keep", RK_T_INT, 0 },
	{ NULL, 0, 0 },
};

/* A parsed locator: a key of a KV v2 entry, or a Transit key. */
enum vault_engine { VAULT_KV, VAULT_TRANSIT };

struct vault_loc {
	enum vault_engine engine;
	char *mount;		/* KV: the locator's mount, else kv_mount; Transit: transit_mount */
	char *path;		/* KV: the entry below the mount */
	char *key;		/* KV: the key within the entry */
	char *transit_key;	/* Transit: the key's name */
	long min_decryption_keep;	/* Transit: 0 when not set */
};

/*
 * Defaults under Vault's own limits: a request quota is configured per
 * deployment (none by default), so rekey stays modest: 20 rps with bursts of
 * 10, 8 requests in flight, 5 attempts, 10 s per attempt.
 */
static const struct rk_http_cfg vault_http_defaults = {
	.connect_timeout_ms = 5000,
	.total_timeout_ms = 10000,
	.max_attempts = 5,
	.base_delay_ms = 200,
	.max_delay_ms = 10000,
	.cb_failures = 5,
	.cb_cooldown_ms = 30000,
	.rps = 20,
	.burst = 10,
	.concurrency = 8,
	.max_response = 1u << 20,
};

/* ---- helpers ---- */

static int
dupstr(char **dst, const char *src, struct rk_error *err)
{
	if (src == NULL) {
		*dst = NULL;
		return 0;
	}
	if ((*dst = strdup(src)) == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	return 0;
}

static void
vault_close(struct rk_provider *p)
{
	struct vault *v = (struct vault *)p;

	if (v == NULL)
		return;
	rk_http_free(v->http);
	rk_http_cfg_free(&v->hcfg);
	rk_secret_free(v->token);
	free(v->namespace_);
	free(v->kv_mount);
	free(v->transit_mount);
	free(v->token_file);
	free(v->role_id);
	free(v->secret_id_file);
	free(v->role);
	free(v->jwt_file);
	free(v->auth_mount);
	pthread_mutex_destroy(&v->lock);
	free(v);
}

/* A path segment as given, refusing what would escape it. */
static int
safe_path(const char *s)
{
	if (s == NULL || s[0] == '\0' || s[0] == '/' || strstr(s, "..") != NULL ||
	    strpbrk(s, "?#% \t\r\n") != NULL)
		return 0;
	return s[strlen(s) - 1] != '/';
}

/*
 * Everything about a vault block that can be known without connecting or
 * reading a credential file: the auth method and what it needs, the mounts,
 * the HTTP settings (into *hcfg, the caller's to free) and the address.
 * Every command runs it through check_config; open runs it again.
 */
static int
vault_parse_config(const struct rk_provider_env *env, const json_t *cfg, enum auth_method *method,
		   struct rk_http_cfg *hcfg, struct rk_error *err)
{
	const json_t *auth = json_object_get(cfg, "auth");
	const char *m;
	char what[128];
	int r;

	snprintf(what, sizeof(what), "auth of provider '%s'", env->name);
	if ((r = rk_doc_check(env->doc, auth, vault_auth_fields, what, err)) < 0)
		return r;
	m = rk_doc_str(auth, "method", "");
	if (strcmp(m, "token") == 0) {
		*method = AUTH_TOKEN;
		if (json_object_get(auth, "token_file") == NULL)
			return rk_doc_error(err, env->doc, auth, RK_EINVAL,
					    "auth method token needs token_file (a token is never "
					    "written in rekey.yaml)");
	} else if (strcmp(m, "approle") == 0) {
		*method = AUTH_APPROLE;
		if (!json_object_get(auth, "role_id") || !json_object_get(auth, "secret_id_file"))
			return rk_doc_error(err, env->doc, auth, RK_EINVAL,
					    "auth method approle needs role_id and secret_id_file");
	} else if (strcmp(m, "kubernetes") == 0) {
		*method = AUTH_KUBERNETES;
		if (!json_object_get(auth, "role"))
			return rk_doc_error(err, env->doc, auth, RK_EINVAL,
					    "auth method kubernetes needs role");
	} else {
		return rk_doc_error_key(err, env->doc, auth, "method", RK_EINVAL,
					"auth method must be token, approle or kubernetes");
	}
	if (!safe_path(rk_doc_str(cfg, "kv_mount", "secret")) ||
	    !safe_path(rk_doc_str(cfg, "transit_mount", "transit")) ||
	    !safe_path(rk_doc_str(auth, "mount", *method == AUTH_APPROLE ? "approle"
									: "kubernetes")))
		return rk_doc_error(err, env->doc, cfg, RK_EINVAL,
				    "kv_mount, transit_mount and auth.mount must be plain mount paths");
	if ((r = rk_http_cfg_parse(hcfg, env->doc, cfg, &vault_http_defaults, err)) < 0)
		return r;
	if ((r = rk_http_check(env->name, rk_doc_str(cfg, "address", ""), hcfg, err)) < 0) {
		char msg[sizeof(err->msg)];
		memcpy(msg, err->msg, sizeof(msg));
		rk_error_clear(err);
		return rk_doc_error_key(err, env->doc, cfg, "address", r, "%s", msg);
	}
	return 0;
}

static int
vault_check_config(const struct rk_provider_env *env, const json_t *cfg, struct rk_error *err)
{
	struct rk_http_cfg hcfg;
	enum auth_method method;
	int r;

	memset(&hcfg, 0, sizeof(hcfg));
	r = vault_parse_config(env, cfg, &method, &hcfg, err);
	rk_http_cfg_free(&hcfg);
	return r;
}

static int
vault_open(struct rk_provider **out, const struct rk_provider_env *env, const json_t *cfg,
	   struct rk_error *err)
{
	struct vault *v = calloc(1, sizeof(*v));
	const json_t *auth = json_object_get(cfg, "auth");
	int r;

	if (v == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	pthread_mutex_init(&v->lock, NULL);
	if ((r = vault_parse_config(env, cfg, &v->method, &v->hcfg, err)) < 0)
		goto out;
	if ((r = dupstr(&v->token_file, rk_doc_str(auth, "token_file", NULL), err)) < 0 ||
	    (r = dupstr(&v->role_id, rk_doc_str(auth, "role_id", NULL), err)) < 0 ||
	    (r = dupstr(&v->secret_id_file, rk_doc_str(auth, "secret_id_file", NULL), err)) < 0 ||
	    (r = dupstr(&v->role, rk_doc_str(auth, "role", NULL), err)) < 0 ||
	    (r = dupstr(&v->jwt_file, rk_doc_str(auth, "jwt_file", VAULT_DEFAULT_K8S_JWT), err)) < 0 ||
	    (r = dupstr(&v->auth_mount,
			rk_doc_str(auth, "mount", v->method == AUTH_APPROLE ? "approle"
									 : "kubernetes"),
			err)) < 0 ||
	    (r = dupstr(&v->namespace_, rk_doc_str(cfg, "namespace", NULL), err)) < 0 ||
	    (r = dupstr(&v->kv_mount, rk_doc_str(cfg, "kv_mount", "secret"), err)) < 0 ||
	    (r = dupstr(&v->transit_mount, rk_doc_str(cfg, "transit_mount", "transit"), err)) < 0)
		goto out;
	/*
	 * A token or a secret_id readable by others is refused. The service
	 * account JWT is not: Kubernetes projects it with mode 0644 by default,
	 * and it is short-lived and bound to its audience.
	 */
	rk_cred_file_init(&v->token_cf, v->token_file, 0, RK_CRED_PRIVATE);
	if (v->method == AUTH_APPROLE)
		rk_cred_file_init(&v->cred_cf, v->secret_id_file, 0, RK_CRED_PRIVATE);
	else
		rk_cred_file_init(&v->cred_cf, v->jwt_file, 0, 0);
	/* The address and settings were checked above: this fails only for want of memory. */
	if ((r = rk_http_new(&v->http, env->name, rk_doc_str(cfg, "address", ""), &v->hcfg,
			     err)) < 0)
		goto out;
	*out = &v->base;
	v = NULL;
	r = 0;
out:
	vault_close(v ? &v->base : NULL);
	return r;
}

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
		if (!safe_path(tk) || strchr(tk, '/'))
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
	if (!safe_path(path))
		return rk_doc_error_key(err, doc, loc, "path", RK_EINVAL,
					"path must be relative, without '..', '?', '#', '%%' or a "
					"trailing '/'");
	if (key[0] == '\0')
		return rk_doc_error_key(err, doc, loc, "key", RK_EINVAL, "key must not be empty");
	if (json_object_get(loc, "mount") && !safe_path(rk_doc_str(loc, "mount", "")))
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
		if ((r = dupstr(&vl->mount, v->transit_mount, err)) < 0 ||
		    (r = dupstr(&vl->transit_key, tk, err)) < 0)
			goto out;
	} else if (path == NULL || key == NULL) {
		r = rk_error_set(err, RK_EINVAL, "vault %s: a locator needs path and key (KV v2, "
				 "e.g. {path: payments/db, key: password}) or transit_key",
				 p->name);
		goto out;
	} else {
		vl->engine = VAULT_KV;
		if ((r = dupstr(&vl->mount, rk_doc_str(loc, "mount", v->kv_mount), err)) < 0 ||
		    (r = dupstr(&vl->path, path, err)) < 0 || (r = dupstr(&vl->key, key, err)) < 0)
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

/* ---- HTTP with auth ---- */

/*
 * Vault's {"errors": [...]} joined into one line (never contains values);
 * the status alone decides the code (an rk_kit_errtext_fn).
 */
static int
vault_errors(const struct rk_http_resp *resp, char *out, size_t n)
{
	json_t *j = json_loadb(resp->body, resp->len, 0, NULL);
	const json_t *errs = json_object_get(j, "errors"), *e;
	size_t i, used = 0;

	out[0] = '\0';
	json_array_foreach(errs, i, e) {
		const char *s = json_string_value(e);
		if (s == NULL)
			continue;
		used += (size_t)snprintf(out + used, used < n ? n - used : 0, "%s%s", used ? "; " : "",
					 s);
	}
	/* Multierror texts span lines: keep one line. */
	for (char *p = out; *p; p++)
		if (*p == '\n' || *p == '\t')
			*p = ' ';
	json_decref(j);
	return 0;
}

static int
status_error(struct vault *v, const char *what, const struct rk_http_resp *resp,
	     struct rk_error *err)
{
	return rk_kit_status_error(&v->base, what, resp, vault_errors, err);
}

/* Common headers; the token header is built in sodium memory and wiped after. */
static int
build_headers(struct vault *v, const struct rk_secret *token, const char *ctype,
	      struct rk_secret **tok_hdr, const char *hdrs[6], char *ns_hdr, size_t ns_n,
	      struct rk_error *err)
{
	int n = 0, r;

	*tok_hdr = NULL;
	if (token != NULL) {
		static const char prefix[] = "X-Vault-Token: ";
		if ((r = rk_secret_new(tok_hdr, sizeof(prefix) - 1 + rk_secret_len(token), err)) < 0)
			return r;
		memcpy(rk_secret_data(*tok_hdr), prefix, sizeof(prefix) - 1);
		memcpy(rk_secret_data(*tok_hdr) + sizeof(prefix) - 1, rk_secret_cdata(token),
		       rk_secret_len(token));
		hdrs[n++] = rk_secret_str(*tok_hdr);
	}
	if (v->namespace_ != NULL) {
		snprintf(ns_hdr, ns_n, "X-Vault-Namespace: %s", v->namespace_);
		hdrs[n++] = ns_hdr;
	}
	hdrs[n++] = "X-Vault-Request: true";
	if (ctype != NULL)
		hdrs[n++] = ctype;
	hdrs[n] = NULL;
	return 0;
}

/* call (may be NULL) bounds and orders the request: its deadline, cancel flag and priority. */
static int
raw_call(struct vault *v, const struct rk_call *call, const struct rk_secret *token,
	 const char *method, const char *path, const char *ctype, const void *body,
	 size_t body_len, int idempotent, int sensitive, struct rk_http_resp *resp,
	 struct rk_error *err)
{
	struct rk_secret *tok_hdr = NULL;
	const char *hdrs[6];
	char ns_hdr[300];
	struct rk_http_req req;
	int r;

	if ((r = build_headers(v, token, ctype, &tok_hdr, hdrs, ns_hdr, sizeof(ns_hdr), err)) < 0)
		return r;
	memset(&req, 0, sizeof(req));
	req.method = method;
	req.path = path;
	req.headers = hdrs;
	req.body = body;
	req.body_len = body_len;
	req.idempotent = idempotent;
	req.sensitive = sensitive;
	req.call = call;
	req.priority = call ? call->priority : 0;
	r = rk_http_do(v->http, &req, resp, err);
	rk_secret_free(tok_hdr);
	return r;
}

/* A 200 with a JSON object body, or the error Vault's status and errors say. */
static int
expect_json(struct vault *v, const char *what, const struct rk_http_resp *resp, json_t **out,
	    struct rk_error *err)
{
	return rk_kit_expect_json(&v->base, what, resp, vault_errors, out, err);
}

/* Logs in with AppRole or Kubernetes; sets v->token. Called with v->lock held. */
static int
login(struct vault *v, const struct rk_call *call, struct rk_error *err)
{
	struct rk_secret *cred = NULL;
	json_t *body = NULL, *j = NULL;
	char *text = NULL, path[300];
	struct rk_http_resp resp = { 0 };
	const json_t *auth;
	const char *tok;
	int r;

	if (v->method == AUTH_TOKEN) {
		/* Read again even if unchanged: a refused token is not used twice. */
		if ((r = rk_cred_file_read(&v->token_cf, 1, &v->token, err)) < 0) {
			rk_secret_free(v->token);
			v->token = NULL;
			return r;
		}
		v->token_renew_at = 0;
		return 0;
	}
	if ((r = rk_cred_file_read(&v->cred_cf, 1, &cred, err)) < 0)
		goto out;
	body = v->method == AUTH_APPROLE
		       ? json_pack("{s:s, s:s}", "role_id", v->role_id, "secret_id",
				   rk_secret_str(cred))
		       : json_pack("{s:s, s:s}", "role", v->role, "jwt", rk_secret_str(cred));
	if (body == NULL || (text = json_dumps(body, JSON_COMPACT)) == NULL) {
		r = rk_error_set(err, RK_ENOMEM, "out of memory");
		goto out;
	}
	snprintf(path, sizeof(path), "/v1/auth/%s/login", v->auth_mount);
	if ((r = raw_call(v, call, NULL, "POST", path, "Content-Type: application/json", text,
			  strlen(text), 1, 1, &resp, err)) < 0)
		goto out;
	if ((r = expect_json(v, "login", &resp, &j, err)) < 0) {
		if (resp.status == 400)	/* bad role or credentials answer 400 */
			r = err->code = RK_EAUTH;
		goto out;
	}
	auth = json_object_get(j, "auth");
	if ((tok = json_string_value(json_object_get(auth, "client_token"))) == NULL ||
	    tok[0] == '\0') {
		r = rk_error_set(err, RK_EPROTO, "vault %s: login: no auth.client_token in the "
				 "response", v->base.name);
		goto out;
	}
	rk_secret_free(v->token);
	v->token = NULL;
	if ((r = rk_secret_from(&v->token, tok, strlen(tok), err)) < 0)
		goto out;
	{
		int64_t lease = json_integer_value(json_object_get(auth, "lease_duration"));
		v->renewable = json_is_true(json_object_get(auth, "renewable"));
		/* Renew at 2/3 of the lease (the contract's advice). */
		v->token_renew_at = lease > 0 ? rk_mono_ms() + lease * 1000 * 2 / 3 : 0;
	}
	rk_log(RK_LOG_DEBUG, "vault.login", "provider", v->base.name, NULL);
	r = 0;
out:
	rk_wipe_free_str(text);
	json_decref(body);
	json_decref(j);
	rk_http_resp_free(&resp);
	rk_secret_free(cred);
	return r;
}

/* Renews the token when due; a failed renewal falls back to a new login. Lock held. */
static int
ensure_token(struct vault *v, const struct rk_call *call, struct rk_error *err)
{
	struct rk_http_resp resp = { 0 };
	json_t *j = NULL;
	int r;

	if (v->token == NULL)
		return login(v, call, err);
	if (v->method == AUTH_TOKEN) {
		/* Vault Agent rewrites its sink with each new token: take it before the old one expires. */
		r = rk_cred_file_read(&v->token_cf, 0, &v->token, err);
		return r < 0 ? r : 0;
	}
	if (v->token_renew_at == 0 || rk_mono_ms() < v->token_renew_at)
		return 0;
	if (v->renewable &&
	    raw_call(v, call, v->token, "POST", "/v1/auth/token/renew-self", "Content-Type: "
		     "application/json", "{}", 2, 1, 1, &resp, err) == 0 &&
	    resp.status == 200 && rk_kit_json_object(&v->base, "renew", &resp, &j, err) == 0) {
		int64_t lease = json_integer_value(json_object_get(json_object_get(j, "auth"),
								    "lease_duration"));
		v->token_renew_at = lease > 0 ? rk_mono_ms() + lease * 1000 * 2 / 3 : 0;
		/* A lease that stopped growing hit its max TTL: log in again next time. */
		if (lease > 0 && lease < 10)
			v->token_renew_at = rk_mono_ms();
		r = 0;
	} else {
		rk_error_clear(err);
		r = login(v, call, err);
	}
	json_decref(j);
	rk_http_resp_free(&resp);
	return r;
}

/*
 * An authenticated call. On 403 the token may have expired or been revoked:
 * log in again (or re-read the token file) once, then give up.
 */
static int
auth_call(struct vault *v, const struct rk_call *call, const char *method, const char *path,
	  const char *ctype, const char *body, int idempotent, int sensitive,
	  struct rk_http_resp *resp, struct rk_error *err)
{
	struct rk_secret *tok = NULL;
	int r, attempt;

	for (attempt = 0; attempt < 2; attempt++) {
		pthread_mutex_lock(&v->lock);
		r = attempt == 0 ? ensure_token(v, call, err) : login(v, call, err);
		if (r == 0)
			r = rk_secret_from(&tok, rk_secret_cdata(v->token), rk_secret_len(v->token),
					   err);
		pthread_mutex_unlock(&v->lock);
		if (r < 0)
			return r;
		r = raw_call(v, call, tok, method, path, ctype, body, body ? strlen(body) : 0,
			     idempotent, sensitive, resp, err);
		rk_secret_free(tok);
		tok = NULL;
		if (r < 0 || resp->status != 403)
			return r;
		if (attempt == 0) {
			rk_log(RK_LOG_INFO, "vault.relogin", "provider", v->base.name, "msg",
			       "403: logging in again once", NULL);
			rk_http_resp_free(resp);
		}
	}
	return 0;	/* the second 403 goes back to the caller as a status */
}

/* ---- KV v2 ---- */

struct kv_entry {
	json_t *data;		/* the whole map (owned), NULL when absent */
	long version;		/* 0 when the entry does not exist */
	int deleted;		/* the version is soft-deleted or destroyed */
};

static void
kv_entry_free(struct kv_entry *e)
{
	json_decref(e->data);
	e->data = NULL;
}

/*
 * A version that is gone below metadata's oldest_version was dropped by
 * max_versions on a later write: says so in err (returns 1). Best effort: any
 * failure to read the metadata returns 0 and the plain "does not exist".
 */
static int
kv_pruned(struct vault *v, const struct rk_call *call, const struct vault_loc *loc, long version,
	  struct rk_error *err)
{
	struct rk_http_resp resp = { 0 };
	struct rk_error e2 = { 0 };
	json_t *j = NULL;
	const json_t *d;
	char path[1200];
	long oldest, maxv;
	int pruned = 0;

	snprintf(path, sizeof(path), "/v1/%s/metadata/%s", loc->mount, loc->path);
	if (auth_call(v, call, "GET", path, NULL, NULL, 1, 0, &resp, &e2) < 0 ||
	    resp.status != 200 || rk_kit_json_object(&v->base, "read metadata", &resp, &j, &e2) < 0)
		goto out;
	d = json_object_get(j, "data");
	oldest = (long)json_integer_value(json_object_get(d, "oldest_version"));
	maxv = (long)json_integer_value(json_object_get(d, "max_versions"));
	if (oldest > 0 && version < oldest &&
	    version <= (long)json_integer_value(json_object_get(d, "current_version"))) {
		char keep[96];
		if (maxv > 0)
			snprintf(keep, sizeof(keep), "the newest %ld (the key's max_versions)", maxv);
		else
			snprintf(keep, sizeof(keep), "the newest versions up to the mount's "
				 "max_versions (10 unless set)");
		rk_error_set(err, RK_ENOTFOUND, "vault %s: version %ld of %s/%s was pruned: Vault "
			     "keeps %s; the oldest kept is %ld", v->base.name, version,
			     loc->mount, loc->path, keep, oldest);
		pruned = 1;
	}
out:
	json_decref(j);
	rk_http_resp_free(&resp);
	return pruned;
}

/* Reads an entry (version 0: latest). RK_ENOTFOUND when the entry does not exist. */
static int
kv_read(struct vault *v, const struct rk_call *call, const struct vault_loc *loc, long version,
	struct kv_entry *e, struct rk_error *err)
{
	struct rk_http_resp resp = { 0 };
	json_t *j = NULL;
	const json_t *data, *md;
	char path[1200];
	int r;

	memset(e, 0, sizeof(*e));
	if (version > 0)
		snprintf(path, sizeof(path), "/v1/%s/data/%s?version=%ld", loc->mount,
			 loc->path, version);
	else
		snprintf(path, sizeof(path), "/v1/%s/data/%s", loc->mount, loc->path);
	if ((r = auth_call(v, call, "GET", path, NULL, NULL, 1, 1, &resp, err)) < 0)
		goto out;
	if (resp.status == 404) {
		/* Two bodies: {"errors":[]} (absent) or an envelope (deleted/destroyed version). */
		json_t *b = json_loadb(resp.body, resp.len, 0, NULL);
		md = json_object_get(json_object_get(b, "data"), "metadata");
		if (json_is_object(md)) {
			e->version = (long)json_integer_value(json_object_get(md, "version"));
			e->deleted = 1;
			r = rk_error_set(err, RK_ENOTFOUND,
					 "vault %s: version %ld of %s/%s is deleted or destroyed",
					 v->base.name, e->version, loc->mount, loc->path);
		} else if (version > 0 && kv_pruned(v, call, loc, version, err)) {
			r = RK_ENOTFOUND;
		} else {
			char at[40] = "";
			if (version > 0)
				snprintf(at, sizeof(at), " has no version %ld", version);
			r = rk_error_set(err, RK_ENOTFOUND, "vault %s: %s/%s%s", v->base.name,
					 loc->mount, loc->path,
					 version > 0 ? at : " does not exist");
		}
		json_decref(b);
		goto out;
	}
	if ((r = expect_json(v, "read", &resp, &j, err)) < 0)
		goto out;
	data = json_object_get(json_object_get(j, "data"), "data");
	md = json_object_get(json_object_get(j, "data"), "metadata");
	if (!json_is_object(md) || !json_is_integer(json_object_get(md, "version")) ||
	    !(json_is_object(data) || json_is_null(data))) {
		r = rk_error_set(err, RK_EPROTO,
				 "vault %s: read %s/%s: unexpected response shape (no data.data "
				 "object or data.metadata.version integer)", v->base.name,
				 loc->mount, loc->path);
		goto out;
	}
	e->version = (long)json_integer_value(json_object_get(md, "version"));
	e->data = json_is_object(data) ? json_incref((json_t *)data) : json_object();
	r = 0;
out:
	json_decref(j);
	rk_http_resp_free(&resp);
	return r;
}

static int
kv_value(struct vault *v, const struct vault_loc *loc, const struct kv_entry *e,
	 struct rk_secret **out, struct rk_error *err)
{
	const json_t *val = json_object_get(e->data, loc->key);

	if (val == NULL)
		return rk_error_set(err, RK_ENOTFOUND, "vault %s: %s/%s has no key '%s'",
				    v->base.name, loc->mount, loc->path, loc->key);
	if (!json_is_string(val))
		return rk_error_set(err, RK_EPROTO, "vault %s: %s/%s key '%s' is not a string",
				    v->base.name, loc->mount, loc->path, loc->key);
	return rk_secret_from(out, json_string_value(val), json_string_length(val), err);
}

static int
parse_version(const struct rk_version *ver, long *n, struct rk_error *err)
{
	return rk_version_parse(ver, n, "vault", err);
}

/* ---- Transit ---- */

static int
transit_read_key(struct vault *v, const struct rk_call *call, const struct vault_loc *loc,
		 long *latest, long *min_dec, struct rk_error *err)
{
	struct rk_http_resp resp = { 0 };
	json_t *j = NULL;
	const json_t *d;
	char path[600], what[600];
	int r;

	snprintf(path, sizeof(path), "/v1/%s/keys/%s", loc->mount, loc->transit_key);
	if ((r = auth_call(v, call, "GET", path, NULL, NULL, 1, 0, &resp, err)) < 0)
		goto out;
	if (resp.status == 404) {
		/* Transit answers a missing key with a bare 404 and no errors. */
		r = rk_error_set(err, RK_ENOTFOUND, "vault %s: transit key %s/%s does not exist "
				 "(create it: vault write -f %s/keys/%s)", v->base.name,
				 loc->mount, loc->transit_key, loc->mount, loc->transit_key);
		err->http_status = 404;
		goto out;
	}
	snprintf(what, sizeof(what), "read transit key %s/%s", loc->mount, loc->transit_key);
	if ((r = expect_json(v, what, &resp, &j, err)) < 0)
		goto out;
	d = json_object_get(j, "data");
	if (!json_is_integer(json_object_get(d, "latest_version"))) {
		r = rk_error_set(err, RK_EPROTO, "vault %s: read transit key %s/%s: no "
				 "latest_version in the response", v->base.name, loc->mount,
				 loc->transit_key);
		goto out;
	}
	*latest = (long)json_integer_value(json_object_get(d, "latest_version"));
	if (min_dec)
		*min_dec = (long)json_integer_value(json_object_get(d, "min_decryption_version"));
	r = 0;
out:
	json_decref(j);
	rk_http_resp_free(&resp);
	return r;
}

static int
transit_descriptor(const struct vault_loc *loc, long version, struct rk_secret **out,
		   struct rk_error *err)
{
	char d[400];

	snprintf(d, sizeof(d), "vault-transit:%s/%s:v%ld", loc->mount, loc->transit_key, version);
	return rk_secret_from(out, d, strlen(d), err);
}

/* ---- ops ---- */

static int
vault_read(struct rk_provider *p, const struct rk_call *call, const void *loc_,
	   struct rk_secret **out, struct rk_version *ver, struct rk_error *err)
{
	struct vault *v = (struct vault *)p;
	const struct vault_loc *loc = loc_;
	struct kv_entry e;
	long latest;
	int r;

	if (loc->engine == VAULT_TRANSIT) {
		if ((r = transit_read_key(v, call, loc, &latest, NULL, err)) < 0)
			return r;
		rk_version_set(ver, latest);
		return transit_descriptor(loc, latest, out, err);
	}
	if ((r = kv_read(v, call, loc, 0, &e, err)) < 0)
		return r;
	if ((r = kv_value(v, loc, &e, out, err)) == 0)
		rk_version_set(ver, e.version);
	kv_entry_free(&e);
	return r;
}

static int
vault_read_version(struct rk_provider *p, const struct rk_call *call, const void *loc_,
		   const struct rk_version *ver, struct rk_secret **out, struct rk_error *err)
{
	struct vault *v = (struct vault *)p;
	const struct vault_loc *loc = loc_;
	struct kv_entry e;
	long n, latest;
	int r;

	if ((r = parse_version(ver, &n, err)) < 0)
		return r;
	if (n == 0)
		return rk_error_set(err, RK_ENOTFOUND, "no version given");
	if (loc->engine == VAULT_TRANSIT) {
		if ((r = transit_read_key(v, call, loc, &latest, NULL, err)) < 0)
			return r;
		if (n > latest)
			return rk_error_set(err, RK_ENOTFOUND, "transit key has no version %ld", n);
		return transit_descriptor(loc, n, out, err);
	}
	if ((r = kv_read(v, call, loc, n, &e, err)) < 0)
		return r;
	r = kv_value(v, loc, &e, out, err);
	kv_entry_free(&e);
	return r;
}

/* Tags the key's custom_metadata with the run; a failure is logged, not fatal. */
static void
kv_tag(struct vault *v, const struct rk_call *call, const struct vault_loc *loc,
       const struct rk_stage_req *req)
{
	struct rk_http_resp resp = { 0 };
	struct rk_error err = { 0 };
	json_t *body = json_pack("{s:{s:s, s:s}}", "custom_metadata", "rekey-run", req->run_id,
				 "rekey-secret", req->secret_name);
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	char path[1200];

	snprintf(path, sizeof(path), "/v1/%s/metadata/%s", loc->mount, loc->path);
	if (text == NULL ||
	    auth_call(v, call, "PATCH", path, "Content-Type: application/merge-patch+json", text, 1,
		      0, &resp, &err) < 0 ||
	    (resp.status != 200 && resp.status != 204)) {
		if (err.code == 0 && resp.status)
			status_error(v, "tag custom_metadata", &resp, &err);
		rk_log(RK_LOG_WARN, "vault.tag_failed", "provider", v->base.name, "secret",
		       req->secret_name, "error", err.msg[0] ? err.msg : "out of memory",
		       "msg", "custom_metadata not updated, ignoring", NULL);
	}
	free(text);
	json_decref(body);
	rk_http_resp_free(&resp);
}

/* Writes data with options.cas; *version gets the new version. */
static int
kv_write(struct vault *v, const struct rk_call *call, const struct vault_loc *loc,
	 const json_t *data, long cas, long *version, struct rk_error *err)
{
	struct rk_http_resp resp = { 0 };
	json_t *body = json_pack("{s:O, s:{s:I}}", "data", data, "options", "cas", (json_int_t)cas);
	json_t *j = NULL;
	char *text = NULL, path[1200];
	int r;

	if (body == NULL || (text = json_dumps(body, JSON_COMPACT)) == NULL) {
		r = rk_error_set(err, RK_ENOMEM, "out of memory");
		goto out;
	}
	snprintf(path, sizeof(path), "/v1/%s/data/%s", loc->mount, loc->path);
	/* cas makes a blind retry of a landed write fail: resent only when certainly not applied. */
	if ((r = auth_call(v, call, "POST", path, "Content-Type: application/json", text,
			   RK_HTTP_RETRY_UNPROCESSED, 1, &resp, err)) < 0)
		goto out;
	if ((r = expect_json(v, "write", &resp, &j, err)) < 0)
		goto out;
	if (!json_is_integer(json_object_get(json_object_get(j, "data"), "version"))) {
		r = rk_error_set(err, RK_EPROTO, "vault %s: write: no data.version in the response",
				 v->base.name);
		goto out;
	}
	*version = (long)json_integer_value(json_object_get(json_object_get(j, "data"), "version"));
	r = 0;
out:
	rk_wipe_free_str(text);
	json_decref(body);
	json_decref(j);
	rk_http_resp_free(&resp);
	return r;
}

/*
 * Which version newer than `expected` holds `value`? 0 with *found set; or
 * RK_ENOTFOUND (no newer version) / RK_ECONFLICT (newer ones, none ours).
 */
static int
kv_find(struct vault *v, const struct rk_call *call, const struct vault_loc *loc, long expected,
	const struct rk_secret *value, long *found, struct rk_error *err)
{
	struct kv_entry latest, e;
	int r;

	if ((r = kv_read(v, call, loc, 0, &latest, err)) < 0) {
		if (r == RK_ENOTFOUND && latest.version == 0 && !latest.deleted && expected == 0) {
			rk_error_clear(err);
			return rk_error_set(err, RK_ENOTFOUND, "no version written by this rotation");
		}
		return r;
	}
	kv_entry_free(&latest);
	if (latest.version <= expected)
		return rk_error_set(err, RK_ENOTFOUND, "no version written by this rotation");
	for (long n = latest.version; n > expected; n--) {
		struct rk_secret *s = NULL;
		int same;
		if ((r = kv_read(v, call, loc, n, &e, err)) == 0)
			r = kv_value(v, loc, &e, &s, err);
		if (r < 0) {
			kv_entry_free(&e);
			/*
			 * Deleted, or without our key as a string: not ours. A read
			 * that failed (cancelled, timed out, refused) says nothing
			 * about whose it is, and must not end as a conflict.
			 */
			if (r != RK_ENOTFOUND && r != RK_EPROTO)
				return r;
			rk_error_clear(err);
			continue;
		}
		same = value != NULL && rk_secret_equal(s, value);
		rk_secret_free(s);
		kv_entry_free(&e);
		if (same) {
			*found = n;
			return 0;
		}
	}
	return rk_error_set(err, RK_ECONFLICT,
			    "vault %s: %s/%s was changed by someone else (version %ld, rekey "
			    "expected %ld); not overwritten", v->base.name, loc->mount,
			    loc->path, latest.version, expected);
}

/*
 * After a 5xx other than 503, a reset or a timeout the server may have acted
 * on a write: its outcome is unknown until read back. (429 and 503 say it did
 * not; rk_http_do resends those itself.)
 */
static int
outcome_unknown(const struct rk_error *err)
{
	return err->code == RK_ETRANSIENT &&
	       (err->http_status == 0 || (err->http_status >= 500 && err->http_status != 503));
}

/*
 * Waits before sending a write again, as rk_http_do waits between its
 * attempts; err holds the failure that is being retried, and is cleared.
 * A cancelled call or one whose deadline comes first stops the wait:
 * RK_ECANCELED or RK_ETRANSIENT, err saying that nothing was sent again.
 */
static int
resend_wait(struct vault *v, const struct rk_call *call, const char *what, int attempt,
	    struct rk_error *err)
{
	int64_t ms = rk_backoff_ms(attempt - 1, v->hcfg.base_delay_ms, v->hcfg.max_delay_ms,
				   randombytes_random());
	int r;

	rk_log(RK_LOG_INFO, "vault.resend", "provider", v->base.name, "call", what, "msg",
	       "nothing landed: sending again with the same precondition", "error", err->msg,
	       NULL);
	r = rk_call_sleep(call, ms);
	rk_error_clear(err);
	if (r == RK_ECANCELED)
		return rk_error_set(err, r, "vault %s: %s: nothing landed, and it was not sent "
				    "again: rekey is shutting down", v->base.name, what);
	if (r < 0)
		return rk_error_set(err, r, "vault %s: %s: nothing landed, and the deadline "
				    "passed before it could be sent again", v->base.name, what);
	return 0;
}

/*
 * A KV write with cas whose outcome is settled: a write that may have landed
 * is read back (kv_find, as the crash resume does): ours -> its version;
 * nothing newer than cas -> sent again with the same cas, up to the
 * provider's retry.max_attempts; someone else's -> RK_ECONFLICT. A cas 400 is
 * read back the same way, since our own earlier attempt may have landed.
 */
static int
kv_settled_write(struct vault *v, const struct rk_call *call, const struct vault_loc *loc,
		 const json_t *data, long cas, const struct rk_secret *value, long *version,
		 struct rk_error *err)
{
	for (int attempt = 1;; attempt++) {
		struct rk_error e2 = { 0 };
		long found = 0;
		int r, f, cas_400;

		if ((r = kv_write(v, call, loc, data, cas, version, err)) == 0)
			return 0;
		cas_400 = r == RK_EPROTO && err->http_status == 400;
		if (!cas_400 && !outcome_unknown(err))
			return r;
		f = kv_find(v, call, loc, cas, value, &found, &e2);
		if (f == 0) {
			rk_log(RK_LOG_INFO, "vault.write_settled", "provider", v->base.name, "msg",
			       "the write landed although its answer was lost or an error", "error",
			       err->msg, NULL);
			rk_error_clear(err);
			*version = found;
			return 0;
		}
		if (f == RK_ECONFLICT) {
			*err = e2;
			return f;
		}
		/* A 400 with nothing newer is the request itself; a failed read settles nothing. */
		if (cas_400 || f != RK_ENOTFOUND || attempt >= v->hcfg.max_attempts)
			return r;
		if ((r = resend_wait(v, call, "write", attempt, err)) < 0)
			return r;
	}
}

static int
vault_find_staged(struct rk_provider *p, const struct rk_call *call, const void *loc_,
		  const struct rk_stage_req *req, struct rk_version *ver, struct rk_error *err)
{
	struct vault *v = (struct vault *)p;
	const struct vault_loc *loc = loc_;
	long expected, found = 0, latest;
	int r;

	if ((r = parse_version(req->expected, &expected, err)) < 0)
		return r;
	if (loc->engine == VAULT_TRANSIT) {
		if ((r = transit_read_key(v, call, loc, &latest, NULL, err)) < 0)
			return r;
		/* Rotate makes no mark of its own: one version past ours is ours. */
		if (latest == expected + 1) {
			rk_version_set(ver, latest);
			return 0;
		}
		if (latest == expected)
			return rk_error_set(err, RK_ENOTFOUND, "transit key not rotated yet");
		return rk_error_set(err, RK_ECONFLICT,
				    "vault %s: transit key %s moved from version %ld to %ld "
				    "meanwhile", v->base.name, loc->transit_key, expected, latest);
	}
	if ((r = kv_find(v, call, loc, expected, req->value, &found, err)) < 0)
		return r;
	rk_version_set(ver, found);
	return 0;
}

static int
transit_rotate(struct vault *v, const struct rk_call *call, const struct vault_loc *loc,
	       long expected, struct rk_version *new_ver, struct rk_error *err)
{
	struct rk_http_resp resp = { 0 };
	long latest, keep = loc->min_decryption_keep, min_dec = 0;
	char path[600];
	int r;

	if ((r = transit_read_key(v, call, loc, &latest, NULL, err)) < 0)
		return r;
	if (latest != expected)
		return rk_error_set(err, RK_ECONFLICT,
				    "vault %s: transit key %s is at version %ld, rekey expected %ld",
				    v->base.name, loc->transit_key, latest, expected);
	snprintf(path, sizeof(path), "/v1/%s/keys/%s/rotate", loc->mount, loc->transit_key);
	/*
	 * Not idempotent (a blind retry would rotate twice): after an unknown
	 * outcome latest_version settles it: one past ours is ours, unchanged is
	 * sent again, anything else is someone else's rotation.
	 */
	for (int attempt = 1;; attempt++) {
		if ((r = auth_call(v, call, "POST", path, "Content-Type: application/json", "{}",
				   RK_HTTP_RETRY_UNPROCESSED, 0, &resp, err)) == 0 &&
		    resp.status != 200 && resp.status != 204)	/* OpenBao/new Vault 200, old 204 */
			r = status_error(v, "rotate transit key", &resp, err);
		rk_http_resp_free(&resp);
		if (r == 0)
			break;
		if (!outcome_unknown(err) || transit_read_key(v, call, loc, &latest, NULL, err) < 0)
			goto out;
		if (latest == expected + 1) {
			rk_error_clear(err);
			break;
		}
		if (latest != expected) {
			r = rk_error_set(err, RK_ECONFLICT, "vault %s: transit key %s moved from "
					 "version %ld to %ld meanwhile", v->base.name,
					 loc->transit_key, expected, latest);
			goto out;
		}
		if (attempt >= v->hcfg.max_attempts ||
		    (r = resend_wait(v, call, "rotate transit key", attempt, err)) < 0)
			goto out;
	}
	if ((r = transit_read_key(v, call, loc, &latest, &min_dec, err)) < 0)
		goto out;
	rk_version_set(new_ver, latest);
	if (keep > 0 && latest - keep + 1 > min_dec) {
		char body[64];
		snprintf(path, sizeof(path), "/v1/%s/keys/%s/config", loc->mount, loc->transit_key);
		snprintf(body, sizeof(body), "{\"min_decryption_version\":%ld}", latest - keep + 1);
		if ((r = auth_call(v, call, "POST", path, "Content-Type: application/json", body, 1,
				   0, &resp, err)) < 0)
			goto out;
		if (resp.status != 200 && resp.status != 204) {
			r = status_error(v, "raise min_decryption_version", &resp, err);
			goto out;
		}
	}
	r = 0;
out:
	rk_http_resp_free(&resp);
	return r;
}

static int
vault_stage(struct rk_provider *p, const struct rk_call *call, const void *loc_,
	    const struct rk_stage_req *req, struct rk_version *new_ver, struct rk_error *err)
{
	struct vault *v = (struct vault *)p;
	const struct vault_loc *loc = loc_;
	struct kv_entry e;
	json_t *data = NULL;
	long expected, version = 0;
	int r;

	if ((r = parse_version(req->expected, &expected, err)) < 0)
		return r;
	if (loc->engine == VAULT_TRANSIT)
		return transit_rotate(v, call, loc, expected, new_ver, err);
	/* The other keys of the entry are preserved: read, change one key, write with cas. */
	r = kv_read(v, call, loc, 0, &e, err);
	if (r == RK_ENOTFOUND && e.version == 0) {
		rk_error_clear(err);
		e.data = json_object();
		e.version = 0;
	} else if (r == RK_ENOTFOUND && e.deleted) {
		/* The latest version is deleted: cas must still name it. */
		rk_error_clear(err);
		e.data = json_object();
	} else if (r < 0) {
		return r;
	}
	if (e.version != expected) {
		kv_entry_free(&e);
		return rk_error_set(err, RK_ECONFLICT,
				    "vault %s: %s/%s is at version %ld, rekey read version %ld "
				    "before generating; someone else wrote it", v->base.name,
				    loc->mount, loc->path, e.version, expected);
	}
	data = e.data;
	e.data = NULL;
	if (json_object_set_new(data, loc->key,
				json_stringn(rk_secret_str(req->value), rk_secret_len(req->value))) < 0) {
		r = rk_error_set(err, RK_ENOMEM, "out of memory");
		goto out;
	}
	if ((r = kv_settled_write(v, call, loc, data, expected, req->value, &version, err)) < 0)
		goto out;
	rk_version_set(new_ver, version);
	kv_tag(v, call, loc, req);
	r = 0;
out:
	json_decref(data);
	return r;
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
	struct vault *v = (struct vault *)p;
	const struct vault_loc *loc = loc_;
	struct kv_entry old, cur;
	struct rk_secret *want = NULL;
	long n, version = 0, found = 0, expected;
	int r;

	if (loc->engine == VAULT_TRANSIT)
		return rk_error_set(err, RK_EUNSUPPORTED,
				    "a transit key cannot be rolled back; older versions still "
				    "decrypt unless min_decryption_version was raised");
	if ((r = parse_version(to, &n, err)) < 0 || (r = parse_version(req->expected, &expected, err)) < 0)
		return r;
	if ((r = kv_read(v, call, loc, n, &old, err)) < 0)
		return r;
	if ((r = kv_value(v, loc, &old, &want, err)) < 0)
		goto out;
	/* Already done by an earlier attempt of this rollback? */
	if (kv_find(v, call, loc, expected, want, &found, err) == 0) {
		rk_version_set(new_ver, found);
		r = 0;
		goto out;
	}
	rk_error_clear(err);
	if ((r = kv_read(v, call, loc, 0, &cur, err)) < 0)
		goto out;
	kv_entry_free(&cur);
	if (expected != 0 && cur.version != expected) {
		r = rk_error_set(err, RK_ECONFLICT,
				 "vault %s: %s/%s moved to version %ld meanwhile; not rolled back",
				 v->base.name, loc->mount, loc->path, cur.version);
		goto out;
	}
	if ((r = kv_settled_write(v, call, loc, old.data, cur.version, want, &version, err)) < 0)
		goto out;
	rk_version_set(new_ver, version);
	kv_tag(v, call, loc, req);
out:
	rk_secret_free(want);
	kv_entry_free(&old);
	return r;
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
	if (transit_read_key(v, NULL, loc, &latest, NULL, &e) < 0)
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
	if (raw_call(v, NULL, NULL, "GET", "/v1/sys/health?standbyok=true&perfstandbyok=true",
		     NULL, NULL, 0, 1, 0, &resp, &e) < 0) {
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
	if (auth_call(v, NULL, "GET", "/v1/auth/token/lookup-self", NULL, NULL, 1, 1, &resp,
		      &e) < 0 || resp.status != 200) {
		if (e.code == 0)
			status_error(v, "token lookup", &resp, &e);
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
	    auth_call(v, NULL, "POST", "/v1/sys/capabilities-self",
		      "Content-Type: application/json", text, 1, 0, &resp, &e) < 0 ||
	    resp.status != 200 ||
	    rk_kit_json_object(&v->base, "capabilities", &resp, &j, &e) < 0) {
		if (e.code == 0 && resp.status)
			status_error(v, "capabilities", &resp, &e);
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

const struct rk_provider_ops rk_provider_vault = {
	.type = "vault",
	.caps = RK_CAP_VERSIONS,
	.config_fields = vault_config_fields,
	.locator_fields = vault_locator_fields,
	.check_config = vault_check_config,
	.open = vault_open,
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
	.close = vault_close,
};
