/*
 * run_remote.c: `xylem run WORKFLOW --manager HOST:PORT`: the workflow's
 * tasks submitted to a standing manager (`xylem manager`, or a user's own
 * manager on an endpoint: `xylem endpoint connect`) as its client
 * (client.c), instead of to a manager of this run's own. A task is
 * submitted once every task that writes one of its inputs has succeeded;
 * its outputs are fetched to their paths when it ends, and a failed task
 * runs again up to its retries. The run is one session of the manager's
 * (docs/durability.md, "Clients"), each submission keyed by its task and
 * run: a manager lost on the way and started again on its journal is
 * reached again (for XYLEM_RECONNECT seconds, default 120), the tasks
 * still out are submitted again under their keys, and what ended
 * meanwhile is answered from its journal: nothing runs twice. A temp of
 * the workflow is a temp of the run's session on the manager, named by
 * its path: it stays on the worker that wrote it and never comes here.
 * URL inputs and archives to unpack go as such in SUBMIT. A task array
 * is expanded here, an index a SUBMIT, at most ARRAY_WINDOW of them out
 * at once (docs/cli.md, "xylem run against a standing manager").
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "cli.h"
#include "client.h"
#include "local.h"
#include "log.h"
#include "progress.h"
#include "util.h"
#include "workflow.h"
#include "xylem.h"

enum { R_WAITING, R_QUEUED, R_DONE, R_FAILED, R_SKIPPED };

/* Array indexes out at once, all arrays together (a client may have
 * 10,000 tasks not yet answered). */
#define ARRAY_WINDOW 1000

struct rtask {
	const struct xy_wf_task *w;
	int state;
	int runs;       /* runs asked for so far */
	uint64_t id;    /* the client id of its latest run */
	size_t waiting; /* producers of its inputs not yet done */
	size_t *after;  /* the tasks that read one of its outputs */
	size_t n_after;
	/* A task array: its indexes, the next to submit, those out, those
	 * ended; its lines file, read as indexes are submitted. */
	uint64_t n_idx, next_idx, n_out, n_ok, n_bad;
	FILE *lines;
	int remakes; /* times its temps' writers ran again for it */
};

/* One submission: a task's run, or an array index's. */
struct sub {
	size_t task;
	uint64_t index;
	int run;
	char *line; /* the index's XY_LINE, or NULL */
	int live;   /* submitted, not answered */
};

struct remote {
	const struct xy_run_remote_opts *o;
	const struct xy_workflow *wf;
	struct rtask *t;
	struct xy_client *c;
	uint8_t session[XY_ID_LEN];
	uint64_t seen; /* the last RESULT seq taken in full */
	struct sub *subs; /* by client task id - 1 */
	size_t n_ids, cap_ids;
	size_t *arrays; /* the array tasks */
	size_t n_arrays;
	char cwd[PATH_MAX]; /* where an array's relative paths start */
	int64_t done, failed, skipped, queued, total;
	struct xy_progress progress;
};

/* ------------------------------------------------------------- tasks */

/* Each task's producers (counted) and dependents (listed). */
static int link_tasks(struct remote *r)
{
	const struct xy_workflow *wf = r->wf;

	r->t = calloc(wf->n_tasks ? wf->n_tasks : 1, sizeof *r->t);
	if (!r->t)
		return -1;
	r->arrays = calloc(wf->n_tasks + 1, sizeof *r->arrays);
	if (!r->arrays)
		return -1;
	for (size_t i = 0; i < wf->n_tasks; i++) {
		r->t[i].w = &wf->tasks[i];
		r->t[i].n_idx = wf->tasks[i].array_n;
		r->total += r->t[i].n_idx ? (int64_t)r->t[i].n_idx : 1;
		if (r->t[i].n_idx)
			r->arrays[r->n_arrays++] = i;
	}
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < wf->n_tasks; i++) {
			const struct xy_wf_task *w = &wf->tasks[i];
			for (size_t k = 0; k < w->n_inputs; k++) {
				long p = wf->paths[w->inputs[k].ref].producer;
				if (p < 0 || (size_t)p == i)
					continue;
				struct rtask *src = &r->t[p];
				if (pass == 0) {
					src->n_after++;
					r->t[i].waiting++;
				} else {
					src->after[src->n_after++] = i;
				}
			}
		}
		for (size_t i = 0; pass == 0 && i < wf->n_tasks; i++) {
			r->t[i].after = calloc(r->t[i].n_after + 1,
					       sizeof *r->t[i].after);
			if (!r->t[i].after)
				return -1;
			r->t[i].n_after = 0;
		}
	}
	return 0;
}

/* ----------------------------------------------------------- submit */

/* A new submission's id (> 0), its record zeroed; 0 on ENOMEM. */
static uint64_t new_sub(struct remote *r)
{
	if (r->n_ids == r->cap_ids) {
		size_t cap = r->cap_ids ? 2 * r->cap_ids : 64;
		struct sub *n = realloc(r->subs, cap * sizeof *n);
		if (!n)
			return 0;
		r->subs = n;
		r->cap_ids = cap;
	}
	memset(&r->subs[r->n_ids], 0, sizeof *r->subs);
	return ++r->n_ids;
}

/* The key of a submission in this session: never all zeros, and
 * another for each task, index and run (a retry is a new task, not the
 * same again). */
static void task_key(const struct sub *s, uint8_t key[XY_ID_LEN])
{
	uint64_t n = (uint64_t)s->task + 1;

	memset(key, 0, XY_ID_LEN);
	memcpy(key, &n, sizeof n);
	memcpy(key + sizeof n, &s->run, sizeof s->run);
	memcpy(key + sizeof n + sizeof s->run, &s->index, sizeof s->index);
}

static int templated(const char *path)
{
	return strstr(path, XY_WF_INDEX_MARK) || strstr(path, XY_WF_LINE_MARK);
}

/* What entry f of s's task names, marks replaced for an array's index:
 * a path (absolute), a temp's name or a URL; a new string, or NULL. */
static char *entry_path(struct remote *r, const struct sub *s,
			const struct xy_wf_file *f)
{
	const struct xy_wf_path *p = &r->wf->paths[f->ref];
	char idx[32], *v, *full;

	if (!r->t[s->task].n_idx || !templated(f->path))
		return strdup(p->full);
	snprintf(idx, sizeof idx, "%llu", (unsigned long long)s->index);
	if (!(v = xy_wf_subst(f->path, idx, s->line)) || p->url ||
	    v[0] == '/')
		return v;
	if (asprintf(&full, "%s/%s", r->cwd, v) < 0)
		full = NULL;
	free(v);
	return full;
}

/* Its sandbox name, marks replaced: a new string, or NULL. */
static char *entry_as(struct remote *r, const struct sub *s,
		      const struct xy_wf_file *f)
{
	char idx[32];

	if (!r->t[s->task].n_idx)
		return strdup(f->as);
	snprintf(idx, sizeof idx, "%llu", (unsigned long long)s->index);
	return xy_wf_subst(f->as, idx, s->line);
}

/* The tag of s: the task's id, with [INDEX] for an array's. */
static void sub_tag(struct remote *r, const struct sub *s, char *buf,
		    size_t len)
{
	const struct xy_wf_task *w = r->t[s->task].w;

	if (r->t[s->task].n_idx)
		snprintf(buf, len, "%s[%llu]", w->id,
			 (unsigned long long)s->index);
	else
		snprintf(buf, len, "%s", w->id);
}

/* Sends submission id (again, after a reconnect: the same id and key).
 * -1 with errno ECONNRESET if the manager is gone. */
static int send_sub(struct remote *r, uint64_t id)
{
	const struct sub *sb = &r->subs[id - 1];
	const struct xy_wf_task *w = r->t[sb->task].w;
	size_t nf = w->n_inputs + w->n_outputs;
	/* On the heap: a gather task may have thousands of inputs. */
	struct xy_client_input *in = calloc(w->n_inputs + 1, sizeof *in);
	const char **outs = calloc(2 * w->n_outputs + 1, sizeof *outs);
	const char **temps = outs + w->n_outputs;
	struct xy_env_var *env = calloc(w->n_env + 3, sizeof *env);
	char **strs = calloc(2 * nf + 1, sizeof *strs); /* freed below */
	char err[1024] = "", tag[256], idx[32];
	int rc = -1, oom = !in || !outs || !env || !strs;

	for (size_t k = 0; !oom && k < nf; k++) {
		const struct xy_wf_file *f = k < w->n_inputs
			? &w->inputs[k] : &w->outputs[k - w->n_inputs];
		oom = !(strs[2 * k] = entry_path(r, sb, f)) ||
		      !(strs[2 * k + 1] = entry_as(r, sb, f));
	}
	if (oom) {
		fprintf(stderr, "xylem run: out of memory\n");
		goto out;
	}
	for (size_t k = 0; k < w->n_inputs; k++) {
		const struct xy_wf_path *p = &r->wf->paths[w->inputs[k].ref];
		in[k].name = strs[2 * k + 1];
		in[k].unpack = w->inputs[k].unpack;
		if (p->temp)
			in[k].temp = strs[2 * k]; /* the session's temp */
		else if (p->url)
			in[k].url = strs[2 * k];
		else
			in[k].path = strs[2 * k];
	}
	for (size_t k = 0; k < w->n_outputs; k++) {
		size_t j = w->n_inputs + k;
		outs[k] = strs[2 * j + 1];
		temps[k] = r->wf->paths[w->outputs[k].ref].temp ? strs[2 * j]
								: NULL;
	}
	size_t n_env = w->n_env;
	for (size_t k = 0; k < w->n_env; k++)
		env[k] = (struct xy_env_var){.name = w->env[k].name,
					     .value = w->env[k].value};
	if (r->t[sb->task].n_idx) {
		snprintf(idx, sizeof idx, "%llu", (unsigned long long)sb->index);
		env[n_env++] = (struct xy_env_var){"XY_INDEX", idx};
		if (sb->line)
			env[n_env++] = (struct xy_env_var){"XY_LINE", sb->line};
	}
	sub_tag(r, sb, tag, sizeof tag);
	struct xy_client_task t = {
		.command = w->command, .tag = tag, .cores = w->cores,
		.memory_mb = w->memory_mb, .disk_mb = w->disk_mb,
		.gpus = w->gpus, .time_limit = w->time_limit,
		.env = env, .n_env = (uint32_t)n_env,
		.inputs = in, .n_inputs = (uint32_t)w->n_inputs,
		.outputs = outs, .n_outputs = (uint32_t)w->n_outputs,
		.output_temps = temps,
	};
	uint8_t key[XY_ID_LEN];
	task_key(sb, key);
	if (xy_client_submit_keyed(r->c, &t, id, key, err, sizeof err))
		rc = 0;
	else if (errno != ECONNRESET)
		fprintf(stderr, "xylem run: task \"%s\": %s\n", tag, err);
out:
	for (size_t k = 0; strs && k < 2 * nf; k++)
		free(strs[k]);
	free(strs);
	free(in);
	free(outs);
	free(env);
	if (rc < 0 && errno != ECONNRESET)
		errno = EINVAL;
	return rc;
}

/* A new submission of task i (its index, its run; line is taken), sent
 * now if connected. */
static int submit_one(struct remote *r, size_t i, uint64_t index, int run,
		      char *line)
{
	uint64_t id = new_sub(r);

	if (!id) {
		free(line);
		return -1;
	}
	r->subs[id - 1] = (struct sub){.task = i, .index = index, .run = run,
				       .line = line, .live = 1};
	r->t[i].id = id;
	r->queued++;
	if (!r->c || send_sub(r, id) == 0)
		return 0;
	return errno == ECONNRESET ? 0 : -1; /* sent again on reconnect */
}

/* Submits more of array task i, while the window has room. */
static int array_feed(struct remote *r, size_t i)
{
	struct rtask *t = &r->t[i];

	while (t->state == R_QUEUED && t->next_idx < t->n_idx &&
	       r->queued < ARRAY_WINDOW) {
		char *line = NULL;
		if (t->lines) {
			size_t cap = 0;
			ssize_t got = getline(&line, &cap, t->lines);
			if (got < 0) {
				/* The file shrank: no more indexes. */
				free(line);
				r->total -= (int64_t)(t->n_idx - t->next_idx);
				t->n_idx = t->next_idx;
				break;
			}
			if (got && line[got - 1] == '\n')
				line[got - 1] = '\0';
		}
		t->n_out++;
		if (submit_one(r, i, t->next_idx++, 1, line) < 0)
			return -1;
	}
	return 0;
}

/* Task i's inputs are all made: its run, or its array's first indexes. */
static int submit(struct remote *r, size_t i)
{
	struct rtask *t = &r->t[i];

	t->state = R_QUEUED;
	if (!t->n_idx)
		return submit_one(r, i, 0, ++t->runs, NULL);
	if (t->w->array_lines && !(t->lines = fopen(t->w->array_lines, "r"))) {
		fprintf(stderr, "xylem run: task \"%s\": cannot read %s: %s\n",
			t->w->id, t->w->array_lines, strerror(errno));
		return -1;
	}
	return array_feed(r, i);
}

/* ------------------------------------------------------------ results */

/* Renames part over dest; a directory in the way (the old output, where
 * either is a directory) is removed first. */
static int put_in_place(const char *part, const char *dest)
{
	if (rename(part, dest) == 0)
		return 0;
	if (errno != EISDIR && errno != ENOTEMPTY && errno != EEXIST &&
	    errno != ENOTDIR)
		return -1;
	if (xy_rm_rf(dest) < 0)
		return -1;
	return rename(part, dest);
}

/* Fetches every output of sb's result to its path; a temp stays on its
 * worker. */
static int fetch_outputs(struct remote *r, const struct sub *sb,
			 const struct xy_msg_result *res, char *err,
			 size_t errlen)
{
	const struct xy_wf_task *w = r->t[sb->task].w;
	char part[PATH_MAX + 16];

	for (size_t k = 0; k < w->n_outputs; k++) {
		const struct xy_wf_path *p = &r->wf->paths[w->outputs[k].ref];
		uint32_t j = 0;
		if (p->temp)
			continue;
		char *as = entry_as(r, sb, &w->outputs[k]);
		char *dest = entry_path(r, sb, &w->outputs[k]);
		if (!as || !dest) {
			free(as);
			free(dest);
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		while (j < res->n_outputs &&
		       strcmp(res->outputs[j].name, as) != 0)
			j++;
		int rc = 0;
		if (j == res->n_outputs) {
			snprintf(err, errlen, "the manager sent no output"
				 " \"%s\"", as);
			rc = -1;
		}
		/* The old output goes only once the new one is here whole. */
		snprintf(part, sizeof part, "%s.xylem-new", dest);
		if (rc == 0) {
			xy_rm_rf(part);
			rc = xy_client_fetch(r->c, res, j, part, err, errlen);
		}
		if (rc == 0 && put_in_place(part, dest) < 0) {
			snprintf(err, errlen, "cannot put %s in place: %s",
				 dest, strerror(errno));
			xy_rm_rf(part);
			rc = -1;
		}
		free(as);
		free(dest);
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* Every task below i that can no longer run: a walk with a list of its
 * own (a chain may be as long as the workflow). */
static void skip_after(struct remote *r, size_t i)
{
	size_t *todo = malloc(r->wf->n_tasks * sizeof *todo), n = 0;

	if (!todo)
		return; /* they stay waiting: the run ends failed anyway */
	todo[n++] = i;
	while (n > 0) {
		size_t from = todo[--n];
		for (size_t k = 0; k < r->t[from].n_after; k++) {
			size_t d = r->t[from].after[k];
			if (r->t[d].state != R_WAITING)
				continue;
			r->t[d].state = R_SKIPPED;
			r->skipped++;
			fprintf(stderr, "xylem run: task \"%s\" not run: its"
				" input from \"%s\" was not made\n",
				r->t[d].w->id, r->t[from].w->id);
			todo[n++] = d;
		}
	}
	free(todo);
}

static void show_failure(const char *tag, const struct xy_msg_result *res,
			 const char *why)
{
	fprintf(stderr, "xylem run: failed: task \"%s\": %s", tag,
		why && *why ? why : xy_result_string((xy_result)res->result));
	if (res->exit_code && !(why && *why))
		fprintf(stderr, " (exit code %d)", res->exit_code);
	fputc('\n', stderr);
	if (res->output_len) {
		/* Its last lines: the tail the manager kept. */
		const char *s = res->output, *end = s + res->output_len;
		int lines = 0;
		while (end > s && lines <= 10)
			if (*--end == '\n' && end + 1 < s + res->output_len)
				lines++;
		if (lines > 10)
			end++;
		fprintf(stderr, "  %.*s%s", (int)(s + res->output_len - end),
			end, s[res->output_len - 1] == '\n' ? "" : "\n");
	}
}

/* Task i ended (an array: every index): its dependents released, or
 * skipped. */
static int task_ended(struct remote *r, size_t i, int ok)
{
	struct rtask *t = &r->t[i];

	if (t->lines) {
		fclose(t->lines);
		t->lines = NULL;
	}
	if (!ok) {
		t->state = R_FAILED;
		skip_after(r, i);
		return 0;
	}
	t->state = R_DONE;
	for (size_t k = 0; k < t->n_after; k++) {
		struct rtask *d = &r->t[t->after[k]];
		if (d->state == R_WAITING && --d->waiting == 0 &&
		    submit(r, t->after[k]) < 0)
			return -1;
	}
	return 0;
}

/* A manager started again on its journal knows no temps of the run's:
 * a task that read one answers "names nothing". Its temps' writers
 * then run again, and it after them. 1 if so; 0 if nothing can. */
static int remake_temps(struct remote *r, size_t i,
			const struct xy_msg_result *res)
{
	struct rtask *t = &r->t[i];
	size_t n = 0;

	if (res->result != XY_RESULT_INPUT_MISSING || t->n_idx ||
	    (!strstr(res->message, "names nothing") &&
	     !strstr(res->message, "no task can make it again")) ||
	    t->remakes >= 3)
		return 0;
	for (size_t k = 0; k < t->w->n_inputs; k++) {
		const struct xy_wf_path *p = &r->wf->paths[t->w->inputs[k].ref];
		struct rtask *w = p->producer >= 0 ? &r->t[p->producer] : NULL;
		if (!p->temp || !w || w->n_idx ||
		    (w->state != R_DONE && w->state != R_QUEUED))
			continue;
		n++;
		if (w->state == R_QUEUED)
			continue; /* already running again */
		xy_progress_clear(&r->progress);
		fprintf(stderr, "xylem run: temp %s was lost with the manager:"
			" running \"%s\" again for \"%s\"\n", p->written,
			w->w->id, t->w->id);
		r->done--;
		/* Its other readers still to run wait for it again. */
		for (size_t d = 0; d < w->n_after; d++)
			if (w->after[d] != i &&
			    r->t[w->after[d]].state == R_WAITING)
				r->t[w->after[d]].waiting++;
		if (submit(r, (size_t)p->producer) < 0)
			return -1;
	}
	if (!n)
		return 0;
	t->remakes++;
	t->state = R_WAITING;
	t->waiting = n;
	return 1;
}

/* One RESULT: outputs fetched, dependents released, or a retry. */
static int take(struct remote *r, const struct xy_msg_result *res)
{
	char err[1024] = "", tag[256];

	if (res->id == 0 || res->id > r->n_ids || !r->subs[res->id - 1].live)
		return 0; /* not ours, or a duplicate */
	struct sub *sb = &r->subs[res->id - 1];
	size_t i = sb->task;
	struct rtask *t = &r->t[i];
	int ok = res->result == XY_RESULT_SUCCESS && res->exit_code == 0;
	if (ok && fetch_outputs(r, sb, res, err, sizeof err) < 0) {
		if (!xy_client_connected(r->c))
			return -2; /* fetched again once the manager is back */
		ok = 0;
	}
	sb->live = 0;
	r->queued--;
	if (!ok) {
		int rc = remake_temps(r, i, res);
		if (rc != 0)
			return rc < 0 ? -1 : 0;
		sb = &r->subs[res->id - 1]; /* submissions may have moved */
	}
	sub_tag(r, sb, tag, sizeof tag);
	if (!ok && sb->run <= (t->w->retries > 0 ? t->w->retries : 0)) {
		xy_progress_clear(&r->progress);
		fprintf(stderr, "xylem run: task \"%s\" failed (%s); running"
			" it again (run %d of %d)\n", tag,
			*err ? err : *res->message ? res->message
			: xy_result_string((xy_result)res->result),
			sb->run + 1, t->w->retries + 1);
		char *line = sb->line; /* the new run's now */
		sb->line = NULL;
		if (!t->n_idx)
			t->runs++;
		return submit_one(r, i, sb->index, sb->run + 1, line);
	}
	free(sb->line);
	sb->line = NULL;
	if (ok) {
		r->done++;
	} else {
		r->failed++;
		show_failure(tag, res, *err ? err : res->message);
	}
	if (t->n_idx) {
		t->n_out--;
		if (ok)
			t->n_ok++;
		else
			t->n_bad++;
	}
	if ((!t->n_idx || t->n_ok + t->n_bad == t->n_idx) &&
	    task_ended(r, i, t->n_idx ? t->n_bad == 0 : ok) < 0)
		return -1;
	/* Room in the window, after any result (a plain task's too: an
	 * array held back by a full window must not wait for a result of
	 * its own that will never come): every array gets its share. */
	for (size_t k = 0; k < r->n_arrays; k++)
		if (array_feed(r, r->arrays[k]) < 0)
			return -1;
	return 0;
}

/* ------------------------------------------------------------ the run */

static void progress(struct remote *r, int force)
{
	struct xy_progress_counts c = {
		.done = r->done + r->failed, .total = r->total,
		.running = r->queued, .failed = r->failed,
	};
	xy_progress_update(&r->progress, &c, force);
}

/* Where the manager is, and how to prove who we are to it. */
struct target {
	char host[256];
	int port;
	SSL_CTX *tls;
	const struct xy_local *local;
};

/* Connects (again), attaches the session where it was left and sends
 * every run still out, under its id and key. 0, or -1 with a reason in
 * err: errno EACCES if the manager refused the secret. */
static int connect_session(struct remote *r, const struct target *to,
			   char *err, size_t errlen)
{
	r->c = xy_client_connect(to->host, to->port, to->local->secret,
				 to->local->secret_len, to->tls, 30, err,
				 errlen);
	if (!r->c)
		return -1;
	if (xy_client_attach(r->c, r->session, r->seen, err, errlen) < 0)
		goto lost;
	for (size_t id = 1; id <= r->n_ids; id++)
		if (r->subs[id - 1].live && send_sub(r, id) < 0)
			goto lost;
	return 0;
lost:
	xy_client_close(r->c);
	r->c = NULL;
	errno = ECONNRESET;
	return -1;
}

/* The manager is gone: tries again until it is back or the window set
 * by XYLEM_RECONNECT (seconds, default 120) has passed since it went.
 * 0 reconnected, 1 not yet, -1 given up (said). */
static int reconnect(struct remote *r, const struct target *to,
		     double *deadline)
{
	char err[1024] = "";

	if (*deadline < 0) {
		*deadline = xy_mono() + xy_cli_reconnect_window("xylem run");
		xy_progress_clear(&r->progress);
		fprintf(stderr, "xylem run: lost the manager at %s: submitting"
			" the %lld tasks still out again once it is back\n",
			r->o->manager, (long long)r->queued);
	}
	if (connect_session(r, to, err, sizeof err) == 0) {
		*deadline = -1;
		return 0;
	}
	if (errno != EACCES && xy_mono() < *deadline) {
		usleep(200000);
		return 1;
	}
	fprintf(stderr, "xylem run: %s: %s%s\n", r->o->manager, err,
		errno == EACCES ? "" : " (gave up waiting for it)");
	return -1;
}

/* The run's temps are named no more: the manager may let them go. */
static void drop_temps(struct remote *r)
{
	const char **names = calloc(r->wf->n_paths + 1, sizeof *names);
	uint32_t n = 0;
	char err[256];

	for (size_t i = 0; names && i < r->wf->n_paths; i++)
		if (r->wf->paths[i].temp)
			names[n++] = r->wf->paths[i].full;
	if (names && r->c)
		xy_client_drop(r->c, names, n, err, sizeof err);
	free(names);
}

static int exchange(struct remote *r, const struct target *to)
{
	char err[1024] = "";
	double deadline = -1;

	for (size_t i = 0; i < r->wf->n_tasks; i++)
		if (r->t[i].waiting == 0 && submit(r, i) < 0)
			return XY_EXIT_FAIL;
	while (r->queued > 0) {
		struct xy_msg_result res;
		if (xy_local_stops())
			return xy_local_stop_status();
		if (!r->c) {
			int rc = reconnect(r, to, &deadline);
			if (rc < 0)
				return XY_EXIT_FAIL;
			continue;
		}
		if (xy_client_wait(r->c, 0.5, &res, err, sizeof err) < 0) {
			if (errno != ETIMEDOUT) {
				xy_client_close(r->c);
				r->c = NULL;
			}
			progress(r, 0);
			continue;
		}
		int rc = take(r, &res);
		if (rc == 0 && res.seq > r->seen)
			r->seen = res.seq;
		xy_client_result_free(&res);
		if (rc == -2) {
			xy_client_close(r->c);
			r->c = NULL;
		} else if (rc < 0) {
			return XY_EXIT_FAIL;
		}
		progress(r, 0);
	}
	xy_progress_clear(&r->progress);
	drop_temps(r);
	/* Nothing left waiting or queued once nothing is submitted: a task
	 * that is must not pass for done. */
	for (size_t i = 0; i < r->wf->n_tasks; i++)
		if (r->t[i].state == R_WAITING || r->t[i].state == R_QUEUED) {
			fprintf(stderr, "xylem run: task \"%s\" was never "
				"run to its end (a bug of xylem run)\n",
				r->t[i].w->id);
			r->skipped = 1;
		}
	if (r->o->quiet && !r->failed && !r->skipped)
		return XY_EXIT_OK;
	fprintf(stderr, "xylem run: %lld tasks: %lld succeeded, %lld failed%s"
		" in %.2f s (manager %s)\n", (long long)r->total,
		(long long)r->done, (long long)r->failed,
		r->skipped ? ", some not run" : "",
		xy_progress_elapsed(&r->progress), r->o->manager);
	return r->failed || r->skipped ? XY_EXIT_FAIL : XY_EXIT_OK;
}

int xy_run_remote(const struct xy_workflow *wf,
		  const struct xy_run_remote_opts *o)
{
	struct remote r = {.o = o, .wf = wf};
	struct xy_local local = {.who = "xylem run"};
	struct target to = {.local = &local};
	char err[1024] = "";
	int rc = XY_EXIT_FAIL;

	if (xy_parse_hostport(o->manager, to.host, sizeof to.host,
			      &to.port) < 0 || to.port <= 0) {
		fprintf(stderr, "xylem run: --manager '%s' is not HOST:PORT\n",
			o->manager);
		return XY_EXIT_USAGE;
	}
	const char *secret_file = o->secret_file ? o->secret_file
						 : getenv("XYLEM_SECRET_FILE");
	if (!secret_file && !getenv("XYLEM_SECRET")) {
		fprintf(stderr, "xylem run: --manager needs the manager's"
			" secret: --secret-file F, XYLEM_SECRET_FILE or"
			" XYLEM_SECRET\n");
		return XY_EXIT_USAGE;
	}
	if (xy_local_secret(&local, secret_file) < 0)
		return XY_EXIT_FAIL;
	if (xy_workflow_output_dirs(wf, "xylem run") < 0)
		goto out;
	if (xy_cli_tls_client("xylem run", o->tls_ca, o->no_tls,
			      &to.tls) < 0) {
		rc = XY_EXIT_USAGE;
		goto out;
	}
	if (!getcwd(r.cwd, sizeof r.cwd)) {
		fprintf(stderr, "xylem run: cannot read the current directory:"
			" %s\n", strerror(errno));
		goto out;
	}
	if (link_tasks(&r) < 0 ||
	    RAND_bytes(r.session, sizeof r.session) != 1) {
		fprintf(stderr, "xylem run: out of memory or random bytes\n");
		goto out;
	}
	/* The connection's own warnings would repeat what we say. */
	xy_log_set_level(XY_LOG_ERROR);
	if (connect_session(&r, &to, err, sizeof err) < 0) {
		fprintf(stderr, "xylem run: %s %s: %s\n", o->manager,
			errno == EACCES ? "refused the secret (check"
			" --secret-file)" : "cannot be reached", err);
		goto out;
	}
	xy_local_catch_signals();
	xy_progress_init(&r.progress, stderr, !o->quiet);
	rc = exchange(&r, &to);
out:
	xy_client_close(r.c);
	SSL_CTX_free(to.tls);
	for (size_t i = 0; r.t && i < wf->n_tasks; i++) {
		free(r.t[i].after);
		if (r.t[i].lines)
			fclose(r.t[i].lines);
	}
	for (size_t i = 0; i < r.n_ids; i++)
		free(r.subs[i].line);
	free(r.subs);
	free(r.arrays);
	free(r.t);
	xy_local_free(&local);
	return rc;
}
