/*
 * dash.h: the manager's live dashboard (dash.c), a sub-context with its
 * own create and destroy: what the pages show, kept as running sums
 * (tasks by state and by tag, bytes moved by kind and by source, cache
 * hits, the latest failures, the task stream), pushed to browsers as
 * Server-Sent Events, and /metrics in the Prometheus text format. Served
 * by http.c; the pages themselves are embedded (web/, web_assets.c).
 * docs/observability.md.
 */
#ifndef XY_MANAGER_DASH_H
#define XY_MANAGER_DASH_H

#include <stddef.h>
#include <stdint.h>

struct xy_manager;
struct xy_task;
struct xy_dash;

/* Starts serving on spec, "[HOST:]PORT" (HOST: 127.0.0.1 if absent;
 * PORT 0: any free one). A host that is not loopback requires a token
 * (derived from the manager's secret). NULL with a reason in err. */
struct xy_dash *xy_dash_create(struct xy_manager *m, const char *spec,
			       char *err, size_t errlen);
/* NULL: nothing. */
void xy_dash_destroy(struct xy_dash *d);
int xy_dash_port(const struct xy_dash *d);
/* The address to open, with the token when one is required. */
const char *xy_dash_url(const struct xy_dash *d);

enum xy_dash_kind {
	XY_DASH_SUBMITTED, /* task entered the table, WAITING */
	XY_DASH_STATE,     /* task went from `from` to its state now */
	XY_DASH_DISPATCHED, /* task is committed to its worker, t->worker */
	XY_DASH_TRANSFER,  /* a transfer ended: src, dest, bytes, ok */
};

struct xy_dash_ev {
	enum xy_dash_kind kind;
	struct xy_task *task;
	int from;
	const char *src, *dest; /* "manager", a worker's name, or a URL */
	uint64_t bytes;
	int ok;
};

/* Makes the next event now, as the timer does every half second when
 * something changed: for unit tests. */
void xy__dash_push(struct xy_dash *d);

/* Records one event; d may be NULL (no dashboard): nothing. Cheap: it
 * updates sums and queues at most a small record for the next push. */
void xy_dash_event(struct xy_dash *d, const struct xy_dash_ev *ev);

#endif
