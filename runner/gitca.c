/* gitca.c - libgit2's CA certificates, parsed when a fetch first needs them (see gitca.h).
 *
 * How: libgit2's calls of mbedtls_x509_crt_parse_file/_path reach the parsers here, which
 * forward to mbedTLS's own except while this thread is inside rn_gitca_init(), where they
 * record the location and load nothing. rn_gitca_load() then asks libgit2 to load that location
 * (GIT_OPT_SET_SSL_CERT_LOCATIONS), which calls through here to the real parser.
 *
 * Two ways the calls get here, one per build:
 * - libgit2 and mbedTLS linked statically (the runner binary, RN_GITCA_WRAP): the linker's
 *   --wrap=mbedtls_x509_crt_parse_file (and _path) sends libgit2's references to the __wrap_
 *   functions below, and __real_ names mbedTLS's.
 * - libgit2 as a shared library (the tests): the same names are defined here; the executable
 *   comes first in the dynamic linker's search order, so libgit2's calls reach them, and
 *   mbedTLS's own are found with dlsym(RTLD_NEXT). */
#include "gitca.h"
#include "error.h"
#include "util.h"

#include <git2.h>

#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct mbedtls_x509_crt;
typedef int (*parse_fn)(struct mbedtls_x509_crt *chain, const char *path);

/* mbedTLS's MBEDTLS_ERR_X509_FILE_IO_ERROR: the answer when its parser cannot be found */
#define X509_FILE_IO_ERROR (-0x2900)

static _Thread_local int in_init; /* this thread runs rn_gitca_init's git_libgit2_init */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char *pending_file, *pending_dir; /* recorded by the parsers during init, owned */

/* Record path as the file (dir = 0) or directory still to parse. */
static void defer(int dir, const char *path)
{
	pthread_mutex_lock(&lock);
	char **slot = dir ? &pending_dir : &pending_file;
	free(*slot);
	*slot = rn_xstrdup(path);
	pthread_mutex_unlock(&lock);
}

/* Declared here, not from <mbedtls/x509_crt.h>: only the symbols matter, and the runner does
 * not otherwise build against mbedTLS. */
#ifdef RN_GITCA_WRAP
#define PARSE_FILE __wrap_mbedtls_x509_crt_parse_file
#define PARSE_PATH __wrap_mbedtls_x509_crt_parse_path
int __real_mbedtls_x509_crt_parse_file(struct mbedtls_x509_crt *chain, const char *path);
int __real_mbedtls_x509_crt_parse_path(struct mbedtls_x509_crt *chain, const char *path);
#else
#define PARSE_FILE mbedtls_x509_crt_parse_file
#define PARSE_PATH mbedtls_x509_crt_parse_path
#endif
int PARSE_FILE(struct mbedtls_x509_crt *chain, const char *path);
int PARSE_PATH(struct mbedtls_x509_crt *chain, const char *path);

/* The parser of a file (dir = 0) or directory: recorded during rn_gitca_init, else mbedTLS's. */
static int parse(int dir, struct mbedtls_x509_crt *chain, const char *path)
{
	if (in_init) {
		defer(dir, path);
		return 0;
	}
#ifdef RN_GITCA_WRAP
	return dir ? __real_mbedtls_x509_crt_parse_path(chain, path) : __real_mbedtls_x509_crt_parse_file(chain, path);
#else
	parse_fn real = (parse_fn)dlsym(RTLD_NEXT, dir ? "mbedtls_x509_crt_parse_path" : "mbedtls_x509_crt_parse_file");
	return real ? real(chain, path) : X509_FILE_IO_ERROR;
#endif
}

int PARSE_FILE(struct mbedtls_x509_crt *chain, const char *path)
{
	return parse(0, chain, path);
}

int PARSE_PATH(struct mbedtls_x509_crt *chain, const char *path)
{
	return parse(1, chain, path);
}

int rn_gitca_init(void)
{
	in_init = 1;
	int n = git_libgit2_init();
	in_init = 0;
	return n;
}

int rn_gitca_load(void)
{
	int rc = 0;
	pthread_mutex_lock(&lock);
	if (pending_file || pending_dir) {
		if (git_libgit2_opts(GIT_OPT_SET_SSL_CERT_LOCATIONS, pending_file, pending_dir) < 0) {
			const git_error *e = git_error_last();
			rc = rn_error_set("libgit2: CA certificates %s: %s", pending_file ? pending_file : pending_dir,
					  e && e->message ? e->message : "not loaded");
		} else {
			free(pending_file);
			free(pending_dir);
			pending_file = pending_dir = NULL;
		}
	}
	pthread_mutex_unlock(&lock);
	return rc;
}

const char *rn_gitca_pending(void)
{
	pthread_mutex_lock(&lock);
	const char *p = pending_file ? pending_file : pending_dir;
	pthread_mutex_unlock(&lock);
	return p;
}
