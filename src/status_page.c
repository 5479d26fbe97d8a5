/*
 * The status page (include/rekey/status_page.h): inventory health at a
 * glance. Every value from the state is HTML-escaped; elements carry ids
 * and data-* attributes so that a test (or a scraper) can read them.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rekey/status_page.h"

struct out {
	char *buf;
	size_t len, cap;
	int oom;
};

static void
add(struct out *o, const char *s, size_t n)
{
	if (o->oom)
		return;
	if (o->len + n + 1 > o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 8192;
		char *nb;
		while (cap < o->len + n + 1)
			cap *= 2;
		if ((nb = realloc(o->buf, cap)) == NULL) {
			o->oom = 1;
			return;
		}
		o->buf = nb;
		o->cap = cap;
	}
	memcpy(o->buf + o->len, s, n);
	o->len += n;
	o->buf[o->len] = '\0';
}

/* Markup of our own (printf-like); never a value from the state. */
static void __attribute__((format(printf, 2, 3)))
html(struct out *o, const char *fmt, ...)
{
	char b[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(b, sizeof(b), fmt, ap);
	va_end(ap);
	if (n > 0)
		add(o, b, (size_t)n < sizeof(b) ? (size_t)n : sizeof(b) - 1);
}

/* A value from the state, escaped for text and attribute positions. */
static void
text(struct out *o, const char *s)
{
	for (; s != NULL && *s; s++) {
		switch (*s) {
		case '<': add(o, "&lt;", 4); break;
		case '>': add(o, "&gt;", 4); break;
		case '&': add(o, "&amp;", 5); break;
		case '"': add(o, "&quot;", 6); break;
		case '\'': add(o, "&#39;", 5); break;
		default: add(o, s, 1);
		}
	}
}

static const char *
str(const json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "";
}

static void
when(struct out *o, long long t)
{
	char b[64];
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0) {
		add(o, "never", 5);
		return;
	}
	gmtime_r(&tt, &tm);
	strftime(b, sizeof(b), "%Y-%m-%d %H:%M:%S UTC", &tm);
	text(o, b);
}

static void
count_box(struct out *o, const json_t *counts, const char *state, const char *label)
{
	html(o, "<div class=\"count %s\"><span id=\"count-%s\">%lld</span> %s</div>\n", state,
	     state, (long long)json_integer_value(json_object_get(counts, state)), label);
}

static void
secret_row(struct out *o, const json_t *e, long long now)
{
	const char *st = str(e, "state");
	long long last = (long long)json_integer_value(json_object_get(e, "last_rotated"));
	long long due = (long long)json_integer_value(json_object_get(e, "next_due"));

	html(o, "<tr class=\"secret %s\" data-name=\"", st);
	text(o, str(e, "name"));
	html(o, "\" data-state=\"%s\"><td class=\"name\">", st);
	text(o, str(e, "name"));
	add(o, "</td><td>", 9);
	text(o, str(e, "provider"));
	add(o, "</td><td>", 9);
	text(o, str(e, "environment"));
	html(o, "</td><td>%lld</td><td class=\"state\">%s</td><td>", (long long)json_integer_value(json_object_get(e, "tier")), st);
	when(o, last);
	add(o, "</td><td>", 9);
	if (last == 0)
		add(o, "now", 3);
	else
		when(o, due);
	if (last != 0 && due < now)
		add(o, " (past)", 7);
	add(o, "</td><td class=\"last-result\">", 29);
	text(o, str(e, "last_result"));
	add(o, "</td><td class=\"last-run\">", 26);
	text(o, str(e, "last_run"));
	add(o, "</td><td class=\"note\">", 22);
	text(o, str(e, "last_error")[0] ? str(e, "last_error") : str(e, "reason"));
	add(o, "</td></tr>\n", 11);
}

char *
rk_status_page(const json_t *st)
{
	struct out o = { 0 };
	const json_t *d = json_object_get(st, "daemon"), *counts = json_object_get(st, "counts");
	const json_t *e, *run = json_object_get(d, "running");
	long long now = (long long)json_integer_value(json_object_get(st, "now"));
	size_t i, attention = 0;

	html(&o, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
		 "<meta http-equiv=\"refresh\" content=\"15\">\n<title>rekey status</title>\n"
		 "<style>body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
		 "td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left}"
		 ".count{display:inline-block;margin-right:1.5em;font-size:1.2em}"
		 ".overdue,.expired,.needs_attention{background:#fde2e2}.due{background:#fff5d6}"
		 ".banner{padding:.5em;background:#fde2e2;border:1px solid #c33}</style>\n"
		 "</head><body>\n<h1>rekey</h1>\n");
	html(&o, "<p id=\"daemon\">generated ");
	when(&o, now);
	html(&o, " &middot; leader: <span id=\"leader\">%s</span> &middot; audit chain: "
		 "<span id=\"audit\">%s</span> &middot; last run: ",
	     json_is_true(json_object_get(d, "leader")) ? "yes" : "no",
	     json_is_true(json_object_get(d, "audit_chain_ok")) ? "ok" : "BROKEN");
	when(&o, (long long)json_integer_value(json_object_get(d, "last_run_at")));
	html(&o, " &middot; last backup: ");
	when(&o, (long long)json_integer_value(json_object_get(d, "last_backup_at")));
	html(&o, "</p>\n");
	/* A running emergency first: the daemon's own, or another process's (in the DB). */
	if (run != NULL && strcmp(str(run, "kind"), "emergency") == 0) {
		html(&o, "<div class=\"banner\" id=\"emergency\">Emergency run <b>");
		text(&o, str(run, "run_id"));
		html(&o, "</b> running: <progress max=\"%lld\" value=\"%lld\"></progress> "
			 "<span id=\"emergency-progress\">%lld of %lld</span> secrets</div>\n",
		     (long long)json_integer_value(json_object_get(run, "total")),
		     (long long)json_integer_value(json_object_get(run, "done")),
		     (long long)json_integer_value(json_object_get(run, "done")),
		     (long long)json_integer_value(json_object_get(run, "total")));
	} else {
		json_array_foreach(json_object_get(st, "unfinished_runs"), i, e) {
			if (strcmp(str(e, "kind"), "emergency") != 0)
				continue;
			html(&o, "<div class=\"banner\" id=\"emergency\">Emergency run <b>");
			text(&o, str(e, "id"));
			html(&o, "</b> running (%s): <span id=\"emergency-progress\">%lld of %lld"
				 "</span> secrets done</div>\n",
			     str(d, "scheduler_paused_by")[0] ? "scheduler paused" : "not paused",
			     (long long)json_integer_value(json_object_get(e, "done")),
			     (long long)json_integer_value(json_object_get(e, "secrets")));
			break;
		}
	}
	html(&o, "<div id=\"counts\">\n");
	count_box(&o, counts, "overdue", "overdue");
	count_box(&o, counts, "expired", "past grace");
	count_box(&o, counts, "needs_attention", "need attention");
	count_box(&o, counts, "due", "due");
	count_box(&o, counts, "ok", "ok");
	html(&o, "</div>\n<h2>Needs attention</h2>\n<ul id=\"attention\">\n");
	json_array_foreach(json_object_get(st, "secrets"), i, e) {
		const char *s = str(e, "state");
		if (strcmp(s, "ok") == 0 || strcmp(s, "due") == 0)
			continue;
		attention++;
		html(&o, "<li data-name=\"");
		text(&o, str(e, "name"));
		html(&o, "\"><b>");
		text(&o, str(e, "name"));
		html(&o, "</b>: %s &mdash; ", s);
		text(&o, str(e, "last_error")[0] ? str(e, "last_error") : str(e, "reason"));
		html(&o, "</li>\n");
	}
	if (attention == 0)
		html(&o, "<li class=\"none\">nothing: every secret is within its policy</li>\n");
	html(&o, "</ul>\n<h2>Secrets</h2>\n<table id=\"secrets\"><thead><tr><th>name</th>"
		 "<th>provider</th><th>environment</th><th>tier</th><th>state</th>"
		 "<th>last rotated</th><th>next due</th><th>last result</th><th>last run</th>"
		 "<th>note</th></tr></thead><tbody>\n");
	json_array_foreach(json_object_get(st, "secrets"), i, e)
		secret_row(&o, e, now);
	html(&o, "</tbody></table>\n</body></html>\n");
	if (o.oom) {
		free(o.buf);
		return NULL;
	}
	return o.buf;
}
