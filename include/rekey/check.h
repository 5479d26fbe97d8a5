/*
 * Value checks used by the startup guard: known defaults, placeholders,
 * length and estimated entropy (zxcvbn). Results name the rule and how to
 * fix it, never the value or any part of it.
 */
#ifndef REKEY_CHECK_H
#define REKEY_CHECK_H

#include <stddef.h>
#include <stdint.h>
#include "rekey/error.h"

/*
 * The known-defaults list (policy/known-defaults.txt, or a user file):
 * one entry a line, compared case-insensitively; '#' starts a comment line;
 * blank lines are ignored; an entry ending in '*' is a prefix rule
 * ("django-insecure-*"). Leading/trailing whitespace of a line is ignored.
 */
struct rk_defaults;

int rk_defaults_parse(struct rk_defaults **out, const char *name, const char *text,
		      size_t len, struct rk_error *err) RK_WARN_UNUSED;
/* Adds one entry (same syntax as a line), e.g. from a policy's `forbid`. */
int rk_defaults_add(struct rk_defaults *d, const char *entry, struct rk_error *err) RK_WARN_UNUSED;
size_t rk_defaults_count(const struct rk_defaults *d);
void rk_defaults_free(struct rk_defaults *d);

/*
 * The known-secrets corpus (data/known-secrets/, and third-party lists when
 * the build finds them): no text, only the sorted 64-bit SipHash-2-4 hashes
 * of its normalised entries (ASCII lower case, trimmed), made at build time
 * by tools/gen_known_secrets.c under the public `key`. Const data: a lookup
 * is one hash and a binary search, nothing is parsed at start-up.
 */
struct rk_corpus_source {
	const char *name;	/* file name without extension: "selfhosted" */
	size_t read;		/* entries the list holds */
	size_t added;		/* of those, not in an earlier list nor known-defaults.txt */
};

struct rk_corpus {
	const uint64_t *hashes;	/* ascending, unique */
	size_t n;
	unsigned char key[16];	/* crypto_shorthash key */
	const struct rk_corpus_source *sources;	/* terminated by a NULL name */
};

/*
 * Makes d also refuse every value of the corpus c (borrowed, usually the
 * const rk_known_secrets; NULL detaches), with the same trimming, quote and
 * case rules as its own entries. rk_defaults_count does not count them.
 */
void rk_defaults_set_corpus(struct rk_defaults *d, const struct rk_corpus *c);
/* Is v[0..len) (already trimmed) a corpus entry, folding ASCII case? */
int rk_corpus_contains(const struct rk_corpus *c, const unsigned char *v, size_t len);

struct rk_value_rules {
	size_t min_length;		/* 0: no length rule */
	double min_entropy_bits;	/* 0: no entropy rule */
	const struct rk_defaults *defaults;	/* built-in list, may be NULL */
	const struct rk_defaults *forbid;	/* the policy's `forbid`, may be NULL */
};

enum rk_check_id {
	RK_CHECK_PRESENT = 0,	/* present and non-empty */
	RK_CHECK_DEFAULT,	/* not in the known-defaults list */
	RK_CHECK_FORBIDDEN,	/* not in the policy's forbid list */
	RK_CHECK_PLACEHOLDER,	/* not a placeholder */
	RK_CHECK_LENGTH,	/* at least min_length */
	RK_CHECK_ENTROPY,	/* at least min_entropy_bits */
	RK_CHECK_VALUE_COUNT
};

struct rk_check_result {
	enum rk_check_id id;
	int ok;			/* 1 pass, 0 fail, -1 not applicable (rule off or value absent) */
	char reason[256];	/* on failure: what and how to fix; never the value */
};

/* "present", "known_default", "forbidden", "placeholder", "min_length", "min_entropy" */
const char *rk_check_name(enum rk_check_id id);

/*
 * Runs every value check on v[0..len) (v may be NULL: absent). Fills
 * res[RK_CHECK_VALUE_COUNT] in enum order and returns the number of failures.
 * Comparisons against the lists are case-insensitive, on the whole value and
 * on prefix rules, and also after trimming whitespace and surrounding quotes.
 */
int rk_check_value(const unsigned char *v, size_t len, const struct rk_value_rules *rules,
		   struct rk_check_result res[RK_CHECK_VALUE_COUNT]);

/* zxcvbn's estimate in bits (log2 of guesses); never logs the value. */
double rk_check_entropy_bits(const unsigned char *v, size_t len);

#endif
