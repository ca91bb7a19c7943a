/*
 * test_cwl_workflow.c: unit tests for workflows in the CWL runner
 * (src/cwl/wfload.c, workflow.c, scatter.c, exprtool.c): the canonical
 * Workflow (sources normalized, steps' run loaded, version checks), and
 * the engine run with a fake submit that answers each CommandLineTool
 * step from the test, so that links, linkMerge, pickValue, default,
 * valueFrom, when, the three scatter methods, subworkflows and
 * ExpressionTools are checked without a manager.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cwl.h"
#include "harness.h"

static char err[4096];

static const char *put(const char *rel, const char *text)
{
	char *p = xy_test_path(rel);
	FILE *f = fopen(p, "w");

	XY_CHECK(f != NULL);
	fputs(text, f);
	fclose(f);
	return p;
}

static json_t *load(const char *rel, const char *text, int *st)
{
	json_t *t = cwl_load_tool(put(rel, text), st, err, sizeof err);

	if (!t)
		fprintf(stderr, "load: %s\n", err);
	return t;
}

/* An echo tool: its one output `out` is its input `x` (the fake submit
 * answers it at once with that value, or x+1 for tool `inc`). */
static const char echo_tool[] =
	"cwlVersion: v1.2\nclass: CommandLineTool\nbaseCommand: echo\n"
	"inputs:\n  x: Any\noutputs:\n  out: Any\n";

struct fake {
	json_t *pending; /* [[handle, outputs]] */
	uint64_t next;
	int submitted;
	int max_running;
};

static uint64_t fake_submit(void *arg, const json_t *tool, const json_t *job,
			    char *e, size_t elen)
{
	struct fake *f = arg;
	const json_t *x = json_object_get(job, "x");
	json_t *out;

	(void)e;
	(void)elen;
	if (strstr(json_string_value(json_object_get(tool, "id")), "inc")) {
		out = json_pack("{s:I}", "out", json_integer_value(x) + 1);
	} else if (strstr(json_string_value(json_object_get(tool, "id")),
			  "upd")) {
		/* A tool that updates its File x in place: its output is
		 * the new file, marked as cwl-exec marks it. */
		json_t *nf = json_deep_copy(x);

		json_object_set_new(nf, "path", json_string("/new/f.txt"));
		json_object_set_new(nf, "size", json_integer(99));
		json_object_set(nf, "xylem:updates",
				json_object_get(x, "path"));
		out = json_pack("{s:o}", "out", nf);
	}
	else {
		out = json_pack("{s:O}", "out", x ? x : json_null());
	}
	json_array_append_new(f->pending, json_pack("[I,o]",
						    (json_int_t)++f->next, out));
	f->submitted++;
	if ((int)json_array_size(f->pending) > f->max_running)
		f->max_running = (int)json_array_size(f->pending);
	return f->next;
}

/* Runs wf on job (YAML text) to the end; NULL if it failed (status in
 * *st). Every task submitted is answered after each advance, all of
 * them, so that tasks that are ready together are seen together. */
static json_t *run(const char *wf_text, const char *job_text, int *st,
		   struct fake *f)
{
	json_t *wf = load("wf.cwl", wf_text, st), *job, *out = NULL;
	struct cwl_wf_ops ops = {fake_submit, f, xy_test_tmpdir(), NULL};
	struct cwl_wf *w;
	int rc;

	XY_CHECK(wf != NULL);
	put("job.yml", job_text);
	job = cwl_load_job(wf, xy_test_path("job.yml"), NULL,
			   xy_test_tmpdir(), err, sizeof err);
	if (!job)
		fprintf(stderr, "job: %s\n", err);
	XY_CHECK(job != NULL);
	f->pending = json_array();
	w = cwl_wf_new(wf, job, &ops);
	for (;;) {
		rc = cwl_wf_advance(w, st, err, sizeof err);
		if (rc != 0)
			break;
		XY_CHECK(json_array_size(f->pending) > 0);
		json_t *p = f->pending;
		size_t i;
		json_t *x;

		f->pending = json_array();
		json_array_foreach(p, i, x)
			XY_CHECK_EQ(cwl_wf_task_done(w, (uint64_t)
				json_integer_value(json_array_get(x, 0)),
				json_incref(json_array_get(x, 1)), CWL_OK), 0);
		json_decref(p);
	}
	if (rc == 1)
		out = json_deep_copy(cwl_wf_outputs(w));
	cwl_wf_free(w);
	json_decref(f->pending);
	json_decref(job);
	json_decref(wf);
	return out;
}

static void expect(const json_t *got, const char *want_json)
{
	json_t *want = json_loads(want_json, 0, NULL);

	XY_CHECK(want != NULL);
	if (!got || !json_equal(got, want)) {
		char *s = got ? json_dumps(got, JSON_COMPACT) : NULL;

		fprintf(stderr, "got %s, wanted %s\n", s ? s : "(failed)",
			want_json);
		free(s);
		exit(1);
	}
	json_decref(want);
}

static void t_canonical_workflow(void)
{
	int st;
	json_t *t;

	put("echo.cwl", echo_tool);
	t = load("w.cwl",
		 "cwlVersion: v1.2\nclass: Workflow\n"
		 "inputs:\n  a: int\n"
		 "outputs:\n  o: {type: Any, outputSource: '#s2/out'}\n"
		 "steps:\n"
		 "  s1: {run: echo.cwl, in: {x: a}, out: [out]}\n"
		 "  - dummy\n", &st);
	XY_CHECK(t == NULL); /* a YAML error */
	t = load("w.cwl",
		 "cwlVersion: v1.2\nclass: Workflow\n"
		 "inputs:\n  a: int\n"
		 "outputs:\n  o: {type: Any, outputSource: '#s2/out'}\n"
		 "steps:\n"
		 "  s1: {run: echo.cwl, in: {x: a}, out: [out]}\n"
		 "  s2:\n    run: echo.cwl\n    in:\n"
		 "      x: {source: [s1/out, '#a'], linkMerge: merge_flattened}\n"
		 "    out: [{id: out}]\n", &st);
	XY_CHECK(t != NULL);
	XY_CHECK_EQ(st, CWL_OK);
	expect(json_object_get(json_array_get(json_object_get(t, "outputs"),
					      0), "outputSource"),
	       "[\"s2/out\"]");
	const json_t *s2 = json_array_get(json_object_get(t, "steps"), 1);
	expect(json_object_get(json_array_get(json_object_get(s2, "in"), 0),
			       "source"), "[\"s1/out\", \"a\"]");
	expect(json_object_get(s2, "out"), "[\"out\"]");
	XY_CHECK(!strcmp(json_string_value(json_object_get(json_object_get(
		s2, "run"), "class")), "CommandLineTool"));
	json_decref(t);

	/* A source that names nothing, and `when` before v1.2. */
	t = load("w.cwl", "cwlVersion: v1.2\nclass: Workflow\ninputs: {}\n"
		 "outputs: {}\nsteps:\n  s1: {run: echo.cwl, in: {x: nope},"
		 " out: [out]}\n", &st);
	XY_CHECK(t == NULL && strstr(err, "source 'nope'"));
	t = load("w.cwl", "cwlVersion: v1.1\nclass: Workflow\ninputs: {}\n"
		 "outputs: {}\nsteps:\n  s1: {run: echo.cwl, in: {}, when: "
		 "$(true), out: [out]}\n", &st);
	XY_CHECK(t == NULL && strstr(err, "'when' needs cwlVersion v1.2"));
	/* A misspelt field of a step, or of a step input, at its line. */
	t = load("w.cwl", "cwlVersion: v1.2\nclass: Workflow\ninputs: {}\n"
		 "outputs: {}\nsteps:\n  s1:\n    run: echo.cwl\n    in: {}\n"
		 "    out: []\n    scater: x\n", &st);
	XY_CHECK(t == NULL && strstr(err, "w.cwl:7: unknown field 'scater' "
				     "of a workflow step (did you mean "
				     "'scatter'?)"));
	t = load("w.cwl", "cwlVersion: v1.2\nclass: Workflow\ninputs: {}\n"
		 "outputs: {}\nsteps:\n  s1:\n    run: echo.cwl\n    in:\n"
		 "      x: {defualt: 1}\n    out: []\n", &st);
	XY_CHECK(t == NULL && strstr(err, "w.cwl:9: unknown field 'defualt'"));
	/* A document whose step runs itself does not loop for ever. */
	t = load("self.cwl", "cwlVersion: v1.2\nclass: Workflow\ninputs: {}\n"
		 "outputs: {}\nsteps:\n  s1: {run: self.cwl, in: {}, out: []}\n",
		 &st);
	XY_CHECK(t == NULL && strstr(err, "32 documents deep"));
	xy_test_check_no_leaks();
}

static void t_links(void)
{
	struct fake f = {0};
	int st;
	json_t *o;

	put("echo.cwl", echo_tool);
	o = run("cwlVersion: v1.2\nclass: Workflow\n"
		"requirements: {MultipleInputFeatureRequirement: {}}\n"
		"inputs:\n  a: int\n  b: 'int[]'\n  n: 'int?'\n"
		"outputs:\n"
		"  nested: {type: Any, outputSource: [a, b]}\n"
		"  flat: {type: Any, outputSource: [a, b],"
		" linkMerge: merge_flattened}\n"
		"  first: {type: Any, outputSource: [n, a],"
		" pickValue: first_non_null}\n"
		"  all: {type: Any, outputSource: [n, s1/out, n],"
		" pickValue: all_non_null}\n"
		"  single: {type: Any, outputSource: [s2/out]}\n"
		"steps:\n"
		"  s1: {run: echo.cwl, in: {x: a}, out: [out]}\n"
		"  s2:\n    run: echo.cwl\n    in:\n"
		"      x: {source: n, default: 42}\n    out: [out]\n",
		"a: 1\nb: [2, 3]\n", &st, &f);
	expect(o, "{\"nested\": [1, [2, 3]], \"flat\": [1, 2, 3],"
		  " \"first\": 1, \"all\": [1], \"single\": 42}");
	json_decref(o);
	/* the_only_non_null with two non-null sources fails the run. */
	o = run("cwlVersion: v1.2\nclass: Workflow\ninputs:\n  a: int\n"
		"outputs:\n  o: {type: Any, outputSource: [a, a],"
		" pickValue: the_only_non_null}\nsteps: []\n", "a: 1\n", &st, &f);
	XY_CHECK(o == NULL && strstr(err, "more than one source"));
	xy_test_check_no_leaks();
}

static void t_value_from_and_when(void)
{
	struct fake f = {0};
	int st;
	json_t *o;

	put("echo.cwl", echo_tool);
	o = run("cwlVersion: v1.2\nclass: Workflow\n"
		"requirements: {InlineJavascriptRequirement: {},"
		" StepInputExpressionRequirement: {}}\n"
		"inputs:\n  a: int\n"
		"outputs:\n  run: {type: Any, outputSource: s1/out}\n"
		"  skipped: {type: Any, outputSource: s2/out}\n"
		"steps:\n"
		"  s1:\n    run: echo.cwl\n    in:\n"
		"      k: a\n      x: {source: a, valueFrom: '$(self * 10 +"
		" inputs.k)'}\n"
		"    when: $(inputs.x > 5)\n    out: [out]\n"
		"  s2:\n    run: echo.cwl\n    in: {x: a}\n"
		"    when: $(inputs.x > 5)\n    out: [out]\n",
		"a: 2\n", &st, &f);
	expect(o, "{\"run\": 22, \"skipped\": null}");
	json_decref(o);
	XY_CHECK_EQ(f.submitted, 1);
	o = run("cwlVersion: v1.2\nclass: Workflow\n"
		"requirements: {InlineJavascriptRequirement: {}}\n"
		"inputs: {a: int}\noutputs: {}\n"
		"steps:\n  s1: {run: echo.cwl, in: {x: a}, when: $(inputs.x),"
		" out: [out]}\n", "a: 2\n", &st, &f);
	XY_CHECK(o == NULL && strstr(err, "true or false"));
	xy_test_check_no_leaks();
}

static const char scatter_wf[] =
	"cwlVersion: v1.2\nclass: Workflow\n"
	"requirements: {ScatterFeatureRequirement: {}}\n"
	"inputs:\n  a: 'int[]'\n  b: 'int[]'\n"
	"outputs:\n  o: {type: Any, outputSource: s/out}\n"
	"steps:\n  s:\n    run:\n"
	"      class: ExpressionTool\n"
	"      requirements: {InlineJavascriptRequirement: {}}\n"
	"      inputs: {p: int, q: int}\n      outputs: {out: Any}\n"
	"      expression: '$({out: inputs.p * 10 + inputs.q})'\n"
	"    in: {p: a, q: b}\n    out: [out]\n"
	"    scatter: [p, q]\n    scatterMethod: %s\n";

static void t_scatter(void)
{
	struct fake f = {0};
	char text[2048];
	int st;
	json_t *o;

	snprintf(text, sizeof text, scatter_wf, "dotproduct");
	o = run(text, "a: [1, 2]\nb: [3, 4]\n", &st, &f);
	expect(o, "{\"o\": [13, 24]}");
	json_decref(o);
	snprintf(text, sizeof text, scatter_wf, "nested_crossproduct");
	o = run(text, "a: [1, 2]\nb: [3, 4, 5]\n", &st, &f);
	expect(o, "{\"o\": [[13, 14, 15], [23, 24, 25]]}");
	json_decref(o);
	snprintf(text, sizeof text, scatter_wf, "flat_crossproduct");
	o = run(text, "a: [1, 2]\nb: [3, 4, 5]\n", &st, &f);
	expect(o, "{\"o\": [13, 14, 15, 23, 24, 25]}");
	json_decref(o);
	o = run(text, "a: []\nb: [3]\n", &st, &f);
	expect(o, "{\"o\": []}");
	json_decref(o);
	snprintf(text, sizeof text, scatter_wf, "dotproduct");
	o = run(text, "a: [1, 2]\nb: [3]\n", &st, &f);
	XY_CHECK(o == NULL && strstr(err, "dotproduct"));
	XY_CHECK_EQ(f.submitted, 0); /* ExpressionTools run here */
	xy_test_check_no_leaks();
}

/* A scattered tool submits all its jobs at once; a chain after it waits
 * for them, and a subworkflow's steps run as the outer ones do. */
static void t_parallel_and_subworkflow(void)
{
	struct fake f = {0};
	int st;
	json_t *o;

	put("inc.cwl", echo_tool);
	put("sub.cwl", "cwlVersion: v1.2\nclass: Workflow\n"
	    "inputs: {v: int}\noutputs:\n  r: {type: int, outputSource:"
	    " t2/out}\nsteps:\n  t1: {run: inc.cwl, in: {x: v}, out: [out]}\n"
	    "  t2: {run: inc.cwl, in: {x: t1/out}, out: [out]}\n");
	o = run("cwlVersion: v1.2\nclass: Workflow\n"
		"requirements: {ScatterFeatureRequirement: {},"
		" SubworkflowFeatureRequirement: {}}\n"
		"inputs:\n  a: 'int[]'\n"
		"outputs:\n  o: {type: Any, outputSource: s2/r}\n"
		"steps:\n"
		"  s1: {run: inc.cwl, in: {x: a}, scatter: x, out: [out]}\n"
		"  s2: {run: sub.cwl, in: {v: s1/out}, scatter: v, out: [r]}\n",
		"a: [1, 2, 3, 4, 5]\n", &st, &f);
	expect(o, "{\"o\": [4, 5, 6, 7, 8]}");
	json_decref(o);
	XY_CHECK_EQ(f.submitted, 15);
	XY_CHECK_EQ(f.max_running, 5);
	xy_test_check_no_leaks();
}

/* A step that updates a File in place (InplaceUpdateRequirement): steps
 * that read the file afterwards, and the outputs, get the new one; the
 * mark never reaches the output object. */
static void t_update_in_place(void)
{
	struct fake f = {0};
	int st;
	json_t *o;

	put("echo.cwl", echo_tool);
	put("upd.cwl", echo_tool);
	put("f.txt", "old\n");
	o = run("cwlVersion: v1.2\nclass: Workflow\n"
		"inputs:\n  f: File\n"
		"outputs:\n"
		"  before: {type: Any, outputSource: s0/out}\n"
		"  after: {type: Any, outputSource: s2/out}\n"
		"  original: {type: Any, outputSource: f}\n"
		"steps:\n"
		"  s0: {run: echo.cwl, in: {x: f}, out: [out]}\n"
		"  s1: {run: upd.cwl, in: {x: s0/out}, out: [out]}\n"
		"  s2: {run: echo.cwl, in: {x: f, w: s1/out}, out: [out]}\n",
		"f: {class: File, path: f.txt}\n", &st, &f);
	XY_CHECK(o != NULL);
	XY_CHECK(!strcmp(json_string_value(json_object_get(json_object_get(
		o, "after"), "path")), "/new/f.txt"));
	XY_CHECK(!strcmp(json_string_value(json_object_get(json_object_get(
		o, "original"), "path")), "/new/f.txt"));
	XY_CHECK(!strcmp(json_string_value(json_object_get(json_object_get(
		o, "before"), "path")), "/new/f.txt"));
	char *text = json_dumps(o, 0);

	XY_CHECK(text && !strstr(text, "xylem:updates"));
	free(text);
	json_decref(o);
	xy_test_check_no_leaks();
}

int main(int argc, char **argv)
{
	static const struct xy_test tests[] = {
		XY_TEST(t_canonical_workflow),
		XY_TEST(t_links),
		XY_TEST(t_value_from_and_when),
		XY_TEST(t_scatter),
		XY_TEST(t_parallel_and_subworkflow),
		XY_TEST(t_update_in_place),
		{0},
	};
	return xy_test_main(argc, argv, tests);
}
