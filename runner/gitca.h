/* gitca.h - libgit2's CA certificates, parsed when a fetch first needs them.
 *
 * Debian's libgit2 (built with mbedTLS) parses the whole system CA bundle inside
 * git_libgit2_init(): ~8 ms of every runner process that reads a repository, although only a
 * fetch over https uses them (upstream discussion: libgit2 #3935). rn_gitca_init() runs that
 * initialisation with the parse put off, and rn_gitca_load() parses the same file (or
 * directory) before the first fetch. Until then libgit2 holds an empty CA chain, so a TLS
 * connection made without rn_gitca_load() fails its certificate check: it never trusts more.
 * With a libgit2 built on another TLS library none of this is called and both are no-ops.
 *
 * Two more parts of that initialisation are put off the same way: seeding mbedTLS's random
 * generator (Debian's mbedTLS gathers HAVEGE timing entropy for it), done when the generator is
 * first asked for bytes (every TLS handshake does so first), and libssh2_init() (it initialises
 * OpenSSL, and OpenSSL's cleanup then runs at exit), which libssh2 makes itself at its first
 * session. */
#ifndef RN_GITCA_H
#define RN_GITCA_H

/* git_libgit2_init() with the default CA certificates recorded instead of parsed; its result. */
int rn_gitca_init(void);
/* Parse the CA certificates an rn_gitca_init() put off (once per libgit2 initialisation; libgit2
 * must be initialised); 0 or RN_ERROR with libgit2's message. */
int rn_gitca_load(void);
/* The random generator libgit2 will use for TLS while its seeding is still put off (borrowed),
 * else NULL. */
void *rn_gitca_rng_pending(void);
/* The CA file or directory still to be parsed, NULL when none is pending (borrowed: valid
 * until the next call of this module). */
const char *rn_gitca_pending(void);

#endif
