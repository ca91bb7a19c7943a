/*
 * test_history.c: unit tests for the run history (src/manager/history.c):
 * every queued event reaches the database by close, a second open appends
 * a new run, the database is in WAL mode, and a bad path fails with a
 * reason.
 */
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "history.h"

static void db_path(char *out, size_t n)
{
	snprintf(out, n, "%s/history.db", xy_test_tmpdir());
}

/* Runs a query returning one integer. */
static long long query_int(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	long long v = -1;

	XY_CHECK(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) ==
		 SQLITE_OK);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
		fprintf(stderr, "%s: %s\n", sql, sqlite3_errmsg(db));
		exit(1);
	}
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static char *query_text(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	char *v = NULL;

	XY_CHECK(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) ==
		 SQLITE_OK);
	XY_CHECK(sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		v = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static void t_single_events_land(void)
{
	char path[4096], err[256] = "";
	struct xy_history *h;

	db_path(path, sizeof path);
	h = xy_history_open(path, "unit", err, sizeof err);
	if (!h)
		fprintf(stderr, "open: %s\n", err);
	XY_CHECK(h != NULL);
	xy_history_task(h, 100.5, 7, "sort1", "done", "w1", 2, 1, 3,
			"exit code 3", NULL, 0);
	xy_history_task(h, 101.0, 8, NULL, "submitted", NULL, 0, 0, 0, NULL, NULL, 0);
	xy_history_worker(h, 99.0, "w1", "connected", "4 cores");
	xy_history_transfer(h, 100.0, "abcd", "manager", "w1", 12345, 0.25,
			    "ok", "/data/in.txt");
	xy_history_close(h);

	XY_CHECK_EQ(query_int(path, "SELECT count(*) FROM task_events"), 2);
	XY_CHECK_EQ(query_int(path, "SELECT exit_code FROM task_events"
				    " WHERE task_id = 7"), 3);
	XY_CHECK_EQ(query_int(path, "SELECT attempt FROM task_events"
				    " WHERE tag = 'sort1' AND event = 'done'"
				    " AND worker = 'w1' AND result = 1"), 2);
	XY_CHECK_EQ(query_int(path, "SELECT count(*) FROM task_events"
				    " WHERE task_id = 8 AND tag IS NULL"
				    " AND worker IS NULL AND detail IS NULL"), 1);
	XY_CHECK_EQ(query_int(path, "SELECT count(*) FROM worker_events"
				    " WHERE worker = 'w1' AND"
				    " event = 'connected'"), 1);
	XY_CHECK_EQ(query_int(path, "SELECT bytes FROM transfers"
				    " WHERE object = 'abcd' AND dest = 'w1'"
				    " AND status = 'ok'"), 12345);
	XY_CHECK_EQ(query_int(path, "SELECT count(*) FROM runs"
				    " WHERE manager = 'unit'"
				    " AND ended >= started"), 1);
}

struct producer {
	struct xy_history *h;
	int base, n;
};

static void *produce(void *arg)
{
	struct producer *p = arg;
	char tag[32];

	for (int i = 0; i < p->n; i++) {
		snprintf(tag, sizeof tag, "t%d", p->base + i);
		xy_history_task(p->h, 1.0 + i, (uint64_t)(p->base + i), tag,
				"done", "w", 1, 0, 0, NULL, NULL, 0);
		if (i % 1000 == 0)
			xy_history_worker(p->h, 1.0, "w", "keepalive", NULL);
	}
	return NULL;
}

/* Many events from many calls (and several threads, which the queue must
 * tolerate even though the manager calls from one) all land after close. */
static void t_many_events_land(void)
{
	enum { THREADS = 4, PER = 25000 };
	char path[4096], err[256] = "";
	struct producer p[THREADS];
	pthread_t th[THREADS];
	struct xy_history *h;

	db_path(path, sizeof path);
	h = xy_history_open(path, "many", err, sizeof err);
	XY_CHECK(h != NULL);
	for (int i = 0; i < THREADS; i++) {
		p[i] = (struct producer){h, i * PER, PER};
		XY_CHECK(pthread_create(&th[i], NULL, produce, &p[i]) == 0);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	xy_history_close(h);

	XY_CHECK_EQ(query_int(path, "SELECT count(*) FROM task_events"),
		    THREADS * PER);
	XY_CHECK_EQ(query_int(path, "SELECT count(DISTINCT task_id)"
				    " FROM task_events"), THREADS * PER);
	XY_CHECK_EQ(query_int(path, "SELECT max(task_id) FROM task_events"),
		    THREADS * PER - 1);
	XY_CHECK_EQ(query_int(path, "SELECT count(*) FROM worker_events"),
		    THREADS * (PER / 1000));
}

/* Events that trickle in (each after the writer went idle) land too. */
static void t_trickle(void)
{
	char path[4096], err[256] = "";
	struct xy_history *h;

	db_path(path, sizeof path);
	h = xy_history_open(path, "trickle", err, sizeof err);
	XY_CHECK(h != NULL);
	for (int i = 0; i < 5; i++) {
		xy_history_task(h, i, i, "x", "done", NULL, 1, 0, 0, NULL, NULL, 0);
		usleep(80 * 1000);
	}
	/* Written before close: the linger is far shorter than this. */
	XY_CHECK(query_int(path, "SELECT count(*) FROM task_events") >= 4);
	xy_history_close(h);
	XY_CHECK_EQ(query_int(path, "SELECT count(*) FROM task_events"), 5);
}

static void t_second_open_appends(void)
{
	char path[4096], err[256] = "";
	struct xy_history *h;

	db_path(path, sizeof path);
	h = xy_history_open(path, "first", err, sizeof err);
	XY_CHECK(h != NULL);
	xy_history_task(h, 1, 1, "a", "done", NULL, 1, 0, 0, NULL, NULL, 0);
	xy_history_close(h);

	h = xy_history_open(path, "second", err, sizeof err);
	XY_CHECK(h != NULL);
	xy_history_task(h, 2, 1, "a", "done", NULL, 1, 0, 0, NULL, NULL, 0);
	xy_history_task(h, 3, 2, "b", "done", NULL, 1, 0, 0, NULL, NULL, 0);
	xy_history_close(h);

	XY_CHECK_EQ(query_int(path, "SELECT count(*) FROM runs"), 2);
	XY_CHECK_EQ(query_int(path, "SELECT count(*) FROM task_events"), 3);
	XY_CHECK_EQ(query_int(path, "SELECT count(*) FROM task_events e"
				    " JOIN runs r ON e.run = r.id"
				    " WHERE r.manager = 'second'"), 2);
	XY_CHECK_EQ(query_int(path, "SELECT count(*) FROM task_events e"
				    " JOIN runs r ON e.run = r.id"
				    " WHERE r.manager = 'first'"), 1);
}

static void t_wal_mode(void)
{
	char path[4096], err[256] = "";
	struct xy_history *h;
	char *mode;

	db_path(path, sizeof path);
	h = xy_history_open(path, "wal", err, sizeof err);
	XY_CHECK(h != NULL);
	xy_history_worker(h, 1, "w", "connected", NULL);
	xy_history_close(h);
	mode = query_text(path, "PRAGMA journal_mode");
	XY_CHECK(mode != NULL);
	XY_CHECK(strcmp(mode, "wal") == 0);
	free(mode);
}

static void t_unwritable_path(void)
{
	char path[8192], file[4096], err[256] = "";
	struct xy_history *h;
	FILE *f;

	/* A path under a regular file cannot be created, even by root. */
	snprintf(file, sizeof file, "%s/plain", xy_test_tmpdir());
	f = fopen(file, "w");
	XY_CHECK(f != NULL);
	fclose(f);
	snprintf(path, sizeof path, "%s/history.db", file);
	h = xy_history_open(path, "bad", err, sizeof err);
	XY_CHECK(h == NULL);
	XY_CHECK(err[0] != '\0');
	XY_CHECK(strstr(err, path) != NULL);

	err[0] = '\0';
	h = xy_history_open("/nonexistent-xylem-dir/h.db", "bad", err,
			    sizeof err);
	XY_CHECK(h == NULL);
	XY_CHECK(strstr(err, "nonexistent-xylem-dir") != NULL);
}

/* A task's output keeps its tail, at the limit set; transfers carry the
 * file's path and their kind. */
static void t_output_and_paths(void)
{
	char path[4096], err[256] = "", big[10000];
	struct xy_history *h;
	char *v;

	db_path(path, sizeof path);
	h = xy_history_open(path, "out", err, sizeof err);
	XY_CHECK(h != NULL);
	memset(big, 'a', sizeof big);
	memcpy(big + sizeof big - 4, "TAIL", 4);
	xy_history_task(h, 1, 1, "a", "done", "w", 1, 1, 2, "exit 2", big,
			sizeof big);
	xy_history_set_output_max(h, 10);
	xy_history_task(h, 2, 2, "b", "done", "w", 1, 0, 0, NULL,
			"0123456789abcdef", 16);
	xy_history_set_output_max(h, 0);
	xy_history_task(h, 3, 3, "c", "done", "w", 1, 0, 0, NULL, "x", 1);
	xy_history_transfer(h, 1, "ab", "manager", "w", 1, 0.1, "ok", "/p");
	xy_history_transfer(h, 1, "ab", "w", "w2", 1, 0.1, "ok", NULL);
	xy_history_transfer(h, 1, "ab", "https://x/y", "w", 1, 0.1, "ok",
			    "https://x/y");
	xy_history_transfer(h, 1, "ab", "w", "manager", 1, 0.1, "ok", "o");
	xy_history_close(h);

	XY_CHECK_EQ(query_int(path, "SELECT length(output) FROM task_events"
				    " WHERE task_id = 1"),
		    XY_HISTORY_OUTPUT_DEFAULT);
	v = query_text(path, "SELECT substr(output, -4) FROM task_events"
			     " WHERE task_id = 1");
	XY_CHECK(v && strcmp(v, "TAIL") == 0);
	free(v);
	v = query_text(path, "SELECT output FROM task_events"
			     " WHERE task_id = 2");
	XY_CHECK(v && strcmp(v, "6789abcdef") == 0);
	free(v);
	XY_CHECK_EQ(query_int(path, "SELECT count(*) FROM task_events"
				    " WHERE task_id = 3 AND output IS NULL"),
		    1);
	v = query_text(path, "SELECT group_concat(kind, ',') FROM"
			     " (SELECT kind FROM transfers ORDER BY rowid)");
	XY_CHECK(v && strcmp(v, "manager,peer,url,return") == 0);
	free(v);
	XY_CHECK_EQ(query_int(path, "SELECT count(*) FROM transfers"
				    " WHERE path = '/p'"), 1);
}

/* A history file written before the output, path and kind columns gets
 * them when opened again. */
static void t_old_schema_upgraded(void)
{
	char path[4096], err[256] = "";
	struct xy_history *h;
	sqlite3 *db = NULL;

	db_path(path, sizeof path);
	XY_CHECK(sqlite3_open(path, &db) == SQLITE_OK);
	XY_CHECK(sqlite3_exec(db,
			      "CREATE TABLE runs (id INTEGER PRIMARY KEY,"
			      " manager TEXT, started REAL, ended REAL);"
			      "CREATE TABLE task_events (run INTEGER, time"
			      " REAL, task_id INTEGER, tag TEXT, event TEXT,"
			      " worker TEXT, attempt INTEGER, result INTEGER,"
			      " exit_code INTEGER, detail TEXT);"
			      "CREATE TABLE transfers (run INTEGER, time REAL,"
			      " object TEXT, source TEXT, dest TEXT, bytes"
			      " INTEGER, seconds REAL, status TEXT);",
			      NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(db);
	h = xy_history_open(path, "new", err, sizeof err);
	XY_CHECK(h != NULL);
	xy_history_task(h, 1, 1, "a", "done", "w", 1, 0, 0, NULL, "hi", 2);
	xy_history_transfer(h, 1, "ab", "manager", "w", 1, 0.1, "ok", "/p");
	xy_history_close(h);
	XY_CHECK_EQ(query_int(path, "SELECT count(*) FROM task_events"
				    " WHERE output = 'hi'"), 1);
	XY_CHECK_EQ(query_int(path, "SELECT count(*) FROM transfers"
				    " WHERE path = '/p' AND kind = 'manager'"),
		    1);
}

static void t_close_null(void)
{
	xy_history_close(NULL);
	xy_history_task(NULL, 1, 1, "a", "done", NULL, 1, 0, 0, NULL, NULL, 0);
}

int main(int argc, char **argv)
{
	static const struct xy_test tests[] = {
		XY_TEST(t_single_events_land),
		XY_TEST_T(t_many_events_land, 60),
		XY_TEST(t_trickle),
		XY_TEST(t_second_open_appends),
		XY_TEST(t_wal_mode),
		XY_TEST(t_unwritable_path),
		XY_TEST(t_output_and_paths),
		XY_TEST(t_old_schema_upgraded),
		XY_TEST(t_close_null),
		{0},
	};
	return xy_test_main(argc, argv, tests);
}
