/*
 * YAML (and JSON) files into jansson values that remember their position.
 *
 * libyaml's event stream is folded into jansson values; a side table maps
 * each value (and each key of a mapping, since jansson shares true, false and
 * null) to its line and column. Anchors and aliases are refused: the files
 * rekey reads do not need them, and they are how "billion laughs" documents
 * grow without bound. Duplicate keys are errors, not silent overrides.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#include "rekey/doc.h"
#include "rekey/util.h"

#define MAX_DEPTH 64

struct mark {
	const json_t *v;	/* the value */
	const json_t *parent;	/* its mapping or list (for key and index lookups), or NULL */
	char *key;		/* its key in that mapping, or NULL (a list element, the root) */
	size_t index;		/* its index in that list */
	int line, col;
	int key_line, key_col;	/* where the key itself is written */
};

struct rk_doc {
	char *name;
	json_t *root;
	struct mark *marks;
	size_t nmarks, cap;
};

static int
add_mark(struct rk_doc *d, const json_t *v, const json_t *parent, const char *key,
	 size_t index, const yaml_mark_t *m, const yaml_mark_t *km)
{
	struct mark *mk;

	if (d->nmarks == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 64;
		struct mark *n = realloc(d->marks, cap * sizeof(*n));
		if (n == NULL)
			return RK_ENOMEM;
		d->marks = n;
		d->cap = cap;
	}
	mk = &d->marks[d->nmarks];
	mk->v = v;
	mk->parent = parent;
	mk->index = index;
	mk->key = key ? strdup(key) : NULL;
	if (key && mk->key == NULL)
		return RK_ENOMEM;
	mk->line = (int)m->line + 1;
	mk->col = (int)m->column + 1;
	mk->key_line = km ? (int)km->line + 1 : mk->line;
	mk->key_col = km ? (int)km->column + 1 : mk->col;
	d->nmarks++;
	return 0;
}

static int
is_plain(const yaml_event_t *ev)
{
	return ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

/* The YAML 1.2 core schema, restricted to what config files use. */
static json_t *
scalar_value(const yaml_event_t *ev)
{
	const char *s = (const char *)ev->data.scalar.value;
	size_t len = ev->data.scalar.length;

	if (is_plain(ev)) {
		if (len == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
		    strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0)
			return json_null();
		if (strcmp(s, "true") == 0 || strcmp(s, "True") == 0 || strcmp(s, "TRUE") == 0)
			return json_true();
		if (strcmp(s, "false") == 0 || strcmp(s, "False") == 0 ||
		    strcmp(s, "FALSE") == 0)
			return json_false();
		{
			const char *p = s;
			if (*p == '-' || *p == '+')
				p++;
			if (*p && strspn(p, "0123456789") == strlen(p) && strlen(p) < 19) {
				long long v;
				if (rk_parse_int(s[0] == '+' ? s + 1 : s, INT64_MIN, INT64_MAX, &v) == 0)
					return json_integer(v);
			}
		}
	}
	return json_stringn(s, len);
}

struct frame {
	json_t *v;
	char *pending_key;	/* mapping: key waiting for its value */
	yaml_mark_t key_mark;
};

static int
doc_fail(struct rk_error *err, const char *name, int line, int col, const char *msg)
{
	return rk_error_set(err, RK_EINVAL, "%s:%d:%d: %s", name, line, col, msg);
}

static int
attach(struct rk_doc *d, struct frame *stack, int depth, json_t *v, const yaml_event_t *ev,
       struct rk_error *err)
{
	struct frame *top;
	int r;

	if (depth == 0) {
		d->root = v;
		return add_mark(d, v, NULL, NULL, 0, &ev->start_mark, NULL) < 0 ? RK_ENOMEM : 0;
	}
	top = &stack[depth - 1];
	if (json_is_array(top->v)) {
		if (json_array_append_new(top->v, v) < 0)
			return rk_error_set(err, RK_ENOMEM, "out of memory");
		/* By list and index too: true, false and null are shared singletons. */
		return add_mark(d, v, top->v, NULL, json_array_size(top->v) - 1, &ev->start_mark,
				NULL) < 0 ? RK_ENOMEM : 0;
	}
	/* A mapping alternates key scalars and values. */
	if (top->pending_key == NULL) {
		if (!json_is_string(v)) {
			json_decref(v);
			return doc_fail(err, d->name, (int)ev->start_mark.line + 1,
					(int)ev->start_mark.column + 1,
					"mapping keys must be plain strings");
		}
		top->pending_key = strdup(json_string_value(v));
		top->key_mark = ev->start_mark;
		json_decref(v);
		return top->pending_key ? 0 : RK_ENOMEM;
	}
	if (json_object_get(top->v, top->pending_key) != NULL) {
		char msg[300];
		snprintf(msg, sizeof(msg), "duplicate key '%.200s'", top->pending_key);
		json_decref(v);
		r = doc_fail(err, d->name, (int)top->key_mark.line + 1,
			     (int)top->key_mark.column + 1, msg);
		goto out;
	}
	if (json_object_set_new(top->v, top->pending_key, v) < 0) {
		r = rk_error_set(err, RK_ENOMEM, "out of memory");
		goto out;
	}
	r = add_mark(d, v, top->v, top->pending_key, 0, &ev->start_mark, &top->key_mark);
out:
	free(top->pending_key);
	top->pending_key = NULL;
	return r;
}

/* Offset of the first byte that does not begin a valid UTF-8 sequence, or n. */
static size_t
utf8_invalid_at(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned char c = s[i];
		size_t len = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3
			     : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
		/* The second byte's range excludes overlong forms, surrogates, > U+10FFFF. */
		unsigned char lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
		unsigned char hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;

		if (len == 0 || i + len > n)
			return i;
		if (len > 1 && (s[i + 1] < lo || s[i + 1] > hi))
			return i;
		for (size_t k = 2; k < len; k++)
			if ((s[i + k] & 0xC0) != 0x80)
				return i;
		i += len;
	}
	return n;
}

/*
 * libyaml's reader (decoding, before any token) reports a byte offset, not a
 * mark, and for a bad trailing byte the offset of that byte: find the first
 * invalid character ourselves, turn its offset into line:column (columns
 * count characters, as marks do) and say that the text itself is at fault.
 */
static int
reader_fail(struct rk_error *err, const char *name, const yaml_parser_t *parser,
	    const char *text, size_t len)
{
	size_t bad = utf8_invalid_at((const unsigned char *)text, len);
	size_t off = bad < len ? bad : parser->problem_offset < len ? parser->problem_offset : len;
	int line = 1, col = 1;

	for (size_t i = 0; i < off; i++) {
		if (text[i] == '\n') {
			line++;
			col = 1;
		} else if (((unsigned char)text[i] & 0xC0) != 0x80) {
			col++;	/* a continuation byte is part of the character before */
		}
	}
	if (bad < len)
		return rk_error_set(err, RK_EINVAL,
				    "%s:%d:%d: not valid UTF-8: an invalid byte sequence starts "
				    "with 0x%02X at offset %zu (rekey reads UTF-8 files only; save "
				    "the file as UTF-8)", name, line, col, (unsigned char)text[bad],
				    bad);
	/* Valid UTF-8 that YAML refuses: control characters, a lone BOM... */
	return rk_error_set(err, RK_EINVAL, "%s:%d:%d: invalid text: %s (0x%02X at offset %zu)",
			    name, line, col, parser->problem ? parser->problem : "cannot decode",
			    (unsigned)parser->problem_value, off);
}

static int
parse(struct rk_doc *d, yaml_parser_t *parser, const char *text, size_t len,
      struct rk_error *err)
{
	struct frame stack[MAX_DEPTH];
	int depth = 0, r = 0, done = 0, docs = 0;
	yaml_event_t ev;

	memset(stack, 0, sizeof(stack));
	while (!done) {
		if (!yaml_parser_parse(parser, &ev)) {
			if (parser->error == YAML_READER_ERROR)
				r = reader_fail(err, d->name, parser, text, len);
			else
				r = doc_fail(err, d->name, (int)parser->problem_mark.line + 1,
					     (int)parser->problem_mark.column + 1,
					     parser->problem ? parser->problem : "YAML syntax error");
			break;
		}
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = 1;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (++docs > 1)
				r = doc_fail(err, d->name, (int)ev.start_mark.line + 1,
					     (int)ev.start_mark.column + 1,
					     "only one YAML document per file is allowed");
			break;
		case YAML_ALIAS_EVENT:
			r = doc_fail(err, d->name, (int)ev.start_mark.line + 1,
				     (int)ev.start_mark.column + 1,
				     "YAML aliases (*name) are not supported");
			break;
		case YAML_SCALAR_EVENT:
		case YAML_SEQUENCE_START_EVENT:
		case YAML_MAPPING_START_EVENT: {
			json_t *v;
			const yaml_char_t *anchor = ev.type == YAML_SCALAR_EVENT
				? ev.data.scalar.anchor
				: ev.type == YAML_SEQUENCE_START_EVENT ? ev.data.sequence_start.anchor
				: ev.data.mapping_start.anchor;
			if (anchor != NULL) {
				r = doc_fail(err, d->name, (int)ev.start_mark.line + 1,
					     (int)ev.start_mark.column + 1,
					     "YAML anchors (&name) are not supported");
				break;
			}
			if (ev.type == YAML_SCALAR_EVENT && depth > 0 &&
			    json_is_object(stack[depth - 1].v) && stack[depth - 1].pending_key == NULL)
				/* A mapping key stays text: `404: x` has the key "404". */
				v = json_stringn((const char *)ev.data.scalar.value,
						 ev.data.scalar.length);
			else if (ev.type == YAML_SCALAR_EVENT)
				v = scalar_value(&ev);
			else if (ev.type == YAML_SEQUENCE_START_EVENT)
				v = json_array();
			else
				v = json_object();
			if (v == NULL) {
				r = rk_error_set(err, RK_ENOMEM, "out of memory");
				break;
			}
			if (ev.type != YAML_SCALAR_EVENT) {
				if (depth == MAX_DEPTH) {
					json_decref(v);
					r = doc_fail(err, d->name, (int)ev.start_mark.line + 1,
						     (int)ev.start_mark.column + 1,
						     "nesting is too deep");
					break;
				}
				json_incref(v);	/* one ref held by the stack frame */
			}
			/* A value that is a key's key is not possible: keys are scalars. */
			if ((r = attach(d, stack, depth, v, &ev, err)) < 0) {
				if (ev.type != YAML_SCALAR_EVENT)
					json_decref(v);
				break;
			}
			if (ev.type != YAML_SCALAR_EVENT) {
				stack[depth].v = v;
				stack[depth].pending_key = NULL;
				depth++;
			}
			break;
		}
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			depth--;
			json_decref(stack[depth].v);
			free(stack[depth].pending_key);
			stack[depth].pending_key = NULL;
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
		if (r < 0)
			break;
	}
	while (depth > 0) {
		depth--;
		json_decref(stack[depth].v);
		free(stack[depth].pending_key);
	}
	if (r == RK_ENOMEM)
		r = rk_error_set(err, RK_ENOMEM, "out of memory parsing %s", d->name);
	return r;
}

void
rk_doc_free(struct rk_doc *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; i < d->nmarks; i++)
		free(d->marks[i].key);
	free(d->marks);
	json_decref(d->root);
	free(d->name);
	free(d);
}

int
rk_doc_load_string(struct rk_doc **out, const char *name, const char *text, size_t len,
		   struct rk_error *err)
{
	struct rk_doc *d = NULL;
	yaml_parser_t parser;
	int r, have_parser = 0;

	if (len > RK_MAX_DOC_BYTES) {
		r = rk_error_set(err, RK_EINVAL, "%s: larger than the limit of %u bytes", name,
				 RK_MAX_DOC_BYTES);
		goto out;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL || (d->name = strdup(name)) == NULL) {
		r = rk_error_set(err, RK_ENOMEM, "out of memory");
		goto out;
	}
	if (!yaml_parser_initialize(&parser)) {
		r = rk_error_set(err, RK_ENOMEM, "out of memory");
		goto out;
	}
	have_parser = 1;
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	/* No guessing UTF-16 from a BOM: every file rekey reads is UTF-8. */
	yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING);
	if ((r = parse(d, &parser, text, len, err)) < 0)
		goto out;
	if (d->root == NULL || json_is_null(d->root)) {
		json_decref(d->root);
		if ((d->root = json_object()) == NULL) {
			r = rk_error_set(err, RK_ENOMEM, "out of memory");
			goto out;
		}
	}
	*out = d;
	d = NULL;
	r = 0;
out:
	if (have_parser)
		yaml_parser_delete(&parser);
	rk_doc_free(d);
	return r;
}

int
rk_doc_load_file(struct rk_doc **out, const char *path, struct rk_error *err)
{
	char *text = NULL;
	size_t len = 0;
	int r;

	if ((r = rk_read_file(path, RK_MAX_DOC_BYTES, &text, &len, err)) < 0) {
		/*
		 * A file the user named that is not there (or that we may not read)
		 * is the user's input, exit 2, like a malformed one; a read error
		 * of an open file stays an I/O error.
		 */
		if (r == RK_ENOTFOUND || (r == RK_EIO && access(path, R_OK) != 0)) {
			r = RK_EINVAL;
			if (err != NULL)
				err->code = r;
		}
		return r;
	}
	r = rk_doc_load_string(out, path, text, len, err);
	free(text);
	return r;
}

json_t *
rk_doc_root(const struct rk_doc *doc)
{
	return doc->root;
}

const char *
rk_doc_name(const struct rk_doc *doc)
{
	return doc->name;
}

void
rk_doc_where(const struct rk_doc *doc, const json_t *v, int *line, int *col)
{
	*line = *col = 0;
	/* true/false/null are shared singletons in jansson: their position is ambiguous. */
	if (doc == NULL || v == NULL || json_is_boolean(v) || json_is_null(v))
		return;
	for (size_t i = 0; i < doc->nmarks; i++) {
		if (doc->marks[i].v == v) {
			*line = doc->marks[i].line;
			*col = doc->marks[i].col;
			return;
		}
	}
}

/* The mark of obj[key], or NULL. */
static const struct mark *
find_mark(const struct rk_doc *doc, const json_t *obj, const char *key)
{
	for (size_t i = 0; doc != NULL && key != NULL && i < doc->nmarks; i++) {
		const struct mark *m = &doc->marks[i];
		if (m->parent == obj && m->key && strcmp(m->key, key) == 0)
			return m;
	}
	return NULL;
}

void
rk_doc_where_key(const struct rk_doc *doc, const json_t *obj, const char *key, int *line,
		 int *col)
{
	const struct mark *m = find_mark(doc, obj, key);

	if (m == NULL) {
		rk_doc_where(doc, obj, line, col);
		return;
	}
	*line = m->line;
	*col = m->col;
}

/* Position of arr[index] (works for true/false/null, which jansson shares). */
static void
where_index(const struct rk_doc *doc, const json_t *arr, size_t index, int *line, int *col)
{
	for (size_t i = 0; doc != NULL && i < doc->nmarks; i++) {
		const struct mark *m = &doc->marks[i];
		if (m->parent == arr && m->key == NULL && m->index == index) {
			*line = m->line;
			*col = m->col;
			return;
		}
	}
	rk_doc_where(doc, arr, line, col);
}

static int
vdoc_error(struct rk_error *err, const struct rk_doc *doc, int line, int col, int code,
	   const char *fmt, va_list ap)
{
	char msg[400];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (line > 0)
		return rk_error_set(err, code, "%s:%d:%d: %s", doc ? doc->name : "?", line, col,
				    msg);
	return rk_error_set(err, code, "%s: %s", doc ? doc->name : "?", msg);
}

static int RK_PRINTF(5, 6)
vdoc_error_at(struct rk_error *err, const struct rk_doc *doc, int line, int col, const char *fmt,
	      ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vdoc_error(err, doc, line, col, RK_EINVAL, fmt, ap);
	va_end(ap);
	return r;
}

int
rk_doc_error(struct rk_error *err, const struct rk_doc *doc, const json_t *at, int code,
	     const char *fmt, ...)
{
	int line, col, r;
	va_list ap;

	rk_doc_where(doc, at, &line, &col);
	va_start(ap, fmt);
	r = vdoc_error(err, doc, line, col, code, fmt, ap);
	va_end(ap);
	return r;
}

int
rk_doc_error_key(struct rk_error *err, const struct rk_doc *doc, const json_t *obj,
		 const char *key, int code, const char *fmt, ...)
{
	int line, col, r;
	va_list ap;

	rk_doc_where_key(doc, obj, key, &line, &col);
	va_start(ap, fmt);
	r = vdoc_error(err, doc, line, col, code, fmt, ap);
	va_end(ap);
	return r;
}

static const char *
type_name(enum rk_type t)
{
	switch (t) {
	case RK_T_STRING: return "a string";
	case RK_T_INT: return "an integer";
	case RK_T_BOOL: return "true or false";
	case RK_T_OBJECT: return "a mapping";
	case RK_T_ARRAY: return "a list";
	case RK_T_STRLIST: return "a list of strings";
	case RK_T_DURATION: return "a duration like 30d, 12h, 5m, 30s or 200ms";
	case RK_T_ANY: return "any value";
	}
	return "?";
}

static int
type_ok(enum rk_type t, const json_t *v)
{
	switch (t) {
	case RK_T_STRING: return json_is_string(v);
	case RK_T_INT: return json_is_integer(v);
	case RK_T_BOOL: return json_is_boolean(v);
	case RK_T_OBJECT: return json_is_object(v);
	case RK_T_ARRAY: return json_is_array(v);
	case RK_T_STRLIST: {
		size_t i;
		json_t *e;
		if (!json_is_array(v))
			return 0;
		json_array_foreach(v, i, e)
			if (!json_is_string(e))
				return 0;
		return 1;
	}
	case RK_T_DURATION: {
		int64_t ms;
		if (json_is_integer(v))
			return json_integer_value(v) >= 0;
		return json_is_string(v) && rk_parse_duration_ms(json_string_value(v), &ms) == 0;
	}
	case RK_T_ANY: return 1;
	}
	return 0;
}

/*
 * A list of strings with one element that is not: name the element, where it
 * is, and why. An unquoted `true` or `5` in an argv is a YAML boolean or
 * integer, which is easy to write and hard to see.
 */
static int
strlist_error(struct rk_error *err, const struct rk_doc *doc, const json_t *arr, const char *key,
	      const char *what)
{
	size_t i;
	json_t *e;
	int line = 0, col = 0;

	json_array_foreach(arr, i, e) {
		char text[32];

		if (json_is_string(e))
			continue;
		where_index(doc, arr, i, &line, &col);
		if (json_is_null(e))
			return vdoc_error_at(err, doc, line, col,
					     "%s[%zu] in %s must be a string; an empty or `null` "
					     "element is YAML null: quote it or remove it", key, i, what);
		if (json_is_object(e) || json_is_array(e))
			return vdoc_error_at(err, doc, line, col,
					     "%s[%zu] in %s must be a string, not %s", key, i, what,
					     json_is_object(e) ? "a mapping" : "a list");
		/* The document makes no reals: the rest are booleans and integers. */
		if (json_is_boolean(e))
			snprintf(text, sizeof(text), "%s", json_is_true(e) ? "true" : "false");
		else
			snprintf(text, sizeof(text), "%lld", (long long)json_integer_value(e));
		return vdoc_error_at(err, doc, line, col,
				     "%s[%zu] in %s must be a string; `%s` is a YAML %s: quote it "
				     "(\"%s\")", key, i, what, text,
				     json_is_boolean(e) ? "boolean" : "integer", text);
	}
	return rk_doc_error(err, doc, arr, RK_EINVAL, "'%s' in %s must be a list of strings", key,
			    what);
}

int
rk_doc_check(const struct rk_doc *doc, const json_t *obj, const struct rk_field *fields,
	     const char *what, struct rk_error *err)
{
	const char *key;
	json_t *v;

	if (!json_is_object(obj))
		return rk_doc_error(err, doc, obj, RK_EINVAL, "%s must be a mapping", what);
	json_object_foreach((json_t *)obj, key, v) {
		const struct rk_field *f = fields;
		while (f->key && strcmp(f->key, key) != 0)
			f++;
		if (f->key != NULL && (f->flags & RK_F_UNSUPPORTED)) {
			const struct mark *m = find_mark(doc, obj, key);
			if (m != NULL)
				return rk_error_set(err, RK_EINVAL,
						    "%s:%d:%d: '%s' in %s is not supported by this "
						    "version of rekey; remove it", rk_doc_name(doc),
						    m->key_line, m->key_col, key, what);
			return rk_doc_error(err, doc, obj, RK_EINVAL,
					    "'%s' in %s is not supported by this version of rekey; "
					    "remove it", key, what);
		}
		if (f->key == NULL) {
			const struct mark *m = find_mark(doc, obj, key);
			char known[300];
			size_t used = 0;

			known[0] = '\0';
			for (const struct rk_field *k = fields; k->key && used < sizeof(known); k++)
				if (!(k->flags & RK_F_UNSUPPORTED))
					used += (size_t)snprintf(known + used, sizeof(known) - used,
								 "%s%s", used ? ", " : "", k->key);
			/* Point at the key itself, not at its value. */
			if (m != NULL)
				return rk_error_set(err, RK_EINVAL,
						    "%s:%d:%d: unknown key '%s' in %s (known keys: %s)",
						    rk_doc_name(doc), m->key_line, m->key_col, key, what,
						    known);
			return rk_doc_error(err, doc, obj, RK_EINVAL,
					    "unknown key '%s' in %s (known keys: %s)", key, what, known);
		}
		if (f->type == RK_T_STRLIST && json_is_array(v) && !type_ok(f->type, v))
			return strlist_error(err, doc, v, key, what);
		if (!type_ok(f->type, v))
			return rk_doc_error_key(err, doc, obj, key, RK_EINVAL,
						"'%s' in %s must be %s", key, what,
						type_name(f->type));
	}
	for (const struct rk_field *f = fields; f->key; f++) {
		if ((f->flags & RK_F_REQUIRED) && json_object_get(obj, f->key) == NULL)
			return rk_doc_error(err, doc, obj, RK_EINVAL,
					    "%s is missing the required key '%s'", what, f->key);
	}
	return 0;
}

const char *
rk_doc_str(const json_t *obj, const char *key, const char *dflt)
{
	const json_t *v = json_object_get(obj, key);

	return json_is_string(v) ? json_string_value(v) : dflt;
}

int64_t
rk_doc_int(const json_t *obj, const char *key, int64_t dflt)
{
	const json_t *v = json_object_get(obj, key);

	return json_is_integer(v) ? (int64_t)json_integer_value(v) : dflt;
}

int
rk_doc_bool(const json_t *obj, const char *key, int dflt)
{
	const json_t *v = json_object_get(obj, key);

	return json_is_boolean(v) ? json_is_true(v) : dflt;
}

int
rk_doc_duration_ms(const struct rk_doc *doc, const json_t *obj, const char *key,
		   int64_t dflt_ms, int64_t *out_ms, struct rk_error *err)
{
	const json_t *v = json_object_get(obj, key);

	if (v == NULL) {
		*out_ms = dflt_ms;
		return 0;
	}
	if (json_is_integer(v) && json_integer_value(v) >= 0 &&
	    json_integer_value(v) <= INT64_MAX / 1000) {
		*out_ms = (int64_t)json_integer_value(v) * 1000;
		return 0;
	}
	if (json_is_string(v) && rk_parse_duration_ms(json_string_value(v), out_ms) == 0)
		return 0;
	return rk_doc_error_key(err, doc, obj, key, RK_EINVAL,
				"'%s' must be a duration like 30d, 12h, 5m, 30s or 200ms", key);
}
