/*
 * client.c: a client of a standing manager (client.h). The control
 * connection is a conn (conn.h, role CLIENT) on a private libuv loop that
 * runs only inside connect and wait; the inputs are offered by a transfer
 * server of the client's own (xfer.h) whose lookup reads the table of
 * submitted inputs; outputs are fetched from the manager's transfer
 * server with tokens the client makes with the shared secret.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "auth.h"
#include "client.h"
#include "conn.h"
#include "object.h"
#include "util.h"
#include "xfer.h"

#define RECEIVER "client" /* the receiver name in our tokens */

/* An object the transfer server offers. */
struct offered {
	uint8_t id[XY_ID_LEN];
	uint8_t kind;
	char *path;
};

/* A RESULT received and not yet taken by wait. */
struct pending {
	struct xy_msg_result r;
	struct pending *next;
};

struct xy_client {
	uv_loop_t loop;
	uv_timer_t timer;
	struct xy_conn *conn;
	char host[256];
	char *secret;
	size_t secret_len;
	int ready;     /* the handshake succeeded */
	int tls;       /* transfers too run TLS */
	int timed_out;
	char reason[512]; /* why the connection closed */
	struct pending *results, *results_tail;
	int n_results; /* in that list */
	uint64_t next_id;
	uint64_t last_expiry;
	struct xy_xfer_server *xfer;
	pthread_mutex_t lock; /* guards offered, read by server threads */
	struct offered *offered;
	size_t n_offered, cap_offered;
};

/* ---------------------------------------------------------- the server */

static int lookup(void *arg, const uint8_t id[XY_ID_LEN], char *path,
		  size_t pathlen, uint8_t *kind)
{
	struct xy_client *c = arg;
	int rc = -1;

	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < c->n_offered; i++) {
		if (!memcmp(c->offered[i].id, id, XY_ID_LEN) &&
		    strlen(c->offered[i].path) < pathlen) {
			strcpy(path, c->offered[i].path);
			*kind = c->offered[i].kind;
			rc = 0;
			break;
		}
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

static int offer(struct xy_client *c, const uint8_t id[XY_ID_LEN],
		 uint8_t kind, const char *path)
{
	char *p = strdup(path);
	int rc = -1;

	pthread_mutex_lock(&c->lock);
	if (p && c->n_offered == c->cap_offered) {
		size_t cap = c->cap_offered ? 2 * c->cap_offered : 16;
		struct offered *no = realloc(c->offered, cap * sizeof *no);
		if (no) {
			c->offered = no;
			c->cap_offered = cap;
		}
	}
	if (p && c->n_offered < c->cap_offered) {
		memcpy(c->offered[c->n_offered].id, id, XY_ID_LEN);
		c->offered[c->n_offered].kind = kind;
		c->offered[c->n_offered++].path = p;
		p = NULL;
		rc = 0;
	}
	pthread_mutex_unlock(&c->lock);
	free(p);
	return rc;
}

/* ------------------------------------------------------------ the loop */

static void on_ready(struct xy_conn *conn, uint8_t role)
{
	struct xy_client *c = xy_conn_data(conn);

	(void)role;
	c->ready = 1;
}

static void on_msg(struct xy_conn *conn, unsigned type, union xy_msg *m)
{
	struct xy_client *c = xy_conn_data(conn);
	struct pending *p;

	if (type != XY_MSG_RESULT)
		return; /* keepalives and the like */
	if (!(p = calloc(1, sizeof *p))) {
		xy_conn_close(conn, "out of memory");
		return;
	}
	p->r = m->result; /* stolen */
	memset(&m->result, 0, sizeof m->result);
	if (c->results_tail)
		c->results_tail->next = p;
	else
		c->results = p;
	c->results_tail = p;
	c->n_results++;
}

static void on_close(struct xy_conn *conn, const char *reason)
{
	struct xy_client *c = xy_conn_data(conn);

	c->conn = NULL;
	snprintf(c->reason, sizeof c->reason, "%s", reason);
}

static void on_timeout(uv_timer_t *t)
{
	struct xy_client *c = t->data;

	c->timed_out = 1;
}

/* Runs the loop until *flag is set, the connection closes, or timeout
 * seconds pass (negative: no limit). */
static void run_until(struct xy_client *c, const int *flag, double timeout)
{
	c->timed_out = 0;
	if (timeout >= 0)
		uv_timer_start(&c->timer, on_timeout,
			       (uint64_t)(timeout * 1000) + 1, 0);
	while (!*flag && c->conn && !c->timed_out)
		uv_run(&c->loop, UV_RUN_ONCE);
	uv_timer_stop(&c->timer);
}

/* -------------------------------------------------------------- public */

struct xy_client *xy_client_connect(const char *host, int port,
				    const void *secret, size_t secret_len,
				    SSL_CTX *tls, double timeout, char *err,
				    size_t errlen)
{
	struct xy_client *c = calloc(1, sizeof *c);
	char local[64];
	struct xy_conn_opts o = {.secret = secret, .secret_len = secret_len,
				 .role = XY_ROLE_CLIENT, .on_ready = on_ready,
				 .on_msg = on_msg, .on_close = on_close,
				 .tls = tls};

	if (!c || !(c->secret = malloc(secret_len ? secret_len : 1))) {
		free(c);
		xy_fail(err, errlen, ENOMEM, "out of memory");
		return NULL;
	}
	memcpy(c->secret, secret, secret_len);
	c->secret_len = secret_len;
	snprintf(c->host, sizeof c->host, "%s", host);
	c->tls = tls != NULL;
	pthread_mutex_init(&c->lock, NULL);
	uv_loop_init(&c->loop);
	uv_timer_init(&c->loop, &c->timer);
	c->timer.data = c;
	o.data = c;
	c->conn = xy_conn_connect(&c->loop, host, port, &o);
	if (c->conn)
		run_until(c, &c->ready, timeout);
	if (!c->ready) {
		int e = strstr(c->reason, "secret") ? EACCES
			: c->timed_out ? ETIMEDOUT : ECONNREFUSED;
		xy_fail(err, errlen, e, "%s", c->timed_out ? "no answer in time"
			: c->conn ? "out of memory" : c->reason);
		goto error;
	}
	/* Served only where the manager reached us, not on every
	 * interface of this host. */
	c->xfer = xy_conn_local_ip(c->conn, local, sizeof local) == 0
			  ? xy_xfer_server_start(local, 0, secret, secret_len,
						 lookup, c, err, errlen)
			  : NULL;
	if (!c->xfer && !*err)
		xy_fail(err, errlen, EADDRNOTAVAIL, "no local address");
	if (!c->xfer || (c->tls && xy_xfer_server_tls(c->xfer, err, errlen) < 0))
		goto error;
	return c;
error:
	xy_client_close(c);
	return NULL;
}

/* Hashes and offers the inputs, filling SUBMIT's input list. */
static int offer_inputs(struct xy_client *c, const struct xy_client_task *t,
			struct xy_submit_input *in, char *err, size_t errlen)
{
	for (uint32_t i = 0; i < t->n_inputs; i++) {
		const struct xy_client_input *ti = &t->inputs[i];
		char why[512];

		in[i].name = (char *)ti->name;
		in[i].unpack = ti->unpack ? 1 : 0;
		in[i].ref = (char *)"";
		if (!ti->path) {
			in[i].from = ti->temp ? XY_FROM_TEMP : XY_FROM_URL;
			in[i].ref = (char *)(ti->temp ? ti->temp : ti->url);
			if (!in[i].ref || !*in[i].ref)
				return xy_fail(err, errlen, EINVAL, "input %s:"
					       " no path, temp or URL",
					       ti->name);
			continue;
		}
		if (xy_object_hash(t->inputs[i].path, in[i].id, &in[i].kind,
				   &in[i].size, why, sizeof why) < 0)
			return xy_fail(err, errlen, errno, "input %s: %s",
				       t->inputs[i].path, why);
		if (offer(c, in[i].id, in[i].kind, t->inputs[i].path) < 0)
			return xy_fail(err, errlen, ENOMEM, "out of memory");
	}
	return 0;
}

uint64_t xy_client_submit(struct xy_client *c, const struct xy_client_task *t,
			  char *err, size_t errlen)
{
	return xy_client_submit_keyed(c, t, 0, NULL, err, errlen);
}

int xy_client_attach(struct xy_client *c, const uint8_t session[XY_ID_LEN],
		     uint64_t after, char *err, size_t errlen)
{
	union xy_msg msg = {0};

	memcpy(msg.attach.session, session, XY_ID_LEN);
	msg.attach.after = after;
	if (!c->conn)
		return xy_fail(err, errlen, ECONNRESET, "the manager closed "
			       "the connection: %s", c->reason);
	if (xy_conn_send(c->conn, XY_MSG_ATTACH, &msg) < 0)
		return xy_fail(err, errlen, errno, "cannot send ATTACH");
	return 0;
}

uint64_t xy_client_submit_keyed(struct xy_client *c,
				const struct xy_client_task *t, uint64_t id,
				const uint8_t *key, char *err, size_t errlen)
{
	union xy_msg msg = {0};
	struct xy_msg_submit *s = &msg.submit;
	struct xy_submit_input *in = calloc(t->n_inputs + 1, sizeof *in);
	int rc = -1;

	if (!in) {
		xy_fail(err, errlen, ENOMEM, "out of memory");
		return 0;
	}
	if (offer_inputs(c, t, in, err, errlen) < 0)
		goto out;
	s->id = id ? id : ++c->next_id;
	if (id >= c->next_id)
		c->next_id = id;
	if (key)
		memcpy(s->key, key, XY_ID_LEN);
	s->tag = (char *)(t->tag ? t->tag : "");
	s->command = (char *)t->command;
	s->cores = (uint32_t)(t->cores > 0 ? t->cores : 1);
	s->memory_mb = (uint64_t)(t->memory_mb > 0 ? t->memory_mb : 0);
	s->disk_mb = (uint64_t)(t->disk_mb > 0 ? t->disk_mb : 0);
	s->gpus = (uint32_t)(t->gpus > 0 ? t->gpus : 0);
	s->time_limit_ms = (uint64_t)(t->time_limit > 0 ? t->time_limit * 1000
							: 0);
	s->n_env = t->n_env;
	s->env = (struct xy_env_var *)t->env;
	s->n_inputs = t->n_inputs;
	s->inputs = in;
	s->n_outputs = t->n_outputs;
	s->outputs = (char **)t->outputs;
	if (t->n_outputs && t->output_temps) {
		s->temps = calloc(t->n_outputs, sizeof *s->temps);
		if (!s->temps) {
			xy_fail(err, errlen, ENOMEM, "out of memory");
			goto out;
		}
		for (uint32_t i = 0; i < t->n_outputs; i++)
			s->temps[i] = (char *)(t->output_temps[i]
						       ? t->output_temps[i] : "");
	}
	s->xfer_port = (uint16_t)xy_xfer_server_port(c->xfer);
	if (!c->conn)
		xy_fail(err, errlen, ECONNRESET, "the manager closed the "
			"connection: %s", c->reason);
	else if (xy_conn_send(c->conn, XY_MSG_SUBMIT, &msg) < 0) {
		/* Closing (EPIPE: the manager went) reads as closed, so that
		 * a caller that reconnects on ECONNRESET does so here too. */
		int closing = errno == EPIPE;
		xy_fail(err, errlen, closing ? ECONNRESET : errno, "%s",
			closing ? "the manager closed the connection"
				: "the task is over the protocol's limits");
	} else {
		rc = 0;
	}
out:
	free(in);
	free(s->temps);
	return rc < 0 ? 0 : s->id;
}

int xy_client_drop(struct xy_client *c, const char *const *temps, uint32_t n,
		   char *err, size_t errlen)
{
	union xy_msg msg = {.drop = {.n_temps = n, .temps = (char **)temps}};

	if (!n)
		return 0;
	if (!c->conn)
		return xy_fail(err, errlen, ECONNRESET, "the manager closed "
			       "the connection: %s", c->reason);
	if (xy_conn_send(c->conn, XY_MSG_DROP, &msg) < 0)
		return xy_fail(err, errlen, errno, "cannot send DROP");
	return 0;
}

int xy_client_wait(struct xy_client *c, double timeout,
		   struct xy_msg_result *out, char *err, size_t errlen)
{
	struct pending *p;

	if (!c->results)
		run_until(c, &c->n_results, timeout);
	if (!(p = c->results)) {
		if (c->conn)
			return xy_fail(err, errlen, ETIMEDOUT,
				       "no result within %.0f s", timeout);
		return xy_fail(err, errlen, ECONNRESET, "the manager closed "
			       "the connection: %s", c->reason);
	}
	c->results = p->next;
	if (!c->results)
		c->results_tail = NULL;
	c->n_results--;
	*out = p->r;
	free(p);
	return 0;
}

int xy_client_connected(struct xy_client *c)
{
	if (c->conn)
		uv_run(&c->loop, UV_RUN_NOWAIT);
	return c->conn != NULL;
}

int xy_client_fetch(struct xy_client *c, const struct xy_msg_result *r,
		    uint32_t i, const char *dest, char *err, size_t errlen)
{
	const struct xy_result_output *o = &r->outputs[i];
	uint8_t token[XY_TOKEN_LEN];
	char why[512] = "";
	int st;

	xy_token_issue(c->secret, c->secret_len, &c->last_expiry, o->id,
		       RECEIVER, token);
	st = xy_xfer_fetch(c->host, r->xfer_port, c->secret, c->secret_len,
			   c->tls, o->id, token, RECEIVER, dest, 0, NULL, why,
			   sizeof why);
	if (st != XY_OBJ_OK)
		return xy_fail(err, errlen, EIO, "output %s: %s", o->name, why);
	return 0;
}

void xy_client_result_free(struct xy_msg_result *r)
{
	union xy_msg m;

	m.result = *r;
	xy_msg_free(XY_MSG_RESULT, &m);
	memset(r, 0, sizeof *r);
}

static void noop_close(uv_handle_t *h)
{
	(void)h;
}

void xy_client_close(struct xy_client *c)
{
	if (!c)
		return;
	if (c->conn)
		xy_conn_close(c->conn, "client done");
	uv_close((uv_handle_t *)&c->timer, noop_close);
	uv_run(&c->loop, UV_RUN_DEFAULT);
	uv_loop_close(&c->loop);
	xy_xfer_server_stop(c->xfer);
	while (c->results) {
		struct pending *p = c->results;
		c->results = p->next;
		xy_client_result_free(&p->r);
		free(p);
	}
	for (size_t i = 0; i < c->n_offered; i++)
		free(c->offered[i].path);
	free(c->offered);
	pthread_mutex_destroy(&c->lock);
	free(c->secret);
	free(c);
}
