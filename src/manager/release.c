/*
 * release.c: RELEASEs that wait for the journal (docs/durability.md,
 * "Workers outlive their manager"). A worker keeps each output it
 * reported until the manager sends RELEASE; with a journal, the RELEASE
 * of an output brought back for a recorded task (one with a key) waits
 * until the task has ended and the record of its end (DONE, or a
 * client's ANSWER) is written: a manager killed between the two finds the
 * output still on the worker, with the kept report, and takes it back
 * instead of running the task again. Pairs with xplan.c (which asks),
 * manager.c (finish, and the write at each turn's end) and client.c.
 */
#include <stdlib.h>
#include <string.h>

#include "htab.h"
#include "internal.h"
#include "release.h"

struct rel {
	uint64_t task_id;
	struct xy_worker *w;
	uint8_t id[XY_ID_LEN];
	struct rel *next; /* in the table by task, or in the ready list */
};

struct xy_release {
	struct xy_htab waiting; /* by task id: its task has not ended */
	struct rel *ready;      /* sent after the next write */
};

static uint32_t id_hash(uint64_t id)
{
	return (uint32_t)(id ^ (id >> 32)) * 2654435761u;
}

static uint32_t rel_hash(const void *n)
{
	return id_hash(((const struct rel *)n)->task_id);
}

struct xy_release *xy_release_create(void)
{
	struct xy_release *r = calloc(1, sizeof *r);
	if (r && xy_htab_init(&r->waiting, offsetof(struct rel, next),
			      rel_hash) < 0) {
		free(r);
		return NULL;
	}
	return r;
}

void xy_release_destroy(struct xy_release *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->waiting.n_slots; i++)
		while (xy_htab_slot(&r->waiting, i)) {
			struct rel *e = xy_htab_slot(&r->waiting, i);
			xy_htab_remove(&r->waiting, e, rel_hash(e));
			free(e);
		}
	while (r->ready) {
		struct rel *e = r->ready;
		r->ready = e->next;
		free(e);
	}
	xy_htab_free(&r->waiting);
	free(r);
}

void xy_manager_release_after(struct xy_manager *m, struct xy_task *t,
			      struct xy_worker *w, const uint8_t id[XY_ID_LEN])
{
	struct rel *e;
	if (!m->memo || !t->key || !m->release ||
	    !(e = calloc(1, sizeof *e))) {
		xy_manager_release(m, w, id);
		return;
	}
	e->task_id = t->id;
	e->w = w;
	memcpy(e->id, id, XY_ID_LEN);
	xy_htab_insert(&m->release->waiting, e, id_hash(t->id));
}

void xy_release_task_done(struct xy_release *r, const struct xy_task *t)
{
	struct rel *e, *next;
	if (!r || !r->waiting.count)
		return;
	for (e = xy_htab_first(&r->waiting, id_hash(t->id)); e; e = next) {
		next = xy_htab_next(&r->waiting, e);
		if (e->task_id != t->id)
			continue;
		xy_htab_remove(&r->waiting, e, id_hash(t->id));
		e->next = r->ready;
		r->ready = e;
	}
}

void xy_release_send(struct xy_manager *m)
{
	struct xy_release *r = m->release;
	while (r && r->ready) {
		struct rel *e = r->ready;
		r->ready = e->next;
		xy_manager_release(m, e->w, e->id);
		free(e);
	}
}

void xy_release_worker_gone(struct xy_release *r, const struct xy_worker *w)
{
	struct rel **p;
	if (!r)
		return;
	for (p = &r->ready; *p;) {
		struct rel *e = *p;
		if (e->w == w) {
			*p = e->next;
			free(e);
		} else {
			p = &e->next;
		}
	}
	for (size_t i = 0; r->waiting.count && i < r->waiting.n_slots; i++) {
		struct rel *e = xy_htab_slot(&r->waiting, i), *next;
		for (; e; e = next) {
			next = e->next;
			if (e->w == w) {
				xy_htab_remove(&r->waiting, e, rel_hash(e));
				free(e);
			}
		}
	}
}
