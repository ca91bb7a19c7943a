/*
 * keymap.h: a map of 64-bit keys (never 0) to 64-bit values, for the
 * extension (_core.c): key -> task id, handle -> file. Not thread-safe:
 * each map is touched by one thread, or under the GIL.
 */
#ifndef XY_PY_KEYMAP_H
#define XY_PY_KEYMAP_H

#include <stddef.h>
#include <stdint.h>

/* Keys and values in parallel arrays of cap slots (a power of two), n of
 * them in use; key 0 marks an empty slot. A zeroed map is empty; free
 * keys and ids to drop it. */
struct keymap {
	uint64_t *keys, *ids;
	size_t cap, n;
};

/* Sets key's value (key != 0): 0, or -1 without memory (km unchanged). */
int xy_keymap_put(struct keymap *km, uint64_t key, uint64_t id);
/* The slot holding key, or km->cap if it is absent. */
size_t xy_keymap_find(const struct keymap *km, uint64_t key);
/* Removes key, if present. */
void xy_keymap_del(struct keymap *km, uint64_t key);

#endif
