/*
 * rekey: secret and key rotation. main() hardens the process and hands over
 * to the command line; everything else lives in the modules. Built a second
 * time with -DREKEY_GUARD_BINARY as the main of rekey-guard (src/guard_bin.c),
 * so both binaries start hardened the same way.
 */
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <jansson.h>
#include <sodium.h>

#include "rekey/cli.h"
#include "rekey/guard.h"

/*
 * jansson holds HTTP bodies and JSON strings that may carry a value (a Vault
 * read, a write body): every block it frees is wiped first.
 */
static void
json_wiping_free(void *p)
{
	if (p == NULL)
		return;
	sodium_memzero(p, malloc_usable_size(p));
	free(p);
}

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
	json_set_alloc_funcs(malloc, json_wiping_free);
#ifdef REKEY_GUARD_BINARY
	return rk_guard_bin_main(argc, argv);
#else
	return rk_cli_main(argc, argv);
#endif
}
