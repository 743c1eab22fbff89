/* plugin.c - step plugins: the search path, `--describe` with a timeout and a cap, the check of
 * a plugin step's inputs against the schema a plugin describes, and `runner plugins`. */
#include "plugin.h"
#include "buf.h"
#include "context.h"
#include "error.h"
#include "schema.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef RN_PLUGIN_DIR
#define RN_PLUGIN_DIR "/usr/local/lib/runner/plugins"
#endif

extern char **environ;

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_INFRA = 3 };

/* ---- process-wide settings ------------------------------------------------------------------ */

static char **g_dirs;   /* --plugin-dir, absolute */
static size_t g_ndirs;
static rn_plugin_checks g_checks = RN_PLUGINS_UNCHECKED;

/* dir made absolute against the current directory (not resolved: symlinks stay). Caller frees. */
static char *absolute(const char *dir)
{
	char cwd[PATH_MAX];
	if (dir[0] == '/' || !getcwd(cwd, sizeof(cwd)))
		return rn_xstrdup(dir);
	if (strcmp(dir, ".") == 0)
		return rn_xstrdup(cwd);
	return rn_xasprintf("%s/%s", cwd, rn_startswith(dir, "./") ? dir + 2 : dir);
}

void rn_plugin_setup(const char *const *dirs, size_t ndirs, rn_plugin_checks checks)
{
	for (size_t i = 0; i < g_ndirs; i++)
		free(g_dirs[i]);
	free(g_dirs);
	g_dirs = ndirs ? rn_xcalloc(ndirs, sizeof(*g_dirs)) : NULL;
	g_ndirs = 0;
	for (size_t i = 0; i < ndirs; i++)
		if (dirs[i] && *dirs[i])
			g_dirs[g_ndirs++] = absolute(dirs[i]);
	g_checks = checks;
}

rn_plugin_checks rn_plugin_checks_mode(void)
{
	return g_checks;
}

int rn_plugin_name_ok(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (n == 0 || n > RN_PLUGIN_NAME_MAX)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
		if (!alnum && c != '_' && (i == 0 || (c != '-' && c != '.')))
			return 0;
	}
	return 1;
}

/* ---- the search path ------------------------------------------------------------------------ */

static void add_dir(rn_plugin_dir **v, size_t *n, size_t *cap, const char *dir, size_t len, const char *origin)
{
	if (len == 0)
		return; /* an empty PATH entry would mean the current directory: never for plugins */
	char *raw = rn_xstrndup(dir, len);
	char *abs = absolute(raw);
	free(raw);
	for (size_t i = 0; i < *n; i++) {
		if (strcmp((*v)[i].path, abs) == 0) {
			free(abs);
			return;
		}
	}
	rn_grow(v, cap, *n + 1, sizeof(**v));
	(*v)[(*n)++] = (rn_plugin_dir){ abs, origin };
}

static void add_list(rn_plugin_dir **v, size_t *n, size_t *cap, const char *list, const char *origin)
{
	while (list && *list) {
		size_t len = strcspn(list, ":");
		add_dir(v, n, cap, list, len, origin);
		list += len;
		if (*list == ':')
			list++;
	}
}

rn_plugin_dir *rn_plugin_search_path(size_t *n)
{
	rn_plugin_dir *v = NULL;
	size_t cap = 0;
	*n = 0;
	for (size_t i = 0; i < g_ndirs; i++)
		add_dir(&v, n, &cap, g_dirs[i], strlen(g_dirs[i]), "--plugin-dir");
	add_list(&v, n, &cap, getenv("RUNNER_PLUGIN_PATH"), "RUNNER_PLUGIN_PATH");
	const char *home = getenv("HOME");
	if (home && home[0] == '/') {
		char *d = rn_xasprintf("%s/.local/lib/runner/plugins", home);
		add_dir(&v, n, &cap, d, strlen(d), "home");
		free(d);
	}
	add_dir(&v, n, &cap, RN_PLUGIN_DIR, strlen(RN_PLUGIN_DIR), "installed");
	add_list(&v, n, &cap, getenv("PATH"), "PATH");
	return v;
}

void rn_plugin_dirs_free(rn_plugin_dir *dirs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(dirs[i].path);
	free(dirs);
}

/* 1 if path is a regular file (after symlinks) that we may execute. */
static int is_plugin_file(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

int rn_plugin_find(char **path, const char *name)
{
	*path = NULL;
	if (!rn_plugin_name_ok(name))
		return rn_error_set("'%.100s' is not a plugin name (letters, digits, '_', '-', '.')", name), RN_EINVALID;
	size_t n;
	rn_plugin_dir *dirs = rn_plugin_search_path(&n);
	for (size_t i = 0; i < n; i++) {
		char *p = rn_xasprintf("%s/" RN_PLUGIN_PREFIX "%s", dirs[i].path, name);
		if (is_plugin_file(p)) {
			*path = p;
			rn_plugin_dirs_free(dirs, n);
			return 0;
		}
		free(p);
	}
	/* say where we looked (capped: PATH may be long) */
	rn_buf b = RN_BUF_INIT(2048);
	for (size_t i = 0; i < n; i++)
		if (rn_buf_printf(&b, "%s%s", i ? ", " : "", dirs[i].path) < 0) {
			rn_buf_puts(&b, ", ...");
			break;
		}
	rn_error_set("no step plugin '%s': no executable " RN_PLUGIN_PREFIX "%s in %s", name, name,
		     n ? rn_buf_cstr(&b) : "any directory (the search path is empty)");
	rn_buf_free(&b);
	rn_plugin_dirs_free(dirs, n);
	return RN_ENOTFOUND;
}

/* ---- --describe ----------------------------------------------------------------------------- */

/* The runner's environment without RUNNER_SECRET_* (borrowed strings; free the vector only). */
static char **plugin_environ(void)
{
	size_t n = 0;
	while (environ[n])
		n++;
	char **v = rn_xcalloc(n + 1, sizeof(*v));
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (!rn_startswith(environ[i], "RUNNER_SECRET_"))
			v[k++] = environ[i];
	return v;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int rn_plugin_describe(json_t **out, const char *path)
{
	*out = NULL;
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return rn_error_errno("pipe");
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], 1);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	posix_spawnattr_init(&attr);
	sigset_t none, all;
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	char *argv[] = { (char *)path, (char *)"--describe", NULL };
	char **envp = plugin_environ();
	pid_t pid;
	int err = posix_spawn(&pid, path, &fa, &attr, argv, envp);
	free(envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(pfd[1]);
	if (err) {
		close(pfd[0]);
		errno = err;
		return rn_error_errno("%s --describe", path);
	}

	rn_buf b = RN_BUF_INIT(RN_PLUGIN_DESCRIBE_MAX);
	int64_t deadline = rn_now_ms() + RN_PLUGIN_DESCRIBE_TIMEOUT_MS;
	int rc = 0, wstatus = 0;
	char chunk[8192];
	for (;;) {
		int64_t left = deadline - rn_now_ms();
		if (left <= 0) {
			rc = rn_error_set("%s --describe did not finish within %d s", path, RN_PLUGIN_DESCRIBE_TIMEOUT_MS / 1000);
			break;
		}
		struct pollfd p = { pfd[0], POLLIN, 0 };
		int pr = poll(&p, 1, (int)left);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0) {
			rc = rn_error_errno("poll");
			break;
		}
		if (pr == 0)
			continue;
		ssize_t r = read(pfd[0], chunk, sizeof(chunk));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = rn_error_errno("%s --describe: read", path);
			break;
		}
		if (r == 0)
			break;
		if (rn_buf_add(&b, chunk, (size_t)r) < 0) {
			rn_error_set("%s --describe printed more than %u KiB", path, RN_PLUGIN_DESCRIBE_MAX / 1024);
			rc = RN_ETOOBIG;
			break;
		}
	}
	close(pfd[0]);
	/* stdout is closed: the plugin is exiting; give it the rest of the time to do so. It is
	 * not reaped before its group is killed, so the group id cannot have been reused. */
	while (rc == 0) {
		siginfo_t si;
		si.si_pid = 0;
		if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid)
			break;
		if (rn_now_ms() >= deadline)
			rc = rn_error_set("%s --describe did not exit within %d s", path, RN_PLUGIN_DESCRIBE_TIMEOUT_MS / 1000);
		else
			sleep_ms(5);
	}
	kill(-pid, SIGKILL);
	while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR)
		;
	while (waitpid(-pid, NULL, WNOHANG) > 0) /* what of its group was re-parented to us */
		;
	size_t blank = 0;
	while (blank < b.len && strchr(" \t\r\n", b.ptr[blank]))
		blank++;
	/* exit 0 with nothing printed: a plugin that ignores --describe (it does not describe itself) */
	if (rc == 0 && WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0 && blank < b.len) {
		json_error_t je;
		json_t *j = json_loadb(b.ptr ? b.ptr : "", b.len, 0, &je);
		if (!j)
			rc = rn_error_set("%s --describe: not JSON: %s (line %d)", path, je.text, je.line);
		else if (!json_is_object(j))
			rc = rn_error_set("%s --describe: not a JSON object", path);
		if (rc == 0)
			*out = j;
		else
			json_decref(j);
	}
	rn_buf_free(&b);
	return rc;
}

/* ---- the cache of lookups and descriptions (REQUIRED/OPTIONAL modes) ---------------------------- */

typedef struct cached {
	char *name;
	char *path;           /* NULL: not found */
	int described;        /* --describe was asked */
	json_t *desc;         /* its answer, or NULL */
	char *desc_error;     /* why --describe failed, or NULL */
	const rn_diags *told; /* the diagnostics list a describe problem was added to last */
} cached;

static cached *g_cache;
static size_t g_ncache, g_capcache;

static cached *cache_get(const char *name)
{
	for (size_t i = 0; i < g_ncache; i++)
		if (strcmp(g_cache[i].name, name) == 0)
			return &g_cache[i];
	char *path = NULL;
	if (rn_plugin_find(&path, name) < 0)
		path = NULL;
	rn_grow(&g_cache, &g_capcache, g_ncache + 1, sizeof(*g_cache));
	cached *c = &g_cache[g_ncache++];
	memset(c, 0, sizeof(*c));
	c->name = rn_xstrdup(name);
	c->path = path;
	return c;
}

int rn_plugin_lookup(const char **path, const char *name)
{
	*path = NULL;
	if (!rn_plugin_name_ok(name))
		return rn_error_set("'%.100s' is not a plugin name", name), RN_EINVALID;
	cached *c = cache_get(name);
	*path = c->path;
	if (!c->path)
		return rn_error_set("no step plugin '%s'", name), RN_ENOTFOUND;
	return 0;
}

/* ---- inputs against the described schema ---------------------------------------------------- */

static int is_template(const rn_node *v)
{
	return v->kind == RN_NODE_SCALAR && strstr(v->str, "${{") != NULL;
}

/* What a value is, in a schema's words. */
static const char *what_is(const rn_node *v)
{
	int b;
	if (v->kind == RN_NODE_SEQ)
		return "a list";
	if (v->kind == RN_NODE_MAP)
		return "a mapping";
	if (rn_node_is_null(v))
		return "null";
	if (v->style == RN_SCALAR_PLAIN && rn_node_is_number(v))
		return "a number";
	if (v->style == RN_SCALAR_PLAIN && rn_node_bool(v, &b) == 0)
		return "a boolean";
	return "a string";
}

/* 1 if v can be of JSON-schema type t (values with ${{ }} are strings known only at run time). */
static int type_ok(const rn_node *v, const char *t)
{
	long long i;
	int b;
	int scalar = v->kind == RN_NODE_SCALAR;
	if (strcmp(t, "string") == 0)
		return scalar && !rn_node_is_null(v);
	if (strcmp(t, "number") == 0)
		return scalar && (is_template(v) || rn_node_is_number(v));
	if (strcmp(t, "integer") == 0)
		return scalar && (is_template(v) || (v->style == RN_SCALAR_PLAIN && rn_node_int(v, &i) == 0));
	if (strcmp(t, "boolean") == 0)
		return scalar && (is_template(v) || (v->style == RN_SCALAR_PLAIN && rn_node_bool(v, &b) == 0));
	if (strcmp(t, "array") == 0)
		return v->kind == RN_NODE_SEQ;
	if (strcmp(t, "object") == 0)
		return v->kind == RN_NODE_MAP;
	if (strcmp(t, "null") == 0)
		return scalar && rn_node_is_null(v);
	return 1; /* a type we do not know: the plugin checks it */
}

static const char *type_words(const char *t)
{
	static const char *const names[][2] = {
		{ "string", "a string" }, { "number", "a number" },  { "integer", "a whole number" },
		{ "boolean", "true or false" }, { "array", "a list" }, { "object", "a mapping" }, { "null", "null" },
	};
	for (size_t i = 0; i < RN_ARRAY_LEN(names); i++)
		if (strcmp(t, names[i][0]) == 0)
			return names[i][1];
	return t;
}

static void check_value(const rn_node *key, const rn_node *v, const json_t *prop, rn_diags *d)
{
	const json_t *type = json_object_get(prop, "type");
	if (json_is_string(type) || json_is_array(type)) {
		int ok = 0;
		rn_buf want = RN_BUF_INIT(512);
		size_t n = json_is_array(type) ? json_array_size(type) : 1;
		for (size_t i = 0; i < n; i++) {
			const char *t = json_string_value(json_is_array(type) ? json_array_get(type, i) : type);
			if (!t)
				continue;
			ok |= type_ok(v, t);
			rn_buf_printf(&want, "%s%s", want.len ? " or " : "", type_words(t));
		}
		if (!ok && want.len)
			rn_diag_error(d, v->line, v->col, "'%s' must be %s, not %s", key->str, rn_buf_cstr(&want), what_is(v));
		rn_buf_free(&want);
		if (!ok)
			return;
	}
	const json_t *choices = json_object_get(prop, "enum");
	if (json_is_array(choices) && v->kind == RN_NODE_SCALAR && !is_template(v)) {
		size_t i;
		const json_t *c;
		rn_buf list = RN_BUF_INIT(1024);
		json_array_foreach(choices, i, c) {
			char *s = json_is_string(c) ? rn_xstrdup(json_string_value(c)) : json_dumps(c, JSON_ENCODE_ANY);
			if (s && strcmp(s, v->str) == 0) {
				free(s);
				rn_buf_free(&list);
				return;
			}
			if (s)
				rn_buf_printf(&list, "%s%s", list.len ? ", " : "", s);
			free(s);
		}
		rn_diag_error(d, v->line, v->col, "invalid value '%s' for '%s' (expected one of: %s)", v->str, key->str,
			      rn_buf_cstr(&list));
		rn_buf_free(&list);
	}
}

/* Apply the `inputs` schema of a description to the step's inputs (NULL or null: none). */
static void check_schema(const rn_node *key, const rn_node *inputs, const json_t *schema, rn_diags *d)
{
	const json_t *props = json_object_get(schema, "properties");
	const json_t *required = json_object_get(schema, "required");
	int closed = json_is_false(json_object_get(schema, "additionalProperties"));
	const rn_node *map = inputs && inputs->kind == RN_NODE_MAP ? inputs : NULL;
	char what[RN_PLUGIN_NAME_MAX + 8];
	snprintf(what, sizeof(what), "'%s'", key->str);
	if (map) {
		size_t np = json_is_object(props) ? json_object_size(props) : 0;
		const char **names = rn_xcalloc(np + 1, sizeof(*names));
		const char *k;
		const json_t *p;
		size_t i = 0;
		if (np)
			json_object_foreach((json_t *)props, k, p) names[i++] = k;
		for (size_t m = 0; m < map->n; m++) {
			const rn_node *mk = map->items[2 * m], *mv = map->items[2 * m + 1];
			const json_t *prop = json_object_get(props, mk->str);
			if (prop) {
				check_value(mk, mv, prop, d);
				continue;
			}
			if (!closed)
				continue;
			const char *s = rn_suggest(mk->str, names, np);
			if (s)
				rn_diag_error(d, mk->line, mk->col, "unknown key '%s' in %s (did you mean '%s'?)", mk->str, what, s);
			else if (np) {
				rn_buf list = RN_BUF_INIT(512);
				for (size_t q = 0; q < np; q++)
					if (rn_buf_printf(&list, "%s%s", q ? ", " : "", names[q]) < 0) {
						rn_buf_puts(&list, ", ...");
						break;
					}
				rn_diag_error(d, mk->line, mk->col, "unknown key '%s' in %s (it takes: %s)", mk->str, what,
					      rn_buf_cstr(&list));
				rn_buf_free(&list);
			}
			else
				rn_diag_error(d, mk->line, mk->col, "unknown key '%s' in %s (it takes no inputs)", mk->str, what);
		}
		free(names);
	}
	size_t i;
	const json_t *r;
	json_array_foreach(required, i, r) {
		const char *name = json_string_value(r);
		if (name && !(map && rn_node_get(map, name))) {
			const rn_node *at = map ? map : key;
			rn_diag_error(d, at->line, at->col, "%s is missing required key '%s'", what, name);
		}
	}
}

void rn_plugin_check_inputs(const rn_node *key, const rn_node *inputs, rn_diags *d)
{
	if (inputs && inputs->kind != RN_NODE_MAP && !rn_node_is_null(inputs)) {
		rn_diag_error(d, inputs->line, inputs->col, "the inputs of step plugin '%s' must be a mapping, not %s",
			      key->str, what_is(inputs));
		return;
	}
	if (g_checks == RN_PLUGINS_UNCHECKED || !rn_plugin_name_ok(key->str))
		return;
	cached *c = cache_get(key->str);
	if (!c->path)
		return; /* the workflow reader says so, naming the step */
	if (!c->described) {
		c->described = 1;
		if (rn_plugin_describe(&c->desc, c->path) < 0)
			c->desc_error = rn_xstrdup(rn_error_last());
	}
	if (c->desc_error) {
		if (c->told != d) /* once per file, not once per step */
			rn_diag_warn(d, key->line, key->col, "%s; the inputs of step plugin '%s' are not checked", c->desc_error,
				     key->str);
		c->told = d;
		return;
	}
	if (!c->desc)
		return; /* the plugin does not describe itself */
	const json_t *proto = json_object_get(c->desc, "protocol");
	if (proto && (!json_is_integer(proto) || json_integer_value(proto) != RN_PLUGIN_PROTOCOL)) {
		char *p = json_dumps(proto, JSON_ENCODE_ANY);
		if (g_checks == RN_PLUGINS_OPTIONAL)
			rn_diag_warn(d, key->line, key->col, "step plugin '%s' (%s) speaks protocol %s; this runner speaks %d",
				     key->str, c->path, p ? p : "?", RN_PLUGIN_PROTOCOL);
		else
			rn_diag_error(d, key->line, key->col, "step plugin '%s' (%s) speaks protocol %s; this runner speaks %d",
				      key->str, c->path, p ? p : "?", RN_PLUGIN_PROTOCOL);
		free(p);
		return;
	}
	const json_t *schema = json_object_get(c->desc, "inputs");
	if (json_is_object(schema))
		check_schema(key, inputs, schema, d);
}

/* ---- runner plugins ------------------------------------------------------------------------- */

const char rn_cmd_plugins_help[] =
	"subcommands:\n"
	"  list                  the plugins found, first match of each name: name, version,\n"
	"                        description (from `runner-step-NAME --describe`) and path (default)\n"
	"  path                  the directories searched, in order, and where each comes from\n"
	"options:\n"
	"      --plugin-dir DIR  search DIR first (as `runner run --plugin-dir`); repeatable\n"
	"      --json            print JSON\n"
	"Search order: --plugin-dir, $RUNNER_PLUGIN_PATH, ~/.local/lib/runner/plugins,\n"
	"the installed plugin directory (" RN_PLUGIN_DIR "), $PATH.\n";

typedef struct found {
	char *name;
	char *path;
	int shadowed; /* an earlier directory has this name */
} found;

static int found_cmp(const void *a, const void *b)
{
	const found *x = a, *y = b;
	int c = strcmp(x->name, y->name);
	return c ? c : (x->shadowed - y->shadowed);
}

/* Every plugin file in the search path, in search order; *n gets the count. */
static found *scan(const rn_plugin_dir *dirs, size_t ndirs, size_t *n)
{
	found *v = NULL;
	size_t cap = 0;
	*n = 0;
	size_t plen = strlen(RN_PLUGIN_PREFIX);
	for (size_t i = 0; i < ndirs; i++) {
		DIR *dir = opendir(dirs[i].path);
		if (!dir)
			continue;
		struct dirent *e;
		while ((e = readdir(dir))) {
			if (strncmp(e->d_name, RN_PLUGIN_PREFIX, plen) || !rn_plugin_name_ok(e->d_name + plen))
				continue;
			char *p = rn_xasprintf("%s/%s", dirs[i].path, e->d_name);
			if (!is_plugin_file(p)) {
				free(p);
				continue;
			}
			int shadowed = 0;
			for (size_t k = 0; k < *n; k++)
				if (strcmp(v[k].name, e->d_name + plen) == 0)
					shadowed = 1;
			rn_grow(&v, &cap, *n + 1, sizeof(*v));
			v[(*n)++] = (found){ rn_xstrdup(e->d_name + plen), p, shadowed };
		}
		closedir(dir);
	}
	return v;
}

/* s on one line, control characters as '?', at most max bytes (then "..."). Caller frees. */
static char *one_line(const char *s, size_t max)
{
	size_t n = strlen(s);
	char *o = rn_xmalloc(n + 4);
	size_t k = 0;
	for (size_t i = 0; i < n && k < max; i++)
		o[k++] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	if (n > max) {
		memcpy(o + k, "...", 3);
		k += 3;
	}
	o[k] = '\0';
	return o;
}

static int plugins_path(int json)
{
	size_t n;
	rn_plugin_dir *dirs = rn_plugin_search_path(&n);
	if (json) {
		json_t *a = json_array();
		for (size_t i = 0; i < n; i++)
			json_array_append_new(a, json_pack("{s:s, s:s}", "path", dirs[i].path, "origin", dirs[i].origin));
		json_t *o = json_pack("{s:o}", "search_path", a);
		json_dumpf(o, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(o);
	} else {
		for (size_t i = 0; i < n; i++)
			printf("%s\t(%s)\n", dirs[i].path, dirs[i].origin);
	}
	rn_plugin_dirs_free(dirs, n);
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_INFRA;
}

static int plugins_list(int json)
{
	size_t ndirs, n;
	rn_plugin_dir *dirs = rn_plugin_search_path(&ndirs);
	found *f = scan(dirs, ndirs, &n);
	qsort(f, n, sizeof(*f), found_cmp);
	json_t *list = json_array();
	for (size_t i = 0; i < n; i++) {
		if (f[i].shadowed)
			continue;
		json_t *desc = NULL;
		json_t *o = json_pack("{s:s, s:s}", "name", f[i].name, "path", f[i].path);
		if (rn_plugin_describe(&desc, f[i].path) < 0)
			json_object_set_new(o, "error", json_string(rn_error_last()));
		const char *keys[] = { "version", "description", "protocol", "inputs" };
		for (size_t k = 0; k < RN_ARRAY_LEN(keys); k++)
			if (json_object_get(desc, keys[k]))
				json_object_set(o, keys[k], json_object_get(desc, keys[k]));
		json_decref(desc);
		json_t *sh = json_array();
		for (size_t k = i + 1; k < n && strcmp(f[k].name, f[i].name) == 0; k++)
			json_array_append_new(sh, json_string(f[k].path));
		json_object_set_new(o, "shadowed", sh);
		json_array_append_new(list, o);
	}
	if (json) {
		json_t *sp = json_array();
		for (size_t i = 0; i < ndirs; i++)
			json_array_append_new(sp, json_pack("{s:s, s:s}", "path", dirs[i].path, "origin", dirs[i].origin));
		json_t *o = json_pack("{s:O, s:o}", "plugins", list, "search_path", sp);
		json_dumpf(o, stdout, JSON_INDENT(2));
		putchar('\n');
		json_decref(o);
	} else if (json_array_size(list) == 0) {
		printf("no step plugins found (runner-step-NAME executables); searched:\n");
		for (size_t i = 0; i < ndirs; i++)
			printf("  %s\t(%s)\n", dirs[i].path, dirs[i].origin);
	} else {
		/* NAME VERSION DESCRIPTION PATH, columns as wide as their widest cell */
		size_t wn = 4, wv = 7, wd = 11, cnt = json_array_size(list);
		char **ver = rn_xcalloc(cnt + 1, sizeof(char *)), **des = rn_xcalloc(cnt + 1, sizeof(char *));
		for (size_t i = 0; i < cnt; i++) {
			const json_t *o = json_array_get(list, i);
			const json_t *v = json_object_get(o, "version");
			const char *err = json_string_value(json_object_get(o, "error"));
			const char *d = json_string_value(json_object_get(o, "description"));
			char *vs = json_is_string(v) ? rn_xstrdup(json_string_value(v))
				   : v ? json_dumps(v, JSON_ENCODE_ANY) : rn_xstrdup("-");
			ver[i] = one_line(vs ? vs : "-", 20);
			free(vs);
			char *ds = err ? rn_xasprintf("(--describe failed: %s)", err) : rn_xstrdup(d ? d : "");
			des[i] = one_line(ds, 72);
			free(ds);
			size_t l = strlen(json_string_value(json_object_get(o, "name")));
			wn = l > wn ? l : wn;
			wv = strlen(ver[i]) > wv ? strlen(ver[i]) : wv;
			wd = strlen(des[i]) > wd ? strlen(des[i]) : wd;
		}
		printf("%-*s  %-*s  %-*s  %s\n", (int)wn, "NAME", (int)wv, "VERSION", (int)wd, "DESCRIPTION", "PATH");
		for (size_t i = 0; i < cnt; i++) {
			const json_t *o = json_array_get(list, i);
			printf("%-*s  %-*s  %-*s  %s\n", (int)wn, json_string_value(json_object_get(o, "name")), (int)wv, ver[i],
			       (int)wd, des[i], json_string_value(json_object_get(o, "path")));
			size_t k;
			const json_t *s;
			json_array_foreach(json_object_get(o, "shadowed"), k, s)
				printf("%-*s  %-*s  %-*s  %s\n", (int)wn, "", (int)wv, "", (int)wd, "(shadowed by the above)",
				       json_string_value(s));
			free(ver[i]);
			free(des[i]);
		}
		free(ver);
		free(des);
	}
	json_decref(list);
	for (size_t i = 0; i < n; i++) {
		free(f[i].name);
		free(f[i].path);
	}
	free(f);
	rn_plugin_dirs_free(dirs, ndirs);
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_INFRA;
}

int rn_cmd_plugins(int argc, char **argv)
{
	enum { O_DIR = 256, O_JSON };
	static const struct option opts[] = {
		{ "plugin-dir", required_argument, NULL, O_DIR },
		{ "json", no_argument, NULL, O_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char **dirs = rn_xcalloc((size_t)argc + 1, sizeof(*dirs));
	size_t ndirs = 0;
	int json = 0, ch, rc = -1;
	const char *sub = "list";
	/* `runner plugins [list|path] [OPTIONS]`: the subcommand first, options after it */
	int first = 1;
	if (argc > 1 && argv[1][0] != '-') {
		sub = argv[1];
		first = 2;
	}
	optind = 1;
	while (rc < 0 && (ch = getopt_long(argc - first + 1, argv + first - 1, "+h", opts, NULL)) != -1) {
		switch (ch) {
		case O_DIR:
			dirs[ndirs++] = optarg;
			break;
		case O_JSON:
			json = 1;
			break;
		case 'h':
			printf("usage: runner plugins [list|path] [--plugin-dir DIR]... [--json]\n\n%s", rn_cmd_plugins_help);
			rc = EXIT_OK;
			break;
		default:
			fprintf(stderr, "runner plugins: unknown option %s\n", argv[first - 1 + optind - 1]);
			rc = EXIT_USAGE;
			break;
		}
	}
	if (rc < 0 && optind < argc - first + 1) {
		fprintf(stderr, "runner plugins: unexpected argument '%s'\n", argv[first - 1 + optind]);
		rc = EXIT_USAGE;
	}
	if (rc < 0) {
		rn_plugin_setup(dirs, ndirs, RN_PLUGINS_UNCHECKED);
		if (strcmp(sub, "list") == 0)
			rc = plugins_list(json);
		else if (strcmp(sub, "path") == 0)
			rc = plugins_path(json);
		else {
			fprintf(stderr, "runner plugins: unknown subcommand '%s' (list or path)\n", sub);
			rc = EXIT_USAGE;
		}
		rn_plugin_setup(NULL, 0, RN_PLUGINS_UNCHECKED);
	}
	free(dirs);
	return rc;
}
