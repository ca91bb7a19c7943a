/*
 * library.c: library templates and their warm instances; see library.h. A
 * template (one LIBRARY message) is shared by reference count between its
 * library and the instances started from it, so a new LIBRARY of the same
 * name leaves running instances their own. An instance is STARTING
 * (spawned, no hello yet; a call may wait for it), IDLE (in its library's
 * idle list), BUSY (serving a call, or being stopped), or ENDED (its
 * process gone, its socket closing). It is freed once its socket handle is
 * closed and its process released. Pairs with tasks.c, exec.c and cache.c.
 */
#include "library.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "logdir.h"
#include "taskusers.h"
#include "unpack.h"
#include "util.h"
#include "xylem.h"

extern char **environ;

#define HELLO "XYLIB1"
#define HELLO_LEN 6
#define FRAME_MAX (XY_MAX_PAYLOAD + 64) /* bytes after a frame's length */
#define LOG_MAX (64u << 10)             /* the tail of an instance's log */
#define READ_CHUNK 65536                /* the read buffer between frames */
#define CALL_HDR 16 /* u32 frame length, u64 task id, u32 sandbox length */

enum { I_STARTING, I_IDLE, I_BUSY, I_ENDED };

struct tmpl {
	int refs;
	struct xy_msg_task m; /* the LIBRARY message */
};

struct lib {
	char *name;
	struct tmpl *tmpl;        /* the current template */
	struct lib_inst *idle;    /* idle instances, most recent first */
	struct xy_lib_call *wait_head, *wait_tail; /* for starting ones */
	struct lib *next;
};

struct lib_inst {
	struct xy_libs *L;
	struct lib *lib;
	struct tmpl *tmpl; /* a reference; NULL once ended */
	uint64_t n;        /* sandbox/lib-<n> */
	char *sandbox;
	uint8_t *held; /* per template input: a cache reference held */
	int state;
	int holds;     /* the socket handle, the process, setting up */
	unsigned sock_open : 1, broken : 1, dead : 1, retiring : 1;
	int fault;     /* a result for the worker's own failures, or 0 */
	int account;   /* its task account (taskusers.h), or 0: the worker's */
	struct xy_proc *proc;
	uv_pipe_t sock;
	struct xy_lib_call *call;   /* being served */
	struct xy_lib_call *waiter; /* waiting for this instance's hello */
	char *buf;                  /* bytes read, not yet handled */
	size_t len, cap;
	char why[200]; /* what it was killed for, or "" */
	struct lib_inst *prev, *next;   /* every instance */
	struct lib_inst *iprev, *inext; /* its library's idle list */
};

struct call_write {
	uv_write_t req;
	uint8_t hdr[CALL_HDR];
};

struct xy_libs {
	struct xy_libs_opts o;
	struct lib *libs;
	struct lib_inst *insts;
	size_t n_insts;
	uint64_t seq;
	int stopping;
	int closing; /* destroyed: freed with the last instance */
};

static void serve(struct lib_inst *i, struct xy_lib_call *c);

/* ------------------------------------------------------------ helpers */

static uint32_t get_le32(const char *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

static uint64_t get_le64(const char *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

static void put_le32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static void put_le64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

static void tmpl_decref(struct tmpl *t)
{
	union xy_msg m;

	if (!t || --t->refs > 0)
		return;
	m.task = t->m;
	xy_msg_free(XY_MSG_LIBRARY, &m);
	free(t);
}

static struct lib *lib_find(const struct xy_libs *L, const char *name)
{
	struct lib *b;

	for (b = L->libs; b; b = b->next)
		if (!strcmp(b->name, name))
			return b;
	return NULL;
}

/* A library without a template yet; the caller gives it one at once. */
static struct lib *lib_new(struct xy_libs *L, const char *name)
{
	struct lib *b = calloc(1, sizeof *b);

	if (!b || !(b->name = strdup(name))) {
		free(b);
		return NULL;
	}
	b->next = L->libs;
	L->libs = b;
	return b;
}

/* Removes an instance's sandbox on the thread pool (at once if sync, or
 * if that cannot be queued). Takes path. */
static void sandbox_remove(struct xy_libs *L, char *path, int sync)
{
	if (!sync) {
		xy_sandbox_remove_async(L->o.loop, path);
		return;
	}
	xy_rm_rf(path);
	free(path);
}

/* ------------------------------------------------------ lists of a lib */

static void idle_add(struct lib_inst *i)
{
	struct lib *b = i->lib;

	i->state = I_IDLE;
	i->iprev = NULL;
	i->inext = b->idle;
	if (b->idle)
		b->idle->iprev = i;
	b->idle = i;
}

/* Takes an idle instance out of its list; it is BUSY from now on. */
static void idle_del(struct lib_inst *i)
{
	if (i->state != I_IDLE)
		return;
	if (i->iprev)
		i->iprev->inext = i->inext;
	else
		i->lib->idle = i->inext;
	if (i->inext)
		i->inext->iprev = i->iprev;
	i->iprev = i->inext = NULL;
	i->state = I_BUSY;
}

static void wait_add(struct lib *b, struct xy_lib_call *c)
{
	c->next = NULL;
	c->prev = b->wait_tail;
	if (b->wait_tail)
		b->wait_tail->next = c;
	else
		b->wait_head = c;
	b->wait_tail = c;
}

/* Takes a call off the waiting list and off the instance it waited for. */
static void wait_del(struct xy_lib_call *c)
{
	struct lib_inst *i = c->inst;
	struct lib *b = i->lib;

	if (c->prev)
		c->prev->next = c->next;
	else
		b->wait_head = c->next;
	if (c->next)
		c->next->prev = c->prev;
	else
		b->wait_tail = c->prev;
	c->prev = c->next = NULL;
	i->waiter = NULL;
	c->inst = NULL;
}

/* ------------------------------------------------ an instance's life */

static void libs_free(struct xy_libs *L)
{
	struct lib *b;

	while ((b = L->libs)) {
		L->libs = b->next;
		tmpl_decref(b->tmpl);
		free(b->name);
		free(b);
	}
	free(L);
}

static void inst_unhold(struct lib_inst *i)
{
	struct xy_libs *L = i->L;

	if (--i->holds > 0)
		return;
	if (i->prev)
		i->prev->next = i->next;
	else
		L->insts = i->next;
	if (i->next)
		i->next->prev = i->prev;
	L->n_insts--;
	free(i->buf);
	free(i->held);
	free(i);
	if (L->closing && !L->n_insts)
		libs_free(L);
}

static void on_sock_closed(uv_handle_t *h)
{
	inst_unhold(h->data);
}

static void sock_close(struct lib_inst *i)
{
	if (!i->sock_open)
		return;
	i->sock_open = 0;
	uv_close((uv_handle_t *)&i->sock, on_sock_closed);
}

/* Kills the instance's group and closes its socket: nothing more is read
 * from it or written to it (a write in progress is cancelled, so the
 * call's memory is no longer used). Its exit reports the rest. */
static void inst_kill(struct lib_inst *i)
{
	idle_del(i);
	i->broken = 1;
	sock_close(i);
	if (i->proc)
		xy_proc_kill(i->proc);
}

static void inst_fail(struct lib_inst *i, int fault, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The instance broke the protocol (fault 0) or the worker could not go on
 * with it (fault WORKER_FAILED): kill it, and say why when it exits. */
static void inst_fail(struct lib_inst *i, int fault, const char *fmt, ...)
{
	va_list ap;

	if (i->broken)
		return;
	va_start(ap, fmt);
	vsnprintf(i->why, sizeof i->why, fmt, ap);
	va_end(ap);
	i->fault = fault;
	XY_LOGW("library", "%s instance %" PRIu64 ": %s", i->lib->name, i->n,
		i->why);
	inst_kill(i);
}

/* Lets go of everything but the memory: its socket, its sandbox, its
 * inputs and its template. */
static void inst_end(struct lib_inst *i, int sync)
{
	const struct xy_msg_task *m;

	if (i->state == I_ENDED)
		return;
	idle_del(i);
	i->state = I_ENDED;
	sock_close(i);
	/* What is left under its account ends before its sandbox goes. */
	xy_taskusers_release(i->L->o.users, i->account);
	i->account = 0;
	if (i->sandbox)
		sandbox_remove(i->L, i->sandbox, sync);
	i->sandbox = NULL;
	m = &i->tmpl->m;
	for (uint32_t k = 0; i->held && k < m->n_inputs; k++)
		if (i->held[k])
			xy_cache_decref(i->L->o.cache, m->inputs[k].id);
	free(i->held);
	i->held = NULL;
	tmpl_decref(i->tmpl);
	i->tmpl = NULL;
}

/* After its hello or a call: an instance of the current template takes
 * the oldest call waiting for some starting instance, or waits idle; one
 * of an older template, or while stopping, is stopped. */
static void inst_next(struct lib_inst *i)
{
	struct lib *b = i->lib;
	struct xy_lib_call *c = b->wait_head;

	if (i->broken || i->dead)
		return;
	if (i->tmpl != b->tmpl || i->L->stopping) {
		i->retiring = 1;
		inst_kill(i);
		return;
	}
	if (c) {
		wait_del(c);
		serve(i, c);
		return;
	}
	idle_add(i);
}

/* The hello: the call that started this instance goes first. An instance
 * found dead already serves nothing. */
static void inst_ready(struct lib_inst *i)
{
	struct xy_lib_call *c = i->waiter;

	if (i->dead)
		return;
	i->state = I_BUSY;
	if (!c) {
		inst_next(i);
		return;
	}
	wait_del(c);
	serve(i, c);
}

/* ------------------------------------------------------------- calls */

static void on_written(uv_write_t *req, int status)
{
	struct lib_inst *i = req->data;

	free((struct call_write *)req); /* its first member */
	if (status < 0 && status != UV_ECANCELED && !i->broken) {
		/* It closed its end: its exit says how it went. */
		XY_LOGD("library", "%s instance %" PRIu64 ": write: %s",
			i->lib->name, i->n, uv_strerror(status));
		inst_kill(i);
	}
}

/* Sends a call: one write of the header, the sandbox path and the
 * payload, which the socket usually takes whole at once. The call's
 * limits apply to the instance's group until it replies. */
static void serve(struct lib_inst *i, struct xy_lib_call *c)
{
	struct call_write *w = malloc(sizeof *w);
	size_t plen = strlen(c->sandbox);
	uint64_t mem = c->memory_mb ? c->memory_mb : i->tmpl->m.memory_mb;
	uv_buf_t b[3];
	int r;

	i->state = I_BUSY;
	i->call = c;
	c->inst = i;
	if (!w) {
		inst_fail(i, XY_RESULT_WORKER_FAILED,
			  "out of memory sending a call");
		return;
	}
	if (i->account && xy_taskusers_give(i->L->o.users, i->account,
					    c->sandbox) < 0) {
		free(w);
		inst_fail(i, XY_RESULT_WORKER_FAILED,
			  "cannot give the call's sandbox to account %s: %s",
			  xy_taskusers_name(i->L->o.users, i->account),
			  strerror(errno));
		return;
	}
	put_le32(w->hdr, (uint32_t)(8 + 4 + plen + c->payload_len));
	put_le64(w->hdr + 4, c->task_id);
	put_le32(w->hdr + 12, (uint32_t)plen);
	b[0] = uv_buf_init((char *)w->hdr, CALL_HDR);
	b[1] = uv_buf_init((char *)c->sandbox, (unsigned)plen);
	b[2] = uv_buf_init((char *)c->payload, (unsigned)c->payload_len);
	w->req.data = i;
	r = uv_write(&w->req, (uv_stream_t *)&i->sock, b,
		     c->payload_len ? 3 : 2, on_written);
	if (r < 0) {
		free(w);
		inst_fail(i, XY_RESULT_WORKER_FAILED, "cannot send a call: %s",
			  uv_strerror(r));
		return;
	}
	xy_proc_set_limits(i->proc, mem, c->time_limit_ms);
}

/* A reply frame: the call succeeds with the bytes after the task id. */
static void on_reply(struct lib_inst *i, const char *p, uint32_t n)
{
	struct xy_lib_call *c = i->call;
	struct xy_lib_result r;

	if (n < 8 || get_le64(p) != c->task_id) {
		inst_fail(i, 0, "it sent a reply that is not for task %" PRIu64,
			  c->task_id);
		return;
	}
	if (n - 8 > XY_MAX_PAYLOAD) {
		inst_fail(i, 0, "it sent a reply of %" PRIu32 " bytes, over "
			  "the %u-byte limit", n - 8, XY_MAX_PAYLOAD);
		return;
	}
	/* The payload is the task's memory: it must be sent whole. */
	if (uv_stream_get_write_queue_size((uv_stream_t *)&i->sock) > 0) {
		inst_fail(i, 0, "it replied before reading the whole call");
		return;
	}
	memset(&r, 0, sizeof r);
	r.result = XY_RESULT_SUCCESS;
	r.message = "";
	r.output_len = n - 8;
	r.output = malloc(r.output_len + 1);
	if (r.output) {
		memcpy(r.output, p + 8, r.output_len);
		r.output[r.output_len] = '\0';
	} else {
		r.result = XY_RESULT_WORKER_FAILED;
		r.message = "out of memory taking a reply";
		r.output_len = 0;
	}
	i->call = NULL;
	c->inst = NULL;
	xy_proc_set_limits(i->proc, i->tmpl->m.memory_mb, 0);
	c->on_done(c, &r);
	inst_next(i);
}

static void on_frame(struct lib_inst *i, const char *p, uint32_t n)
{
	if (i->state == I_STARTING) {
		if (n != HELLO_LEN || memcmp(p, HELLO, HELLO_LEN))
			inst_fail(i, 0, "its first frame was not " HELLO);
		else
			inst_ready(i);
	} else if (i->state == I_BUSY && i->call) {
		on_reply(i, p, n);
	} else {
		inst_fail(i, 0, "it sent a frame of %" PRIu32 " bytes while "
			  "it had no call", n);
	}
}

/* Room to read into. parse() has made sure a frame begun fits. */
static int reserve(struct lib_inst *i)
{
	size_t cap = i->cap ? i->cap * 2 : READ_CHUNK;
	char *b;

	if (i->len < i->cap)
		return 0;
	b = realloc(i->buf, cap);
	if (!b)
		return -1;
	i->buf = b;
	i->cap = cap;
	return 0;
}

/* Sizes the buffer for what is left in it: room for the whole of a frame
 * begun (so a large reply is read straight into place, in as few reads as
 * the socket allows), and back to one chunk once a large frame is gone. */
static void resize(struct lib_inst *i)
{
	size_t want = i->len >= 4 ? 4 + (size_t)get_le32(i->buf) : 0;
	size_t cap;
	char *b;

	if (want > i->cap)
		cap = want;
	else if (i->cap > READ_CHUNK && want <= READ_CHUNK &&
		 i->len <= READ_CHUNK)
		cap = READ_CHUNK;
	else
		return;
	b = realloc(i->buf, cap);
	if (!b) {
		if (want > i->cap)
			inst_fail(i, XY_RESULT_WORKER_FAILED,
				  "out of memory reading a frame");
		return;
	}
	i->buf = b;
	i->cap = cap;
}

/* Handles every whole frame in the buffer and keeps the rest. */
static void parse(struct lib_inst *i)
{
	size_t off = 0;
	uint32_t n;

	while (!i->broken && i->len - off >= 4) {
		n = get_le32(i->buf + off);
		if (n > FRAME_MAX) {
			inst_fail(i, 0, "it sent a frame of %" PRIu32 " bytes, "
				  "over the %u-byte limit", n, FRAME_MAX);
			return;
		}
		if (i->len - off - 4 < n)
			break;
		on_frame(i, i->buf + off + 4, n);
		off += 4 + (size_t)n;
	}
	if (i->broken)
		return;
	if (off) {
		memmove(i->buf, i->buf + off, i->len - off);
		i->len -= off;
	}
	resize(i);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	struct lib_inst *i = h->data;

	if (reserve(i) < 0) {
		b->base = NULL; /* libuv reports UV_ENOBUFS */
		b->len = 0;
		return;
	}
	b->base = i->buf + i->len;
	b->len = i->cap - i->len;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct lib_inst *i = s->data;

	if (n > 0) {
		i->len += (size_t)n;
		parse(i);
	} else if (n == UV_ENOBUFS) {
		inst_fail(i, XY_RESULT_WORKER_FAILED,
			  "out of memory reading its frames");
	} else if (n < 0) {
		/* It closed its end: its exit says how it went. */
		inst_kill(i);
	}
}

/* The process has exited, but the socket may still hold what it wrote
 * just before (a reply, then exit): read that first. */
static void drain(struct lib_inst *i)
{
	uv_os_fd_t fd;
	ssize_t n;

	if (i->broken || !i->sock_open ||
	    uv_fileno((uv_handle_t *)&i->sock, &fd) < 0)
		return;
	while (!i->broken && reserve(i) == 0) {
		n = read(fd, i->buf + i->len, i->cap - i->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		i->len += (size_t)n;
		parse(i);
	}
}

/* ---------------------------------------------------- ends of calls */

/* Ends the call c (the instance's waiter or its call) because the
 * instance has exited, with the tail of its log as the output. */
static void fail_call(struct lib_inst *i, struct xy_lib_call *c,
		      struct xy_proc_result *pr)
{
	const char *when = c == i->waiter ? "before it was ready"
					  : "during a call";
	const char *name = i->lib->name;
	struct xy_lib_result r;
	char msg[512];

	memset(&r, 0, sizeof r);
	r.exit_code = pr->exit_code;
	r.failure = c == i->waiter ? XY_FAILURE_LIBRARY_START
				   : XY_FAILURE_LIBRARY_EXIT;
	if (c->cancelled) {
		r.result = XY_RESULT_CANCELLED;
		snprintf(msg, sizeof msg, "cancelled by the manager");
	} else if (pr->end == XY_PROC_LIMIT) {
		r.result = XY_RESULT_RESOURCES_EXHAUSTED;
		snprintf(msg, sizeof msg, "library %s: %s", name, pr->message);
	} else if (pr->end == XY_PROC_TERMINATED) {
		r.result = XY_RESULT_WORKER_FAILED;
		snprintf(msg, sizeof msg, "library %s %s %s", name,
			 XY_PROC_TERMINATED_TEXT, when);
	} else if (i->why[0]) {
		r.result = i->fault ? i->fault : XY_RESULT_APP_FAILED;
		snprintf(msg, sizeof msg, "library %s was killed %s: %s", name,
			 when, i->why);
	} else {
		r.result = XY_RESULT_APP_FAILED;
		snprintf(msg, sizeof msg, "library %s exited with status %d %s",
			 name, pr->exit_code, when);
	}
	r.message = msg;
	r.output = pr->output;
	r.output_len = pr->output_len;
	r.truncated = pr->truncated;
	pr->output = NULL;
	if (c == i->waiter) {
		wait_del(c);
	} else {
		i->call = NULL;
		c->inst = NULL;
	}
	c->on_done(c, &r);
}

static void on_inst_exit(struct xy_proc *p, struct xy_proc_result *r, void *arg)
{
	struct lib_inst *i = arg;

	i->dead = 1;
	drain(i);
	i->proc = NULL;
	xy_proc_release(p);
	if (i->waiter || i->call) {
		fail_call(i, i->waiter ? i->waiter : i->call, r);
	} else if (!i->retiring) {
		XY_LOGW("library", "%s instance %" PRIu64 " exited with status "
			"%d %s%s%s", i->lib->name, i->n, r->exit_code,
			i->state == I_STARTING ? "before it was ready"
					       : "with no call",
			r->message[0] ? ": " : "", r->message);
	}
	free(r->output);
	inst_end(i, 0);
	inst_unhold(i); /* the process */
}

/* ----------------------------------------------------------- starting */

/* Makes sandbox/lib-<n> with the template's inputs linked in, holding a
 * cache reference on each. Returns -1, or the result to fail with. */
static int inst_sandbox(struct lib_inst *i, char *err, size_t errlen)
{
	const char *base = xy_cache_sandboxes(i->L->o.cache);
	const struct xy_msg_task *m = &i->tmpl->m;
	char path[PATH_MAX];
	uint8_t kind;

	for (int tries = 0; !i->sandbox; tries++) {
		i->n = ++i->L->seq;
		if (asprintf(&i->sandbox, "%s/lib-%" PRIu64, base, i->n) < 0) {
			i->sandbox = NULL;
			xy_fail(err, errlen, ENOMEM, "out of memory");
			return XY_RESULT_WORKER_FAILED;
		}
		if (mkdir(i->sandbox, 0755) == 0)
			break;
		xy_fail(err, errlen, errno, "cannot make %s: %s", i->sandbox,
			strerror(errno));
		free(i->sandbox);
		i->sandbox = NULL;
		if (errno != EEXIST || tries == 100)
			return XY_RESULT_WORKER_FAILED;
	}
	if (i->account && xy_taskusers_give(i->L->o.users, i->account,
					    i->sandbox) < 0) {
		xy_fail(err, errlen, errno, "cannot give %s to account %s: %s",
			i->sandbox, xy_taskusers_name(i->L->o.users, i->account),
			strerror(errno));
		return XY_RESULT_WORKER_FAILED;
	}
	for (uint32_t k = 0; k < m->n_inputs; k++) {
		const struct xy_task_input *in = &m->inputs[k];

		if (xy_cache_incref(i->L->o.cache, in->id) == 0)
			i->held[k] = 1;
		if (!i->held[k] ||
		    xy_unpack_input_path(i->L->o.cache, in, path, sizeof path,
					 &kind) < 0) {
			xy_fail(err, errlen, ENOENT, "library %s: input '%s' "
				"is not cached on this worker", i->lib->name,
				in->name);
			return XY_RESULT_INPUT_MISSING;
		}
		if (xy_sandbox_link(i->sandbox, in->name, path, kind, err,
				    errlen) < 0)
			return errno == EINVAL || errno == ENOTDIR ||
					       errno == EEXIST
				       ? XY_RESULT_APP_FAILED
				       : XY_RESULT_WORKER_FAILED;
	}
	return -1;
}

/* The worker's environment (less its secret), the template's cores, its
 * own variables, its software environment's activation (*wrapped: the
 * command to run instead, or NULL), and XYLEM_SANDBOX, later ones
 * winning. */
static int inst_env(struct lib_inst *i, struct xy_env *env, char **wrapped)
{
	static const char *const drop[] = {"XYLEM_SECRET", NULL};
	const struct xy_msg_task *m = &i->tmpl->m;
	char cores[16];

	if (xy_env_init(env, environ, drop) < 0)
		return -1;
	snprintf(cores, sizeof cores, "%" PRIu32, m->cores);
	if (m->cores && (xy_env_set(env, "CORES", cores) < 0 ||
			 xy_env_set(env, "OMP_NUM_THREADS", cores) < 0))
		return -1;
	for (uint32_t k = 0; k < m->n_env; k++)
		if (xy_env_set(env, m->env[k].name, m->env[k].value) < 0)
			return -1;
	if (xy_unpack_activate(env, i->sandbox, m->inputs, m->n_inputs,
			       m->command, wrapped) < 0)
		return -1;
	if (xy_env_set(env, "PWD", i->sandbox) < 0) /* as tasks.c's */
		return -1;
	return xy_env_set(env, "XYLEM_SANDBOX", i->sandbox);
}

/* Starts the process with the child's end of a socket pair as its fd 3.
 * Both ends are close-on-exec: no other instance or task inherits one, so
 * the worker sees end-of-file as soon as this group is gone. */
static int inst_spawn(struct lib_inst *i, char *err, size_t errlen)
{
	struct xy_proc_opts po;
	struct xy_env env;
	char *wrapped = NULL;
	int sv[2], r;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		xy_fail(err, errlen, errno, "cannot make a socket pair: %s",
			strerror(errno));
		return XY_RESULT_WORKER_FAILED;
	}
	uv_pipe_init(i->L->o.loop, &i->sock, 0);
	i->sock.data = i;
	i->sock_open = 1;
	i->holds++;
	r = uv_pipe_open(&i->sock, sv[0]);
	memset(&env, 0, sizeof env);
	if (r < 0 || inst_env(i, &env, &wrapped) < 0) {
		if (r < 0)
			close(sv[0]);
		close(sv[1]);
		xy_env_free(&env);
		free(wrapped);
		xy_fail(err, errlen, ENOMEM, "cannot start library %s: %s",
			i->lib->name, r < 0 ? uv_strerror(r) : "out of memory");
		return XY_RESULT_WORKER_FAILED;
	}
	memset(&po, 0, sizeof po);
	po.command = wrapped ? wrapped : i->tmpl->m.command;
	po.cwd = i->sandbox;
	po.env = env.v;
	po.memory_mb = i->tmpl->m.memory_mb;
	po.disk_mb = i->tmpl->m.disk_mb;
	po.log_max = LOG_MAX;
	po.log_fd = xy_logdir_open(i->L->o.log_dir, "library", i->lib->name,
				   i->n);
	po.fd3 = sv[1];
	po.give_fd3 = 1;
	if (i->account) {
		po.as_user = 1;
		po.uid = xy_taskusers_uid(i->L->o.users, i->account);
		po.gid = xy_taskusers_gid(i->L->o.users, i->account);
	}
	po.on_done = on_inst_exit;
	po.arg = i;
	i->proc = xy_proc_spawn(i->L->o.exec, &po, err, errlen);
	close(sv[1]);
	xy_env_free(&env);
	free(wrapped);
	if (!i->proc)
		return XY_RESULT_WORKER_FAILED;
	i->holds++;
	uv_read_start((uv_stream_t *)&i->sock, on_alloc, on_read);
	return -1;
}

/* Starts an instance of b's current template. Returns -1 and the instance
 * in *out, or the result to fail the call with. */
static int inst_start(struct xy_libs *L, struct lib *b, struct lib_inst **out,
		      char *err, size_t errlen)
{
	struct lib_inst *i = calloc(1, sizeof *i);
	uint32_t n = b->tmpl->m.n_inputs;
	int result;

	if (!i || (n && !(i->held = calloc(n, 1)))) {
		free(i);
		xy_fail(err, errlen, ENOMEM, "out of memory");
		return XY_RESULT_WORKER_FAILED;
	}
	i->L = L;
	i->lib = b;
	i->tmpl = b->tmpl;
	i->tmpl->refs++;
	i->state = I_STARTING;
	i->holds = 1; /* while setting up */
	i->next = L->insts;
	if (L->insts)
		L->insts->prev = i;
	L->insts = i;
	L->n_insts++;
	if (L->o.users)
		i->account = xy_taskusers_claim(L->o.users);
	result = inst_sandbox(i, err, errlen);
	if (result < 0)
		result = inst_spawn(i, err, errlen);
	if (result >= 0)
		inst_end(i, 0);
	else
		*out = i;
	inst_unhold(i);
	return result;
}

/* ------------------------------------------------------------ the API */

struct xy_libs *xy_libs_create(const struct xy_libs_opts *opts)
{
	struct xy_libs *L = calloc(1, sizeof *L);

	if (L)
		L->o = *opts;
	return L;
}

void xy_libs_destroy(struct xy_libs *L)
{
	struct lib_inst *i, *next;
	struct lib *b;

	if (!L || L->closing)
		return;
	L->stopping = 1;
	for (b = L->libs; b; b = b->next)
		while (b->wait_head)
			wait_del(b->wait_head);
	for (i = L->insts; i; i = next) {
		next = i->next;
		if (i->call)
			i->call->inst = NULL;
		i->call = NULL;
		inst_end(i, 1);
		if (i->proc) {
			xy_proc_release(i->proc);
			i->proc = NULL;
			inst_unhold(i);
		}
	}
	L->closing = 1;
	if (!L->n_insts)
		libs_free(L);
}

int xy_libs_define(struct xy_libs *L, struct xy_msg_task *m, char *err,
		   size_t errlen)
{
	struct lib *b;
	struct tmpl *t;

	if (!m->library || !*m->library)
		return xy_fail(err, errlen, EINVAL, "a LIBRARY without a name");
	if (!m->command || !*m->command)
		return xy_fail(err, errlen, EINVAL, "library %s has no command",
			       m->library);
	t = calloc(1, sizeof *t);
	b = lib_find(L, m->library);
	if (t && !b)
		b = lib_new(L, m->library);
	if (!t || !b) {
		free(t);
		return xy_fail(err, errlen, ENOMEM, "out of memory");
	}
	t->refs = 1;
	t->m = *m;
	memset(m, 0, sizeof *m);
	while (b->idle) {
		b->idle->retiring = 1;
		inst_kill(b->idle); /* takes it off the list */
	}
	tmpl_decref(b->tmpl);
	b->tmpl = t;
	return 0;
}

int xy_libs_defined(const struct xy_libs *L, const char *name)
{
	return L && name && lib_find(L, name) != NULL;
}

/* The idle instance a call goes to: the most recent, or with task
 * accounts the most recent whose account no running task or other
 * instance shares (its sandbox then hides from all but this call), if
 * any. */
static struct lib_inst *idle_pick(struct xy_libs *L, struct lib *b)
{
	if (!L->o.users)
		return b->idle;
	for (struct lib_inst *i = b->idle; i; i = i->inext)
		if (xy_taskusers_holders(L->o.users, i->account) == 1)
			return i;
	return b->idle;
}

/* A starting instance of b's current template that no call waits for
 * (its call was cancelled): the next call takes it rather than start
 * another. */
static struct lib_inst *unclaimed(struct xy_libs *L, struct lib *b)
{
	for (struct lib_inst *i = L->insts; i; i = i->next)
		if (i->lib == b && i->state == I_STARTING && !i->waiter &&
		    !i->dead && !i->broken && !i->retiring &&
		    i->tmpl == b->tmpl)
			return i;
	return NULL;
}

int xy_libs_call(struct xy_libs *L, struct xy_lib_call *c, char *err,
		 size_t errlen)
{
	struct lib *b = lib_find(L, c->library);
	struct lib_inst *i;
	int result;

	c->inst = NULL;
	c->prev = c->next = NULL;
	c->cancelled = 0;
	if (!b) {
		xy_fail(err, errlen, ENOENT,
			"library %s is not defined on this worker", c->library);
		return XY_RESULT_APP_FAILED;
	}
	if (L->stopping) {
		xy_fail(err, errlen, ESHUTDOWN, "the worker is stopping");
		return XY_RESULT_WORKER_FAILED;
	}
	i = idle_pick(L, b);
	if (i) {
		idle_del(i);
		serve(i, c);
		return -1;
	}
	/* An instance left starting by a call cancelled meanwhile, else a
	 * new one; c waits for it to be ready. */
	i = unclaimed(L, b);
	if (!i && (result = inst_start(L, b, &i, err, errlen)) >= 0)
		return result;
	i->waiter = c;
	c->inst = i;
	wait_add(b, c);
	return -1;
}

int xy_libs_cancel(struct xy_libs *L, struct xy_lib_call *c)
{
	struct lib_inst *i = c->inst;

	if (!i)
		return 0;
	if (i->waiter == c) {
		wait_del(c); /* the instance stays, for later calls */
		return 0;
	}
	c->cancelled = 1;
	inst_kill(i);
	return 1;
}

void xy_libs_detach(struct xy_libs *L, struct xy_lib_call *c)
{
	struct lib_inst *i = c->inst;

	if (xy_libs_cancel(L, c) == 0)
		return;
	i->call = NULL;
	c->inst = NULL;
}

void xy_libs_stop(struct xy_libs *L)
{
	struct lib_inst *i;

	if (!L)
		return;
	L->stopping = 1;
	for (i = L->insts; i; i = i->next) {
		if (i->state == I_ENDED)
			continue;
		i->retiring = 1;
		inst_kill(i);
	}
}

size_t xy_libs_instances(const struct xy_libs *L)
{
	return L->n_insts;
}
