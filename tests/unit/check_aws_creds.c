/*
 * The AWS credential chain (providers/aws_creds.c): each source alone and
 * their order, profile files and their errors at file:line, region and
 * endpoint resolution, the STS, container and instance metadata exchanges
 * against a routed HTTP server in the test process, refresh windows,
 * invalidation and concurrent callers. Every test passes its environment
 * explicitly (HOME is the test's directory), and every error message is
 * checked to hold no secret: all secret values in these tests contain the
 * word S3CRET.
 */
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "rekey/util.h"
#include "../../providers/aws_creds.h"
#include "unit.h"

/* ---- a routed HTTP server on 127.0.0.1 ---------------------------------------- */

/* A reply for METHOD PATH; "@EXP@" in the body becomes now + srv.exp_in seconds. */
struct route {
	const char *method, *path;	/* NULL: the catch-all at the end of a table */
	int status;
	const char *body;
	int delay_ms;
};

#define ROUTE_END { NULL, NULL, 404, "", 0 }
#define LOG_N 32

/* One server per test process (CK_FORK); route tables are static, threads may outlive frames. */
static struct {
	int fd, port;
	pthread_mutex_t mu;
	const struct route *routes;
	int hits[16];
	int reqs;
	int override;		/* non-zero: every request gets this status, empty body */
	int64_t exp_in;
	char log[LOG_N][4096];
} srv = { .mu = PTHREAD_MUTEX_INITIALIZER, .exp_in = 3600 };

/* Reads one request: the head byte by byte up to the blank line, then Content-Length bytes. */
static int
take_request(int fd, char *buf, size_t cap)
{
	size_t len = 0, body = 0;
	const char *cl;

	while (len < 4 || memcmp(buf + len - 4, "\r\n\r\n", 4) != 0) {
		if (len + 1 >= cap || read(fd, buf + len, 1) != 1)
			return -1;
		buf[++len] = '\0';
	}
	if ((cl = strcasestr(buf, "\r\ncontent-length:")) != NULL)
		body = strtoul(cl + 17, NULL, 10);
	if (len + body + 1 > cap)
		return -1;
	for (size_t got = 0; got < body;) {
		ssize_t n = read(fd, buf + len + got, body - got);
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	buf[len + body] = '\0';
	return 0;
}

/* The route for "METHOD /path?query HTTP/1.1" (its index), the catch-all when none fits. */
static int
route_for(const char *req)
{
	size_t ml = strcspn(req, " "), pl = strcspn(req + ml + 1, " ?");
	int i;

	for (i = 0; srv.routes[i].method != NULL; i++)
		if (strlen(srv.routes[i].method) == ml && strncmp(req, srv.routes[i].method, ml) == 0 &&
		    strlen(srv.routes[i].path) == pl &&
		    strncmp(req + ml + 1, srv.routes[i].path, pl) == 0)
			break;
	return i;
}

static void
render(const struct route *rt, int status, char *out, size_t n)
{
	char body[8192], exp[32];
	const char *at = strstr(rt->body, "@EXP@");

	rk_format_time((int64_t)time(NULL) + srv.exp_in, exp, sizeof(exp));
	if (status != rt->status)
		body[0] = '\0';
	else if (at != NULL)
		snprintf(body, sizeof(body), "%.*s%s%s", (int)(at - rt->body), rt->body, exp, at + 5);
	else
		snprintf(body, sizeof(body), "%s", rt->body);
	snprintf(out, n, "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n\r\n%s", status, strlen(body), body);
}

static void *
conn_main(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char req[16384], reply[9000];

	while (take_request(fd, req, sizeof(req)) == 0) {
		struct route rt;
		int i, status;
		pthread_mutex_lock(&srv.mu);
		i = route_for(req);
		rt = srv.routes[i];
		srv.hits[i]++;
		snprintf(srv.log[srv.reqs % LOG_N], sizeof(srv.log[0]), "%s", req);
		srv.reqs++;
		status = srv.override ? srv.override : rt.status;
		render(&rt, status, reply, sizeof(reply));
		pthread_mutex_unlock(&srv.mu);
		if (rt.delay_ms > 0)
			rk_sleep_ms(rt.delay_ms);
		if (send(fd, reply, strlen(reply), MSG_NOSIGNAL) < 0)
			break;
	}
	close(fd);
	return NULL;
}

static void *
accept_main(void *arg)
{
	(void)arg;
	for (;;) {
		pthread_t t;
		int c = accept(srv.fd, NULL, NULL);
		if (c < 0 && errno == EINTR)
			continue;
		if (c < 0)
			return NULL;
		if (pthread_create(&t, NULL, conn_main, (void *)(intptr_t)c) == 0)
			pthread_detach(t);
		else
			close(c);
	}
}

static void
srv_start(const struct route *routes)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	pthread_t t;

	/* Fresh counters, so that the suite also runs without CK_FORK (leak checks). */
	pthread_mutex_lock(&srv.mu);
	srv.routes = routes;
	memset(srv.hits, 0, sizeof(srv.hits));
	srv.reqs = 0;
	srv.override = 0;
	srv.exp_in = 3600;
	pthread_mutex_unlock(&srv.mu);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_ge(srv.fd = socket(AF_INET, SOCK_STREAM, 0), 0);
	ck_assert_int_eq(bind(srv.fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(srv.fd, 64), 0);
	ck_assert_int_eq(getsockname(srv.fd, (struct sockaddr *)&a, &alen), 0);
	srv.port = ntohs(a.sin_port);
	ck_assert_int_eq(pthread_create(&t, NULL, accept_main, NULL), 0);
	pthread_detach(t);
}

static int
hits(int route)
{
	int v;

	pthread_mutex_lock(&srv.mu);
	v = srv.hits[route];
	pthread_mutex_unlock(&srv.mu);
	return v;
}

static int
reqs(void)
{
	int v;

	pthread_mutex_lock(&srv.mu);
	v = srv.reqs;
	pthread_mutex_unlock(&srv.mu);
	return v;
}

/* A copy of request i (0: the first one seen). */
static void
request(int i, char *out, size_t n)
{
	pthread_mutex_lock(&srv.mu);
	snprintf(out, n, "%s", srv.log[i % LOG_N]);
	pthread_mutex_unlock(&srv.mu);
}

static void
srv_set(int override, int64_t exp_in)
{
	pthread_mutex_lock(&srv.mu);
	srv.override = override;
	srv.exp_in = exp_in;
	pthread_mutex_unlock(&srv.mu);
}

/* ---- environments, files and chains ---------------------------------------- */

/* Each test's HOME and files: a directory of its own under the test case's base. */
static char home[128];

static void
home_setup(void)
{
	snprintf(home, sizeof(home), "%s/t-XXXXXX", rk_test_base_dir);
	ck_assert_ptr_nonnull(mkdtemp(home));
}

struct envb {
	char buf[32][600];
	const char *v[33];
	int n;
};

static void env_add(struct envb *e, const char *fmt, ...) RK_PRINTF(2, 3);

static void
env_add(struct envb *e, const char *fmt, ...)
{
	va_list ap;

	ck_assert_int_lt(e->n, 32);
	va_start(ap, fmt);
	vsnprintf(e->buf[e->n], sizeof(e->buf[0]), fmt, ap);
	va_end(ap);
	e->v[e->n] = e->buf[e->n];
	e->v[++e->n] = NULL;
}

/* Drops every NAME=... entry. */
static void
env_del(struct envb *e, const char *name)
{
	size_t n = strlen(name);
	int j = 0;

	for (int i = 0; i < e->n; i++)
		if (!(strncmp(e->buf[i], name, n) == 0 && e->buf[i][n] == '='))
			memmove(e->buf[j++], e->buf[i], sizeof(e->buf[0]));
	e->n = j;
	for (int i = 0; i < e->n; i++)
		e->v[i] = e->buf[i];
	e->v[e->n] = NULL;
}

/* HOME in the test's directory, a region, and instance metadata off unless asked for. */
static void
env_base(struct envb *e, int imds)
{
	e->n = 0;
	e->v[0] = NULL;
	env_add(e, "HOME=%s", home);
	env_add(e, "AWS_REGION=eu-west-1");
	if (imds)
		env_add(e, "AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:%d", srv.port);
	else
		env_add(e, "AWS_EC2_METADATA_DISABLED=true");
}

static const struct rk_http_cfg test_http = {
	.connect_timeout_ms = 500, .total_timeout_ms = 1000, .max_attempts = 1,
	.base_delay_ms = 10, .max_delay_ms = 50, .cb_failures = 100, .cb_cooldown_ms = 1000,
	.burst = 1, .concurrency = 8, .max_response = 1 << 16, .insecure_http = 1,
};

static int
chain_cfg(struct rk_aws_chain **ch, const struct envb *e, const char *profile, const char *region,
	  struct rk_error *err)
{
	struct rk_aws_chain_cfg c = {
		.profile = profile, .region = region, .http = &test_http, .env = e->v,
		.provider_name = "aws",
	};

	return rk_aws_chain_new(ch, &c, err);
}

static struct rk_aws_chain *
chain(const struct envb *e, const char *profile)
{
	struct rk_aws_chain *ch = NULL;
	struct rk_error err = { 0 };

	ck_assert_msg(chain_cfg(&ch, e, profile, NULL, &err) == 0, "%s", err.msg);
	return ch;
}

/* An error never holds a secret: every secret in these tests has the word S3CRET. */
static void
assert_clean(const struct rk_error *err)
{
	ck_assert_msg(strstr(err->msg, "S3CRET") == NULL, "secret in '%s'", err->msg);
	ck_assert_int_ne(err->code, 0);
}

static void
get_ok(struct rk_aws_chain *ch, struct rk_aws_creds *c)
{
	struct rk_error err = { 0 };

	ck_assert_msg(rk_aws_chain_get(ch, NULL, c, &err) == 0, "%s", err.msg);
}

/* The get fails with code, and its message (secret-free) holds want. */
static void
get_fails(struct rk_aws_chain *ch, int code, const char *want)
{
	struct rk_aws_creds c = { 0 };
	struct rk_error err = { 0 };

	ck_assert_int_eq(rk_aws_chain_get(ch, NULL, &c, &err), code);
	ck_assert_ptr_null(c.access_key_id);
	assert_clean(&err);
	ck_assert_msg(strstr(err.msg, want) != NULL, "'%s' not in '%s'", want, err.msg);
}

/* Gets and drops the keys: for tests that count requests. */
static void
get_drop(struct rk_aws_chain *ch)
{
	struct rk_aws_creds c = { 0 };

	get_ok(ch, &c);
	rk_aws_creds_clear(&c);
}

/* A chain made from e (and profile), and the keys it hands out into *c. */
static struct rk_aws_chain *
got(const struct envb *e, const char *profile, struct rk_aws_creds *c)
{
	struct rk_aws_chain *ch = chain(e, profile);

	get_ok(ch, c);
	return ch;
}

static void
done(struct rk_aws_chain *ch, struct rk_aws_creds *c)
{
	rk_aws_creds_clear(c);
	rk_aws_chain_free(ch);
}

/* A chain made from e (and profile) hands out key id `key`. */
static void
expect_key(const struct envb *e, const char *profile, const char *key)
{
	struct rk_aws_creds c = { 0 };
	struct rk_aws_chain *ch = got(e, profile, &c);

	ck_assert_str_eq(c.access_key_id, key);
	done(ch, &c);
}

static void
in_dir(char *out, size_t n, const char *name)
{
	snprintf(out, n, "%s/%s", home, name);
}

/* ~/.aws/<name> under the test's HOME. */
static void
write_aws(const char *name, const char *text)
{
	char p[256];

	in_dir(p, sizeof(p), ".aws");
	(void)mkdir(p, 0700);
	snprintf(p, sizeof(p), "%s/.aws/%s", home, name);
	rk_test_write(p, text);
}

static const char CREDS_FILE[] =
	"# keys\n"
	"[default]\n"
	"aws_access_key_id = AKIADEFAULT\n"
	"aws_secret_access_key = sk-default-S3CRET\n"
	"\n"
	"[ci]\n"
	"aws_access_key_id=AKIACI\n"
	"aws_secret_access_key=sk-ci-S3CRET\n"
	"aws_session_token = tok-ci-S3CRET\n";

/* ---- replies ------------------------------------------------------------- */

#define CONTAINER_JSON                                                                  \
	"{\"AccessKeyId\":\"ASIACONTAINER\",\"SecretAccessKey\":\"sk-container-S3CRET\"," \
	"\"Token\":\"tok-container-S3CRET\",\"Expiration\":\"@EXP@\",\"RoleArn\":\"x\"}"
#define IMDS_JSON                                                                        \
	"{\"Code\":\"Success\",\"Type\":\"AWS-HMAC\",\"AccessKeyId\":\"ASIAIMDS\","       \
	"\"SecretAccessKey\":\"sk-imds-S3CRET\",\"Token\":\"tok-imds-S3CRET\","         \
	"\"Expiration\":\"@EXP@\"}"
#define STS_XML                                                                          \
	"<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\n" \
	"  <AssumeRoleWithWebIdentityResult>\n"                                          \
	"    <SubjectFromWebIdentityToken>system:serviceaccount:rekey:rekey</SubjectFromWebIdentityToken>\n" \
	"    <AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/rekey/s</Arn></AssumedRoleUser>\n" \
	"    <Credentials>\n"                                                           \
	"      <AccessKeyId>ASIAWEB</AccessKeyId>\n"                                     \
	"      <SecretAccessKey>sk&amp;web&lt;S3CRET&gt;</SecretAccessKey>\n"             \
	"      <SessionToken>tok&quot;web&apos;S3CRET&#x2F;&#61;</SessionToken>\n"        \
	"      <Expiration>@EXP@</Expiration>\n"                                         \
	"    </Credentials>\n"                                                          \
	"  </AssumeRoleWithWebIdentityResult>\n"                                         \
	"  <ResponseMetadata><RequestId>c6104cbe</RequestId></ResponseMetadata>\n"       \
	"</AssumeRoleWithWebIdentityResponse>\n"

/* Every endpoint on one server, for the order tests. */
enum { R_STS, R_CONTAINER, R_TOKEN, R_ROLES, R_ROLE };
static const struct route all_routes[] = {
	[R_STS] = { "POST", "/", 200, STS_XML, 0 },
	[R_CONTAINER] = { "GET", "/container", 200, CONTAINER_JSON, 0 },
	[R_TOKEN] = { "PUT", "/latest/api/token", 200, "imds-token-S3CRET", 0 },
	[R_ROLES] = { "GET", "/latest/meta-data/iam/security-credentials/", 200, "rekey-role\nother\n", 0 },
	[R_ROLE] = { "GET", "/latest/meta-data/iam/security-credentials/rekey-role", 200, IMDS_JSON, 0 },
	ROUTE_END,
};

/* The web identity variables: the token file and STS on the server. */
static void
env_web(struct envb *e, const char *token)
{
	char p[256];

	in_dir(p, sizeof(p), "web-token");
	rk_test_write(p, token);
	env_add(e, "AWS_WEB_IDENTITY_TOKEN_FILE=%s", p);
	env_add(e, "AWS_ROLE_ARN=arn:aws:iam::123456789012:role/rekey");
	env_add(e, "AWS_ENDPOINT_URL_STS=http://127.0.0.1:%d", srv.port);
}

static void
env_container(struct envb *e)
{
	env_add(e, "AWS_CONTAINER_CREDENTIALS_FULL_URI=http://127.0.0.1:%d/container", srv.port);
}

/* The server with routes, and a chain whose first source is web identity / container / IMDS. */
static struct rk_aws_chain *
web_chain(const struct route *routes, struct envb *e)
{
	srv_start(routes);
	env_base(e, 0);
	env_web(e, "web-token-S3CRET");
	return chain(e, NULL);
}

static struct rk_aws_chain *
container_chain(const struct route *routes, struct envb *e)
{
	srv_start(routes);
	env_base(e, 0);
	env_container(e);
	return chain(e, NULL);
}

static struct rk_aws_chain *
imds_chain(const struct route *routes, struct envb *e)
{
	srv_start(routes);
	env_base(e, 1);
	return chain(e, NULL);
}

/* ---- environment ------------------------------------------------------------ */

START_TEST(test_env_keys_with_token_and_expiration)
{
	struct envb e;
	struct rk_aws_creds c = { 0 };
	struct rk_aws_chain *ch;

	env_base(&e, 0);
	env_add(&e, "AWS_ACCESS_KEY_ID=AKIAENV");
	env_add(&e, "AWS_SECRET_ACCESS_KEY=sk-env-S3CRET");
	env_add(&e, "AWS_SESSION_TOKEN=tok-env-S3CRET");
	env_add(&e, "AWS_CREDENTIAL_EXPIRATION=2099-01-02T03:04:05.123+01:00");
	ch = chain(&e, NULL);
	ck_assert_str_eq(rk_aws_chain_source(ch), "");
	get_ok(ch, &c);
	ck_assert_str_eq(c.access_key_id, "AKIAENV");
	ck_assert_str_eq(c.secret_access_key, "sk-env-S3CRET");
	ck_assert_str_eq(c.session_token, "tok-env-S3CRET");
	ck_assert_int_eq(c.expires_at, 4071002645LL);	/* 02:04:05Z */
	ck_assert_str_eq(c.source, "environment");
	ck_assert_str_eq(rk_aws_chain_source(ch), "environment");
	rk_aws_creds_clear(&c);
	ck_assert_ptr_null(c.secret_access_key);
	rk_aws_chain_free(ch);
}
END_TEST

START_TEST(test_env_legacy_security_token_and_long_term_keys)
{
	struct envb e;
	struct rk_aws_creds c = { 0 };
	struct rk_aws_chain *ch;

	env_base(&e, 0);
	env_add(&e, "AWS_ACCESS_KEY_ID=AKIAENV");
	env_add(&e, "AWS_SECRET_ACCESS_KEY=sk-env-S3CRET");
	env_add(&e, "AWS_SECURITY_TOKEN=legacy-S3CRET");
	ch = got(&e, NULL, &c);
	ck_assert_str_eq(c.session_token, "legacy-S3CRET");
	done(ch, &c);

	env_del(&e, "AWS_SECURITY_TOKEN");
	ch = got(&e, NULL, &c);
	ck_assert_ptr_null(c.session_token);
	ck_assert_int_eq(c.expires_at, 0);
	done(ch, &c);
}
END_TEST

START_TEST(test_env_needs_both_keys_or_neither)
{
	struct envb e;
	struct rk_aws_chain *ch;

	env_base(&e, 0);
	env_add(&e, "AWS_ACCESS_KEY_ID=AKIAENV");
	ch = chain(&e, NULL);
	get_fails(ch, RK_EAUTH, "only one of AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
	rk_aws_chain_free(ch);

	/* One key alone is ignored: the next source answers. */
	write_aws("credentials", CREDS_FILE);
	env_del(&e, "AWS_ACCESS_KEY_ID");
	env_add(&e, "AWS_SECRET_ACCESS_KEY=sk-env-S3CRET");
	expect_key(&e, NULL, "AKIADEFAULT");
}
END_TEST

START_TEST(test_explicit_profile_skips_env_but_aws_profile_does_not)
{
	struct envb e;
	struct rk_aws_creds c = { 0 };
	struct rk_aws_chain *ch;

	write_aws("credentials", CREDS_FILE);
	env_base(&e, 0);
	env_add(&e, "AWS_ACCESS_KEY_ID=AKIAENV");
	env_add(&e, "AWS_SECRET_ACCESS_KEY=sk-env-S3CRET");
	ch = got(&e, "ci", &c);
	ck_assert_str_eq(c.access_key_id, "AKIACI");
	ck_assert_str_eq(c.session_token, "tok-ci-S3CRET");
	ck_assert_ptr_nonnull(strstr(c.source, "profile ci ("));
	ck_assert_ptr_nonnull(strstr(c.source, ".aws/credentials)"));
	done(ch, &c);

	env_add(&e, "AWS_PROFILE=ci");
	expect_key(&e, NULL, "AKIAENV");
}
END_TEST

/* ---- profile files ---------------------------------------------------------- */

START_TEST(test_aws_profile_selects_the_section)
{
	struct envb e;
	struct rk_aws_creds c = { 0 };
	struct rk_aws_chain *ch;

	write_aws("credentials", CREDS_FILE);
	env_base(&e, 0);
	ch = got(&e, NULL, &c);
	ck_assert_str_eq(c.access_key_id, "AKIADEFAULT");
	ck_assert_str_eq(c.secret_access_key, "sk-default-S3CRET");
	ck_assert_ptr_null(c.session_token);
	done(ch, &c);

	env_add(&e, "AWS_DEFAULT_PROFILE=nosuch");
	env_add(&e, "AWS_PROFILE=ci");	/* wins over AWS_DEFAULT_PROFILE */
	expect_key(&e, NULL, "AKIACI");
}
END_TEST

START_TEST(test_config_wants_profile_prefix_credentials_the_bare_name)
{
	struct envb e;
	struct rk_aws_creds c = { 0 };
	struct rk_aws_chain *ch;
	char p[256];

	in_dir(p, sizeof(p), "creds");
	rk_test_write(p, "[profile ci]\naws_access_key_id = AKIAWRONG1\n"
			 "aws_secret_access_key = sk-S3CRET\n");
	in_dir(p, sizeof(p), "config");
	rk_test_write(p, "[ci]\naws_access_key_id = AKIAWRONG2\naws_secret_access_key = sk-S3CRET\n"
			 "[profile   ci]\naws_access_key_id = AKIACONFIG\n"
			 "aws_secret_access_key = sk-config-S3CRET\n");
	env_base(&e, 0);
	in_dir(p, sizeof(p), "creds");
	env_add(&e, "AWS_SHARED_CREDENTIALS_FILE=%s", p);
	in_dir(p, sizeof(p), "config");
	env_add(&e, "AWS_CONFIG_FILE=%s", p);
	env_add(&e, "AWS_PROFILE=ci");
	ch = got(&e, NULL, &c);
	ck_assert_str_eq(c.access_key_id, "AKIACONFIG");
	ck_assert_ptr_nonnull(strstr(c.source, "/config)"));
	done(ch, &c);

	/* The credentials file is read before the config file. */
	in_dir(p, sizeof(p), "creds");
	rk_test_write(p, "[ci]\naws_access_key_id = AKIACREDS\naws_secret_access_key = sk-S3CRET\n");
	expect_key(&e, NULL, "AKIACREDS");
}
END_TEST

START_TEST(test_malformed_files_name_file_and_line)
{
	struct envb e;
	struct rk_aws_chain *ch = NULL;
	struct rk_error err = { 0 };
	char p[256], want[300];

	/* A line that is not `key = value`, holding a secret that must not be echoed. */
	write_aws("credentials", "[default]\naws_access_key_id = AKIA\n"
				 "aws_secret_access_key wJalrS3CRET\n");
	env_base(&e, 0);
	ck_assert_int_eq(chain_cfg(&ch, &e, NULL, NULL, &err), RK_EINVAL);
	in_dir(p, sizeof(p), ".aws/credentials");
	snprintf(want, sizeof(want), "%s:3: expected `key = value`", p);
	ck_assert_msg(strncmp(err.msg, want, strlen(want)) == 0, "%s", err.msg);
	assert_clean(&err);

	write_aws("credentials", "aws_access_key_id = AKIA\n");
	rk_error_clear(&err);
	ck_assert_int_eq(chain_cfg(&ch, &e, NULL, NULL, &err), RK_EINVAL);
	snprintf(want, sizeof(want), "%s:1: ", p);
	ck_assert_msg(strncmp(err.msg, want, strlen(want)) == 0, "%s", err.msg);

	write_aws("credentials", "[default\nx = y\n");
	rk_error_clear(&err);
	ck_assert_int_eq(chain_cfg(&ch, &e, NULL, NULL, &err), RK_EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, ":1: a section header"));

	/* An indented line under a key that has a value is a continuation: refused. */
	write_aws("credentials", "");
	write_aws("config", "[default]\nregion = eu-west-1\n  more = x\n");
	rk_error_clear(&err);
	ck_assert_int_eq(chain_cfg(&ch, &e, NULL, NULL, &err), RK_EINVAL);
	in_dir(p, sizeof(p), ".aws/config");
	snprintf(want, sizeof(want), "%s:3: ", p);
	ck_assert_msg(strncmp(err.msg, want, strlen(want)) == 0, "%s", err.msg);
	ck_assert_ptr_null(ch);

	/* A key id without its secret. */
	write_aws("config", "[default]\n");
	write_aws("credentials", "[default]\naws_access_key_id = AKIA\n");
	ch = chain(&e, NULL);
	get_fails(ch, RK_EINVAL, "has aws_access_key_id but no aws_secret_access_key");
	rk_aws_chain_free(ch);
}
END_TEST

START_TEST(test_named_profile_must_exist)
{
	struct envb e;
	struct rk_aws_chain *ch = NULL;
	struct rk_error err = { 0 };

	write_aws("credentials", CREDS_FILE);
	env_base(&e, 0);
	env_add(&e, "AWS_PROFILE=nosuch");
	ck_assert_int_eq(chain_cfg(&ch, &e, NULL, NULL, &err), RK_EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "profile 'nosuch'"));
	ck_assert_ptr_null(ch);
}
END_TEST

/* ---- region and endpoints --------------------------------------------------- */

START_TEST(test_region_order_and_missing_region)
{
	struct envb e;
	struct rk_aws_chain *ch = NULL;
	struct rk_error err = { 0 };

	write_aws("config", "[default]\nregion = ap-south-1\n");
	env_base(&e, 0);
	env_add(&e, "AWS_DEFAULT_REGION=us-east-2");
	ck_assert_int_eq(chain_cfg(&ch, &e, NULL, "eu-central-1", &err), 0);
	ck_assert_str_eq(rk_aws_chain_region(ch), "eu-central-1");
	rk_aws_chain_free(ch);
	ch = chain(&e, NULL);
	ck_assert_str_eq(rk_aws_chain_region(ch), "eu-west-1");	/* AWS_REGION */
	rk_aws_chain_free(ch);
	env_del(&e, "AWS_REGION");
	ch = chain(&e, NULL);
	ck_assert_str_eq(rk_aws_chain_region(ch), "us-east-2");
	rk_aws_chain_free(ch);
	env_del(&e, "AWS_DEFAULT_REGION");
	ch = chain(&e, NULL);
	ck_assert_str_eq(rk_aws_chain_region(ch), "ap-south-1");
	rk_aws_chain_free(ch);

	write_aws("config", "[default]\n");
	ch = NULL;
	ck_assert_int_eq(chain_cfg(&ch, &e, NULL, NULL, &err), RK_EINVAL);
	ck_assert_ptr_null(ch);
	ck_assert_ptr_nonnull(strstr(err.msg, "no AWS region"));
	ck_assert_ptr_nonnull(strstr(err.msg, "AWS_REGION"));
	ck_assert_ptr_nonnull(strstr(err.msg, "region: in rekey.yaml"));

	rk_error_clear(&err);
	ck_assert_int_eq(chain_cfg(&ch, &e, NULL, "eu-west-1.evil.com/", &err), RK_EINVAL);
}
END_TEST

START_TEST(test_endpoint_override_order)
{
	struct envb e;
	struct rk_aws_chain *ch = NULL;
	struct rk_aws_chain_cfg cfg = { .endpoint = "https://yaml.example/", .sts_endpoint = "https://yaml-sts.example" };
	struct rk_error err = { 0 };

	write_aws("config", "[profile ci]\nregion = eu-west-1\nendpoint_url = https://profile.example\n"
			    "services = fakes\n\n"
			    "[services fakes]\nsecrets_manager =\n  endpoint_url = https://svc-sm.example\n"
			    "sts =\n  endpoint_url = https://svc-sts.example\n"
			    "[services other]\nsecrets_manager =\n  endpoint_url = https://wrong.example\n");
	env_base(&e, 0);
	env_add(&e, "AWS_PROFILE=ci");
	env_add(&e, "AWS_ENDPOINT_URL_SECRETS_MANAGER=https://env-sm.example");
	env_add(&e, "AWS_ENDPOINT_URL_STS=https://env-sts.example");
	env_add(&e, "AWS_ENDPOINT_URL=https://env-all.example");
	cfg.env = e.v;
	ck_assert_int_eq(rk_aws_chain_new(&ch, &cfg, &err), 0);
	ck_assert_str_eq(rk_aws_chain_endpoint(ch, "SECRETS_MANAGER"), "https://yaml.example");
	ck_assert_str_eq(rk_aws_chain_endpoint(ch, "STS"), "https://yaml-sts.example");
	ck_assert_ptr_null(rk_aws_chain_endpoint(ch, "S3"));
	rk_aws_chain_free(ch);

#define EP(sm, sts)                                                                        \
	do {                                                                               \
		ch = chain(&e, NULL);                                                      \
		ck_assert_str_eq(rk_aws_chain_endpoint(ch, "SECRETS_MANAGER"), sm);        \
		ck_assert_str_eq(rk_aws_chain_endpoint(ch, "STS"), sts);                   \
		rk_aws_chain_free(ch);                                                     \
	} while (0)
	EP("https://env-sm.example", "https://env-sts.example");
	env_del(&e, "AWS_ENDPOINT_URL_SECRETS_MANAGER");
	env_del(&e, "AWS_ENDPOINT_URL_STS");
	EP("https://env-all.example", "https://env-all.example");
	env_del(&e, "AWS_ENDPOINT_URL");
	EP("https://svc-sm.example", "https://svc-sts.example");
	write_aws("config", "[profile ci]\nendpoint_url = https://profile.example\n");
	EP("https://profile.example", "https://profile.example");
	env_add(&e, "AWS_ENDPOINT_URL=https://env-all.example");
	env_add(&e, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true");
	EP("https://secretsmanager.eu-west-1.amazonaws.com", "https://sts.eu-west-1.amazonaws.com");
	/* rekey.yaml's own endpoint is never ignored. */
	cfg.sts_endpoint = NULL;
	cfg.env = e.v;
	ck_assert_int_eq(rk_aws_chain_new(&ch, &cfg, &err), 0);
	ck_assert_str_eq(rk_aws_chain_endpoint(ch, "SECRETS_MANAGER"), "https://yaml.example");
	ck_assert_str_eq(rk_aws_chain_endpoint(ch, "STS"), "https://sts.eu-west-1.amazonaws.com");
	rk_aws_chain_free(ch);
	env_del(&e, "AWS_REGION");
	env_add(&e, "AWS_REGION=cn-north-1");
	EP("https://secretsmanager.cn-north-1.amazonaws.com.cn",
	   "https://sts.cn-north-1.amazonaws.com.cn");
#undef EP
	env_del(&e, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
	env_del(&e, "AWS_ENDPOINT_URL");
	env_add(&e, "AWS_ENDPOINT_URL=ftp://x");
	ck_assert_int_eq(chain_cfg(&ch, &e, NULL, NULL, &err), RK_EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "AWS_ENDPOINT_URL"));
}
END_TEST

/* ---- web identity ------------------------------------------------------------ */

START_TEST(test_web_identity_request_and_answer)
{
	struct envb e;
	struct rk_aws_creds c = { 0 };
	struct rk_aws_chain *ch;
	char req[4096];
	const char *body;

	srv_start(all_routes);
	env_base(&e, 0);
	env_web(&e, "eyJ+web/token=S3CRET\n");
	env_add(&e, "AWS_ROLE_SESSION_NAME=ci@rekey");
	ch = got(&e, NULL, &c);
	ck_assert_str_eq(c.access_key_id, "ASIAWEB");
	ck_assert_str_eq(c.secret_access_key, "sk&web<S3CRET>");
	ck_assert_str_eq(c.session_token, "tok\"web'S3CRET/=");
	ck_assert_int_ge(c.expires_at, (int64_t)time(NULL) + 3500);
	ck_assert_str_eq(c.source, "web identity (arn:aws:iam::123456789012:role/rekey)");
	rk_aws_creds_clear(&c);

	ck_assert_int_eq(hits(R_STS), 1);
	request(0, req, sizeof(req));
	ck_assert_ptr_nonnull(strstr(req, "POST / HTTP/1.1\r\n"));
	ck_assert_ptr_nonnull(strcasestr(req, "\r\nContent-Type: application/x-www-form-urlencoded"));
	ck_assert_ptr_null(strcasestr(req, "\r\nAuthorization:"));
	ck_assert_ptr_nonnull(body = strstr(req, "\r\n\r\n"));
	body += 4;
	ck_assert_ptr_nonnull(strstr(body, "Action=AssumeRoleWithWebIdentity&"));
	ck_assert_ptr_nonnull(strstr(body, "&Version=2011-06-15"));
	ck_assert_ptr_nonnull(strstr(body, "&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Frekey"));
	ck_assert_ptr_nonnull(strstr(body, "&RoleSessionName=ci%40rekey"));
	ck_assert_ptr_nonnull(strstr(body, "&WebIdentityToken=eyJ%2Bweb%2Ftoken%3DS3CRET"));
	ck_assert_ptr_null(strstr(body, "%0A"));	/* the file's newline is not part of it */
	rk_aws_chain_free(ch);
}
END_TEST

START_TEST(test_web_identity_from_profile_with_default_session_name)
{
	struct envb e;
	struct rk_aws_creds c = { 0 };
	struct rk_aws_chain *ch;
	char req[4096], p[256], conf[600];

	srv_start(all_routes);
	in_dir(p, sizeof(p), "tok");
	rk_test_write(p, "profile-token-S3CRET");
	snprintf(conf, sizeof(conf), "[profile ci]\nrole_arn = arn:aws:iam::1:role/p\n"
		 "web_identity_token_file = %s\nsts =\n", p);
	write_aws("config", conf);
	env_base(&e, 0);
	env_add(&e, "AWS_ENDPOINT_URL=http://127.0.0.1:%d", srv.port);
	ch = got(&e, "ci", &c);
	ck_assert_str_eq(c.access_key_id, "ASIAWEB");
	ck_assert_str_eq(c.source, "web identity (arn:aws:iam::1:role/p)");
	rk_aws_creds_clear(&c);
	request(0, req, sizeof(req));
	ck_assert_ptr_nonnull(strstr(req, "&RoleSessionName=rekey-1"));
	ck_assert_ptr_nonnull(strstr(req, "&WebIdentityToken=profile-token-S3CRET"));
	rk_aws_chain_free(ch);
}
END_TEST

START_TEST(test_web_identity_token_file_is_read_again_on_refresh)
{
	struct envb e;
	struct rk_aws_chain *ch;
	char req[4096], p[256];

	srv_start(all_routes);
	srv_set(0, 300);	/* expires in 5 min: inside the mandatory window */
	env_base(&e, 0);
	env_web(&e, "first-token-S3CRET");
	ch = chain(&e, NULL);
	get_drop(ch);
	in_dir(p, sizeof(p), "web-token");
	rk_test_write(p, "second-token-S3CRET");
	get_drop(ch);
	ck_assert_int_eq(hits(R_STS), 2);
	request(0, req, sizeof(req));
	ck_assert_ptr_nonnull(strstr(req, "WebIdentityToken=first-token-S3CRET"));
	request(1, req, sizeof(req));
	ck_assert_ptr_nonnull(strstr(req, "WebIdentityToken=second-token-S3CRET"));
	rk_aws_chain_free(ch);
}
END_TEST

/* ---- the order of the sources ------------------------------------------------------ */

START_TEST(test_chain_order_env_web_profile_container_imds)
{
	static const char *const order[] = { "AKIAENV", "ASIAWEB", "AKIADEFAULT", "ASIACONTAINER",
					     "ASIAIMDS" };
	static const char *const drop[] = { "AWS_ACCESS_KEY_ID", "AWS_WEB_IDENTITY_TOKEN_FILE", NULL,
					    "AWS_CONTAINER_CREDENTIALS_FULL_URI", NULL };
	struct envb e;
	struct rk_aws_creds c = { 0 };
	struct rk_aws_chain *ch;
	char p[256];

	srv_start(all_routes);
	write_aws("credentials", CREDS_FILE);
	env_base(&e, 1);
	env_add(&e, "AWS_ACCESS_KEY_ID=AKIAENV");
	env_add(&e, "AWS_SECRET_ACCESS_KEY=sk-env-S3CRET");
	env_web(&e, "web-token-S3CRET");
	env_container(&e);
	for (size_t i = 0; i < 5; i++) {
		ch = chain(&e, NULL);
		get_ok(ch, &c);
		ck_assert_msg(strcmp(c.access_key_id, order[i]) == 0, "step %zu: %s", i,
			      c.access_key_id);
		rk_aws_creds_clear(&c);
		rk_aws_chain_free(ch);
		if (drop[i] != NULL)
			env_del(&e, drop[i]);
		in_dir(p, sizeof(p), ".aws/credentials");
		if (i == 2)
			ck_assert_int_eq(unlink(p), 0);
	}
	/* Each source was asked only when those before it had nothing. */
	ck_assert_int_eq(hits(R_STS), 1);
	ck_assert_int_eq(hits(R_CONTAINER), 1);
	ck_assert_int_eq(hits(R_ROLE), 1);
}
END_TEST

START_TEST(test_no_source_lists_what_was_tried)
{
	struct envb e;
	struct rk_aws_chain *ch;

	env_base(&e, 0);
	ch = chain(&e, NULL);
	get_fails(ch, RK_EAUTH, "no AWS credentials found");
	get_fails(ch, RK_EAUTH, "environment: AWS_ACCESS_KEY_ID not set");
	get_fails(ch, RK_EAUTH, "web identity: AWS_WEB_IDENTITY_TOKEN_FILE not set");
	get_fails(ch, RK_EAUTH, "profile files: no keys for profile 'default'");
	get_fails(ch, RK_EAUTH, "container: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	get_fails(ch, RK_EAUTH, "instance metadata: AWS_EC2_METADATA_DISABLED=true");
	get_fails(ch, RK_EAUTH, "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
	rk_aws_chain_free(ch);
}
END_TEST

/* ---- instance metadata ------------------------------------------------------------- */

START_TEST(test_imds_v2_token_first_then_role_then_credentials)
{
	struct envb e;
	struct rk_aws_creds c = { 0 };
	struct rk_aws_chain *ch;
	char req[4096];

	ch = imds_chain(all_routes, &e);
	get_ok(ch, &c);
	ck_assert_str_eq(c.access_key_id, "ASIAIMDS");
	ck_assert_str_eq(c.secret_access_key, "sk-imds-S3CRET");
	ck_assert_str_eq(c.session_token, "tok-imds-S3CRET");
	ck_assert_str_eq(c.source, "instance metadata (IMDSv2)");
	rk_aws_creds_clear(&c);
	ck_assert_int_eq(reqs(), 3);
	request(0, req, sizeof(req));
	ck_assert_ptr_nonnull(strstr(req, "PUT /latest/api/token HTTP/1.1\r\n"));
	ck_assert_ptr_nonnull(strcasestr(req, "\r\nX-aws-ec2-metadata-token-ttl-seconds: 21600\r\n"));
	request(1, req, sizeof(req));
	ck_assert_ptr_nonnull(strstr(req, "GET /latest/meta-data/iam/security-credentials/ HTTP"));
	ck_assert_ptr_nonnull(strcasestr(req, "\r\nX-aws-ec2-metadata-token: imds-token-S3CRET\r\n"));
	request(2, req, sizeof(req));
	ck_assert_ptr_nonnull(strstr(req, "GET /latest/meta-data/iam/security-credentials/rekey-role HTTP"));
	ck_assert_ptr_nonnull(strcasestr(req, "\r\nX-aws-ec2-metadata-token: imds-token-S3CRET\r\n"));
	rk_aws_chain_free(ch);
}
END_TEST

static const struct route imds_403[] = {
	{ "PUT", "/latest/api/token", 403, "", 0 },
	{ "GET", "/latest/meta-data/iam/security-credentials/", 200, "rekey-role", 0 },
	{ "GET", "/latest/meta-data/iam/security-credentials/rekey-role", 200, IMDS_JSON, 0 },
	ROUTE_END,
};

START_TEST(test_imds_403_falls_back_to_v1_unless_v1_disabled)
{
	struct envb e;
	struct rk_aws_creds c = { 0 };
	struct rk_aws_chain *ch;
	char req[4096];

	ch = imds_chain(imds_403, &e);
	get_ok(ch, &c);
	ck_assert_str_eq(c.access_key_id, "ASIAIMDS");
	ck_assert_str_eq(c.source, "instance metadata (IMDSv1)");
	rk_aws_creds_clear(&c);
	ck_assert_int_eq(reqs(), 3);
	for (int i = 1; i < 3; i++) {
		request(i, req, sizeof(req));
		ck_assert_ptr_nonnull(strstr(req, "GET /latest/meta-data/"));
		ck_assert_ptr_null(strcasestr(req, "X-aws-ec2-metadata-token:"));
	}
	rk_aws_chain_free(ch);

	env_add(&e, "AWS_EC2_METADATA_V1_DISABLED=true");
	ch = chain(&e, NULL);
	get_fails(ch, RK_EAUTH, "AWS_EC2_METADATA_V1_DISABLED=true");
	ck_assert_int_eq(reqs(), 4);	/* the token PUT only */
	rk_aws_chain_free(ch);
}
END_TEST

START_TEST(test_imds_400_gives_up_and_disabled_sends_nothing)
{
	static const struct route r400[] = {
		{ "PUT", "/latest/api/token", 400, "", 0 },
		{ "GET", "/latest/meta-data/iam/security-credentials/", 200, "rekey-role", 0 },
		ROUTE_END,
	};
	struct envb e;
	struct rk_aws_chain *ch;

	ch = imds_chain(r400, &e);
	get_fails(ch, RK_EAUTH, "refused the token request (HTTP 400)");
	ck_assert_int_eq(reqs(), 1);
	rk_aws_chain_free(ch);

	env_add(&e, "AWS_METADATA_SERVICE_TIMEOUT=0");
	ch = chain(&e, NULL);
	get_fails(ch, RK_EINVAL, "AWS_METADATA_SERVICE_TIMEOUT must be seconds");
	rk_aws_chain_free(ch);

	env_add(&e, "AWS_EC2_METADATA_DISABLED=true");
	ch = chain(&e, NULL);
	get_fails(ch, RK_EAUTH, "AWS_EC2_METADATA_DISABLED=true");
	ck_assert_int_eq(reqs(), 1);
	rk_aws_chain_free(ch);
}
END_TEST

START_TEST(test_imds_token_timeout_means_no_token)
{
	static const struct route slow[] = {
		{ "PUT", "/latest/api/token", 200, "late-S3CRET", 1500 },
		{ "GET", "/latest/meta-data/iam/security-credentials/", 200, "rekey-role", 0 },
		{ "GET", "/latest/meta-data/iam/security-credentials/rekey-role", 200, IMDS_JSON, 0 },
		ROUTE_END,
	};
	struct envb e;
	struct rk_aws_creds c = { 0 };
	struct rk_aws_chain *ch;
	int64_t t0;

	srv_start(slow);
	env_base(&e, 1);
	env_add(&e, "AWS_METADATA_SERVICE_TIMEOUT=0.3");
	ch = chain(&e, NULL);
	t0 = rk_mono_ms();
	get_ok(ch, &c);
	ck_assert_int_lt(rk_mono_ms() - t0, 1400);
	ck_assert_str_eq(c.source, "instance metadata (IMDSv1)");
	done(ch, &c);
}
END_TEST

/* ---- container credentials --------------------------------------------------------- */

START_TEST(test_container_full_uri_host_rules)
{
	static const char *const refused[] = { "http://10.0.0.1/creds", "http://localhost.evil.example/",
					       "http://169.254.170.22/", "http://[fd00:ec2::24]/",
					       "ftp://127.0.0.1/" };
	struct envb e;
	struct rk_aws_creds c = { 0 };
	struct rk_aws_chain *ch;

	ch = container_chain(all_routes, &e);
	get_ok(ch, &c);
	ck_assert_str_eq(c.access_key_id, "ASIACONTAINER");
	ck_assert_str_eq(c.session_token, "tok-container-S3CRET");
	ck_assert_str_eq(c.source, "container credentials");
	done(ch, &c);
	for (size_t i = 0; i < RK_ARRAY_SIZE(refused); i++) {
		env_del(&e, "AWS_CONTAINER_CREDENTIALS_FULL_URI");
		env_add(&e, "AWS_CONTAINER_CREDENTIALS_FULL_URI=%s", refused[i]);
		ch = chain(&e, NULL);
		get_fails(ch, RK_EINVAL, "AWS_CONTAINER_CREDENTIALS_FULL_URI");
		rk_aws_chain_free(ch);
	}
	/* The relative URI wins over the full one (and must be a path). */
	env_add(&e, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI=v2/credentials/x");
	ch = chain(&e, NULL);
	get_fails(ch, RK_EINVAL, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI must be a path");
	rk_aws_chain_free(ch);
	ck_assert_int_eq(reqs(), 1);
}
END_TEST

START_TEST(test_container_authorization_token_file_and_line_breaks)
{
	struct envb e;
	struct rk_aws_chain *ch;
	char req[4096], p[256];

	srv_start(all_routes);
	env_base(&e, 0);
	env_container(&e);
	in_dir(p, sizeof(p), "auth");
	rk_test_write(p, "auth-one-S3CRET\n");
	env_add(&e, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=%s", p);
	env_add(&e, "AWS_CONTAINER_AUTHORIZATION_TOKEN=env-auth-S3CRET");
	ch = chain(&e, NULL);
	get_drop(ch);
	rk_test_write(p, "auth-two-S3CRET");
	rk_aws_chain_invalidate(ch);
	get_drop(ch);
	request(0, req, sizeof(req));
	ck_assert_ptr_nonnull(strstr(req, "\r\nAuthorization: auth-one-S3CRET\r\n"));
	ck_assert_ptr_nonnull(strcasestr(req, "\r\nAccept: application/json\r\n"));
	request(1, req, sizeof(req));
	ck_assert_ptr_nonnull(strstr(req, "\r\nAuthorization: auth-two-S3CRET\r\n"));
	rk_test_write(p, "auth\r\nX-Injected: S3CRET");
	rk_aws_chain_invalidate(ch);
	get_fails(ch, RK_EINVAL, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE holds a line break");
	rk_aws_chain_free(ch);

	env_del(&e, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
	ch = chain(&e, NULL);
	get_drop(ch);
	request(2, req, sizeof(req));
	ck_assert_ptr_nonnull(strstr(req, "\r\nAuthorization: env-auth-S3CRET\r\n"));
	rk_aws_chain_free(ch);
	env_del(&e, "AWS_CONTAINER_AUTHORIZATION_TOKEN");
	env_add(&e, "AWS_CONTAINER_AUTHORIZATION_TOKEN=a\nb-S3CRET");
	ch = chain(&e, NULL);
	get_fails(ch, RK_EINVAL, "AWS_CONTAINER_AUTHORIZATION_TOKEN holds a line break");
	ck_assert_int_eq(reqs(), 3);
	rk_aws_chain_free(ch);
}
END_TEST

/* ---- refresh, invalidation, concurrency -------------------------------------------- */

START_TEST(test_refresh_windows)
{
	struct envb e;
	struct rk_aws_creds c = { 0 };
	struct rk_aws_chain *ch;

	srv_start(all_routes);
	env_base(&e, 0);
	env_container(&e);

	srv_set(0, 20 * 60);	/* outside both windows: cached */
	ch = chain(&e, NULL);
	get_drop(ch);
	get_drop(ch);
	ck_assert_int_eq(hits(R_CONTAINER), 1);
	rk_aws_chain_free(ch);

	srv_set(0, 5 * 60);	/* mandatory: every get fetches */
	ch = chain(&e, NULL);
	get_drop(ch);
	get_drop(ch);
	ck_assert_int_eq(hits(R_CONTAINER), 3);
	/* A failed mandatory refresh is an error. */
	srv_set(500, 5 * 60);
	get_fails(ch, RK_ETRANSIENT, "container credentials");
	rk_aws_chain_free(ch);

	srv_set(0, 12 * 60);	/* advisory: refresh, but keep the old keys when it fails */
	ch = chain(&e, NULL);
	get_drop(ch);
	srv_set(403, 12 * 60);
	get_ok(ch, &c);
	ck_assert_str_eq(c.access_key_id, "ASIACONTAINER");
	rk_aws_creds_clear(&c);
	ck_assert_int_eq(hits(R_CONTAINER), 8);	/* 3, the 500's 3 attempts, 1, the 403 */
	get_ok(ch, &c);	/* the next advisory try waits a while */
	rk_aws_creds_clear(&c);
	ck_assert_int_eq(reqs(), 8);
	rk_aws_chain_free(ch);
}
END_TEST

START_TEST(test_invalidate_drops_temporary_keys_only)
{
	struct envb e;
	struct rk_aws_creds c = { 0 };
	struct rk_aws_chain *ch;

	ch = container_chain(all_routes, &e);
	get_drop(ch);
	rk_aws_chain_invalidate(ch);
	get_drop(ch);
	get_drop(ch);
	ck_assert_int_eq(hits(R_CONTAINER), 2);
	rk_aws_chain_free(ch);

	/* Long-term keys: invalidate does not re-read the file. */
	write_aws("credentials", CREDS_FILE);
	env_del(&e, "AWS_CONTAINER_CREDENTIALS_FULL_URI");
	ch = chain(&e, NULL);
	get_drop(ch);
	write_aws("credentials", "[default]\naws_access_key_id = AKIANEW\n"
				 "aws_secret_access_key = sk-S3CRET\n");
	rk_aws_chain_invalidate(ch);
	get_ok(ch, &c);
	ck_assert_str_eq(c.access_key_id, "AKIADEFAULT");
	done(ch, &c);
}
END_TEST

static const struct route slow_container[] = {
	{ "GET", "/container", 200, CONTAINER_JSON, 400 },
	ROUTE_END,
};

struct getter {
	struct rk_aws_chain *ch;
	struct rk_call call;
	int rc;
	struct rk_error err;
	char key[32];
};

static void *
getter_main(void *arg)
{
	struct getter *g = arg;
	struct rk_aws_creds c = { 0 };

	g->rc = rk_aws_chain_get(g->ch, &g->call, &c, &g->err);
	if (g->rc == 0)
		snprintf(g->key, sizeof(g->key), "%s", c.access_key_id);
	rk_aws_creds_clear(&c);
	return NULL;
}

/* Eight threads get at once; their results in g. */
static void
run_getters(struct rk_aws_chain *ch, struct getter g[8])
{
	pthread_t t[8];

	memset(g, 0, 8 * sizeof(*g));
	for (int i = 0; i < 8; i++) {
		g[i].ch = ch;
		ck_assert_int_eq(pthread_create(&t[i], NULL, getter_main, &g[i]), 0);
	}
	for (int i = 0; i < 8; i++)
		pthread_join(t[i], NULL);
}

START_TEST(test_concurrent_gets_fetch_once)
{
	struct envb e;
	struct rk_aws_chain *ch;
	struct getter g[8];
	int before;

	ch = container_chain(slow_container, &e);
	run_getters(ch, g);
	for (int i = 0; i < 8; i++) {
		ck_assert_msg(g[i].rc == 0, "%s", g[i].err.msg);
		ck_assert_str_eq(g[i].key, "ASIACONTAINER");
	}
	ck_assert_int_eq(hits(0), 1);

	/* A failed fetch is not repeated by each waiter: they share its error. */
	srv_set(403, 3600);
	rk_aws_chain_invalidate(ch);
	run_getters(ch, g);
	for (int i = 0; i < 8; i++) {
		ck_assert_int_eq(g[i].rc, RK_EAUTH);
		ck_assert_ptr_nonnull(strstr(g[i].err.msg, "HTTP 403"));
	}
	ck_assert_int_eq(hits(0), 2);

	/* Keys already inside the mandatory window: the waiters take them, not fetch again. */
	srv_set(0, 5 * 60);
	before = hits(0);
	run_getters(ch, g);
	for (int i = 0; i < 8; i++)
		ck_assert_msg(g[i].rc == 0, "%s", g[i].err.msg);
	ck_assert_int_eq(hits(0) - before, 1);
	rk_aws_chain_free(ch);
}
END_TEST

START_TEST(test_waiter_gives_up_at_its_deadline_or_cancel)
{
	static const struct route slower[] = { { "GET", "/container", 200, CONTAINER_JSON, 1500 },
					       ROUTE_END };
	struct envb e;
	struct rk_aws_chain *ch;
	struct getter slow, waiter;
	pthread_t t, w;
	atomic_int stop = 0;
	int64_t t0;

	ch = container_chain(slower, &e);
	memset(&slow, 0, sizeof(slow));
	memset(&waiter, 0, sizeof(waiter));
	slow.ch = waiter.ch = ch;
	ck_assert_int_eq(pthread_create(&t, NULL, getter_main, &slow), 0);
	while (reqs() == 0)
		rk_sleep_ms(5);
	t0 = rk_mono_ms();
	waiter.call.deadline_ms = t0 + 200;
	ck_assert_int_eq(pthread_create(&w, NULL, getter_main, &waiter), 0);
	pthread_join(w, NULL);
	ck_assert_int_eq(waiter.rc, RK_ETRANSIENT);
	ck_assert_int_lt(rk_mono_ms() - t0, 1000);
	memset(&waiter, 0, sizeof(waiter));
	waiter.ch = ch;
	waiter.call.cancel = &stop;
	atomic_store(&stop, 1);
	ck_assert_int_eq(pthread_create(&w, NULL, getter_main, &waiter), 0);
	pthread_join(w, NULL);
	ck_assert_int_eq(waiter.rc, RK_ECANCELED);
	pthread_join(t, NULL);
	ck_assert_int_eq(slow.rc, 0);
	rk_aws_chain_free(ch);
}
END_TEST

/* ---- malformed and refused answers --------------------------------------------------- */

static const struct route sts_refused[] = {
	{ "POST", "/", 400,
	  "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error>"
	  "<Type>Sender</Type><Code>InvalidIdentityToken</Code>"
	  "<Message>Couldn&apos;t retrieve verification key</Message></Error>"
	  "<RequestId>r1</RequestId></ErrorResponse>", 0 },
	ROUTE_END,
};
static const struct route sts_idp[] = {
	{ "POST", "/", 400, "<ErrorResponse><Error><Code>IDPCommunicationError</Code>"
			    "<Message>try later</Message></Error></ErrorResponse>", 0 },
	ROUTE_END,
};
static const struct route sts_html[] = { { "POST", "/", 200, "<html>proxy</html>", 0 }, ROUTE_END };
static const struct route sts_entity[] = {
	{ "POST", "/", 200, "<AssumeRoleWithWebIdentityResult><Credentials>"
			    "<AccessKeyId>A</AccessKeyId><SecretAccessKey>x&bogus;S3CRET</SecretAccessKey>"
			    "<SessionToken>t</SessionToken><Expiration>@EXP@</Expiration>"
			    "</Credentials></AssumeRoleWithWebIdentityResult>", 0 },
	ROUTE_END,
};
static const struct route sts_twice[] = {
	{ "POST", "/", 200, "<AssumeRoleWithWebIdentityResult><Credentials>"
			    "<AccessKeyId>A</AccessKeyId><AccessKeyId>B</AccessKeyId>"
			    "<SecretAccessKey>s</SecretAccessKey>"
			    "<SessionToken>t</SessionToken><Expiration>@EXP@</Expiration>"
			    "</Credentials></AssumeRoleWithWebIdentityResult>", 0 },
	ROUTE_END,
};
static const struct route sts_bad_time[] = {
	{ "POST", "/", 200, "<AssumeRoleWithWebIdentityResult><Credentials>"
			    "<AccessKeyId>A</AccessKeyId><SecretAccessKey>s-S3CRET</SecretAccessKey>"
			    "<SessionToken>t</SessionToken><Expiration>tomorrow</Expiration>"
			    "</Credentials></AssumeRoleWithWebIdentityResult>", 0 },
	ROUTE_END,
};
static const struct route imds_partial[] = {
	{ "PUT", "/latest/api/token", 200, "t", 0 },
	{ "GET", "/latest/meta-data/iam/security-credentials/", 200, "rekey-role", 0 },
	{ "GET", "/latest/meta-data/iam/security-credentials/rekey-role", 200,
	  "{\"Code\":\"AssumeRoleUnauthorizedAccess\",\"AccessKeyId\":\"A\","
	  "\"SecretAccessKey\":\"s-S3CRET\",\"Expiration\":\"@EXP@\"}", 0 },
	ROUTE_END,
};
static const struct route imds_html[] = {
	{ "PUT", "/latest/api/token", 200, "t", 0 },
	{ "GET", "/latest/meta-data/iam/security-credentials/", 200, "rekey-role", 0 },
	{ "GET", "/latest/meta-data/iam/security-credentials/rekey-role", 200, "<html>", 0 },
	ROUTE_END,
};
static const struct route imds_bad_role[] = {
	{ "PUT", "/latest/api/token", 200, "t", 0 },
	{ "GET", "/latest/meta-data/iam/security-credentials/", 200, "../../etc", 0 },
	ROUTE_END,
};
static const struct route container_denied[] = {
	{ "GET", "/container", 403, "{\"message\":\"no\"}", 0 }, ROUTE_END
};
static const struct route container_partial[] = {
	{ "GET", "/container", 200, "{\"AccessKeyId\":\"A\",\"SecretAccessKey\":\"s-S3CRET\"}", 0 },
	ROUTE_END,
};

/* An answer, the source that gets it, and the code and words of the error. */
static const struct {
	struct rk_aws_chain *(*make)(const struct route *routes, struct envb *e);
	const struct route *routes;
	int code;
	const char *want, *want2;
} bad_answers[] = {
	{ web_chain, sts_refused, RK_EAUTH,
	  "HTTP 400 InvalidIdentityToken: Couldn't retrieve verification key",
	  "STS AssumeRoleWithWebIdentity at http://127.0.0.1:" },
	{ web_chain, sts_idp, RK_ETRANSIENT, "IDPCommunicationError: try later", "HTTP 400" },
	{ web_chain, sts_html, RK_EPROTO, "has no AssumeRoleWithWebIdentityResult/Credentials",
	  "STS at http://127.0.0.1:" },
	{ web_chain, sts_entity, RK_EPROTO, "no valid Credentials/SecretAccessKey", "web identity" },
	{ web_chain, sts_twice, RK_EPROTO, "no valid Credentials/AccessKeyId", "web identity" },
	{ web_chain, sts_bad_time, RK_EPROTO, "Expiration is not an ISO 8601 time", "STS at" },
	{ imds_chain, imds_partial, RK_EAUTH, "instance metadata: no credentials in the answer",
	  "no AWS credentials found" },
	{ imds_chain, imds_html, RK_EPROTO, "security-credentials/rekey-role: the answer is not "
	  "a JSON object", "instance metadata at http://127.0.0.1:" },
	{ imds_chain, imds_bad_role, RK_EPROTO, "the role listing is not a role name",
	  "instance metadata at" },
	{ container_chain, container_denied, RK_EAUTH, "/container: HTTP 403",
	  "container credentials at http://127.0.0.1:" },
	{ container_chain, container_partial, RK_EPROTO,
	  "lacks one of AccessKeyId, SecretAccessKey, Token, Expiration", "container credentials" },
};

START_TEST(test_bad_answers_give_their_code_and_name_the_endpoint)
{
	struct envb e;
	struct rk_aws_chain *ch = bad_answers[_i].make(bad_answers[_i].routes, &e);

	get_fails(ch, bad_answers[_i].code, bad_answers[_i].want);
	get_fails(ch, bad_answers[_i].code, bad_answers[_i].want2);
	rk_aws_chain_free(ch);
}
END_TEST

START_TEST(test_web_identity_token_file_without_role_is_einval)
{
	struct envb e;
	struct rk_aws_chain *ch;

	env_base(&e, 0);
	env_web(&e, "web-token-S3CRET");
	env_del(&e, "AWS_ROLE_ARN");
	ch = chain(&e, NULL);
	get_fails(ch, RK_EINVAL, "set AWS_ROLE_ARN or role_arn");
	rk_aws_chain_free(ch);
}
END_TEST

Suite *
aws_creds_suite(void)
{
	Suite *s = suite_create("aws_creds");
	TCase *files = tcase_create("files");
	TCase *net = tcase_create("net");

	tcase_add_unchecked_fixture(files, rk_test_base_setup, rk_test_base_teardown);
	tcase_add_checked_fixture(files, home_setup, NULL);
	tcase_add_test(files, test_env_keys_with_token_and_expiration);
	tcase_add_test(files, test_env_legacy_security_token_and_long_term_keys);
	tcase_add_test(files, test_env_needs_both_keys_or_neither);
	tcase_add_test(files, test_explicit_profile_skips_env_but_aws_profile_does_not);
	tcase_add_test(files, test_aws_profile_selects_the_section);
	tcase_add_test(files, test_config_wants_profile_prefix_credentials_the_bare_name);
	tcase_add_test(files, test_malformed_files_name_file_and_line);
	tcase_add_test(files, test_named_profile_must_exist);
	tcase_add_test(files, test_region_order_and_missing_region);
	tcase_add_test(files, test_endpoint_override_order);
	tcase_add_test(files, test_no_source_lists_what_was_tried);
	suite_add_tcase(s, files);

	/* Real sockets and timeouts; sanitizers slow them down. */
	tcase_set_timeout(net, 30);
	tcase_add_unchecked_fixture(net, rk_test_base_setup, rk_test_base_teardown);
	tcase_add_checked_fixture(net, home_setup, NULL);
	tcase_add_test(net, test_web_identity_request_and_answer);
	tcase_add_test(net, test_web_identity_from_profile_with_default_session_name);
	tcase_add_test(net, test_web_identity_token_file_is_read_again_on_refresh);
	tcase_add_test(net, test_chain_order_env_web_profile_container_imds);
	tcase_add_test(net, test_imds_v2_token_first_then_role_then_credentials);
	tcase_add_test(net, test_imds_403_falls_back_to_v1_unless_v1_disabled);
	tcase_add_test(net, test_imds_400_gives_up_and_disabled_sends_nothing);
	tcase_add_test(net, test_imds_token_timeout_means_no_token);
	tcase_add_test(net, test_container_full_uri_host_rules);
	tcase_add_test(net, test_container_authorization_token_file_and_line_breaks);
	tcase_add_test(net, test_refresh_windows);
	tcase_add_test(net, test_invalidate_drops_temporary_keys_only);
	tcase_add_test(net, test_concurrent_gets_fetch_once);
	tcase_add_test(net, test_waiter_gives_up_at_its_deadline_or_cancel);
	tcase_add_loop_test(net, test_bad_answers_give_their_code_and_name_the_endpoint, 0,
			    (int)RK_ARRAY_SIZE(bad_answers));
	tcase_add_test(net, test_web_identity_token_file_without_role_is_einval);
	suite_add_tcase(s, net);
	return s;
}
