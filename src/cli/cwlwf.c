/*
 * cwlwf.c: `xylem cwl WORKFLOW JOB` (and an ExpressionTool), the
 * driver around the workflow engine of src/cwl/workflow.c (docs/cwl.md,
 * "Workflows"). The engine evaluates the workflow here, on the
 * submitting side; every CommandLineTool it reaches becomes a task like
 * the one `xylem cwl TOOL` submits (cwl.c), on the run's local manager
 * (started at the first task, so that a workflow of expressions starts
 * none) or on a standing manager (--manager). Each task has a directory
 * of its own under the run's temporary directory, t/N/: its result
 * object comes back there; its out/ stays on the worker as a temp (see
 * "temps" below: with --manager, a temp of the run's session named by
 * the path of that out/ here). The files the workflow's output object names
 * are moved (or, if they are not the run's own, copied) to --outdir at
 * the end. With --manager, the run is a session of the manager's
 * (docs/durability.md, "Sessions") and each task a keyed SUBMIT: a
 * manager lost mid-workflow is reached again and every task still
 * unanswered submitted again, the same task, never a second run.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdint.h>
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

#define WAIT_SLICE_S 0.25

/* One submitted tool. */
struct wtask {
	uint64_t id;
	unsigned n;          /* its directory is t/N */
	struct xy_file *out; /* local runs: its out/, a temp */
	char *tname; /* --manager: its out/'s temp in the session */
	const char *out_temps[2]; /* --manager: SUBMIT's, {tname, NULL} */
	struct xy_file *result; /* local runs: its RESULT_FILE, a temp */
	int fetched;         /* that temp brought here */
	char dir[PATH_MAX];
	json_t *plan;
	json_t *mounts; /* the temps it reads: [[wtask, name]] */
	struct xy_client_input *inputs; /* remote: what was offered */
	struct xy_client_task ct;       /* remote: what SUBMIT sends */
	char *tag;
	int answered; /* remote: its RESULT was taken (a second is dropped) */
	int fetch_tries; /* remote: its outputs could not be fetched */
	struct wtask *next;
};

struct wfrun {
	struct cwl_run *r;
	struct xy_client *c; /* --manager */
	struct wtask *tasks;
	json_t *by_n;        /* "N" -> its struct wtask, as an integer */
	json_t *mounts;      /* while one task is prepared: [[wtask, name]] */
	unsigned n;
	int workers;
	/* --manager: where it is, and this run's session there. */
	char host[256];
	int port;
	SSL_CTX *tls;
	uint8_t session[XY_ID_LEN];
	uint64_t seq; /* the last RESULT seq of the session taken in full */
	double window; /* XYLEM_RECONNECT: how long to wait for it */
	/* RESULTs of steps that came while temps were brought back. */
	struct stashed *stash, *stash_tail;
	uint64_t brought; /* bring-back tasks sent so far */
	/* The progress line (progress.h): jobs done of those known so far
	 * (a scatter's jobs become known as its step starts). */
	struct xy_progress prog;
	int64_t done, failed;
};

struct stashed {
	struct xy_msg_result res;
	struct stashed *next;
};

/* The ids of the tasks that bring a temp back (--manager): past any
 * step's number. */
#define BRING_ID (1ull << 62)

static struct wtask *task_find(struct wfrun *w, uint64_t id)
{
	struct wtask *t;

	for (t = w->tasks; t && t->id != id; t = t->next)
		;
	return t;
}

/* ------------------------------------------------------------- temps */

/* Each task's out/ stays on the worker as a temp (with --manager, the
 * session's temp named by its path here, brought back by bring_back): the task that
 * reads one of its files mounts the temp (at in/tK, K numbering the temps
 * it reads) and reads the file inside it; only the result object comes
 * back. The paths the engine sees are those the files would have in the
 * task's directory here, t/N/out/REL; a temp is fetched to that directory
 * when the engine must read a file itself, and for the workflow's
 * outputs. */

/* The task whose out/ holds path, and where path's part inside it
 * starts; NULL if path is not in a temp. */
static struct wtask *temp_of(struct wfrun *w, const char *path,
			     const char **rest)
{
	const char *tmp = w->r->local.tmpdir, *p;
	char key[32];
	struct wtask *t;
	size_t n = strlen(tmp);

	if (!path || strncmp(path, tmp, n) || strncmp(path + n, "/t/", 3))
		return NULL;
	p = path + n + 3;
	n = strspn(p, "0123456789");
	if (!n || n > 20 || strncmp(p + n, "/out", 4) ||
	    (p[n + 4] != '\0' && p[n + 4] != '/'))
		return NULL;
	snprintf(key, sizeof key, "%.*s", (int)n, p);
	t = (struct wtask *)(intptr_t)json_integer_value(
		json_object_get(w->by_n, key));
	if (!t || (!t->out && !t->tname))
		return NULL;
	*rest = p + n + 4;
	return t;
}

/* Rewrites an object in a temp to its name in the sandbox of the task
 * being prepared, adding the temp to w->mounts. */
static int to_mount(json_t *obj, int nested, void *arg)
{
	struct wfrun *w = arg;
	const char *path = json_string_value(json_object_get(obj, "path"));
	const char *rest, *name = NULL;
	struct wtask *t = temp_of(w, path, &rest);
	char buf[2 * PATH_MAX];
	const json_t *m;
	size_t i;

	(void)nested;
	if (!t)
		return 0;
	json_array_foreach(w->mounts, i, m)
		if ((struct wtask *)(intptr_t)json_integer_value(
			    json_array_get(m, 0)) == t)
			name = json_string_value(json_array_get(m, 1));
	if (!name) {
		snprintf(buf, sizeof buf, "in/t%zu",
			 json_array_size(w->mounts) + 1);
		json_array_append_new(w->mounts, json_pack(
			"[I, s]", (json_int_t)(intptr_t)t, buf));
		name = json_string_value(json_array_get(json_array_get(
			w->mounts, json_array_size(w->mounts) - 1), 1));
	}
	snprintf(buf, sizeof buf, "%s%s", name, rest);
	json_object_set_new(obj, "path", json_string(buf));
	json_object_set_new(obj, "location", json_string(buf));
	json_object_del(obj, "dirname");
	return 0;
}

/* The temps that localize brings here, collected first so that their
 * transfers run side by side (a scatter's outputs are hundreds). */
struct to_fetch {
	struct wfrun *w;
	struct xy_file **files;
	char **paths;
	struct wtask **tasks;
	size_t n, cap;
};

static int collect_one(json_t *obj, int nested, void *arg)
{
	struct to_fetch *tf = arg;
	const char *rest;
	struct wtask *t = temp_of(tf->w, json_string_value(json_object_get(
		obj, "path")), &rest);

	(void)nested;
	if (!t || t->fetched)
		return 0;
	if (tf->n == tf->cap) {
		size_t cap = tf->cap ? 2 * tf->cap : 16;
		struct xy_file **f = realloc(tf->files, cap * sizeof *f);
		if (f)
			tf->files = f;
		char **p = realloc(tf->paths, cap * sizeof *p);
		if (p)
			tf->paths = p;
		struct wtask **ts = realloc(tf->tasks, cap * sizeof *ts);
		if (ts)
			tf->tasks = ts;
		if (!f || !p || !ts)
			return -1;
		tf->cap = cap;
	}
	if (asprintf(&tf->paths[tf->n], "%s/out", t->dir) < 0)
		return -1;
	tf->files[tf->n] = t->out;
	tf->tasks[tf->n++] = t;
	t->fetched = 1; /* listed once; undone if the fetch fails */
	return 0;
}

static int bring_back(struct wfrun *w, struct wtask **ts, size_t n,
		      char *why, size_t whylen);

/* ops.localize: the temps that v's files live in, fetched. */
static int localize(void *arg, const json_t *v, char *err, size_t errlen)
{
	struct wfrun *w = arg;
	struct to_fetch tf = {.w = w};
	char why[1024] = "";
	int rc = 0;

	if (cwl__walk((json_t *)v, 0, collect_one, &tf)) {
		xy_fail(why, sizeof why, ENOMEM, "out of memory");
		rc = -1;
	} else if (tf.n && w->r->o.manager) {
		rc = bring_back(w, tf.tasks, tf.n, why, sizeof why);
	} else if (tf.n && xy_manager_fetch_all(w->r->m, tf.files,
				(const char *const *)tf.paths, tf.n, -1, why,
				sizeof why) < 0) {
		rc = -1;
	}
	if (rc < 0) {
		fprintf(stderr, "xylem cwl: fetching a step's outputs: %s\n",
			why);
		for (size_t i = 0; i < tf.n; i++)
			tf.tasks[i]->fetched = 0;
	}
	for (size_t i = 0; i < tf.n; i++)
		free(tf.paths[i]);
	free(tf.files);
	free(tf.paths);
	free(tf.tasks);
	if (rc < 0)
		return xy_fail(err, errlen, EIO, "cannot fetch a step's "
			       "outputs");
	return 0;
}

/* A directory for the next task, its staged job document, and the plan
 * of the inputs to stage. */
static struct wtask *prepare(struct wfrun *w, const json_t *tool,
			     const json_t *job, struct cwl_runtime *rt,
			     char **text, char *err, size_t errlen)
{
	struct wtask *t = calloc(1, sizeof *t);

	memset(rt, 0, sizeof *rt);
	json_t *jc = json_deep_copy(job), *tc = json_deep_copy(tool), *doc;

	*text = NULL;
	if (!t || !jc || !tc ||
	    cwl_resources(tool, job, rt, err, errlen) < 0)
		goto fail;
	snprintf(t->dir, sizeof t->dir, "%s/t/%u", w->r->local.tmpdir,
		 ++w->n);
	if (xy_mkdir_p(t->dir) < 0) {
		xy_fail(err, errlen, errno, "cannot make %s: %s", t->dir,
			strerror(errno));
		goto fail;
	}
	t->n = w->n;
	json_array_clear(w->mounts);
	cwl__walk(jc, 0, to_mount, w);
	t->plan = cwl__plan_inputs(jc, tc);
	t->mounts = json_deep_copy(w->mounts);
	doc = json_pack("{s:o, s:o, s:o}", "tool", tc, "job", jc, "runtime",
			cwl__runtime_json(rt));
	jc = tc = NULL;
	*text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	json_decref(doc);
	if (!t->plan || !*text) {
		xy_fail(err, errlen, ENOMEM, "out of memory");
		goto fail;
	}
	t->next = w->tasks;
	w->tasks = t;
	{
		char key[32];

		snprintf(key, sizeof key, "%u", t->n);
		json_object_set_new(w->by_n, key, json_integer(
			(json_int_t)(intptr_t)t));
	}
	return t;
fail:
	json_decref(jc);
	json_decref(tc);
	if (t) {
		json_decref(t->plan);
		json_decref(t->mounts);
	}
	free(*text);
	*text = NULL;
	free(t);
	return NULL;
}

static const char *tag_of(const json_t *tool)
{
	return cwl_short_name(json_string_value(json_object_get(tool, "id")));
}

static uint64_t submit_local(void *arg, const json_t *tool, const json_t *job,
			     char *err, size_t errlen)
{
	struct wfrun *w = arg;
	struct cwl_run *r = w->r;
	struct cwl_runtime rt;
	char *text = NULL, path[2 * PATH_MAX];
	struct wtask *wt;
	struct xy_task *t = NULL;
	struct xy_file *f;
	const json_t *pair;
	uint64_t id = 0;
	size_t i;

	if (!r->m && cwl__start(r) < 0) {
		xy_fail(err, errlen, errno, "cannot start a manager");
		return 0;
	}
	if (!(wt = prepare(w, tool, job, &rt, &text, err, errlen)) ||
	    !(t = xy_task_create(r->command)))
		goto out;
	json_array_foreach(wt->plan, i, pair) {
		f = xy_manager_declare_file(r->m, json_string_value(
			json_array_get(pair, 0)), XY_CACHE_WORKFLOW, err, errlen);
		if (!f || xy_task_add_input(t, f, json_string_value(
			json_array_get(pair, 1)), err, errlen) < 0)
			goto out;
	}
	json_array_foreach(w->mounts, i, pair) {
		struct wtask *from = (struct wtask *)(intptr_t)
			json_integer_value(json_array_get(pair, 0));

		if (xy_task_add_input(t, from->out, json_string_value(
			json_array_get(pair, 1)), err, errlen) < 0)
			goto out;
	}
	if (strlen(text) <= JOB_ENV_MAX) {
		/* In the TASK message itself: no transfer of its own. */
		if (xy_task_set_env(t, JOB_ENV, text) < 0) {
			xy_fail(err, errlen, errno, "cannot set %s", JOB_ENV);
			goto out;
		}
	} else {
		f = xy_manager_declare_buffer(r->m, text, strlen(text),
					      XY_CACHE_TASK, err, errlen);
		if (!f || xy_task_add_input(t, f, JOB_FILE, err, errlen) < 0)
			goto out;
	}
	/* out/ stays on the worker; the result object comes back in the
	 * task's output, or, if that lost it, from its temp. */
	wt->out = xy_manager_declare_temp(r->m, XY_CACHE_WORKFLOW, err,
					  errlen);
	f = wt->result = xy_manager_declare_temp(r->m, XY_CACHE_WORKFLOW, err,
						 errlen);
	(void)path;
	if (xy_task_set_env(t, RESULT_ENV, "1") < 0) {
		xy_fail(err, errlen, errno, "cannot set %s", RESULT_ENV);
		goto out;
	}
	if (!wt->out || !f ||
	    xy_task_add_output(t, wt->out, "out", err, errlen) < 0 ||
	    xy_task_add_output(t, f, RESULT_FILE, err, errlen) < 0)
		goto out;
	/* The task asks for at most the worker's cores; the tool still sees
	 * what it asked for as runtime.cores. */
	xy_task_set_cores(t, rt.cores < r->local.worker_cores ? (int)rt.cores
			  : r->local.worker_cores);
	xy_task_set_tag(t, tag_of(tool));
	if (!(id = xy_manager_submit(r->m, t, err, errlen)))
		goto out;
	t = NULL;
	wt->id = id;
	if (!w->workers && xy_local_start_workers(&r->local) < 0) {
		xy_fail(err, errlen, errno, "cannot start a worker");
		id = 0;
	}
	w->workers = 1;
out:
	xy_task_delete(t);
	free(text);
	return id;
}

/* SUBMIT of task wt, keyed by its number in this run's session. */
static uint64_t send_keyed(struct wfrun *w, struct wtask *wt, char *err,
			   size_t errlen)
{
	uint8_t key[XY_ID_LEN] = {0};

	for (int i = 0; i < 8; i++)
		key[XY_ID_LEN - 1 - i] = (uint8_t)((uint64_t)wt->n >> (8 * i));
	return xy_client_submit_keyed(w->c, &wt->ct, wt->id, key, err, errlen);
}

static uint64_t submit_remote(void *arg, const json_t *tool,
			      const json_t *job, char *err, size_t errlen)
{
	struct wfrun *w = arg;
	struct cwl_runtime rt;
	char *text = NULL, path[2 * PATH_MAX];
	struct wtask *wt = prepare(w, tool, job, &rt, &text, err, errlen);
	const json_t *pair;
	size_t i, n;
	FILE *fp;

	if (!wt)
		return 0;
	snprintf(path, sizeof path, "%s/" JOB_FILE, wt->dir);
	fp = fopen(path, "w");
	if (!fp || fputs(text, fp) < 0 || fclose(fp) < 0) {
		free(text);
		xy_fail(err, errlen, errno, "cannot write %s", path);
		return 0;
	}
	free(text);
	n = json_array_size(wt->plan);
	size_t nm = json_array_size(wt->mounts);
	if (!(wt->inputs = calloc(n + nm + 1, sizeof *wt->inputs)))
		return 0;
	json_array_foreach(wt->plan, i, pair) {
		wt->inputs[i].path = json_string_value(json_array_get(pair, 0));
		wt->inputs[i].name = json_string_value(json_array_get(pair, 1));
	}
	/* The out/ of earlier steps it reads: their temps, where they are. */
	json_array_foreach(wt->mounts, i, pair) {
		const struct wtask *from = (const struct wtask *)(intptr_t)
			json_integer_value(json_array_get(pair, 0));
		wt->inputs[n + i].temp = from->tname;
		wt->inputs[n + i].name = json_string_value(json_array_get(pair,
									  1));
	}
	n += nm;
	/* path lives as long as the task: keep it in the plan. */
	json_array_append_new(wt->plan, json_pack("[s,s]", path, JOB_FILE));
	wt->inputs[n].path = json_string_value(json_array_get(
		json_array_get(wt->plan, json_array_size(wt->plan) - 1), 0));
	wt->inputs[n].name = JOB_FILE;
	wt->tag = strdup(tag_of(tool) ? tag_of(tool) : "");
	/* Its out/ stays on the worker: a temp named by its path here. */
	if (!wt->tag || asprintf(&wt->tname, "%s/out", wt->dir) < 0) {
		wt->tname = NULL;
		return 0;
	}
	wt->out_temps[0] = wt->tname;
	wt->ct = (struct xy_client_task){
		.command = TASK_COMMAND, .tag = wt->tag,
		.cores = (int)rt.cores, .inputs = wt->inputs,
		.n_inputs = (uint32_t)n + 1, .outputs = cwl__task_outputs,
		.n_outputs = 2, .output_temps = wt->out_temps};
	/* The task's number is its id and its key in the session: the same
	 * on every connection. A lost connection is not a failure here: the
	 * task goes again with the others once the manager is back. */
	wt->id = wt->n;
	if (!send_keyed(w, wt, err, errlen) && errno != ECONNRESET)
		return 0;
	return wt->id;
}

/* ------------------------------------------------------------ results */

/* A returned result's paths (relative to out/) made absolute. */
static int absolute(json_t *obj, int nested, void *arg)
{
	const char *out = arg;
	const char *rel = json_string_value(json_object_get(obj, "path"));
	char path[3 * PATH_MAX];

	(void)nested;
	if (!rel)
		return 0;
	if (!strcmp(rel, "."))
		return cwl__set_path(obj, out);
	if (xy_check_sandbox_name(rel, NULL, 0) < 0) {
		fprintf(stderr, "xylem cwl: a task's output %s lies outside "
			"its directory\n", rel);
		return -1;
	}
	snprintf(path, sizeof path, "%s/%s", out, rel);
	return cwl__set_path(obj, path);
}

/* The path here of name (a sandbox name under a planned input or a
 * mounted temp of task t), or NULL. */
static char *path_here(const struct wtask *t, const char *name)
{
	const json_t *e;
	char *out = NULL;
	size_t i;

	json_array_foreach(t->plan, i, e) {
		const char *n = json_string_value(json_array_get(e, 1));
		size_t len = strlen(n);

		if (!strncmp(name, n, len) && (!name[len] || name[len] == '/') &&
		    asprintf(&out, "%s%s", json_string_value(json_array_get(
			    e, 0)), name + len) >= 0)
			return out;
	}
	json_array_foreach(t->mounts, i, e) {
		const struct wtask *from = (const struct wtask *)(intptr_t)
			json_integer_value(json_array_get(e, 0));
		const char *n = json_string_value(json_array_get(e, 1));
		size_t len = strlen(n);

		if (!strncmp(name, n, len) && (!name[len] || name[len] == '/') &&
		    asprintf(&out, "%s/out%s", from->dir, name + len) >= 0)
			return out;
	}
	return NULL;
}

/* An output that updates an input in place names the input's path here
 * (for the engine), not its name in the sandbox. */
static int updates_here(json_t *obj, int nested, void *arg)
{
	const char *u = json_string_value(json_object_get(obj,
							  "xylem:updates"));
	char *here = u ? path_here(arg, u) : NULL;

	(void)nested;
	if (here)
		json_object_set_new(obj, "xylem:updates", json_string(here));
	else if (u)
		json_object_del(obj, "xylem:updates");
	free(here);
	return 0;
}

/* Where the result line starts in a task's output, or NULL. */
static const char *result_line(const char *output, size_t len)
{
	const char *p, *last = NULL;

	for (p = output; p && p < output + len;
	     p = memmem(p + 1, (size_t)(output + len - p - 1), RESULT_MARK,
			strlen(RESULT_MARK)))
		if (!strncmp(p, RESULT_MARK, strlen(RESULT_MARK)))
			last = p;
	return last;
}

/* The output object of task t: from its output's result line, else from
 * its result file (fetched here first if it is a temp); NULL if it
 * cannot be read. */
static json_t *task_result(struct wfrun *w, struct wtask *t,
			   const char *line)
{
	char path[2 * PATH_MAX], out[2 * PATH_MAX], err[1024] = "";
	json_error_t je;
	json_t *v = NULL;

	snprintf(path, sizeof path, "%s/" RESULT_FILE, t->dir);
	snprintf(out, sizeof out, "%s/out", t->dir);
	if (line)
		v = json_loadb(line + strlen(RESULT_MARK),
			       strcspn(line, "\n") - strlen(RESULT_MARK), 0, &je);
	if (!v && t->result && xy_manager_fetch(w->r->m, t->result, path, -1,
						 err, sizeof err) < 0) {
		fprintf(stderr, "xylem cwl: a step's result: %s\n", err);
		return NULL;
	}
	if (!v && !(v = json_load_file(path, 0, &je))) {
		fprintf(stderr, "xylem cwl: a step's result: %s\n", je.text);
		return NULL;
	}
	if (cwl__walk(v, 0, absolute, out) || cwl__walk(v, 0, updates_here, t)) {
		json_decref(v);
		return NULL;
	}
	return v;
}

/* A task came back: its outputs to the engine, or its failure as a CWL
 * status (-1: it succeeded). */
static int task_back(struct wfrun *w, struct cwl_wf *wf, uint64_t id,
		     xy_result result, int code, const char *output,
		     size_t len, const char *error)
{
	struct wtask *t = task_find(w, id);
	const char *line = output ? result_line(output, len) : NULL;
	json_t *out;

	if (!t)
		return -1; /* not ours */
	w->done++;
	w->failed += result != XY_RESULT_SUCCESS;
	/* What the tool said, without the result line (and the line break
	 * cwl-exec put before it). */
	if (line)
		len = (size_t)(line - output) - (line > output);
	if (len && (result != XY_RESULT_SUCCESS || !w->r->o.quiet))
		fwrite(output, 1, len, stderr);
	if (result != XY_RESULT_SUCCESS) {
		if (result != XY_RESULT_APP_FAILED || code < 0)
			fprintf(stderr, "xylem cwl: a step's task failed: %s:"
				" %s\n", xy_result_string(result), error);
		else
			fprintf(stderr, "xylem cwl: a step failed (exit %d)\n",
				code);
		return code == CWL_UNSUPPORTED || code == CWL_TEMPORARY_FAIL
			       ? code : CWL_PERMANENT_FAIL;
	}
	if (!(out = task_result(w, t, line)))
		return CWL_PERMANENT_FAIL;
	cwl_wf_task_done(wf, id, out, CWL_OK);
	return -1;
}

/* Connects to --manager, attaches this run's session (with the last seq
 * taken) and submits again every task not answered. 0, or -1 with a
 * reason in err (errno ECONNRESET if the manager went away again). */
static int attach(struct wfrun *w, char *err, size_t errlen)
{
	struct cwl_run *r = w->r;
	struct wtask *t;

	w->c = xy_client_connect(w->host, w->port, r->local.secret,
				 r->local.secret_len, w->tls, 30, err, errlen);
	if (!w->c)
		return -1;
	if (xy_client_attach(w->c, w->session, w->seq, err, errlen) < 0)
		return -1;
	for (t = w->tasks; t; t = t->next)
		if (t->id && !t->answered && !send_keyed(w, t, err, errlen))
			return -1;
	return 0;
}

/* The manager went away (the connection closed): reached again every
 * 0.2 s for up to XYLEM_RECONNECT seconds (a manager started again on
 * its journal knows the session's tasks). -1 once it is back, else a
 * CWL status. err holds why it went. */
static int reconnect(struct wfrun *w, const char *why)
{
	double deadline = xy_mono() + w->window;
	char err[1024] = "";

	fprintf(stderr, "xylem cwl: lost the manager at %s (%s): submitting "
		"the unfinished steps again once it is back\n",
		w->r->o.manager, why);
	for (;;) {
		xy_client_close(w->c);
		w->c = NULL;
		if (xy_local_stops())
			return xy_local_stop_status();
		if (attach(w, err, sizeof err) == 0)
			return -1;
		if (errno == EACCES) {
			fprintf(stderr, "xylem cwl: %s refused the secret\n",
				w->r->o.manager);
			return CWL_PERMANENT_FAIL;
		}
		if (xy_mono() >= deadline) {
			fprintf(stderr, "xylem cwl: %s: %s (gave up after %.0f"
				" s)\n", w->r->o.manager, err, w->window);
			return CWL_PERMANENT_FAIL;
		}
		usleep(200000);
	}
}

/* The progress line for the workflow's jobs: done of those submitted so
 * far (w->n counts every job prepared), as xylem cwl TOOL shows its one
 * task. */
static void show_progress(struct wfrun *w, struct cwl_wf *wf)
{
	struct xy_progress_counts c;

	c.done = w->done;
	c.failed = w->failed;
	c.running = (int64_t)cwl_wf_running(wf);
	c.total = (int64_t)w->n > c.done ? (int64_t)w->n : c.done;
	xy_progress_update(&w->prog, &c, 0);
}

/* Waits for one task, here or on --manager; its status as task_back's. */
static int wait_one(struct wfrun *w, struct cwl_wf *wf)
{
	char err[1024] = "";

	for (;;) {
		show_progress(w, wf);
		if (xy_local_stops()) {
			xy_progress_clear(&w->prog);
			fprintf(stderr, "xylem cwl: interrupted, cancelling"
				" the workflow's tasks\n");
			return xy_local_stop_status();
		}
		if (!w->r->o.manager) {
			struct xy_task *t = xy_manager_wait(w->r->m,
							    WAIT_SLICE_S);
			size_t len = 0;
			const char *o;
			int rc;

			if (!t && errno == ETIMEDOUT)
				continue;
			if (!t) {
				fprintf(stderr, "xylem cwl: waiting for the "
					"tasks: %s\n", strerror(errno));
				return CWL_PERMANENT_FAIL;
			}
			xy_progress_clear(&w->prog);
			o = xy_task_output(t, &len);
			rc = task_back(w, wf, xy_task_id(t), xy_task_result(t),
				       xy_task_exit_code(t), o, len,
				       xy_task_error(t));
			xy_task_delete(t);
			return rc;
		}
		struct xy_msg_result res;
		struct wtask *t;
		int rc = -1;

		if (w->stash) {
			struct stashed *st = w->stash;
			if (!(w->stash = st->next))
				w->stash_tail = NULL;
			res = st->res;
			free(st);
		} else if (xy_client_wait(w->c, WAIT_SLICE_S, &res, err,
				   sizeof err) < 0) {
			if (errno == ETIMEDOUT)
				continue;
			if (errno == ECONNRESET) {
				xy_progress_clear(&w->prog);
				if ((rc = reconnect(w, err)) >= 0)
					return rc;
				continue;
			}
			xy_progress_clear(&w->prog);
			fprintf(stderr, "xylem cwl: %s: %s\n", w->r->o.manager,
				err);
			return CWL_PERMANENT_FAIL;
		}
		xy_progress_clear(&w->prog);
		t = task_find(w, res.id);
		if (!t || t->answered) { /* sent again: the first counts */
			xy_client_result_free(&res);
			continue;
		}
		if (res.result == XY_RESULT_SUCCESS) {
			for (uint32_t i = 0; i < res.n_outputs && rc < 0; i++) {
				char dest[2 * PATH_MAX];

				snprintf(dest, sizeof dest, "%s/%s", t->dir,
					 res.outputs[i].name);
				xy_rm_rf(dest);
				if (xy_client_fetch(w->c, &res, i, dest, err,
						    sizeof err) < 0)
					rc = 0;
			}
		}
		if (rc == 0 && ++t->fetch_tries >= 3) {
			fprintf(stderr, "xylem cwl: %s\n", err);
			rc = CWL_PERMANENT_FAIL;
		} else if (rc == 0) {
			/* The manager went away before its outputs came: its
			 * RESULT comes again once it is back (seq not
			 * acknowledged). */
			xy_client_result_free(&res);
			xy_client_close(w->c);
			w->c = NULL;
			if ((rc = reconnect(w, err)) >= 0)
				return rc;
			continue;
		}
		t->answered = 1;
		if (res.seq > w->seq)
			w->seq = res.seq;
		if (rc < 0)
			rc = task_back(w, wf, res.id, (xy_result)res.result,
			       res.exit_code, res.output, res.output_len,
			       res.message);
		xy_client_result_free(&res);
		return rc;
	}
}

/* ------------------------------------------------- temps via --manager */

/*
 * Steps' out/ that the engine must read here (a loadContents or
 * loadListing it evaluates, the workflow's outputs) are brought back by
 * one task for up to BRING_MAX of them: it mounts temp K at iK and
 * copies it to the output oK (`cp -RL iK oK`), which comes back to
 * t/N/out here. What comes meanwhile for the steps is kept for
 * wait_one.
 */
#define BRING_MAX 1000

/* The bring-back task of ts[0..n), sent as id. */
static int bring_send(struct wfrun *w, struct wtask **ts, size_t n,
		      uint64_t id, char *why, size_t whylen)
{
	struct xy_client_input *in = calloc(n, sizeof *in);
	char **names = calloc(2 * n, sizeof *names), *cmd = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&cmd, &len);
	int rc = -1;

	if (!in || !names || !f)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (asprintf(&names[2 * i], "i%zu", i) < 0 ||
		    asprintf(&names[2 * i + 1], "o%zu", i) < 0)
			goto out;
		in[i] = (struct xy_client_input){.name = names[2 * i],
						 .temp = ts[i]->tname};
		fprintf(f, "%scp -RL i%zu o%zu", i ? " && " : "", i, i);
	}
	if (fclose(f) != 0) {
		f = NULL;
		goto out;
	}
	f = NULL;
	const char **outs = calloc(n, sizeof *outs);
	if (!outs)
		goto out;
	for (size_t i = 0; i < n; i++)
		outs[i] = names[2 * i + 1];
	struct xy_client_task ct = {
		.command = cmd, .tag = "cwl-bring-back", .inputs = in,
		.n_inputs = (uint32_t)n, .outputs = outs,
		.n_outputs = (uint32_t)n};
	rc = w->c && xy_client_submit_keyed(w->c, &ct, id, NULL, why, whylen)
		? 0 : -1;
	free(outs);
out:
	if (f)
		fclose(f);
	if (rc < 0 && !*why)
		xy_fail(why, whylen, ENOMEM, "out of memory");
	for (size_t i = 0; names && i < 2 * n; i++)
		free(names[i]);
	free(names);
	free(in);
	free(cmd);
	return rc;
}

/* Keeps a step's RESULT that came while temps were brought back. */
static int stash(struct wfrun *w, struct xy_msg_result *res)
{
	struct stashed *st = calloc(1, sizeof *st);
	if (!st) {
		xy_client_result_free(res);
		return -1;
	}
	st->res = *res;
	if (w->stash_tail)
		w->stash_tail->next = st;
	else
		w->stash = st;
	w->stash_tail = st;
	return 0;
}

static int bring_back(struct wfrun *w, struct wtask **ts, size_t n,
		      char *why, size_t whylen)
{
	uint64_t first = BRING_ID + w->brought, left = 0;
	int rc = 0;

	for (size_t at = 0; at < n; at += BRING_MAX, left++)
		if (bring_send(w, ts + at, n - at < BRING_MAX ? n - at
			       : BRING_MAX, first + left, why, whylen) < 0)
			return -1;
	w->brought += left;
	uint64_t sent = left;
	while (left > 0 && rc == 0) {
		struct xy_msg_result res;
		if (xy_local_stops())
			return xy_fail(why, whylen, ECANCELED, "interrupted");
		if (xy_client_wait(w->c, WAIT_SLICE_S, &res, why, whylen) < 0) {
			if (errno == ETIMEDOUT)
				continue;
			return -1; /* the manager went: the run fails */
		}
		if (res.id < BRING_ID) {
			if (stash(w, &res) < 0)
				return xy_fail(why, whylen, ENOMEM,
					       "out of memory");
			continue;
		}
		if (res.id < first || res.id >= first + sent) {
			xy_client_result_free(&res);
			continue; /* an earlier bring-back's, given up on */
		}
		size_t at = (size_t)(res.id - first) * BRING_MAX;
		size_t k = n - at < BRING_MAX ? n - at : BRING_MAX;
		left--;
		if (res.result != XY_RESULT_SUCCESS || res.exit_code != 0 ||
		    res.n_outputs != k) {
			xy_fail(why, whylen, EIO, "steps' out/ could not be"
				" brought back: %s", *res.message ? res.message
				: xy_result_string((xy_result)res.result));
			rc = -1;
		}
		for (size_t i = 0; rc == 0 && i < k; i++) {
			char dest[2 * PATH_MAX], name[32];
			uint32_t j = 0;
			snprintf(name, sizeof name, "o%zu", i);
			while (j < res.n_outputs &&
			       strcmp(res.outputs[j].name, name))
				j++;
			snprintf(dest, sizeof dest, "%s/out", ts[at + i]->dir);
			xy_rm_rf(dest);
			if (j == res.n_outputs ||
			    xy_client_fetch(w->c, &res, j, dest, why,
					    whylen) < 0) {
				if (j == res.n_outputs)
					xy_fail(why, whylen, EIO, "no %s", name);
				rc = -1;
			}
		}
		xy_client_result_free(&res);
	}
	return rc;
}

/* The run's temps are named no more: the manager may let them go. */
static void drop_temps(struct wfrun *w)
{
	const char **names;
	uint32_t n = 0;
	char err[256];

	for (struct wtask *t = w->tasks; t; t = t->next)
		n += t->tname != NULL;
	if (!w->c || !n || !(names = calloc(n, sizeof *names)))
		return;
	n = 0;
	for (struct wtask *t = w->tasks; t; t = t->next)
		if (t->tname)
			names[n++] = t->tname;
	xy_client_drop(w->c, names, n, err, sizeof err);
	free(names);
}

/* ----------------------------------------------------------- delivery */

struct delivery {
	struct cwl_run *r;
	json_t *moved; /* source path -> path in --outdir */
	unsigned n;
};

/* A free name for base in --outdir: itself, else under a numbered
 * directory, so that the basename stays. */
static void free_name(struct delivery *d, const char *base, char *dst,
		      size_t len)
{
	struct stat st;

	snprintf(dst, len, "%s/%s", d->r->outdir, base);
	while (lstat(dst, &st) == 0)
		snprintf(dst, len, "%s/%u/%s", d->r->outdir, ++d->n, base);
}

static int deliver_one(json_t *obj, int nested, void *arg)
{
	struct delivery *d = arg;
	const char *path = json_string_value(json_object_get(obj, "path"));
	const char *base = json_string_value(json_object_get(obj, "basename"));
	const char *tmp = d->r->local.tmpdir, *k;
	char dst[3 * PATH_MAX], dir[3 * PATH_MAX], err[1024] = "";
	json_t *v;
	size_t n = strlen(tmp);

	(void)nested;
	if (!path)
		return 0;
	if ((v = json_object_get(d->moved, path)))
		return cwl__set_path(obj, json_string_value(v));
	json_object_foreach(d->moved, k, v) {
		size_t kn = strlen(k);

		if (!strncmp(path, k, kn) && path[kn] == '/') {
			snprintf(dst, sizeof dst, "%s%s", json_string_value(v),
				 path + kn);
			return cwl__set_path(obj, dst);
		}
	}
	if (!base)
		base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	if (cwl_check_basename(base, err, sizeof err) < 0) {
		fprintf(stderr, "xylem cwl: an output's basename: %s\n", err);
		return -1;
	}
	free_name(d, base, dst, sizeof dst);
	snprintf(dir, sizeof dir, "%s", dst);
	if (!strncmp(path, tmp, n) && path[n] == '/' ?
	    cwl__move(path, dst, err, sizeof err) < 0 :
	    (xy_mkdir_p(dirname(dir)) < 0 ||
	     cwl_copy_path(path, dst, err, sizeof err) < 0)) {
		fprintf(stderr, "xylem cwl: %s\n", err);
		return -1;
	}
	json_object_set_new(d->moved, path, json_string(dst));
	return cwl__set_path(obj, dst);
}

static int deliver(struct cwl_run *r, const json_t *outputs)
{
	struct delivery d = {r, json_object(), 0};
	json_t *out = json_deep_copy(outputs);
	int rc = 0;

	if (xy_mkdir_p(r->outdir) < 0 || cwl__walk(out, 0, deliver_one, &d))
		rc = -1;
	else {
		cwl__print_value(stdout, out, 0);
		fputc('\n', stdout);
		fflush(stdout);
	}
	json_decref(out);
	json_decref(d.moved);
	return rc;
}

/* ---------------------------------------------------------------- run */

static int connect_remote(struct wfrun *w, SSL_CTX **tls)
{
	struct cwl_run *r = w->r;
	char err[1024] = "";
	int rc;

	if ((rc = cwl__remote_setup(r, w->host, sizeof w->host, &w->port,
				    tls)) >= 0)
		return rc;
	w->tls = *tls;
	w->window = xy_cli_reconnect_window("xylem cwl");
	if (RAND_bytes(w->session, sizeof w->session) != 1) {
		fprintf(stderr, "xylem cwl: no random bytes for a session\n");
		return CWL_PERMANENT_FAIL;
	}
	if (attach(w, err, sizeof err) < 0) {
		fprintf(stderr, "xylem cwl: %s %s: %s\n", r->o.manager,
			errno == EACCES ? "refused the secret (check "
			"--secret-file)" : "cannot be reached", err);
		return CWL_PERMANENT_FAIL;
	}
	return -1;
}

static int drive(struct wfrun *w, struct cwl_wf *wf)
{
	char err[4096] = "";
	int status, rc;

	for (;;) {
		err[0] = '\0';
		rc = cwl_wf_advance(wf, &status, err, sizeof err);
		if (rc < 0) {
			fprintf(stderr, "xylem cwl: %s\n", err);
			return status;
		}
		if (rc == 1)
			return localize(w, cwl_wf_outputs(wf), err,
					sizeof err) < 0 ||
			       deliver(w->r, cwl_wf_outputs(wf)) < 0 ?
				CWL_PERMANENT_FAIL : CWL_OK;
		if (!cwl_wf_running(wf)) {
			fprintf(stderr, "xylem cwl: the workflow is stuck: no "
				"step can run\n");
			return CWL_PERMANENT_FAIL;
		}
		rc = wait_one(w, wf);
		xy_progress_clear(&w->prog);
		if (rc >= 0)
			return rc;
	}
}

int cwl__run_workflow(struct cwl_run *r)
{
	struct wfrun w = {.r = r, .by_n = json_object(),
			  .mounts = json_array()};
	char scratch[PATH_MAX];
	struct cwl_wf_ops ops = {r->o.manager ? submit_remote : submit_local,
				 &w, scratch, localize};
	struct cwl_wf *wf;
	SSL_CTX *tls = NULL;
	int rc = -1;

	snprintf(scratch, sizeof scratch, "%s/literals", r->local.tmpdir);
	xy_progress_init(&w.prog, stderr, !r->o.quiet);
	if (r->o.manager && (rc = connect_remote(&w, &tls)) >= 0) {
		SSL_CTX_free(tls);
		return rc;
	}
	if (!(wf = cwl_wf_new(r->tool, r->job, &ops))) {
		fprintf(stderr, "xylem cwl: out of memory\n");
		rc = CWL_PERMANENT_FAIL;
	} else {
		rc = drive(&w, wf);
	}
	cwl_wf_free(wf);
	drop_temps(&w);
	xy_client_close(w.c);
	SSL_CTX_free(tls);
	while (w.stash) {
		struct stashed *st = w.stash;
		w.stash = st->next;
		xy_client_result_free(&st->res);
		free(st);
	}
	while (w.tasks) {
		struct wtask *t = w.tasks;

		w.tasks = t->next;
		json_decref(t->plan);
		json_decref(t->mounts);
		free(t->inputs);
		free(t->tag);
		free(t->tname);
		free(t);
	}
	json_decref(w.by_n);
	json_decref(w.mounts);
	if (xy_local_stops())
		rc = xy_local_stop_status();
	return rc;
}
