/*
 * Guard rules on plain settings: parsed once, regexes compiled at load time
 * so a bad pattern is a configuration error (exit 2) naming file:line.
 */
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rekey/doc.h"
#include "rekey/rules.h"

#define MAX_RULES 1000

enum kind { K_EQUALS, K_NOT_EQUALS, K_MATCHES, K_NOT_MATCHES, K_ONE_OF, K_REQUIRED };
static const char *const kind_names[] = { "equals", "not_equals", "matches", "not_matches",
					  "one_of", "required" };

struct when {
	char *setting;
	char **values;		/* NULL-terminated */
};

struct rule {
	char *setting;
	enum kind kind;
	char *arg;		/* equals / not_equals / regex text */
	char **list;		/* one_of */
	regex_t re;
	int have_re;
	struct when *when;
	size_t nwhen;
	char *message;
	char where[300];
};

struct rk_rules {
	struct rule *r;
	size_t n;
};

static const struct rk_field top_fields[] = {
	{ "rules", RK_T_ARRAY, RK_F_REQUIRED },
	{ NULL, 0, 0 },
};

static const struct rk_field rule_fields[] = {
	{ "setting", RK_T_STRING, RK_F_REQUIRED },
	{ "equals", RK_T_ANY, 0 },
	{ "not_equals", RK_T_ANY, 0 },
	{ "matches", RK_T_STRING, 0 },
	{ "not_matches", RK_T_STRING, 0 },
	{ "one_of", RK_T_ARRAY, 0 },
	{ "required", RK_T_BOOL, 0 },
	{ "when", RK_T_OBJECT, 0 },
	{ "message", RK_T_STRING, 0 },
	{ NULL, 0, 0 },
};

static void
strv_free(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}

void
rk_rules_free(struct rk_rules *rs)
{
	if (rs == NULL)
		return;
	for (size_t i = 0; i < rs->n; i++) {
		struct rule *r = &rs->r[i];
		free(r->setting);
		free(r->arg);
		strv_free(r->list);
		if (r->have_re)
			regfree(&r->re);
		for (size_t k = 0; k < r->nwhen; k++) {
			free(r->when[k].setting);
			strv_free(r->when[k].values);
		}
		free(r->when);
		free(r->message);
	}
	free(rs->r);
	free(rs);
}

size_t
rk_rules_count(const struct rk_rules *rs)
{
	return rs->n;
}

/* A scalar as text: YAML `equals: false` or `equals: 3` means the strings "false", "3". */
static char *
scalar_text(const json_t *v)
{
	char buf[64];

	if (json_is_string(v))
		return strdup(json_string_value(v));
	if (json_is_true(v))
		return strdup("true");
	if (json_is_false(v))
		return strdup("false");
	if (json_is_integer(v)) {
		snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
		return strdup(buf);
	}
	return NULL;
}

static int
text_list(char ***out, const struct rk_doc *doc, const json_t *obj, const char *key,
	  const json_t *v, struct rk_error *err)
{
	size_t n = json_is_array(v) ? json_array_size(v) : 1, i;
	char **list = calloc(n + 1, sizeof(*list));

	if (list == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	for (i = 0; i < n; i++) {
		const json_t *e = json_is_array(v) ? json_array_get(v, i) : v;
		if ((list[i] = scalar_text(e)) == NULL) {
			strv_free(list);
			return rk_doc_error_key(err, doc, obj, key, RK_EINVAL,
						"'%s' must be a string or a list of strings", key);
		}
	}
	*out = list;
	return 0;
}

static int
parse_rule(struct rule *r, const struct rk_doc *doc, const json_t *e, struct rk_error *err)
{
	const json_t *w;
	int nkinds = 0, line, col, rc;

	if ((rc = rk_doc_check(doc, e, rule_fields, "rule", err)) < 0)
		return rc;
	rk_doc_where(doc, e, &line, &col);
	snprintf(r->where, sizeof(r->where), "%s:%d", rk_doc_name(doc), line);
	if ((r->setting = strdup(rk_doc_str(e, "setting", ""))) == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	if (r->setting[0] == '\0')
		return rk_doc_error_key(err, doc, e, "setting", RK_EINVAL, "setting must not be empty");
	for (int k = 0; k <= K_REQUIRED; k++) {
		const json_t *v = json_object_get(e, kind_names[k]);
		if (v == NULL)
			continue;
		nkinds++;
		r->kind = (enum kind)k;
		switch (k) {
		case K_EQUALS:
		case K_NOT_EQUALS:
			if ((r->arg = scalar_text(v)) == NULL)
				return rk_doc_error_key(err, doc, e, kind_names[k], RK_EINVAL,
							"'%s' must be a string", kind_names[k]);
			break;
		case K_MATCHES:
		case K_NOT_MATCHES: {
			char msg[200];
			int ec;
			r->arg = strdup(json_string_value(v));
			if (r->arg == NULL)
				return rk_error_set(err, RK_ENOMEM, "out of memory");
			if ((ec = regcomp(&r->re, r->arg, REG_EXTENDED | REG_NOSUB)) != 0) {
				regerror(ec, &r->re, msg, sizeof(msg));
				return rk_doc_error_key(err, doc, e, kind_names[k], RK_EINVAL,
							"bad regular expression: %s", msg);
			}
			r->have_re = 1;
			break;
		}
		case K_ONE_OF:
			if ((rc = text_list(&r->list, doc, e, "one_of", v, err)) < 0)
				return rc;
			if (r->list[0] == NULL)
				return rk_doc_error_key(err, doc, e, "one_of", RK_EINVAL,
							"one_of must list at least one value");
			break;
		case K_REQUIRED:
			if (!json_is_true(v))
				return rk_doc_error_key(err, doc, e, "required", RK_EINVAL,
							"required can only be true (omit the rule "
							"otherwise)");
			break;
		}
	}
	if (nkinds != 1)
		return rk_doc_error(err, doc, e, RK_EINVAL,
				    "a rule needs exactly one of equals, not_equals, matches, "
				    "not_matches, one_of, required (found %d)", nkinds);
	if (json_object_get(e, "message") &&
	    (r->message = strdup(rk_doc_str(e, "message", ""))) == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	if ((w = json_object_get(e, "when")) != NULL) {
		const char *key;
		json_t *v;
		if ((r->when = calloc(json_object_size(w) + 1, sizeof(*r->when))) == NULL)
			return rk_error_set(err, RK_ENOMEM, "out of memory");
		json_object_foreach((json_t *)w, key, v) {
			struct when *wh = &r->when[r->nwhen++];
			if ((wh->setting = strdup(key)) == NULL)
				return rk_error_set(err, RK_ENOMEM, "out of memory");
			if ((rc = text_list(&wh->values, doc, w, key, v, err)) < 0)
				return rc;
		}
	}
	return 0;
}

int
rk_rules_load(struct rk_rules **out, const char *path, struct rk_error *err)
{
	struct rk_doc *doc = NULL;
	struct rk_rules *rs = NULL;
	const json_t *list, *e;
	size_t i;
	int r;

	if ((r = rk_doc_load_file(&doc, path, err)) < 0)
		goto out;
	if ((r = rk_doc_check(doc, rk_doc_root(doc), top_fields, "rules file", err)) < 0)
		goto out;
	list = json_object_get(rk_doc_root(doc), "rules");
	if (json_array_size(list) > MAX_RULES) {
		r = rk_error_set(err, RK_EINVAL, "%s: more than %d rules", path, MAX_RULES);
		goto out;
	}
	if ((rs = calloc(1, sizeof(*rs))) == NULL ||
	    (rs->r = calloc(json_array_size(list) + 1, sizeof(*rs->r))) == NULL) {
		r = rk_error_set(err, RK_ENOMEM, "out of memory");
		goto out;
	}
	json_array_foreach(list, i, e) {
		rs->n++;
		if ((r = parse_rule(&rs->r[i], doc, e, err)) < 0)
			goto out;
	}
	*out = rs;
	rs = NULL;
	r = 0;
out:
	rk_rules_free(rs);
	rk_doc_free(doc);
	return r;
}

static int
in_list(const char *v, char **list)
{
	for (char **p = list; p && *p; p++)
		if (strcmp(v, *p) == 0)
			return 1;
	return 0;
}

static void
join(char *out, size_t n, char **list)
{
	size_t used = 0;

	out[0] = '\0';
	for (char **p = list; p && *p && used < n; p++)
		used += (size_t)snprintf(out + used, n - used, "%s'%s'", used ? ", " : "", *p);
}

void
rk_rules_eval(const struct rk_rules *rs, size_t i, struct rk_rule_result *res)
{
	const struct rule *r = &rs->r[i];
	const char *v = getenv(r->setting);
	char cond[300] = "", list[300];
	int ok = 1;

	memset(res, 0, sizeof(*res));
	snprintf(res->setting, sizeof(res->setting), "%s", r->setting);
	snprintf(res->rule, sizeof(res->rule), "%s", kind_names[r->kind]);
	snprintf(res->where, sizeof(res->where), "%s", r->where);
	for (size_t k = 0; k < r->nwhen; k++) {
		const char *wv = getenv(r->when[k].setting);
		size_t used = strlen(cond);
		if (wv == NULL || !in_list(wv, r->when[k].values)) {
			res->ok = -1;
			return;
		}
		join(list, sizeof(list), r->when[k].values);
		snprintf(cond + used, sizeof(cond) - used, "%s%s is %s", used ? " and " : " when ",
			 r->when[k].setting, list);
	}
	switch (r->kind) {
	case K_EQUALS:
		ok = v != NULL && strcmp(v, r->arg) == 0;
		snprintf(res->reason, sizeof(res->reason), "must be '%s'%s", r->arg, cond);
		break;
	case K_NOT_EQUALS:
		ok = v == NULL || strcmp(v, r->arg) != 0;
		snprintf(res->reason, sizeof(res->reason), "must not be '%s'%s", r->arg, cond);
		break;
	case K_MATCHES:
		ok = v != NULL && regexec(&r->re, v, 0, NULL, 0) == 0;
		snprintf(res->reason, sizeof(res->reason), "must match /%s/%s", r->arg, cond);
		break;
	case K_NOT_MATCHES:
		ok = v == NULL || regexec(&r->re, v, 0, NULL, 0) != 0;
		snprintf(res->reason, sizeof(res->reason), "must not match /%s/%s", r->arg, cond);
		break;
	case K_ONE_OF:
		ok = v != NULL && in_list(v, r->list);
		join(list, sizeof(list), r->list);
		snprintf(res->reason, sizeof(res->reason), "must be one of %s%s", list, cond);
		break;
	case K_REQUIRED:
		ok = v != NULL && v[0] != '\0';
		snprintf(res->reason, sizeof(res->reason), "must be set and non-empty%s", cond);
		break;
	}
	if (!ok && v == NULL && r->kind != K_REQUIRED)
		strncat(res->reason, " (it is not set)", sizeof(res->reason) - strlen(res->reason) - 1);
	if (!ok && r->message) {
		size_t used = strlen(res->reason);
		snprintf(res->reason + used, sizeof(res->reason) - used, ": %s", r->message);
	}
	res->ok = ok;
}
