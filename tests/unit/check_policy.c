/*
 * Policies (src/policy.c): the six shipped policies, the errors of one
 * policy document (each naming file:line:column), and how policy_dir files
 * add to and override the built-ins.
 */
#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rekey/policy.h"
#include "rekey/util.h"
#include "unit.h"

#define NAME "p.yaml"

static void
rm_tree(const char *dir)
{
	rk_test_rm_rf(dir);
}

static void
write_in(const char *dir, const char *name, const char *text)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	rk_test_write(path, text);
}

static struct rk_policy *
parse_ok(const char *text)
{
	struct rk_policy *p = NULL;
	struct rk_error err = { 0 };

	ck_assert_msg(rk_policy_parse(&p, NAME, text, strlen(text), &err) == 0, "%s", err.msg);
	ck_assert_ptr_nonnull(p);
	return p;
}

/* Parses text that must fail; checks the error is at line:col and mentions `what`. */
static void
parse_bad(const char *text, int line, int col, const char *what)
{
	struct rk_policy *p = NULL;
	struct rk_error err = { 0 };

	ck_assert_msg(rk_policy_parse(&p, NAME, text, strlen(text), &err) == RK_EINVAL,
		      "accepted: %s", text);
	ck_assert_ptr_null(p);
	rk_test_assert_at(&err, NAME, line, col);
	ck_assert_msg(strstr(err.msg, what) != NULL, "'%s' not in '%s'", what, err.msg);
}

START_TEST(test_policy_builtins_are_all_loaded)
{
	static const char *const names[] = { "default", "strict", "database-password", "api-key",
					     "signing-key", "session-secret" };
	struct rk_policy_set *set = NULL;
	struct rk_error err = { 0 };

	ck_assert_msg(rk_policy_set_load(&set, NULL, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(rk_policy_count(set), RK_ARRAY_SIZE(names));
	for (size_t i = 0; i < RK_ARRAY_SIZE(names); i++) {
		const struct rk_policy *p = rk_policy_find(set, names[i]);
		ck_assert_msg(p != NULL, "built-in policy '%s' missing", names[i]);
		ck_assert_ptr_nonnull(strstr(p->source, "(built-in)"));
		ck_assert_ptr_nonnull(p->gen);
		ck_assert_int_ge(p->rotate_every, 60);
		ck_assert_int_eq(p->max_attempts, RK_DEFAULT_MAX_ATTEMPTS);
	}
	ck_assert_ptr_null(rk_policy_find(set, "nonexistent"));
	ck_assert_ptr_null(rk_policy_at(set, rk_policy_count(set)));
	rk_policy_set_free(set);
}
END_TEST

START_TEST(test_policy_default_is_strong_enough_for_production)
{
	struct rk_policy_set *set = NULL;
	struct rk_error err = { 0 };
	const struct rk_policy *p;

	ck_assert_msg(rk_policy_set_load(&set, NULL, &err) == 0, "%s", err.msg);
	p = rk_policy_find(set, "default");
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_ge(p->min_length, 16);
	ck_assert(p->min_entropy_bits >= 64.0);
	ck_assert_int_eq(p->rotate_every, 90LL * 86400);
	ck_assert_int_eq(p->grace, 14LL * 86400);
	ck_assert_int_eq(p->gen->type, RK_GEN_PASSWORD);
	ck_assert_uint_ge(p->gen->length, p->min_length);
	ck_assert_int_eq(p->window.set, 0);
	ck_assert_ptr_null(p->verify.argv);
	ck_assert_ptr_null(p->set.argv);
	/* The windowed one really has a window. */
	ck_assert_int_eq(rk_policy_find(set, "database-password")->window.set, 1);
	rk_policy_set_free(set);
}
END_TEST

START_TEST(test_policy_parse_reads_every_field)
{
	struct rk_policy *p = parse_ok("name: pg\n"
				       "rotate_every: 1h30m\n"
				       "grace: 2d\n"
				       "window: \"Mon-Fri 02:00-05:00 UTC\"\n"
				       "generator: {type: bytes, length: 16, encoding: hex}\n"
				       "guards: {min_length: 20, min_entropy_bits: 70, forbid: [a, b],\n"
				       "         forbid_reuse_across_environments: true}\n"
				       "verify: {exec: [/bin/check, --x], timeout: 5s}\n"
				       "set: {exec: [/bin/set]}\n"
				       "restart: {wait: false, timeout: 2m, on_failure: rollback}\n"
				       "max_attempts: 7\n");

	ck_assert_str_eq(p->name, "pg");
	ck_assert_str_eq(p->source, NAME);
	ck_assert_int_eq(p->rotate_every, 5400);
	ck_assert_int_eq(p->grace, 2 * 86400);
	ck_assert_int_eq(p->window.set, 1);
	ck_assert_int_eq(p->gen->type, RK_GEN_BYTES);
	ck_assert_uint_eq(p->min_length, 20);
	ck_assert(p->min_entropy_bits == 70.0);
	ck_assert_str_eq(p->forbid[0], "a");
	ck_assert_str_eq(p->forbid[1], "b");
	ck_assert_ptr_null(p->forbid[2]);
	ck_assert_int_eq(p->forbid_reuse_across_environments, 1);
	ck_assert_str_eq(p->verify.argv[0], "/bin/check");
	ck_assert_str_eq(p->verify.argv[1], "--x");
	ck_assert_ptr_null(p->verify.argv[2]);
	ck_assert_int_eq(p->verify.timeout_ms, 5000);
	ck_assert_str_eq(p->set.argv[0], "/bin/set");
	ck_assert_int_eq(p->set.timeout_ms, RK_DEFAULT_HOOK_TIMEOUT_MS);
	ck_assert_int_eq(p->restart_wait, 0);
	ck_assert_int_eq(p->restart_timeout_ms, 120000);
	ck_assert_int_eq(p->restart_rollback, 1);
	ck_assert_int_eq(p->max_attempts, 7);
	rk_policy_free(p);
}
END_TEST

START_TEST(test_policy_parse_defaults)
{
	struct rk_policy *p = parse_ok("name: bare\nrotate_every: 1m\n");

	ck_assert_int_eq(p->rotate_every, 60);
	ck_assert_int_eq(p->grace, 0);
	ck_assert_int_eq(p->gen->type, RK_GEN_PASSWORD);
	ck_assert_uint_eq(p->gen->length, 32);
	ck_assert_int_eq(p->restart_wait, 1);
	ck_assert_int_eq(p->restart_timeout_ms, 10 * 60 * 1000);
	ck_assert_int_eq(p->restart_rollback, 0);	/* on_failure: keep */
	ck_assert_int_eq(p->max_attempts, RK_DEFAULT_MAX_ATTEMPTS);
	ck_assert_ptr_null(p->forbid);
	rk_policy_free(p);
	p = parse_ok("name: bare\nrotate_every: 1m\nrestart: {on_failure: keep}\n");
	ck_assert_int_eq(p->restart_rollback, 0);
	rk_policy_free(p);
}
END_TEST

START_TEST(test_policy_bad_duration_is_an_error_at_its_position)
{
	parse_bad("name: x\nrotate_every: 30x\n", 2, 0, "rotate_every");
	parse_bad("name: x\nrotate_every: 30d\ngrace: soon\n", 3, 0, "grace");
	parse_bad("name: x\nrotate_every: 30d\nrestart: {timeout: forever}\n", 3, 0, "timeout");
	parse_bad("name: x\nrotate_every: 30d\nrestart:\n  on_failure: undo\n", 4, 0,
		  "restart.on_failure must be keep or rollback, not 'undo'");
}
END_TEST

START_TEST(test_policy_rotate_every_below_one_minute_is_refused)
{
	parse_bad("name: x\nrotate_every: 1500ms\n", 2, 0, "whole seconds, at least 1s");
	parse_bad("name: x\nrotate_every: 500ms\n", 2, 0, "whole seconds, at least 1s");
	parse_bad("name: x\nrotate_every: 0\n", 2, 0, "whole seconds, at least 1s");
	rk_policy_free(parse_ok("name: x\nrotate_every: 60\n"));
}
END_TEST

START_TEST(test_policy_missing_rotate_every_or_name)
{
	parse_bad("name: x\n", 1, 1, "required key 'rotate_every'");
	parse_bad("rotate_every: 30d\n", 1, 1, "required key 'name'");
}
END_TEST

START_TEST(test_policy_bad_name_is_refused)
{
	parse_bad("name: \"a b\"\nrotate_every: 1d\n", 1, 0, "policy name");
	parse_bad("name: a/b\nrotate_every: 1d\n", 1, 0, "policy name");
	parse_bad("name: \"\"\nrotate_every: 1d\n", 1, 0, "policy name");
}
END_TEST

START_TEST(test_policy_bad_window_is_an_error_at_its_position)
{
	parse_bad("name: x\nrotate_every: 1d\nwindow: \"Mon-Fri 25:00-26:00 UTC\"\n", 3, 0,
		  "window:");
	parse_bad("name: x\nrotate_every: 1d\nwindow: \"sometimes\"\n", 3, 0, "window:");
}
END_TEST

START_TEST(test_policy_unknown_keys_are_errors_at_every_level)
{
	parse_bad("name: x\nrotate_every: 1d\nrotate_evry: 2d\n", 3, 1, "unknown key 'rotate_evry'");
	parse_bad("name: x\nrotate_every: 1d\nguards: {min_len: 3}\n", 3, 0, "unknown key 'min_len'");
	parse_bad("name: x\nrotate_every: 1d\nverify: {exec: [a], shell: true}\n", 3, 0,
		  "unknown key 'shell'");
	parse_bad("name: x\nrotate_every: 1d\nrestart: {now: true}\n", 3, 0, "unknown key 'now'");
}
END_TEST

START_TEST(test_policy_hook_without_exec_is_refused)
{
	parse_bad("name: x\nrotate_every: 1d\nverify: {timeout: 5s}\n", 3, 0,
		  "required key 'exec'");
	parse_bad("name: x\nrotate_every: 1d\nset: {exec: []}\n", 3, 0, "non-empty argv");
	parse_bad("name: x\nrotate_every: 1d\nset: {exec: [\"\"]}\n", 3, 0, "non-empty argv");
	parse_bad("name: x\nrotate_every: 1d\nverify: {exec: /bin/sh -c x}\n", 3, 0,
		  "a list of strings");
	parse_bad("name: x\nrotate_every: 1d\nverify: {exec: [a], timeout: 200ms}\n", 3, 0,
		  "at least 1s");
}
END_TEST

/* A hook argv element that is not a string is named, where it is written, with why. */
START_TEST(test_policy_hook_argv_element_not_a_string_is_named)
{
	parse_bad("name: x\nrotate_every: 1d\nverify: {exec: [true]}\n", 3, 17,
		  "exec[0] in verify must be a string; `true` is a YAML boolean: quote it (\"true\")");
	parse_bad("name: x\nrotate_every: 1d\nset:\n  exec:\n    - pg-set\n    - 5432\n", 6, 7,
		  "exec[1] in set must be a string; `5432` is a YAML integer: quote it (\"5432\")");
	parse_bad("name: x\nrotate_every: 1d\nguards: {forbid: [a, null]}\n", 3, 22,
		  "forbid[1] in guards must be a string; an empty or `null` element");
}
END_TEST

START_TEST(test_policy_max_attempts_out_of_range)
{
	parse_bad("name: x\nrotate_every: 1d\nmax_attempts: 0\n", 3, 15, "max_attempts");
	parse_bad("name: x\nrotate_every: 1d\nmax_attempts: 101\n", 3, 15, "max_attempts");
	parse_bad("name: x\nrotate_every: 1d\nmax_attempts: -1\n", 3, 15, "max_attempts");
	parse_bad("name: x\nrotate_every: 1d\nmax_attempts: three\n", 3, 0, "max_attempts");
	{
		struct rk_policy *p = parse_ok("name: x\nrotate_every: 1d\nmax_attempts: 100\n");
		ck_assert_int_eq(p->max_attempts, 100);
		rk_policy_free(p);
	}
}
END_TEST

/*
 * BUG (src/policy.c:210): max_attempts is cast to int before the range
 * check, so 4294967297 (2^32 + 1) becomes 1 and is accepted.
 */
START_TEST(test_policy_max_attempts_huge_is_not_truncated_into_range)
{
	parse_bad("name: x\nrotate_every: 1d\nmax_attempts: 4294967297\n", 3, 15, "max_attempts");
}
END_TEST

START_TEST(test_policy_guards_out_of_range)
{
	parse_bad("name: x\nrotate_every: 1d\nguards: {min_length: 5000}\n", 3, 0, "min_length");
	parse_bad("name: x\nrotate_every: 1d\nguards: {min_entropy_bits: -1}\n", 3, 0,
		  "min_entropy_bits");
	parse_bad("name: x\nrotate_every: 1d\nguards: {forbid: [a, 3]}\n", 3, 0, "forbid");
}
END_TEST

START_TEST(test_policy_bad_generator_is_an_error_at_its_position)
{
	parse_bad("name: x\nrotate_every: 1d\ngenerator: {type: dice}\n", 3, 0, "dice");
	parse_bad("name: x\nrotate_every: 1d\ngenerator: {type: password, length: 0}\n", 3, 0,
		  "length");
}
END_TEST

START_TEST(test_policy_generator_must_satisfy_its_own_guards)
{
	static const char *const bad[] = {
		"name: p\nrotate_every: 1d\ngenerator: {type: password, length: 12}\n"
		"guards: {min_length: 16}\n",
		"name: p\nrotate_every: 1d\ngenerator: {type: password, length: 20, classes: [digit]}\n"
		"guards: {min_entropy_bits: 80}\n",
		"name: p\nrotate_every: 1d\ngenerator: {type: bytes, length: 8, encoding: hex}\n"
		"guards: {min_entropy_bits: 128}\n",
	};
	static const char good[] =
		"name: p\nrotate_every: 1d\ngenerator: {type: bytes, length: 16, encoding: hex}\n"
		"guards: {min_length: 32, min_entropy_bits: 128}\n";
	struct rk_policy *p = NULL;
	struct rk_error err = { 0 };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		rk_error_clear(&err);
		ck_assert_int_eq(rk_policy_parse(&p, "p.yaml", bad[i], strlen(bad[i]), &err), RK_EINVAL);
		ck_assert_msg(strstr(err.msg, "p.yaml:3:") != NULL, "%s", err.msg);
		ck_assert_msg(strstr(err.msg, "the guards ask for") != NULL, "%s", err.msg);
	}
	rk_error_clear(&err);
	ck_assert_msg(rk_policy_parse(&p, "p.yaml", good, strlen(good), &err) == 0, "%s", err.msg);
	rk_policy_free(p);
}
END_TEST

START_TEST(test_policy_dir_file_overrides_builtin_of_same_name)
{
	char dir[96], path[160];
	struct rk_policy_set *set = NULL;
	struct rk_error err = { 0 };
	const struct rk_policy *p;

	snprintf(dir, sizeof(dir), "%s/t-XXXXXX", rk_test_base_dir);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	write_in(dir, "default.yaml", "name: default\nrotate_every: 7d\nguards: {min_length: 40}\n"
				      "generator: {type: password, length: 48}\n");
	write_in(dir, "team.yml", "name: team\nrotate_every: 2d\n");
	write_in(dir, "extra.json", "{\"name\": \"json-one\", \"rotate_every\": \"3d\"}");
	write_in(dir, "notes.txt", "this is not a policy: [");
	write_in(dir, ".hidden.yaml", "this is not a policy either: [");
	ck_assert_msg(rk_policy_set_load(&set, dir, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(rk_policy_count(set), 8);
	p = rk_policy_find(set, "default");
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(p->rotate_every, 7 * 86400);
	ck_assert_uint_eq(p->min_length, 40);
	snprintf(path, sizeof(path), "%s/default.yaml", dir);
	ck_assert_str_eq(p->source, path);
	ck_assert_int_eq(rk_policy_find(set, "team")->rotate_every, 2 * 86400);
	ck_assert_int_eq(rk_policy_find(set, "json-one")->rotate_every, 3 * 86400);
	/* The other built-ins are untouched. */
	ck_assert_int_eq(rk_policy_find(set, "strict")->rotate_every, 30 * 86400);
	rk_policy_set_free(set);
	rm_tree(dir);
}
END_TEST

START_TEST(test_policy_two_user_files_with_same_name_name_both_files)
{
	char dir[96], a[160], b[160];
	struct rk_policy_set *set = NULL;
	struct rk_error err = { 0 };

	snprintf(dir, sizeof(dir), "%s/t-XXXXXX", rk_test_base_dir);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	write_in(dir, "a.yaml", "name: shared\nrotate_every: 1d\n");
	write_in(dir, "b.yaml", "name: shared\nrotate_every: 2d\n");
	ck_assert_int_eq(rk_policy_set_load(&set, dir, &err), RK_EINVAL);
	ck_assert_ptr_null(set);
	snprintf(a, sizeof(a), "%s/a.yaml", dir);
	snprintf(b, sizeof(b), "%s/b.yaml", dir);
	ck_assert_msg(strstr(err.msg, a) != NULL && strstr(err.msg, b) != NULL,
		      "both files should be named: %s", err.msg);
	ck_assert_ptr_nonnull(strstr(err.msg, "'shared'"));
	rm_tree(dir);
}
END_TEST

START_TEST(test_policy_two_user_files_overriding_one_builtin_conflict)
{
	char dir[96], a[160], b[160];
	struct rk_policy_set *set = NULL;
	struct rk_error err = { 0 };

	snprintf(dir, sizeof(dir), "%s/t-XXXXXX", rk_test_base_dir);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	write_in(dir, "a.yaml", "name: strict\nrotate_every: 1d\n");
	write_in(dir, "b.yaml", "name: strict\nrotate_every: 2d\n");
	ck_assert_int_eq(rk_policy_set_load(&set, dir, &err), RK_EINVAL);
	snprintf(a, sizeof(a), "%s/a.yaml", dir);
	snprintf(b, sizeof(b), "%s/b.yaml", dir);
	ck_assert_msg(strstr(err.msg, a) != NULL && strstr(err.msg, b) != NULL, "%s", err.msg);
	rm_tree(dir);
}
END_TEST

START_TEST(test_policy_dir_errors_name_the_file)
{
	char dir[96], path[160];
	struct rk_policy_set *set = NULL;
	struct rk_error err = { 0 };

	snprintf(dir, sizeof(dir), "%s/t-XXXXXX", rk_test_base_dir);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	write_in(dir, "broken.yaml", "name: broken\nrotate_every: 1d\nbogus: 1\n");
	ck_assert_int_eq(rk_policy_set_load(&set, dir, &err), RK_EINVAL);
	ck_assert_ptr_null(set);
	snprintf(path, sizeof(path), "%s/broken.yaml", dir);
	rk_test_assert_at(&err, path, 3, 1);
	rm_tree(dir);

	rk_error_clear(&err);
	ck_assert_int_eq(rk_policy_set_load(&set, "/nonexistent/rekey-policies", &err), RK_EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "/nonexistent/rekey-policies"));
}
END_TEST

Suite *
policy_suite(void)
{
	Suite *s = suite_create("policy");
	TCase *tc = tcase_create("core");

	tcase_add_unchecked_fixture(tc, rk_test_base_setup, rk_test_base_teardown);
	tcase_add_test(tc, test_policy_builtins_are_all_loaded);
	tcase_add_test(tc, test_policy_default_is_strong_enough_for_production);
	tcase_add_test(tc, test_policy_parse_reads_every_field);
	tcase_add_test(tc, test_policy_parse_defaults);
	tcase_add_test(tc, test_policy_bad_duration_is_an_error_at_its_position);
	tcase_add_test(tc, test_policy_rotate_every_below_one_minute_is_refused);
	tcase_add_test(tc, test_policy_missing_rotate_every_or_name);
	tcase_add_test(tc, test_policy_bad_name_is_refused);
	tcase_add_test(tc, test_policy_bad_window_is_an_error_at_its_position);
	tcase_add_test(tc, test_policy_unknown_keys_are_errors_at_every_level);
	tcase_add_test(tc, test_policy_hook_without_exec_is_refused);
	tcase_add_test(tc, test_policy_hook_argv_element_not_a_string_is_named);
	tcase_add_test(tc, test_policy_max_attempts_out_of_range);
	tcase_add_test(tc, test_policy_max_attempts_huge_is_not_truncated_into_range);
	tcase_add_test(tc, test_policy_guards_out_of_range);
	tcase_add_test(tc, test_policy_bad_generator_is_an_error_at_its_position);
	tcase_add_test(tc, test_policy_generator_must_satisfy_its_own_guards);
	tcase_add_test(tc, test_policy_dir_file_overrides_builtin_of_same_name);
	tcase_add_test(tc, test_policy_two_user_files_with_same_name_name_both_files);
	tcase_add_test(tc, test_policy_two_user_files_overriding_one_builtin_conflict);
	tcase_add_test(tc, test_policy_dir_errors_name_the_file);
	suite_add_tcase(s, tc);
	return s;
}
