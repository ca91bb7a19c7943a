/*
 * _core.c: the C extension behind the xylem Python package. It binds the
 * public API (include/xylem.h) and nothing else. Class Manager owns one
 * manager and a thread that runs its event loop (xy_manager_run). Python
 * threads never touch the manager directly: they hand it closures with
 * xy_manager_post, either fire-and-forget (submit) or waiting on a
 * condition variable with the GIL released (declare, stats, cancel...).
 * The loop thread hands completed tasks back to one Python callback, in
 * batches, with the GIL taken. executor.py builds the Executor on this.
 *
 * A file handle is a number (never reused) for a declared file; the same
 * file declared again gets the same number, which then stands for both
 * declarations. release(handle) gives one back, from any thread (a
 * garbage collector's finalizer included): it posts xy_file_release, so
 * that it reaches the manager after every submit posted before it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "keymap.h"
#include "xylem.h"

#define ERRLEN 512

/* The result code of a task the manager refused at submit. */
#define RESULT_NOT_SUBMITTED (-1)

#if PY_VERSION_HEX >= 0x030D0000
#define finalizing() Py_IsFinalizing()
#else
#define finalizing() _Py_IsFinalizing()
#endif

/* -------------------------------------------------------------- Manager */

/* A submit the manager refused: reported through the callback. */
struct refusal {
	uint64_t key;
	char *reason;
	struct refusal *next;
};

typedef struct {
	PyObject_HEAD
	struct xy_manager *m;
	pthread_t thread;
	int running; /* the loop thread exists and is not yet joined */
	int closing; /* close() began: no more posts */
	int port;
	/* Under the GIL. */
	PyObject *callback;
	/* handle + 1 -> its file, and -> the declarations it stands for */
	struct keymap files, uses;
	uint64_t next_handle;
	PyObject *handles; /* the file's address -> its handle, made lazily */
	/* The hooks of external pools (add_pool): the manager holds them
	 * until it is destroyed, so they are dropped only after that, and
	 * not shown to the garbage collector. */
	PyObject *pool_hooks;
	/* The loop thread's own state, touched only on that thread. keys:
	 * a task's key -> its id, for cancel(key): submit closures add,
	 * completions remove, cancel closures look up. */
	struct keymap keys;
	struct refusal *refused;
	int stop;
	PyThreadState *tstate; /* the loop thread's, kept while it runs */
} Manager;

static PyTypeObject ManagerType;

static int on_loop_thread(Manager *self)
{
	return self->running && pthread_equal(pthread_self(), self->thread);
}

static int check_open(Manager *self)
{
	if (!self->m || self->closing) {
		PyErr_SetString(PyExc_RuntimeError, "the manager is closed");
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------ synchronous calls */

/*
 * A call that runs on the loop thread while the calling Python thread
 * waits, GIL released. The fields below `body` are the arguments and the
 * results; each body uses the ones it needs.
 */
struct sync {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done;
	void (*body)(Manager *self, struct sync *s);
	const char *str;
	const void *data;
	size_t len;
	int level;
	uint64_t u64;
	struct xy_task *task;
	void *ptr;
	int64_t num;
	struct xy_stats stats;
	char err[ERRLEN];
};

struct sync_post {
	Manager *self;
	struct sync *s;
};

static void sync_trampoline(struct xy_manager *m, void *arg)
{
	struct sync_post *p = arg;
	struct sync *s = p->s;

	(void)m;
	s->body(p->self, s);
	free(p);
	pthread_mutex_lock(&s->mu);
	s->done = 1;
	pthread_cond_signal(&s->cv);
	pthread_mutex_unlock(&s->mu);
}

/* Runs s->body on the loop thread and waits for it. The GIL is held on
 * entry and exit. Returns -1 with a Python exception set if it could not
 * be posted. From the loop thread itself (a callback), it runs at once. */
static int run_sync(Manager *self, struct sync *s)
{
	struct sync_post *p;
	int r;

	if (check_open(self) < 0)
		return -1;
	if (on_loop_thread(self)) {
		s->body(self, s);
		return 0;
	}
	p = malloc(sizeof *p);
	if (!p) {
		PyErr_NoMemory();
		return -1;
	}
	*p = (struct sync_post){self, s};
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	r = xy_manager_post(self->m, sync_trampoline, p);
	if (r == 0) {
		Py_BEGIN_ALLOW_THREADS
		pthread_mutex_lock(&s->mu);
		while (!s->done)
			pthread_cond_wait(&s->cv, &s->mu);
		pthread_mutex_unlock(&s->mu);
		Py_END_ALLOW_THREADS
	} else {
		free(p);
		PyErr_SetFromErrno(PyExc_OSError);
	}
	pthread_cond_destroy(&s->cv);
	pthread_mutex_destroy(&s->mu);
	return r;
}

/* ------------------------------------------------------------ delivery */

/* A growable array of completed tasks, collected without the GIL. */
struct batch {
	struct xy_task **tasks;
	size_t n, cap;
	struct refusal *refused;
};

static PyObject *times_tuple(const struct xy_task *t)
{
	struct xy_task_times tm;

	xy_task_times(t, &tm);
	return Py_BuildValue("(ddddd)", tm.submitted, tm.dispatched,
			     tm.started, tm.finished, tm.returned);
}

/* (key, result, exit_code, output, error, worker, attempts, times,
 *  failure) */
static PyObject *task_tuple(const struct xy_task *t)
{
	size_t len;
	const char *out = xy_task_output(t, &len);
	const char *e = xy_task_error(t), *w = xy_task_worker(t);
	PyObject *times = times_tuple(t);

	if (!times)
		return NULL;
	return Py_BuildValue(
		"(KiiNNNiNi)", (unsigned long long)xy_task_user(t),
		(int)xy_task_result(t), xy_task_exit_code(t),
		PyBytes_FromStringAndSize(out, (Py_ssize_t)len),
		PyUnicode_DecodeUTF8(e, (Py_ssize_t)strlen(e), "replace"),
		PyUnicode_DecodeUTF8(w, (Py_ssize_t)strlen(w), "replace"),
		xy_task_attempts(t), times, (int)xy_task_failure(t));
}

static PyObject *refusal_tuple(const struct refusal *r)
{
	PyObject *reason = PyUnicode_DecodeUTF8(
		r->reason, (Py_ssize_t)strlen(r->reason), "replace");

	return Py_BuildValue("(Kiiy#Nsi(ddddd)i)", (unsigned long long)r->key,
			     RESULT_NOT_SUBMITTED, -1, "", (Py_ssize_t)0,
			     reason, "", 0, 0., 0., 0., 0., 0.,
			     (int)XY_FAILURE_NONE);
}

static PyObject *batch_list(const struct batch *b)
{
	PyObject *list = PyList_New(0), *item;
	int bad = !list;

	for (size_t i = 0; !bad && i < b->n; i++) {
		item = task_tuple(b->tasks[i]);
		bad = !item || PyList_Append(list, item) < 0;
		Py_XDECREF(item);
	}
	for (struct refusal *r = b->refused; !bad && r; r = r->next) {
		item = refusal_tuple(r);
		bad = !item || PyList_Append(list, item) < 0;
		Py_XDECREF(item);
	}
	if (bad)
		Py_CLEAR(list);
	return list;
}

/* Hands a batch to the callback, with the GIL taken for the purpose on
 * the loop thread's own thread state (loop_main). */
static void call_back(Manager *self, const struct batch *b)
{
	PyObject *list, *cb, *r;

	if (finalizing())
		return;
	PyEval_RestoreThread(self->tstate);
	cb = self->callback;
	Py_XINCREF(cb);
	list = batch_list(b);
	if (!list) {
		PyErr_WriteUnraisable((PyObject *)self);
	} else if (cb && cb != Py_None) {
		r = PyObject_CallFunctionObjArgs(cb, list, NULL);
		if (!r)
			PyErr_WriteUnraisable(cb);
		Py_XDECREF(r);
	}
	Py_XDECREF(list);
	Py_XDECREF(cb);
	self->tstate = PyEval_SaveThread();
}

/* Collects what completed (and what the manager refused) and delivers
 * it. Runs on the loop thread, between turns. */
static void deliver(Manager *self)
{
	struct batch b = {0};
	struct xy_task *t, **nt;

	for (;;) {
		/* Room first, so that a task taken from wait is never lost:
		 * without memory, what is left waits for the next round. */
		if (b.n == b.cap) {
			size_t cap = b.cap ? b.cap * 2 : 64;
			nt = realloc(b.tasks, cap * sizeof *nt);
			if (!nt)
				break;
			b.tasks = nt;
			b.cap = cap;
		}
		t = xy_manager_wait(self->m, 0);
		if (!t)
			break;
		xy_keymap_del(&self->keys, xy_task_user(t));
		b.tasks[b.n++] = t;
	}
	b.refused = self->refused;
	self->refused = NULL;
	if (b.n || b.refused)
		call_back(self, &b);
	for (size_t i = 0; i < b.n; i++)
		xy_task_delete(b.tasks[i]);
	free(b.tasks);
	while (b.refused) {
		struct refusal *r = b.refused;
		b.refused = r->next;
		free(r->reason);
		free(r);
	}
}

/*
 * The loop thread takes a Python thread state once, as it starts, and
 * keeps it until it ends: PyGILState_Ensure and Release around each batch
 * would make and free one every time, with a fresh frame stack (an mmap
 * and its page faults), a large share of the thread's work when batches
 * are small. Taken with PyGILState_Ensure, so that code in the callback
 * that calls PyGILState_Ensure itself finds it.
 */
static void *loop_main(void *arg)
{
	Manager *self = arg;
	PyGILState_STATE g;

	g = PyGILState_Ensure();
	self->tstate = PyEval_SaveThread();
	while (!__atomic_load_n(&self->stop, __ATOMIC_ACQUIRE)) {
		if (xy_manager_run(self->m, -1) < 0 && errno != EINTR) {
			fprintf(stderr, "xylem: manager loop: %s\n",
				strerror(errno));
			usleep(10000);
		}
		deliver(self);
	}
	deliver(self);
	/* Drop the reference the thread held (see Manager_init), and the
	 * thread state. While Python finalizes, both are left to it. */
	if (!finalizing()) {
		PyEval_RestoreThread(self->tstate);
		self->tstate = NULL;
		Py_DECREF(self);
		PyGILState_Release(g);
	}
	return NULL;
}

/* ------------------------------------------------------ task building */

static int cache_level(const char *s, xy_cache_level *out)
{
	static const char *names[] = {"task", "workflow", "worker", "forever"};

	for (int i = 0; i < 4; i++) {
		if (!strcmp(s, names[i])) {
			*out = (xy_cache_level)i;
			return 0;
		}
	}
	PyErr_Format(PyExc_ValueError,
		     "cache level must be task, workflow, worker or forever,"
		     " not '%s'",
		     s);
	return -1;
}

/* The slot of handle in self->files, or -1 with ValueError set. */
static Py_ssize_t handle_slot(Manager *self, PyObject *handle)
{
	Py_ssize_t h = PyLong_AsSsize_t(handle);
	size_t i;

	if (h == -1 && PyErr_Occurred())
		return -1;
	i = h < 0 ? self->files.cap
		  : xy_keymap_find(&self->files, (uint64_t)h + 1);
	if (i == self->files.cap) {
		PyErr_Format(PyExc_ValueError, "no file handle %zd", h);
		return -1;
	}
	return (Py_ssize_t)i;
}

static struct xy_file *file_of(Manager *self, PyObject *handle)
{
	Py_ssize_t i = handle_slot(self, handle);

	return i < 0 ? NULL : (struct xy_file *)(uintptr_t)self->files.ids[i];
}

/* Adds (handle, sandbox name) pairs as inputs or outputs. */
static int add_files(Manager *self, struct xy_task *t, PyObject *seq,
		     int output)
{
	PyObject *fast, *handle;
	const char *as;
	struct xy_file *f;
	char err[ERRLEN];
	int r = 0;

	if (!seq || seq == Py_None)
		return 0;
	fast = PySequence_Fast(seq, "inputs and outputs must be sequences");
	if (!fast)
		return -1;
	for (Py_ssize_t i = 0; r == 0 && i < PySequence_Fast_GET_SIZE(fast);
	     i++) {
		r = -1;
		if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(fast, i),
				      "Os;a file is a (handle, name) pair",
				      &handle, &as))
			break;
		f = file_of(self, handle);
		if (!f)
			break;
		r = output ? xy_task_add_output(t, f, as, err, sizeof err)
			   : xy_task_add_input(t, f, as, err, sizeof err);
		if (r < 0)
			PyErr_SetString(PyExc_ValueError, err);
	}
	Py_DECREF(fast);
	return r;
}

static int add_env(struct xy_task *t, PyObject *env)
{
	PyObject *key, *value;
	Py_ssize_t pos = 0;
	const char *k, *v;

	if (!env || env == Py_None)
		return 0;
	if (!PyDict_Check(env)) {
		PyErr_SetString(PyExc_TypeError, "env must be a dict");
		return -1;
	}
	while (PyDict_Next(env, &pos, &key, &value)) {
		k = PyUnicode_AsUTF8(key);
		v = k ? PyUnicode_AsUTF8(value) : NULL;
		if (!v)
			return -1;
		if (xy_task_set_env(t, k, v) < 0) {
			PyErr_Format(PyExc_ValueError,
				     "bad environment variable '%s'", k);
			return -1;
		}
	}
	return 0;
}

/* The fields that a task and a library template share. */
struct task_spec {
	PyObject *inputs, *outputs, *env, *environment;
	int cores, gpus, retries;
	long long memory, disk;
	double priority, time_limit;
	const char *tag;
};

static int apply_spec(Manager *self, struct xy_task *t,
		      const struct task_spec *sp)
{
	char err[ERRLEN];
	struct xy_file *f;

	if (add_files(self, t, sp->inputs, 0) < 0 ||
	    add_files(self, t, sp->outputs, 1) < 0 || add_env(t, sp->env) < 0)
		return -1;
	if (sp->environment && sp->environment != Py_None) {
		f = file_of(self, sp->environment);
		if (!f)
			return -1;
		if (xy_task_set_environment(t, f, err, sizeof err) < 0) {
			PyErr_SetString(PyExc_ValueError, err);
			return -1;
		}
	}
	xy_task_set_cores(t, sp->cores);
	xy_task_set_memory(t, sp->memory);
	xy_task_set_disk(t, sp->disk);
	xy_task_set_gpus(t, sp->gpus);
	xy_task_set_retries(t, sp->retries);
	xy_task_set_priority(t, sp->priority);
	xy_task_set_time_limit(t, sp->time_limit);
	if (sp->tag && xy_task_set_tag(t, sp->tag) < 0) {
		PyErr_NoMemory();
		return -1;
	}
	return 0;
}

/* A command task, or a call when library is given. */
static struct xy_task *new_task(const char *command, const char *library,
				const Py_buffer *payload)
{
	struct xy_task *t;

	if (!command == !library) {
		PyErr_SetString(PyExc_ValueError,
				"give either command or library");
		return NULL;
	}
	if (library && payload->len > XY_PAYLOAD_MAX) {
		PyErr_Format(PyExc_ValueError,
			     "call payload of %zd bytes exceeds %d",
			     payload->len, XY_PAYLOAD_MAX);
		return NULL;
	}
	t = library ? xy_task_create_call(library, payload->buf,
					  (size_t)payload->len)
		    : xy_task_create(command);
	if (!t)
		PyErr_SetFromErrno(PyExc_OSError);
	return t;
}

/* ------------------------------------------------------------- methods */

struct submit_post {
	Manager *self;
	struct xy_task *t;
	uint64_t key;
};

/* On the loop thread: submits, or records the refusal for delivery. */
static void submit_closure(struct xy_manager *m, void *arg)
{
	struct submit_post *p = arg;
	struct refusal *r;
	char err[ERRLEN] = "";
	uint64_t id;

	id = xy_manager_submit(m, p->t, err, sizeof err);
	if (id) {
		xy_keymap_put(&p->self->keys, p->key, id);
	} else {
		xy_task_delete(p->t);
		r = calloc(1, sizeof *r);
		if (r) {
			r->key = p->key;
			r->reason = strdup(*err ? err : strerror(errno));
			r->next = p->self->refused;
			p->self->refused = r;
			/* Make run return so that the refusal is delivered. */
			xy_manager_interrupt(m);
		}
	}
	free(p);
}

static PyObject *Manager_submit(Manager *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"key",     "command", "library", "payload",
				 "inputs",  "outputs", "env",     "cores",
				 "memory",  "disk",    "gpus",    "retries",
				 "priority", "time_limit", "tag", "environment",
				 "calls", NULL};
	struct task_spec sp = {.cores = 1};
	int calls = 1; /* a batch: the calls it carries, for the scaler */
	unsigned long long key;
	const char *command = NULL, *library = NULL;
	Py_buffer payload = {0};
	struct submit_post *p;
	struct xy_task *t = NULL;

	if (!PyArg_ParseTupleAndKeywords(
		    args, kw, "K|$zzy*OOOiLLiiddzOi", kwlist, &key, &command,
		    &library, &payload, &sp.inputs, &sp.outputs, &sp.env,
		    &sp.cores, &sp.memory, &sp.disk, &sp.gpus, &sp.retries,
		    &sp.priority, &sp.time_limit, &sp.tag, &sp.environment,
		    &calls))
		return NULL;
	if (key == 0) {
		PyErr_SetString(PyExc_ValueError, "key must be positive");
		goto fail;
	}
	if (check_open(self) < 0)
		goto fail;
	t = new_task(command, library, &payload);
	if (!t || apply_spec(self, t, &sp) < 0)
		goto fail;
	xy_task_set_calls(t, calls);
	xy_task_set_user(t, key);
	p = malloc(sizeof *p);
	if (!p) {
		PyErr_NoMemory();
		goto fail;
	}
	*p = (struct submit_post){self, t, key};
	if (xy_manager_post(self->m, submit_closure, p) < 0) {
		free(p);
		PyErr_SetFromErrno(PyExc_OSError);
		goto fail;
	}
	PyBuffer_Release(&payload);
	Py_RETURN_NONE;
fail:
	xy_task_delete(t);
	if (payload.obj)
		PyBuffer_Release(&payload);
	return NULL;
}

static void declare_file_body(Manager *self, struct sync *s)
{
	s->ptr = xy_manager_declare_file(self->m, s->str, s->level, s->err,
					 sizeof s->err);
}

static void declare_buffer_body(Manager *self, struct sync *s)
{
	s->ptr = xy_manager_declare_buffer(self->m, s->data, s->len, s->level,
					   s->err, sizeof s->err);
}

/* A temp; s->num is the number of copies wanted. */
static void declare_temp_body(Manager *self, struct sync *s)
{
	s->ptr = xy_manager_declare_temp(self->m, s->level, s->err,
					 sizeof s->err);
	if (s->ptr && s->num > 1 && xy_file_set_replicas(s->ptr,
							 (int)s->num) < 0) {
		snprintf(s->err, sizeof s->err, "bad replica count");
		s->ptr = NULL;
	}
}

static void release_closure(struct xy_manager *m, void *arg)
{
	(void)m;
	xy_file_release(arg);
}

/* Gives one declaration of f back to the manager, on its thread. Not
 * after close: destroy freed every file. */
static void post_release(Manager *self, struct xy_file *f)
{
	if (self->m && !self->closing)
		xy_manager_post(self->m, release_closure, f);
}

/* The handle of a file just declared (one more declaration it stands
 * for), made if new; NULL with an exception set, the declaration then
 * given back. */
static PyObject *new_handle(Manager *self, struct xy_file *f)
{
	PyObject *key = NULL, *handle = NULL;
	size_t i;

	if (!self->handles && !(self->handles = PyDict_New()))
		goto fail;
	if (!(key = PyLong_FromVoidPtr(f)))
		goto fail;
	/* The same path declared again: its handle, found in O(1) (a scan of
	 * every handle made it quadratic over a long run). */
	handle = PyDict_GetItemWithError(self->handles, key);
	i = handle ? xy_keymap_find(&self->uses,
				 PyLong_AsUnsignedLongLong(handle) + 1)
		   : self->uses.cap;
	if (i < self->uses.cap) {
		Py_INCREF(handle);
		self->uses.ids[i]++;
		Py_DECREF(key);
		return handle;
	}
	/* New, or an address left behind by a release (below): a new
	 * handle, which takes its place in the dict. */
	handle = NULL;
	if (PyErr_Occurred() ||
	    !(handle = PyLong_FromUnsignedLongLong(self->next_handle)))
		goto fail;
	if (xy_keymap_put(&self->files, self->next_handle + 1,
		       (uint64_t)(uintptr_t)f) < 0 ||
	    xy_keymap_put(&self->uses, self->next_handle + 1, 1) < 0) {
		xy_keymap_del(&self->files, self->next_handle + 1);
		PyErr_NoMemory();
		goto fail;
	}
	if (PyDict_SetItem(self->handles, key, handle) < 0) {
		xy_keymap_del(&self->files, self->next_handle + 1);
		xy_keymap_del(&self->uses, self->next_handle + 1);
		goto fail;
	}
	self->next_handle++;
	Py_DECREF(key);
	return handle;
fail:
	Py_XDECREF(key);
	Py_XDECREF(handle);
	post_release(self, f);
	return NULL;
}

/* release(handle): gives back one declaration that handle stands for.
 * The handle is gone once it stands for none. */
static PyObject *Manager_release(Manager *self, PyObject *handle)
{
	Py_ssize_t i;
	size_t u;
	uint64_t key;
	struct xy_file *f;
	PyObject *addr;

	if (!self->m || self->closing)
		Py_RETURN_NONE; /* every file went with the manager */
	if ((i = handle_slot(self, handle)) < 0)
		return NULL;
	key = self->files.keys[i];
	f = (struct xy_file *)(uintptr_t)self->files.ids[i];
	u = xy_keymap_find(&self->uses, key);
	if (--self->uses.ids[u] == 0) {
		xy_keymap_del(&self->files, key);
		xy_keymap_del(&self->uses, key);
		addr = PyLong_FromVoidPtr(f);
		if (!addr || PyDict_DelItem(self->handles, addr) < 0)
			PyErr_Clear(); /* an address left behind is harmless */
		Py_XDECREF(addr);
	}
	post_release(self, f);
	Py_RETURN_NONE;
}

/* Runs a declare body on the manager's thread; its file as a handle, or
 * exc with the manager's reason. */
static PyObject *declared(Manager *self, struct sync *s, PyObject *exc)
{
	if (run_sync(self, s) < 0)
		return NULL;
	if (!s->ptr)
		return PyErr_Format(exc, "%s", s->err);
	return new_handle(self, s->ptr);
}

/* declare_file(path, cache) and declare_url(url, cache). */
static PyObject *declare_named(Manager *self, PyObject *args,
			       void (*body)(Manager *, struct sync *),
			       PyObject *exc)
{
	const char *name, *cache = "workflow";
	struct sync s = {.body = body};
	xy_cache_level level;

	if (!PyArg_ParseTuple(args, "s|s", &name, &cache) ||
	    cache_level(cache, &level) < 0)
		return NULL;
	s.str = name;
	s.level = (int)level;
	return declared(self, &s, exc);
}

static PyObject *Manager_declare_file(Manager *self, PyObject *args)
{
	return declare_named(self, args, declare_file_body, PyExc_OSError);
}

static PyObject *Manager_declare_temp(Manager *self, PyObject *args)
{
	const char *cache = "workflow";
	int replicas = 1;
	struct sync s = {.body = declare_temp_body};
	xy_cache_level level;

	if (!PyArg_ParseTuple(args, "|si", &cache, &replicas) ||
	    cache_level(cache, &level) < 0)
		return NULL;
	if (replicas < 1)
		return PyErr_Format(PyExc_ValueError,
				    "replicas must be >= 1, not %d", replicas);
	s.level = (int)level;
	s.num = replicas;
	return declared(self, &s, PyExc_OSError);
}

static PyObject *Manager_declare_buffer(Manager *self, PyObject *args)
{
	const char *cache = "task";
	struct sync s = {.body = declare_buffer_body};
	Py_buffer data;
	xy_cache_level level;
	int r;

	if (!PyArg_ParseTuple(args, "y*|s", &data, &cache))
		return NULL;
	if (cache_level(cache, &level) < 0) {
		PyBuffer_Release(&data);
		return NULL;
	}
	s.data = data.buf;
	s.len = (size_t)data.len;
	s.level = (int)level;
	r = run_sync(self, &s);
	PyBuffer_Release(&data);
	if (r < 0)
		return NULL;
	if (!s.ptr)
		return PyErr_Format(PyExc_OSError, "%s", s.err);
	return new_handle(self, s.ptr);
}

static void declare_url_body(Manager *self, struct sync *s)
{
	s->ptr = xy_manager_declare_url(self->m, s->str, s->level, s->err,
					sizeof s->err);
}

static PyObject *Manager_declare_url(Manager *self, PyObject *args)
{
	return declare_named(self, args, declare_url_body, PyExc_ValueError);
}

static void declare_unpack_body(Manager *self, struct sync *s)
{
	s->ptr = xy_manager_declare_unpack(self->m, s->ptr, s->level, s->err,
					   sizeof s->err);
}

static PyObject *Manager_declare_unpack(Manager *self, PyObject *args)
{
	const char *cache = "workflow";
	struct sync s = {.body = declare_unpack_body};
	PyObject *handle;
	xy_cache_level level;

	if (!PyArg_ParseTuple(args, "O|s", &handle, &cache) ||
	    cache_level(cache, &level) < 0 || !(s.ptr = file_of(self, handle)))
		return NULL;
	s.level = (int)level;
	return declared(self, &s, PyExc_ValueError);
}

static void declare_library_body(Manager *self, struct sync *s)
{
	s->num = xy_manager_declare_library(self->m, s->str, s->task, s->err,
					    sizeof s->err);
}

static PyObject *Manager_declare_library(Manager *self, PyObject *args,
					 PyObject *kw)
{
	static char *kwlist[] = {"name",   "command", "inputs", "env", "cores",
				 "memory", "disk",    "gpus",   "environment",
				 NULL};
	struct task_spec sp = {.cores = 1};
	struct sync s = {.body = declare_library_body};
	const char *name, *command;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "ss|$OOiLLiO", kwlist,
					 &name, &command, &sp.inputs, &sp.env,
					 &sp.cores, &sp.memory, &sp.disk,
					 &sp.gpus, &sp.environment))
		return NULL;
	if (check_open(self) < 0)
		return NULL;
	s.task = xy_task_create(command);
	if (!s.task)
		return PyErr_SetFromErrno(PyExc_OSError);
	if (apply_spec(self, s.task, &sp) < 0) {
		xy_task_delete(s.task);
		return NULL;
	}
	s.str = name;
	/* The manager keeps the template only if it accepts it. */
	if (run_sync(self, &s) < 0 || s.num < 0) {
		xy_task_delete(s.task);
		if (!PyErr_Occurred())
			PyErr_Format(PyExc_ValueError, "%s", s.err);
		return NULL;
	}
	Py_RETURN_NONE;
}

static void add_pool_body(Manager *self, struct sync *s)
{
	s->num = xy_manager_add_pool(self->m, s->ptr, s->err, sizeof s->err);
}

/* An external pool's hook, on the loop thread (or the thread destroying
 * the manager): hooks(what, pool, job, id), what "submit" or "cancel".
 * It must return at once; what it raises is reported and dropped. */
static void pool_hook(void *fn, const char *what, const char *pool,
		      const char *job, const char *id)
{
	PyGILState_STATE g;
	PyObject *r;

	if (finalizing())
		return;
	g = PyGILState_Ensure();
	r = PyObject_CallFunction(fn, "ssss", what, pool, job, id);
	if (!r)
		PyErr_WriteUnraisable(fn);
	Py_XDECREF(r);
	PyGILState_Release(g);
}

static void pool_hook_submit(void *fn, const char *pool, const char *job)
{
	pool_hook(fn, "submit", pool, job, "");
}

static void pool_hook_cancel(void *fn, const char *pool, const char *job,
			     const char *id)
{
	pool_hook(fn, "cancel", pool, job, id);
}

/* add_pool(name, cores, *, provider, gpus, memory, disk, min_workers,
 * max_workers, backlog, priority, walltime, idle_timeout, partition,
 * extra_args, xylem, manager_host, log_dir, hooks): xy_manager_add_pool.
 * hooks: with provider "external", the callable pool_hook calls. */
static PyObject *Manager_add_pool(Manager *self, PyObject *args,
				  PyObject *kw)
{
	static char *kwlist[] = {"name",	 "cores",	 "provider",
				 "gpus",	 "memory",	 "disk",
				 "min_workers",	 "max_workers",	 "backlog",
				 "priority",	 "walltime",	 "idle_timeout",
				 "partition",	 "extra_args",	 "xylem",
				 "manager_host", "log_dir",	 "hooks",
				 NULL};
	struct xy_pool_options o = {0};
	PyObject *extra = NULL, *items = NULL, *hooks = NULL;
	struct sync s = {.body = add_pool_body, .ptr = &o};
	const char **argv = NULL;

	if (!PyArg_ParseTupleAndKeywords(
		    args, kw, "si|$ziLLiiiiddzOzzzO", kwlist, &o.name,
		    &o.cores, &o.provider, &o.gpus, &o.memory_mb, &o.disk_mb,
		    &o.min_workers, &o.max_workers, &o.backlog, &o.priority,
		    &o.walltime_s, &o.idle_timeout_s, &o.partition, &extra,
		    &o.xylem, &o.manager_host, &o.log_dir, &hooks))
		return NULL;
	if (hooks && hooks != Py_None) {
		if (!PyCallable_Check(hooks)) {
			PyErr_SetString(PyExc_TypeError,
					"hooks must be callable");
			return NULL;
		}
		if (!self->pool_hooks && !(self->pool_hooks = PyList_New(0)))
			return NULL;
		/* Kept even if the pool is refused: it is small. */
		if (PyList_Append(self->pool_hooks, hooks) < 0)
			return NULL;
		o.submit = pool_hook_submit;
		o.cancel = pool_hook_cancel;
		o.hook_arg = hooks;
	}
	if (extra && extra != Py_None) {
		items = PySequence_Fast(extra, "extra_args: a list of str");
		if (!items)
			return NULL;
		Py_ssize_t n = PySequence_Fast_GET_SIZE(items);
		argv = calloc((size_t)n + 1, sizeof *argv);
		if (!argv) {
			Py_DECREF(items);
			return PyErr_NoMemory();
		}
		for (Py_ssize_t i = 0; i < n; i++) {
			PyObject *a = PySequence_Fast_GET_ITEM(items, i);
			if (!(argv[i] = PyUnicode_AsUTF8(a)))
				goto error;
		}
		o.extra_args = argv;
	}
	if (run_sync(self, &s) < 0)
		goto error;
	free(argv);
	Py_XDECREF(items);
	if (s.num < 0) {
		PyErr_Format(PyExc_ValueError, "%s", s.err);
		return NULL;
	}
	Py_RETURN_NONE;
error:
	free(argv);
	Py_XDECREF(items);
	return NULL;
}

static void pool_job_body(Manager *self, struct sync *s)
{
	const char **a = s->ptr;

	s->num = xy_manager_pool_job(self->m, a[0], a[1], a[2]);
}

/* pool_job(job, id, why): an external pool's answer (xy_manager_pool_job):
 * True, or False if the manager has no such job. */
static PyObject *Manager_pool_job(Manager *self, PyObject *args)
{
	const char *a[3] = {NULL, NULL, NULL};
	struct sync s = {.body = pool_job_body, .ptr = a};

	if (!PyArg_ParseTuple(args, "szz", &a[0], &a[1], &a[2]) ||
	    run_sync(self, &s) < 0)
		return NULL;
	return PyBool_FromLong(s.num == 0);
}

static void cancel_body(Manager *self, struct sync *s)
{
	size_t i = xy_keymap_find(&self->keys, s->u64);

	s->num = i < self->keys.cap &&
		 xy_manager_cancel(self->m, self->keys.ids[i]) == 0;
}

static PyObject *Manager_cancel(Manager *self, PyObject *arg)
{
	struct sync s = {.body = cancel_body};

	s.u64 = PyLong_AsUnsignedLongLong(arg);
	if (PyErr_Occurred() || run_sync(self, &s) < 0)
		return NULL;
	return PyBool_FromLong((long)s.num);
}

static void stats_body(Manager *self, struct sync *s)
{
	xy_manager_stats(self->m, &s->stats);
}

static PyObject *Manager_stats(Manager *self, PyObject *unused)
{
	struct sync s = {.body = stats_body};
	struct xy_stats *st = &s.stats;

	if (run_sync(self, &s) < 0)
		return NULL;
	return Py_BuildValue(
		"{sLsLsLsLsLsLsLsLsLsLsLsLsLsLsdsdsLsLsL}", "tasks_waiting",
		st->tasks_waiting, "tasks_ready", st->tasks_ready,
		"tasks_running", st->tasks_running, "tasks_done",
		st->tasks_done, "tasks_succeeded", st->tasks_succeeded,
		"tasks_failed", st->tasks_failed, "workers_connected",
		st->workers_connected, "workers_busy", st->workers_busy,
		"cores_total", st->cores_total, "cores_used", st->cores_used,
		"bytes_sent", st->bytes_sent, "bytes_received",
		st->bytes_received, "transfers_active", st->transfers_active,
		"decisions", st->decisions, "decision_seconds",
		st->decision_seconds, "send_seconds", st->send_seconds,
		"files", st->files, "objects", st->objects, "tasks_skipped",
		st->tasks_skipped);
}

static void status_body(Manager *self, struct sync *s)
{
	s->ptr = xy_manager_status_json(self->m);
}

static PyObject *Manager_status_json(Manager *self, PyObject *unused)
{
	struct sync s = {.body = status_body};
	PyObject *r;

	if (run_sync(self, &s) < 0)
		return NULL;
	if (!s.ptr)
		return PyErr_NoMemory();
	r = PyUnicode_FromString(s.ptr);
	free(s.ptr);
	return r;
}

static void shutdown_workers_body(Manager *self, struct sync *s)
{
	s->num = xy_manager_shutdown_workers(self->m);
}

static PyObject *Manager_shutdown_workers(Manager *self, PyObject *unused)
{
	struct sync s = {.body = shutdown_workers_body};

	if (run_sync(self, &s) < 0)
		return NULL;
	return PyLong_FromLongLong(s.num);
}

static PyObject *Manager_set_callback(Manager *self, PyObject *fn)
{
	if (fn != Py_None && !PyCallable_Check(fn)) {
		PyErr_SetString(PyExc_TypeError,
				"the callback must be callable");
		return NULL;
	}
	Py_INCREF(fn);
	Py_XSETREF(self->callback, fn);
	Py_RETURN_NONE;
}

/* ------------------------------------------------------ life cycle */

static void stop_closure(struct xy_manager *m, void *arg)
{
	Manager *self = arg;

	__atomic_store_n(&self->stop, 1, __ATOMIC_RELEASE);
	xy_manager_interrupt(m);
}

/* Stops the loop thread, waits for it, and destroys the manager. Tasks
 * still outstanding are dropped without a callback. */
static PyObject *Manager_close(Manager *self, PyObject *unused)
{
	if (self->running && on_loop_thread(self)) {
		PyErr_SetString(PyExc_RuntimeError,
				"close() cannot run on the manager's thread");
		return NULL;
	}
	if (self->closing) /* closed, or being closed by another thread */
		Py_RETURN_NONE;
	self->closing = 1;
	if (self->running) {
		/* If the post fails, the loop reads stop after the
		 * interrupt. */
		if (xy_manager_post(self->m, stop_closure, self) < 0)
			__atomic_store_n(&self->stop, 1, __ATOMIC_RELEASE);
		xy_manager_interrupt(self->m);
		Py_BEGIN_ALLOW_THREADS
		pthread_join(self->thread, NULL);
		Py_END_ALLOW_THREADS
		self->running = 0;
	}
	if (self->m) {
		Py_BEGIN_ALLOW_THREADS
		xy_manager_destroy(self->m);
		Py_END_ALLOW_THREADS
		self->m = NULL;
	}
	Py_CLEAR(self->pool_hooks);
	free(self->keys.keys);
	free(self->keys.ids);
	self->keys = (struct keymap){0};
	Py_CLEAR(self->callback);
	Py_RETURN_NONE;
}

static void free_handles(Manager *self)
{
	free(self->files.keys);
	free(self->files.ids);
	free(self->uses.keys);
	free(self->uses.ids);
	self->files = self->uses = (struct keymap){0};
}

static int Manager_init(Manager *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = {"port",    "host",        "secret",
				 "history", "name",        "call_window",
				 "journal", "journal_sync", "tls_dir",
				 "no_tls",  "http",        NULL};
	struct xy_manager_options o = {0};
	Py_buffer secret = {0};
	char err[ERRLEN] = "";
	sigset_t all, old;
	int r;

	if (self->m || self->running) {
		PyErr_SetString(PyExc_RuntimeError, "Manager is initialised");
		return -1;
	}
	if (!PyArg_ParseTupleAndKeywords(args, kw, "|iz$y*zzizpzpz", kwlist,
					 &o.port, &o.host, &secret, &o.history,
					 &o.name, &o.call_window, &o.journal,
					 &o.journal_sync, &o.tls_dir, &o.no_tls,
					 &o.http))
		return -1;
	if (!secret.obj || secret.len == 0) {
		if (secret.obj)
			PyBuffer_Release(&secret);
		PyErr_SetString(PyExc_TypeError,
				"Manager() needs a non-empty secret (bytes)");
		return -1;
	}
	o.secret = secret.buf;
	o.secret_len = (size_t)secret.len;
	Py_BEGIN_ALLOW_THREADS
	self->m = xy_manager_create(&o, err, sizeof err);
	Py_END_ALLOW_THREADS
	PyBuffer_Release(&secret);
	if (!self->m) {
		PyErr_Format(PyExc_OSError, "cannot create manager: %s", err);
		return -1;
	}
	self->port = xy_manager_port(self->m);
	/* The loop thread takes no signals: they belong to Python's main
	 * thread. It holds a reference to self until it ends. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	Py_INCREF(self);
	r = pthread_create(&self->thread, NULL, loop_main, self);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r) {
		Py_DECREF(self);
		xy_manager_destroy(self->m);
		self->m = NULL;
		errno = r;
		PyErr_SetFromErrno(PyExc_OSError);
		return -1;
	}
	self->running = 1;
	return 0;
}

static int Manager_traverse(Manager *self, visitproc visit, void *arg)
{
	Py_VISIT(self->callback);
	Py_VISIT(self->handles);
	return 0;
}

static int Manager_clear(Manager *self)
{
	Py_CLEAR(self->callback);
	return 0;
}

static void Manager_dealloc(Manager *self)
{
	PyObject_GC_UnTrack(self);
	/* The loop thread holds a reference while it runs, so it has ended
	 * here, or this is that thread dropping its last reference after its
	 * loop ended. */
	if (self->running)
		pthread_detach(self->thread);
	xy_manager_destroy(self->m);
	Py_CLEAR(self->pool_hooks);
	free_handles(self);
	Py_CLEAR(self->handles);
	free(self->keys.keys);
	free(self->keys.ids);
	Py_CLEAR(self->callback);
	Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Manager_get_port(Manager *self, void *closure)
{
	return PyLong_FromLong(self->port);
}

static PyObject *Manager_get_tls_ca(Manager *self, void *closure)
{
	const char *ca = self->m ? xy_manager_tls_ca(self->m) : NULL;
	if (!ca)
		Py_RETURN_NONE;
	return PyUnicode_DecodeFSDefault(ca);
}

static PyObject *Manager_get_http_url(Manager *self, void *closure)
{
	const char *url = self->m ? xy_manager_http_url(self->m) : NULL;
	if (!url)
		Py_RETURN_NONE;
	return PyUnicode_FromString(url);
}

static PyObject *Manager_get_closed(Manager *self, void *closure)
{
	return PyBool_FromLong(!self->m || self->closing);
}

/* ----------------------------------------------------------------- post */

/*
 * post(fn): fn() runs on the loop thread, with the GIL taken on the loop
 * thread's own state, after everything posted before it (submits
 * included). The executor's burst of submits uses it: calls queued while
 * the loop is busy are sent together when it runs (docs/python.md,
 * "Batched calls"). Fire-and-forget: an exception fn raises is reported
 * as unraisable. A post that never runs (the manager closed first) keeps
 * its reference to fn.
 */
struct py_post {
	Manager *self;
	PyObject *fn;
};

static void py_post_closure(struct xy_manager *m, void *arg)
{
	struct py_post *p = arg;
	PyObject *r;

	(void)m;
	if (!finalizing()) {
		PyEval_RestoreThread(p->self->tstate);
		r = PyObject_CallNoArgs(p->fn);
		if (!r)
			PyErr_WriteUnraisable(p->fn);
		Py_XDECREF(r);
		Py_DECREF(p->fn);
		p->self->tstate = PyEval_SaveThread();
	}
	free(p);
}

static PyObject *Manager_post(Manager *self, PyObject *fn)
{
	struct py_post *p;

	if (!PyCallable_Check(fn)) {
		PyErr_SetString(PyExc_TypeError, "post() takes a callable");
		return NULL;
	}
	if (check_open(self) < 0)
		return NULL;
	p = malloc(sizeof *p);
	if (!p)
		return PyErr_NoMemory();
	Py_INCREF(fn);
	*p = (struct py_post){self, fn};
	if (xy_manager_post(self->m, py_post_closure, p) < 0) {
		Py_DECREF(fn);
		free(p);
		return PyErr_SetFromErrno(PyExc_OSError);
	}
	Py_RETURN_NONE;
}

static PyMethodDef Manager_methods[] = {
	{"post", (PyCFunction)Manager_post, METH_O,
	 "post(fn): fn() on the manager's thread, after what was posted"
	 " before"},
	{"submit", (PyCFunction)(void (*)(void))Manager_submit,
	 METH_VARARGS | METH_KEYWORDS,
	 "submit(key, *, command=None, library=None, payload=b'', inputs=(),"
	 " outputs=(), env=None, cores=1, memory=0, disk=0, gpus=0,"
	 " retries=0, priority=0.0, time_limit=0.0, tag=None,"
	 " environment=None, calls=1)\n"
	 "Hands a command task or a call to the manager; its result comes"
	 " back\nthrough the callback under `key`. calls: the calls a batch"
	 " carries\n(the scaler counts it as that many)."},
	{"declare_file", (PyCFunction)Manager_declare_file, METH_VARARGS,
	 "declare_file(path, cache='workflow') -> handle"},
	{"declare_buffer", (PyCFunction)Manager_declare_buffer, METH_VARARGS,
	 "declare_buffer(data, cache='task') -> handle"},
	{"declare_temp", (PyCFunction)Manager_declare_temp, METH_VARARGS,
	 "declare_temp(cache='workflow', replicas=1) -> handle"},
	{"declare_url", (PyCFunction)Manager_declare_url, METH_VARARGS,
	 "declare_url(url, cache='workflow') -> handle"},
	{"declare_unpack", (PyCFunction)Manager_declare_unpack, METH_VARARGS,
	 "declare_unpack(archive_handle, cache='workflow') -> handle"},
	{"release", (PyCFunction)Manager_release, METH_O,
	 "release(handle): gives back one declaration of the file; the"
	 " manager frees it once nothing refers to it. Safe from any thread"
	 " (a finalizer included); nothing after close."},
	{"declare_library",
	 (PyCFunction)(void (*)(void))Manager_declare_library,
	 METH_VARARGS | METH_KEYWORDS,
	 "declare_library(name, command, *, inputs=(), env=None, cores=1,"
	 " memory=0, disk=0, gpus=0, environment=None)"},
	{"add_pool", (PyCFunction)(void (*)(void))Manager_add_pool,
	 METH_VARARGS | METH_KEYWORDS,
	 "add_pool(name, cores, **options): a pool of workers (xylem.Pool)"},
	{"pool_job", (PyCFunction)Manager_pool_job, METH_VARARGS,
	 "pool_job(job, id, why): an external pool's answer for a job"},
	{"cancel", (PyCFunction)Manager_cancel, METH_O,
	 "cancel(key) -> True if a task was cancelled"},
	{"stats", (PyCFunction)Manager_stats, METH_NOARGS,
	 "stats() -> dict of counters"},
	{"status_json", (PyCFunction)Manager_status_json, METH_NOARGS,
	 "status_json() -> str, as `xylem status --json` prints it"},
	{"shutdown_workers", (PyCFunction)Manager_shutdown_workers, METH_NOARGS,
	 "shutdown_workers() -> number of workers told to exit"},
	{"set_callback", (PyCFunction)Manager_set_callback, METH_O,
	 "set_callback(fn): fn(list of result tuples), on the manager's"
	 " thread"},
	{"close", (PyCFunction)Manager_close, METH_NOARGS,
	 "close(): stops the loop thread and destroys the manager"},
	{NULL, NULL, 0, NULL},
};

static PyGetSetDef Manager_getset[] = {
	{"port", (getter)Manager_get_port, NULL, "the port listened on", NULL},
	{"http_url", (getter)Manager_get_http_url, NULL,
	 "the dashboard's address, with its token if one is needed (None:"
	 " no dashboard)", NULL},
	{"tls_ca", (getter)Manager_get_tls_ca, NULL,
	 "the CA certificate workers verify the manager with (None: no TLS)",
	 NULL},
	{"closed", (getter)Manager_get_closed, NULL, "close() was called",
	 NULL},
	{NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject ManagerType = {
	PyVarObject_HEAD_INIT(NULL, 0).tp_name = "xylem._core.Manager",
	.tp_basicsize = sizeof(Manager),
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
	.tp_doc = "Manager(port=0, host=None, *, secret, history=None,"
		  " name=None, call_window=0, journal=None,"
		  " journal_sync=False)\n\nA Xylem manager whose event"
		  " loop runs on a thread of its own. call_window: calls a"
		  " worker may hold per core beyond its free cores (0: the"
		  " default, negative: none). journal: a directory whose"
		  " finished tasks are not run again (docs/durability.md).",
	.tp_new = PyType_GenericNew,
	.tp_init = (initproc)Manager_init,
	.tp_dealloc = (destructor)Manager_dealloc,
	.tp_traverse = (traverseproc)Manager_traverse,
	.tp_clear = (inquiry)Manager_clear,
	.tp_methods = Manager_methods,
	.tp_getset = Manager_getset,
};

/* --------------------------------------------------------------- module */

static PyObject *core_result_string(PyObject *mod, PyObject *arg)
{
	long r = PyLong_AsLong(arg);

	if (r == -1 && PyErr_Occurred())
		return NULL;
	if (r == RESULT_NOT_SUBMITTED)
		return PyUnicode_FromString("not submitted");
	return PyUnicode_FromString(xy_result_string((xy_result)r));
}

static PyMethodDef core_methods[] = {
	{"result_string", core_result_string, METH_O,
	 "result_string(code) -> the result's name"},
	{NULL, NULL, 0, NULL},
};

static struct PyModuleDef core_module = {
	PyModuleDef_HEAD_INIT,
	.m_name = "xylem._core",
	.m_doc = "Bindings of Xylem's public C API (include/xylem.h).",
	.m_size = -1,
	.m_methods = core_methods,
};

static int add_constants(PyObject *mod)
{
	static const struct {
		const char *name;
		long value;
	} k[] = {
		{"RESULT_NOT_SUBMITTED", RESULT_NOT_SUBMITTED},
		{"RESULT_SUCCESS", XY_RESULT_SUCCESS},
		{"RESULT_APP_FAILED", XY_RESULT_APP_FAILED},
		{"RESULT_WORKER_FAILED", XY_RESULT_WORKER_FAILED},
		{"RESULT_RESOURCES_EXHAUSTED", XY_RESULT_RESOURCES_EXHAUSTED},
		{"RESULT_INPUT_MISSING", XY_RESULT_INPUT_MISSING},
		{"RESULT_MANAGER_FAILED", XY_RESULT_MANAGER_FAILED},
		{"RESULT_UNSCHEDULABLE", XY_RESULT_UNSCHEDULABLE},
		{"RESULT_CANCELLED", XY_RESULT_CANCELLED},
		{"FAILURE_NONE", XY_FAILURE_NONE},
		{"FAILURE_LIBRARY_START", XY_FAILURE_LIBRARY_START},
		{"FAILURE_LIBRARY_EXIT", XY_FAILURE_LIBRARY_EXIT},
		{"PAYLOAD_MAX", XY_PAYLOAD_MAX},
		{"OUTPUT_MAX", XY_OUTPUT_MAX},
	};

	for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
		if (PyModule_AddIntConstant(mod, k[i].name, k[i].value) < 0)
			return -1;
	return PyModule_AddObject(mod, "VERSION",
				  Py_BuildValue("(iii)", XY_VERSION_MAJOR,
						XY_VERSION_MINOR,
						XY_VERSION_PATCH));
}

PyMODINIT_FUNC PyInit__core(void)
{
	PyObject *mod;

	if (PyType_Ready(&ManagerType) < 0)
		return NULL;
	mod = PyModule_Create(&core_module);
	if (!mod)
		return NULL;
	Py_INCREF(&ManagerType);
	if (PyModule_AddObject(mod, "Manager", (PyObject *)&ManagerType) < 0 ||
	    add_constants(mod) < 0) {
		Py_DECREF(&ManagerType);
		Py_DECREF(mod);
		return NULL;
	}
	return mod;
}
