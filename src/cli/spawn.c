/*
 * spawn.c: the endpoint's privileged half (spawn.h, docs/endpoint.md).
 *
 * It reads nothing that a client wrote: the front (endpoint.c), which runs
 * unprivileged, parses requests and hands over the client's connection
 * with a one-byte operation. Who the client is comes from the kernel
 * (SO_PEERCRED on that connection), so a front that lies cannot start a
 * manager for anyone who did not connect. A user's manager is forked
 * here, becomes the user for good before it touches any file, and then
 * execs `xylem manager` with a journal in the user's home.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spawn.h"
#include "util.h"

#define MANAGERS_MAX 1024
#define RESTARTS_MAX 5        /* a manager that dies more often than */
#define RESTART_WINDOW_S 60.0 /* this is left down until asked again */
#define TICK_MS 250           /* how soon a death is seen */
#define PW_BUF 4096
#define SAFE_PATH "/usr/local/bin:/usr/bin:/bin"

/* The managers this spawner started and that still run. */
struct running {
	uid_t uid;
	char kind;     /* XY_EP_OP_MANAGER or XY_EP_OP_PYTHON */
	pid_t pid;
	double since;  /* xy_mono() when the restarts below began */
	int restarts;  /* since then */
};

struct spawner {
	const struct xy_ep_config *cfg;
	const char *exe;
	struct running managers[MANAGERS_MAX];
	int n_managers;
};

/* An account being served: its passwd entry and the strings it points
 * into. */
struct account {
	struct passwd pw;
	char buf[PW_BUF];
	char dir[4096]; /* HOME/.xylem/endpoint */
};

/* ------------------------------------------------------ the socketpair */

void xy_spawn_close_from(int lo, int keep)
{
	if (keep >= lo) {
		if (keep > lo)
			close_range((unsigned)lo, (unsigned)keep - 1, 0);
		lo = keep + 1;
	}
	close_range((unsigned)lo, ~0U, 0);
}

int xy_spawn_pass(int sock, char op, int client)
{
	char data = op;
	struct iovec iov = {.iov_base = &data, .iov_len = 1};
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = ctl.buf,
			     .msg_controllen = sizeof ctl.buf};
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);

	memset(&ctl, 0, sizeof ctl);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &client, sizeof(int));
	return sendmsg(sock, &msg, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

/* The next request: 1 with *op and *fd, 0 when the front is gone. A
 * message without exactly one descriptor is dropped (its descriptors
 * closed) and reads as op 0. */
static int take(int sock, char *op, int *fd)
{
	char data = 0;
	struct iovec iov = {.iov_base = &data, .iov_len = 1};
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(4 * sizeof(int))];
	} ctl;
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = ctl.buf,
			     .msg_controllen = sizeof ctl.buf};
	ssize_t n;

	do
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return 0;
	*op = 0;
	*fd = -1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c;
	     c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (int i = 0; i < k; i++) {
			int f;
			memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof f);
			if (*fd < 0 && k == 1)
				*fd = f;
			else
				close(f);
		}
	}
	if (*fd >= 0 && !(msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
		*op = data;
	return 1;
}

/* One line to the client, without waiting on it: a client that does not
 * read loses its answer, and nobody else waits for it. */
static void reply(int fd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void reply(int fd, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (n > 0 && (size_t)n < sizeof line)
		(void)send(fd, line, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* ------------------------------------------------------------- policy */

/* Fills a with uid's account, if the configuration lets it in: 0, or -1
 * with why in err. */
static int admit_uid(const struct xy_ep_config *cfg, uid_t uid,
		     struct account *a, char *err, size_t len)
{
	struct passwd *res = NULL;

	if (getpwuid_r(uid, &a->pw, a->buf, sizeof a->buf, &res) != 0 ||
	    !res) {
		snprintf(err, len, "uid %ld has no account here", (long)uid);
		return -1;
	}
	if (geteuid() != 0) {
		/* An endpoint of one user serves that user only. */
		if (uid != geteuid()) {
			snprintf(err, len, "this endpoint serves only uid %ld",
				 (long)geteuid());
			return -1;
		}
	} else if (uid == 0) {
		snprintf(err, len, "root may not use the endpoint");
		return -1;
	} else if ((long)uid < cfg->uid_min) {
		snprintf(err, len, "%s (uid %ld) is a system account: the "
			 "endpoint serves uids from %ld", a->pw.pw_name,
			 (long)uid, cfg->uid_min);
		return -1;
	}
	if (cfg->n_users) {
		int i = 0;
		while (i < cfg->n_users && strcmp(cfg->users[i], a->pw.pw_name))
			i++;
		if (i == cfg->n_users) {
			snprintf(err, len, "%s is not among the endpoint's "
				 "users", a->pw.pw_name);
			return -1;
		}
	}
	if (a->pw.pw_dir[0] != '/') {
		snprintf(err, len, "%s has no home directory", a->pw.pw_name);
		return -1;
	}
	snprintf(a->dir, sizeof a->dir, "%s/.xylem/endpoint", a->pw.pw_dir);
	return 0;
}

/* The same for the account on the other end of fd, as the kernel says. */
static int admit(const struct xy_ep_config *cfg, int fd, struct account *a,
		 char *err, size_t len)
{
	struct ucred cr;
	socklen_t cl = sizeof cr;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) < 0) {
		snprintf(err, len, "cannot tell who connected: %s",
			 strerror(errno));
		return -1;
	}
	return admit_uid(cfg, cr.uid, a, err, len);
}

/* ------------------------------------------- the user's manager, forked */

static _Noreturn void fail(int errfd, const char *what)
{
	char msg[512];
	int n = snprintf(msg, sizeof msg, "%s: %s", what, strerror(errno));

	if (n > 0)
		(void)!write(errfd, msg, (size_t)n < sizeof msg ? (size_t)n
								: sizeof msg);
	_exit(127);
}

/* Becomes a's user for good: groups, then gid, then uid; then checks that
 * root cannot be had back. */
static void become(const struct account *a, int errfd)
{
	uid_t u = a->pw.pw_uid;
	gid_t g = a->pw.pw_gid;

	if (geteuid() == 0) {
		if (initgroups(a->pw.pw_name, g) < 0)
			fail(errfd, "initgroups");
		if (setresgid(g, g, g) < 0)
			fail(errfd, "setresgid");
		if (setresuid(u, u, u) < 0)
			fail(errfd, "setresuid");
		if (setuid(0) == 0 || seteuid(0) == 0) {
			errno = EPERM;
			fail(errfd, "root could be regained");
		}
	}
	if (getuid() != u || geteuid() != u || getgid() != g) {
		errno = EPERM;
		fail(errfd, "the account change did not hold");
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		fail(errfd, "no_new_privs");
}

/* As the user, now: the state directory and the log (DIR/log). */
static void settle(const struct account *a, const char *log, int errfd)
{
	char path[4200];
	struct stat st;
	int fd;

	umask(077);
	if (chdir(a->pw.pw_dir) < 0)
		fail(errfd, "cannot enter the home directory");
	if (mkdir(".xylem", 0700) < 0 && errno != EEXIST)
		fail(errfd, "cannot make ~/.xylem");
	if (mkdir(a->dir, 0700) < 0 && errno != EEXIST)
		fail(errfd, "cannot make ~/.xylem/endpoint");
	if (lstat(a->dir, &st) < 0 || !S_ISDIR(st.st_mode) ||
	    st.st_uid != a->pw.pw_uid) {
		errno = ENOTDIR;
		fail(errfd, "~/.xylem/endpoint is not the user's directory");
	}
	snprintf(path, sizeof path, "%s/%s", a->dir, log);
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC,
		  0600);
	if (fd < 0)
		fail(errfd, "cannot open the log in ~/.xylem/endpoint");
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null < 0 || dup2(null, 0) < 0 || dup2(fd, 1) < 0 ||
	    dup2(fd, 2) < 0)
		fail(errfd, "cannot set up the standard descriptors");
	/* Everything else goes: the spawner's socket and whatever it held. */
	xy_spawn_close_from(3, errfd);
}

/* The environment a user's manager starts with: the account's own
 * variables, a safe PATH, and the administrator's `environment` lines;
 * nothing of the endpoint's. */
static void user_env(const struct spawner *s, const struct account *a,
		     char bufs[4][4200], char **envp)
{
	int n = 0;

	snprintf(bufs[0], 4200, "HOME=%s", a->pw.pw_dir);
	snprintf(bufs[1], 4200, "USER=%s", a->pw.pw_name);
	snprintf(bufs[2], 4200, "LOGNAME=%s", a->pw.pw_name);
	snprintf(bufs[3], 4200, "SHELL=%s",
		 a->pw.pw_shell && *a->pw.pw_shell ? a->pw.pw_shell : "/bin/sh");
	for (int i = 0; i < 4; i++)
		envp[n++] = bufs[i];
	envp[n++] = "PATH=" SAFE_PATH;
	for (int i = 0; i < s->cfg->n_env; i++)
		envp[n++] = (char *)s->cfg->env[i];
	envp[n] = NULL;
}

static _Noreturn void exec_manager(const struct spawner *s,
				   const struct account *a, char kind,
				   int errfd)
{
	char journal[4200], idle[16], workers[16], cores[16], bufs[4][4200];
	char *argv[20], *envp[8 + XY_EP_ENV_MAX];
	int n = 0;

	snprintf(idle, sizeof idle, "%d", s->cfg->idle_exit);
	snprintf(workers, sizeof workers, "%d", s->cfg->workers);
	snprintf(cores, sizeof cores, "%d", s->cfg->cores_per_worker);
	user_env(s, a, bufs, envp);
	if (kind == XY_EP_OP_PYTHON) {
		snprintf(journal, sizeof journal, "%s/python", a->dir);
		argv[n++] = (char *)s->cfg->python;
		argv[n++] = "-m";
		argv[n++] = "xylem.endpoint";
		argv[n++] = "serve";
		argv[n++] = journal;
		argv[n++] = "--idle-exit";
		argv[n++] = idle;
		argv[n++] = "--workers";
		argv[n++] = workers;
		argv[n] = NULL;
		execve(s->cfg->python, argv, envp);
		fail(errfd, "cannot run the session server");
	}
	snprintf(journal, sizeof journal, "%s/journal", a->dir);
	argv[n++] = "xylem";
	argv[n++] = "manager";
	argv[n++] = "--host";
	argv[n++] = "127.0.0.1";
	argv[n++] = "--journal";
	argv[n++] = journal;
	argv[n++] = "--idle-exit";
	argv[n++] = idle;
	argv[n++] = "--workers";
	argv[n++] = workers;
	if (s->cfg->cores_per_worker > 0) {
		argv[n++] = "--cores-per-worker";
		argv[n++] = cores;
	}
	argv[n] = NULL;
	execve(s->exe, argv, envp);
	fail(errfd, "cannot run the manager");
}

/* Forks a's manager: its pid, or -1 with why in err (the child says what
 * failed through a pipe that exec closes). */
static pid_t start(const struct spawner *s, const struct account *a,
		   char kind, char *err, size_t len)
{
	int p[2];
	pid_t pid;
	ssize_t n;

	if (pipe2(p, O_CLOEXEC) < 0) {
		snprintf(err, len, "pipe: %s", strerror(errno));
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		snprintf(err, len, "fork: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		return -1;
	}
	if (pid == 0) {
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		close(p[0]);
		setsid();
		become(a, p[1]);
		settle(a, kind == XY_EP_OP_PYTHON ? "python.log"
						    : "manager.log", p[1]);
		exec_manager(s, a, kind, p[1]);
	}
	close(p[1]);
	do
		n = read(p[0], err, len - 1);
	while (n < 0 && errno == EINTR);
	close(p[0]);
	if (n > 0) {
		err[n] = '\0';
		waitpid(pid, NULL, 0);
		return -1;
	}
	return pid;
}

/* ------------------------------------------------------------ serving */

/* A manager that died (killed, or failed) comes back at once, on its
 * journal and its port, so that its workers and clients find it again;
 * one that exited 0 (idle, or stopped by a signal it caught) is
 * forgotten until its user asks again. */
static void restart(struct spawner *s, struct running *r, int status)
{
	struct account a;
	char err[512];
	double now = xy_mono();

	if (now - r->since > RESTART_WINDOW_S) {
		r->since = now;
		r->restarts = 0;
	}
	if (++r->restarts > RESTARTS_MAX) {
		fprintf(stderr, "xylem endpoint: uid %ld's manager died %d "
			"times within %.0f s: left down until asked again\n",
			(long)r->uid, RESTARTS_MAX, RESTART_WINDOW_S);
		r->pid = 0;
		return;
	}
	if (admit_uid(s->cfg, r->uid, &a, err, sizeof err) < 0 ||
	    (r->pid = start(s, &a, r->kind, err, sizeof err)) < 0) {
		fprintf(stderr, "xylem endpoint: cannot start uid %ld's "
			"manager again: %s\n", (long)r->uid, err);
		r->pid = 0;
		return;
	}
	fprintf(stderr, "xylem endpoint: %s's %s died (%s %d); started "
		"again (pid %ld)\n", a.pw.pw_name,
		r->kind == XY_EP_OP_PYTHON ? "session server" : "manager",
		WIFSIGNALED(status) ? "signal" : "exit status",
		WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status),
		(long)r->pid);
}

/* Managers that exited: forgotten, or started again. */
static void reap(struct spawner *s)
{
	pid_t pid;
	int status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		for (int i = 0; i < s->n_managers; i++) {
			struct running *r = &s->managers[i];
			if (r->pid != pid)
				continue;
			if (!WIFEXITED(status) || WEXITSTATUS(status))
				restart(s, r, status);
			else
				r->pid = 0;
			if (!r->pid)
				*r = s->managers[--s->n_managers];
			break;
		}
}

static struct running *find(struct spawner *s, uid_t uid, char kind)
{
	for (int i = 0; i < s->n_managers; i++)
		if (s->managers[i].uid == uid && s->managers[i].kind == kind)
			return &s->managers[i];
	return NULL;
}

/* A client asked for its manager (kind: a `xylem manager`, or a Python
 * session server): started if it does not run. */
static void serve_manager(struct spawner *s, int fd, char kind)
{
	const char *what = kind == XY_EP_OP_PYTHON ? "session server"
						    : "manager";

	struct account a;
	char err[512];

	if (admit(s->cfg, fd, &a, err, sizeof err) < 0) {
		fprintf(stderr, "xylem endpoint: refused: %s\n", err);
		reply(fd, "error %s\n", err);
		return;
	}
	if (kind == XY_EP_OP_PYTHON && !s->cfg->python) {
		reply(fd, "error the endpoint runs no Python (no 'python' in "
		      "its configuration)\n");
		return;
	}
	reap(s);
	int fresh = !find(s, a.pw.pw_uid, kind);
	if (fresh) {
		if (s->n_managers == MANAGERS_MAX) {
			reply(fd, "error the endpoint runs as many managers as"
			      " it may\n");
			return;
		}
		pid_t pid = start(s, &a, kind, err, sizeof err);
		if (pid < 0) {
			fprintf(stderr, "xylem endpoint: cannot start %s's "
				"%s: %s\n", a.pw.pw_name, what, err);
			reply(fd, "error cannot start your %s: %s\n", what, err);
			return;
		}
		s->managers[s->n_managers++] = (struct running){
			.uid = a.pw.pw_uid, .kind = kind, .pid = pid,
			.since = xy_mono()};
		fprintf(stderr, "xylem endpoint: started %s's %s (pid %ld)\n",
			a.pw.pw_name, what, (long)pid);
	}
	reply(fd, "ok %s %s %s\n", fresh ? "started" : "running",
	      a.pw.pw_name, a.dir);
}

int xy_spawn_serve(int sock, const struct xy_ep_config *cfg, const char *exe)
{
	static struct spawner s; /* a daemon's own state (STYLE.md) */
	char op;
	int fd;

	s.cfg = cfg;
	s.exe = exe;
	xy_spawn_close_from(3, sock); /* root keeps nothing it was handed */
	signal(SIGPIPE, SIG_IGN);
	for (;;) {
		struct pollfd p = {.fd = sock, .events = POLLIN};
		reap(&s);
		if (poll(&p, 1, TICK_MS) <= 0)
			continue; /* a tick, or a signal: reap again */
		if (!take(sock, &op, &fd))
			break;
		if (op == XY_EP_OP_MANAGER || op == XY_EP_OP_PYTHON)
			serve_manager(&s, fd, op);
		if (fd >= 0)
			close(fd);
	}
	/* The front is gone: managers run on, each until idle. */
	return 0;
}
