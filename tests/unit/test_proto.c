/*
 * test_proto.c: unit tests for the message codec of proto.h: round trips of
 * every type, truncation at every length, limits, trailing bytes and
 * hostile sandbox names.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "proto.h"
#include "xylem.h"

/* TASK_DONE's limit on failures is xylem.h's last one. */
_Static_assert(XY_FAILURE_MAX == XY_FAILURE_LIBRARY_EXIT,
	       "XY_FAILURE_MAX is not xy_failure's last value");

static struct xy_inventory_item items[2] = {
	{.id = {1, 2, 3}, .size = 1000, .kind = XY_KIND_FILE, .level = 2},
	{.id = {9}, .size = 1ull << 40, .kind = XY_KIND_DIR, .level = 3},
};
static struct xy_held_task held[2] = {
	{.id = XY_HELD_BIT | 1, .key = {0x55}, .finished = 0, .cores = 2,
	 .memory_mb = 512, .disk_mb = 10, .gpus = 1},
	{.id = XY_HELD_BIT | 2, .key = {0x66}, .finished = 1},
};
static struct xy_env_var env[2] = {{"PATH", "/bin:/usr/bin"}, {"EMPTY", ""}};
static struct xy_task_input inputs[2] = {
	{.id = {7}, .kind = XY_KIND_FILE, .level = 1, .name = "in/data.txt"},
	{.id = {8}, .kind = XY_KIND_DIR, .level = 0, .name = "env"},
};
static struct xy_task_output outputs[1] = {{"out.txt", 1}};
static uint8_t chunk_hashes[3 * XY_ID_LEN] = {1, 2, 3, [95] = 9};
static struct xy_done_output done_outputs[2] = {
	{.name = "out.txt", .id = {0xaa}, .kind = XY_KIND_FILE, .size = 5},
	{.name = "results/dir", .id = {0xbb}, .kind = XY_KIND_DIR, .size = 77,
	 .chunks = {30, 3, chunk_hashes}},
};
static uint64_t bye_ids[3] = {1, 2, 1ull << 63};
static struct xy_submit_input submit_inputs[4] = {
	{.name = "in/1/data.txt", .id = {0x31}, .kind = XY_KIND_FILE,
	 .size = 6},
	{.name = "cwl-job.json", .id = {0x32}, .kind = XY_KIND_DIR,
	 .size = 1ull << 35},
	{.name = "mid", .from = XY_FROM_TEMP, .ref = "/w/t1"},
	{.name = "pkg", .from = XY_FROM_URL, .ref = "http://h/p.tgz",
	 .unpack = 1},
};
static char *submit_outputs[2] = {"out", "cwl-result.json"};
static char *submit_temps[2] = {"", "/w/t2"};
static char *drop_temps[2] = {"/w/t1", "/w/t2"};
static struct xy_result_output result_outputs[2] = {
	{.name = "out", .id = {0x41}, .kind = XY_KIND_DIR, .size = 90},
	{.name = "cwl-result.json", .id = {0x42}, .kind = XY_KIND_FILE,
	 .size = 12},
};

/* A filled-in message of each type; returns 0 for types with no payload. */
static int sample(unsigned type, union xy_msg *m)
{
	memset(m, 0, sizeof *m);
	switch (type) {
	case XY_MSG_CHALLENGE:
		m->challenge.magic = XY_PROTO_MAGIC;
		m->challenge.version = XY_PROTO_VERSION;
		memset(m->challenge.nonce, 0x5a, XY_NONCE_LEN);
		return 1;
	case XY_MSG_AUTH:
		m->auth.version = 1;
		m->auth.role = XY_ROLE_TRANSFER;
		memset(m->auth.nonce, 1, XY_NONCE_LEN);
		memset(m->auth.mac, 2, XY_MAC_LEN);
		return 1;
	case XY_MSG_AUTH_OK:
		memset(m->auth_ok.mac, 3, XY_MAC_LEN);
		return 1;
	case XY_MSG_ERROR:
		m->error.code = 7;
		m->error.text = "bad secret";
		return 1;
	case XY_MSG_HELLO:
		m->hello = (struct xy_msg_hello){
			"host:1", "host", 16, 64000, 1000000, 2, "", 9123,
			3600000, 2, items, 2, held};
		return 1;
	case XY_MSG_WELCOME:
		m->welcome.epoch = 7;
		m->welcome.lease_ms = 300000;
		return 1;
	case XY_MSG_ADOPT:
		m->adopt.held_id = XY_HELD_BIT | 3;
		m->adopt.task_id = 99;
		return 1;
	case XY_MSG_TASK:
		m->task = (struct xy_msg_task){
			42, "echo hi > out.txt", 2, 512, 100, 1, 5000,
			2, env, 2, inputs, 1, outputs, "", 0, NULL, {0x77}};
		return 1;
	case XY_MSG_LIBRARY:
		m->task = (struct xy_msg_task){
			0, "python3 -m xylem.library", 1, 0, 0, 0, 0,
			2, env, 2, inputs, 0, NULL, "pylib", 4, "p\0ld", {0}};
		return 1;
	case XY_MSG_FETCH:
		m->fetch.id[0] = 0x11;
		m->fetch.kind = XY_KIND_DIR;
		m->fetch.level = 3;
		m->fetch.size = 123456789;
		m->fetch.chunks = (struct xy_chunks){50000000, 3, chunk_hashes};
		m->fetch.n_sources = 2;
		m->fetch.sources[0] = (struct xy_source){"10.1.2.3", 40000, 1};
		m->fetch.sources[1] = (struct xy_source){"", 9, 0};
		memset(m->fetch.token, 0x33, XY_TOKEN_LEN);
		return 1;
	case XY_MSG_CACHE_UPDATE:
		m->cache_update.id[31] = 0x44;
		m->cache_update.kind = XY_KIND_FILE;
		m->cache_update.status = XY_OBJ_CORRUPT;
		m->cache_update.size = 99;
		m->cache_update.elapsed_us = 1234;
		m->cache_update.verified = 4321;
		m->cache_update.text = "hash mismatch";
		m->cache_update.blame[1] = XY_BLAME_HOST;
		m->cache_update.blame[2] = XY_BLAME_OBJECT;
		return 1;
	case XY_MSG_TASK_DONE:
		m->task_done = (struct xy_msg_task_done){
			42, 1, XY_FAILURE_LIBRARY_EXIT, -9, 1000, 2000, 1, 5,
			"a\0b\nc", "killed",
			2, done_outputs};
		return 1;
	case XY_MSG_CANCEL:
		m->cancel.task_id = 77;
		return 1;
	case XY_MSG_UNLINK:
	case XY_MSG_RELEASE:
		memset(m->unlink.id, 0xcc, XY_ID_LEN);
		return 1;
	case XY_MSG_BYE:
		m->bye.n_tasks = 3;
		m->bye.task_ids = bye_ids;
		return 1;
	case XY_MSG_STATUS_REPLY:
		m->status_reply.json = "{\"tasks\": 3}";
		return 1;
	case XY_MSG_GET:
		memset(m->get.id, 0xdd, XY_ID_LEN);
		memset(m->get.token, 0xee, XY_TOKEN_LEN);
		m->get.name = "host:123";
		m->get.offset = 1ull << 20;
		m->get.flags = XY_GET_PARTIAL;
		return 1;
	case XY_MSG_FETCH_URL:
		m->fetch_url.req_id = 5;
		m->fetch_url.level = 2;
		m->fetch_url.url = "https://example.org/data.tar.gz";
		return 1;
	case XY_MSG_URL_DONE:
		m->url_done.req_id = 5;
		m->url_done.status = XY_OBJ_OK;
		m->url_done.id[0] = 0x77;
		m->url_done.size = 3ull << 20;
		m->url_done.elapsed_us = 99;
		m->url_done.chunks = (struct xy_chunks){1u << 20, 3,
							chunk_hashes};
		m->url_done.text = "";
		return 1;
	case XY_MSG_SUBMIT:
		m->submit = (struct xy_msg_submit){
			7, "tool.cwl", "exec \"$XYLEM_EXE\" cwl-exec x", 2, 100,
			0, 0, 60000, 2, env, 4, submit_inputs, 2,
			submit_outputs, submit_temps, 40001, {0x5e, 0x11}};
		return 1;
	case XY_MSG_RESULT:
		m->result = (struct xy_msg_result){
			7, 1, 33, "failed", 4, "o\0ut", 40002, 2,
			result_outputs, 12345};
		return 1;
	case XY_MSG_ATTACH:
		memset(&m->attach, 0, sizeof m->attach);
		m->attach.session[0] = 0xa5;
		m->attach.session[31] = 0x5a;
		m->attach.after = 1ull << 40;
		return 1;
	case XY_MSG_ACCEPTED:
		m->accepted.id = 77;
		return 1;
	case XY_MSG_DROP:
		m->drop.n_temps = 2;
		m->drop.temps = drop_temps;
		return 1;
	case XY_MSG_OBJECT:
		m->object.status = XY_OBJ_OK;
		m->object.kind = XY_KIND_DIR;
		m->object.size = 1ull << 33;
		return 1;
	}
	return 0;
}

static int known(unsigned t)
{
	return strcmp(xy_msg_name(t), "?") != 0;
}

/* Encodes one frame and checks its header. */
static void encode(unsigned type, const union xy_msg *m, struct xy_buf *b)
{
	xy_buf_init(b);
	XY_CHECK_EQ(xy_msg_encode(b, type, m), 0);
	uint32_t len;
	uint16_t t;
	XY_CHECK_EQ(xy_frame_parse(b->data, &len, &t), 0);
	XY_CHECK_EQ(t, type);
	XY_CHECK_EQ(len + XY_FRAME_HEADER, b->len);
}

/* Task inputs carry kinds up to ENV; anything past is refused. */
static void t_input_kinds(void)
{
	union xy_msg m, d;
	struct xy_buf b;
	char err[256];
	struct xy_task_input in[1] = {{.id = {1}, .kind = XY_INPUT_ENV,
				       .level = 1, .name = ".xylem/env"}};

	sample(XY_MSG_TASK, &m);
	m.task.n_inputs = 1;
	m.task.inputs = in;
	encode(XY_MSG_TASK, &m, &b);
	XY_CHECK_EQ(xy_msg_decode(XY_MSG_TASK, b.data + 8, b.len - 8, &d, err,
				  sizeof err), 0);
	XY_CHECK_EQ(d.task.inputs[0].kind, XY_INPUT_ENV);
	xy_msg_free(XY_MSG_TASK, &d);
	xy_buf_free(&b);
	in[0].kind = XY_INPUT_ENV + 1;
	encode(XY_MSG_TASK, &m, &b);
	XY_CHECK_EQ(xy_msg_decode(XY_MSG_TASK, b.data + 8, b.len - 8, &d, err,
				  sizeof err), -1);
	XY_CHECK(strstr(err, "unknown kind") != NULL);
	xy_buf_free(&b);
}

/* CACHE_UPDATE blames each source of its FETCH: the values arrive in
 * order, and one past XY_BLAME_HOST is refused. */
static void t_cache_update_blame(void)
{
	union xy_msg m, d;
	struct xy_buf b;
	char err[256];
	sample(XY_MSG_CACHE_UPDATE, &m);
	encode(XY_MSG_CACHE_UPDATE, &m, &b);
	XY_CHECK_EQ(xy_msg_decode(XY_MSG_CACHE_UPDATE, b.data + 8, b.len - 8,
				  &d, err, sizeof err), 0);
	XY_CHECK_EQ(d.cache_update.blame[0], XY_BLAME_NONE);
	XY_CHECK_EQ(d.cache_update.blame[1], XY_BLAME_HOST);
	XY_CHECK_EQ(d.cache_update.blame[2], XY_BLAME_OBJECT);
	XY_CHECK_EQ(d.cache_update.blame[3], XY_BLAME_NONE);
	xy_msg_free(XY_MSG_CACHE_UPDATE, &d);
	xy_buf_free(&b);
	m.cache_update.blame[3] = XY_BLAME_HOST + 1;
	encode(XY_MSG_CACHE_UPDATE, &m, &b);
	XY_CHECK_EQ(xy_msg_decode(XY_MSG_CACHE_UPDATE, b.data + 8, b.len - 8,
				  &d, err, sizeof err), -1);
	XY_CHECK(strstr(err, "bad blame") != NULL);
	xy_buf_free(&b);
	xy_test_check_no_leaks();
}

/* A TASK_DONE's failure is one that xylem.h defines, or refused. */
static void t_task_done_failure(void)
{
	union xy_msg m, d;
	struct xy_buf b;
	char err[256];
	sample(XY_MSG_TASK_DONE, &m);
	m.task_done.failure = XY_FAILURE_LIBRARY_START;
	encode(XY_MSG_TASK_DONE, &m, &b);
	XY_CHECK_EQ(xy_msg_decode(XY_MSG_TASK_DONE, b.data + 8, b.len - 8, &d,
				  err, sizeof err), 0);
	XY_CHECK_EQ(d.task_done.failure, XY_FAILURE_LIBRARY_START);
	xy_msg_free(XY_MSG_TASK_DONE, &d);
	xy_buf_free(&b);
	m.task_done.failure = XY_FAILURE_MAX + 1;
	encode(XY_MSG_TASK_DONE, &m, &b);
	XY_CHECK_EQ(xy_msg_decode(XY_MSG_TASK_DONE, b.data + 8, b.len - 8, &d,
				  err, sizeof err), -1);
	XY_CHECK(strstr(err, "unknown failure 3") != NULL);
	xy_buf_free(&b);
	xy_test_check_no_leaks();
}

static void t_round_trip_every_type(void)
{
	int n = 0;
	for (unsigned type = 0; type < XY_MSG_MAX; type++) {
		if (!known(type))
			continue;
		union xy_msg m, d;
		int has = sample(type, &m);
		struct xy_buf b, b2;
		encode(type, has ? &m : NULL, &b);
		char err[256];
		XY_CHECK_EQ(xy_msg_decode(type, b.data + XY_FRAME_HEADER,
					  b.len - XY_FRAME_HEADER, &d, err,
					  sizeof err), 0);
		/* Encoding what was decoded gives the same bytes. */
		encode(type, has ? &d : NULL, &b2);
		XY_CHECK_EQ(b.len, b2.len);
		XY_CHECK(!memcmp(b.data, b2.data, b.len));
		xy_msg_free(type, &d);
		xy_buf_free(&b);
		xy_buf_free(&b2);
		n++;
	}
	XY_CHECK_EQ(n, 30);
	xy_test_check_no_leaks();
}

static void t_decoded_fields(void)
{
	union xy_msg m, d;
	struct xy_buf b;
	char err[256];
	sample(XY_MSG_TASK, &m);
	encode(XY_MSG_TASK, &m, &b);
	XY_CHECK_EQ(xy_msg_decode(XY_MSG_TASK, b.data + 8, b.len - 8, &d, err,
				  sizeof err), 0);
	XY_CHECK_EQ(d.task.task_id, 42);
	XY_CHECK(!strcmp(d.task.command, "echo hi > out.txt"));
	XY_CHECK_EQ(d.task.time_limit_ms, 5000);
	XY_CHECK_EQ(d.task.key[0], 0x77);
	XY_CHECK_EQ(d.task.n_env, 2);
	XY_CHECK(!strcmp(d.task.env[0].value, "/bin:/usr/bin"));
	XY_CHECK(!strcmp(d.task.env[1].value, ""));
	XY_CHECK_EQ(d.task.n_inputs, 2);
	XY_CHECK(!strcmp(d.task.inputs[0].name, "in/data.txt"));
	XY_CHECK_EQ(d.task.inputs[1].kind, XY_KIND_DIR);
	XY_CHECK_EQ(d.task.inputs[1].id[0], 8);
	XY_CHECK_EQ(d.task.n_outputs, 1);
	XY_CHECK_EQ(d.task.outputs[0].level, 1);
	XY_CHECK(!strcmp(d.task.library, "") && d.task.payload_len == 0);
	/* A handler steals a field; free must cope. */
	char *stolen = d.task.command;
	char *stolen_name = d.task.inputs[0].name;
	d.task.command = NULL;
	d.task.inputs[0].name = NULL;
	free(stolen);
	free(stolen_name);
	xy_msg_free(XY_MSG_TASK, &d);
	xy_buf_free(&b);

	/* A library template: the name and a payload with a NUL in it. */
	sample(XY_MSG_LIBRARY, &m);
	encode(XY_MSG_LIBRARY, &m, &b);
	XY_CHECK_EQ(xy_msg_decode(XY_MSG_LIBRARY, b.data + 8, b.len - 8, &d,
				  err, sizeof err), 0);
	XY_CHECK(!strcmp(d.task.library, "pylib"));
	XY_CHECK_EQ(d.task.payload_len, 4);
	XY_CHECK(!memcmp(d.task.payload, "p\0ld", 4));
	xy_msg_free(XY_MSG_LIBRARY, &d);
	xy_buf_free(&b);

	sample(XY_MSG_TASK_DONE, &m);
	encode(XY_MSG_TASK_DONE, &m, &b);
	XY_CHECK_EQ(xy_msg_decode(XY_MSG_TASK_DONE, b.data + 8, b.len - 8, &d,
				  err, sizeof err), 0);
	XY_CHECK_EQ(d.task_done.failure, XY_FAILURE_LIBRARY_EXIT);
	XY_CHECK_EQ(d.task_done.exit_code, -9);
	XY_CHECK_EQ(d.task_done.output_len, 5);
	XY_CHECK(!memcmp(d.task_done.output, "a\0b\nc", 6));
	XY_CHECK(!strcmp(d.task_done.message, "killed"));
	XY_CHECK_EQ(d.task_done.outputs[1].size, 77);
	XY_CHECK_EQ(d.task_done.outputs[0].chunks.n, 0);
	XY_CHECK_EQ(d.task_done.outputs[1].chunks.n, 3);
	XY_CHECK_EQ(d.task_done.outputs[1].chunks.hash[95], 9);
	xy_msg_free(XY_MSG_TASK_DONE, &d);
	xy_buf_free(&b);

	sample(XY_MSG_FETCH, &m);
	encode(XY_MSG_FETCH, &m, &b);
	XY_CHECK_EQ(xy_msg_decode(XY_MSG_FETCH, b.data + 8, b.len - 8, &d,
				  err, sizeof err), 0);
	XY_CHECK_EQ(d.fetch.chunks.chunk_size, 50000000);
	XY_CHECK_EQ(d.fetch.chunks.n, 3);
	XY_CHECK_EQ(d.fetch.n_sources, 2);
	XY_CHECK(!strcmp(d.fetch.sources[0].host, "10.1.2.3"));
	XY_CHECK_EQ(d.fetch.sources[0].partial, 1);
	XY_CHECK(!strcmp(d.fetch.sources[1].host, ""));
	xy_msg_free(XY_MSG_FETCH, &d);
	xy_buf_free(&b);
	xy_test_check_no_leaks();
}

static void refused(unsigned type, const union xy_msg *m, const char *why);

/* The client messages: every field comes back, and kinds past DIR (an
 * archive or environment is not for clients) are refused. */
static void t_client_messages(void)
{
	union xy_msg m, d;
	struct xy_buf b;
	char err[256];

	sample(XY_MSG_SUBMIT, &m);
	encode(XY_MSG_SUBMIT, &m, &b);
	XY_CHECK_EQ(xy_msg_decode(XY_MSG_SUBMIT, b.data + 8, b.len - 8, &d,
				  err, sizeof err), 0);
	XY_CHECK_EQ(d.submit.id, 7);
	XY_CHECK(!strcmp(d.submit.tag, "tool.cwl"));
	XY_CHECK_EQ(d.submit.cores, 2);
	XY_CHECK_EQ(d.submit.memory_mb, 100);
	XY_CHECK_EQ(d.submit.time_limit_ms, 60000);
	XY_CHECK_EQ(d.submit.n_env, 2);
	XY_CHECK(!strcmp(d.submit.env[1].name, "EMPTY"));
	XY_CHECK_EQ(d.submit.n_inputs, 4);
	XY_CHECK_EQ(d.submit.inputs[0].from, XY_FROM_CLIENT);
	XY_CHECK(!strcmp(d.submit.inputs[0].ref, ""));
	XY_CHECK_EQ(d.submit.inputs[2].from, XY_FROM_TEMP);
	XY_CHECK(!strcmp(d.submit.inputs[2].ref, "/w/t1"));
	XY_CHECK_EQ(d.submit.inputs[3].from, XY_FROM_URL);
	XY_CHECK_EQ(d.submit.inputs[3].unpack, 1);
	XY_CHECK(!strcmp(d.submit.temps[0], ""));
	XY_CHECK(!strcmp(d.submit.temps[1], "/w/t2"));
	XY_CHECK(!strcmp(d.submit.inputs[0].name, "in/1/data.txt"));
	XY_CHECK_EQ(d.submit.inputs[1].kind, XY_KIND_DIR);
	XY_CHECK_EQ(d.submit.inputs[1].size, 1ull << 35);
	XY_CHECK_EQ(d.submit.inputs[1].id[0], 0x32);
	XY_CHECK_EQ(d.submit.n_outputs, 2);
	XY_CHECK(!strcmp(d.submit.outputs[1], "cwl-result.json"));
	XY_CHECK_EQ(d.submit.xfer_port, 40001);
	XY_CHECK_EQ(d.submit.key[0], 0x5e);
	XY_CHECK_EQ(d.submit.key[1], 0x11);
	XY_CHECK(xy_key_set(d.submit.key));
	xy_msg_free(XY_MSG_SUBMIT, &d);
	xy_buf_free(&b);

	sample(XY_MSG_RESULT, &m);
	encode(XY_MSG_RESULT, &m, &b);
	XY_CHECK_EQ(xy_msg_decode(XY_MSG_RESULT, b.data + 8, b.len - 8, &d,
				  err, sizeof err), 0);
	XY_CHECK_EQ(d.result.id, 7);
	XY_CHECK_EQ(d.result.exit_code, 33);
	XY_CHECK(!strcmp(d.result.message, "failed"));
	XY_CHECK_EQ(d.result.output_len, 4);
	XY_CHECK(!memcmp(d.result.output, "o\0ut", 4));
	XY_CHECK_EQ(d.result.xfer_port, 40002);
	XY_CHECK_EQ(d.result.seq, 12345);
	XY_CHECK_EQ(d.result.n_outputs, 2);
	XY_CHECK_EQ(d.result.outputs[0].kind, XY_KIND_DIR);
	XY_CHECK_EQ(d.result.outputs[1].size, 12);
	xy_msg_free(XY_MSG_RESULT, &d);
	xy_buf_free(&b);

	struct xy_submit_input in = submit_inputs[0];
	sample(XY_MSG_SUBMIT, &m);
	in.kind = XY_INPUT_UNPACK;
	m.submit.inputs = &in;
	m.submit.n_inputs = 1;
	refused(XY_MSG_SUBMIT, &m, "unknown kind");
	/* Version 16's sources: each names what it must, and only that. */
	in = submit_inputs[2];
	in.from = 3;
	refused(XY_MSG_SUBMIT, &m, "unknown source");
	in = submit_inputs[2];
	in.ref = "";
	refused(XY_MSG_SUBMIT, &m, "only with one");
	in = submit_inputs[0];
	in.ref = "stray";
	refused(XY_MSG_SUBMIT, &m, "only with one");
	in = submit_inputs[3];
	in.unpack = 2;
	refused(XY_MSG_SUBMIT, &m, "unpack 2");
	char *long_name = malloc(XY_MAX_NAME + 2);
	memset(long_name, 't', XY_MAX_NAME + 1);
	long_name[XY_MAX_NAME + 1] = '\0';
	in = submit_inputs[2];
	in.ref = long_name;
	refused(XY_MSG_SUBMIT, &m, "temp name over");
	free(long_name);
	struct xy_result_output out = result_outputs[0];
	sample(XY_MSG_RESULT, &m);
	out.kind = 9;
	m.result.outputs = &out;
	m.result.n_outputs = 1;
	refused(XY_MSG_RESULT, &m, "unknown kind");
	/* A RESULT's output is at most XY_MAX_OUTPUT bytes. */
	sample(XY_MSG_RESULT, &m);
	m.result.output_len = XY_MAX_OUTPUT + 1;
	m.result.output = calloc(1, XY_MAX_OUTPUT + 2);
	xy_buf_init(&b);
	XY_CHECK_EQ(xy_msg_encode(&b, XY_MSG_RESULT, &m), -1);
	free(m.result.output);
	xy_buf_free(&b);
	/* A SUBMIT's output count past the payload is refused before any
	 * allocation. */
	xy_buf_init(&b);
	xy_buf_put_u64(&b, 1);
	xy_buf_put_str(&b, "");
	xy_buf_put_str(&b, "true");
	xy_buf_put_u32(&b, 1);
	xy_buf_put_u64(&b, 0);
	xy_buf_put_u64(&b, 0);
	xy_buf_put_u32(&b, 0);
	xy_buf_put_u64(&b, 0);
	xy_buf_put_u32(&b, 0);
	xy_buf_put_u32(&b, 0);
	xy_buf_put_u32(&b, XY_MAX_FILES);
	XY_CHECK_EQ(xy_msg_decode(XY_MSG_SUBMIT, b.data, b.len, &d, err,
				  sizeof err), -1);
	XY_CHECK(strstr(err, "exceeds the payload"));
	xy_buf_free(&b);
	xy_test_check_no_leaks();
}

/* Encodes m as type and expects the decoder to refuse it with why. */
static void refused(unsigned type, const union xy_msg *m, const char *why)
{
	struct xy_buf b;
	union xy_msg d;
	char err[256] = "";
	xy_buf_init(&b);
	XY_CHECK_EQ(xy_msg_encode(&b, type, m), 0);
	XY_CHECK_EQ(xy_msg_decode(type, b.data + 8, b.len - 8, &d, err,
				  sizeof err), -1);
	XY_CHECK(strstr(err, why));
	xy_buf_free(&b);
}

static void t_chunk_lists(void)
{
	union xy_msg m;
	struct xy_buf b;
	XY_CHECK_EQ(xy_chunk_size_for(0), XY_CHUNK_MIN);
	uint64_t most = (uint64_t)XY_MAX_CHUNKS * XY_CHUNK_MIN;
	XY_CHECK_EQ(xy_chunk_size_for(most), XY_CHUNK_MIN);
	XY_CHECK_EQ(xy_chunk_size_for(most + 1), 2 * XY_CHUNK_MIN);
	XY_CHECK_EQ(xy_chunk_count(XY_CHUNK_MIN, XY_CHUNK_MIN), 0);
	XY_CHECK_EQ(xy_chunk_count(XY_CHUNK_MIN + 1, XY_CHUNK_MIN), 2);
	XY_CHECK_EQ(xy_chunk_count(5, 0), 0);
	/* A list that does not cut the size into its count. */
	sample(XY_MSG_FETCH, &m);
	m.fetch.size = 200000000;
	refused(XY_MSG_FETCH, &m, "do not make");
	sample(XY_MSG_FETCH, &m);
	m.fetch.chunks.chunk_size = 0;
	refused(XY_MSG_FETCH, &m, "do not make");
	/* No source, or too many: the encoder refuses too many. */
	sample(XY_MSG_FETCH, &m);
	m.fetch.n_sources = 0;
	xy_buf_init(&b);
	XY_CHECK_EQ(xy_msg_encode(&b, XY_MSG_FETCH, &m), -1);
	m.fetch.n_sources = XY_MAX_SOURCES + 1;
	XY_CHECK_EQ(xy_msg_encode(&b, XY_MSG_FETCH, &m), -1);
	xy_buf_free(&b);
	/* Hand-made: a source count of 0, and one of 5. */
	for (uint32_t n = 0; n <= 5; n += 5) {
		xy_buf_init(&b);
		xy_buf_put_raw(&b, chunk_hashes, XY_ID_LEN);
		xy_buf_put_u8(&b, 0);
		xy_buf_put_u8(&b, 0);
		xy_buf_put_u64(&b, 10);
		xy_buf_put_u32(&b, 0);
		xy_buf_put_u32(&b, 0);
		xy_buf_put_u32(&b, n);
		for (uint32_t i = 0; i < n; i++) {
			xy_buf_put_bytes(&b, "h", 1);
			xy_buf_put_u16(&b, 1);
			xy_buf_put_u8(&b, 0);
		}
		xy_buf_put_raw(&b, chunk_hashes, XY_TOKEN_LEN);
		union xy_msg d;
		char err[256] = "";
		XY_CHECK_EQ(xy_msg_decode(XY_MSG_FETCH, b.data, b.len, &d, err,
					  sizeof err), -1);
		XY_CHECK(strstr(err, n ? "exceeds limit" : "no source"));
		xy_buf_free(&b);
	}
	/* Too many chunks. */
	sample(XY_MSG_TASK_DONE, &m);
	struct xy_done_output o = done_outputs[1];
	static uint8_t many[(XY_MAX_CHUNKS + 1) * XY_ID_LEN];
	o.size = XY_MAX_CHUNKS + 1;
	o.chunks = (struct xy_chunks){1, XY_MAX_CHUNKS + 1, many};
	m.task_done.n_outputs = 1;
	m.task_done.outputs = &o;
	xy_buf_init(&b);
	XY_CHECK_EQ(xy_msg_encode(&b, XY_MSG_TASK_DONE, &m), -1);
	xy_buf_free(&b);
	/* Unknown GET flags. */
	sample(XY_MSG_GET, &m);
	m.get.flags = 0x80;
	refused(XY_MSG_GET, &m, "flags");
	xy_test_check_no_leaks();
}

static void t_empty_messages(void)
{
	static const unsigned types[] = {XY_MSG_KEEPALIVE, XY_MSG_SHUTDOWN,
					 XY_MSG_STATUS_REQ};
	for (int i = 0; i < 3; i++) {
		struct xy_buf b;
		union xy_msg d;
		encode(types[i], NULL, &b);
		XY_CHECK_EQ(b.len, XY_FRAME_HEADER);
		XY_CHECK_EQ(xy_msg_decode(types[i], NULL, 0, &d, NULL, 0), 0);
		uint8_t extra = 0;
		XY_CHECK_EQ(xy_msg_decode(types[i], &extra, 1, &d, NULL, 0),
			    -1);
		xy_buf_free(&b);
	}
	/* A type with a payload needs m. */
	struct xy_buf b;
	xy_buf_init(&b);
	XY_CHECK_EQ(xy_msg_encode(&b, XY_MSG_TASK, NULL), -1);
	XY_CHECK_EQ(b.len, 0);
	xy_buf_free(&b);
}

static void t_truncated_every_length(void)
{
	for (unsigned type = 0; type < XY_MSG_MAX; type++) {
		union xy_msg m, d;
		if (!known(type) || !sample(type, &m))
			continue;
		struct xy_buf b;
		encode(type, &m, &b);
		size_t plen = b.len - XY_FRAME_HEADER;
		/* Copy each prefix to its own allocation so that the address
		 * sanitizer sees any read past its end. */
		for (size_t n = 0; n < plen; n++) {
			uint8_t *p = malloc(n ? n : 1);
			memcpy(p, b.data + XY_FRAME_HEADER, n);
			char err[256] = "";
			XY_CHECK_EQ(xy_msg_decode(type, p, n, &d, err,
						  sizeof err), -1);
			XY_CHECK(err[0] != 0);
			XY_CHECK_EQ(errno, EPROTO);
			free(p);
		}
		xy_buf_free(&b);
	}
	xy_test_check_no_leaks();
}

static void t_trailing_bytes(void)
{
	for (unsigned type = 0; type < XY_MSG_MAX; type++) {
		union xy_msg m, d;
		if (!known(type))
			continue;
		int has = sample(type, &m);
		struct xy_buf b;
		encode(type, has ? &m : NULL, &b);
		xy_buf_put_u8(&b, 0);
		char err[256] = "";
		XY_CHECK_EQ(xy_msg_decode(type, b.data + 8, b.len - 8, &d, err,
					  sizeof err), -1);
		XY_CHECK(strstr(err, "trailing"));
		xy_buf_free(&b);
	}
	xy_test_check_no_leaks();
}

static void t_unknown_types(void)
{
	union xy_msg d;
	char err[128];
	static const unsigned bad[] = {0, 5, 9, 29, 32, 1000};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		XY_CHECK_EQ(xy_msg_decode(bad[i], NULL, 0, &d, err,
					  sizeof err), -1);
		XY_CHECK(!strcmp(xy_msg_name(bad[i]), "?"));
		struct xy_buf b;
		xy_buf_init(&b);
		XY_CHECK_EQ(xy_msg_encode(&b, bad[i], NULL), -1);
		xy_buf_free(&b);
	}
	XY_CHECK(!strcmp(xy_msg_name(XY_MSG_TASK_DONE), "TASK_DONE"));
	xy_msg_free(1000, &d); /* harmless */
}

static void t_frame_header(void)
{
	uint8_t h[8] = {5, 0, 0, 0, XY_MSG_TASK, 0, 0, 0};
	uint32_t len;
	uint16_t type;
	XY_CHECK_EQ(xy_frame_parse(h, &len, &type), 0);
	XY_CHECK_EQ(len, 5);
	XY_CHECK_EQ(type, XY_MSG_TASK);
	h[6] = 1; /* flags */
	XY_CHECK_EQ(xy_frame_parse(h, &len, &type), -1);
	h[6] = 0;
	h[4] = 99; /* type */
	XY_CHECK_EQ(xy_frame_parse(h, &len, &type), -1);
	h[4] = XY_MSG_TASK;
	uint32_t big = XY_MAX_FRAME + 1;
	memcpy(h, &big, 4); /* tests run little-endian */
	XY_CHECK_EQ(xy_frame_parse(h, &len, &type), -1);
	big = XY_MAX_FRAME;
	memcpy(h, &big, 4);
	XY_CHECK_EQ(xy_frame_parse(h, &len, &type), 0);
}

/* A TASK payload up to its env count, for hand-made hostile payloads. */
static void task_head(struct xy_buf *b)
{
	xy_buf_init(b);
	xy_buf_put_u64(b, 1);
	xy_buf_put_str(b, "true");
	xy_buf_put_u32(b, 1);
	xy_buf_put_u64(b, 0);
	xy_buf_put_u64(b, 0);
	xy_buf_put_u32(b, 0);
	xy_buf_put_u64(b, 0);
	uint8_t key[XY_ID_LEN] = {0};
	xy_buf_put_raw(b, key, XY_ID_LEN);
}

static void t_oversized_counts(void)
{
	struct xy_buf b;
	union xy_msg d;
	char err[256];

	/* Over the limit. */
	task_head(&b);
	xy_buf_put_u32(&b, XY_MAX_ENV + 1);
	XY_CHECK_EQ(xy_msg_decode(XY_MSG_TASK, b.data, b.len, &d, err,
				  sizeof err), -1);
	XY_CHECK(strstr(err, "limit"));
	xy_buf_free(&b);

	/* Within the limit but far more than the bytes left: refused
	 * before any allocation. */
	task_head(&b);
	xy_buf_put_u32(&b, 0);
	xy_buf_put_u32(&b, XY_MAX_FILES);
	XY_CHECK_EQ(xy_msg_decode(XY_MSG_TASK, b.data, b.len, &d, err,
				  sizeof err), -1);
	XY_CHECK(strstr(err, "payload"));
	xy_buf_free(&b);

	xy_buf_init(&b);
	xy_buf_put_u32(&b, XY_MAX_INVENTORY);
	XY_CHECK_EQ(xy_msg_decode(XY_MSG_BYE, b.data, b.len, &d, err,
				  sizeof err), -1);
	xy_buf_free(&b);

	/* Encoding refuses what decoding would refuse, and leaves the
	 * buffer as it was. */
	union xy_msg m;
	sample(XY_MSG_HELLO, &m);
	m.hello.n_items = XY_MAX_INVENTORY + 1;
	xy_buf_init(&b);
	xy_buf_put_u8(&b, 0x77);
	XY_CHECK_EQ(xy_msg_encode(&b, XY_MSG_HELLO, &m), -1);
	XY_CHECK_EQ(b.len, 1);
	XY_CHECK(!b.oom);
	/* A worker's time left past a year is refused both ways. */
	sample(XY_MSG_HELLO, &m);
	m.hello.time_left_ms = XY_MAX_TIME_LEFT_MS + 1;
	XY_CHECK_EQ(xy_msg_encode(&b, XY_MSG_HELLO, &m), -1);
	XY_CHECK_EQ(b.len, 1);
	m.hello.time_left_ms = XY_MAX_TIME_LEFT_MS;
	struct xy_buf hb;
	encode(XY_MSG_HELLO, &m, &hb);
	XY_CHECK_EQ(xy_msg_decode(XY_MSG_HELLO, hb.data + 8, hb.len - 8, &d,
				  err, sizeof err), 0);
	XY_CHECK_EQ(d.hello.time_left_ms, XY_MAX_TIME_LEFT_MS);
	xy_msg_free(XY_MSG_HELLO, &d);
	/* The same bytes with the field one past the limit. */
	size_t at = 8 + 4 + 6 + 4 + 4 + 4 + 8 + 8 + 4 + 4 + 2;
	uint64_t over = XY_MAX_TIME_LEFT_MS + 1;
	for (int i = 0; i < 8; i++)
		hb.data[at + i] = (uint8_t)(over >> (8 * i));
	XY_CHECK_EQ(xy_msg_decode(XY_MSG_HELLO, hb.data + 8, hb.len - 8, &d,
				  err, sizeof err), -1);
	XY_CHECK(strstr(err, "time_left_ms"));
	xy_buf_free(&hb);
	sample(XY_MSG_BYE, &m);
	m.bye.task_ids = NULL; /* a count with no array */
	XY_CHECK_EQ(xy_msg_encode(&b, XY_MSG_BYE, &m), -1);
	XY_CHECK_EQ(b.len, 1);
	xy_buf_free(&b);
	xy_test_check_no_leaks();
}

static void t_oversized_strings(void)
{
	char *big = malloc(XY_MAX_NAME + 2);
	memset(big, 'h', XY_MAX_NAME + 1);
	big[XY_MAX_NAME + 1] = 0;
	union xy_msg m, d;
	struct xy_buf b;
	char err[256];

	sample(XY_MSG_HELLO, &m);
	m.hello.name = big;
	xy_buf_init(&b);
	XY_CHECK_EQ(xy_msg_encode(&b, XY_MSG_HELLO, &m), -1);
	XY_CHECK_EQ(errno, EINVAL);
	xy_buf_free(&b);

	/* By hand: a name one byte over XY_MAX_NAME. */
	xy_buf_init(&b);
	xy_buf_put_str(&b, big);
	XY_CHECK_EQ(xy_msg_decode(XY_MSG_HELLO, b.data, b.len, &d, err,
				  sizeof err), -1);
	XY_CHECK(strstr(err, "name too long"));
	xy_buf_free(&b);
	/* Exactly at the limit is fine for the string. */
	big[XY_MAX_NAME] = 0;
	m.hello.name = big;
	encode(XY_MSG_HELLO, &m, &b);
	XY_CHECK_EQ(xy_msg_decode(XY_MSG_HELLO, b.data + 8, b.len - 8, &d, err,
				  sizeof err), 0);
	XY_CHECK_EQ(strlen(d.hello.name), XY_MAX_NAME);
	xy_msg_free(XY_MSG_HELLO, &d);
	xy_buf_free(&b);

	/* A length field claiming more than the payload holds. */
	xy_buf_init(&b);
	xy_buf_put_u32(&b, 1);
	xy_buf_put_u32(&b, 60000);
	xy_buf_put_raw(&b, "abc", 3);
	XY_CHECK_EQ(xy_msg_decode(XY_MSG_ERROR, b.data, b.len, &d, err,
				  sizeof err), -1);
	XY_CHECK(strstr(err, "truncated"));
	xy_buf_free(&b);

	/* Output (or a call's reply) over XY_MAX_PAYLOAD. */
	sample(XY_MSG_TASK_DONE, &m);
	m.task_done.output_len = XY_MAX_PAYLOAD + 1;
	m.task_done.output = calloc(1, XY_MAX_PAYLOAD + 2);
	xy_buf_init(&b);
	XY_CHECK_EQ(xy_msg_encode(&b, XY_MSG_TASK_DONE, &m), -1);
	free(m.task_done.output);
	xy_buf_free(&b);
	/* A NUL inside a string field. */
	xy_buf_init(&b);
	xy_buf_put_u32(&b, 1);
	xy_buf_put_bytes(&b, "a\0b", 3);
	XY_CHECK_EQ(xy_msg_decode(XY_MSG_ERROR, b.data, b.len, &d, err,
				  sizeof err), -1);
	xy_buf_free(&b);
	free(big);
	xy_test_check_no_leaks();
}

static void expect_rejected(unsigned type, const union xy_msg *m,
			    const char *name)
{
	struct xy_buf b;
	union xy_msg d;
	char err[256] = "";
	encode(type, m, &b);
	XY_CHECK_EQ(xy_msg_decode(type, b.data + 8, b.len - 8, &d, err,
				  sizeof err), -1);
	XY_CHECK(strstr(err, name));
	xy_buf_free(&b);
}

static void t_hostile_sandbox_names(void)
{
	static const char *bad[] = {"../x", "/etc/passwd", "a/../../b", "..",
				    ".", "a//b", "a/", ""};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		union xy_msg m;
		struct xy_task_input in = inputs[1];
		struct xy_task_output out = outputs[0];
		struct xy_done_output dout = done_outputs[0];
		char q[64];
		snprintf(q, sizeof q, "\"%s\"", bad[i]);
		const char *want = bad[i][0] ? q : "empty";

		sample(XY_MSG_TASK, &m);
		in.name = (char *)bad[i];
		m.task.inputs = &in;
		m.task.n_inputs = 1;
		expect_rejected(XY_MSG_TASK, &m, want);

		sample(XY_MSG_TASK, &m);
		out.name = (char *)bad[i];
		m.task.outputs = &out;
		expect_rejected(XY_MSG_TASK, &m, want);

		sample(XY_MSG_TASK_DONE, &m);
		dout.name = (char *)bad[i];
		m.task_done.outputs = &dout;
		m.task_done.n_outputs = 1;
		expect_rejected(XY_MSG_TASK_DONE, &m, want);

		struct xy_submit_input sin = submit_inputs[0];
		char *sout = (char *)bad[i];
		struct xy_result_output rout = result_outputs[0];
		sample(XY_MSG_SUBMIT, &m);
		sin.name = (char *)bad[i];
		m.submit.inputs = &sin;
		m.submit.n_inputs = 1;
		expect_rejected(XY_MSG_SUBMIT, &m, want);
		sample(XY_MSG_SUBMIT, &m);
		m.submit.outputs = &sout;
		m.submit.n_outputs = 1;
		expect_rejected(XY_MSG_SUBMIT, &m, want);
		sample(XY_MSG_RESULT, &m);
		rout.name = (char *)bad[i];
		m.result.outputs = &rout;
		m.result.n_outputs = 1;
		expect_rejected(XY_MSG_RESULT, &m, want);
	}
	xy_test_check_no_leaks();
}

static void t_free_tolerates_null(void)
{
	for (unsigned type = 0; type < XY_MSG_MAX; type++) {
		union xy_msg m;
		memset(&m, 0, sizeof m);
		xy_msg_free(type, &m);
	}
	/* Arrays with counts but stolen pointers. */
	union xy_msg m;
	memset(&m, 0, sizeof m);
	m.task.n_env = 3;
	m.task.n_inputs = 2;
	xy_msg_free(XY_MSG_TASK, &m);
	xy_msg_free(XY_MSG_TASK, NULL);
}

/* HELLO's held tasks and ADOPT: a held id without XY_HELD_BIT, an
 * ADOPT naming a held id as the new one, are refused. */
static void t_held_tasks(void)
{
	union xy_msg m, d;
	struct xy_buf b;
	char err[256];

	sample(XY_MSG_HELLO, &m);
	encode(XY_MSG_HELLO, &m, &b);
	XY_CHECK_EQ(xy_msg_decode(XY_MSG_HELLO, b.data + 8, b.len - 8, &d, err,
				  sizeof err), 0);
	XY_CHECK_EQ(d.hello.n_held, 2);
	XY_CHECK_EQ(d.hello.held[0].id, XY_HELD_BIT | 1);
	XY_CHECK_EQ(d.hello.held[0].key[0], 0x55);
	XY_CHECK_EQ(d.hello.held[0].cores, 2);
	XY_CHECK_EQ(d.hello.held[0].gpus, 1);
	XY_CHECK_EQ(d.hello.held[1].finished, 1);
	xy_msg_free(XY_MSG_HELLO, &d);
	xy_buf_free(&b);

	struct xy_held_task bad[1] = {{.id = 5}};
	m.hello.n_held = 1;
	m.hello.held = bad;
	encode(XY_MSG_HELLO, &m, &b);
	XY_CHECK_EQ(xy_msg_decode(XY_MSG_HELLO, b.data + 8, b.len - 8, &d, err,
				  sizeof err), -1);
	XY_CHECK(strstr(err, "held task 0") != NULL);
	xy_buf_free(&b);

	sample(XY_MSG_ADOPT, &m);
	m.adopt.task_id = XY_HELD_BIT | 4;
	encode(XY_MSG_ADOPT, &m, &b);
	XY_CHECK_EQ(xy_msg_decode(XY_MSG_ADOPT, b.data + 8, b.len - 8, &d, err,
				  sizeof err), -1);
	xy_buf_free(&b);
	xy_test_check_no_leaks();
}

/* Sessions (protocol 14): a RESULT without outputs still carries its
 * number; ATTACH and ACCEPTED keep their fields; a SUBMIT cut before its
 * key is refused. */
static void t_session_messages(void)
{
	union xy_msg m = {0}, d;
	struct xy_buf b;
	char err[256];

	m.result = (struct xy_msg_result){.id = 3, .message = "",
					  .seq = 99};
	encode(XY_MSG_RESULT, &m, &b);
	XY_CHECK_EQ(xy_msg_decode(XY_MSG_RESULT, b.data + 8, b.len - 8, &d,
				  err, sizeof err), 0);
	XY_CHECK_EQ(d.result.seq, 99);
	XY_CHECK_EQ(d.result.n_outputs, 0);
	xy_msg_free(XY_MSG_RESULT, &d);
	xy_buf_free(&b);

	sample(XY_MSG_ATTACH, &m);
	encode(XY_MSG_ATTACH, &m, &b);
	XY_CHECK_EQ(b.len, 8 + 32 + 8);
	XY_CHECK_EQ(xy_msg_decode(XY_MSG_ATTACH, b.data + 8, b.len - 8, &d,
				  err, sizeof err), 0);
	XY_CHECK_EQ(d.attach.session[31], 0x5a);
	XY_CHECK_EQ(d.attach.after, 1ull << 40);
	XY_CHECK_EQ(xy_msg_decode(XY_MSG_ATTACH, b.data + 8, b.len - 9, &d,
				  err, sizeof err), -1);
	xy_buf_free(&b);

	sample(XY_MSG_SUBMIT, &m);
	encode(XY_MSG_SUBMIT, &m, &b);
	XY_CHECK_EQ(xy_msg_decode(XY_MSG_SUBMIT, b.data + 8, b.len - 8 - 1,
				  &d, err, sizeof err), -1);
	xy_buf_free(&b);
	xy_test_check_no_leaks();
}

int main(int argc, char **argv)
{
	static const struct xy_test tests[] = {
		XY_TEST(t_round_trip_every_type),
		XY_TEST(t_input_kinds),
		XY_TEST(t_cache_update_blame),
		XY_TEST(t_task_done_failure),
		XY_TEST(t_decoded_fields),
		XY_TEST(t_chunk_lists),
		XY_TEST(t_client_messages),
		XY_TEST(t_empty_messages),
		XY_TEST(t_truncated_every_length),
		XY_TEST(t_trailing_bytes),
		XY_TEST(t_unknown_types),
		XY_TEST(t_frame_header),
		XY_TEST(t_oversized_counts),
		XY_TEST(t_oversized_strings),
		XY_TEST(t_hostile_sandbox_names),
		XY_TEST(t_free_tolerates_null),
		XY_TEST(t_held_tasks),
		XY_TEST(t_session_messages),
		{0},
	};
	return xy_test_main(argc, argv, tests);
}
