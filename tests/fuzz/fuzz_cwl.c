/*
 * fuzz_cwl.c: libFuzzer target for the CWL runner's readers (src/cwl/,
 * docs/cwl.md). The first byte picks what the rest is:
 *
 *   0: a document, YAML or JSON, read by cwl_yaml_load (the YAML
 *      reader, positions, anchors and aliases, $import and $include);
 *   1: a tool document, loaded as `xylem cwl` loads one (cwl_load_tool:
 *      $graph, fragments, types normalised, requirements checked);
 *   2: a job file, YAML or JSON, loaded against a fixed tool whose
 *      inputs take every type (cwl_load_job: defaults, type checks,
 *      File and Directory objects completed, literals written under a
 *      scratch directory);
 *   3: a string with parameter references, evaluated by the expression
 *      engine's own parser (no JavaScript: the tool has no
 *      InlineJavascriptRequirement) against fixed inputs, self and
 *      runtime.
 *
 * The documents are written to files (the readers take paths) in a
 * directory of the target's own. Reading must never read out of
 * bounds, leak or crash.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cwl.h"
#include "log.h"
#include "util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64], doc[128], scratch[128];
static json_t *tool, *inputs, *runtime;
static struct cwl_expr *expr;

static const char tool_text[] =
	"cwlVersion: v1.2\n"
	"class: CommandLineTool\n"
	"baseCommand: cat\n"
	"inputs:\n"
	"  f: {type: File, secondaryFiles: ['.idx', {pattern: '^.bai', "
	"required: false}]}\n"
	"  of: File?\n"
	"  d: Directory?\n"
	"  s: {type: string, default: hello}\n"
	"  i: int?\n"
	"  l: long?\n"
	"  x: double?\n"
	"  b: boolean?\n"
	"  a: {type: 'string[]', default: [a, b]}\n"
	"  fa: File[]?\n"
	"  e: {type: ['null', {type: enum, symbols: [one, two]}]}\n"
	"  r:\n"
	"    type:\n"
	"      - 'null'\n"
	"      - type: record\n"
	"        fields: {n: int, m: 'string?', g: 'File?'}\n"
	"  any: Any?\n"
	"outputs: []\n";

static void write_doc(const uint8_t *data, size_t size)
{
	FILE *f = fopen(doc, "wb");

	if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f))
		abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[1024];
	int status;

	(void)argc;
	(void)argv;
	xy_log_set_level(-1);
	snprintf(dir, sizeof dir, "/tmp/xylem-fuzz-cwl-XXXXXX");
	if (!mkdtemp(dir))
		abort();
	snprintf(doc, sizeof doc, "%s/doc", dir);
	snprintf(scratch, sizeof scratch, "%s/scratch", dir);
	write_doc((const uint8_t *)tool_text, sizeof tool_text - 1);
	tool = cwl_load_tool(doc, &status, err, sizeof err);
	if (!tool) {
		fprintf(stderr, "fuzz_cwl: the fixed tool: %s\n", err);
		abort();
	}
	expr = cwl_expr_new(tool, err, sizeof err);
	inputs = json_pack("{s:s, s:i, s:[s, s, {s:[i, f, b, n]}], "
			   "s:{s:s, s:s, s:i, s:{s:s}}, s:n}",
			   "s", "text", "i", 42, "a", "x", "y", "deep", 1, 2.5,
			   1, "f", "class", "File", "path", "/tmp/x.txt",
			   "size", 7, "nested", "k", "v", "nil");
	runtime = json_pack("{s:s, s:s, s:i, s:i}", "outdir", "/out",
			    "tmpdir", "/tmp", "cores", 2, "ram", 1024);
	if (!expr || !inputs || !runtime)
		abort();
	return 0;
}

static void scratch_clean(void)
{
	xy_rm_rf(scratch);
	if (mkdir(scratch, 0700) < 0 && errno != EEXIST)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[1024];
	json_t *v = NULL;
	int status;

	if (size < 1)
		return 0;
	switch (data[0] & 3) {
	case 0:
		write_doc(data + 1, size - 1);
		v = cwl_yaml_load(doc, err, sizeof err);
		break;
	case 1:
		write_doc(data + 1, size - 1);
		v = cwl_load_tool(doc, &status, err, sizeof err);
		break;
	case 2:
		write_doc(data + 1, size - 1);
		scratch_clean();
		v = cwl_load_job(tool, doc, NULL, scratch, err, sizeof err);
		break;
	default: {
		char *text = malloc(size);

		if (!text)
			return 0;
		memcpy(text, data + 1, size - 1);
		text[size - 1] = '\0';
		v = cwl_expr_eval(expr, text, inputs, inputs, runtime, err,
				  sizeof err);
		free(text);
		break;
	}
	}
	json_decref(v);
	return 0;
}
