/*
 * Log lines on stderr: one JSON object a line (default when stderr is not a
 * TTY) or readable text. Each line is built in a bounded buffer and written
 * with one write(2), so concurrent rotations never interleave lines.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rekey/log.h"

#define LINE_MAX_BYTES 4096

static enum rk_log_level g_level = RK_LOG_INFO;
static int g_json = 1;
/* Per thread, like systemd's log context: rotations may run on several threads. */
static _Thread_local char t_run_id[64];

void
rk_log_set_run(const char *run_id)
{
	snprintf(t_run_id, sizeof(t_run_id), "%s", run_id ? run_id : "");
}

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void
rk_log_setup(enum rk_log_level level, enum rk_log_format fmt)
{
	g_level = level;
	if (fmt == RK_LOG_AUTO)
		g_json = !isatty(STDERR_FILENO);
	else
		g_json = fmt == RK_LOG_JSON;
}

int
rk_log_enabled(enum rk_log_level level)
{
	return level >= g_level;
}

int
rk_log_parse_level(const char *s, enum rk_log_level *out)
{
	for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum rk_log_level)i;
			return 0;
		}
	}
	return RK_EINVAL;
}

struct line {
	char buf[LINE_MAX_BYTES];
	size_t len;
};

static void
put(struct line *l, const char *s, size_t n)
{
	/* Keep room for the closing "}\n"; an over-long line is cut, not overrun. */
	if (l->len + n > sizeof(l->buf) - 8)
		n = sizeof(l->buf) - 8 > l->len ? sizeof(l->buf) - 8 - l->len : 0;
	memcpy(l->buf + l->len, s, n);
	l->len += n;
}

static void
puts_json(struct line *l, const char *s)
{
	char esc[8];

	put(l, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			put(l, esc, 2);
		} else if (c == '\n') {
			put(l, "\\n", 2);
		} else if (c == '\t') {
			put(l, "\\t", 2);
		} else if (c < 0x20) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			put(l, esc, 6);
		} else {
			put(l, (const char *)&c, 1);
		}
	}
	put(l, "\"", 1);
}

static void
puts_text_value(struct line *l, const char *s)
{
	int quote = strpbrk(s, " \t\"=") != NULL || *s == '\0';

	if (quote) {
		puts_json(l, s);
		return;
	}
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		put(l, c < 0x20 ? "?" : (const char *)&c, 1);
	}
}

static void
vlog(enum rk_log_level level, const char *event, va_list ap)
{
	struct line l = { .len = 0 };
	char ts[40];
	struct timespec now;
	struct tm tm;
	const char *k, *v;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 now.tv_nsec / 1000000);
	if (g_json) {
		put(&l, "{\"ts\":", 6);
		puts_json(&l, ts);
		put(&l, ",\"level\":", 9);
		puts_json(&l, level_names[level]);
		put(&l, ",\"event\":", 9);
		puts_json(&l, event);
	} else {
		put(&l, ts, strlen(ts));
		put(&l, " ", 1);
		put(&l, level_names[level], strlen(level_names[level]));
		put(&l, " ", 1);
		put(&l, event, strlen(event));
	}
	{
		/* The thread's run, unless the line names a run itself. */
		va_list probe;
		int named = 0;
		va_copy(probe, ap);
		while ((k = va_arg(probe, const char *)) != NULL) {
			v = va_arg(probe, const char *);
			if (v != NULL && strcmp(k, "run_id") == 0)
				named = 1;
		}
		va_end(probe);
		if (!named && t_run_id[0] != '\0') {
			if (g_json) {
				put(&l, ",\"run_id\":", 10);
				puts_json(&l, t_run_id);
			} else {
				put(&l, " run_id=", 8);
				puts_text_value(&l, t_run_id);
			}
		}
	}
	while ((k = va_arg(ap, const char *)) != NULL) {
		v = va_arg(ap, const char *);
		if (v == NULL)
			continue;
		if (g_json) {
			put(&l, ",", 1);
			puts_json(&l, k);
			put(&l, ":", 1);
			/* duration_ms is a number; everything else is a string. */
			if (strcmp(k, "duration_ms") == 0 && v[0] != '\0' &&
			    strspn(v, "0123456789") == strlen(v))
				put(&l, v, strlen(v));
			else
				puts_json(&l, v);
		} else {
			put(&l, " ", 1);
			put(&l, k, strlen(k));
			put(&l, "=", 1);
			puts_text_value(&l, v);
		}
	}
	if (g_json)
		l.buf[l.len++] = '}';
	l.buf[l.len++] = '\n';
	/* One write: lines from concurrent threads never interleave. */
	if (write(STDERR_FILENO, l.buf, l.len) < 0) {
		/* nowhere left to report it */
	}
}

void
rk_log(enum rk_log_level level, const char *event, ...)
{
	va_list ap;

	if (level < g_level)
		return;
	va_start(ap, event);
	vlog(level, event, ap);
	va_end(ap);
}

static void
log_kv(enum rk_log_level level, const char *event, ...)
{
	va_list ap;

	va_start(ap, event);
	vlog(level, event, ap);
	va_end(ap);
}

void
rk_log_err(const struct rk_error *err, const char *fmt, ...)
{
	char what[512], msg[1100];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (err != NULL && err->code != 0)
		snprintf(msg, sizeof(msg), "%s: %s", what, err->msg);
	else
		snprintf(msg, sizeof(msg), "%s", what);
	log_kv(RK_LOG_ERROR, "error", "error", msg,
	       "provider", err && err->provider[0] ? err->provider : NULL,
	       "step", err && err->step[0] ? err->step : NULL, NULL);
}
