/*
 * local.c: the private directory, the secret and the local workers that
 * `xylem run`, `xylem manager` and `xylem cwl` start, and the signals that
 * stop them (local.h). A worker is this very program run as `xylem
 * worker`, in a process group of its own.
 */
#include <errno.h>
#include <fcntl.h>
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

#include "local.h"
#include "log.h"
#include "resources.h"
#include "util.h"
#include "xylem.h"

#define STOP_GRACE_S 5.0
#define TERM_GRACE_S 2.0

extern char **environ;

/* The command's stop signals: written by the handler, read by its loop. */
static volatile sig_atomic_t stop_signal, stop_count;

static void on_signal(int sig)
{
	stop_signal = sig;
	stop_count++;
}

void xy_local_catch_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

int xy_local_stops(void)
{
	return stop_count;
}

int xy_local_stop_signal(void)
{
	return stop_signal;
}

int xy_local_stop_status(void)
{
	return 128 + stop_signal;
}

int xy_local_cores(void)
{
	cpu_set_t set;
	long n;

	if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
		return CPU_COUNT(&set);
	n = sysconf(_SC_NPROCESSORS_ONLN);
	return n > 0 ? (int)n : 1;
}

/* MemTotal in MB, or 0 if unknown. */
int64_t xy_local_memory_mb(void)
{
	char line[256];
	long long kb = 0;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof line, f))
		if (strncmp(line, "MemTotal:", 9) == 0) {
			kb = strtoll(line + 9, NULL, 10);
			break;
		}
	fclose(f);
	return kb / 1024;
}

void xy_local_size(struct xy_local *l, int workers, int cores_per_worker)
{
	int cores = xy_local_cores();
	int64_t memory = xy_local_memory_mb();
	struct xy_resources job = {0};

	/* Inside a Slurm job, the job's share of this node, as a worker
	 * started there would offer (resources.h), not the whole host. */
	if (getenv("SLURM_JOB_ID") &&
	    xy_resources_find(&job, XY_RES_DISK, "/", getenv) == 1) {
		cores = job.cores ? (int)job.cores : cores;
		memory = job.memory_mb ? (int64_t)job.memory_mb : memory;
	}
	xy_resources_clear(&job);
	l->n_workers = workers < 0 ? cores : workers;
	l->worker_cores = cores_per_worker ? cores_per_worker
			  : l->n_workers ? cores / l->n_workers : cores;
	if (l->worker_cores < 1)
		l->worker_cores = 1;
	/* Local workers share this machine's memory rather than each
	 * offering all of it. */
	if (l->n_workers)
		l->worker_memory_mb = memory / l->n_workers;
}

int xy_local_tmpdir(struct xy_local *l, const char *prefix)
{
	const char *base = getenv("TMPDIR");

	snprintf(l->tmpdir, sizeof l->tmpdir, "%s/%s-XXXXXX",
		 base && *base ? base : "/tmp", prefix);
	if (!mkdtemp(l->tmpdir)) {
		fprintf(stderr, "%s: cannot make a directory in %s: %s\n",
			l->who, base && *base ? base : "/tmp", strerror(errno));
		l->tmpdir[0] = '\0';
		return -1;
	}
	/* Local workers that run tasks under accounts of their own
	 * (docs/security.md) have their caches in here: those accounts
	 * must pass through it, not list it (the secret in it is 0600). */
	const char *users = getenv("XYLEM_TASK_USERS");
	if (users && *users && geteuid() == 0)
		chmod(l->tmpdir, 0711);
	return 0;
}

/* Writes l's secret to a 0600 file in l's directory, for the local
 * workers' --secret-file: 0, or -1 (said). */
static int write_secret_file(struct xy_local *l)
{
	snprintf(l->secret_path, sizeof l->secret_path, "%s/secret", l->tmpdir);
	int fd = open(l->secret_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		      0600);
	if (fd < 0 || write(fd, l->secret, l->secret_len) !=
			      (ssize_t)l->secret_len || write(fd, "\n", 1) != 1) {
		fprintf(stderr, "%s: cannot write %s: %s\n", l->who,
			l->secret_path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

void xy_local_journal(struct xy_local *l, const char *dir)
{
	l->journal = dir;
}

/* dir/secret, made with 32 random bytes as hex if it is not there. */
static const char *journal_secret(struct xy_local *l, char *path, size_t len)
{
	unsigned char raw[32];
	char hex[2 * sizeof raw + 2];

	if (mkdir(l->journal, 0700) < 0 && errno != EEXIST) {
		fprintf(stderr, "%s: cannot make %s: %s\n", l->who, l->journal,
			strerror(errno));
		return NULL;
	}
	snprintf(path, len, "%s/secret", l->journal);
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 && errno == EEXIST)
		return path;
	if (fd < 0 || getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
		fprintf(stderr, "%s: cannot make %s: %s\n", l->who, path,
			strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	xy_hex(raw, sizeof raw, hex);
	size_t n = strlen(hex);
	hex[n++] = '\n';
	int bad = xy_write_all(fd, hex, n) < 0 || fsync(fd) < 0;
	close(fd);
	if (bad) {
		fprintf(stderr, "%s: cannot write %s: %s\n", l->who, path,
			strerror(errno));
		unlink(path);
		return NULL;
	}
	return path;
}

int xy_local_journal_port(const char *dir)
{
	char path[PATH_MAX];
	int port = 0;

	snprintf(path, sizeof path, "%s/port", dir);
	FILE *f = fopen(path, "r");
	if (f) {
		if (fscanf(f, "%d", &port) != 1 || port < 1 || port > 65535)
			port = 0;
		fclose(f);
	}
	return port;
}

void xy_local_journal_forget_port(const char *dir)
{
	char path[PATH_MAX];

	snprintf(path, sizeof path, "%s/port", dir);
	unlink(path);
}

void xy_local_journal_save_port(const char *dir, int port)
{
	char path[PATH_MAX], tmp[PATH_MAX + 8];

	snprintf(path, sizeof path, "%s/port", dir);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	FILE *f = fopen(tmp, "w");
	if (!f || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0 ||
	    rename(tmp, path) < 0)
		XY_LOGW("run", "cannot save the port in %s: %s", path,
			strerror(errno));
}

/* The secret from secret_file (--secret-file), else from XYLEM_SECRET (as
 * `xylem worker` does), else, with a journal, the one kept in it,
 * else 32 fresh random bytes as hex (the hex text itself is the secret). Local workers read the last two from a 0600
 * file; XYLEM_SECRET is taken out of this process's environment, where
 * tasks could read it (/proc/PID/environ of their worker's parent). */
int xy_local_secret(struct xy_local *l, const char *secret_file)
{
	unsigned char raw[32];
	char err[512], kept[PATH_MAX];
	size_t n;
	char *env = xy_env_take("XYLEM_SECRET", &n); /* even if unused */

	if (!secret_file && !env && l->journal &&
	    !(secret_file = journal_secret(l, kept, sizeof kept)))
		return -1;
	if (secret_file) {
		free(env);
		l->secret = xy_read_secret(secret_file, &l->secret_len, err,
					   sizeof err);
		if (!l->secret) {
			fprintf(stderr, "%s: %s\n", l->who, err);
			return -1;
		}
		snprintf(l->secret_path, sizeof l->secret_path, "%s",
			 secret_file);
		return 0;
	}
	l->secret = env;
	l->secret_len = env ? n : 0;
	if (!l->secret && errno == ENOMEM)
		return -1;
	if (!l->secret) {
		if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
			fprintf(stderr, "%s: no random bytes: %s\n", l->who,
				strerror(errno));
			return -1;
		}
		l->secret_len = 2 * sizeof raw;
		l->secret = malloc(l->secret_len + 1);
		if (!l->secret)
			return -1;
		xy_hex(raw, sizeof raw, l->secret);
	}
	return write_secret_file(l);
}

/* The environment for local workers: ours, and XYLEM_LOG=warn unless the
 * user chose a level, so that a terminal is not filled with each worker's
 * info lines. */
static char **worker_env(int quiet_log)
{
	static char quiet[] = "XYLEM_LOG=warn";
	size_t n = 0;
	char **env;

	while (environ[n])
		n++;
	env = calloc(n + 2, sizeof(*env));
	if (!env)
		return NULL;
	memcpy(env, environ, n * sizeof(*env));
	if (!getenv("XYLEM_LOG") && quiet_log)
		env[n] = quiet;
	return env;
}

/* fork+exec of this very program as `xylem worker`. The child gets its own
 * process group, so a ^C on the terminal reaches only this program, which
 * then stops the workers in order; and it dies with us if we are killed. */
static pid_t spawn_worker(struct xy_local *l, int i, char **env)
{
	char where[96], cores[16], memory[32], *argv[18];
	pid_t parent = getpid(), pid;
	sigset_t none;
	int n = 0;

	snprintf(where, sizeof where,
		 strchr(l->worker_host, ':') ? "[%s]:%d" : "%s:%d",
		 l->worker_host, xy_manager_port(l->m));
	snprintf(cores, sizeof cores, "%d", l->worker_cores);
	snprintf(memory, sizeof memory, "%lld", (long long)l->worker_memory_mb);
	snprintf(l->workers[i].cache, sizeof l->workers[i].cache,
		 "%s/worker-%d", l->tmpdir, i + 1);
	argv[n++] = "xylem";
	argv[n++] = "worker";
	argv[n++] = where;
	argv[n++] = "--cores";
	argv[n++] = cores;
	argv[n++] = "--cache";
	argv[n++] = l->workers[i].cache;
	if (l->worker_memory_mb > 0) {
		argv[n++] = "--memory";
		argv[n++] = memory;
	}
	if (l->log_dir) {
		argv[n++] = "--log-dir";
		argv[n++] = (char *)l->log_dir;
	}
	if (l->secret_path[0]) {
		argv[n++] = "--secret-file";
		argv[n++] = l->secret_path;
	}
	if (xy_manager_tls_ca(l->m)) {
		argv[n++] = "--tls-ca";
		argv[n++] = (char *)xy_manager_tls_ca(l->m);
	} else {
		argv[n++] = "--no-tls";
	}
	argv[n] = NULL;
	sigemptyset(&none);
	pid = fork();
	if (pid == 0) {
		sigprocmask(SIG_SETMASK, &none, NULL);
		setpgid(0, 0);
		if (!l->journal) {
			prctl(PR_SET_PDEATHSIG, SIGTERM);
			if (getppid() != parent)
				_exit(127);
		}
		execve("/proc/self/exe", argv, env);
		_exit(127);
	}
	return pid;
}

int xy_local_start_workers(struct xy_local *l)
{
	char **env;

	if (l->n_workers == 0) {
		fprintf(stderr, "%s: waiting for workers on port %d"
			" (secret %s%s) (%s%s)\n", l->who,
			xy_manager_port(l->m),
			l->secret_path[0] ? "file " : "from XYLEM_SECRET",
			l->secret_path,
			xy_manager_tls_ca(l->m) ? "TLS CA " : "no TLS",
			xy_manager_tls_ca(l->m) ? xy_manager_tls_ca(l->m)
						: "");
		return 0;
	}
	l->workers = calloc((size_t)l->n_workers, sizeof(*l->workers));
	env = worker_env(!l->log_dir);
	if (!l->workers || !env) {
		free(env);
		fprintf(stderr, "%s: out of memory\n", l->who);
		return -1;
	}
	for (int i = 0; i < l->n_workers; i++) {
		l->workers[i].pid = spawn_worker(l, i, env);
		if (l->workers[i].pid < 0) {
			l->workers[i].pid = 0;
			fprintf(stderr, "%s: cannot start a worker: %s\n",
				l->who, strerror(errno));
			free(env);
			return -1;
		}
	}
	free(env);
	return 0;
}

/* Reaps exited workers without blocking; returns how many still run. */
int xy_local_reap(struct xy_local *l)
{
	int alive = 0, status;

	for (int i = 0; i < l->n_workers; i++) {
		struct xy_local_worker *w = &l->workers[i];

		if (w->pid && waitpid(w->pid, &status, WNOHANG) == w->pid)
			w->pid = 0;
		alive += w->pid != 0;
	}
	return alive;
}

static void signal_workers(struct xy_local *l, int sig)
{
	for (int i = 0; i < l->n_workers; i++)
		if (l->workers[i].pid)
			kill(l->workers[i].pid, sig);
}

/* Keeps the manager's loop turning (so that SHUTDOWN and BYE go through)
 * until every local worker exited or `seconds` passed. The caller has
 * stopped collecting tasks (a second ^C stops waiting for the cancelled
 * ones): a task that comes back now is ours to free. */
/* Runs the manager until the local workers have exited, for at most
 * seconds; with tell, each worker that connects meanwhile is told to
 * stop too (one still starting when the run ended would otherwise wait
 * for the signal). */
static int pump_until_gone(struct xy_local *l, double seconds, int tell)
{
	const struct timespec nap = {0, 20 * 1000 * 1000};
	double end = xy_now() + seconds;
	int alive;

	while ((alive = xy_local_reap(l)) > 0 && xy_now() < end) {
		double t0 = xy_now();

		if (l->m && tell)
			xy_manager_shutdown_workers(l->m);
		if (l->m)
			xy_task_delete(xy_manager_wait(l->m, 0.05));
		if (xy_now() - t0 < 0.01)
			nanosleep(&nap, NULL);
	}
	return alive;
}

int xy_local_manager(struct xy_local *l, struct xy_manager_options *opt)
{
	char err[1024] = "";
	const char *h = opt->host;

	opt->secret = l->secret;
	opt->secret_len = l->secret_len;
	const char *off = getenv("XYLEM_NO_TLS");
	opt->no_tls = l->no_tls || (off && !strcmp(off, "1"));
	opt->tls_dir = l->tls_dir ? l->tls_dir : getenv("XYLEM_TLS_DIR");
	if (opt->tls_dir && !*opt->tls_dir)
		opt->tls_dir = NULL;
	/* With a journal, the CA is kept beside its secret, so that the
	 * workers that outlive this manager verify the next one. */
	if (!opt->tls_dir && (l->journal || l->tmpdir[0])) {
		snprintf(l->tls_path, sizeof l->tls_path, "%s/tls",
			 l->journal ? l->journal : l->tmpdir);
		opt->tls_dir = l->tls_path;
		/* A new journal given a secret file: its directory is not
		 * made yet (the manager says why if it cannot be). */
		if (l->journal && mkdir(l->journal, 0700) < 0 &&
		    errno != EEXIST)
			opt->tls_dir = NULL;
	}
	if (!h || !*h || !strcmp(h, "0.0.0.0") || !strcmp(h, "::") ||
	    strlen(h) >= sizeof l->worker_host)
		h = "127.0.0.1";
	snprintf(l->worker_host, sizeof l->worker_host, "%s", h);
	l->m = xy_manager_create(opt, err, sizeof err);
	if (!l->m) {
		fprintf(stderr, "%s: cannot start the manager: %s\n", l->who,
			err);
		return -1;
	}
	return 0;
}

/* Asks, then tells, then forces the local workers to exit. */
void xy_local_stop(struct xy_local *l)
{
	if (!l->workers || xy_local_reap(l) == 0)
		return;
	if (pump_until_gone(l, STOP_GRACE_S, 1) == 0)
		return;
	signal_workers(l, SIGTERM);
	if (pump_until_gone(l, TERM_GRACE_S, 0) == 0)
		return;
	fprintf(stderr, "%s: killing workers that did not stop\n", l->who);
	signal_workers(l, SIGKILL);
	for (int i = 0; i < l->n_workers; i++)
		if (l->workers[i].pid)
			waitpid(l->workers[i].pid, NULL, 0);
}

void xy_local_free(struct xy_local *l)
{
	xy_local_stop(l);
	xy_manager_destroy(l->m);
	l->m = NULL;
	if (l->tmpdir[0] && xy_rm_rf(l->tmpdir) < 0)
		fprintf(stderr, "%s: cannot remove %s: %s\n", l->who, l->tmpdir,
			strerror(errno));
	l->tmpdir[0] = '\0';
	free(l->workers);
	l->workers = NULL;
	free(l->secret);
	l->secret = NULL;
}
