/*
 * status_history.h: `xylem status` over a run's history
 * (status_history.c): tasks listed with filters, or one task's events and
 * output. Pairs with status.c.
 */
#ifndef XY_CLI_STATUS_HISTORY_H
#define XY_CLI_STATUS_HISTORY_H

struct xy_status_filter {
	const char *state;  /* waiting, running, succeeded, failed, done */
	const char *tag;    /* the task's tag (workflow task, function) */
	const char *worker; /* the worker that ran it last */
	long long limit;    /* rows shown; 0 or less: all */
	long long run;      /* the run in the file; 0: its last */
};

/* Prints the tasks of the history at path that f selects, or, with task
 * (an id or a tag), that task's events and the tail of its output.
 * Returns a process exit status (cli.h). */
int xy_status_history(const char *path, const char *task,
		      const struct xy_status_filter *f);

#endif
