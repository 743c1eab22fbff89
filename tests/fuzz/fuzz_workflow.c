/* fuzz_workflow.c - libFuzzer target for the workflow front end: YAML loading, checking, the
 * model and the graph (matrix expansion, selection, printing) must survive any input.
 * Build: meson setup build-fuzz -Dfuzz=true (clang), or see ci/fuzz. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "diag.h"
#include "graph.h"
#include "workflow.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	rn_diags d = RN_DIAGS_INIT("fuzz.yml");
	rn_pipeline *p = NULL;
	if (rn_workflow_parse(&p, "fuzz.yml", (const char *)data, size, &d) == 0) {
		rn_graph g;
		if (rn_graph_build(&g, p, &d) == 0) {
			const char *ids[] = { p->jobs[0].id };
			rn_graph_select(&g, ids, 1);
			FILE *null = fopen("/dev/null", "w");
			if (null) {
				rn_graph_print(&g, RN_GRAPH_DOT, null);
				fclose(null);
			}
		}
		rn_graph_free(&g);
	}
	FILE *null = fopen("/dev/null", "w");
	if (null) {
		rn_diags_print(&d, null);
		fclose(null);
	}
	rn_diags_free(&d);
	rn_pipeline_free(p);
	return 0;
}
