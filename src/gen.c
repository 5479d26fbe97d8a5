/*
 * Value generators: the only place new secret values are made.
 *
 * A policy's `generator:` mapping is parsed once into a struct rk_gen; the
 * rotation engine calls rk_gen_generate() for each new version. Every value is
 * drawn from libsodium's CSPRNG and written straight into a struct rk_secret
 * (sodium_malloc'd); intermediate key material (raw bytes before encoding, key
 * pairs, DER) also lives in sodium_malloc'd memory, which sodium_free wipes.
 * Nothing here logs, and no error message contains a value.
 *
 * Invariants of a parsed spec: lengths are in [1, RK_GEN_MAX_LENGTH], a
 * password is at least as long as its number of classes, a template contains
 * {{password}} and its inner generator is never itself a template.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "rekey/doc.h"
#include "rekey/gen.h"
#include "rekey/util.h"

#define PLACEHOLDER "{{password}}"
#define PLACEHOLDER_LEN (sizeof(PLACEHOLDER) - 1)

/*
 * A template value is a connection string or a config line, not a file: a
 * cap keeps a 4 MiB template full of placeholders from asking for gigabytes
 * of locked memory.
 */
#define MAX_TEMPLATE_OUTPUT (64u * 1024u)

#define PASSWORD_DEFAULT_LENGTH 32
#define TEMPLATE_PASSWORD_DEFAULT_LENGTH 24
#define BYTES_DEFAULT_LENGTH 32
#define ALL_CLASSES (RK_CLASS_UPPER | RK_CLASS_LOWER | RK_CLASS_DIGIT | RK_CLASS_SYMBOL)

/*
 * Symbols: a generated password is pasted into URLs (the template example is
 * postgres://app:{{password}}@db/app), shell commands, .env files and
 * key=value connection strings, and must work there without escaping.
 *   - '-' '.' '_' '~' are RFC 3986 "unreserved": literal in every URL part.
 *   - '!' ',' '=' are "sub-delims", allowed unencoded in a URL's userinfo
 *     (Go's net/url, libpq and curl accept them) and not special to a shell
 *     inside quotes (only '!' in an interactive bash's double quotes).
 * Left out on purpose: '@' ':' '/' '?' '#' '[' ']' (URL delimiters: libpq
 * splits user:password@host at the first '@'; ':' is also .pgpass's field
 * separator), '%' (percent-decoding), '+' (decoded to a space by form and
 * some JDBC decoders), '^' '{' '}' '|' '<' '>' (rejected by strict URL
 * parsers), '$' '`' '\\' '"' '\'' '(' ')' '*' '&' ';' and space (shell
 * expansion, quoting, globbing and separators; ';' also ends an ODBC value).
 * Seven symbols cost little entropy: they are one class among four.
 */
static const struct cls {
	unsigned bit;
	const char *name;
	const char *chars;
} classes[] = {
	{ RK_CLASS_UPPER, "upper", "ABCDEFGHIJKLMNOPQRSTUVWXYZ" },
	{ RK_CLASS_LOWER, "lower", "abcdefghijklmnopqrstuvwxyz" },
	{ RK_CLASS_DIGIT, "digit", "0123456789" },
	{ RK_CLASS_SYMBOL, "symbol", "!,-.=_~" },
};

static const struct enc {
	enum rk_encoding enc;
	const char *name;
	int variant;	/* sodium_base64_VARIANT_*, unused for hex */
} encodings[] = {
	{ RK_ENC_BASE64, "base64", sodium_base64_VARIANT_ORIGINAL },
	/* Unpadded, as in JWTs (RFC 7515): '=' would need escaping in a query string. */
	{ RK_ENC_BASE64URL, "base64url", sodium_base64_VARIANT_URLSAFE_NO_PADDING },
	{ RK_ENC_HEX, "hex", 0 },
};

static const struct rk_field password_fields[] = {
	{ "type", RK_T_STRING, 0 },
	{ "length", RK_T_INT, 0 },
	{ "classes", RK_T_STRLIST, 0 },
	{ NULL, 0, 0 },
};

static const struct rk_field bytes_fields[] = {
	{ "type", RK_T_STRING, 0 },
	{ "length", RK_T_INT, 0 },
	{ "encoding", RK_T_STRING, 0 },
	{ NULL, 0, 0 },
};

static const struct rk_field keypair_fields[] = {
	{ "type", RK_T_STRING, 0 },
	{ NULL, 0, 0 },
};

static const struct rk_field template_fields[] = {
	{ "type", RK_T_STRING, 0 },
	{ "template", RK_T_STRING, RK_F_REQUIRED },
	{ "password", RK_T_OBJECT, 0 },
	{ NULL, 0, 0 },
};

static const struct gen_type {
	enum rk_gen_type type;
	const char *name;
	const struct rk_field *fields;
} gen_types[] = {
	{ RK_GEN_PASSWORD, "password", password_fields },
	{ RK_GEN_BYTES, "bytes", bytes_fields },
	{ RK_GEN_ED25519, "ed25519", keypair_fields },
	{ RK_GEN_X25519, "x25519", keypair_fields },
	{ RK_GEN_TEMPLATE, "template", template_fields },
};

#define TYPE_NAMES "password, bytes, ed25519, x25519 or template"

/*
 * PKCS#8 PrivateKeyInfo (RFC 5208) for RFC 8410 keys: SEQUENCE { version 0,
 * AlgorithmIdentifier { OID 1.3.101.112 (Ed25519) or 1.3.101.110 (X25519) },
 * OCTET STRING { OCTET STRING (32 bytes) } }; only the key bytes follow.
 */
static const unsigned char der_prefix_ed25519[16] = {
	0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06,
	0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
};
static const unsigned char der_prefix_x25519[16] = {
	0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06,
	0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20,
};
#define KEY_BYTES 32
#define DER_LEN (sizeof(der_prefix_ed25519) + KEY_BYTES)
#define PEM_BEGIN "-----BEGIN PRIVATE KEY-----\n"
#define PEM_END "-----END PRIVATE KEY-----\n"
#define PEM_LINE 64	/* base64 characters per line, as RFC 7468 asks */

const char *
rk_gen_class_chars(unsigned cls)
{
	for (size_t i = 0; i < RK_ARRAY_SIZE(classes); i++)
		if (classes[i].bit == cls)
			return classes[i].chars;
	return NULL;	/* not exactly one class */
}

static unsigned
count_classes(unsigned mask)
{
	unsigned n = 0;

	for (size_t i = 0; i < RK_ARRAY_SIZE(classes); i++)
		if (mask & classes[i].bit)
			n++;
	return n;
}

static const struct enc *
find_encoding(enum rk_encoding e)
{
	for (size_t i = 0; i < RK_ARRAY_SIZE(encodings); i++)
		if (encodings[i].enc == e)
			return &encodings[i];
	return NULL;
}

static const struct gen_type *
find_type(enum rk_gen_type t)
{
	for (size_t i = 0; i < RK_ARRAY_SIZE(gen_types); i++)
		if (gen_types[i].type == t)
			return &gen_types[i];
	return NULL;
}

static size_t
pem_len(size_t der_len)
{
	size_t b64 = sodium_base64_encoded_len(der_len, sodium_base64_VARIANT_ORIGINAL) - 1;

	return strlen(PEM_BEGIN) + b64 + (b64 + PEM_LINE - 1) / PEM_LINE + strlen(PEM_END);
}

/* Length of every value g makes (all generators are fixed-length); 0 if g is invalid. */
static size_t
value_len(const struct rk_gen *g)
{
	const struct enc *e;

	switch (g->type) {
	case RK_GEN_PASSWORD:
		return g->length;
	case RK_GEN_BYTES:
		if ((e = find_encoding(g->encoding)) == NULL)
			return 0;
		if (e->enc == RK_ENC_HEX)
			return g->length * 2;
		return sodium_base64_encoded_len(g->length, e->variant) - 1;
	case RK_GEN_ED25519:
	case RK_GEN_X25519:
		return pem_len(DER_LEN);
	case RK_GEN_TEMPLATE:
		break;
	}
	return 0;
}

/* The size of a template's output; RK_EINVAL when above MAX_TEMPLATE_OUTPUT. */
static int
template_size(const char *tmpl, size_t vlen, size_t *out)
{
	size_t tlen = strlen(tmpl), n = 0, fixed;

	for (const char *p = tmpl; (p = strstr(p, PLACEHOLDER)) != NULL; p += PLACEHOLDER_LEN)
		n++;
	fixed = tlen - n * PLACEHOLDER_LEN;
	if (fixed > MAX_TEMPLATE_OUTPUT || (vlen != 0 && n > (MAX_TEMPLATE_OUTPUT - fixed) / vlen))
		return RK_EINVAL;
	*out = fixed + n * vlen;
	return 0;
}

/* ---- parsing ------------------------------------------------------------------ */

static int
parse_length(const struct rk_doc *doc, const json_t *obj, size_t dflt, size_t *out,
	     struct rk_error *err)
{
	const json_t *v = json_object_get(obj, "length");
	json_int_t n;

	if (v == NULL) {
		*out = dflt;
		return 0;
	}
	n = json_integer_value(v);	/* rk_doc_check made sure it is an integer */
	if (n < 1 || n > RK_GEN_MAX_LENGTH)
		return rk_doc_error_key(err, doc, obj, "length", RK_EINVAL,
					"'length' must be between 1 and %d, got %lld",
					RK_GEN_MAX_LENGTH, (long long)n);
	*out = (size_t)n;
	return 0;
}

static int
parse_classes(const struct rk_doc *doc, const json_t *obj, unsigned *out, struct rk_error *err)
{
	const json_t *list = json_object_get(obj, "classes"), *e;
	unsigned mask = 0;
	size_t i;

	if (list == NULL) {
		*out = ALL_CLASSES;
		return 0;
	}
	if (json_array_size(list) == 0)
		return rk_doc_error_key(err, doc, obj, "classes", RK_EINVAL,
					"'classes' must name at least one of upper, lower, "
					"digit, symbol");
	json_array_foreach(list, i, e) {
		const char *name = json_string_value(e);
		size_t k = 0;

		while (k < RK_ARRAY_SIZE(classes) && strcmp(classes[k].name, name) != 0)
			k++;
		if (k == RK_ARRAY_SIZE(classes))
			return rk_doc_error(err, doc, e, RK_EINVAL,
					    "unknown class '%.32s' in 'classes' (expected upper, "
					    "lower, digit or symbol)", name);
		if (mask & classes[k].bit)
			return rk_doc_error(err, doc, e, RK_EINVAL,
					    "class '%s' is listed twice in 'classes'", name);
		mask |= classes[k].bit;
	}
	*out = mask;
	return 0;
}

static int
parse_encoding(const struct rk_doc *doc, const json_t *obj, enum rk_encoding *out,
	       struct rk_error *err)
{
	const char *name = rk_doc_str(obj, "encoding", NULL);

	if (name == NULL) {
		*out = RK_ENC_BASE64;
		return 0;
	}
	for (size_t i = 0; i < RK_ARRAY_SIZE(encodings); i++) {
		if (strcmp(encodings[i].name, name) == 0) {
			*out = encodings[i].enc;
			return 0;
		}
	}
	return rk_doc_error_key(err, doc, obj, "encoding", RK_EINVAL,
				"unknown 'encoding' '%.32s' (expected base64, base64url or hex)",
				name);
}

static int parse_gen(struct rk_gen **out, const struct rk_doc *doc, const json_t *obj,
		     int nested, struct rk_error *err);

static int
parse_template(struct rk_gen *g, const struct rk_doc *doc, const json_t *obj,
	       struct rk_error *err)
{
	const json_t *t = json_object_get(obj, "template"), *inner;
	size_t size;
	int r;

	/* A C string cannot carry the NUL; refusing beats silently cutting the template. */
	if (strlen(json_string_value(t)) != json_string_length(t))
		return rk_doc_error_key(err, doc, obj, "template", RK_EINVAL,
					"'template' must not contain NUL characters");
	if (strstr(json_string_value(t), PLACEHOLDER) == NULL)
		return rk_doc_error_key(err, doc, obj, "template", RK_EINVAL,
					"'template' must contain " PLACEHOLDER
					" where the generated password goes");
	if ((g->tmpl = strdup(json_string_value(t))) == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	/* An absent inner mapping is parsed as {}, so it gets parse_gen's nested defaults. */
	if ((inner = json_object_get(obj, "password")) != NULL) {
		if ((r = parse_gen(&g->inner, doc, inner, 1, err)) < 0)
			return r;
	} else {
		json_t *empty = json_object();

		if (empty == NULL)
			return rk_error_set(err, RK_ENOMEM, "out of memory");
		r = parse_gen(&g->inner, doc, empty, 1, err);
		json_decref(empty);
		if (r < 0)
			return r;
	}
	if (template_size(g->tmpl, value_len(g->inner), &size) < 0)
		return rk_doc_error_key(err, doc, obj, "template", RK_EINVAL,
					"'template' would make a value larger than %u bytes",
					MAX_TEMPLATE_OUTPUT);
	return 0;
}

/*
 * nested: the generator of a template's {{password}}. Its mapping sits under
 * a key named `password`, so `type` defaults to password there, and its
 * password length defaults to 24 (connection strings), not 32.
 */
static int
parse_gen(struct rk_gen **out, const struct rk_doc *doc, const json_t *obj, int nested,
	  struct rk_error *err)
{
	const struct gen_type *t = NULL;
	struct rk_gen *g = NULL;
	const json_t *tv;
	const char *tname;
	char what[64];
	int r;

	if (!json_is_object(obj)) {
		r = rk_doc_error(err, doc, obj, RK_EINVAL,
				 "a generator must be a mapping like {type: password, length: 32}");
		goto out;
	}
	tv = json_object_get(obj, "type");
	if (tv == NULL && !nested) {
		r = rk_doc_error(err, doc, obj, RK_EINVAL,
				 "generator is missing the required key 'type' (" TYPE_NAMES ")");
		goto out;
	}
	if (tv != NULL && !json_is_string(tv)) {
		r = rk_doc_error_key(err, doc, obj, "type", RK_EINVAL,
				     "generator 'type' must be a string: " TYPE_NAMES);
		goto out;
	}
	tname = tv ? json_string_value(tv) : "password";
	for (size_t i = 0; i < RK_ARRAY_SIZE(gen_types) && t == NULL; i++)
		if (strcmp(gen_types[i].name, tname) == 0)
			t = &gen_types[i];
	if (t == NULL) {
		r = rk_doc_error_key(err, doc, obj, "type", RK_EINVAL,
				     "unknown generator type '%.32s' (expected " TYPE_NAMES ")",
				     tname);
		goto out;
	}
	if (nested && t->type == RK_GEN_TEMPLATE) {
		r = rk_doc_error_key(err, doc, obj, "type", RK_EINVAL,
				     "'type' of a template's 'password' generator cannot be template");
		goto out;
	}
	snprintf(what, sizeof(what), "%s%s generator", nested ? "the template's " : "",
		 t->name);
	if ((r = rk_doc_check(doc, obj, t->fields, what, err)) < 0)
		goto out;
	if ((g = calloc(1, sizeof(*g))) == NULL) {
		r = rk_error_set(err, RK_ENOMEM, "out of memory");
		goto out;
	}
	g->type = t->type;
	switch (t->type) {
	case RK_GEN_PASSWORD:
		if ((r = parse_length(doc, obj,
				      nested ? TEMPLATE_PASSWORD_DEFAULT_LENGTH
					     : PASSWORD_DEFAULT_LENGTH,
				      &g->length, err)) < 0 ||
		    (r = parse_classes(doc, obj, &g->classes, err)) < 0)
			goto out;
		if (g->length < count_classes(g->classes)) {
			r = rk_doc_error_key(err, doc, obj, "length", RK_EINVAL,
					     "'length' %zu is shorter than the %u classes, each "
					     "of which must appear at least once",
					     g->length, count_classes(g->classes));
			goto out;
		}
		break;
	case RK_GEN_BYTES:
		if ((r = parse_length(doc, obj, BYTES_DEFAULT_LENGTH, &g->length, err)) < 0 ||
		    (r = parse_encoding(doc, obj, &g->encoding, err)) < 0)
			goto out;
		break;
	case RK_GEN_ED25519:
	case RK_GEN_X25519:
		break;
	case RK_GEN_TEMPLATE:
		if ((r = parse_template(g, doc, obj, err)) < 0)
			goto out;
		break;
	}
	*out = g;
	g = NULL;
	r = 0;
out:
	rk_gen_free(g);
	return r;
}

int
rk_gen_parse(struct rk_gen **out, const struct rk_doc *doc, const json_t *obj,
	     struct rk_error *err)
{
	return parse_gen(out, doc, obj, 0, err);
}

void
rk_gen_free(struct rk_gen *g)
{
	if (g == NULL)
		return;
	free(g->tmpl);	/* policy text, not a value: no wiping needed */
	rk_gen_free(g->inner);
	free(g);
}

json_t *
rk_gen_to_json(const struct rk_gen *g)
{
	const struct gen_type *t = find_type(g->type);
	const struct enc *e;
	json_t *o = json_object(), *v = NULL;
	int r;

	if (o == NULL || t == NULL)
		goto fail;
	if (json_object_set_new(o, "type", json_string(t->name)) < 0)
		goto fail;
	switch (g->type) {
	case RK_GEN_PASSWORD:
		if ((v = json_array()) == NULL)
			goto fail;
		for (size_t i = 0; i < RK_ARRAY_SIZE(classes); i++)
			if ((g->classes & classes[i].bit) &&
			    json_array_append_new(v, json_string(classes[i].name)) < 0)
				goto fail;
		if (json_object_set_new(o, "length", json_integer((json_int_t)g->length)) < 0)
			goto fail;
		/* set_new takes the reference even when it fails. */
		r = json_object_set_new(o, "classes", v);
		v = NULL;
		if (r < 0)
			goto fail;
		break;
	case RK_GEN_BYTES:
		e = find_encoding(g->encoding);
		if (json_object_set_new(o, "length", json_integer((json_int_t)g->length)) < 0 ||
		    json_object_set_new(o, "encoding", json_string(e ? e->name : "?")) < 0)
			goto fail;
		break;
	case RK_GEN_ED25519:
	case RK_GEN_X25519:
		break;
	case RK_GEN_TEMPLATE:
		if (json_object_set_new(o, "template", json_string(g->tmpl ? g->tmpl : "")) < 0)
			goto fail;
		if (g->inner != NULL &&
		    json_object_set_new(o, "password", rk_gen_to_json(g->inner)) < 0)
			goto fail;
		break;
	}
	return o;
fail:
	json_decref(v);
	json_decref(o);
	return NULL;
}

/* ---- generation ----------------------------------------------------------------- */

/*
 * Uniform draws from one buffer of system randomness refilled as needed:
 * a password of N characters needs about 2N draws, and randombytes_uniform
 * costs a getrandom(2) each. The same rejection sampling as libsodium's
 * (no modulo bias). The bytes decide the value: wiped after use.
 */
struct rpool {
	unsigned char buf[256];
	size_t pos;
};

static uint32_t
rpool_uniform(struct rpool *rp, uint32_t n)
{
	/* 2^32 mod n: draws below it would make small remainders likelier. */
	uint32_t min = (uint32_t)(-n) % n, v;

	do {
		if (rp->pos + sizeof(v) > sizeof(rp->buf)) {
			randombytes_buf(rp->buf, sizeof(rp->buf));
			rp->pos = 0;
		}
		memcpy(&v, rp->buf + rp->pos, sizeof(v));
		rp->pos += sizeof(v);
	} while (v < min);
	return v % n;
}

static int
gen_password(size_t len, unsigned mask, struct rk_secret **out, struct rk_error *err)
{
	struct rpool rp = { .pos = sizeof(rp.buf) };
	struct rk_secret *s = NULL;
	char alphabet[128];	/* the union of the classes: public, not secret */
	size_t alen = 0, i = 0;
	unsigned char *p, t = 0;
	int r;

	if (mask == 0 || (mask & ~ALL_CLASSES) != 0) {
		r = rk_error_set(err, RK_EINVAL, "password generator: invalid classes 0x%x", mask);
		goto out;
	}
	if (len < 1 || len > RK_GEN_MAX_LENGTH || len < count_classes(mask)) {
		r = rk_error_set(err, RK_EINVAL,
				 "password generator: length %zu is not in [%u, %d]", len,
				 count_classes(mask), RK_GEN_MAX_LENGTH);
		goto out;
	}
	for (size_t k = 0; k < RK_ARRAY_SIZE(classes); k++) {
		size_t n = strlen(classes[k].chars);

		if (!(mask & classes[k].bit))
			continue;
		assert(alen + n <= sizeof(alphabet));
		memcpy(alphabet + alen, classes[k].chars, n);
		alen += n;
	}
	if ((r = rk_secret_new(&s, len, err)) < 0)
		goto out;
	p = rk_secret_data(s);
	/* One of each class first, so every class is guaranteed... */
	for (size_t k = 0; k < RK_ARRAY_SIZE(classes); k++) {
		const char *chars = classes[k].chars;

		if (mask & classes[k].bit)
			p[i++] = (unsigned char)chars[rpool_uniform(&rp, (uint32_t)strlen(chars))];
	}
	/* ...the rest uniformly from the union (no modulo bias)... */
	for (; i < len; i++)
		p[i] = (unsigned char)alphabet[rpool_uniform(&rp, (uint32_t)alen)];
	/* ...then a Fisher-Yates shuffle, or the first characters would betray their class. */
	for (i = len - 1; i > 0; i--) {
		size_t j = rpool_uniform(&rp, (uint32_t)(i + 1));

		t = p[i];
		p[i] = p[j];
		p[j] = t;
	}
	sodium_memzero(&t, sizeof(t));
	*out = s;
	s = NULL;
	r = 0;
out:
	sodium_memzero(&rp, sizeof(rp));
	rk_secret_free(s);
	return r;
}

static int
gen_bytes(size_t len, enum rk_encoding encoding, struct rk_secret **out, struct rk_error *err)
{
	struct rk_secret *raw = NULL, *s = NULL;
	const struct enc *e = find_encoding(encoding);
	size_t elen;
	int r;

	if (e == NULL) {
		r = rk_error_set(err, RK_EINVAL, "bytes generator: invalid encoding %d",
				 (int)encoding);
		goto out;
	}
	if (len < 1 || len > RK_GEN_MAX_LENGTH) {
		r = rk_error_set(err, RK_EINVAL, "bytes generator: length %zu is not in [1, %d]",
				 len, RK_GEN_MAX_LENGTH);
		goto out;
	}
	/* The raw bytes are as secret as their encoding: they get a secret of their own. */
	if ((r = rk_secret_new(&raw, len, err)) < 0)
		goto out;
	randombytes_buf(rk_secret_data(raw), len);
	elen = e->enc == RK_ENC_HEX ? len * 2
				    : sodium_base64_encoded_len(len, e->variant) - 1;
	if ((r = rk_secret_new(&s, elen, err)) < 0)
		goto out;
	/* A secret has room for a NUL past its length: both encoders write one. */
	if (e->enc == RK_ENC_HEX)
		sodium_bin2hex((char *)rk_secret_data(s), elen + 1, rk_secret_cdata(raw), len);
	else
		sodium_bin2base64((char *)rk_secret_data(s), elen + 1, rk_secret_cdata(raw), len,
				  e->variant);
	*out = s;
	s = NULL;
	r = 0;
out:
	rk_secret_free(raw);
	rk_secret_free(s);
	return r;
}

/* PEM-armours der into a new secret: base64 in lines of PEM_LINE characters. */
static int
pem_encode(const unsigned char *der, size_t der_len, struct rk_secret **out,
	   struct rk_error *err)
{
	struct rk_secret *s = NULL;
	size_t total = pem_len(der_len), pos = 0;
	unsigned char *p;
	int r;

	if ((r = rk_secret_new(&s, total, err)) < 0)
		goto out;
	p = rk_secret_data(s);
	memcpy(p, PEM_BEGIN, strlen(PEM_BEGIN));
	pos = strlen(PEM_BEGIN);
	/* PEM_LINE * 3 / 4 input bytes make exactly one full line, with no padding. */
	for (size_t off = 0; off < der_len; off += PEM_LINE / 4 * 3) {
		size_t n = der_len - off < PEM_LINE / 4 * 3 ? der_len - off : PEM_LINE / 4 * 3;

		/* Its NUL lands where the '\n' goes; capacity is total + 1. */
		sodium_bin2base64((char *)p + pos, total + 1 - pos, der + off, n,
				  sodium_base64_VARIANT_ORIGINAL);
		pos += sodium_base64_encoded_len(n, sodium_base64_VARIANT_ORIGINAL) - 1;
		p[pos++] = '\n';
	}
	memcpy(p + pos, PEM_END, strlen(PEM_END));
	pos += strlen(PEM_END);
	assert(pos == total);
	*out = s;
	s = NULL;
	r = 0;
out:
	rk_secret_free(s);
	return r;
}

static int
gen_keypair(enum rk_gen_type type, struct rk_secret **out, struct rk_error *err)
{
	/* Everything that holds key bytes, in one sodium_malloc'd block wiped by sodium_free. */
	struct keymat {
		unsigned char pk[crypto_sign_PUBLICKEYBYTES];
		unsigned char sk[crypto_sign_SECRETKEYBYTES];
		unsigned char der[DER_LEN];
	} *km;
	int r;

	_Static_assert(crypto_sign_SEEDBYTES == KEY_BYTES, "ed25519 seed size");
	_Static_assert(crypto_box_SECRETKEYBYTES == KEY_BYTES, "x25519 key size");
	_Static_assert(crypto_box_PUBLICKEYBYTES <= crypto_sign_PUBLICKEYBYTES, "pk room");
	if ((km = sodium_malloc(sizeof(*km))) == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of secure memory");
	if (type == RK_GEN_ED25519) {
		/* PKCS#8 holds the 32-byte seed (RFC 8410), not libsodium's seed||pk. */
		memcpy(km->der, der_prefix_ed25519, sizeof(der_prefix_ed25519));
		if (crypto_sign_keypair(km->pk, km->sk) != 0) {
			r = rk_error_set(err, RK_EINTERNAL, "ed25519 key generation failed");
			goto out;
		}
		crypto_sign_ed25519_sk_to_seed(km->der + sizeof(der_prefix_ed25519), km->sk);
	} else {
		/* The raw scalar, unclamped, as RFC 8410 stores it; X25519 clamps at use. */
		memcpy(km->der, der_prefix_x25519, sizeof(der_prefix_x25519));
		if (crypto_box_keypair(km->pk, km->sk) != 0) {
			r = rk_error_set(err, RK_EINTERNAL, "x25519 key generation failed");
			goto out;
		}
		memcpy(km->der + sizeof(der_prefix_x25519), km->sk, KEY_BYTES);
	}
	r = pem_encode(km->der, DER_LEN, out, err);
out:
	sodium_free(km);
	return r;
}

static int
gen_template(const struct rk_gen *g, struct rk_secret **out, struct rk_error *err)
{
	/* Specs from rk_gen_parse always have an inner; this serves specs built in code. */
	static const struct rk_gen dflt_inner = {
		.type = RK_GEN_PASSWORD,
		.length = TEMPLATE_PASSWORD_DEFAULT_LENGTH,
		.classes = ALL_CLASSES,
	};
	const struct rk_gen *inner = g->inner ? g->inner : &dflt_inner;
	struct rk_secret *val = NULL, *s = NULL;
	const char *p, *q;
	unsigned char *dst;
	size_t size, vlen;
	int r;

	if (inner->type == RK_GEN_TEMPLATE) {
		r = rk_error_set(err, RK_EINVAL, "template generator: nested templates are not allowed");
		goto out;
	}
	if (g->tmpl == NULL || strstr(g->tmpl, PLACEHOLDER) == NULL) {
		r = rk_error_set(err, RK_EINVAL,
				 "template generator: the template has no " PLACEHOLDER);
		goto out;
	}
	/* One value for all occurrences: a connection string names one password. */
	if ((r = rk_gen_generate(inner, &val, err)) < 0)
		goto out;
	vlen = rk_secret_len(val);
	if (template_size(g->tmpl, vlen, &size) < 0) {
		r = rk_error_set(err, RK_EINVAL,
				 "template generator: the value would be larger than %u bytes",
				 MAX_TEMPLATE_OUTPUT);
		goto out;
	}
	if ((r = rk_secret_new(&s, size, err)) < 0)
		goto out;
	dst = rk_secret_data(s);
	for (p = g->tmpl; (q = strstr(p, PLACEHOLDER)) != NULL; p = q + PLACEHOLDER_LEN) {
		memcpy(dst, p, (size_t)(q - p));
		dst += q - p;
		memcpy(dst, rk_secret_cdata(val), vlen);
		dst += vlen;
	}
	memcpy(dst, p, strlen(p));
	dst += strlen(p);
	assert(dst == rk_secret_data(s) + size);
	*out = s;
	s = NULL;
	r = 0;
out:
	rk_secret_free(val);
	rk_secret_free(s);
	return r;
}

int
rk_gen_generate(const struct rk_gen *g, struct rk_secret **out, struct rk_error *err)
{
	switch (g->type) {
	case RK_GEN_PASSWORD:
		return gen_password(g->length, g->classes, out, err);
	case RK_GEN_BYTES:
		return gen_bytes(g->length, g->encoding, out, err);
	case RK_GEN_ED25519:
	case RK_GEN_X25519:
		return gen_keypair(g->type, out, err);
	case RK_GEN_TEMPLATE:
		return gen_template(g, out, err);
	}
	return rk_error_set(err, RK_EINVAL, "unknown generator type %d", (int)g->type);
}
