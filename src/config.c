/*
 * Loading and validating rekey.yaml. Nothing here opens a provider: that
 * happens lazily, so `rekey list` works while Vault is down. Each provider
 * block is still validated fully here (its check_config: no connection, no
 * file created or read), so every command refuses a bad one with exit 2.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rekey/config.h"
#include "rekey/inventory.h"
#include "rekey/provider.h"
#include "rekey/util.h"

static const char default_config[] =
	"state_dir: ./var\n"
	"providers:\n"
	"  local: {type: local}\n";

static const struct rk_field top_fields[] = {
	{ "state_dir", RK_T_STRING, 0 },
	{ "environment", RK_T_STRING, 0 },
	{ "policy_dir", RK_T_STRING, 0 },
	{ "providers", RK_T_OBJECT, 0 },
	{ "server", RK_T_OBJECT, 0 },
	{ "scheduler", RK_T_OBJECT, 0 },
	{ "backup", RK_T_OBJECT, 0 },
	{ "ha", RK_T_OBJECT, 0 },
	{ NULL, 0, 0 },
};

static const struct rk_field server_fields[] = {
	{ "listen", RK_T_STRING, 0 },
	{ "token_file", RK_T_STRING, 0 },
	{ "tls_cert_file", RK_T_STRING, 0 },
	{ "tls_key_file", RK_T_STRING, 0 },
	{ "max_body_bytes", RK_T_INT, 0 },
	{ "rate_limit", RK_T_OBJECT, 0 },
	{ "status_page", RK_T_STRING, 0 },
	{ NULL, 0, 0 },
};

static const struct rk_field rate_fields[] = {
	{ "rps", RK_T_ANY, 0 },
	{ "burst", RK_T_INT, 0 },
	{ NULL, 0, 0 },
};

static const struct rk_field scheduler_fields[] = {
	{ "jitter", RK_T_DURATION, 0 },
	{ "parallel", RK_T_INT, 0 },
	{ "max_sleep", RK_T_DURATION, 0 },
	{ "audit_verify_every", RK_T_DURATION, 0 },
	{ NULL, 0, 0 },
};

static const struct rk_field backup_fields[] = {
	{ "dir", RK_T_STRING, 0 },
	{ "key_file", RK_T_STRING, 0 },
	{ "every", RK_T_DURATION, 0 },
	{ "keep", RK_T_INT, 0 },
	{ NULL, 0, 0 },
};

static const struct rk_field ha_fields[] = {
	{ "lease", RK_T_OBJECT, RK_F_REQUIRED },
	{ NULL, 0, 0 },
};

static const struct rk_field lease_fields[] = {
	{ "provider", RK_T_STRING, RK_F_REQUIRED },
	{ "namespace", RK_T_STRING, 0 },
	{ "name", RK_T_STRING, RK_F_REQUIRED },
	{ "duration", RK_T_DURATION, 0 },
	{ "skew_margin", RK_T_DURATION, 0 },
	{ NULL, 0, 0 },
};

#define HA_DURATION_MAX_MS (3600 * 1000LL)

void
rk_config_free(struct rk_config *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < c->nproviders; i++)
		free(c->providers[i].name);
	free(c->providers);
	json_decref(c->local_default);
	free(c->path);
	free(c->state_dir);
	free(c->environment);
	free(c->policy_dir);
	free(c->server.listen);
	free(c->server.token_file);
	free(c->server.tls_cert_file);
	free(c->server.tls_key_file);
	free(c->backup.dir);
	free(c->backup.key_file);
	rk_doc_free(c->doc);
	free(c);
}

static int
valid_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 63)
		return 0;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' ||
		      *s == '_'))
			return 0;
	return 1;
}

/* "local, vault, aws": the registered types having all the caps in need. */
static void
type_list(char *buf, size_t n, unsigned need)
{
	size_t used = 0;

	buf[0] = '\0';
	for (const struct rk_provider_ops *const *t = rk_provider_types(); *t; t++)
		if (((*t)->caps & need) == need && used < n)
			used += (size_t)snprintf(buf + used, n - used, "%s%s", used ? ", " : "",
						 (*t)->type);
}

static int
load_providers(struct rk_config *c, const json_t *provs, struct rk_error *err)
{
	const char *name;
	json_t *p;
	size_t n = provs ? json_object_size(provs) : 0;
	int have_local = 0;

	/* One extra slot: `local` is always present even when not written. */
	if ((c->providers = calloc(n + 1, sizeof(*c->providers))) == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	if (provs != NULL) {
		json_object_foreach((json_t *)provs, name, p) {
			struct rk_config_provider *cp = &c->providers[c->nproviders];
			struct rk_provider_env env;
			const char *type;
			char what[128];
			int r;

			if (!valid_name(name))
				return rk_doc_error_key(err, c->doc, provs, name, RK_EINVAL,
							"provider name '%s' must be 1-63 characters "
							"of a-z, 0-9, '-' and '_'", name);
			if (!json_is_object(p))
				return rk_doc_error_key(err, c->doc, provs, name, RK_EINVAL,
							"provider '%s' must be a mapping with a "
							"'type' key", name);
			type = rk_doc_str(p, "type", NULL);
			if (type == NULL)
				return rk_doc_error(err, c->doc, p, RK_EINVAL,
						    "provider '%s' is missing the required key "
						    "'type'", name);
			if ((cp->ops = rk_provider_find_type(type)) == NULL) {
				char known[200];
				type_list(known, sizeof(known), 0);
				return rk_doc_error_key(err, c->doc, p, "type", RK_EINVAL,
							"unknown provider type '%s' (known: %s)",
							type, known);
			}
			snprintf(what, sizeof(what), "provider '%s'", name);
			if ((r = rk_doc_check(c->doc, p, cp->ops->config_fields, what, err)) < 0)
				return r;
			/* The provider's own rules too, so that no command finds them late. */
			env.name = name;
			env.state_dir = c->state_dir;
			env.local_key = NULL;
			env.doc = c->doc;
			if ((r = rk_provider_check_config(cp->ops, &env, p, err)) < 0)
				return r;
			if ((cp->name = strdup(name)) == NULL)
				return rk_error_set(err, RK_ENOMEM, "out of memory");
			cp->cfg = p;
			c->nproviders++;
			if (strcmp(name, "local") == 0)
				have_local = 1;
		}
	}
	if (!have_local) {
		/* The embedded default is always there (design: "always present"). */
		struct rk_config_provider *cp = &c->providers[c->nproviders];
		if ((c->local_default = json_pack("{s:s}", "type", "local")) == NULL)
			return rk_error_set(err, RK_ENOMEM, "out of memory");
		cp->ops = rk_provider_find_type("local");
		cp->cfg = c->local_default;
		if ((cp->name = strdup("local")) == NULL)
			return rk_error_set(err, RK_ENOMEM, "out of memory");
		c->nproviders++;
	}
	return 0;
}

/* A Kubernetes object name: what a lease name must be, whichever provider holds it. */
static int
lease_name_ok(const char *s, size_t max)
{
	size_t n = strlen(s);

	return n > 0 && n <= max && strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-.") == n &&
	       s[0] != '-' && s[0] != '.' && s[n - 1] != '-' && s[n - 1] != '.';
}

/* `ha: {lease: {...}}`, after the providers (it names one). */
static int
load_ha(struct rk_config *c, const json_t *ha, struct rk_error *err)
{
	struct rk_config_ha *h = &c->ha;
	const struct rk_config_provider *cp;
	const json_t *lease;
	int r;

	if (ha == NULL)
		return 0;
	if ((r = rk_doc_check(c->doc, ha, ha_fields, "ha", err)) < 0)
		return r;
	lease = json_object_get(ha, "lease");
	if ((r = rk_doc_check(c->doc, lease, lease_fields, "ha.lease", err)) < 0)
		return r;
	h->provider = rk_doc_str(lease, "provider", NULL);
	h->namespace_ = rk_doc_str(lease, "namespace", NULL);
	h->name = rk_doc_str(lease, "name", NULL);
	if (h->namespace_ != NULL &&
	    (!lease_name_ok(h->namespace_, 63) || strchr(h->namespace_, '.') != NULL))
		return rk_doc_error_key(err, c->doc, lease, "namespace", RK_EINVAL,
					"ha.lease.namespace '%s' must be 1-63 characters of a-z, "
					"0-9 and '-'", h->namespace_);
	if (!lease_name_ok(h->name, 253))
		return rk_doc_error_key(err, c->doc, lease, "name", RK_EINVAL,
					"ha.lease.name '%s' must be 1-253 characters of a-z, 0-9, "
					"'-' and '.', starting and ending with a letter or digit",
					h->name);
	if ((r = rk_doc_duration_ms(c->doc, lease, "duration", 15000, &h->duration_ms, err)) < 0 ||
	    (r = rk_doc_duration_ms(c->doc, lease, "skew_margin", 2000, &h->skew_ms, err)) < 0)
		return r;
	/* A Lease counts whole seconds (leaseDurationSeconds). */
	if (h->duration_ms < 1000 || h->duration_ms > HA_DURATION_MAX_MS ||
	    h->duration_ms % 1000 != 0)
		return rk_doc_error_key(err, c->doc, lease, "duration", RK_EINVAL,
					"ha.lease.duration must be whole seconds from 1s to 1h");
	if (h->skew_ms > h->duration_ms)
		return rk_doc_error_key(err, c->doc, lease, "skew_margin", RK_EINVAL,
					"ha.lease.skew_margin must not be longer than the duration");
	/* Last, so that the rules above can be checked whatever the provider. */
	if ((cp = rk_config_provider(c, h->provider)) == NULL)
		return rk_doc_error_key(err, c->doc, lease, "provider", RK_EINVAL,
					"ha.lease.provider '%s' is not one of the providers in "
					"this file", h->provider);
	if (!(cp->ops->caps & RK_CAP_LEASE)) {
		char can[200];
		type_list(can, sizeof(can), RK_CAP_LEASE);
		return rk_doc_error_key(err, c->doc, lease, "provider", RK_EINVAL,
					"ha.lease.provider '%s' is of type %s, which cannot hold a "
					"lease (types that can: %s)", h->provider, cp->ops->type,
					can[0] ? can : "none in this build");
	}
	c->have_ha = 1;
	return 0;
}

static int
dup_opt(char **dst, const json_t *obj, const char *key, const char *dflt, struct rk_error *err)
{
	const char *v = rk_doc_str(obj, key, dflt);

	if (v == NULL)
		return 0;
	if ((*dst = strdup(v)) == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	return 0;
}

/* A path option, defaulting to <state_dir>/name. */
static int
dup_path(char **dst, const struct rk_config *c, const json_t *obj, const char *key,
	 const char *name, struct rk_error *err)
{
	const char *v = obj != NULL ? rk_doc_str(obj, key, NULL) : NULL;

	if (v != NULL && v[0] == '\0')
		return rk_doc_error_key(err, c->doc, obj, key, RK_EINVAL, "%s must not be empty",
					key);
	*dst = v != NULL ? strdup(v) : rk_path_join(c->state_dir, name);
	return *dst == NULL ? rk_error_set(err, RK_ENOMEM, "out of memory") : 0;
}

/* host:port, [v6]:port; the port 0 to 65535. */
static int
listen_ok(const char *s)
{
	const char *colon = strrchr(s, ':');
	long long port;

	if (colon == NULL || colon == s)
		return 0;
	if (s[0] == '[' && colon[-1] != ']')
		return 0;
	return rk_parse_int(colon + 1, 0, 65535, &port) == 0;
}

static int
load_server(struct rk_config *c, const json_t *o, struct rk_error *err)
{
	struct rk_config_server *sv = &c->server;
	const json_t *rate = NULL, *rps;
	const char *page;
	int r;

	if (o != NULL && (r = rk_doc_check(c->doc, o, server_fields, "server", err)) < 0)
		return r;
	if ((r = dup_opt(&sv->listen, o, "listen", "127.0.0.1:9464", err)) < 0 ||
	    (r = dup_path(&sv->token_file, c, o, "token_file", "api.token", err)) < 0 ||
	    (r = dup_opt(&sv->tls_cert_file, o, "tls_cert_file", NULL, err)) < 0 ||
	    (r = dup_opt(&sv->tls_key_file, o, "tls_key_file", NULL, err)) < 0)
		return r;
	if (!listen_ok(sv->listen))
		return rk_doc_error_key(err, c->doc, o, "listen", RK_EINVAL,
					"server.listen '%s' must be HOST:PORT (127.0.0.1:9464, "
					"[::1]:9464; port 0 picks a free one)", sv->listen);
	if ((sv->tls_cert_file == NULL) != (sv->tls_key_file == NULL))
		return rk_doc_error_key(err, c->doc, o, sv->tls_cert_file ? "tls_cert_file"
								: "tls_key_file", RK_EINVAL,
					"server.tls_cert_file and server.tls_key_file go together");
	sv->max_body = rk_doc_int(o, "max_body_bytes", 65536);
	if (sv->max_body < 256 || sv->max_body > 16 << 20)
		return rk_doc_error_key(err, c->doc, o, "max_body_bytes", RK_EINVAL,
					"server.max_body_bytes must be from 256 to 16777216");
	if (o != NULL && (rate = json_object_get(o, "rate_limit")) != NULL &&
	    (r = rk_doc_check(c->doc, rate, rate_fields, "server.rate_limit", err)) < 0)
		return r;
	sv->rate_rps = 10;
	if (rate != NULL && (rps = json_object_get(rate, "rps")) != NULL) {
		double v = json_is_number(rps) ? json_number_value(rps) : -1;
		char *end = NULL;
		if (json_is_string(rps)) {	/* YAML's 0.5 may come as text */
			v = strtod(json_string_value(rps), &end);
			if (end == json_string_value(rps) || *end != '\0')
				v = -1;
		}
		if (v <= 0 || v > 100000)
			return rk_doc_error_key(err, c->doc, rate, "rps", RK_EINVAL,
						"server.rate_limit.rps must be a number above 0 "
						"(requests per second per client)");
		sv->rate_rps = v;
	}
	sv->rate_burst = (double)rk_doc_int(rate, "burst", 20);
	if (sv->rate_burst < 1 || sv->rate_burst > 100000)
		return rk_doc_error_key(err, c->doc, rate, "burst", RK_EINVAL,
					"server.rate_limit.burst must be from 1 to 100000");
	page = rk_doc_str(o, "status_page", "loopback");
	if (strcmp(page, "off") == 0)
		sv->status_page = 0;
	else if (strcmp(page, "loopback") == 0)
		sv->status_page = 1;
	else if (strcmp(page, "token") == 0)
		sv->status_page = 2;
	else
		return rk_doc_error_key(err, c->doc, o, "status_page", RK_EINVAL,
					"server.status_page must be off, loopback (loopback "
					"clients or the token) or token");
	return 0;
}

static int
load_scheduler(struct rk_config *c, const json_t *o, struct rk_error *err)
{
	struct rk_config_scheduler *sc = &c->scheduler;
	int r;

	if (o != NULL && (r = rk_doc_check(c->doc, o, scheduler_fields, "scheduler", err)) < 0)
		return r;
	if ((r = rk_doc_duration_ms(c->doc, o, "jitter", 30000, &sc->jitter_ms, err)) < 0 ||
	    (r = rk_doc_duration_ms(c->doc, o, "max_sleep", 3600000, &sc->max_sleep_ms, err)) < 0 ||
	    (r = rk_doc_duration_ms(c->doc, o, "audit_verify_every", 3600000,
				    &sc->audit_verify_ms, err)) < 0)
		return r;
	if (sc->max_sleep_ms < 1000)
		return rk_doc_error_key(err, c->doc, o, "max_sleep", RK_EINVAL,
					"scheduler.max_sleep must be at least 1s");
	if (sc->audit_verify_ms < 1000)
		return rk_doc_error_key(err, c->doc, o, "audit_verify_every", RK_EINVAL,
					"scheduler.audit_verify_every must be at least 1s");
	sc->parallel = (int)rk_doc_int(o, "parallel", 0);
	if (sc->parallel < 0 || sc->parallel > RK_CONFIG_PARALLEL_MAX)
		return rk_doc_error_key(err, c->doc, o, "parallel", RK_EINVAL,
					"scheduler.parallel must be from 0 (the providers' caps) "
					"to %d", RK_CONFIG_PARALLEL_MAX);
	return 0;
}

static int
load_backup(struct rk_config *c, const json_t *o, struct rk_error *err)
{
	struct rk_config_backup *b = &c->backup;
	int r;

	if (o != NULL && (r = rk_doc_check(c->doc, o, backup_fields, "backup", err)) < 0)
		return r;
	if ((r = dup_path(&b->dir, c, o, "dir", "backups", err)) < 0 ||
	    (r = dup_path(&b->key_file, c, o, "key_file", "backup.key", err)) < 0 ||
	    (r = rk_doc_duration_ms(c->doc, o, "every", 0, &b->every_ms, err)) < 0)
		return r;
	if (b->every_ms != 0 && b->every_ms < 1000)
		return rk_doc_error_key(err, c->doc, o, "every", RK_EINVAL,
					"backup.every must be 0 (no scheduled backups) or at "
					"least 1s");
	b->keep = (int)rk_doc_int(o, "keep", 7);
	if (b->keep < 1 || b->keep > 10000)
		return rk_doc_error_key(err, c->doc, o, "keep", RK_EINVAL,
					"backup.keep must be from 1 to 10000");
	return 0;
}

int
rk_config_load(struct rk_config **out, const char *path, struct rk_error *err)
{
	struct rk_config *c = NULL;
	const json_t *root;
	const char *env = getenv("REKEY_CONFIG");
	int r;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	if (path == NULL && env != NULL && env[0] != '\0')
		path = env;
	if (path == NULL && access("rekey.yaml", F_OK) == 0)
		path = "rekey.yaml";
	if (path == NULL && access("/etc/rekey/rekey.yaml", F_OK) == 0)
		path = "/etc/rekey/rekey.yaml";
	if (path != NULL) {
		r = rk_doc_load_file(&c->doc, path, err);
		c->path = strdup(path);
	} else {
		r = rk_doc_load_string(&c->doc, "(built-in default config)", default_config,
				       strlen(default_config), err);
		c->path = strdup("(built-in default config)");
	}
	if (r < 0)
		goto out;
	if (c->path == NULL) {
		r = rk_error_set(err, RK_ENOMEM, "out of memory");
		goto out;
	}
	root = rk_doc_root(c->doc);
	if ((r = rk_doc_check(c->doc, root, top_fields, "rekey.yaml", err)) < 0)
		goto out;
	if ((r = dup_opt(&c->state_dir, root, "state_dir", "./var", err)) < 0 ||
	    (r = dup_opt(&c->environment, root, "environment", NULL, err)) < 0 ||
	    (r = dup_opt(&c->policy_dir, root, "policy_dir", NULL, err)) < 0)
		goto out;
	if (c->state_dir[0] == '\0') {
		r = rk_doc_error_key(err, c->doc, root, "state_dir", RK_EINVAL,
				     "state_dir must not be empty");
		goto out;
	}
	if (c->environment != NULL && !rk_inventory_valid_environment(c->environment)) {
		r = rk_doc_error_key(err, c->doc, root, "environment", RK_EINVAL,
				     "environment '%s' must be %s", c->environment,
				     RK_ENVIRONMENT_GRAMMAR);
		goto out;
	}
	if ((r = load_providers(c, json_object_get(root, "providers"), err)) < 0 ||
	    (r = load_ha(c, json_object_get(root, "ha"), err)) < 0 ||
	    (r = load_server(c, json_object_get(root, "server"), err)) < 0 ||
	    (r = load_scheduler(c, json_object_get(root, "scheduler"), err)) < 0 ||
	    (r = load_backup(c, json_object_get(root, "backup"), err)) < 0)
		goto out;
	*out = c;
	c = NULL;
	r = 0;
out:
	rk_config_free(c);
	return r;
}

const struct rk_config_provider *
rk_config_provider(const struct rk_config *c, const char *name)
{
	for (size_t i = 0; i < c->nproviders; i++)
		if (strcmp(c->providers[i].name, name) == 0)
			return &c->providers[i];
	return NULL;
}
