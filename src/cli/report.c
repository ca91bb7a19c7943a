/*
 * report.c: `xylem report HISTORY -o FILE.html`, a run's history
 * (docs/history.md) as one self-contained HTML page. Everything is
 * aggregated here, in one pass over the run's task events in task order:
 * timelines and concurrency in a fixed number of time bins, durations per
 * tag group as quantiles, the slowest tasks as a top-N, the failed ones as
 * the first N, so that the page's size does not grow with the number of
 * tasks. The page draws its charts with report.js, built into this binary
 * (scripts/embed.py), and loads nothing from anywhere.
 */
#include <ctype.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sqlite3.h>

#include "cli.h"
#include "report_js.h"

#define MAX_GROUPS 1000  /* tag groups kept apart; the rest are "(other)" */
#define SHOW_GROUPS 30   /* box plots drawn */
#define SHOW_STACKED 6   /* groups drawn apart in the concurrency chart */
#define OUTPUT_SHOWN 2048 /* bytes of a failed task's output on the page */

struct opts {
	const char *history, *out;
	long long run;
	int bins, top;
};

struct group {
	char *name;
	double *d; /* durations, seconds */
	size_t n, cap;
	long long tasks, failed;
	double *busy; /* task-seconds running per bin */
};

struct slow {
	long long id;
	double seconds, start;
	char *tag, *worker;
};

/* One task as its events stream by. */
struct cur {
	long long id;
	char *tag, *worker, *detail, *output;
	double disp, done;
	double res[3]; /* cores, memory (MB), GPUs held while it runs */
	int has_done, result, exit_code, retries;
};

struct agg {
	const struct opts *o;
	double t0, t1, width;
	long long tasks, succeeded, failed, unfinished, retries;
	long long inputs, cached;
	double *started, *finished, *failed_bins, *busy;
	double *held[3]; /* cores, memory, GPUs in use: unit-seconds per bin */
	struct group *groups;
	size_t n_groups;
	struct group other;
	struct slow *slow;
	int n_slow;
	json_t *failed_list;
};

/* ------------------------------------------------------------ helpers */

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);
	if (!p) {
		fprintf(stderr, "xylem report: out of memory\n");
		exit(XY_EXIT_FAIL);
	}
	return p;
}

static char *xstrdup(const char *s)
{
	char *d = strdup(s ? s : "");
	if (!d) {
		fprintf(stderr, "xylem report: out of memory\n");
		exit(XY_EXIT_FAIL);
	}
	return d;
}

static const char *col(sqlite3_stmt *st, int i)
{
	const char *s = (const char *)sqlite3_column_text(st, i);
	return s ? s : "";
}

/* A tag's group: the tag less trailing digits and separators, so that a
 * workflow's "align-17" and "align-18" (and a task array's members) are
 * one group while Python functions keep their names. */
static void group_name(const char *tag, char *out, size_t n)
{
	size_t len = strlen(tag);

	while (len > 1 && (isdigit((unsigned char)tag[len - 1]) ||
			   strchr("-_.:#[]", tag[len - 1])))
		len--;
	if (!*tag)
		snprintf(out, n, "(untagged)");
	else
		snprintf(out, n, "%.*s", (int)len, tag);
}

static struct group *find_group(struct agg *a, const char *tag)
{
	char name[256];

	group_name(tag, name, sizeof name);
	for (size_t i = 0; i < a->n_groups; i++)
		if (!strcmp(a->groups[i].name, name))
			return &a->groups[i];
	if (a->n_groups == MAX_GROUPS)
		return &a->other;
	struct group *g = &a->groups[a->n_groups++];
	g->name = xstrdup(name);
	g->busy = xcalloc((size_t)a->o->bins, sizeof(double));
	return g;
}

static void push_duration(struct group *g, double d)
{
	if (g->n == g->cap) {
		size_t cap = g->cap ? 2 * g->cap : 64;
		double *nd = realloc(g->d, cap * sizeof(double));
		if (!nd) {
			fprintf(stderr, "xylem report: out of memory\n");
			exit(XY_EXIT_FAIL);
		}
		g->d = nd;
		g->cap = cap;
	}
	g->d[g->n++] = d;
}

static int bin_of(const struct agg *a, double t)
{
	int b = (int)((t - a->t0) / a->width);
	return b < 0 ? 0 : b >= a->o->bins ? a->o->bins - 1 : b;
}

/* Adds the interval [s, e], times weight, to per-bin busy time
 * (task-seconds, or core-seconds, ...). */
static void cover_w(const struct agg *a, double *busy, double s, double e,
		    double weight)
{
	int bs = bin_of(a, s), be = bin_of(a, e);

	if (bs == be) {
		busy[bs] += (e - s) * weight;
		return;
	}
	busy[bs] += (a->t0 + (bs + 1) * a->width - s) * weight;
	for (int b = bs + 1; b < be; b++)
		busy[b] += a->width * weight;
	busy[be] += (e - (a->t0 + be * a->width)) * weight;
}

static void cover(const struct agg *a, double *busy, double s, double e)
{
	cover_w(a, busy, s, e, 1);
}

static void note_slow(struct agg *a, const struct cur *c, double secs)
{
	int at = -1;

	if (a->n_slow < a->o->top) {
		at = a->n_slow++;
	} else {
		at = 0;
		for (int i = 1; i < a->n_slow; i++)
			if (a->slow[i].seconds < a->slow[at].seconds)
				at = i;
		if (a->slow[at].seconds >= secs)
			return;
		free(a->slow[at].tag);
		free(a->slow[at].worker);
	}
	a->slow[at] = (struct slow){c->id, secs, c->disp - a->t0,
				    xstrdup(c->tag), xstrdup(c->worker)};
}

static void note_failed(struct agg *a, const struct cur *c)
{
	char out[OUTPUT_SHOWN + 1];
	size_t n = strlen(c->output ? c->output : "");
	const char *o = c->output ? c->output : "";

	if ((long long)json_array_size(a->failed_list) >= a->o->top)
		return;
	if (n > OUTPUT_SHOWN)
		o += n - OUTPUT_SHOWN;
	snprintf(out, sizeof out, "%s", o);
	json_array_append_new(
		a->failed_list,
		json_pack("{s:I,s:s,s:s,s:i,s:i,s:s,s:s%}", "id",
			  (json_int_t)c->id, "tag", c->tag, "worker",
			  c->worker, "result", c->result, "exit_code",
			  c->exit_code, "error", c->detail, "output", out,
			  strlen(out)));
}

/* --------------------------------------------------------- the stream */

static void cur_reset(struct cur *c)
{
	free(c->tag);
	free(c->worker);
	free(c->detail);
	free(c->output);
	memset(c, 0, sizeof *c);
}

static void finish_task(struct agg *a, struct cur *c)
{
	struct group *g;

	if (!c->tag)
		return; /* nothing streamed yet */
	a->tasks++;
	a->retries += c->retries;
	g = find_group(a, c->tag);
	g->tasks++;
	if (!c->has_done) {
		a->unfinished++;
		return;
	}
	if (c->result == 0)
		a->succeeded++;
	else {
		a->failed++;
		g->failed++;
		a->failed_bins[bin_of(a, c->done)]++;
		note_failed(a, c);
	}
	a->finished[bin_of(a, c->done)]++;
	if (c->disp <= 0 || c->done < c->disp)
		return; /* never ran (an input missing, cancelled) */
	double secs = c->done - c->disp;
	a->started[bin_of(a, c->disp)]++;
	cover(a, a->busy, c->disp, c->done);
	cover(a, g->busy, c->disp, c->done);
	for (int i = 0; i < 3; i++)
		if (c->res[i] > 0)
			cover_w(a, a->held[i], c->disp, c->done, c->res[i]);
	push_duration(g, secs);
	note_slow(a, c, secs);
}

/* "inputs N, cached K, cores C, memory_mb M, gpus G" on a dispatched
 * event (manager.c); a history from before the resources counts a core
 * a task. */
static void note_dispatch(struct agg *a, struct cur *c, const char *detail)
{
	static const char *const keys[3] = {"cores ", "memory_mb ", "gpus "};
	const char *p = strstr(detail, "inputs ");
	const char *q = strstr(detail, "cached ");

	if (p && q) {
		a->inputs += strtoll(p + 7, NULL, 10);
		a->cached += strtoll(q + 7, NULL, 10);
	}
	for (int i = 0; i < 3; i++) {
		const char *k = strstr(detail, keys[i]);
		c->res[i] = k ? strtod(k + strlen(keys[i]), NULL) : i == 0;
	}
}

static void set_str(char **dst, const char *s)
{
	free(*dst);
	*dst = xstrdup(s);
}

static void on_event(struct agg *a, struct cur *c, sqlite3_stmt *st)
{
	const char *ev = col(st, 1);

	if (!c->tag || *col(st, 3))
		set_str(&c->tag, col(st, 3));
	if (!strcmp(ev, "dispatched") || !strcmp(ev, "adopted")) {
		c->disp = sqlite3_column_double(st, 2);
		set_str(&c->worker, col(st, 4));
		note_dispatch(a, c, col(st, 7));
	} else if (!strcmp(ev, "retry")) {
		c->retries++;
	} else if (!strcmp(ev, "done")) {
		c->has_done = 1;
		c->done = sqlite3_column_double(st, 2);
		c->result = sqlite3_column_int(st, 5);
		c->exit_code = sqlite3_column_int(st, 6);
		set_str(&c->detail, col(st, 7));
		set_str(&c->output, col(st, 8));
		if (*col(st, 4))
			set_str(&c->worker, col(st, 4));
	}
}

static int stream_tasks(sqlite3 *db, struct agg *a)
{
	static const char *const sql[] = {
		"SELECT task_id, event, time, tag, worker, result, exit_code,"
		" coalesce(detail, ''), CASE WHEN event = 'done' AND result"
		" != 0 THEN output END FROM task_events WHERE run = ?1"
		" ORDER BY task_id, rowid",
		/* A history from before the output column. */
		"SELECT task_id, event, time, tag, worker, result, exit_code,"
		" coalesce(detail, ''), NULL FROM task_events WHERE run = ?1"
		" ORDER BY task_id, rowid",
	};
	sqlite3_stmt *st = NULL;
	struct cur c = {0};

	if (sqlite3_prepare_v2(db, sql[0], -1, &st, NULL) != SQLITE_OK &&
	    sqlite3_prepare_v2(db, sql[1], -1, &st, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(st, 1, a->o->run);
	while (sqlite3_step(st) == SQLITE_ROW) {
		long long id = sqlite3_column_int64(st, 0);
		if (id != c.id || !c.tag) {
			finish_task(a, &c);
			cur_reset(&c);
			c.id = id;
		}
		on_event(a, &c, st);
	}
	finish_task(a, &c);
	cur_reset(&c);
	sqlite3_finalize(st);
	return 0;
}

/* ------------------------------------------------------- the document */

static json_t *bins_json(const double *v, int n, double scale)
{
	json_t *arr = json_array();
	for (int i = 0; i < n; i++)
		json_array_append_new(arr, json_real(round(v[i] * scale * 1000)
						     / 1000));
	return arr;
}

static double quantile(const double *d, size_t n, double q)
{
	double pos = q * (double)(n - 1);
	size_t i = (size_t)pos;
	double f = pos - (double)i;
	return i + 1 < n ? d[i] * (1 - f) + d[i + 1] * f : d[i];
}

static int by_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;
	return (a > b) - (a < b);
}

static int by_tasks(const void *x, const void *y)
{
	const struct group *a = x, *b = y;
	return (b->tasks > a->tasks) - (b->tasks < a->tasks);
}

static json_t *group_json(const struct agg *a, struct group *g, int busy)
{
	json_t *o = json_pack("{s:s,s:I,s:I,s:I}", "tag", g->name, "tasks",
			      (json_int_t)g->tasks, "failed",
			      (json_int_t)g->failed, "ran", (json_int_t)g->n);
	if (g->n) {
		double sum = 0;
		qsort(g->d, g->n, sizeof(double), by_double);
		for (size_t i = 0; i < g->n; i++)
			sum += g->d[i];
		json_object_set_new(
			o, "q",
			json_pack("[f,f,f,f,f]", g->d[0],
				  quantile(g->d, g->n, 0.25),
				  quantile(g->d, g->n, 0.5),
				  quantile(g->d, g->n, 0.75), g->d[g->n - 1]));
		json_object_set_new(o, "mean", json_real(sum / (double)g->n));
	}
	if (busy)
		json_object_set_new(o, "running",
				    bins_json(g->busy, a->o->bins,
					      1 / a->width));
	return o;
}

static json_t *groups_json(struct agg *a)
{
	json_t *arr = json_array();

	qsort(a->groups, a->n_groups, sizeof *a->groups, by_tasks);
	for (size_t i = 0; i < a->n_groups && i < SHOW_GROUPS; i++)
		json_array_append_new(arr, group_json(a, &a->groups[i],
						      i < SHOW_STACKED));
	if (a->other.tasks) {
		a->other.name = xstrdup("(other)");
		json_array_append_new(arr, group_json(a, &a->other, 0));
	}
	return arr;
}

static int by_seconds(const void *x, const void *y)
{
	const struct slow *a = x, *b = y;
	return (b->seconds > a->seconds) - (b->seconds < a->seconds);
}

static json_t *slow_json(struct agg *a)
{
	json_t *arr = json_array();

	qsort(a->slow, (size_t)a->n_slow, sizeof *a->slow, by_seconds);
	for (int i = 0; i < a->n_slow; i++)
		json_array_append_new(
			arr, json_pack("{s:I,s:s,s:s,s:f,s:f}", "id",
				       (json_int_t)a->slow[i].id, "tag",
				       a->slow[i].tag, "worker",
				       a->slow[i].worker, "seconds",
				       a->slow[i].seconds, "start",
				       a->slow[i].start));
	return arr;
}

/* Bytes moved by source kind, in total and per bin. */
static json_t *transfers_json(sqlite3 *db, const struct agg *a)
{
	static const char sql[] =
		"SELECT CASE WHEN source = 'manager' THEN 'manager'"
		" WHEN source LIKE '%://%' THEN 'url'"
		" WHEN dest = 'manager' THEN 'return' ELSE 'peer' END,"
		" time, bytes, seconds, status = 'ok'"
		" FROM transfers WHERE run = ?1";
	static const char *const kinds[] = {"manager", "peer", "url",
					    "return"};
	double bytes[4] = {0}, secs[4] = {0};
	long long n[4] = {0}, bad[4] = {0};
	double *per_bin[4];
	json_t *arr = json_array();
	sqlite3_stmt *st;

	for (int k = 0; k < 4; k++)
		per_bin[k] = xcalloc((size_t)a->o->bins, sizeof(double));
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, a->o->run);
		while (sqlite3_step(st) == SQLITE_ROW) {
			int k = 0;
			while (k < 3 && strcmp(kinds[k], col(st, 0)))
				k++;
			n[k]++;
			if (!sqlite3_column_int(st, 4)) {
				bad[k]++;
				continue;
			}
			bytes[k] += sqlite3_column_double(st, 2);
			secs[k] += sqlite3_column_double(st, 3);
			per_bin[k][bin_of(a, sqlite3_column_double(st, 1))] +=
				sqlite3_column_double(st, 2);
		}
		sqlite3_finalize(st);
	}
	for (int k = 0; k < 4; k++) {
		json_array_append_new(
			arr, json_pack("{s:s,s:I,s:I,s:f,s:f,s:o}", "kind",
				       kinds[k], "count", (json_int_t)n[k],
				       "failed", (json_int_t)bad[k], "bytes",
				       bytes[k], "seconds", secs[k], "bins",
				       bins_json(per_bin[k], a->o->bins, 1)));
		free(per_bin[k]);
	}
	return arr;
}

/* Workers ready at the end of each bin (ready +1, disconnected -1). */
static json_t *workers_json(sqlite3 *db, const struct agg *a)
{
	double *v = xcalloc((size_t)a->o->bins, sizeof(double));
	sqlite3_stmt *st;
	int live = 0, last = 0;
	json_t *arr;

	if (sqlite3_prepare_v2(db,
			       "SELECT time, event FROM worker_events WHERE"
			       " run = ?1 AND event IN ('ready',"
			       " 'disconnected') ORDER BY time",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, a->o->run);
		while (sqlite3_step(st) == SQLITE_ROW) {
			int b = bin_of(a, sqlite3_column_double(st, 0));
			while (last < b)
				v[last++] = live;
			live += strcmp(col(st, 1), "ready") ? -1 : 1;
			if (live < 0)
				live = 0;
			if (live > v[b])
				v[b] = live;
		}
		sqlite3_finalize(st);
	}
	while (last < a->o->bins) {
		if (live > v[last])
			v[last] = live;
		last++;
	}
	arr = bins_json(v, a->o->bins, 1);
	free(v);
	return arr;
}

static json_t *run_json(sqlite3 *db, const struct agg *a)
{
	sqlite3_stmt *st;
	json_t *o = json_pack("{s:I}", "id", (json_int_t)a->o->run);

	if (sqlite3_prepare_v2(db,
			       "SELECT manager, started, ended FROM runs"
			       " WHERE id = ?1",
			       -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, a->o->run);
		if (sqlite3_step(st) == SQLITE_ROW) {
			json_object_set_new(o, "manager",
					    json_string(col(st, 0)));
			json_object_set_new(o, "started",
					    json_real(sqlite3_column_double(st,
									    1)));
			if (sqlite3_column_type(st, 2) != SQLITE_NULL)
				json_object_set_new(
					o, "ended",
					json_real(sqlite3_column_double(st,
									2)));
		}
		sqlite3_finalize(st);
	}
	return o;
}

static json_t *document(sqlite3 *db, struct agg *a)
{
	json_t *doc = json_pack(
		"{s:o,s:f,s:f,s:i,s:f,s:{s:I,s:I,s:I,s:I,s:I},"
		"s:{s:I,s:I}}",
		"run", run_json(db, a), "t0", a->t0, "t1", a->t1, "bins",
		a->o->bins, "bin_width", a->width, "counts", "tasks",
		(json_int_t)a->tasks, "succeeded", (json_int_t)a->succeeded,
		"failed", (json_int_t)a->failed, "unfinished",
		(json_int_t)a->unfinished, "retries", (json_int_t)a->retries,
		"cache", "inputs", (json_int_t)a->inputs, "cached",
		(json_int_t)a->cached);
	json_object_set_new(
		doc, "timeline",
		json_pack("{s:o,s:o,s:o}", "started",
			  bins_json(a->started, a->o->bins, 1), "finished",
			  bins_json(a->finished, a->o->bins, 1), "failed",
			  bins_json(a->failed_bins, a->o->bins, 1)));
	json_object_set_new(
		doc, "concurrency",
		json_pack("{s:o,s:o,s:o,s:o,s:o}", "running",
			  bins_json(a->busy, a->o->bins, 1 / a->width),
			  "workers", workers_json(db, a), "cores",
			  bins_json(a->held[0], a->o->bins, 1 / a->width),
			  "memory_mb",
			  bins_json(a->held[1], a->o->bins, 1 / a->width),
			  "gpus",
			  bins_json(a->held[2], a->o->bins, 1 / a->width)));
	json_object_set_new(doc, "tags", groups_json(a));
	json_object_set_new(doc, "transfers", transfers_json(db, a));
	json_object_set_new(doc, "slowest", slow_json(a));
	json_object_set_new(doc, "failed", a->failed_list);
	a->failed_list = NULL;
	return doc;
}

/* ------------------------------------------------------------ the page */

static const char page_head[] =
	"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
	"<title>Xylem run report</title>\n<style>\n"
	"body{font:14px system-ui,sans-serif;margin:1.5em auto;max-width:"
	"1100px;color:#222;padding:0 1em}\n"
	"h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em;border-bottom:"
	"1px solid #ddd}\n"
	"table{border-collapse:collapse;font-size:13px}td,th{padding:2px 8px;"
	"text-align:left;border-bottom:1px solid #eee;vertical-align:top}\n"
	"td.n{text-align:right}pre{margin:0;max-height:12em;overflow:auto;"
	"font-size:12px;background:#f6f6f6}\n"
	"svg{display:block;margin:.5em 0}svg text{font-size:11px;fill:#444}\n"
	".legend span{display:inline-block;margin-right:1em}\n"
	".legend i{display:inline-block;width:10px;height:10px;margin-right:"
	"4px}\n</style></head><body>\n"
	"<h1>Xylem run report</h1><div id=\"report\">"
	"<p>This page draws its charts with JavaScript.</p></div>\n"
	"<script id=\"data\" type=\"application/json\">";

static int write_page(const char *path, json_t *doc)
{
	FILE *f = fopen(path, "w");
	char *json;

	if (!f) {
		perror(path);
		return -1;
	}
	/* JSON_ESCAPE_SLASH: no "</script>" can end the block early. */
	json = json_dumps(doc, JSON_COMPACT | JSON_ESCAPE_SLASH);
	if (!json) {
		fclose(f);
		return -1;
	}
	fputs(page_head, f);
	fputs(json, f);
	fputs("</script>\n<script>\n", f);
	fputs(xy_report_js, f);
	fputs("</script>\n</body></html>\n", f);
	free(json);
	return fclose(f) == 0 ? 0 : -1;
}

/* --------------------------------------------------------- the command */

static void usage(FILE *out)
{
	fprintf(out,
		"usage: xylem report HISTORY -o FILE.html [--run N] [--bins N]"
		" [--top N]\n\n"
		"Writes a run's history (xylem run --history HISTORY) as one"
		" HTML page\nwith its charts and data inside: timeline,"
		" concurrency, durations per\ntag, transfers by source, cache"
		" hits, the slowest and the failed tasks.\n\n"
		"options:\n"
		"  -o, --output FILE  the page to write\n"
		"  --run N            the Nth run in the file (default: its"
		" last)\n"
		"  --bins N           time bins of the charts (default 200)\n"
		"  --top N            slowest and failed tasks listed (default"
		" 50)\n"
		"  --help             show this help\n");
}

static int parse(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{"output", required_argument, NULL, 'o'},
		{"run", required_argument, NULL, 'r'},
		{"bins", required_argument, NULL, 'b'},
		{"top", required_argument, NULL, 't'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c;
	char *end;

	o->bins = 200;
	o->top = 50;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "o:h", longopts, NULL)) != -1) {
		long v = 0;
		if (c == 'r' || c == 'b' || c == 't') {
			v = strtol(optarg, &end, 10);
			if (!*optarg || *end || v < 1 || v > 100000) {
				fprintf(stderr, "xylem report: not a count"
					" (1 to 100000): '%s'\n", optarg);
				return XY_EXIT_USAGE;
			}
		}
		switch (c) {
		case 'o': o->out = optarg; break;
		case 'r': o->run = v; break;
		case 'b': o->bins = (int)v; break;
		case 't': o->top = (int)v; break;
		case 'h': usage(stdout); return XY_EXIT_OK;
		default:
			fprintf(stderr, "xylem report: unknown option or"
				" missing value: '%s'\n(see 'xylem report"
				" --help')\n", argv[optind - 1]);
			return XY_EXIT_USAGE;
		}
	}
	if (optind != argc - 1 || !o->out) {
		fprintf(stderr, "xylem report: give one HISTORY and -o FILE\n"
			"(see 'xylem report --help')\n");
		return XY_EXIT_USAGE;
	}
	o->history = argv[optind];
	return -1;
}

/* The run (o->run, else the last) and its time span. */
static int find_run(sqlite3 *db, struct opts *o, struct agg *a)
{
	sqlite3_stmt *st;
	int ok = 0;

	if (sqlite3_prepare_v2(db,
			       "SELECT r.id, (SELECT min(time) FROM task_events"
			       " WHERE run = r.id), (SELECT max(time) FROM"
			       " task_events WHERE run = r.id), r.started"
			       " FROM runs r WHERE r.id = coalesce(?1,"
			       " (SELECT max(id) FROM runs))",
			       -1, &st, NULL) != SQLITE_OK)
		return -1;
	if (o->run)
		sqlite3_bind_int64(st, 1, o->run);
	if (sqlite3_step(st) == SQLITE_ROW) {
		o->run = sqlite3_column_int64(st, 0);
		a->t0 = sqlite3_column_type(st, 1) == SQLITE_NULL ?
				sqlite3_column_double(st, 3) :
				sqlite3_column_double(st, 1);
		a->t1 = sqlite3_column_double(st, 2);
		ok = 1;
	}
	sqlite3_finalize(st);
	if (a->t1 < a->t0)
		a->t1 = a->t0;
	a->width = (a->t1 - a->t0) / o->bins;
	if (a->width <= 0)
		a->width = 1e-3;
	return ok ? 0 : -1;
}

static void agg_free(struct agg *a)
{
	for (size_t i = 0; i < a->n_groups; i++) {
		free(a->groups[i].name);
		free(a->groups[i].d);
		free(a->groups[i].busy);
	}
	free(a->groups);
	free(a->other.name);
	free(a->other.d);
	free(a->other.busy);
	for (int i = 0; i < a->n_slow; i++) {
		free(a->slow[i].tag);
		free(a->slow[i].worker);
	}
	free(a->slow);
	free(a->started);
	free(a->finished);
	free(a->failed_bins);
	free(a->busy);
	for (int i = 0; i < 3; i++)
		free(a->held[i]);
	json_decref(a->failed_list);
}

int xy_cli_report(int argc, char **argv)
{
	struct opts o = {0};
	struct agg a = {0};
	sqlite3 *db = NULL;
	json_t *doc;
	int rc = parse(argc, argv, &o);

	if (rc >= 0)
		return rc;
	if (sqlite3_open_v2(o.history, &db, SQLITE_OPEN_READONLY, NULL) !=
	    SQLITE_OK) {
		fprintf(stderr, "xylem report: cannot open %s: %s\n", o.history,
			db ? sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return XY_EXIT_FAIL;
	}
	sqlite3_busy_timeout(db, 5000);
	a.o = &o;
	if (find_run(db, &o, &a) < 0) {
		fprintf(stderr, "xylem report: %s holds no such run\n",
			o.history);
		sqlite3_close(db);
		return XY_EXIT_FAIL;
	}
	a.groups = xcalloc(MAX_GROUPS, sizeof *a.groups);
	a.other.busy = xcalloc((size_t)o.bins, sizeof(double));
	a.slow = xcalloc((size_t)o.top, sizeof *a.slow);
	a.started = xcalloc((size_t)o.bins, sizeof(double));
	a.finished = xcalloc((size_t)o.bins, sizeof(double));
	a.failed_bins = xcalloc((size_t)o.bins, sizeof(double));
	a.busy = xcalloc((size_t)o.bins, sizeof(double));
	for (int i = 0; i < 3; i++)
		a.held[i] = xcalloc((size_t)o.bins, sizeof(double));
	a.failed_list = json_array();
	if (stream_tasks(db, &a) < 0) {
		fprintf(stderr, "xylem report: %s: %s\n", o.history,
			sqlite3_errmsg(db));
		rc = XY_EXIT_FAIL;
	} else {
		doc = document(db, &a);
		rc = doc && write_page(o.out, doc) == 0 ? XY_EXIT_OK
							 : XY_EXIT_FAIL;
		json_decref(doc);
	}
	agg_free(&a);
	sqlite3_close(db);
	return rc;
}
