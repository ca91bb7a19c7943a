/*
 * worker.h: the worker daemon's entry point, called by `xylem worker`.
 */
#ifndef XY_WORKER_H
#define XY_WORKER_H

/* Parses the `xylem worker` arguments (argv[0] is "worker") and runs the
 * worker until the manager shuts it down, it is signalled, or it cannot
 * reach the manager. Returns the process exit status. */
int xy_worker_main(int argc, char **argv);

#endif
