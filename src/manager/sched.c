/*
 * sched.c: the scheduler, a sub-context of the manager (scheduler.h: not
 * sched.h, which would hide the system header of that name). It holds the
 * ready queue and places ready tasks on workers.
 *
 * The ready queue is grouped by shape: the cores and GPUs a task asks
 * for, whether it is a call (calls may wait in a worker's call window,
 * commands need free cores), and the classes of its memory and disk (the
 * power of two at or above each), so that tasks that each ask for their
 * own amount of memory share a few shapes rather than make one each.
 * Shapes are found by a hash of those. Within a shape, one FIFO list per
 * distinct priority, the levels sorted highest first. The shapes with
 * tasks sit in a binary heap ordered by their first task (highest
 * priority, then first queued, by a sequence number given at push), so
 * the task that runs first of all is at the top whatever its shape.
 *
 * A round takes tasks from the top. When no free worker fits a task, its
 * whole shape is set aside (parked) for the rest of the round, so a
 * thousand GPU tasks ahead of a one-core task cost one check, not a
 * thousand: a round looks at each shape at most once to park it. A task
 * that fits but cannot be staged now (the planner's limits, or no room)
 * is set aside alone, at most ASIDE_MAX a shape, and goes back to the
 * head of its level at the end of the round. Adding a task is O(log P)
 * for P priorities of its shape; a shape or a level is freed when it
 * empties. Placement looks only at workers with free cores (or room in
 * their call window, wtable.c) and at the replicas of the task's inputs.
 * A worker whose disk cannot hold the inputs it would have to fetch is
 * passed over while some worker's can (xy_wtable_has_room,
 * "room_anywhere").
 */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "htab.h"
#include "internal.h"
#include "util.h"

#define ASIDE_MAX 32
#define NOT_IN_HEAP UINT32_MAX

/* Tasks that fit about the same workers: the cores and GPUs they ask
 * for, call or command, and the classes of their memory, disk and time
 * limit (the power of two at or above it, in MB or seconds; 0 for none),
 * so that tasks that ask for memory each by its own measure do not make
 * a shape each. The time limit is in the key, not beside it: a round
 * parks a whole shape when its first task fits no free worker, and a
 * task of a day must not hold up those of a minute behind it when only
 * workers near their walltime are free. */
struct shape {
	int cores, gpus, call;
	int mem_class, disk_class, time_class;
	uint32_t hash;
	struct shape *hnext;  /* the shapes' hash table */
	struct shape *pnext;  /* the shapes parked in this round */
	struct rq_level **levels; /* highest priority first */
	uint32_t n_levels, cap_levels;
	int64_t count;
	int64_t calls; /* the calls its tasks stand for (batches: more) */
	int64_t memory, disk; /* the most any of its tasks asked for */
	double time_limit;    /* the same, in seconds */
	uint64_t id;          /* never reused (xy_sched_demand) */
	uint32_t heap_at;  /* its index in the heap, or NOT_IN_HEAP */
	int parked;        /* out of the heap for this round: no free worker
			    * fits its tasks, or ASIDE_MAX were set aside */
	int n_aside;       /* tasks set aside in round aside_round */
	uint64_t aside_round;
};

struct rq_level {
	double priority;
	struct shape *shape;
	struct xy_task *head, *tail;
	int64_t count;
};

struct xy_sched {
	struct xy_manager *m;
	struct xy_sched_ops ops;
	struct xy_htab shapes; /* every shape with tasks, by hash */
	struct shape **heap;   /* the same but those parked, by first task */
	uint32_t n_heap, cap_heap;
	struct shape *parked;  /* set aside for this round, through pnext */
	int64_t count;
	uint64_t seq;    /* the last sequence number given */
	uint64_t gen;    /* scoring generation (score_inputs) */
	uint64_t round;  /* rounds begun */
	uint64_t shape_ids; /* the last shape id given */
	int64_t decisions;
	uint64_t decision_us; /* in rounds, less send_us */
	uint64_t send_us;     /* in ops.dispatch */
};

static int real_can_stage(void *arg, struct xy_task *t, struct xy_worker *w)
{
	struct xy_manager *m = arg;
	return xy_xplan_can_stage(m->xplan, t, w);
}

static void real_dispatch(void *arg, struct xy_task *t, struct xy_worker *w)
{
	xy_manager_task_dispatch(arg, t, w);
}

static void real_requeue(void *arg, struct xy_task *t)
{
	xy_manager_task_requeue(arg, t, NULL);
}

static uint32_t shape_hash(const void *node)
{
	return ((const struct shape *)node)->hash;
}

struct xy_sched *xy_sched_create(struct xy_manager *m)
{
	struct xy_sched *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	if (xy_htab_init(&s->shapes, offsetof(struct shape, hnext),
			 shape_hash) < 0) {
		free(s);
		return NULL;
	}
	s->m = m;
	s->ops = (struct xy_sched_ops){real_can_stage, real_dispatch,
				       real_requeue, m};
	return s;
}

static void shape_free(struct shape *sh)
{
	for (uint32_t i = 0; i < sh->n_levels; i++)
		free(sh->levels[i]);
	free(sh->levels);
	free(sh);
}

void xy_sched_destroy(struct xy_sched *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->shapes.n_slots; i++)
		for (struct shape *sh = xy_htab_slot(&s->shapes, i), *n; sh;
		     sh = n) {
			n = sh->hnext;
			shape_free(sh);
		}
	xy_htab_free(&s->shapes);
	free(s->heap);
	free(s);
}

void xy_sched_set_ops(struct xy_sched *s, const struct xy_sched_ops *ops)
{
	s->ops = *ops;
}

/* ------------------------------------------------------------- the heap */

/* The first task of a shape with tasks. */
static const struct xy_task *first(const struct shape *sh)
{
	return sh->levels[0]->head;
}

/* True if shape a's first task runs before b's. */
static int before(const struct shape *a, const struct shape *b)
{
	const struct xy_task *x = first(a), *y = first(b);
	if (x->priority != y->priority)
		return x->priority > y->priority;
	return x->qseq < y->qseq;
}

static void heap_set(struct xy_sched *s, uint32_t i, struct shape *sh)
{
	s->heap[i] = sh;
	sh->heap_at = i;
}

static void sift_up(struct xy_sched *s, uint32_t i)
{
	struct shape *sh = s->heap[i];
	while (i > 0) {
		uint32_t up = (i - 1) / 2;
		if (!before(sh, s->heap[up]))
			break;
		heap_set(s, i, s->heap[up]);
		i = up;
	}
	heap_set(s, i, sh);
}

static void sift_down(struct xy_sched *s, uint32_t i)
{
	struct shape *sh = s->heap[i];
	for (;;) {
		uint32_t c = 2 * i + 1;
		if (c >= s->n_heap)
			break;
		if (c + 1 < s->n_heap && before(s->heap[c + 1], s->heap[c]))
			c++;
		if (!before(s->heap[c], sh))
			break;
		heap_set(s, i, s->heap[c]);
		i = c;
	}
	heap_set(s, i, sh);
}

/* The heap has room for every shape (shape_get grows it). */
static void heap_insert(struct xy_sched *s, struct shape *sh)
{
	heap_set(s, s->n_heap++, sh);
	sift_up(s, sh->heap_at);
}

static void heap_delete(struct xy_sched *s, struct shape *sh)
{
	uint32_t i = sh->heap_at;
	struct shape *last = s->heap[--s->n_heap];
	sh->heap_at = NOT_IN_HEAP;
	if (last == sh)
		return;
	heap_set(s, i, last);
	sift_up(s, i);
	sift_down(s, last->heap_at);
}

/* sh's first task changed: its place in the heap, if it has one. */
static void heap_fix(struct xy_sched *s, struct shape *sh)
{
	if (sh->heap_at == NOT_IN_HEAP)
		return;
	sift_up(s, sh->heap_at);
	sift_down(s, sh->heap_at);
}

/* ------------------------------------------------------------ the shapes */

/* The power of two at or above v, as its exponent plus one; 0 for 0. */
static int size_class(int64_t v)
{
	int c = 1;
	if (v <= 0)
		return 0;
	for (uint64_t p = 1; p < (uint64_t)v && c < 64; p <<= 1)
		c++;
	return c;
}

/* A shape as t would have it (its key fields only). */
static struct shape key_of(const struct xy_task *t)
{
	struct shape k = {.cores = t->cores, .gpus = t->gpus,
			  .call = t->library != NULL,
			  .mem_class = size_class(t->memory),
			  .disk_class = size_class(t->disk),
			  .time_class = size_class((int64_t)ceil(t->time_limit))};
	k.hash = ((uint32_t)k.cores * 2654435761u) ^
		 ((uint32_t)k.gpus * 40503u) ^ ((uint32_t)k.call << 31) ^
		 ((uint32_t)k.mem_class << 8) ^ ((uint32_t)k.disk_class << 16) ^
		 ((uint32_t)k.time_class << 24);
	return k;
}

static int same_key(const struct shape *a, const struct shape *b)
{
	return a->cores == b->cores && a->gpus == b->gpus &&
	       a->call == b->call && a->mem_class == b->mem_class &&
	       a->disk_class == b->disk_class &&
	       a->time_class == b->time_class;
}

/* t's shape, made if new: O(1), whatever the number of shapes. */
static struct shape *shape_get(struct xy_sched *s, const struct xy_task *t)
{
	struct shape k = key_of(t);
	for (struct shape *sh = xy_htab_first(&s->shapes, k.hash); sh;
	     sh = sh->hnext)
		if (same_key(sh, &k))
			return sh;
	if (s->shapes.count == s->cap_heap) {
		uint32_t cap = s->cap_heap ? 2 * s->cap_heap : 8;
		struct shape **nh = realloc(s->heap, cap * sizeof *nh);
		if (!nh)
			return NULL;
		s->heap = nh;
		s->cap_heap = cap;
	}
	struct shape *sh = calloc(1, sizeof *sh);
	if (!sh)
		return NULL;
	*sh = k;
	sh->heap_at = NOT_IN_HEAP;
	sh->id = ++s->shape_ids;
	xy_htab_insert(&s->shapes, sh, sh->hash);
	return sh;
}

/* An empty shape goes; one parked in this round stays until its end. */
static void shape_drop(struct xy_sched *s, struct shape *sh)
{
	if (sh->parked)
		return;
	if (sh->heap_at != NOT_IN_HEAP)
		heap_delete(s, sh);
	xy_htab_remove(&s->shapes, sh, sh->hash);
	shape_free(sh);
}

/* Index of sh's level with priority p, or where it would go. */
static uint32_t level_find(const struct shape *sh, double p, int *found)
{
	uint32_t lo = 0, hi = sh->n_levels;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		double q = sh->levels[mid]->priority;
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

static struct rq_level *level_get(struct shape *sh, double p)
{
	int found;
	uint32_t i = level_find(sh, p, &found);
	if (found)
		return sh->levels[i];
	if (sh->n_levels == sh->cap_levels) {
		uint32_t cap = sh->cap_levels ? 2 * sh->cap_levels : 4;
		struct rq_level **nl = realloc(sh->levels, cap * sizeof *nl);
		if (!nl)
			return NULL;
		sh->levels = nl;
		sh->cap_levels = cap;
	}
	struct rq_level *l = calloc(1, sizeof *l);
	if (!l)
		return NULL;
	l->priority = p;
	l->shape = sh;
	memmove(&sh->levels[i + 1], &sh->levels[i],
		(sh->n_levels - i) * sizeof *sh->levels);
	sh->levels[i] = l;
	sh->n_levels++;
	return l;
}

static void level_drop(struct shape *sh, struct rq_level *l)
{
	int found;
	uint32_t i = level_find(sh, l->priority, &found);
	if (!found)
		return;
	memmove(&sh->levels[i], &sh->levels[i + 1],
		(sh->n_levels - i - 1) * sizeof *sh->levels);
	sh->n_levels--;
	free(l);
}

/* ------------------------------------------------------------- the queue */

/* What sh must be sized by once t is among its tasks: the most memory,
 * disk and time any of them asks (a shape spans a power of two of each). */
static void widen(struct shape *sh, const struct xy_task *t)
{
	if (t->memory > sh->memory)
		sh->memory = t->memory;
	if (t->disk > sh->disk)
		sh->disk = t->disk;
	if (t->time_limit > sh->time_limit)
		sh->time_limit = t->time_limit;
}

/* The calls t stands for in the demand: a batch of calls, its calls;
 * anything else, one. */
static int64_t task_calls(const struct xy_task *t)
{
	return t->calls > 1 ? t->calls : 1;
}

/* Queues t at the front or the back of its level. At the front, t keeps
 * the sequence number it had, so that a task set aside in a round is
 * still the first of its shape. A shape set aside in this round goes
 * back into the heap at the round's end, not here. */
static int push(struct xy_sched *s, struct xy_task *t, int front)
{
	struct shape *sh = shape_get(s, t);
	struct rq_level *l = sh ? level_get(sh, t->priority) : NULL;
	if (!l) {
		if (sh && !sh->count)
			shape_drop(s, sh);
		errno = ENOMEM;
		return -1;
	}
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
		t->qseq = ++s->seq;
		t->qnext = NULL;
		t->qprev = l->tail;
		if (l->tail)
			l->tail->qnext = t;
		else
			l->head = t;
		l->tail = t;
	}
	l->count++;
	sh->count++;
	sh->calls += task_calls(t);
	widen(sh, t);
	s->count++;
	if (sh->heap_at == NOT_IN_HEAP) {
		if (!sh->parked)
			heap_insert(s, sh);
	} else if (l->head == t) {
		heap_fix(s, sh);
	}
	return 0;
}

int xy_sched_push(struct xy_sched *s, struct xy_task *t)
{
	return push(s, t, 0);
}

void xy_sched_remove(struct xy_sched *s, struct xy_task *t)
{
	struct rq_level *l = t->level;
	if (!l)
		return;
	struct shape *sh = l->shape;
	int was_first = l == sh->levels[0] && l->head == t;
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
	sh->count--;
	sh->calls -= task_calls(t);
	s->count--;
	if (!l->head)
		level_drop(sh, l);
	if (!sh->count)
		shape_drop(s, sh);
	else if (was_first)
		heap_fix(s, sh);
}

struct xy_task *xy_sched_pop(struct xy_sched *s)
{
	if (!s->n_heap)
		return NULL;
	struct xy_task *t = s->heap[0]->levels[0]->head;
	xy_sched_remove(s, t);
	return t;
}

size_t xy_sched_demand(const struct xy_sched *s, struct xy_demand *out,
		       size_t max)
{
	size_t n = 0;
	for (size_t i = 0; i < s->shapes.n_slots; i++)
		for (struct shape *sh = xy_htab_slot(&s->shapes, i); sh;
		     sh = sh->hnext) {
			if (n < max) {
				out[n].need.cores = sh->cores;
				out[n].need.gpus = sh->gpus;
				out[n].need.memory = sh->memory;
				out[n].need.disk = sh->disk;
				out[n].need.time = sh->time_limit;
				/* In calls: a batch counts as the calls it
				 * carries (xy_task_set_calls). */
				out[n].count = sh->calls;
				out[n].shape = sh->id;
			}
			n++;
		}
	return n;
}

static struct shape *shape_by_id(const struct xy_sched *s, uint64_t id)
{
	for (size_t i = 0; i < s->shapes.n_slots; i++)
		for (struct shape *sh = xy_htab_slot(&s->shapes, i); sh;
		     sh = sh->hnext)
			if (sh->id == id)
				return sh;
	return NULL;
}

size_t xy_sched_shape_tasks(const struct xy_sched *s, uint64_t id,
			    struct xy_task ***out)
{
	struct shape *sh = shape_by_id(s, id);
	*out = NULL;
	if (!sh || !sh->count ||
	    !(*out = malloc((size_t)sh->count * sizeof **out)))
		return 0;
	size_t n = 0;
	for (uint32_t i = 0; i < sh->n_levels; i++)
		for (struct xy_task *t = sh->levels[i]->head; t; t = t->qnext)
			(*out)[n++] = t;
	return n;
}

void xy_sched_shape_refit(struct xy_sched *s, uint64_t id)
{
	struct shape *sh = shape_by_id(s, id);
	if (!sh)
		return;
	sh->memory = sh->disk = 0;
	sh->time_limit = 0;
	for (uint32_t i = 0; i < sh->n_levels; i++)
		for (struct xy_task *t = sh->levels[i]->head; t; t = t->qnext)
			widen(sh, t);
}

int64_t xy_sched_count(const struct xy_sched *s)
{
	return s->count;
}

uint32_t xy_sched_shapes(const struct xy_sched *s)
{
	return (uint32_t)s->shapes.count;
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
	       (!t->disk || !w->disk || w->disk >= t->disk) &&
	       xy_wtable_time_fits(w, t);
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

/* The best place for t found so far, and the best of those without room
 * for its inputs. */
struct choice {
	struct xy_worker *best, *cramped;
	uint64_t best_score, cramped_score;
	int best_free;
};

/* Weighs w (free, not weighed before) as a place for t. */
static void weigh(struct xy_sched *s, const struct xy_task *t,
		  struct xy_worker *w, uint64_t all, double now,
		  struct choice *c)
{
	if (!xy_wtable_fits(w, t))
		return;
	uint64_t score = w->score_gen == s->gen ? w->score : 0;
	if (!xy_wtable_has_room(w, all - score, now)) {
		if (!c->cramped || score > c->cramped_score) {
			c->cramped = w;
			c->cramped_score = score;
		}
		return;
	}
	int free_cores = xy_wtable_free_cores(w);
	if (!c->best ||
	    better(t, score, free_cores, c->best_score, c->best_free)) {
		c->best = w;
		c->best_score = score;
		c->best_free = free_cores;
	}
}

/* The workers that hold some of t's inputs are weighed first, found
 * through the inputs' replicas; then the workers with free cores, which
 * hold nothing of t's, only until one where t can start now: none after
 * it could hold more, so the cost of a decision does not grow with the
 * number of free workers (the most free cores is then a tie-break among
 * holders only); then, for a call that cannot start anywhere now, the
 * first worker with room in its window. Workers whose cores are all
 * taken are on neither list, so a thousand busy workers cost nothing. */
static struct xy_worker *choose(struct xy_sched *s, struct xy_task *t,
				 struct choice *c_out)
{
	s->gen++;
	uint64_t all = t->n_inputs ? score_inputs(s, t) : 0;
	double now = t->n_inputs ? xy_manager_now(s->m) : 0;
	struct choice c = {0};
	for (uint32_t i = 0; i < t->n_inputs; i++) {
		struct xy_object *o = t->inputs[i].file->obj;
		for (uint32_t r = 0; o && r < o->n_replicas; r++) {
			struct xy_worker *w = o->replicas[r].worker;
			if (w->on_free && w->weighed_gen != s->gen) {
				w->weighed_gen = s->gen;
				weigh(s, t, w, all, now, &c);
			}
		}
	}
	for (struct xy_worker *w = xy_wtable_free_list(s->m->wtable);
	     w && !(c.best && c.best_free >= t->cores); w = w->fnext)
		if (w->weighed_gen != s->gen)
			weigh(s, t, w, all, now, &c);
	/* A call may wait in a window: the first that takes it will do. */
	for (struct xy_worker *w = t->library && !c.best ?
		     xy_wtable_window_list(s->m->wtable) : NULL;
	     w && !c.best; w = w->fnext)
		if (w->weighed_gen != s->gen)
			weigh(s, t, w, all, now, &c);
	/* A worker without room only if no worker could ever give t room:
	 * then one is as good a try as another, and a fetch that finds the
	 * disk full costs t one of its bounded worker failures (manager.c)
	 * rather than leaving it queued for ever. */
	if (!c.best && c.cramped && !room_anywhere(s, t, all, now))
		c.best = c.cramped;
	*c_out = c;
	return c.best;
}

struct xy_worker *xy_sched_choose(struct xy_sched *s, struct xy_task *t)
{
	struct choice c;
	return choose(s, t, &c);
}

void xy_sched_stats(const struct xy_sched *s, int64_t *decisions,
		    double *seconds, double *send_seconds)
{
	*decisions = s->decisions;
	*seconds = s->decision_us / 1e6;
	*send_seconds = s->send_us / 1e6;
}

/* Out of the heap until the round ends. */
static void park(struct xy_sched *s, struct shape *sh)
{
	if (sh->heap_at != NOT_IN_HEAP)
		heap_delete(s, sh);
	sh->parked = 1;
	sh->pnext = s->parked;
	s->parked = sh;
}

/* The end of a round: the shapes set aside go back into the heap (or
 * go, if they emptied meanwhile), then the tasks set aside (a list, last
 * set aside first) go back to the heads of their levels, in their order.
 * A task finished meanwhile (failed with its inputs) is not put back. */
static void round_end(struct xy_sched *s, struct xy_task *aside)
{
	struct shape *sh;
	while ((sh = s->parked)) {
		s->parked = sh->pnext;
		sh->pnext = NULL;
		sh->parked = 0;
		if (!sh->count)
			shape_drop(s, sh);
		else
			heap_insert(s, sh);
	}
	while (aside) {
		struct xy_task *next = aside->anext;
		aside->anext = NULL;
		if (aside->state == XY_TASK_DONE ||
		    aside->state == XY_TASK_RETURNED) {
			aside = next;
			continue;
		}
		if (push(s, aside, 1) < 0) /* out of memory: it fails */
			s->ops.requeue(s->ops.arg, aside);
		aside = next;
	}
}

int xy_sched_round(struct xy_sched *s)
{
	struct xy_task *aside = NULL;
	int placed = 0;
	uint64_t t0 = xy_mono_us(), send_us = 0;
	s->round++;
	while (s->n_heap && (xy_wtable_free_list(s->m->wtable) ||
			     xy_wtable_window_list(s->m->wtable))) {
		struct shape *sh = s->heap[0];
		struct xy_task *t = sh->levels[0]->head;
		struct choice c;
		struct xy_worker *w = choose(s, t, &c);
		if (!w && !c.cramped) {
			/* No free worker fits t (choose weighed them all,
			 * and any that fits is best or cramped). Nor, to
			 * within a factor of two of its memory and disk, will
			 * any other task of its shape: they wait for the
			 * next round. */
			park(s, sh);
			continue;
		}
		int last = sh->count == 1; /* then removing t frees sh */
		xy_sched_remove(s, t);
		int staged = w ? s->ops.can_stage(s->ops.arg, t, w) : 0;
		if (staged > 0) {
			uint64_t d0 = xy_mono_us();
			s->ops.dispatch(s->ops.arg, t, w);
			send_us += xy_mono_us() - d0;
			placed++;
		} else if (staged < 0) {
			s->ops.requeue(s->ops.arg, t);
		} else {
			/* It fits, but its inputs cannot come now. */
			t->anext = aside;
			aside = t;
			if (last)
				continue;
			if (sh->aside_round != s->round) {
				sh->aside_round = s->round;
				sh->n_aside = 0;
			}
			if (++sh->n_aside >= ASIDE_MAX)
				park(s, sh);
		}
	}
	round_end(s, aside);
	s->decisions += placed;
	s->decision_us += xy_mono_us() - t0 - send_us;
	s->send_us += send_us;
	return placed;
}
