/*
 * cache.h: the worker's content-addressed cache. An object lives under its
 * hex SHA-256 id in <root>/objects/, or in <root>/forever/ when its cache
 * level is FOREVER; <root>/tmp/ receives fetches in progress and
 * <root>/sandbox/ holds the tasks' sandboxes; <root>/unpacked/ holds the
 * expansions of archive objects (unpack.c), each removed with its
 * archive (a directory dropped is moved into tmp/ and removed on the
 * thread pool). The table of objects is guarded by a mutex so the
 * transfer server's threads can look objects up (xy_cache_lookup, an
 * xy_xfer_lookup_fn); every other function is called from the worker's
 * loop thread. Pairs with fetch.c (objects arriving), tasks.c (inputs
 * referenced by running tasks, outputs adopted) and xfer.h (objects
 * served).
 *
 * Layout at open and close: objects/, sandbox/, tmp/ and unpacked/ are
 * emptied; forever/ is kept and its objects are listed (xy_cache_inventory). A cache
 * opened without a directory lives in a fresh directory under $TMPDIR (or
 * /tmp) that is removed at close.
 */
#ifndef XY_CACHE_H
#define XY_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "proto.h"

struct xy_cache;

struct xy_cache_info {
	uint8_t kind;   /* XY_KIND_FILE or XY_KIND_DIR */
	uint8_t level;  /* xy_cache_level */
	uint64_t size;  /* stream size */
	uint32_t refs;  /* running tasks that use it */
};

/* Opens the cache in dir, creating it if needed, or in a fresh temporary
 * directory if dir is NULL. A directory given here persists; only one
 * worker may hold it at a time (a lock file). Returns NULL with errno set
 * and a reason in err. The caller owns the cache. */
struct xy_cache *xy_cache_open(const char *dir, char *err, size_t errlen);

/* From now on, directories the cache drops (expansions, directory
 * objects) are renamed into tmp/ and removed on loop's thread pool, never
 * on the loop itself; without a loop they are removed at once. The loop
 * must run dry before the cache is closed. */
void xy_cache_set_loop(struct xy_cache *c, uv_loop_t *loop);

/* Empties objects/, sandbox/ and tmp/, removes a temporary root, and frees
 * the cache. close(NULL) does nothing. */
void xy_cache_close(struct xy_cache *c);

/* Absolute paths of the root and of its tmp/ and sandbox/ directories;
 * owned by the cache. */
const char *xy_cache_root(const struct xy_cache *c);
const char *xy_cache_tmp(const struct xy_cache *c);
const char *xy_cache_sandboxes(const struct xy_cache *c);

/* Writes the path an object of this id and level has in the cache.
 * Returns -1 (ENAMETOOLONG) if it does not fit in len. */
int xy_cache_path(const struct xy_cache *c, const uint8_t id[XY_ID_LEN],
		  uint8_t level, char *out, size_t len);

/* Writes where the expansion of archive object id lives (or will):
 * <root>/unpacked/<hex id>. The cache removes it whenever it drops the
 * archive (unlink, eviction, close); it is not counted in the budget.
 * Returns -1 (ENAMETOOLONG) if it does not fit in len. */
int xy_cache_unpacked_path(const struct xy_cache *c,
			   const uint8_t id[XY_ID_LEN], char *out, size_t len);

/* The transfer server's lookup: arg is the cache. Writes the path and kind
 * of a whole cached object and returns 0, or returns -1 if it is not
 * cached. Thread-safe. */
int xy_cache_lookup(void *arg, const uint8_t id[XY_ID_LEN], char *path,
		    size_t pathlen, uint8_t *kind);

/* 0 and *info filled (info may be NULL) if the object is cached, else -1.
 * Thread-safe. */
int xy_cache_find(struct xy_cache *c, const uint8_t id[XY_ID_LEN],
		  struct xy_cache_info *info);

/* Records an object already at xy_cache_path(id, level). If it is cached
 * already, its level is raised to level if that is higher (moving it into
 * forever/ if need be). Returns -1 with errno on failure. */
int xy_cache_insert(struct xy_cache *c, const uint8_t id[XY_ID_LEN],
		    uint8_t kind, uint8_t level, uint64_t size);

/* Moves the object at src (a finished fetch in tmp/, or a task's output
 * already made read-only) into the cache under id and records it. If the
 * object is cached already, src is removed instead. src must be on the
 * cache's file system. Returns 0, or -1 with errno and a reason in err
 * (src is then left where it was). */
int xy_cache_adopt(struct xy_cache *c, const char *src,
		   const uint8_t id[XY_ID_LEN], uint8_t kind, uint8_t level,
		   uint64_t size, char *err, size_t errlen);

/* Reference counts held by running tasks. incref returns -1 (ENOENT) if
 * the object is not cached. decref drops the object when its count reaches
 * zero and it is of level TASK or an unlink is pending. */
/* An output reported to the manager is held (a reference, so never
 * evicted) until the manager has brought its copy back and sends
 * RELEASE: evicting it first would cost its task a rerun. */
int xy_cache_hold_output(struct xy_cache *c, const uint8_t id[XY_ID_LEN]);
void xy_cache_release_output(struct xy_cache *c, const uint8_t id[XY_ID_LEN]);
int xy_cache_incref(struct xy_cache *c, const uint8_t id[XY_ID_LEN]);
void xy_cache_decref(struct xy_cache *c, const uint8_t id[XY_ID_LEN]);

/* Deletes an object. Returns 0 if it was deleted now, 1 if running tasks
 * use it (it goes when the last of them decrefs), -1 (ENOENT) if it is not
 * cached. */
int xy_cache_unlink(struct xy_cache *c, const uint8_t id[XY_ID_LEN]);

/* Eviction: once the objects' sizes (and the fetches reserved) add up to
 * more than the budget, each insert (a fetch or an adoption included)
 * and each reservation drops unreferenced objects,
 * least recently used first (a lookup, incref or insert is a use), until
 * the cache fits or only referenced objects and the one just inserted are
 * left. Objects of any level go, FOREVER ones included. fn (may be NULL)
 * is called on the loop thread after each eviction, the object gone from
 * the table and the disk. */
typedef void (*xy_cache_evict_fn)(void *arg, const uint8_t id[XY_ID_LEN],
				  uint8_t kind, uint64_t size);

/* Sets the budget in bytes (0: none, the default) and the callback. */
void xy_cache_set_budget(struct xy_cache *c, uint64_t bytes,
			 xy_cache_evict_fn fn, void *arg);

/* A fetch of size bytes is about to be received into tmp/: the bytes
 * count against the budget until unreserve (called before the fetch is
 * adopted, or when it fails), and objects are evicted now, as after an
 * insert, until the cache and every reservation fit. Evicting only once
 * the fetch has landed would be too late when the budget is the whole
 * disk: the fetch would find the disk full. Returns the bytes reserved,
 * for unreserve: size, or 0 for a fetch larger than the whole budget,
 * which reserves and evicts nothing (emptying the cache would not make it
 * fit, and counting it would empty the cache at the next insert). */
uint64_t xy_cache_reserve(struct xy_cache *c, uint64_t size);
void xy_cache_unreserve(struct xy_cache *c, uint64_t size);

/* Sum of the cached objects' sizes. */
uint64_t xy_cache_bytes(struct xy_cache *c);

/* Number of cached objects. */
size_t xy_cache_count(struct xy_cache *c);

/* The objects of level FOREVER, for HELLO: a malloc'd array of *n items
 * that the caller frees (NULL when *n is 0). Returns -1 on ENOMEM. */
int xy_cache_inventory(struct xy_cache *c, struct xy_inventory_item **items,
		       uint32_t *n);
/* The same for the objects of level at least level: a worker back to its
 * manager after losing it lists its workflow's objects too (a temp the
 * manager's journal knows; docs/durability.md, "Temps at a restart"). */
int xy_cache_inventory_from(struct xy_cache *c, int level,
			    struct xy_inventory_item **items, uint32_t *n);

/* Objects lent to tasks (guard.h). A task's file inputs are hard links
 * to the cache's inodes and its directory inputs symbolic links to the
 * cache's directories; a task that runs as root, or that chmods them
 * first, can write to them. So what is lent is fingerprinted when first
 * lent and checked before each loan and after each task that had it. */
enum { XY_CACHE_OBJECT = 0, XY_CACHE_EXPANSION = 1 };

/* Checks part (the object, or its archive expansion) of object id
 * against its fingerprint, recorded when the object was inserted (an
 * object found in forever/ at open, and an expansion: at the first
 * check). A difference in
 * an object is settled by hashing it again: the same content (only its
 * metadata moved: a rename, a link, a chmod) is made read-only again and
 * recorded anew. Returns 0 if intact, 1 if altered (err says how), -1
 * (ENOENT) if not cached. Runs on the loop; a rehash blocks it. */
int xy_cache_guard(struct xy_cache *c, const uint8_t id[XY_ID_LEN],
		   int part, char *err, size_t errlen);

/* 1 if part of object id has been checked by xy_cache_guard and found
 * intact at least once, else 0. */
int xy_cache_guarded(struct xy_cache *c, const uint8_t id[XY_ID_LEN],
		     int part);

/* After the worker's own link or unlink of file object id (either sets
 * its ctime): records its fingerprint again, if nothing but its ctime
 * differs from the one recorded. */
void xy_cache_reseal(struct xy_cache *c, const uint8_t id[XY_ID_LEN]);

/* Drops object id (and its expansion) now, whoever references it: a task
 * altered it. Reported through the eviction callback, as an eviction is,
 * so the manager forgets this copy. why goes in the log. */
void xy_cache_drop_altered(struct xy_cache *c, const uint8_t id[XY_ID_LEN],
			   const char *why);

#endif
