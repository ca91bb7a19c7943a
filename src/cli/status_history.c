/*
 * status_history.c: the task side of `xylem status`, read from a run's
 * history (docs/history.md): a list of tasks with filters (state, tag,
 * worker, a limit) and one task's events and output. status.c calls it
 * for a history file given on the command line, or for the history a live
 * manager names in its status document. Read-only; a run still writing
 * the file (WAL mode) is read as of now.
 */
#include "status_history.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Each task of a run: its last event, its first submit, its last dispatch
 * and its done event (if any). */
static const char list_sql[] =
	"WITH t AS (SELECT task_id, max(rowid) AS last,"
	"  min(CASE WHEN event = 'submitted' THEN time END) AS sub,"
	"  max(CASE WHEN event = 'dispatched' THEN time END) AS disp,"
	"  max(CASE WHEN event = 'done' THEN rowid END) AS done_row"
	" FROM task_events WHERE run = ?1 GROUP BY task_id)"
	" SELECT t.task_id, coalesce(e.tag, ''), e.event, coalesce("
	"  d.worker, e.worker, ''), e.attempt, d.result, d.exit_code, t.sub,"
	"  t.disp, d.time, coalesce(d.detail, '')"
	" FROM t JOIN task_events e ON e.rowid = t.last"
	" LEFT JOIN task_events d ON d.rowid = t.done_row"
	" ORDER BY t.task_id";

struct row {
	long long id;
	const char *tag, *event, *worker, *detail;
	int attempt, has_done, result, exit_code;
	double sub, disp, done;
};

static const char *state_of(const struct row *r)
{
	if (r->has_done)
		return r->result == 0 ? "succeeded" : "failed";
	if (!strcmp(r->event, "dispatched") || !strcmp(r->event, "adopted"))
		return "running";
	return "waiting";
}

static int matches(const struct row *r, const struct xy_status_filter *f)
{
	const char *st = state_of(r);

	if (f->state && strcmp(f->state, st) &&
	    !(strcmp(f->state, "done") == 0 && r->has_done))
		return 0;
	if (f->tag && strcmp(f->tag, r->tag))
		return 0;
	if (f->worker && strcmp(f->worker, r->worker))
		return 0;
	return 1;
}

static const char *col_text(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);
	return s ? s : "";
}

static void read_row(sqlite3_stmt *st, struct row *r)
{
	r->id = sqlite3_column_int64(st, 0);
	r->tag = col_text(st, 1);
	r->event = col_text(st, 2);
	r->worker = col_text(st, 3);
	r->attempt = sqlite3_column_int(st, 4);
	r->has_done = sqlite3_column_type(st, 5) != SQLITE_NULL;
	r->result = sqlite3_column_int(st, 5);
	r->exit_code = sqlite3_column_int(st, 6);
	r->sub = sqlite3_column_double(st, 7);
	r->disp = sqlite3_column_double(st, 8);
	r->done = sqlite3_column_double(st, 9);
	r->detail = col_text(st, 10);
}

static void print_row(const struct row *r)
{
	char secs[32] = "-";

	if (r->has_done && r->disp > 0)
		snprintf(secs, sizeof secs, "%.3f", r->done - r->disp);
	printf("%-8lld %-24.24s %-10s %-22.22s %7d %9s  %s\n", r->id,
	       *r->tag ? r->tag : "-", state_of(r),
	       *r->worker ? r->worker : "-", r->attempt, secs,
	       r->has_done && r->result ? r->detail : "");
}

/* The run to show: f->run, else the file's last. */
static long long pick_run(sqlite3 *db, const struct xy_status_filter *f)
{
	sqlite3_stmt *st;
	long long run = -1;

	if (f->run > 0)
		return f->run;
	if (sqlite3_prepare_v2(db, "SELECT max(id) FROM runs", -1, &st,
			       NULL) != SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW &&
	    sqlite3_column_type(st, 0) != SQLITE_NULL)
		run = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return run;
}

static int list_tasks(sqlite3 *db, long long run,
		      const struct xy_status_filter *f)
{
	sqlite3_stmt *st;
	long long shown = 0, matched = 0;
	struct row r;

	if (sqlite3_prepare_v2(db, list_sql, -1, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "xylem status: %s\n", sqlite3_errmsg(db));
		return XY_EXIT_FAIL;
	}
	sqlite3_bind_int64(st, 1, run);
	printf("%-8s %-24s %-10s %-22s %7s %9s  %s\n", "ID", "TAG", "STATE",
	       "WORKER", "ATTEMPT", "SECONDS", "ERROR");
	while (sqlite3_step(st) == SQLITE_ROW) {
		read_row(st, &r);
		if (!matches(&r, f))
			continue;
		matched++;
		if (f->limit <= 0 || shown < f->limit) {
			print_row(&r);
			shown++;
		}
	}
	sqlite3_finalize(st);
	if (matched > shown)
		printf("(%lld more; --limit 0 shows all)\n", matched - shown);
	else if (!matched)
		printf("(no task matches)\n");
	return XY_EXIT_OK;
}

static void print_events(sqlite3 *db, long long run, long long id,
			 double *t0)
{
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(db,
			       "SELECT time, event, coalesce(worker, ''),"
			       " attempt, result, exit_code,"
			       " coalesce(detail, '') FROM task_events"
			       " WHERE run = ?1 AND task_id = ?2"
			       " ORDER BY rowid",
			       -1, &st, NULL) != SQLITE_OK)
		return;
	sqlite3_bind_int64(st, 1, run);
	sqlite3_bind_int64(st, 2, id);
	while (sqlite3_step(st) == SQLITE_ROW) {
		double t = sqlite3_column_double(st, 0);
		const char *ev = col_text(st, 1);
		int ended = !strcmp(ev, "done") || !strcmp(ev, "retry");

		if (*t0 == 0)
			*t0 = t;
		printf("  %+9.3f s  %-10s %-22s", t - *t0, ev, col_text(st, 2));
		if (ended)
			printf(" result %d, exit code %d", sqlite3_column_int(st, 4),
			       sqlite3_column_int(st, 5));
		if (*col_text(st, 6))
			printf(" %s%.200s", ended ? "- " : "", col_text(st, 6));
		printf("\n");
	}
	sqlite3_finalize(st);
}

/* The output its last ended attempt left, with its attempt. */
static void print_output(sqlite3 *db, long long run, long long id)
{
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(db,
			       "SELECT output, attempt FROM task_events"
			       " WHERE run = ?1 AND task_id = ?2 AND"
			       " output IS NOT NULL ORDER BY rowid DESC"
			       " LIMIT 1",
			       -1, &st, NULL) != SQLITE_OK)
		return; /* an older file, without the column */
	sqlite3_bind_int64(st, 1, run);
	sqlite3_bind_int64(st, 2, id);
	if (sqlite3_step(st) == SQLITE_ROW) {
		const char *out = col_text(st, 0);
		size_t n = strlen(out);

		printf("output (attempt %d, its tail):\n%s%s",
		       sqlite3_column_int(st, 1), out,
		       n && out[n - 1] != '\n' ? "\n" : "");
	} else {
		printf("output: none kept\n");
	}
	sqlite3_finalize(st);
}

/* Task ids that `which` names in run: an id, or every task whose tag it
 * is (a workflow's task name, a Python function). Returns how many. */
static int find_tasks(sqlite3 *db, long long run, const char *which,
		      long long *ids, int max)
{
	sqlite3_stmt *st;
	char *end;
	long long id = strtoll(which, &end, 10);
	int n = 0;

	if (sqlite3_prepare_v2(db,
			       "SELECT DISTINCT task_id FROM task_events"
			       " WHERE run = ?1 AND (tag = ?2 OR (?3 AND"
			       " task_id = ?4)) ORDER BY task_id",
			       -1, &st, NULL) != SQLITE_OK)
		return 0;
	sqlite3_bind_int64(st, 1, run);
	sqlite3_bind_text(st, 2, which, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, *which && !*end);
	sqlite3_bind_int64(st, 4, id);
	while (n < max && sqlite3_step(st) == SQLITE_ROW)
		ids[n++] = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return n;
}

static int show_task(sqlite3 *db, long long run, const char *which,
		     const struct xy_status_filter *f)
{
	long long ids[64];
	int max = f->limit > 0 && f->limit < 64 ? (int)f->limit : 64;
	int n = find_tasks(db, run, which, ids, max);

	if (!n) {
		fprintf(stderr, "xylem status: no task '%s' in run %lld\n",
			which, run);
		return XY_EXIT_FAIL;
	}
	for (int i = 0; i < n; i++) {
		double t0 = 0;

		printf("%stask %lld\n", i ? "\n" : "", ids[i]);
		print_events(db, run, ids[i], &t0);
		print_output(db, run, ids[i]);
	}
	return XY_EXIT_OK;
}

int xy_status_history(const char *path, const char *task,
		      const struct xy_status_filter *f)
{
	sqlite3 *db = NULL;
	long long run;
	int rc;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) !=
	    SQLITE_OK) {
		fprintf(stderr, "xylem status: cannot open the history %s: %s\n",
			path, db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return XY_EXIT_FAIL;
	}
	sqlite3_busy_timeout(db, 5000);
	run = pick_run(db, f);
	if (run < 0) {
		fprintf(stderr, "xylem status: %s holds no run history\n", path);
		sqlite3_close(db);
		return XY_EXIT_FAIL;
	}
	if (task)
		rc = show_task(db, run, task, f);
	else
		rc = list_tasks(db, run, f);
	sqlite3_close(db);
	return rc;
}
