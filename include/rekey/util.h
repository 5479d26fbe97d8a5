/*
 * Small helpers shared by the core: durations, times, bounded file I/O.
 */
#ifndef REKEY_UTIL_H
#define REKEY_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "rekey/error.h"

#define RK_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/*
 * "30d", "12h", "1w", "90s", "5m", "200ms", "1h30m" -> milliseconds.
 * A bare number is seconds. Negative, empty, overflowing or unknown units: RK_EINVAL.
 */
int rk_parse_duration_ms(const char *s, int64_t *out_ms) RK_WARN_UNUSED;
/* Formats seconds compactly: "29d23h", "5m", "0s". */
void rk_format_duration(int64_t secs, char *buf, size_t n);
/* RFC 3339 UTC ("2026-01-02T03:04:05Z") or a date ("2026-01-02") -> Unix seconds. */
int rk_parse_time(const char *s, int64_t *out) RK_WARN_UNUSED;
/* Unix seconds -> "2026-01-02T03:04:05Z" (buf at least 21 bytes). */
void rk_format_time(int64_t t, char *buf, size_t n);

/* Reads a whole file of at most max bytes, NUL-terminated. Caller frees. */
int rk_read_file(const char *path, size_t max, char **out, size_t *len,
		 struct rk_error *err) RK_WARN_UNUSED;
/* Writes via a temporary file, fsync and rename, then fsyncs the directory. */
int rk_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode,
			 struct rk_error *err) RK_WARN_UNUSED;
/*
 * The same with flags: RK_WRITE_NOSYNC skips both fsyncs (atomic, not yet
 * durable: the caller makes it durable later, e.g. with a group sync).
 */
#define RK_WRITE_NOSYNC 0x1u
int rk_write_file_atomic_ex(const char *path, const void *data, size_t len, mode_t mode,
			    unsigned flags, struct rk_error *err) RK_WARN_UNUSED;
/* Creates a directory (and parents) with mode; an existing one is fine. */
int rk_mkdir_p(const char *path, mode_t mode, struct rk_error *err) RK_WARN_UNUSED;
/* malloc'd "a/b"; NULL on OOM. */
char *rk_path_join(const char *a, const char *b);
/* Parses a decimal integer in [min,max]; whole string. */
int rk_parse_int(const char *s, long long min, long long max, long long *out) RK_WARN_UNUSED;
/* Lower-case hex of n bytes into out (2n+1 bytes). */
void rk_hex(const unsigned char *in, size_t n, char *out);
/* Monotonic milliseconds. */
int64_t rk_mono_ms(void);
/* Sleeps ms on the monotonic clock; a signal does not cut it short. */
void rk_sleep_ms(int64_t ms);

#endif
