/*
 * rekey.yaml: where things are. Found via -c PATH, $REKEY_CONFIG,
 * ./rekey.yaml, /etc/rekey/rekey.yaml; with none, the embedded default
 * (state_dir ./var, the local provider). Relative paths are relative to the
 * working directory. Every key is checked against a schema; providers check
 * their own subtree through their ops' config_fields and check_config, so a
 * bad provider block is an error of every command, not only of the first
 * that opens the provider.
 */
#ifndef REKEY_CONFIG_H
#define REKEY_CONFIG_H

#include <stdint.h>
#include <jansson.h>
#include "rekey/doc.h"
#include "rekey/error.h"

struct rk_provider_ops;

/* The most rotations scheduler.parallel may ask for (as rotate --parallel). */
#define RK_CONFIG_PARALLEL_MAX 256

struct rk_config_provider {
	char *name;				/* key under providers: */
	const struct rk_provider_ops *ops;	/* from its `type:` */
	const json_t *cfg;			/* borrowed from the doc */
};

/*
 * `ha: {lease: {...}}`: only the holder of this leader lease rotates. The
 * strings are borrowed from the doc. provider names an entry of providers
 * whose type has RK_CAP_LEASE (checked at load).
 */
struct rk_config_ha {
	const char *provider;
	const char *namespace_;	/* NULL: the provider's default namespace */
	const char *name;
	int64_t duration_ms;	/* whole seconds, 1 s to 1 h; default 15 s */
	int64_t skew_ms;	/* 0 to the duration; default 2 s */
};

/*
 * `server:` (rekey serve's HTTP API). Paths are owned; relative ones are
 * relative to the working directory like every path in rekey.yaml.
 */
struct rk_config_server {
	char *listen;		/* "127.0.0.1:9464" (default); "[::1]:9464"; port 0: any */
	char *token_file;	/* default <state_dir>/api.token */
	char *tls_cert_file;	/* both or neither: HTTPS */
	char *tls_key_file;
	int64_t max_body;	/* bytes of a request body; default 65536 */
	double rate_rps;	/* per client address; default 10 */
	double rate_burst;	/* default 20 */
	int status_page;	/* GET /: 0 off, 1 loopback clients or the token (default), 2 token only */
};

/* `scheduler:` (rekey serve). */
struct rk_config_scheduler {
	int64_t jitter_ms;		/* a due rotation waits up to this (per secret); default 30 s */
	int parallel;			/* rotations at once; 0 (default): the providers' caps */
	int64_t max_sleep_ms;		/* longest sleep without an event; default 1 h */
	int64_t audit_verify_ms;	/* re-verify the audit chain this often; default 1 h */
};

/* `backup:` (rekey backup, and the daemon's scheduled backups). */
struct rk_config_backup {
	char *dir;		/* scheduled backups; default <state_dir>/backups */
	char *key_file;		/* default <state_dir>/backup.key (keep a copy elsewhere) */
	int64_t every_ms;	/* the daemon backs up this often; 0 (default): never */
	int keep;		/* scheduled backups kept; default 7 */
};

struct rk_config {
	char *path;		/* the file read, or "(built-in default)" */
	struct rk_doc *doc;
	char *state_dir;
	char *environment;	/* default environment, may be NULL */
	char *policy_dir;	/* may be NULL */
	struct rk_config_provider *providers;
	size_t nproviders;
	json_t *local_default;	/* {type: local} when the file names no `local` */
	struct rk_config_ha ha;
	int have_ha;		/* `ha` is configured: ha is set */
	struct rk_config_server server;
	struct rk_config_scheduler scheduler;
	struct rk_config_backup backup;
};

/* path may be NULL (search order above). */
int rk_config_load(struct rk_config **out, const char *path, struct rk_error *err) RK_WARN_UNUSED;
/* The named provider's entry, or NULL. */
const struct rk_config_provider *rk_config_provider(const struct rk_config *c, const char *name);
void rk_config_free(struct rk_config *c);

#endif
