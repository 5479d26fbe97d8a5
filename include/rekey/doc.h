/*
 * YAML/JSON documents with positions, and schema checks on them.
 *
 * Files the user writes (rekey.yaml, inventory, policies, guard rules) are
 * parsed with libyaml into jansson values; every value keeps the line and
 * column where it was written, so validation errors name file:line:column.
 * JSON is accepted because it is a subset of YAML.
 */
#ifndef REKEY_DOC_H
#define REKEY_DOC_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "rekey/error.h"

#define RK_MAX_DOC_BYTES (4u << 20)	/* a user file larger than this is refused */

struct rk_doc;

/* Parses a file; errors name file:line:column. */
int rk_doc_load_file(struct rk_doc **out, const char *path, struct rk_error *err) RK_WARN_UNUSED;
/* Parses text; name is used in messages (e.g. "policy/default.yaml (built-in)"). */
int rk_doc_load_string(struct rk_doc **out, const char *name, const char *text,
		       size_t len, struct rk_error *err) RK_WARN_UNUSED;
/* Borrowed root value; an empty document gives an empty object. */
json_t *rk_doc_root(const struct rk_doc *doc);
const char *rk_doc_name(const struct rk_doc *doc);
/* Position of a value of this document (1-based); 0/0 when unknown. */
void rk_doc_where(const struct rk_doc *doc, const json_t *v, int *line, int *col);
/* Position of obj[key]'s value (works for true/false/null, which jansson shares). */
void rk_doc_where_key(const struct rk_doc *doc, const json_t *obj, const char *key,
		      int *line, int *col);
/* Like rk_doc_error, about the value of obj[key] (or obj itself when key is absent). */
int rk_doc_error_key(struct rk_error *err, const struct rk_doc *doc, const json_t *obj,
		     const char *key, int code, const char *fmt, ...) RK_PRINTF(6, 7);
/* Sets err to "file:line:column: <message>" about value `at` and returns code. */
int rk_doc_error(struct rk_error *err, const struct rk_doc *doc, const json_t *at,
		 int code, const char *fmt, ...) RK_PRINTF(5, 6);
void rk_doc_free(struct rk_doc *doc);

/* Schema of one mapping. */
enum rk_type {
	RK_T_STRING = 1,
	RK_T_INT,	/* integer */
	RK_T_BOOL,
	RK_T_OBJECT,
	RK_T_ARRAY,
	RK_T_STRLIST,	/* array of strings */
	RK_T_DURATION,	/* string like 30d, 12h, 200ms (or an integer of seconds) */
	RK_T_ANY,
};
#define RK_F_REQUIRED 0x1u
#define RK_F_SENSITIVE 0x2u	/* never echoed in messages */
#define RK_F_UNSUPPORTED 0x4u	/* designed but not implemented yet: refused with "not
				 * supported by this version", never listed as known */

struct rk_field {
	const char *key;
	enum rk_type type;
	unsigned flags;
};

/*
 * Checks that `obj` is a mapping whose keys are all in `fields` (terminated by
 * a {NULL} entry), with the right types, and that required keys are present.
 * `what` names the mapping in messages ("provider 'vault'").
 */
int rk_doc_check(const struct rk_doc *doc, const json_t *obj, const struct rk_field *fields,
		 const char *what, struct rk_error *err) RK_WARN_UNUSED;

/* Typed getters for checked mappings; defaults when absent. */
const char *rk_doc_str(const json_t *obj, const char *key, const char *dflt);
int64_t rk_doc_int(const json_t *obj, const char *key, int64_t dflt);
int rk_doc_bool(const json_t *obj, const char *key, int dflt);
/* Reads a duration field into milliseconds; errors name the position. */
int rk_doc_duration_ms(const struct rk_doc *doc, const json_t *obj, const char *key,
		       int64_t dflt_ms, int64_t *out_ms, struct rk_error *err) RK_WARN_UNUSED;

#endif
