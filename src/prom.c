/*
 * The Prometheus text format builder (include/rekey/prom.h).
 */
#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "rekey/prom.h"

struct rk_prom {
	char *buf;
	size_t len, cap;
	int oom;
};

struct rk_prom *
rk_prom_new(void)
{
	return calloc(1, sizeof(struct rk_prom));
}

static void
put(struct rk_prom *p, const char *s, size_t n)
{
	if (p->oom)
		return;
	if (p->len + n + 1 > p->cap) {
		size_t cap = p->cap ? p->cap : 4096;
		char *nb;
		while (cap < p->len + n + 1)
			cap *= 2;
		if ((nb = realloc(p->buf, cap)) == NULL) {
			p->oom = 1;
			return;
		}
		p->buf = nb;
		p->cap = cap;
	}
	memcpy(p->buf + p->len, s, n);
	p->len += n;
	p->buf[p->len] = '\0';
}

static void
puts_(struct rk_prom *p, const char *s)
{
	put(p, s, strlen(s));
}

/* A label value: backslash, double quote and newline escaped. */
static void
put_escaped(struct rk_prom *p, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\')
			puts_(p, "\\\\");
		else if (*s == '"')
			puts_(p, "\\\"");
		else if (*s == '\n')
			puts_(p, "\\n");
		else
			put(p, s, 1);
	}
}

static void
put_value(struct rk_prom *p, double v)
{
	char b[64];

	if (isnan(v))
		snprintf(b, sizeof(b), "NaN");
	else if (isinf(v))
		snprintf(b, sizeof(b), v > 0 ? "+Inf" : "-Inf");
	else if (v == (double)(long long)v && fabs(v) < 1e15)
		snprintf(b, sizeof(b), "%lld", (long long)v);
	else
		snprintf(b, sizeof(b), "%.10g", v);
	puts_(p, b);
}

void
rk_prom_family(struct rk_prom *p, const char *name, const char *type, const char *help)
{
	puts_(p, "# HELP ");
	puts_(p, name);
	puts_(p, " ");
	puts_(p, help);	/* ours: no backslash or newline in them */
	puts_(p, "\n# TYPE ");
	puts_(p, name);
	puts_(p, " ");
	puts_(p, type);
	puts_(p, "\n");
}

static void
sample_v(struct rk_prom *p, const char *name, const char *suffix, double v, va_list ap)
{
	const char *k;
	int first = 1;

	puts_(p, name);
	puts_(p, suffix);
	while ((k = va_arg(ap, const char *)) != NULL) {
		const char *val = va_arg(ap, const char *);
		puts_(p, first ? "{" : ",");
		puts_(p, k);
		puts_(p, "=\"");
		put_escaped(p, val ? val : "");
		puts_(p, "\"");
		first = 0;
	}
	if (!first)
		puts_(p, "}");
	puts_(p, " ");
	put_value(p, v);
	puts_(p, "\n");
}

void
rk_prom_sample(struct rk_prom *p, const char *name, double v, ...)
{
	va_list ap;

	va_start(ap, v);
	sample_v(p, name, "", v, ap);
	va_end(ap);
}

static void
sample_s(struct rk_prom *p, const char *name, const char *suffix, double v, ...)
{
	va_list ap;

	va_start(ap, v);
	sample_v(p, name, suffix, v, ap);
	va_end(ap);
}

void
rk_prom_histogram(struct rk_prom *p, const char *name, const char *lname, const char *lvalue,
		  const double *bounds, const uint64_t *counts, size_t n, double sum)
{
	uint64_t cum = 0;
	char le[32];

	for (size_t i = 0; i <= n; i++) {
		cum += counts[i];
		if (i < n)
			snprintf(le, sizeof(le), "%g", bounds[i]);
		else
			snprintf(le, sizeof(le), "+Inf");
		if (lname != NULL)
			sample_s(p, name, "_bucket", (double)cum, lname, lvalue, "le", le, NULL);
		else
			sample_s(p, name, "_bucket", (double)cum, "le", le, NULL);
	}
	if (lname != NULL) {
		sample_s(p, name, "_sum", sum, lname, lvalue, NULL);
		sample_s(p, name, "_count", (double)cum, lname, lvalue, NULL);
	} else {
		sample_s(p, name, "_sum", sum, NULL);
		sample_s(p, name, "_count", (double)cum, NULL);
	}
}

/* Field n (1-based, after the command's parenthesis) of /proc/self/stat. */
static int
proc_stat(unsigned long long *fields, size_t n)
{
	char b[2048], *s;
	FILE *f = fopen("/proc/self/stat", "re");
	size_t got, i;

	if (f == NULL)
		return -1;
	got = fread(b, 1, sizeof(b) - 1, f);
	fclose(f);
	b[got] = '\0';
	if ((s = strrchr(b, ')')) == NULL)
		return -1;
	s += 2;	/* field 3, the state */
	for (i = 3; i <= n + 2 && *s; i++) {
		char *end;
		fields[i] = strtoull(s, &end, 10);
		s = strchr(s, ' ');
		if (s == NULL)
			break;
		s++;
	}
	return 0;
}

static double
boot_time(void)
{
	char line[256];
	FILE *f = fopen("/proc/stat", "re");
	double bt = 0;

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, "btime ", 6) == 0)
			bt = strtod(line + 6, NULL);
	fclose(f);
	return bt;
}

void
rk_prom_process(struct rk_prom *p)
{
	unsigned long long f[60] = { 0 };
	double tick = (double)sysconf(_SC_CLK_TCK), page = (double)sysconf(_SC_PAGESIZE);
	struct rlimit rl;
	struct dirent *de;
	DIR *d;
	double fds = 0;

	if (proc_stat(f, 24) == 0 && tick > 0) {
		rk_prom_family(p, "process_cpu_seconds_total", "counter",
			       "Total user and system CPU time spent in seconds.");
		rk_prom_sample(p, "process_cpu_seconds_total", (double)(f[14] + f[15]) / tick, NULL);
		rk_prom_family(p, "process_start_time_seconds", "gauge",
			       "Start time of the process since unix epoch in seconds.");
		rk_prom_sample(p, "process_start_time_seconds", boot_time() + (double)f[22] / tick,
			       NULL);
		rk_prom_family(p, "process_virtual_memory_bytes", "gauge",
			       "Virtual memory size in bytes.");
		rk_prom_sample(p, "process_virtual_memory_bytes", (double)f[23], NULL);
		rk_prom_family(p, "process_resident_memory_bytes", "gauge",
			       "Resident memory size in bytes.");
		rk_prom_sample(p, "process_resident_memory_bytes", (double)f[24] * page, NULL);
	}
	if ((d = opendir("/proc/self/fd")) != NULL) {
		while ((de = readdir(d)) != NULL)
			fds += de->d_name[0] != '.';
		closedir(d);
		rk_prom_family(p, "process_open_fds", "gauge", "Number of open file descriptors.");
		rk_prom_sample(p, "process_open_fds", fds - 1, NULL);	/* minus the one reading */
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
		rk_prom_family(p, "process_max_fds", "gauge",
			       "Maximum number of open file descriptors.");
		rk_prom_sample(p, "process_max_fds", (double)rl.rlim_cur, NULL);
	}
}

char *
rk_prom_finish(struct rk_prom *p, size_t *len)
{
	char *out = NULL;

	if (p == NULL)
		return NULL;
	if (!p->oom && p->buf != NULL) {
		out = p->buf;
		*len = p->len;
	} else {
		free(p->buf);
	}
	free(p);
	return out;
}
