/*
 * wtable.c: the worker table, a sub-context of the manager. It keeps one
 * record per connected worker: its resources and what is committed of
 * them, its running tasks, the objects it holds, and the free list of
 * workers with cores to spare that the scheduler walks.
 *
 * The call window: a worker may be sent up to call_window calls per core
 * beyond its free cores. Their resources are committed at dispatch like
 * any task's, so cores_used may exceed cores; the worker holds such calls
 * until a core of its own is free (tasks.c) and hands each to the next
 * idle library instance, so that a call's round trip to the manager does
 * not leave the instance waiting. Commands and GPU calls never queue.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "pools.h"
#include "log.h"
#include "memo.h"
#include "util.h"
#include "xplan.h"

/* How long a worker's failure to store an object (NO_ROOM) keeps objects
 * as large away from it: its disk may have been filled by a sandbox or
 * by evictable objects meanwhile gone. */
#define NO_ROOM_MEMORY 300.0

struct xy_wtable {
	struct xy_manager *m;
	struct xy_worker *all;
	struct xy_worker *free_head;   /* workers with free cores */
	struct xy_worker *window_head; /* with room for calls only */
	int count;
	/* Sums over the ready workers, kept by note_change. */
	int n_ready, n_busy;
	int64_t cores, cores_busy;
};

struct xy_wtable *xy_wtable_create(struct xy_manager *m)
{
	struct xy_wtable *wt = calloc(1, sizeof *wt);
	if (wt)
		wt->m = m;
	return wt;
}

static void worker_free(struct xy_worker *w)
{
	free(w->name);
	free(w->hostname);
	free(w->addr);
	free(w->xfer_host);
	free(w->held);
	free(w->libs);
	xy_xplan_worker_free(w);
	free(w);
}

void xy_wtable_destroy(struct xy_wtable *wt)
{
	if (!wt)
		return;
	for (struct xy_worker *w = wt->all, *n; w; w = n) {
		n = w->next;
		worker_free(w);
	}
	free(wt);
}

/* Cores a worker may have committed to calls: its own and its window. */
static int call_cores(const struct xy_worker *w)
{
	return w->cores + w->manager->call_window * w->cores;
}

int xy_wtable_free_cores(const struct xy_worker *w)
{
	return w->cores - w->cores_used;
}

int xy_wtable_cores_busy(const struct xy_worker *w)
{
	return w->cores_used < w->cores ? w->cores_used : w->cores;
}

/* The list a worker belongs on: free cores (FREE_CORES), room in its
 * call window only (WINDOW), or none. */
enum { NOT_FREE, FREE_CORES, WINDOW };

static struct xy_worker **list_head(struct xy_wtable *wt, int which)
{
	return which == FREE_CORES ? &wt->free_head : &wt->window_head;
}

/* What w adds to the table's sums, as last counted. */
static void count(struct xy_wtable *wt, const struct xy_worker *w, int sign)
{
	wt->n_ready += sign * w->counted.ready;
	wt->n_busy += sign * w->counted.busy;
	wt->cores += sign * w->counted.cores;
	wt->cores_busy += sign * w->counted.cores_busy;
}

/* After any change to w's readiness or what is committed on it: its
 * place on the free lists, and the table's sums. */
static void note_change(struct xy_wtable *wt, struct xy_worker *w)
{
	count(wt, w, -1);
	w->counted.ready = w->ready;
	w->counted.busy = w->ready && w->n_running > 0;
	w->counted.cores = w->ready ? w->cores : 0;
	w->counted.cores_busy = w->ready ? xy_wtable_cores_busy(w) : 0;
	count(wt, w, 1);
	int want = !w->ready ? NOT_FREE
		   : w->cores_used < w->cores ? FREE_CORES
		   : w->cores_used < call_cores(w) ? WINDOW : NOT_FREE;
	if (want == w->on_free)
		return;
	if (w->on_free) {
		if (w->fprev)
			w->fprev->fnext = w->fnext;
		else
			*list_head(wt, w->on_free) = w->fnext;
		if (w->fnext)
			w->fnext->fprev = w->fprev;
		w->fprev = w->fnext = NULL;
	}
	if (want) {
		struct xy_worker **head = list_head(wt, want);
		w->fprev = NULL;
		w->fnext = *head;
		if (*head)
			(*head)->fprev = w;
		*head = w;
	}
	w->on_free = want;
}

struct xy_worker *xy_wtable_add(struct xy_wtable *wt, struct xy_conn *c)
{
	struct xy_worker *w = calloc(1, sizeof *w);
	if (!w)
		return NULL;
	w->conn = c;
	w->manager = wt->m;
	w->addr = strdup(c ? xy_conn_peer_ip(c) : "");
	w->name = strdup(c ? xy_conn_peer(c) : "");
	w->connected_at = xy_now();
	if (!w->addr || !w->name) {
		worker_free(w);
		return NULL;
	}
	w->next = wt->all;
	if (wt->all)
		wt->all->prev = w;
	wt->all = w;
	wt->count++;
	return w;
}

static char *take(char **s)
{
	char *r = *s;
	*s = NULL;
	return r;
}

void xy_wtable_hello(struct xy_wtable *wt, struct xy_worker *w,
		     struct xy_msg_hello *h)
{
	if (h->name && *h->name) {
		free(w->name);
		w->name = take(&h->name);
	}
	w->hostname = take(&h->hostname);
	w->xfer_host = take(&h->xfer_host);
	w->xfer_port = h->xfer_port;
	w->cores = (int)h->cores;
	w->memory = (int64_t)h->memory_mb;
	w->disk = (int64_t)h->disk_mb;
	w->gpus = (int)h->gpus;
	w->ends_at = h->time_left_ms
			     ? xy_manager_now(wt->m) + h->time_left_ms / 1e3
			     : 0;
	/* What it holds is knowledge that saves fetches, not a duty: an
	 * object memory is short for goes unrecorded, as if not held. */
	uint32_t skipped = 0;
	for (uint32_t i = 0; i < h->n_items; i++) {
		struct xy_inventory_item *it = &h->items[i];
		struct xy_object *o = xy_catalog_object(wt->m->catalog, it->id,
							it->kind, it->size);
		if (!o || xy_catalog_replica_add(o, w, 1) < 0) {
			skipped++;
			continue;
		}
		if (it->level > o->level) /* never deleted below it */
			o->level = it->level;
	}
	if (skipped)
		XY_LOGW("manager", "worker %s: %u of its cached objects not "
			"recorded: the manager is out of memory", w->name,
			skipped);
	xy_wtable_ready(wt, w);
	XY_LOGI("manager", "worker %s ready: %d cores, %lld MB memory, "
		"%lld MB disk, %d gpus, %u cached objects", w->name, w->cores,
		(long long)w->memory, (long long)w->disk, w->gpus, h->n_items);
	if (h->time_left_ms)
		XY_LOGI("manager", "worker %s: %.0f s left for tasks", w->name,
			h->time_left_ms / 1e3);
	xy_history_worker(wt->m->history, xy_now(), w->name, "ready", NULL);
	xy_manager_wake(wt->m);
}

void xy_wtable_ready(struct xy_wtable *wt, struct xy_worker *w)
{
	w->greeted = 1;
	xy_memo_worker_back(wt->m->memo, w->name);
	w->ready = 1;
	w->last_busy = uv_now(&wt->m->loop);
	note_change(wt, w);
}

int xy_wtable_note_object(struct xy_worker *w, struct xy_object *o)
{
	if (w->n_held == w->cap_held) {
		uint32_t cap = w->cap_held ? 2 * w->cap_held : 8;
		struct xy_object **nh = xy__realloc(w->manager, w->held,
						    cap * sizeof *nh);
		if (!nh)
			return -1;
		w->held = nh;
		w->cap_held = cap;
	}
	w->held[w->n_held++] = o;
	return 0;
}

void xy_wtable_remove(struct xy_wtable *wt, struct xy_worker *w,
		      const char *reason)
{
	int expected = wt->m->destroying || w->leaving;
	w->ready = 0;
	note_change(wt, w);
	/* Expected after SHUTDOWN, BYE or destroy; a surprise otherwise. */
	xy_log(expected ? XY_LOG_INFO : XY_LOG_WARN, "manager",
	       "worker %s disconnected: %s", w->name, reason);
	xy_history_worker(wt->m->history, xy_now(), w->name, "disconnected",
			  reason);
	/* Replicas first, so that requeued tasks do not count on them. */
	for (uint32_t i = 0; i < w->n_held; i++)
		xy_catalog_replica_forget(w->held[i], w);
	w->n_held = 0;
	xy_xplan_worker_gone(wt->m->xplan, w);
	xy_urls_worker_gone(wt->m->urls, w);
	xy_pools_worker_gone(wt->m->pools, w);
	if (!wt->m->destroying)
		xy_catalog_copies_changed(wt->m->catalog);
	while (w->running && !wt->m->destroying) {
		struct xy_task *t = w->running;
		xy_wtable_release(wt, w, t);
		xy_manager_task_lost(wt->m, t, "its worker disconnected");
	}
	if (w->prev)
		w->prev->next = w->next;
	else
		wt->all = w->next;
	if (w->next)
		w->next->prev = w->prev;
	wt->count--;
	worker_free(w);
}

void xy_wtable_disable(struct xy_wtable *wt, struct xy_worker *w)
{
	w->ready = 0;
	w->leaving = 1;
	note_change(wt, w);
	/* A copy on its way to it is no longer one to wait for. */
	xy_catalog_copies_changed(wt->m->catalog);
}

double xy_wtable_time_left(const struct xy_worker *w)
{
	if (!w->ends_at)
		return -1;
	double left = w->ends_at - xy_manager_now(w->manager);
	return left > 0 ? left : 0;
}

int xy_wtable_has_time(const struct xy_worker *w, double limit)
{
	return !limit || !w->ends_at ||
	       xy_manager_now(w->manager) + limit + XY_TIME_MARGIN_S <=
		       w->ends_at;
}

int xy_wtable_time_fits(const struct xy_worker *w, const struct xy_task *t)
{
	return xy_wtable_has_time(w, t->time_limit);
}

int xy_wtable_fits(const struct xy_worker *w, const struct xy_task *t)
{
	if (!w->ready)
		return 0;
	if (!xy_wtable_time_fits(w, t))
		return 0;
	if (w->cores - w->cores_used < t->cores &&
	    (!t->library || t->gpus || t->cores > w->cores ||
	     call_cores(w) - w->cores_used < t->cores))
		return 0;
	if (t->gpus && w->gpus - w->gpus_used < t->gpus)
		return 0;
	if (t->memory && w->memory && w->memory - w->memory_used < t->memory)
		return 0;
	if (t->disk && w->disk && w->disk - w->disk_used < t->disk)
		return 0;
	return 1;
}

void xy_wtable_commit(struct xy_wtable *wt, struct xy_worker *w,
		      struct xy_task *t)
{
	w->cores_used += t->cores;
	w->gpus_used += t->gpus;
	w->memory_used += t->memory;
	w->disk_used += t->disk;
	w->n_running++;
	t->worker = w;
	t->qprev = NULL;
	t->qnext = w->running;
	if (w->running)
		w->running->qprev = t;
	w->running = t;
	note_change(wt, w);
}

static void reserve(struct xy_wtable *wt, struct xy_worker *w, int cores,
		    int gpus, int64_t memory, int64_t disk, int sign)
{
	w->cores_used += sign * cores;
	w->gpus_used += sign * gpus;
	w->memory_used += sign * memory;
	w->disk_used += sign * disk;
	note_change(wt, w);
}

void xy_wtable_reserve(struct xy_wtable *wt, struct xy_worker *w, int cores,
		       int gpus, int64_t memory, int64_t disk)
{
	reserve(wt, w, cores, gpus, memory, disk, 1);
}

void xy_wtable_unreserve(struct xy_wtable *wt, struct xy_worker *w,
			 int cores, int gpus, int64_t memory, int64_t disk)
{
	reserve(wt, w, cores, gpus, memory, disk, -1);
	xy_manager_wake(wt->m);
}

void xy_wtable_release(struct xy_wtable *wt, struct xy_worker *w,
		       struct xy_task *t)
{
	w->cores_used -= t->cores;
	w->gpus_used -= t->gpus;
	w->memory_used -= t->memory;
	w->disk_used -= t->disk;
	w->n_running--;
	if (t->qprev)
		t->qprev->qnext = t->qnext;
	else
		w->running = t->qnext;
	if (t->qnext)
		t->qnext->qprev = t->qprev;
	t->qprev = t->qnext = NULL;
	t->worker = NULL;
	w->last_busy = uv_now(&wt->m->loop);
	note_change(wt, w);
	xy_manager_wake(wt->m);
}

void xy_wtable_drain(struct xy_wtable *wt, struct xy_worker *w)
{
	if (w->draining)
		return;
	w->draining = 1;
	xy_wtable_disable(wt, w);
	xy_wtable_drained(wt, w);
}

void xy_wtable_drained(struct xy_wtable *wt, struct xy_worker *w)
{
	/* Its outputs come back first, and what others fetch from it. */
	if (!w->draining || w->n_running || w->retrieving || w->serving ||
	    w->told_stop || !w->conn)
		return;
	/* Then the last copies it holds of files still named go to other
	 * workers (a temp would otherwise be made again), a few at a time:
	 * each copy's end calls this again. About two tries an object, so
	 * that an heir that keeps failing cannot hold the drain forever. */
	if (w->hand_offs <= 2 * (int64_t)w->n_held + 8) {
		int n = xy_xplan_hand_off(wt->m->xplan, w);
		if (n > 0) {
			w->hand_offs += n;
			XY_LOGI("manager", "worker %s drains: %d last copies "
				"go to other workers first", w->name, n);
			return;
		}
	}
	if (xy_conn_send(w->conn, XY_MSG_SHUTDOWN, NULL) == 0) {
		w->told_stop = 1;
		XY_LOGI("manager", "worker %s drained: told to stop", w->name);
	}
}

struct xy_worker *xy_wtable_free_list(struct xy_wtable *wt)
{
	return wt->free_head;
}

struct xy_worker *xy_wtable_window_list(struct xy_wtable *wt)
{
	return wt->window_head;
}

struct xy_worker *xy_wtable_all(struct xy_wtable *wt)
{
	return wt->all;
}

int xy_wtable_count(struct xy_wtable *wt, int *busy, int64_t *cores,
		    int64_t *cores_used)
{
	if (busy)
		*busy = wt->n_busy;
	if (cores)
		*cores = wt->cores;
	if (cores_used)
		*cores_used = wt->cores_busy;
	return wt->n_ready;
}

int xy_wtable_no_room_marked(const struct xy_worker *w, double now)
{
	return w->no_room && now < w->no_room_until;
}

int xy_wtable_has_room(const struct xy_worker *w, uint64_t need, double now)
{
	if (w->disk > 0 && need > (uint64_t)w->disk << 20)
		return 0;
	return !xy_wtable_no_room_marked(w, now) || need < w->no_room;
}

void xy_wtable_mark_no_room(struct xy_worker *w, uint64_t size, double now)
{
	if (!xy_wtable_no_room_marked(w, now) || size + 1 < w->no_room) {
		XY_LOGW("manager", "%s has no room for %llu bytes: no inputs "
			"that large go to it for %.0f s", w->name,
			(unsigned long long)size, NO_ROOM_MEMORY);
		w->no_room = size + 1;
	}
	w->no_room_until = now + NO_ROOM_MEMORY;
}
