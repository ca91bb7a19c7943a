/*
 * proto.c: the message codec of proto.h. Each payload is the fields of its
 * struct in declaration order (docs/protocol.md); an array is sent as its
 * n_* count, where that field is declared, followed by its elements. Every
 * string length and every count is checked against its limit, and every
 * count against the bytes left, before anything is allocated, so a small
 * hostile frame cannot cause a large allocation. Dispatch is one static
 * table indexed by type.
 */
#include "proto.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Decoding state: the reader and the first error's reason. */
struct dec {
	struct xy_reader r;
	const char *type;
	char *err;
	size_t errlen;
	int failed;
};

/* Encoding state: bad is set when a field breaks a limit. */
struct enc {
	struct xy_buf *b;
	int bad;
};

typedef void (*dec_fn)(struct dec *d, union xy_msg *m);
typedef void (*enc_fn)(struct enc *e, const union xy_msg *m);
typedef void (*free_fn)(union xy_msg *m);

static void dfail(struct dec *d, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void dfail(struct dec *d, const char *fmt, ...)
{
	d->r.err = 1;
	if (d->failed)
		return;
	d->failed = 1;
	if (d->err && d->errlen > 0) {
		int n = snprintf(d->err, d->errlen, "%s: ", d->type);
		if (n < 0 || (size_t)n >= d->errlen)
			return;
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(d->err + n, d->errlen - n, fmt, ap);
		va_end(ap);
	}
}

/* Peeks the u32 length ahead and checks it, so that the reason names the
 * field. Returns 0 if a field of that length may be read. */
static int dlen_ok(struct dec *d, size_t max, const char *what)
{
	if (d->r.err)
		return -1;
	struct xy_reader peek = d->r;
	uint32_t n = xy_get_u32(&peek);
	if (peek.err) {
		dfail(d, "truncated at %s", what);
		return -1;
	}
	if (n > max) {
		dfail(d, "%s too long (%u > %zu bytes)", what, n, max);
		return -1;
	}
	if (n > peek.left) {
		dfail(d, "truncated at %s", what);
		return -1;
	}
	return 0;
}

static char *dstr(struct dec *d, size_t max, const char *what)
{
	if (dlen_ok(d, max, what) < 0)
		return NULL;
	char *s = xy_get_str(&d->r, max);
	if (!s)
		dfail(d, "%s contains a NUL byte or memory ran out", what);
	return s;
}

/* Reads a count and checks it against max and against the bytes left,
 * given that each element takes at least elem_min bytes. */
static uint32_t dcount(struct dec *d, uint32_t max, size_t elem_min,
		       const char *what)
{
	uint32_t n = xy_get_u32(&d->r);
	if (d->r.err) {
		dfail(d, "truncated at %s count", what);
		return 0;
	}
	if (n > max) {
		dfail(d, "%s count %u exceeds limit %u", what, n, max);
		return 0;
	}
	if ((uint64_t)n * elem_min > d->r.left) {
		dfail(d, "%s count %u exceeds the payload", what, n);
		return 0;
	}
	return n;
}

static void *dalloc(struct dec *d, uint32_t n, size_t size)
{
	if (n == 0 || d->r.err)
		return NULL;
	void *p = calloc(n, size);
	if (!p)
		dfail(d, "out of memory");
	return p;
}

static void dsandbox(struct dec *d, const char *name, const char *what,
		     uint32_t i)
{
	char why[256];
	if (!name || d->r.err)
		return;
	if (xy_check_sandbox_name(name, why, sizeof why) < 0)
		dfail(d, "%s %u: %s", what, i, why);
}

static void estr(struct enc *e, const char *s, size_t max)
{
	size_t n = s ? strlen(s) : 0;
	if (n > max)
		e->bad = 1;
	else
		xy_buf_put_bytes(e->b, s, n);
}

/* Writes a count; returns 0 (and marks the encoding bad) if the array
 * must not be walked. */
static int ecount(struct enc *e, uint32_t n, uint32_t max, const void *arr)
{
	if (n > max || (n && !arr)) {
		e->bad = 1;
		return 0;
	}
	xy_buf_put_u32(e->b, n);
	return 1;
}

/* CHALLENGE */
static void dec_challenge(struct dec *d, union xy_msg *m)
{
	m->challenge.magic = xy_get_u32(&d->r);
	m->challenge.version = xy_get_u16(&d->r);
	xy_get_raw(&d->r, m->challenge.nonce, XY_NONCE_LEN);
}

static void enc_challenge(struct enc *e, const union xy_msg *m)
{
	xy_buf_put_u32(e->b, m->challenge.magic);
	xy_buf_put_u16(e->b, m->challenge.version);
	xy_buf_put_raw(e->b, m->challenge.nonce, XY_NONCE_LEN);
}

/* AUTH */
static void dec_auth(struct dec *d, union xy_msg *m)
{
	m->auth.version = xy_get_u16(&d->r);
	m->auth.role = xy_get_u8(&d->r);
	xy_get_raw(&d->r, m->auth.nonce, XY_NONCE_LEN);
	xy_get_raw(&d->r, m->auth.mac, XY_MAC_LEN);
}

static void enc_auth(struct enc *e, const union xy_msg *m)
{
	xy_buf_put_u16(e->b, m->auth.version);
	xy_buf_put_u8(e->b, m->auth.role);
	xy_buf_put_raw(e->b, m->auth.nonce, XY_NONCE_LEN);
	xy_buf_put_raw(e->b, m->auth.mac, XY_MAC_LEN);
}

/* AUTH_OK */
static void dec_auth_ok(struct dec *d, union xy_msg *m)
{
	xy_get_raw(&d->r, m->auth_ok.mac, XY_MAC_LEN);
}

static void enc_auth_ok(struct enc *e, const union xy_msg *m)
{
	xy_buf_put_raw(e->b, m->auth_ok.mac, XY_MAC_LEN);
}

/* ERROR */
static void dec_error(struct dec *d, union xy_msg *m)
{
	m->error.code = xy_get_u32(&d->r);
	m->error.text = dstr(d, XY_MAX_STR, "text");
}

static void enc_error(struct enc *e, const union xy_msg *m)
{
	xy_buf_put_u32(e->b, m->error.code);
	estr(e, m->error.text, XY_MAX_STR);
}

static void free_error(union xy_msg *m)
{
	free(m->error.text);
}

/* HELLO */
#define ITEM_WIRE (XY_ID_LEN + 8 + 1 + 1)
#define HELD_WIRE (8 + XY_ID_LEN + 1 + 4 + 8 + 8 + 4)

static void dec_hello(struct dec *d, union xy_msg *m)
{
	struct xy_msg_hello *h = &m->hello;
	h->name = dstr(d, XY_MAX_NAME, "name");
	h->hostname = dstr(d, XY_MAX_NAME, "hostname");
	h->cores = xy_get_u32(&d->r);
	h->memory_mb = xy_get_u64(&d->r);
	h->disk_mb = xy_get_u64(&d->r);
	h->gpus = xy_get_u32(&d->r);
	h->xfer_host = dstr(d, XY_MAX_NAME, "xfer_host");
	h->xfer_port = xy_get_u16(&d->r);
	h->time_left_ms = xy_get_u64(&d->r);
	if (h->time_left_ms > XY_MAX_TIME_LEFT_MS)
		dfail(d, "time_left_ms past a year");
	uint32_t n = dcount(d, XY_MAX_INVENTORY, ITEM_WIRE, "inventory");
	h->items = dalloc(d, n, sizeof *h->items);
	if (n && !h->items)
		return;
	h->n_items = n;
	for (uint32_t i = 0; i < n; i++) {
		struct xy_inventory_item *it = &h->items[i];
		xy_get_raw(&d->r, it->id, XY_ID_LEN);
		it->size = xy_get_u64(&d->r);
		it->kind = xy_get_u8(&d->r);
		it->level = xy_get_u8(&d->r);
	}
	n = dcount(d, XY_MAX_HELD, HELD_WIRE, "held tasks");
	h->held = dalloc(d, n, sizeof *h->held);
	if (n && !h->held)
		return;
	h->n_held = n;
	for (uint32_t i = 0; i < n; i++) {
		struct xy_held_task *ht = &h->held[i];
		ht->id = xy_get_u64(&d->r);
		xy_get_raw(&d->r, ht->key, XY_ID_LEN);
		ht->finished = xy_get_u8(&d->r);
		ht->cores = xy_get_u32(&d->r);
		ht->memory_mb = xy_get_u64(&d->r);
		ht->disk_mb = xy_get_u64(&d->r);
		ht->gpus = xy_get_u32(&d->r);
		if (!d->r.err && (!(ht->id & XY_HELD_BIT) || ht->finished > 1))
			dfail(d, "held task %u is malformed", i);
	}
}

static void enc_hello(struct enc *e, const union xy_msg *m)
{
	const struct xy_msg_hello *h = &m->hello;
	estr(e, h->name, XY_MAX_NAME);
	estr(e, h->hostname, XY_MAX_NAME);
	xy_buf_put_u32(e->b, h->cores);
	xy_buf_put_u64(e->b, h->memory_mb);
	xy_buf_put_u64(e->b, h->disk_mb);
	xy_buf_put_u32(e->b, h->gpus);
	estr(e, h->xfer_host, XY_MAX_NAME);
	xy_buf_put_u16(e->b, h->xfer_port);
	if (h->time_left_ms > XY_MAX_TIME_LEFT_MS) {
		e->bad = 1;
		return;
	}
	xy_buf_put_u64(e->b, h->time_left_ms);
	if (!ecount(e, h->n_items, XY_MAX_INVENTORY, h->items))
		return;
	for (uint32_t i = 0; i < h->n_items; i++) {
		const struct xy_inventory_item *it = &h->items[i];
		xy_buf_put_raw(e->b, it->id, XY_ID_LEN);
		xy_buf_put_u64(e->b, it->size);
		xy_buf_put_u8(e->b, it->kind);
		xy_buf_put_u8(e->b, it->level);
	}
	if (!ecount(e, h->n_held, XY_MAX_HELD, h->held))
		return;
	for (uint32_t i = 0; i < h->n_held; i++) {
		const struct xy_held_task *ht = &h->held[i];
		xy_buf_put_u64(e->b, ht->id);
		xy_buf_put_raw(e->b, ht->key, XY_ID_LEN);
		xy_buf_put_u8(e->b, ht->finished);
		xy_buf_put_u32(e->b, ht->cores);
		xy_buf_put_u64(e->b, ht->memory_mb);
		xy_buf_put_u64(e->b, ht->disk_mb);
		xy_buf_put_u32(e->b, ht->gpus);
	}
}

static void free_hello(union xy_msg *m)
{
	free(m->hello.name);
	free(m->hello.hostname);
	free(m->hello.xfer_host);
	free(m->hello.items);
	free(m->hello.held);
}

/* WELCOME */
static void dec_welcome(struct dec *d, union xy_msg *m)
{
	m->welcome.epoch = xy_get_u32(&d->r);
	m->welcome.lease_ms = xy_get_u64(&d->r);
	if (m->welcome.lease_ms > XY_MAX_TIME_LEFT_MS)
		dfail(d, "lease_ms past a year");
}

static void enc_welcome(struct enc *e, const union xy_msg *m)
{
	xy_buf_put_u32(e->b, m->welcome.epoch);
	xy_buf_put_u64(e->b, m->welcome.lease_ms);
}

/* ADOPT */
static void dec_adopt(struct dec *d, union xy_msg *m)
{
	m->adopt.held_id = xy_get_u64(&d->r);
	m->adopt.task_id = xy_get_u64(&d->r);
	if (!d->r.err && (!(m->adopt.held_id & XY_HELD_BIT) ||
			  (m->adopt.task_id & XY_HELD_BIT)))
		dfail(d, "ADOPT ids are malformed");
}

static void enc_adopt(struct enc *e, const union xy_msg *m)
{
	xy_buf_put_u64(e->b, m->adopt.held_id);
	xy_buf_put_u64(e->b, m->adopt.task_id);
}

/* TASK */
#define ENV_WIRE (4 + 4)
#define INPUT_WIRE (XY_ID_LEN + 1 + 1 + 4)
#define OUTPUT_WIRE (4 + 1)

static void dec_task_files(struct dec *d, struct xy_msg_task *t)
{
	uint32_t n = dcount(d, XY_MAX_FILES, INPUT_WIRE, "inputs");
	t->inputs = dalloc(d, n, sizeof *t->inputs);
	if (n && !t->inputs)
		return;
	t->n_inputs = n;
	for (uint32_t i = 0; i < n; i++) {
		struct xy_task_input *in = &t->inputs[i];
		xy_get_raw(&d->r, in->id, XY_ID_LEN);
		in->kind = xy_get_u8(&d->r);
		if (!d->r.err && in->kind > XY_INPUT_ENV)
			dfail(d, "input %u has unknown kind %u", i, in->kind);
		in->level = xy_get_u8(&d->r);
		in->name = dstr(d, XY_MAX_NAME, "input name");
		dsandbox(d, in->name, "input", i);
	}
	n = dcount(d, XY_MAX_FILES, OUTPUT_WIRE, "outputs");
	t->outputs = dalloc(d, n, sizeof *t->outputs);
	if (!t->outputs)
		return;
	t->n_outputs = n;
	for (uint32_t i = 0; i < n; i++) {
		struct xy_task_output *out = &t->outputs[i];
		out->name = dstr(d, XY_MAX_NAME, "output name");
		dsandbox(d, out->name, "output", i);
		out->level = xy_get_u8(&d->r);
	}
}

/* An environment list, as TASK and SUBMIT carry it. Returns -1 if the
 * decoder failed (d says why). */
static int dec_env(struct dec *d, uint32_t *n_env, struct xy_env_var **env)
{
	uint32_t n = dcount(d, XY_MAX_ENV, ENV_WIRE, "env");
	*env = dalloc(d, n, sizeof **env);
	if (n && !*env)
		return -1;
	*n_env = n;
	for (uint32_t i = 0; i < n; i++) {
		(*env)[i].name = dstr(d, XY_MAX_NAME, "env name");
		(*env)[i].value = dstr(d, XY_MAX_STR, "env value");
	}
	return d->r.err ? -1 : 0;
}

static int enc_env(struct enc *e, uint32_t n, const struct xy_env_var *env)
{
	if (!ecount(e, n, XY_MAX_ENV, env))
		return 0;
	for (uint32_t i = 0; i < n; i++) {
		estr(e, env[i].name, XY_MAX_NAME);
		estr(e, env[i].value, XY_MAX_STR);
	}
	return 1;
}

static void dec_task(struct dec *d, union xy_msg *m)
{
	struct xy_msg_task *t = &m->task;
	t->task_id = xy_get_u64(&d->r);
	t->command = dstr(d, XY_MAX_COMMAND, "command");
	t->cores = xy_get_u32(&d->r);
	t->memory_mb = xy_get_u64(&d->r);
	t->disk_mb = xy_get_u64(&d->r);
	t->gpus = xy_get_u32(&d->r);
	t->time_limit_ms = xy_get_u64(&d->r);
	xy_get_raw(&d->r, t->key, XY_ID_LEN);
	if (dec_env(d, &t->n_env, &t->env) < 0)
		return;
	dec_task_files(d, t);
	t->library = dstr(d, XY_MAX_NAME, "library");
	if (dlen_ok(d, XY_MAX_PAYLOAD, "payload") == 0) {
		t->payload = xy_get_bytes(&d->r, XY_MAX_PAYLOAD,
					  &t->payload_len);
		if (!t->payload)
			dfail(d, "out of memory");
	}
}

static void enc_task(struct enc *e, const union xy_msg *m)
{
	const struct xy_msg_task *t = &m->task;
	xy_buf_put_u64(e->b, t->task_id);
	estr(e, t->command, XY_MAX_COMMAND);
	xy_buf_put_u32(e->b, t->cores);
	xy_buf_put_u64(e->b, t->memory_mb);
	xy_buf_put_u64(e->b, t->disk_mb);
	xy_buf_put_u32(e->b, t->gpus);
	xy_buf_put_u64(e->b, t->time_limit_ms);
	xy_buf_put_raw(e->b, t->key, XY_ID_LEN);
	if (!enc_env(e, t->n_env, t->env))
		return;
	if (!ecount(e, t->n_inputs, XY_MAX_FILES, t->inputs))
		return;
	for (uint32_t i = 0; i < t->n_inputs; i++) {
		const struct xy_task_input *in = &t->inputs[i];
		xy_buf_put_raw(e->b, in->id, XY_ID_LEN);
		xy_buf_put_u8(e->b, in->kind);
		xy_buf_put_u8(e->b, in->level);
		estr(e, in->name, XY_MAX_NAME);
	}
	if (!ecount(e, t->n_outputs, XY_MAX_FILES, t->outputs))
		return;
	for (uint32_t i = 0; i < t->n_outputs; i++) {
		estr(e, t->outputs[i].name, XY_MAX_NAME);
		xy_buf_put_u8(e->b, t->outputs[i].level);
	}
	estr(e, t->library, XY_MAX_NAME);
	size_t plen = t->payload ? t->payload_len : 0;
	if (plen > XY_MAX_PAYLOAD)
		e->bad = 1;
	else
		xy_buf_put_bytes(e->b, t->payload, plen);
}

static void free_task(union xy_msg *m)
{
	struct xy_msg_task *t = &m->task;
	free(t->command);
	free(t->library);
	free(t->payload);
	for (uint32_t i = 0; i < t->n_env && t->env; i++) {
		free(t->env[i].name);
		free(t->env[i].value);
	}
	free(t->env);
	for (uint32_t i = 0; i < t->n_inputs && t->inputs; i++)
		free(t->inputs[i].name);
	free(t->inputs);
	for (uint32_t i = 0; i < t->n_outputs && t->outputs; i++)
		free(t->outputs[i].name);
	free(t->outputs);
}

/* Chunk lists, in FETCH and TASK_DONE outputs. */
uint32_t xy_chunk_size_for(uint64_t size)
{
	uint64_t per = (size + XY_MAX_CHUNKS - 1) / XY_MAX_CHUNKS;
	uint64_t cs = (per + XY_CHUNK_MIN - 1) / XY_CHUNK_MIN * XY_CHUNK_MIN;
	if (cs < XY_CHUNK_MIN)
		cs = XY_CHUNK_MIN;
	return cs > UINT32_MAX / 2 ? 0 : (uint32_t)cs;
}

uint64_t xy_chunk_count(uint64_t size, uint32_t chunk_size)
{
	if (chunk_size == 0)
		return 0;
	uint64_t n = size / chunk_size + (size % chunk_size != 0);
	return n >= 2 ? n : 0;
}

static void dec_chunks(struct dec *d, struct xy_chunks *c, uint64_t size)
{
	c->chunk_size = xy_get_u32(&d->r);
	uint32_t n = dcount(d, XY_MAX_CHUNKS, XY_ID_LEN, "chunks");
	if (n && xy_chunk_count(size, c->chunk_size) != n) {
		dfail(d, "%u chunks of %u bytes do not make %llu bytes", n,
		      c->chunk_size, (unsigned long long)size);
		return;
	}
	c->hash = dalloc(d, n, XY_ID_LEN);
	if (!c->hash)
		return;
	c->n = n;
	xy_get_raw(&d->r, c->hash, (size_t)n * XY_ID_LEN);
}

static void enc_chunks(struct enc *e, const struct xy_chunks *c)
{
	xy_buf_put_u32(e->b, c->chunk_size);
	if (!ecount(e, c->n, XY_MAX_CHUNKS, c->hash))
		return;
	xy_buf_put_raw(e->b, c->hash, (size_t)c->n * XY_ID_LEN);
}

/* FETCH */
#define SOURCE_WIRE (4 + 2 + 1)

static void dec_fetch(struct dec *d, union xy_msg *m)
{
	struct xy_msg_fetch *f = &m->fetch;
	xy_get_raw(&d->r, f->id, XY_ID_LEN);
	f->kind = xy_get_u8(&d->r);
	f->level = xy_get_u8(&d->r);
	f->size = xy_get_u64(&d->r);
	dec_chunks(d, &f->chunks, f->size);
	uint32_t n = dcount(d, XY_MAX_SOURCES, SOURCE_WIRE, "sources");
	if (!n && !d->r.err)
		dfail(d, "no source");
	f->n_sources = d->r.err ? 0 : n;
	for (uint32_t i = 0; i < f->n_sources; i++) {
		f->sources[i].host = dstr(d, XY_MAX_NAME, "host");
		f->sources[i].port = xy_get_u16(&d->r);
		f->sources[i].partial = xy_get_u8(&d->r);
	}
	xy_get_raw(&d->r, f->token, XY_TOKEN_LEN);
}

static void enc_fetch(struct enc *e, const union xy_msg *m)
{
	const struct xy_msg_fetch *f = &m->fetch;
	xy_buf_put_raw(e->b, f->id, XY_ID_LEN);
	xy_buf_put_u8(e->b, f->kind);
	xy_buf_put_u8(e->b, f->level);
	xy_buf_put_u64(e->b, f->size);
	enc_chunks(e, &f->chunks);
	if (f->n_sources == 0 ||
	    !ecount(e, f->n_sources, XY_MAX_SOURCES, f->sources)) {
		e->bad = 1;
		return;
	}
	for (uint32_t i = 0; i < f->n_sources; i++) {
		estr(e, f->sources[i].host, XY_MAX_NAME);
		xy_buf_put_u16(e->b, f->sources[i].port);
		xy_buf_put_u8(e->b, f->sources[i].partial);
	}
	xy_buf_put_raw(e->b, f->token, XY_TOKEN_LEN);
}

static void free_fetch(union xy_msg *m)
{
	for (uint32_t i = 0; i < m->fetch.n_sources; i++)
		free(m->fetch.sources[i].host);
	free(m->fetch.chunks.hash);
}

/* CACHE_UPDATE */
static void dec_cache_update(struct dec *d, union xy_msg *m)
{
	struct xy_msg_cache_update *u = &m->cache_update;
	xy_get_raw(&d->r, u->id, XY_ID_LEN);
	u->kind = xy_get_u8(&d->r);
	u->status = xy_get_u8(&d->r);
	u->size = xy_get_u64(&d->r);
	u->elapsed_us = xy_get_u64(&d->r);
	u->verified = xy_get_u64(&d->r);
	u->text = dstr(d, XY_MAX_STR, "text");
	for (int i = 0; i < XY_MAX_SOURCES; i++) {
		u->blame[i] = xy_get_u8(&d->r);
		if (u->blame[i] > XY_BLAME_HOST && !d->r.err)
			dfail(d, "bad blame");
	}
}

static void enc_cache_update(struct enc *e, const union xy_msg *m)
{
	const struct xy_msg_cache_update *u = &m->cache_update;
	xy_buf_put_raw(e->b, u->id, XY_ID_LEN);
	xy_buf_put_u8(e->b, u->kind);
	xy_buf_put_u8(e->b, u->status);
	xy_buf_put_u64(e->b, u->size);
	xy_buf_put_u64(e->b, u->elapsed_us);
	xy_buf_put_u64(e->b, u->verified);
	estr(e, u->text, XY_MAX_STR);
	for (int i = 0; i < XY_MAX_SOURCES; i++)
		xy_buf_put_u8(e->b, u->blame[i]);
}

static void free_cache_update(union xy_msg *m)
{
	free(m->cache_update.text);
}

/* TASK_DONE */
#define DONE_OUTPUT_WIRE (4 + XY_ID_LEN + 1 + 8 + 4 + 4)

static void dec_task_done(struct dec *d, union xy_msg *m)
{
	struct xy_msg_task_done *t = &m->task_done;
	t->task_id = xy_get_u64(&d->r);
	t->result = xy_get_u8(&d->r);
	t->failure = xy_get_u8(&d->r);
	if (t->failure > XY_FAILURE_MAX)
		dfail(d, "unknown failure %u", t->failure);
	t->exit_code = (int32_t)xy_get_u32(&d->r);
	t->start_us = xy_get_u64(&d->r);
	t->end_us = xy_get_u64(&d->r);
	t->output_truncated = xy_get_u8(&d->r);
	if (dlen_ok(d, XY_MAX_PAYLOAD, "output") == 0) {
		t->output = xy_get_bytes(&d->r, XY_MAX_PAYLOAD, &t->output_len);
		if (!t->output)
			dfail(d, "out of memory");
	}
	t->message = dstr(d, XY_MAX_STR, "message");
	uint32_t n = dcount(d, XY_MAX_FILES, DONE_OUTPUT_WIRE, "outputs");
	t->outputs = dalloc(d, n, sizeof *t->outputs);
	if (!t->outputs)
		return;
	t->n_outputs = n;
	for (uint32_t i = 0; i < n; i++) {
		struct xy_done_output *o = &t->outputs[i];
		o->name = dstr(d, XY_MAX_NAME, "output name");
		dsandbox(d, o->name, "output", i);
		xy_get_raw(&d->r, o->id, XY_ID_LEN);
		o->kind = xy_get_u8(&d->r);
		o->size = xy_get_u64(&d->r);
		dec_chunks(d, &o->chunks, o->size);
	}
}

static void enc_task_done(struct enc *e, const union xy_msg *m)
{
	const struct xy_msg_task_done *t = &m->task_done;
	xy_buf_put_u64(e->b, t->task_id);
	xy_buf_put_u8(e->b, t->result);
	xy_buf_put_u8(e->b, t->failure);
	xy_buf_put_u32(e->b, (uint32_t)t->exit_code);
	xy_buf_put_u64(e->b, t->start_us);
	xy_buf_put_u64(e->b, t->end_us);
	xy_buf_put_u8(e->b, t->output_truncated);
	size_t olen = t->output ? t->output_len : 0;
	if (olen > XY_MAX_PAYLOAD)
		e->bad = 1;
	else
		xy_buf_put_bytes(e->b, t->output, olen);
	estr(e, t->message, XY_MAX_STR);
	if (!ecount(e, t->n_outputs, XY_MAX_FILES, t->outputs))
		return;
	for (uint32_t i = 0; i < t->n_outputs; i++) {
		const struct xy_done_output *o = &t->outputs[i];
		estr(e, o->name, XY_MAX_NAME);
		xy_buf_put_raw(e->b, o->id, XY_ID_LEN);
		xy_buf_put_u8(e->b, o->kind);
		xy_buf_put_u64(e->b, o->size);
		enc_chunks(e, &o->chunks);
	}
}

static void free_task_done(union xy_msg *m)
{
	struct xy_msg_task_done *t = &m->task_done;
	free(t->output);
	free(t->message);
	for (uint32_t i = 0; i < t->n_outputs && t->outputs; i++) {
		free(t->outputs[i].name);
		free(t->outputs[i].chunks.hash);
	}
	free(t->outputs);
}

/* CANCEL */
static void dec_cancel(struct dec *d, union xy_msg *m)
{
	m->cancel.task_id = xy_get_u64(&d->r);
}

static void enc_cancel(struct enc *e, const union xy_msg *m)
{
	xy_buf_put_u64(e->b, m->cancel.task_id);
}

/* UNLINK, and RELEASE (the same payload: an object id) */
static void dec_unlink(struct dec *d, union xy_msg *m)
{
	xy_get_raw(&d->r, m->unlink.id, XY_ID_LEN);
}

static void enc_unlink(struct enc *e, const union xy_msg *m)
{
	xy_buf_put_raw(e->b, m->unlink.id, XY_ID_LEN);
}

/* BYE: the task count shares the per-task file limit (XY_MAX_FILES). */
static void dec_bye(struct dec *d, union xy_msg *m)
{
	uint32_t n = dcount(d, XY_MAX_FILES, 8, "tasks");
	m->bye.task_ids = dalloc(d, n, sizeof *m->bye.task_ids);
	if (!m->bye.task_ids)
		return;
	m->bye.n_tasks = n;
	for (uint32_t i = 0; i < n; i++)
		m->bye.task_ids[i] = xy_get_u64(&d->r);
}

static void enc_bye(struct enc *e, const union xy_msg *m)
{
	if (!ecount(e, m->bye.n_tasks, XY_MAX_FILES, m->bye.task_ids))
		return;
	for (uint32_t i = 0; i < m->bye.n_tasks; i++)
		xy_buf_put_u64(e->b, m->bye.task_ids[i]);
}

static void free_bye(union xy_msg *m)
{
	free(m->bye.task_ids);
}

/* STATUS_REPLY */
static void dec_status_reply(struct dec *d, union xy_msg *m)
{
	m->status_reply.json = dstr(d, XY_MAX_STATUS, "json");
}

static void enc_status_reply(struct enc *e, const union xy_msg *m)
{
	estr(e, m->status_reply.json, XY_MAX_STATUS);
}

static void free_status_reply(union xy_msg *m)
{
	free(m->status_reply.json);
}

/* FETCH_URL */
static void dec_fetch_url(struct dec *d, union xy_msg *m)
{
	m->fetch_url.req_id = xy_get_u64(&d->r);
	m->fetch_url.level = xy_get_u8(&d->r);
	m->fetch_url.url = dstr(d, XY_MAX_URL, "url");
}

static void enc_fetch_url(struct enc *e, const union xy_msg *m)
{
	xy_buf_put_u64(e->b, m->fetch_url.req_id);
	xy_buf_put_u8(e->b, m->fetch_url.level);
	estr(e, m->fetch_url.url, XY_MAX_URL);
}

static void free_fetch_url(union xy_msg *m)
{
	free(m->fetch_url.url);
}

/* URL_DONE */
static void dec_url_done(struct dec *d, union xy_msg *m)
{
	struct xy_msg_url_done *u = &m->url_done;
	u->req_id = xy_get_u64(&d->r);
	u->status = xy_get_u8(&d->r);
	xy_get_raw(&d->r, u->id, XY_ID_LEN);
	u->size = xy_get_u64(&d->r);
	u->elapsed_us = xy_get_u64(&d->r);
	dec_chunks(d, &u->chunks, u->size);
	u->text = dstr(d, XY_MAX_STR, "text");
}

static void enc_url_done(struct enc *e, const union xy_msg *m)
{
	const struct xy_msg_url_done *u = &m->url_done;
	xy_buf_put_u64(e->b, u->req_id);
	xy_buf_put_u8(e->b, u->status);
	xy_buf_put_raw(e->b, u->id, XY_ID_LEN);
	xy_buf_put_u64(e->b, u->size);
	xy_buf_put_u64(e->b, u->elapsed_us);
	enc_chunks(e, &u->chunks);
	estr(e, u->text, XY_MAX_STR);
}

static void free_url_done(union xy_msg *m)
{
	free(m->url_done.chunks.hash);
	free(m->url_done.text);
}

/* GET */
static void dec_get(struct dec *d, union xy_msg *m)
{
	xy_get_raw(&d->r, m->get.id, XY_ID_LEN);
	xy_get_raw(&d->r, m->get.token, XY_TOKEN_LEN);
	m->get.name = dstr(d, XY_MAX_NAME, "name");
	m->get.offset = xy_get_u64(&d->r);
	m->get.flags = xy_get_u8(&d->r);
	if (!d->r.err && (m->get.flags & ~XY_GET_PARTIAL))
		dfail(d, "unknown flags %#x", m->get.flags);
}

static void enc_get(struct enc *e, const union xy_msg *m)
{
	xy_buf_put_raw(e->b, m->get.id, XY_ID_LEN);
	xy_buf_put_raw(e->b, m->get.token, XY_TOKEN_LEN);
	estr(e, m->get.name, XY_MAX_NAME);
	xy_buf_put_u64(e->b, m->get.offset);
	xy_buf_put_u8(e->b, m->get.flags);
}

static void free_get(union xy_msg *m)
{
	free(m->get.name);
}

/* OBJECT */
static void dec_object(struct dec *d, union xy_msg *m)
{
	m->object.status = xy_get_u8(&d->r);
	m->object.kind = xy_get_u8(&d->r);
	m->object.size = xy_get_u64(&d->r);
}

static void enc_object(struct enc *e, const union xy_msg *m)
{
	xy_buf_put_u8(e->b, m->object.status);
	xy_buf_put_u8(e->b, m->object.kind);
	xy_buf_put_u64(e->b, m->object.size);
}

/* SUBMIT */
#define SUBMIT_INPUT_WIRE (4 + XY_ID_LEN + 1 + 8)

/* 4 name + id + kind + size + from + 4 ref + unpack */
#define SUBMIT_INPUT_WIRE (4 + XY_ID_LEN + 1 + 8 + 1 + 4 + 1)

/* An input's source (since version 16): a temp's name or a URL, or
 * nothing for the client's own object. */
static void dec_submit_source(struct dec *d, struct xy_submit_input *in,
			      uint32_t i)
{
	in->from = xy_get_u8(&d->r);
	in->ref = dstr(d, XY_MAX_URL, "input source");
	in->unpack = xy_get_u8(&d->r);
	if (d->r.err)
		return;
	if (in->from > XY_FROM_URL)
		dfail(d, "input %u has unknown source %u", i, in->from);
	else if (in->unpack > 1)
		dfail(d, "input %u has unpack %u", i, in->unpack);
	else if ((in->from == XY_FROM_CLIENT) != !*in->ref)
		dfail(d, "input %u: a source name goes with a temp or a URL,"
		      " and only with one", i);
	else if (in->from == XY_FROM_TEMP && strlen(in->ref) > XY_MAX_NAME)
		dfail(d, "input %u: temp name over %u bytes", i, XY_MAX_NAME);
}

static void dec_submit_files(struct dec *d, struct xy_msg_submit *s)
{
	uint32_t n = dcount(d, XY_MAX_FILES, SUBMIT_INPUT_WIRE, "inputs");
	s->inputs = dalloc(d, n, sizeof *s->inputs);
	if (n && !s->inputs)
		return;
	s->n_inputs = n;
	for (uint32_t i = 0; i < n; i++) {
		struct xy_submit_input *in = &s->inputs[i];
		in->name = dstr(d, XY_MAX_NAME, "input name");
		dsandbox(d, in->name, "input", i);
		xy_get_raw(&d->r, in->id, XY_ID_LEN);
		in->kind = xy_get_u8(&d->r);
		if (!d->r.err && in->kind > XY_KIND_DIR)
			dfail(d, "input %u has unknown kind %u", i, in->kind);
		in->size = xy_get_u64(&d->r);
		dec_submit_source(d, in, i);
	}
	n = dcount(d, XY_MAX_FILES, 8, "outputs");
	s->outputs = dalloc(d, n, sizeof *s->outputs);
	s->temps = dalloc(d, n, sizeof *s->temps);
	if (n && (!s->outputs || !s->temps))
		return;
	s->n_outputs = n;
	for (uint32_t i = 0; i < n; i++) {
		s->outputs[i] = dstr(d, XY_MAX_NAME, "output name");
		dsandbox(d, s->outputs[i], "output", i);
		s->temps[i] = dstr(d, XY_MAX_NAME, "output temp");
	}
}

static void dec_submit(struct dec *d, union xy_msg *m)
{
	struct xy_msg_submit *s = &m->submit;
	s->id = xy_get_u64(&d->r);
	s->tag = dstr(d, XY_MAX_NAME, "tag");
	s->command = dstr(d, XY_MAX_COMMAND, "command");
	s->cores = xy_get_u32(&d->r);
	s->memory_mb = xy_get_u64(&d->r);
	s->disk_mb = xy_get_u64(&d->r);
	s->gpus = xy_get_u32(&d->r);
	s->time_limit_ms = xy_get_u64(&d->r);
	if (dec_env(d, &s->n_env, &s->env) == 0)
		dec_submit_files(d, s);
	s->xfer_port = xy_get_u16(&d->r);
	xy_get_raw(&d->r, s->key, XY_ID_LEN);
}

static void enc_submit(struct enc *e, const union xy_msg *m)
{
	const struct xy_msg_submit *s = &m->submit;
	xy_buf_put_u64(e->b, s->id);
	estr(e, s->tag, XY_MAX_NAME);
	estr(e, s->command, XY_MAX_COMMAND);
	xy_buf_put_u32(e->b, s->cores);
	xy_buf_put_u64(e->b, s->memory_mb);
	xy_buf_put_u64(e->b, s->disk_mb);
	xy_buf_put_u32(e->b, s->gpus);
	xy_buf_put_u64(e->b, s->time_limit_ms);
	if (!enc_env(e, s->n_env, s->env))
		return;
	if (!ecount(e, s->n_inputs, XY_MAX_FILES, s->inputs))
		return;
	for (uint32_t i = 0; i < s->n_inputs; i++) {
		const struct xy_submit_input *in = &s->inputs[i];
		estr(e, in->name, XY_MAX_NAME);
		xy_buf_put_raw(e->b, in->id, XY_ID_LEN);
		xy_buf_put_u8(e->b, in->kind);
		xy_buf_put_u64(e->b, in->size);
		xy_buf_put_u8(e->b, in->from);
		estr(e, in->ref ? in->ref : "", XY_MAX_URL);
		xy_buf_put_u8(e->b, in->unpack);
	}
	if (!ecount(e, s->n_outputs, XY_MAX_FILES, s->outputs))
		return;
	for (uint32_t i = 0; i < s->n_outputs; i++) {
		estr(e, s->outputs[i], XY_MAX_NAME);
		estr(e, s->temps && s->temps[i] ? s->temps[i] : "",
		     XY_MAX_NAME);
	}
	xy_buf_put_u16(e->b, s->xfer_port);
	xy_buf_put_raw(e->b, s->key, XY_ID_LEN);
}

static void free_submit(union xy_msg *m)
{
	struct xy_msg_submit *s = &m->submit;
	free(s->tag);
	free(s->command);
	for (uint32_t i = 0; i < s->n_env && s->env; i++) {
		free(s->env[i].name);
		free(s->env[i].value);
	}
	free(s->env);
	for (uint32_t i = 0; i < s->n_inputs && s->inputs; i++) {
		free(s->inputs[i].name);
		free(s->inputs[i].ref);
	}
	free(s->inputs);
	for (uint32_t i = 0; i < s->n_outputs && s->outputs; i++)
		free(s->outputs[i]);
	free(s->outputs);
	for (uint32_t i = 0; i < s->n_outputs && s->temps; i++)
		free(s->temps[i]);
	free(s->temps);
}

/* DROP */
static void dec_drop(struct dec *d, union xy_msg *m)
{
	struct xy_msg_drop *p = &m->drop;
	uint32_t n = dcount(d, XY_MAX_FILES, 4, "temps");
	p->temps = dalloc(d, n, sizeof *p->temps);
	if (n && !p->temps)
		return;
	p->n_temps = n;
	for (uint32_t i = 0; i < n; i++)
		p->temps[i] = dstr(d, XY_MAX_NAME, "temp name");
}

static void enc_drop(struct enc *e, const union xy_msg *m)
{
	const struct xy_msg_drop *p = &m->drop;
	if (!ecount(e, p->n_temps, XY_MAX_FILES, p->temps))
		return;
	for (uint32_t i = 0; i < p->n_temps; i++)
		estr(e, p->temps[i], XY_MAX_NAME);
}

static void free_drop(union xy_msg *m)
{
	for (uint32_t i = 0; i < m->drop.n_temps && m->drop.temps; i++)
		free(m->drop.temps[i]);
	free(m->drop.temps);
}

/* RESULT */
#define RESULT_OUTPUT_WIRE (4 + XY_ID_LEN + 1 + 8)

static void dec_result_outputs(struct dec *d, struct xy_msg_result *r)
{
	uint32_t n = r->n_outputs;
	for (uint32_t i = 0; i < n; i++) {
		struct xy_result_output *o = &r->outputs[i];
		o->name = dstr(d, XY_MAX_NAME, "output name");
		dsandbox(d, o->name, "output", i);
		xy_get_raw(&d->r, o->id, XY_ID_LEN);
		o->kind = xy_get_u8(&d->r);
		if (!d->r.err && o->kind > XY_KIND_DIR)
			dfail(d, "output %u has unknown kind %u", i, o->kind);
		o->size = xy_get_u64(&d->r);
	}
}

static void dec_result(struct dec *d, union xy_msg *m)
{
	struct xy_msg_result *r = &m->result;
	r->id = xy_get_u64(&d->r);
	r->result = xy_get_u8(&d->r);
	r->exit_code = (int32_t)xy_get_u32(&d->r);
	r->message = dstr(d, XY_MAX_STR, "message");
	if (dlen_ok(d, XY_MAX_OUTPUT, "output") == 0) {
		r->output = xy_get_bytes(&d->r, XY_MAX_OUTPUT, &r->output_len);
		if (!r->output)
			dfail(d, "out of memory");
	}
	r->xfer_port = xy_get_u16(&d->r);
	uint32_t n = dcount(d, XY_MAX_FILES, RESULT_OUTPUT_WIRE, "outputs");
	r->outputs = dalloc(d, n, sizeof *r->outputs);
	if (n && !r->outputs)
		return;
	r->n_outputs = n;
	dec_result_outputs(d, r);
	r->seq = xy_get_u64(&d->r);
}

/* ATTACH, ACCEPTED */
static void dec_attach(struct dec *d, union xy_msg *m)
{
	xy_get_raw(&d->r, m->attach.session, XY_ID_LEN);
	m->attach.after = xy_get_u64(&d->r);
}

static void enc_attach(struct enc *e, const union xy_msg *m)
{
	xy_buf_put_raw(e->b, m->attach.session, XY_ID_LEN);
	xy_buf_put_u64(e->b, m->attach.after);
}

static void dec_accepted(struct dec *d, union xy_msg *m)
{
	m->accepted.id = xy_get_u64(&d->r);
}

static void enc_accepted(struct enc *e, const union xy_msg *m)
{
	xy_buf_put_u64(e->b, m->accepted.id);
}

static void enc_result(struct enc *e, const union xy_msg *m)
{
	const struct xy_msg_result *r = &m->result;
	xy_buf_put_u64(e->b, r->id);
	xy_buf_put_u8(e->b, r->result);
	xy_buf_put_u32(e->b, (uint32_t)r->exit_code);
	estr(e, r->message, XY_MAX_STR);
	size_t olen = r->output ? r->output_len : 0;
	if (olen > XY_MAX_OUTPUT)
		e->bad = 1;
	else
		xy_buf_put_bytes(e->b, r->output, olen);
	xy_buf_put_u16(e->b, r->xfer_port);
	if (!ecount(e, r->n_outputs, XY_MAX_FILES, r->outputs))
		return;
	for (uint32_t i = 0; i < r->n_outputs; i++) {
		const struct xy_result_output *o = &r->outputs[i];
		estr(e, o->name, XY_MAX_NAME);
		xy_buf_put_raw(e->b, o->id, XY_ID_LEN);
		xy_buf_put_u8(e->b, o->kind);
		xy_buf_put_u64(e->b, o->size);
	}
	xy_buf_put_u64(e->b, r->seq);
}

static void free_result(union xy_msg *m)
{
	struct xy_msg_result *r = &m->result;
	free(r->message);
	free(r->output);
	for (uint32_t i = 0; i < r->n_outputs && r->outputs; i++)
		free(r->outputs[i].name);
	free(r->outputs);
}

static const struct msg_ops {
	const char *name;
	dec_fn dec;
	enc_fn enc;
	free_fn free;
} ops[XY_MSG_MAX] = {
	[XY_MSG_CHALLENGE] = {"CHALLENGE", dec_challenge, enc_challenge, NULL},
	[XY_MSG_AUTH] = {"AUTH", dec_auth, enc_auth, NULL},
	[XY_MSG_AUTH_OK] = {"AUTH_OK", dec_auth_ok, enc_auth_ok, NULL},
	[XY_MSG_ERROR] = {"ERROR", dec_error, enc_error, free_error},
	[XY_MSG_HELLO] = {"HELLO", dec_hello, enc_hello, free_hello},
	[XY_MSG_TASK] = {"TASK", dec_task, enc_task, free_task},
	[XY_MSG_LIBRARY] = {"LIBRARY", dec_task, enc_task, free_task},
	[XY_MSG_FETCH] = {"FETCH", dec_fetch, enc_fetch, free_fetch},
	[XY_MSG_CACHE_UPDATE] = {"CACHE_UPDATE", dec_cache_update,
				 enc_cache_update, free_cache_update},
	[XY_MSG_TASK_DONE] = {"TASK_DONE", dec_task_done, enc_task_done,
			      free_task_done},
	[XY_MSG_CANCEL] = {"CANCEL", dec_cancel, enc_cancel, NULL},
	[XY_MSG_KEEPALIVE] = {"KEEPALIVE", NULL, NULL, NULL},
	[XY_MSG_UNLINK] = {"UNLINK", dec_unlink, enc_unlink, NULL},
	[XY_MSG_RELEASE] = {"RELEASE", dec_unlink, enc_unlink, NULL},
	[XY_MSG_SHUTDOWN] = {"SHUTDOWN", NULL, NULL, NULL},
	[XY_MSG_DRAIN] = {"DRAIN", NULL, NULL, NULL},
	[XY_MSG_WELCOME] = {"WELCOME", dec_welcome, enc_welcome, NULL},
	[XY_MSG_ADOPT] = {"ADOPT", dec_adopt, enc_adopt, NULL},
	[XY_MSG_BYE] = {"BYE", dec_bye, enc_bye, free_bye},
	[XY_MSG_STATUS_REQ] = {"STATUS_REQ", NULL, NULL, NULL},
	[XY_MSG_STATUS_REPLY] = {"STATUS_REPLY", dec_status_reply,
				 enc_status_reply, free_status_reply},
	[XY_MSG_FETCH_URL] = {"FETCH_URL", dec_fetch_url, enc_fetch_url,
			      free_fetch_url},
	[XY_MSG_URL_DONE] = {"URL_DONE", dec_url_done, enc_url_done,
			     free_url_done},
	[XY_MSG_GET] = {"GET", dec_get, enc_get, free_get},
	[XY_MSG_OBJECT] = {"OBJECT", dec_object, enc_object, NULL},
	[XY_MSG_SUBMIT] = {"SUBMIT", dec_submit, enc_submit, free_submit},
	[XY_MSG_RESULT] = {"RESULT", dec_result, enc_result, free_result},
	[XY_MSG_ATTACH] = {"ATTACH", dec_attach, enc_attach, NULL},
	[XY_MSG_ACCEPTED] = {"ACCEPTED", dec_accepted, enc_accepted, NULL},
	[XY_MSG_DROP] = {"DROP", dec_drop, enc_drop, free_drop},
};

static const struct msg_ops *lookup(unsigned type)
{
	if (type >= XY_MSG_MAX || !ops[type].name)
		return NULL;
	return &ops[type];
}

int xy_key_set(const uint8_t key[XY_ID_LEN])
{
	static const uint8_t zero[XY_ID_LEN];
	return memcmp(key, zero, XY_ID_LEN) != 0;
}

const char *xy_msg_name(unsigned type)
{
	const struct msg_ops *o = lookup(type);
	return o ? o->name : "?";
}

int xy_frame_parse(const uint8_t hdr[XY_FRAME_HEADER], uint32_t *len,
		   uint16_t *type)
{
	struct xy_reader r;
	xy_reader_init(&r, hdr, XY_FRAME_HEADER);
	uint32_t n = xy_get_u32(&r);
	uint16_t t = xy_get_u16(&r);
	uint16_t flags = xy_get_u16(&r);
	if (flags != 0 || !lookup(t) || n > XY_MAX_FRAME) {
		errno = EPROTO;
		return -1;
	}
	*len = n;
	*type = t;
	return 0;
}

int xy_msg_decode(unsigned type, const uint8_t *payload, size_t len,
		  union xy_msg *m, char *err, size_t errlen)
{
	memset(m, 0, sizeof *m);
	const struct msg_ops *o = lookup(type);
	if (!o)
		return xy_fail(err, errlen, EPROTO, "unknown message type %u",
			       type);
	struct dec d = {.type = o->name, .err = err, .errlen = errlen};
	xy_reader_init(&d.r, payload, len);
	if (o->dec)
		o->dec(&d, m);
	if (d.r.err && !d.failed)
		dfail(&d, "truncated payload");
	if (!d.failed && d.r.left > 0)
		dfail(&d, "%zu trailing bytes", d.r.left);
	if (d.failed) {
		xy_msg_free(type, m);
		errno = EPROTO;
		return -1;
	}
	return 0;
}

void xy_msg_free(unsigned type, union xy_msg *m)
{
	const struct msg_ops *o = lookup(type);
	if (!m || !o)
		return;
	if (o->free)
		o->free(m);
	memset(m, 0, sizeof *m);
}

int xy_msg_encode(struct xy_buf *b, unsigned type, const union xy_msg *m)
{
	const struct msg_ops *o = lookup(type);
	if (!o || (o->enc && !m)) {
		errno = EINVAL;
		return -1;
	}
	if (b->oom) {
		errno = ENOMEM;
		return -1;
	}
	size_t start = b->len;
	struct enc e = {.b = b};
	xy_buf_put_u32(b, 0);
	xy_buf_put_u16(b, (uint16_t)type);
	xy_buf_put_u16(b, 0);
	if (o->enc)
		o->enc(&e, m);
	size_t plen = b->len - start - XY_FRAME_HEADER;
	if (b->oom || e.bad || plen > XY_MAX_FRAME) {
		/* Drop the partial frame; what was queued before stays. */
		int oom = b->oom;
		b->len = start;
		b->oom = 0;
		errno = oom ? ENOMEM : e.bad ? EINVAL : EMSGSIZE;
		return -1;
	}
	xy_buf_patch_u32(b, start, (uint32_t)plen);
	return 0;
}
