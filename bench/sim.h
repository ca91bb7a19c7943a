/*
 * sim.h: simulated workers for the benchmarks and the storm test (sim.c).
 * A simulator is a process that holds many control connections on one
 * libuv loop and speaks the real protocol (TLS, the handshake, HELLO,
 * KEEPALIVE), answering every TASK with a TASK_DONE at once, so that what
 * is measured is the manager.
 */
#ifndef XY_BENCH_SIM_H
#define XY_BENCH_SIM_H

struct bench_sim_opts {
	int id;            /* names the workers sim-ID-I */
	const char *host;
	int port;
	int n;             /* workers */
	int connecting;    /* connections opened at once; n: all at once */
	const char *secret;
	const char *ca;    /* the manager's CA; NULL: plain TCP */
	int report_fd;     /* -1, or where "ready SECONDS RETRIES\n" goes once
			    * every worker sent its HELLO */
};

/* Runs the simulator until the manager shuts every worker down, then
 * _exit(0)s; _exit(1) if it cannot start. Meant for a forked child. */
void bench_sim_run(const struct bench_sim_opts *o) __attribute__((noreturn));

#endif
