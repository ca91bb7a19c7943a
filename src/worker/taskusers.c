/*
 * taskusers.c: the accounts tasks run under (taskusers.h). A small
 * array: a worker has a handful of accounts, one per core at most that
 * is useful, so a claim is a scan.
 */
#include "taskusers.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define MAX_USERS 1024

struct account {
	uid_t uid;
	gid_t gid;
	unsigned holders; /* running tasks and library instances */
	char name[64];
};

struct xy_taskusers {
	size_t n;
	int shared; /* said that accounts are shared, until one is free */
	struct account a[];
};

/* Looks one account up by name, or by number when it is all digits. */
static int lookup(const char *word, struct account *a, char *err,
		  size_t errlen)
{
	struct passwd pw, *res = NULL;
	char buf[4096], *end;
	int r;

	errno = 0;
	unsigned long v = strtoul(word, &end, 10);
	if (*word && !*end)
		r = getpwuid_r((uid_t)v, &pw, buf, sizeof buf, &res);
	else
		r = getpwnam_r(word, &pw, buf, sizeof buf, &res);
	if (r || !res)
		return xy_fail(err, errlen, r ? r : ENOENT,
			       "--task-users: no account '%s'%s%s", word,
			       r ? ": " : "", r ? strerror(r) : "");
	if (pw.pw_uid == 0 || pw.pw_gid == 0)
		return xy_fail(err, errlen, EINVAL,
			       "--task-users: '%s' is root's account or group:"
			       " tasks would run as root", word);
	if (pw.pw_uid == geteuid())
		return xy_fail(err, errlen, EINVAL,
			       "--task-users: '%s' is the worker's own account",
			       word);
	a->uid = pw.pw_uid;
	a->gid = pw.pw_gid;
	snprintf(a->name, sizeof a->name, "%s", pw.pw_name);
	return 0;
}

/* 1 if the kernel refuses a hard link to a file the linker may not
 * write (fs.protected_hardlinks). */
static int hardlinks_protected(void)
{
	char c = 0;
	FILE *f = fopen("/proc/sys/fs/protected_hardlinks", "r");
	if (!f)
		return 0;
	if (fread(&c, 1, 1, f) != 1)
		c = 0;
	fclose(f);
	return c == '1';
}

struct xy_taskusers *xy_taskusers_create(const char *list, char *err,
					 size_t errlen)
{
	struct xy_taskusers *u = NULL;
	char *copy = NULL, *save = NULL, *w;
	size_t n = 1;

	if (geteuid() != 0) {
		xy_fail(err, errlen, EPERM, "--task-users: the worker must run"
			" as root to run tasks under other accounts");
		return NULL;
	}
	if (!hardlinks_protected()) {
		xy_fail(err, errlen, EPERM, "--task-users: the kernel lets any"
			" account hard-link files it cannot write"
			" (fs.protected_hardlinks is not 1): a task could link"
			" one of root's files as its output, which the worker"
			" would then make read-only for all. Set"
			" fs.protected_hardlinks = 1");
		return NULL;
	}
	for (const char *p = list; *p; p++)
		n += *p == ',';
	if (n > MAX_USERS) {
		xy_fail(err, errlen, EINVAL, "--task-users: more than %d"
			" accounts", MAX_USERS);
		return NULL;
	}
	if (!(copy = strdup(list)) ||
	    !(u = calloc(1, sizeof *u + n * sizeof u->a[0]))) {
		xy_fail(err, errlen, ENOMEM, "out of memory");
		goto error;
	}
	for (w = strtok_r(copy, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
		struct account *a = &u->a[u->n];
		if (lookup(w, a, err, errlen) < 0)
			goto error;
		for (size_t i = 0; i < u->n; i++)
			if (u->a[i].uid == a->uid) {
				xy_fail(err, errlen, EINVAL, "--task-users: '%s'"
					" is given twice", w);
				goto error;
			}
		u->n++;
	}
	if (!u->n) {
		xy_fail(err, errlen, EINVAL, "--task-users: no account given");
		goto error;
	}
	free(copy);
	return u;
error:
	free(copy);
	free(u);
	return NULL;
}

void xy_taskusers_destroy(struct xy_taskusers *u)
{
	free(u);
}

size_t xy_taskusers_count(const struct xy_taskusers *u)
{
	return u ? u->n : 0;
}

/* Every directory above root must let others pass (o+x). */
static int check_ancestors(const char *root, char *err, size_t errlen)
{
	char path[PATH_MAX];
	struct stat st;
	char *slash;

	if (snprintf(path, sizeof path, "%s", root) >= (int)sizeof path)
		return xy_fail(err, errlen, ENAMETOOLONG, "cache path too long");
	while ((slash = strrchr(path, '/')) && slash != path) {
		*slash = 0;
		if (stat(path, &st) == 0 && !(st.st_mode & S_IXOTH))
			return xy_fail(err, errlen, EACCES,
				       "--task-users: the task accounts cannot"
				       " reach the cache %s: %s is mode %04o;"
				       " give --cache a directory that others"
				       " may pass through (o+x)", root, path,
				       (unsigned)(st.st_mode & 07777));
	}
	return 0;
}

int xy_taskusers_open_cache(const char *root, char *err, size_t errlen)
{
	if (check_ancestors(root, err, errlen) < 0)
		return -1;
	static const char *const sub[] = {"", "/sandbox", "/objects",
					  "/forever", "/unpacked"};
	char path[PATH_MAX];

	for (size_t i = 0; i < sizeof sub / sizeof *sub; i++) {
		if (snprintf(path, sizeof path, "%s%s", root, sub[i]) >=
		    (int)sizeof path)
			return xy_fail(err, errlen, ENAMETOOLONG,
				       "cache path too long");
		if (chmod(path, 0711) < 0 && errno != ENOENT)
			return xy_fail(err, errlen, errno,
				       "cannot open %s to the task accounts:"
				       " %s", path, strerror(errno));
	}
	return 0;
}

int xy_taskusers_claim(struct xy_taskusers *u)
{
	size_t best = 0;
	for (size_t i = 1; i < u->n; i++)
		if (u->a[i].holders < u->a[best].holders)
			best = i;
	if (u->a[best].holders && !u->shared)
		XY_LOGW("tasks", "every task account is held (%zu: running"
			" tasks and idle library instances): %s is now shared,"
			" and its tasks can reach each other; give more"
			" accounts to --task-users", u->n, u->a[best].name);
	u->shared = u->a[best].holders > 0;
	u->a[best].holders++;
	return (int)best + 1;
}

/* kill(-1) from a child that is the account and nothing else: it
 * reaches exactly the processes whose real or saved uid is the
 * account's. */
static void kill_all(const struct account *a)
{
	pid_t pid = fork();
	if (pid == 0) {
		if (setgroups(0, NULL) == 0 && setgid(a->gid) == 0 &&
		    setuid(a->uid) == 0 && setuid(0) < 0)
			kill(-1, SIGKILL);
		_exit(0);
	}
	if (pid < 0) {
		XY_LOGW("tasks", "cannot end the processes left under %s: %s",
			a->name, strerror(errno));
		return;
	}
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

void xy_taskusers_release(struct xy_taskusers *u, int k)
{
	if (!u || k <= 0 || (size_t)k > u->n || !u->a[k - 1].holders)
		return;
	if (--u->a[k - 1].holders == 0)
		kill_all(&u->a[k - 1]);
}

uid_t xy_taskusers_uid(const struct xy_taskusers *u, int k)
{
	return u->a[k - 1].uid;
}

gid_t xy_taskusers_gid(const struct xy_taskusers *u, int k)
{
	return u->a[k - 1].gid;
}

const char *xy_taskusers_name(const struct xy_taskusers *u, int k)
{
	return u->a[k - 1].name;
}

int xy_taskusers_give(const struct xy_taskusers *u, int k, const char *path)
{
	const struct account *a = &u->a[k - 1];
	/* chown first: until then the sandbox is root's, whatever its
	 * mode; a pooled one may carry a mode its last task set. */
	if (lchown(path, a->uid, a->gid) < 0 || chmod(path, 0700) < 0)
		return -1;
	return 0;
}

/* Removes one ACL of a directory; 0 when it has none, or when the file
 * system has none. */
static int no_acl(int fd, const char *name)
{
	if (fremovexattr(fd, name) == 0 || errno == ENODATA ||
	    errno == ENOTSUP)
		return 0;
	return -1;
}

int xy_taskusers_take_back(int fd, const char *path)
{
	int own = fd < 0, r = -1;

	if (own && (fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
					    O_CLOEXEC)) < 0)
		return -1;
	/* ACLs the account may have set while it owned the directory go
	 * too: a default ACL would give it a share of the next task's
	 * files. */
	if (fchown(fd, geteuid(), getegid()) == 0 && fchmod(fd, 0755) == 0 &&
	    no_acl(fd, "system.posix_acl_access") == 0 &&
	    no_acl(fd, "system.posix_acl_default") == 0)
		r = 0;
	if (own) {
		int e = errno;
		close(fd);
		errno = e;
	}
	return r;
}

unsigned xy_taskusers_holders(const struct xy_taskusers *u, int k)
{
	return u && k > 0 && (size_t)k <= u->n ? u->a[k - 1].holders : 0;
}
