/* fuzz_extract.c - libFuzzer target for rn_archive_extract: the input is an archive in any
 * format. It is extracted into a fresh directory, and then nothing may exist beside that
 * directory, no symlink in it may resolve outside it, no device or fifo may be in it, and no
 * file in it may have a hard link outside it. */
#include "archiver.h"
#include "error.h"
#include "util.h"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_INODES 4096

static char dest_real[PATH_MAX];
static size_t dest_len, dest_arg_len;
static struct {
	ino_t ino;
	nlink_t nlink, seen;
} inodes[MAX_INODES];
static size_t ninodes;

static void violation(const char *what, const char *path)
{
	fprintf(stderr, "fuzz_extract: %s: %s\n", what, path);
	abort();
}

static int inside(const char *resolved)
{
	return strncmp(resolved, dest_real, dest_len) == 0 &&
	       (resolved[dest_len] == '\0' || resolved[dest_len] == '/');
}

static int check_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)ftw;
	if (flag == FTW_NS)
		return 0;
	if (S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode) || S_ISFIFO(st->st_mode) ||
	    S_ISSOCK(st->st_mode))
		violation("special file extracted", path);
	if (st->st_mode & (S_ISUID | S_ISGID))
		violation("set-id bit extracted", path);
	if (S_ISLNK(st->st_mode)) {
		char target[PATH_MAX], res[PATH_MAX];
		ssize_t n = readlink(path, target, sizeof(target) - 1);
		if (n < 0)
			return 0;
		target[n] = '\0';
		if (target[0] == '/')
			violation("absolute symlink extracted", path);
		if (realpath(path, res) && !inside(res))
			violation("symlink resolves outside the target", path);
		/* dangling links too: climb lexically from the link's directory */
		size_t depth = 0;
		for (const char *p = path + dest_arg_len + 1; *p; p++)
			depth += *p == '/';
		for (char *c = strtok(target, "/"); c; c = strtok(NULL, "/")) {
			if (strcmp(c, "..") == 0) {
				if (depth-- == 0)
					violation("symlink climbs out of the target", path);
			} else if (strcmp(c, ".") != 0) {
				depth++;
			}
		}
	}
	if (S_ISREG(st->st_mode) && st->st_nlink > 1) {
		size_t i;
		for (i = 0; i < ninodes && inodes[i].ino != st->st_ino; i++)
			;
		if (i == ninodes && ninodes < MAX_INODES) {
			inodes[ninodes].ino = st->st_ino;
			inodes[ninodes].nlink = st->st_nlink;
			inodes[ninodes++].seen = 0;
		}
		if (i < MAX_INODES)
			inodes[i].seen++;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char base[] = "/tmp/rn-fuzz-extract-XXXXXX";
	if (!mkdtemp(base))
		abort();
	char *arc = rn_xasprintf("%s/in", base), *dest = rn_xasprintf("%s/dest", base);
	int fd = open(arc, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || rn_write_all(fd, data, size) < 0)
		abort();
	close(fd);

	rn_error_clear();
	(void)rn_archive_extract_limit(arc, dest, 32u << 20, 4096);

	/* nothing beside the archive and the target */
	DIR *d = opendir(base);
	if (!d)
		abort();
	struct dirent *de;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && strcmp(de->d_name, "in") &&
		    strcmp(de->d_name, "dest"))
			violation("written beside the target", de->d_name);
	closedir(d);

	if (realpath(dest, dest_real)) {
		dest_len = strlen(dest_real);
		dest_arg_len = strlen(dest);
		ninodes = 0;
		if (nftw(dest, check_one, 16, FTW_PHYS) < 0)
			abort();
		for (size_t i = 0; i < ninodes; i++)
			if (inodes[i].seen < inodes[i].nlink)
				violation("hard link to a file outside the target", dest);
	}
	if (rn_rm_rf(base) < 0) {
		/* directories extracted without write or search permission: open them up */
		char *cmd = rn_xasprintf("chmod -R u+rwx '%s' && rm -rf '%s'", base, base);
		if (system(cmd) != 0)
			abort();
		free(cmd);
	}
	free(arc);
	free(dest);
	return 0;
}
