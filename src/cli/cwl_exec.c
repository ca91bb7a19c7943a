/*
 * cwl_exec.c: `xylem cwl-exec JOB.json`, the task that `xylem cwl`
 * submits for each tool run (docs/cwl.md), and the walk over File and
 * Directory objects that both sides use. In the task's sandbox it makes
 * the job's paths absolute, runs the tool (cwl_exec_tool) with out/ as
 * its output directory and tmp/ as its temporary one, and writes the
 * output object, paths relative to out/, to cwl-result.json; its exit
 * status is the tool's CWL status. It is linked into `xylem` and, on its
 * own, into the small `xylem-cwl-exec`, which the task runs when it sits
 * beside the worker's program: a tool run then loads a handful of
 * libraries instead of all of xylem's (cwl_exec_main.c).
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "cwl.h"
#include "cwl_int.h"
#include "util.h"

/* ------------------------------------------------------------ walking */


/* Calls fn on every File and Directory in v, depth first, the object
 * before its secondary files and listing; `nested` says it lies inside a
 * Directory's listing. A non-zero return stops the walk. */
int cwl__walk(json_t *v, int nested, visit_fn fn, void *arg)
{
	const char *key;
	json_t *x;
	size_t i;
	int r;

	if (json_is_array(v)) {
		json_array_foreach(v, i, x)
			if ((r = cwl__walk(x, nested, fn, arg)))
				return r;
		return 0;
	}
	if (!json_is_object(v))
		return 0;
	if (!cwl_is_fileobj(v)) {
		json_object_foreach(v, key, x)
			if ((r = cwl__walk(x, nested, fn, arg)))
				return r;
		return 0;
	}
	if ((r = fn(v, nested, arg)))
		return r;
	if ((r = cwl__walk(json_object_get(v, "secondaryFiles"), nested, fn, arg)))
		return r;
	return cwl__walk(json_object_get(v, "listing"), 1, fn, arg);
}

/* Sets path, location and dirname of obj from path. */
int cwl__set_path(json_t *obj, const char *path)
{
	char *uri = cwl_path_to_uri(path), dir[2 * PATH_MAX];

	if (!uri)
		return -1;
	snprintf(dir, sizeof dir, "%s", path);
	json_object_set_new(obj, "path", json_string(path));
	json_object_set_new(obj, "location", json_string(uri));
	json_object_set_new(obj, "dirname", json_string(dirname(dir)));
	free(uri);
	return 0;
}

/* ------------------------------------------------------------ cwl-exec */

/* Sandbox-relative paths of the job become absolute. */
static int absolutize(json_t *obj, int nested, void *arg)
{
	const char *sandbox = arg;
	const char *rel = json_string_value(json_object_get(obj, "path"));
	char path[2 * PATH_MAX];

	if (!rel || rel[0] == '/')
		return 0;
	snprintf(path, sizeof path, "%s/%s", sandbox, rel);
	return cwl__set_path(obj, path);
}

/* Paths under out/ become relative to it. */
static int relativize(json_t *obj, int nested, void *arg)
{
	const char *outdir = arg;
	const char *path = json_string_value(json_object_get(obj, "path"));
	size_t n = strlen(outdir);
	char *rel;

	if (!path)
		return 0;
	if (!strcmp(path, outdir)) { /* a glob of "." */
		json_object_set_new(obj, "path", json_string("."));
		json_object_set_new(obj, "location", json_string("."));
		json_object_del(obj, "dirname");
		return 0;
	}
	if (strncmp(path, outdir, n) || path[n] != '/' ||
	    xy_check_sandbox_name(path + n + 1, NULL, 0) < 0) {
		fprintf(stderr, "xylem cwl-exec: output %s is outside %s\n",
			path, outdir);
		return -1;
	}
	rel = strdup(path + n + 1);
	json_object_set_new(obj, "path", json_string(rel));
	json_object_set_new(obj, "location", json_string(rel));
	json_object_del(obj, "dirname");
	free(rel);
	return 0;
}

/* The input an output updates in place, by its name in the sandbox,
 * which the submitting side maps back to its own path. */
static int updates_relative(json_t *obj, int nested, void *arg)
{
	const char *sandbox = arg;
	const char *u = json_string_value(json_object_get(obj,
							  "xylem:updates"));
	size_t n = strlen(sandbox);

	(void)nested;
	if (!u)
		return 0;
	if (strncmp(u, sandbox, n) || u[n] != '/')
		json_object_del(obj, "xylem:updates");
	else
		json_object_set_new(obj, "xylem:updates", json_string(u + n + 1));
	return 0;
}

static int load_runtime(const json_t *doc, const char *sandbox,
			struct cwl_runtime *rt, char *outdir, char *tmpdir)
{
	const json_t *j = json_object_get(doc, "runtime");

	snprintf(outdir, SUBDIR_MAX, "%s/out", sandbox);
	snprintf(tmpdir, SUBDIR_MAX, "%s/tmp", sandbox);
	if ((mkdir(outdir, 0755) < 0 && errno != EEXIST) ||
	    (mkdir(tmpdir, 0700) < 0 && errno != EEXIST))
		return -1;
	rt->outdir = outdir;
	rt->tmpdir = tmpdir;
	rt->cores = json_integer_value(json_object_get(j, "cores"));
	rt->ram = json_integer_value(json_object_get(j, "ram"));
	rt->outdir_size = json_integer_value(json_object_get(j, "outdirSize"));
	rt->tmpdir_size = json_integer_value(json_object_get(j, "tmpdirSize"));
	rt->time_limit = json_number_value(json_object_get(j, "timelimit"));
	return 0;
}

int xy_cli_cwl_exec(int argc, char **argv)
{
	char sandbox[PATH_MAX], outdir[SUBDIR_MAX], tmpdir[SUBDIR_MAX];
	char err[4096] = "";
	struct cwl_runtime rt;
	json_error_t je;
	json_t *doc, *job, *out;
	int status = CWL_PERMANENT_FAIL;

	int help = argc == 2 && (!strcmp(argv[1], "--help") ||
				 !strcmp(argv[1], "-h"));

	if (argc != 2 || help) {
		fprintf(argc == 2 ? stdout : stderr,
			"usage: xylem cwl-exec JOB.json\n\nRuns a CWL tool"
			" inside a task's sandbox; `xylem cwl` submits it."
			"\n");
		return argc == 2 ? XY_EXIT_OK : XY_EXIT_USAGE;
	}
	/* A small job document comes in the task's environment instead of
	 * as a file (cwlwf.c): one transfer less for each tool run. */
	if (access(argv[1], F_OK) != 0 && getenv(JOB_ENV))
		doc = json_loads(getenv(JOB_ENV), 0, &je);
	else
		doc = json_load_file(argv[1], 0, &je);
	if (!doc || !getcwd(sandbox, sizeof sandbox) ||
	    load_runtime(doc, sandbox, &rt, outdir, tmpdir) < 0) {
		fprintf(stderr, "xylem cwl-exec: %s: %s\n", argv[1],
			doc ? strerror(errno) : je.text);
		json_decref(doc);
		return CWL_PERMANENT_FAIL;
	}
	job = json_object_get(doc, "job");
	cwl__walk(job, 0, absolutize, sandbox);
	out = cwl_exec_tool(json_object_get(doc, "tool"), job, &rt, &status,
			    err, sizeof err);
	if (!out)
		fprintf(stderr, "xylem cwl-exec: %s\n", err);
	else if (cwl__walk(out, 0, relativize, outdir) ||
		 cwl__walk(out, 0, updates_relative, sandbox) ||
		 json_dump_file(out, RESULT_FILE, JSON_COMPACT) < 0)
		status = CWL_PERMANENT_FAIL;
	else
		status = CWL_OK;
	if (status == CWL_OK && getenv(RESULT_ENV)) {
		char *line = json_dumps(out, JSON_COMPACT);

		/* After whatever the tool wrote, on a line of its own. */
		fflush(stderr);
		if (line)
			printf("\n" RESULT_MARK "%s\n", line);
		fflush(stdout);
		free(line);
	}
	json_decref(out);
	json_decref(doc);
	return status;
}
