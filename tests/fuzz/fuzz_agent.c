/* fuzz_agent.c - libFuzzer target for the agent's handling of what it is given: the first byte
 * picks the input kind, the rest is the input:
 *   0  the agent's YAML config file (rn_agent_conf_parse);
 *   1  a JOBSPEC as `runner __job` reads it from job.json (rn_jobspec_parse, then its workflow,
 *      graph and the selection of spec.name: everything before the checkout and the engine);
 *   2  a server answer body as every agent call takes it (rn_api_answer_parse): a poll's
 *      ASSIGNMENT (rn_ajob_assignment, then its JOBSPEC), a heartbeat's cancel and ttl, a log
 *      append's offset for a few (offset, sent, size) states (rn_ajob_log_next), an error code.
 * No I/O, no threads: fast to start, nothing left behind.
 * Build: meson setup build-fuzz -Dfuzz=true (clang), or see ci/fuzz. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "agent_api.h"
#include "agent_conf.h"
#include "agent_job.h"
#include "agent_sup.h"
#include "diag.h"
#include "graph.h"
#include "mask.h"
#include "workflow.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void jobspec(const char *text, size_t len)
{
	rn_jobspec js;
	if (rn_jobspec_parse(&js, text, len) == 0) {
		rn_diags d = RN_DIAGS_INIT(NULL);
		rn_pipeline *p = NULL;
		rn_graph g = { NULL, 0 };
		const rn_job *job = NULL;
		/* no "workflow" text: the file would be read from a workspace that does not exist */
		if (rn_jobspec_workflow(&js, "/nonexistent-fuzz-workspace", &p, &g, &d, &job) == 0 && !job)
			abort();
		size_t n = 0;
		char *m = rn_mask_buf(js.masker, text, len, &n);
		free(m);
		rn_graph_free(&g);
		rn_pipeline_free(p);
		rn_diags_free(&d);
	}
	rn_jobspec_free(&js);
}

static void answer(const char *text, size_t len)
{
	json_t *a = rn_api_answer_parse(text, len);
	if (!a)
		return;
	const char *lease = NULL;
	json_t *spec = NULL;
	long ttl = 0;
	if (rn_ajob_assignment(a, &lease, &spec, &ttl) == 0) {
		if (!rn_ajob_lease_ok(lease) || ttl < 1000)
			abort();
		char *t = json_dumps(spec, JSON_COMPACT);
		if (t)
			jobspec(t, strlen(t));
		free(t);
	}
	(void)json_is_true(json_object_get(a, "cancel"));
	(void)rn_api_code(a);
	static const uint64_t states[][3] = { { 0, 10, 10 }, { 5, 10, 100 }, { 100, 1, 50 }, { UINT64_MAX - 1, 1, 5 } };
	for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
		for (long st = 200; st <= 409; st += 209) {
			uint64_t next = rn_ajob_log_next(st == 200, st, a, states[i][0], (size_t)states[i][1], states[i][2]);
			/* never past what the agent has on disk */
			if (next != UINT64_MAX && next > states[i][2])
				abort();
		}
	json_decref(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	const char *text = (const char *)data + 1;
	size_t len = size - 1;
	switch (data[0] % 3) {
	case 0: {
		rn_agent_conf c;
		rn_agent_conf_init(&c);
		rn_diags d = RN_DIAGS_INIT("agent.yml");
		rn_agent_conf_parse(&c, text, len, &d);
		FILE *null = fopen("/dev/null", "w");
		if (null) {
			rn_diags_print(&d, null);
			fclose(null);
		}
		rn_diags_free(&d);
		rn_agent_conf_free(&c);
		break;
	}
	case 1:
		jobspec(text, len);
		break;
	default:
		answer(text, len);
		break;
	}
	return 0;
}
