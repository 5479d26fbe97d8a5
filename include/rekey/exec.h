/*
 * Running hooks and `exec` dependents: argv only (no shell), in their own
 * process group, with a timeout after which the whole group is killed.
 * A secret is passed on stdin only; the child's environment is a short
 * allow-list plus REKEY_* names, never a value. What the child prints is
 * captured (bounded) and any occurrence of the secret is redacted before it
 * can reach an error message.
 */
#ifndef REKEY_EXEC_H
#define REKEY_EXEC_H

#include <stdint.h>
#include "rekey/error.h"
#include "rekey/secret.h"

struct rk_exec_opts {
	const struct rk_secret *stdin_value;	/* NULL: stdin is /dev/null */
	int64_t timeout_ms;
	const char *const *env;	/* extra "KEY=value" entries (names only), NULL-terminated */
	const char *what;	/* "verify hook", "dependent", for messages */
};

/*
 * Runs argv and waits. 0 when it exited with status 0; otherwise an error:
 * RK_ETRANSIENT on timeout (the group was killed), RK_EIO when it failed,
 * with its exit status and last line of output (redacted) in err.
 */
int rk_exec_run(char *const argv[], const struct rk_exec_opts *opts,
		struct rk_error *err) RK_WARN_UNUSED;

#endif
