/*
 * internal.h: the manager's private types and the interfaces between its
 * sub-contexts (docs/architecture.md, "Manager sub-contexts"). Only files
 * under src/manager include it.
 *
 * Ownership: the manager owns every submitted task until wait returns it,
 * every declared file until nothing refers to it (catalog.c: the
 * program's handles and the manager's own references), every object
 * until no file refers to it and its idle spell is over, and every
 * worker record until its connection closes. Everything here runs on the
 * manager's loop thread, except the served-object table (catalog.c), which
 * transfer server threads read under its mutex.
 */
#ifndef XY_MANAGER_INTERNAL_H
#define XY_MANAGER_INTERNAL_H

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "conn.h"
#include "history.h"
#include "proto.h"
#include "xfer.h"
#include "xylem.h"

struct xy_worker;
struct xy_object;
struct xy_catalog;
struct xy_wtable;
struct xy_sched;
struct xy_xplan;
struct xy_lineage;
struct recipe;
struct peer;
struct post;
struct fetch;    /* xplan.c */
struct cooldown; /* xplan.c */
struct client;
struct client_job;
struct xy_clients;

/* A declared library: a template for the instances workers start. A
 * replaced library stays allocated until the manager goes, since workers
 * remember which library objects they were sent. */
struct library {
	char *name;
	struct xy_task *tmpl;
	int current; /* not replaced by a later declaration */
	struct library *next;
};

/* ------------------------------------------------------------------ tasks */

struct task_file {
	struct xy_file *file;
	char *as;
};

struct xy_task {
	uint64_t id;
	char *command;
	char *tag;
	struct task_file *inputs, *outputs;
	uint32_t n_inputs, n_outputs;
	struct xy_env_var *env;
	uint32_t n_env;
	int cores, gpus;
	int64_t memory, disk;
	int retries;
	double priority;
	double time_limit;
	uint64_t user;
	struct xy_file *environment; /* mounted at XY_ENV_MOUNT, activated */
	char *library;  /* a call: the library that serves it */
	char *payload;  /* a call's payload */
	size_t payload_len;

	xy_task_state state;
	xy_result result;
	xy_failure failure; /* its last TASK_DONE's */
	int exit_code;
	char *output;
	size_t output_len;
	char *error;
	char *worker_name;
	int attempts;       /* dispatches that reached a worker */
	int failures;       /* attempts that failed by the task's fault */
	int worker_losses;  /* times its worker vanished under it */
	int cancel_requested;
	struct xy_task_times times;

	struct xy_manager *manager;
	int pending;               /* inputs not yet available */
	int retrievals;            /* outputs still coming back */
	int retrieval_failed;      /* an output could not be brought back */
	struct xy_worker *worker;  /* while RUNNING */
	struct xy_task *qprev, *qnext; /* ready level, worker list, done list */
	struct rq_level *level;    /* its ready level while READY (sched.c) */
	uint64_t qseq;             /* its place in the ready queue (sched.c) */
	struct xy_task *anext;     /* set aside in a round (sched.c) */
	struct xy_task *hnext;     /* id hash chain */
	int internal; /* a remake of lost temps (lineage.c) or a client's
		       * task (client.c, job set): never returned by wait */
	struct client_job *job; /* the client's job it runs for */
};

/* ------------------------------------------------------------ catalogue */

enum file_state {
	FILE_NEW,      /* declared, not yet needed */
	FILE_QUEUED,   /* needed; hashing starts at the next loop turn */
	FILE_HASHING,  /* being hashed on the thread pool */
	FILE_PRODUCED, /* will be written by its producer */
	FILE_READY,    /* obj is known and has a source */
	FILE_MISSING   /* the path could not be read */
};

struct xy_file {
	char *path; /* NULL for a buffer, a URL or an expansion */
	char *url;  /* a URL input (urls.c): fetched by a worker, not here */
	int url_no_room; /* a URL: workers that had no room for it */
	struct xy_file *archive;  /* an expansion: the archive it expands */
	struct xy_file *unpacked; /* an archive: its expansion, if declared */
	xy_cache_level level;
	enum file_state state;
	struct xy_object *obj; /* set through xy_catalog_file_set_object */
	struct xy_task *producer;
	struct xy_task **waiters; /* tasks whose pending count includes us */
	uint32_t n_waiters, cap_waiters;
	char *error;
	struct xy_file *next; /* the catalogue's table by path or URL */
	struct xy_file *qnext; /* queued for hashing */
	/* References (catalog.c, "When a file is freed"): the program's,
	 * one per declaration less its releases, and the manager's own.
	 * With neither left it joins the catalogue's dead list (dnext) and
	 * is freed at its next phase, unless declared again meanwhile. */
	struct xy_catalog *catalog;
	uint32_t handles;
	uint32_t refs;
	int dead;
	struct xy_file *dnext;
	struct xy_file *uprev, *unext; /* files without a name (catalog.c) */
	struct xy_file *oprev, *onext; /* the files of obj (not expansions) */
	/* Temps only (lineage.c owns their recipes): */
	int temp;
	int replicas;          /* copies wanted once it is made */
	char *label;           /* "temp-N", for messages */
	struct recipe *recipe; /* how to make it again */
	int awaiting;          /* its waiters wait for a copy in flight */
	struct xy_file *anext; /* the catalogue's list of those */
	/* Failed, its waiters still to fail (catalog.c, fail_waiters). */
	struct xy_file *fail_next;
	int fail_queued;
};

struct replica {
	struct xy_worker *worker;
	int ready; /* 0: a FETCH to it is in flight */
};

struct xy_object {
	uint8_t id[XY_ID_LEN];
	char hex[2 * XY_ID_LEN + 1];
	uint8_t kind;
	/* The highest level the manager knows a worker keeps it at: copies
	 * below XY_CACHE_WORKER are deleted (UNLINK) when it is dropped. */
	uint8_t level;
	uint64_t size;
	int on_manager;  /* the manager can serve it (path or buffer) */
	char *staged; /* its copy in the staging directory (a buffer's) */
	struct xy_chunks chunks; /* its chunk list, if known (n == 0: none) */
	struct replica *replicas;
	uint32_t n_replicas, cap_replicas;
	struct fetch *fetching; /* xplan.c: its fetches in flight, newest first */
	struct xy_file *files; /* the files that have it, through onext */
	uint32_t pins; /* retrievals in flight (xplan.c) */
	/* Looked at in the catalogue's phase (cnext), idle (no file, no
	 * pin, copies on workers: iprev/inext, oldest first). */
	int checking, idle;
	struct xy_object *cnext, *iprev, *inext;
	struct xy_object *hnext;
};

struct xy_catalog *xy_catalog_create(struct xy_manager *m, char *err,
				     size_t errlen);
/* Checks a cache level given to a declare call: 0, or -1 (EINVAL) with
 * the reason in err. */
int xy_catalog_check_level(xy_cache_level level, char *err, size_t errlen);
/* The file for a URL (declared again: the same file), or NULL on ENOMEM. */
struct xy_file *xy_catalog_url(struct xy_catalog *c, const char *url,
			       xy_cache_level level);
/* The expansion of archive (declared again: the same file, its level
 * raised to the higher one). It mirrors the archive: the same object,
 * the same state; tasks that need it wait on the archive. */
struct xy_file *xy_catalog_unpack(struct xy_catalog *c,
				  struct xy_file *archive,
				  xy_cache_level level);
void xy_catalog_destroy(struct xy_catalog *c);
struct xy_file *xy_catalog_file(struct xy_catalog *c, const char *path,
				xy_cache_level level);
struct xy_file *xy_catalog_buffer(struct xy_catalog *c, const void *data,
				  size_t len, xy_cache_level level, char *err,
				  size_t errlen);
/* Called at submit for each input: returns 1 if the input is available
 * now, 0 if t must wait (t is added to the file's waiters and hashing is
 * started if needed), -1 if it is missing (reason in t->error). */
int xy_catalog_need(struct xy_catalog *c, struct xy_file *f,
		    struct xy_task *t);
/* The object with this id, created if new; NULL (ENOMEM) if it is new
 * and memory is short. */
struct xy_object *xy_catalog_object(struct xy_catalog *c,
				    const uint8_t id[XY_ID_LEN], uint8_t kind,
				    uint64_t size);
/* Gives obj the chunk list in *chunks (taken: *chunks is emptied) if it
 * has none yet and the list fits its size; otherwise frees it. */
void xy_catalog_set_chunks(struct xy_object *obj, struct xy_chunks *chunks);
/* Makes the manager serve obj from path (thread-safe table). */
void xy_catalog_serve(struct xy_catalog *c, struct xy_object *obj,
		      const char *path);
/* The file f now has obj (its producer succeeded, or hashing finished):
 * wakes its waiters. */
void xy_catalog_file_ready(struct xy_catalog *c, struct xy_file *f,
			   struct xy_object *obj);
/* f cannot be had: its waiters fail with INPUT_MISSING and reason. */
void xy_catalog_file_failed(struct xy_catalog *c, struct xy_file *f,
			    const char *reason);
/* f will be made again by its producer: tasks that need it must wait. */
void xy_catalog_file_reset(struct xy_catalog *c, struct xy_file *f);
void xy_catalog_remove_waiter(struct xy_file *f, struct xy_task *t);
struct replica *xy_catalog_replica_find(struct xy_object *o, struct xy_worker *w);
/* Records that w holds o (ready) or is fetching it, on o and in w's list
 * alike, or on neither: 0, or -1 (ENOMEM) with nothing recorded. */
int xy_catalog_replica_add(struct xy_object *o, struct xy_worker *w,
			   int ready);
/* Drops w's copy of o, and o from w's list of held objects. */
void xy_catalog_replica_drop(struct xy_object *o, struct xy_worker *w);
/* Drops w's copy of o only (w is going away with its list). */
void xy_catalog_replica_forget(struct xy_object *o, struct xy_worker *w);
int xy_catalog_lookup(void *catalog, const uint8_t id[XY_ID_LEN], char *path,
		      size_t pathlen, uint8_t *kind);
const char *xy_catalog_staging(struct xy_catalog *c);
/* A ready worker with a ready copy of o, or NULL (also for NULL). */
struct xy_worker *xy_catalog_holder(const struct xy_object *o);
/* 1 if a copy of o is within reach: on the manager, or ready on a ready
 * worker (0 for NULL). */
int xy_catalog_has_source(const struct xy_object *o);
/* 1 if a copy of o is on its way to a ready worker (a FETCH in flight),
 * 0 if not or for NULL. */
int xy_catalog_copy_in_flight(const struct xy_object *o);
/* Copies ended, or a worker left: temps whose readers waited for a copy
 * in flight (xy_catalog_need) wake them if it landed, or are made again
 * if none is left on its way. */
void xy_catalog_copies_changed(struct xy_catalog *c);
int xy_catalog_busy(const struct xy_catalog *c);
int xy_catalog_hash_wanted(const struct xy_catalog *c);
/* Starts hashing the files needed since the last turn, unless a task
 * submitted meanwhile writes them. Hashing waits for this turn so that a
 * program may submit a reader before the writer of a path. */
void xy_catalog_start_hashing(struct xy_catalog *c);

/* When a file is freed (catalog.c; docs/dataplane.md, "When a file is
 * freed"). A file holds the program's handles (one per declaration, less
 * its releases: xy_file_release) and the manager's own references:
 * each task in the task table that lists it (input or output), a
 * library template that lists it, a recipe that reads it (lineage.c),
 * its expansion, its hashing or URL fetch, a wait for a copy of it, a
 * fetch back (xy_manager_fetch). With neither left it is freed at the
 * catalogue's next phase. An object is kept while a file has it, a
 * fetch of it is in flight or a retrieval pins it; then, if workers
 * still hold copies, it stays known among the last XY_IDLE_OBJECTS idle
 * ones (a file declared again with that content finds them), else it
 * is freed. */
#define XY_IDLE_OBJECTS 1024
/* A new file without a name (a temp, lineage.c) with one handle, or NULL
 * on ENOMEM. */
struct xy_file *xy_catalog_unnamed(struct xy_catalog *c, xy_cache_level level);
void xy_catalog_file_incref(struct xy_file *f);
void xy_catalog_file_decref(struct xy_file *f);
/* Gives f the object o (NULL: none), keeping each object's list of its
 * files; an object that loses its last file is looked at in the phase. */
void xy_catalog_file_set_object(struct xy_catalog *c, struct xy_file *f,
				struct xy_object *o);
/* o may have no file left, no fetch and no pin: looked at in the phase
 * (c may be NULL: then nothing). */
void xy_catalog_consider(struct xy_catalog *c, struct xy_object *o);
/* The phase (each turn of the loop): frees the files that nothing refers
 * to, then the objects they leave behind. */
void xy_catalog_phase(struct xy_catalog *c);
/* Files and objects the catalogue holds now (idle objects included). */
void xy_catalog_counts(const struct xy_catalog *c, int64_t *files,
		       int64_t *objects);

/* ------------------------------------------------------------ URLs */

/* URL inputs (urls.c): the manager never fetches one; it sends FETCH_URL
 * to one worker, which fetches from the origin, and learns the object's
 * id from URL_DONE; every other worker then gets it from a holder. */
struct xy_urls;
/* At most XY_URL_FETCHES (proto.h) FETCH_URLs are in flight to one
 * worker, which runs as many downloads at once; the others wait for
 * room. */
struct xy_urls *xy_urls_create(struct xy_manager *m);
void xy_urls_destroy(struct xy_urls *u);
/* f (a URL file, now FILE_QUEUED) is needed: sends FETCH_URL to a worker
 * at once, or at a later xy_urls_phase when none is ready. */
void xy_urls_start(struct xy_urls *u, struct xy_file *f);
/* Schedule phase: starts the fetches that waited for a worker. */
void xy_urls_phase(struct xy_urls *u);
void xy_urls_done(struct xy_urls *u, struct xy_worker *w,
		  struct xy_msg_url_done *d);
/* w is going: its fetches start again elsewhere. */
void xy_urls_worker_gone(struct xy_urls *u, struct xy_worker *w);
int xy_urls_busy(const struct xy_urls *u);

/* The sandbox name a task's environment is mounted at (unpack.c). */
#define XY_ENV_MOUNT ".xylem/env"
/* The TASK/LIBRARY input kind for input f of t (unpack.c). */
uint8_t xy_input_kind(const struct xy_task *t, const struct xy_file *f);

/* --------------------------------------------------------- worker table */

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
	struct xy_worker *next, *prev; /* all workers */
	struct {
		int ready, busy, cores, cores_busy;
	} counted; /* its part of the table's sums (wtable.c) */
	double connected_at;
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
/* w's cores not committed, less the window: negative while calls wait
 * on it for a core. */
int xy_wtable_free_cores(const struct xy_worker *w);
/* Cores of w's own in use: cores_used without calls queued beyond them. */
int xy_wtable_cores_busy(const struct xy_worker *w);
void xy_wtable_commit(struct xy_wtable *wt, struct xy_worker *w,
		      struct xy_task *t);
void xy_wtable_release(struct xy_wtable *wt, struct xy_worker *w,
		       struct xy_task *t);
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

/* ------------------------------------------------------------ scheduler */

#include "scheduler.h"

/* ------------------------------------------------------ transfer planner */

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
int xy_xplan_busy(const struct xy_xplan *x);
int64_t xy_xplan_bytes_received(const struct xy_xplan *x);

/* -------------------------------------------------------------- lineage */

/* Temps and their lineage (lineage.c, docs/dataplane.md "Temps"). */
struct xy_lineage *xy_lineage_create(struct xy_manager *m);
/* Frees the recipes and the retired remakes (temps are the catalogue's). */
void xy_lineage_destroy(struct xy_lineage *l);
struct xy_file *xy_lineage_declare(struct xy_lineage *l,
				   xy_cache_level level, char *err,
				   size_t errlen);
/* At submit: keeps a recipe of t if it writes a temp. -1 on ENOMEM. */
int xy_lineage_record(struct xy_lineage *l, struct xy_task *t, char *err,
		      size_t errlen);
/* f is a temp with no copy left that a task needs: its producer is
 * queued to run again (f is then FILE_PRODUCED) and 0 returned, or -1
 * with a reason in *why (malloc'd) if it cannot be made again. */
int xy_lineage_remake(struct xy_lineage *l, struct xy_file *f, char **why);
/* The temp f is being freed: it leaves its recipe, which goes with its
 * last temp (and gives back its inputs). */
void xy_lineage_forget(struct xy_lineage *l, struct xy_file *f);
/* The temp f was made (obj on w): copies it to more workers if asked. */
void xy_lineage_made(struct xy_lineage *l, struct xy_file *f);
/* A remake finished (t->internal): it is freed in the next phase. */
void xy_lineage_retire(struct xy_lineage *l, struct xy_task *t);
/* The loop's phase: frees retired remakes, starts queued ones. */
void xy_lineage_phase(struct xy_lineage *l);
int64_t xy_lineage_remakes(const struct xy_lineage *l);
/* The file's name in messages: its path, its label, or "(buffer)". */
const char *xy_file_label(const struct xy_file *f);

/* -------------------------------------------------------------- clients */

/* Programs that submit tasks over the control port with role CLIENT
 * (client.c, docs/architecture.md "Clients"). */
struct xy_clients *xy_clients_create(struct xy_manager *m);
/* Frees every job left; tasks still in the manager's table are its. */
void xy_clients_destroy(struct xy_clients *cs);
/* A connection authenticated as a client; NULL on ENOMEM. */
struct client *xy_clients_add(struct xy_clients *cs, struct xy_conn *c);
/* A message from it: SUBMIT, KEEPALIVE; anything else closes it. */
void xy_clients_msg(struct xy_clients *cs, struct client *cl, unsigned type,
		    union xy_msg *msg);
/* Its connection closed: its tasks are cancelled, cl is freed. */
void xy_clients_remove(struct xy_clients *cs, struct client *cl,
		       const char *reason);
/* t, a client's task, is finished and out of the manager's table: its
 * job owns it now, and answers the client. */
void xy_clients_task_done(struct xy_clients *cs, struct xy_task *t);

/* -------------------------------------------------------------- manager */

#define XY_LIVENESS_MS 15000
#define XY_WORKER_TIMEOUT_MS 120000

struct xy_manager {
	uv_loop_t loop;
	uv_tcp_t listener;
	uv_prepare_t prepare;
	uv_timer_t timer;
	char *name;
	char *secret;
	size_t secret_len;
	int port;
	double started;

	struct xy_catalog *catalog;
	struct xy_wtable *wtable;
	struct xy_sched *sched;
	struct xy_xplan *xplan;
	struct xy_lineage *lineage;
	struct xy_history *history;
	struct xy_xfer_server *xfer;
	struct xy_urls *urls;
	struct xy_clients *clients;
	struct xy_pools *pools;

	uint64_t next_task_id;
	struct xy_task **task_table; /* id hash, chained through hnext */
	uint64_t task_table_size;
	int64_t n_tasks;             /* submitted, not yet returned */
	int64_t n_entries;           /* in the task table, internal ones too */
	int64_t n_waiting, n_running, n_done;
	int64_t n_succeeded, n_failed;
	struct xy_task *done_head, *done_tail;
	int sched_dirty;
	int call_window; /* calls a worker may hold per core, beyond its cores */
	struct peer **peers; /* every open control connection */
	size_t n_peers, cap_peers;
	uv_idle_t idle; /* keeps poll from blocking while work is left */
	uv_async_t async; /* wakes the loop for posts and interrupts */
	uv_timer_t liveness;
	uint64_t last_liveness;
	pthread_mutex_t post_lock;
	struct post *posts, *posts_tail; /* under post_lock */
	int closed;                      /* under post_lock: no more posts */
	int interrupted;                 /* atomic */
	struct library *libraries;
	int destroying;
	int listening;
	/* The clock of rests, no-room marks and transfer durations:
	 * monotonic (xy_mono) unless a unit test sets its own. */
	double (*clock)(void);
	/* Fault injection, for unit tests only: while not 0, each
	 * allocation made through xy__calloc, xy__realloc or xy__strdup
	 * counts it down, and the one that brings it to 0 fails (1: the
	 * next one). Always 0 otherwise. */
	uint64_t fail_alloc;
};

/* The allocations of the manager's loop whose failure it survives
 * (docs/errors.md, "Out of memory"): calloc, realloc and strdup, except
 * that m's fail_alloc (m may be NULL) can make one fail with ENOMEM. */
static inline int xy__alloc_fails(struct xy_manager *m)
{
	if (!m || !m->fail_alloc || --m->fail_alloc)
		return 0;
	errno = ENOMEM;
	return 1;
}

static inline void *xy__calloc(struct xy_manager *m, size_t n, size_t size)
{
	return xy__alloc_fails(m) ? NULL : calloc(n, size);
}

static inline void *xy__realloc(struct xy_manager *m, void *p, size_t size)
{
	return xy__alloc_fails(m) ? NULL : realloc(p, size);
}

static inline char *xy__strdup(struct xy_manager *m, const char *s)
{
	return xy__alloc_fails(m) ? NULL : strdup(s);
}

/* Now on m's clock, in seconds (m may be NULL: the monotonic clock). */
double xy_manager_now(const struct xy_manager *m);

/* Task life cycle, called by the sub-contexts. */
void xy_manager_task_ready(struct xy_manager *m, struct xy_task *t);
void xy_manager_task_fail(struct xy_manager *m, struct xy_task *t,
			  xy_result r, const char *why);
void xy_manager_task_requeue(struct xy_manager *m, struct xy_task *t,
			     const char *why);
/* Sends t's fetches and t to w, committing w's resources to it. If
 * memory is short for that, t fails with MANAGER_FAILED instead and w
 * is not committed. */
void xy_manager_task_dispatch(struct xy_manager *m, struct xy_task *t,
			      struct xy_worker *w);
/* An output came back (ok), or could not: local is set when the manager
 * could not write it (its blame), clear when the transfer failed. */
void xy_manager_retrieved(struct xy_manager *m, struct xy_task *t,
			  int ok, int local, const char *why);
void xy_manager_task_lost(struct xy_manager *m, struct xy_task *t,
			  const char *why);
void xy_manager_wake(struct xy_manager *m);
/* The current library of that name, or NULL. */
struct library *xy_manager_library(struct xy_manager *m, const char *name);
/* Sends w the LIBRARY message for name unless it has had it already: 0,
 * or -1 (ENOMEM) with nothing sent. */
int xy_manager_send_library(struct xy_manager *m, struct xy_worker *w,
			    const char *name);
int xy_manager_send(struct xy_manager *m, struct xy_worker *w, unsigned type,
		    const union xy_msg *msg);
/* Enters an internal task (a remake) into the task table, WAITING; its
 * inputs are looked up by xy_manager_task_requeue later. */
void xy_manager_enter_internal(struct xy_manager *m, struct xy_task *t);
/* Submits t as an internal task (a client's): checked as by submit, its
 * inputs looked up now. Returns its id, or 0 with a reason in err. */
uint64_t xy_manager_submit_internal(struct xy_manager *m, struct xy_task *t,
				    char *err, size_t errlen);
/* Cancels t, submitted and not finished (as xy_manager_cancel). */
void xy_manager_task_cancel(struct xy_manager *m, struct xy_task *t);
/* One turn of the loop, blocking until deadline at most (xy_mono() based;
 * negative: up to a second). */
void xy_manager_turn(struct xy_manager *m, double deadline);

/* task.c */
void xy_task_free_results(struct xy_task *t);
/* status.c */
char *xy_status_build(const struct xy_manager *m);

#endif
