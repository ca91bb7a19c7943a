/*
 * workflow.c: the workflow engine (cwl.h, "workflow"; docs/cwl.md,
 * "Workflows"). It runs on the submitting side and never blocks: each
 * call to cwl_wf_advance evaluates whatever is ready and hands each
 * CommandLineTool to ops->submit as a task; the caller waits for the
 * tasks and reports them with cwl_wf_task_done.
 *
 * A running Workflow is a frame: its state maps each source ("INPUT",
 * "STEP/OUTPUT") to its value once known. A step starts when all its
 * sources are in the state: its input object is made from the links,
 * split by scatter into jobs, each given its valueFrom values and its
 * `when`; each job runs its process (a task, an ExpressionTool evaluated
 * here, or a child frame). When every job of a step is done, its outputs
 * (arrays for a scatter) enter the state. A frame whose steps are all
 * done gives its outputs to the job that ran it. Work moves through two
 * queues (frames to scan, jobs done) in a loop, so that a long chain of
 * steps is iteration, not recursion.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cwl.h"
#include "util.h"

struct frame;
struct step;

struct job {
	struct step *step;  /* NULL: the root job */
	size_t index;       /* in its step */
	json_t *proc;       /* the process, requirements inherited */
	json_t *inputs;     /* its input object */
	uint64_t handle;    /* a submitted tool, or 0 */
	json_t *outputs;    /* once done; null for a skipped job */
	struct job *next;   /* every job, for lookup and freeing */
	struct job *next_done;
};

struct step {
	struct frame *f;
	const json_t *def;
	int started;
	size_t n, left;
	struct job **jobs;
	json_t *dims; /* nested_crossproduct's shape, or NULL */
};

struct frame {
	const json_t *wf;   /* the effective workflow (its job's proc) */
	struct job *owner;
	json_t *state;
	struct step *steps;
	size_t n_steps, left;
	struct cwl_expr *x; /* for valueFrom, when and the outputs */
	int queued, finished;
	struct frame *next_q, *next;
};

struct cwl_wf {
	struct cwl_wf_ops ops;
	struct job *root, *jobs, *done_head, *done_tail;
	struct frame *frames, *queue;
	size_t running;
	json_t *updated; /* path -> the object a tool updated it into */
	int finished;
	int status; /* why it failed, if not CWL_PERMANENT_FAIL */
};

/* ------------------------------------------------------------ helpers */

static void merge_into(json_t *dst, const json_t *src)
{
	if (json_is_object(src))
		json_object_update(dst, (json_t *)src);
}

/* run with requirements and hints of the parent workflow and the step
 * under its own: the most specific wins (CWL 1.2, "Requirements and
 * hints"). */
static json_t *effective(const json_t *parent, const json_t *step,
			 const json_t *run)
{
	json_t *p = json_deep_copy(run), *r = json_object(), *h = json_object();
	const char *keys[2] = {"requirements", "hints"};
	json_t *m[2] = {r, h};

	for (int i = 0; i < 2; i++) {
		merge_into(m[i], json_object_get(parent, keys[i]));
		merge_into(m[i], json_object_get(step, keys[i]));
		merge_into(m[i], json_object_get(run, keys[i]));
		json_object_set_new(p, keys[i], m[i]);
	}
	return p;
}

static struct job *job_new(struct cwl_wf *w, struct step *s, size_t index,
			   json_t *proc, json_t *inputs)
{
	struct job *j = calloc(1, sizeof *j);

	if (!j) {
		json_decref(proc);
		json_decref(inputs);
		return NULL;
	}
	j->step = s;
	j->index = index;
	j->proc = proc;
	j->inputs = inputs;
	j->next = w->jobs;
	w->jobs = j;
	return j;
}

static void job_done(struct cwl_wf *w, struct job *j, json_t *outputs)
{
	j->outputs = outputs ? outputs : json_null();
	if (w->done_tail)
		w->done_tail->next_done = j;
	else
		w->done_head = j;
	w->done_tail = j;
}

static void frame_queue(struct cwl_wf *w, struct frame *f)
{
	if (f->queued)
		return;
	f->queued = 1;
	f->next_q = w->queue;
	w->queue = f;
}

static const char *cls_of(const json_t *proc)
{
	const char *c = json_string_value(json_object_get(proc, "class"));

	return c ? c : "";
}

/* A frame for workflow job j, its state holding the workflow's inputs. */
static int frame_new(struct cwl_wf *w, struct job *j, char *err,
		     size_t errlen)
{
	struct frame *f = calloc(1, sizeof *f);
	const json_t *steps = json_object_get(j->proc, "steps"), *p;
	size_t i;

	if (!f)
		return xy_fail(err, errlen, ENOMEM, "out of memory");
	f->next = w->frames;
	w->frames = f;
	f->wf = j->proc;
	f->owner = j;
	f->state = json_object();
	json_array_foreach(json_object_get(j->proc, "inputs"), i, p) {
		const char *id = json_string_value(json_object_get(p, "id"));
		const json_t *v = json_object_get(j->inputs, id);

		json_object_set(f->state, id, v ? (json_t *)v : json_null());
	}
	f->n_steps = f->left = json_array_size(steps);
	f->steps = calloc(f->n_steps + 1, sizeof *f->steps);
	if (!f->steps || !(f->x = cwl_expr_new(j->proc, err, errlen)))
		return -1;
	for (i = 0; i < f->n_steps; i++) {
		f->steps[i].f = f;
		f->steps[i].def = json_array_get(steps, i);
	}
	frame_queue(w, f);
	return 0;
}

/* 1 if reading the inputs of proc reads files (contents, listings). */
static int reads_files(const json_t *v)
{
	const char *k;
	json_t *x;
	size_t i;

	if (json_is_array(v)) {
		json_array_foreach(v, i, x)
			if (reads_files(x))
				return 1;
	} else if (json_is_object(v)) {
		json_object_foreach((json_t *)v, k, x)
			if ((!strcmp(k, "loadContents") && json_is_true(x)) ||
			    (!strcmp(k, "loadListing") && json_is_string(x) &&
			     strcmp(json_string_value(x), "no_listing")) ||
			    reads_files(x))
				return 1;
	}
	return 0;
}

static int localize(struct cwl_wf *w, const json_t *v, char *err,
		    size_t errlen)
{
	return w->ops.localize ? w->ops.localize(w->ops.arg, v, err, errlen)
			       : 0;
}

/* Starts job j: a task, an evaluation here, or a frame. Its inputs are
 * checked against the process's and completed first (defaults, Files),
 * except the root's, which cwl_load_job did. */
static int job_run(struct cwl_wf *w, struct job *j, char *err, size_t errlen)
{
	const char *cls = cls_of(j->proc);

	if (j->step) {
		char *dir = NULL, *id = cwl_uri_to_path(json_string_value(
			json_object_get(j->proc, "id")));
		json_t *in;

		if (id && strrchr(id, '/'))
			*strrchr(id, '/') = '\0';
		dir = id;
		if ((reads_files(json_object_get(j->proc, "inputs")) ||
		     cwl_requirement(j->proc, "LoadListingRequirement",
				     NULL)) &&
		    localize(w, j->inputs, err, errlen) < 0) {
			free(dir);
			return -1;
		}
		in = cwl_inputs_fill(j->proc, j->inputs, dir, err, errlen);
		free(dir);
		if (!in || cwl__inputs_files(j->proc, in, w->ops.scratch, 1,
					     err, errlen) < 0) {
			json_decref(in);
			return -1;
		}
		json_decref(j->inputs);
		j->inputs = in;
	}
	if (!strcmp(cls, "Workflow"))
		return frame_new(w, j, err, errlen);
	if (!strcmp(cls, "ExpressionTool")) {
		json_t *out = cwl__exprtool_run(j->proc, j->inputs,
						w->ops.scratch, err, errlen);
		if (!out)
			return -1;
		job_done(w, j, out);
		return 0;
	}
	j->handle = w->ops.submit(w->ops.arg, j->proc, j->inputs, err, errlen);
	if (!j->handle)
		return -1;
	w->running++;
	return 0;
}

/* ------------------------------------------------- updates in place */

/* Takes the "xylem:updates" marks off a tool's outputs, remembering
 * each: the input at that path now reads as this object. */
static void note_updates(struct cwl_wf *w, json_t *v)
{
	const char *k, *u;
	json_t *x;
	size_t i;

	if (json_is_array(v)) {
		json_array_foreach(v, i, x)
			note_updates(w, x);
	} else if (json_is_object(v)) {
		if ((u = json_string_value(json_object_get(v, "xylem:updates")))) {
			char *old = strdup(u);

			json_object_del(v, "xylem:updates");
			if (old)
				json_object_set_new(w->updated, old,
						    json_deep_copy(v));
			free(old);
		}
		json_object_foreach(v, k, x)
			note_updates(w, x);
	}
}

/* v with every File or Directory that a tool has since updated in place
 * (InplaceUpdateRequirement) replaced by what it became. */
static void apply_updates(const struct cwl_wf *w, json_t *v)
{
	const char *k;
	json_t *x, *to;
	size_t i;

	if (!json_object_size(w->updated))
		return;
	if (json_is_array(v)) {
		json_array_foreach(v, i, x) {
			to = cwl_is_fileobj(x) ? json_object_get(w->updated,
				json_string_value(json_object_get(x, "path"))
				?: "") : NULL;
			if (to)
				json_array_set_new(v, i, json_deep_copy(to));
			else
				apply_updates(w, x);
		}
	} else if (json_is_object(v)) {
		json_object_foreach(v, k, x) {
			to = cwl_is_fileobj(x) ? json_object_get(w->updated,
				json_string_value(json_object_get(x, "path"))
				?: "") : NULL;
			if (to)
				json_object_set_new(v, k, json_deep_copy(to));
			else
				apply_updates(w, x);
		}
	}
}

/* ------------------------------------------------------------- steps */

static int step_ready(const struct step *s)
{
	const json_t *p, *src;
	size_t i, k;

	json_array_foreach(json_object_get(s->def, "in"), i, p)
		json_array_foreach(json_object_get(p, "source"), k, src)
			if (!json_object_get(s->f->state,
					     json_string_value(src)))
				return 0;
	return 1;
}

/* valueFrom of each step input, with inputs the job's values before any
 * valueFrom and self the input's own; then `when`. Returns 1 to run,
 * 0 to skip, -1 on error. */
static int job_values(struct cwl_wf *w, struct step *s, json_t *io,
		      char *err, size_t errlen)
{
	json_t *before = json_deep_copy(io), *v;
	const json_t *p, *when = json_object_get(s->def, "when");
	const char *vf;
	size_t i;
	int rc = 1;

	if (reads_files(json_object_get(s->def, "in")) &&
	    localize(w, before, err, errlen) < 0)
		goto fail;
	json_array_foreach(json_object_get(s->def, "in"), i, p) {
		const char *id = json_string_value(json_object_get(p, "id"));
		json_t *self = json_object_get(before, id);

		if (json_is_true(json_object_get(p, "loadContents")) &&
		    cwl_is_class(self, "File") &&
		    !json_object_get(self, "contents") &&
		    cwl_file_load_contents(self, err, errlen) < 0)
			goto fail;
		if (!(vf = json_string_value(json_object_get(p, "valueFrom")))) {
			json_object_set(io, id, self ? self : json_null());
			continue;
		}
		v = cwl_expr_eval(s->f->x, vf, before, self ? self :
				  json_null(), NULL, err, errlen);
		if (!v)
			goto fail;
		json_object_set_new(io, id, v);
	}
	if (json_is_string(when)) {
		v = cwl_expr_eval(s->f->x, json_string_value(when), io, NULL,
				  NULL, err, errlen);
		if (!v)
			goto fail;
		if (!json_is_boolean(v)) {
			json_decref(v);
			xy_fail(err, errlen, EINVAL, "step '%s': 'when' must "
				"give true or false", json_string_value(
					json_object_get(s->def, "id")));
			goto fail;
		}
		rc = json_is_true(v);
		json_decref(v);
	}
	json_decref(before);
	return rc;
fail:
	json_decref(before);
	return -1;
}

static int step_start(struct cwl_wf *w, struct step *s, char *err,
		      size_t errlen)
{
	const json_t *scatter = json_object_get(s->def, "scatter"), *p;
	json_t *io = json_object(), *list, *v;
	size_t i;

	s->started = 1;
	json_array_foreach(json_object_get(s->def, "in"), i, p) {
		v = cwl__link_value(s->f->state, p, "source", err, errlen);
		if (!v)
			goto fail;
		json_object_set_new(io, json_string_value(json_object_get(p,
							"id")), v);
	}
	apply_updates(w, io);
	if (json_array_size(scatter))
		list = cwl__scatter_jobs(io, scatter, json_string_value(
			json_object_get(s->def, "scatterMethod")), &s->dims,
			err, errlen);
	else
		list = json_pack("[O]", io);
	if (!list)
		goto fail;
	s->n = s->left = json_array_size(list);
	s->jobs = calloc(s->n + 1, sizeof *s->jobs);
	for (i = 0; s->jobs && i < s->n; i++) {
		json_t *in = json_deep_copy(json_array_get(list, i));
		int run = job_values(w, s, in, err, errlen);
		struct job *j;

		if (run < 0) {
			json_decref(in);
			goto fail_list;
		}
		j = job_new(w, s, i, effective(s->f->wf, s->def,
					       json_object_get(s->def, "run")),
			    in);
		if (!j)
			goto fail_list;
		s->jobs[i] = j;
		if (!run)
			job_done(w, j, NULL);
		else if (job_run(w, j, err, errlen) < 0)
			goto fail_list;
	}
	json_decref(list);
	json_decref(io);
	if (!s->jobs)
		return xy_fail(err, errlen, ENOMEM, "out of memory");
	if (s->n == 0) { /* an empty scatter: done at once */
		s->left = 1;
		s->n = 0;
		return 1;
	}
	return 0;
fail_list:
	json_decref(list);
fail:
	json_decref(io);
	if (!strstr(err, "step '")) {
		char tmp[1024];

		snprintf(tmp, sizeof tmp, "%s", err);
		snprintf(err, errlen, "step '%s': %s", json_string_value(
			json_object_get(s->def, "id")), tmp);
	}
	return -1;
}

/* Every job of s is done: its outputs enter the frame's state. */
static void step_finish(struct cwl_wf *w, struct step *s)
{
	const char *sid = json_string_value(json_object_get(s->def, "id"));
	const json_t *o;
	char key[1024];
	size_t i, k;

	json_array_foreach(json_object_get(s->def, "out"), i, o) {
		const char *oid = json_string_value(o);
		json_t *v;

		if (json_array_size(json_object_get(s->def, "scatter"))) {
			json_t *flat = json_array();

			for (k = 0; k < s->n; k++) {
				json_t *x = json_object_get(s->jobs[k]->outputs,
							    oid);
				json_array_append(flat, x ? x : json_null());
			}
			v = cwl__scatter_gather(flat, s->dims);
			json_decref(flat);
		} else {
			v = json_object_get(s->jobs[0]->outputs, oid);
			v = json_incref(v ? v : json_null());
		}
		snprintf(key, sizeof key, "%s/%s", sid, oid);
		json_object_set_new(s->f->state, key, v);
	}
	s->f->left--;
	frame_queue(w, s->f);
}

/* The frame's outputs from its state, once every step is done. */
static int frame_finish(struct cwl_wf *w, struct frame *f, char *err,
			size_t errlen)
{
	json_t *out = json_object(), *v;
	const json_t *p;
	size_t i;

	f->finished = 1;
	json_array_foreach(json_object_get(f->wf, "outputs"), i, p) {
		const char *id = json_string_value(json_object_get(p, "id"));

		v = cwl__link_value(f->state, p, "outputSource", err, errlen);
		if (!v) {
			json_decref(out);
			return -1;
		}
		apply_updates(w, v);
		if (cwl_is_fileobj(v) && json_object_get(w->updated,
			json_string_value(json_object_get(v, "path")) ?: "")) {
			json_t *a = json_pack("[o]", v);

			apply_updates(w, a);
			v = json_incref(json_array_get(a, 0));
			json_decref(a);
		}
		const json_t *t = json_object_get(p, "type");

		if (!(json_is_string(t) && !strcmp(json_string_value(t), "Any"))
		    && !cwl_type_match(t, v)) {
			json_decref(v);
			json_decref(out);
			return xy_fail(err, errlen, EINVAL, "workflow output "
				       "'%s' does not match its type", id);
		}
		json_object_set_new(out, id, v);
	}
	job_done(w, f->owner, out);
	return 0;
}

static int frame_scan(struct cwl_wf *w, struct frame *f, char *err,
		      size_t errlen)
{
	for (size_t i = 0; i < f->n_steps; i++) {
		struct step *s = &f->steps[i];
		int rc;

		if (s->started || !step_ready(s))
			continue;
		if ((rc = step_start(w, s, err, errlen)) < 0)
			return -1;
		if (rc == 1)
			step_finish(w, s);
	}
	if (!f->left && !f->finished)
		return frame_finish(w, f, err, errlen);
	return 0;
}

/* ------------------------------------------------------------ the API */

struct cwl_wf *cwl_wf_new(const json_t *process, const json_t *inputs,
			  const struct cwl_wf_ops *ops)
{
	struct cwl_wf *w = calloc(1, sizeof *w);

	if (!w)
		return NULL;
	w->ops = *ops;
	w->updated = json_object();
	w->root = job_new(w, NULL, 0, json_deep_copy(process),
			  json_deep_copy(inputs));
	if (!w->root) {
		free(w);
		return NULL;
	}
	return w;
}

void cwl_wf_free(struct cwl_wf *w)
{
	if (!w)
		return;
	while (w->frames) {
		struct frame *f = w->frames;

		w->frames = f->next;
		for (size_t i = 0; i < f->n_steps; i++) {
			free(f->steps[i].jobs);
			json_decref(f->steps[i].dims);
		}
		free(f->steps);
		cwl_expr_free(f->x);
		json_decref(f->state);
		free(f);
	}
	while (w->jobs) {
		struct job *j = w->jobs;

		w->jobs = j->next;
		json_decref(j->proc);
		json_decref(j->inputs);
		json_decref(j->outputs);
		free(j);
	}
	json_decref(w->updated);
	free(w);
}

int cwl_wf_advance(struct cwl_wf *w, int *status, char *err, size_t errlen)
{
	*status = CWL_PERMANENT_FAIL;
	if (w->root && !w->root->proc)
		return -1;
	if (!w->finished && w->root && !w->root->handle &&
	    !w->root->outputs && !w->frames) {
		if (job_run(w, w->root, err, errlen) < 0) {
			if (w->status)
				*status = w->status;
			return -1;
		}
	}
	while (w->queue || w->done_head) {
		while (w->done_head) {
			struct job *j = w->done_head;

			w->done_head = j->next_done;
			if (!w->done_head)
				w->done_tail = NULL;
			if (!j->step) {
				w->finished = 1;
				continue;
			}
			if (--j->step->left == 0)
				step_finish(w, j->step);
		}
		while (w->queue) {
			struct frame *f = w->queue;

			w->queue = f->next_q;
			f->queued = 0;
			if (frame_scan(w, f, err, errlen) < 0) {
				if (w->status)
					*status = w->status;
				return -1;
			}
		}
	}
	*status = CWL_OK;
	return w->finished ? 1 : 0;
}

int cwl_wf_task_done(struct cwl_wf *w, uint64_t handle, json_t *outputs,
		     int status)
{
	struct job *j;

	for (j = w->jobs; j; j = j->next)
		if (j->handle == handle && !j->outputs)
			break;
	if (!j) {
		json_decref(outputs);
		errno = ENOENT;
		return -1;
	}
	w->running--;
	if (!outputs) {
		(void)status;
		return -1;
	}
	note_updates(w, outputs);
	job_done(w, j, outputs);
	return 0;
}

size_t cwl_wf_running(const struct cwl_wf *w)
{
	return w->running;
}

const json_t *cwl_wf_outputs(const struct cwl_wf *w)
{
	return w->finished ? w->root->outputs : NULL;
}
