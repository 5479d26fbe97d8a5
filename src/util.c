/*
 * Durations, times and bounded, crash-safe file I/O for the core.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rekey/secret.h"
#include "rekey/util.h"

int
rk_parse_duration_ms(const char *s, int64_t *out_ms)
{
	int64_t total = 0;
	const char *p = s;

	if (s == NULL || *s == '\0')
		return RK_EINVAL;
	if (strspn(s, "0123456789") == strlen(s)) {
		long long v;
		if (rk_parse_int(s, 0, INT64_MAX / 1000, &v) < 0)
			return RK_EINVAL;
		*out_ms = (int64_t)v * 1000;
		return 0;
	}
	while (*p) {
		int64_t n = 0, unit;
		const char *start = p;

		while (*p >= '0' && *p <= '9') {
			if (n > (INT64_MAX - 9) / 10)
				return RK_EINVAL;
			n = n * 10 + (*p++ - '0');
		}
		if (p == start)
			return RK_EINVAL;
		if (strncmp(p, "ms", 2) == 0) {
			unit = 1;
			p += 2;
		} else {
			switch (*p) {
			case 's': unit = 1000; break;
			case 'm': unit = 60 * 1000; break;
			case 'h': unit = 3600 * 1000; break;
			case 'd': unit = 86400 * 1000; break;
			case 'w': unit = 7 * 86400 * 1000LL; break;
			default: return RK_EINVAL;
			}
			p++;
		}
		if (n > (INT64_MAX - total) / unit)
			return RK_EINVAL;
		total += n * unit;
	}
	*out_ms = total;
	return 0;
}

void
rk_format_duration(int64_t secs, char *buf, size_t n)
{
	static const struct { int64_t s; char u; } units[] = {
		{ 86400, 'd' }, { 3600, 'h' }, { 60, 'm' }, { 1, 's' },
	};
	size_t used = 0;
	int parts = 0;
	const char *sign = "";

	if (secs < 0) {
		sign = "-";
		secs = -secs;
	}
	used = (size_t)snprintf(buf, n, "%s", sign);
	for (size_t i = 0; i < RK_ARRAY_SIZE(units) && parts < 2 && used < n; i++) {
		if (secs >= units[i].s) {
			used += (size_t)snprintf(buf + used, n - used, "%lld%c",
						 (long long)(secs / units[i].s), units[i].u);
			secs %= units[i].s;
			parts++;
		} else if (parts > 0) {
			break;	/* "3d" not "3d0h5m": two adjacent units at most */
		}
	}
	if (parts == 0)
		snprintf(buf, n, "0s");
}

int
rk_parse_time(const char *s, int64_t *out)
{
	struct tm tm;
	int y, mo, d, h = 0, mi = 0, sec = 0, consumed = 0;
	size_t len = strlen(s);

	memset(&tm, 0, sizeof(tm));
	if (len == 10) {
		if (sscanf(s, "%4d-%2d-%2d%n", &y, &mo, &d, &consumed) != 3 || consumed != 10)
			return RK_EINVAL;
	} else if (len == 20 && (s[19] == 'Z' || s[19] == 'z')) {
		if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec,
			   &consumed) != 6 || consumed != 19 || (s[10] != 'T' && s[10] != 't'))
			return RK_EINVAL;
	} else {
		return RK_EINVAL;
	}
	if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60 ||
	    y < 1970 || y > 9999)
		return RK_EINVAL;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	*out = (int64_t)timegm(&tm);
	/* timegm normalises Feb 30 to Mar 2: reject dates that do not exist. */
	{
		struct tm back;
		time_t t = (time_t)*out;
		gmtime_r(&t, &back);
		if (back.tm_mday != d || back.tm_mon != mo - 1)
			return RK_EINVAL;
	}
	return 0;
}

void
rk_format_time(int64_t t, char *buf, size_t n)
{
	struct tm tm;
	time_t tt = (time_t)t;

	gmtime_r(&tt, &tm);
	strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int
rk_read_file(const char *path, size_t max, char **out, size_t *len, struct rk_error *err)
{
	int fd = -1, r = RK_EIO;
	char *buf = NULL;
	size_t used = 0;
	struct stat st;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		r = rk_error_set(err, errno == ENOENT ? RK_ENOTFOUND : RK_EIO,
				 "cannot open %s: %s", path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
		r = rk_error_set(err, RK_EINVAL, "%s is a directory", path);
		goto out;
	}
	if ((buf = malloc(max + 1)) == NULL) {
		r = rk_error_set(err, RK_ENOMEM, "out of memory reading %s", path);
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, buf + used, max + 1 - used);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = rk_error_set(err, RK_EIO, "cannot read %s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		used += (size_t)n;
		if (used > max) {
			r = rk_error_set(err, RK_EINVAL, "%s is larger than the limit of %zu bytes",
					 path, max);
			goto out;
		}
	}
	buf[used] = '\0';
	*out = buf;
	buf = NULL;
	if (len)
		*len = used;
	r = 0;
out:
	if (buf)
		rk_wipe_free(buf, used);
	if (fd >= 0)
		close(fd);
	return r;
}

static int
fsync_dir_of(const char *path)
{
	char *dir = strdup(path), *slash;
	int fd, r = 0;

	if (dir == NULL)
		return -1;
	slash = strrchr(dir, '/');
	if (slash == NULL) {
		dir[0] = '.';	/* fits: path is non-empty, so dir has 2+ bytes */
		dir[1] = '\0';
	} else if (slash == dir) {
		slash[1] = '\0';
	} else {
		*slash = '\0';
	}
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		free(dir);
		return -1;
	}
	if (fsync(fd) < 0)
		r = -1;
	close(fd);
	free(dir);
	return r;
}

int
rk_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode,
		     struct rk_error *err)
{
	return rk_write_file_atomic_ex(path, data, len, mode, 0, err);
}

int
rk_write_file_atomic_ex(const char *path, const void *data, size_t len, mode_t mode,
			unsigned flags, struct rk_error *err)
{
	char tmp[PATH_MAX];
	int fd = -1, r = RK_EIO;
	size_t off = 0;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= sizeof(tmp))
		return rk_error_set(err, RK_EINVAL, "path too long: %s", path);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)) < 0) {
		r = rk_error_set(err, RK_EIO, "cannot create %s: %s", tmp, strerror(errno));
		goto out;
	}
	while (off < len) {
		ssize_t n = write(fd, (const char *)data + off, len - off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = rk_error_set(err, RK_EIO, "cannot write %s: %s", tmp, strerror(errno));
			goto out;
		}
		off += (size_t)n;
	}
	if (fchmod(fd, mode) < 0 || (!(flags & RK_WRITE_NOSYNC) && fsync(fd) < 0)) {
		r = rk_error_set(err, RK_EIO, "cannot sync %s: %s", tmp, strerror(errno));
		goto out;
	}
	close(fd);
	fd = -1;
	if (rename(tmp, path) < 0) {
		r = rk_error_set(err, RK_EIO, "cannot rename %s to %s: %s", tmp, path,
				 strerror(errno));
		goto out;
	}
	if (!(flags & RK_WRITE_NOSYNC) && fsync_dir_of(path) < 0) {
		r = rk_error_set(err, RK_EIO, "cannot sync the directory of %s: %s", path,
				 strerror(errno));
		goto out;
	}
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	if (r < 0)
		unlink(tmp);
	return r;
}

int
rk_mkdir_p(const char *path, mode_t mode, struct rk_error *err)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(buf))
		return rk_error_set(err, RK_EINVAL, "bad directory path '%s'", path);
	/* Usually the parents exist: one call instead of one per component. */
	if (mkdir(path, mode) == 0 || errno == EEXIST)
		return 0;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return rk_error_set(err, RK_EIO, "cannot create %s: %s", buf,
					    strerror(errno));
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return rk_error_set(err, RK_EIO, "cannot create %s: %s", buf, strerror(errno));
	return 0;
}

char *
rk_path_join(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *p;

	if (b[0] == '/' )
		return strdup(b);
	if ((p = malloc(la + lb + 2)) == NULL)
		return NULL;
	memcpy(p, a, la);
	if (la > 0 && a[la - 1] != '/')
		p[la++] = '/';
	memcpy(p + la, b, lb + 1);
	return p;
}

int
rk_parse_int(const char *s, long long min, long long max, long long *out)
{
	char *end;
	long long v;

	if (s == NULL || *s == '\0')
		return RK_EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return RK_EINVAL;
	*out = v;
	return 0;
}

void
rk_hex(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

int64_t
rk_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleeps ms on the monotonic clock; a signal does not cut it short. */
void
rk_sleep_ms(int64_t ms)
{
	struct timespec ts;

	if (ms <= 0)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)(ms / 1000);
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}
