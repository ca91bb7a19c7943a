/*
 * internal.h: the manager's own types (the task, the manager) and the
 * headers of its sub-contexts, one each (catalog.h, clients.h, lineage.h,
 * scheduler.h, urls.h, wtable.h, xplan.h; pools.h and history.h are
 * included where used): docs/architecture.md, "Manager sub-contexts".
 * Only files under src/manager include it; none of its names is exported
 * from libxylem (only XY_API ones, in include/xylem.h, are).
 *
 * Ownership: the manager owns every submitted task until wait returns it,
 * every declared file until nothing refers to it (catalog.c: the
 * program's handles and the manager's own references), every object
 * until no file refers to it and its idle spell is over, and every
 * worker record until its connection closes. Everything here runs on the
 * manager's loop thread, except the served-object table (catalog.c), which
 * transfer server threads read under its mutex.
 */
#ifndef XY_MANAGER_INTERNAL_H
#define XY_MANAGER_INTERNAL_H

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "conn.h"
#include "dash.h"
#include "history.h"
#include "proto.h"
#include "xfer.h"
#include "xylem.h"

struct xy_worker;
struct xy_object;
struct xy_catalog;
struct xy_wtable;
struct xy_sched;
struct xy_xplan;
struct xy_lineage;
struct recipe;
struct peer;
struct post;
struct fetch;    /* xplan.c */
struct cooldown; /* xplan.c */
struct client;
struct client_job;
struct xy_clients;

/* A declared library: a template for the instances workers start. A
 * replaced library stays allocated until the manager goes, since workers
 * remember which library objects they were sent. */
struct library {
	char *name;
	struct xy_task *tmpl;
	int current; /* not replaced by a later declaration */
	struct library *next;
};

/* ------------------------------------------------------------------ tasks */

struct task_file {
	struct xy_file *file;
	char *as;
};

struct xy_task {
	uint64_t id;
	char *command;
	char *tag;
	struct task_file *inputs, *outputs;
	uint32_t n_inputs, n_outputs;
	struct xy_env_var *env;
	uint32_t n_env;
	int cores, gpus;
	int64_t memory, disk;
	int retries;
	double priority;
	double time_limit;
	uint64_t user;
	struct xy_file *environment; /* mounted at XY_ENV_MOUNT, activated */
	char *library;  /* a call: the library that serves it */
	char *payload;  /* a call's payload */
	size_t payload_len;

	xy_task_state state;
	xy_result result;
	xy_failure failure; /* its last TASK_DONE's */
	int exit_code;
	char *output;
	size_t output_len;
	char *error;
	char *worker_name;
	int attempts;       /* dispatches that reached a worker */
	int failures;       /* attempts that failed by the task's fault */
	int worker_losses;  /* times its worker vanished under it */
	int cancel_requested;
	struct xy_task_times times;

	struct xy_manager *manager;
	int pending;               /* inputs not yet available */
	int retrievals;            /* outputs still coming back */
	int retrieval_failed;      /* an output could not be brought back */
	struct xy_worker *worker;  /* while RUNNING */
	struct xy_task *qprev, *qnext; /* ready level, worker list, done list */
	struct rq_level *level;    /* its ready level while READY (sched.c) */
	uint64_t qseq;             /* its place in the ready queue (sched.c) */
	struct xy_task *anext;     /* set aside in a round (sched.c) */
	struct xy_task *hnext;     /* id hash chain */
	int skipped;  /* finished from the journal, not run (memo.c) */
	/* With a journal: its fingerprint, set when it is ready (memo.c),
	 * which workers that outlive their manager know it by (adopt.c). */
	uint8_t *key;
	int parked; /* waits for its worker to come back (adopt.c) */
	int internal; /* a remake of lost temps (lineage.c) or a client's
		       * task (client.c, job set): never returned by wait */
	struct client_job *job; /* the client's job it runs for */
	int dash_tag; /* dash.c: its tag's place in the dashboard, plus one */
	int calls; /* the calls a batch stands for, 0 or 1: one (sched.c) */
};

/* The sandbox name a task's environment is mounted at (unpack.c). */
#define XY_ENV_MOUNT ".xylem/env"

/* The sub-contexts, each in its own header (docs/architecture.md). */
#include "catalog.h"
#include "clients.h"
#include "lineage.h"
#include "scheduler.h"
#include "urls.h"
#include "wtable.h"
#include "xplan.h"

/* The TASK/LIBRARY input kind for input f of t (unpack.c). */
uint8_t xy_input_kind(const struct xy_task *t, const struct xy_file *f);

/* -------------------------------------------------------------- manager */

#define XY_LIVENESS_MS 15000
#define XY_WORKER_TIMEOUT_MS 120000

struct xy_manager {
	uv_loop_t loop;
	uv_tcp_t listener;
	uv_prepare_t prepare;
	uv_timer_t timer;
	char *name;
	char *secret;
	size_t secret_len;
	struct xy_mtls *mtls; /* TLS (mtls.h) */
	int port;
	double started;

	struct xy_catalog *catalog;
	struct xy_wtable *wtable;
	struct xy_sched *sched;
	struct xy_xplan *xplan;
	struct xy_lineage *lineage;
	struct xy_history *history;
	struct xy_xfer_server *xfer;
	struct xy_urls *urls;
	struct xy_clients *clients;
	struct xy_pools *pools;
	struct xy_memo *memo; /* NULL without a journal */
	struct xy_array *arrays; /* task arrays not yet all made (array.c) */
	struct xy_adopt *adopt; /* with a journal: tasks workers kept */
	struct xy_release *release; /* RELEASEs after records (release.c) */
	struct xy_dash *dash; /* the live dashboard (dash.h); NULL: none */
	uint64_t lease_ms; /* WELCOME's: how long workers keep their tasks */
	/* With a journal, a scheduling round's messages wait in the conns
	 * of these workers until its RUN records are written. */
	int corking;
	struct xy_worker **corked;
	size_t n_corked, cap_corked;

	uint64_t next_task_id;
	struct xy_task **task_table; /* id hash, chained through hnext */
	uint64_t task_table_size;
	int64_t n_tasks;             /* submitted, not yet returned */
	int64_t n_entries;           /* in the task table, internal ones too */
	int64_t n_waiting, n_running, n_done;
	int64_t n_succeeded, n_failed;
	struct xy_task *done_head, *done_tail;
	int sched_dirty;
	int call_window; /* calls a worker may hold per core, beyond its cores */
	struct peer **peers; /* every open control connection */
	size_t n_peers, cap_peers;
	uv_idle_t idle; /* keeps poll from blocking while work is left */
	uv_async_t async; /* wakes the loop for posts and interrupts */
	uv_timer_t liveness;
	uint64_t last_liveness;
	pthread_mutex_t post_lock;
	struct post *posts, *posts_tail; /* under post_lock */
	int closed;                      /* under post_lock: no more posts */
	int interrupted;                 /* atomic */
	struct library *libraries;
	int destroying;
	int listening;
	/* The clock of rests, no-room marks and transfer durations:
	 * monotonic (xy_mono) unless a unit test sets its own. */
	double (*clock)(void);
	/* Fault injection, for unit tests only: while not 0, each
	 * allocation made through xy__calloc, xy__realloc or xy__strdup
	 * counts it down, and the one that brings it to 0 fails (1: the
	 * next one). Always 0 otherwise. */
	uint64_t fail_alloc;
};

/* The allocations of the manager's loop whose failure it survives
 * (docs/errors.md, "Out of memory"): calloc, realloc and strdup, except
 * that m's fail_alloc (m may be NULL) can make one fail with ENOMEM. */
static inline int xy__alloc_fails(struct xy_manager *m)
{
	if (!m || !m->fail_alloc || --m->fail_alloc)
		return 0;
	errno = ENOMEM;
	return 1;
}

static inline void *xy__calloc(struct xy_manager *m, size_t n, size_t size)
{
	return xy__alloc_fails(m) ? NULL : calloc(n, size);
}

static inline void *xy__realloc(struct xy_manager *m, void *p, size_t size)
{
	return xy__alloc_fails(m) ? NULL : realloc(p, size);
}

static inline char *xy__strdup(struct xy_manager *m, const char *s)
{
	return xy__alloc_fails(m) ? NULL : strdup(s);
}

/* Now on m's clock, in seconds (m may be NULL: the monotonic clock). */
double xy_manager_now(const struct xy_manager *m);

/* Task life cycle, called by the sub-contexts. */
void xy_manager_task_ready(struct xy_manager *m, struct xy_task *t);
/* t is ready and neither the journal nor a worker has it: queued. */
void xy_manager_task_queue(struct xy_manager *m, struct xy_task *t);
/* t is the task w held under held_id since an earlier manager (adopt.c):
 * it runs (or finished) there, committed to w as if sent. -1 if it
 * could not be (t failed or was requeued). */
int xy_manager_task_adopt(struct xy_manager *m, struct xy_task *t,
			  struct xy_worker *w, uint64_t held_id);
void xy_manager_task_fail(struct xy_manager *m, struct xy_task *t,
			  xy_result r, const char *why);
void xy_manager_task_requeue(struct xy_manager *m, struct xy_task *t,
			     const char *why);
/* t, waiting and with its inputs, finishes as a success without being
 * run (the journal knew it: memo.c); why goes to the history. */
void xy_manager_task_skip(struct xy_manager *m, struct xy_task *t,
			  const char *why);
/* Sends t's fetches and t to w, committing w's resources to it. If
 * memory is short for that, t fails with MANAGER_FAILED instead and w
 * is not committed. */
void xy_manager_task_dispatch(struct xy_manager *m, struct xy_task *t,
			      struct xy_worker *w);
/* An output came back (ok), or could not: local is set when the manager
 * could not write it (its blame), clear when the transfer failed. */
void xy_manager_retrieved(struct xy_manager *m, struct xy_task *t,
			  int ok, int local, const char *why);
void xy_manager_task_lost(struct xy_manager *m, struct xy_task *t,
			  const char *why);
void xy_manager_wake(struct xy_manager *m);
/* The current library of that name, or NULL. */
struct library *xy_manager_library(struct xy_manager *m, const char *name);
/* Sends w the LIBRARY message for name unless it has had it already: 0,
 * or -1 (ENOMEM) with nothing sent. */
int xy_manager_send_library(struct xy_manager *m, struct xy_worker *w,
			    const char *name);
/* The wire's limits, checked at submit so that a task the encoder would
 * refuse is refused there, not lost at dispatch: 0, or -1 (E2BIG). */
int xy_manager_check_limits(const struct xy_task *t, char *err,
			    size_t errlen);
/* A call carries its library's inputs, so that they are staged with it
 * and count towards placing it where they already are: 0, or -1. */
int xy_manager_add_library_inputs(struct xy_manager *m, struct xy_task *t,
				  char *err, size_t errlen);
/* Frees every library, replaced ones too (xy_manager_destroy). */
void xy_manager_free_libraries(struct xy_manager *m);
int xy_manager_send(struct xy_manager *m, struct xy_worker *w, unsigned type,
		    const union xy_msg *msg);
/* Enters an internal task (a remake) into the task table, WAITING; its
 * inputs are looked up by xy_manager_task_requeue later. */
void xy_manager_enter_internal(struct xy_manager *m, struct xy_task *t);
/* Submits t as an internal task (a client's): checked as by submit, its
 * inputs looked up now. Returns its id, or 0 with a reason in err. */
uint64_t xy_manager_submit_internal(struct xy_manager *m, struct xy_task *t,
				    char *err, size_t errlen);
/* Cancels t, submitted and not finished (as xy_manager_cancel). */
void xy_manager_task_cancel(struct xy_manager *m, struct xy_task *t);
/* One turn of the loop, blocking until deadline at most (xy_mono() based;
 * negative: up to a second). */
void xy_manager_turn(struct xy_manager *m, double deadline);

/* task.c */
void xy_task_free_results(struct xy_task *t);
/* status.c */
char *xy_status_build(const struct xy_manager *m);

/* Task arrays (array.c): makes the next indexes while the scheduler has
 * room, in the schedule phase; frees the records at destroy. */
void xy__array_phase(struct xy_manager *m);
void xy__array_destroy(struct xy_manager *m);
size_t xy__array_record_size(void);
int64_t xy__array_pending(const struct xy_manager *m);

#endif
