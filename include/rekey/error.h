/*
 * Error codes and the error struct every fallible function fills.
 *
 * Functions return 0 or a negative enum rk_err and describe the failure in a
 * caller-owned struct rk_error. The first error set wins; outer layers add
 * context once with rk_error_prefix(). Retry decisions look at the code only.
 * Messages never contain secret values.
 */
#ifndef REKEY_ERROR_H
#define REKEY_ERROR_H

#include <stddef.h>

#if defined(__GNUC__)
#define RK_WARN_UNUSED __attribute__((warn_unused_result))
#define RK_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define RK_WARN_UNUSED
#define RK_PRINTF(a, b)
#endif

enum rk_err {
	RK_OK = 0,
	RK_ENOTFOUND = -1,	/* no such secret, version, file */
	RK_ECONFLICT = -2,	/* CAS / version precondition failed */
	RK_ETRANSIENT = -3,	/* 5xx, 429, timeout, reset: the only retryable code */
	RK_EAUTH = -4,		/* authentication or permission denied */
	RK_EINVAL = -5,		/* bad input: config, file, arguments, response */
	RK_EIO = -6,		/* local I/O or database failure */
	RK_ENOMEM = -7,
	RK_EINTERNAL = -8,	/* a bug or an impossible state */
	RK_EBUSY = -9,		/* another instance holds the lock */
	RK_EUNSUPPORTED = -10,	/* the provider cannot do this operation */
	RK_EPROTO = -11,	/* a provider's answer is malformed or unexpected (exit 1,
				 * not 2: exit 2 is for the user's own input) */
	RK_ECANCELED = -12,	/* stopped on request (SIGTERM) before it finished */
};

struct rk_error {
	int code;		/* 0 when no error is set */
	int http_status;	/* last HTTP status, 0 if none */
	double retry_after;	/* seconds asked by the server, 0 if none */
	char provider[32];	/* provider instance name, may be empty */
	char step[32];		/* operation or journal step, may be empty */
	char msg[512];		/* one line a user can act on */
};

/* Sets err (if not already set) and returns code, for `return rk_error_set(...)`. */
int rk_error_set(struct rk_error *err, int code, const char *fmt, ...) RK_PRINTF(3, 4);
/* Prepends context ("rotating 'x': ") to a set error; done at most once per layer. */
void rk_error_prefix(struct rk_error *err, const char *fmt, ...) RK_PRINTF(2, 3);
void rk_error_clear(struct rk_error *err);
/* Short name of a code: "not found", "conflict", ... */
const char *rk_strerror(int code);
/* Process exit code for an error code: 2 for EINVAL (the user's input), 75 for EBUSY, else 1. */
int rk_exit_code(int code);

#endif
