/*
 * Value checks used by the startup guard: known defaults, placeholders,
 * length and estimated entropy (zxcvbn). Results name the rule and how to
 * fix it, never the value or any part of it.
 */
#ifndef REKEY_CHECK_H
#define REKEY_CHECK_H

#include <stddef.h>
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
