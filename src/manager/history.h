/*
 * history.h: the run history, a sub-context of the manager. Every task,
 * transfer and worker event goes into an SQLite database in WAL mode
 * (schema in docs/history.md). Events are copied into a queue and written
 * by a thread of the history's own in batched transactions, so recording
 * never waits on the disk in the dispatch path.
 */
#ifndef XY_HISTORY_H
#define XY_HISTORY_H

#include <stddef.h>
#include <stdint.h>

struct xy_history;

/* Opens (creating if needed) the database at path and starts the writer
 * thread. Returns NULL with a reason in err. */
struct xy_history *xy_history_open(const char *path, const char *manager_name,
				   char *err, size_t errlen);
/* Writes everything queued, stops the thread, closes the database.
 * close(NULL) does nothing. */
void xy_history_close(struct xy_history *h);

/* The path it was opened with, or NULL for h NULL. */
const char *xy_history_path(const struct xy_history *h);

/* Bytes of a task's output (its tail) that the history keeps by
 * default; xy_history_set_output_max changes it (0 or less: none). */
#define XY_HISTORY_OUTPUT_DEFAULT 4096
void xy_history_set_output_max(struct xy_history *h, long max);

/* Each call copies its strings; NULL strings are stored as NULL. t is
 * seconds since the epoch. event is a short word: "submitted", "ready",
 * "dispatched", "done", "retry", "returned", "cancelled", ... output
 * (output_len bytes, may be NULL) is the task's captured stdout and
 * stderr, of which the tail is kept. */
void xy_history_task(struct xy_history *h, double t, uint64_t task_id,
		     const char *tag, const char *event, const char *worker,
		     int attempt, int result, int exit_code,
		     const char *detail, const char *output,
		     size_t output_len);
void xy_history_worker(struct xy_history *h, double t, const char *worker,
		       const char *event, const char *detail);
/* path names the file moved (its path, URL or label), NULL if unknown; the
 * transfer's kind (manager, peer, url, return) follows from source and
 * dest. */
void xy_history_transfer(struct xy_history *h, double t, const char *object,
			 const char *source, const char *dest,
			 uint64_t bytes, double seconds, const char *status,
			 const char *path);

#endif
