/*
 * dash.c: the live dashboard's state and its routes (dash.h). Hooks in
 * the manager (xy_dash_event) keep running sums; every half second what
 * changed goes out as one Server-Sent Event, numbered, to every browser
 * connected, and into a bounded ring of recent events, so that a browser
 * that reconnects with Last-Event-ID gets what it missed, or a full
 * snapshot when that has left the ring. Nothing here grows with the
 * number of tasks: tags, sources and failures are capped, the task
 * stream is sampled (at most MAX_BATCH starts and ends a push), and the
 * running tasks a snapshot lists are capped. docs/observability.md.
 */
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dash.h"
#include "http.h"
#include "internal.h"
#include "log.h"
#include "mtls.h"
#include "util.h"

#define WHO "dashboard"
#define TICK_MS 500
#define MAX_TAGS 64
#define MAX_SOURCES 64
#define MAX_FAILS 100
#define MAX_BATCH 500
#define MAX_STREAMS 64
#define MAX_WORKERS_SHOWN 200
#define MAX_RUNNING_SHOWN 2000
#define RING 256
#define TAIL 2000 /* bytes of a failed task's output shown */

enum { S_WAITING, S_READY, S_RUNNING, S_OK, S_FAILED, N_STATES };
enum { K_MANAGER, K_PEER, K_URL, K_OUTPUT, N_KINDS };
static const char *const kind_names[] = {"manager", "peer", "url", "output"};
static const char *const state_names[] = {"waiting", "ready", "running",
					  "succeeded", "failed"};

struct tagsum {
	char name[48];
	int64_t n[N_STATES];
};

struct srcsum {
	char name[64];
	int kind;
	uint64_t bytes;
	int64_t count;
};

/* A start ('s') or an end ('e') in the task stream. */
struct sev {
	uint64_t id;
	double t;
	int tag;
	char kind;
	int result; /* an end's: -1 requeued */
	char worker[48];
};

struct fail {
	uint64_t id;
	int tag, result, exit_code, attempt;
	double t;
	char worker[48];
	char *error, *output;
};

struct ring_ev {
	uint64_t id;
	char *text;
	size_t len;
};

struct xy_dash {
	struct xy_manager *m;
	struct xy_http *http;
	uv_timer_t timer;
	int need_token;
	int tls; /* HTTPS, with the manager's certificate */
	char host[64];
	char token[33];
	char url[512];
	double started;

	struct tagsum tags[MAX_TAGS];
	int n_tags, last_tag;
	uint64_t xbytes[N_KINDS];
	int64_t xcount[N_KINDS], xfailed[N_KINDS];
	struct srcsum src[MAX_SOURCES];
	int n_src;
	int64_t cache_hits, cache_misses;

	struct sev batch[MAX_BATCH];
	int n_batch;
	int64_t lost; /* stream events not sent (over MAX_BATCH) */
	struct fail fails[MAX_FAILS]; /* a ring: the latest MAX_FAILS */
	int64_t n_fails;              /* ever; fails[(n - 1) % MAX] last */
	int64_t fails_sent;           /* failures in pushes so far */

	uint64_t seq; /* the last event's id */
	struct ring_ev ring[RING]; /* ids seq - RING + 1 .. seq */
	double last_push;
	int dirty;
	struct xy_http_conn *streams[MAX_STREAMS];
	int n_streams;
	/* CPU seconds spent in the hooks and pushes (the HTTP server counts
	 * its own): xylem_dashboard_seconds_total. */
	double cpu;
	uint32_t rng; /* picks the hook calls timed (xy_dash_event) */
	double clock_cost; /* seconds: an empty interval's reading */
};

/* ---------------------------------------------------------------- sums */

/* Replaces with '?' each byte of s that is not part of a well-formed
 * UTF-8 sequence (an output's tail may begin inside one; a command may be
 * in any encoding): JSON strings must be UTF-8. */
static void utf8_clean(char *s)
{
	unsigned char *p = (unsigned char *)s;
	while (p && *p) {
		int n = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 ? 2
			: (*p & 0xf0) == 0xe0 ? 3 : (*p & 0xf8) == 0xf0 ? 4 : 0;
		int ok = n > 0;
		for (int i = 1; ok && i < n; i++)
			ok = (p[i] & 0xc0) == 0x80;
		if (ok && n > 1) {
			uint32_t c = p[0] & (0xff >> (n + 1));
			for (int i = 1; i < n; i++)
				c = c << 6 | (p[i] & 0x3f);
			static const uint32_t least[] = {0, 0, 0x80, 0x800,
							 0x10000};
			ok = c >= least[n] && c <= 0x10ffff &&
			     (c < 0xd800 || c > 0xdfff);
		}
		if (!ok) {
			*p++ = '?';
			continue;
		}
		p += n;
	}
}

/* The tag a task counts under: its own (less a trailing number, so that
 * step-1, step-2 ... and step[1], step[2] ... count as step), a call's
 * library, or its command's first word without the directory. */
static void tag_of(const struct xy_task *t, char *out, size_t n)
{
	const char *s = t->tag;
	size_t len;
	if (s && *s) {
		len = strlen(s);
		const char *br = strrchr(s, '[');
		size_t k = len;
		if (br && br > s && s[len - 1] == ']') {
			len = (size_t)(br - s);
		} else {
			while (k && s[k - 1] >= '0' && s[k - 1] <= '9')
				k--;
			if (k > 1 && k < len && strchr("-_.:", s[k - 1]))
				len = k - 1;
		}
	} else if (t->library) {
		snprintf(out, n, "%s()", t->library);
		return;
	} else if (t->command) {
		s = t->command;
		while (*s == ' ')
			s++;
		len = strcspn(s, " \t;|&");
		for (size_t i = 0; i < len; i++)
			if (s[i] == '/' && i + 1 < len) {
				s += i + 1;
				len -= i + 1;
				i = (size_t)-1;
			}
	} else {
		s = "task";
		len = 4;
	}
	if (len >= n)
		len = n - 1;
	memcpy(out, s, len);
	out[len] = 0;
	if (!len)
		snprintf(out, n, "task");
}

static int tag_index(struct xy_dash *d, const struct xy_task *t)
{
	char name[48];
	tag_of(t, name, sizeof name);
	if (d->n_tags && !strcmp(d->tags[d->last_tag].name, name))
		return d->last_tag;
	for (int i = 0; i < d->n_tags; i++)
		if (!strcmp(d->tags[i].name, name))
			return d->last_tag = i;
	if (d->n_tags == MAX_TAGS - 1) {
		snprintf(d->tags[d->n_tags].name, sizeof d->tags[0].name,
			 "(other)");
		d->n_tags++;
	}
	if (d->n_tags == MAX_TAGS)
		return MAX_TAGS - 1;
	snprintf(d->tags[d->n_tags].name, sizeof name, "%s", name);
	utf8_clean(d->tags[d->n_tags].name);
	return d->last_tag = d->n_tags++;
}

static int state_index(int s, const struct xy_task *t)
{
	switch (s) {
	case XY_TASK_WAITING: return S_WAITING;
	case XY_TASK_READY: return S_READY;
	case XY_TASK_RUNNING: return S_RUNNING;
	case XY_TASK_DONE:
		return t->result == XY_RESULT_SUCCESS ? S_OK : S_FAILED;
	default: return -1;
	}
}

static void stream_event(struct xy_dash *d, const struct xy_task *t,
			 char kind, int result)
{
	if (d->n_batch == MAX_BATCH) {
		d->lost++;
		return;
	}
	struct sev *e = &d->batch[d->n_batch++];
	e->id = t->id;
	e->t = xy_mono() - d->started;
	e->tag = t->dash_tag - 1;
	e->kind = kind;
	e->result = result;
	snprintf(e->worker, sizeof e->worker, "%s",
		 t->worker ? t->worker->name
			   : t->worker_name ? t->worker_name : "");
	utf8_clean(e->worker);
}

static char *tail_of(const char *s, size_t len)
{
	if (!s || !len)
		return NULL;
	if (len > TAIL) {
		s += len - TAIL;
		len = TAIL;
	}
	char *out = malloc(len + 1);
	if (out) {
		memcpy(out, s, len);
		out[len] = 0;
	}
	return out;
}

static void record_failure(struct xy_dash *d, const struct xy_task *t)
{
	struct fail *f = &d->fails[d->n_fails % MAX_FAILS];
	free(f->error);
	free(f->output);
	f->id = t->id;
	f->tag = t->dash_tag - 1;
	f->result = (int)t->result;
	f->exit_code = t->exit_code;
	f->attempt = t->attempts;
	f->t = xy_mono() - d->started;
	snprintf(f->worker, sizeof f->worker, "%s",
		 t->worker_name ? t->worker_name : "");
	f->error = t->error ? strndup(t->error, 4000) : NULL;
	f->output = tail_of(t->output, t->output_len);
	utf8_clean(f->worker);
	utf8_clean(f->error);
	utf8_clean(f->output);
	d->n_fails++;
}

/* At a dispatch: inputs t finds ready on its worker are cache hits;
 * those fetched for it, misses. */
static void count_cache(struct xy_dash *d, const struct xy_task *t)
{
	for (uint32_t i = 0; t->worker && i < t->n_inputs; i++) {
		struct xy_object *o = t->inputs[i].file->obj;
		struct replica *r = o ? xy_catalog_replica_find(o, t->worker)
				      : NULL;
		if (r && r->ready)
			d->cache_hits++;
		else
			d->cache_misses++;
	}
}

static void on_state(struct xy_dash *d, struct xy_task *t, int from)
{
	int to = (int)t->state;
	if (to == XY_TASK_RETURNED || from == to || !t->dash_tag)
		return; /* a returned task stays counted as done */
	struct tagsum *g = &d->tags[t->dash_tag - 1];
	int a = from == XY_TASK_DONE ? -1 : state_index(from, t);
	int b = state_index(to, t);
	if (a >= 0)
		g->n[a]--;
	if (b >= 0)
		g->n[b]++;
	if (from == XY_TASK_RUNNING)
		stream_event(d, t, 'e',
			     to == XY_TASK_DONE ? (int)t->result : -1);
	if (b == S_FAILED)
		record_failure(d, t);
	d->dirty = 1;
}

static void on_transfer(struct xy_dash *d, const struct xy_dash_ev *ev)
{
	const char *src = ev->src ? ev->src : "?";
	int k = ev->dest && !strcmp(ev->dest, "manager") ? K_OUTPUT
		: strstr(src, "://")		       ? K_URL
		: !strcmp(src, "manager")	       ? K_MANAGER
						       : K_PEER;
	if (!ev->ok) {
		d->xfailed[k]++;
		d->dirty = 1;
		return;
	}
	d->xbytes[k] += ev->bytes;
	d->xcount[k]++;
	/* A source is a name and a kind: a worker serves peer copies and
	 * returns outputs, two sums apart. */
	int i = 0;
	while (i < d->n_src && (d->src[i].kind != k ||
				strncmp(d->src[i].name, src,
					sizeof d->src[i].name - 1)))
		i++;
	if (i == d->n_src) {
		if (d->n_src == MAX_SOURCES) {
			i = MAX_SOURCES - 1; /* the last one takes the rest */
			snprintf(d->src[i].name, sizeof d->src[i].name,
				 "(other)");
		} else {
			d->n_src++;
			snprintf(d->src[i].name, sizeof d->src[i].name, "%s",
				 src);
			utf8_clean(d->src[i].name);
			d->src[i].kind = k;
		}
	}
	d->src[i].bytes += ev->bytes;
	d->src[i].count++;
	d->dirty = 1;
}

static void dash_event(struct xy_dash *d, const struct xy_dash_ev *ev)
{
	switch (ev->kind) {
	case XY_DASH_SUBMITTED:
		ev->task->dash_tag = tag_index(d, ev->task) + 1;
		d->tags[ev->task->dash_tag - 1].n[S_WAITING]++;
		d->dirty = 1;
		break;
	case XY_DASH_STATE:
		on_state(d, ev->task, ev->from);
		break;
	case XY_DASH_DISPATCHED:
		if (ev->task->dash_tag) {
			stream_event(d, ev->task, 's', 0);
			count_cache(d, ev->task);
		}
		break;
	case XY_DASH_TRANSFER:
		on_transfer(d, ev);
		break;
	}
}

/* A hook call costs about as much as the two clock readings that would
 * time it (a system call each, ~0.3 us): one call in SAMPLE, drawn at
 * random (calls come in a fixed pattern per task, which a fixed stride
 * would alias), is timed and counted SAMPLE times, less what the clock
 * itself adds to an interval (d->clock_cost, measured at create). */
#define SAMPLE 32

void xy_dash_event(struct xy_dash *d, const struct xy_dash_ev *ev)
{
	double c0;

	if (!d)
		return;
	/* xorshift32: cheap, and enough to pick calls. */
	d->rng ^= d->rng << 13;
	d->rng ^= d->rng >> 17;
	d->rng ^= d->rng << 5;
	if (d->rng % SAMPLE) {
		dash_event(d, ev);
		return;
	}
	c0 = xy_http_cpu_now();
	dash_event(d, ev);
	c0 = xy_http_cpu_now() - c0 - d->clock_cost;
	d->cpu += SAMPLE * (c0 > 0 ? c0 : 0);
}

/* The least time two clock readings in a row measure: what the clock
 * adds to each interval it times. */
static double clock_cost(void)
{
	double least = 1;

	for (int i = 0; i < 64; i++) {
		double a = xy_http_cpu_now(), b = xy_http_cpu_now();

		if (b - a < least)
			least = b - a;
	}
	return least;
}

/* --------------------------------------------------------------- JSON */

static json_t *counts_json(const struct xy_dash *d)
{
	const struct xy_manager *m = d->m;
	struct xy_stats st;
	xy_manager_stats(m, &st);
	/* pending: array indexes not made yet, in waiting but in no tag. */
	return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:f}",
			 "waiting", (json_int_t)st.tasks_waiting, "pending",
			 (json_int_t)xy__array_pending(m), "ready",
			 (json_int_t)st.tasks_ready, "running",
			 (json_int_t)st.tasks_running, "done",
			 (json_int_t)st.tasks_done, "returned_ok",
			 (json_int_t)st.tasks_succeeded, "returned_failed",
			 (json_int_t)st.tasks_failed, "cores",
			 (json_int_t)st.cores_total, "cores_used",
			 (json_int_t)st.cores_used, "decisions",
			 (json_int_t)st.decisions, "decision_seconds",
			 st.decision_seconds);
}

static json_t *tags_json(const struct xy_dash *d)
{
	json_t *a = json_array();
	for (int i = 0; a && i < d->n_tags; i++) {
		const int64_t *n = d->tags[i].n;
		json_array_append_new(
			a, json_pack("[s,I,I,I,I,I]", d->tags[i].name,
				     (json_int_t)n[0], (json_int_t)n[1],
				     (json_int_t)n[2], (json_int_t)n[3],
				     (json_int_t)n[4]));
	}
	return a;
}

/* Bytes of the objects w holds or is fetching, as the manager knows
 * them (the catalogue's sizes): its cache in use. O(its objects), for
 * the workers shown only, once a push. */
static int64_t held_bytes(const struct xy_worker *w)
{
	int64_t n = 0;

	for (uint32_t i = 0; i < w->n_held; i++)
		n += (int64_t)w->held[i]->size;
	return n;
}

static json_t *workers_json(const struct xy_dash *d)
{
	json_t *a = json_array();
	int n = 0, shown = 0;
	for (struct xy_worker *w = xy_wtable_all(d->m->wtable); a && w;
	     w = w->next) {
		if (!w->greeted)
			continue;
		if (++n > MAX_WORKERS_SHOWN)
			continue;
		shown++;
		json_array_append_new(
			a, json_pack("[s,s,i,i,I,I,I,I,i,i,I,b,I]", w->name,
				     w->hostname ? w->hostname : w->addr,
				     w->cores, xy_wtable_cores_busy(w),
				     (json_int_t)w->memory,
				     (json_int_t)w->memory_used,
				     (json_int_t)w->disk,
				     (json_int_t)w->disk_used,
				     (int)w->n_held, w->n_running,
				     (json_int_t)w->n_done, w->ready,
				     (json_int_t)held_bytes(w)));
	}
	return json_pack("{s:i,s:o}", "n", n, "list", a);
}

static json_t *chains_json(const struct xy_dash *d)
{
	struct xy_xplan_chain ch[20];
	int n = xy_xplan_chains(d->m->xplan, ch, 20);
	json_t *a = json_array();
	for (int i = 0; a && i < n; i++)
		json_array_append_new(a, json_pack("[s#,I,i]", ch[i].hex,
						   (size_t)12,
						   (json_int_t)ch[i].size,
						   ch[i].length));
	return a;
}

static json_t *xfer_json(const struct xy_dash *d)
{
	json_t *kinds = json_object(), *src = json_array();
	for (int k = 0; k < N_KINDS; k++)
		json_object_set_new(kinds, kind_names[k],
				    json_pack("[I,I,I]",
					      (json_int_t)d->xbytes[k],
					      (json_int_t)d->xcount[k],
					      (json_int_t)d->xfailed[k]));
	for (int i = 0; i < d->n_src; i++)
		json_array_append_new(
			src, json_pack("[s,s,I,I]", d->src[i].name,
				       kind_names[d->src[i].kind],
				       (json_int_t)d->src[i].bytes,
				       (json_int_t)d->src[i].count));
	struct xy_stats st;
	xy_manager_stats(d->m, &st);
	return json_pack("{s:o,s:o,s:I,s:I,s:I,s:o}", "kinds", kinds,
			 "sources", src, "hits", (json_int_t)d->cache_hits,
			 "misses", (json_int_t)d->cache_misses, "active",
			 (json_int_t)st.transfers_active, "chains",
			 chains_json(d));
}

static json_t *fail_json(const struct fail *f)
{
	return json_pack("{s:I,s:i,s:i,s:i,s:i,s:f,s:s,s:s?,s:s?}", "id",
			 (json_int_t)f->id, "tag", f->tag, "result",
			 f->result, "exit", f->exit_code, "attempt",
			 f->attempt, "t", f->t, "worker", f->worker, "error",
			 f->error, "output", f->output);
}

/* The failures from the from-th (0: the first ever) on, as kept. */
static json_t *fails_json(const struct xy_dash *d, int64_t from)
{
	json_t *a = json_array();
	if (from < d->n_fails - MAX_FAILS)
		from = d->n_fails - MAX_FAILS;
	for (int64_t i = from; a && i < d->n_fails; i++)
		json_array_append_new(a, fail_json(&d->fails[i % MAX_FAILS]));
	return a;
}

static json_t *running_json(const struct xy_dash *d)
{
	json_t *a = json_array();
	int n = 0;
	for (struct xy_worker *w = xy_wtable_all(d->m->wtable); a && w;
	     w = w->next)
		for (struct xy_task *t = w->running; t && n < MAX_RUNNING_SHOWN;
		     t = t->qnext, n++)
			json_array_append_new(
				a, json_pack("[I,s,i,f]", (json_int_t)t->id,
					     w->name, t->dash_tag - 1,
					     t->times.dispatched > 0
						     ? xy_mono() - d->started -
							       (xy_now() -
								t->times.dispatched)
						     : 0.0));
	return a;
}

/* The document every push and snapshot share; full: a snapshot, with
 * the running tasks and every failure kept. */
static json_t *state_json(struct xy_dash *d, int full)
{
	json_t *ev = json_array();
	for (int i = 0; !full && ev && i < d->n_batch; i++) {
		const struct sev *e = &d->batch[i];
		json_array_append_new(
			ev, json_pack("[s#,I,s,i,f,i]", &e->kind, (size_t)1,
				      (json_int_t)e->id, e->worker, e->tag,
				      e->t, e->result));
	}
	json_t *doc = json_pack(
		"{s:I,s:f,s:s,s:b,s:o,s:o,s:o,s:o,s:o,s:I,s:I,s:I}", "id",
		(json_int_t)d->seq, "up", xy_mono() - d->started, "name",
		d->m->name, "full", full, "counts", counts_json(d), "tags",
		tags_json(d), "workers", workers_json(d), "xfer",
		xfer_json(d), "ev", ev, "lost", (json_int_t)d->lost,
		"nfails", (json_int_t)d->n_fails, "tick",
		(json_int_t)TICK_MS);
	if (!doc)
		return NULL;
	json_object_set_new(doc, "fails",
			    fails_json(d, full ? 0 : d->fails_sent));
	if (full)
		json_object_set_new(doc, "running", running_json(d));
	return doc;
}

/* An SSE event: "id: N\nevent: TYPE\ndata: JSON\n\n", malloc'd. */
static char *sse_text(uint64_t id, const char *type, json_t *doc,
		      size_t *len)
{
	char *js = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	if (!js)
		return NULL;
	size_t n = strlen(js) + strlen(type) + 64;
	char *s = malloc(n);
	if (s)
		*len = (size_t)snprintf(s, n, "id: %llu\nevent: %s\ndata: %s\n\n",
					(unsigned long long)id, type, js);
	free(js);
	return s;
}

/* ------------------------------------------------------------ pushes */

static void push(struct xy_dash *d)
{
	d->seq++;
	json_t *doc = state_json(d, 0);
	size_t len = 0;
	char *text = sse_text(d->seq, "update", doc, &len);
	json_decref(doc);
	struct ring_ev *r = &d->ring[d->seq % RING];
	free(r->text);
	r->id = d->seq;
	r->text = text;
	r->len = text ? len : 0;
	d->n_batch = 0;
	d->lost = 0;
	d->fails_sent = d->n_fails;
	d->dirty = 0;
	d->last_push = xy_mono();
	/* Downwards: a stream closed by the send (too far behind) is
	 * replaced in the array by the last one, already served. */
	for (int i = d->n_streams - 1; text && i >= 0; i--)
		xy_http_stream_send(d->streams[i], text, len);
}

/* A push and the writes it queues, counted in d->cpu. */
static void push_counted(struct xy_dash *d)
{
	double c0 = xy_http_cpu_now();

	push(d);
	d->cpu += xy_http_cpu_now() - c0;
}

void xy__dash_push(struct xy_dash *d)
{
	push_counted(d);
}

static void on_tick(uv_timer_t *h)
{
	struct xy_dash *d = h->data;
	double c0 = xy_http_cpu_now();

	if (d->dirty || d->n_batch || xy_mono() - d->last_push >= 2.0)
		push(d);
	d->cpu += xy_http_cpu_now() - c0;
}

/* ------------------------------------------------------------ routes */

struct xy_web_asset {
	const char *path, *type;
	const unsigned char *data;
	size_t len;
};
extern const struct xy_web_asset xy_web_assets[]; /* web_assets.c */

static int authorized(struct xy_dash *d, const struct xy_http_req *r)
{
	struct xy_http_str v[3] = {
		xy_http_param(r->query, '&', "token"),
		xy_http_param(r->cookie, ';', "xylem_token"),
		{NULL, 0},
	};
	if (r->authorization.n > 7 &&
	    !strncasecmp(r->authorization.p, "Bearer ", 7))
		v[2] = (struct xy_http_str){r->authorization.p + 7,
					    r->authorization.n - 7};
	for (int i = 0; i < 3; i++)
		if (v[i].n == 32 && !CRYPTO_memcmp(v[i].p, d->token, 32))
			return 1;
	return 0;
}

/* On loopback with no token, a page of another site that a browser
 * shows must not reach the dashboard by rebinding its name to 127.0.0.1:
 * only a Host that names loopback is answered. */
static int loopback_host(const struct xy_http_req *r)
{
	struct xy_http_str h = r->host;
	static const char *const ok[] = {"127.0.0.1", "localhost", "[::1]"};
	for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
		size_t n = strlen(ok[i]);
		if (h.n >= n && !strncasecmp(h.p, ok[i], n) &&
		    (h.n == n || h.p[n] == ':'))
			return 1;
	}
	return 0;
}

static void send_doc(struct xy_http_conn *c, json_t *doc)
{
	char *s = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
	json_decref(doc);
	if (!s) {
		xy_http_respond(c, 503, "text/plain", NULL, "out of memory",
				13);
		return;
	}
	xy_http_respond(c, 200, "application/json", NULL, s, strlen(s));
	free(s);
}

static void open_stream(struct xy_dash *d, struct xy_http_conn *c,
			const struct xy_http_req *r)
{
	if (d->n_streams == MAX_STREAMS) {
		xy_http_respond(c, 503, "text/plain", NULL, "too many streams",
				16);
		return;
	}
	xy_http_stream_start(c);
	d->streams[d->n_streams++] = c;
	xy_http_stream_send(c, "retry: 1000\n\n", 13);
	/* Resumes after the client's last event when the ring still holds
	 * every later one; otherwise a snapshot, numbered as the latest. */
	char num[24] = "";
	unsigned long long last = 0;
	int resume = 0;
	if (r->last_event_id.n && r->last_event_id.n < sizeof num) {
		memcpy(num, r->last_event_id.p, r->last_event_id.n);
		char *end;
		last = strtoull(num, &end, 10);
		resume = *num && !*end && last <= d->seq &&
			 d->seq - last < RING && last > 0;
	}
	/* An event that could not be made (memory was short) is a gap:
	 * a snapshot then. */
	for (uint64_t id = last + 1; resume && id <= d->seq; id++)
		resume = d->ring[id % RING].id == id && d->ring[id % RING].text;
	if (resume) {
		for (uint64_t id = last + 1; id <= d->seq; id++) {
			struct ring_ev *e = &d->ring[id % RING];
			if (e->id == id && e->text)
				xy_http_stream_send(c, e->text, e->len);
		}
		return;
	}
	json_t *doc = state_json(d, 1);
	size_t len = 0;
	char *text = sse_text(d->seq, "snapshot", doc, &len);
	json_decref(doc);
	if (text)
		xy_http_stream_send(c, text, len);
	free(text);
}

static void on_stream_closed(void *arg, struct xy_http_conn *c)
{
	struct xy_dash *d = arg;
	for (int i = 0; i < d->n_streams; i++)
		if (d->streams[i] == c) {
			d->streams[i] = d->streams[--d->n_streams];
			return;
		}
}

char *xy_dash_metrics(struct xy_dash *d, size_t *len); /* metrics below */

static void on_request(void *arg, struct xy_http_conn *c,
		       const struct xy_http_req *r)
{
	struct xy_dash *d = arg;
	if (!xy_http_eq(r->method, "GET") && !xy_http_is_head(r)) {
		xy_http_respond(c, 405, "text/plain", "Allow: GET, HEAD\r\n",
				"method not allowed", 18);
		return;
	}
	if (d->need_token ? !authorized(d, r) : !loopback_host(r)) {
		static const char msg[] =
			"this dashboard needs its token: open the address that"
			" `xylem run` printed\n";
		xy_http_respond(c, d->need_token ? 401 : 403, "text/plain",
				d->need_token ? "WWW-Authenticate: Bearer\r\n"
					      : NULL,
				msg, sizeof msg - 1);
		return;
	}
	if (d->need_token && xy_http_param(r->query, '&', "token").n) {
		/* The token moves to a cookie, and out of the address. */
		char hdr[768];
		struct xy_http_str to = r->path;
		if (to.n > 256)
			to = (struct xy_http_str){"/", 1};
		snprintf(hdr, sizeof hdr,
			 "Set-Cookie: xylem_token=%s; Path=/; HttpOnly; "
			 "SameSite=Strict%s\r\nLocation: %.*s\r\n",
			 d->token, d->tls ? "; Secure" : "", (int)to.n, to.p);
		xy_http_respond(c, 302, "text/plain", hdr, "", 0);
		return;
	}
	if (xy_http_eq(r->path, "/events")) {
		if (xy_http_is_head(r))
			xy_http_respond(c, 200, "text/event-stream", NULL, "",
					0);
		else
			open_stream(d, c, r);
		return;
	}
	if (xy_http_eq(r->path, "/api/state")) {
		send_doc(c, state_json(d, 1));
		return;
	}
	if (xy_http_eq(r->path, "/metrics")) {
		size_t len = 0;
		char *s = xy_dash_metrics(d, &len);
		xy_http_respond(c, s ? 200 : 503,
				"text/plain; version=0.0.4; charset=utf-8",
				NULL, s ? s : "", s ? len : 0);
		free(s);
		return;
	}
	struct xy_http_str p = r->path;
	if (xy_http_eq(p, "/"))
		p = (struct xy_http_str){"/index.html", 11};
	for (const struct xy_web_asset *a = xy_web_assets; a->path; a++)
		if (xy_http_eq(p, a->path)) {
			xy_http_respond(c, 200, a->type, NULL,
					(const char *)a->data, a->len);
			return;
		}
	xy_http_respond(c, 404, "text/plain", NULL, "not found", 9);
}

/* ----------------------------------------------------------- metrics */

char *xy_dash_metrics(struct xy_dash *d, size_t *len)
{
	char *s = NULL;
	FILE *f = open_memstream(&s, len);
	struct xy_stats st;
	if (!f)
		return NULL;
	xy_manager_stats(d->m, &st);
	int64_t by_state[N_STATES] = {0};
	for (int i = 0; i < d->n_tags; i++)
		for (int k = 0; k < N_STATES; k++)
			by_state[k] += d->tags[i].n[k];
	/* An array's indexes not made yet are tasks that wait, in no tag;
	 * they have no dependencies, so they queue for a worker too. */
	int64_t pending = xy__array_pending(d->m);
	by_state[S_WAITING] += pending;
	fprintf(f, "# HELP xylem_tasks Tasks by state (succeeded and failed:"
		" finished, returned or not).\n# TYPE xylem_tasks gauge\n");
	for (int k = 0; k < N_STATES; k++)
		fprintf(f, "xylem_tasks{state=\"%s\"} %lld\n", state_names[k],
			(long long)by_state[k]);
	fprintf(f, "# HELP xylem_queue_depth Tasks ready and waiting for a"
		" worker (an array's indexes not made yet included).\n"
		"# TYPE xylem_queue_depth gauge\nxylem_queue_depth %lld\n",
		(long long)(st.tasks_ready + pending));
	fprintf(f, "# HELP xylem_workers Workers connected and busy.\n"
		"# TYPE xylem_workers gauge\nxylem_workers{state=\"connected\"}"
		" %lld\nxylem_workers{state=\"busy\"} %lld\n",
		(long long)st.workers_connected, (long long)st.workers_busy);
	fprintf(f, "# HELP xylem_cores Cores of the connected workers.\n"
		"# TYPE xylem_cores gauge\nxylem_cores{state=\"total\"} %lld\n"
		"xylem_cores{state=\"used\"} %lld\n",
		(long long)st.cores_total, (long long)st.cores_used);
	fprintf(f, "# HELP xylem_transfer_bytes Bytes moved by kind (manager"
		" to worker, worker to worker, URL to worker, output to the"
		" manager).\n# TYPE xylem_transfer_bytes counter\n");
	for (int k = 0; k < N_KINDS; k++)
		fprintf(f, "xylem_transfer_bytes_total{kind=\"%s\"} %llu\n",
			kind_names[k], (unsigned long long)d->xbytes[k]);
	fprintf(f, "# HELP xylem_transfers Transfers ended, by kind and"
		" status.\n# TYPE xylem_transfers counter\n");
	for (int k = 0; k < N_KINDS; k++)
		fprintf(f, "xylem_transfers_total{kind=\"%s\",status=\"ok\"} "
			"%lld\nxylem_transfers_total{kind=\"%s\",status="
			"\"failed\"} %lld\n", kind_names[k],
			(long long)d->xcount[k], kind_names[k],
			(long long)d->xfailed[k]);
	fprintf(f, "# HELP xylem_transfers_active Transfers in flight.\n"
		"# TYPE xylem_transfers_active gauge\nxylem_transfers_active "
		"%lld\n", (long long)st.transfers_active);
	fprintf(f, "# HELP xylem_cache_lookups Inputs found on the worker a"
		" task went to (hit) or fetched for it (miss).\n# TYPE "
		"xylem_cache_lookups counter\nxylem_cache_lookups_total{result="
		"\"hit\"} %lld\nxylem_cache_lookups_total{result=\"miss\"} "
		"%lld\n", (long long)d->cache_hits,
		(long long)d->cache_misses);
	fprintf(f, "# HELP xylem_scheduler_decision_seconds Time spent"
		" choosing where tasks go.\n# TYPE "
		"xylem_scheduler_decision_seconds summary\n"
		"xylem_scheduler_decision_seconds_sum %.9f\n"
		"xylem_scheduler_decision_seconds_count %lld\n",
		st.decision_seconds, (long long)st.decisions);
	/* The dashboard's own cost, and the manager's CPU to set it
	 * against: this process's (for xylem run, the manager and nothing
	 * else; workers are processes of their own). */
	struct timespec pc;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &pc);
	fprintf(f, "# HELP xylem_dashboard_seconds CPU time the manager's"
		" thread spent on the dashboard: its hooks, pushes and HTTP"
		" callbacks.\n# TYPE xylem_dashboard_seconds counter\n"
		"xylem_dashboard_seconds_total %.6f\n",
		d->cpu + xy_http_cpu_seconds(d->http));
	fprintf(f, "# HELP process_cpu_seconds Total user and system CPU"
		" time of the manager's process.\n# TYPE process_cpu_seconds"
		" counter\nprocess_cpu_seconds_total %.6f\n",
		(double)pc.tv_sec + (double)pc.tv_nsec / 1e9);
	fprintf(f, "# HELP xylem_uptime_seconds Seconds since the manager"
		" started.\n# TYPE xylem_uptime_seconds gauge\n"
		"xylem_uptime_seconds %.3f\n", xy_mono() - d->m->started);
	if (fclose(f)) {
		free(s);
		return NULL;
	}
	return s;
}

/* ---------------------------------------------------- create, destroy */

static int is_loopback(const char *host)
{
	return !strcmp(host, "127.0.0.1") || !strcmp(host, "::1") ||
	       !strcmp(host, "localhost") || !strncmp(host, "127.", 4);
}

/* "[HOST:]PORT", HOST possibly in brackets: 0, or -1. */
static int parse_spec(const char *spec, char *host, size_t hn, int *port)
{
	const char *colon = strrchr(spec, ':');
	const char *p = colon ? colon + 1 : spec;
	char *end;
	long v = strtol(p, &end, 10);
	if (!*p || *end || v < 0 || v > 65535)
		return -1;
	*port = (int)v;
	if (!colon) {
		snprintf(host, hn, "127.0.0.1");
		return 0;
	}
	size_t n = (size_t)(colon - spec);
	if (n >= 2 && spec[0] == '[' && spec[n - 1] == ']')
		spec++, n -= 2;
	if (!n || n >= hn)
		return -1;
	memcpy(host, spec, n);
	host[n] = 0;
	if (!strcmp(host, "localhost"))
		snprintf(host, hn, "127.0.0.1");
	return 0;
}

struct xy_dash *xy_dash_create(struct xy_manager *m, const char *spec,
			       char *err, size_t errlen)
{
	struct xy_dash *d = calloc(1, sizeof *d);
	int port;
	if (!d) {
		xy_fail(err, errlen, ENOMEM, "out of memory");
		return NULL;
	}
	if (parse_spec(spec, d->host, sizeof d->host, &port) < 0) {
		xy_fail(err, errlen, EINVAL, "dashboard: \"%s\" is not"
			" [HOST:]PORT", spec);
		free(d);
		return NULL;
	}
	d->m = m;
	d->started = xy_mono();
	d->rng = 2463534242u; /* any seed but 0 */
	d->clock_cost = clock_cost();
	d->need_token = !is_loopback(d->host);
	uint8_t mac[32];
	unsigned maclen = 0;
	static const char label[] = "xylem dashboard token v1";
	HMAC(EVP_sha256(), m->secret, (int)m->secret_len,
	     (const unsigned char *)label, sizeof label - 1, mac, &maclen);
	for (int i = 0; i < 16; i++)
		snprintf(d->token + 2 * i, 3, "%02x", mac[i]);
	/* Beyond loopback, over TLS when the manager has it: the token
	 * does not cross the network in the clear. */
	SSL_CTX *ctx = d->need_token ? xy_mtls_ctx(m->mtls) : NULL;
	d->tls = ctx != NULL;
	d->http = xy_http_create(&m->loop, d->host, port, ctx, on_request,
				 on_stream_closed, d, err, errlen);
	if (!d->http) {
		free(d);
		return NULL;
	}
	char shown[256];
	snprintf(shown, sizeof shown, "%s", d->host);
	if (!strcmp(d->host, "0.0.0.0") || !strcmp(d->host, "::"))
		gethostname(shown, sizeof shown - 1);
	int v6 = strchr(shown, ':') != NULL;
	snprintf(d->url, sizeof d->url, "%s://%s%s%s:%d/%s%s",
		 d->tls ? "https" : "http", v6 ? "[" : "",
		 shown, v6 ? "]" : "", xy_http_port(d->http),
		 d->need_token ? "?token=" : "", d->need_token ? d->token : "");
	uv_timer_init(&m->loop, &d->timer);
	d->timer.data = d;
	uv_timer_start(&d->timer, on_tick, TICK_MS, TICK_MS);
	uv_unref((uv_handle_t *)&d->timer);
	XY_LOGI(WHO, "serving on %s:%d%s%s", d->host, xy_http_port(d->http),
		d->need_token ? " (token required)" : "",
		d->tls ? " over TLS" : "");
	if (d->need_token && !d->tls)
		XY_LOGW(WHO, "serving beyond loopback without TLS (--no-tls):"
			" its token crosses the network in the clear");
	return d;
}

static void on_timer_closed(uv_handle_t *h)
{
	struct xy_dash *d = h->data;
	for (int i = 0; i < RING; i++)
		free(d->ring[i].text);
	for (int i = 0; i < MAX_FAILS; i++) {
		free(d->fails[i].error);
		free(d->fails[i].output);
	}
	free(d);
}

void xy_dash_destroy(struct xy_dash *d)
{
	if (!d)
		return;
	xy_http_destroy(d->http);
	d->n_streams = 0;
	uv_close((uv_handle_t *)&d->timer, on_timer_closed);
}

int xy_dash_port(const struct xy_dash *d)
{
	return xy_http_port(d->http);
}

const char *xy_dash_url(const struct xy_dash *d)
{
	return d->url;
}

/* ------------------------------------- the public API's dashboard */

int xy_manager_http_port(const struct xy_manager *m)
{
	return m->dash ? xy_dash_port(m->dash) : 0;
}

const char *xy_manager_http_url(const struct xy_manager *m)
{
	return m->dash ? xy_dash_url(m->dash) : NULL;
}
