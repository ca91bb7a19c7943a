/*
 * pools_gridengine.c: the gridengine provider of the pools (pools.c,
 * through pools_int.h).
 *
 * Grid Engine (Debian's 8.1.9; Son of Grid Engine, Open Grid Scheduler):
 * `qsub -terse` answers the job id; one `qstat -u USER` a poll lists
 * every job of this user ("ID PRIOR NAME USER STATE ..."), and a pending
 * job missing from it has ended; `qdel` cancels. A worker's slots are a
 * parallel environment's (-pe smp CORES, unless the pool's extra
 * arguments name one), its memory `-l mem_free=` a slot, its GPUs
 * `-l gpu=` (a consumable a site defines), its walltime `-l h_rt=` with
 * `s_rt=` 60 s before, which sends the worker SIGUSR1: it drains. The
 * worker is started with the pool's shape on its command line (Grid
 * Engine's NSLOTS says nothing of memory). A job in an error state (Eqw:
 * it would wait forever) is deleted, with qstat's reason.
 */
#include <math.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pools_int.h"

/* 1 if s may go on a binary job's command line: qsub -b y joins the
 * arguments with spaces and execd's shell splits them again. */
static int ge_word_ok(const char *s)
{
	return s[strcspn(s, " \t\n'\"\\$`;&|<>()*?[]~#")] == 0;
}

static void qsub_done(void *arg, int status, const char *out)
{
	struct job *j = arg;
	char id[32] = "";
	/* -terse: "ID" (an array job's "ID.1-N:1", never ours); qsub's
	 * "Exiting." says nothing of why. */
	if (status != 0 || sscanf(out, "%31[0-9]", id) != 1)
		id[0] = 0;
	xy__pools_submit_answer(j, "qsub", status, out, id, "Exiting.");
}

/* The words of a submission that ge_submit's helpers write. */
struct words {
	char pe[16], mem[48], gpu[32], rt[64]; /* qsub's */
	char grace[16], cores[16], wmem[24], gpus[16], wall[32]; /* the
								  * worker's */
};

/* What the job asks of Grid Engine (slots, memory, GPUs, walltime),
 * from argv[k] on; the slots only if the pool's extra arguments name no
 * parallel environment. Returns the next free index of argv. */
static int resources(struct pool *p, struct words *w, char **argv, int k)
{
	int own_pe = 0;
	for (int i = 0; p->extra && p->extra[i]; i++)
		own_pe |= !strcmp(p->extra[i], "-pe");
	if (p->conf.node.cores > 1 && !own_pe) {
		snprintf(w->pe, sizeof w->pe, "%d", p->conf.node.cores);
		argv[k++] = "-pe";
		argv[k++] = "smp";
		argv[k++] = w->pe;
	}
	if (p->conf.node.memory) {
		/* A consumable is asked for a slot: the worker's memory,
		 * shared among its slots, rounded up. */
		long long slot = (p->conf.node.memory + p->conf.node.cores - 1) /
				 p->conf.node.cores;
		snprintf(w->mem, sizeof w->mem, "mem_free=%lldM", slot);
		argv[k++] = "-l";
		argv[k++] = w->mem;
	}
	if (p->conf.node.gpus) {
		snprintf(w->gpu, sizeof w->gpu, "gpu=%d", p->conf.node.gpus);
		argv[k++] = "-l";
		argv[k++] = w->gpu;
	}
	if (p->walltime > 0) {
		long h = (long)ceil(p->walltime);
		/* s_rt sends SIGUSR1: the worker drains before h_rt's
		 * SIGKILL. */
		if (h > 60)
			snprintf(w->rt, sizeof w->rt, "h_rt=%ld,s_rt=%ld", h,
				 h - 60);
		else
			snprintf(w->rt, sizeof w->rt, "h_rt=%ld", h);
		argv[k++] = "-l";
		argv[k++] = w->rt;
	}
	return k;
}

/* The worker's drain grace and shape (the pool's node) on its command
 * line from argv[k] on: Grid Engine's NSLOTS says nothing of memory.
 * Returns the next free index of argv. */
static int worker_shape(struct pool *p, struct words *w, char **argv,
			int k)
{
	snprintf(w->grace, sizeof w->grace, "%d", XY_POOLS_DRAIN_GRACE_S);
	argv[k++] = "--drain-grace";
	argv[k++] = w->grace;
	snprintf(w->cores, sizeof w->cores, "%d", p->conf.node.cores);
	argv[k++] = "--cores";
	argv[k++] = w->cores;
	if (p->conf.node.memory) {
		snprintf(w->wmem, sizeof w->wmem, "%lld",
			 (long long)p->conf.node.memory);
		argv[k++] = "--memory";
		argv[k++] = w->wmem;
	}
	snprintf(w->gpus, sizeof w->gpus, "%d", p->conf.node.gpus);
	argv[k++] = "--gpus";
	argv[k++] = w->gpus;
	/* Its end, which Grid Engine does not tell it: it drains itself
	 * before (s_rt's SIGUSR1 stays a backstop, which a queue's
	 * `notify` may follow with a kill too soon), and the manager
	 * places timed tasks by what it has left. */
	if (p->walltime > 0) {
		snprintf(w->wall, sizeof w->wall, "%.0f", p->walltime);
		argv[k++] = "--walltime";
		argv[k++] = w->wall;
	}
	return k;
}

static int ge_submit(struct pool *p, struct job *j)
{
	char addr[300], out[1200];
	struct words words;
	char *argv[48 + 64];
	char *wargv[10];
	int k = 0;
	xy__pools_worker_argv(j, addr, sizeof addr, wargv);
	if (!ge_word_ok(p->xylem) || !ge_word_ok(addr)) {
		xy__pools_submit_failed(j, "the xylem path or the manager's "
					"address holds a space or a shell "
					"character");
		return -1;
	}
	argv[k++] = "qsub";
	argv[k++] = "-terse";
	argv[k++] = "-N";
	argv[k++] = j->name;
	argv[k++] = "-b";
	argv[k++] = "y";
	argv[k++] = "-V";
	argv[k++] = "-cwd";
	argv[k++] = "-j";
	argv[k++] = "y";
	argv[k++] = "-o";
	if (p->log_dir)
		snprintf(out, sizeof out, "%s/%s.log", p->log_dir, j->name);
	else
		snprintf(out, sizeof out, "/dev/null");
	argv[k++] = out;
	if (p->partition) {
		argv[k++] = "-q";
		argv[k++] = p->partition;
	}
	k = resources(p, &words, argv, k);
	for (int i = 0; p->extra && p->extra[i] && k < 90; i++)
		argv[k++] = p->extra[i];
	for (int i = 0; wargv[i]; i++)
		argv[k++] = wargv[i];
	k = worker_shape(p, &words, argv, k);
	argv[k] = NULL;
	return xy__pools_submit_run(p, j, argv, qsub_done);
}

/* The value after KEY (a line "KEY   VALUE") in qacct's text, the last
 * record's, into buf ("" if none). */
static void ge_field(const char *text, const char *key, char *buf, size_t n)
{
	size_t k = strlen(key);
	buf[0] = 0;
	for (const char *at = text; *at;) {
		size_t len = strcspn(at, "\n");
		if (len > k && !strncmp(at, key, k) && (at[k] == ' ' ||
							at[k] == '\t')) {
			const char *v = at + k + strspn(at + k, " \t");
			size_t vl = len - (size_t)(v - at);
			while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
				vl--;
			snprintf(buf, n, "%.*s", (int)(vl < n ? vl : n - 1), v);
		}
		at += len + (at[len] == '\n');
	}
}

/* How j ended, from qacct (and the log's last lines), or why it was in
 * an error state (qstat -j, then it is deleted). */
static void ge_inquest_done(void *arg, int status, const char *out)
{
	struct job *j = arg;
	char failed[120], code[80], tail[200], why[300];
	(void)status;
	j->inquest = 0;
	if (j->batch_state[0] && strchr(j->batch_state, 'E')) {
		xy__pools_last_line(out, tail, sizeof tail);
		snprintf(why, sizeof why, "in error state %s, deleted: %s",
			 j->batch_state, tail[0] ? tail : "qstat -j says no "
			 "reason");
		xy__pools_job_end(j, why);
		return;
	}
	const char *log = strstr(out, "===\n");
	char *acct = strndup(out, log ? (size_t)(log - out) : strlen(out));
	ge_field(acct ? acct : "", "failed", failed, sizeof failed);
	ge_field(acct ? acct : "", "exit_status", code, sizeof code);
	free(acct);
	xy__pools_last_line(log ? log + 4 : "", tail, sizeof tail);
	int at = snprintf(why, sizeof why, "left the queue");
	if (code[0])
		at += snprintf(why + at, sizeof why - at, ", exit_status %s",
			       code);
	else
		at += snprintf(why + at, sizeof why - at, " (qacct has no "
			       "record of it)");
	if (failed[0] && strcmp(failed, "0") && at < (int)sizeof why)
		at += snprintf(why + at, sizeof why - at, ", failed %s",
			       failed);
	if (tail[0] && at < (int)sizeof why)
		snprintf(why + at, sizeof why - at, "; its log ends: %s", tail);
	xy__pools_job_end(j, why);
}

static void ge_inquest(struct job *j, int error_state)
{
	char log[1100];
	xy__pools_log_path(j, log, sizeof log);
	/* qacct's record of a job (its last lines: failed, exit_status,
	 * then usage) ends the text unless the log has lines: "===" marks
	 * the record, so a log's last line is told from it. */
	char *ended[] = {
		"/bin/sh", "-c",
		"qacct -j \"$1\" 2>/dev/null |"
		" grep -E '^(failed|exit_status) ';"
		" if [ -n \"$2\" ] && [ -s \"$2\" ]; then echo ===;"
		" tail -n 5 \"$2\" 2>/dev/null; fi",
		"xylem-inquest", j->id, log, NULL};
	char *errored[] = {
		"/bin/sh", "-c",
		"qstat -j \"$1\" 2>/dev/null | grep -i '^error reason';"
		" qdel \"$1\" >/dev/null 2>&1",
		"xylem-inquest", j->id, NULL};
	xy__pools_inquest_run(j, error_state ? errored : ended,
			      ge_inquest_done);
}

static void ge_ended(struct job *j)
{
	ge_inquest(j, 0);
}

/* A job in an error state (E in it: Eqw) is looked into, then deleted. */
static void ge_listed(struct job *j)
{
	if (strchr(j->batch_state, 'E') && !j->cancel)
		ge_inquest(j, 1);
}

/* qstat's line "ID PRIOR NAME USER STATE ..." for id (after two header
 * lines; none if no job), its state into state. */
static int qstat_find(const char *out, const char *id, char *state,
		      size_t n)
{
	for (const char *at = out; *at;) {
		char jid[32], st[16];
		if (sscanf(at, "%31s %*s %*s %*s %15s", jid, st) == 2 &&
		    !strcmp(jid, id)) {
			snprintf(state, n, "%s", st);
			return 1;
		}
		at += strcspn(at, "\n");
		at += *at == '\n';
	}
	return 0;
}

static void qstat_done(void *arg, int status, const char *out)
{
	xy__pools_poll_answer(arg, "qstat", status, out, qstat_find,
			      ge_listed, ge_ended);
}

static void ge_poll(struct pool *p)
{
	char user[64];
	struct passwd *pw = getpwuid(getuid());
	snprintf(user, sizeof user, "%s", pw ? pw->pw_name : "");
	char *argv[] = {"qstat", "-u", user, NULL};
	if (!user[0])
		return;
	xy__pools_poll_run(p, argv, qstat_done);
}

static void ge_cancel(struct pool *p, struct job *j)
{
	xy__pools_cancel(p, j, "qdel");
}

const struct provider xy__pools_gridengine = {"gridengine", ge_submit,
					      ge_poll, ge_cancel};
