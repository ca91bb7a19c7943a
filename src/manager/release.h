/*
 * release.h: RELEASEs that wait for the journal's record of their task's
 * end (release.c). A sub-context of the manager, with its own create and
 * destroy.
 */
#ifndef XY_MANAGER_RELEASE_H
#define XY_MANAGER_RELEASE_H

#include <stdint.h>

struct xy_manager;
struct xy_task;
struct xy_worker;
struct xy_release;

/* NULL on ENOMEM. */
struct xy_release *xy_release_create(void);
void xy_release_destroy(struct xy_release *r);
/* t's output id is back from w: RELEASE it now, or, for a recorded task
 * with a journal, once t has ended and its record is written. */
void xy_manager_release_after(struct xy_manager *m, struct xy_task *t,
			      struct xy_worker *w, const uint8_t id[32]);
/* t has ended and the record of its end is appended: its RELEASEs go
 * after the next write (xy_release_send). */
void xy_release_task_done(struct xy_release *r, const struct xy_task *t);
/* After the journal's write: sends the RELEASEs that waited for it. */
void xy_release_send(struct xy_manager *m);
/* w is gone: nothing more is sent to it. */
void xy_release_worker_gone(struct xy_release *r, const struct xy_worker *w);

#endif
