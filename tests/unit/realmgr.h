/*
 * realmgr.h: a real manager on loopback and real workers for it, for the
 * unit tests that run tasks end to end (test_lineage.c, test_oom.c). A
 * worker is the test program itself run again as `--as-worker worker
 * ...` (harness.c), started with exec so that none of the manager's
 * threads or locks are carried into it.
 */
#ifndef XY_TEST_REALMGR_H
#define XY_TEST_REALMGR_H

#include <sys/types.h>

struct xy_manager;

/* A manager on 127.0.0.1 with the shared secret secret; fails the test
 * if it cannot be made. */
struct xy_manager *rm_manager(const char *secret);
/* Starts a worker named name with one core for m; returns its pid. */
pid_t rm_start_worker(struct xy_manager *m, const char *secret,
		      const char *name);
/* Runs m until exactly n workers are connected (waiting for more to
 * come, or for some to go); fails the test after 20 s. */
void rm_await_workers(struct xy_manager *m, int n);
/* The first 4 KiB of a file, in a static buffer; NULL if unreadable. */
char *rm_slurp(const char *path);

#endif
