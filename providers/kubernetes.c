/*
 * The kubernetes provider: a key of a Secret's data (locator {namespace,
 * secret, key}), written with a merge patch that carries the resourceVersion
 * rekey read (compare-and-swap: contract 3.3), and the apps/v1 workloads
 * that read it, restarted with kubectl's `rollout restart` patch and waited
 * for as `kubectl rollout status` judges (contract 3.4).
 *
 * A Secret keeps one value: the version id is its resourceVersion, and the
 * previous value survives only in the state DB (sealed by the engine: this
 * provider has no RK_CAP_VERSIONS). Other keys of data, labels and other
 * annotations are never touched; rekey.io/rotated-at and rekey.io/run name
 * the latest rotation.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sodium.h>

#include "rekey/call.h"
#include "rekey/doc.h"
#include "rekey/http.h"
#include "rekey/http_cfg.h"
#include "rekey/log.h"
#include "rekey/provider.h"
#include "rekey/provider_kit.h"
#include "rekey/resilience.h"
#include "rekey/secret.h"
#include "rekey/util.h"
#include "k8s_conn.h"
#include "k8s_int.h"
#include "k8s_lease.h"

#define ANN_ROTATED_AT "rekey.io/rotated-at"
#define ANN_RUN "rekey.io/run"
#define ANN_RESTART "rekey.io/restart"
#define ANN_RESTARTED_AT "kubectl.kubernetes.io/restartedAt"

#define ROLLOUTS_DEFAULT 5
#define ROLLOUT_POLL_MS 1000

struct k8s {
	struct rk_provider base;
	struct rk_http *http;
	struct rk_http_cfg hcfg;
	struct rk_k8s_conn *conn;
	unsigned rollouts;		/* restarts in flight at once */
	int64_t poll_ms;		/* between two reads of a rollout */
	struct rk_k8s_lease *lease;	/* the leader lease seen (k8s_lease.c), made at first use */
};

struct k8s_loc {
	char *ns, *secret, *key;
	char path[600];			/* /api/v1/namespaces/NS/secrets/NAME */
};

/* client-go's own client-side limit: QPS 5, burst 10 (contract 3.6). */
static const struct rk_http_cfg k8s_http_defaults = {
	.connect_timeout_ms = 5000,
	.total_timeout_ms = 30000,
	.max_attempts = 5,
	.base_delay_ms = 200,
	.max_delay_ms = 20000,
	.cb_failures = 5,
	.cb_cooldown_ms = 30000,
	.rps = 5,
	.burst = 10,
	.concurrency = 8,
	.max_response = 4u << 20,
};

static const struct rk_field k8s_config_fields[] = {
	{ "type", RK_T_STRING, RK_F_REQUIRED },
	RK_K8S_CONN_FIELDS
	{ "rollouts", RK_T_INT, 0 },
	{ "rollout_poll", RK_T_DURATION, 0 },
	RK_HTTP_CFG_FIELDS,
	{ NULL, 0, 0 },
};

static const struct rk_field k8s_locator_fields[] = {
	{ "namespace", RK_T_STRING, 0 },
	{ "secret", RK_T_STRING, RK_F_REQUIRED },
	{ "key", RK_T_STRING, RK_F_REQUIRED },
	{ NULL, 0, 0 },
};

/* ---- names ---- */

/* A DNS-1123 subdomain (Secret and workload names) or label (namespaces). */
static int
dns_name_ok(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max || s[0] == '-' || s[0] == '.' || s[n - 1] == '-' || s[n - 1] == '.')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
		      (s[i] == '.' && max > 63)))
			return 0;
	return 1;
}

/* A key of a Secret's data: [-._a-zA-Z0-9]+ (the API server's rule). */
static int
data_key_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 253)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '-' || s[i] == '.' || s[i] == '_'))
			return 0;
	return 1;
}

/* ---- config ---- */

static int
k8s_parse_config(const struct rk_provider_env *env, const json_t *cfg, struct rk_http_cfg *hcfg,
		 struct rk_k8s_conn_cfg *cc, unsigned *rollouts, int64_t *poll_ms,
		 struct rk_error *err)
{
	int64_t n = rk_doc_int(cfg, "rollouts", ROLLOUTS_DEFAULT);
	int r;

	if (n < 1 || n > 100)
		return rk_doc_error_key(err, env->doc, cfg, "rollouts", RK_EINVAL,
					"rollouts (restarts in flight at once) must be 1 to 100");
	*rollouts = (unsigned)n;
	if ((r = rk_doc_duration_ms(env->doc, cfg, "rollout_poll", ROLLOUT_POLL_MS, poll_ms, err)) < 0)
		return r;
	if (*poll_ms < 10 || *poll_ms > 60000)
		return rk_doc_error_key(err, env->doc, cfg, "rollout_poll", RK_EINVAL,
					"rollout_poll must be a duration between 10ms and 1m");
	if ((r = rk_k8s_conn_cfg_parse(cc, env->doc, cfg, err)) < 0)
		return r;
	/* Tests point the in-cluster files elsewhere; a pod never sets this. */
	cc->sa_dir = getenv("REKEY_K8S_SA_DIR");
	return rk_http_cfg_parse(hcfg, env->doc, cfg, &k8s_http_defaults, err);
}

static int
k8s_check_config(const struct rk_provider_env *env, const json_t *cfg, struct rk_error *err)
{
	struct rk_http_cfg hcfg;
	struct rk_k8s_conn_cfg cc;
	unsigned ro;
	int64_t poll;
	int r;

	memset(&hcfg, 0, sizeof(hcfg));
	r = k8s_parse_config(env, cfg, &hcfg, &cc, &ro, &poll, err);
	rk_http_cfg_free(&hcfg);
	return r;
}

static void
k8s_close(struct rk_provider *p)
{
	struct k8s *k = (struct k8s *)p;

	if (k == NULL)
		return;
	rk_http_free(k->http);
	rk_http_cfg_free(&k->hcfg);
	rk_k8s_conn_free(k->conn);
	rk_k8s_lease_free(k->lease);
	free(k);
}

static int
k8s_open(struct rk_provider **out, const struct rk_provider_env *env, const json_t *cfg,
	 struct rk_error *err)
{
	struct k8s *k = calloc(1, sizeof(*k));
	struct rk_k8s_conn_cfg cc;
	int r;

	if (k == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	if ((r = k8s_parse_config(env, cfg, &k->hcfg, &cc, &k->rollouts, &k->poll_ms, err)) < 0 ||
	    (r = rk_k8s_conn_new(&k->conn, &cc, env->doc, err)) < 0 ||
	    (r = rk_k8s_conn_tls(k->conn, &k->hcfg, err)) < 0 ||
	    (r = rk_http_new(&k->http, env->name, rk_k8s_conn_server(k->conn), &k->hcfg, err)) < 0)
		goto out;
	*out = &k->base;
	k = NULL;
	r = 0;
out:
	if (r < 0)
		rk_error_prefix(err, "kubernetes %s: ", env->name);
	k8s_close(k ? &k->base : NULL);
	return r;
}

/* ---- locators ---- */

static int
k8s_check_locator(const struct rk_doc *doc, const json_t *loc, struct rk_error *err)
{
	const char *ns = rk_doc_str(loc, "namespace", NULL);

	if (ns != NULL && !dns_name_ok(ns, 63))
		return rk_doc_error_key(err, doc, loc, "namespace", RK_EINVAL,
					"'%s' is not a namespace name (lower-case letters, digits "
					"and '-', at most 63)", ns);
	if (!dns_name_ok(rk_doc_str(loc, "secret", ""), 253))
		return rk_doc_error_key(err, doc, loc, "secret", RK_EINVAL,
					"'%s' is not a Secret name (lower-case letters, digits, "
					"'-' and '.', at most 253)", rk_doc_str(loc, "secret", ""));
	if (!data_key_ok(rk_doc_str(loc, "key", "")))
		return rk_doc_error_key(err, doc, loc, "key", RK_EINVAL,
					"'%s' is not a key of a Secret's data (letters, digits, "
					"'-', '.' and '_')", rk_doc_str(loc, "key", ""));
	return 0;
}

static void
k8s_free_locator(void *loc_)
{
	struct k8s_loc *loc = loc_;

	if (loc == NULL)
		return;
	free(loc->ns);
	free(loc->secret);
	free(loc->key);
	free(loc);
}

static int
k8s_parse_locator(const struct rk_provider *p, const json_t *loc, void **out,
		  struct rk_error *err)
{
	const struct k8s *k = (const struct k8s *)p;
	struct k8s_loc *l = calloc(1, sizeof(*l));
	const char *secret = rk_doc_str(loc, "secret", NULL), *key = rk_doc_str(loc, "key", NULL);
	int r;

	*out = NULL;
	if (l == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	if (secret == NULL || key == NULL) {
		k8s_free_locator(l);
		return rk_error_set(err, RK_EINVAL, "kubernetes locator needs 'secret' and 'key'");
	}
	if ((r = rk_kit_dupstr(&l->ns, rk_doc_str(loc, "namespace", rk_k8s_conn_namespace(k->conn)),
			       err)) < 0 ||
	    (r = rk_kit_dupstr(&l->secret, secret, err)) < 0 ||
	    (r = rk_kit_dupstr(&l->key, key, err)) < 0) {
		k8s_free_locator(l);
		return r;
	}
	snprintf(l->path, sizeof(l->path), "/api/v1/namespaces/%s/secrets/%s", l->ns, l->secret);
	*out = l;
	return 0;
}

/* ---- requests ---- */

/*
 * A Status body's message (`secrets "db" is forbidden: User ...`) as the
 * error text; its reason decides a conflict (409 Conflict / AlreadyExists).
 * The APF 429 is plain text: no words, the status decides.
 */
static int
status_text(const struct rk_http_resp *resp, char *out, size_t n)
{
	json_t *j = json_loadb(resp->body, resp->len, 0, NULL);
	const char *msg = json_string_value(json_object_get(j, "message"));
	const char *reason = json_string_value(json_object_get(j, "reason"));
	const char *kind = json_string_value(json_object_get(j, "kind"));
	int code = 0;

	out[0] = '\0';
	if (msg != NULL && kind != NULL && strcmp(kind, "Status") == 0) {
		snprintf(out, n, "%s", msg);
		for (char *p = out; *p; p++)
			if (*p == '\n' || *p == '\t')
				*p = ' ';
	}
	if (resp->status == 409 && reason != NULL &&
	    (strcmp(reason, "Conflict") == 0 || strcmp(reason, "AlreadyExists") == 0))
		code = RK_ECONFLICT;
	json_decref(j);
	return code;
}

static int
status_error(struct k8s *k, const char *what, const struct rk_http_resp *resp,
	     struct rk_error *err)
{
	return rk_kit_status_error(&k->base, what, resp, status_text, err);
}

/*
 * One request with the bearer token (read again when its file changed); a
 * 401 reads the token file again and, when it did change (a projected token
 * rotated under us), sends once more.
 */
static int
k8s_send(struct k8s *k, const struct rk_call *call, const char *method, const char *path,
	 const char *ctype, const void *body, size_t body_len, int idempotent, int sensitive,
	 struct rk_http_resp *resp, struct rk_error *err)
{
	char auth[RK_K8S_AUTH_HEADER_MAX];
	const char *hdrs[4];
	struct rk_http_req req;
	int r;

	for (int attempt = 0;; attempt++) {
		int n = 0;
		if ((r = rk_k8s_conn_auth_header(k->conn, auth, sizeof(auth), err)) < 0)
			goto out;
		if (auth[0])
			hdrs[n++] = auth;
		hdrs[n++] = "Accept: application/json";
		if (ctype != NULL)
			hdrs[n++] = ctype;
		hdrs[n] = NULL;
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
		r = rk_http_do(k->http, &req, resp, err);
		sodium_memzero(auth, sizeof(auth));
		if (r < 0 || resp->status != 401 || attempt > 0)
			break;
		{
			struct rk_error e2 = { 0 };
			if (rk_k8s_conn_reload_token(k->conn, &e2) != 1)
				break;
		}
		rk_log(RK_LOG_INFO, "kubernetes.token_reloaded", "provider", k->base.name, "msg",
		       "401 Unauthorized with a token that has since changed: sending again",
		       NULL);
		rk_http_resp_free(resp);
		memset(resp, 0, sizeof(*resp));
	}
out:
	sodium_memzero(auth, sizeof(auth));
	return r;
}

/* A GET that answers a JSON object (*out), or the Status as an error. */
static int
get_json(struct k8s *k, const struct rk_call *call, const char *what, const char *path,
	 int sensitive, json_t **out, struct rk_error *err)
{
	struct rk_http_resp resp = { 0 };
	int r;

	*out = NULL;
	if ((r = k8s_send(k, call, "GET", path, NULL, NULL, 0, RK_HTTP_IDEMPOTENT, sensitive, &resp,
			  err)) == 0)
		r = rk_kit_expect_json(&k->base, what, &resp, status_text, out, err);
	rk_http_resp_free(&resp);
	return r;
}

/*
 * A write: 200 or 201 with a JSON object (*out, may be NULL when not
 * wanted), or the Status as an error.
 */
static int
write_json(struct k8s *k, const struct rk_call *call, const char *what, const char *method,
	   const char *path, const char *ctype, const void *body, size_t len, int idempotent,
	   int sensitive, json_t **out, struct rk_error *err)
{
	struct rk_http_resp resp = { 0 };
	json_t *j = NULL;
	int r;

	if (out != NULL)
		*out = NULL;
	if ((r = k8s_send(k, call, method, path, ctype, body, len, idempotent, sensitive, &resp,
			  err)) < 0)
		goto out;
	if (resp.status != 200 && resp.status != 201) {
		r = status_error(k, what, &resp, err);
		goto out;
	}
	if ((r = rk_kit_json_object(&k->base, what, &resp, &j, err)) < 0)
		goto out;
	if (out != NULL) {
		*out = j;
		j = NULL;
	}
out:
	json_decref(j);
	rk_http_resp_free(&resp);
	return r;
}

static const char *
rv_of(const json_t *obj)
{
	const char *rv = json_string_value(
		json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
	return rv ? rv : "";
}

/* ---- Secrets ---- */

/* GETs the Secret (*obj); RK_ENOTFOUND when it does not exist. */
static int
get_secret(struct k8s *k, const struct rk_call *call, const struct k8s_loc *loc, json_t **obj,
	   struct rk_error *err)
{
	char what[400];
	int r;

	snprintf(what, sizeof(what), "get secret %s/%s", loc->ns, loc->secret);
	if ((r = get_json(k, call, what, loc->path, 1, obj, err)) < 0)
		return r;
	if (!json_is_object(json_object_get(*obj, "metadata")) || rv_of(*obj)[0] == '\0' ||
	    (json_object_get(*obj, "data") != NULL && !json_is_object(json_object_get(*obj, "data")))) {
		json_decref(*obj);
		*obj = NULL;
		return rk_error_set(err, RK_EPROTO, "kubernetes %s: %s: the answer is not a Secret "
				    "(no metadata.resourceVersion, or data is not a mapping)",
				    k->base.name, what);
	}
	return 0;
}

/*
 * The value of loc->key in a Secret read (*out, sodium memory), or NULL
 * when the key is absent. A value that is not standard base64 is an error
 * naming the key: rekey will not guess what the cluster holds.
 */
static int
value_of(struct k8s *k, const struct k8s_loc *loc, const json_t *obj, struct rk_secret **out,
	 struct rk_error *err)
{
	const json_t *v = json_object_get(json_object_get(obj, "data"), loc->key);
	const char *b64 = json_string_value(v);
	size_t blen, len = 0;
	struct rk_secret *s = NULL;
	int r;

	*out = NULL;
	if (v == NULL)
		return 0;
	if (b64 == NULL)
		return rk_error_set(err, RK_EPROTO, "kubernetes %s: secret %s/%s: data.%s is not a "
				    "string", k->base.name, loc->ns, loc->secret, loc->key);
	blen = strlen(b64);
	if ((r = rk_secret_new(&s, blen / 4 * 3 + 3, err)) < 0)
		return r;
	if (sodium_base642bin(rk_secret_data(s), blen / 4 * 3 + 3, b64, blen, NULL, &len, NULL,
			      sodium_base64_VARIANT_ORIGINAL) != 0) {
		rk_secret_free(s);
		return rk_error_set(err, RK_EPROTO, "kubernetes %s: secret %s/%s: data.%s is not "
				    "valid base64 (standard alphabet with padding); rekey changed "
				    "nothing: fix the Secret first", k->base.name, loc->ns,
				    loc->secret, loc->key);
	}
	rk_secret_truncate(s, len);
	*out = s;
	return 0;
}

static int
k8s_read(struct rk_provider *p, const struct rk_call *call, const void *loc_,
	 struct rk_secret **out, struct rk_version *ver, struct rk_error *err)
{
	struct k8s *k = (struct k8s *)p;
	const struct k8s_loc *loc = loc_;
	json_t *obj = NULL;
	int r;

	*out = NULL;
	ver->id[0] = '\0';
	if ((r = get_secret(k, call, loc, &obj, err)) < 0)
		return r;
	if ((r = value_of(k, loc, obj, out, err)) == 0 && *out == NULL)
		r = rk_error_set(err, RK_ENOTFOUND, "kubernetes %s: secret %s/%s has no key '%s'",
				 k->base.name, loc->ns, loc->secret, loc->key);
	if (r == 0)
		snprintf(ver->id, sizeof(ver->id), "%s", rv_of(obj));
	json_decref(obj);
	return r;
}

/*
 * A Secret keeps one value: any version asked for is read as the current
 * one (verify compares fingerprints, so a value someone else wrote since is
 * caught there).
 */
static int
k8s_read_version(struct rk_provider *p, const struct rk_call *call, const void *loc,
		 const struct rk_version *ver, struct rk_secret **out, struct rk_error *err)
{
	struct rk_version cur;

	(void)ver;
	return k8s_read(p, call, loc, out, &cur, err);
}

/*
 * The request body of a write, built in sodium memory because it holds the
 * value: `{<head>"data":{<key>:"<base64>"}}`, head being the other members
 * (serialized by jansson, no value in them) followed by a comma.
 */
static int
body_with_value(const char *head, const char *key, const struct rk_secret *value,
		struct rk_secret **out, struct rk_error *err)
{
	size_t b64n = sodium_base64_ENCODED_LEN(rk_secret_len(value), sodium_base64_VARIANT_ORIGINAL);
	json_t *kj = json_string(key);
	char *kt = kj ? json_dumps(kj, JSON_ENCODE_ANY) : NULL;
	size_t n;
	char *b;
	int r;

	json_decref(kj);
	if (kt == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	n = strlen(head) + strlen(kt) + b64n + 32;
	if ((r = rk_secret_new(out, n, err)) < 0) {
		free(kt);
		return r;
	}
	b = (char *)rk_secret_data(*out);
	n = (size_t)snprintf(b, n, "{%s\"data\":{%s:\"", head, kt);
	sodium_bin2base64(b + n, b64n, rk_secret_cdata(value), rk_secret_len(value),
			  sodium_base64_VARIANT_ORIGINAL);
	n += strlen(b + n);
	memcpy(b + n, "\"}}", 4);
	rk_secret_truncate(*out, n + 3);
	free(kt);
	return 0;
}

/* `"metadata":{...},` of a write: the precondition and rekey's annotations. */
static char *
meta_head(const struct k8s_loc *loc, const char *rv, const struct rk_stage_req *req, int create)
{
	char now[32];
	json_t *m, *top;
	char *s, *head = NULL;

	rk_format_time((int64_t)time(NULL), now, sizeof(now));
	m = json_pack("{s:{s:s, s:s}}", "annotations", ANN_ROTATED_AT, now, ANN_RUN, req->run_id);
	if (m == NULL)
		return NULL;
	if (create) {
		json_object_set_new(m, "name", json_string(loc->secret));
		json_object_set_new(m, "namespace", json_string(loc->ns));
		top = json_pack("{s:s, s:s, s:o, s:s}", "apiVersion", "v1", "kind", "Secret",
				"metadata", m, "type", "Opaque");
	} else {
		json_object_set_new(m, "resourceVersion", json_string(rv));
		top = json_pack("{s:o}", "metadata", m);
	}
	if (top == NULL || (s = json_dumps(top, JSON_COMPACT)) == NULL) {
		json_decref(top);
		return NULL;
	}
	/* Drop the outer braces; a comma ends the head. */
	s[strlen(s) - 1] = ',';
	head = strdup(s + 1);
	free(s);
	json_decref(top);
	return head;
}

/*
 * One write of req->value: a merge patch conditional on rv (the other keys
 * of data and the metadata are kept), or a create when the Secret does not
 * exist (rv NULL). *new_rv gets the resourceVersion it made.
 */
static int
write_once(struct k8s *k, const struct rk_call *call, const struct k8s_loc *loc, const char *rv,
	   const struct rk_stage_req *req, struct rk_version *new_ver, struct rk_error *err)
{
	char *head = meta_head(loc, rv, req, rv == NULL);
	struct rk_secret *body = NULL;
	char path[700], what[400];
	json_t *ans = NULL;
	int r;

	if (head == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	if ((r = body_with_value(head, loc->key, req->value, &body, err)) < 0)
		goto out;
	if (rv == NULL) {
		snprintf(path, sizeof(path), "/api/v1/namespaces/%s/secrets?fieldManager=rekey", loc->ns);
		snprintf(what, sizeof(what), "create secret %s/%s", loc->ns, loc->secret);
		r = write_json(k, call, what, "POST", path, "Content-Type: application/json",
			       rk_secret_cdata(body), rk_secret_len(body), RK_HTTP_RETRY_UNPROCESSED,
			       1, &ans, err);
	} else {
		snprintf(path, sizeof(path), "%s?fieldManager=rekey", loc->path);
		snprintf(what, sizeof(what), "patch secret %s/%s", loc->ns, loc->secret);
		/* The precondition makes a blind resend of a landed patch a 409: resent only when unprocessed. */
		r = write_json(k, call, what, "PATCH", path,
			       "Content-Type: application/merge-patch+json", rk_secret_cdata(body),
			       rk_secret_len(body), RK_HTTP_RETRY_UNPROCESSED, 1, &ans, err);
	}
	if (r == 0) {
		if (rv_of(ans)[0] == '\0')
			r = rk_error_set(err, RK_EPROTO, "kubernetes %s: %s: the answer has no "
					 "metadata.resourceVersion", k->base.name, what);
		else
			snprintf(new_ver->id, sizeof(new_ver->id), "%s", rv_of(ans));
	}
out:
	json_decref(ans);
	rk_secret_free(body);
	free(head);
	return r;
}

/*
 * Is req's value in the Secret now? 0 with *ver (ours landed); RK_ENOTFOUND
 * when the Secret is as req->expected left it (nothing landed); RK_ECONFLICT
 * when someone else changed it.
 */
static int
k8s_find_staged(struct rk_provider *p, const struct rk_call *call, const void *loc_,
		const struct rk_stage_req *req, struct rk_version *ver, struct rk_error *err)
{
	struct k8s *k = (struct k8s *)p;
	const struct k8s_loc *loc = loc_;
	const char *expected = req->expected ? req->expected->id : "";
	struct rk_secret *cur = NULL;
	json_t *obj = NULL;
	int r;

	r = get_secret(k, call, loc, &obj, err);
	if (r == RK_ENOTFOUND && expected[0] == '\0')
		return r;	/* nothing was created */
	if (r == RK_ENOTFOUND)
		return rk_error_set(err, RK_ECONFLICT, "kubernetes %s: secret %s/%s was deleted by "
				    "someone else", p->name, loc->ns, loc->secret);
	if (r < 0)
		return r;
	if ((r = value_of(k, loc, obj, &cur, err)) < 0)
		goto out;
	if (cur != NULL && req->value != NULL && rk_secret_equal(cur, req->value)) {
		snprintf(ver->id, sizeof(ver->id), "%s", rv_of(obj));
		r = 0;
	} else if (strcmp(rv_of(obj), expected) == 0 || (expected[0] == '\0' && cur == NULL)) {
		r = rk_error_set(err, RK_ENOTFOUND, "kubernetes %s: secret %s/%s: rekey's write "
				 "did not land", p->name, loc->ns, loc->secret);
	} else {
		r = rk_error_set(err, RK_ECONFLICT, "kubernetes %s: secret %s/%s was changed by "
				 "someone else (resourceVersion %s, rekey read %s)", p->name,
				 loc->ns, loc->secret, rv_of(obj), expected[0] ? expected : "none");
	}
out:
	rk_secret_free(cur);
	json_decref(obj);
	return r;
}

/*
 * The precondition of a first write (expected empty: rekey saw no value):
 * create the Secret, or patch it under the resourceVersion seen now if it
 * exists without the key; RK_ECONFLICT if someone wrote the key meanwhile.
 */
static int
first_write_rv(struct k8s *k, const struct rk_call *call, const struct k8s_loc *loc, char *rv,
	       size_t n, int *create, struct rk_error *err)
{
	json_t *obj = NULL;
	int r = get_secret(k, call, loc, &obj, err);

	*create = 0;
	if (r == RK_ENOTFOUND) {
		rk_error_clear(err);
		*create = 1;
		return 0;
	}
	if (r < 0)
		return r;
	if (json_object_get(json_object_get(obj, "data"), loc->key) != NULL)
		r = rk_error_set(err, RK_ECONFLICT, "kubernetes %s: secret %s/%s got a key '%s' "
				 "from someone else", k->base.name, loc->ns, loc->secret, loc->key);
	else
		snprintf(rv, n, "%s", rv_of(obj));
	json_decref(obj);
	return r;
}

/*
 * Writes req->value under the precondition req->expected. An unknown
 * outcome is settled by reading back (ours landed: done; nothing new: sent
 * again, bounded by retry.max_attempts; someone else's: RK_ECONFLICT, which
 * sends the engine back to generate). A 409 is RK_ECONFLICT too: the engine
 * looks whether it was our own landed write first.
 */
static int
k8s_stage(struct rk_provider *p, const struct rk_call *call, const void *loc_,
	  const struct rk_stage_req *req, struct rk_version *new_ver, struct rk_error *err)
{
	struct k8s *k = (struct k8s *)p;
	const struct k8s_loc *loc = loc_;
	const char *expected = req->expected ? req->expected->id : "";
	char rv[128];
	int create = 0, r;

	if (req->value == NULL)
		return rk_error_set(err, RK_EINTERNAL, "kubernetes %s: stage without a value", p->name);
	snprintf(rv, sizeof(rv), "%s", expected);
	if (rv[0] == '\0' && (r = first_write_rv(k, call, loc, rv, sizeof(rv), &create, err)) < 0)
		return r;
	for (int attempt = 1;; attempt++) {
		struct rk_error e2 = { 0 };
		int64_t ms;
		if ((r = write_once(k, call, loc, create ? NULL : rv, req, new_ver, err)) == 0)
			return 0;
		if (!rk_kit_outcome_unknown(err) || attempt >= k->hcfg.max_attempts)
			return r;
		r = k8s_find_staged(p, call, loc, req, new_ver, &e2);
		if (r == 0) {
			rk_error_clear(err);
			return 0;
		}
		if (r != RK_ENOTFOUND) {
			if (r == RK_ECONFLICT) {
				*err = e2;
				return r;
			}
			return err->code;
		}
		rk_log(RK_LOG_INFO, "kubernetes.resend", "provider", p->name, "secret",
		       req->secret_name, "msg", "nothing landed: sending again with the same "
		       "resourceVersion", "error", err->msg, NULL);
		ms = rk_backoff_ms(attempt - 1, k->hcfg.base_delay_ms, k->hcfg.max_delay_ms,
				   randombytes_random());
		if ((r = rk_call_sleep(call, ms)) < 0)
			return r;
		rk_error_clear(err);
	}
}

/* Already current after stage: nothing to move. */
static int
k8s_promote(struct rk_provider *p, const struct rk_call *call, const void *loc,
	    const struct rk_version *new_ver, const struct rk_version *old_ver,
	    struct rk_error *err)
{
	(void)p, (void)call, (void)loc, (void)new_ver, (void)old_ver, (void)err;
	return 0;
}

/* ---- workloads ---- */

static const struct {
	const char *kind, *plural;
} kinds[] = {
	{ "deployment", "deployments" },
	{ "statefulset", "statefulsets" },
	{ "daemonset", "daemonsets" },
};

int
rk_k8s_parse_target(const char *s, struct rk_k8s_target *t, struct rk_error *err)
{
	const char *a = strchr(s, '/'), *b = a ? strchr(a + 1, '/') : NULL;
	size_t kl = a ? (size_t)(a - s) : strlen(s);

	memset(t, 0, sizeof(*t));
	for (size_t i = 0; i < RK_ARRAY_SIZE(kinds); i++)
		if (strlen(kinds[i].kind) == kl && strncmp(s, kinds[i].kind, kl) == 0) {
			t->kind = kinds[i].kind;
			t->plural = kinds[i].plural;
		}
	if (t->kind == NULL)
		return rk_error_set(err, RK_EINVAL, "unsupported kind '%.*s': a kubernetes "
				    "dependent is deployment, statefulset or daemonset "
				    "(PROVIDER/KIND/NAMESPACE/NAME)", (int)kl, s);
	if (b == NULL || strchr(b + 1, '/') != NULL || (size_t)(b - a - 1) >= sizeof(t->ns))
		return rk_error_set(err, RK_EINVAL, "'%s' must be KIND/NAMESPACE/NAME", s);
	memcpy(t->ns, a + 1, (size_t)(b - a - 1));
	snprintf(t->name, sizeof(t->name), "%s", b + 1);
	if (!dns_name_ok(t->ns, 63) || !dns_name_ok(t->name, 253))
		return rk_error_set(err, RK_EINVAL, "'%s': '%s' is not a namespace or '%s' not a "
				    "%s name", s, t->ns, t->name, t->kind);
	snprintf(t->path, sizeof(t->path), "/apis/apps/v1/namespaces/%s/%s/%s", t->ns, t->plural,
		 t->name);
	return 0;
}

static int
k8s_check_target(const char *target, struct rk_error *err)
{
	struct rk_k8s_target t;

	return rk_k8s_parse_target(target, &t, err);
}

static const char *
template_annotation(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(
		json_object_get(json_object_get(json_object_get(json_object_get(obj, "spec"),
								"template"),
						"metadata"),
				"annotations"),
		key));
}

/*
 * kubectl's `rollout restart` patch (contract 3.4), with the run in an
 * annotation of its own: a workload whose template already names this run
 * was restarted for it (by this process before a crash, or by an earlier
 * attempt whose answer was lost), so the restart is not done twice.
 */
static int
k8s_restart(struct rk_provider *p, const struct rk_call *call, const char *target_s,
	    const char *run_id, struct rk_error *err)
{
	struct k8s *k = (struct k8s *)p;
	struct rk_k8s_target t;
	json_t *obj = NULL, *patch = NULL;
	char what[400], path[500], now[32], *text = NULL;
	const char *mine;
	int r;

	if ((r = rk_k8s_parse_target(target_s, &t, err)) < 0)
		return r;
	snprintf(what, sizeof(what), "get %s %s/%s", t.kind, t.ns, t.name);
	if ((r = get_json(k, call, what, t.path, 0, &obj, err)) < 0)
		goto out;
	if (strcmp(t.kind, "deployment") == 0 &&
	    json_is_true(json_object_get(json_object_get(obj, "spec"), "paused"))) {
		r = rk_error_set(err, RK_EPROTO, "kubernetes %s: can't restart paused deployment "
				 "%s/%s (run `kubectl rollout resume deployment/%s -n %s` first)",
				 p->name, t.ns, t.name, t.name, t.ns);
		goto out;
	}
	mine = template_annotation(obj, ANN_RESTART);
	if (mine != NULL && strcmp(mine, run_id) == 0) {
		rk_log(RK_LOG_INFO, "kubernetes.restart_done", "provider", p->name, "dependent",
		       target_s, "run_id", run_id, "msg", "already restarted for this run", NULL);
		r = 0;
		goto out;
	}
	rk_format_time((int64_t)time(NULL), now, sizeof(now));
	patch = json_pack("{s:{s:{s:{s:{s:s, s:s}}}}}", "spec", "template", "metadata",
			  "annotations", ANN_RESTARTED_AT, now, ANN_RESTART, run_id);
	if (patch == NULL || (text = json_dumps(patch, JSON_COMPACT)) == NULL) {
		r = rk_error_set(err, RK_ENOMEM, "out of memory");
		goto out;
	}
	snprintf(what, sizeof(what), "restart %s %s/%s", t.kind, t.ns, t.name);
	snprintf(path, sizeof(path), "%s?fieldManager=rekey", t.path);
	/* The same bytes again change nothing: a resent patch makes no second rollout. */
	r = write_json(k, call, what, "PATCH", path,
		       "Content-Type: application/strategic-merge-patch+json", text, strlen(text),
		       RK_HTTP_IDEMPOTENT, 0, NULL, err);
out:
	free(text);
	json_decref(patch);
	json_decref(obj);
	return r;
}

static long long
num(const json_t *o, const char *key)
{
	return (long long)json_integer_value(json_object_get(o, key));	/* absent: 0 (omitempty) */
}

/*
 * `kubectl rollout status` (rollout_status.go, contract 3.4) for one read of
 * the workload; why[0..n) says what it waits for or why it failed. A
 * StatefulSet is also held to updatedReplicas == replicas and, once the
 * controller reports revisions, to updateRevision == currentRevision, so a
 * new revision that crash-loops is not "done".
 */
enum rk_k8s_rollout
rk_k8s_judge(const char *kind, const json_t *obj, char *why, size_t n)
{
	const json_t *meta = json_object_get(obj, "metadata"), *spec = json_object_get(obj, "spec"),
		     *st = json_object_get(obj, "status");
	long long gen = num(meta, "generation"), obs = num(st, "observedGeneration");
	long long want = json_is_integer(json_object_get(spec, "replicas"))
				 ? num(spec, "replicas") : 1;
	const char *strategy = json_string_value(
		json_object_get(json_object_get(spec, "updateStrategy"), "type"));

	if (strcmp(kind, "deployment") == 0) {
		const json_t *c;
		size_t i;
		if (gen > obs) {
			snprintf(why, n, "waiting for the deployment spec update to be observed");
			return RK_K8S_ROLLOUT_WAIT;
		}
		json_array_foreach(json_object_get(st, "conditions"), i, c) {
			const char *ty = json_string_value(json_object_get(c, "type"));
			const char *re = json_string_value(json_object_get(c, "reason"));
			if (ty && re && strcmp(ty, "Progressing") == 0 &&
			    strcmp(re, "ProgressDeadlineExceeded") == 0) {
				snprintf(why, n, "deployment exceeded its progress deadline");
				return RK_K8S_ROLLOUT_FAILED;
			}
		}
		if (num(st, "updatedReplicas") < want)
			snprintf(why, n, "%lld out of %lld new replicas have been updated",
				 num(st, "updatedReplicas"), want);
		else if (num(st, "replicas") > num(st, "updatedReplicas"))
			snprintf(why, n, "%lld old replicas are pending termination",
				 num(st, "replicas") - num(st, "updatedReplicas"));
		else if (num(st, "availableReplicas") < num(st, "updatedReplicas"))
			snprintf(why, n, "%lld of %lld updated replicas are available",
				 num(st, "availableReplicas"), num(st, "updatedReplicas"));
		else
			return RK_K8S_ROLLOUT_DONE;
		return RK_K8S_ROLLOUT_WAIT;
	}
	if (strategy != NULL && strcmp(strategy, "RollingUpdate") != 0) {
		snprintf(why, n, "updateStrategy %s: its pods do not restart on a template change "
			 "(delete them to restart)", strategy);
		return RK_K8S_ROLLOUT_FAILED;
	}
	if (strcmp(kind, "statefulset") == 0) {
		const char *cur = json_string_value(json_object_get(st, "currentRevision"));
		const char *upd = json_string_value(json_object_get(st, "updateRevision"));
		long long part = num(json_object_get(json_object_get(spec, "updateStrategy"),
						     "rollingUpdate"), "partition");
		if (obs == 0 || gen > obs)
			snprintf(why, n, "waiting for the statefulset spec update to be observed");
		else if (num(st, "readyReplicas") < want)
			snprintf(why, n, "%lld of %lld pods are ready", num(st, "readyReplicas"), want);
		else if (num(st, "updatedReplicas") < want - part)
			snprintf(why, n, "%lld of %lld pods are updated", num(st, "updatedReplicas"),
				 want - part);
		else if (part == 0 && cur && upd && strcmp(cur, upd) != 0)
			snprintf(why, n, "waiting for revision %s to become current", upd);
		else
			return RK_K8S_ROLLOUT_DONE;
		return RK_K8S_ROLLOUT_WAIT;
	}
	/* daemonset */
	if (gen > obs)
		snprintf(why, n, "waiting for the daemonset spec update to be observed");
	else if (num(st, "updatedNumberScheduled") < num(st, "desiredNumberScheduled"))
		snprintf(why, n, "%lld out of %lld new pods have been updated",
			 num(st, "updatedNumberScheduled"), num(st, "desiredNumberScheduled"));
	else if (num(st, "numberAvailable") < num(st, "desiredNumberScheduled"))
		snprintf(why, n, "%lld of %lld updated pods are available", num(st, "numberAvailable"),
			 num(st, "desiredNumberScheduled"));
	else
		return RK_K8S_ROLLOUT_DONE;
	return RK_K8S_ROLLOUT_WAIT;
}

static int
k8s_wait_restarted(struct rk_provider *p, const struct rk_call *call, const char *target_s,
		   int64_t deadline_ms, struct rk_error *err)
{
	struct k8s *k = (struct k8s *)p;
	int64_t t0 = rk_mono_ms();
	char what[400], why[300] = "";
	struct rk_k8s_target t;
	int r;

	if ((r = rk_k8s_parse_target(target_s, &t, err)) < 0)
		return r;
	snprintf(what, sizeof(what), "get %s %s/%s", t.kind, t.ns, t.name);
	for (;;) {
		json_t *obj = NULL;
		enum rk_k8s_rollout o;
		int64_t left;
		if ((r = get_json(k, call, what, t.path, 0, &obj, err)) < 0)
			return r;
		o = rk_k8s_judge(t.kind, obj, why, sizeof(why));
		json_decref(obj);
		if (o == RK_K8S_ROLLOUT_DONE)
			return 0;
		if (o == RK_K8S_ROLLOUT_FAILED)
			return rk_error_set(err, RK_ETRANSIENT, "kubernetes %s: rollout of %s %s/%s "
					    "failed: %s", p->name, t.kind, t.ns, t.name, why);
		left = deadline_ms - rk_mono_ms();
		if (left <= 0)
			return rk_error_set(err, RK_ETRANSIENT, "kubernetes %s: rollout of %s %s/%s "
					    "not complete by its deadline (%lld ms): %s", p->name,
					    t.kind, t.ns, t.name, (long long)(rk_mono_ms() - t0), why);
		if ((r = rk_call_sleep(call, left < k->poll_ms ? left : k->poll_ms)) < 0)
			return rk_error_set(err, r, "kubernetes %s: waiting for the rollout of %s "
					    "%s/%s stopped: %s", p->name, t.kind, t.ns, t.name,
					    r == RK_ECANCELED ? "rekey is shutting down"
							      : "the call's deadline passed");
	}
}

/* ---- doctor ---- */

/* A SelfSubjectAccessReview: may we do verb on the resource? */
static int
can_i(struct k8s *k, const char *verb, const char *group, const char *resource, const char *ns,
      const char *name, char *line, size_t n)
{
	struct rk_error e = { 0 };
	json_t *req = json_pack("{s:s, s:s, s:{s:{s:s, s:s, s:s, s:s, s:s}}}", "apiVersion",
				"authorization.k8s.io/v1", "kind", "SelfSubjectAccessReview",
				"spec", "resourceAttributes", "verb", verb, "group", group,
				"resource", resource, "namespace", ns, "name", name);
	char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_t *ans = NULL;
	int ok = 0;

	if (text != NULL &&
	    write_json(k, NULL, "selfsubjectaccessreview", "POST",
		       "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
		       "Content-Type: application/json", text, strlen(text), RK_HTTP_IDEMPOTENT, 0,
		       &ans, &e) == 0) {
		ok = json_is_true(json_object_get(json_object_get(ans, "status"), "allowed"));
		snprintf(line, n, "kubernetes %s: %s %s%s%s %s/%s: %s", k->base.name, verb,
			 resource, group[0] ? "." : "", group, ns, name,
			 ok ? "allowed" : "DENIED (see contrib/kubernetes/rbac.yaml)");
	} else {
		snprintf(line, n, "%s", e.msg[0] ? e.msg : "out of memory");
	}
	free(text);
	json_decref(req);
	json_decref(ans);
	return ok;
}

static int
k8s_doctor(struct rk_provider *p, const json_t *const *locs, size_t nlocs,
	   void (*report)(const char *line, int ok, void *arg), void *arg, struct rk_error *err)
{
	struct k8s *k = (struct k8s *)p;
	struct rk_error e = { 0 };
	json_t *ans = NULL;
	char line[1200];
	static const char ssr[] = "{\"apiVersion\":\"authentication.k8s.io/v1\","
				  "\"kind\":\"SelfSubjectReview\"}";

	(void)err;	/* every problem is a reported line */
	if (get_json(k, NULL, "get /version", "/version", 0, &ans, &e) < 0) {
		report(e.msg, 0, arg);
		return 0;
	}
	snprintf(line, sizeof(line), "kubernetes %s: server %s reachable (%s), settings from %s",
		 p->name, rk_k8s_conn_server(k->conn),
		 json_string_value(json_object_get(ans, "gitVersion"))
			 ? json_string_value(json_object_get(ans, "gitVersion")) : "version unknown",
		 rk_k8s_conn_source(k->conn));
	report(line, 1, arg);
	json_decref(ans);
	ans = NULL;
	if (write_json(k, NULL, "selfsubjectreview", "POST",
		       "/apis/authentication.k8s.io/v1/selfsubjectreviews",
		       "Content-Type: application/json", ssr, sizeof(ssr) - 1, RK_HTTP_IDEMPOTENT, 0,
		       &ans, &e) < 0) {
		report(e.msg, 0, arg);
		rk_error_clear(&e);
	} else {
		const char *u = json_string_value(json_object_get(
			json_object_get(json_object_get(ans, "status"), "userInfo"), "username"));
		snprintf(line, sizeof(line), "kubernetes %s: authenticated as %s", p->name,
			 u ? u : "(no username in the SelfSubjectReview)");
		report(line, u != NULL, arg);
	}
	json_decref(ans);
	for (size_t i = 0; i < nlocs; i++) {
		struct k8s_loc *loc = NULL;
		static const char *const verbs[] = { "get", "patch" };
		if (k8s_parse_locator(p, locs[i], (void **)&loc, &e) < 0) {
			report(e.msg, 0, arg);
			rk_error_clear(&e);
			continue;
		}
		for (size_t v = 0; v < RK_ARRAY_SIZE(verbs); v++) {
			int ok = can_i(k, verbs[v], "", "secrets", loc->ns, loc->secret, line,
				       sizeof(line));
			report(line, ok, arg);
		}
		k8s_free_locator(loc);
	}
	return 0;
}

static int
k8s_doctor_targets(struct rk_provider *p, const char *const *targets, size_t n,
		   void (*report)(const char *line, int ok, void *arg), void *arg,
		   struct rk_error *err)
{
	struct k8s *k = (struct k8s *)p;
	char line[1200];

	(void)err;
	for (size_t i = 0; i < n; i++) {
		struct rk_error e = { 0 };
		struct rk_k8s_target t;
		if (rk_k8s_parse_target(targets[i], &t, &e) < 0) {
			report(e.msg, 0, arg);
			continue;
		}
		report(line, can_i(k, "patch", "apps", t.plural, t.ns, t.name, line, sizeof(line)),
		       arg);
	}
	return 0;
}

static unsigned
k8s_concurrency(const struct rk_provider *p)
{
	const struct k8s *k = (const struct k8s *)p;

	return k->hcfg.concurrency > 0 ? (unsigned)k->hcfg.concurrency : 1;
}

static unsigned
k8s_restart_concurrency(const struct rk_provider *p)
{
	return ((const struct k8s *)p)->rollouts;
}

/* GET, PATCH, GET to verify; a restart is a GET and a PATCH. */
static void
k8s_plan_calls(const struct rk_provider *p, struct rk_plan_calls *out)
{
	const struct k8s *k = (const struct k8s *)p;

	out->reads = 2;
	out->writes = 1;
	out->restart_calls = 2;
	out->rps = k->hcfg.rps;
	out->concurrency = (unsigned)k->hcfg.concurrency;
}

/* The leader lease (RK_CAP_LEASE): the block at the end of this file. */
static int k8s_lease_acquire(struct rk_provider *p, const struct rk_call *call,
			     const struct rk_lease_spec *spec, char *holder, size_t n,
			     struct rk_error *err);
static int k8s_lease_renew(struct rk_provider *p, const struct rk_call *call,
			   const struct rk_lease_spec *spec, struct rk_error *err);
static int k8s_lease_release(struct rk_provider *p, const struct rk_call *call,
			     const struct rk_lease_spec *spec, struct rk_error *err);

const struct rk_provider_ops rk_provider_kubernetes = {
	.type = "kubernetes",
	.caps = RK_CAP_RESTART | RK_CAP_LEASE,
	.config_fields = k8s_config_fields,
	.locator_fields = k8s_locator_fields,
	.check_config = k8s_check_config,
	.open = k8s_open,
	.check_locator = k8s_check_locator,
	.parse_locator = k8s_parse_locator,
	.free_locator = k8s_free_locator,
	.read = k8s_read,
	.read_version = k8s_read_version,
	.find_staged = k8s_find_staged,
	.stage = k8s_stage,
	.promote = k8s_promote,
	.check_target = k8s_check_target,
	.restart = k8s_restart,
	.wait_restarted = k8s_wait_restarted,
	.doctor = k8s_doctor,
	.doctor_targets = k8s_doctor_targets,
	.close = k8s_close,
	.concurrency = k8s_concurrency,
	.restart_concurrency = k8s_restart_concurrency,
	.lease_acquire = k8s_lease_acquire,
	.lease_renew = k8s_lease_renew,
	.lease_release = k8s_lease_release,
	.plan_calls = k8s_plan_calls,
};

/* ---- the leader lease (coordination.k8s.io/v1): providers/k8s_lease.c over k8s_send ---- */

/*
 * rk_k8s_send_fn for k8s_lease.c: one request with this instance's
 * credentials, retries and limits. The writes may be resent: a PUT carries
 * the resourceVersion read and a resent POST meets AlreadyExists, and
 * k8s_lease.c judges the lease again after either.
 */
static int
lease_send(void *arg, const struct rk_call *call, const char *method, const char *path,
	   const char *body, long *status, json_t **obj, struct rk_error *err)
{
	struct k8s *k = arg;
	struct rk_http_resp resp = { 0 };
	json_t *j;
	int r;

	*obj = NULL;
	r = k8s_send(k, call, method, path, body ? "Content-Type: application/json" : NULL, body,
		     body ? strlen(body) : 0, RK_HTTP_IDEMPOTENT, 0, &resp, err);
	if (r == 0) {
		*status = resp.status;
		j = json_loadb(resp.body, resp.len, 0, NULL);
		if (json_is_object(j))
			*obj = j;
		else
			json_decref(j);
	}
	rk_http_resp_free(&resp);
	return r;
}

/* The lease state, made on first use (acquire runs before the renewal thread starts). */
static int
lease_state(struct k8s *k, struct rk_error *err)
{
	return k->lease != NULL ? 0 : rk_k8s_lease_new(&k->lease, NULL, err);
}

static int
k8s_lease_acquire(struct rk_provider *p, const struct rk_call *call,
		  const struct rk_lease_spec *spec, char *holder, size_t n, struct rk_error *err)
{
	struct k8s *k = (struct k8s *)p;
	int r;

	if ((r = lease_state(k, err)) < 0)
		return r;
	return rk_k8s_lease_acquire(k->lease, lease_send, k, call, spec,
				    rk_k8s_conn_namespace(k->conn), holder, n, err);
}

static int
k8s_lease_renew(struct rk_provider *p, const struct rk_call *call,
		const struct rk_lease_spec *spec, struct rk_error *err)
{
	struct k8s *k = (struct k8s *)p;
	int r;

	if ((r = lease_state(k, err)) < 0)
		return r;
	return rk_k8s_lease_renew(k->lease, lease_send, k, call, spec,
				  rk_k8s_conn_namespace(k->conn), err);
}

static int
k8s_lease_release(struct rk_provider *p, const struct rk_call *call,
		  const struct rk_lease_spec *spec, struct rk_error *err)
{
	struct k8s *k = (struct k8s *)p;
	int r;

	if ((r = lease_state(k, err)) < 0)
		return r;
	return rk_k8s_lease_release(k->lease, lease_send, k, call, spec,
				    rk_k8s_conn_namespace(k->conn), err);
}
/* ---- end of the leader lease ---- */
