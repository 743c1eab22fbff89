/* archiver.h - artifact archives with libarchive: streaming creation and safe extraction. */
#ifndef RN_ARCHIVER_H
#define RN_ARCHIVER_H

#include <stddef.h>
#include <stdint.h>

typedef struct rn_archive_info {
	uint64_t bytes;   /* size of the archive file */
	uint64_t files;   /* files written (entries that are not directories) */
	uint64_t entries; /* all entries written, directories included */
	char sha256[65];  /* hex digest of the archive file */
} rn_archive_info;

/* 1 if format is one of tar.gz, tar.xz, tar.zst, zip. */
int rn_archive_format_ok(const char *format);
/* Write an archive of format at out_path from the files under root matching include globs and
 * no exclude glob (glob.h), streaming (never whole in memory); modes kept, symlinks stored as
 * links. RN_ENOTFOUND if nothing matched. info may be NULL. */
int rn_archive_create(const char *out_path, const char *format, const char *root,
		      const char *const *include, size_t ninclude, const char *const *exclude,
		      size_t nexclude, rn_archive_info *info);
/* Extract archive_path (any format libarchive reads) into dest_dir (created if missing),
 * refusing absolute paths, `..` components, links that point outside dest_dir and device files;
 * a refused entry fails the whole extraction with RN_EINVALID naming the entry. */
int rn_archive_extract(const char *archive_path, const char *dest_dir);
/* rn_archive_extract with caps: RN_ETOOBIG once more than max_bytes of content or more than
 * max_entries entries would be written (0: no cap). What was written before stays. */
int rn_archive_extract_limit(const char *archive_path, const char *dest_dir, uint64_t max_bytes,
			     uint64_t max_entries);
/* Hex sha256 of a file into out[65]; 0 or <0. */
int rn_sha256_file(const char *path, char out[65]);

#endif
