/*
 * spawn.h: the endpoint's privileged half (spawn.c). `xylem endpoint`
 * (endpoint.c) forks it before it drops root; from then on the two speak
 * only over a socketpair, and the front hands it each client's connection.
 * The spawner asks the kernel who is on the other end (SO_PEERCRED),
 * checks the configuration, and starts that user's own manager under the
 * user's account (docs/endpoint.md).
 */
#ifndef XY_CLI_SPAWN_H
#define XY_CLI_SPAWN_H

#include <sys/types.h>

#define XY_EP_USERS_MAX 64
#define XY_EP_NAME_MAX 32
#define XY_EP_ENV_MAX 16
#define XY_EP_SESSION_ARGS_MAX 64

/* The administrator's configuration (endpoint.c reads it). */
struct xy_ep_config {
	char users[XY_EP_USERS_MAX][XY_EP_NAME_MAX]; /* none: any account */
	int n_users;
	long uid_min;  /* accounts below it are refused (default 1000) */
	int idle_exit; /* a user's manager exits after so many idle seconds */
	int workers;   /* local workers each user's manager starts */
	int cores_per_worker; /* 0: the manager's default */
	char *python; /* the interpreter of session servers; NULL: none */
	char *env[XY_EP_ENV_MAX]; /* KEY=VALUE for users' managers */
	int n_env;
	int cert_days;       /* client certificates' validity (default 365) */
	int tls_keepalive;   /* seconds a TLS client may be silent before
				keepalive probes (default 60) */
	const char *state;   /* the state directory: the CA (ep_ca.h) */
	const char *listen;  /* --listen HOST:PORT, or NULL */
	/* Limits on users' Python sessions (endpoint_limits.c): arguments
	 * of each session server, "--limit" or "--option" then KEY=VALUE. */
	char *session_args[XY_EP_SESSION_ARGS_MAX];
	int n_session_args;
	/* The most workers and cores of a user's manager, and of a user's
	 * session server with the pools it was granted (endpoint_limits.c):
	 * every user's (max_workers, max_cores; 0: none), and the users'
	 * own (`user NAME = ...` lines), which take their place. */
	int max_workers, max_cores;
	struct xy_ep_caps {
		char name[XY_EP_NAME_MAX];
		int max_workers, max_cores; /* 0: the global one */
	} caps[XY_EP_USERS_MAX];
	int n_caps;
};

/* A user's manager or session server, sized within the user's caps:
 * its local workers and each one's cores (0: the manager's default),
 * and the caps themselves (0: none), for the session server's check of
 * the pools it is asked for. */
struct xy_ep_size {
	int workers, cores;
	int max_workers, max_cores;
	int capped; /* workers or cores were cut to fit */
};

/* The size of name's manager (python 0) or session server (python 1:
 * its workers' default is 1 core) under cfg. */
void xy_cli_ep_limits_size(const struct xy_ep_config *cfg, const char *name,
			   int python, struct xy_ep_size *sz);

/* One limits setting (max_queued, max_result_bytes, retention, option
 * NAME, pool NAME, max_workers, max_cores, user NAME) into cfg: 1, or 0 if key is none of them, or -1 with why in
 * err. */
int xy_cli_ep_limits_line(struct xy_ep_config *cfg, const char *key,
			  const char *v, char *err, size_t len);

/* The requests the front passes on, with the client's socket: a user's
 * `xylem manager`, or a user's Python session server. */
#define XY_EP_OP_MANAGER 'M'
#define XY_EP_OP_PYTHON 'P'
/* A remote user's request (ep_tls.c): the data is the kind ('P') and the
 * client's certificate (DER), which the spawner checks itself; the
 * descriptor is the front's end of a socketpair for the answers, and for
 * the connection to the user's session server. */
#define XY_EP_OP_TLS 'T'
/* `xylem endpoint enroll`: no data; the descriptor is the client's
 * connection, whose peer the kernel names, with its request line
 * ("enroll BASE64\n", at most XY_EP_ENROLL_MAX bytes) still unread: the
 * spawner reads the request from it, so that a front cannot pair its own
 * request with another user's connection. */
#define XY_EP_OP_ENROLL 'E'
#define XY_EP_ENROLL_MAX 2048
/* The most data one request carries. */
#define XY_EP_DATA_MAX 16384

/* Serves requests from sock (the front's end of the socketpair) until the
 * front closes it, then removes the endpoint's socket; exe is this
 * program's path, run as each user's manager; only connections accepted
 * on sock_path are served, and never the front's account `front`.
 * Returns the process's exit status. */
int xy_cli_spawn_serve(int sock, const struct xy_ep_config *cfg,
		       const char *exe, const char *sock_path, uid_t front);

/* Passes client, with op, to the spawner over sock without waiting: 0,
 * or -1 with errno (EAGAIN: the spawner is behind). */
int xy_cli_spawn_pass(int sock, char op, int client);
/* The same with data (at most XY_EP_DATA_MAX bytes) after op. */
int xy_cli_spawn_pass_data(int sock, char op, const void *data, size_t n,
			   int client);

/* Closes every descriptor from lo up, but keep (-1: none). */
void xy_cli_spawn_close_from(int lo, int keep);

#endif
