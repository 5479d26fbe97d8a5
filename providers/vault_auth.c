/*
 * The vault provider's instance (see vault.c for the whole provider): its
 * config block, checked without connecting; open and close; and the
 * authenticated HTTP call every request of the engines goes through.
 *
 * Auth: a token file, AppRole or Kubernetes login; the token lives in
 * sodium memory, is renewed at 2/3 of its lease, and a 403 causes one
 * re-login (or re-read of the token file) before the call fails. A login
 * or renewal made for an operation carries that operation's call.
 * Errors are decided on the HTTP status (the contract's rule), and Vault's
 * {"errors": [...]} text is carried into the message.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "rekey/http.h"
#include "rekey/log.h"
#include "rekey/provider_kit.h"
#include "rekey/resilience.h"
#include "rekey/secret.h"
#include "rekey/util.h"
#include "vault_int.h"

#define VAULT_DEFAULT_K8S_JWT "/var/run/secrets/kubernetes.io/serviceaccount/token"

const struct rk_field rk_vault_config_fields[] = {
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


void
rk_vault_close(struct rk_provider *p)
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
int
rk_vault_safe_path(const char *s)
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
	if (!rk_vault_safe_path(rk_doc_str(cfg, "kv_mount", "secret")) ||
	    !rk_vault_safe_path(rk_doc_str(cfg, "transit_mount", "transit")) ||
	    !rk_vault_safe_path(
		    rk_doc_str(auth, "mount", *method == AUTH_APPROLE ? "approle" : "kubernetes")))
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

int
rk_vault_check_config(const struct rk_provider_env *env, const json_t *cfg, struct rk_error *err)
{
	struct rk_http_cfg hcfg;
	enum auth_method method;
	int r;

	memset(&hcfg, 0, sizeof(hcfg));
	r = vault_parse_config(env, cfg, &method, &hcfg, err);
	rk_http_cfg_free(&hcfg);
	return r;
}

int
rk_vault_open(struct rk_provider **out, const struct rk_provider_env *env, const json_t *cfg,
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
	if ((r = rk_kit_dupstr(&v->token_file, rk_doc_str(auth, "token_file", NULL), err)) < 0 ||
	    (r = rk_kit_dupstr(&v->role_id, rk_doc_str(auth, "role_id", NULL), err)) < 0 ||
	    (r = rk_kit_dupstr(&v->secret_id_file, rk_doc_str(auth, "secret_id_file", NULL),
				 err)) < 0 ||
	    (r = rk_kit_dupstr(&v->role, rk_doc_str(auth, "role", NULL), err)) < 0 ||
	    (r = rk_kit_dupstr(&v->jwt_file, rk_doc_str(auth, "jwt_file", VAULT_DEFAULT_K8S_JWT),
				 err)) < 0 ||
	    (r = rk_kit_dupstr(&v->auth_mount,
				 rk_doc_str(auth, "mount",
					    v->method == AUTH_APPROLE ? "approle" : "kubernetes"),
				 err)) < 0 ||
	    (r = rk_kit_dupstr(&v->namespace_, rk_doc_str(cfg, "namespace", NULL), err)) < 0 ||
	    (r = rk_kit_dupstr(&v->kv_mount, rk_doc_str(cfg, "kv_mount", "secret"), err)) < 0 ||
	    (r = rk_kit_dupstr(&v->transit_mount, rk_doc_str(cfg, "transit_mount", "transit"),
				 err)) < 0)
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
	rk_vault_close(v ? &v->base : NULL);
	return r;
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

int
rk_vault_status_error(struct vault *v, const char *what, const struct rk_http_resp *resp,
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
int
rk_vault_raw_call(struct vault *v, const struct rk_call *call, const struct rk_secret *token,
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
int
rk_vault_expect_json(struct vault *v, const char *what, const struct rk_http_resp *resp,
		     json_t **out, struct rk_error *err)
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
	if ((r = rk_vault_raw_call(v, call, NULL, "POST", path, "Content-Type: application/json",
				   text, strlen(text), 1, 1, &resp, err)) < 0)
		goto out;
	if ((r = rk_vault_expect_json(v, "login", &resp, &j, err)) < 0) {
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
	    rk_vault_raw_call(v, call, v->token, "POST", "/v1/auth/token/renew-self",
			      "Content-Type: application/json", "{}", 2, 1, 1, &resp, err) == 0 &&
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
int
rk_vault_call(struct vault *v, const struct rk_call *call, const char *method, const char *path,
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
		r = rk_vault_raw_call(v, call, tok, method, path, ctype, body,
				      body ? strlen(body) : 0, idempotent, sensitive, resp, err);
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

/* ---- resending writes ---- */

/*
 * Waits before sending a write again, as rk_http_do waits between its
 * attempts; err holds the failure that is being retried, and is cleared.
 * A cancelled call or one whose deadline comes first stops the wait:
 * RK_ECANCELED or RK_ETRANSIENT, err saying that nothing was sent again.
 */
int
rk_vault_resend_wait(struct vault *v, const struct rk_call *call, const char *what, int attempt,
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
