/*
 * sim.c: simulated workers (sim.h). A connection that ends before its
 * handshake did (the manager too busy to answer in time) is made again at
 * once, and counted as a retry.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "conn.h"
#include "log.h"
#include "proto.h"
#include "sim.h"
#include "tls.h"

struct sim;

/* One simulated worker: its connection, made again until it is in. */
struct simw {
	struct sim *s;
	struct xy_conn *c;
	int idx, ready;
};

struct sim {
	const struct bench_sim_opts *o;
	uv_loop_t loop;
	uv_timer_t keepalive;
	int started, ready, closed;
	long retries;
	double t0;
	struct simw *w;
	SSL_CTX *tls; /* verifies the manager, as workers do; NULL: plain */
};

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sim_connect(struct simw *sw);

static void report(struct sim *s)
{
	char line[96];
	int n;

	if (s->o->report_fd < 0)
		return;
	n = snprintf(line, sizeof line, "ready %.3f %ld\n", mono() - s->t0,
		     s->retries);
	(void)!write(s->o->report_fd, line, (size_t)n);
}

static void sim_on_ready(struct xy_conn *c, uint8_t role)
{
	struct simw *sw = xy_conn_data(c);
	struct sim *s = sw->s;
	char name[64];
	union xy_msg m;

	(void)role;
	memset(&m, 0, sizeof m);
	snprintf(name, sizeof name, "sim-%d-%d", s->o->id, sw->idx);
	m.hello.name = name;
	m.hello.hostname = "sim";
	m.hello.cores = 1;
	m.hello.memory_mb = 1024;
	m.hello.disk_mb = 1024;
	m.hello.xfer_host = "";
	m.hello.xfer_port = 1;
	xy_conn_send(c, XY_MSG_HELLO, &m);
	sw->ready = 1;
	if (++s->ready == s->o->n)
		report(s);
	if (s->started < s->o->n)
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

static void sim_on_close(struct xy_conn *c, const char *reason)
{
	struct simw *sw = xy_conn_data(c);
	struct sim *s = sw->s;

	(void)reason;
	sw->c = NULL;
	if (!sw->ready) {
		s->retries++;
		sim_connect(sw);
		return;
	}
	if (++s->closed == s->o->n) {
		uv_timer_stop(&s->keepalive);
		uv_close((uv_handle_t *)&s->keepalive, NULL);
	}
}

static void sim_connect(struct simw *sw)
{
	struct sim *s = sw->s;
	struct xy_conn_opts o = {.secret = s->o->secret,
				 .secret_len = strlen(s->o->secret),
				 .role = XY_ROLE_WORKER,
				 .on_ready = sim_on_ready,
				 .on_msg = sim_on_msg,
				 .on_close = sim_on_close,
				 .data = sw,
				 .quiet = 1,
				 .tls = s->tls};

	sw->c = xy_conn_connect(&s->loop, s->o->host, s->o->port, &o);
	if (!sw->c) {
		fprintf(stderr, "simulator %d: cannot connect\n", s->o->id);
		_exit(1);
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

void bench_sim_run(const struct bench_sim_opts *o)
{
	struct sim s = {.o = o};
	char err[256];
	int n = o->n;

	s.w = calloc((size_t)n, sizeof *s.w);
	if (!s.w || uv_loop_init(&s.loop) < 0)
		_exit(1);
	if (o->ca && !(s.tls = xy_tls_client_ctx(o->ca, err, sizeof err))) {
		fprintf(stderr, "simulator %d: %s\n", o->id, err);
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
	s.t0 = mono();
	while (s.started < o->connecting && s.started < n)
		sim_connect(&s.w[s.started++]);
	uv_run(&s.loop, UV_RUN_DEFAULT);
	_exit(0);
}
