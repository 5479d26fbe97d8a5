/*
 * The error struct: first error wins, context is added once at the top.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "rekey/error.h"

int
rk_error_set(struct rk_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || err->code != 0)
		return code;
	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
	return code;
}

void
rk_error_prefix(struct rk_error *err, const char *fmt, ...)
{
	char prefix[256];
	size_t plen, mlen;
	va_list ap;

	if (err == NULL || err->code == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	plen = strlen(prefix);
	mlen = strlen(err->msg);
	/* The message keeps its head; a cut happens at the tail. */
	if (plen + mlen >= sizeof(err->msg))
		mlen = sizeof(err->msg) - 1 - plen;
	memmove(err->msg + plen, err->msg, mlen);
	memcpy(err->msg, prefix, plen);
	err->msg[plen + mlen] = '\0';
}

void
rk_error_clear(struct rk_error *err)
{
	if (err != NULL)
		memset(err, 0, sizeof(*err));
}

const char *
rk_strerror(int code)
{
	switch (code) {
	case RK_OK: return "ok";
	case RK_ENOTFOUND: return "not found";
	case RK_ECONFLICT: return "conflict";
	case RK_ETRANSIENT: return "transient failure";
	case RK_EAUTH: return "authentication or permission denied";
	case RK_EINVAL: return "invalid input";
	case RK_EIO: return "I/O error";
	case RK_ENOMEM: return "out of memory";
	case RK_EINTERNAL: return "internal error";
	case RK_EBUSY: return "busy";
	case RK_EUNSUPPORTED: return "not supported";
	case RK_EPROTO: return "bad response from provider";
	case RK_ECANCELED: return "cancelled";
	}
	return "unknown error";
}

int
rk_exit_code(int code)
{
	switch (code) {
	case RK_OK: return 0;
	case RK_EINVAL: return 2;
	case RK_EBUSY: return 75;
	default: return 1;
	}
}
