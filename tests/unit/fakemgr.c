/*
 * fakemgr.c: the fake manager of the worker's unit tests (fakemgr.h).
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
#include "fakemgr.h"
#include "harness.h"
#include "object.h"
#include "util.h"
#include "worker.h"
#include "xylem.h"

void fm_pathf(char *out, size_t len, const char *fmt, ...)
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

void fm_start_worker(struct fm *f, const char *secret, const char *extra)
{
	char target[64], cores[] = "2";
	char *argv[18];
	int argc = 0;

	snprintf(target, sizeof target, "127.0.0.1:%d", f->port);
	argv[argc++] = "xylem";
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
	argv[argc++] = "--no-tls"; /* the fake manager speaks plain TCP */
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

void fm_start(struct fm *f, const char *secret, const char *extra,
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
	fm_start_worker(f, secret, extra);
}

static void on_timer(uv_timer_t *t)
{
}

/* Runs the manager's loop for ms milliseconds, so what it queued goes
 * out. */
void fm_pump(struct fm *f, int ms)
{
	uint64_t end = xy_mono_us() + (uint64_t)ms * 1000;

	uv_timer_start(&f->timer, on_timer, 10, 10);
	while (xy_mono_us() < end)
		uv_run(&f->loop, UV_RUN_ONCE);
	uv_timer_stop(&f->timer);
}

/* Runs the loop until a message of this type arrives; returns it (the
 * caller frees it with fm_got_free). */
struct got *fm_wait_for(struct fm *f, unsigned type)
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

void fm_got_free(struct got *g)
{
	xy_msg_free(g->type, &g->m);
	free(g);
}

void fm_send(struct fm *f, unsigned type, union xy_msg *m)
{
	XY_CHECK(f->conn);
	XY_CHECK(xy_conn_send(f->conn, type, m) == 0);
}

/* Waits for HELLO and checks what it says. */
void fm_hello(struct fm *f)
{
	struct got *g = fm_wait_for(f, XY_MSG_HELLO);

	XY_CHECK(!strcmp(g->m.hello.name, "w1"));
	XY_CHECK_EQ(g->m.hello.cores, 2);
	XY_CHECK(g->m.hello.memory_mb > 0);
	XY_CHECK(g->m.hello.xfer_port > 0);
	f->worker_xfer_port = g->m.hello.xfer_port;
	fm_got_free(g);
}

/* Waits for the worker to exit, serving the connection meanwhile. */
int fm_wait_exit(struct fm *f)
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

void fm_shutdown(struct fm *f)
{
	fm_send(f, XY_MSG_SHUTDOWN, NULL);
	XY_CHECK_EQ(fm_wait_exit(f), 0);
}

void fm_task_msg(union xy_msg *m, uint64_t id, const char *cmd)
{
	memset(m, 0, sizeof *m);
	m->task.task_id = id;
	m->task.command = (char *)cmd;
	m->task.cores = 1;
}

/* Sends a task without files and waits for its TASK_DONE. */
struct got *fm_run(struct fm *f, uint64_t id, const char *cmd)
{
	union xy_msg m;
	struct got *g;

	fm_task_msg(&m, id, cmd);
	fm_send(f, XY_MSG_TASK, &m);
	g = fm_wait_for(f, XY_MSG_TASK_DONE);
	XY_CHECK_EQ(g->m.task_done.task_id, id);
	return g;
}

/* Puts text in the manager's directory under its id. */
void fm_serve_text(struct fm *f, const char *text, uint8_t id[XY_ID_LEN],
		   uint64_t *size)
{
	char tmp[PATH_MAX], path[PATH_MAX], hex[2 * XY_ID_LEN + 1], err[256];
	uint8_t kind;
	FILE *fp;

	fm_pathf(tmp, sizeof tmp, "%s/new", f->dir);
	fp = fopen(tmp, "w");
	XY_CHECK(fp);
	fputs(text, fp);
	fclose(fp);
	XY_CHECK(xy_object_hash(tmp, id, &kind, size, err, sizeof err) == 0);
	xy_hex(id, XY_ID_LEN, hex);
	fm_pathf(path, sizeof path, "%s/%s", f->dir, hex);
	XY_CHECK(rename(tmp, path) == 0);
}

void fm_fetch_msg(union xy_msg *m, const uint8_t id[XY_ID_LEN],
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

/* Sandboxes are removed on the worker's thread pool, after the reply:
 * a check of what is left polls for up to 10 s. */
int fm_eventually(const char *cmd)
{
	for (int i = 0; i < 100; i++) {
		if (system(cmd) == 0)
			return 1;
		usleep(100 * 1000);
	}
	return 0;
}

int fm_dir_empty(const char *path)
{
	char cmd[PATH_MAX + 64];

	snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s')\"", path);
	return system(cmd) == 0;
}

int fm_worker_main(int argc, char **argv)
{
	/* exit, not _exit, in the caller: the sanitizers report at exit. */
	if (argc > 2 && !strcmp(argv[1], "--as-worker"))
		return xy_worker_main(argc - 2, argv + 2);
	return -1;
}
