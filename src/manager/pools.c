/*
 * pools.c: pools and their jobs (pools.h).
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
 * loop (cmd_run), never blocking it: `sbatch --parsable` (its answer is
 * the job id), one `squeue` a poll for every job of this user, `scancel`.
 * The local provider starts `xylem worker` itself.
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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "auth.h"
#include "internal.h"
#include "log.h"
#include "scaler.h"
#include "scheduler.h"
#include "util.h"

#define WHO "pools"
#define TICK_MS 1000
#define PLAN_EVERY_MS 20    /* at most one plan in this long */
#define POLL_EVERY_MS 2000  /* squeue, while jobs are pending */
#define FAILS_TO_PAUSE 5    /* submissions failed in a row */
#define PAUSE_MS 60000
#define DRAIN_GRACE_S 50    /* jobs get SIGUSR1 60 s before walltime */
#define CMD_OUTPUT_MAX 65536

enum job_state { JOB_SUBMITTING, JOB_PENDING, JOB_CONNECTED, JOB_ENDED };

static const char *const job_states[] = {"submitting", "pending",
					 "connected", "ended"};

struct pool;

struct job {
	struct pool *pool;
	char name[96]; /* the worker's --name */
	char id[32];   /* the batch system's id; "" until it answers */
	enum job_state state;
	int cancel;    /* to be cancelled once its id is known */
	struct xy_worker *worker;
	uint64_t idle_since; /* loop ms; 0: busy or not connected */
	uv_process_t proc;   /* local: the worker itself */
	int proc_live;
	struct job *next;
};

struct provider {
	const char *name;
	/* Starts j's submission; its answer comes later (job_submitted). */
	int (*submit)(struct pool *p, struct job *j);
	/* Asks for the state of every pending job (slurm only). */
	void (*poll)(struct pool *p);
	void (*cancel)(struct pool *p, struct job *j);
};

struct pool {
	struct xy_pools *ps;
	struct xy_pool conf; /* name, node, min, max, backlog, priority */
	const struct provider *prov;
	char *partition, *xylem, *host, *log_dir;
	char **extra; /* NULL-ended */
	double walltime, idle_timeout;
	struct job *jobs;
	uint64_t seq;
	int fails;            /* submissions failed in a row */
	uint64_t paused_until; /* loop ms */
	uint64_t last_poll;
	int polling;
	int64_t submitted, ended;
	char why[200];
};

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
};

/* ----------------------------------------------------------- commands */

struct cmd {
	uv_process_t proc;
	uv_pipe_t out, err;
	struct xy_buf buf; /* stdout, then stderr */
	struct xy_buf ebuf;
	char chunk[4096];
	int64_t status;
	int handles; /* open: the process and the pipes */
	struct xy_pools *ps;
	void (*done)(void *arg, int status, const char *out);
	void *arg;
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
		   void (*done)(void *, int, const char *), void *arg)
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
	uv_process_options_t o = {.exit_cb = cmd_exit, .file = argv[0],
				  .args = argv, .env = env, .stdio_count = 3,
				  .stdio = stdio};
	int rc = uv_spawn(&ps->m->loop, &c->proc, &o);
	ps->cmds++;
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

/* A submission refused, or a job that ended before its worker came:
 * after FAILS_TO_PAUSE in a row the pool asks for nothing for a while. */
static void note_failure(struct pool *p, const char *why)
{
	if (++p->fails < FAILS_TO_PAUSE)
		return;
	p->paused_until = uv_now(&p->ps->m->loop) + PAUSE_MS;
	snprintf(p->why, sizeof p->why, "paused for %d s after %d failures "
		 "in a row; last: %.120s", PAUSE_MS / 1000, p->fails, why);
	XY_LOGW(WHO, "pool %s: %s", p->conf.name, p->why);
	p->fails = 0;
}

static void job_end(struct job *j, const char *why)
{
	if (j->state == JOB_ENDED)
		return;
	struct pool *p = j->pool;
	int never_came = j->state != JOB_CONNECTED;
	j->state = JOB_ENDED;
	p->ended++;
	if (never_came && !j->cancel) {
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
		if (j->state == JOB_ENDED && !j->proc_live && ++kept > 16) {
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
	snprintf(j->id, sizeof j->id, "%s", id);
	if (j->state == JOB_SUBMITTING)
		j->state = JOB_PENDING;
	XY_LOGI(WHO, "pool %s: submitted job %s (%s)", p->conf.name, j->id,
		j->name);
	if (j->cancel && j->state == JOB_PENDING)
		p->prov->cancel(p, j);
}

static void submit_failed(struct job *j, const char *why)
{
	struct pool *p = j->pool;
	XY_LOGW(WHO, "pool %s: submission failed: %s", p->conf.name, why);
	j->cancel = 1;
	job_end(j, why);
	note_failure(p, why);
}

/* The worker's command line for j: argv[], NULL-ended, in buf. */
static void worker_argv(struct job *j, char *addr, size_t n, char **argv)
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

static int local_submit(struct pool *p, struct job *j)
{
	char addr[300], cores[16], mem[24], gpus[16];
	char *argv[20];
	worker_argv(j, addr, sizeof addr, argv);
	int k = 7;
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
		j->proc_live = 1; /* until its handle is closed */
		uv_close((uv_handle_t *)&j->proc, local_closed);
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

/* ------------------------------------------------------- slurm provider */

/* The job's environment: this process's, with the secret (the worker
 * reads XYLEM_SECRET; sbatch passes the environment on). */
static char **secret_env(struct xy_manager *m)
{
	extern char **environ;
	size_t n = 0;
	while (environ[n])
		n++;
	char **env = calloc(n + 2, sizeof *env);
	if (!env)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "XYLEM_SECRET=", 13))
			env[k++] = environ[i];
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

static void sbatch_done(void *arg, int status, const char *out)
{
	struct job *j = arg;
	char id[32] = "";
	/* --parsable: "ID" or "ID;CLUSTER". */
	if (status == 0 && sscanf(out, "%31[0-9_]", id) == 1) {
		job_submitted(j, id);
		return;
	}
	char why[400];
	snprintf(why, sizeof why, "sbatch exited %d: %.300s", status, out);
	for (char *c = why; *c; c++)
		if (*c == '\n')
			*c = ' ';
	submit_failed(j, why);
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
	worker_argv(j, addr, sizeof addr, wargv);
	if (quote(xylem, sizeof xylem, p->xylem) < 0) {
		submit_failed(j, "the xylem path holds a quote");
		return -1;
	}
	snprintf(wrap, sizeof wrap, "exec %s worker %s --name %s "
		 "--connect-timeout 30 --drain-grace %d", xylem, addr,
		 j->name, DRAIN_GRACE_S);
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
	snprintf(out, sizeof out, "--output=%s/%s.log",
		 p->log_dir ? p->log_dir : "/dev", p->log_dir ? j->name : "null");
	if (!p->log_dir)
		snprintf(out, sizeof out, "--output=/dev/null");
	argv[k++] = out;
	for (int i = 0; p->extra && p->extra[i] && k < 96; i++)
		argv[k++] = p->extra[i];
	argv[k++] = "--wrap";
	argv[k++] = wrap;
	argv[k] = NULL;
	char **env = secret_env(p->ps->m);
	int rc = env ? cmd_run(p->ps, argv, env, sbatch_done, j) : -1;
	free_env(env);
	if (rc < 0) {
		submit_failed(j, "cannot run sbatch");
		return -1;
	}
	return 0;
}

static void squeue_done(void *arg, int status, const char *out)
{
	struct pool *p = arg;
	p->polling = 0;
	if (status != 0) {
		XY_LOGW(WHO, "pool %s: squeue exited %d: %.200s", p->conf.name,
			status, out);
		return;
	}
	/* Lines "ID STATE"; a pending job not listed has ended. */
	for (struct job *j = p->jobs; j; j = j->next) {
		if (j->state != JOB_PENDING || !j->id[0])
			continue;
		const char *at = out, *state = NULL;
		size_t n = strlen(j->id);
		while (at && *at) {
			if (!strncmp(at, j->id, n) && at[n] == ' ') {
				state = at + n + 1;
				break;
			}
			at = strchr(at, '\n');
			at = at ? at + 1 : NULL;
		}
		if (!state)
			job_end(j, "no longer in the queue");
	}
}

static void slurm_poll(struct pool *p)
{
	char *argv[] = {"squeue", "--noheader", "--format=%i %T", NULL};
	if (p->polling)
		return;
	p->polling = 1;
	if (cmd_run(p->ps, argv, NULL, squeue_done, p) < 0)
		p->polling = 0;
}

static void scancel_done(void *arg, int status, const char *out)
{
	(void)arg;
	if (status != 0)
		XY_LOGW(WHO, "scancel exited %d: %.200s", status, out);
}

static void slurm_cancel(struct pool *p, struct job *j)
{
	char *argv[] = {"scancel", j->id, NULL};
	XY_LOGI(WHO, "pool %s: cancelling job %s (%s)", p->conf.name, j->id,
		j->name);
	cmd_run(p->ps, argv, NULL, scancel_done, NULL);
}

static const struct provider slurm_provider = {"slurm", slurm_submit,
					       slurm_poll, slurm_cancel};

/* --------------------------------------------------------------- plan */

static void submit_one(struct pool *p)
{
	struct job *j = calloc(1, sizeof *j);
	if (!j)
		return;
	j->pool = p;
	snprintf(j->name, sizeof j->name, "xy-%s-%s-%llu", p->ps->id,
		 p->conf.name, (unsigned long long)++p->seq);
	j->state = JOB_SUBMITTING;
	j->next = p->jobs;
	p->jobs = j;
	p->submitted++;
	p->prov->submit(p, j);
}

/* Cancels up to n pending jobs, the newest first. */
static void cancel_pending(struct pool *p, int n)
{
	for (struct job *j = p->jobs; j && n > 0; j = j->next) {
		if (j->cancel || (j->state != JOB_PENDING &&
				  j->state != JOB_SUBMITTING))
			continue;
		j->cancel = 1;
		n--;
		if (j->state == JOB_PENDING) {
			p->prov->cancel(p, j);
			job_end(j, "cancelled: no queued task needs it");
		}
	}
}

/* Fails the tasks of a shape no pool could ever run, naming the pools'
 * nodes. */
static void fail_unfit(struct xy_pools *ps, const struct xy_demand *d)
{
	char why[1024];
	int at = snprintf(why, sizeof why, "no pool can run it: it asks for "
			  "%d cores, %d GPUs, %lld MB memory; the pools offer",
			  d->need.cores, d->need.gpus,
			  (long long)d->need.memory);
	for (int i = 0; i < ps->n && at < (int)sizeof why; i++) {
		const struct xy_res *r = &ps->pools[i]->conf.node;
		at += snprintf(why + at, sizeof why - at,
			       "%s %s: %d cores, %d GPUs, %lld MB",
			       i ? ";" : "", ps->pools[i]->conf.name, r->cores,
			       r->gpus, (long long)r->memory);
	}
	struct xy_task *t;
	while ((t = xy_sched_shape_first(ps->m->sched, d->key))) {
		XY_LOGW(WHO, "task %llu: %s", (unsigned long long)t->id, why);
		xy_manager_task_fail(ps->m, t, XY_RESULT_UNSCHEDULABLE, why);
	}
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
		for (size_t u = 0; u < plan.n_unfit; u++)
			fail_unfit(ps, &d[plan.unfit[u]]);
		for (int i = 0; i < ps->n; i++) {
			struct pool *p = ps->pools[i];
			if (now >= p->paused_until)
				snprintf(p->why, sizeof p->why, "%s",
					 plan.why[i]);
			for (int k = 0; k < plan.submit[i]; k++)
				submit_one(p);
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
			if (w->n_running > 0 || !w->ready) {
				j->idle_since = 0;
				continue;
			}
			if (!j->idle_since)
				j->idle_since = now;
			if (now - j->idle_since < p->idle_timeout * 1000)
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
			p->conf.name, w->name, (now - best->idle_since) / 1e3);
		w->draining = 1;
		xy_wtable_disable(p->ps->m->wtable, w);
		xy_wtable_drained(p->ps->m->wtable, w);
		serving--;
	}
}

static void on_tick(uv_timer_t *h)
{
	struct xy_pools *ps = h->data;
	uint64_t now = uv_now(&ps->m->loop);
	for (int i = 0; i < ps->n; i++) {
		struct pool *p = ps->pools[i];
		release_idle(p, now);
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

void xy_pools_worker_ready(struct xy_pools *ps, struct xy_worker *w)
{
	struct job *j = ps ? job_named(ps, w->name) : NULL;
	if (!j || j->state == JOB_ENDED)
		return;
	j->state = JOB_CONNECTED;
	j->worker = w;
	j->cancel = 0;
	j->pool->fails = 0;
	XY_LOGI(WHO, "pool %s: job %s's worker %s connected", j->pool->conf.name,
		j->id, w->name);
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

void xy_pools_destroy(struct xy_pools *ps)
{
	if (!ps)
		return;
	/* Jobs whose workers have not come: cancelled, and the commands
	 * in flight let finish (a few seconds at most). */
	for (int i = 0; i < ps->n; i++) {
		struct pool *p = ps->pools[i];
		for (struct job *j = p->jobs; j; j = j->next)
			if (j->state == JOB_PENDING)
				p->prov->cancel(p, j);
	}
	uint64_t end = xy_mono_us() + 5000000;
	int live;
	do {
		live = ps->cmds;
		for (int i = 0; i < ps->n; i++)
			for (struct job *j = ps->pools[i]->jobs; j;
			     j = j->next)
				live += j->proc_live;
		if (live)
			uv_run(&ps->m->loop, UV_RUN_ONCE);
	} while (live && xy_mono_us() < end);
	if (ps->ticking)
		uv_close((uv_handle_t *)&ps->tick, NULL);
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
		prov = &slurm_provider;
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
			       " '%s' (local or slurm)", o->name, o->provider);
	if (ps->n == XY_POOLS_MAX)
		return xy_fail(err, errlen, EINVAL, "at most %d pools",
			       XY_POOLS_MAX);
	if (o->cores < 1 || o->gpus < 0 || o->memory_mb < 0 ||
	    o->disk_mb < 0 || o->min_workers < 0 || o->max_workers < 0 ||
	    o->backlog < 0 || o->walltime_s < 0 || o->idle_timeout_s < 0 ||
	    (o->max_workers && o->min_workers > o->max_workers))
		return xy_fail(err, errlen, EINVAL, "pool %s: cores must be at"
			       " least 1, no count negative, and min_workers "
			       "at most max_workers", o->name);
	struct pool *p = calloc(1, sizeof *p);
	if (!p)
		return xy_fail(err, errlen, ENOMEM, "out of memory");
	p->ps = ps;
	p->prov = prov;
	snprintf(p->conf.name, sizeof p->conf.name, "%s", o->name);
	p->conf.node = (struct xy_res){o->cores, o->gpus, o->memory_mb,
				       o->disk_mb};
	p->conf.min_workers = o->min_workers;
	p->conf.max_workers = o->max_workers;
	p->conf.backlog = o->backlog ? o->backlog : 4;
	p->conf.priority = o->priority;
	p->walltime = o->walltime_s;
	p->idle_timeout = o->idle_timeout_s ? o->idle_timeout_s : 60;
	int oom = 0;
	p->partition = dup_or_null(o->partition, &oom);
	p->xylem = dup_or_null(o->xylem ? o->xylem : "xylem", &oom);
	p->log_dir = dup_or_null(o->log_dir, &oom);
	p->host = dup_or_null(o->manager_host ? o->manager_host : "127.0.0.1",
			      &oom);
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
	ps->pools[ps->n++] = p;
	XY_LOGI(WHO, "pool %s (%s): %d cores, %d GPUs, %lld MB a worker; %d "
		"to %d workers, %d pending at most", p->conf.name, prov->name,
		o->cores, o->gpus, (long long)o->memory_mb, o->min_workers,
		o->max_workers, p->conf.backlog);
	xy_manager_wake(ps->m);
	return 0;
}

/* ------------------------------------------------------------- status */

json_t *xy_pools_status(const struct xy_pools *ps)
{
	json_t *arr = json_array();
	for (int i = 0; arr && ps && i < ps->n; i++) {
		const struct pool *p = ps->pools[i];
		json_t *jobs = json_array();
		for (const struct job *j = p->jobs; jobs && j; j = j->next)
			json_array_append_new(
				jobs, json_pack("{s:s,s:s,s:s,s:b}", "id", j->id,
						"name", j->name, "state",
						job_states[j->state], "cancelled",
						j->cancel));
		json_array_append_new(
			arr,
			json_pack("{s:s,s:s,s:i,s:i,s:I,s:i,s:i,s:i,s:i,s:i,"
				  "s:I,s:I,s:s,s:o}",
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
				  "jobs", jobs));
	}
	return arr;
}
