/*
 * The hash-chained audit log (src/audit.c over src/store.c): rows appended
 * with rk_audit verify; an edited, removed or reordered row is found and
 * named; and the triggers keep the table append-only for ordinary SQL.
 * The tests open the state DB with sqlite3 directly, as an attacker who can
 * write the DB (but not read the key files) would.
 */
#include <check.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sqlite3.h>

#include "rekey/audit.h"
#include "rekey/crypto.h"
#include "rekey/ctx.h"
#include "rekey/store.h"
#include "unit.h"

struct fx {
	char dir[64];
	struct rk_ctx ctx;
};

static void
fx_init(struct fx *f)
{
	rk_test_state_ctx(f->dir, &f->ctx);
}

static void
fx_done(struct fx *f)
{
	rk_ctx_cleanup(&f->ctx);
	rk_test_rm_rf(f->dir);
}

/* Appends n rows: event "e<i>", subject "s<i>", detail {"i": i}. */
static void
append_rows(struct fx *f, int n)
{
	for (int i = 1; i <= n; i++) {
		char event[16], subject[16];
		json_t *d = json_pack("{s:i, s:s}", "i", i, "note", "plain words");
		struct rk_error err = { 0 };

		snprintf(event, sizeof(event), "e%d", i);
		snprintf(subject, sizeof(subject), "s%d", i);
		f->ctx.fixed_now++;
		ck_assert_msg(rk_audit(&f->ctx, event, subject, d, &err) == 0, "%s", err.msg);
		json_decref(d);
	}
}

static sqlite3 *
open_db(struct fx *f)
{
	sqlite3 *db = NULL;

	ck_assert_int_eq(sqlite3_open(rk_store_path(f->ctx.store), &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	return db;
}

static void
exec_ok(sqlite3 *db, const char *sql)
{
	char *msg = NULL;

	ck_assert_msg(sqlite3_exec(db, sql, NULL, NULL, &msg) == SQLITE_OK, "%s: %s", sql,
		      msg ? msg : "?");
}

/* Opens the DB and drops the append-only triggers, as a tamperer would. */
static sqlite3 *
open_db_without_triggers(struct fx *f)
{
	sqlite3 *db = open_db(f);

	exec_ok(db, "DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;");
	return db;
}

/* Verify must fail with `what` and "row <n>" in its message. */
static void
assert_broken_at(struct fx *f, int row, const char *what)
{
	char want[32];
	int64_t rows = -1;
	struct rk_error err = { 0 };

	snprintf(want, sizeof(want), "row %d", row);
	ck_assert_int_eq(rk_audit_verify(f->ctx.store, f->ctx.keys, &rows, &err), RK_EINVAL);
	ck_assert_msg(strstr(err.msg, want) != NULL, "'%s' not in '%s'", want, err.msg);
	ck_assert_msg(strstr(err.msg, what) != NULL, "'%s' not in '%s'", what, err.msg);
	ck_assert_int_eq(rows, -1);
}

START_TEST(test_audit_rows_verify_and_are_counted)
{
	struct fx f;
	int64_t rows = 0;
	struct rk_error err = { 0 };
	json_t *list = NULL, *first;

	fx_init(&f);
	ck_assert_int_eq(rk_audit_verify(f.ctx.store, f.ctx.keys, &rows, &err), 0);
	ck_assert_int_eq(rows, 0);
	append_rows(&f, 5);
	ck_assert_msg(rk_audit_verify(f.ctx.store, f.ctx.keys, &rows, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(rows, 5);

	ck_assert_int_eq(rk_store_audit_list(f.ctx.store, 0, &list, &err), 0);
	ck_assert_int_eq(json_array_size(list), 5);
	first = json_array_get(list, 0);
	ck_assert_int_eq(json_integer_value(json_object_get(first, "seq")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(first, "ts")), 1767312001);
	ck_assert_str_eq(json_string_value(json_object_get(first, "actor")), f.ctx.actor);
	ck_assert_str_eq(json_string_value(json_object_get(first, "prev_hash")), "");
	ck_assert_str_eq(json_string_value(json_object_get(first, "detail")),
			 "{\"i\":1,\"note\":\"plain words\"}");
	/* Each row names the hash of the one before. */
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(list, 1), "prev_hash")),
			 json_string_value(json_object_get(first, "hash")));
	ck_assert_uint_eq(strlen(json_string_value(json_object_get(first, "hash"))), RK_FP_HEX_LEN);
	json_decref(list);
	fx_done(&f);
}
END_TEST

START_TEST(test_audit_null_detail_is_an_empty_object)
{
	struct fx f;
	int64_t rows = 0;
	struct rk_error err = { 0 };
	json_t *list = NULL;

	fx_init(&f);
	ck_assert_int_eq(rk_audit(&f.ctx, "run.started", "r1", NULL, &err), 0);
	ck_assert_int_eq(rk_audit_verify(f.ctx.store, f.ctx.keys, &rows, &err), 0);
	ck_assert_int_eq(rows, 1);
	ck_assert_int_eq(rk_store_audit_list(f.ctx.store, 0, &list, &err), 0);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(list, 0), "detail")),
			 "{}");
	json_decref(list);
	fx_done(&f);
}
END_TEST

START_TEST(test_audit_edited_detail_names_the_row)
{
	struct fx f;
	sqlite3 *db;

	fx_init(&f);
	append_rows(&f, 5);
	db = open_db_without_triggers(&f);
	exec_ok(db, "UPDATE audit SET detail = '{\"i\":3,\"note\":\"forged\"}' WHERE seq = 3");
	sqlite3_close(db);
	assert_broken_at(&f, 3, "edited");
	fx_done(&f);
}
END_TEST

START_TEST(test_audit_edited_actor_time_or_subject_names_the_row)
{
	static const char *const edits[] = {
		"UPDATE audit SET actor = 'mallory@host' WHERE seq = 2",
		"UPDATE audit SET ts = ts + 1 WHERE seq = 2",
		"UPDATE audit SET subject = 'other' WHERE seq = 2",
		"UPDATE audit SET event = 'e9' WHERE seq = 2",
	};

	for (size_t i = 0; i < sizeof(edits) / sizeof(edits[0]); i++) {
		struct fx f;
		sqlite3 *db;

		fx_init(&f);
		append_rows(&f, 3);
		db = open_db_without_triggers(&f);
		exec_ok(db, edits[i]);
		sqlite3_close(db);
		assert_broken_at(&f, 2, "row 2");
		fx_done(&f);
	}
}
END_TEST

START_TEST(test_audit_relinked_chain_without_key_is_found)
{
	struct fx f;
	sqlite3 *db;

	fx_init(&f);
	append_rows(&f, 4);
	/* The tamperer edits row 2, writes a hash of their own and links row 3 to
	 * it: without the key the MAC of row 2 cannot be made to match. */
	db = open_db_without_triggers(&f);
	exec_ok(db, "UPDATE audit SET detail = '{}', hash = '"
		    "00000000000000000000000000000000000000000000000000000000000000aa'"
		    " WHERE seq = 2;"
		    "UPDATE audit SET prev_hash = '"
		    "00000000000000000000000000000000000000000000000000000000000000aa'"
		    " WHERE seq = 3;");
	sqlite3_close(db);
	assert_broken_at(&f, 2, "edited");
	fx_done(&f);
}
END_TEST

START_TEST(test_audit_deleted_middle_row_is_named_missing)
{
	struct fx f;
	sqlite3 *db;

	fx_init(&f);
	append_rows(&f, 5);
	db = open_db_without_triggers(&f);
	exec_ok(db, "DELETE FROM audit WHERE seq = 3");
	sqlite3_close(db);
	assert_broken_at(&f, 3, "missing");
	fx_done(&f);
}
END_TEST

START_TEST(test_audit_deleted_middle_row_renumbered_still_fails)
{
	struct fx f;
	sqlite3 *db;

	fx_init(&f);
	append_rows(&f, 5);
	db = open_db_without_triggers(&f);
	/* Hide the gap: delete row 3 and renumber 4 and 5. */
	exec_ok(db, "DELETE FROM audit WHERE seq = 3; UPDATE audit SET seq = 3 WHERE seq = 4;"
		    " UPDATE audit SET seq = 4 WHERE seq = 5;");
	sqlite3_close(db);
	assert_broken_at(&f, 3, "does not follow");
	fx_done(&f);
}
END_TEST

START_TEST(test_audit_swapped_rows_fail)
{
	struct fx f;
	sqlite3 *db;
	int64_t rows = 0;
	struct rk_error err = { 0 };

	fx_init(&f);
	append_rows(&f, 4);
	db = open_db_without_triggers(&f);
	/* Exchange the whole contents of rows 2 and 3 (keeping seq in order). */
	exec_ok(db, "CREATE TEMP TABLE t AS SELECT * FROM audit WHERE seq IN (2, 3);"
		    "UPDATE audit SET (ts, actor, event, subject, detail, prev_hash, hash) ="
		    " (SELECT ts, actor, event, subject, detail, prev_hash, hash FROM t WHERE seq = 3)"
		    " WHERE seq = 2;"
		    "UPDATE audit SET (ts, actor, event, subject, detail, prev_hash, hash) ="
		    " (SELECT ts, actor, event, subject, detail, prev_hash, hash FROM t WHERE seq = 2)"
		    " WHERE seq = 3;");
	sqlite3_close(db);
	ck_assert_int_eq(rk_audit_verify(f.ctx.store, f.ctx.keys, &rows, &err), RK_EINVAL);
	ck_assert_msg(strstr(err.msg, "row 2") != NULL, "%s", err.msg);
	fx_done(&f);
}
END_TEST

START_TEST(test_audit_swapped_event_and_subject_fail)
{
	struct fx f;
	sqlite3 *db;

	fx_init(&f);
	append_rows(&f, 4);
	db = open_db_without_triggers(&f);
	/* Swap only the payload, keeping each row's chain fields. */
	exec_ok(db, "CREATE TEMP TABLE t AS SELECT * FROM audit WHERE seq IN (2, 3);"
		    "UPDATE audit SET (event, subject, detail) ="
		    " (SELECT event, subject, detail FROM t WHERE seq = 3) WHERE seq = 2;"
		    "UPDATE audit SET (event, subject, detail) ="
		    " (SELECT event, subject, detail FROM t WHERE seq = 2) WHERE seq = 3;");
	sqlite3_close(db);
	assert_broken_at(&f, 2, "edited");
	fx_done(&f);
}
END_TEST

START_TEST(test_audit_different_fingerprint_key_fails_verify)
{
	struct fx f;
	char other[64];
	struct rk_keys *k2 = NULL;
	int64_t rows = 0;
	struct rk_error err = { 0 };

	fx_init(&f);
	append_rows(&f, 2);
	snprintf(other, sizeof(other), "%s/t-XXXXXX", rk_test_base_dir);
	ck_assert_ptr_nonnull(mkdtemp(other));
	ck_assert_int_eq(rk_keys_create(other, &err), 0);
	ck_assert_int_eq(rk_keys_load(&k2, other, &err), 0);
	ck_assert_int_eq(rk_audit_verify(f.ctx.store, k2, &rows, &err), RK_EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "row 1"));
	rk_keys_free(k2);
	rk_test_rm_rf(other);
	fx_done(&f);
}
END_TEST

START_TEST(test_audit_triggers_reject_update_and_delete)
{
	struct fx f;
	sqlite3 *db;
	char *msg = NULL;
	int64_t rows = 0;
	struct rk_error err = { 0 };

	fx_init(&f);
	append_rows(&f, 3);
	db = open_db(&f);
	ck_assert_int_ne(sqlite3_exec(db, "UPDATE audit SET detail = 'x' WHERE seq = 2", NULL, NULL,
				      &msg), SQLITE_OK);
	ck_assert_ptr_nonnull(msg);
	ck_assert_ptr_nonnull(strstr(msg, "append-only"));
	sqlite3_free(msg);
	msg = NULL;
	ck_assert_int_ne(sqlite3_exec(db, "DELETE FROM audit WHERE seq = 3", NULL, NULL, &msg),
			 SQLITE_OK);
	ck_assert_ptr_nonnull(msg);
	ck_assert_ptr_nonnull(strstr(msg, "append-only"));
	sqlite3_free(msg);
	sqlite3_close(db);
	/* Nothing changed. */
	ck_assert_int_eq(rk_audit_verify(f.ctx.store, f.ctx.keys, &rows, &err), 0);
	ck_assert_int_eq(rows, 3);
	fx_done(&f);
}
END_TEST

START_TEST(test_audit_chain_survives_reopen)
{
	struct fx f;
	int64_t rows = 0;
	struct rk_error err = { 0 };

	fx_init(&f);
	append_rows(&f, 2);
	rk_store_close(f.ctx.store);
	f.ctx.store = NULL;
	ck_assert_int_eq(rk_store_open(&f.ctx.store, f.dir, 0, &err), 0);
	append_rows(&f, 2);
	ck_assert_msg(rk_audit_verify(f.ctx.store, f.ctx.keys, &rows, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(rows, 4);
	fx_done(&f);
}
END_TEST

Suite *
audit_suite(void)
{
	Suite *s = suite_create("audit");
	TCase *tc = tcase_create("chain");

	tcase_add_unchecked_fixture(tc, rk_test_base_setup, rk_test_base_teardown);
	tcase_add_test(tc, test_audit_rows_verify_and_are_counted);
	tcase_add_test(tc, test_audit_null_detail_is_an_empty_object);
	tcase_add_test(tc, test_audit_edited_detail_names_the_row);
	tcase_add_test(tc, test_audit_edited_actor_time_or_subject_names_the_row);
	tcase_add_test(tc, test_audit_relinked_chain_without_key_is_found);
	tcase_add_test(tc, test_audit_deleted_middle_row_is_named_missing);
	tcase_add_test(tc, test_audit_deleted_middle_row_renumbered_still_fails);
	tcase_add_test(tc, test_audit_swapped_rows_fail);
	tcase_add_test(tc, test_audit_swapped_event_and_subject_fail);
	tcase_add_test(tc, test_audit_different_fingerprint_key_fails_verify);
	tcase_add_test(tc, test_audit_triggers_reject_update_and_delete);
	tcase_add_test(tc, test_audit_chain_survives_reopen);
	suite_add_tcase(s, tc);
	return s;
}
