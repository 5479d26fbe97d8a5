/*
 * Policy files: parsing, validation and the set of known policies.
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rekey/doc.h"
#include "rekey/embedded.h"
#include "rekey/policy.h"
#include "rekey/util.h"

#define MAX_POLICIES 256

struct rk_policy_set {
	struct rk_policy *p[MAX_POLICIES];
	size_t n;
};

static const struct rk_field policy_fields[] = {
	{ "name", RK_T_STRING, RK_F_REQUIRED },
	{ "description", RK_T_STRING, 0 },
	{ "rotate_every", RK_T_DURATION, RK_F_REQUIRED },
	{ "grace", RK_T_DURATION, 0 },
	{ "window", RK_T_STRING, 0 },
	{ "generator", RK_T_OBJECT, 0 },
	{ "guards", RK_T_OBJECT, 0 },
	{ "verify", RK_T_OBJECT, 0 },
	{ "set", RK_T_OBJECT, 0 },
	{ "restart", RK_T_OBJECT, 0 },
	{ "max_attempts", RK_T_INT, 0 },
	{ NULL, 0, 0 },
};

static const struct rk_field guard_fields[] = {
	{ "min_length", RK_T_INT, 0 },
	{ "min_entropy_bits", RK_T_INT, 0 },
	{ "forbid", RK_T_STRLIST, 0 },
	{ "forbid_reuse_across_environments", RK_T_BOOL, 0 },
	{ NULL, 0, 0 },
};

static const struct rk_field hook_fields[] = {
	{ "exec", RK_T_STRLIST, RK_F_REQUIRED },
	{ "timeout", RK_T_DURATION, 0 },
	{ NULL, 0, 0 },
};

static const struct rk_field restart_fields[] = {
	{ "wait", RK_T_BOOL, 0 },
	{ "timeout", RK_T_DURATION, 0 },
	{ "on_failure", RK_T_STRING, 0 },
	{ NULL, 0, 0 },
};

void
rk_argv_free(char **argv)
{
	if (argv == NULL)
		return;
	for (char **a = argv; *a; a++)
		free(*a);
	free(argv);
}

void
rk_policy_free(struct rk_policy *p)
{
	if (p == NULL)
		return;
	free(p->name);
	free(p->source);
	rk_gen_free(p->gen);
	rk_argv_free(p->forbid);
	rk_argv_free(p->verify.argv);
	rk_argv_free(p->set.argv);
	free(p);
}

static int
strlist(char ***out, const json_t *arr, struct rk_error *err)
{
	size_t i, n = json_array_size(arr);
	char **v = calloc(n + 1, sizeof(*v));
	json_t *e;

	if (v == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	json_array_foreach(arr, i, e) {
		if ((v[i] = strdup(json_string_value(e))) == NULL) {
			rk_argv_free(v);
			return rk_error_set(err, RK_ENOMEM, "out of memory");
		}
	}
	*out = v;
	return 0;
}

static int
parse_hook(struct rk_hook *h, const struct rk_doc *doc, const json_t *obj, const char *what,
	   struct rk_error *err)
{
	const json_t *argv;
	int r;

	h->timeout_ms = RK_DEFAULT_HOOK_TIMEOUT_MS;
	if (obj == NULL)
		return 0;
	if ((r = rk_doc_check(doc, obj, hook_fields, what, err)) < 0)
		return r;
	argv = json_object_get(obj, "exec");
	if (json_array_size(argv) == 0 || json_string_length(json_array_get(argv, 0)) == 0)
		return rk_doc_error_key(err, doc, obj, "exec", RK_EINVAL,
					"%s.exec must be a non-empty argv list (no shell)", what);
	if ((r = rk_doc_duration_ms(doc, obj, "timeout", RK_DEFAULT_HOOK_TIMEOUT_MS,
				    &h->timeout_ms, err)) < 0)
		return r;
	if (h->timeout_ms < 1000)
		return rk_doc_error_key(err, doc, obj, "timeout", RK_EINVAL,
					"%s.timeout must be at least 1s", what);
	return strlist(&h->argv, argv, err);
}

/*
 * Shortest value a generator makes and the entropy it draws (bits), to check
 * a policy against its own guards. A template counts its inner password only.
 */
static void
gen_bounds(const struct rk_gen *g, size_t *len, double *bits)
{
	size_t alphabet = 0;

	switch (g->type) {
	case RK_GEN_PASSWORD:
		for (unsigned c = RK_CLASS_UPPER; c <= RK_CLASS_SYMBOL; c <<= 1)
			if (g->classes & c)
				alphabet += strlen(rk_gen_class_chars(c));
		*len = g->length;
		*bits = alphabet > 1 ? (double)g->length * log2((double)alphabet) : 0;
		return;
	case RK_GEN_BYTES:
		*bits = 8.0 * (double)g->length;
		*len = g->encoding == RK_ENC_HEX ? 2 * g->length
		       : g->encoding == RK_ENC_BASE64URL ? (4 * g->length + 2) / 3
							: 4 * ((g->length + 2) / 3);
		return;
	case RK_GEN_ED25519:
	case RK_GEN_X25519:
		*bits = 252;	/* a 32-byte seed or clamped scalar */
		*len = 100;	/* the PEM is longer still */
		return;
	case RK_GEN_TEMPLATE:
		gen_bounds(g->inner, len, bits);
		*len = strlen(g->tmpl);	/* placeholders are replaced by longer text */
		return;
	}
	*len = 0;
	*bits = 0;
}

static int
parse_doc(struct rk_policy **out, const struct rk_doc *doc, struct rk_error *err)
{
	const json_t *root = rk_doc_root(doc), *g, *v;
	const char *of;
	struct rk_policy *p;
	int64_t ms;
	int r;

	if ((r = rk_doc_check(doc, root, policy_fields, "policy", err)) < 0)
		return r;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	if ((p->name = strdup(rk_doc_str(root, "name", ""))) == NULL ||
	    (p->source = strdup(rk_doc_name(doc))) == NULL) {
		r = rk_error_set(err, RK_ENOMEM, "out of memory");
		goto out;
	}
	if (p->name[0] == '\0' || strlen(p->name) > 64 || strpbrk(p->name, " /\t") != NULL) {
		r = rk_doc_error_key(err, doc, root, "name", RK_EINVAL,
				     "policy name must be 1-64 characters without spaces or '/'");
		goto out;
	}
	if ((r = rk_doc_duration_ms(doc, root, "rotate_every", 0, &ms, err)) < 0)
		goto out;
	p->rotate_every = ms / 1000;
	/* Whole seconds: the schedule counts seconds (short ones are for tests and demos). */
	if (p->rotate_every < 1 || ms % 1000 != 0) {
		r = rk_doc_error_key(err, doc, root, "rotate_every", RK_EINVAL,
				     "rotate_every must be whole seconds, at least 1s");
		goto out;
	}
	if ((r = rk_doc_duration_ms(doc, root, "grace", 0, &ms, err)) < 0)
		goto out;
	p->grace = ms / 1000;
	if ((v = json_object_get(root, "window")) != NULL &&
	    rk_window_parse(&p->window, json_string_value(v), err) < 0) {
		char msg[sizeof(err->msg)];
		memcpy(msg, err->msg, sizeof(msg));
		rk_error_clear(err);
		r = rk_doc_error_key(err, doc, root, "window", RK_EINVAL, "window: %s", msg);
		goto out;
	}
	if ((g = json_object_get(root, "generator")) != NULL) {
		if ((r = rk_gen_parse(&p->gen, doc, g, err)) < 0)
			goto out;
	} else {
		struct rk_doc *d = NULL;
		static const char dflt[] = "{type: password, length: 32}";
		if ((r = rk_doc_load_string(&d, "(default generator)", dflt, strlen(dflt), err)) < 0)
			goto out;
		r = rk_gen_parse(&p->gen, d, rk_doc_root(d), err);
		rk_doc_free(d);
		if (r < 0)
			goto out;
	}
	p->min_length = 0;
	p->min_entropy_bits = 0;
	if ((g = json_object_get(root, "guards")) != NULL) {
		if ((r = rk_doc_check(doc, g, guard_fields, "guards", err)) < 0)
			goto out;
		if (rk_doc_int(g, "min_length", 0) < 0 || rk_doc_int(g, "min_length", 0) > 4096 ||
		    rk_doc_int(g, "min_entropy_bits", 0) < 0 ||
		    rk_doc_int(g, "min_entropy_bits", 0) > 1024) {
			r = rk_doc_error(err, doc, g, RK_EINVAL,
					 "guards: min_length must be 0-4096 and min_entropy_bits "
					 "0-1024");
			goto out;
		}
		p->min_length = (size_t)rk_doc_int(g, "min_length", 0);
		p->min_entropy_bits = (double)rk_doc_int(g, "min_entropy_bits", 0);
		p->forbid_reuse_across_environments =
			rk_doc_bool(g, "forbid_reuse_across_environments", 0);
		if ((v = json_object_get(g, "forbid")) != NULL && (r = strlist(&p->forbid, v, err)) < 0)
			goto out;
	}
	if ((r = parse_hook(&p->verify, doc, json_object_get(root, "verify"), "verify", err)) < 0 ||
	    (r = parse_hook(&p->set, doc, json_object_get(root, "set"), "set", err)) < 0)
		goto out;
	p->restart_wait = 1;
	p->restart_timeout_ms = 10 * 60 * 1000;
	if ((g = json_object_get(root, "restart")) != NULL) {
		if ((r = rk_doc_check(doc, g, restart_fields, "restart", err)) < 0 ||
		    (r = rk_doc_duration_ms(doc, g, "timeout", p->restart_timeout_ms,
					    &p->restart_timeout_ms, err)) < 0)
			goto out;
		p->restart_wait = rk_doc_bool(g, "wait", 1);
		of = rk_doc_str(g, "on_failure", "keep");
		if (strcmp(of, "keep") != 0 && strcmp(of, "rollback") != 0) {
			r = rk_doc_error_key(err, doc, g, "on_failure", RK_EINVAL,
					     "restart.on_failure must be keep or rollback, not '%s'",
					     of);
			goto out;
		}
		p->restart_rollback = strcmp(of, "rollback") == 0;
	}
	if (rk_doc_int(root, "max_attempts", RK_DEFAULT_MAX_ATTEMPTS) < 1 ||
	    rk_doc_int(root, "max_attempts", RK_DEFAULT_MAX_ATTEMPTS) > 100) {
		r = rk_doc_error_key(err, doc, root, "max_attempts", RK_EINVAL,
				     "max_attempts must be between 1 and 100");
		goto out;
	}
	p->max_attempts = (int)rk_doc_int(root, "max_attempts", RK_DEFAULT_MAX_ATTEMPTS);
	/* A generator whose values its own guards would refuse is a policy bug: say so now. */
	{
		size_t len;
		double bits;
		gen_bounds(p->gen, &len, &bits);
		if (len < p->min_length || bits < p->min_entropy_bits) {
			r = rk_doc_error_key(err, doc, root, "generator", RK_EINVAL,
					     "the generator makes values of %zu characters and about "
					     "%.0f bits, but the guards ask for at least %zu characters "
					     "and %.0f bits", len, bits, p->min_length,
					     p->min_entropy_bits);
			goto out;
		}
	}
	*out = p;
	p = NULL;
	r = 0;
out:
	rk_policy_free(p);
	return r;
}

int
rk_policy_parse(struct rk_policy **out, const char *name, const char *text, size_t len,
		struct rk_error *err)
{
	struct rk_doc *doc = NULL;
	int r;

	if ((r = rk_doc_load_string(&doc, name, text, len, err)) < 0)
		return r;
	r = parse_doc(out, doc, err);
	rk_doc_free(doc);
	return r;
}

static int
add(struct rk_policy_set *s, struct rk_policy *p, int builtin, struct rk_error *err)
{
	for (size_t i = 0; i < s->n; i++) {
		if (strcmp(s->p[i]->name, p->name) != 0)
			continue;
		if (!builtin && strstr(s->p[i]->source, "(built-in)") == NULL) {
			int r = rk_error_set(err, RK_EINVAL,
					     "%s: policy '%s' is already defined in %s", p->source,
					     p->name, s->p[i]->source);
			rk_policy_free(p);
			return r;
		}
		/* A file in policy_dir overrides the built-in of the same name. */
		rk_policy_free(s->p[i]);
		s->p[i] = p;
		return 0;
	}
	if (s->n == MAX_POLICIES) {
		rk_policy_free(p);
		return rk_error_set(err, RK_EINVAL, "more than %d policies", MAX_POLICIES);
	}
	s->p[s->n++] = p;
	return 0;
}

static int
has_suffix(const char *s, const char *suf)
{
	size_t a = strlen(s), b = strlen(suf);

	return a > b && strcmp(s + a - b, suf) == 0;
}

static int
cmpstr(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
load_dir(struct rk_policy_set *s, const char *dir, struct rk_error *err)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char *names[MAX_POLICIES];
	size_t n = 0;
	int r = 0;

	if (d == NULL)
		return rk_error_set(err, RK_EINVAL, "policy_dir %s cannot be read", dir);
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.' || !(has_suffix(e->d_name, ".yaml") ||
					     has_suffix(e->d_name, ".yml") ||
					     has_suffix(e->d_name, ".json")))
			continue;
		if (n == MAX_POLICIES || (names[n] = rk_path_join(dir, e->d_name)) == NULL) {
			r = rk_error_set(err, RK_EINVAL, "too many policy files in %s", dir);
			break;
		}
		n++;
	}
	closedir(d);
	/* Sorted, so "already defined in" errors name the same file every time. */
	qsort(names, n, sizeof(names[0]), cmpstr);
	for (size_t i = 0; i < n; i++) {
		struct rk_doc *doc = NULL;
		struct rk_policy *p = NULL;
		if (r == 0 && (r = rk_doc_load_file(&doc, names[i], err)) == 0 &&
		    (r = parse_doc(&p, doc, err)) == 0)
			r = add(s, p, 0, err);
		rk_doc_free(doc);
		free(names[i]);
	}
	return r;
}

int
rk_policy_set_load(struct rk_policy_set **out, const char *dir, struct rk_error *err)
{
	struct rk_policy_set *s = calloc(1, sizeof(*s));
	int r = 0;

	if (s == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	for (const struct rk_embedded_file *f = rk_embedded_files; f->path && r == 0; f++) {
		char name[128];
		struct rk_policy *p = NULL;
		if (!has_suffix(f->path, ".yaml"))
			continue;
		snprintf(name, sizeof(name), "%s (built-in)", f->path);
		if ((r = rk_policy_parse(&p, name, f->data, f->len, err)) == 0)
			r = add(s, p, 1, err);
	}
	if (r == 0 && dir != NULL)
		r = load_dir(s, dir, err);
	if (r < 0) {
		rk_policy_set_free(s);
		return r;
	}
	*out = s;
	return 0;
}

const struct rk_policy *
rk_policy_find(const struct rk_policy_set *s, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->p[i]->name, name) == 0)
			return s->p[i];
	return NULL;
}

size_t
rk_policy_count(const struct rk_policy_set *s)
{
	return s->n;
}

const struct rk_policy *
rk_policy_at(const struct rk_policy_set *s, size_t i)
{
	return i < s->n ? s->p[i] : NULL;
}

void
rk_policy_set_free(struct rk_policy_set *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n; i++)
		rk_policy_free(s->p[i]);
	free(s);
}
