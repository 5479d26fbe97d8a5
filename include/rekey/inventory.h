/*
 * The inventory file (`rekey apply -f FILE`): what secrets exist, where, under
 * which policy, and what depends on them. Loading validates everything
 * against the config (providers), the policies and each provider's locator
 * schema before anything is changed; errors name file:line:column.
 *
 * Each secret becomes a normalized "spec" object, the form stored in the DB:
 *   {name, provider, locator, policy, environment, owner, tier, last_rotated,
 *    dependents: [{kind: "kubernetes", provider, target, key} |
 *                 {kind: "exec", argv: [...], timeout_ms, key}]}
 * `key` identifies a dependent across secrets so it restarts once per run.
 */
#ifndef REKEY_INVENTORY_H
#define REKEY_INVENTORY_H

#include <stdint.h>
#include <jansson.h>
#include "rekey/error.h"

struct rk_config;
struct rk_policy_set;

#define RK_DEFAULT_TIER 2
#define RK_DEFAULT_ENVIRONMENT "default"

/* How far last_rotated may lie ahead of the clock (another host's clock skew). */
#define RK_LAST_ROTATED_SKEW_S (5 * 60)

/*
 * Secret names: 1-200 characters; segments of A-Z a-z 0-9 . _ - separated by
 * single '/'; no empty, "." or ".." segment (so no leading, trailing or double
 * '/'), no ".." anywhere, and no leading '-' (it would read as an option).
 */
#define RK_NAME_GRAMMAR                                                            \
	"1-200 characters: segments of A-Z a-z 0-9 '.' '_' '-' separated by single '/', " \
	"no empty, '.' or '..' segment, no '..' and no leading '-'"
int rk_inventory_valid_name(const char *s);
/* Environments: 1-64 characters of A-Z a-z 0-9 . _ - (no '/', no spaces). */
#define RK_ENVIRONMENT_GRAMMAR "1-64 characters of A-Z a-z 0-9 '.' '_' '-'"
int rk_inventory_valid_environment(const char *s);

/*
 * *out: array of specs in file order. now (Unix seconds) bounds last_rotated:
 * a time more than RK_LAST_ROTATED_SKEW_S ahead of it is refused.
 */
int rk_inventory_load(json_t **out, const char *path, const struct rk_config *cfg,
		      const struct rk_policy_set *policies, int64_t now,
		      struct rk_error *err) RK_WARN_UNUSED;

#endif
