/*
 * The guard's value checks: a table of defaults, placeholders, weak-but-long
 * values and near misses (each row says exactly which checks fail), strong
 * values from every generator that must pass, reasons that never echo the
 * value, trimming and case folding, prefix and forbid rules, list parsing
 * errors that name file:line, and the entropy threshold.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sodium.h>

#include "rekey/check.h"
#include "rekey/embedded.h"
#include "rekey/gen.h"
#include "rekey/secret.h"
#include "rekey/util.h"
#include "unit.h"

#define BIT(id) (1u << (id))
#define D BIT(RK_CHECK_DEFAULT)
#define F BIT(RK_CHECK_FORBIDDEN)
#define H BIT(RK_CHECK_PLACEHOLDER)
#define L BIT(RK_CHECK_LENGTH)
#define E BIT(RK_CHECK_ENTROPY)
#define OK 0u

#define LIST_PATH "policy/known-defaults.txt"

/* The built-in list and the hashed corpus, as the guard loads them. */
static struct rk_defaults *
builtin(void)
{
	const struct rk_embedded_file *f = rk_embedded_find(LIST_PATH);
	struct rk_defaults *d = NULL;
	struct rk_error err = { 0 };

	ck_assert_ptr_nonnull(f);
	ck_assert_msg(rk_defaults_parse(&d, f->path, f->data, f->len, &err) == 0, "%s", err.msg);
	rk_defaults_set_corpus(d, &rk_known_secrets);
	return d;
}

static struct rk_defaults *
parse_ok(const char *text)
{
	struct rk_defaults *d = NULL;
	struct rk_error err = { 0 };

	ck_assert_msg(rk_defaults_parse(&d, "t.txt", text, strlen(text), &err) == 0, "%s",
		      err.msg);
	return d;
}

/* The rules of policy/default.yaml: min_length 16, min_entropy_bits 64. */
static struct rk_value_rules
default_rules(const struct rk_defaults *defaults, const struct rk_defaults *forbid)
{
	struct rk_value_rules r = {
		.min_length = 16, .min_entropy_bits = 64, .defaults = defaults, .forbid = forbid,
	};

	return r;
}

static unsigned
failed_mask(const struct rk_check_result res[RK_CHECK_VALUE_COUNT])
{
	unsigned m = 0;

	for (int i = 0; i < RK_CHECK_VALUE_COUNT; i++)
		if (res[i].ok == 0)
			m |= BIT(i);
	return m;
}

static void
mask_names(unsigned m, char *buf, size_t n)
{
	buf[0] = '\0';
	for (int i = 0; i < RK_CHECK_VALUE_COUNT; i++)
		if (m & BIT(i)) {
			strncat(buf, rk_check_name((enum rk_check_id)i), n - strlen(buf) - 1);
			strncat(buf, " ", n - strlen(buf) - 1);
		}
	if (buf[0] == '\0')
		strncat(buf, "(none)", n - 1);
}

/*
 * No reason contains the value, in any case, nor any 6-byte piece of it: a
 * reason may be logged anywhere, and half a password is still a leak. The
 * whole-value test starts at whole_min bytes: "1" or "key" (as in "rekey")
 * cannot be kept out of prose.
 */
static void
assert_reasons_clean(const char *label, const unsigned char *v, size_t len, size_t whole_min,
		     const struct rk_check_result res[RK_CHECK_VALUE_COUNT])
{
	char piece[7];

	for (int i = 0; i < RK_CHECK_VALUE_COUNT; i++) {
		const char *reason = res[i].reason;

		ck_assert_msg(res[i].id == (enum rk_check_id)i, "%s: result %d out of order", label, i);
		ck_assert_msg(res[i].ok == 0 || reason[0] == '\0',
			      "%s: %s passed or n/a but has a reason", label,
			      rk_check_name((enum rk_check_id)i));
		ck_assert_msg(res[i].ok != 0 || reason[0] != '\0', "%s: %s failed without a reason",
			      label, rk_check_name((enum rk_check_id)i));
		ck_assert_msg(strlen(reason) < sizeof(res[i].reason) - 1, "%s: %s reason truncated",
			      label, rk_check_name((enum rk_check_id)i));
		if (reason[0] == '\0' || len == 0)
			continue;
		if (len >= whole_min && memchr(v, '\0', len) == NULL) {
			char *whole = strndup((const char *)v, len);

			ck_assert_ptr_nonnull(whole);
			ck_assert_msg(strcasestr(reason, whole) == NULL,
				      "%s: %s reason contains the value", label,
				      rk_check_name((enum rk_check_id)i));
			sodium_memzero(whole, len);
			free(whole);
		}
		for (size_t off = 0; len >= 6 && off + 6 <= len; off++) {
			memcpy(piece, v + off, 6);
			piece[6] = '\0';
			if (strlen(piece) < 6)
				continue;	/* holds a NUL: cannot appear in a C string */
			ck_assert_msg(strcasestr(reason, piece) == NULL,
				      "%s: %s reason contains 6 bytes of the value at offset %zu",
				      label, rk_check_name((enum rk_check_id)i), off);
		}
	}
}

/* Runs the checks, asserts reason hygiene, returns the mask of failures. */
static unsigned
run(const char *label, const void *v, size_t len, const struct rk_value_rules *rules,
    struct rk_check_result res[RK_CHECK_VALUE_COUNT])
{
	int n = rk_check_value(v, len, rules, res);
	unsigned m = failed_mask(res);

	ck_assert_int_eq(n, __builtin_popcount(m));
	assert_reasons_clean(label, v, len, 1, res);
	return m;
}

static unsigned
run_str(const char *v, const struct rk_value_rules *rules,
	struct rk_check_result res[RK_CHECK_VALUE_COUNT])
{
	return run(v, v, strlen(v), rules, res);
}

/* ---- the acceptance table ------------------------------------------------ */

/*
 * Every row is checked with the default policy (16 characters, 64 bits), the
 * built-in list, and a forbid list of "payments-dev-password" and
 * "acme-staging-*". `fail` is the exact set of checks that must fail.
 */
static const struct row {
	const char *value;
	unsigned fail;
} table[] = {
	/* Known defaults and documented examples: refused by the list. */
	{ "changeme", D | H | L | E },
	{ "secret", D | L | E },
	{ "password", D | L | E },
	{ "admin", D | L | E },
	{ "root", D | L | E },
	{ "toor", D | L | E },
	{ "letmein", D | L | E },
	{ "123456", D | L | E },
	{ "qwerty", D | L | E },
	{ "hunter2", D | L | E },
	{ "P@ssw0rd", D | L | E },
	{ "Passw0rd!", D | L | E },
	{ "password123", D | L | E },
	{ "keyboard cat", D | L | E },
	{ "notasecret", D | H | L | E },
	{ "SECRET_KEY", D | H | L | E },
	{ "mysecretpassword", D | E },
	{ "example", D | H | L | E },
	{ "test", D | L | E },
	{ "default", D | L | E },
	{ "guest", D | L | E },
	{ "minioadmin", D | L | E },
	{ "AKIAIOSFODNN7EXAMPLE", D | H | E },
	{ "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", D | H },
	{ "dev", D | L | E },
	{ "development", D | L | E },
	{ "secretkey", D | L | E },
	{ "jwt-secret", D | H | L | E },
	{ "your-256-bit-secret", D | H | E },
	{ "SomeRandomString", D | H | E },
	{ "changeit", D | L | E },
	{ "supersecret", D | L | E },
	{ "foobared", D | L | E },
	{ "ThisTokenIsNotSoSecretChangeIt", D | H | E },
	{ "my-secret-pw", D | L | E },
	{ "temporary_key", D | H | L | E },
	{ "put your unique phrase here", D },
	{ "Harbor12345", D | L | E },
	{ "5iveL!fe", D | L | E },
	{ "1f2d1e2e67df", D | L | E },
	{ "sk_test_4eC39HqLyjWDarjtT1zdp7dc", D },
	{ "shhhhh", D | L | E },
	{ "tobemodified", D | L | E },
	{ "YourStrong@Passw0rd", D | E },
	{ "base64:", D | L | E },
	{ "iloveyou", D | L | E },
	{ "trustno1", D | L | E },
	{ "welcome", D | L | E },
	{ "postgres", D | L | E },
	{ "CHANGE_ME_TO_A_COMPLEX_RANDOM_SECRET", D | H },
	/* Case and surrounding whitespace or quotes do not hide a default. */
	{ "CHANGEME", D | H | L | E },
	{ "Dev-Secret", D | H | L | E },
	{ "PASSWORD", D | L | E },
	{ "  changeme\n", D | H | L | E },
	{ "'changeme'", D | H | L | E },
	{ "\"secret\"", D | L | E },
	{ " 'Keyboard Cat' ", D | L | E },
	{ "\tadmin\r\n", D | L | E },
	/* Prefix rules. */
	{ "django-insecure-q7w!e9r#t2y$u5i%o8p^a3s&d6f", D },
	{ "DJANGO-INSECURE-Zk3mQ8vR2xL7pW4nT9cB", D },
	{ "insecure-Kp4mR8vQ2zX7wN3cL9tB", D },
	/* The policy's forbid list. */
	{ "payments-dev-password", F | E },
	{ "Payments-Dev-Password", F | E },
	{ "acme-staging-Rk8vQ2mL7pW4nT9c", F },
	/* Placeholders. */
	{ "<your-api-key>", H | L | E },
	{ "<API_KEY>", H | L | E },
	{ "<must-be-changed>", H | E },
	{ "${DB_PASSWORD}", H | L | E },
	{ "${SECRET_KEY:-changeme}", H },
	{ "${API_TOKEN-unset}", H },
	{ "{{ .Values.secret }}", H },
	{ "{{SECRET}}", H | L | E },
	{ "%API_KEY%", H | L | E },
	{ "$SECRET", H | L | E },
	{ "__SECRET_KEY__", H | L | E },
	{ "__db_password__", H | L | E },
	{ "#{ApiKey}", H | L | E },
	{ "#{Project.Database.Password}", H },
	{ "${DB_PASSWORD:?must be set}", H },
	{ "$(cat /run/secrets/db_password)", H },
	{ "<insert secret here>", H | E },
	{ "xxx", H | L | E },
	{ "XXXXXXXXXXXXXXXXXXXXXXXX", H | E },
	{ "xxx-replace-with-real-key", H },
	{ "XXX_SECRET", H | L | E },
	{ "xxx-xxx-xxx", H | L | E },
	{ "xxxx-xxxx-xxxx-1234", H | E },
	{ "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", H | E },
	{ "sk_live_xxxxxxxxxxxxxxxxxxxxxxxx", H | E },
	{ "TODO", H | L | E },
	{ "todo: set before deploying", H },
	{ "FIXME", H | L | E },
	{ "TBD", H | L | E },
	{ "REPLACE_ME", H | L | E },
	{ "replace-me", H | L | E },
	{ "CHANGE_ME", H | L | E },
	{ "change-me", H | L | E },
	{ "changeme123", H | L | E },
	{ "please-change-me", H | E },
	{ "PleaseChangeMe", H | L | E },
	{ "PLEASE_CHANGE_ME_NOW", H | E },
	{ "Change_Me_Please_2024", H | E },
	{ "this-is-just-an-example-key-4f9a", H },
	{ "placeholder", H | L | E },
	{ "dummy", H | L | E },
	{ "dummy-api-token-for-local-tests", H },
	{ "your-api-key-here", H | E },
	{ "your_secret_here", H | E },
	{ "YourSecretKeyGoesHere", H | E },
	{ "insert-your-token-here-please", H },
	{ "aaaaaaaaaaaaaaaaaaaaaaaa", H | E },
	{ "0000000000000000", H | E },
	{ "********", H | L | E },
	{ "****1234", H | L | E },
	{ "sk_live_******************abcd", H | E },
	{ "\xe2\x80\xa2\xe2\x80\xa2\xe2\x80\xa2\xe2\x80\xa2\xe2\x80\xa2\xe2\x80\xa2"
	  "\xe2\x80\xa2\xe2\x80\xa2\xe2\x80\xa2\xe2\x80\xa2\xe2\x80\xa2\xe2\x80\xa2"
	  "\xe2\x80\xa2\xe2\x80\xa2\xe2\x80\xa2\xe2\x80\xa2", H | E },
	{ "[REDACTED]", H | L | E },
	{ "\"<your-api-key>\"", H },
	/* Phrases made only of stand-in words, at any length (is_phrase). */
	{ "demo-secret-change-in-production", H },
	{ "ChangeMeInProduction", H | E },
	{ "your_api_key_here", H | E },
	{ "this-is-not-a-secret-do-not-use-in-production", H },
	{ "insecure.dev.key", H | E },
	{ "SuperSecretKey123", H | E },
	{ "my-super-secret-jwt-signing-key", H },
	{ "DEV_ONLY_INSECURE_TOKEN", H },
	{ "replace-with-a-real-api-token", H },
	{ "test.api.key.2024", H | E },
	{ "SampleAppSecret", H | L | E },
	{ "please-use-a-unique-password", H | E },
	{ "default_session_cookie_key", H },
	{ "local-dev-db-password", H | E },
	{ "fake api token for tests", H },
	{ "TempTokenValue", H | L | E },
	{ "foo-bar-baz-secret", H | E },
	{ "my_app_secret_key_1", H },
	{ "AppSecretKey", H | L | E },
	{ "prod-2024-secret-key", H },
	{ "'Not_A_Real_Password'", H | E },
	{ "ThisIsATestKeyForLocalDevelopmentOnly", H },
	/* Near misses: stand-in words beside a generated part, and other words. */
	{ "demo-Xk9fQ2vLp8RzT4wB", OK },
	{ "correct-horse-battery-staple-orbit-lantern", OK },
	{ "secret-key-Rk8vQ2mL7pW4nT9c", OK },
	{ "insecure.dev.key.q7Rv2mZ9pL4wX8kT", OK },
	{ "SuperSecretKeyZq8vR2mL7pW4nT9c", OK },
	{ "token-2f9c7e1a4b8d6f0e3c5a9b7d1e4f8a2c", OK },
	{ "test.Vq7Lr2Zk9Xp4Wm8N", OK },
	{ "dev-key-3f8a1c9e7b2d4f6a9c0e", OK },
	{ "mosaic-quiver-tundra-pellet-ember-gravel", OK },
	{ "PassphraseOrbitLanternCopperOyster", OK },
	{ "my-Y8kR2vQ9mZ4pL7wX3t", OK },
	{ "api_key_9Fq2Lx7Rv4Zm8Tk3Wn", OK },
	{ "a1be9c0f3d7e2b8a6f4c1e0d9b7a5c3f", OK },
	{ "Secret Orbit Lantern Copper Mosaic", OK },
	/* Weak but long: only the entropy estimate catches them. */
	{ "passwordpasswordpassword", E },
	{ "1234567890123456789", E },
	{ "qwertyuiopasdfghjkl", E },
	{ "abcdefghijklmnopqrstuvwxyz", E },
	{ "iloveyouiloveyou", E },
	{ "letmeinletmeinletmein", E },
	{ "adminadminadminadmin", E },
	{ "trustno1trustno1", E },
	{ "Password1Password1Password1", E },
	{ "qazwsxedcrfvtgbyhn", E },
	{ "Summer2024Summer2024", E },
	{ "1111222233334444", E },
	{ "princessprincess", E },
	{ "abcabcabcabcabcabc", E },
	{ "P@ssw0rdP@ssw0rd", E },
	{ "dragonfootball123", E },
	{ "monkeymonkeymonkey", E },
	{ "zxcvbnmasdfghjkl", E },
	/* Near misses: a default inside random text, passphrases, look-alikes. */
	{ "Xk9mPsecretQ2vL8nR4wT7yB1zD", OK },
	{ "q7Rv2adminT9xLp4Zw8Kc3Nf", OK },
	{ "Jd8!passwordkQ3zVx7mWp2L", OK },
	{ "correct-horse-battery-staple-orbit", OK },
	{ "gravel lantern minted copper oyster", OK },
	{ "tundra quiver mosaic pellet ember", OK },
	{ "8fTxxxQ2mLp9Rv4Zk7Wc3Nd1", OK },
	{ "xxxQ7rV2mZ9pL4wX8kT3nB6", OK },
	/* Real base64url values an earlier "leading xxx + separator" rule refused. */
	{ "xXx_FEFkh2xy3oWuX2lgzuYLk_nrnh8XzKVtVCulYOE", OK },
	{ "XXX-LzlNgBUZxHWTkB1LkigJOAhPkrF2TloUyqnUfpY", OK },
	{ "xXx.9yfUweobE5Rl3oGA.FAf~6=YN=LE", OK },
	{ "h1hQWUNCL-SW_rDHXHESP8YJKqeAxxxxXxete6qCd_g", OK },
	{ "h1hQWUNCL+SW/rDHXHESP8YJKqeAxxxxXxete6qCd/g=", OK },
	{ "sk_live_XXXXXXXXXXXXXXXXXXXXXXXX", H | E },
	{ "YOUR_ygpO7_CyrSHkt6YECf-GlXEKazM", OK },
	{ "ToDo_gQzeImbhnW9cdnUvpK5-gKEV6Q0qj93szsj4Yc", OK },
	{ "fYO3wxJDTi8fN_cLYeukS0i65HsJimqkSADbs__TOdo", OK },
	{ "toDO-T2gCJWqH7hfeF_j6pFnJSElLwaQFihTiMCx87c", OK },
	{ "__Rk8vQ2mL7pW4nT9cB3xK6y__", OK },
	{ "__WBUiu_suZdrGIvBiNLaefPDMWXBp__", OK },
	{ "XXXx.hDkXBsARZiFk-K-EgrBjkXgYMiT", OK },
	{ "j/htpW3q7sKRN0nOtreaL3FcIE7++QWovFCMHTLVnV8=", OK },
	{ "j_htpW3q7sKRN0nOtreaL3FcIE7--QWovFCMHTLVnV8", OK },
	{ "wd}*****BE~S}9r$-w0E$deGHSksNr!u", OK },
	{ "****L8&&$bodq{^$KP)C6;jVT&j63drZ", OK },
	/* Mixed case is not a variable name to the template rule; zxcvbn still sees words. */
	{ "$DbPasswordFromVaultLater", E },
	/* Random passwords that happen to open and close like a template. */
	{ "${Rk8v!Q2mL#7pW4nT9cB3x}", OK },
	{ "<Rk8vQ2mL7pW4nT9cB3xK6y>", OK },
	{ "$Rk8vQ2mL7pW4nT9cB3xK6yH5", OK },
	{ "%Rk8vQ2mL7pW4nT9cB3xK6y%", OK },
	{ "#{Rk8v!Q2mL#7pW4nT9cB3x}", OK },
	{ "$(Rk8v!Q2mL#7pW4nT9cB3x)", OK },
	{ "$(Ylp?XT_py9Ks@rbz,fw46,hv7m3Y4)", OK },
	{ "{{Rk8v!Q2mL#7pW4nT9cB3x}}", OK },
	{ "****Rk8v!Q2mL#7pW4nT9cB3x", OK },
	{ "${Rk8v:-Q2mL7pW4nT9cB3xK6y}", OK },
	{ "Kp4mTodoListR8vQ2zX7wN3cL", OK },
	{ "changeitQ7rV2mZ9pL4wX8kT3n", OK },
	{ "django-secure-Rk8vQ2mL7pW4nT9cB", OK },
	{ "my-django-insecure-Rk8vQ2mL7pW4nT9c", OK },
	{ "minioadmin-Rk8vQ2mL7pW4nT9cB3x", OK },
	{ "'Zq8!vR2#mL7pW4nT9cB3xK6y'", OK },
	{ "  Zq8vR2mL7pW4nT9cB3xK6yH5  ", OK },
	{ "tbd-Rk8vQ2mL7pW4nT9cB3xK", OK },
	{ "Yourself-Rk8vQ2mL7pW4nT9cB", OK },
	{ "dummyproof-Rk8vQ2mL7pW4nT9cB", OK },
	{ "sk_live_51HqLyjWDarjtT1zdp7dcQ9x", OK },
	{ "Tr0ub4dor&3-horse-Nebula-quartz", OK },
	{ "secret-Rk8vQ2mL7pW4nT9cB3xK6y", OK },
	{ "Rk8vQ2mL7pW4nT9cB3xK6y-password", OK },
	{ "AKIAIOSFODNN7EXAMPL3-Rk8vQ2mL7pW4", OK },
	{ "pa\xd1\x81sword-\xd0\x96\xd1\x8e\xd1\x84\xd1\x91-Rk8vQ2mL7pW4", OK },
};

START_TEST(test_table_of_values_fails_exactly_the_expected_checks)
{
	struct rk_defaults *list = builtin();
	struct rk_defaults *forbid = parse_ok("payments-dev-password\nacme-staging-*\n");
	struct rk_value_rules rules = default_rules(list, forbid);
	struct rk_value_rules with_corpus;
	struct rk_check_result res[RK_CHECK_VALUE_COUNT];
	char want[128], got[128], report[4096] = "";
	size_t accepted = 0, refused = 0, wrong = 0;

	/*
	 * The exact sets are those of the parsed list alone: which third-party
	 * lists the corpus holds depends on the build (many of these rows are
	 * in them). Every accepted row must stay accepted with the corpus.
	 */
	with_corpus = rules;
	rk_defaults_set_corpus(list, NULL);
	ck_assert_uint_ge(RK_ARRAY_SIZE(table), 100);
	for (size_t i = 0; i < RK_ARRAY_SIZE(table); i++) {
		unsigned m = run_str(table[i].value, &rules, res);
		size_t used = strlen(report);

		ck_assert_int_eq(res[RK_CHECK_PRESENT].ok, 1);
		if (table[i].fail == OK) {
			rk_defaults_set_corpus(list, &rk_known_secrets);
			ck_assert_msg(run_str(table[i].value, &with_corpus, res) == 0,
				      "row %zu: an accepted value is refused with the corpus", i);
			rk_defaults_set_corpus(list, NULL);
		}
		if (m == 0)
			accepted++;
		else
			refused++;
		if (m == table[i].fail)
			continue;
		/* Collect every wrong row, so one run shows the whole picture. */
		wrong++;
		mask_names(table[i].fail, want, sizeof(want));
		mask_names(m, got, sizeof(got));
		snprintf(report + used, sizeof(report) - used, "\n  row %zu: want {%s} got {%s}", i,
			 want, got);
	}
	ck_assert_msg(wrong == 0, "%zu rows fail other checks than expected:%s", wrong, report);
	ck_assert_uint_ge(accepted, 20);
	ck_assert_uint_ge(refused, 80);
	rk_defaults_free(forbid);
	rk_defaults_free(list);
}
END_TEST

/* Every entry of the shipped list is refused, and no reason repeats it. */
START_TEST(test_every_builtin_entry_is_refused_without_being_echoed)
{
	const struct rk_embedded_file *f = rk_embedded_find(LIST_PATH);
	struct rk_defaults *list = builtin();
	struct rk_value_rules rules = default_rules(list, NULL);
	struct rk_check_result res[RK_CHECK_VALUE_COUNT];
	const char *p = f->data, *end = f->data + f->len;
	size_t entries = 0, prefixes = 0;

	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		char value[1200];

		while (n > 0 && (p[0] == ' ' || p[0] == '\t'))
			p++, n--;
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r'))
			n--;
		if (n > 0 && p[0] != '#') {
			ck_assert_uint_lt(n, 1000);
			memcpy(value, p, n);
			value[n] = '\0';
			if (value[n - 1] == '*') {
				/* A prefix rule: any continuation is refused. */
				snprintf(value + n - 1, sizeof(value) - n, "Q7rV2mZ9pL4wX8kT3nB6");
				prefixes++;
			}
			entries++;
			rk_check_value((unsigned char *)value, strlen(value), &rules, res);
			assert_reasons_clean(value, (unsigned char *)value, strlen(value), 4, res);
			ck_assert_msg(res[RK_CHECK_DEFAULT].ok == 0, "entry %zu not refused", entries);
		}
		p += n;
		if ((p = memchr(p, '\n', (size_t)(end - p))) == NULL)
			break;
		p++;
	}
	ck_assert_uint_ge(entries, 150);
	ck_assert_uint_ge(prefixes, 1);
	ck_assert_uint_eq(rk_defaults_count(list), entries);
	rk_defaults_free(list);
}
END_TEST

/* ---- the hashed known-secrets corpus ----------------------------------------- */

/*
 * Defaults of self-hosted software (data/known-secrets/selfhosted.txt), one
 * or more per product, as they are written in its configuration.
 */
static const char *const selfhosted[] = {
	"SW2YcwTIb9zpOOhoPsMm",				/* Grafana secret_key */
	"\x02\x01thisismyscretkey\x01\x02\\e\\y\\y\\h",	/* Superset, the bytes */
	"\\2\\1thisismyscretkey\\1\\2\\e\\y\\y\\h",	/* Superset, the literal */
	"\\x02\\x01thisismyscretkey\\x01\\x02\\\\e\\\\y\\\\y\\\\h",
	"TEST_NON_DEV_SECRET",				/* Superset docker/.env */
	"thisISaSECRET_1234",				/* Superset docs */
	"USE_YOUR_OWN_SECURE_RANDOM_KEY",
	"superset",
	"veryverysecret",				/* Redash */
	"super-duper-secret",				/* Drone */
	"46BKJoQYlPPOexq0OhDZnIlNepKFf87WFwLbfzqDDho=",	/* Airflow fernet, puckel */
	"myadminsecretkey",				/* Hasura */
	"this_password_is_insecure_and_should_be_updated",	/* Supabase */
	"your-encryption-key-32-chars-min",
	"airflow",
	"pass",						/* mongo-express */
	/* Also in known-defaults.txt: Grafana/Keycloak, Airflow, RabbitMQ, MinIO, images. */
	"admin", "temporary_key", "guest", "minioadmin", "example", "mysecretpassword",
	"CHANGE_ME_TO_A_COMPLEX_RANDOM_SECRET",
};

/* Only the known-defaults rule: no placeholder or strength verdict to confuse. */
static int
corpus_refuses(const struct rk_value_rules *rules, const void *v, size_t len)
{
	struct rk_check_result res[RK_CHECK_VALUE_COUNT];

	static const char ref[] = "admin";
	struct rk_check_result want[RK_CHECK_VALUE_COUNT];

	/*
	 * The reason is the list's fixed sentence, whatever the value: the
	 * 6-byte rule of assert_reasons_clean cannot hold here, since hundreds of
	 * entries are English prose ("... replace it with something else") that
	 * shares words with the fix. Whole values of 12 bytes and more stay out.
	 */
	rk_check_value((const unsigned char *)ref, sizeof(ref) - 1, rules, want);
	rk_check_value(v, len, rules, res);
	if (res[RK_CHECK_DEFAULT].ok == 0)
		ck_assert_str_eq(res[RK_CHECK_DEFAULT].reason, want[RK_CHECK_DEFAULT].reason);
	if (len >= 12 && memchr(v, '\0', len) == NULL)
		for (int i = 0; i < RK_CHECK_VALUE_COUNT; i++)
			ck_assert_msg(memmem(res[i].reason, strlen(res[i].reason), v, len) == NULL,
				      "a reason contains a corpus value");
	/* A list entry of only quotes and blanks ("\"  \"") is refused as empty, before any list. */
	return res[RK_CHECK_DEFAULT].ok == 0 || res[RK_CHECK_PRESENT].ok == 0;
}

/* "value" -> "VALUE", " 'value' ", "\"Value\"\r\n": the variants a deployment writes. */
static void
assert_variants_refused(const struct rk_value_rules *rules, const char *label,
			const unsigned char *v, size_t n)
{
	unsigned char buf[1100];

	ck_assert_uint_le(n, 1024);
	ck_assert_msg(corpus_refuses(rules, v, n), "%s: not refused", label);
	for (size_t i = 0; i < n; i++)
		buf[i] = (unsigned char)((v[i] >= 'a' && v[i] <= 'z') ? v[i] - 32 : v[i]);
	ck_assert_msg(corpus_refuses(rules, buf, n), "%s: upper case not refused", label);
	buf[0] = ' ';
	buf[1] = '\'';
	memcpy(buf + 2, v, n);
	buf[n + 2] = '\'';
	buf[n + 3] = ' ';
	ck_assert_msg(corpus_refuses(rules, buf, n + 4), "%s: single-quoted not refused", label);
	buf[1] = '"';
	for (size_t i = 0; i < n; i++)
		buf[i + 2] = (unsigned char)((i == 0 && v[0] >= 'a' && v[0] <= 'z') ? v[0] - 32 : v[i]);
	buf[n + 2] = '"';
	buf[n + 3] = '\r';
	buf[n + 4] = '\n';
	ck_assert_msg(corpus_refuses(rules, buf + 1, n + 4), "%s: double-quoted not refused", label);
}

START_TEST(test_selfhosted_defaults_are_refused_in_every_spelling)
{
	struct rk_defaults *list = builtin();
	struct rk_value_rules rules = { .defaults = list };

	ck_assert_uint_ge(rk_known_secrets.n, 10);
	for (size_t i = 0; i < RK_ARRAY_SIZE(selfhosted); i++)
		assert_variants_refused(&rules, selfhosted[i], (const unsigned char *)selfhosted[i],
					strlen(selfhosted[i]));
	rk_defaults_free(list);
}
END_TEST

/* One character changed, one added or one dropped: not an entry any more. */
START_TEST(test_near_misses_of_corpus_entries_and_random_values_are_accepted)
{
	static const char *const near[] = {
		"SW2YcwTIb9zpOOhoPsMn", "SW2YcwTIb9zpOOhoPsM", "TEST_NON_DEV_SECRET2",
		"thisISaSECRET_1235", "veryverysecre7", "super-duper-secre",
		"46BKJoQYlPPOexq0OhDZnIlNepKFf87WFwLbfzqDDho", "myadminsecretkey!",
		"this_password_is_insecure_and_should_be_updatet",
		"\x02\x01thisismyscretkey\x01\x02\\e\\y\\y\\g", "minioadmin1",
	};
	struct rk_defaults *list = builtin();
	struct rk_value_rules rules = { .defaults = list };
	unsigned char raw[32];
	char buf[128];

	for (size_t i = 0; i < RK_ARRAY_SIZE(near); i++)
		ck_assert_msg(!corpus_refuses(&rules, near[i], strlen(near[i])),
			      "near miss %zu refused", i);
	for (int i = 0; i < 2000; i++) {
		randombytes_buf(raw, sizeof(raw));
		sodium_bin2base64(buf, sizeof(buf), raw, 1 + i % 32, sodium_base64_VARIANT_ORIGINAL);
		ck_assert_msg(!corpus_refuses(&rules, buf, strlen(buf)), "random base64 refused");
		sodium_bin2hex(buf, sizeof(buf), raw, 8 + i % 24);
		ck_assert_msg(!corpus_refuses(&rules, buf, strlen(buf)), "random hex refused");
	}
	/* The corpus is attached to the built-in list only: a forbid list stays its own. */
	ck_assert(!rk_corpus_contains(NULL, (const unsigned char *)"admin", 5));
	ck_assert(rk_corpus_contains(&rk_known_secrets, (const unsigned char *)"SuPeR-DuPeR-SeCrEt", 18));
	ck_assert(!rk_corpus_contains(&rk_known_secrets, (const unsigned char *)" super-duper-secret", 19));
	rk_defaults_free(list);
}
END_TEST

/* The bytes of an entry of a corpus list, normalised as the generator does. */
struct corpus_entry {
	const unsigned char *p;
	size_t n;
};

static int
is_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Parses a list in memory the way tools/gen_known_secrets.c reads it (own: -c, else -r). */
static size_t
corpus_entries(unsigned char *text, size_t len, int own, struct corpus_entry *out, size_t max)
{
	size_t pos = 0, k = 0;

	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
		pos = 3;
	while (pos < len) {
		unsigned char *p = text + pos, *nl;
		size_t n = len - pos;

		if ((nl = memchr(p, '\n', n)) != NULL)
			n = (size_t)(nl - p);
		pos += n + (nl != NULL);
		while (n > 0 && is_space(p[0]))
			p++, n--;
		while (n > 0 && is_space(p[n - 1]))
			n--;
		if (n == 0 || n > 1024 || memchr(p, '\0', n) != NULL || (own && p[0] == '#'))
			continue;
		if (own && n > 4 && memcmp(p, "hex:", 4) == 0) {
			size_t m = 0;

			for (size_t i = 4; i + 1 < n; i += 2) {
				unsigned int byte;

				ck_assert_int_eq(sscanf((char *)p + i, "%2x", &byte), 1);
				p[m++] = (unsigned char)byte;	/* decoded in place, behind the reader */
			}
			n = m;
		}
		ck_assert_uint_lt(k, max);
		out[k].p = p;
		out[k].n = n;
		k++;
	}
	return k;
}

/*
 * Every entry of every list built in is refused (and its first, middle and
 * last entries in upper case and quoted too), and the counts agree with
 * what the generator recorded. Third-party lists are found where the build
 * found them (KNOWN_SECRETS_DIR); a build without them holds only ours.
 */
START_TEST(test_every_entry_of_every_corpus_list_is_refused)
{
	struct rk_defaults *list = builtin();
	struct rk_value_rules rules = { .defaults = list };
	const char *src = getenv("REKEY_SRCDIR"), *ext = getenv("KNOWN_SECRETS_DIR");
	size_t lists = 0;

	ck_assert_ptr_nonnull(rk_known_secrets.sources);
	for (const struct rk_corpus_source *s = rk_known_secrets.sources; s->name != NULL; s++) {
		int own = strcmp(s->name, "selfhosted") == 0;
		char path[1024], *text = NULL;
		size_t len = 0, n;
		struct corpus_entry *e;
		struct rk_error err = { 0 };

		if (own)
			snprintf(path, sizeof(path), "%s/data/known-secrets/%s.txt", src ? src : ".",
				 s->name);
		else
			snprintf(path, sizeof(path), "%s/%s.txt", ext ? ext : "(unset)", s->name);
		ck_assert_msg(rk_read_file(path, 64u << 20, &text, &len, &err) == 0,
			      "list '%s' is built in but %s cannot be read: %s", s->name, path,
			      err.msg);
		ck_assert_ptr_nonnull(e = calloc(len / 2 + 2, sizeof(*e)));
		n = corpus_entries((unsigned char *)text, len, own, e, len / 2 + 2);
		ck_assert_uint_eq(n, s->read);
		ck_assert_uint_le(s->added, s->read);
		for (size_t i = 0; i < n; i++)
			ck_assert_msg(corpus_refuses(&rules, e[i].p, e[i].n),
				      "%s: entry %zu of %zu not refused", s->name, i + 1, n);
		if (n > 0) {
			assert_variants_refused(&rules, s->name, e[0].p, e[0].n);
			assert_variants_refused(&rules, s->name, e[n / 2].p, e[n / 2].n);
			assert_variants_refused(&rules, s->name, e[n - 1].p, e[n - 1].n);
		}
		free(e);
		free(text);
		lists++;
	}
	ck_assert_uint_ge(lists, 1);
	rk_defaults_free(list);
}
END_TEST

/* ---- strong values --------------------------------------------------------- */

static void
assert_strong(const char *label, const unsigned char *v, size_t len,
	      const struct rk_value_rules *rules)
{
	struct rk_check_result res[RK_CHECK_VALUE_COUNT];
	char got[128];
	unsigned m = run(label, v, len, rules, res);

	mask_names(m, got, sizeof(got));
	ck_assert_msg(m == 0, "%s value of %zu bytes refused: {%s} %s%s", label, len, got,
		      res[RK_CHECK_PLACEHOLDER].reason, res[RK_CHECK_ENTROPY].reason);
	for (int i = 0; i < RK_CHECK_VALUE_COUNT; i++)
		ck_assert_int_eq(res[i].ok, i == RK_CHECK_FORBIDDEN && rules->forbid == NULL ? -1 : 1);
}

/* A PKCS#8 PEM private key, built here so the test does not depend on gen.c. */
static void
pem_key(const unsigned char oid_last, char *out, size_t n)
{
	unsigned char der[48] = { 0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06,
				  0x03, 0x2b, 0x65, 0x00, 0x04, 0x22, 0x04, 0x20 };
	char b64[sodium_base64_ENCODED_LEN(48, sodium_base64_VARIANT_ORIGINAL)];

	der[11] = oid_last;
	randombytes_buf(der + 16, 32);
	sodium_bin2base64(b64, sizeof(b64), der, sizeof(der), sodium_base64_VARIANT_ORIGINAL);
	snprintf(out, n, "-----BEGIN PRIVATE KEY-----\n%s\n-----END PRIVATE KEY-----\n", b64);
	sodium_memzero(der, sizeof(der));
}

static void
password(char *out, size_t len)
{
	static const char chars[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				    "0123456789!#$%&()*+,-./:;<=>?@[]^_{|}~";

	for (size_t i = 0; i < len; i++)
		out[i] = chars[randombytes_uniform(sizeof(chars) - 1)];
	out[len] = '\0';
}

START_TEST(test_random_values_from_libsodium_always_pass)
{
	struct rk_defaults *list = builtin();
	struct rk_value_rules rules = default_rules(list, NULL);
	unsigned char raw[32];
	char buf[256];

	for (int i = 0; i < 300; i++) {
		randombytes_buf(raw, sizeof(raw));
		sodium_bin2base64(buf, sizeof(buf), raw, sizeof(raw), sodium_base64_VARIANT_ORIGINAL);
		assert_strong("base64", (unsigned char *)buf, strlen(buf), &rules);
		sodium_bin2base64(buf, sizeof(buf), raw, sizeof(raw),
				  sodium_base64_VARIANT_URLSAFE_NO_PADDING);
		assert_strong("base64url", (unsigned char *)buf, strlen(buf), &rules);
		sodium_bin2hex(buf, sizeof(buf), raw, sizeof(raw));
		assert_strong("hex", (unsigned char *)buf, strlen(buf), &rules);
		password(buf, 32);
		assert_strong("password", (unsigned char *)buf, strlen(buf), &rules);
		pem_key(0x70, buf, sizeof(buf));
		assert_strong("ed25519 pem", (unsigned char *)buf, strlen(buf), &rules);
		pem_key(0x6e, buf, sizeof(buf));
		assert_strong("x25519 pem", (unsigned char *)buf, strlen(buf), &rules);
		/* Raw bytes, NULs and all, as a binary --file would hold them. */
		assert_strong("raw bytes", raw, sizeof(raw), &rules);
	}
	sodium_memzero(raw, sizeof(raw));
	sodium_memzero(buf, sizeof(buf));
	rk_defaults_free(list);
}
END_TEST

START_TEST(test_every_generator_type_passes_the_default_policy)
{
	struct rk_defaults *list = builtin();
	struct rk_value_rules rules = default_rules(list, NULL);
	struct rk_gen inner = { .type = RK_GEN_PASSWORD, .length = 24,
				.classes = RK_CLASS_UPPER | RK_CLASS_LOWER | RK_CLASS_DIGIT |
					   RK_CLASS_SYMBOL };
	const struct {
		const char *label;
		struct rk_gen g;
	} gens[] = {
		{ "password/32", { .type = RK_GEN_PASSWORD, .length = 32,
				   .classes = RK_CLASS_UPPER | RK_CLASS_LOWER | RK_CLASS_DIGIT |
					      RK_CLASS_SYMBOL } },
		{ "password/20 alnum", { .type = RK_GEN_PASSWORD, .length = 20,
					 .classes = RK_CLASS_UPPER | RK_CLASS_LOWER |
						    RK_CLASS_DIGIT } },
		{ "bytes/base64", { .type = RK_GEN_BYTES, .length = 32, .encoding = RK_ENC_BASE64 } },
		{ "bytes/base64url", { .type = RK_GEN_BYTES, .length = 32,
				       .encoding = RK_ENC_BASE64URL } },
		{ "bytes/hex", { .type = RK_GEN_BYTES, .length = 32, .encoding = RK_ENC_HEX } },
		{ "ed25519", { .type = RK_GEN_ED25519 } },
		{ "x25519", { .type = RK_GEN_X25519 } },
		{ "template", { .type = RK_GEN_TEMPLATE,
				.tmpl = (char *)"postgres://app:{{password}}@db/app",
				.inner = &inner } },
	};

	for (size_t k = 0; k < RK_ARRAY_SIZE(gens); k++) {
		for (int i = 0; i < 200; i++) {
			struct rk_secret *s = NULL;
			struct rk_error err = { 0 };

			ck_assert_msg(rk_gen_generate(&gens[k].g, &s, &err) == 0, "%s: %s",
				      gens[k].label, err.msg);
			assert_strong(gens[k].label, rk_secret_cdata(s), rk_secret_len(s), &rules);
			rk_secret_free(s);
		}
	}
	rk_defaults_free(list);
}
END_TEST

/* ---- presence and rules that are off ---------------------------------------- */

START_TEST(test_absent_empty_and_blank_fail_present_only)
{
	static const char *const blank[] = { "", "   ", "\t\r\n", "''", "\"\"", " ' ' ", "\" \t\"" };
	struct rk_defaults *list = builtin();
	struct rk_value_rules rules = default_rules(list, list);
	struct rk_check_result res[RK_CHECK_VALUE_COUNT];

	ck_assert_int_eq(rk_check_value(NULL, 0, &rules, res), 1);
	ck_assert_int_eq(res[RK_CHECK_PRESENT].ok, 0);
	ck_assert_ptr_nonnull(strstr(res[RK_CHECK_PRESENT].reason, "not set"));
	for (int i = 1; i < RK_CHECK_VALUE_COUNT; i++)
		ck_assert_int_eq(res[i].ok, -1);
	/* A length with a NULL pointer is still absent, never read. */
	ck_assert_int_eq(rk_check_value(NULL, 12, &rules, res), 1);
	ck_assert_int_eq(res[RK_CHECK_PRESENT].ok, 0);

	for (size_t k = 0; k < RK_ARRAY_SIZE(blank); k++) {
		ck_assert_int_eq(rk_check_value((const unsigned char *)blank[k], strlen(blank[k]),
						&rules, res), 1);
		ck_assert_msg(res[RK_CHECK_PRESENT].ok == 0, "blank %zu counted as present", k);
		ck_assert_ptr_nonnull(strstr(res[RK_CHECK_PRESENT].reason, "empty"));
		for (int i = 1; i < RK_CHECK_VALUE_COUNT; i++)
			ck_assert_int_eq(res[i].ok, -1);
	}
	rk_defaults_free(list);
}
END_TEST

START_TEST(test_rules_that_are_off_are_not_applicable)
{
	struct rk_value_rules none = { 0 };
	struct rk_check_result res[RK_CHECK_VALUE_COUNT];

	ck_assert_int_eq(run_str("changeme", &none, res), H);
	ck_assert_int_eq(res[RK_CHECK_PRESENT].ok, 1);
	ck_assert_int_eq(res[RK_CHECK_DEFAULT].ok, -1);
	ck_assert_int_eq(res[RK_CHECK_FORBIDDEN].ok, -1);
	ck_assert_int_eq(res[RK_CHECK_LENGTH].ok, -1);
	ck_assert_int_eq(res[RK_CHECK_ENTROPY].ok, -1);
	/* NULL rules: the same as all off. */
	ck_assert_int_eq(rk_check_value((const unsigned char *)"short", 5, NULL, res), 0);
	ck_assert_int_eq(res[RK_CHECK_PLACEHOLDER].ok, 1);
	ck_assert_int_eq(res[RK_CHECK_LENGTH].ok, -1);
}
END_TEST

START_TEST(test_check_names)
{
	ck_assert_str_eq(rk_check_name(RK_CHECK_PRESENT), "present");
	ck_assert_str_eq(rk_check_name(RK_CHECK_DEFAULT), "known_default");
	ck_assert_str_eq(rk_check_name(RK_CHECK_FORBIDDEN), "forbidden");
	ck_assert_str_eq(rk_check_name(RK_CHECK_PLACEHOLDER), "placeholder");
	ck_assert_str_eq(rk_check_name(RK_CHECK_LENGTH), "min_length");
	ck_assert_str_eq(rk_check_name(RK_CHECK_ENTROPY), "min_entropy");
	ck_assert_str_eq(rk_check_name(RK_CHECK_VALUE_COUNT), "unknown");
}
END_TEST

/* ---- trimming, quotes, case ------------------------------------------------- */

START_TEST(test_trimming_quotes_and_case_do_not_hide_a_default)
{
	static const char *const hidden[] = {
		"  changeme\n", "'changeme'", "\"changeme\"", " \" changeme \" ", "\tsecret\r\n",
		"CHANGEME", "Dev-Secret", "KEYBOARD CAT", "aKiAiOsFoDnN7eXaMpLe", "'NotASecret'\n",
	};
	struct rk_defaults *list = parse_ok("changeme\nsecret\ndev-secret\nkeyboard cat\n"
					    "AKIAIOSFODNN7EXAMPLE\nnotasecret\n");
	struct rk_value_rules rules = { .defaults = list };
	struct rk_check_result res[RK_CHECK_VALUE_COUNT];

	for (size_t i = 0; i < RK_ARRAY_SIZE(hidden); i++) {
		run_str(hidden[i], &rules, res);
		ck_assert_msg(res[RK_CHECK_DEFAULT].ok == 0, "'%s' not refused", hidden[i]);
	}
	/* One layer of quotes only, and only matching ones. */
	run_str("''secret''", &rules, res);
	ck_assert_int_eq(res[RK_CHECK_DEFAULT].ok, 1);
	run_str("'keyboard cat\"", &rules, res);
	ck_assert_int_eq(res[RK_CHECK_DEFAULT].ok, 1);
	/* Whitespace inside the value is part of it. */
	run_str("keyboard  cat", &rules, res);
	ck_assert_int_eq(res[RK_CHECK_DEFAULT].ok, 1);
	run_str("secretx", &rules, res);
	ck_assert_int_eq(res[RK_CHECK_DEFAULT].ok, 1);
	rk_defaults_free(list);
}
END_TEST

START_TEST(test_prefix_rules_match_only_at_the_start)
{
	struct rk_defaults *list = parse_ok("django-insecure-*\n");
	struct rk_value_rules rules = { .defaults = list };
	struct rk_check_result res[RK_CHECK_VALUE_COUNT];

	ck_assert_uint_eq(rk_defaults_count(list), 1);
	run_str("django-insecure-abc123def456ghi789jkl012mno345pqr678stu901vwx", &rules, res);
	ck_assert_int_eq(res[RK_CHECK_DEFAULT].ok, 0);
	run_str("  'DJANGO-Insecure-k3J9'", &rules, res);
	ck_assert_int_eq(res[RK_CHECK_DEFAULT].ok, 0);
	run_str("django-insecure-", &rules, res);
	ck_assert_int_eq(res[RK_CHECK_DEFAULT].ok, 0);
	run_str("django-insecure", &rules, res);
	ck_assert_int_eq(res[RK_CHECK_DEFAULT].ok, 1);
	run_str("x-django-insecure-abc", &rules, res);
	ck_assert_int_eq(res[RK_CHECK_DEFAULT].ok, 1);
	rk_defaults_free(list);
}
END_TEST

/* ---- forbid lists and list parsing ------------------------------------------ */

START_TEST(test_forbid_entries_from_defaults_add)
{
	static const char *const bad[] = { "", "   ", "*", "ab*", "abc*", "# comment",
					   "a\x01" "b", "tab\tok but \x7f no" };
	struct rk_defaults *forbid = NULL;
	struct rk_value_rules rules = { 0 };
	struct rk_check_result res[RK_CHECK_VALUE_COUNT];
	struct rk_error err = { 0 };
	char big[1100];

	ck_assert_int_eq(rk_defaults_parse(&forbid, "policy forbid", "", 0, &err), 0);
	ck_assert_uint_eq(rk_defaults_count(forbid), 0);
	ck_assert_int_eq(rk_defaults_add(forbid, "payments-dev-password", &err), 0);
	ck_assert_int_eq(rk_defaults_add(forbid, "  acme-staging-*  ", &err), 0);
	ck_assert_int_eq(rk_defaults_add(forbid, "tab\tinside", &err), 0);
	ck_assert_uint_eq(rk_defaults_count(forbid), 3);
	rules.forbid = forbid;

	run_str("PAYMENTS-DEV-PASSWORD", &rules, res);
	ck_assert_int_eq(res[RK_CHECK_FORBIDDEN].ok, 0);
	ck_assert_int_eq(res[RK_CHECK_DEFAULT].ok, -1);
	ck_assert_ptr_nonnull(strstr(res[RK_CHECK_FORBIDDEN].reason, "forbid list"));
	run_str("acme-staging-k3J9vQ2m", &rules, res);
	ck_assert_int_eq(res[RK_CHECK_FORBIDDEN].ok, 0);
	run_str("acme-prod-k3J9vQ2m", &rules, res);
	ck_assert_int_eq(res[RK_CHECK_FORBIDDEN].ok, 1);
	run_str("payments-dev-password2", &rules, res);
	ck_assert_int_eq(res[RK_CHECK_FORBIDDEN].ok, 1);

	for (size_t i = 0; i < RK_ARRAY_SIZE(bad); i++) {
		memset(&err, 0, sizeof(err));
		ck_assert_msg(rk_defaults_add(forbid, bad[i], &err) == RK_EINVAL,
			      "bad entry %zu accepted", i);
		ck_assert_int_eq(err.code, RK_EINVAL);
		ck_assert(err.msg[0] != '\0');
	}
	memset(big, 'q', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(rk_defaults_add(forbid, big, &err), RK_EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "longer than"));
	ck_assert_uint_eq(rk_defaults_count(forbid), 3);
	rk_defaults_free(forbid);
	rk_defaults_free(NULL);
}
END_TEST

START_TEST(test_parse_comments_crlf_blank_lines_and_bom)
{
	static const char text[] =
		"\xef\xbb\xbf# a comment\r\n"
		"\r\n"
		"  alpha  \r\n"
		"beta\n"
		"\n"
		"   # an indented comment\n"
		"\t\n"
		"gamma-prefix-*\r\n"
		"keyboard cat\r\n"
		"last-without-newline";
	struct rk_defaults *d = parse_ok(text);
	struct rk_value_rules rules = { .defaults = d };
	struct rk_check_result res[RK_CHECK_VALUE_COUNT];
	static const char *const hits[] = { "alpha", "BETA", "gamma-prefix-zzz", "keyboard cat",
					    "last-without-newline" };
	static const char *const misses[] = { "# a comment", "alphabet", "gamma", "a comment",
					      "gamma-prefix", "last-without" };

	ck_assert_uint_eq(rk_defaults_count(d), 5);
	for (size_t i = 0; i < RK_ARRAY_SIZE(hits); i++) {
		run_str(hits[i], &rules, res);
		ck_assert_msg(res[RK_CHECK_DEFAULT].ok == 0, "'%s' should match", hits[i]);
	}
	for (size_t i = 0; i < RK_ARRAY_SIZE(misses); i++) {
		run_str(misses[i], &rules, res);
		ck_assert_msg(res[RK_CHECK_DEFAULT].ok == 1, "'%s' should not match", misses[i]);
	}
	rk_defaults_free(d);

	/* Nothing but comments and blank lines: an empty list. */
	d = parse_ok("# only\r\n\r\n# comments\n");
	ck_assert_uint_eq(rk_defaults_count(d), 0);
	rk_defaults_free(d);
}
END_TEST

START_TEST(test_parse_errors_name_the_file_and_line)
{
	static const struct {
		const char *text;
		size_t len;	/* 0: strlen */
		const char *prefix;
		const char *words;
	} bad[] = {
		{ "ok\n\n*\n", 0, "odd.txt:3: ", "prefix rule" },
		{ "# c\r\nok\r\n  *  \r\n", 0, "odd.txt:3: ", "prefix rule" },
		{ "ok\r\nab*\r\n", 0, "odd.txt:2: ", "at least 4 characters" },
		{ "one\ntwo\nth\x01ree\n", 0, "odd.txt:3: ", "control character" },
		{ "a\0b\n", 4, "odd.txt:1: ", "NUL" },
		{ "fine\nfine\nfine\nfine\nfine\n**\n", 0, "odd.txt:6: ", "prefix rule" },
	};

	for (size_t i = 0; i < RK_ARRAY_SIZE(bad); i++) {
		struct rk_defaults *d = NULL;
		struct rk_error err = { 0 };
		size_t len = bad[i].len ? bad[i].len : strlen(bad[i].text);

		ck_assert_int_eq(rk_defaults_parse(&d, "odd.txt", bad[i].text, len, &err), RK_EINVAL);
		ck_assert_ptr_null(d);
		ck_assert_msg(strncmp(err.msg, bad[i].prefix, strlen(bad[i].prefix)) == 0,
			      "case %zu: '%s' does not start with '%s'", i, err.msg, bad[i].prefix);
		ck_assert_msg(strstr(err.msg, bad[i].words) != NULL, "case %zu: '%s' lacks '%s'", i,
			      err.msg, bad[i].words);
	}
}
END_TEST

START_TEST(test_parse_rejects_an_entry_that_is_too_long)
{
	char text[1200];
	struct rk_defaults *d = NULL;
	struct rk_error err = { 0 };

	memcpy(text, "ok\n", 3);
	memset(text + 3, 'z', 1025);
	text[3 + 1025] = '\n';
	ck_assert_int_eq(rk_defaults_parse(&d, "long.txt", text, 3 + 1026, &err), RK_EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "long.txt:2: "));
	/* 1024 bytes is the limit, inclusive. */
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(rk_defaults_parse(&d, "long.txt", text, 3 + 1024, &err), 0);
	ck_assert_uint_eq(rk_defaults_count(d), 2);
	rk_defaults_free(d);
}
END_TEST

/* ---- length and entropy ------------------------------------------------------ */

START_TEST(test_length_counts_utf8_characters_not_bytes)
{
	/* 11 characters in 21 bytes: "пароль-ключ". */
	static const char cyr[] = "\xd0\xbf\xd0\xb0\xd1\x80\xd0\xbe\xd0\xbb\xd1\x8c-"
				  "\xd0\xba\xd0\xbb\xd1\x8e\xd1\x87";
	struct rk_value_rules rules = { .min_length = 12 };
	struct rk_check_result res[RK_CHECK_VALUE_COUNT];
	/* Invalid UTF-8: each stray byte is one character. */
	static const unsigned char stray[] = { 0xff, 0xfe, 0x80, 'a', 0xc3 };

	ck_assert_uint_eq(strlen(cyr), 21);
	run_str(cyr, &rules, res);
	ck_assert_int_eq(res[RK_CHECK_LENGTH].ok, 0);
	ck_assert_ptr_nonnull(strstr(res[RK_CHECK_LENGTH].reason, "is 11 characters long"));
	ck_assert_ptr_nonnull(strstr(res[RK_CHECK_LENGTH].reason, "at least 12"));
	rules.min_length = 11;
	run_str(cyr, &rules, res);
	ck_assert_int_eq(res[RK_CHECK_LENGTH].ok, 1);

	rules.min_length = 6;
	run("stray", stray, sizeof(stray), &rules, res);
	ck_assert_int_eq(res[RK_CHECK_LENGTH].ok, 0);
	ck_assert_ptr_nonnull(strstr(res[RK_CHECK_LENGTH].reason, "is 5 characters"));
	/* Surrounding whitespace does not count; quotes inside it do. */
	rules.min_length = 16;
	run_str("   short-one-1234   \n", &rules, res);
	ck_assert_ptr_nonnull(strstr(res[RK_CHECK_LENGTH].reason, "is 14 characters"));
	rules.min_length = 1;
	run_str("q", &rules, res);
	ck_assert_int_eq(res[RK_CHECK_LENGTH].ok, 1);
	rules.min_length = 2;
	run_str("\xc3\xa9", &rules, res);
	ck_assert_ptr_nonnull(strstr(res[RK_CHECK_LENGTH].reason, "is 1 character long"));
}
END_TEST

START_TEST(test_entropy_threshold_is_inclusive_and_reported)
{
	static const char v[] = "correct horse battery staple";
	struct rk_value_rules rules = { 0 };
	struct rk_check_result res[RK_CHECK_VALUE_COUNT];
	double bits = rk_check_entropy_bits((const unsigned char *)v, strlen(v));
	char want[64];

	ck_assert(bits > 20 && bits < 200);
	rules.min_entropy_bits = bits;
	run_str(v, &rules, res);
	ck_assert_int_eq(res[RK_CHECK_ENTROPY].ok, 1);
	rules.min_entropy_bits = bits - 0.01;
	run_str(v, &rules, res);
	ck_assert_int_eq(res[RK_CHECK_ENTROPY].ok, 1);
	rules.min_entropy_bits = bits + 0.01;
	run_str(v, &rules, res);
	ck_assert_int_eq(res[RK_CHECK_ENTROPY].ok, 0);
	snprintf(want, sizeof(want), "%.1f bits", floor(bits * 10) / 10);
	ck_assert_msg(strstr(res[RK_CHECK_ENTROPY].reason, want) != NULL, "'%s' lacks '%s'",
		      res[RK_CHECK_ENTROPY].reason, want);
	/* Only the rule's own check fails: the value is fine otherwise. */
	ck_assert_int_eq(failed_mask(res), E);

	/* Weak values stay weak however long; random ones are far above 64. */
	ck_assert(rk_check_entropy_bits((const unsigned char *)"password", 8) < 10);
	ck_assert(rk_check_entropy_bits((const unsigned char *)"passwordpasswordpassword", 24) < 20);
	ck_assert(rk_check_entropy_bits((const unsigned char *)"abcdefghijklmnopqrstuvwxyz", 26)
		  < 20);
	ck_assert(rk_check_entropy_bits((const unsigned char *)"Xk9mPsecretQ2vL8nR4wT7yB1zD", 27)
		  > 64);
	ck_assert(rk_check_entropy_bits(NULL, 0) == 0.0);
	ck_assert(rk_check_entropy_bits((const unsigned char *)"", 0) == 0.0);
}
END_TEST

START_TEST(test_entropy_sees_past_nul_and_counts_characters)
{
	unsigned char v[40];
	/* "пароль": six Cyrillic letters, scored as six characters, not twelve. */
	static const char cyr[] = "\xd0\xbf\xd0\xb0\xd1\x80\xd0\xbe\xd0\xbb\xd1\x8c";
	double weak, whole, cyr_bits;

	memcpy(v, "weak", 4);
	v[4] = '\0';
	randombytes_buf(v + 5, sizeof(v) - 5);
	for (size_t i = 5; i < sizeof(v); i++)
		v[i] = (unsigned char)('A' + v[i] % 26);
	weak = rk_check_entropy_bits(v, 4);
	whole = rk_check_entropy_bits(v, sizeof(v));
	ck_assert_msg(whole > weak + 64, "NUL cut the value short: %f vs %f", whole, weak);

	cyr_bits = rk_check_entropy_bits((const unsigned char *)cyr, strlen(cyr));
	ck_assert_msg(cyr_bits < 7 * 6.7, "6 characters scored as %f bits", cyr_bits);
	ck_assert(cyr_bits > 0);

	/* Longer than zxcvbn's input cap: still a finite, large estimate. */
	{
		char *big = malloc(20000);

		ck_assert_ptr_nonnull(big);
		password(big, 19999);
		ck_assert(rk_check_entropy_bits((unsigned char *)big, 19999) > 256);
		free(big);
	}
}
END_TEST

START_TEST(test_values_with_nul_bytes_are_checked_whole)
{
	struct rk_defaults *list = parse_ok("changeme\n");
	struct rk_value_rules rules = default_rules(list, NULL);
	struct rk_check_result res[RK_CHECK_VALUE_COUNT];
	static const unsigned char nul_default[] = { 'c', 'h', 'a', 'n', 'g', 'e', 'm', 'e', 0 };
	static const unsigned char nuls[] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };

	/* "changeme\0" is not the entry "changeme": the whole value is compared. */
	run("nul default", nul_default, sizeof(nul_default), &rules, res);
	ck_assert_int_eq(res[RK_CHECK_PRESENT].ok, 1);
	ck_assert_int_eq(res[RK_CHECK_DEFAULT].ok, 1);
	ck_assert_int_eq(res[RK_CHECK_PLACEHOLDER].ok, 0);	/* it still says changeme */
	/* Sixteen NULs are present, but filler, and weak. */
	run("nuls", nuls, sizeof(nuls), &rules, res);
	ck_assert_int_eq(res[RK_CHECK_PRESENT].ok, 1);
	ck_assert_int_eq(res[RK_CHECK_PLACEHOLDER].ok, 0);
	ck_assert_int_eq(res[RK_CHECK_LENGTH].ok, 1);
	ck_assert_int_eq(res[RK_CHECK_ENTROPY].ok, 0);
	rk_defaults_free(list);
}
END_TEST

Suite *
check_suite(void)
{
	Suite *s = suite_create("check");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_table_of_values_fails_exactly_the_expected_checks);
	tcase_add_test(tc, test_every_builtin_entry_is_refused_without_being_echoed);
	tcase_add_test(tc, test_selfhosted_defaults_are_refused_in_every_spelling);
	tcase_add_test(tc, test_near_misses_of_corpus_entries_and_random_values_are_accepted);
	tcase_add_test(tc, test_every_entry_of_every_corpus_list_is_refused);
	tcase_add_test(tc, test_random_values_from_libsodium_always_pass);
	tcase_add_test(tc, test_every_generator_type_passes_the_default_policy);
	tcase_add_test(tc, test_absent_empty_and_blank_fail_present_only);
	tcase_add_test(tc, test_rules_that_are_off_are_not_applicable);
	tcase_add_test(tc, test_check_names);
	tcase_add_test(tc, test_trimming_quotes_and_case_do_not_hide_a_default);
	tcase_add_test(tc, test_prefix_rules_match_only_at_the_start);
	tcase_add_test(tc, test_forbid_entries_from_defaults_add);
	tcase_add_test(tc, test_parse_comments_crlf_blank_lines_and_bom);
	tcase_add_test(tc, test_parse_errors_name_the_file_and_line);
	tcase_add_test(tc, test_parse_rejects_an_entry_that_is_too_long);
	tcase_add_test(tc, test_length_counts_utf8_characters_not_bytes);
	tcase_add_test(tc, test_entropy_threshold_is_inclusive_and_reported);
	tcase_add_test(tc, test_entropy_sees_past_nul_and_counts_characters);
	tcase_add_test(tc, test_values_with_nul_bytes_are_checked_whole);
	suite_add_tcase(s, tc);
	return s;
}
