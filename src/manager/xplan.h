/*
 * xplan.h: the transfer planner (xplan.c): input fetches (source choice,
 * per-worker and per-source limits) and output retrieval. A sub-context of
 * the manager, with its own create and destroy; only files under
 * src/manager include it, through internal.h, which gives the types it
 * shares with the others.
 */
#ifndef XY_MANAGER_XPLAN_H
#define XY_MANAGER_XPLAN_H

#define XY_FETCH_PER_WORKER 4
#define XY_SERVE_PER_SOURCE 8

struct xy_xplan *xy_xplan_create(struct xy_manager *m, const char *secret,
				 size_t secret_len);
void xy_xplan_destroy(struct xy_xplan *x);
/* Can every input of t missing on w be fetched now? 1 yes, 0 not now
 * (limits), -1 some input has no source at all. */
int xy_xplan_can_stage(struct xy_xplan *x, struct xy_task *t,
		       struct xy_worker *w);
/* Sends FETCH for each input of t that w lacks: 0, or -1 (ENOMEM) when
 * one cannot be planned (the fetches sent before it go on). */
int xy_xplan_stage(struct xy_xplan *x, struct xy_task *t,
		   struct xy_worker *w);
/* A CACHE_UPDATE arrived from w. */
void xy_xplan_update(struct xy_xplan *x, struct xy_worker *w,
		     struct xy_msg_cache_update *u);
/* Tells w that the manager has its copy of output id (or will not take
 * one), so that w may evict it (RELEASE). */
void xy_manager_release(struct xy_manager *m, struct xy_worker *w,
			const uint8_t id[XY_ID_LEN]);
/* Brings obj, made by t on w, back to path in a thread; calls
 * xy_manager_retrieved when done, and releases obj on w. -1 (ENOMEM) if
 * it cannot start: then nothing is called or released. */
int xy_xplan_retrieve(struct xy_xplan *x, struct xy_task *t,
		      struct xy_worker *w, struct xy_object *obj,
		      const char *path);
/* The same for no task: done(arg, ok, why) runs on the loop at the end,
 * unless -1 (ENOMEM) is returned. */
int xy_xplan_retrieve_cb(struct xy_xplan *x, struct xy_worker *w,
			 struct xy_object *obj, const char *path,
			 void (*done)(void *arg, int ok, const char *why),
			 void *arg);
/* Sends w a FETCH of obj with no task waiting for it (a temp's extra
 * copy). The CACHE_UPDATE makes the replica ready. -1 (ENOMEM) if it
 * cannot be planned: nothing is sent. */
int xy_xplan_copy(struct xy_xplan *x, struct xy_object *obj,
		  xy_cache_level level, struct xy_worker *w);
/* w drains: objects of which it holds the last copy, and that a file
 * still names, are sent (FETCH) to other ready workers, w their source,
 * as many at once as w may serve. Returns the copies begun (0: none
 * needed, no room, or no worker to take them: a temp is then made
 * again if a task needs it); each one's end calls xy_wtable_drained(w),
 * which asks for the next. */
int xy_xplan_hand_off(struct xy_xplan *x, struct xy_worker *w);
/* Forgets w as a source (it is going away). */
void xy_xplan_worker_gone(struct xy_xplan *x, struct xy_worker *w);
/* Frees w's source cooldowns (wtable.c, as w is freed). */
void xy_xplan_worker_free(struct xy_worker *w);
/* How many cooldowns w serves now (for status): rests as a source after
 * a receiver blamed it, for one object or for all. */
int xy_xplan_resting(const struct xy_worker *w);
/* Sets the first cooldown of a blamed source and its cap, in seconds
 * (30 and 300 unless set; tests shorten them). */
void xy_xplan_set_cooldown(struct xy_xplan *x, double base, double cap);
/* The sources of the fetch of o to dest in flight, in the FETCH's order,
 * into out (NULL: the manager, or a worker gone); their number, or -1 if
 * there is no such fetch. For tests. */
int xy_xplan_sources(struct xy_xplan *x, const struct xy_object *o,
		     const struct xy_worker *dest, struct xy_worker **out,
		     int max);
int64_t xy_xplan_active(const struct xy_xplan *x);
/* A broadcast chain in flight: an object streamed through `length`
 * workers one after the other (docs/architecture.md). */
struct xy_xplan_chain {
	const char *hex; /* the object's id, valid until the next turn */
	uint64_t size;
	int length;
};
/* Up to max chains into out; their number. */
int xy_xplan_chains(const struct xy_xplan *x, struct xy_xplan_chain *out,
		    int max);
int xy_xplan_busy(const struct xy_xplan *x);
int64_t xy_xplan_bytes_received(const struct xy_xplan *x);

#endif
