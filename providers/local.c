/*
 * The `local` provider: rekey's own encrypted, versioned store in the state
 * directory, the embedded default when no external service is configured.
 *
 * Layout: <state_dir>/local/<id>/ where <id> is the BLAKE2b of the locator
 * path (names may contain '/', the hash keeps them out of the filesystem
 * namespace). Each version is one file vNNNNNNNN.json holding the idempotency
 * key and the value sealed with XChaCha20-Poly1305 under the local subkey;
 * the associated data binds it to the path and version number, so a version
 * file copied to another secret or number fails to open. CURRENT names the
 * current version and changes only by atomic rename, so a crash leaves either
 * the old or the new pointer. Staged versions are not current until promote.
 *
 * A locator is parsed once into struct local_loc (the path and its
 * directory). Reads take no lock; every change of a secret holds its flock,
 * taken only when the call is not being cancelled (the wait for it is short:
 * another change of the same secret).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>

#include "rekey/crypto.h"
#include "rekey/provider.h"
#include "rekey/provider_kit.h"
#include "rekey/syncgroup.h"
#include "rekey/util.h"
#include "local_int.h"

#define LOCAL_MAX_VALUE (1u << 20)
#define LOCAL_MAX_FILE (3u << 20)
#define LOCAL_DEFAULT_MAX_VERSIONS 20

struct local {
	struct rk_provider base;
	char *root;		/* <state_dir>/local */
	unsigned char key[RK_KEY_BYTES];
	long max_versions;
	/*
	 * Durability: version files and CURRENT are written without fsync and
	 * made durable together, by one syncfs shared with the rotations in
	 * flight, where it matters: before CURRENT may name a version, and
	 * before a promotion returns (the engine journals it, then restarts
	 * dependents). A staged version lost to a power cut is found missing by
	 * verify or staged again on resume: the old value is still current.
	 */
	struct rk_sync_group sync;
};

static const struct rk_field local_config_fields[] = {
	{ "type", RK_T_STRING, RK_F_REQUIRED },
	{ "max_versions", RK_T_INT, 0 },
	{ NULL, 0, 0 },
};

static const struct rk_field local_locator_fields[] = {
	{ "path", RK_T_STRING, RK_F_REQUIRED },
	{ NULL, 0, 0 },
};

static void
local_close(struct rk_provider *p)
{
	struct local *l = (struct local *)p;

	if (l == NULL)
		return;
	sodium_memzero(l->key, sizeof(l->key));
	rk_sync_group_destroy(&l->sync);
	free(l->root);
	free(l);
}

/* The block's rules beyond its schema; every command runs this when it loads the config. */
static int
local_check_config(const struct rk_provider_env *env, const json_t *cfg, struct rk_error *err)
{
	int64_t maxv = rk_doc_int(cfg, "max_versions", LOCAL_DEFAULT_MAX_VERSIONS);

	if (maxv < 2 || maxv > 1000)
		return rk_doc_error_key(err, env->doc, cfg, "max_versions", RK_EINVAL,
					"max_versions of provider '%s' must be between 2 and 1000 "
					"(previous versions are kept for rollback)", env->name);
	return 0;
}

static int
local_open(struct rk_provider **out, const struct rk_provider_env *env, const json_t *cfg,
	   struct rk_error *err)
{
	struct local *l;
	int64_t maxv = rk_doc_int(cfg, "max_versions", LOCAL_DEFAULT_MAX_VERSIONS);
	int r;

	if ((r = local_check_config(env, cfg, err)) < 0)
		return r;
	if ((l = calloc(1, sizeof(*l))) == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	l->max_versions = (long)maxv;
	memcpy(l->key, env->local_key, sizeof(l->key));
	if ((l->root = rk_path_join(env->state_dir, "local")) == NULL) {
		local_close(&l->base);
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	}
	if ((r = rk_mkdir_p(l->root, 0700, err)) < 0 ||
	    (r = rk_sync_group_init(&l->sync, l->root, err)) < 0) {
		local_close(&l->base);
		return r;
	}
	*out = &l->base;
	return 0;
}

static int
local_check_locator(const struct rk_doc *doc, const json_t *loc, struct rk_error *err)
{
	const char *path = rk_doc_str(loc, "path", "");

	if (path[0] == '\0' || strlen(path) > LOCAL_MAX_PATH)
		return rk_doc_error_key(err, doc, loc, "path", RK_EINVAL,
					"locator path must be 1 to %d characters", LOCAL_MAX_PATH);
	return 0;
}

static void
local_free_locator(void *loc)
{
	struct local_loc *ll = loc;

	if (ll == NULL)
		return;
	free(ll->dir);
	free(ll);
}

/* The secret's directory, <root>/<hex blake2b-128 of path>, is worked out here once. */
static int
local_parse_locator(const struct rk_provider *p, const json_t *loc, void **out,
		    struct rk_error *err)
{
	const struct local *l = (const struct local *)p;
	const char *path = rk_doc_str(loc, "path", NULL);
	struct local_loc *ll;
	unsigned char h[16];
	char hex[33];

	if (path == NULL || path[0] == '\0' || strlen(path) > LOCAL_MAX_PATH)
		return rk_error_set(err, RK_EINVAL, "local locator needs a path of 1 to %d "
				    "characters, e.g. {path: payments/db}", LOCAL_MAX_PATH);
	if ((ll = calloc(1, sizeof(*ll))) == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	snprintf(ll->path, sizeof(ll->path), "%s", path);
	crypto_generichash(h, sizeof(h), (const unsigned char *)path, strlen(path), NULL, 0);
	rk_hex(h, sizeof(h), hex);
	if ((ll->dir = rk_path_join(l->root, hex)) == NULL) {
		local_free_locator(ll);
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	}
	*out = ll;
	return 0;
}

/*
 * Held for every change of one secret; rotations of one secret never
 * overlap. A stopping rekey does not start to wait for it. The lock is on
 * the secret's directory itself: a lock file would cost an inode per
 * secret (older rekeys left a `.lock` there; it is ignored).
 */
static int
lock_dir(const struct local_loc *loc, const struct rk_call *call, int *fd_out,
	 struct rk_error *err)
{
	const char *dir = loc->dir;
	int fd, r;

	if (rk_call_cancelled(call))
		return rk_error_set(err, RK_ECANCELED, "stopped before locking local secret '%s': "
				    "rekey is shutting down", loc->path);
	if ((r = rk_mkdir_p(dir, 0700, err)) < 0)
		return r;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || flock(fd, LOCK_EX) < 0) {
		if (fd >= 0)
			close(fd);
		return rk_error_set(err, RK_EIO, "cannot lock %s: %s", dir, strerror(errno));
	}
	*fd_out = fd;
	return 0;
}

static char *
version_path(const char *dir, long v)
{
	char name[32];

	snprintf(name, sizeof(name), "v%08ld.json", v);
	return rk_path_join(dir, name);
}

static void
make_ad(char *ad, size_t n, const struct local_loc *loc, long v, size_t *ad_len)
{
	int k = snprintf(ad, n, "rekey-local%c%s%c%ld", 0, loc->path, 0, v);

	*ad_len = k < 0 ? 0 : (size_t)k >= n ? n - 1 : (size_t)k;
}

/* Current version number, 0 when there is none. */
static int
read_current(const char *dir, long *out, struct rk_error *err)
{
	char *path = rk_path_join(dir, "CURRENT"), *text = NULL;
	long long v;
	int r;

	if (path == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	r = rk_read_file(path, 64, &text, NULL, err);
	free(path);
	if (r == RK_ENOTFOUND) {
		rk_error_clear(err);
		*out = 0;
		return 0;
	}
	if (r < 0)
		return r;
	text[strcspn(text, "\n")] = '\0';
	r = rk_parse_int(text, 1, 99999999, &v);
	free(text);
	if (r < 0)
		return rk_error_set(err, RK_EPROTO, "local store: %s/CURRENT is corrupt", dir);
	*out = (long)v;
	return 0;
}

/*
 * Makes v current, durably: v's file is made durable before CURRENT names
 * it (so no crash leaves CURRENT naming a version that is not there), and
 * CURRENT before this returns. Both syncs are shared with the other
 * rotations in flight.
 */
static int
write_current(struct local *l, const char *dir, long v, struct rk_error *err)
{
	char *path = rk_path_join(dir, "CURRENT");
	char text[32];
	int r;

	if (path == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	snprintf(text, sizeof(text), "%ld\n", v);
	if ((r = rk_sync_group_wait(&l->sync, err)) == 0 &&
	    (r = rk_write_file_atomic_ex(path, text, strlen(text), 0600, RK_WRITE_NOSYNC, err)) == 0)
		r = rk_sync_group_wait(&l->sync, err);
	free(path);
	return r;
}

/* Loads version v's file; *idem (optional) is malloc'd. */
static int
load_version(const struct local *l, const struct local_loc *loc, long v,
	     struct rk_secret **value, char **idem, struct rk_error *err)
{
	char *path = version_path(loc->dir, v), *text = NULL;
	json_t *j = NULL;
	json_error_t jerr;
	unsigned char *box = NULL;
	size_t box_len = 0, text_len = 0;
	const char *b64;
	char ad[600];
	size_t ad_len;
	int r;

	if (path == NULL)
		return rk_error_set(err, RK_ENOMEM, "out of memory");
	if ((r = rk_read_file(path, LOCAL_MAX_FILE, &text, &text_len, err)) < 0) {
		if (r == RK_ENOTFOUND) {
			rk_error_clear(err);
			r = rk_error_set(err, RK_ENOTFOUND, "local store has no version %ld of '%s'",
					 v, loc->path);
		}
		goto out;
	}
	if ((j = json_loadb(text, text_len, 0, &jerr)) == NULL ||
	    json_integer_value(json_object_get(j, "v")) != v ||
	    (b64 = json_string_value(json_object_get(j, "box"))) == NULL) {
		r = rk_error_set(err, RK_EPROTO, "local store: %s is corrupt", path);
		goto out;
	}
	if (idem != NULL) {
		const char *s = json_string_value(json_object_get(j, "idem"));
		if ((*idem = strdup(s ? s : "")) == NULL) {
			r = rk_error_set(err, RK_ENOMEM, "out of memory");
			goto out;
		}
	}
	if (value != NULL) {
		box_len = strlen(b64);
		if ((box = malloc(box_len)) == NULL) {
			r = rk_error_set(err, RK_ENOMEM, "out of memory");
			goto out;
		}
		if (sodium_base642bin(box, box_len, b64, strlen(b64), NULL, &box_len, NULL,
				      sodium_base64_VARIANT_ORIGINAL) != 0) {
			r = rk_error_set(err, RK_EPROTO, "local store: %s is corrupt", path);
			goto out;
		}
		make_ad(ad, sizeof(ad), loc, v, &ad_len);
		if ((r = rk_aead_open(l->key, ad, ad_len, box, box_len, value, err)) < 0) {
			rk_error_clear(err);
			r = rk_error_set(err, RK_EPROTO,
					 "local store: version %ld of '%s' failed authentication "
					 "(tampered or wrong master key)",
					 v, loc->path);
			goto out;
		}
	}
	r = 0;
out:
	if (r < 0 && idem != NULL && *idem != NULL) {
		free(*idem);
		*idem = NULL;
	}
	free(box);
	json_decref(j);
	free(text);
	free(path);
	return r;
}

/* Highest version number present (0 when none), and the one with idem key, if any. */
static int
scan_versions(const struct local *l, const struct local_loc *loc, const char *idem,
	      long *max_out, long *match_out, struct rk_error *err)
{
	const char *dir = loc->dir;
	DIR *d = opendir(dir);
	struct dirent *e;
	long max = 0, match = 0;
	int r = 0;

	if (d == NULL) {
		*max_out = *match_out = 0;
		return errno == ENOENT ? 0
				       : rk_error_set(err, RK_EIO, "cannot read %s: %s", dir,
						      strerror(errno));
	}
	while ((e = readdir(d)) != NULL) {
		long long v;
		char num[16];
		size_t n = strlen(e->d_name);

		if (n != 14 || e->d_name[0] != 'v' || strcmp(e->d_name + 9, ".json") != 0)
			continue;
		memcpy(num, e->d_name + 1, 8);
		num[8] = '\0';
		if (rk_parse_int(num, 1, 99999999, &v) < 0)
			continue;
		if (v > max)
			max = (long)v;
		if (idem != NULL && match == 0) {
			char *vi = NULL;
			if ((r = load_version(l, loc, (long)v, NULL, &vi, err)) < 0)
				break;
			if (strcmp(vi, idem) == 0)
				match = (long)v;
			free(vi);
		}
	}
	closedir(d);
	*max_out = max;
	*match_out = match;
	return r;
}

static int
parse_version(const struct rk_version *ver, long *v, struct rk_error *err)
{
	return rk_version_parse(ver, v, "local store", err);
}

static int
local_read_version(struct rk_provider *p, const struct rk_call *call, const void *loc_,
		   const struct rk_version *ver, struct rk_secret **out, struct rk_error *err)
{
	struct local *l = (struct local *)p;
	const struct local_loc *loc = loc_;
	long v;
	int r;

	(void)call;	/* a local read does not wait */
	if ((r = parse_version(ver, &v, err)) == 0) {
		if (v == 0)
			r = rk_error_set(err, RK_ENOTFOUND, "no version given");
		else
			r = load_version(l, loc, v, out, NULL, err);
	}
	if (r == RK_ENOTFOUND && v > 0) {
		/* Missing below the newest one: prune dropped it (versions are never reused). */
		struct rk_error e2 = { 0 };
		long max = 0, match = 0;
		if (scan_versions(l, loc, NULL, &max, &match, &e2) == 0 && v < max) {
			rk_error_clear(err);
			r = rk_error_set(err, RK_ENOTFOUND, "version %ld of '%s' was pruned: the "
					 "local store keeps the newest %ld versions (max_versions of "
					 "provider '%s'); it is at version %ld", v, loc->path,
					 l->max_versions, p->name, max);
		}
	}
	return r;
}

static int
local_read(struct rk_provider *p, const struct rk_call *call, const void *loc_,
	   struct rk_secret **out, struct rk_version *ver, struct rk_error *err)
{
	struct local *l = (struct local *)p;
	const struct local_loc *loc = loc_;
	long cur;
	int r;

	(void)call;	/* a local read does not wait */
	if ((r = read_current(loc->dir, &cur, err)) < 0)
		return r;
	if (cur == 0)
		return rk_error_set(err, RK_ENOTFOUND, "local secret '%s' does not exist yet",
				    loc->path);
	if ((r = load_version(l, loc, cur, out, NULL, err)) < 0)
		return r;
	rk_version_set(ver, cur);
	return 0;
}

static int
write_version(const struct local *l, const struct local_loc *loc, long v,
	      const char *idem, const unsigned char *pt, size_t pt_len, struct rk_error *err)
{
	unsigned char *box = NULL;
	size_t box_len = 0;
	char *b64 = NULL, *text = NULL, *path = NULL;
	char ad[600];
	size_t ad_len;
	json_t *j = NULL;
	int r;

	if (pt_len > LOCAL_MAX_VALUE)
		return rk_error_set(err, RK_EINVAL, "value is larger than the local store's "
				    "limit of %u bytes", LOCAL_MAX_VALUE);
	make_ad(ad, sizeof(ad), loc, v, &ad_len);
	if ((r = rk_aead_seal(l->key, ad, ad_len, pt, pt_len, &box, &box_len, err)) < 0)
		goto out;
	if ((b64 = malloc(sodium_base64_ENCODED_LEN(box_len, sodium_base64_VARIANT_ORIGINAL))) ==
	    NULL) {
		r = rk_error_set(err, RK_ENOMEM, "out of memory");
		goto out;
	}
	sodium_bin2base64(b64, sodium_base64_ENCODED_LEN(box_len, sodium_base64_VARIANT_ORIGINAL),
			  box, box_len, sodium_base64_VARIANT_ORIGINAL);
	j = json_pack("{s:I, s:s, s:I, s:s}", "v", (json_int_t)v, "idem", idem, "created",
		      (json_int_t)time(NULL), "box", b64);
	if (j == NULL || (text = json_dumps(j, JSON_COMPACT)) == NULL ||
	    (path = version_path(loc->dir, v)) == NULL) {
		r = rk_error_set(err, RK_ENOMEM, "out of memory");
		goto out;
	}
	/* Durable later, with CURRENT (write_current), in a sync shared by many. */
	r = rk_write_file_atomic_ex(path, text, strlen(text), 0600, RK_WRITE_NOSYNC, err);
out:
	free(path);
	free(text);
	json_decref(j);
	free(b64);
	free(box);
	return r;
}

/*
 * Drops the oldest versions beyond max_versions, never the current one nor
 * the one current before it (rollback needs it, even when failed rotations
 * left unpromoted versions in between).
 */
static void
prune(const struct local *l, const char *dir, long cur, long prev, long max)
{
	for (long v = max - l->max_versions; v >= 1; v--) {
		char *path;
		if (v == cur || v == prev)
			continue;
		if ((path = version_path(dir, v)) == NULL)
			return;
		if (unlink(path) < 0 && errno == ENOENT) {
			free(path);
			return;	/* older ones were pruned before */
		}
		free(path);
	}
}

/* The precondition failed: someone else changed the secret since `since`. */
static int
changed_error(struct rk_error *err, const struct local_loc *loc, const char *since, long cur,
	      long expected)
{
	return rk_error_set(err, RK_ECONFLICT,
			    "local secret '%s' changed since it was %s (current version %ld, "
			    "expected %ld)", loc->path, since, cur, expected);
}

static int
local_find_staged(struct rk_provider *p, const struct rk_call *call, const void *loc_,
		  const struct rk_stage_req *req, struct rk_version *ver, struct rk_error *err)
{
	struct local *l = (struct local *)p;
	const struct local_loc *loc = loc_;
	long max, match, cur, expected;
	int r;

	(void)call;	/* a lookup reads files and takes no lock */
	if ((r = parse_version(req->expected, &expected, err)) < 0 ||
	    (r = scan_versions(l, loc, req->idem_key, &max, &match, err)) < 0 ||
	    (r = read_current(loc->dir, &cur, err)) < 0)
		return r;
	if (match != 0) {
		rk_version_set(ver, match);
		return 0;
	}
	if (cur != expected)
		return changed_error(err, loc, "read", cur, expected);
	return rk_error_set(err, RK_ENOTFOUND, "no version staged by this rotation");
}

static int
local_stage(struct rk_provider *p, const struct rk_call *call, const void *loc_,
	    const struct rk_stage_req *req, struct rk_version *new_ver, struct rk_error *err)
{
	struct local *l = (struct local *)p;
	const struct local_loc *loc = loc_;
	long max, match, cur, expected;
	int fd = -1, r;

	if ((r = parse_version(req->expected, &expected, err)) < 0 ||
	    (r = lock_dir(loc, call, &fd, err)) < 0 ||
	    (r = scan_versions(l, loc, req->idem_key, &max, &match, err)) < 0)
		goto out;
	if (match != 0) {	/* a retried stage: the same key gives the same version */
		rk_version_set(new_ver, match);
		goto out;
	}
	if ((r = read_current(loc->dir, &cur, err)) < 0)
		goto out;
	if (cur != expected) {
		r = changed_error(err, loc, "read", cur, expected);
		goto out;
	}
	if ((r = write_version(l, loc, max + 1, req->idem_key, rk_secret_cdata(req->value),
			       rk_secret_len(req->value), err)) < 0)
		goto out;
	rk_version_set(new_ver, max + 1);
out:
	if (fd >= 0)
		close(fd);
	return r;
}

static int
local_promote(struct rk_provider *p, const struct rk_call *call, const void *loc_,
	      const struct rk_version *new_ver, const struct rk_version *old_ver,
	      struct rk_error *err)
{
	struct local *l = (struct local *)p;
	const struct local_loc *loc = loc_;
	long v, old, cur, max, match;
	int fd = -1, r;

	if ((r = parse_version(new_ver, &v, err)) < 0 || (r = parse_version(old_ver, &old, err)) < 0 ||
	    (r = lock_dir(loc, call, &fd, err)) < 0 || (r = read_current(loc->dir, &cur, err)) < 0)
		goto out;
	if (cur == v) {
		/* Already promoted (a resumed run): durable before the journal says so. */
		r = rk_sync_group_wait(&l->sync, err);
		goto out;
	}
	if (cur != old) {
		r = changed_error(err, loc, "staged", cur, old);
		goto out;
	}
	if ((r = load_version(l, loc, v, NULL, NULL, err)) < 0 ||
	    (r = write_current(l, loc->dir, v, err)) < 0)
		goto out;
	/*
	 * Versions are numbered from 1: below max_versions there is nothing to
	 * prune, unless failed stages left newer ones, which a later promotion
	 * prunes. Spares a directory scan per rotation.
	 */
	if (v >= l->max_versions && scan_versions(l, loc, NULL, &max, &match, err) == 0)
		prune(l, loc->dir, v, old, max);
	rk_error_clear(err);
out:
	if (fd >= 0)
		close(fd);
	return r;
}

static int
local_rollback(struct rk_provider *p, const struct rk_call *call, const void *loc_,
	       const struct rk_version *to, const struct rk_stage_req *req,
	       struct rk_version *new_ver, struct rk_error *err)
{
	struct local *l = (struct local *)p;
	const struct local_loc *loc = loc_;
	struct rk_secret *old = NULL;
	long v, max, match;
	int fd = -1, r;

	if ((r = parse_version(to, &v, err)) < 0 || (r = lock_dir(loc, call, &fd, err)) < 0 ||
	    (r = scan_versions(l, loc, req->idem_key, &max, &match, err)) < 0)
		goto out;
	if (match == 0) {
		if ((r = load_version(l, loc, v, &old, NULL, err)) < 0 ||
		    (r = write_version(l, loc, max + 1, req->idem_key, rk_secret_cdata(old),
				       rk_secret_len(old), err)) < 0)
			goto out;
		match = max + 1;
	}
	if ((r = write_current(l, loc->dir, match, err)) < 0)
		goto out;
	rk_version_set(new_ver, match);
out:
	rk_secret_free(old);
	if (fd >= 0)
		close(fd);
	return r;
}

/*
 * Rotations of different secrets touch different directories (each under
 * its own flock); the cap only bounds open files and CPU.
 */
static unsigned
local_concurrency(const struct rk_provider *p)
{
	(void)p;
	return 16;
}

const struct rk_provider_ops rk_provider_local = {
	.type = "local",
	.caps = RK_CAP_VERSIONS | RK_CAP_STAGING | RK_CAP_EXPORT,
	.config_fields = local_config_fields,
	.check_config = local_check_config,
	.locator_fields = local_locator_fields,
	.open = local_open,
	.check_locator = local_check_locator,
	.parse_locator = local_parse_locator,
	.free_locator = local_free_locator,
	.read = local_read,
	.read_version = local_read_version,
	.find_staged = local_find_staged,
	.stage = local_stage,
	.promote = local_promote,
	.rollback = local_rollback,
	.close = local_close,
	.concurrency = local_concurrency,
};
