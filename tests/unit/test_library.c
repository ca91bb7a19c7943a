/*
 * test_library.c: the worker's library instances (src/worker/library.c)
 * against a fake manager (fakemgr.c): a real worker runs a small python3
 * library that speaks the instances' protocol on fd 3 and misbehaves on
 * request; calls, parallel instances, large payloads, crashes, bad
 * frames, cancellation, limits and a stop are checked from what comes
 * back.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fakemgr.h"
#include "harness.h"
#include "object.h"
#include "util.h"
#include "xylem.h"

/* A library that speaks the fd-3 protocol: it says hello, then answers
 * each call with "pid:FOO:L:" and the payload reversed, where L says
 * whether lib.py is linked into the call's sandbox ("where" is answered
 * with the sandbox's name). Some payloads make it misbehave. */
static const char echo_py[] =
	"import os, struct, sys, time\n"
	"def rd(n):\n"
	"    b = b''\n"
	"    while len(b) < n:\n"
	"        c = os.read(3, n - len(b))\n"
	"        if not c:\n"
	"            sys.exit(0)\n"
	"        b += c\n"
	"    return b\n"
	"def wr(b):\n"
	"    m = memoryview(struct.pack('<I', len(b)) + b)\n"
	"    while m:\n"
	"        m = m[os.write(3, m):]\n"
	"assert os.getcwd() == os.environ['XYLEM_SANDBOX']\n"
	"print('echo starting', flush=True)\n"
	"wr(b'XYLIB1')\n"
	"while True:\n"
	"    f = rd(struct.unpack('<I', rd(4))[0])\n"
	"    tid, n = struct.unpack_from('<QI', f)\n"
	"    sb = f[12:12 + n].decode()\n"
	"    p = f[12 + n:]\n"
	"    if p == b'die':\n"
	"        print('dying', flush=True)\n"
	"        os._exit(7)\n"
	"    if p == b'term':\n"
	"        os.killpg(0, 15)\n"
	"    if p == b'sleep':\n"
	"        time.sleep(30)\n"
	"    if p == b'nap':\n"
	"        time.sleep(2)\n"
	"    if p == b'eat':\n"
	"        x = b'x' * (200 << 20)\n"
	"        time.sleep(30)\n"
	"    if p == b'bad':\n"
	"        os.write(3, struct.pack('<I', 0xffffffff))\n"
	"        time.sleep(30)\n"
	"    if p == b'out':\n"
	"        open(os.path.join(sb, 'out.txt'), 'w').write('hi')\n"
	"    if p == b'where':\n"
	"        p = os.path.basename(sb).encode()[::-1]\n"
	"    L = os.path.exists(os.path.join(sb, 'lib.py'))\n"
	"    r = b'%d:%s:%d:' % (os.getpid(), "
	"os.environ.get('FOO', '').encode(), L)\n"
	"    wr(struct.pack('<Q', tid) + r + p[::-1])\n";

/* Sends a LIBRARY: name, command, FOO=foo, and input lib.py if given. */
static void define_lib(struct fm *f, const char *name, const char *cmd,
		       const char *foo, const struct xy_task_input *in)
{
	struct xy_env_var env = {"FOO", (char *)foo};
	union xy_msg m;

	fm_task_msg(&m, 0, cmd);
	m.task.library = (char *)name;
	m.task.n_env = foo ? 1 : 0;
	m.task.env = &env;
	m.task.n_inputs = in ? 1 : 0;
	m.task.inputs = (struct xy_task_input *)in;
	fm_send(f, XY_MSG_LIBRARY, &m);
}

static void call_msg(union xy_msg *m, uint64_t id, const char *lib,
		     const char *payload, size_t len,
		     const struct xy_task_input *in)
{
	fm_task_msg(m, id, "");
	m->task.library = (char *)lib;
	m->task.payload = (char *)payload;
	m->task.payload_len = len;
	m->task.n_inputs = in ? 1 : 0;
	m->task.inputs = (struct xy_task_input *)in;
}

/* Makes a call and waits for its TASK_DONE. */
static struct got *call(struct fm *f, uint64_t id, const char *lib,
			const char *payload, const struct xy_task_input *in)
{
	union xy_msg m;
	struct got *g;

	call_msg(&m, id, lib, payload, strlen(payload), in);
	fm_send(f, XY_MSG_TASK, &m);
	g = fm_wait_for(f, XY_MSG_TASK_DONE);
	XY_CHECK_EQ(g->m.task_done.task_id, id);
	return g;
}

/* True if the process has exited (a zombie has: an instance started by
 * a shell that did not exec it is reparented, and init may be slow or,
 * in a container, never reap it). */
static int gone(long pid)
{
	char path[64], *stat, *p;
	size_t len;
	int z;

	if (kill((pid_t)pid, 0) < 0)
		return 1;
	snprintf(path, sizeof path, "/proc/%ld/stat", pid);
	stat = xy_read_file(path, 4096, &len);
	if (!stat)
		return 1;
	p = strrchr(stat, ')');
	z = p && (p[2] == 'Z' || p[2] == 'X');
	free(stat);
	return z;
}

/* The pid at the head of a reply. */
static long reply_pid(const struct got *g)
{
	return strtol(g->m.task_done.output, NULL, 10);
}

/* Fetches echo_py into the worker's cache; in is the input naming it. */
static void stage_echo(struct fm *f, struct xy_task_input *in,
		       uint8_t id[XY_ID_LEN])
{
	union xy_msg m;
	uint64_t size;
	struct got *g;

	fm_serve_text(f, echo_py, id, &size);
	fm_fetch_msg(&m, id, size, xy_xfer_server_port(f->xfer));
	fm_send(f, XY_MSG_FETCH, &m);
	g = fm_wait_for(f, XY_MSG_CACHE_UPDATE);
	XY_CHECK_EQ(g->m.cache_update.status, XY_OBJ_OK);
	fm_got_free(g);
	memset(in, 0, sizeof *in);
	memcpy(in->id, id, XY_ID_LEN);
	in->name = "lib.py";
	in->level = XY_CACHE_WORKFLOW;
}

static void t_library_calls(void)
{
	struct xy_task_output out = {"out.txt", XY_CACHE_WORKER};
	struct xy_task_input in;
	uint8_t id[XY_ID_LEN];
	char sb[PATH_MAX], cmd[PATH_MAX + 64];
	union xy_msg m;
	struct got *g;
	struct fm f;
	long pid;

	fm_start(&f, SECRET, NULL, 1);
	fm_hello(&f);
	stage_echo(&f, &in, id);
	define_lib(&f, "echo", "python3 lib.py", "bar", &in);

	/* Two calls, one instance: its pid, its env, the call's inputs. */
	g = call(&f, 1, "echo", "hello", &in);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_SUCCESS);
	XY_CHECK_EQ(g->m.task_done.failure, XY_FAILURE_NONE);
	XY_CHECK_EQ(g->m.task_done.exit_code, 0);
	XY_CHECK(strstr(g->m.task_done.output, ":bar:1:olleh"));
	XY_CHECK(g->m.task_done.end_us >= g->m.task_done.start_us);
	pid = reply_pid(g);
	XY_CHECK(pid > 0);
	fm_got_free(g);
	g = call(&f, 2, "echo", "abc", &in);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_SUCCESS);
	XY_CHECK_EQ(reply_pid(g), pid);
	XY_CHECK(strstr(g->m.task_done.output, ":bar:1:cba"));
	fm_got_free(g);

	/* Without outputs, and with an input of one component, a call runs
	 * in a pooled directory in place, the input linked in; it is gone
	 * when the call ends, so the next call gets the same directory. */
	g = call(&f, 20, "echo", "where", &in);
	XY_CHECK(strstr(g->m.task_done.output, ":bar:1:.free-"));
	snprintf(sb, sizeof sb, "%s", strstr(g->m.task_done.output, ".free-"));
	fm_got_free(g);
	g = call(&f, 21, "echo", "where", &in);
	XY_CHECK(strstr(g->m.task_done.output, ":bar:1:.free-"));
	XY_CHECK(!strcmp(strstr(g->m.task_done.output, ".free-"), sb));
	fm_got_free(g);
	fm_pathf(cmd, sizeof cmd, "test -z \"$(ls -A %s/sandbox/%s)\"", f.cache,
		 sb);
	XY_CHECK(fm_eventually(cmd));

	/* A call's declared outputs are collected from its sandbox. */
	call_msg(&m, 3, "echo", "out", 3, &in);
	m.task.n_outputs = 1;
	m.task.outputs = &out;
	fm_send(&f, XY_MSG_TASK, &m);
	g = fm_wait_for(&f, XY_MSG_TASK_DONE);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_SUCCESS);
	XY_CHECK_EQ(reply_pid(g), pid);
	XY_CHECK_EQ(g->m.task_done.n_outputs, 1);
	XY_CHECK_EQ(g->m.task_done.outputs[0].size, 2);
	fm_got_free(g);

	/* Only the instance's sandbox is left, with lib.py linked in. */
	fm_pathf(cmd, sizeof cmd, "cd %s/sandbox && test \"$(ls)\" = lib-1 && "
	      "test -f lib-1/lib.py", f.cache);
	XY_CHECK(fm_eventually(cmd));

	/* The instance dies in a call: the call fails with its log, and
	 * says so by its failure, not only by its message. */
	g = call(&f, 4, "echo", "die", &in);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_APP_FAILED);
	XY_CHECK_EQ(g->m.task_done.failure, XY_FAILURE_LIBRARY_EXIT);
	XY_CHECK_EQ(g->m.task_done.exit_code, 7);
	XY_CHECK(!strcmp(g->m.task_done.message,
			 "library echo exited with status 7 during a call"));
	XY_CHECK(strstr(g->m.task_done.output, "echo starting\n"));
	XY_CHECK(strstr(g->m.task_done.output, "dying\n"));
	fm_got_free(g);
	/* Or of a SIGTERM to its whole group from elsewhere, as when a batch
	 * system ends the worker's job: the worker's loss, not the call's
	 * fault. */
	g = call(&f, 40, "echo", "term", &in);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_WORKER_FAILED);
	XY_CHECK(strstr(g->m.task_done.message, "library echo ended by "
						"SIGTERM from outside"));
	fm_got_free(g);

	/* The next call starts a fresh instance. */
	g = call(&f, 5, "echo", "xy", &in);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_SUCCESS);
	XY_CHECK(reply_pid(g) != pid);
	XY_CHECK(strstr(g->m.task_done.output, ":yx"));
	pid = reply_pid(g);
	fm_got_free(g);
	fm_pathf(sb, sizeof sb, "%s/sandbox/lib-1", f.cache);
	XY_CHECK(access(sb, F_OK) < 0);

	/* A new template is for instances started from now on. */
	define_lib(&f, "echo", "python3 lib.py", "baz", &in);
	g = call(&f, 6, "echo", "q", &in);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_SUCCESS);
	XY_CHECK(reply_pid(g) != pid);
	XY_CHECK(strstr(g->m.task_done.output, ":baz:1:q"));
	fm_got_free(g);
	fm_shutdown(&f);
	XY_CHECK(gone(pid));
}

/* Two calls at once get an instance each; a large payload comes back
 * (read in many pieces on both sides). */
static void t_library_parallel_large(void)
{
	const size_t big = 3u << 20;
	struct xy_task_input in;
	uint8_t id[XY_ID_LEN];
	union xy_msg m;
	struct got *g[2];
	char *p = malloc(big);
	const char *r;
	struct fm f;

	XY_CHECK(p);
	for (size_t k = 0; k < big; k++)
		p[k] = (char)('a' + k % 26);
	fm_start(&f, SECRET, NULL, 1);
	fm_hello(&f);
	stage_echo(&f, &in, id);
	define_lib(&f, "echo", "python3 lib.py", NULL, &in);
	/* Busy for 2 s while 2 comes, whatever the machine's load. */
	call_msg(&m, 1, "echo", "nap", 3, &in);
	fm_send(&f, XY_MSG_TASK, &m);
	call_msg(&m, 2, "echo", p, big, &in);
	fm_send(&f, XY_MSG_TASK, &m);
	g[0] = fm_wait_for(&f, XY_MSG_TASK_DONE);
	g[1] = fm_wait_for(&f, XY_MSG_TASK_DONE);
	if (g[0]->m.task_done.task_id == 2) {
		struct got *x = g[0];

		g[0] = g[1];
		g[1] = x;
	}
	XY_CHECK_EQ(g[0]->m.task_done.result, XY_RESULT_SUCCESS);
	XY_CHECK_EQ(g[1]->m.task_done.result, XY_RESULT_SUCCESS);
	XY_CHECK(reply_pid(g[0]) != reply_pid(g[1]));
	r = strchr(strchr(strchr(g[1]->m.task_done.output, ':') + 1, ':') + 1,
		   ':') + 1;
	XY_CHECK_EQ(g[1]->m.task_done.output_len,
		    (size_t)(r - g[1]->m.task_done.output) + big);
	for (size_t k = 0; k < big; k++)
		XY_CHECK(r[k] == p[big - 1 - k]);
	fm_got_free(g[0]);
	fm_got_free(g[1]);
	free(p);
	fm_shutdown(&f);
}

static void t_library_failures(void)
{
	struct xy_task_input in;
	uint8_t id[XY_ID_LEN];
	struct got *g;
	struct fm f;

	fm_start(&f, SECRET, NULL, 1);
	fm_hello(&f);
	g = call(&f, 1, "nope", "x", NULL);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_APP_FAILED);
	XY_CHECK_EQ(g->m.task_done.failure, XY_FAILURE_NONE); /* no instance */
	XY_CHECK(!strcmp(g->m.task_done.message,
			 "library nope is not defined on this worker"));
	fm_got_free(g);

	/* An instance that exits without its hello. */
	define_lib(&f, "broken", "echo starting; exit 5", NULL, NULL);
	g = call(&f, 2, "broken", "x", NULL);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_APP_FAILED);
	XY_CHECK_EQ(g->m.task_done.failure, XY_FAILURE_LIBRARY_START);
	XY_CHECK_EQ(g->m.task_done.exit_code, 5);
	XY_CHECK(!strcmp(g->m.task_done.message,
			 "library broken exited with status 5 before it was "
			 "ready"));
	XY_CHECK(!strcmp(g->m.task_done.output, "starting\n"));
	fm_got_free(g);

	/* One whose first frame is not the hello. */
	define_lib(&f, "rude", "printf '\\003\\000\\000\\000abc' >&3; "
		   "sleep 30", NULL, NULL);
	g = call(&f, 3, "rude", "x", NULL);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_APP_FAILED);
	XY_CHECK_EQ(g->m.task_done.failure, XY_FAILURE_LIBRARY_START);
	XY_CHECK(strstr(g->m.task_done.message, "before it was ready"));
	XY_CHECK(strstr(g->m.task_done.message, "XYLIB1"));
	fm_got_free(g);

	/* A frame over the limit. */
	stage_echo(&f, &in, id);
	define_lib(&f, "echo", "python3 lib.py", NULL, &in);
	g = call(&f, 4, "echo", "bad", &in);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_APP_FAILED);
	XY_CHECK_EQ(g->m.task_done.failure, XY_FAILURE_LIBRARY_EXIT);
	XY_CHECK(strstr(g->m.task_done.message,
			"library echo was killed during a call"));
	XY_CHECK(strstr(g->m.task_done.message, "over the"));
	XY_CHECK(strstr(g->m.task_done.output, "echo starting"));
	fm_got_free(g);
	fm_shutdown(&f);
}

static void t_library_cancel_limit_stop(void)
{
	struct xy_task_input in;
	uint8_t id[XY_ID_LEN];
	char sb[PATH_MAX];
	union xy_msg m;
	struct got *g;
	struct fm f;
	uint64_t t0;
	long pid;

	fm_start(&f, SECRET, NULL, 1);
	fm_hello(&f);
	stage_echo(&f, &in, id);
	define_lib(&f, "echo", "python3 lib.py", NULL, &in);
	g = call(&f, 1, "echo", "warm", &in);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_SUCCESS);
	pid = reply_pid(g);
	fm_got_free(g);

	/* A call stuck in its instance is cancelled: the instance goes. */
	call_msg(&m, 2, "echo", "sleep", 5, &in);
	fm_send(&f, XY_MSG_TASK, &m);
	fm_pump(&f, 200);
	t0 = xy_mono_us();
	memset(&m, 0, sizeof m);
	m.cancel.task_id = 2;
	fm_send(&f, XY_MSG_CANCEL, &m);
	g = fm_wait_for(&f, XY_MSG_TASK_DONE);
	XY_CHECK_EQ(g->m.task_done.task_id, 2);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_CANCELLED);
	XY_CHECK(xy_mono_us() - t0 < 2000000);
	fm_got_free(g);
	fm_pump(&f, 300);
	XY_CHECK(gone(pid));

	/* Past its time limit. */
	call_msg(&m, 3, "echo", "sleep", 5, &in);
	m.task.time_limit_ms = 300;
	fm_send(&f, XY_MSG_TASK, &m);
	g = fm_wait_for(&f, XY_MSG_TASK_DONE);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_RESOURCES_EXHAUSTED);
	XY_CHECK_EQ(g->m.task_done.failure, XY_FAILURE_LIBRARY_EXIT);
	XY_CHECK(strstr(g->m.task_done.message, "time"));
	fm_got_free(g);

	/* Past the call's memory limit (the instance's group, sampled). */
	call_msg(&m, 6, "echo", "eat", 3, &in);
	m.task.memory_mb = 100;
	fm_send(&f, XY_MSG_TASK, &m);
	g = fm_wait_for(&f, XY_MSG_TASK_DONE);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_RESOURCES_EXHAUSTED);
	XY_CHECK(strstr(g->m.task_done.message, "100 MB limit"));
	fm_got_free(g);

	/* SIGTERM with a call in flight: BYE names it; nothing is left. */
	g = call(&f, 4, "echo", "warm", &in);
	pid = reply_pid(g);
	fm_got_free(g);
	call_msg(&m, 5, "echo", "sleep", 5, &in);
	fm_send(&f, XY_MSG_TASK, &m);
	fm_pump(&f, 300);
	kill(f.worker, SIGTERM);
	g = fm_wait_for(&f, XY_MSG_BYE);
	XY_CHECK_EQ(g->m.bye.n_tasks, 1);
	XY_CHECK_EQ(g->m.bye.task_ids[0], 5);
	fm_got_free(g);
	XY_CHECK_EQ(fm_wait_exit(&f), 0);
	XY_CHECK(gone(pid));
	fm_pathf(sb, sizeof sb, "%s/sandbox", f.cache);
	XY_CHECK(fm_dir_empty(sb));
}

/* Many calls in turn: one instance serves them all. A call cancelled
 * while its instance starts leaves that instance for the next call. */
static void t_library_many_calls(void)
{
	const int n = 1000;
	struct xy_task_input in;
	uint8_t id[XY_ID_LEN];
	char cmd[PATH_MAX + 64];
	union xy_msg m;
	struct got *g;
	struct fm f;
	long pid = 0;
	uint64_t t0;

	fm_start(&f, SECRET, NULL, 1);
	fm_hello(&f);
	stage_echo(&f, &in, id);
	define_lib(&f, "echo", "sleep 0.2; python3 lib.py", NULL, &in);
	call_msg(&m, 1, "echo", "x", 1, &in);
	fm_send(&f, XY_MSG_TASK, &m);
	fm_pump(&f, 50);
	memset(&m, 0, sizeof m);
	m.cancel.task_id = 1;
	fm_send(&f, XY_MSG_CANCEL, &m);
	g = fm_wait_for(&f, XY_MSG_TASK_DONE);
	XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_CANCELLED);
	fm_got_free(g);
	fm_pump(&f, 1500); /* the instance is ready, and idle */
	t0 = xy_mono_us();
	for (int k = 2; k <= n; k++) {
		g = call(&f, (uint64_t)k, "echo", "ab", &in);
		XY_CHECK_EQ(g->m.task_done.result, XY_RESULT_SUCCESS);
		XY_CHECK(strstr(g->m.task_done.output, ":ba"));
		if (!pid)
			pid = reply_pid(g);
		XY_CHECK_EQ(reply_pid(g), pid);
		fm_got_free(g);
	}
	if (getenv("XY_TEST_VERBOSE"))
		fprintf(stderr, "%.1f us per call\n",
			(double)(xy_mono_us() - t0) / (n - 1));
	fm_pathf(cmd, sizeof cmd, "test \"$(ls %s/sandbox)\" = lib-1", f.cache);
	XY_CHECK(fm_eventually(cmd));
	fm_shutdown(&f);
}

int main(int argc, char **argv)
{
	int rc = fm_worker_main(argc, argv);

	if (rc >= 0)
		return rc;
	static const struct xy_test tests[] = {
		XY_TEST(t_library_calls),
		XY_TEST(t_library_parallel_large),
		XY_TEST(t_library_failures),
		XY_TEST(t_library_cancel_limit_stop),
		XY_TEST_T(t_library_many_calls, 60),
		{0},
	};
	signal(SIGPIPE, SIG_IGN);
	return xy_test_main(argc, argv, tests);
}
