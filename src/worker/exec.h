/*
 * exec.h: sandboxes and the processes that run in them. A sandbox is a
 * directory per task into which the task's inputs are linked under their
 * sandbox names; a process is `/bin/sh -c COMMAND` started in it with
 * posix_spawn, in a process group of its own, its stdout and stderr captured
 * into one ring that keeps the last XY_MAX_OUTPUT bytes (or fewer, as
 * asked), optionally with one more descriptor as its fd 3. A monitor (one
 * timer for all processes) samples each group's resident memory, the
 * sandbox's disk use and the elapsed time, and kills a group that passes
 * its limit. Pairs with tasks.c, which drives a task through these steps,
 * and cache.c, which holds the objects linked in.
 */
#ifndef XY_EXEC_H
#define XY_EXEC_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "proto.h"

/* ------------------------------------------------------------ sandboxes */

/* Links the object at src into the sandbox directory under name: a hard
 * link for a file (a symbolic link if src is on another file system or
 * cannot be hard-linked), a symbolic link for a directory. Parent
 * directories of "a/b" are made, but never through an existing symbolic
 * link or non-directory, so a name cannot reach outside the sandbox.
 * Returns 0, or -1 with errno and a reason in err: EINVAL for a name that
 * xy_check_sandbox_name refuses, ENOTDIR when a parent is not a plain
 * directory, EEXIST when the name is taken. */
int xy_sandbox_link(const char *sandbox, const char *name, const char *src,
		    uint8_t kind, char *err, size_t errlen);

/* Finds a task's output in its sandbox and writes the path of the object
 * to take into path. No parent of the name may be a symbolic link. If the
 * name itself is a symbolic link, its target is taken when it lies inside
 * the sandbox; a file outside is copied into the sandbox first; a directory
 * outside is refused. Returns 0; -1 with errno ENOENT if it does not exist;
 * -1 with another errno and a reason in err if it cannot be taken. Blocking:
 * call it from a thread. */
int xy_sandbox_output(const char *sandbox, const char *name, char *path,
		      size_t pathlen, char *err, size_t errlen);

/* ---------------------------------------------------------- environment */

/* An environment under construction: a NULL-terminated array of "K=V"
 * strings, some borrowed (the worker's own environment), some owned. */
struct xy_env {
	char **v;
	size_t n, cap;
	char **own;
	size_t n_own, cap_own;
};

/* Starts from the strings of base (borrowed, not copied; they must outlive
 * env), leaving out the names listed in drop (NULL-terminated, may be
 * NULL). Returns -1 on ENOMEM. */
int xy_env_init(struct xy_env *env, char *const *base,
		const char *const *drop);
/* Sets name=value, replacing any earlier value. Returns -1 on ENOMEM. */
int xy_env_set(struct xy_env *env, const char *name, const char *value);
void xy_env_free(struct xy_env *env);

/* ------------------------------------------------------------ processes */

struct xy_exec;
struct xy_proc;

enum xy_proc_end {
	XY_PROC_EXITED = 0,   /* exited; exit_code is its status */
	XY_PROC_SIGNALED = 1, /* killed by a signal we did not send */
	XY_PROC_KILLED = 2,   /* killed by xy_proc_kill */
	XY_PROC_LIMIT = 3,    /* killed past a limit; message says which */
	/* Killed by a SIGTERM we did not send, or exited with status 143
	 * (128 + SIGTERM: a shell, or a wrapper such as a pyenv shim, whose
	 * child it killed): what a batch system sends every process of a
	 * job it ends (scancel, a walltime, a preemption), the worker
	 * included, which may not have handled its own yet. The worker's
	 * loss, not the process's fault. */
	XY_PROC_TERMINATED = 4
};

/* How a task or call ended by XY_PROC_TERMINATED is described. */
#define XY_PROC_TERMINATED_TEXT                                             \
	"ended by SIGTERM from outside the worker (a batch system ending its " \
	"job?)"

struct xy_proc_result {
	int end;       /* xy_proc_end */
	int exit_code; /* the status, or 128 + signal */
	int signal;    /* the signal that ended it, or 0 */
	char *output;  /* captured output, NUL-terminated; the callee owns it */
	size_t output_len;
	int truncated; /* earlier output was dropped */
	char message[160]; /* for LIMIT: "memory 312 MB over the 50 MB limit" */
};

/* Called once, when the process has exited and its output is read to the
 * end (or a grace period after its exit ran out). The callback owns
 * r->output and must call xy_proc_release, now or later. */
typedef void (*xy_proc_done_cb)(struct xy_proc *p, struct xy_proc_result *r,
				void *arg);

struct xy_proc_opts {
	const char *command;
	const char *cwd;     /* the sandbox; absolute */
	char **env;          /* NULL-terminated; copied by libuv at spawn */
	uint64_t memory_mb;  /* 0: not limited */
	uint64_t disk_mb;    /* 0: not limited; measured under cwd */
	uint64_t time_limit_ms; /* 0: none */
	size_t log_max;      /* output bytes kept; 0: XY_MAX_OUTPUT */
	int log_fd;          /* > 0: its output is also appended here
			      * (--log-dir); the process takes it */
	int fd3;             /* with give_fd3: the child's descriptor 3 */
	int give_fd3;
	xy_proc_done_cb on_done;
	void *arg;
};

/* The process runner of one loop: the monitor timer and the list of live
 * processes. Returns NULL on ENOMEM. */
struct xy_exec *xy_exec_create(uv_loop_t *loop);
/* Closes the monitor; the runner is freed once every process has been
 * released and closed (the loop must run for that). Every process must be
 * released before or after this call. destroy(NULL) does nothing. */
void xy_exec_destroy(struct xy_exec *x);
/* Processes spawned and not yet released. */
size_t xy_exec_live(const struct xy_exec *x);

/* Starts o->command. Returns NULL with errno and a reason in err if it
 * could not be started (the callback never runs then). */
struct xy_proc *xy_proc_spawn(struct xy_exec *x, const struct xy_proc_opts *o,
			      char *err, size_t errlen);
/* The process id, which is also its process group id. */
int xy_proc_pid(const struct xy_proc *p);
/* Changes the memory and time limits of a process that has not ended; 0
 * lifts a limit. The time limit counts from this call. (A library
 * instance takes each call's limits while it serves the call.) */
void xy_proc_set_limits(struct xy_proc *p, uint64_t memory_mb,
			uint64_t time_limit_ms);
/* Sends SIGKILL to the process group. The callback still runs, with end
 * KILLED unless the process had already ended. */
void xy_proc_kill(struct xy_proc *p);
/* Gives the process up: its handles are closed and it is freed in a later
 * loop phase. Before the callback has run, the callback is cancelled and
 * the group killed. */
void xy_proc_release(struct xy_proc *p);

/* Removes a sandbox tree on libuv's thread pool, so a large one never
 * stalls the loop (at once if that cannot be queued). Takes path, which
 * must be malloc'd. */
void xy_sandbox_remove_async(uv_loop_t *loop, char *path);

#endif
