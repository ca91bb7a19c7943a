/*
 * test_worker.c: the worker daemon (src/worker) against a fake manager.
 * Each case forks a real worker (xy_worker_main) that connects to a
 * manager played here with conn.h and a transfer server of its own, then
 * drives it with TASK, FETCH, LIBRARY, CANCEL, SHUTDOWN and signals and
 * checks what comes back; the library cases run a small python3 library
 * that speaks the instances' protocol on fd 3; archives are expanded by
 * a fake tar that can fail as a worker does, and URLs fetched from a fake
 * origin that never answers. Pairs with test_cache.c,
 * which covers the cache and the sandbox code alone.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "auth.h"
#include "conn.h"
#include "harness.h"
#include "object.h"
#include "proto.h"
#include "util.h"
#include "worker.h"
#include "xfer.h"
#include "xylem.h"

#define SECRET "test-secret"
#define WAIT_MS 10000

struct got {
	unsigned type;
	union xy_msg m;
	struct got *next;
};

struct fm {
	uv_loop_t loop;
	uv_tcp_t server;
	uv_timer_t timer;
	struct xy_conn *conn;
	int port;
	int closed;
	struct got *head, *tail;
	pid_t worker;
	char dir[PATH_MAX];  /* files the manager serves */
	char cache[PATH_MAX];
	struct xy_xfer_server *xfer;
	uint16_t worker_xfer_port;
};


/* snprintf that fails the test instead of truncating. */
static void pathf(char *out, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void pathf(char *out, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out, len, fmt, ap);
	va_end(ap);
	XY_CHECK(n >= 0 && (size_t)n < len);
}

static void on_msg(struct xy_conn *c, unsigned type, union xy_msg *m)
{
	struct fm *f = xy_conn_data(c);
	struct got *g = calloc(1, sizeof *g);

	XY_CHECK(g);
	g->type = type;
	g->m = *m;
	memset(m, 0, sizeof *m); /* stolen */
	if (f->tail)
		f->tail->next = g;
	else
		f->head = g;
	f->tail = g;
}

static void on_close(struct xy_conn *c, const char *reason)
{
	struct fm *f = xy_conn_data(c);

	f->conn = NULL;
	f->closed = 1;
}

static void on_connection(uv_stream_t *s, int status)
{
	struct fm *f = s->data;
	struct xy_conn_opts o;

	memset(&o, 0, sizeof o);
	o.secret = SECRET;
	o.secret_len = strlen(SECRET);
	o.on_msg = on_msg;
	o.on_close = on_close;
	o.data = f;
	XY_CHECK(status == 0 && !f->conn);
	f->conn = xy_conn_accept(s, &o);
	XY_CHECK(f->conn);
}

/* The manager's files are served by name = hex id under f->dir. */
static int lookup(void *arg, const uint8_t id[XY_ID_LEN], char *path,
		  size_t pathlen, uint8_t *kind)
{
	struct fm *f = arg;
	char hex[2 * XY_ID_LEN + 1];
	struct stat st;

	xy_hex(id, XY_ID_LEN, hex);
	snprintf(path, pathlen, "%s/%s", f->dir, hex);
	if (stat(path, &st) < 0)
		return -1;
	*kind = S_ISDIR(st.st_mode) ? XY_KIND_DIR : XY_KIND_FILE;
	return 0;
}

static void start_worker(struct fm *f, const char *secret, const char *extra)
{
	char target[64], cores[] = "2";
	char *argv[18];
	int argc = 0;

	snprintf(target, sizeof target, "127.0.0.1:%d", f->port);
	argv[argc++] = "test_worker";
	argv[argc++] = "--as-worker";
	argv[argc++] = "worker";
	argv[argc++] = target;
	argv[argc++] = "--cores";
	argv[argc++] = cores;
	if (f->cache[0]) {
		argv[argc++] = "--cache";
		argv[argc++] = f->cache;
	}
	argv[argc++] = "--name";
	argv[argc++] = "w1";
	if (extra)
		argv[argc++] = (char *)extra;
	argv[argc] = NULL;
	fflush(NULL);
	f->worker = fork();
	XY_CHECK(f->worker >= 0);
	if (f->worker == 0) {
		setenv("XYLEM_SECRET", secret, 1);
		setenv("XYLEM_LOG", "warn", 1);
		/* A fresh image, not the forked one: this process has the fake
		 * manager's threads, and a lock one of them held at fork (the
		 * sanitizers' allocator has no fork handlers) would never be
		 * released in the child. main() runs the worker. */
		execv("/proc/self/exe", argv);
		_exit(127);
	}
}

static void fm_start(struct fm *f, const char *secret, const char *extra,
		     int own_cache)
{
	struct sockaddr_in sa;
	struct sockaddr_storage ss;
	int len = sizeof ss;
	char err[256];

	memset(f, 0, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "%s/files", xy_test_tmpdir());
	if (own_cache)
		snprintf(f->cache, sizeof f->cache, "%s/cache",
			 xy_test_tmpdir());
	XY_CHECK(mkdir(f->dir, 0755) == 0);
	XY_CHECK(uv_loop_init(&f->loop) == 0);
	uv_timer_init(&f->loop, &f->timer);
	uv_tcp_init(&f->loop, &f->server);
	f->server.data = f;
	uv_ip4_addr("127.0.0.1", 0, &sa);
	XY_CHECK(uv_tcp_bind(&f->server, (struct sockaddr *)&sa, 0) == 0);
	XY_CHECK(uv_listen((uv_stream_t *)&f->server, 8, on_connection) == 0);
	uv_tcp_getsockname(&f->server, (struct sockaddr *)&ss, &len);
	f->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	f->xfer = xy_xfer_server_start("127.0.0.1", 0, SECRET, strlen(SECRET),
				       lookup, f, err, sizeof err);
	XY_CHECK(f->xfer);
	start_worker(f, secret, extra);
}

static void on_timer(uv_timer_t *t)
{
}

/* Runs the manager's loop for ms milliseconds, so what it queued goes
 * out. */
static void pump(struct fm *f, int ms)
{
	uint64_t end = xy_mono_us() + (uint64_t)ms * 1000;

	uv_timer_start(&f->timer, on_timer, 10, 10);
	while (xy_mono_us() < end)
		uv_run(&f->loop, UV_RUN_ONCE);
	uv_timer_stop(&f->timer);
}

/* Runs the loop until a message of this type arrives; returns it (the
 * caller frees it with got_free). */
static struct got *wait_for(struct fm *f, unsigned type)
{
	uint64_t end = xy_mono_us() + (uint64_t)WAIT_MS * 1000;

	uv_timer_start(&f->timer, on_timer, 50, 50);
	while (xy_mono_us() < end) {
		struct got **pp = &f->head, *prev = NULL;

		for (; *pp; prev = *pp, pp = &(*pp)->next) {
			struct got *g = *pp;

			if (g->type != type)
				continue;
			*pp = g->next;
			if (f->tail == g)
				f->tail = prev;
			uv_timer_stop(&f->timer);
			return g;
		}
		uv_run(&f->loop, UV_RUN_ONCE);
	}
	fprintf(stderr, "no %s within %d ms\n", xy_msg_name(type), WAIT_MS);
	exit(1);
}

static void got_free(struct got *g)
{
	xy_msg_free(g->type, &g->m);
	free(g);
}

static void send_msg(struct fm *f, unsigned type, union xy_msg *m)
{
	XY_CHECK(f->conn);
	XY_CHECK(xy_conn_send(f->conn, type, m) == 0);
}

/* Waits for HELLO and checks what it says. */
static void hello(struct fm *f)
{
	struct got *g = wait_for(f, XY_MSG_HELLO);

	XY_CHECK(!strcmp(g->m.hello.name, "w1"));
	XY_CHECK_EQ(g->m.hello.cores, 2);
	XY_CHECK(g->m.hello.memory_mb > 0);
	XY_CHECK(g->m.hello.xfer_port > 0);
	f->worker_xfer_port = g->m.hello.xfer_port;
	got_free(g);
}

/* Waits for the worker to exit, serving the connection meanwhile. */
static int wait_exit(struct fm *f)
{
	uint64_t end = xy_mono_us() + (uint64_t)WAIT_MS * 1000;
	pid_t pid = f->worker;
	int status;

	while (xy_mono_us() < end) {
		pid_t r = waitpid(pid, &status, WNOHANG);

		if (r == pid)
			return WIFEXITED(status) ? WEXITSTATUS(status)
						 : 128 + WTERMSIG(status);
		uv_run(&f->loop, UV_RUN_NOWAIT);
		usleep(5000);
	}
	kill(pid, SIGKILL);
	fprintf(stderr, "worker did not exit\n");
	exit(1);
}

static void shutdown_worker(struct fm *f)
{
	send_msg(f, XY_MSG_SHUTDOWN, NULL);
	XY_CHECK_EQ(wait_exit(f), 0);
}

static void task_msg(union xy_msg *m, uint64_t id, const char *cmd)
{
	memset(m, 0, sizeof *m);
	m->task.task_id = id;
	m->task.command = (char *)cmd;
	m->task.cores = 1;
}

/* Sends a task without files and waits for its TASK_DONE. */
static struct got *run(struct fm *f, uint64_t id, const char *cmd)
{
	union xy_msg m;
	struct got *g;

	task_msg(&m, id, cmd);
	send_msg(f, XY_MSG_TASK, &m);
	g = wait_for(f, XY_MSG_TASK_DONE);
	XY_CHECK_EQ(g->m.task_done.task_id, id);
	return g;
}

static void t_noop_and_failure(void)
{
	struct fm f;
	struct got *g;

	fm_start(&f, SECRET, NULL, 1);
	hello(&f);
	g = run(&f, 1, "true");
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_SUCCESS);
	XY_CHECK_EQ(g->m.task_done.exit_code, 0);
	XY_CHECK(g->m.task_done.end_us >= g->m.task_done.start_us);
	XY_CHECK(g->m.task_done.start_us > 1600000000ull * 1000000);
	got_free(g);

	g = run(&f, 2, "echo out; echo err >&2; exit 3");
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_APP_FAILED);
	XY_CHECK_EQ(g->m.task_done.exit_code, 3);
	XY_CHECK(!strcmp(g->m.task_done.output, "out\nerr\n"));
	got_free(g);

	g = run(&f, 3, "kill -SEGV $$");
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_APP_FAILED);
	XY_CHECK_EQ(g->m.task_done.exit_code, 128 + SIGSEGV);
	got_free(g);

	/* The environment: the sandbox, the cores, no secret. */
	g = run(&f, 4, "test \"$PWD\" = \"$XYLEM_SANDBOX\" && "
		       "test \"$CORES\" = 1 && test \"$OMP_NUM_THREADS\" = 1 "
		       "&& test -z \"$XYLEM_SECRET\"");
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_SUCCESS);
	got_free(g);
	shutdown_worker(&f);
}

static void t_output_ring(void)
{
	struct fm f;
	struct got *g;

	fm_start(&f, SECRET, NULL, 1);
	hello(&f);
	/* 3 MiB of output: the last 1 MiB is kept. */
	g = run(&f, 1, "head -c 3145728 /dev/zero | tr '\\0' a; echo END");
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_SUCCESS);
	XY_CHECK(g->m.task_done.output_truncated);
	XY_CHECK_EQ(g->m.task_done.output_len, XY_MAX_OUTPUT);
	XY_CHECK(!strcmp(g->m.task_done.output + XY_MAX_OUTPUT - 4, "END\n"));
	got_free(g);
	shutdown_worker(&f);
}

/* Puts text in the manager's directory under its id. */
static void serve_text(struct fm *f, const char *text, uint8_t id[XY_ID_LEN],
		       uint64_t *size)
{
	char tmp[PATH_MAX], path[PATH_MAX], hex[2 * XY_ID_LEN + 1], err[256];
	uint8_t kind;
	FILE *fp;

	pathf(tmp, sizeof tmp, "%s/new", f->dir);
	fp = fopen(tmp, "w");
	XY_CHECK(fp);
	fputs(text, fp);
	fclose(fp);
	XY_CHECK(xy_object_hash(tmp, id, &kind, size, err, sizeof err) == 0);
	xy_hex(id, XY_ID_LEN, hex);
	pathf(path, sizeof path, "%s/%s", f->dir, hex);
	XY_CHECK(rename(tmp, path) == 0);
}

static void fetch_msg(union xy_msg *m, const uint8_t id[XY_ID_LEN],
		      uint64_t size, int port)
{
	memset(m, 0, sizeof *m);
	memcpy(m->fetch.id, id, XY_ID_LEN);
	m->fetch.kind = XY_KIND_FILE;
	m->fetch.level = XY_CACHE_WORKFLOW;
	m->fetch.size = size;
	m->fetch.n_sources = 1;
	m->fetch.sources[0].host = "127.0.0.1";
	m->fetch.sources[0].port = (uint16_t)port;
	xy_token_make(SECRET, strlen(SECRET), id, ((uint64_t)time(NULL) + 60) * 1000000ull, "w1",
		      m->fetch.token);
}

static void t_fetch_inputs_outputs(void)
{
	struct xy_task_input in;
	struct xy_task_output out[2];
	uint8_t id[XY_ID_LEN], want[XY_ID_LEN], tok[XY_TOKEN_LEN], kind;
	char back[PATH_MAX], err[256], *body;
	uint64_t size, bytes;
	union xy_msg m;
	struct got *g;
	size_t len;
	struct fm f;

	fm_start(&f, SECRET, NULL, 1);
	hello(&f);
	serve_text(&f, "line\n", id, &size);
	fetch_msg(&m, id, size, xy_xfer_server_port(f.xfer));
	send_msg(&f, XY_MSG_FETCH, &m);
	/* The TASK follows its FETCH at once and waits for the input. */
	task_msg(&m, 7, "cat in/data in/data > out.txt");
	memset(&in, 0, sizeof in);
	memcpy(in.id, id, XY_ID_LEN);
	in.name = "in/data";
	in.level = XY_CACHE_WORKFLOW;
	memset(out, 0, sizeof out);
	out[0].name = "out.txt";
	out[0].level = XY_CACHE_WORKER;
	m.task.n_inputs = 1;
	m.task.inputs = &in;
	m.task.n_outputs = 1;
	m.task.outputs = out;
	send_msg(&f, XY_MSG_TASK, &m);
	g = wait_for(&f, XY_MSG_CACHE_UPDATE);
	XY_CHECK_EQ(g->m.cache_update.status, XY_OBJ_OK);
	XY_CHECK_EQ(g->m.cache_update.size, size);
	got_free(g);
	g = wait_for(&f, XY_MSG_TASK_DONE);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_SUCCESS);
	XY_CHECK_EQ(g->m.task_done.n_outputs, 1);
	XY_CHECK(!strcmp(g->m.task_done.outputs[0].name, "out.txt"));
	XY_CHECK_EQ(g->m.task_done.outputs[0].size, 10);
	memcpy(want, g->m.task_done.outputs[0].id, XY_ID_LEN);
	got_free(g);

	/* The output is served by the worker's transfer server. */
	snprintf(back, sizeof back, "%s/back", xy_test_tmpdir());
	xy_token_make(SECRET, strlen(SECRET), want, ((uint64_t)time(NULL) + 60) * 1000000ull, "w1",
		      tok);
	XY_CHECK_EQ(xy_xfer_fetch("127.0.0.1", f.worker_xfer_port, SECRET,
				  strlen(SECRET), want, tok, "w1", back, 0, &bytes,
				  err, sizeof err),
		    XY_OBJ_OK);
	body = xy_read_file(back, 100, &len);
	XY_CHECK(body && len == 10 && !memcmp(body, "line\nline\n", 10));
	free(body);

	/* A FETCH of a cached object is answered at once. */
	fetch_msg(&m, id, size, xy_xfer_server_port(f.xfer));
	send_msg(&f, XY_MSG_FETCH, &m);
	g = wait_for(&f, XY_MSG_CACHE_UPDATE);
	XY_CHECK_EQ(g->m.cache_update.status, XY_OBJ_OK);
	got_free(g);

	/* A declared output not made fails the task; one made is kept. */
	task_msg(&m, 8, "echo x > a");
	out[0].name = "a";
	out[1].name = "b";
	m.task.n_outputs = 2;
	m.task.outputs = out;
	send_msg(&f, XY_MSG_TASK, &m);
	g = wait_for(&f, XY_MSG_TASK_DONE);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_APP_FAILED);
	XY_CHECK(strstr(g->m.task_done.message, "'b' was not created"));
	XY_CHECK_EQ(g->m.task_done.n_outputs, 1);
	got_free(g);
	(void)kind;
	shutdown_worker(&f);
}

/* Makes a directory object in the manager's directory. */
static void serve_dir(struct fm *f, uint8_t id[XY_ID_LEN], uint64_t *size)
{
	char tmp[PATH_MAX], path[3 * PATH_MAX], hex[2 * XY_ID_LEN + 1];
	char err[256];
	uint8_t kind;

	pathf(tmp, sizeof tmp, "%s/newdir", f->dir);
	pathf(path, sizeof path, "mkdir -p %s/sub && echo one > %s/a && "
	      "echo two > %s/sub/b", tmp, tmp, tmp);
	XY_CHECK(system(path) == 0);
	XY_CHECK(xy_object_hash(tmp, id, &kind, size, err, sizeof err) == 0);
	XY_CHECK_EQ(kind, XY_KIND_DIR);
	xy_hex(id, XY_ID_LEN, hex);
	pathf(path, sizeof path, "%s/%s", f->dir, hex);
	XY_CHECK(rename(tmp, path) == 0);
}

static void t_dirs_forever_unlink(void)
{
	struct xy_task_input in;
	struct xy_task_output out;
	uint8_t id[XY_ID_LEN], oid[XY_ID_LEN], tok[XY_TOKEN_LEN];
	char back[PATH_MAX], err[PATH_MAX + 64];
	uint64_t size, bytes;
	union xy_msg m;
	struct got *g;
	struct fm f;

	fm_start(&f, SECRET, NULL, 1);
	hello(&f);
	serve_dir(&f, id, &size);
	fetch_msg(&m, id, size, xy_xfer_server_port(f.xfer));
	m.fetch.kind = XY_KIND_DIR;
	m.fetch.level = XY_CACHE_FOREVER;
	send_msg(&f, XY_MSG_FETCH, &m);
	g = wait_for(&f, XY_MSG_CACHE_UPDATE);
	XY_CHECK_EQ(g->m.cache_update.status, XY_OBJ_OK);
	got_free(g);

	task_msg(&m, 1, "test -L d && test \"$(cat d/sub/b)\" = two && "
			"mkdir -p o/deep && cp d/a o/deep/a && echo 3 > o/c");
	memset(&in, 0, sizeof in);
	memcpy(in.id, id, XY_ID_LEN);
	in.kind = XY_KIND_DIR;
	in.level = XY_CACHE_FOREVER;
	in.name = "d";
	memset(&out, 0, sizeof out);
	out.name = "o";
	out.level = XY_CACHE_WORKER;
	m.task.n_inputs = 1;
	m.task.inputs = &in;
	m.task.n_outputs = 1;
	m.task.outputs = &out;
	send_msg(&f, XY_MSG_TASK, &m);
	g = wait_for(&f, XY_MSG_TASK_DONE);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_SUCCESS);
	XY_CHECK_EQ(g->m.task_done.n_outputs, 1);
	XY_CHECK_EQ(g->m.task_done.outputs[0].kind, XY_KIND_DIR);
	memcpy(oid, g->m.task_done.outputs[0].id, XY_ID_LEN);
	got_free(g);

	/* The output directory comes back whole. */
	snprintf(back, sizeof back, "%s/back", xy_test_tmpdir());
	xy_token_make(SECRET, strlen(SECRET), oid, ((uint64_t)time(NULL) + 60) * 1000000ull, "w1",
		      tok);
	XY_CHECK_EQ(xy_xfer_fetch("127.0.0.1", f.worker_xfer_port, SECRET,
				  strlen(SECRET), oid, tok, "w1", back, 0, &bytes,
				  err, sizeof err),
		    XY_OBJ_OK);
	pathf(err, sizeof err, "test \"$(cat %s/deep/a)\" = one", back);
	XY_CHECK(system(err) == 0);

	/* Released (the manager has it) and unlinked, it is served no
	 * more. */
	memset(&m, 0, sizeof m);
	memcpy(m.release.id, oid, XY_ID_LEN);
	send_msg(&f, XY_MSG_RELEASE, &m);
	memcpy(m.unlink.id, oid, XY_ID_LEN);
	send_msg(&f, XY_MSG_UNLINK, &m);
	task_msg(&m, 2, "true"); /* a round trip: the UNLINK is done */
	send_msg(&f, XY_MSG_TASK, &m);
	got_free(wait_for(&f, XY_MSG_TASK_DONE));
	xy_rm_rf(back);
	XY_CHECK(xy_xfer_fetch("127.0.0.1", f.worker_xfer_port, SECRET,
			       strlen(SECRET), oid, tok, "w1", back, 0, &bytes, err,
			       sizeof err) != XY_OBJ_OK);
	shutdown_worker(&f);

	/* A restart on the same cache lists the FOREVER directory. */
	start_worker(&f, SECRET, NULL);
	g = wait_for(&f, XY_MSG_HELLO);
	XY_CHECK_EQ(g->m.hello.n_items, 1);
	XY_CHECK(!memcmp(g->m.hello.items[0].id, id, XY_ID_LEN));
	XY_CHECK_EQ(g->m.hello.items[0].kind, XY_KIND_DIR);
	XY_CHECK_EQ(g->m.hello.items[0].size, size);
	got_free(g);
	shutdown_worker(&f);
}

static void t_gpus_and_default_cache(void)
{
	struct fm f;
	struct got *g;

	union xy_msg m;
	char cmd[PATH_MAX];

	setenv("TMPDIR", xy_test_tmpdir(), 1);
	fm_start(&f, SECRET, "--gpus=2", 0);
	hello(&f);
	task_msg(&m, 1, "test \"$CUDA_VISIBLE_DEVICES\" = 0,1");
	m.task.gpus = 2;
	send_msg(&f, XY_MSG_TASK, &m);
	g = wait_for(&f, XY_MSG_TASK_DONE);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_SUCCESS);
	got_free(g);
	snprintf(cmd, sizeof cmd, "ls -d %s/xylem-worker-* >/dev/null 2>&1",
		 xy_test_tmpdir());
	XY_CHECK(system(cmd) == 0);
	shutdown_worker(&f);
	/* The temporary cache is gone with the worker. */
	XY_CHECK(system(cmd) != 0);
}

static void t_inputs_missing(void)
{
	struct xy_task_input in;
	uint8_t id[XY_ID_LEN];
	uint64_t size;
	union xy_msg m;
	struct got *g;
	struct fm f;

	fm_start(&f, SECRET, NULL, 1);
	hello(&f);
	/* Neither cached nor fetched. */
	memset(&in, 0, sizeof in);
	memset(in.id, 1, XY_ID_LEN);
	in.name = "nothing";
	task_msg(&m, 1, "true");
	m.task.n_inputs = 1;
	m.task.inputs = &in;
	send_msg(&f, XY_MSG_TASK, &m);
	/* The worker's blame: only the manager knows whether a copy is
	 * left anywhere, and retries or fails the task. */
	g = wait_for(&f, XY_MSG_TASK_DONE);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_WORKER_FAILED);
	XY_CHECK(strstr(g->m.task_done.message, "'nothing'"));
	got_free(g);

	/* A fetch the source cannot answer. */
	serve_text(&f, "gone", id, &size);
	fetch_msg(&m, id, size, xy_xfer_server_port(f.xfer));
	memset(m.fetch.id, 2, XY_ID_LEN);
	xy_token_make(SECRET, strlen(SECRET), m.fetch.id, ((uint64_t)time(NULL) + 60) * 1000000ull, "w1", m.fetch.token);
	memcpy(in.id, m.fetch.id, XY_ID_LEN);
	send_msg(&f, XY_MSG_FETCH, &m);
	task_msg(&m, 2, "true");
	m.task.n_inputs = 1;
	m.task.inputs = &in;
	send_msg(&f, XY_MSG_TASK, &m);
	g = wait_for(&f, XY_MSG_CACHE_UPDATE);
	XY_CHECK(g->m.cache_update.status != XY_OBJ_OK);
	got_free(g);
	g = wait_for(&f, XY_MSG_TASK_DONE);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_WORKER_FAILED);
	got_free(g);
	shutdown_worker(&f);
}

static void t_limits(void)
{
	union xy_msg m;
	struct got *g;
	struct fm f;

	fm_start(&f, SECRET, NULL, 1);
	hello(&f);
	task_msg(&m, 1, "sleep 20");
	m.task.time_limit_ms = 300;
	send_msg(&f, XY_MSG_TASK, &m);
	g = wait_for(&f, XY_MSG_TASK_DONE);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_RESOURCES_EXHAUSTED);
	XY_CHECK(strstr(g->m.task_done.message, "time"));
	XY_CHECK(g->m.task_done.end_us - g->m.task_done.start_us < 3000000);
	got_free(g);

	/* tail holds a 200 MB line in memory until its input ends. */
	task_msg(&m, 2, "(head -c 200000000 /dev/zero; sleep 20) | tail");
	m.task.memory_mb = 50;
	send_msg(&f, XY_MSG_TASK, &m);
	g = wait_for(&f, XY_MSG_TASK_DONE);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_RESOURCES_EXHAUSTED);
	XY_CHECK(strstr(g->m.task_done.message, "memory"));
	XY_CHECK(strstr(g->m.task_done.message, "50 MB limit"));
	got_free(g);

	task_msg(&m, 3, "head -c 30000000 /dev/zero > big; sleep 20");
	m.task.disk_mb = 10;
	send_msg(&f, XY_MSG_TASK, &m);
	g = wait_for(&f, XY_MSG_TASK_DONE);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_RESOURCES_EXHAUSTED);
	XY_CHECK(strstr(g->m.task_done.message, "disk"));
	got_free(g);
	shutdown_worker(&f);
}

static void t_cancel(void)
{
	union xy_msg m;
	struct got *g;
	struct fm f;
	uint64_t t0;

	fm_start(&f, SECRET, NULL, 1);
	hello(&f);
	task_msg(&m, 5, "sleep 30");
	send_msg(&f, XY_MSG_TASK, &m);
	pump(&f, 200);
	t0 = xy_mono_us();
	memset(&m, 0, sizeof m);
	m.cancel.task_id = 5;
	send_msg(&f, XY_MSG_CANCEL, &m);
	g = wait_for(&f, XY_MSG_TASK_DONE);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_CANCELLED);
	XY_CHECK(xy_mono_us() - t0 < 2000000);
	got_free(g);
	/* The worker goes on. */
	g = run(&f, 6, "true");
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_SUCCESS);
	got_free(g);
	shutdown_worker(&f);
}

/* Sandboxes are removed on the worker's thread pool, after the reply:
 * a check of what is left polls for up to 10 s. */
static int eventually(const char *cmd)
{
	for (int i = 0; i < 100; i++) {
		if (system(cmd) == 0)
			return 1;
		usleep(100 * 1000);
	}
	return 0;
}

static int dir_empty(const char *path)
{
	char cmd[PATH_MAX + 64];

	snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s')\"", path);
	return system(cmd) == 0;
}

static void t_sigterm_bye(void)
{
	char sb[PATH_MAX];
	union xy_msg m;
	struct got *g;
	struct fm f;

	fm_start(&f, SECRET, NULL, 1);
	hello(&f);
	task_msg(&m, 11, "sleep 30");
	send_msg(&f, XY_MSG_TASK, &m);
	task_msg(&m, 12, "sleep 30");
	send_msg(&f, XY_MSG_TASK, &m);
	pump(&f, 300);
	kill(f.worker, SIGTERM);
	g = wait_for(&f, XY_MSG_BYE);
	XY_CHECK_EQ(g->m.bye.n_tasks, 2);
	XY_CHECK(g->m.bye.task_ids[0] + g->m.bye.task_ids[1] == 23);
	got_free(g);
	XY_CHECK_EQ(wait_exit(&f), 0);
	pathf(sb, sizeof sb, "%s/sandbox", f.cache);
	XY_CHECK(dir_empty(sb));
	/* No TASK_DONE for the tasks given back. */
	for (struct got *x = f.head; x; x = x->next)
		XY_CHECK(x->type != XY_MSG_TASK_DONE);
}

static void t_stop_during_fetch(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof sa;
	struct xy_task_input in;
	union xy_msg m;
	struct got *g;
	struct fm f;
	uint64_t t0;
	int fd;

	/* A source that accepts and then says nothing. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	XY_CHECK(bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
	XY_CHECK(listen(fd, 4) == 0);
	XY_CHECK(getsockname(fd, (struct sockaddr *)&sa, &len) == 0);

	fm_start(&f, SECRET, NULL, 1);
	hello(&f);
	memset(&in, 0, sizeof in);
	memset(in.id, 5, XY_ID_LEN);
	in.name = "slow";
	fetch_msg(&m, in.id, 1, ntohs(sa.sin_port));
	send_msg(&f, XY_MSG_FETCH, &m);
	task_msg(&m, 9, "true");
	m.task.n_inputs = 1;
	m.task.inputs = &in;
	send_msg(&f, XY_MSG_TASK, &m);
	pump(&f, 300);
	t0 = xy_mono_us();
	kill(f.worker, SIGTERM);
	g = wait_for(&f, XY_MSG_BYE);
	XY_CHECK_EQ(g->m.bye.n_tasks, 1);
	XY_CHECK_EQ(g->m.bye.task_ids[0], 9);
	got_free(g);
	XY_CHECK_EQ(wait_exit(&f), 0);
	XY_CHECK(xy_mono_us() - t0 < 5000000);
	close(fd);
}

static void t_bad_secret(void)
{
	struct fm f;

	fm_start(&f, "not the secret", NULL, 1);
	XY_CHECK_EQ(wait_exit(&f), 1);
}

/* Many short tasks in turn, two at a time, as a manager keeps a two-core
 * worker busy: every one is reported once, in whatever order. */
static void t_many_tasks(void)
{
	const int n = 500;
	char *seen = calloc(n + 1, 1);
	int done = 0, sent = 0;
	union xy_msg m;
	struct fm f;

	XY_CHECK(seen);
	fm_start(&f, SECRET, NULL, 1);
	hello(&f);
	while (sent < 2) {
		task_msg(&m, (uint64_t)++sent, "true");
		send_msg(&f, XY_MSG_TASK, &m);
	}
	while (done < n) {
		struct got *g = wait_for(&f, XY_MSG_TASK_DONE);
		uint64_t id = g->m.task_done.task_id;

		XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_SUCCESS);
		XY_CHECK(id >= 1 && id <= (uint64_t)n && !seen[id]);
		seen[id] = 1;
		got_free(g);
		done++;
		if (sent < n) {
			task_msg(&m, (uint64_t)++sent, "true");
			send_msg(&f, XY_MSG_TASK, &m);
		}
	}
	free(seen);
	shutdown_worker(&f);
}

/* ------------------------------------------------- library instances */

/* A library that speaks the fd-3 protocol: it says hello, then answers
 * each call with "pid:FOO:L:" and the payload reversed, where L says
 * whether lib.py is linked into the call's sandbox. Some payloads make it
 * misbehave. */
static const char echo_py[] =
	"import os, struct, sys, time\n"
	"def rd(n):\n"
	"    b = b''\n"
	"    while len(b) < n:\n"
	"        c = os.read(3, n - len(b))\n"
	"        if not c:\n"
	"            sys.exit(0)\n"
	"        b += c\n"
	"    return b\n"
	"def wr(b):\n"
	"    m = memoryview(struct.pack('<I', len(b)) + b)\n"
	"    while m:\n"
	"        m = m[os.write(3, m):]\n"
	"assert os.getcwd() == os.environ['XYLEM_SANDBOX']\n"
	"print('echo starting', flush=True)\n"
	"wr(b'XYLIB1')\n"
	"while True:\n"
	"    f = rd(struct.unpack('<I', rd(4))[0])\n"
	"    tid, n = struct.unpack_from('<QI', f)\n"
	"    sb = f[12:12 + n].decode()\n"
	"    p = f[12 + n:]\n"
	"    if p == b'die':\n"
	"        print('dying', flush=True)\n"
	"        os._exit(7)\n"
	"    if p == b'sleep':\n"
	"        time.sleep(30)\n"
	"    if p == b'nap':\n"
	"        time.sleep(2)\n"
	"    if p == b'eat':\n"
	"        x = b'x' * (200 << 20)\n"
	"        time.sleep(30)\n"
	"    if p == b'bad':\n"
	"        os.write(3, struct.pack('<I', 0xffffffff))\n"
	"        time.sleep(30)\n"
	"    if p == b'out':\n"
	"        open(os.path.join(sb, 'out.txt'), 'w').write('hi')\n"
	"    L = os.path.exists(os.path.join(sb, 'lib.py'))\n"
	"    r = b'%d:%s:%d:' % (os.getpid(), "
	"os.environ.get('FOO', '').encode(), L)\n"
	"    wr(struct.pack('<Q', tid) + r + p[::-1])\n";

/* Sends a LIBRARY: name, command, FOO=foo, and input lib.py if given. */
static void define_lib(struct fm *f, const char *name, const char *cmd,
		       const char *foo, const struct xy_task_input *in)
{
	struct xy_env_var env = {"FOO", (char *)foo};
	union xy_msg m;

	task_msg(&m, 0, cmd);
	m.task.library = (char *)name;
	m.task.n_env = foo ? 1 : 0;
	m.task.env = &env;
	m.task.n_inputs = in ? 1 : 0;
	m.task.inputs = (struct xy_task_input *)in;
	send_msg(f, XY_MSG_LIBRARY, &m);
}

static void call_msg(union xy_msg *m, uint64_t id, const char *lib,
		     const char *payload, size_t len,
		     const struct xy_task_input *in)
{
	task_msg(m, id, "");
	m->task.library = (char *)lib;
	m->task.payload = (char *)payload;
	m->task.payload_len = len;
	m->task.n_inputs = in ? 1 : 0;
	m->task.inputs = (struct xy_task_input *)in;
}

/* Makes a call and waits for its TASK_DONE. */
static struct got *call(struct fm *f, uint64_t id, const char *lib,
			const char *payload, const struct xy_task_input *in)
{
	union xy_msg m;
	struct got *g;

	call_msg(&m, id, lib, payload, strlen(payload), in);
	send_msg(f, XY_MSG_TASK, &m);
	g = wait_for(f, XY_MSG_TASK_DONE);
	XY_CHECK_EQ(g->m.task_done.task_id, id);
	return g;
}

/* True if the process has exited (a zombie has: an instance started by
 * a shell that did not exec it is reparented, and init may be slow or,
 * in a container, never reap it). */
static int gone(long pid)
{
	char path[64], *stat, *p;
	size_t len;
	int z;

	if (kill((pid_t)pid, 0) < 0)
		return 1;
	snprintf(path, sizeof path, "/proc/%ld/stat", pid);
	stat = xy_read_file(path, 4096, &len);
	if (!stat)
		return 1;
	p = strrchr(stat, ')');
	z = p && (p[2] == 'Z' || p[2] == 'X');
	free(stat);
	return z;
}

/* The pid at the head of a reply. */
static long reply_pid(const struct got *g)
{
	return strtol(g->m.task_done.output, NULL, 10);
}

/* Fetches echo_py into the worker's cache; in is the input naming it. */
static void stage_echo(struct fm *f, struct xy_task_input *in,
		       uint8_t id[XY_ID_LEN])
{
	union xy_msg m;
	uint64_t size;
	struct got *g;

	serve_text(f, echo_py, id, &size);
	fetch_msg(&m, id, size, xy_xfer_server_port(f->xfer));
	send_msg(f, XY_MSG_FETCH, &m);
	g = wait_for(f, XY_MSG_CACHE_UPDATE);
	XY_CHECK_EQ(g->m.cache_update.status, XY_OBJ_OK);
	got_free(g);
	memset(in, 0, sizeof *in);
	memcpy(in->id, id, XY_ID_LEN);
	in->name = "lib.py";
	in->level = XY_CACHE_WORKFLOW;
}

static void t_library_calls(void)
{
	struct xy_task_output out = {"out.txt", XY_CACHE_WORKER};
	struct xy_task_input in;
	uint8_t id[XY_ID_LEN];
	char sb[PATH_MAX], cmd[PATH_MAX + 64];
	union xy_msg m;
	struct got *g;
	struct fm f;
	long pid;

	fm_start(&f, SECRET, NULL, 1);
	hello(&f);
	stage_echo(&f, &in, id);
	define_lib(&f, "echo", "python3 lib.py", "bar", &in);

	/* Two calls, one instance: its pid, its env, the call's inputs. */
	g = call(&f, 1, "echo", "hello", &in);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_SUCCESS);
	XY_CHECK_EQ(g->m.task_done.exit_code, 0);
	XY_CHECK(strstr(g->m.task_done.output, ":bar:1:olleh"));
	XY_CHECK(g->m.task_done.end_us >= g->m.task_done.start_us);
	pid = reply_pid(g);
	XY_CHECK(pid > 0);
	got_free(g);
	g = call(&f, 2, "echo", "abc", &in);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_SUCCESS);
	XY_CHECK_EQ(reply_pid(g), pid);
	XY_CHECK(strstr(g->m.task_done.output, ":bar:1:cba"));
	got_free(g);

	/* A call's declared outputs are collected from its sandbox. */
	call_msg(&m, 3, "echo", "out", 3, &in);
	m.task.n_outputs = 1;
	m.task.outputs = &out;
	send_msg(&f, XY_MSG_TASK, &m);
	g = wait_for(&f, XY_MSG_TASK_DONE);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_SUCCESS);
	XY_CHECK_EQ(reply_pid(g), pid);
	XY_CHECK_EQ(g->m.task_done.n_outputs, 1);
	XY_CHECK_EQ(g->m.task_done.outputs[0].size, 2);
	got_free(g);

	/* Only the instance's sandbox is left, with lib.py linked in. */
	pathf(cmd, sizeof cmd, "cd %s/sandbox && test \"$(ls)\" = lib-1 && "
	      "test -f lib-1/lib.py", f.cache);
	XY_CHECK(eventually(cmd));

	/* The instance dies in a call: the call fails with its log. */
	g = call(&f, 4, "echo", "die", &in);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_APP_FAILED);
	XY_CHECK_EQ(g->m.task_done.exit_code, 7);
	XY_CHECK(!strcmp(g->m.task_done.message,
			 "library echo exited with status 7 during a call"));
	XY_CHECK(strstr(g->m.task_done.output, "echo starting\n"));
	XY_CHECK(strstr(g->m.task_done.output, "dying\n"));
	got_free(g);

	/* The next call starts a fresh instance. */
	g = call(&f, 5, "echo", "xy", &in);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_SUCCESS);
	XY_CHECK(reply_pid(g) != pid);
	XY_CHECK(strstr(g->m.task_done.output, ":yx"));
	pid = reply_pid(g);
	got_free(g);
	pathf(sb, sizeof sb, "%s/sandbox/lib-1", f.cache);
	XY_CHECK(access(sb, F_OK) < 0);

	/* A new template is for instances started from now on. */
	define_lib(&f, "echo", "python3 lib.py", "baz", &in);
	g = call(&f, 6, "echo", "q", &in);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_SUCCESS);
	XY_CHECK(reply_pid(g) != pid);
	XY_CHECK(strstr(g->m.task_done.output, ":baz:1:q"));
	got_free(g);
	shutdown_worker(&f);
	XY_CHECK(gone(pid));
}

/* Two calls at once get an instance each; a large payload comes back
 * (read in many pieces on both sides). */
static void t_library_parallel_large(void)
{
	const size_t big = 3u << 20;
	struct xy_task_input in;
	uint8_t id[XY_ID_LEN];
	union xy_msg m;
	struct got *g[2];
	char *p = malloc(big);
	const char *r;
	struct fm f;

	XY_CHECK(p);
	for (size_t k = 0; k < big; k++)
		p[k] = (char)('a' + k % 26);
	fm_start(&f, SECRET, NULL, 1);
	hello(&f);
	stage_echo(&f, &in, id);
	define_lib(&f, "echo", "python3 lib.py", NULL, &in);
	/* Busy for 2 s while 2 comes, whatever the machine's load. */
	call_msg(&m, 1, "echo", "nap", 3, &in);
	send_msg(&f, XY_MSG_TASK, &m);
	call_msg(&m, 2, "echo", p, big, &in);
	send_msg(&f, XY_MSG_TASK, &m);
	g[0] = wait_for(&f, XY_MSG_TASK_DONE);
	g[1] = wait_for(&f, XY_MSG_TASK_DONE);
	if (g[0]->m.task_done.task_id == 2) {
		struct got *x = g[0];

		g[0] = g[1];
		g[1] = x;
	}
	XY_CHECK_EQ(g[0]->m.task_done.result, XY_RESULT_SUCCESS);
	XY_CHECK_EQ(g[1]->m.task_done.result, XY_RESULT_SUCCESS);
	XY_CHECK(reply_pid(g[0]) != reply_pid(g[1]));
	r = strchr(strchr(strchr(g[1]->m.task_done.output, ':') + 1, ':') + 1,
		   ':') + 1;
	XY_CHECK_EQ(g[1]->m.task_done.output_len,
		    (size_t)(r - g[1]->m.task_done.output) + big);
	for (size_t k = 0; k < big; k++)
		XY_CHECK(r[k] == p[big - 1 - k]);
	got_free(g[0]);
	got_free(g[1]);
	free(p);
	shutdown_worker(&f);
}

static void t_library_failures(void)
{
	struct xy_task_input in;
	uint8_t id[XY_ID_LEN];
	struct got *g;
	struct fm f;

	fm_start(&f, SECRET, NULL, 1);
	hello(&f);
	g = call(&f, 1, "nope", "x", NULL);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_APP_FAILED);
	XY_CHECK(!strcmp(g->m.task_done.message,
			 "library nope is not defined on this worker"));
	got_free(g);

	/* An instance that exits without its hello. */
	define_lib(&f, "broken", "echo starting; exit 5", NULL, NULL);
	g = call(&f, 2, "broken", "x", NULL);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_APP_FAILED);
	XY_CHECK_EQ(g->m.task_done.exit_code, 5);
	XY_CHECK(!strcmp(g->m.task_done.message,
			 "library broken exited with status 5 before it was "
			 "ready"));
	XY_CHECK(!strcmp(g->m.task_done.output, "starting\n"));
	got_free(g);

	/* One whose first frame is not the hello. */
	define_lib(&f, "rude", "printf '\\003\\000\\000\\000abc' >&3; "
		   "sleep 30", NULL, NULL);
	g = call(&f, 3, "rude", "x", NULL);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_APP_FAILED);
	XY_CHECK(strstr(g->m.task_done.message, "before it was ready"));
	XY_CHECK(strstr(g->m.task_done.message, "XYLIB1"));
	got_free(g);

	/* A frame over the limit. */
	stage_echo(&f, &in, id);
	define_lib(&f, "echo", "python3 lib.py", NULL, &in);
	g = call(&f, 4, "echo", "bad", &in);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_APP_FAILED);
	XY_CHECK(strstr(g->m.task_done.message,
			"library echo was killed during a call"));
	XY_CHECK(strstr(g->m.task_done.message, "over the"));
	XY_CHECK(strstr(g->m.task_done.output, "echo starting"));
	got_free(g);
	shutdown_worker(&f);
}

static void t_library_cancel_limit_stop(void)
{
	struct xy_task_input in;
	uint8_t id[XY_ID_LEN];
	char sb[PATH_MAX];
	union xy_msg m;
	struct got *g;
	struct fm f;
	uint64_t t0;
	long pid;

	fm_start(&f, SECRET, NULL, 1);
	hello(&f);
	stage_echo(&f, &in, id);
	define_lib(&f, "echo", "python3 lib.py", NULL, &in);
	g = call(&f, 1, "echo", "warm", &in);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_SUCCESS);
	pid = reply_pid(g);
	got_free(g);

	/* A call stuck in its instance is cancelled: the instance goes. */
	call_msg(&m, 2, "echo", "sleep", 5, &in);
	send_msg(&f, XY_MSG_TASK, &m);
	pump(&f, 200);
	t0 = xy_mono_us();
	memset(&m, 0, sizeof m);
	m.cancel.task_id = 2;
	send_msg(&f, XY_MSG_CANCEL, &m);
	g = wait_for(&f, XY_MSG_TASK_DONE);
	XY_CHECK_EQ(g->m.task_done.task_id, 2);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_CANCELLED);
	XY_CHECK(xy_mono_us() - t0 < 2000000);
	got_free(g);
	pump(&f, 300);
	XY_CHECK(gone(pid));

	/* Past its time limit. */
	call_msg(&m, 3, "echo", "sleep", 5, &in);
	m.task.time_limit_ms = 300;
	send_msg(&f, XY_MSG_TASK, &m);
	g = wait_for(&f, XY_MSG_TASK_DONE);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_RESOURCES_EXHAUSTED);
	XY_CHECK(strstr(g->m.task_done.message, "time"));
	got_free(g);

	/* Past the call's memory limit (the instance's group, sampled). */
	call_msg(&m, 6, "echo", "eat", 3, &in);
	m.task.memory_mb = 100;
	send_msg(&f, XY_MSG_TASK, &m);
	g = wait_for(&f, XY_MSG_TASK_DONE);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_RESOURCES_EXHAUSTED);
	XY_CHECK(strstr(g->m.task_done.message, "100 MB limit"));
	got_free(g);

	/* SIGTERM with a call in flight: BYE names it; nothing is left. */
	g = call(&f, 4, "echo", "warm", &in);
	pid = reply_pid(g);
	got_free(g);
	call_msg(&m, 5, "echo", "sleep", 5, &in);
	send_msg(&f, XY_MSG_TASK, &m);
	pump(&f, 300);
	kill(f.worker, SIGTERM);
	g = wait_for(&f, XY_MSG_BYE);
	XY_CHECK_EQ(g->m.bye.n_tasks, 1);
	XY_CHECK_EQ(g->m.bye.task_ids[0], 5);
	got_free(g);
	XY_CHECK_EQ(wait_exit(&f), 0);
	XY_CHECK(gone(pid));
	pathf(sb, sizeof sb, "%s/sandbox", f.cache);
	XY_CHECK(dir_empty(sb));
}

/* Many calls in turn: one instance serves them all. A call cancelled
 * while its instance starts leaves that instance for the next call. */
static void t_library_many_calls(void)
{
	const int n = 1000;
	struct xy_task_input in;
	uint8_t id[XY_ID_LEN];
	char cmd[PATH_MAX + 64];
	union xy_msg m;
	struct got *g;
	struct fm f;
	long pid = 0;
	uint64_t t0;

	fm_start(&f, SECRET, NULL, 1);
	hello(&f);
	stage_echo(&f, &in, id);
	define_lib(&f, "echo", "sleep 0.2; python3 lib.py", NULL, &in);
	call_msg(&m, 1, "echo", "x", 1, &in);
	send_msg(&f, XY_MSG_TASK, &m);
	pump(&f, 50);
	memset(&m, 0, sizeof m);
	m.cancel.task_id = 1;
	send_msg(&f, XY_MSG_CANCEL, &m);
	g = wait_for(&f, XY_MSG_TASK_DONE);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_CANCELLED);
	got_free(g);
	pump(&f, 1500); /* the instance is ready, and idle */
	t0 = xy_mono_us();
	for (int k = 2; k <= n; k++) {
		g = call(&f, (uint64_t)k, "echo", "ab", &in);
		XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_SUCCESS);
		XY_CHECK(strstr(g->m.task_done.output, ":ba"));
		if (!pid)
			pid = reply_pid(g);
		XY_CHECK_EQ(reply_pid(g), pid);
		got_free(g);
	}
	if (getenv("XY_TEST_VERBOSE"))
		fprintf(stderr, "%.1f us per call\n",
			(double)(xy_mono_us() - t0) / (n - 1));
	pathf(cmd, sizeof cmd, "test \"$(ls %s/sandbox)\" = lib-1", f.cache);
	XY_CHECK(eventually(cmd));
	shutdown_worker(&f);
}

/* --------------------------------------------- archives and URLs */

/* Serves the file at src (moved) as an object of the fake manager. */
static void serve_file(struct fm *f, const char *src, uint8_t id[XY_ID_LEN],
		       uint64_t *size)
{
	char path[PATH_MAX], hex[2 * XY_ID_LEN + 1], err[256];
	uint8_t kind;

	XY_CHECK(xy_object_hash(src, id, &kind, size, err, sizeof err) == 0);
	xy_hex(id, XY_ID_LEN, hex);
	pathf(path, sizeof path, "%s/%s", f->dir, hex);
	XY_CHECK(rename(src, path) == 0);
}

/* Runs `cmd` with archive id unpacked at d; fetches it first if asked.
 * Returns the TASK_DONE. */
static struct got *run_unpacked(struct fm *f, uint64_t tid,
				const uint8_t id[XY_ID_LEN], uint64_t size,
				int fetch, const char *cmd)
{
	struct xy_task_input in;
	union xy_msg m;
	struct got *g;

	if (fetch) {
		fetch_msg(&m, id, size, xy_xfer_server_port(f->xfer));
		send_msg(f, XY_MSG_FETCH, &m);
	}
	memset(&in, 0, sizeof in);
	memcpy(in.id, id, XY_ID_LEN);
	in.name = "d";
	in.kind = XY_INPUT_UNPACK;
	in.level = XY_CACHE_WORKFLOW;
	task_msg(&m, tid, cmd);
	m.task.n_inputs = 1;
	m.task.inputs = &in;
	send_msg(f, XY_MSG_TASK, &m);
	if (fetch) {
		g = wait_for(f, XY_MSG_CACHE_UPDATE);
		XY_CHECK_EQ(g->m.cache_update.status, XY_OBJ_OK);
		got_free(g);
	}
	g = wait_for(f, XY_MSG_TASK_DONE);
	XY_CHECK_EQ(g->m.task_done.task_id, tid);
	return g;
}

/* Lines in a file: how many times the fake tar ran. */
static int lines_in(const char *path)
{
	size_t len = 0;
	char *s = xy_read_file(path, 1 << 16, &len);
	int n = 0;

	for (size_t i = 0; s && i < len; i++)
		n += s[i] == '\n';
	free(s);
	return n;
}

/* A tar killed by a signal (as by the OOM killer) is this worker's fault:
 * the task fails with WORKER_FAILED, for the manager to run it again, and
 * the failure is forgotten, so the next task expands the archive. A tar
 * that exits with an error is the archive's: INPUT_MISSING, remembered. */
static void t_unpack_fault_not_remembered(void)
{
	char bin[PATH_MAX], tar[PATH_MAX], log[PATH_MAX], src[PATH_MAX];
	char arch[PATH_MAX], cmd[4 * PATH_MAX], path[8192];
	uint8_t id[XY_ID_LEN], bad[XY_ID_LEN];
	uint64_t size, bad_size;
	struct got *g;
	struct fm f;

	/* The first run of tar kills itself; the others log and run the
	 * real one. */
	pathf(bin, sizeof bin, "%s/bin", xy_test_tmpdir());
	pathf(tar, sizeof tar, "%s/tar", bin);
	pathf(log, sizeof log, "%s/tar.log", xy_test_tmpdir());
	pathf(cmd, sizeof cmd, "mkdir -p %s && printf '#!/bin/sh\\n"
	      "echo run >> %s\\n"
	      "[ -e %s.once ] || { : > %s.once; kill -9 $$; }\\n"
	      "PATH=\"$XY_TEST_REAL_PATH\" exec tar \"$@\"\\n' > %s && "
	      "chmod +x %s", bin, log, log, log, tar, tar);
	XY_CHECK(system(cmd) == 0);
	pathf(src, sizeof src, "%s/src", xy_test_tmpdir());
	pathf(arch, sizeof arch, "%s/a.tgz", xy_test_tmpdir());
	pathf(cmd, sizeof cmd, "mkdir -p %s && echo alpha > %s/a.txt && "
	      "tar -czf %s -C %s .", src, src, arch, src);
	XY_CHECK(system(cmd) == 0);
	setenv("XY_TEST_REAL_PATH", getenv("PATH"), 1);
	pathf(path, sizeof path, "%s:%s", bin, getenv("PATH"));
	setenv("PATH", path, 1); /* the worker inherits it */

	fm_start(&f, SECRET, NULL, 1);
	hello(&f);
	serve_file(&f, arch, id, &size);
	g = run_unpacked(&f, 1, id, size, 1, "cat d/a.txt");
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_WORKER_FAILED);
	XY_CHECK(strstr(g->m.task_done.message, "killed by signal 9"));
	got_free(g);
	g = run_unpacked(&f, 2, id, size, 0, "cat d/a.txt");
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_SUCCESS);
	XY_CHECK(!strcmp(g->m.task_done.output, "alpha\n"));
	got_free(g);
	XY_CHECK_EQ(lines_in(log), 2);

	/* Not an archive: tar exits with status 2, once for both tasks. */
	serve_text(&f, "not an archive at all\n", bad, &bad_size);
	for (uint64_t tid = 3; tid <= 4; tid++) {
		g = run_unpacked(&f, tid, bad, bad_size, tid == 3, "ls d");
		XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_INPUT_MISSING);
		XY_CHECK(strstr(g->m.task_done.message,
				"tar exited with status 2"));
		got_free(g);
	}
	XY_CHECK_EQ(lines_in(log), 3);
	shutdown_worker(&f);
}

/* A fake origin on the fake manager's loop: it accepts HTTP connections
 * and never answers, until the test closes them. */
struct origin {
	uv_tcp_t server;
	uv_tcp_t *clients[8];
	int n, port;
};

static void on_origin_conn(uv_stream_t *s, int status)
{
	struct origin *o = s->data;
	uv_tcp_t *c = calloc(1, sizeof *c);

	XY_CHECK(status == 0 && c && o->n < 8);
	uv_tcp_init(s->loop, c);
	XY_CHECK(uv_accept(s, (uv_stream_t *)c) == 0);
	o->clients[o->n++] = c;
}

static void origin_start(struct fm *f, struct origin *o)
{
	struct sockaddr_in sa;
	struct sockaddr_storage ss;
	int len = sizeof ss;

	memset(o, 0, sizeof *o);
	uv_tcp_init(&f->loop, &o->server);
	o->server.data = o;
	uv_ip4_addr("127.0.0.1", 0, &sa);
	XY_CHECK(uv_tcp_bind(&o->server, (struct sockaddr *)&sa, 0) == 0);
	XY_CHECK(uv_listen((uv_stream_t *)&o->server, 8, on_origin_conn) == 0);
	uv_tcp_getsockname(&o->server, (struct sockaddr *)&ss, &len);
	o->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void free_handle(uv_handle_t *h)
{
	free(h);
}

/* Hangs up on the clients from..n-1: their downloads fail. */
static void origin_hang_up(struct origin *o, int from)
{
	for (int i = from; i < o->n; i++)
		uv_close((uv_handle_t *)o->clients[i], free_handle);
}

static void fetch_url(struct fm *f, uint64_t req, const char *url)
{
	union xy_msg m;

	memset(&m, 0, sizeof m);
	m.fetch_url.req_id = req;
	m.fetch_url.level = XY_CACHE_WORKFLOW;
	m.fetch_url.url = (char *)url;
	send_msg(f, XY_MSG_FETCH_URL, &m);
}

/* At most two downloads at once, the rest queued on the worker: its
 * thread pool (4 threads) must keep room for outputs, expansions and
 * sandbox removals. And a file:// URL is refused by libcurl itself. */
static void t_url_downloads_capped(void)
{
	char url[128];
	struct origin o;
	struct got *g;
	struct fm f;

	fm_start(&f, SECRET, NULL, 1);
	hello(&f);
	fetch_url(&f, 1, "file:///etc/passwd");
	g = wait_for(&f, XY_MSG_URL_DONE);
	XY_CHECK(g->m.url_done.status != XY_OBJ_OK);
	XY_CHECK(strstr(g->m.url_done.text, "file"));
	got_free(g);

	origin_start(&f, &o);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/x", o.port);
	for (uint64_t r = 2; r <= 5; r++)
		fetch_url(&f, r, url);
	pump(&f, 1000);
	XY_CHECK_EQ(o.n, 2);
	/* A task still runs meanwhile (its sandbox goes on the pool). */
	g = run(&f, 9, "echo ok");
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_SUCCESS);
	got_free(g);
	origin_hang_up(&o, 0);
	for (int i = 0; i < 2; i++) {
		g = wait_for(&f, XY_MSG_URL_DONE);
		XY_CHECK(g->m.url_done.status != XY_OBJ_OK);
		got_free(g);
	}
	pump(&f, 500);
	XY_CHECK_EQ(o.n, 4);
	origin_hang_up(&o, 2);
	for (int i = 0; i < 2; i++) {
		g = wait_for(&f, XY_MSG_URL_DONE);
		got_free(g);
	}
	uv_close((uv_handle_t *)&o.server, NULL);
	shutdown_worker(&f);
}

static void t_usage(void)
{
	char *help[] = {"worker", "--help", NULL};
	char *bad[] = {"worker", "127.0.0.1:1", "--cores", "zero", NULL};
	char *unknown[] = {"worker", "127.0.0.1:1", "--frobnicate", NULL};
	char *none[] = {"worker", NULL};
	char *nosecret[] = {"worker", "127.0.0.1:1", NULL};

	XY_CHECK(freopen("/dev/null", "w", stdout));
	XY_CHECK(freopen("/dev/null", "w", stderr));
	XY_CHECK_EQ(xy_worker_main(2, help), 0);
	XY_CHECK_EQ(xy_worker_main(4, bad), 2);
	XY_CHECK_EQ(xy_worker_main(3, unknown), 2);
	XY_CHECK_EQ(xy_worker_main(1, none), 2);
	unsetenv("XYLEM_SECRET");
	XY_CHECK_EQ(xy_worker_main(2, nosecret), 2);
}

int main(int argc, char **argv)
{
	/* The worker half of start_worker; exit, not _exit: the sanitizers
	 * report at exit. */
	if (argc > 2 && !strcmp(argv[1], "--as-worker"))
		return xy_worker_main(argc - 2, argv + 2);
	static const struct xy_test tests[] = {
		XY_TEST(t_usage),
		XY_TEST(t_noop_and_failure),
		XY_TEST(t_output_ring),
		XY_TEST(t_fetch_inputs_outputs),
		XY_TEST(t_dirs_forever_unlink),
		XY_TEST(t_gpus_and_default_cache),
		XY_TEST(t_inputs_missing),
		XY_TEST(t_limits),
		XY_TEST(t_cancel),
		XY_TEST(t_sigterm_bye),
		XY_TEST(t_stop_during_fetch),
		XY_TEST(t_bad_secret),
		XY_TEST_T(t_many_tasks, 60),
		XY_TEST(t_library_calls),
		XY_TEST(t_library_parallel_large),
		XY_TEST(t_library_failures),
		XY_TEST(t_library_cancel_limit_stop),
		XY_TEST_T(t_library_many_calls, 60),
		XY_TEST(t_unpack_fault_not_remembered),
		XY_TEST(t_url_downloads_capped),
		{0},
	};
	signal(SIGPIPE, SIG_IGN);
	return xy_test_main(argc, argv, tests);
}
