/*
 * manager.c: the manager: its creation and teardown, the public calls a
 * program makes (declare, submit, cancel, wait), the task life cycle that
 * the sub-contexts drive, and the control connections from workers and
 * status clients. The sub-contexts are in catalog.c, wtable.c, sched.c,
 * xplan.c, lineage.c, history.c, status.c, pools.c and client.c (clients
 * that submit tasks over the control port; docs/architecture.md);
 * declared libraries in libraries.c.
 *
 * The loop runs only inside xy_manager_wait. Each turn: libuv runs timers
 * and reads (message handlers and thread completions change state and set
 * sched_dirty), then the prepare phase runs one scheduling round before
 * libuv polls again.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "release.h"
#include "mtls.h"
#include "log.h"
#include "adopt.h"
#include "memo.h"
#include "pools.h"
#include "util.h"

/* Connections the kernel holds for us before we accept them: a storm of
 * workers that start together (a whole job array) must not have its SYNs
 * dropped, which costs each a retransmission of a second or more. The
 * kernel caps it at net.core.somaxconn (4096 on Linux since 5.4). */
#define XY_LISTEN_BACKLOG 4096
#define WHO "manager"
#define MAX_WORKER_LOSSES 10

static void set_state(struct xy_manager *m, struct xy_task *t,
		      xy_task_state s)
{
	int64_t *counts[] = {
		[XY_TASK_WAITING] = &m->n_waiting,
		[XY_TASK_READY] = NULL, /* the scheduler counts these */
		[XY_TASK_RUNNING] = &m->n_running,
		[XY_TASK_DONE] = &m->n_done,
		[XY_TASK_RETURNED] = NULL,
	};
	xy_task_state from = t->state;
	if (counts[t->state])
		(*counts[t->state])--;
	t->state = s;
	if (counts[s])
		(*counts[s])++;
	xy_dash_event(m->dash, &(struct xy_dash_ev){.kind = XY_DASH_STATE,
						    .task = t, .from = from});
}

void xy_manager_wake(struct xy_manager *m)
{
	m->sched_dirty = 1;
}

int xy_manager_send(struct xy_manager *m, struct xy_worker *w, unsigned type,
		    const union xy_msg *msg)
{
	if (!w->conn)
		return -1;
	if (m->corking && !w->corked)
		xy_adopt_cork(m, w);
	return xy_conn_send(w->conn, type, msg);
}

/* ---------------------------------------------------------- task table */

static int table_grow(struct xy_manager *m)
{
	uint64_t size = m->task_table_size ? 2 * m->task_table_size : 1024;
	struct xy_task **nt = calloc(size, sizeof *nt);
	if (!nt)
		return -1;
	for (uint64_t i = 0; i < m->task_table_size; i++) {
		for (struct xy_task *t = m->task_table[i], *n; t; t = n) {
			n = t->hnext;
			t->hnext = nt[t->id & (size - 1)];
			nt[t->id & (size - 1)] = t;
		}
	}
	free(m->task_table);
	m->task_table = nt;
	m->task_table_size = size;
	return 0;
}

static struct xy_task *table_find(struct xy_manager *m, uint64_t id)
{
	if (!m->task_table_size)
		return NULL;
	struct xy_task *t = m->task_table[id & (m->task_table_size - 1)];
	while (t && t->id != id)
		t = t->hnext;
	return t;
}

static void table_remove(struct xy_manager *m, struct xy_task *t)
{
	struct xy_task **pp = &m->task_table[t->id & (m->task_table_size - 1)];
	while (*pp && *pp != t)
		pp = &(*pp)->hnext;
	if (*pp) {
		*pp = t->hnext;
		m->n_entries--;
	}
	t->hnext = NULL;
}

/* ---------------------------------------------------------- life cycle */

static const char *task_name(const struct xy_task *t, char *buf, size_t n)
{
	if (t->tag)
		return t->tag;
	snprintf(buf, n, "%llu", (unsigned long long)t->id);
	return buf;
}

/* The output a history event keeps: a command's stdout and stderr, or
 * the log of a call's library instance that ended during it; never a
 * call's reply, which is a pickle. Only once the attempt ended. */
static const char *history_output(const struct xy_task *t,
				  const char *event, size_t *len)
{
	*len = 0;
	if (!t->output || (strcmp(event, "done") && strcmp(event, "retry")))
		return NULL;
	if (t->library && t->failure == XY_FAILURE_NONE)
		return NULL;
	*len = t->output_len;
	return t->output;
}

/* For the history's dispatched event, before t's inputs are staged on
 * w: how many inputs it has and how many w holds already (cache hits,
 * which the run report counts), and the cores, memory and GPUs it
 * holds. */
static void history_cached(const struct xy_task *t,
			   const struct xy_worker *w, char *buf, size_t n)
{
	uint32_t hits = 0;

	for (uint32_t i = 0; i < t->n_inputs; i++) {
		const struct xy_object *o = t->inputs[i].file->obj;
		const struct replica *r =
			o ? xy_catalog_replica_find((struct xy_object *)o,
						    (struct xy_worker *)w)
			  : NULL;
		hits += r && r->ready;
	}
	/* And what it holds while it runs: the report's use of each
	 * resource over time. */
	snprintf(buf, n, "inputs %u, cached %u, cores %d, memory_mb %lld, "
		 "gpus %d", t->n_inputs, hits, t->cores > 0 ? t->cores : 1,
		 (long long)(t->memory > 0 ? t->memory : 0),
		 t->gpus > 0 ? t->gpus : 0);
}

static void history_task(struct xy_manager *m, struct xy_task *t,
			 const char *event, const char *detail)
{
	const char *out;
	size_t len;

	if (!m->history)
		return;
	out = history_output(t, event, &len);
	xy_history_task(m->history, xy_now(), t->id, t->tag, event,
			t->worker ? t->worker->name : t->worker_name,
			t->attempts, (int)t->result, t->exit_code, detail,
			out, len);
}

/* t failed for good: nothing it was to write will come, so whoever waits
 * on one of its outputs fails. */
static void fail_outputs(struct xy_manager *m, struct xy_task *t)
{
	char name[32], why[1024];
	for (uint32_t i = 0; i < t->n_outputs; i++) {
		struct xy_file *f = t->outputs[i].file;
		if (f->producer != t)
			continue;
		if (t->internal && !t->job)
			snprintf(why, sizeof why, "input %s was lost and could "
				 "not be made again: task %s failed: %s",
				 xy_file_label(f),
				 task_name(t, name, sizeof name),
				 t->error ? t->error : "");
		else
			snprintf(why, sizeof why,
				 "input %s was not made: task %s %s",
				 xy_file_label(f),
				 task_name(t, name, sizeof name),
				 t->result == XY_RESULT_CANCELLED
					 ? "was cancelled"
					 : "failed");
		f->state = FILE_MISSING;
		xy_catalog_file_failed(m->catalog, f, why);
	}
}

/* t leaves the task table: it is no longer any file's producer, and
 * gives back its references on the files it lists (a file nothing else
 * needs is freed at the catalogue's next phase). */
static void leave_files(struct xy_task *t)
{
	for (uint32_t i = 0; i < t->n_outputs; i++) {
		if (t->outputs[i].file->producer == t)
			t->outputs[i].file->producer = NULL;
		xy_catalog_file_decref(t->outputs[i].file);
	}
	for (uint32_t i = 0; i < t->n_inputs; i++)
		xy_catalog_file_decref(t->inputs[i].file);
}

/* An internal task is never returned: it leaves the table and its files
 * now; a remake is freed at the lineage's next phase, a client's task
 * goes to its job. */
static void retire_internal(struct xy_manager *m, struct xy_task *t)
{
	table_remove(m, t);
	leave_files(t);
	set_state(m, t, XY_TASK_RETURNED);
	if (t->job)
		xy_clients_task_done(m->clients, t);
	else
		xy_lineage_retire(m->lineage, t);
}

/* The task is finished for good: its result is set. */
static void finish(struct xy_manager *m, struct xy_task *t)
{
	set_state(m, t, XY_TASK_DONE);
	t->qprev = NULL;
	t->qnext = NULL;
	if (!t->internal) {
		if (m->done_tail)
			m->done_tail->qnext = t;
		else
			m->done_head = t;
		m->done_tail = t;
	}
	history_task(m, t, "done", t->error);
	if (t->result != XY_RESULT_SUCCESS) {
		xy_memo_stopped(m->memo, t);
		fail_outputs(m, t);
	} else if (!t->skipped) {
		xy_memo_finished(m->memo, t);
	}
	if (!t->job) /* a client's: after its ANSWER record (client.c) */
		xy_release_task_done(m->release, t);
	if (t->internal)
		retire_internal(m, t);
}

double xy_manager_now(const struct xy_manager *m)
{
	return m && m->clock ? m->clock() : xy_mono();
}

static void set_error(struct xy_task *t, const char *why)
{
	char *e = why ? strdup(why) : NULL;
	free(t->error);
	t->error = e;
}

void xy_manager_task_fail(struct xy_manager *m, struct xy_task *t,
			  xy_result r, const char *why)
{
	if (t->state == XY_TASK_DONE || t->state == XY_TASK_RETURNED)
		return;
	if (t->state == XY_TASK_READY)
		xy_sched_remove(m->sched, t);
	if (t->parked)
		xy_adopt_unpark(m->adopt, t);
	for (uint32_t i = 0; i < t->n_inputs; i++)
		xy_catalog_remove_waiter(t->inputs[i].file, t);
	t->result = r;
	if (why)
		set_error(t, why);
	finish(m, t);
}

void xy_manager_task_ready(struct xy_manager *m, struct xy_task *t)
{
	if (m->memo && xy_memo_try(m->memo, t))
		return;
	if (m->adopt && xy_adopt_try(m->adopt, t))
		return;
	xy_manager_task_queue(m, t);
}

void xy_manager_task_queue(struct xy_manager *m, struct xy_task *t)
{
	if (xy_sched_push(m->sched, t) < 0) {
		xy_manager_task_fail(m, t, XY_RESULT_MANAGER_FAILED,
				     "the manager is out of memory");
		return;
	}
	set_state(m, t, XY_TASK_READY);
	m->sched_dirty = 1;
}

void xy_manager_task_skip(struct xy_manager *m, struct xy_task *t,
			  const char *why)
{
	t->skipped = 1;
	t->result = XY_RESULT_SUCCESS;
	history_task(m, t, "skipped", why);
	finish(m, t);
}

/* Puts t back to WAITING or READY, its inputs looked up again. */
void xy_manager_task_requeue(struct xy_manager *m, struct xy_task *t,
			     const char *why)
{
	if (why)
		history_task(m, t, "requeued", why);
	t->pending = 0;
	set_state(m, t, XY_TASK_WAITING);
	for (uint32_t i = 0; i < t->n_inputs; i++) {
		if (xy_catalog_need(m->catalog, t->inputs[i].file, t) < 0) {
			char *e = t->error;
			t->error = NULL;
			xy_manager_task_fail(m, t, XY_RESULT_INPUT_MISSING, e);
			free(e);
			return;
		}
	}
	if (t->pending == 0)
		xy_manager_task_ready(m, t);
}

/* The TASK message for t, with in and out (arrays of t's inputs and
 * outputs) filled: it points into t, which must outlive it. */
static void task_message(struct xy_task *t, struct xy_msg_task *tm,
			 struct xy_task_input *in, struct xy_task_output *out)
{
	tm->task_id = t->id;
	tm->command = t->command;
	tm->cores = (uint32_t)t->cores;
	tm->memory_mb = (uint64_t)t->memory;
	tm->disk_mb = (uint64_t)t->disk;
	tm->gpus = (uint32_t)t->gpus;
	tm->time_limit_ms = (uint64_t)(t->time_limit * 1000);
	tm->n_env = t->n_env;
	tm->env = t->env;
	for (uint32_t i = 0; i < t->n_inputs; i++) {
		struct xy_file *f = t->inputs[i].file;
		memcpy(in[i].id, f->obj->id, XY_ID_LEN);
		in[i].kind = xy_input_kind(t, f);
		in[i].level = (uint8_t)f->level;
		in[i].name = t->inputs[i].as;
	}
	for (uint32_t i = 0; i < t->n_outputs; i++) {
		out[i].name = t->outputs[i].as;
		out[i].level = (uint8_t)t->outputs[i].file->level;
	}
	tm->n_inputs = t->n_inputs;
	tm->inputs = in;
	tm->n_outputs = t->n_outputs;
	tm->outputs = out;
	tm->library = t->library;
	tm->payload = t->payload;
	tm->payload_len = t->payload_len;
	if (t->key)
		memcpy(tm->key, t->key, XY_ID_LEN);
}

/* t runs on w from now: committed there, and recorded in the journal
 * before anything about it goes to w. Returns 0 if it was recorded. */
static int commit_to(struct xy_manager *m, struct xy_task *t,
		     struct xy_worker *w)
{
	set_state(m, t, XY_TASK_RUNNING);
	t->failure = XY_FAILURE_NONE; /* this attempt's, from its TASK_DONE */
	xy_wtable_commit(m->wtable, w, t);
	t->attempts++;
	t->times.dispatched = xy_now();
	free(t->worker_name);
	t->worker_name = strdup(w->name);
	xy_dash_event(m->dash, &(struct xy_dash_ev){.kind = XY_DASH_DISPATCHED,
						    .task = t});
	return xy_memo_dispatched(m->memo, t, w->name);
}

int xy_manager_task_adopt(struct xy_manager *m, struct xy_task *t,
			  struct xy_worker *w, uint64_t held_id)
{
	union xy_msg msg = {.adopt = {.held_id = held_id, .task_id = t->id}};

	/* What it still waits for there is fetched as for a dispatch. */
	if (xy_xplan_stage(m->xplan, t, w) < 0) {
		xy_manager_task_fail(m, t, XY_RESULT_MANAGER_FAILED,
				     "the manager is out of memory");
		return -1;
	}
	commit_to(m, t, w);
	if (xy_manager_send(m, w, XY_MSG_ADOPT, &msg) < 0) {
		xy_wtable_release(m->wtable, w, t);
		xy_manager_task_lost(m, t, "could not be adopted");
		return -1;
	}
	history_task(m, t, "adopted", NULL);
	return 0;
}

void xy_manager_task_dispatch(struct xy_manager *m, struct xy_task *t,
			      struct xy_worker *w)
{
	union xy_msg msg = {0};
	struct xy_task_input *in = xy__calloc(m, t->n_inputs + 1, sizeof *in);
	struct xy_task_output *out =
		xy__calloc(m, t->n_outputs + 1, sizeof *out);

	/* Everything that needs memory comes before w is committed. A task
	 * that cannot go fails as the manager's fault (requeued, it would
	 * be picked again at once, in this same round); the fetches sent
	 * for it go on, recorded as any other. */
	char cached[160] = "";
	if (m->history) /* a pass over the inputs' replicas: only for it */
		history_cached(t, w, cached, sizeof cached);
	if (!in || !out || xy_xplan_stage(m->xplan, t, w) < 0 ||
	    (t->library && xy_manager_send_library(m, w, t->library) < 0)) {
		free(in);
		free(out);
		XY_LOGW(WHO, "task %llu cannot be sent to %s: the manager is "
			"out of memory", (unsigned long long)t->id, w->name);
		xy_manager_task_fail(m, t, XY_RESULT_MANAGER_FAILED,
				     "the manager is out of memory");
		return;
	}
	task_message(t, &msg.task, in, out);
	/* Not recorded: no worker keeps it for a later manager. */
	if (commit_to(m, t, w) < 0)
		memset(msg.task.key, 0, XY_ID_LEN);
	int rc = xy_manager_send(m, w, XY_MSG_TASK, &msg);
	free(in);
	free(out);
	if (rc < 0) {
		/* Refused by the encoder, or the connection is closing. */
		xy_wtable_release(m->wtable, w, t);
		xy_manager_task_lost(m, t, "could not be sent to its worker");
		return;
	}
	history_task(m, t, "dispatched", cached[0] ? cached : NULL);
}

/* The worker t ran on was lost (disconnected, killed, or a transfer
 * failed): run it again elsewhere without using a retry, up to a bound
 * that stops a task which kills every worker it lands on. */
void xy_manager_task_lost(struct xy_manager *m, struct xy_task *t,
			  const char *why)
{
	xy_memo_stopped(m->memo, t);
	if (t->cancel_requested) {
		t->result = XY_RESULT_CANCELLED;
		set_error(t, "cancelled");
		finish(m, t);
		return;
	}
	if (++t->worker_losses > MAX_WORKER_LOSSES) {
		char msg[512];
		snprintf(msg, sizeof msg, "failed on a worker %d times; "
			 "last: %s", t->worker_losses, why ? why : "");
		t->result = XY_RESULT_WORKER_FAILED;
		set_error(t, msg);
		finish(m, t);
		return;
	}
	t->result = XY_RESULT_SUCCESS;
	xy_manager_task_requeue(m, t, why);
}

void xy_manager_retrieved(struct xy_manager *m, struct xy_task *t, int ok,
			  int local, const char *why)
{
	t->retrievals--;
	if (!ok && (local || !t->retrieval_failed)) {
		/* The manager's own failure outranks a lost worker's. */
		t->retrieval_failed = local ? 2 : 1;
		set_error(t, why);
	}
	if (t->retrievals > 0 || m->destroying)
		return;
	if (t->cancel_requested && !t->retrieval_failed) {
		t->result = XY_RESULT_CANCELLED;
		set_error(t, "cancelled");
	}
	if (!t->retrieval_failed || t->cancel_requested) {
		finish(m, t);
		return;
	}
	if (t->retrieval_failed == 2) {
		/* The manager cannot write where it was asked to: running
		 * the task again would not help. */
		t->retrieval_failed = 0;
		t->result = XY_RESULT_MANAGER_FAILED;
		finish(m, t);
		return;
	}
	/* An output was lost with its worker: make it again. */
	t->retrieval_failed = 0;
	for (uint32_t i = 0; i < t->n_outputs; i++)
		if (t->outputs[i].file->producer == t)
			xy_catalog_file_reset(m->catalog, t->outputs[i].file);
	xy_manager_task_lost(m, t, why);
}

/* ------------------------------------------------------------ threads */

struct post {
	void (*fn)(struct xy_manager *, void *);
	void *arg;
	struct post *next;
};

int xy_manager_post(struct xy_manager *m,
		    void (*fn)(struct xy_manager *m, void *arg), void *arg)
{
	struct post *p = malloc(sizeof *p);
	if (!p) {
		errno = ENOMEM;
		return -1;
	}
	p->fn = fn;
	p->arg = arg;
	p->next = NULL;
	pthread_mutex_lock(&m->post_lock);
	if (m->closed) {
		pthread_mutex_unlock(&m->post_lock);
		free(p);
		errno = ESHUTDOWN;
		return -1;
	}
	if (m->posts_tail)
		m->posts_tail->next = p;
	else
		m->posts = p;
	m->posts_tail = p;
	pthread_mutex_unlock(&m->post_lock);
	uv_async_send(&m->async);
	return 0;
}

void xy_manager_interrupt(struct xy_manager *m)
{
	__atomic_store_n(&m->interrupted, 1, __ATOMIC_SEQ_CST);
	uv_async_send(&m->async);
}

static int take_interrupt(struct xy_manager *m)
{
	return __atomic_exchange_n(&m->interrupted, 0, __ATOMIC_SEQ_CST);
}

/* Runs what other threads posted, in order. */
static void on_async(uv_async_t *h)
{
	struct xy_manager *m = h->data;
	pthread_mutex_lock(&m->post_lock);
	struct post *p = m->posts;
	m->posts = m->posts_tail = NULL;
	pthread_mutex_unlock(&m->post_lock);
	while (p) {
		struct post *next = p->next;
		p->fn(m, p->arg);
		free(p);
		p = next;
	}
}

/* ------------------------------------------------------------ messages */

/* True if t is to keep the output w reported under name: t succeeded
 * and writes a file of that name. */
static int output_wanted(const struct xy_task *t, const char *name)
{
	for (uint32_t i = 0; t->result == XY_RESULT_SUCCESS &&
			     i < t->n_outputs; i++)
		if (!strcmp(t->outputs[i].as, name) &&
		    t->outputs[i].file->producer == t)
			return 1;
	return 0;
}

/* The level t declared for its output of that name (none: the task
 * level, the lowest). */
static uint8_t output_level(const struct xy_task *t, const char *name)
{
	for (uint32_t i = 0; i < t->n_outputs; i++)
		if (!strcmp(t->outputs[i].as, name))
			return (uint8_t)t->outputs[i].file->level;
	return XY_CACHE_TASK;
}

/* Records the outputs w reported for t, and starts bringing back those
 * that t keeps. -1 if memory was short for one of those (it is not
 * recorded or not brought back, and w may let it go), 0 otherwise. */
static int task_done_outputs(struct xy_manager *m, struct xy_task *t,
			     struct xy_worker *w,
			     struct xy_msg_task_done *d)
{
	int rc = 0;
	for (uint32_t k = 0; k < d->n_outputs; k++) {
		struct xy_done_output *o = &d->outputs[k];
		struct xy_object *obj =
			xy_catalog_object(m->catalog, o->id, o->kind, o->size);
		int fetching = 0;
		if (!obj) {
			if (output_wanted(t, o->name))
				rc = -1;
			xy_manager_release(m, w, o->id);
			continue;
		}
		xy_catalog_set_chunks(obj, &o->chunks);
		if (output_level(t, o->name) > obj->level)
			obj->level = output_level(t, o->name);
		/* Unrecorded, w's copy is not a source: a temp is then
		 * made again when a task needs it. */
		xy_catalog_replica_add(obj, w, 1);
		for (uint32_t i = 0; t->result == XY_RESULT_SUCCESS &&
				     i < t->n_outputs; i++) {
			struct xy_file *f = t->outputs[i].file;
			if (strcmp(t->outputs[i].as, o->name) ||
			    f->producer != t)
				continue;
			if (f->temp) { /* stays on w: back only if asked */
				xy_catalog_file_ready(m->catalog, f, obj);
				xy_lineage_made(m->lineage, f);
			} else if (xy_xplan_retrieve(m->xplan, t, w, obj,
						     f->path) == 0) {
				xy_catalog_file_ready(m->catalog, f, obj);
				fetching = 1;
			} else {
				rc = -1; /* t fails: f is not made */
			}
		}
		/* The worker holds each output it reports until we have
		 * it; one we do not bring back may go at once. */
		if (!fetching)
			xy_manager_release(m, w, obj->id);
	}
	return rc;
}

void xy_manager_release(struct xy_manager *m, struct xy_worker *w,
			const uint8_t id[XY_ID_LEN])
{
	union xy_msg msg;

	memcpy(msg.release.id, id, XY_ID_LEN);
	xy_manager_send(m, w, XY_MSG_RELEASE, &msg);
}

static int running_uses(struct xy_worker *w, struct xy_object *o)
{
	for (struct xy_task *r = w->running; r; r = r->qnext)
		for (uint32_t i = 0; i < r->n_inputs; i++)
			if (r->inputs[i].file->obj == o)
				return 1;
	return 0;
}

/* t is done with w: w deletes the task-level inputs that no other task
 * running there needs. The manager decides, since only it knows what is
 * bound for w next. */
static void drop_task_level(struct xy_manager *m, struct xy_task *t,
			    struct xy_worker *w)
{
	for (uint32_t i = 0; i < t->n_inputs; i++) {
		struct xy_file *f = t->inputs[i].file;
		if (f->level != XY_CACHE_TASK || !f->obj ||
		    !xy_catalog_replica_find(f->obj, w) || running_uses(w, f->obj))
			continue;
		xy_catalog_replica_drop(f->obj, w);
		union xy_msg msg;
		memcpy(msg.unlink.id, f->obj->id, XY_ID_LEN);
		xy_manager_send(m, w, XY_MSG_UNLINK, &msg);
	}
}

static void on_task_done(struct xy_manager *m, struct xy_worker *w,
			 union xy_msg *msg)
{
	struct xy_msg_task_done *d = &msg->task_done;
	struct xy_task *t = table_find(m, d->task_id);
	if (!t || t->worker != w) {
		XY_LOGD(WHO, "worker %s reported unknown task %llu", w->name,
			(unsigned long long)d->task_id);
		/* It holds what it reported until told: nothing comes. */
		for (uint32_t k = 0; k < d->n_outputs; k++)
			xy_manager_release(m, w, d->outputs[k].id);
		return;
	}
	xy_wtable_release(m->wtable, w, t);
	drop_task_level(m, t, w);
	w->n_done++;
	free(t->output);
	t->output = d->output;
	t->output_len = d->output_len;
	d->output = NULL;
	t->exit_code = d->exit_code;
	t->failure = (xy_failure)d->failure;
	t->times.started = d->start_us / 1e6;
	t->times.finished = d->end_us / 1e6;
	t->result = t->cancel_requested ? XY_RESULT_CANCELLED
					: (xy_result)d->result;
	set_error(t, d->message && *d->message ? d->message : NULL);
	if (task_done_outputs(m, t, w, d) < 0) {
		/* An output the manager has no memory to keep: its own
		 * failure, as when it cannot write one (xy_manager_retrieved,
		 * which settles it if retrievals are under way). */
		t->retrieval_failed = 2;
		set_error(t, "the manager is out of memory");
		if (t->retrievals == 0) {
			t->retrieval_failed = 0;
			t->result = XY_RESULT_MANAGER_FAILED;
		}
	}

	switch (t->result) {
	case XY_RESULT_SUCCESS:
		if (t->retrievals == 0)
			finish(m, t);
		break;
	case XY_RESULT_WORKER_FAILED: {
		/* The worker's own failure (an input it could not fetch or
		 * store): named, since the task may meet others later. */
		char why[1024];
		snprintf(why, sizeof why, "on %s: %s", w->name,
			 t->error ? t->error : "worker failed");
		xy_manager_task_lost(m, t, why);
		break;
	}
	case XY_RESULT_APP_FAILED:
	case XY_RESULT_RESOURCES_EXHAUSTED:
		if (++t->failures <= t->retries) {
			history_task(m, t, "retry", t->error);
			t->result = XY_RESULT_SUCCESS;
			xy_manager_task_requeue(m, t, NULL);
			break;
		}
		/* fall through */
	default:
		finish(m, t);
	}
	/* After its outputs' retrievals began: they hold it back. */
	xy_wtable_drained(m->wtable, w);
}

static void on_hello(struct xy_manager *m, struct xy_worker *w,
		     union xy_msg *msg)
{
	if (w->greeted) {
		xy_conn_close(w->conn, "second HELLO");
		return;
	}
	xy_wtable_hello(m->wtable, w, &msg->hello);
	union xy_msg welcome = {.welcome = {.epoch = xy_memo_epoch(m->memo),
					    .lease_ms = m->lease_ms}};
	xy_manager_send(m, w, XY_MSG_WELCOME, &welcome);
	xy_adopt_offers(m, m->adopt, w, &msg->hello);
	xy_pools_worker_ready(m->pools, w);
}

static void on_cache_update(struct xy_manager *m, struct xy_worker *w,
			    union xy_msg *msg)
{
	xy_xplan_update(m->xplan, w, &msg->cache_update);
}

static void on_url_done(struct xy_manager *m, struct xy_worker *w,
			union xy_msg *msg)
{
	xy_urls_done(m->urls, w, &msg->url_done);
}

static void on_bye(struct xy_manager *m, struct xy_worker *w,
		   union xy_msg *msg)
{
	struct xy_msg_bye *b = &msg->bye;
	xy_wtable_disable(m->wtable, w);
	XY_LOGI(WHO, "worker %s is leaving with %u tasks", w->name,
		b->n_tasks);
	for (uint32_t i = 0; i < b->n_tasks; i++) {
		struct xy_task *t = table_find(m, b->task_ids[i]);
		if (!t || t->worker != w)
			continue;
		xy_wtable_release(m->wtable, w, t);
		xy_manager_task_lost(m, t, "its worker left");
	}
}

/* The worker takes no new task (SIGUSR1, say, before its allocation
 * ends); once it runs none, it is told to stop (on_task_done, and
 * xplan.c as transfers from it end). */
static void on_drain(struct xy_manager *m, struct xy_worker *w,
		     union xy_msg *msg)
{
	(void)msg;
	if (w->draining)
		return;
	XY_LOGI(WHO, "worker %s is draining: %d tasks to finish", w->name,
		w->n_running);
	xy_history_worker(m->history, xy_now(), w->name, "draining", NULL);
	xy_wtable_drain(m->wtable, w);
}

static void on_keepalive(struct xy_manager *m, struct xy_worker *w,
			 union xy_msg *msg)
{
	(void)m, (void)w, (void)msg;
}

typedef void (*worker_handler)(struct xy_manager *, struct xy_worker *,
			       union xy_msg *);

/* What a worker may send; anything else closes its connection. */
static const worker_handler worker_handlers[XY_MSG_MAX] = {
	[XY_MSG_HELLO] = on_hello,
	[XY_MSG_CACHE_UPDATE] = on_cache_update,
	[XY_MSG_URL_DONE] = on_url_done,
	[XY_MSG_TASK_DONE] = on_task_done,
	[XY_MSG_BYE] = on_bye,
	[XY_MSG_DRAIN] = on_drain,
	[XY_MSG_KEEPALIVE] = on_keepalive,
};

static void on_status_msg(struct xy_manager *m, struct xy_conn *c,
			  unsigned type)
{
	if (type != XY_MSG_STATUS_REQ) {
		xy_conn_close(c, "unexpected message from a status client");
		return;
	}
	union xy_msg reply = {0};
	reply.status_reply.json = xy_status_build(m);
	if (!reply.status_reply.json) {
		xy_conn_close(c, "out of memory");
		return;
	}
	xy_conn_send(c, XY_MSG_STATUS_REPLY, &reply);
	free(reply.status_reply.json);
}

/* What the manager knows of one control connection: its conn's data. */
struct peer {
	struct xy_manager *m;
	struct xy_conn *conn;
	struct xy_worker *worker; /* once a worker has authenticated */
	struct client *client;    /* once a client has authenticated */
	size_t index;             /* in m->peers */
};

static void conn_msg(struct xy_conn *c, unsigned type, union xy_msg *msg)
{
	struct peer *p = xy_conn_data(c);
	if (p->client) {
		xy_clients_msg(p->m->clients, p->client, type, msg);
		return;
	}
	if (!p->worker) {
		on_status_msg(p->m, c, type);
		return;
	}
	struct xy_worker *w = p->worker;
	w->last_heard = uv_now(&p->m->loop);
	worker_handler h = type < XY_MSG_MAX ? worker_handlers[type] : NULL;
	if (!h || (!w->greeted && type != XY_MSG_HELLO)) {
		char why[64];
		snprintf(why, sizeof why, "unexpected %s", xy_msg_name(type));
		XY_LOGW(WHO, "closing %s: %s", w->name, why);
		xy_conn_close(c, why);
		return;
	}
	h(p->m, w, msg);
}

static void conn_ready(struct xy_conn *c, uint8_t role)
{
	struct peer *p = xy_conn_data(c);
	if (role == XY_ROLE_STATUS)
		return;
	if (role == XY_ROLE_CLIENT) {
		if (!(p->client = xy_clients_add(p->m->clients, c)))
			xy_conn_close(c, "out of memory");
		return;
	}
	if (role != XY_ROLE_WORKER) {
		xy_conn_close(c, "wrong role for the control port");
		return;
	}
	p->worker = xy_wtable_add(p->m->wtable, c);
	if (!p->worker) {
		xy_conn_close(c, "out of memory");
		return;
	}
	xy_history_worker(p->m->history, xy_now(), p->worker->name,
			  "connected", NULL);
}

static void conn_close(struct xy_conn *c, const char *reason)
{
	struct peer *p = xy_conn_data(c);
	struct xy_manager *m = p->m;
	m->peers[p->index] = m->peers[--m->n_peers];
	m->peers[p->index]->index = p->index;
	if (p->client) {
		xy_clients_remove(m->clients, p->client, reason);
	} else if (p->worker) {
		xy_adopt_uncork_gone(m, p->worker);
		p->worker->conn = NULL;
		xy_adopt_worker_gone(m->adopt, p->worker);
		xy_release_worker_gone(m->release, p->worker);
		xy_wtable_remove(m->wtable, p->worker, reason);
	} else if (xy_conn_role(c) == 0) {
		xy_history_worker(m->history, xy_now(), xy_conn_peer(c),
				  "refused", reason);
	}
	free(p);
}

static void on_connection(uv_stream_t *server, int status)
{
	struct xy_manager *m = server->data;
	if (status < 0) {
		XY_LOGW(WHO, "accept: %s", uv_strerror(status));
		return;
	}
	if (m->n_peers == m->cap_peers) {
		size_t cap = m->cap_peers ? 2 * m->cap_peers : 16;
		struct peer **np = realloc(m->peers, cap * sizeof *np);
		if (!np)
			return;
		m->peers = np;
		m->cap_peers = cap;
	}
	struct peer *p = calloc(1, sizeof *p);
	if (!p)
		return;
	p->m = m;
	struct xy_conn_opts o = {
		.secret = m->secret,
		.secret_len = m->secret_len,
		.on_ready = conn_ready,
		.on_msg = conn_msg,
		.on_close = conn_close,
		.data = p,
		.tls = xy_mtls_ctx(m->mtls),
	};
	p->conn = xy_conn_accept(server, &o);
	if (!p->conn) {
		XY_LOGW(WHO, "cannot accept a connection");
		free(p);
		return;
	}
	p->index = m->n_peers;
	m->peers[m->n_peers++] = p;
}

/* ----------------------------------------------------------- the loop */

/* The scheduling phase: start the hashing that new tasks asked for, then
 * place ready tasks on free workers. */
static void schedule_phase(struct xy_manager *m)
{
	if (m->destroying)
		return;
	xy_lineage_phase(m->lineage);
	xy_catalog_start_hashing(m->catalog);
	xy_urls_phase(m->urls);
	xy__array_phase(m);
	if (m->sched_dirty) {
		m->sched_dirty = 0;
		m->corking = m->memo != NULL;
		xy_sched_round(m->sched);
		xy_adopt_uncork_all(m);
	}
	xy_pools_phase(m->pools);
	xy_catalog_phase(m->catalog);
}

static void on_prepare(uv_prepare_t *h)
{
	schedule_phase(h->data);
}

static void on_idle(uv_idle_t *h)
{
	(void)h;
}

static void on_timer(uv_timer_t *h)
{
	(void)h;
}

/* Closes the connections of workers silent for XY_WORKER_TIMEOUT_MS.
 * Workers send KEEPALIVE every 30 s. Silence is measured only while the
 * loop runs: after the caller has not run the loop for a while, the
 * clocks start again, since their messages may still be unread. */
static void on_liveness(uv_timer_t *h)
{
	struct xy_manager *m = h->data;
	uint64_t now = uv_now(&m->loop);
	int resumed = now - m->last_liveness > 2 * XY_LIVENESS_MS;
	m->last_liveness = now;
	for (struct xy_worker *w = xy_wtable_all(m->wtable); w; w = w->next) {
		if (resumed || !w->last_heard)
			w->last_heard = now;
		else if (w->conn && now - w->last_heard > XY_WORKER_TIMEOUT_MS)
			xy_conn_close(w->conn, "silent for too long");
	}
}

/* One turn of the loop: blocks for at most ms milliseconds (0: none). */
static void run_once(struct xy_manager *m, uint64_t ms)
{
	/* A scheduling round is due: do not let poll sleep before it. */
	if (m->sched_dirty || xy_catalog_hash_wanted(m->catalog))
		uv_idle_start(&m->idle, on_idle);
	else
		uv_idle_stop(&m->idle);
	if (ms == 0) {
		uv_run(&m->loop, UV_RUN_NOWAIT);
	} else {
		uv_timer_start(&m->timer, on_timer, ms, 0);
		uv_run(&m->loop, UV_RUN_ONCE);
		uv_timer_stop(&m->timer);
	}
	/* Workers freed by this turn get new work before the caller sees
	 * the finished tasks, not after; and the journal has them first. */
	schedule_phase(m);
	xy_memo_flush(m->memo);
	xy_release_send(m);
}

static struct xy_task *pop_done(struct xy_manager *m)
{
	struct xy_task *t = m->done_head;
	m->done_head = t->qnext;
	if (!m->done_head)
		m->done_tail = NULL;
	t->qnext = NULL;
	table_remove(m, t);
	/* The caller may free t now: no file may point at it. */
	leave_files(t);
	set_state(m, t, XY_TASK_RETURNED);
	m->n_tasks--;
	if (t->result == XY_RESULT_SUCCESS)
		m->n_succeeded++;
	else
		m->n_failed++;
	t->times.returned = xy_now();
	history_task(m, t, "returned", NULL);
	return t;
}

/* Milliseconds to block for until deadline (negative: none), at most a
 * second; 0 if it has passed. */
static uint64_t block_ms(double deadline)
{
	if (deadline < 0)
		return 1000;
	double left = deadline - xy_mono();
	if (left <= 0)
		return 0;
	return left < 1 ? (uint64_t)(left * 1000) + 1 : 1000;
}

void xy_manager_turn(struct xy_manager *m, double deadline)
{
	run_once(m, block_ms(deadline));
}

struct xy_task *xy_manager_wait(struct xy_manager *m, double timeout)
{
	double deadline = timeout >= 0 ? xy_mono() + timeout : -1;
	for (;;) {
		if (m->done_head)
			return pop_done(m);
		if (take_interrupt(m)) {
			errno = EINTR;
			return NULL;
		}
		if (m->n_tasks == 0) {
			run_once(m, 0);
			errno = ENOENT;
			return NULL;
		}
		uint64_t ms = block_ms(deadline);
		if (ms == 0) {
			run_once(m, 0);
			if (m->done_head)
				return pop_done(m);
			errno = ETIMEDOUT;
			return NULL;
		}
		run_once(m, ms);
	}
}

int xy_manager_run(struct xy_manager *m, double timeout)
{
	double deadline = timeout >= 0 ? xy_mono() + timeout : -1;
	for (;;) {
		if (m->done_head)
			return 1;
		if (take_interrupt(m)) {
			errno = EINTR;
			return -1;
		}
		uint64_t ms = block_ms(deadline);
		run_once(m, ms);
		if (ms == 0)
			return m->done_head ? 1 : 0;
	}
}

/* ------------------------------------------------------------- public */

static int listen_on(struct xy_manager *m, const char *host, int port,
		     char *err, size_t errlen)
{
	struct sockaddr_storage sa;
	int rc;
	if (!host)
		host = "0.0.0.0";
	if (strchr(host, ':'))
		rc = uv_ip6_addr(host, port, (struct sockaddr_in6 *)&sa);
	else
		rc = uv_ip4_addr(host, port, (struct sockaddr_in *)&sa);
	if (rc < 0)
		return xy_fail(err, errlen, EINVAL, "bad address %s", host);
	uv_tcp_init(&m->loop, &m->listener);
	m->listener.data = m;
	m->listening = 1;
	rc = uv_tcp_bind(&m->listener, (struct sockaddr *)&sa, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&m->listener, XY_LISTEN_BACKLOG,
			       on_connection);
	if (rc < 0)
		return xy_fail(err, errlen, -rc, "cannot listen on %s:%d: %s",
			       host, port, uv_strerror(rc));
	struct sockaddr_storage bound;
	int len = sizeof bound;
	uv_tcp_getsockname(&m->listener, (struct sockaddr *)&bound, &len);
	m->port = ntohs(bound.ss_family == AF_INET6
				? ((struct sockaddr_in6 *)&bound)->sin6_port
				: ((struct sockaddr_in *)&bound)->sin_port);
	return 0;
}

struct xy_manager *xy_manager_create(const struct xy_manager_options *opt,
				     char *err, size_t errlen)
{
	if (!opt || !opt->secret || opt->secret_len == 0) {
		xy_fail(err, errlen, EINVAL, "a shared secret is required");
		return NULL;
	}
	struct xy_manager *m = calloc(1, sizeof *m);
	if (!m) {
		xy_fail(err, errlen, ENOMEM, "out of memory");
		return NULL;
	}
	/* A worker that vanishes mid-write must not kill the program that
	 * embeds us; a program that set its own SIGPIPE handler keeps it. */
	struct sigaction sa;
	if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
		signal(SIGPIPE, SIG_IGN);
	uv_loop_init(&m->loop);
	uv_prepare_init(&m->loop, &m->prepare);
	uv_idle_init(&m->loop, &m->idle);
	uv_timer_init(&m->loop, &m->timer);
	uv_async_init(&m->loop, &m->async, on_async);
	uv_timer_init(&m->loop, &m->liveness);
	m->liveness.data = m;
	uv_timer_start(&m->liveness, on_liveness, XY_LIVENESS_MS,
		       XY_LIVENESS_MS);
	uv_unref((uv_handle_t *)&m->liveness);
	m->async.data = m;
	pthread_mutex_init(&m->post_lock, NULL);
	m->prepare.data = m;
	uv_prepare_start(&m->prepare, on_prepare);
	m->started = xy_mono();
	m->next_task_id = 1;
	m->name = strdup(opt->name ? opt->name : "xylem");
	m->call_window = opt->call_window == 0 ? XY_CALL_WINDOW
			 : opt->call_window < 0 ? 0
						: opt->call_window;
	if (m->call_window > 64)
		m->call_window = 64;
	m->secret = malloc(opt->secret_len);
	if (!m->name || !m->secret) {
		xy_fail(err, errlen, ENOMEM, "out of memory");
		goto error;
	}
	memcpy(m->secret, opt->secret, opt->secret_len);
	m->secret_len = opt->secret_len;
	if (!(m->mtls = xy_mtls_create(opt, err, errlen)))
		goto error;
	if (!(m->catalog = xy_catalog_create(m, err, errlen)))
		goto error;
	m->wtable = xy_wtable_create(m);
	m->sched = xy_sched_create(m);
	m->xplan = xy_xplan_create(m, m->secret, m->secret_len);
	m->lineage = xy_lineage_create(m);
	m->urls = xy_urls_create(m);
	m->clients = xy_clients_create(m);
	m->pools = xy_pools_create(m);
	m->release = xy_release_create();
	if (!m->release || !m->wtable || !m->sched || !m->xplan || !m->lineage || !m->urls ||
	    !m->clients || !m->pools || table_grow(m) < 0) {
		xy_fail(err, errlen, ENOMEM, "out of memory");
		goto error;
	}
	if (opt->history &&
	    !(m->history = xy_history_open(opt->history, m->name, err, errlen)))
		goto error;
	if (opt->history_output)
		xy_history_set_output_max(m->history, opt->history_output);
	if (opt->journal && !(m->memo = xy_memo_open(m, opt->journal,
						     opt->journal_sync, err,
						     errlen)))
		goto error;
	if (xy_adopt_start(m, opt) < 0) {
		xy_fail(err, errlen, ENOMEM, "out of memory");
		goto error;
	}
	/* Clients' tasks are recorded too, their outputs kept under it. */
	if (m->memo && xy_clients_journal(m->clients, opt->journal) < 0) {
		xy_fail(err, errlen, errno, "journal %s: cannot make its "
			"store: %s", opt->journal, strerror(errno));
		goto error;
	}
	if (listen_on(m, opt->host, opt->port, err, errlen) < 0)
		goto error;
	if (opt->http && !(m->dash = xy_dash_create(m, opt->http, err, errlen)))
		goto error;
	m->xfer = xy_xfer_server_start(opt->host, 0, m->secret, m->secret_len,
				       xy_catalog_lookup, m->catalog, err,
				       errlen);
	if (!m->xfer || (xy_mtls_ctx(m->mtls) &&
			 xy_xfer_server_tls(m->xfer, err, errlen) < 0))
		goto error;
	return m;
error:
	xy_manager_destroy(m);
	return NULL;
}

static void close_handle(uv_handle_t *h)
{
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

/* Sends SHUTDOWN to every greeted worker not already leaving (said BYE
 * or told before), and takes it out of the schedule. Returns how many
 * were told. */
static int tell_workers_to_stop(struct xy_manager *m)
{
	int n = 0;
	if (!m->wtable)
		return 0; /* a create that failed early */
	for (struct xy_worker *w = xy_wtable_all(m->wtable); w; w = w->next) {
		if (!w->conn || !w->greeted || w->leaving)
			continue;
		if (m->destroying)
			w->leaving = 1; /* nothing is scheduled any more */
		else
			xy_wtable_disable(m->wtable, w);
		if (xy_conn_send(w->conn, XY_MSG_SHUTDOWN, NULL) == 0)
			n++;
	}
	return n;
}

void xy_manager_destroy(struct xy_manager *m)
{
	if (!m)
		return;
	m->destroying = 1;
	/* A clean end: workers are told to exit before their connections
	 * close (a close flushes what was queued), so that they stop as
	 * asked, with status 0, rather than as abandoned. */
	tell_workers_to_stop(m);
	/* Jobs whose workers have not come are cancelled. */
	xy__array_destroy(m);
	xy_pools_destroy(m->pools);
	m->pools = NULL;
	/* Threads that read the catalogue stop first. */
	xy_xfer_server_stop(m->xfer);
	/* The listener closes first, so that no connection arrives after
	 * the others were told to close. Connections close through their
	 * own callbacks, which take them off the list; the loop then runs
	 * until every close and every hashing or retrieval job is done. */
	if (m->listening)
		close_handle((uv_handle_t *)&m->listener);
	xy_dash_destroy(m->dash);
	m->dash = NULL;
	for (size_t i = 0; i < m->n_peers; i++)
		xy_conn_close(m->peers[i]->conn, "manager is closing");
	xy_adopt_destroy(m->adopt);
	m->adopt = NULL;
	close_handle((uv_handle_t *)&m->prepare);
	close_handle((uv_handle_t *)&m->idle);
	close_handle((uv_handle_t *)&m->timer);
	close_handle((uv_handle_t *)&m->liveness);
	pthread_mutex_lock(&m->post_lock);
	m->closed = 1;
	for (struct post *p = m->posts, *n; p; p = n) {
		n = p->next;
		free(p);
	}
	m->posts = m->posts_tail = NULL;
	pthread_mutex_unlock(&m->post_lock);
	close_handle((uv_handle_t *)&m->async);
	uv_run(&m->loop, UV_RUN_DEFAULT);
	xy_manager_free_libraries(m);
	pthread_mutex_destroy(&m->post_lock);
	free(m->peers);
	free(m->corked);
	xy_clients_destroy(m->clients);
	xy_release_destroy(m->release);
	m->release = NULL;
	for (uint64_t i = 0; i < m->task_table_size; i++)
		for (struct xy_task *t = m->task_table[i], *n; t; t = n) {
			n = t->hnext;
			xy_task_delete(t);
		}
	free(m->task_table);
	xy_memo_destroy(m->memo);
	xy_history_close(m->history);
	xy_lineage_destroy(m->lineage);
	xy_sched_destroy(m->sched);
	xy_xplan_destroy(m->xplan);
	xy_urls_destroy(m->urls);
	xy_wtable_destroy(m->wtable);
	xy_catalog_destroy(m->catalog);
	uv_loop_close(&m->loop);
	free(m->secret);
	xy_mtls_destroy(m->mtls);
	free(m->name);
	free(m);
}

int xy_manager_port(const struct xy_manager *m)
{
	return m->port;
}

const char *xy_manager_tls_ca(const struct xy_manager *m)
{
	return xy_mtls_ca(m->mtls);
}

int xy_manager_shutdown_workers(struct xy_manager *m)
{
	int n = tell_workers_to_stop(m);
	/* Let the messages go out. */
	for (int i = 0; i < 10; i++)
		uv_run(&m->loop, UV_RUN_NOWAIT);
	return n;
}

static int check_submit(struct xy_manager *m, struct xy_task *t, char *err,
			size_t errlen)
{
	if (t->id)
		return xy_fail(err, errlen, EINVAL, "task already submitted");
	if (!*t->command && !t->library)
		return xy_fail(err, errlen, EINVAL, "empty command");
	if (t->library && !xy_manager_library(m, t->library))
		return xy_fail(err, errlen, ENOENT, "no library named %s",
			       t->library);
	if (xy_manager_check_limits(t, err, errlen) < 0)
		return -1;
	for (uint32_t i = 0; i < t->n_outputs; i++) {
		struct xy_file *f = t->outputs[i].file;
		struct xy_task *p = f->producer;
		if (p && p->state != XY_TASK_DONE &&
		    p->state != XY_TASK_RETURNED)
			return xy_fail(err, errlen, EBUSY,
				       "output %s is already written by task "
				       "%llu", xy_file_label(f),
				       (unsigned long long)p->id);
		for (uint32_t j = 0; j < t->n_inputs; j++)
			if (t->inputs[j].file == f)
				return xy_fail(err, errlen, EINVAL,
					       "%s is both input and output",
					       xy_file_label(f));
	}
	/* Sized by every entry, internal tasks (remakes, clients')
	 * included, so that a lookup stays O(1). */
	if (m->n_entries + 1 > (int64_t)m->task_table_size &&
	    table_grow(m) < 0)
		return xy_fail(err, errlen, ENOMEM, "out of memory");
	return 0;
}

/* Gives t its id and a place in the task table, and makes it the
 * producer of its outputs; it waits for its inputs from now on. */
static void enter_table(struct xy_manager *m, struct xy_task *t,
			const char *event)
{
	t->id = m->next_task_id++;
	t->manager = m;
	t->times.submitted = xy_now();
	t->hnext = m->task_table[t->id & (m->task_table_size - 1)];
	m->task_table[t->id & (m->task_table_size - 1)] = t;
	m->n_entries++;
	for (uint32_t i = 0; i < t->n_inputs; i++)
		xy_catalog_file_incref(t->inputs[i].file);
	for (uint32_t i = 0; i < t->n_outputs; i++) {
		struct xy_file *f = t->outputs[i].file;
		xy_catalog_file_incref(f);
		f->producer = t;
		f->state = FILE_PRODUCED;
		xy_catalog_file_set_object(m->catalog, f, NULL);
	}
	t->state = XY_TASK_WAITING;
	m->n_waiting++;
	history_task(m, t, event, t->command);
	xy_dash_event(m->dash, &(struct xy_dash_ev){.kind = XY_DASH_SUBMITTED,
						    .task = t});
}

uint64_t xy_manager_submit(struct xy_manager *m, struct xy_task *t,
			   char *err, size_t errlen)
{
	if (check_submit(m, t, err, errlen) < 0)
		return 0;
	if (t->library && xy_manager_add_library_inputs(m, t, err, errlen) < 0)
		return 0;
	if (xy_lineage_record(m->lineage, t, err, errlen) < 0)
		return 0;
	enter_table(m, t, "submitted");
	m->n_tasks++;
	/* Its inputs are looked up as for a task put back in the queue. */
	xy_manager_task_requeue(m, t, NULL);
	return t->id;
}

void xy_manager_enter_internal(struct xy_manager *m, struct xy_task *t)
{
	if (m->n_entries + 1 > (int64_t)m->task_table_size)
		table_grow(m); /* on ENOMEM the chains only grow longer */
	t->internal = 1;
	enter_table(m, t, "remade");
}

uint64_t xy_manager_submit_internal(struct xy_manager *m, struct xy_task *t,
				    char *err, size_t errlen)
{
	if (check_submit(m, t, err, errlen) < 0)
		return 0;
	t->internal = 1;
	enter_table(m, t, "submitted");
	xy_manager_task_requeue(m, t, NULL);
	return t->id;
}

int xy_manager_cancel(struct xy_manager *m, uint64_t id)
{
	struct xy_task *t = table_find(m, id);
	if (!t || t->internal || t->state == XY_TASK_DONE ||
	    t->state == XY_TASK_RETURNED) {
		errno = ENOENT;
		return -1;
	}
	xy_manager_task_cancel(m, t);
	return 0;
}

void xy_manager_task_cancel(struct xy_manager *m, struct xy_task *t)
{
	if (t->state != XY_TASK_RUNNING) {
		xy_manager_task_fail(m, t, XY_RESULT_CANCELLED, "cancelled");
		return;
	}
	t->cancel_requested = 1;
	if (t->worker) {
		union xy_msg msg = {.cancel = {.task_id = t->id}};
		xy_manager_send(m, t->worker, XY_MSG_CANCEL, &msg);
	}
}

int64_t xy_manager_outstanding(const struct xy_manager *m)
{
	return m->n_tasks;
}
