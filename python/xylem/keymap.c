/*
 * keymap.c: the extension's map of 64-bit keys to 64-bit values (keymap.h):
 * open addressing with linear probing, deletion by backward shift.
 */
#include "keymap.h"

#include <stdlib.h>

static size_t slot_of(uint64_t key, size_t cap)
{
	key *= 0x9E3779B97F4A7C15ull;
	return (size_t)(key ^ (key >> 29)) & (cap - 1);
}

static int grow(struct keymap *km)
{
	struct keymap old = *km;
	size_t cap = old.cap ? old.cap * 2 : 64;

	km->keys = calloc(cap, sizeof *km->keys);
	km->ids = calloc(cap, sizeof *km->ids);
	if (!km->keys || !km->ids) {
		free(km->keys);
		free(km->ids);
		*km = old;
		return -1;
	}
	km->cap = cap;
	km->n = 0;
	for (size_t i = 0; i < old.cap; i++)
		if (old.keys[i])
			xy_keymap_put(km, old.keys[i], old.ids[i]);
	free(old.keys);
	free(old.ids);
	return 0;
}

int xy_keymap_put(struct keymap *km, uint64_t key, uint64_t id)
{
	size_t i;

	if ((km->n + 1) * 2 > km->cap && grow(km) < 0)
		return -1;
	i = slot_of(key, km->cap);
	while (km->keys[i] && km->keys[i] != key)
		i = (i + 1) & (km->cap - 1);
	if (!km->keys[i])
		km->n++;
	km->keys[i] = key;
	km->ids[i] = id;
	return 0;
}

/* The slot holding key, or cap if it is absent. */
size_t xy_keymap_find(const struct keymap *km, uint64_t key)
{
	if (!km->cap || !key)
		return km->cap;
	for (size_t i = slot_of(key, km->cap); km->keys[i];
	     i = (i + 1) & (km->cap - 1))
		if (km->keys[i] == key)
			return i;
	return km->cap;
}

/*
 * Removes key by shifting later members of its probe run back, so that no
 * tombstones accumulate: an entry at j moves into the hole at i unless its
 * home slot lies cyclically in (i, j].
 */
void xy_keymap_del(struct keymap *km, uint64_t key)
{
	size_t mask = km->cap - 1, i = xy_keymap_find(km, key), j, k;

	if (i == km->cap)
		return;
	for (j = (i + 1) & mask; km->keys[j]; j = (j + 1) & mask) {
		k = slot_of(km->keys[j], km->cap);
		if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		km->keys[i] = km->keys[j];
		km->ids[i] = km->ids[j];
		i = j;
	}
	km->keys[i] = 0;
	km->n--;
}
