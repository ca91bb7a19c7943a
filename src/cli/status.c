/*
 * status.c: `xylem status HOST:PORT`. Connects to a running manager as a
 * status client (conn.h, role STATUS) on a private libuv loop, asks once
 * with STATUS_REQ, and prints the STATUS_REPLY document: as it is with
 * --json, or as a table of tasks by state, of workers and of pools. The
 * table is printed from whatever keys are present, so a manager that adds
 * or lacks a field still gets a readable answer.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>
#include <uv.h>

#include "cli.h"
#include "conn.h"
#include "log.h"
#include "proto.h"
#include "status_history.h"
#include "util.h"

#define STATUS_TIMEOUT_MS 10000

struct status_query {
	uv_loop_t loop;
	uv_timer_t timer;
	struct xy_conn *conn;
	char *json;        /* the reply, once it came */
	char reason[512];  /* why there is no reply */
	int authenticated; /* the handshake succeeded */
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: xylem status HOST:PORT [TASK] [options]\n"
		"       xylem status HISTORY [TASK] [options]\n\n"
		"Asks a running manager for its tasks and workers, or reads a"
		" run's\nhistory (an SQLite file from --history). With"
		" TASK (a task id, or a tag:\na workflow task's name, a Python"
		" function's), shows that task's events\nand the tail of its"
		" output; a live manager must keep a history for that.\n\n"
		"options:\n"
		"  --secret-file F  read the manager's shared secret from F\n"
		"                   (default: the XYLEM_SECRET variable)\n"
		"  --tls-ca F       verify the manager against the CA in F (its"
		" ca.crt;\n                   default: XYLEM_TLS_CA)\n"
		"  --no-tls         plain TCP (a manager run with --no-tls)\n"
		"  --json           print the manager's JSON document as it"
		" is\n"
		"  --tasks          also list a live manager's tasks (from its"
		" history)\n"
		"  --state S        only tasks waiting, running, succeeded,"
		" failed or done\n"
		"  --tag T          only tasks tagged T\n"
		"  --worker W       only tasks that ran last on worker W\n"
		"  --limit N        list at most N tasks (default 50; 0: all)\n"
		"  --run N          the Nth run in the history (default: its"
		" last)\n"
		"  --help           show this help\n\n"
		"Exit status: 0 on an answer, 1 if the manager could not be"
		" reached,\nrefused the secret or did not answer within 10 s,"
		" or the task is unknown,\n2 for a bad command line.\n");
}

/* ------------------------------------------------------------ the query */

static void on_ready(struct xy_conn *c, uint8_t role)
{
	struct status_query *q = xy_conn_data(c);

	q->authenticated = 1;
	if (xy_conn_send(c, XY_MSG_STATUS_REQ, NULL) < 0)
		xy_conn_close(c, "cannot send the request");
}

static void on_msg(struct xy_conn *c, unsigned type, union xy_msg *m)
{
	struct status_query *q = xy_conn_data(c);

	if (type != XY_MSG_STATUS_REPLY)
		return; /* keepalives and the like */
	q->json = m->status_reply.json;
	m->status_reply.json = NULL;
	xy_conn_close(c, "done");
}

static void on_timer_closed(uv_handle_t *h)
{
	(void)h;
}

static void on_close(struct xy_conn *c, const char *reason)
{
	struct status_query *q = xy_conn_data(c);

	q->conn = NULL;
	if (!q->json)
		snprintf(q->reason, sizeof q->reason, "%s", reason);
	uv_timer_stop(&q->timer);
	uv_close((uv_handle_t *)&q->timer, on_timer_closed);
}

static void on_timeout(uv_timer_t *t)
{
	struct status_query *q = t->data;

	if (q->conn)
		xy_conn_close(q->conn, "no answer within 10 s");
}

/* Runs the exchange to its end. Returns the reply or NULL with a reason in
 * q->reason. */
static char *query(struct status_query *q, const char *host, int port,
		   const void *secret, size_t secret_len, SSL_CTX *tls)
{
	struct xy_conn_opts opts = {
		.tls = tls,
		.secret = secret,
		.secret_len = secret_len,
		.role = XY_ROLE_STATUS,
		.on_ready = on_ready,
		.on_msg = on_msg,
		.on_close = on_close,
		.data = q,
	};

	if (uv_loop_init(&q->loop) < 0) {
		snprintf(q->reason, sizeof q->reason, "cannot make a loop");
		return NULL;
	}
	uv_timer_init(&q->loop, &q->timer);
	q->timer.data = q;
	q->conn = xy_conn_connect(&q->loop, host, port, &opts);
	if (!q->conn) {
		snprintf(q->reason, sizeof q->reason, "out of memory");
		uv_close((uv_handle_t *)&q->timer, on_timer_closed);
	} else {
		uv_timer_start(&q->timer, on_timeout, STATUS_TIMEOUT_MS, 0);
	}
	uv_run(&q->loop, UV_RUN_DEFAULT);
	uv_loop_close(&q->loop);
	return q->json;
}

/* --------------------------------------------------------------- table */

static json_int_t int_of(json_t *obj, const char *key, int *present)
{
	json_t *v = json_object_get(obj, key);

	*present = json_is_number(v);
	if (json_is_integer(v))
		return json_integer_value(v);
	return json_is_real(v) ? (json_int_t)json_real_value(v) : 0;
}

static const char *str_of(json_t *obj, const char *key, const char *dflt)
{
	json_t *v = json_object_get(obj, key);

	return json_is_string(v) ? json_string_value(v) : dflt;
}

static void human_bytes(double b, char *out, size_t n)
{
	static const char *const units[] = {"B", "KB", "MB", "GB", "TB"};
	int u = 0;

	while (b >= 1000 && u < 4) {
		b /= 1000;
		u++;
	}
	snprintf(out, n, u ? "%.1f %s" : "%.0f %s", b, units[u]);
}

static void print_manager(json_t *root)
{
	json_t *mgr = json_object_get(root, "manager");
	json_t *up = json_object_get(mgr, "uptime");
	int has_port;
	json_int_t port = int_of(mgr, "port", &has_port);

	if (!json_is_object(mgr))
		return;
	printf("manager  %s", str_of(mgr, "name", "?"));
	if (has_port)
		printf(", port %lld", (long long)port);
	if (json_is_number(up))
		printf(", up %.0f s", json_number_value(up));
	printf("\n");
}

/* The task counters as one sentence. The manager's "done" counts tasks
 * finished but not yet returned to the program, "succeeded" and "failed"
 * those returned: printed side by side as bare words they read as if
 * nothing were done ("done 0 succeeded 4"), so each is named for what it
 * counts. */
static void print_tasks(json_t *root)
{
	static const char *const known[] = {"waiting", "ready", "running",
					    "done", "succeeded", "failed"};
	json_t *tasks = json_object_get(root, "tasks");
	json_int_t n[6];
	int has[6];
	const char *key;
	json_t *v;

	if (!json_is_object(tasks))
		return;
	for (int i = 0; i < 6; i++)
		n[i] = int_of(tasks, known[i], &has[i]);
	printf("tasks    %lld returned (%lld succeeded, %lld failed),"
	       " %lld finished and not yet returned, %lld running,"
	       " %lld ready, %lld waiting",
	       (long long)(n[4] + n[5]), (long long)n[4], (long long)n[5],
	       (long long)n[3], (long long)n[2], (long long)n[1],
	       (long long)n[0]);
	/* Any state this version does not know of, too. */
	json_object_foreach(tasks, key, v) {
		size_t i = 0;

		while (i < 6 && strcmp(key, known[i]))
			i++;
		if (i == 6 && json_is_integer(v))
			printf(", %s %lld", key, (long long)json_integer_value(v));
	}
	printf("\n");
}

static void print_worker(json_t *w)
{
	char cores[32], mem[32], left[32];
	int p1, p2, p3, p4, p5, p6;
	json_int_t total = int_of(w, "cores", &p1);
	json_int_t used = int_of(w, "cores_used", &p2);
	json_int_t memory = int_of(w, "memory", &p3);
	json_int_t gpus = int_of(w, "gpus", &p4);
	json_int_t running = int_of(w, "running", &p5);
	json_int_t done = int_of(w, "done", &p6);

	if (p1 && p2)
		snprintf(cores, sizeof cores, "%lld/%lld", (long long)used,
			 (long long)total);
	else if (p1)
		snprintf(cores, sizeof cores, "%lld", (long long)total);
	else
		snprintf(cores, sizeof cores, "-");
	if (p3)
		human_bytes((double)memory * 1e6, mem, sizeof mem);
	else
		snprintf(mem, sizeof mem, "-");
	/* Its walltime: what is left for tasks, or "-" for no end. */
	json_t *tl = json_object_get(w, "time_left");
	if (json_is_number(tl)) {
		double v = json_number_value(tl);
		long sec = (long)floor(v);
		if (sec >= 3600)
			snprintf(left, sizeof left, "%ldh%02ldm", sec / 3600,
				 sec % 3600 / 60);
		else if (sec >= 60)
			snprintf(left, sizeof left, "%ldm%02lds", sec / 60,
				 sec % 60);
		else
			snprintf(left, sizeof left, "%lds", sec);
	} else {
		snprintf(left, sizeof left, "-");
	}
	printf("  %-28s %-16s %-9s %-9s %4lld %7lld %7lld %8s\n",
	       str_of(w, "name", "?"), str_of(w, "host", "-"), cores, mem,
	       (long long)(p4 ? gpus : 0), (long long)(p5 ? running : 0),
	       (long long)(p6 ? done : 0), left);
}

static void print_workers(json_t *root)
{
	json_t *workers = json_object_get(root, "workers"), *w;
	size_t i;

	if (!json_is_array(workers))
		return;
	printf("workers  %zu\n", json_array_size(workers));
	if (!json_array_size(workers))
		return;
	printf("  %-28s %-16s %-9s %-9s %4s %7s %7s %8s\n", "NAME", "HOST",
	       "CORES", "MEMORY", "GPUS", "RUNNING", "DONE", "LEFT");
	json_array_foreach(workers, i, w)
		if (json_is_object(w))
			print_worker(w);
}

/* A pool: its shape and counts, the scaler's last reason, its last
 * failure, and its recent jobs with their states and why they ended. */
static void print_pool(json_t *p)
{
	int k;
	json_t *jobs = json_object_get(p, "jobs"), *j;
	size_t i;
	const char *fail = str_of(p, "last_failure", "");

	printf("  %s (%s): %lld cores, %lld GPUs, %lld MB a worker; %lld "
	       "connected, %lld pending; %lld submitted, %lld ended\n",
	       str_of(p, "name", "?"), str_of(p, "provider", "?"),
	       (long long)int_of(p, "cores", &k),
	       (long long)int_of(p, "gpus", &k),
	       (long long)int_of(p, "memory", &k),
	       (long long)int_of(p, "connected", &k),
	       (long long)int_of(p, "pending", &k),
	       (long long)int_of(p, "submitted", &k),
	       (long long)int_of(p, "ended", &k));
	printf("    why: %s\n", str_of(p, "why", "-"));
	if (*fail)
		printf("    last failure: %s\n", fail);
	if (!json_array_size(jobs))
		return;
	printf("    %-10s %-28s %-10s %-10s %s\n", "JOB", "NAME", "STATE",
	       "BATCH", "WHY");
	json_array_foreach(jobs, i, j)
		printf("    %-10s %-28s %-10s %-10s %s\n", str_of(j, "id", "-"),
		       str_of(j, "name", "?"), str_of(j, "state", "?"),
		       *str_of(j, "batch_state", "") ?
			       str_of(j, "batch_state", "") : "-",
		       str_of(j, "why", ""));
}

static void print_pools(json_t *root)
{
	json_t *pools = json_object_get(root, "pools"), *p;
	size_t i;

	if (!json_array_size(pools))
		return;
	printf("pools    %zu\n", json_array_size(pools));
	json_array_foreach(pools, i, p)
		if (json_is_object(p))
			print_pool(p);
}

static void print_table(json_t *root)
{
	int has_sent, has_recv;
	json_int_t sent = int_of(root, "bytes_sent", &has_sent);
	json_int_t recv = int_of(root, "bytes_received", &has_recv);
	char a[32], b[32];

	print_manager(root);
	print_tasks(root);
	print_workers(root);
	print_pools(root);
	if (has_sent || has_recv) {
		human_bytes((double)sent, a, sizeof a);
		human_bytes((double)recv, b, sizeof b);
		printf("data     %s sent, %s received\n", a, b);
	}
}

/* ------------------------------------------------------------- command */

struct status_args {
	const char *where, *task, *secret_file, *tls_ca;
	int as_json, no_tls, tasks;
	struct xy_status_filter filter;
};

static int bad_usage(const char *fmt, const char *arg)
{
	fprintf(stderr, "xylem status: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n(see 'xylem status --help')\n");
	return XY_EXIT_USAGE;
}

static int parse_args(int argc, char **argv, struct status_args *a)
{
	enum { O_STATE = 256, O_TAG, O_WORKER, O_LIMIT, O_RUN, O_TASKS };
	static const struct option longopts[] = {
		{"secret-file", required_argument, NULL, 's'},
		{"tls-ca", required_argument, NULL, 'C'},
		{"no-tls", no_argument, NULL, 'N'},
		{"json", no_argument, NULL, 'j'},
		{"state", required_argument, NULL, O_STATE},
		{"tag", required_argument, NULL, O_TAG},
		{"worker", required_argument, NULL, O_WORKER},
		{"limit", required_argument, NULL, O_LIMIT},
		{"run", required_argument, NULL, O_RUN},
		{"tasks", no_argument, NULL, O_TASKS},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	static const char *const states[] = {"waiting", "running", "succeeded",
					     "failed", "done", NULL};
	char *end;
	int c;

	a->filter.limit = 50;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'C': a->tls_ca = optarg; break;
		case 'N': a->no_tls = 1; break;
		case 's': a->secret_file = optarg; break;
		case 'j': a->as_json = 1; break;
		case O_TAG: a->filter.tag = optarg; a->tasks = 1; break;
		case O_WORKER: a->filter.worker = optarg; a->tasks = 1; break;
		case O_TASKS: a->tasks = 1; break;
		case O_STATE:
			a->filter.state = optarg;
			a->tasks = 1;
			for (c = 0; states[c] && strcmp(states[c], optarg); c++)
				;
			if (!states[c])
				return bad_usage("--state is one of waiting,"
						 " running, succeeded, failed,"
						 " done, not '%s'", optarg);
			break;
		case O_LIMIT:
		case O_RUN: {
			long long v = strtoll(optarg, &end, 10);
			if (!*optarg || *end || v < 0)
				return bad_usage("not a count: '%s'", optarg);
			if (c == O_LIMIT)
				a->filter.limit = v;
			else
				a->filter.run = v;
			break;
		}
		case 'h':
			usage(stdout);
			return XY_EXIT_OK;
		default:
			return bad_usage("unknown option or missing value: '%s'",
					 argv[optind - 1]);
		}
	}
	if (optind >= argc || optind < argc - 2)
		return bad_usage("%s", optind < argc ? "give HOST:PORT or"
				 " HISTORY, and at most one TASK" :
				 "no HOST:PORT or HISTORY given");
	a->where = argv[optind];
	a->task = optind + 1 < argc ? argv[optind + 1] : NULL;
	return -1;
}

/* The task view of a live manager's answer: from the history it names. */
static int show_history_of(const char *text, const struct status_args *a)
{
	json_t *root = json_loads(text, 0, NULL);
	const char *path = str_of(root, "history", NULL);
	int rc;

	if (!path) {
		fprintf(stderr, "xylem status: %s keeps no run history, where"
			" tasks are listed (start it with --history FILE)\n",
			a->where);
		json_decref(root);
		return XY_EXIT_FAIL;
	}
	rc = xy_status_history(path, a->task, &a->filter);
	json_decref(root);
	return rc;
}

static int show(const char *text, int as_json)
{
	json_error_t jerr;
	json_t *root;

	if (as_json) {
		printf("%s\n", text);
		return XY_EXIT_OK;
	}
	root = json_loads(text, 0, &jerr);
	if (!root) {
		fprintf(stderr, "xylem status: the manager's answer is not JSON"
			" (%s); here it is:\n%s\n", jerr.text, text);
		return XY_EXIT_FAIL;
	}
	print_table(root);
	json_decref(root);
	return XY_EXIT_OK;
}

static int is_file(const char *path)
{
	struct stat sb;
	return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

int xy_cli_status(int argc, char **argv)
{
	struct status_args a;
	SSL_CTX *tls = NULL;
	char host[256], err[512];
	struct status_query q;
	int port, rc;
	char *secret = NULL, *text;
	size_t secret_len = 0;

	memset(&a, 0, sizeof a);
	rc = parse_args(argc, argv, &a);
	if (rc >= 0)
		return rc;
	if (is_file(a.where))
		return xy_status_history(a.where, a.task, &a.filter);
	if (xy_parse_hostport(a.where, host, sizeof host, &port) < 0 ||
	    port <= 0) {
		fprintf(stderr, "xylem status: '%s' is neither HOST:PORT nor a"
			" history file\n", a.where);
		return XY_EXIT_USAGE;
	}
	if (a.secret_file) {
		secret = xy_read_secret(a.secret_file, &secret_len, err,
					sizeof err);
		if (!secret) {
			fprintf(stderr, "xylem status: %s\n", err);
			return XY_EXIT_FAIL;
		}
	} else if (getenv("XYLEM_SECRET")) {
		secret = strdup(getenv("XYLEM_SECRET"));
		secret_len = secret ? strlen(secret) : 0;
	}
	if (xy_cli_tls_client("xylem status", a.tls_ca, a.no_tls, &tls) < 0) {
		free(secret);
		return XY_EXIT_USAGE;
	}
	/* The connection's own warnings would repeat what we say below. */
	xy_log_set_level(XY_LOG_ERROR);
	memset(&q, 0, sizeof q);
	text = query(&q, host, port, secret ? secret : "", secret_len, tls);
	SSL_CTX_free(tls);
	free(secret);
	if (!text) {
		const char *where = a.where;
		if (strstr(q.reason, "secret") && !secret_len)
			fprintf(stderr, "xylem status: %s wants its shared"
				" secret, and none was given (--secret-file F,"
				" or XYLEM_SECRET)\n", where);
		else if (strstr(q.reason, "secret"))
			fprintf(stderr, "xylem status: %s refused the secret"
				" (%s; check --secret-file)\n", where, q.reason);
		else
			fprintf(stderr, "xylem status: %s: %s%s\n", where,
				q.authenticated ? "" : "cannot talk to the"
				" manager: ", q.reason);
		return XY_EXIT_FAIL;
	}
	if (a.task)
		rc = show_history_of(text, &a);
	else {
		rc = show(text, a.as_json);
		if (rc == XY_EXIT_OK && a.tasks && !a.as_json) {
			printf("\n");
			rc = show_history_of(text, &a);
		}
	}
	free(text);
	return rc;
}
