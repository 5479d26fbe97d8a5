/*
 * Shared fixtures of the unit suites: one base directory per test case,
 * made and removed in the runner process, so a failing (forked) test leaves
 * nothing behind in /tmp.
 */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

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
