/*
 * Secret values in sodium_malloc'd memory. Every copy of a value that leaves
 * this type (an HTTP body, a JSON string) is wiped by its owner with
 * rk_wipe_free() or sodium_memzero().
 */
#include <string.h>
#include <stdlib.h>
#include <sodium.h>

#include "rekey/secret.h"

struct rk_secret {
	size_t len;
	size_t cap;
	unsigned char *data;	/* sodium_malloc(cap + 1) */
};

int
rk_secret_new(struct rk_secret **out, size_t len, struct rk_error *err)
{
	struct rk_secret *s;

	if (len > RK_SECRET_MAX)
		return rk_error_set(err, RK_EINVAL, "a value of %zu bytes is over the limit of %u",
				    len, RK_SECRET_MAX);
	/* The struct holds no secret bytes: plain heap; only the data is guarded. */
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	s->len = s->cap = len;
	if ((s->data = sodium_malloc(len + 1)) == NULL) {
		free(s);
		return rk_error_set(err, RK_ENOMEM, "out of secure memory (%zu bytes)", len);
	}
	sodium_memzero(s->data, len + 1);
	*out = s;
	return 0;
}

int
rk_secret_from(struct rk_secret **out, const void *buf, size_t len, struct rk_error *err)
{
	int r;

	if ((r = rk_secret_new(out, len, err)) < 0)
		return r;
	if (len > 0)
		memcpy((*out)->data, buf, len);
	return 0;
}

unsigned char *
rk_secret_data(struct rk_secret *s)
{
	return s->data;
}

const unsigned char *
rk_secret_cdata(const struct rk_secret *s)
{
	return s->data;
}

const char *
rk_secret_str(const struct rk_secret *s)
{
	return (const char *)s->data;
}

size_t
rk_secret_len(const struct rk_secret *s)
{
	return s->len;
}

void
rk_secret_truncate(struct rk_secret *s, size_t len)
{
	if (len >= s->len)
		return;
	sodium_memzero(s->data + len, s->cap + 1 - len);
	s->len = len;
}

int
rk_secret_equal(const struct rk_secret *a, const struct rk_secret *b)
{
	if (a->len != b->len)
		return 0;
	return sodium_memcmp(a->data, b->data, a->len) == 0;
}

void
rk_secret_free(struct rk_secret *s)
{
	if (s == NULL)
		return;
	sodium_free(s->data);	/* sodium_free wipes before unmapping */
	free(s);
}

void
rk_wipe_free(void *p, size_t len)
{
	if (p == NULL)
		return;
	sodium_memzero(p, len);
	free(p);
}

void
rk_wipe_free_str(char *s)
{
	if (s == NULL)
		return;
	rk_wipe_free(s, strlen(s));
}
