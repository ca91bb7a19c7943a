/*
 * wtable.h: the worker table (wtable.c): connected workers, their
 * resources and what is committed on them, the free lists and the sums
 * that stats show. A sub-context of the manager, with its own create and
 * destroy; only files under src/manager include it, through internal.h,
 * which gives the types it shares with the others.
 */
#ifndef XY_MANAGER_WTABLE_H
#define XY_MANAGER_WTABLE_H

/* A task with a time limit goes only to a worker with at least its limit
 * and this many seconds left (docs/scaling.md, "Walltimes"). */
#define XY_TIME_MARGIN_S 5.0

/*
 * A connected worker. wtable.c makes, changes and frees it, and its
 * readiness, resources, what is committed on it, its lists and whether it
 * drains change only through the functions below. The other files write
 * only these fields, each its own:
 *   manager.c  leaving (BYE, SHUTDOWN sent), n_done, last_heard, libs and
 *              n_libs (the libraries sent to it)
 *   xplan.c    fetches, serving, retrieving, cooling
 *   urls.c     url_fetches
 *   sched.c    score_gen, score, weighed_gen (one decision's scratch)
 * and held, n_held change through xy_wtable_note_object and the
 * catalogue's replica functions (catalog.c).
 */
struct xy_worker {
	struct xy_conn *conn;
	struct xy_manager *manager;
	char *name, *hostname, *addr; /* addr: peer ip */
	char *xfer_host;
	int xfer_port;
	int greeted; /* HELLO received */
	int ready;   /* schedulable: greeted and not leaving */
	int leaving; /* said BYE or was told to shut down */
	int cores, gpus;
	int64_t memory, disk;
	/* One more than the size of the smallest object it could not store
	 * (NO_ROOM: its disk was full), until no_room_until (seconds on
	 * xy_manager_now's clock); 0: no such object. In the units of the
	 * scheduler's need, which counts each input as its size plus one. */
	uint64_t no_room;
	double no_room_until;
	int cores_used, gpus_used; /* cores_used counts queued calls too */
	int64_t memory_used, disk_used;
	int n_running;
	uint64_t last_busy; /* loop ms: it became ready, or a task ended */
	int64_t n_done;
	int fetches;  /* FETCHes to it in flight */
	int url_fetches; /* FETCH_URLs to it in flight (urls.c) */
	int serving;  /* transfers reading from it */
	int retrieving; /* outputs being brought back from it (xplan.c) */
	struct cooldown *cooling; /* xplan.c: its rests as a source */
	struct xy_task *running; /* list through qnext/qprev */
	struct xy_object **held; /* objects it holds or is fetching */
	uint32_t n_held, cap_held;
	struct library **libs; /* libraries sent to it */
	uint32_t n_libs;
	struct xy_worker *fprev, *fnext; /* free or window list (wtable.c) */
	int on_free; /* which of those, or 0 */
	int draining;  /* said DRAIN: SHUTDOWN once it runs nothing */
	int told_stop; /* SHUTDOWN sent to it alone (drained) */
	int corked;    /* on the manager's corked list (manager.c) */
	int64_t hand_offs; /* copies of its last copies begun (drained) */
	struct xy_worker *next, *prev; /* all workers */
	struct {
		int ready, busy, cores, cores_busy;
	} counted; /* its part of the table's sums (wtable.c) */
	double connected_at;
	/* When it stops running tasks (its walltime; HELLO's time_left_ms),
	 * in seconds on xy_manager_now's clock; 0: no end known. */
	double ends_at;
	uint64_t last_heard; /* loop time of its last message */
	uint64_t score_gen;
	uint64_t score;
	uint64_t weighed_gen; /* sched.c: weighed in this decision */
};

struct xy_wtable *xy_wtable_create(struct xy_manager *m);
void xy_wtable_destroy(struct xy_wtable *wt);
/* A record for the worker on connection c (NULL: none, for unit tests),
 * not yet ready. NULL if memory is short. */
struct xy_worker *xy_wtable_add(struct xy_wtable *wt, struct xy_conn *c);
/* w is greeted and schedulable, with the resources set in its record. */
void xy_wtable_ready(struct xy_wtable *wt, struct xy_worker *w);
/* The worker's HELLO: fills resources, records its inventory. */
void xy_wtable_hello(struct xy_wtable *wt, struct xy_worker *w,
		     struct xy_msg_hello *h);
/* The connection closed: requeues its tasks, drops its replicas, frees w. */
void xy_wtable_remove(struct xy_wtable *wt, struct xy_worker *w,
		      const char *reason);
/* Not schedulable any more (it said BYE). */
void xy_wtable_disable(struct xy_wtable *wt, struct xy_worker *w);
/* True if t may go to w now: within its free resources or, for a call
 * without GPUs, within its call window (docs/architecture.md). */
int xy_wtable_fits(const struct xy_worker *w, const struct xy_task *t);
/* True if w has time left to run a task of this time limit (seconds;
 * 0: none) to its end, with XY_TIME_MARGIN_S to spare: a task with no
 * limit, or a worker with no end, always has. */
int xy_wtable_has_time(const struct xy_worker *w, double limit);
/* xy_wtable_has_time for t's own limit. */
int xy_wtable_time_fits(const struct xy_worker *w, const struct xy_task *t);
/* Seconds w has left (its ends_at less now, at least 0); -1: no end. */
double xy_wtable_time_left(const struct xy_worker *w);
/* w's cores not committed, less the window: negative while calls wait
 * on it for a core. */
int xy_wtable_free_cores(const struct xy_worker *w);
/* Cores of w's own in use: cores_used without calls queued beyond them. */
int xy_wtable_cores_busy(const struct xy_worker *w);
void xy_wtable_commit(struct xy_wtable *wt, struct xy_worker *w,
		      struct xy_task *t);
/* Resources on w that a task held since an earlier manager takes
 * (adopt.c), until it is adopted (committed as its own) or cancelled. */
void xy_wtable_reserve(struct xy_wtable *wt, struct xy_worker *w, int cores,
		       int gpus, int64_t memory, int64_t disk);
void xy_wtable_unreserve(struct xy_wtable *wt, struct xy_worker *w,
			 int cores, int gpus, int64_t memory, int64_t disk);
void xy_wtable_release(struct xy_wtable *wt, struct xy_worker *w,
		       struct xy_task *t);
/* w takes no new task, and is told to stop once it runs nothing and
 * nothing is brought back or fetched from it (its DRAIN, or its pool
 * releasing it). Nothing if it drains already. */
void xy_wtable_drain(struct xy_wtable *wt, struct xy_worker *w);
/* A draining worker that runs nothing, and from which nothing is being
 * brought back or fetched, is told to stop. */
void xy_wtable_drained(struct xy_wtable *wt, struct xy_worker *w);
/* The workers with free cores, through fnext; and those with no free
 * core but room in their call window, which only calls fit. */
struct xy_worker *xy_wtable_free_list(struct xy_wtable *wt);
struct xy_worker *xy_wtable_window_list(struct xy_wtable *wt);
struct xy_worker *xy_wtable_all(struct xy_wtable *wt);
/* Adds o to w's list of held objects (xy_catalog_replica_add's other
 * half): 0, or -1 (ENOMEM) with the list unchanged. */
int xy_wtable_note_object(struct xy_worker *w, struct xy_object *o);
int xy_wtable_count(struct xy_wtable *wt, int *busy, int64_t *cores,
		    int64_t *cores_used);
/* True if w may be given inputs to fetch that add up to need (each input
 * its size plus one): its disk (if it gives one) holds them, and it has
 * not lately failed to store an object of that size or less (no_room). */
int xy_wtable_has_room(const struct xy_worker *w, uint64_t need, double now);
/* True if w lately failed to store an object (no_room, not expired). */
int xy_wtable_no_room_marked(const struct xy_worker *w, double now);
/* w could not store an object of size bytes (NO_ROOM): remembered for a
 * while, so that objects as large go elsewhere. */
void xy_wtable_mark_no_room(struct xy_worker *w, uint64_t size, double now);

#endif
