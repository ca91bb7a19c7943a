/*
 * progress.h: the progress line of `xylem run`. On a terminal, one line on
 * stderr rewritten in place at most ten times a second; elsewhere (a log
 * file, a CI job), a plain line every five seconds once a run has lasted
 * that long, so short runs print nothing. Pairs with run.c.
 */
#ifndef XY_PROGRESS_H
#define XY_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

struct xy_progress {
	FILE *out;
	int tty;         /* rewrite one line with \r */
	int enabled;     /* 0: print nothing (--quiet) */
	int shown;       /* a tty line is on screen */
	double start;    /* seconds, monotonic */
	double last;     /* when the last line was printed */
};

/* Counts shown by one update. */
struct xy_progress_counts {
	int64_t done, total, running, failed;
};

/* Starts the clock. out is normally stderr; enabled 0 silences it. */
void xy_progress_init(struct xy_progress *p, FILE *out, int enabled);
/* Shows counts if enough time has passed since the last line (or always
 * if force). */
void xy_progress_update(struct xy_progress *p,
			const struct xy_progress_counts *c, int force);
/* Shows m's task counts (xy_manager_stats) against total, as
 * xy_progress_update does: for a command that waits on one manager
 * without counting its tasks itself (xylem cwl). */
struct xy_manager;
void xy_progress_manager(struct xy_progress *p, const struct xy_manager *m,
			 int64_t total, int force);
/* Erases the terminal line, so that later output starts clean. */
void xy_progress_clear(struct xy_progress *p);
/* Seconds since xy_progress_init. */
double xy_progress_elapsed(const struct xy_progress *p);

#endif
