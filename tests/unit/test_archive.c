/* test_archive.c - artifact archives: round trips in every format, excludes, digests, and
 * hostile archives (built here with libarchive's writer) that extraction must refuse. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "archiver.h"
#include "error.h"
#include "util.h"

/* runner/archive.h shadows <archive.h> under -Irunner: reach libarchive's header past it */
#include <../include/archive.h>
#include <archive_entry.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#define BIG_SIZE (5u * 1024 * 1024)
#define UTF8_NAME "caf\xc3\xa9-\xe2\x82\xac.txt"

typedef struct fixture {
	char base[64]; /* scratch dir: src/ tree, archives, dest dirs */
	char *src;
} fixture;

static char *path_join(const char *a, const char *b)
{
	return rn_xasprintf("%s/%s", a, b);
}

static void write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(rn_write_all(fd, data, len), 0);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void put(const char *root, const char *rel, const char *content, mode_t mode)
{
	char *p = path_join(root, rel);
	write_file(p, content, strlen(content), mode);
	free(p);
}

static int exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

static int fixture_setup(void **state)
{
	fixture *f = rn_xcalloc(1, sizeof(*f));
	snprintf(f->base, sizeof(f->base), "/tmp/rn-archive-XXXXXX");
	if (!mkdtemp(f->base))
		return -1;
	f->src = path_join(f->base, "src");
	char *d = path_join(f->src, "dir/nested/deep");
	assert_int_equal(rn_mkdir_p(d, 0755), 0);
	free(d);
	d = path_join(f->src, "emptydir");
	assert_int_equal(mkdir(d, 0750), 0);
	free(d);
	put(f->src, "dir/nested/deep/file.txt", "hello nested\n", 0644);
	put(f->src, "dir/top.txt", "top\n", 0640);
	put(f->src, "run.sh", "#!/bin/sh\necho hi\n", 0755);
	put(f->src, "empty.txt", "", 0644);
	put(f->src, "skip.log", "log line\n", 0644);
	put(f->src, UTF8_NAME, "utf-8 name\n", 0600);

	unsigned char *big = rn_xmalloc(BIG_SIZE);
	uint64_t x = 0x9E3779B97F4A7C15ull;
	for (size_t i = 0; i < BIG_SIZE; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		/* half random, half text, so every codec has real work */
		big[i] = (i / 65536) % 2 ? (unsigned char)x : (unsigned char)("abcdefgh\n"[i % 9]);
	}
	char *p = path_join(f->src, "big.bin");
	write_file(p, big, BIG_SIZE, 0644);
	free(p);
	free(big);

	p = path_join(f->src, "link");
	assert_int_equal(symlink("dir/nested/deep/file.txt", p), 0);
	free(p);
	p = path_join(f->src, "dir/nested/up");
	assert_int_equal(symlink("../top.txt", p), 0);
	free(p);
	*state = f;
	return 0;
}

static int fixture_teardown(void **state)
{
	fixture *f = *state;
	rn_rm_rf(f->base);
	free(f->src);
	free(f);
	return 0;
}

/* Compare one path of two trees: type, mode, content or link target. */
static void same_entry(const char *a_root, const char *b_root, const char *rel, int check_mtime)
{
	char *a = path_join(a_root, rel), *b = path_join(b_root, rel);
	struct stat sa, sb;
	if (lstat(a, &sa) < 0)
		fail_msg("%s: %s", a, strerror(errno));
	if (lstat(b, &sb) < 0)
		fail_msg("%s missing after extraction: %s", b, strerror(errno));
	if ((sa.st_mode & S_IFMT) != (sb.st_mode & S_IFMT))
		fail_msg("%s: type %o vs %o", rel, sa.st_mode & S_IFMT, sb.st_mode & S_IFMT);
	if (S_ISLNK(sa.st_mode)) {
		char ta[256], tb[256];
		ssize_t na = readlink(a, ta, sizeof(ta)), nb = readlink(b, tb, sizeof(tb));
		assert_true(na > 0 && nb > 0);
		if (na != nb || memcmp(ta, tb, (size_t)na) != 0)
			fail_msg("%s: link target differs", rel);
	} else {
		if ((sa.st_mode & 07777) != (sb.st_mode & 07777))
			fail_msg("%s: mode %o vs %o", rel, sa.st_mode & 07777, sb.st_mode & 07777);
		if (check_mtime && sa.st_mtime != sb.st_mtime)
			fail_msg("%s: mtime %lld vs %lld", rel, (long long)sa.st_mtime,
				 (long long)sb.st_mtime);
	}
	if (S_ISREG(sa.st_mode)) {
		char *ca, *cb;
		size_t la, lb;
		assert_int_equal(rn_read_file(&ca, &la, a, 64u << 20), 0);
		assert_int_equal(rn_read_file(&cb, &lb, b, 64u << 20), 0);
		if (la != lb || memcmp(ca, cb, la) != 0)
			fail_msg("%s: content differs (%zu vs %zu bytes)", rel, la, lb);
		free(ca);
		free(cb);
	}
	free(a);
	free(b);
}

static const char *tree_entries[] = {
	"dir", "dir/nested", "dir/nested/deep", "dir/nested/deep/file.txt", "dir/nested/up",
	"dir/top.txt", "run.sh", "empty.txt", "skip.log", "big.bin", "link", "emptydir", UTF8_NAME,
};

static void sha256sum_of(const char *path, char out[65])
{
	char *cmd = rn_xasprintf("sha256sum '%s'", path);
	FILE *p = popen(cmd, "r");
	assert_non_null(p);
	assert_non_null(fgets(out, 65, p));
	pclose(p);
	free(cmd);
	out[64] = '\0';
}

static void round_trip(fixture *f, const char *format)
{
	char *out = rn_xasprintf("%s/art.%s", f->base, format);
	char *dest = rn_xasprintf("%s/dest-%s", f->base, format);
	const char *inc[] = { "**" };
	rn_archive_info info;
	memset(&info, 0xff, sizeof(info));

	int rc = rn_archive_create(out, format, f->src, inc, 1, NULL, 0, &info);
	if (rc != 0)
		fail_msg("create %s: %d %s", format, rc, rn_error_last());
	/* every entry, directories included */
	assert_int_equal(info.entries, RN_ARRAY_LEN(tree_entries));
	struct stat st;
	assert_int_equal(stat(out, &st), 0);
	assert_int_equal(info.bytes, (uint64_t)st.st_size);
	assert_int_equal(st.st_mode & 0777, 0644);
	char want[65], again[65];
	sha256sum_of(out, want);
	assert_string_equal(info.sha256, want);
	assert_int_equal(rn_sha256_file(out, again), 0);
	assert_string_equal(again, want);

	rc = rn_archive_extract(out, dest);
	if (rc != 0)
		fail_msg("extract %s: %d %s", format, rc, rn_error_last());
	for (size_t i = 0; i < RN_ARRAY_LEN(tree_entries); i++)
		same_entry(f->src, dest, tree_entries[i], 1);
	/* the directory itself was kept as a directory entry, with its mode */
	char *ed = path_join(dest, "emptydir");
	assert_int_equal(lstat(ed, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0750);
	free(ed);
	/* the symlink is a link, not a copy */
	char *l = path_join(dest, "link");
	assert_int_equal(lstat(l, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	free(l);

	/* extracting again over the same tree works (overwrites) */
	rc = rn_archive_extract(out, dest);
	if (rc != 0)
		fail_msg("re-extract %s: %d %s", format, rc, rn_error_last());
	free(out);
	free(dest);
}

static void test_round_trip_tar_gz(void **state)
{
	round_trip(*state, "tar.gz");
}

static void test_round_trip_tar_xz(void **state)
{
	round_trip(*state, "tar.xz");
}

static void test_round_trip_tar_zst(void **state)
{
	round_trip(*state, "tar.zst");
}

static void test_round_trip_zip(void **state)
{
	round_trip(*state, "zip");
}

static void test_formats(void **state)
{
	(void)state;
	assert_true(rn_archive_format_ok("tar.gz"));
	assert_true(rn_archive_format_ok("tar.xz"));
	assert_true(rn_archive_format_ok("tar.zst"));
	assert_true(rn_archive_format_ok("zip"));
	assert_false(rn_archive_format_ok("tar"));
	assert_false(rn_archive_format_ok("rar"));
	assert_false(rn_archive_format_ok(""));
	assert_false(rn_archive_format_ok(NULL));
}

static void test_exclude(void **state)
{
	fixture *f = *state;
	char *out = path_join(f->base, "ex.tar.gz"), *dest = path_join(f->base, "dest-ex");
	const char *inc[] = { "**" };
	const char *exc[] = { "**/*.log", "dir/nested", "big.bin" };
	rn_archive_info info;
	assert_int_equal(rn_archive_create(out, "tar.gz", f->src, inc, 1, exc, 3, &info), 0);
	assert_int_equal(info.entries, RN_ARRAY_LEN(tree_entries) - 6);
	assert_int_equal(rn_archive_extract(out, dest), 0);
	char *p = path_join(dest, "skip.log");
	assert_false(exists(p));
	free(p);
	p = path_join(dest, "dir/nested");
	assert_false(exists(p));
	free(p);
	p = path_join(dest, "big.bin");
	assert_false(exists(p));
	free(p);
	same_entry(f->src, dest, "dir/top.txt", 1);
	same_entry(f->src, dest, "run.sh", 1);

	/* include a subset only: just what matched, parents created on extraction */
	char *out2 = path_join(f->base, "sub.zip"), *dest2 = path_join(f->base, "dest-sub");
	const char *inc2[] = { "dir/**/*.txt", "run.sh" };
	assert_int_equal(rn_archive_create(out2, "zip", f->src, inc2, 2, NULL, 0, &info), 0);
	assert_int_equal(info.entries, 3);
	assert_int_equal(rn_archive_extract(out2, dest2), 0);
	same_entry(f->src, dest2, "dir/nested/deep/file.txt", 0);
	same_entry(f->src, dest2, "run.sh", 1);
	p = path_join(dest2, "empty.txt");
	assert_false(exists(p));
	free(p);
	free(out);
	free(dest);
	free(out2);
	free(dest2);
}

static void assert_no_leftovers(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	struct dirent *de;
	while ((de = readdir(d)))
		if (rn_startswith(de->d_name, prefix))
			fail_msg("left behind: %s/%s", dir, de->d_name);
	closedir(d);
}

static void test_create_errors(void **state)
{
	fixture *f = *state;
	char *out = path_join(f->base, "none.tar.gz");
	const char *inc[] = { "nomatch/**", "*.none" };
	assert_int_equal(rn_archive_create(out, "tar.gz", f->src, inc, 2, NULL, 0, NULL),
			 RN_ENOTFOUND);
	assert_non_null(strstr(rn_error_last(), "no files matched"));
	assert_no_leftovers(f->base, "none.tar.gz");

	/* everything matched is excluded: nothing matched either */
	const char *all[] = { "**" };
	assert_int_equal(rn_archive_create(out, "zip", f->src, all, 1, all, 1, NULL), RN_ENOTFOUND);
	assert_no_leftovers(f->base, "none.tar.gz");
	assert_int_equal(rn_archive_create(out, "zip", f->src, NULL, 0, NULL, 0, NULL), RN_ENOTFOUND);

	assert_int_equal(rn_archive_create(out, "tar.bz2", f->src, all, 1, NULL, 0, NULL),
			 RN_EINVALID);
	assert_non_null(strstr(rn_error_last(), "tar.bz2"));
	const char *bad[] = { "a**" };
	assert_int_equal(rn_archive_create(out, "zip", f->src, bad, 1, NULL, 0, NULL), RN_EINVALID);
	char *missing = path_join(f->base, "missing");
	assert_int_equal(rn_archive_create(out, "zip", missing, all, 1, NULL, 0, NULL),
			 RN_ENOTFOUND);
	char *noparent = path_join(f->base, "no/such/dir/x.zip");
	assert_true(rn_archive_create(noparent, "zip", f->src, all, 1, NULL, 0, NULL) < 0);
	assert_false(exists(out));
	free(out);
	free(missing);
	free(noparent);
}

/* The archive is written inside the tree it archives: it must not swallow itself. */
static void test_create_inside_root(void **state)
{
	fixture *f = *state;
	char *out = path_join(f->src, "self.tar.zst"), *dest = path_join(f->base, "dest-self");
	const char *inc[] = { "**" };
	rn_archive_info info;
	assert_int_equal(rn_archive_create(out, "tar.zst", f->src, inc, 1, NULL, 0, &info), 0);
	assert_int_equal(info.entries, RN_ARRAY_LEN(tree_entries));
	/* a second run replaces it, again without archiving the old one */
	assert_int_equal(rn_archive_create(out, "tar.zst", f->src, inc, 1, NULL, 0, &info), 0);
	assert_int_equal(info.entries, RN_ARRAY_LEN(tree_entries));
	assert_int_equal(rn_archive_extract(out, dest), 0);
	assert_no_leftovers(dest, "self");
	assert_no_leftovers(f->src, "self.tar.zst.tmp");
	unlink(out);
	free(out);
	free(dest);
}

static void test_sha256(void **state)
{
	fixture *f = *state;
	char got[65], want[65];
	char *p = path_join(f->src, "empty.txt");
	assert_int_equal(rn_sha256_file(p, got), 0);
	assert_string_equal(got, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	free(p);
	p = path_join(f->src, "big.bin");
	assert_int_equal(rn_sha256_file(p, got), 0);
	sha256sum_of(p, want);
	assert_string_equal(got, want);
	free(p);
	p = path_join(f->src, "nope");
	assert_int_equal(rn_sha256_file(p, got), RN_ENOTFOUND);
	free(p);
}

static void test_extract_bad_input(void **state)
{
	fixture *f = *state;
	char *dest = path_join(f->base, "dest-bad");
	char *missing = path_join(f->base, "missing.tar.gz");
	assert_int_equal(rn_archive_extract(missing, dest), RN_ENOTFOUND);
	char *junk = path_join(f->base, "junk.tar.gz");
	put(f->base, "junk.tar.gz", "this is not an archive at all, just some text\n", 0644);
	assert_int_equal(rn_archive_extract(junk, dest), RN_EINVALID);
	/* truncated gzip */
	const char *inc[] = { "big.bin" };
	char *trunc = path_join(f->base, "trunc.tar.gz");
	assert_int_equal(rn_archive_create(trunc, "tar.gz", f->src, inc, 1, NULL, 0, NULL), 0);
	assert_int_equal(truncate(trunc, 100000), 0);
	assert_true(rn_archive_extract(trunc, dest) < 0);
	free(dest);
	free(missing);
	free(junk);
	free(trunc);
}

static void test_extract_limits(void **state)
{
	fixture *f = *state;
	char *out = path_join(f->base, "lim.tar.gz"), *dest = path_join(f->base, "dest-lim");
	const char *inc[] = { "**" };
	assert_int_equal(rn_archive_create(out, "tar.gz", f->src, inc, 1, NULL, 0, NULL), 0);
	assert_int_equal(rn_archive_extract_limit(out, dest, 1024 * 1024, 0), RN_ETOOBIG);
	assert_int_equal(rn_archive_extract_limit(out, dest, 0, 3), RN_ETOOBIG);
	assert_int_equal(rn_archive_extract_limit(out, dest, 64 << 20, 100), 0);
	free(out);
	free(dest);
}

/* --- hostile archives --------------------------------------------------------------------- */

typedef struct evil {
	const char *name;
	mode_t type;          /* AE_IFREG, AE_IFLNK, AE_IFDIR, AE_IFCHR, AE_IFIFO */
	const char *target;   /* symlink target */
	const char *hardlink; /* hardlink target */
	const char *data;
	size_t len;
} evil;

static void build(const char *path, const char *format, const evil *ents, size_t n)
{
	struct archive *a = archive_write_new();
	if (strcmp(format, "zip") == 0)
		assert_int_equal(archive_write_set_format_zip(a), ARCHIVE_OK);
	else
		assert_int_equal(archive_write_set_format_pax_restricted(a), ARCHIVE_OK);
	assert_int_equal(archive_write_open_filename(a, path), ARCHIVE_OK);
	for (size_t i = 0; i < n; i++) {
		struct archive_entry *e = archive_entry_new();
		archive_entry_set_pathname(e, ents[i].name);
		archive_entry_set_filetype(e, ents[i].type);
		archive_entry_set_perm(e, ents[i].type == AE_IFDIR ? 0755 : 0644);
		archive_entry_set_mtime(e, 1700000000, 0);
		if (ents[i].target)
			archive_entry_set_symlink(e, ents[i].target);
		if (ents[i].hardlink)
			archive_entry_set_hardlink(e, ents[i].hardlink);
		if (ents[i].type == AE_IFCHR)
			archive_entry_set_rdev(e, makedev(1, 3));
		size_t len = ents[i].data ? (ents[i].len ? ents[i].len : strlen(ents[i].data)) : 0;
		archive_entry_set_size(e, ents[i].type == AE_IFREG ? (la_int64_t)len : 0);
		if (archive_write_header(a, e) != ARCHIVE_OK)
			fail_msg("build %s: %s", ents[i].name, archive_error_string(a));
		if (len && ents[i].type == AE_IFREG)
			assert_int_equal(archive_write_data(a, ents[i].data, len), (la_ssize_t)len);
		archive_entry_free(e);
	}
	assert_int_equal(archive_write_close(a), ARCHIVE_OK);
	archive_write_free(a);
}

/* Only the archive and the target dir may be in base after an extraction. */
static void assert_base_clean(const char *base)
{
	DIR *d = opendir(base);
	assert_non_null(d);
	struct dirent *de;
	while ((de = readdir(d))) {
		const char *n = de->d_name;
		if (strcmp(n, ".") && strcmp(n, "..") && strcmp(n, "evil.tar") && strcmp(n, "evil.zip") &&
		    strcmp(n, "dest") && strcmp(n, "outside"))
			fail_msg("extraction wrote outside the target: %s/%s", base, n);
	}
	closedir(d);
}

typedef struct attack {
	const char *what;
	evil ents[3];
	size_t n;
	const char *refused; /* entry named in the error */
	const char *absent;  /* path (relative to dest, or absolute) that must not exist after */
} attack;

static void run_attack(fixture *f, const attack *at, const char *format)
{
	char *base = path_join(f->base, "atk");
	rn_rm_rf(base);
	assert_int_equal(mkdir(base, 0755), 0);
	char *outside = path_join(base, "outside");
	assert_int_equal(mkdir(outside, 0755), 0);
	char *arc = rn_xasprintf("%s/evil.%s", base, strcmp(format, "zip") ? "tar" : "zip");
	char *dest = path_join(base, "dest");
	build(arc, format, at->ents, at->n);

	struct stat before, after;
	assert_int_equal(stat("/etc/passwd", &before), 0);
	rn_error_clear();
	int rc = rn_archive_extract(arc, dest);
	if (rc != RN_EINVALID)
		fail_msg("%s (%s): extract returned %d (%s), want RN_EINVALID", at->what, format, rc,
			 rn_error_last());
	char *want = rn_xasprintf("refusing to extract '%s'", at->refused);
	if (!strstr(rn_error_last(), want))
		fail_msg("%s (%s): message '%s' lacks \"%s\"", at->what, format, rn_error_last(),
			 want);
	free(want);

	assert_base_clean(base);
	DIR *d = opendir(outside);
	assert_non_null(d);
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			fail_msg("%s: wrote %s/%s", at->what, outside, de->d_name);
	closedir(d);
	if (at->absent) {
		char *p = at->absent[0] == '/' ? rn_xstrdup(at->absent) : path_join(dest, at->absent);
		if (exists(p))
			fail_msg("%s (%s): %s exists", at->what, format, p);
		free(p);
	}
	assert_int_equal(stat("/etc/passwd", &after), 0);
	assert_int_equal(before.st_ino, after.st_ino);
	assert_int_equal(before.st_nlink, after.st_nlink);
	assert_int_equal(before.st_mtim.tv_sec, after.st_mtim.tv_sec);
	assert_int_equal(before.st_mtim.tv_nsec, after.st_mtim.tv_nsec);

	rn_rm_rf(base);
	free(base);
	free(outside);
	free(arc);
	free(dest);
}

static void test_attacks(void **state)
{
	fixture *f = *state;
	/* link/passwd carries /etc/passwd's own bytes: even a broken extractor changes nothing */
	char *passwd;
	size_t plen;
	assert_int_equal(rn_read_file(&passwd, &plen, "/etc/passwd", 1 << 20), 0);
	char *abs_evil = rn_xasprintf("/tmp/evil-xyz-%ld", (long)getpid());
	char *outside_abs = rn_xasprintf("%s/atk/outside", f->base);
	const attack attacks[] = {
		{ "absolute path", { { abs_evil, AE_IFREG, NULL, NULL, "x", 0 } }, 1, abs_evil,
		  abs_evil },
		{ "dot-dot", { { "../evil", AE_IFREG, NULL, NULL, "x", 0 } }, 1, "../evil", NULL },
		{ "dot-dot inside",
		  { { "a/", AE_IFDIR, NULL, NULL, NULL, 0 },
		    { "a/../../evil", AE_IFREG, NULL, NULL, "x", 0 } },
		  2, "a/../../evil", NULL },
		{ "symlink to /etc then a file through it",
		  { { "link", AE_IFLNK, "/etc", NULL, NULL, 0 },
		    { "link/passwd", AE_IFREG, NULL, NULL, passwd, plen } },
		  2, "link", "link" },
		{ "symlink to an absolute dir outside then a file through it",
		  { { "link", AE_IFLNK, outside_abs, NULL, NULL, 0 },
		    { "link/evil", AE_IFREG, NULL, NULL, "x", 0 } },
		  2, "link", "link" },
		{ "symlink up two levels", { { "up", AE_IFLNK, "../..", NULL, NULL, 0 } }, 1, "up",
		  "up" },
		{ "symlink up from a subdirectory",
		  { { "a/", AE_IFDIR, NULL, NULL, NULL, 0 },
		    { "a/up", AE_IFLNK, "../../outside", NULL, NULL, 0 } },
		  2, "a/up", "a/up" },
		{ "symlink chain that climbs out",
		  { { "t", AE_IFLNK, ".", NULL, NULL, 0 }, { "s", AE_IFLNK, "t/..", NULL, NULL, 0 } },
		  2, "s", "s" },
		{ "file through an inside symlink",
		  { { "d/", AE_IFDIR, NULL, NULL, NULL, 0 }, { "l", AE_IFLNK, "d", NULL, NULL, 0 },
		    { "l/x", AE_IFREG, NULL, NULL, "x", 0 } },
		  3, "l/x", "d/x" },
		{ "hardlink to /etc/passwd",
		  { { "pw", AE_IFREG, NULL, "/etc/passwd", NULL, 0 } }, 1, "pw", "pw" },
		{ "hardlink up", { { "pw", AE_IFREG, NULL, "../outside/x", NULL, 0 } }, 1, "pw", "pw" },
		/* link() copies the symlink itself: "../../outside" is fine at a/b/, not at the top */
		{ "hardlink to a relative symlink",
		  { { "a/b/l", AE_IFLNK, "../../outside", NULL, NULL, 0 },
		    { "h", AE_IFREG, NULL, "a/b/l", NULL, 0 } },
		  2, "h", "h" },
		{ "character device", { { "null2", AE_IFCHR, NULL, NULL, NULL, 0 } }, 1, "null2",
		  "null2" },
		{ "fifo", { { "fifo", AE_IFIFO, NULL, NULL, NULL, 0 } }, 1, "fifo", "fifo" },
	};
	for (size_t i = 0; i < RN_ARRAY_LEN(attacks); i++)
		run_attack(f, &attacks[i], "tar");
	/* the same checks hold for zip (no hardlinks or devices in zip) */
	for (size_t i = 0; i < 9; i++)
		run_attack(f, &attacks[i], "zip");
	free(passwd);
	free(abs_evil);
	free(outside_abs);
}

/* Relative links that stay inside are fine, and "./" prefixes are normal tar output. */
static void test_benign_links(void **state)
{
	fixture *f = *state;
	char *arc = path_join(f->base, "ok.tar"), *dest = path_join(f->base, "dest-ok");
	const evil ents[] = {
		{ "./", AE_IFDIR, NULL, NULL, NULL, 0 },
		{ "./lib/", AE_IFDIR, NULL, NULL, NULL, 0 },
		{ "./lib/libx.so.1", AE_IFREG, NULL, NULL, "elf", 0 },
		{ "./lib/libx.so", AE_IFLNK, "libx.so.1", NULL, NULL, 0 },
		{ "./bin/tool", AE_IFLNK, "../lib/./libx.so", NULL, NULL, 0 },
		{ "./lib/hard", AE_IFREG, NULL, "lib/libx.so.1", NULL, 0 },
		{ "self", AE_IFLNK, ".", NULL, NULL, 0 },
	};
	build(arc, "tar", ents, RN_ARRAY_LEN(ents));
	int rc = rn_archive_extract(arc, dest);
	if (rc != 0)
		fail_msg("benign archive refused: %s", rn_error_last());
	char *p = path_join(dest, "bin/tool"), buf[64];
	ssize_t n = readlink(p, buf, sizeof(buf) - 1);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_string_equal(buf, "../lib/./libx.so");
	free(p);
	struct stat a, b;
	p = path_join(dest, "lib/libx.so.1");
	assert_int_equal(stat(p, &a), 0);
	free(p);
	p = path_join(dest, "lib/hard");
	assert_int_equal(stat(p, &b), 0);
	free(p);
	assert_int_equal(a.st_ino, b.st_ino);
	free(arc);
	free(dest);
}

/* An entry that cannot be written (a file in the way of its parent) fails with RN_EIO and
 * names the entry as it was in the archive (regression: the name was read after being freed). */
static void test_extract_write_error(void **state)
{
	fixture *f = *state;
	char *arc = path_join(f->base, "clash.tar"), *dest = path_join(f->base, "dest-clash");
	const evil ents[] = {
		{ "d", AE_IFREG, NULL, NULL, "x", 0 },
		{ "d/x", AE_IFREG, NULL, NULL, "y", 0 },
	};
	build(arc, "tar", ents, RN_ARRAY_LEN(ents));
	assert_int_equal(rn_archive_extract(arc, dest), RN_EIO);
	assert_non_null(strstr(rn_error_last(), "extract 'd/x'"));
	free(arc);
	free(dest);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_formats),
		cmocka_unit_test_setup_teardown(test_round_trip_tar_gz, fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_round_trip_tar_xz, fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_round_trip_tar_zst, fixture_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(test_round_trip_zip, fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_exclude, fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_create_errors, fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_create_inside_root, fixture_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(test_sha256, fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_extract_bad_input, fixture_setup,
						fixture_teardown),
		cmocka_unit_test_setup_teardown(test_extract_limits, fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_attacks, fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_benign_links, fixture_setup, fixture_teardown),
		cmocka_unit_test_setup_teardown(test_extract_write_error, fixture_setup,
						fixture_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
