/*
 * rekey-guard: the startup guard as a program of its own, for container
 * entrypoints, init containers and ExecStartPre=, where it runs before every
 * start and its own start-up is the cost. `rekey-guard ARGS` is `rekey guard
 * ARGS`: the same options, checks, output and exit codes, from the same
 * source (src/guard.c), with the global options of rekey.
 *
 * It is fast because of what it does not link: SQLite, curl, libmicrohttpd
 * and the providers that talk to a server (rekey links 39 shared libraries
 * and relocates them all at start). libsodium, libyaml and jansson are linked
 * statically; only libc, libm and zxcvbn stay shared (Debian's libzxcvbn.a
 * is not position-independent, and the binary stays PIE).
 *
 * What it cannot do itself it hands to the full rekey, with the arguments
 * exactly as given: --secret and --inventory (they need the state DB and the
 * providers), and any configuration it cannot load (a provider type other
 * than local, or an error rekey should word). rekey is $REKEY_BIN if set,
 * else `rekey` in the directory of this binary.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rekey/cli.h"
#include "rekey/ctx.h"
#include "rekey/guard.h"
#include "rekey/provider.h"

/*
 * The provider types this binary carries, in place of src/provider.c's
 * registry (which lists vault, and with it curl). Only `local` checks its
 * configuration block without any library beyond libsodium; a config naming
 * another type fails to load here and is handed over to rekey.
 */
extern const struct rk_provider_ops rk_provider_local;

static const struct rk_provider_ops *const guard_types[] = { &rk_provider_local, NULL };

const struct rk_provider_ops *
rk_provider_find_type(const char *type)
{
	return strcmp(type, rk_provider_local.type) == 0 ? &rk_provider_local : NULL;
}

const struct rk_provider_ops *const *
rk_provider_types(void)
{
	return guard_types;
}

/* The arguments as given, before the global options were taken out. */
struct original_args {
	int argc;
	char **argv;
};

/* $REKEY_BIN, else "rekey" beside /proc/self/exe. */
static int
rekey_path(char *buf, size_t n, struct rk_error *err)
{
	const char *env = getenv("REKEY_BIN");
	ssize_t k;
	char *slash;

	if (env != NULL && env[0] != '\0') {
		if ((size_t)snprintf(buf, n, "%s", env) >= n)
			return rk_error_set(err, RK_EINVAL, "REKEY_BIN is longer than %zu bytes", n);
		return 0;
	}
	if ((k = readlink("/proc/self/exe", buf, n - 1)) < 0)
		return rk_error_set(err, RK_EINVAL, "cannot find where rekey-guard is installed "
				    "(/proc/self/exe: %s); set REKEY_BIN", strerror(errno));
	buf[k] = '\0';
	if ((slash = strrchr(buf, '/')) == NULL || (size_t)(slash - buf) + sizeof("/rekey") > n)
		return rk_error_set(err, RK_EINVAL, "cannot find rekey beside rekey-guard; set "
				    "REKEY_BIN");
	memcpy(slash, "/rekey", sizeof("/rekey"));
	return 0;
}

static int
hand_over(void *arg, struct rk_error *err)
{
	const struct original_args *a = arg;
	char path[PATH_MAX], **argv;
	struct stat self, target;
	int r;

	if ((r = rekey_path(path, sizeof(path), err)) < 0)
		return r;
	if (stat(path, &target) != 0)
		return rk_error_set(err, RK_EINVAL, "there is no rekey at %s (%s): install it "
				    "beside rekey-guard or set REKEY_BIN", path, strerror(errno));
	/* Handing over to ourselves would refuse the run as a usage error, or loop. */
	if (stat("/proc/self/exe", &self) == 0 && self.st_dev == target.st_dev &&
	    self.st_ino == target.st_ino)
		return rk_error_set(err, RK_EINVAL, "%s is rekey-guard itself, not rekey: point "
				    "REKEY_BIN at the full rekey", path);
	if ((argv = calloc((size_t)a->argc + 2, sizeof(*argv))) == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	argv[0] = path;
	argv[1] = (char *)"guard";
	for (int i = 1; i < a->argc; i++)
		argv[i + 1] = a->argv[i];
	fflush(NULL);
	execv(path, argv);
	r = rk_error_set(err, RK_EINVAL, "cannot run %s: %s", path, strerror(errno));
	free(argv);
	return r;
}

int
rk_guard_bin_main(int argc, char **argv)
{
	struct rk_ctx ctx;
	struct original_args orig = { argc, NULL };
	struct rk_guard_handover handover = { hand_over, &orig };
	int rc;

	if ((orig.argv = calloc((size_t)argc + 1, sizeof(*orig.argv))) == NULL) {
		fputs("rekey-guard: out of memory\n", stderr);
		return 1;
	}
	memcpy(orig.argv, argv, (size_t)argc * sizeof(*argv));
	rk_ctx_init(&ctx);
	if ((rc = rk_cli_global_options(&ctx, &argc, argv)) < 0) {
		/* getopt names the command in its messages, as under `rekey guard`. */
		argv[0] = (char *)"guard";
		optind = 1;
		rc = rk_guard_run(&ctx, argc, argv, NULL, &handover);
		rk_ctx_free_config(&ctx);
	}
	free(orig.argv);
	return rc;
}
