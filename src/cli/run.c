/*
 * run.c: `xylem run WORKFLOW.json`. Loads and validates the workflow
 * (workflow.c), creates a manager, declares each distinct path once,
 * submits every task, starts local workers as child processes, and waits
 * for the tasks while showing progress (progress.c). At the end it prints a
 * summary with the failed tasks' output, stops the workers it started, and
 * removes its temporary directory, whatever happened in between.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "local.h"
#include "log.h"
#include "progress.h"
#include "util.h"
#include "workflow.h"
#include "xylem.h"

#define MAX_FAILURES_SHOWN 20
#define TAIL_LINES 10
#define TAIL_BYTES 4096

struct run_opts {
	const char *workflow;
	int workers; /* -1: one per core */
	const char *host; /* --host; NULL: chosen by listen_host */
	int port;
	const char *secret_file;
	const char *history;
	long history_output; /* --history-output: bytes; 0: default */
	const char *log_dir; /* --log-dir: local workers' logs kept there */
	const char *journal;
	int journal_sync;
	const char *tls_dir;
	int no_tls;
	int cores_per_worker; /* 0: cores / workers */
	int quiet;
	/* The command-line array: --array N or --each-line FILE, and the
	 * command after the options; --retries for its tasks. */
	long long array_n;
	const char *each_line;
	const char *array_command;
	int retries;
	struct xy_cli_pool *pools[XY_CLI_POOLS_MAX];
	int n_pools;
	const char *http;   /* --http [HOST:]PORT: the dashboard */
	double http_linger; /* --http-linger S: served on after the run */
	const char *manager; /* --manager HOST:PORT: run_remote.c */
	const char *tls_ca;  /* --tls-ca, with --manager */
};

struct failure {
	char *tag;
	const char *result;
	int exit_code;
	char *error;
	char *tail; /* the last lines of the output */
};

struct run {
	struct run_opts o;
	struct xy_workflow *wf;
	struct xy_manager *m;
	struct xy_local local; /* directory, secret, local workers */
	uint64_t *ids; /* by workflow task index, 0 for an array */
	size_t n_ids;
	size_t n_submitted; /* tasks, an array's each counted */
	int64_t succeeded, failed, cancelled;
	struct failure fails[MAX_FAILURES_SHOWN];
	size_t n_fails;
	struct xy_progress progress;
	int workers_gone; /* every local worker exited during the run */
};

/* True if a path of the workflow is an array task's, with a mark to
 * replace per index (declared per task, not once). */
static int templated(const char *path)
{
	return strstr(path, XY_WF_INDEX_MARK) || strstr(path, XY_WF_LINE_MARK);
}

/* ------------------------------------------------------------ arguments */

static void usage(FILE *out)
{
	fprintf(out,
		"usage: xylem run WORKFLOW.json [options]\n"
		"       xylem run (--array N | --each-line FILE) [options] --"
		" COMMAND\n\n"
		"Runs every task of a workflow file (docs/workflow.md) and waits"
		" for them.\nLocal workers are started unless --workers 0 is"
		" given.\n\noptions:\n"
		"  --workers N           local workers to start (default: one"
		" per core;\n"
		"                        0: only wait for external workers)\n"
		"  --cores-per-worker N  cores each local worker offers (default:"
		" cores / N)\n"
		"  --host H              address to listen on (default:"
		" 127.0.0.1 when only\n"
		"                        local workers are served, that is"
		" without --workers 0,\n"
		"                        --port or --secret-file; else all"
		" interfaces)\n"
		"  --port P              port to listen on (default: any free"
		" port)\n"
		"  --secret-file F       read the workers' shared secret from F"
		"\n"
		"                        (default: XYLEM_SECRET, else a fresh"
		" one)\n"
		"  --history DB          record the run in an SQLite database\n"
		"  --history-output N    bytes of each task's output (its tail)"
		" the\n                        history keeps (default 4096; 0:"
		" none)\n"
		"  --log-dir DIR         keep the local workers' logs in DIR\n"
		"  --tls-dir DIR         keep the TLS CA and certificate in DIR"
		" (default: a\n                        private directory for this"
		" run; docs/security.md)\n"
		"  --no-tls              plain TCP: no encryption, no"
		" integrity\n"
		"  --journal DIR         keep a journal there: run again on it,"
		" the tasks that\n"
		"                        finished (outputs unchanged) are not"
		" run again\n"
		"  --journal-sync        also sync the journal to disk each"
		" turn (machine crashes)\n"
		"  --pool SPEC           a pool of workers from a batch system,"
		" as KEY=VALUE,...\n"
		"                        (docs/cli.md, \"Pools\"); repeatable;"
		" with a pool,\n"
		"                        --workers defaults to 0\n"
		"  --pools FILE          pools from a file: a SPEC a line, '#'"
		" comments\n"
		"  --array N -- CMD      instead of a workflow file: N tasks"
		" running CMD, with\n"
		"                        XY_INDEX set to 0..N-1"
		" (docs/workflow.md, \"Task arrays\")\n"
		"  --each-line FILE -- CMD  a task per line of FILE, with"
		" XY_LINE and XY_INDEX\n"
		"  --retries K           with --array or --each-line: runs of"
		" a failed task\n"
		"  --quiet               no progress line and no summary unless"
		" a task fails\n"
		"  --http [HOST:]PORT    serve the live dashboard and /metrics"
		" there (HOST:\n"
		"                        127.0.0.1 if absent; PORT 0: any free"
		" one; another\n"
		"                        host needs the token in the address"
		" printed)\n"
		"  --http-linger S       keep serving it S seconds after the"
		" run ends\n"
		"  --manager HOST:PORT   submit to a standing manager (xylem"
		" manager, or\n"
		"                        a user's manager on an endpoint: xylem"
		" endpoint\n"
		"                        connect) instead of running one; needs"
		" its secret\n"
		"                        (--secret-file, XYLEM_SECRET_FILE or"
		" XYLEM_SECRET)\n"
		"                        and its CA (--tls-ca, XYLEM_TLS_CA) or"
		" --no-tls\n"
		"  --tls-ca FILE         with --manager: the manager's CA"
		" certificate\n"
		"  --help                show this help\n\n"
		"Exit status: 0 if every task succeeded, 1 if one failed, 2 for"
		" a bad\ncommand line or workflow file, 130 if interrupted.\n");
}

/* --manager runs nothing here: the options of a local run are refused
 * with it, and --tls-ca is refused without it. */
static int check_manager_opts(const struct run_opts *o)
{
	const char *local = o->workers >= 0 ? "--workers"
			    : o->host ? "--host" : o->port ? "--port"
			    : o->history ? "--history"
			    : o->history_output ? "--history-output"
			    : o->log_dir ? "--log-dir" : o->journal ? "--journal"
			    : o->journal_sync ? "--journal-sync"
			    : o->tls_dir ? "--tls-dir"
			    : o->cores_per_worker ? "--cores-per-worker"
			    : o->n_pools ? "--pool" : o->http ? "--http"
			    : o->array_command ? "--array/--each-line" : NULL;

	if (o->manager && local) {
		fprintf(stderr, "xylem run: %s is for a run with its own"
			" manager, not with --manager\n", local);
		return 1;
	}
	if (!o->manager && o->tls_ca) {
		fprintf(stderr, "xylem run: --tls-ca goes with --manager\n");
		return 1;
	}
	return 0;
}

/* Returns -1 to go on, or the exit status to end with. */
static int parse_args(int argc, char **argv, struct run_opts *o)
{
	enum { O_WORKERS = 256, O_HOST, O_PORT, O_SECRET, O_HISTORY, O_CPW,
	       O_QUIET, O_POOL, O_POOLS, O_JOURNAL, O_JOURNAL_SYNC,
	       O_TLS_DIR, O_NO_TLS, O_HISTORY_OUTPUT, O_LOG_DIR, O_HTTP,
	       O_HTTP_LINGER, O_ARRAY, O_EACH_LINE, O_RETRIES, O_MANAGER,
	       O_TLS_CA };
	static const struct option longopts[] = {
		{"workers", required_argument, NULL, O_WORKERS},
		{"host", required_argument, NULL, O_HOST},
		{"port", required_argument, NULL, O_PORT},
		{"secret-file", required_argument, NULL, O_SECRET},
		{"history", required_argument, NULL, O_HISTORY},
		{"history-output", required_argument, NULL, O_HISTORY_OUTPUT},
		{"log-dir", required_argument, NULL, O_LOG_DIR},
		{"journal", required_argument, NULL, O_JOURNAL},
		{"journal-sync", no_argument, NULL, O_JOURNAL_SYNC},
		{"cores-per-worker", required_argument, NULL, O_CPW},
		{"quiet", no_argument, NULL, O_QUIET},
		{"pool", required_argument, NULL, O_POOL},
		{"pools", required_argument, NULL, O_POOLS},
		{"tls-dir", required_argument, NULL, O_TLS_DIR},
		{"no-tls", no_argument, NULL, O_NO_TLS},
		{"http", required_argument, NULL, O_HTTP},
		{"http-linger", required_argument, NULL, O_HTTP_LINGER},
		{"array", required_argument, NULL, O_ARRAY},
		{"each-line", required_argument, NULL, O_EACH_LINE},
		{"retries", required_argument, NULL, O_RETRIES},
		{"manager", required_argument, NULL, O_MANAGER},
		{"tls-ca", required_argument, NULL, O_TLS_CA},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c, bad = 0;

	*o = (struct run_opts){.workers = -1, .retries = -1};
	opterr = 0;
	/* GNU getopt moves the operands to the end, so options may come
	 * before or after the workflow file. */
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case O_WORKERS:
			bad |= xy_cli_int("xylem run", "--workers", optarg,
					  0, 4096, &o->workers);
			break;
		case O_HOST:
			o->host = optarg;
			break;
		case O_PORT:
			bad |= xy_cli_int("xylem run", "--port", optarg,
					  0, 65535, &o->port);
			break;
		case O_CPW:
			bad |= xy_cli_int("xylem run",
					  "--cores-per-worker", optarg,
					  1, 1 << 20, &o->cores_per_worker);
			break;
		case O_SECRET:
			o->secret_file = optarg;
			break;
		case O_HISTORY_OUTPUT: {
			int v;
			bad |= xy_cli_int("xylem run", "--history-output",
					  optarg, 0, 1 << 20, &v) < 0;
			o->history_output = v ? v : -1;
			break;
		}
		case O_LOG_DIR:
			o->log_dir = optarg;
			break;
		case O_HISTORY:
			o->history = optarg;
			break;
		case O_JOURNAL:
			o->journal = optarg;
			break;
		case O_TLS_DIR:
			o->tls_dir = optarg;
			break;
		case O_NO_TLS:
			o->no_tls = 1;
			break;
		case O_JOURNAL_SYNC:
			o->journal_sync = 1;
			break;
		case O_QUIET:
			o->quiet = 1;
			break;
		case O_HTTP:
			o->http = optarg;
			break;
		case O_HTTP_LINGER:
			o->http_linger = atof(optarg);
			bad |= o->http_linger < 0;
			break;
		case O_ARRAY: {
			int n = 0;

			bad |= xy_cli_int("xylem run", "--array", optarg, 1,
					  1000000000, &n);
			o->array_n = n;
			break;
		}
		case O_EACH_LINE:
			o->each_line = optarg;
			break;
		case O_RETRIES:
			bad |= xy_cli_int("xylem run", "--retries", optarg, 0,
					  1000000, &o->retries);
			break;
		case O_MANAGER:
			o->manager = optarg;
			break;
		case O_TLS_CA:
			o->tls_ca = optarg;
			break;
		case O_POOL:
			bad |= xy_cli_pool_arg("xylem run", optarg, o->pools,
					       &o->n_pools) < 0;
			break;
		case O_POOLS:
			bad |= xy_cli_pools_file("xylem run", optarg, o->pools,
						 &o->n_pools) < 0;
			break;
		case 'h':
			usage(stdout);
			return XY_EXIT_OK;
		default:
			fprintf(stderr, "xylem run: unknown option or missing"
				" value: '%s'\n", argv[optind - 1]);
			bad = 1;
		}
	}
	if (o->array_n || o->each_line) {
		/* xylem run --array N [options] -- COMMAND: the command is
		 * the rest, one argument (given to /bin/sh -c). */
		if (o->array_n && o->each_line) {
			fprintf(stderr, "xylem run: --array and --each-line"
				" exclude each other\n");
			bad = 1;
		}
		if (optind + 1 == argc)
			o->array_command = argv[optind++];
		else if (!bad) {
			fprintf(stderr, "xylem run: --array and --each-line take"
				" one command after the options (quote it)\n");
			bad = 1;
		}
		o->workflow = "command line";
	}
	if (optind < argc)
		o->workflow = argv[optind++];
	if (!bad && optind < argc) {
		fprintf(stderr, "xylem run: unexpected argument '%s'\n",
			argv[optind]);
		bad = 1;
	}
	if (!bad && !o->workflow) {
		fprintf(stderr, "xylem run: no workflow file given\n");
		bad = 1;
	}
	if (!bad)
		bad = check_manager_opts(o);
	if (bad) {
		fprintf(stderr, "(see 'xylem run --help')\n");
		return XY_EXIT_USAGE;
	}
	return -1;
}

/* ---------------------------------------------------------------- setup */

/* A task that asks for more cores or memory than any local worker offers
 * would wait forever: refuse the run instead. External workers (--workers
 * 0) may be of any size, so nothing is checked then. */
static int check_fits(struct run *r)
{
	if (r->local.n_workers == 0)
		return 0;
	for (size_t i = 0; i < r->wf->n_tasks; i++) {
		const struct xy_wf_task *t = &r->wf->tasks[i];

		if (t->cores > r->local.worker_cores) {
			fprintf(stderr,
				"xylem run: %s: task \"%s\" asks for %d cores,"
				" but each of the %d local workers has %d (see"
				" --workers and --cores-per-worker)\n",
				r->o.workflow, t->id, t->cores,
				r->local.n_workers, r->local.worker_cores);
			return -1;
		}
		int64_t mb = r->local.worker_memory_mb;

		if (mb && t->memory_mb > mb) {
			fprintf(stderr,
				"xylem run: %s: task \"%s\" asks for %lld MB of"
				" memory, but each of the %d local workers has"
				" %lld MB (see --workers)\n",
				r->o.workflow, t->id, (long long)t->memory_mb,
				r->local.n_workers, (long long)mb);
			return -1;
		}
	}
	return 0;
}

/* An input that nobody writes and that does not exist fails its task with
 * "input missing" later; say so now, once per path. */
static void warn_missing_inputs(struct run *r)
{
	for (size_t i = 0; i < r->wf->n_paths; i++) {
		const struct xy_wf_path *p = &r->wf->paths[i];

		if (p->producer < 0 && !p->url && !templated(p->written) &&
		    access(p->full, F_OK) != 0)
			fprintf(stderr, "xylem run: warning: input \"%s\" does"
				" not exist and no task writes it\n", p->written);
	}
}

/* The address to listen on: --host, else loopback when the run serves
 * only the local workers it starts (as the Python Executor decides: no
 * port and no secret file to hand to workers elsewhere), else every
 * interface. */
static const char *listen_host(const struct run *r)
{
	if (r->o.host)
		return r->o.host;
	if (r->local.n_workers > 0 && !r->o.port && !r->o.secret_file)
		return "127.0.0.1";
	return NULL;
}

/* Says where the manager listens and how to reach it: workers from
 * elsewhere, `xylem status`, and the dashboard's address. */
static void announce(struct run *r, const char *host)
{
	char h[300], name[256] = "HOST";
	const char *ca = xy_manager_tls_ca(r->m);
	const char *url = xy_manager_http_url(r->m);
	if (r->o.quiet && !url)
		return;
	snprintf(h, sizeof h, "%s%s%s", host && strchr(host, ':') ? "[" : "",
		 host ? host : (gethostname(name, sizeof name - 1), name),
		 host && strchr(host, ':') ? "]" : "");
	fprintf(stderr, "xylem run: manager on %s:%d; status: xylem status "
		"%s:%d%s%s%s%s\n", h, xy_manager_port(r->m), h,
		xy_manager_port(r->m),
		r->local.secret_path[0] ? " --secret-file " : "",
		r->local.secret_path, ca ? " --tls-ca " : " --no-tls",
		ca ? ca : "");
	/* --workers 0: the command that starts a worker for it. */
	if (r->local.n_workers == 0)
		fprintf(stderr, "xylem run: start a worker: xylem worker "
			"%s:%d%s%s%s%s\n", h, xy_manager_port(r->m),
			r->local.secret_path[0] ? " --secret-file " : "",
			r->local.secret_path, ca ? " --tls-ca " : " --no-tls",
			ca ? ca : "");
	if (url)
		fprintf(stderr, "xylem run: dashboard at %s\n", url);
}

/* --http-linger: the dashboard stays up a while after the run (until a
 * signal), showing how it ended. */
static void linger(struct run *r)
{
	double end = xy_mono() + r->o.http_linger;
	if (!xy_manager_http_url(r->m) || r->o.http_linger <= 0)
		return;
	while (xy_mono() < end && !xy_local_stops())
		xy_manager_run(r->m, 0.25);
}

static int start_manager(struct run *r)
{
	struct xy_manager_options opt = {
		.host = listen_host(r),
		.port = r->o.port,
		.history = r->o.history,
		.history_output = r->o.history_output,
		.name = r->wf->name ? r->wf->name : "xylem-run",
		.journal = r->o.journal,
		.journal_sync = r->o.journal_sync,
		.http = r->o.http,
		/* For tests: how long a run on a journal waits for the
		 * workers of the run before (docs/durability.md). */
		.adopt_wait = getenv("XYLEM_ADOPT_WAIT")
				      ? atof(getenv("XYLEM_ADOPT_WAIT"))
				      : 0,
	};
	/* On a journal, the port of the manager before, where its workers
	 * try to come back; another if it is taken. */
	if (r->o.journal && !opt.port)
		opt.port = xy_local_journal_port(r->o.journal);
	if (opt.port && !r->o.port && xy_local_manager(&r->local, &opt) < 0) {
		fprintf(stderr, "xylem run: the workers of the run before on"
			" port %d cannot come back\n", opt.port);
		opt.port = 0;
	}
	if ((!r->local.m && xy_local_manager(&r->local, &opt) < 0) ||
	    xy_cli_pools_add("xylem run", r->local.m, r->o.pools,
			     r->o.n_pools) < 0)
		return -1;
	r->m = r->local.m;
	if (r->o.journal)
		xy_local_journal_save_port(r->o.journal, xy_manager_port(r->m));
	/* Never the secret itself: where it is, for `xylem status`. */
	XY_LOGI("run", "listening on %s%s%s:%d (secret %s%s)",
		opt.host && strchr(opt.host, ':') ? "[" : "",
		opt.host ? opt.host : "0.0.0.0",
		opt.host && strchr(opt.host, ':') ? "]" : "",
		xy_manager_port(r->m),
		r->local.secret_path[0] ? "file " : "from XYLEM_SECRET",
		r->local.secret_path);
	announce(r, opt.host);
	return 0;
}

/* ---------------------------------------------------------- task arrays */

/* What the manager's array record points at: the workflow's task, the
 * files declared once, and the lines file read as indexes are made. */
struct array_ctx {
	struct run *r;
	const struct xy_wf_task *w;
	struct xy_file **files; /* by path index; a copy of submit_all's */
	size_t n_paths;
	FILE *lines;
	char *line;
	size_t line_cap;
	char cwd[4096];
};

/* s with every mark replaced: a new string, or NULL without memory. */
static char *subst(const char *s, const char *index, const char *line)
{
	return xy_wf_subst(s, index, line);
}

/* Entries of one array task: marks replaced, templated paths declared
 * into c->files (given back by the caller once the task holds them). */
static int subst_files(struct array_ctx *c, const struct xy_wf_file *in,
		       size_t n, struct xy_wf_file *out, const char *idx,
		       char *err, size_t errlen)
{
	for (size_t j = 0; j < n; j++) {
		out[j] = in[j];
		out[j].as = subst(in[j].as, idx, c->line);
		out[j].path = NULL;
		if (!out[j].as)
			return -1;
		if (!templated(in[j].path))
			continue;
		char *p = subst(in[j].path, idx, c->line), *full = p;

		if (p && p[0] != '/' &&
		    asprintf(&full, "%s/%s", c->cwd, p) < 0)
			full = NULL;
		if (full != p)
			free(p);
		out[j].path = full;
		if (!full)
			return -1;
		c->files[in[j].ref] = xy_manager_declare_file(
			c->r->m, full, in[j].cache, err, errlen);
		if (!c->files[in[j].ref])
			return -1;
	}
	return 0;
}

static void free_files_copy(struct array_ctx *c, const struct xy_wf_file *in,
			    struct xy_wf_file *f, size_t n)
{
	for (size_t j = 0; f && j < n; j++) {
		free(f[j].as);
		if (f[j].path && c->files[in[j].ref]) {
			xy_file_release(c->files[in[j].ref]);
			c->files[in[j].ref] = NULL;
		}
		free(f[j].path);
	}
	free(f);
}

static struct xy_task *make_task(struct run *r, const struct xy_wf_task *w,
				 struct xy_file **files, char *err,
				 size_t errlen);

/* An index whose task could not be made (a path or name that its line
 * makes unsafe, no memory): it counts as failed, with the reason. */
static void array_task_not_made(struct run *r, const char *id,
				const char *idx, const char *err)
{
	r->failed++;
	if (r->n_fails < MAX_FAILURES_SHOWN) {
		struct failure *f = &r->fails[r->n_fails];

		f->result = "not submitted";
		f->exit_code = -1;
		f->error = strdup(err);
		f->tail = strdup("");
		if (asprintf(&f->tag, "%s[%s]", id, idx) < 0)
			f->tag = NULL;
		if (f->tag && f->error && f->tail) {
			r->n_fails++;
		} else {
			free(f->tag);
			free(f->error);
			free(f->tail);
		}
	}
}

/* The manager's make function: task `index` of the array, its marks
 * replaced, XY_INDEX (and XY_LINE) in its environment, tagged ID[INDEX]. */
static struct xy_task *make_array_task(void *arg, uint64_t index, char *err,
				       size_t errlen)
{
	struct array_ctx *c = arg;
	const struct xy_wf_task *w = c->w;
	struct xy_wf_task copy = *w;
	char idx[32], *tag = NULL;
	struct xy_task *t = NULL;
	ssize_t got;

	if (xy_local_stops()) {
		errno = ECANCELED;
		return NULL;
	}
	snprintf(idx, sizeof idx, "%llu", (unsigned long long)index);
	if (c->lines) {
		got = getline(&c->line, &c->line_cap, c->lines);
		if (got < 0) {
			errno = ECANCELED; /* the file shrank: no more */
			return NULL;
		}
		if (got && c->line[got - 1] == '\n')
			c->line[got - 1] = '\0';
	}
	copy.inputs = calloc(w->n_inputs + 1, sizeof *copy.inputs);
	copy.outputs = calloc(w->n_outputs + 1, sizeof *copy.outputs);
	copy.env = calloc(w->n_env + 2, sizeof *copy.env);
	if (!copy.inputs || !copy.outputs || !copy.env ||
	    asprintf(&tag, "%s[%s]", w->id, idx) < 0)
		goto out;
	copy.id = tag;
	if (w->n_env)
		memcpy(copy.env, w->env, w->n_env * sizeof *copy.env);
	copy.env[copy.n_env++] = (struct xy_wf_env){"XY_INDEX", idx};
	if (c->lines)
		copy.env[copy.n_env++] = (struct xy_wf_env){"XY_LINE", c->line};
	if (subst_files(c, w->inputs, w->n_inputs, copy.inputs, idx, err,
			errlen) < 0 ||
	    subst_files(c, w->outputs, w->n_outputs, copy.outputs, idx, err,
			errlen) < 0)
		goto out;
	t = make_task(c->r, &copy, c->files, err, errlen);
out:
	if (!t && !err[0])
		snprintf(err, errlen, "%s", strerror(errno ? errno : ENOMEM));
	free_files_copy(c, w->inputs, copy.inputs, w->n_inputs);
	free_files_copy(c, w->outputs, copy.outputs, w->n_outputs);
	free(copy.env);
	free(tag);
	if (!t)
		array_task_not_made(c->r, w->id, idx, err);
	return t;
}

static void array_ctx_free(void *arg)
{
	struct array_ctx *c = arg;

	if (c->lines)
		fclose(c->lines);
	free(c->line);
	free(c->files);
	free(c);
}

static int submit_array(struct run *r, const struct xy_wf_task *w,
			struct xy_file **files, char *err, size_t errlen)
{
	struct array_ctx *c = calloc(1, sizeof *c);

	if (!c || !(c->files = calloc(r->wf->n_paths + 1, sizeof *files))) {
		free(c);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	memcpy(c->files, files, r->wf->n_paths * sizeof *files);
	c->r = r;
	c->w = w;
	if (!getcwd(c->cwd, sizeof c->cwd) ||
	    (w->array_lines && !(c->lines = fopen(w->array_lines, "r")))) {
		snprintf(err, errlen, "%s", strerror(errno));
		array_ctx_free(c);
		return -1;
	}
	if (xy_manager_submit_array(r->m, w->array_n, make_array_task, c,
				    array_ctx_free, err, errlen) < 0) {
		array_ctx_free(c);
		return -1;
	}
	return 0;
}

/* The workflow of `xylem run --array N -- COMMAND` (or --each-line):
 * one array task, named "array". */
static struct xy_workflow *array_workflow(const struct run_opts *o,
					  char *err, size_t errlen)
{
	json_t *task = json_pack("{s:s, s:s}", "id", "array", "command",
				 o->array_command);
	json_t *root = NULL, *arr;
	struct xy_workflow *w = NULL;
	char cwd[4096], *text = NULL;

	if (!task)
		goto out;
	arr = o->each_line ? json_pack("{s:s}", "lines", o->each_line)
			   : json_pack("{s:I}", "range",
				       (json_int_t)o->array_n);
	if (!arr || json_object_set_new(task, "array", arr) < 0)
		goto out;
	if (o->retries >= 0 &&
	    json_object_set_new(task, "retries", json_integer(o->retries)) < 0)
		goto out;
	root = json_pack("{s:[O]}", "tasks", task);
	text = root ? json_dumps(root, 0) : NULL;
	if (text && getcwd(cwd, sizeof cwd))
		w = xy_workflow_parse(text, strlen(text), "command line", cwd,
				      err, errlen);
out:
	if (!w && !err[0])
		snprintf(err, errlen, "%s", strerror(errno ? errno : ENOMEM));
	free(text);
	json_decref(root);
	json_decref(task);
	return w;
}

/* --------------------------------------------------------------- tasks */

static struct xy_task *make_task(struct run *r, const struct xy_wf_task *w,
				 struct xy_file **files, char *err, size_t errlen)
{
	struct xy_task *t = xy_task_create(w->command);
	int bad = !t || xy_task_set_tag(t, w->id) < 0;

	for (size_t j = 0; !bad && j < w->n_inputs; j++) {
		struct xy_file *f = files[w->inputs[j].ref];

		if (w->inputs[j].unpack)
			f = xy_manager_declare_unpack(r->m, f,
						      w->inputs[j].cache, err,
						      errlen);
		bad = !f || xy_task_add_input(t, f, w->inputs[j].as, err,
					      errlen) < 0;
	}
	for (size_t j = 0; !bad && j < w->n_outputs; j++)
		bad = xy_task_add_output(t, files[w->outputs[j].ref],
					 w->outputs[j].as, err, errlen) < 0;
	for (size_t j = 0; !bad && j < w->n_env; j++)
		bad = xy_task_set_env(t, w->env[j].name, w->env[j].value) < 0;
	if (bad) {
		if (!err[0])
			snprintf(err, errlen, "%s", strerror(errno));
		xy_task_delete(t);
		return NULL;
	}
	if (w->cores > 0)
		xy_task_set_cores(t, w->cores);
	if (w->memory_mb >= 0)
		xy_task_set_memory(t, w->memory_mb);
	if (w->disk_mb >= 0)
		xy_task_set_disk(t, w->disk_mb);
	if (w->gpus >= 0)
		xy_task_set_gpus(t, w->gpus);
	if (w->retries >= 0)
		xy_task_set_retries(t, w->retries);
	if (w->has_priority)
		xy_task_set_priority(t, w->priority);
	if (w->time_limit > 0)
		xy_task_set_time_limit(t, w->time_limit);
	return t;
}

/* Declares every distinct path once, then creates and submits every
 * task. */
static int submit_all(struct run *r)
{
	struct xy_file **files = calloc(r->wf->n_paths + 1, sizeof(*files));
	char err[1024] = "";
	int rc = -1;

	r->ids = calloc(r->wf->n_tasks + 1, sizeof(*r->ids));
	if (!files || !r->ids)
		goto out;
	for (size_t i = 0; i < r->wf->n_paths; i++) {
		const struct xy_wf_path *p = &r->wf->paths[i];

		if (templated(p->written))
			continue; /* an array task's: declared per index */
		if (p->temp)
			files[i] = xy_manager_declare_temp(r->m, p->cache, err,
							   sizeof err);
		else if (p->url)
			files[i] = xy_manager_declare_url(r->m, p->full,
							  p->cache, err,
							  sizeof err);
		else
			files[i] = xy_manager_declare_file(r->m, p->full,
							   p->cache, err,
							   sizeof err);
		if (!files[i]) {
			fprintf(stderr, "xylem run: \"%s\": %s\n", p->written, err);
			goto out;
		}
	}
	for (size_t i = 0; i < r->wf->n_tasks; i++) {
		const struct xy_wf_task *w = &r->wf->tasks[i];
		struct xy_task *t;

		r->n_ids = i + 1;
		if (w->array_n) {
			if (submit_array(r, w, files, err, sizeof err) < 0) {
				fprintf(stderr, "xylem run: task \"%s\": %s\n",
					w->id, err);
				goto out;
			}
			r->n_submitted += w->array_n;
			continue;
		}
		t = make_task(r, w, files, err, sizeof err);

		if (t && !(r->ids[i] = xy_manager_submit(r->m, t, err, sizeof err)))
			xy_task_delete(t);
		if (!t || !r->ids[i]) {
			fprintf(stderr, "xylem run: task \"%s\": %s\n", w->id, err);
			goto out;
		}
		r->n_submitted++;
	}
	rc = 0;
out:
	if (rc < 0 && (!files || !r->ids))
		fprintf(stderr, "xylem run: out of memory\n");
	free(files);
	return rc;
}

/* Cancels every submitted task; those already done answer ENOENT. */
static void cancel_all(struct run *r)
{
	for (size_t i = 0; i < r->n_ids; i++)
		if (r->ids[i])
			xy_manager_cancel(r->m, r->ids[i]);
}

/* -------------------------------------------------------------- waiting */

/* The last TAIL_LINES lines of a task's output, at most TAIL_BYTES. */
static char *output_tail(const struct xy_task *t)
{
	size_t len = 0;
	const char *out = xy_task_output(t, &len), *p;
	int lines = 0;

	if (!out)
		return strdup("");
	while (len && (out[len - 1] == '\n' || out[len - 1] == '\0'))
		len--;
	p = out + len;
	while (p > out && len - (size_t)(p - out) < TAIL_BYTES) {
		if (p[-1] == '\n' && ++lines == TAIL_LINES)
			break;
		p--;
	}
	return strndup(p, len - (size_t)(p - out));
}

static void collect(struct run *r, struct xy_task *t)
{
	xy_result res = xy_task_result(t);

	if (res == XY_RESULT_SUCCESS) {
		r->succeeded++;
	} else if (res == XY_RESULT_CANCELLED && xy_local_stops()) {
		r->cancelled++;
	} else {
		r->failed++;
		if (r->n_fails < MAX_FAILURES_SHOWN) {
			struct failure *f = &r->fails[r->n_fails++];

			f->tag = strdup(xy_task_tag(t) ? xy_task_tag(t) : "?");
			f->result = xy_result_string(res);
			f->exit_code = xy_task_exit_code(t);
			f->error = strdup(xy_task_error(t) ? xy_task_error(t) : "");
			f->tail = output_tail(t);
		}
	}
	xy_task_delete(t);
}

static void show_progress(struct run *r, int force)
{
	struct xy_stats st;
	struct xy_progress_counts c;

	xy_manager_stats(r->m, &st);
	c.done = r->succeeded + r->failed + r->cancelled;
	c.total = (int64_t)r->n_submitted;
	c.running = st.tasks_running;
	c.failed = r->failed;
	xy_progress_update(&r->progress, &c, force);
}

/* Collects tasks until none is outstanding. A first signal cancels the
 * rest and waits a little for them; a second stops waiting at once. */
static void wait_all(struct run *r)
{
	double cancel_deadline = 0, next_reap = 0;

	while (xy_manager_outstanding(r->m) > 0) {
		struct xy_task *t;

		if (xy_local_stops() && !cancel_deadline) {
			xy_progress_clear(&r->progress);
			fprintf(stderr, "xylem run: interrupted, cancelling"
				" tasks\n");
			cancel_all(r);
			cancel_deadline = xy_mono() +
					  XY_LOCAL_CANCEL_GRACE_S;
		}
		if (xy_local_stops() > 1 ||
		    (cancel_deadline && xy_mono() > cancel_deadline))
			break;
		t = xy_manager_wait(r->m, 0.25);
		if (t)
			collect(r, t);
		else if (errno == ENOENT)
			break;
		if (r->local.n_workers && xy_mono() >= next_reap) {
			next_reap = xy_mono() + 0.25;
			if (xy_local_reap(&r->local) == 0 && !r->workers_gone) {
				r->workers_gone = 1;
				xy_progress_clear(&r->progress);
				fprintf(stderr, "xylem run: every local worker"
					" exited; cancelling the rest\n");
				cancel_all(r);
				cancel_deadline = xy_mono() +
						  XY_LOCAL_CANCEL_GRACE_S;
			}
		}
		show_progress(r, 0);
	}
}

/* ------------------------------------------------------------- summary */

static void print_failure(const struct failure *f)
{
	fprintf(stderr, "failed: task \"%s\": %s", f->tag, f->result);
	if (f->exit_code >= 0) /* -1: the command never ran or was killed */
		fprintf(stderr, ", exit code %d", f->exit_code);
	fputc('\n', stderr);
	if (f->error[0])
		fprintf(stderr, "  error: %s\n", f->error);
	if (f->tail[0]) {
		const char *line = f->tail;

		fprintf(stderr, "  output (last lines):\n");
		while (*line) {
			const char *nl = strchr(line, '\n');
			int n = nl ? (int)(nl - line) : (int)strlen(line);

			fprintf(stderr, "    | %.*s\n", n, line);
			line += n + (nl != NULL);
		}
	}
}

static void print_summary(struct run *r)
{
	double wall = xy_progress_elapsed(&r->progress);
	int64_t done = r->succeeded + r->failed;

	xy_progress_clear(&r->progress);
	for (size_t i = 0; i < r->n_fails; i++)
		print_failure(&r->fails[i]);
	if (r->failed > (int64_t)r->n_fails)
		fprintf(stderr, "... and %lld more failed tasks\n",
			(long long)(r->failed - (int64_t)r->n_fails));
	struct xy_stats st;
	xy_manager_stats(r->m, &st);
	XY_LOGI("run", "file bodies: %lld bytes sent, %lld received",
		(long long)st.bytes_sent, (long long)st.bytes_received);
	if (r->o.quiet && !r->failed && !xy_local_stops())
		return;
	fprintf(stderr, "xylem run: %lld task%s: %lld succeeded, %lld failed",
		(long long)r->n_submitted, r->n_submitted == 1 ? "" : "s",
		(long long)r->succeeded, (long long)r->failed);
	if ((int64_t)r->n_submitted > done)
		fprintf(stderr, ", %lld cancelled",
			(long long)((int64_t)r->n_submitted - r->succeeded -
				    r->failed));
	if (st.tasks_skipped)
		fprintf(stderr, " (%lld finished before: not run again)",
			(long long)st.tasks_skipped);
	if (st.tasks_adopted)
		fprintf(stderr, " (%lld taken back from workers that kept"
			" them)", (long long)st.tasks_adopted);

	fprintf(stderr, " in %.2f s (%.1f tasks/s)\n", wall,
		wall > 0 ? (double)done / wall : 0.0);
}

static void cleanup(struct run *r)
{
	xy_local_free(&r->local);
	for (int i = 0; i < r->o.n_pools; i++)
		xy_cli_pool_free(r->o.pools[i]);
	r->o.n_pools = 0;
	r->m = NULL;
	for (size_t i = 0; i < r->n_fails; i++) {
		free(r->fails[i].tag);
		free(r->fails[i].error);
		free(r->fails[i].tail);
	}
	free(r->ids);
	xy_workflow_free(r->wf);
}

/* Everything from the manager's start to the last task. */
static int execute(struct run *r)
{
	r->local.tls_dir = r->o.tls_dir;
	r->local.no_tls = r->o.no_tls;
	if (r->o.journal)
		xy_local_journal(&r->local, r->o.journal);
	if (xy_local_tmpdir(&r->local, "xylem-run") < 0 ||
	    xy_local_secret(&r->local, r->o.secret_file) < 0 ||
	    start_manager(r) < 0)
		return XY_EXIT_FAIL;
	if (xy_workflow_output_dirs(r->wf, "xylem run") < 0 ||
	    submit_all(r) < 0)
		return XY_EXIT_FAIL;
	xy_local_catch_signals();
	if (r->n_submitted && xy_local_start_workers(&r->local) < 0)
		return XY_EXIT_FAIL;
	wait_all(r);
	print_summary(r);
	linger(r);
	if (xy_local_stops())
		return xy_local_stop_status();
	return r->failed || r->workers_gone ? XY_EXIT_FAIL : XY_EXIT_OK;
}

int xy_cli_run(int argc, char **argv)
{
	struct run r;
	char err[2048] = "";
	struct xy_local *l = &r.local;
	int rc;

	memset(&r, 0, sizeof r);
	r.local.who = "xylem run";
	rc = parse_args(argc, argv, &r.o);
	if (rc >= 0) {
		cleanup(&r);
		return rc;
	}
	xy_log_set_level(XY_LOG_WARN);
	r.wf = r.o.array_command ? array_workflow(&r.o, err, sizeof err)
				 : xy_workflow_load(r.o.workflow, err, sizeof err);
	if (!r.wf) {
		fprintf(stderr, "xylem run: %s\n", err);
		cleanup(&r);
		return XY_EXIT_USAGE;
	}
	if (r.o.manager) {
		struct xy_run_remote_opts ro = {
			.manager = r.o.manager, .secret_file = r.o.secret_file,
			.tls_ca = r.o.tls_ca, .no_tls = r.o.no_tls,
			.quiet = r.o.quiet,
		};
		rc = xy_run_remote(r.wf, &ro);
		cleanup(&r);
		return rc;
	}
	/* Pools bring the workers: none local unless asked for. */
	if (r.o.n_pools && r.o.workers < 0)
		r.o.workers = 0;
	l->log_dir = r.o.log_dir;
	xy_local_size(l, r.o.workers, r.o.cores_per_worker);
	if (check_fits(&r) < 0) {
		cleanup(&r);
		return XY_EXIT_USAGE;
	}
	warn_missing_inputs(&r);
	xy_progress_init(&r.progress, stderr, !r.o.quiet);
	rc = execute(&r);
	cleanup(&r);
	return rc;
}
