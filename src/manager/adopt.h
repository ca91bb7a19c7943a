/*
 * adopt.h: tasks that ran under an earlier manager, taken back from the
 * workers that kept them (adopt.c, docs/durability.md, "Workers outlive
 * their manager"). A worker that reconnects lists in its HELLO the tasks
 * it held, each an *offer*: its key (the fingerprint its TASK carried),
 * the worker's own id for it, running or finished. A ready task whose key
 * an offer has is *adopted*: it goes on (or has finished) on that worker
 * under this manager's id, and does not run again. A ready task that the
 * journal says was running under an earlier manager, on a worker not back
 * yet, is *parked* until that worker comes back or the wait ends; then it
 * is queued as any other, and the offers no task took are cancelled on
 * their workers. Only files under src/manager include it.
 */
#ifndef XY_MANAGER_ADOPT_H
#define XY_MANAGER_ADOPT_H

#include "proto.h"

struct xy_manager;
struct xy_manager_options;
struct xy_task;
struct xy_worker;
struct xy_adopt;

/* The wait runs wait_s seconds from now. NULL on ENOMEM. */
struct xy_adopt *xy_adopt_create(struct xy_manager *m, double wait_s);
/* destroy(NULL) does nothing. Parked tasks stay as they are. */
void xy_adopt_destroy(struct xy_adopt *a);

/* w's HELLO listed these held tasks: each that ran on w when the
 * manager before stopped becomes an offer (a running one's resources
 * reserved on w), any other is cancelled on w (every one, a is NULL:
 * no journal); parked tasks w ran and did not keep are queued. */
void xy_adopt_offers(struct xy_manager *m, struct xy_adopt *a,
		     struct xy_worker *w, const struct xy_msg_hello *h);
/* t is ready and has a key: 1 if it was adopted or parked, 0 to queue
 * it. */
int xy_adopt_try(struct xy_adopt *a, struct xy_task *t);
/* t, parked, ends otherwise (cancelled): it is let go. */
void xy_adopt_unpark(struct xy_adopt *a, struct xy_task *t);
/* w is gone: its offers go with it. */
void xy_adopt_worker_gone(struct xy_adopt *a, struct xy_worker *w);
/* With a journal (opt->journal opened as m->memo): the lease WELCOME
 * gives workers, and the wait for those of the manager before. -1 on
 * ENOMEM. Without one, nothing. */
int xy_adopt_start(struct xy_manager *m, const struct xy_manager_options *opt);
/* A scheduling round with a journal (m->corking): what it sends w waits
 * in w's conn (corked) until xy_adopt_uncork_all, after the round, has
 * written the round's RUN records; then the conns are written. If the
 * list of corked workers cannot grow, the records so far are written at
 * once instead. xy_adopt_uncork_gone takes a worker that goes off the
 * list. */
void xy_adopt_cork(struct xy_manager *m, struct xy_worker *w);
void xy_adopt_uncork_all(struct xy_manager *m);
void xy_adopt_uncork_gone(struct xy_manager *m, struct xy_worker *w);
/* Counts, for stats and logs. */
int64_t xy_adopt_adopted(const struct xy_adopt *a);

#endif
