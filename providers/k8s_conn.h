/*
 * The Kubernetes connection: where the API server is and how rekey proves
 * who it is, from the pod's service account (in-cluster) or a kubeconfig.
 * The kubernetes provider builds its struct rk_http and its requests on
 * this; nothing here sends a request.
 *
 * Ownership: rk_k8s_conn_new hands back a connection the caller frees with
 * rk_k8s_conn_free (NULL accepted); strings returned by the accessors are
 * borrowed and live as long as the connection. Secret material (the token,
 * an inline client key) lives in sodium memory and is wiped on free.
 * Messages name files as path or path:line:column and never hold a token or
 * key. Errors: RK_EINVAL (a malformed or refused setting: the message says
 * what to change), RK_ENOTFOUND (a file rekey looked for on its own is
 * missing), RK_EAUTH (an empty token file), RK_EIO, RK_ENOMEM.
 */
#ifndef REKEY_K8S_CONN_H
#define REKEY_K8S_CONN_H

#include <stddef.h>
#include <jansson.h>
#include "rekey/doc.h"
#include "rekey/error.h"
#include "rekey/http_cfg.h"

/* Where a pod's service account is mounted (rest.InClusterConfig). */
#define RK_K8S_SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

/* A buffer this large holds any header rk_k8s_conn_auth_header writes. */
#define RK_K8S_AUTH_HEADER_MAX (4096 + 32)

/* What the provider's block in rekey.yaml says about the connection. */
struct rk_k8s_conn_cfg {
	int in_cluster;			/* in_cluster: use the pod's service account */
	const char *kubeconfig;		/* kubeconfig: path; else $KUBECONFIG, ~/.kube/config */
	const char *context;		/* context: else the kubeconfig's current-context */
	const char *namespace_;		/* namespace: overrides every other source */
	int allow_insecure_tls;		/* allow_insecure_tls: honour insecure-skip-tls-verify */
	/* Not from rekey.yaml: for tests and embedding. NULL: the process's own. */
	const char *const *env;		/* "NAME=value", NULL-terminated; NULL: environ */
	const char *home;		/* for ~/.kube/config; NULL: $HOME of env */
	const char *sa_dir;		/* NULL: RK_K8S_SA_DIR */
	const json_t *src;		/* the mapping parsed (errors point into it), or NULL */
};

/*
 * The keys above, declared once: RK_K8S_CONN_FIELDS are rk_field entries
 * for a provider's config table, each followed by a comma:
 *   static const struct rk_field k8s_fields[] = {
 *       { "type", RK_T_STRING, RK_F_REQUIRED }, RK_K8S_CONN_FIELDS
 *       RK_HTTP_CFG_FIELDS, { NULL, 0, 0 } };
 */
#define RK_K8S_CONN_KEYS(X)                                  \
	X("in_cluster", RK_T_BOOL, in_cluster)               \
	X("kubeconfig", RK_T_STRING, kubeconfig)             \
	X("context", RK_T_STRING, context)                   \
	X("namespace", RK_T_STRING, namespace_)              \
	X("allow_insecure_tls", RK_T_BOOL, allow_insecure_tls)
#define RK_K8S_CONN_FIELD_(key, type, member) { key, type, 0 },
#define RK_K8S_CONN_FIELDS RK_K8S_CONN_KEYS(RK_K8S_CONN_FIELD_)

/*
 * Fills c from a provider's mapping (other keys are ignored: the provider
 * checks its whole table). Strings are borrowed from obj and live as long
 * as doc; c->src is set to obj, the overrides to NULL. RK_EINVAL at
 * file:line:column for a wrong type, an empty string, or in_cluster with
 * kubeconfig or context.
 */
int rk_k8s_conn_cfg_parse(struct rk_k8s_conn_cfg *c, const struct rk_doc *doc, const json_t *obj,
			  struct rk_error *err) RK_WARN_UNUSED;

struct rk_k8s_conn;

/*
 * Resolves the server and the credentials and reads what they need (token,
 * CA, inline certificates), so that a bad setup fails here, not at the first
 * request. doc is cfg->src's document (for errors; may be NULL).
 *
 * In cluster: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT
 * (an IPv6 host in brackets), the token, ca.crt and namespace files of
 * cfg->sa_dir. Otherwise a kubeconfig: cfg->kubeconfig, else the first file
 * of $KUBECONFIG, else ~/.kube/config; the context cfg->context, else
 * current-context; its cluster (server, certificate-authority[-data],
 * insecure-skip-tls-verify) and user (token or tokenFile, and/or
 * client-certificate[-data] with client-key[-data]); relative paths are
 * relative to the kubeconfig's directory. Refused with RK_EINVAL: exec and
 * auth-provider users, username/password, impersonation, tls-server-name,
 * proxy-url, and insecure-skip-tls-verify unless cfg->allow_insecure_tls
 * (then a warning is logged each time a connection is made with it).
 */
int rk_k8s_conn_new(struct rk_k8s_conn **out, const struct rk_k8s_conn_cfg *cfg,
		    const struct rk_doc *doc, struct rk_error *err) RK_WARN_UNUSED;
void rk_k8s_conn_free(struct rk_k8s_conn *c);

/* "https://host:port" (no trailing slash), for rk_http_new. */
const char *rk_k8s_conn_server(const struct rk_k8s_conn *c);
/*
 * The default namespace: cfg->namespace_, else the context's namespace
 * (kubeconfig) or the service account's namespace file (in cluster), else
 * "default".
 */
const char *rk_k8s_conn_namespace(const struct rk_k8s_conn *c);
/* Where the settings came from: "in-cluster" or the kubeconfig's path. */
const char *rk_k8s_conn_source(const struct rk_k8s_conn *c);

/*
 * Sets the TLS part of h (ca_file, ca_path, client_cert_file,
 * client_key_file, ca_pem, client_cert_pem, client_key_pem, insecure_tls)
 * from the connection, freeing what those fields held: the kubeconfig or
 * the service account decides TLS, not rekey.yaml. The other fields are
 * untouched. RK_ENOMEM leaves the TLS fields empty.
 */
int rk_k8s_conn_tls(const struct rk_k8s_conn *c, struct rk_http_cfg *h,
		    struct rk_error *err) RK_WARN_UNUSED;

/*
 * Writes "Authorization: Bearer <token>" into buf[0..n) (n of
 * RK_K8S_AUTH_HEADER_MAX is always enough), reading the token file again
 * first when it changed (a projected service account token rotates); or ""
 * when a client certificate is the only credential. The caller wipes buf
 * (sodium_memzero) when done. Thread-safe. RK_EINVAL when buf is too small
 * or the token holds a character an HTTP header cannot carry; the errors of
 * rk_cred_file_read for the token file.
 */
int rk_k8s_conn_auth_header(struct rk_k8s_conn *c, char *buf, size_t n,
			    struct rk_error *err) RK_WARN_UNUSED;

/*
 * After a 401: reads the token file again even if it looks unchanged.
 * Returns 1 when the token is now different (worth one retry), 0 when it is
 * the same or the token is not from a file. Thread-safe.
 */
int rk_k8s_conn_reload_token(struct rk_k8s_conn *c, struct rk_error *err) RK_WARN_UNUSED;

#endif
