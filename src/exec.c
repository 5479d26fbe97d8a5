/*
 * Child processes with a deadline. Waiting is on events only: poll(2) on the
 * child's stdin/stdout pipes and a pidfd, with the time left as timeout.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rekey/exec.h"
#include "rekey/log.h"
#include "rekey/util.h"

#define OUTPUT_MAX 4096
#define KILL_GRACE_MS 2000

extern char **environ;

static const char *const env_allow[] = { "PATH=", "HOME=", "LANG=", "LC_ALL=", "TZ=",
					 "USER=", "LOGNAME=", "KUBECONFIG=", NULL };

static char **
child_env(const char *const *extra)
{
	size_t n = 0, k = 0;
	char **env;

	for (char **e = environ; *e; e++)
		n++;
	for (const char *const *e = extra; e && *e; e++)
		n++;
	if ((env = calloc(n + 2, sizeof(*env))) == NULL)
		return NULL;
	for (char **e = environ; *e; e++)
		for (const char *const *a = env_allow; *a; a++)
			if (strncmp(*e, *a, strlen(*a)) == 0)
				env[k++] = *e;
	for (const char *const *e = extra; e && *e; e++)
		env[k++] = (char *)*e;
	if (getenv("PATH") == NULL)
		env[k++] = (char *)"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
	env[k] = NULL;
	return env;
}

static int
pidfd_open_(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* Replaces every occurrence of the secret in buf with [REDACTED]. */
static void
redact(char *buf, size_t *len, size_t cap, const struct rk_secret *s)
{
	static const char mark[] = "[REDACTED]";
	size_t vlen = s ? rk_secret_len(s) : 0;
	const char *v = s ? rk_secret_str(s) : NULL;

	if (vlen == 0)
		return;
	for (size_t i = 0; i + vlen <= *len;) {
		if (memcmp(buf + i, v, vlen) != 0) {
			i++;
			continue;
		}
		/* mark is never longer than what it replaces unless vlen < 10 */
		if (*len - vlen + sizeof(mark) - 1 >= cap) {
			*len = i;	/* no room: cut here rather than keep any of it */
			break;
		}
		memmove(buf + i + sizeof(mark) - 1, buf + i + vlen, *len - i - vlen);
		memcpy(buf + i, mark, sizeof(mark) - 1);
		*len = *len - vlen + sizeof(mark) - 1;
		i += sizeof(mark) - 1;
	}
}

static void
last_line(const char *buf, size_t len, char *out, size_t n)
{
	size_t end = len, start;

	while (end > 0 && (buf[end - 1] == '\n' || buf[end - 1] == '\r' || buf[end - 1] == ' '))
		end--;
	start = end;
	while (start > 0 && buf[start - 1] != '\n')
		start--;
	if (end - start >= n)
		start = end - (n - 1);
	memcpy(out, buf + start, end - start);
	out[end - start] = '\0';
	for (char *p = out; *p; p++)
		if ((unsigned char)*p < 0x20)
			*p = ' ';
}

/*
 * Starts argv with posix_spawn: no code of ours runs in the child, so no lock
 * another thread held at fork time can deadlock it, and an exec failure comes
 * back as an error here. The child gets its own process group (a timeout
 * kills everything it started), default signal dispositions and an empty
 * mask, stdin from in_fd (or /dev/null when -1), stdout and stderr to out_fd.
 * Every other descriptor of ours is O_CLOEXEC.
 */
static int
spawn(char *const argv[], char **env, int in_fd, int out_fd, pid_t *pid, struct rk_error *err)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t all, none;
	int e;

	if (posix_spawn_file_actions_init(&fa) != 0)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	if (posix_spawnattr_init(&at) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	}
	sigfillset(&all);
	sigemptyset(&none);
	e = in_fd < 0 ? posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0)
		      : posix_spawn_file_actions_adddup2(&fa, in_fd, 0);
	if (e == 0)
		e = posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
	if (e == 0)
		e = posix_spawn_file_actions_adddup2(&fa, out_fd, 2);
	if (e == 0)
		e = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF |
						  POSIX_SPAWN_SETSIGMASK);
	if (e == 0)
		e = posix_spawnattr_setpgroup(&at, 0);
	if (e == 0)
		e = posix_spawnattr_setsigdefault(&at, &all);
	if (e == 0)
		e = posix_spawnattr_setsigmask(&at, &none);
	if (e == 0)
		e = posix_spawnp(pid, argv[0], &fa, &at, argv, env);
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	if (e != 0)
		return rk_error_set(err, RK_EIO,
				    "cannot execute %s: %s", argv[0], strerror(e));
	return 0;
}

int
rk_exec_run(char *const argv[], const struct rk_exec_opts *opts, struct rk_error *err)
{
	int in_pipe[2] = { -1, -1 }, out_pipe[2] = { -1, -1 }, pidfd = -1, status = 0, r;
	char **env = NULL, out[OUTPUT_MAX + 32], line[200];
	size_t out_len = 0, in_off = 0;
	size_t in_len = opts->stdin_value ? rk_secret_len(opts->stdin_value) : 0;
	int64_t deadline = rk_mono_ms() + opts->timeout_ms;
	int timed_out = 0, exited = 0;
	const char *what = opts->what ? opts->what : "command";
	pid_t pid = -1;

	if ((env = child_env(opts->env)) == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	if (pipe2(in_pipe, O_CLOEXEC) < 0 || pipe2(out_pipe, O_CLOEXEC) < 0) {
		r = rk_error_set(err, RK_EIO, "cannot create pipes: %s", strerror(errno));
		goto out;
	}
	if ((r = spawn(argv, env, opts->stdin_value == NULL ? -1 : in_pipe[0], out_pipe[1], &pid,
		       err)) < 0) {
		rk_error_prefix(err, "%s: ", what);
		goto out;
	}
	close(in_pipe[0]);
	in_pipe[0] = -1;
	close(out_pipe[1]);
	out_pipe[1] = -1;
	if (opts->stdin_value == NULL || in_len == 0) {
		close(in_pipe[1]);
		in_pipe[1] = -1;
	} else {
		fcntl(in_pipe[1], F_SETFL, O_NONBLOCK);
	}
	pidfd = pidfd_open_(pid);
	while (!exited) {
		struct pollfd fds[3];
		int nfds = 0, left = (int)(deadline - rk_mono_ms());

		if (left <= 0) {
			timed_out = 1;
			break;
		}
		if (in_pipe[1] >= 0)
			fds[nfds++] = (struct pollfd){ .fd = in_pipe[1], .events = POLLOUT };
		if (out_pipe[0] >= 0)
			fds[nfds++] = (struct pollfd){ .fd = out_pipe[0], .events = POLLIN };
		if (pidfd >= 0)
			fds[nfds++] = (struct pollfd){ .fd = pidfd, .events = POLLIN };
		if (nfds == 0 || pidfd < 0) {
			/* No pidfd (old kernel): bounded wait in slices. */
			if (waitpid(pid, &status, WNOHANG) == pid) {
				exited = 1;
				break;
			}
			poll(fds, (nfds_t)nfds, left < 50 ? left : 50);
		} else if (poll(fds, (nfds_t)nfds, left) < 0 && errno != EINTR) {
			break;
		}
		for (int i = 0; i < nfds; i++) {
			if (fds[i].revents == 0)
				continue;
			if (fds[i].fd == in_pipe[1]) {
				ssize_t w = write(in_pipe[1], rk_secret_cdata(opts->stdin_value) + in_off,
						  in_len - in_off);
				if (w > 0)
					in_off += (size_t)w;
				if (w < 0 && errno != EAGAIN && errno != EINTR)
					in_off = in_len;	/* reader gone (EPIPE) */
				if (in_off >= in_len) {
					close(in_pipe[1]);
					in_pipe[1] = -1;
				}
			} else if (fds[i].fd == out_pipe[0]) {
				char tmp[1024];
				ssize_t n = read(out_pipe[0], tmp, sizeof(tmp));
				if (n <= 0) {
					close(out_pipe[0]);
					out_pipe[0] = -1;
				} else {
					/* keep the tail: the last line is the useful one */
					size_t k = (size_t)n;
					if (out_len + k > OUTPUT_MAX) {
						size_t drop = out_len + k - OUTPUT_MAX;
						if (drop > out_len)
							drop = out_len;
						memmove(out, out + drop, out_len - drop);
						out_len -= drop;
					}
					if (k > OUTPUT_MAX)
						k = OUTPUT_MAX;
					memcpy(out + out_len, tmp + ((size_t)n - k), k);
					out_len += k;
				}
			} else if (fds[i].fd == pidfd) {
				if (waitpid(pid, &status, WNOHANG) == pid)
					exited = 1;
			}
		}
	}
	if (timed_out) {
		kill(-pid, SIGTERM);
		deadline = rk_mono_ms() + KILL_GRACE_MS;
		while (waitpid(pid, &status, WNOHANG) == 0) {
			if (rk_mono_ms() >= deadline) {
				kill(-pid, SIGKILL);
				waitpid(pid, &status, 0);
				break;
			}
			if (pidfd >= 0) {
				struct pollfd pf = { .fd = pidfd, .events = POLLIN };
				poll(&pf, 1, (int)(deadline - rk_mono_ms()));
			} else {
				poll(NULL, 0, 20);
			}
		}
		kill(-pid, SIGKILL);	/* grandchildren that outlived the leader */
		r = rk_error_set(err, RK_ETRANSIENT, "%s %s timed out after %lld ms and was killed",
				 what, argv[0], (long long)opts->timeout_ms);
		goto out;
	}
	if (!exited)
		waitpid(pid, &status, 0);
	redact(out, &out_len, sizeof(out), opts->stdin_value);
	last_line(out, out_len, line, sizeof(line));
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		r = 0;
	} else if (WIFEXITED(status)) {
		r = rk_error_set(err, RK_EIO, "%s %s exited with status %d%s%s", what, argv[0],
				 WEXITSTATUS(status), line[0] ? ": " : "", line);
	} else {
		r = rk_error_set(err, RK_EIO, "%s %s was killed by signal %d", what, argv[0],
				 WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	}
out:
	explicit_bzero(out, sizeof(out));
	if (in_pipe[0] >= 0)
		close(in_pipe[0]);
	if (in_pipe[1] >= 0)
		close(in_pipe[1]);
	if (out_pipe[0] >= 0)
		close(out_pipe[0]);
	if (out_pipe[1] >= 0)
		close(out_pipe[1]);
	if (pidfd >= 0)
		close(pidfd);
	free(env);
	return r;
}
