/*
 * lineage.c: temps and their lineage, a sub-context of the manager. A temp
 * is a file that lives only in workers' caches: the task that writes it
 * leaves it where it ran, later tasks read it there or by peer transfer,
 * and it comes back to the manager only through xy_manager_fetch. For
 * each task that writes a temp the lineage keeps a recipe (a private copy
 * of the task), so that a temp whose last copy is gone can be made again
 * when a task still needs it: the catalogue asks for that (catalog.c,
 * xy_catalog_need), and the remake's own lost inputs are remade in turn,
 * since its inputs are looked up the same way. Remakes are internal tasks
 * that wait never returns (docs/dataplane.md, "Temps and lineage").
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "log.h"
#include "util.h"

#define WHO "manager"

/* How to make a task's temps again: a copy of the task with only its
 * temp outputs, made at submit, since the caller may delete its task
 * once wait has returned it. It holds a reference on each of its inputs
 * (none on its outputs, whose recipe it is) and lives while one of its
 * temps does: a temp freed, or written since by another task, leaves
 * its outputs, and the last one to leave frees it. */
struct recipe {
	struct xy_task *task;
	uint64_t origin; /* the id of the task it copies */
	struct recipe *prev, *next;
};

struct xy_lineage {
	struct xy_manager *m;
	uint64_t n_temps;         /* temps declared, for their labels */
	struct recipe *recipes;   /* those a temp still points at */
	struct xy_task *to_start; /* remakes whose inputs are looked up next */
	struct xy_task *dead;     /* finished remakes, freed next phase */
	int64_t remakes;
};

struct xy_lineage *xy_lineage_create(struct xy_manager *m)
{
	struct xy_lineage *l = calloc(1, sizeof *l);
	if (l)
		l->m = m;
	return l;
}

static void free_tasks(struct xy_task *t)
{
	for (struct xy_task *n; t; t = n) {
		n = t->qnext;
		xy_task_delete(t);
	}
}

void xy_lineage_destroy(struct xy_lineage *l)
{
	if (!l)
		return;
	/* Remakes still to start are in the manager's task table, which
	 * frees them; retired ones are ours alone. */
	free_tasks(l->dead);
	for (struct recipe *r = l->recipes, *n; r; r = n) {
		n = r->next;
		xy_task_delete(r->task);
		free(r);
	}
	free(l);
}

const char *xy_file_label(const struct xy_file *f)
{
	if (f->path)
		return f->path;
	if (f->url)
		return f->url;
	return f->label ? f->label : "(buffer)";
}

int64_t xy_lineage_remakes(const struct xy_lineage *l)
{
	return l->remakes;
}

struct xy_file *xy_lineage_declare(struct xy_lineage *l,
				   xy_cache_level level, char *err,
				   size_t errlen)
{
	char *label = NULL;
	struct xy_file *f = NULL;
	/* A task-level temp would be unlinked after its first reader. */
	if (level < XY_CACHE_WORKFLOW)
		level = XY_CACHE_WORKFLOW;
	if (asprintf(&label, "temp-%llu",
		     (unsigned long long)l->n_temps + 1) < 0)
		label = NULL; /* asprintf leaves it undefined */
	if (!label || !(f = xy_catalog_unnamed(l->m->catalog, level))) {
		free(label);
		xy_fail(err, errlen, ENOMEM, "out of memory");
		return NULL;
	}
	l->n_temps++;
	f->label = label;
	f->temp = 1;
	f->replicas = 1;
	return f;
}

/* Which outputs a copy keeps: at record, the temps; at a remake, the
 * temps of that recipe that are lost, plus the one asked for. */
struct keep {
	struct recipe *r;
	struct xy_file *asked;
};

static int keep_output(const struct xy_file *f, const struct keep *k)
{
	if (!f->temp)
		return 0;
	if (!k)
		return 1;
	if (f->recipe != k->r)
		return 0; /* a later task writes it now */
	return f == k->asked ||
	       (f->state == FILE_READY && !xy_catalog_has_source(f->obj));
}

static int copy_files(struct xy_task *t, const struct xy_task *src,
		      const struct keep *k)
{
	for (uint32_t i = 0; i < src->n_inputs; i++)
		if (xy_task_add_input(t, src->inputs[i].file,
				      src->inputs[i].as, NULL, 0) < 0)
			return -1;
	for (uint32_t i = 0; i < src->n_outputs; i++)
		if (keep_output(src->outputs[i].file, k) &&
		    xy_task_add_output(t, src->outputs[i].file,
				       src->outputs[i].as, NULL, 0) < 0)
			return -1;
	for (uint32_t i = 0; i < src->n_env; i++)
		if (xy_task_set_env(t, src->env[i].name,
				    src->env[i].value) < 0)
			return -1;
	return 0;
}

/* A fresh, unsubmitted copy of src's command, files, environment and
 * resources; NULL on ENOMEM. */
static struct xy_task *copy_task(const struct xy_task *src,
				 const struct keep *k)
{
	struct xy_task *t = src->library
		? xy_task_create_call(src->library, src->payload,
				      src->payload_len)
		: xy_task_create(src->command);
	if (!t)
		return NULL;
	if (copy_files(t, src, k) < 0 ||
	    (src->tag && xy_task_set_tag(t, src->tag) < 0)) {
		xy_task_delete(t);
		return NULL;
	}
	t->cores = src->cores;
	t->gpus = src->gpus;
	t->memory = src->memory;
	t->disk = src->disk;
	t->retries = src->retries;
	t->priority = src->priority;
	t->time_limit = src->time_limit;
	/* copy_files gave t the environment's input, at XY_ENV_MOUNT; this
	 * marks it for activation (ENV, not UNPACK), as at the original. */
	t->environment = src->environment;
	return t;
}

static void recipe_free(struct xy_lineage *l, struct recipe *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		l->recipes = r->next;
	if (r->next)
		r->next->prev = r->prev;
	for (uint32_t i = 0; i < r->task->n_inputs; i++)
		xy_catalog_file_decref(r->task->inputs[i].file);
	xy_task_delete(r->task);
	free(r);
}

/* The temp f leaves its recipe's outputs; the recipe goes with its last
 * temp. */
static void leave_recipe(struct xy_lineage *l, struct xy_file *f)
{
	struct recipe *r = f->recipe;
	struct xy_task *t = r ? r->task : NULL;
	f->recipe = NULL;
	if (!r)
		return;
	for (uint32_t i = 0; i < t->n_outputs;) {
		if (t->outputs[i].file != f) {
			i++;
			continue;
		}
		free(t->outputs[i].as);
		t->outputs[i] = t->outputs[--t->n_outputs];
	}
	if (t->n_outputs == 0)
		recipe_free(l, r);
}

void xy_lineage_forget(struct xy_lineage *l, struct xy_file *f)
{
	leave_recipe(l, f);
}

int xy_lineage_record(struct xy_lineage *l, struct xy_task *t, char *err,
		      size_t errlen)
{
	int temps = 0;
	for (uint32_t i = 0; i < t->n_outputs; i++)
		temps += t->outputs[i].file->temp;
	if (!temps)
		return 0;
	struct recipe *r = calloc(1, sizeof *r);
	if (!r || !(r->task = copy_task(t, NULL))) {
		free(r);
		return xy_fail(err, errlen, ENOMEM, "out of memory");
	}
	/* Called just before submit gives t this id. */
	r->origin = l->m->next_task_id;
	r->next = l->recipes;
	if (r->next)
		r->next->prev = r;
	l->recipes = r;
	for (uint32_t i = 0; i < r->task->n_inputs; i++)
		xy_catalog_file_incref(r->task->inputs[i].file);
	for (uint32_t i = 0; i < t->n_outputs; i++) {
		struct xy_file *f = t->outputs[i].file;
		if (!f->temp || f->recipe == r)
			continue;
		leave_recipe(l, f); /* t writes it now */
		f->recipe = r;
	}
	return 0;
}

int xy_lineage_remake(struct xy_lineage *l, struct xy_file *f, char **why)
{
	struct recipe *r = f->recipe;
	struct keep k = {r, f};
	struct xy_task *t = r ? copy_task(r->task, &k) : NULL;
	if (!t) {
		if (asprintf(why, "input %s: its last copy is gone and %s",
			     xy_file_label(f),
			     r ? "out of memory to make it again"
			       : "no task can make it again") < 0)
			*why = NULL;
		return -1;
	}
	xy_manager_enter_internal(l->m, t);
	XY_LOGW(WHO, "%s lost its last copy: task %llu runs again as %llu",
		xy_file_label(f), (unsigned long long)r->origin,
		(unsigned long long)t->id);
	/* Its inputs are looked up in the next phase, not here: the task
	 * that asked is in the middle of its own lookup. */
	t->qnext = l->to_start;
	l->to_start = t;
	l->remakes++;
	xy_manager_wake(l->m);
	return 0;
}

void xy_lineage_made(struct xy_lineage *l, struct xy_file *f)
{
	struct xy_object *o = f->obj;
	if (f->replicas < 2 || !o)
		return;
	int have = (int)o->n_replicas;
	for (struct xy_worker *w = xy_wtable_all(l->m->wtable);
	     w && have < f->replicas; w = w->next) {
		if (!w->ready || xy_catalog_replica_find(o, w))
			continue;
		/* An extra copy spares a remake; without memory for one,
		 * the temp makes do with fewer. */
		if (xy_xplan_copy(l->m->xplan, o, f->level, w) < 0)
			break;
		have++;
	}
}

void xy_lineage_retire(struct xy_lineage *l, struct xy_task *t)
{
	t->qnext = l->dead;
	l->dead = t;
}

void xy_lineage_phase(struct xy_lineage *l)
{
	free_tasks(l->dead);
	l->dead = NULL;
	/* A remake's lookup may queue the remakes of its own lost inputs:
	 * they are started in this same loop. */
	while (l->to_start) {
		struct xy_task *t = l->to_start;
		l->to_start = t->qnext;
		t->qnext = NULL;
		xy_manager_task_requeue(l->m, t, NULL);
	}
}

/* ------------------------------------------------------------- public */

struct xy_file *xy_manager_declare_temp(struct xy_manager *m,
					xy_cache_level level, char *err,
					size_t errlen)
{
	if (xy_catalog_check_level(level, err, errlen) < 0)
		return NULL;
	return xy_lineage_declare(m->lineage, level, err, errlen);
}

int xy_file_set_replicas(struct xy_file *f, int n)
{
	if (!f || !f->temp || n < 1) {
		errno = EINVAL;
		return -1;
	}
	f->replicas = n;
	return 0;
}

int xy_file_is_temp(const struct xy_file *f)
{
	return f && f->temp;
}

/* A fetch back in flight. The caller may give up on it (timeout); the
 * retrieval's callback then frees it. */
struct fetch_back {
	int done, ok, abandoned;
	char why[600];
};

static void fetched(void *arg, int ok, const char *why)
{
	struct fetch_back *fb = arg;
	if (fb->abandoned) {
		free(fb);
		return;
	}
	fb->done = 1;
	fb->ok = ok;
	snprintf(fb->why, sizeof fb->why, "%s", why ? why : "");
}

/* Starts bringing f to path if a worker holds it (1), or has it made
 * again, or waits for its producer (0); -1 if it cannot be had. */
static int fetch_start(struct xy_manager *m, struct xy_file *f,
		       const char *path, struct fetch_back **fb, char *err,
		       size_t errlen)
{
	struct xy_worker *w;
	char *why = NULL;
	switch (f->state) {
	case FILE_MISSING:
		return xy_fail(err, errlen, ENOENT, "%s",
			       f->error ? f->error : "it was not made");
	case FILE_NEW:
		return xy_fail(err, errlen, ENOENT, "%s: no task writes it",
			       xy_file_label(f));
	case FILE_READY:
		if ((w = xy_catalog_holder(f->obj)) != NULL) {
			if (!(*fb = calloc(1, sizeof **fb)))
				return xy_fail(err, errlen, ENOMEM,
					       "out of memory");
			if (xy_xplan_retrieve_cb(m->xplan, w, f->obj, path,
						 fetched, *fb) < 0) {
				free(*fb);
				*fb = NULL;
				return xy_fail(err, errlen, ENOMEM,
					       "out of memory");
			}
			return 1;
		}
		if (xy_catalog_copy_in_flight(f->obj))
			return 0; /* a copy is on its way: wait for it */
		if (xy_lineage_remake(m->lineage, f, &why) < 0) {
			xy_fail(err, errlen, ENOENT, "%s", why ? why : "lost");
			free(why);
			return -1;
		}
		return 0;
	default: /* being made */
		return 0;
	}
}

/* Runs the loop until f is at path, or it cannot be, or the timeout. */
static int fetch_loop(struct xy_manager *m, struct xy_file *f,
		      const char *path, double timeout, char *err,
		      size_t errlen)
{
	double deadline = timeout >= 0 ? xy_mono() + timeout : -1;
	struct fetch_back *fb = NULL;
	for (;;) {
		if (fb && fb->done) {
			int ok = fb->ok;
			if (!ok)
				xy_fail(err, errlen, EIO, "%s", fb->why);
			free(fb);
			return ok ? 0 : -1;
		}
		if (!fb && fetch_start(m, f, path, &fb, err, errlen) < 0)
			return -1;
		if (deadline >= 0 && xy_mono() >= deadline) {
			if (fb)
				fb->abandoned = 1;
			return xy_fail(err, errlen, ETIMEDOUT,
				       "%s: timed out", xy_file_label(f));
		}
		xy_manager_turn(m, deadline);
	}
}

int xy_manager_fetch(struct xy_manager *m, struct xy_file *f,
		     const char *path, double timeout, char *err,
		     size_t errlen)
{
	if (!f || !f->temp || !path || !*path)
		return xy_fail(err, errlen, EINVAL,
			       "fetch needs a temp and a path");
	/* A post run meanwhile may release f: freeing it waits for us. */
	xy_catalog_file_incref(f);
	int rc = fetch_loop(m, f, path, timeout, err, errlen);
	xy_catalog_file_decref(f);
	return rc;
}

/* ------------------------------------------------------- many at once */

#define FETCH_ALL_IN_FLIGHT 64

/* fetch_all's state of one temp: started (fb set), or done. */
struct fetch_one {
	struct fetch_back *fb;
	int done;
};

/* One pass over the temps: collects those that came, starts those that
 * can be, up to FETCH_ALL_IN_FLIGHT at once. Returns how many are left,
 * or -1 with a reason in err. */
static long fetch_all_pass(struct xy_manager *m, struct xy_file *const *files,
			   const char *const *paths, struct fetch_one *st,
			   size_t n, char *err, size_t errlen)
{
	size_t i, in_flight = 0;
	long left = 0;

	for (i = 0; i < n; i++)
		if (!st[i].done && st[i].fb && !st[i].fb->done)
			in_flight++;
	for (i = 0; i < n; i++) {
		if (st[i].done)
			continue;
		if (st[i].fb && st[i].fb->done) {
			int ok = st[i].fb->ok;

			if (!ok)
				xy_fail(err, errlen, EIO, "%s", st[i].fb->why);
			free(st[i].fb);
			st[i].fb = NULL;
			st[i].done = 1;
			if (!ok)
				return -1;
			continue;
		}
		left++;
		if (st[i].fb || in_flight >= FETCH_ALL_IN_FLIGHT)
			continue;
		int r = fetch_start(m, files[i], paths[i], &st[i].fb, err,
				    errlen);
		if (r < 0)
			return -1;
		in_flight += r == 1;
	}
	return left;
}

int xy_manager_fetch_all(struct xy_manager *m, struct xy_file *const *files,
			 const char *const *paths, size_t n, double timeout,
			 char *err, size_t errlen)
{
	double deadline = timeout >= 0 ? xy_mono() + timeout : -1;
	struct fetch_one *st;
	long left;
	size_t i;

	for (i = 0; i < n; i++)
		if (!files[i] || !files[i]->temp || !paths[i] || !*paths[i])
			return xy_fail(err, errlen, EINVAL,
				       "fetch needs temps and paths");
	if (!(st = calloc(n ? n : 1, sizeof *st)))
		return xy_fail(err, errlen, ENOMEM, "out of memory");
	for (i = 0; i < n; i++)
		xy_catalog_file_incref(files[i]);
	for (;;) {
		left = fetch_all_pass(m, files, paths, st, n, err, errlen);
		if (left <= 0)
			break;
		if (deadline >= 0 && xy_mono() >= deadline) {
			xy_fail(err, errlen, ETIMEDOUT, "fetching %ld temps: "
				"timed out", left);
			left = -1;
			break;
		}
		xy_manager_turn(m, deadline);
	}
	for (i = 0; i < n; i++) {
		if (st[i].fb && !st[i].fb->done)
			st[i].fb->abandoned = 1; /* its callback frees it */
		else
			free(st[i].fb);
		xy_catalog_file_decref(files[i]);
	}
	free(st);
	return left < 0 ? -1 : 0;
}
