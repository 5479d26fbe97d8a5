/*
 * What the local provider (providers/local.c) makes of a locator: private
 * to it and to its unit tests.
 */
#ifndef REKEY_PROVIDERS_LOCAL_INT_H
#define REKEY_PROVIDERS_LOCAL_INT_H

#define LOCAL_MAX_PATH 512

/* A parsed locator (ops->parse_locator). */
struct local_loc {
	char path[LOCAL_MAX_PATH + 1];	/* as in the inventory; the AEAD's AD binds it */
	char *dir;			/* <state_dir>/local/<hex blake2b-128 of path> */
};

#endif
