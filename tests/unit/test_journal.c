/*
 * test_journal.c: unit tests for the journal (journal.h): replay in
 * order across reopenings and epochs; the last flush torn at every byte
 * (cut, zeroed, garbage, one page lost), lost whole; a flipped bit at the
 * end and in the middle; sync mode's unsynced flushes; a format-1 log;
 * the lock; compaction, and compaction or a flush killed at each crash
 * point in a forked child, then the journal reopened.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "journal.h"
#include "util.h"

#define MAX_SEEN 4096
#define HDR 28
#define EPOCH_FLUSH (3 * HDR) /* an opening's EPOCH record and its COMMIT */

/* What a replay saw: each record's type, epoch, seq and payload. */
struct seen {
	int n;
	unsigned type[MAX_SEEN];
	uint32_t epoch[MAX_SEEN];
	uint64_t seq[MAX_SEEN];
	char text[MAX_SEEN][32];
	int refuse_at; /* a record number (1-based) to refuse; 0: none */
};

static int record(void *arg, unsigned type, uint32_t epoch, uint64_t seq,
		  const void *data, size_t len, char *err, size_t errlen)
{
	struct seen *s = arg;
	XY_CHECK(s->n < MAX_SEEN);
	if (len >= sizeof s->text[0]) /* a long one: its start */
		len = sizeof s->text[0] - 1;
	if (s->refuse_at && s->n + 1 == s->refuse_at) {
		snprintf(err, errlen, "not this one");
		return -1;
	}
	s->type[s->n] = type;
	s->epoch[s->n] = epoch;
	s->seq[s->n] = seq;
	memcpy(s->text[s->n], data, len);
	s->text[s->n][len] = 0;
	s->n++;
	return 0;
}

static struct xy_journal *open_j(const char *dir, struct seen *s)
{
	char err[512];
	memset(s, 0, sizeof *s);
	struct xy_journal *j = xy_journal_open(dir, XY_JOURNAL_PROCESS,
					       record, s, err, sizeof err);
	if (!j)
		fprintf(stderr, "open: %s\n", err);
	XY_CHECK(j);
	return j;
}

static void put(struct xy_journal *j, unsigned type, const char *text)
{
	XY_CHECK(xy_journal_append(j, type, text, strlen(text)) > 0);
}

static off_t size_of(const char *path)
{
	struct stat st;
	XY_CHECK(stat(path, &st) == 0);
	return st.st_size;
}

/* Records come back in order, typed, across reopenings; each opening is
 * a new epoch, and sequence numbers go on. */
static void t_replay_in_order(void)
{
	const char *dir = xy_test_path("j");
	struct seen s;
	struct xy_journal *j = open_j(dir, &s);
	XY_CHECK_EQ(s.n, 0);
	XY_CHECK_EQ(xy_journal_info(j)->epoch, 1);
	put(j, 1, "one");
	put(j, 2, "two");
	XY_CHECK(xy_journal_pending(j) > 0);
	XY_CHECK_EQ(xy_journal_flush(j), 0);
	XY_CHECK_EQ(xy_journal_pending(j), 0);
	put(j, 3, "three"); /* flushed by close */
	xy_journal_close(j);

	j = open_j(dir, &s);
	XY_CHECK_EQ(s.n, 3);
	XY_CHECK(!strcmp(s.text[0], "one") && !strcmp(s.text[2], "three"));
	XY_CHECK_EQ(s.type[1], 2);
	XY_CHECK_EQ(s.epoch[0], 1);
	/* seq 1 was the first epoch's own record, 2 its flush's commit
	 * mark; 5 the commit mark of "one" and "two". */
	XY_CHECK_EQ(s.seq[0], 3);
	XY_CHECK_EQ(s.seq[1], 4);
	XY_CHECK_EQ(s.seq[2], 6);
	XY_CHECK_EQ(xy_journal_info(j)->epoch, 2);
	XY_CHECK_EQ(xy_journal_info(j)->records, 3);
	put(j, 4, "four");
	xy_journal_close(j);

	j = open_j(dir, &s);
	XY_CHECK_EQ(s.n, 4);
	XY_CHECK_EQ(s.epoch[3], 2);
	XY_CHECK_EQ(xy_journal_info(j)->epoch, 3);
	/* An empty payload, and one too large. */
	XY_CHECK(xy_journal_append(j, 5, NULL, 0) > 0);
	XY_CHECK(xy_journal_append(j, 5, "x", XY_JOURNAL_RECORD_MAX + 1) == 0);
	XY_CHECK_EQ(errno, EMSGSIZE);
	XY_CHECK(xy_journal_append(j, 0xffff, "x", 1) == 0);
	XY_CHECK_EQ(errno, EINVAL);
	XY_CHECK(xy_journal_append(j, 0xfffe, "x", 1) == 0); /* COMMIT's */
	XY_CHECK_EQ(errno, EINVAL);
	xy_journal_close(j);
}

/* A second opening of a journal in use is refused, naming the first's
 * pid; once closed, it opens. */
static void t_lock(void)
{
	const char *dir = xy_test_path("j");
	struct seen s, s2;
	char err[512];
	struct xy_journal *j = open_j(dir, &s);
	XY_CHECK(!xy_journal_open(dir, XY_JOURNAL_SYNC, record, &s2, err,
				  sizeof err));
	XY_CHECK_EQ(errno, EWOULDBLOCK);
	char pid[32];
	snprintf(pid, sizeof pid, "(pid %ld)", (long)getpid());
	XY_CHECK(strstr(err, "is in use by another manager"));
	XY_CHECK(strstr(err, pid));
	xy_journal_close(j);
	j = open_j(dir, &s);
	xy_journal_close(j);
}

/* Writes two records in one flush, then a last flush of three records
 * of about 400 bytes each, and closes: the log, and the size it had
 * before the last flush. */
static off_t three_records(const char *dir, char *log, size_t n)
{
	struct seen s;
	struct xy_journal *j = open_j(dir, &s);
	put(j, 1, "alpha");
	put(j, 1, "beta");
	XY_CHECK_EQ(xy_journal_flush(j), 0);
	snprintf(log, n, "%s/log", dir);
	off_t before = size_of(log);
	put(j, 1, "gamma-the-last");
	char big[400];
	memset(big, 'z', sizeof big);
	XY_CHECK(xy_journal_append(j, 2, big, sizeof big) > 0);
	XY_CHECK(xy_journal_append(j, 2, big, sizeof big - 1) > 0);
	xy_journal_close(j);
	return before;
}

static uint8_t *slurp(const char *path, off_t *n)
{
	*n = size_of(path);
	uint8_t *p = malloc((size_t)*n);
	int fd = open(path, O_RDONLY);
	XY_CHECK(p && fd >= 0 && read(fd, p, (size_t)*n) == *n);
	close(fd);
	return p;
}

static void spill(const char *path, const uint8_t *p, off_t n)
{
	int fd = open(path, O_WRONLY | O_TRUNC);
	XY_CHECK(fd >= 0 && write(fd, p, (size_t)n) == n);
	close(fd);
}

/* The log as given opens with the first flushes' two records and not one
 * of the last flush's; what followed them is cut. */
static void lost_last_flush(const char *dir, const char *log,
			    const uint8_t *p, off_t n, off_t before)
{
	spill(log, p, n);
	struct seen s;
	struct xy_journal *j = open_j(dir, &s);
	XY_CHECK_EQ(s.n, 2);
	XY_CHECK(!strcmp(s.text[1], "beta"));
	XY_CHECK_EQ(xy_journal_info(j)->cut_bytes, n - before);
	xy_journal_close(j);
	/* Cut, then the new epoch's flush. */
	XY_CHECK_EQ(size_of(log), before + EPOCH_FLUSH);
}

/* The last flush (three records and its commit mark, one write never
 * synced) torn at every byte: cut there, zeroed from there on, garbage
 * from there on, and each 512-byte sector of it alone zeroed or garbage
 * (a page that did not reach the disk while later ones did). Each time
 * exactly that flush is lost, and the journal goes on from there. */
static void t_torn_tail_every_byte(void)
{
	char log[600];
	char dir[512];
	/* Some 3,000 openings, each with its syncs: on a tmpfs if there is
	 * one, where a sync costs nothing. */
	char shm[] = "/dev/shm/xytest-torn-XXXXXX";
	int on_shm = mkdtemp(shm) != NULL;
	snprintf(dir, sizeof dir, "%s/j", on_shm ? shm : xy_test_path("s"));
	off_t before = three_records(dir, log, sizeof log), full;
	uint8_t *whole = slurp(log, &full), *p = malloc((size_t)full);
	XY_CHECK(p && full > before + 900);
	srandom(13);
	for (off_t k = before; k < full; k++) {
		lost_last_flush(dir, log, whole, k, before);
		/* Zeroes over bytes that were zero already (the end of the
		 * commit mark's flags) change nothing: no tear. */
		memcpy(p, whole, (size_t)full);
		memset(p + k, 0, (size_t)(full - k));
		if (memcmp(p + k, whole + k, (size_t)(full - k)))
			lost_last_flush(dir, log, p, full, before);
		for (off_t i = k; i < full; i++)
			p[i] = (uint8_t)random();
		if (memcmp(p + k, whole + k, (size_t)(full - k)))
			lost_last_flush(dir, log, p, full, before);
	}
	for (off_t sec = before & ~(off_t)511; sec < full; sec += 512) {
		off_t from = sec > before ? sec : before;
		off_t to = sec + 512 < full ? sec + 512 : full;
		memcpy(p, whole, (size_t)full);
		memset(p + from, 0, (size_t)(to - from));
		lost_last_flush(dir, log, p, full, before);
		for (off_t i = from; i < to; i++)
			p[i] = (uint8_t)random();
		lost_last_flush(dir, log, p, full, before);
	}
	/* Whole, all of it comes back. */
	spill(log, whole, full);
	struct seen s;
	struct xy_journal *j = open_j(dir, &s);
	XY_CHECK_EQ(s.n, 5);
	XY_CHECK_EQ(xy_journal_info(j)->cut_bytes, 0);
	xy_journal_close(j);
	free(p);
	free(whole);
	if (on_shm) {
		char rm[600];
		snprintf(rm, sizeof rm, "rm -rf '%s'", shm);
		XY_CHECK(system(rm) == 0);
	}
}

static void flip(const char *path, off_t at)
{
	int fd = open(path, O_RDWR);
	XY_CHECK(fd >= 0);
	uint8_t b;
	XY_CHECK(pread(fd, &b, 1, at) == 1);
	b ^= 0x10;
	XY_CHECK(pwrite(fd, &b, 1, at) == 1);
	close(fd);
}

/* A flipped bit in the last record is a torn tail: cut. In a record
 * with good ones after it, it is damage: the open is refused, naming the
 * offset, and the files are left as they were. */
static void t_flipped_bit(void)
{
	char log[600], dir[512], err[512];
	snprintf(dir, sizeof dir, "%s", xy_test_path("j"));
	off_t before = three_records(dir, log, sizeof log);
	flip(log, before + 30);
	struct seen s;
	struct xy_journal *j = open_j(dir, &s);
	XY_CHECK_EQ(s.n, 2);
	xy_journal_close(j);

	/* Now a bit of "alpha" (the first record after the epoch's flush),
	 * in a flush that a whole later one (the new epoch's) follows. */
	off_t size = size_of(log);
	flip(log, EPOCH_FLUSH + 30);
	memset(&s, 0, sizeof s);
	XY_CHECK(!xy_journal_open(dir, XY_JOURNAL_PROCESS, record, &s, err,
				  sizeof err));
	XY_CHECK_EQ(errno, EINVAL);
	XY_CHECK(strstr(err, "damaged record at offset 84,"));
	XY_CHECK(strstr(err, "with good records after it"));
	XY_CHECK_EQ(size_of(log), size);
	XY_CHECK_EQ(s.n, 0); /* nothing of it was replayed */
	/* A bit of the commit mark of "alpha" and "beta": the same. */
	flip(log, EPOCH_FLUSH + 30);
	flip(log, EPOCH_FLUSH + 2 * HDR + 5 + 4 + HDR + 3);
	XY_CHECK(!xy_journal_open(dir, XY_JOURNAL_PROCESS, record, &s, err,
				  sizeof err));
	XY_CHECK(strstr(err, "damaged record at offset 149,"));
	flip(log, EPOCH_FLUSH + 2 * HDR + 5 + 4 + HDR + 3);
	/* The lock went with the failed open. */
	j = open_j(dir, &s);
	XY_CHECK_EQ(s.n, 2);
	xy_journal_close(j);
}

/* A record of an epoch older than the one before it (a stale manager's,
 * written past the lock), its checksum right: refused, naming it. */
static void t_wrong_epoch(void)
{
	char log[600], dir[512], err[512];
	snprintf(dir, sizeof dir, "%s", xy_test_path("j"));
	three_records(dir, log, sizeof log);
	int fd = open(log, O_RDWR);
	XY_CHECK(fd >= 0);
	uint8_t rec[28 + 5];
	/* "alpha", after the epoch's own header-only record. */
	XY_CHECK(pread(fd, rec, sizeof rec, EPOCH_FLUSH) ==
		 (ssize_t)sizeof rec);
	memset(rec + 16, 0, 4);
	uint32_t crc = xy_crc32c(xy_crc32c(0, rec + 12, 16), rec + 28, 5);
	memcpy(rec + 8, &crc, 4); /* little-endian, as this machine */
	XY_CHECK(pwrite(fd, rec, sizeof rec, EPOCH_FLUSH) ==
		 (ssize_t)sizeof rec);
	close(fd);
	struct seen s;
	memset(&s, 0, sizeof s);
	XY_CHECK(!xy_journal_open(dir, XY_JOURNAL_PROCESS, record, &s, err,
				  sizeof err));
	XY_CHECK_EQ(errno, EINVAL);
	XY_CHECK(strstr(err, "with epoch 0: out of order"));
}

/* A whole record repeated at the end (a second writer, or a bug): its
 * checksum holds, so it is no torn write; refused, not cut, though no
 * flush follows it. */
static void t_whole_record_out_of_place(void)
{
	char log[600], dir[512], err[512];
	snprintf(dir, sizeof dir, "%s", xy_test_path("j"));
	three_records(dir, log, sizeof log);
	int fd = open(log, O_RDWR | O_APPEND);
	XY_CHECK(fd >= 0);
	uint8_t rec[28 + 5];
	XY_CHECK(pread(fd, rec, sizeof rec, EPOCH_FLUSH) ==
		 (ssize_t)sizeof rec);
	XY_CHECK(write(fd, rec, sizeof rec) == (ssize_t)sizeof rec);
	close(fd);
	struct seen s;
	memset(&s, 0, sizeof s);
	XY_CHECK(!xy_journal_open(dir, XY_JOURNAL_PROCESS, record, &s, err,
				  sizeof err));
	XY_CHECK_EQ(errno, EINVAL);
	XY_CHECK(strstr(err, "out of order"));
}

/* A callback's refusal fails the open with its reason. */
static void t_refused_record(void)
{
	char log[600], dir[512], err[512];
	snprintf(dir, sizeof dir, "%s", xy_test_path("j"));
	three_records(dir, log, sizeof log);
	struct seen s = {.refuse_at = 2};
	XY_CHECK(!xy_journal_open(dir, XY_JOURNAL_PROCESS, record, &s, err,
				  sizeof err));
	XY_CHECK(strstr(err, "not this one"));
}

/* Records written in a child killed at a crash point (forked, with the
 * point in its environment). Returns the child's signal. */
static int crash_child(const char *dir, const char *point, int compact);

static int dump_state(void *arg, struct xy_journal *snap)
{
	int *n = arg;
	char text[32];
	for (int i = 0; i < *n; i++) {
		snprintf(text, sizeof text, "state-%d", i);
		if (!xy_journal_append(snap, 7, text, strlen(text)))
			return -1;
	}
	return 0;
}

/* Compaction replaces the log's records by the state's; records after
 * it follow; a second compaction replaces the first. */
static void t_compact(void)
{
	const char *dir = xy_test_path("j");
	char err[512], log[600];
	struct seen s;
	struct xy_journal *j = open_j(dir, &s);
	for (int i = 0; i < 50; i++)
		put(j, 1, "churn");
	int state = 3;
	XY_CHECK_EQ(xy_journal_compact(j, dump_state, &state, err,
				       sizeof err), 0);
	snprintf(log, sizeof log, "%s/log", dir);
	XY_CHECK_EQ(size_of(log), 0);
	put(j, 2, "after");
	xy_journal_close(j);
	j = open_j(dir, &s);
	XY_CHECK_EQ(s.n, 4);
	XY_CHECK(!strcmp(s.text[0], "state-0"));
	XY_CHECK(!strcmp(s.text[3], "after"));
	XY_CHECK(s.seq[3] > 50);
	state = 1;
	XY_CHECK_EQ(xy_journal_compact(j, dump_state, &state, err,
				       sizeof err), 0);
	xy_journal_close(j);
	j = open_j(dir, &s);
	XY_CHECK_EQ(s.n, 1);
	XY_CHECK(!strcmp(s.text[0], "state-0"));
	xy_journal_close(j);
}

static int crash_child(const char *dir, const char *point, int compact)
{
	pid_t pid = fork();
	XY_CHECK(pid >= 0);
	if (pid == 0) {
		struct seen s;
		char err[512];
		struct xy_journal *j = open_j(dir, &s);
		setenv("XYLEM_CRASH_POINT", point, 1);
		put(j, 1, "late");
		if (compact) {
			int state = 2;
			xy_journal_compact(j, dump_state, &state, err,
					   sizeof err);
		} else {
			xy_journal_flush(j);
			put(j, 1, "later");
			xy_journal_close(j);
		}
		_exit(0);
	}
	int status;
	XY_CHECK(waitpid(pid, &status, 0) == pid);
	return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

/* Killed at each point of a compaction, the journal reopens as either
 * the old state or the new one, never a mix, never nothing. */
static void t_compact_crash_points(void)
{
	static const char *points[] = {"compact-after-snapshot-write",
				       "compact-after-snapshot-rename",
				       "compact-after-log-rename"};
	for (size_t p = 0; p < sizeof points / sizeof points[0]; p++) {
		char dir[512];
		snprintf(dir, sizeof dir, "%s", xy_test_path(points[p]));
		struct seen s;
		struct xy_journal *j = open_j(dir, &s);
		put(j, 1, "kept");
		xy_journal_close(j);
		XY_CHECK_EQ(crash_child(dir, points[p], 1), SIGKILL);
		j = open_j(dir, &s);
		XY_CHECK_EQ(s.n, 2);
		if (!strcmp(s.text[0], "kept")) { /* the old: the log */
			XY_CHECK(p == 0);
			XY_CHECK(!strcmp(s.text[1], "late"));
		} else { /* the new: the snapshot */
			XY_CHECK(p > 0);
			XY_CHECK(!strcmp(s.text[0], "state-0"));
			XY_CHECK(!strcmp(s.text[1], "state-1"));
		}
		/* It goes on: a record now comes back after them. */
		put(j, 1, "next");
		xy_journal_close(j);
		j = open_j(dir, &s);
		XY_CHECK(!strcmp(s.text[s.n - 1], "next"));
		xy_journal_close(j);
	}
}

/* Killed before a flush's write, nothing of it is there; after it, all
 * of it is (kill -9 loses no written record). */
static void t_flush_crash_points(void)
{
	char dir[512];
	struct seen s;
	snprintf(dir, sizeof dir, "%s", xy_test_path("before"));
	XY_CHECK_EQ(crash_child(dir, "journal-before-write", 0), SIGKILL);
	struct xy_journal *j = open_j(dir, &s);
	XY_CHECK_EQ(s.n, 0);
	xy_journal_close(j);
	snprintf(dir, sizeof dir, "%s", xy_test_path("after"));
	XY_CHECK_EQ(crash_child(dir, "journal-after-write", 0), SIGKILL);
	j = open_j(dir, &s);
	XY_CHECK_EQ(s.n, 1);
	XY_CHECK(!strcmp(s.text[0], "late"));
	xy_journal_close(j);
	/* XYLEM_CRASH_AFTER=2: the second visit, so "late" is written and
	 * "later" is not. */
	snprintf(dir, sizeof dir, "%s", xy_test_path("second"));
	setenv("XYLEM_CRASH_AFTER", "2", 1);
	XY_CHECK_EQ(crash_child(dir, "journal-before-write", 0), SIGKILL);
	unsetenv("XYLEM_CRASH_AFTER");
	j = open_j(dir, &s);
	XY_CHECK_EQ(s.n, 1);
	XY_CHECK(!strcmp(s.text[0], "late"));
	xy_journal_close(j);
	/* Killed between a flush's records and its commit mark: the records
	 * are on disk, never replayed, and cut. */
	snprintf(dir, sizeof dir, "%s", xy_test_path("commit"));
	XY_CHECK_EQ(crash_child(dir, "journal-before-commit", 0), SIGKILL);
	j = open_j(dir, &s);
	XY_CHECK_EQ(s.n, 0);
	XY_CHECK_EQ(xy_journal_info(j)->cut_bytes, HDR + 4);
	put(j, 1, "then");
	xy_journal_close(j);
	j = open_j(dir, &s);
	XY_CHECK_EQ(s.n, 1);
	XY_CHECK(!strcmp(s.text[0], "then"));
	xy_journal_close(j);
}

/* In sync mode every flush is synced; the records are the same. */
static void t_sync_mode(void)
{
	const char *dir = xy_test_path("j");
	char err[512];
	struct seen s = {0};
	struct xy_journal *j = xy_journal_open(dir, XY_JOURNAL_SYNC, record,
					       &s, err, sizeof err);
	XY_CHECK(j);
	put(j, 9, "synced");
	XY_CHECK_EQ(xy_journal_flush(j), 0);
	XY_CHECK_EQ(xy_journal_pending(j), 0);
	/* Written without a sync (a RUN record before its TASK): the next
	 * flush still has it to sync, though nothing is buffered. */
	put(j, 9, "written");
	XY_CHECK_EQ(xy_journal_write(j), 0);
	XY_CHECK(xy_journal_pending(j) > 0);
	XY_CHECK_EQ(xy_journal_flush(j), 0);
	XY_CHECK_EQ(xy_journal_pending(j), 0);
	xy_journal_close(j);
	j = open_j(dir, &s);
	XY_CHECK_EQ(s.n, 2);
	XY_CHECK_EQ(s.type[0], 9);
	xy_journal_close(j);
	/* In the default mode a write leaves nothing to do. */
	j = open_j(dir, &s);
	put(j, 9, "plain");
	XY_CHECK_EQ(xy_journal_write(j), 0);
	XY_CHECK_EQ(xy_journal_pending(j), 0);
	xy_journal_close(j);
}

/* Sync mode: a flush written but not synced (xy_journal_write), then the
 * turn's flush, and the machine lost during that flush's sync: the
 * first flush's page never reached the disk, the second's did. Nothing
 * of either was acknowledged, so both are cut, not refused. Once a flush
 * was synced, damage in it with a later flush after it is refused. */
static void t_sync_unsynced(void)
{
	const char *dir = xy_test_path("j");
	char err[512], log[600];
	struct seen s = {0};
	snprintf(log, sizeof log, "%s/log", dir);
	struct xy_journal *j = xy_journal_open(dir, XY_JOURNAL_SYNC, record,
					       &s, err, sizeof err);
	XY_CHECK(j);
	put(j, 9, "synced");
	XY_CHECK_EQ(xy_journal_flush(j), 0);
	off_t synced = size_of(log);
	put(j, 9, "written");
	XY_CHECK_EQ(xy_journal_write(j), 0);
	put(j, 9, "flushed");
	XY_CHECK_EQ(xy_journal_flush(j), 0);
	xy_journal_close(j);
	off_t full;
	uint8_t *whole = slurp(log, &full);
	flip(log, synced + 30); /* in "written" */
	j = open_j(dir, &s);
	XY_CHECK_EQ(s.n, 1);
	XY_CHECK(!strcmp(s.text[0], "synced"));
	XY_CHECK_EQ(xy_journal_info(j)->cut_bytes, full - synced);
	xy_journal_close(j);
	/* The same log whole, in the default mode: "written" is flipped
	 * and a flush written after it had its records durable. */
	spill(log, whole, full);
	j = open_j(dir, &s);
	XY_CHECK_EQ(s.n, 3);
	put(j, 9, "later");
	xy_journal_close(j);
	flip(log, synced + 30);
	XY_CHECK(!xy_journal_open(dir, XY_JOURNAL_SYNC, record, &s, err,
				  sizeof err));
	XY_CHECK(strstr(err, "with good records after it"));
	free(whole);
}

/* Writes a format-1 record ("XYJ1", no commit marks) at the end of fd. */
static void put_v1(int fd, unsigned type, uint32_t epoch, uint64_t seq,
		   const char *text)
{
	uint8_t rec[HDR + 64];
	size_t len = strlen(text);
	uint32_t magic = 0x314a5958u, n = (uint32_t)len;
	memset(rec, 0, HDR);
	memcpy(rec, &magic, 4); /* little-endian, as this machine */
	memcpy(rec + 4, &n, 4);
	rec[12] = (uint8_t)type;
	memcpy(rec + 16, &epoch, 4);
	memcpy(rec + 20, &seq, 8);
	memcpy(rec + HDR, text, len);
	uint32_t crc = xy_crc32c(xy_crc32c(0, rec + 12, 16), rec + HDR, len);
	memcpy(rec + 8, &crc, 4);
	XY_CHECK(write(fd, rec, HDR + len) == (ssize_t)(HDR + len));
}

/* A log of format 1 (an older xylem's) is read compatibly, each record
 * on its own; a torn last one is cut, as before; new records follow in
 * format 2 and the whole comes back. */
static void t_format_1(void)
{
	const char *dir = xy_test_path("j");
	char log[600];
	XY_CHECK(mkdir(dir, 0700) == 0);
	snprintf(log, sizeof log, "%s/log", dir);
	int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	XY_CHECK(fd >= 0);
	put_v1(fd, 0, 1, 1, "");
	put_v1(fd, 3, 1, 2, "old-one");
	put_v1(fd, 3, 1, 3, "old-two");
	put_v1(fd, 3, 1, 4, "old-torn");
	XY_CHECK(ftruncate(fd, lseek(fd, 0, SEEK_END) - 3) == 0);
	close(fd);
	struct seen s;
	struct xy_journal *j = open_j(dir, &s);
	XY_CHECK_EQ(s.n, 2);
	XY_CHECK(!strcmp(s.text[1], "old-two"));
	XY_CHECK_EQ(xy_journal_info(j)->epoch, 2);
	put(j, 3, "new");
	xy_journal_close(j);
	j = open_j(dir, &s);
	XY_CHECK_EQ(s.n, 3);
	XY_CHECK(!strcmp(s.text[2], "new"));
	XY_CHECK_EQ(s.seq[2], 6); /* after 3, the EPOCH (4) and COMMIT (5) */
	xy_journal_close(j);
}

int main(int argc, char **argv)
{
	static const struct xy_test tests[] = {
		XY_TEST(t_replay_in_order),
		XY_TEST(t_lock),
		XY_TEST(t_torn_tail_every_byte),
		XY_TEST(t_flipped_bit),
		XY_TEST(t_refused_record),
		XY_TEST(t_wrong_epoch),
		XY_TEST(t_whole_record_out_of_place),
		XY_TEST(t_compact),
		XY_TEST(t_compact_crash_points),
		XY_TEST(t_flush_crash_points),
		XY_TEST(t_sync_mode),
		XY_TEST(t_sync_unsynced),
		XY_TEST(t_format_1),
		{0},
	};
	return xy_test_main(argc, argv, tests);
}
