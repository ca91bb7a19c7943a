/*
 * pools_slurm.c: the slurm provider of the pools (pools.c, through
 * pools_int.h). `sbatch --parsable` submits a job (its answer is the job
 * id), one `squeue` a poll lists every job of this user, `scancel`
 * cancels. A job that leaves Slurm's queue before its worker came is
 * looked into (scontrol, and its log's last lines) so that the log and
 * status say why.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pools_int.h"

static void sbatch_done(void *arg, int status, const char *out)
{
	struct job *j = arg;
	char id[32] = "";
	/* --parsable: "ID" or "ID;CLUSTER". */
	if (status != 0 || sscanf(out, "%31[0-9_]", id) != 1)
		id[0] = 0;
	xy__pools_submit_answer(j, "sbatch", status, out, id, NULL);
}

/* Quotes s for sh in single quotes into buf; -1 if it holds one. */
static int quote(char *buf, size_t n, const char *s)
{
	if (strchr(s, '\'') || strlen(s) + 3 > n)
		return -1;
	snprintf(buf, n, "'%s'", s);
	return 0;
}

static int slurm_submit(struct pool *p, struct job *j)
{
	char addr[300], xylem[1100], wrap[1600], cpus[24], mem[32], gres[32],
		tlim[32], out[1200], name[120];
	char *argv[40 + 64];
	int k = 0;
	char *wargv[10];
	xy__pools_worker_argv(j, addr, sizeof addr, wargv);
	char qaddr[320];
	if (quote(xylem, sizeof xylem, p->xylem) < 0 ||
	    quote(qaddr, sizeof qaddr, addr) < 0) {
		xy__pools_submit_failed(j, "the xylem path or the manager's "
					"address holds a quote, or is too "
					"long");
		return -1;
	}
	if (snprintf(wrap, sizeof wrap, "exec %s worker %s --name %s "
		     "--connect-timeout 30 --drain-grace %d", xylem, qaddr,
		     j->name, XY_POOLS_DRAIN_GRACE_S) >= (int)sizeof wrap) {
		xy__pools_submit_failed(j, "the worker's command line is too "
					"long");
		return -1;
	}
	argv[k++] = "sbatch";
	argv[k++] = "--parsable";
	snprintf(name, sizeof name, "--job-name=%s", j->name);
	argv[k++] = name;
	argv[k++] = "--nodes=1";
	argv[k++] = "--ntasks=1";
	snprintf(cpus, sizeof cpus, "--cpus-per-task=%d", p->conf.node.cores);
	argv[k++] = cpus;
	if (p->conf.node.memory) {
		snprintf(mem, sizeof mem, "--mem=%lld",
			 (long long)p->conf.node.memory);
		argv[k++] = mem;
	}
	if (p->conf.node.gpus) {
		snprintf(gres, sizeof gres, "--gres=gpu:%d",
			 p->conf.node.gpus);
		argv[k++] = gres;
	}
	if (p->partition) {
		argv[k++] = "--partition";
		argv[k++] = p->partition;
	}
	if (p->walltime > 0) {
		long min = (long)((p->walltime + 59) / 60);
		snprintf(tlim, sizeof tlim, "--time=%ld", min);
		argv[k++] = tlim;
		argv[k++] = "--signal=B:USR1@60";
	}
	if (p->log_dir)
		snprintf(out, sizeof out, "--output=%s/%s.log", p->log_dir,
			 j->name);
	else
		snprintf(out, sizeof out, "--output=/dev/null");
	argv[k++] = out;
	for (int i = 0; p->extra && p->extra[i] && k < 96; i++)
		argv[k++] = p->extra[i];
	argv[k++] = "--wrap";
	argv[k++] = wrap;
	argv[k] = NULL;
	return xy__pools_submit_run(p, j, argv, sbatch_done);
}

/* The value of KEY= in one line of `scontrol -o` into buf ("" if none). */
static void field(const char *line, const char *key, char *buf, size_t n)
{
	size_t k = strlen(key);
	const char *at = line;
	buf[0] = 0;
	while ((at = strstr(at, key))) {
		if (at == line || at[-1] == ' ') {
			size_t len = strcspn(at + k, " \n");
			snprintf(buf, n, "%.*s", (int)(len < n ? len : n - 1),
				 at + k);
			return;
		}
		at += k;
	}
}

/* The inquest's answer: scontrol's line, then the log's last lines. */
static void inquest_done(void *arg, int status, const char *out)
{
	struct job *j = arg;
	char state[32], code[16], reason[64], tail[200], why[300];
	(void)status;
	j->inquest = 0;
	size_t first = strcspn(out, "\n");
	char *line = strndup(out, first);
	field(line ? line : "", "JobState=", state, sizeof state);
	field(line ? line : "", "ExitCode=", code, sizeof code);
	field(line ? line : "", "Reason=", reason, sizeof reason);
	free(line);
	snprintf(j->batch_state, sizeof j->batch_state, "%.15s", state);
	xy__pools_last_line(out + first, tail, sizeof tail);
	int exit_code = 0, sig = 0;
	sscanf(code, "%d:%d", &exit_code, &sig);
	int at = snprintf(why, sizeof why, "left the queue");
	if (state[0])
		at += snprintf(why + at, sizeof why - at, " %s", state);
	if (sig)
		at += snprintf(why + at, sizeof why - at, ", signal %d", sig);
	else if (state[0])
		at += snprintf(why + at, sizeof why - at, ", exit %d",
			       exit_code);
	if (reason[0] && strcmp(reason, "None"))
		at += snprintf(why + at, sizeof why - at, " (%s)", reason);
	if (tail[0] && at < (int)sizeof why)
		snprintf(why + at, sizeof why - at, "; its log ends: %s", tail);
	xy__pools_job_end(j, why);
}

/* j left the queue before its worker came: asks Slurm how it ended, and
 * reads the end of its log (if the pool keeps logs), then ends it. */
static void inquest(struct job *j)
{
	char log[1100];
	xy__pools_log_path(j, log, sizeof log);
	char *argv[] = {"/bin/sh", "-c",
			"scontrol -o show job \"$1\" 2>/dev/null || echo;"
			" [ -z \"$2\" ] || tail -n 5 \"$2\" 2>/dev/null",
			"xylem-inquest", j->id, log, NULL};
	xy__pools_inquest_run(j, argv, inquest_done);
}

/* squeue's line "ID STATE" for id, its state into state. */
static int squeue_find(const char *out, const char *id, char *state,
		       size_t n)
{
	size_t k = strlen(id);
	for (const char *at = out; at && *at;) {
		if (!strncmp(at, id, k) && at[k] == ' ') {
			const char *s = at + k + 1;
			snprintf(state, n, "%.*s", (int)strcspn(s, " \n"), s);
			return 1;
		}
		at = strchr(at, '\n');
		at = at ? at + 1 : NULL;
	}
	return 0;
}

static void squeue_done(void *arg, int status, const char *out)
{
	xy__pools_poll_answer(arg, "squeue", status, out, squeue_find, NULL,
			      inquest);
}

static void slurm_poll(struct pool *p)
{
	char user[32];
	snprintf(user, sizeof user, "--user=%u", (unsigned)getuid());
	char *argv[] = {"squeue", "--noheader", "--format=%i %T", user, NULL};
	xy__pools_poll_run(p, argv, squeue_done);
}

static void slurm_cancel(struct pool *p, struct job *j)
{
	xy__pools_cancel(p, j, "scancel");
}

const struct provider xy__pools_slurm = {"slurm", slurm_submit, slurm_poll,
					 slurm_cancel};
