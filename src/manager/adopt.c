/*
 * adopt.c: tasks workers kept while their manager was away; see adopt.h.
 * Offers and parked tasks are tables by key. The wait ends on a timer
 * (unreferenced, so it never keeps a finished run's loop alive).
 */
#include "adopt.h"

#include <stdlib.h>
#include <string.h>

#include "htab.h"
#include "internal.h"
#include "log.h"
#include "memo.h"

#define WHO "journal"
/* With a journal: how long workers keep their tasks once they lose this
 * manager (WELCOME), and how long a manager started again waits for the
 * workers of the one before to come back (options lease, adopt_wait). */
#define LEASE_S 300.0
#define ADOPT_WAIT_S 15.0
#define LEASE_MAX_S 86400.0 /* a day: WELCOME refuses more than a year */

struct offer {
	uint8_t key[XY_ID_LEN];
	struct xy_worker *w;
	uint64_t held_id;
	struct xy_held_task res; /* what a running one takes on w */
	struct offer *next;
};

struct park {
	struct xy_task *t;
	struct park *next;
};

struct xy_adopt {
	struct xy_manager *m;
	struct xy_htab offers; /* struct offer by key */
	struct xy_htab parked; /* struct park by its task's key */
	uv_timer_t timer;
	int over; /* the wait has ended */
	int64_t adopted, requeued;
	int64_t cancelled; /* running held tasks killed on their workers */
	int64_t dropped;   /* finished ones' reports not needed */
};

static uint32_t key_hash(const uint8_t key[XY_ID_LEN])
{
	uint32_t h;
	memcpy(&h, key, sizeof h);
	return h;
}

static uint32_t offer_hash(const void *node)
{
	return key_hash(((const struct offer *)node)->key);
}

static uint32_t park_hash(const void *node)
{
	return key_hash(((const struct park *)node)->t->key);
}

static void end_wait(struct xy_adopt *a);

/* The wait for the temps of the manager before (memo.c) ends only on
 * the timer: which workers held them is known, but not whether a task
 * still to become ready will need one. Tasks waiting for such a temp
 * then have it made again (catalog.c). */
static void end_temps_wait(struct xy_adopt *a)
{
	if (!xy_memo_temps_wait(a->m->memo))
		return;
	xy_memo_temps_wait_over(a->m->memo);
	XY_LOGI(WHO, "the wait for the temps of the earlier manager is over");
	xy_catalog_copies_changed(a->m->catalog);
	xy_manager_wake(a->m);
}

static void on_wait_end(uv_timer_t *h)
{
	struct xy_adopt *a = h->data;
	if (!a->over)
		end_wait(a);
	end_temps_wait(a);
}

struct xy_adopt *xy_adopt_create(struct xy_manager *m, double wait_s)
{
	struct xy_adopt *a = calloc(1, sizeof *a);
	if (!a || xy_htab_init(&a->offers, offsetof(struct offer, next),
			       offer_hash) < 0 ||
	    xy_htab_init(&a->parked, offsetof(struct park, next),
			 park_hash) < 0) {
		if (a)
			xy_htab_free(&a->offers);
		free(a);
		return NULL;
	}
	a->m = m;
	uv_timer_init(&m->loop, &a->timer);
	a->timer.data = a;
	uv_unref((uv_handle_t *)&a->timer);
	/* Nothing ran when the manager before stopped: nothing to wait
	 * for, and what workers bring back is of no use. */
	a->over = !xy_memo_running_before(m->memo);
	if (!a->over || xy_memo_temps_wait(m->memo))
		uv_timer_start(&a->timer, on_wait_end,
			       (uint64_t)(wait_s * 1000), 0);
	return a;
}

static void free_node(uv_handle_t *h)
{
	free(h->data);
}

/* Frees w's offers (every one, w NULL), giving nothing back. */
static void drop_offers(struct xy_adopt *a, const struct xy_worker *w)
{
	for (size_t i = 0; i < a->offers.n_slots; i++)
		for (struct offer *o = xy_htab_slot(&a->offers, i), *n; o;
		     o = n) {
			n = o->next;
			if (w && o->w != w)
				continue;
			xy_htab_remove(&a->offers, o, key_hash(o->key));
			free(o);
		}
}

void xy_adopt_destroy(struct xy_adopt *a)
{
	if (!a)
		return;
	drop_offers(a, NULL);
	for (size_t i = 0; i < a->parked.n_slots; i++)
		for (struct park *p = xy_htab_slot(&a->parked, i), *n; p;
		     p = n) {
			n = p->next;
			p->t->parked = 0;
			free(p);
		}
	xy_htab_free(&a->offers);
	xy_htab_free(&a->parked);
	/* The struct goes with the timer's handle, once the loop closes
	 * it. */
	uv_timer_stop(&a->timer);
	uv_close((uv_handle_t *)&a->timer, free_node);
}

/* worker's offer of key, a running one first (a finished one may be an
 * earlier attempt's report), or NULL. */
static struct offer *find_offer(struct xy_adopt *a,
				const uint8_t key[XY_ID_LEN],
				const char *worker)
{
	struct offer *found = NULL;
	for (struct offer *o = xy_htab_first(&a->offers, key_hash(key)); o;
	     o = xy_htab_next(&a->offers, o)) {
		if (memcmp(o->key, key, XY_ID_LEN) || strcmp(o->w->name, worker))
			continue;
		if (!o->res.finished)
			return o;
		found = found ? found : o;
	}
	return found;
}

/* An offer is wanted if its task was running on its worker when the
 * manager before stopped (the RUN record names that worker): any other
 * is an attempt the manager before had moved on from. */
static int wanted(struct xy_adopt *a, const struct offer *o)
{
	const char *ran = xy_memo_ran_before(a->m->memo, o->key);
	return ran && !strcmp(ran, o->w->name);
}

/* For xy_memo_forget: a task that ran on worker and that it offers. */
static int offered(void *arg, const uint8_t *key, const char *worker)
{
	return find_offer(arg, key, worker) != NULL;
}

static struct park *find_park(struct xy_adopt *a, const struct xy_task *t)
{
	for (struct park *p = xy_htab_first(&a->parked, key_hash(t->key)); p;
	     p = xy_htab_next(&a->parked, p))
		if (p->t == t)
			return p;
	return NULL;
}

/* Takes o out of the table and gives back what it reserved on its
 * worker; the caller frees it. */
static void take_offer(struct xy_adopt *a, struct offer *o)
{
	xy_htab_remove(&a->offers, o, key_hash(o->key));
	if (!o->res.finished)
		xy_wtable_unreserve(a->m->wtable, o->w, (int)o->res.cores,
				    (int)o->res.gpus,
				    (int64_t)o->res.memory_mb,
				    (int64_t)o->res.disk_mb);
}

static void send_cancel(struct xy_adopt *a, struct xy_worker *w,
			uint64_t held_id)
{
	union xy_msg msg = {.cancel = {.task_id = held_id}};
	if (w->conn)
		xy_manager_send(a->m, w, XY_MSG_CANCEL, &msg);
}

static void cancel_offer(struct xy_adopt *a, struct offer *o)
{
	take_offer(a, o);
	send_cancel(a, o->w, o->held_id);
	if (o->res.finished)
		a->dropped++;
	else
		a->cancelled++;
	free(o);
}

static void adopt(struct xy_adopt *a, struct offer *o, struct xy_task *t)
{
	take_offer(a, o);
	XY_LOGI(WHO, "task %llu: adopted from worker %s, where it %s",
		(unsigned long long)t->id, o->w->name,
		o->res.finished ? "finished" : "runs");
	if (xy_manager_task_adopt(a->m, t, o->w, o->held_id) == 0)
		a->adopted++;
	else
		send_cancel(a, o->w, o->held_id); /* not ours: it goes */
	free(o);
}

/* t leaves the parked table (the caller queues or adopts it). */
static void unpark(struct xy_adopt *a, struct park *p)
{
	xy_htab_remove(&a->parked, p, key_hash(p->t->key));
	p->t->parked = 0;
	free(p);
}

void xy_adopt_unpark(struct xy_adopt *a, struct xy_task *t)
{
	struct park *p;
	if (a && t->parked && (p = find_park(a, t)))
		unpark(a, p);
}

/* Every task that ran under the manager before is adopted or forgotten:
 * nothing is left to wait for (an offer that matters is always for such
 * a task, whose RUN record its adoption replaces). */
static void settled(struct xy_adopt *a)
{
	if (!a->over && !xy_memo_running_before(a->m->memo))
		end_wait(a);
}

/* The resources a held task says it takes, within w's own. */
static void clamp(struct xy_held_task *r, const struct xy_worker *w)
{
	if (r->cores > (uint32_t)w->cores)
		r->cores = (uint32_t)w->cores;
	if (r->gpus > (uint32_t)w->gpus)
		r->gpus = (uint32_t)w->gpus;
	if (r->memory_mb > (uint64_t)w->memory)
		r->memory_mb = (uint64_t)w->memory;
	if (r->disk_mb > (uint64_t)w->disk)
		r->disk_mb = (uint64_t)w->disk;
}

/* Without a journal, held tasks are another manager's: cancelled. */
static void cancel_all(struct xy_manager *m, struct xy_worker *w,
		       const struct xy_msg_hello *h)
{
	for (uint32_t i = 0; i < h->n_held; i++) {
		union xy_msg c = {.cancel = {.task_id = h->held[i].id}};
		xy_manager_send(m, w, XY_MSG_CANCEL, &c);
	}
}

/* The parked task of key, or NULL. */
static struct park *parked_of(struct xy_adopt *a, const uint8_t *key)
{
	for (struct park *p = xy_htab_first(&a->parked, key_hash(key)); p;
	     p = xy_htab_next(&a->parked, p))
		if (!memcmp(p->t->key, key, XY_ID_LEN))
			return p;
	return NULL;
}

/* w is back: of what ran there when the manager before stopped, what
 * it kept and is parked here is adopted; what it did not keep is
 * forgotten, and its parked tasks queued. Only w's own tasks are looked
 * at (the journal indexes them by worker). */
static void settle_worker(struct xy_adopt *a, struct xy_worker *w)
{
	uint8_t *keys;
	int64_t n = xy_memo_keys_before(a->m->memo, w->name, &keys);
	if (n < 0) {
		XY_LOGW(WHO, "worker %s: out of memory settling its tasks; "
			"the wait's end will", w->name);
		return;
	}
	for (int64_t i = 0; i < n; i++) {
		const uint8_t *key = keys + i * XY_ID_LEN;
		struct offer *o = find_offer(a, key, w->name);
		struct park *p;
		if (o) {
			/* Kept: adopted once its task is ready. */
			if ((p = parked_of(a, key))) {
				struct xy_task *t = p->t;
				unpark(a, p);
				adopt(a, o, t);
			}
			continue;
		}
		xy_memo_forget_key(a->m->memo, key);
		while ((p = parked_of(a, key))) {
			struct xy_task *t = p->t;
			unpark(a, p);
			a->requeued++;
			xy_manager_task_queue(a->m, t);
		}
	}
	free(keys);
}

void xy_adopt_offers(struct xy_manager *m, struct xy_adopt *a,
		     struct xy_worker *w, const struct xy_msg_hello *h)
{
	if (!a) {
		cancel_all(m, w, h);
		return;
	}
	int64_t refused = 0;
	for (uint32_t i = 0; i < h->n_held; i++) {
		const struct xy_held_task *ht = &h->held[i];
		struct offer *o = calloc(1, sizeof *o);
		if (!o) {
			XY_LOGW(WHO, "worker %s: out of memory taking its "
				"held tasks", w->name);
			send_cancel(a, w, ht->id);
			continue;
		}
		memcpy(o->key, ht->key, XY_ID_LEN);
		o->w = w;
		o->held_id = ht->id;
		o->res = *ht;
		clamp(&o->res, w);
		if (!ht->finished)
			xy_wtable_reserve(a->m->wtable, w, (int)o->res.cores,
					  (int)o->res.gpus,
					  (int64_t)o->res.memory_mb,
					  (int64_t)o->res.disk_mb);
		xy_htab_insert(&a->offers, o, key_hash(o->key));
		if (!wanted(a, o)) {
			cancel_offer(a, o);
			refused++;
		}
	}
	if (h->n_held)
		XY_LOGI(WHO, "worker %s came back holding %u tasks, %lld of "
			"them not wanted (cancelled)", w->name, h->n_held,
			(long long)refused);
	settle_worker(a, w);
	settled(a);
	/* Its inventory may hold temps that tasks wait for. */
	if (xy_memo_temps_wait(m->memo))
		xy_catalog_copies_changed(m->catalog);
}

int xy_adopt_try(struct xy_adopt *a, struct xy_task *t)
{
	if (!a || !t->key)
		return 0;
	const char *ran = xy_memo_ran_before(a->m->memo, t->key);
	if (!ran)
		return 0;
	struct offer *o = find_offer(a, t->key, ran);
	if (o) {
		adopt(a, o, t);
		settled(a);
		return 1;
	}
	if (a->over)
		return 0;
	struct park *p = calloc(1, sizeof *p);
	if (!p)
		return 0;
	p->t = t;
	t->parked = 1;
	xy_htab_insert(&a->parked, p, key_hash(t->key));
	XY_LOGD(WHO, "task %llu: waits for worker %s, where it ran",
		(unsigned long long)t->id, ran);
	return 1;
}

void xy_adopt_worker_gone(struct xy_adopt *a, struct xy_worker *w)
{
	if (a)
		drop_offers(a, w);
}

/* The wait's end: parked tasks queued, what ran on workers that did
 * not come back forgotten. */
static void end_wait(struct xy_adopt *a)
{
	a->over = 1;
	if (!xy_memo_temps_wait(a->m->memo))
		uv_timer_stop(&a->timer);
	int64_t parked = 0;
	for (size_t i = 0; i < a->parked.n_slots; i++)
		for (struct park *p = xy_htab_slot(&a->parked, i), *n; p;
		     p = n) {
			n = p->next;
			struct xy_task *t = p->t;
			unpark(a, p);
			parked++;
			xy_manager_task_queue(a->m, t);
		}
	/* Offers still wanted stay, for tasks not ready yet (an input
	 * being hashed, a writer running again): their RUN records too. */
	size_t forgot = xy_memo_forget(a->m->memo, offered, a);
	XY_LOGI(WHO, "the wait for workers of the earlier manager is over: "
		"%lld tasks adopted, %lld run again (%lld of them waited for "
		"a worker that did not come back), %lld running held tasks "
		"cancelled on workers, %lld kept reports not needed (their "
		"tasks were recorded), %zu forgotten", (long long)a->adopted,
		(long long)(a->requeued + parked), (long long)parked,
		(long long)a->cancelled, (long long)a->dropped, forgot);
	xy_manager_wake(a->m);
}

int64_t xy_adopt_adopted(const struct xy_adopt *a)
{
	return a ? a->adopted : 0;
}

/* ------------------------------------------ starting, and TASKs held back */

/* With a journal: the lease workers get, and the wait for those of the
 * manager before. */
int xy_adopt_start(struct xy_manager *m, const struct xy_manager_options *opt)
{
	if (!m->memo)
		return 0;
	double wait = opt->adopt_wait > 0 ? opt->adopt_wait : ADOPT_WAIT_S;
	double lease = opt->lease > 0 ? opt->lease : LEASE_S;
	if (wait > LEASE_MAX_S)
		wait = LEASE_MAX_S;
	if (lease > LEASE_MAX_S)
		lease = LEASE_MAX_S;
	m->lease_ms = opt->lease < 0 ? 0 : (uint64_t)(1000 * lease);
	m->adopt = xy_adopt_create(m, wait);
	return m->adopt ? 0 : -1;
}

/* A scheduling round with a journal: what it sends w waits in w's conn
 * until the round's RUN records are written (xy_adopt_uncork_all). If the list
 * cannot grow, the records so far are written now instead. */
void xy_adopt_cork(struct xy_manager *m, struct xy_worker *w)
{
	if (m->n_corked == m->cap_corked) {
		size_t cap = m->cap_corked ? 2 * m->cap_corked : 16;
		struct xy_worker **v = realloc(m->corked, cap * sizeof *v);
		if (!v) {
			xy_memo_write(m->memo);
			return;
		}
		m->corked = v;
		m->cap_corked = cap;
	}
	m->corked[m->n_corked++] = w;
	w->corked = 1;
	xy_conn_cork(w->conn, 1);
}

/* The round is over: its records written, then its messages. */
void xy_adopt_uncork_all(struct xy_manager *m)
{
	m->corking = 0;
	if (!m->n_corked)
		return;
	xy_memo_write(m->memo);
	for (size_t i = 0; i < m->n_corked; i++) {
		struct xy_worker *w = m->corked[i];
		w->corked = 0;
		if (w->conn)
			xy_conn_cork(w->conn, 0);
	}
	m->n_corked = 0;
}

/* w goes: off the corked list. */
void xy_adopt_uncork_gone(struct xy_manager *m, struct xy_worker *w)
{
	for (size_t i = 0; w->corked && i < m->n_corked; i++)
		if (m->corked[i] == w) {
			m->corked[i] = m->corked[--m->n_corked];
			w->corked = 0;
		}
}
