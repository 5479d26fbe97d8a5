/*
 * The vault provider's private interface, shared by its files and nothing
 * else (but its unit tests):
 *
 *   vault.c          the ops table: locators, dispatch to an engine, doctor
 *   vault_auth.c     the config, the instance, and authenticated HTTP calls
 *   vault_kv.c       KV version 2 secrets
 *   vault_transit.c  Transit keys
 *
 * Every function that sends a request takes the operation's struct rk_call
 * (NULL: none, as doctor sends) and puts it into the request.
 */
#ifndef REKEY_PROVIDERS_VAULT_INT_H
#define REKEY_PROVIDERS_VAULT_INT_H

#include <pthread.h>
#include <stdint.h>
#include <jansson.h>

#include "rekey/call.h"
#include "rekey/doc.h"
#include "rekey/error.h"
#include "rekey/http.h"
#include "rekey/http_cfg.h"
#include "rekey/provider.h"
#include "rekey/provider_kit.h"
#include "rekey/secret.h"

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

/* A parsed locator (ops->parse_locator): a key of a KV v2 entry, or a Transit key. */
enum vault_engine { VAULT_KV, VAULT_TRANSIT };

struct vault_loc {
	enum vault_engine engine;
	char *mount;		/* KV: the locator's mount, else kv_mount; Transit: transit_mount */
	char *path;		/* KV: the entry below the mount */
	char *key;		/* KV: the key within the entry */
	char *transit_key;	/* Transit: the key's name */
	long min_decryption_keep;	/* Transit: 0 when not set */
};

/* ---- vault_auth.c ---- */

extern const struct rk_field rk_vault_config_fields[];
int rk_vault_check_config(const struct rk_provider_env *env, const json_t *cfg,
			  struct rk_error *err);
int rk_vault_open(struct rk_provider **out, const struct rk_provider_env *env, const json_t *cfg,
		  struct rk_error *err);
void rk_vault_close(struct rk_provider *p);	/* accepts NULL */
/* 1 when s is a path segment that cannot escape its place in a URL path. */
int rk_vault_safe_path(const char *s);

/* Sends one request with token (NULL: none) and Vault's common headers. */
int rk_vault_raw_call(struct vault *v, const struct rk_call *call, const struct rk_secret *token,
		      const char *method, const char *path, const char *ctype, const void *body,
		      size_t body_len, int idempotent, int sensitive, struct rk_http_resp *resp,
		      struct rk_error *err) RK_WARN_UNUSED;
/* An authenticated request: logs in or renews first, and once more after a 403. */
int rk_vault_call(struct vault *v, const struct rk_call *call, const char *method,
		  const char *path, const char *ctype, const char *body, int idempotent,
		  int sensitive, struct rk_http_resp *resp, struct rk_error *err) RK_WARN_UNUSED;
/* err from resp's status and Vault's errors[] (rk_kit_status_error). */
int rk_vault_status_error(struct vault *v, const char *what, const struct rk_http_resp *resp,
			  struct rk_error *err);
/* A 200 with a JSON object body (*out, the caller's), or the error Vault says. */
int rk_vault_expect_json(struct vault *v, const char *what, const struct rk_http_resp *resp,
			 json_t **out, struct rk_error *err) RK_WARN_UNUSED;
/*
 * The wait before a write that certainly did not land is sent again; err
 * holds why it failed and is cleared. RK_ECANCELED or RK_ETRANSIENT, err
 * set, when call stops it first.
 */
int rk_vault_resend_wait(struct vault *v, const struct rk_call *call, const char *what,
			 int attempt, struct rk_error *err) RK_WARN_UNUSED;

/* ---- vault_kv.c: versions are numbers; 0 is the latest or none ---- */

/* Version `version` (0: the latest) of loc's key; *ver (optional) gets its number. */
int rk_vault_kv_read(struct vault *v, const struct rk_call *call, const struct vault_loc *loc,
		     long version, struct rk_secret **out, struct rk_version *ver,
		     struct rk_error *err) RK_WARN_UNUSED;
/* The version newer than `expected` that holds value: 0 with *ver, RK_ENOTFOUND, RK_ECONFLICT. */
int rk_vault_kv_find_staged(struct vault *v, const struct rk_call *call,
			    const struct vault_loc *loc, long expected,
			    const struct rk_secret *value, struct rk_version *ver,
			    struct rk_error *err) RK_WARN_UNUSED;
/* Writes req->value into loc's key, keeping the entry's other keys, if it is at `expected`. */
int rk_vault_kv_stage(struct vault *v, const struct rk_call *call, const struct vault_loc *loc,
		      long expected, const struct rk_stage_req *req, struct rk_version *new_ver,
		      struct rk_error *err) RK_WARN_UNUSED;
/* Writes version `to`'s data as a new version, if the entry is at `expected` (0: any). */
int rk_vault_kv_rollback(struct vault *v, const struct rk_call *call, const struct vault_loc *loc,
			 long to, long expected, const struct rk_stage_req *req,
			 struct rk_version *new_ver, struct rk_error *err) RK_WARN_UNUSED;

/* ---- vault_transit.c ---- */

/* The key's latest_version and (optional) min_decryption_version. */
int rk_vault_transit_read_key(struct vault *v, const struct rk_call *call,
			      const struct vault_loc *loc, long *latest, long *min_dec,
			      struct rk_error *err) RK_WARN_UNUSED;
/* The descriptor of version `version` (0: the latest); *ver (optional) gets its number. */
int rk_vault_transit_read(struct vault *v, const struct rk_call *call,
			  const struct vault_loc *loc, long version, struct rk_secret **out,
			  struct rk_version *ver, struct rk_error *err) RK_WARN_UNUSED;
/* Rotated once past `expected` (ours, *ver set), not yet (RK_ENOTFOUND), or by someone else. */
int rk_vault_transit_find_staged(struct vault *v, const struct rk_call *call,
				 const struct vault_loc *loc, long expected,
				 struct rk_version *ver, struct rk_error *err) RK_WARN_UNUSED;
/* Rotates the key if it is at `expected`, and raises min_decryption_version when asked. */
int rk_vault_transit_rotate(struct vault *v, const struct rk_call *call,
			    const struct vault_loc *loc, long expected,
			    struct rk_version *new_ver, struct rk_error *err) RK_WARN_UNUSED;

#endif
