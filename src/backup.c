/*
 * Backups of the state and their restore: the file format (include/rekey/
 * backup.h), what goes in, and the swap of a restored state dir.
 *
 * What goes in, in this order: the DB image (rk_store_snapshot: one
 * committed state, taken without the state lock while others write), the
 * key files, then the local provider's tree. The local store only adds
 * version files and moves CURRENT pointers forward (and prunes versions
 * older than the previous one), so the files read after the DB are as new
 * as it or newer: every version the DB names is there, and a rotation that
 * ran during the backup may have its version in the files only. Restored,
 * that is the state of a crash just after the provider's write; the next
 * rotation or `rekey rotate --resume` goes on from it. In a directory,
 * CURRENT is read before the listing, so the version it names is listed.
 *
 * Restore never changes the state before the whole backup is unpacked and
 * checked beside it: the swap is one rename (RENAME_EXCHANGE) of two
 * directories, so the DB always moves with its own -wal and -shm files.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <sodium.h>

#include "rekey/audit.h"
#include "rekey/backup.h"
#include "rekey/config.h"
#include "rekey/crypto.h"
#include "rekey/ctx.h"
#include "rekey/provider.h"
#include "rekey/store.h"
#include "rekey/util.h"

#define MAGIC "REKEYBAK1"
#define MAGIC_LEN 9
#define FORMAT_VERSION 1
#define AD_LEN (MAGIC_LEN + 1)
#define SS_HEADER crypto_secretstream_xchacha20poly1305_HEADERBYTES
#define SS_ABYTES crypto_secretstream_xchacha20poly1305_ABYTES
#define CHUNK 65536
#define REC_HDR 15		/* type, path length, mode, data length */
#define MAX_PATH_LEN 1024
#define MAX_META 4096
#define MAX_KEY_FILE 256
#define MAX_LOCAL_FILE (4u << 20)	/* the local store's own cap is 3 MiB */
#define MAX_DEPTH 8
#define MAX_FILE_DATA (1ull << 34)	/* the DB: 16 GiB */

typedef crypto_secretstream_xchacha20poly1305_state ss_state;

static int
oom(struct rk_error *err)
{
	return rk_error_set(err, RK_ENOMEM, "out of memory");
}

static int
write_all(int fd, const void *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p = (const char *)p + w;
		n -= (size_t)w;
	}
	return 0;
}

/* Reads n bytes; *got tells how many came before the end of the file. */
static int
read_all(int fd, void *p, size_t n, size_t *got)
{
	*got = 0;
	while (*got < n) {
		ssize_t r = read(fd, (char *)p + *got, n - *got);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			break;
		*got += (size_t)r;
	}
	return 0;
}

static int
fsync_dir(const char *file)
{
	char *dir = strdup(file), *slash;
	int fd, r;

	if (dir == NULL)
		return -1;
	slash = strrchr(dir, '/');
	if (slash == NULL)
		snprintf(dir, strlen(dir) + 1, ".");
	else if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (fd < 0)
		return -1;
	r = fsync(fd);
	close(fd);
	return r;
}

/*
 * The whole file at dirfd/name into sodium_malloc memory (key files are
 * read this way too). RK_ENOTFOUND when it is not there.
 */
static int
read_secure(int dirfd, const char *name, const char *shown, size_t max, unsigned char **out,
	    size_t *len, struct rk_error *err)
{
	unsigned char *buf = NULL;
	struct stat st;
	size_t got;
	int fd, r;

	if ((fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return rk_error_set(err, errno == ENOENT ? RK_ENOTFOUND : RK_EIO,
				    "cannot read %s: %s", shown, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		r = rk_error_set(err, RK_EIO, "%s is not a regular file", shown);
		goto out;
	}
	if ((size_t)st.st_size > max) {
		r = rk_error_set(err, RK_EINVAL, "%s is larger than %zu bytes", shown, max);
		goto out;
	}
	if ((buf = sodium_malloc((size_t)st.st_size + 1)) == NULL) {
		r = rk_error_set(err, RK_ENOMEM, "out of secure memory");
		goto out;
	}
	if (read_all(fd, buf, (size_t)st.st_size, &got) < 0 || got != (size_t)st.st_size) {
		r = rk_error_set(err, RK_EIO, "cannot read %s: %s", shown,
				 got != (size_t)st.st_size ? "it changed while read" : strerror(errno));
		goto out;
	}
	*out = buf;
	*len = got;
	buf = NULL;
	r = 0;
out:
	sodium_free(buf);
	close(fd);
	return r;
}

/* ---- the backup key ---- */

/*
 * A new key file, never replacing one made meanwhile by another backup:
 * written whole under a name of this process, then linked (not renamed) in.
 */
static int
key_create(const char *key_file, struct rk_error *err)
{
	size_t b64_len = sodium_base64_ENCODED_LEN(RK_BACKUP_KEY_BYTES,
						   sodium_base64_VARIANT_ORIGINAL);
	unsigned char *key = sodium_malloc(RK_BACKUP_KEY_BYTES);
	char *b64 = sodium_malloc(b64_len + 1), tmp[4200];
	int r;

	if (key == NULL || b64 == NULL) {
		r = oom(err);
		goto out;
	}
	snprintf(tmp, sizeof(tmp), "%s.new-%ld", key_file, (long)getpid());
	randombytes_buf(key, RK_BACKUP_KEY_BYTES);
	sodium_bin2base64(b64, b64_len, key, RK_BACKUP_KEY_BYTES, sodium_base64_VARIANT_ORIGINAL);
	b64[b64_len - 1] = '\n';	/* over the NUL: the file's text is not a C string */
	if ((r = rk_write_file_atomic(tmp, b64, b64_len, 0600, err)) < 0)
		goto out;
	if ((link(tmp, key_file) < 0 && errno != EEXIST) || fsync_dir(key_file) < 0)
		r = rk_error_set(err, RK_EIO, "cannot create the backup key %s: %s", key_file,
				 strerror(errno));
	unlink(tmp);
out:
	sodium_free(b64);
	sodium_free(key);
	return r;
}

int
rk_backup_key_load(unsigned char **out, const char *key_file, int create, struct rk_error *err)
{
	unsigned char *text = NULL, *key = NULL;
	size_t len = 0, bin_len = 0;
	struct stat st;
	int r;

	if (stat(key_file, &st) != 0 && errno == ENOENT) {
		if (!create)
			return rk_error_set(err, RK_ENOTFOUND,
					    "backup key %s is missing: a backup opens only with the "
					    "key it was written with (backup.key_file)", key_file);
		if ((r = key_create(key_file, err)) < 0)
			return r;
		if (stat(key_file, &st) != 0)
			return rk_error_set(err, RK_EIO, "cannot read the backup key %s: %s",
					    key_file, strerror(errno));
	}
	if ((st.st_mode & 077) != 0)
		return rk_error_set(err, RK_EINVAL,
				    "backup key %s is readable by group or others (mode %03o); run "
				    "chmod 600 %s", key_file, (unsigned)(st.st_mode & 0777), key_file);
	if ((r = read_secure(AT_FDCWD, key_file, key_file, MAX_KEY_FILE, &text, &len, err)) < 0)
		return r;
	if ((key = sodium_malloc(RK_BACKUP_KEY_BYTES)) == NULL) {
		r = rk_error_set(err, RK_ENOMEM, "out of secure memory");
		goto out;
	}
	if (sodium_base642bin(key, RK_BACKUP_KEY_BYTES, (const char *)text, len, " \t\r\n",
			      &bin_len, NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    bin_len != RK_BACKUP_KEY_BYTES) {
		r = rk_error_set(err, RK_EINVAL, "backup key %s is not 32 bytes in base64", key_file);
		goto out;
	}
	*out = key;
	key = NULL;
	r = 0;
out:
	sodium_free(key);
	sodium_free(text);
	return r;
}

/* ---- writing ---- */

struct rk_backup_writer {
	int fd;
	char *tmp;		/* the file being written; "" once published */
	ss_state *st;		/* sodium_malloc: it holds the key */
	unsigned char *buf;	/* plaintext of the message being filled (sodium_malloc) */
	size_t used;
	unsigned char *ct;	/* length + ciphertext of one message */
	uint64_t bytes;
	int finished;
};

static void
put_be(unsigned char *p, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--, v >>= 8)
		p[i] = (unsigned char)(v & 0xff);
}

static uint64_t
get_be(const unsigned char *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static const unsigned char *
stream_ad(void)
{
	static const unsigned char ad[AD_LEN] = { 'R', 'E', 'K', 'E', 'Y', 'B', 'A', 'K', '1',
						   FORMAT_VERSION };
	return ad;
}

static int
flush_chunk(struct rk_backup_writer *w, unsigned char tag, struct rk_error *err)
{
	unsigned long long clen = 0;

	crypto_secretstream_xchacha20poly1305_push(w->st, w->ct + 4, &clen, w->buf, w->used,
						   stream_ad(), AD_LEN, tag);
	put_be(w->ct, clen, 4);
	sodium_memzero(w->buf, w->used);
	w->used = 0;
	if (write_all(w->fd, w->ct, (size_t)clen + 4) < 0)
		return rk_error_set(err, RK_EIO, "cannot write %s: %s", w->tmp, strerror(errno));
	w->bytes += clen + 4;
	return 0;
}

static int
put(struct rk_backup_writer *w, const void *data, size_t len, struct rk_error *err)
{
	const unsigned char *p = data;
	int r;

	while (len > 0) {
		size_t n = CHUNK - w->used < len ? CHUNK - w->used : len;
		memcpy(w->buf + w->used, p, n);
		w->used += n;
		p += n;
		len -= n;
		if (w->used == CHUNK && (r = flush_chunk(w, 0, err)) < 0)
			return r;
	}
	return 0;
}

static int
put_record(struct rk_backup_writer *w, char type, const char *name, unsigned mode,
	   const void *data, size_t len, struct rk_error *err)
{
	unsigned char h[REC_HDR];
	size_t nlen = strlen(name);
	int r;

	if (nlen >= MAX_PATH_LEN)
		return rk_error_set(err, RK_EINVAL, "backup: path too long: %s", name);
	h[0] = (unsigned char)type;
	put_be(h + 1, nlen, 2);
	put_be(h + 3, mode, 4);
	put_be(h + 7, len, 8);
	if ((r = put(w, h, sizeof(h), err)) < 0 || (r = put(w, name, nlen, err)) < 0)
		return r;
	return len ? put(w, data, len, err) : 0;
}

int
rk_backup_writer_open(struct rk_backup_writer **out, const char *path, const unsigned char *key,
		      struct rk_error *err)
{
	struct rk_backup_writer *w = calloc(1, sizeof(*w));
	unsigned char hdr[AD_LEN + SS_HEADER];
	size_t tlen = strlen(path) + 16;
	int r;

	if (w == NULL)
		return oom(err);
	w->fd = -1;
	if ((w->tmp = malloc(tlen)) == NULL || (w->st = sodium_malloc(sizeof(*w->st))) == NULL ||
	    (w->buf = sodium_malloc(CHUNK)) == NULL ||
	    (w->ct = malloc(CHUNK + SS_ABYTES + 4)) == NULL) {
		r = oom(err);
		goto out;
	}
	snprintf(w->tmp, tlen, "%s.tmp-XXXXXX", path);
	if ((w->fd = mkstemp(w->tmp)) < 0 || fchmod(w->fd, 0600) < 0) {
		r = rk_error_set(err, RK_EIO, "cannot create a backup beside %s: %s", path,
				 strerror(errno));
		if (w->fd < 0)
			w->tmp[0] = '\0';
		goto out;
	}
	memcpy(hdr, stream_ad(), AD_LEN);
	crypto_secretstream_xchacha20poly1305_init_push(w->st, hdr + AD_LEN, key);
	if (write_all(w->fd, hdr, sizeof(hdr)) < 0) {
		r = rk_error_set(err, RK_EIO, "cannot write %s: %s", w->tmp, strerror(errno));
		goto out;
	}
	w->bytes = sizeof(hdr);
	*out = w;
	w = NULL;
	r = 0;
out:
	rk_backup_writer_free(w);
	return r;
}

int
rk_backup_writer_add(struct rk_backup_writer *w, const char *name, unsigned mode,
		     const void *data, size_t len, struct rk_error *err)
{
	return put_record(w, S_ISDIR(mode) ? 'D' : 'F', name, mode, data, len, err);
}

int
rk_backup_writer_finish(struct rk_backup_writer *w, const json_t *meta, struct rk_error *err)
{
	char *text = json_dumps(meta, JSON_COMPACT | JSON_SORT_KEYS);
	int r;

	if (text == NULL)
		return oom(err);
	if ((r = put_record(w, 'M', "", 0, text, strlen(text), err)) < 0 ||
	    (r = flush_chunk(w, crypto_secretstream_xchacha20poly1305_TAG_FINAL, err)) < 0)
		goto out;
	if (fsync(w->fd) < 0 || close(w->fd) < 0) {
		w->fd = -1;
		r = rk_error_set(err, RK_EIO, "cannot sync %s: %s", w->tmp, strerror(errno));
		goto out;
	}
	w->fd = -1;
	w->finished = 1;
	r = 0;
out:
	free(text);
	return r;
}

int
rk_backup_writer_publish(struct rk_backup_writer *w, const char *dest, int noreplace,
			 uint64_t *bytes, struct rk_error *err)
{
	if (!w->finished)
		return rk_error_set(err, RK_EINTERNAL, "backup published before it was finished");
	/* link() never replaces a file: two backups of one second both stay. */
	if (noreplace ? link(w->tmp, dest) < 0 : rename(w->tmp, dest) < 0) {
		if (noreplace && errno == EEXIST)
			return RK_ECONFLICT;
		return rk_error_set(err, RK_EIO, "cannot rename %s to %s: %s", w->tmp, dest,
				    strerror(errno));
	}
	if (noreplace)
		unlink(w->tmp);
	w->tmp[0] = '\0';
	if (fsync_dir(dest) < 0)
		return rk_error_set(err, RK_EIO, "cannot sync the directory of %s: %s", dest,
				    strerror(errno));
	if (bytes != NULL)
		*bytes = w->bytes;
	return 0;
}

void
rk_backup_writer_free(struct rk_backup_writer *w)
{
	if (w == NULL)
		return;
	if (w->fd >= 0)
		close(w->fd);
	if (w->tmp != NULL && w->tmp[0] != '\0')
		unlink(w->tmp);
	free(w->tmp);
	free(w->ct);
	sodium_free(w->buf);
	sodium_free(w->st);
	free(w);
}

/* ---- what goes in ---- */

static int
add_file_at(struct rk_backup_writer *w, int dirfd, const char *name, const char *rel,
	    size_t max, unsigned *files, struct rk_error *err)
{
	unsigned char *data = NULL;
	size_t len = 0;
	int r;

	if ((r = read_secure(dirfd, name, rel, max, &data, &len, err)) < 0)
		return r;
	r = rk_backup_writer_add(w, rel, S_IFREG | 0600, data, len, err);
	sodium_free(data);
	if (r == 0)
		(*files)++;
	return r;
}

static int
join_rel(char *out, size_t n, const char *rel, const char *name, struct rk_error *err)
{
	if ((size_t)snprintf(out, n, "%s/%s", rel, name) >= n)
		return rk_error_set(err, RK_EINVAL, "backup: path too long: %s/%s", rel, name);
	return 0;
}

/*
 * One directory of the local store, and below. CURRENT first, then the
 * listing (see the top of the file); a file gone before it is read was a
 * pruned version, left out; temporary files of atomic writes are skipped.
 */
static int
add_tree(struct rk_backup_writer *w, int dirfd, const char *rel, int depth, unsigned *files,
	 struct rk_error *err)
{
	unsigned char *cur = NULL;
	size_t cur_len = 0;
	char sub[MAX_PATH_LEN];
	struct dirent *e;
	DIR *d = NULL;
	int r;

	if (depth > MAX_DEPTH)
		return rk_error_set(err, RK_EINVAL, "backup: %s is nested too deep", rel);
	if ((r = rk_backup_writer_add(w, rel, S_IFDIR | 0700, NULL, 0, err)) < 0)
		return r;
	r = read_secure(dirfd, "CURRENT", rel, MAX_LOCAL_FILE, &cur, &cur_len, err);
	if (r == RK_ENOTFOUND) {
		rk_error_clear(err);
	} else if (r < 0) {
		goto out;
	} else {
		if ((r = join_rel(sub, sizeof(sub), rel, "CURRENT", err)) < 0 ||
		    (r = rk_backup_writer_add(w, sub, S_IFREG | 0600, cur, cur_len, err)) < 0)
			goto out;
		(*files)++;
	}
	{
		int fd2 = dup(dirfd);
		if (fd2 < 0 || (d = fdopendir(fd2)) == NULL) {
			if (fd2 >= 0)
				close(fd2);
			r = rk_error_set(err, RK_EIO, "cannot list %s: %s", rel, strerror(errno));
			goto out;
		}
	}
	while ((e = readdir(d)) != NULL) {
		struct stat st;
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0 ||
		    strcmp(e->d_name, "CURRENT") == 0 || strstr(e->d_name, ".tmp") != NULL)
			continue;
		if ((r = join_rel(sub, sizeof(sub), rel, e->d_name, err)) < 0)
			goto out;
		if (fstatat(dirfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue;
			r = rk_error_set(err, RK_EIO, "cannot read %s: %s", sub, strerror(errno));
			goto out;
		}
		if (S_ISDIR(st.st_mode)) {
			int cfd = openat(dirfd, e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
					 O_CLOEXEC);
			if (cfd < 0) {
				r = rk_error_set(err, RK_EIO, "cannot open %s: %s", sub,
						 strerror(errno));
				goto out;
			}
			r = add_tree(w, cfd, sub, depth + 1, files, err);
			close(cfd);
		} else if (S_ISREG(st.st_mode)) {
			r = add_file_at(w, dirfd, e->d_name, sub, MAX_LOCAL_FILE, files, err);
			if (r == RK_ENOTFOUND) {
				rk_error_clear(err);
				r = 0;
			}
		} else {
			r = rk_error_set(err, RK_EINVAL, "backup: %s is not a file or a directory",
					 sub);
		}
		if (r < 0)
			goto out;
	}
	r = 0;
out:
	if (d != NULL)
		closedir(d);
	sodium_free(cur);
	return r;
}

/* The DB image, the key files and the local store of ctx's state into w. */
static int
add_state(struct rk_ctx *ctx, struct rk_backup_writer *w, int64_t *audit_rows,
	  unsigned *files, struct rk_error *err)
{
	static const char *const keys[] = { "master.key", "fingerprint.key" };
	unsigned char *image = NULL;
	size_t len = 0;
	int sfd = -1, lfd = -1, r;

	if ((r = rk_store_snapshot(ctx->store, &image, &len, audit_rows, err)) < 0)
		return r;
	if ((r = rk_backup_writer_add(w, "rekey.db", S_IFREG | 0600, image, len, err)) < 0)
		goto out;
	(*files)++;
	if ((sfd = open(ctx->cfg->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		r = rk_error_set(err, RK_EIO, "cannot open %s: %s", ctx->cfg->state_dir,
				 strerror(errno));
		goto out;
	}
	for (size_t i = 0; i < RK_ARRAY_SIZE(keys); i++)
		if ((r = add_file_at(w, sfd, keys[i], keys[i], MAX_KEY_FILE, files, err)) < 0)
			goto out;
	if ((lfd = openat(sfd, "local", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) >= 0)
		r = add_tree(w, lfd, "local", 0, files, err);
	else if (errno != ENOENT)
		r = rk_error_set(err, RK_EIO, "cannot open %s/local: %s", ctx->cfg->state_dir,
				 strerror(errno));
out:
	if (lfd >= 0)
		close(lfd);
	if (sfd >= 0)
		close(sfd);
	rk_store_image_free(image, len);
	return r;
}

/*
 * One backup of ctx's state, published under dest; with noreplace, dest is
 * "<base>" and the file is <base>.bak, or <base>-N.bak when that exists.
 */
static int
backup_to(struct rk_ctx *ctx, const char *dest, int noreplace, char *written, size_t wn,
	  json_t **info, struct rk_error *err)
{
	struct rk_backup_writer *w = NULL;
	unsigned char *key = NULL;
	json_t *meta = NULL;
	int64_t rows = 0, now = rk_now(ctx);
	uint64_t bytes = 0;
	unsigned files = 0;
	char path[4096];
	int r;

	if ((size_t)snprintf(path, sizeof(path), noreplace ? "%s.bak" : "%s", dest) >= sizeof(path))
		return rk_error_set(err, RK_EINVAL, "backup path too long: %s", dest);
	if ((r = rk_backup_key_load(&key, ctx->cfg->backup.key_file, 1, err)) < 0 ||
	    (r = rk_backup_writer_open(&w, path, key, err)) < 0 ||
	    (r = add_state(ctx, w, &rows, &files, err)) < 0)
		goto out;
	meta = json_pack("{s:i, s:I, s:I, s:i, s:s}", "format", FORMAT_VERSION, "created_at",
			 (json_int_t)now, "audit_rows", (json_int_t)rows, "files", (int)files,
			 "state_dir", ctx->cfg->state_dir);
	if (meta == NULL) {
		r = oom(err);
		goto out;
	}
	if ((r = rk_backup_writer_finish(w, meta, err)) < 0)
		goto out;
	for (int i = 1; (r = rk_backup_writer_publish(w, path, noreplace, &bytes, err)) ==
			RK_ECONFLICT; i++) {
		if (i > 999) {
			r = rk_error_set(err, RK_ECONFLICT, "backup: %s.bak and 999 others exist",
					 dest);
			goto out;
		}
		snprintf(path, sizeof(path), "%s-%d.bak", dest, i);
	}
	if (r < 0)
		goto out;
	if (written != NULL)
		snprintf(written, wn, "%s", path);
	if (info != NULL &&
	    (*info = json_pack("{s:s, s:I, s:I, s:I, s:i}", "path", path, "bytes",
			       (json_int_t)bytes, "created_at", (json_int_t)now, "audit_rows",
			       (json_int_t)rows, "files", (int)files)) == NULL)
		r = oom(err);
out:
	json_decref(meta);
	rk_backup_writer_free(w);
	sodium_free(key);
	return r;
}

int
rk_backup_write(struct rk_ctx *ctx, const char *path, json_t **info, struct rk_error *err)
{
	return backup_to(ctx, path, 0, NULL, 0, info, err);
}

/* ---- scheduled backups and their retention ---- */

/*
 * A name of a scheduled backup: "rekey-YYYYmmddTHHMMSSZ.bak" or with "-N"
 * before ".bak"; *t its time, *n its N (0 without). Anything else: -1.
 */
static int
sched_name(const char *name, int64_t *t, long long *n)
{
	struct tm tm = { 0 };
	const char *end;
	size_t len = strlen(name);
	char num[16];

	if (len < 26 || strncmp(name, "rekey-", 6) != 0 || strcmp(name + len - 4, ".bak") != 0)
		return -1;
	end = strptime(name + 6, "%Y%m%dT%H%M%SZ", &tm);
	if (end == NULL || end != name + 22)
		return -1;
	*n = 0;
	if (len > 26) {
		if (name[22] != '-' || len - 27 >= sizeof(num))
			return -1;
		memcpy(num, name + 23, len - 27);
		num[len - 27] = '\0';
		if (rk_parse_int(num, 1, 999, n) < 0)
			return -1;
	}
	*t = (int64_t)timegm(&tm);
	return 0;
}

struct sched {
	int64_t t;
	long long n;
	char name[64];
};

static int
sched_cmp(const void *a, const void *b)
{
	const struct sched *x = a, *y = b;

	if (x->t != y->t)
		return x->t < y->t ? -1 : 1;
	return x->n < y->n ? -1 : x->n > y->n;
}

/* The scheduled backups in dir, oldest first (*list NULL when none). */
static int
sched_list(const char *dir, struct sched **list, size_t *count)
{
	struct sched *v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	DIR *d = opendir(dir);

	*list = NULL;
	*count = 0;
	if (d == NULL)
		return errno == ENOENT ? 0 : -1;
	while ((e = readdir(d)) != NULL) {
		struct sched s;
		if (strlen(e->d_name) >= sizeof(s.name) || sched_name(e->d_name, &s.t, &s.n) < 0)
			continue;
		snprintf(s.name, sizeof(s.name), "%s", e->d_name);
		if (n == cap) {
			struct sched *nv = realloc(v, (cap = cap ? cap * 2 : 16) * sizeof(*v));
			if (nv == NULL) {
				free(v);
				closedir(d);
				return -1;
			}
			v = nv;
		}
		v[n++] = s;
	}
	closedir(d);
	if (n > 0)
		qsort(v, n, sizeof(*v), sched_cmp);
	*list = v;
	*count = n;
	return 0;
}

int
rk_backup_scheduled(struct rk_ctx *ctx, char *out_path, size_t n, struct rk_error *err)
{
	const struct rk_config_backup *b = &ctx->cfg->backup;
	char base[4096], stamp[32], written[4096];
	struct sched *list = NULL;
	size_t count = 0;
	time_t now = (time_t)rk_now(ctx);
	struct tm tm;
	int r;

	if ((r = rk_mkdir_p(b->dir, 0700, err)) < 0)
		return r;
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	if ((size_t)snprintf(base, sizeof(base), "%s/rekey-%s", b->dir, stamp) >= sizeof(base))
		return rk_error_set(err, RK_EINVAL, "backup.dir is too long: %s", b->dir);
	if ((r = backup_to(ctx, base, 1, written, sizeof(written), NULL, err)) < 0)
		return r;
	if (out_path != NULL)
		snprintf(out_path, n, "%s", written);
	if (sched_list(b->dir, &list, &count) < 0)
		return rk_error_set(err, RK_EIO, "cannot list %s for the retention of backups: %s",
				    b->dir, strerror(errno));
	for (size_t i = 0; i + (size_t)b->keep < count; i++) {
		char old[4200];
		snprintf(old, sizeof(old), "%s/%s", b->dir, list[i].name);
		if (unlink(old) < 0 && errno != ENOENT && r == 0)
			r = rk_error_set(err, RK_EIO, "backup written to %s, but cannot remove the "
					 "old backup %s: %s", written, old, strerror(errno));
	}
	free(list);
	return r;
}

int64_t
rk_backup_last(const struct rk_config *cfg)
{
	struct sched *list = NULL;
	size_t count = 0;
	int64_t t = 0;

	if (sched_list(cfg->backup.dir, &list, &count) == 0 && count > 0)
		t = list[count - 1].t;
	free(list);
	return t;
}

/* ---- reading ---- */

/* The archive parser, fed the plaintext of the stream's messages in order. */
struct unpack {
	int dirfd;		/* the directory unpacked into */
	unsigned char hdr[REC_HDR];
	char path[MAX_PATH_LEN];
	size_t have;		/* bytes of hdr or path collected */
	int state;		/* 0 header, 1 path, 2 data, 3 after the metadata */
	char type;
	unsigned mode;
	size_t path_len;
	uint64_t left;		/* data bytes still to come */
	int fd;			/* the file being written */
	char *meta;		/* the metadata's text (MAX_META + 1) */
	size_t meta_len;
};

/* A path of the archive: relative, no "..", "." or empty component. */
static int
path_ok(const char *p)
{
	if (p[0] == '\0' || p[0] == '/')
		return 0;
	for (const char *s = p; *s;) {
		size_t n = strcspn(s, "/");
		if (n == 0 || (n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
			return 0;
		s += n;
		if (*s == '/')
			s++;
		if (*s == '\0' && s[-1] == '/')
			return 0;
	}
	return 1;
}

static int
bad(struct rk_error *err, const char *what)
{
	return rk_error_set(err, RK_EINVAL, "the backup is damaged: %s", what);
}

/* A record's header and path are in: check them and open what it makes. */
static int
begin_entry(struct unpack *u, struct rk_error *err)
{
	u->path[u->path_len] = '\0';
	if (u->type == 'M') {
		if (u->path_len != 0 || u->left > MAX_META)
			return bad(err, "bad metadata record");
		return 0;
	}
	if (memchr(u->path, '\0', u->path_len) != NULL || !path_ok(u->path))
		return rk_error_set(err, RK_EINVAL, "the backup holds a path outside the state "
				    "directory ('%s'); refusing it", u->path);
	if (u->type == 'D') {
		if (u->left != 0)
			return bad(err, "a directory with data");
		if (mkdirat(u->dirfd, u->path, 0700) < 0)
			return rk_error_set(err, RK_EIO, "cannot create %s: %s", u->path,
					    strerror(errno));
		return 0;
	}
	if (u->type != 'F' || u->left > MAX_FILE_DATA)
		return bad(err, "unknown record");
	u->fd = openat(u->dirfd, u->path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		       (mode_t)(u->mode & 0600));
	if (u->fd < 0)
		return rk_error_set(err, RK_EIO, "cannot create %s: %s", u->path, strerror(errno));
	return 0;
}

static int
end_entry(struct unpack *u, struct rk_error *err)
{
	if (u->type == 'M') {
		u->state = 3;
		return 0;
	}
	u->state = 0;
	if (u->fd >= 0) {
		int r = fsync(u->fd);
		close(u->fd);
		u->fd = -1;
		if (r < 0)
			return rk_error_set(err, RK_EIO, "cannot sync %s: %s", u->path,
					    strerror(errno));
	}
	return 0;
}

static int
feed(struct unpack *u, const unsigned char *p, size_t n, struct rk_error *err)
{
	int r;

	while (n > 0) {
		size_t k;
		switch (u->state) {
		case 0:
			k = REC_HDR - u->have < n ? REC_HDR - u->have : n;
			memcpy(u->hdr + u->have, p, k);
			u->have += k;
			if (u->have == REC_HDR) {
				u->type = (char)u->hdr[0];
				u->path_len = (size_t)get_be(u->hdr + 1, 2);
				u->mode = (unsigned)get_be(u->hdr + 3, 4);
				u->left = get_be(u->hdr + 7, 8);
				u->have = 0;
				if (u->path_len >= MAX_PATH_LEN)
					return bad(err, "a path too long");
				u->state = 1;
				if (u->path_len == 0 && (r = begin_entry(u, err)) < 0)
					return r;
				if (u->path_len == 0)
					u->state = 2;
			}
			break;
		case 1:
			k = u->path_len - u->have < n ? u->path_len - u->have : n;
			memcpy(u->path + u->have, p, k);
			u->have += k;
			if (u->have == u->path_len) {
				u->have = 0;
				if ((r = begin_entry(u, err)) < 0)
					return r;
				u->state = 2;
			}
			break;
		case 2:
			k = u->left < n ? (size_t)u->left : n;
			if (u->type == 'M') {
				memcpy(u->meta + u->meta_len, p, k);
				u->meta_len += k;
			} else if (k > 0 && write_all(u->fd, p, k) < 0) {
				return rk_error_set(err, RK_EIO, "cannot write %s: %s", u->path,
						    strerror(errno));
			}
			u->left -= k;
			break;
		default:
			return bad(err, "data after the end");
		}
		p += k;
		n -= k;
		if (u->state == 2 && u->left == 0 && (r = end_entry(u, err)) < 0)
			return r;
	}
	return 0;
}

/* One message of the stream: its length, then its ciphertext into ct (CHUNK + ABYTES). */
static int
read_message(int fd, const char *path, unsigned char *lenb, unsigned char *ct, uint64_t *clen,
	     struct rk_error *err)
{
	size_t got = 0;

	if (read_all(fd, lenb, 4, &got) < 0)
		return rk_error_set(err, RK_EIO, "cannot read %s: %s", path, strerror(errno));
	if (got < 4)
		return rk_error_set(err, RK_EINVAL, "%s is cut short (truncated): it ends before "
				    "its last part", path);
	*clen = get_be(lenb, 4);
	if (*clen < SS_ABYTES || *clen > CHUNK + SS_ABYTES)
		return rk_error_set(err, RK_EINVAL, "%s is damaged: a part of %llu bytes", path,
				    (unsigned long long)*clen);
	if (read_all(fd, ct, (size_t)*clen, &got) < 0)
		return rk_error_set(err, RK_EIO, "cannot read %s: %s", path, strerror(errno));
	if (got < *clen)
		return rk_error_set(err, RK_EINVAL, "%s is cut short (truncated): it ends before "
				    "its last part", path);
	return 0;
}

int
rk_backup_unpack(const char *path, const unsigned char *key, const char *dir, json_t **meta,
		 struct rk_error *err)
{
	struct unpack u = { .dirfd = -1, .fd = -1 };
	unsigned char hdr[AD_LEN + SS_HEADER], lenb[4], *ct = NULL, *pt = NULL, tag = 0;
	ss_state *st = NULL;
	json_error_t jerr;
	size_t got;
	int fd, r;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return rk_error_set(err, errno == ENOENT ? RK_ENOTFOUND : RK_EIO,
				    "cannot read %s: %s", path, strerror(errno));
	if ((u.dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		r = rk_error_set(err, RK_EIO, "cannot open %s: %s", dir, strerror(errno));
		goto out;
	}
	if ((st = sodium_malloc(sizeof(*st))) == NULL || (pt = sodium_malloc(CHUNK)) == NULL ||
	    (ct = malloc(CHUNK + SS_ABYTES)) == NULL || (u.meta = malloc(MAX_META + 1)) == NULL) {
		r = oom(err);
		goto out;
	}
	if (read_all(fd, hdr, sizeof(hdr), &got) < 0) {
		r = rk_error_set(err, RK_EIO, "cannot read %s: %s", path, strerror(errno));
		goto out;
	}
	if (got < AD_LEN || memcmp(hdr, MAGIC, MAGIC_LEN) != 0) {
		r = rk_error_set(err, RK_EINVAL, "%s is not a rekey backup", path);
		goto out;
	}
	if (hdr[MAGIC_LEN] != FORMAT_VERSION) {
		r = rk_error_set(err, RK_EINVAL, "%s is a backup of format %u, which this rekey "
				 "does not read (it reads %d)", path, hdr[MAGIC_LEN], FORMAT_VERSION);
		goto out;
	}
	if (got < sizeof(hdr) ||
	    crypto_secretstream_xchacha20poly1305_init_pull(st, hdr + AD_LEN, key) != 0) {
		r = rk_error_set(err, RK_EINVAL, "%s is cut short", path);
		goto out;
	}
	while (tag != crypto_secretstream_xchacha20poly1305_TAG_FINAL) {
		unsigned long long plen = 0;
		uint64_t clen = 0;
		if ((r = read_message(fd, path, lenb, ct, &clen, err)) < 0)
			goto out;
		if (crypto_secretstream_xchacha20poly1305_pull(st, pt, &plen, &tag, ct, (size_t)clen,
							       stream_ad(), AD_LEN) != 0) {
			r = rk_error_set(err, RK_EINVAL, "%s does not decrypt: it was written with "
					 "another backup key, or changed since", path);
			goto out;
		}
		r = feed(&u, pt, (size_t)plen, err);
		sodium_memzero(pt, CHUNK);
		if (r < 0)
			goto out;
	}
	if (read_all(fd, lenb, 1, &got) < 0 || got != 0 || u.state != 3) {
		r = bad(err, got != 0 ? "data after the end" : "the archive ends early");
		goto out;
	}
	u.meta[u.meta_len] = '\0';
	if ((*meta = json_loads(u.meta, 0, &jerr)) == NULL || !json_is_object(*meta)) {
		json_decref(*meta);
		*meta = NULL;
		r = bad(err, "bad metadata");
		goto out;
	}
	r = 0;
out:
	if (u.fd >= 0)
		close(u.fd);
	if (u.dirfd >= 0)
		close(u.dirfd);
	free(u.meta);
	free(ct);
	sodium_free(pt);
	sodium_free(st);
	close(fd);
	return r;
}

/* ---- restore ---- */

static int
rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb, (void)flag, (void)ftw;
	return remove(p);
}

static void
rm_tree(const char *dir)
{
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* The restored state in dir opens, is intact and its audit chain verifies. */
static int
check_restored(const char *dir, int64_t *rows, struct rk_error *err)
{
	struct rk_store *s = NULL;
	struct rk_keys *k = NULL;
	int r;

	if ((r = rk_keys_load(&k, dir, err)) < 0 || (r = rk_store_open(&s, dir, 0, err)) < 0 ||
	    (r = rk_store_integrity_check(s, err)) < 0 || (r = rk_audit_verify(s, k, rows, err)) < 0)
		rk_error_prefix(err, "the backup's state fails its checks: ");
	rk_store_close(s);
	rk_keys_free(k);
	return r;
}

/* What a backup holds (and the old DB's own files): all else moves into the restored state. */
static int
restored_name(const char *name)
{
	static const char *const names[] = { "rekey.db", "rekey.db-wal", "rekey.db-shm",
		"rekey.db-journal", "rekey.lock", "master.key", "fingerprint.key", "local" };

	for (size_t i = 0; i < RK_ARRAY_SIZE(names); i++)
		if (strcmp(name, names[i]) == 0)
			return 1;
	return strcmp(name, ".") == 0 || strcmp(name, "..") == 0;
}

/* Moves what the backup does not hold (backups, backup.key, api.token...) from old into dir. */
static void
carry_over(const char *old, const char *dir)
{
	struct dirent *e;
	DIR *d = opendir(old);
	int ofd = d ? dirfd(d) : -1, nfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	while (d != NULL && nfd >= 0 && (e = readdir(d)) != NULL)
		if (!restored_name(e->d_name))
			(void)renameat(ofd, e->d_name, nfd, e->d_name);
	if (d != NULL)
		closedir(d);
	if (nfd >= 0) {
		fsync(nfd);
		close(nfd);
	}
}

/* Swaps the directories a and b: atomic where the kernel can, else two renames. */
static int
swap_dirs(const char *a, const char *b, struct rk_error *err)
{
	char tmp[4200];

	if (renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return rk_error_set(err, RK_EIO, "cannot swap %s and %s: %s", a, b, strerror(errno));
	snprintf(tmp, sizeof(tmp), "%s.swap", a);
	if (rename(b, tmp) < 0)
		return rk_error_set(err, RK_EIO, "cannot rename %s: %s", b, strerror(errno));
	if (rename(a, b) < 0) {
		int r = rk_error_set(err, RK_EIO, "cannot rename %s to %s: %s", a, b,
				     strerror(errno));
		(void)rename(tmp, b);
		return r;
	}
	if (rename(tmp, a) < 0)
		return rk_error_set(err, RK_EIO, "cannot rename %s to %s: %s", tmp, a,
				    strerror(errno));
	return 0;
}

/* Closes ctx's providers, store and keys: the state under them is about to move. */
static void
close_state(struct rk_ctx *ctx)
{
	if (ctx->providers != NULL)
		for (size_t i = 0; i < ctx->cfg->nproviders; i++) {
			rk_provider_close(ctx->providers[i]);
			ctx->providers[i] = NULL;
		}
	rk_store_close(ctx->store);
	rk_keys_free(ctx->keys);
	ctx->store = NULL;
	ctx->keys = NULL;
}

int
rk_backup_restore(struct rk_ctx *ctx, const char *path, json_t **info, struct rk_error *err)
{
	const char *sd = ctx->cfg->state_dir;
	size_t plen = strlen(sd) + 64;
	char *tmp = malloc(plen), *aside = malloc(plen), *from = realpath(path, NULL), stamp[32];
	unsigned char *key = NULL;
	json_t *meta = NULL, *detail = NULL;
	int64_t rows = 0, created;
	time_t now = (time_t)rk_now(ctx);
	struct tm tm;
	int new_lock = -1, swapped = 0, r;

	if (tmp == NULL || aside == NULL) {
		r = oom(err);
		goto out;
	}
	tmp[0] = '\0';
	if ((r = rk_mkdir_p(sd, 0700, err)) < 0 ||
	    (ctx->lock_fd < 0 && (r = rk_state_lock(sd, &ctx->lock_fd, err)) < 0) ||
	    (r = rk_backup_key_load(&key, ctx->cfg->backup.key_file, 0, err)) < 0)
		goto out;
	snprintf(tmp, plen, "%s.restore-XXXXXX", sd);
	if (mkdtemp(tmp) == NULL) {
		r = rk_error_set(err, RK_EIO, "cannot create %s beside the state dir: %s", tmp,
				 strerror(errno));
		tmp[0] = '\0';
		goto out;
	}
	if ((r = rk_backup_unpack(path, key, tmp, &meta, err)) < 0 ||
	    (r = check_restored(tmp, &rows, err)) < 0)
		goto out;
	created = json_integer_value(json_object_get(meta, "created_at"));
	/* Locked before it is in place: no other rekey gets in between. */
	if ((r = rk_state_lock(tmp, &new_lock, err)) < 0)
		goto out;
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	snprintf(aside, plen, "%s.pre-restore-%s", sd, stamp);
	for (int i = 1; access(aside, F_OK) == 0 && i < 1000; i++)
		snprintf(aside, plen, "%s.pre-restore-%s-%d", sd, stamp, i);
	close_state(ctx);
	if ((r = swap_dirs(tmp, sd, err)) < 0)
		goto out;
	swapped = 1;
	/* tmp is now the old state. */
	if (rename(tmp, aside) < 0) {
		snprintf(aside, plen, "%s", tmp);
	}
	tmp[0] = '\0';
	carry_over(aside, sd);
	(void)fsync_dir(sd);
	rk_state_unlock(ctx->lock_fd);
	ctx->lock_fd = new_lock;
	new_lock = -1;
	if ((r = rk_store_open(&ctx->store, sd, 0, err)) < 0 ||
	    (r = rk_keys_load(&ctx->keys, sd, err)) < 0)
		goto out;
	detail = json_pack("{s:s, s:I, s:s, s:I}", "from", from ? from : path, "created_at", (json_int_t)created,
			   "previous_state", aside, "audit_rows", (json_int_t)rows);
	if (detail == NULL) {
		r = oom(err);
		goto out;
	}
	if ((r = rk_audit(ctx, "state.restored", sd, detail, err)) < 0)
		goto out;
	if (info != NULL &&
	    (*info = json_pack("{s:s, s:I, s:I, s:s}", "restored_from", from ? from : path, "created_at",
			       (json_int_t)created, "audit_rows", (json_int_t)rows,
			       "previous_state", aside)) == NULL)
		r = oom(err);
out:
	if (r < 0 && swapped)
		rk_error_prefix(err, "the state was restored (the old one is in %s), but: ", aside);
	if (tmp != NULL && tmp[0] != '\0')
		rm_tree(tmp);
	rk_state_unlock(new_lock);
	json_decref(detail);
	json_decref(meta);
	sodium_free(key);
	free(from);
	free(aside);
	free(tmp);
	return r;
}
