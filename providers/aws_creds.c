/*
 * AWS credentials, region and endpoints (see aws_creds.h), for the aws
 * provider's signer: every Secrets Manager request asks rk_aws_chain_get
 * for the current keys first.
 *
 * The chain is the AWS CLI's (contract 2.8): environment keys, web identity
 * (STS AssumeRoleWithWebIdentity), static keys in the shared credentials
 * file and then the config file, container credentials, EC2 instance
 * metadata. Each source either yields credentials, says it is not set up
 * (the chain goes on, noting why for the final "no credentials" message) or
 * fails (the chain stops: a web identity that STS refuses must not quietly
 * become the instance's role).
 *
 * Invariants: secret strings live only in sodium_malloc'd memory (env copy,
 * tokens, request bodies, cached and handed-out credentials); file buffers
 * and HTTP bodies that held them are wiped; messages name variables, files,
 * lines and endpoints, never values. The chain's mutex guards the cache and
 * the "fetching" flag only: no lock is held across HTTP, so waiting threads
 * can give up at their own deadline.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <jansson.h>
#include <sodium.h>

#include "rekey/http.h"
#include "rekey/log.h"
#include "rekey/provider_kit.h"
#include "rekey/secret.h"
#include "rekey/util.h"
#include "aws_creds.h"

#define ADVISORY_S	(15 * 60)	/* botocore's advisory refresh window */
#define MANDATORY_S	(10 * 60)	/* botocore's mandatory refresh window */
#define ADVISORY_RETRY_MS 30000	/* after a failed advisory refresh, keep the old keys this long */
#define MAX_PROFILE_FILE (256u * 1024)	/* ~/.aws/config and credentials */
#define MAX_WEB_TOKEN	20000	/* STS's limit on WebIdentityToken */
#define MAX_META_BODY	(64u * 1024)	/* instance metadata and container answers */
#define ECS_HOST	"http://169.254.170.2"
#define IMDS_DEFAULT	"http://169.254.169.254"
#define IMDS_DEFAULT_V6	"http://[fd00:ec2::254]"
#define IMDS_TOKEN_TTL	"X-aws-ec2-metadata-token-ttl-seconds: 21600"
#define IMDS_ROLE_PATH	"/latest/meta-data/iam/security-credentials/"

/* The sources in chain order; the names are the sources' words in "tried: ..." */
enum src { SRC_ENV, SRC_WEB, SRC_PROFILE, SRC_CONTAINER, SRC_IMDS, SRC_COUNT };

/* The profile's settings (not its keys), from the config file, then the credentials file. */
struct profile {
	char *region, *endpoint_url, *services, *wi_token_file, *role_arn, *session_name,
		*ignore_endpoints;
	char *svc_sm, *svc_sts;	/* endpoint_url of the services section's secrets_manager / sts */
	int seen;		/* a section for the profile exists in one of the files */
};

static const struct {
	const char *key;
	size_t off;
} profile_keys[] = {
	{ "region", offsetof(struct profile, region) },
	{ "endpoint_url", offsetof(struct profile, endpoint_url) },
	{ "services", offsetof(struct profile, services) },
	{ "web_identity_token_file", offsetof(struct profile, wi_token_file) },
	{ "role_arn", offsetof(struct profile, role_arn) },
	{ "role_session_name", offsetof(struct profile, session_name) },
	{ "ignore_configured_endpoint_urls", offsetof(struct profile, ignore_endpoints) },
};

struct rk_aws_chain {
	char name[32];
	/* The cfg->env copy: strings in one sodium block (they may be keys); NULL: environ. */
	char *envbuf;
	size_t envlen;
	const char **envv;
	int explicit_profile;	/* rekey.yaml named it: environment keys are skipped */
	char *profile;
	char *cred_path, *conf_path;	/* NULL when neither the variable nor HOME is set */
	struct profile prof;
	char region[64];
	char *ep_sm, *ep_sts;
	struct rk_http_cfg sts_cfg;

	pthread_mutex_t mu;	/* guards everything below */
	pthread_cond_t cv;	/* a fetch finished */
	struct rk_aws_creds cur;
	int have;
	int fetching;
	uint64_t fetch_gen;	/* finished fetches */
	int last_rc;		/* and the last one's result, for the threads that waited */
	struct rk_error last_err;
	int64_t advisory_after_ms;	/* monotonic: no advisory refresh before */
	char source[96];
};

/* The STS client's settings when rekey.yaml gives none. */
static const struct rk_http_cfg sts_defaults = {
	.connect_timeout_ms = 5000, .total_timeout_ms = 10000, .max_attempts = 3,
	.base_delay_ms = 200, .max_delay_ms = 2000, .cb_failures = 5, .cb_cooldown_ms = 30000,
	.rps = 0, .burst = 1, .concurrency = 4, .max_response = MAX_META_BODY,
};

/* ---- small helpers ---- */

/* Names the chain's instance and step in err (rk_error_set's first error wins); returns code. */
static int
named(const struct rk_aws_chain *ch, struct rk_error *err, int code)
{
	if (err != NULL && err->provider[0] == '\0')
		snprintf(err->provider, sizeof(err->provider), "%s", ch->name);
	if (err != NULL && err->step[0] == '\0')
		snprintf(err->step, sizeof(err->step), "credentials");
	return code;
}

/* rk_error_set, plus the chain's name: for `return cerr(ch, err, RK_EINVAL, "...", ...)`. */
#define cerr(ch, err, code, ...) named((ch), (err), rk_error_set((err), (code), __VA_ARGS__))

/* A sodium_malloc'd copy of s[0..n), trimmed of surrounding blanks; NULL for want of memory. */
static char *
sdup(const char *s, size_t n)
{
	char *d;

	while (n > 0 && isspace((unsigned char)*s)) {
		s++;
		n--;
	}
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		n--;
	if ((d = sodium_malloc(n + 1)) == NULL)
		return NULL;
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

static void
sfree(char **p)
{
	if (*p != NULL)
		sodium_free(*p);
	*p = NULL;
}

void
rk_aws_creds_clear(struct rk_aws_creds *c)
{
	if (c == NULL)
		return;
	sfree(&c->access_key_id);
	sfree(&c->secret_access_key);
	sfree(&c->session_token);
	memset(c, 0, sizeof(*c));
}

static int
creds_copy(struct rk_aws_creds *dst, const struct rk_aws_creds *src)
{
	memset(dst, 0, sizeof(*dst));
	if ((dst->access_key_id = sdup(src->access_key_id, strlen(src->access_key_id))) == NULL ||
	    (dst->secret_access_key = sdup(src->secret_access_key,
					   strlen(src->secret_access_key))) == NULL ||
	    (src->session_token != NULL &&
	     (dst->session_token = sdup(src->session_token, strlen(src->session_token))) == NULL)) {
		rk_aws_creds_clear(dst);
		return RK_ENOMEM;
	}
	dst->expires_at = src->expires_at;
	memcpy(dst->source, src->source, sizeof(dst->source));
	return 0;
}

/* A variable of the chain's environment; an empty value counts as unset (as botocore's checks do). */
static const char *
env_get(const struct rk_aws_chain *ch, const char *name)
{
	size_t n = strlen(name);
	const char *v = NULL;

	if (ch->envv == NULL) {
		v = getenv(name);
	} else {
		for (const char **e = ch->envv; *e != NULL; e++)
			if (strncmp(*e, name, n) == 0 && (*e)[n] == '=') {
				v = *e + n + 1;
				break;
			}
	}
	return v != NULL && v[0] != '\0' ? v : NULL;
}

static int
is_true(const char *v)
{
	return v != NULL && strcasecmp(v, "true") == 0;
}

static int
env_true(const struct rk_aws_chain *ch, const char *name)
{
	return is_true(env_get(ch, name));
}

static int
copy_env(struct rk_aws_chain *ch, const char *const *env)
{
	size_t n = 0, total = 0, used = 0;

	for (const char *const *e = env; *e != NULL; e++, n++)
		total += strlen(*e) + 1;
	if ((ch->envv = calloc(n + 1, sizeof(*ch->envv))) == NULL ||
	    (ch->envbuf = sodium_malloc(total + 1)) == NULL)
		return RK_ENOMEM;
	ch->envlen = total + 1;
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(env[i]) + 1;
		memcpy(ch->envbuf + used, env[i], len);
		ch->envv[i] = ch->envbuf + used;
		used += len;
	}
	return 0;
}

/*
 * AWS times: "2026-08-22T18:00:00Z", also with a fraction of a second or a
 * ±hh:mm offset (AWS_CREDENTIAL_EXPIRATION is written by other tools).
 */
static int
parse_aws_time(const char *s, int64_t *out)
{
	char base[21];
	const char *p;
	int64_t t;

	if (strlen(s) < 19)
		return -1;
	memcpy(base, s, 19);
	base[19] = 'Z';
	base[20] = '\0';
	if (rk_parse_time(base, &t) < 0)
		return -1;
	p = s + 19;
	if (*p == '.') {
		if (!isdigit((unsigned char)p[1]))
			return -1;
		for (p++; isdigit((unsigned char)*p); p++)
			;
	}
	if ((p[0] == 'Z' || p[0] == 'z') && p[1] == '\0') {
		*out = t;
		return 0;
	}
	if ((p[0] == '+' || p[0] == '-') && isdigit((unsigned char)p[1]) &&
	    isdigit((unsigned char)p[2]) && p[3] == ':' && isdigit((unsigned char)p[4]) &&
	    isdigit((unsigned char)p[5]) && p[6] == '\0') {
		int64_t off = ((p[1] - '0') * 10 + (p[2] - '0')) * 3600 +
			      ((p[4] - '0') * 10 + (p[5] - '0')) * 60;
		*out = p[0] == '+' ? t - off : t + off;
		return 0;
	}
	return -1;
}

/* ---- profile files: a strict INI reader ---- */

/*
 * Called for each section header (key NULL) and each `key = value` (sub
 * NULL) or nested `  sub = value` under a key with no value. The value
 * points into the file buffer, which is wiped afterwards.
 */
typedef int (*ini_fn)(void *arg, const char *section, const char *key, const char *sub,
		      const char *val, const char *path, int line, struct rk_error *err);

static char *
trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/*
 * Splits "key = value" in place; the key is lower-cased (configparser's
 * rule). 0, or -1 when the line is not that shape.
 */
static int
split_kv(char *line, char **key, char **val)
{
	char *eq = strchr(line, '=');

	if (eq == NULL)
		return -1;
	*eq = '\0';
	*key = trim(line);
	*val = trim(eq + 1);
	if ((*key)[0] == '\0' || strpbrk(*key, " \t[]") != NULL)
		return -1;
	for (char *k = *key; *k; k++)
		*k = (char)tolower((unsigned char)*k);
	return 0;
}

/* Parses one line (NUL-terminated, no newline); *section and *parent carry state between lines. */
static int
ini_line(const struct rk_aws_chain *ch, char *s, char **section, char **parent, int *had_value,
	 const char *path, int line, ini_fn fn, void *arg, struct rk_error *err)
{
	int indented = *s == ' ' || *s == '\t';
	char *key, *val;

	s = trim(s);
	if (s[0] == '\0' || s[0] == '#' || s[0] == ';')
		return 0;
	if (!indented && s[0] == '[') {
		size_t n = strlen(s);
		if (n < 3 || s[n - 1] != ']')
			return cerr(ch, err, RK_EINVAL, "%s:%d: a section header must look like "
				    "[name]", path, line);
		s[n - 1] = '\0';
		*section = trim(s + 1);
		*parent = NULL;
		*had_value = 0;
		if ((*section)[0] == '\0')
			return cerr(ch, err, RK_EINVAL, "%s:%d: empty section name", path, line);
		return fn(arg, *section, NULL, NULL, NULL, path, line, err);
	}
	/* The line's text is never quoted: it may be a key. */
	if (split_kv(s, &key, &val) < 0)
		return cerr(ch, err, RK_EINVAL, "%s:%d: expected `key = value` or a [section]",
			    path, line);
	if (*section == NULL)
		return cerr(ch, err, RK_EINVAL, "%s:%d: `%s` comes before any [section]", path,
			    line, key);
	if (indented && *parent != NULL)
		return val[0] ? fn(arg, *section, *parent, key, val, path, line, err) : 0;
	if (indented && *had_value)
		return cerr(ch, err, RK_EINVAL, "%s:%d: an indented line continues `%s`; only a key "
			    "with no value (as in a [services] section) takes nested keys", path,
			    line, key);
	if (val[0] == '\0') {
		*parent = key;
		*had_value = 0;
		return 0;
	}
	*parent = NULL;
	*had_value = 1;
	return fn(arg, *section, key, NULL, val, path, line, err);
}

/*
 * Reads path and calls fn for what it holds. 1 when the file does not
 * exist (not an error: every file is optional), 0, or an error naming
 * path:line. The buffer is wiped: the file may hold keys.
 */
static int
ini_parse(const struct rk_aws_chain *ch, const char *path, ini_fn fn, void *arg,
	  struct rk_error *err)
{
	struct rk_error ferr = { 0 };
	char *buf = NULL, *p, *section = NULL, *parent = NULL;
	size_t len = 0;
	int r, line = 0, had_value = 0;

	if (path == NULL)
		return 1;
	if ((r = rk_read_file(path, MAX_PROFILE_FILE, &buf, &len, &ferr)) < 0) {
		if (r == RK_ENOTFOUND)
			return 1;
		return cerr(ch, err, r, "%s", ferr.msg);
	}
	r = 0;
	for (p = buf; r == 0 && p < buf + len;) {
		char *nl = memchr(p, '\n', (size_t)(buf + len - p));
		char *next = nl ? nl + 1 : buf + len;
		if (nl)
			*nl = '\0';
		line++;
		if (strlen(p) != (size_t)((nl ? nl : buf + len) - p))
			r = cerr(ch, err, RK_EINVAL, "%s:%d: NUL byte in the file", path, line);
		else
			r = ini_line(ch, p, &section, &parent, &had_value, path, line, fn, arg, err);
		p = next;
	}
	rk_wipe_free(buf, len + 1);
	return r;
}

/* The section that holds profile `name` in the config file ("profile x"; "default" bare). */
static int
is_conf_section(const char *section, const char *name)
{
	if (strncmp(section, "profile", 7) == 0 && (section[7] == ' ' || section[7] == '\t')) {
		const char *s = section + 8;
		while (*s == ' ' || *s == '\t')
			s++;
		return strcmp(s, name) == 0;
	}
	return strcmp(name, "default") == 0 && strcmp(section, "default") == 0;
}

struct settings_arg {
	struct rk_aws_chain *ch;
	int conf;		/* parsing the config file (else the credentials file) */
	const char *services;	/* second pass: the services section to read */
};

static int
set_str(char **dst, const char *v)
{
	char *d = strdup(v);

	if (d == NULL)
		return RK_ENOMEM;
	free(*dst);
	*dst = d;
	return 0;
}

/* Collects the profile's settings; keys (aws_*) are read only when credentials are fetched. */
static int
settings_cb(void *argp, const char *section, const char *key, const char *sub, const char *val,
	    const char *path, int line, struct rk_error *err)
{
	struct settings_arg *a = argp;
	struct rk_aws_chain *ch = a->ch;
	struct profile *pr = &ch->prof;
	int r = 0;

	(void)path;
	(void)line;
	if (a->services != NULL) {
		const char *s = section + 9;
		if (key == NULL || sub == NULL || strncmp(section, "services ", 9) != 0)
			return 0;
		while (*s == ' ')
			s++;
		if (strcmp(s, a->services) != 0 || strcmp(sub, "endpoint_url") != 0)
			return 0;
		if (strcmp(key, "secrets_manager") == 0)
			r = set_str(&pr->svc_sm, val);
		else if (strcmp(key, "sts") == 0)
			r = set_str(&pr->svc_sts, val);
		return r < 0 ? cerr(ch, err, r, "out of memory") : 0;
	}
	if (a->conf ? !is_conf_section(section, ch->profile) : strcmp(section, ch->profile) != 0)
		return 0;
	pr->seen = 1;
	if (key == NULL || sub != NULL)
		return 0;
	for (size_t i = 0; i < RK_ARRAY_SIZE(profile_keys); i++)
		if (strcmp(key, profile_keys[i].key) == 0)
			r = set_str((char **)((char *)pr + profile_keys[i].off), val);
	return r < 0 ? cerr(ch, err, r, "out of memory") : 0;
}

static void
profile_free(struct profile *pr)
{
	for (size_t i = 0; i < RK_ARRAY_SIZE(profile_keys); i++)
		free(*(char **)((char *)pr + profile_keys[i].off));
	free(pr->svc_sm);
	free(pr->svc_sts);
	memset(pr, 0, sizeof(*pr));
}

/* The file named by var, else ~/<rel>; NULL when neither can be known. */
static int
file_path(struct rk_aws_chain *ch, const char *var, const char *rel, char **out)
{
	const char *v = env_get(ch, var), *home = env_get(ch, "HOME");

	*out = NULL;
	if (v != NULL)
		*out = strdup(v);
	else if (home != NULL)
		*out = rk_path_join(home, rel);
	else
		return 0;
	return *out == NULL ? RK_ENOMEM : 0;
}

/*
 * Reads the profile's settings: the config file, then the credentials file
 * (whose values win, as botocore merges them), then the services section
 * the profile names.
 */
static int
load_profile(struct rk_aws_chain *ch, struct rk_error *err)
{
	struct settings_arg a = { .ch = ch, .conf = 1 };
	int r;

	if ((r = ini_parse(ch, ch->conf_path, settings_cb, &a, err)) < 0)
		return r;
	a.conf = 0;
	if ((r = ini_parse(ch, ch->cred_path, settings_cb, &a, err)) < 0)
		return r;
	if (ch->prof.services != NULL) {
		a.conf = 1;
		a.services = ch->prof.services;
		if ((r = ini_parse(ch, ch->conf_path, settings_cb, &a, err)) < 0)
			return r;
	}
	return 0;
}

/* ---- region and endpoints ---- */

static int
region_ok(const char *r)
{
	size_t n = strlen(r);

	return n > 0 && n < 40 && isalpha((unsigned char)r[0]) &&
	       strspn(r, "abcdefghijklmnopqrstuvwxyz0123456789-") == n;
}

static int
resolve_region(struct rk_aws_chain *ch, const struct rk_aws_chain_cfg *cfg, struct rk_error *err)
{
	const char *v, *where;

	if ((v = cfg->region) != NULL)
		where = "region in rekey.yaml";
	else if ((v = env_get(ch, "AWS_REGION")) != NULL)
		where = "AWS_REGION";
	else if ((v = env_get(ch, "AWS_DEFAULT_REGION")) != NULL)
		where = "AWS_DEFAULT_REGION";
	else if ((v = ch->prof.region) != NULL)
		where = "the profile's region";
	else
		return cerr(ch, err, RK_EINVAL, "%s: no AWS region: set region: in rekey.yaml, "
			    "AWS_REGION, or region in profile '%s' of %s", ch->name, ch->profile,
			    ch->conf_path ? ch->conf_path : "~/.aws/config");
	if (!region_ok(v))
		return cerr(ch, err, RK_EINVAL, "%s: %s: '%.40s' is not an AWS region name (such "
			    "as eu-west-1)", ch->name, where, v);
	snprintf(ch->region, sizeof(ch->region), "%s", v);
	return 0;
}

/* An endpoint URL as given, without a trailing slash; RK_EINVAL naming where it came from. */
static int
endpoint_set(struct rk_aws_chain *ch, char **dst, const char *url, const char *where,
	     struct rk_error *err)
{
	size_t n = strlen(url);

	if ((strncasecmp(url, "https://", 8) != 0 && strncasecmp(url, "http://", 7) != 0) ||
	    strpbrk(url, " \t\r\n?#") != NULL)
		return cerr(ch, err, RK_EINVAL, "%s: %s: '%.200s' is not an http(s):// endpoint "
			    "URL", ch->name, where, url);
	while (n > 0 && url[n - 1] == '/')
		n--;
	if ((*dst = strndup(url, n)) == NULL)
		return cerr(ch, err, RK_ENOMEM, "out of memory");
	return 0;
}

static int
resolve_endpoint(struct rk_aws_chain *ch, const char *id, const char *cfg_value,
		 const char *svc_value, const char *host, char **dst, struct rk_error *err)
{
	char var[64], def[128];
	const char *v;
	int ignore = env_true(ch, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS") ||
		     is_true(ch->prof.ignore_endpoints);

	snprintf(var, sizeof(var), "AWS_ENDPOINT_URL_%s", id);
	if (cfg_value != NULL)
		return endpoint_set(ch, dst, cfg_value, "endpoint in rekey.yaml", err);
	if (!ignore) {
		if ((v = env_get(ch, var)) != NULL)
			return endpoint_set(ch, dst, v, var, err);
		if ((v = env_get(ch, "AWS_ENDPOINT_URL")) != NULL)
			return endpoint_set(ch, dst, v, "AWS_ENDPOINT_URL", err);
		if (svc_value != NULL)
			return endpoint_set(ch, dst, svc_value, "the profile's services section",
					    err);
		if (ch->prof.endpoint_url != NULL)
			return endpoint_set(ch, dst, ch->prof.endpoint_url,
					    "the profile's endpoint_url", err);
	}
	snprintf(def, sizeof(def), "https://%s.%s.amazonaws.com%s", host, ch->region,
		 strncmp(ch->region, "cn-", 3) == 0 ? ".cn" : "");
	return endpoint_set(ch, dst, def, "the default endpoint", err);
}

const char *
rk_aws_chain_region(const struct rk_aws_chain *ch)
{
	return ch->region;
}

const char *
rk_aws_chain_endpoint(const struct rk_aws_chain *ch, const char *service_id)
{
	if (strcmp(service_id, "SECRETS_MANAGER") == 0)
		return ch->ep_sm;
	if (strcmp(service_id, "STS") == 0)
		return ch->ep_sts;
	return NULL;
}

const char *
rk_aws_chain_source(const struct rk_aws_chain *ch)
{
	return ch->source;
}

/* ---- the chain object ---- */

void
rk_aws_chain_free(struct rk_aws_chain *ch)
{
	if (ch == NULL)
		return;
	rk_aws_creds_clear(&ch->cur);
	profile_free(&ch->prof);
	{
		char **owned[] = { &ch->profile, &ch->cred_path, &ch->conf_path, &ch->ep_sm,
				   &ch->ep_sts };
		for (size_t i = 0; i < RK_ARRAY_SIZE(owned); i++)
			free(*owned[i]);
	}
	rk_http_cfg_free(&ch->sts_cfg);
	if (ch->envbuf != NULL)
		sodium_free(ch->envbuf);
	free(ch->envv);
	pthread_cond_destroy(&ch->cv);
	pthread_mutex_destroy(&ch->mu);
	free(ch);
}

int
rk_aws_chain_new(struct rk_aws_chain **out, const struct rk_aws_chain_cfg *cfg,
		 struct rk_error *err)
{
	struct rk_aws_chain *ch = calloc(1, sizeof(*ch));
	pthread_condattr_t ca;
	const char *p;
	int r;

	if (ch == NULL || sodium_init() < 0) {
		free(ch);
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	}
	pthread_mutex_init(&ch->mu, NULL);
	/* Waits are measured on the monotonic clock, as every deadline is. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ch->cv, &ca);
	pthread_condattr_destroy(&ca);
	snprintf(ch->name, sizeof(ch->name), "%s", cfg->provider_name ? cfg->provider_name : "aws");
	if (cfg->env != NULL && (r = copy_env(ch, cfg->env)) < 0) {
		r = cerr(ch, err, r, "out of memory");
		goto out;
	}
	ch->explicit_profile = cfg->profile != NULL;
	if ((p = cfg->profile) == NULL && (p = env_get(ch, "AWS_PROFILE")) == NULL &&
	    (p = env_get(ch, "AWS_DEFAULT_PROFILE")) == NULL)
		p = "default";
	if ((ch->profile = strdup(p)) == NULL ||
	    file_path(ch, "AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials", &ch->cred_path) < 0 ||
	    file_path(ch, "AWS_CONFIG_FILE", ".aws/config", &ch->conf_path) < 0 ||
	    rk_http_cfg_copy(&ch->sts_cfg, cfg->http ? cfg->http : &sts_defaults) < 0) {
		r = cerr(ch, err, RK_ENOMEM, "out of memory");
		goto out;
	}
	if ((r = load_profile(ch, err)) < 0)
		goto out;
	/* A profile asked for by name must exist, as the CLI says ("could not be found"). */
	if (!ch->prof.seen && strcmp(ch->profile, "default") != 0) {
		r = cerr(ch, err, RK_EINVAL, "%s: AWS profile '%s' is in neither %s nor %s",
			 ch->name, ch->profile, ch->conf_path ? ch->conf_path : "~/.aws/config",
			 ch->cred_path ? ch->cred_path : "~/.aws/credentials");
		goto out;
	}
	if ((r = resolve_region(ch, cfg, err)) < 0 ||
	    (r = resolve_endpoint(ch, "SECRETS_MANAGER", cfg->endpoint, ch->prof.svc_sm,
				  "secretsmanager", &ch->ep_sm, err)) < 0 ||
	    (r = resolve_endpoint(ch, "STS", cfg->sts_endpoint, ch->prof.svc_sts, "sts",
				  &ch->ep_sts, err)) < 0)
		goto out;
	*out = ch;
	ch = NULL;
	r = 0;
out:
	rk_aws_chain_free(ch);
	return r;
}

/* ---- what every source shares ---- */

/*
 * A source: 0 with *out filled (source words included), 1 when it is not
 * set up or has nothing (why says so, for the final message), or an error
 * that stops the chain.
 */
typedef int (*src_fn)(struct rk_aws_chain *ch, const struct rk_call *call,
		      struct rk_aws_creds *out, char *why, size_t whyn, struct rk_error *err);

/* Takes the three sodium strings into *out (NULL token: long-term keys). */
static void
creds_take(struct rk_aws_creds *out, char **id, char **sk, char **tok, int64_t exp)
{
	memset(out, 0, sizeof(*out));
	out->access_key_id = *id;
	out->secret_access_key = *sk;
	out->session_token = *tok;
	out->expires_at = exp;
	*id = *sk = *tok = NULL;
}

/* One request on a client made for it: fetches are minutes apart. Bodies are always wiped. */
static int
http_one(struct rk_aws_chain *ch, const char *base, const struct rk_http_cfg *hc,
	 const struct rk_call *call, const char *method, const char *path,
	 const char *const *hdrs, const void *body, size_t blen, struct rk_http_resp *resp,
	 struct rk_error *err)
{
	const struct rk_http_req req = {
		.method = method, .path = path, .headers = hdrs, .body = body, .body_len = blen,
		.idempotent = RK_HTTP_IDEMPOTENT,	/* every request here only reads */
		.sensitive = 1, .call = call, .priority = call ? call->priority : 0,
	};
	struct rk_http *h = NULL;
	int r;

	memset(resp, 0, sizeof(*resp));
	if ((r = rk_http_new(&h, ch->name, base, hc, err)) < 0)
		return r;
	r = rk_http_do(h, &req, resp, err);
	rk_http_free(h);
	return r;
}

/*
 * The metadata endpoints' client: plain HTTP by nature (link-local or
 * loopback), short timeouts and few attempts as botocore has them, so that
 * a machine without them is not held up for long.
 */
static struct rk_http_cfg
meta_cfg(int64_t timeout_ms, int attempts, int64_t delay_ms)
{
	struct rk_http_cfg c = {
		.connect_timeout_ms = timeout_ms, .total_timeout_ms = timeout_ms,
		.max_attempts = attempts, .base_delay_ms = delay_ms, .max_delay_ms = delay_ms,
		.cb_failures = 1000, .cb_cooldown_ms = 1000, .rps = 0, .burst = 1,
		.concurrency = 1, .max_response = MAX_META_BODY, .insecure_http = 1,
	};
	return c;
}

/* A header "<prefix><value>" in sodium memory (the value is a token). */
static int
secret_header(struct rk_secret **out, const char *prefix, const char *v, size_t n,
	      struct rk_error *err)
{
	size_t pn = strlen(prefix);
	int r;

	if ((r = rk_secret_new(out, pn + n, err)) < 0)
		return r;
	memcpy(rk_secret_data(*out), prefix, pn);
	memcpy(rk_secret_data(*out) + pn, v, n);
	return 0;
}

/*
 * The four fields of a container or instance metadata answer. 1 when one
 * of them is missing (instance metadata then has no credentials), RK_EPROTO
 * when the body is not JSON or the expiration is not a time.
 */
static int
creds_from_json(struct rk_aws_chain *ch, const struct rk_http_resp *resp, const char *where,
		struct rk_aws_creds *out, struct rk_error *err)
{
	static const char *const names[] = { "AccessKeyId", "SecretAccessKey", "Token",
					       "Expiration" };
	json_t *j = json_loadb(resp->body, resp->len, 0, NULL);
	const char *v[4];
	char *id = NULL, *sk = NULL, *tok = NULL;
	int64_t exp;
	int r = 1;

	if (!json_is_object(j)) {
		r = cerr(ch, err, RK_EPROTO, "%s: %s: the answer is not a JSON object", ch->name,
			 where);
		goto out;
	}
	for (int i = 0; i < 4; i++)
		if ((v[i] = json_string_value(json_object_get(j, names[i]))) == NULL || !v[i][0])
			goto out;
	if (parse_aws_time(v[3], &exp) < 0) {
		r = cerr(ch, err, RK_EPROTO, "%s: %s: Expiration is not an ISO 8601 time", ch->name,
			 where);
		goto out;
	}
	if ((id = sdup(v[0], strlen(v[0]))) == NULL || (sk = sdup(v[1], strlen(v[1]))) == NULL ||
	    (tok = sdup(v[2], strlen(v[2]))) == NULL) {
		r = cerr(ch, err, RK_ENOMEM, "out of memory");
		goto out;
	}
	creds_take(out, &id, &sk, &tok, exp);
	r = 0;
out:
	sfree(&id);
	sfree(&sk);
	sfree(&tok);
	json_decref(j);
	return r;
}

/* ---- 1. environment ---- */

static int
src_env(struct rk_aws_chain *ch, const struct rk_call *call, struct rk_aws_creds *out, char *why,
	size_t whyn, struct rk_error *err)
{
	const char *id = env_get(ch, "AWS_ACCESS_KEY_ID"), *sk = env_get(ch, "AWS_SECRET_ACCESS_KEY");
	const char *tok = env_get(ch, "AWS_SESSION_TOKEN"), *exps = env_get(ch, "AWS_CREDENTIAL_EXPIRATION");
	char *i = NULL, *s = NULL, *t = NULL;
	int64_t exp = 0;

	(void)call;
	if (ch->explicit_profile) {
		snprintf(why, whyn, "skipped: rekey.yaml names a profile");
		return 1;
	}
	if (id == NULL || sk == NULL) {
		/* Both or neither: one alone is ignored, as the CLI does. */
		snprintf(why, whyn, "%s", id || sk ? "only one of AWS_ACCESS_KEY_ID and "
			 "AWS_SECRET_ACCESS_KEY set" : "AWS_ACCESS_KEY_ID not set");
		return 1;
	}
	if (tok == NULL)
		tok = env_get(ch, "AWS_SECURITY_TOKEN");	/* botocore's legacy name */
	if (exps != NULL && parse_aws_time(exps, &exp) < 0)
		return cerr(ch, err, RK_EINVAL, "%s: AWS_CREDENTIAL_EXPIRATION is not an ISO 8601 "
			    "time", ch->name);
	if ((i = sdup(id, strlen(id))) == NULL || (s = sdup(sk, strlen(sk))) == NULL ||
	    (tok != NULL && (t = sdup(tok, strlen(tok))) == NULL)) {
		sfree(&i);
		sfree(&s);
		return cerr(ch, err, RK_ENOMEM, "out of memory");
	}
	creds_take(out, &i, &s, &t, exp);
	snprintf(out->source, sizeof(out->source), "environment");
	return 0;
}

/* ---- 2. web identity: STS AssumeRoleWithWebIdentity ---- */

/* Appends s, form-encoded (RFC 3986 unreserved characters kept), at buf + *used. */
static void
form_append(char *buf, size_t *used, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF";

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
			buf[(*used)++] = (char)c;
		} else {
			buf[(*used)++] = '%';
			buf[(*used)++] = hex[c >> 4];
			buf[(*used)++] = hex[c & 15];
		}
	}
}

/*
 * The element <name>…</name> within [s, e): 1 with its content in [*vs, *ve),
 * 0 when absent, -1 when unclosed or there twice (a strict reader: STS
 * writes each once, and anything else is not an answer to trust).
 */
static int
xml_elem(const char *s, const char *e, const char *name, const char **vs, const char **ve)
{
	char open[64], close[64];
	size_t on = (size_t)snprintf(open, sizeof(open), "<%s>", name);
	size_t cn = (size_t)snprintf(close, sizeof(close), "</%s>", name);
	const char *a = memmem(s, (size_t)(e - s), open, on), *b;

	if (a == NULL)
		return 0;
	a += on;
	if ((b = memmem(a, (size_t)(e - a), close, cn)) == NULL ||
	    memmem(b + cn, (size_t)(e - b - cn), open, on) != NULL)
		return -1;
	*vs = a;
	*ve = b;
	return 1;
}

/* UTF-8 of code point c into out; its length, 0 for what is not a character. */
static size_t
utf8_put(unsigned long c, char *out)
{
	if (c == 0 || (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff)
		return 0;
	if (c < 0x80) {
		out[0] = (char)c;
		return 1;
	}
	if (c < 0x800) {
		out[0] = (char)(0xc0 | (c >> 6));
		out[1] = (char)(0x80 | (c & 0x3f));
		return 2;
	}
	if (c < 0x10000) {
		out[0] = (char)(0xe0 | (c >> 12));
		out[1] = (char)(0x80 | ((c >> 6) & 0x3f));
		out[2] = (char)(0x80 | (c & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | (c >> 18));
	out[1] = (char)(0x80 | ((c >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((c >> 6) & 0x3f));
	out[3] = (char)(0x80 | (c & 0x3f));
	return 4;
}

/*
 * Decodes XML character data [s, e) into out (room for e - s + 1 bytes: an
 * entity is never shorter than what it stands for), trimmed. -1 for markup
 * (a nested element), an unknown entity or a bad character reference.
 */
static int
xml_text(const char *s, const char *e, char *out, size_t *outlen)
{
	static const struct {
		const char *name;
		char c;
	} ents[] = { { "amp;", '&' }, { "lt;", '<' }, { "gt;", '>' }, { "quot;", '"' },
		     { "apos;", '\'' } };
	size_t n = 0, k;

	while (s < e && isspace((unsigned char)*s))
		s++;
	while (e > s && isspace((unsigned char)e[-1]))
		e--;
	while (s < e) {
		if (*s == '<')
			return -1;
		if (*s != '&') {
			out[n++] = *s++;
			continue;
		}
		s++;
		for (k = 0; k < RK_ARRAY_SIZE(ents); k++) {
			size_t l = strlen(ents[k].name);
			if ((size_t)(e - s) >= l && memcmp(s, ents[k].name, l) == 0) {
				out[n++] = ents[k].c;
				s += l;
				break;
			}
		}
		if (k < RK_ARRAY_SIZE(ents))
			continue;
		if (s < e && *s == '#') {
			int hexa = s + 1 < e && (s[1] == 'x' || s[1] == 'X');
			const char *d = s + 1 + hexa, *q = d;
			unsigned long c = 0;
			while (q < e && q - d < 8 && (hexa ? isxdigit((unsigned char)*q)
							   : isdigit((unsigned char)*q))) {
				c = c * (hexa ? 16 : 10) +
				    (unsigned long)(isdigit((unsigned char)*q)
							    ? *q - '0'
							    : tolower((unsigned char)*q) - 'a' + 10);
				q++;
			}
			if (q == d || q >= e || *q != ';' || (k = utf8_put(c, out + n)) == 0)
				return -1;
			n += k;
			s = q + 1;
			continue;
		}
		return -1;
	}
	out[n] = '\0';
	*outlen = n;
	return 0;
}

/* The decoded text of leaf <name> inside [s, e) into sodium memory; -1 when absent or not a leaf. */
static int
xml_secret(const char *s, const char *e, const char *name, char **out)
{
	const char *vs, *ve;
	size_t n;

	*out = NULL;
	if (xml_elem(s, e, name, &vs, &ve) != 1)
		return -1;
	if ((*out = sodium_malloc((size_t)(ve - vs) + 1)) == NULL)
		return RK_ENOMEM;
	if (xml_text(vs, ve, *out, &n) < 0 || n == 0) {
		sfree(out);
		return -1;
	}
	return 0;
}

/* STS error codes whose meaning the status alone does not give. */
static const struct {
	const char *code;
	int rc;
} sts_codes[] = {
	{ "InvalidIdentityToken", RK_EAUTH }, { "ExpiredTokenException", RK_EAUTH },
	{ "IDPRejectedClaim", RK_EAUTH }, { "AccessDenied", RK_EAUTH },
	{ "RegionDisabledException", RK_EAUTH }, { "InvalidClientTokenId", RK_EAUTH },
	{ "IDPCommunicationError", RK_ETRANSIENT }, { "Throttling", RK_ETRANSIENT },
	{ "ThrottlingException", RK_ETRANSIENT }, { "RequestLimitExceeded", RK_ETRANSIENT },
	{ "ServiceUnavailable", RK_ETRANSIENT }, { "InternalFailure", RK_ETRANSIENT },
};

/* Decoded text of <name> within [s, e) into a plain buffer (error words, not secrets); "" if none. */
static void
xml_words(const char *s, const char *e, const char *name, char *out, size_t n)
{
	const char *vs, *ve;
	size_t len;

	out[0] = '\0';
	if (xml_elem(s, e, name, &vs, &ve) != 1)
		return;
	if ((size_t)(ve - vs) >= n)
		ve = vs + n - 1;
	if (xml_text(vs, ve, out, &len) < 0) {
		out[0] = '\0';
		return;
	}
	for (char *p = out; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
}

/* An STS ErrorResponse (or any non-200) as the error its code says. */
static int
sts_error(struct rk_aws_chain *ch, const struct rk_http_resp *resp, struct rk_error *err)
{
	const char *e = resp->body + resp->len;
	char code[64], msg[256];
	int rc = rk_kit_status_code(resp->status);

	xml_words(resp->body, e, "Code", code, sizeof(code));
	xml_words(resp->body, e, "Message", msg, sizeof(msg));
	for (size_t i = 0; i < RK_ARRAY_SIZE(sts_codes); i++)
		if (strcmp(code, sts_codes[i].code) == 0)
			rc = sts_codes[i].rc;
	rc = cerr(ch, err, rc, "%s: web identity: STS AssumeRoleWithWebIdentity at %s: HTTP %ld%s%s%s%s",
		  ch->name, ch->ep_sts, resp->status, code[0] ? " " : "", code, msg[0] ? ": " : "",
		  msg);
	err->http_status = (int)resp->status;
	return rc;
}

/* The Credentials of an AssumeRoleWithWebIdentityResponse into *out. */
static int
sts_parse(struct rk_aws_chain *ch, const struct rk_http_resp *resp, struct rk_aws_creds *out,
	  struct rk_error *err)
{
	static const char *const leaves[] = { "AccessKeyId", "SecretAccessKey", "SessionToken",
					      "Expiration" };
	const char *rs, *re, *cs, *ce;
	char *v[4] = { NULL, NULL, NULL, NULL };
	int64_t exp;
	int r;

	if (xml_elem(resp->body, resp->body + resp->len, "AssumeRoleWithWebIdentityResult", &rs,
		     &re) != 1 ||
	    xml_elem(rs, re, "Credentials", &cs, &ce) != 1) {
		r = cerr(ch, err, RK_EPROTO, "%s: web identity: the answer of STS at %s has no "
			 "AssumeRoleWithWebIdentityResult/Credentials", ch->name, ch->ep_sts);
		goto out;
	}
	for (int i = 0; i < 4; i++)
		if ((r = xml_secret(cs, ce, leaves[i], &v[i])) < 0) {
			r = r == RK_ENOMEM ? cerr(ch, err, r, "out of memory")
					   : cerr(ch, err, RK_EPROTO, "%s: web identity: the answer "
						  "of STS at %s has no valid Credentials/%s",
						  ch->name, ch->ep_sts, leaves[i]);
			goto out;
		}
	if (parse_aws_time(v[3], &exp) < 0) {
		r = cerr(ch, err, RK_EPROTO, "%s: web identity: STS at %s: Expiration is not an "
			 "ISO 8601 time", ch->name, ch->ep_sts);
		goto out;
	}
	creds_take(out, &v[0], &v[1], &v[2], exp);
	r = 0;
out:
	for (int i = 0; i < 4; i++)
		sfree(&v[i]);
	return r;
}

/* RoleSessionName: 2-64 of [\w+=,.@-] (the STS model). */
static int
session_name_ok(const char *s)
{
	size_t n = strlen(s);

	return n >= 2 && n <= 64 &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+=,.@-") == n;
}

static int
src_web(struct rk_aws_chain *ch, const struct rk_call *call, struct rk_aws_creds *out, char *why,
	size_t whyn, struct rk_error *err)
{
	static const char ctype[] = "Content-Type: application/x-www-form-urlencoded; charset=utf-8";
	const char *file = env_get(ch, "AWS_WEB_IDENTITY_TOKEN_FILE");
	const char *arn = env_get(ch, "AWS_ROLE_ARN"), *sess = env_get(ch, "AWS_ROLE_SESSION_NAME");
	const char *hdrs[] = { ctype, "Accept: text/xml", NULL };
	struct rk_secret *tok = NULL, *body = NULL;
	struct rk_http_resp resp = { 0 };
	struct rk_http_cfg hc = ch->sts_cfg;
	struct rk_cred_file cf;
	struct rk_error ferr = { 0 };
	char sess_buf[32], *b;
	size_t used = 0, cap;
	int r;

	if (file == NULL)
		file = ch->prof.wi_token_file;
	if (arn == NULL)
		arn = ch->prof.role_arn;
	if (sess == NULL)
		sess = ch->prof.session_name;
	if (file == NULL) {
		snprintf(why, whyn, "AWS_WEB_IDENTITY_TOKEN_FILE not set");
		return 1;
	}
	if (arn == NULL)
		return cerr(ch, err, RK_EINVAL, "%s: web identity: a token file is set but no role: "
			    "set AWS_ROLE_ARN or role_arn in profile '%s'", ch->name, ch->profile);
	if (strncmp(arn, "arn:", 4) != 0 || strlen(arn) > 2048 || strpbrk(arn, " \t\r\n") != NULL)
		return cerr(ch, err, RK_EINVAL, "%s: web identity: the role '%.100s' is not an IAM "
			    "role ARN", ch->name, arn);
	if (sess == NULL) {
		snprintf(sess_buf, sizeof(sess_buf), "rekey-%lld", (long long)time(NULL));
		sess = sess_buf;
	}
	if (!session_name_ok(sess))
		return cerr(ch, err, RK_EINVAL, "%s: web identity: role session name '%.80s' must "
			    "be 2-64 letters, digits or +=,.@_-", ch->name, sess);
	/* Read again at every fetch: the orchestrator rotates the token. */
	rk_cred_file_init(&cf, file, MAX_WEB_TOKEN, 0);
	if ((r = rk_cred_file_read(&cf, 1, &tok, &ferr)) < 0) {
		r = cerr(ch, err, r == RK_ENOTFOUND ? RK_EINVAL : r, "%s: web identity token file: "
			 "%s", ch->name, ferr.msg);
		goto out;
	}
	if (rk_secret_len(tok) < 4) {
		r = cerr(ch, err, RK_EINVAL, "%s: web identity token file %s is shorter than the 4 "
			 "characters STS accepts", ch->name, file);
		goto out;
	}
	cap = 200 + 3 * (strlen(arn) + strlen(sess) + rk_secret_len(tok));
	if ((r = rk_secret_new(&body, cap, err)) < 0)
		goto out;
	b = (char *)rk_secret_data(body);
	used = (size_t)snprintf(b, cap, "Action=AssumeRoleWithWebIdentity&Version=2011-06-15"
				"&DurationSeconds=3600&RoleArn=");
	form_append(b, &used, arn, strlen(arn));
	memcpy(b + used, "&RoleSessionName=", 17);
	used += 17;
	form_append(b, &used, sess, strlen(sess));
	memcpy(b + used, "&WebIdentityToken=", 18);
	used += 18;
	form_append(b, &used, rk_secret_str(tok), rk_secret_len(tok));
	/* The call is unsigned (the model's noAuth): no Authorization header at all. */
	hc.max_response = MAX_META_BODY;
	if ((r = http_one(ch, ch->ep_sts, &hc, call, "POST", "/", hdrs, b, used, &resp, err)) < 0) {
		rk_error_prefix(err, "web identity: STS at %s: ", ch->ep_sts);
		goto out;
	}
	if (resp.status != 200) {
		r = sts_error(ch, &resp, err);
		goto out;
	}
	if ((r = sts_parse(ch, &resp, out, err)) < 0)
		goto out;
	snprintf(out->source, sizeof(out->source), "web identity (%.80s)", arn);
	r = 0;
out:
	rk_http_resp_free(&resp);
	rk_secret_free(body);
	rk_secret_free(tok);
	return r;
}

/* ---- 3. static keys in the shared credentials file, then the config file ---- */

struct keys_arg {
	const struct rk_aws_chain *ch;
	int conf;
	char *id, *sk, *tok;
	int fail;		/* out of memory */
};

static int
keys_cb(void *argp, const char *section, const char *key, const char *sub, const char *val,
	const char *path, int line, struct rk_error *err)
{
	struct keys_arg *a = argp;
	char **dst = NULL;

	(void)path;
	(void)line;
	(void)err;
	if (key == NULL || sub != NULL ||
	    (a->conf ? !is_conf_section(section, a->ch->profile)
		     : strcmp(section, a->ch->profile) != 0))
		return 0;
	if (strcmp(key, "aws_access_key_id") == 0)
		dst = &a->id;
	else if (strcmp(key, "aws_secret_access_key") == 0)
		dst = &a->sk;
	else if (strcmp(key, "aws_session_token") == 0 ||
		 (strcmp(key, "aws_security_token") == 0 && a->tok == NULL))
		dst = &a->tok;
	if (dst == NULL)
		return 0;
	sfree(dst);
	if ((*dst = sdup(val, strlen(val))) == NULL)
		a->fail = 1;
	return 0;
}

static int
src_profile(struct rk_aws_chain *ch, const struct rk_call *call, struct rk_aws_creds *out,
	    char *why, size_t whyn, struct rk_error *err)
{
	const char *paths[2] = { ch->cred_path, ch->conf_path };
	int r = 1;

	(void)call;
	for (int i = 0; i < 2 && r == 1; i++) {
		struct keys_arg a = { .ch = ch, .conf = i == 1 };
		if ((r = ini_parse(ch, paths[i], keys_cb, &a, err)) < 0) {
			/* The reader's messages carry file:line already. */
		} else if (a.fail) {
			r = cerr(ch, err, RK_ENOMEM, "out of memory");
		} else if (a.id != NULL || a.sk != NULL) {
			if (a.id == NULL || a.sk == NULL) {
				r = cerr(ch, err, RK_EINVAL, "%s: profile '%s' in %s has %s but no %s",
					 ch->name, ch->profile, paths[i],
					 a.id ? "aws_access_key_id" : "aws_secret_access_key",
					 a.id ? "aws_secret_access_key" : "aws_access_key_id");
			} else {
				creds_take(out, &a.id, &a.sk, &a.tok, 0);
				snprintf(out->source, sizeof(out->source), "profile %.24s (%.60s)",
					 ch->profile, paths[i]);
				r = 0;
			}
		} else {
			r = 1;
		}
		sfree(&a.id);
		sfree(&a.sk);
		sfree(&a.tok);
	}
	if (r == 1)
		snprintf(why, whyn, "no keys for profile '%.32s'", ch->profile);
	return r;
}

/* ---- 4. container credentials (ECS task roles, EKS Pod Identity) ---- */

/* Hosts a FULL_URI may name over plain http (botocore's list, and loopback). */
static int
container_host_ok(const char *host)
{
	static const char *const names[] = { "localhost", "169.254.170.2", "169.254.170.23" };
	unsigned char a[16], b[16];

	for (size_t i = 0; i < RK_ARRAY_SIZE(names); i++)
		if (strcasecmp(host, names[i]) == 0)
			return 1;
	if (inet_pton(AF_INET, host, a) == 1)
		return a[0] == 127;
	if (inet_pton(AF_INET6, host, a) != 1)
		return 0;
	if (inet_pton(AF_INET6, "fd00:ec2::23", b) == 1 && memcmp(a, b, 16) == 0)
		return 1;
	return inet_pton(AF_INET6, "::1", b) == 1 && memcmp(a, b, 16) == 0;
}

/* AWS_CONTAINER_CREDENTIALS_FULL_URI into a base URL and a path, refusing hosts not allowed. */
static int
container_full_uri(struct rk_aws_chain *ch, const char *uri, char *base, size_t bn, char *path,
		   size_t pn, struct rk_error *err)
{
	static const char var[] = "AWS_CONTAINER_CREDENTIALS_FULL_URI";
	const char *auth, *rest, *hs, *he;
	char host[256];
	size_t sl, alen;
	int https = 0;

	if (strncasecmp(uri, "https://", 8) == 0)
		sl = 8, https = 1;
	else if (strncasecmp(uri, "http://", 7) == 0)
		sl = 7;
	else
		return cerr(ch, err, RK_EINVAL, "%s: %s must be an http:// or https:// URL",
			    ch->name, var);
	auth = uri + sl;
	alen = strcspn(auth, "/?#");
	if (alen == 0 || alen >= bn - sl || memchr(auth, '@', alen) != NULL ||
	    strpbrk(uri, " \t\r\n") != NULL)
		return cerr(ch, err, RK_EINVAL, "%s: %s is not a URL with a plain host", ch->name,
			    var);
	hs = auth;
	if (*auth == '[') {
		hs = auth + 1;
		if ((he = memchr(hs, ']', alen - 1)) == NULL)
			return cerr(ch, err, RK_EINVAL, "%s: %s has an unclosed [", ch->name, var);
	} else if ((he = memchr(auth, ':', alen)) == NULL) {
		he = auth + alen;
	}
	snprintf(host, sizeof(host), "%.*s", (int)(he - hs), hs);
	if (!https && !container_host_ok(host))
		return cerr(ch, err, RK_EINVAL, "%s: %s: host '%s' is not allowed over http://; use "
			    "https://, a loopback address, 169.254.170.2, 169.254.170.23, "
			    "[fd00:ec2::23] or localhost", ch->name, var, host);
	snprintf(base, bn, "%.*s", (int)(sl + alen), uri);
	rest = auth + alen;
	snprintf(path, pn, "%s%.*s", *rest == '/' ? "" : "/", (int)strcspn(rest, "#"), rest);
	return 0;
}

/* The Authorization header, from the token file (read each time) or the variable; *hdr NULL if none. */
static int
container_auth(struct rk_aws_chain *ch, struct rk_secret **hdr, struct rk_error *err)
{
	const char *file = env_get(ch, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
	const char *v = env_get(ch, "AWS_CONTAINER_AUTHORIZATION_TOKEN");
	const char *var = file ? "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"
			       : "AWS_CONTAINER_AUTHORIZATION_TOKEN";
	struct rk_secret *tok = NULL;
	struct rk_error ferr = { 0 };
	struct rk_cred_file cf;
	int r;

	*hdr = NULL;
	if (file != NULL) {
		rk_cred_file_init(&cf, file, 0, 0);
		if ((r = rk_cred_file_read(&cf, 1, &tok, &ferr)) < 0)
			return cerr(ch, err, r == RK_ENOTFOUND ? RK_EINVAL : r, "%s: %s: %s",
				    ch->name, var, ferr.msg);
	} else if (v == NULL) {
		return 0;
	} else if ((r = rk_secret_from(&tok, v, strlen(v), err)) < 0) {
		return r;
	}
	/* A line break would let the value write headers of its own. */
	if (memchr(rk_secret_cdata(tok), '\r', rk_secret_len(tok)) != NULL ||
	    memchr(rk_secret_cdata(tok), '\n', rk_secret_len(tok)) != NULL)
		r = cerr(ch, err, RK_EINVAL, "%s: %s holds a line break; refusing to send it as a "
			 "header", ch->name, var);
	else
		r = secret_header(hdr, "Authorization: ", rk_secret_str(tok), rk_secret_len(tok),
				  err);
	rk_secret_free(tok);
	return r;
}

static int
src_container(struct rk_aws_chain *ch, const struct rk_call *call, struct rk_aws_creds *out,
	      char *why, size_t whyn, struct rk_error *err)
{
	const char *rel = env_get(ch, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
	const char *full = env_get(ch, "AWS_CONTAINER_CREDENTIALS_FULL_URI");
	struct rk_http_cfg hc = meta_cfg(2000, 3, 1000);	/* botocore: 2 s, 3 attempts, 1 s apart */
	struct rk_http_resp resp = { 0 };
	struct rk_secret *auth = NULL;
	const char *hdrs[3] = { "Accept: application/json", NULL, NULL };
	char base[300], path[1024], where[400];
	int r;

	if (rel == NULL && full == NULL) {
		snprintf(why, whyn, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI/FULL_URI not set");
		return 1;
	}
	if (rel != NULL) {	/* the relative URI wins, as in botocore */
		if (rel[0] != '/' || strpbrk(rel, " \t\r\n#") != NULL || strlen(rel) >= sizeof(path))
			return cerr(ch, err, RK_EINVAL, "%s: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI "
				    "must be a path starting with /", ch->name);
		snprintf(base, sizeof(base), "%s", ECS_HOST);
		snprintf(path, sizeof(path), "%s", rel);
	} else if ((r = container_full_uri(ch, full, base, sizeof(base), path, sizeof(path),
					   err)) < 0) {
		return r;
	}
	snprintf(where, sizeof(where), "container credentials at %s%.*s", base,
		 (int)strcspn(path, "?"), path);
	if ((r = container_auth(ch, &auth, err)) < 0)
		goto out;
	if (auth != NULL)
		hdrs[1] = rk_secret_str(auth);
	if ((r = http_one(ch, base, &hc, call, "GET", path, hdrs, NULL, 0, &resp, err)) < 0) {
		rk_error_prefix(err, "%s: ", where);
		goto out;
	}
	if (resp.status != 200) {
		r = cerr(ch, err, rk_kit_status_code(resp.status), "%s: %s: HTTP %ld", ch->name,
			 where, resp.status);
		err->http_status = (int)resp.status;
		goto out;
	}
	if ((r = creds_from_json(ch, &resp, where, out, err)) == 1)
		r = cerr(ch, err, RK_EPROTO, "%s: %s: the answer lacks one of AccessKeyId, "
			 "SecretAccessKey, Token, Expiration", ch->name, where);
	if (r == 0)
		snprintf(out->source, sizeof(out->source), "container credentials");
out:
	rk_http_resp_free(&resp);
	rk_secret_free(auth);
	return r;
}

/* ---- 5. EC2 instance metadata (IMDSv2, IMDSv1 fallback) ---- */

/* The timeout and attempts of AWS_METADATA_SERVICE_TIMEOUT / _NUM_ATTEMPTS (1 s, 1). */
static int
imds_limits(struct rk_aws_chain *ch, int64_t *ms, int *attempts, struct rk_error *err)
{
	const char *t = env_get(ch, "AWS_METADATA_SERVICE_TIMEOUT");
	const char *n = env_get(ch, "AWS_METADATA_SERVICE_NUM_ATTEMPTS");
	long long a = 1;
	char *end;
	double s = 1;

	if (t != NULL) {
		errno = 0;
		s = strtod(t, &end);
		if (errno || *end || !(s >= 0.01 && s <= 60))
			return cerr(ch, err, RK_EINVAL, "%s: AWS_METADATA_SERVICE_TIMEOUT must be "
				    "seconds between 0.01 and 60", ch->name);
	}
	if (n != NULL && rk_parse_int(n, 1, 10, &a) < 0)
		return cerr(ch, err, RK_EINVAL, "%s: AWS_METADATA_SERVICE_NUM_ATTEMPTS must be 1 "
			    "to 10", ch->name);
	*ms = (int64_t)(s * 1000);
	*attempts = (int)a;
	return 0;
}

/* An instance role name as IAM allows them; it goes into a URL path. */
static int
role_name_ok(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > 128)
		return 0;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("+=,.@_-", s[i]))
			return 0;
	return 1;
}

/*
 * The session token: 1 with *tok set, 0 for none (403/404/405, a timeout or
 * any other failure: IMDSv1 may still answer), -1 for a 400 (give up).
 */
static int
imds_token(struct rk_aws_chain *ch, const char *base, const struct rk_http_cfg *hc,
	   const struct rk_call *call, struct rk_secret **tok)
{
	const char *hdrs[] = { IMDS_TOKEN_TTL, NULL };
	struct rk_http_resp resp = { 0 };
	struct rk_error terr = { 0 };
	int r = 0;

	*tok = NULL;
	if (http_one(ch, base, hc, call, "PUT", "/latest/api/token", hdrs, NULL, 0, &resp,
		     &terr) == 0) {
		if (resp.status == 400)
			r = -1;
		else if (resp.status == 200 && resp.len > 0 && resp.len < 4096 &&
			 strcspn(resp.body, "\r\n") == resp.len &&
			 rk_secret_from(tok, resp.body, resp.len, &terr) == 0)
			r = 1;
	}
	rk_http_resp_free(&resp);
	return r;
}

static int
src_imds(struct rk_aws_chain *ch, const struct rk_call *call, struct rk_aws_creds *out,
	 char *why, size_t whyn, struct rk_error *err)
{
	const char *base = env_get(ch, "AWS_EC2_METADATA_SERVICE_ENDPOINT");
	const char *mode = env_get(ch, "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
	struct rk_http_resp resp = { 0 };
	struct rk_secret *tok = NULL, *hdr = NULL;
	struct rk_error lerr = { 0 };
	struct rk_http_cfg hc;
	const char *hdrs[2] = { NULL, NULL };
	char path[256], where[300];
	int64_t ms = 1000;
	int attempts = 1, r, have_tok;
	size_t rn;

	if (env_true(ch, "AWS_EC2_METADATA_DISABLED")) {
		snprintf(why, whyn, "AWS_EC2_METADATA_DISABLED=true");
		return 1;
	}
	if (base == NULL)
		base = mode != NULL && strcasecmp(mode, "IPv6") == 0 ? IMDS_DEFAULT_V6 : IMDS_DEFAULT;
	if ((r = imds_limits(ch, &ms, &attempts, err)) < 0)
		return r;
	hc = meta_cfg(ms, attempts, 0);
	if ((r = rk_http_check(ch->name, base, &hc, &lerr)) < 0)
		return cerr(ch, err, RK_EINVAL, "%s: AWS_EC2_METADATA_SERVICE_ENDPOINT: %s",
			    ch->name, lerr.msg);
	if ((have_tok = imds_token(ch, base, &hc, call, &tok)) < 0) {
		snprintf(why, whyn, "%.80s refused the token request (HTTP 400)", base);
		return 1;
	}
	if (!have_tok && env_true(ch, "AWS_EC2_METADATA_V1_DISABLED")) {
		snprintf(why, whyn, "no IMDSv2 token from %.80s, and AWS_EC2_METADATA_V1_DISABLED=true",
			 base);
		return 1;
	}
	if (have_tok) {
		if ((r = secret_header(&hdr, "X-aws-ec2-metadata-token: ", rk_secret_str(tok),
				       rk_secret_len(tok), err)) < 0)
			goto out;
		hdrs[0] = rk_secret_str(hdr);
	}
	r = 1;
	if (http_one(ch, base, &hc, call, "GET", IMDS_ROLE_PATH, hdrs, NULL, 0, &resp, &lerr) < 0) {
		snprintf(why, whyn, "%.80s not reachable", base);
		goto out;
	}
	rn = strcspn(resp.body, "\r\n");
	if (resp.status != 200 || rn == 0) {
		snprintf(why, whyn, "no instance role at %.80s (HTTP %ld)", base, resp.status);
		goto out;
	}
	if (!role_name_ok(resp.body, rn)) {
		r = cerr(ch, err, RK_EPROTO, "%s: instance metadata at %s: the role listing is not "
			 "a role name", ch->name, base);
		goto out;
	}
	snprintf(path, sizeof(path), "%s%.*s", IMDS_ROLE_PATH, (int)rn, resp.body);
	rk_http_resp_free(&resp);
	snprintf(where, sizeof(where), "instance metadata at %s%s", base, path);
	if (http_one(ch, base, &hc, call, "GET", path, hdrs, NULL, 0, &resp, &lerr) < 0) {
		snprintf(why, whyn, "%.80s not reachable", base);
		goto out;
	}
	if (resp.status != 200) {
		snprintf(why, whyn, "no credentials at %.80s (HTTP %ld)", base, resp.status);
		goto out;
	}
	if ((r = creds_from_json(ch, &resp, where, out, err)) == 1)
		snprintf(why, whyn, "no credentials in the answer of %.80s", base);
	if (r == 0)
		snprintf(out->source, sizeof(out->source), "instance metadata (%s)",
			 have_tok ? "IMDSv2" : "IMDSv1");
out:
	rk_http_resp_free(&resp);
	rk_secret_free(hdr);
	rk_secret_free(tok);
	return r;
}

/* ---- the chain ---- */

static const struct {
	const char *name;
	src_fn fn;
} sources[SRC_COUNT] = {
	[SRC_ENV] = { "environment", src_env },
	[SRC_WEB] = { "web identity", src_web },
	[SRC_PROFILE] = { "profile files", src_profile },
	[SRC_CONTAINER] = { "container", src_container },
	[SRC_IMDS] = { "instance metadata", src_imds },
};

/* Runs the chain in order; the first source that has credentials wins. */
static int
resolve(struct rk_aws_chain *ch, const struct rk_call *call, struct rk_aws_creds *out,
	struct rk_error *err)
{
	char tried[360], why[160];
	size_t used = 0;
	int r;

	tried[0] = '\0';
	for (int i = 0; i < SRC_COUNT; i++) {
		why[0] = '\0';
		if ((r = sources[i].fn(ch, call, out, why, sizeof(why), err)) <= 0)
			return r;
		used += (size_t)snprintf(tried + used, used < sizeof(tried) ? sizeof(tried) - used : 0,
					 "%s%s: %s", used ? "; " : "", sources[i].name, why);
	}
	return cerr(ch, err, RK_EAUTH, "%s: no AWS credentials found (%s); set AWS_ACCESS_KEY_ID "
		    "and AWS_SECRET_ACCESS_KEY, keys or a web identity in profile '%s', or run "
		    "with a task or instance role", ch->name, tried, ch->profile);
}

/* Waits, lock held, until the fetch under way finishes or the call gives up. */
static int
wait_fetch(struct rk_aws_chain *ch, const struct rk_call *call, struct rk_error *err)
{
	uint64_t gen = ch->fetch_gen;

	while (ch->fetch_gen == gen) {
		struct timespec ts;
		if (rk_call_cancelled(call))
			return cerr(ch, err, RK_ECANCELED, "%s: stopped while waiting for AWS "
				    "credentials", ch->name);
		if (rk_call_expired(call))
			return cerr(ch, err, RK_ETRANSIENT, "%s: the deadline passed while waiting "
				    "for AWS credentials being fetched", ch->name);
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += RK_CALL_TICK_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&ch->cv, &ch->mu, &ts);
	}
	return 0;
}

static int
copy_out(struct rk_aws_chain *ch, struct rk_aws_creds *out, struct rk_error *err)
{
	return creds_copy(out, &ch->cur) < 0 ? cerr(ch, err, RK_ENOMEM, "out of memory") : 0;
}

int
rk_aws_chain_get(struct rk_aws_chain *ch, const struct rk_call *call, struct rk_aws_creds *out,
		 struct rk_error *err)
{
	struct rk_aws_creds fresh = { 0 };
	struct rk_error ferr;
	int r;

	pthread_mutex_lock(&ch->mu);
	for (;;) {
		int64_t now = time(NULL), exp = ch->cur.expires_at;
		int usable = ch->have && (exp == 0 || now < exp - MANDATORY_S);

		if (ch->have && (exp == 0 || now < exp - ADVISORY_S)) {
			r = copy_out(ch, out, err);
			goto out_unlock;
		}
		if (ch->fetching) {
			/* In the advisory window the old keys still serve while one thread fetches. */
			if (usable) {
				r = copy_out(ch, out, err);
				goto out_unlock;
			}
			if ((r = wait_fetch(ch, call, err)) < 0)
				goto out_unlock;
			/*
			 * What that fetch got is the freshest the source has, even
			 * inside the mandatory window: fetching again at once would
			 * only ask the same question once per waiting thread.
			 */
			if (ch->last_rc == 0 && ch->have) {
				r = copy_out(ch, out, err);
				goto out_unlock;
			}
			/* That fetch failed, and nothing usable is left: its error is ours too. */
			if (ch->last_rc < 0 && !(ch->have && (ch->cur.expires_at == 0 ||
							      time(NULL) < ch->cur.expires_at - MANDATORY_S))) {
				if (err != NULL && err->code == 0)
					*err = ch->last_err;
				r = ch->last_rc;
				goto out_unlock;
			}
			continue;
		}
		if (usable && rk_mono_ms() < ch->advisory_after_ms) {
			r = copy_out(ch, out, err);
			goto out_unlock;
		}
		ch->fetching = 1;
		pthread_mutex_unlock(&ch->mu);
		memset(&ferr, 0, sizeof(ferr));
		r = resolve(ch, call, &fresh, &ferr);
		pthread_mutex_lock(&ch->mu);
		ch->fetching = 0;
		ch->fetch_gen++;
		ch->last_rc = r;
		ch->last_err = ferr;
		pthread_cond_broadcast(&ch->cv);
		if (r == 0) {
			rk_aws_creds_clear(&ch->cur);
			ch->cur = fresh;
			memset(&fresh, 0, sizeof(fresh));
			ch->have = 1;
			ch->advisory_after_ms = 0;
			memcpy(ch->source, ch->cur.source, sizeof(ch->source));
			rk_log(RK_LOG_DEBUG, "aws.credentials", "provider", ch->name, "source",
			       ch->source, NULL);
			r = copy_out(ch, out, err);
		} else if (usable) {
			/* Advisory: the old keys have ten minutes left; try again a little later. */
			ch->advisory_after_ms = rk_mono_ms() + ADVISORY_RETRY_MS;
			rk_log(RK_LOG_DEBUG, "aws.credentials", "provider", ch->name, "msg",
			       "advisory refresh failed, using the current keys, ignoring", "error",
			       ferr.msg, NULL);
			r = copy_out(ch, out, err);
		} else if (err != NULL && err->code == 0) {
			*err = ferr;
		}
		goto out_unlock;
	}
out_unlock:
	pthread_mutex_unlock(&ch->mu);
	rk_aws_creds_clear(&fresh);
	return r;
}

void
rk_aws_chain_invalidate(struct rk_aws_chain *ch)
{
	pthread_mutex_lock(&ch->mu);
	if (ch->have && ch->cur.session_token != NULL) {
		rk_aws_creds_clear(&ch->cur);
		ch->have = 0;
		ch->advisory_after_ms = 0;
	}
	pthread_mutex_unlock(&ch->mu);
}
