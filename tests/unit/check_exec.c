/*
 * Child processes (src/exec.c): started with posix_spawn in their own process
 * group, with default signals and an empty mask whatever rekey's own are, a
 * value only on stdin, an allow-listed environment, and a timeout that kills
 * the whole group.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "rekey/exec.h"
#include "rekey/util.h"
#include "unit.h"

static int
run_sh(const char *script, const char *value, int64_t timeout_ms, struct rk_error *err)
{
	char *argv[] = { "sh", "-c", (char *)script, NULL };
	struct rk_secret *v = NULL;
	struct rk_exec_opts o = { .timeout_ms = timeout_ms, .what = "test hook" };
	int r;

	if (value != NULL) {
		ck_assert_int_eq(rk_secret_from(&v, value, strlen(value), err), 0);
		o.stdin_value = v;
	}
	r = rk_exec_run(argv, &o, err);
	rk_secret_free(v);
	return r;
}

START_TEST(test_exec_missing_command_is_an_error_naming_it)
{
	char *argv[] = { "rekey-no-such-command-here", NULL };
	struct rk_exec_opts o = { .timeout_ms = 2000, .what = "verify hook" };
	struct rk_error err = { 0 };

	ck_assert_int_eq(rk_exec_run(argv, &o, &err), RK_EIO);
	ck_assert_msg(strstr(err.msg, "verify hook: cannot execute rekey-no-such-command-here: "
				      "No such file or directory") != NULL, "%s", err.msg);
}
END_TEST

START_TEST(test_exec_child_leads_its_own_process_group)
{
	struct rk_error err = { 0 };

	/* Field 5 of /proc/PID/stat is the process group. */
	ck_assert_int_eq(run_sh("read -r l </proc/$$/stat; set -- $l; test \"$5\" = \"$$\"", NULL,
				5000, &err), 0);
	ck_assert_int_eq(run_sh("read -r l </proc/$$/stat; set -- $l; test \"$5\" != \"$$\"", NULL,
				5000, &err), RK_EIO);
}
END_TEST

START_TEST(test_exec_child_gets_default_signals_and_an_empty_mask)
{
	struct rk_error err = { 0 };
	sigset_t set, old;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGTERM);
	ck_assert_int_eq(sigprocmask(SIG_BLOCK, &set, &old), 0);
	/* Nothing blocked; SIGPIPE (bit 12 of SigIgn) not ignored. */
	/* Read with the shell's builtins: while it waits for a child, sh blocks signals. */
	ck_assert_int_eq(run_sh("while read -r k v; do case $k in SigBlk:) b=$v;; SigIgn:) i=$v;; "
				"esac; done </proc/$$/status; test $((0x$b)) = 0 && "
				"test $((0x$i & 0x1000)) = 0", NULL, 5000, &err), 0);
	sigprocmask(SIG_SETMASK, &old, NULL);
	signal(SIGPIPE, SIG_DFL);
}
END_TEST

START_TEST(test_exec_value_only_on_stdin_and_no_other_environment)
{
	struct rk_error err = { 0 };

	setenv("REKEY_TEST_LEAK", "should-not-pass", 1);
	ck_assert_int_eq(run_sh("read -r v; test \"$v\" = 'the-value' && test -z \"$REKEY_TEST_LEAK\" "
				"&& test -n \"$PATH\"", "the-value\n", 5000, &err), 0);
	/* No value: stdin is /dev/null, at end of file at once. */
	ck_assert_int_eq(run_sh("! read -r v", NULL, 5000, &err), 0);
	unsetenv("REKEY_TEST_LEAK");
}
END_TEST

START_TEST(test_exec_timeout_kills_the_whole_group)
{
	struct rk_error err = { 0 };
	int64_t t0 = rk_mono_ms();

	/* The background sleep would keep the output pipe open if it survived. */
	ck_assert_int_eq(run_sh("sleep 30 & sleep 30", NULL, 300, &err), RK_ETRANSIENT);
	ck_assert_int_lt(rk_mono_ms() - t0, 10000);
}
END_TEST

START_TEST(test_exec_failure_reports_status_and_last_line)
{
	struct rk_error err = { 0 };

	ck_assert_int_eq(run_sh("echo first; echo 'the last line' >&2; exit 3", NULL, 5000, &err),
			 RK_EIO);
	ck_assert_msg(strstr(err.msg, "3") != NULL && strstr(err.msg, "the last line") != NULL,
		      "%s", err.msg);
}
END_TEST

Suite *
exec_suite(void)
{
	Suite *s = suite_create("exec");
	TCase *tc = tcase_create("spawn");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_exec_missing_command_is_an_error_naming_it);
	tcase_add_test(tc, test_exec_child_leads_its_own_process_group);
	tcase_add_test(tc, test_exec_child_gets_default_signals_and_an_empty_mask);
	tcase_add_test(tc, test_exec_value_only_on_stdin_and_no_other_environment);
	tcase_add_test(tc, test_exec_timeout_kills_the_whole_group);
	tcase_add_test(tc, test_exec_failure_reports_status_and_last_line);
	suite_add_tcase(s, tc);
	return s;
}
