/*
 * hold.c: the TASK_DONEs a worker keeps for a manager that may come back;
 * see hold.h. Each is kept as its encoded frame, so that what is sent
 * after an ADOPT is byte for byte what the task reported, its id aside.
 */
#include "hold.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "htab.h"
#include "log.h"

/* Kept after sending: at most this many, and this many bytes. The window
 * they cover (from TASK_DONE to the manager's record of it, one loop turn
 * after the outputs are back) is short; the bound is for memory. */
#define SENT_MAX 4096
#define SENT_BYTES (16u << 20)

struct klist;

struct kept {
	uint64_t id;
	uint8_t key[XY_ID_LEN];
	uint8_t *frame;
	size_t len;
	struct kept *prev, *next; /* its list's */
	struct klist *on;         /* that list */
	struct kept *knext;       /* the by-key table's chain */
};

struct klist {
	struct kept *head, *tail;
	size_t n, bytes;
};

struct xy_hold {
	struct klist sent; /* oldest first */
	struct klist held;
	struct xy_htab bykey; /* every entry, by key (a TASK drops its key's) */
	uint64_t seq;
};

static uint32_t key_hash(const uint8_t key[XY_ID_LEN])
{
	uint32_t h;
	memcpy(&h, key, sizeof h);
	return h;
}

static uint32_t kept_hash(const void *node)
{
	return key_hash(((const struct kept *)node)->key);
}

static void kl_add(struct klist *l, struct kept *k)
{
	k->on = l;
	k->next = NULL;
	k->prev = l->tail;
	if (l->tail)
		l->tail->next = k;
	else
		l->head = k;
	l->tail = k;
	l->n++;
	l->bytes += k->len;
}

static void kl_del(struct klist *l, struct kept *k)
{
	if (k->prev)
		k->prev->next = k->next;
	else
		l->head = k->next;
	if (k->next)
		k->next->prev = k->prev;
	else
		l->tail = k->prev;
	l->n--;
	l->bytes -= k->len;
	k->on = NULL;
}

/* Takes k off its list and out of the table, and frees it. */
static void drop_kept(struct xy_hold *h, struct kept *k)
{
	if (k->on)
		kl_del(k->on, k);
	xy_htab_remove(&h->bykey, k, key_hash(k->key));
	free(k->frame);
	free(k);
}

struct xy_hold *xy_hold_create(void)
{
	struct xy_hold *h = calloc(1, sizeof *h);
	if (h && xy_htab_init(&h->bykey, offsetof(struct kept, knext),
			      kept_hash) < 0) {
		free(h);
		return NULL;
	}
	return h;
}

void xy_hold_destroy(struct xy_hold *h)
{
	if (!h)
		return;
	while (h->sent.head)
		drop_kept(h, h->sent.head);
	while (h->held.head)
		drop_kept(h, h->held.head);
	xy_htab_free(&h->bykey);
	free(h);
}

uint64_t xy_hold_new_id(struct xy_hold *h)
{
	return XY_HELD_BIT | ++h->seq;
}

/* d as a kept entry under id, in the table (on no list yet), or NULL
 * on ENOMEM. */
static struct kept *keep(struct xy_hold *h, const struct xy_msg_task_done *d,
			 uint64_t id, const uint8_t key[XY_ID_LEN])
{
	struct kept *k = calloc(1, sizeof *k);
	struct xy_buf b;
	union xy_msg m;

	if (!k)
		return NULL;
	xy_buf_init(&b);
	m.task_done = *d;
	if (xy_msg_encode(&b, XY_MSG_TASK_DONE, &m) < 0) {
		xy_buf_free(&b);
		free(k);
		errno = ENOMEM;
		return NULL;
	}
	k->frame = b.data;
	k->len = b.len;
	k->id = id;
	memcpy(k->key, key, XY_ID_LEN);
	xy_htab_insert(&h->bykey, k, key_hash(key));
	return k;
}

static void add_sent(struct xy_hold *h, struct kept *k)
{
	kl_add(&h->sent, k);
	while (h->sent.n > SENT_MAX || h->sent.bytes > SENT_BYTES)
		drop_kept(h, h->sent.head);
}

void xy_hold_sent(struct xy_hold *h, const struct xy_msg_task_done *d,
		  const uint8_t key[XY_ID_LEN])
{
	struct kept *k = keep(h, d, d->task_id, key);
	if (!k) {
		XY_LOGW("worker", "task %llu: out of memory keeping its "
			"report", (unsigned long long)d->task_id);
		return;
	}
	add_sent(h, k);
}

int xy_hold_keep(struct xy_hold *h, const struct xy_msg_task_done *d,
		 const uint8_t key[XY_ID_LEN])
{
	uint64_t id = d->task_id & XY_HELD_BIT ? d->task_id
					       : xy_hold_new_id(h);
	struct kept *k = keep(h, d, id, key);
	if (!k)
		return -1;
	kl_add(&h->held, k);
	return 0;
}

void xy_hold_lost(struct xy_hold *h)
{
	struct kept *k;
	while ((k = h->sent.head)) {
		kl_del(&h->sent, k);
		k->id = xy_hold_new_id(h);
		kl_add(&h->held, k);
	}
}

int xy_hold_list(struct xy_hold *h, struct xy_held_task **v, uint32_t *n)
{
	if (!h->held.n)
		return 0;
	struct xy_held_task *nv = realloc(*v, (*n + h->held.n) * sizeof *nv);
	if (!nv)
		return -1;
	*v = nv;
	for (struct kept *k = h->held.head; k; k = k->next) {
		struct xy_held_task *t = &nv[(*n)++];
		memset(t, 0, sizeof *t);
		t->id = k->id;
		memcpy(t->key, k->key, XY_ID_LEN);
		t->finished = 1;
	}
	return 0;
}

static struct kept *find(struct xy_hold *h, uint64_t id)
{
	for (struct kept *k = h->held.head; k; k = k->next)
		if (k->id == id)
			return k;
	return NULL;
}

int xy_hold_adopt(struct xy_hold *h, uint64_t held_id, uint64_t task_id,
		  union xy_msg *m)
{
	struct kept *k = find(h, held_id);
	char err[128];

	if (!k)
		return 0;
	if (xy_msg_decode(XY_MSG_TASK_DONE, k->frame + XY_FRAME_HEADER,
			  k->len - XY_FRAME_HEADER, m, err, sizeof err) < 0) {
		XY_LOGW("worker", "a held report: %s", err);
		errno = ENOMEM;
		return -1;
	}
	m->task_done.task_id = task_id;
	/* Sent again: kept again, in case this manager dies too. */
	kl_del(&h->held, k);
	k->id = task_id;
	add_sent(h, k);
	return 1;
}

void xy_hold_forget_key(struct xy_hold *h, const uint8_t key[XY_ID_LEN])
{
	struct kept *k = xy_htab_first(&h->bykey, key_hash(key)), *next;
	for (; k; k = next) {
		next = xy_htab_next(&h->bykey, k);
		if (!memcmp(k->key, key, XY_ID_LEN))
			drop_kept(h, k);
	}
}

int xy_hold_drop(struct xy_hold *h, uint64_t held_id)
{
	struct kept *k = find(h, held_id);
	if (!k)
		return 0;
	drop_kept(h, k);
	return 1;
}

size_t xy_hold_count(const struct xy_hold *h)
{
	return h->held.n;
}
