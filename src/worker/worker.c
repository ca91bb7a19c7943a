/*
 * worker.c: the `xylem worker` daemon: its command line, its parts (cache,
 * transfer server, fetcher, process runner, tasks), the control connection
 * to the manager with its table of message handlers, and the main loop as
 * a short list of phases. Pairs with worker.h (the entry point the CLI
 * calls) and with tasks.c, library.c, fetch.c, cache.c and exec.c, which
 * do the work.
 */
#include "worker.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "cache.h"
#include "conn.h"
#include "exec.h"
#include "fetch.h"
#include "hold.h"
#include "library.h"
#include "log.h"
#include "logdir.h"
#include "proto.h"
#include "resources.h"
#include "tasks.h"
#include "taskusers.h"
#include "tls.h"
#include "unpack.h"
#include "urlfetch.h"
#include "util.h"
#include "walltime.h"
#include "xfer.h"
#include "xylem.h"

#define KEEPALIVE_MS 30000
#define STOP_POLL_MS 10
#define STOP_WAIT_MS 2000 /* for killed children to be reaped */
/* Waiting for a manager that is not up yet: tries spaced from 0.1 s,
 * doubling to 5 s, each with jitter, so that a thousand workers a batch
 * system started at once do not knock in step; a line in the log at
 * the start and then every 60 s. */
#define CONNECT_TIMEOUT_S 300.0
#define RETRY_FIRST_MS 100
#define RETRY_MAX_MS 5000
#define RETRY_NOTE_MS 60000
/* The walltime (docs/worker.md, "Walltime"): drain this long before the
 * end by default, and wait this long for squeue to say when it is. */
#define DRAIN_LEAD_S 60.0
#define SQUEUE_TIMEOUT_S 20.0

enum phase { W_RUNNING, W_STOPPING, W_DONE };

struct worker_config {
	char host[256];
	int port;
	char *secret;
	size_t secret_len;
	char *name;
	char *xfer_host;
	const char *cache_dir;
	struct xy_resources res;
	unsigned given; /* XY_RES_* bits: the resources the flags set */
	double connect_timeout; /* seconds to wait for the manager; 0: once */
	double drain_grace; /* after SIGUSR1, seconds before what runs is
			    * returned; 0: none, wait for it to finish */
	double end_time;   /* --end-time: seconds since the epoch; 0: none */
	double walltime;   /* --walltime: seconds from the start; 0: none */
	double drain_lead; /* drain this many seconds before the end */
	const char *tls_ca; /* --tls-ca, else XYLEM_TLS_CA */
	int no_tls;         /* --no-tls */
	SSL_CTX *tls;       /* verifies the manager; NULL: plain TCP */
	double lease; /* --lease: seconds; < 0: the manager's (WELCOME) */
	const char *task_users_arg;  /* --task-users, else XYLEM_TASK_USERS */
	struct xy_taskusers *users; /* from it; NULL: tasks run as us */
	const char *log_dir; /* --log-dir: logs kept there (logdir.h) */
};

/* Tries to reach the manager, until the first handshake is done. */
struct connecting {
	uint64_t start;     /* loop ms (monotonic) of the first try */
	uint64_t limit;     /* ms from start to give up */
	uint64_t backoff;   /* ms: the next pause before jitter */
	uint64_t next_note; /* loop ms of the next "still waiting" line */
	unsigned tries;
	unsigned seed; /* for the jitter */
};

struct xy_daemon {
	struct worker_config cfg;
	uv_loop_t loop;
	int loop_ready;
	struct xy_cache *cache;
	struct xy_xfer_server *xfer;
	struct xy_exec *exec;
	struct xy_fetcher *fetcher;
	struct xy_libs *libs;
	struct xy_tasks *tasks;
	struct xy_unpacker *unpacker;
	struct xy_urlfetch *urls;
	struct xy_hold *hold; /* reports kept for a manager that comes back */
	struct xy_conn *conn;
	uv_signal_t sigterm, sigint, sigusr1;
	uv_timer_t keepalive, stop_timer, retry_timer, drain_timer;
	uv_timer_t end_timer; /* drains the worker a lead before its end */
	uint64_t lease_ms; /* keep tasks and cache this long without one */
	int lost; /* the manager was lost; the lease runs until it is back */
	int draining; /* SIGUSR1: said DRAIN, waits for SHUTDOWN */
	int has_end;     /* its walltime is known */
	double end_wall; /* its end, in seconds since the epoch */
	uint64_t end_ms; /* the same on the loop's (monotonic) clock */
	int handles_ready;
	struct connecting cx;
	enum phase phase;
	int connected;
	int exit_code;
	uint64_t stop_deadline; /* loop ms */
};

/* ------------------------------------------------------ command line */

static const char usage_text[] =
	"usage: xylem worker HOST:PORT [options]\n"
	"\n"
	"Connects to the manager at HOST:PORT, caches the files it sends, and\n"
	"runs its tasks in sandboxes.\n"
	"\n"
	"  --secret-file F       read the shared secret from F\n"
	"                        (default: the XYLEM_SECRET variable)\n"
	"  --tls-ca F            verify the manager's TLS certificate against\n"
	"                        the CA in F, the manager's ca.crt (default:\n"
	"                        the XYLEM_TLS_CA variable)\n"
	"  --no-tls              plain TCP: no encryption; each message still\n"
	"                        carries a MAC (also XYLEM_NO_TLS=1)\n"
	"  --task-users LIST     as root: run each task and library instance\n"
	"                        under one of these accounts (names or uids,\n"
	"                        comma-separated), its sandbox theirs, 0700\n"
	"                        (also XYLEM_TASK_USERS)\n"
	"  --cores N             cores to offer (default: the Slurm job's\n"
	"                        SLURM_CPUS_ON_NODE, else all online)\n"
	"  --memory MB           memory to offer (default: the Slurm job's\n"
	"                        SLURM_MEM_PER_NODE, else MemTotal)\n"
	"  --disk MB             disk to offer (default: free space under the "
	"cache)\n"
	"  --gpus N              GPUs to offer (default: the Slurm job's\n"
	"                        SLURM_GPUS_ON_NODE, else the count of\n"
	"                        CUDA_VISIBLE_DEVICES or of /dev/nvidia*)\n"
	"  --cache DIR           keep the cache in DIR; its forever/ objects\n"
	"                        survive restarts (default: a temporary\n"
	"                        directory, removed at exit)\n"
	"  --name NAME           the worker's name (default: HOSTNAME:PID)\n"
	"  --transfer-host ADDR  address other hosts use to fetch from this\n"
	"                        worker (default: the one the manager sees)\n"
	"  --connect-timeout S   wait up to S seconds for a manager not up\n"
	"                        yet, trying again with growing pauses\n"
	"                        (default: 300; 0: try once); a manager\n"
	"                        that refuses the secret or the version\n"
	"                        ends the worker at once\n"
	"  --lease S             once the manager is lost, keep running"
	" tasks, their\n"
	"                        results and the cache for S seconds,"
	" trying to\n"
	"                        reconnect (default: what the manager says:"
	" 300\n"
	"                        when it keeps a journal, else 0: stop)\n"
	"  --log-dir DIR         keep this worker's log (info level) and its"
	" library\n"
	"                        instances' output in files under DIR,"
	" which\n"
	"                        outlive it (default: the log on stderr)\n"
	"  --drain-grace S       on SIGUSR1 (a drain: no new tasks, then exit\n"
	"                        0), return to the manager whatever still\n"
	"                        runs after S seconds (default: 0, wait for\n"
	"                        it to finish)\n"
	"  --walltime S          this worker must end S seconds after it\n"
	"                        starts (default: the Slurm job's end, from\n"
	"                        SLURM_JOB_END_TIME or squeue; none outside\n"
	"                        a job)\n"
	"  --end-time EPOCH      the same, as seconds since the epoch\n"
	"  --drain-lead S        drain (as on SIGUSR1) S seconds before that\n"
	"                        end (default: 60, or a quarter of a shorter\n"
	"                        walltime); the manager gives it no task\n"
	"                        whose time limit it could not finish\n"
	"  --help                show this help\n"
	"\n"
	"Exit status: 0 when told to stop by the manager, drained, or on\n"
	"SIGTERM or SIGINT; 1 when the manager refused it, could not be reached in\n"
	"time, or was lost; 2 for a bad command line.\n";

static int usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "xylem worker: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n\n%s", usage_text);
	return 2;
}

/* Parses a decimal count in [min, max]. */
static int parse_count(const char *opt, const char *s, uint64_t min,
		       uint64_t max, uint64_t *out)
{
	unsigned long long v;
	char *end;

	errno = 0;
	if (!s || *s < '0' || *s > '9')
		goto bad;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		goto bad;
	*out = v;
	return 0;
bad:
	return usage_error("--%s: '%s' is not a whole number from %" PRIu64
			   " to %" PRIu64, opt, s ? s : "", min, max);
}

enum {
	O_SECRET = 1000,
	O_CORES,
	O_MEMORY,
	O_DISK,
	O_GPUS,
	O_CACHE,
	O_NAME,
	O_XFER_HOST,
	O_CONNECT_TIMEOUT,
	O_DRAIN_GRACE,
	O_WALLTIME,
	O_END_TIME,
	O_DRAIN_LEAD,
	O_TLS_CA,
	O_NO_TLS,
	O_LEASE,
	O_TASK_USERS,
	O_LOG_DIR,
	O_HELP
};

static const struct option long_opts[] = {
	{"secret-file", required_argument, NULL, O_SECRET},
	{"cores", required_argument, NULL, O_CORES},
	{"memory", required_argument, NULL, O_MEMORY},
	{"disk", required_argument, NULL, O_DISK},
	{"gpus", required_argument, NULL, O_GPUS},
	{"cache", required_argument, NULL, O_CACHE},
	{"name", required_argument, NULL, O_NAME},
	{"transfer-host", required_argument, NULL, O_XFER_HOST},
	{"connect-timeout", required_argument, NULL, O_CONNECT_TIMEOUT},
	{"drain-grace", required_argument, NULL, O_DRAIN_GRACE},
	{"walltime", required_argument, NULL, O_WALLTIME},
	{"end-time", required_argument, NULL, O_END_TIME},
	{"drain-lead", required_argument, NULL, O_DRAIN_LEAD},
	{"tls-ca", required_argument, NULL, O_TLS_CA},
	{"no-tls", no_argument, NULL, O_NO_TLS},
	{"lease", required_argument, NULL, O_LEASE},
	{"task-users", required_argument, NULL, O_TASK_USERS},
	{"log-dir", required_argument, NULL, O_LOG_DIR},
	{"help", no_argument, NULL, O_HELP},
	{NULL, 0, NULL, 0},
};

/* Parses seconds, a decimal number from 0 to a year. */
static int parse_seconds(const char *opt, const char *s, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = s && *s >= '0' && *s <= '9' ? strtod(s, &end) : -1;
	if (v < 0 || errno || *end || !(v <= 365 * 86400.0))
		return usage_error("--%s: '%s' is not a number of seconds "
				   "from 0 to 31536000", opt, s ? s : "");
	*out = v;
	return 0;
}

/* Applies one option. Returns -1 to go on, or an exit status. */
static int apply_option(struct worker_config *cfg, int opt, const char *arg,
			const char **secret_file)
{
	uint64_t v;

	switch (opt) {
	case O_SECRET:
		*secret_file = arg;
		return -1;
	case O_CACHE:
		cfg->cache_dir = arg;
		return -1;
	case O_LOG_DIR:
		cfg->log_dir = arg;
		return -1;
	case O_TLS_CA:
		cfg->tls_ca = arg;
		return -1;
	case O_NO_TLS:
		cfg->no_tls = 1;
		return -1;
	case O_TASK_USERS:
		cfg->task_users_arg = arg;
		return -1;
	case O_NAME:
		if (!*arg || strlen(arg) >= XY_MAX_NAME)
			return usage_error("--name: must be 1 to %d bytes",
					   XY_MAX_NAME - 1);
		cfg->name = strdup(arg);
		return cfg->name ? -1 : 1;
	case O_XFER_HOST:
		if (strlen(arg) >= XY_MAX_NAME)
			return usage_error("--transfer-host: too long");
		cfg->xfer_host = strdup(arg);
		return cfg->xfer_host ? -1 : 1;
	case O_CONNECT_TIMEOUT:
		if (parse_seconds("connect-timeout", arg,
				  &cfg->connect_timeout))
			return 2;
		return -1;
	case O_DRAIN_GRACE:
		if (parse_seconds("drain-grace", arg, &cfg->drain_grace))
			return 2;
		return -1;
	case O_WALLTIME:
		if (parse_seconds("walltime", arg, &cfg->walltime))
			return 2;
		if (cfg->walltime <= 0)
			return usage_error("--walltime: must be more than 0");
		return -1;
	case O_END_TIME:
		if (xy_walltime_parse_epoch(arg, &cfg->end_time) < 0)
			return usage_error("--end-time: '%s' is not a time in "
					   "seconds since the epoch", arg);
		return -1;
	case O_DRAIN_LEAD:
		if (parse_seconds("drain-lead", arg, &cfg->drain_lead))
			return 2;
		return -1;
	case O_LEASE:
		if (parse_seconds("lease", arg, &cfg->lease))
			return 2;
		return -1;
	case O_HELP:
		fputs(usage_text, stdout);
		return 0;
	case O_CORES:
		if (parse_count("cores", arg, 1, 1u << 20, &v))
			return 2;
		cfg->res.cores = (uint32_t)v;
		cfg->given |= XY_RES_CORES;
		return -1;
	case O_MEMORY:
	case O_DISK:
		if (parse_count(opt == O_MEMORY ? "memory" : "disk", arg, 1,
				UINT64_C(1) << 40, &v))
			return 2;
		if (opt == O_MEMORY)
			cfg->res.memory_mb = v, cfg->given |= XY_RES_MEMORY;
		else
			cfg->res.disk_mb = v, cfg->given |= XY_RES_DISK;
		return -1;
	case O_GPUS:
		if (parse_count("gpus", arg, 0, 4096, &v))
			return 2;
		cfg->res.gpus = (uint32_t)v;
		cfg->given |= XY_RES_GPUS;
		return -1;
	}
	return 2;
}

/* The secret comes from --secret-file, else from XYLEM_SECRET. */
static int load_secret(struct worker_config *cfg, const char *file)
{
	char err[512];
	size_t n;
	/* Taken out of the environment even when a file wins: the tasks,
	 * this process's children, could read it in /proc/PID/environ. */
	char *env = xy_env_take("XYLEM_SECRET", &n);

	if (file) {
		free(env);
		cfg->secret = xy_read_secret(file, &cfg->secret_len, err,
					     sizeof err);
		if (!cfg->secret) {
			fprintf(stderr, "xylem worker: %s\n", err);
			return 2;
		}
		return -1;
	}
	cfg->secret = env;
	cfg->secret_len = env ? n : 0;
	if (!cfg->secret && errno == ENOMEM)
		return 1;
	if (!cfg->secret) {
		fprintf(stderr, "xylem worker: no secret: use --secret-file F "
				"or set XYLEM_SECRET\n");
		return 2;
	}
	return -1;
}

/* TLS: a client context that verifies the manager against --tls-ca (or
 * XYLEM_TLS_CA), unless --no-tls. -1 to go on, or an exit status. */
static int load_tls(struct worker_config *cfg)
{
	char err[1024];
	const char *env = getenv("XYLEM_TLS_CA");

	const char *off = getenv("XYLEM_NO_TLS");
	if (!cfg->tls_ca && off && !strcmp(off, "1"))
		cfg->no_tls = 1;
	if (cfg->no_tls) {
		if (cfg->tls_ca)
			return usage_error("--tls-ca and --no-tls: give one");
		XY_LOGW("worker", "TLS is OFF (--no-tls): commands, files and"
			" results cross the network in plain text, and anyone"
			" on the path can read or change them");
		return -1;
	}
	if (!cfg->tls_ca && env && *env)
		cfg->tls_ca = env;
	if (!cfg->tls_ca)
		return usage_error("no CA to verify the manager with: give "
				   "--tls-ca F (the manager's ca.crt, which "
				   "it names when it starts), or --no-tls");
	cfg->tls = xy_tls_client_ctx(cfg->tls_ca, err, sizeof err);
	if (!cfg->tls) {
		fprintf(stderr, "xylem worker: %s\n", err);
		return 2;
	}
	return -1;
}

/* --task-users (else XYLEM_TASK_USERS): the accounts tasks run under.
 * -1 to go on, or an exit status. */
static int load_task_users(struct worker_config *cfg)
{
	const char *list = cfg->task_users_arg;
	char err[512];

	if (!list && (list = getenv("XYLEM_TASK_USERS")) && !*list)
		list = NULL;
	if (!list)
		return -1;
	cfg->users = xy_taskusers_create(list, err, sizeof err);
	if (!cfg->users) {
		fprintf(stderr, "xylem worker: %s\n", err);
		return 2;
	}
	return -1;
}

/* Parses argv (argv[0] is "worker"). Returns -1 to run, or the exit
 * status to return at once. */
static int parse_args(struct worker_config *cfg, int argc, char **argv)
{
	const char *secret_file = NULL, *target = NULL;
	int opt, r;

	optind = 0; /* a fresh scan, whatever ran getopt before */
	opterr = 0;
	cfg->connect_timeout = CONNECT_TIMEOUT_S;
	cfg->drain_lead = -1; /* not given: find_end sets it */
	cfg->lease = -1;
	while ((opt = getopt_long(argc, argv, ":h", long_opts, NULL)) != -1) {
		if (opt == 'h')
			opt = O_HELP;
		if (opt == '?')
			return usage_error("unknown option '%s'",
					   argv[optind - 1]);
		if (opt == ':')
			return usage_error("option '%s' needs a value",
					   argv[optind - 1]);
		r = apply_option(cfg, opt, optarg, &secret_file);
		if (r >= 0)
			return r;
	}
	for (; optind < argc; optind++) {
		if (target)
			return usage_error("unexpected argument '%s'",
					   argv[optind]);
		target = argv[optind];
	}
	if (!target)
		return usage_error("missing the manager's HOST:PORT");
	if (cfg->walltime > 0 && cfg->end_time > 0)
		return usage_error("--walltime and --end-time both say when "
				   "to end: give one");
	if (xy_parse_hostport(target, cfg->host, sizeof cfg->host,
			      &cfg->port) < 0 ||
	    cfg->port < 1 || cfg->port > 65535)
		return usage_error("'%s' is not HOST:PORT", target);
	r = load_secret(cfg, secret_file);
	if (r < 0)
		r = load_tls(cfg);
	return r >= 0 ? r : load_task_users(cfg);
}

static void free_config(struct worker_config *cfg)
{
	xy_taskusers_destroy(cfg->users);
	cfg->users = NULL;
	if (cfg->secret)
		memset(cfg->secret, 0, cfg->secret_len);
	free(cfg->secret);
	free(cfg->name);
	free(cfg->xfer_host);
	SSL_CTX_free(cfg->tls);
	cfg->tls = NULL;
	xy_resources_clear(&cfg->res);
}

/* ---------------------------------------------------------- sending */

static void send_msg(struct xy_daemon *w, unsigned type, union xy_msg *m)
{
	if (!w->conn || xy_conn_closing(w->conn))
		return;
	if (xy_conn_send(w->conn, type, m) < 0)
		XY_LOGW("worker", "cannot send %s: %s", xy_msg_name(type),
			strerror(errno));
}

/* Milliseconds left in which a task can still run to its end; 0: no
 * end known. */
static uint64_t time_left_ms(struct xy_daemon *w)
{
	if (!w->has_end)
		return 0;
	uv_update_time(&w->loop);
	uint64_t ms = xy_walltime_usable_ms((int64_t)w->end_ms -
					    (int64_t)uv_now(&w->loop),
					    w->cfg.drain_lead,
					    w->cfg.drain_grace);
	return ms < XY_MAX_TIME_LEFT_MS ? ms : XY_MAX_TIME_LEFT_MS;
}

/* back: the manager was lost and this is its reconnection (the lease):
 * the cache's workflow objects, kept meanwhile, are listed too. */
static void send_hello(struct xy_daemon *w, int back)
{
	union xy_msg m;
	char host[256] = "";

	memset(&m, 0, sizeof m);
	gethostname(host, sizeof host - 1);
	m.hello.name = w->cfg.name;
	m.hello.hostname = host;
	m.hello.cores = w->cfg.res.cores;
	m.hello.memory_mb = w->cfg.res.memory_mb;
	m.hello.disk_mb = w->cfg.res.disk_mb;
	m.hello.gpus = w->cfg.res.gpus;
	m.hello.xfer_host = w->cfg.xfer_host ? w->cfg.xfer_host : "";
	m.hello.xfer_port = (uint16_t)xy_xfer_server_port(w->xfer);
	m.hello.time_left_ms = time_left_ms(w);
	if (xy_cache_inventory_from(w->cache, back ? XY_CACHE_WORKFLOW
						 : XY_CACHE_FOREVER,
				    &m.hello.items, &m.hello.n_items) < 0)
		XY_LOGW("worker", "out of memory listing the cache");
	int64_t n = xy_tasks_held(w->tasks, &m.hello.held);
	m.hello.n_held = n > 0 ? (uint32_t)n : 0;
	if (n < 0 || xy_hold_list(w->hold, &m.hello.held,
				  &m.hello.n_held) < 0)
		XY_LOGW("worker", "out of memory listing the held tasks");
	send_msg(w, XY_MSG_HELLO, &m);
	XY_LOGI("worker", "connected to %s as %s (%" PRIu32 " cores, %" PRIu64
		" MB memory, %" PRIu64 " MB disk, %" PRIu32 " GPUs, %" PRIu32
		" cached objects)", xy_conn_peer(w->conn), w->cfg.name,
		m.hello.cores, m.hello.memory_mb, m.hello.disk_mb,
		m.hello.gpus, m.hello.n_items);
	if (w->has_end)
		XY_LOGI("worker", "time left for tasks: %.0f s", m.hello.time_left_ms / 1e3);
	if (m.hello.n_held)
		XY_LOGI("worker", "held for the manager: %" PRIu32 " tasks",
			m.hello.n_held);
	free(m.hello.items);
	free(m.hello.held);
}

static void send_cache_update(struct xy_daemon *w,
			      const struct xy_fetch_result *r)
{
	union xy_msg m;

	memset(&m, 0, sizeof m);
	memcpy(m.cache_update.id, r->id, XY_ID_LEN);
	m.cache_update.kind = r->kind;
	m.cache_update.status = (uint8_t)r->status;
	m.cache_update.size = r->size;
	m.cache_update.elapsed_us = r->elapsed_us;
	m.cache_update.verified = r->status == XY_OBJ_OK ? r->size
							 : r->verified;
	m.cache_update.text = (char *)(r->text ? r->text : "");
	memcpy(m.cache_update.blame, r->blame, sizeof r->blame);
	send_msg(w, XY_MSG_CACHE_UPDATE, &m);
}

/* cache.c evicted an object to stay within the disk budget: the manager
 * drops this worker's replica of it. */
static void on_evicted(void *arg, const uint8_t id[XY_ID_LEN], uint8_t kind,
		       uint64_t size)
{
	struct xy_fetch_result r;

	memset(&r, 0, sizeof r);
	memcpy(r.id, id, XY_ID_LEN);
	r.kind = kind;
	r.status = XY_OBJ_NOT_FOUND;
	r.size = size;
	r.text = "evicted";
	send_cache_update(arg, &r);
}

static uint64_t next_held_id(void *arg)
{
	struct xy_daemon *w = arg;
	return xy_hold_new_id(w->hold);
}


/* tasks.c reports a task's end. A held task's report waits for its
 * ADOPT; one sent is kept a while if its manager keeps a journal, since
 * the manager may die before it records it (hold.h). */
static void on_task_done(void *arg, const struct xy_msg_task_done *d,
			 const uint8_t key[XY_ID_LEN])
{
	struct xy_daemon *w = arg;
	union xy_msg m;

	if (d->task_id & XY_HELD_BIT) {
		if (d->result != XY_RESULT_CANCELLED &&
		    xy_hold_keep(w->hold, d, key) < 0)
			XY_LOGW("worker", "out of memory keeping a held "
				"task's report");
		return;
	}
	m.task_done = *d;
	send_msg(w, XY_MSG_TASK_DONE, &m);
	if (w->lease_ms && xy_key_set(key))
		xy_hold_sent(w->hold, d, key);
}

/* fetch.c reports a fetch's end: one CACHE_UPDATE per FETCH it answers,
 * then the tasks waiting on the object go on. */
static void on_fetched(void *arg, const struct xy_fetch_result *r)
{
	struct xy_daemon *w = arg;

	if (r->status != XY_OBJ_OK)
		XY_LOGW("worker", "fetch failed: %s", r->text);
	for (unsigned i = 0; i < r->requests; i++)
		send_cache_update(w, r);
	xy_tasks_object_ready(w->tasks, r->id, r->status, r->text);
}

/* unpack.c reports an archive's expansion: the tasks waiting for it go
 * on, or fail. */
static void on_unpacked(void *arg, const uint8_t id[XY_ID_LEN], int end,
			const char *text)
{
	struct xy_daemon *w = arg;

	xy_tasks_unpacked(w->tasks, id, end, text);
}

/* urlfetch.c reports a URL fetched from its origin, or not. */
static void on_url_done(void *arg, const struct xy_msg_url_done *d)
{
	union xy_msg m;

	m.url_done = *d;
	send_msg(arg, XY_MSG_URL_DONE, &m);
}

/* --------------------------------------------------------- stopping */

/* Wakes the loop while stopping, so the stop phase can look again. */
static void on_stop_poll(uv_timer_t *t)
{
}

/* Starts the end: tell the manager which tasks it gets back (unless it
 * asked us to stop, or is gone), kill every task's process group and
 * every library instance, and close the connection once BYE is out
 * (conn.c flushes at close). The stop phase finishes when the children
 * are reaped. */
static void begin_stop(struct xy_daemon *w, int bye, const char *why)
{
	union xy_msg m;
	int64_t n;

	if (w->phase != W_RUNNING)
		return;
	XY_LOGI("worker", "stopping: %s", why);
	w->phase = W_STOPPING;
	if (bye && w->conn && w->connected) {
		memset(&m, 0, sizeof m);
		n = xy_tasks_unfinished(w->tasks, &m.bye.task_ids);
		/* The decoder's limit; a worker never holds that many. */
		if (n > XY_MAX_FILES)
			n = XY_MAX_FILES;
		m.bye.n_tasks = n > 0 ? (uint32_t)n : 0;
		send_msg(w, XY_MSG_BYE, &m);
		free(m.bye.task_ids);
	}
	xy_tasks_abort_all(w->tasks);
	xy_libs_stop(w->libs);
	xy_unpacker_quiet(w->unpacker);
	xy_urlfetch_stop(w->urls);
	if (w->conn)
		xy_conn_close(w->conn, why);
	uv_timer_stop(&w->keepalive);
	uv_timer_stop(&w->retry_timer);
	uv_timer_stop(&w->end_timer);
	w->stop_deadline = uv_now(&w->loop) + STOP_WAIT_MS;
	uv_timer_start(&w->stop_timer, on_stop_poll, STOP_POLL_MS,
		       STOP_POLL_MS);
}

static void on_drain_grace(uv_timer_t *t)
{
	struct xy_daemon *w = t->data;
	w->exit_code = 0;
	begin_stop(w, 1, "drained: the grace ended, returning what runs");
}

/* A drain: take no new task, finish what runs, and exit 0 when the
 * manager says SHUTDOWN. */
static void start_drain(struct xy_daemon *w, const char *why)
{
	if (w->phase != W_RUNNING || w->draining)
		return;
	if (!w->conn || !w->connected) {
		w->exit_code = 0;
		begin_stop(w, 0, "drained before reaching the manager");
		return;
	}
	w->draining = 1;
	XY_LOGI("worker", "draining: no new tasks; %zu to finish (%s)",
		xy_tasks_count(w->tasks), why);
	send_msg(w, XY_MSG_DRAIN, NULL);
	if (w->cfg.drain_grace > 0)
		uv_timer_start(&w->drain_timer, on_drain_grace,
			       (uint64_t)(w->cfg.drain_grace * 1000), 0);
}

/* SIGUSR1: sbatch --signal, before a walltime; or by hand. */
static void on_drain_signal(uv_signal_t *s, int signum)
{
	(void)signum;
	start_drain(s->data, "SIGUSR1");
}

/* A lead before the worker's end (its walltime): the same drain. */
static void on_end_near(uv_timer_t *t)
{
	struct xy_daemon *w = t->data;
	char why[96];

	snprintf(why, sizeof why, "its walltime ends in %.0f s",
		 ((int64_t)w->end_ms - (int64_t)uv_now(&w->loop)) / 1e3);
	start_drain(w, why);
}

static void on_signal(uv_signal_t *s, int signum)
{
	struct xy_daemon *w = s->data;

	begin_stop(w, 1, signum == SIGINT ? "interrupted" : "terminated");
}

static void on_keepalive(uv_timer_t *t)
{
	send_msg(t->data, XY_MSG_KEEPALIVE, NULL);
}

/* ------------------------------------------------- control messages */

static void handle_task(struct xy_daemon *w, union xy_msg *m)
{
	uint64_t id = m->task.task_id;
	union xy_msg d;

	if (xy_key_set(m->task.key))
		xy_hold_forget_key(w->hold, m->task.key);
	if (xy_tasks_submit(w->tasks, &m->task) == 0)
		return;
	if (errno == EEXIST) {
		/* Answering would end the task that holds the id. */
		XY_LOGW("worker", "task %" PRIu64 " is already here", id);
		return;
	}
	memset(&d, 0, sizeof d);
	d.task_done.task_id = id;
	d.task_done.result = XY_RESULT_WORKER_FAILED;
	d.task_done.exit_code = -1;
	d.task_done.start_us = d.task_done.end_us = (uint64_t)(xy_now() * 1e6);
	d.task_done.output = "";
	d.task_done.message = "out of memory on the worker";
	send_msg(w, XY_MSG_TASK_DONE, &d);
}

/* A library's template. There is no reply: a call to a library that
 * could not be defined fails as one that is not defined. */
static void handle_library(struct xy_daemon *w, union xy_msg *m)
{
	char err[256];

	if (xy_libs_define(w->libs, &m->task, err, sizeof err) < 0)
		XY_LOGW("worker", "LIBRARY refused: %s", err);
}

static void handle_fetch(struct xy_daemon *w, union xy_msg *m)
{
	struct xy_msg_fetch *f = &m->fetch;
	struct xy_fetch_result r;
	struct xy_cache_info info;

	memset(&r, 0, sizeof r);
	memcpy(r.id, f->id, XY_ID_LEN);
	r.kind = f->kind;
	r.level = f->level;
	r.text = "";
	if (xy_cache_find(w->cache, f->id, &info) == 0) {
		/* Already here; a FOREVER request still moves it. */
		xy_cache_insert(w->cache, f->id, info.kind, f->level,
				info.size);
		r.kind = info.kind;
		r.size = info.size;
		send_cache_update(w, &r);
		return;
	}
	/* An empty source host means the manager's own transfer server, at
	 * the address this worker reached the manager on. */
	int oom = 0;
	for (uint32_t i = 0; i < f->n_sources; i++) {
		if (f->sources[i].host && *f->sources[i].host)
			continue;
		free(f->sources[i].host);
		f->sources[i].host = strdup(w->cfg.host);
		oom |= !f->sources[i].host;
	}
	if (oom || xy_fetcher_request(w->fetcher, f) < 0) {
		r.status = XY_OBJ_FAILED;
		r.text = "out of memory";
		send_cache_update(w, &r);
	}
}

static void handle_fetch_url(struct xy_daemon *w, union xy_msg *m)
{
	struct xy_msg_url_done d;

	if (xy_urlfetch_request(w->urls, &m->fetch_url) == 0)
		return;
	memset(&d, 0, sizeof d);
	d.req_id = m->fetch_url.req_id;
	d.status = XY_OBJ_FAILED;
	d.text = "out of memory on the worker";
	on_url_done(w, &d);
}

static void handle_cancel(struct xy_daemon *w, union xy_msg *m)
{
	if ((m->cancel.task_id & XY_HELD_BIT) &&
	    xy_hold_drop(w->hold, m->cancel.task_id))
		return;
	if (xy_tasks_cancel(w->tasks, m->cancel.task_id) < 0)
		XY_LOGD("worker", "cancel: no task %" PRIu64,
			m->cancel.task_id);
}

static void handle_unlink(struct xy_daemon *w, union xy_msg *m)
{
	if (xy_cache_unlink(w->cache, m->unlink.id) < 0)
		XY_LOGD("worker", "unlink: object not cached");
}

static void handle_release(struct xy_daemon *w, union xy_msg *m)
{
	xy_cache_release_output(w->cache, m->release.id);
}

static void handle_keepalive(struct xy_daemon *w, union xy_msg *m)
{
}

static void handle_welcome(struct xy_daemon *w, union xy_msg *m)
{
	if (w->cfg.lease < 0)
		w->lease_ms = m->welcome.lease_ms;
	XY_LOGD("worker", "manager epoch %" PRIu32 ", lease %.0f s",
		m->welcome.epoch, w->lease_ms / 1e3);
}

/* A held task is the manager's task_id now: a running one is renamed, a
 * finished one sends its kept report under the new id. */
static void handle_adopt(struct xy_daemon *w, union xy_msg *m)
{
	uint64_t held = m->adopt.held_id, id = m->adopt.task_id;
	union xy_msg d;

	if (xy_tasks_rekey(w->tasks, held, id) == 0) {
		XY_LOGD("worker", "held task %" PRIu64 " is task %" PRIu64
			" now", held & ~XY_HELD_BIT, id);
		return;
	}
	int r = xy_hold_adopt(w->hold, held, id, &d);
	if (r <= 0) {
		XY_LOGW("worker", "ADOPT: %s held task %" PRIu64,
			r < 0 ? "cannot report" : "no", held & ~XY_HELD_BIT);
		return;
	}
	send_msg(w, XY_MSG_TASK_DONE, &d);
	xy_msg_free(XY_MSG_TASK_DONE, &d);
}

static void handle_shutdown(struct xy_daemon *w, union xy_msg *m)
{
	w->exit_code = 0;
	begin_stop(w, 0, "shut down by the manager");
}

typedef void (*handler_fn)(struct xy_daemon *w, union xy_msg *m);

static const handler_fn handlers[XY_MSG_MAX] = {
	[XY_MSG_TASK] = handle_task,
	[XY_MSG_FETCH] = handle_fetch,
	[XY_MSG_FETCH_URL] = handle_fetch_url,
	[XY_MSG_CANCEL] = handle_cancel,
	[XY_MSG_KEEPALIVE] = handle_keepalive,
	[XY_MSG_UNLINK] = handle_unlink,
	[XY_MSG_RELEASE] = handle_release,
	[XY_MSG_SHUTDOWN] = handle_shutdown,
	[XY_MSG_LIBRARY] = handle_library,
	[XY_MSG_WELCOME] = handle_welcome,
	[XY_MSG_ADOPT] = handle_adopt,
};

static void on_msg(struct xy_conn *c, unsigned type, union xy_msg *m)
{
	struct xy_daemon *w = xy_conn_data(c);
	char why[64];

	if (w->phase != W_RUNNING)
		return;
	if (type >= XY_MSG_MAX || !handlers[type]) {
		snprintf(why, sizeof why, "unexpected %s from the manager",
			 xy_msg_name(type));
		XY_LOGE("worker", "%s", why);
		xy_conn_close(c, why);
		return;
	}
	handlers[type](w, m);
}

static void on_ready(struct xy_conn *c, uint8_t role)
{
	struct xy_daemon *w = xy_conn_data(c);

	w->connected = 1;
	if (w->lost)
		XY_LOGI("worker", "reconnected to the manager after %.1f s",
			(uv_now(&w->loop) - w->cx.start) / 1e3);
	int back = w->lost;
	w->lost = 0;
	send_hello(w, back);
	uv_timer_start(&w->keepalive, on_keepalive, KEEPALIVE_MS,
		       KEEPALIVE_MS);
}

static int connect_manager(struct xy_daemon *w);

static void on_retry(uv_timer_t *t)
{
	struct xy_daemon *w = t->data;

	if (w->phase == W_RUNNING && !w->conn && connect_manager(w) < 0) {
		w->exit_code = 1;
		begin_stop(w, 0, "no manager");
	}
}

/* The pause before the next try: half the backoff plus a random part of
 * the other half; the backoff doubles up to its cap. */
static uint64_t next_pause(struct connecting *cx)
{
	uint64_t pause = cx->backoff / 2 +
			 (uint64_t)rand_r(&cx->seed) % (cx->backoff / 2 + 1);

	cx->backoff = cx->backoff * 2 > RETRY_MAX_MS ? RETRY_MAX_MS
						      : cx->backoff * 2;
	return pause;
}

/* A try that failed for a reason that may pass (nothing listens yet, no
 * route, no answer in time, a handshake cut short): schedules the next
 * while --connect-timeout lasts, saying so in the log at the first
 * failure and then every RETRY_NOTE_MS. Returns -1 once the time is
 * up. */
static int retry_later(struct xy_daemon *w, const char *reason)
{
	struct connecting *cx = &w->cx;
	uint64_t now, limit, waited, pause;

	uv_update_time(&w->loop);
	now = uv_now(&w->loop);
	limit = cx->limit;
	waited = now - cx->start;
	if (waited >= limit)
		return -1;
	pause = next_pause(cx);
	if (pause > limit - waited)
		pause = limit - waited;
	if (cx->tries == 1) {
		XY_LOGI("worker", "waiting for the manager at %s:%d (%s);"
			" trying again for up to %g s", w->cfg.host,
			w->cfg.port, reason, limit / 1e3);
		cx->next_note = now + RETRY_NOTE_MS;
	} else if (now >= cx->next_note) {
		XY_LOGI("worker", "still waiting for the manager at %s:%d"
			" after %.0f s, %u tries (%s)", w->cfg.host,
			w->cfg.port, waited / 1000.0, cx->tries, reason);
		cx->next_note = now + RETRY_NOTE_MS;
	}
	uv_timer_start(&w->retry_timer, on_retry, pause, 0);
	return 0;
}

/* The manager is lost, but its lease says it may come back: what runs
 * goes on under held ids, what was reported is held too, the cache stays,
 * and tries to reconnect start again, for the lease. */
static void keep_for_lease(struct xy_daemon *w)
{
	size_t n = xy_tasks_hold_all(w->tasks, next_held_id, w);
	xy_hold_lost(w->hold);
	w->connected = 0;
	w->lost = 1;
	uv_timer_stop(&w->keepalive);
	uv_update_time(&w->loop);
	w->cx.start = uv_now(&w->loop);
	w->cx.limit = w->lease_ms;
	w->cx.backoff = RETRY_FIRST_MS;
	w->cx.tries = 1;
	XY_LOGI("worker", "keeping %zu running and %zu finished tasks and the"
		" cache for the lease's %.0f s while the manager is away", n,
		xy_hold_count(w->hold), w->lease_ms / 1e3);
}

static void on_close(struct xy_conn *c, const char *reason)
{
	struct xy_daemon *w = xy_conn_data(c);

	w->conn = NULL;
	if (w->phase != W_RUNNING)
		return;
	if (w->connected && w->lease_ms) {
		XY_LOGW("worker", "lost the manager at %s:%d: %s", w->cfg.host,
			w->cfg.port, reason);
		keep_for_lease(w);
		if (retry_later(w, reason) == 0)
			return;
	}
	if (w->connected) {
		XY_LOGE("worker", "lost the manager at %s:%d: %s", w->cfg.host,
			w->cfg.port, reason);
	} else if (xy_conn_refused(c)) {
		XY_LOGE("worker", "the manager at %s:%d refused this worker:"
			" %s", w->cfg.host, w->cfg.port, reason);
	} else if (retry_later(w, reason) == 0) {
		return;
	} else if (w->lost) {
		XY_LOGE("worker", "the manager at %s:%d did not come back in"
			" the lease's %.0f s (%s)", w->cfg.host, w->cfg.port,
			w->lease_ms / 1e3, reason);
	} else if (w->cfg.connect_timeout > 0) {
		XY_LOGE("worker", "cannot connect to the manager at %s:%d:"
			" %s (gave up after %g s, %u tr%s; see"
			" --connect-timeout)", w->cfg.host, w->cfg.port, reason,
			w->cfg.connect_timeout, w->cx.tries,
			w->cx.tries == 1 ? "y" : "ies");
	} else {
		XY_LOGE("worker", "cannot connect to the manager at %s:%d: %s",
			w->cfg.host, w->cfg.port, reason);
	}
	w->exit_code = 1;
	begin_stop(w, 0, "no manager");
}

/* ------------------------------------------------------ setting up */

static int open_cache(struct xy_daemon *w)
{
	struct xy_resources *r = &w->cfg.res;
	char err[512];
	int in_job;

	w->cache = xy_cache_open(w->cfg.cache_dir, err, sizeof err);
	if (!w->cache) {
		XY_LOGE("worker", "%s", err);
		return -1;
	}
	xy_cache_set_loop(w->cache, &w->loop);
	in_job = xy_resources_find(r, w->cfg.given, xy_cache_root(w->cache),
				   getenv);
	if (in_job < 0) {
		XY_LOGE("worker", "out of memory");
		return -1;
	}
	if (in_job)
		XY_LOGI("worker", "in Slurm job %s: offering %" PRIu32
			" cores, %" PRIu64 " MB, %" PRIu32 " GPUs%s%s%s",
			getenv("SLURM_JOB_ID"), r->cores, r->memory_mb,
			r->gpus, r->gpu_ids ? " (" : "",
			r->gpu_ids ? r->gpu_ids : "", r->gpu_ids ? ")" : "");
	/* The disk offered is the cache's budget. */
	xy_cache_set_budget(w->cache, w->cfg.res.disk_mb * UINT64_C(1048576),
			    on_evicted, w);
	return 0;
}

static int start_parts(struct xy_daemon *w)
{
	struct xy_libs_opts lo;
	struct xy_tasks_opts to;
	char err[512];

	if (w->cfg.users) {
		if (xy_taskusers_open_cache(xy_cache_root(w->cache), err,
					    sizeof err) < 0) {
			XY_LOGE("worker", "%s", err);
			return -1;
		}
		XY_LOGI("worker", "tasks run under %zu account%s of their own",
			xy_taskusers_count(w->cfg.users),
			xy_taskusers_count(w->cfg.users) == 1 ? "" : "s");
	}
	w->xfer = xy_xfer_server_start(NULL, 0, w->cfg.secret,
				       w->cfg.secret_len, xy_cache_lookup,
				       w->cache, err, sizeof err);
	if (!w->xfer || (w->cfg.tls &&
			 xy_xfer_server_tls(w->xfer, err, sizeof err) < 0)) {
		XY_LOGE("worker", "cannot start the transfer server: %s", err);
		return -1;
	}
	w->exec = xy_exec_create(&w->loop);
	if (w->exec) {
		memset(&lo, 0, sizeof lo);
		lo.loop = &w->loop;
		lo.cache = w->cache;
		lo.exec = w->exec;
		lo.log_dir = w->cfg.log_dir;
		lo.users = w->cfg.users;
		w->libs = xy_libs_create(&lo);
	}
	w->fetcher = xy_fetcher_create(&w->loop, w->cache, w->cfg.secret,
				       w->cfg.secret_len, XY_FETCH_THREADS,
				       on_fetched, w, err, sizeof err);
	if (!w->exec || !w->libs || !w->fetcher) {
		XY_LOGE("worker", "cannot start: %s",
			w->fetcher ? "out of memory" : err);
		return -1;
	}
	xy_fetcher_set_peer(w->fetcher, w->xfer, w->cfg.name);
	xy_fetcher_set_tls(w->fetcher, w->cfg.tls != NULL);
	/* Test hook (docs/dataplane.md): serve chunk N of every stream with
	 * one byte flipped. */
	const char *corrupt = getenv("XYLEM_TEST_CORRUPT_CHUNK");
	if (corrupt && *corrupt) {
		XY_LOGW("worker", "test hook: corrupting chunk %s of what this "
			"worker serves", corrupt);
		xy_xfer_server_corrupt(w->xfer, (int64_t)strtoll(corrupt, NULL,
								 10) *
						    XY_CHUNK_MIN);
	}
	w->unpacker = xy_unpacker_create(&w->loop, w->cache, on_unpacked, w);
	w->urls = xy_urlfetch_create(&w->loop, w->cache, on_url_done, w, err,
				     sizeof err);
	if (!w->unpacker || !w->urls) {
		XY_LOGE("worker", "cannot start: %s",
			w->urls ? "out of memory" : err);
		return -1;
	}
	memset(&to, 0, sizeof to);
	to.loop = &w->loop;
	to.cache = w->cache;
	to.fetcher = w->fetcher;
	to.exec = w->exec;
	to.libs = w->libs;
	to.unpacker = w->unpacker;
	to.gpus = w->cfg.res.gpus;
	to.gpu_ids = w->cfg.res.gpu_ids;
	to.cores = w->cfg.res.cores;
	to.users = w->cfg.users;
	to.on_done = on_task_done;
	to.arg = w;
	w->tasks = xy_tasks_create(&to);
	w->hold = xy_hold_create();
	if (!w->tasks || !w->hold) {
		XY_LOGE("worker", "out of memory");
		return -1;
	}
	return 0;
}

/* When the worker must end: --end-time, --walltime, else its Slurm
 * job's end. Asked before the loop runs (squeue blocks, briefly). */
static void find_end(struct xy_daemon *w)
{
	const char *from = "";
	char err[256] = "";
	int r;

	if (w->cfg.end_time > 0) {
		w->end_wall = w->cfg.end_time;
		from = "--end-time";
	} else if (w->cfg.walltime > 0) {
		w->end_wall = xy_now() + w->cfg.walltime;
		from = "--walltime";
	} else {
		r = xy_walltime_slurm_end(getenv, SQUEUE_TIMEOUT_S,
					  &w->end_wall, &from, err,
					  sizeof err);
		if (r < 0)
			XY_LOGW("worker", "cannot tell when Slurm job %s ends "
				"(%s): only SIGUSR1 will drain this worker",
				getenv("SLURM_JOB_ID"), err);
		else if (r == 0 && getenv("SLURM_JOB_ID"))
			XY_LOGI("worker", "Slurm job %s: %s",
				getenv("SLURM_JOB_ID"), from);
		if (r <= 0)
			return;
	}
	w->has_end = 1;
	/* The default lead is at most a quarter of the walltime, so that a
	 * short one still leaves the worker time to work. */
	if (w->cfg.drain_lead < 0) {
		double quarter = (w->end_wall - xy_now()) / 4;
		w->cfg.drain_lead = quarter < DRAIN_LEAD_S ? quarter : DRAIN_LEAD_S;
		if (w->cfg.drain_lead < 0)
			w->cfg.drain_lead = 0;
	}
	XY_LOGI("worker", "walltime: ends in %.0f s (from %s); drains %.0f s "
		"before", w->end_wall - xy_now(), from, w->cfg.drain_lead);
}

/* Puts the end on the loop's clock, and the drain a lead before it (at
 * once if the end is nearer than the lead). */
static void arm_end(struct xy_daemon *w)
{
	if (!w->has_end)
		return;
	uv_update_time(&w->loop);
	int64_t left = (int64_t)((w->end_wall - xy_now()) * 1000);
	int64_t lead = (int64_t)(w->cfg.drain_lead * 1000);
	if (left < 0)
		left = 0;
	w->end_ms = uv_now(&w->loop) + (uint64_t)left;
	uv_timer_start(&w->end_timer, on_end_near,
		       left > lead ? (uint64_t)(left - lead) : 0, 0);
}

static void init_handles(struct xy_daemon *w)
{
	uv_signal_init(&w->loop, &w->sigterm);
	uv_signal_init(&w->loop, &w->sigint);
	uv_signal_init(&w->loop, &w->sigusr1);
	uv_timer_init(&w->loop, &w->drain_timer);
	uv_timer_init(&w->loop, &w->end_timer);
	uv_timer_init(&w->loop, &w->keepalive);
	uv_timer_init(&w->loop, &w->stop_timer);
	uv_timer_init(&w->loop, &w->retry_timer);
	w->sigterm.data = w->sigint.data = w->sigusr1.data = w;
	w->drain_timer.data = w->end_timer.data = w;
	w->keepalive.data = w->stop_timer.data = w->retry_timer.data = w;
	uv_signal_start(&w->sigterm, on_signal, SIGTERM);
	uv_signal_start(&w->sigint, on_signal, SIGINT);
	uv_signal_start(&w->sigusr1, on_drain_signal, SIGUSR1);
	w->handles_ready = 1;
}

/* One try to reach the manager; on_ready or on_close tells how it went.
 * While tries remain, the conn's own failure lines are left to
 * retry_later, which says less. */
static int connect_manager(struct xy_daemon *w)
{
	struct xy_conn_opts co;

	w->cx.tries++;
	memset(&co, 0, sizeof co);
	co.quiet = w->cfg.connect_timeout > 0;
	co.secret = w->cfg.secret;
	co.secret_len = w->cfg.secret_len;
	co.role = XY_ROLE_WORKER;
	co.on_ready = on_ready;
	co.on_msg = on_msg;
	co.on_close = on_close;
	co.data = w;
	co.tls = w->cfg.tls;
	w->conn = xy_conn_connect(&w->loop, w->cfg.host, w->cfg.port, &co);
	if (!w->conn) {
		XY_LOGE("worker", "cannot connect to %s:%d: out of memory",
			w->cfg.host, w->cfg.port);
		return -1;
	}
	return 0;
}

static int worker_setup(struct xy_daemon *w)
{
	char host[256] = "";

	find_end(w);
	if (uv_loop_init(&w->loop) < 0) {
		XY_LOGE("worker", "cannot make an event loop");
		return -1;
	}
	w->loop_ready = 1;
	if (!w->cfg.name) {
		gethostname(host, sizeof host - 1);
		if (asprintf(&w->cfg.name, "%s:%d", host, (int)getpid()) < 0) {
			w->cfg.name = NULL;
			return -1;
		}
	}
	if (open_cache(w) < 0 || start_parts(w) < 0)
		return -1;
	init_handles(w);
	arm_end(w);
	if (w->cfg.lease >= 0)
		w->lease_ms = (uint64_t)(w->cfg.lease * 1000);
	uv_update_time(&w->loop);
	w->cx.start = uv_now(&w->loop);
	w->cx.limit = (uint64_t)(w->cfg.connect_timeout * 1000);
	w->cx.backoff = RETRY_FIRST_MS;
	w->cx.seed = (unsigned)getpid() ^ (unsigned)uv_hrtime();
	return connect_manager(w);
}

/* Closes everything in reverse order of setup. Processes still alive are
 * given up (they were killed in the stop phase); the loop then runs dry,
 * which waits for thread pool work, before tasks and cache go. */
static void worker_teardown(struct xy_daemon *w)
{
	if (w->tasks) {
		xy_tasks_abort_all(w->tasks);
		xy_tasks_release_all(w->tasks);
	}
	if (w->conn)
		xy_conn_close(w->conn, "worker exiting");
	if (w->handles_ready) {
		uv_close((uv_handle_t *)&w->retry_timer, NULL);
		uv_close((uv_handle_t *)&w->stop_timer, NULL);
		uv_close((uv_handle_t *)&w->keepalive, NULL);
		uv_close((uv_handle_t *)&w->sigint, NULL);
		uv_close((uv_handle_t *)&w->sigterm, NULL);
		uv_close((uv_handle_t *)&w->sigusr1, NULL);
		uv_close((uv_handle_t *)&w->drain_timer, NULL);
		uv_close((uv_handle_t *)&w->end_timer, NULL);
	}
	xy_fetcher_stop(w->fetcher);
	xy_unpacker_quiet(w->unpacker);
	xy_urlfetch_stop(w->urls);
	xy_libs_destroy(w->libs);
	xy_exec_destroy(w->exec);
	if (w->loop_ready) {
		uv_run(&w->loop, UV_RUN_DEFAULT);
		xy_tasks_destroy(w->tasks);
		xy_hold_destroy(w->hold);
		xy_unpacker_destroy(w->unpacker);
		xy_urlfetch_destroy(w->urls);
		if (uv_loop_close(&w->loop) < 0)
			XY_LOGW("worker", "event loop still busy at exit");
	}
	/* Last: the fetcher's jobs, freed by the loop run above, end the
	 * partial objects they published on this server. */
	xy_xfer_server_stop(w->xfer);
	xy_cache_close(w->cache);
	free_config(&w->cfg);
}

/* ---------------------------------------------------------- the loop */

/* Phase: once stopping, finish when the connection is closed and the
 * killed children are reaped, or when waiting for them took too long. */
static void phase_stop(struct xy_daemon *w)
{
	if (w->phase != W_STOPPING || w->conn)
		return;
	if (xy_exec_live(w->exec) == 0 ||
	    uv_now(&w->loop) >= w->stop_deadline)
		w->phase = W_DONE;
}

static void worker_run(struct xy_daemon *w)
{
	while (w->phase != W_DONE) {
		uv_run(&w->loop, UV_RUN_ONCE); /* messages, children, timers */
		xy_tasks_start_ready(w->tasks); /* tasks with every input */
		xy_tasks_reap(w->tasks);        /* tasks that have let go */
		phase_stop(w);
	}
}

/* Descriptors the worker inherited (from `xylem run`, a batch system, a
 * shell) must not reach the tasks: mark every one past stderr
 * close-on-exec. */
static void seal_inherited_fds(void)
{
	struct dirent *e;
	DIR *d;

	if (close_range(3, ~0u, CLOSE_RANGE_CLOEXEC) == 0)
		return;
	d = opendir("/proc/self/fd"); /* kernels before 5.11 */
	if (!d)
		return;
	while ((e = readdir(d))) {
		int fd = atoi(e->d_name);

		if (fd > 2 && fd != dirfd(d))
			fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC);
	}
	closedir(d);
}

/* Tasks find this very program in XYLEM_EXE: a CWL task runs
 * `$XYLEM_EXE cwl-exec` on whatever host its worker is. */
static void export_exe(void)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);

	if (n > 0) {
		exe[n] = '\0';
		setenv("XYLEM_EXE", exe, 1);
	}
}

/* --log-dir: the log goes to a file there from now on. */
static int start_log_dir(struct worker_config *cfg)
{
	char err[512];

	if (xy_logdir_redirect(cfg->log_dir, cfg->name, err, sizeof err) < 0) {
		fprintf(stderr, "xylem worker: %s\n", err);
		return -1;
	}
	XY_LOGI("worker", "logging to %s for manager %s:%d", cfg->log_dir,
		cfg->host, cfg->port);
	return 0;
}

int xy_worker_main(int argc, char **argv)
{
	struct xy_daemon w;
	int r;

	memset(&w, 0, sizeof w);
	r = parse_args(&w.cfg, argc, argv);
	if (r >= 0) {
		free_config(&w.cfg);
		return r;
	}
	xy_log_set_level(XY_LOG_INFO);
	if (w.cfg.log_dir && start_log_dir(&w.cfg) < 0) {
		free_config(&w.cfg);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN);
	seal_inherited_fds();
	export_exe();
	if (worker_setup(&w) < 0)
		w.exit_code = 1;
	else
		worker_run(&w);
	worker_teardown(&w);
	return w.exit_code;
}
