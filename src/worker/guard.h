/*
 * guard.h: fingerprints of what the worker lends its tasks, so that a task
 * that alters a cached object it was given as an input is caught. A task
 * sees its file inputs as hard links to the cache's own inodes and its
 * directory inputs (and archive expansions) as symbolic links to the
 * cache's directories; permission bits (0444, 0555) stop a task of
 * another account, but not one that runs as root or that chmods the
 * file first (the worker's own user owns it). What no task can forge is
 * an inode's ctime: every write, truncation, chmod, utimensat, link or
 * rename sets it to the current time. A fingerprint is a keyed 64-bit
 * digest of (name, inode, type, mode, size, mtime, ctime) over the object
 * (a file: its inode; a directory: itself and every entry under it,
 * symbolic links not followed), summed over the entries so that the order
 * readdir gives does not matter. The cache records one when an object is
 * first lent (cache.h, xy_cache_guard) and compares it before each loan
 * and after each task that had the object; docs/security.md says why and
 * what it does not cover. Pairs with cache.c (where prints are kept) and
 * tasks.c (when they are checked).
 */
#ifndef XY_GUARD_H
#define XY_GUARD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

/* The fingerprints of the file or directory at path under key: print[0]
 * of all the above, print[1] of all but ctime (which the worker's own
 * link or unlink of a file moves; cache.c, xy_cache_reseal). Returns 0,
 * or -1 with errno and a reason in err (a path that is gone, a directory
 * deeper than XY_GUARD_MAX_DEPTH, an unreadable directory). Counts the
 * inodes visited into *n when n is not NULL. */
#define XY_GUARD_MAX_DEPTH 256
int xy_guard_print(const char *path, uint64_t key, uint64_t print[2],
		   uint64_t *n, char *err, size_t errlen);

/* Removes the sandbox's name for a file input, walking its parents
 * without following a symbolic link (the task may have put one there),
 * and only if it is still the inode st names (the task may have put
 * another file there). Returns 0 if it was removed, -1 otherwise. */
int xy_guard_unlink(const char *sandbox, const char *name,
		    const struct stat *st);

#endif
