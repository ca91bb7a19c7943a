/*
 * guard.c: fingerprints of lent objects, and the careful removal of a
 * sandbox's name for a file input; see guard.h. The walk is a loop over a
 * stack of open directories (no recursion whose depth follows the
 * object), one fstatat per entry.
 */
#include "guard.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

/* splitmix64's finaliser: every input bit reaches every output bit. */
static uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
	h ^= h >> 30;
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 27;
	h *= 0x94d049bb133111ebULL;
	h ^= h >> 31;
	return h;
}

static uint64_t name_hash(uint64_t key, const char *s, size_t n)
{
	uint64_t h = mix(key, n);

	for (size_t i = 0; i < n; i += 8) {
		uint64_t w = 0;

		memcpy(&w, s + i, n - i < 8 ? n - i : 8);
		h = mix(h, w);
	}
	return h;
}

/* One entry's part of both prints (sum[0] with ctime, sum[1] without):
 * its relative name and what stat says. */
static void entry_print(uint64_t key, const char *rel, size_t rel_len,
			const struct stat *st, uint64_t sum[2])
{
	uint64_t h = name_hash(key, rel, rel_len);

	h = mix(h, (uint64_t)st->st_ino);
	h = mix(h, (uint64_t)st->st_dev);
	h = mix(h, (uint64_t)st->st_mode);
	h = mix(h, (uint64_t)st->st_size);
	h = mix(h, (uint64_t)st->st_mtim.tv_sec);
	h = mix(h, (uint64_t)st->st_mtim.tv_nsec);
	sum[1] += h;
	h = mix(h, (uint64_t)st->st_ctim.tv_sec);
	h = mix(h, (uint64_t)st->st_ctim.tv_nsec);
	sum[0] += h;
}

struct frame {
	DIR *d;
	size_t len; /* of the relative path to this directory */
};

/* Walks the directory open as fd (taken), adding into *sum. */
static int walk(int fd, uint64_t key, uint64_t sum[2], uint64_t *count,
		char *err, size_t errlen)
{
	static const size_t max = XY_GUARD_MAX_DEPTH;
	struct frame stack[XY_GUARD_MAX_DEPTH];
	char rel[PATH_MAX];
	size_t depth = 0;
	int r = 0;

	stack[0].d = fdopendir(fd);
	stack[0].len = 0;
	if (!stack[0].d) {
		close(fd);
		return xy_fail(err, errlen, errno, "cannot read directory");
	}
	depth = 1;
	while (depth) {
		struct frame *f = &stack[depth - 1];
		struct dirent *de;
		struct stat st;
		size_t n;

		errno = 0;
		if (!(de = readdir(f->d))) {
			if (errno) {
				r = xy_fail(err, errlen, errno,
					    "cannot read directory");
				break;
			}
			closedir(f->d);
			depth--;
			continue;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		n = strlen(de->d_name);
		if (f->len + 1 + n >= sizeof rel) {
			r = xy_fail(err, errlen, ENAMETOOLONG, "name too long");
			break;
		}
		rel[f->len] = '/';
		memcpy(rel + f->len + 1, de->d_name, n + 1);
		if (fstatat(dirfd(f->d), de->d_name, &st,
			    AT_SYMLINK_NOFOLLOW) < 0) {
			r = xy_fail(err, errlen, errno, "cannot stat %s",
				    rel + 1);
			break;
		}
		entry_print(key, rel, f->len + 1 + n, &st, sum);
		(*count)++;
		if (!S_ISDIR(st.st_mode))
			continue;
		if (depth == max) {
			r = xy_fail(err, errlen, ELOOP,
				    "deeper than %zu directories", max);
			break;
		}
		fd = openat(dirfd(f->d), de->d_name,
			    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 || !(stack[depth].d = fdopendir(fd))) {
			if (fd >= 0)
				close(fd);
			r = xy_fail(err, errlen, errno, "cannot open %s",
				    rel + 1);
			break;
		}
		stack[depth].len = f->len + 1 + n;
		depth++;
	}
	while (depth)
		closedir(stack[--depth].d);
	return r;
}

int xy_guard_print(const char *path, uint64_t key, uint64_t print[2],
		   uint64_t *n, char *err, size_t errlen)
{
	uint64_t sum[2] = {0, 0}, count = 1;
	struct stat st;
	int fd;

	if (lstat(path, &st) < 0)
		return xy_fail(err, errlen, errno, "cannot stat %s: %s", path,
			       strerror(errno));
	entry_print(key, "", 0, &st, sum);
	if (S_ISDIR(st.st_mode)) {
		fd = open(path,
			  O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return xy_fail(err, errlen, errno, "cannot open %s: %s",
				       path, strerror(errno));
		if (walk(fd, key, sum, &count, err, errlen) < 0)
			return -1;
	}
	print[0] = mix(sum[0], count);
	print[1] = mix(sum[1], count);
	if (n)
		*n = count;
	return 0;
}

int xy_guard_unlink(const char *sandbox, const char *name,
		    const struct stat *want)
{
	char part[PATH_MAX];
	const char *s = name, *slash;
	struct stat st;
	int fd, next, r = -1;

	fd = open(sandbox, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -1;
	while ((slash = strchr(s, '/'))) {
		size_t n = (size_t)(slash - s);

		if (n >= sizeof part)
			goto out;
		memcpy(part, s, n);
		part[n] = '\0';
		next = openat(fd, part,
			      O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		close(fd);
		fd = next;
		if (fd < 0)
			return -1;
		s = slash + 1;
	}
	if (fstatat(fd, s, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    st.st_ino == want->st_ino && st.st_dev == want->st_dev)
		r = unlinkat(fd, s, 0);
out:
	close(fd);
	return r;
}
