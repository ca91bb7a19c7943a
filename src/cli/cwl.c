/*
 * cwl.c: `xylem cwl TOOL [JOB]`, and `xylem cwl-exec`, which it runs as a
 * task (docs/cwl.md).
 *
 * `cwl`, on the manager's side, loads the tool and the job (src/cwl),
 * starts a manager and a local worker (or, with --manager, submits to a
 * standing manager through client.h), and runs the tool as one task: every
 * File and Directory of the job is a declared input mounted at
 * in/K/BASENAME, K numbering the job's inputs, with secondary files
 * beside their primary file; the tool, the job and the runtime
 * go in as the buffer cwl-job.json. The task's out/ directory and
 * cwl-result.json come back; the output files move to --outdir, and the
 * output object, its paths rewritten, is printed on stdout, which carries
 * nothing else. SIGINT and SIGTERM cancel the task, and the directories
 * are removed before it exits with 128 + the signal.
 *
 * `cwl-exec`, in the task's sandbox, makes the job's paths absolute, runs
 * the tool (cwl_exec_tool) with out/ as its output directory and tmp/ as
 * its temporary one, and writes the output object, paths relative to out/,
 * to cwl-result.json. Its exit status is the tool's CWL status.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "cli.h"
#include "client.h"
#include "cwl.h"
#include "cwl_int.h"
#include "local.h"
#include "log.h"
#include "progress.h"
#include "util.h"
#include "xylem.h"



static void usage(FILE *out)
{
	fprintf(out,
		"usage: xylem cwl [options] TOOL.cwl [JOB.yml|JOB.json]"
		" [--INPUT VALUE ...]\n\n"
		"Runs a CWL v1.2 CommandLineTool as a Xylem task on a local"
		" worker (or on a\nstanding manager's workers, --manager) and"
		" prints its output object as JSON\non stdout. A Workflow"
		" runs each tool it reaches as such a task, as soon as\nits"
		" inputs are ready; an ExpressionTool is evaluated here.\n"
		"TOOL may end in #ID to pick a process from a packed"
		" document.\nThe tool's inputs come from the job file, or"
		" as options after the tool\n(--text notes.txt --top 3; a"
		" path relative to the current directory; a\nboolean input"
		" alone is true; an array input once per item), over the job"
		"\nfile's. --outdir, --quiet, --manager and --secret-file may"
		" also follow the\ntool; after a lone --, every option is"
		" the tool's.\n\n"
		"options:\n"
		"  --outdir DIR       where output files go (default: the"
		" current directory)\n"
		"  --quiet            print only errors on stderr\n"
		"  --manager H:P      submit to the standing manager at H:P"
		" (xylem manager)\n"
		"                     instead of starting one\n"
		"  --tls-ca F         with --manager: verify it against the CA"
		" in F (its\n                     ca.crt; default: XYLEM_TLS_CA)\n"
		"  --no-tls           with --manager: plain TCP\n"
		"  --secret-file F    the shared secret (default: XYLEM_SECRET;"
		" with no\n"
		"                     --manager, else a fresh one)\n"
		"  --print-tool       print the loaded tool in canonical form"
		" and exit\n"
		"  --print-job        print the checked job object and exit\n"
		"  --prepare          print the task's job document and the"
		" inputs to stage,\n"
		"                     for a caller that submits the task"
		" itself, and exit\n"
		"  --scratch DIR      write File and Directory literals under"
		" DIR, which\n"
		"                     outlives the command (with --prepare)\n"
		"  --deliver DIR      move the outputs that such a task brought"
		" back to DIR\n"
		"                     (its out/ and " RESULT_FILE ") to --outdir,"
		" print the\n"
		"                     output object, and exit\n\n"
		"exit status: 0 success, 1 the tool failed (permanentFail),"
		" 2 usage,\n33 a feature this runner does not support, 75 a"
		" temporary failure,\n130 after SIGINT (143 after SIGTERM):"
		" the task cancelled, its directories\nremoved.\n"
		"Documentation: docs/cwl.md.\n");
}

static const struct option longopts[] = {
	{"outdir", required_argument, NULL, 'o'},
	{"quiet", no_argument, NULL, 'q'},
	{"secret-file", required_argument, NULL, 's'},
	{"manager", required_argument, NULL, 'm'},
	{"tls-ca", required_argument, NULL, 'C'},
	{"no-tls", no_argument, NULL, 'N'},
	{"print-tool", no_argument, NULL, 'T'},
	{"print-job", no_argument, NULL, 'J'},
	{"prepare", no_argument, NULL, 'P'},
	{"scratch", required_argument, NULL, 'S'},
	{"deliver", required_argument, NULL, 'D'},
	{"help", no_argument, NULL, 'h'},
	{NULL, 0, NULL, 0},
};

/* The run's options that still count after the tool, as users of other
 * runners type them (xylem cwl tool.cwl --outdir out job.yml). */
static const char run_options[] = "oqsmCN";

static int set_option(struct cwl_opts *o, int c, char *arg)
{
	switch (c) {
	case 'o': o->outdir = arg; break;
	case 'q': o->quiet = 1; break;
	case 's': o->secret_file = arg; break;
	case 'm': o->manager = arg; break;
	case 'C': o->tls_ca = arg; break;
	case 'N': o->no_tls = 1; break;
	case 'T': o->print_tool = 1; break;
	case 'J': o->print_job = 1; break;
	case 'P': o->prepare = 1; break;
	case 'S': o->scratch = arg; break;
	case 'D': o->deliver = arg; break;
	case 'h': usage(stdout); return XY_EXIT_OK;
	default:
		fprintf(stderr, "(see 'xylem cwl --help')\n");
		return XY_EXIT_USAGE;
	}
	return -1;
}

/* If argv[*i] is one of the run options, sets it (its value the next
 * argument or after '='), moves *i past it and returns 1; else 0; or a
 * usage error's exit status. */
static int run_option(struct cwl_opts *o, int argc, char **argv, int *i)
{
	const char *a = argv[*i] + 2, *eq = strchr(a, '=');
	size_t len = eq ? (size_t)(eq - a) : strlen(a);
	const struct option *opt;

	for (opt = longopts; opt->name; opt++)
		if (strchr(run_options, opt->val) &&
		    strlen(opt->name) == len && !strncmp(opt->name, a, len))
			break;
	if (!opt->name)
		return 0;
	if (opt->has_arg == no_argument)
		return set_option(o, opt->val, NULL) < 0 ? 1 : XY_EXIT_USAGE;
	if (!eq && *i + 1 >= argc) {
		fprintf(stderr, "xylem cwl: --%s wants a value\n", opt->name);
		return XY_EXIT_USAGE;
	}
	set_option(o, opt->val, eq ? (char *)eq + 1 : argv[++*i]);
	return 1;
}

/* After TOOL: a job file, the run options, and the tool's inputs
 * (--INPUT VALUE, read once the tool is loaded; all of them after a
 * lone "--"). The inputs are gathered in place at the front of this part
 * of argv (they never overtake the argument being read). */
static int after_tool(struct cwl_opts *o, int argc, char **argv, int i)
{
	int rc, inputs_only = 0;

	o->inputs = argv + i;
	for (; i < argc; i++) {
		if (!inputs_only && !strcmp(argv[i], "--")) {
			inputs_only = 1;
		} else if (!inputs_only && !strncmp(argv[i], "--", 2)) {
			rc = run_option(o, argc, argv, &i);
			if (rc > 1)
				return rc;
			if (rc == 0)
				o->inputs[o->n_inputs++] = argv[i];
		} else if (inputs_only || o->n_inputs) {
			o->inputs[o->n_inputs++] = argv[i];
		} else if (!o->job) {
			o->job = argv[i];
		} else {
			fprintf(stderr, "xylem cwl: '%s': a second job file (one"
				" job, or the tool's inputs as --INPUT VALUE)\n"
				"(see 'xylem cwl --help')\n", argv[i]);
			return XY_EXIT_USAGE;
		}
	}
	return -1;
}

static int parse_args(int argc, char **argv, struct cwl_opts *o)
{
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "+hq", longopts, NULL)) != -1)
		if ((rc = set_option(o, c, optarg)) >= 0)
			return rc;
	if (optind >= argc) {
		fprintf(stderr, "xylem cwl: no tool given\n");
		usage(stderr);
		return XY_EXIT_USAGE;
	}
	o->tool = argv[optind];
	return after_tool(o, argc, argv, optind + 1);
}

/* ------------------------------------------------------------- staging */

static const char *basename_of(const json_t *obj, const char *path)
{
	const char *base = json_string_value(json_object_get(obj, "basename"));
	const char *slash = strrchr(path, '/');

	return base && *base ? base : slash ? slash + 1 : path;
}

static const json_t *find_root(const struct staging *s, const char *path,
			       const char *base)
{
	const json_t *r;
	size_t i;

	json_array_foreach(s->roots, i, r)
		if (!strcmp(json_string_value(json_object_get(r, "path")), path) &&
		    !strcmp(json_string_value(json_object_get(r, "base")), base))
			return r;
	return NULL;
}

/* Stages obj at in/K/BASENAME, with K given or (0) a new one, as the
 * reference runner gives each input a directory of its own. Returns the
 * K used (that of an earlier staging of the same object, if any). */
static json_int_t stage_one(struct staging *s, const json_t *obj,
			    json_int_t k)
{
	const char *path = json_string_value(json_object_get(obj, "path"));
	const char *base, *holder;
	char name[PATH_MAX + 64];
	const json_t *r;

	if (!path || path[0] != '/') /* already a sandbox name (a temp's) */
		return k;
	base = basename_of(obj, path);
	if ((r = find_root(s, path, base)))
		return json_integer_value(json_object_get(r, "k"));
	if (!k)
		k = ++s->next_k;
	snprintf(name, sizeof name, "in/%lld/%s", (long long)k, base);
	holder = json_string_value(json_object_get(s->names, name));
	if (holder && strcmp(holder, path)) {
		k = ++s->next_k;
		snprintf(name, sizeof name, "in/%lld/%s", (long long)k, base);
	}
	json_object_set_new(s->names, name, json_string(path));
	json_array_append_new(s->roots, json_pack("{s:s, s:s, s:s, s:I}",
						  "path", path, "base", base,
						  "name", name, "k", k));
	return k;
}

/* A top-level object, and its secondary files beside it (same K), as
 * tools expect them. Objects inside a Directory's listing go with it. */
static int stage_root(json_t *obj, int nested, void *arg)
{
	struct staging *s = arg;
	const json_t *sec = json_object_get(obj, "secondaryFiles"), *x;
	json_int_t k;
	size_t i;

	if (nested)
		return 0;
	k = stage_one(s, obj, 0);
	json_array_foreach(sec, i, x)
		stage_one(s, x, k);
	return 0;
}

/* Rewrites an object's path to its sandbox name: its own, or that of the
 * staged directory that holds it. */
static int to_sandbox(json_t *obj, int nested, void *arg)
{
	struct staging *s = arg;
	const char *path = json_string_value(json_object_get(obj, "path"));
	const json_t *r;
	char name[2 * PATH_MAX];
	size_t i;

	if (!path)
		return 0;
	r = find_root(s, path, basename_of(obj, path));
	if (r) {
		snprintf(name, sizeof name, "%s",
			 json_string_value(json_object_get(r, "name")));
	} else {
		json_array_foreach(s->roots, i, r) {
			const char *root = json_string_value(
				json_object_get(r, "path"));
			size_t n = strlen(root);

			if (!strncmp(path, root, n) && path[n] == '/')
				break;
		}
		if (i == json_array_size(s->roots))
			return 0;
		snprintf(name, sizeof name, "%s%s",
			 json_string_value(json_object_get(r, "name")),
			 path + strlen(json_string_value(
				json_object_get(r, "path"))));
	}
	json_object_set_new(obj, "path", json_string(name));
	json_object_set_new(obj, "location", json_string(name));
	json_object_del(obj, "dirname");
	return 0;
}

/* The files and directories of the job and of the tool's own
 * requirements (InitialWorkDir listings may name files) to stage, as
 * [[manager path, sandbox name]]; their paths are rewritten to those
 * names. */
json_t *cwl__plan_inputs(json_t *job, json_t *tool)
{
	struct staging s = {json_array(), json_object(), 0};
	json_t *plan = json_array(), *r;
	size_t i;

	cwl__walk(job, 0, stage_root, &s);
	cwl__walk(json_object_get(tool, "requirements"), 0, stage_root, &s);
	cwl__walk(job, 0, to_sandbox, &s);
	cwl__walk(json_object_get(tool, "requirements"), 0, to_sandbox, &s);
	json_array_foreach(s.roots, i, r)
		json_array_append_new(plan, json_pack(
			"[O, O]", json_object_get(r, "path"),
			json_object_get(r, "name")));
	json_decref(s.roots);
	json_decref(s.names);
	return plan;
}

/* Declares the planned inputs as inputs of t. */
static int stage_inputs(struct cwl_run *r, struct xy_task *t,
			const json_t *plan, char *err, size_t errlen)
{
	const json_t *pair;
	size_t i;

	json_array_foreach(plan, i, pair) {
		const char *path = json_string_value(json_array_get(pair, 0));
		const char *name = json_string_value(json_array_get(pair, 1));
		struct xy_file *f = xy_manager_declare_file(
			r->m, path, XY_CACHE_WORKFLOW, err, errlen);

		if (!f || xy_task_add_input(t, f, name, err, errlen) < 0)
			return -1;
	}
	return 0;
}

json_t *cwl__runtime_json(const struct cwl_runtime *rt)
{
	return json_pack("{s:I, s:I, s:I, s:I, s:f}", "cores",
			 (json_int_t)rt->cores, "ram", (json_int_t)rt->ram,
			 "outdirSize", (json_int_t)rt->outdir_size,
			 "tmpdirSize", (json_int_t)rt->tmpdir_size,
			 "timelimit", rt->time_limit);
}

/* What the task reads as JOB_FILE: the tool, the staged job and the
 * runtime. Fills *plan with the inputs to stage. */
static json_t *task_doc(struct cwl_run *r, json_t **plan)
{
	json_t *job = json_deep_copy(r->job), *tool = json_deep_copy(r->tool);

	*plan = job && tool ? cwl__plan_inputs(job, tool) : NULL;
	if (!*plan) {
		json_decref(job);
		json_decref(tool);
		return NULL;
	}
	return json_pack("{s:o, s:o, s:o}", "tool", tool, "job", job,
			 "runtime", cwl__runtime_json(&r->rt));
}

/* The one task: `cwl-exec` on the staged job, out/ and the result back,
 * wherever it is submitted from (here, a standing manager, Python). */
const char *const cwl__task_outputs[2] = {"out", RESULT_FILE};

static struct xy_task *make_task(struct cwl_run *r, char *err, size_t errlen)
{
	struct xy_task *t = xy_task_create(r->command);
	json_t *plan = NULL, *doc = task_doc(r, &plan);
	char path[PATH_MAX], *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	struct xy_file *f;
	int ok = 0;

	if (!t || !text || stage_inputs(r, t, plan, err, errlen) < 0)
		goto out;
	f = xy_manager_declare_buffer(r->m, text, strlen(text), XY_CACHE_TASK,
				      err, errlen);
	if (!f || xy_task_add_input(t, f, JOB_FILE, err, errlen) < 0)
		goto out;
	for (int i = 0; i < 2; i++) {
		snprintf(path, sizeof path, "%s/%s", r->local.tmpdir,
			 cwl__task_outputs[i]);
		f = xy_manager_declare_file(r->m, path, XY_CACHE_TASK, err,
					    errlen);
		if (!f || xy_task_add_output(t, f, cwl__task_outputs[i], err,
					     errlen) < 0)
			goto out;
	}
	xy_task_set_cores(t, (int)r->rt.cores);
	xy_task_set_tag(t, r->o.tool);
	ok = 1;
out:
	free(text);
	json_decref(doc);
	json_decref(plan);
	if (!ok) {
		xy_task_delete(t);
		return NULL;
	}
	return t;
}

/* --prepare: what a caller that submits the task itself (the Python
 * package's CWLApp) needs: {"doc": JOB_FILE's content, "inputs": [[path,
 * sandbox name], ...], "command": ..., "outputs": [sandbox name, ...],
 * "cores": N}; it hands the directory the outputs come back to to
 * --deliver. */
static int print_prepared(struct cwl_run *r)
{
	json_t *plan = NULL, *doc = task_doc(r, &plan);
	json_t *all = doc ? json_pack("{s:o, s:o, s:s, s:[s,s], s:i}", "doc",
				      doc, "inputs", plan, "command",
				      TASK_COMMAND, "outputs",
				      cwl__task_outputs[0], cwl__task_outputs[1],
				      "cores", (int)r->rt.cores)
			  : NULL;

	if (!all) {
		json_decref(plan);
		fprintf(stderr, "xylem cwl: out of memory\n");
		return CWL_PERMANENT_FAIL;
	}
	json_dumpf(all, stdout, JSON_COMPACT);
	fputc('\n', stdout);
	json_decref(all);
	return -1;
}

/* ------------------------------------------------------------- results */

/* Moves src to dst, making dst's directory. A source already gone was
 * moved with the directory that held it. Across file systems rename fails
 * with EXDEV, and that is reported: put $TMPDIR on the file system of
 * --outdir. */
int cwl__move(const char *src, const char *dst, char *err, size_t errlen)
{
	char dir[2 * PATH_MAX];
	struct stat st;

	if (lstat(src, &st) < 0)
		return 0;
	snprintf(dir, sizeof dir, "%s", dst);
	if (xy_mkdir_p(dirname(dir)) < 0)
		return xy_fail(err, errlen, errno, "cannot make %s: %s", dir,
			       strerror(errno));
	if (S_ISDIR(st.st_mode))
		xy_rm_rf(dst);
	if (rename(src, dst) < 0)
		return xy_fail(err, errlen, errno, "cannot move %s to %s: %s",
			       src, dst, strerror(errno));
	return 0;
}

/* Moves every entry of directory from into to. */
static int move_all(const char *from, const char *to, char *err,
		    size_t errlen)
{
	char src[2 * PATH_MAX], dst[2 * PATH_MAX];
	struct dirent *e;
	DIR *d = opendir(from);
	int rc = 0;

	if (!d)
		return xy_fail(err, errlen, errno, "cannot read %s: %s", from,
			       strerror(errno));
	while (rc == 0 && (e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(src, sizeof src, "%s/%s", from, e->d_name);
		snprintf(dst, sizeof dst, "%s/%s", to, e->d_name);
		rc = cwl__move(src, dst, err, errlen);
	}
	closedir(d);
	return rc;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

struct relocation {
	const char *from, *to; /* the returned out/, and --outdir */
	char *err;
	size_t errlen;
};

static int relocate(json_t *obj, int nested, void *arg)
{
	struct relocation *rl = arg;
	const char *rel = json_string_value(json_object_get(obj, "path"));
	char src[2 * PATH_MAX], dst[2 * PATH_MAX];

	if (!rel) /* a literal that was never written */
		return 0;
	if (!strcmp(rel, ".")) /* the output directory itself */
		return move_all(rl->from, rl->to, rl->err, rl->errlen) < 0 ||
		       cwl__set_path(obj, rl->to) < 0 ? -1 : 0;
	/* The result came from the task: nothing it names may lead out of
	 * --outdir, whatever the tool wrote. */
	if (xy_check_sandbox_name(rel, rl->err, rl->errlen) < 0)
		return -1;
	snprintf(src, sizeof src, "%s/%s", rl->from, rel);
	snprintf(dst, sizeof dst, "%s/%s", rl->to, rel);
	if (cwl__move(src, dst, rl->err, rl->errlen) < 0 || cwl__set_path(obj, dst) < 0)
		return -1;
	return 0;
}

/* A real that holds an integer too large for jansson's integers (CWL
 * documents have them, e.g. 1e42 written out in full) prints as that
 * integer, from its shortest exact form, as the reference runner's
 * Python integers do. Other reals print as jansson prints them. */
static void print_real(FILE *out, double x)
{
	char buf[64], digits[32];
	json_t *j;
	int p, e, n = 0;

	if (x != floor(x) || fabs(x) < 1e16 || !isfinite(x)) {
		j = json_real(x);
		json_dumpf(j, out, JSON_ENCODE_ANY);
		json_decref(j);
		return;
	}
	for (p = 1; p <= 17; p++) {
		snprintf(buf, sizeof buf, "%.*e", p - 1, x);
		if (strtod(buf, NULL) == x)
			break;
	}
	for (const char *c = buf; *c && *c != 'e'; c++)
		if (isdigit((unsigned char)*c))
			digits[n++] = *c;
	digits[n] = '\0';
	e = atoi(strchr(buf, 'e') + 1);
	fprintf(out, "%s%s", x < 0 ? "-" : "", digits);
	for (int i = n - 1; i < e; i++)
		fputc('0', out);
}

/* The output object as JSON, indented by 4 with sorted keys. */
void cwl__print_value(FILE *out, const json_t *v, int depth)
{
	const char *key;
	size_t i, n = 0;

	if (json_is_real(v)) {
		print_real(out, json_real_value(v));
	} else if (json_is_array(v) && json_array_size(v)) {
		fputc('[', out);
		for (i = 0; i < json_array_size(v); i++) {
			fprintf(out, "%s\n%*s", i ? "," : "", 4 * (depth + 1), "");
			cwl__print_value(out, json_array_get(v, i), depth + 1);
		}
		fprintf(out, "\n%*s]", 4 * depth, "");
	} else if (json_is_object(v) && json_object_size(v)) {
		const char **keys = calloc(json_object_size(v), sizeof *keys);
		json_t *x;

		json_object_foreach((json_t *)v, key, x)
			keys[n++] = key;
		qsort(keys, n, sizeof *keys, by_name);
		fputc('{', out);
		for (i = 0; i < n; i++) {
			json_t *k = json_string(keys[i]);

			fprintf(out, "%s\n%*s", i ? "," : "", 4 * (depth + 1), "");
			json_dumpf(k, out, JSON_ENCODE_ANY);
			fputs(": ", out);
			cwl__print_value(out, json_object_get(v, keys[i]), depth + 1);
			json_decref(k);
		}
		fprintf(out, "\n%*s}", 4 * depth, "");
		free(keys);
	} else {
		json_dumpf(v, out, JSON_ENCODE_ANY);
	}
}

/* Reads the result that came back to back (RESULT_FILE, and out/), moves
 * its files to --outdir and prints it. */
static int deliver(struct cwl_run *r, const char *back, char *err,
		   size_t errlen)
{
	char path[PATH_MAX], from[PATH_MAX];
	json_error_t je;
	json_t *out;
	struct relocation rl = {from, r->outdir, err, errlen};

	snprintf(path, sizeof path, "%s/" RESULT_FILE, back);
	snprintf(from, sizeof from, "%s/out", back);
	out = json_load_file(path, 0, &je);
	if (!out)
		return xy_fail(err, errlen, EINVAL, "the task's result: %s",
			       je.text);
	if (xy_mkdir_p(r->outdir) < 0 || cwl__walk(out, 0, relocate, &rl)) {
		if (!*err)
			xy_fail(err, errlen, errno, "cannot use %s: %s",
				r->outdir, strerror(errno));
		json_decref(out);
		return -1;
	}
	cwl__print_value(stdout, out, 0);
	fputc('\n', stdout);
	fflush(stdout);
	json_decref(out);
	return 0;
}

/* What became of the task, wherever it ran. */
struct outcome {
	xy_result result;
	int code;
	const char *output;
	size_t len;
	const char *error;
};

/* The outcome as a CWL exit status; on success the outputs delivered. */
static int classify(struct cwl_run *r, const struct outcome *o)
{
	int code = o->code;
	char err[1024] = "";

	if (o->result == XY_RESULT_SUCCESS) {
		if (!r->o.quiet && o->len)
			fwrite(o->output, 1, o->len, stderr);
		if (deliver(r, r->local.tmpdir, err, sizeof err) == 0)
			return CWL_OK;
		fprintf(stderr, "xylem cwl: %s\n", err);
		return CWL_PERMANENT_FAIL;
	}
	if (o->len)
		fwrite(o->output, 1, o->len, stderr);
	if (o->result != XY_RESULT_APP_FAILED || code < 0) {
		fprintf(stderr, "xylem cwl: the task failed: %s: %s\n",
			xy_result_string(o->result), o->error);
		return CWL_PERMANENT_FAIL;
	}
	if (code == CWL_UNSUPPORTED || code == CWL_TEMPORARY_FAIL)
		return code;
	return CWL_PERMANENT_FAIL;
}

/* ----------------------------------------------------------------- cwl */

/* The local worker is this very program: TASK_COMMAND's search for
 * xylem-cwl-exec is done once, here, and the command left is one the
 * worker starts without /bin/sh (a process start less a tool run). */
static void local_command(struct cwl_run *r)
{
	char exe[PATH_MAX], *slash;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);

	snprintf(r->command, sizeof r->command, "%s", TASK_COMMAND);
	if (n <= 0)
		return;
	exe[n] = '\0';
	if (!(slash = strrchr(exe, '/')) || strchr(exe, '\''))
		return;
	snprintf(slash + 1, sizeof exe - (size_t)(slash + 1 - exe),
		 "xylem-cwl-exec");
	if (access(exe, X_OK) == 0)
		snprintf(r->command, sizeof r->command, "exec '%s' %s", exe,
			 JOB_FILE);
}

int cwl__start(struct cwl_run *r)
{
	struct xy_manager_options opt = {.host = "127.0.0.1", .name = "xylem-cwl"};
	int cores = xy_local_cores();

	if (xy_local_secret(&r->local, r->o.secret_file) < 0 ||
	    xy_local_manager(&r->local, &opt) < 0)
		return -1;
	r->m = r->local.m;
	local_command(r);
	r->local.n_workers = 1;
	r->local.worker_cores = cores > r->rt.cores ? cores : (int)r->rt.cores;
	return 0;
}

/* Waits for task id in slices, so that a signal is seen: the first
 * cancels the task (its worker kills it) and waits up to
 * XY_LOCAL_CANCEL_GRACE_S for it to come back; a second stops waiting.
 * NULL with EINTR then. */
static struct xy_task *wait_task(struct cwl_run *r, uint64_t id)
{
	double deadline = 0;
	struct xy_task *t;
	struct xy_progress p;

	/* The progress line of xylem run (progress.h), for the one task. */
	xy_progress_init(&p, stderr, !r->o.quiet);
	for (;;) {
		xy_progress_manager(&p, r->m, 1, 0);
		if (xy_local_stops() && !deadline) {
			fprintf(stderr, "xylem cwl: interrupted, cancelling"
				" the task\n");
			xy_manager_cancel(r->m, id);
			deadline = xy_mono() + XY_LOCAL_CANCEL_GRACE_S;
		}
		if (xy_local_stops() > 1 || (deadline && xy_mono() > deadline)) {
			errno = EINTR;
			return NULL;
		}
		t = xy_manager_wait(r->m, WAIT_SLICE_S);
		if (t || errno != ETIMEDOUT) {
			xy_progress_clear(&p);
			return t;
		}
	}
}

static int run_task(struct cwl_run *r)
{
	char err[2048] = "";
	struct xy_task *t = make_task(r, err, sizeof err);
	uint64_t id;
	int rc;

	if (!t || !(id = xy_manager_submit(r->m, t, err, sizeof err))) {
		fprintf(stderr, "xylem cwl: %s\n", err);
		xy_task_delete(t);
		return CWL_PERMANENT_FAIL;
	}
	if (xy_local_start_workers(&r->local) < 0)
		return CWL_PERMANENT_FAIL;
	t = wait_task(r, id);
	if (xy_local_stops()) {
		xy_task_delete(t);
		return xy_local_stop_status();
	}
	if (!t) {
		fprintf(stderr, "xylem cwl: waiting for the task: %s\n",
			strerror(errno));
		return CWL_PERMANENT_FAIL;
	}
	struct outcome o = {xy_task_result(t), xy_task_exit_code(t), NULL,
			    0, xy_task_error(t)};
	o.output = xy_task_output(t, &o.len);
	rc = classify(r, &o);
	xy_task_delete(t);
	return rc;
}

/* ------------------------------------------------------------- remote */

/* The same task for a standing manager: cwl-job.json is written to our
 * directory and sent as a file; the inputs are the plan's. */
static int remote_task(struct cwl_run *r, struct xy_client_task *ct,
		       struct xy_client_input **inputs, json_t **plan)
{
	static char job_path[PATH_MAX];
	json_t *doc = task_doc(r, plan), *pair;
	size_t i, n;

	snprintf(job_path, sizeof job_path, "%s/" JOB_FILE, r->local.tmpdir);
	if (!doc || json_dump_file(doc, job_path, JSON_COMPACT) < 0) {
		json_decref(doc);
		return -1;
	}
	json_decref(doc);
	n = json_array_size(*plan);
	if (!(*inputs = calloc(n + 1, sizeof **inputs)))
		return -1;
	json_array_foreach(*plan, i, pair) {
		(*inputs)[i].path = json_string_value(json_array_get(pair, 0));
		(*inputs)[i].name = json_string_value(json_array_get(pair, 1));
	}
	(*inputs)[n] = (struct xy_client_input){.path = job_path,
						 .name = JOB_FILE};
	*ct = (struct xy_client_task){
		.command = TASK_COMMAND,
		.tag = r->o.tool, .cores = (int)r->rt.cores,
		.inputs = *inputs, .n_inputs = (uint32_t)n + 1,
		.outputs = cwl__task_outputs, .n_outputs = 2};
	return 0;
}

/* Brings the outputs of a successful RESULT into our directory, where
 * deliver looks. */
static int remote_fetch(struct cwl_run *r, struct xy_client *c,
			const struct xy_msg_result *res, char *err,
			size_t errlen)
{
	char dest[PATH_MAX + 64];

	for (uint32_t i = 0; i < res->n_outputs; i++) {
		snprintf(dest, sizeof dest, "%s/%s", r->local.tmpdir,
			 res->outputs[i].name);
		xy_rm_rf(dest); /* a try cut short by a lost manager */
		if (xy_client_fetch(c, res, i, dest, err, errlen) < 0)
			return -1;
	}
	return 0;
}

/* One slice of wait_result: 0 with the result, -1 on failure, 1 to go
 * on waiting. */
static int wait_slice(struct xy_client *c, struct xy_msg_result *res,
		      char *err, size_t errlen)
{
	if (xy_local_stops()) {
		fprintf(stderr, "xylem cwl: interrupted, cancelling the task\n");
		return xy_fail(err, errlen, EINTR, "interrupted");
	}
	if (xy_client_wait(c, WAIT_SLICE_S, res, err, errlen) == 0)
		return 0;
	return errno == ETIMEDOUT ? 1 : -1;
}

/* Waits for the RESULT in slices, so that a signal is seen; closing the
 * connection then makes the manager cancel the task. -1 with EINTR. The
 * progress line shows the one task running meanwhile. */
static int wait_result(struct xy_client *c, struct xy_msg_result *res,
		       char *err, size_t errlen, int quiet)
{
	const struct xy_progress_counts one = {0, 1, 1, 0};
	struct xy_progress p;
	int rc;

	xy_progress_init(&p, stderr, !quiet);
	for (;;) {
		xy_progress_update(&p, &one, 0);
		rc = wait_slice(c, res, err, errlen);
		if (rc <= 0) {
			xy_progress_clear(&p);
			return rc;
		}
	}
}

/* Submits the task to the manager named by --manager, waits for it,
 * fetches its outputs and classifies it as run_task does. *lost is set
 * if the manager went away meanwhile (the connection reset, or an
 * output could not be fetched): the caller may try again, with err. */
static int remote_exchange(struct cwl_run *r, struct xy_client *c,
			   const uint8_t *session, int *lost, char *err,
			   size_t errlen)
{
	/* The task is key 1 of this run's session: submitted again to a
	 * manager that restarted, it is the same task (its RESULT comes
	 * again if it ended meanwhile), never a second run. */
	static const uint8_t key[XY_ID_LEN] = {1};
	struct xy_client_task ct;
	struct xy_client_input *inputs = NULL;
	struct xy_msg_result res;
	json_t *plan = NULL;
	int rc = CWL_PERMANENT_FAIL;

	*lost = 0;
	if (remote_task(r, &ct, &inputs, &plan) < 0)
		fprintf(stderr, "xylem cwl: cannot write %s: %s\n", JOB_FILE,
			strerror(errno));
	else if (xy_client_attach(c, session, 0, err, errlen) < 0 ||
		 !xy_client_submit_keyed(c, &ct, 1, key, err, errlen) ||
		 wait_result(c, &res, err, errlen, r->o.quiet) < 0) {
		if (xy_local_stops())
			rc = xy_local_stop_status();
		else if (errno == ECONNRESET)
			*lost = 1;
		else
			fprintf(stderr, "xylem cwl: %s: %s\n", r->o.manager,
				err);
	}
	else {
		struct outcome o = {(xy_result)res.result, res.exit_code,
				    res.output, res.output_len, res.message};
		if (o.result == XY_RESULT_SUCCESS &&
		    remote_fetch(r, c, &res, err, errlen) < 0)
			*lost = 1;
		else
			rc = xy_local_stops() ? xy_local_stop_status()
					: classify(r, &o);
		xy_client_result_free(&res);
	}
	free(inputs);
	json_decref(plan);
	return rc;
}

/* Submits the task to the manager at host:port, verified with tls, and
 * waits for it; a manager lost on the way (restarted, on its journal) is
 * reached again and the task submitted again, for up to XYLEM_RECONNECT
 * seconds (default 120): a manager that finished it answers from its
 * journal (docs/durability.md, "Clients"). */
static int remote_rounds(struct cwl_run *r, const char *host, int port,
			 SSL_CTX *tls)
{
	char err[1024] = "";
	struct xy_client *c;
	int rc;

	double window = xy_cli_reconnect_window("xylem cwl"), deadline = -1;
	char why[2048] = "";
	uint8_t session[XY_ID_LEN];
	if (RAND_bytes(session, sizeof session) != 1) {
		fprintf(stderr, "xylem cwl: no random bytes for a session\n");
		return CWL_PERMANENT_FAIL;
	}
	for (;;) {
		c = xy_client_connect(host, port, r->local.secret,
				      r->local.secret_len, tls, 30, err,
				      sizeof err);
		if (!c && deadline >= 0 && errno != EACCES &&
		    xy_mono() < deadline && !xy_local_stops()) {
			usleep(200000);
			continue;
		}
		if (!c) {
			fprintf(stderr, "xylem cwl: %s %s: %s\n", r->o.manager,
				errno == EACCES ? "refused the secret (check"
				" --secret-file)" : "cannot be reached", err);
			return CWL_PERMANENT_FAIL;
		}
		int lost;
		rc = remote_exchange(r, c, session, &lost, why, sizeof why);
		xy_client_close(c);
		if (!lost || xy_local_stops())
			return rc;
		if (deadline < 0)
			deadline = xy_mono() + window;
		if (xy_mono() >= deadline) {
			fprintf(stderr, "xylem cwl: %s: %s (gave up after "
				"%.0f s)\n", r->o.manager, why, window);
			return rc;
		}
		fprintf(stderr, "xylem cwl: lost the manager at %s (%s): "
			"submitting again once it is back\n", r->o.manager,
			why);
	}
}

int cwl__remote_setup(struct cwl_run *r, char *host, size_t len, int *port,
		      SSL_CTX **tls)
{
	if (xy_parse_hostport(r->o.manager, host, len, port) < 0 ||
	    *port <= 0) {
		fprintf(stderr, "xylem cwl: --manager '%s' is not HOST:PORT\n",
			r->o.manager);
		return XY_EXIT_USAGE;
	}
	if (!r->o.secret_file && !getenv("XYLEM_SECRET")) {
		fprintf(stderr, "xylem cwl: --manager needs the manager's"
			" secret: --secret-file F or XYLEM_SECRET\n");
		return XY_EXIT_USAGE;
	}
	if (xy_local_secret(&r->local, r->o.secret_file) < 0)
		return CWL_PERMANENT_FAIL;
	/* The connection's own warnings would repeat what we say. */
	xy_log_set_level(XY_LOG_ERROR);
	if (xy_cli_tls_client("xylem cwl", r->o.tls_ca, r->o.no_tls, tls) < 0)
		return XY_EXIT_USAGE;
	return -1;
}

static int run_remote(struct cwl_run *r)
{
	char host[256];
	int port, rc;
	SSL_CTX *tls = NULL;

	if ((rc = cwl__remote_setup(r, host, sizeof host, &port, &tls)) >= 0)
		return rc;
	rc = remote_rounds(r, host, port, tls);
	SSL_CTX_free(tls);
	return rc;
}

static int print_json(const json_t *v)
{
	json_dumpf(v, stdout, JSON_INDENT(4) | JSON_SORT_KEYS);
	fputc('\n', stdout);
	return XY_EXIT_OK;
}

static int complete_one(json_t *obj, int nested, void *arg)
{
	char *err = arg;

	if (!json_object_get(obj, "path")) /* a literal: exec writes it */
		return 0;
	return cwl_file_complete(obj, 0, err, 1024) < 0 ? -1 : 0;
}

/* Files and Directories named in the tool itself (an InitialWorkDir
 * listing may hold them) are relative to the tool's directory. */
static int tool_files(struct cwl_run *r, char *err)
{
	char dir[PATH_MAX], full[PATH_MAX], *hash;
	json_t *reqs = json_object_get(r->tool, "requirements");

	snprintf(dir, sizeof dir, "%s", r->o.tool);
	if ((hash = strchr(dir, '#')))
		*hash = '\0';
	if (!realpath(dir, full))
		return 0; /* the loader read it; nothing to resolve here */
	cwl_files_resolve(reqs, dirname(full));
	return cwl__walk(reqs, 0, complete_one, err) ? -1 : 0;
}

static int load(struct cwl_run *r, const char *scratch)
{
	char err[4096] = "";
	int status = CWL_OK;
	json_t *args = NULL;

	r->tool = cwl_load_tool(r->o.tool, &status, err, sizeof err);
	if (!r->tool) {
		fprintf(stderr, "xylem cwl: %s\n", err);
		return status == CWL_OK ? CWL_PERMANENT_FAIL : status;
	}
	if (tool_files(r, err) < 0) {
		fprintf(stderr, "xylem cwl: %s: %s\n", r->o.tool, err);
		return CWL_PERMANENT_FAIL;
	}
	if (r->o.print_tool)
		return print_json(r->tool) - 1; /* -1: done, exit 0 */
	if (r->o.n_inputs) {
		args = cwl_job_args(r->tool, r->o.n_inputs, r->o.inputs, err,
				    sizeof err);
		if (!args) {
			fprintf(stderr, "xylem cwl: %s\n", err);
			return CWL_PERMANENT_FAIL;
		}
	}
	r->job = cwl_load_job(r->tool, r->o.job, args, scratch, err,
			      sizeof err);
	json_decref(args);
	if (!r->job) {
		fprintf(stderr, "xylem cwl: %s\n", err);
		return CWL_PERMANENT_FAIL;
	}
	if (r->o.print_job)
		return print_json(r->job) - 1;
	if (cwl_resources(r->tool, r->job, &r->rt, err, sizeof err) < 0) {
		fprintf(stderr, "xylem cwl: %s\n", err);
		return CWL_PERMANENT_FAIL;
	}
	if (r->o.prepare && strcmp(json_string_value(json_object_get(
		r->tool, "class")), "CommandLineTool") != 0) {
		fprintf(stderr, "xylem cwl: --prepare takes a CommandLineTool;"
			" run a %s with xylem cwl itself\n",
			json_string_value(json_object_get(r->tool, "class")));
		return CWL_UNSUPPORTED;
	}
	return r->o.prepare ? print_prepared(r) : CWL_OK;
}

int xy_cli_cwl(int argc, char **argv)
{
	struct cwl_run r;
	char scratch[PATH_MAX];
	int rc;

	memset(&r, 0, sizeof r);
	r.local.who = "xylem cwl";
	rc = parse_args(argc, argv, &r.o);
	if (rc >= 0)
		return rc;
	xy_log_set_level(XY_LOG_WARN);
	if (!realpath(r.o.outdir ? r.o.outdir : ".", r.outdir)) {
		if (!r.o.outdir || xy_mkdir_p(r.o.outdir) < 0 ||
		    !realpath(r.o.outdir, r.outdir)) {
			fprintf(stderr, "xylem cwl: --outdir %s: %s\n",
				r.o.outdir ? r.o.outdir : ".", strerror(errno));
			return XY_EXIT_USAGE;
		}
	}
	if (r.o.deliver) {
		char err[1024] = "";
		if (deliver(&r, r.o.deliver, err, sizeof err) == 0)
			return XY_EXIT_OK;
		fprintf(stderr, "xylem cwl: %s\n", err);
		return CWL_PERMANENT_FAIL;
	}
	if (xy_local_tmpdir(&r.local, "xylem-cwl") < 0)
		return CWL_PERMANENT_FAIL;
	/* From here on a signal ends the command through the cleanup
	 * below, which removes the directories. */
	xy_local_catch_signals();
	if (r.o.scratch)
		snprintf(scratch, sizeof scratch, "%s", r.o.scratch);
	else
		snprintf(scratch, sizeof scratch, "%s/literals", r.local.tmpdir);
	if (xy_mkdir_p(scratch) < 0) {
		fprintf(stderr, "xylem cwl: cannot make %s: %s\n", scratch,
			strerror(errno));
		xy_local_free(&r.local);
		return CWL_PERMANENT_FAIL;
	}
	rc = load(&r, scratch);
	if (xy_local_stops())
		rc = xy_local_stop_status();
	else if (rc == -1)
		rc = XY_EXIT_OK;
	else if (rc == CWL_OK &&
		 strcmp(json_string_value(json_object_get(r.tool, "class")),
			"CommandLineTool") != 0)
		rc = cwl__run_workflow(&r);
	else if (rc == CWL_OK && r.o.manager)
		rc = run_remote(&r);
	else if (rc == CWL_OK)
		rc = cwl__start(&r) < 0 ? CWL_PERMANENT_FAIL : run_task(&r);
	xy_local_free(&r.local);
	json_decref(r.tool);
	json_decref(r.job);
	return rc;
}

