/* test_workflow.c - the workflow front end: every key of the format into the model. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "error.h"
#include "workflow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char full[] =
	"name: ci\n"
	"on:\n"
	"  push:\n"
	"    branches: [main, \"release/**\"]\n"
	"    tags: [\"v*\"]\n"
	"    paths: [\"src/**\"]\n"
	"env: {CC: cc}\n"
	"defaults:\n"
	"  shell: sh\n"
	"  timeout: 30m\n"
	"  working-directory: sub\n"
	"  sandbox: {network: false}\n"
	"notify:\n"
	"  - url: http://host/hook\n"
	"    events: [pipeline, job]\n"
	"    on: [failure]\n"
	"    headers: {X-Token: abc}\n"
	"    format: gitea-status\n"
	"jobs:\n"
	"  lint:\n"
	"    steps:\n"
	"      - run: echo lint\n"
	"  build:\n"
	"    name: Build\n"
	"    needs: [lint]\n"
	"    if: success()\n"
	"    runs-on: [linux, x86_64]\n"
	"    env: {A: b}\n"
	"    matrix:\n"
	"      cc: [gcc, clang]\n"
	"      exclude: [{cc: clang}]\n"
	"      include: [{cc: tcc, experimental: true}]\n"
	"    fail-fast: false\n"
	"    max-parallel: 4\n"
	"    timeout: 1h\n"
	"    retry: 1\n"
	"    continue-on-error: true\n"
	"    outputs: {version: \"${{ steps.ver.outputs.version }}\"}\n"
	"    sandbox: {memory: 2G, pids: 512, read-only-root: true, cpu: 60, files: 1024, file-size: 1G}\n"
	"    steps:\n"
	"      - id: ver\n"
	"        name: Configure\n"
	"        run: |\n"
	"          meson setup build\n"
	"        shell: bash\n"
	"        env: {S: t}\n"
	"        working-directory: other\n"
	"        timeout: 5m\n"
	"        grace: 10s\n"
	"        retry: {attempts: 3, delay: 1s, backoff: 2}\n"
	"        continue-on-error: false\n"
	"        if: always()\n"
	"      - build: {tool: auto, dir: build, target: all, args: [], jobs: 0}\n"
	"      - package: {name: dist, paths: [\"build/app\", \"docs/**\"], exclude: [\"**/*.o\"], format: tar.gz}\n"
	"      - checkout: {repo: \"https://host/x.git\", ref: main, path: vendor/x, depth: 1, submodules: true}\n"
	"      - upload: {artifact: dist}\n"
	"      - upload: {path: out.bin, url: \"https://host/put\", method: PUT, headers: {Authorization: \"Bearer ${{ secrets.T }}\"}}\n"
	"      - download: {artifact: dist, path: in/}\n"
	"        retry: 2\n";

static rn_pipeline *parse_ok(const char *text)
{
	rn_diags d = RN_DIAGS_INIT("t.yml");
	rn_pipeline *p = NULL;
	int rc = rn_workflow_parse(&p, "dir/t.yml", text, strlen(text), &d);
	if (rc != 0) {
		rn_diags_print(&d, stderr);
		fail_msg("parse failed");
	}
	rn_diags_free(&d);
	return p;
}

static void every_key(void **state)
{
	(void)state;
	rn_pipeline *p = parse_ok(full);
	assert_string_equal(p->name, "ci");
	assert_true(p->push.present);
	assert_int_equal(p->push.branches.n, 2);
	assert_string_equal(p->push.branches.v[1], "release/**");
	assert_int_equal(p->push.tags.n, 1);
	assert_int_equal(p->push.paths.n, 1);
	assert_int_equal(p->env.n, 1);
	assert_string_equal(p->default_shell, "sh");
	assert_int_equal(p->default_timeout_ms, 30 * 60 * 1000);
	assert_string_equal(p->default_workdir, "sub");
	assert_int_equal(p->default_sandbox.network, 0);
	assert_int_equal(p->nnotify, 1);
	assert_string_equal(p->notify[0].format, "gitea-status");
	assert_int_equal(p->notify[0].headers.n, 1);
	assert_int_equal(p->njobs, 2);

	const rn_job *lint = rn_pipeline_job(p, "lint");
	assert_string_equal(lint->steps[0].shell, "sh");      /* from defaults */
	assert_string_equal(lint->steps[0].workdir, "sub");   /* from defaults */
	assert_int_equal(lint->steps[0].timeout_ms, 1800000); /* from defaults */
	assert_int_equal(lint->steps[0].grace_ms, 10000);
	assert_int_equal(lint->steps[0].max_attempts, 1);
	assert_int_equal(lint->steps[0].sandbox.network, 0); /* inherited */
	assert_string_equal(lint->steps[0].name, "echo lint");
	assert_int_equal(lint->fail_fast, 1);

	const rn_job *b = rn_pipeline_job(p, "build");
	assert_string_equal(b->name, "Build");
	assert_int_equal(b->needs.n, 1);
	assert_int_equal(b->needs_index[0], 0);
	assert_string_equal(b->if_cond, "success()");
	assert_int_equal(b->runs_on.n, 2);
	assert_true(b->matrix.present);
	assert_int_equal(b->matrix.naxes, 1);
	assert_non_null(b->matrix.exclude);
	assert_non_null(b->matrix.include);
	assert_int_equal(b->fail_fast, 0);
	assert_int_equal(b->max_parallel, 4);
	assert_int_equal(b->timeout_ms, 3600000);
	assert_int_equal(b->retry, 1);
	assert_int_equal(b->continue_on_error, 1);
	assert_int_equal(b->outputs.n, 1);
	assert_int_equal(b->sandbox.memory, 2LL << 30);
	assert_int_equal(b->sandbox.pids, 512);
	assert_int_equal(b->sandbox.read_only_root, 1);
	assert_int_equal(b->sandbox.cpu_s, 60);
	assert_int_equal(b->sandbox.files, 1024);
	assert_int_equal(b->sandbox.file_size, 1LL << 30);
	assert_int_equal(b->sandbox.network, 0); /* from defaults, not overridden */
	assert_int_equal(b->nsteps, 7);

	const rn_step *s = &b->steps[0];
	assert_string_equal(s->id, "ver");
	assert_string_equal(s->name, "Configure");
	assert_string_equal(s->kind, "run");
	assert_string_equal(s->run, "meson setup build\n");
	assert_string_equal(s->shell, "bash");
	assert_int_equal(s->env.n, 1);
	assert_string_equal(s->workdir, "other");
	assert_int_equal(s->timeout_ms, 300000);
	assert_int_equal(s->grace_ms, 10000);
	assert_int_equal(s->max_attempts, 3);
	assert_int_equal(s->retry_delay_ms, 1000);
	assert_true(s->retry_backoff == 2.0);
	assert_string_equal(s->if_cond, "always()");
	assert_string_equal(b->steps[1].kind, "build");
	assert_string_equal(b->steps[2].kind, "package");
	assert_string_equal(b->steps[3].kind, "checkout");
	assert_string_equal(b->steps[4].kind, "upload");
	assert_string_equal(b->steps[5].kind, "upload");
	assert_string_equal(b->steps[6].kind, "download");
	assert_int_equal(b->steps[6].max_attempts, 3); /* retry: 2 = two retries */
	assert_int_equal(b->steps[2].with->kind, RN_NODE_MAP);
	rn_pipeline_free(p);
}

static void default_name_and_anchors(void **state)
{
	(void)state;
	rn_pipeline *p = parse_ok("x-common: &common\n  timeout: 5s\n  env: {K: v}\n"
				  "jobs:\n  a:\n    steps:\n      - <<: *common\n        run: echo\n");
	assert_string_equal(p->name, "t");
	assert_int_equal(p->jobs[0].steps[0].timeout_ms, 5000);
	rn_pipeline_free(p);
}

static void all_problems_in_one_pass(void **state)
{
	const char *text = "jobs:\n  a:\n    colour: blue\n    steps:\n      - run: echo\n        timeout: forever\n"
			   "  b:\n    needs: [a, zzz]\n    steps:\n      - nothing: here\n";
	rn_diags d = RN_DIAGS_INIT("t.yml");
	rn_pipeline *p = NULL;
	(void)state;
	assert_int_equal(rn_workflow_parse(&p, "t.yml", text, strlen(text), &d), RN_EINVALID);
	assert_null(p);
	assert_int_equal(d.errors, 4);
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	rn_diags_print(&d, f);
	fclose(f);
	assert_non_null(strstr(out, "t.yml:3:5: error: unknown key 'colour' in job 'a'\n"));
	assert_non_null(strstr(out, "t.yml:6:18: error: bad duration for 'timeout'"));
	assert_non_null(strstr(out, "t.yml:8:16: error: job 'b' needs unknown job 'zzz'\n"));
	assert_non_null(strstr(out, "t.yml:10:9: error: unknown key 'nothing' in step 1 of job 'b'"));
	free(out);
	rn_diags_free(&d);
}

static void valid_ids(void **state)
{
	(void)state;
	assert_true(rn_workflow_valid_id("build"));
	assert_true(rn_workflow_valid_id("_x-1"));
	assert_false(rn_workflow_valid_id("1x"));
	assert_false(rn_workflow_valid_id("-x"));
	assert_false(rn_workflow_valid_id("a b"));
	assert_false(rn_workflow_valid_id(""));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(every_key),
		cmocka_unit_test(default_name_and_anchors),
		cmocka_unit_test(all_problems_in_one_pass),
		cmocka_unit_test(valid_ids),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
