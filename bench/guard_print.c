/*
 * guard_print.c: the cost of one fingerprint of a directory object
 * (guard.h), the check the worker makes before it lends a cached object
 * to a task and after the task: a tree of FILES (10,000) small files in
 * 100 subdirectories is made under $TMPDIR, then printed R (50) times;
 * prints the mean, the best and the cost per entry. Its baseline in the
 * same run is a plain stat(2) of every entry, in a walk of its own (what
 * any check of the tree's metadata costs at least), so the ratio says
 * what the digest and the walk add. bench/guard_cost.sh measures the
 * check in real tasks.
 *
 * usage: bench_guard_print [FILES [R]]
 */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "guard.h"
#include "util.h"

static void make_tree(const char *root, long files)
{
	char path[2048];

	for (long i = 0; i < files; i++) {
		int fd;

		if (i % 100 == 0) {
			snprintf(path, sizeof path, "%s/d%ld", root, i / 100);
			if (mkdir(path, 0755) < 0) {
				perror(path);
				exit(1);
			}
		}
		snprintf(path, sizeof path, "%s/d%ld/f%ld", root, i / 100, i);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0444);
		if (fd < 0 || write(fd, "x\n", 2) != 2) {
			perror(path);
			exit(1);
		}
		close(fd);
	}
}

/* The baseline: every entry lstat'ed, by path, in a two-level walk. */
static long stat_all(const char *root)
{
	char path[2048];
	struct dirent *de;
	struct stat st;
	long n = 0;
	DIR *d = opendir(root);

	while (d && (de = readdir(d))) {
		DIR *s;
		struct dirent *fe;

		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", root, de->d_name);
		lstat(path, &st);
		n++;
		if (!(s = opendir(path)))
			continue;
		while ((fe = readdir(s))) {
			char p2[2400];

			if (fe->d_name[0] == '.')
				continue;
			snprintf(p2, sizeof p2, "%s/%s", path, fe->d_name);
			lstat(p2, &st);
			n++;
		}
		closedir(s);
	}
	if (d)
		closedir(d);
	return n;
}

int main(int argc, char **argv)
{
	long files = argc > 1 ? atol(argv[1]) : 10000;
	int reps = argc > 2 ? atoi(argv[2]) : 50;
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char root[1024], err[256], cmd[1200];
	double best = 1e9, sum = 0, bbest = 1e9, bsum = 0;
	uint64_t print[2], n = 0;

	snprintf(root, sizeof root, "%s/xylem-guard-bench-XXXXXX", tmp);
	if (!mkdtemp(root)) {
		perror("mkdtemp");
		return 1;
	}
	make_tree(root, files);
	for (int r = 0; r < reps; r++) {
		double t0 = xy_mono(), t1, t2;

		if (xy_guard_print(root, 42, print, &n, err, sizeof err) < 0) {
			fprintf(stderr, "print: %s\n", err);
			return 1;
		}
		t1 = xy_mono();
		stat_all(root);
		t2 = xy_mono();
		sum += t1 - t0;
		bsum += t2 - t1;
		if (t1 - t0 < best)
			best = t1 - t0;
		if (t2 - t1 < bbest)
			bbest = t2 - t1;
	}
	printf("fingerprint of a directory of %ld files (%" PRIu64
	       " entries), %d runs\n", files, n, reps);
	printf("  xy_guard_print: mean %.2f ms, best %.2f ms, %.0f ns an "
	       "entry\n", 1e3 * sum / reps, 1e3 * best, 1e9 * best / n);
	printf("  lstat of each entry by path: mean %.2f ms, best %.2f ms\n",
	       1e3 * bsum / reps, 1e3 * bbest);
	printf("  ratio (best): %.2f\n", best / bbest);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
	return system(cmd) == 0 ? 0 : 1;
}
