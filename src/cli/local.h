/*
 * local.h: what `xylem run`, `xylem manager` and `xylem cwl` share to run
 * on this machine: a private directory, the shared secret, local workers
 * started as child processes of this program (`xylem worker`), stopped in
 * order at the end, and the signals that stop the command.
 */
#ifndef XY_CLI_LOCAL_H
#define XY_CLI_LOCAL_H

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>

struct xy_manager;
struct xy_manager_options;

struct xy_local_worker {
	pid_t pid; /* 0 once reaped */
	char cache[PATH_MAX];
};

struct xy_local {
	const char *who; /* "xylem run": the prefix of every message */
	struct xy_manager *m; /* from xy_local_manager; destroyed by free */
	char *secret;
	size_t secret_len;
	char tmpdir[PATH_MAX / 2]; /* "" until made */
	/* Where local workers reach the manager: the address it listens
	 * on, or 127.0.0.1 when it listens on every interface. */
	char worker_host[64];
	char secret_path[PATH_MAX];
	/* TLS (docs/security.md): set before xy_local_manager. tls_dir
	 * NULL: the manager's CA lives in JOURNAL/tls with a journal (kept
	 * for the next manager), else in tmpdir/tls, for this run only. */
	const char *tls_dir;
	int no_tls;
	char tls_path[PATH_MAX];
	struct xy_local_worker *workers;
	int n_workers, worker_cores;
	int64_t worker_memory_mb; /* 0: let each worker detect it */
	/* A journal's directory (xy_local_journal): the secret kept there,
	 * and local workers that outlive this program. NULL: none. */
	const char *journal;
	/* --log-dir: local workers keep their logs there (xylem worker
	 * --log-dir), at their own level. NULL: none. */
	const char *log_dir;
};

/* After a first stop signal, how long a command waits for its cancelled
 * tasks to end before it stops waiting (a second signal stops at once). */
#define XY_LOCAL_CANCEL_GRACE_S 5.0

/* SIGINT and SIGTERM stop a command: from now on each is counted and
 * the last one kept, for the command's loop to read, instead of ending
 * the process (so that it cancels its tasks and removes its directory). */
void xy_local_catch_signals(void);
/* How many such signals came (a second one: stop waiting). */
int xy_local_stops(void);
/* The last one (0: none), and the exit status it makes, 128 + it. */
int xy_local_stop_signal(void);
int xy_local_stop_status(void);

/* This machine's usable cores (affinity), and MemTotal in MB (0 unknown). */
int xy_local_cores(void);
int64_t xy_local_memory_mb(void);

/* Sizes the local workers: `workers` of them (negative: one per core),
 * each with cores_per_worker cores (0: the cores shared out) and an equal
 * share of the memory. */
void xy_local_size(struct xy_local *l, int workers, int cores_per_worker);

/* Makes l->tmpdir under $TMPDIR (or /tmp), named PREFIX-XXXXXX. */
int xy_local_tmpdir(struct xy_local *l, const char *prefix);

/* The secret from secret_file, else from XYLEM_SECRET, else 32 random
 * bytes as hex, written to a 0600 file in l->tmpdir for the workers. */
int xy_local_secret(struct xy_local *l, const char *secret_file);
/* With a journal in dir, before xy_local_secret: a secret not given is
 * kept in dir/secret (made once, 0600), so that workers of a manager
 * that died can reach the next one; local workers are not killed when
 * this program dies (they keep their tasks for the lease). */
void xy_local_journal(struct xy_local *l, const char *dir);
/* The port a manager on the journal in dir listened on, or 0. */
int xy_local_journal_port(const char *dir);
/* Remembers the port for the next manager on the journal. */
void xy_local_journal_save_port(const char *dir, int port);
/* Removes DIR/port (a manager that stops for good, not for a restart). */
void xy_local_journal_forget_port(const char *dir);

/* Creates the manager with opt (its secret and TLS choices l's) as l->m;
 * says why not on stderr. */
int xy_local_manager(struct xy_local *l, struct xy_manager_options *opt);

/* Starts l->n_workers workers of l->worker_cores cores each, connecting to
 * l->m at l->worker_host. With n_workers 0 it says where workers may
 * connect. */
int xy_local_start_workers(struct xy_local *l);

/* Reaps exited workers without blocking; returns how many still run. */
int xy_local_reap(struct xy_local *l);

/* Asks, then tells, then forces the workers to exit. */
void xy_local_stop(struct xy_local *l);
/* Stops the workers, destroys the manager (workers elsewhere see it go,
 * and exit), removes the directory and frees what l holds. */
void xy_local_free(struct xy_local *l);

#endif
