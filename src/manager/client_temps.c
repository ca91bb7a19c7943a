/*
 * client_temps.c: what a client's SUBMIT names besides its own files
 * (protocol version 16; docs/protocol.md, "Clients"): temps, URLs and
 * archives to unpack. A temp is named by the client, in its scope (its
 * session once it attached to one, else its connection): an output
 * declared as a temp stays on the worker that wrote it, like a local
 * run's temp (lineage.c: lost copies are made again from its writer), and
 * a later SUBMIT of the same scope that names it reads it there. The
 * client never receives its bytes. Names are bound when the SUBMIT
 * arrives, in order, so that a reader may follow its writer at once;
 * the job holds a reference on each file it bound until it ends. Pairs
 * with client.c through clients_int.h.
 *
 * With a journal, a session's temp is recorded (CTEMP: its session, its
 * name, and once its writer succeeded its object and the worker that
 * held it; or that it was dropped), so that a manager started again
 * gives it back to the session with that object, waiting for that
 * worker's inventory as for a local run's temp (memo.c, "Temps at a
 * restart").
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "clients_int.h"
#include "htab.h"
#include "journal.h"
#include "log.h"
#include "memo.h"
#include "memo_results.h"
#include "util.h"

#define WHO "manager"

/* A temp a client named. */
struct ctemp {
	uint8_t scope[XY_ID_LEN];
	char *name;
	struct xy_file *f; /* the client's handle on it; NULL while pending */
	int session;       /* scope is a session's: journaled */
	/* Replayed from the journal, given back at the start (pending). */
	int pending;
	uint8_t id[XY_ID_LEN];
	uint8_t kind;
	uint64_t size;
	char *worker;
	struct ctemp *hnext;
	struct ctemp *prev, *next; /* every temp, for a scope's drop */
};

struct xy_ctemps {
	struct xy_htab by_name;
	struct ctemp *all;
};

static uint32_t scope_hash(const uint8_t *scope, const char *name)
{
	uint32_t h = xy_str_hash(name), s;
	memcpy(&s, scope, sizeof s);
	return h ^ s;
}

static uint32_t node_hash(const void *n)
{
	const struct ctemp *t = n;
	return scope_hash(t->scope, t->name);
}

static struct xy_ctemps *ct_get(struct xy_clients *cs)
{
	if (cs->ct)
		return cs->ct;
	struct xy_ctemps *ct = calloc(1, sizeof *ct);
	if (!ct || xy_htab_init(&ct->by_name, offsetof(struct ctemp, hnext),
				node_hash) < 0) {
		free(ct);
		return NULL;
	}
	return cs->ct = ct;
}

void xy_clients__scope_new(struct xy_clients *cs, struct client *cl)
{
	/* Random: a session's id is the client's to choose, so a scope
	 * another client could name (a counter) would let it reach this
	 * connection's temps through an ATTACH. The counter only if the
	 * generator fails. */
	uint64_t n = ++cs->scopes;

	if (xy_random(cl->scope, XY_ID_LEN) < 0) {
		memset(cl->scope, 0xa5, XY_ID_LEN);
		memcpy(cl->scope, &n, sizeof n);
	}
}

static struct ctemp *find(struct xy_ctemps *ct, const uint8_t *scope,
			  const char *name)
{
	for (struct ctemp *t = xy_htab_first(&ct->by_name,
					     scope_hash(scope, name));
	     t; t = xy_htab_next(&ct->by_name, t))
		if (!memcmp(t->scope, scope, XY_ID_LEN) &&
		    !strcmp(t->name, name))
			return t;
	return NULL;
}

/* A CTEMP record: scope, live, name, and for a made temp its object
 * and worker. */
static void record(struct xy_clients *cs, const struct ctemp *t, int live)
{
	struct xy_buf b;
	const struct xy_object *o = live && t->f ? t->f->obj : NULL;
	const struct xy_worker *w = o ? xy_catalog_holder(o) : NULL;

	if (!cs->journal || !t->session || !cs->m->memo)
		return;
	xy_buf_init(&b);
	xy_buf_put_raw(&b, t->scope, XY_ID_LEN);
	xy_buf_put_u8(&b, live ? 1 : 0);
	xy_buf_put_str(&b, t->name);
	if (live) {
		if (!o)
			return;
		xy_buf_put_raw(&b, o->id, XY_ID_LEN);
		xy_buf_put_u8(&b, o->kind);
		xy_buf_put_u64(&b, o->size);
		xy_buf_put_str(&b, w && w->name ? w->name : "");
	}
	if (b.oom || xy_memo_client_put(cs->m->memo, XY_MEMO_REC_CTEMP, b.data,
					b.len, NULL) < 0)
		XY_LOGW(WHO, "temp %s: not recorded: %s", t->name,
			b.oom ? "out of memory" : strerror(errno));
	xy_buf_free(&b);
}

static void forget(struct xy_ctemps *ct, struct ctemp *t, int release)
{
	xy_htab_remove(&ct->by_name, t, node_hash(t));
	if (t->prev)
		t->prev->next = t->next;
	else
		ct->all = t->next;
	if (t->next)
		t->next->prev = t->prev;
	if (release && t->f)
		xy_file_release(t->f);
	free(t->name);
	free(t->worker);
	free(t);
}

/* Forgets t, and says so in the journal. */
static void drop_one(struct xy_clients *cs, struct ctemp *t)
{
	record(cs, t, 0);
	forget(cs->ct, t, 1);
}

/* A new temp under name in scope (one named so before is forgotten:
 * its readers already bound keep it). NULL on ENOMEM. */
static struct xy_file *declare(struct xy_clients *cs, const uint8_t *scope,
			       const char *name, int session)
{
	struct xy_ctemps *ct = ct_get(cs);
	struct ctemp *t = ct ? calloc(1, sizeof *t) : NULL;
	char err[256], *label = NULL;

	if (!t || !(t->name = strdup(name)) ||
	    asprintf(&label, "temp %s", name) < 0) {
		if (t)
			free(t->name);
		free(t);
		return NULL;
	}
	t->f = xy_manager_declare_temp(cs->m, XY_CACHE_WORKFLOW, err,
				       sizeof err);
	if (!t->f) {
		free(label);
		free(t->name);
		free(t);
		return NULL;
	}
	/* Errors name the temp as the client knows it. */
	free(t->f->label);
	t->f->label = label;
	struct ctemp *old = find(ct, scope, name);
	if (old)
		drop_one(cs, old);
	memcpy(t->scope, scope, XY_ID_LEN);
	t->session = session;
	xy_htab_insert(&ct->by_name, t, node_hash(t));
	t->next = ct->all;
	if (ct->all)
		ct->all->prev = t;
	ct->all = t;
	return t->f;
}

/* A file for a URL or a client object's store copy, unpacked if asked. */
static struct xy_file *unpacked(struct xy_clients *cs, struct xy_file *f,
				int unpack, char *err, size_t errlen)
{
	if (!f || !unpack)
		return f;
	return xy_manager_declare_unpack(cs->m, f, XY_CACHE_WORKFLOW, err,
					 errlen);
}

/* Binds input i of j's SUBMIT, if it is not the client's own object. */
static int bind_input(struct client_job *j, uint32_t i)
{
	struct xy_clients *cs = j->cs;
	struct xy_submit_input *in = &j->sub.submit.inputs[i];
	struct xy_file *f = NULL;
	char err[512] = "";

	if (in->from == XY_FROM_TEMP) {
		struct ctemp *t = cs->ct ? find(cs->ct, j->scope, in->ref)
					 : NULL;
		if (!t) {
			if (!j->why && asprintf(&j->why, "input %s: temp \"%s\""
				     " names nothing: no earlier SUBMIT of this"
				     " client's %s wrote it", in->name, in->ref,
				     j->sess || (j->cl && j->cl->sess)
					     ? "session" : "connection") < 0)
				j->why = NULL;
			return j->why ? 0 : -1;
		}
		f = unpacked(cs, t->f, in->unpack, err, sizeof err);
	} else if (in->from == XY_FROM_URL) {
		f = unpacked(cs, xy_manager_declare_url(cs->m, in->ref,
							XY_CACHE_WORKFLOW, err,
							sizeof err),
			     in->unpack, err, sizeof err);
	} else {
		return 0; /* the client's: fetched, then bound (make_task) */
	}
	if (!f) {
		if (!j->why && asprintf(&j->why, "input %s: %s", in->name,
					*err ? err : "out of memory") < 0)
			j->why = NULL;
		return j->why ? 0 : -1;
	}
	xy_catalog_file_incref(f);
	j->in_files[i] = f;
	return 0;
}

int xy_clients__bind(struct client_job *j)
{
	struct xy_msg_submit *s = &j->sub.submit;
	uint32_t n = s->n_inputs + s->n_outputs;

	if (j->cl) {
		memcpy(j->scope, j->cl->scope, XY_ID_LEN);
		j->scope_session = j->cl->sess != NULL;
	} else if (j->sess) {
		memcpy(j->scope, xy_clients__session_id(j->sess), XY_ID_LEN);
		j->scope_session = 1;
	}
	if (!(j->in_files = calloc(n ? n : 1, sizeof *j->in_files)) ||
	    (s->n_outputs &&
	     !(j->out_names = calloc(s->n_outputs, sizeof *j->out_names))))
		return -1;
	j->n_bound = n;
	j->n_out_names = s->n_outputs;
	j->out_files = j->in_files + s->n_inputs;
	for (uint32_t i = 0; i < s->n_inputs; i++)
		if (bind_input(j, i) < 0)
			return -1;
	for (uint32_t i = 0; !j->why && i < s->n_outputs; i++) {
		if (!*s->temps[i])
			continue;
		struct xy_file *f = declare(j->cs, j->scope, s->temps[i],
					    j->scope_session);
		if (!f || !(j->out_names[i] = strdup(s->temps[i])))
			return -1;
		xy_catalog_file_incref(f);
		j->out_files[i] = f;
	}
	return 0;
}

void xy_clients__unbind(struct client_job *j)
{
	if (!j->in_files)
		return;
	for (uint32_t i = 0; i < j->n_bound; i++)
		if (j->in_files[i])
			xy_catalog_file_decref(j->in_files[i]);
	free(j->in_files);
	j->in_files = j->out_files = NULL;
	for (uint32_t i = 0; j->out_names && i < j->n_out_names; i++)
		free(j->out_names[i]);
	free(j->out_names);
	j->out_names = NULL;
}

void xy_clients__temps_made(struct client_job *j)
{
	struct xy_ctemps *ct = j->cs->ct;

	for (uint32_t i = 0; ct && j->out_names && i < j->n_out_names; i++) {
		struct ctemp *t = j->out_names[i]
			? find(ct, j->scope, j->out_names[i]) : NULL;
		/* Still the temp of that name (not written again since). */
		if (t && t->f == j->out_files[i])
			record(j->cs, t, 1);
	}
}

int xy_clients__temp_replay(struct xy_clients *cs, const void *data,
			    size_t len, char *err, size_t errlen)
{
	struct xy_reader r;
	uint8_t scope[XY_ID_LEN], id[XY_ID_LEN] = {0}, kind = 0;
	uint64_t size = 0;
	char *name, *worker = NULL;

	xy_reader_init(&r, data, len);
	xy_get_raw(&r, scope, XY_ID_LEN);
	int live = xy_get_u8(&r);
	name = xy_get_str(&r, XY_MAX_NAME);
	if (live == 1) {
		xy_get_raw(&r, id, XY_ID_LEN);
		kind = xy_get_u8(&r);
		size = xy_get_u64(&r);
		worker = xy_get_str(&r, XY_MAX_NAME);
	}
	if (r.err || r.left || live > 1 || !name || (live && !worker) ||
	    kind > XY_KIND_DIR) {
		free(name);
		free(worker);
		snprintf(err, errlen, "a client temp record is malformed");
		return -1;
	}
	struct xy_ctemps *ct = cs ? ct_get(cs) : NULL;
	struct ctemp *t = ct ? find(ct, scope, name) : NULL;
	if (!cs || !live) {
		if (t)
			forget(ct, t, 1);
		free(name);
		free(worker);
		return 0;
	}
	if (!ct || (!t && !(t = calloc(1, sizeof *t)))) {
		free(name);
		free(worker);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (t->name) { /* named again: the latest */
		free(name);
		free(t->worker);
	} else {
		t->name = name;
		memcpy(t->scope, scope, XY_ID_LEN);
		xy_htab_insert(&ct->by_name, t, node_hash(t));
		t->next = ct->all;
		if (ct->all)
			ct->all->prev = t;
		ct->all = t;
	}
	t->session = 1;
	t->pending = 1;
	memcpy(t->id, id, XY_ID_LEN);
	t->kind = kind;
	t->size = size;
	t->worker = worker;
	return 0;
}

void xy_clients__temps_restore(struct xy_clients *cs)
{
	struct xy_manager *m = cs->m;
	int n = 0;

	for (struct ctemp *t = cs->ct ? cs->ct->all : NULL, *next; t;
	     t = next) {
		char err[256], *label = NULL;
		next = t->next;
		if (!t->pending)
			continue;
		struct xy_object *o = xy_catalog_object(m->catalog, t->id,
							t->kind, t->size);
		struct xy_file *f = o ? xy_manager_declare_temp(
			m, XY_CACHE_WORKFLOW, err, sizeof err) : NULL;
		if (!f || asprintf(&label, "temp %s", t->name) < 0) {
			if (f)
				xy_file_release(f);
			forget(cs->ct, t, 0);
			continue;
		}
		free(f->label);
		f->label = label;
		xy_catalog_file_set_object(m->catalog, f, o);
		xy_catalog_file_ready(m->catalog, f, o);
		xy_memo_restore_temp(m->memo, t->id, t->worker);
		t->f = f;
		t->pending = 0;
		n++;
	}
	if (n)
		XY_LOGI(WHO, "%d temps of clients' sessions known again from "
			"the journal", n);
}

int xy_clients__temps_dump(struct xy_clients *cs, struct xy_journal *snap)
{
	int ok = 1;
	/* What a snapshot keeps: each made temp of a session, as the last
	 * record of it said. */
	for (struct ctemp *t = cs->ct ? cs->ct->all : NULL; ok && t;
	     t = t->next) {
		const struct xy_object *o = t->f ? t->f->obj : NULL;
		const struct xy_worker *w = o ? xy_catalog_holder(o) : NULL;
		struct xy_buf b;
		if (!t->session || !o || t->f->state != FILE_READY)
			continue;
		xy_buf_init(&b);
		xy_buf_put_raw(&b, t->scope, XY_ID_LEN);
		xy_buf_put_u8(&b, 1);
		xy_buf_put_str(&b, t->name);
		xy_buf_put_raw(&b, o->id, XY_ID_LEN);
		xy_buf_put_u8(&b, o->kind);
		xy_buf_put_u64(&b, o->size);
		xy_buf_put_str(&b, w && w->name ? w->name : "");
		ok = !b.oom && xy_journal_append(snap, XY_MEMO_REC_CTEMP,
						 b.data, b.len);
		xy_buf_free(&b);
	}
	return ok ? 0 : -1;
}

void xy_clients__drop(struct xy_clients *cs, struct client *cl,
		      const struct xy_msg_drop *d)
{
	for (uint32_t i = 0; cs->ct && i < d->n_temps; i++) {
		struct ctemp *t = find(cs->ct, cl->scope, d->temps[i]);
		if (t)
			drop_one(cs, t);
	}
}

void xy_clients__drop_scope(struct xy_clients *cs, const uint8_t *scope)
{
	int n = 0;
	for (struct ctemp *t = cs->ct ? cs->ct->all : NULL, *next; t;
	     t = next) {
		next = t->next;
		if (!memcmp(t->scope, scope, XY_ID_LEN)) {
			forget(cs->ct, t, 1);
			n++;
		}
	}
	if (n)
		XY_LOGI(WHO, "%d temps of a client that left forgotten", n);
}

void xy_clients__free_temps(struct xy_clients *cs)
{
	if (!cs->ct)
		return;
	/* The catalogue frees the files themselves with the manager. */
	while (cs->ct->all)
		forget(cs->ct, cs->ct->all, 0);
	xy_htab_free(&cs->ct->by_name);
	free(cs->ct);
	cs->ct = NULL;
}
