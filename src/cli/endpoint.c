/*
 * endpoint.c: `xylem endpoint`, a service that several users share
 * (docs/endpoint.md). Started by root, it forks its privileged half (the
 * spawner, spawn.c) and then drops to an unprivileged account for good:
 * the part that reads what clients send never runs as root. A client
 * connects to the Unix socket and asks for its manager; the front hands
 * the connection to the spawner, which asks the kernel who it is,
 * starts that user's own manager under the user's account if it does not
 * run, and answers with where it keeps its state.
 *
 * `xylem endpoint connect` is the client's side: it asks, waits until the
 * manager listens, and prints how to reach it.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "cli.h"
#include "ep_ca.h"
#include "ep_tls.h"
#include "local.h"
#include "spawn.h"
#include "util.h"

#define WHO "xylem endpoint"
#define REQUEST_MAX XY_EP_ENROLL_MAX /* an enroll line carries a request */

struct ep_opts {
	const char *socket;
	const char *config;
	const char *run_as;
	const char *listen; /* HOST:PORT for remote users (TLS), or NULL */
	const char *state;  /* the CA's directory */
	int wait; /* connect: seconds to wait for the manager */
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: xylem endpoint --socket PATH [--listen HOST:PORT]"
		" [--state DIR]\n"
		"                      [--config FILE] [--run-as USER]\n"
		"       xylem endpoint connect --socket PATH [--wait S]\n"
		"       xylem endpoint enroll --socket PATH [--dir DIR]\n"
		"       xylem endpoint revoke [--state DIR] USER|SERIAL\n\n"
		"The first form serves a shared endpoint: each local user"
		" who connects to the\nUnix socket PATH gets a manager of"
		" their own, run under their own account,\nwith its journal"
		" in ~/.xylem/endpoint (docs/endpoint.md). Started by root,"
		" it\nkeeps root only in a small spawner and serves as USER"
		" (default: nobody).\nStarted by another user, it serves that"
		" user alone.\n\n"
		"The second form asks the endpoint for your manager, waits"
		" until it listens,\nand prints XYLEM_MANAGER,"
		" XYLEM_SECRET_FILE and XYLEM_TLS_CA as shell lines.\n\n"
		"options:\n"
		"  --socket PATH   the endpoint's Unix socket\n"
		"  --listen HOST:PORT  also serve remote users over TLS 1.3,"
		" each with a client\n"
		"                  certificate of the endpoint's CA"
		" ('xylem endpoint enroll')\n"
		"  --state DIR     the CA, and the lists of issued and revoked"
		" certificates\n"
		"                  (default /var/lib/xylem/endpoint)\n"
		"  --config FILE   the administrator's settings: KEY = VALUE"
		" lines (users,\n"
		"                  uid_min, idle_exit, workers,"
		" cores_per_worker, python,\n"
		"                  environment, cert_days, tls_keepalive,"
		" max_queued,\n"
		"                  max_result_bytes, retention, option NAME,"
		" pool NAME,\n"
		"                  max_workers, max_cores, user NAME;"
		" docs/endpoint.md)\n"
		"  --run-as USER   the account the front serves as (root"
		" only; default nobody)\n"
		"  --wait S        connect: seconds to wait for the manager"
		" (default 30)\n"
		"  --help          show this help\n\n"
		"Exit status: 0 (a signal stopped the endpoint; connect: the"
		" manager listens),\n1 if it cannot start or the endpoint"
		" refused, 2 for a bad command line.\n");
}

static int parse_args(int argc, char **argv, struct ep_opts *o)
{
	enum { O_SOCKET = 256, O_CONFIG, O_RUN_AS, O_WAIT, O_LISTEN,
	       O_STATE };
	static const struct option longopts[] = {
		{"socket", required_argument, NULL, O_SOCKET},
		{"config", required_argument, NULL, O_CONFIG},
		{"run-as", required_argument, NULL, O_RUN_AS},
		{"wait", required_argument, NULL, O_WAIT},
		{"listen", required_argument, NULL, O_LISTEN},
		{"state", required_argument, NULL, O_STATE},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c, bad = 0;

	o->wait = 30;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case O_SOCKET: o->socket = optarg; break;
		case O_CONFIG: o->config = optarg; break;
		case O_RUN_AS: o->run_as = optarg; break;
		case O_LISTEN: o->listen = optarg; break;
		case O_STATE: o->state = optarg; break;
		case O_WAIT:
			bad |= xy_cli_int(WHO, "--wait", optarg, 1, 3600,
					  &o->wait);
			break;
		case 'h': usage(stdout); return XY_EXIT_OK;
		default:
			fprintf(stderr, WHO ": unknown option or missing "
				"value: '%s'\n", argv[optind - 1]);
			bad = 1;
		}
	}
	if (!bad && !o->socket) {
		fprintf(stderr, WHO ": --socket PATH is needed\n");
		bad = 1;
	}
	if (!bad && optind < argc) {
		fprintf(stderr, WHO ": unexpected argument '%s'\n",
			argv[optind]);
		bad = 1;
	}
	if (bad) {
		fprintf(stderr, "(see 'xylem endpoint --help')\n");
		return XY_EXIT_USAGE;
	}
	return -1;
}

/* ------------------------------------------------------ configuration */

static int config_users(struct xy_ep_config *cfg, char *v)
{
	for (char *save, *u = strtok_r(v, ", \t", &save); u;
	     u = strtok_r(NULL, ", \t", &save)) {
		if (cfg->n_users == XY_EP_USERS_MAX ||
		    strlen(u) >= XY_EP_NAME_MAX)
			return -1;
		snprintf(cfg->users[cfg->n_users++], XY_EP_NAME_MAX, "%s", u);
	}
	return 0;
}

/* One KEY = VALUE line into cfg: 0, or -1 with why in err. */
static int config_line(struct xy_ep_config *cfg, char *key, char *v,
		       char *err, size_t len)
{
	struct { const char *key; int *to; int lo, hi; } ints[] = {
		{"idle_exit", &cfg->idle_exit, 1, 1 << 30},
		{"workers", &cfg->workers, 0, 4096},
		{"cores_per_worker", &cfg->cores_per_worker, 1, 1 << 20},
		{"cert_days", &cfg->cert_days, 1, 3650},
		{"tls_keepalive", &cfg->tls_keepalive, 1, 7200},
	};
	char *end;
	int mine = xy_cli_ep_limits_line(cfg, key, v, err, len);

	if (mine)
		return mine < 0 ? -1 : 0;
	if (strcmp(key, "users") == 0) {
		if (config_users(cfg, v) == 0)
			return 0;
		snprintf(err, len, "users: at most %d names of at most %d "
			 "characters", XY_EP_USERS_MAX, XY_EP_NAME_MAX - 1);
		return -1;
	}
	if (strcmp(key, "python") == 0) {
		free(cfg->python);
		if (*v != '/' || !(cfg->python = strdup(v))) {
			snprintf(err, len, "python wants an absolute path, not "
				 "'%s'", v);
			return -1;
		}
		return 0;
	}
	if (strcmp(key, "environment") == 0) {
		if (cfg->n_env == XY_EP_ENV_MAX || !strchr(v, '=') || *v == '=') {
			snprintf(err, len, "environment wants KEY=VALUE (at "
				 "most %d of them), not '%s'", XY_EP_ENV_MAX, v);
			return -1;
		}
		if (!(cfg->env[cfg->n_env] = strdup(v)))
			return -1;
		cfg->n_env++;
		return 0;
	}
	if (strcmp(key, "uid_min") == 0) {
		errno = 0;
		cfg->uid_min = strtol(v, &end, 10);
		if (errno || end == v || *end || cfg->uid_min < 1) {
			snprintf(err, len, "uid_min wants a number from 1, not"
				 " '%s'", v);
			return -1;
		}
		return 0;
	}
	for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
		if (strcmp(key, ints[i].key))
			continue;
		long n = strtol(v, &end, 10);
		if (end == v || *end || n < ints[i].lo || n > ints[i].hi) {
			snprintf(err, len, "%s wants a number from %d to %d, "
				 "not '%s'", key, ints[i].lo, ints[i].hi, v);
			return -1;
		}
		*ints[i].to = (int)n;
		return 0;
	}
	snprintf(err, len, "unknown setting '%s' (users, uid_min, idle_exit,"
		 " workers, cores_per_worker, python, environment, cert_days,"
		 " tls_keepalive,"
		 " max_queued, max_result_bytes, retention, option NAME,"
		 " pool NAME, max_workers, max_cores, user NAME)", key);
	return -1;
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' ||
			 e[-1] == '\r'))
		*--e = '\0';
	return s;
}

/* The defaults, then path's settings. Run by root, the file must be
 * root's and writable by nobody else: it says who gets a manager. */
static int config_read(const char *path, struct xy_ep_config *cfg)
{
	char line[1024], err[256];
	struct stat st;
	FILE *f;
	int n = 0, rc = 0;

	memset(cfg, 0, sizeof *cfg);
	cfg->uid_min = 1000;
	cfg->idle_exit = 300;
	cfg->workers = 1;
	cfg->cert_days = 365;
	cfg->tls_keepalive = 60;
	if (!path)
		return 0;
	if (!(f = fopen(path, "re"))) {
		fprintf(stderr, WHO ": cannot read %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	if (geteuid() == 0 && (fstat(fileno(f), &st) < 0 || st.st_uid != 0 ||
			       (st.st_mode & 022))) {
		fprintf(stderr, WHO ": %s must belong to root and be writable"
			" by root alone\n", path);
		fclose(f);
		return -1;
	}
	while (rc == 0 && fgets(line, sizeof line, f)) {
		char *s = line, *eq;
		n++;
		if ((eq = strchr(s, '#')))
			*eq = '\0';
		s = trim(s);
		if (!*s)
			continue;
		if (!(eq = strchr(s, '='))) {
			snprintf(err, sizeof err, "want KEY = VALUE");
			rc = -1;
		} else {
			*eq = '\0';
			rc = config_line(cfg, trim(s), trim(eq + 1), err,
					 sizeof err);
		}
		if (rc < 0)
			fprintf(stderr, WHO ": %s:%d: %s\n", path, n, err);
	}
	fclose(f);
	return rc;
}

/* ---------------------------------------------------------- the front */

/* A listening socket at path, for every local account (mode 0666): the
 * kernel says who connects. A socket left by an endpoint that is gone is
 * replaced; one that answers is not. */
static int listen_at(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;
	int fd;

	if (strlen(path) >= sizeof sa.sun_path) {
		fprintf(stderr, WHO ": the socket path is too long (at most "
			"%zu bytes)\n", sizeof sa.sun_path - 1);
		return -1;
	}
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
		if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
			fprintf(stderr, WHO ": another endpoint serves %s\n",
				path);
			close(fd);
			return -1;
		}
		unlink(path);
	}
	/* Made 0666 as it is bound: no chmod by path after, which a link
	 * swapped in meanwhile would redirect. */
	mode_t old = umask(0111);
	int bound = bind(fd, (struct sockaddr *)&sa, sizeof sa);
	umask(old);
	if (bound < 0 || listen(fd, 128) < 0) {
		fprintf(stderr, WHO ": cannot listen on %s: %s\n", path,
			strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/* The account the front serves as (root only): run_as, else nobody;
 * its uid in *uid. 0, or -1 (said on stderr). */
static int front_account(const char *run_as, uid_t *uid, gid_t *gid)
{
	const char *name = run_as ? run_as : "nobody";
	struct passwd *pw;

	*uid = geteuid();
	*gid = getegid();
	if (geteuid() != 0)
		return 0;
	if (!(pw = getpwnam(name))) {
		fprintf(stderr, WHO ": no account '%s' to serve as\n", name);
		return -1;
	}
	if (pw->pw_uid == 0) {
		fprintf(stderr, WHO ": --run-as must not be root\n");
		return -1;
	}
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	return 0;
}

/* Root gives itself up for good: the front serves as uid, gid. */
static int drop_root(uid_t uid, gid_t gid)
{
	if (geteuid() != 0)
		return 0;
	if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 ||
	    setresuid(uid, uid, uid) < 0 || setuid(0) == 0 ||
	    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		fprintf(stderr, WHO ": cannot become uid %ld: %s\n", (long)uid,
			strerror(errno));
		return -1;
	}
	return 0;
}

/* Clients whose request line has not come yet: at most PENDING_MAX in
 * all and PER_USER_MAX of one account, each for REQUEST_SECONDS, so that
 * one user who opens connections and sends nothing cannot keep the
 * endpoint from the others. */
#define PENDING_MAX 256
#define PER_USER_MAX 8
#define REQUEST_SECONDS 2.0

struct pending {
	int fd;
	uid_t uid;
	double deadline; /* xy_mono() */
	size_t n;
	char req[REQUEST_MAX + 1];
};

struct front {
	int lfd, spawner;
	int tls_lfd;                /* -1: no --listen */
	const struct xy_ep_tls *tls;
	struct pending clients[PENDING_MAX];
	int n;
};

static void say(int fd, const char *line)
{
	(void)send(fd, line, strlen(line), MSG_DONTWAIT | MSG_NOSIGNAL);
}

static void drop(struct front *f, int i)
{
	close(f->clients[i].fd);
	f->clients[i] = f->clients[--f->n];
}

/* Out of descriptors (EMFILE, ENFILE...) in accept: the listener,
 * still readable, is not polled for so long, rather than spun on. */
#define PAUSE_SECONDS 0.2

static int out_of_fds(void)
{
	return errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
	       errno == ENOMEM;
}

/* Takes every connection waiting, refusing a user's beyond PER_USER_MAX
 * at once: 0, or -1 when accept ran out of descriptors. */
static int take_clients(struct front *f)
{
	while (f->n < PENDING_MAX) {
		struct ucred cr;
		socklen_t cl = sizeof cr;
		int fd = accept4(f->lfd, NULL, NULL,
				 SOCK_CLOEXEC | SOCK_NONBLOCK), mine = 0;
		if (fd < 0)
			return out_of_fds() ? -1 : 0;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) < 0) {
			close(fd);
			continue;
		}
		for (int i = 0; i < f->n; i++)
			mine += f->clients[i].uid == cr.uid;
		if (mine >= PER_USER_MAX) {
			say(fd, "error too many requests at once from your "
				"account\n");
			close(fd);
			continue;
		}
		f->clients[f->n++] = (struct pending){
			.fd = fd, .uid = cr.uid,
			.deadline = xy_mono() + REQUEST_SECONDS};
	}
	return 0;
}

/* Looks at what client i sent, without taking it from the socket
 * (MSG_PEEK); once its line is whole (or cannot be), hands the
 * connection to the spawner or refuses it, and forgets it: 1, or 0 while
 * the line is not whole. "manager" and "python" are taken off the socket
 * before it goes; "enroll BASE64" stays there for the spawner to read
 * itself, from the peer the kernel names: a front taken over cannot pass
 * a request of its own with another user's connection. */
static int read_client(struct front *f, int i)
{
	struct pending *c = &f->clients[i];
	ssize_t k = recv(c->fd, c->req, REQUEST_MAX, MSG_PEEK | MSG_DONTWAIT);
	char *nl, op;
	size_t line;

	if (k < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	c->n = k > 0 ? (size_t)k : 0;
	c->req[c->n] = '\0';
	nl = memchr(c->req, '\n', c->n);
	if (k > 0 && !nl && c->n < REQUEST_MAX)
		return 0; /* not polled until then: looked at every tick */
	line = nl ? (size_t)(nl - c->req) + 1 : 0;
	op = line == 8 && memcmp(c->req, "manager\n", 8) == 0  ? XY_EP_OP_MANAGER
	     : line == 7 && memcmp(c->req, "python\n", 7) == 0 ? XY_EP_OP_PYTHON
	     : line > 7 && memcmp(c->req, "enroll ", 7) == 0    ? XY_EP_OP_ENROLL
								   : 0;
	if (op == XY_EP_OP_MANAGER || op == XY_EP_OP_PYTHON) {
		if (read(c->fd, c->req, line) != (ssize_t)line)
			op = 0; /* cannot be: the line was there */
	}
	if (op) {
		if (xy_cli_spawn_pass(f->spawner, op, c->fd) < 0) {
			if (errno == EAGAIN)
				say(c->fd, "error the endpoint is busy: ask "
					   "again\n");
			else
				fprintf(stderr, WHO ": the spawner is gone: "
					"%s\n", strerror(errno));
		}
	} else if (c->n) {
		say(c->fd, "error unknown request (want 'manager', 'python' "
			   "or 'enroll')\n");
	}
	drop(f, i);
	return 1;
}

static int serve(int lfd, int spawner, int tls_lfd,
		 const struct xy_ep_tls *tls)
{
	static struct front f; /* a daemon's own state (STYLE.md) */
	static struct pollfd p[PENDING_MAX + 3];
	double unix_pause = 0, tls_pause = 0;

	f.lfd = lfd;
	f.spawner = spawner;
	f.tls_lfd = tls_lfd;
	f.tls = tls;
	fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) | O_NONBLOCK);
	while (!xy_local_stops()) {
		double t0 = xy_mono();
		p[0] = (struct pollfd){
			.fd = f.n < PENDING_MAX && t0 >= unix_pause ? lfd : -1,
			.events = POLLIN};
		p[1] = (struct pollfd){.fd = spawner, .events = POLLIN};
		/* A client whose line has begun is not polled (what it
		 * sent stays in its socket, readable): looked at each tick. */
		for (int i = 0; i < f.n; i++)
			p[i + 2] = (struct pollfd){
				.fd = f.clients[i].n ? -1 : f.clients[i].fd,
				.events = POLLIN};
		int n = f.n;
		/* Remote users' connections: a thread each (ep_tls.c). */
		p[n + 2] = (struct pollfd){
			.fd = t0 >= tls_pause ? tls_lfd : -1, .events = POLLIN};
		if (poll(p, (nfds_t)n + 3, 100) < 0 && errno != EINTR)
			return -1;
		if (p[1].revents) {
			fprintf(stderr, WHO ": the spawner exited\n");
			return -1;
		}
		double now = xy_mono();
		/* From the end, so that drop() moves only served slots. */
		for (int i = n - 1; i >= 0; i--) {
			if ((p[i + 2].revents || f.clients[i].n) &&
			    read_client(&f, i))
				continue;
			if (now > f.clients[i].deadline) {
				say(f.clients[i].fd, "error no request within"
				    " 2 s\n");
				drop(&f, i);
			}
		}
		if ((p[0].revents & POLLIN) && take_clients(&f) < 0)
			unix_pause = xy_mono() + PAUSE_SECONDS;
		if ((p[n + 2].revents & POLLIN) &&
		    xy_ep_tls_accept(tls, tls_lfd) < 0)
			tls_pause = xy_mono() + PAUSE_SECONDS;
		if (tls_lfd >= 0)
			xy_ep_tls_watch(tls); /* revoked: open ones are cut */
	}
	for (int i = f.n - 1; i >= 0; i--)
		drop(&f, i);
	return 0;
}

/* --listen: the TLS listener and its context, made while root (a port
 * below 1024; the CA's directory), before the front drops it. 0, or -1
 * (said on stderr). */
static int listen_tls(const struct ep_opts *o, struct xy_ep_tls *t,
		      int *fd, char *addr, size_t addrlen)
{
	char host[256], err[512];
	int port;

	*fd = -1;
	if (!o->listen)
		return 0;
	if ((*fd = xy_ep_tls_listen(o->listen, host, sizeof host, &port, err,
				    sizeof err)) < 0 ||
	    !(t->ctx = xy_ep_ca_listener_ctx(t->state, host, err,
					     sizeof err))) {
		fprintf(stderr, WHO ": %s\n", err);
		return -1;
	}
	snprintf(addr, addrlen, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host,
		 port);
	fprintf(stderr, WHO ": listening on %s:%d (TLS 1.3, a client "
		"certificate of %s/tls/ca.crt required)\n", host, port,
		t->state);
	return 0;
}

static int run_endpoint(const struct ep_opts *o)
{
	static struct xy_ep_config cfg;
	static char state[4200], listen_s[300];
	static struct xy_ep_tls tls;
	char exe[PATH_MAX], err[512];
	int sp[2], lfd, rc, tls_lfd = -1;
	uid_t uid;
	gid_t gid;
	pid_t pid;

	if (config_read(o->config, &cfg) < 0 ||
	    front_account(o->run_as, &uid, &gid) < 0)
		return XY_EXIT_FAIL;
	xy_cli_spawn_close_from(3, -1); /* nothing inherited reaches a user */
	if (!realpath("/proc/self/exe", exe)) {
		fprintf(stderr, WHO ": cannot find this program: %s\n",
			strerror(errno));
		return XY_EXIT_FAIL;
	}
	if (o->state)
		snprintf(state, sizeof state, "%s", o->state);
	else
		xy_ep_ca_default_state(state, sizeof state);
	cfg.state = tls.state = state;
	tls.keepalive = cfg.tls_keepalive;
	if (o->listen) {
		/* The CA is made (or read) once, here, as root. */
		if (xy_ep_ca_init(state, err, sizeof err) < 0) {
			fprintf(stderr, WHO ": %s\n", err);
			return XY_EXIT_FAIL;
		}
		/* Before the spawner: it tells enrolling users the address
		 * with the port the listener got. */
		if (listen_tls(o, &tls, &tls_lfd, listen_s,
			       sizeof listen_s) < 0)
			return XY_EXIT_FAIL;
		cfg.listen = listen_s;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		return XY_EXIT_FAIL;
	if ((pid = fork()) < 0)
		return XY_EXIT_FAIL;
	if (pid == 0) {
		close(sp[0]);
		signal(SIGINT, SIG_IGN); /* the front stops it, by closing */
		_exit(xy_cli_spawn_serve(sp[1], &cfg, exe, o->socket, uid));
	}
	close(sp[1]);
	fcntl(sp[0], F_SETFL, O_NONBLOCK); /* a spawner behind: "busy" */
	xy_local_catch_signals();
	rc = XY_EXIT_FAIL;
	tls.spawner = sp[0];
	if ((lfd = listen_at(o->socket)) >= 0 &&
	    drop_root(uid, gid) == 0) {
		fprintf(stderr, WHO ": serving %s (as uid %ld; users' "
			"managers run as themselves)\n", o->socket,
			(long)getuid());
		rc = serve(lfd, sp[0], tls_lfd, &tls) == 0 ? XY_EXIT_OK
							    : XY_EXIT_FAIL;
		/* The spawner removes the socket when we close our end. */
	}
	if (lfd >= 0)
		close(lfd);
	if (tls_lfd >= 0)
		close(tls_lfd);
	SSL_CTX_free(tls.ctx);
	close(sp[0]);
	waitpid(pid, NULL, 0);
	return rc;
}

/* ------------------------------------------------------------ connect */

/* The endpoint's answer to "manager": 0 with the state directory in dir
 * and *fresh set if the manager was started for this request, or -1
 * (said on stderr). */
static int ask(const struct ep_opts *o, char *dir, size_t len, int *fresh)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = o->wait};
	char line[4400];
	size_t n = 0;
	ssize_t k;
	int fd;

	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", o->socket);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		fprintf(stderr, WHO ": cannot reach the endpoint at %s: %s\n",
			o->socket, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	if (xy_write_all(fd, "manager\n", 8) < 0) {
		fprintf(stderr, WHO ": the endpoint at %s closed: %s\n",
			o->socket, strerror(errno));
		close(fd);
		return -1;
	}
	while (n < sizeof line - 1 && !memchr(line, '\n', n) &&
	       (k = read(fd, line + n, sizeof line - 1 - n)) > 0)
		n += (size_t)k;
	close(fd);
	line[n] = '\0';
	line[strcspn(line, "\n")] = '\0';
	/* ok started|running USER DIR */
	if (strncmp(line, "ok ", 3) == 0) {
		char *w = line + 3, *sp = strchr(w, ' ');
		*fresh = strncmp(w, "started ", 8) == 0;
		if (sp)
			sp = strchr(sp + 1, ' ');
		if (sp && (size_t)snprintf(dir, len, "%s", sp + 1) < len)
			return 0;
	}
	if (strncmp(line, "error ", 6) == 0)
		fprintf(stderr, WHO ": refused: %s\n", line + 6);
	else
		fprintf(stderr, WHO ": no answer from the endpoint at %s%s\n",
			o->socket, n ? " (a garbled one)" : "");
	return -1;
}

/* The port a manager on journal saved at or after since (wall clock, a
 * started one), or any (one that runs): 0 while there is none. */
static int saved_port(const char *journal, double since)
{
	char path[4300];
	struct stat st;

	snprintf(path, sizeof path, "%s/port", journal);
	if (stat(path, &st) < 0 ||
	    st.st_mtim.tv_sec + st.st_mtim.tv_nsec / 1e9 < since)
		return 0;
	return xy_local_journal_port(journal);
}

/* Is dir this user's own ~/.xylem/endpoint, theirs and 0700? The
 * answer came through the front: trusted only if it names what this
 * process would find by itself. */
static int own_dir(const char *dir)
{
	struct passwd *pw = getpwuid(getuid());
	char want[4200];
	struct stat st;

	if (!pw) {
		fprintf(stderr, WHO ": uid %ld has no account here\n",
			(long)getuid());
		return -1;
	}
	snprintf(want, sizeof want, "%s/.xylem/endpoint", pw->pw_dir);
	if (strcmp(dir, want) || lstat(dir, &st) < 0 ||
	    !S_ISDIR(st.st_mode) || st.st_uid != getuid() ||
	    (st.st_mode & 077)) {
		fprintf(stderr, WHO ": the endpoint named %s, not your own "
			"%s (yours, mode 0700): not trusted\n", dir, want);
		return -1;
	}
	return 0;
}

static int run_connect(const struct ep_opts *o)
{
	char dir[4096], journal[4200];
	double until = xy_mono() + o->wait, again = 0, asked = 0;
	int port = 0, fresh = 0;

	do {
		/* Asked again when a "running" manager shows no port for a
		 * second: it went idle just as the endpoint answered. */
		if (xy_mono() >= again) {
			asked = xy_now() - 0.1; /* a file time lags a little */
			if (ask(o, dir, sizeof dir, &fresh) < 0 ||
			    own_dir(dir) < 0)
				return XY_EXIT_FAIL;
			snprintf(journal, sizeof journal, "%s/journal", dir);
			again = fresh ? until : xy_mono() + 1;
		}
		if ((port = saved_port(journal, fresh ? asked : 0)))
			break;
		usleep(20000);
	} while (xy_mono() < until);
	if (!port) {
		fprintf(stderr, WHO ": your manager did not listen within %d s;"
			" its log: %s/manager.log\n", o->wait, dir);
		return XY_EXIT_FAIL;
	}
	printf("XYLEM_MANAGER=127.0.0.1:%d\nXYLEM_SECRET_FILE=%s/secret\n"
	       "XYLEM_TLS_CA=%s/tls/ca.crt\n", port, journal, journal);
	return XY_EXIT_OK;
}

int xy_cli_endpoint(int argc, char **argv)
{
	struct ep_opts o = {0};
	int connect = argc > 1 && strcmp(argv[1], "connect") == 0;
	int rc;

	if (argc > 1 && strcmp(argv[1], "enroll") == 0)
		return xy_cli_endpoint_enroll(argc - 1, argv + 1);
	if (argc > 1 && strcmp(argv[1], "revoke") == 0)
		return xy_cli_endpoint_revoke(argc - 1, argv + 1);
	if ((rc = parse_args(argc - connect, argv + connect, &o)) >= 0)
		return rc;
	return connect ? run_connect(&o) : run_endpoint(&o);
}
