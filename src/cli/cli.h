/*
 * cli.h: the subcommands of the `xylem` command, dispatched by main.c. Each
 * takes its own argv (argv[0] is the subcommand's name) and returns the
 * process exit status: 0 success, 1 failure, 2 a usage or input error,
 * 130 interrupted.
 */
#ifndef XY_CLI_H
#define XY_CLI_H

#define XY_EXIT_OK 0
#define XY_EXIT_FAIL 1
#define XY_EXIT_USAGE 2
#define XY_EXIT_INTERRUPTED 130

int xy_cli_run(int argc, char **argv);
int xy_cli_status(int argc, char **argv);
int xy_cli_report(int argc, char **argv);
int xy_cli_manager(int argc, char **argv);
int xy_cli_cwl(int argc, char **argv);
int xy_cli_cwl_exec(int argc, char **argv);
int xy_cli_endpoint(int argc, char **argv);

/* Parses option opt's value s as an integer from lo to hi into *out;
 * otherwise says so on stderr, as `who: --opt wants a number ...`, and
 * returns -1. */
int xy_cli_int(const char *who, const char *opt, const char *s, int lo,
	       int hi, int *out);
/* XYLEM_RECONNECT: how long a client waits for a lost manager to come
 * back, in seconds (default 120; a bad value is said after who, and the
 * default used). */
double xy_cli_reconnect_window(const char *who);

/* The TLS context a client command verifies its manager with: from ca
 * (--tls-ca; NULL: XYLEM_TLS_CA), or none (*out NULL) with no_tls
 * (--no-tls, or XYLEM_NO_TLS=1), said loudly. -1 (said on stderr) if
 * neither is given or the CA cannot be read. The caller frees *out. */
struct ssl_ctx_st;
int xy_cli_tls_client(const char *who, const char *ca, int no_tls,
		      struct ssl_ctx_st **out);

/* `xylem run WORKFLOW --manager HOST:PORT` (run_remote.c): the tasks
 * submitted to a standing manager as its client. Returns the exit status
 * (XY_EXIT_*, or 128 + a signal). */
struct xy_workflow;
struct xy_run_remote_opts {
	const char *manager;     /* HOST:PORT */
	const char *secret_file; /* NULL: XYLEM_SECRET_FILE, XYLEM_SECRET */
	const char *tls_ca;      /* NULL: XYLEM_TLS_CA */
	int no_tls;
	int quiet;
};
int xy_run_remote(const struct xy_workflow *wf,
		  const struct xy_run_remote_opts *o);

/* --pool KEY=VALUE,...: one pool (pools_arg.c, docs/cli.md). Parse
 * says what is wrong on stderr and returns NULL; add adds each to m,
 * its workers running this program, -1 (said on stderr) if one is
 * refused. */
#define XY_CLI_POOLS_MAX 16
struct xy_cli_pool;
struct xy_manager;
struct xy_cli_pool *xy_cli_pool_parse(const char *who, const char *spec);
/* One --pool SPEC more into pools[*n]: 0, or -1 (said on stderr). */
int xy_cli_pool_arg(const char *who, const char *spec,
		    struct xy_cli_pool **pools, int *n);
/* --pools FILE: a --pool SPEC a line ('#' starts a comment; blank lines
 * are skipped), each into pools[*n]: 0, or -1 (said on stderr, with the
 * file's name and the line's number). */
int xy_cli_pools_file(const char *who, const char *path,
		      struct xy_cli_pool **pools, int *n);
void xy_cli_pool_free(struct xy_cli_pool *p);
int xy_cli_pools_add(const char *who, struct xy_manager *m,
		     struct xy_cli_pool **pools, int n);

/* True if argv holds "--help" or "-h" before any "--". */
int xy_cli_wants_help(int argc, char **argv);

#endif
