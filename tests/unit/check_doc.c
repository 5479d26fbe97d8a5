/*
 * YAML documents with positions (src/doc.c): the YAML core types as config
 * files use them, refusals (duplicate keys, anchors, aliases, several
 * documents, deep nesting, oversize input) that name file:line:column, the
 * position lookups (including true/false/null, which jansson shares), and
 * the schema checks every config file goes through.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rekey/doc.h"
#include "rekey/util.h"
#include "unit.h"

#define NAME "t.yaml"

static struct rk_doc *
load_ok(const char *text)
{
	struct rk_doc *d = NULL;
	struct rk_error err = { 0 };

	ck_assert_msg(rk_doc_load_string(&d, NAME, text, strlen(text), &err) == 0, "%s", err.msg);
	ck_assert_ptr_nonnull(d);
	return d;
}

/* Loads text that must be refused; returns the error. */
static struct rk_error
load_bad(const char *text)
{
	struct rk_doc *d = NULL;
	struct rk_error err = { 0 };

	ck_assert_int_eq(rk_doc_load_string(&d, NAME, text, strlen(text), &err), RK_EINVAL);
	ck_assert_ptr_null(d);
	ck_assert_int_eq(err.code, RK_EINVAL);
	return err;
}

/* err->msg starts with "NAME:line:col: " (col 0: any column). */
static void
assert_at(const struct rk_error *err, const char *name, int line, int col)
{
	char want[256];
	int l = 0, c = 0, used = 0;

	snprintf(want, sizeof(want), "%s:", name);
	ck_assert_msg(strncmp(err->msg, want, strlen(want)) == 0, "'%s' does not start with '%s'",
		      err->msg, want);
	ck_assert_msg(sscanf(err->msg + strlen(want), "%d:%d: %n", &l, &c, &used) == 2 && used > 0,
		      "no line:col in '%s'", err->msg);
	ck_assert_msg(l == line, "line %d, expected %d: %s", l, line, err->msg);
	if (col != 0)
		ck_assert_msg(c == col, "column %d, expected %d: %s", c, col, err->msg);
	else
		ck_assert_int_gt(c, 0);
}

START_TEST(test_doc_scalars_follow_the_yaml_core_schema)
{
	struct rk_doc *d = load_ok("i: 42\n"
				   "neg: -7\n"
				   "plus: +5\n"
				   "b: true\n"
				   "f: False\n"
				   "n: null\n"
				   "tilde: ~\n"
				   "empty:\n"
				   "q: \"123\"\n"
				   "sq: 'true'\n"
				   "qn: \"null\"\n"
				   "s: hello world\n"
				   "real: 1.5\n"
				   "huge: 12345678901234567890\n");
	json_t *r = rk_doc_root(d);

	ck_assert(json_is_integer(json_object_get(r, "i")));
	ck_assert_int_eq(json_integer_value(json_object_get(r, "i")), 42);
	ck_assert_int_eq(json_integer_value(json_object_get(r, "neg")), -7);
	ck_assert_int_eq(json_integer_value(json_object_get(r, "plus")), 5);
	ck_assert(json_is_true(json_object_get(r, "b")));
	ck_assert(json_is_false(json_object_get(r, "f")));
	ck_assert(json_is_null(json_object_get(r, "n")));
	ck_assert(json_is_null(json_object_get(r, "tilde")));
	ck_assert(json_is_null(json_object_get(r, "empty")));
	/* Quoting makes a string, whatever it looks like. */
	ck_assert(json_is_string(json_object_get(r, "q")));
	ck_assert_str_eq(json_string_value(json_object_get(r, "q")), "123");
	ck_assert(json_is_string(json_object_get(r, "sq")));
	ck_assert_str_eq(json_string_value(json_object_get(r, "sq")), "true");
	ck_assert(json_is_string(json_object_get(r, "qn")));
	ck_assert_str_eq(json_string_value(json_object_get(r, "s")), "hello world");
	/* No floats in config files; a number too big for int64 is not truncated. */
	ck_assert(json_is_string(json_object_get(r, "real")));
	ck_assert(json_is_string(json_object_get(r, "huge")));
	ck_assert_str_eq(json_string_value(json_object_get(r, "huge")), "12345678901234567890");
	rk_doc_free(d);
}
END_TEST

START_TEST(test_doc_json_is_accepted)
{
	struct rk_doc *d = load_ok("{\"a\": [1, \"2\", true], \"b\": {\"c\": null}}");
	json_t *a = json_object_get(rk_doc_root(d), "a");

	ck_assert_int_eq(json_array_size(a), 3);
	ck_assert_int_eq(json_integer_value(json_array_get(a, 0)), 1);
	ck_assert_str_eq(json_string_value(json_array_get(a, 1)), "2");
	ck_assert(json_is_true(json_array_get(a, 2)));
	ck_assert(json_is_null(json_object_get(json_object_get(rk_doc_root(d), "b"), "c")));
	rk_doc_free(d);
}
END_TEST

START_TEST(test_doc_empty_document_is_an_empty_mapping)
{
	static const char *const texts[] = { "", "# only a comment\n", "~\n", "---\n" };

	for (size_t i = 0; i < RK_ARRAY_SIZE(texts); i++) {
		struct rk_doc *d = load_ok(texts[i]);
		ck_assert_msg(json_is_object(rk_doc_root(d)), "text %zu", i);
		ck_assert_int_eq(json_object_size(rk_doc_root(d)), 0);
		rk_doc_free(d);
	}
}
END_TEST

START_TEST(test_doc_duplicate_key_is_rejected_with_its_position)
{
	struct rk_error err = load_bad("a: 1\nb: 2\na: 3\n");

	assert_at(&err, NAME, 3, 1);
	ck_assert_ptr_nonnull(strstr(err.msg, "duplicate key 'a'"));

	err = load_bad("outer:\n  x: 1\n  y: 2\n  x: 3\n");
	assert_at(&err, NAME, 4, 3);
	ck_assert_ptr_nonnull(strstr(err.msg, "duplicate key 'x'"));

	/* A duplicate of a key whose value is null or a mapping is still a duplicate. */
	err = load_bad("{k: , k: {z: 1}}");
	ck_assert_ptr_nonnull(strstr(err.msg, "duplicate key 'k'"));
}
END_TEST

START_TEST(test_doc_mapping_keys_stay_text)
{
	struct rk_doc *d = load_ok("404: not found\ntrue: yes\nnull: x\n");
	json_t *r = rk_doc_root(d);

	ck_assert_str_eq(json_string_value(json_object_get(r, "404")), "not found");
	ck_assert_str_eq(json_string_value(json_object_get(r, "true")), "yes");
	ck_assert_str_eq(json_string_value(json_object_get(r, "null")), "x");
	rk_doc_free(d);
}
END_TEST

START_TEST(test_doc_same_key_in_different_mappings_is_fine)
{
	struct rk_doc *d = load_ok("a: {x: 1}\nb: {x: 2}\n");

	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(rk_doc_root(d), "b"),
							    "x")), 2);
	rk_doc_free(d);
}
END_TEST

START_TEST(test_doc_anchors_are_rejected)
{
	struct rk_error err = load_bad("a: &x 1\nb: 2\n");

	assert_at(&err, NAME, 1, 4);
	ck_assert_ptr_nonnull(strstr(err.msg, "anchors"));

	err = load_bad("base: &b {k: v}\n");
	ck_assert_ptr_nonnull(strstr(err.msg, "anchors"));

	err = load_bad("list: &l [1]\n");
	ck_assert_ptr_nonnull(strstr(err.msg, "anchors"));
}
END_TEST

START_TEST(test_doc_aliases_are_rejected)
{
	struct rk_error err = load_bad("a: 1\nb: *x\n");

	assert_at(&err, NAME, 2, 4);
	ck_assert_ptr_nonnull(strstr(err.msg, "aliases"));

	/* The merge key is an alias too. */
	err = load_bad("c:\n  <<: *base\n");
	ck_assert_ptr_nonnull(strstr(err.msg, "aliases"));
}
END_TEST

START_TEST(test_doc_multiple_documents_are_rejected)
{
	struct rk_error err = load_bad("a: 1\n---\nb: 2\n");

	assert_at(&err, NAME, 2, 1);
	ck_assert_ptr_nonnull(strstr(err.msg, "one YAML document"));

	/* One explicit document with an end marker is fine. */
	rk_doc_free(load_ok("---\na: 1\n...\n"));
}
END_TEST

START_TEST(test_doc_malformed_yaml_names_file_line_col)
{
	struct rk_error err = load_bad("a: 1\nb: [1, 2\nc: 3\n");

	assert_at(&err, NAME, 3, 0);

	err = load_bad("a: 1\n  b: 2\n");
	assert_at(&err, NAME, 2, 0);

	err = load_bad("key: \"unterminated\n");
	assert_at(&err, NAME, 2, 0);
}
END_TEST

START_TEST(test_doc_error_names_the_document_name_given)
{
	struct rk_doc *d = NULL;
	struct rk_error err = { 0 };
	static const char text[] = "x: 1\nx: 2\n";

	ck_assert_int_eq(rk_doc_load_string(&d, "policy/x.yaml (built-in)", text, strlen(text),
					    &err), RK_EINVAL);
	assert_at(&err, "policy/x.yaml (built-in)", 2, 1);
}
END_TEST

START_TEST(test_doc_deep_nesting_is_rejected)
{
	char text[300];
	size_t n = 0;

	for (int i = 0; i < 100; i++)
		text[n++] = '[';
	for (int i = 0; i < 100; i++)
		text[n++] = ']';
	text[n] = '\0';
	{
		struct rk_error err = load_bad(text);
		ck_assert_ptr_nonnull(strstr(err.msg, "nesting is too deep"));
		assert_at(&err, NAME, 1, 0);
	}
	/* 64 levels are fine. */
	n = 0;
	for (int i = 0; i < 64; i++)
		text[n++] = '[';
	for (int i = 0; i < 64; i++)
		text[n++] = ']';
	text[n] = '\0';
	rk_doc_free(load_ok(text));
}
END_TEST

START_TEST(test_doc_larger_than_limit_is_refused)
{
	size_t len = RK_MAX_DOC_BYTES + 1;
	char *text = malloc(len);
	struct rk_doc *d = NULL;
	struct rk_error err = { 0 };

	ck_assert_ptr_nonnull(text);
	memset(text, '#', len);
	ck_assert_int_eq(rk_doc_load_string(&d, NAME, text, len, &err), RK_EINVAL);
	ck_assert_ptr_null(d);
	ck_assert_ptr_nonnull(strstr(err.msg, "limit"));
	free(text);
}
END_TEST

/* A file the user named that is not there is the user's input (exit 2), not an I/O failure. */
START_TEST(test_doc_load_file_missing_is_an_input_error)
{
	struct rk_doc *d = NULL;
	struct rk_error err = { 0 };

	ck_assert_int_eq(rk_doc_load_file(&d, "/nonexistent/rekey-test/x.yaml", &err),
			 RK_EINVAL);
	ck_assert_int_eq(err.code, RK_EINVAL);
	ck_assert_ptr_null(d);
	ck_assert_ptr_nonnull(strstr(err.msg, "/nonexistent/rekey-test/x.yaml"));
	ck_assert_ptr_nonnull(strstr(err.msg, "No such file"));
}
END_TEST

/*
 * Text that is not UTF-8 is named as such, at the line and column (in
 * characters) of the first bad byte, never reported as a missing key or at 1:1.
 */
START_TEST(test_doc_invalid_utf8_names_the_encoding_error_and_its_position)
{
	static const struct {
		const char *text;
		int line, col;
		const char *byte;
	} cases[] = {
		{ "name: a\nowner: caf\xe9 x\n", 2, 11, "0xE9" },		/* Latin-1 */
		{ "name: a\nowner: \xc3\xa9\xe2\x82\xac\xff\n", 2, 10, "0xFF" },	/* after é€ */
		{ "\xff\xfen\0a\0m\0e\0", 1, 1, "0xFF" },		/* UTF-16 */
		{ "a: 1\n\n# a comment \xc0\xaf\n", 3, 13, "0xC0" },	/* overlong */
		{ "a: \xed\xa0\x80\n", 1, 4, "0xED" },			/* a surrogate */
		{ "a: \"x\xe2\x82\"\n", 1, 6, "0xE2" },			/* cut short */
	};

	for (size_t i = 0; i < RK_ARRAY_SIZE(cases); i++) {
		struct rk_doc *d = NULL;
		struct rk_error err = { 0 };
		size_t len = strlen(cases[i].text);

		if (i == 2)
			len = 10;	/* the UTF-16 case holds NULs */
		ck_assert_int_eq(rk_doc_load_string(&d, NAME, cases[i].text, len, &err), RK_EINVAL);
		ck_assert_ptr_null(d);
		assert_at(&err, NAME, cases[i].line, cases[i].col);
		ck_assert_msg(strstr(err.msg, "not valid UTF-8") != NULL, "case %zu: %s", i, err.msg);
		ck_assert_msg(strstr(err.msg, cases[i].byte) != NULL, "case %zu: %s", i, err.msg);
		ck_assert_msg(strstr(err.msg, "missing") == NULL, "case %zu: %s", i, err.msg);
	}
	/* Valid UTF-8 that YAML refuses is named too, at its position. */
	{
		struct rk_error err = load_bad("a: 1\nb: \"x\x01\"\n");
		assert_at(&err, NAME, 2, 6);
		ck_assert_ptr_nonnull(strstr(err.msg, "control characters"));
	}
	/* Multi-byte characters and a UTF-8 BOM are fine. */
	{
		struct rk_doc *d = load_ok("\xef\xbb\xbf" "a: \"caf\xc3\xa9 \xf0\x9f\x98\x80\"\n");
		ck_assert_str_eq(json_string_value(json_object_get(rk_doc_root(d), "a")),
				 "caf\xc3\xa9 \xf0\x9f\x98\x80");
		rk_doc_free(d);
	}
}
END_TEST

START_TEST(test_doc_where_gives_value_positions)
{
	struct rk_doc *d = load_ok("a:\n  b: [x, yy]\n  c: 7\n");
	json_t *a = json_object_get(rk_doc_root(d), "a");
	json_t *b = json_object_get(a, "b");
	int line, col;

	rk_doc_where(d, b, &line, &col);
	ck_assert_int_eq(line, 2);
	ck_assert_int_eq(col, 6);
	rk_doc_where(d, json_array_get(b, 1), &line, &col);
	ck_assert_int_eq(line, 2);
	ck_assert_int_eq(col, 10);
	rk_doc_where(d, json_object_get(a, "c"), &line, &col);
	ck_assert_int_eq(line, 3);
	ck_assert_int_eq(col, 6);
	/* A value of another document is unknown here. */
	{
		json_t *other = json_string("x");
		rk_doc_where(d, other, &line, &col);
		ck_assert_int_eq(line, 0);
		ck_assert_int_eq(col, 0);
		json_decref(other);
	}
	rk_doc_free(d);
}
END_TEST

START_TEST(test_doc_where_key_works_for_booleans_and_null)
{
	struct rk_doc *d = load_ok("x: 1\nflag: true\nother: true\nnothing: null\n");
	json_t *root = rk_doc_root(d);
	struct rk_error err = { 0 };
	int line, col;

	/* json_true() is one shared value: rk_doc_where cannot tell which one. */
	rk_doc_where(d, json_object_get(root, "flag"), &line, &col);
	ck_assert_int_eq(line, 0);
	rk_doc_where_key(d, root, "flag", &line, &col);
	ck_assert_int_eq(line, 2);
	ck_assert_int_eq(col, 7);
	rk_doc_where_key(d, root, "other", &line, &col);
	ck_assert_int_eq(line, 3);
	ck_assert_int_eq(col, 8);
	rk_doc_where_key(d, root, "nothing", &line, &col);
	ck_assert_int_eq(line, 4);
	/* An absent key falls back to the mapping itself. */
	rk_doc_where_key(d, root, "absent", &line, &col);
	ck_assert_int_eq(line, 1);
	ck_assert_int_eq(col, 1);
	ck_assert_int_eq(rk_doc_error_key(&err, d, root, "other", RK_EINVAL, "bad %s", "flag"),
			 RK_EINVAL);
	ck_assert_str_eq(err.msg, "t.yaml:3:8: bad flag");
	rk_doc_free(d);
}
END_TEST

START_TEST(test_doc_error_without_position_names_the_file)
{
	struct rk_doc *d = load_ok("a: true\n");
	struct rk_error err = { 0 };

	ck_assert_int_eq(rk_doc_error(&err, d, json_object_get(rk_doc_root(d), "a"), RK_EINVAL,
				      "no place"), RK_EINVAL);
	ck_assert_str_eq(err.msg, "t.yaml: no place");
	rk_doc_free(d);
}
END_TEST

static const struct rk_field thing_fields[] = {
	{ "name", RK_T_STRING, RK_F_REQUIRED },
	{ "count", RK_T_INT, 0 },
	{ "flag", RK_T_BOOL, 0 },
	{ "sub", RK_T_OBJECT, 0 },
	{ "list", RK_T_ARRAY, 0 },
	{ "names", RK_T_STRLIST, 0 },
	{ "every", RK_T_DURATION, 0 },
	{ "anything", RK_T_ANY, 0 },
	{ NULL, 0, 0 },
};

/* Runs rk_doc_check on text's root; returns the code. */
static int
check_text(const char *text, struct rk_error *err)
{
	struct rk_doc *d = load_ok(text);
	int r = rk_doc_check(d, rk_doc_root(d), thing_fields, "thing", err);

	rk_doc_free(d);
	return r;
}

START_TEST(test_doc_check_accepts_every_type)
{
	struct rk_error err = { 0 };

	ck_assert_msg(check_text("name: a\ncount: -3\nflag: false\nsub: {x: 1}\nlist: [1, a]\n"
				 "names: [a, b]\nevery: 30d\nanything: [1]\n", &err) == 0,
		      "%s", err.msg);
	ck_assert_msg(check_text("name: a\nevery: 45\nnames: []\n", &err) == 0, "%s", err.msg);
}
END_TEST

START_TEST(test_doc_check_unknown_key_names_key_and_position)
{
	struct rk_error err = { 0 };

	ck_assert_int_eq(check_text("name: a\ncount: 1\nbogus: 2\n", &err), RK_EINVAL);
	assert_at(&err, NAME, 3, 1);
	ck_assert_ptr_nonnull(strstr(err.msg, "unknown key 'bogus' in thing"));
	ck_assert_ptr_nonnull(strstr(err.msg, "known keys: name, count, flag"));
}
END_TEST

/* The key's own position, not its value's (a block value starts on the next line). */
START_TEST(test_doc_check_unknown_key_with_block_value_points_at_the_key)
{
	struct rk_error err = { 0 };

	ck_assert_int_eq(check_text("name: a\nbogus:\n  nested: 1\n", &err), RK_EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "unknown key 'bogus'"));
	assert_at(&err, NAME, 2, 1);
}
END_TEST

/*
 * BUG (minor, src/doc.c rk_doc_check(), unknown-key branch): it reads
 * doc->nmarks and doc->name without checking doc, while rk_doc_error,
 * rk_doc_error_key and rk_doc_where accept a NULL doc (a provider opened
 * with env->doc == NULL, as tests and tools do, crashes on an unknown key
 * in its config instead of reporting it).
 */
START_TEST(test_doc_check_without_document_reports_unknown_key)
{
	json_t *obj = json_pack("{s:s, s:i}", "name", "a", "bogus", 1);
	struct rk_error err = { 0 };

	ck_assert_int_eq(rk_doc_check(NULL, obj, thing_fields, "thing", &err), RK_EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "unknown key 'bogus'"));
	json_decref(obj);
}
END_TEST

START_TEST(test_doc_check_wrong_type_names_key_and_expected_type)
{
	struct rk_error err = { 0 };

	ck_assert_int_eq(check_text("name: 5\n", &err), RK_EINVAL);
	assert_at(&err, NAME, 1, 7);
	ck_assert_ptr_nonnull(strstr(err.msg, "'name' in thing must be a string"));

	rk_error_clear(&err);
	ck_assert_int_eq(check_text("name: a\nflag: yes\n", &err), RK_EINVAL);
	assert_at(&err, NAME, 2, 7);
	ck_assert_ptr_nonnull(strstr(err.msg, "true or false"));

	rk_error_clear(&err);
	ck_assert_int_eq(check_text("name: a\ncount: \"3\"\n", &err), RK_EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "an integer"));

	rk_error_clear(&err);
	ck_assert_int_eq(check_text("name: a\nnames: x\n", &err), RK_EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "a list of strings"));

	rk_error_clear(&err);
	ck_assert_int_eq(check_text("name: a\nsub: [1]\n", &err), RK_EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "a mapping"));

	/* A wrong boolean is located by its key, although true is a shared value. */
	rk_error_clear(&err);
	ck_assert_int_eq(check_text("name: a\n\ncount: true\n", &err), RK_EINVAL);
	assert_at(&err, NAME, 3, 8);
}
END_TEST

/*
 * One element of a list of strings that is not a string is named by its index
 * and position, with the reason (an unquoted true or 5 is a YAML boolean or
 * integer), even for true/false/null, which jansson shares.
 */
START_TEST(test_doc_check_strlist_names_the_element_that_is_not_a_string)
{
	static const struct {
		const char *text;
		int line, col;
		const char *what;
	} cases[] = {
		{ "name: a\nnames: [true]\n", 2, 9,
		  "names[0] in thing must be a string; `true` is a YAML boolean: quote it (\"true\")" },
		{ "name: a\nnames: [a, b, false]\n", 2, 15, "names[2] in thing must be a string; `false`" },
		{ "name: a\nnames:\n  - sleep\n  - 5\n", 4, 5,
		  "names[1] in thing must be a string; `5` is a YAML integer: quote it (\"5\")" },
		{ "name: a\nnames: [a, null]\n", 2, 12, "names[1] in thing must be a string; an empty" },
		{ "name: a\nnames: [a, ~, true]\n", 2, 12, "names[1]" },
		{ "name: a\nnames: [a, {b: c}]\n", 2, 12, "names[1] in thing must be a string, not a mapping" },
		{ "name: a\nnames: [[a]]\n", 2, 9, "names[0] in thing must be a string, not a list" },
	};

	for (size_t i = 0; i < RK_ARRAY_SIZE(cases); i++) {
		struct rk_error err = { 0 };
		ck_assert_int_eq(check_text(cases[i].text, &err), RK_EINVAL);
		assert_at(&err, NAME, cases[i].line, cases[i].col);
		ck_assert_msg(strstr(err.msg, cases[i].what) != NULL, "'%s' not in '%s'",
			      cases[i].what, err.msg);
	}
}
END_TEST

static const struct rk_field planned_fields[] = {
	{ "name", RK_T_STRING, 0 },
	{ "later", RK_T_OBJECT, RK_F_UNSUPPORTED },
	{ NULL, 0, 0 },
};

/* A key designed but not implemented is refused as such and never offered as known. */
START_TEST(test_doc_check_unsupported_key_is_refused_and_not_listed)
{
	struct rk_doc *d = load_ok("name: a\nlater:\n  x: 1\n");
	struct rk_error err = { 0 };

	ck_assert_int_eq(rk_doc_check(d, rk_doc_root(d), planned_fields, "thing", &err), RK_EINVAL);
	assert_at(&err, NAME, 2, 1);
	ck_assert_ptr_nonnull(strstr(err.msg, "'later' in thing is not supported by this version"));
	rk_doc_free(d);

	d = load_ok("name: a\nbogus: 1\n");
	rk_error_clear(&err);
	ck_assert_int_eq(rk_doc_check(d, rk_doc_root(d), planned_fields, "thing", &err), RK_EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "(known keys: name)"));
	rk_doc_free(d);
}
END_TEST

START_TEST(test_doc_check_missing_required_key)
{
	struct rk_error err = { 0 };

	ck_assert_int_eq(check_text("count: 1\n", &err), RK_EINVAL);
	assert_at(&err, NAME, 1, 1);
	ck_assert_ptr_nonnull(strstr(err.msg, "thing is missing the required key 'name'"));
}
END_TEST

START_TEST(test_doc_check_requires_a_mapping)
{
	struct rk_error err = { 0 };

	ck_assert_int_eq(check_text("- a\n- b\n", &err), RK_EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "thing must be a mapping"));
}
END_TEST

START_TEST(test_doc_check_duration_accepts_30d_rejects_30x)
{
	static const char *const good[] = { "30d", "12h", "1h30m", "200ms", "1w", "0", "90" };
	static const char *const bad[] = { "30x", "-1d", "d", "1.5h", "\"\"", "-5", "[30d]" };
	char text[64];
	struct rk_error err = { 0 };

	for (size_t i = 0; i < RK_ARRAY_SIZE(good); i++) {
		snprintf(text, sizeof(text), "name: a\nevery: %s\n", good[i]);
		ck_assert_msg(check_text(text, &err) == 0, "rejected %s: %s", good[i], err.msg);
	}
	for (size_t i = 0; i < RK_ARRAY_SIZE(bad); i++) {
		rk_error_clear(&err);
		snprintf(text, sizeof(text), "name: a\nevery: %s\n", bad[i]);
		ck_assert_msg(check_text(text, &err) == RK_EINVAL, "accepted %s", bad[i]);
		assert_at(&err, NAME, 2, 8);
		ck_assert_ptr_nonnull(strstr(err.msg, "duration"));
	}
}
END_TEST

START_TEST(test_doc_duration_ms_reads_strings_integers_and_defaults)
{
	struct rk_doc *d = load_ok("a: 1h30m\nb: 90\nc: soon\n");
	json_t *r = rk_doc_root(d);
	struct rk_error err = { 0 };
	int64_t ms = 0;

	ck_assert_int_eq(rk_doc_duration_ms(d, r, "a", 1, &ms, &err), 0);
	ck_assert_int_eq(ms, 90LL * 60 * 1000);
	ck_assert_int_eq(rk_doc_duration_ms(d, r, "b", 1, &ms, &err), 0);
	ck_assert_int_eq(ms, 90000);
	ck_assert_int_eq(rk_doc_duration_ms(d, r, "absent", 1234, &ms, &err), 0);
	ck_assert_int_eq(ms, 1234);
	ck_assert_int_eq(rk_doc_duration_ms(d, r, "c", 1, &ms, &err), RK_EINVAL);
	assert_at(&err, NAME, 3, 4);
	rk_doc_free(d);
}
END_TEST

START_TEST(test_doc_typed_getters_use_defaults_on_wrong_type)
{
	struct rk_doc *d = load_ok("s: text\ni: 9\nb: false\n");
	json_t *r = rk_doc_root(d);

	ck_assert_str_eq(rk_doc_str(r, "s", "d"), "text");
	ck_assert_str_eq(rk_doc_str(r, "i", "d"), "d");
	ck_assert_int_eq(rk_doc_int(r, "i", 1), 9);
	ck_assert_int_eq(rk_doc_int(r, "s", 1), 1);
	ck_assert_int_eq(rk_doc_bool(r, "b", 1), 0);
	ck_assert_int_eq(rk_doc_bool(r, "absent", 1), 1);
	rk_doc_free(d);
}
END_TEST

Suite *
doc_suite(void)
{
	Suite *s = suite_create("doc");
	TCase *tc = tcase_create("load");
	TCase *tk = tcase_create("check");

	tcase_add_test(tc, test_doc_scalars_follow_the_yaml_core_schema);
	tcase_add_test(tc, test_doc_json_is_accepted);
	tcase_add_test(tc, test_doc_empty_document_is_an_empty_mapping);
	tcase_add_test(tc, test_doc_duplicate_key_is_rejected_with_its_position);
	tcase_add_test(tc, test_doc_mapping_keys_stay_text);
	tcase_add_test(tc, test_doc_same_key_in_different_mappings_is_fine);
	tcase_add_test(tc, test_doc_anchors_are_rejected);
	tcase_add_test(tc, test_doc_aliases_are_rejected);
	tcase_add_test(tc, test_doc_multiple_documents_are_rejected);
	tcase_add_test(tc, test_doc_malformed_yaml_names_file_line_col);
	tcase_add_test(tc, test_doc_error_names_the_document_name_given);
	tcase_add_test(tc, test_doc_deep_nesting_is_rejected);
	tcase_add_test(tc, test_doc_larger_than_limit_is_refused);
	tcase_add_test(tc, test_doc_load_file_missing_is_an_input_error);
	tcase_add_test(tc, test_doc_invalid_utf8_names_the_encoding_error_and_its_position);
	tcase_add_test(tc, test_doc_where_gives_value_positions);
	tcase_add_test(tc, test_doc_where_key_works_for_booleans_and_null);
	tcase_add_test(tc, test_doc_error_without_position_names_the_file);
	suite_add_tcase(s, tc);

	tcase_add_test(tk, test_doc_check_accepts_every_type);
	tcase_add_test(tk, test_doc_check_unknown_key_names_key_and_position);
	tcase_add_test(tk, test_doc_check_unknown_key_with_block_value_points_at_the_key);
	tcase_add_test(tk, test_doc_check_without_document_reports_unknown_key);
	tcase_add_test(tk, test_doc_check_wrong_type_names_key_and_expected_type);
	tcase_add_test(tk, test_doc_check_strlist_names_the_element_that_is_not_a_string);
	tcase_add_test(tk, test_doc_check_unsupported_key_is_refused_and_not_listed);
	tcase_add_test(tk, test_doc_check_missing_required_key);
	tcase_add_test(tk, test_doc_check_requires_a_mapping);
	tcase_add_test(tk, test_doc_check_duration_accepts_30d_rejects_30x);
	tcase_add_test(tk, test_doc_duration_ms_reads_strings_integers_and_defaults);
	tcase_add_test(tk, test_doc_typed_getters_use_defaults_on_wrong_type);
	suite_add_tcase(s, tk);
	return s;
}
