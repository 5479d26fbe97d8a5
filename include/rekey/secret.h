/*
 * Secret values. The bytes live only in sodium_malloc'd memory (guard pages,
 * mlock'd, wiped on free). A secret is always NUL-terminated one byte past its
 * length so text values can be handed to APIs that want C strings; the length
 * is the authority, values may contain NUL bytes.
 */
#ifndef REKEY_SECRET_H
#define REKEY_SECRET_H

#include <stddef.h>
#include "rekey/error.h"

struct rk_secret;

#define RK_SECRET_MAX (16u << 20)	/* no secret value is larger than 16 MiB */

/* A zero-filled secret of len bytes (capacity len). */
int rk_secret_new(struct rk_secret **out, size_t len, struct rk_error *err) RK_WARN_UNUSED;
/* A copy of buf[0..len). The caller still wipes its own copy. */
int rk_secret_from(struct rk_secret **out, const void *buf, size_t len,
		   struct rk_error *err) RK_WARN_UNUSED;
unsigned char *rk_secret_data(struct rk_secret *s);
const unsigned char *rk_secret_cdata(const struct rk_secret *s);
/* The value as a C string (valid while s lives). */
const char *rk_secret_str(const struct rk_secret *s);
size_t rk_secret_len(const struct rk_secret *s);
/* Shrinks the length (never grows past capacity); wipes the cut tail. */
void rk_secret_truncate(struct rk_secret *s, size_t len);
/* Constant-time equality. */
int rk_secret_equal(const struct rk_secret *a, const struct rk_secret *b);
/* Wipes and frees; accepts NULL. */
void rk_secret_free(struct rk_secret *s);

/* Wipes then frees a heap buffer that held secret bytes; accepts NULL. */
void rk_wipe_free(void *p, size_t len);
/* Wipes then frees a NUL-terminated heap string; accepts NULL. */
void rk_wipe_free_str(char *s);

#endif
