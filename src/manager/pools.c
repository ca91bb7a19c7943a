/*
 * pools.c: pools and their jobs (pools.h): the pools' core, with the
 * local and external providers. The batch systems' providers are in
 * pools_slurm.c and pools_gridengine.c; pools_int.h holds what they
 * share with this file: the job and pool records, and the helpers here
 * that run their commands and act on the answers.
 *
 * A job is one worker to come: its name (xy-<manager id>-<pool>-<seq>,
 * which the worker is started with and says in HELLO) ties the two. Its
 * states:
 *
 *   SUBMITTING -> PENDING -> CONNECTED -> ENDED
 *        \            \______________________^
 *         \__________________________________^ (refused, cancelled, lost)
 *
 * Providers run the batch system's commands as child processes of the
 * loop (cmd_run), never blocking it: a submission command whose answer
 * is the job id, one poll a while for every job of this user, a
 * cancellation (xy__pools_submit_run, _poll_run, _cancel). The local
 * provider starts `xylem worker` itself; an external one
 * hands each submission and cancellation to the application's hooks,
 * whose answers come back by xy_pools_job_answer. A pool has at most
 * SUBMITS_AT_ONCE submissions under way (submit_next). A job that leaves
 * a batch system's queue before its worker came is looked into (its
 * provider's inquest, xy__pools_inquest_run) so that the log and status
 * say why.
 *
 * A manager killed with SIGKILL cancels nothing: the watchdog, a shell
 * started with the first slurm or gridengine pool, does it for it
 * (watchdog_start).
 *
 * xy_pools_phase runs after each scheduling round: the pools' counts and
 * the queue by shape go to the plan (scaler.c), and its jobs to submit
 * and cancel are acted on at once. A one-second tick polls the batch
 * system while jobs are pending, and releases workers idle for longer
 * than their pool's idle timeout (those holding the least data that
 * exists nowhere else first), by draining them (wtable.c): their outputs
 * come back before they are told to stop.
 */
#include "pools.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "auth.h"
#include "internal.h"
#include "log.h"
#include "mtls.h"
#include "pools_int.h"
#include "scaler.h"
#include "scheduler.h"
#include "util.h"

#define WHO "pools"
#define TICK_MS 1000
#define PLAN_EVERY_MS 20    /* at most one plan in this long */
#define POLL_EVERY_MS 2000  /* squeue or qstat, while jobs are pending */
#define SUBMITS_AT_ONCE 8   /* a pool's submissions under way at most */
#define FAILS_TO_PAUSE 5    /* submissions failed in a row */
#define PAUSE_MS 60000
#define UNFIT_GRACE_MS 2000 /* after the first pool, before unfit fails */
#define BACKOFF_MS 1000     /* after one failure; doubled for each more */
#define CMD_OUTPUT_MAX 65536
#define ANSWER_MS 120000    /* an external provider's, for a submission */

static const char *const job_states[] = {"submitting", "pending",
					 "connected", "ended"};

struct xy_pools {
	struct xy_manager *m;
	struct pool *pools[XY_POOLS_MAX];
	int n;
	char id[9]; /* this manager's, in every job's name */
	uv_timer_t tick;
	int ticking;
	uint64_t last_plan;
	int64_t last_queue;
	int cmds; /* child commands in flight */
	int unsure; /* an sbatch died: it may have submitted a job unknown */
	struct cmd *cmd_list;
	/* The watchdog (slurm pools): its process and the write end of its
	 * stdin, which only this process holds. */
	uv_process_t wd;
	uv_pipe_t wd_in;
	int wd_live; /* handles of the watchdog not yet closed */
	uint64_t since; /* loop ms of the first pool's adding */
};

/* ----------------------------------------------------------- commands */

struct cmd {
	uv_process_t proc;
	uv_pipe_t out, err;
	struct xy_buf buf; /* stdout, then stderr */
	struct xy_buf ebuf;
	char chunk[4096];
	int64_t status;
	int exited;
	int handles; /* open: the process and the pipes */
	struct xy_pools *ps;
	void (*done)(void *arg, int status, const char *out);
	void *arg;
	struct job *job; /* held while the command runs (prune waits) */
	struct cmd *next, **pprev; /* in ps->cmd_list */
};

static void cmd_closed(uv_handle_t *h)
{
	struct cmd *c = h->data;
	if (--c->handles)
		return;
	xy_buf_put_raw(&c->buf, c->ebuf.data, c->ebuf.len);
	xy_buf_put_u8(&c->buf, 0);
	xy_buf_free(&c->ebuf);
	c->ps->cmds--;
	if (c->next)
		c->next->pprev = c->pprev;
	*c->pprev = c->next;
	if (c->job)
		c->job->cmds--;
	if (c->done)
		c->done(c->arg, (int)c->status,
			c->buf.oom ? "" : (const char *)c->buf.data);
	xy_buf_free(&c->buf);
	free(c);
}

static void cmd_exit(uv_process_t *p, int64_t status, int sig)
{
	struct cmd *c = p->data;
	c->status = sig ? 128 + sig : status;
	c->exited = 1;
	uv_close((uv_handle_t *)p, cmd_closed);
}

static void cmd_alloc(uv_handle_t *h, size_t n, uv_buf_t *b)
{
	struct cmd *c = h->data;
	(void)n;
	*b = uv_buf_init(c->chunk, sizeof c->chunk);
}

static void cmd_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	struct cmd *c = s->data;
	struct xy_buf *to = s == (uv_stream_t *)&c->out ? &c->buf : &c->ebuf;
	if (n > 0 && to->len + (size_t)n < CMD_OUTPUT_MAX)
		xy_buf_put_raw(to, b->base, (size_t)n);
	if (n < 0)
		uv_close((uv_handle_t *)s, cmd_closed);
}

/* Runs argv with env (NULL: this process's) and stdin from /dev/null;
 * done gets its exit status (128 + a signal; -1 if it could not start)
 * and what it wrote to stdout and stderr. 0, or -1 if it did not start
 * (done is then not called). */
static int cmd_run(struct xy_pools *ps, char **argv, char **env,
		   void (*done)(void *, int, const char *), void *arg,
		   struct job *job)
{
	struct cmd *c = calloc(1, sizeof *c);
	if (!c)
		return -1;
	c->ps = ps;
	c->done = done;
	c->arg = arg;
	c->proc.data = c->out.data = c->err.data = c;
	uv_pipe_init(&ps->m->loop, &c->out, 0);
	uv_pipe_init(&ps->m->loop, &c->err, 0);
	uv_stdio_container_t stdio[3] = {
		{.flags = UV_IGNORE},
		{.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE,
		 .data.stream = (uv_stream_t *)&c->out},
		{.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE,
		 .data.stream = (uv_stream_t *)&c->err},
	};
	/* In a session of its own: a ^C meant for the manager must not kill
	 * an sbatch that may have submitted a job already. */
	uv_process_options_t o = {.exit_cb = cmd_exit, .file = argv[0],
				  .args = argv, .env = env, .stdio_count = 3,
				  .stdio = stdio,
				  .flags = UV_PROCESS_DETACHED};
	int rc = uv_spawn(&ps->m->loop, &c->proc, &o);
	ps->cmds++;
	c->next = ps->cmd_list;
	if (c->next)
		c->next->pprev = &c->next;
	c->pprev = &ps->cmd_list;
	ps->cmd_list = c;
	if (rc < 0) {
		XY_LOGW(WHO, "cannot run %s: %s", argv[0], uv_strerror(rc));
		c->handles = 3; /* a failed spawn's handle is closed too */
		c->done = NULL;
		uv_close((uv_handle_t *)&c->proc, cmd_closed);
		uv_close((uv_handle_t *)&c->out, cmd_closed);
		uv_close((uv_handle_t *)&c->err, cmd_closed);
		return -1;
	}
	c->handles = 3;
	if ((c->job = job))
		job->cmds++;
	uv_read_start((uv_stream_t *)&c->out, cmd_alloc, cmd_read);
	uv_read_start((uv_stream_t *)&c->err, cmd_alloc, cmd_read);
	return 0;
}

/* ---------------------------------------------------------------- jobs */

static int count(const struct pool *p, enum job_state s)
{
	int n = 0;
	for (struct job *j = p->jobs; j; j = j->next)
		n += j->state == s && !(s != JOB_CONNECTED && j->cancel);
	return n;
}

static int connected_serving(const struct pool *p)
{
	int n = 0;
	for (struct job *j = p->jobs; j; j = j->next)
		n += j->state == JOB_CONNECTED && j->worker &&
		     !j->worker->draining;
	return n;
}

/* A submission refused, or a job that ended before its worker came: the
 * pool waits 1, 2, 4, then 8 s before it asks again, and after
 * FAILS_TO_PAUSE in a row asks for nothing for PAUSE_MS. */
static void note_failure(struct pool *p, const char *why)
{
	snprintf(p->last_failure, sizeof p->last_failure, "%s", why);
	int pause = ++p->fails < FAILS_TO_PAUSE ? BACKOFF_MS << (p->fails - 1)
						 : PAUSE_MS;
	uint64_t until = uv_now(&p->ps->m->loop) + (uint64_t)pause;
	/* A later failure never shortens a pause; the count goes back to 0
	 * only when a worker connects (xy_pools_worker_ready). */
	if (until > p->paused_until)
		p->paused_until = until;
	snprintf(p->why, sizeof p->why, "paused for %d s after failure %d "
		 "in a row: %.120s", pause / 1000, p->fails, why);
	if (p->fails == FAILS_TO_PAUSE)
		XY_LOGW(WHO, "pool %s: %s", p->conf.name, p->why);
}

static void job_end(struct job *j, const char *why)
{
	if (j->state == JOB_ENDED)
		return;
	struct pool *p = j->pool;
	int never_came = j->state != JOB_CONNECTED;
	j->state = JOB_ENDED;
	p->ended++;
	snprintf(j->why, sizeof j->why, "%s", why);
	if (!j->id[0])
		; /* never submitted: submit_failed says why */
	else if (never_came && !j->cancel) {
		XY_LOGW(WHO, "pool %s: job %s (%s) ended before its worker "
			"connected: %s", p->conf.name, j->id, j->name, why);
		note_failure(p, why);
	} else
		XY_LOGI(WHO, "pool %s: job %s (%s) ended: %s", p->conf.name,
			j->id, j->name, why);
	xy_manager_wake(p->ps->m);
}

/* Ended jobs go, but for the last few (for status). */
static void prune(struct pool *p)
{
	int kept = 0;
	for (struct job **pj = &p->jobs; *pj;) {
		struct job *j = *pj;
		if (j->state == JOB_ENDED && !j->proc_live && !j->cmds &&
		    ++kept > 16) {
			*pj = j->next;
			free(j);
			continue;
		}
		pj = &j->next;
	}
}

static void job_submitted(struct job *j, const char *id)
{
	struct pool *p = j->pool;
	p->in_flight--;
	snprintf(j->id, sizeof j->id, "%s", id);
	if (j->state == JOB_SUBMITTING)
		j->state = JOB_PENDING;
	XY_LOGI(WHO, "pool %s: submitted job %s (%s)", p->conf.name, j->id,
		j->name);
	if (j->cancel && j->state == JOB_PENDING) {
		p->prov->cancel(p, j);
		job_end(j, "cancelled: no queued task needs it");
	}
}

static void submit_failed(struct job *j, const char *why)
{
	struct pool *p = j->pool;
	p->in_flight--;
	XY_LOGW(WHO, "pool %s: submission failed: %s", p->conf.name, why);
	j->cancel = 1;
	job_end(j, why);
	note_failure(p, why);
}

int xy__pools_worker_argv(struct job *j, char *addr, size_t n, char **argv)
{
	struct pool *p = j->pool;
	snprintf(addr, n, "%s:%d", p->host, p->ps->m->port);
	int k = 0;
	argv[k++] = p->xylem;
	argv[k++] = "worker";
	argv[k++] = addr;
	argv[k++] = "--name";
	argv[k++] = j->name;
	argv[k++] = "--connect-timeout";
	argv[k++] = "30";
	argv[k] = NULL;
	return k;
}

/* ------------------------------------------------------- local provider */

static char **secret_env(struct xy_manager *m);
static void free_env(char **env);

static void local_closed(uv_handle_t *h)
{
	struct job *j = h->data;
	j->proc_live = 0;
}

static void local_exit(uv_process_t *proc, int64_t status, int sig)
{
	struct job *j = proc->data;
	char why[64];
	snprintf(why, sizeof why, sig ? "the worker died of signal %d"
				       : "the worker exited %d",
		 sig ? sig : (int)status);
	job_end(j, why);
	uv_close((uv_handle_t *)proc, local_closed);
}

/* A local pool's walltime is its worker's --walltime (a batch job's
 * comes from the job): the worker drains itself before it, as one in a
 * Slurm job would. Returns the next free index of argv. */
static int local_walltime(struct pool *p, char **argv, int k, char *buf)
{
	if (p->walltime <= 0)
		return k;
	snprintf(buf, 32, "%.0f", p->walltime);
	argv[k++] = "--walltime";
	argv[k++] = buf;
	return k;
}

static int local_submit(struct pool *p, struct job *j)
{
	char addr[300], cores[16], mem[24], gpus[16], wall[32];
	char *argv[20];
	int k = xy__pools_worker_argv(j, addr, sizeof addr, argv);
	snprintf(cores, sizeof cores, "%d", p->conf.node.cores);
	argv[k++] = "--cores";
	argv[k++] = cores;
	if (p->conf.node.memory) {
		snprintf(mem, sizeof mem, "%lld",
			 (long long)p->conf.node.memory);
		argv[k++] = "--memory";
		argv[k++] = mem;
	}
	snprintf(gpus, sizeof gpus, "%d", p->conf.node.gpus);
	argv[k++] = "--gpus";
	argv[k++] = gpus;
	k = local_walltime(p, argv, k, wall);
	argv[k] = NULL;
	uv_stdio_container_t stdio[3] = {{.flags = UV_IGNORE},
					 {.flags = UV_INHERIT_FD},
					 {.flags = UV_INHERIT_FD}};
	stdio[1].data.fd = 1;
	stdio[2].data.fd = 2;
	char **env = secret_env(p->ps->m);
	uv_process_options_t o = {.exit_cb = local_exit, .file = argv[0],
				  .args = argv, .env = env, .stdio_count = 3,
				  .stdio = stdio};
	j->proc.data = j;
	int rc = env ? uv_spawn(&p->ps->m->loop, &j->proc, &o) : UV_ENOMEM;
	free_env(env);
	if (rc < 0) {
		char why[300];
		if (env) { /* a failed spawn's handle is closed too */
			j->proc_live = 1; /* until it is */
			uv_close((uv_handle_t *)&j->proc, local_closed);
		}
		snprintf(why, sizeof why, "cannot start %s: %s", argv[0],
			 uv_strerror(rc));
		submit_failed(j, why);
		return -1;
	}
	j->proc_live = 1;
	char id[24];
	snprintf(id, sizeof id, "%d", j->proc.pid);
	job_submitted(j, id);
	return 0;
}

static void local_cancel(struct pool *p, struct job *j)
{
	(void)p;
	if (j->proc_live)
		uv_process_kill(&j->proc, SIGTERM);
}

static const struct provider local_provider = {"local", local_submit, NULL,
					       local_cancel};

/* ---------------------------------------- batch systems' commands */

/* The job's environment: this process's, with the secret (the worker
 * reads XYLEM_SECRET; sbatch passes the environment on) and the TLS
 * choice (XYLEM_TLS_CA, or XYLEM_NO_TLS). */
static char **secret_env(struct xy_manager *m)
{
	extern char **environ;
	size_t n = 0;
	while (environ[n])
		n++;
	char **env = calloc(n + 3, sizeof *env);
	if (!env)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "XYLEM_SECRET=", 13) &&
		    strncmp(environ[i], "XYLEM_TLS_CA=", 13) &&
		    strncmp(environ[i], "XYLEM_NO_TLS=", 13))
			env[k++] = environ[i];
	env[k++] = (char *)xy_mtls_env(m->mtls); /* not freed: m owns it */
	size_t len = 13 + m->secret_len + 1;
	char *s = malloc(len);
	if (!s) {
		free(env);
		return NULL;
	}
	memcpy(s, "XYLEM_SECRET=", 13);
	memcpy(s + 13, m->secret, m->secret_len);
	s[len - 1] = 0;
	env[k] = s;
	return env;
}

static void free_env(char **env)
{
	if (!env)
		return;
	size_t k = 0;
	while (env[k + 1])
		k++;
	free(env[k]);
	free(env);
}

static void submit_next(struct pool *p);

/* The helpers that pools_slurm.c and pools_gridengine.c share
 * (pools_int.h says each one's contract). */

void xy__pools_job_end(struct job *j, const char *why)
{
	job_end(j, why);
}

void xy__pools_submit_failed(struct job *j, const char *why)
{
	submit_failed(j, why);
}

void xy__pools_log_path(const struct job *j, char *buf, size_t n)
{
	buf[0] = 0;
	if (j->pool->log_dir)
		snprintf(buf, n, "%s/%s.log", j->pool->log_dir, j->name);
}

void xy__pools_last_line(const char *text, char *buf, size_t n)
{
	const char *best = NULL;
	size_t best_len = 0;
	for (const char *at = text; *at;) {
		size_t len = strcspn(at, "\n");
		if (strspn(at, " \t") < len) {
			best = at;
			best_len = len;
		}
		at += len + (at[len] == '\n');
	}
	snprintf(buf, n, "%.*s", best ? (int)(best_len < n ? best_len : n - 1)
				       : 0, best ? best : "");
}

int xy__pools_submit_run(struct pool *p, struct job *j, char **argv,
			 void (*done)(void *job, int status, const char *out))
{
	char **env = secret_env(p->ps->m);
	int rc = env ? cmd_run(p->ps, argv, env, done, j, j) : -1;
	free_env(env);
	if (rc < 0) {
		char why[64];
		snprintf(why, sizeof why, "cannot run %s", argv[0]);
		submit_failed(j, why);
		return -1;
	}
	return 0;
}

void xy__pools_submit_answer(struct job *j, const char *cmd, int status,
			     const char *out, const char *id,
			     const char *skip)
{
	struct pool *p = j->pool;
	if (id[0]) {
		job_submitted(j, id);
		submit_next(p);
		return;
	}
	if (status >= 128)
		p->ps->unsure = 1;
	/* The command's own words, its lines joined. */
	char why[400];
	int at = snprintf(why, sizeof why, "%s exited %d:", cmd, status);
	const char *sep = " ";
	for (const char *l = out; *l && at < (int)sizeof why - 1;) {
		size_t len = strcspn(l, "\n");
		if (len && !(skip && !strncmp(l, skip, len))) {
			at += snprintf(why + at, sizeof why - at, "%s%.*s", sep,
				       (int)len, l);
			sep = "; ";
		}
		l += len + (l[len] == '\n');
	}
	submit_failed(j, why);
	submit_next(p);
}

void xy__pools_poll_run(struct pool *p, char **argv,
			void (*done)(void *pool, int status, const char *out))
{
	if (p->polling)
		return;
	p->polling = 1;
	if (cmd_run(p->ps, argv, NULL, done, p, NULL) < 0)
		p->polling = 0;
}

void xy__pools_poll_answer(struct pool *p, const char *cmd, int status,
			   const char *out,
			   int (*find)(const char *out, const char *id,
				       char *state, size_t n),
			   void (*listed)(struct job *j),
			   void (*gone)(struct job *j))
{
	p->polling = 0;
	if (status != 0) {
		XY_LOGW(WHO, "pool %s: %s exited %d: %.200s", p->conf.name,
			cmd, status, out);
		return;
	}
	for (struct job *j = p->jobs; j; j = j->next) {
		char state[sizeof j->batch_state];
		if (j->state != JOB_PENDING || !j->id[0] || j->inquest)
			continue;
		if (find(out, j->id, state, sizeof state)) {
			snprintf(j->batch_state, sizeof j->batch_state, "%s",
				 state);
			if (listed)
				listed(j);
		} else if (j->cancel)
			job_end(j, "cancelled");
		else
			gone(j);
	}
}

void xy__pools_inquest_run(struct job *j, char **argv,
			   void (*done)(void *job, int status,
					const char *out))
{
	j->inquest = 1;
	if (cmd_run(j->pool->ps, argv, NULL, done, j, j) < 0) {
		j->inquest = 0;
		job_end(j, "left the queue");
	}
}

static void cancel_done(void *arg, int status, const char *out)
{
	if (status != 0)
		XY_LOGW(WHO, "%s exited %d: %.200s", (const char *)arg, status,
			out);
}

void xy__pools_cancel(struct pool *p, struct job *j, char *cmd)
{
	char *argv[] = {cmd, j->id, NULL};
	XY_LOGI(WHO, "pool %s: cancelling job %s (%s)", p->conf.name, j->id,
		j->name);
	cmd_run(p->ps, argv, NULL, cancel_done, cmd, NULL);
}

/* ---------------------------------------------------- external provider */

/* The application submits (Python's pools: a Parsl ExecutionProvider),
 * and answers with xy_pools_job_answer; it also says when a job ends. */
static int external_submit(struct pool *p, struct job *j)
{
	j->asked = uv_now(&p->ps->m->loop);
	p->hook_submit(p->hook_arg, p->conf.name, j->name);
	return 0;
}

/* Submissions the application has not answered in ANSWER_MS fail (a
 * provider stuck, or a program that never answers): else eight of them
 * would stop the pool for good. A late id is then cancelled
 * (xy_pools_job_answer says the job is gone). */
static void external_overdue(struct pool *p, uint64_t now)
{
	for (struct job *j = p->jobs; j; j = j->next)
		if (j->state == JOB_SUBMITTING && !j->queued && j->asked &&
		    now - j->asked > ANSWER_MS)
			submit_failed(j, "the provider did not answer in 120 s");
}

static void external_cancel(struct pool *p, struct job *j)
{
	XY_LOGI(WHO, "pool %s: cancelling job %s (%s)", p->conf.name, j->id,
		j->name);
	p->hook_cancel(p->hook_arg, p->conf.name, j->name, j->id);
}

static const struct provider external_provider = {"external",
						  external_submit, NULL,
						  external_cancel};

static struct job *job_named(struct xy_pools *ps, const char *name);

int xy_pools_job_answer(struct xy_pools *ps, const char *name, const char *id,
			const char *why)
{
	struct job *j = ps && name ? job_named(ps, name) : NULL;
	if (!j || j->pool->prov != &external_provider)
		return -1;
	if (j->state == JOB_SUBMITTING && id && *id)
		job_submitted(j, id);
	else if (j->state == JOB_SUBMITTING)
		submit_failed(j, why && *why ? why : "the provider refused it");
	else if (id && *id && !j->id[0])
		return -1; /* given up on before its id came: cancel it */
	else if (why && *why)
		job_end(j, why); /* nothing if it had ended already */
	return 0;
}
/* --------------------------------------------------------------- plan */

/* Starts the oldest waiting submissions, SUBMITS_AT_ONCE at most under
 * way: a burst's hundred jobs are not a hundred sbatch at once. Called
 * when one is asked for and when one ends (never from within one). */
static void submit_next(struct pool *p)
{
	if (uv_now(&p->ps->m->loop) < p->paused_until)
		return; /* the tick tries again */
	while (p->in_flight < SUBMITS_AT_ONCE) {
		struct job *oldest = NULL;
		for (struct job *j = p->jobs; j; j = j->next)
			if (j->queued)
				oldest = j;
		if (!oldest)
			return;
		oldest->queued = 0;
		p->in_flight++;
		p->prov->submit(p, oldest);
	}
}

static void submit_one(struct pool *p)
{
	struct job *j = calloc(1, sizeof *j);
	if (!j)
		return;
	j->pool = p;
	snprintf(j->name, sizeof j->name, "xy-%s-%s-%llu", p->ps->id,
		 p->conf.name, (unsigned long long)++p->seq);
	j->state = JOB_SUBMITTING;
	j->queued = 1;
	j->next = p->jobs;
	p->jobs = j;
	p->submitted++;
}

/* Cancels up to n pending jobs, the newest first. */
static void cancel_pending(struct pool *p, int n)
{
	for (struct job *j = p->jobs; j && n > 0; j = j->next) {
		if (j->cancel || j->inquest || (j->state != JOB_PENDING &&
					       j->state != JOB_SUBMITTING))
			continue;
		j->cancel = 1;
		n--;
		if (j->state == JOB_PENDING)
			p->prov->cancel(p, j);
		if (j->state == JOB_PENDING || j->queued) {
			j->queued = 0;
			job_end(j, "cancelled: no queued task needs it");
		}
	}
}

/* 1 if a pool's node or a connected worker (started with the run, or
 * by hand) could run a task asking need. */
static int could_run(struct xy_pools *ps, const struct xy_res *need)
{
	for (int i = 0; i < ps->n; i++)
		if (xy_res_fits(&ps->pools[i]->conf.node, need))
			return 1;
	for (struct xy_worker *w = xy_wtable_all(ps->m->wtable); w;
	     w = w->next) {
		struct xy_res have = {w->cores, w->gpus, w->memory, w->disk, 0};
		if (w->ready && xy_res_fits(&have, need) &&
		    xy_wtable_has_time(w, need->time))
			return 1;
	}
	return 0;
}

/* Why no pool can run t: what it asks, and each pool's node and
 * walltime (the walltime, and t's time limit, only where some pool or
 * t has one, so that the message stays as it was without them). */
static void unfit_why(struct xy_pools *ps, const struct xy_task *t,
		      char *why, size_t n)
{
	int timed = t->time_limit > 0;
	for (int i = 0; i < ps->n; i++)
		timed |= ps->pools[i]->conf.node.time > 0;
	int at = snprintf(why, n, "no pool can run it: it asks for %d cores, "
			  "%d GPUs, %lld MB memory", t->cores, t->gpus,
			  (long long)t->memory);
	if (timed && at < (int)n)
		at += t->time_limit > 0
			      ? snprintf(why + at, n - at, ", %g s (time "
					 "limit)", t->time_limit)
			      : snprintf(why + at, n - at, ", no time limit");
	if (at < (int)n)
		at += snprintf(why + at, n - at, "; the pools offer");
	for (int i = 0; i < ps->n && at < (int)n; i++) {
		const struct xy_res *r = &ps->pools[i]->conf.node;
		at += snprintf(why + at, n - at, "%s %s: %d cores, %d GPUs, "
			       "%lld MB", i ? ";" : "", ps->pools[i]->conf.name,
			       r->cores, r->gpus, (long long)r->memory);
		if (timed && at < (int)n)
			at += r->time > 0
				      ? snprintf(why + at, n - at, ", walltime "
						 "%g s", r->time)
				      : snprintf(why + at, n - at,
						 ", no walltime");
	}
	if (timed && at < (int)n)
		snprintf(why + at, n - at, " (a walltime must exceed a time "
			 "limit by %g s)", XY_WALLTIME_SLACK_S);
}

/* Fails the tasks of a shape whose largest no pool fits that nothing
 * could ever run, naming what they ask and the pools' nodes; the others
 * of the shape (it spans a power of two of memory) stay, and the shape
 * is sized by them again. */
static void fail_unfit(struct xy_pools *ps, const struct xy_demand *d)
{
	struct xy_task **tasks;
	size_t n = xy_sched_shape_tasks(ps->m->sched, d->shape, &tasks);
	struct xy_res last = {-1, 0, 0, 0, 0};
	int last_fits = 0;
	for (size_t k = 0; k < n; k++) {
		struct xy_task *t = tasks[k];
		struct xy_res need = {t->cores, t->gpus, t->memory, t->disk,
				      t->time_limit};
		if (memcmp(&need, &last, sizeof need)) {
			last = need;
			last_fits = could_run(ps, &need);
		}
		if (last_fits)
			continue;
		char why[1024];
		unfit_why(ps, t, why, sizeof why);
		XY_LOGW(WHO, "task %llu: %s", (unsigned long long)t->id, why);
		xy_manager_task_fail(ps->m, t, XY_RESULT_UNSCHEDULABLE, why);
	}
	free(tasks);
	xy_sched_shape_refit(ps->m->sched, d->shape);
}

void xy_pools_phase(struct xy_pools *ps)
{
	if (!ps || !ps->n || ps->m->destroying)
		return;
	uint64_t now = uv_now(&ps->m->loop);
	int64_t queued = xy_sched_count(ps->m->sched);
	if (now - ps->last_plan < PLAN_EVERY_MS && queued == ps->last_queue)
		return;
	ps->last_plan = now;
	ps->last_queue = queued;

	struct xy_pool conf[XY_POOLS_MAX];
	struct xy_pool_count counts[XY_POOLS_MAX];
	for (int i = 0; i < ps->n; i++) {
		struct pool *p = ps->pools[i];
		conf[i] = p->conf;
		counts[i].connected = connected_serving(p);
		counts[i].pending = count(p, JOB_SUBMITTING) +
				    count(p, JOB_PENDING);
		if (now < p->paused_until)
			conf[i].backlog = 0; /* no new jobs while paused */
	}
	struct xy_demand stack[64], *d = stack;
	size_t n = xy_sched_demand(ps->m->sched, d, 64);
	if (n > 64) {
		d = malloc(n * sizeof *d);
		if (!d)
			return;
		n = xy_sched_demand(ps->m->sched, d, n);
	}
	struct xy_plan plan;
	if (xy_scaler_plan(conf, counts, ps->n, d, n, &plan) == 0) {
		/* Workers a run starts beside its pools connect in its
		 * first moments: what they could run is not failed before. */
		for (size_t u = 0; u < plan.n_unfit &&
				   now - ps->since >= UNFIT_GRACE_MS; u++)
			fail_unfit(ps, &d[plan.unfit[u]]);
		for (int i = 0; i < ps->n; i++) {
			struct pool *p = ps->pools[i];
			if (now >= p->paused_until)
				snprintf(p->why, sizeof p->why, "%s",
					 plan.why[i]);
			for (int k = 0; k < plan.submit[i]; k++)
				submit_one(p);
			submit_next(p);
			cancel_pending(p, plan.cancel[i]);
		}
	}
	if (d != stack)
		free(d);
}

/* --------------------------------------------------------------- tick */

/* Bytes of the objects w holds that exist nowhere else. */
static uint64_t unique_bytes(const struct xy_worker *w)
{
	uint64_t b = 0;
	for (uint32_t i = 0; i < w->n_held; i++) {
		const struct xy_object *o = w->held[i];
		if (o->n_replicas <= 1 && !o->on_manager)
			b += o->size;
	}
	return b;
}

/* Releases the workers idle for longer than the pool's idle timeout,
 * down to its minimum, those with the least unique data first. */
static void release_idle(struct pool *p, uint64_t now)
{
	int serving = connected_serving(p);
	for (;;) {
		struct job *best = NULL;
		uint64_t best_bytes = 0;
		for (struct job *j = p->jobs; j; j = j->next) {
			struct xy_worker *w = j->worker;
			if (j->state != JOB_CONNECTED || !w || w->draining)
				continue;
			/* Idle since its last task ended (wtable.c stamps
			 * last_busy), however short the tasks between
			 * ticks. */
			if (w->n_running > 0 || !w->ready ||
			    now - w->last_busy < p->idle_timeout * 1000)
				continue;
			uint64_t b = unique_bytes(w);
			if (!best || b < best_bytes) {
				best = j;
				best_bytes = b;
			}
		}
		if (!best || serving <= p->conf.min_workers)
			return;
		struct xy_worker *w = best->worker;
		XY_LOGI(WHO, "pool %s: releasing %s, idle for %.0f s",
			p->conf.name, w->name, (now - w->last_busy) / 1e3);
		xy_wtable_drain(p->ps->m->wtable, w);
		serving--;
	}
}

static void on_tick(uv_timer_t *h)
{
	struct xy_pools *ps = h->data;
	uint64_t now = uv_now(&ps->m->loop);
	if (ps->m->destroying)
		return; /* xy_pools_destroy runs the loop: nothing new */
	for (int i = 0; i < ps->n; i++) {
		struct pool *p = ps->pools[i];
		release_idle(p, now);
		if (p->prov == &external_provider)
			external_overdue(p, now);
		if (p->prov->poll && count(p, JOB_PENDING) &&
		    now - p->last_poll >= POLL_EVERY_MS) {
			p->last_poll = now;
			p->prov->poll(p);
		}
		prune(p);
	}
	/* Demand that did not change is planned again now and then: a
	 * pause may have ended, or a job ended. */
	ps->last_plan = 0;
	xy_pools_phase(ps);
}

/* ------------------------------------------------------------ workers */

static struct job *job_named(struct xy_pools *ps, const char *name)
{
	if (!name || strncmp(name, "xy-", 3) || strncmp(name + 3, ps->id, 8))
		return NULL;
	for (int i = 0; i < ps->n; i++)
		for (struct job *j = ps->pools[i]->jobs; j; j = j->next)
			if (!strcmp(j->name, name))
				return j;
	return NULL;
}

/*
 * A fresh worker of p says how much time it has: that, not a walltime p
 * was not told (the partition's) or one its start-up ate into, is what
 * p's next workers will have for tasks. The plan then stops asking for
 * jobs that could not take a task whose limit is too long (it asked
 * again each time the last such worker went idle), and such a task
 * fails as unschedulable. The most time any of p's workers reported
 * counts, never more than p's walltime.
 */
static void learn_time(struct pool *p, struct xy_worker *w)
{
	double left = xy_wtable_time_left(w);
	if (left < 0)
		return; /* no end */
	/* xy_res_fits wants the slack on top of a task's limit, and
	 * placement XY_TIME_MARGIN_S: a node time of this fits a limit
	 * exactly when the worker could take the task. */
	double node = left - XY_TIME_MARGIN_S + XY_WALLTIME_SLACK_S;
	if (node > p->seen_time)
		p->seen_time = node;
	p->conf.node.time = p->walltime > 0 && p->walltime < p->seen_time
				    ? p->walltime
				    : p->seen_time;
}

void xy_pools_worker_ready(struct xy_pools *ps, struct xy_worker *w)
{
	struct job *j = ps ? job_named(ps, w->name) : NULL;
	if (!j || j->state == JOB_ENDED)
		return;
	j->state = JOB_CONNECTED;
	if (j->pool->prov == &xy__pools_slurm) /* its worker runs: so does it */
		snprintf(j->batch_state, sizeof j->batch_state, "RUNNING");
	else if (j->pool->prov == &xy__pools_gridengine)
		snprintf(j->batch_state, sizeof j->batch_state, "r");
	j->worker = w;
	j->cancel = 0;
	j->pool->fails = 0;
	XY_LOGI(WHO, "pool %s: job %s's worker %s connected", j->pool->conf.name,
		j->id, w->name);
	learn_time(j->pool, w);
}

void xy_pools_worker_gone(struct xy_pools *ps, struct xy_worker *w)
{
	if (!ps)
		return;
	for (int i = 0; i < ps->n; i++)
		for (struct job *j = ps->pools[i]->jobs; j; j = j->next)
			if (j->worker == w) {
				j->worker = NULL;
				job_end(j, "its worker disconnected");
			}
}

/* ------------------------------------------------------------ watchdog */

/*
 * A manager killed with SIGKILL (or dead of a crash) cancels none of its
 * jobs, and one still pending would start later for nobody. Its watchdog
 * does: a shell started with the first slurm or gridengine pool, in a
 * session of its own (a ^C to the manager's process group does not
 * reach it), deaf to INT, TERM and HUP, reading its stdin: each pool's
 * provider, a line, as pools are added. The other end of that pipe is
 * this process's alone: libuv opens it close-on-exec, so neither the
 * batch system's commands nor local workers hold it. A clean end writes
 * "done" and the watchdog exits; any other end of this process closes
 * the pipe, the read sees end-of-file, and the watchdog cancels every
 * job of this user whose name starts with xy-<id>- (every job of this
 * manager) in each batch system it was told of, then once more 3 s
 * later, for an sbatch or qsub that was in flight. scancel --name
 * matches whole names only, hence squeue and a filter; Grid Engine's
 * qdel takes a name pattern.
 * Only async-signal-safe work happens in this process: libuv forks and
 * execs /bin/sh.
 */
static const char watchdog_sh[] =
	"trap '' INT TERM HUP\n"
	"slurm= ge=\n"
	"while read -r said; do\n"
	"	case $said in\n"
	"	done) exit 0;;\n"
	"	slurm) slurm=1;;\n"
	"	gridengine) ge=1;;\n"
	"	esac\n"
	"done\n"
	"for pause in 0 3; do\n"
	"	sleep $pause\n"
	"	if [ -n \"$ge\" ] && qdel -u \"$(id -un)\" \"$1*\" \\\n"
	"		>/dev/null 2>&1; then\n"
	"		echo \"xylem-watchdog: manager gone, deleted its Grid\" \\\n"
	"			\"Engine jobs $1*\" >&2\n"
	"	fi\n"
	"	[ -z \"$slurm\" ] && continue\n"
	"	ids=$(squeue -h -o '%i %j' -u \"$(id -u)\" |\n"
	"		while read -r id name; do\n"
	"			case $name in \"$1\"*) echo \"$id\";; esac\n"
	"		done)\n"
	"	[ -z \"$ids\" ] && continue\n"
	"	echo \"xylem-watchdog: manager gone, cancelling\" $ids >&2\n"
	"	scancel $ids\n"
	"done\n";

static void watchdog_closed(uv_handle_t *h)
{
	struct xy_pools *ps = h->data;
	ps->wd_live--;
}

static void watchdog_exit(uv_process_t *proc, int64_t status, int sig)
{
	struct xy_pools *ps = proc->data;
	if (!ps->m->destroying)
		XY_LOGW(WHO, "the watchdog ended (status %d, signal %d): the "
			"jobs of this manager would be left behind if it were "
			"killed", (int)status, sig);
	uv_close((uv_handle_t *)proc, watchdog_closed);
}

static void watchdog_spawn(struct xy_pools *ps);

/* Starts the watchdog, once, and tells it which batch system's jobs to
 * sweep (a line "slurm" or "gridengine" each); a failure is logged, not
 * fatal. */
static void watchdog_start(struct xy_pools *ps, const char *provider)
{
	if (!ps->wd_live)
		watchdog_spawn(ps);
	if (!ps->wd_live || uv_is_closing((uv_handle_t *)&ps->wd_in))
		return;
	char line[32];
	int n = snprintf(line, sizeof line, "%s\n", provider);
	uv_buf_t b = uv_buf_init(line, (unsigned)n);
	if (uv_try_write((uv_stream_t *)&ps->wd_in, &b, 1) != n)
		XY_LOGW(WHO, "cannot tell the watchdog of %s's jobs: if this "
			"manager is killed, they are left behind", provider);
}

static void watchdog_spawn(struct xy_pools *ps)
{
	char prefix[16];
	snprintf(prefix, sizeof prefix, "xy-%s-", ps->id);
	char *argv[] = {"/bin/sh", "-c", (char *)watchdog_sh,
			"xylem-watchdog", prefix, NULL};
	uv_pipe_init(&ps->m->loop, &ps->wd_in, 0);
	ps->wd_in.data = ps->wd.data = ps;
	uv_stdio_container_t stdio[3] = {
		{.flags = UV_CREATE_PIPE | UV_READABLE_PIPE,
		 .data.stream = (uv_stream_t *)&ps->wd_in},
		{.flags = UV_IGNORE},
		{.flags = UV_INHERIT_FD, .data.fd = 2},
	};
	uv_process_options_t o = {.exit_cb = watchdog_exit, .file = argv[0],
				  .args = argv, .stdio_count = 3,
				  .stdio = stdio,
				  .flags = UV_PROCESS_DETACHED};
	int rc = uv_spawn(&ps->m->loop, &ps->wd, &o);
	ps->wd_live = 2;
	if (rc < 0) {
		XY_LOGW(WHO, "cannot start the watchdog (%s): if this manager "
			"is killed, its jobs are left behind", uv_strerror(rc));
		uv_close((uv_handle_t *)&ps->wd, watchdog_closed);
		uv_close((uv_handle_t *)&ps->wd_in, watchdog_closed);
		return;
	}
	uv_unref((uv_handle_t *)&ps->wd);
	XY_LOGI(WHO, "watchdog %d: cancels the jobs %s* if this manager dies",
		ps->wd.pid, prefix);
}

/* The clean end: a settled manager (no job left to cancel) tells the
 * watchdog so, and it exits; otherwise it sweeps, on its own. */
static void watchdog_stop(struct xy_pools *ps, int settled)
{
	if (!ps->wd_live || uv_is_closing((uv_handle_t *)&ps->wd_in))
		return;
	if (settled) {
		uv_buf_t b = uv_buf_init("done\n", 5);
		uv_try_write((uv_stream_t *)&ps->wd_in, &b, 1);
	} else if (!uv_is_closing((uv_handle_t *)&ps->wd))
		uv_close((uv_handle_t *)&ps->wd, watchdog_closed);
	uv_close((uv_handle_t *)&ps->wd_in, watchdog_closed);
}

/* --------------------------------------------------------- lifecycle */

struct xy_pools *xy_pools_create(struct xy_manager *m)
{
	struct xy_pools *ps = calloc(1, sizeof *ps);
	if (!ps)
		return NULL;
	ps->m = m;
	uint8_t r[4];
	if (xy_random(r, sizeof r) < 0)
		memset(r, 0, sizeof r);
	snprintf(ps->id, sizeof ps->id, "%02x%02x%02x%02x", r[0], r[1], r[2],
		 r[3]);
	return ps;
}

static void pool_free(struct pool *p)
{
	struct job *j, *n;
	for (j = p->jobs; j; j = n) {
		n = j->next;
		free(j);
	}
	free(p->partition);
	free(p->xylem);
	free(p->host);
	free(p->log_dir);
	for (int i = 0; p->extra && p->extra[i]; i++)
		free(p->extra[i]);
	free(p->extra);
	free(p);
}

/* Children of ps still to come back: commands and local workers. */
static int live(const struct xy_pools *ps)
{
	int n = ps->cmds;
	for (int i = 0; i < ps->n; i++)
		for (const struct job *j = ps->pools[i]->jobs; j; j = j->next)
			n += j->proc_live;
	return n;
}

/* Runs the loop until ps has no child (with all, the watchdog too) or
 * for at most ms; the tick wakes the loop at least once a second. */
static void wait_children(struct xy_pools *ps, int ms, int all)
{
	uint64_t end = xy_mono_us() + (uint64_t)ms * 1000;
	while ((live(ps) || (all && ps->wd_live)) && xy_mono_us() < end)
		uv_run(&ps->m->loop, UV_RUN_ONCE);
}

static void kill_children(struct xy_pools *ps)
{
	for (struct cmd *c = ps->cmd_list; c; c = c->next) {
		if (!c->exited && !uv_is_closing((uv_handle_t *)&c->proc))
			uv_process_kill(&c->proc, SIGKILL);
		/* A child of its own (a wrapper's background job) may hold
		 * the pipes open: they are not waited for. */
		if (!uv_is_closing((uv_handle_t *)&c->out))
			uv_close((uv_handle_t *)&c->out, cmd_closed);
		if (!uv_is_closing((uv_handle_t *)&c->err))
			uv_close((uv_handle_t *)&c->err, cmd_closed);
	}
	for (int i = 0; i < ps->n; i++)
		for (struct job *j = ps->pools[i]->jobs; j; j = j->next)
			if (j->proc_live &&
			    !uv_is_closing((uv_handle_t *)&j->proc))
				uv_process_kill(&j->proc, SIGKILL);
}

static void tick_closed(uv_handle_t *h)
{
	struct xy_pools *ps = h->data;
	ps->ticking = 0;
}

void xy_pools_destroy(struct xy_pools *ps)
{
	if (!ps)
		return;
	/* Jobs whose workers have not come are cancelled: those pending
	 * now, and those being submitted once their id comes back. */
	for (int i = 0; i < ps->n; i++) {
		struct pool *p = ps->pools[i];
		for (struct job *j = p->jobs; j; j = j->next) {
			if (j->state == JOB_PENDING && !j->cancel)
				p->prov->cancel(p, j);
			if (j->state == JOB_PENDING ||
			    j->state == JOB_SUBMITTING)
				j->cancel = 1;
			if (j->queued) {
				j->queued = 0;
				job_end(j, "cancelled: the manager is stopping");
			}
		}
	}
	/* The commands in flight are let finish (a few seconds at most);
	 * if they do not, they are killed, and an sbatch killed may have
	 * submitted a job: the watchdog is then left to sweep, as it is
	 * if an sbatch died earlier. */
	wait_children(ps, 5000, 0);
	int settled = !live(ps) && !ps->unsure;
	if (live(ps)) {
		XY_LOGW(WHO, "%d commands or workers still running after 5 s:"
			" killed", live(ps));
		kill_children(ps);
	}
	watchdog_stop(ps, settled);
	wait_children(ps, 2000, 1);
	if (ps->ticking) {
		uv_close((uv_handle_t *)&ps->tick, tick_closed);
		while (ps->ticking) /* a closing handle: the loop won't wait */
			uv_run(&ps->m->loop, UV_RUN_ONCE);
	}
	if (live(ps) || ps->wd_live) {
		/* Cannot happen short of a process that ignores SIGKILL: its
		 * handles' memory must outlive them, so it is left. */
		XY_LOGE(WHO, "children of the pools did not exit; their memory"
			" is left allocated");
		for (struct cmd *c = ps->cmd_list; c; c = c->next)
			c->done = NULL;
		return;
	}
	for (int i = 0; i < ps->n; i++)
		pool_free(ps->pools[i]);
	free(ps);
}

int xy_pools_count(const struct xy_pools *ps)
{
	return ps ? ps->n : 0;
}

static int name_ok(const char *s)
{
	if (!s || !*s || strlen(s) > 32)
		return 0;
	for (; *s; s++)
		if (!(*s == '-' || *s == '_' || (*s >= '0' && *s <= '9') ||
		      (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
			return 0;
	return 1;
}

static char *dup_or_null(const char *s, int *oom)
{
	char *d = s ? strdup(s) : NULL;
	if (s && !d)
		*oom = 1;
	return d;
}

int xy_pools_add(struct xy_pools *ps, const struct xy_pool_options *o,
		 char *err, size_t errlen)
{
	const struct provider *prov = NULL;
	if (!o->provider || !strcmp(o->provider, "local"))
		prov = &local_provider;
	else if (!strcmp(o->provider, "slurm"))
		prov = &xy__pools_slurm;
	else if (!strcmp(o->provider, "external"))
		prov = &external_provider;
	else if (!strcmp(o->provider, "gridengine"))
		prov = &xy__pools_gridengine;
	if (!name_ok(o->name))
		return xy_fail(err, errlen, EINVAL, "pool name '%s': 1 to 32 "
			       "letters, digits, '-' or '_'",
			       o->name ? o->name : "");
	for (int i = 0; i < ps->n; i++)
		if (!strcmp(ps->pools[i]->conf.name, o->name))
			return xy_fail(err, errlen, EINVAL, "pool '%s' twice",
				       o->name);
	if (!prov)
		return xy_fail(err, errlen, EINVAL, "pool %s: unknown provider"
			       " '%s' (local, slurm, gridengine or external)",
			       o->name, o->provider);
	if (prov == &external_provider && (!o->submit || !o->cancel))
		return xy_fail(err, errlen, EINVAL, "pool %s: an external "
			       "provider needs submit and cancel hooks",
			       o->name);
	if (ps->n == XY_POOLS_MAX)
		return xy_fail(err, errlen, EINVAL, "at most %d pools",
			       XY_POOLS_MAX);
	if (!isfinite(o->walltime_s) || !isfinite(o->idle_timeout_s) ||
	    o->cores < 1 || o->gpus < 0 || o->memory_mb < 0 ||
	    o->disk_mb < 0 || o->min_workers < 0 || o->max_workers < 0 ||
	    o->backlog < 0 || o->backlog > XY_POOL_BACKLOG_MAX ||
	    o->walltime_s < 0 || o->idle_timeout_s < 0 ||
	    (o->max_workers && o->min_workers > o->max_workers))
		return xy_fail(err, errlen, EINVAL, "pool %s: cores must be at"
			       " least 1, no count or time negative or not "
			       "finite, the backlog at most %d, and "
			       "min_workers at most max_workers", o->name,
			       XY_POOL_BACKLOG_MAX);
	struct pool *p = calloc(1, sizeof *p);
	if (!p)
		return xy_fail(err, errlen, ENOMEM, "out of memory");
	p->ps = ps;
	p->prov = prov;
	snprintf(p->conf.name, sizeof p->conf.name, "%s", o->name);
	p->conf.node = (struct xy_res){o->cores, o->gpus, o->memory_mb,
				       o->disk_mb, 0};
	p->conf.min_workers = o->min_workers;
	p->conf.max_workers = o->max_workers;
	p->conf.backlog = o->backlog ? o->backlog : 4;
	p->conf.priority = o->priority;
	p->walltime = o->walltime_s;
	p->hook_submit = o->submit;
	p->hook_cancel = o->cancel;
	p->hook_arg = o->hook_arg;
	p->conf.node.time = p->walltime; /* its workers' time (scaler.h) */
	p->idle_timeout = o->idle_timeout_s ? o->idle_timeout_s : 60;
	int oom = 0;
	p->partition = dup_or_null(o->partition, &oom);
	p->xylem = dup_or_null(o->xylem ? o->xylem : "xylem", &oom);
	p->log_dir = dup_or_null(o->log_dir, &oom);
	/* Local workers are on this host; a batch system's, elsewhere. */
	char self[256] = "127.0.0.1";
	if (prov != &local_provider && gethostname(self, sizeof self) < 0)
		snprintf(self, sizeof self, "127.0.0.1");
	self[sizeof self - 1] = 0;
	p->host = dup_or_null(o->manager_host ? o->manager_host : self, &oom);
	size_t n_extra = 0;
	while (o->extra_args && o->extra_args[n_extra])
		n_extra++;
	p->extra = calloc(n_extra + 1, sizeof *p->extra);
	oom |= !p->extra;
	for (size_t i = 0; p->extra && i < n_extra; i++)
		p->extra[i] = dup_or_null(o->extra_args[i], &oom);
	snprintf(p->why, sizeof p->why, "no plan yet");
	if (oom) {
		pool_free(p);
		return xy_fail(err, errlen, ENOMEM, "out of memory");
	}
	if (!ps->ticking) {
		uv_timer_init(&ps->m->loop, &ps->tick);
		ps->tick.data = ps;
		uv_timer_start(&ps->tick, on_tick, TICK_MS, TICK_MS);
		ps->ticking = 1;
	}
	if (prov == &xy__pools_slurm || prov == &xy__pools_gridengine)
		watchdog_start(ps, prov->name);
	if (!ps->n)
		ps->since = uv_now(&ps->m->loop);
	ps->pools[ps->n++] = p;
	XY_LOGI(WHO, "pool %s (%s): %d cores, %d GPUs, %lld MB a worker; %d "
		"to %d workers, %d pending at most", p->conf.name, prov->name,
		o->cores, o->gpus, (long long)o->memory_mb, o->min_workers,
		o->max_workers, p->conf.backlog);
	xy_manager_wake(ps->m);
	return 0;
}

/* ------------------------------------------------------------- status */

static json_t *job_status(const struct job *j)
{
	return json_pack("{s:s,s:s,s:s,s:b,s:s,s:s}", "id", j->id, "name",
			 j->name, "state", job_states[j->state], "cancelled",
			 j->cancel, "batch_state", j->batch_state, "why",
			 j->why);
}

json_t *xy_pools_status(const struct xy_pools *ps)
{
	json_t *arr = json_array();
	for (int i = 0; arr && ps && i < ps->n; i++) {
		const struct pool *p = ps->pools[i];
		json_t *jobs = json_array();
		for (const struct job *j = p->jobs; jobs && j; j = j->next)
			json_array_append_new(jobs, job_status(j));
		json_array_append_new(
			arr,
			json_pack("{s:s,s:s,s:i,s:i,s:I,s:i,s:i,s:i,s:i,s:i,"
				  "s:I,s:I,s:s,s:s,s:o}",
				  "name", p->conf.name, "provider",
				  p->prov->name, "cores", p->conf.node.cores,
				  "gpus", p->conf.node.gpus, "memory",
				  (json_int_t)p->conf.node.memory,
				  "min_workers", p->conf.min_workers,
				  "max_workers", p->conf.max_workers,
				  "connected", count(p, JOB_CONNECTED),
				  "pending",
				  count(p, JOB_PENDING) +
					  count(p, JOB_SUBMITTING),
				  "backlog", p->conf.backlog, "submitted",
				  (json_int_t)p->submitted, "ended",
				  (json_int_t)p->ended, "why", p->why,
				  "last_failure", p->last_failure,
				  "jobs", jobs));
	}
	return arr;
}

/* ----------------------------------------- the public API's pools */

int xy_manager_add_pool(struct xy_manager *m, const struct xy_pool_options *o,
			char *err, size_t errlen)
{
	return xy_pools_add(m->pools, o, err, errlen);
}

int xy_manager_pool_job(struct xy_manager *m, const char *job, const char *id,
			const char *why)
{
	return xy_pools_job_answer(m->pools, job, id, why);
}
