/*
 * journal.c: the manager's journal (journal.h, docs/durability.md).
 *
 * A directory holds `lock` (flock'ed while a manager has it), `snapshot`
 * (optional) and `log`. Both files are runs of records, each a 28-byte
 * header and a payload: magic, length, CRC-32C (over the rest of the
 * header and the payload), type, flags, epoch, sequence number. A
 * snapshot starts with a SNAP record whose payload is the last sequence
 * number it covers; the log's records at or below it are skipped.
 *
 * Format 2 (magic "XYJ2"): each flush (one write) ends with a COMMIT
 * record naming the flush's records (their first seq, their count, a
 * CRC over their checksums, their bytes). Reading maps each file and
 * walks it (scan): a flush's records are handed to the caller only once
 * its COMMIT mark is read and matches them. What follows the last
 * commit mark (a flush cut short, torn pages, garbage) is a torn tail,
 * cut off and never replayed, unless a whole later flush that was
 * written once everything before it was durable follows the damage:
 * then the damage is in the middle, and open refuses. Format 1 records
 * ("XYJ1", no commit marks) are read as flushes of one record each.
 */
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define WHO "journal"
#define MAGIC1 0x314a5958u /* "XYJ1" little-endian: format 1, read only */
#define MAGIC 0x324a5958u  /* "XYJ2": format 2, with commit marks */
#define HEADER 28
#define SNAP 0xffffu /* a snapshot's first record: its last seq */
#define COMMIT 0xfffeu /* ends a flush: see struct commit */
#define COMMIT_LEN 28
#define DURABLE_BEFORE 1u /* a COMMIT's flag: all before it was durable */

struct xy_journal {
	char *dir;
	int dirfd, lockfd, logfd; /* -1: none (a snapshot being built) */
	enum xy_journal_mode mode;
	uint8_t *buf; /* records appended, not yet written */
	size_t len, cap;
	uint32_t nrec, crcs; /* buffered records: count, CRC of checksums */
	size_t unsynced; /* bytes written, not yet synced (sync mode) */
	uint64_t seq; /* the last given */
	uint32_t epoch;
	int failed; /* a write or sync failed: nothing more is written */
	struct xy_journal_info info;
};

/* ------------------------------------------------------------ encoding */

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

static uint32_t checksum(const uint8_t *rec, size_t len)
{
	/* The header after the checksum, then the payload. */
	return xy_crc32c(xy_crc32c(0, rec + 12, HEADER - 12), rec + HEADER,
			 len);
}

static uint64_t append(struct xy_journal *j, unsigned type, const void *data,
		       size_t len);

uint64_t xy_journal_append(struct xy_journal *j, unsigned type,
			   const void *data, size_t len)
{
	if (type >= COMMIT) {
		errno = EINVAL;
		return 0;
	}
	return append(j, type, data, len);
}

static uint64_t append(struct xy_journal *j, unsigned type, const void *data,
		       size_t len)
{
	if (j->failed) {
		errno = EIO;
		return 0;
	}
	if (len > XY_JOURNAL_RECORD_MAX) {
		errno = EMSGSIZE;
		return 0;
	}
	if (j->len + HEADER + len > j->cap) {
		size_t cap = j->cap ? j->cap : 4096;
		while (cap < j->len + HEADER + len)
			cap *= 2;
		uint8_t *b = realloc(j->buf, cap);
		if (!b) {
			errno = ENOMEM;
			return 0;
		}
		j->buf = b;
		j->cap = cap;
	}
	uint8_t *rec = j->buf + j->len;
	put32(rec, MAGIC);
	put32(rec + 4, (uint32_t)len);
	rec[12] = (uint8_t)type;
	rec[13] = (uint8_t)(type >> 8);
	rec[14] = rec[15] = 0;
	put32(rec + 16, j->epoch);
	put64(rec + 16 + 4, ++j->seq);
	if (len)
		memcpy(rec + HEADER, data, len);
	put32(rec + 8, checksum(rec, len));
	j->len += HEADER + len;
	if (type != COMMIT) {
		j->nrec++;
		j->crcs = xy_crc32c(j->crcs, rec + 8, 4);
	}
	return j->seq;
}

/* A COMMIT record's payload, all little-endian:
 *   u64 first   the seq of the flush's first record
 *   u32 count   its records, the COMMIT not counted
 *   u32 crcs    CRC-32C over their checksums (4 bytes each), in order
 *   u64 bytes   the records' bytes, headers included, before the COMMIT
 *   u32 flags   DURABLE_BEFORE: when this flush was written, all before it
 *               was durable in the journal's mode (written; in sync mode,
 *               synced) */
struct commit {
	uint64_t first, bytes;
	uint32_t count, crcs, flags;
};

static void get_commit(const uint8_t *payload, struct commit *c)
{
	c->first = get64(payload);
	c->count = get32(payload + 8);
	c->crcs = get32(payload + 12);
	c->bytes = get64(payload + 16);
	c->flags = get32(payload + 24);
}

/* Ends the buffered records (if any) with their COMMIT record. */
static int commit(struct xy_journal *j, uint32_t flags)
{
	if (!j->nrec)
		return 0;
	uint8_t c[COMMIT_LEN];
	put64(c, j->seq - j->nrec + 1);
	put32(c + 8, j->nrec);
	put32(c + 12, j->crcs);
	put64(c + 16, j->len);
	put32(c + 24, flags);
	if (!append(j, COMMIT, c, sizeof c))
		return -1;
	j->nrec = j->crcs = 0;
	return 0;
}

/* Writes the buffer; with the crash point "journal-before-commit" armed,
 * in two writes, the process killed between the records and their
 * COMMIT (a flush cut short). */
static int write_flush(struct xy_journal *j)
{
	const char *cp = getenv("XYLEM_CRASH_POINT");
	size_t body = 0;
	if (cp && !strcmp(cp, "journal-before-commit") &&
	    j->len >= HEADER + COMMIT_LEN) {
		body = j->len - HEADER - COMMIT_LEN;
		if (xy_write_all(j->logfd, j->buf, body) < 0)
			return -1;
		XY_CRASH_POINT("journal-before-commit");
	}
	return xy_write_all(j->logfd, j->buf + body, j->len - body);
}

size_t xy_journal_pending(const struct xy_journal *j)
{
	return j->len + (j->mode == XY_JOURNAL_SYNC ? j->unsynced : 0);
}

/* ------------------------------------------------------------- writing */

static int flush_to(struct xy_journal *j, int sync)
{
	if (j->failed) {
		errno = EIO;
		return -1;
	}
	if (!j->len && !sync)
		return 0;
	/* In sync mode a flush written after an unsynced one is not durable
	 * before it is synced with it: replay may cut both. */
	uint32_t flags = j->mode == XY_JOURNAL_SYNC && j->unsynced
				 ? 0 : DURABLE_BEFORE;
	if (commit(j, flags) < 0)
		goto failed;
	XY_CRASH_POINT("journal-before-write");
	if (j->len && write_flush(j) < 0)
		goto failed;
	XY_CRASH_POINT("journal-after-write");
	j->info.log_bytes += j->len;
	j->info.last_seq = j->seq;
	j->unsynced += j->len;
	j->len = 0;
	if (sync && fdatasync(j->logfd) < 0)
		goto failed;
	if (sync)
		j->unsynced = 0;
	if (sync)
		XY_CRASH_POINT("journal-after-sync");
	return 0;
failed:
	/* After a failed fdatasync the kernel may have dropped the pages:
	 * nothing written later could be trusted to follow them. */
	XY_LOGE(WHO, "%s/log: %s: the journal stops here", j->dir,
		strerror(errno));
	j->failed = 1;
	return -1;
}

int xy_journal_flush(struct xy_journal *j)
{
	return flush_to(j, j->mode == XY_JOURNAL_SYNC);
}

int xy_journal_write(struct xy_journal *j)
{
	return flush_to(j, 0);
}

/* ------------------------------------------------------------- reading */

/* 1 if a whole record with a good checksum starts at p (n bytes left). */
static int good_record(const uint8_t *p, size_t n)
{
	if (n < HEADER || (get32(p) != MAGIC && get32(p) != MAGIC1))
		return 0;
	uint32_t len = get32(p + 4);
	return len <= XY_JOURNAL_RECORD_MAX && len <= n - HEADER &&
	       checksum(p, len) == get32(p + 8);
}

static unsigned rec_type(const uint8_t *rec)
{
	return rec[12] | (unsigned)rec[13] << 8;
}

struct scan {
	const char *file; /* for messages */
	uint64_t skip_to; /* records at or below this seq are skipped */
	uint64_t prev_seq; /* the last committed record's; 0: none yet */
	uint32_t max_epoch; /* the last committed record's */
	uint64_t snap_seq; /* a snapshot's SNAP record */
	size_t end; /* where the committed records end */
};

/* Hands the checked records of p[from, to) to fn. */
static int apply(struct scan *s, const uint8_t *p, size_t from, size_t to,
		 struct xy_journal *j, xy_journal_replay_fn fn, void *arg,
		 char *err, size_t errlen)
{
	for (size_t at = from; at < to;) {
		const uint8_t *rec = p + at;
		uint32_t len = get32(rec + 4);
		unsigned type = rec_type(rec);
		uint64_t seq = get64(rec + 20);
		at += HEADER + len;
		if (type == SNAP) {
			s->snap_seq = get64(rec + HEADER);
			continue;
		}
		if (type == COMMIT || type == XY_JOURNAL_EPOCH ||
		    seq <= s->skip_to)
			continue;
		j->info.records++;
		char why[256] = "";
		if (fn(arg, type, get32(rec + 16), seq, rec + HEADER, len, why,
		       sizeof why))
			return xy_fail(err, errlen, EINVAL, "%s: record %llu "
				       "at offset %zu: %s", s->file,
				       (unsigned long long)seq,
				       (size_t)(rec - p), why[0] ? why :
				       "refused");
	}
	return 0;
}

/* Where a whole flush after offset d ends (its COMMIT's offset) whose
 * COMMIT says all before it was durable when it was written, or a
 * format-1 record (each durable once written); 0 if none. Such a flush
 * makes damage at d real: it was not a write cut short. */
static size_t durable_flush_after(const uint8_t *p, size_t n, size_t d)
{
	for (size_t k = d + 1; k + HEADER <= n; k++) {
		if (!good_record(p + k, n - k))
			continue;
		if (get32(p + k) == MAGIC1)
			return k;
		struct commit c;
		if (rec_type(p + k) != COMMIT ||
		    get32(p + k + 4) != COMMIT_LEN)
			continue;
		get_commit(p + k + HEADER, &c);
		if (!(c.flags & DURABLE_BEFORE) || !c.count ||
		    c.bytes >= k - d)
			continue; /* not durable, or d is inside it */
		size_t at = k - c.bytes;
		uint32_t count = 0, crcs = 0;
		uint64_t want = c.first;
		while (at < k && good_record(p + at, k - at) &&
		       get32(p + at) == MAGIC && rec_type(p + at) != COMMIT &&
		       get64(p + at + 20) == want) {
			crcs = xy_crc32c(crcs, p + at + 8, 4);
			count++;
			want++;
			at += HEADER + get32(p + at + 4);
		}
		if (at == k && count == c.count && crcs == c.crcs &&
		    get64(p + k + 20) == want)
			return k;
	}
	return 0;
}

/* Walks n bytes of records at p, checking each, and hands each flush's
 * records to fn once its COMMIT is read and matches them. 0, with s->end
 * short of n for a torn tail (the records after the last commit mark);
 * -1 with the reason in err for damage followed by a durable whole flush,
 * for a whole record out of its place (sequence, epoch), or fn's
 * refusal. */
static int scan(struct scan *s, const uint8_t *p, size_t n,
		struct xy_journal *j, xy_journal_replay_fn fn, void *arg,
		char *err, size_t errlen)
{
	size_t at = 0, from = 0; /* from: the open flush's first record */
	uint64_t prev = s->prev_seq, first = 0;
	uint32_t epoch_max = s->max_epoch, count = 0, crcs = 0;
	char why[160] = "";
	int sound = 0; /* the record that stopped the walk is whole */
	while (at < n) {
		const uint8_t *rec = p + at;
		if (!good_record(rec, n - at)) {
			snprintf(why, sizeof why, "damaged record");
			break;
		}
		uint32_t len = get32(rec + 4), epoch = get32(rec + 16);
		unsigned type = rec_type(rec);
		uint64_t seq = get64(rec + 20);
		/* After a snapshot, the log goes on from its last record
		 * (or still holds older ones, skipped by apply). */
		uint64_t want = prev ? prev + 1 : seq;
		if (!prev && s->skip_to && seq > s->skip_to + 1)
			want = s->skip_to + 1;
		/* A whole record (its checksum holds) in the wrong place is
		 * no torn write: two writers, or a bug; refused, not cut. */
		sound = 1;
		if (seq != want || epoch < epoch_max) {
			snprintf(why, sizeof why, "record %llu follows %llu of "
				 "epoch %u with epoch %u: out of order",
				 (unsigned long long)seq,
				 (unsigned long long)prev, epoch_max, epoch);
			break;
		}
		if (type == SNAP && (len != 8 || seq != 1)) {
			snprintf(why, sizeof why, "a snapshot's header in the "
				 "wrong place");
			break;
		}
		int old = get32(rec) == MAGIC1;
		if (old && count) {
			snprintf(why, sizeof why, "a format-1 record in a "
				 "flush");
			break;
		}
		sound = 0;
		if (type == COMMIT && !old) {
			struct commit c = {0};
			if (len == COMMIT_LEN)
				get_commit(rec + HEADER, &c);
			if (len != COMMIT_LEN || !count || c.count != count ||
			    c.first != first || c.crcs != crcs ||
			    c.bytes != at - from) {
				snprintf(why, sizeof why, "a commit mark that "
					 "does not match its flush");
				break;
			}
		}
		prev = seq;
		epoch_max = epoch;
		at += HEADER + len;
		if (old || type == COMMIT) { /* a flush is whole */
			if (apply(s, p, from, at, j, fn, arg, err, errlen) < 0)
				return -1;
			s->prev_seq = prev;
			s->max_epoch = epoch_max;
			from = at;
			count = crcs = 0;
			continue;
		}
		if (!count++)
			first = seq;
		crcs = xy_crc32c(crcs, rec + 8, 4);
	}
	s->end = from;
	if (at < n && sound)
		return xy_fail(err, errlen, EINVAL, "%s: %s at offset %zu: not"
			       " replayed; move the journal aside to start"
			       " afresh", s->file, why, at);
	size_t later = at < n ? durable_flush_after(p, n, at) : 0;
	if (later)
		return xy_fail(err, errlen, EINVAL, "%s: %s at offset %zu, "
			       "with good records after it (a whole flush at "
			       "%zu): not replayed; move the journal aside to "
			       "start afresh", s->file, why, at, later);
	return 0;
}

/* Maps the file name in j's directory and scans it. *size is its size
 * (0 if it does not exist). */
static int read_file(struct xy_journal *j, const char *name, struct scan *s,
		     size_t *size, xy_journal_replay_fn fn, void *arg,
		     char *err, size_t errlen)
{
	int fd = openat(j->dirfd, name, O_RDONLY | O_CLOEXEC);
	struct stat st;
	*size = 0;
	if (fd < 0)
		return errno == ENOENT ? 0 : xy_fail(err, errlen, errno,
						     "%s/%s: %s", j->dir, name,
						     strerror(errno));
	if (fstat(fd, &st) < 0) {
		int e = errno;
		close(fd);
		return xy_fail(err, errlen, e, "%s/%s: %s", j->dir, name,
			       strerror(e));
	}
	*size = (size_t)st.st_size;
	s->end = 0;
	if (!*size) {
		close(fd);
		return 0;
	}
	void *p = mmap(NULL, *size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return xy_fail(err, errlen, errno, "%s/%s: %s", j->dir, name,
			       strerror(errno));
	madvise(p, *size, MADV_SEQUENTIAL);
	int rc = scan(s, p, *size, j, fn, arg, err, errlen);
	munmap(p, *size);
	return rc;
}

static int replay(struct xy_journal *j, xy_journal_replay_fn fn, void *arg,
		  char *err, size_t errlen)
{
	char snap_name[] = "snapshot", log_name[] = "log";
	struct scan snap = {.file = "snapshot"}, log = {.file = "log"};
	size_t size;
	if (read_file(j, snap_name, &snap, &size, fn, arg, err, errlen) < 0)
		return -1;
	if (snap.end != size) /* renamed in whole: any damage is real */
		return xy_fail(err, errlen, EINVAL, "%s/snapshot: damaged at "
			       "offset %zu of %zu", j->dir, snap.end, size);
	log.skip_to = snap.snap_seq;
	if (read_file(j, log_name, &log, &size, fn, arg, err, errlen) < 0)
		return -1;
	if (log.end < size) {
		j->info.cut_bytes = size - log.end;
		XY_LOGW(WHO, "%s/log: a torn tail of %zu bytes at offset %zu "
			"(after the last commit mark) is cut off, not "
			"replayed", j->dir, size - log.end, log.end);
		if (ftruncate(j->logfd, (off_t)log.end) < 0 ||
		    fdatasync(j->logfd) < 0)
			return xy_fail(err, errlen, errno, "%s/log: %s", j->dir,
				       strerror(errno));
	}
	j->info.log_bytes = log.end;
	j->seq = log.prev_seq > snap.snap_seq ? log.prev_seq : snap.snap_seq;
	uint32_t max = log.max_epoch > snap.max_epoch ? log.max_epoch
						      : snap.max_epoch;
	j->epoch = max + 1;
	return 0;
}

/* ------------------------------------------------------------- opening */

static int lock_dir(struct xy_journal *j, char *err, size_t errlen)
{
	j->lockfd = openat(j->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC,
			   0600);
	if (j->lockfd < 0)
		return xy_fail(err, errlen, errno, "%s/lock: %s", j->dir,
			       strerror(errno));
	if (flock(j->lockfd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;
		char pid[32] = "";
		ssize_t n = pread(j->lockfd, pid, sizeof pid - 1, 0);
		pid[n > 0 ? n : 0] = 0;
		pid[strcspn(pid, "\n")] = 0;
		return xy_fail(err, errlen, e == EWOULDBLOCK ? EWOULDBLOCK : e,
			       "journal %s is in use by another manager%s%s%s",
			       j->dir, *pid ? " (pid " : "", pid,
			       *pid ? ")" : "");
	}
	char pid[32];
	int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
	if (ftruncate(j->lockfd, 0) < 0 || pwrite(j->lockfd, pid, n, 0) < 0)
		XY_LOGW(WHO, "%s/lock: %s", j->dir, strerror(errno));
	return 0;
}

struct xy_journal *xy_journal_open(const char *dir, enum xy_journal_mode mode,
				   xy_journal_replay_fn fn, void *arg,
				   char *err, size_t errlen)
{
	struct xy_journal *j = calloc(1, sizeof *j);
	double t0 = xy_mono();
	if (!j || !(j->dir = strdup(dir))) {
		free(j);
		xy_fail(err, errlen, ENOMEM, "out of memory");
		return NULL;
	}
	j->dirfd = j->lockfd = j->logfd = -1;
	j->mode = mode;
	struct stat st;
	if (stat(dir, &st) == 0 && !S_ISDIR(st.st_mode)) {
		xy_fail(err, errlen, ENOTDIR, "journal %s: not a directory (a "
			"journal is a directory of its own)", dir);
		goto error;
	}
	if (xy_mkdir_p(dir) < 0 ||
	    (j->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		xy_fail(err, errlen, errno, "journal %s: %s", dir,
			strerror(errno));
		goto error;
	}
	if (lock_dir(j, err, errlen) < 0)
		goto error;
	j->logfd = openat(j->dirfd, "log",
			  O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	if (j->logfd < 0) {
		xy_fail(err, errlen, errno, "%s/log: %s", dir, strerror(errno));
		goto error;
	}
	if (replay(j, fn, arg, err, errlen) < 0)
		goto error;
	/* The new epoch is on disk before anything of it is said. */
	if (!xy_journal_append(j, XY_JOURNAL_EPOCH, NULL, 0) ||
	    flush_to(j, 1) < 0 || fsync(j->dirfd) < 0) {
		xy_fail(err, errlen, errno, "%s/log: %s", dir, strerror(errno));
		goto error;
	}
	j->info.epoch = j->epoch;
	j->info.replay_seconds = xy_mono() - t0;
	return j;
error:
	xy_journal_close(j);
	return NULL;
}

void xy_journal_close(struct xy_journal *j)
{
	if (!j)
		return;
	if (j->logfd >= 0 && j->len)
		xy_journal_flush(j);
	if (j->logfd >= 0)
		close(j->logfd);
	if (j->lockfd >= 0)
		close(j->lockfd); /* and so unlocked */
	if (j->dirfd >= 0)
		close(j->dirfd);
	free(j->buf);
	free(j->dir);
	free(j);
}

const struct xy_journal_info *xy_journal_info(const struct xy_journal *j)
{
	return &j->info;
}

/* ---------------------------------------------------------- compaction */

/* Writes n bytes to dir/tmp, syncs it and renames it over dir/name. */
static int replace_file(struct xy_journal *j, const char *tmp,
			const char *name, const uint8_t *p, size_t n,
			const char *crash_point)
{
	int fd = openat(j->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC |
					       O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	if (xy_write_all(fd, p, n) < 0 || fdatasync(fd) < 0) {
		int e = errno;
		close(fd);
		unlinkat(j->dirfd, tmp, 0);
		errno = e;
		return -1;
	}
	close(fd);
	if (crash_point)
		XY_CRASH_POINT(crash_point);
	if (renameat(j->dirfd, tmp, j->dirfd, name) < 0 || fsync(j->dirfd) < 0)
		return -1;
	return 0;
}

int xy_journal_compact(struct xy_journal *j,
		       int (*dump)(void *arg, struct xy_journal *snap),
		       void *arg, char *err, size_t errlen)
{
	if (xy_journal_flush(j) < 0)
		return xy_fail(err, errlen, errno, "%s/log: %s", j->dir,
			       strerror(errno));
	struct xy_journal snap = {.dirfd = -1, .lockfd = -1, .logfd = -1,
				  .epoch = j->epoch, .dir = j->dir};
	uint8_t last[8];
	put64(last, j->seq);
	int rc = -1;
	if (!append(&snap, SNAP, last, sizeof last) ||
	    dump(arg, &snap) < 0 || commit(&snap, DURABLE_BEFORE) < 0) {
		xy_fail(err, errlen, errno ? errno : EINVAL, "%s: the "
			"snapshot could not be made: %s", j->dir,
			strerror(errno ? errno : EINVAL));
		goto done;
	}
	if (replace_file(j, "snapshot.tmp", "snapshot", snap.buf, snap.len,
			 "compact-after-snapshot-write") < 0) {
		xy_fail(err, errlen, errno, "%s/snapshot: %s", j->dir,
			strerror(errno));
		goto done;
	}
	XY_CRASH_POINT("compact-after-snapshot-rename");
	/* The snapshot covers the log: an empty one replaces it. */
	if (replace_file(j, "log.tmp", "log", NULL, 0, NULL) < 0) {
		xy_fail(err, errlen, errno, "%s/log: %s", j->dir,
			strerror(errno));
		/* Renamed, but the directory not synced: the old log (our
		 * fd) is no longer the one in the directory. */
		if (faccessat(j->dirfd, "log.tmp", F_OK, 0) < 0)
			j->failed = 1;
		goto done;
	}
	XY_CRASH_POINT("compact-after-log-rename");
	int fd = openat(j->dirfd, "log", O_RDWR | O_APPEND | O_CLOEXEC);
	if (fd < 0) {
		xy_fail(err, errlen, errno, "%s/log: %s", j->dir,
			strerror(errno));
		j->failed = 1; /* the old log is gone from the directory */
		goto done;
	}
	close(j->logfd);
	j->logfd = fd;
	j->info.log_bytes = 0;
	rc = 0;
done:
	free(snap.buf);
	return rc;
}
