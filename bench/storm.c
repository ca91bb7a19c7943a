/*
 * storm.c: a connection storm (issue 19). WORKERS simulated workers
 * (sim.h) connect to a running manager all at once, from PROCS processes,
 * each opening every one of its connections in the same loop turn. It
 * prints when every worker is in (its HELLO sent) and how many
 * connections had to be made again (ended before their handshake did),
 * then holds them until its standard input closes, and exits 0; 1 if not
 * every worker was in within the timeout.
 *
 *   bench_storm HOST:PORT WORKERS SECRET_FILE [CA_FILE|-] [PROCS] [TIMEOUT]
 *                                                          (4, 60)
 */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sim.h"

#define PROCS_MAX 64

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *read_secret(const char *path)
{
	static char buf[512];
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f || !(n = fread(buf, 1, sizeof buf - 1, f))) {
		fprintf(stderr, "bench_storm: cannot read %s\n", path);
		exit(2);
	}
	fclose(f);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = '\0';
	return buf;
}

/* Waits for each simulator's "ready SECONDS RETRIES" line, until timeout:
 * how many reported; *last and *retries over them. */
static int gather(int fd, int procs, double timeout, double *last,
		  long *retries)
{
	char buf[4096];
	size_t n = 0;
	int got = 0;
	double until = mono() + timeout;

	while (got < procs && mono() < until) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		if (poll(&p, 1, 100) <= 0)
			continue;
		ssize_t k = read(fd, buf + n, sizeof buf - 1 - n);
		if (k <= 0)
			break;
		n += (size_t)k;
		buf[n] = '\0';
		char *nl;
		while ((nl = strchr(buf, '\n'))) {
			double t;
			long r;
			if (sscanf(buf, "ready %lf %ld", &t, &r) == 2) {
				got++;
				*last = t > *last ? t : *last;
				*retries += r;
			}
			n -= (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, n + 1);
		}
	}
	return got;
}

int main(int argc, char **argv)
{
	pid_t sims[PROCS_MAX];
	int p[2], workers, procs = 4, got;
	double timeout = 60, last = 0;
	long retries = 0;
	char host[256];
	int port;

	if (argc < 4 || sscanf(argv[1], "%255[^:]:%d", host, &port) != 2 ||
	    (workers = atoi(argv[2])) < 1) {
		fprintf(stderr, "usage: bench_storm HOST:PORT WORKERS "
			"SECRET_FILE [CA_FILE|-] [PROCS] [TIMEOUT]\n");
		return 2;
	}
	const char *secret = read_secret(argv[3]);
	const char *ca = argc > 4 && strcmp(argv[4], "-") ? argv[4] : NULL;
	if (argc > 5)
		procs = atoi(argv[5]);
	if (argc > 6)
		timeout = atof(argv[6]);
	if (procs < 1 || procs > PROCS_MAX || procs > workers)
		procs = workers < 4 ? workers : 4;
	signal(SIGPIPE, SIG_IGN);
	if (pipe(p) < 0)
		return 1;
	for (int i = 0; i < procs; i++) {
		int share = workers / procs + (i < workers % procs);
		struct bench_sim_opts o = {.id = i, .host = host, .port = port,
					.n = share, .connecting = share,
					.secret = secret, .ca = ca,
					.report_fd = p[1]};
		if ((sims[i] = fork()) == 0) {
			close(p[0]);
			bench_sim_run(&o);
		}
	}
	close(p[1]);
	got = gather(p[0], procs, timeout, &last, &retries);
	if (got == procs)
		printf("storm: %d workers in %.3f s (%ld connections made "
		       "again; %d processes)\n", workers, last, retries,
		       procs);
	else
		printf("storm: only %d of %d processes had every worker in "
		       "within %.0f s\n", got, procs, timeout);
	fflush(stdout);
	/* Held until the caller is done looking (stdin closes). */
	if (got == procs)
		while (getchar() != EOF)
			;
	for (int i = 0; i < procs; i++)
		kill(sims[i], SIGKILL);
	for (int i = 0; i < procs; i++)
		waitpid(sims[i], NULL, 0);
	return got == procs ? 0 : 1;
}
