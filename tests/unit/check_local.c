/*
 * The local provider (providers/local.c) through the wrappers of
 * provider.h, as the engine uses it: staging and promotion, idempotent
 * stages, preconditions, lookups after a lost reply, rollback, pruning,
 * and the encryption at rest (tampering, swapped or copied version files, a
 * wrong key, no plaintext anywhere in the state dir).
 */
#include <check.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>

#include "rekey/crypto.h"
#include "rekey/provider.h"
#include "rekey/secret.h"
#include "rekey/util.h"
#include "../../providers/local_int.h"
#include "unit.h"

/* An inventory locator and the handle parsed from it. */
struct tloc {
	json_t *json;		/* {"path": PATH} */
	struct rk_loc loc;
};

static void
tloc_open(struct tloc *t, const struct rk_provider *p, const char *path)
{
	struct rk_error err = { 0 };

	t->json = json_pack("{s:s}", "path", path);
	ck_assert_ptr_nonnull(t->json);
	ck_assert_msg(rk_loc_parse(&t->loc, p, t->json, &err) == 0, "%s", err.msg);
}

static void
tloc_close(struct tloc *t)
{
	rk_loc_free(&t->loc);
	json_decref(t->json);
}

struct fx {
	char dir[64];
	unsigned char key[RK_KEY_BYTES];
	struct rk_provider *p;
	struct tloc ab;		/* {"path": "a/b"} */
	const struct rk_loc *loc;	/* &ab.loc */
};

static struct rk_provider *
open_local(const char *state_dir, const unsigned char *key, int max_versions)
{
	const struct rk_provider_ops *ops = rk_provider_find_type("local");
	struct rk_provider_env env = { 0 };
	struct rk_provider *p = NULL;
	struct rk_error err = { 0 };
	json_t *cfg = max_versions ? json_pack("{s:s, s:i}", "type", "local", "max_versions",
					       max_versions)
				   : json_pack("{s:s}", "type", "local");

	ck_assert_ptr_nonnull(ops);
	env.name = "local";
	env.state_dir = state_dir;
	env.local_key = key;
	ck_assert_msg(rk_provider_open(&p, ops, &env, cfg, &err) == 0, "%s", err.msg);
	json_decref(cfg);
	return p;
}

static void
fx_init_max(struct fx *f, int max_versions)
{
	snprintf(f->dir, sizeof(f->dir), "%s/t-XXXXXX", rk_test_base_dir);
	ck_assert_ptr_nonnull(mkdtemp(f->dir));
	randombytes_buf(f->key, sizeof(f->key));
	f->p = open_local(f->dir, f->key, max_versions);
	tloc_open(&f->ab, f->p, "a/b");
	f->loc = &f->ab.loc;
}

static void
fx_init(struct fx *f)
{
	fx_init_max(f, 0);
}

static void
fx_done(struct fx *f)
{
	tloc_close(&f->ab);
	rk_provider_close(f->p);
	rk_test_rm_rf(f->dir);
}

static struct rk_secret *
secret(const char *s)
{
	struct rk_secret *v = NULL;
	struct rk_error err = { 0 };

	ck_assert_int_eq(rk_secret_from(&v, s, strlen(s), &err), 0);
	return v;
}

/* Stages value under idem with precondition `expected` ("" = none); returns code. */
static int
stage(struct fx *f, const struct rk_loc *loc, const char *value, const char *idem,
      const char *expected, struct rk_version *nv, struct rk_error *err)
{
	struct rk_secret *v = secret(value);
	struct rk_version exp;
	struct rk_stage_req req = { 0 };
	int r;

	snprintf(exp.id, sizeof(exp.id), "%s", expected);
	req.secret_name = "a/b";
	req.run_id = "r1";
	req.idem_key = idem;
	req.value = v;
	req.expected = &exp;
	r = rk_provider_stage(f->p, NULL, loc, &req, nv, err);
	rk_secret_free(v);
	return r;
}

static void
stage_ok(struct fx *f, const char *value, const char *idem, const char *expected,
	 const char *want_version)
{
	struct rk_version nv = { "" };
	struct rk_error err = { 0 };

	ck_assert_msg(stage(f, f->loc, value, idem, expected, &nv, &err) == 0, "%s", err.msg);
	ck_assert_str_eq(nv.id, want_version);
}

static void
promote_ok(struct fx *f, const char *nv_id, const char *old_id)
{
	struct rk_version nv, ov;
	struct rk_error err = { 0 };

	snprintf(nv.id, sizeof(nv.id), "%s", nv_id);
	snprintf(ov.id, sizeof(ov.id), "%s", old_id);
	ck_assert_msg(rk_provider_promote(f->p, NULL, f->loc, &nv, &ov, &err) == 0, "%s", err.msg);
}

/* Stage + promote: the normal life of one new value. */
static void
put(struct fx *f, const char *value, const char *idem, const char *expected, const char *want)
{
	stage_ok(f, value, idem, expected, want);
	promote_ok(f, want, expected);
}

static void
assert_current(struct rk_provider *p, const struct rk_loc *loc, const char *value,
	       const char *version)
{
	struct rk_secret *out = NULL;
	struct rk_version ver = { "" };
	struct rk_error err = { 0 };

	ck_assert_msg(rk_provider_read(p, NULL, loc, &out, &ver, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(rk_secret_len(out), strlen(value));
	ck_assert_mem_eq(rk_secret_cdata(out), value, strlen(value));
	ck_assert_str_eq(ver.id, version);
	rk_secret_free(out);
}

static void
assert_version(struct rk_provider *p, const struct rk_loc *loc, const char *id, const char *value)
{
	struct rk_secret *out = NULL;
	struct rk_version ver;
	struct rk_error err = { 0 };

	snprintf(ver.id, sizeof(ver.id), "%s", id);
	ck_assert_msg(rk_provider_read_version(p, NULL, loc, &ver, &out, &err) == 0, "v%s: %s", id,
		      err.msg);
	ck_assert_str_eq(rk_secret_str(out), value);
	rk_secret_free(out);
}

/* <state>/local/<hex blake2b-128 of the locator path> */
static void
secret_dir(const struct fx *f, const char *path, char *out, size_t n)
{
	unsigned char h[16];
	char hex[33];

	crypto_generichash(h, sizeof(h), (const unsigned char *)path, strlen(path), NULL, 0);
	rk_hex(h, sizeof(h), hex);
	snprintf(out, n, "%s/local/%s", f->dir, hex);
}

static void
version_file(const struct fx *f, const char *path, int v, char *out, size_t n)
{
	char dir[256];

	secret_dir(f, path, dir, sizeof(dir));
	snprintf(out, n, "%s/v%08d.json", dir, v);
}

static int
count_version_files(const struct fx *f, const char *path)
{
	char dir[256];
	DIR *d;
	struct dirent *e;
	int n = 0;

	secret_dir(f, path, dir, sizeof(dir));
	d = opendir(dir);
	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] == 'v' && strstr(e->d_name, ".json") != NULL)
			n++;
	closedir(d);
	return n;
}

static char *
slurp(const char *path, size_t *len)
{
	char *text = NULL;
	struct rk_error err = { 0 };

	ck_assert_msg(rk_read_file(path, 1 << 22, &text, len, &err) == 0, "%s", err.msg);
	return text;
}

static void
spit(const char *path, const char *text, size_t len)
{
	FILE *fp = fopen(path, "w");

	ck_assert_ptr_nonnull(fp);
	ck_assert_uint_eq(fwrite(text, 1, len, fp), len);
	ck_assert_int_eq(fclose(fp), 0);
}

static void
assert_read_fails_auth(struct rk_provider *p, const struct rk_loc *loc)
{
	struct rk_secret *out = NULL;
	struct rk_version ver = { "" };
	struct rk_error err = { 0 };

	ck_assert_int_eq(rk_provider_read(p, NULL, loc, &out, &ver, &err), RK_EPROTO);
	ck_assert_ptr_null(out);
	ck_assert_msg(strstr(err.msg, "failed authentication") != NULL, "%s", err.msg);
}

START_TEST(test_local_caps_and_type)
{
	struct fx f;
	unsigned caps;

	fx_init(&f);
	caps = rk_provider_caps(f.p);
	ck_assert_uint_eq(caps & RK_CAP_VERSIONS, RK_CAP_VERSIONS);
	ck_assert_uint_eq(caps & RK_CAP_STAGING, RK_CAP_STAGING);
	ck_assert_uint_eq(caps & RK_CAP_EXPORT, RK_CAP_EXPORT);
	ck_assert_uint_eq(caps & RK_CAP_RESTART, 0);
	ck_assert_str_eq(f.p->name, "local");
	ck_assert_str_eq(f.p->ops->type, "local");
	fx_done(&f);
}
END_TEST

START_TEST(test_local_read_of_missing_secret_is_not_found)
{
	struct fx f;
	struct rk_secret *out = NULL;
	struct rk_version ver = { "x" };
	struct rk_error err = { 0 };

	fx_init(&f);
	ck_assert_int_eq(rk_provider_read(f.p, NULL, f.loc, &out, &ver, &err), RK_ENOTFOUND);
	ck_assert_ptr_null(out);
	/* The wrapper tags the error with the provider and the step. */
	ck_assert_str_eq(err.provider, "local");
	ck_assert_str_eq(err.step, "read");
	rk_error_clear(&err);
	ver.id[0] = '1';
	ver.id[1] = '\0';
	ck_assert_int_eq(rk_provider_read_version(f.p, NULL, f.loc, &ver, &out, &err),
			 RK_ENOTFOUND);
	fx_done(&f);
}
END_TEST

START_TEST(test_local_staged_value_is_not_current_until_promote)
{
	struct fx f;
	struct rk_secret *out = NULL;
	struct rk_version ver = { "" };
	struct rk_error err = { 0 };

	fx_init(&f);
	stage_ok(&f, "first-value", "idem-1", "", "1");
	ck_assert_int_eq(rk_provider_read(f.p, NULL, f.loc, &out, &ver, &err), RK_ENOTFOUND);
	/* The staged version itself is readable (verify reads it back). */
	assert_version(f.p, f.loc, "1", "first-value");
	promote_ok(&f, "1", "");
	assert_current(f.p, f.loc, "first-value", "1");

	/* A second value is staged while the first stays current. */
	stage_ok(&f, "second-value", "idem-2", "1", "2");
	assert_current(f.p, f.loc, "first-value", "1");
	promote_ok(&f, "2", "1");
	assert_current(f.p, f.loc, "second-value", "2");
	/* Promote is idempotent: a resumed run promotes again. */
	promote_ok(&f, "2", "1");
	assert_current(f.p, f.loc, "second-value", "2");
	fx_done(&f);
}
END_TEST

START_TEST(test_local_stage_is_idempotent_by_key)
{
	struct fx f;

	fx_init(&f);
	stage_ok(&f, "the-value", "idem-1", "", "1");
	stage_ok(&f, "the-value", "idem-1", "", "1");
	ck_assert_int_eq(count_version_files(&f, "a/b"), 1);
	/* Even after promotion, a retried stage of the same key returns the same version. */
	promote_ok(&f, "1", "");
	stage_ok(&f, "the-value", "idem-1", "", "1");
	ck_assert_int_eq(count_version_files(&f, "a/b"), 1);
	assert_current(f.p, f.loc, "the-value", "1");
	fx_done(&f);
}
END_TEST

START_TEST(test_local_stage_with_stale_expected_version_conflicts)
{
	struct fx f;
	struct rk_version nv = { "" };
	struct rk_error err = { 0 };

	fx_init(&f);
	put(&f, "v1", "k1", "", "1");
	put(&f, "v2", "k2", "1", "2");
	ck_assert_int_eq(stage(&f, f.loc, "v3", "k3", "1", &nv, &err), RK_ECONFLICT);
	ck_assert_str_eq(err.step, "stage");
	/* Nothing was written, and the precondition "did not exist" conflicts too. */
	ck_assert_int_eq(count_version_files(&f, "a/b"), 2);
	rk_error_clear(&err);
	ck_assert_int_eq(stage(&f, f.loc, "v3", "k3", "", &nv, &err), RK_ECONFLICT);
	assert_current(f.p, f.loc, "v2", "2");
	fx_done(&f);
}
END_TEST

START_TEST(test_local_promote_refuses_when_current_changed)
{
	struct fx f;
	struct rk_version nv = { "3" }, ov = { "1" };
	struct rk_error err = { 0 };

	fx_init(&f);
	put(&f, "v1", "k1", "", "1");
	stage_ok(&f, "v2", "k2", "1", "2");
	stage_ok(&f, "v3", "k3", "1", "3");
	promote_ok(&f, "2", "1");
	/* v3 was staged against v1, but v2 is current now: not promoted over it. */
	ck_assert_int_eq(rk_provider_promote(f.p, NULL, f.loc, &nv, &ov, &err), RK_ECONFLICT);
	assert_current(f.p, f.loc, "v2", "2");
	fx_done(&f);
}
END_TEST

START_TEST(test_local_find_staged_finds_our_version_by_key)
{
	struct fx f;
	struct rk_version nv = { "" }, exp = { "1" };
	struct rk_stage_req req = { 0 };
	struct rk_error err = { 0 };

	fx_init(&f);
	put(&f, "v1", "k1", "", "1");
	stage_ok(&f, "v2", "ours", "1", "2");
	req.idem_key = "ours";
	req.expected = &exp;
	ck_assert_msg(rk_provider_find_staged(f.p, NULL, f.loc, &req, &nv, &err) == 0,
		      "%s", err.msg);
	ck_assert_str_eq(nv.id, "2");

	/* Not written by this rotation, and nothing else changed. */
	req.idem_key = "someone-else";
	nv.id[0] = '\0';
	ck_assert_int_eq(rk_provider_find_staged(f.p, NULL, f.loc, &req, &nv, &err), RK_ENOTFOUND);
	ck_assert_str_eq(nv.id, "");

	/* Not ours, and the current version moved past what we expected. */
	promote_ok(&f, "2", "1");
	rk_error_clear(&err);
	ck_assert_int_eq(rk_provider_find_staged(f.p, NULL, f.loc, &req, &nv, &err), RK_ECONFLICT);

	/* A secret that never existed. */
	{
		struct tloc other;
		struct rk_version none = { "" };
		tloc_open(&other, f.p, "never");
		req.expected = &none;
		rk_error_clear(&err);
		ck_assert_int_eq(rk_provider_find_staged(f.p, NULL, &other.loc, &req, &nv, &err),
				 RK_ENOTFOUND);
		tloc_close(&other);
	}
	fx_done(&f);
}
END_TEST

START_TEST(test_local_rollback_makes_old_value_current_as_new_version)
{
	struct fx f;
	struct rk_version to = { "1" }, nv = { "" };
	struct rk_stage_req req = { 0 };
	struct rk_error err = { 0 };

	fx_init(&f);
	put(&f, "alpha", "k1", "", "1");
	put(&f, "beta", "k2", "1", "2");
	req.idem_key = "rollback-1";
	ck_assert_msg(rk_provider_rollback(f.p, NULL, f.loc, &to, &req, &nv, &err) == 0,
		      "%s", err.msg);
	ck_assert_str_eq(nv.id, "3");
	assert_current(f.p, f.loc, "alpha", "3");
	/* Retried with the same key: the same version, no fourth file. */
	nv.id[0] = '\0';
	ck_assert_msg(rk_provider_rollback(f.p, NULL, f.loc, &to, &req, &nv, &err) == 0,
		      "%s", err.msg);
	ck_assert_str_eq(nv.id, "3");
	ck_assert_int_eq(count_version_files(&f, "a/b"), 3);
	/* Rolling back to a version that does not exist changes nothing. */
	snprintf(to.id, sizeof(to.id), "9");
	req.idem_key = "rollback-2";
	ck_assert_int_eq(rk_provider_rollback(f.p, NULL, f.loc, &to, &req, &nv, &err),
			 RK_ENOTFOUND);
	assert_current(f.p, f.loc, "alpha", "3");
	fx_done(&f);
}
END_TEST

START_TEST(test_local_previous_versions_stay_readable)
{
	struct fx f;

	fx_init(&f);
	put(&f, "one", "k1", "", "1");
	put(&f, "two", "k2", "1", "2");
	put(&f, "three", "k3", "2", "3");
	assert_version(f.p, f.loc, "1", "one");
	assert_version(f.p, f.loc, "2", "two");
	assert_version(f.p, f.loc, "3", "three");
	assert_current(f.p, f.loc, "three", "3");
	fx_done(&f);
}
END_TEST

START_TEST(test_local_secrets_are_separate_by_path)
{
	struct fx f;
	struct tloc other;
	struct rk_version nv = { "" };
	struct rk_error err = { 0 };

	fx_init(&f);
	tloc_open(&other, f.p, "a/c");
	put(&f, "for-a-b", "k1", "", "1");
	ck_assert_int_eq(stage(&f, &other.loc, "for-a-c", "k1", "", &nv, &err), 0);
	ck_assert_str_eq(nv.id, "1");
	assert_current(f.p, f.loc, "for-a-b", "1");
	assert_version(f.p, &other.loc, "1", "for-a-c");
	tloc_close(&other);
	fx_done(&f);
}
END_TEST

START_TEST(test_local_tampered_box_fails_authentication)
{
	struct fx f;
	char path[300];
	char *text;
	size_t len;
	json_t *j;
	json_error_t jerr;
	char *box, *dumped;

	fx_init(&f);
	put(&f, "tamper-me-please", "k1", "", "1");
	version_file(&f, "a/b", 1, path, sizeof(path));
	text = slurp(path, &len);
	j = json_loadb(text, len, 0, &jerr);
	ck_assert_ptr_nonnull(j);
	box = strdup(json_string_value(json_object_get(j, "box")));
	ck_assert_ptr_nonnull(box);
	/* One base64 character in the ciphertext, still valid base64. */
	box[30] = box[30] == 'A' ? 'B' : 'A';
	json_object_set_new(j, "box", json_string(box));
	dumped = json_dumps(j, JSON_COMPACT);
	spit(path, dumped, strlen(dumped));
	assert_read_fails_auth(f.p, f.loc);
	free(dumped);
	free(box);
	json_decref(j);
	free(text);
	fx_done(&f);
}
END_TEST

START_TEST(test_local_swapped_version_files_fail)
{
	struct fx f;
	char p1[300], p2[300];
	char *text, *edited;
	size_t len;
	json_t *j;
	json_error_t jerr;

	fx_init(&f);
	put(&f, "value-one", "k1", "", "1");
	put(&f, "value-two", "k2", "1", "2");
	version_file(&f, "a/b", 1, p1, sizeof(p1));
	version_file(&f, "a/b", 2, p2, sizeof(p2));
	text = slurp(p1, &len);

	/* Copied as is: refused (its number does not match). */
	spit(p2, text, len);
	{
		struct rk_secret *out = NULL;
		struct rk_version ver = { "" };
		struct rk_error err = { 0 };
		ck_assert_int_eq(rk_provider_read(f.p, NULL, f.loc, &out, &ver, &err), RK_EPROTO);
		ck_assert_ptr_null(out);
	}
	/* With the number edited to fit: the associated data still binds version 1. */
	j = json_loadb(text, len, 0, &jerr);
	ck_assert_ptr_nonnull(j);
	json_object_set_new(j, "v", json_integer(2));
	edited = json_dumps(j, JSON_COMPACT);
	spit(p2, edited, strlen(edited));
	assert_read_fails_auth(f.p, f.loc);
	free(edited);
	json_decref(j);
	free(text);
	fx_done(&f);
}
END_TEST

START_TEST(test_local_version_file_copied_to_another_secret_fails)
{
	struct fx f;
	struct tloc other;
	char src[300], dst[300];
	char *text;
	size_t len;
	struct rk_version nv = { "" };
	struct rk_error err = { 0 };

	fx_init(&f);
	tloc_open(&other, f.p, "x/y");
	put(&f, "secret-of-a-b", "k1", "", "1");
	ck_assert_int_eq(stage(&f, &other.loc, "secret-of-x-y", "k9", "", &nv, &err), 0);
	{
		struct rk_version v1 = { "1" }, none = { "" };
		ck_assert_int_eq(rk_provider_promote(f.p, NULL, &other.loc, &v1, &none, &err), 0);
	}
	version_file(&f, "a/b", 1, src, sizeof(src));
	version_file(&f, "x/y", 1, dst, sizeof(dst));
	text = slurp(src, &len);
	spit(dst, text, len);
	assert_read_fails_auth(f.p, &other.loc);
	free(text);
	tloc_close(&other);
	fx_done(&f);
}
END_TEST

START_TEST(test_local_different_key_fails_authentication)
{
	struct fx f;
	unsigned char other_key[RK_KEY_BYTES];
	struct rk_provider *p2;
	struct tloc ab2;

	fx_init(&f);
	put(&f, "keyed-value", "k1", "", "1");
	memcpy(other_key, f.key, sizeof(other_key));
	other_key[0] ^= 1;
	p2 = open_local(f.dir, other_key, 0);
	tloc_open(&ab2, p2, "a/b");
	assert_read_fails_auth(p2, &ab2.loc);
	tloc_close(&ab2);
	rk_provider_close(p2);
	/* The right key still reads it. */
	assert_current(f.p, f.loc, "keyed-value", "1");
	fx_done(&f);
}
END_TEST

static const char *scan_needle;
static size_t scan_hits, scan_files;

static int
scan_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	char *text = NULL;
	size_t len = 0;
	struct rk_error err = { 0 };

	(void)sb;
	(void)ftw;
	if (flag != FTW_F)
		return 0;
	ck_assert_msg(rk_read_file(path, 1 << 22, &text, &len, &err) == 0, "%s", err.msg);
	scan_files++;
	if (memmem(text, len, scan_needle, strlen(scan_needle)) != NULL)
		scan_hits++;
	free(text);
	return 0;
}

START_TEST(test_local_value_never_appears_in_plaintext_on_disk)
{
	static const char value[] = "PLAINTEXT-canary-7f3a9c-do-not-store";
	struct fx f;
	struct rk_version to = { "1" }, nv = { "" };
	struct rk_stage_req req = { 0 };
	struct rk_error err = { 0 };

	fx_init(&f);
	put(&f, value, "idem-visible-marker", "", "1");
	put(&f, "another-value-entirely", "k2", "1", "2");
	stage_ok(&f, value, "k3", "2", "3");
	req.idem_key = "rb";
	ck_assert_int_eq(rk_provider_rollback(f.p, NULL, f.loc, &to, &req, &nv, &err), 0);
	scan_needle = value;
	scan_hits = scan_files = 0;
	ck_assert_int_eq(nftw(f.dir, scan_entry, 16, FTW_PHYS), 0);
	ck_assert_uint_ge(scan_files, 4);
	ck_assert_uint_eq(scan_hits, 0);
	scan_needle = "another-value-entirely";
	scan_hits = 0;
	ck_assert_int_eq(nftw(f.dir, scan_entry, 16, FTW_PHYS), 0);
	ck_assert_uint_eq(scan_hits, 0);
	/* The scan does find what is written in the clear (the idempotency key). */
	scan_needle = "idem-visible-marker";
	scan_hits = 0;
	ck_assert_int_eq(nftw(f.dir, scan_entry, 16, FTW_PHYS), 0);
	ck_assert_uint_ge(scan_hits, 1);
	fx_done(&f);
}
END_TEST

START_TEST(test_local_files_are_private)
{
	struct fx f;
	char path[300], dir[256];
	struct stat st;

	fx_init(&f);
	put(&f, "private", "k1", "", "1");
	version_file(&f, "a/b", 1, path, sizeof(path));
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 077, 0);
	secret_dir(&f, "a/b", dir, sizeof(dir));
	ck_assert_int_eq(stat(dir, &st), 0);
	ck_assert_uint_eq(st.st_mode & 077, 0);
	fx_done(&f);
}
END_TEST

START_TEST(test_local_max_versions_pruning_keeps_the_current_one)
{
	struct fx f;
	char id[16], prev[16];
	struct rk_secret *out = NULL;
	struct rk_version ver;
	struct rk_error err = { 0 };

	fx_init_max(&f, 3);
	prev[0] = '\0';
	for (int v = 1; v <= 6; v++) {
		char value[32], idem[32];
		snprintf(value, sizeof(value), "value-%d", v);
		snprintf(idem, sizeof(idem), "k%d", v);
		snprintf(id, sizeof(id), "%d", v);
		put(&f, value, idem, prev, id);
		snprintf(prev, sizeof(prev), "%s", id);
	}
	ck_assert_int_eq(count_version_files(&f, "a/b"), 3);
	assert_current(f.p, f.loc, "value-6", "6");
	assert_version(f.p, f.loc, "4", "value-4");
	snprintf(ver.id, sizeof(ver.id), "3");
	ck_assert_int_eq(rk_provider_read_version(f.p, NULL, f.loc, &ver, &out, &err),
			 RK_ENOTFOUND);

	/* Current = 7, then four newer staged versions: promoting an older staged one
	 * (8) prunes below the window but never the version being made current. */
	put(&f, "value-7", "k7", "6", "7");
	stage_ok(&f, "value-8", "k8", "7", "8");
	stage_ok(&f, "value-9", "k9", "7", "9");
	stage_ok(&f, "value-10", "k10", "7", "10");
	stage_ok(&f, "value-11", "k11", "7", "11");
	promote_ok(&f, "8", "7");
	assert_current(f.p, f.loc, "value-8", "8");
	assert_version(f.p, f.loc, "8", "value-8");
	fx_done(&f);
}
END_TEST

START_TEST(test_local_parse_locator_keeps_the_path_and_its_directory)
{
	struct fx f;
	const struct local_loc *ll;
	char dir[256];

	fx_init(&f);
	ll = f.loc->typed;
	ck_assert_str_eq(ll->path, "a/b");
	secret_dir(&f, "a/b", dir, sizeof(dir));
	ck_assert_str_eq(ll->dir, dir);
	fx_done(&f);
}
END_TEST

START_TEST(test_local_parse_locator_rejects_a_malformed_locator)
{
	struct fx f;
	char path[LOCAL_MAX_PATH + 2];
	json_t *bad[4];
	struct tloc longest;

	fx_init(&f);
	memset(path, 'x', sizeof(path) - 1);
	path[sizeof(path) - 1] = '\0';
	bad[0] = json_object();
	bad[1] = json_pack("{s:s}", "path", "");
	bad[2] = json_pack("{s:i}", "path", 7);
	bad[3] = json_pack("{s:s}", "path", path);	/* one character too many */
	for (size_t i = 0; i < RK_ARRAY_SIZE(bad); i++) {
		struct rk_loc loc;
		struct rk_error err = { 0 };
		ck_assert_int_eq(rk_loc_parse(&loc, f.p, bad[i], &err), RK_EINVAL);
		ck_assert_str_eq(err.provider, "local");
		ck_assert_str_eq(err.step, "locator");
		ck_assert_msg(strstr(err.msg,
			      "a path of 1 to 512 characters") != NULL, "%s", err.msg);
		ck_assert_ptr_null(loc.typed);
		json_decref(bad[i]);
	}
	path[LOCAL_MAX_PATH] = '\0';
	tloc_open(&longest, f.p, path);
	tloc_close(&longest);
	fx_done(&f);
}
END_TEST

/* A change of a secret whose lock another process holds, asked to stop: it does not wait. */
START_TEST(test_local_cancelled_change_does_not_wait_for_the_lock)
{
	struct fx f;
	char dir[256], lock[300];
	atomic_int stop = 1;
	struct rk_call c = { .cancel = &stop };
	struct rk_secret *v = secret("never-written");
	struct rk_version exp = { "" }, nv = { "" }, to = { "1" };
	struct rk_stage_req req = { .idem_key = "k1", .value = v, .expected = &exp };
	struct rk_error err = { 0 };
	int fd;

	fx_init(&f);
	secret_dir(&f, "a/b", dir, sizeof(dir));
	ck_assert_int_eq(mkdir(dir, 0700), 0);
	snprintf(lock, sizeof(lock), "%s", dir);	/* the provider locks the directory */
	ck_assert_int_ge(fd = open(lock, O_RDONLY | O_DIRECTORY | O_CLOEXEC), 0);
	ck_assert_int_eq(flock(fd, LOCK_EX), 0);
	/* The operations themselves, not the wrappers (those refuse before the provider). */
	ck_assert_int_eq(f.p->ops->stage(f.p, &c, f.loc->typed, &req, &nv, &err), RK_ECANCELED);
	ck_assert_msg(strstr(err.msg, "stopped before locking local secret 'a/b'") != NULL, "%s",
		      err.msg);
	rk_error_clear(&err);
	ck_assert_int_eq(f.p->ops->promote(f.p, &c, f.loc->typed, &to, &exp, &err), RK_ECANCELED);
	rk_error_clear(&err);
	ck_assert_int_eq(f.p->ops->rollback(f.p, &c, f.loc->typed, &to, &req, &nv, &err),
			 RK_ECANCELED);
	ck_assert_int_eq(count_version_files(&f, "a/b"), 0);
	close(fd);
	rk_secret_free(v);
	fx_done(&f);
}
END_TEST

/*
 * BUG (providers/local.c prune(), called from local_promote): pruning counts
 * abandoned staged versions, so with max_versions 2, one failed rotation
 * (a staged version never promoted) followed by a successful one deletes the
 * version that was current before it: the rollback target is gone, though
 * local_open insists on max_versions >= 2 "(previous versions are kept for
 * rollback)".
 */
START_TEST(test_local_pruning_keeps_the_previous_current_version)
{
	struct fx f;
	struct rk_version to = { "1" }, nv = { "" };
	struct rk_stage_req req = { 0 };
	struct rk_error err = { 0 };

	fx_init_max(&f, 2);
	put(&f, "original", "k1", "", "1");
	stage_ok(&f, "abandoned", "k2", "1", "2");	/* a rotation that failed verify */
	stage_ok(&f, "replacement", "k3", "1", "3");
	promote_ok(&f, "3", "1");
	assert_current(f.p, f.loc, "replacement", "3");
	/* The value current before the last promotion must still be restorable. */
	assert_version(f.p, f.loc, "1", "original");
	req.idem_key = "rb";
	ck_assert_msg(rk_provider_rollback(f.p, NULL, f.loc, &to, &req, &nv, &err) == 0,
		      "%s", err.msg);
	assert_current(f.p, f.loc, "original", nv.id);
	fx_done(&f);
}
END_TEST

Suite *
local_suite(void)
{
	Suite *s = suite_create("local");
	TCase *tc = tcase_create("versions");
	TCase *tk = tcase_create("at-rest");

	tcase_add_unchecked_fixture(tc, rk_test_base_setup, rk_test_base_teardown);
	tcase_add_test(tc, test_local_caps_and_type);
	tcase_add_test(tc, test_local_read_of_missing_secret_is_not_found);
	tcase_add_test(tc, test_local_staged_value_is_not_current_until_promote);
	tcase_add_test(tc, test_local_stage_is_idempotent_by_key);
	tcase_add_test(tc, test_local_stage_with_stale_expected_version_conflicts);
	tcase_add_test(tc, test_local_promote_refuses_when_current_changed);
	tcase_add_test(tc, test_local_find_staged_finds_our_version_by_key);
	tcase_add_test(tc, test_local_rollback_makes_old_value_current_as_new_version);
	tcase_add_test(tc, test_local_previous_versions_stay_readable);
	tcase_add_test(tc, test_local_secrets_are_separate_by_path);
	tcase_add_test(tc, test_local_max_versions_pruning_keeps_the_current_one);
	tcase_add_test(tc, test_local_pruning_keeps_the_previous_current_version);
	tcase_add_test(tc, test_local_parse_locator_keeps_the_path_and_its_directory);
	tcase_add_test(tc, test_local_parse_locator_rejects_a_malformed_locator);
	tcase_add_test(tc, test_local_cancelled_change_does_not_wait_for_the_lock);
	suite_add_tcase(s, tc);

	tcase_add_unchecked_fixture(tk, rk_test_base_setup, rk_test_base_teardown);
	tcase_add_test(tk, test_local_tampered_box_fails_authentication);
	tcase_add_test(tk, test_local_swapped_version_files_fail);
	tcase_add_test(tk, test_local_version_file_copied_to_another_secret_fails);
	tcase_add_test(tk, test_local_different_key_fails_authentication);
	tcase_add_test(tk, test_local_value_never_appears_in_plaintext_on_disk);
	tcase_add_test(tk, test_local_files_are_private);
	suite_add_tcase(s, tk);
	return s;
}
