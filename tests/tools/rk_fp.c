/*
 * Test helper: prints the keyed fingerprint rekey would record for the value
 * on stdin, using the keys of STATE_DIR. Lets shell tests check that the
 * value in a store is the one the state DB says is current.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sodium.h>

#include "rekey/crypto.h"
#include "rekey/secret.h"

int
main(int argc, char **argv)
{
	struct rk_error err = { 0 };
	struct rk_keys *keys = NULL;
	struct rk_secret *v = NULL;
	unsigned char buf[65536];
	size_t len = 0;
	ssize_t n;
	char fp[RK_FP_HEX_LEN + 1];

	if (argc != 2 || sodium_init() < 0) {
		fprintf(stderr, "usage: rk-fp STATE_DIR < value\n");
		return 2;
	}
	while ((n = read(0, buf + len, sizeof(buf) - len)) > 0)
		len += (size_t)n;
	if (rk_keys_load(&keys, argv[1], &err) < 0 || rk_secret_from(&v, buf, len, &err) < 0) {
		fprintf(stderr, "rk-fp: %s\n", err.msg);
		return 1;
	}
	sodium_memzero(buf, sizeof(buf));
	rk_fingerprint(keys, v, fp);
	printf("%s\n", fp);
	rk_secret_free(v);
	rk_keys_free(keys);
	return 0;
}
