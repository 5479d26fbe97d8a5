/*
 * Runs a command N times (fork/exec/wait4) and prints its median and p95
 * wall time and its peak RSS. Used by tests/bench/run.sh to compare
 * `rekey guard` with /bin/true measured in the same run.
 *
 *   bench-exec N COMMAND [ARGS...]
 * Output (one line): median_us=... p95_us=... max_rss_kb=... failures=...
 * With BENCH_EXEC_ALL=1 in the environment, first one line per run, t=US,
 * so that runs of several invocations can be pooled.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int
cmp(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
	long long *t;
	long n, max_rss = 0, failures = 0;
	char *end;

	if (argc < 3 || (n = strtol(argv[1], &end, 10)) < 1 || *end != '\0' || n > 100000) {
		fprintf(stderr, "usage: bench-exec N COMMAND [ARGS...]\n");
		return 2;
	}
	if ((t = calloc((size_t)n, sizeof(*t))) == NULL)
		return 1;
	for (long i = 0; i < n; i++) {
		struct rusage ru;
		int status;
		long long t0 = now_us();
		pid_t pid = fork();
		if (pid == 0) {
			int devnull = open("/dev/null", O_WRONLY);
			dup2(devnull, 1);
			dup2(devnull, 2);
			execvp(argv[2], argv + 2);
			_exit(127);
		}
		if (pid < 0 || wait4(pid, &status, 0, &ru) < 0)
			return 1;
		t[i] = now_us() - t0;
		if (ru.ru_maxrss > max_rss)
			max_rss = ru.ru_maxrss;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			failures++;
	}
	if (getenv("BENCH_EXEC_ALL") != NULL)
		for (long i = 0; i < n; i++)
			printf("t=%lld\n", t[i]);
	qsort(t, (size_t)n, sizeof(*t), cmp);
	printf("median_us=%lld p95_us=%lld max_rss_kb=%ld failures=%ld\n", t[n / 2],
	       t[(n * 95) / 100 < n ? (n * 95) / 100 : n - 1], max_rss, failures);
	free(t);
	return 0;
}
