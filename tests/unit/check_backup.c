/*
 * Backups (src/backup.c): a round trip through rk_backup_write and
 * rk_backup_restore, a file changed anywhere, cut short or under another
 * key refused (and the state left as it was), a path leaving the state dir
 * refused, the backup key's mode, no plaintext in a backup, and the
 * scheduled backups' names and retention.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>

#include "rekey/audit.h"
#include "rekey/backup.h"
#include "rekey/config.h"
#include "rekey/ctx.h"
#include "rekey/store.h"
#include "rekey/util.h"
#include "unit.h"

/* A state dir with a DB, keys, audit rows and a local store; ctx->cfg points at cfg. */
struct fx {
	char dir[64];
	char backups[96], key_file[96], bak[96], local_cur[160];
	struct rk_config cfg;
	struct rk_ctx ctx;
};

static void
fx_event(struct fx *f, const char *event)
{
	struct rk_error err = { 0 };

	ck_assert_msg(rk_audit(&f->ctx, event, "payments/db", NULL, &err) == 0, "%s", err.msg);
}

static void
fx_init(struct fx *f, int keep)
{
	struct rk_error err = { 0 };
	json_t *spec;
	char p[160];

	memset(f, 0, sizeof(*f));
	rk_test_state_ctx(f->dir, &f->ctx);
	snprintf(f->backups, sizeof(f->backups), "%s/backups", f->dir);
	snprintf(f->key_file, sizeof(f->key_file), "%s/backup.key", f->dir);
	snprintf(f->bak, sizeof(f->bak), "%s/b.bak", rk_test_base_dir);
	f->cfg.state_dir = f->dir;
	f->cfg.backup.dir = f->backups;
	f->cfg.backup.key_file = f->key_file;
	f->cfg.backup.keep = keep;
	f->ctx.cfg = &f->cfg;
	spec = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i}", "name", "payments/db", "provider",
			 "local", "policy", "quick", "environment", "test", "owner", "team",
			 "tier", 2);
	ck_assert_msg(rk_store_secret_put(f->ctx.store, spec, 1767312000, &err) == 0, "%s",
		      err.msg);
	json_decref(spec);
	fx_event(f, "secret.added");
	fx_event(f, "secret.rotated");
	snprintf(p, sizeof(p), "%s/local", f->dir);
	ck_assert_int_eq(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/local/ab12", f->dir);
	ck_assert_int_eq(mkdir(p, 0700), 0);
	snprintf(p, sizeof(p), "%s/local/ab12/v00000001.json", f->dir);
	rk_test_write(p, "{\"sealed\":\"version-one\"}\n");
	snprintf(f->local_cur, sizeof(f->local_cur), "%s/local/ab12/CURRENT", f->dir);
	rk_test_write(f->local_cur, "1\n");
}

static void
fx_done(struct fx *f)
{
	f->ctx.cfg = NULL;	/* on the stack, not rk_config_load's */
	rk_ctx_cleanup(&f->ctx);
	rk_test_rm_rf(f->dir);
	unlink(f->bak);
}

static void
fx_backup(struct fx *f)
{
	struct rk_error err = { 0 };
	json_t *info = NULL;

	ck_assert_msg(rk_backup_write(&f->ctx, f->bak, &info, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(json_integer_value(json_object_get(info, "audit_rows")), 2);
	/* rekey.db, master.key, fingerprint.key, CURRENT, v00000001.json */
	ck_assert_int_eq(json_integer_value(json_object_get(info, "files")), 5);
	json_decref(info);
}

static char *
slurp(const char *path, size_t *len)
{
	struct rk_error err = { 0 };
	char *text = NULL;

	ck_assert_msg(rk_read_file(path, 1u << 26, &text, len, &err) == 0, "%s", err.msg);
	return text;
}

static void
spit(const char *path, const void *data, size_t len)
{
	struct rk_error err = { 0 };

	ck_assert_msg(rk_write_file_atomic(path, data, len, 0600, &err) == 0, "%s", err.msg);
}

/* Unpacks path with key into a fresh dir under the base dir: the result code. */
static int
try_unpack(const char *path, const unsigned char *key, struct rk_error *err)
{
	char dir[96];
	json_t *meta = NULL;
	int r;

	snprintf(dir, sizeof(dir), "%s/u-XXXXXX", rk_test_base_dir);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	r = rk_backup_unpack(path, key, dir, &meta, err);
	json_decref(meta);
	rk_test_rm_rf(dir);
	return r;
}

static unsigned char *
fx_key(struct fx *f)
{
	struct rk_error err = { 0 };
	unsigned char *key = NULL;

	ck_assert_msg(rk_backup_key_load(&key, f->key_file, 0, &err) == 0, "%s", err.msg);
	return key;
}

static int64_t
audit_rows(struct fx *f)
{
	struct rk_error err = { 0 };
	int64_t rows = -1;

	ck_assert_msg(rk_audit_verify(f->ctx.store, f->ctx.keys, &rows, &err) == 0, "%s", err.msg);
	return rows;
}

START_TEST(test_backup_round_trip_restores_db_keys_and_local_store)
{
	struct rk_error err = { 0 };
	struct fx f;
	json_t *info = NULL, *rows = NULL;
	struct stat st;
	char *cur, p[200];
	size_t len;

	fx_init(&f, 7);
	fx_backup(&f);
	ck_assert_int_eq(stat(f.key_file, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	ck_assert_int_eq(stat(f.bak, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	/* Changes after the backup: undone by the restore. */
	fx_event(&f, "after.backup");
	rk_test_write(f.local_cur, "2\n");
	ck_assert_msg(rk_backup_restore(&f.ctx, f.bak, &info, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(json_integer_value(json_object_get(info, "audit_rows")), 2);
	ck_assert_int_eq(json_integer_value(json_object_get(info, "created_at")), 1767312000);
	/* The store and keys of ctx are the restored ones: 2 rows + state.restored. */
	ck_assert_int_eq(audit_rows(&f), 3);
	ck_assert_msg(rk_store_audit_list(f.ctx.store, 0, &rows, &err) == 0, "%s", err.msg);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(rows, 2), "event")),
			 "state.restored");
	json_decref(rows);
	cur = slurp(f.local_cur, &len);
	ck_assert_str_eq(cur, "1\n");
	free(cur);
	/* The backup key moved into the restored state; the old state is kept aside. */
	ck_assert_int_eq(stat(f.key_file, &st), 0);
	snprintf(p, sizeof(p), "%s/local/ab12/CURRENT",
		 json_string_value(json_object_get(info, "previous_state")));
	cur = slurp(p, &len);
	ck_assert_str_eq(cur, "2\n");
	free(cur);
	rk_test_rm_rf(json_string_value(json_object_get(info, "previous_state")));
	json_decref(info);
	fx_done(&f);
}
END_TEST

START_TEST(test_backup_file_holds_no_plaintext)
{
	struct fx f;
	char *text;
	size_t len;

	fx_init(&f, 7);
	fx_backup(&f);
	text = slurp(f.bak, &len);
	ck_assert_int_eq(memcmp(text, "REKEYBAK1", 9), 0);
	ck_assert_ptr_null(memmem(text, len, "SQLite format 3", 15));
	ck_assert_ptr_null(memmem(text, len, "payments/db", 11));
	ck_assert_ptr_null(memmem(text, len, "secret.rotated", 14));
	ck_assert_ptr_null(memmem(text, len, "version-one", 11));
	free(text);
	fx_done(&f);
}
END_TEST

START_TEST(test_backup_flipped_byte_anywhere_is_refused)
{
	struct rk_error err;
	unsigned char *key;
	struct fx f;
	char *text, bad[96];
	size_t len, checked = 0;

	fx_init(&f, 7);
	fx_backup(&f);
	key = fx_key(&f);
	ck_assert_int_eq(try_unpack(f.bak, key, &(struct rk_error){ 0 }), 0);
	text = slurp(f.bak, &len);
	snprintf(bad, sizeof(bad), "%s/flipped.bak", rk_test_base_dir);
	/* Every byte of the header and of the last message, and every 211th between. */
	for (size_t i = 0; i < len; i += (i < 64 || i + 128 > len) ? 1 : 211) {
		text[i] ^= 0x20;
		spit(bad, text, len);
		text[i] ^= 0x20;
		memset(&err, 0, sizeof(err));
		ck_assert_msg(try_unpack(bad, key, &err) < 0, "a flipped byte %zu was not found", i);
		ck_assert_int_ne(err.msg[0], '\0');
		checked++;
	}
	ck_assert_uint_gt(checked, 300);
	unlink(bad);
	free(text);
	sodium_free(key);
	fx_done(&f);
}
END_TEST

START_TEST(test_backup_truncated_file_is_refused)
{
	static const size_t cuts[] = { 0, 5, 9, 10, 20, 34, 35, 38, 100, 65590, 65620 };
	struct rk_error err;
	unsigned char *key;
	struct fx f;
	char *text, bad[96];
	size_t len;

	fx_init(&f, 7);
	fx_backup(&f);
	key = fx_key(&f);
	text = slurp(f.bak, &len);
	ck_assert_uint_gt(len, 65620);	/* more than one message */
	snprintf(bad, sizeof(bad), "%s/cut.bak", rk_test_base_dir);
	for (size_t i = 0; i < RK_ARRAY_SIZE(cuts) + 3; i++) {
		size_t n = i < RK_ARRAY_SIZE(cuts) ? cuts[i] : len - (i - RK_ARRAY_SIZE(cuts) + 1) * 7;
		spit(bad, text, n);
		memset(&err, 0, sizeof(err));
		ck_assert_msg(try_unpack(bad, key, &err) < 0, "cut at %zu of %zu not found", n, len);
	}
	/* Cut exactly at a message boundary (the FINAL one missing): found too. */
	{
		size_t at = 10 + 24, k = 0;
		while (at < len) {
			size_t clen = ((size_t)(unsigned char)text[at] << 24) |
				      ((size_t)(unsigned char)text[at + 1] << 16) |
				      ((size_t)(unsigned char)text[at + 2] << 8) |
				      (unsigned char)text[at + 3];
			if (at + 4 + clen >= len)
				break;
			at += 4 + clen;
			spit(bad, text, at);
			memset(&err, 0, sizeof(err));
			ck_assert_msg(try_unpack(bad, key, &err) < 0, "cut after message %zu", k);
			ck_assert_ptr_nonnull(strstr(err.msg, "truncated"));
			k++;
		}
		ck_assert_uint_gt(k, 0);
	}
	/* Data after the end. */
	{
		char *longer = malloc(len + 1);
		memcpy(longer, text, len);
		longer[len] = 'x';
		spit(bad, longer, len + 1);
		free(longer);
		memset(&err, 0, sizeof(err));
		ck_assert_int_lt(try_unpack(bad, key, &err), 0);
	}
	unlink(bad);
	free(text);
	sodium_free(key);
	fx_done(&f);
}
END_TEST

START_TEST(test_backup_wrong_key_is_refused)
{
	struct rk_error err = { 0 };
	unsigned char *key;
	struct fx f;

	fx_init(&f, 7);
	fx_backup(&f);
	key = fx_key(&f);
	key[0] ^= 1;
	ck_assert_int_eq(try_unpack(f.bak, key, &err), RK_EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "another backup key"));
	sodium_free(key);
	fx_done(&f);
}
END_TEST

/* A backup of one entry named name, written with the writer API. */
static void
write_one(const char *path, const unsigned char *key, const char *name)
{
	struct rk_error err = { 0 };
	struct rk_backup_writer *w = NULL;
	json_t *meta = json_pack("{s:i}", "format", 1);

	ck_assert_msg(rk_backup_writer_open(&w, path, key, &err) == 0, "%s", err.msg);
	ck_assert_msg(rk_backup_writer_add(w, name, S_IFREG | 0600, "evil", 4, &err) == 0, "%s",
		      err.msg);
	ck_assert_msg(rk_backup_writer_finish(w, meta, &err) == 0, "%s", err.msg);
	ck_assert_msg(rk_backup_writer_publish(w, path, 0, NULL, &err) == 0, "%s", err.msg);
	rk_backup_writer_free(w);
	json_decref(meta);
}

START_TEST(test_backup_path_traversal_entry_is_refused)
{
	static const char *const names[] = { "../evil", "/tmp/rk-evil-abs", "local/../../evil",
					     "a//b", "./x", "local/..", "x/" };
	unsigned char key[RK_BACKUP_KEY_BYTES];
	char path[96], outside[96];
	struct stat st;

	randombytes_buf(key, sizeof(key));
	snprintf(path, sizeof(path), "%s/evil.bak", rk_test_base_dir);
	for (size_t i = 0; i < RK_ARRAY_SIZE(names); i++) {
		struct rk_error err = { 0 };
		write_one(path, key, names[i]);
		ck_assert_int_eq(try_unpack(path, key, &err), RK_EINVAL);
		ck_assert_msg(strstr(err.msg, "outside the state directory") != NULL, "%s: %s",
			      names[i], err.msg);
	}
	snprintf(outside, sizeof(outside), "%s/evil", rk_test_base_dir);
	ck_assert_int_ne(stat(outside, &st), 0);
	ck_assert_int_ne(stat("/tmp/rk-evil-abs", &st), 0);
	/* The same writer with a plain name unpacks: the refusals are the names'. */
	{
		struct rk_error err = { 0 };
		write_one(path, key, "plain");
		ck_assert_msg(try_unpack(path, key, &err) == 0, "%s", err.msg);
	}
	unlink(path);
}
END_TEST

START_TEST(test_backup_restore_of_a_bad_backup_changes_nothing)
{
	struct rk_error err = { 0 };
	struct fx f;
	char *text, *before, *after;
	size_t len, blen, alen;

	fx_init(&f, 7);
	fx_backup(&f);
	text = slurp(f.bak, &len);
	text[len / 2] ^= 1;
	spit(f.bak, text, len);
	free(text);
	fx_event(&f, "after.backup");
	before = slurp(f.local_cur, &blen);
	ck_assert_int_eq(rk_backup_restore(&f.ctx, f.bak, NULL, &err), RK_EINVAL);
	after = slurp(f.local_cur, &alen);
	ck_assert_str_eq(before, after);
	free(before);
	free(after);
	/* The store is still open and whole: 3 rows, no state.restored. */
	ck_assert_int_eq(audit_rows(&f), 3);
	fx_done(&f);
}
END_TEST

START_TEST(test_backup_restore_is_refused_while_the_state_is_locked)
{
	struct rk_error err = { 0 };
	struct fx f;
	int fd = -1;

	fx_init(&f, 7);
	fx_backup(&f);
	ck_assert_msg(rk_state_lock(f.dir, &fd, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(rk_backup_restore(&f.ctx, f.bak, NULL, &err), RK_EBUSY);
	rk_state_unlock(fd);
	ck_assert_int_eq(audit_rows(&f), 2);
	fx_done(&f);
}
END_TEST

START_TEST(test_backup_key_readable_by_others_is_refused)
{
	struct rk_error err = { 0 };
	unsigned char *key = NULL;
	struct fx f;

	fx_init(&f, 7);
	fx_backup(&f);
	ck_assert_int_eq(chmod(f.key_file, 0644), 0);
	ck_assert_int_eq(rk_backup_write(&f.ctx, f.bak, NULL, &err), RK_EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "chmod 600"));
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(rk_backup_key_load(&key, f.key_file, 0, &err), RK_EINVAL);
	ck_assert_ptr_null(key);
	fx_done(&f);
}
END_TEST

static int
count_baks(const char *dir)
{
	char cmd[200];
	FILE *p;
	int n = -1;

	snprintf(cmd, sizeof(cmd), "ls %s | grep -c '^rekey-.*\\.bak$'", dir);
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(fscanf(p, "%d", &n), 1);
	pclose(p);
	return n;
}

START_TEST(test_backup_retention_keeps_the_newest)
{
	struct rk_error err = { 0 };
	char written[5][200];
	struct stat st;
	struct fx f;

	fx_init(&f, 3);
	ck_assert_int_eq(rk_backup_last(&f.cfg), 0);
	for (int i = 0; i < 5; i++) {
		/* Two of them in one second (a suffix), the rest a minute apart. */
		f.ctx.fixed_now = 1767312000 + (i < 2 ? 0 : i * 60);
		ck_assert_msg(rk_backup_scheduled(&f.ctx, written[i], sizeof(written[i]), &err) == 0,
			      "%s", err.msg);
	}
	ck_assert_int_eq(count_baks(f.backups), 3);
	ck_assert_int_ne(stat(written[0], &st), 0);
	ck_assert_int_ne(stat(written[1], &st), 0);
	for (int i = 2; i < 5; i++)
		ck_assert_msg(stat(written[i], &st) == 0, "%s was removed", written[i]);
	ck_assert_int_eq(stat(f.backups, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0700);
	ck_assert_int_eq(rk_backup_last(&f.cfg), 1767312000 + 4 * 60);
	fx_done(&f);
}
END_TEST

START_TEST(test_backup_two_in_one_second_are_both_kept)
{
	struct rk_error err = { 0 };
	char a[200], b[200], c[200];
	struct stat st;
	struct fx f;

	fx_init(&f, 7);
	ck_assert_msg(rk_backup_scheduled(&f.ctx, a, sizeof(a), &err) == 0, "%s", err.msg);
	ck_assert_msg(rk_backup_scheduled(&f.ctx, b, sizeof(b), &err) == 0, "%s", err.msg);
	ck_assert_msg(rk_backup_scheduled(&f.ctx, c, sizeof(c), &err) == 0, "%s", err.msg);
	ck_assert_str_eq(strrchr(a, '/'), "/rekey-20260102T000000Z.bak");
	ck_assert_str_eq(strrchr(b, '/'), "/rekey-20260102T000000Z-1.bak");
	ck_assert_str_eq(strrchr(c, '/'), "/rekey-20260102T000000Z-2.bak");
	ck_assert_int_eq(stat(a, &st), 0);
	ck_assert_int_eq(stat(b, &st), 0);
	ck_assert_int_eq(count_baks(f.backups), 3);
	/* Each is a whole backup. */
	{
		unsigned char *key = fx_key(&f);
		ck_assert_int_eq(try_unpack(a, key, &err), 0);
		ck_assert_int_eq(try_unpack(b, key, &err), 0);
		sodium_free(key);
	}
	ck_assert_int_eq(rk_backup_last(&f.cfg), 1767312000);
	fx_done(&f);
}
END_TEST

Suite *
backup_suite(void)
{
	Suite *s = suite_create("backup");
	TCase *tc = tcase_create("backup");

	tcase_add_unchecked_fixture(tc, rk_test_base_setup, rk_test_base_teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_backup_round_trip_restores_db_keys_and_local_store);
	tcase_add_test(tc, test_backup_file_holds_no_plaintext);
	tcase_add_test(tc, test_backup_flipped_byte_anywhere_is_refused);
	tcase_add_test(tc, test_backup_truncated_file_is_refused);
	tcase_add_test(tc, test_backup_wrong_key_is_refused);
	tcase_add_test(tc, test_backup_path_traversal_entry_is_refused);
	tcase_add_test(tc, test_backup_restore_of_a_bad_backup_changes_nothing);
	tcase_add_test(tc, test_backup_restore_is_refused_while_the_state_is_locked);
	tcase_add_test(tc, test_backup_key_readable_by_others_is_refused);
	tcase_add_test(tc, test_backup_retention_keeps_the_newest);
	tcase_add_test(tc, test_backup_two_in_one_second_are_both_kept);
	suite_add_tcase(s, tc);
	return s;
}
