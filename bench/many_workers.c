/*
 * many_workers.c: one manager with thousands of workers and a deep queue
 * (issue 11). The workers are simulated: a few processes, each holding
 * many control connections on one libuv loop, speaking the real protocol
 * (handshake, HELLO, KEEPALIVE) and answering every TASK with a TASK_DONE
 * at once, so that what is measured is the manager. The manager runs in
 * this process, through the public C API, and the queue is kept at its
 * depth by submitting one `true` task per completion.
 *
 * For the baseline (10 workers, 1,000 queued), WORKERS with 1,000 queued,
 * 10 workers with TASKS queued and then both (WORKERS, TASKS), it prints:
 * the heap each connected worker costs, the heap each queued task costs,
 * the time one scheduling decision takes (choosing where), the time its
 * TASK message takes to build and send, and the dispatch rate; and each
 * case's ratios to the baseline.
 *
 *   bench_many_workers [WORKERS [TASKS [COMPLETIONS]]]
 *                          (10000, 1000000, 100000)
 *
 * Target (DESIGN.md): decision time and memory flat within 10%.
 */
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "bench.h"
#include "tls.h"
#include "conn.h"
#include "log.h"
#include "proto.h"
#include "xylem.h"

#define SIMULATORS 4
#define CONNECTING_MAX 128 /* connections a simulator opens at once */

/* ----------------------------------------------------- the simulators */

struct sim;

/* One simulated worker: its connection, made again until it is in. */
struct simw {
	struct sim *s;
	struct xy_conn *c;
	int idx, ready;
};

struct sim {
	uv_loop_t loop;
	uv_timer_t keepalive;
	int port, id;
	int n, started, closed;
	struct simw *w;
	SSL_CTX *tls; /* verifies the manager, as workers do; NULL: plain */
};

static void sim_connect(struct simw *sw);

static void sim_on_ready(struct xy_conn *c, uint8_t role)
{
	struct simw *sw = xy_conn_data(c);
	struct sim *s = sw->s;
	char name[64];
	union xy_msg m;

	(void)role;
	memset(&m, 0, sizeof m);
	snprintf(name, sizeof name, "sim-%d-%d", s->id, sw->idx);
	m.hello.name = name;
	m.hello.hostname = "sim";
	m.hello.cores = 1;
	m.hello.memory_mb = 1024;
	m.hello.disk_mb = 1024;
	m.hello.xfer_host = "";
	m.hello.xfer_port = 1;
	xy_conn_send(c, XY_MSG_HELLO, &m);
	sw->ready = 1;
	if (s->started < s->n)
		sim_connect(&s->w[s->started++]);
}

static void sim_on_msg(struct xy_conn *c, unsigned type, union xy_msg *msg)
{
	union xy_msg m;

	if (type == XY_MSG_SHUTDOWN) {
		xy_conn_close(c, "shut down");
		return;
	}
	if (type != XY_MSG_TASK)
		return;
	memset(&m, 0, sizeof m);
	m.task_done.task_id = msg->task.task_id;
	m.task_done.output = "";
	m.task_done.message = "";
	xy_conn_send(c, XY_MSG_TASK_DONE, &m);
}

/* A connection that ended before its handshake did (the manager too busy
 * to answer in time) is made again, as a real worker does. */
static void sim_on_close(struct xy_conn *c, const char *reason)
{
	struct simw *sw = xy_conn_data(c);
	struct sim *s = sw->s;

	(void)reason;
	sw->c = NULL;
	if (!sw->ready) {
		sim_connect(sw);
		return;
	}
	if (++s->closed == s->n) {
		uv_timer_stop(&s->keepalive);
		uv_close((uv_handle_t *)&s->keepalive, NULL);
	}
}

static void sim_connect(struct simw *sw)
{
	struct xy_conn_opts o = {.secret = SECRET,
				 .secret_len = strlen(SECRET),
				 .role = XY_ROLE_WORKER,
				 .on_ready = sim_on_ready,
				 .on_msg = sim_on_msg,
				 .on_close = sim_on_close,
				 .data = sw,
				 .quiet = 1,
				 .tls = sw->s->tls};

	sw->c = xy_conn_connect(&sw->s->loop, "127.0.0.1", sw->s->port, &o);
	if (!sw->c) {
		fprintf(stderr, "simulator %d: cannot connect\n", sw->s->id);
		exit(1);
	}
}

static void sim_keepalive(uv_timer_t *h)
{
	struct sim *s = h->data;
	union xy_msg m;

	memset(&m, 0, sizeof m);
	for (int i = 0; i < s->started; i++)
		if (s->w[i].c && s->w[i].ready && !xy_conn_closing(s->w[i].c))
			xy_conn_send(s->w[i].c, XY_MSG_KEEPALIVE, &m);
}

/* A simulator process: n workers connected to port, until the manager
 * shuts them down. */
static void simulate(int id, int port, int n, const char *ca)
{
	struct sim s = {.port = port, .id = id, .n = n};
	char err[256];

	s.w = calloc((size_t)n, sizeof *s.w);
	if (!s.w || uv_loop_init(&s.loop) < 0)
		_exit(1);
	if (ca && !(s.tls = xy_tls_client_ctx(ca, err, sizeof err))) {
		fprintf(stderr, "simulator %d: %s\n", id, err);
		_exit(1);
	}
	for (int i = 0; i < n; i++) {
		s.w[i].s = &s;
		s.w[i].idx = i;
	}
	xy_log_set_level(XY_LOG_ERROR);
	uv_timer_init(&s.loop, &s.keepalive);
	s.keepalive.data = &s;
	uv_timer_start(&s.keepalive, sim_keepalive, 10000, 10000);
	while (s.started < CONNECTING_MAX && s.started < n)
		sim_connect(&s.w[s.started++]);
	uv_run(&s.loop, UV_RUN_DEFAULT);
	_exit(0);
}

/* ------------------------------------------------------------ manager */

static size_t heap_bytes(void)
{
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks + mi.hblkhd;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void submit_noop(struct xy_manager *m)
{
	struct xy_task *t = xy_task_create("true");
	if (!t || !xy_manager_submit(m, t, NULL, 0)) {
		fprintf(stderr, "submit failed\n");
		exit(1);
	}
}

static struct xy_task *wait_one(struct xy_manager *m)
{
	struct xy_task *t = xy_manager_wait(m, 60);
	if (!t) {
		fprintf(stderr, "no task completed in 60 s\n");
		exit(1);
	}
	if (xy_task_result(t) != XY_RESULT_SUCCESS) {
		fprintf(stderr, "task failed: %s\n", xy_task_error(t));
		exit(1);
	}
	return t;
}

struct figures {
	double task_bytes, worker_bytes, decision_us, send_us, dispatch_rate;
};

/* Runs `completions` tasks with `workers` simulated workers, off a queue
 * kept at `depth`. */
static struct figures measure(int workers, long depth, long completions)
{
	struct xy_manager *m = bench_manager();
	struct xy_stats st = {0}, before, after;
	struct figures f;
	pid_t sims[SIMULATORS];
	int n_sims = workers < SIMULATORS ? 1 : SIMULATORS;

	size_t h0 = heap_bytes();
	for (long i = 0; i < depth; i++)
		submit_noop(m);
	size_t h1 = heap_bytes();
	f.task_bytes = (double)(h1 - h0) / (double)depth;
	for (int i = 0; i < n_sims; i++) {
		int share = workers / n_sims + (i < workers % n_sims);
		if ((sims[i] = fork()) == 0)
			simulate(i, xy_manager_port(m), share,
				 xy_manager_tls_ca(m));
	}
	/* The workers connect while the first tasks run; memory is read
	 * once all are in, with the queue refilled to its depth. */
	long done = 0;
	do {
		xy_task_delete(wait_one(m));
		submit_noop(m);
		++done;
		xy_manager_stats(m, &st);
	} while (st.workers_connected < workers);
	size_t h2 = heap_bytes();
	f.worker_bytes = (double)(h2 - h1) / workers;
	xy_manager_stats(m, &before);
	double t0 = now_s();
	for (long i = 0; i < completions; i++) {
		xy_task_delete(wait_one(m));
		submit_noop(m);
	}
	double t1 = now_s();
	xy_manager_stats(m, &after);
	long n = after.decisions - before.decisions;
	f.decision_us = n ? (after.decision_seconds -
			     before.decision_seconds) * 1e6 / n : 0;
	f.send_us = n ? (after.send_seconds - before.send_seconds) * 1e6 / n
		      : 0;
	f.dispatch_rate = completions / (t1 - t0);
	xy_manager_shutdown_workers(m);
	for (int i = 0; i < n_sims; i++) {
		int status;
		/* Running the manager lets the SHUTDOWNs out. */
		while (waitpid(sims[i], &status, WNOHANG) == 0)
			xy_manager_wait(m, 0.05);
	}
	xy_manager_destroy(m);
	printf("%6d workers, %8ld queued: %6.0f B a worker, %4.0f B a task,"
	       " %5.2f us a decision + %5.2f us its send, %7.0f tasks/s"
	       " dispatched (%ld done while they connected)\n", workers,
	       depth, f.worker_bytes, f.task_bytes, f.decision_us, f.send_us,
	       f.dispatch_rate, done);
	fflush(stdout);
	return f;
}

static void ratios(const char *what, const struct figures *f,
		   const struct figures *base)
{
	printf("ratios to the baseline, %-7s memory a worker %.2f, a task"
	       " %.2f; decision time %.2f; send time %.2f; dispatch rate"
	       " %.2f\n", what, f->worker_bytes / base->worker_bytes,
	       f->task_bytes / base->task_bytes,
	       f->decision_us / base->decision_us, f->send_us / base->send_us,
	       f->dispatch_rate / base->dispatch_rate);
}

int main(int argc, char **argv)
{
	int workers = argc > 1 ? atoi(argv[1]) : 10000;
	long tasks = argc > 2 ? atol(argv[2]) : 1000000;
	long completions = argc > 3 ? atol(argv[3]) : 100000;
	struct rlimit rl;

	if (workers < 10 || tasks < 1000 || completions < 1) {
		fprintf(stderr, "usage: %s [WORKERS (>= 10) [TASKS (>= 1000)"
			" [COMPLETIONS]]]\n", argv[0]);
		return 2;
	}
	/* A connection is a descriptor, on both sides. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    rl.rlim_cur < (rlim_t)workers + 1024) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGPIPE, SIG_IGN);
	xy_log_set_level(XY_LOG_ERROR);
	/* The corners: each dimension alone, then both. */
	struct figures base = measure(10, 1000, completions);
	struct figures wide = measure(workers, 1000, completions);
	struct figures deep = measure(10, tasks, completions);
	struct figures big = measure(workers, tasks, completions);
	ratios("workers", &wide, &base);
	ratios("queue", &deep, &base);
	ratios("both", &big, &base);
	return 0;
}
