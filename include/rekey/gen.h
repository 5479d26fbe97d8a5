/*
 * Value generators, on libsodium's CSPRNG only.
 *
 * A generator spec comes from a policy's `generator:` mapping:
 *   {type: password, length: 32, classes: [upper, lower, digit, symbol]}
 *   {type: bytes, length: 32, encoding: base64|base64url|hex}
 *   {type: ed25519} / {type: x25519}
 *   {type: template, template: "postgres://app:{{password}}@db/app",
 *    password: {type: password, length: 24}}
 * Generated values exist only in struct rk_secret (sodium_malloc).
 */
#ifndef REKEY_GEN_H
#define REKEY_GEN_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "rekey/error.h"
#include "rekey/secret.h"

struct rk_doc;

enum rk_gen_type {
	RK_GEN_PASSWORD = 1,
	RK_GEN_BYTES,
	RK_GEN_ED25519,
	RK_GEN_X25519,
	RK_GEN_TEMPLATE,
};

#define RK_CLASS_UPPER	0x1u
#define RK_CLASS_LOWER	0x2u
#define RK_CLASS_DIGIT	0x4u
#define RK_CLASS_SYMBOL	0x8u

enum rk_encoding { RK_ENC_BASE64 = 1, RK_ENC_BASE64URL, RK_ENC_HEX };

#define RK_GEN_MAX_LENGTH 4096

struct rk_gen {
	enum rk_gen_type type;
	size_t length;		/* password: characters; bytes: raw bytes before encoding */
	unsigned classes;	/* password: RK_CLASS_* (default all four) */
	enum rk_encoding encoding;	/* bytes: default base64 */
	char *tmpl;		/* template: text with {{password}} placeholders */
	struct rk_gen *inner;	/* template: generator for {{password}} (default password/24) */
};

/*
 * Parses and validates a generator mapping; errors name doc's file:line:column
 * (unknown keys, bad type, length out of [1, RK_GEN_MAX_LENGTH], a password
 * length smaller than its number of classes, unknown class or encoding,
 * a template without {{password}}, a nested template).
 */
int rk_gen_parse(struct rk_gen **out, const struct rk_doc *doc, const json_t *obj,
		 struct rk_error *err) RK_WARN_UNUSED;
/* The spec as JSON (for `rekey plan` / policy dumps); caller decrefs. */
json_t *rk_gen_to_json(const struct rk_gen *g);
void rk_gen_free(struct rk_gen *g);

/*
 * Generates a value. Passwords contain at least one character of each class
 * and are drawn without modulo bias (randombytes_uniform), then shuffled with
 * a Fisher-Yates shuffle on the CSPRNG. Key pairs are the private key as
 * PKCS#8 PEM ("-----BEGIN PRIVATE KEY-----"), which OpenSSL reads.
 */
int rk_gen_generate(const struct rk_gen *g, struct rk_secret **out,
		    struct rk_error *err) RK_WARN_UNUSED;

/* The characters of each class (for tests and the guard). */
const char *rk_gen_class_chars(unsigned cls);

#endif
