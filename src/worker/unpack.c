/*
 * unpack.c: archive expansions on libuv's thread pool, one per archive
 * per worker, and the activation of software environments; see unpack.h.
 * A job lives in the table while its expansion runs, and stays there if
 * the archive proved bad (the archive is content-addressed: it would fail
 * again), so that later tasks fail at once with the same reason; a fault
 * of this worker (XY_UNPACK_FAULT) is forgotten, and tried again by the
 * next task that needs the expansion. A finished
 * expansion is known by its directory existing: the cache removes that
 * directory with its archive, and nothing here can go stale.
 */
#include "unpack.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "object.h"
#include "util.h"

extern char **environ;

#define ERR_TAIL 300 /* bytes of the unpacker's stderr kept in a reason */

enum { J_RUNNING, J_FAILED };

struct job {
	uv_work_t req;
	struct xy_unpacker *u;
	uint8_t id[XY_ID_LEN];
	int state;
	char archive[PATH_MAX]; /* the cached archive */
	char tmp[PATH_MAX];     /* the expansion while it is made */
	char dest[PATH_MAX];    /* its place once complete */
	char text[512];         /* why it failed */
	int end;                /* an xy_unpack_end, once it ended */
	struct job *next;
};

struct xy_unpacker {
	uv_loop_t *loop;
	struct xy_cache *cache;
	xy_unpack_done_fn cb;
	void *arg;
	struct job *jobs;
	uint64_t seq;
	int quiet;
	char text[512]; /* why the last need failed without a job to keep */
};

struct xy_unpacker *xy_unpacker_create(uv_loop_t *loop,
				       struct xy_cache *cache,
				       xy_unpack_done_fn cb, void *arg)
{
	struct xy_unpacker *u = calloc(1, sizeof *u);

	if (!u)
		return NULL;
	u->loop = loop;
	u->cache = cache;
	u->cb = cb;
	u->arg = arg;
	return u;
}

void xy_unpacker_destroy(struct xy_unpacker *u)
{
	if (!u)
		return;
	for (struct job *j = u->jobs, *n; j; j = n) {
		n = j->next;
		free(j);
	}
	free(u);
}

void xy_unpacker_quiet(struct xy_unpacker *u)
{
	if (u)
		u->quiet = 1;
}

static struct job *find(struct xy_unpacker *u, const uint8_t id[XY_ID_LEN])
{
	struct job *j = u->jobs;

	while (j && memcmp(j->id, id, XY_ID_LEN))
		j = j->next;
	return j;
}

/* ------------------------------------------------ on the thread pool */

/* The command for an archive: zip by its magic, else tar, which finds
 * gzip, bzip2 and xz compression by itself. */
static void choose_tool(const char *archive, const char *dir, char **argv)
{
	unsigned char magic[4] = {0};
	int fd = open(archive, O_RDONLY | O_CLOEXEC);

	if (fd >= 0) {
		if (read(fd, magic, sizeof magic) < 0)
			magic[0] = 0;
		close(fd);
	}
	if (!memcmp(magic, "PK\3\4", 4)) {
		argv[0] = "unzip", argv[1] = "-q", argv[2] = (char *)archive;
		argv[3] = "-d", argv[4] = (char *)dir, argv[5] = NULL;
		return;
	}
	argv[0] = "tar", argv[1] = "--no-same-owner", argv[2] = "-xf";
	argv[3] = (char *)archive, argv[4] = "-C", argv[5] = (char *)dir;
	argv[6] = NULL;
}

/* The last ERR_TAIL bytes of the tool's stderr, on one line. */
static void read_tail(const char *path, char *out, size_t len)
{
	size_t n = 0;
	char *s = xy_read_file(path, 1 << 20, &n), *p;

	out[0] = '\0';
	if (!s)
		return;
	p = n > ERR_TAIL ? s + n - ERR_TAIL : s;
	for (char *q = p; *q; q++)
		if (*q == '\n' || *q == '\r')
			*q = ' ';
	snprintf(out, len, "%s", p);
	free(s);
}

/* Runs the tool with its output in errpath. Returns its wait status, or
 * -1 with errno if it could not start. */
static int run_tool(char **argv, const char *errpath)
{
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int r, ws;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, errpath,
					 O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (r) {
		errno = r;
		return -1;
	}
	while (waitpid(pid, &ws, 0) < 0)
		if (errno != EINTR)
			return -1;
	return ws;
}

/* Classes the tool's end: only a non-zero exit status is the archive's
 * doing (tar and unzip say so of a corrupt or truncated archive); a
 * signal (the OOM killer, an operator) or a failure to start is this
 * worker's, and may not happen again. */
static int tool_end(struct job *j, char **argv, int ws, const char *tail)
{
	if (ws < 0) {
		snprintf(j->text, sizeof j->text, "cannot run %s: %s",
			 argv[0], strerror(errno));
		return XY_UNPACK_FAULT;
	}
	if (WIFSIGNALED(ws)) {
		snprintf(j->text, sizeof j->text, "cannot unpack the archive: "
			 "%s was killed by signal %d", argv[0], WTERMSIG(ws));
		return XY_UNPACK_FAULT;
	}
	if (!WIFEXITED(ws) || WEXITSTATUS(ws)) {
		snprintf(j->text, sizeof j->text,
			 "cannot unpack the archive: %s exited with status %d%s"
			 "%s", argv[0], WIFEXITED(ws) ? WEXITSTATUS(ws) : -1,
			 *tail ? ": " : "", tail);
		return XY_UNPACK_BAD;
	}
	return XY_UNPACK_DONE;
}

static void unpack_work(uv_work_t *req)
{
	struct job *j = req->data;
	char errpath[PATH_MAX + 8], tail[ERR_TAIL + 1], *argv[8];
	int ws;

	j->end = XY_UNPACK_FAULT;
	snprintf(errpath, sizeof errpath, "%s.err", j->tmp);
	if (mkdir(j->tmp, 0755) < 0) {
		snprintf(j->text, sizeof j->text, "cannot make %.300s: %s", j->tmp,
			 strerror(errno));
		return;
	}
	choose_tool(j->archive, j->tmp, argv);
	ws = run_tool(argv, errpath);
	read_tail(errpath, tail, sizeof tail);
	unlink(errpath);
	j->end = tool_end(j, argv, ws, tail);
	if (j->end == XY_UNPACK_DONE && rename(j->tmp, j->dest) < 0) {
		snprintf(j->text, sizeof j->text, "cannot move the expansion "
			 "into place: %s", strerror(errno));
		j->end = XY_UNPACK_FAULT;
	}
	if (j->end != XY_UNPACK_DONE) {
		xy_rm_rf(j->tmp);
		return;
	}
	/* Shared by every task on this worker: none may change it. */
	if (xy_object_make_readonly(j->dest) < 0)
		XY_LOGW("unpack", "cannot make %s read-only: %s", j->dest,
			strerror(errno));
}

/* ------------------------------------------------------- on the loop */

/* Takes j out of the table. */
static void unlink_job(struct xy_unpacker *u, struct job *j)
{
	struct job **pp = &u->jobs;

	while (*pp != j)
		pp = &(*pp)->next;
	*pp = j->next;
}

static void unpack_done(uv_work_t *req, int status)
{
	struct job *j = req->data;
	struct xy_unpacker *u = j->u;
	char hex[2 * XY_ID_LEN + 1];

	xy_cache_decref(u->cache, j->id);
	if (status < 0) {
		j->end = XY_UNPACK_FAULT;
		snprintf(j->text, sizeof j->text, "expansion cancelled");
	}
	xy_hex(j->id, XY_ID_LEN, hex);
	if (j->end == XY_UNPACK_DONE)
		XY_LOGI("unpack", "unpacked %.12s into %s", hex, j->dest);
	else
		XY_LOGW("unpack", "archive %.12s: %s%s", hex, j->text,
			j->end == XY_UNPACK_BAD ? "" : " (tried again when "
			"next needed)");
	j->state = J_FAILED;
	if (!u->quiet)
		u->cb(u->arg, j->id, j->end, j->text);
	/* Only a bad archive is remembered: a success is known by its
	 * directory, and a fault may not happen again. */
	if (j->end != XY_UNPACK_BAD) {
		unlink_job(u, j);
		free(j);
	}
}

/* Fills a new job's paths; the archive must be a cached file. Returns
 * 0, or how it failed (an xy_unpack_end) with j->text set. */
static int job_paths(struct xy_unpacker *u, struct job *j)
{
	char hex[2 * XY_ID_LEN + 1];
	uint8_t kind;

	xy_hex(j->id, XY_ID_LEN, hex);
	if (xy_cache_lookup(u->cache, j->id, j->archive, sizeof j->archive,
			    &kind) < 0) {
		snprintf(j->text, sizeof j->text, "the archive is not cached");
		return XY_UNPACK_FAULT;
	}
	if (kind != XY_KIND_FILE) {
		snprintf(j->text, sizeof j->text,
			 "a directory is not an archive");
		return XY_UNPACK_BAD;
	}
	if (snprintf(j->tmp, sizeof j->tmp, "%s/unpack-%s-%" PRIu64,
		     xy_cache_tmp(u->cache), hex, ++u->seq) >=
		    (int)sizeof j->tmp ||
	    xy_cache_unpacked_path(u->cache, j->id, j->dest,
				   sizeof j->dest) < 0) {
		snprintf(j->text, sizeof j->text, "cache path too long");
		return XY_UNPACK_FAULT;
	}
	return 0;
}

/* Queues j's expansion. Returns 0, or how it failed with j->text set. */
static int job_start(struct xy_unpacker *u, struct job *j)
{
	int r = job_paths(u, j);

	if (r)
		return r;
	/* The archive stays while its expansion is made. */
	if (xy_cache_incref(u->cache, j->id) < 0) {
		snprintf(j->text, sizeof j->text, "the archive left the cache");
		return XY_UNPACK_FAULT;
	}
	if (uv_queue_work(u->loop, &j->req, unpack_work, unpack_done) < 0) {
		xy_cache_decref(u->cache, j->id);
		snprintf(j->text, sizeof j->text, "cannot queue the expansion");
		return XY_UNPACK_FAULT;
	}
	return 0;
}

int xy_unpacker_need(struct xy_unpacker *u, const uint8_t id[XY_ID_LEN],
		     const char **text)
{
	struct job *j = find(u, id);
	char path[PATH_MAX];
	struct stat st;
	int r;

	if (j) {
		*text = j->text;
		return j->state == J_RUNNING ? 0 : j->end;
	}
	if (xy_cache_unpacked_path(u->cache, id, path, sizeof path) == 0 &&
	    lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return 1;
	*text = u->text;
	if (!(j = calloc(1, sizeof *j))) {
		snprintf(u->text, sizeof u->text, "out of memory");
		return XY_UNPACK_FAULT;
	}
	memcpy(j->id, id, XY_ID_LEN);
	j->u = u;
	j->req.data = j;
	j->state = J_RUNNING;
	if ((r = job_start(u, j)) != 0) {
		j->state = J_FAILED;
		j->end = r;
		snprintf(u->text, sizeof u->text, "%s", j->text);
		if (r == XY_UNPACK_FAULT) {
			free(j);
			return r;
		}
	}
	j->next = u->jobs;
	u->jobs = j;
	return r;
}

int xy_unpack_input_path(struct xy_cache *c, const struct xy_task_input *in,
			 char *path, size_t len, uint8_t *kind)
{
	struct stat st;

	if (in->kind < XY_INPUT_UNPACK)
		return xy_cache_lookup(c, in->id, path, len, kind);
	if (xy_cache_unpacked_path(c, in->id, path, len) < 0)
		return -1;
	if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode)) {
		errno = ENOENT;
		return -1;
	}
	*kind = XY_KIND_DIR;
	return 0;
}

/* ------------------------------------------------------- activation */

static const char *env_get(const struct xy_env *env, const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; i < env->n && env->v[i]; i++)
		if (!strncmp(env->v[i], name, n) && env->v[i][n] == '=')
			return env->v[i] + n + 1;
	return NULL;
}

int xy_unpack_activate(struct xy_env *env, const char *sandbox,
		       const struct xy_task_input *in, uint32_t n,
		       const char *command, char **wrapped)
{
	const char *path, *name = NULL;
	char *root = NULL, *bin = NULL, *script = NULL;
	int r = -1;

	*wrapped = NULL;
	for (uint32_t i = 0; i < n && !name; i++)
		if (in[i].kind == XY_INPUT_ENV)
			name = in[i].name;
	if (!name)
		return 0;
	path = env_get(env, "PATH");
	if (asprintf(&root, "%s/%s", sandbox, name) < 0)
		return -1;
	if (asprintf(&bin, "%s/bin%s%s", root, path && *path ? ":" : "",
		     path ? path : "") < 0)
		bin = NULL;
	if (asprintf(&script, "%s/xylem-env.sh", root) < 0)
		script = NULL;
	if (!bin || !script)
		goto out;
	if (xy_env_set(env, "VIRTUAL_ENV", root) < 0 ||
	    xy_env_set(env, "XYLEM_ENVIRONMENT", root) < 0 ||
	    xy_env_set(env, "PATH", bin) < 0)
		goto out;
	r = 0;
	if (command && access(script, R_OK) == 0 &&
	    asprintf(wrapped, ". \"$XYLEM_ENVIRONMENT/xylem-env.sh\" || "
		     "exit 127\n%s", command) < 0) {
		*wrapped = NULL;
		r = -1;
	}
out:
	free(root);
	free(bin);
	free(script);
	return r;
}
