/*
 * test_worker.c: the worker daemon (src/worker) against a fake manager
 * (fakemgr.c). Each case forks a real worker (xy_worker_main) that
 * connects to a manager played by the test, then drives it with TASK,
 * FETCH, CANCEL, SHUTDOWN and signals and checks what comes back;
 * archives are expanded by a fake tar that can fail as a worker does, and
 * URLs fetched from a fake origin that never answers. Library instances
 * are in test_library.c; test_cache.c covers the cache and the sandbox
 * code alone.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "auth.h"
#include "fakemgr.h"
#include "harness.h"
#include "object.h"
#include "util.h"
#include "worker.h"
#include "xylem.h"

static void t_noop_and_failure(void)
{
	struct fm f;
	struct got *g;

	fm_start(&f, SECRET, NULL, 1);
	fm_hello(&f);
	g = fm_run(&f, 1, "true");
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_SUCCESS);
	XY_CHECK_EQ(g->m.task_done.exit_code, 0);
	XY_CHECK(g->m.task_done.end_us >= g->m.task_done.start_us);
	XY_CHECK(g->m.task_done.start_us > 1600000000ull * 1000000);
	fm_got_free(g);

	g = fm_run(&f, 2, "echo out; echo err >&2; exit 3");
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_APP_FAILED);
	XY_CHECK_EQ(g->m.task_done.exit_code, 3);
	XY_CHECK(!strcmp(g->m.task_done.output, "out\nerr\n"));
	fm_got_free(g);

	g = fm_run(&f, 3, "kill -SEGV $$");
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_APP_FAILED);
	XY_CHECK_EQ(g->m.task_done.exit_code, 128 + SIGSEGV);
	fm_got_free(g);
	/* SIGTERM from elsewhere: a batch system ending the worker's job
	 * (docs/worker.md, "Tasks"); the worker's blame. */
	g = fm_run(&f, 5, "kill -TERM $$");
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_WORKER_FAILED);
	XY_CHECK_EQ(g->m.task_done.exit_code, 128 + SIGTERM);
	XY_CHECK(strstr(g->m.task_done.message, "SIGTERM from outside"));
	fm_got_free(g);
	/* As is 143 (128 + SIGTERM), how a shell or a wrapper reports a
	 * child that the signal killed when it was not killed itself. */
	g = fm_run(&f, 6, "exit 143");
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_WORKER_FAILED);
	XY_CHECK_EQ(g->m.task_done.exit_code, 143);
	fm_got_free(g);

	/* The environment: the sandbox, the cores, no secret. */
	g = fm_run(&f, 4, "test \"$PWD\" = \"$XYLEM_SANDBOX\" && "
		       "test \"$CORES\" = 1 && test \"$OMP_NUM_THREADS\" = 1 "
		       "&& test -z \"$XYLEM_SECRET\"");
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_SUCCESS);
	fm_got_free(g);
	fm_shutdown(&f);
}

static void t_output_ring(void)
{
	struct fm f;
	struct got *g;

	fm_start(&f, SECRET, NULL, 1);
	fm_hello(&f);
	/* 3 MiB of output: the last 1 MiB is kept. */
	g = fm_run(&f, 1, "head -c 3145728 /dev/zero | tr '\\0' a; echo END");
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_SUCCESS);
	XY_CHECK(g->m.task_done.output_truncated);
	XY_CHECK_EQ(g->m.task_done.output_len, XY_MAX_OUTPUT);
	XY_CHECK(!strcmp(g->m.task_done.output + XY_MAX_OUTPUT - 4, "END\n"));
	fm_got_free(g);
	fm_shutdown(&f);
}

static void t_fetch_inputs_outputs(void)
{
	struct xy_task_input in;
	struct xy_task_output out[2];
	uint8_t id[XY_ID_LEN], want[XY_ID_LEN], tok[XY_TOKEN_LEN], kind;
	char back[PATH_MAX], err[256], *body;
	uint64_t size, bytes;
	union xy_msg m;
	struct got *g;
	size_t len;
	struct fm f;

	fm_start(&f, SECRET, NULL, 1);
	fm_hello(&f);
	fm_serve_text(&f, "line\n", id, &size);
	fm_fetch_msg(&m, id, size, xy_xfer_server_port(f.xfer));
	fm_send(&f, XY_MSG_FETCH, &m);
	/* The TASK follows its FETCH at once and waits for the input. */
	fm_task_msg(&m, 7, "cat in/data in/data > out.txt");
	memset(&in, 0, sizeof in);
	memcpy(in.id, id, XY_ID_LEN);
	in.name = "in/data";
	in.level = XY_CACHE_WORKFLOW;
	memset(out, 0, sizeof out);
	out[0].name = "out.txt";
	out[0].level = XY_CACHE_WORKER;
	m.task.n_inputs = 1;
	m.task.inputs = &in;
	m.task.n_outputs = 1;
	m.task.outputs = out;
	fm_send(&f, XY_MSG_TASK, &m);
	g = fm_wait_for(&f, XY_MSG_CACHE_UPDATE);
	XY_CHECK_EQ(g->m.cache_update.status, XY_OBJ_OK);
	XY_CHECK_EQ(g->m.cache_update.size, size);
	fm_got_free(g);
	g = fm_wait_for(&f, XY_MSG_TASK_DONE);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_SUCCESS);
	XY_CHECK_EQ(g->m.task_done.n_outputs, 1);
	XY_CHECK(!strcmp(g->m.task_done.outputs[0].name, "out.txt"));
	XY_CHECK_EQ(g->m.task_done.outputs[0].size, 10);
	memcpy(want, g->m.task_done.outputs[0].id, XY_ID_LEN);
	fm_got_free(g);

	/* The output is served by the worker's transfer server. */
	snprintf(back, sizeof back, "%s/back", xy_test_tmpdir());
	xy_token_make(SECRET, strlen(SECRET), want, ((uint64_t)time(NULL) + 60) * 1000000ull, "w1",
		      tok);
	XY_CHECK_EQ(xy_xfer_fetch("127.0.0.1", f.worker_xfer_port, SECRET,
				  strlen(SECRET), 0, want, tok, "w1", back, 0, &bytes,
				  err, sizeof err),
		    XY_OBJ_OK);
	body = xy_read_file(back, 100, &len);
	XY_CHECK(body && len == 10 && !memcmp(body, "line\nline\n", 10));
	free(body);

	/* A FETCH of a cached object is answered at once. */
	fm_fetch_msg(&m, id, size, xy_xfer_server_port(f.xfer));
	fm_send(&f, XY_MSG_FETCH, &m);
	g = fm_wait_for(&f, XY_MSG_CACHE_UPDATE);
	XY_CHECK_EQ(g->m.cache_update.status, XY_OBJ_OK);
	fm_got_free(g);

	/* A declared output not made fails the task; one made is kept. */
	fm_task_msg(&m, 8, "echo x > a");
	out[0].name = "a";
	out[1].name = "b";
	m.task.n_outputs = 2;
	m.task.outputs = out;
	fm_send(&f, XY_MSG_TASK, &m);
	g = fm_wait_for(&f, XY_MSG_TASK_DONE);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_APP_FAILED);
	XY_CHECK(strstr(g->m.task_done.message, "'b' was not created"));
	XY_CHECK_EQ(g->m.task_done.n_outputs, 1);
	fm_got_free(g);

	/* A command that fails keeps none: what it left (cut short by a
	 * full disk, say) goes with its sandbox. */
	fm_task_msg(&m, 9, "echo x > a; echo y > b; exit 4");
	m.task.n_outputs = 2;
	m.task.outputs = out;
	fm_send(&f, XY_MSG_TASK, &m);
	g = fm_wait_for(&f, XY_MSG_TASK_DONE);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_APP_FAILED);
	XY_CHECK_EQ(g->m.task_done.exit_code, 4);
	XY_CHECK_EQ(g->m.task_done.n_outputs, 0);
	fm_got_free(g);
	(void)kind;
	fm_shutdown(&f);
}

/* Makes a directory object in the manager's directory. */
static void serve_dir(struct fm *f, uint8_t id[XY_ID_LEN], uint64_t *size)
{
	char tmp[PATH_MAX], path[3 * PATH_MAX], hex[2 * XY_ID_LEN + 1];
	char err[256];
	uint8_t kind;

	fm_pathf(tmp, sizeof tmp, "%s/newdir", f->dir);
	fm_pathf(path, sizeof path, "mkdir -p %s/sub && echo one > %s/a && "
	      "echo two > %s/sub/b", tmp, tmp, tmp);
	XY_CHECK(system(path) == 0);
	XY_CHECK(xy_object_hash(tmp, id, &kind, size, err, sizeof err) == 0);
	XY_CHECK_EQ(kind, XY_KIND_DIR);
	xy_hex(id, XY_ID_LEN, hex);
	fm_pathf(path, sizeof path, "%s/%s", f->dir, hex);
	XY_CHECK(rename(tmp, path) == 0);
}

static void t_dirs_forever_unlink(void)
{
	struct xy_task_input in;
	struct xy_task_output out;
	uint8_t id[XY_ID_LEN], oid[XY_ID_LEN], tok[XY_TOKEN_LEN];
	char back[PATH_MAX], err[PATH_MAX + 64];
	uint64_t size, bytes;
	union xy_msg m;
	struct got *g;
	struct fm f;

	fm_start(&f, SECRET, NULL, 1);
	fm_hello(&f);
	serve_dir(&f, id, &size);
	fm_fetch_msg(&m, id, size, xy_xfer_server_port(f.xfer));
	m.fetch.kind = XY_KIND_DIR;
	m.fetch.level = XY_CACHE_FOREVER;
	fm_send(&f, XY_MSG_FETCH, &m);
	g = fm_wait_for(&f, XY_MSG_CACHE_UPDATE);
	XY_CHECK_EQ(g->m.cache_update.status, XY_OBJ_OK);
	fm_got_free(g);

	fm_task_msg(&m, 1, "test -L d && test \"$(cat d/sub/b)\" = two && "
			"mkdir -p o/deep && cp d/a o/deep/a && echo 3 > o/c");
	memset(&in, 0, sizeof in);
	memcpy(in.id, id, XY_ID_LEN);
	in.kind = XY_KIND_DIR;
	in.level = XY_CACHE_FOREVER;
	in.name = "d";
	memset(&out, 0, sizeof out);
	out.name = "o";
	out.level = XY_CACHE_WORKER;
	m.task.n_inputs = 1;
	m.task.inputs = &in;
	m.task.n_outputs = 1;
	m.task.outputs = &out;
	fm_send(&f, XY_MSG_TASK, &m);
	g = fm_wait_for(&f, XY_MSG_TASK_DONE);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_SUCCESS);
	XY_CHECK_EQ(g->m.task_done.n_outputs, 1);
	XY_CHECK_EQ(g->m.task_done.outputs[0].kind, XY_KIND_DIR);
	memcpy(oid, g->m.task_done.outputs[0].id, XY_ID_LEN);
	fm_got_free(g);

	/* The output directory comes back whole. */
	snprintf(back, sizeof back, "%s/back", xy_test_tmpdir());
	xy_token_make(SECRET, strlen(SECRET), oid, ((uint64_t)time(NULL) + 60) * 1000000ull, "w1",
		      tok);
	XY_CHECK_EQ(xy_xfer_fetch("127.0.0.1", f.worker_xfer_port, SECRET,
				  strlen(SECRET), 0, oid, tok, "w1", back, 0, &bytes,
				  err, sizeof err),
		    XY_OBJ_OK);
	fm_pathf(err, sizeof err, "test \"$(cat %s/deep/a)\" = one", back);
	XY_CHECK(system(err) == 0);

	/* Released (the manager has it) and unlinked, it is served no
	 * more. */
	memset(&m, 0, sizeof m);
	memcpy(m.release.id, oid, XY_ID_LEN);
	fm_send(&f, XY_MSG_RELEASE, &m);
	memcpy(m.unlink.id, oid, XY_ID_LEN);
	fm_send(&f, XY_MSG_UNLINK, &m);
	fm_task_msg(&m, 2, "true"); /* a round trip: the UNLINK is done */
	fm_send(&f, XY_MSG_TASK, &m);
	fm_got_free(fm_wait_for(&f, XY_MSG_TASK_DONE));
	xy_rm_rf(back);
	XY_CHECK(xy_xfer_fetch("127.0.0.1", f.worker_xfer_port, SECRET,
			       strlen(SECRET), 0, oid, tok, "w1", back, 0, &bytes, err,
			       sizeof err) != XY_OBJ_OK);
	fm_shutdown(&f);

	/* A restart on the same cache lists the FOREVER directory. */
	fm_start_worker(&f, SECRET, NULL);
	g = fm_wait_for(&f, XY_MSG_HELLO);
	XY_CHECK_EQ(g->m.hello.n_items, 1);
	XY_CHECK(!memcmp(g->m.hello.items[0].id, id, XY_ID_LEN));
	XY_CHECK_EQ(g->m.hello.items[0].kind, XY_KIND_DIR);
	XY_CHECK_EQ(g->m.hello.items[0].size, size);
	fm_got_free(g);
	fm_shutdown(&f);
}

static void t_gpus_and_default_cache(void)
{
	struct fm f;
	struct got *g;

	union xy_msg m;
	char cmd[PATH_MAX];

	setenv("TMPDIR", xy_test_tmpdir(), 1);
	fm_start(&f, SECRET, "--gpus=2", 0);
	fm_hello(&f);
	fm_task_msg(&m, 1, "test \"$CUDA_VISIBLE_DEVICES\" = 0,1");
	m.task.gpus = 2;
	fm_send(&f, XY_MSG_TASK, &m);
	g = fm_wait_for(&f, XY_MSG_TASK_DONE);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_SUCCESS);
	fm_got_free(g);
	snprintf(cmd, sizeof cmd, "ls -d %s/xylem-worker-* >/dev/null 2>&1",
		 xy_test_tmpdir());
	XY_CHECK(system(cmd) == 0);
	fm_shutdown(&f);
	/* The temporary cache is gone with the worker. */
	XY_CHECK(system(cmd) != 0);
}

static void send_gpu_task(struct fm *f, uint64_t id, const char *cmd,
			  uint32_t gpus)
{
	union xy_msg m;

	fm_task_msg(&m, id, cmd);
	m.task.gpus = gpus;
	fm_send(f, XY_MSG_TASK, &m);
}

static void expect_successes(struct fm *f, int n)
{
	while (n-- > 0) {
		struct got *g = fm_wait_for(f, XY_MSG_TASK_DONE);

		XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_SUCCESS);
		fm_got_free(g);
	}
}

/* Inside a Slurm job the worker offers the job's memory and GPUs (its
 * --cores flag wins over the job's), and each task gets ids of the job's
 * GPUs, free ones first, given back when it ends. */
static void t_slurm_job(void)
{
	struct got *g;
	struct fm f;

	setenv("SLURM_JOB_ID", "42", 1);
	setenv("SLURM_CPUS_ON_NODE", "8", 1);
	setenv("SLURM_MEM_PER_NODE", "1234", 1);
	setenv("SLURM_GPUS_ON_NODE", "2", 1);
	setenv("CUDA_VISIBLE_DEVICES", "7,5", 1);
	fm_start(&f, SECRET, NULL, 1);
	g = fm_wait_for(&f, XY_MSG_HELLO);
	XY_CHECK_EQ(g->m.hello.cores, 2);
	XY_CHECK_EQ(g->m.hello.memory_mb, 1234);
	XY_CHECK_EQ(g->m.hello.gpus, 2);
	fm_got_free(g);
	/* Two at once, one GPU each. */
	send_gpu_task(&f, 1, "test \"$CUDA_VISIBLE_DEVICES\" = 7 && sleep 0.3",
		      1);
	send_gpu_task(&f, 2, "test \"$CUDA_VISIBLE_DEVICES\" = 5", 1);
	expect_successes(&f, 2);
	/* Both given back: one task may have both. */
	send_gpu_task(&f, 3, "test \"$CUDA_VISIBLE_DEVICES\" = 7,5", 2);
	expect_successes(&f, 1);
	fm_shutdown(&f);
}

static void t_inputs_missing(void)
{
	struct xy_task_input in;
	uint8_t id[XY_ID_LEN];
	uint64_t size;
	union xy_msg m;
	struct got *g;
	struct fm f;

	fm_start(&f, SECRET, NULL, 1);
	fm_hello(&f);
	/* Neither cached nor fetched. */
	memset(&in, 0, sizeof in);
	memset(in.id, 1, XY_ID_LEN);
	in.name = "nothing";
	fm_task_msg(&m, 1, "true");
	m.task.n_inputs = 1;
	m.task.inputs = &in;
	fm_send(&f, XY_MSG_TASK, &m);
	/* The worker's blame: only the manager knows whether a copy is
	 * left anywhere, and retries or fails the task. */
	g = fm_wait_for(&f, XY_MSG_TASK_DONE);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_WORKER_FAILED);
	XY_CHECK(strstr(g->m.task_done.message, "'nothing'"));
	fm_got_free(g);

	/* A fetch the source cannot answer. */
	fm_serve_text(&f, "gone", id, &size);
	fm_fetch_msg(&m, id, size, xy_xfer_server_port(f.xfer));
	memset(m.fetch.id, 2, XY_ID_LEN);
	xy_token_make(SECRET, strlen(SECRET), m.fetch.id, ((uint64_t)time(NULL) + 60) * 1000000ull, "w1", m.fetch.token);
	memcpy(in.id, m.fetch.id, XY_ID_LEN);
	fm_send(&f, XY_MSG_FETCH, &m);
	fm_task_msg(&m, 2, "true");
	m.task.n_inputs = 1;
	m.task.inputs = &in;
	fm_send(&f, XY_MSG_TASK, &m);
	g = fm_wait_for(&f, XY_MSG_CACHE_UPDATE);
	XY_CHECK(g->m.cache_update.status != XY_OBJ_OK);
	fm_got_free(g);
	g = fm_wait_for(&f, XY_MSG_TASK_DONE);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_WORKER_FAILED);
	fm_got_free(g);
	fm_shutdown(&f);
}

static void t_limits(void)
{
	union xy_msg m;
	struct got *g;
	struct fm f;

	fm_start(&f, SECRET, NULL, 1);
	fm_hello(&f);
	fm_task_msg(&m, 1, "sleep 20");
	m.task.time_limit_ms = 300;
	fm_send(&f, XY_MSG_TASK, &m);
	g = fm_wait_for(&f, XY_MSG_TASK_DONE);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_RESOURCES_EXHAUSTED);
	XY_CHECK(strstr(g->m.task_done.message, "time"));
	XY_CHECK(g->m.task_done.end_us - g->m.task_done.start_us < 3000000);
	fm_got_free(g);

	/* tail holds a 200 MB line in memory until its input ends. */
	fm_task_msg(&m, 2, "(head -c 200000000 /dev/zero; sleep 20) | tail");
	m.task.memory_mb = 50;
	fm_send(&f, XY_MSG_TASK, &m);
	g = fm_wait_for(&f, XY_MSG_TASK_DONE);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_RESOURCES_EXHAUSTED);
	XY_CHECK(strstr(g->m.task_done.message, "memory"));
	XY_CHECK(strstr(g->m.task_done.message, "50 MB limit"));
	fm_got_free(g);

	fm_task_msg(&m, 3, "head -c 30000000 /dev/zero > big; sleep 20");
	m.task.disk_mb = 10;
	fm_send(&f, XY_MSG_TASK, &m);
	g = fm_wait_for(&f, XY_MSG_TASK_DONE);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_RESOURCES_EXHAUSTED);
	XY_CHECK(strstr(g->m.task_done.message, "disk"));
	fm_got_free(g);
	fm_shutdown(&f);
}

static void t_cancel(void)
{
	union xy_msg m;
	struct got *g;
	struct fm f;
	uint64_t t0;

	fm_start(&f, SECRET, NULL, 1);
	fm_hello(&f);
	fm_task_msg(&m, 5, "sleep 30");
	fm_send(&f, XY_MSG_TASK, &m);
	fm_pump(&f, 200);
	t0 = xy_mono_us();
	memset(&m, 0, sizeof m);
	m.cancel.task_id = 5;
	fm_send(&f, XY_MSG_CANCEL, &m);
	g = fm_wait_for(&f, XY_MSG_TASK_DONE);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_CANCELLED);
	XY_CHECK(xy_mono_us() - t0 < 2000000);
	fm_got_free(g);
	/* The worker goes on. */
	g = fm_run(&f, 6, "true");
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_SUCCESS);
	fm_got_free(g);
	fm_shutdown(&f);
}


static void t_sigterm_bye(void)
{
	char sb[PATH_MAX];
	union xy_msg m;
	struct got *g;
	struct fm f;

	fm_start(&f, SECRET, NULL, 1);
	fm_hello(&f);
	fm_task_msg(&m, 11, "sleep 30");
	fm_send(&f, XY_MSG_TASK, &m);
	fm_task_msg(&m, 12, "sleep 30");
	fm_send(&f, XY_MSG_TASK, &m);
	fm_pump(&f, 300);
	kill(f.worker, SIGTERM);
	g = fm_wait_for(&f, XY_MSG_BYE);
	XY_CHECK_EQ(g->m.bye.n_tasks, 2);
	XY_CHECK(g->m.bye.task_ids[0] + g->m.bye.task_ids[1] == 23);
	fm_got_free(g);
	XY_CHECK_EQ(fm_wait_exit(&f), 0);
	fm_pathf(sb, sizeof sb, "%s/sandbox", f.cache);
	XY_CHECK(fm_dir_empty(sb));
	/* No TASK_DONE for the tasks given back. */
	for (struct got *x = f.head; x; x = x->next)
		XY_CHECK(x->type != XY_MSG_TASK_DONE);
}

static void t_stop_during_fetch(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof sa;
	struct xy_task_input in;
	union xy_msg m;
	struct got *g;
	struct fm f;
	uint64_t t0;
	int fd;

	/* A source that accepts and then says nothing. */
	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	XY_CHECK(bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
	XY_CHECK(listen(fd, 4) == 0);
	XY_CHECK(getsockname(fd, (struct sockaddr *)&sa, &len) == 0);

	fm_start(&f, SECRET, NULL, 1);
	fm_hello(&f);
	memset(&in, 0, sizeof in);
	memset(in.id, 5, XY_ID_LEN);
	in.name = "slow";
	fm_fetch_msg(&m, in.id, 1, ntohs(sa.sin_port));
	fm_send(&f, XY_MSG_FETCH, &m);
	fm_task_msg(&m, 9, "true");
	m.task.n_inputs = 1;
	m.task.inputs = &in;
	fm_send(&f, XY_MSG_TASK, &m);
	fm_pump(&f, 300);
	t0 = xy_mono_us();
	kill(f.worker, SIGTERM);
	g = fm_wait_for(&f, XY_MSG_BYE);
	XY_CHECK_EQ(g->m.bye.n_tasks, 1);
	XY_CHECK_EQ(g->m.bye.task_ids[0], 9);
	fm_got_free(g);
	XY_CHECK_EQ(fm_wait_exit(&f), 0);
	XY_CHECK(xy_mono_us() - t0 < 5000000);
	close(fd);
}

static void t_bad_secret(void)
{
	struct fm f;

	fm_start(&f, "not the secret", NULL, 1);
	XY_CHECK_EQ(fm_wait_exit(&f), 1);
}

/* Many short tasks in turn, two at a time, as a manager keeps a two-core
 * worker busy: every one is reported once, in whatever order. */
static void t_many_tasks(void)
{
	const int n = 500;
	char *seen = calloc(n + 1, 1);
	int done = 0, sent = 0;
	union xy_msg m;
	struct fm f;

	XY_CHECK(seen);
	fm_start(&f, SECRET, NULL, 1);
	fm_hello(&f);
	while (sent < 2) {
		fm_task_msg(&m, (uint64_t)++sent, "true");
		fm_send(&f, XY_MSG_TASK, &m);
	}
	while (done < n) {
		struct got *g = fm_wait_for(&f, XY_MSG_TASK_DONE);
		uint64_t id = g->m.task_done.task_id;

		XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_SUCCESS);
		XY_CHECK(id >= 1 && id <= (uint64_t)n && !seen[id]);
		seen[id] = 1;
		fm_got_free(g);
		done++;
		if (sent < n) {
			fm_task_msg(&m, (uint64_t)++sent, "true");
			fm_send(&f, XY_MSG_TASK, &m);
		}
	}
	free(seen);
	fm_shutdown(&f);
}

/* --------------------------------------------- archives and URLs */

/* Serves the file at src (moved) as an object of the fake manager. */
static void serve_file(struct fm *f, const char *src, uint8_t id[XY_ID_LEN],
		       uint64_t *size)
{
	char path[PATH_MAX], hex[2 * XY_ID_LEN + 1], err[256];
	uint8_t kind;

	XY_CHECK(xy_object_hash(src, id, &kind, size, err, sizeof err) == 0);
	xy_hex(id, XY_ID_LEN, hex);
	fm_pathf(path, sizeof path, "%s/%s", f->dir, hex);
	XY_CHECK(rename(src, path) == 0);
}

/* Runs `cmd` with archive id unpacked at d; fetches it first if asked.
 * Returns the TASK_DONE. */
static struct got *run_unpacked(struct fm *f, uint64_t tid,
				const uint8_t id[XY_ID_LEN], uint64_t size,
				int fetch, const char *cmd)
{
	struct xy_task_input in;
	union xy_msg m;
	struct got *g;

	if (fetch) {
		fm_fetch_msg(&m, id, size, xy_xfer_server_port(f->xfer));
		fm_send(f, XY_MSG_FETCH, &m);
	}
	memset(&in, 0, sizeof in);
	memcpy(in.id, id, XY_ID_LEN);
	in.name = "d";
	in.kind = XY_INPUT_UNPACK;
	in.level = XY_CACHE_WORKFLOW;
	fm_task_msg(&m, tid, cmd);
	m.task.n_inputs = 1;
	m.task.inputs = &in;
	fm_send(f, XY_MSG_TASK, &m);
	if (fetch) {
		g = fm_wait_for(f, XY_MSG_CACHE_UPDATE);
		XY_CHECK_EQ(g->m.cache_update.status, XY_OBJ_OK);
		fm_got_free(g);
	}
	g = fm_wait_for(f, XY_MSG_TASK_DONE);
	XY_CHECK_EQ(g->m.task_done.task_id, tid);
	return g;
}

/* Lines in a file: how many times the fake tar ran. */
static int lines_in(const char *path)
{
	size_t len = 0;
	char *s = xy_read_file(path, 1 << 16, &len);
	int n = 0;

	for (size_t i = 0; s && i < len; i++)
		n += s[i] == '\n';
	free(s);
	return n;
}

/* A tar killed by a signal (as by the OOM killer) is this worker's fault:
 * the task fails with WORKER_FAILED, for the manager to run it again, and
 * the failure is forgotten, so the next task expands the archive. A tar
 * that exits with an error is the archive's: INPUT_MISSING, remembered. */
static void t_unpack_fault_not_remembered(void)
{
	char bin[PATH_MAX], tar[PATH_MAX], log[PATH_MAX], src[PATH_MAX];
	char arch[PATH_MAX], cmd[4 * PATH_MAX], path[8192];
	uint8_t id[XY_ID_LEN], bad[XY_ID_LEN];
	uint64_t size, bad_size;
	struct got *g;
	struct fm f;

	/* The first run of tar kills itself; the others log and run the
	 * real one. */
	fm_pathf(bin, sizeof bin, "%s/bin", xy_test_tmpdir());
	fm_pathf(tar, sizeof tar, "%s/tar", bin);
	fm_pathf(log, sizeof log, "%s/tar.log", xy_test_tmpdir());
	fm_pathf(cmd, sizeof cmd, "mkdir -p %s && printf '#!/bin/sh\\n"
	      "echo run >> %s\\n"
	      "[ -e %s.once ] || { : > %s.once; kill -9 $$; }\\n"
	      "PATH=\"$XY_TEST_REAL_PATH\" exec tar \"$@\"\\n' > %s && "
	      "chmod +x %s", bin, log, log, log, tar, tar);
	XY_CHECK(system(cmd) == 0);
	fm_pathf(src, sizeof src, "%s/src", xy_test_tmpdir());
	fm_pathf(arch, sizeof arch, "%s/a.tgz", xy_test_tmpdir());
	fm_pathf(cmd, sizeof cmd, "mkdir -p %s && echo alpha > %s/a.txt && "
	      "tar -czf %s -C %s .", src, src, arch, src);
	XY_CHECK(system(cmd) == 0);
	setenv("XY_TEST_REAL_PATH", getenv("PATH"), 1);
	fm_pathf(path, sizeof path, "%s:%s", bin, getenv("PATH"));
	setenv("PATH", path, 1); /* the worker inherits it */

	fm_start(&f, SECRET, NULL, 1);
	fm_hello(&f);
	serve_file(&f, arch, id, &size);
	g = run_unpacked(&f, 1, id, size, 1, "cat d/a.txt");
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_WORKER_FAILED);
	XY_CHECK(strstr(g->m.task_done.message, "killed by signal 9"));
	fm_got_free(g);
	g = run_unpacked(&f, 2, id, size, 0, "cat d/a.txt");
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_SUCCESS);
	XY_CHECK(!strcmp(g->m.task_done.output, "alpha\n"));
	fm_got_free(g);
	XY_CHECK_EQ(lines_in(log), 2);

	/* Not an archive: tar exits with status 2, once for both tasks. */
	fm_serve_text(&f, "not an archive at all\n", bad, &bad_size);
	for (uint64_t tid = 3; tid <= 4; tid++) {
		g = run_unpacked(&f, tid, bad, bad_size, tid == 3, "ls d");
		XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_INPUT_MISSING);
		XY_CHECK(strstr(g->m.task_done.message,
				"tar exited with status 2"));
		fm_got_free(g);
	}
	XY_CHECK_EQ(lines_in(log), 3);
	fm_shutdown(&f);
}

/* A fake origin on the fake manager's loop: it accepts HTTP connections
 * and never answers, until the test closes them. */
struct origin {
	uv_tcp_t server;
	uv_tcp_t *clients[8];
	int n, port;
};

static void on_origin_conn(uv_stream_t *s, int status)
{
	struct origin *o = s->data;
	uv_tcp_t *c = calloc(1, sizeof *c);

	XY_CHECK(status == 0 && c && o->n < 8);
	uv_tcp_init(s->loop, c);
	XY_CHECK(uv_accept(s, (uv_stream_t *)c) == 0);
	o->clients[o->n++] = c;
}

static void origin_start(struct fm *f, struct origin *o)
{
	struct sockaddr_in sa;
	struct sockaddr_storage ss;
	int len = sizeof ss;

	memset(o, 0, sizeof *o);
	uv_tcp_init(&f->loop, &o->server);
	o->server.data = o;
	uv_ip4_addr("127.0.0.1", 0, &sa);
	XY_CHECK(uv_tcp_bind(&o->server, (struct sockaddr *)&sa, 0) == 0);
	XY_CHECK(uv_listen((uv_stream_t *)&o->server, 8, on_origin_conn) == 0);
	uv_tcp_getsockname(&o->server, (struct sockaddr *)&ss, &len);
	o->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static void free_handle(uv_handle_t *h)
{
	free(h);
}

/* Hangs up on the clients from..n-1: their downloads fail. */
static void origin_hang_up(struct origin *o, int from)
{
	for (int i = from; i < o->n; i++)
		uv_close((uv_handle_t *)o->clients[i], free_handle);
}

static void fetch_url(struct fm *f, uint64_t req, const char *url)
{
	union xy_msg m;

	memset(&m, 0, sizeof m);
	m.fetch_url.req_id = req;
	m.fetch_url.level = XY_CACHE_WORKFLOW;
	m.fetch_url.url = (char *)url;
	fm_send(f, XY_MSG_FETCH_URL, &m);
}

/* At most two downloads at once, the rest queued on the worker: its
 * thread pool (4 threads) must keep room for outputs, expansions and
 * sandbox removals. And a file:// URL is refused by libcurl itself. */
static void t_url_downloads_capped(void)
{
	char url[128];
	struct origin o;
	struct got *g;
	struct fm f;

	fm_start(&f, SECRET, NULL, 1);
	fm_hello(&f);
	fetch_url(&f, 1, "file:///etc/passwd");
	g = fm_wait_for(&f, XY_MSG_URL_DONE);
	XY_CHECK(g->m.url_done.status != XY_OBJ_OK);
	XY_CHECK(strstr(g->m.url_done.text, "file"));
	fm_got_free(g);

	origin_start(&f, &o);
	snprintf(url, sizeof url, "http://127.0.0.1:%d/x", o.port);
	for (uint64_t r = 2; r <= 5; r++)
		fetch_url(&f, r, url);
	fm_pump(&f, 1000);
	XY_CHECK_EQ(o.n, 2);
	/* A task still runs meanwhile (its sandbox goes on the pool). */
	g = fm_run(&f, 9, "echo ok");
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_SUCCESS);
	fm_got_free(g);
	origin_hang_up(&o, 0);
	for (int i = 0; i < 2; i++) {
		g = fm_wait_for(&f, XY_MSG_URL_DONE);
		XY_CHECK(g->m.url_done.status != XY_OBJ_OK);
		fm_got_free(g);
	}
	fm_pump(&f, 500);
	XY_CHECK_EQ(o.n, 4);
	origin_hang_up(&o, 2);
	for (int i = 0; i < 2; i++) {
		g = fm_wait_for(&f, XY_MSG_URL_DONE);
		fm_got_free(g);
	}
	uv_close((uv_handle_t *)&o.server, NULL);
	fm_shutdown(&f);
}

static void t_usage(void)
{
	char *help[] = {"worker", "--help", NULL};
	char *bad[] = {"worker", "127.0.0.1:1", "--cores", "zero", NULL};
	char *unknown[] = {"worker", "127.0.0.1:1", "--frobnicate", NULL};
	char *none[] = {"worker", NULL};
	char *nosecret[] = {"worker", "127.0.0.1:1", NULL};

	XY_CHECK(freopen("/dev/null", "w", stdout));
	XY_CHECK(freopen("/dev/null", "w", stderr));
	XY_CHECK_EQ(xy_worker_main(2, help), 0);
	XY_CHECK_EQ(xy_worker_main(4, bad), 2);
	XY_CHECK_EQ(xy_worker_main(3, unknown), 2);
	XY_CHECK_EQ(xy_worker_main(1, none), 2);
	unsetenv("XYLEM_SECRET");
	XY_CHECK_EQ(xy_worker_main(2, nosecret), 2);
}

int main(int argc, char **argv)
{
	int rc = fm_worker_main(argc, argv);

	if (rc >= 0)
		return rc;
	static const struct xy_test tests[] = {
		XY_TEST(t_usage),
		XY_TEST(t_noop_and_failure),
		XY_TEST(t_output_ring),
		XY_TEST(t_fetch_inputs_outputs),
		XY_TEST(t_dirs_forever_unlink),
		XY_TEST(t_gpus_and_default_cache),
		XY_TEST(t_slurm_job),
		XY_TEST(t_inputs_missing),
		XY_TEST(t_limits),
		XY_TEST(t_cancel),
		XY_TEST(t_sigterm_bye),
		XY_TEST(t_stop_during_fetch),
		XY_TEST(t_bad_secret),
		XY_TEST_T(t_many_tasks, 60),
		XY_TEST(t_unpack_fault_not_remembered),
		XY_TEST(t_url_downloads_capped),
		{0},
	};
	signal(SIGPIPE, SIG_IGN);
	return xy_test_main(argc, argv, tests);
}
