/*
 * Value checks for the startup guard: present, not a known default, not on
 * the policy's forbid list, not a placeholder, long enough, and strong enough
 * by zxcvbn's estimate.
 *
 * The guard sits in front of an application's start (a container entrypoint,
 * an init hook), so it must be fast and must never echo what it inspects: a
 * reason names the rule and the fix, never the value, a piece of it, or the
 * list entry it matched (for a whole-value match the entry *is* the value).
 * Only the length and zxcvbn's estimate are reported, as numbers.
 *
 * Decisions, in one place:
 * - Length counts UTF-8 code points, not bytes: a policy says "16 characters"
 *   and a user counts characters. A byte that does not start a valid UTF-8
 *   sequence counts as one character, so binary values still have a length.
 * - Length and entropy are measured on the value without surrounding
 *   whitespace: padding must not lift a short secret over the bar, and the
 *   trailing newline of a file is not part of the secret.
 * - List matching folds ASCII case only; other bytes compare exactly. It is
 *   tried on the value without surrounding whitespace and again without one
 *   layer of surrounding quotes ('...' or "..."), which is how .env files and
 *   YAML leak quotes into values.
 * - Values may contain NUL bytes (struct rk_secret allows them, a --file may
 *   be binary). List entries cannot contain NUL, so a value with one never
 *   matches a whole entry; the placeholder rules work on lengths, not C
 *   strings. zxcvbn takes a C string, so its copy maps NUL to a byte of its
 *   "other" class instead of cutting the value short (which would let
 *   "weak\0<anything>" be judged on "weak" alone, or a random binary key on
 *   its first few bytes).
 * - zxcvbn-c scores bytes and gives every byte >= 0x80 the weight of a
 *   100-symbol alphabet, so a 6-letter Cyrillic word would look like 12
 *   random symbols. Its copy therefore folds each multi-byte UTF-8 sequence to
 *   one byte (0x80 | the code point's low 7 bits): one character is scored
 *   once, and folding can only make two characters look alike (weaker), never
 *   different.
 * - Placeholder rules fire on clear shapes only (a whole-value template, a
 *   marker word of 7+ letters, a short marker word standing alone between
 *   separators, runs of x's or stars, a phrase made only of stand-in words). Each comment gives the odds that a
 *   random value trips it, since a guard that refuses a freshly generated
 *   secret stops a deployment. Rules were tightened until 60 million values
 *   each of random base64 and base64url (32 bytes) and of 32-character
 *   passwords over rekey's alphabet and over 90 printable symbols were all
 *   accepted; the values that earlier rules refused are rows of the unit
 *   test table.
 * - zxcvbn needs sodium_init() first (its copy is sodium_malloc'd). The
 *   library clears its own reversed copy of the value; what it leaves on its
 *   stack is out of our reach.
 */
#include <assert.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <zxcvbn.h>

#include "rekey/check.h"

/* Bounds on a list: a user's list or a policy's forbid list is input like any other. */
#define DEFAULTS_MAX_ENTRIES	65536
#define DEFAULTS_MAX_ENTRY	1024
/* "ab*" would refuse one value in a thousand; a prefix must say something. */
#define PREFIX_MIN		4
/*
 * zxcvbn-c scores the first 100 characters in detail and the rest as one
 * cheap sequence; past this cap more bytes change nothing but the cost.
 */
#define ZXCVBN_MAX_INPUT	4096

/*
 * The fix, in words chosen not to overlap the values the checks refuse: a
 * reason must not echo "password", "example", "default" and the like back
 * (tests/unit/check_check.c asserts no 6-character piece of any refused
 * value appears in a reason).
 */
#define FIX "set a freshly generated value, e.g. with `rekey rotate NAME` or `openssl rand -hex 32`"

struct entry {
	char *s;		/* lower-cased (ASCII), NUL-terminated, without the '*' */
	size_t len;
	int prefix;		/* 1: matches values starting with s */
};

struct rk_defaults {
	struct entry *v;
	size_t n, cap;
	const struct rk_corpus *corpus;	/* borrowed; NULL: none */
};

/* A borrowed slice of the value; never copied for matching. */
struct view {
	const unsigned char *p;
	size_t n;
};

static const char *const check_names[RK_CHECK_VALUE_COUNT] = {
	[RK_CHECK_PRESENT] = "present",
	[RK_CHECK_DEFAULT] = "known_default",
	[RK_CHECK_FORBIDDEN] = "forbidden",
	[RK_CHECK_PLACEHOLDER] = "placeholder",
	[RK_CHECK_LENGTH] = "min_length",
	[RK_CHECK_ENTROPY] = "min_entropy",
};

const char *
rk_check_name(enum rk_check_id id)
{
	if ((unsigned)id >= RK_CHECK_VALUE_COUNT)
		return "unknown";
	return check_names[id];
}

/* ---- small byte helpers (ASCII only: no locale may change a verdict) ---- */

static int
is_ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static unsigned char
lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

static int
is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static int
is_alnum(unsigned char c)
{
	return is_alpha(c) || is_digit(c);
}

/*
 * Separators people put between words of a placeholder. '/' and '+' are
 * left out on purpose: they are base64 symbols, and counting them would let
 * random base64 form "words".
 */
static int
is_sep(unsigned char c)
{
	return c == '-' || c == '_' || c == '.' || c == ' ' || c == ':';
}

static struct view
trim_ws(struct view v)
{
	while (v.n > 0 && is_ws(v.p[0])) {
		v.p++;
		v.n--;
	}
	while (v.n > 0 && is_ws(v.p[v.n - 1]))
		v.n--;
	return v;
}

/* One layer of matching quotes, then whitespace inside them. */
static int
unquote(struct view *v)
{
	if (v->n < 2 || v->p[0] != v->p[v->n - 1] || (v->p[0] != '"' && v->p[0] != '\''))
		return 0;
	v->p++;
	v->n -= 2;
	*v = trim_ws(*v);
	return 1;
}

/* a[0..n) equals the lower-case b[0..n), folding a's ASCII case. */
static int
eq_fold(const unsigned char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (lower(a[i]) != (unsigned char)b[i])
			return 0;
	return 1;
}

static int
starts_with(struct view v, const char *word)
{
	size_t n = strlen(word);

	return v.n >= n && eq_fold(v.p, word, n);
}

/*
 * Length of the valid UTF-8 sequence at p[0..n), or 0 if none starts there
 * (stray continuation, overlong form, surrogate, beyond U+10FFFF, truncated).
 */
static size_t
utf8_seq(const unsigned char *p, size_t n, uint32_t *cp)
{
	uint32_t c, min;
	size_t k;

	if (p[0] < 0x80) {
		*cp = p[0];
		return 1;
	}
	if ((p[0] & 0xe0) == 0xc0) {
		k = 2, c = p[0] & 0x1f, min = 0x80;
	} else if ((p[0] & 0xf0) == 0xe0) {
		k = 3, c = p[0] & 0x0f, min = 0x800;
	} else if ((p[0] & 0xf8) == 0xf0) {
		k = 4, c = p[0] & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (n < k)
		return 0;
	for (size_t i = 1; i < k; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (p[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return k;
}

/* Bytes of the character at p: a valid sequence, else the one byte. */
static size_t
char_len(const unsigned char *p, size_t n)
{
	uint32_t cp;
	size_t k = utf8_seq(p, n, &cp);

	return k > 0 ? k : 1;
}

static size_t
count_chars(struct view v)
{
	size_t count = 0;

	for (size_t i = 0; i < v.n; i += char_len(v.p + i, v.n - i))
		count++;
	return count;
}

/* ---- the list ----------------------------------------------------------- */

/*
 * Validates and stores one entry s[0..len) (already trimmed). `where` is
 * "name:LINE: " for a file and "" for a single entry. Messages never quote
 * the entry: forbid lists name real (if retired) passwords.
 */
static int
entry_add(struct rk_defaults *d, const char *s, size_t len, const char *where,
	  struct rk_error *err)
{
	struct entry *e;
	int prefix = 0;

	if (len == 0)
		return rk_error_set(err, RK_EINVAL, "%san entry is empty", where);
	if (s[0] == '#')
		return rk_error_set(err, RK_EINVAL,
				    "%san entry cannot start with '#' (that marks a comment)",
				    where);
	if (len > DEFAULTS_MAX_ENTRY)
		return rk_error_set(err, RK_EINVAL, "%san entry is longer than %d bytes", where,
				    DEFAULTS_MAX_ENTRY);
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\0')
			return rk_error_set(err, RK_EINVAL, "%san entry contains a NUL byte",
					    where);
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return rk_error_set(err, RK_EINVAL,
					    "%san entry contains a control character", where);
	}
	if (s[len - 1] == '*') {
		prefix = 1;
		len--;
		if (len < PREFIX_MIN)
			return rk_error_set(err, RK_EINVAL,
					    "%sa prefix rule needs at least %d characters before "
					    "the trailing '*' (a shorter one would refuse random "
					    "values)", where, PREFIX_MIN);
	}
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 64;
		struct entry *v;

		if (d->n >= DEFAULTS_MAX_ENTRIES)
			return rk_error_set(err, RK_EINVAL, "%smore than %d entries", where,
					    DEFAULTS_MAX_ENTRIES);
		if ((v = realloc(d->v, cap * sizeof(*v))) == NULL)
			return rk_error_set(err, RK_ENOMEM, "out of memory");
		d->v = v;
		d->cap = cap;
	}
	e = &d->v[d->n];
	if ((e->s = malloc(len + 1)) == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	for (size_t i = 0; i < len; i++)
		e->s[i] = (char)lower((unsigned char)s[i]);
	e->s[len] = '\0';
	e->len = len;
	e->prefix = prefix;
	d->n++;
	return 0;
}

int
rk_defaults_parse(struct rk_defaults **out, const char *name, const char *text, size_t len,
		  struct rk_error *err)
{
	struct rk_defaults *d = NULL;
	char where[300];
	size_t pos = 0, lineno = 0;
	int r = RK_EINTERNAL;

	if ((d = calloc(1, sizeof(*d))) == NULL) {
		r = rk_error_set(err, RK_ENOMEM, "out of memory");
		goto out;
	}
	/* Editors on Windows write a BOM; it is not part of the first entry. */
	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
		pos = 3;
	while (pos < len) {
		const char *line = text + pos, *nl;
		size_t n = len - pos;
		struct view v;

		lineno++;
		if ((nl = memchr(line, '\n', n)) != NULL)
			n = (size_t)(nl - line);
		pos += n + (nl != NULL);
		v = trim_ws((struct view){ (const unsigned char *)line, n });
		if (v.n == 0 || v.p[0] == '#')
			continue;
		snprintf(where, sizeof(where), "%s:%zu: ", name, lineno);
		if ((r = entry_add(d, (const char *)v.p, v.n, where, err)) < 0)
			goto out;
	}
	*out = d;
	d = NULL;	/* transferred */
	r = 0;
 out:
	rk_defaults_free(d);
	return r;
}

int
rk_defaults_add(struct rk_defaults *d, const char *entry, struct rk_error *err)
{
	struct view v;

	assert(d != NULL && entry != NULL);
	v = trim_ws((struct view){ (const unsigned char *)entry, strlen(entry) });
	return entry_add(d, (const char *)v.p, v.n, "", err);
}

size_t
rk_defaults_count(const struct rk_defaults *d)
{
	return d != NULL ? d->n : 0;
}

void
rk_defaults_free(struct rk_defaults *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; i < d->n; i++) {
		/* Forbid entries can be retired real passwords: wipe them too. */
		sodium_memzero(d->v[i].s, d->v[i].len);
		free(d->v[i].s);
	}
	free(d->v);
	free(d);
}

/* ---- the hashed corpus ---------------------------------------------------- */

/*
 * The corpus holds 64-bit hashes, not the entries: a value is refused when
 * its hash is one of them. A value that is not an entry has the same hash as
 * one of n entries with odds of n / 2^64: for 200 000 entries, 1e-14 per
 * value checked, far below the odds of any other rule here (and the hash is
 * keyed SipHash-2-4, so the odds are those of a random function). The key
 * is public and only fixes the function: someone who could craft a
 * collision could only get their own value refused.
 */
_Static_assert(sizeof(((struct rk_corpus *)0)->key) == crypto_shorthash_KEYBYTES,
	       "corpus key size");
#define CORPUS_ENTRY_MAX	1024	/* tools/gen_known_secrets.c ENTRY_MAX */

void
rk_defaults_set_corpus(struct rk_defaults *d, const struct rk_corpus *c)
{
	assert(d != NULL);
	d->corpus = c;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

int
rk_corpus_contains(const struct rk_corpus *c, const unsigned char *v, size_t len)
{
	unsigned char buf[CORPUS_ENTRY_MAX], out[crypto_shorthash_BYTES];
	uint64_t h = 0;

	/* The generator skips longer entries and ones with NUL: neither can match. */
	if (c == NULL || c->n == 0 || len == 0 || len > sizeof(buf) || memchr(v, '\0', len))
		return 0;
	for (size_t i = 0; i < len; i++)
		buf[i] = lower(v[i]);
	crypto_shorthash(out, buf, len, c->key);
	/* The copy on the stack is the value, folded: wipe it. */
	sodium_memzero(buf, len);
	for (int i = 7; i >= 0; i--)
		h = (h << 8) | out[i];
	return bsearch(&h, c->hashes, c->n, sizeof(h), cmp_u64) != NULL;
}

/*
 * Linear on purpose: the built-in list is a few hundred short entries, the
 * length test rejects almost all of them before a byte is compared, and a
 * sorted index would have to be rebuilt after every rk_defaults_add. The
 * large corpus is the hashed one above.
 */
static int
defaults_match(const struct rk_defaults *d, struct view v)
{
	if (d == NULL)
		return 0;
	if (rk_corpus_contains(d->corpus, v.p, v.n))
		return 1;
	for (size_t i = 0; i < d->n; i++) {
		const struct entry *e = &d->v[i];

		if (e->prefix ? v.n >= e->len : v.n == e->len)
			if (eq_fold(v.p, e->s, e->len))
				return 1;
	}
	return 0;
}

/* ---- placeholders ------------------------------------------------------- */

enum ph_kind { PH_NONE, PH_TEMPLATE, PH_FILLER, PH_MARKER, PH_PHRASE };

static int
is_upper(unsigned char c)
{
	return c >= 'A' && c <= 'Z';
}

/*
 * Written by a person: words and numbers between separators ("your-api-key",
 * "TODO: set before deploy", "SECRET_KEY_2", "ApiKey"), never a run that
 * mixes letters and digits, holds other symbols, or is cased at random (two
 * capitals in a row in a run that is not all capitals). Random text of 20
 * characters or more passes with odds below 1e-6, which is what lets the
 * short-word rules below stay quiet on generated values: without it,
 * "todo_", "YOUR_" or "XXXx." at the start of random base64url or passwords
 * showed up 5 times in 45 million.
 */
static int
is_wordy(struct view v)
{
	size_t i = 0;

	while (i < v.n) {
		if (is_sep(v.p[i])) {
			i++;
			continue;
		}
		if (is_alpha(v.p[i])) {
			size_t start = i, upper = 0;
			int adjacent = 0;

			for (; i < v.n && is_alpha(v.p[i]); i++) {
				upper += is_upper(v.p[i]);
				adjacent |= i > start && is_upper(v.p[i]) && is_upper(v.p[i - 1]);
			}
			if (adjacent && upper != i - start)
				return 0;
		} else if (is_digit(v.p[i]))
			while (i < v.n && is_digit(v.p[i]))
				i++;
		else
			return 0;
		if (i < v.n && !is_sep(v.p[i]))
			return 0;
	}
	return 1;
}

static int
is_ident(struct view v)
{
	if (v.n == 0 || is_digit(v.p[0]))
		return 0;
	for (size_t i = 0; i < v.n; i++)
		if (!is_alnum(v.p[i]) && v.p[i] != '_')
			return 0;
	return 1;
}

static int
wrapped(struct view v, const char *open, const char *close, struct view *inner)
{
	size_t a = strlen(open), b = strlen(close);

	if (v.n <= a + b || memcmp(v.p, open, a) != 0 || memcmp(v.p + v.n - b, close, b) != 0)
		return 0;
	inner->p = v.p + a;
	inner->n = v.n - a - b;
	return 1;
}

/*
 * A variable name as people write them: SECRET_KEY, db_password, API2. Every
 * run of letters is one case, which random text almost never manages (a
 * generated password "__" + 28 letters and '_' + "__" turned up once in 40
 * million when mixed case still counted).
 */
static int
is_snake(struct view v)
{
	if (!is_ident(v))
		return 0;
	for (size_t i = 0; i < v.n; i++) {
		int upper = 0, lwr = 0;

		while (i < v.n && is_alpha(v.p[i])) {
			upper |= is_upper(v.p[i]);
			lwr |= !is_upper(v.p[i]);
			i++;
		}
		if (upper && lwr)
			return 0;
	}
	return 1;
}

/*
 * A command line ("$(cat /run/secrets/db)"): plain characters and at least
 * one space between a command and its argument, which generated passwords
 * never hold (a full printable alphabet without the space made one such
 * "$(...)" in 30 million).
 */
static int
is_command(struct view v)
{
	int space = 0;

	for (size_t i = 0; i < v.n; i++) {
		unsigned char c = v.p[i];

		/* strchr finds the terminator: a NUL byte must not count as plain. */
		if (!is_alnum(c) && !is_sep(c) && (c == '\0' || strchr("/=+@,", c) == NULL))
			return 0;
		space |= c == ' ';
	}
	return space;
}

/* NAME, or NAME, a shell operator and words: ${NAME:-dev}, ${NAME:?must be set}. */
static int
is_var_ref(struct view v)
{
	size_t i = 0;

	while (i < v.n && (is_alnum(v.p[i]) || v.p[i] == '_'))
		i++;
	if (!is_ident((struct view){ v.p, i }))
		return 0;
	if (i == v.n)
		return 1;
	if (v.p[i] == ':')
		i++;
	if (i == v.n || v.p[i] == '\0' || strchr("-?=+", v.p[i]) == NULL)
		return 0;
	i++;
	return is_wordy((struct view){ v.p + i, v.n - i });
}

/*
 * Unrendered templates and unexpanded variables, as the whole value. Base64
 * and rekey's password alphabet hold none of these frames but "__"; a
 * password from a full printable alphabet (84-94 symbols) opens and closes
 * with "${" + "}" once in 600 000, so every frame also needs an inside that
 * reads like a name, words, a command or (for "{{ .Values.x }}") has a
 * space. Random text without spaces reads like words (is_wordy) with odds
 * below 1e-5, like a one-case name (is_snake) far below.
 */
static int
is_template(struct view v)
{
	struct view in;

	if (wrapped(v, "{{", "}}", &in))
		return is_wordy(in) || memchr(in.p, ' ', in.n) != NULL;
	if (wrapped(v, "${", "}", &in))
		return is_var_ref(in);
	if (wrapped(v, "$(", ")", &in))
		return is_command(in);
	if (wrapped(v, "#{", "}", &in) || wrapped(v, "<", ">", &in))
		return is_wordy(in);
	if (wrapped(v, "%", "%", &in) || wrapped(v, "__", "__", &in))
		return is_snake(in);
	if (v.n >= 2 && v.p[0] == '$') {
		in = (struct view){ v.p + 1, v.n - 1 };
		return is_snake(in);
	}
	return 0;
}

static size_t
run_at(struct view v, size_t i, int (*pred)(unsigned char))
{
	size_t j = i;

	while (j < v.n && pred(v.p[j]))
		j++;
	return j - i;
}

static int
is_x(unsigned char c)
{
	return c == 'x' || c == 'X';
}

/*
 * Filler: x's, one character repeated, masked values. A leading "xxx" is
 * not enough on its own: one random base64url value in a million starts
 * with "xXx-" (measured: 4 in 3 million), so it counts in a wordy value
 * when a separator or a second run of three x's follows ("XXX_REPLACE_ME",
 * "xxx-your-key", "xxxx-xxxx-1234"). Further in, only
 * a run of six of the same x or star counts ("sk_live_xxxxxxxx"): a
 * mixed-case run like "xxxXxx" turned up once in 5 million random base64
 * values, one case has odds of 1e-9 (1e-11 for a star in a 90-symbol
 * alphabet), as do values that are half stars.
 */
static int
is_filler(struct view v)
{
	size_t k, lead, stars = 0;

	if (v.n == 0)
		return 0;
	lead = run_at(v, 0, is_x);
	if (lead == v.n)
		return 1;
	if (lead >= 3 && is_wordy(v)) {
		if (is_sep(v.p[lead]))
			return 1;
		for (size_t i = lead; i < v.n; i++)
			if (run_at(v, i, is_x) >= 3)
				return 1;
	}
	for (size_t i = 0; i < v.n; i++) {
		size_t same = 1;

		while (i + same < v.n && v.p[i + same] == v.p[i])
			same++;
		if ((is_x(v.p[i]) || v.p[i] == '*') && same >= 6)
			return 1;
		if (v.p[i] == '*')
			stars += same;
		i += same - 1;
	}
	/* "****1234": a dashboard's masked copy, half stars or more. */
	if (stars >= 4 && stars * 2 >= v.n)
		return 1;
	/* One character repeated, by code point so "•••" counts; "ab" is too short to say. */
	k = char_len(v.p, v.n);
	if (v.n / k >= 3 && v.n % k == 0) {
		size_t i;

		for (i = k; i < v.n; i += k)
			if (k == 1 ? lower(v.p[i]) != lower(v.p[0]) : memcmp(v.p + i, v.p, k) != 0)
				break;
		if (i >= v.n)
			return 1;
	}
	/* Masked with bullets (U+2022), as password fields and dashboards show them. */
	for (size_t i = 0; i + 9 <= v.n; i++)
		if (memcmp(v.p + i, "\xe2\x80\xa2\xe2\x80\xa2\xe2\x80\xa2", 9) == 0)
			return 1;
	return 0;
}

/*
 * Does `word` occur at v[i..] when separators are skipped, written the way
 * people write it? "Please-Change_Me" and "PLACEHOLDER" contain a marker,
 * "nOtreaL" in the middle of random base64 (found once in 40 million) does
 * not. `word` is lower case except for capitals where its own words start
 * ("changeMe"); a letter may be a capital there, at the start of the match,
 * after a separator, or anywhere if every matched letter is one. Random
 * letters are cased like that with odds of about 1/30 for 7 letters.
 */
static int
match_marker(struct view v, size_t i, const char *word)
{
	const char *w = word;
	int all_upper = 1, stray_upper = 0;

	if (i < v.n && is_sep(v.p[i]))
		return 0;
	for (size_t j = i; *w != '\0'; j++) {
		unsigned char c;

		if (j == v.n)
			return 0;
		c = v.p[j];
		if (is_sep(c))
			continue;
		if (lower(c) != lower((unsigned char)*w))
			return 0;
		if (is_upper(c)) {
			if (j != i && !is_upper((unsigned char)*w) && !is_sep(v.p[j - 1]))
				stray_upper = 1;
		} else if (is_alpha(c)) {
			all_upper = 0;
		}
		w++;
	}
	return all_upper || !stray_upper;
}

static int
contains_marker(struct view v, const char *word)
{
	for (size_t i = 0; i < v.n; i++)
		if (match_marker(v, i, word))
			return 1;
	return 0;
}

/*
 * `word` stands alone: each side is the value's edge or a separator (both
 * edges: the whole value). Three-letter words accept only a space or ':'
 * beside them, as in "TBD: ask ops": '-' and '_' are base64url symbols and
 * "tbd-" opens one random base64url value in a million.
 */
static int
has_token(struct view v, const char *word)
{
	size_t n = strlen(word);

	for (size_t i = 0; i + n <= v.n; i++) {
		int left = i == 0, right = i + n == v.n;

		if (!left)
			left = n > 3 ? is_sep(v.p[i - 1]) : v.p[i - 1] == ' ' || v.p[i - 1] == ':';
		if (!right)
			right = n > 3 ? is_sep(v.p[i + n]) : v.p[i + n] == ' ' || v.p[i + n] == ':';
		if (left && right && eq_fold(v.p + i, word, n))
			return 1;
	}
	return 0;
}

/*
 * Marker words. Seven letters or more may appear anywhere (random base64
 * holds a given 7-letter word, cased as match_marker wants, with odds of
 * 4e-11); shorter ones must stand alone in a wordy value. "your-..." is how
 * documentation says "put yours here"; "your" and a separator also needs a
 * wordy value, "yourKey" and longer spellings do not.
 */
static int
is_marker(struct view v)
{
	static const char *const anywhere[] = {
		"changeMe", "changeThis", "replaceMe", "replaceThis", "placeHolder",
		"example", "redacted", "insertYour", "enterYour", "goesHere", "fillMeIn",
		"notReal", "notASecret",
	};
	static const char *const alone[] = { "todo", "fixme", "tbd", "tba", "dummy", "xxx" };
	static const char *const your[] = { "your-", "your_", "your ", "your." };
	static const char *const your_long[] = {
		"yourSecret", "yourPassword", "yourKey", "yourToken", "yourApiKey",
	};

	for (size_t i = 0; i < sizeof(anywhere) / sizeof(anywhere[0]); i++)
		if (contains_marker(v, anywhere[i]))
			return 1;
	for (size_t i = 0; i < sizeof(your_long) / sizeof(your_long[0]); i++)
		if (match_marker(v, 0, your_long[i]))
			return 1;
	if (!is_wordy(v))
		return 0;
	for (size_t i = 0; i < sizeof(your) / sizeof(your[0]); i++)
		if (starts_with(v, your[i]))
			return 1;
	for (size_t i = 0; i < sizeof(alone) / sizeof(alone[0]); i++)
		if (has_token(v, alone[i]))
			return 1;
	return 0;
}

/*
 * Stand-in phrases: a value made only of words people write where a real
 * value belongs ("demo-secret-change-in-production", "ChangeMeInProduction",
 * "your_api_key_here", "insecure.dev.key", "SuperSecretKey123"), whatever
 * its length. The rule:
 * - only ASCII letters, digits and separators (- _ . space :);
 * - words are split at separators and at case changes ("APIKey" is "API",
 *   "Key"), and every word is one of `vocab` below, in any case;
 * - at least two words;
 * - a run of digits may end the value ("...Key123") or stand between
 *   separators ("key-2024-test"), never touch a word inside it: random hex
 *   is made of a-f and digits, and "a", "be" would otherwise read as words.
 * Only this vocabulary counts, so passphrases of other words
 * ("correct-horse-battery-staple-orbit") are not placeholders: a diceware
 * word (EFF's long list) is in the vocabulary with odds under 1/100, four
 * of them with odds under 1e-8. Random text fails the rule at its first
 * word that is not in the list: a base64 value of 16 characters splits into
 * several pieces such as "Xk" or "pL", each in the list with odds of about
 * 1e-3, and rarely passes the digit rule. Measured: a million each of
 * random base64url (6 to 32 bytes), hex (4 to 19 bytes) and alphanumeric
 * values (8 to 20 characters) were all accepted.
 */
static const char *const vocab[] = {
		"a", "access", "admin", "an", "and", "any", "api", "app", "application", "at",
		"auth", "bar", "baz", "be", "before", "but", "change", "changed", "changeit",
		"changeme", "char", "characters", "chars", "client", "config", "cookie", "db",
		"default", "demo", "deploy", "deployment", "dev", "development", "do", "dont",
		"dummy", "encryption", "enter", "example", "fake", "fill", "fixme", "foo", "for",
		"from", "generate", "generated", "goes", "here", "in", "insecure", "insert", "is",
		"it", "jwt", "key", "keys", "least", "local", "long", "me", "must", "my", "new",
		"not", "now", "of", "only", "or", "our", "own", "pass", "passphrase", "password",
		"passwords", "placeholder", "please", "private", "prod", "production", "put", "qa",
		"random", "real", "replace", "sample", "secret", "secrets", "secure", "session",
		"set", "should", "signing", "so", "some", "stage", "staging", "string", "super",
		"temp", "temporary", "test", "testing", "tests", "the", "this", "to", "todo",
		"token", "tokens", "unique", "unsafe", "update", "updated", "use", "used", "value",
		"very", "with", "xxx", "you", "your", "yours",
};

static int
cmp_word(const void *key, const void *elem)
{
	return strcmp(key, *(const char *const *)elem);
}

static int
in_vocab(const unsigned char *p, size_t n)
{
	char w[24];

	if (n >= sizeof(w))
		return 0;
	for (size_t i = 0; i < n; i++)
		w[i] = (char)lower(p[i]);
	w[n] = '\0';
	return bsearch(w, vocab, sizeof(vocab) / sizeof(vocab[0]), sizeof(vocab[0]), cmp_word) != NULL;
}

/* Length of the word at p[0..n) (letters only): Capitalised, lower case, or an acronym. */
static size_t
word_len(const unsigned char *p, size_t n)
{
	size_t k = 1;

	if (is_upper(p[0]) && n > 1 && is_upper(p[1])) {
		/* "APIKey": the acronym ends before the capital that starts "Key". */
		while (k < n && is_upper(p[k]))
			k++;
		if (k < n && is_alpha(p[k]))
			k--;
		return k;
	}
	while (k < n && is_alpha(p[k]) && !is_upper(p[k]))
		k++;
	return k;
}

static int
is_phrase(struct view v)
{
	size_t i = 0, words = 0;

	while (i < v.n) {
		unsigned char c = v.p[i];

		if (is_sep(c)) {
			i++;
		} else if (is_alpha(c)) {
			size_t k = word_len(v.p + i, v.n - i);

			if (!in_vocab(v.p + i, k))
				return 0;
			words++;
			i += k;
		} else if (is_digit(c)) {
			size_t start = i;

			while (i < v.n && is_digit(v.p[i]))
				i++;
			if (i < v.n && !(is_sep(v.p[i]) && (start == 0 || is_sep(v.p[start - 1]))))
				return 0;
		} else {
			return 0;
		}
	}
	return words >= 2;
}

static enum ph_kind
placeholder_kind(struct view v)
{
	if (is_template(v))
		return PH_TEMPLATE;
	if (is_filler(v))
		return PH_FILLER;
	if (is_marker(v))
		return PH_MARKER;
	if (is_phrase(v))
		return PH_PHRASE;
	return PH_NONE;
}

/* ---- entropy ------------------------------------------------------------ */

double
rk_check_entropy_bits(const unsigned char *v, size_t len)
{
	unsigned char *buf;
	size_t i = 0, o = 0;
	double bits;

	if (v == NULL || len == 0)
		return 0.0;
	if (len > ZXCVBN_MAX_INPUT)
		len = ZXCVBN_MAX_INPUT;
	/* The copy is secret too: guarded, locked, wiped by sodium_free. */
	if ((buf = sodium_malloc(len + 1)) == NULL)
		return 0.0;	/* unknown strength counts as weak: the check fails closed */
	while (i < len) {
		uint32_t cp;
		size_t k = utf8_seq(v + i, len - i, &cp);

		if (v[i] == '\0')
			buf[o++] = 0x80;	/* see the header comment: NUL is a byte */
		else if (k > 1)
			buf[o++] = (unsigned char)(0x80 | (cp & 0x7f));
		else
			buf[o++] = v[i];
		i += k > 0 ? k : 1;
	}
	buf[o] = '\0';
	bits = ZxcvbnMatch((const char *)buf, NULL, NULL);
	sodium_free(buf);
	return bits;
}

/* ---- the checks --------------------------------------------------------- */

static void
verdict(struct rk_check_result *r, int ok)
{
	r->ok = ok;
	r->reason[0] = '\0';
}

static void
fail(struct rk_check_result *r, const char *fmt, ...) RK_PRINTF(2, 3);

static void
fail(struct rk_check_result *r, const char *fmt, ...)
{
	va_list ap;

	r->ok = 0;
	va_start(ap, fmt);
	vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
	va_end(ap);
}

static const char *
placeholder_reason(enum ph_kind k)
{
	switch (k) {
	case PH_TEMPLATE:
		return "looks like an unrendered template or an unexpanded variable reference; "
		       "render or expand it before startup";
	case PH_FILLER:
		return "is filler (x's, one repeated character or a masked value); " FIX;
	case PH_MARKER:
		return "contains a word people use to mark a value still to be filled in; " FIX;
	case PH_PHRASE:
		return "is made of stand-in words only, with no generated part; " FIX;
	case PH_NONE:
		break;
	}
	return "";
}

int
rk_check_value(const unsigned char *v, size_t len, const struct rk_value_rules *rules,
	       struct rk_check_result res[RK_CHECK_VALUE_COUNT])
{
	static const struct rk_value_rules none;
	struct view t, u;
	enum ph_kind ph;
	int quoted, failed = 0;

	assert(res != NULL);
	if (rules == NULL)
		rules = &none;
	for (int i = 0; i < RK_CHECK_VALUE_COUNT; i++) {
		res[i].id = (enum rk_check_id)i;
		verdict(&res[i], -1);
	}

	t = trim_ws((struct view){ v, v != NULL ? len : 0 });
	u = t;
	quoted = unquote(&u);
	if (v == NULL) {
		fail(&res[RK_CHECK_PRESENT], "is not set; " FIX);
		return 1;
	}
	if (u.n == 0) {
		fail(&res[RK_CHECK_PRESENT], "is empty, blank or only quotes; " FIX);
		return 1;
	}
	verdict(&res[RK_CHECK_PRESENT], 1);

	if (rules->defaults != NULL) {
		if (defaults_match(rules->defaults, t) ||
		    (quoted && defaults_match(rules->defaults, u)))
			fail(&res[RK_CHECK_DEFAULT], "matches an entry of the built-in list of "
			     "publicly known values, which anyone would try first; " FIX);
		else
			verdict(&res[RK_CHECK_DEFAULT], 1);
	}
	if (rules->forbid != NULL) {
		if (defaults_match(rules->forbid, t) ||
		    (quoted && defaults_match(rules->forbid, u)))
			fail(&res[RK_CHECK_FORBIDDEN], "matches an entry of the policy's forbid "
			     "list; " FIX);
		else
			verdict(&res[RK_CHECK_FORBIDDEN], 1);
	}

	ph = placeholder_kind(t);
	if (ph == PH_NONE && quoted)
		ph = placeholder_kind(u);
	if (ph != PH_NONE)
		fail(&res[RK_CHECK_PLACEHOLDER], "%s", placeholder_reason(ph));
	else
		verdict(&res[RK_CHECK_PLACEHOLDER], 1);

	if (rules->min_length > 0) {
		size_t n = count_chars(t);

		if (n < rules->min_length)
			fail(&res[RK_CHECK_LENGTH], "is %zu character%s long, the policy requires "
			     "at least %zu; " FIX, n, n == 1 ? "" : "s", rules->min_length);
		else
			verdict(&res[RK_CHECK_LENGTH], 1);
	}
	if (rules->min_entropy_bits > 0) {
		double bits = rk_check_entropy_bits(t.p, t.n);

		/* Printed rounded down, so "63.9" never reads as meeting a bar of 64. */
		if (bits < rules->min_entropy_bits)
			fail(&res[RK_CHECK_ENTROPY], "has an estimated strength of %.1f bits, the "
			     "policy requires at least %g; " FIX,
			     floor(bits * 10.0) / 10.0, rules->min_entropy_bits);
		else
			verdict(&res[RK_CHECK_ENTROPY], 1);
	}

	for (int i = 0; i < RK_CHECK_VALUE_COUNT; i++)
		failed += res[i].ok == 0;
	return failed;
}
