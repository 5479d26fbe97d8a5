/*
 * Value generators: password classes and uniformity, byte encodings, PKCS#8
 * key pairs that libsodium can use again, templates, and parse errors that
 * point at file:line:column.
 */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#include "rekey/doc.h"
#include "rekey/gen.h"
#include "rekey/util.h"
#include "unit.h"

#define ALL (RK_CLASS_UPPER | RK_CLASS_LOWER | RK_CLASS_DIGIT | RK_CLASS_SYMBOL)

static const unsigned class_bits[4] = {
	RK_CLASS_UPPER, RK_CLASS_LOWER, RK_CLASS_DIGIT, RK_CLASS_SYMBOL,
};

/* The class of c, or 0 when c belongs to none. */
static unsigned
class_of(char c)
{
	for (size_t i = 0; i < 4; i++)
		if (c != '\0' && strchr(rk_gen_class_chars(class_bits[i]), c) != NULL)
			return class_bits[i];
	return 0;
}

static struct rk_secret *
generate(const struct rk_gen *g)
{
	struct rk_secret *s = NULL;
	struct rk_error err = { 0 };

	ck_assert_msg(rk_gen_generate(g, &s, &err) == 0, "generate failed: %s", err.msg);
	ck_assert_ptr_nonnull(s);
	return s;
}

static struct rk_secret *
generate_password(size_t len, unsigned classes)
{
	struct rk_gen g = { .type = RK_GEN_PASSWORD, .length = len, .classes = classes };

	return generate(&g);
}

/* Parses YAML text whose `generator:` key holds the spec; returns rk_gen_parse's code. */
static int
parse_yaml(const char *yaml, struct rk_gen **g, struct rk_error *err)
{
	struct rk_doc *doc = NULL;
	struct rk_error lerr = { 0 };
	int r;

	ck_assert_msg(rk_doc_load_string(&doc, "test.yaml", yaml, strlen(yaml), &lerr) == 0,
		      "YAML did not load: %s", lerr.msg);
	r = rk_gen_parse(g, doc, json_object_get(rk_doc_root(doc), "generator"), err);
	rk_doc_free(doc);
	return r;
}

static struct rk_gen *
parse_ok(const char *yaml)
{
	struct rk_gen *g = NULL;
	struct rk_error err = { 0 };

	ck_assert_msg(parse_yaml(yaml, &g, &err) == 0, "parse failed: %s", err.msg);
	ck_assert_ptr_nonnull(g);
	return g;
}

START_TEST(test_class_sets_are_disjoint_distinct_and_shell_url_safe)
{
	const char *sym = rk_gen_class_chars(RK_CLASS_SYMBOL);
	size_t total = 0;

	ck_assert_ptr_nonnull(sym);
	/* Quotes, escapes, expansions, URL delimiters and percent-encoding break values. */
	for (const char *bad = "\"'\\$`/?& @#%:;+*()[]{}<>|^"; *bad; bad++)
		ck_assert_msg(strchr(sym, *bad) == NULL, "symbol '%c' is not safe", *bad);
	ck_assert_str_eq(rk_gen_class_chars(RK_CLASS_UPPER), "ABCDEFGHIJKLMNOPQRSTUVWXYZ");
	ck_assert_str_eq(rk_gen_class_chars(RK_CLASS_LOWER), "abcdefghijklmnopqrstuvwxyz");
	ck_assert_str_eq(rk_gen_class_chars(RK_CLASS_DIGIT), "0123456789");
	ck_assert_ptr_null(rk_gen_class_chars(RK_CLASS_UPPER | RK_CLASS_LOWER));
	ck_assert_ptr_null(rk_gen_class_chars(0));
	/* A repeated character would be drawn twice as often as its neighbours. */
	for (size_t i = 0; i < 4; i++) {
		const char *c = rk_gen_class_chars(class_bits[i]);

		for (size_t j = 0; c[j]; j++) {
			ck_assert_msg(strchr(c + j + 1, c[j]) == NULL, "'%c' repeated", c[j]);
			ck_assert_uint_eq(class_of(c[j]), class_bits[i]);
		}
		total += strlen(c);
	}
	ck_assert_uint_ge(strlen(sym), 5);
	ck_assert_uint_eq(total, 26 + 26 + 10 + strlen(sym));
}
END_TEST

START_TEST(test_password_has_every_class_in_every_draw)
{
	static const size_t lengths[] = { 4, 5, 8, 32 };

	for (size_t li = 0; li < RK_ARRAY_SIZE(lengths); li++) {
		for (int n = 0; n < 500; n++) {
			struct rk_secret *s = generate_password(lengths[li], ALL);
			const char *p = rk_secret_str(s);
			unsigned seen = 0;

			for (size_t i = 0; i < rk_secret_len(s); i++) {
				unsigned c = class_of(p[i]);
				ck_assert_msg(c != 0, "character 0x%02x in no class",
					      (unsigned char)p[i]);
				seen |= c;
			}
			ck_assert_msg(seen == ALL, "length %zu draw %d lacks classes 0x%x",
				      lengths[li], n, ALL & ~seen);
			rk_secret_free(s);
		}
	}
}
END_TEST

START_TEST(test_password_length_is_exact)
{
	static const size_t lengths[] = { 4, 5, 23, 24, 32, 100, RK_GEN_MAX_LENGTH };

	for (size_t i = 0; i < RK_ARRAY_SIZE(lengths); i++) {
		struct rk_secret *s = generate_password(lengths[i], ALL);

		ck_assert_uint_eq(rk_secret_len(s), lengths[i]);
		ck_assert_uint_eq(strlen(rk_secret_str(s)), lengths[i]);
		rk_secret_free(s);
	}
	/* One class allows a single character. */
	{
		struct rk_secret *s = generate_password(1, RK_CLASS_DIGIT);
		ck_assert_uint_eq(rk_secret_len(s), 1);
		ck_assert_uint_eq(class_of(rk_secret_str(s)[0]), RK_CLASS_DIGIT);
		rk_secret_free(s);
	}
}
END_TEST

START_TEST(test_password_class_subsets_use_only_those_classes)
{
	static const unsigned subsets[] = {
		RK_CLASS_DIGIT, RK_CLASS_SYMBOL, RK_CLASS_UPPER | RK_CLASS_SYMBOL,
		RK_CLASS_LOWER | RK_CLASS_DIGIT, RK_CLASS_UPPER | RK_CLASS_LOWER | RK_CLASS_DIGIT,
	};

	for (size_t k = 0; k < RK_ARRAY_SIZE(subsets); k++) {
		for (int n = 0; n < 200; n++) {
			struct rk_secret *s = generate_password(12, subsets[k]);
			unsigned seen = 0;

			for (size_t i = 0; i < 12; i++)
				seen |= class_of(rk_secret_str(s)[i]);
			ck_assert_msg(seen == subsets[k], "classes 0x%x gave 0x%x", subsets[k], seen);
			rk_secret_free(s);
		}
	}
}
END_TEST

START_TEST(test_password_generate_rejects_impossible_specs)
{
	struct {
		size_t len;
		unsigned classes;
	} bad[] = {
		{ 3, ALL },	/* shorter than its four classes */
		{ 1, RK_CLASS_UPPER | RK_CLASS_DIGIT },
		{ 0, RK_CLASS_DIGIT },
		{ RK_GEN_MAX_LENGTH + 1, ALL },
		{ 8, 0 },
		{ 8, 0x10 },
	};

	for (size_t i = 0; i < RK_ARRAY_SIZE(bad); i++) {
		struct rk_gen g = { .type = RK_GEN_PASSWORD, .length = bad[i].len,
				    .classes = bad[i].classes };
		struct rk_secret *s = NULL;
		struct rk_error err = { 0 };

		ck_assert_int_eq(rk_gen_generate(&g, &s, &err), RK_EINVAL);
		ck_assert_ptr_null(s);
		ck_assert_int_eq(err.code, RK_EINVAL);
	}
}
END_TEST

/* Pearson's statistic of observed counts against expected ones. */
static double
chi_square(const double *obs, const double *expct, size_t n)
{
	double x = 0;

	for (size_t i = 0; i < n; i++)
		x += (obs[i] - expct[i]) * (obs[i] - expct[i]) / expct[i];
	return x;
}

/*
 * Each password holds one forced character per class and L-4 characters from
 * the union; after a uniform shuffle every position has the same distribution:
 * P(c) = (1/|class(c)| + (L-4)/|union|) / L. Counting per position catches a
 * missing or broken shuffle (position 0 always upper); counting over all
 * positions catches modulo bias (e.g. byte % 69 favours the first 49 chars by
 * a third). The bound, df + 8*sqrt(2*df), fails a correct generator about
 * once in 10^8 runs.
 */
START_TEST(test_password_characters_are_uniform_chi_square)
{
	enum { L = 32, DRAWS = 4000 };
	char alphabet[128];
	size_t n = 0;
	double *pos_first, *pos_last, *pos_mid, *all, *e_pos, *e_all, df, bound;

	for (size_t k = 0; k < 4; k++) {
		const char *c = rk_gen_class_chars(class_bits[k]);
		memcpy(alphabet + n, c, strlen(c));
		n += strlen(c);
	}
	pos_first = calloc(n, sizeof(double));
	pos_last = calloc(n, sizeof(double));
	pos_mid = calloc(n, sizeof(double));
	all = calloc(n, sizeof(double));
	e_pos = calloc(n, sizeof(double));
	e_all = calloc(n, sizeof(double));
	ck_assert(pos_first && pos_last && pos_mid && all && e_pos && e_all);
	for (size_t i = 0; i < n; i++) {
		const char *cls = rk_gen_class_chars(class_of(alphabet[i]));
		double per_pw = 1.0 / (double)strlen(cls) + (double)(L - 4) / (double)n;

		e_all[i] = DRAWS * per_pw;
		e_pos[i] = DRAWS * per_pw / L;
	}
	for (int d = 0; d < DRAWS; d++) {
		struct rk_secret *s = generate_password(L, ALL);
		const char *p = rk_secret_str(s);

		for (size_t i = 0; i < L; i++) {
			size_t idx = (size_t)(memchr(alphabet, p[i], n) - (void *)alphabet);
			all[idx]++;
			if (i == 0)
				pos_first[idx]++;
			if (i == L / 2)
				pos_mid[idx]++;
			if (i == L - 1)
				pos_last[idx]++;
		}
		rk_secret_free(s);
	}
	df = (double)n - 1;
	bound = df + 8 * sqrt(2 * df);
	ck_assert_msg(chi_square(all, e_all, n) < bound, "all positions: chi2 %.1f >= %.1f",
		      chi_square(all, e_all, n), bound);
	ck_assert_msg(chi_square(pos_first, e_pos, n) < bound, "position 0: chi2 %.1f >= %.1f",
		      chi_square(pos_first, e_pos, n), bound);
	ck_assert_msg(chi_square(pos_mid, e_pos, n) < bound, "position %d: chi2 %.1f >= %.1f",
		      L / 2, chi_square(pos_mid, e_pos, n), bound);
	ck_assert_msg(chi_square(pos_last, e_pos, n) < bound, "last position: chi2 %.1f >= %.1f",
		      chi_square(pos_last, e_pos, n), bound);
	free(pos_first);
	free(pos_last);
	free(pos_mid);
	free(all);
	free(e_pos);
	free(e_all);
}
END_TEST

/*
 * A 4-character password of 4 classes is one character of each, so its class
 * order is the shuffle's permutation of the forced characters: all 24 orders
 * must be equally likely. This catches shuffles the character counts cannot
 * see, such as Sattolo's (j < i, only the 6 cyclic orders) or j drawn from
 * the whole range (a biased order).
 */
START_TEST(test_password_shuffle_makes_every_class_order_equally_likely)
{
	enum { DRAWS = 2400 };
	double obs[24] = { 0 }, expct[24], df = 23;

	for (int d = 0; d < DRAWS; d++) {
		struct rk_secret *s = generate_password(4, ALL);
		size_t code = 0, used = 0, rank;

		/* Lehmer code of the class order: a number in [0, 24). */
		for (size_t i = 0; i < 4; i++) {
			size_t k = 0;

			while (class_bits[k] != class_of(rk_secret_str(s)[i]))
				k++;
			rank = 0;
			for (size_t j = 0; j < k; j++)
				rank += !((used >> j) & 1);
			used |= (size_t)1 << k;
			code = code * (4 - i) + rank;
		}
		obs[code]++;
		rk_secret_free(s);
	}
	for (size_t i = 0; i < 24; i++)
		expct[i] = DRAWS / 24.0;
	ck_assert_msg(chi_square(obs, expct, 24) < df + 8 * sqrt(2 * df),
		      "class orders: chi2 %.1f", chi_square(obs, expct, 24));
}
END_TEST

static void
check_bytes(enum rk_encoding enc, size_t len)
{
	struct rk_gen g = { .type = RK_GEN_BYTES, .length = len, .encoding = enc };
	struct rk_secret *a = generate(&g), *b = generate(&g);
	unsigned char *bin = malloc(len + 1), *bin2 = malloc(len + 1);
	const char *s = rk_secret_str(a), *end = NULL;
	size_t slen = rk_secret_len(a), binlen = 0, bin2len = 0, zeros = 0;
	int variant = enc == RK_ENC_BASE64 ? sodium_base64_VARIANT_ORIGINAL
					   : sodium_base64_VARIANT_URLSAFE_NO_PADDING;

	ck_assert(bin && bin2);
	ck_assert_uint_eq(strlen(s), slen);
	if (enc == RK_ENC_HEX) {
		ck_assert_uint_eq(slen, 2 * len);
		ck_assert_uint_eq(strspn(s, "0123456789abcdef"), slen);
		ck_assert_int_eq(sodium_hex2bin(bin, len + 1, s, slen, NULL, &binlen, &end), 0);
		ck_assert_int_eq(sodium_hex2bin(bin2, len + 1, rk_secret_str(b), rk_secret_len(b),
						NULL, &bin2len, NULL), 0);
	} else {
		ck_assert_uint_eq(slen, sodium_base64_encoded_len(len, variant) - 1);
		if (enc == RK_ENC_BASE64URL)
			ck_assert_ptr_null(strpbrk(s, "+/="));
		else
			ck_assert_ptr_null(strpbrk(s, "-_"));
		ck_assert_int_eq(sodium_base642bin(bin, len + 1, s, slen, NULL, &binlen, &end,
						   variant), 0);
		ck_assert_int_eq(sodium_base642bin(bin2, len + 1, rk_secret_str(b),
						   rk_secret_len(b), NULL, &bin2len, NULL, variant),
				 0);
	}
	ck_assert_uint_eq(binlen, len);
	ck_assert_uint_eq(bin2len, len);
	ck_assert_ptr_eq(end, s + slen);	/* the whole string decoded */
	for (size_t i = 0; i < len; i++)
		zeros += bin[i] == 0;
	if (len >= 16) {
		/* Random, not a constant: two draws differ and are not zero-filled. */
		ck_assert_msg(memcmp(bin, bin2, len) != 0, "two draws are equal");
		ck_assert_uint_lt(zeros, len / 4 + 2);
	}
	free(bin);
	free(bin2);
	rk_secret_free(a);
	rk_secret_free(b);
}

START_TEST(test_bytes_encodings_decode_to_the_right_length)
{
	static const size_t lengths[] = { 1, 2, 3, 16, 31, 32, 33, RK_GEN_MAX_LENGTH };
	static const enum rk_encoding encs[] = { RK_ENC_BASE64, RK_ENC_BASE64URL, RK_ENC_HEX };

	for (size_t e = 0; e < RK_ARRAY_SIZE(encs); e++)
		for (size_t i = 0; i < RK_ARRAY_SIZE(lengths); i++)
			check_bytes(encs[e], lengths[i]);
	/* base64 keeps its padding: 32 bytes -> 44 characters ending in '='. */
	{
		struct rk_gen g = { .type = RK_GEN_BYTES, .length = 32, .encoding = RK_ENC_BASE64 };
		struct rk_secret *s = generate(&g);
		ck_assert_uint_eq(rk_secret_len(s), 44);
		ck_assert_int_eq(rk_secret_str(s)[43], '=');
		rk_secret_free(s);
	}
}
END_TEST

#define PEM_BEGIN "-----BEGIN PRIVATE KEY-----\n"
#define PEM_END "-----END PRIVATE KEY-----\n"

/* Checks the PEM armour and returns the 32 key bytes after the expected DER prefix. */
static void
pem_key(const struct rk_secret *s, const unsigned char prefix[16], unsigned char key[32])
{
	const char *p = rk_secret_str(s);
	size_t len = rk_secret_len(s), body_len, der_len = 0;
	unsigned char der[64];
	const char *body, *end = NULL;

	ck_assert_uint_eq(strlen(p), len);
	ck_assert_uint_gt(len, strlen(PEM_BEGIN) + strlen(PEM_END));
	ck_assert_int_eq(memcmp(p, PEM_BEGIN, strlen(PEM_BEGIN)), 0);
	ck_assert_str_eq(p + len - strlen(PEM_END), PEM_END);
	body = p + strlen(PEM_BEGIN);
	body_len = len - strlen(PEM_BEGIN) - strlen(PEM_END);
	/* 48 DER bytes are exactly one 64-character base64 line. */
	ck_assert_uint_eq(body_len, 65);
	ck_assert_int_eq(body[64], '\n');
	ck_assert_int_eq(sodium_base642bin(der, sizeof(der), body, 64, NULL, &der_len, &end,
					   sodium_base64_VARIANT_ORIGINAL), 0);
	ck_assert_ptr_eq(end, body + 64);
	ck_assert_uint_eq(der_len, 48);
	ck_assert_int_eq(memcmp(der, prefix, 16), 0);
	memcpy(key, der + 16, 32);
	sodium_memzero(der, sizeof(der));
}

START_TEST(test_ed25519_pem_is_pkcs8_and_its_seed_signs)
{
	static const unsigned char prefix[16] = {
		0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06,
		0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
	};
	static const unsigned char msg[] = "rotate me";
	struct rk_gen g = { .type = RK_GEN_ED25519 };
	struct rk_secret *a = generate(&g), *b = generate(&g);
	unsigned char seed[32], seed2[32], pk[crypto_sign_PUBLICKEYBYTES],
		sk[crypto_sign_SECRETKEYBYTES], pk2[crypto_sign_PUBLICKEYBYTES],
		sk2[crypto_sign_SECRETKEYBYTES], sig[crypto_sign_BYTES];

	pem_key(a, prefix, seed);
	pem_key(b, prefix, seed2);
	ck_assert_msg(memcmp(seed, seed2, 32) != 0, "two keys are equal");
	ck_assert_int_eq(crypto_sign_seed_keypair(pk, sk, seed), 0);
	ck_assert_int_eq(crypto_sign_detached(sig, NULL, msg, sizeof(msg), sk), 0);
	ck_assert_int_eq(crypto_sign_verify_detached(sig, msg, sizeof(msg), pk), 0);
	/* The other key must not verify it: the seed really is the key. */
	ck_assert_int_eq(crypto_sign_seed_keypair(pk2, sk2, seed2), 0);
	ck_assert_int_ne(crypto_sign_verify_detached(sig, msg, sizeof(msg), pk2), 0);
	sodium_memzero(sk, sizeof(sk));
	sodium_memzero(sk2, sizeof(sk2));
	rk_secret_free(a);
	rk_secret_free(b);
}
END_TEST

START_TEST(test_x25519_pem_is_pkcs8_and_its_scalar_agrees)
{
	static const unsigned char prefix[16] = {
		0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06,
		0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20,
	};
	struct rk_gen g = { .type = RK_GEN_X25519 };
	struct rk_secret *a = generate(&g), *b = generate(&g);
	unsigned char sk[32], sk_b[32], pk[32], peer_pk[32], peer_sk[32], s1[32], s2[32];

	pem_key(a, prefix, sk);
	pem_key(b, prefix, sk_b);
	ck_assert_msg(memcmp(sk, sk_b, 32) != 0, "two keys are equal");
	ck_assert_int_eq(crypto_scalarmult_base(pk, sk), 0);
	ck_assert_int_eq(crypto_box_keypair(peer_pk, peer_sk), 0);
	ck_assert_int_eq(crypto_scalarmult(s1, sk, peer_pk), 0);
	ck_assert_int_eq(crypto_scalarmult(s2, peer_sk, pk), 0);
	ck_assert_int_eq(memcmp(s1, s2, 32), 0);
	sodium_memzero(sk, sizeof(sk));
	sodium_memzero(sk_b, sizeof(sk_b));
	sodium_memzero(peer_sk, sizeof(peer_sk));
	rk_secret_free(a);
	rk_secret_free(b);
}
END_TEST

START_TEST(test_template_substitutes_every_occurrence_with_one_value)
{
	struct rk_gen *g = parse_ok(
		"generator:\n"
		"  type: template\n"
		"  template: \"postgres://app:{{password}}@db/app?pw={{password}}&x={{pass}}\"\n"
		"  password: {type: password, length: 20, classes: [lower, digit]}\n");
	const char *pre = "postgres://app:", *mid = "@db/app?pw=", *post = "&x={{pass}}";

	for (int n = 0; n < 50; n++) {
		struct rk_secret *s = generate(g);
		const char *p = rk_secret_str(s);
		size_t len = rk_secret_len(s);

		ck_assert_uint_eq(len, strlen(pre) + 20 + strlen(mid) + 20 + strlen(post));
		ck_assert_uint_eq(strlen(p), len);
		ck_assert_int_eq(strncmp(p, pre, strlen(pre)), 0);
		p += strlen(pre);
		for (size_t i = 0; i < 20; i++)
			ck_assert(class_of(p[i]) == RK_CLASS_LOWER || class_of(p[i]) == RK_CLASS_DIGIT);
		ck_assert_int_eq(strncmp(p + 20, mid, strlen(mid)), 0);
		ck_assert_int_eq(memcmp(p, p + 20 + strlen(mid), 20), 0);
		ck_assert_str_eq(p + 20 + strlen(mid) + 20, post);
		rk_secret_free(s);
	}
	rk_gen_free(g);
}
END_TEST

START_TEST(test_template_defaults_to_a_24_character_password)
{
	struct rk_gen *g = parse_ok("generator: {type: template, "
				    "template: \"{{password}}{{password}}\"}\n");
	struct rk_gen hand = { .type = RK_GEN_TEMPLATE, .tmpl = (char *)"k={{password}};" };
	struct rk_secret *s;
	unsigned seen = 0;

	ck_assert_ptr_nonnull(g->inner);
	ck_assert_int_eq(g->inner->type, RK_GEN_PASSWORD);
	ck_assert_uint_eq(g->inner->length, 24);
	ck_assert_uint_eq(g->inner->classes, ALL);
	s = generate(g);
	ck_assert_uint_eq(rk_secret_len(s), 48);
	ck_assert_int_eq(memcmp(rk_secret_str(s), rk_secret_str(s) + 24, 24), 0);
	for (size_t i = 0; i < 24; i++)
		seen |= class_of(rk_secret_str(s)[i]);
	ck_assert_uint_eq(seen, ALL);
	rk_secret_free(s);
	rk_gen_free(g);
	/* A spec built in code with no inner generator gets the same default. */
	s = generate(&hand);
	ck_assert_uint_eq(rk_secret_len(s), 2 + 24 + 1);
	ck_assert_int_eq(strncmp(rk_secret_str(s), "k=", 2), 0);
	ck_assert_int_eq(rk_secret_str(s)[26], ';');
	rk_secret_free(s);
}
END_TEST

START_TEST(test_template_with_bytes_inner_and_size_limit)
{
	struct rk_gen *g = parse_ok("generator:\n"
				    "  type: template\n"
				    "  template: \"key={{password}}\"\n"
				    "  password: {type: bytes, length: 16, encoding: hex}\n");
	struct rk_secret *s = generate(g);
	struct rk_error err = { 0 };
	struct rk_gen *big = NULL;
	char *yaml;
	size_t off;

	ck_assert_uint_eq(rk_secret_len(s), 4 + 32);
	ck_assert_uint_eq(strspn(rk_secret_str(s) + 4, "0123456789abcdef"), 32);
	rk_secret_free(s);
	rk_gen_free(g);
	/* 3000 placeholders of 4096 characters is 12 MB: refused, not allocated. */
	yaml = malloc(64 + 3000 * 12 + 128);
	ck_assert_ptr_nonnull(yaml);
	off = (size_t)snprintf(yaml, 64, "generator:\n  type: template\n  template: \"");
	for (int i = 0; i < 3000; i++) {
		memcpy(yaml + off, "{{password}}", 12);
		off += 12;
	}
	snprintf(yaml + off, 128, "\"\n  password: {length: 4096}\n");
	ck_assert_int_eq(parse_yaml(yaml, &big, &err), RK_EINVAL);
	ck_assert_ptr_null(big);
	ck_assert_msg(strncmp(err.msg, "test.yaml:3:", 12) == 0 && strstr(err.msg, "template"),
		      "%s", err.msg);
	free(yaml);
}
END_TEST

START_TEST(test_parse_defaults_and_json_description)
{
	static const struct {
		const char *yaml, *json;
	} cases[] = {
		{ "generator: {type: password}",
		  "{\"type\":\"password\",\"length\":32,"
		  "\"classes\":[\"upper\",\"lower\",\"digit\",\"symbol\"]}" },
		{ "generator: {type: password, length: 12, classes: [digit, upper]}",
		  "{\"type\":\"password\",\"length\":12,\"classes\":[\"upper\",\"digit\"]}" },
		{ "generator: {type: bytes}",
		  "{\"type\":\"bytes\",\"length\":32,\"encoding\":\"base64\"}" },
		{ "generator: {type: bytes, length: 64, encoding: base64url}",
		  "{\"type\":\"bytes\",\"length\":64,\"encoding\":\"base64url\"}" },
		{ "generator: {type: ed25519}", "{\"type\":\"ed25519\"}" },
		{ "generator: {type: x25519}", "{\"type\":\"x25519\"}" },
		{ "generator: {type: template, template: \"u:{{password}}\"}",
		  "{\"type\":\"template\",\"template\":\"u:{{password}}\",\"password\":"
		  "{\"type\":\"password\",\"length\":24,"
		  "\"classes\":[\"upper\",\"lower\",\"digit\",\"symbol\"]}}" },
	};

	for (size_t i = 0; i < RK_ARRAY_SIZE(cases); i++) {
		struct rk_gen *g = parse_ok(cases[i].yaml);
		json_t *got = rk_gen_to_json(g), *want = json_loads(cases[i].json, 0, NULL);
		char *dump = json_dumps(got, JSON_COMPACT);

		ck_assert_ptr_nonnull(got);
		ck_assert_ptr_nonnull(want);
		ck_assert_msg(json_equal(got, want), "%s gave %s", cases[i].yaml, dump);
		free(dump);
		json_decref(got);
		json_decref(want);
		rk_gen_free(g);
	}
}
END_TEST

START_TEST(test_parse_errors_name_file_line_column_and_key)
{
	static const struct {
		const char *yaml;
		int line;
		const char *words[2];
	} cases[] = {
		{ "generator:\n  type: password\n  lenght: 32\n", 3, { "unknown key", "lenght" } },
		{ "generator:\n  type: password\n  classes: [upper, emoji]\n", 3,
		  { "classes", "emoji" } },
		{ "generator:\n  type: password\n  classes: []\n", 3, { "classes", "at least" } },
		{ "generator:\n  type: password\n  classes: [digit, digit]\n", 3,
		  { "classes", "twice" } },
		{ "generator:\n  type: bytes\n  encoding: base32\n", 3, { "encoding", "base32" } },
		{ "generator:\n  type: password\n  length: 0\n", 3, { "length", "4096" } },
		{ "generator:\n  type: password\n  length: 100000\n", 3, { "length", "100000" } },
		{ "generator:\n  type: bytes\n  length: -5\n", 3, { "length", "-5" } },
		{ "generator:\n  type: password\n  length: \"32\"\n", 3, { "length", "integer" } },
		{ "generator:\n  type: password\n  length: 3\n", 3, { "length", "classes" } },
		{ "generator:\n  type: password\n  encoding: hex\n", 3, { "unknown key", "encoding" } },
		{ "generator:\n  type: rsa\n", 2, { "type", "rsa" } },
		{ "generator:\n  type: 5\n", 2, { "type", "string" } },
		{ "generator:\n  length: 3\n", 2, { "type", "missing" } },
		{ "generator:\n  type: template\n  template: \"postgres://{{pass}}@db\"\n", 3,
		  { "template", "{{password}}" } },
		{ "generator:\n  type: template\n  password: {length: 4}\n", 2,
		  { "template", "required" } },
		{ "generator:\n  type: template\n  template: \"{{password}}\"\n"
		  "  password:\n    type: template\n", 5, { "type", "template" } },
		{ "generator:\n  type: template\n  template: \"{{password}}\"\n"
		  "  password: {type: password, size: 3}\n", 4, { "unknown key", "size" } },
		{ "generator:\n  type: template\n  template: \"{{password}}\"\n"
		  "  password: {type: password, length: 2}\n", 4, { "length", "classes" } },
		{ "generator:\n  type: ed25519\n  length: 32\n", 3, { "unknown key", "length" } },
		{ "generator: [password]\n", 1, { "mapping", "type" } },
	};

	for (size_t i = 0; i < RK_ARRAY_SIZE(cases); i++) {
		struct rk_gen *g = NULL;
		struct rk_error err = { 0 };
		int line = 0, col = 0;

		ck_assert_msg(parse_yaml(cases[i].yaml, &g, &err) == RK_EINVAL,
			      "case %zu accepted", i);
		ck_assert_ptr_null(g);
		ck_assert_int_eq(err.code, RK_EINVAL);
		ck_assert_msg(sscanf(err.msg, "test.yaml:%d:%d: ", &line, &col) == 2,
			      "case %zu: no file:line:column in '%s'", i, err.msg);
		ck_assert_msg(line == cases[i].line && col > 0, "case %zu: want line %d: '%s'", i,
			      cases[i].line, err.msg);
		for (size_t w = 0; w < 2; w++)
			ck_assert_msg(strstr(err.msg, cases[i].words[w]) != NULL,
				      "case %zu: '%s' not in '%s'", i, cases[i].words[w], err.msg);
	}
}
END_TEST

Suite *
gen_suite(void)
{
	Suite *s = suite_create("gen");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_class_sets_are_disjoint_distinct_and_shell_url_safe);
	tcase_add_test(tc, test_password_has_every_class_in_every_draw);
	tcase_add_test(tc, test_password_length_is_exact);
	tcase_add_test(tc, test_password_class_subsets_use_only_those_classes);
	tcase_add_test(tc, test_password_generate_rejects_impossible_specs);
	tcase_add_test(tc, test_password_characters_are_uniform_chi_square);
	tcase_add_test(tc, test_password_shuffle_makes_every_class_order_equally_likely);
	tcase_add_test(tc, test_bytes_encodings_decode_to_the_right_length);
	tcase_add_test(tc, test_ed25519_pem_is_pkcs8_and_its_seed_signs);
	tcase_add_test(tc, test_x25519_pem_is_pkcs8_and_its_scalar_agrees);
	tcase_add_test(tc, test_template_substitutes_every_occurrence_with_one_value);
	tcase_add_test(tc, test_template_defaults_to_a_24_character_password);
	tcase_add_test(tc, test_template_with_bytes_inner_and_size_limit);
	tcase_add_test(tc, test_parse_defaults_and_json_description);
	tcase_add_test(tc, test_parse_errors_name_file_line_column_and_key);
	suite_add_tcase(s, tc);
	return s;
}
