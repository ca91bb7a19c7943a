/*
 * tasks_int.h: the worker's task structures, shared by tasks.c and
 * tasks_lost.c alone (tasks.h is the module's interface).
 */
#ifndef XY_WORKER_TASKS_INT_H
#define XY_WORKER_TASKS_INT_H

#include <stdint.h>

#include "tasks.h"

#define TBUCKETS 1024

/* held[i]: the input's object is referenced; an archive input may still
 * wait for its expansion. */
enum { HELD_NO = 0, HELD_YES = 1, HELD_UNPACKING = 2 };
#define POOL_MAX 64

enum { T_WAITING, T_READY, T_RUNNING, T_COLLECTING, T_ENDED };

struct task;

struct tlist {
	struct task *head, *tail;
};

struct task {
	struct xy_tasks *ts;
	struct xy_msg_task spec; /* stolen from the TASK message */
	int state;
	uint32_t missing; /* inputs not yet cached */
	uint8_t *held;    /* per input: we hold a cache reference (HELD_*) */
	uint8_t *lent;    /* per input: linked into the sandbox (held + n) */
	char *sandbox;
	uint64_t pooled; /* k if the sandbox is the pool's .free-<k> */
	int pool_fd;     /* that directory, open; or -1 */
	struct xy_proc *proc;
	int account; /* xy_taskusers_claim's result, or 0: the worker's */
	struct xy_lib_call call; /* a call handed to a library instance */
	int busy; /* thread pool work in flight */
	unsigned reported : 1, in_lib : 1, has_cores : 1;
	unsigned tainted : 1; /* an input it was lent was altered */
	int taint_result;     /* then: its result, and message says why */
	uint32_t *gpu_ids;
	uint32_t n_gpu_own; /* the first n_gpu_own of gpu_ids are ours */
	uint64_t start_us, end_us;
	int result; /* decided at exit, before the outputs are taken */
	uint8_t failure; /* xy_failure: what failed a call */
	int32_t exit_code;
	char *output;
	size_t output_len;
	int truncated;
	char message[512];
	struct task *hnext;
	struct task *prev, *next;
	struct tlist *list;
};

struct xy_tasks {
	struct xy_tasks_opts o;
	struct task *table[TBUCKETS];
	struct tlist waiting, ready, running, dead;
	size_t count;
	uint8_t *gpu_busy;
	uint32_t n_gpus;
	char **gpu_name; /* each GPU's id for CUDA_VISIBLE_DEVICES, or NULL */
	char *gpu_names; /* the strings gpu_name points into */
	uint32_t cores_busy; /* of the tasks started and not yet reported */
	uint64_t seq;
	int quiet; /* shutting down: report nothing */
	struct pool_dir {
		uint64_t k; /* sandbox/.free-<k> */
		int fd;     /* it, open, or -1 */
	} pool[POOL_MAX]; /* empty sandboxes, the newest last */
	int pool_n;
	uint64_t pool_seq;
};

/* The task table, by id: the slot where id's task is or would go; put
 * and take a task by its spec.task_id. */
struct task **xy_tasks_slot(struct xy_tasks *ts, uint64_t id);
void xy_tasks_table_put(struct task *t);
void xy_tasks_table_del(struct task *t);

/* The pool of empty sandboxes (tasks_pool.c). pop forgets the newest,
 * closing its descriptor; take moves the newest to path (0, or -1: EEXIST
 * if path is taken, the entry kept); use makes a pooled directory t's
 * sandbox as it is (a warm call: 0, or -1 with errno); release pools t's
 * empty sandbox or removes it, and takes t->sandbox. */
void xy_tasks_pool_pop(struct xy_tasks *ts);
int xy_tasks_pool_take(struct xy_tasks *ts, const char *path);
int xy_tasks_pool_use(struct task *t);
void xy_tasks_sandbox_release(struct task *t);

#endif
