/*
 * test_cwl_load.c: unit tests for the load stage of the CWL runner
 * (src/cwl/yaml.c, load.c, schema.c, fileobj.c): YAML into JSON with
 * positions, $import and $include, the canonical tool built from the
 * spec's shortcuts, the refusals and their messages, and the job's input
 * object with defaults, Files completed and secondaryFiles found. The
 * cases avoid expressions, which belong to expr.c's tests.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cwl.h"
#include "harness.h"

static char err[4096];

/* Writes text to tmpdir/rel and returns the full path. */
static const char *put(const char *rel, const char *text)
{
	char *p = xy_test_path(rel);
	FILE *f = fopen(p, "w");

	XY_CHECK(f != NULL);
	fputs(text, f);
	fclose(f);
	return p;
}

static json_t *tool_ok(const char *rel, const char *text)
{
	int st = -1;
	json_t *t = cwl_load_tool(put(rel, text), &st, err, sizeof err);

	if (!t)
		fprintf(stderr, "load failed: %s\n", err);
	XY_CHECK(t != NULL);
	XY_CHECK_EQ(st, CWL_OK);
	return t;
}

/* The document must be refused with status want and a message holding
 * needle. */
static void tool_refused(const char *text, int want, const char *needle)
{
	int st = -1;
	json_t *t = cwl_load_tool(put("bad.cwl", text), &st, err, sizeof err);

	if (t || st != want || !strstr(err, needle)) {
		fprintf(stderr, "status %d, message '%s', wanted %d '%s'\n",
			st, err, want, needle);
		exit(1);
	}
}

/* A tiny "a/b/0/c" walker for checks. */
static json_t *json_path_get(const json_t *v, const char *path)
{
	char buf[256], *tok, *save = NULL;

	snprintf(buf, sizeof buf, "%s", path);
	for (tok = strtok_r(buf, "/", &save); tok && v;
	     tok = strtok_r(NULL, "/", &save)) {
		if (json_is_array(v))
			v = json_array_get(v, strtoul(tok, NULL, 10));
		else
			v = json_object_get(v, tok);
	}
	return (json_t *)v;
}

static const char *str_at(const json_t *v, const char *path)
{
	json_t *x = json_path_get(v, path);

	return json_string_value(x);
}

static void t_yaml_scalars(void)
{
	json_t *v = cwl_yaml_load(put("s.yml",
		"a: 1\nb: -2.5e3\nc: true\nd: ~\ne: '1'\nf: \"true\"\n"
		"g: 0x1F\nh: 1.0.1\ni: yes\nj: &x [1, 2]\nk: *x\n"
		"l: 123456789012345678901234\n"), err, sizeof err);

	XY_CHECK(v != NULL);
	XY_CHECK_EQ(json_integer_value(json_object_get(v, "a")), 1);
	XY_CHECK(json_real_value(json_object_get(v, "b")) == -2500.0);
	XY_CHECK(json_is_true(json_object_get(v, "c")));
	XY_CHECK(json_is_null(json_object_get(v, "d")));
	XY_CHECK(!strcmp(str_at(v, "e"), "1"));
	XY_CHECK(!strcmp(str_at(v, "f"), "true"));
	XY_CHECK_EQ(json_integer_value(json_object_get(v, "g")), 31);
	XY_CHECK(!strcmp(str_at(v, "h"), "1.0.1"));
	XY_CHECK(!strcmp(str_at(v, "i"), "yes")); /* YAML 1.2: a string */
	XY_CHECK(json_equal(json_object_get(v, "j"), json_object_get(v, "k")));
	XY_CHECK(json_is_real(json_object_get(v, "l")));
	json_decref(v);
	xy_test_check_no_leaks();
}

static void t_yaml_positions_and_errors(void)
{
	char where[512], want[512];
	json_t *v = cwl_yaml_load(put("p.yml", "top: 1\nlist:\n  - {x: 1}\n"
				      "  - [2]\n"), err, sizeof err);

	XY_CHECK(v != NULL);
	snprintf(want, sizeof want, "%s:3", xy_test_path("p.yml"));
	cwl_where(json_path_get(v, "list/0"), where, sizeof where);
	XY_CHECK(!strcmp(where, want));
	json_decref(v);
	v = cwl_yaml_load(put("e.yml", "a: 1\nb: [1, 2\nc: 3\n"), err,
			  sizeof err);
	XY_CHECK(v == NULL);
	XY_CHECK(strstr(err, "e.yml:") && strstr(err, "invalid YAML"));
	v = cwl_yaml_load(xy_test_path("none.yml"), err, sizeof err);
	XY_CHECK(v == NULL && strstr(err, "none.yml"));
	/* JSON with tab indentation, which libyaml refuses, still loads. */
	v = cwl_yaml_load(put("t.json", "{\n\t\"a\": [1,\n\t\t2]\n}\n"), err,
			  sizeof err);
	XY_CHECK(v != NULL && json_array_size(json_object_get(v, "a")) == 2);
	json_decref(v);
	xy_test_check_no_leaks();
}

static void t_yaml_import_include(void)
{
	json_t *v;

	put("inc.txt", "some text\n");
	put("imp.yml", "- {id: one, v: 1}\n- {id: two, v: 2}\n");
	v = cwl_yaml_load(put("m.yml", "a: {$import: imp.yml}\n"
			      "b: {$include: inc.txt}\n"
			      "c: {$import: 'imp.yml#two'}\n"), err, sizeof err);
	XY_CHECK(v != NULL);
	XY_CHECK_EQ(json_array_size(json_object_get(v, "a")), 2);
	XY_CHECK(!strcmp(str_at(v, "b"), "some text\n"));
	XY_CHECK_EQ(json_integer_value(json_path_get(v, "c/v")), 2);
	json_decref(v);
	v = cwl_yaml_load(put("m2.yml", "a: {$import: nothere.yml}\n"), err,
			  sizeof err);
	XY_CHECK(v == NULL && strstr(err, "nothere.yml"));
	xy_test_check_no_leaks();
}

static const char tool_text[] =
	"#!/usr/bin/env cwl-runner\n"
	"cwlVersion: v1.2\n"
	"class: CommandLineTool\n"
	"$namespaces: {edam: 'http://edamontology.org/'}\n"
	"requirements:\n"
	"  EnvVarRequirement: {envDef: {A: x}}\n"
	"  SchemaDefRequirement:\n"
	"    types:\n"
	"      - {name: Pair, type: record, fields: {l: string, r: int?}}\n"
	"hints:\n"
	"  - {class: EnvVarRequirement, envDef: []}\n"
	"  - {class: ResourceRequirement, coresMin: 2}\n"
	"  - {class: 'ex:Unknown'}\n"
	"inputs:\n"
	"  a: File?\n"
	"  b: {type: 'string[]', inputBinding: {position: 1}}\n"
	"  c: {type: File, format: edam:format_1, secondaryFiles: [.bai?, "
	"'^.idx']}\n"
	"  d: '#Pair'\n"
	"  e: {type: array, items: Pair}\n"
	"outputs:\n"
	"  o: stdout\n"
	"  p: {type: 'File[]?', outputBinding: {glob: '*.txt'}}\n"
	"baseCommand: echo\n"
	"arguments: [x, {valueFrom: y, position: 2}]\n"
	"successCodes: [0, 1]\n";

static void t_tool_canonical(void)
{
	json_t *t = tool_ok("tool.cwl", tool_text);
	const json_t *in, *x;

	in = json_object_get(t, "inputs");
	XY_CHECK_EQ(json_array_size(in), 5);
	XY_CHECK(!strcmp(str_at(in, "0/id"), "a"));
	XY_CHECK(!strcmp(str_at(in, "0/type/0"), "null"));
	XY_CHECK(!strcmp(str_at(in, "0/type/1"), "File"));
	XY_CHECK(!strcmp(str_at(in, "1/type/type"), "array"));
	XY_CHECK(!strcmp(str_at(in, "1/type/items"), "string"));
	XY_CHECK(!strcmp(str_at(in, "2/format"),
			 "http://edamontology.org/format_1"));
	XY_CHECK(!strcmp(str_at(in, "2/secondaryFiles/0/pattern"), ".bai"));
	XY_CHECK(json_is_false(json_path_get(in, "2/secondaryFiles/0/required")));
	XY_CHECK(json_is_true(json_path_get(in, "2/secondaryFiles/1/required")));
	XY_CHECK(!strcmp(str_at(in, "3/type/type"), "record"));
	XY_CHECK(!strcmp(str_at(in, "3/type/fields/1/name"), "r"));
	XY_CHECK(!strcmp(str_at(in, "3/type/fields/1/type/0"), "null"));
	XY_CHECK(!strcmp(str_at(in, "4/type/items/name"), "Pair"));
	x = json_object_get(t, "outputs");
	XY_CHECK(!strcmp(str_at(x, "0/type"), "File"));
	XY_CHECK(str_at(t, "stdout") != NULL);
	XY_CHECK(!strcmp(str_at(x, "0/outputBinding/glob"), str_at(t, "stdout")));
	XY_CHECK(!strcmp(str_at(x, "1/type/1/items"), "File"));
	XY_CHECK(!strcmp(str_at(t, "baseCommand/0"), "echo"));
	XY_CHECK(!strcmp(str_at(t, "arguments/0/valueFrom"), "x"));
	XY_CHECK_EQ(json_integer_value(json_path_get(t, "arguments/1/position")),
		    2);
	XY_CHECK(!strcmp(str_at(t, "requirements/EnvVarRequirement/envDef/0/"
				"envName"), "A"));
	/* The requirement wins; the unknown hint is dropped. */
	XY_CHECK(!json_path_get(t, "hints/EnvVarRequirement"));
	XY_CHECK(json_path_get(t, "hints/ResourceRequirement") != NULL);
	XY_CHECK_EQ(json_object_size(json_object_get(t, "hints")), 1);
	XY_CHECK(cwl_requirement(t, "ResourceRequirement", NULL) != NULL);
	XY_CHECK(!strncmp(str_at(t, "id"), "file:///", 8));
	json_decref(t);
	xy_test_check_no_leaks();
}

static void t_tool_graph_and_import(void)
{
	char ref[8192];
	json_t *t;
	int st;

	put("types.yml", "class: SchemaDefRequirement\ntypes:\n"
	    "  - {name: Hello, type: enum, symbols: [a, b]}\n");
	t = tool_ok("packed.cwl", "cwlVersion: v1.2\n$graph:\n"
		    "- {class: CommandLineTool, id: first, inputs: [], outputs:"
		    " [], baseCommand: one}\n- class: CommandLineTool\n"
		    "  id: '#main'\n  requirements: [{$import: types.yml}]\n"
		    "  inputs: {x: 'types.yml#Hello'}\n  outputs: []\n"
		    "  baseCommand: two\n");
	XY_CHECK(!strcmp(str_at(t, "baseCommand/0"), "two"));
	XY_CHECK(!strcmp(str_at(t, "inputs/0/type/type"), "enum"));
	XY_CHECK(strstr(str_at(t, "id"), "packed.cwl#main") != NULL);
	json_decref(t);
	snprintf(ref, sizeof ref, "%s#first", xy_test_path("packed.cwl"));
	t = cwl_load_tool(ref, &st, err, sizeof err);
	XY_CHECK(t != NULL);
	XY_CHECK(!strcmp(str_at(t, "baseCommand/0"), "one"));
	json_decref(t);
	xy_test_check_no_leaks();
}

static void t_tool_refusals(void)
{
	tool_refused("cwlVersion: v1.2\nclass: Operation\ninputs: []\n"
		     "outputs: []\n", CWL_UNSUPPORTED, "Operation");
	tool_refused("cwlVersion: v1.2\nclass: CommandLineTool\ninputs: []\n"
		     "outputs: []\nrequirements: [{class: MadeUpRequirement}]\n",
		     CWL_UNSUPPORTED, "MadeUpRequirement");
	tool_refused("cwlVersion: v1.2\nclass: CommandLineTool\ninputs: []\n"
		     "outputs: []\nrequirements:\n  DockerRequirement: "
		     "{dockerPull: x}\n", CWL_UNSUPPORTED, "DockerRequirement");
	tool_refused("cwlVersion: v1.2\ninputs: []\noutputs: []\n",
		     CWL_PERMANENT_FAIL, "bad.cwl:1: missing 'class'");
	tool_refused("cwlVersion: v1.2\nclass: CommandLineTool\noutputs: []\n"
		     "inputs:\n  - id: x\n    type: Strang\n",
		     CWL_PERMANENT_FAIL, "bad.cwl:5: unknown type name");
	tool_refused("cwlVersion: v1.2\nclass: CommandLineTool\ninputs: []\n"
		     "outputs: []\nbaseCommand: {a: 1}\n", CWL_PERMANENT_FAIL,
		     "baseCommand must be");
	/* A typo'd field fails at load, with the field it resembles; one in
	 * a namespace is the document's own. */
	tool_refused("cwlVersion: v1.2\nclass: CommandLineTool\ninputs: []\n"
		     "outputs: []\nbaseComand: echo\n", CWL_PERMANENT_FAIL,
		     "bad.cwl:5: unknown field 'baseComand' (did you mean "
		     "'baseCommand'?)");
	tool_refused("cwlVersion: v1.2\nclass: CommandLineTool\ninputs: []\n"
		     "outputs: []\ncolour: red\n", CWL_PERMANENT_FAIL,
		     "unknown field 'colour' of a CommandLineTool");
	json_decref(tool_ok("ns.cwl", "cwlVersion: v1.2\nclass: CommandLineTool"
			    "\n$namespaces: {s: 'https://schema.org/'}\n"
			    "s:author: me\ninputs: []\noutputs: []\n"
			    "baseCommand: echo\n"));
	tool_refused("cwlVersion: v1.2\nclass: CommandLineTool\ninputs: [\n",
		     CWL_PERMANENT_FAIL, "invalid YAML");
	tool_refused("cwlVersion: v1.2\nclass: CommandLineTool\ninputs: []\n"
		     "outputs: []\nhints: {DockerRequirement: {}}\n"
		     "successCodes: [a]\n", CWL_PERMANENT_FAIL, "successCodes");
	xy_test_check_no_leaks();
}

/* A SchemaDefRequirement type that names itself through a record field
 * is refused (it recursed until the stack overflowed: fuzz_cwl), and so
 * is one whose fields double the types at each level. */
static void t_tool_recursive_types(void)
{
	tool_refused("cwlVersion: v1.2\nclass: CommandLineTool\n"
		     "requirements:\n  SchemaDefRequirement:\n    types:\n"
		     "      - name: r\n        type: record\n"
		     "        fields:\n          self: r\n"
		     "inputs:\n  x: r\noutputs: []\n",
		     CWL_PERMANENT_FAIL, "nest too deeply");
	char doc[8192];
	int n = snprintf(doc, sizeof doc, "cwlVersion: v1.2\nclass: "
			 "CommandLineTool\nrequirements:\n  "
			 "SchemaDefRequirement:\n    types:\n"
			 "      - {name: t0, type: record, fields: {a: int}}\n");
	for (int i = 1; i < 30; i++)
		n += snprintf(doc + n, sizeof doc - n,
			      "      - {name: t%d, type: record, fields: "
			      "{a: t%d, b: t%d}}\n", i, i - 1, i - 1);
	snprintf(doc + n, sizeof doc - n, "inputs:\n  x: t29\noutputs: []\n");
	tool_refused(doc, CWL_PERMANENT_FAIL, "too many types");
	xy_test_check_no_leaks();
}

static json_t *job_tool(void)
{
	mkdir(xy_test_path("data"), 0755);
	put("data/r.txt", "hello\n");
	put("data/r.idx", "i\n");
	put("data/r.txt.bai", "b\n");
	put("def.txt", "default\n");
	return tool_ok("jt.cwl",
		"cwlVersion: v1.2\nclass: CommandLineTool\noutputs: []\n"
		"inputs:\n"
		"  f: {type: File, secondaryFiles: ['^.idx', .bai, .nope?],"
		" loadContents: true}\n"
		"  g: {type: File, default: {class: File, path: def.txt}}\n"
		"  n: int?\n"
		"  x: {type: float, default: 1}\n"
		"  s: {type: string}\n"
		"  lit: File?\n"
		"  d: {type: Directory?, loadListing: shallow_listing}\n");
}

static void t_job_fill(void)
{
	json_t *t = job_tool(), *j;
	const char *job;

	mkdir(xy_test_path("scratch"), 0755);
	job = put("data/job.yml", "f: {class: File, location: r.txt}\n"
		  "s: hi\nlit: {class: File, contents: abc, basename: l.txt}\n"
		  "d: {class: Directory, location: '.'}\n");
	j = cwl_load_job(t, job, NULL, xy_test_path("scratch"), err, sizeof err);
	if (!j)
		fprintf(stderr, "%s\n", err);
	XY_CHECK(j != NULL);
	XY_CHECK(!strcmp(str_at(j, "f/path"), xy_test_path("data/r.txt")));
	XY_CHECK(!strcmp(str_at(j, "f/contents"), "hello\n"));
	XY_CHECK(!strcmp(str_at(j, "f/nameroot"), "r"));
	XY_CHECK(!strcmp(str_at(j, "f/checksum"),
			 "sha1$f572d396fae9206628714fb2ce00f72e94f2258f"));
	XY_CHECK_EQ(json_integer_value(json_path_get(j, "f/size")), 6);
	XY_CHECK(!strcmp(str_at(j, "f/secondaryFiles/0/basename"), "r.idx"));
	XY_CHECK(!strcmp(str_at(j, "f/secondaryFiles/1/basename"),
			 "r.txt.bai"));
	XY_CHECK_EQ(json_array_size(json_path_get(j, "f/secondaryFiles")), 2);
	XY_CHECK(!strcmp(str_at(j, "g/path"), xy_test_path("def.txt")));
	XY_CHECK(json_is_null(json_object_get(j, "n")));
	XY_CHECK(json_is_integer(json_object_get(j, "x")));
	XY_CHECK(!strncmp(str_at(j, "lit/path"), xy_test_path("scratch/"),
			  strlen(xy_test_path("scratch/"))));
	XY_CHECK(!strcmp(str_at(j, "lit/basename"), "l.txt"));
	XY_CHECK_EQ(json_integer_value(json_path_get(j, "lit/size")), 3);
	XY_CHECK(json_array_size(json_path_get(j, "d/listing")) >= 4);
	json_decref(j);
	json_decref(t);
	xy_test_check_no_leaks();
}

static void job_refused(json_t *t, const char *text, const char *needle)
{
	json_t *j = cwl_load_job(t, put("data/bad.yml", text), NULL,
				 xy_test_tmpdir(), err, sizeof err);

	if (j || !strstr(err, needle)) {
		fprintf(stderr, "job accepted or message '%s' lacks '%s'\n",
			err, needle);
		exit(1);
	}
}

static void t_job_errors(void)
{
	json_t *t = job_tool();

	job_refused(t, "f: {class: File, location: r.txt}\n",
		    "missing required input 's'");
	job_refused(t, "f: {class: File, location: gone.txt}\ns: x\n",
		    "gone.txt");
	job_refused(t, "f: {class: File, location: r.txt}\ns: 3\n",
		    "input 's'");
	job_refused(t, "f: {class: File, location: r.idx}\ns: x\n",
		    "secondary file");
	job_refused(t, "[1, 2]\n", "must be a map");
	json_decref(t);
	xy_test_check_no_leaks();
}

/* A Directory literal becomes a real tree under scratch, with a listed
 * file copied in and a literal file written. */
static void t_job_dir_literal(void)
{
	json_t *t, *j;
	struct stat st;

	put("h.txt", "hi\n");
	mkdir(xy_test_path("scratch"), 0755);
	t = tool_ok("dl.cwl", "cwlVersion: v1.2\nclass: CommandLineTool\n"
		    "inputs: {d: Directory, s: stdin}\noutputs: []\n");
	XY_CHECK(!strcmp(str_at(t, "stdin"), "$(inputs.s.path)"));
	XY_CHECK(!strcmp(str_at(t, "inputs/1/type"), "File"));
	j = cwl_load_job(t, put("dl.yml", "s: {class: File, path: h.txt}\n"
				"d:\n  class: Directory\n  basename: top\n"
				"  listing:\n  - {class: File, path: h.txt}\n"
				"  - class: Directory\n    basename: sub\n"
				"    listing: [{class: File, basename: l.txt, "
				"contents: abc}]\n"),
			 NULL, xy_test_path("scratch"), err, sizeof err);
	if (!j)
		fprintf(stderr, "%s\n", err);
	XY_CHECK(j != NULL);
	XY_CHECK(!strcmp(str_at(j, "d/basename"), "top"));
	XY_CHECK(strstr(str_at(j, "d/listing/0/path"), "/top/h.txt") != NULL);
	XY_CHECK(stat(str_at(j, "d/listing/0/path"), &st) == 0);
	XY_CHECK(strstr(str_at(j, "d/listing/1/listing/0/path"),
			"/top/sub/l.txt") != NULL);
	XY_CHECK_EQ(json_integer_value(json_path_get(j, "d/listing/1/listing/"
						     "0/size")), 3);
	json_decref(j);
	json_decref(t);
	xy_test_check_no_leaks();
}

static void t_names_and_uris(void)
{
	char *s;

	s = cwl_secondary_name("a.b.c", "^^.x");
	XY_CHECK(!strcmp(s, "a.x"));
	free(s);
	s = cwl_secondary_name("a", "^.x");
	XY_CHECK(!strcmp(s, "a.x"));
	free(s);
	s = cwl_secondary_name("a.txt", ".bai");
	XY_CHECK(!strcmp(s, "a.txt.bai"));
	free(s);
	s = cwl_percent_decode("item%20%231%3Aa.txt%zz");
	XY_CHECK(!strcmp(s, "item #1:a.txt%zz"));
	free(s);
	XY_CHECK(!strcmp(cwl_short_name("file:///a/b.yml#Foo"), "Foo"));
	XY_CHECK(!strcmp(cwl_short_name("#Rec/field"), "field"));
}

int main(int argc, char **argv)
{
	static const struct xy_test tests[] = {
		XY_TEST(t_yaml_scalars),
		XY_TEST(t_yaml_positions_and_errors),
		XY_TEST(t_yaml_import_include),
		XY_TEST(t_tool_canonical),
		XY_TEST(t_tool_graph_and_import),
		XY_TEST(t_tool_refusals),
		XY_TEST(t_tool_recursive_types),
		XY_TEST(t_job_fill),
		XY_TEST(t_job_errors),
		XY_TEST(t_job_dir_literal),
		XY_TEST(t_names_and_uris),
		{0},
	};
	return xy_test_main(argc, argv, tests);
}
