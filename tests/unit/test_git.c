/* test_git.c - the git module against real repositories built here with the git CLI (local
 * paths and file:// URLs; the network transports are covered by tests/integration/git.sh). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "error.h"
#include "git.h"
#include "gitca.h"
#include "util.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static char B[256]; /* the scratch directory: work/ clones, repos/ bare repositories, cache/ */

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

static int exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

static char *slurp(FILE *f)
{
	fflush(f);
	long n = ftell(f);
	char *s = rn_xcalloc((size_t)n + 1, 1);
	rewind(f);
	size_t got = fread(s, 1, (size_t)n, f);
	s[got] = '\0';
	return s;
}

/* The fixture: lib (2 commits) and app (README, tags v0.9 and annotated v1.0, branch feature,
 * then the submodule vendor/lib -> ../lib.git), bare copies under repos/. */
static int group_setup(void **state)
{
	(void)state;
	char tmpl[] = "/tmp/rn-git-XXXXXX", real[PATH_MAX];
	if (!mkdtemp(tmpl) || !realpath(tmpl, real) || strlen(real) >= sizeof(B))
		return -1;
	memcpy(B, real, strlen(real) + 1);
	setenv("HOME", B, 1);
	setenv("XDG_CACHE_HOME", P("cache"), 1);
	unsetenv("RUNNER_GIT_CACHE");
	unsetenv("RUNNER_GIT_TOKEN");
	setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
	setenv("GIT_AUTHOR_NAME", "Test", 1);
	setenv("GIT_AUTHOR_EMAIL", "test@example.com", 1);
	setenv("GIT_COMMITTER_NAME", "Test", 1);
	setenv("GIT_COMMITTER_EMAIL", "test@example.com", 1);
	sh("mkdir -p work repos && git init -q -b main work/lib && cd work/lib && echo lib1 > lib.txt && git add . && "
	   "git commit -qm lib1 && echo lib2 >> lib.txt && git commit -qam lib2 && cd ../.. && "
	   "git clone -q --bare work/lib repos/lib.git");
	sh("git init -q --bare -b main repos/app.git && git clone -q repos/app.git work/app 2>/dev/null && cd work/app && "
	   "echo one > README && git add . && git commit -qm one && git tag v0.9 && "
	   "echo two > README && git commit -qam two && git tag -a v1.0 -m 'release 1.0' && "
	   "git checkout -qb feature && echo feat > feature.txt && git add . && git commit -qm feat && "
	   "git checkout -q main && git -c protocol.file.allow=always submodule add -q ../lib.git vendor/lib && "
	   "git commit -qm 'add lib' && git push -q origin main feature --tags");
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

static void test_redact_url(void **state)
{
	(void)state;
	const char *cases[][2] = {
		{ "https://user:s3cret@host/x.git", "https://user:***@host/x.git" },
		{ "https://user@host/x.git", "https://user@host/x.git" },
		{ "https://host/x.git", "https://host/x.git" },
		{ "https://u:p@ss@host/a@b", "https://u:***@host/a@b" },
		{ "git@github.com:o/r.git", "git@github.com:o/r.git" },
		{ "/srv/git/x.git", "/srv/git/x.git" },
	};
	for (size_t i = 0; i < RN_ARRAY_LEN(cases); i++) {
		char *r = rn_git_redact_url(cases[i][0]);
		assert_string_equal(r, cases[i][1]);
		free(r);
	}
}

static void test_names(void **state)
{
	(void)state;
	char *a = rn_git_mirror_name("https://github.com/owner/repo.git");
	char *b = rn_git_mirror_name("https://github.com/owner/repo.git");
	char *c = rn_git_mirror_name("https://github.com/owner/other.git");
	char *d = rn_git_mirror_name("https://tok:secret@github.com/owner/repo.git");
	char *e = rn_git_mirror_name("https://tok@github.com/owner/repo.git");
	assert_string_equal(a, b);
	assert_string_not_equal(a, c);
	assert_string_equal(d, e); /* the password is not part of the key */
	assert_true(rn_startswith(a, "github.com-owner-repo-"));
	assert_non_null(strstr(a, ".git"));
	assert_null(strstr(d, "secret"));
	assert_true(strlen(a) < 80);
	char *f = rn_git_mirror_name("/x/../y z/\xc3\xa9/r");
	for (const char *p = f; *p; p++)
		assert_true(strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", *p) != NULL);
	free(a), free(b), free(c), free(d), free(e), free(f);

	const char *dirs[][2] = {
		{ "https://host/o/repo.git", "repo" },   { "https://host/o/repo/", "repo" },
		{ "git@host:o/repo.git", "repo" },       { "git@host:repo.git", "repo" },
		{ "/srv/x", "x" },                       { "file:///srv/lib.git", "lib" },
		{ "https://host/", "host" },             { "..", "repo" },
	};
	for (size_t i = 0; i < RN_ARRAY_LEN(dirs); i++) {
		char *r = rn_git_default_dir(dirs[i][0]);
		assert_string_equal(r, dirs[i][1]);
		free(r);
	}
}

static void test_cache_dir(void **state)
{
	(void)state;
	char *d = NULL;
	assert_int_equal(rn_git_cache_dir(&d, "/o"), 0);
	assert_string_equal(d, "/o");
	free(d);
	assert_int_equal(rn_git_cache_dir(&d, NULL), 0);
	assert_string_equal(d, P("cache/runner/git"));
	free(d);
	setenv("RUNNER_GIT_CACHE", "/r", 1);
	assert_int_equal(rn_git_cache_dir(&d, NULL), 0);
	assert_string_equal(d, "/r");
	free(d);
	unsetenv("RUNNER_GIT_CACHE");
	char *xdg = rn_xstrdup(getenv("XDG_CACHE_HOME"));
	unsetenv("XDG_CACHE_HOME");
	assert_int_equal(rn_git_cache_dir(&d, NULL), 0);
	assert_string_equal(d, P(".cache/runner/git"));
	free(d);
	setenv("XDG_CACHE_HOME", xdg, 1);
	free(xdg);
}

/* Check out ref of app into B/dest and compare HEAD with `git rev-parse want` in the bare repo. */
static void check_checkout(const char *url, const char *ref, const char *dest, const char *want, const char *wref,
			   const char *wbranch)
{
	rn_git_result res;
	int rc = rn_git_checkout(url, ref, P(dest), NULL, &res);
	if (rc != 0)
		fprintf(stderr, "%s\n", rn_error_last());
	assert_int_equal(rc, 0);
	char sha[64];
	snprintf(sha, sizeof(sha), "%s", out("git -C repos/app.git rev-parse '%s^{commit}'", want));
	assert_int_equal(strlen(sha), 40);
	assert_string_equal(res.sha, sha);
	assert_string_equal(out("git -C %s rev-parse HEAD", dest), sha);
	assert_string_equal(res.ref, wref ? wref : sha);
	assert_string_equal(res.branch, wbranch);
	/* detached, clean, origin is the real URL */
	assert_string_equal(out("git -C %s symbolic-ref -q HEAD || echo detached", dest), "detached");
	assert_string_equal(out("git -C %s status --porcelain | wc -l", dest), "0");
}

static void test_checkout_refs(void **state)
{
	(void)state;
	char fileurl[PATH_MAX + 8];
	snprintf(fileurl, sizeof(fileurl), "file://%s", P("repos/app.git"));
	check_checkout(P("repos/app.git"), "feature", "co/branch", "feature", "refs/heads/feature", "feature");
	assert_string_equal(out("cat co/branch/feature.txt"), "feat");
	check_checkout(fileurl, "v1.0", "co/tag", "v1.0", "refs/tags/v1.0", "");
	assert_string_equal(out("cat co/tag/README"), "two");
	assert_false(exists(P("co/tag/feature.txt")));
	check_checkout(fileurl, "refs/tags/v0.9", "co/fullref", "v0.9", "refs/tags/v0.9", "");
	char sha[64];
	snprintf(sha, sizeof(sha), "%s", out("git -C repos/app.git rev-parse v0.9"));
	check_checkout(fileurl, sha, "co/sha", "v0.9", NULL, "");
	sha[7] = '\0';
	check_checkout(P("repos/app.git"), sha, "co/short", "v0.9", NULL, "");
	check_checkout(P("repos/app.git"), NULL, "co/head", "main", "refs/heads/main", "main");
	/* origin points at the repository, and the remote branches and tags are there */
	assert_string_equal(out("git -C co/tag remote get-url origin"), fileurl);
	assert_string_equal(out("git -C co/head rev-parse origin/feature"), out("git -C repos/app.git rev-parse feature"));
	assert_string_equal(out("git -C co/head rev-parse v1.0^{commit}"), out("git -C repos/app.git rev-parse v1.0^{commit}"));
	assert_string_equal(out("git -C co/head rev-parse --abbrev-ref origin/HEAD"), "origin/main");
	/* one mirror per URL: the path and the file:// URL */
	assert_string_equal(out("ls cache/runner/git | grep -c -v lock"), "2");
	/* submodules were not asked for: the directory is empty */
	assert_true(exists(P("co/head/vendor/lib")));
	assert_false(exists(P("co/head/vendor/lib/lib.txt")));
}

static void test_bad_ref(void **state)
{
	(void)state;
	int rc = rn_git_checkout(P("repos/app.git"), "no-such-branch", P("co/bad"), NULL, NULL);
	assert_int_equal(rc, RN_ENOTFOUND);
	assert_non_null(strstr(rn_error_last(), "'no-such-branch'"));
	assert_non_null(strstr(rn_error_last(), P("repos/app.git")));
	assert_false(exists(P("co/bad")));
	rc = rn_git_checkout(P("repos/app.git"), "0123abcd", P("co/bad"), NULL, NULL);
	assert_int_equal(rc, RN_ENOTFOUND);
	rc = rn_git_checkout(P("repos/no-such-repo.git"), "main", P("co/bad"), NULL, NULL);
	assert_int_equal(rc, RN_EIO);
	assert_non_null(strstr(rn_error_last(), "no-such-repo"));
	assert_false(exists(P("co/bad")));
}

static void test_unreachable(void **state)
{
	(void)state;
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = 0 };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(a);
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
	close(s); /* nothing listens there now */
	char url[64];
	snprintf(url, sizeof(url), "git://127.0.0.1:%d/app.git", ntohs(a.sin_port));
	int rc = rn_git_checkout(url, "main", P("co/unreachable"), NULL, NULL);
	assert_int_equal(rc, RN_EIO);
	assert_non_null(strstr(rn_error_last(), url));
	assert_non_null(strstr(rn_error_last(), "onnect"));
	assert_false(exists(P("co/unreachable")));
}

static void test_mirror_reuse_and_prune(void **state)
{
	(void)state;
	sh("git clone -q --bare repos/app.git repos/reuse.git && git clone -q repos/reuse.git work/reuse");
	char *m1 = NULL, *m2 = NULL;
	assert_int_equal(rn_git_mirror_update(&m1, NULL, P("repos/reuse.git"), NULL), 0);
	assert_true(rn_startswith(m1, P("cache/runner/git/")));
	struct stat st1, st2;
	assert_int_equal(stat(m1, &st1), 0);
	sh("touch '%s/marker' && test -f '%s.lock'", m1, m1);
	assert_string_equal(out("git -C %s rev-parse main", m1), out("git -C repos/reuse.git rev-parse main"));
	assert_string_equal(out("git -C %s symbolic-ref HEAD", m1), "refs/heads/main");
	/* a new commit and tag, a deleted branch */
	sh("cd work/reuse && echo three > README && git commit -qam three && git tag v2.0 && git push -q origin main v2.0 && "
	   "git -C ../../repos/reuse.git branch -q -D feature");
	assert_int_equal(rn_git_mirror_update(&m2, NULL, P("repos/reuse.git"), NULL), 0);
	assert_string_equal(m1, m2);
	assert_int_equal(stat(m2, &st2), 0);
	assert_int_equal(st1.st_ino, st2.st_ino); /* the same directory: updated, not cloned again */
	char *marker = rn_xasprintf("%s/marker", m2);
	assert_true(exists(marker));
	free(marker);
	assert_string_equal(out("git -C %s rev-parse main", m2), out("git -C repos/reuse.git rev-parse main"));
	assert_string_equal(out("git -C %s rev-parse v2.0", m2), out("git -C repos/reuse.git rev-parse v2.0"));
	assert_string_equal(out("git -C %s rev-parse -q --verify refs/heads/feature || echo pruned", m2), "pruned");
	/* the checkout sees the new commit */
	rn_git_result res;
	assert_int_equal(rn_git_checkout(P("repos/reuse.git"), "main", P("co/reuse"), NULL, &res), 0);
	assert_string_equal(res.sha, out("git -C repos/reuse.git rev-parse main"));
	assert_string_equal(out("cat co/reuse/README"), "three");
	free(m1);
	free(m2);
}

/* An exact sha the mirror already has is checked out without asking the remote (agents check
 * out exact shas, many times); a branch still asks. */
static void test_exact_sha_needs_no_fetch(void **state)
{
	(void)state;
	sh("git clone -q --bare repos/app.git repos/gone.git");
	char sha[64];
	snprintf(sha, sizeof(sha), "%s", out("git -C repos/gone.git rev-parse main"));
	char *url = rn_xasprintf("file://%s", P("repos/gone.git"));
	rn_git_result res;
	assert_int_equal(rn_git_checkout(url, "main", P("co/gone1"), NULL, &res), 0);
	sh("mv repos/gone.git repos/gone-away.git");
	assert_int_equal(rn_git_checkout(url, sha, P("co/gone2"), NULL, &res), 0);
	assert_string_equal(res.sha, sha);
	assert_string_equal(out("cat co/gone2/README"), "two");
	assert_true(rn_git_checkout(url, "main", P("co/gone3"), NULL, &res) < 0);
	/* an exact sha the mirror lacks still fetches (and fails here: the remote is gone) */
	assert_true(rn_git_checkout(url, "0123456789012345678901234567890123456789", P("co/gone4"), NULL, &res) < 0);
	sh("mv repos/gone-away.git repos/gone.git");
	free(url);
}

static void test_lock(void **state)
{
	(void)state;
	char *m = NULL;
	assert_int_equal(rn_git_mirror_update(&m, NULL, P("repos/lib.git"), NULL), 0);
	char *lock = rn_xasprintf("%s.lock", m);
	int fd = open(lock, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(flock(fd, LOCK_EX), 0); /* as another runner updating it */
	rn_git_opts o;
	memset(&o, 0, sizeof(o));
	o.lock_timeout_ms = 300;
	char *m2 = NULL;
	int64_t t0 = rn_now_ms();
	assert_int_equal(rn_git_mirror_update(&m2, NULL, P("repos/lib.git"), &o), RN_EIO);
	assert_true(rn_now_ms() - t0 >= 300);
	assert_non_null(strstr(rn_error_last(), "timed out"));
	assert_non_null(strstr(rn_error_last(), lock));
	assert_null(m2);
	assert_int_equal(rn_git_checkout(P("repos/lib.git"), NULL, P("co/locked"), &o, NULL), RN_EIO);
	assert_int_equal(flock(fd, LOCK_UN), 0);
	assert_int_equal(rn_git_mirror_update(&m2, NULL, P("repos/lib.git"), &o), 0);
	assert_string_equal(m, m2);
	close(fd);
	free(lock);
	free(m);
	free(m2);
}

static void test_dest(void **state)
{
	(void)state;
	sh("mkdir -p co/inway && echo mine > co/inway/file && mkdir -p co/empty");
	assert_int_equal(rn_git_checkout(P("repos/app.git"), "main", P("co/inway"), NULL, NULL), RN_EINVALID);
	assert_non_null(strstr(rn_error_last(), "not empty"));
	assert_string_equal(out("cat co/inway/file"), "mine");
	assert_string_equal(out("ls -A co/inway | wc -l"), "1");
	assert_int_equal(rn_git_checkout(P("repos/app.git"), "main", P("co/empty"), NULL, NULL), 0);
	/* an earlier checkout is replaced */
	sh("echo local > co/empty/untracked.txt");
	assert_int_equal(rn_git_checkout(P("repos/app.git"), "feature", P("co/empty"), NULL, NULL), 0);
	assert_false(exists(P("co/empty/untracked.txt")));
	assert_string_equal(out("git -C co/empty rev-parse HEAD"), out("git -C repos/app.git rev-parse feature"));
	/* a file in the way */
	sh("echo x > co/afile");
	assert_int_equal(rn_git_checkout(P("repos/app.git"), "main", P("co/afile"), NULL, NULL), RN_EINVALID);
}

static void test_submodules(void **state)
{
	(void)state;
	rn_git_opts o;
	memset(&o, 0, sizeof(o));
	o.submodules = 1;
	char fileurl[PATH_MAX + 8];
	snprintf(fileurl, sizeof(fileurl), "file://%s", P("repos/app.git"));
	int rc = rn_git_checkout(fileurl, "main", P("co/sub"), &o, NULL);
	if (rc < 0)
		fprintf(stderr, "%s\n", rn_error_last());
	assert_int_equal(rc, 0);
	assert_string_equal(out("head -n 1 co/sub/vendor/lib/lib.txt"), "lib1");
	assert_string_equal(out("git -C co/sub/vendor/lib rev-parse HEAD"), out("git -C repos/lib.git rev-parse main"));
	/* initialised as git does it: ' SHA path (...)', gitdir under .git/modules */
	assert_string_equal(out("git -C co/sub submodule status | cut -c1"), " ");
	assert_true(exists(P("co/sub/.git/modules/vendor/lib")));
	assert_string_equal(out("git -C co/sub status --porcelain | wc -l"), "0");
	/* the relative URL ../lib.git was resolved against the superproject's URL */
	char url[PATH_MAX + 8];
	snprintf(url, sizeof(url), "%s", out("git -C co/sub config submodule.vendor/lib.url"));
	char want[PATH_MAX + 8];
	snprintf(want, sizeof(want), "file://%s", P("repos/lib.git"));
	assert_string_equal(url, want);
	assert_string_equal(out("git -C co/sub/vendor/lib remote get-url origin"), url);
}

static void test_depth_and_progress(void **state)
{
	(void)state;
	/* a clone with alternates: its objects cannot be linked, so they are fetched */
	sh("git clone -q --shared --bare repos/app.git repos/shared.git");
	FILE *f = tmpfile();
	assert_non_null(f);
	rn_git_opts o;
	memset(&o, 0, sizeof(o));
	o.depth = 1;
	o.progress = RN_GIT_PROGRESS_AUTO; /* a file: the summary line */
	o.progress_out = f;
	assert_int_equal(rn_git_checkout(P("repos/shared.git"), "v1.0", P("co/depth1"), &o, NULL), 0);
	assert_int_equal(rn_git_checkout(P("repos/shared.git"), "main", P("co/depth2"), &o, NULL), 0);
	char *text = slurp(f);
	fclose(f);
	const char *w = strstr(text, "warning: depth is not supported by libgit2 ");
	assert_non_null(w);
	assert_non_null(strstr(w, "; fetching full history\n"));
	assert_null(strstr(w + 20, "depth is not supported")); /* once */
	/* the first fetch got the objects, the second nothing new */
	const char *line = strstr(text, ": fetched ");
	assert_non_null(line);
	unsigned n = 0;
	assert_int_equal(sscanf(line, ": fetched %u objects", &n), 1);
	assert_true(n > 10);
	assert_non_null(strstr(line, " KiB) in "));
	assert_non_null(strstr(line + 1, ": fetched 0 objects"));
	assert_null(strchr(text, '\r')); /* not a TTY: no updating line */
	free(text);
}

typedef struct seen {
	int calls, done;
	unsigned received;
} seen;

static void on_progress(const rn_git_progress *p, void *payload)
{
	seen *s = payload;
	s->calls++;
	if (p->done) {
		s->done++;
		s->received = p->received_objects;
	}
}

static void test_progress_callback(void **state)
{
	(void)state;
	sh("git clone -q --shared --bare repos/app.git repos/shared2.git");
	seen s = { 0, 0, 0 };
	rn_git_opts o;
	memset(&o, 0, sizeof(o));
	o.on_progress = on_progress;
	o.payload = &s;
	char *m = NULL;
	assert_int_equal(rn_git_mirror_update(&m, NULL, P("repos/shared2.git"), &o), 0);
	assert_int_equal(s.done, 1);
	assert_true(s.received > 10);
	free(m);
}

/* Attributes still apply: a checkout converts to CRLF where .gitattributes says so (the filters
 * are skipped only when no attributes exist). */
static void test_attributes(void **state)
{
	(void)state;
	sh("git init -q -b main work/attr && cd work/attr && printf '*.txt text eol=crlf\\n' > .gitattributes && "
	   "printf 'a\\nb\\n' > x.txt && printf 'a\\nb\\n' > x.bin && git add . && git commit -qm attr");
	assert_int_equal(rn_git_checkout(P("work/attr"), NULL, P("co/attr"), NULL, NULL), 0);
	assert_string_equal(out("od -An -c co/attr/x.txt | tr -s ' '"), " a \\r \\n b \\r \\n");
	assert_string_equal(out("od -An -c co/attr/x.bin | tr -s ' '"), " a \\n b \\n");
	assert_string_equal(out("git -C co/attr status --porcelain | wc -l"), "0");
	/* core.autocrlf=true in the global configuration converts too */
	sh("git config --global core.autocrlf true");
	assert_int_equal(rn_git_checkout(P("repos/lib.git"), NULL, P("co/autocrlf"), NULL, NULL), 0);
	sh("git config --global --unset core.autocrlf");
	assert_string_equal(out("od -An -c co/autocrlf/lib.txt | head -n 1 | tr -s ' '"), " l i b 1 \\r \\n l i b 2 \\r \\n");
	assert_int_equal(rn_git_checkout(P("repos/lib.git"), NULL, P("co/noautocrlf"), NULL, NULL), 0);
	assert_string_equal(out("od -An -c co/noautocrlf/lib.txt | head -n 1 | tr -s ' '"), " l i b 1 \\n l i b 2 \\n");
}

static void test_describe(void **state)
{
	(void)state;
	json_t *d = NULL;
	assert_int_equal(rn_git_describe(&d, P("work/app/vendor")), 0);
	assert_string_equal(json_string_value(json_object_get(d, "sha")), out("git -C work/app rev-parse HEAD"));
	assert_string_equal(json_string_value(json_object_get(d, "ref")), "refs/heads/main");
	assert_string_equal(json_string_value(json_object_get(d, "branch")), "main");
	json_decref(d);
	sh("git clone -q repos/app.git work/desc && git -C work/desc checkout -q v0.9");
	assert_int_equal(rn_git_describe(&d, P("work/desc")), 0);
	assert_string_equal(json_string_value(json_object_get(d, "sha")), out("git -C repos/app.git rev-parse v0.9"));
	assert_string_equal(json_string_value(json_object_get(d, "ref")), "refs/tags/v0.9");
	assert_string_equal(json_string_value(json_object_get(d, "branch")), "");
	json_decref(d);
	sh("git -C work/desc checkout -q --detach origin/feature");
	assert_int_equal(rn_git_describe(&d, P("work/desc")), 0);
	assert_string_equal(json_string_value(json_object_get(d, "ref")), "");
	json_decref(d);
	sh("git init -q -b trunk work/unborn");
	assert_int_equal(rn_git_describe(&d, P("work/unborn")), 0);
	assert_string_equal(json_string_value(json_object_get(d, "sha")), "");
	assert_string_equal(json_string_value(json_object_get(d, "branch")), "trunk");
	json_decref(d);
	sh("mkdir -p norepo");
	assert_int_equal(rn_git_describe(&d, P("norepo")), 0);
	assert_int_equal(json_object_size(d), 0);
	json_decref(d);
}

static void test_clean_workspace(void **state)
{
	(void)state;
	sh("git clone -q repos/app.git work/clean && cd work/clean && echo dirty > README && echo new > untracked.txt");
	char *dest = NULL;
	assert_int_equal(rn_git_clean_workspace(&dest, P("work/clean"), P("clean")), 0);
	assert_true(rn_startswith(dest, P("clean/clean-clean-")));
	char *readme = rn_xasprintf("%s/README", dest), *untracked = rn_xasprintf("%s/untracked.txt", dest);
	assert_string_equal(out("cat '%s'", readme), "two");
	assert_false(exists(untracked));
	assert_string_equal(out("git -C '%s' rev-parse HEAD", dest), out("git -C work/clean rev-parse HEAD"));
	assert_string_equal(out("git -C '%s' status --porcelain | wc -l", dest), "0");
	rn_rm_rf(dest);
	free(dest);
	/* a commit on a detached HEAD, on no branch */
	sh("cd work/clean && git checkout -q . && git checkout -q --detach && echo four > README && git commit -qam detached");
	assert_int_equal(rn_git_clean_workspace(&dest, P("work/clean"), P("clean")), 0);
	assert_string_equal(out("git -C '%s' rev-parse HEAD", dest), out("git -C work/clean rev-parse HEAD"));
	free(readme);
	readme = rn_xasprintf("%s/README", dest);
	assert_string_equal(out("cat '%s'", readme), "four");
	rn_rm_rf(dest);
	free(dest);
	/* not a repository */
	sh("mkdir -p norepo2");
	assert_int_equal(rn_git_clean_workspace(&dest, P("norepo2"), P("clean")), RN_EINVALID);
	assert_null(dest);
	free(readme);
	free(untracked);
}

/* rn_git_init records libgit2's default CA location instead of parsing it; rn_gitca_load parses
 * it once; the next initialisation after a full shutdown puts it off again. (The https fetch
 * that needs them is in tests/integration/git.sh.) */
static void test_ca_deferred(void **state)
{
	(void)state;
	if (!dlsym(RTLD_DEFAULT, "mbedtls_x509_crt_init")) {
		skip(); /* a libgit2 on another TLS library parses nothing at init */
		return;
	}
	assert_int_equal(rn_git_init(), 0);
	const char *p = rn_gitca_pending();
	assert_non_null(p);
	assert_int_equal(access(p, R_OK), 0);
	assert_int_equal(rn_gitca_load(), 0);
	assert_null(rn_gitca_pending());
	assert_int_equal(rn_gitca_load(), 0); /* once */
	/* the TLS random generator: seeded by its first use, never used unseeded */
	void *drbg = rn_gitca_rng_pending();
	assert_non_null(drbg);
	int (*rnd)(void *, unsigned char *, size_t) =
		(int (*)(void *, unsigned char *, size_t))dlsym(RTLD_DEFAULT, "mbedtls_ctr_drbg_random");
	assert_non_null(rnd);
	unsigned char a[32], zero[32];
	memset(a, 0, sizeof(a));
	memset(zero, 0, sizeof(zero));
	assert_int_equal(rnd(drbg, a, sizeof(a)), 0);
	assert_null(rn_gitca_rng_pending());
	assert_memory_not_equal(a, zero, sizeof(a));
	/* every reference dropped (this test's and group_setup's): libgit2 starts again, and puts
	 * the parse off again; the new reference is group_setup's again */
	rn_git_shutdown();
	rn_git_shutdown();
	assert_int_equal(rn_git_init(), 0);
	assert_non_null(rn_gitca_pending());
	assert_non_null(rn_gitca_rng_pending()); /* shut down unseeded, and put off again */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ca_deferred), /* first: only group_setup holds libgit2 */
		cmocka_unit_test(test_redact_url),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_cache_dir),
		cmocka_unit_test(test_checkout_refs),
		cmocka_unit_test(test_bad_ref),
		cmocka_unit_test(test_unreachable),
		cmocka_unit_test(test_mirror_reuse_and_prune),
		cmocka_unit_test(test_exact_sha_needs_no_fetch),
		cmocka_unit_test(test_lock),
		cmocka_unit_test(test_dest),
		cmocka_unit_test(test_submodules),
		cmocka_unit_test(test_depth_and_progress),
		cmocka_unit_test(test_progress_callback),
		cmocka_unit_test(test_attributes),
		cmocka_unit_test(test_describe),
		cmocka_unit_test(test_clean_workspace),
	};
	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
