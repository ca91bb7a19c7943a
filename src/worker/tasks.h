/*
 * tasks.h: the worker's tasks, from TASK to TASK_DONE. A task waits until
 * each of its inputs is in the cache, is started in a sandbox of its own
 * (exec.h), and when its process ends has its outputs hashed (on libuv's
 * thread pool) and adopted into the cache before its TASK_DONE goes out.
 * A call (a TASK naming a library) takes the same path, but instead of a
 * process of its own it is handed to an instance of its library
 * (library.h), and its reply is its output.
 * Pairs with worker.c, which feeds it messages and fetch completions and
 * sends what it reports, and with cache.c, fetch.c and exec.c.
 */
#ifndef XY_TASKS_H
#define XY_TASKS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cache.h"
#include "exec.h"
#include "fetch.h"
#include "library.h"
#include "proto.h"
#include "unpack.h"

struct xy_tasks;

/* Reports a task's end; m is valid during the call only. key is the
 * fingerprint its TASK carried (all zeros: none). */
typedef void (*xy_tasks_done_fn)(void *arg, const struct xy_msg_task_done *m,
				 const uint8_t key[XY_ID_LEN]);

struct xy_tasks_opts {
	uv_loop_t *loop;
	struct xy_cache *cache;
	struct xy_fetcher *fetcher;
	struct xy_exec *exec;
	struct xy_libs *libs; /* for calls: TASKs that name a library */
	struct xy_unpacker *unpacker; /* for UNPACK and ENV inputs */
	uint32_t gpus; /* for CUDA_VISIBLE_DEVICES */
	/* Their ids, comma-separated ("2,3"; copied), or NULL: 0 to gpus-1. */
	const char *gpu_ids;
	uint32_t cores; /* started tasks' cores stay within it; 0: no limit */
	/* The accounts command tasks run under (taskusers.h), or NULL:
	 * the worker's own. */
	struct xy_taskusers *users;
	xy_tasks_done_fn on_done;
	void *arg;
};

/* Returns NULL on ENOMEM. The parts in opts must outlive the result. */
struct xy_tasks *xy_tasks_create(const struct xy_tasks_opts *opts);
/* Frees every task and removes the sandboxes left. Call it after
 * xy_tasks_abort_all, once the loop has run dry (no thread pool work
 * in flight). destroy(NULL) does nothing. */
void xy_tasks_destroy(struct xy_tasks *ts);

/* Takes a TASK. Its pointer fields are stolen (m is zeroed), so the caller
 * may free m as usual. A task whose inputs cannot come ends at once with
 * INPUT_MISSING or WORKER_FAILED. Returns -1 (EEXIST) if a task of this id
 * is already here; m is left untouched then. */
int xy_tasks_submit(struct xy_tasks *ts, struct xy_msg_task *m);

/* A fetch ended: tasks waiting for id go on, or fail with it. */
void xy_tasks_object_ready(struct xy_tasks *ts, const uint8_t id[XY_ID_LEN],
			   int status, const char *text);

/* An archive's expansion ended (end: an xy_unpack_end, unpack.h): tasks
 * waiting for it go on, or fail with text, with INPUT_MISSING for a bad
 * archive and WORKER_FAILED for a fault of this worker. */
void xy_tasks_unpacked(struct xy_tasks *ts, const uint8_t id[XY_ID_LEN],
		       int end, const char *text);

/* Ends a task with CANCELLED at once (its group is killed, its sandbox
 * removed once the processes are gone). Returns -1 (ENOENT) if there is no
 * such unfinished task. */
int xy_tasks_cancel(struct xy_tasks *ts, uint64_t task_id);

/* Loop phase: starts the tasks whose inputs are all in the cache, in
 * order, while their cores fit in opts.cores (a call the manager queued
 * here waits for a core). */
void xy_tasks_start_ready(struct xy_tasks *ts);
/* Loop phase: frees the tasks that have ended and let go of everything. */
void xy_tasks_reap(struct xy_tasks *ts);

/* The ids of the tasks not yet reported done, as a malloc'd array (NULL
 * when none). Returns the count, or -1 on ENOMEM. */
int64_t xy_tasks_unfinished(struct xy_tasks *ts, uint64_t **ids);

/* The manager is gone (docs/durability.md, "Workers outlive their
 * manager"): every unfinished task with a key is renamed to a fresh held
 * id (next_id(arg), XY_HELD_BIT set), so that ids of a later manager
 * never meet it; one without a key, which no manager can adopt, is
 * cancelled. Returns the count held. */
size_t xy_tasks_hold_all(struct xy_tasks *ts, uint64_t (*next_id)(void *),
			 void *arg);
/* The unfinished held tasks, for HELLO, as a malloc'd array (NULL when
 * none). Returns the count, or -1 on ENOMEM. */
int64_t xy_tasks_held(struct xy_tasks *ts, struct xy_held_task **out);
/* ADOPT: the unfinished task old is task new from now on. Returns -1
 * (ENOENT) if there is no such task, (EEXIST) if new is taken. */
int xy_tasks_rekey(struct xy_tasks *ts, uint64_t old, uint64_t new_id);

/* Shutting down: no more reports; every process group is killed (and
 * every instance serving a call) and every unfinished task ends
 * silently. */
void xy_tasks_abort_all(struct xy_tasks *ts);
/* Gives up processes not yet reaped and detaches calls from their
 * instances, so the loop can close. */
void xy_tasks_release_all(struct xy_tasks *ts);

/* Tasks held in memory, whatever their state. */
size_t xy_tasks_count(const struct xy_tasks *ts);

#endif
