/*
 * The Kubernetes connection (providers/k8s_conn.c): in-cluster settings from
 * env and a fake service-account directory (IPv6 URL, token re-read after a
 * rotation), kubeconfig from each source in order, contexts, CA files
 * relative to the kubeconfig vs inline data, every kind of user, insecure
 * TLS refused or allowed with a warning, unsupported users refused, every
 * malformed kubeconfig at file:line, namespace precedence, no secret in any
 * message; and one real TLS round trip through rk_http_do against
 * `openssl s_server` with the CA, client certificate and key held in memory.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>

#include "rekey/doc.h"
#include "rekey/http.h"
#include "rekey/secret.h"
#include "rekey/util.h"
#include "../../providers/k8s_conn.h"
#include "unit.h"

/* "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n" */
#define CA_B64 "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCkFBQUEKLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo="
#define CA_PEM "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
/* "-----BEGIN PRIVATE KEY-----\nS3CRETKEYMATERIAL\n-----END PRIVATE KEY-----\n" */
#define KEY_B64 "LS0tLS1CRUdJTiBQUklWQVRFIEtFWS0tLS0tClMzQ1JFVEtFWU1BVEVSSUFMCi0tLS0tRU5EIFBSSVZBVEUgS0VZLS0tLS0K"
#define KEY_SECRET "S3CRETKEYMATERIAL"
#define TOKEN "tok-Sekr3t-inline-0123456789"

static const char *const no_env[] = { NULL };
static const char *const pod_env[] = { "KUBERNETES_SERVICE_HOST=10.0.0.1",
				       "KUBERNETES_SERVICE_PORT=443", NULL };

/* A fresh directory of this test under the test case's base directory. */
static void
tdir(char out[128])
{
	snprintf(out, 128, "%s/t-XXXXXX", rk_test_base_dir);
	ck_assert_ptr_nonnull(mkdtemp(out));
}

static void
join(char *out, size_t n, const char *dir, const char *name)
{
	snprintf(out, n, "%s/%s", dir, name);
}

static void
write_in(const char *dir, const char *name, const char *text)
{
	char p[256];

	join(p, sizeof(p), dir, name);
	rk_test_write(p, text);
}

/* Replaces dir/name as kubelet does: a new file renamed over it (a new inode). */
static void
rotate(const char *dir, const char *name, const char *text)
{
	char tmp[256], p[256];

	join(p, sizeof(p), dir, name);
	snprintf(tmp, sizeof(tmp), "%s.new", p);
	rk_test_write(tmp, text);
	ck_assert_int_eq(rename(tmp, p), 0);
}

/* A kubeconfig with one cluster (its extra lines), one user (its lines). */
static void
write_kc(const char *path, const char *cluster_extra, const char *user)
{
	char text[8192];

	snprintf(text, sizeof(text),
		 "apiVersion: v1\n"				/* 1 */
		 "kind: Config\n"				/* 2 */
		 "current-context: prod\n"			/* 3 */
		 "contexts:\n"					/* 4 */
		 "- name: prod\n"				/* 5 */
		 "  context: {cluster: c1, user: u1, namespace: payments}\n" /* 6 */
		 "- name: dev\n"				/* 7 */
		 "  context: {cluster: c1, user: u1}\n"		/* 8 */
		 "users:\n"					/* 9 */
		 "- name: u1\n"					/* 10 */
		 "  user:\n"					/* 11 */
		 "%s"						/* 12.. */
		 "clusters:\n"
		 "- name: c1\n"
		 "  cluster:\n"
		 "    server: https://203.0.113.10:6443\n"
		 "%s",
		 user, cluster_extra);
	rk_test_write(path, text);
}

static struct rk_k8s_conn_cfg
kc_cfg(const char *path)
{
	struct rk_k8s_conn_cfg c = { .kubeconfig = path, .env = no_env, .home = "/nonexistent" };
	return c;
}

static struct rk_k8s_conn *
open_ok(const struct rk_k8s_conn_cfg *cfg)
{
	struct rk_k8s_conn *c = NULL;
	struct rk_error err = { 0 };

	ck_assert_msg(rk_k8s_conn_new(&c, cfg, NULL, &err) == 0, "%s", err.msg);
	ck_assert_ptr_nonnull(c);
	return c;
}

/* open_ok, then the connection's TLS settings into h. */
static struct rk_k8s_conn *
open_tls(const struct rk_k8s_conn_cfg *cfg, struct rk_http_cfg *h)
{
	struct rk_k8s_conn *c = open_ok(cfg);
	struct rk_error err = { 0 };

	ck_assert_msg(rk_k8s_conn_tls(c, h, &err) == 0, "%s", err.msg);
	return c;
}

static void
assert_header(struct rk_k8s_conn *c, const char *want)
{
	char buf[RK_K8S_AUTH_HEADER_MAX];
	struct rk_error err = { 0 };

	ck_assert_msg(rk_k8s_conn_auth_header(c, buf, sizeof(buf), &err) == 0, "%s", err.msg);
	ck_assert_str_eq(buf, want);
	sodium_memzero(buf, sizeof(buf));
}

/* ---- stderr capture (the tests run forked: changing fd 2 is local) ------- */

static int saved_stderr = -1;

static void
capture_start(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	ck_assert_int_ge(fd, 0);
	saved_stderr = dup(2);
	ck_assert_int_ge(dup2(fd, 2), 0);
	close(fd);
}

/* Restores stderr; the captured text into out (the caller's). */
static char *
capture_end(const char *path)
{
	struct rk_error err = { 0 };
	char *text = NULL;
	size_t len;

	dup2(saved_stderr, 2);
	close(saved_stderr);
	ck_assert_int_eq(rk_read_file(path, 1 << 20, &text, &len, &err), 0);
	return text;
}

static int
count(const char *hay, const char *needle)
{
	int n = 0;

	for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
		n++;
	return n;
}

/* ---- in cluster ---------------------------------------------------------- */

static void
sa_dir(char dir[128], const char *token, const char *ns)
{
	tdir(dir);
	write_in(dir, "token", token);
	write_in(dir, "ca.crt", CA_PEM);
	if (ns)
		write_in(dir, "namespace", ns);
}

static struct rk_k8s_conn_cfg
pod_cfg(const char *const *env, const char *dir)
{
	struct rk_k8s_conn_cfg c = { .in_cluster = 1, .env = env, .sa_dir = dir };
	return c;
}

START_TEST(test_in_cluster_url_token_ca_namespace)
{
	const char *env[] = { "KUBERNETES_SERVICE_HOST=10.96.0.1", "KUBERNETES_SERVICE_PORT=443",
			      NULL };
	struct rk_http_cfg h = { 0 };
	struct rk_error err = { 0 };
	struct rk_k8s_conn_cfg cfg;
	struct rk_k8s_conn *c;
	char dir[128];

	sa_dir(dir, "sa-token-1\n", "payments\n");
	cfg = pod_cfg(env, dir);
	c = open_ok(&cfg);
	ck_assert_str_eq(rk_k8s_conn_server(c), "https://10.96.0.1:443");
	ck_assert_str_eq(rk_k8s_conn_namespace(c), "payments");
	ck_assert_str_eq(rk_k8s_conn_source(c), "in-cluster");
	assert_header(c, "Authorization: Bearer sa-token-1");
	h.ca_file = strdup("/from/rekey.yaml");	/* replaced: the service account decides */
	ck_assert_int_eq(rk_k8s_conn_tls(c, &h, &err), 0);
	ck_assert_ptr_null(h.ca_file);
	ck_assert_str_eq(h.ca_pem, CA_PEM);
	ck_assert_ptr_null(h.client_key_pem);
	ck_assert_int_eq(h.insecure_tls, 0);
	rk_http_cfg_free(&h);
	rk_k8s_conn_free(c);
}
END_TEST

START_TEST(test_in_cluster_ipv6_host_gets_brackets)
{
	const char *env[] = { "KUBERNETES_SERVICE_PORT=6443", "KUBERNETES_SERVICE_HOST=fd00:10:96::1",
			      NULL };
	struct rk_k8s_conn_cfg cfg;
	struct rk_k8s_conn *c;
	char dir[128];

	sa_dir(dir, "t", NULL);
	cfg = pod_cfg(env, dir);
	c = open_ok(&cfg);
	ck_assert_str_eq(rk_k8s_conn_server(c), "https://[fd00:10:96::1]:6443");
	/* No namespace file: "default", as client-go. */
	ck_assert_str_eq(rk_k8s_conn_namespace(c), "default");
	rk_k8s_conn_free(c);
}
END_TEST

START_TEST(test_in_cluster_token_reread_after_rotation)
{
	struct rk_error err = { 0 };
	struct rk_k8s_conn_cfg cfg;
	struct rk_k8s_conn *c;
	char dir[128], tok[256];
	struct timespec ts[2];

	sa_dir(dir, "token-AAAA", NULL);
	cfg = pod_cfg(pod_env, dir);
	c = open_ok(&cfg);
	assert_header(c, "Authorization: Bearer token-AAAA");
	/* kubelet swaps the file (a new inode): the next header has the new token. */
	rotate(dir, "token", "token-BBBB-longer");
	join(tok, sizeof(tok), dir, "token");
	assert_header(c, "Authorization: Bearer token-BBBB-longer");
	/* Rewritten in place, same size: the mtime tells. */
	rk_test_write(tok, "token-CCCC-longer");
	clock_gettime(CLOCK_REALTIME, &ts[0]);
	ts[0].tv_sec += 5;
	ts[1] = ts[0];
	ck_assert_int_eq(utimensat(AT_FDCWD, tok, ts, 0), 0);
	assert_header(c, "Authorization: Bearer token-CCCC-longer");
	/* After a 401: a forced read says whether retrying is worth it. */
	ck_assert_int_eq(rk_k8s_conn_reload_token(c, &err), 0);
	rk_test_write(tok, "token-DDDD-longer");
	ck_assert_int_eq(rk_k8s_conn_reload_token(c, &err), 1);
	assert_header(c, "Authorization: Bearer token-DDDD-longer");
	rk_k8s_conn_free(c);
}
END_TEST

START_TEST(test_in_cluster_missing_env_and_files)
{
	const char *half[] = { "KUBERNETES_SERVICE_HOST=10.0.0.1", NULL };
	const char *badport[] = { "KUBERNETES_SERVICE_HOST=10.0.0.1",
				  "KUBERNETES_SERVICE_PORT=443/x", NULL };
	struct rk_k8s_conn *c = NULL;
	struct rk_error err = { 0 };
	struct rk_k8s_conn_cfg cfg;
	char dir[128], p[256];

	sa_dir(dir, "t", NULL);
	cfg = pod_cfg(half, dir);
	ck_assert_int_eq(rk_k8s_conn_new(&c, &cfg, NULL, &err), RK_EINVAL);
	ck_assert_ptr_null(c);
	ck_assert_msg(strstr(err.msg, "KUBERNETES_SERVICE_PORT") != NULL, "%s", err.msg);

	rk_error_clear(&err);
	cfg.env = badport;
	ck_assert_int_eq(rk_k8s_conn_new(&c, &cfg, NULL, &err), RK_EINVAL);

	rk_error_clear(&err);
	cfg.env = pod_env;
	join(p, sizeof(p), dir, "ca.crt");
	ck_assert_int_eq(unlink(p), 0);
	ck_assert_int_eq(rk_k8s_conn_new(&c, &cfg, NULL, &err), RK_ENOTFOUND);
	ck_assert_msg(strstr(err.msg, p) != NULL, "%s", err.msg);

	rk_error_clear(&err);
	join(p, sizeof(p), dir, "token");
	ck_assert_int_eq(unlink(p), 0);
	ck_assert_int_eq(rk_k8s_conn_new(&c, &cfg, NULL, &err), RK_ENOTFOUND);
	ck_assert_msg(strstr(err.msg, p) != NULL, "%s", err.msg);
	ck_assert_ptr_null(c);
}
END_TEST

/* ---- kubeconfig: where it comes from, which context --------------------- */

static void
write_kc_server(const char *path, const char *server)
{
	char text[1024];

	snprintf(text, sizeof(text),
		 "current-context: x\n"
		 "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
		 "clusters: [{name: c, cluster: {server: '%s'}}]\n"
		 "users: [{name: u, user: {token: t}}]\n", server);
	rk_test_write(path, text);
}

START_TEST(test_kubeconfig_sources_in_order)
{
	char dir[128], a[256], b[256], home[256], homecfg[256], kcenv[600];
	const char *env[] = { kcenv, "HOME=/nonexistent", NULL };
	struct rk_k8s_conn_cfg cfg = { .env = env };
	struct rk_k8s_conn *c;

	tdir(dir);
	join(a, sizeof(a), dir, "a.yaml");
	join(b, sizeof(b), dir, "b.yaml");
	join(home, sizeof(home), dir, "home");
	join(homecfg, sizeof(homecfg), dir, "home/.kube");
	ck_assert_int_eq(mkdir(home, 0700), 0);
	ck_assert_int_eq(mkdir(homecfg, 0700), 0);
	join(homecfg, sizeof(homecfg), dir, "home/.kube/config");
	write_kc_server(a, "https://a.example:6443");
	write_kc_server(b, "https://b.example:6443/");	/* the slash is dropped */
	write_kc_server(homecfg, "https://home.example:6443");
	cfg.home = home;

	/* rekey.yaml's path beats KUBECONFIG. */
	snprintf(kcenv, sizeof(kcenv), "KUBECONFIG=%s:%s", b, a);
	cfg.kubeconfig = a;
	c = open_ok(&cfg);
	ck_assert_str_eq(rk_k8s_conn_server(c), "https://a.example:6443");
	ck_assert_str_eq(rk_k8s_conn_source(c), a);
	rk_k8s_conn_free(c);

	/* KUBECONFIG (its first file) beats ~/.kube/config. */
	cfg.kubeconfig = NULL;
	c = open_ok(&cfg);
	ck_assert_str_eq(rk_k8s_conn_server(c), "https://b.example:6443");
	rk_k8s_conn_free(c);

	/* Neither: ~/.kube/config. */
	snprintf(kcenv, sizeof(kcenv), "OTHER=1");
	c = open_ok(&cfg);
	ck_assert_str_eq(rk_k8s_conn_server(c), "https://home.example:6443");
	ck_assert_str_eq(rk_k8s_conn_source(c), homecfg);
	rk_k8s_conn_free(c);

	/* HOME from env when no override. */
	cfg.home = NULL;
	env[1] = NULL;
	snprintf(kcenv, sizeof(kcenv), "HOME=%s", home);
	c = open_ok(&cfg);
	ck_assert_str_eq(rk_k8s_conn_server(c), "https://home.example:6443");
	rk_k8s_conn_free(c);
}
END_TEST

START_TEST(test_kubeconfig_not_found_names_the_path)
{
	const char *env_kc[] = { "KUBECONFIG=/nonexistent/kc:/also/not", NULL };
	const char *env_pod[] = { "KUBERNETES_SERVICE_HOST=10.0.0.1", NULL };
	struct rk_k8s_conn_cfg cfg = { .env = env_kc, .home = "/nonexistent" };
	struct rk_k8s_conn *c = NULL;
	struct rk_error err = { 0 };

	ck_assert_int_eq(rk_k8s_conn_new(&c, &cfg, NULL, &err), RK_ENOTFOUND);
	ck_assert_msg(strstr(err.msg, "'/nonexistent/kc'") != NULL, "%s", err.msg);
	ck_assert_msg(strstr(err.msg, "first file of KUBECONFIG") != NULL, "%s", err.msg);

	rk_error_clear(&err);
	cfg.env = env_pod;
	ck_assert_int_eq(rk_k8s_conn_new(&c, &cfg, NULL, &err), RK_ENOTFOUND);
	ck_assert_msg(strstr(err.msg, "/nonexistent/.kube/config") != NULL, "%s", err.msg);
	ck_assert_msg(strstr(err.msg, "in_cluster: true") != NULL, "%s", err.msg);

	rk_error_clear(&err);
	cfg.kubeconfig = "/nonexistent/named";
	ck_assert_int_eq(rk_k8s_conn_new(&c, &cfg, NULL, &err), RK_EINVAL);
	ck_assert_msg(strstr(err.msg, "/nonexistent/named") != NULL, "%s", err.msg);
	ck_assert_ptr_null(c);
}
END_TEST

START_TEST(test_context_current_or_named)
{
	char dir[128], kc[256];
	struct rk_k8s_conn_cfg cfg;
	struct rk_k8s_conn *c;

	tdir(dir);
	join(kc, sizeof(kc), dir, "config");
	write_kc(kc, "", "    token: " TOKEN "\n");
	cfg = kc_cfg(kc);
	c = open_ok(&cfg);	/* current-context: prod, namespace payments */
	ck_assert_str_eq(rk_k8s_conn_namespace(c), "payments");
	ck_assert_str_eq(rk_k8s_conn_server(c), "https://203.0.113.10:6443");
	rk_k8s_conn_free(c);
	cfg.context = "dev";	/* no namespace of its own */
	c = open_ok(&cfg);
	ck_assert_str_eq(rk_k8s_conn_namespace(c), "default");
	rk_k8s_conn_free(c);
}
END_TEST

START_TEST(test_namespace_precedence)
{
	struct rk_k8s_conn_cfg cfg;
	struct rk_k8s_conn *c = NULL;
	struct rk_error err = { 0 };
	char dir[128], kc[256], sa[128];

	tdir(dir);
	join(kc, sizeof(kc), dir, "config");
	write_kc(kc, "", "    token: " TOKEN "\n");
	cfg = kc_cfg(kc);
	cfg.namespace_ = "override";	/* beats the context's */
	c = open_ok(&cfg);
	ck_assert_str_eq(rk_k8s_conn_namespace(c), "override");
	rk_k8s_conn_free(c);

	sa_dir(sa, "t", "from-file");
	cfg = pod_cfg(pod_env, sa);
	c = open_ok(&cfg);
	ck_assert_str_eq(rk_k8s_conn_namespace(c), "from-file");
	rk_k8s_conn_free(c);
	cfg.namespace_ = "override";	/* beats the file */
	c = open_ok(&cfg);
	ck_assert_str_eq(rk_k8s_conn_namespace(c), "override");
	rk_k8s_conn_free(c);

	cfg.namespace_ = "Not_A/Name";
	c = NULL;
	ck_assert_int_eq(rk_k8s_conn_new(&c, &cfg, NULL, &err), RK_EINVAL);
	ck_assert_ptr_null(c);

	/* A namespace file that is not a name is an error, not "default". */
	rk_error_clear(&err);
	cfg.namespace_ = NULL;
	write_in(sa, "namespace", "../kube-system\n");
	ck_assert_int_eq(rk_k8s_conn_new(&c, &cfg, NULL, &err), RK_EINVAL);
	ck_assert_msg(strstr(err.msg, "/namespace does not hold a namespace name") != NULL, "%s",
		      err.msg);
}
END_TEST

/* ---- kubeconfig: CA and users ------------------------------------------------ */

START_TEST(test_ca_path_relative_to_kubeconfig_dir_or_data)
{
	char dir[128], sub[256], kc[300], cwd[512];
	struct rk_k8s_conn_cfg cfg;
	struct rk_http_cfg h = { 0 };
	struct rk_k8s_conn *c;

	tdir(dir);
	join(sub, sizeof(sub), dir, "sub");
	ck_assert_int_eq(mkdir(sub, 0700), 0);
	write_in(sub, "ca.crt", "-----BEGIN CERTIFICATE-----\nFROMFILE\n");
	write_in(dir, "ca.crt", "-----BEGIN CERTIFICATE-----\nWRONGDIR\n");
	join(kc, sizeof(kc), sub, "config");
	write_kc(kc, "    certificate-authority: ca.crt\n", "    token: " TOKEN "\n");
	/* From elsewhere: the path is the kubeconfig's directory's, not ours. */
	ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
	ck_assert_int_eq(chdir(dir), 0);
	cfg = kc_cfg(kc);
	c = open_tls(&cfg, &h);
	ck_assert_str_eq(h.ca_pem, "-----BEGIN CERTIFICATE-----\nFROMFILE\n");
	rk_k8s_conn_free(c);

	write_kc(kc, "    certificate-authority-data: " CA_B64 "\n", "    token: " TOKEN "\n");
	c = open_tls(&cfg, &h);
	ck_assert_str_eq(h.ca_pem, CA_PEM);
	ck_assert_ptr_null(h.ca_file);
	rk_k8s_conn_free(c);
	rk_http_cfg_free(&h);
	ck_assert_int_eq(chdir(cwd), 0);
}
END_TEST

START_TEST(test_users_token_tokenfile_and_client_cert)
{
	char dir[128], kc[256], p[256];
	struct rk_k8s_conn_cfg cfg;
	struct rk_http_cfg h = { 0 };
	struct rk_error err = { 0 };
	struct rk_k8s_conn *c;

	tdir(dir);
	join(kc, sizeof(kc), dir, "config");
	cfg = kc_cfg(kc);

	write_kc(kc, "", "    token: " TOKEN "\n");
	c = open_ok(&cfg);
	assert_header(c, "Authorization: Bearer " TOKEN);
	ck_assert_int_eq(rk_k8s_conn_reload_token(c, &err), 0);	/* nothing to re-read */
	rk_k8s_conn_free(c);

	/* tokenFile, relative to the kubeconfig, re-read when it changes. */
	write_in(dir, "tok", "file-token-1\n");
	write_kc(kc, "", "    tokenFile: tok\n");
	c = open_ok(&cfg);
	assert_header(c, "Authorization: Bearer file-token-1");
	rotate(dir, "tok", "file-token-2-rotated\n");
	assert_header(c, "Authorization: Bearer file-token-2-rotated");
	rk_k8s_conn_free(c);

	/* Client certificate and key inline: no header, both in the TLS settings. */
	write_kc(kc, "", "    client-certificate-data: " CA_B64 "\n"
			 "    client-key-data: " KEY_B64 "\n");
	c = open_ok(&cfg);
	assert_header(c, "");
	ck_assert_int_eq(rk_k8s_conn_tls(c, &h, &err), 0);
	ck_assert_str_eq(h.client_cert_pem, CA_PEM);
	ck_assert_ptr_nonnull(h.client_key_pem);
	ck_assert_msg(strstr(rk_secret_str(h.client_key_pem), KEY_SECRET) != NULL, "key");
	ck_assert_ptr_null(h.client_cert_file);
	ck_assert_ptr_null(h.ca_pem);	/* no CA given: the system's */
	rk_k8s_conn_free(c);

	/* As files: paths resolved against the kubeconfig's directory. */
	write_in(dir, "c.crt", CA_PEM);
	write_in(dir, "c.key", "-----BEGIN PRIVATE KEY-----\n");
	write_kc(kc, "", "    client-certificate: c.crt\n    client-key: c.key\n");
	c = open_tls(&cfg, &h);
	join(p, sizeof(p), dir, "c.crt");
	ck_assert_str_eq(h.client_cert_file, p);
	join(p, sizeof(p), dir, "c.key");
	ck_assert_str_eq(h.client_key_file, p);
	ck_assert_ptr_null(h.client_key_pem);	/* the earlier one was freed */
	ck_assert_ptr_null(h.client_cert_pem);
	rk_k8s_conn_free(c);
	rk_http_cfg_free(&h);
}
END_TEST

START_TEST(test_insecure_refused_or_allowed_with_warning)
{
	char dir[128], kc[256], log[256];
	struct rk_k8s_conn_cfg cfg;
	struct rk_http_cfg h = { 0 };
	struct rk_k8s_conn *c = NULL;
	struct rk_error err = { 0 };
	char *text;

	tdir(dir);
	join(kc, sizeof(kc), dir, "config");
	join(log, sizeof(log), dir, "log");
	write_kc(kc, "    insecure-skip-tls-verify: true\n", "    token: " TOKEN "\n");
	cfg = kc_cfg(kc);
	ck_assert_int_eq(rk_k8s_conn_new(&c, &cfg, NULL, &err), RK_EINVAL);
	ck_assert_ptr_null(c);
	rk_test_assert_at(&err, kc, 17, 31);
	ck_assert_msg(strstr(err.msg, "allow_insecure_tls: true") != NULL, "%s", err.msg);
	ck_assert_msg(strstr(err.msg, "certificate-authority-data") != NULL, "%s", err.msg);

	cfg.allow_insecure_tls = 1;
	capture_start(log);
	c = open_ok(&cfg);
	rk_k8s_conn_free(c);
	c = open_ok(&cfg);
	text = capture_end(log);
	/* Each connection made with it, not once per process. */
	ck_assert_msg(count(text, "k8s.insecure_tls") == 2, "%s", text);
	ck_assert_msg(strstr(text, "\"warn\"") != NULL, "%s", text);
	ck_assert_msg(strstr(text, TOKEN) == NULL, "token logged: %s", text);
	free(text);
	ck_assert_int_eq(rk_k8s_conn_tls(c, &h, &err), 0);
	ck_assert_int_eq(h.insecure_tls, 1);
	rk_http_cfg_free(&h);
	rk_k8s_conn_free(c);

	/* Written false: verified as usual, no warning needed. */
	write_kc(kc, "    insecure-skip-tls-verify: false\n", "    token: " TOKEN "\n");
	cfg.allow_insecure_tls = 0;
	c = open_tls(&cfg, &h);
	ck_assert_int_eq(h.insecure_tls, 0);
	rk_http_cfg_free(&h);
	rk_k8s_conn_free(c);
}
END_TEST

/*
 * Opening kc is refused (RK_EINVAL, nothing handed back) at kc:line with
 * needle in the message, and no token in it; i numbers the case.
 */
static void
assert_refused(const char *kc, int line, const char *needle, size_t i)
{
	struct rk_k8s_conn_cfg cfg = kc_cfg(kc);
	struct rk_k8s_conn *c = NULL;
	struct rk_error err = { 0 };

	ck_assert_msg(rk_k8s_conn_new(&c, &cfg, NULL, &err) == RK_EINVAL, "case %zu: %d %s", i,
		      err.code, err.msg);
	ck_assert_ptr_null(c);
	rk_test_assert_at(&err, kc, line, 0);
	ck_assert_msg(strstr(err.msg, needle) != NULL, "case %zu: '%s' not in %s", i, needle,
		      err.msg);
	ck_assert_msg(strstr(err.msg, "Sekr3t") == NULL, "case %zu: token in %s", i, err.msg);
}

START_TEST(test_unsupported_users_and_clusters_refused)
{
	static const struct {
		const char *cluster, *user, *needle;
		int line;
	} cases[] = {
		{ "", "    exec:\n      apiVersion: client.authentication.k8s.io/v1\n"
		      "      command: aws\n", "exec credential plugins are not supported; use a "
		  "token or client certificate", 13 },
		{ "", "    auth-provider:\n      name: gcp\n", "auth-provider plugins are not "
		  "supported; use a token or client certificate", 13 },
		{ "", "    username: admin\n    password: pw\n", "basic authentication", 12 },
		{ "", "    token: " TOKEN "\n    as: someone\n", "impersonation", 13 },
		{ "    tls-server-name: kubernetes\n", "    token: " TOKEN "\n",
		  "tls-server-name is not supported", 17 },
		{ "    proxy-url: http://proxy:3128\n", "    token: " TOKEN "\n",
		  "proxy-url is not supported", 17 },
	};
	char dir[128], kc[256];

	tdir(dir);
	join(kc, sizeof(kc), dir, "config");
	for (size_t i = 0; i < RK_ARRAY_SIZE(cases); i++) {
		write_kc(kc, cases[i].cluster, cases[i].user);
		assert_refused(kc, cases[i].line, cases[i].needle, i);
	}
}
END_TEST

/* ---- malformed kubeconfigs ---------------------------------------------- */

START_TEST(test_malformed_kubeconfig_at_file_line)
{
	static const struct {
		const char *text, *needle;
		int line;
	} cases[] = {
		{ "clusters: [\n  {name: c\n", "", 3 },	/* not YAML: an unclosed flow */
		{ "- just\n- a list\n", "not a kubeconfig", 1 },
		{ "current-context: x\ncontexts: []\nusers: []\n", "no 'clusters' list", 1 },
		{ "current-context: x\nclusters: []\nusers: []\n", "no 'contexts' list", 1 },
		{ "current-context: x\nclusters: []\ncontexts: []\n", "no 'users' list", 1 },
		{ "clusters: []\ncontexts: []\nusers: []\n", "no current-context", 1 },
		{ "current-context: x\nclusters: []\ncontexts: []\nusers: []\n",
		  "'current-context' names context 'x', which is not in 'contexts'", 1 },
		{ "current-context: x\n"
		  "contexts:\n- name: x\n  context:\n    cluster: nope\n    user: u\n"
		  "clusters: []\nusers: [{name: u, user: {token: t}}]\n",
		  "'cluster' names cluster 'nope', which is not in 'clusters'", 5 },
		{ "current-context: x\n"
		  "contexts:\n- name: x\n  context:\n    cluster: c\n    user: nobody\n"
		  "clusters: [{name: c, cluster: {server: 'https://h:1'}}]\nusers: []\n",
		  "'user' names user 'nobody', which is not in 'users'", 6 },
		{ "current-context: x\n"
		  "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
		  "clusters:\n- name: c\n  cluster:\n    server: https://h:1\n"
		  "    certificate-authority-data: '%%%notbase64'\n"
		  "users: [{name: u, user: {token: t}}]\n",
		  "'certificate-authority-data' is not valid base64", 7 },
		{ "current-context: x\n"
		  "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
		  "clusters: [{name: c, cluster: {server: 'https://h:1'}}]\n"
		  "users:\n- name: u\n  user:\n    client-certificate-data: " CA_B64 "\n"
		  "    client-key-data: '" KEY_B64 "!!'\n",
		  "'client-key-data' is not valid base64", 8 },
		{ "current-context: x\n"
		  "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
		  "clusters: [{name: c, cluster: {server: 'https://h:1'}}]\n"
		  "users:\n- name: u\n  user:\n    client-certificate-data: aGVsbG8=\n"
		  "    client-key-data: " KEY_B64 "\n",
		  "'client-certificate-data' does not decode to a PEM block", 7 },
		{ "current-context: x\n"
		  "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
		  "clusters:\n- name: c\n  cluster:\n    server: https://h:1\n"
		  "    certificate-authority: /nonexistent/ca.crt\n"
		  "users: [{name: u, user: {token: t}}]\n",
		  "/nonexistent/ca.crt", 7 },
		{ "current-context: x\n"
		  "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
		  "clusters: [{name: c, cluster: {server: 'https://h:1'}}]\n"
		  "users:\n- name: u\n  user:\n    tokenFile: /nonexistent/token\n",
		  "/nonexistent/token", 7 },
		{ "current-context: x\n"
		  "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
		  "clusters:\n- name: c\n  cluster:\n    server: http://h:1\n"
		  "users: [{name: u, user: {token: t}}]\n",
		  "https://", 6 },
		{ "current-context: x\n"
		  "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
		  "clusters: [{name: c, cluster: {server: 'https://h:1'}}]\n"
		  "users:\n- name: u\n  user:\n    client-certificate-data: " CA_B64 "\n",
		  "needs its key", 7 },
		{ "current-context: x\n"
		  "contexts: [{name: x, context: {cluster: c, user: u}}]\n"
		  "clusters: [{name: c, cluster: {server: 'https://h:1'}}]\n"
		  "users:\n- name: u\n  user: {}\n",
		  "the user has no credentials", 6 },
	};
	char dir[128], kc[256];

	tdir(dir);
	join(kc, sizeof(kc), dir, "config");
	for (size_t i = 0; i < RK_ARRAY_SIZE(cases); i++) {
		rk_test_write(kc, cases[i].text);
		assert_refused(kc, cases[i].line, cases[i].needle, i);
	}
}
END_TEST

/* ---- no secret in any message ---------------------------------------------- */

START_TEST(test_no_secret_in_any_message)
{
	static const char *const users[] = {
		/* a token a header cannot carry */
		"    token: \"" TOKEN " x\"\n",
		/* a token and a broken key next to it */
		"    token: " TOKEN "\n    client-certificate-data: " CA_B64 "\n"
		"    client-key-data: '" KEY_B64 "*'\n",
		/* both token forms */
		"    token: " TOKEN "\n    tokenFile: /t\n",
		/* a key that is not PEM */
		"    client-certificate-data: " CA_B64 "\n    client-key-data: " TOKEN "\n",
		/* a good user, a refused cluster */
		"    token: " TOKEN "\n    client-certificate-data: " CA_B64 "\n"
		"    client-key-data: " KEY_B64 "\n",
	};
	char dir[128], kc[256];

	tdir(dir);
	join(kc, sizeof(kc), dir, "config");
	for (size_t i = 0; i < RK_ARRAY_SIZE(users); i++) {
		struct rk_k8s_conn_cfg cfg = kc_cfg(kc);
		struct rk_k8s_conn *c = NULL;
		struct rk_error err = { 0 };
		write_kc(kc, i == RK_ARRAY_SIZE(users) - 1 ? "    insecure-skip-tls-verify: true\n"
							  : "", users[i]);
		ck_assert_msg(rk_k8s_conn_new(&c, &cfg, NULL, &err) == RK_EINVAL, "case %zu: %s", i,
			      err.msg);
		ck_assert_msg(strstr(err.msg, "Sekr3t") == NULL, "case %zu: %s", i, err.msg);
		ck_assert_msg(strstr(err.msg, KEY_SECRET) == NULL, "case %zu: %s", i, err.msg);
		ck_assert_msg(strstr(err.msg, "LS0tLS1CRUdJTiBQUk") == NULL, "case %zu: %s", i,
			      err.msg);
		ck_assert_msg(err.msg[0] != '\0', "case %zu: no message", i);
	}
}
END_TEST

/* ---- rekey.yaml keys -------------------------------------------------------- */

START_TEST(test_cfg_parse_from_rekey_yaml)
{
	static const char text[] =
		"type: kubernetes\n"
		"kubeconfig: /nonexistent/kc\n"
		"context: prod\n"
		"namespace: payments\n"
		"allow_insecure_tls: true\n";
	struct rk_k8s_conn_cfg cfg;
	struct rk_k8s_conn *c = NULL;
	struct rk_doc *doc = NULL;
	struct rk_error err = { 0 };

	ck_assert_int_eq(rk_doc_load_string(&doc, "rekey.yaml", text, strlen(text), &err), 0);
	ck_assert_int_eq(rk_k8s_conn_cfg_parse(&cfg, doc, rk_doc_root(doc), &err), 0);
	ck_assert_int_eq(cfg.in_cluster, 0);
	ck_assert_str_eq(cfg.kubeconfig, "/nonexistent/kc");
	ck_assert_str_eq(cfg.context, "prod");
	ck_assert_str_eq(cfg.namespace_, "payments");
	ck_assert_int_eq(cfg.allow_insecure_tls, 1);
	ck_assert_ptr_null(cfg.env);
	/* A missing kubeconfig is pointed at where rekey.yaml names it. */
	ck_assert_int_eq(rk_k8s_conn_new(&c, &cfg, doc, &err), RK_EINVAL);
	rk_test_assert_at(&err, "rekey.yaml", 2, 13);
	rk_doc_free(doc);

	{
		static const struct {
			const char *text;
			int line;
		} bad[] = {
			{ "type: kubernetes\nin_cluster: yes please\n", 2 },
			{ "type: kubernetes\ncontext: ''\n", 2 },
			{ "type: kubernetes\nnamespace: 7\n", 2 },
			{ "type: kubernetes\nin_cluster: true\nkubeconfig: /k\n", 3 },
		};
		for (size_t i = 0; i < RK_ARRAY_SIZE(bad); i++) {
			rk_error_clear(&err);
			ck_assert_int_eq(rk_doc_load_string(&doc, "rekey.yaml", bad[i].text,
							    strlen(bad[i].text), &err), 0);
			ck_assert_int_eq(rk_k8s_conn_cfg_parse(&cfg, doc, rk_doc_root(doc), &err),
					 RK_EINVAL);
			rk_test_assert_at(&err, "rekey.yaml", bad[i].line, 0);
			rk_doc_free(doc);
		}
	}
}
END_TEST

/* ---- a real TLS round trip ------------------------------------------------- */

/* Runs argv quietly in dir; its exit status (127: could not run it). */
static int
run(const char *dir, const char *const *argv)
{
	pid_t pid = fork();
	int st;

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		if (chdir(dir) != 0)
			_exit(126);
		dup2(null, 1);
		dup2(null, 2);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void
openssl_ok(const char *dir, const char *const *argv)
{
	ck_assert_msg(run(dir, argv) == 0, "openssl %s failed", argv[1]);
}

/* A key and a certificate signed by ca (self-signed when ca is NULL). */
static void
make_cert(const char *dir, const char *name, const char *cn, const char *ca, int server)
{
	char key[64], crt[64], csr[64], subj[80], cakey[64], cacrt[64];

	snprintf(key, sizeof(key), "%s.key", name);
	snprintf(crt, sizeof(crt), "%s.crt", name);
	snprintf(csr, sizeof(csr), "%s.csr", name);
	snprintf(subj, sizeof(subj), "/CN=%s", cn);
	if (ca == NULL) {
		const char *argv[] = { "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
				       "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out",
				       crt, "-subj", subj, "-days", "2", NULL };
		openssl_ok(dir, argv);
		return;
	}
	snprintf(cakey, sizeof(cakey), "%s.key", ca);
	snprintf(cacrt, sizeof(cacrt), "%s.crt", ca);
	{
		const char *req[] = { "openssl", "req", "-newkey", "ec", "-pkeyopt",
				      "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", csr,
				      "-subj", subj, NULL };
		const char *sign[] = { "openssl", "x509", "-req", "-in", csr, "-CA", cacrt, "-CAkey",
				       cakey, "-CAcreateserial", "-out", crt, "-days", "2",
				       server ? "-extfile" : NULL, "ext", NULL };
		openssl_ok(dir, req);
		openssl_ok(dir, sign);
	}
}

/* base64 of dir/name's contents (malloc'd). */
static char *
file_b64(const char *dir, const char *name)
{
	struct rk_error err = { 0 };
	char p[256], *text = NULL, *b64;
	size_t len, n;

	join(p, sizeof(p), dir, name);
	ck_assert_int_eq(rk_read_file(p, 1 << 16, &text, &len, &err), 0);
	n = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
	b64 = malloc(n);
	ck_assert_ptr_nonnull(b64);
	sodium_bin2base64(b64, n, (const unsigned char *)text, len, sodium_base64_VARIANT_ORIGINAL);
	rk_wipe_free(text, len);
	return b64;
}

/* openssl s_server -www requiring a client certificate; its port in *port. */
static pid_t
start_server(const char *dir, int *port)
{
	int fds[2];
	pid_t pid;
	char buf[512];
	size_t len = 0;

	ck_assert_int_eq(pipe(fds), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		const char *argv[] = { "openssl", "s_server", "-accept", "127.0.0.1:0", "-www",
				       "-cert", "srv.crt", "-key", "srv.key", "-CAfile", "ca.crt",
				       "-Verify", "1", NULL };
		/* Gone with the test process, whatever way it ends. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (chdir(dir) != 0)
			_exit(126);
		int null = open("/dev/null", O_WRONLY);
		dup2(fds[1], 1);
		dup2(null, 2);	/* its handshake reports */
		close(fds[0]);
		close(fds[1]);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(fds[1]);
	/* "ACCEPT 127.0.0.1:PORT" once it listens. */
	for (;;) {
		char *a, *colon;
		ssize_t n = read(fds[0], buf + len, sizeof(buf) - 1 - len);
		ck_assert_msg(n > 0, "openssl s_server did not start");
		len += (size_t)n;
		buf[len] = '\0';
		if ((a = strstr(buf, "ACCEPT ")) != NULL && strchr(a, '\n') != NULL &&
		    (colon = strrchr(a, ':')) != NULL) {
			*port = atoi(colon + 1);
			break;
		}
	}
	close(fds[0]);
	return pid;
}

static const struct rk_http_cfg http_base = {
	.connect_timeout_ms = 3000, .total_timeout_ms = 5000, .max_attempts = 1,
	.base_delay_ms = 10, .max_delay_ms = 10, .cb_failures = 100, .cb_cooldown_ms = 10,
	.rps = 1000, .burst = 100, .concurrency = 2, .max_response = 1 << 20,
};

/* One GET / through a connection built from kc; rk_http_do's result. */
static int
get_through(const char *kc, int allow_insecure, struct rk_http_resp *resp)
{
	struct rk_k8s_conn_cfg cfg = kc_cfg(kc);
	struct rk_http_cfg h;
	struct rk_http *http = NULL;
	struct rk_error err = { 0 };
	struct rk_k8s_conn *c;
	char auth[RK_K8S_AUTH_HEADER_MAX];
	const char *hdrs[] = { auth, NULL };
	struct rk_http_req req = { .method = "GET", .path = "/", .idempotent = RK_HTTP_IDEMPOTENT };
	int r;

	cfg.allow_insecure_tls = allow_insecure;
	c = open_ok(&cfg);
	ck_assert_int_eq(rk_http_cfg_copy(&h, &http_base), 0);
	ck_assert_int_eq(rk_k8s_conn_tls(c, &h, &err), 0);
	ck_assert_msg(rk_http_new(&http, "k8s", rk_k8s_conn_server(c), &h, &err) == 0, "%s",
		      err.msg);
	ck_assert_int_eq(rk_k8s_conn_auth_header(c, auth, sizeof(auth), &err), 0);
	req.headers = auth[0] ? hdrs : NULL;
	memset(resp, 0, sizeof(*resp));
	r = rk_http_do(http, &req, resp, &err);
	sodium_memzero(auth, sizeof(auth));
	rk_http_free(http);
	rk_http_cfg_free(&h);
	rk_k8s_conn_free(c);
	return r;
}

static void
write_tls_kc(const char *kc, int port, const char *ca_b64, const char *cert_b64,
	     const char *key_b64, const char *extra)
{
	char text[16384];

	if (cert_b64 != NULL)
		snprintf(text, sizeof(text),
			 "current-context: t\n"
			 "contexts: [{name: t, context: {cluster: c, user: u}}]\n"
			 "clusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:%d\n"
			 "    certificate-authority-data: %s\n%s"
			 "users:\n- name: u\n  user:\n    client-certificate-data: %s\n"
			 "    client-key-data: %s\n", port, ca_b64, extra, cert_b64, key_b64);
	else
		snprintf(text, sizeof(text),
			 "current-context: t\n"
			 "contexts: [{name: t, context: {cluster: c, user: u}}]\n"
			 "clusters:\n- name: c\n  cluster:\n    server: https://127.0.0.1:%d\n"
			 "    certificate-authority-data: %s\n%s"
			 "users:\n- name: u\n  user:\n    token: " TOKEN "\n", port, ca_b64, extra);
	rk_test_write(kc, text);
}

START_TEST(test_tls_round_trip_with_in_memory_pem)
{
	const char *version[] = { "openssl", "version", NULL };
	char dir[128], kc[256], log[256];
	char *ca, *other_ca, *cert, *key, *text;
	struct rk_http_resp resp;
	int port;
	pid_t srv;

	tdir(dir);
	if (run(dir, version) != 0) {
		fprintf(stderr, "SKIP test_tls_round_trip_with_in_memory_pem: openssl is not "
			"installed (apt-get install openssl)\n");
		return;
	}
	write_in(dir, "ext", "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
	make_cert(dir, "ca", "rekey-test-ca", NULL, 0);
	make_cert(dir, "other", "some-other-ca", NULL, 0);
	make_cert(dir, "srv", "localhost", "ca", 1);
	make_cert(dir, "cli", "rekey-client", "ca", 0);
	ca = file_b64(dir, "ca.crt");
	other_ca = file_b64(dir, "other.crt");
	cert = file_b64(dir, "cli.crt");
	key = file_b64(dir, "cli.key");
	srv = start_server(dir, &port);
	join(kc, sizeof(kc), dir, "config");
	join(log, sizeof(log), dir, "log");

	/* The right CA and a client certificate: the server saw our certificate. */
	write_tls_kc(kc, port, ca, cert, key, "");
	ck_assert_int_eq(get_through(kc, 0, &resp), 0);
	ck_assert_int_eq(resp.status, 200);
	ck_assert_msg(strstr(resp.body, "rekey-client") != NULL, "%s", resp.body);
	rk_http_resp_free(&resp);

	/* The wrong CA: the server is not trusted. */
	write_tls_kc(kc, port, other_ca, cert, key, "");
	ck_assert_int_lt(get_through(kc, 0, &resp), 0);
	ck_assert_int_eq(resp.status, 0);
	rk_http_resp_free(&resp);

	/* The right CA, no client certificate: the server refuses the handshake. */
	write_tls_kc(kc, port, ca, NULL, NULL, "");
	ck_assert_int_lt(get_through(kc, 0, &resp), 0);
	rk_http_resp_free(&resp);

	/* The wrong CA, insecure allowed: it connects, and says so. */
	write_tls_kc(kc, port, other_ca, cert, key, "    insecure-skip-tls-verify: true\n");
	capture_start(log);
	ck_assert_int_eq(get_through(kc, 1, &resp), 0);
	text = capture_end(log);
	ck_assert_int_eq(resp.status, 200);
	ck_assert_msg(strstr(text, "http.insecure_tls") != NULL, "%s", text);
	ck_assert_msg(strstr(text, "k8s.insecure_tls") != NULL, "%s", text);
	free(text);
	rk_http_resp_free(&resp);

	kill(srv, SIGTERM);
	waitpid(srv, NULL, 0);
	free(ca);
	free(other_ca);
	free(cert);
	rk_wipe_free_str(key);
}
END_TEST

Suite *
k8s_conn_suite(void)
{
	Suite *s = suite_create("k8s_conn");
	TCase *tc = tcase_create("core");
	TCase *tls = tcase_create("tls");

	tcase_add_unchecked_fixture(tc, rk_test_base_setup, rk_test_base_teardown);
	tcase_add_test(tc, test_in_cluster_url_token_ca_namespace);
	tcase_add_test(tc, test_in_cluster_ipv6_host_gets_brackets);
	tcase_add_test(tc, test_in_cluster_token_reread_after_rotation);
	tcase_add_test(tc, test_in_cluster_missing_env_and_files);
	tcase_add_test(tc, test_kubeconfig_sources_in_order);
	tcase_add_test(tc, test_kubeconfig_not_found_names_the_path);
	tcase_add_test(tc, test_context_current_or_named);
	tcase_add_test(tc, test_namespace_precedence);
	tcase_add_test(tc, test_ca_path_relative_to_kubeconfig_dir_or_data);
	tcase_add_test(tc, test_users_token_tokenfile_and_client_cert);
	tcase_add_test(tc, test_insecure_refused_or_allowed_with_warning);
	tcase_add_test(tc, test_unsupported_users_and_clusters_refused);
	tcase_add_test(tc, test_malformed_kubeconfig_at_file_line);
	tcase_add_test(tc, test_no_secret_in_any_message);
	tcase_add_test(tc, test_cfg_parse_from_rekey_yaml);
	suite_add_tcase(s, tc);

	tcase_add_unchecked_fixture(tls, rk_test_base_setup, rk_test_base_teardown);
	tcase_set_timeout(tls, 60);
	tcase_add_test(tls, test_tls_round_trip_with_in_memory_pem);
	suite_add_tcase(s, tls);
	return s;
}
