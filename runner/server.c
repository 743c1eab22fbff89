/* server.c - `runner serve`: the coordinator (libmicrohttpd, SQLite, jansson); see docs/protocol.md
 * and docs/server.md. This file is the command: options, the data directory, tokens, secrets, the
 * HTTP daemon and the signals; the rules are in coord.c and the endpoints in server_api.c. */
#include "server.h"
#include "coord.h"
#include "error.h"
#include "git.h"
#include "kvfile.h"
#include "server_api.h"
#include "server_metrics.h"
#include "units.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <git2.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

extern char **environ;

enum { EXIT_OK = 0, EXIT_USAGE = 2, EXIT_INFRA = 3 };

const char rn_cmd_serve_help[] =
	"options:\n"
	"  --listen ADDR:PORT        where to accept connections (default 127.0.0.1:8080; port 0 picks\n"
	"                            a free port); the base URL is printed and written to DATA/address\n"
	"  --data DIR                state: database, logs, artifacts, git mirrors, tokens\n"
	"                            (default ./runner-data)\n"
	"  --lease-ttl DUR           a job's lease lives this long after its agent's last heartbeat\n"
	"                            (default 30s)\n"
	"  --ack-timeout DUR         an assignment not acknowledged this long is queued again (default 10s)\n"
	"  --max-attempts N          attempts of a job whose agent is lost (default 3)\n"
	"  --max-artifact-size SIZE  largest artifact upload (default 1G)\n"
	"  --max-connections N       connections served at once, each with its own thread (default 512)\n"
	"  --secret-file FILE        secrets for jobs (dotenv); RUNNER_SECRET_<NAME> variables too\n"
	"  --public-status           the HTML status page at / needs no token\n"
	"  --public-url URL          the server's address as others reach it (http:// or https://), for\n"
	"                            the links in notify: webhooks (default: the listening address)\n"
	"environment:\n"
	"  RUNNER_ADMIN_TOKEN, RUNNER_REGISTRATION_TOKEN  the tokens; when unset they are generated\n"
	"                            once into DATA/tokens (mode 0600)\n";

typedef struct serve_opts {
	const char *listen;
	const char *data;
	int64_t lease_ttl_ms, ack_ms, max_artifact;
	int max_attempts;
	int max_connections;
	const char *secret_file;
	int public_status;
	const char *public_url;
} serve_opts;

__attribute__((format(printf, 1, 2))) static int usage(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "runner serve: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	return EXIT_USAGE;
}

static int parse_opts(serve_opts *o, int argc, char **argv)
{
	enum { O_LISTEN = 256, O_DATA, O_TTL, O_ACK, O_ATTEMPTS, O_ARTSIZE, O_CONNS, O_SECRETS, O_PUBLIC, O_URL };
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, O_LISTEN },
		{ "data", required_argument, NULL, O_DATA },
		{ "lease-ttl", required_argument, NULL, O_TTL },
		{ "ack-timeout", required_argument, NULL, O_ACK },
		{ "max-attempts", required_argument, NULL, O_ATTEMPTS },
		{ "max-artifact-size", required_argument, NULL, O_ARTSIZE },
		{ "max-connections", required_argument, NULL, O_CONNS },
		{ "secret-file", required_argument, NULL, O_SECRETS },
		{ "public-status", no_argument, NULL, O_PUBLIC },
		{ "public-url", required_argument, NULL, O_URL },
		{ NULL, 0, NULL, 0 },
	};
	*o = (serve_opts){ .listen = "127.0.0.1:8080", .data = "./runner-data", .lease_ttl_ms = 30000,
			   .ack_ms = 10000, .max_artifact = (int64_t)1 << 30, .max_attempts = 3,
			   .max_connections = 512 };
	int ch;
	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		char *end = NULL;
		long n;
		switch (ch) {
		case O_LISTEN:
			o->listen = optarg;
			break;
		case O_DATA:
			o->data = optarg;
			break;
		case O_TTL:
		case O_ACK: {
			int64_t ms = 0;
			if (rn_duration_parse(&ms, optarg) < 0 || ms < 500)
				return usage("%s: a duration of at least 500ms, like 30s", argv[optind - 1]);
			*(ch == O_TTL ? &o->lease_ttl_ms : &o->ack_ms) = ms;
			break;
		}
		case O_ATTEMPTS:
		case O_CONNS:
			errno = 0;
			n = strtol(optarg, &end, 10);
			if (errno || !*optarg || *end || n < 1 || n > (ch == O_ATTEMPTS ? 100 : 100000))
				return usage("%s: a positive integer", argv[optind - 1]);
			*(ch == O_ATTEMPTS ? &o->max_attempts : &o->max_connections) = (int)n;
			break;
		case O_ARTSIZE:
			if (rn_size_parse(&o->max_artifact, optarg) < 0 || o->max_artifact < 1)
				return usage("--max-artifact-size: a size like 512M or 2G");
			break;
		case O_SECRETS:
			o->secret_file = optarg;
			break;
		case O_PUBLIC:
			o->public_status = 1;
			break;
		case O_URL: {
			size_t len = strlen(optarg);
			if ((!rn_startswith(optarg, "http://") && !rn_startswith(optarg, "https://")) || len > 2048 ||
			    strpbrk(optarg, " \t\r\n?#"))
				return usage("--public-url %s: expected an http:// or https:// URL without query", optarg);
			o->public_url = optarg;
			break;
		}
		default:
			return usage("unknown option %s", argv[optind - 1]);
		}
	}
	if (optind < argc)
		return usage("unexpected argument '%s'", argv[optind]);
	return -1;
}

/* ---- tokens ---- */

static int random_token(char out[65])
{
	unsigned char r[32];
	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		return rn_error_errno("getrandom");
	for (size_t i = 0; i < sizeof(r); i++)
		snprintf(out + 2 * i, 3, "%02x", r[i]);
	return 0;
}

/* Write path atomically (a temp file renamed over it) with mode. */
static int write_atomic(const char *path, const char *text, unsigned mode)
{
	char *tmp = rn_xasprintf("%s.tmp-%d", path, (int)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	int rc = fd < 0 ? rn_error_errno("%s", tmp) : 0;
	if (rc == 0)
		rc = rn_write_all(fd, text, strlen(text));
	if (rc == 0 && fsync(fd) < 0)
		rc = rn_error_errno("%s", tmp);
	if (fd >= 0 && close(fd) < 0 && rc == 0)
		rc = rn_error_errno("%s", tmp);
	if (rc == 0 && rename(tmp, path) < 0)
		rc = rn_error_errno("%s", path);
	if (rc < 0)
		unlink(tmp);
	free(tmp);
	return rc;
}

/* The admin and registration tokens: the environment, else DATA/tokens, else new ones written to
 * DATA/tokens (and printed this once). */
static int load_tokens(const char *data, char **admin, char **reg)
{
	const char *ea = getenv("RUNNER_ADMIN_TOKEN"), *er = getenv("RUNNER_REGISTRATION_TOKEN");
	*admin = ea && *ea ? rn_xstrdup(ea) : NULL;
	*reg = er && *er ? rn_xstrdup(er) : NULL;
	if (*admin && *reg)
		return 0;
	char *path = rn_xasprintf("%s/tokens", data), *text = NULL;
	char *fa = NULL, *fr = NULL;
	size_t len = 0;
	int rc = rn_read_file(&text, &len, path, 64 * 1024);
	if (rc == 0) {
		char *save = NULL;
		for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
			line[strcspn(line, "\r")] = '\0';
			if (rn_startswith(line, "admin=") && line[6])
				fa = rn_xstrdup(line + 6);
			else if (rn_startswith(line, "registration=") && line[13])
				fr = rn_xstrdup(line + 13);
		}
		chmod(path, 0600);
	} else if (rc != RN_ENOTFOUND) {
		free(path);
		return rc;
	}
	rc = 0;
	int generated = 0;
	char tok[65];
	if (!fa && !*admin && (rc = random_token(tok)) == 0) {
		fa = rn_xstrdup(tok);
		generated = 1;
	}
	if (rc == 0 && !fr && !*reg && (rc = random_token(tok)) == 0) {
		fr = rn_xstrdup(tok);
		generated = 1;
	}
	if (rc == 0 && generated) {
		char *body = rn_xasprintf("%s%s%s%s%s%s", fa ? "admin=" : "", fa ? fa : "", fa ? "\n" : "",
					  fr ? "registration=" : "", fr ? fr : "", fr ? "\n" : "");
		rc = write_atomic(path, body, 0600);
		free(body);
		if (rc == 0) {
			printf("runner serve: new tokens (kept in %s, shown only this once):\n", path);
			if (!*admin)
				printf("  admin=%s\n", fa);
			if (!*reg)
				printf("  registration=%s\n", fr);
			fflush(stdout);
		}
	}
	if (!*admin) {
		*admin = fa;
		fa = NULL;
	}
	if (!*reg) {
		*reg = fr;
		fr = NULL;
	}
	free(fa);
	free(fr);
	free(text);
	free(path);
	return rc;
}

/* ---- secrets ---- */

static int add_secret(json_t *secrets, const char *name, const char *value, const char *origin)
{
	if (strlen(value) < 4) {
		rn_error_set("secret %s (%s): shorter than 4 characters (masking it would hide too much)", name,
			     origin);
		return RN_EINVALID;
	}
	json_object_set_new(secrets, name, json_string(value));
	return 0;
}

static int secret_kv(const char *key, const char *value, size_t vlen, void *payload)
{
	(void)vlen;
	return add_secret(payload, key, value, "--secret-file");
}

static int load_secrets(json_t *secrets, const char *file)
{
	for (char **e = environ; *e; e++) {
		const char *eq = strchr(*e, '=');
		if (!rn_startswith(*e, "RUNNER_SECRET_") || !eq || eq == *e + 14)
			continue;
		char *name = rn_xstrndup(*e + 14, (size_t)(eq - *e - 14));
		int rc = add_secret(secrets, name, eq + 1, "environment");
		free(name);
		if (rc < 0) {
			fprintf(stderr, "runner serve: %s\n", rn_error_last());
			return rc;
		}
	}
	if (!file)
		return 0;
	char *text = NULL;
	size_t len = 0;
	int rc = rn_read_file(&text, &len, file, 1024 * 1024);
	if (rc < 0) {
		fprintf(stderr, "runner serve: --secret-file: %s\n", rn_error_last());
		return rc;
	}
	rc = rn_kvfile_parse(text, len, RN_KV_DOTENV, secret_kv, secrets);
	if (rc < 0)
		fprintf(stderr, "runner serve: --secret-file %s: %s\n", file, rn_error_last());
	free(text);
	return rc;
}

/* ---- listening ---- */

typedef struct listen_addr {
	struct sockaddr_storage sa;
	int ipv6;
	char *host; /* for the URL: a wildcard address becomes the loopback one */
} listen_addr;

static int parse_listen(listen_addr *la, const char *spec)
{
	memset(la, 0, sizeof(*la));
	const char *colon = strrchr(spec, ':');
	if (!colon)
		return usage("--listen %s: expected ADDR:PORT", spec);
	char *host = rn_xstrndup(spec, (size_t)(colon - spec));
	const char *port = colon + 1;
	if (host[0] == '[' && strlen(host) >= 2 && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host) - 2);
		host[strlen(host) - 2] = '\0';
	}
	char *end = NULL;
	long p = strtol(port, &end, 10);
	if (!*port || *end || p < 0 || p > 65535) {
		free(host);
		return usage("--listen %s: bad port", spec);
	}
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV | AI_PASSIVE };
	struct addrinfo *res = NULL;
	int gai = getaddrinfo(*host ? host : NULL, port, &hints, &res);
	if (gai != 0 || !res) {
		fprintf(stderr, "runner serve: --listen %s: %s\n", spec, gai_strerror(gai));
		free(host);
		return EXIT_USAGE;
	}
	memcpy(&la->sa, res->ai_addr, res->ai_addrlen);
	la->ipv6 = res->ai_family == AF_INET6;
	freeaddrinfo(res);
	int wildcard = !*host || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0;
	if (wildcard)
		la->host = rn_xstrdup(la->ipv6 ? "[::1]" : "127.0.0.1");
	else if (strchr(host, ':'))
		la->host = rn_xasprintf("[%s]", host); /* an IPv6 literal */
	else
		la->host = rn_xstrdup(host);
	free(host);
	return -1;
}

/* ---- the command ---- */

/* At most this many glibc malloc arenas. Every connection is a thread, and glibc gives threads
 * new arenas up to 8 per core, each keeping its own free memory: with 2 the server's RssAnon after
 * 10,000 jobs through agents that connect per call was 8.4 MB instead of 14.0 MB, at the same
 * throughput (ci/bench/server-rss with NEWCONN=1; docs/server.md). MALLOC_ARENA_MAX or the
 * glibc.malloc.arena_max tunable in the environment win. */
#define SERVE_ARENA_MAX 2

static void limit_arenas(void)
{
	const char *tunables = getenv("GLIBC_TUNABLES");
	if (getenv("MALLOC_ARENA_MAX") || (tunables && strstr(tunables, "glibc.malloc.arena_max")))
		return;
	mallopt(M_ARENA_MAX, SERVE_ARENA_MAX);
}

int rn_cmd_serve(int argc, char **argv)
{
	serve_opts o;
	int rc = parse_opts(&o, argc, argv);
	if (rc >= 0)
		return rc;
	limit_arenas(); /* before the first connection thread */
	listen_addr la;
	rc = parse_listen(&la, o.listen);
	if (rc >= 0)
		return rc;

	int status = EXIT_INFRA, lock_fd = -1;
	char *admin = NULL, *reg = NULL, *address_path = NULL, *url = NULL;
	json_t *secrets = json_object();
	rn_metrics *metrics = NULL;
	rn_coord *coord = NULL;
	struct MHD_Daemon *d = NULL;
	rn_serve_api api = { 0 };
	int git_ready = 0;

	/* signals: handled by this thread with sigwait; every thread started below inherits the mask */
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (load_secrets(secrets, o.secret_file) < 0) {
		status = EXIT_USAGE;
		goto done;
	}
	if (rn_mkdir_p(o.data, 0700) < 0) {
		fprintf(stderr, "runner serve: --data %s: %s\n", o.data, rn_error_last());
		goto done;
	}
	char *lock_path = rn_xasprintf("%s/serve.lock", o.data);
	lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (lock_fd < 0 || flock(lock_fd, LOCK_EX | LOCK_NB) < 0) {
		fprintf(stderr, "runner serve: %s: %s\n", lock_path,
			lock_fd < 0 ? strerror(errno) : "another runner serve uses this data directory");
		free(lock_path);
		goto done;
	}
	free(lock_path);
	if (load_tokens(o.data, &admin, &reg) < 0 || !admin || !reg) {
		fprintf(stderr, "runner serve: tokens: %s\n", admin && reg ? rn_error_last() : "none could be set up");
		goto done;
	}
	if (strlen(admin) < 16 || strlen(reg) < 16)
		fprintf(stderr, "runner serve: warning: a token shorter than 16 characters is easy to guess\n");

	if (rn_git_init() < 0) {
		fprintf(stderr, "runner serve: libgit2: %s\n", rn_error_last());
		goto done;
	}
	git_ready = 1;
	/* bound what libgit2 keeps mapped and cached between pipeline creations */
	git_libgit2_opts(GIT_OPT_SET_MWINDOW_MAPPED_LIMIT, (size_t)64 * 1024 * 1024);
	git_libgit2_opts(GIT_OPT_SET_CACHE_MAX_SIZE, (ssize_t)16 * 1024 * 1024);

	metrics = rn_metrics_new();
	rn_coord_opts co = { .data_dir = o.data, .lease_ttl_ms = o.lease_ttl_ms, .ack_timeout_ms = o.ack_ms,
			     .max_attempts = o.max_attempts, .max_artifact_size = o.max_artifact, .secrets = secrets,
			     .metrics = metrics };
	if (rn_coord_open(&coord, &co) < 0) {
		fprintf(stderr, "runner serve: %s\n", rn_error_last());
		goto done;
	}
	api = (rn_serve_api){ .coord = coord, .metrics = metrics, .admin_token = admin, .registration_token = reg,
			.public_status = o.public_status, .max_artifact_size = o.max_artifact,
			.lease_ttl_ms = o.lease_ttl_ms };
	rn_serve_api_init(&api);

	/* poll(), not select(): descriptors past FD_SETSIZE work too */
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
			 MHD_USE_ITC | MHD_USE_ERROR_LOG | (la.ipv6 ? MHD_USE_IPv6 : 0);
	errno = 0;
	d = MHD_start_daemon(flags, 0, NULL, NULL, rn_serve_api_handler, &api, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&la.sa,
			     MHD_OPTION_CONNECTION_LIMIT, (unsigned)o.max_connections, MHD_OPTION_CONNECTION_TIMEOUT,
			     (unsigned)120, MHD_OPTION_THREAD_STACK_SIZE, (size_t)2 * 1024 * 1024,
			     MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)511, MHD_OPTION_NOTIFY_COMPLETED,
			     rn_serve_api_completed, &api, MHD_OPTION_END);
	if (!d) {
		fprintf(stderr, "runner serve: cannot listen on %s%s%s\n", o.listen, errno ? ": " : "",
			errno ? strerror(errno) : "");
		goto done;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	url = rn_xasprintf("http://%s:%u", la.host, info ? (unsigned)info->port : 0);
	if (o.public_url) {
		/* the links of notify: webhooks; without a trailing slash */
		char *pub = rn_xstrdup(o.public_url);
		for (size_t n = strlen(pub); n > 0 && pub[n - 1] == '/'; n--)
			pub[n - 1] = '\0';
		rn_coord_set_base_url(coord, pub);
		free(pub);
	} else {
		rn_coord_set_base_url(coord, url);
	}
	address_path = rn_xasprintf("%s/address", o.data);
	char *line = rn_xasprintf("%s\n", url);
	rc = write_atomic(address_path, line, 0644);
	free(line);
	if (rc < 0) {
		fprintf(stderr, "runner serve: %s\n", rn_error_last());
		goto done;
	}
	printf("runner serve: listening on %s\n", url);
	fflush(stdout);

	for (;;) {
		int sig = 0;
		if (sigwait(&sigs, &sig) != 0)
			continue;
		if (sig == SIGINT || sig == SIGTERM) {
			fprintf(stderr, "runner serve: %s: stopping\n", strsignal(sig));
			break;
		}
	}
	status = EXIT_OK;
done:
	if (coord)
		rn_coord_stop(coord); /* long-polls answer now */
	if (d) {
		/* accept nothing new, let the answers of running requests (long-polls woken above) go
		 * out, then close every connection */
		MHD_quiesce_daemon(d);
		for (int i = 0; i < 300 && rn_serve_api_inflight(&api) > 0; i++)
			usleep(10000);
		MHD_stop_daemon(d);
	}
	if (address_path && status == EXIT_OK)
		unlink(address_path);
	rn_coord_close(coord);
	rn_metrics_free(metrics);
	if (git_ready)
		rn_git_shutdown();
	json_decref(secrets);
	if (admin)
		memset(admin, 0, strlen(admin));
	if (reg)
		memset(reg, 0, strlen(reg));
	free(admin);
	free(reg);
	free(address_path);
	free(url);
	free(la.host);
	if (lock_fd >= 0)
		close(lock_fd);
	return status;
}
