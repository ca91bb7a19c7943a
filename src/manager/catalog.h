/*
 * catalog.h: the file catalogue (catalog.c): declared files and their
 * states, objects by id, replicas (which worker holds which object),
 * hashing jobs, the staging directory, and when files and objects are
 * freed. A sub-context of the manager, with its own create and destroy;
 * only files under src/manager include it, through internal.h, which gives
 * the types it shares with the others.
 */
#ifndef XY_MANAGER_CATALOG_H
#define XY_MANAGER_CATALOG_H

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
	int in_queue;          /* on that queue (its state may have moved) */
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
/* The same for an object the catalogue does not hold: a client's output
 * kept in the journal's store from an earlier run (client.c). */
void xy_catalog_serve_id(struct xy_catalog *c, const uint8_t *id,
			 uint8_t kind, const char *path);
/* The file f now has obj (its producer succeeded, or hashing finished):
 * wakes its waiters. */
void xy_catalog_file_ready(struct xy_catalog *c, struct xy_file *f,
			   struct xy_object *obj);
/* f cannot be had: its waiters fail with INPUT_MISSING and reason. */
void xy_catalog_file_failed(struct xy_catalog *c, struct xy_file *f,
			    const char *reason);
/* f will be made again by its producer: tasks that need it must wait. */
void xy_catalog_file_reset(struct xy_catalog *c, struct xy_file *f);
/* f, an output at its path that its producer need not write again (a
 * journal's, memo.c), is hashed from there like a declared input; its
 * waiters go on once that is done. */
void xy_catalog_file_rehash(struct xy_catalog *c, struct xy_file *f);
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

/* A name for obj for people and the history: the path, URL or label of
 * one of its files, or NULL if it has none with a name. */
const char *xy_catalog_object_name(const struct xy_object *obj);

#endif
