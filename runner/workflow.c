/* workflow.c - the YAML workflow front end: node tree -> checked pipeline model. */
#include "workflow.h"
#include "error.h"
#include "buf.h"
#include "expr.h"
#include "git.h"
#include "plugin.h"
#include "schema.h"
#include "step.h"
#include "units.h"
#include "util.h"
#include "yamldoc.h"

#include <stdlib.h>
#include <string.h>

typedef struct wctx {
	rn_pipeline *p;
	rn_arena *a;
	rn_diags *d;
} wctx;

static const char *const shells_hint = "bash, sh, or a command containing {0}";

static const rn_field top_fields[] = {
	{ "name", RN_T_STR, 0, NULL },
	{ "on", RN_T_ANY, 0, NULL },
	{ "env", RN_T_STRMAP, 0, NULL },
	{ "defaults", RN_T_MAP, 0, NULL },
	{ "notify", RN_T_LIST, 0, NULL },
	{ "jobs", RN_T_MAP, RN_F_REQUIRED, NULL },
	{ NULL, RN_T_ANY, 0, NULL },
};

static const rn_field defaults_fields[] = {
	{ "shell", RN_T_STR, 0, NULL },
	{ "timeout", RN_T_DURATION, 0, NULL },
	{ "working-directory", RN_T_STR, 0, NULL },
	{ "sandbox", RN_T_ANY, 0, NULL },
	{ NULL, RN_T_ANY, 0, NULL },
};

static const rn_field push_fields[] = {
	{ "branches", RN_T_GLOBLIST, 0, NULL },
	{ "branches-ignore", RN_T_GLOBLIST, 0, NULL },
	{ "tags", RN_T_GLOBLIST, 0, NULL },
	{ "tags-ignore", RN_T_GLOBLIST, 0, NULL },
	{ "paths", RN_T_GLOBLIST, 0, NULL },
	{ "paths-ignore", RN_T_GLOBLIST, 0, NULL },
	{ NULL, RN_T_ANY, 0, NULL },
};

static const char *const notify_formats[] = { "json", "gitea-status", "github-status", NULL };
static const rn_field notify_fields[] = {
	{ "url", RN_T_STR, RN_F_REQUIRED, NULL },
	{ "events", RN_T_STRLIST, 0, NULL },
	{ "on", RN_T_STRLIST, 0, NULL },
	{ "headers", RN_T_STRMAP, 0, NULL },
	{ "format", RN_T_STR, 0, notify_formats },
	{ NULL, RN_T_ANY, 0, NULL },
};

static const rn_field sandbox_fields[] = {
	{ "network", RN_T_BOOL, 0, NULL },
	{ "memory", RN_T_SIZE, 0, NULL },
	{ "pids", RN_T_INT, 0, NULL },
	{ "cpu", RN_T_ANY, 0, NULL },
	{ "files", RN_T_INT, 0, NULL },
	{ "file-size", RN_T_SIZE, 0, NULL },
	{ "read-only-root", RN_T_BOOL, 0, NULL },
	{ NULL, RN_T_ANY, 0, NULL },
};

static const rn_field job_fields[] = {
	{ "name", RN_T_STR, 0, NULL },
	{ "needs", RN_T_STRLIST, 0, NULL },
	{ "if", RN_T_STR, 0, NULL },
	{ "runs-on", RN_T_STRLIST, 0, NULL },
	{ "env", RN_T_STRMAP, 0, NULL },
	{ "matrix", RN_T_MAP, 0, NULL },
	{ "fail-fast", RN_T_BOOL, 0, NULL },
	{ "max-parallel", RN_T_INT, 0, NULL },
	{ "timeout", RN_T_DURATION, 0, NULL },
	{ "retry", RN_T_INT, 0, NULL },
	{ "continue-on-error", RN_T_BOOL, 0, NULL },
	{ "outputs", RN_T_STRMAP, 0, NULL },
	{ "sandbox", RN_T_ANY, 0, NULL },
	{ "steps", RN_T_LIST, RN_F_REQUIRED, NULL },
	{ NULL, RN_T_ANY, 0, NULL },
};

/* Step keys other than the kinds (run, build, ...), which come from the registry. */
static const rn_field step_common_fields[] = {
	{ "id", RN_T_STR, 0, NULL },
	{ "name", RN_T_STR, 0, NULL },
	{ "shell", RN_T_STR, 0, NULL },
	{ "env", RN_T_STRMAP, 0, NULL },
	{ "working-directory", RN_T_STR, 0, NULL },
	{ "timeout", RN_T_DURATION, 0, NULL },
	{ "grace", RN_T_DURATION, 0, NULL },
	{ "retry", RN_T_ANY, 0, NULL },
	{ "continue-on-error", RN_T_BOOL, 0, NULL },
	{ "if", RN_T_STR, 0, NULL },
	{ "sandbox", RN_T_ANY, 0, NULL },
	{ NULL, RN_T_ANY, 0, NULL },
};

static const rn_field retry_fields[] = {
	{ "attempts", RN_T_INT, 0, NULL },
	{ "delay", RN_T_DURATION, 0, NULL },
	{ "backoff", RN_T_ANY, 0, NULL },
	{ NULL, RN_T_ANY, 0, NULL },
};

int rn_workflow_valid_id(const char *s)
{
	if (!s || !((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || *s == '_'))
		return 0;
	for (s++; *s; s++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_' ||
		      *s == '-'))
			return 0;
	return 1;
}

static rn_pos pos_of(const rn_node *n)
{
	return (rn_pos){ n ? n->line : 0, n ? n->col : 0 };
}

static int is_scalar(const rn_node *n)
{
	return n && n->kind == RN_NODE_SCALAR && !rn_node_is_null(n);
}

/* A mapping of scalars into key/value pairs (types were checked by the schema). */
static rn_kvs to_kvs(wctx *c, const rn_node *map)
{
	rn_kvs kvs = { NULL, 0 };
	if (!map || map->kind != RN_NODE_MAP)
		return kvs;
	kvs.v = rn_arena_alloc(c->a, (map->n + 1) * sizeof(*kvs.v));
	for (size_t i = 0; i < map->n; i++) {
		const rn_node *k = map->items[2 * i], *v = map->items[2 * i + 1];
		if (v->kind != RN_NODE_SCALAR)
			continue;
		kvs.v[kvs.n++] = (rn_kv){ k->str, rn_node_is_null(v) ? "" : v->str, pos_of(k) };
	}
	return kvs;
}

/* A scalar or a list of scalars into strings. */
static rn_strs to_strs(wctx *c, const rn_node *n)
{
	rn_strs s = { NULL, NULL, 0 };
	if (!n)
		return s;
	size_t cnt = n->kind == RN_NODE_SEQ ? n->n : 1;
	s.v = rn_arena_alloc(c->a, (cnt + 1) * sizeof(*s.v));
	s.pos = rn_arena_alloc(c->a, (cnt + 1) * sizeof(*s.pos));
	for (size_t i = 0; i < cnt; i++) {
		const rn_node *it = n->kind == RN_NODE_SEQ ? n->items[i] : n;
		if (!is_scalar(it))
			continue;
		s.pos[s.n] = pos_of(it);
		s.v[s.n++] = it->str;
	}
	return s;
}

static int64_t get_duration(const rn_node *map, const char *key, int64_t dflt)
{
	const rn_node *v = rn_node_get(map, key);
	int64_t ms;
	if (is_scalar(v) && rn_duration_parse(&ms, v->str) == 0)
		return ms;
	return dflt;
}

static int get_bool(const rn_node *map, const char *key, int dflt)
{
	int b;
	const rn_node *v = rn_node_get(map, key);
	return v && rn_node_bool(v, &b) == 0 ? b : dflt;
}

static long long get_int(const rn_node *map, const char *key, long long dflt)
{
	long long i;
	const rn_node *v = rn_node_get(map, key);
	return v && rn_node_int(v, &i) == 0 ? i : dflt;
}

static const char *get_str(const rn_node *map, const char *key)
{
	const rn_node *v = rn_node_get(map, key);
	return is_scalar(v) ? v->str : NULL;
}

static void check_shell(wctx *c, const rn_node *map)
{
	const rn_node *v = rn_node_get(map, "shell");
	if (!is_scalar(v))
		return;
	if (strcmp(v->str, "bash") && strcmp(v->str, "sh") && !strstr(v->str, "{0}"))
		rn_diag_error(c->d, v->line, v->col, "unknown shell '%s' (expected %s)", v->str, shells_hint);
}

/* `sandbox:` is false/true or a mapping; settings not given stay as in `base`. */
static rn_sandbox parse_sandbox(wctx *c, const rn_node *n, rn_sandbox base)
{
	rn_sandbox s = base;
	int b;
	if (!n)
		return s;
	s.pos = pos_of(n);
	if (n->kind == RN_NODE_SCALAR) {
		if (rn_node_bool(n, &b) < 0)
			rn_diag_error(c->d, n->line, n->col, "'sandbox' must be true, false or a mapping");
		else
			s.enabled = b;
		return s;
	}
	if (rn_schema_check(n, sandbox_fields, "'sandbox'", c->d))
		return s;
	s.enabled = 1;
	int64_t x;
	const rn_node *v;
	if ((v = rn_node_get(n, "network")) && rn_node_bool(v, &b) == 0)
		s.network = b;
	if ((v = rn_node_get(n, "read-only-root")) && rn_node_bool(v, &b) == 0)
		s.read_only_root = b;
	if ((v = rn_node_get(n, "memory")) && is_scalar(v) && rn_size_parse(&x, v->str) == 0)
		s.memory = x;
	if ((v = rn_node_get(n, "file-size")) && is_scalar(v) && rn_size_parse(&x, v->str) == 0)
		s.file_size = x;
	s.pids = get_int(n, "pids", s.pids);
	s.files = get_int(n, "files", s.files);
	if ((v = rn_node_get(n, "cpu"))) {
		long long secs;
		if (rn_node_int(v, &secs) == 0 && secs > 0)
			s.cpu_s = secs;
		else if (is_scalar(v) && rn_duration_parse(&x, v->str) == 0 && x >= 1000)
			s.cpu_s = x / 1000;
		else
			rn_diag_error(c->d, v->line, v->col, "'cpu' must be a number of seconds or a duration of at least 1s");
	}
	return s;
}

static void parse_on(wctx *c, const rn_node *on)
{
	static const char *const triggers[] = { "push" };
	if (!on)
		return;
	if (on->kind == RN_NODE_SCALAR || on->kind == RN_NODE_SEQ) {
		rn_strs names = to_strs(c, on);
		if (on->kind == RN_NODE_SEQ && names.n != on->n)
			rn_diag_error(c->d, on->line, on->col, "'on' must list trigger names");
		for (size_t i = 0; i < names.n; i++) {
			if (strcmp(names.v[i], "push") == 0)
				c->p->push.present = 1;
			else
				rn_diag_error(c->d, names.pos[i].line, names.pos[i].col, "unknown trigger '%s' (expected: push)",
					      names.v[i]);
		}
		return;
	}
	for (size_t i = 0; i < on->n; i++) {
		const rn_node *k = on->items[2 * i], *v = on->items[2 * i + 1];
		if (strcmp(k->str, "push") != 0) {
			const char *s = rn_suggest(k->str, triggers, 1);
			rn_diag_error(c->d, k->line, k->col, "unknown trigger '%s'%s%s%s", k->str, s ? " (did you mean '" : "",
				      s ? s : "", s ? "'?)" : " (expected: push)");
			continue;
		}
		rn_push_filter *f = &c->p->push;
		f->present = 1;
		if (rn_node_is_null(v))
			continue;
		if (rn_schema_check(v, push_fields, "'on.push'", c->d))
			continue;
		f->branches = to_strs(c, rn_node_get(v, "branches"));
		f->branches_ignore = to_strs(c, rn_node_get(v, "branches-ignore"));
		f->tags = to_strs(c, rn_node_get(v, "tags"));
		f->tags_ignore = to_strs(c, rn_node_get(v, "tags-ignore"));
		f->paths = to_strs(c, rn_node_get(v, "paths"));
		f->paths_ignore = to_strs(c, rn_node_get(v, "paths-ignore"));
		if (f->branches.n && f->branches_ignore.n)
			rn_diag_error(c->d, v->line, v->col, "'branches' and 'branches-ignore' cannot both be set");
	}
}

static void parse_notify(wctx *c, const rn_node *list)
{
	static const char *const events[] = { "pipeline", "job", NULL };
	static const char *const states[] = { "success", "failure", "cancelled", "started", NULL };
	if (!list || list->kind != RN_NODE_SEQ)
		return;
	c->p->notify = rn_arena_alloc(c->a, (list->n + 1) * sizeof(*c->p->notify));
	for (size_t i = 0; i < list->n; i++) {
		const rn_node *n = list->items[i];
		if (rn_schema_check(n, notify_fields, "'notify' entry", c->d))
			continue;
		rn_notify *out = &c->p->notify[c->p->nnotify++];
		out->pos = pos_of(n);
		out->url = get_str(n, "url");
		out->events = to_strs(c, rn_node_get(n, "events"));
		out->on = to_strs(c, rn_node_get(n, "on"));
		out->headers = to_kvs(c, rn_node_get(n, "headers"));
		out->format = get_str(n, "format") ? get_str(n, "format") : "json";
		for (size_t k = 0; k < out->events.n; k++) {
			size_t j = 0;
			while (events[j] && strcmp(events[j], out->events.v[k]))
				j++;
			if (!events[j])
				rn_diag_error(c->d, out->events.pos[k].line, out->events.pos[k].col,
					      "unknown notify event '%s' (expected pipeline or job)", out->events.v[k]);
		}
		for (size_t k = 0; k < out->on.n; k++) {
			size_t j = 0;
			while (states[j] && strcmp(states[j], out->on.v[k]))
				j++;
			if (!states[j])
				rn_diag_error(c->d, out->on.pos[k].line, out->on.pos[k].col,
					      "unknown notify state '%s' (expected success, failure, cancelled or started)",
					      out->on.v[k]);
		}
	}
}

static void check_condition(wctx *c, const rn_node *v)
{
	size_t off = 0;
	if (!is_scalar(v))
		return;
	if (rn_expr_condition_check(v->str, &off) < 0)
		rn_diag_error(c->d, v->line, v->col + (int)off, "bad expression in 'if': %s", rn_error_last());
}

static void parse_retry(wctx *c, const rn_node *v, rn_step *s)
{
	long long n;
	s->max_attempts = 1;
	s->retry_delay_ms = 0;
	s->retry_backoff = 1.0;
	if (!v)
		return;
	if (v->kind == RN_NODE_SCALAR) {
		if (rn_node_int(v, &n) < 0 || n < 0 || n > 100)
			rn_diag_error(c->d, v->line, v->col, "'retry' must be a number of retries (0-100) or a mapping");
		else
			s->max_attempts = (int)n + 1;
		return;
	}
	if (rn_schema_check(v, retry_fields, "'retry'", c->d))
		return;
	n = get_int(v, "attempts", 1);
	if (n < 1 || n > 100) {
		const rn_node *a = rn_node_get(v, "attempts");
		rn_diag_error(c->d, a->line, a->col, "'attempts' must be between 1 and 100");
		n = 1;
	}
	s->max_attempts = (int)n;
	s->retry_delay_ms = get_duration(v, "delay", 0);
	const rn_node *b = rn_node_get(v, "backoff");
	if (b) {
		char *end = NULL;
		double f = is_scalar(b) ? strtod(b->str, &end) : 0;
		if (!end || *end || f < 1.0 || f > 100.0)
			rn_diag_error(c->d, b->line, b->col, "'backoff' must be a number between 1 and 100");
		else
			s->retry_backoff = f;
	}
}

static const char *derive_step_name(wctx *c, const rn_step *s)
{
	if (s->run) {
		const char *p = s->run;
		while (*p == ' ' || *p == '\n' || *p == '\t')
			p++;
		size_t n = strcspn(p, "\n");
		if (n > 60) {
			n = 60;
			/* never cut inside a ${{ }}: end the name before it, or after it */
			const char *open = NULL;
			for (const char *q = p; q < p + n; q++)
				if (q[0] == '$' && q[1] == '{' && q[2] == '{')
					open = q;
			if (open && !memmem(open, (size_t)(p + n - open), "}}", 2)) {
				const char *close = strstr(open, "}}");
				size_t line_end = strcspn(p, "\n");
				if (close && (size_t)(close + 2 - p) <= line_end)
					n = (size_t)(close + 2 - p);
				else
					n = (size_t)(open - p);
			}
		}
		while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		return rn_arena_strndup(c->a, p, n);
	}
	/* other kinds: the kind and its main parameter, e.g. "package dist" */
	static const char *const main_param[][2] = {
		{ "package", "name" }, { "download", "artifact" }, { "upload", "artifact" }, { "checkout", "repo" },
		{ "build", "tool" },
	};
	for (size_t i = 0; i < sizeof(main_param) / sizeof(main_param[0]); i++) {
		if (strcmp(s->kind, main_param[i][0]))
			continue;
		const char *v = get_str(s->with, main_param[i][1]);
		if (!v && strcmp(s->kind, "upload") == 0)
			v = get_str(s->with, "path");
		if (v && strcmp(s->kind, "checkout") == 0) {
			char *safe = rn_git_redact_url(v); /* a password in a URL never becomes a name */
			const char *name = rn_arena_printf(c->a, "%s %s", s->kind, safe);
			free(safe);
			return name;
		}
		if (v)
			return rn_arena_printf(c->a, "%s %s", s->kind, v);
	}
	return s->kind;
}

/* A quoted scalar (so that it stays a string in JSON) at the position of `at`, owned by the arena. */
static rn_node *new_scalar(wctx *c, const char *str, const rn_node *at)
{
	rn_node *n = rn_arena_alloc(c->a, sizeof(*n));
	n->kind = RN_NODE_SCALAR;
	n->line = at ? at->line : 0;
	n->col = at ? at->col : 0;
	n->style = RN_SCALAR_QUOTED;
	n->str = rn_arena_strdup(c->a, str);
	n->len = strlen(str);
	n->weight = 1;
	return n;
}

/* The parameters of the plugin kind (see rn_step_plugin in step.h): {plugin, name, id, inputs}. */
static const rn_node *plugin_params(wctx *c, const rn_node *key, const rn_node *inputs, const rn_step *s)
{
	rn_node *m = rn_arena_alloc(c->a, sizeof(*m));
	m->kind = RN_NODE_MAP;
	m->line = key->line;
	m->col = key->col;
	m->items = rn_arena_alloc(c->a, 8 * sizeof(*m->items));
	m->weight = 1 + (inputs ? inputs->weight : 0);
	const char *keys[] = { "plugin", "name", "id", "inputs" };
	const rn_node *vals[] = { new_scalar(c, key->str, key), new_scalar(c, s->name, key),
				  s->id ? new_scalar(c, s->id, key) : NULL, inputs };
	for (size_t i = 0; i < 4; i++) {
		if (!vals[i])
			continue;
		m->items[2 * m->n] = new_scalar(c, keys[i], key);
		m->items[2 * m->n + 1] = (rn_node *)vals[i];
		m->n++;
		m->weight += 2;
	}
	return m;
}

/* 1 if the key names a plugin that the current checks (plugin.h) can find installed. */
static int plugin_installed(const char *name)
{
	const char *path;
	return rn_plugin_checks_mode() != RN_PLUGINS_UNCHECKED && rn_plugin_lookup(&path, name) == 0;
}

/* Of the step's keys that are neither common settings nor built-in kinds (indexes into the
 * step mapping), the one that is its plugin, or NULL: a plugin name whose value is a mapping or
 * empty; an installed plugin first, then one that does not look like a misspelt key. */
static const rn_node *pick_plugin(const rn_node *n, const size_t *other, size_t nother, const char *const *all,
				  size_t nall)
{
	const rn_node *first = NULL, *plain = NULL;
	for (size_t j = 0; j < nother; j++) {
		const rn_node *k = n->items[2 * other[j]], *v = n->items[2 * other[j] + 1];
		if (!rn_plugin_name_ok(k->str) || (v->kind != RN_NODE_MAP && !rn_node_is_null(v)))
			continue;
		if (plugin_installed(k->str))
			return k;
		if (!first)
			first = k;
		if (!plain && !rn_suggest(k->str, all, nall))
			plain = k;
	}
	return plain ? plain : first;
}

/* A key of a step that is not a setting, not its kind and not its plugin. */
static void unknown_step_key(wctx *c, const rn_node *k, const rn_node *v, const char *what, const rn_node *kind_key,
			     const char *const *all, size_t nall)
{
	if (rn_plugin_name_ok(k->str) && plugin_installed(k->str)) {
		if (kind_key)
			rn_diag_error(c->d, k->line, k->col, "%s has two kinds, '%s' and '%s' (a step does one thing)", what,
				      kind_key->str, k->str);
		else
			rn_diag_error(c->d, v->line, v->col, "the inputs of step plugin '%s' must be a mapping, not %s", k->str,
				      rn_node_type_name(v));
		return;
	}
	const char *sg = rn_suggest(k->str, all, nall);
	if (sg)
		rn_diag_error(c->d, k->line, k->col, "unknown key '%s' in %s (did you mean '%s'?)", k->str, what, sg);
	else
		rn_diag_error(c->d, k->line, k->col, "unknown key '%s' in %s (not a step kind or a step setting)", k->str,
			      what);
}

/* With plugin checks on (run, validate): a plugin step whose plugin is not installed. 1 if so. */
static int missing_plugin(wctx *c, const rn_node *k, const char *what, const char *const *all, size_t nall)
{
	rn_plugin_checks mode = rn_plugin_checks_mode();
	if (mode == RN_PLUGINS_UNCHECKED || plugin_installed(k->str))
		return 0;
	const char *sg = rn_suggest(k->str, all, nall);
	char msg[512];
	if (sg)
		snprintf(msg, sizeof(msg), "unknown key '%s' in %s (did you mean '%s'? there is no step plugin '%s' either)",
			 k->str, what, sg, k->str);
	else
		snprintf(msg, sizeof(msg),
			 "%s uses step plugin '%s', which is not installed (no " RN_PLUGIN_PREFIX
			 "%s on the plugin search path; see 'runner plugins path')",
			 what, k->str, k->str);
	if (mode == RN_PLUGINS_OPTIONAL)
		rn_diag_warn(c->d, k->line, k->col, "%s", msg);
	else
		rn_diag_error(c->d, k->line, k->col, "%s", msg);
	return 1;
}

static void parse_step(wctx *c, const rn_job *job, const rn_node *n, size_t index, rn_step *s)
{
	char what[160];
	snprintf(what, sizeof(what), "step %zu of job '%s'", index + 1, job->id);
	s->pos = pos_of(n);
	if (!n || n->kind != RN_NODE_MAP) {
		rn_diag_error(c->d, n->line, n->col, "%s must be a mapping, not %s", what, rn_node_type_name(n));
		return;
	}
	/* Split keys into the common ones, a built-in kind, and the others: one of those may be the
	 * step's plugin (when there is no built-in kind), the rest are mistakes. One kind exactly. */
	size_t nkinds = 0;
	const rn_step_kind *const *kinds = rn_step_kinds(&nkinds);
	const rn_node *kind_key = NULL, *kind_val = NULL;
	size_t ncommon = 0, nother = 0;
	while (step_common_fields[ncommon].key)
		ncommon++;
	const char **all = rn_xcalloc(ncommon + nkinds + 1, sizeof(*all));
	size_t *other = rn_xcalloc(n->n + 1, sizeof(*other));
	for (size_t i = 0; i < ncommon; i++)
		all[i] = step_common_fields[i].key;
	for (size_t i = 0; i < nkinds; i++)
		all[ncommon + i] = kinds[i]->name;
	size_t nall = ncommon + nkinds;
	for (size_t i = 0; i < n->n; i++) {
		const rn_node *k = n->items[2 * i], *v = n->items[2 * i + 1];
		size_t f;
		for (f = 0; f < ncommon; f++)
			if (strcmp(step_common_fields[f].key, k->str) == 0)
				break;
		if (f < ncommon) {
			rn_schema_check_value(v, step_common_fields[f].type, NULL, k->str, c->d);
			continue;
		}
		const rn_step_kind *kind = rn_step_kind_builtin(k->str);
		if (!kind) {
			other[nother++] = i;
			continue;
		}
		if (kind_key) {
			rn_diag_error(c->d, k->line, k->col, "%s has two kinds, '%s' and '%s' (a step does one thing)", what,
				      kind_key->str, k->str);
			continue;
		}
		kind_key = k;
		kind_val = v;
		kind->check(k, v, c->d);
	}
	const rn_node *plugin_key = kind_key ? NULL : pick_plugin(n, other, nother, all, nall);
	for (size_t j = 0; j < nother; j++) {
		const rn_node *k = n->items[2 * other[j]], *v = n->items[2 * other[j] + 1];
		if (k != plugin_key)
			unknown_step_key(c, k, v, what, kind_key ? kind_key : plugin_key, all, nall);
	}
	if (plugin_key) {
		kind_key = plugin_key;
		kind_val = rn_node_get(n, plugin_key->str);
		if (!missing_plugin(c, plugin_key, what, all, nall))
			rn_step_plugin.check(kind_key, kind_val, c->d);
	}
	free(other);
	free(all);
	if (!kind_key) {
		if (nother)
			return; /* the unknown key is most likely the kind, misspelt: said already */
		rn_diag_error(c->d, n->line, n->col,
			      "%s has no kind (expected one of run, build, package, checkout, upload, download)", what);
		return;
	}
	s->kind = kind_key->str;
	s->with = kind_val;
	if (strcmp(s->kind, "run") == 0 && is_scalar(kind_val))
		s->run = kind_val->str;
	const rn_node *id = rn_node_get(n, "id");
	if (is_scalar(id)) {
		if (!rn_workflow_valid_id(id->str))
			rn_diag_error(c->d, id->line, id->col, "invalid step id '%s' (use letters, digits, '_' and '-', not starting with a digit or '-')",
				      id->str);
		s->id = id->str;
	}
	check_shell(c, n);
	s->shell = get_str(n, "shell") ? get_str(n, "shell") : c->p->default_shell;
	s->env = to_kvs(c, rn_node_get(n, "env"));
	s->workdir = get_str(n, "working-directory") ? get_str(n, "working-directory") : c->p->default_workdir;
	s->timeout_ms = get_duration(n, "timeout", c->p->default_timeout_ms);
	s->grace_ms = get_duration(n, "grace", 10000);
	parse_retry(c, rn_node_get(n, "retry"), s);
	s->continue_on_error = get_bool(n, "continue-on-error", 0);
	const rn_node *cond = rn_node_get(n, "if");
	if (is_scalar(cond)) {
		s->if_cond = cond->str;
		s->if_pos = pos_of(cond);
		check_condition(c, cond);
	}
	s->sandbox = parse_sandbox(c, rn_node_get(n, "sandbox"), job->sandbox);
	const char *name = get_str(n, "name");
	s->name = name ? name : derive_step_name(c, s);
	if (plugin_key)
		s->with = plugin_params(c, kind_key, kind_val, s);
}

static void parse_matrix(wctx *c, rn_job *job, const rn_node *m)
{
	rn_matrix *mx = &job->matrix;
	mx->present = 1;
	mx->axes = rn_arena_alloc(c->a, (m->n + 1) * sizeof(*mx->axes));
	size_t axis_keys = 0;
	for (size_t i = 0; i < m->n; i++) {
		const rn_node *k = m->items[2 * i], *v = m->items[2 * i + 1];
		if (strcmp(k->str, "exclude") == 0 || strcmp(k->str, "include") == 0) {
			if (v->kind != RN_NODE_SEQ) {
				rn_diag_error(c->d, v->line, v->col, "matrix '%s' must be a list of mappings", k->str);
				continue;
			}
			for (size_t j = 0; j < v->n; j++)
				if (v->items[j]->kind != RN_NODE_MAP || v->items[j]->n == 0)
					rn_diag_error(c->d, v->items[j]->line, v->items[j]->col,
						      "matrix '%s' entries must be non-empty mappings", k->str);
			if (k->str[0] == 'e')
				mx->exclude = v;
			else
				mx->include = v;
			continue;
		}
		axis_keys++;
		if (!rn_workflow_valid_id(k->str)) {
			rn_diag_error(c->d, k->line, k->col, "invalid matrix axis name '%s'", k->str);
			continue;
		}
		if (v->kind != RN_NODE_SEQ || v->n == 0) {
			rn_diag_error(c->d, v->line, v->col, "matrix axis '%s' must be a non-empty list", k->str);
			continue;
		}
		mx->axes[mx->naxes++] = (rn_matrix_axis){ k->str, v, pos_of(k) };
	}
	if (axis_keys == 0 && !mx->include)
		rn_diag_error(c->d, m->line, m->col, "matrix of job '%s' has no axes", job->id);
	/* exclude entries must name existing axes */
	if (mx->exclude && mx->exclude->kind == RN_NODE_SEQ) {
		for (size_t j = 0; j < mx->exclude->n; j++) {
			const rn_node *e = mx->exclude->items[j];
			if (e->kind != RN_NODE_MAP)
				continue;
			for (size_t q = 0; q < e->n; q++) {
				const rn_node *ek = e->items[2 * q];
				size_t a;
				for (a = 0; a < mx->naxes; a++)
					if (strcmp(mx->axes[a].name, ek->str) == 0)
						break;
				if (a == mx->naxes)
					rn_diag_error(c->d, ek->line, ek->col, "matrix exclude names unknown axis '%s'", ek->str);
			}
		}
	}
}

static void parse_job(wctx *c, const rn_node *key, const rn_node *n, rn_job *job)
{
	char what[160];
	job->id = key->str;
	job->pos = pos_of(key);
	snprintf(what, sizeof(what), "job '%.100s'", key->str);
	if (!rn_workflow_valid_id(key->str))
		rn_diag_error(c->d, key->line, key->col,
			      "invalid job id '%s' (use letters, digits, '_' and '-', not starting with a digit or '-')", key->str);
	job->fail_fast = 1;
	job->sandbox = c->p->default_sandbox;
	if (rn_schema_check(n, job_fields, what, c->d) && (!n || n->kind != RN_NODE_MAP))
		return;
	const char *name = get_str(n, "name");
	job->name = name ? name : job->id;
	job->needs = to_strs(c, rn_node_get(n, "needs"));
	const rn_node *cond = rn_node_get(n, "if");
	if (is_scalar(cond)) {
		job->if_cond = cond->str;
		job->if_pos = pos_of(cond);
		check_condition(c, cond);
	}
	job->runs_on = to_strs(c, rn_node_get(n, "runs-on"));
	job->env = to_kvs(c, rn_node_get(n, "env"));
	const rn_node *m = rn_node_get(n, "matrix");
	if (m && m->kind == RN_NODE_MAP)
		parse_matrix(c, job, m);
	job->fail_fast = get_bool(n, "fail-fast", 1);
	job->max_parallel = (int)get_int(n, "max-parallel", 0);
	job->timeout_ms = get_duration(n, "timeout", 0);
	job->retry = (int)get_int(n, "retry", 0);
	if (job->retry > 100) {
		const rn_node *r = rn_node_get(n, "retry");
		rn_diag_error(c->d, r->line, r->col, "'retry' must be between 0 and 100");
	}
	job->continue_on_error = get_bool(n, "continue-on-error", 0);
	job->outputs = to_kvs(c, rn_node_get(n, "outputs"));
	job->sandbox = parse_sandbox(c, rn_node_get(n, "sandbox"), c->p->default_sandbox);
	const rn_node *steps = rn_node_get(n, "steps");
	if (!steps || steps->kind != RN_NODE_SEQ)
		return;
	if (steps->n == 0)
		rn_diag_error(c->d, steps->line, steps->col, "job '%s' has no steps", job->id);
	job->steps = rn_arena_alloc(c->a, (steps->n + 1) * sizeof(*job->steps));
	job->nsteps = steps->n;
	for (size_t i = 0; i < steps->n; i++)
		parse_step(c, job, steps->items[i], i, &job->steps[i]);
	/* duplicate step ids */
	for (size_t i = 0; i < job->nsteps; i++) {
		if (!job->steps[i].id)
			continue;
		for (size_t j = 0; j < i; j++) {
			if (job->steps[j].id && strcmp(job->steps[i].id, job->steps[j].id) == 0) {
				const rn_node *idn = rn_node_key(steps->items[i], "id");
				rn_diag_error(c->d, idn->line, idn->col, "duplicate step id '%s' in job '%s' (first at line %d)",
					      job->steps[i].id, job->id, job->steps[j].pos.line);
				break;
			}
		}
	}
}

typedef struct jobref {
	const char *id;
	size_t index;
} jobref;

static int jobref_cmp(const void *a, const void *b)
{
	return strcmp(((const jobref *)a)->id, ((const jobref *)b)->id);
}

/* Resolve `needs` to job indexes (-1 when unknown), then report every dependency cycle once. */
static void check_graph(wctx *c)
{
	rn_pipeline *p = c->p;
	size_t n = p->njobs;
	jobref *refs = rn_xcalloc(n + 1, sizeof(*refs));
	for (size_t i = 0; i < n; i++)
		refs[i] = (jobref){ p->jobs[i].id, i };
	qsort(refs, n, sizeof(*refs), jobref_cmp);
	size_t **deps = rn_xcalloc(n + 1, sizeof(*deps));
	for (size_t i = 0; i < n; i++) {
		rn_job *j = &p->jobs[i];
		deps[i] = j->needs_index = rn_arena_alloc(c->a, (j->needs.n + 1) * sizeof(**deps));
		for (size_t k = 0; k < j->needs.n; k++) {
			jobref key = { j->needs.v[k], 0 };
			jobref *hit = bsearch(&key, refs, n, sizeof(*refs), jobref_cmp);
			deps[i][k] = hit ? hit->index : (size_t)-1;
			if (!hit) {
				const char **ids = rn_xcalloc(n + 1, sizeof(*ids));
				for (size_t q = 0; q < n; q++)
					ids[q] = p->jobs[q].id;
				const char *sg = rn_suggest(j->needs.v[k], ids, n);
				free(ids);
				rn_diag_error(c->d, j->needs.pos[k].line, j->needs.pos[k].col,
					      "job '%s' needs unknown job '%s'%s%s%s", j->id, j->needs.v[k],
					      sg ? " (did you mean '" : "", sg ? sg : "", sg ? "'?)" : "");
			} else if (hit->index == i) {
				rn_diag_error(c->d, j->needs.pos[k].line, j->needs.pos[k].col, "job '%s' needs itself", j->id);
				deps[i][k] = (size_t)-1;
			}
		}
	}
	/* Iterative DFS: 0 white, 1 on the stack, 2 done. */
	unsigned char *color = rn_xcalloc(n + 1, 1);
	size_t *stack = rn_xcalloc(n + 1, sizeof(*stack)), *next = rn_xcalloc(n + 1, sizeof(*next));
	for (size_t root = 0; root < n; root++) {
		if (color[root])
			continue;
		size_t sp = 0;
		stack[sp++] = root;
		color[root] = 1;
		next[root] = 0;
		while (sp) {
			size_t v = stack[sp - 1];
			rn_job *j = &p->jobs[v];
			if (next[v] == j->needs.n) {
				color[v] = 2;
				sp--;
				continue;
			}
			size_t k = next[v]++;
			size_t w = deps[v][k];
			if (w == (size_t)-1 || color[w] == 2)
				continue;
			if (color[w] == 0) {
				color[w] = 1;
				next[w] = 0;
				stack[sp++] = w;
				continue;
			}
			/* back edge v -> w: the cycle is w ... v -> w on the stack */
			rn_buf msg = RN_BUF_INIT(4096);
			size_t from = sp;
			while (from > 0 && stack[from - 1] != w)
				from--;
			/* stack[from-1] is w; a long cycle shows its first and last jobs and a count */
			size_t len = sp - (from - 1);
			for (size_t q = from - 1; q < sp; q++) {
				if (len > 12 && q - (from - 1) == 8) {
					rn_buf_printf(&msg, "... (%zu more) -> ", len - 11);
					q = sp - 4;
					continue;
				}
				rn_buf_printf(&msg, "%.200s -> ", p->jobs[stack[q]].id);
			}
			rn_buf_printf(&msg, "%.200s", p->jobs[w].id);
			rn_diag_error(c->d, j->needs.pos[k].line, j->needs.pos[k].col, "dependency cycle: %s",
				      rn_buf_cstr(&msg));
			rn_buf_free(&msg);
		}
	}
	free(color);
	free(stack);
	free(next);
	free(deps);
	free(refs);
}

/* Top-level keys; `x-...` keys are extension keys for YAML anchors, ignored like in Compose. */
static void check_top_keys(wctx *c, const rn_node *root)
{
	rn_node filtered = *root;
	rn_node **items = rn_xcalloc(2 * root->n + 1, sizeof(*items));
	filtered.items = items;
	filtered.n = 0;
	for (size_t i = 0; i < root->n; i++) {
		if (rn_startswith(root->items[2 * i]->str, "x-"))
			continue;
		items[2 * filtered.n] = root->items[2 * i];
		items[2 * filtered.n + 1] = root->items[2 * i + 1];
		filtered.n++;
	}
	rn_schema_check(&filtered, top_fields, "the workflow", c->d);
	free(items);
}

static const char *default_name(wctx *c, const char *file)
{
	const char *base = strrchr(file, '/');
	base = base ? base + 1 : file;
	size_t n = strlen(base);
	const char *dot = strrchr(base, '.');
	if (dot && dot != base && (strcmp(dot, ".yml") == 0 || strcmp(dot, ".yaml") == 0))
		n = (size_t)(dot - base);
	while (n && *base == '.') {
		base++;
		n--;
	}
	return n ? rn_arena_strndup(c->a, base, n) : "pipeline";
}

int rn_workflow_parse(rn_pipeline **out, const char *file, const char *data, size_t len, rn_diags *d)
{
	rn_pipeline *p = rn_xcalloc(1, sizeof(*p));
	wctx c = { p, &p->arena, d };
	rn_node *root = NULL;
	size_t errors_before = d->errors;
	*out = NULL;
	p->file = rn_arena_strdup(&p->arena, file);
	if (rn_yaml_load(&root, data, len, &p->arena, d) < 0)
		goto fail;
	p->root = root;
	if (root->kind != RN_NODE_MAP) {
		rn_diag_error(d, root->line, root->col, "a workflow must be a mapping with a 'jobs' key, not %s",
			      rn_node_type_name(root));
		goto fail;
	}
	check_top_keys(&c, root);
	p->name = get_str(root, "name") ? get_str(root, "name") : default_name(&c, file);
	parse_on(&c, rn_node_get(root, "on"));
	p->env = to_kvs(&c, rn_node_get(root, "env"));
	p->default_timeout_ms = 0;
	p->default_workdir = NULL;
	p->default_sandbox = (rn_sandbox)RN_SANDBOX_UNSET;
	const rn_node *defaults = rn_node_get(root, "defaults");
	if (defaults && defaults->kind == RN_NODE_MAP) {
		rn_schema_check(defaults, defaults_fields, "'defaults'", d);
		check_shell(&c, defaults);
		p->default_shell = get_str(defaults, "shell");
		p->default_timeout_ms = get_duration(defaults, "timeout", 0);
		p->default_workdir = get_str(defaults, "working-directory");
		p->default_sandbox = parse_sandbox(&c, rn_node_get(defaults, "sandbox"), p->default_sandbox);
	}
	parse_notify(&c, rn_node_get(root, "notify"));
	const rn_node *jobs = rn_node_get(root, "jobs");
	if (jobs && jobs->kind == RN_NODE_MAP) {
		if (jobs->n == 0)
			rn_diag_error(d, jobs->line, jobs->col, "the workflow has no jobs");
		p->jobs = rn_arena_alloc(&p->arena, (jobs->n + 1) * sizeof(*p->jobs));
		p->njobs = jobs->n;
		for (size_t i = 0; i < jobs->n; i++)
			parse_job(&c, jobs->items[2 * i], jobs->items[2 * i + 1], &p->jobs[i]);
		check_graph(&c);
		rn_schema_check_templates(jobs, d);
	}
	rn_schema_check_templates(rn_node_get(root, "env"), d);
	rn_schema_check_templates(rn_node_get(root, "notify"), d);
	if (d->errors > errors_before)
		goto fail;
	*out = p;
	return 0;
fail:
	rn_pipeline_free(p);
	return RN_EINVALID;
}

int rn_workflow_load(rn_pipeline **out, const char *path, rn_diags *d)
{
	char *data = NULL;
	size_t len = 0;
	*out = NULL;
	int rc = rn_read_file(&data, &len, path, RN_WORKFLOW_MAX_BYTES);
	if (rc < 0) {
		/* the message starts with the path, which the diagnostic prints already */
		const char *why = rn_error_last();
		if (rn_startswith(why, path) && rn_startswith(why + strlen(path), ": "))
			why += strlen(path) + 2;
		rn_diag_error(d, 0, 0, "cannot read the workflow: %s", why);
		return rc;
	}
	rc = rn_workflow_parse(out, path, data, len, d);
	free(data);
	return rc;
}

const rn_job *rn_pipeline_job(const rn_pipeline *p, const char *id)
{
	for (size_t i = 0; i < p->njobs; i++)
		if (strcmp(p->jobs[i].id, id) == 0)
			return &p->jobs[i];
	return NULL;
}

void rn_pipeline_free(rn_pipeline *p)
{
	if (!p)
		return;
	rn_arena_free(&p->arena);
	free(p);
}
