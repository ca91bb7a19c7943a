/*
 * status.c: the manager's state as a JSON document, for `xylem status` and
 * xy_manager_status_json. Built with jansson on the loop thread; the cost
 * is one pass over the workers, never over the tasks.
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>

#include <string.h>

#include "adopt.h"
#include "internal.h"
#include "memo.h"
#include "pools.h"
#include "util.h"

static json_t *tasks_json(const struct xy_manager *m)
{
	return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "waiting",
			 (json_int_t)(m->n_waiting + xy__array_pending(m)),
			 "ready",
			 (json_int_t)xy_sched_count(m->sched), "running",
			 (json_int_t)m->n_running, "done",
			 (json_int_t)m->n_done, "succeeded",
			 (json_int_t)m->n_succeeded, "failed",
			 (json_int_t)m->n_failed);
}

/* Seconds the worker has left for tasks (its walltime), or null. */
static json_t *time_left_json(const struct xy_worker *w)
{
	double left = xy_wtable_time_left(w);
	return left < 0 ? json_null() : json_real(floor(left * 10) / 10);
}

static json_t *workers_json(const struct xy_manager *m)
{
	json_t *arr = json_array();
	for (struct xy_worker *w = xy_wtable_all(m->wtable); arr && w;
	     w = w->next) {
		if (!w->greeted)
			continue;
		json_array_append_new(
			arr,
			json_pack("{s:s,s:s,s:i,s:i,s:i,s:I,s:I,s:I,s:i,s:i,"
				  "s:I,s:i,s:b,s:i,s:o}",
				  "name", w->name, "host",
				  w->hostname ? w->hostname : w->addr, "cores",
				  w->cores, "cores_used", xy_wtable_cores_busy(w),
				  "cores_queued",
				  w->cores_used - xy_wtable_cores_busy(w),
				  "memory", (json_int_t)w->memory,
				  "memory_used", (json_int_t)w->memory_used,
				  "disk", (json_int_t)w->disk,
				  "gpus", w->gpus, "running", w->n_running,
				  "done", (json_int_t)w->n_done, "objects",
				  (int)w->n_held, "schedulable", w->ready,
				  "source_cooldowns", xy_xplan_resting(w),
				  "time_left", time_left_json(w)));
	}
	return arr;
}

char *xy_status_build(const struct xy_manager *m)
{
	struct xy_stats st;
	xy_manager_stats(m, &st);
	json_t *doc = json_pack(
		"{s:{s:s,s:i,s:f},s:o,s:o,s:o,s:I,s:I,s:I,s:{s:I,s:I}}",
		"manager", "name", m->name, "port", m->port, "uptime",
		xy_mono() - m->started, "tasks", tasks_json(m), "workers",
		workers_json(m), "pools", xy_pools_status(m->pools),
		"bytes_sent", (json_int_t)st.bytes_sent, "bytes_received",
		(json_int_t)st.bytes_received, "transfers_active",
		(json_int_t)st.transfers_active, "catalog", "files",
		(json_int_t)st.files, "objects", (json_int_t)st.objects);
	if (!doc)
		return NULL;
	/* Where `xylem status HOST:PORT TASK` reads a task's events. */
	if (m->history)
		json_object_set_new(doc, "history",
				    json_string(xy_history_path(m->history)));
	char *s = json_dumps(doc, JSON_COMPACT);
	json_decref(doc);
	return s;
}

/* ---------------------------------------- the public API's status */

void xy_manager_stats(const struct xy_manager *m, struct xy_stats *out)
{
	int busy;
	memset(out, 0, sizeof *out);
	/* An array's indexes not made yet wait too (array.c). */
	out->tasks_waiting = m->n_waiting + xy__array_pending(m);
	out->tasks_ready = xy_sched_count(m->sched);
	out->tasks_running = m->n_running;
	out->tasks_done = m->n_done;
	out->tasks_succeeded = m->n_succeeded;
	out->tasks_failed = m->n_failed;
	out->workers_connected = xy_wtable_count(m->wtable, &busy,
						 &out->cores_total,
						 &out->cores_used);
	out->workers_busy = busy;
	out->bytes_sent = (int64_t)xy_xfer_server_bytes_sent(m->xfer);
	out->bytes_received = xy_xplan_bytes_received(m->xplan);
	out->transfers_active = xy_xplan_active(m->xplan);
	xy_sched_stats(m->sched, &out->decisions, &out->decision_seconds,
		       &out->send_seconds);
	out->temps_remade = xy_lineage_remakes(m->lineage);
	xy_catalog_counts(m->catalog, &out->files, &out->objects);
	out->tasks_skipped = xy_memo_skipped(m->memo);
	out->tasks_adopted = xy_adopt_adopted(m->adopt);
	out->clients_connected = xy_clients_connected(m->clients);
}

char *xy_manager_status_json(const struct xy_manager *m)
{
	return xy_status_build(m);
}
