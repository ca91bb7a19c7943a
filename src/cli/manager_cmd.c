/*
 * manager_cmd.c: `xylem manager`, a standing manager. It listens until
 * SIGINT or SIGTERM; workers connect to it as to any manager (it may start
 * N local ones itself, local.c), and clients (`xylem cwl --manager`,
 * client.h) submit tasks to it, which it runs as internal tasks
 * (src/manager/client.c). It submits nothing of its own. At the signal it
 * stops its local workers, tells the others to exit, and exits 0.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "local.h"
#include "log.h"
#include "util.h"
#include "xylem.h"

struct manager_opts {
	const char *host;
	int port;
	const char *secret_file;
	const char *history;
	long history_output; /* --history-output: bytes; 0: default */
	const char *log_dir; /* --log-dir: local workers' logs kept there */
	const char *journal;
	int journal_sync;
	const char *tls_dir;
	int no_tls;
	int workers;
	int cores_per_worker; /* 0: cores / workers */
	int idle_exit; /* seconds with no work and no client; 0: never */
	struct xy_cli_pool *pools[XY_CLI_POOLS_MAX];
	int n_pools;
	const char *http; /* --http [HOST:]PORT: the dashboard */
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: xylem manager [options]\n\n"
		"Runs a standing manager until SIGINT or SIGTERM: workers"
		" connect to it, and\nclients (xylem cwl --manager) submit"
		" tasks to it.\n\noptions:\n"
		"  --host H              address to listen on (default: all"
		" interfaces)\n"
		"  --port P              port to listen on (default: any free"
		" port)\n"
		"  --secret-file F       read the shared secret from F"
		" (default: XYLEM_SECRET,\n"
		"                        else a fresh one in a file named on"
		" stderr)\n"
		"  --workers N           local workers to start (default: 0)\n"
		"  --cores-per-worker C  cores each local worker offers"
		" (default: cores / N)\n"
		"  --history DB          record tasks in an SQLite database\n"
		"  --history-output N    bytes of each task's output (its tail)"
		" the\n                        history keeps (default 4096; 0:"
		" none)\n"
		"  --log-dir DIR         keep the local workers' logs in DIR\n"
		"  --journal DIR         record clients' finished tasks in DIR:"
		" started again on it,\n"
		"                        a task it finished is answered without"
		" running\n"
		"  --journal-sync        also fdatasync the journal each turn\n"
		"  --tls-dir DIR         keep the TLS CA and certificate in DIR"
		" (default: a\n                        private directory for this"
		" run; docs/security.md)\n"
		"  --no-tls              plain TCP: no encryption, no"
		" integrity\n"
		"  --pool SPEC           a pool of workers from a batch system,"
		" as KEY=VALUE,...\n"
		"                        (name, provider, cores, memory, gpus,"
		" min, max, backlog,\n"
		"                        partition, walltime, idle, ...; see"
		" docs/cli.md); repeatable\n"
		"  --pools FILE          pools from a file: a SPEC a line, '#'"
		" comments\n"
		"  --idle-exit S         exit 0 after S seconds with no task"
		" and no client\n"
		"                        (an endpoint's managers;"
		" docs/endpoint.md)\n"
		"  --http [HOST:]PORT    serve the live dashboard and /metrics"
		" there (HOST:\n"
		"                        127.0.0.1 if absent; another host"
		" needs the token\n"
		"                        in the address printed)\n"
		"  --help                show this help\n\n"
		"It prints 'xylem manager: listening on port P' on stderr when"
		" ready.\nExit status: 0 after a signal, 1 if it cannot start,"
		" 2 for a bad command line.\n");
}

/* Returns -1 to go on, or the exit status to end with. */
static int parse_args(int argc, char **argv, struct manager_opts *o)
{
	enum { O_HOST = 256, O_PORT, O_SECRET, O_HISTORY, O_WORKERS, O_CPW,
	       O_POOL, O_POOLS, O_JOURNAL, O_JOURNAL_SYNC, O_TLS_DIR, O_NO_TLS,
	       O_IDLE_EXIT, O_HISTORY_OUTPUT, O_LOG_DIR, O_HTTP };
	static const struct option longopts[] = {
		{"host", required_argument, NULL, O_HOST},
		{"port", required_argument, NULL, O_PORT},
		{"secret-file", required_argument, NULL, O_SECRET},
		{"history", required_argument, NULL, O_HISTORY},
		{"history-output", required_argument, NULL, O_HISTORY_OUTPUT},
		{"log-dir", required_argument, NULL, O_LOG_DIR},
		{"http", required_argument, NULL, O_HTTP},
		{"journal", required_argument, NULL, O_JOURNAL},
		{"journal-sync", no_argument, NULL, O_JOURNAL_SYNC},
		{"workers", required_argument, NULL, O_WORKERS},
		{"cores-per-worker", required_argument, NULL, O_CPW},
		{"pool", required_argument, NULL, O_POOL},
		{"pools", required_argument, NULL, O_POOLS},
		{"tls-dir", required_argument, NULL, O_TLS_DIR},
		{"no-tls", no_argument, NULL, O_NO_TLS},
		{"idle-exit", required_argument, NULL, O_IDLE_EXIT},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c, bad = 0;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case O_HOST: o->host = optarg; break;
		case O_PORT:
			bad |= xy_cli_int("xylem manager", "--port", optarg,
					  0, 65535, &o->port);
			break;
		case O_SECRET: o->secret_file = optarg; break;
		case O_HISTORY: o->history = optarg; break;
		case O_LOG_DIR: o->log_dir = optarg; break;
		case O_HISTORY_OUTPUT: {
			int v;
			bad |= xy_cli_int("xylem manager", "--history-output",
					  optarg, 0, 1 << 20, &v) < 0;
			o->history_output = v ? v : -1;
			break;
		}
		case O_HTTP: o->http = optarg; break;
		case O_JOURNAL: o->journal = optarg; break;
		case O_JOURNAL_SYNC: o->journal_sync = 1; break;
		case O_TLS_DIR: o->tls_dir = optarg; break;
		case O_NO_TLS: o->no_tls = 1; break;
		case O_IDLE_EXIT:
			bad |= xy_cli_int("xylem manager", "--idle-exit", optarg,
					  1, 1 << 30, &o->idle_exit);
			break;
		case O_WORKERS:
			bad |= xy_cli_int("xylem manager", "--workers", optarg,
					  0, 4096, &o->workers);
			break;
		case O_CPW:
			bad |= xy_cli_int("xylem manager",
					  "--cores-per-worker", optarg,
					  1, 1 << 20, &o->cores_per_worker);
			break;
		case O_POOL:
			bad |= xy_cli_pool_arg("xylem manager", optarg,
					       o->pools, &o->n_pools) < 0;
			break;
		case O_POOLS:
			bad |= xy_cli_pools_file("xylem manager", optarg,
						 o->pools, &o->n_pools) < 0;
			break;
		case 'h': usage(stdout); return XY_EXIT_OK;
		default:
			fprintf(stderr, "xylem manager: unknown option or"
				" missing value: '%s'\n", argv[optind - 1]);
			bad = 1;
		}
	}
	if (!bad && o->journal_sync && !o->journal) {
		fprintf(stderr, "xylem manager: --journal-sync needs "
			"--journal DIR\n");
		bad = 1;
	}
	if (!bad && optind < argc) {
		fprintf(stderr, "xylem manager: unexpected argument '%s'\n",
			argv[optind]);
		bad = 1;
	}
	if (bad) {
		fprintf(stderr, "(see 'xylem manager --help')\n");
		return XY_EXIT_USAGE;
	}
	return -1;
}

/* Has m had no task and no client since *since (monotonic seconds)? */
static int idle_for(const struct xy_manager *m, double *since, double now)
{
	struct xy_stats st;

	xy_manager_stats(m, &st);
	if (st.tasks_waiting + st.tasks_ready + st.tasks_running +
	    st.transfers_active + st.clients_connected)
		*since = now;
	return (int)(now - *since);
}

/* Runs the manager until a signal, or until it was idle for idle_exit
 * seconds (1 then); says once if every local worker exited. Embedded
 * programs' tasks never come here: wait returns none. */
static int serve(struct xy_manager *m, struct xy_local *l, int idle_exit)
{
	double since = xy_mono();
	int warned = 0;

	while (!xy_local_stops()) {
		xy_manager_run(m, 0.25);
		if (l->n_workers && !warned && xy_local_reap(l) == 0) {
			fprintf(stderr, "xylem manager: every local worker"
				" exited\n");
			warned = 1;
		}
		if (idle_exit && idle_for(m, &since, xy_mono()) >= idle_exit)
			return 1;
	}
	return 0;
}

static int start(const struct manager_opts *o, struct xy_local *l)
{
	struct xy_manager_options opt = {
		.host = o->host, .port = o->port, .history = o->history,
		.name = "xylem-manager", .journal = o->journal,
		.journal_sync = o->journal_sync,
		.history_output = o->history_output, .http = o->http};

	/* With a journal, the CA is kept there: workers that outlive this
	 * manager verify the next one on it. */
	l->tls_dir = o->tls_dir ? o->tls_dir : getenv("XYLEM_TLS_DIR");
	if ((!l->tls_dir || !*l->tls_dir) && o->journal) {
		snprintf(l->tls_path, sizeof l->tls_path, "%s/tls", o->journal);
		l->tls_dir = l->tls_path;
		if (mkdir(o->journal, 0700) < 0 && errno != EEXIST)
			l->tls_dir = NULL; /* the manager says why */
	}
	l->no_tls = o->no_tls;
	/* With a journal, the secret and the port are kept there too: the
	 * next start takes them again, and clients find it (endpoint.c). */
	if (o->journal) {
		xy_local_journal(l, o->journal);
		if (!opt.port)
			opt.port = xy_local_journal_port(o->journal);
	}
	if (xy_local_tmpdir(l, "xylem-manager") < 0 ||
	    xy_local_secret(l, o->secret_file) < 0 ||
	    xy_local_manager(l, &opt) < 0 ||
	    xy_cli_pools_add("xylem manager", l->m,
			     (struct xy_cli_pool **)o->pools, o->n_pools) < 0)
		return -1;
	if (o->journal)
		xy_local_journal_save_port(o->journal, xy_manager_port(l->m));
	l->log_dir = o->log_dir;
	xy_local_size(l, o->workers, o->cores_per_worker);
	fprintf(stderr, "xylem manager: listening on port %d (secret %s%s)"
		" (%s%s)\n", xy_manager_port(l->m),
		l->secret_path[0] ? "file " : "from XYLEM_SECRET",
		l->secret_path,
		xy_manager_tls_ca(l->m) ? "TLS CA " : "no TLS",
		xy_manager_tls_ca(l->m) ? xy_manager_tls_ca(l->m) : "");
	if (xy_manager_http_url(l->m))
		fprintf(stderr, "xylem manager: dashboard at %s\n",
			xy_manager_http_url(l->m));
	return l->n_workers ? xy_local_start_workers(l) : 0;
}

int xy_cli_manager(int argc, char **argv)
{
	struct manager_opts o = {0};
	struct xy_local l;
	int rc;

	memset(&l, 0, sizeof l);
	l.who = "xylem manager";
	if ((rc = parse_args(argc, argv, &o)) >= 0) {
		for (int i = 0; i < o.n_pools; i++)
			xy_cli_pool_free(o.pools[i]);
		return rc;
	}
	xy_log_set_level(XY_LOG_INFO); /* XYLEM_LOG overrides it */
	xy_local_catch_signals();
	rc = start(&o, &l) < 0 ? XY_EXIT_FAIL : XY_EXIT_OK;
	if (rc == XY_EXIT_OK) {
		if (serve(l.m, &l, o.idle_exit)) {
			fprintf(stderr, "xylem manager: idle for %d s, "
				"stopping\n", o.idle_exit);
			/* Gone: a client that finds no port asks its
			 * endpoint again rather than calling a dead one. */
			if (o.journal)
				xy_local_journal_forget_port(o.journal);
		}
		else
			fprintf(stderr, "xylem manager: stopping on signal "
				"%d\n", xy_local_stop_signal());
	}
	xy_local_free(&l);
	for (int i = 0; i < o.n_pools; i++)
		xy_cli_pool_free(o.pools[i]);
	return rc;
}
