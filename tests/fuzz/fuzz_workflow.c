/*
 * fuzz_workflow.c: libFuzzer target for the workflow file reader of
 * `xylem run` (src/cli/workflow.c, docs/workflow.md). The input is the
 * file's text. Parsing must never read out of bounds, leak or crash; a
 * workflow that parses must parse again to the same tasks and paths, and
 * every sandbox name in it must be one xy_check_sandbox_name accepts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "workflow.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_names(const struct xy_wf_file *f, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (xy_check_sandbox_name(f[i].as, NULL, 0) < 0)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[1024];
	struct xy_workflow *w, *again;

	w = xy_workflow_parse((const char *)data, size, "fuzz.json",
			      "/fuzz-base", err, sizeof err);
	if (!w)
		return 0;
	for (size_t i = 0; i < w->n_tasks; i++) {
		check_names(w->tasks[i].inputs, w->tasks[i].n_inputs);
		check_names(w->tasks[i].outputs, w->tasks[i].n_outputs);
	}
	again = xy_workflow_parse((const char *)data, size, "fuzz.json",
				  "/fuzz-base", err, sizeof err);
	if (!again || again->n_tasks != w->n_tasks ||
	    again->n_paths != w->n_paths)
		abort();
	for (size_t i = 0; i < w->n_paths; i++)
		if (strcmp(w->paths[i].full, again->paths[i].full) != 0)
			abort();
	xy_workflow_free(again);
	xy_workflow_free(w);
	return 0;
}
