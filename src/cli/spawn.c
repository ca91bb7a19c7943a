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
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "ep_ca.h"
#include "spawn.h"
#include "util.h"

#define MANAGERS_MAX 1024
#define RESTARTS_MAX 5        /* a manager that dies more often than */
#define RESTART_WINDOW_S 60.0 /* this is left down until asked again */
#define TICK_MS 250           /* how soon a death is seen */
#define START_S 10.0          /* a start that takes longer is killed */
#define WAITING_MAX 8         /* clients waiting on one start */
#define PW_BUF 4096
#define SAFE_PATH "/usr/local/bin:/usr/bin:/bin"

/* A manager this spawner started: starting (its child has not exec'd
 * yet: the pipe that exec closes is open), or running. A start never
 * blocks the spawner: a user whose home hangs (a FIFO for a log, a hung
 * file system) costs only their own start, killed after START_S. */
struct running {
	uid_t uid;
	char kind;     /* XY_EP_OP_MANAGER or XY_EP_OP_PYTHON */
	pid_t pid;
	int starting;  /* the child has not exec'd yet */
	int pipe;      /* while starting: what the child says if it fails */
	double deadline;
	int clients[WAITING_MAX]; /* waiting for the start's answer */
	int n_clients;
	char err[256];
	size_t n_err;
	char name[XY_EP_NAME_MAX]; /* the account, for answers and logs */
	char *dir;
	double since;  /* xy_mono() when the restarts below began */
	int restarts;  /* since then */
};

struct spawner {
	const struct xy_ep_config *cfg;
	const char *exe;
	const char *socket; /* the endpoint's, the only one clients reach */
	uid_t front;        /* the front's account: never served */
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

void xy_cli_spawn_close_from(int lo, int keep)
{
	if (keep >= lo) {
		if (keep > lo)
			close_range((unsigned)lo, (unsigned)keep - 1, 0);
		lo = keep + 1;
	}
	close_range((unsigned)lo, ~0U, 0);
}

int xy_cli_spawn_pass(int sock, char op, int client)
{
	return xy_cli_spawn_pass_data(sock, op, NULL, 0, client);
}

int xy_cli_spawn_pass_data(int sock, char op, const void *data, size_t n,
			   int client)
{
	static __thread char buf[1 + XY_EP_DATA_MAX];
	struct iovec iov = {.iov_base = buf, .iov_len = 1 + n};
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} ctl;
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = ctl.buf,
			     .msg_controllen = sizeof ctl.buf};
	struct cmsghdr *c = CMSG_FIRSTHDR(&msg);

	if (n > XY_EP_DATA_MAX) {
		errno = EMSGSIZE;
		return -1;
	}
	buf[0] = op;
	if (n)
		memcpy(buf + 1, data, n);
	memset(&ctl, 0, sizeof ctl);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &client, sizeof(int));
	return sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT) ==
			       (ssize_t)(1 + n)
		       ? 0
		       : -1;
}

/* The next request: 1 with *op, *fd and its data (after op, *n bytes),
 * 0 when the front is gone. A message without exactly one descriptor,
 * or cut short, is dropped (its descriptors closed) and reads as op 0. */
static int take(int sock, char *op, int *fd, char *data, size_t *len)
{
	struct iovec iov = {.iov_base = data, .iov_len = 1 + XY_EP_DATA_MAX};
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
	*len = (size_t)n - 1;
	if (*fd >= 0 && !(msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
		*op = data[0];
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
	/* O_NONBLOCK: a FIFO planted as the log does not hold the open. */
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC |
			O_NONBLOCK, 0600);
	if (fd < 0)
		fail(errfd, "cannot open the log in ~/.xylem/endpoint");
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		errno = EINVAL;
		fail(errfd, "the log in ~/.xylem/endpoint is not a plain file");
	}
	fcntl(fd, F_SETFL, O_APPEND);
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null < 0 || dup2(null, 0) < 0 || dup2(fd, 1) < 0 ||
	    dup2(fd, 2) < 0)
		fail(errfd, "cannot set up the standard descriptors");
	/* Everything else goes: the spawner's socket and whatever it held. */
	xy_cli_spawn_close_from(3, errfd);
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
				   const struct xy_ep_size *sz, int errfd)
{
	char journal[4200], idle[16], workers[16], cores[16], bufs[4][4200];
	char maxw[32], maxc[32];
	char *argv[24 + XY_EP_SESSION_ARGS_MAX], *envp[8 + XY_EP_ENV_MAX];
	int n = 0;

	snprintf(idle, sizeof idle, "%d", s->cfg->idle_exit);
	snprintf(workers, sizeof workers, "%d", sz->workers);
	snprintf(cores, sizeof cores, "%d", sz->cores);
	snprintf(maxw, sizeof maxw, "max_workers=%d", sz->max_workers);
	snprintf(maxc, sizeof maxc, "max_cores=%d", sz->max_cores);
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
		if (sz->cores > 0) {
			argv[n++] = "--cores-per-worker";
			argv[n++] = cores;
		}
		for (int i = 0; i < s->cfg->n_session_args; i++)
			argv[n++] = s->cfg->session_args[i];
		/* The pools it grants fit within the user's caps. */
		if (sz->max_workers) {
			argv[n++] = "--limit";
			argv[n++] = maxw;
		}
		if (sz->max_cores) {
			argv[n++] = "--limit";
			argv[n++] = maxc;
		}
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
	if (sz->cores > 0) {
		argv[n++] = "--cores-per-worker";
		argv[n++] = cores;
	}
	argv[n] = NULL;
	execve(s->exe, argv, envp);
	fail(errfd, "cannot run the manager");
}

static const char *what(const struct running *r);

/* Forks r's manager for a, as r->kind says: 0 with r starting (the
 * child reports a failure through r->pipe, which exec closes), or -1
 * with why in r->err. */
static int begin(const struct spawner *s, struct running *r,
		 const struct account *a)
{
	struct xy_ep_size sz;
	int p[2];

	r->n_err = 0;
	r->err[0] = '\0';
	xy_cli_ep_limits_size(s->cfg, a->pw.pw_name, r->kind == XY_EP_OP_PYTHON,
			      &sz);
	if (sz.capped)
		fprintf(stderr, "xylem endpoint: capped %s's %s to %d workers"
			" of %d cores (workers %d, cores_per_worker %d; the "
			"user's max_workers %d, max_cores %d; 0: none)\n",
			a->pw.pw_name, what(r), sz.workers, sz.cores,
			s->cfg->workers, s->cfg->cores_per_worker,
			sz.max_workers, sz.max_cores);
	if (pipe2(p, O_CLOEXEC) < 0 || (r->pid = fork()) < 0) {
		snprintf(r->err, sizeof r->err, "cannot fork: %s",
			 strerror(errno));
		return -1;
	}
	if (r->pid == 0) {
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		close(p[0]);
		setsid();
		become(a, p[1]);
		settle(a, r->kind == XY_EP_OP_PYTHON ? "python.log"
						      : "manager.log", p[1]);
		exec_manager(s, a, r->kind, &sz, p[1]);
	}
	close(p[1]);
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	r->pipe = p[0];
	r->starting = 1;
	r->deadline = xy_mono() + START_S;
	return 0;
}

/* ------------------------------------------------------------ serving */

static const char *what(const struct running *r)
{
	return r->kind == XY_EP_OP_PYTHON ? "session server" : "manager";
}

static void forget(struct spawner *s, struct running *r)
{
	for (int i = 0; i < r->n_clients; i++)
		close(r->clients[i]);
	if (r->starting)
		close(r->pipe);
	free(r->dir);
	*r = s->managers[--s->n_managers];
}

/* r's start ended: it runs (every client waiting is told where), or it
 * failed (they are told why, and r is forgotten). */
static void started(struct spawner *s, struct running *r, const char *why)
{
	close(r->pipe);
	r->starting = 0;
	for (int i = 0; i < r->n_clients; i++)
		if (why)
			reply(r->clients[i], "error cannot start your %s: %s\n",
			      what(r), why);
		else
			reply(r->clients[i], "ok started %s %s\n", r->name,
			      r->dir);
	if (why) {
		fprintf(stderr, "xylem endpoint: cannot start %s's %s: %s\n",
			r->name, what(r), why);
		if (r->pid > 0)
			kill(r->pid, SIGKILL); /* reaped as a stranger */
		forget(s, r);
		return;
	}
	for (int i = 0; i < r->n_clients; i++)
		close(r->clients[i]);
	r->n_clients = 0;
	fprintf(stderr, "xylem endpoint: started %s's %s (pid %ld)\n",
		r->name, what(r), (long)r->pid);
}

/* What a starting child said: nothing yet, a failure (text, then EOF),
 * or EOF alone: it exec'd. */
static void read_start(struct spawner *s, struct running *r)
{
	ssize_t n = read(r->pipe, r->err + r->n_err,
			 sizeof r->err - 1 - r->n_err);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0) {
		r->n_err += (size_t)n;
		r->err[r->n_err] = '\0';
		if (r->n_err < sizeof r->err - 1)
			return;
	}
	started(s, r, r->n_err ? r->err : NULL);
}

/* A manager that died (killed, or failed) comes back at once, on its
 * journal and its port, so that its workers and clients find it again;
 * one that exited 0 (idle, or stopped by a signal it caught) is
 * forgotten until its user asks again. Returns 1 if r was kept. */
static int restart(struct spawner *s, struct running *r, int status)
{
	struct account a;
	char err[512];
	double now = xy_mono();

	if (now - r->since > RESTART_WINDOW_S) {
		r->since = now;
		r->restarts = 0;
	}
	if (++r->restarts > RESTARTS_MAX) {
		fprintf(stderr, "xylem endpoint: %s's %s died %d times within"
			" %.0f s: left down until asked again\n", r->name,
			what(r), RESTARTS_MAX, RESTART_WINDOW_S);
		return 0;
	}
	fprintf(stderr, "xylem endpoint: %s's %s died (%s %d); starting it "
		"again\n", r->name, what(r),
		WIFSIGNALED(status) ? "signal" : "exit status",
		WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
	if (admit_uid(s->cfg, r->uid, &a, err, sizeof err) < 0) {
		fprintf(stderr, "xylem endpoint: not again: %s\n", err);
		return 0;
	}
	if (begin(s, r, &a) < 0) {
		fprintf(stderr, "xylem endpoint: not again: %s\n", r->err);
		return 0;
	}
	return 1;
}

/* Children that exited: a running manager is forgotten or started
 * again; one that died while starting fails its start (its pipe says
 * why, or its EOF came first). Others (killed starts) are just reaped. */
static void reap(struct spawner *s)
{
	pid_t pid;
	int status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		for (int i = 0; i < s->n_managers; i++) {
			struct running *r = &s->managers[i];
			if (r->pid != pid)
				continue;
			if (r->starting) {
				r->pid = 0;
				read_start(s, r);
				if (r->starting && r->n_err == 0)
					started(s, r, "it exited at once; see"
						" its log in ~/.xylem/endpoint");
			} else if ((!WIFEXITED(status) || WEXITSTATUS(status)) &&
				   restart(s, r, status)) {
				/* starting again */
			} else {
				forget(s, r);
			}
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

/* Is fd a connection accepted on the endpoint's own socket? The front
 * could pass one it made to another service, whose owner SO_PEERCRED
 * would then name. */
static int from_endpoint(const struct spawner *s, int fd)
{
	struct sockaddr_un sa;
	socklen_t len = sizeof sa;
	int type = 0;
	socklen_t tl = sizeof type;

	memset(&sa, 0, sizeof sa);
	return getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) == 0 &&
	       type == SOCK_STREAM &&
	       getsockname(fd, (struct sockaddr *)&sa, &len) == 0 &&
	       sa.sun_family == AF_UNIX &&
	       len > offsetof(struct sockaddr_un, sun_path) &&
	       strncmp(sa.sun_path, s->socket, sizeof sa.sun_path) == 0;
}

/* The account a, admitted by the configuration, is not the front's own:
 * 0, or -1 with why in err. */
static int not_front(const struct spawner *s, const struct account *a,
		     char *err, size_t len)
{
	if (a->pw.pw_uid == s->front && geteuid() == 0) {
		snprintf(err, len, "the endpoint's own account may not use it");
		return -1;
	}
	return 0;
}

/* a's manager or session server (kind) is started if it does not run;
 * fd gets the answer, and is kept until the start's answer if one is
 * under way. 0, or -1 when the answer was an error. */
static int ensure(struct spawner *s, int fd, const struct account *a,
		   char kind)
{
	struct running *r;
	int rc = -1;

	if (kind == XY_EP_OP_PYTHON && !s->cfg->python) {
		reply(fd, "error the endpoint runs no Python (no 'python' in "
		      "its configuration)\n");
	} else if ((r = find(s, a->pw.pw_uid, kind)) && !r->starting) {
		reply(fd, "ok running %s %s\n", a->pw.pw_name, a->dir);
		rc = 0;
	} else if (r && r->n_clients < WAITING_MAX) {
		r->clients[r->n_clients++] = fd;
		return 0;
	} else if (r || s->n_managers == MANAGERS_MAX) {
		reply(fd, "error the endpoint is busy: ask again\n");
	} else {
		r = &s->managers[s->n_managers++];
		*r = (struct running){.uid = a->pw.pw_uid, .kind = kind,
				      .since = xy_mono(), .pipe = -1,
				      .dir = strdup(a->dir)};
		snprintf(r->name, sizeof r->name, "%s", a->pw.pw_name);
		if (!r->dir || begin(s, r, a) < 0) {
			reply(fd, "error cannot start your %s: %s\n", what(r),
			      r->dir ? r->err : "out of memory");
			forget(s, r);
		} else {
			r->clients[r->n_clients++] = fd;
			return 0;
		}
	}
	close(fd);
	return rc;
}

/* A client asked for its manager (kind: a `xylem manager`, or a Python
 * session server). */
static void serve_manager(struct spawner *s, int fd, char kind)
{
	struct account a;
	char err[512];

	if (!from_endpoint(s, fd)) {
		fprintf(stderr, "xylem endpoint: refused a connection that "
			"did not come through the endpoint's socket\n");
		close(fd);
		return;
	}
	reap(s); /* a manager that just went idle is not "running" */
	if (admit(s->cfg, fd, &a, err, sizeof err) < 0 ||
	    not_front(s, &a, err, sizeof err) < 0) {
		fprintf(stderr, "xylem endpoint: refused: %s\n", err);
		reply(fd, "error %s\n", err);
		close(fd);
		return;
	}
	(void)ensure(s, fd, &a, kind);
}

/* ------------------------------------------------------- remote users */

/* Forks a child that becomes a's user for good, connects to a's session
 * server (waiting for it to listen, up to 20 s), and hands that
 * connection to the front through out: the session server sees its own
 * user connect (SO_PEERCRED), as from the Unix socket. The front gets a
 * connection to a's server this way only: it cannot make one itself. */
static void reach_session(const struct account *a, int out)
{
	char path[4300];
	double until;
	int fd;
	pid_t pid = fork();

	if (pid < 0)
		reply(out, "cannot fork: %s\n", strerror(errno));
	if (pid != 0)
		return; /* the child is reaped as a stranger */
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	xy_cli_spawn_close_from(3, out); /* root's descriptors: before */
	become(a, out);
	alarm(30);
	snprintf(path, sizeof path, "%s/python/session.sock", a->dir);
	until = xy_mono() + 20;
	for (;;) {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};
		snprintf(sa.sun_path, sizeof sa.sun_path, "%.*s",
			 (int)sizeof sa.sun_path - 1, path);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd >= 0 &&
		    connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
			break;
		if (fd >= 0)
			close(fd);
		if (xy_mono() > until) {
			reply(out, "your session server did not listen "
			      "within 20 s (its log: %s/python.log)\n", a->dir);
			_exit(1);
		}
		usleep(20000);
	}
	_exit(xy_cli_spawn_pass_data(out, 'S', a->pw.pw_name,
				     strlen(a->pw.pw_name), fd) < 0);
}

/* A remote user's request, passed by the TLS front with the client's
 * certificate: the front vouches, and the spawner checks for itself that
 * the certificate is the CA's, valid, not revoked, and the current one
 * of the account it names. fd is the front's end for the answers. */
static void serve_tls(struct spawner *s, int fd, const char *data,
		      size_t len)
{
	struct account a;
	struct passwd pw, *res = NULL;
	char err[512], name[XY_EP_NAME_MAX], buf[PW_BUF];
	int out;

	err[0] = '\0';
	if (len < 1 || data[0] != XY_EP_OP_PYTHON || !s->cfg->listen)
		snprintf(err, sizeof err, "unknown request (want 'python')");
	else if (xy_ep_ca_check(s->cfg->state, (const uint8_t *)data + 1,
				len - 1, name, sizeof name, err,
				sizeof err) < 0)
		; /* err says why */
	else if (getpwnam_r(name, &pw, buf, sizeof buf, &res) != 0 || !res)
		snprintf(err, sizeof err, "%s has no account here", name);
	else if (admit_uid(s->cfg, pw.pw_uid, &a, err, sizeof err) < 0 ||
		 not_front(s, &a, err, sizeof err) < 0)
		; /* err says why */
	else if (strcmp(a.pw.pw_name, name) != 0)
		snprintf(err, sizeof err, "%s is not the account of uid %ld",
			 name, (long)pw.pw_uid);
	if (err[0]) {
		fprintf(stderr, "xylem endpoint: refused a TLS client: %s\n",
			err);
		reply(fd, "error %s\n", err);
		close(fd);
		return;
	}
	reap(s);
	out = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	/* No child waits on a session server whose start was refused. */
	if (ensure(s, fd, &a, XY_EP_OP_PYTHON) == 0 && out >= 0)
		reach_session(&a, out);
	if (out >= 0)
		close(out);
}

/* The request of `xylem endpoint enroll`, "enroll BASE64\n", read here
 * from the client's own socket (fd): the front only peeked at it, and
 * cannot put bytes in that socket's queue, so the request is the one the
 * peer the kernel names sent. The whole line is there when the front
 * passes the connection; if not (a front that lies), it is refused,
 * without waiting. The request, DER, into der: its length, or -1 with
 * why in err. */
static int enroll_request(int fd, unsigned char *der, size_t max, char *err,
			  size_t len)
{
	char line[XY_EP_ENROLL_MAX + 1], *b64 = line + 7;
	ssize_t k;
	size_t n;
	int d, pad = 0;

	do
		k = recv(fd, line, XY_EP_ENROLL_MAX, MSG_DONTWAIT);
	while (k < 0 && errno == EINTR);
	line[k > 0 ? k : 0] = '\0';
	if (k < 8 || strncmp(line, "enroll ", 7) != 0 ||
	    !memchr(line, '\n', (size_t)k)) {
		snprintf(err, len, "no enroll request on the connection");
		return -1;
	}
	n = strcspn(b64, "\n");
	while (pad < 2 && n > (size_t)pad && b64[n - 1 - pad] == '=')
		pad++;
	d = n % 4 || n / 4 * 3 > max ? -1
				     : EVP_DecodeBlock(der, (unsigned char *)b64,
						       (int)n);
	if (d <= pad) {
		snprintf(err, len, "enroll wants a certificate request (DER, "
			 "base64)");
		return -1;
	}
	return d - pad;
}

/* `xylem endpoint enroll`: a certificate for the account the kernel
 * names, whatever the request's subject says, for the request read from
 * that account's connection (fd) here. */
static void serve_enroll(struct spawner *s, int fd)
{
	static unsigned char der[XY_EP_ENROLL_MAX];
	struct account a;
	char err[512], serial[XY_EP_SERIAL_MAX], head[512];
	char *pem = NULL;
	int n = -1;

	if (!from_endpoint(s, fd)) {
		close(fd);
		return;
	}
	if (admit(s->cfg, fd, &a, err, sizeof err) < 0 ||
	    not_front(s, &a, err, sizeof err) < 0 ||
	    (!s->cfg->listen &&
	     snprintf(err, sizeof err, "this endpoint has no TLS listener "
		      "(--listen): nothing to enroll for") > 0) ||
	    (n = enroll_request(fd, der, sizeof der, err, sizeof err)) < 0 ||
	    xy_ep_ca_issue(s->cfg->state, a.pw.pw_name, der, (size_t)n,
			   s->cfg->cert_days, &pem, serial, err,
			   sizeof err) < 0) {
		fprintf(stderr, "xylem endpoint: refused to enroll: %s\n",
			err);
		reply(fd, "error %s\n", err);
		close(fd);
		return;
	}
	fprintf(stderr, "xylem endpoint: issued %s a client certificate "
		"(serial %s)\n", a.pw.pw_name, serial);
	snprintf(head, sizeof head, "ok enrolled %s %s %s\n", a.pw.pw_name,
		 serial, s->cfg->listen);
	(void)send(fd, head, strlen(head), MSG_DONTWAIT | MSG_NOSIGNAL);
	(void)send(fd, pem, strlen(pem), MSG_DONTWAIT | MSG_NOSIGNAL);
	free(pem);
	close(fd);
}

/* Waits for the socket, the starts' pipes, or the next deadline or
 * tick; then reads the starts that spoke and fails those past due. */
static void wait_turn(struct spawner *s, int sock, struct pollfd *p)
{
	struct running *idx[MANAGERS_MAX];
	int n = 1, timeout = TICK_MS;
	double now = xy_mono();

	p[0] = (struct pollfd){.fd = sock, .events = POLLIN};
	for (int i = 0; i < s->n_managers; i++) {
		struct running *r = &s->managers[i];
		if (!r->starting)
			continue;
		idx[n] = r;
		p[n++] = (struct pollfd){.fd = r->pipe, .events = POLLIN};
		int ms = (int)((r->deadline - now) * 1e3) + 1;
		timeout = ms < timeout ? (ms > 0 ? ms : 0) : timeout;
	}
	if (poll(p, (nfds_t)n, timeout) < 0)
		p[0].revents = 0;
	now = xy_mono();
	/* From the end: started() and forget() move the last entry. */
	for (int i = n - 1; i >= 1; i--) {
		struct running *r = idx[i];
		if (p[i].revents)
			read_start(s, r);
		else if (now > r->deadline)
			started(s, r, "it did not start within 10 s (a FIFO, "
				"or a file system that hangs, under "
				"~/.xylem/endpoint?)");
	}
}

static void remove_socket(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	int fd;

	if (lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode) ||
	    strlen(path) >= sizeof sa.sun_path)
		return;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
		unlink(path);
	if (fd >= 0)
		close(fd);
}

int xy_cli_spawn_serve(int sock, const struct xy_ep_config *cfg,
		       const char *exe, const char *sock_path, uid_t front)
{
	static struct spawner s; /* a daemon's own state (STYLE.md) */
	static struct pollfd p[MANAGERS_MAX + 1];
	static char data[1 + XY_EP_DATA_MAX];
	size_t len;
	char op;
	int fd;

	s.cfg = cfg;
	s.exe = exe;
	s.socket = sock_path;
	s.front = front;
	xy_cli_spawn_close_from(3, sock); /* root keeps nothing it was handed */
	signal(SIGPIPE, SIG_IGN);
	for (;;) {
		reap(&s);
		wait_turn(&s, sock, p);
		if (!p[0].revents)
			continue; /* a tick, or a start that spoke */
		if (!take(sock, &op, &fd, data, &len))
			break;
		if (op == XY_EP_OP_MANAGER || op == XY_EP_OP_PYTHON)
			serve_manager(&s, fd, op);
		else if (op == XY_EP_OP_TLS)
			serve_tls(&s, fd, data + 1, len);
		else if (op == XY_EP_OP_ENROLL)
			serve_enroll(&s, fd);
		else if (fd >= 0)
			close(fd);
	}
	/* The front is gone: managers run on, each until idle. The socket,
	 * in a directory the front may not write, is root's to remove, if
	 * nobody answers on it (not another endpoint's). */
	remove_socket(sock_path);
	return 0;
}
