/*
 * tasks.c: a worker's tasks from TASK to TASK_DONE; see tasks.h. Each task
 * is in exactly one list: waiting (for inputs), ready (to start in the
 * next loop phase), running (from its start until it has let go of its
 * process and of any thread pool work, which may be after its TASK_DONE
 * when it was cancelled), or dead (freed in the reap phase). Tasks not yet
 * reported are also in a table by id. Pairs with exec.c (sandboxes and
 * processes), cache.c and fetch.c.
 */
#include "tasks.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "object.h"
#include "util.h"
#include "xylem.h"

extern char **environ;

#define TBUCKETS 1024

enum { T_WAITING, T_READY, T_RUNNING, T_COLLECTING, T_ENDED };

struct task;

struct tlist {
	struct task *head, *tail;
};

struct task {
	struct xy_tasks *ts;
	struct xy_msg_task spec; /* stolen from the TASK message */
	int state;
	uint32_t missing; /* inputs not yet cached */
	uint8_t *held;    /* per input: we hold a cache reference */
	char *sandbox;
	struct xy_proc *proc;
	int busy; /* thread pool work in flight */
	unsigned reported : 1;
	uint32_t *gpu_ids;
	uint32_t n_gpu_own; /* the first n_gpu_own of gpu_ids are ours */
	uint64_t start_us, end_us;
	int result; /* decided at exit, before the outputs are taken */
	int32_t exit_code;
	char *output;
	size_t output_len;
	int truncated;
	char message[512];
	struct task *hnext;
	struct task *prev, *next;
	struct tlist *list;
};

struct xy_tasks {
	struct xy_tasks_opts o;
	struct task *table[TBUCKETS];
	struct tlist waiting, ready, running, dead;
	size_t count;
	uint8_t *gpu_busy;
	uint32_t n_gpus;
	uint64_t seq;
	int quiet; /* shutting down: report nothing */
};

struct out_res {
	char path[PATH_MAX];
	uint8_t id[XY_ID_LEN];
	uint8_t kind;
	uint64_t size;
	int missing;
	int bad;
	char text[256];
};

struct collect {
	uv_work_t req;
	struct task *t;
	struct out_res *res;
};

struct rm_req {
	uv_work_t req;
	char *path;
};

static void task_end(struct task *t, int result, const char *message,
		     struct xy_done_output *outs, uint32_t n);

static uint64_t wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* --------------------------------------------------- lists and table */

static void list_add(struct tlist *l, struct task *t)
{
	t->list = l;
	t->next = NULL;
	t->prev = l->tail;
	if (l->tail)
		l->tail->next = t;
	else
		l->head = t;
	l->tail = t;
}

static void list_del(struct task *t)
{
	struct tlist *l = t->list;

	if (!l)
		return;
	if (t->prev)
		t->prev->next = t->next;
	else
		l->head = t->next;
	if (t->next)
		t->next->prev = t->prev;
	else
		l->tail = t->prev;
	t->list = NULL;
	t->prev = t->next = NULL;
}

static void list_move(struct tlist *l, struct task *t)
{
	list_del(t);
	list_add(l, t);
}

static struct task **slot(struct xy_tasks *ts, uint64_t id)
{
	struct task **pp = &ts->table[id % TBUCKETS];

	while (*pp && (*pp)->spec.task_id != id)
		pp = &(*pp)->hnext;
	return pp;
}

static void table_del(struct task *t)
{
	struct task **pp = slot(t->ts, t->spec.task_id);

	if (*pp == t)
		*pp = t->hnext;
	t->hnext = NULL;
}

/* ------------------------------------------------- create and destroy */

struct xy_tasks *xy_tasks_create(const struct xy_tasks_opts *opts)
{
	struct xy_tasks *ts = calloc(1, sizeof *ts);

	if (!ts)
		return NULL;
	ts->o = *opts;
	ts->n_gpus = opts->gpus;
	if (ts->n_gpus && !(ts->gpu_busy = calloc(ts->n_gpus, 1))) {
		free(ts);
		return NULL;
	}
	return ts;
}

static void task_free(struct task *t)
{
	union xy_msg m;

	list_del(t);
	m.task = t->spec;
	xy_msg_free(XY_MSG_TASK, &m);
	free(t->held);
	free(t->sandbox);
	free(t->gpu_ids);
	free(t->output);
	t->ts->count--;
	free(t);
}

void xy_tasks_destroy(struct xy_tasks *ts)
{
	struct tlist *lists[4];

	if (!ts)
		return;
	lists[0] = &ts->waiting;
	lists[1] = &ts->ready;
	lists[2] = &ts->running;
	lists[3] = &ts->dead;
	for (int i = 0; i < 4; i++) {
		while (lists[i]->head) {
			struct task *t = lists[i]->head;

			if (t->proc)
				xy_proc_release(t->proc);
			if (t->sandbox && i != 3)
				xy_rm_rf(t->sandbox);
			task_free(t);
		}
	}
	free(ts->gpu_busy);
	free(ts);
}

size_t xy_tasks_count(const struct xy_tasks *ts)
{
	return ts->count;
}

/* ------------------------------------------------------------ ending */

static void rm_work(uv_work_t *req)
{
	struct rm_req *r = req->data;

	xy_rm_rf(r->path);
}

static void rm_after(uv_work_t *req, int status)
{
	struct rm_req *r = req->data;

	free(r->path);
	free(r);
}

/* An empty sandbox (a task without inputs that wrote nothing) goes at
 * once; anything else is removed on the thread pool. */
static void sandbox_remove(struct xy_tasks *ts, char *path)
{
	struct rm_req *r;

	if (rmdir(path) == 0 || errno == ENOENT) {
		free(path);
		return;
	}
	r = calloc(1, sizeof *r);
	if (r) {
		r->path = path;
		r->req.data = r;
		if (uv_queue_work(ts->o.loop, &r->req, rm_work, rm_after) == 0)
			return;
		free(r);
	}
	xy_rm_rf(path);
	free(path);
}

/* Once a task is reported and holds neither a process nor thread pool
 * work, its sandbox goes and it waits in the dead list to be freed. */
static void maybe_retire(struct task *t)
{
	if (!t->reported || t->proc || t->busy || t->list == &t->ts->dead)
		return;
	if (t->sandbox) {
		sandbox_remove(t->ts, t->sandbox);
		t->sandbox = NULL;
	}
	t->state = T_ENDED;
	list_move(&t->ts->dead, t);
}

static void release_inputs(struct task *t)
{
	for (uint32_t i = 0; t->held && i < t->spec.n_inputs; i++) {
		if (t->held[i])
			xy_cache_decref(t->ts->o.cache, t->spec.inputs[i].id);
		t->held[i] = 0;
	}
}

static void gpus_give(struct task *t)
{
	for (uint32_t i = 0; i < t->n_gpu_own; i++)
		t->ts->gpu_busy[t->gpu_ids[i]] = 0;
	t->n_gpu_own = 0;
}

static void report(struct task *t, int result, const char *message,
		   struct xy_done_output *outs, uint32_t n)
{
	struct xy_msg_task_done d;

	memset(&d, 0, sizeof d);
	d.task_id = t->spec.task_id;
	d.result = (uint8_t)result;
	d.exit_code = t->exit_code;
	d.start_us = t->start_us;
	d.end_us = t->end_us ? t->end_us : wall_us();
	if (!d.start_us)
		d.start_us = d.end_us;
	d.output_truncated = (uint8_t)t->truncated;
	d.output = t->output ? t->output : "";
	d.output_len = t->output ? t->output_len : 0;
	d.message = (char *)(message ? message : "");
	d.n_outputs = n;
	d.outputs = outs;
	t->reported = 1;
	table_del(t);
	if (!t->ts->quiet)
		t->ts->o.on_done(t->ts->o.arg, &d);
}

/* Reports the task's end and lets go of its inputs and GPUs; the sandbox
 * goes once its process and thread pool work are gone too. */
static void task_end(struct task *t, int result, const char *message,
		     struct xy_done_output *outs, uint32_t n)
{
	if (t->reported)
		return;
	if (result != XY_RESULT_SUCCESS)
		XY_LOGD("tasks", "task %" PRIu64 ": result %d: %s",
			t->spec.task_id, result, message ? message : "");
	report(t, result, message, outs, n);
	release_inputs(t);
	gpus_give(t);
	if (t->list == &t->ts->waiting || t->list == &t->ts->ready)
		list_move(&t->ts->running, t);
	maybe_retire(t);
}

static void task_fail(struct task *t, int result, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void task_fail(struct task *t, int result, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (!t->exit_code && !t->start_us)
		t->exit_code = -1;
	task_end(t, result, msg, NULL, 0);
}
