/*
 * clients_journal.c: clients' sessions, with a journal (`xylem manager
 * --journal`; docs/durability.md, "Clients"). A client names a session
 * (ATTACH: a random id it keeps, and the last RESULT number it saw) and
 * gives each SUBMIT a key of its own. Such a SUBMIT, once its inputs are
 * in the store, is recorded (SUBMIT record) before the manager tells the
 * client ACCEPTED; its task carries the job's key as its fingerprint, so
 * that a RUN record goes out before its TASK and a worker keeps it when
 * the manager dies. Its end is numbered in its session and recorded
 * (ANSWER record, with the task's UNRUN) before its RESULT is sent. A
 * manager started again on the journal makes every accepted job without
 * an answer again (its task adopted from the worker that kept it), and a
 * client that attaches again gets every RESULT after the one it saw. The
 * same key submitted again is the same job: never a second run.
 *
 * Pairs with client.c (connections, SUBMIT, RESULT) through
 * clients_int.h, and with memo.c, which owns the journal.
 */
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clients_int.h"
#include "htab.h"
#include "journal.h"
#include "log.h"
#include "memo.h"
#include "memo_results.h"
#include "util.h"

#define WHO "manager"

/* A session: a client's name for its tasks across connections. */
struct session {
	uint8_t id[XY_ID_LEN];
	uint64_t seq;   /* the last RESULT number given */
	uint64_t acked; /* the client said it saw every RESULT up to it */
	struct client *cl; /* attached now, or NULL */
	struct answer *answers, *answers_tail; /* seq > acked, in order */
	struct session *next;
};

/* A job's end, as its RESULT's payload, kept until the client has it. */
struct answer {
	uint8_t jkey[XY_ID_LEN];
	uint64_t seq;
	uint8_t *data;
	size_t len;
	struct answer *next;  /* in its session, by seq */
	struct answer *hnext; /* in the table by key */
};

/* A keyed job not yet answered; recorded once its SUBMIT is written. */
struct accepted {
	uint8_t jkey[XY_ID_LEN];
	struct session *sess;
	uint8_t *data; /* its SUBMIT record, once written */
	size_t len;
	struct client_job *job; /* its job in this manager, or NULL */
	struct accepted *hnext;
};

struct xy_cjournal {
	struct session *sessions;
	struct xy_htab accepted, answers; /* by jkey */
};

static uint32_t key_hash(const uint8_t *k)
{
	uint32_t h;
	memcpy(&h, k, sizeof h);
	return h;
}

static uint32_t acc_hash(const void *n)
{
	return key_hash(((const struct accepted *)n)->jkey);
}

static uint32_t ans_hash(const void *n)
{
	return key_hash(((const struct answer *)n)->jkey);
}

static struct xy_cjournal *cj_get(struct xy_clients *cs)
{
	struct xy_cjournal *cj;
	if (cs->cj)
		return cs->cj;
	if (!(cj = calloc(1, sizeof *cj)))
		return NULL;
	if (xy_htab_init(&cj->accepted, offsetof(struct accepted, hnext),
			 acc_hash) < 0 ||
	    xy_htab_init(&cj->answers, offsetof(struct answer, hnext),
			 ans_hash) < 0) {
		xy_htab_free(&cj->accepted);
		free(cj);
		return NULL;
	}
	return cs->cj = cj;
}

static struct session *session_get(struct xy_cjournal *cj,
				   const uint8_t *id)
{
	struct session *s;
	for (s = cj->sessions; s; s = s->next)
		if (!memcmp(s->id, id, XY_ID_LEN))
			return s;
	if (!(s = calloc(1, sizeof *s)))
		return NULL;
	memcpy(s->id, id, XY_ID_LEN);
	s->next = cj->sessions;
	cj->sessions = s;
	return s;
}

const uint8_t *xy_clients__session_id(const struct session *s)
{
	return s->id;
}

static struct accepted *acc_find(struct xy_cjournal *cj, const uint8_t *k)
{
	for (struct accepted *a = xy_htab_first(&cj->accepted, key_hash(k));
	     a; a = xy_htab_next(&cj->accepted, a))
		if (!memcmp(a->jkey, k, XY_ID_LEN))
			return a;
	return NULL;
}

static void acc_drop(struct xy_cjournal *cj, struct accepted *a)
{
	xy_htab_remove(&cj->accepted, a, key_hash(a->jkey));
	if (a->job)
		a->job->acc = NULL;
	free(a->data);
	free(a);
}

static struct answer *ans_find(struct xy_cjournal *cj, const uint8_t *k)
{
	for (struct answer *a = xy_htab_first(&cj->answers, key_hash(k)); a;
	     a = xy_htab_next(&cj->answers, a))
		if (!memcmp(a->jkey, k, XY_ID_LEN))
			return a;
	return NULL;
}

/* Keeps an answer of s (numbered seq) unless the client has it. */
static int ans_add(struct xy_cjournal *cj, struct session *s,
		   const uint8_t *jkey, uint64_t seq, const void *data,
		   size_t len)
{
	struct answer *a;
	if (seq > s->seq)
		s->seq = seq;
	if (seq <= s->acked)
		return 0;
	if (!(a = calloc(1, sizeof *a)) || !(a->data = malloc(len ? len : 1))) {
		free(a);
		return -1;
	}
	memcpy(a->jkey, jkey, XY_ID_LEN);
	a->seq = seq;
	memcpy(a->data, data, len);
	a->len = len;
	if (s->answers_tail)
		s->answers_tail->next = a;
	else
		s->answers = a;
	s->answers_tail = a;
	xy_htab_insert(&cj->answers, a, key_hash(jkey));
	return 0;
}

/* The client saw every RESULT of s up to after: they are dropped. */
static void ack(struct xy_cjournal *cj, struct session *s, uint64_t after)
{
	if (after > s->acked)
		s->acked = after;
	while (s->answers && s->answers->seq <= s->acked) {
		struct answer *a = s->answers;
		s->answers = a->next;
		xy_htab_remove(&cj->answers, a, key_hash(a->jkey));
		free(a->data);
		free(a);
	}
	if (!s->answers)
		s->answers_tail = NULL;
}

void xy_clients__free_journal(struct xy_clients *cs)
{
	struct xy_cjournal *cj = cs->cj;
	if (!cj)
		return;
	for (size_t i = 0; i < cj->accepted.n_slots; i++)
		while (xy_htab_slot(&cj->accepted, i))
			acc_drop(cj, xy_htab_slot(&cj->accepted, i));
	while (cj->sessions) {
		struct session *s = cj->sessions;
		cj->sessions = s->next;
		ack(cj, s, UINT64_MAX);
		free(s);
	}
	xy_htab_free(&cj->accepted);
	xy_htab_free(&cj->answers);
	free(cj);
	cs->cj = NULL;
}

/* ------------------------------------------------------------ replay */

/*
 * Records (types in memo_results.h; the journal is memo.c's):
 *   SUBMIT   session[32] jkey[32] then the SUBMIT's payload
 *   ANSWER   session[32] jkey[32] u64 seq then the RESULT's payload
 *   SESSION  session[32] u64 seq u64 acked   (snapshots only)
 */
int xy_clients_replay(struct xy_clients *cs, unsigned type, const void *data,
		      size_t len, char *err, size_t errlen)
{
	struct xy_cjournal *cj = cs ? cj_get(cs) : NULL;
	struct session *s;
	struct xy_reader r;
	uint8_t sid[XY_ID_LEN], jkey[XY_ID_LEN];
	uint64_t seq = 0, acked = 0;

	if (type == XY_MEMO_REC_CTEMP)
		return xy_clients__temp_replay(cs, data, len, err, errlen);
	xy_reader_init(&r, data, len);
	xy_get_raw(&r, sid, XY_ID_LEN);
	if (type == XY_MEMO_REC_SESSION) {
		seq = xy_get_u64(&r);
		acked = xy_get_u64(&r);
	} else {
		xy_get_raw(&r, jkey, XY_ID_LEN);
		if (type == XY_MEMO_REC_ANSWER)
			seq = xy_get_u64(&r);
	}
	if (r.err || (type == XY_MEMO_REC_SESSION && r.left)) {
		snprintf(err, errlen, "a client record is malformed");
		return -1;
	}
	if (!cs)
		return 0; /* read alone (the fuzzer's memo has no manager) */
	if (!cj || !(s = session_get(cj, sid)))
		goto oom;
	if (type == XY_MEMO_REC_SESSION) {
		if (seq > s->seq)
			s->seq = seq;
		ack(cj, s, acked);
		return 0;
	}
	struct accepted *a = acc_find(cj, jkey);
	if (type == XY_MEMO_REC_ANSWER) {
		if (a)
			acc_drop(cj, a);
		if (ans_add(cj, s, jkey, seq, data, len) < 0)
			goto oom;
		return 0;
	}
	if (a)
		return 0; /* recorded twice (a snapshot and its log) */
	if (!(a = calloc(1, sizeof *a)) || !(a->data = malloc(len))) {
		free(a);
		goto oom;
	}
	memcpy(a->jkey, jkey, XY_ID_LEN);
	a->sess = s;
	memcpy(a->data, data, len);
	a->len = len;
	xy_htab_insert(&cj->accepted, a, key_hash(jkey));
	return 0;
oom:
	snprintf(err, errlen, "out of memory");
	return -1;
}

int xy_clients_dump(struct xy_clients *cs, struct xy_journal *snap)
{
	struct xy_cjournal *cj = cs->cj;
	struct xy_buf b;
	int ok = 1;

	if (!cj)
		return 0;
	xy_buf_init(&b);
	for (struct session *s = cj->sessions; ok && s; s = s->next) {
		xy_buf_reset(&b);
		xy_buf_put_raw(&b, s->id, XY_ID_LEN);
		xy_buf_put_u64(&b, s->seq);
		xy_buf_put_u64(&b, s->acked);
		ok = !b.oom && xy_journal_append(snap, XY_MEMO_REC_SESSION,
						 b.data, b.len);
		for (struct answer *a = s->answers; ok && a; a = a->next)
			ok = xy_journal_append(snap, XY_MEMO_REC_ANSWER,
					       a->data, a->len) != 0;
	}
	for (size_t i = 0; ok && i < cj->accepted.n_slots; i++)
		for (struct accepted *a = xy_htab_slot(&cj->accepted, i);
		     ok && a; a = a->hnext)
			if (a->data)
				ok = xy_journal_append(snap, XY_MEMO_REC_SUBMIT,
						       a->data, a->len) != 0;
	xy_buf_free(&b);
	ok = ok && xy_clients__temps_dump(cs, snap) == 0;
	if (!ok)
		errno = ENOMEM;
	return ok ? 0 : -1;
}

void xy_clients__resume(struct xy_clients *cs)
{
	struct xy_cjournal *cj = cs->cj;
	size_t n = 0, bad = 0;

	xy_clients__temps_restore(cs);
	/* A job answered at once (an input gone) drops its entry: the walk
	 * keeps the next one first. */
	for (size_t i = 0; cj && i < cj->accepted.n_slots; i++)
		for (struct accepted *a = xy_htab_slot(&cj->accepted, i),
				     *next; a; a = next) {
			next = a->hnext;
			struct client_job *j;
			char err[256];
			size_t off = 2 * XY_ID_LEN;
			if (a->job || !a->data)
				continue;
			if (!(j = xy_clients__job_new(cs, NULL))) {
				bad++;
				continue;
			}
			if (xy_msg_decode(XY_MSG_SUBMIT, a->data + off,
					  a->len - off, &j->sub, err,
					  sizeof err) < 0) {
				XY_LOGW(WHO, "a recorded client task cannot be "
					"read: %s", err);
				bad++;
				xy_clients__job_free(j);
				continue;
			}
			j->cid = j->sub.submit.id;
			j->session_job = 1;
			j->resumed = 1;
			j->recorded = 1;
			memcpy(j->jkey, a->jkey, XY_ID_LEN);
			j->sess = a->sess;
			j->acc = a;
			a->job = j;
			n++;
			xy_clients__start(j);
		}
	if (n || bad)
		XY_LOGI(WHO, "%zu clients' tasks accepted before and not "
			"finished: made again%s", n, bad ? " (some could "
			"not be)" : "");
}

/* ---------------------------------------------------------- sessions */

static void send_accepted(struct client_job *j)
{
	union xy_msg msg = {.accepted = {.id = j->cid}};
	if (j->cl && xy_conn_send(j->cl->conn, XY_MSG_ACCEPTED, &msg) < 0)
		xy_conn_close(j->cl->conn, "cannot send ACCEPTED");
}

/* Sends a kept answer to cl, as the RESULT of id (0: its own). */
static void send_answer(struct client *cl, const struct answer *a,
			uint64_t id)
{
	union xy_msg msg;
	char err[256];
	size_t off = 2 * XY_ID_LEN + 8;
	if (xy_msg_decode(XY_MSG_RESULT, a->data + off, a->len - off, &msg,
			  err, sizeof err) < 0) {
		XY_LOGW(WHO, "a recorded client result cannot be read: %s",
			err);
		return;
	}
	if (id)
		msg.result.id = id;
	msg.result.seq = a->seq;
	if (xy_conn_send(cl->conn, XY_MSG_RESULT, &msg) < 0)
		xy_conn_close(cl->conn, "cannot send a RESULT");
	xy_msg_free(XY_MSG_RESULT, &msg);
}

static void take_job(struct client_job *j, struct client *cl)
{
	if (j->cl == cl)
		return;
	if (j->cl)
		j->cl->jobs--;
	j->cl = cl;
	if (cl)
		cl->jobs++;
}

int xy_clients__attach(struct xy_clients *cs, struct client *cl,
		       const struct xy_msg_attach *at)
{
	struct xy_cjournal *cj;
	struct session *s;

	if (cl->sess) {
		xy_conn_close(cl->conn, "a second ATTACH");
		return -1;
	}
	if (!cs->journal)
		return 0; /* keys mean nothing without a journal */
	if (!(cj = cj_get(cs)) || !(s = session_get(cj, at->session))) {
		xy_conn_close(cl->conn, "out of memory");
		return -1;
	}
	if (s->cl) /* the same session on another connection: ours now */
		s->cl->sess = NULL;
	s->cl = cl;
	cl->sess = s;
	ack(cj, s, at->after);
	size_t n = 0, sent = 0;
	for (struct answer *a = s->answers; a; a = a->next, sent++)
		send_answer(cl, a, 0);
	for (struct client_job *j = cs->jobs; j; j = j->next)
		if (j->sess == s && j->cl != cl) {
			take_job(j, cl);
			n++;
		}
	XY_LOGI(WHO, "client %s attached to its session (after result %llu):"
		" %zu results sent again, %zu of its tasks still running",
		cl->addr, (unsigned long long)at->after, sent, n);
	return 0;
}

void xy_clients__detach(struct xy_clients *cs, struct client *cl)
{
	(void)cs;
	if (cl->sess && cl->sess->cl == cl)
		cl->sess->cl = NULL;
	cl->sess = NULL;
}

static int job_key(const uint8_t *sid, const uint8_t *key, uint8_t *out)
{
	unsigned len = 0;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	int ok = c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) == 1 &&
		 EVP_DigestUpdate(c, "xylem client session key 1", 26) == 1 &&
		 EVP_DigestUpdate(c, sid, XY_ID_LEN) == 1 &&
		 EVP_DigestUpdate(c, key, XY_ID_LEN) == 1 &&
		 EVP_DigestFinal_ex(c, out, &len) == 1 && len == XY_ID_LEN;
	EVP_MD_CTX_free(c);
	return ok ? 0 : -1;
}

int xy_clients__known(struct xy_clients *cs, struct client *cl,
		      const struct xy_msg_submit *s, uint8_t *jkey)
{
	struct xy_cjournal *cj = cs->cj;
	struct accepted *a;
	struct answer *ans;

	if (job_key(cl->sess->id, s->key, jkey) < 0)
		return -1;
	if ((a = acc_find(cj, jkey)) && a->job) {
		struct client_job *j = a->job;
		take_job(j, cl);
		j->cid = s->id;
		if (a->data)
			send_accepted(j);
		XY_LOGI(WHO, "client %s: task %llu submitted again: the same"
			" task, still running", cl->addr,
			(unsigned long long)s->id);
		return 1;
	}
	if ((ans = ans_find(cj, jkey))) {
		send_answer(cl, ans, s->id);
		XY_LOGI(WHO, "client %s: task %llu submitted again: answered "
			"from the journal", cl->addr, (unsigned long long)s->id);
		return 1;
	}
	return 0;
}

/* A new keyed job: tracked by its key from now on, recorded later. */
int xy_clients__track(struct client_job *j)
{
	struct xy_cjournal *cj = j->cs->cj;
	struct accepted *a = acc_find(cj, j->jkey);
	if (a)	/* recorded, its job lost (unreadable): recorded again */
		acc_drop(cj, a);
	if (!(a = calloc(1, sizeof *a)))
		return -1;
	memcpy(a->jkey, j->jkey, XY_ID_LEN);
	a->sess = j->sess;
	a->job = j;
	j->acc = a;
	xy_htab_insert(&cj->accepted, a, key_hash(a->jkey));
	return 0;
}

/* j is freed: an unrecorded key is forgotten, a recorded one waits. */
void xy_clients__untrack(struct client_job *j)
{
	struct accepted *a = j->acc;
	if (!a)
		return;
	a->job = NULL;
	j->acc = NULL;
	if (!a->data)
		acc_drop(j->cs->cj, a);
}

int xy_clients__accept(struct client_job *j)
{
	struct xy_buf b;
	struct accepted *a = j->acc;
	int rc = -1;

	if (!a)
		return -1;
	xy_buf_init(&b);
	xy_buf_put_raw(&b, a->sess->id, XY_ID_LEN);
	xy_buf_put_raw(&b, a->jkey, XY_ID_LEN);
	if (xy_msg_encode(&b, XY_MSG_SUBMIT, &j->sub) < 0 || b.oom)
		goto out;
	/* The frame's header is not kept: the payload follows the keys. */
	memmove(b.data + 2 * XY_ID_LEN, b.data + 2 * XY_ID_LEN + 8,
		b.len - 2 * XY_ID_LEN - 8);
	b.len -= 8;
	XY_CRASH_POINT("client-before-submit-record");
	if (xy_memo_client_put(j->cs->m->memo, XY_MEMO_REC_SUBMIT, b.data,
			       b.len, NULL) < 0)
		goto out;
	XY_CRASH_POINT("client-after-submit-record");
	j->recorded = 1;
	a->data = (uint8_t *)b.data; /* kept for snapshots */
	a->len = b.len;
	xy_buf_init(&b);
	send_accepted(j);
	rc = 0;
out:
	xy_buf_free(&b);
	return rc;
}

void xy_clients__answer(struct client_job *j, struct xy_msg_result *res)
{
	struct xy_cjournal *cj = j->cs->cj;
	struct session *s = j->sess;
	struct xy_buf b;

	res->seq = s->seq + 1;
	xy_buf_init(&b);
	xy_buf_put_raw(&b, s->id, XY_ID_LEN);
	xy_buf_put_raw(&b, j->jkey, XY_ID_LEN);
	xy_buf_put_u64(&b, res->seq);
	union xy_msg m = {.result = *res};
	size_t head = b.len;
	if (xy_msg_encode(&b, XY_MSG_RESULT, &m) == 0 && !b.oom) {
		memmove(b.data + head, b.data + head + 8, b.len - head - 8);
		b.len -= 8;
	} else {
		b.oom = 1;
	}
	XY_CRASH_POINT("client-before-answer-record");
	if (b.oom || xy_memo_client_put(j->cs->m->memo, XY_MEMO_REC_ANSWER,
					b.data, b.len, j->jkey) < 0 ||
	    ans_add(cj, s, j->jkey, res->seq, b.data, b.len) < 0)
		XY_LOGW(WHO, "client task %llu: its result not recorded: %s",
			(unsigned long long)j->cid,
			b.oom ? "out of memory" : strerror(errno));
	else
		XY_CRASH_POINT("client-after-answer-record");
	s->seq = res->seq;
	xy_buf_free(&b);
	if (j->acc)
		acc_drop(cj, j->acc);
	if (j->cl && xy_conn_send(j->cl->conn, XY_MSG_RESULT, &m) < 0)
		xy_conn_close(j->cl->conn, "cannot send a RESULT");
}
