/*
 * fuzz_journal.c: libFuzzer target for the journal's readers
 * (journal.c, memo.c). The first byte picks what the rest is:
 *
 *   even: a whole log file, opened as a journal (the framing, the
 *         checksums, the commit marks that end each flush, format-1
 *         records, a torn tail cut, damage refused, sequence checks);
 *   odd:  the payload of one record, wrapped in a good frame (and
 *         flush) of the type the second byte gives (DONE, RUN, UNRUN,
 *         DONE_TEMPS), opened by the manager's reader of finished tasks
 *         (memo.c).
 *
 * Opening must never read out of bounds, leak, or crash; a journal that
 * opened must open again to the same records.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "journal.h"
#include "log.h"
#include "memo.h"
#include "util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char dir[64];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	xy_log_set_level(-1); /* not a line: torn tails are expected here */
	/* On a tmpfs if there is one: each opening syncs the log and the
	 * directory, which on a disk made a run cost milliseconds. */
	snprintf(dir, sizeof dir, "/dev/shm/xylem-fuzz-journal-XXXXXX");
	if (!mkdtemp(dir)) {
		snprintf(dir, sizeof dir, "/tmp/xylem-fuzz-journal-XXXXXX");
		if (!mkdtemp(dir))
			abort();
	}
	return 0;
}

static int count(void *arg, unsigned type, uint32_t epoch, uint64_t seq,
		 const void *data, size_t len, char *err, size_t errlen)
{
	(void)type, (void)epoch, (void)seq, (void)data, (void)err;
	(void)errlen;
	(*(uint64_t *)arg) += 1 + len;
	return 0;
}

static void fresh(void)
{
	char path[128];
	static const char *names[] = {"log", "snapshot", "lock"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		unlink(path);
	}
}

static void whole_log(const uint8_t *data, size_t size)
{
	char path[128], err[512];
	snprintf(path, sizeof path, "%s/log", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size))
		abort();
	close(fd);
	uint64_t first = 0, again = 0;
	struct xy_journal *j = xy_journal_open(dir, XY_JOURNAL_PROCESS, count,
					       &first, err, sizeof err);
	if (!j)
		return;
	xy_journal_close(j);
	j = xy_journal_open(dir, XY_JOURNAL_PROCESS, count, &again, err,
			    sizeof err);
	if (!j || again != first)
		abort(); /* what opened once opens the same again */
	xy_journal_close(j);
}

static void one_record(const uint8_t *data, size_t size)
{
	char err[512];
	if (size < 1)
		return;
	uint64_t n = 0;
	struct xy_journal *j = xy_journal_open(dir, XY_JOURNAL_PROCESS, count,
					       &n, err, sizeof err);
	if (!j)
		abort();
	if (!xy_journal_append(j, 1 + data[0] % 4, data + 1, size - 1))
		abort();
	xy_journal_close(j);
	struct xy_memo *memo = xy_memo_open(NULL, dir, 0, err, sizeof err);
	xy_memo_destroy(memo);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	fresh();
	if (data[0] % 2 == 0)
		whole_log(data + 1, size - 1);
	else
		one_record(data + 1, size - 1);
	return 0;
}
