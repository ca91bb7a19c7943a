/*
 * test_memo_results.c: unit tests for the results a journal keeps
 * (memo_results.h), through a real journal (journal.h) reopened between
 * steps: a small result in its record and a large one in a file, both
 * given back after a reopening; a file cut or changed refuses; a result
 * forgotten by an empty one; results whose task the memo forgot pruned,
 * kept out of a snapshot, their files swept with stray ones; clients'
 * records kept across a reopening and a compaction.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "internal.h"
#include "journal.h"
#include "memo_results.h"
#include "util.h"

/* A journal with its results, as memo.c holds them. */
struct jr {
	struct xy_journal *j;
	struct xy_memo_results *r;
};

static int replay(void *arg, unsigned type, uint32_t epoch, uint64_t seq,
		  const void *data, size_t len, char *err, size_t errlen)
{
	struct jr *x = arg;
	(void)epoch;
	(void)seq;
	if (type == XY_MEMO_REC_RESULT)
		return xy_memo_results_replay(x->r, data, len, err, errlen);
	if (type == XY_MEMO_REC_CLIENT)
		return xy_memo_results_client_replay(x->r, data, len, err,
						     errlen);
	snprintf(err, errlen, "type %u", type);
	return -1;
}

static void jr_open(struct jr *x)
{
	char err[512];
	const char *dir = xy_test_path("j");
	x->r = xy_memo_results_create(dir, 0);
	XY_CHECK(x->r);
	x->j = xy_journal_open(dir, XY_JOURNAL_PROCESS, replay, x, err,
			       sizeof err);
	if (!x->j)
		fprintf(stderr, "open: %s\n", err);
	XY_CHECK(x->j);
}

static void jr_close(struct jr *x)
{
	XY_CHECK(xy_journal_flush(x->j) == 0);
	xy_journal_close(x->j);
	xy_memo_results_destroy(x->r);
}

static void fp_of(uint8_t fp[XY_ID_LEN], int n)
{
	memset(fp, 0, XY_ID_LEN);
	fp[0] = (uint8_t)n;
	fp[5] = 0xa5;
}

/* Records output (len bytes) and exit code under fingerprint n. */
static void record(struct jr *x, int n, const char *output, size_t len,
		   int exit_code)
{
	uint8_t fp[XY_ID_LEN];
	struct xy_task t;
	memset(&t, 0, sizeof t);
	t.output = (char *)output;
	t.output_len = len;
	t.exit_code = exit_code;
	fp_of(fp, n);
	XY_CHECK(xy_memo_results_record(x->r, x->j, fp, &t) == 0);
}

/* Restores fingerprint n into a task: 0 or -1; its output in *out. */
static int restore(struct jr *x, int n, char **out, size_t *len, int *code)
{
	uint8_t fp[XY_ID_LEN];
	struct xy_task t;
	memset(&t, 0, sizeof t);
	fp_of(fp, n);
	int rc = xy_memo_results_restore(x->r, fp, &t);
	*out = t.output;
	*len = t.output_len;
	*code = t.exit_code;
	return rc;
}

static char *big(size_t n, char c)
{
	char *p = malloc(n);
	XY_CHECK(p);
	memset(p, c, n);
	return p;
}

static int count_files(const char *dir)
{
	char cmd[1024];
	snprintf(cmd, sizeof cmd, "ls -A %s 2>/dev/null | wc -l", dir);
	FILE *f = popen(cmd, "r");
	int n = -1;
	XY_CHECK(f && fscanf(f, "%d", &n) == 1);
	pclose(f);
	return n;
}

static void t_small_and_large_across_reopening(void)
{
	struct jr x;
	char *out, *large = big(10000, 'L');
	size_t len;
	int code;
	jr_open(&x);
	record(&x, 1, "a reply", 7, 0);
	record(&x, 2, large, 10000, 3);
	jr_close(&x);
	XY_CHECK_EQ(count_files(xy_test_path("j/results")), 1);
	jr_open(&x);
	XY_CHECK(restore(&x, 1, &out, &len, &code) == 0);
	XY_CHECK(len == 7 && !memcmp(out, "a reply", 7) && code == 0);
	free(out);
	XY_CHECK(restore(&x, 2, &out, &len, &code) == 0);
	XY_CHECK(len == 10000 && !memcmp(out, large, len) && code == 3);
	free(out);
	/* Not known: an empty output, and no refusal. */
	XY_CHECK(restore(&x, 9, &out, &len, &code) == 0);
	XY_CHECK(!out && len == 0 && code == 0);
	jr_close(&x);
	free(large);
}

static void t_a_damaged_file_refuses(void)
{
	struct jr x;
	char *out, *large = big(6000, 'x'), path[4096], hex[2 * XY_ID_LEN + 1];
	uint8_t fp[XY_ID_LEN];
	size_t len;
	int code;
	jr_open(&x);
	record(&x, 1, large, 6000, 0);
	record(&x, 2, large, 6000, 0);
	jr_close(&x);
	/* One cut, one with a byte changed. */
	fp_of(fp, 1);
	xy_hex(fp, XY_ID_LEN, hex);
	snprintf(path, sizeof path, "%s/%s", xy_test_path("j/results"), hex);
	XY_CHECK(truncate(path, 100) == 0);
	fp_of(fp, 2);
	xy_hex(fp, XY_ID_LEN, hex);
	snprintf(path, sizeof path, "%s/%s", xy_test_path("j/results"), hex);
	int fd = open(path, O_WRONLY);
	XY_CHECK(fd >= 0 && pwrite(fd, "y", 1, 3000) == 1);
	close(fd);
	jr_open(&x);
	XY_CHECK(restore(&x, 1, &out, &len, &code) < 0);
	XY_CHECK(restore(&x, 2, &out, &len, &code) < 0);
	/* Recorded again: whole again. */
	record(&x, 2, large, 6000, 0);
	XY_CHECK(restore(&x, 2, &out, &len, &code) == 0 && len == 6000);
	free(out);
	jr_close(&x);
	free(large);
}

static void t_an_empty_result_forgets(void)
{
	struct jr x;
	char *out;
	size_t len;
	int code;
	jr_open(&x);
	record(&x, 1, "first", 5, 0);
	record(&x, 1, "", 0, 0); /* the same task, run again, said nothing */
	jr_close(&x);
	jr_open(&x);
	XY_CHECK(xy_memo_results_count(x.r) == 0);
	XY_CHECK(restore(&x, 1, &out, &len, &code) == 0 && len == 0);
	jr_close(&x);
}

static int known_1(void *arg, const uint8_t *fp)
{
	(void)arg;
	return fp[0] == 1;
}

static int dump(void *arg, struct xy_journal *snap)
{
	struct jr *x = arg;
	return xy_memo_results_dump(x->r, snap, known_1, NULL);
}

static void t_prune_dump_and_sweep(void)
{
	struct jr x;
	char *out, *large = big(5000, 'z'), err[512];
	size_t len;
	int code;
	uint8_t key[XY_ID_LEN];
	fp_of(key, 7);
	jr_open(&x);
	record(&x, 1, large, 5000, 0);
	record(&x, 2, large, 5000, 0);
	record(&x, 3, "small", 5, 0);
	XY_CHECK(xy_memo_results_client_record(x.r, x.j, key, "blob", 4) ==
		 0);
	/* A file no record names: a crash between file and record. */
	FILE *f = fopen(xy_test_path("j/results/stray"), "w");
	XY_CHECK(f && fputs("x", f) >= 0 && fclose(f) == 0);
	XY_CHECK(xy_journal_compact(x.j, dump, &x, err, sizeof err) == 0);
	xy_memo_results_sweep(x.r);
	XY_CHECK_EQ(count_files(xy_test_path("j/results")), 1);
	jr_close(&x);
	jr_open(&x);
	/* 2 and 3 were forgotten (their tasks were); 1 and the client's
	 * record were kept by the snapshot. */
	XY_CHECK_EQ(xy_memo_results_count(x.r), 2);
	XY_CHECK(restore(&x, 1, &out, &len, &code) == 0 && len == 5000);
	free(out);
	const void *blob = xy_memo_results_client_find(x.r, key, &len);
	XY_CHECK(blob && len == 4 && !memcmp(blob, "blob", 4));
	fp_of(key, 8);
	XY_CHECK(!xy_memo_results_client_find(x.r, key, &len));
	/* Prune forgets what the memo forgot. */
	record(&x, 4, "four", 4, 0);
	xy_memo_results_prune(x.r, known_1, NULL);
	XY_CHECK_EQ(xy_memo_results_count(x.r), 2);
	jr_close(&x);
	free(large);
}

int main(int argc, char **argv)
{
	static const struct xy_test tests[] = {
		XY_TEST(t_small_and_large_across_reopening),
		XY_TEST(t_a_damaged_file_refuses),
		XY_TEST(t_an_empty_result_forgets),
		XY_TEST(t_prune_dump_and_sweep),
		{0},
	};
	return xy_test_main(argc, argv, tests);
}
