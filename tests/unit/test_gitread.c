/* test_gitread.c - the gitread module against real repositories built here with the git CLI:
 * a bare repository (pushed to from a clone) and that clone's work tree. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "error.h"
#include "git.h"
#include "gitread.h"
#include "util.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char B[256]; /* scratch: bare.git (bare), work (its clone), other.git */

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
	char cmd[8192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	char *full = rn_xasprintf("set -e; cd '%s'; %s", B, cmd);
	int st = system(full);
	if (st != 0)
		fprintf(stderr, "command failed (%d): %s\n", st, cmd);
	free(full);
	assert_int_equal(st, 0);
}

/* The first line of a command's output (static buffer). */
static const char *out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *out(const char *fmt, ...)
{
	static char line[4096];
	char cmd[8192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	char *full = rn_xasprintf("cd '%s' && %s", B, cmd);
	FILE *p = popen(full, "r");
	free(full);
	assert_non_null(p);
	line[0] = '\0';
	if (!fgets(line, sizeof(line), p))
		line[0] = '\0';
	while (fgetc(p) != EOF) {
	}
	pclose(p);
	line[strcspn(line, "\n")] = '\0';
	return line;
}

/* B/rel (one of a few static buffers). */
static const char *P(const char *rel)
{
	static char bufs[8][PATH_MAX];
	static int i;
	char *b = bufs[i++ % 8];
	snprintf(b, PATH_MAX, "%s/%s", B, rel);
	return b;
}

/* The sha of rev in bare.git (static copy, one of a few). */
static const char *sha_of(const char *rev)
{
	static char bufs[8][64];
	static int i;
	char *b = bufs[i++ % 8];
	snprintf(b, 64, "%s", out("git -C bare.git rev-parse '%s^{commit}'", rev));
	assert_int_equal(strlen(b), 40);
	return b;
}

/* bare.git (HEAD -> main): main = c1 (README, src/a.c, docs/x.md) -> c2 (src/a.c changed,
 * link -> README) -> c3 (docs/x.md renamed docs/y.md, big.bin added, README deleted);
 * tag v1 (annotated, at c1), light (lightweight, at c2); feature branches from c2 with
 * feature.txt; orphan has no common history. */
static int group_setup(void **state)
{
	(void)state;
	char tmpl[] = "/tmp/rn-gitread-XXXXXX", real[PATH_MAX];
	if (!mkdtemp(tmpl) || !realpath(tmpl, real) || strlen(real) >= sizeof(B))
		return -1;
	memcpy(B, real, strlen(real) + 1);
	setenv("HOME", B, 1);
	setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
	setenv("GIT_AUTHOR_NAME", "Test", 1);
	setenv("GIT_AUTHOR_EMAIL", "test@example.com", 1);
	setenv("GIT_COMMITTER_NAME", "Test", 1);
	setenv("GIT_COMMITTER_EMAIL", "test@example.com", 1);
	sh("git init -q --bare -b main bare.git && git clone -q bare.git work 2>/dev/null && cd work && "
	   "mkdir src docs && echo readme > README && echo 'int a;' > src/a.c && echo x > docs/x.md && "
	   "git add . && git commit -qm c1 && git tag -a v1 -m v1 && "
	   "echo 'int b;' >> src/a.c && ln -s README link && git add . && git commit -qm c2 && git tag light && "
	   "git checkout -qb feature && echo f > feature.txt && git add . && git commit -qm feat && "
	   "git checkout -q main && git mv docs/x.md docs/y.md && git rm -q README && "
	   "head -c 100000 /dev/zero > big.bin && printf 'a\\0b' > nul.bin && git add . && git commit -qm c3 && "
	   "git checkout -q --orphan orphan && git rm -rqf . && echo o > o.txt && git add . && git commit -qm o && "
	   "git checkout -q main && git push -q origin main feature orphan --tags");
	assert_int_equal(rn_git_init(), 0);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	rn_git_shutdown();
	if (!getenv("RN_KEEP"))
		rn_rm_rf(B);
	return 0;
}

static void test_resolve(void **state)
{
	(void)state;
	char sha[41];
	const char *main_sha = sha_of("main");
	assert_int_equal(rn_gitread_resolve(sha, P("bare.git"), "main"), 0);
	assert_string_equal(sha, main_sha);
	assert_int_equal(rn_gitread_resolve(sha, P("bare.git"), "refs/heads/main"), 0);
	assert_string_equal(sha, main_sha);
	assert_int_equal(rn_gitread_resolve(sha, P("bare.git"), "HEAD"), 0);
	assert_string_equal(sha, main_sha);
	/* an annotated tag resolves to its commit, not to the tag object */
	assert_int_equal(rn_gitread_resolve(sha, P("bare.git"), "v1"), 0);
	assert_string_equal(sha, sha_of("v1"));
	assert_string_not_equal(sha, out("git -C bare.git rev-parse v1"));
	assert_int_equal(rn_gitread_resolve(sha, P("bare.git"), "light"), 0);
	assert_string_equal(sha, sha_of("light"));
	char shortsha[10];
	snprintf(shortsha, sizeof(shortsha), "%.9s", sha_of("feature"));
	assert_int_equal(rn_gitread_resolve(sha, P("bare.git"), shortsha), 0);
	assert_string_equal(sha, sha_of("feature"));
	assert_int_equal(rn_gitread_resolve(sha, P("bare.git"), sha_of("orphan")), 0);
	assert_string_equal(sha, sha_of("orphan"));
	/* a work tree, and its .git directory */
	assert_int_equal(rn_gitread_resolve(sha, P("work"), "origin/feature"), 0);
	assert_string_equal(sha, sha_of("feature"));
	assert_int_equal(rn_gitread_resolve(sha, P("work/.git"), "HEAD"), 0);
	assert_string_equal(sha, main_sha);

	assert_int_equal(rn_gitread_resolve(sha, P("bare.git"), "nope"), RN_ENOTFOUND);
	assert_string_equal(sha, "");
	assert_non_null(strstr(rn_error_last(), "nope"));
	assert_int_equal(rn_gitread_resolve(sha, P("bare.git"), "0123456789012345678901234567890123456789"),
			 RN_ENOTFOUND);
	assert_int_equal(rn_gitread_resolve(sha, P("bare.git"), ""), RN_ENOTFOUND);
	assert_int_equal(rn_gitread_resolve(sha, P("bare.git"), "--all"), RN_ENOTFOUND);
	assert_int_equal(rn_gitread_resolve(sha, P("bare.git"), "main:src"), RN_ENOTFOUND); /* a tree */
	assert_int_equal(rn_gitread_resolve(sha, P("missing.git"), "main"), RN_ENOTFOUND);
	assert_non_null(strstr(rn_error_last(), "not a git repository"));
	/* the scratch directory itself is no repository (no search upwards either) */
	assert_int_equal(rn_gitread_resolve(sha, P("work/src"), "HEAD"), RN_ENOTFOUND);
}

static void test_file(void **state)
{
	(void)state;
	char *data;
	size_t len;
	const char *c1 = sha_of("v1"), *c2 = sha_of("light");
	assert_int_equal(rn_gitread_file(&data, &len, P("bare.git"), c2, "src/a.c", 1024), 0);
	assert_string_equal(data, "int a;\nint b;\n");
	assert_int_equal(len, 14);
	free(data);
	assert_int_equal(rn_gitread_file(&data, &len, P("bare.git"), c1, "./src/a.c", 1024), 0);
	assert_string_equal(data, "int a;\n");
	free(data);
	assert_int_equal(rn_gitread_file(&data, &len, P("bare.git"), "main", "/docs/y.md", 1024), 0);
	assert_string_equal(data, "x\n");
	free(data);
	/* a ref works too; NUL bytes are kept and counted */
	assert_int_equal(rn_gitread_file(&data, &len, P("work"), "HEAD", "nul.bin", 1024), 0);
	assert_int_equal(len, 3);
	assert_memory_equal(data, "a\0b", 4);
	free(data);
	/* exactly at the cap, and one byte over */
	assert_int_equal(rn_gitread_file(&data, &len, P("bare.git"), "main", "big.bin", 100000), 0);
	assert_int_equal(len, 100000);
	free(data);
	assert_int_equal(rn_gitread_file(&data, &len, P("bare.git"), "main", "big.bin", 99999), RN_ETOOBIG);
	assert_null(data);
	assert_int_equal(len, 0);

	assert_int_equal(rn_gitread_file(&data, &len, P("bare.git"), "main", "README", 1024), RN_ENOTFOUND);
	assert_null(data);
	assert_int_equal(rn_gitread_file(&data, &len, P("bare.git"), c1, "README", 1024), 0);
	free(data);
	assert_int_equal(rn_gitread_file(&data, &len, P("bare.git"), "main", "src", 1024), RN_ENOTFOUND);
	assert_int_equal(rn_gitread_file(&data, &len, P("bare.git"), "main", "src/nope/a.c", 1024), RN_ENOTFOUND);
	assert_int_equal(rn_gitread_file(&data, &len, P("bare.git"), "main", "link", 1024), RN_EINVALID);
	assert_int_equal(rn_gitread_file(&data, &len, P("bare.git"), "main", "src/../README", 1024), RN_EINVALID);
	assert_int_equal(rn_gitread_file(&data, &len, P("bare.git"), "main", "./", 1024), RN_EINVALID);
	assert_int_equal(rn_gitread_file(&data, &len, P("bare.git"), "nope", "README", 1024), RN_ENOTFOUND);
	assert_int_equal(rn_gitread_file(&data, &len, P("missing.git"), "main", "README", 1024), RN_ENOTFOUND);
	assert_null(data);
}

/* The paths as one comma-separated string (static). */
static const char *joined(char **paths, size_t n)
{
	static char s[4096];
	s[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (i)
			strcat(s, ",");
		strcat(s, paths[i]);
	}
	return s;
}

static void test_changed(void **state)
{
	(void)state;
	char **paths;
	size_t n;
	const char *c1 = sha_of("v1"), *c2 = sha_of("light"), *c3 = sha_of("main");
	assert_int_equal(rn_gitread_changed(&paths, &n, P("bare.git"), c1, c2, 100), 0);
	assert_string_equal(joined(paths, n), "link,src/a.c");
	rn_gitread_paths_free(paths, n);
	/* a rename is its old and new path; deletions and additions count */
	assert_int_equal(rn_gitread_changed(&paths, &n, P("bare.git"), c2, c3, 100), 0);
	assert_string_equal(joined(paths, n), "README,big.bin,docs/x.md,docs/y.md,nul.bin");
	rn_gitread_paths_free(paths, n);
	/* no old commit: every file */
	assert_int_equal(rn_gitread_changed(&paths, &n, P("bare.git"), NULL, c1, 100), 0);
	assert_string_equal(joined(paths, n), "README,docs/x.md,src/a.c");
	rn_gitread_paths_free(paths, n);
	assert_int_equal(rn_gitread_changed(&paths, &n, P("bare.git"), "0000000000000000000000000000000000000000",
					    "v1", 100), 0);
	assert_int_equal(n, 3);
	rn_gitread_paths_free(paths, n);
	/* the same commit: nothing */
	assert_int_equal(rn_gitread_changed(&paths, &n, P("bare.git"), c3, "main", 100), 0);
	assert_int_equal(n, 0);
	rn_gitread_paths_free(paths, n);
	/* the cap */
	assert_int_equal(rn_gitread_changed(&paths, &n, P("bare.git"), c2, c3, 5), 0);
	rn_gitread_paths_free(paths, n);
	assert_int_equal(rn_gitread_changed(&paths, &n, P("bare.git"), c2, c3, 4), RN_ETOOBIG);
	assert_null(paths);
	assert_int_equal(n, 0);
	assert_int_equal(rn_gitread_changed(&paths, &n, P("bare.git"), "nope", c3, 4), RN_ENOTFOUND);
	assert_int_equal(rn_gitread_changed(&paths, &n, P("bare.git"), c1, "nope", 4), RN_ENOTFOUND);
}

static void test_merge_base(void **state)
{
	(void)state;
	char base[41];
	assert_int_equal(rn_gitread_merge_base(base, P("bare.git"), "feature", "main"), 0);
	assert_string_equal(base, sha_of("light"));
	assert_int_equal(rn_gitread_merge_base(base, P("bare.git"), "main", sha_of("v1")), 0);
	assert_string_equal(base, sha_of("v1"));
	assert_int_equal(rn_gitread_merge_base(base, P("bare.git"), "orphan", "main"), RN_ENOTFOUND);
	assert_string_equal(base, "");
	assert_non_null(strstr(rn_error_last(), "no common ancestor"));
	assert_int_equal(rn_gitread_merge_base(base, P("bare.git"), "nope", "main"), RN_ENOTFOUND);
}

static void test_default_branch(void **state)
{
	(void)state;
	char *ref;
	assert_int_equal(rn_gitread_default_branch(&ref, P("bare.git")), 0);
	assert_string_equal(ref, "refs/heads/main");
	free(ref);
	/* unborn: still the branch HEAD names */
	sh("git init -q --bare -b trunk empty.git");
	assert_int_equal(rn_gitread_default_branch(&ref, P("empty.git")), 0);
	assert_string_equal(ref, "refs/heads/trunk");
	free(ref);
	char sha[41];
	assert_int_equal(rn_gitread_resolve(sha, P("empty.git"), "HEAD"), RN_ENOTFOUND);
	sh("git clone -q bare.git detached && git -C detached checkout -q --detach HEAD~1");
	assert_int_equal(rn_gitread_default_branch(&ref, P("detached")), RN_ENOTFOUND);
	assert_null(ref);
	assert_int_equal(rn_gitread_default_branch(&ref, P("missing.git")), RN_ENOTFOUND);
}

static void test_zero(void **state)
{
	(void)state;
	assert_true(rn_gitread_is_zero("0000000000000000000000000000000000000000"));
	assert_false(rn_gitread_is_zero("000000000000000000000000000000000000000"));
	assert_false(rn_gitread_is_zero("0000000000000000000000000000000000000001"));
	assert_false(rn_gitread_is_zero(""));
	assert_false(rn_gitread_is_zero(NULL));
}

static void test_config(void **state)
{
	(void)state;
	char *v;
	assert_int_equal(rn_gitread_config_get(&v, P("bare.git"), "runner.server"), RN_ENOTFOUND);
	assert_null(v);
	assert_int_equal(rn_gitread_config_set(P("bare.git"), "runner.server", "http://h:1"), 0);
	assert_int_equal(rn_gitread_config_set(P("bare.git"), "runner.jobs", "3"), 0);
	assert_int_equal(rn_gitread_config_get(&v, P("bare.git"), "runner.server"), 0);
	assert_string_equal(v, "http://h:1");
	free(v);
	/* git itself sees it, in the repository's own config */
	assert_string_equal(out("git -C bare.git config --local runner.jobs"), "3");
	assert_int_equal(rn_gitread_config_set(P("bare.git"), "runner.server", NULL), 0);
	assert_int_equal(rn_gitread_config_set(P("bare.git"), "runner.server", NULL), 0);
	assert_int_equal(rn_gitread_config_get(&v, P("bare.git"), "runner.server"), RN_ENOTFOUND);
	assert_string_equal(out("git -C bare.git config --local runner.server || echo unset"), "unset");
	/* the user's config is read too */
	sh("git config --global runner.file ci.yml");
	assert_int_equal(rn_gitread_config_get(&v, P("bare.git"), "runner.file"), 0);
	assert_string_equal(v, "ci.yml");
	free(v);
	assert_int_equal(rn_gitread_config_set(P("bare.git"), "not a key", "x"), RN_EINVALID);
	assert_int_equal(rn_gitread_config_set(P("missing.git"), "runner.jobs", "1"), RN_ENOTFOUND);
}

static void test_git_dir(void **state)
{
	(void)state;
	char *dir;
	int bare = -1;
	assert_int_equal(rn_gitread_git_dir(&dir, &bare, P("bare.git")), 0);
	assert_string_equal(dir, P("bare.git"));
	assert_int_equal(bare, 1);
	free(dir);
	assert_int_equal(rn_gitread_git_dir(&dir, &bare, P("work")), 0);
	assert_string_equal(dir, P("work/.git"));
	assert_int_equal(bare, 0);
	free(dir);
	assert_int_equal(rn_gitread_git_dir(&dir, NULL, P("work/.git/")), 0);
	assert_string_equal(dir, P("work/.git"));
	free(dir);
	assert_int_equal(rn_gitread_git_dir(&dir, NULL, P("missing.git")), RN_ENOTFOUND);
	assert_null(dir);

	assert_int_equal(rn_gitread_hooks_dir(&dir, P("bare.git")), 0);
	assert_string_equal(dir, P("bare.git/hooks"));
	free(dir);
	assert_int_equal(rn_gitread_hooks_dir(&dir, P("work")), 0);
	assert_string_equal(dir, P("work/.git/hooks"));
	free(dir);
	/* core.hooksPath: absolute, or relative to the work tree (to GIT_DIR when bare) */
	sh("git -C work config core.hooksPath ci/hooks && git -C bare.git config core.hooksPath myhooks");
	assert_int_equal(rn_gitread_hooks_dir(&dir, P("work")), 0);
	assert_string_equal(dir, P("work/ci/hooks"));
	free(dir);
	assert_int_equal(rn_gitread_hooks_dir(&dir, P("bare.git")), 0);
	assert_string_equal(dir, P("bare.git/myhooks"));
	free(dir);
	sh("git -C bare.git config core.hooksPath /srv/hooks");
	assert_int_equal(rn_gitread_hooks_dir(&dir, P("bare.git")), 0);
	assert_string_equal(dir, "/srv/hooks");
	free(dir);
	sh("git -C work config --unset core.hooksPath && git -C bare.git config --unset core.hooksPath");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_resolve),
		cmocka_unit_test(test_file),
		cmocka_unit_test(test_changed),
		cmocka_unit_test(test_merge_base),
		cmocka_unit_test(test_default_branch),
		cmocka_unit_test(test_zero),
		cmocka_unit_test(test_config),
		cmocka_unit_test(test_git_dir),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
