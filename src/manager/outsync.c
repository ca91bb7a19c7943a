/*
 * outsync.c: outputs synced to disk before the journal records them
 * (`--journal-sync`, docs/durability.md). A DONE record names an output
 * by its size and modification time; after a machine crash a file that
 * was renamed into place but never synced could come back with those and
 * other bytes, and its task would be skipped. So in sync mode the
 * manager's retrieval (xplan.c, on the thread pool) syncs each output's
 * bytes before renaming it into place and its directory after, and so
 * before the turn's write of the DONE record that depends on it.
 */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "outsync.h"

static int sync_path(const char *path, int dir)
{
	int fd = open(path, (dir ? O_RDONLY | O_DIRECTORY : O_RDONLY) |
				    O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -1;
	int rc = dir ? fsync(fd) : fdatasync(fd);
	int e = errno;
	close(fd);
	errno = e;
	return rc;
}

static int sync_one(const char *path, const struct stat *st, int flag,
		    struct FTW *f)
{
	(void)st;
	(void)f;
	if (flag == FTW_F)
		return sync_path(path, 0) < 0 ? -1 : 0;
	if (flag == FTW_DP)
		return sync_path(path, 1) < 0 ? -1 : 0;
	return 0; /* a symbolic link: its target is not ours */
}

int xy_outsync_tree(const char *path)
{
	/* nftw walks without recursing on our stack, and FTW_DEPTH syncs a
	 * directory after what it holds. */
	return nftw(path, sync_one, 16, FTW_PHYS | FTW_DEPTH) == 0 ? 0 : -1;
}

int xy_outsync_parent(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	if (!slash)
		return sync_path(".", 1);
	size_t n = slash == path ? 1 : (size_t)(slash - path);
	if (n >= sizeof dir) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(dir, path, n);
	dir[n] = 0;
	return sync_path(dir, 1);
}
