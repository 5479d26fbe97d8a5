/*
 * Keys, fingerprints, sealing and derived ids, on libsodium.
 *
 * The master key never seals anything directly: each purpose gets its own
 * subkey (crypto_kdf), so a value sealed for the journal cannot be replayed
 * into the local store. Fingerprints are keyed so that a stolen DB does not
 * allow offline guessing of weak values.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <sodium.h>

#include "rekey/crypto.h"
#include "rekey/util.h"

#define KEY_FILE_MAX 256

struct rk_keys {
	unsigned char master[RK_KEY_BYTES];
	unsigned char fp[RK_KEY_BYTES];
	unsigned char local[RK_KEY_BYTES];
	unsigned char journal[RK_KEY_BYTES];
	unsigned char audit[RK_KEY_BYTES];
};

static int
create_key_file(const char *dir, const char *name, struct rk_error *err)
{
	unsigned char key[RK_KEY_BYTES];
	char b64[sodium_base64_ENCODED_LEN(RK_KEY_BYTES, sodium_base64_VARIANT_ORIGINAL) + 1];
	char *path = rk_path_join(dir, name);
	struct stat st;
	int r;

	if (path == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	if (stat(path, &st) == 0) {
		free(path);
		return 0;	/* never replace a key: that would orphan every sealed value */
	}
	randombytes_buf(key, sizeof(key));
	sodium_bin2base64(b64, sizeof(b64), key, sizeof(key), sodium_base64_VARIANT_ORIGINAL);
	sodium_memzero(key, sizeof(key));
	{
		size_t l = strlen(b64);	/* room for the newline reserved above */
		b64[l] = '\n';
		b64[l + 1] = '\0';
	}
	r = rk_write_file_atomic(path, b64, strlen(b64), 0600, err);
	sodium_memzero(b64, sizeof(b64));
	free(path);
	return r;
}

int
rk_keys_create(const char *dir, struct rk_error *err)
{
	int r;

	if ((r = create_key_file(dir, "master.key", err)) < 0)
		return r;
	return create_key_file(dir, "fingerprint.key", err);
}

static int
load_key_file(const char *path, unsigned char *key, struct rk_error *err)
{
	char *text = NULL;
	size_t len = 0, bin_len = 0;
	struct stat st;
	int r;

	if (stat(path, &st) == 0 && (st.st_mode & 077) != 0)
		return rk_error_set(err, RK_EINVAL,
				    "%s is readable by group or others (mode %03o); run chmod 600 %s",
				    path, (unsigned)(st.st_mode & 0777), path);
	if ((r = rk_read_file(path, KEY_FILE_MAX, &text, &len, err)) < 0) {
		if (r == RK_ENOTFOUND) {
			rk_error_clear(err);
			return rk_error_set(err, RK_ENOTFOUND,
					    "key file %s is missing; run `rekey init`", path);
		}
		return r;
	}
	if (len == RK_KEY_BYTES) {
		memcpy(key, text, RK_KEY_BYTES);	/* raw bytes (systemd-creds) */
		r = 0;
	} else if (sodium_base642bin(key, RK_KEY_BYTES, text, len, " \t\r\n", &bin_len, NULL,
				     sodium_base64_VARIANT_ORIGINAL) != 0 ||
		   bin_len != RK_KEY_BYTES) {
		r = rk_error_set(err, RK_EINVAL, "%s is not a 32-byte key in base64", path);
	} else {
		r = 0;
	}
	rk_wipe_free(text, len);
	return r;
}

int
rk_keys_load(struct rk_keys **out, const char *dir, struct rk_error *err)
{
	struct rk_keys *k;
	const char *creds = getenv("CREDENTIALS_DIRECTORY");
	char *path = NULL;
	struct stat st;
	int r;

	if ((k = sodium_malloc(sizeof(*k))) == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of secure memory");
	path = creds ? rk_path_join(creds, "rekey-master.key") : NULL;
	if (path == NULL || stat(path, &st) != 0) {
		free(path);
		path = rk_path_join(dir, "master.key");
	}
	if (path == NULL) {
		r = rk_error_set(err, RK_ENOMEM, "out of memory");
		goto out;
	}
	if ((r = load_key_file(path, k->master, err)) < 0)
		goto out;
	free(path);
	if ((path = rk_path_join(dir, "fingerprint.key")) == NULL) {
		r = rk_error_set(err, RK_ENOMEM, "out of memory");
		goto out;
	}
	if ((r = load_key_file(path, k->fp, err)) < 0)
		goto out;
	crypto_kdf_derive_from_key(k->local, RK_KEY_BYTES, 1, "rk-local", k->master);
	crypto_kdf_derive_from_key(k->journal, RK_KEY_BYTES, 2, "rk-journ", k->master);
	crypto_kdf_derive_from_key(k->audit, RK_KEY_BYTES, 3, "rk-audit", k->fp);
	*out = k;
	k = NULL;
	r = 0;
out:
	free(path);
	rk_keys_free(k);
	return r;
}

void
rk_keys_free(struct rk_keys *k)
{
	if (k != NULL)
		sodium_free(k);	/* wipes */
}

const unsigned char *
rk_keys_subkey(const struct rk_keys *k, const char *purpose)
{
	if (strcmp(purpose, "local") == 0)
		return k->local;
	if (strcmp(purpose, "journal") == 0)
		return k->journal;
	return NULL;
}

void
rk_fingerprint(const struct rk_keys *k, const struct rk_secret *v, char *out)
{
	unsigned char h[32];

	crypto_generichash(h, sizeof(h), rk_secret_cdata(v), rk_secret_len(v), k->fp,
			   sizeof(k->fp));
	rk_hex(h, sizeof(h), out);
}

void
rk_keys_mac(const struct rk_keys *k, const void *data, size_t len, char *out)
{
	unsigned char h[32];

	crypto_generichash(h, sizeof(h), data, len, k->audit, sizeof(k->audit));
	rk_hex(h, sizeof(h), out);
}

void
rk_keys_uuid(const struct rk_keys *k, const char *a, const char *b, char *out)
{
	crypto_generichash_state st;
	unsigned char h[16];
	char hex[33];

	crypto_generichash_init(&st, k->fp, sizeof(k->fp), sizeof(h));
	crypto_generichash_update(&st, (const unsigned char *)"rekey-idempotency\0", 18);
	crypto_generichash_update(&st, (const unsigned char *)a, strlen(a) + 1);
	crypto_generichash_update(&st, (const unsigned char *)b, strlen(b) + 1);
	crypto_generichash_final(&st, h, sizeof(h));
	h[6] = (unsigned char)((h[6] & 0x0f) | 0x40);	/* version 4 layout */
	h[8] = (unsigned char)((h[8] & 0x3f) | 0x80);	/* RFC 4122 variant */
	rk_hex(h, sizeof(h), hex);
	snprintf(out, RK_UUID_LEN + 1, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12,
		 hex + 16, hex + 20);
}

int
rk_aead_seal(const unsigned char *key, const char *ad, size_t ad_len, const unsigned char *pt,
	     size_t pt_len, unsigned char **out, size_t *out_len, struct rk_error *err)
{
	size_t n = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + pt_len +
		   crypto_aead_xchacha20poly1305_ietf_ABYTES;
	unsigned char *buf = malloc(n);
	unsigned long long clen = 0;

	if (buf == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	randombytes_buf(buf, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
	crypto_aead_xchacha20poly1305_ietf_encrypt(
		buf + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, &clen, pt, pt_len,
		(const unsigned char *)ad, ad_len, NULL, buf, key);
	*out = buf;
	*out_len = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + (size_t)clen;
	return 0;
}

int
rk_aead_open(const unsigned char *key, const char *ad, size_t ad_len, const unsigned char *in,
	     size_t len, struct rk_secret **out, struct rk_error *err)
{
	const size_t overhead = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES +
				crypto_aead_xchacha20poly1305_ietf_ABYTES;
	struct rk_secret *s = NULL;
	unsigned long long plen = 0;
	int r;

	if (len < overhead)
		return rk_error_set(err, RK_EINVAL, "sealed value is truncated");
	if ((r = rk_secret_new(&s, len - overhead, err)) < 0)
		return r;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(
		    rk_secret_data(s), &plen, NULL,
		    in + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
		    len - crypto_aead_xchacha20poly1305_ietf_NPUBBYTES,
		    (const unsigned char *)ad, ad_len, in, key) != 0) {
		rk_secret_free(s);
		return rk_error_set(err, RK_EINVAL,
				    "sealed value failed authentication (tampered, or a different key)");
	}
	*out = s;
	return 0;
}

int
rk_seal(const struct rk_keys *k, const char *ad, const struct rk_secret *v, unsigned char **out,
	size_t *out_len, struct rk_error *err)
{
	return rk_aead_seal(k->journal, ad, strlen(ad), rk_secret_cdata(v), rk_secret_len(v), out,
			    out_len, err);
}

int
rk_unseal(const struct rk_keys *k, const char *ad, const unsigned char *in, size_t len,
	  struct rk_secret **out, struct rk_error *err)
{
	return rk_aead_open(k->journal, ad, strlen(ad), in, len, out, err);
}

void
rk_new_run_id(char *out, size_t n, long long now)
{
	struct tm tm;
	time_t t = (time_t)now;
	unsigned char rnd[4];
	char hex[9];

	gmtime_r(&t, &tm);
	randombytes_buf(rnd, sizeof(rnd));
	rk_hex(rnd, sizeof(rnd), hex);
	snprintf(out, n, "r%04d%02d%02dT%02d%02d%02dZ-%s", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, hex);
}
