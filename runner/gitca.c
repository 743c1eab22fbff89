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

/* libssh2_init: git_libgit2_init() calls it for the SSH transport, and it initialises libssh2's
 * crypto backend (OpenSSL: its tables, and a cleanup that runs at exit) although only an ssh
 * fetch uses it. Inside rn_gitca_init it does nothing: libssh2 initialises itself when its
 * first session is made (libssh2_session_init_ex calls _libssh2_init_if_needed), and
 * libssh2_exit() does nothing when it was never initialised. */
#ifdef RN_GITCA_WRAP
#define SSH2_INIT __wrap_libssh2_init
int __real_libssh2_init(int flags);
#else
#define SSH2_INIT libssh2_init
#endif
int SSH2_INIT(int flags);

int SSH2_INIT(int flags)
{
	if (in_init)
		return 0;
#ifdef RN_GITCA_WRAP
	return __real_libssh2_init(flags);
#else
	int (*real)(int) = (int (*)(int))dlsym(RTLD_NEXT, "libssh2_init");
	return real ? real(flags) : -1;
#endif
}

/* mbedTLS's random generator: git_libgit2_init() seeds one for TLS, and Debian's mbedTLS gathers
 * HAVEGE timing entropy for it (a third of the initialisation's time) although only a fetch
 * over https uses it. Inside rn_gitca_init, mbedtls_entropy_init and mbedtls_ctr_drbg_seed are
 * recorded instead; the first mbedtls_ctr_drbg_random (libgit2 hands it to mbedTLS as the TLS
 * RNG: every handshake calls it first) makes both calls, so no byte ever comes from an unseeded
 * generator; a failed seeding fails that call as the original would have failed. The frees
 * of contexts that were never set up are skipped. */
struct mbedtls_entropy_context;
struct mbedtls_ctr_drbg_context;
typedef int (*entropy_fn)(void *p, unsigned char *out, size_t len);
#define CTR_DRBG_ENTROPY_SOURCE_FAILED (-0x0034) /* MBEDTLS_ERR_CTR_DRBG_ENTROPY_SOURCE_FAILED */

#ifdef RN_GITCA_WRAP
#define REAL(name) __real_##name
#define WRAP(name) __wrap_##name
#define DECLARE_REAL(ret, name, args) ret __real_##name args;
#else
#define WRAP(name) name
#define DECLARE_REAL(ret, name, args)
#endif
DECLARE_REAL(void, mbedtls_entropy_init, (struct mbedtls_entropy_context *ctx))
DECLARE_REAL(void, mbedtls_entropy_free, (struct mbedtls_entropy_context *ctx))
DECLARE_REAL(int, mbedtls_ctr_drbg_seed, (struct mbedtls_ctr_drbg_context *ctx, entropy_fn f, void *p,
					 const unsigned char *custom, size_t len))
DECLARE_REAL(int, mbedtls_ctr_drbg_random, (void *p_rng, unsigned char *out, size_t len))
DECLARE_REAL(void, mbedtls_ctr_drbg_free, (struct mbedtls_ctr_drbg_context *ctx))
void WRAP(mbedtls_entropy_init)(struct mbedtls_entropy_context *ctx);
void WRAP(mbedtls_entropy_free)(struct mbedtls_entropy_context *ctx);
int WRAP(mbedtls_ctr_drbg_seed)(struct mbedtls_ctr_drbg_context *ctx, entropy_fn f, void *p,
				const unsigned char *custom, size_t len);
int WRAP(mbedtls_ctr_drbg_random)(void *p_rng, unsigned char *out, size_t len);
void WRAP(mbedtls_ctr_drbg_free)(struct mbedtls_ctr_drbg_context *ctx);

#ifndef RN_GITCA_WRAP
/* mbedTLS's own function of that name (the next definition after ours), or NULL */
static void *real_fn(const char *name)
{
	return dlsym(RTLD_NEXT, name);
}
#define CALL_REAL(type, name, ...) (real_fn(#name) ? ((type)real_fn(#name))(__VA_ARGS__) : 0)
#define CALL_REAL_VOID(type, name, ...)                     \
	do {                                                \
		type fn_ = (type)real_fn(#name);            \
		if (fn_)                                    \
			fn_(__VA_ARGS__);                   \
	} while (0)
#else
#define CALL_REAL(type, name, ...) REAL(name)(__VA_ARGS__)
#define CALL_REAL_VOID(type, name, ...) REAL(name)(__VA_ARGS__)
#endif
typedef void (*ctx_fn)(void *);
typedef int (*seed_fn)(void *, entropy_fn, void *, const unsigned char *, size_t);
typedef int (*random_fn)(void *, unsigned char *, size_t);

static struct {
	struct mbedtls_entropy_context *entropy; /* to mbedtls_entropy_init before seeding */
	struct mbedtls_ctr_drbg_context *drbg;   /* to seed, with: */
	entropy_fn f;
	void *p;
} seed_later;

void WRAP(mbedtls_entropy_init)(struct mbedtls_entropy_context *ctx)
{
	if (in_init) {
		pthread_mutex_lock(&lock);
		seed_later.entropy = ctx;
		pthread_mutex_unlock(&lock);
		return;
	}
	CALL_REAL_VOID(ctx_fn, mbedtls_entropy_init, (void *)ctx);
}

int WRAP(mbedtls_ctr_drbg_seed)(struct mbedtls_ctr_drbg_context *ctx, entropy_fn f, void *p,
				const unsigned char *custom, size_t len)
{
	if (in_init && !custom && !len) { /* libgit2's call: no personalisation string */
		pthread_mutex_lock(&lock);
		seed_later.drbg = ctx;
		seed_later.f = f;
		seed_later.p = p;
		pthread_mutex_unlock(&lock);
		return 0;
	}
	return CALL_REAL(seed_fn, mbedtls_ctr_drbg_seed, (void *)ctx, f, p, custom, len);
}

int WRAP(mbedtls_ctr_drbg_random)(void *p_rng, unsigned char *out, size_t len)
{
	int rc = 0;
	pthread_mutex_lock(&lock);
	if (seed_later.drbg && (void *)seed_later.drbg == p_rng) {
		if (seed_later.entropy)
			CALL_REAL_VOID(ctx_fn, mbedtls_entropy_init, (void *)seed_later.entropy);
		seed_later.entropy = NULL;
		rc = CALL_REAL(seed_fn, mbedtls_ctr_drbg_seed, (void *)seed_later.drbg, seed_later.f, seed_later.p, NULL, 0);
		if (rc == 0)
			seed_later.drbg = NULL;
		else
			rc = CTR_DRBG_ENTROPY_SOURCE_FAILED;
	}
	pthread_mutex_unlock(&lock);
	return rc ? rc : CALL_REAL(random_fn, mbedtls_ctr_drbg_random, p_rng, out, len);
}

void WRAP(mbedtls_entropy_free)(struct mbedtls_entropy_context *ctx)
{
	pthread_mutex_lock(&lock);
	int never = seed_later.entropy && seed_later.entropy == ctx; /* never set up: nothing to free */
	if (never)
		seed_later.entropy = NULL;
	pthread_mutex_unlock(&lock);
	if (!never)
		CALL_REAL_VOID(ctx_fn, mbedtls_entropy_free, (void *)ctx);
}

void WRAP(mbedtls_ctr_drbg_free)(struct mbedtls_ctr_drbg_context *ctx)
{
	pthread_mutex_lock(&lock);
	if (seed_later.drbg == ctx) /* freed unseeded: nothing to seed any more */
		seed_later.drbg = NULL;
	pthread_mutex_unlock(&lock);
	CALL_REAL_VOID(ctx_fn, mbedtls_ctr_drbg_free, (void *)ctx);
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

void *rn_gitca_rng_pending(void)
{
	pthread_mutex_lock(&lock);
	void *d = seed_later.drbg;
	pthread_mutex_unlock(&lock);
	return d;
}

const char *rn_gitca_pending(void)
{
	pthread_mutex_lock(&lock);
	const char *p = pending_file ? pending_file : pending_dir;
	pthread_mutex_unlock(&lock);
	return p;
}
