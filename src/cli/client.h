/*
 * client.h: a client of a standing manager (`xylem manager`, or any
 * manager): it connects to the control port with role CLIENT, submits
 * command tasks whose inputs are files and directories on this machine,
 * waits for their RESULTs and fetches their outputs
 * (docs/architecture.md, "Clients"; docs/protocol.md). No filesystem is
 * shared: the client runs a transfer server of its own from which the
 * manager fetches the inputs it lacks, and gets outputs from the
 * manager's transfer server. `xylem cwl --manager` is built on it.
 *
 * Everything is blocking, on a private libuv loop that runs only inside
 * these calls; use one client from one thread. Errors: -1 or NULL, errno,
 * and a reason in err.
 */
#ifndef XY_CLI_CLIENT_H
#define XY_CLI_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

struct xy_client;

/* An input mounted at name: the local file or directory at path; or
 * (path NULL) the temp of this client's named temp (an output of an
 * earlier task of its session or connection, left on the workers), or
 * the URL url, which a worker fetches. With unpack, the task sees the
 * archive's expansion, a directory. */
struct xy_client_input {
	const char *path;
	const char *name;
	const char *temp;
	const char *url;
	int unpack;
};

/* A command task, as SUBMIT carries it. */
struct xy_client_task {
	const char *command;
	const char *tag; /* NULL: none */
	int cores;       /* 0: 1 */
	int64_t memory_mb, disk_mb; /* 0: not limited */
	int gpus;
	double time_limit; /* seconds; 0: none */
	const struct xy_env_var *env;
	uint32_t n_env;
	const struct xy_client_input *inputs;
	uint32_t n_inputs;
	const char *const *outputs; /* sandbox names brought back */
	uint32_t n_outputs;
	/* NULL, or n_outputs names: where one is not NULL, that output is
	 * not brought back but left on its worker as this client's temp of
	 * that name (a name written again names the new one). */
	const char *const *output_temps;
};

/* Connects to the manager at host:port and proves the secret (copied),
 * within timeout seconds; starts the client's transfer server. Returns
 * NULL with a reason in err: EACCES if the manager refused the secret.
 * tls verifies the manager (xy_tls_client_ctx; NULL: plain TCP); not
 * owned, it must outlive the client. */
struct ssl_ctx_st;
struct xy_client *xy_client_connect(const char *host, int port,
				    const void *secret, size_t secret_len,
				    struct ssl_ctx_st *tls, double timeout,
				    char *err, size_t errlen);

/* Hashes t's inputs (their content names them), offers them on the
 * transfer server, and sends SUBMIT. Returns the task's id (> 0), or 0
 * with a reason in err. */
uint64_t xy_client_submit(struct xy_client *c, const struct xy_client_task *t,
			  char *err, size_t errlen);

/* Sessions (docs/durability.md, "Clients"): names this connection's
 * session (a random id the program keeps across connections) and the
 * last RESULT seq of it that the program saw; a manager with a journal
 * then sends every RESULT of the session after it, and those of its tasks
 * still to end, here. 0, or -1 with a reason in err. */
int xy_client_attach(struct xy_client *c, const uint8_t session[XY_ID_LEN],
		     uint64_t after, char *err, size_t errlen);
/* As xy_client_submit, with the program's id for the task (0: the next)
 * and its idempotency key in the session (NULL: none): the same key
 * submitted again, on this connection or a later one, even to a manager
 * started again on its journal, is the same task, never a second run. A
 * program may get the RESULT of a key twice (sent again after ATTACH and
 * answering the SUBMIT again): it takes the first. */
uint64_t xy_client_submit_keyed(struct xy_client *c,
				const struct xy_client_task *t, uint64_t id,
				const uint8_t *key, char *err, size_t errlen);

/* Tells the manager that the client names these temps no more, so that
 * workers may delete them once no task needs them. A client without a
 * session's temps go when it closes; a session's stay until dropped.
 * 0, or -1 with a reason in err. */
int xy_client_drop(struct xy_client *c, const char *const *temps, uint32_t n,
		   char *err, size_t errlen);

/* Waits up to timeout seconds (negative: no limit) for the RESULT of any
 * submitted task, into *out, which the caller frees with
 * xy_client_result_free. Returns 0, or -1: ETIMEDOUT, or ECONNRESET if
 * the connection closed (reason in err). */
int xy_client_wait(struct xy_client *c, double timeout,
		   struct xy_msg_result *out, char *err, size_t errlen);
void xy_client_result_free(struct xy_msg_result *r);

/* 1 while the control connection is open (what the manager has sent
 * so far is read, without waiting), 0 once it closed: a failed fetch
 * from a manager that is gone says so. */
int xy_client_connected(struct xy_client *c);

/* Fetches output i of result r from the manager into dest (which must not
 * exist), verifying its content. Returns 0, or -1 with a reason in err. */
int xy_client_fetch(struct xy_client *c, const struct xy_msg_result *r,
		    uint32_t i, const char *dest, char *err, size_t errlen);

/* Closes the connection (the manager cancels tasks not yet answered),
 * stops the transfer server, frees c. close(NULL) does nothing. */
void xy_client_close(struct xy_client *c);

#endif
