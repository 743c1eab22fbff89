/* context.c - expression contexts and step environments. */
#include "context.h"
#include "buf.h"
#include "error.h"
#include "util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

static const char *g_arch = "unknown";

static void find_arch(void)
{
	struct utsname u;
	if (uname(&u) < 0)
		return;
	if (strcmp(u.machine, "x86_64") == 0)
		g_arch = "X64";
	else if (strcmp(u.machine, "aarch64") == 0)
		g_arch = "ARM64";
	else if (strcmp(u.machine, "i686") == 0 || strcmp(u.machine, "i386") == 0)
		g_arch = "X86";
	else if (strncmp(u.machine, "arm", 3) == 0)
		g_arch = "ARM";
}

/* runner.arch: the machine's, asked once per process (every job's context has it) */
static const char *runner_arch(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	pthread_once(&once, find_arch);
	return g_arch;
}

json_t *rn_context_job(const rn_pipeline *p, const rn_gnode *node, json_t *secrets, json_t *git,
		       json_t *needs, const char *run_id, const char *workspace)
{
	json_t *ctx = json_object();
	json_object_set_new(ctx, "env", json_object());
	json_object_set_new(ctx, "matrix", node && node->matrix ? json_deep_copy(node->matrix) : json_object());
	json_object_set_new(ctx, "secrets", secrets ? json_incref(secrets) : json_object());
	json_object_set_new(ctx, "needs", needs ? json_incref(needs) : json_object());
	json_object_set_new(ctx, "job", json_pack("{s:s}", "status", "success"));
	json_object_set_new(ctx, "runner", json_pack("{s:s, s:s, s:s}", "os", "Linux", "arch", runner_arch(),
						     "workspace", workspace ? workspace : ""));
	json_object_set_new(ctx, "git", git ? json_incref(git) : json_object());
	json_object_set_new(ctx, "pipeline", json_pack("{s:s, s:s}", "id", run_id ? run_id : "", "name", p->name));
	json_object_set_new(ctx, "steps", json_object());
	return ctx;
}

int rn_context_expand(char **out, const char *s, const rn_expr_env *ee)
{
	*out = NULL;
	if (!s)
		return 0;
	if (!rn_template_has(s)) {
		*out = rn_xstrdup(s);
		return 0;
	}
	return rn_template_expand(out, s, ee);
}

static void layer(json_t *env, const rn_kvs *kvs)
{
	for (size_t i = 0; kvs && i < kvs->n; i++)
		json_object_set_new(env, kvs->v[i].key, json_string(kvs->v[i].value));
}

int rn_context_set_env(json_t *ctx, const rn_kvs *pipeline_env, const rn_kvs *job_env, json_t *dynamic,
		       const rn_kvs *step_env, const rn_expr_env *ee)
{
	json_t *raw = json_object();
	layer(raw, pipeline_env);
	layer(raw, job_env);
	if (dynamic)
		json_object_update(raw, dynamic);
	layer(raw, step_env);
	/* expressions see the unexpanded merged env while the values are expanded */
	json_object_set(ctx, "env", raw);
	json_t *done = json_object();
	const char *k;
	json_t *v;
	int rc = 0;
	json_object_foreach(raw, k, v) {
		char *s = NULL;
		if (rn_context_expand(&s, json_string_value(v), ee) < 0) {
			rc = rn_error_set("env %s: %s", k, rn_error_last());
			break;
		}
		json_object_set_new(done, k, json_string(s ? s : ""));
		free(s);
	}
	json_object_set_new(ctx, "env", done);
	json_decref(raw);
	return rc;
}

int rn_context_expand_json(json_t **out, const json_t *v, const rn_expr_env *ee)
{
	*out = NULL;
	if (json_is_string(v)) {
		char *s = NULL;
		if (rn_context_expand(&s, json_string_value(v), ee) < 0)
			return RN_EINVALID;
		*out = json_string(s);
		free(s);
		return 0;
	}
	if (json_is_array(v)) {
		json_t *a = json_array();
		size_t i;
		json_t *it;
		json_array_foreach(v, i, it) {
			json_t *x;
			if (rn_context_expand_json(&x, it, ee) < 0) {
				json_decref(a);
				return RN_EINVALID;
			}
			json_array_append_new(a, x);
		}
		*out = a;
		return 0;
	}
	if (json_is_object(v)) {
		json_t *o = json_object();
		const char *k;
		json_t *it;
		json_object_foreach((json_t *)v, k, it) {
			json_t *x;
			if (rn_context_expand_json(&x, it, ee) < 0) {
				json_decref(o);
				return RN_EINVALID;
			}
			json_object_set_new(o, k, x);
		}
		*out = o;
		return 0;
	}
	*out = json_incref((json_t *)v);
	return 0;
}

typedef struct strv {
	char **v;
	size_t n, cap;
	size_t *index;  /* open addressing by NAME: 1 + position in v, 0 empty */
	size_t nindex;  /* a power of two, at least twice n */
} strv;

/* The index slot of the name of kv (nl bytes): the one holding it, else the empty one. */
static size_t *strv_slot(const strv *s, const char *kv, size_t nl)
{
	size_t mask = s->nindex - 1;
	for (size_t i = rn_hash(kv, nl) & mask;; i = (i + 1) & mask) {
		const char *e = s->index[i] ? s->v[s->index[i] - 1] : NULL;
		if (!e || (strncmp(e, kv, nl) == 0 && e[nl] == '='))
			return &s->index[i];
	}
}

/* Set NAME=value, replacing an earlier NAME. */
static void strv_set(strv *s, const char *kv)
{
	size_t nl = strcspn(kv, "=");
	if (2 * (s->n + 1) > s->nindex) {
		free(s->index);
		s->nindex = s->nindex ? 2 * s->nindex : 128;
		s->index = rn_xcalloc(s->nindex, sizeof(*s->index));
		for (size_t i = 0; i < s->n; i++)
			*strv_slot(s, s->v[i], strcspn(s->v[i], "=")) = i + 1;
	}
	size_t *slot = strv_slot(s, kv, nl);
	if (*slot && s->v) { /* a slot in use points into v */
		free(s->v[*slot - 1]);
		s->v[*slot - 1] = rn_xstrdup(kv);
		return;
	}
	rn_grow(&s->v, &s->cap, s->n + 2, sizeof(*s->v));
	s->v[s->n++] = rn_xstrdup(kv);
	s->v[s->n] = NULL;
	*slot = s->n;
}

static const char *strv_get(const strv *s, const char *name)
{
	if (!s->nindex)
		return NULL;
	size_t nl = strlen(name);
	size_t *slot = strv_slot(s, name, nl);
	return *slot && s->v ? s->v[*slot - 1] + nl + 1 : NULL;
}

char **rn_context_environ(char *const *base, json_t *env, const char *const *extra, size_t nextra,
			  json_t *path_prepend)
{
	strv s = { NULL, 0, 0, NULL, 0 };
	for (size_t i = 0; base && base[i]; i++) {
		if (rn_startswith(base[i], "RUNNER_SECRET_") || !strchr(base[i], '='))
			continue;
		strv_set(&s, base[i]);
	}
	const char *k;
	json_t *v;
	json_object_foreach(env, k, v) {
		char *kv = rn_xasprintf("%s=%s", k, json_string_value(v) ? json_string_value(v) : "");
		strv_set(&s, kv);
		free(kv);
	}
	for (size_t i = 0; i < nextra; i++)
		strv_set(&s, extra[i]);
	if (path_prepend && json_array_size(path_prepend)) {
		rn_buf b = RN_BUF_INIT(1024 * 1024);
		rn_buf_puts(&b, "PATH=");
		size_t i;
		json_t *it;
		json_array_foreach(path_prepend, i, it) {
			rn_buf_puts(&b, json_string_value(it));
			rn_buf_putc(&b, ':');
		}
		const char *old = strv_get(&s, "PATH");
		rn_buf_puts(&b, old ? old : "/usr/local/bin:/usr/bin:/bin");
		strv_set(&s, rn_buf_cstr(&b));
		rn_buf_free(&b);
	}
	if (!s.v) {
		s.v = rn_xcalloc(1, sizeof(*s.v));
	}
	free(s.index);
	return s.v;
}

void rn_strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

int rn_context_job_decide(int *run, const char **reason, const rn_pipeline *p, const rn_gnode *n, json_t *needs,
			  int any_bad, json_t *secrets, json_t *git, const char *run_id, const char *workspace)
{
	*run = !any_bad;
	*reason = any_bad ? "a needed job did not succeed" : NULL;
	if (!n->job->if_cond)
		return 0; /* success(): every need succeeded; only a condition needs the contexts */
	json_t *ctx = rn_context_job(p, n, secrets, git, needs, run_id, workspace);
	rn_expr_env ee = { .ctx = ctx, .failed = any_bad, .cancelled = 0, .workspace = workspace };
	int rc = 0;
	/* a job's `if` sees the pipeline's env (the job's own env belongs to its steps) */
	if (rn_context_set_env(ctx, &p->env, NULL, NULL, NULL, &ee) < 0)
		rc = RN_EINVALID;
	if (rc == 0 && rn_expr_condition(run, n->job->if_cond, &ee) < 0) {
		*run = 0;
		rc = RN_EINVALID;
	}
	json_decref(ctx);
	if (rc < 0)
		*run = 0;
	if (!*run)
		*reason = any_bad && rc == 0 ? "a needed job did not succeed" : "condition is false";
	return rc;
}

rn_status rn_status_parse(const char *s)
{
	for (int st = RN_ST_PENDING; s && st <= RN_ST_TIMED_OUT; st++)
		if (strcmp(s, rn_status_name((rn_status)st)) == 0)
			return (rn_status)st;
	return RN_ST_PENDING;
}

static rn_status worse(rn_status a, rn_status b)
{
	static const int rank[] = { [RN_ST_SUCCESS] = 0, [RN_ST_SKIPPED] = 1, [RN_ST_CANCELLED] = 2,
				    [RN_ST_FAILURE] = 3, [RN_ST_TIMED_OUT] = 4, [RN_ST_PENDING] = 0,
				    [RN_ST_RUNNING] = 0 };
	return rank[b] > rank[a] ? b : a;
}

void rn_context_needs_record(json_t *needs, const char *job_id, rn_status result, json_t *outputs)
{
	json_t *prev = json_object_get(needs, job_id);
	if (!prev) {
		json_object_set_new(needs, job_id,
				    json_pack("{s:s, s:o}", "result", rn_status_name(result),
					      "outputs", outputs ? json_deep_copy(outputs) : json_object()));
		return;
	}
	rn_status old = rn_status_parse(json_string_value(json_object_get(prev, "result")));
	if (old == RN_ST_PENDING)
		old = RN_ST_SUCCESS;
	json_t *o = json_object_get(prev, "outputs");
	if (!json_is_object(o)) {
		o = json_object();
		json_object_set_new(prev, "outputs", o);
	}
	if (outputs)
		json_object_update(o, outputs);
	json_object_set_new(prev, "result", json_string(rn_status_name(worse(old, result))));
}
