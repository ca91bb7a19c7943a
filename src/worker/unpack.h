/*
 * unpack.h: the worker's archive expansions and software environments.
 * A task input of kind UNPACK or ENV (proto.h) names an archive object;
 * the task sees the archive expanded, as a directory, under the input's
 * sandbox name. The expansion is made once per worker, from the cached
 * archive, into <cache>/unpacked/<archive id> (cache.h), by `tar` (or
 * `unzip`) run on libuv's thread pool, never on the loop; tasks that need
 * it while it is being made wait for that one expansion. It is made under
 * tmp/ and renamed into place only when complete, so no task ever sees a
 * half-expanded directory, and it goes when the cache drops the archive.
 * An ENV input is also activated: see xy_unpack_activate.
 * Pairs with tasks.c and library.c, which link expansions into sandboxes,
 * and with cache.c, which holds the archives.
 */
#ifndef XY_UNPACK_H
#define XY_UNPACK_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cache.h"
#include "exec.h"
#include "proto.h"

struct xy_unpacker;

/* How an expansion ended, or why it cannot be had. */
enum xy_unpack_end {
	XY_UNPACK_DONE = 1,
	/* The archive itself: tar or unzip exited with a non-zero status,
	 * or the object is a directory. It is content-addressed and would
	 * fail again, so this is remembered for the worker's life, and the
	 * tasks that need it fail with INPUT_MISSING. */
	XY_UNPACK_BAD = -1,
	/* This worker, this time: a directory it could not make or rename
	 * (a full disk), the tool killed by a signal (out of memory) or not
	 * started, the thread pool refusing the job. Forgotten at once: the
	 * next task that needs it tries again, and the tasks that needed
	 * it fail with WORKER_FAILED, which the manager retries elsewhere. */
	XY_UNPACK_FAULT = -2,
};

/* An expansion ended (end: an xy_unpack_end), with text saying why it
 * failed. Runs on the loop; text is valid during the call only. */
typedef void (*xy_unpack_done_fn)(void *arg, const uint8_t id[XY_ID_LEN],
				  int end, const char *text);

/* Returns NULL on ENOMEM. loop and cache must outlive the unpacker. */
struct xy_unpacker *xy_unpacker_create(uv_loop_t *loop,
				       struct xy_cache *cache,
				       xy_unpack_done_fn cb, void *arg);
/* Frees the unpacker; call it once the loop has run dry (no expansion in
 * flight). destroy(NULL) does nothing. */
void xy_unpacker_destroy(struct xy_unpacker *u);
/* Stops calling back (the worker is stopping); expansions in flight
 * finish on their own. */
void xy_unpacker_quiet(struct xy_unpacker *u);

/* Asks for the expansion of cached archive id. Returns 1 if it exists,
 * 0 if it is being made (the callback follows), XY_UNPACK_BAD if it
 * cannot be made (an earlier expansion of it failed so, or it is a
 * directory), or XY_UNPACK_FAULT if it cannot be made now (the archive is
 * not cached, or the expansion could not be started). *text says why,
 * valid until the next call. */
int xy_unpacker_need(struct xy_unpacker *u, const uint8_t id[XY_ID_LEN],
		     const char **text);

/* Where a task input lives on this worker: the cached object, or for an
 * UNPACK or ENV input its archive's expansion (a directory). Returns 0
 * with the path and kind, or -1 (ENOENT) if it is not there. */
int xy_unpack_input_path(struct xy_cache *c, const struct xy_task_input *in,
			 char *path, size_t len, uint8_t *kind);

/*
 * Activates the first ENV input of a task (if any) in env, for a process
 * that runs in sandbox: ROOT is sandbox/NAME, the input's mount; sets
 * VIRTUAL_ENV and XYLEM_ENVIRONMENT to ROOT and puts ROOT/bin first on
 * PATH. bin/activate is not sourced (a packed venv's holds the path it
 * was made at). If ROOT/xylem-env.sh exists, *command becomes a new
 * malloc'd command that sources it first and fails if it fails; otherwise
 * *command is set to NULL. Returns 0, or -1 on ENOMEM.
 */
int xy_unpack_activate(struct xy_env *env, const char *sandbox,
		       const struct xy_task_input *in, uint32_t n,
		       const char *command, char **wrapped);

#endif
