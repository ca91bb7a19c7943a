/*
 * memo.h: the finished tasks a journal remembers (memo.c,
 * docs/durability.md, "Restart"). A task is known by its fingerprint:
 * its command, library and payload, environment, and each input's name
 * and content. When one finishes well, its fingerprint and its outputs'
 * paths, sizes and modification times go to the journal; a manager
 * started again on that journal finishes an identical task whose outputs
 * are still as they were left without running it. Only files under
 * src/manager include it.
 */
#ifndef XY_MANAGER_MEMO_H
#define XY_MANAGER_MEMO_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

struct xy_manager;
struct xy_memo;
struct xy_task;

/* Opens the journal in dir and reads what it remembers. NULL with errno
 * and the reason in err (journal.h: in use, damaged, I/O). */
struct xy_memo *xy_memo_open(struct xy_manager *m, const char *dir, int sync,
			     char *err, size_t errlen);
/* Flushes, closes the journal, frees. NULL does nothing. */
void xy_memo_destroy(struct xy_memo *memo);

/* t is ready (every input has its content): its fingerprint becomes its
 * key (t->key, for the records below and for adoption). If the journal
 * has it, with its outputs where they were, t is finished as a success
 * without being run (its outputs hashed again from their paths) and 1 is
 * returned; else 0. */
int xy_memo_try(struct xy_memo *memo, struct xy_task *t);
/* t finished well, its outputs back: the record goes to the journal's
 * buffer (xy_memo_flush writes it). A temp among its outputs is recorded
 * by its object (id, kind, size) and the worker that holds it; t found
 * again by xy_memo_try gives its temps those objects, whose copies the
 * workers' inventories tell (docs/durability.md, "Temps"). */
void xy_memo_finished(struct xy_memo *memo, struct xy_task *t);
/* t goes to worker: a RUN record to the buffer, which the manager
 * writes (xy_memo_write) at the end of the scheduling round, before the
 * round's TASKs leave their workers' conns (not synced: the turn's flush
 * syncs it in sync mode), so that a manager started again on the
 * journal knows it ran there and waits for that worker to bring it back
 * (adopt.c). Only tasks with a key (a fingerprint, set by xy_memo_try).
 * -1 if it is not recorded (no key, or the journal failed): its TASK
 * then goes without a key, and no worker keeps it for a later manager. */
int xy_memo_dispatched(struct xy_memo *memo, struct xy_task *t,
		       const char *worker);
/* Writes what is buffered (one write, no sync). */
void xy_memo_write(struct xy_memo *memo);
/* t stopped running without a DONE (failed, lost, cancelled, or
 * finished unrecorded): an UNRUN record goes to the turn's buffer. */
void xy_memo_stopped(struct xy_memo *memo, struct xy_task *t);
/* The worker a task of this key was running on when an earlier manager
 * stopped, or NULL. */
const char *xy_memo_ran_before(struct xy_memo *memo,
			       const uint8_t key[XY_ID_LEN]);
/* Forgets (an UNRUN record each) the tasks that were running under
 * earlier managers, except those for which kept(arg, key, their worker)
 * says 1. Returns how many. */
size_t xy_memo_forget(struct xy_memo *memo,
		      int (*kept)(void *, const uint8_t *, const char *),
		      void *arg);
/* The keys of the tasks that were running on worker under earlier
 * managers, as a malloc'd array of n * XY_ID_LEN bytes (NULL when none).
 * Returns n, or -1 on ENOMEM. */
int64_t xy_memo_keys_before(struct xy_memo *memo, const char *worker,
			    uint8_t **keys);
/* Forgets one such task (an UNRUN record). */
void xy_memo_forget_key(struct xy_memo *memo, const uint8_t key[XY_ID_LEN]);
/* 1 if f is a temp that a task found finished by the journal gave an
 * object, that has no copy, and whose worker (the one that held it when
 * its task finished, under a manager before) has not come back yet while
 * the wait for such workers goes on: a task that needs it waits (catalog.c)
 * rather than have it made again. */
struct xy_file;
int xy_memo_temp_awaited(struct xy_memo *memo, const struct xy_file *f);
/* A client's temp restored from the journal (client_temps.c) with
 * object id, last held by worker: waited for as a task's restored temp
 * is. -1 on ENOMEM. */
int xy_memo_restore_temp(struct xy_memo *memo, const uint8_t *id,
			 const char *worker);
/* A worker named name greeted this manager (wtable.c): while the wait
 * goes on, its restored temps are no longer awaited. */
void xy_memo_worker_back(struct xy_memo *memo, const char *name);
/* 1 if f is a temp that a task found finished by the journal gave an
 * object (whether or not a copy is known). */
int xy_memo_temp_restored(struct xy_memo *memo, const struct xy_file *f);
/* 1 while that wait goes on (the journal knew temps at open); the wait's
 * end (adopt.c) calls xy_memo_temps_wait_over. */
int xy_memo_temps_wait(const struct xy_memo *memo);
void xy_memo_temps_wait_over(struct xy_memo *memo);
/* How many tasks ran under earlier managers and are not yet settled. */
size_t xy_memo_running_before(const struct xy_memo *memo);

/* Writes the records of this loop turn (one write): before any of their
 * tasks is handed to the program. */
void xy_memo_flush(struct xy_memo *memo);

/* Clients' finished tasks (client.c): the bytes recorded under key (a
 * digest of a SUBMIT), or NULL, their length in *len. */
const void *xy_memo_client_find(struct xy_memo *memo, const uint8_t *key,
				size_t *len);
/* Records key's bytes and writes the journal at once (the RESULT that
 * depends on it is sent next). 0, or -1 with errno. */
int xy_memo_client_record(struct xy_memo *memo, const uint8_t *key,
			  const void *data, size_t len);
/* The journal's directory. */
const char *xy_memo_dir(const struct xy_memo *memo);

/* Counts, for stats and status. */
int64_t xy_memo_skipped(const struct xy_memo *memo);
int64_t xy_memo_known(const struct xy_memo *memo);
uint32_t xy_memo_epoch(const struct xy_memo *memo);

/* Appends a client's record (clients_journal.c) and, if unrun names a
 * running task, its UNRUN; writes them at once. 0, or -1 with errno. */
int xy_memo_client_put(struct xy_memo *memo, unsigned type, const void *data,
		       size_t len, const uint8_t *unrun);

/* 1 in --journal-sync mode: outputs are synced before their records. */
int xy_memo_sync_mode(const struct xy_memo *memo);

#endif
