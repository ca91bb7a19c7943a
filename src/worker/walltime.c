/*
 * walltime.c: when a worker must end (walltime.h). Slurm 22.05, Debian
 * 12's, exports no SLURM_JOB_END_TIME to a batch job (later releases do),
 * so the end comes from squeue, asked once at the worker's start with
 * SLURM_TIME_FORMAT=%s so that the answer is seconds since the epoch,
 * not a local time to be parsed. Checked against the test cluster
 * (tests/slurm): `-t 2` gives an end 120 s after the job's start.
 */
#include "walltime.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

#define EPOCH_MAX 95617584000.0 /* the year 5000 */

int xy_walltime_parse_epoch(const char *s, double *out)
{
	char *end;
	double v;

	while (s && (*s == ' ' || *s == '\t'))
		s++;
	if (!s || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtod(s, &end);
	while (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t')
		end++;
	if (errno || *end || v <= 0 || v > EPOCH_MAX)
		return -1;
	*out = v;
	return 0;
}

/* Runs argv with stdout read into buf (at most n - 1 bytes), stderr to
 * /dev/null, for at most timeout_s; killed past it. Returns its exit
 * status, or -1 (why in err). */
static int run_child(char *const argv[], double timeout_s, char *buf,
		     size_t n, char *err, size_t errlen)
{
	int fds[2], status = 0;
	size_t got = 0;
	pid_t pid;

	if (pipe(fds) < 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		dup2(fds[1], 1);
		if (null >= 0) {
			dup2(null, 0);
			dup2(null, 2);
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	close(fds[1]);
	double deadline = xy_mono() + timeout_s;
	for (;;) {
		double left = deadline - xy_mono();
		struct pollfd p = {.fd = fds[0], .events = POLLIN};
		if (left <= 0) {
			kill(pid, SIGKILL);
			snprintf(err, errlen, "%s gave no answer in %g s",
				 argv[0], timeout_s);
			status = -1;
			break;
		}
		int r = poll(&p, 1, (int)(left * 1000) + 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0)
			continue;
		ssize_t k = got + 1 < n ? read(fds[0], buf + got, n - 1 - got)
					: 0;
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	buf[got] = '\0';
	close(fds[0]);
	int ws = 0;
	pid_t r;
	while ((r = waitpid(pid, &ws, 0)) < 0 && errno == EINTR)
		;
	if (status < 0)
		return -1;
	if (r < 0) { /* ECHILD: SIGCHLD ignored, say, by whoever started us */
		snprintf(err, errlen, "%s: its exit status is lost: %s",
			 argv[0], strerror(errno));
		return -1;
	}
	if (WIFEXITED(ws))
		return WEXITSTATUS(ws);
	snprintf(err, errlen, "%s died of signal %d", argv[0], WTERMSIG(ws));
	return -1;
}

int xy_walltime_slurm_end(xy_resources_getenv_fn get, double timeout_s,
			  double *end, const char **from, char *err,
			  size_t errlen)
{
	const char *job = get("SLURM_JOB_ID");
	const char *v = get("SLURM_JOB_END_TIME");
	char out[256];

	*from = "";
	if (!job || !*job) {
		*from = "not in a Slurm job";
		return 0;
	}
	if (v && *v) {
		*from = "SLURM_JOB_END_TIME";
		if (xy_walltime_parse_epoch(v, end) == 0)
			return 1;
		snprintf(err, errlen, "SLURM_JOB_END_TIME is '%.64s', not "
			 "seconds since the epoch", v);
		return -1;
	}
	*from = "squeue";
	char *const argv[] = {"/bin/sh", "-c",
			      "SLURM_TIME_FORMAT=%s exec squeue -h -j \"$1\" "
			      "-o %e",
			      "sh", (char *)job, NULL};
	int st = run_child(argv, timeout_s, out, sizeof out, err, errlen);
	if (st < 0)
		return -1;
	if (st != 0) {
		snprintf(err, errlen, "squeue exited %d", st);
		return -1;
	}
	if (xy_walltime_parse_epoch(out, end) == 0)
		return 1;
	/* "N/A" or "Unknown": a job without a time limit. */
	out[strcspn(out, "\n")] = '\0';
	if (!*out) {
		snprintf(err, errlen, "squeue does not know job %.32s", job);
		return -1;
	}
	*from = "squeue: the job has no end";
	return 0;
}

uint64_t xy_walltime_usable_ms(int64_t left_ms, double lead_s,
			       double grace_s)
{
	int64_t keep = 0;

	if (grace_s > 0 && grace_s < lead_s)
		keep = (int64_t)((lead_s - grace_s) * 1000);
	left_ms -= keep;
	return left_ms > 1 ? (uint64_t)left_ms : 1;
}
