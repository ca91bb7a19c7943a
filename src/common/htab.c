/*
 * htab.c: the growing intrusive hash table of htab.h.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "htab.h"

#define FIRST_SLOTS 64

/* The next pointer of node. */
static void **link_of(const struct xy_htab *h, const void *node)
{
	return (void **)((char *)node + h->link);
}

int xy_htab_init(struct xy_htab *h, size_t link,
		 uint32_t (*hash)(const void *node))
{
	memset(h, 0, sizeof *h);
	h->slot = calloc(FIRST_SLOTS, sizeof *h->slot);
	if (!h->slot) {
		errno = ENOMEM;
		return -1;
	}
	h->n_slots = FIRST_SLOTS;
	h->link = link;
	h->hash = hash;
	return 0;
}

void xy_htab_free(struct xy_htab *h)
{
	free(h->slot);
	h->slot = NULL;
	h->n_slots = h->count = 0;
}

void *xy_htab_first(const struct xy_htab *h, uint32_t hash)
{
	return h->slot[hash & (h->n_slots - 1)];
}

void *xy_htab_next(const struct xy_htab *h, const void *node)
{
	return *link_of(h, node);
}

void *xy_htab_slot(const struct xy_htab *h, size_t i)
{
	return h->slot[i];
}

/* Twice the buckets, every node moved to its new chain; nothing if the
 * memory cannot be had. */
static void grow(struct xy_htab *h)
{
	size_t n = h->n_slots * 2;
	void **slot = calloc(n, sizeof *slot);
	if (!slot)
		return;
	for (size_t i = 0; i < h->n_slots; i++) {
		void *node = h->slot[i], *next;
		for (; node; node = next) {
			size_t b = h->hash(node) & (n - 1);
			next = *link_of(h, node);
			*link_of(h, node) = slot[b];
			slot[b] = node;
		}
	}
	free(h->slot);
	h->slot = slot;
	h->n_slots = n;
}

void xy_htab_insert(struct xy_htab *h, void *node, uint32_t hash)
{
	if (h->count >= h->n_slots)
		grow(h);
	size_t b = hash & (h->n_slots - 1);
	*link_of(h, node) = h->slot[b];
	h->slot[b] = node;
	h->count++;
}

void xy_htab_remove(struct xy_htab *h, void *node, uint32_t hash)
{
	void **p = &h->slot[hash & (h->n_slots - 1)];
	for (; *p; p = link_of(h, *p))
		if (*p == node) {
			*p = *link_of(h, node);
			*link_of(h, node) = NULL;
			h->count--;
			return;
		}
}

uint32_t xy_str_hash(const char *s)
{
	uint32_t h = 2166136261u;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 16777619u;
	return h;
}
