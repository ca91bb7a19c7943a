/*
 * journal.h: the manager's journal, a directory of checksummed records
 * (journal.c, docs/durability.md): appended in batches, replayed in order
 * at open, a torn tail cut, compacted by snapshot, locked against a
 * second manager, each opening a new epoch. The records' meaning is the
 * caller's: this module sees a type and bytes. Only files under
 * src/manager include it.
 */
#ifndef XY_MANAGER_JOURNAL_H
#define XY_MANAGER_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#define XY_JOURNAL_RECORD_MAX (16u << 20) /* a payload's bytes, at most */
#define XY_JOURNAL_EPOCH 0 /* the type of journal.c's own record; the
			    * caller's are 1 to 0xfffd */

struct xy_journal;

enum xy_journal_mode {
	XY_JOURNAL_PROCESS, /* written each flush: survives kill -9 */
	XY_JOURNAL_SYNC,    /* and fdatasync'd: survives a machine crash */
};

/* Called for each record, in sequence order, at open; a non-zero return
 * stops the open, which then fails (EINVAL, with the callback's reason:
 * it may write up to errlen bytes into err). EPOCH records are not
 * given. */
typedef int (*xy_journal_replay_fn)(void *arg, unsigned type, uint32_t epoch,
				    uint64_t seq, const void *data,
				    size_t len, char *err, size_t errlen);

/* What open found and did, for logs and status. */
struct xy_journal_info {
	uint32_t epoch;      /* this opening's */
	uint64_t records;    /* replayed (EPOCH records not counted) */
	uint64_t last_seq;   /* the last sequence number written */
	uint64_t cut_bytes;  /* a torn tail's, cut off */
	uint64_t log_bytes;  /* the log's size after open */
	double replay_seconds;
};

/* Opens (creating it if needed) the journal in dir, locks it, replays it
 * into fn, and starts a new epoch (written and synced before it returns).
 * NULL with errno and the reason in err: in use by another manager
 * (EWOULDBLOCK), damaged before its end (EINVAL, naming the offset), or
 * an I/O error. */
struct xy_journal *xy_journal_open(const char *dir, enum xy_journal_mode mode,
				   xy_journal_replay_fn fn, void *arg,
				   char *err, size_t errlen);
/* Flushes what is buffered, unlocks and frees. NULL does nothing. */
void xy_journal_close(struct xy_journal *j);

const struct xy_journal_info *xy_journal_info(const struct xy_journal *j);

/* Buffers a record of type 1 to 0xfffd; returns its sequence number, or
 * 0 with errno (EMSGSIZE over XY_JOURNAL_RECORD_MAX, EINVAL for a type
 * out of range, ENOMEM, EIO once a flush has failed). */
uint64_t xy_journal_append(struct xy_journal *j, unsigned type,
			   const void *data, size_t len);
/* Writes every buffered record with one write (and fdatasync in sync
 * mode). 0, or -1 with errno: the journal is then failed for good. */
int xy_journal_flush(struct xy_journal *j);
/* The same without fdatasync, whatever the mode: what is written survives
 * the process's death, not the machine's. */
int xy_journal_write(struct xy_journal *j);
/* Bytes a flush has to deal with: buffered, and in sync mode also
 * written but not yet synced (xy_journal_write). */
size_t xy_journal_pending(const struct xy_journal *j);

/* Replaces the snapshot and the log by the state that dump appends to
 * snap (with xy_journal_append, as if it were a journal): written,
 * synced, renamed, then a new empty log. 0, or -1 with errno and the
 * reason in err; on failure the journal is as it was. Flushes first. */
int xy_journal_compact(struct xy_journal *j,
		       int (*dump)(void *arg, struct xy_journal *snap),
		       void *arg, char *err, size_t errlen);

#endif
