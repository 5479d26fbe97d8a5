/*
 * Included by every unit test file: declares all suites (the list is
 * generated from the test sources) and small shared helpers.
 */
#ifndef REKEY_TESTS_UNIT_H
#define REKEY_TESTS_UNIT_H

#include <check.h>

#define X(name) Suite *name##_suite(void);
#include "suites.h"
#undef X

/* tests/unit/unit.c: a base directory per test case (an unchecked fixture). */
extern char rk_test_base_dir[64];
void rk_test_base_setup(void);
void rk_test_base_teardown(void);
/* Removes a directory tree (nftw, no symlinks followed). */
void rk_test_rm_rf(const char *dir);

/* Writes text to path (the test fails if it cannot). */
void rk_test_write(const char *path, const char *text);

struct rk_ctx;
/*
 * A fresh state directory under the base dir (its path in dir, 64 bytes)
 * with keys and a state DB opened into ctx, the clock fixed at
 * 2026-01-02T00:00:00Z. Undo with rk_ctx_cleanup and rk_test_rm_rf.
 */
void rk_test_state_ctx(char *dir, struct rk_ctx *ctx);

struct rk_error;
/* err->msg starts with "name:line:col: " (col 0: any column). */
void rk_test_assert_at(const struct rk_error *err, const char *name, int line, int col);

struct rk_provider;
struct rk_provider_env;
struct json_t;
/*
 * open and close for the ops of a fake provider type that keeps no state of
 * its own: a bare, zeroed struct rk_provider.
 */
int rk_test_bare_open(struct rk_provider **out, const struct rk_provider_env *env,
		      const struct json_t *cfg, struct rk_error *err);
void rk_test_bare_close(struct rk_provider *p);

#endif
