/*
 * htab.h: an intrusive hash table of chained nodes that grows with its
 * contents, for the manager's catalogue (files by path, objects and
 * served objects by id). The nodes are the caller's records: each has a
 * next pointer at a fixed offset, and the table calls back for a node's
 * hash when it grows. The table owns only its bucket array.
 *
 * Lookups walk the chain of a hash (xy_htab_first, xy_htab_next) and
 * compare keys themselves. The table doubles when it holds more nodes
 * than buckets, so chains stay short whatever the count; if memory for a
 * larger array is short it stays as it is, still correct, only slower.
 */
#ifndef XY_HTAB_H
#define XY_HTAB_H

#include <stddef.h>
#include <stdint.h>

struct xy_htab {
	void **slot;      /* bucket heads */
	size_t n_slots;   /* a power of two */
	size_t count;
	size_t link;      /* offsetof the node's next pointer */
	uint32_t (*hash)(const void *node);
};

/* An empty table of nodes whose next pointer is at offset link. -1
 * (ENOMEM) if its first buckets cannot be had. */
int xy_htab_init(struct xy_htab *h, size_t link,
		 uint32_t (*hash)(const void *node));
/* Frees the buckets (not the nodes); the table is then empty and must be
 * initialised again before use. */
void xy_htab_free(struct xy_htab *h);
/* FNV-1a of a string, for tables keyed by names and paths. */
uint32_t xy_str_hash(const char *s);

/* The first node of the chain where nodes of this hash are. */
void *xy_htab_first(const struct xy_htab *h, uint32_t hash);
/* The node after node in its chain, or NULL. */
void *xy_htab_next(const struct xy_htab *h, const void *node);
/* Adds node (whose hash is hash); it must not be in the table. */
void xy_htab_insert(struct xy_htab *h, void *node, uint32_t hash);
/* Takes node out; nothing if it is not there. */
void xy_htab_remove(struct xy_htab *h, void *node, uint32_t hash);
/* Bucket i's first node, i < h->n_slots: for walks over every node. */
void *xy_htab_slot(const struct xy_htab *h, size_t i);

#endif
