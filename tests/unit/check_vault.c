/*
 * The vault provider's locators (providers/vault.c): what parse_locator
 * makes of a KV and a Transit locator, the mount taken from the instance
 * when the locator names none, and a malformed locator refused. Its HTTP
 * side is tested against the scripted server of check_http.c.
 */
#include <check.h>
#include <string.h>

#include "rekey/provider.h"
#include "rekey/util.h"
#include "../../providers/vault_int.h"
#include "unit.h"

/* An instance with mounts of its own; opening it neither connects nor reads the token file. */
static struct rk_provider *
open_vault(void)
{
	struct rk_provider_env env = { .name = "vault-ar" };
	struct rk_provider *p = NULL;
	struct rk_error err = { 0 };
	json_t *cfg = json_pack("{s:s, s:s, s:s, s:s, s:{s:s, s:s}}", "type", "vault", "address",
				"https://vault.invalid:8200", "kv_mount", "kv", "transit_mount",
				"tr", "auth", "method", "token", "token_file",
				"/nonexistent/token");

	ck_assert_msg(rk_provider_open(&p, rk_provider_find_type("vault"), &env, cfg, &err) == 0,
		      "%s", err.msg);
	json_decref(cfg);
	return p;
}

START_TEST(test_vault_parse_locator_gives_the_typed_fields)
{
	static const struct {
		const char *json;
		struct vault_loc want;
	} cases[] = {
		{ "{\"path\": \"payments/db\", \"key\": \"password\"}",
		  { VAULT_KV, "kv", "payments/db", "password", NULL, 0 } },
		/* A mount of its own wins over the instance's kv_mount. */
		{ "{\"path\": \"x\", \"key\": \"k\", \"mount\": \"team-kv\"}",
		  { VAULT_KV, "team-kv", "x", "k", NULL, 0 } },
		{ "{\"transit_key\": \"payments\", \"min_decryption_keep\": 3}",
		  { VAULT_TRANSIT, "tr", NULL, NULL, "payments", 3 } },
		{ "{\"transit_key\": \"orders\"}", { VAULT_TRANSIT, "tr", NULL, NULL, "orders", 0 } },
	};
	struct rk_provider *p = open_vault();

	for (size_t i = 0; i < RK_ARRAY_SIZE(cases); i++) {
		json_t *json = json_loads(cases[i].json, 0, NULL);
		const struct vault_loc *w = &cases[i].want, *got;
		struct rk_loc loc;
		struct rk_error err = { 0 };

		ck_assert_ptr_nonnull(json);
		ck_assert_msg(rk_loc_parse(&loc, p, json, &err) == 0, "%s", err.msg);
		got = loc.typed;
		ck_assert_int_eq(got->engine, w->engine);
		ck_assert_pstr_eq(got->mount, w->mount);
		ck_assert_pstr_eq(got->path, w->path);
		ck_assert_pstr_eq(got->key, w->key);
		ck_assert_pstr_eq(got->transit_key, w->transit_key);
		ck_assert_int_eq(got->min_decryption_keep, w->min_decryption_keep);
		/* Transit keys are made by Vault; KV values by rekey. */
		ck_assert_int_eq(rk_provider_generates(p, &loc), w->engine == VAULT_TRANSIT);
		rk_loc_free(&loc);
		json_decref(json);
	}
	rk_provider_close(p);
}
END_TEST

START_TEST(test_vault_parse_locator_rejects_a_malformed_locator)
{
	struct rk_provider *p = open_vault();
	json_t *bad[] = {
		json_object(),
		json_pack("{s:s}", "path", "payments/db"),	/* no key */
		json_pack("{s:s}", "key", "password"),		/* no path */
		json_pack("{s:i, s:s}", "path", 1, "key", "k"),	/* not a string */
	};

	for (size_t i = 0; i < RK_ARRAY_SIZE(bad); i++) {
		struct rk_loc loc;
		struct rk_error err = { 0 };
		ck_assert_ptr_nonnull(bad[i]);
		ck_assert_int_eq(rk_loc_parse(&loc, p, bad[i], &err), RK_EINVAL);
		ck_assert_str_eq(err.provider, "vault-ar");
		ck_assert_str_eq(err.step, "locator");
		ck_assert_msg(strstr(err.msg, "needs path and key") != NULL, "%s", err.msg);
		ck_assert_ptr_null(loc.typed);
		json_decref(bad[i]);
	}
	rk_provider_close(p);
}
END_TEST

Suite *
vault_suite(void)
{
	Suite *s = suite_create("vault");
	TCase *tc = tcase_create("locator");

	tcase_add_test(tc, test_vault_parse_locator_gives_the_typed_fields);
	tcase_add_test(tc, test_vault_parse_locator_rejects_a_malformed_locator);
	suite_add_tcase(s, tc);
	return s;
}
