/*
 * rekey: secret and key rotation. main() hardens the process and hands over
 * to the command line; everything else lives in the modules.
 */
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sodium.h>

#include "rekey/cli.h"

int
main(int argc, char **argv)
{
	struct rlimit no_core = { 0, 0 };

	/* Secrets live in this process: no core dumps, no ptrace by other users. */
	setrlimit(RLIMIT_CORE, &no_core);
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	/* A hook that exits early must not kill us with SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	if (sodium_init() < 0) {
		fprintf(stderr, "rekey: libsodium failed to initialise\n");
		return 1;
	}
	return rk_cli_main(argc, argv);
}
