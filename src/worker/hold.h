/*
 * hold.h: what a worker keeps for a manager that may come back
 * (docs/durability.md, "Workers outlive their manager"). The TASK_DONE of
 * each task whose TASK carried a key is kept for a while after it was
 * sent, since the manager may die before it records the task; and a
 * task that ends while the worker has no manager, or before the new one
 * adopted it, keeps its TASK_DONE here instead of sending it. When the
 * manager comes back, HELLO lists what is kept; ADOPT sends one under
 * the new manager's id, CANCEL drops it. Pairs with worker.c (which
 * feeds it) and tasks.c (which holds the tasks still running).
 */
#ifndef XY_WORKER_HOLD_H
#define XY_WORKER_HOLD_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

struct xy_hold;

/* NULL on ENOMEM. destroy(NULL) does nothing. */
struct xy_hold *xy_hold_create(void);
void xy_hold_destroy(struct xy_hold *h);

/* A fresh held id: XY_HELD_BIT and a count of this worker's own. */
uint64_t xy_hold_new_id(struct xy_hold *h);

/* d was sent for a task with key: a copy is kept, the oldest dropped
 * past a bound of count and bytes. */
void xy_hold_sent(struct xy_hold *h, const struct xy_msg_task_done *d,
		  const uint8_t key[XY_ID_LEN]);
/* d could not be sent (its task is held): kept under d's id, which is a
 * held id, until xy_hold_adopt or xy_hold_drop. -1 on ENOMEM. */
int xy_hold_keep(struct xy_hold *h, const struct xy_msg_task_done *d,
		 const uint8_t key[XY_ID_LEN]);
/* The manager is lost: what was sent is held too, each under a fresh
 * held id. */
void xy_hold_lost(struct xy_hold *h);

/* Appends the held TASK_DONEs to *v (n entries, realloc'd), as finished
 * held tasks for HELLO. -1 on ENOMEM (*v and *n as they were). */
int xy_hold_list(struct xy_hold *h, struct xy_held_task **v, uint32_t *n);
/* ADOPT of a held TASK_DONE: 1 with *m decoded, its id now task_id
 * (send it, then xy_msg_free(XY_MSG_TASK_DONE, m)), kept as sent; 0 if
 * none is held under held_id; -1 if it cannot be decoded (ENOMEM). */
int xy_hold_adopt(struct xy_hold *h, uint64_t held_id, uint64_t task_id,
		  union xy_msg *m);
/* A TASK with key came: the reports kept of earlier attempts of that
 * task are dropped (a later manager must not take one for this one). */
void xy_hold_forget_key(struct xy_hold *h, const uint8_t key[XY_ID_LEN]);
/* Drops a held TASK_DONE. Returns 1 if there was one. */
int xy_hold_drop(struct xy_hold *h, uint64_t held_id);
/* How many are held (not counting those only kept after sending). */
size_t xy_hold_count(const struct xy_hold *h);

#endif
