/*
 * Logging: one JSON object per line on stderr (or readable text on a TTY).
 * Library code logs at debug at most; the program logs errors once, at the top.
 * Fields are string key/value pairs; never pass a secret value.
 */
#ifndef REKEY_LOG_H
#define REKEY_LOG_H

#include <stdio.h>
#include "rekey/error.h"

enum rk_log_level { RK_LOG_DEBUG, RK_LOG_INFO, RK_LOG_WARN, RK_LOG_ERROR };
enum rk_log_format { RK_LOG_AUTO, RK_LOG_TEXT, RK_LOG_JSON };

/* Process-wide: the only mutable globals besides the provider table. */
void rk_log_setup(enum rk_log_level level, enum rk_log_format fmt);
int rk_log_enabled(enum rk_log_level level);
int rk_log_parse_level(const char *s, enum rk_log_level *out);

/*
 * rk_log(RK_LOG_INFO, "rotation.step", "secret", name, "step", "staged", NULL)
 * Keys are among ts, level, event, run_id, secret, provider, step, duration_ms,
 * result, error, msg, or anything else; a NULL value skips the pair.
 */
void rk_log(enum rk_log_level level, const char *event, ...);
/*
 * The run this thread works for: every line it logs carries this run_id
 * unless the line names one itself (so provider and HTTP lines of a run are
 * attributable). Thread-local; NULL clears it.
 */
void rk_log_set_run(const char *run_id);

/* Logs an error with the struct's message: "<what>: <err->msg>". */
void rk_log_err(const struct rk_error *err, const char *fmt, ...) RK_PRINTF(2, 3);

#endif
