/*
 * realmgr.c: a real manager and its workers for unit tests (realmgr.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "realmgr.h"
#include "util.h"
#include "xylem.h"

struct xy_manager *rm_manager(const char *secret)
{
	char err[256];
	struct xy_manager_options o = {.host = "127.0.0.1",
				       .secret = secret,
				       .secret_len = strlen(secret)};
	struct xy_manager *m = xy_manager_create(&o, err, sizeof err);
	if (!m)
		fprintf(stderr, "create: %s\n", err);
	XY_CHECK(m);
	return m;
}

pid_t rm_start_worker(struct xy_manager *m, const char *secret,
		      const char *name)
{
	char target[64];
	snprintf(target, sizeof target, "127.0.0.1:%d", xy_manager_port(m));
	char *argv[] = {"test", "--as-worker", "worker", target, "--cores",
			"1", "--name", (char *)name, NULL};
	fflush(NULL);
	pid_t pid = fork();
	XY_CHECK(pid >= 0);
	if (pid == 0) {
		setenv("XYLEM_SECRET", secret, 1);
		setenv("XYLEM_LOG", "warn", 1);
		if (xy_manager_tls_ca(m))
			setenv("XYLEM_TLS_CA", xy_manager_tls_ca(m), 1);
		/* A fresh image: the manager's threads do not survive a
		 * fork, and a lock one of them held would stay held. */
		execv("/proc/self/exe", argv);
		_exit(127);
	}
	return pid;
}

void rm_await_workers(struct xy_manager *m, int n)
{
	struct xy_stats st;
	double end = xy_mono() + 20;
	do {
		xy_manager_run(m, 0.05);
		xy_manager_stats(m, &st);
	} while (st.workers_connected != n && xy_mono() < end);
	XY_CHECK_EQ(st.workers_connected, n);
}

char *rm_slurp(const char *path)
{
	static char buf[4096];
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = 0;
	fclose(f);
	return buf;
}
