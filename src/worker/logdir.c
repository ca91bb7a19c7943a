/*
 * logdir.c: the files of `xylem worker --log-dir DIR` (logdir.h). Names
 * carry the worker's process id, so that several workers (and several runs)
 * can share one directory without mixing their lines.
 */
#include "logdir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

/* A file name part: anything but [A-Za-z0-9._-] becomes '_'. */
static void clean(const char *in, char *out, size_t n)
{
	size_t i = 0;

	for (; in && *in && i + 1 < n; in++)
		out[i++] = (*in >= 'a' && *in <= 'z') || (*in >= 'A' && *in <= 'Z') ||
				   (*in >= '0' && *in <= '9') || strchr("._-", *in) ?
			   *in : '_';
	out[i] = '\0';
}

static int make_dirs(const char *dir)
{
	char path[4096];
	size_t len = strlen(dir);

	if (len == 0 || len >= sizeof path)
		return -1;
	memcpy(path, dir, len + 1);
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(path, 0755) < 0 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	return mkdir(path, 0755) < 0 && errno != EEXIST ? -1 : 0;
}

static int open_log(const char *path)
{
	return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
}

int xy_logdir_open(const char *dir, const char *kind, const char *name,
		   uint64_t n)
{
	static int warned;
	char path[4096], part[128];
	int fd;

	if (!dir)
		return 0;
	clean(name, part, sizeof part);
	snprintf(path, sizeof path, "%s/%s-%s-%ld-%llu.log", dir, kind, part,
		 (long)getpid(), (unsigned long long)n);
	fd = open_log(path);
	if (fd < 0 && !warned++)
		XY_LOGW("worker", "cannot write %s: %s", path, strerror(errno));
	return fd < 0 ? 0 : fd;
}

int xy_logdir_redirect(const char *dir, const char *name, char *err,
		       size_t errlen)
{
	char path[4096], part[128];
	int fd;

	if (make_dirs(dir) < 0)
		return xy_fail(err, errlen, errno, "--log-dir %s: %s", dir,
			       strerror(errno));
	clean(name, part, sizeof part);
	snprintf(path, sizeof path, "%s/worker-%s%s%ld.log", dir, part,
		 *part ? "-" : "", (long)getpid());
	fd = open_log(path);
	if (fd < 0)
		return xy_fail(err, errlen, errno, "--log-dir: %s: %s", path,
			       strerror(errno));
	/* dup2 clears close-on-exec on fd 2, as stderr should have. */
	if (dup2(fd, STDERR_FILENO) < 0) {
		close(fd);
		return xy_fail(err, errlen, errno, "--log-dir: %s", strerror(errno));
	}
	close(fd);
	return 0;
}
