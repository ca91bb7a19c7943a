/*
 * scaler.c: the scaler's plan (scaler.h). Like HyperQueue's allocator it
 * places the queued demand on workers that do not exist yet, shaped like
 * each pool's node, and asks for exactly those that got work; unlike it,
 * it places shapes with their counts, not tasks one by one, so its cost
 * does not grow with the queue.
 *
 * Each pool gets bins: one per pending worker (a whole node each, since
 * nothing runs there yet), then new ones, opened only while the pool's
 * backlog and maximum allow. The shapes, largest first, fill the bins of
 * the pools that fit them. A bin takes as many tasks of a shape as its
 * room allows in every dimension at once.
 */
#include "scaler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What is left of one worker. */
struct bin {
	struct xy_res room;
	int used; /* some task was placed on it */
};

struct pool_bins {
	struct bin *bins; /* pending ones first, then those opened */
	int n_pending, n_open, cap; /* cap: pending + the new allowed */
};

int xy_res_fits(const struct xy_res *node, const struct xy_res *need)
{
	return node->cores >= need->cores && node->gpus >= need->gpus &&
	       (!node->memory || node->memory >= need->memory) &&
	       (!node->disk || node->disk >= need->disk) &&
	       (!node->time || !need->time ||
		need->time + XY_WALLTIME_SLACK_S <= node->time);
}

/* How many tasks asking `need` fit in `room`: the least over the
 * dimensions that need asks for (a task asks at least one core). */
static int64_t how_many(const struct xy_res *room, const struct xy_res *need,
			int64_t want)
{
	int64_t k = want;
	if (need->cores > 0 && room->cores / need->cores < k)
		k = room->cores / need->cores;
	if (need->gpus > 0 && room->gpus / need->gpus < k)
		k = room->gpus / need->gpus;
	if (need->memory > 0 && room->memory >= 0 &&
	    room->memory / need->memory < k)
		k = room->memory / need->memory;
	if (need->disk > 0 && room->disk >= 0 && room->disk / need->disk < k)
		k = room->disk / need->disk;
	return k;
}

static void take(struct xy_res *room, const struct xy_res *need, int64_t k)
{
	room->cores -= (int)(k * need->cores);
	room->gpus -= (int)(k * need->gpus);
	if (room->memory >= 0)
		room->memory -= k * need->memory;
	if (room->disk >= 0)
		room->disk -= k * need->disk;
}

/* A node's room, with -1 for a dimension it does not limit. */
static struct xy_res whole(const struct xy_res *node)
{
	struct xy_res r = *node;
	if (!r.memory)
		r.memory = -1;
	if (!r.disk)
		r.disk = -1;
	return r;
}

/* Places up to `count` tasks asking `need` on the pool's bins, opening
 * new ones as allowed. Returns how many were placed. */
static int64_t fill(struct pool_bins *pb, const struct xy_pool *p,
		    const struct xy_res *need, int64_t count)
{
	int64_t placed = 0;
	for (int i = 0; i < pb->n_pending + pb->n_open && placed < count;
	     i++) {
		struct bin *b = &pb->bins[i];
		int64_t k = how_many(&b->room, need, count - placed);
		if (k > 0) {
			take(&b->room, need, k);
			b->used = 1;
			placed += k;
		}
	}
	while (placed < count && pb->n_pending + pb->n_open < pb->cap) {
		struct bin *b = &pb->bins[pb->n_pending + pb->n_open++];
		b->room = whole(&p->node);
		int64_t k = how_many(&b->room, need, count - placed);
		take(&b->room, need, k);
		b->used = 1;
		placed += k;
	}
	return placed;
}

/* Largest first: GPUs, then cores, then memory, then disk. */
static int larger_first(const void *a, const void *b, void *arg)
{
	const struct xy_demand *demand = arg;
	const struct xy_res *x = &demand[*(const size_t *)a].need;
	const struct xy_res *y = &demand[*(const size_t *)b].need;
	if (x->gpus != y->gpus)
		return y->gpus - x->gpus;
	if (x->cores != y->cores)
		return y->cores - x->cores;
	if (x->memory != y->memory)
		return x->memory < y->memory ? 1 : -1;
	if (x->disk != y->disk)
		return x->disk < y->disk ? 1 : -1;
	return 0;
}

static int by_priority(const struct xy_pool *pools, int a, int b)
{
	if (pools[a].priority != pools[b].priority)
		return pools[a].priority > pools[b].priority;
	return a < b;
}

/* The new workers a pool may still ask for. */
static int allowance(const struct xy_pool *p, const struct xy_pool_count *c)
{
	int n = p->backlog - c->pending;
	if (p->max_workers > 0 &&
	    p->max_workers - c->connected - c->pending < n)
		n = p->max_workers - c->connected - c->pending;
	return n > 0 ? n : 0;
}

int xy_scaler_plan(const struct xy_pool *pools,
		   const struct xy_pool_count *counts, int n_pools,
		   const struct xy_demand *demand, size_t n, struct xy_plan *out)
{
	struct pool_bins pb[XY_POOLS_MAX];
	int order[XY_POOLS_MAX];
	size_t n_bins = 0;

	memset(out, 0, sizeof *out);
	if (n_pools > XY_POOLS_MAX)
		n_pools = XY_POOLS_MAX;
	for (int i = 0; i < n_pools; i++) {
		const struct xy_pool_count *c = &counts[i];
		pb[i].n_pending = c->pending > 0 ? c->pending : 0;
		pb[i].n_open = 0;
		pb[i].cap = pb[i].n_pending + allowance(&pools[i], c);
		n_bins += (size_t)pb[i].cap;
	}
	/* One allocation: the shapes' order, then every pool's bins. */
	size_t *shapes = malloc(n * sizeof *shapes + n_bins * sizeof(struct bin)
				+ 1);
	if (!shapes)
		return -1;
	struct bin *next_bin = (struct bin *)(shapes + n);
	for (int i = 0; i < n_pools; i++) {
		pb[i].bins = next_bin;
		next_bin += pb[i].cap;
		memset(pb[i].bins, 0, (size_t)pb[i].cap * sizeof *pb[i].bins);
		for (int j = 0; j < pb[i].n_pending; j++)
			pb[i].bins[j].room = whole(&pools[i].node);
		/* Insertion sort: a handful of pools. */
		int k = i;
		while (k > 0 && by_priority(pools, i, order[k - 1])) {
			order[k] = order[k - 1];
			k--;
		}
		order[k] = i;
	}
	for (size_t i = 0; i < n; i++)
		shapes[i] = i;
	qsort_r(shapes, n, sizeof *shapes, larger_first, (void *)demand);
	for (size_t s = 0; s < n; s++) {
		const struct xy_demand *d = &demand[shapes[s]];
		int64_t left = d->count;
		int fits_cpu_pool = 0, fits_any = 0;
		if (left <= 0)
			continue;
		for (int i = 0; i < n_pools; i++) {
			if (!xy_res_fits(&pools[i].node, &d->need))
				continue;
			fits_any = 1;
			fits_cpu_pool |= pools[i].node.gpus == 0;
		}
		if (!fits_any) {
			if (out->n_unfit < XY_POOLS_MAX)
				out->unfit[out->n_unfit++] = shapes[s];
			out->unfit_tasks += left;
			continue;
		}
		for (int o = 0; o < n_pools && left > 0; o++) {
			int i = order[o];
			const struct xy_pool *p = &pools[i];
			if (!xy_res_fits(&p->node, &d->need) ||
			    (d->need.gpus == 0 && p->node.gpus > 0 &&
			     fits_cpu_pool))
				continue;
			int64_t k = fill(&pb[i], p, &d->need, left);
			out->placed[i] += k;
			left -= k;
		}
		out->waiting += left;
	}
	for (int i = 0; i < n_pools; i++) {
		const struct xy_pool *p = &pools[i];
		const struct xy_pool_count *c = &counts[i];
		int idle_pending = 0;
		for (int j = 0; j < pb[i].n_pending; j++)
			idle_pending += !pb[i].bins[j].used;
		out->submit[i] = pb[i].n_open;
		/* Up to the minimum, whatever the demand. */
		int have = c->connected + c->pending + out->submit[i];
		if (have < p->min_workers) {
			int more = p->min_workers - have;
			int room = pb[i].cap - pb[i].n_pending - pb[i].n_open;
			out->submit[i] += more < room ? more : room;
			have += more < room ? more : room;
		}
		/* Pending workers no task needs go, down to the minimum. */
		int spare = have - p->min_workers;
		out->cancel[i] = idle_pending < spare ? idle_pending : spare;
		if (out->cancel[i] < 0)
			out->cancel[i] = 0;
		if (out->submit[i] > 0)
			snprintf(out->why[i], sizeof out->why[i],
				 "asked for %d: %lld queued tasks fit no "
				 "connected or pending worker",
				 out->submit[i], (long long)out->placed[i]);
		else if (out->placed[i] > 0 && pb[i].cap == pb[i].n_pending)
			snprintf(out->why[i], sizeof out->why[i],
				 "%lld queued tasks wait for its %d pending "
				 "workers; at its %s", (long long)out->placed[i],
				 c->pending,
				 p->max_workers > 0 &&
				 c->connected + c->pending >= p->max_workers
					 ? "maximum" : "backlog");
		else if (out->cancel[i] > 0)
			snprintf(out->why[i], sizeof out->why[i],
				 "cancelling %d pending: no queued task needs "
				 "them", out->cancel[i]);
		else
			snprintf(out->why[i], sizeof out->why[i],
				 "no queued task needs a new worker");
	}
	free(shapes);
	return 0;
}
