/*
 * Installation keys and what the core does with them: keyed fingerprints,
 * sealing values kept in the state DB (the journal's pending value, the
 * previous value of providers without versions), the audit chain's MAC and
 * idempotency keys. All on libsodium; keys live in sodium_malloc memory.
 *
 * Files (created by `rekey init`, 0600, in the state dir):
 *   master.key       32 random bytes, base64: seals local-store and DB values.
 *                    $CREDENTIALS_DIRECTORY/rekey-master.key wins when present
 *                    (systemd LoadCredential=).
 *   fingerprint.key  32 random bytes, base64: keys fingerprints and the audit MAC.
 */
#ifndef REKEY_CRYPTO_H
#define REKEY_CRYPTO_H

#include <stddef.h>
#include "rekey/error.h"
#include "rekey/secret.h"

#define RK_KEY_BYTES 32
#define RK_FP_HEX_LEN 64	/* BLAKE2b-256 as hex */
#define RK_UUID_LEN 36

struct rk_keys;

/* Creates the key files in dir if missing (0600). Existing keys are kept. */
int rk_keys_create(const char *dir, struct rk_error *err) RK_WARN_UNUSED;
/* Loads the keys; RK_ENOTFOUND with a hint to run `rekey init` when absent. */
int rk_keys_load(struct rk_keys **out, const char *dir, struct rk_error *err) RK_WARN_UNUSED;
void rk_keys_free(struct rk_keys *k);

/* A 32-byte subkey of the master key for one purpose ("local", "journal"). */
const unsigned char *rk_keys_subkey(const struct rk_keys *k, const char *purpose);

/* Keyed BLAKE2b-256 of a value, as lowercase hex (out: RK_FP_HEX_LEN + 1). */
void rk_fingerprint(const struct rk_keys *k, const struct rk_secret *v, char *out);
/* MAC over data for the audit chain (out: RK_FP_HEX_LEN + 1 hex). */
void rk_keys_mac(const struct rk_keys *k, const void *data, size_t len, char *out);
/* A UUID (v4 layout) derived from a keyed hash of the parts, stable across runs. */
void rk_keys_uuid(const struct rk_keys *k, const char *a, const char *b, char *out);

/*
 * Seals a value with XChaCha20-Poly1305 under the "journal" subkey; ad binds
 * it to where it is stored. Output: nonce || ciphertext, malloc'd (ciphertext
 * only, safe to store). Unseal fails with RK_EINVAL on tampering or a wrong ad.
 */
int rk_seal(const struct rk_keys *k, const char *ad, const struct rk_secret *v,
	    unsigned char **out, size_t *out_len, struct rk_error *err) RK_WARN_UNUSED;
int rk_unseal(const struct rk_keys *k, const char *ad, const unsigned char *in, size_t len,
	      struct rk_secret **out, struct rk_error *err) RK_WARN_UNUSED;

/* Same AEAD with an explicit 32-byte key (the local store uses its subkey). */
int rk_aead_seal(const unsigned char *key, const char *ad, size_t ad_len,
		 const unsigned char *pt, size_t pt_len, unsigned char **out, size_t *out_len,
		 struct rk_error *err) RK_WARN_UNUSED;
int rk_aead_open(const unsigned char *key, const char *ad, size_t ad_len,
		 const unsigned char *in, size_t len, struct rk_secret **out,
		 struct rk_error *err) RK_WARN_UNUSED;

/* Random run id: "r" + UTC time + 8 hex, sortable ("r20261123T191300Z-1a2b3c4d"). */
void rk_new_run_id(char *out, size_t n, long long now);

#endif
