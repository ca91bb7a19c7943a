/*
 * test_cwl_exec.c: unit tests for the CWL runner's exec stage
 * (src/cwl/cmdline.c, outputs.c, exec.c): the command line's order and
 * forms, resources, and whole runs of small tools in a temporary
 * directory (streams, environment, InitialWorkDir, exit codes, time
 * limits, outputs). Tools and jobs are built by hand in the loader's
 * canonical form.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cwl.h"
#include "harness.h"

static char err[4096];

static json_t *parse(const char *text)
{
	json_error_t je;
	json_t *v = json_loads(text, JSON_DECODE_ANY, &je);
	if (!v)
		fprintf(stderr, "bad test JSON: %s: %s\n", je.text, text);
	XY_CHECK(v != NULL);
	return v;
}

/* The command line of tool on job, joined with '|', must be want. */
static void cmdline_is(const char *tool_json, const char *job_json,
		       const char *want)
{
	json_t *tool = parse(tool_json), *job = parse(job_json);
	json_t *rt = parse("{\"cores\": 2, \"outdir\": \"/o\"}");
	struct cwl_expr *x = cwl_expr_new(tool, err, sizeof err);
	XY_CHECK(x != NULL);
	json_t *cmd = cwl_command_line(x, tool, job, rt, err, sizeof err);
	if (!cmd)
		fprintf(stderr, "command line: %s\n", err);
	XY_CHECK(cmd != NULL);
	char got[4096] = "";
	size_t i;
	json_t *w;
	json_array_foreach(cmd, i, w) {
		if (i)
			strcat(got, "|");
		strcat(got, json_string_value(w));
	}
	if (strcmp(got, want))
		fprintf(stderr, "command line: got  %s\n              want %s\n",
			got, want);
	XY_CHECK(!strcmp(got, want));
	json_decref(cmd);
	cwl_expr_free(x);
	json_decref(rt);
	json_decref(job);
	json_decref(tool);
}

static void t_cmdline_order(void)
{
	/* The bwa-mem test of the suite: positions, then names. */
	cmdline_is(
		"{\"cwlVersion\": \"v1.2\", \"baseCommand\": [\"python\"],"
		" \"inputs\": ["
		"  {\"id\": \"reference\", \"type\": \"File\","
		"   \"inputBinding\": {\"position\": 2}},"
		"  {\"id\": \"reads\", \"type\": {\"type\": \"array\","
		"   \"items\": \"File\"}, \"inputBinding\": {\"position\": 3}},"
		"  {\"id\": \"minimum_seed_length\", \"type\": \"int\","
		"   \"inputBinding\": {\"position\": 1, \"prefix\": \"-m\"}},"
		"  {\"id\": \"min_std_max_min\", \"type\": {\"type\": \"array\","
		"   \"items\": \"int\"}, \"inputBinding\": {\"position\": 1,"
		"   \"prefix\": \"-I\", \"itemSeparator\": \",\"}},"
		"  {\"id\": \"args.py\", \"type\": \"File\","
		"   \"inputBinding\": {\"position\": -1}}],"
		" \"arguments\": [{\"valueFrom\": \"bwa\"}, {\"valueFrom\": \"mem\"},"
		"  {\"valueFrom\": \"$(runtime.cores)\", \"position\": 1,"
		"   \"prefix\": \"-t\"}]}",
		"{\"reference\": {\"class\": \"File\", \"path\": \"/d/chr20.fa\"},"
		" \"reads\": [{\"class\": \"File\", \"path\": \"/d/r1.fq\"},"
		"  {\"class\": \"File\", \"path\": \"/d/r2.fq\"}],"
		" \"minimum_seed_length\": 3, \"min_std_max_min\": [1, 2, 3, 4],"
		" \"args.py\": {\"class\": \"File\", \"path\": \"/d/args.py\"}}",
		"python|/d/args.py|bwa|mem|-t|2|-I|1,2,3,4|-m|3|/d/chr20.fa|"
		"/d/r1.fq|/d/r2.fq");
}

static void t_cmdline_forms(void)
{
	/* Nested prefixes: the array's own binding once, the items'
	 * binding for each item. */
	cmdline_is(
		"{\"baseCommand\": [\"bwa\", \"mem\"], \"inputs\": ["
		"  {\"id\": \"reads\", \"type\": {\"type\": \"array\", \"items\":"
		"   \"File\", \"inputBinding\": {\"prefix\": \"-YYY\"}},"
		"   \"inputBinding\": {\"position\": 3, \"prefix\": \"-XXX\"}},"
		"  {\"id\": \"flag\", \"type\": \"boolean\","
		"   \"inputBinding\": {\"prefix\": \"-f\"}},"
		"  {\"id\": \"off\", \"type\": \"boolean\","
		"   \"inputBinding\": {\"prefix\": \"-o\"}},"
		"  {\"id\": \"opt\", \"type\": [\"null\", \"string\"],"
		"   \"inputBinding\": {\"prefix\": \"--opt=\", \"separate\": false}},"
		"  {\"id\": \"gone\", \"type\": [\"null\", \"string\"],"
		"   \"inputBinding\": {\"prefix\": \"-g\"}},"
		"  {\"id\": \"empty\", \"type\": {\"type\": \"array\", \"items\":"
		"   \"string\"}, \"inputBinding\": {\"prefix\": \"-e\"}},"
		"  {\"id\": \"x\", \"type\": \"float\", \"inputBinding\": {}},"
		"  {\"id\": \"y\", \"type\": \"float\", \"inputBinding\": {}},"
		"  {\"id\": \"z\", \"type\": \"float\", \"inputBinding\": {}},"
		"  {\"id\": \"unbound\", \"type\": \"string\"}]}",
		"{\"reads\": [{\"class\": \"File\", \"path\": \"/a\"},"
		"  {\"class\": \"File\", \"path\": \"/b\"}], \"flag\": true,"
		" \"off\": false, \"opt\": \"v\", \"gone\": null, \"empty\": [],"
		" \"x\": 0.00001, \"y\": 123000.0, \"z\": 2.5, \"unbound\": \"u\"}",
		"bwa|mem|-f|--opt=v|0.00001|123000|2.5|-XXX|-YYY|/a|-YYY|/b");
	/* valueFrom with self, records, and shell quoting. */
	cmdline_is(
		"{\"requirements\": {\"ShellCommandRequirement\": {}},"
		" \"inputs\": ["
		"  {\"id\": \"n\", \"type\": \"int\", \"inputBinding\":"
		"   {\"valueFrom\": \"$(self)0\", \"position\": 2}},"
		"  {\"id\": \"r\", \"type\": {\"type\": \"record\", \"fields\": ["
		"   {\"name\": \"b\", \"type\": \"string\", \"inputBinding\":"
		"    {\"position\": 2}},"
		"   {\"name\": \"a\", \"type\": \"string\", \"inputBinding\":"
		"    {\"position\": 1}}]}, \"inputBinding\": {\"position\": 1}}],"
		" \"arguments\": [{\"valueFrom\": \"echo\", \"position\": -1},"
		"  {\"valueFrom\": \"a b\", \"position\": 3},"
		"  {\"valueFrom\": \"> out\", \"position\": 4,"
		"   \"shellQuote\": false}]}",
		"{\"n\": 4, \"r\": {\"a\": \"it's\", \"b\": \"B\"}}",
		"/bin/sh|-c|echo 'it'\"'\"'s' B 40 'a b' > out");
	xy_test_check_no_leaks();
}

static void t_resources(void)
{
	json_t *tool = parse(
		"{\"cwlVersion\": \"v1.2\", \"requirements\": "
		"{\"ResourceRequirement\": {\"coresMin\": \"$(inputs.n)\","
		" \"ramMin\": 100.5, \"outdirMax\": 64}}}");
	json_t *job = parse("{\"n\": 3}");
	struct cwl_runtime rt = {0};
	XY_CHECK_EQ(cwl_resources(tool, job, &rt, err, sizeof err), 0);
	XY_CHECK_EQ(rt.cores, 3);
	XY_CHECK_EQ(rt.ram, 101);
	XY_CHECK_EQ(rt.outdir_size, 64);
	XY_CHECK_EQ(rt.tmpdir_size, 1024);
	json_decref(tool);
	tool = parse("{\"cwlVersion\": \"v1.0\"}");
	XY_CHECK_EQ(cwl_resources(tool, job, &rt, err, sizeof err), 0);
	XY_CHECK_EQ(rt.cores, 1);
	XY_CHECK_EQ(rt.ram, 1024);
	json_decref(tool);
	json_decref(job);
}

/* A runtime in fresh out/ and tmp/ directories of the case's tmpdir. */
static struct cwl_runtime runtime_here(void)
{
	static char out[4096], tmp[4096];
	snprintf(out, sizeof out, "%s", xy_test_path("out"));
	snprintf(tmp, sizeof tmp, "%s", xy_test_path("tmp"));
	XY_CHECK_EQ(mkdir(out, 0755), 0);
	XY_CHECK_EQ(mkdir(tmp, 0755), 0);
	struct cwl_runtime rt = {out, tmp, 1, 256, 1024, 1024, 0};
	return rt;
}

/* Runs tool on job; returns the output object (NULL on failure) and the
 * status. */
static json_t *run(const char *tool_json, const char *job_json,
		   const struct cwl_runtime *rt, int *status)
{
	json_t *tool = parse(tool_json), *job = parse(job_json);
	err[0] = 0;
	json_t *out = cwl_exec_tool(tool, job, rt, status, err, sizeof err);
	json_decref(tool);
	json_decref(job);
	return out;
}

static const char *read_text(const char *path)
{
	static char buf[4096];
	FILE *f = fopen(path, "r");
	XY_CHECK(f != NULL);
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = 0;
	fclose(f);
	return buf;
}

static void t_run_streams_env(void)
{
	struct cwl_runtime rt = runtime_here();
	int st = -1;
	json_t *out = run(
		"{\"cwlVersion\": \"v1.2\", \"baseCommand\": [\"sh\", \"-c\","
		" \"echo $MSG $HOME $TMPDIR; echo oops >&2; cat\"],"
		" \"requirements\": {\"EnvVarRequirement\": {\"envDef\": ["
		"  {\"envName\": \"MSG\", \"envValue\": \"$(inputs.m)\"}]}},"
		" \"stdout\": \"o/$(inputs.m).txt\", \"stderr\": \"e.txt\","
		" \"stdin\": \"$(inputs.f.path)\","
		" \"inputs\": [{\"id\": \"m\", \"type\": \"string\"},"
		"  {\"id\": \"f\", \"type\": \"File\"}],"
		" \"outputs\": [{\"id\": \"o\", \"type\": \"File\","
		"  \"outputBinding\": {\"glob\": \"o/*.txt\","
		"   \"loadContents\": true}},"
		"  {\"id\": \"n\", \"type\": \"int\", \"outputBinding\": "
		"   {\"outputEval\": \"$(runtime.exitCode)\"}},"
		"  {\"id\": \"none\", \"type\": [\"null\", \"File\"],"
		"   \"outputBinding\": {\"glob\": \"nothing\"}}]}",
		"{\"m\": \"hi\", \"f\": {\"class\": \"File\", \"path\": "
		"\"/etc/hostname\"}}",
		&rt, &st);
	if (!out)
		fprintf(stderr, "run: %s\n", err);
	XY_CHECK(out != NULL);
	XY_CHECK_EQ(st, CWL_OK);
	const json_t *o = json_object_get(out, "o");
	char want[8192];
	snprintf(want, sizeof want, "hi %s %s\n%s", rt.outdir, rt.tmpdir,
		 read_text("/etc/hostname"));
	XY_CHECK(!strcmp(json_string_value(json_object_get(o, "contents")),
			 want));
	XY_CHECK(!strcmp(json_string_value(json_object_get(o, "basename")),
			 "hi.txt"));
	XY_CHECK_EQ(json_integer_value(json_object_get(o, "size")),
		    strlen(want));
	XY_CHECK(!strncmp(json_string_value(json_object_get(o, "checksum")),
			  "sha1$", 5));
	XY_CHECK_EQ(json_integer_value(json_object_get(out, "n")), 0);
	XY_CHECK(json_is_null(json_object_get(out, "none")));
	XY_CHECK(!strcmp(read_text(xy_test_path("out/e.txt")), "oops\n"));
	json_decref(out);
}

static void t_run_initial_workdir(void)
{
	struct cwl_runtime rt = runtime_here();
	int st = -1;
	FILE *f = fopen(xy_test_path("in.txt"), "w");
	fputs("input\n", f);
	fclose(f);
	char job[8192];
	snprintf(job, sizeof job,
		 "{\"f\": {\"class\": \"File\", \"path\": \"%s\", \"basename\":"
		 " \"in.txt\"}, \"obj\": {\"k\": [1, 2.5]}}",
		 xy_test_path("in.txt"));
	json_t *out = run(
		"{\"cwlVersion\": \"v1.2\", \"requirements\": "
		"{\"InitialWorkDirRequirement\": {\"listing\": ["
		"  {\"entryname\": \"conf.json\", \"entry\": \"$(inputs.obj)\"},"
		"  {\"entryname\": \"sub/text\", \"entry\": \"x=$(inputs.obj.k)\\n\"},"
		"  {\"entryname\": \"renamed.txt\", \"entry\": \"$(inputs.f)\","
		"   \"writable\": true},"
		"  \"$(inputs.f)\"]}},"
		" \"baseCommand\": [\"sh\", \"-c\", \"echo more >> renamed.txt\"],"
		" \"arguments\": [{\"valueFrom\": \"$(inputs.f.path)\"}],"
		" \"inputs\": [{\"id\": \"f\", \"type\": \"File\"},"
		"  {\"id\": \"obj\", \"type\": \"Any\"}],"
		" \"outputs\": [{\"id\": \"all\", \"type\": {\"type\": \"array\","
		"  \"items\": \"File\"}, \"outputBinding\": {\"glob\": "
		"  [\"*.txt\", \"conf.json\"]}}]}",
		job, &rt, &st);
	if (!out)
		fprintf(stderr, "run: %s\n", err);
	XY_CHECK(out != NULL);
	XY_CHECK(!strcmp(read_text(xy_test_path("out/conf.json")),
			 "{\"k\": [1, 2.5]}"));
	XY_CHECK(!strcmp(read_text(xy_test_path("out/sub/text")),
			 "x=[1, 2.5]\n"));
	XY_CHECK(!strcmp(read_text(xy_test_path("out/renamed.txt")),
			 "input\nmore\n"));
	XY_CHECK(!strcmp(read_text(xy_test_path("in.txt")), "input\n"));
	const json_t *all = json_object_get(out, "all");
	XY_CHECK_EQ(json_array_size(all), 3);
	XY_CHECK(!strcmp(json_string_value(json_object_get(
				 json_array_get(all, 0), "basename")),
			 "in.txt"));
	json_decref(out);
	xy_test_check_no_leaks();
}

static void t_run_exit_codes(void)
{
	struct cwl_runtime rt = runtime_here();
	int st = -1;
	json_t *out = run("{\"baseCommand\": [\"sh\", \"-c\", \"exit 7\"],"
			  " \"successCodes\": [7], \"inputs\": [],"
			  " \"outputs\": []}",
			  "{}", &rt, &st);
	XY_CHECK(out && st == CWL_OK);
	json_decref(out);
	out = run("{\"baseCommand\": [\"sh\", \"-c\", \"exit 7\"],"
		  " \"temporaryFailCodes\": [7], \"inputs\": [],"
		  " \"outputs\": []}",
		  "{}", &rt, &st);
	XY_CHECK(!out && st == CWL_TEMPORARY_FAIL);
	out = run("{\"baseCommand\": [\"false\"], \"inputs\": [],"
		  " \"outputs\": []}",
		  "{}", &rt, &st);
	XY_CHECK(!out && st == CWL_PERMANENT_FAIL);
	out = run("{\"baseCommand\": [\"/no/such/program\"], \"inputs\": [],"
		  " \"outputs\": []}",
		  "{}", &rt, &st);
	XY_CHECK(!out && st == CWL_PERMANENT_FAIL && strstr(err, "cannot run"));
	/* A File output that finds nothing fails; so does a wrong type. */
	out = run("{\"baseCommand\": [\"true\"], \"inputs\": [], \"outputs\":"
		  " [{\"id\": \"f\", \"type\": \"File\", \"outputBinding\":"
		  " {\"glob\": \"missing\"}}]}",
		  "{}", &rt, &st);
	XY_CHECK(!out && st == CWL_PERMANENT_FAIL);
	out = run("{\"baseCommand\": [\"true\"], \"inputs\": [], \"outputs\":"
		  " [{\"id\": \"n\", \"type\": \"int\", \"outputBinding\":"
		  " {\"outputEval\": \"text\"}}]}",
		  "{}", &rt, &st);
	XY_CHECK(!out && st == CWL_PERMANENT_FAIL && strstr(err, "type"));
	xy_test_check_no_leaks();
}

static void t_run_time_limit(void)
{
	struct cwl_runtime rt = runtime_here();
	int st = -1;
	double t0 = (double)time(NULL);
	json_t *out = run("{\"baseCommand\": [\"sleep\", \"10\"],"
			  " \"requirements\": {\"ToolTimeLimit\": "
			  " {\"timelimit\": 1}}, \"inputs\": [],"
			  " \"outputs\": []}",
			  "{}", &rt, &st);
	XY_CHECK(!out && st == CWL_PERMANENT_FAIL);
	XY_CHECK(strstr(err, "time limit") != NULL);
	XY_CHECK((double)time(NULL) - t0 < 5);
}

static void t_run_custom_output(void)
{
	struct cwl_runtime rt = runtime_here();
	int st = -1;
	json_t *out = run(
		"{\"cwlVersion\": \"v1.2\", \"baseCommand\": [\"sh\", \"-c\","
		" \"echo data > d.txt; echo '{\\\"x\\\": {\\\"class\\\": "
		"\\\"File\\\", \\\"path\\\": \\\"d.txt\\\"}, \\\"n\\\": 3}' "
		"> cwl.output.json\"], \"inputs\": [], \"outputs\": ["
		" {\"id\": \"x\", \"type\": \"File\"},"
		" {\"id\": \"n\", \"type\": \"int\"}]}",
		"{}", &rt, &st);
	if (!out)
		fprintf(stderr, "run: %s\n", err);
	XY_CHECK(out && st == CWL_OK);
	const json_t *x = json_object_get(out, "x");
	XY_CHECK_EQ(json_integer_value(json_object_get(x, "size")), 5);
	XY_CHECK(!strcmp(json_string_value(json_object_get(x, "checksum")),
			 "sha1$c5d84736ba451747dd5f0eb9d17e104f3697ef47"));
	XY_CHECK_EQ(json_integer_value(json_object_get(out, "n")), 3);
	json_decref(out);
	xy_test_check_no_leaks();
}

int main(int argc, char **argv)
{
	static const struct xy_test tests[] = {
		XY_TEST(t_cmdline_order),
		XY_TEST(t_cmdline_forms),
		XY_TEST(t_resources),
		XY_TEST(t_run_streams_env),
		XY_TEST(t_run_initial_workdir),
		XY_TEST(t_run_exit_codes),
		XY_TEST(t_run_time_limit),
		XY_TEST(t_run_custom_output),
		{0},
	};
	return xy_test_main(argc, argv, tests);
}
