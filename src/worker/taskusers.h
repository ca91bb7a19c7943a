/*
 * taskusers.h: the accounts a worker started as root runs its command
 * tasks and library instances under (`xylem worker --task-users
 * NAME[,NAME...]`, or XYLEM_TASK_USERS). Each task gets an account that
 * no other running task of this worker has, while there are enough; its
 * sandbox is made that account's, mode 0700, so tasks under different
 * accounts cannot read each other's sandboxes, and the cache's objects
 * (root's, 0444 and 0555) are theirs to read but not to write or chmod.
 * Pairs with tasks.c (claim at start, release at the end), library.c (an
 * instance holds its account while it lives, and serves calls under it)
 * and exec.c (the switch of account in the child). docs/security.md,
 * "Tasks under accounts of their own".
 */
#ifndef XY_TASKUSERS_H
#define XY_TASKUSERS_H

#include <stddef.h>
#include <sys/types.h>

struct xy_taskusers;

/* Parses list, comma-separated account names or numeric uids (each
 * looked up in the password database for its group), and checks that
 * this process can use them: it must run as root, and no account may be
 * root or this process's own. Returns NULL with a reason in err. */
struct xy_taskusers *xy_taskusers_create(const char *list, char *err,
					 size_t errlen);
void xy_taskusers_destroy(struct xy_taskusers *u);
size_t xy_taskusers_count(const struct xy_taskusers *u);

/* Makes the cache's directories (root, sandbox/, objects/, forever/,
 * unpacked/) 0711: the task accounts may pass through them to their
 * own sandbox and to the objects linked into it, not list them. 0 or -1
 * with a reason in err. */
int xy_taskusers_open_cache(const char *cache_root, char *err,
			    size_t errlen);

/* The account for a task starting now: one that no running task holds,
 * else the one the fewest hold. Returns its index + 1 (never 0). */
int xy_taskusers_claim(struct xy_taskusers *u);
/* A task that held account k (a claim's result) ended. When no other
 * running task holds k, every process left under k is killed (a task's
 * process that left its process group, with setsid, included), so that
 * nothing of the account touches its outputs while the worker takes
 * them, or the next task's sandbox. u may be NULL and k 0 (nothing). */
void xy_taskusers_release(struct xy_taskusers *u, int k);
uid_t xy_taskusers_uid(const struct xy_taskusers *u, int k);
gid_t xy_taskusers_gid(const struct xy_taskusers *u, int k);
const char *xy_taskusers_name(const struct xy_taskusers *u, int k);

/* Gives the sandbox at path to account k, mode 0700. 0 or -1 (errno). */
int xy_taskusers_give(const struct xy_taskusers *u, int k, const char *path);
/* Takes a sandbox to be pooled back from its account: root's again,
 * 0755, with no ACL, so that nothing left under the account (a library instance that
 * lives on, a task's leftover while its account is shared) can add to it
 * before the next task has it; the check that it is empty comes after.
 * fd is the open directory, or -1 and path names it (never followed if
 * it is a link). 0 or -1 (errno). */
int xy_taskusers_take_back(int fd, const char *path);
/* How many running tasks and library instances hold account k. */
unsigned xy_taskusers_holders(const struct xy_taskusers *u, int k);

#endif
