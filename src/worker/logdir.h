/*
 * logdir.h: `xylem worker --log-dir DIR` (logdir.c): the worker's own log
 * and each library instance's output kept in files under DIR, which
 * outlive the worker, where without it the instance's output is kept only
 * as a tail in memory and the worker's log goes to stderr.
 */
#ifndef XY_WORKER_LOGDIR_H
#define XY_WORKER_LOGDIR_H

#include <stddef.h>
#include <stdint.h>

/* Opens DIR/KIND-NAME-PID-N.log for appending (close-on-exec), PID this
 * process's, and returns its descriptor; 0 (no file) for dir NULL or on
 * failure, which is logged once. */
int xy_logdir_open(const char *dir, const char *kind, const char *name,
		   uint64_t n);
/* Makes dir (and its parents) and sends this process's stderr, where its
 * log goes, to DIR/worker-NAME-PID.log (worker-PID.log for name NULL). Returns 0, or -1 with a reason in
 * err. */
int xy_logdir_redirect(const char *dir, const char *name, char *err,
		       size_t errlen);

#endif
