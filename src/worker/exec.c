/*
 * exec.c: sandboxes, task environments, and the processes that run tasks:
 * spawning with posix_spawn in a process group of their own, capturing their
 * output into a ring, and a monitor that enforces memory, disk and time
 * limits; see exec.h. Pairs with tasks.c (task processes) and library.c
 * (library instances), its users besides the tests.
 */
#include "exec.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "simplecmd.h"
#include "util.h"

#define TICK_MS 100      /* monitor period */
#define DU_EVERY_MS 1000 /* at most one disk measurement a second */
#define GRACE_MS 2000    /* wait for output after exit at most this long */
#define DU_MAX_DEPTH 128
#define READ_CHUNK 65536

/* ----------------------------------------------------------- sandboxes */

/* Makes the parent directories of sandbox/name, refusing to pass through
 * anything but a plain directory: a symbolic link there (an input directory
 * linked in earlier) would lead out of the sandbox. */
static int make_parents(char *path, size_t base, const char *name, char *err,
			size_t errlen)
{
	struct stat st;
	char *s;

	for (s = path + base + 1; (s = strchr(s, '/')); s++) {
		*s = '\0';
		if (mkdir(path, 0755) < 0 &&
		    (errno != EEXIST || lstat(path, &st) < 0 ||
		     !S_ISDIR(st.st_mode))) {
			int e = errno == EEXIST ? ENOTDIR : errno;

			xy_fail(err, errlen, e,
				"sandbox name '%s': '%s' is not a plain "
				"directory", name, path + base + 1);
			*s = '/';
			return -1;
		}
		*s = '/';
	}
	return 0;
}

static int sandbox_path(const char *sandbox, const char *name, char *path,
			size_t len, char *err, size_t errlen)
{
	int n;

	if (xy_check_sandbox_name(name, err, errlen) < 0) {
		errno = EINVAL;
		return -1;
	}
	n = snprintf(path, len, "%s/%s", sandbox, name);
	if (n < 0 || (size_t)n >= len)
		return xy_fail(err, errlen, ENAMETOOLONG,
			       "sandbox name '%s' is too long", name);
	return 0;
}

int xy_sandbox_link(const char *sandbox, const char *name, const char *src,
		    uint8_t kind, char *err, size_t errlen)
{
	char path[PATH_MAX];
	int r;

	if (sandbox_path(sandbox, name, path, sizeof path, err, errlen) < 0 ||
	    make_parents(path, strlen(sandbox), name, err, errlen) < 0)
		return -1;
	if (kind == XY_KIND_DIR) {
		r = symlink(src, path);
	} else {
		r = link(src, path);
		if (r < 0 &&
		    (errno == EXDEV || errno == EMLINK || errno == EPERM))
			r = symlink(src, path);
	}
	if (r < 0 && errno == EEXIST)
		return xy_fail(err, errlen, EEXIST,
			       "sandbox name '%s' is used twice", name);
	if (r < 0)
		return xy_fail(err, errlen, errno, "cannot link input '%s': %s",
			       name, strerror(errno));
	return 0;
}

/* Copies a regular file to a fresh name in the sandbox (for an output that
 * is a symbolic link to a file outside it). */
static int copy_in(const char *sandbox, const char *src, char *out,
		   size_t outlen, char *err, size_t errlen)
{
	char buf[READ_CHUNK];
	struct stat st;
	int in, fd, r = -1;
	ssize_t n;

	if (snprintf(out, outlen, "%s/.xylem-copy-XXXXXX", sandbox) >=
	    (int)outlen)
		return xy_fail(err, errlen, ENAMETOOLONG, "path too long");
	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return xy_fail(err, errlen, errno, "cannot read %s: %s", src,
			       strerror(errno));
	fd = mkostemp(out, O_CLOEXEC);
	if (fd < 0) {
		xy_fail(err, errlen, errno, "cannot copy %s: %s", src,
			strerror(errno));
		close(in);
		return -1;
	}
	while ((n = read(in, buf, sizeof buf)) > 0)
		if (xy_write_all(fd, buf, (size_t)n) < 0)
			break;
	if (n == 0 && fstat(in, &st) == 0 && fchmod(fd, st.st_mode & 0777) == 0)
		r = 0;
	else
		xy_fail(err, errlen, errno, "cannot copy %s: %s", src,
			strerror(errno));
	close(in);
	close(fd);
	if (r < 0)
		unlink(out);
	return r;
}

/* Checks that no parent of the name is a symbolic link or missing. */
static int check_parents(char *path, size_t base, const char *name, char *err,
			 size_t errlen)
{
	struct stat st;
	char *s;

	for (s = path + base + 1; (s = strchr(s, '/')); s++) {
		int r;

		*s = '\0';
		r = lstat(path, &st);
		if (r == 0 && S_ISLNK(st.st_mode)) {
			xy_fail(err, errlen, ELOOP,
				"output '%s' lies under the symbolic link '%s'",
				name, path + base + 1);
			*s = '/';
			return -1;
		}
		*s = '/';
		if (r < 0 || !S_ISDIR(st.st_mode))
			return xy_fail(err, errlen, ENOENT,
				       "output '%s' was not created", name);
	}
	return 0;
}

/* The output is a symbolic link: take its target if inside the sandbox,
 * copy it in if it is a file outside. */
static int follow_output(const char *sandbox, const char *name, char *path,
			 size_t pathlen, char *err, size_t errlen)
{
	char real[PATH_MAX];
	size_t n = strlen(sandbox);
	struct stat st;

	if (!realpath(path, real) || stat(real, &st) < 0)
		return xy_fail(err, errlen, ENOENT,
			       "output '%s' is a dangling symbolic link", name);
	if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
		return xy_fail(err, errlen, EINVAL,
			       "output '%s' is not a file or directory", name);
	if (!strncmp(real, sandbox, n) && real[n] == '/') {
		if (strlen(real) >= pathlen)
			return xy_fail(err, errlen, ENAMETOOLONG,
				       "output '%s': path too long", name);
		strcpy(path, real);
		return 0;
	}
	if (S_ISDIR(st.st_mode))
		return xy_fail(err, errlen, EISDIR,
			       "output '%s' is a symbolic link to a directory "
			       "outside the sandbox", name);
	return copy_in(sandbox, real, path, pathlen, err, errlen);
}

int xy_sandbox_output(const char *sandbox, const char *name, char *path,
		      size_t pathlen, char *err, size_t errlen)
{
	struct stat st;

	if (sandbox_path(sandbox, name, path, pathlen, err, errlen) < 0 ||
	    check_parents(path, strlen(sandbox), name, err, errlen) < 0)
		return -1;
	if (lstat(path, &st) < 0)
		return xy_fail(err, errlen, errno == ENOENT ? ENOENT : errno,
			       "output '%s' was not created", name);
	if (S_ISLNK(st.st_mode))
		return follow_output(sandbox, name, path, pathlen, err,
				     errlen);
	if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
		return xy_fail(err, errlen, EINVAL,
			       "output '%s' is not a file or directory", name);
	return 0;
}

/* --------------------------------------------------------- environment */

static int name_is(const char *entry, const char *name, size_t n)
{
	return !strncmp(entry, name, n) && entry[n] == '=';
}

static int env_push(struct xy_env *env, char *s)
{
	if (env->n + 2 > env->cap) {
		size_t cap = env->cap ? env->cap * 2 : 64;
		char **v = realloc(env->v, cap * sizeof *v);

		if (!v)
			return -1;
		env->v = v;
		env->cap = cap;
	}
	env->v[env->n++] = s;
	env->v[env->n] = NULL;
	return 0;
}

int xy_env_init(struct xy_env *env, char *const *base,
		const char *const *drop)
{
	memset(env, 0, sizeof *env);
	if (env_push(env, NULL) < 0)
		return -1;
	env->n = 0;
	for (; base && *base; base++) {
		const char *const *d;
		int skip = 0;

		for (d = drop; d && *d && !skip; d++)
			skip = name_is(*base, *d, strlen(*d));
		if (!skip && env_push(env, *base) < 0) {
			xy_env_free(env);
			return -1;
		}
	}
	return 0;
}

int xy_env_set(struct xy_env *env, const char *name, const char *value)
{
	size_t n = strlen(name), i;
	char *s;

	if (env->n_own + 1 > env->cap_own) {
		size_t cap = env->cap_own ? env->cap_own * 2 : 8;
		char **own = realloc(env->own, cap * sizeof *own);

		if (!own)
			return -1;
		env->own = own;
		env->cap_own = cap;
	}
	if (asprintf(&s, "%s=%s", name, value) < 0)
		return -1;
	env->own[env->n_own++] = s;
	for (i = 0; i < env->n; i++) {
		if (name_is(env->v[i], name, n)) {
			env->v[i] = s;
			return 0;
		}
	}
	return env_push(env, s);
}

void xy_env_free(struct xy_env *env)
{
	for (size_t i = 0; i < env->n_own; i++)
		free(env->own[i]);
	free(env->own);
	free(env->v);
	memset(env, 0, sizeof *env);
}

/* ----------------------------------------------------------- the ring */

struct ring {
	char *data;
	size_t max;             /* bytes kept */
	size_t cap, len, start; /* start != 0 only once len == max */
	int truncated;
};

static int ring_grow(struct ring *r, size_t need)
{
	size_t cap = r->cap ? r->cap : 4096;
	char *d;

	if (need <= r->cap)
		return 0;
	while (cap < need)
		cap *= 2;
	if (cap > r->max)
		cap = r->max;
	d = realloc(r->data, cap);
	if (!d)
		return -1;
	r->data = d;
	r->cap = cap;
	return 0;
}

/* Appends n bytes, keeping only the last r->max. */
static void ring_append(struct ring *r, const char *p, size_t n)
{
	const size_t max = r->max;
	size_t w, first;

	if (n >= max) {
		r->truncated |= r->len > 0 || n > max;
		p += n - max;
		n = max;
		r->len = 0;
		r->start = 0;
	}
	if (ring_grow(r, r->len + n < max ? r->len + n : max) < 0) {
		r->truncated = 1; /* out of memory: lose this piece */
		return;
	}
	if (r->len + n <= max) {
		memcpy(r->data + r->len, p, n);
		r->len += n;
		return;
	}
	w = (r->start + r->len) % max;
	first = n < max - w ? n : max - w;
	memcpy(r->data + w, p, first);
	memcpy(r->data, p + first, n - first);
	r->start = (r->start + r->len + n - max) % max;
	r->len = max;
	r->truncated = 1;
}

/* Returns the contents in order as a malloc'd NUL-terminated string and
 * empties the ring. */
static char *ring_take(struct ring *r, size_t *len)
{
	char *s = malloc(r->len + 1);
	size_t first;

	if (s) {
		first = r->cap ? r->cap - r->start : 0;
		if (first > r->len)
			first = r->len;
		if (first)
			memcpy(s, r->data + r->start, first);
		if (r->len > first)
			memcpy(s + first, r->data, r->len - first);
		s[r->len] = '\0';
		*len = r->len;
	} else {
		*len = 0;
	}
	free(r->data);
	memset(r, 0, sizeof *r);
	return s;
}

/* ---------------------------------------------------------- processes */

struct xy_exec {
	uv_loop_t *loop;
	uv_timer_t tick;
	int ticking;
	int closing;
	int tick_closed;
	struct xy_proc *procs; /* every process not yet freed */
	size_t nprocs;
	size_t live; /* spawned and not released */
	long page_size;
	char readbuf[READ_CHUNK]; /* one read at a time on the loop */
};

struct xy_proc {
	struct xy_exec *x;
	struct xy_proc *prev, *next;
	uv_poll_t exitpoll; /* readable on pidfd when the shell exits */
	uv_pipe_t out;
	int pid;
	int pidfd;
	int holds; /* open handles plus a disk measurement in flight */
	unsigned exited : 1, eof : 1, done : 1, released : 1, killed : 1,
		du_busy : 1;
	int over; /* killed past a limit */
	int log_fd; /* a copy of the output goes here; 0: none */
	int64_t exit_status;
	int term_signal;
	uint64_t start_ms, exit_ms, last_du_ms;
	uint64_t memory_mb, disk_mb, time_limit_ms;
	uint64_t rss_pages; /* of the whole group, last sample */
	char *cwd;
	struct ring ring;
	char message[160];
	xy_proc_done_cb on_done;
	void *arg;
};

struct du_req {
	uv_work_t req;
	struct xy_proc *p;
	char *path;
	uint64_t bytes;
};

static void free_proc(struct xy_proc *p)
{
	struct xy_exec *x = p->x;

	if (p->prev)
		p->prev->next = p->next;
	else
		x->procs = p->next;
	if (p->next)
		p->next->prev = p->prev;
	x->nprocs--;
	free(p->ring.data);
	free(p->cwd);
	if (p->log_fd > 0)
		close(p->log_fd);
	free(p);
	if (x->closing && x->tick_closed && !x->nprocs)
		free(x);
}

static void unhold(struct xy_proc *p)
{
	if (--p->holds == 0)
		free_proc(p);
}

static void on_handle_closed(uv_handle_t *h)
{
	unhold(h->data);
}

static void kill_group(struct xy_proc *p)
{
	if (p->pid > 0 && kill(-p->pid, SIGKILL) < 0 && errno != ESRCH)
		XY_LOGW("exec", "cannot kill process group %d: %s", p->pid,
			strerror(errno));
}

static void on_tick(uv_timer_t *t);

static void tick_start(struct xy_exec *x)
{
	if (!x->ticking && !x->closing) {
		uv_timer_start(&x->tick, on_tick, TICK_MS, TICK_MS);
		x->ticking = 1;
	}
}

static void finish(struct xy_proc *p)
{
	struct xy_proc_result r;

	memset(&r, 0, sizeof r);
	p->done = 1;
	r.signal = p->term_signal;
	if (p->over) {
		r.end = XY_PROC_LIMIT;
		snprintf(r.message, sizeof r.message, "%s", p->message);
	} else if (p->term_signal == SIGTERM ||
		   (!p->term_signal && p->exit_status == 128 + SIGTERM)) {
		/* Before KILLED: the worker sends only SIGKILL, so this came
		 * from outside even when the worker has killed the group
		 * since (a library instance whose socket closed first). */
		r.end = XY_PROC_TERMINATED;
	} else if (p->killed) {
		r.end = XY_PROC_KILLED;
	} else if (p->term_signal) {
		r.end = XY_PROC_SIGNALED;
	} else {
		r.end = XY_PROC_EXITED;
	}
	r.exit_code = p->term_signal ? 128 + p->term_signal
				     : (int)p->exit_status;
	r.truncated = p->ring.truncated;
	r.output = ring_take(&p->ring, &r.output_len);
	p->on_done(p, &r, p->arg);
}

static void maybe_finish(struct xy_proc *p)
{
	if (!p->done && !p->released && p->exited && p->eof)
		finish(p);
}

static void on_pidfd_closed(uv_handle_t *h)
{
	struct xy_proc *p = h->data;

	close(p->pidfd);
	p->pidfd = -1;
	unhold(p);
}

/* The shell exited: reap it. A process released before it exited is
 * still reaped here, and only then is its handle closed. */
static void on_pidfd(uv_poll_t *h, int status, int events)
{
	struct xy_proc *p = h->data;
	int ws;

	if (waitpid(p->pid, &ws, WNOHANG) != p->pid)
		return;
	uv_poll_stop(h);
	uv_close((uv_handle_t *)h, on_pidfd_closed);
	p->exited = 1;
	p->exit_status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 0;
	p->term_signal = WIFSIGNALED(ws) ? WTERMSIG(ws) : 0;
	p->exit_ms = uv_now(p->x->loop);
	/* The task ends with its shell: what it left running goes too. */
	kill_group(p);
	if (p->released)
		return;
	if (!p->eof)
		tick_start(p->x);
	maybe_finish(p);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	struct xy_proc *p = h->data;

	buf->base = p->x->readbuf;
	buf->len = sizeof p->x->readbuf;
}

/* Appends output to the process's log file (--log-dir). A small local
 * write; one that fails stops the copy, never the process. */
static void log_copy(struct xy_proc *p, const char *d, size_t n)
{
	while (p->log_fd > 0 && n) {
		ssize_t w = write(p->log_fd, d, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			close(p->log_fd);
			p->log_fd = 0;
			return;
		}
		d += w;
		n -= (size_t)w;
	}
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct xy_proc *p = s->data;

	if (n > 0) {
		ring_append(&p->ring, buf->base, (size_t)n);
		log_copy(p, buf->base, (size_t)n);
	} else if (n < 0) {
		p->eof = 1;
		uv_read_stop(s);
		maybe_finish(p);
	}
}

/* ------------------------------------------------------------ monitor */

/* Marks p as over a limit and kills its group; the exit callback then
 * reports it as LIMIT with this message. */
static void over_limit(struct xy_proc *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void over_limit(struct xy_proc *p, const char *fmt, ...)
{
	va_list ap;

	if (p->over || p->exited || p->done)
		return;
	va_start(ap, fmt);
	vsnprintf(p->message, sizeof p->message, fmt, ap);
	va_end(ap);
	p->over = 1;
	kill_group(p);
}

/* Reads the process group and resident pages of one process from
 * /proc/<pid>/stat: "pid (comm) state ppid pgrp ... rss ...", where comm
 * may hold spaces and parentheses, so fields are counted from the last
 * ')'. rss is field 24, pgrp field 5. */
static int read_stat(const char *pid, long *pgrp, uint64_t *rss)
{
	char path[64], buf[1024], *p;
	ssize_t n;
	int fd, field;

	snprintf(path, sizeof path, "/proc/%s/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p)
		return -1;
	for (p++, field = 3; field <= 24; field++) {
		while (*p == ' ')
			p++;
		if (!*p)
			return -1;
		if (field == 5)
			*pgrp = strtol(p, NULL, 10);
		else if (field == 24)
			*rss = strtoull(p, NULL, 10);
		while (*p && *p != ' ')
			p++;
	}
	return 0;
}

/* One pass over /proc sums the resident memory of every monitored group. */
static void sample_memory(struct xy_exec *x)
{
	struct xy_proc *p;
	struct dirent *e;
	DIR *d;

	for (p = x->procs; p; p = p->next)
		p->rss_pages = 0;
	d = opendir("/proc");
	if (!d)
		return;
	while ((e = readdir(d))) {
		long pgrp;
		uint64_t rss;

		if (e->d_name[0] < '1' || e->d_name[0] > '9' ||
		    read_stat(e->d_name, &pgrp, &rss) < 0)
			continue;
		for (p = x->procs; p; p = p->next)
			if (p->pid == pgrp && p->memory_mb && !p->exited)
				p->rss_pages += rss;
	}
	closedir(d);
}

/* Bytes of the files a task wrote under dfd. Files with more than one link
 * are the task's inputs (hard links into the cache) and are not counted;
 * symbolic links are not followed. */
static uint64_t du_at(int dfd, int depth)
{
	DIR *d = fdopendir(dfd);
	struct dirent *e;
	uint64_t sum = 0;

	if (!d) {
		close(dfd);
		return 0;
	}
	while ((e = readdir(d))) {
		struct stat st;
		int fd;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
		    fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (S_ISREG(st.st_mode) && st.st_nlink == 1)
			sum += (uint64_t)st.st_blocks * 512;
		if (!S_ISDIR(st.st_mode))
			continue;
		sum += (uint64_t)st.st_blocks * 512;
		if (depth >= DU_MAX_DEPTH)
			continue;
		fd = openat(dirfd(d), e->d_name,
			    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0)
			sum += du_at(fd, depth + 1);
	}
	closedir(d);
	return sum;
}

static void du_work(uv_work_t *req)
{
	struct du_req *d = req->data;
	int fd = open(d->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	d->bytes = fd >= 0 ? du_at(fd, 0) : 0;
}

static void du_after(uv_work_t *req, int status)
{
	struct du_req *d = req->data;
	struct xy_proc *p = d->p;
	uint64_t mb = d->bytes >> 20;

	p->du_busy = 0;
	p->last_du_ms = uv_now(p->x->loop);
	if (status == 0 && !p->released && mb > p->disk_mb)
		over_limit(p, "disk %llu MB over the %llu MB limit",
			   (unsigned long long)mb,
			   (unsigned long long)p->disk_mb);
	free(d->path);
	free(d);
	unhold(p);
}

/* Measures the sandbox on the thread pool, so a large tree never stalls
 * the loop. */
static void du_start(struct xy_proc *p)
{
	struct du_req *d = calloc(1, sizeof *d);

	if (!d || !(d->path = strdup(p->cwd))) {
		free(d);
		return;
	}
	d->p = p;
	d->req.data = d;
	if (uv_queue_work(p->x->loop, &d->req, du_work, du_after) < 0) {
		free(d->path);
		free(d);
		return;
	}
	p->du_busy = 1;
	p->holds++;
}

/* Checks one running process against its limits. Returns 1 if it still
 * needs the monitor. */
static int check_limits(struct xy_proc *p, uint64_t now)
{
	uint64_t ms = now - p->start_ms;
	uint64_t mb = p->rss_pages * (uint64_t)p->x->page_size >> 20;

	if (p->time_limit_ms && ms > p->time_limit_ms)
		over_limit(p, "time %.1f s over the %.1f s limit", ms / 1e3,
			   p->time_limit_ms / 1e3);
	if (p->memory_mb && mb > p->memory_mb)
		over_limit(p, "memory %llu MB over the %llu MB limit",
			   (unsigned long long)mb,
			   (unsigned long long)p->memory_mb);
	if (p->disk_mb && !p->du_busy && now - p->last_du_ms >= DU_EVERY_MS)
		du_start(p);
	return p->time_limit_ms || p->memory_mb || p->disk_mb;
}

static void on_tick(uv_timer_t *t)
{
	struct xy_exec *x = t->data;
	uint64_t now = uv_now(x->loop);
	struct xy_proc *p, *next;
	int need = 0, mem = 0;

	for (p = x->procs; p; p = p->next)
		mem |= p->memory_mb && !p->exited && !p->released;
	if (mem)
		sample_memory(x);
	for (p = x->procs; p; p = next) {
		next = p->next;
		if (p->done || p->released)
			continue;
		if (!p->exited) {
			need |= check_limits(p, now);
		} else if (now - p->exit_ms >= GRACE_MS) {
			/* Something that left the group holds the pipe. */
			p->eof = 1;
			uv_read_stop((uv_stream_t *)&p->out);
			maybe_finish(p);
		} else {
			need = 1;
		}
	}
	if (!need) {
		uv_timer_stop(&x->tick);
		x->ticking = 0;
	}
}

/* ------------------------------------------------- spawning and ending */

struct xy_exec *xy_exec_create(uv_loop_t *loop)
{
	struct xy_exec *x = calloc(1, sizeof *x);

	if (!x)
		return NULL;
	x->loop = loop;
	x->page_size = sysconf(_SC_PAGESIZE);
	if (x->page_size <= 0)
		x->page_size = 4096;
	uv_timer_init(loop, &x->tick);
	x->tick.data = x;
	return x;
}

static void on_tick_closed(uv_handle_t *h)
{
	struct xy_exec *x = h->data;

	x->tick_closed = 1;
	if (!x->nprocs)
		free(x);
}

void xy_exec_destroy(struct xy_exec *x)
{
	if (!x || x->closing)
		return;
	x->closing = 1;
	uv_close((uv_handle_t *)&x->tick, on_tick_closed);
}

size_t xy_exec_live(const struct xy_exec *x)
{
	return x->live;
}

static struct xy_proc *proc_new(struct xy_exec *x, const struct xy_proc_opts *o)
{
	struct xy_proc *p = calloc(1, sizeof *p);

	if (!p)
		return NULL;
	if (o->disk_mb && !(p->cwd = strdup(o->cwd))) {
		free(p);
		return NULL;
	}
	p->x = x;
	p->memory_mb = o->memory_mb;
	p->disk_mb = o->disk_mb;
	p->time_limit_ms = o->time_limit_ms;
	p->ring.max = o->log_max ? o->log_max : XY_MAX_OUTPUT;
	p->log_fd = o->log_fd;
	p->on_done = o->on_done;
	p->arg = o->arg;
	p->next = x->procs;
	if (x->procs)
		x->procs->prev = p;
	x->procs = p;
	x->nprocs++;
	return p;
}

/*
 * Starts /bin/sh -c COMMAND (or, for a command the shell would only split
 * into words, the program itself: spawn_direct) with stdout and stderr on
 * the write end of one pipe, so the two interleave as the task wrote
 * them, stdin on /dev/null, in a session (and so a process group) of its own. posix_spawn rather
 * than uv_spawn: glibc starts the child with vfork semantics instead of
 * copying the worker's page tables, which is most of the cost of a short
 * task. The exit is watched through a pidfd on the loop.
 *
 * Every descriptor of the worker is close-on-exec; the child keeps only
 * what dup2 gives it, since dup2 clears that flag on the new descriptor.
 * A descriptor for fd 3 that is itself below 4 is first copied higher, so
 * that neither the dup2 onto 0-2 clobbers it nor a dup2 onto itself (which
 * would keep the flag on older C libraries) is needed.
 */
/*
 * The child of a task under an account of its own (o->as_user). It
 * runs between fork and exec, so it calls only what is safe there: it
 * sets the signals and descriptors as posix_spawn would, drops root for
 * good (groups, then group, then user; and checks that root cannot be
 * had back), then enters the sandbox as that account.
 */
static void child_as_user(const struct xy_proc_opts *o, char **args, int wfd,
			  int fd3)
{
	static const char why[] = "xylem worker: cannot switch to the task's"
				  " account\n";
	struct sigaction dfl;
	sigset_t none;
	int nul;

	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	for (int s = 1; s < NSIG; s++)
		sigaction(s, &dfl, NULL); /* SIGKILL, SIGSTOP: EINVAL */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (setsid() < 0 || nul < 0 || dup2(wfd, 1) < 0 || dup2(wfd, 2) < 0 ||
	    (fd3 >= 0 && dup2(fd3, 3) < 0) ||
	    (nul == 0 ? fcntl(0, F_SETFD, 0) : dup2(nul, 0)) < 0)
		_exit(126);
	if (setgroups(1, &o->gid) < 0 || setgid(o->gid) < 0 ||
	    setuid(o->uid) < 0 || setuid(0) == 0 || chdir(o->cwd) < 0) {
		ssize_t w = write(2, why, sizeof why - 1);
		(void)w;
		_exit(126);
	}
	execve("/bin/sh", args, o->env);
	_exit(127);
}

/* fork, not posix_spawn: the switch of account needs code in the child.
 * It costs the copy of the worker's page tables that posix_spawn's vfork
 * avoids. Returns 0 or an errno value, as posix_spawn does. */
static int spawn_as_user(pid_t *pid, const struct xy_proc_opts *o,
			 char **args, int wfd, int fd3)
{
	pid_t c = fork();
	if (c < 0)
		return errno;
	if (c == 0)
		child_as_user(o, args, wfd, fd3);
	*pid = c;
	return 0;
}

/* A command that sh would only split into words (simplecmd.h) is run
 * without it: posix_spawn straight to the program, one process start a
 * task fewer. Returns what posix_spawn does, or -1 when the command is
 * the shell's (then nothing was started). */
static int spawn_direct(pid_t *pid, const struct xy_proc_opts *o,
			const posix_spawn_file_actions_t *fa,
			const posix_spawnattr_t *at)
{
	char *argv[XY_SIMPLECMD_MAX_WORDS + 1], *buf, path[PATH_MAX];
	int r = -1;

	if (!(buf = malloc(strlen(o->command) + 1)))
		return -1;
	if (xy_simplecmd_parse(o->command, buf, argv) > 0 &&
	    xy_simplecmd_find(argv[0], o->env, path, sizeof path) == 0)
		r = posix_spawn(pid, path, fa, at, argv, o->env);
	free(buf);
	return r;
}

static int spawn(struct xy_proc *p, const struct xy_proc_opts *o, int wfd)
{
	char *args[] = {"sh", "-c", (char *)o->command, NULL};
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, dfl;
	int r, fd3 = -1, copy = -1;
	pid_t pid;

	if (o->give_fd3) {
		fd3 = o->fd3;
		if (fd3 < 4) {
			fd3 = copy = fcntl(o->fd3, F_DUPFD_CLOEXEC, 4);
			if (fd3 < 0)
				return -errno;
		}
	}
	if (o->as_user) {
		r = spawn_as_user(&pid, o, args, wfd, fd3);
		if (copy >= 0)
			close(copy);
		if (r)
			return -r;
		goto started;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, wfd, 1);
	posix_spawn_file_actions_adddup2(&fa, wfd, 2);
	if (fd3 >= 0)
		posix_spawn_file_actions_adddup2(&fa, fd3, 3);
	posix_spawn_file_actions_addchdir_np(&fa, o->cwd);
	posix_spawnattr_init(&at);
	sigemptyset(&none);
	sigfillset(&dfl);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &dfl);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID |
					      POSIX_SPAWN_SETSIGMASK |
					      POSIX_SPAWN_SETSIGDEF);
	/* A program that could not be started (not executable, a script
	 * with no #! line) goes to the shell, which says why or runs it. */
	r = spawn_direct(&pid, o, &fa, &at);
	if (r != 0)
		r = posix_spawn(&pid, "/bin/sh", &fa, &at, args, o->env);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (copy >= 0)
		close(copy);
	if (r)
		return -r;
started:
	p->pid = pid;
	p->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (p->pidfd < 0) {
		r = -errno;
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		return r;
	}
	uv_poll_init(p->x->loop, &p->exitpoll, p->pidfd);
	p->exitpoll.data = p;
	return uv_poll_start(&p->exitpoll, UV_READABLE, on_pidfd);
}

struct xy_proc *xy_proc_spawn(struct xy_exec *x, const struct xy_proc_opts *o,
			      char *err, size_t errlen)
{
	struct xy_proc *p;
	uv_file fds[2];
	int r;

	p = proc_new(x, o);
	if (!p) {
		if (o->log_fd > 0)
			close(o->log_fd);
		xy_fail(err, errlen, ENOMEM, "out of memory");
		return NULL;
	}
	r = uv_pipe(fds, 0, 0);
	if (r < 0) {
		xy_fail(err, errlen, -r, "cannot make a pipe: %s",
			uv_strerror(r));
		free_proc(p);
		return NULL;
	}
	uv_pipe_init(x->loop, &p->out, 0);
	p->out.data = p;
	p->holds = 1; /* the pipe; the pidfd's poll handle adds one */
	r = uv_pipe_open(&p->out, fds[0]);
	if (r < 0) {
		close(fds[0]);
		uv_close((uv_handle_t *)&p->out, on_handle_closed);
		close(fds[1]);
		p->holds--;
		p->released = 1;
		xy_fail(err, errlen, -r, "cannot open a pipe: %s",
			uv_strerror(r));
		return NULL;
	}
	p->pidfd = -1;
	r = spawn(p, o, fds[1]);
	close(fds[1]);
	if (p->pidfd >= 0)
		p->holds++;
	if (r < 0) {
		p->released = 1;
		uv_close((uv_handle_t *)&p->out, on_handle_closed);
		if (p->pidfd >= 0) {
			kill_group(p);
			waitpid(p->pid, NULL, 0);
			uv_close((uv_handle_t *)&p->exitpoll, on_pidfd_closed);
		}
		xy_fail(err, errlen, -r, "cannot start /bin/sh: %s",
			strerror(-r));
		return NULL;
	}
	p->start_ms = uv_now(x->loop);
	p->last_du_ms = p->start_ms;
	uv_read_start((uv_stream_t *)&p->out, on_alloc, on_read);
	x->live++;
	if (p->memory_mb || p->disk_mb || p->time_limit_ms)
		tick_start(x);
	return p;
}

int xy_proc_pid(const struct xy_proc *p)
{
	return p->pid;
}

void xy_proc_set_limits(struct xy_proc *p, uint64_t memory_mb,
			uint64_t time_limit_ms)
{
	if (p->released || p->done || p->exited)
		return;
	p->memory_mb = memory_mb;
	p->time_limit_ms = time_limit_ms;
	p->start_ms = uv_now(p->x->loop);
	if (memory_mb || time_limit_ms)
		tick_start(p->x);
}

void xy_proc_kill(struct xy_proc *p)
{
	if (p->released || p->done)
		return;
	if (!p->exited)
		p->killed = 1;
	kill_group(p);
}

void xy_proc_release(struct xy_proc *p)
{
	if (!p || p->released)
		return;
	if (!p->done && !p->exited)
		kill_group(p);
	p->released = 1;
	p->done = 1;
	p->x->live--;
	uv_close((uv_handle_t *)&p->out, on_handle_closed);
	/* The exit watch stays until the shell is reaped (on_pidfd). */
}

/* ---------------------------------------------------- removing sandboxes */

struct rm_req {
	uv_work_t req;
	char *path;
};

static void rm_work(uv_work_t *req)
{
	struct rm_req *r = req->data;

	xy_rm_rf(r->path);
}

static void rm_after(uv_work_t *req, int status)
{
	struct rm_req *r = req->data;

	free(r->path);
	free(r);
}

void xy_sandbox_remove_async(uv_loop_t *loop, char *path)
{
	struct rm_req *r = calloc(1, sizeof *r);

	if (r) {
		r->path = path;
		r->req.data = r;
		if (uv_queue_work(loop, &r->req, rm_work, rm_after) == 0)
			return;
		free(r);
	}
	xy_rm_rf(path);
	free(path);
}
