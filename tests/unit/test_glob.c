/* test_glob.c - glob matching table, pattern errors, the directory walk, pathological inputs. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "buf.h"
#include "error.h"
#include "glob.h"
#include "util.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct row {
	const char *pattern;
	const char *path;
	int expect;
	const char *err; /* non-NULL: the pattern is invalid and the message contains this */
} row;

static const row rows[] = {
	/* literals */
	{ "a.txt", "a.txt", 1, NULL },
	{ "a.txt", "b.txt", 0, NULL },
	{ "a.txt", "A.TXT", 0, NULL },
	{ "dir/a.txt", "dir/a.txt", 1, NULL },
	{ "dir/a.txt", "dir/a.txtx", 0, NULL },
	{ "dir/a.txt", "a.txt", 0, NULL },
	{ "a.txt", "dir/a.txt", 0, NULL },
	/* '*' within one segment */
	{ "*.txt", "a.txt", 1, NULL },
	{ "*.txt", "dir/a.txt", 0, NULL },
	{ "*", "anything", 1, NULL },
	{ "*", ".hidden", 1, NULL },
	{ "*.c", ".c", 1, NULL },
	{ "a*", "a", 1, NULL },
	{ "a*b*c", "aXXbYYc", 1, NULL },
	{ "a*b*c", "aXXbYY", 0, NULL },
	{ "a*b", "a/b", 0, NULL },
	{ "*/*.o", "src/x.o", 1, NULL },
	{ "*/*.o", "src/sub/x.o", 0, NULL },
	{ "dir/*", "dir/x", 1, NULL },
	{ "dir/*", "dir/x/y", 0, NULL },
	{ "dir/*", "dir", 0, NULL },
	{ "*a*a*a*b", "aaaaaaaaaaaaaaaaaaaab", 1, NULL },
	{ "*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaa", 0, NULL },
	{ "*", "", 0, NULL },
	/* '?' */
	{ "?.txt", "a.txt", 1, NULL },
	{ "?.txt", "ab.txt", 0, NULL },
	{ "?.txt", ".txt", 0, NULL },
	{ "a?b", "a/b", 0, NULL },
	{ "?", "\xc3\xa9", 1, NULL },      /* one code point, two bytes */
	{ "??", "\xc3\xa9", 0, NULL },
	{ "*\xc3\xa9", "caf\xc3\xa9", 1, NULL },
	/* bracket expressions */
	{ "[abc].txt", "b.txt", 1, NULL },
	{ "[abc].txt", "d.txt", 0, NULL },
	{ "[a-z]1", "q1", 1, NULL },
	{ "[a-z]1", "Q1", 0, NULL },
	{ "[a-cx-z]", "y", 1, NULL },
	{ "[!x]y", "ay", 1, NULL },
	{ "[!x]y", "xy", 0, NULL },
	{ "[^x]y", "xy", 0, NULL },
	{ "[]]", "]", 1, NULL },
	{ "[!]]", "a", 1, NULL },
	{ "[!]]", "]", 0, NULL },
	{ "[a-]", "-", 1, NULL },
	{ "[\\]]x", "]x", 1, NULL },
	{ "[*?]", "*", 1, NULL },
	{ "[*?]", "a", 0, NULL },
	{ "[\xc3\xa9-\xc3\xab]", "\xc3\xaa", 1, NULL },
	{ "[\xc3\xa9-\xc3\xab]", "e", 0, NULL },
	/* escapes */
	{ "\\*", "*", 1, NULL },
	{ "\\*", "a", 0, NULL },
	{ "a\\?b", "a?b", 1, NULL },
	{ "a\\?b", "axb", 0, NULL },
	{ "\\[x]", "[x]", 1, NULL },
	{ "\\**", "*abc", 1, NULL },
	/* '**' segments */
	{ "**", "a", 1, NULL },
	{ "**", "a/b/c", 1, NULL },
	{ "**", ".git/x", 1, NULL },
	{ "**/x", "x", 1, NULL },
	{ "**/x", "a/b/x", 1, NULL },
	{ "**/x", "a/b/xx", 0, NULL },
	{ "a/**/b", "a/b", 1, NULL },
	{ "a/**/b", "a/x/y/b", 1, NULL },
	{ "a/**/b", "a/x/y/c", 0, NULL },
	{ "a/**/b", "x/a/b", 0, NULL },
	{ "a/**", "a", 1, NULL },
	{ "a/**", "a/b/c", 1, NULL },
	{ "a/**", "b/c", 0, NULL },
	{ "**/*.log", "logs/2024/x.log", 1, NULL },
	{ "**/*.log", ".x.log", 1, NULL },
	{ "**/*.log", "logs/x.txt", 0, NULL },
	{ "a/**/b/**/c", "a/b/c", 1, NULL },
	{ "a/**/b/**/c", "a/1/b/2/3/c", 1, NULL },
	{ "a/**/b/**/c", "a/1/c/2/b", 0, NULL },
	{ "**/a/**", "x/a", 1, NULL },
	{ "**/**/x", "x", 1, NULL },
	{ "**/b/**/b", "b/b/b/b", 1, NULL },
	{ "[a-c]*/**/*.[ch]", "b1/src/x.c", 1, NULL },
	{ "[a-c]*/**/*.[ch]", "d1/src/x.c", 0, NULL },
	/* normalisation of "./", "//" and a trailing '/' */
	{ "./out/*.txt", "out/a.txt", 1, NULL },
	{ "out/", "out", 1, NULL },
	{ "out//a", "out/a", 1, NULL },
	{ "out/a", "./out/a", 1, NULL },
	{ ".", "", 1, NULL },
	{ "**", "", 1, NULL },
	/* invalid patterns: never match, and say why */
	{ "", "", 0, "empty pattern" },
	{ "/etc/passwd", "etc/passwd", 0, "patterns are relative to the workspace" },
	{ "a**b", "ab", 0, "'**' must be a whole path segment" },
	{ "**a", "a", 0, "'**' must be a whole path segment" },
	{ "a/***/b", "a/b", 0, "'**' must be a whole path segment" },
	{ "x/a**", "x/a", 0, "'**' must be a whole path segment" },
	{ "[abc", "a", 0, "unclosed '['" },
	{ "a/[b/c]", "a/b/c]", 0, "unclosed '['" },
	{ "[]", "]", 0, "unclosed '['" },
	{ "[!]", "a", 0, "unclosed '['" },
	{ "abc\\", "abc", 0, "trailing '\\'" },
	{ "a\\/b", "a/b", 0, "'/' cannot be escaped" },
	{ "../x", "x", 0, "'..' is not allowed" },
	{ "a/../b", "b", 0, "'..' is not allowed" },
	{ "[z-a]", "m", 0, "invalid range" },
};

static void test_table(void **state)
{
	(void)state;
	assert_true(RN_ARRAY_LEN(rows) >= 50);
	for (size_t i = 0; i < RN_ARRAY_LEN(rows); i++) {
		const row *r = &rows[i];
		rn_error_clear();
		int rc = rn_glob_check(r->pattern);
		if (r->err) {
			if (rc != RN_EINVALID || !strstr(rn_error_last(), r->err))
				fail_msg("row %zu: check('%s') = %d '%s', want '%s'", i, r->pattern, rc,
					 rn_error_last(), r->err);
			/* the message names the pattern */
			assert_non_null(strstr(rn_error_last(), "invalid pattern"));
		} else if (rc != 0) {
			fail_msg("row %zu: check('%s') = %d: %s", i, r->pattern, rc, rn_error_last());
		}
		int m = rn_glob_match(r->pattern, r->path);
		if (m != r->expect)
			fail_msg("row %zu: match('%s', '%s') = %d, want %d", i, r->pattern, r->path, m,
				 r->expect);
	}
}

static void test_null_args(void **state)
{
	(void)state;
	assert_int_equal(rn_glob_check(NULL), RN_EINVALID);
	assert_int_equal(rn_glob_match(NULL, "a"), 0);
	assert_int_equal(rn_glob_match("a", NULL), 0);
}

/* --- pathological patterns: each must finish instantly (no exponential backtracking) ---- */

static void test_pathological(void **state)
{
	(void)state;
	rn_buf path = RN_BUF_INIT(1 << 20), pat = RN_BUF_INIT(1 << 20);
	int64_t t0 = rn_now_ms();

	/* many `**` against a long path that almost matches */
	for (int i = 0; i < 400; i++)
		assert_int_equal(rn_buf_puts(&path, "a/"), 0);
	assert_int_equal(rn_buf_puts(&path, "y"), 0);
	assert_int_equal(rn_glob_match("**/**/**/**/**/**/**/**/**/**/**/**/x", path.ptr), 0);
	assert_int_equal(rn_glob_match("**/a/**/a/**/a/**/a/**/a/**/a/**/b", path.ptr), 0);
	assert_int_equal(rn_glob_match("**/a/**/a/**/a/**/a/**/a/**/a/**/y", path.ptr), 1);

	/* many `*` in a segment against a long segment that almost matches */
	rn_buf_reset(&path);
	for (int i = 0; i < 20000; i++)
		assert_int_equal(rn_buf_putc(&path, 'a'), 0);
	for (int i = 0; i < 30; i++)
		assert_int_equal(rn_buf_puts(&pat, "*a"), 0);
	assert_int_equal(rn_buf_puts(&pat, "*b"), 0);
	assert_int_equal(rn_glob_match(pat.ptr, path.ptr), 0);
	assert_int_equal(rn_buf_putc(&path, 'b'), 0);
	assert_int_equal(rn_glob_match(pat.ptr, path.ptr), 1);

	/* both at once: `**` and `*` interleaved */
	rn_buf_reset(&path);
	rn_buf_reset(&pat);
	for (int i = 0; i < 300; i++)
		assert_int_equal(rn_buf_puts(&path, "aaaaaaaaaa/"), 0);
	assert_int_equal(rn_buf_puts(&path, "c"), 0);
	for (int i = 0; i < 20; i++)
		assert_int_equal(rn_buf_puts(&pat, "**/*a*a*/"), 0);
	assert_int_equal(rn_buf_puts(&pat, "b"), 0);
	assert_int_equal(rn_glob_check(pat.ptr), 0);
	assert_int_equal(rn_glob_match(pat.ptr, path.ptr), 0);

	int64_t ms = rn_now_ms() - t0;
	/* exponential matching would take years here; generous for sanitizer builds */
	if (ms > 2000)
		fail_msg("pathological matching took %lld ms", (long long)ms);
	rn_buf_free(&path);
	rn_buf_free(&pat);
}

/* --- walk --------------------------------------------------------------------------------- */

typedef struct tree {
	char root[64];
} tree;

static void put_file(const char *root, const char *rel, const char *content)
{
	char *p = rn_xasprintf("%s/%s", root, rel);
	char *slash = strrchr(p, '/');
	*slash = '\0';
	assert_int_equal(rn_mkdir_p(p, 0755), 0);
	*slash = '/';
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(rn_write_all(fd, content, strlen(content)), 0);
	close(fd);
	free(p);
}

static void put_dir(const char *root, const char *rel)
{
	char *p = rn_xasprintf("%s/%s", root, rel);
	assert_int_equal(rn_mkdir_p(p, 0755), 0);
	free(p);
}

static void put_link(const char *root, const char *rel, const char *target)
{
	char *p = rn_xasprintf("%s/%s", root, rel);
	assert_int_equal(symlink(target, p), 0);
	free(p);
}

static int tree_setup(void **state)
{
	tree *t = rn_xcalloc(1, sizeof(*t));
	snprintf(t->root, sizeof(t->root), "/tmp/rn-glob-XXXXXX");
	if (!mkdtemp(t->root))
		return -1;
	put_file(t->root, "a.txt", "a");
	put_file(t->root, "b.log", "b");
	put_file(t->root, ".hidden", "h");
	put_file(t->root, "out/f.txt", "f");
	put_file(t->root, "out/g.bin", "g");
	put_file(t->root, "out/sub/h.txt", "h");
	put_dir(t->root, "out/empty");
	put_file(t->root, "src/main.c", "m");
	put_file(t->root, "src/lib/util.c", "u");
	put_file(t->root, "node_modules/x/index.js", "x");
	put_file(t->root, ".git/config", "c");
	put_file(t->root, ".git/HEAD", "h");
	put_file(t->root, ".github/ci.yml", "y");
	put_file(t->root, "order/b", "");
	put_file(t->root, "order/B", "");
	put_file(t->root, "order/a", "");
	put_file(t->root, "order/a.b", "");
	put_link(t->root, "link", "out");
	put_link(t->root, "flink", "a.txt");
	put_link(t->root, "dangling", "does/not/exist");
	*state = t;
	return 0;
}

static int tree_teardown(void **state)
{
	tree *t = *state;
	rn_rm_rf(t->root);
	free(t);
	return 0;
}

/* Collects "relpath<type>" lines, type one of / @ or nothing for files. */
static int collect(const char *rel, const struct stat *st, void *payload)
{
	rn_buf *b = payload;
	rn_buf_puts(b, rel);
	if (S_ISDIR(st->st_mode))
		rn_buf_putc(b, '/');
	else if (S_ISLNK(st->st_mode))
		rn_buf_putc(b, '@');
	rn_buf_putc(b, '\n');
	return 0;
}

static void expect_walk(const char *root, const char *const *inc, size_t ninc,
			const char *const *exc, size_t nexc, const char *want)
{
	rn_buf b = RN_BUF_INIT(1 << 20);
	int rc = rn_glob_walk(root, inc, ninc, exc, nexc, collect, &b);
	if (rc != 0)
		fail_msg("walk failed: %d %s", rc, rn_error_last());
	if (strcmp(rn_buf_cstr(&b), want) != 0)
		fail_msg("walk (%s...) gave:\n%s\nwant:\n%s", ninc ? inc[0] : "", rn_buf_cstr(&b),
			 want);
	rn_buf_free(&b);
}

static void test_walk_files(void **state)
{
	tree *t = *state;
	const char *inc[] = { "**/*.txt" };
	/* the symlink `link` -> out is not followed: no link/f.txt */
	expect_walk(t->root, inc, 1, NULL, 0, "a.txt\nout/f.txt\nout/sub/h.txt\n");
	const char *inc2[] = { "src/**/*.c", "b.log" };
	expect_walk(t->root, inc2, 2, NULL, 0, "b.log\nsrc/lib/util.c\nsrc/main.c\n");
}

static void test_walk_dir_match(void **state)
{
	tree *t = *state;
	const char *inc[] = { "out" };
	expect_walk(t->root, inc, 1, NULL, 0,
		    "out/\nout/empty/\nout/f.txt\nout/g.bin\nout/sub/\nout/sub/h.txt\n");
	const char *inc2[] = { "out/" };
	expect_walk(t->root, inc2, 1, NULL, 0,
		    "out/\nout/empty/\nout/f.txt\nout/g.bin\nout/sub/\nout/sub/h.txt\n");
}

static void test_walk_exclude(void **state)
{
	tree *t = *state;
	const char *inc[] = { "out" };
	const char *exc[] = { "**/*.bin", "out/sub" };
	expect_walk(t->root, inc, 1, exc, 2, "out/\nout/empty/\nout/f.txt\n");
	const char *exc2[] = { "out/**" };
	const char *inc2[] = { "**/*.txt" };
	expect_walk(t->root, inc2, 1, exc2, 1, "a.txt\n");
}

static void test_walk_everything(void **state)
{
	tree *t = *state;
	const char *want = ".github/\n.github/ci.yml\n.hidden\na.txt\nb.log\ndangling@\nflink@\n"
			   "link@\nnode_modules/\nnode_modules/x/\nnode_modules/x/index.js\n"
			   "order/\norder/B\norder/a\norder/a.b\norder/b\nout/\nout/empty/\n"
			   "out/f.txt\nout/g.bin\nout/sub/\nout/sub/h.txt\nsrc/\nsrc/lib/\n"
			   "src/lib/util.c\nsrc/main.c\n";
	/* `*`, `**` and `.` all take everything but .git, with dotfiles and symlinks as entries */
	const char *inc[] = { "*" };
	expect_walk(t->root, inc, 1, NULL, 0, want);
	const char *inc2[] = { "**" };
	expect_walk(t->root, inc2, 1, NULL, 0, want);
	const char *inc3[] = { "." };
	expect_walk(t->root, inc3, 1, NULL, 0, want);
	const char *exc[] = { "node_modules", "order", "out", "src", ".*", "*link", "dangling" };
	expect_walk(t->root, inc, 1, exc, RN_ARRAY_LEN(exc), "a.txt\nb.log\n");
}

static void test_walk_git(void **state)
{
	tree *t = *state;
	const char *inc[] = { ".git/**" };
	expect_walk(t->root, inc, 1, NULL, 0, ".git/\n.git/HEAD\n.git/config\n");
	const char *inc2[] = { ".git/config" };
	expect_walk(t->root, inc2, 1, NULL, 0, ".git/config\n");
	/* `.github` does not name .git */
	const char *inc3[] = { ".github/**", "**/config" };
	expect_walk(t->root, inc3, 2, NULL, 0, ".github/\n.github/ci.yml\n");
}

static void test_walk_symlink(void **state)
{
	tree *t = *state;
	const char *inc[] = { "link", "flink", "dangling" };
	expect_walk(t->root, inc, 3, NULL, 0, "dangling@\nflink@\nlink@\n");
	const char *inc2[] = { "link/**" };
	expect_walk(t->root, inc2, 1, NULL, 0, "link@\n");
}

static int stop_at_second(const char *rel, const struct stat *st, void *payload)
{
	int *n = payload;
	return ++*n == 2 ? 42 : 0;
}

static void test_walk_errors(void **state)
{
	tree *t = *state;
	int n = 0;
	const char *inc[] = { "**" };
	assert_int_equal(rn_glob_walk(t->root, inc, 1, NULL, 0, stop_at_second, &n), 42);
	assert_int_equal(n, 2);

	const char *bad[] = { "a**" };
	assert_int_equal(rn_glob_walk(t->root, bad, 1, NULL, 0, stop_at_second, &n), RN_EINVALID);
	assert_non_null(strstr(rn_error_last(), "'**' must be a whole path segment"));
	assert_int_equal(rn_glob_walk(t->root, inc, 1, bad, 1, stop_at_second, &n), RN_EINVALID);

	char *missing = rn_xasprintf("%s/missing", t->root);
	assert_int_equal(rn_glob_walk(missing, inc, 1, NULL, 0, stop_at_second, &n), RN_ENOTFOUND);
	free(missing);

	/* nothing to include: no callbacks, no error */
	n = 0;
	assert_int_equal(rn_glob_walk(t->root, NULL, 0, NULL, 0, stop_at_second, &n), 0);
	assert_int_equal(n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_null_args),
		cmocka_unit_test(test_pathological),
		cmocka_unit_test_setup_teardown(test_walk_files, tree_setup, tree_teardown),
		cmocka_unit_test_setup_teardown(test_walk_dir_match, tree_setup, tree_teardown),
		cmocka_unit_test_setup_teardown(test_walk_exclude, tree_setup, tree_teardown),
		cmocka_unit_test_setup_teardown(test_walk_everything, tree_setup, tree_teardown),
		cmocka_unit_test_setup_teardown(test_walk_git, tree_setup, tree_teardown),
		cmocka_unit_test_setup_teardown(test_walk_symlink, tree_setup, tree_teardown),
		cmocka_unit_test_setup_teardown(test_walk_errors, tree_setup, tree_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
