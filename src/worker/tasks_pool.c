/*
 * tasks_pool.c: the worker's pool of empty sandboxes, a sub-context of
 * tasks.c (tasks_int.h): sandboxes kept and renamed for the next task
 * rather than made and removed, and the warm call that runs in a pooled
 * directory as it is.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tasks.h"
#include "tasks_int.h"
#include "taskusers.h"
#include "util.h"

/* An empty sandbox (a task without inputs that wrote nothing) goes at
 * once; anything else is removed on the thread pool. */
static void sandbox_remove(struct xy_tasks *ts, char *path)
{
	if (rmdir(path) == 0 || errno == ENOENT) {
		free(path);
		return;
	}
	xy_sandbox_remove_async(ts->o.loop, path);
}

/* ------------------------------------------- the pool of sandboxes */

/* Making a directory costs far more than renaming one on some file
 * systems (ext4 searches its inode tables for a free one: ~150 us against
 * ~5 us), and a task without files leaves its sandbox empty. So empty
 * sandboxes are kept as sandbox/.free-<n> and renamed for the next task. */

static void pool_name(struct xy_tasks *ts, uint64_t k, char *out, size_t len)
{
	snprintf(out, len, "%s/.free-%" PRIu64,
		 xy_cache_sandboxes(ts->o.cache), k);
}

/* True if fd is an empty directory of ours with mode 0755. */
static int empty_dir(int fd)
{
	char buf[512] __attribute__((aligned(8))); /* as dirent64 needs */
	struct stat st;
	ssize_t n, off;
	int ok;

	if (fstat(fd, &st) < 0 || (st.st_mode & 07777) != 0755 ||
	    st.st_uid != geteuid() || lseek(fd, 0, SEEK_SET) < 0)
		return 0;
	n = getdents64(fd, buf, sizeof buf);
	ok = n > 0;
	for (off = 0; ok && off < n;) {
		struct dirent64 *d = (struct dirent64 *)(buf + off);

		ok = !strcmp(d->d_name, ".") || !strcmp(d->d_name, "..");
		off += d->d_reclen;
	}
	return ok;
}

static int open_dir(const char *path)
{
	return open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* True if path is an empty directory of ours with mode 0755. */
static int reusable(const char *path)
{
	int fd = open_dir(path), ok;

	if (fd < 0)
		return 0;
	ok = empty_dir(fd);
	close(fd);
	return ok;
}

static void pool_push(struct xy_tasks *ts, uint64_t k, int fd)
{
	ts->pool[ts->pool_n].k = k;
	ts->pool[ts->pool_n].fd = fd;
	ts->pool_n++;
}

/* Forgets the newest entry, closing its descriptor. */
void xy_tasks_pool_pop(struct xy_tasks *ts)
{
	struct pool_dir *e = &ts->pool[--ts->pool_n];

	if (e->fd >= 0)
		close(e->fd);
}

/* Moves a pooled sandbox to path. Returns 0, or -1 (EEXIST if path is
 * taken; the pool keeps its entry then). */
int xy_tasks_pool_take(struct xy_tasks *ts, const char *path)
{
	char name[PATH_MAX];

	if (!ts->pool_n) {
		errno = ENOENT;
		return -1;
	}
	pool_name(ts, ts->pool[ts->pool_n - 1].k, name, sizeof name);
	if (renameat2(AT_FDCWD, name, AT_FDCWD, path, RENAME_NOREPLACE) == 0) {
		xy_tasks_pool_pop(ts);
		return 0;
	}
	if (errno != EEXIST)
		xy_tasks_pool_pop(ts); /* gone or unusable: forget it */
	return -1;
}

/* With task accounts: a sandbox is root's again before it is checked
 * for pooling (taskusers.h, xy_taskusers_take_back). 0, or -1: remove
 * it instead. */
static int take_back(struct xy_tasks *ts, int fd, const char *path)
{
	return ts->o.users ? xy_taskusers_take_back(fd, path) : 0;
}

/* Pools an empty sandbox, or removes it. Takes path. A pool directory
 * used in place (t->pooled, pool_use) goes back under its own name,
 * checked through the descriptor it keeps; any other is renamed. */
void xy_tasks_sandbox_release(struct task *t)
{
	struct xy_tasks *ts = t->ts;
	char name[PATH_MAX], *path = t->sandbox;
	int room = ts->pool_n < POOL_MAX && !ts->quiet;
	uint64_t k;

	t->sandbox = NULL;
	if (t->pooled && t->pool_fd >= 0) {
		/* Its inputs were linked in by name (pool_use): unlinked
		 * here, whatever the call did with them meanwhile. */
		for (uint32_t i = 0; i < t->spec.n_inputs; i++)
			unlinkat(t->pool_fd, t->spec.inputs[i].name, 0);
		if (room && take_back(ts, t->pool_fd, path) == 0 &&
		    empty_dir(t->pool_fd)) {
			pool_push(ts, t->pooled, t->pool_fd);
			t->pool_fd = -1;
			free(path);
			return;
		}
		close(t->pool_fd);
		t->pool_fd = -1;
	} else if (room && take_back(ts, -1, path) == 0 && reusable(path)) {
		k = ++ts->pool_seq;
		pool_name(ts, k, name, sizeof name);
		if (rename(path, name) == 0) {
			pool_push(ts, k, -1);
			free(path);
			return;
		}
	}
	sandbox_remove(ts, path);
}

/*
 * A call without outputs whose inputs all have names of one component
 * (most warm calls: none, or the function's pickle, docs/python.md) runs
 * in a pool directory as it is: its name is never used for anything but
 * its path, and nothing is collected from it, so renaming it to the
 * task's id and back (two renames, most of a call's sandbox cost on
 * ext4) buys nothing. Its inputs are linked in by name and unlinked by
 * name when it ends (a link and an unlink cost far less than the two
 * renames, and no directory is made for them). The directory stays open
 * from then on, so that the check that it is empty when the call ends,
 * as for any pooled sandbox, needs no path lookup: no call sees what an
 * earlier one left there (what a call leaves in its library's memory is
 * another matter, docs/python.md). Returns 0, or -1 with errno set.
 */
int xy_tasks_pool_use(struct task *t)
{
	struct xy_tasks *ts = t->ts;
	char name[PATH_MAX];
	uint64_t k;
	int fd = -1;

	if (ts->pool_n) {
		k = ts->pool[--ts->pool_n].k;
		fd = ts->pool[ts->pool_n].fd;
		pool_name(ts, k, name, sizeof name);
	} else {
		k = ++ts->pool_seq;
		pool_name(ts, k, name, sizeof name);
		if (mkdir(name, 0755) < 0)
			return -1;
	}
	if (fd < 0)
		fd = open_dir(name);
	free(t->sandbox);
	t->sandbox = fd >= 0 ? strdup(name) : NULL;
	if (!t->sandbox) {
		int e = fd >= 0 ? ENOMEM : errno;

		if (fd >= 0)
			close(fd);
		xy_rm_rf(name);
		errno = e;
		return -1;
	}
	t->pooled = k;
	t->pool_fd = fd;
	return 0;
}
