/*
 * Files compiled into the binary (shipped policies, known-defaults list) and
 * the hashed known-secrets corpus.
 */
#ifndef REKEY_EMBEDDED_H
#define REKEY_EMBEDDED_H

#include <stddef.h>

struct rk_embedded_file {
	const char *path;	/* "policy/default.yaml" */
	const char *data;	/* NUL-terminated */
	size_t len;
};

/* Terminated by an entry whose path is NULL. */
extern const struct rk_embedded_file rk_embedded_files[];

/* The known-secrets corpus, generated at build time (build/gen/known_secrets.c). */
struct rk_corpus;
extern const struct rk_corpus rk_known_secrets;

/* The embedded file with this path, or NULL. */
const struct rk_embedded_file *rk_embedded_find(const char *path);

#endif
