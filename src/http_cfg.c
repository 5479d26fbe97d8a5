/*
 * The connection settings of a remote provider (rk_http_cfg): defaults
 * chosen by the provider, overridden from its mapping in rekey.yaml, checked
 * table-driven (sections, numbers with ranges, paths) with errors at
 * file:line:column. Nothing here talks HTTP.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "rekey/doc.h"
#include "rekey/http_cfg.h"
#include "rekey/secret.h"
#include "rekey/util.h"

static const struct rk_field timeout_fields[] = {
	{ "connect", RK_T_DURATION, 0 },
	{ "total", RK_T_DURATION, 0 },
	{ NULL, 0, 0 },
};

static const struct rk_field retry_fields[] = {
	{ "max_attempts", RK_T_INT, 0 },
	{ "base_delay", RK_T_DURATION, 0 },
	{ "max_delay", RK_T_DURATION, 0 },
	{ NULL, 0, 0 },
};

static const struct rk_field breaker_fields[] = {
	{ "failures", RK_T_INT, 0 },
	{ "cooldown", RK_T_DURATION, 0 },
	{ NULL, 0, 0 },
};

/* rps is a number, integer or not; checked below. */
static const struct rk_field rate_fields[] = {
	{ "rps", RK_T_ANY, 0 },
	{ "burst", RK_T_INT, 0 },
	{ NULL, 0, 0 },
};

static const struct {
	const char *key;
	const struct rk_field *fields;
} sections[] = {
	{ "timeout", timeout_fields },
	{ "retry", retry_fields },
	{ "circuit_breaker", breaker_fields },
	{ "rate_limit", rate_fields },
};

#define MS_MIN (60 * 1000LL)

enum num_kind { K_DUR, K_INT, K_SIZE };

/* Numeric settings: where they are, where they go, what is allowed. */
static const struct {
	const char *section;	/* NULL: top level of the provider mapping */
	const char *key;
	enum num_kind kind;
	size_t off;
	int64_t min, max;
	const char *range;	/* as the user writes it, for messages */
} numbers[] = {
	{ "timeout", "connect", K_DUR, offsetof(struct rk_http_cfg, connect_timeout_ms),
	  1, 10 * MS_MIN, "1ms and 10m" },
	{ "timeout", "total", K_DUR, offsetof(struct rk_http_cfg, total_timeout_ms),
	  1, 10 * MS_MIN, "1ms and 10m" },
	{ "retry", "max_attempts", K_INT, offsetof(struct rk_http_cfg, max_attempts),
	  1, 20, "1 and 20" },
	{ "retry", "base_delay", K_DUR, offsetof(struct rk_http_cfg, base_delay_ms),
	  1, 10 * MS_MIN, "1ms and 10m" },
	{ "retry", "max_delay", K_DUR, offsetof(struct rk_http_cfg, max_delay_ms),
	  1, 10 * MS_MIN, "1ms and 10m" },
	{ "circuit_breaker", "failures", K_INT, offsetof(struct rk_http_cfg, cb_failures),
	  1, 1000, "1 and 1000" },
	{ "circuit_breaker", "cooldown", K_DUR, offsetof(struct rk_http_cfg, cb_cooldown_ms),
	  1, 60 * MS_MIN, "1ms and 1h" },
	{ "rate_limit", "burst", K_INT, offsetof(struct rk_http_cfg, burst),
	  1, 100000, "1 and 100000" },
	{ NULL, "concurrency", K_INT, offsetof(struct rk_http_cfg, concurrency),
	  1, 1024, "1 and 1024" },
	{ NULL, "max_response", K_SIZE, offsetof(struct rk_http_cfg, max_response),
	  1024, 64LL << 20, "1024 (1 KiB) and 67108864 (64 MiB)" },
};

#define RPS_MAX 1e6

static const struct {
	const char *key;
	size_t off;
} strings[] = {
	{ "ca_file", offsetof(struct rk_http_cfg, ca_file) },
	{ "ca_path", offsetof(struct rk_http_cfg, ca_path) },
	{ "client_cert_file", offsetof(struct rk_http_cfg, client_cert_file) },
	{ "client_key_file", offsetof(struct rk_http_cfg, client_key_file) },
};

/* Strings a provider fills (never from rekey.yaml): PEM text, public. */
static const size_t mem_strings[] = {
	offsetof(struct rk_http_cfg, ca_pem),
	offsetof(struct rk_http_cfg, client_cert_pem),
};

static char **
str_at(struct rk_http_cfg *c, size_t off)
{
	return (char **)(void *)((char *)c + off);
}

static int
dup_at(struct rk_http_cfg *dst, const struct rk_http_cfg *src, size_t off)
{
	const char *s = *str_at((struct rk_http_cfg *)src, off);

	if (s != NULL && (*str_at(dst, off) = strdup(s)) == NULL)
		return RK_ENOMEM;
	return 0;
}

int
rk_http_cfg_copy(struct rk_http_cfg *dst, const struct rk_http_cfg *src)
{
	*dst = *src;
	for (size_t i = 0; i < RK_ARRAY_SIZE(strings); i++)
		*str_at(dst, strings[i].off) = NULL;
	for (size_t i = 0; i < RK_ARRAY_SIZE(mem_strings); i++)
		*str_at(dst, mem_strings[i]) = NULL;
	dst->client_key_pem = NULL;
	for (size_t i = 0; i < RK_ARRAY_SIZE(strings); i++)
		if (dup_at(dst, src, strings[i].off) < 0)
			goto nomem;
	for (size_t i = 0; i < RK_ARRAY_SIZE(mem_strings); i++)
		if (dup_at(dst, src, mem_strings[i]) < 0)
			goto nomem;
	if (src->client_key_pem != NULL &&
	    rk_secret_from(&dst->client_key_pem, rk_secret_cdata(src->client_key_pem),
			   rk_secret_len(src->client_key_pem), NULL) < 0)
		goto nomem;
	return 0;
 nomem:
	rk_http_cfg_free(dst);
	return RK_ENOMEM;
}

void
rk_http_cfg_free(struct rk_http_cfg *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < RK_ARRAY_SIZE(strings); i++) {
		char **s = str_at(c, strings[i].off);
		free(*s);
		*s = NULL;
	}
	for (size_t i = 0; i < RK_ARRAY_SIZE(mem_strings); i++) {
		char **s = str_at(c, mem_strings[i]);
		free(*s);
		*s = NULL;
	}
	rk_secret_free(c->client_key_pem);	/* wipes */
	c->client_key_pem = NULL;
}

static int
parse_number(struct rk_http_cfg *c, const struct rk_doc *doc, const json_t *obj, size_t i,
	     struct rk_error *err)
{
	char name[64];
	char *field = (char *)c + numbers[i].off;
	int64_t v;

	if (numbers[i].section)
		snprintf(name, sizeof(name), "%s.%s", numbers[i].section, numbers[i].key);
	else
		snprintf(name, sizeof(name), "%s", numbers[i].key);
	if (numbers[i].kind == K_DUR) {
		int64_t cur;
		memcpy(&cur, field, sizeof(cur));
		if (rk_doc_duration_ms(doc, obj, numbers[i].key, cur, &v, err) < 0)
			return RK_EINVAL;
	} else {
		const json_t *j = json_object_get(obj, numbers[i].key);
		if (!json_is_integer(j))
			return rk_doc_error_key(err, doc, obj, numbers[i].key, RK_EINVAL,
						"'%s' must be an integer", name);
		v = (int64_t)json_integer_value(j);
	}
	if (v < numbers[i].min || v > numbers[i].max)
		return rk_doc_error_key(err, doc, obj, numbers[i].key, RK_EINVAL,
					"'%s' must be between %s", name, numbers[i].range);
	switch (numbers[i].kind) {
	case K_DUR:
		memcpy(field, &v, sizeof(v));
		break;
	case K_INT: {
		int iv = (int)v;
		memcpy(field, &iv, sizeof(iv));
		break;
	}
	case K_SIZE: {
		size_t sv = (size_t)v;
		memcpy(field, &sv, sizeof(sv));
		break;
	}
	}
	return 0;
}

/*
 * rps is an integer or a decimal. The document loader keeps plain scalars
 * like 0.5 as strings (it has no floats), so a decimal string is read here,
 * by hand: strtod would follow the locale's decimal separator.
 */
static int
parse_rps(const json_t *v, double *out)
{
	const char *s;
	double num = 0, scale = 1;
	int digits = 0;

	if (json_is_number(v)) {
		*out = json_number_value(v);
		return isfinite(*out) ? 0 : RK_EINVAL;
	}
	if (!json_is_string(v))
		return RK_EINVAL;
	for (s = json_string_value(v); *s >= '0' && *s <= '9' && digits < 16; s++, digits++)
		num = num * 10 + (*s - '0');
	if (digits == 0)
		return RK_EINVAL;
	if (*s == '.') {
		int frac = 0;
		for (s++; *s >= '0' && *s <= '9' && frac < 9; s++, frac++) {
			scale /= 10;
			num += (*s - '0') * scale;
		}
		if (frac == 0)
			return RK_EINVAL;
	}
	if (*s != '\0')
		return RK_EINVAL;
	*out = num;
	return 0;
}

int
rk_http_cfg_parse(struct rk_http_cfg *c, const struct rk_doc *doc, const json_t *provider_cfg,
		  const struct rk_http_cfg *defaults, struct rk_error *err)
{
	struct rk_http_cfg t;
	const json_t *v;
	int r;

	if ((r = rk_http_cfg_copy(&t, defaults)) < 0)
		return rk_error_set(err, r, "out of memory");
	if (!json_is_object(provider_cfg)) {
		r = rk_doc_error(err, doc, provider_cfg, RK_EINVAL, "a provider must be a mapping");
		goto out;
	}
	for (size_t i = 0; i < RK_ARRAY_SIZE(sections); i++) {
		char what[40];
		if ((v = json_object_get(provider_cfg, sections[i].key)) == NULL)
			continue;
		snprintf(what, sizeof(what), "'%s'", sections[i].key);
		if ((r = rk_doc_check(doc, v, sections[i].fields, what, err)) < 0)
			goto out;
	}
	for (size_t i = 0; i < RK_ARRAY_SIZE(numbers); i++) {
		const json_t *obj = provider_cfg;
		if (numbers[i].section != NULL)
			obj = json_object_get(provider_cfg, numbers[i].section);
		if (obj == NULL || json_object_get(obj, numbers[i].key) == NULL)
			continue;
		if ((r = parse_number(&t, doc, obj, i, err)) < 0)
			goto out;
	}
	v = json_object_get(provider_cfg, "rate_limit");
	if (v != NULL && json_object_get(v, "rps") != NULL) {
		double d;
		if (parse_rps(json_object_get(v, "rps"), &d) < 0 || d <= 0 || d > RPS_MAX) {
			r = rk_doc_error_key(err, doc, v, "rps", RK_EINVAL,
					     "'rate_limit.rps' must be a number above 0 and at most "
					     "1000000");
			goto out;
		}
		t.rps = d;
	}
	for (size_t i = 0; i < RK_ARRAY_SIZE(strings); i++) {
		char **dst = str_at(&t, strings[i].off);
		char *copy;
		if ((v = json_object_get(provider_cfg, strings[i].key)) == NULL)
			continue;
		if (!json_is_string(v) || json_string_length(v) == 0 ||
		    strlen(json_string_value(v)) != json_string_length(v)) {
			r = rk_doc_error_key(err, doc, provider_cfg, strings[i].key, RK_EINVAL,
					     "'%s' must be a non-empty path", strings[i].key);
			goto out;
		}
		if ((copy = strdup(json_string_value(v))) == NULL) {
			r = rk_error_set(err, RK_ENOMEM, "out of memory");
			goto out;
		}
		free(*dst);
		*dst = copy;
	}
	if ((v = json_object_get(provider_cfg, "insecure_http")) != NULL) {
		if (!json_is_boolean(v)) {
			r = rk_doc_error_key(err, doc, provider_cfg, "insecure_http", RK_EINVAL,
					     "'insecure_http' must be true or false");
			goto out;
		}
		t.insecure_http = json_is_true(v);
	}
	*c = t;
	memset(&t, 0, sizeof(t));	/* the strings are the caller's now */
	r = 0;
 out:
	rk_http_cfg_free(&t);
	return r;
}

