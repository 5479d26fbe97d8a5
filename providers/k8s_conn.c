/*
 * The Kubernetes connection (k8s_conn.h): turns the provider's settings and
 * the environment into a server URL, a default namespace, TLS material for
 * the HTTP client and a bearer token, the way client-go's InClusterConfig
 * and kubeconfig loader do for the fields rekey supports.
 *
 * Data path: rk_k8s_conn_new runs once when the provider opens; after that
 * the provider asks rk_k8s_conn_auth_header before each request, which is
 * the only call that touches files again (a stat of the token file, a read
 * when it changed).
 *
 * Invariants:
 * - A kubeconfig is parsed by the document loader (file:line:column in
 *   every message about it); its text and the token and key strings in the
 *   parsed tree are wiped before they are freed. libyaml's own event
 *   buffers are not reachable from here and are not wiped.
 * - Secret bytes (token, inline client key) are held as struct rk_secret
 *   only; no message or log line carries them.
 * - A setting rekey does not implement (exec, impersonation, a proxy...) is
 *   refused, never ignored: ignoring it would talk to another server or as
 *   another identity than the kubeconfig says.
 */
#include <assert.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>

#include "rekey/doc.h"
#include "rekey/log.h"
#include "rekey/provider_kit.h"
#include "rekey/secret.h"
#include "rekey/util.h"
#include "k8s_conn.h"

extern char **environ;

#define NS_MAX 63		/* a namespace is a DNS-1123 label */
#define PEM_MAX (1u << 20)	/* a CA bundle or certificate file */

struct rk_k8s_conn {
	char *server;
	char *namespace_;
	char *source;			/* "in-cluster" or the kubeconfig's path */
	char *ca_pem, *cert_pem;	/* PEM text, public */
	char *cert_file, *key_file;	/* client certificate files, read by libcurl */
	struct rk_secret *key_pem;	/* inline client key */
	int insecure;
	pthread_mutex_t mu;		/* token, tf */
	int have_mu;
	struct rk_secret *token;	/* NULL: the client certificate authenticates */
	char *token_path;		/* NULL: the token was inline */
	struct rk_cred_file tf;		/* tf.path borrows token_path */
};

/* ---- config ---------------------------------------------------------------- */

static const struct {
	const char *key;
	enum rk_type type;
	size_t off;
} cfg_keys[] = {
#define K8S_CFG_KEY(key, type, member) { key, type, offsetof(struct rk_k8s_conn_cfg, member) },
	RK_K8S_CONN_KEYS(K8S_CFG_KEY)
#undef K8S_CFG_KEY
};

int
rk_k8s_conn_cfg_parse(struct rk_k8s_conn_cfg *c, const struct rk_doc *doc, const json_t *obj,
		      struct rk_error *err)
{
	struct rk_k8s_conn_cfg t = { .src = obj };

	for (size_t i = 0; i < RK_ARRAY_SIZE(cfg_keys); i++) {
		const json_t *v = json_object_get(obj, cfg_keys[i].key);
		char *field = (char *)&t + cfg_keys[i].off;
		if (v == NULL)
			continue;
		if (cfg_keys[i].type == RK_T_BOOL) {
			int b = json_is_true(v);
			if (!json_is_boolean(v))
				return rk_doc_error_key(err, doc, obj, cfg_keys[i].key, RK_EINVAL,
							"'%s' must be true or false",
							cfg_keys[i].key);
			memcpy(field, &b, sizeof(b));
		} else {
			const char *s = json_string_value(v);
			if (s == NULL || s[0] == '\0' || strlen(s) != json_string_length(v))
				return rk_doc_error_key(err, doc, obj, cfg_keys[i].key, RK_EINVAL,
							"'%s' must be a non-empty string",
							cfg_keys[i].key);
			memcpy(field, &s, sizeof(s));
		}
	}
	if (t.in_cluster && (t.kubeconfig || t.context))
		return rk_doc_error_key(err, doc, obj, t.kubeconfig ? "kubeconfig" : "context",
					RK_EINVAL, "in_cluster: true uses the pod's service "
					"account; remove '%s' or in_cluster",
					t.kubeconfig ? "kubeconfig" : "context");
	*c = t;
	return 0;
}

/* An error about a key of the provider's block, at its position when known. */
static int RK_PRINTF(5, 6)
cfg_error(struct rk_error *err, const struct rk_doc *doc, const struct rk_k8s_conn_cfg *cfg,
	  const char *key, const char *fmt, ...)
{
	char msg[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (doc != NULL && cfg->src != NULL)
		return rk_doc_error_key(err, doc, cfg->src, key, RK_EINVAL, "%s", msg);
	return rk_error_set(err, RK_EINVAL, "%s", msg);
}

/* ---- small helpers ------------------------------------------------------ */

static const char *
env_get(const struct rk_k8s_conn_cfg *cfg, const char *name)
{
	const char *const *e = cfg->env ? cfg->env : (const char *const *)environ;
	size_t n = strlen(name);

	for (; e != NULL && *e != NULL; e++)
		if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
			return *e + n + 1;
	return NULL;
}

static int
nomem(struct rk_error *err)
{
	return rk_error_set(err, RK_ENOMEM, "out of memory");
}

/* A DNS-1123 label: what the API server accepts as a namespace. */
static int
namespace_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > NS_MAX || s[0] == '-' || s[n - 1] == '-')
		return 0;
	return strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}

/* Visible ASCII only: a token goes into a header line as it is. */
static int
token_ok(const struct rk_secret *t)
{
	const unsigned char *p = rk_secret_cdata(t);

	for (size_t i = 0; i < rk_secret_len(t); i++)
		if (p[i] <= 0x20 || p[i] >= 0x7f)
			return 0;
	return rk_secret_len(t) > 0;
}

/* Wipes a string of a tree that is about to be freed (it held a credential). */
static void
wipe_json_str(const json_t *v)
{
	if (json_is_string(v))
		sodium_memzero((char *)(uintptr_t)json_string_value(v), json_string_length(v));
}

/* How many c end s. */
static size_t
strspn_rev(const char *s, char ch)
{
	size_t n = strlen(s), k = 0;

	while (k < n && s[n - 1 - k] == ch)
		k++;
	return k;
}

/* path as kubectl resolves a kubeconfig's file reference: relative to dir. */
static char *
resolve(const char *dir, const char *path)
{
	return path[0] == '/' ? strdup(path) : rk_path_join(dir, path);
}

/* ---- in cluster ---------------------------------------------------------- */

static int
read_pem_file(const char *path, char **out, struct rk_error *err)
{
	size_t len;
	int r;

	if ((r = rk_read_file(path, PEM_MAX, out, &len, err)) < 0)
		return r;
	if (strstr(*out, "-----BEGIN ") == NULL) {
		free(*out);
		*out = NULL;
		return rk_error_set(err, RK_EINVAL, "%s does not hold a PEM certificate", path);
	}
	return 0;
}

static int
token_file_open(struct rk_k8s_conn *c, char *path, struct rk_error *err)
{
	int r;

	c->token_path = path;
	/* Not RK_CRED_PRIVATE: kubelet projects service account tokens 0644. */
	rk_cred_file_init(&c->tf, c->token_path, 0, 0);
	if ((r = rk_cred_file_read(&c->tf, 1, &c->token, err)) < 0)
		return r;
	if (!token_ok(c->token))
		return rk_error_set(err, RK_EINVAL, "the token in %s holds a character an HTTP "
				    "header cannot carry (a space or a control character)",
				    c->token_path);
	return 0;
}

static int
open_in_cluster(struct rk_k8s_conn *c, const struct rk_k8s_conn_cfg *cfg, struct rk_error *err)
{
	const char *host = env_get(cfg, "KUBERNETES_SERVICE_HOST");
	const char *port = env_get(cfg, "KUBERNETES_SERVICE_PORT");
	const char *dir = cfg->sa_dir ? cfg->sa_dir : RK_K8S_SA_DIR;
	char *path = NULL, *ns = NULL;
	struct rk_error e = { 0 };
	size_t n;
	long long pn;
	int r, v6;

	if (host == NULL || host[0] == '\0' || port == NULL || port[0] == '\0')
		return rk_error_set(err, RK_EINVAL, "in_cluster: true, but KUBERNETES_SERVICE_HOST "
				    "and KUBERNETES_SERVICE_PORT are not both set (not running in a "
				    "pod?); use a kubeconfig instead");
	if (strpbrk(host, "/?#@[] \t\r\n") != NULL || rk_parse_int(port, 1, 65535, &pn) < 0)
		return rk_error_set(err, RK_EINVAL, "KUBERNETES_SERVICE_HOST/_PORT do not form an "
				    "address ('%.100s', '%.20s')", host, port);
	/* net.JoinHostPort: an IPv6 literal gets brackets. */
	v6 = strchr(host, ':') != NULL;
	n = strlen(host) + 32;
	if ((c->server = malloc(n)) == NULL || (c->source = strdup("in-cluster")) == NULL)
		return nomem(err);
	snprintf(c->server, n, "https://%s%s%s:%lld", v6 ? "[" : "", host, v6 ? "]" : "", pn);

	if ((path = rk_path_join(dir, "token")) == NULL)
		return nomem(err);
	if ((r = token_file_open(c, path, err)) < 0)
		return r;
	/*
	 * client-go logs an unreadable ca.crt and goes on with the system's
	 * roots; rekey refuses: a pod's API server is never publicly signed.
	 */
	if ((path = rk_path_join(dir, "ca.crt")) == NULL)
		return nomem(err);
	r = read_pem_file(path, &c->ca_pem, err);
	free(path);
	if (r < 0)
		return r;

	if ((path = rk_path_join(dir, "namespace")) == NULL)
		return nomem(err);
	r = rk_read_file(path, NS_MAX + 2, &ns, &n, &e);
	if (r == 0) {
		while (n > 0 && (ns[n - 1] == '\n' || ns[n - 1] == '\r' || ns[n - 1] == ' '))
			ns[--n] = '\0';
		if (!namespace_ok(ns)) {
			r = rk_error_set(err, RK_EINVAL, "%s does not hold a namespace name", path);
		} else {
			c->namespace_ = ns;
			ns = NULL;
		}
	} else if (r == RK_ENOTFOUND) {
		r = 0;	/* no namespace file: "default", as client-go */
	} else {
		r = rk_error_set(err, r, "%s", e.msg);
	}
	free(ns);
	free(path);
	return r;
}

/* ---- kubeconfig -------------------------------------------------------- */

/* The kubeconfig being read: its tree, directory and name for messages. */
struct kc {
	struct rk_doc *doc;
	const json_t *root;
	char *dir;
};

/*
 * Which kubeconfig: rekey.yaml's, else $KUBECONFIG, else ~/.kube/config.
 * Of a KUBECONFIG list only the first file is read: kubectl merges them,
 * rekey asks for one file that holds the whole context (a missing one says
 * so). *from names the source for messages.
 */
static int
kubeconfig_path(const struct rk_k8s_conn_cfg *cfg, const struct rk_doc *doc, char **out,
		const char **from, struct rk_error *err)
{
	const char *kc = env_get(cfg, "KUBECONFIG"), *home;
	struct stat st;

	if (cfg->kubeconfig != NULL) {
		*from = "rekey.yaml";
		if (stat(cfg->kubeconfig, &st) < 0)
			return cfg_error(err, doc, cfg, "kubeconfig", "kubeconfig %s not found",
					 cfg->kubeconfig);
		return (*out = strdup(cfg->kubeconfig)) ? 0 : nomem(err);
	}
	if (kc != NULL && kc[0] != '\0') {
		*from = "KUBECONFIG";
		*out = strndup(kc, strcspn(kc, ":"));
		if (*out == NULL)
			return nomem(err);
		if ((*out)[0] == '\0' || stat(*out, &st) < 0)
			return rk_error_set(err, RK_ENOTFOUND, "kubeconfig '%s' (the first file of "
					    "KUBECONFIG, the only one rekey reads) not found", *out);
		return 0;
	}
	*from = "~/.kube/config";
	home = cfg->home ? cfg->home : env_get(cfg, "HOME");
	if (home == NULL || home[0] == '\0')
		return rk_error_set(err, RK_ENOTFOUND, "no kubeconfig: set 'kubeconfig' in rekey.yaml "
				    "or KUBECONFIG (HOME is not set either)");
	if ((*out = rk_path_join(home, ".kube/config")) == NULL)
		return nomem(err);
	if (stat(*out, &st) < 0)
		return rk_error_set(err, RK_ENOTFOUND, "no kubeconfig: %s not found and neither "
				    "'kubeconfig' in rekey.yaml nor KUBECONFIG is set%s", *out,
				    env_get(cfg, "KUBERNETES_SERVICE_HOST")
					    ? " (running in a pod: set in_cluster: true)" : "");
	return 0;
}

static int
kc_load(struct kc *k, const char *path, struct rk_error *err)
{
	char *text = NULL;
	const char *slash;
	size_t len = 0;
	int r;

	if ((r = rk_read_file(path, RK_MAX_DOC_BYTES, &text, &len, err)) < 0)
		return r;
	r = rk_doc_load_string(&k->doc, path, text, len, err);
	rk_wipe_free(text, len);	/* it may hold a token or a key */
	if (r < 0)
		return r;
	k->root = rk_doc_root(k->doc);
	slash = strrchr(path, '/');
	if (slash == NULL)
		k->dir = strdup(".");
	else	/* "/config" -> "/" */
		k->dir = strndup(path, slash == path ? 1 : (size_t)(slash - path));
	if (k->dir == NULL)
		return nomem(err);
	if (!json_is_object(k->root))
		return rk_doc_error(err, k->doc, k->root, RK_EINVAL, "not a kubeconfig: expected a "
				    "mapping with clusters, contexts and users");
	return 0;
}

static void
kc_free(struct kc *k)
{
	static const char *const secret_keys[] = { "token", "client-key-data" };
	const json_t *users = k->root ? json_object_get(k->root, "users") : NULL;
	size_t i;
	const json_t *u;

	json_array_foreach(users, i, u) {
		const json_t *user = json_object_get(u, "user");
		for (size_t j = 0; j < RK_ARRAY_SIZE(secret_keys); j++)
			wipe_json_str(json_object_get(user, secret_keys[j]));
	}
	rk_doc_free(k->doc);
	free(k->dir);
}

/*
 * The body of the entry of list `what`s ("clusters") named name: the
 * mapping under its key `inner` ("cluster"). `ref` and `ref_key` locate
 * where the name was asked for.
 */
static int
kc_find(const struct kc *k, const char *what, const char *inner, const char *name,
	const json_t *ref, const char *ref_key, const json_t **out, struct rk_error *err)
{
	const json_t *list = json_object_get(k->root, what), *e;
	size_t i;

	if (!json_is_array(list))
		return rk_doc_error_key(err, k->doc, k->root, what, RK_EINVAL,
					"not a kubeconfig: no '%s' list", what);
	json_array_foreach(list, i, e) {
		const char *n = json_string_value(json_object_get(e, "name"));
		if (n == NULL || strcmp(n, name) != 0)
			continue;
		*out = json_object_get(e, inner);
		if (!json_is_object(*out))
			return rk_doc_error(err, k->doc, e, RK_EINVAL, "%s entry '%s' has no '%s' "
					    "mapping", what, name, inner);
		return 0;
	}
	if (ref == NULL)
		return rk_doc_error_key(err, k->doc, k->root, what, RK_EINVAL,
					"no %s named '%s' (rekey.yaml 'context')", inner, name);
	return rk_doc_error_key(err, k->doc, ref, ref_key, RK_EINVAL,
				"'%s' names %s '%s', which is not in '%s'", ref_key, inner, name,
				what);
}

/* A string field of m: NULL when absent; RK_EINVAL when not a non-empty string. */
static int
kc_str(const struct kc *k, const json_t *m, const char *key, const char **out,
       struct rk_error *err)
{
	const json_t *v = json_object_get(m, key);

	*out = NULL;
	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v) || json_string_length(v) == 0 ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return rk_doc_error_key(err, k->doc, m, key, RK_EINVAL,
					"'%s' must be a non-empty string", key);
	*out = json_string_value(v);
	return 0;
}

/*
 * Decodes m[key] (base64 of a PEM block) into sodium memory; what the
 * message calls it is the key's name. Whitespace (a wrapped value) is
 * skipped.
 */
static int
kc_b64(const struct kc *k, const json_t *m, const char *key, struct rk_secret **out,
       struct rk_error *err)
{
	const json_t *v = json_object_get(m, key);
	const char *b64 = json_string_value(v), *end = NULL;
	size_t blen = json_string_length(v), len = 0;
	struct rk_secret *s = NULL;
	int r;

	if ((r = rk_secret_new(&s, blen / 4 * 3 + 3, err)) < 0)
		return r;
	if (sodium_base642bin(rk_secret_data(s), blen / 4 * 3 + 3, b64, blen, " \t\r\n", &len,
			      &end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    end != b64 + blen || len == 0) {
		rk_secret_free(s);
		return rk_doc_error_key(err, k->doc, m, key, RK_EINVAL,
					"'%s' is not valid base64 (it holds the PEM file, "
					"base64-encoded: base64 -w0 < file)", key);
	}
	rk_secret_truncate(s, len);
	if (strstr(rk_secret_str(s), "-----BEGIN ") == NULL) {
		rk_secret_free(s);
		return rk_doc_error_key(err, k->doc, m, key, RK_EINVAL,
					"'%s' does not decode to a PEM block", key);
	}
	*out = s;
	return 0;
}

/* The same for public material, as a plain string. */
static int
kc_b64_public(const struct kc *k, const json_t *m, const char *key, char **out,
	      struct rk_error *err)
{
	struct rk_secret *s = NULL;
	int r;

	if ((r = kc_b64(k, m, key, &s, err)) < 0)
		return r;
	*out = strdup(rk_secret_str(s));
	rk_secret_free(s);
	return *out ? 0 : nomem(err);
}

/*
 * One credential given as a file (key) or inline (key-data), not both.
 * *file is the path as written (NULL when absent); *inline_ says key-data is set.
 */
static int
kc_either(const struct kc *k, const json_t *m, const char *key, const char **file,
	  int *inline_, struct rk_error *err)
{
	char data_key[64];
	int r;

	snprintf(data_key, sizeof(data_key), "%s-data", key);
	if ((r = kc_str(k, m, key, file, err)) < 0)
		return r;
	*inline_ = json_object_get(m, data_key) != NULL;
	if (*inline_ && !json_is_string(json_object_get(m, data_key)))
		return rk_doc_error_key(err, k->doc, m, data_key, RK_EINVAL,
					"'%s' must be a base64 string", data_key);
	if (*file && *inline_)
		return rk_doc_error_key(err, k->doc, m, data_key, RK_EINVAL,
					"both '%s' and '%s' are set; keep one", key, data_key);
	return 0;
}

/*
 * A file a kubeconfig names could not be used: the message (e, which names
 * the path) goes at the kubeconfig's line. Missing is the user's input
 * there (RK_EINVAL), not a lookup that found nothing.
 */
static int
kc_file_error(const struct kc *k, const json_t *m, const char *key, int code,
	      const struct rk_error *e, struct rk_error *err)
{
	return rk_doc_error_key(err, k->doc, m, key, code == RK_ENOTFOUND ? RK_EINVAL : code,
				"'%s': %s", key, e->msg);
}

/* Settings rekey does not implement; each would change whom rekey talks to or as whom. */
static const struct {
	const char *key;
	const char *why;
} unsupported_user[] = {
	{ "exec", "exec credential plugins are not supported; use a token or client "
		  "certificate" },
	{ "auth-provider", "auth-provider plugins are not supported; use a token or client "
			   "certificate" },
	{ "username", "basic authentication is not supported; use a token or client "
		      "certificate" },
	{ "password", "basic authentication is not supported; use a token or client "
		      "certificate" },
	{ "as", "impersonation is not supported; give the identity's own credentials" },
	{ "as-groups", "impersonation is not supported; give the identity's own credentials" },
	{ "as-uid", "impersonation is not supported; give the identity's own credentials" },
	{ "as-user-extra", "impersonation is not supported; give the identity's own "
			   "credentials" },
}, unsupported_cluster[] = {
	{ "tls-server-name", "tls-server-name is not supported; use a server address the "
			     "certificate names" },
	{ "proxy-url", "proxy-url is not supported; reach the server directly" },
};

static int
kc_cluster(struct rk_k8s_conn *c, const struct kc *k, const json_t *cl,
	   const struct rk_k8s_conn_cfg *cfg, struct rk_error *err)
{
	const json_t *insecure = json_object_get(cl, "insecure-skip-tls-verify");
	const char *server, *ca_file;
	struct rk_error e = { 0 };
	int ca_inline, r;
	char *path;

	for (size_t i = 0; i < RK_ARRAY_SIZE(unsupported_cluster); i++)
		if (json_object_get(cl, unsupported_cluster[i].key) != NULL)
			return rk_doc_error_key(err, k->doc, cl, unsupported_cluster[i].key,
						RK_EINVAL, "%s", unsupported_cluster[i].why);
	if ((r = kc_str(k, cl, "server", &server, err)) < 0)
		return r;
	if (server == NULL)
		return rk_doc_error(err, k->doc, cl, RK_EINVAL, "the cluster has no 'server'");
	if (strncmp(server, "https://", 8) != 0)
		return rk_doc_error_key(err, k->doc, cl, "server", RK_EINVAL,
					"'server' must be an https:// address (a token must not "
					"travel in clear)");
	/* Paths are appended to it: no trailing slash, as rk_k8s_conn_server promises. */
	if ((c->server = strndup(server, strlen(server) - strspn_rev(server, '/'))) == NULL)
		return nomem(err);
	if ((r = kc_either(k, cl, "certificate-authority", &ca_file, &ca_inline, err)) < 0)
		return r;
	if (ca_inline && (r = kc_b64_public(k, cl, "certificate-authority-data", &c->ca_pem,
					    err)) < 0)
		return r;
	if (ca_file) {
		/* Read now: its absence is found here, and it becomes the only trust anchor. */
		if ((path = resolve(k->dir, ca_file)) == NULL)
			return nomem(err);
		r = read_pem_file(path, &c->ca_pem, &e);
		free(path);
		if (r < 0)
			return kc_file_error(k, cl, "certificate-authority", r, &e, err);
	}
	if (insecure != NULL && !json_is_boolean(insecure))
		return rk_doc_error_key(err, k->doc, cl, "insecure-skip-tls-verify", RK_EINVAL,
					"'insecure-skip-tls-verify' must be true or false");
	if (json_is_true(insecure)) {
		if (!cfg->allow_insecure_tls)
			return rk_doc_error_key(err, k->doc, cl, "insecure-skip-tls-verify",
						RK_EINVAL,
						"insecure-skip-tls-verify: true would send "
						"credentials to a server nobody verified; give the "
						"cluster's certificate-authority-data instead, or set "
						"allow_insecure_tls: true on the provider in "
						"rekey.yaml (test clusters only)");
		c->insecure = 1;
	}
	return 0;
}

static int
kc_user(struct rk_k8s_conn *c, const struct kc *k, const json_t *u, struct rk_error *err)
{
	const char *token, *token_file, *cert_file, *key_file;
	struct rk_error e = { 0 };
	int cert_inline, key_inline, r;
	const json_t *tv = json_object_get(u, "token");

	for (size_t i = 0; i < RK_ARRAY_SIZE(unsupported_user); i++)
		if (json_object_get(u, unsupported_user[i].key) != NULL)
			return rk_doc_error_key(err, k->doc, u, unsupported_user[i].key,
						RK_EINVAL, "%s", unsupported_user[i].why);
	/* Not kc_str: its message is fine, but a token is checked without echoing it. */
	if (tv != NULL && (!json_is_string(tv) || json_string_length(tv) == 0))
		return rk_doc_error_key(err, k->doc, u, "token", RK_EINVAL,
					"'token' must be a non-empty string");
	token = json_string_value(tv);
	if ((r = kc_str(k, u, "tokenFile", &token_file, err)) < 0)
		return r;
	if (token && token_file)
		return rk_doc_error_key(err, k->doc, u, "tokenFile", RK_EINVAL,
					"both 'token' and 'tokenFile' are set; keep one");
	if ((r = kc_either(k, u, "client-certificate", &cert_file, &cert_inline, err)) < 0 ||
	    (r = kc_either(k, u, "client-key", &key_file, &key_inline, err)) < 0)
		return r;
	if ((cert_file || cert_inline) != (key_file || key_inline))
		return rk_doc_error(err, k->doc, u, RK_EINVAL, "a client certificate needs its "
				    "key and a key its certificate: set client-certificate[-data] "
				    "and client-key[-data] together");
	if (!token && !token_file && !cert_file && !cert_inline)
		return rk_doc_error(err, k->doc, u, RK_EINVAL, "the user has no credentials: set "
				    "token, tokenFile, or client-certificate-data with "
				    "client-key-data");
	if (token) {
		if ((r = rk_secret_from(&c->token, token, json_string_length(tv), err)) < 0)
			return r;
		if (!token_ok(c->token))
			return rk_doc_error_key(err, k->doc, u, "token", RK_EINVAL,
						"'token' holds a character an HTTP header cannot "
						"carry (a space or a control character)");
	}
	if (token_file) {
		char *path = resolve(k->dir, token_file);
		if (path == NULL)
			return nomem(err);
		if ((r = token_file_open(c, path, &e)) < 0)
			return kc_file_error(k, u, "tokenFile", r, &e, err);
	}
	if (cert_inline && (r = kc_b64_public(k, u, "client-certificate-data", &c->cert_pem,
					      err)) < 0)
		return r;
	if (key_inline && (r = kc_b64(k, u, "client-key-data", &c->key_pem, err)) < 0)
		return r;
	/*
	 * Files stay files: libcurl reads them at each new connection, so a
	 * certificate renewed on disk is picked up without rekey holding the key.
	 */
	for (int i = 0; i < 2; i++) {
		const char *f = i == 0 ? cert_file : key_file;
		char **dst = i == 0 ? &c->cert_file : &c->key_file;
		if (f == NULL)
			continue;
		if ((*dst = resolve(k->dir, f)) == NULL)
			return nomem(err);
		if (access(*dst, R_OK) != 0)
			return rk_doc_error_key(err, k->doc, u, i == 0 ? "client-certificate"
								    : "client-key",
						RK_EINVAL, "cannot read %s", *dst);
	}
	return 0;
}

static int
open_kubeconfig(struct rk_k8s_conn *c, const struct rk_k8s_conn_cfg *cfg,
		const struct rk_doc *cfg_doc, struct rk_error *err)
{
	struct kc k = { 0 };
	const json_t *ctx, *cl, *u;
	const char *from, *name, *cl_name, *u_name, *ns;
	int r;

	if ((r = kubeconfig_path(cfg, cfg_doc, &c->source, &from, err)) < 0)
		goto out;
	if ((r = kc_load(&k, c->source, err)) < 0)
		goto out;
	for (size_t i = 0; i < 3; i++) {
		static const char *const lists[] = { "clusters", "contexts", "users" };
		if (!json_is_array(json_object_get(k.root, lists[i]))) {
			r = rk_doc_error_key(err, k.doc, k.root, lists[i], RK_EINVAL,
					     "not a kubeconfig: no '%s' list (from %s)", lists[i],
					     from);
			goto out;
		}
	}
	if (cfg->context != NULL) {
		name = cfg->context;
		r = kc_find(&k, "contexts", "context", name, NULL, NULL, &ctx, err);
	} else {
		if ((r = kc_str(&k, k.root, "current-context", &name, err)) < 0)
			goto out;
		if (name == NULL) {
			r = rk_doc_error(err, k.doc, k.root, RK_EINVAL, "no current-context: set "
					 "one (kubectl config use-context) or 'context' in "
					 "rekey.yaml");
			goto out;
		}
		r = kc_find(&k, "contexts", "context", name, k.root, "current-context", &ctx, err);
	}
	if (r < 0)
		goto out;
	if ((r = kc_str(&k, ctx, "cluster", &cl_name, err)) < 0 ||
	    (r = kc_str(&k, ctx, "user", &u_name, err)) < 0 ||
	    (r = kc_str(&k, ctx, "namespace", &ns, err)) < 0)
		goto out;
	if (cl_name == NULL || u_name == NULL) {
		r = rk_doc_error(err, k.doc, ctx, RK_EINVAL, "context '%s' needs a cluster and a "
				 "user", name);
		goto out;
	}
	if (ns != NULL && !namespace_ok(ns)) {
		r = rk_doc_error_key(err, k.doc, ctx, "namespace", RK_EINVAL,
				     "'%s' is not a namespace name", ns);
		goto out;
	}
	if ((r = kc_find(&k, "clusters", "cluster", cl_name, ctx, "cluster", &cl, err)) < 0 ||
	    (r = kc_find(&k, "users", "user", u_name, ctx, "user", &u, err)) < 0 ||
	    (r = kc_cluster(c, &k, cl, cfg, err)) < 0 || (r = kc_user(c, &k, u, err)) < 0)
		goto out;
	if (ns != NULL && (c->namespace_ = strdup(ns)) == NULL) {
		r = nomem(err);
		goto out;
	}
	r = 0;
 out:
	kc_free(&k);
	return r;
}

/* ---- the connection --------------------------------------------------------- */

int
rk_k8s_conn_new(struct rk_k8s_conn **out, const struct rk_k8s_conn_cfg *cfg,
		const struct rk_doc *doc, struct rk_error *err)
{
	struct rk_k8s_conn *c;
	int r;

	if (cfg->namespace_ != NULL && !namespace_ok(cfg->namespace_))
		return cfg_error(err, doc, cfg, "namespace", "'%s' is not a namespace name "
				 "(lower-case letters, digits and '-', at most 63)",
				 cfg->namespace_);
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return nomem(err);
	pthread_mutex_init(&c->mu, NULL);
	c->have_mu = 1;
	if (cfg->in_cluster)
		r = open_in_cluster(c, cfg, err);
	else
		r = open_kubeconfig(c, cfg, doc, err);
	if (r < 0)
		goto out;
	if (cfg->namespace_ != NULL) {
		free(c->namespace_);
		c->namespace_ = NULL;
		if ((c->namespace_ = strdup(cfg->namespace_)) == NULL) {
			r = nomem(err);
			goto out;
		}
	}
	if (c->namespace_ == NULL && (c->namespace_ = strdup("default")) == NULL) {
		r = nomem(err);
		goto out;
	}
	if (c->insecure)
		rk_log(RK_LOG_WARN, "k8s.insecure_tls", "kubeconfig", c->source, "server",
		       c->server, "msg", "insecure-skip-tls-verify: the API server's certificate "
		       "is not verified (allowed by allow_insecure_tls)", NULL);
	*out = c;
	c = NULL;
	r = 0;
 out:
	rk_k8s_conn_free(c);
	return r;
}

void
rk_k8s_conn_free(struct rk_k8s_conn *c)
{
	if (c == NULL)
		return;
	free(c->server);
	free(c->namespace_);
	free(c->source);
	free(c->ca_pem);
	free(c->cert_pem);
	free(c->cert_file);
	free(c->key_file);
	rk_secret_free(c->key_pem);
	rk_secret_free(c->token);
	free(c->token_path);
	if (c->have_mu)
		pthread_mutex_destroy(&c->mu);
	free(c);
}

const char *
rk_k8s_conn_server(const struct rk_k8s_conn *c)
{
	return c->server;
}

const char *
rk_k8s_conn_namespace(const struct rk_k8s_conn *c)
{
	return c->namespace_;
}

const char *
rk_k8s_conn_source(const struct rk_k8s_conn *c)
{
	return c->source;
}

static void
tls_clear(struct rk_http_cfg *h)
{
	char **strs[] = { &h->ca_file, &h->ca_path, &h->client_cert_file, &h->client_key_file,
			  &h->ca_pem, &h->client_cert_pem };

	for (size_t i = 0; i < RK_ARRAY_SIZE(strs); i++) {
		free(*strs[i]);
		*strs[i] = NULL;
	}
	rk_secret_free(h->client_key_pem);
	h->client_key_pem = NULL;
	h->insecure_tls = 0;
}

static int
dup_opt(char **dst, const char *src)
{
	return src == NULL || (*dst = strdup(src)) != NULL ? 0 : -1;
}

int
rk_k8s_conn_tls(const struct rk_k8s_conn *c, struct rk_http_cfg *h, struct rk_error *err)
{
	tls_clear(h);
	if (dup_opt(&h->ca_pem, c->ca_pem) < 0 || dup_opt(&h->client_cert_pem, c->cert_pem) < 0 ||
	    dup_opt(&h->client_cert_file, c->cert_file) < 0 ||
	    dup_opt(&h->client_key_file, c->key_file) < 0 ||
	    (c->key_pem != NULL && rk_secret_from(&h->client_key_pem, rk_secret_cdata(c->key_pem),
						  rk_secret_len(c->key_pem), NULL) < 0)) {
		tls_clear(h);
		return nomem(err);
	}
	h->insecure_tls = c->insecure;
	return 0;
}

int
rk_k8s_conn_auth_header(struct rk_k8s_conn *c, char *buf, size_t n, struct rk_error *err)
{
	static const char prefix[] = "Authorization: Bearer ";
	int r = 0;

	assert(n > 0);
	buf[0] = '\0';
	pthread_mutex_lock(&c->mu);
	if (c->token_path != NULL && (r = rk_cred_file_read(&c->tf, 0, &c->token, err)) < 0)
		goto out;
	r = 0;
	if (c->token == NULL)
		goto out;	/* the client certificate authenticates */
	if (!token_ok(c->token)) {
		r = rk_error_set(err, RK_EINVAL, "the token in %s holds a character an HTTP "
				 "header cannot carry", c->token_path ? c->token_path : c->source);
		goto out;
	}
	if (sizeof(prefix) + rk_secret_len(c->token) > n) {
		r = rk_error_set(err, RK_EINVAL, "the token (%zu bytes) does not fit the header "
				 "buffer", rk_secret_len(c->token));
		goto out;
	}
	memcpy(buf, prefix, sizeof(prefix) - 1);
	memcpy(buf + sizeof(prefix) - 1, rk_secret_cdata(c->token), rk_secret_len(c->token));
	buf[sizeof(prefix) - 1 + rk_secret_len(c->token)] = '\0';
 out:
	pthread_mutex_unlock(&c->mu);
	return r;
}

int
rk_k8s_conn_reload_token(struct rk_k8s_conn *c, struct rk_error *err)
{
	struct rk_secret *fresh = NULL;
	int r;

	if (c->token_path == NULL)
		return 0;
	pthread_mutex_lock(&c->mu);
	if ((r = rk_cred_file_read(&c->tf, 1, &fresh, err)) < 0)
		goto out;
	r = c->token == NULL || !rk_secret_equal(fresh, c->token);
	rk_secret_free(c->token);
	c->token = fresh;
 out:
	pthread_mutex_unlock(&c->mu);
	return r;
}
