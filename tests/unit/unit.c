/*
 * Shared fixtures of the unit suites: one base directory per test case,
 * made and removed in the runner process, so a failing (forked) test leaves
 * nothing behind in /tmp.
 */
#define _XOPEN_SOURCE 700
#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rekey/crypto.h"
#include "rekey/ctx.h"
#include "rekey/error.h"
#include "rekey/provider.h"
#include "rekey/store.h"
#include "unit.h"

char rk_test_base_dir[64];

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void
rk_test_rm_rf(const char *dir)
{
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void
rk_test_base_setup(void)
{
	snprintf(rk_test_base_dir, sizeof(rk_test_base_dir), "/tmp/rk-unit-XXXXXX");
	if (mkdtemp(rk_test_base_dir) == NULL)
		abort();
}

void
rk_test_base_teardown(void)
{
	rk_test_rm_rf(rk_test_base_dir);
}

void
rk_test_write(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fputs(text, f) >= 0, 1);
	ck_assert_int_eq(fclose(f), 0);
}

void
rk_test_assert_at(const struct rk_error *err, const char *name, int line, int col)
{
	char want[256];
	int l = 0, c = 0;

	snprintf(want, sizeof(want), "%s:", name);
	ck_assert_msg(strncmp(err->msg, want, strlen(want)) == 0, "'%s' does not start with '%s'",
		      err->msg, want);
	ck_assert_msg(sscanf(err->msg + strlen(want), "%d:%d:", &l, &c) == 2,
		      "no line:col in '%s'", err->msg);
	ck_assert_msg(l == line, "line %d, expected %d: %s", l, line, err->msg);
	if (col != 0)
		ck_assert_msg(c == col, "column %d, expected %d: %s", c, col, err->msg);
}

void
rk_test_state_ctx(char *dir, struct rk_ctx *ctx)
{
	struct rk_error err = { 0 };

	snprintf(dir, 64, "%s/t-XXXXXX", rk_test_base_dir);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_msg(rk_keys_create(dir, &err) == 0, "%s", err.msg);
	rk_ctx_init(ctx);
	ck_assert_msg(rk_keys_load(&ctx->keys, dir, &err) == 0, "%s", err.msg);
	ck_assert_msg(rk_store_open(&ctx->store, dir, 1, &err) == 0, "%s", err.msg);
	ctx->fixed_now = 1767312000;
}

int
rk_test_bare_open(struct rk_provider **out, const struct rk_provider_env *env,
		  const struct json_t *cfg, struct rk_error *err)
{
	(void)env, (void)cfg;
	if ((*out = calloc(1, sizeof(**out))) == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	return 0;
}

void
rk_test_bare_close(struct rk_provider *p)
{
	free(p);
}
