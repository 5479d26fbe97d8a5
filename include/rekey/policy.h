/*
 * Policies: how often a secret rotates, what a good value looks like, which
 * hooks verify and set it. The shipped policies (policy/NAME.yaml, embedded in
 * the binary) are always available; files in policy_dir add to them and may
 * override one by name.
 */
#ifndef REKEY_POLICY_H
#define REKEY_POLICY_H

#include <stddef.h>
#include <stdint.h>
#include "rekey/error.h"
#include "rekey/gen.h"
#include "rekey/window.h"

#define RK_DEFAULT_HOOK_TIMEOUT_MS (60 * 1000)
#define RK_DEFAULT_MAX_ATTEMPTS 3

struct rk_hook {
	char **argv;		/* NULL-terminated; NULL: no hook */
	int64_t timeout_ms;
};

struct rk_policy {
	char *name;
	char *source;		/* "policy/default.yaml (built-in)" or the file path */
	int64_t rotate_every;	/* seconds */
	int64_t grace;		/* seconds */
	struct rk_window window;
	struct rk_gen *gen;
	size_t min_length;
	double min_entropy_bits;
	char **forbid;		/* NULL-terminated, may be NULL */
	int forbid_reuse_across_environments;
	struct rk_hook verify;
	struct rk_hook set;
	int restart_wait;
	int64_t restart_timeout_ms;
	int restart_rollback;	/* restart.on_failure: rollback (default keep) */
	int max_attempts;	/* failures in a row before needs_attention */
};

struct rk_policy_set;

/* Built-ins, then *.yaml / *.yml / *.json in dir (may be NULL). */
int rk_policy_set_load(struct rk_policy_set **out, const char *dir,
		       struct rk_error *err) RK_WARN_UNUSED;
const struct rk_policy *rk_policy_find(const struct rk_policy_set *set, const char *name);
size_t rk_policy_count(const struct rk_policy_set *set);
const struct rk_policy *rk_policy_at(const struct rk_policy_set *set, size_t i);
void rk_policy_set_free(struct rk_policy_set *set);

/* Parses one policy document's text (exposed for tests). */
int rk_policy_parse(struct rk_policy **out, const char *name, const char *text, size_t len,
		    struct rk_error *err) RK_WARN_UNUSED;
void rk_policy_free(struct rk_policy *p);
void rk_argv_free(char **argv);

#endif
