/*
 * client.c: clients, a sub-context of the manager. A client is a program
 * that connects to the control port with role CLIENT and submits command
 * tasks (SUBMIT), which the manager answers one by one (RESULT); `xylem
 * cwl --manager` is one (docs/architecture.md, "Clients"; the messages
 * are in docs/protocol.md).
 *
 * A client's inputs live on its side. The manager fetches each one it
 * does not hold yet from the client's transfer server, on libuv's thread
 * pool, into its object store (the directory objects/ of the catalogue's
 * staging area, one entry per object id), declares it as a local file,
 * and submits the task as an internal task owned by the client's job:
 * wait never returns it. Its outputs come back to the manager as any
 * task's do (xplan.c), into jobs/N/; when it ends they are moved into the
 * store, which the manager's transfer server serves by id, and RESULT
 * names them for the client to fetch. A client that goes away cancels its
 * tasks; nothing else is lost.
 */
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "internal.h"
#include "clients_int.h"
#include "release.h"
#include "mtls.h"
#include "log.h"
#include "memo.h"
#include "util.h"

#define WHO "manager"
/* The receiver name in the tokens the manager shows a client's server. */
#define RECEIVER "manager"

/* An input brought from a client's transfer server into the store. */
struct fetch_work {
	uv_work_t req;
	struct client_job *job;
	char *host;
	int port;
	uint8_t id[XY_ID_LEN];
	uint8_t token[XY_TOKEN_LEN];
	char path[PATH_LEN];
	const char *name;
	int status;
	uint64_t bytes; /* fetched; 0 if the store held it */
	char err[600];
};

/* A finished job's outputs moved into the store, its directory removed. */
struct settle_work {
	uv_work_t req;
	struct client_job *job;
	char **from, **to; /* n each, NULL on failure */
	uint32_t *out;     /* n: the task's output each one is */
	uint32_t n;
	char dir[PATH_LEN];
};

struct xy_clients *xy_clients_create(struct xy_manager *m)
{
	struct xy_clients *cs = calloc(1, sizeof *cs);
	const char *staging = xy_catalog_staging(m->catalog);

	if (!cs)
		return NULL;
	cs->m = m;
	snprintf(cs->store, sizeof cs->store, "%.4096s/objects", staging);
	snprintf(cs->jobdir, sizeof cs->jobdir, "%.4096s/jobs", staging);
	if (xy_mkdir_p(cs->store) < 0 || xy_mkdir_p(cs->jobdir) < 0) {
		free(cs);
		return NULL;
	}
	return cs;
}

static void job_free(struct client_job *j)
{
	struct xy_clients *cs = j->cs;

	xy_clients__untrack(j);
	xy_clients__unbind(j);
	if (j->cl)
		j->cl->jobs--;
	if (j->prev)
		j->prev->next = j->next;
	else
		cs->jobs = j->next;
	if (j->next)
		j->next->prev = j->prev;
	if (!j->in_table)
		xy_task_delete(j->t);
	xy_msg_free(XY_MSG_SUBMIT, &j->sub);
	free(j->why);
	free(j);
}

void xy_clients_destroy(struct xy_clients *cs)
{
	if (!cs)
		return;
	/* Tasks still in the manager's table are freed with it. */
	while (cs->jobs)
		job_free(cs->jobs);
	xy_clients__free_temps(cs);
	xy_clients__free_journal(cs);
	free(cs);
}

struct client *xy_clients_add(struct xy_clients *cs, struct xy_conn *c)
{
	struct client *cl = calloc(1, sizeof *cl);

	if (!cl || !(cl->addr = strdup(xy_conn_peer_ip(c)))) {
		free(cl);
		return NULL;
	}
	cl->cs = cs;
	cl->conn = c;
	xy_clients__scope_new(cs, cl);
	cs->connected++;
	XY_LOGI(WHO, "client %s connected", xy_conn_peer(c));
	return cl;
}

void xy_clients_remove(struct xy_clients *cs, struct client *cl,
		       const char *reason)
{
	int n = 0;

	int kept = 0;
	/* A session's temps wait for its next connection (also when a
	 * newer connection took the session from this one); a
	 * connection's own go with it. */
	if (!cl->scope_session)
		xy_clients__drop_scope(cs, cl->scope);
	xy_clients__detach(cs, cl);
	for (struct client_job *j = cs->jobs; j; j = j->next) {
		if (j->cl != cl)
			continue;
		j->cl = NULL;
		cl->jobs--;
		/* Accepted in a session: it runs on, for the session's
		 * next ATTACH. */
		if (j->recorded) {
			kept++;
			continue;
		}
		n++;
		/* A running task is told to stop; its job ends when it
		 * does. A job still fetching ends when its fetches do. */
		if (j->in_table && !cs->m->destroying)
			xy_manager_task_cancel(cs->m, j->t);
	}
	cs->connected--;
	XY_LOGI(WHO, "client %s left (%s)%s%s", cl->addr, reason,
		n ? ", its tasks are cancelled" : "",
		kept ? ", its session's tasks run on" : "");
	free(cl->addr);
	free(cl);
}

int64_t xy_clients_connected(const struct xy_clients *cs)
{
	return cs->connected;
}

/* ------------------------------------------------------------ RESULT */

/* Sends the job's RESULT, from its task if it was made. */
static void send_result(struct client_job *j, xy_result r, const char *why)
{
	struct xy_manager *m = j->cs->m;
	struct xy_task *t = j->t;
	struct xy_result_output *outs = NULL;
	union xy_msg msg = {0};
	struct xy_msg_result *res = &msg.result;

	res->id = j->cid;
	res->result = (uint8_t)r;
	res->exit_code = t ? t->exit_code : -1;
	res->message = (char *)(why ? why : t && t->error ? t->error : "");
	/* A job made again from its record at a start may be answered
	 * before the transfer server is up (an input gone meanwhile). */
	res->xfer_port = m->xfer ? (uint16_t)xy_xfer_server_port(m->xfer) : 0;
	if (t && t->output) {
		size_t n = t->output_len;
		res->output_len = n > XY_MAX_OUTPUT ? XY_MAX_OUTPUT : n;
		res->output = t->output + (n - res->output_len);
	}
	if (t && r == XY_RESULT_SUCCESS && t->n_outputs &&
	    (outs = calloc(t->n_outputs, sizeof *outs))) {
		uint32_t n = 0;
		for (uint32_t i = 0; i < t->n_outputs; i++) {
			struct xy_object *o = t->outputs[i].file->obj;
			if (t->outputs[i].file->temp)
				continue; /* stays on its worker */
			outs[n].name = t->outputs[i].as;
			memcpy(outs[n].id, o->id, XY_ID_LEN);
			outs[n].kind = o->kind;
			outs[n].size = o->size;
			n++;
		}
		res->n_outputs = n;
		res->outputs = outs;
	}
	if (j->recorded)
		xy_clients__answer(j, res); /* recorded, then sent */
	else if (j->cl && xy_conn_send(j->cl->conn, XY_MSG_RESULT, &msg) < 0)
		xy_conn_close(j->cl->conn, "cannot send a RESULT");
	XY_LOGI(WHO, "client %s: task %llu %s", j->cl ? j->cl->addr : "(away)",
		(unsigned long long)j->cid, xy_result_string(r));
	free(outs);
}

static int journal_answer(struct xy_clients *cs, struct client *cl,
			  const struct xy_msg_submit *s, uint8_t *key);
static void journal_record(struct client_job *j);
static int submit_key(const struct xy_msg_submit *s, uint8_t *key);

static void settle_work(uv_work_t *req)
{
	struct settle_work *w = req->data;
	struct stat st;

	for (uint32_t i = 0; i < w->n; i++) {
		/* The store keeps one copy of an object: a copy already there
		 * stays, being served. */
		if (lstat(w->to[i], &st) == 0 || rename(w->from[i], w->to[i]) < 0)
			xy_rm_rf(w->from[i]);
	}
	xy_rm_rf(w->dir);
}

static void settle_free(struct settle_work *w)
{
	for (uint32_t i = 0; w->from && i < w->n; i++)
		free(w->from[i]);
	for (uint32_t i = 0; w->to && i < w->n; i++)
		free(w->to[i]);
	free(w->from);
	free(w->to);
	free(w->out);
	free(w);
}

static void settle_done(uv_work_t *req, int status)
{
	struct settle_work *w = req->data;
	struct client_job *j = w->job;
	struct xy_clients *cs = j->cs;
	struct xy_task *t = j->t;

	(void)status;
	for (uint32_t i = 0; i < w->n && !cs->m->destroying; i++)
		xy_catalog_serve(cs->m->catalog,
				 t->outputs[w->out[i]].file->obj, w->to[i]);
	if (j->keyed && t->result == XY_RESULT_SUCCESS && !cs->m->destroying)
		journal_record(j);
	if (t->result == XY_RESULT_SUCCESS && !cs->m->destroying)
		xy_clients__temps_made(j); /* recorded before its answer */
	if ((j->cl || j->acc) && !cs->m->destroying)
		send_result(j, t->result, NULL);
	xy_release_task_done(cs->m->release, t); /* after its record */
	settle_free(w);
	job_free(j);
}

/* The settling of a job's outputs (the first all of them, temps
 * aside: they stay on workers), or NULL if memory is short. */
static struct settle_work *settle_make(struct xy_clients *cs,
				       struct client_job *j, uint32_t all)
{
	struct settle_work *w = calloc(1, sizeof *w);
	uint32_t n = 0;
	if (!w)
		return NULL;
	w->req.data = w;
	w->job = j;
	if (all && (!(w->from = calloc(all, sizeof *w->from)) ||
		    !(w->to = calloc(all, sizeof *w->to)) ||
		    !(w->out = calloc(all, sizeof *w->out)))) {
		settle_free(w);
		return NULL;
	}
	for (uint32_t i = 0; i < all; i++)
		if (!j->t->outputs[i].file->temp)
			w->out[n++] = i;
	w->n = n;
	snprintf(w->dir, sizeof w->dir, "%s/%llu", cs->jobdir,
		 (unsigned long long)j->seq);
	for (uint32_t i = 0; i < n; i++) {
		struct xy_file *f = j->t->outputs[w->out[i]].file;
		w->from[i] = strdup(f->path);
		if (asprintf(&w->to[i], "%s/%s", cs->store, f->obj->hex) < 0)
			w->to[i] = NULL;
		if (!w->from[i] || !w->to[i]) {
			settle_free(w);
			return NULL;
		}
	}
	return w;
}

void xy_clients_task_done(struct xy_clients *cs, struct xy_task *t)
{
	struct client_job *j = t->job;
	uint32_t n = t->result == XY_RESULT_SUCCESS ? t->n_outputs : 0;
	struct settle_work *w;

	j->in_table = 0;
	w = settle_make(cs, j, n);
	if (w && uv_queue_work(&cs->m->loop, &w->req, settle_work,
			       settle_done) == 0)
		return;
	if (w)
		settle_free(w);
	if ((j->cl || j->acc) && !cs->m->destroying)
		send_result(j, XY_RESULT_MANAGER_FAILED,
			    "the manager is out of memory");
	xy_release_task_done(cs->m->release, t);
	job_free(j);
}

/* ---------------------------------------------------------- the task */

/* The task of a job whose inputs are all in the store. */
static struct xy_task *make_task(struct client_job *j, char *err,
				 size_t errlen)
{
	struct xy_clients *cs = j->cs;
	struct xy_msg_submit *s = &j->sub.submit;
	struct xy_task *t = xy_task_create(s->command);
	char path[PATH_LEN], hex[2 * XY_ID_LEN + 1];
	int bad = !t || (*s->tag && xy_task_set_tag(t, s->tag) < 0);

	for (uint32_t i = 0; !bad && i < s->n_inputs; i++) {
		struct xy_file *f = j->in_files[i];
		xy_hex(s->inputs[i].id, XY_ID_LEN, hex);
		snprintf(path, sizeof path, "%s/%s", cs->store, hex);
		if (!f && (f = xy_manager_declare_file(cs->m, path,
						       XY_CACHE_WORKFLOW, err,
						       errlen)) &&
		    s->inputs[i].unpack)
			f = xy_manager_declare_unpack(cs->m, f,
						      XY_CACHE_WORKFLOW, err,
						      errlen);
		bad = !f || xy_task_add_input(t, f, s->inputs[i].name, err,
					      errlen) < 0;
	}
	for (uint32_t i = 0; !bad && i < s->n_outputs; i++) {
		snprintf(path, sizeof path, "%s/%llu/%s", cs->jobdir,
			 (unsigned long long)j->seq, s->outputs[i]);
		struct xy_file *f = j->out_files[i];
		if (!f)
			f = xy_manager_declare_file(cs->m, path, XY_CACHE_TASK,
						    err, errlen);
		bad = !f || xy_task_add_output(t, f, s->outputs[i], err,
					       errlen) < 0;
	}
	for (uint32_t i = 0; !bad && i < s->n_env; i++)
		bad = xy_task_set_env(t, s->env[i].name, s->env[i].value) < 0;
	if (bad) {
		if (!*err)
			snprintf(err, errlen, "out of memory");
		xy_task_delete(t);
		return NULL;
	}
	xy_task_set_cores(t, s->cores ? (int)s->cores : 1);
	xy_task_set_memory(t, (int64_t)s->memory_mb);
	xy_task_set_disk(t, (int64_t)s->disk_mb);
	xy_task_set_gpus(t, (int)s->gpus);
	xy_task_set_time_limit(t, s->time_limit_ms / 1000.0);
	return t;
}

/* Every input of j is in the store (or could not be had): submits its
 * task, or answers at once. */
static void job_staged(struct client_job *j)
{
	struct xy_manager *m = j->cs->m;
	char err[1024] = "";

	if ((!j->cl && !j->resumed) || m->destroying) {
		job_free(j);
		return;
	}
	if (!j->in_files && xy_clients__bind(j) < 0)
		j->oom = 1; /* made again from its record: bound now */
	if (j->oom) {
		send_result(j, XY_RESULT_MANAGER_FAILED, "the manager is out of"
			    " memory");
		job_free(j);
		return;
	}
	if (j->why) {
		send_result(j, XY_RESULT_INPUT_MISSING, j->why);
		job_free(j);
		return;
	}
	/* Made again from its record: recorded by content too, as when it
	 * came. */
	if (j->resumed)
		j->keyed = submit_key(&j->sub.submit, j->key) == 0;
	j->t = make_task(j, err, sizeof err);
	if (j->t && j->session_job && !(j->t->key = malloc(XY_ID_LEN))) {
		xy_task_delete(j->t);
		j->t = NULL;
		snprintf(err, sizeof err, "out of memory");
	}
	if (j->t && j->session_job) {
		/* Its RUN records and its worker's keeping go by this key;
		 * accepted once recorded. */
		memcpy(j->t->key, j->jkey, XY_ID_LEN);
		if (!j->resumed && xy_clients__accept(j) < 0) {
			xy_task_delete(j->t);
			j->t = NULL;
			send_result(j, XY_RESULT_MANAGER_FAILED,
				    "the manager's journal cannot record the task");
			job_free(j);
			return;
		}
	} else if (j->t) {
		union xy_msg acc = {.accepted = {.id = j->cid}};
		xy_conn_send(j->cl->conn, XY_MSG_ACCEPTED, &acc);
	}
	if (j->t) {
		j->t->job = j;
		j->in_table = 1;
		/* Its temps can be made again from a copy of it, as a local
		 * run's (lineage.c). */
		if (xy_lineage_record(m->lineage, j->t, err, sizeof err) == 0 &&
		    xy_manager_submit_internal(m, j->t, err, sizeof err))
			goto submitted;
		j->in_table = 0;
		j->t->job = NULL;
	}
	send_result(j, XY_RESULT_APP_FAILED, err);
	job_free(j);
	return;
submitted:
	XY_LOGI(WHO, "client %s: task %llu runs as %llu",
		j->cl ? j->cl->addr : "(away)",
		(unsigned long long)j->cid, (unsigned long long)j->t->id);
	xy_msg_free(XY_MSG_SUBMIT, &j->sub);
}

struct client_job *xy_clients__job_new(struct xy_clients *cs,
				       struct client *cl)
{
	struct client_job *j = calloc(1, sizeof *j);
	if (!j)
		return NULL;
	j->cs = cs;
	j->cl = cl;
	j->seq = ++cs->seq;
	if (cl)
		cl->jobs++;
	j->next = cs->jobs;
	if (cs->jobs)
		cs->jobs->prev = j;
	cs->jobs = j;
	return j;
}

void xy_clients__job_free(struct client_job *j)
{
	job_free(j);
}

void xy_clients__start(struct client_job *j)
{
	job_staged(j);
}

/* ---------------------------------------------------------- fetching */

static void fetch_work(uv_work_t *req)
{
	struct fetch_work *w = req->data;
	struct xy_manager *m = w->job->cs->m;
	char tmp[PATH_LEN + 64];
	struct stat st;

	if (lstat(w->path, &st) == 0) { /* held already */
		w->status = XY_OBJ_OK;
		return;
	}
	snprintf(tmp, sizeof tmp, "%s.%p", w->path, (void *)w);
	w->status = xy_xfer_fetch(w->host, w->port, m->secret, m->secret_len,
				  xy_mtls_ctx(m->mtls) != NULL, w->id, w->token, RECEIVER, tmp, 0, &w->bytes,
				  w->err, sizeof w->err);
	if (w->status != XY_OBJ_OK)
		return;
	/* Another job may have brought the same object meanwhile. */
	if (lstat(w->path, &st) == 0 || rename(tmp, w->path) < 0)
		xy_rm_rf(tmp);
	if (lstat(w->path, &st) < 0) {
		snprintf(w->err, sizeof w->err, "cannot keep %.300s: %s", w->path,
			 strerror(errno));
		w->status = XY_OBJ_FAILED;
	}
}

static void fetch_done(uv_work_t *req, int status)
{
	struct fetch_work *w = req->data;
	struct client_job *j = w->job;

	if (status == 0 && w->status == XY_OBJ_OK && w->bytes)
		XY_LOGI(WHO, "client %s: input %s fetched (%llu bytes)",
			w->host, w->name, (unsigned long long)w->bytes);
	if ((status < 0 || w->status != XY_OBJ_OK) && !j->why &&
	    asprintf(&j->why, "input %s could not be fetched from the "
		     "client: %s", w->name, status < 0 ? "cancelled" : w->err) < 0)
		j->why = NULL;
	free(w->host);
	free(w);
	if (--j->work == 0)
		job_staged(j);
}

static void start_fetch(struct client_job *j, struct xy_submit_input *in)
{
	struct xy_clients *cs = j->cs;
	struct fetch_work *w = calloc(1, sizeof *w);
	char hex[2 * XY_ID_LEN + 1];

	if (!w || !(w->host = strdup(j->cl->addr))) {
		free(w);
		j->oom = 1;
		return;
	}
	w->req.data = w;
	w->job = j;
	w->port = j->sub.submit.xfer_port;
	w->name = in->name;
	memcpy(w->id, in->id, XY_ID_LEN);
	xy_token_issue(cs->m->secret, cs->m->secret_len, &cs->last_expiry,
		       in->id, RECEIVER, w->token);
	xy_hex(in->id, XY_ID_LEN, hex);
	snprintf(w->path, sizeof w->path, "%s/%s", cs->store, hex);
	if (uv_queue_work(&cs->m->loop, &w->req, fetch_work, fetch_done) < 0) {
		free(w->host);
		free(w);
		j->oom = 1;
		return;
	}
	j->work++;
}

/* ------------------------------------------------------------ SUBMIT */

static int by_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* 1 if two of the SUBMIT's sandbox names are the same: sorted, so that a
 * large SUBMIT costs n log n on the loop, not n squared. */
static int names_repeat(const struct xy_msg_submit *s)
{
	uint32_t n = s->n_inputs + s->n_outputs;
	const char **names = malloc((n ? n : 1) * sizeof *names);
	int repeat = 0;

	if (!names)
		return 1;
	for (uint32_t i = 0; i < n; i++)
		names[i] = i < s->n_inputs ? s->inputs[i].name
					   : s->outputs[i - s->n_inputs];
	qsort(names, n, sizeof *names, by_name);
	for (uint32_t i = 1; i < n && !repeat; i++)
		repeat = !strcmp(names[i - 1], names[i]);
	free(names);
	return repeat;
}

/* What makes a SUBMIT malformed, or too much, beyond what the decoder
 * checks. */
static const char *bad_submit(struct xy_clients *cs, struct client *cl,
			      const struct xy_msg_submit *s)
{
	if (!*s->command)
		return "SUBMIT with an empty command";
	for (uint32_t i = 0; i < s->n_inputs && !s->xfer_port; i++)
		if (s->inputs[i].from == XY_FROM_CLIENT)
			return "SUBMIT with inputs but no transfer port";
	if (s->n_inputs + s->n_outputs > CLIENT_FILES_MAX)
		return "SUBMIT with more than " STR(CLIENT_FILES_MAX) " files";
	if (cl->jobs >= CLIENT_JOBS_MAX)
		return "more than " STR(CLIENT_JOBS_MAX) " tasks not yet answered";
	for (struct client_job *j = cs->jobs; j; j = j->next)
		if (j->cl == cl && j->cid == s->id &&
		    !(j->session_job && xy_key_set(s->key)))
			return "SUBMIT with the id of a task not yet answered";
	if (names_repeat(s))
		return "SUBMIT names a sandbox path twice";
	return NULL;
}

static void on_submit(struct xy_clients *cs, struct client *cl,
		      union xy_msg *msg)
{
	const char *why = bad_submit(cs, cl, &msg->submit);
	struct client_job *j;

	uint8_t key[XY_ID_LEN];
	int keyed = 0;
	if (why) {
		XY_LOGW(WHO, "closing client %s: %s", cl->addr, why);
		xy_conn_close(cl->conn, why);
		return;
	}
	uint8_t jkey[XY_ID_LEN];
	int session_job = 0;
	if (cs->journal && xy_key_set(msg->submit.key)) {
		if (!cl->sess) {
			XY_LOGW(WHO, "closing client %s: SUBMIT with a key "
				"before ATTACH", cl->addr);
			xy_conn_close(cl->conn, "SUBMIT with a key before ATTACH");
			return;
		}
		int r = xy_clients__known(cs, cl, &msg->submit, jkey);
		if (r > 0)
			return; /* the same job: never a second one */
		session_job = r == 0;
	}
	if (cs->journal) {
		/* The same task's content finished before (any session's,
		 * or none): its recorded RESULT. */
		int r = journal_answer(cs, cl, &msg->submit, key);
		if (r > 0)
			return; /* answered from the journal */
		keyed = r == 0;
	}
	if (!(j = xy_clients__job_new(cs, cl))) {
		xy_conn_close(cl->conn, "out of memory");
		return;
	}
	j->cid = msg->submit.id;
	j->keyed = keyed;
	memcpy(j->key, key, sizeof key);
	j->sub = *msg; /* stolen: the conn frees an empty message */
	memset(msg, 0, sizeof *msg);
	if (session_job) {
		j->session_job = 1;
		j->sess = cl->sess;
		memcpy(j->jkey, jkey, XY_ID_LEN);
		if (xy_clients__track(j) < 0) {
			job_free(j);
			xy_conn_close(cl->conn, "out of memory");
			return;
		}
	}
	/* Its temps bound now, in the order the SUBMITs came. */
	if (xy_clients__bind(j) < 0)
		j->oom = 1;
	for (uint32_t i = 0; i < j->sub.submit.n_inputs; i++)
		if (j->sub.submit.inputs[i].from == XY_FROM_CLIENT)
			start_fetch(j, &j->sub.submit.inputs[i]);
	if (j->work == 0)
		job_staged(j);
}

void xy_clients_msg(struct xy_clients *cs, struct client *cl, unsigned type,
		    union xy_msg *msg)
{
	char why[64];

	if (type == XY_MSG_SUBMIT) {
		on_submit(cs, cl, msg);
		return;
	}
	if (type == XY_MSG_KEEPALIVE)
		return;
	if (type == XY_MSG_ATTACH) {
		/* Its temps are its session's from now on (a refused ATTACH
		 * closes the connection and changes nothing). */
		if (xy_clients__attach(cs, cl, &msg->attach) == 0 &&
		    cl->sess) {
			memcpy(cl->scope, msg->attach.session, XY_ID_LEN);
			cl->scope_session = 1;
		}
		return;
	}
	if (type == XY_MSG_DROP) {
		xy_clients__drop(cs, cl, &msg->drop);
		return;
	}
	snprintf(why, sizeof why, "unexpected %s", xy_msg_name(type));
	XY_LOGW(WHO, "closing client %s: %s", cl->addr, why);
	xy_conn_close(cl->conn, why);
}

/* ------------------------------------------------------------ journal */

/*
 * With a journal (`xylem manager --journal DIR`, docs/durability.md,
 * "Clients"), a client's task that succeeded is recorded under its key,
 * a SHA-256 over what makes its results what they are (the SUBMIT's
 * command, environment, inputs' names and content ids, and outputs'
 * names), with its RESULT's content (exit code, output, and its outputs'
 * names, ids, kinds and sizes); its outputs stay in the store, which is
 * DIR/store. A SUBMIT whose key is recorded, and whose outputs are all
 * still in the store, is answered at once from the record without
 * running: so a client that lost its manager resubmits what it has no
 * RESULT for, and only what had not finished runs.
 */

int xy_clients_journal(struct xy_clients *cs, const char *dir)
{
	char jobs[DIR_LEN];
	if (snprintf(cs->store, sizeof cs->store, "%.4000s/store", dir) >=
		    (int)sizeof cs->store ||
	    snprintf(jobs, sizeof jobs, "%.4000s/jobs", dir) >=
		    (int)sizeof jobs) {
		errno = ENAMETOOLONG;
		return -1;
	}
	/* A job's directory from a run that was killed: nothing of it is
	 * recorded. On the store's file system, so that outputs are
	 * renamed into the store. */
	xy_rm_rf(jobs);
	if (xy_mkdir_p(cs->store) < 0 || xy_mkdir_p(jobs) < 0)
		return -1;
	memcpy(cs->jobdir, jobs, sizeof jobs);
	cs->journal = 1;
	xy_clients__resume(cs);
	return 0;
}

static void key_str(EVP_MD_CTX *c, const char *s)
{
	uint64_t n = strlen(s);
	EVP_DigestUpdate(c, &n, sizeof n);
	EVP_DigestUpdate(c, s, n);
}

static int submit_key(const struct xy_msg_submit *s, uint8_t *key)
{
	EVP_MD_CTX *c;
	unsigned len = 0;
	uint64_t n;
	/* A temp, a URL or an expansion is not named by its content here:
	 * such a task has no key, and runs each time. */
	for (uint32_t i = 0; i < s->n_inputs; i++)
		if (s->inputs[i].from != XY_FROM_CLIENT || s->inputs[i].unpack)
			return -1;
	for (uint32_t i = 0; s->temps && i < s->n_outputs; i++)
		if (*s->temps[i])
			return -1;
	c = EVP_MD_CTX_new();
	if (!c || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(c);
		return -1;
	}
	key_str(c, "xylem client task 1");
	key_str(c, s->command);
	n = s->n_env;
	EVP_DigestUpdate(c, &n, sizeof n);
	for (uint32_t i = 0; i < s->n_env; i++) {
		key_str(c, s->env[i].name);
		key_str(c, s->env[i].value);
	}
	n = s->n_inputs;
	EVP_DigestUpdate(c, &n, sizeof n);
	for (uint32_t i = 0; i < s->n_inputs; i++) {
		key_str(c, s->inputs[i].name);
		EVP_DigestUpdate(c, s->inputs[i].id, XY_ID_LEN);
		EVP_DigestUpdate(c, &s->inputs[i].kind, 1);
	}
	n = s->n_outputs;
	EVP_DigestUpdate(c, &n, sizeof n);
	for (uint32_t i = 0; i < s->n_outputs; i++)
		key_str(c, s->outputs[i]);
	int ok = EVP_DigestFinal_ex(c, key, &len) == 1 && len == XY_ID_LEN;
	EVP_MD_CTX_free(c);
	return ok ? 0 : -1;
}

/* The record: exit code, output, then each output's name, id, kind and
 * size. */
static void journal_record(struct client_job *j)
{
	struct xy_task *t = j->t;
	struct xy_buf b;
	size_t n = t->output ? t->output_len : 0;
	size_t keep = n > XY_MAX_OUTPUT ? XY_MAX_OUTPUT : n;

	xy_buf_init(&b);
	xy_buf_put_u32(&b, (uint32_t)t->exit_code);
	xy_buf_put_bytes(&b, keep ? t->output + (n - keep) : "", keep);
	xy_buf_put_u32(&b, t->n_outputs);
	for (uint32_t i = 0; i < t->n_outputs; i++) {
		struct xy_object *o = t->outputs[i].file->obj;
		if (t->outputs[i].file->temp) {
			b.oom = 1; /* never: such a SUBMIT has no key */
			break;
		}
		xy_buf_put_str(&b, t->outputs[i].as);
		xy_buf_put_raw(&b, o->id, XY_ID_LEN);
		xy_buf_put_u8(&b, o->kind);
		xy_buf_put_u64(&b, o->size);
	}
	if (b.oom ||
	    xy_memo_client_record(j->cs->m->memo, j->key, b.data, b.len) < 0)
		XY_LOGW(WHO, "client task %llu: not recorded: %s",
			(unsigned long long)j->cid,
			b.oom ? "out of memory" : strerror(errno));
	xy_buf_free(&b);
}

/* With the journal's key of s in key: 1 if s was answered from the
 * journal; 0 if not (it runs, and is recorded under key); -1 if it has
 * no key (it runs, unrecorded). */
static int journal_answer(struct xy_clients *cs, struct client *cl,
			  const struct xy_msg_submit *s, uint8_t *key)
{
	struct xy_manager *m = cs->m;
	size_t len = 0;
	if (submit_key(s, key) < 0)
		return -1;
	const void *data = xy_memo_client_find(m->memo, key, &len);
	if (!data)
		return 0;
	union xy_msg msg = {0};
	struct xy_msg_result *res = &msg.result;
	struct xy_reader r;
	char path[PATH_LEN], hex[2 * XY_ID_LEN + 1];
	struct stat st;
	int ok = 1;

	xy_reader_init(&r, data, len);
	res->id = s->id;
	res->result = XY_RESULT_SUCCESS;
	res->message = "";
	res->xfer_port = (uint16_t)xy_xfer_server_port(m->xfer);
	res->exit_code = (int32_t)xy_get_u32(&r);
	/* The reader's bytes are copies, freed below. */
	res->output = xy_get_bytes(&r, XY_MAX_OUTPUT, &res->output_len);
	res->n_outputs = xy_get_count(&r, CLIENT_FILES_MAX);
	if (!r.err && res->n_outputs &&
	    !(res->outputs = calloc(res->n_outputs, sizeof *res->outputs)))
		ok = 0;
	for (uint32_t i = 0; ok && !r.err && i < res->n_outputs; i++) {
		struct xy_result_output *o = &res->outputs[i];
		o->name = xy_get_str(&r, XY_MAX_NAME);
		xy_get_raw(&r, o->id, XY_ID_LEN);
		o->kind = xy_get_u8(&r);
		o->size = xy_get_u64(&r);
		if (r.err)
			break;
		xy_hex(o->id, XY_ID_LEN, hex);
		snprintf(path, sizeof path, "%s/%s", cs->store, hex);
		/* An output gone from the store: the task runs again. */
		if (lstat(path, &st) < 0 ||
		    (S_ISREG(st.st_mode) && (uint64_t)st.st_size != o->size))
			ok = 0;
	}
	ok = ok && !r.err && !r.left;
	for (uint32_t i = 0; ok && i < res->n_outputs; i++) {
		xy_hex(res->outputs[i].id, XY_ID_LEN, hex);
		snprintf(path, sizeof path, "%s/%s", cs->store, hex);
		xy_catalog_serve_id(m->catalog, res->outputs[i].id,
				    res->outputs[i].kind, path);
	}
	if (ok) {
		if (xy_conn_send(cl->conn, XY_MSG_RESULT, &msg) < 0)
			xy_conn_close(cl->conn, "cannot send a RESULT");
		XY_LOGI(WHO, "client %s: task %llu finished before (the "
			"journal): not run again", cl->addr,
			(unsigned long long)s->id);
	}
	res->message = NULL;
	xy_msg_free(XY_MSG_RESULT, &msg);
	return ok ? 1 : 0;
}
