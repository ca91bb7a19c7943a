/*
 * outsync.h: syncing outputs to disk before their records (outsync.c).
 */
#ifndef XY_MANAGER_OUTSYNC_H
#define XY_MANAGER_OUTSYNC_H

/* Syncs a file, or a directory and everything under it (links not
 * followed). 0, or -1 with errno. */
int xy_outsync_tree(const char *path);
/* Syncs the directory that holds path (its entry: a rename into it). */
int xy_outsync_parent(const char *path);

#endif
