/*
 * journal_replay.c: a journal of N finished tasks: its size, the time to
 * replay it (xy_memo_open), and what compaction does to both
 * (docs/durability.md). Records are made the way the manager makes them,
 * through memo.c's own functions (xy_memo_try when a task is ready,
 * xy_memo_finished when it ends, xy_memo_flush every TURN tasks, as once
 * per loop turn), for two kinds of task:
 *
 *   command  `true I` with one output file, each at a path of its own
 *            (a DONE record with a place: 113 B with its header)
 *   call     a Python-call-like task (a library and a 40-byte payload)
 *            without outputs, with a 24-byte result (a RESULT record
 *            and a DONE record)
 *
 * Then the commands are recorded twice more with another command (their
 * inputs changed, their outputs rewritten: same places), with compaction
 * off, at its default bound (64 MiB of log), and at a bound of 1 MB, and
 * each journal is replayed again.
 *
 * The outputs' paths are all one real file, reached through distinct
 * paths (D/a/../b/../../out), so that a million tasks need no million files.
 *
 *   bench_journal_replay [N ...]        (default: 100000 1000000)
 *
 * Target (issue 13): a journal of 1M tasks replays in a few seconds; its
 * size stays bounded by compaction.
 */
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "journal.h"
#include "memo.h"
#include "util.h"

#define TURN 1000

static char root[256];

static size_t heap_bytes(void)
{
	struct mallinfo2 mi = mallinfo2();
	return mi.uordblks + mi.hblkhd;
}

static uint64_t file_size(const char *dir, const char *name)
{
	char p[1024];
	struct stat st;
	snprintf(p, sizeof p, "%s/%s", dir, name);
	return stat(p, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static uint64_t journal_bytes(const char *dir)
{
	return file_size(dir, "log") + file_size(dir, "snapshot");
}

static struct xy_memo *open_memo(const char *dir, double *secs)
{
	char err[512];
	double t0 = xy_mono();
	struct xy_memo *memo = xy_memo_open(NULL, dir, 0, err, sizeof err);
	if (!memo) {
		fprintf(stderr, "open %s: %s\n", dir, err);
		exit(1);
	}
	if (secs)
		*secs = xy_mono() - t0;
	return memo;
}

/* Records tasks 0..n-1 of a kind ("command" with generation gen, or
 * "call") through memo.c, flushing every TURN. */
static void record(struct xy_memo *memo, const char *kind, long n, int gen)
{
	char cmd[64], path[512], pay[40];
	static char reply[24] = "a pickled reply (24 B).";
	struct xy_file f = {.path = path};
	struct task_file out = {.file = &f, .as = "out"};
	int call = !strcmp(kind, "call");
	for (long i = 0; i < n; i++) {
		struct xy_task t = {.result = XY_RESULT_SUCCESS};
		if (call) {
			memset(pay, 0, sizeof pay);
			snprintf(pay, sizeof pay, "call %ld", i);
			t.library = "xylem-py-0123456789abcdef";
			t.payload = pay;
			t.payload_len = sizeof pay;
			t.output = reply;
			t.output_len = sizeof reply;
		} else {
			snprintf(cmd, sizeof cmd, "true %ld %d", i, gen);
			snprintf(path, sizeof path, "%s/d/%ld/../%ld/../../out",
				 root, i / 1000, i % 1000);
			t.command = cmd;
			t.outputs = &out;
			t.n_outputs = 1;
			f.producer = &t;
		}
		/* As the manager does: the fingerprint when the task is
		 * ready (not known: it runs), the record when it ends. */
		if (xy_memo_try(memo, &t)) {
			fprintf(stderr, "task %ld known already\n", i);
			exit(1);
		}
		xy_memo_finished(memo, &t);
		free(t.key);
		if ((i + 1) % TURN == 0)
			xy_memo_flush(memo);
	}
	xy_memo_flush(memo);
}

static void mkdirs(long n)
{
	char p[512];
	snprintf(p, sizeof p, "%s/d", root);
	mkdir(p, 0755);
	(void)n;
	for (long i = 0; i < 1000; i++) {
		snprintf(p, sizeof p, "%s/d/%ld", root, i);
		mkdir(p, 0755);
	}
	snprintf(p, sizeof p, "%s/out", root);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || write(fd, "x", 1) != 1) {
		perror(p);
		exit(1);
	}
	close(fd);
}

/* One journal: n tasks of a kind written, then replayed. */
static void fresh(const char *kind, long n)
{
	char dir[512];
	snprintf(dir, sizeof dir, "%s/%s-%ld", root, kind, n);
	setenv("XYLEM_JOURNAL_COMPACT_BYTES", "18446744073709551615", 1);
	struct xy_memo *memo = open_memo(dir, NULL);
	double t0 = xy_mono();
	record(memo, kind, n, 0);
	double w = xy_mono() - t0;
	xy_memo_destroy(memo);
	uint64_t bytes = journal_bytes(dir);
	double r;
	size_t h0 = heap_bytes();
	memo = open_memo(dir, &r);
	size_t h1 = heap_bytes();
	printf("%-8s %9ld tasks: written in %6.2f s (%8.0f tasks/s), "
	       "%6.1f MB (%3.0f B a task); replayed in %6.3f s "
	       "(%5.2f us a task), %lld known, %3.0f B of memory a task\n",
	       kind, n, w, n / w, bytes / 1e6, (double)bytes / n, r,
	       r * 1e6 / n, (long long)xy_memo_known(memo),
	       (double)(h1 - h0) / n);
	xy_memo_destroy(memo);
	fflush(stdout);
}

/* The n commands recorded thrice (their outputs rewritten twice), with
 * compaction at bound (a byte count, as XYLEM_JOURNAL_COMPACT_BYTES;
 * NULL: the default), then replayed. */
static void rewritten(long n, const char *bound, const char *what)
{
	char dir[512];
	snprintf(dir, sizeof dir, "%s/rewritten-%s-%ld", root, what, n);
	if (bound)
		setenv("XYLEM_JOURNAL_COMPACT_BYTES", bound, 1);
	else
		unsetenv("XYLEM_JOURNAL_COMPACT_BYTES");
	double t0 = xy_mono();
	for (int gen = 0; gen < 3; gen++) {
		struct xy_memo *memo = open_memo(dir, NULL);
		record(memo, "command", n, gen);
		xy_memo_destroy(memo);
	}
	double w = xy_mono() - t0;
	double r;
	struct xy_memo *memo = open_memo(dir, &r);
	printf("command  %9ld tasks x 3 runs, compaction %-8s: written in "
	       "%6.2f s, %6.1f MB (snapshot %5.1f MB); replayed in %6.3f s, "
	       "%lld known\n",
	       n, what, w, journal_bytes(dir) / 1e6,
	       file_size(dir, "snapshot") / 1e6, r,
	       (long long)xy_memo_known(memo));
	xy_memo_destroy(memo);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	long sizes[8] = {100000, 1000000};
	int n_sizes = 2;
	if (argc > 1) {
		n_sizes = 0;
		for (int i = 1; i < argc && n_sizes < 8; i++)
			sizes[n_sizes++] = atol(argv[i]);
	}
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	snprintf(root, sizeof root, "%s/xylem-bench-journal-XXXXXX", tmp);
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 1;
	}
	long most = 0;
	for (int i = 0; i < n_sizes; i++)
		most = sizes[i] > most ? sizes[i] : most;
	mkdirs(most);
	setenv("XYLEM_LOG", "warn", 0);
	for (int i = 0; i < n_sizes; i++) {
		fresh("command", sizes[i]);
		fresh("call", sizes[i]);
		rewritten(sizes[i], "18446744073709551615", "off");
		rewritten(sizes[i], NULL, "default");
		rewritten(sizes[i], "1000000", "1MB");
	}
	xy_rm_rf(root);
	return 0;
}
