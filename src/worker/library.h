/*
 * library.h: the worker's library instances. A LIBRARY message defines a
 * template under a name (the command that starts one instance, its env,
 * its inputs, its resources); a call (a TASK naming that library) is
 * handed to an idle instance of it, or to a new one started from the
 * template: `/bin/sh -c COMMAND` in sandbox/lib-<n>/, speaking frames on
 * its descriptor 3 (docs/protocol.md, "Library instances"). Instances stay
 * for later calls. Pairs with tasks.c, which takes a call through its
 * inputs and sandbox and hands it over here, with exec.c, which runs the
 * instance's process, and with cache.c, which holds the inputs linked in.
 */
#ifndef XY_LIBRARY_H
#define XY_LIBRARY_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cache.h"
#include "exec.h"
#include "proto.h"

struct xy_libs;
struct xy_lib_call;
struct xy_taskusers;

/* How a call ended. output is NUL-terminated and owned by the callback:
 * the reply on SUCCESS, else the tail of the instance's log. */
struct xy_lib_result {
	int result;        /* xy_result */
	int failure;       /* xy_failure: set when an instance ended */
	int32_t exit_code; /* 0, or the instance's exit status */
	char *output;
	size_t output_len;
	int truncated;
	const char *message; /* "" on success */
};

/* Called once per call that xy_libs_call took, when the call is over and
 * no instance works in its sandbox any more (never from inside a
 * function of this module called by the owner of the call). */
typedef void (*xy_lib_done_fn)(struct xy_lib_call *c,
			       struct xy_lib_result *r);

/* One call, owned by the caller (tasks.c embeds it in its task). The
 * strings and the payload must stay valid until the callback has run or
 * the call has been cancelled at once or detached. */
struct xy_lib_call {
	uint64_t task_id;
	const char *library;
	const char *sandbox; /* absolute; the call's own sandbox */
	const char *payload;
	size_t payload_len;
	uint64_t memory_mb;     /* 0: the template's */
	uint64_t time_limit_ms; /* 0: none; counted from the call's send */
	xy_lib_done_fn on_done;
	void *arg;
	/* private to library.c */
	struct lib_inst *inst;
	struct xy_lib_call *prev, *next; /* waiting for an instance */
	int cancelled;
};

struct xy_libs_opts {
	uv_loop_t *loop;
	struct xy_cache *cache;
	struct xy_exec *exec;
	/* --log-dir: each instance's output is also kept in a file there
	 * (logdir.h); NULL: only its tail, in memory. */
	const char *log_dir;
	/* --task-users (taskusers.h), or NULL: instances run as the worker.
	 * Else each instance claims an account as it starts and holds it
	 * until it ends; its sandbox and that of each call it serves are the
	 * account's, 0700 (docs/security.md). */
	struct xy_taskusers *users;
};

/* Returns NULL on ENOMEM. The parts in opts must outlive the result. */
struct xy_libs *xy_libs_create(const struct xy_libs_opts *opts);
/* Kills and gives up every instance, removes their sandboxes and lets go
 * of their inputs; the table is freed once the instances' handles are
 * closed (the loop must run for that). Detach every call first.
 * destroy(NULL) does nothing. */
void xy_libs_destroy(struct xy_libs *L);

/* Takes a LIBRARY: m's pointer fields are stolen (m is zeroed). A name
 * defined before gets the new template for instances started afterwards;
 * idle instances of the old one are stopped, busy ones once their call
 * ends. Returns -1 with errno and a reason in err (EINVAL: no name or no
 * command; m is left untouched then). */
int xy_libs_define(struct xy_libs *L, struct xy_msg_task *m, char *err,
		   size_t errlen);
/* True if a library of this name is defined. */
int xy_libs_defined(const struct xy_libs *L, const char *name);

/* Hands a call to an idle instance of its library, or to a new instance.
 * Returns -1 if taken (the callback will run), or else the result to end
 * the call with, with a reason in err: APP_FAILED for an unknown library
 * or a template input that clashes, INPUT_MISSING for a template input
 * not cached, WORKER_FAILED otherwise. */
int xy_libs_call(struct xy_libs *L, struct xy_lib_call *c, char *err,
		 size_t errlen);

/* Gives a call up. Returns 0 if it was still waiting for an instance: it
 * is gone now and its callback will not run. Returns 1 if an instance was
 * serving it: that instance is killed (it may be stuck in the call) and
 * the callback runs, with CANCELLED, once it has exited. */
int xy_libs_cancel(struct xy_libs *L, struct xy_lib_call *c);
/* Forgets a call at once, whatever its state, without its callback; its
 * instance, if any, is killed and no longer touches the call's memory. For
 * shutting down. */
void xy_libs_detach(struct xy_libs *L, struct xy_lib_call *c);

/* Stopping: kills every instance; starts no more. Calls being served end
 * with CANCELLED once their instance has exited. */
void xy_libs_stop(struct xy_libs *L);

/* Instances alive or not yet freed, for tests and status. */
size_t xy_libs_instances(const struct xy_libs *L);

#endif
