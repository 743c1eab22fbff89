/* fuzz_expr.c - libFuzzer target for the expression language (runner/expr.c): the input is used
 * as a template, as a bare expression and as an `if:` condition, each parsed and evaluated
 * against a small fixed context (and a tiny workspace for hashFiles()). Must never crash or
 * leak; errors are fine. */
#include "error.h"
#include "expr.h"
#include "util.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static json_t *ctx;
static rn_expr_env env;
static char workspace[] = "/tmp/fuzz_expr.XXXXXX";

static const char ctx_json[] =
	"{\"env\": {\"NAME\": \"world\", \"EMPTY\": \"\", \"NUM\": \"42\"},"
	" \"matrix\": {\"os\": \"linux\", \"node\": 18, \"list\": [1, 2.5, \"3\", null, true]},"
	" \"steps\": {\"build\": {\"outcome\": \"success\", \"outputs\": {\"x\": \"1\"}},"
	"            \"my-step\": {\"outcome\": \"failure\", \"outputs\": {\"x\": \"{0}\"}}},"
	" \"github\": {\"ref\": \"refs/heads/main\", \"event\": {\"labels\": [{\"name\": \"bug\"}]}},"
	" \"nested\": [[1, [2, {\"a\": [3]}]], {\"b\": {\"c\": [4, 5]}}, \"s\", 1e300]}";

static void write_file(const char *rel, const char *text)
{
	char *path = rn_xasprintf("%s/%s", workspace, rel);
	FILE *f = fopen(path, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
	free(path);
}

static void cleanup(void)
{
	rn_rm_rf(workspace);
	json_decref(ctx);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	ctx = json_loads(ctx_json, 0, NULL);
	if (!ctx)
		abort();
	if (!mkdtemp(workspace))
		abort();
	char *sub = rn_xasprintf("%s/src", workspace);
	rn_mkdir_p(sub, 0755);
	free(sub);
	write_file("a.txt", "hello");
	write_file("src/b.c", "int x;");
	atexit(cleanup);
	env = (rn_expr_env){ ctx, 0, 0, workspace };
	return 0;
}

static void eval_and_print(const rn_expr *e, const rn_expr_env *ev)
{
	json_t *v = rn_expr_eval(e, ev);
	if (!v)
		return;
	(void)rn_expr_truthy(v);
	char *s = rn_expr_to_string(v);
	free(s);
	json_decref(v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!ctx)
		LLVMFuzzerInitialize(NULL, NULL);
	if (size > 4096)
		return 0; /* long inputs only slow the search down */
	/* the first byte picks the status flags */
	rn_expr_env ev = env;
	if (size) {
		ev.failed = data[0] & 1;
		ev.cancelled = (data[0] >> 1) & 1;
	}
	char *s = rn_xstrndup((const char *)data, size); /* NUL-terminated, may be shorter */

	/* as a template */
	size_t off = 0;
	if (rn_template_check(s, &off) != 0 && off > strlen(s))
		abort();
	(void)rn_template_has(s);
	char *out = NULL;
	if (rn_template_expand(&out, s, &ev) == 0) {
		if (!out)
			abort();
		free(out);
	} else if (out) {
		abort();
	}

	/* as a bare expression (all bytes, embedded NULs included) */
	rn_expr *e = NULL;
	off = 0;
	if (rn_expr_parse(&e, (const char *)data, size, &off) == 0) {
		eval_and_print(e, &ev);
		rn_expr_free(e);
	} else if (e || off > size) {
		abort();
	}

	/* as a condition */
	int res = -1;
	if (rn_expr_condition(&res, s, &ev) == 0 && res != 0 && res != 1)
		abort();
	off = 0;
	if (rn_expr_condition_check(s, &off) != 0 && off > strlen(s))
		abort();
	(void)rn_expr_condition_has_status(s);

	free(s);
	rn_error_clear();
	return 0;
}
