/*
 * Encrypted backups of the state, and restoring one (README: "Backup and
 * restore").
 *
 * A backup file is "REKEYBAK1", a format version byte and a libsodium
 * secretstream (XChaCha20-Poly1305) header, then the stream's messages, each
 * a 4-byte big-endian length and the ciphertext of up to 64 KiB; the last
 * one is tagged FINAL, so a truncated file is found out, and each message
 * is authenticated with the 10-byte magic and version as associated data.
 * Inside, an archive of records: a type ('F' file, 'D' directory, 'M' the
 * metadata, last), a 2-byte path length, a 4-byte mode, an 8-byte data
 * length (all big-endian), the path and the data. Paths are relative to the
 * state dir; a path that is absolute or holds "..", "." or an empty part is
 * refused on restore.
 *
 * The key: 32 random bytes, base64, in cfg->backup.key_file (0600; made by
 * the first backup). Key bytes live in sodium_malloc memory only.
 */
#ifndef REKEY_BACKUP_H
#define REKEY_BACKUP_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "rekey/error.h"

struct rk_ctx;
struct rk_config;

/*
 * Writes a consistent encrypted backup of ctx's open state to path (see
 * README). *info (may be NULL) gets {path, bytes, created_at, audit_rows,
 * files}. Thread-safe with respect to other store users.
 */
int rk_backup_write(struct rk_ctx *ctx, const char *path, json_t **info,
		    struct rk_error *err) RK_WARN_UNUSED;
/*
 * The daemon's scheduled backup: writes
 * <cfg->backup.dir>/rekey-<YYYYmmddTHHMMSSZ>.bak (dir created 0700), then
 * deletes the oldest rekey-*.bak there beyond cfg->backup.keep. out_path
 * (may be NULL) gets the file written.
 */
int rk_backup_scheduled(struct rk_ctx *ctx, char *out_path, size_t n,
			struct rk_error *err) RK_WARN_UNUSED;
/* The creation time (Unix seconds) of the newest rekey-*.bak in cfg->backup.dir, 0 when none. */
int64_t rk_backup_last(const struct rk_config *cfg);

/*
 * Restores the backup at path into ctx->cfg->state_dir: takes the state
 * lock (RK_EBUSY when held; ctx->lock_fd then holds it), decrypts and
 * unpacks into <state_dir>.restore-XXXXXX, checks the DB's integrity and
 * audit chain there, then swaps it with the state dir; the old state is
 * kept as <state_dir>.pre-restore-<UTC time>, and what the backup does not
 * hold (backups, backup.key, api.token, ...) is moved back into the new
 * state dir. ctx's store and keys (closed first when open) are those of the
 * restored state on success, with a state.restored audit row appended.
 * Any error before the swap leaves the state as it was. *info (may be NULL)
 * gets {restored_from, created_at, audit_rows, previous_state}.
 */
int rk_backup_restore(struct rk_ctx *ctx, const char *path, json_t **info,
		      struct rk_error *err) RK_WARN_UNUSED;

/* ---- the file format, for the functions above and tests ---- */

#define RK_BACKUP_KEY_BYTES 32

/*
 * The backup key of key_file into *key (sodium_malloc'd; sodium_free).
 * create: make a new one (0600) when the file is missing. A file readable
 * by group or others is refused (RK_EINVAL).
 */
int rk_backup_key_load(unsigned char **key, const char *key_file, int create,
		       struct rk_error *err) RK_WARN_UNUSED;

struct rk_backup_writer;
/* Starts a backup in a temporary file (0600) in the directory of path. */
int rk_backup_writer_open(struct rk_backup_writer **out, const char *path,
			  const unsigned char *key, struct rk_error *err) RK_WARN_UNUSED;
/* One entry: a directory when S_ISDIR(mode) (data NULL), else a file. */
int rk_backup_writer_add(struct rk_backup_writer *w, const char *name, unsigned mode,
			 const void *data, size_t len, struct rk_error *err) RK_WARN_UNUSED;
/* Appends the metadata (borrowed), ends the stream and syncs the temporary file. */
int rk_backup_writer_finish(struct rk_backup_writer *w, const json_t *meta,
			    struct rk_error *err) RK_WARN_UNUSED;
/*
 * Renames the finished file to dest (in the directory of the open's path);
 * noreplace: RK_ECONFLICT when dest exists, and the file can be published
 * under another name. *bytes gets its size.
 */
int rk_backup_writer_publish(struct rk_backup_writer *w, const char *dest, int noreplace,
			     uint64_t *bytes, struct rk_error *err) RK_WARN_UNUSED;
/* Frees w; a file not published is removed. NULL is fine. */
void rk_backup_writer_free(struct rk_backup_writer *w);

/*
 * Decrypts the backup at path and unpacks it into dir (existing, empty).
 * *meta gets the metadata. RK_EINVAL for a file that is not a backup, was
 * changed or cut short, or is under another key (dir may then hold part of
 * it: the caller removes it).
 */
int rk_backup_unpack(const char *path, const unsigned char *key, const char *dir,
		     json_t **meta, struct rk_error *err) RK_WARN_UNUSED;

#endif
