/* archiver.c - artifact archives with libarchive: streaming creation and safe extraction. */
#include "archiver.h"
#include "error.h"
#include "glob.h"
#include "util.h"

/* runner/archive.h shadows <archive.h> under -Irunner: reach libarchive's header past it */
#include <archive.h>
#include <archive_entry.h>
#include <openssl/evp.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK (64 * 1024)
/* libarchive's LA_ERRNO_MISC (private header): its own refusals carry this errno */
#define LA_ERRNO_MISC (-1)

int rn_archive_format_ok(const char *format)
{
	return format && (strcmp(format, "tar.gz") == 0 || strcmp(format, "tar.xz") == 0 ||
			  strcmp(format, "tar.zst") == 0 || strcmp(format, "zip") == 0);
}

static void hex_digest(const unsigned char *md, unsigned len, char out[65])
{
	static const char hx[] = "0123456789abcdef";
	for (unsigned i = 0; i < len && i < 32; i++) {
		out[2 * i] = hx[md[i] >> 4];
		out[2 * i + 1] = hx[md[i] & 15];
	}
	out[64] = '\0';
}

static int digest_final(EVP_MD_CTX *md, char out[65])
{
	unsigned char buf[EVP_MAX_MD_SIZE];
	unsigned len = 0;
	if (EVP_DigestFinal_ex(md, buf, &len) != 1 || len != 32)
		return rn_error_set("sha256: digest failed");
	hex_digest(buf, len, out);
	return 0;
}

static EVP_MD_CTX *digest_new(void)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	if (!md)
		return NULL;
	if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(md);
		return NULL;
	}
	return md;
}

int rn_sha256_file(const char *path, char out[65])
{
	int rc = 0, fd = -1;
	char *buf = NULL;
	EVP_MD_CTX *md = digest_new();
	if (!md)
		return rn_error_set("sha256: cannot initialise the digest");
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		rc = rn_error_errno("open %s", path);
		if (errno == ENOENT)
			rc = RN_ENOTFOUND;
		goto done;
	}
	buf = rn_xmalloc(CHUNK);
	for (;;) {
		ssize_t n = read(fd, buf, CHUNK);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = rn_error_errno("read %s", path);
			goto done;
		}
		if (n == 0)
			break;
		if (EVP_DigestUpdate(md, buf, (size_t)n) != 1) {
			rc = rn_error_set("sha256: digest failed");
			goto done;
		}
	}
	rc = digest_final(md, out);
done:
	if (fd >= 0)
		close(fd);
	free(buf);
	EVP_MD_CTX_free(md);
	return rc;
}

/* --- creation ----------------------------------------------------------------------------- */

/* Where libarchive's output goes: the temp file, hashed and counted on the way. */
typedef struct sink {
	int fd;
	EVP_MD_CTX *md;
	uint64_t bytes;
} sink;

static la_ssize_t sink_write(struct archive *a, void *data, const void *buf, size_t n)
{
	sink *s = data;
	if (rn_write_all(s->fd, buf, n) < 0) {
		archive_set_error(a, errno, "%s", rn_error_last());
		return -1;
	}
	if (EVP_DigestUpdate(s->md, buf, n) != 1) {
		archive_set_error(a, LA_ERRNO_MISC, "sha256: digest failed");
		return -1;
	}
	s->bytes += n;
	return (la_ssize_t)n;
}

typedef struct create_ctx {
	struct archive *a;
	struct archive_entry *entry;
	const char *root;
	int rootfd;
	struct stat skip[2]; /* the temp file and an existing out_path: never archived */
	size_t nskip;
	uint64_t files;
	uint64_t nondirs; /* entries that are not directories: an archive of only directories is empty */
	char *buf;
} create_ctx;

static int archive_fail(create_ctx *c, const char *what, const char *rel)
{
	int err = archive_errno(c->a);
	rn_error_set("%s %s: %s", what, rel,
		     archive_error_string(c->a) ? archive_error_string(c->a) : "archive error");
	return err > 0 && err != EINVAL && err != EILSEQ ? RN_EIO : RN_ERROR;
}

static int add_symlink(create_ctx *c, const char *rel, const struct stat *st)
{
	size_t cap = st->st_size > 0 ? (size_t)st->st_size + 1 : 256;
	char *target = NULL;
	int rc = 0;
	for (;;) {
		target = rn_xreallocarray(target, cap, 1);
		ssize_t n = readlinkat(c->rootfd, rel, target, cap);
		if (n < 0) {
			rc = errno == ENOENT || errno == EINVAL ? 1 : rn_error_errno("readlink %s/%s", c->root, rel);
			goto done;
		}
		if ((size_t)n < cap) {
			target[n] = '\0';
			break;
		}
		if (cap >= 1024 * 1024) {
			rc = rn_error_set("readlink %s/%s: target too long", c->root, rel);
			goto done;
		}
		cap *= 2;
	}
	archive_entry_copy_stat(c->entry, st);
	archive_entry_set_size(c->entry, 0);
	archive_entry_copy_symlink(c->entry, target);
done:
	free(target);
	return rc;
}

/* Stream the regular file open at fd (size from the header) into the archive. */
static int copy_file_data(create_ctx *c, int fd, const char *rel, int64_t size)
{
	int64_t left = size;
	while (left > 0) {
		size_t want = left < CHUNK ? (size_t)left : CHUNK;
		ssize_t n = read(fd, c->buf, want);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return rn_error_errno("read %s/%s", c->root, rel);
		}
		if (n == 0) {
			/* the header promised more: never pad silently with zeros */
			rn_error_set("%s/%s: file shrank while it was archived", c->root, rel);
			return RN_EIO;
		}
		for (ssize_t off = 0; off < n;) {
			la_ssize_t w = archive_write_data(c->a, c->buf + off, (size_t)(n - off));
			if (w <= 0)
				return archive_fail(c, "write", rel);
			off += w;
		}
		left -= n;
	}
	return 0;
}

static int add_entry(const char *rel, const struct stat *wst, void *payload)
{
	create_ctx *c = payload;
	struct stat st = *wst;
	int fd = -1, rc = 0;

	for (size_t i = 0; i < c->nskip; i++)
		if (c->skip[i].st_dev == st.st_dev && c->skip[i].st_ino == st.st_ino)
			return 0;

	archive_entry_clear(c->entry);
	if (S_ISREG(st.st_mode)) {
		fd = openat(c->rootfd, rel, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
		if (fd < 0) {
			if (errno == ENOENT)
				return 0; /* vanished since the walk saw it */
			return rn_error_errno("open %s/%s", c->root, rel);
		}
		if (fstat(fd, &st) < 0) {
			rc = rn_error_errno("stat %s/%s", c->root, rel);
			goto done;
		}
		if (!S_ISREG(st.st_mode))
			goto done; /* replaced by something else meanwhile */
		archive_entry_copy_stat(c->entry, &st);
	} else if (S_ISLNK(st.st_mode)) {
		if ((rc = add_symlink(c, rel, &st)) != 0) {
			rc = rc > 0 ? 0 : rc;
			goto done;
		}
	} else if (S_ISDIR(st.st_mode)) {
		archive_entry_copy_stat(c->entry, &st);
		archive_entry_set_size(c->entry, 0);
	} else {
		return 0; /* devices, fifos and sockets are not artifacts */
	}
	/* owners mean nothing on another machine: keep archives reproducible */
	archive_entry_set_uid(c->entry, 0);
	archive_entry_set_gid(c->entry, 0);
	archive_entry_set_nlink(c->entry, 1);
	archive_entry_set_ino64(c->entry, 0);
	archive_entry_set_dev(c->entry, 0);
	archive_entry_unset_atime(c->entry);
	archive_entry_unset_ctime(c->entry);
	archive_entry_unset_birthtime(c->entry);
	archive_entry_copy_pathname(c->entry, rel);

	int r = archive_write_header(c->a, c->entry);
	if (r < ARCHIVE_WARN) {
		rc = archive_fail(c, "add", rel);
		goto done;
	}
	if (fd >= 0 && (rc = copy_file_data(c, fd, rel, st.st_size)) < 0)
		goto done;
	if (archive_write_finish_entry(c->a) < ARCHIVE_WARN) {
		rc = archive_fail(c, "add", rel);
		goto done;
	}
	c->files++;
	if (!S_ISDIR(st.st_mode))
		c->nondirs++;
done:
	if (fd >= 0)
		close(fd);
	return rc;
}

static int set_format(struct archive *a, const char *format)
{
	/* xz needs ~100 MB per thread at its default preset, zstd a few tens: cap accordingly */
	char xz_threads[16], zstd_threads[16];
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	ncpu = ncpu < 1 ? 1 : ncpu;
	/* no worker threads: a package step stays within ~32 MB of memory (zstd's worker buffers
	 * took 70 MB at 4 threads; single-threaded zstd is still several times faster than gzip) */
	(void)ncpu;
	snprintf(xz_threads, sizeof(xz_threads), "%d", 1);
	snprintf(zstd_threads, sizeof(zstd_threads), "%d", 0); /* 0: no worker threads at all */

	if (strcmp(format, "zip") == 0)
		return archive_write_set_format_zip(a) < ARCHIVE_WARN ? -1 : 0;
	if (archive_write_set_format_pax_restricted(a) < ARCHIVE_WARN)
		return -1;
	if (strcmp(format, "tar.gz") == 0) {
		if (archive_write_add_filter_gzip(a) < ARCHIVE_WARN)
			return -1;
		/* no wall-clock time in the gzip header: same tree, same archive */
		(void)archive_write_set_filter_option(a, "gzip", "timestamp", NULL);
		return 0;
	}
	if (strcmp(format, "tar.xz") == 0) {
		if (archive_write_add_filter_xz(a) < ARCHIVE_WARN)
			return -1;
		(void)archive_write_set_filter_option(a, "xz", "threads", xz_threads);
		return 0;
	}
	if (archive_write_add_filter_zstd(a) < ARCHIVE_WARN)
		return -1;
	(void)archive_write_set_filter_option(a, "zstd", "threads", zstd_threads);
	return 0;
}

int rn_archive_create(const char *out_path, const char *format, const char *root,
		      const char *const *include, size_t ninclude, const char *const *exclude,
		      size_t nexclude, rn_archive_info *info)
{
	int rc = 0;
	char *tmp = NULL;
	sink s = { .fd = -1 };
	create_ctx c = { .root = root, .rootfd = -1 };

	if (!rn_archive_format_ok(format)) {
		rn_error_set("unknown archive format '%s' (use tar.gz, tar.xz, tar.zst or zip)",
			     format ? format : "");
		return RN_EINVALID;
	}
	if (ninclude == 0) {
		rn_error_set("no files matched: no include patterns");
		return RN_ENOTFOUND;
	}
	/* the patterns are checked by rn_glob_walk before it reads anything */
	c.rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c.rootfd < 0) {
		rc = rn_error_errno("open directory %s", root);
		if (errno == ENOENT)
			rc = RN_ENOTFOUND;
		goto done;
	}
	if (lstat(out_path, &c.skip[c.nskip]) == 0)
		c.nskip++;
	tmp = rn_xasprintf("%s.tmp.XXXXXX", out_path);
	s.fd = mkostemp(tmp, O_CLOEXEC);
	if (s.fd < 0) {
		rc = rn_error_errno("create %s", tmp);
		free(tmp);
		tmp = NULL;
		goto done;
	}
	if (fstat(s.fd, &c.skip[c.nskip]) == 0)
		c.nskip++;
	if (!(s.md = digest_new())) {
		rc = rn_error_set("sha256: cannot initialise the digest");
		goto done;
	}

	c.a = archive_write_new();
	c.entry = archive_entry_new();
	c.buf = rn_xmalloc(CHUNK);
	if (!c.a || !c.entry) {
		rc = rn_error_set("libarchive: out of memory");
		goto done;
	}
	if (set_format(c.a, format) < 0) {
		rc = rn_error_set("%s: %s", format, archive_error_string(c.a));
		goto done;
	}
	/* compressed output needs no padding to whole tape blocks */
	archive_write_set_bytes_in_last_block(c.a, 1);
	if (archive_write_open2(c.a, &s, NULL, sink_write, NULL, NULL) != ARCHIVE_OK) {
		rc = rn_error_set("%s: %s", tmp, archive_error_string(c.a));
		goto done;
	}

	if ((rc = rn_glob_walk(root, include, ninclude, exclude, nexclude, add_entry, &c)) != 0)
		goto done;
	if (c.nondirs == 0) {
		rn_error_set("no files matched under %s", root);
		rc = RN_ENOTFOUND;
		goto done;
	}
	if (archive_write_close(c.a) != ARCHIVE_OK) {
		rc = rn_error_set("%s: %s", tmp, archive_error_string(c.a));
		goto done;
	}
	if (fchmod(s.fd, 0644) < 0 || fsync(s.fd) < 0) {
		rc = rn_error_errno("%s", tmp);
		goto done;
	}
	if (close(s.fd) < 0) {
		s.fd = -1;
		rc = rn_error_errno("close %s", tmp);
		goto done;
	}
	s.fd = -1;
	if (info) {
		info->bytes = s.bytes;
		info->files = c.nondirs;
		info->entries = c.files;
		if ((rc = digest_final(s.md, info->sha256)) < 0)
			goto done;
	}
	if (rename(tmp, out_path) < 0) {
		rc = rn_error_errno("rename %s to %s", tmp, out_path);
		goto done;
	}
	free(tmp);
	tmp = NULL; /* in place: nothing to remove */

done:
	/* an archive thrown away is still closed normally: archive_write_fail() leaks the zip
	 * writer's deflate state in libarchive 3.6.2, and the temp file goes anyway */
	if (c.a)
		archive_write_free(c.a);
	if (c.entry)
		archive_entry_free(c.entry);
	if (s.fd >= 0)
		close(s.fd);
	if (tmp) {
		unlink(tmp);
		free(tmp);
	}
	if (s.md)
		EVP_MD_CTX_free(s.md);
	if (c.rootfd >= 0)
		close(c.rootfd);
	free(c.buf);
	return rc;
}

/* --- extraction --------------------------------------------------------------------------- */

/* The entry name for messages: control bytes shown as '?', long names cut. */
static void printable(char *out, size_t cap, const char *name)
{
	size_t i = 0;
	for (; name[i] && i + 4 < cap && i < 200; i++)
		out[i] = (unsigned char)name[i] < 0x20 || name[i] == 0x7f ? '?' : name[i];
	if (name[i] && i + 4 <= cap) {
		memcpy(out + i, "...", 3);
		i += 3;
	}
	out[i] = '\0';
}

static int refuse(const char *name, const char *why)
{
	char shown[256];
	printable(shown, sizeof(shown), name ? name : "");
	rn_error_set("refusing to extract '%s': %s", shown, why);
	return RN_EINVALID;
}

/* Normalise an entry path: drop empty and "." components. *out gets the result ("" for the
 * target itself); 0, or -1 for an absolute path or a ".." component. */
static int normalise(const char *name, char **out)
{
	if (name[0] == '/')
		return -1;
	size_t n = strlen(name);
	char *res = rn_xmalloc(n + 1), *w = res;
	for (const char *p = name; *p;) {
		while (*p == '/')
			p++;
		const char *e = strchrnul(p, '/');
		size_t len = (size_t)(e - p);
		if (len == 2 && p[0] == '.' && p[1] == '.') {
			free(res);
			return -1;
		}
		if (len && !(len == 1 && p[0] == '.')) {
			if (w != res)
				*w++ = '/';
			memcpy(w, p, len);
			w += len;
		}
		p = e;
	}
	*w = '\0';
	*out = res;
	return 0;
}

/* May a symlink at entry path norm (normalised) point at target? Only relative targets whose
 * ".." components all come first and climb no higher than the link's own directory, so that
 * the target stays inside whatever the other links in the tree are. */
static int symlink_ok(const char *norm, const char *target)
{
	if (!target[0] || target[0] == '/')
		return 0;
	size_t depth = 0, ups = 0;
	for (const char *p = norm; *p; p++)
		depth += *p == '/';
	int seen_name = 0;
	for (const char *p = target; *p;) {
		while (*p == '/')
			p++;
		const char *e = strchrnul(p, '/');
		size_t len = (size_t)(e - p);
		if (len == 2 && p[0] == '.' && p[1] == '.') {
			if (seen_name || ++ups > depth)
				return 0;
		} else if (len && !(len == 1 && p[0] == '.')) {
			seen_name = 1;
		}
		p = e;
	}
	return 1;
}

/* Refuse an entry whose parent directories (already on disk) include a symlink: writing
 * through one could land anywhere. full is dest + '/' + norm, dlen the length of dest. */
static int parents_ok(char *full, size_t dlen)
{
	for (char *p = full + dlen + 1; (p = strchr(p, '/')); p++) {
		struct stat st;
		*p = '\0';
		int r = lstat(full, &st);
		*p = '/';
		if (r < 0)
			return errno == ENOENT || errno == ENOTDIR ? 1 : 0;
		if (S_ISLNK(st.st_mode))
			return 0;
	}
	return 1;
}

static int read_fail(struct archive *r, const char *path)
{
	int err = archive_errno(r);
	rn_error_set("%s: %s", path, archive_error_string(r) ? archive_error_string(r) : "unreadable archive");
	return err > 0 && err != EINVAL && err != EILSEQ && err != ENOMEM ? RN_EIO : RN_EINVALID;
}

static int write_fail(struct archive *w, const char *name)
{
	int err = archive_errno(w);
	const char *msg = archive_error_string(w) ? archive_error_string(w) : "cannot write";
	if (err == LA_ERRNO_MISC || err == 0)
		return refuse(name, msg); /* libarchive's own security refusals land here */
	char shown[256];
	printable(shown, sizeof(shown), name);
	rn_error_set("extract '%s': %s: %s", shown, msg, strerror(err));
	return RN_EIO;
}

/* Every format libarchive reads except mtree: an mtree "archive" names files on this machine
 * (contents=/etc/shadow) that the reader opens and copies, so it is no archive to trust. */
static void support_formats(struct archive *r)
{
	archive_read_support_format_7zip(r);
	archive_read_support_format_ar(r);
	archive_read_support_format_cab(r);
	archive_read_support_format_cpio(r);
	archive_read_support_format_empty(r);
	archive_read_support_format_iso9660(r);
	archive_read_support_format_lha(r);
	archive_read_support_format_rar(r);
	archive_read_support_format_rar5(r);
	archive_read_support_format_tar(r);
	archive_read_support_format_warc(r);
	archive_read_support_format_xar(r);
	archive_read_support_format_zip(r);
}

int rn_archive_extract_limit(const char *archive_path, const char *dest_dir, uint64_t max_bytes,
			     uint64_t max_entries)
{
	int rc = 0;
	char *dest = NULL, *name = NULL, *norm = NULL, *full = NULL, *link = NULL;
	struct archive *r = NULL, *w = NULL;
	struct archive_entry *e;
	uint64_t entries = 0, bytes = 0;

	if ((rc = rn_mkdir_p(dest_dir, 0755)) < 0)
		return rc;
	/* canonical (no symlinks, no ".."): the secure checks below walk every component */
	if (!(dest = realpath(dest_dir, NULL)))
		return rn_error_errno("%s", dest_dir);
	size_t dlen = strlen(dest);

	r = archive_read_new();
	w = archive_write_disk_new();
	if (!r || !w) {
		rc = rn_error_set("libarchive: out of memory");
		goto done;
	}
	support_formats(r);
	archive_read_support_filter_all(r);
	/* NOABSOLUTEPATHS is left out on purpose: every entry is written as the absolute
	 * dest/name (no chdir), which that flag would refuse; absolute entry names are refused
	 * by normalise() before anything is written. */
	archive_write_disk_set_options(w, ARCHIVE_EXTRACT_SECURE_NODOTDOT |
					  ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_TIME |
					  ARCHIVE_EXTRACT_PERM);
	if (archive_read_open_filename(r, archive_path, CHUNK) != ARCHIVE_OK) {
		rc = read_fail(r, archive_path);
		if (errno == ENOENT && archive_errno(r) == ENOENT)
			rc = RN_ENOTFOUND;
		goto done;
	}

	for (;;) {
		int rr = archive_read_next_header(r, &e);
		if (rr == ARCHIVE_EOF)
			break;
		if (rr < ARCHIVE_WARN) {
			rc = read_fail(r, archive_path);
			goto done;
		}
		/* our own copy: the entry's name is replaced below (dest/name) and freed with it */
		const char *ename = archive_entry_pathname(e);
		if (!ename)
			ename = archive_entry_pathname_utf8(e);
		if (!ename || !*ename) {
			rc = refuse("", "the entry has no name");
			goto done;
		}
		free(name);
		name = rn_xstrdup(ename);
		free(norm);
		norm = NULL;
		if (normalise(name, &norm) < 0) {
			rc = refuse(name, "path escapes the target");
			goto done;
		}
		mode_t type = archive_entry_filetype(e);
		const char *hard = archive_entry_hardlink(e);
		const char *sym = archive_entry_symlink(e);
		if (type == AE_IFCHR || type == AE_IFBLK || type == AE_IFIFO || type == AE_IFSOCK) {
			rc = refuse(name, "device, fifo and socket entries are not allowed");
			goto done;
		}
		if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK && !(type == 0 && hard)) {
			rc = refuse(name, "unsupported entry type");
			goto done;
		}
		if (!*norm)
			continue; /* "." or "./": the target directory itself, left as it is */
		if ((sym || type == AE_IFLNK) && !(sym && symlink_ok(norm, sym))) {
			rc = refuse(name, "path escapes the target");
			goto done;
		}
		free(full);
		full = rn_xasprintf("%s/%s", dest, norm);
		if (!parents_ok(full, dlen)) {
			rc = refuse(name, "path escapes the target");
			goto done;
		}
		if (hard) {
			free(link);
			link = NULL;
			if (normalise(hard, &link) < 0 || !*link) {
				rc = refuse(name, "path escapes the target");
				goto done;
			}
			char *hfull = rn_xasprintf("%s/%s", dest, link);
			struct stat hst;
			/* link() does not follow symlinks: a hard link to one would copy a relative
			 * target to another directory, where it can point outside. Files only. */
			int ok = parents_ok(hfull, dlen) &&
				 (lstat(hfull, &hst) < 0 || S_ISREG(hst.st_mode));
			archive_entry_copy_hardlink(e, hfull);
			free(hfull);
			if (!ok) {
				rc = refuse(name, "path escapes the target");
				goto done;
			}
		}
		if (max_entries && ++entries > max_entries) {
			rn_error_set("%s: more than %llu entries", archive_path,
				     (unsigned long long)max_entries);
			rc = RN_ETOOBIG;
			goto done;
		}
		archive_entry_copy_pathname(e, full);
		/* no set-id or sticky bits from an artifact */
		archive_entry_set_perm(e, archive_entry_perm(e) & 0777);

		if (archive_write_header(w, e) < ARCHIVE_WARN) {
			rc = write_fail(w, name);
			goto done;
		}
		for (;;) {
			const void *buf;
			size_t size;
			la_int64_t off;
			rr = archive_read_data_block(r, &buf, &size, &off);
			if (rr == ARCHIVE_EOF)
				break;
			if (rr < ARCHIVE_WARN) {
				rc = read_fail(r, archive_path);
				goto done;
			}
			bytes += size;
			if (max_bytes && (bytes > max_bytes || off < 0 ||
					  (uint64_t)off + size > max_bytes)) {
				rn_error_set("%s: more than %llu bytes of content", archive_path,
					     (unsigned long long)max_bytes);
				rc = RN_ETOOBIG;
				goto done;
			}
			/* ARCHIVE_WARN here is a failed write(2) (ENOSPC, EIO, EINTR...) or data past
			 * the entry's size: the block is not on disk, never take the file for whole */
			if (archive_write_data_block(w, buf, size, off) != ARCHIVE_OK) {
				rc = write_fail(w, name);
				goto done;
			}
		}
		if (archive_write_finish_entry(w) < ARCHIVE_WARN) {
			rc = write_fail(w, name);
			goto done;
		}
	}
	/* directory modes and times are applied at close */
	if (archive_write_close(w) < ARCHIVE_WARN) {
		rn_error_set("extract into %s: %s", dest,
			     archive_error_string(w) ? archive_error_string(w) : "cannot finish");
		rc = RN_EIO;
	}

done:
	if (r)
		archive_read_free(r);
	if (w)
		archive_write_free(w);
	free(dest);
	free(name);
	free(norm);
	free(full);
	free(link);
	return rc;
}

int rn_archive_extract(const char *archive_path, const char *dest_dir)
{
	return rn_archive_extract_limit(archive_path, dest_dir, 0, 0);
}
