/*
 * xfer_seeds.c: writes the seeds of fuzz_xfer (corpus/xfer/) into the
 * directory given: well-formed messages and streams made by the real
 * encoders, each after the byte that picks fuzz_xfer's reader; with a
 * second directory, the seeds of fuzz_decode (corpus/decode/) too: every
 * message type, empty, and a few with content, each payload after its
 * type byte. Run by hand when the formats change; its output is kept in
 * the tree.
 *
 * usage: xfer_seeds XFER_DIR [DECODE_DIR]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "auth.h"
#include "buf.h"
#include "object.h"
#include "proto.h"
#include "util.h"

static const char secret[] = "fuzz-secret-0123456789abcdef";
static const char *out;

static void put(const char *name, const struct xy_buf *b)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", out, name);
	f = fopen(path, "wb");
	if (!f || fwrite(b->data, 1, b->len, f) != b->len || fclose(f)) {
		perror(path);
		exit(1);
	}
}

static void msg(struct xy_buf *b, unsigned type, union xy_msg *m)
{
	if (xy_msg_encode(b, type, m) < 0)
		exit(1);
}

static void get(struct xy_buf *b, const char *name, int good)
{
	union xy_msg m;
	uint8_t id[XY_ID_LEN];

	memset(&m, 0, sizeof m);
	memset(id, 0x5a, sizeof id);
	memcpy(m.get.id, id, XY_ID_LEN);
	xy_token_make(secret, sizeof secret - 1, id,
		      xy_mono_us() + (good ? 3600000000ull : 0), name,
		      m.get.token);
	m.get.name = (char *)name;
	m.get.offset = good ? 0 : 4096;
	m.get.flags = good ? 0 : XY_GET_PARTIAL;
	msg(b, XY_MSG_GET, &m);
}

static int sink(void *arg, const void *p, size_t n)
{
	xy_buf_put_raw((struct xy_buf *)arg, p, n);
	return 0;
}

/* One payload after its type byte, as fuzz_decode reads it. */
static void payload(const char *name, unsigned type, union xy_msg *m)
{
	struct xy_buf b, p;

	xy_buf_init(&b);
	xy_buf_init(&p);
	if (xy_msg_encode(&b, type, m) < 0 || b.len < XY_FRAME_HEADER)
		goto out;
	xy_buf_put_u8(&p, (uint8_t)type);
	xy_buf_put_raw(&p, b.data + XY_FRAME_HEADER, b.len - XY_FRAME_HEADER);
	put(name, &p);
out:
	xy_buf_free(&b);
	xy_buf_free(&p);
}

static void decode_seeds(void)
{
	struct xy_task_input in = {.kind = 1, .level = 2, .name = "data/in"};
	struct xy_task_output o = {.name = "out"};
	struct xy_env_var env = {.name = "LC_ALL", .value = "C"};
	union xy_msg m;
	char name[32];

	for (unsigned t = 0; t < 256; t++) {
		memset(&m, 0, sizeof m);
		snprintf(name, sizeof name, "empty-%u", t);
		payload(name, t, &m);
	}
	memset(&m, 0, sizeof m);
	m.task.task_id = 7;
	m.task.command = "sort in > out";
	m.task.cores = 2;
	m.task.n_env = 1;
	m.task.env = &env;
	m.task.n_inputs = 1;
	m.task.inputs = &in;
	m.task.n_outputs = 1;
	m.task.outputs = &o;
	m.task.library = "";
	payload("task", XY_MSG_TASK, &m);
	/* SUBMIT of version 16: a client's object, a temp of the client's
	 * and a URL to unpack; one output brought back, one a temp. */
	struct xy_submit_input sin[3] = {
		{.name = "in", .kind = 0, .size = 6, .ref = ""},
		{.name = "mid", .from = XY_FROM_TEMP, .ref = "/w/t1"},
		{.name = "pkg", .from = XY_FROM_URL, .unpack = 1,
		 .ref = "http://127.0.0.1:8000/p.tgz"}};
	char *souts[2] = {"out", "next"}, *stemps[2] = {"", "/w/t2"};
	memset(&m, 0, sizeof m);
	m.submit.id = 3;
	m.submit.tag = "b";
	m.submit.command = "cat in mid > out; cp -r pkg next";
	m.submit.cores = 1;
	m.submit.n_env = 1;
	m.submit.env = &env;
	m.submit.n_inputs = 3;
	m.submit.inputs = sin;
	m.submit.n_outputs = 2;
	m.submit.outputs = souts;
	m.submit.temps = stemps;
	m.submit.xfer_port = 40000;
	m.submit.key[0] = 1;
	payload("submit-temps", XY_MSG_SUBMIT, &m);
	char *dropped[2] = {"/w/t1", "/w/t2"};
	memset(&m, 0, sizeof m);
	m.drop.n_temps = 2;
	m.drop.temps = dropped;
	payload("drop", XY_MSG_DROP, &m);
	memset(&m, 0, sizeof m);
	m.get.name = "worker-a";
	m.get.offset = 1 << 20;
	m.get.flags = XY_GET_PARTIAL;
	payload("get", XY_MSG_GET, &m);
}

int main(int argc, char **argv)
{
	struct xy_buf b;
	union xy_msg m;
	char err[256], tree[] = "/tmp/xylem-seeds-XXXXXX", p[256];
	uint8_t sel;

	if (argc != 2 && argc != 3)
		return 2;
	if (argc == 3) {
		out = argv[2];
		decode_seeds();
	}
	out = argv[1];

	xy_buf_init(&b);
	sel = 0;
	xy_buf_put_raw(&b, &sel, 1);
	get(&b, "127.0.0.1:9123", 1);
	get(&b, "worker-b", 0);
	put("get-two", &b);

	xy_buf_free(&b);
	xy_buf_init(&b);
	sel = 1;
	xy_buf_put_raw(&b, &sel, 1);
	memset(&m, 0, sizeof m);
	m.auth.version = XY_PROTO_VERSION;
	m.auth.role = XY_ROLE_TRANSFER;
	memset(m.auth.nonce, 7, XY_NONCE_LEN);
	memset(m.auth.mac, 9, XY_MAC_LEN);
	msg(&b, XY_MSG_AUTH, &m);
	put("server-auth", &b);

	xy_buf_free(&b);
	xy_buf_init(&b);
	sel = 2;
	xy_buf_put_raw(&b, &sel, 1);
	memset(&m, 0, sizeof m);
	m.challenge.magic = XY_PROTO_MAGIC;
	m.challenge.version = XY_PROTO_VERSION;
	memset(m.challenge.nonce, 3, XY_NONCE_LEN);
	msg(&b, XY_MSG_CHALLENGE, &m);
	memset(&m, 0, sizeof m);
	memset(m.auth_ok.mac, 4, XY_MAC_LEN);
	msg(&b, XY_MSG_AUTH_OK, &m);
	memset(&m, 0, sizeof m);
	m.object.status = XY_OBJ_OK;
	m.object.kind = XY_KIND_FILE;
	m.object.size = 5;
	msg(&b, XY_MSG_OBJECT, &m);
	xy_buf_put_raw(&b, "hello", 5);
	put("client-challenge", &b);

	xy_buf_free(&b);
	xy_buf_init(&b);
	xy_buf_put_raw(&b, "\x03\x02", 2);
	xy_buf_put_raw(&b, "hello, world\n", 13);
	put("stream-file", &b);

	xy_buf_free(&b);
	xy_buf_init(&b);
	xy_buf_put_raw(&b, "\x03\x03", 2);
	if (!mkdtemp(tree))
		return 1;
	snprintf(p, sizeof p, "%s/sub", tree);
	mkdir(p, 0755);
	snprintf(p, sizeof p, "%s/sub/a.txt", tree);
	FILE *f = fopen(p, "w");
	fputs("alpha\n", f);
	fclose(f);
	snprintf(p, sizeof p, "%s/run.sh", tree);
	f = fopen(p, "w");
	fputs("#!/bin/sh\necho hi\n", f);
	fclose(f);
	chmod(p, 0755);
	snprintf(p, sizeof p, "%s/empty", tree);
	mkdir(p, 0755);
	if (xy_object_stream(tree, XY_KIND_DIR, sink, &b, -1, err,
			     sizeof err) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	put("stream-dir", &b);
	xy_buf_free(&b);
	xy_rm_rf(tree);
	return 0;
}
