/*
 * pools_int.h: what the pools' core (pools.c) shares with its batch
 * system providers (pools_slurm.c, pools_gridengine.c): the job and pool
 * records, the provider's table, and the core's helpers that run a batch
 * system's commands and act on their answers. Only those three files
 * include it; the rest of the manager sees pools.h.
 */
#ifndef XY_MANAGER_POOLS_INT_H
#define XY_MANAGER_POOLS_INT_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"
#include "scaler.h"

#define XY_POOLS_DRAIN_GRACE_S 50 /* jobs get SIGUSR1 60 s before walltime */

enum job_state { JOB_SUBMITTING, JOB_PENDING, JOB_CONNECTED, JOB_ENDED };

struct pool;

/* One worker to come (pools.c says its states). */
struct job {
	struct pool *pool;
	char name[96]; /* the worker's --name */
	char id[32];   /* the batch system's id; "" until it answers */
	enum job_state state;
	int cancel;    /* to be cancelled once its id is known */
	int queued;    /* SUBMITTING, waiting for its turn (submit_next) */
	struct xy_worker *worker;
	uv_process_t proc;   /* local: the worker itself */
	int proc_live;
	int inquest;         /* batch: asking why it left the queue */
	int cmds;            /* commands in flight that hold it (cmd_run) */
	uint64_t asked;      /* external: loop ms its submission began */
	char batch_state[16]; /* batch: as the last poll said */
	char why[300];       /* why it ended */
	struct job *next;
};

struct provider {
	const char *name;
	/* Starts j's submission; its answer comes later (job_submitted). */
	int (*submit)(struct pool *p, struct job *j);
	/* Asks for the state of every pending job (batch systems only). */
	void (*poll)(struct pool *p);
	void (*cancel)(struct pool *p, struct job *j);
};

struct pool {
	struct xy_pools *ps;
	struct xy_pool conf; /* name, node, min, max, backlog, priority */
	const struct provider *prov;
	char *partition, *xylem, *host, *log_dir;
	char **extra; /* NULL-ended */
	/* external: the application's (struct xy_pool_options) */
	void (*hook_submit)(void *arg, const char *pool, const char *job);
	void (*hook_cancel)(void *arg, const char *pool, const char *job,
			    const char *id);
	void *hook_arg;
	double walltime, idle_timeout;
	double seen_time; /* the most a fresh worker had (learn_time) */
	struct job *jobs;
	uint64_t seq;
	int fails;            /* submissions failed in a row */
	int in_flight;        /* submissions under way */
	uint64_t paused_until; /* loop ms */
	uint64_t last_poll;
	int polling;
	int64_t submitted, ended;
	char why[200];
	char last_failure[300];
};

/* The batch systems' providers (pools_slurm.c, pools_gridengine.c). */
extern const struct provider xy__pools_slurm;
extern const struct provider xy__pools_gridengine;

/* ------------------------------------------------- jobs (pools.c) */

/* Ends j (once; later calls do nothing), saying why; a job that ended
 * before its worker came, and was not cancelled, counts as the pool's
 * failure (the pool backs off). */
void xy__pools_job_end(struct job *j, const char *why);
/* j's submission was refused or could not start: it ends, and the pool
 * backs off. */
void xy__pools_submit_failed(struct job *j, const char *why);
/* j's worker command line, NULL-ended, into argv (at least 8 slots):
 * xylem worker ADDR --name NAME --connect-timeout 30, with ADDR (the
 * manager's host:port) written into addr. Returns the count of words. */
int xy__pools_worker_argv(struct job *j, char *addr, size_t n, char **argv);
/* The path of j's log under the pool's log_dir into buf; "" if the pool
 * keeps no logs. */
void xy__pools_log_path(const struct job *j, char *buf, size_t n);
/* The last line of text that holds more than blanks, into buf. */
void xy__pools_last_line(const char *text, char *buf, size_t n);

/* ----------------------------- a batch system's commands (pools.c) */

/* Runs the submission command argv (sbatch, qsub) for j, with this
 * process's environment and the manager's secret; its answer goes to
 * done (which ends with xy__pools_submit_answer). 0, or -1 once j has
 * failed ("cannot run ARGV0"). */
int xy__pools_submit_run(struct pool *p, struct job *j, char **argv,
			 void (*done)(void *job, int status,
				      const char *out));
/* The answer to j's submission command cmd: id ("" if it gave none) is
 * the job's, and j is pending; else it failed, and the command's output
 * (its lines joined, but those equal to skip, if not NULL) says why.
 * A command killed by a signal may have submitted a job nobody knows:
 * the watchdog then sweeps at the end. The pool's next submission
 * starts either way. */
void xy__pools_submit_answer(struct job *j, const char *cmd, int status,
			     const char *out, const char *id,
			     const char *skip);
/* Runs the poll command argv (squeue, qstat) for p unless one is
 * already under way; done gets p, and starts with
 * xy__pools_poll_answer. */
void xy__pools_poll_run(struct pool *p, char **argv,
			void (*done)(void *pool, int status,
				     const char *out));
/* The answer to p's poll command cmd, which lists the user's jobs. For
 * each pending job of p not under inquest: find says whether out lists
 * its id (1) and its state (into state, n bytes); a job listed has it as
 * its batch_state, then listed (if not NULL) sees it; a job not listed
 * has ended: cancelled, or else gone (the provider's inquest) is called.
 * A failed poll is logged and changes nothing. */
void xy__pools_poll_answer(struct pool *p, const char *cmd, int status,
			   const char *out,
			   int (*find)(const char *out, const char *id,
				       char *state, size_t n),
			   void (*listed)(struct job *j),
			   void (*gone)(struct job *j));
/* Runs argv (a shell: scontrol or qacct, and the log's last lines) to
 * find out how j ended; done gets j, clears j->inquest, says why and
 * ends it (xy__pools_job_end). If argv cannot run, j ends at once
 * ("left the queue"). */
void xy__pools_inquest_run(struct job *j, char **argv,
			   void (*done)(void *job, int status,
					const char *out));
/* Cancels j with `cmd ID` (scancel, qdel), logging it, and a failure. */
void xy__pools_cancel(struct pool *p, struct job *j, char *cmd);

#endif
