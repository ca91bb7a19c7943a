/*
 * sched.c: the scheduler, a sub-context of the manager. It holds the ready
 * queue and places ready tasks on workers.
 *
 * The ready queue is one FIFO list per distinct priority, the levels kept
 * in an array sorted by priority, highest first. Taking the next task is
 * O(1) whatever the number of queued tasks; adding a task is O(log P) for P
 * distinct priorities (O(P) when its priority is new). Placement looks only
 * at workers with free cores (or room in their call window, wtable.c) and
 * at the replicas of the task's inputs. A worker whose disk cannot hold
 * the inputs it would have to fetch is passed over while some worker's
 * can (xy_wtable_has_room, "room_anywhere").
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "util.h"

#define ASIDE_MAX 32

struct xy_sched {
	struct xy_manager *m;
	struct rq_level **levels;
	uint32_t n_levels, cap_levels;
	int64_t count;
	uint64_t gen;
	int64_t decisions;
	uint64_t decision_us;
};

struct xy_sched *xy_sched_create(struct xy_manager *m)
{
	struct xy_sched *s = calloc(1, sizeof *s);
	if (s)
		s->m = m;
	return s;
}

void xy_sched_destroy(struct xy_sched *s)
{
	if (!s)
		return;
	for (uint32_t i = 0; i < s->n_levels; i++)
		free(s->levels[i]);
	free(s->levels);
	free(s);
}

/* Index of the level with priority p, or where it would go. */
static uint32_t level_find(struct xy_sched *s, double p, int *found)
{
	uint32_t lo = 0, hi = s->n_levels;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		double q = s->levels[mid]->priority;
		if (q == p) {
			*found = 1;
			return mid;
		}
		if (q > p)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = 0;
	return lo;
}

static struct rq_level *level_get(struct xy_sched *s, double p)
{
	int found;
	uint32_t i = level_find(s, p, &found);
	if (found)
		return s->levels[i];
	if (s->n_levels == s->cap_levels) {
		uint32_t cap = s->cap_levels ? 2 * s->cap_levels : 8;
		struct rq_level **nl = realloc(s->levels, cap * sizeof *nl);
		if (!nl)
			return NULL;
		s->levels = nl;
		s->cap_levels = cap;
	}
	struct rq_level *l = calloc(1, sizeof *l);
	if (!l)
		return NULL;
	l->priority = p;
	memmove(&s->levels[i + 1], &s->levels[i],
		(s->n_levels - i) * sizeof *s->levels);
	s->levels[i] = l;
	s->n_levels++;
	return l;
}

static void level_drop_if_empty(struct xy_sched *s, struct rq_level *l)
{
	if (l->head)
		return;
	int found;
	uint32_t i = level_find(s, l->priority, &found);
	if (!found)
		return;
	memmove(&s->levels[i], &s->levels[i + 1],
		(s->n_levels - i - 1) * sizeof *s->levels);
	s->n_levels--;
	free(l);
}

static void push(struct xy_sched *s, struct xy_task *t, int front)
{
	struct rq_level *l = level_get(s, t->priority);
	if (!l)
		abort(); /* a few bytes for a new level; nothing to recover */
	t->level = l;
	if (front) {
		t->qprev = NULL;
		t->qnext = l->head;
		if (l->head)
			l->head->qprev = t;
		else
			l->tail = t;
		l->head = t;
	} else {
		t->qnext = NULL;
		t->qprev = l->tail;
		if (l->tail)
			l->tail->qnext = t;
		else
			l->head = t;
		l->tail = t;
	}
	l->count++;
	s->count++;
}

void xy_sched_push(struct xy_sched *s, struct xy_task *t)
{
	push(s, t, 0);
}

void xy_sched_push_front(struct xy_sched *s, struct xy_task *t)
{
	push(s, t, 1);
}

void xy_sched_remove(struct xy_sched *s, struct xy_task *t)
{
	struct rq_level *l = t->level;
	if (!l)
		return;
	if (t->qprev)
		t->qprev->qnext = t->qnext;
	else
		l->head = t->qnext;
	if (t->qnext)
		t->qnext->qprev = t->qprev;
	else
		l->tail = t->qprev;
	t->qprev = t->qnext = NULL;
	t->level = NULL;
	l->count--;
	s->count--;
	level_drop_if_empty(s, l);
}

struct xy_task *xy_sched_pop(struct xy_sched *s)
{
	if (!s->n_levels)
		return NULL;
	struct xy_task *t = s->levels[0]->head;
	xy_sched_remove(s, t);
	return t;
}

int64_t xy_sched_count(const struct xy_sched *s)
{
	return s->count;
}

/* Adds up, per worker, the bytes of t's inputs it holds or is fetching
 * (each input's size plus one, so that empty ones count). Returns the
 * same sum over all of t's inputs: a worker's score less than that is
 * what it still has to fetch. */
static uint64_t score_inputs(struct xy_sched *s, struct xy_task *t)
{
	uint64_t all = 0;
	for (uint32_t i = 0; i < t->n_inputs; i++) {
		struct xy_object *o = t->inputs[i].file->obj;
		if (!o)
			continue;
		all += o->size + 1;
		for (uint32_t r = 0; r < o->n_replicas; r++) {
			struct xy_worker *w = o->replicas[r].worker;
			if (w->score_gen != s->gen) {
				w->score_gen = s->gen;
				w->score = 0;
			}
			w->score += o->size + 1;
		}
	}
	return all;
}

/* The bytes of t's inputs (all of them: all) that w would have to fetch. */
static uint64_t to_fetch(const struct xy_sched *s, const struct xy_worker *w,
			 uint64_t all)
{
	return all - (w->score_gen == s->gen ? w->score : 0);
}

/* True if w could run t once idle: its totals, not what is free now. */
static int could_run(const struct xy_worker *w, const struct xy_task *t)
{
	return w->ready && w->cores >= t->cores && w->gpus >= t->gpus &&
	       (!t->memory || !w->memory || w->memory >= t->memory) &&
	       (!t->disk || !w->disk || w->disk >= t->disk);
}

/* True if some worker that could run t has room for the inputs it would
 * fetch. A walk over every worker, made only when a free one has no room
 * (rare: a disk declared small, or full lately). */
static int room_anywhere(const struct xy_sched *s, const struct xy_task *t,
			 uint64_t all, double now)
{
	for (struct xy_worker *w = xy_wtable_all(s->m->wtable); w;
	     w = w->next)
		if (could_run(w, t) &&
		    xy_wtable_has_room(w, to_fetch(s, w, all), now))
			return 1;
	return 0;
}

/* True if a worker with (score, free cores) is a better place for t than
 * the best so far. A worker where t can start now beats one where a call
 * would wait in its window (free cores short), whatever it holds; then
 * the most bytes of t's inputs held; then the most free cores. */
static int better(const struct xy_task *t, uint64_t score, int free_cores,
		  uint64_t best_score, int best_free)
{
	int now = free_cores >= t->cores, best_now = best_free >= t->cores;
	if (now != best_now)
		return now;
	if (score != best_score)
		return score > best_score;
	return free_cores > best_free;
}

struct xy_worker *xy_sched_choose(struct xy_sched *s, struct xy_task *t)
{
	s->gen++;
	uint64_t all = t->n_inputs ? score_inputs(s, t) : 0;
	double now = t->n_inputs ? xy_now() : 0;
	struct xy_worker *best = NULL, *cramped = NULL;
	uint64_t best_score = 0, cramped_score = 0;
	int best_free = 0;
	for (struct xy_worker *w = xy_wtable_free_list(s->m->wtable); w;
	     w = w->fnext) {
		if (!xy_wtable_fits(w, t))
			continue;
		uint64_t score = w->score_gen == s->gen ? w->score : 0;
		if (!xy_wtable_has_room(w, all - score, now)) {
			if (!cramped || score > cramped_score) {
				cramped = w;
				cramped_score = score;
			}
			continue;
		}
		int free_cores = xy_wtable_free_cores(w);
		if (!best ||
		    better(t, score, free_cores, best_score, best_free)) {
			best = w;
			best_score = score;
			best_free = free_cores;
		}
	}
	/* A worker without room only if no worker could ever give t room:
	 * then one is as good a try as another, and a fetch that finds the
	 * disk full costs t one of its bounded worker failures (manager.c)
	 * rather than leaving it queued for ever. */
	if (!best && cramped && !room_anywhere(s, t, all, now))
		best = cramped;
	return best;
}

void xy_sched_stats(const struct xy_sched *s, int64_t *decisions,
		    double *seconds)
{
	*decisions = s->decisions;
	*seconds = s->decision_us / 1e6;
}

int xy_sched_round(struct xy_sched *s)
{
	struct xy_task *aside[ASIDE_MAX];
	int n_aside = 0, placed = 0;
	uint64_t t0 = xy_mono_us();
	while (n_aside < ASIDE_MAX && xy_wtable_free_list(s->m->wtable)) {
		struct xy_task *t = xy_sched_pop(s);
		if (!t)
			break;
		struct xy_worker *w = xy_sched_choose(s, t);
		int staged = w ? xy_xplan_can_stage(s->m->xplan, t, w) : 0;
		if (staged > 0) {
			xy_xplan_stage(s->m->xplan, t, w);
			xy_manager_task_dispatch(s->m, t, w);
			placed++;
		} else if (staged < 0) {
			xy_manager_task_requeue(s->m, t, NULL);
		} else {
			aside[n_aside++] = t;
		}
	}
	/* Back at the head, in their order, so that the next round sees
	 * them first again. */
	while (n_aside > 0)
		xy_sched_push_front(s, aside[--n_aside]);
	s->decisions += placed;
	s->decision_us += xy_mono_us() - t0;
	return placed;
}
