/*
 * test_htab.c: unit tests for htab.h: nodes found by their key after the
 * table has grown many times, chains that stay short, removal from the
 * middle of a chain, a walk over every node, and a table whose hash puts
 * everything in one bucket (still correct, only slower).
 */
#include <stddef.h>
#include <stdlib.h>

#include "harness.h"
#include "htab.h"

struct node {
	uint32_t key;
	struct node *next;
};

static uint32_t good(const void *n)
{
	uint32_t k = ((const struct node *)n)->key;
	return k * 2654435761u;
}

static uint32_t bad(const void *n)
{
	(void)n;
	return 7;
}

static struct node *find(struct xy_htab *h, uint32_t key)
{
	struct node probe = {.key = key};
	for (struct node *n = xy_htab_first(h, h->hash(&probe)); n;
	     n = xy_htab_next(h, n))
		if (n->key == key)
			return n;
	return NULL;
}

static void fill_and_check(uint32_t (*hash)(const void *), int count)
{
	struct xy_htab h;
	struct node *nodes = calloc((size_t)count, sizeof *nodes);
	XY_CHECK(nodes);
	XY_CHECK_EQ(xy_htab_init(&h, offsetof(struct node, next), hash), 0);
	for (int i = 0; i < count; i++) {
		nodes[i].key = (uint32_t)i * 3;
		xy_htab_insert(&h, &nodes[i], hash(&nodes[i]));
	}
	XY_CHECK_EQ(h.count, (size_t)count);
	XY_CHECK(h.n_slots >= (size_t)count); /* it grew with them */
	for (int i = 0; i < count; i++)
		XY_CHECK(find(&h, (uint32_t)i * 3) == &nodes[i]);
	XY_CHECK(find(&h, 1) == NULL);
	/* Every other node out, wherever it sits in its chain. */
	for (int i = 0; i < count; i += 2)
		xy_htab_remove(&h, &nodes[i], hash(&nodes[i]));
	XY_CHECK_EQ(h.count, (size_t)count / 2);
	for (int i = 0; i < count; i++)
		XY_CHECK((find(&h, (uint32_t)i * 3) != NULL) == (i % 2 == 1));
	/* A walk over every bucket sees each node left once. */
	size_t seen = 0;
	for (size_t b = 0; b < h.n_slots; b++)
		for (struct node *n = xy_htab_slot(&h, b); n; n = n->next)
			seen++;
	XY_CHECK_EQ(seen, h.count);
	xy_htab_free(&h);
	free(nodes);
}

static void t_grows_and_finds(void)
{
	fill_and_check(good, 100000);
}

/* With a good hash, no chain is long: the table doubles at one node a
 * bucket. */
static void t_chains_stay_short(void)
{
	struct xy_htab h;
	enum { N = 50000 };
	static struct node nodes[N];
	XY_CHECK_EQ(xy_htab_init(&h, offsetof(struct node, next), good), 0);
	for (int i = 0; i < N; i++) {
		nodes[i].key = (uint32_t)i;
		xy_htab_insert(&h, &nodes[i], good(&nodes[i]));
	}
	size_t longest = 0;
	for (size_t b = 0; b < h.n_slots; b++) {
		size_t len = 0;
		for (struct node *n = xy_htab_slot(&h, b); n; n = n->next)
			len++;
		if (len > longest)
			longest = len;
	}
	XY_CHECK(longest <= 8);
	xy_htab_free(&h);
}

static void t_one_bucket_still_correct(void)
{
	fill_and_check(bad, 2000);
}

int main(int argc, char **argv)
{
	static const struct xy_test tests[] = {
		XY_TEST(t_grows_and_finds),
		XY_TEST(t_chains_stay_short),
		XY_TEST(t_one_bucket_still_correct),
		{0},
	};
	return xy_test_main(argc, argv, tests);
}
