/*
 * history.c: the run history, written to SQLite by a thread of its own.
 * Callers copy each event into one allocation and append it to a queue under
 * a mutex; the writer thread takes the whole queue at once and writes it in
 * one transaction with prepared statements. Pairs with history.h; the schema
 * is documented in docs/history.md.
 */
#include "history.h"

#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "util.h"

/* A batch grows for at most this long after its first event, or until it
 * holds BATCH_MAX events, so a busy manager commits a few times a second
 * instead of once per event. */
#define BATCH_LINGER_MS 50
#define BATCH_MAX 4096
/* Past this many queued events, new ones are dropped (and counted) rather
 * than letting a stalled disk grow the manager's memory without bound. */
#define QUEUE_MAX (1 << 20)

enum ev_kind { EV_TASK, EV_WORKER, EV_TRANSFER };
enum { S_A, S_B, S_C, S_D, S_E, NSTR };

/* One queued event. The strings live in the same allocation, after the
 * struct; a NULL string stays NULL. Which fields mean what depends on kind
 * (see the bind functions below). */
struct event {
	struct event *next;
	enum ev_kind kind;
	double t;
	uint64_t u; /* task id, or bytes */
	double seconds;
	int attempt, result, exit_code;
	const char *s[NSTR];
};

struct xy_history {
	sqlite3 *db;
	sqlite3_stmt *ins[3]; /* indexed by enum ev_kind */
	sqlite3_stmt *end_run;
	int64_t run;
	long output_max; /* bytes of a task's output kept; <0: none */
	char *path;

	pthread_t thread;
	int thread_started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct event *head, *tail;
	size_t queued;
	int stopping;
	uint64_t dropped;
	int write_failed; /* logged once */
};

static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS runs ("
	" id INTEGER PRIMARY KEY, manager TEXT, started REAL, ended REAL);"
	"CREATE TABLE IF NOT EXISTS task_events ("
	" run INTEGER, time REAL, task_id INTEGER, tag TEXT, event TEXT,"
	" worker TEXT, attempt INTEGER, result INTEGER, exit_code INTEGER,"
	" detail TEXT, output TEXT);"
	"CREATE TABLE IF NOT EXISTS worker_events ("
	" run INTEGER, time REAL, worker TEXT, event TEXT, detail TEXT);"
	"CREATE TABLE IF NOT EXISTS transfers ("
	" run INTEGER, time REAL, object TEXT, source TEXT, dest TEXT,"
	" bytes INTEGER, seconds REAL, status TEXT, path TEXT, kind TEXT);"
	"CREATE INDEX IF NOT EXISTS task_events_task"
	" ON task_events(task_id);"
	"CREATE INDEX IF NOT EXISTS task_events_run_task"
	" ON task_events(run, task_id);"
	"CREATE INDEX IF NOT EXISTS worker_events_worker"
	" ON worker_events(worker);";

/* Columns added after the first schema: a file written by an older
 * version gets them when opened (the ALTER fails, harmlessly, where the
 * column exists already). */
static const char *const added_columns[] = {
	"ALTER TABLE task_events ADD COLUMN output TEXT",
	"ALTER TABLE transfers ADD COLUMN path TEXT",
	"ALTER TABLE transfers ADD COLUMN kind TEXT",
};

static const char *const insert_sql[3] = {
	[EV_TASK] = "INSERT INTO task_events (run, time, task_id, tag, event,"
		    " worker, attempt, result, exit_code, detail, output)"
		    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
	[EV_WORKER] = "INSERT INTO worker_events (run, time, worker, event,"
		      " detail) VALUES (?1, ?2, ?3, ?4, ?5)",
	[EV_TRANSFER] = "INSERT INTO transfers (run, time, object, source,"
			" dest, bytes, seconds, status, path, kind)"
			" VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
};

static int db_fail(struct xy_history *h, const char *path, const char *what,
		   char *err, size_t errlen)
{
	const char *why = h->db ? sqlite3_errmsg(h->db) : "out of memory";
	return xy_fail(err, errlen, EIO, "history %s: %s: %s", path, what, why);
}

/* Turns on WAL and checks that it took: SQLite answers with the mode now in
 * force, which stays "delete" on filesystems that cannot hold a WAL. */
static int set_wal(struct xy_history *h, const char *path, char *err,
		   size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int ok = 0;

	if (sqlite3_prepare_v2(h->db, "PRAGMA journal_mode=WAL", -1, &st,
			       NULL) != SQLITE_OK)
		return db_fail(h, path, "cannot set WAL mode", err, errlen);
	if (sqlite3_step(st) == SQLITE_ROW) {
		const char *mode = (const char *)sqlite3_column_text(st, 0);
		ok = mode && strcmp(mode, "wal") == 0;
	}
	sqlite3_finalize(st);
	if (!ok)
		return xy_fail(err, errlen, EIO,
			       "history %s: WAL mode is not available", path);
	return 0;
}

static int prepare_all(struct xy_history *h, const char *path, char *err,
		       size_t errlen)
{
	for (int k = 0; k < 3; k++)
		if (sqlite3_prepare_v2(h->db, insert_sql[k], -1, &h->ins[k],
				       NULL) != SQLITE_OK)
			return db_fail(h, path, "cannot prepare", err, errlen);
	if (sqlite3_prepare_v2(h->db, "UPDATE runs SET ended = ?2 WHERE id = ?1",
			       -1, &h->end_run, NULL) != SQLITE_OK)
		return db_fail(h, path, "cannot prepare", err, errlen);
	return 0;
}

static int add_run(struct xy_history *h, const char *path, const char *name,
		   char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int rc;

	rc = sqlite3_prepare_v2(h->db,
				"INSERT INTO runs (manager, started)"
				" VALUES (?1, ?2)",
				-1, &st, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_text(st, 1, name ? name : "xylem", -1,
				  SQLITE_TRANSIENT);
		sqlite3_bind_double(st, 2, xy_now());
		rc = sqlite3_step(st);
	}
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return db_fail(h, path, "cannot record the run", err, errlen);
	h->run = sqlite3_last_insert_rowid(h->db);
	return 0;
}

static int open_db(struct xy_history *h, const char *path, const char *name,
		   char *err, size_t errlen)
{
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
		    SQLITE_OPEN_NOMUTEX;

	if (sqlite3_open_v2(path, &h->db, flags, NULL) != SQLITE_OK)
		return db_fail(h, path, "cannot open", err, errlen);
	sqlite3_busy_timeout(h->db, 5000);
	if (set_wal(h, path, err, errlen) < 0)
		return -1;
	if (sqlite3_exec(h->db, "PRAGMA synchronous=NORMAL", NULL, NULL,
			 NULL) != SQLITE_OK ||
	    sqlite3_exec(h->db, schema_sql, NULL, NULL, NULL) != SQLITE_OK)
		return db_fail(h, path, "cannot create the schema", err,
			       errlen);
	for (size_t i = 0; i < sizeof added_columns / sizeof *added_columns;
	     i++)
		sqlite3_exec(h->db, added_columns[i], NULL, NULL, NULL);
	if (prepare_all(h, path, err, errlen) < 0)
		return -1;
	return add_run(h, path, name, err, errlen);
}

static void bind_str(sqlite3_stmt *st, int col, const char *s)
{
	if (s)
		sqlite3_bind_text(st, col, s, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, col);
}

/* Where a transfer's bytes came from, as the report groups them: the
 * manager, a URL, or a peer worker; "return" for an output a worker sends
 * back to the manager. */
static const char *transfer_kind(const char *source, const char *dest)
{
	if (!source)
		return NULL;
	if (strcmp(source, "manager") == 0)
		return "manager";
	if (strstr(source, "://"))
		return "url";
	if (dest && strcmp(dest, "manager") == 0)
		return "return";
	return "peer";
}

/* Binds e to its kind's statement, columns in the order of insert_sql. */
static sqlite3_stmt *bind_event(struct xy_history *h, const struct event *e)
{
	sqlite3_stmt *st = h->ins[e->kind];

	sqlite3_reset(st);
	sqlite3_bind_int64(st, 1, h->run);
	sqlite3_bind_double(st, 2, e->t);
	switch (e->kind) {
	case EV_TASK:
		sqlite3_bind_int64(st, 3, (sqlite3_int64)e->u);
		bind_str(st, 4, e->s[S_A]); /* tag */
		bind_str(st, 5, e->s[S_B]); /* event */
		bind_str(st, 6, e->s[S_C]); /* worker */
		sqlite3_bind_int(st, 7, e->attempt);
		sqlite3_bind_int(st, 8, e->result);
		sqlite3_bind_int(st, 9, e->exit_code);
		bind_str(st, 10, e->s[S_D]); /* detail */
		bind_str(st, 11, e->s[S_E]); /* output */
		break;
	case EV_WORKER:
		bind_str(st, 3, e->s[S_A]); /* worker */
		bind_str(st, 4, e->s[S_B]); /* event */
		bind_str(st, 5, e->s[S_C]); /* detail */
		break;
	case EV_TRANSFER:
		bind_str(st, 3, e->s[S_A]); /* object */
		bind_str(st, 4, e->s[S_B]); /* source */
		bind_str(st, 5, e->s[S_C]); /* dest */
		sqlite3_bind_int64(st, 6, (sqlite3_int64)e->u);
		sqlite3_bind_double(st, 7, e->seconds);
		bind_str(st, 8, e->s[S_D]); /* status */
		bind_str(st, 9, e->s[S_E]); /* path */
		bind_str(st, 10, transfer_kind(e->s[S_B], e->s[S_C]));
		break;
	}
	return st;
}

static void write_failed(struct xy_history *h, const char *what)
{
	if (!h->write_failed)
		XY_LOGW("history", "%s: %s (later failures not logged)", what,
			sqlite3_errmsg(h->db));
	h->write_failed = 1;
}

/* Writes and frees a list of events in one transaction. */
static void write_batch(struct xy_history *h, struct event *list)
{
	int in_tx = sqlite3_exec(h->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;

	if (!in_tx)
		write_failed(h, "cannot begin a transaction");
	while (list) {
		struct event *next = list->next;
		sqlite3_stmt *st = bind_event(h, list);

		if (sqlite3_step(st) != SQLITE_DONE)
			write_failed(h, "cannot insert an event");
		sqlite3_clear_bindings(st);
		sqlite3_reset(st);
		free(list);
		list = next;
	}
	if (in_tx && sqlite3_exec(h->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		write_failed(h, "cannot commit");
		sqlite3_exec(h->db, "ROLLBACK", NULL, NULL, NULL);
	}
}

static void deadline_after_ms(struct timespec *ts, long ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/* Waits for work under h->lock and returns the whole queue, or NULL when
 * the history is closing and nothing is left. */
static struct event *take_batch(struct xy_history *h)
{
	struct timespec deadline;
	struct event *list;

	while (!h->head && !h->stopping)
		pthread_cond_wait(&h->cond, &h->lock);
	if (!h->head)
		return NULL;
	deadline_after_ms(&deadline, BATCH_LINGER_MS);
	while (!h->stopping && h->queued < BATCH_MAX)
		if (pthread_cond_timedwait(&h->cond, &h->lock, &deadline) ==
		    ETIMEDOUT)
			break;
	list = h->head;
	h->head = h->tail = NULL;
	h->queued = 0;
	return list;
}

static void *writer_main(void *arg)
{
	struct xy_history *h = arg;
	struct event *list;

	pthread_mutex_lock(&h->lock);
	while ((list = take_batch(h))) {
		pthread_mutex_unlock(&h->lock);
		write_batch(h, list);
		pthread_mutex_lock(&h->lock);
	}
	pthread_mutex_unlock(&h->lock);
	return NULL;
}

static int start_thread(struct xy_history *h, char *err, size_t errlen)
{
	pthread_condattr_t ca;
	int rc;

	pthread_mutex_init(&h->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&h->cond, &ca);
	pthread_condattr_destroy(&ca);
	rc = pthread_create(&h->thread, NULL, writer_main, h);
	if (rc != 0)
		return xy_fail(err, errlen, rc, "history: cannot start thread: %s",
			       strerror(rc));
	h->thread_started = 1;
	return 0;
}

struct xy_history *xy_history_open(const char *path, const char *manager_name,
				   char *err, size_t errlen)
{
	struct xy_history *h;

	if (!path || !*path) {
		xy_fail(err, errlen, EINVAL, "history: no path given");
		return NULL;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		xy_fail(err, errlen, ENOMEM, "history: out of memory");
		return NULL;
	}
	h->output_max = XY_HISTORY_OUTPUT_DEFAULT;
	if (!(h->path = strdup(path))) {
		xy_fail(err, errlen, ENOMEM, "history: out of memory");
		goto error;
	}
	if (open_db(h, path, manager_name, err, errlen) < 0)
		goto error;
	if (start_thread(h, err, errlen) < 0)
		goto error;
	/* Absolute, for a status client in another directory. */
	char *abs = realpath(path, NULL);
	if (abs) {
		free(h->path);
		h->path = abs;
	}
	return h;
error:
	xy_history_close(h);
	return NULL;
}

static void close_db(struct xy_history *h)
{
	if (!h->db)
		return;
	if (h->end_run && h->run) {
		sqlite3_bind_int64(h->end_run, 1, h->run);
		sqlite3_bind_double(h->end_run, 2, xy_now());
		sqlite3_step(h->end_run);
	}
	for (int k = 0; k < 3; k++)
		sqlite3_finalize(h->ins[k]);
	sqlite3_finalize(h->end_run);
	sqlite3_close(h->db);
}

void xy_history_close(struct xy_history *h)
{
	if (!h)
		return;
	if (h->thread_started) {
		pthread_mutex_lock(&h->lock);
		h->stopping = 1;
		pthread_cond_signal(&h->cond);
		pthread_mutex_unlock(&h->lock);
		pthread_join(h->thread, NULL);
		pthread_cond_destroy(&h->cond);
		pthread_mutex_destroy(&h->lock);
	}
	if (h->dropped)
		XY_LOGW("history", "%llu events dropped: the disk did not keep up",
			(unsigned long long)h->dropped);
	close_db(h);
	free(h->path);
	free(h);
}

/* Allocates an event with copies of the given strings. */
static struct event *event_new(enum ev_kind kind, double t,
			       const char *const str[NSTR])
{
	size_t len[NSTR], total = sizeof(struct event);
	struct event *e;
	char *p;

	for (int i = 0; i < NSTR; i++) {
		len[i] = str[i] ? strlen(str[i]) + 1 : 0;
		total += len[i];
	}
	e = malloc(total);
	if (!e)
		return NULL;
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	e->t = t;
	p = (char *)(e + 1);
	for (int i = 0; i < NSTR; i++) {
		e->s[i] = str[i] ? memcpy(p, str[i], len[i]) : NULL;
		p += len[i];
	}
	return e;
}

/* Appends e, waking the writer when the queue was empty (it then lingers
 * for more) or when a batch is full. */
static void enqueue(struct xy_history *h, struct event *e)
{
	int wake;

	pthread_mutex_lock(&h->lock);
	if (h->queued >= QUEUE_MAX || h->stopping) {
		h->dropped++;
		pthread_mutex_unlock(&h->lock);
		free(e);
		return;
	}
	wake = !h->head || h->queued + 1 == BATCH_MAX;
	if (h->tail)
		h->tail->next = e;
	else
		h->head = e;
	h->tail = e;
	h->queued++;
	if (wake)
		pthread_cond_signal(&h->cond);
	pthread_mutex_unlock(&h->lock);
}

static void note_oom(struct xy_history *h)
{
	pthread_mutex_lock(&h->lock);
	h->dropped++;
	pthread_mutex_unlock(&h->lock);
}

const char *xy_history_path(const struct xy_history *h)
{
	return h ? h->path : NULL;
}

void xy_history_set_output_max(struct xy_history *h, long max)
{
	if (h)
		h->output_max = max;
}

/* The tail of a task's output that the history keeps, as a string (a NUL
 * inside ends it), in buf, or NULL for none. */
static const char *output_tail(const struct xy_history *h, const char *out,
			       size_t len, char **buf)
{
	size_t keep;

	*buf = NULL;
	if (!out || !len || h->output_max <= 0)
		return NULL;
	keep = len < (size_t)h->output_max ? len : (size_t)h->output_max;
	*buf = malloc(keep + 1);
	if (!*buf)
		return NULL;
	memcpy(*buf, out + (len - keep), keep);
	(*buf)[keep] = '\0';
	return *buf;
}

void xy_history_task(struct xy_history *h, double t, uint64_t task_id,
		     const char *tag, const char *event, const char *worker,
		     int attempt, int result, int exit_code,
		     const char *detail, const char *output, size_t output_len)
{
	struct event *e;
	char *tail;

	if (!h)
		return;
	const char *str[NSTR] = {tag, event, worker, detail,
				 output_tail(h, output, output_len, &tail)};
	e = event_new(EV_TASK, t, str);
	free(tail);
	if (!e) {
		note_oom(h);
		return;
	}
	e->u = task_id;
	e->attempt = attempt;
	e->result = result;
	e->exit_code = exit_code;
	enqueue(h, e);
}

void xy_history_worker(struct xy_history *h, double t, const char *worker,
		       const char *event, const char *detail)
{
	const char *str[NSTR] = {worker, event, detail, NULL, NULL};
	struct event *e;

	if (!h)
		return;
	e = event_new(EV_WORKER, t, str);
	if (!e) {
		note_oom(h);
		return;
	}
	enqueue(h, e);
}

void xy_history_transfer(struct xy_history *h, double t, const char *object,
			 const char *source, const char *dest,
			 uint64_t bytes, double seconds, const char *status,
			 const char *path)
{
	const char *str[NSTR] = {object, source, dest, status, path};
	struct event *e;

	if (!h)
		return;
	e = event_new(EV_TRANSFER, t, str);
	if (!e) {
		note_oom(h);
		return;
	}
	e->u = bytes;
	e->seconds = seconds;
	enqueue(h, e);
}
