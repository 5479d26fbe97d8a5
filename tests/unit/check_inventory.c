/*
 * Inventory files (src/inventory.c) against a real rekey.yaml and the
 * built-in policies: the normalized spec with its defaults, and every
 * refusal naming file:line:column before anything could change.
 */
#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rekey/config.h"
#include "rekey/inventory.h"
#include "rekey/policy.h"
#include "rekey/util.h"
#include "unit.h"

/* The clock of every load: 2026-03-01T00:00:00Z. */
#define NOW 1772323200

struct fx {
	char dir[64];
	char cfg_path[128];
	char inv_path[128];
	struct rk_config *cfg;
	struct rk_policy_set *pols;
};

/* A temp dir with rekey.yaml = config_text, loaded, and the built-in policies. */
static void
fx_init(struct fx *f, const char *config_text)
{
	struct rk_error err = { 0 };

	memset(f, 0, sizeof(*f));
	snprintf(f->dir, sizeof(f->dir), "%s/t-XXXXXX", rk_test_base_dir);
	ck_assert_ptr_nonnull(mkdtemp(f->dir));
	snprintf(f->cfg_path, sizeof(f->cfg_path), "%s/rekey.yaml", f->dir);
	snprintf(f->inv_path, sizeof(f->inv_path), "%s/inventory.yaml", f->dir);
	rk_test_write(f->cfg_path, config_text);
	ck_assert_msg(rk_config_load(&f->cfg, f->cfg_path, &err) == 0, "%s", err.msg);
	ck_assert_msg(rk_policy_set_load(&f->pols, NULL, &err) == 0, "%s", err.msg);
}

static void
fx_done(struct fx *f)
{
	rk_config_free(f->cfg);
	rk_policy_set_free(f->pols);
	rk_test_rm_rf(f->dir);
}

static json_t *
load_ok(struct fx *f, const char *text)
{
	json_t *specs = NULL;
	struct rk_error err = { 0 };

	rk_test_write(f->inv_path, text);
	ck_assert_msg(rk_inventory_load(&specs, f->inv_path, f->cfg, f->pols, NOW, &err) == 0, "%s",
		      err.msg);
	ck_assert(json_is_array(specs));
	return specs;
}

/* The inventory must be refused at line:col (col 0: any) with `what` in the message. */
static void
load_bad(struct fx *f, const char *text, int line, int col, const char *what)
{
	json_t *specs = NULL;
	struct rk_error err = { 0 };
	char want[200];
	int l = 0, c = 0;

	rk_test_write(f->inv_path, text);
	ck_assert_msg(rk_inventory_load(&specs, f->inv_path, f->cfg, f->pols, NOW, &err) == RK_EINVAL,
		      "accepted:\n%s", text);
	ck_assert_ptr_null(specs);
	snprintf(want, sizeof(want), "%s:", f->inv_path);
	ck_assert_msg(strncmp(err.msg, want, strlen(want)) == 0, "'%s' does not name %s", err.msg,
		      want);
	ck_assert_msg(sscanf(err.msg + strlen(want), "%d:%d:", &l, &c) == 2, "no line:col: %s",
		      err.msg);
	ck_assert_msg(l == line, "line %d, expected %d: %s", l, line, err.msg);
	if (col != 0)
		ck_assert_msg(c == col, "column %d, expected %d: %s", c, col, err.msg);
	ck_assert_msg(strstr(err.msg, what) != NULL, "'%s' not in '%s'", what, err.msg);
}

#define CONFIG_STAGING "environment: staging\nproviders:\n  local: {type: local}\n"

START_TEST(test_inventory_valid_entries_are_normalized_with_defaults)
{
	struct fx f;
	json_t *specs, *s, *deps, *d;

	fx_init(&f, CONFIG_STAGING);
	specs = load_ok(&f, "secrets:\n"
			    "  - name: app/db\n"
			    "    locator: {path: app/db}\n"
			    "    dependents:\n"
			    "      - exec: [systemctl, try-restart, app.service]\n"
			    "  - name: App_2.key\n"
			    "    provider: local\n"
			    "    locator: {path: other}\n"
			    "    policy: strict\n"
			    "    environment: production\n"
			    "    owner: team-a\n"
			    "    tier: 0\n"
			    "    description: the second one\n"
			    "    last_rotated: 2026-01-02\n"
			    "    dependents:\n"
			    "      - exec: [/bin/true]\n"
			    "        timeout: 5s\n");
	ck_assert_int_eq(json_array_size(specs), 2);

	s = json_array_get(specs, 0);
	ck_assert_str_eq(json_string_value(json_object_get(s, "name")), "app/db");
	ck_assert_str_eq(json_string_value(json_object_get(s, "provider")), "local");
	ck_assert_str_eq(json_string_value(json_object_get(s, "policy")), "default");
	ck_assert_str_eq(json_string_value(json_object_get(s, "environment")), "staging");
	ck_assert_str_eq(json_string_value(json_object_get(s, "owner")), "");
	ck_assert_int_eq(json_integer_value(json_object_get(s, "tier")), RK_DEFAULT_TIER);
	ck_assert_int_eq(json_integer_value(json_object_get(s, "last_rotated")), 0);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(s, "locator"), "path")),
			 "app/db");
	deps = json_object_get(s, "dependents");
	ck_assert_int_eq(json_array_size(deps), 1);
	d = json_array_get(deps, 0);
	ck_assert_str_eq(json_string_value(json_object_get(d, "kind")), "exec");
	ck_assert_int_eq(json_array_size(json_object_get(d, "argv")), 3);
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(d, "argv"), 2)),
			 "app.service");
	ck_assert_int_eq(json_integer_value(json_object_get(d, "timeout_ms")), 60000);
	ck_assert_str_eq(json_string_value(json_object_get(d, "key")),
			 "exec:[\"systemctl\",\"try-restart\",\"app.service\"]");

	s = json_array_get(specs, 1);
	ck_assert_str_eq(json_string_value(json_object_get(s, "policy")), "strict");
	ck_assert_str_eq(json_string_value(json_object_get(s, "environment")), "production");
	ck_assert_str_eq(json_string_value(json_object_get(s, "owner")), "team-a");
	ck_assert_int_eq(json_integer_value(json_object_get(s, "tier")), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(s, "last_rotated")), 1767312000);
	ck_assert_ptr_null(json_object_get(s, "description"));
	d = json_array_get(json_object_get(s, "dependents"), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(d, "timeout_ms")), 5000);
	ck_assert_str_eq(json_string_value(json_object_get(d, "key")), "exec:[\"/bin/true\"]");
	json_decref(specs);
	fx_done(&f);
}
END_TEST

START_TEST(test_inventory_environment_defaults_to_default_without_config_value)
{
	struct fx f;
	json_t *specs;

	fx_init(&f, "providers:\n  local: {type: local}\n");
	specs = load_ok(&f, "secrets:\n  - {name: a, locator: {path: a}}\n");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(specs, 0), "environment")),
			 RK_DEFAULT_ENVIRONMENT);
	json_decref(specs);
	fx_done(&f);
}
END_TEST

START_TEST(test_inventory_empty_list_is_fine_missing_list_is_not)
{
	struct fx f;
	json_t *specs;

	fx_init(&f, CONFIG_STAGING);
	specs = load_ok(&f, "secrets: []\n");
	ck_assert_int_eq(json_array_size(specs), 0);
	json_decref(specs);
	load_bad(&f, "secret: []\n", 1, 1, "unknown key 'secret'");
	/* An empty file has no position to name, but the file and the key are named. */
	{
		json_t *none = NULL;
		struct rk_error err = { 0 };
		rk_test_write(f.inv_path, "# nothing\n");
		ck_assert_int_eq(rk_inventory_load(&none, f.inv_path, f.cfg, f.pols, NOW, &err), RK_EINVAL);
		ck_assert_ptr_null(none);
		ck_assert_ptr_eq(strstr(err.msg, f.inv_path), err.msg);
		ck_assert_ptr_nonnull(strstr(err.msg, "required key 'secrets'"));
	}
	load_bad(&f, "secrets: {a: 1}\n", 1, 10, "'secrets'");
	fx_done(&f);
}
END_TEST

START_TEST(test_inventory_unknown_provider_is_an_error)
{
	struct fx f;

	fx_init(&f, CONFIG_STAGING);
	load_bad(&f, "secrets:\n  - name: a\n    provider: vault\n    locator: {path: a}\n", 3, 15,
		 "provider 'vault'");
	fx_done(&f);
}
END_TEST

START_TEST(test_inventory_unknown_policy_is_an_error)
{
	struct fx f;

	fx_init(&f, CONFIG_STAGING);
	load_bad(&f, "secrets:\n  - name: a\n    locator: {path: a}\n    policy: lax\n", 4, 13,
		 "policy 'lax'");
	fx_done(&f);
}
END_TEST

START_TEST(test_inventory_duplicate_name_is_an_error)
{
	struct fx f;

	fx_init(&f, CONFIG_STAGING);
	load_bad(&f,
		 "secrets:\n"
		 "  - {name: a, locator: {path: a}}\n"
		 "  - {name: b, locator: {path: b}}\n"
		 "  - name: a\n"
		 "    locator: {path: c}\n",
		 4, 0, "'a' is listed twice");
	fx_done(&f);
}
END_TEST

START_TEST(test_inventory_duplicate_locator_is_an_error)
{
	struct fx f;

	fx_init(&f, CONFIG_STAGING);
	load_bad(&f,
		 "secrets:\n"
		 "  - {name: a, locator: {path: same}}\n"
		 "  - name: b\n"
		 "    locator: {path: same}\n",
		 4, 0, "same provider and locator as 'a'");
	fx_done(&f);
}
END_TEST

START_TEST(test_inventory_same_locator_on_another_provider_is_fine)
{
	struct fx f;
	json_t *specs;

	fx_init(&f, "providers:\n  local: {type: local}\n  archive: {type: local}\n");
	specs = load_ok(&f, "secrets:\n"
			    "  - {name: a, locator: {path: same}}\n"
			    "  - {name: b, provider: archive, locator: {path: same}}\n");
	ck_assert_int_eq(json_array_size(specs), 2);
	json_decref(specs);
	fx_done(&f);
}
END_TEST

/*
 * The name grammar (README, inventory): segments of A-Z a-z 0-9 . _ -
 * separated by single '/', no empty, '.' or '..' segment, no '..', no leading
 * '-', 1-200 characters. Every name the examples, contrib and tests use passes.
 */
START_TEST(test_inventory_bad_names_are_refused)
{
	static const char *const bad[] = {
		"../x", "-x", "/abs", "a/../b", "a b", "a*", "\"\"", "é", "a/", "a//b", ".", "..",
		"a/./b", "./a", "a/.", "/", "a/b/", "x/..", "a..b", "\"a\\tb\"", "a:b", "a\\b",
		"x23456789012345678901234567890123456789012345678901234567890123456789012345678901"
		"23456789012345678901234567890123456789012345678901234567890123456789012345678901"
		"234567890123456789012345678901234567890X",	/* 201 characters */
	};
	static const char *const good[] = {
		"x", "a/b/c", "A.b_c-d", "v1.2", "payments/db-password", "ci/signing-key",
		"App_2.key", "internal/demo-token", "k8s/db", ".hidden/a", "a/-b", "a/b.", "v",
		"x23456789012345678901234567890123456789012345678901234567890123456789012345678901"
		"23456789012345678901234567890123456789012345678901234567890123456789012345678901"
		"234567890123456789012345678901234567890",	/* 200 characters */
	};
	struct fx f;
	char text[512];

	fx_init(&f, CONFIG_STAGING);
	for (size_t i = 0; i < RK_ARRAY_SIZE(bad); i++) {
		snprintf(text, sizeof(text), "secrets:\n  - locator: {path: p}\n    name: %s\n", bad[i]);
		load_bad(&f, text, 3, 11, "must be 1-200 characters: segments of A-Z a-z 0-9");
	}
	for (size_t i = 0; i < RK_ARRAY_SIZE(good); i++) {
		json_t *specs;
		snprintf(text, sizeof(text), "secrets:\n  - locator: {path: p}\n    name: %s\n", good[i]);
		specs = load_ok(&f, text);
		ck_assert_str_eq(json_string_value(json_object_get(json_array_get(specs, 0), "name")),
				 good[i]);
		json_decref(specs);
	}
	fx_done(&f);
}
END_TEST

/* An environment is one word: no '/', no whitespace (it is matched and printed as is). */
START_TEST(test_inventory_bad_environments_are_refused)
{
	static const char *const bad[] = { "prod/eu", "\"my env\"", "\" prod\"", "\"prod\\t\"",
					   "\"\"", "é", "a*",
					   "x2345678901234567890123456789012345678901234567890123456789012345" };
	static const char *const good[] = { "production", "eu-west-1", "stage_2", "v1.0", "TEST",
					    "x234567890123456789012345678901234567890123456789012345678901234" };
	struct fx f;
	char text[256];

	fx_init(&f, CONFIG_STAGING);
	for (size_t i = 0; i < RK_ARRAY_SIZE(bad); i++) {
		snprintf(text, sizeof(text),
			 "secrets:\n  - name: a\n    locator: {path: a}\n    environment: %s\n", bad[i]);
		load_bad(&f, text, 4, 18, "environment");
		load_bad(&f, text, 4, 18, "must be 1-64 characters of A-Z a-z 0-9");
	}
	for (size_t i = 0; i < RK_ARRAY_SIZE(good); i++) {
		json_t *specs;
		snprintf(text, sizeof(text),
			 "secrets:\n  - name: a\n    locator: {path: a}\n    environment: %s\n",
			 good[i]);
		specs = load_ok(&f, text);
		ck_assert_str_eq(json_string_value(json_object_get(json_array_get(specs, 0),
								   "environment")), good[i]);
		json_decref(specs);
	}
	fx_done(&f);
}
END_TEST

START_TEST(test_inventory_bad_tier_is_refused)
{
	struct fx f;
	json_t *specs;

	fx_init(&f, CONFIG_STAGING);
	load_bad(&f, "secrets:\n  - {name: a, locator: {path: a}, tier: 10}\n", 2, 0, "tier");
	load_bad(&f, "secrets:\n  - {name: a, locator: {path: a}, tier: -1}\n", 2, 0, "tier");
	load_bad(&f, "secrets:\n  - name: a\n    locator: {path: a}\n    tier: high\n", 4, 11,
		 "'tier'");
	specs = load_ok(&f, "secrets:\n  - {name: a, locator: {path: a}, tier: 9}\n");
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(specs, 0), "tier")), 9);
	json_decref(specs);
	fx_done(&f);
}
END_TEST

START_TEST(test_inventory_bad_last_rotated_is_refused)
{
	struct fx f;
	json_t *specs;

	fx_init(&f, CONFIG_STAGING);
	load_bad(&f, "secrets:\n  - name: a\n    locator: {path: a}\n    last_rotated: yesterday\n",
		 4, 19, "last_rotated");
	load_bad(&f, "secrets:\n  - name: a\n    locator: {path: a}\n    last_rotated: 2026-02-30\n",
		 4, 19, "last_rotated");
	specs = load_ok(&f, "secrets:\n  - name: a\n    locator: {path: a}\n"
			    "    last_rotated: 2026-01-02T03:04:05Z\n");
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(specs, 0),
							    "last_rotated")), 1767323045);
	json_decref(specs);
	fx_done(&f);
}
END_TEST

/*
 * A last_rotated in the future would hide a secret's age until then: refused,
 * naming file:line:col; up to 5 minutes ahead (another host's clock) is fine.
 */
START_TEST(test_inventory_last_rotated_in_the_future_is_refused)
{
	static const struct {
		const char *when;
		int ok;
	} cases[] = {
		{ "2026-03-01T00:00:00Z", 1 },	/* now */
		{ "2026-02-28T23:59:59Z", 1 },
		{ "2026-03-01T00:05:00Z", 1 },	/* the allowed skew */
		{ "2026-03-01T00:05:01Z", 0 },
		{ "2026-03-01T01:00:00Z", 0 },
		{ "2026-03-02", 0 },
		{ "2036-01-01", 0 },
	};
	struct fx f;
	char text[256];

	fx_init(&f, CONFIG_STAGING);
	for (size_t i = 0; i < RK_ARRAY_SIZE(cases); i++) {
		snprintf(text, sizeof(text),
			 "secrets:\n  - name: a\n    locator: {path: a}\n    last_rotated: %s\n",
			 cases[i].when);
		if (cases[i].ok) {
			json_decref(load_ok(&f, text));
		} else {
			load_bad(&f, text, 4, 19, "last_rotated");
			load_bad(&f, text, 4, 19, "is in the future (now: 2026-03-01T00:00:00Z; up to 5 "
				 "minutes of clock skew are allowed)");
		}
	}
	fx_done(&f);
}
END_TEST

START_TEST(test_inventory_locator_is_checked_by_provider_type)
{
	struct fx f;

	fx_init(&f, CONFIG_STAGING);
	load_bad(&f, "secrets:\n  - name: a\n    locator: {path: a, key: b}\n", 3, 0,
		 "unknown key 'key' in locator of 'a'");
	load_bad(&f, "secrets:\n  - name: a\n    locator: {}\n", 3, 14, "required key 'path'");
	load_bad(&f, "secrets:\n  - name: a\n    locator: {path: \"\"}\n", 3, 0, "1 to 512");
	load_bad(&f, "secrets:\n  - name: a\n", 2, 0, "required key 'locator'");
	fx_done(&f);
}
END_TEST

START_TEST(test_inventory_exec_dependent_needs_an_argv)
{
	struct fx f;

	fx_init(&f, CONFIG_STAGING);
	load_bad(&f,
		 "secrets:\n  - name: a\n    locator: {path: a}\n    dependents:\n"
		 "      - exec: []\n",
		 5, 0, "non-empty argv");
	load_bad(&f,
		 "secrets:\n  - name: a\n    locator: {path: a}\n    dependents:\n"
		 "      - exec: [\"\", x]\n",
		 5, 0, "non-empty argv");
	load_bad(&f,
		 "secrets:\n  - name: a\n    locator: {path: a}\n    dependents:\n"
		 "      - exec: \"systemctl restart app\"\n",
		 5, 0, "a list of strings");
	/* An element that is not a string is named, with why and where. */
	load_bad(&f,
		 "secrets:\n  - name: a\n    locator: {path: a}\n    dependents:\n"
		 "      - exec: [true]\n",
		 5, 16, "exec[0] in dependent must be a string; `true` is a YAML boolean: quote it");
	load_bad(&f,
		 "secrets:\n  - name: a\n    locator: {path: a}\n    dependents:\n"
		 "      - exec:\n          - sleep\n          - 5\n",
		 7, 13, "exec[1] in dependent must be a string; `5` is a YAML integer: quote it (\"5\")");
	load_bad(&f,
		 "secrets:\n  - name: a\n    locator: {path: a}\n    dependents:\n"
		 "      - {exec: [x], timeout: 10ms}\n",
		 5, 0, "at least 1s");
	load_bad(&f,
		 "secrets:\n  - name: a\n    locator: {path: a}\n    dependents:\n"
		 "      - {systemd: app.service}\n",
		 5, 0, "'kubernetes' or an 'exec'");
	load_bad(&f,
		 "secrets:\n  - name: a\n    locator: {path: a}\n    dependents:\n"
		 "      - app.service\n",
		 5, 0, "a dependent must be");
	fx_done(&f);
}
END_TEST

START_TEST(test_inventory_kubernetes_dependent_needs_a_provider_that_can_restart)
{
	struct fx f;

	fx_init(&f, CONFIG_STAGING);
	load_bad(&f,
		 "secrets:\n  - name: a\n    locator: {path: a}\n    dependents:\n"
		 "      - kubernetes: local/deployment/ns/api\n",
		 5, 21, "provider 'local' (type local) cannot restart");
	load_bad(&f,
		 "secrets:\n  - name: a\n    locator: {path: a}\n    dependents:\n"
		 "      - kubernetes: cluster/deployment/ns/api\n",
		 5, 21, "provider 'cluster', which is not in");
	load_bad(&f,
		 "secrets:\n  - name: a\n    locator: {path: a}\n    dependents:\n"
		 "      - kubernetes: deployment\n",
		 5, 21, "PROVIDER/KIND/NAMESPACE/NAME");
	fx_done(&f);
}
END_TEST

Suite *
inventory_suite(void)
{
	Suite *s = suite_create("inventory");
	TCase *tc = tcase_create("core");

	tcase_add_unchecked_fixture(tc, rk_test_base_setup, rk_test_base_teardown);
	tcase_add_test(tc, test_inventory_valid_entries_are_normalized_with_defaults);
	tcase_add_test(tc, test_inventory_environment_defaults_to_default_without_config_value);
	tcase_add_test(tc, test_inventory_empty_list_is_fine_missing_list_is_not);
	tcase_add_test(tc, test_inventory_unknown_provider_is_an_error);
	tcase_add_test(tc, test_inventory_unknown_policy_is_an_error);
	tcase_add_test(tc, test_inventory_duplicate_name_is_an_error);
	tcase_add_test(tc, test_inventory_duplicate_locator_is_an_error);
	tcase_add_test(tc, test_inventory_same_locator_on_another_provider_is_fine);
	tcase_add_test(tc, test_inventory_bad_names_are_refused);
	tcase_add_test(tc, test_inventory_bad_environments_are_refused);
	tcase_add_test(tc, test_inventory_bad_tier_is_refused);
	tcase_add_test(tc, test_inventory_bad_last_rotated_is_refused);
	tcase_add_test(tc, test_inventory_last_rotated_in_the_future_is_refused);
	tcase_add_test(tc, test_inventory_locator_is_checked_by_provider_type);
	tcase_add_test(tc, test_inventory_exec_dependent_needs_an_argv);
	tcase_add_test(tc, test_inventory_kubernetes_dependent_needs_a_provider_that_can_restart);
	suite_add_tcase(s, tc);
	return s;
}
