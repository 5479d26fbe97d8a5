/*
 * Build-time generator of the known-secrets corpus (build/gen/known_secrets.c).
 *
 * Reads text lists of publicly known secret values and emits a sorted array
 * of 64-bit SipHash-2-4 hashes (libsodium's crypto_shorthash, under a fixed
 * key that is emitted too, so the lookup in src/check.c cannot disagree with
 * the build). The guard then answers "is this a known value?" by one hash
 * and a binary search over const data: nothing is parsed at start-up, and
 * the list costs 8 bytes an entry in the binary.
 *
 *   gen-known-secrets [-x FILE]... [-c FILE]... [-r FILE]... > known_secrets.c
 *
 *   -c FILE  a list of our own: '#' starts a comment line, an entry
 *            "hex:0201..." is given as bytes (for values holding control
 *            characters), a trailing '*' (a prefix rule) is an error, since
 *            prefix rules stay in policy/known-defaults.txt.
 *   -r FILE  a third-party list taken as it is: every line is an entry, a
 *            leading '#' included (it is a character of some real secret).
 *   -x FILE  policy/known-defaults.txt: its whole-value entries are matched
 *            there already, so they are left out here (prefix rules and
 *            comments are skipped).
 *
 * Each entry is normalised as src/check.c compares values: a UTF-8 BOM at
 * the start of a file is dropped, surrounding whitespace (including the CR of
 * a CRLF file) is trimmed, ASCII letters are folded to lower case. Empty
 * lines, lines holding a NUL byte (a value checked by the guard can hold
 * one, but then never matches a list entry) and entries longer than
 * ENTRY_MAX bytes are skipped. Duplicates, within and across lists, count
 * once. The source name of a list is its file name without directory and
 * extension; per source the generator records how many entries it read and
 * how many were new, so tests and `make bench` can say what is built in.
 *
 * Also writes a one-line summary to the file named by -s (for `make bench`).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>

#define ENTRY_MAX	1024
#define FILE_MAX	(256u << 20)
#define SOURCES_MAX	64

/* Must equal nothing in particular; it is public, and only fixes the hash. */
static const unsigned char key[crypto_shorthash_KEYBYTES] = "rekey-corpus-v1";

struct item {
	uint64_t h;
	unsigned src;	/* index into sources; SOURCES_MAX marks an excluded hash */
};

struct source {
	char name[64];
	size_t read, added;
};

static struct item *items;
static size_t nitems, capitems;
static struct source sources[SOURCES_MAX];
static unsigned nsources;

static int
is_ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static void
die(const char *what, const char *path)
{
	fprintf(stderr, "gen-known-secrets: %s: %s\n", path, what);
	exit(1);
}

static uint64_t
hash_entry(const unsigned char *p, size_t n)
{
	unsigned char buf[ENTRY_MAX], out[crypto_shorthash_BYTES];
	uint64_t h = 0;

	for (size_t i = 0; i < n; i++)
		buf[i] = (p[i] >= 'A' && p[i] <= 'Z') ? (unsigned char)(p[i] - 'A' + 'a') : p[i];
	crypto_shorthash(out, buf, n, key);
	/* Little-endian, as src/check.c reads it, whatever the host. */
	for (int i = 7; i >= 0; i--)
		h = (h << 8) | out[i];
	return h;
}

static void
push(uint64_t h, unsigned src)
{
	if (nitems == capitems) {
		capitems = capitems ? capitems * 2 : 65536;
		if ((items = realloc(items, capitems * sizeof(*items))) == NULL)
			die("out of memory", "-");
	}
	items[nitems].h = h;
	items[nitems].src = src;
	nitems++;
}

static int
hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t n = 0, cap = 0, r;

	if (f == NULL)
		die(strerror(errno), path);
	do {
		if (cap - n < 65536) {
			cap = cap ? cap * 2 : 1 << 20;
			if (cap > FILE_MAX + (size_t)65536 || (buf = realloc(buf, cap)) == NULL)
				die("too large or out of memory", path);
		}
		r = fread(buf + n, 1, cap - n, f);
		n += r;
	} while (r > 0);
	if (ferror(f))
		die("read error", path);
	fclose(f);
	*len = n;
	return buf;
}

static void
source_name(const char *path, char *out, size_t n)
{
	const char *b = strrchr(path, '/'), *dot;
	size_t k;

	b = b ? b + 1 : path;
	dot = strrchr(b, '.');
	k = dot && dot != b ? (size_t)(dot - b) : strlen(b);
	if (k >= n)
		k = n - 1;
	memcpy(out, b, k);
	out[k] = '\0';
	for (size_t i = 0; i < k; i++)
		if (!((out[i] >= 'a' && out[i] <= 'z') || (out[i] >= '0' && out[i] <= '9') ||
		      out[i] == '-' || out[i] == '_'))
			out[i] = '_';	/* it goes into a C string literal */
}

/* mode: 'c' ours, 'r' raw, 'x' exclude. */
static void
read_list(const char *path, int mode)
{
	size_t len, pos = 0, lineno = 0;
	char *text = slurp(path, &len);
	unsigned src = SOURCES_MAX;
	unsigned char dec[ENTRY_MAX];

	if (mode != 'x') {
		if (nsources == SOURCES_MAX)
			die("too many lists", path);
		src = nsources++;
		source_name(path, sources[src].name, sizeof(sources[src].name));
	}
	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
		pos = 3;
	while (pos < len) {
		const unsigned char *p = (const unsigned char *)text + pos, *nl;
		size_t n = len - pos;

		lineno++;
		if ((nl = memchr(p, '\n', n)) != NULL)
			n = (size_t)(nl - p);
		pos += n + (nl != NULL);
		while (n > 0 && is_ws(p[0]))
			p++, n--;
		while (n > 0 && is_ws(p[n - 1]))
			n--;
		if (n == 0 || n > ENTRY_MAX || memchr(p, '\0', n) != NULL)
			continue;
		if (mode != 'r' && p[0] == '#')
			continue;
		if (mode == 'x' && p[n - 1] == '*')
			continue;	/* a prefix rule: matched by the parsed list only */
		if (mode == 'c' && p[n - 1] == '*') {
			fprintf(stderr, "gen-known-secrets: %s:%zu: prefix rules belong in "
				"policy/known-defaults.txt\n", path, lineno);
			exit(1);
		}
		if (mode == 'c' && n > 4 && memcmp(p, "hex:", 4) == 0) {
			size_t k = 0;

			for (size_t i = 4; i < n; i += 2) {
				int hi = hexval(p[i]), lo = i + 1 < n ? hexval(p[i + 1]) : -1;

				if (hi < 0 || lo < 0 || k == sizeof(dec) || (hi == 0 && lo == 0)) {
					fprintf(stderr, "gen-known-secrets: %s:%zu: bad hex: entry\n",
						path, lineno);
					exit(1);
				}
				dec[k++] = (unsigned char)(hi << 4 | lo);
			}
			p = dec;
			n = k;
			while (n > 0 && is_ws(p[0]))
				p++, n--;
			while (n > 0 && is_ws(p[n - 1]))
				n--;
			if (n == 0)
				continue;
		}
		push(hash_entry(p, n), src);
		if (src != SOURCES_MAX)
			sources[src].read++;
	}
	free(text);
}

/* By hash, then excluded first, then by source: the first of a hash wins. */
static int
cmp_item(const void *a, const void *b)
{
	const struct item *x = a, *y = b;
	unsigned xs = x->src == SOURCES_MAX ? 0 : x->src + 1;
	unsigned ys = y->src == SOURCES_MAX ? 0 : y->src + 1;

	if (x->h != y->h)
		return x->h < y->h ? -1 : 1;
	return xs < ys ? -1 : xs > ys;
}

int
main(int argc, char **argv)
{
	const char *summary = NULL;
	size_t kept = 0, excluded = 0;
	FILE *s;

	if (sodium_init() < 0)
		die("sodium_init failed", "-");
	for (int i = 1; i < argc; i++) {
		if (i + 1 >= argc || argv[i][0] != '-' || strlen(argv[i]) != 2 ||
		    strchr("crxs", argv[i][1]) == NULL) {
			fprintf(stderr, "usage: gen-known-secrets [-s SUMMARY] [-x FILE]... "
				"[-c FILE]... [-r FILE]...\n");
			return 2;
		}
		if (argv[i][1] == 's')
			summary = argv[i + 1];
		else
			read_list(argv[i + 1], argv[i][1]);
		i++;
	}
	if (nitems > 0)
		qsort(items, nitems, sizeof(*items), cmp_item);

	printf("/* Generated by tools/gen_known_secrets.c from the known-secrets lists. Do not edit. */\n"
	       "#include <stddef.h>\n#include <stdint.h>\n#include \"rekey/check.h\"\n"
	       "#include \"rekey/embedded.h\"\n\n");
	printf("static const uint64_t hashes[] = {\n");
	for (size_t i = 0; i < nitems;) {
		size_t j = i + 1;

		while (j < nitems && items[j].h == items[i].h)
			j++;
		/* The first item of a hash decides: an excluded one sorts first. */
		if (items[i].src == SOURCES_MAX) {
			excluded += items[j - 1].src != SOURCES_MAX;
		} else {
			sources[items[i].src].added++;
			printf("%s0x%016llxu,", kept % 4 == 0 ? "\t" : " ",
			       (unsigned long long)items[i].h);
			if (++kept % 4 == 0)
				printf("\n");
		}
		i = j;
	}
	if (kept == 0)
		printf("\t0");	/* C has no empty array; n says 0 */
	printf("\n};\n\nstatic const struct rk_corpus_source sources[] = {\n");
	for (unsigned i = 0; i < nsources; i++)
		printf("\t{ \"%s\", %zu, %zu },\n", sources[i].name, sources[i].read,
		       sources[i].added);
	printf("\t{ NULL, 0, 0 },\n};\n\nconst struct rk_corpus rk_known_secrets = {\n\t.hashes = hashes,\n"
	       "\t.n = %zu,\n\t.key = {", kept);
	for (size_t i = 0; i < sizeof(key); i++)
		printf("%s0x%02x", i ? ", " : " ", key[i]);
	printf(" },\n\t.sources = sources,\n};\n");
	if (fflush(stdout) != 0 || ferror(stdout))
		die("write error", "stdout");

	if (summary != NULL) {
		if ((s = fopen(summary, "w")) == NULL)
			die(strerror(errno), summary);
		fprintf(s, "%zu entries (", kept);
		for (unsigned i = 0; i < nsources; i++)
			fprintf(s, "%s%s %zu", i ? ", " : "", sources[i].name, sources[i].added);
		fprintf(s, "%s; %zu already in policy/known-defaults.txt)\n", nsources ? "" : "none",
			excluded);
		if (fclose(s) != 0)
			die("write error", summary);
	}
	free(items);
	return 0;
}
