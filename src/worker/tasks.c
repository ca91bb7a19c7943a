/*
 * tasks.c: a worker's tasks from TASK to TASK_DONE; see tasks.h. Each task
 * is in exactly one list: waiting (for inputs), ready (to start in the
 * next loop phase), running (from its start until it has let go of its
 * process and of any thread pool work, which may be after its TASK_DONE
 * when it was cancelled), or dead (freed in the reap phase). Tasks not yet
 * reported are also in a table by id. A call runs in its library's
 * instance instead of a process; it holds on like a process until the
 * instance has let go of its sandbox. Pairs with exec.c (sandboxes and
 * processes), library.c (instances), cache.c and fetch.c.
 */
#include "tasks.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "guard.h"
#include "log.h"
#include "object.h"
#include "util.h"
#include "xylem.h"

extern char **environ;

#include "tasks_int.h"
#include "taskusers.h"

struct out_res {
	char path[PATH_MAX];
	uint8_t id[XY_ID_LEN];
	uint8_t kind;
	uint64_t size;
	struct xy_chunks chunks; /* for TASK_DONE, when it has a list */
	int missing;
	int bad;
	char text[256];
};

/* Chunk lists in one TASK_DONE stay under this many bytes, far inside a
 * frame; an output past it is reported without one (fetched whole). */
#define DONE_CHUNK_BUDGET (8u << 20)

struct collect {
	uv_work_t req;
	struct task *t;
	struct out_res *res;
};

static void task_end(struct task *t, int result, const char *message,
		     struct xy_done_output *outs, uint32_t n);
static void guard_end(struct task *t);

static int is_call(const struct task *t)
{
	return t->spec.library && t->spec.library[0];
}

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

struct task **xy_tasks_slot(struct xy_tasks *ts, uint64_t id)
{
	struct task **pp = &ts->table[id % TBUCKETS];

	while (*pp && (*pp)->spec.task_id != id)
		pp = &(*pp)->hnext;
	return pp;
}

void xy_tasks_table_put(struct task *t)
{
	struct xy_tasks *ts = t->ts;
	t->hnext = ts->table[t->spec.task_id % TBUCKETS];
	ts->table[t->spec.task_id % TBUCKETS] = t;
}

void xy_tasks_table_del(struct task *t)
{
	struct task **pp = xy_tasks_slot(t->ts, t->spec.task_id);

	if (*pp == t)
		*pp = t->hnext;
	t->hnext = NULL;
}

/* ------------------------------------------------- create and destroy */

/* Splits "2,3" into the names of GPU 0 and GPU 1. Without ids, or with
 * fewer than n_gpus of them, GPUs are named by their index. */
static int name_gpus(struct xy_tasks *ts, const char *ids)
{
	uint32_t i = 0;
	char *p;

	if (!ids || !ts->n_gpus)
		return 0;
	ts->gpu_names = strdup(ids);
	ts->gpu_name = calloc(ts->n_gpus, sizeof *ts->gpu_name);
	if (!ts->gpu_names || !ts->gpu_name)
		return -1;
	for (p = ts->gpu_names; p && i < ts->n_gpus; i++) {
		ts->gpu_name[i] = p;
		if ((p = strchr(p, ',')))
			*p++ = '\0';
	}
	if (i < ts->n_gpus) {
		free(ts->gpu_name);
		ts->gpu_name = NULL;
	}
	return 0;
}

struct xy_tasks *xy_tasks_create(const struct xy_tasks_opts *opts)
{
	struct xy_tasks *ts = calloc(1, sizeof *ts);

	if (!ts)
		return NULL;
	ts->o = *opts;
	ts->o.gpu_ids = NULL; /* not kept: gpu_name has them */
	ts->n_gpus = opts->gpus;
	if ((ts->n_gpus && !(ts->gpu_busy = calloc(ts->n_gpus, 1))) ||
	    name_gpus(ts, opts->gpu_ids) < 0) {
		xy_tasks_destroy(ts);
		return NULL;
	}
	return ts;
}

static void task_free(struct task *t)
{
	union xy_msg m;

	list_del(t);
	if (t->pool_fd >= 0)
		close(t->pool_fd);
	m.task = t->spec;
	xy_msg_free(XY_MSG_TASK, &m);
	xy_taskusers_release(t->ts->o.users, t->account);
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
	while (ts->pool_n)
		xy_tasks_pool_pop(ts);
	free(ts->gpu_busy);
	free(ts->gpu_name);
	free(ts->gpu_names);
	free(ts);
}

size_t xy_tasks_count(const struct xy_tasks *ts)
{
	return ts->count;
}

/* ------------------------------------------------------------ cores */

/*
 * The manager commits a task's cores when it sends it, but may send calls
 * beyond this worker's cores (its call window, docs/architecture.md): a
 * ready task starts only when its cores are free here, in the order the
 * tasks became ready. A task's cores are free again when it is reported,
 * as the manager frees them when it reads the report. Commands and calls
 * within the cores never wait here: the manager counts every task it sent
 * and has not heard back from.
 */
static int cores_fit(const struct xy_tasks *ts, const struct task *t)
{
	return !ts->o.cores || !ts->cores_busy ||
	       ts->cores_busy + t->spec.cores <= ts->o.cores;
}

static void cores_take(struct task *t)
{
	t->ts->cores_busy += t->spec.cores;
	t->has_cores = 1;
}

static void cores_give(struct task *t)
{
	if (!t->has_cores)
		return;
	t->ts->cores_busy -= t->spec.cores;
	t->has_cores = 0;
}

/* ------------------------------------------------------------ ending */

/* Once a task is reported and holds neither a process nor thread pool
 * work, its sandbox goes and it waits in the dead list to be freed. */
static void maybe_retire(struct task *t)
{
	if (!t->reported || t->proc || t->in_lib || t->busy ||
	    t->list == &t->ts->dead)
		return;
	guard_end(t); /* ended with its process alive (a cancel) */
	if (t->sandbox)
		xy_tasks_sandbox_release(t);
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
	d.failure = t->failure;
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
	xy_tasks_table_del(t);
	if (!t->ts->quiet)
		t->ts->o.on_done(t->ts->o.arg, &d, t->spec.key);
}

/* Reports the task's end and lets go of its inputs and GPUs; the sandbox
 * goes once its process and thread pool work are gone too. */
static void task_end(struct task *t, int result, const char *message,
		     struct xy_done_output *outs, uint32_t n)
{
	if (t->reported)
		return;
	if (!t->proc && !t->in_lib)
		guard_end(t);
	if (t->tainted) {
		for (uint32_t i = 0; i < n; i++)
			xy_cache_release_output(t->ts->o.cache, outs[i].id);
		result = t->taint_result;
		message = t->message;
		n = 0;
	}
	if (result != XY_RESULT_SUCCESS)
		XY_LOGD("tasks", "task %" PRIu64 ": result %d: %s",
			t->spec.task_id, result, message ? message : "");
	report(t, result, message, outs, n);
	release_inputs(t);
	gpus_give(t);
	cores_give(t);
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
	if (!t->start_us)
		t->exit_code = -1; /* it never ran */
	task_end(t, result, msg, NULL, 0);
}

/* ------------------------------------------------------------ inputs */

/* A fetch that failed is blamed on this worker whatever the reason: a
 * source that answers NOT_FOUND may only have dropped its copy, so the
 * manager, which knows whether any copy is left, retries the task
 * elsewhere or fails it. */
static int fetch_blame(int status)
{
	(void)status;
	return XY_RESULT_WORKER_FAILED;
}

/* The result for a task whose input could not be expanded: a bad
 * archive is the input's, for good; anything else this worker's, and the
 * manager runs the task again elsewhere (unpack.h). */
static int unpack_blame(int end)
{
	return end == XY_UNPACK_BAD ? XY_RESULT_INPUT_MISSING
				    : XY_RESULT_WORKER_FAILED;
}

/* Input i is referenced in the cache now; an archive also needs its
 * expansion, which may make the task wait (counted in missing). Returns
 * 0, or -1 if the task has been ended because it cannot be expanded. */
static int input_held(struct task *t, uint32_t i)
{
	struct xy_task_input *in = &t->spec.inputs[i];
	const char *text = "";
	int r;

	t->held[i] = HELD_YES;
	if (in->kind < XY_INPUT_UNPACK)
		return 0;
	r = xy_unpacker_need(t->ts->o.unpacker, in->id, &text);
	if (r == 0) {
		t->held[i] = HELD_UNPACKING;
		t->missing++;
	} else if (r < 0) {
		task_fail(t, unpack_blame(r), "input '%s': %s", in->name,
			  text);
		return -1;
	}
	return 0;
}

/* Takes a reference on each cached input and counts the others. Returns 0,
 * or -1 if the task has been ended because an input cannot come. */
static int claim_inputs(struct task *t)
{
	struct xy_tasks *ts = t->ts;

	for (uint32_t i = 0; i < t->spec.n_inputs; i++) {
		struct xy_task_input *in = &t->spec.inputs[i];
		const char *text = "";
		int status = XY_OBJ_NOT_FOUND;

		if (xy_cache_incref(ts->o.cache, in->id) == 0) {
			if (input_held(t, i) < 0)
				return -1;
			continue;
		}
		switch (xy_fetcher_state(ts->o.fetcher, in->id, &status,
					 &text)) {
		case XY_FETCH_PENDING:
			t->missing++;
			break;
		case XY_FETCH_FAILED:
			task_fail(t, fetch_blame(status),
				  "input '%s' could not be fetched: %s",
				  in->name, text);
			return -1;
		default:
			task_fail(t, XY_RESULT_WORKER_FAILED,
				  "input '%s' is neither cached nor being "
				  "fetched on this worker", in->name);
			return -1;
		}
	}
	return 0;
}

int xy_tasks_submit(struct xy_tasks *ts, struct xy_msg_task *m)
{
	struct task *t;

	if (*xy_tasks_slot(ts, m->task_id)) {
		errno = EEXIST;
		return -1;
	}
	t = calloc(1, sizeof *t);
	if (!t || (m->n_inputs && !(t->held = calloc(m->n_inputs, 2)))) {
		free(t);
		errno = ENOMEM;
		return -1;
	}
	t->ts = ts;
	t->pool_fd = -1;
	t->lent = t->held ? t->held + m->n_inputs : NULL;
	t->spec = *m;
	memset(m, 0, sizeof *m);
	xy_tasks_table_put(t);
	ts->count++;
	t->state = T_WAITING;
	list_add(&ts->waiting, t);
	if (is_call(t) && !xy_libs_defined(ts->o.libs, t->spec.library)) {
		task_fail(t, XY_RESULT_APP_FAILED,
			  "library %s is not defined on this worker",
			  t->spec.library);
		return 0;
	}
	if (claim_inputs(t) < 0)
		return 0;
	if (!t->missing) {
		t->state = T_READY;
		list_move(&ts->ready, t);
	}
	return 0;
}

/* One task learns of a fetch's end. Returns without touching t further if
 * the task ended. */
static void input_arrived(struct task *t, const uint8_t id[XY_ID_LEN],
			  int status, const char *text)
{
	for (uint32_t i = 0; i < t->spec.n_inputs; i++) {
		struct xy_task_input *in = &t->spec.inputs[i];

		if (t->held[i] || memcmp(in->id, id, XY_ID_LEN))
			continue;
		if (status != XY_OBJ_OK) {
			task_fail(t, fetch_blame(status),
				  "input '%s' could not be fetched: %s",
				  in->name, text);
			return;
		}
		if (xy_cache_incref(t->ts->o.cache, id) < 0) {
			task_fail(t, XY_RESULT_INPUT_MISSING,
				  "input '%s' left the cache", in->name);
			return;
		}
		t->missing--;
		if (input_held(t, i) < 0)
			return;
	}
	if (!t->missing) {
		t->state = T_READY;
		list_move(&t->ts->ready, t);
	}
}

/* One task learns of an expansion's end. */
static void expansion_ended(struct task *t, const uint8_t id[XY_ID_LEN],
			    int end, const char *text)
{
	for (uint32_t i = 0; i < t->spec.n_inputs; i++) {
		struct xy_task_input *in = &t->spec.inputs[i];

		if (t->held[i] != HELD_UNPACKING ||
		    memcmp(in->id, id, XY_ID_LEN))
			continue;
		if (end != XY_UNPACK_DONE) {
			task_fail(t, unpack_blame(end), "input '%s': %s",
				  in->name, text);
			return;
		}
		t->held[i] = HELD_YES;
		t->missing--;
	}
	if (!t->missing) {
		t->state = T_READY;
		list_move(&t->ts->ready, t);
	}
}

void xy_tasks_unpacked(struct xy_tasks *ts, const uint8_t id[XY_ID_LEN],
		       int end, const char *text)
{
	struct task *t, *next;

	for (t = ts->waiting.head; t; t = next) {
		next = t->next;
		expansion_ended(t, id, end, text);
	}
}

void xy_tasks_object_ready(struct xy_tasks *ts, const uint8_t id[XY_ID_LEN],
			   int status, const char *text)
{
	struct task *t, *next;

	for (t = ts->waiting.head; t; t = next) {
		next = t->next;
		input_arrived(t, id, status, text);
	}
}

/* ------------------------------------------- inputs lent (guard.h) */

/*
 * A task's inputs are the cache's own inodes (file inputs hard-linked,
 * directories and expansions symbolically linked), read-only by their
 * modes, which stop neither root nor their owner's chmod. So each is
 * checked against its fingerprint before it is lent and after the task
 * that had it (cache.h, xy_cache_guard). An object found altered is
 * dropped from the cache (the manager fetches it again when needed), and
 * the tasks it was lent to fail: when one task alone had it, that task
 * altered it and fails APP_FAILED saying so; when several shared it, any
 * of them may have, and each fails WORKER_FAILED (run again, retries
 * untouched: the guilty one is caught alone in the end or runs out of
 * worker failures). Tasks holding it but not yet lent it fail
 * WORKER_FAILED at once, to be run again with a fresh copy.
 */

static int input_part(const struct xy_task_input *in)
{
	return in->kind >= XY_INPUT_UNPACK ? XY_CACHE_EXPANSION
					   : XY_CACHE_OBJECT;
}

static void taint(struct task *t, int result, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void taint(struct task *t, int result, const char *fmt, ...)
{
	va_list ap;

	if (t->reported || t->tainted)
		return;
	va_start(ap, fmt);
	vsnprintf(t->message, sizeof t->message, fmt, ap);
	va_end(ap);
	t->tainted = 1;
	t->taint_result = result;
}

/* Lets go of t's references on id; the name it had it under, or NULL if
 * none. *was_lent says whether it was linked into t's sandbox. */
static const char *let_go(struct task *t, const uint8_t id[XY_ID_LEN],
			  int *was_lent)
{
	const char *name = NULL;

	*was_lent = 0;
	for (uint32_t i = 0; t->held && i < t->spec.n_inputs; i++) {
		struct xy_task_input *in = &t->spec.inputs[i];

		if (memcmp(in->id, id, XY_ID_LEN))
			continue;
		if (t->lent[i])
			*was_lent = 1;
		if (t->held[i]) {
			xy_cache_decref(t->ts->o.cache, id);
			name = in->name;
		}
		t->held[i] = 0;
		t->lent[i] = 0;
	}
	return name;
}

static uint32_t count_lent(struct xy_tasks *ts, const uint8_t id[XY_ID_LEN])
{
	uint32_t n = 0;

	for (struct task *t = ts->running.head; t; t = t->next)
		for (uint32_t i = 0; t->lent && i < t->spec.n_inputs; i++)
			if (t->lent[i] &&
			    !memcmp(t->spec.inputs[i].id, id, XY_ID_LEN)) {
				n++;
				break;
			}
	return n;
}

static void altered(struct xy_tasks *ts, const uint8_t id_in[XY_ID_LEN],
		    const char *how)
{
	struct tlist *lists[] = {&ts->running, &ts->ready, &ts->waiting};
	uint32_t lent;
	uint8_t id[XY_ID_LEN];

	memcpy(id, id_in, XY_ID_LEN);
	lent = count_lent(ts, id);
	for (size_t k = 0; k < sizeof lists / sizeof lists[0]; k++) {
		struct task *t, *next;

		for (t = lists[k]->head; t; t = next) {
			const char *name;
			int was_lent;

			next = t->next;
			if (!(name = let_go(t, id, &was_lent)) || t->reported)
				continue;
			if (was_lent && lent == 1)
				taint(t, XY_RESULT_APP_FAILED,
				      "the task modified its input '%s', a "
				      "cached object it may only read (%s): "
				      "dropped from this worker's cache",
				      name, how);
			else if (was_lent)
				taint(t, XY_RESULT_WORKER_FAILED,
				      "input '%s' was modified while the task "
				      "ran, by it or by one of the %u other "
				      "tasks it was lent to on this worker "
				      "(%s): dropped from the cache, to be "
				      "fetched again", name, lent - 1, how);
			else
				task_fail(t, XY_RESULT_WORKER_FAILED,
					  "input '%s' was dropped from this "
					  "worker's cache: a task altered it "
					  "(%s)", name, how);
		}
	}
	xy_cache_drop_altered(ts->o.cache, id, how);
}

/* Before input i is lent: is it as it was? Returns 0, or -1 if t has been
 * ended because it was not. A directory (or an expansion) is walked only
 * when it is lent to another running task now, or never was: otherwise
 * the check after the last task that had it still holds, since nothing
 * reaches it through a sandbox but a task lent it. A file costs two
 * lstat calls and is always checked. */
static int guard_before(struct task *t, uint32_t i)
{
	struct xy_task_input *in = &t->spec.inputs[i];
	struct xy_cache *c = t->ts->o.cache;
	struct xy_cache_info info;
	char how[256];

	if (xy_cache_guarded(c, in->id, input_part(in)) &&
	    (input_part(in) == XY_CACHE_EXPANSION ||
	     (xy_cache_find(c, in->id, &info) == 0 &&
	      info.kind == XY_KIND_DIR)) &&
	    !count_lent(t->ts, in->id))
		return 0; /* checked when last given back, lent to none since */
	if (xy_cache_guard(c, in->id, input_part(in), how, sizeof how) != 1)
		return 0;
	altered(t->ts, in->id, how);
	return t->reported ? -1 : 0;
}

/* Input i is linked in: a hard link set the file's ctime. */
static void guard_lent(struct task *t, uint32_t i, uint8_t kind)
{
	struct xy_task_input *in = &t->spec.inputs[i];

	t->lent[i] = 1;
	if (kind == XY_KIND_FILE && input_part(in) == XY_CACHE_OBJECT)
		xy_cache_reseal(t->ts->o.cache, in->id);
}

/* The task's processes are gone: checks what it was lent, and takes its
 * names for file inputs out of its sandbox (the unlink, which sets the
 * file's ctime, is done here and recorded, not left to the sandbox's
 * removal on the thread pool at a time no check knows of). */
static void guard_end(struct task *t)
{
	struct xy_cache *c = t->ts->o.cache;
	struct xy_cache_info info;
	char how[256], path[PATH_MAX];
	struct stat st;

	for (uint32_t i = 0; t->lent && i < t->spec.n_inputs; i++) {
		struct xy_task_input *in = &t->spec.inputs[i];

		if (!t->lent[i])
			continue;
		if (xy_cache_guard(c, in->id, input_part(in), how,
				   sizeof how) == 1) {
			altered(t->ts, in->id, how);
			continue;
		}
		t->lent[i] = 0;
		if (input_part(in) != XY_CACHE_OBJECT || !t->sandbox ||
		    xy_cache_find(c, in->id, &info) < 0 ||
		    info.kind != XY_KIND_FILE ||
		    xy_cache_path(c, in->id, info.level, path, sizeof path) < 0 ||
		    lstat(path, &st) < 0)
			continue;
		if (xy_guard_unlink(t->sandbox, in->name, &st) == 0)
			xy_cache_reseal(c, in->id);
	}
}

/* ----------------------------------------------------------- starting */

/* True if every input's sandbox name is one component (pool_use). */
static int flat_inputs(const struct task *t)
{
	for (uint32_t i = 0; i < t->spec.n_inputs; i++)
		if (strchr(t->spec.inputs[i].name, '/'))
			return 0;
	return 1;
}

static int make_sandbox(struct task *t, char *err, size_t errlen)
{
	const char *base = xy_cache_sandboxes(t->ts->o.cache);
	int n;

	if (is_call(t) && !t->spec.n_outputs && flat_inputs(t)) {
		if (xy_tasks_pool_use(t) == 0)
			return 0;
		return xy_fail(err, errlen, errno, "cannot make a sandbox: %s",
			       strerror(errno));
	}
	for (int tries = 0; tries < 100; tries++) {
		free(t->sandbox);
		if (!tries)
			n = asprintf(&t->sandbox, "%s/%" PRIu64, base,
				     t->spec.task_id);
		else
			n = asprintf(&t->sandbox, "%s/%" PRIu64 "-%" PRIu64,
				     base, t->spec.task_id, ++t->ts->seq);
		if (n < 0) {
			t->sandbox = NULL;
			return xy_fail(err, errlen, ENOMEM, "out of memory");
		}
		if (xy_tasks_pool_take(t->ts, t->sandbox) == 0 ||
		    mkdir(t->sandbox, 0755) == 0)
			return 0;
		if (errno != EEXIST)
			break;
	}
	xy_fail(err, errlen, errno, "cannot make sandbox %s: %s", t->sandbox,
		strerror(errno));
	free(t->sandbox);
	t->sandbox = NULL;
	return -1;
}

/* Links every input in. Returns -1 if all went well, or the result to end
 * the task with (err says why): a name clash is the application's, any
 * other failure the worker's. */
static int link_inputs(struct task *t, char *err, size_t errlen)
{
	char path[PATH_MAX];
	uint8_t kind;

	for (uint32_t i = 0; i < t->spec.n_inputs; i++) {
		struct xy_task_input *in = &t->spec.inputs[i];

		if (guard_before(t, i) < 0)
			return XY_RESULT_WORKER_FAILED; /* t has ended */
		if (xy_unpack_input_path(t->ts->o.cache, in, path, sizeof path,
					 &kind) < 0) {
			xy_fail(err, errlen, ENOENT,
				"input '%s' left the cache", in->name);
			return XY_RESULT_INPUT_MISSING;
		}
		if (xy_sandbox_link(t->sandbox, in->name, path, kind, err,
				    errlen) < 0)
			return errno == EINVAL || errno == ENOTDIR ||
					       errno == EEXIST
				       ? XY_RESULT_APP_FAILED
				       : XY_RESULT_WORKER_FAILED;
		guard_lent(t, i, kind);
	}
	return -1;
}

/* Picks GPU indices for the task, free ones first; if the manager asks
 * for more than are free, the rest are shared. */
static int gpus_take(struct task *t)
{
	struct xy_tasks *ts = t->ts;
	uint32_t want = t->spec.gpus, k = 0, i;

	if (!want)
		return 0;
	t->gpu_ids = calloc(want, sizeof *t->gpu_ids);
	if (!t->gpu_ids)
		return -1;
	for (i = 0; i < ts->n_gpus && k < want; i++) {
		if (!ts->gpu_busy[i]) {
			ts->gpu_busy[i] = 1;
			t->gpu_ids[k++] = i;
		}
	}
	t->n_gpu_own = k;
	for (i = 0; k < want; i++)
		t->gpu_ids[k++] = ts->n_gpus ? i % ts->n_gpus : i;
	return 0;
}

/* GPU i's id: its name from the worker's list, else its index. */
static const char *gpu_id(const struct xy_tasks *ts, uint32_t i,
			  char buf[11])
{
	if (ts->gpu_name && i < ts->n_gpus)
		return ts->gpu_name[i];
	snprintf(buf, 11, "%" PRIu32, i);
	return buf;
}

static int gpu_list(struct task *t, struct xy_env *env)
{
	size_t len = 1, off = 0;
	char *s, buf[11];
	int r;

	for (uint32_t i = 0; i < t->spec.gpus; i++)
		len += strlen(gpu_id(t->ts, t->gpu_ids[i], buf)) + 1;
	if (!(s = malloc(len)))
		return -1;
	s[0] = '\0';
	for (uint32_t i = 0; i < t->spec.gpus; i++)
		off += (size_t)snprintf(s + off, len - off, "%s%s",
					i ? "," : "",
					gpu_id(t->ts, t->gpu_ids[i], buf));
	r = xy_env_set(env, "CUDA_VISIBLE_DEVICES", s);
	free(s);
	return r;
}

/* The worker's environment (less its secret), the task's resources, the
 * task's own variables, its software environment's activation, and
 * XYLEM_SANDBOX, later ones winning. *wrapped: the command to run instead
 * of the task's (malloc'd), or NULL. */
static int build_env(struct task *t, struct xy_env *env, char **wrapped)
{
	static const char *const drop[] = {"XYLEM_SECRET", NULL};
	char cores[16];

	snprintf(cores, sizeof cores, "%" PRIu32,
		 t->spec.cores ? t->spec.cores : 1);
	if (xy_env_init(env, environ, drop) < 0)
		return -1;
	if (xy_env_set(env, "CORES", cores) < 0 ||
	    xy_env_set(env, "OMP_NUM_THREADS", cores) < 0 ||
	    (t->spec.gpus && (gpus_take(t) < 0 || gpu_list(t, env) < 0)))
		return -1;
	for (uint32_t i = 0; i < t->spec.n_env; i++)
		if (xy_env_set(env, t->spec.env[i].name,
			       t->spec.env[i].value) < 0)
			return -1;
	if (xy_unpack_activate(env, t->sandbox, t->spec.inputs,
			       t->spec.n_inputs, t->spec.command, wrapped) < 0)
		return -1;
	/* PWD the sandbox, as the shell would make it (it resets a PWD that
	 * is not its directory), for a task started without one too. */
	if (xy_env_set(env, "PWD", t->sandbox) < 0)
		return -1;
	return xy_env_set(env, "XYLEM_SANDBOX", t->sandbox);
}

static void on_proc_done(struct xy_proc *p, struct xy_proc_result *r,
			 void *arg);
static void on_call_done(struct xy_lib_call *c, struct xy_lib_result *r);

/* A call, its sandbox made: an instance of its library does the rest. */
static void call_start(struct task *t)
{
	struct xy_lib_call *c = &t->call;
	char err[512];
	int result;

	memset(c, 0, sizeof *c);
	c->task_id = t->spec.task_id;
	c->library = t->spec.library;
	c->sandbox = t->sandbox;
	c->payload = t->spec.payload;
	c->payload_len = t->spec.payload ? t->spec.payload_len : 0;
	c->memory_mb = t->spec.memory_mb;
	c->time_limit_ms = t->spec.time_limit_ms;
	c->on_done = on_call_done;
	c->arg = t;
	result = xy_libs_call(t->ts->o.libs, c, err, sizeof err);
	if (result >= 0) {
		task_fail(t, result, "%s", err);
		return;
	}
	t->in_lib = 1;
	t->start_us = wall_us();
}

/* With task accounts (opts.users): the task's account, and its sandbox
 * made that account's, 0700 (taskusers.h). 0, or -1 with err. */
static int give_account(struct task *t, char *err, size_t errlen)
{
	struct xy_taskusers *u = t->ts->o.users;
	if (!u)
		return 0;
	if (!t->account)
		t->account = xy_taskusers_claim(u);
	if (xy_taskusers_give(u, t->account, t->sandbox) < 0)
		return xy_fail(err, errlen, errno,
			       "cannot give sandbox %s to account %s: %s",
			       t->sandbox, xy_taskusers_name(u, t->account),
			       strerror(errno));
	return 0;
}

static void task_start(struct task *t)
{
	struct xy_proc_opts po;
	struct xy_env env;
	char *wrapped = NULL;
	char err[512];
	int result;

	list_move(&t->ts->running, t);
	t->state = T_RUNNING;
	cores_take(t);
	if (make_sandbox(t, err, sizeof err) < 0) {
		task_fail(t, XY_RESULT_WORKER_FAILED, "%s", err);
		return;
	}
	result = link_inputs(t, err, sizeof err);
	if (result >= 0) {
		task_fail(t, result, "%s", err);
		return;
	}
	if (is_call(t)) {
		call_start(t);
		return;
	}
	if (give_account(t, err, sizeof err) < 0) {
		task_fail(t, XY_RESULT_WORKER_FAILED, "%s", err);
		return;
	}
	memset(&env, 0, sizeof env);
	if (build_env(t, &env, &wrapped) < 0) {
		xy_env_free(&env);
		free(wrapped);
		task_fail(t, XY_RESULT_WORKER_FAILED, "out of memory");
		return;
	}
	memset(&po, 0, sizeof po);
	po.command = wrapped ? wrapped : t->spec.command;
	po.cwd = t->sandbox;
	po.env = env.v;
	po.memory_mb = t->spec.memory_mb;
	po.disk_mb = t->spec.disk_mb;
	po.time_limit_ms = t->spec.time_limit_ms;
	po.on_done = on_proc_done;
	po.arg = t;
	if (t->account) {
		po.as_user = 1;
		po.uid = xy_taskusers_uid(t->ts->o.users, t->account);
		po.gid = xy_taskusers_gid(t->ts->o.users, t->account);
	}
	t->proc = xy_proc_spawn(t->ts->o.exec, &po, err, sizeof err);
	xy_env_free(&env);
	free(wrapped);
	if (!t->proc) {
		task_fail(t, XY_RESULT_WORKER_FAILED, "%s", err);
		return;
	}
	t->start_us = wall_us();
}

void xy_tasks_start_ready(struct xy_tasks *ts)
{
	while (ts->ready.head && cores_fit(ts, ts->ready.head))
		task_start(ts->ready.head);
}

void xy_tasks_reap(struct xy_tasks *ts)
{
	while (ts->dead.head)
		task_free(ts->dead.head);
}

/* ------------------------------------------------------------ outputs */

/* On the thread pool: finds, hashes and makes read-only each output. The
 * task's spec and sandbox do not change while this runs. */
static void collect_work(uv_work_t *req)
{
	struct collect *c = req->data;
	struct task *t = c->t;
	char err[200];

	for (uint32_t i = 0; i < t->spec.n_outputs; i++) {
		struct out_res *o = &c->res[i];
		const char *name = t->spec.outputs[i].name;

		if (xy_sandbox_output(t->sandbox, name, o->path,
				      sizeof o->path, o->text,
				      sizeof o->text) < 0) {
			o->missing = errno == ENOENT;
			o->bad = !o->missing;
			continue;
		}
		if (xy_object_hash_chunks(o->path, o->id, &o->kind, &o->size,
					  &o->chunks, err, sizeof err) < 0) {
			snprintf(o->text, sizeof o->text, "output '%s': %s",
				 name, err);
			o->bad = 1;
			continue;
		}
		if (xy_object_make_readonly(o->path) < 0)
			XY_LOGW("tasks", "cannot make %s read-only: %s",
				o->path, strerror(errno));
	}
}

/* Back on the loop: moves the outputs into the cache and reports. A
 * missing or unreadable output fails a task that had exited 0; a cache
 * that cannot take an output is the worker's failure. */
static void collect_after(uv_work_t *req, int status)
{
	struct collect *c = req->data;
	struct task *t = c->t;
	uint32_t n = 0, nout = t->spec.n_outputs;
	struct xy_done_output *outs = calloc(nout, sizeof *outs);
	int result = t->result;
	char err[256];
	size_t budget = DONE_CHUNK_BUDGET;

	t->busy--;
	for (uint32_t i = 0; !t->reported && i < nout; i++) {
		struct out_res *o = &c->res[i];
		struct xy_task_output *spec = &t->spec.outputs[i];

		if (status < 0 || !outs) {
			result = XY_RESULT_WORKER_FAILED;
			snprintf(t->message, sizeof t->message,
				 "cannot collect outputs");
			break;
		}
		if (o->missing || o->bad) {
			if (result == XY_RESULT_SUCCESS) {
				result = XY_RESULT_APP_FAILED;
				if (o->missing)
					snprintf(t->message, sizeof t->message,
						 "output '%s' was not created",
						 spec->name);
				else
					snprintf(t->message, sizeof t->message,
						 "%s", o->text);
			}
			continue;
		}
		if (xy_cache_adopt(t->ts->o.cache, o->path, o->id, o->kind,
				   spec->level, o->size, err, sizeof err) < 0) {
			result = XY_RESULT_WORKER_FAILED;
			snprintf(t->message, sizeof t->message,
				 "output '%s': %s", spec->name, err);
			continue;
		}
		xy_cache_hold_output(t->ts->o.cache, o->id);
		outs[n].name = spec->name;
		memcpy(outs[n].id, o->id, XY_ID_LEN);
		outs[n].kind = o->kind;
		outs[n].size = o->size;
		if ((size_t)o->chunks.n * XY_ID_LEN <= budget) {
			outs[n].chunks = o->chunks;
			budget -= (size_t)o->chunks.n * XY_ID_LEN;
		}
		n++;
	}
	task_end(t, result, t->message, outs, n);
	for (uint32_t i = 0; i < nout; i++)
		free(c->res[i].chunks.hash);
	free(c->res);
	free(c);
	free(outs);
	maybe_retire(t);
}

static void collect_start(struct task *t)
{
	struct collect *c = calloc(1, sizeof *c);

	if (c)
		c->res = calloc(t->spec.n_outputs, sizeof *c->res);
	if (!c || !c->res) {
		free(c);
		task_fail(t, XY_RESULT_WORKER_FAILED, "out of memory");
		return;
	}
	c->t = t;
	c->req.data = c;
	if (uv_queue_work(t->ts->o.loop, &c->req, collect_work,
			  collect_after) < 0) {
		free(c->res);
		free(c);
		task_fail(t, XY_RESULT_WORKER_FAILED,
			  "cannot queue output hashing");
		return;
	}
	t->state = T_COLLECTING;
	t->busy++;
}

/* The process has ended and its output is read. A task without outputs
 * is reported here and now, with no thread hop. */
static void on_proc_done(struct xy_proc *p, struct xy_proc_result *r,
			 void *arg)
{
	struct task *t = arg;

	t->proc = NULL;
	xy_proc_release(p);
	/* Its account's processes end before its outputs are taken. */
	xy_taskusers_release(t->ts->o.users, t->account);
	t->account = 0;
	t->end_us = wall_us();
	t->exit_code = r->exit_code;
	t->output = r->output;
	t->output_len = r->output_len;
	t->truncated = r->truncated;
	if (t->reported) {
		maybe_retire(t);
		return;
	}
	switch (r->end) {
	case XY_PROC_LIMIT:
		task_end(t, XY_RESULT_RESOURCES_EXHAUSTED, r->message, NULL,
			 0);
		return;
	case XY_PROC_KILLED:
		task_end(t, XY_RESULT_CANCELLED, "killed", NULL, 0);
		return;
	case XY_PROC_TERMINATED:
		/* Lost with its worker: it runs again elsewhere without
		 * using a retry. */
		t->result = XY_RESULT_WORKER_FAILED;
		snprintf(t->message, sizeof t->message, "%s",
			 XY_PROC_TERMINATED_TEXT);
		break;
	case XY_PROC_SIGNALED:
		t->result = XY_RESULT_APP_FAILED;
		snprintf(t->message, sizeof t->message,
			 "killed by signal %d (%s)", r->signal,
			 strsignal(r->signal));
		break;
	default:
		t->result = r->exit_code ? XY_RESULT_APP_FAILED
					 : XY_RESULT_SUCCESS;
		if (r->exit_code)
			snprintf(t->message, sizeof t->message,
				 "exited with status %d", r->exit_code);
		break;
	}
	/* A command that failed leaves its outputs in its sandbox, which
	 * goes with it: they are whatever it left, perhaps cut short by a
	 * full disk, and the manager brings back only a success's outputs.
	 * Kept, they would hold that disk full for the next task. */
	if (!t->spec.n_outputs || t->result != XY_RESULT_SUCCESS)
		task_end(t, t->result, t->message, NULL, 0);
	else
		collect_start(t);
}

/* The call's instance replied, or failed, or let go of a cancelled call.
 * A reply is the output; the declared outputs are collected from the
 * call's sandbox as a command's are. */
static void on_call_done(struct xy_lib_call *c, struct xy_lib_result *r)
{
	struct task *t = c->arg;

	t->in_lib = 0;
	t->end_us = wall_us();
	free(t->output);
	t->output = r->output;
	t->output_len = r->output ? r->output_len : 0;
	t->truncated = r->truncated;
	t->exit_code = r->exit_code;
	t->failure = (uint8_t)r->failure;
	if (t->reported) {
		maybe_retire(t);
		return;
	}
	if (r->result != XY_RESULT_SUCCESS || !t->spec.n_outputs) {
		task_end(t, r->result, r->message, NULL, 0);
		return;
	}
	t->result = XY_RESULT_SUCCESS;
	collect_start(t);
}

/* ------------------------------------------------ cancel and shutdown */

int xy_tasks_cancel(struct xy_tasks *ts, uint64_t task_id)
{
	struct task *t = *xy_tasks_slot(ts, task_id);

	if (!t) {
		errno = ENOENT;
		return -1;
	}
	if (t->proc)
		xy_proc_kill(t->proc);
	if (t->in_lib && xy_libs_cancel(ts->o.libs, &t->call) == 0)
		t->in_lib = 0;
	task_end(t, XY_RESULT_CANCELLED, "cancelled by the manager", NULL, 0);
	return 0;
}

int64_t xy_tasks_unfinished(struct xy_tasks *ts, uint64_t **ids)
{
	uint64_t *v = NULL;
	size_t n = 0, i;
	struct task *t;

	*ids = NULL;
	if (ts->count && !(v = malloc(ts->count * sizeof *v)))
		return -1;
	for (i = 0; i < TBUCKETS; i++)
		for (t = ts->table[i]; t; t = t->hnext)
			v[n++] = t->spec.task_id;
	if (!n) {
		free(v);
		v = NULL;
	}
	*ids = v;
	return (int64_t)n;
}

void xy_tasks_abort_all(struct xy_tasks *ts)
{
	struct task *t;

	ts->quiet = 1;
	for (size_t i = 0; i < TBUCKETS; i++) {
		while ((t = ts->table[i])) {
			if (t->proc)
				xy_proc_kill(t->proc);
			if (t->in_lib &&
			    xy_libs_cancel(ts->o.libs, &t->call) == 0)
				t->in_lib = 0;
			task_end(t, XY_RESULT_CANCELLED, "worker stopping",
				 NULL, 0);
		}
	}
}

void xy_tasks_release_all(struct xy_tasks *ts)
{
	struct task *t, *next;

	for (t = ts->running.head; t; t = next) {
		next = t->next;
		if (t->proc) {
			xy_proc_release(t->proc);
			t->proc = NULL;
		}
		if (t->in_lib) {
			xy_libs_detach(ts->o.libs, &t->call);
			t->in_lib = 0;
		}
		maybe_retire(t);
	}
}
