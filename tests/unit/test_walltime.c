/*
 * test_walltime.c: when a worker must end (walltime.h): epochs parsed
 * strictly; SLURM_JOB_END_TIME where set; else squeue, asked with
 * SLURM_TIME_FORMAT=%s (a fake squeue on PATH answers as Slurm 22.05
 * does, or says "N/A", fails, or hangs past the timeout); and the time a
 * worker can give tasks, given its drain lead and grace.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"
#include "util.h"
#include "walltime.h"

static const char *const *fake_env;

static char *fake_getenv(const char *name)
{
	size_t n = strlen(name);

	for (const char *const *e = fake_env; e && *e; e++)
		if (!strncmp(*e, name, n) && (*e)[n] == '=')
			return (char *)*e + n + 1;
	return NULL;
}

static void t_parse_epoch(void)
{
	double v = 0;

	XY_CHECK_EQ(xy_walltime_parse_epoch("1796628331", &v), 0);
	XY_CHECK(v == 1796628331.0);
	XY_CHECK_EQ(xy_walltime_parse_epoch("1796628331\n", &v), 0);
	static const char *const bad[] = {"", "N/A", "Unknown", "-5", "0",
					  "12abc", "1e20", "NONE", NULL};
	for (int i = 0; bad[i]; i++)
		XY_CHECK_EQ(xy_walltime_parse_epoch(bad[i], &v), -1);
	XY_CHECK_EQ(xy_walltime_parse_epoch(NULL, &v), -1);
}

static int slurm_end(const char *const *env, double timeout, double *end,
		     const char **from, char *err)
{
	fake_env = env;
	return xy_walltime_slurm_end(fake_getenv, timeout, end, from, err,
				     256);
}

static void t_from_the_environment(void)
{
	static const char *const none[] = {"SLURM_JOB_END_TIME=5", NULL};
	static const char *const set[] = {"SLURM_JOB_ID=7",
					  "SLURM_JOB_END_TIME=1796628331", NULL};
	static const char *const bad[] = {"SLURM_JOB_ID=7",
					  "SLURM_JOB_END_TIME=soon", NULL};
	const char *from;
	char err[256] = "";
	double end = 0;

	/* Not a job's without its id. */
	XY_CHECK_EQ(slurm_end(none, 5, &end, &from, err), 0);
	XY_CHECK(!strcmp(from, "not in a Slurm job"));
	XY_CHECK_EQ(slurm_end(set, 5, &end, &from, err), 1);
	XY_CHECK(end == 1796628331.0);
	XY_CHECK(!strcmp(from, "SLURM_JOB_END_TIME"));
	XY_CHECK_EQ(slurm_end(bad, 5, &end, &from, err), -1);
	XY_CHECK(strstr(err, "SLURM_JOB_END_TIME is 'soon'"));
}

/* A fake squeue in the test's directory, first on PATH. */
static void fake_squeue(const char *body)
{
	char path[1024], newpath[4096];
	snprintf(path, sizeof path, "%s/squeue", xy_test_tmpdir());
	FILE *f = fopen(path, "w");
	XY_CHECK(f);
	fprintf(f, "#!/bin/sh\n%s\n", body);
	fclose(f);
	XY_CHECK_EQ(chmod(path, 0755), 0);
	snprintf(newpath, sizeof newpath, "%s:%s", xy_test_tmpdir(),
		 getenv("PATH"));
	setenv("PATH", newpath, 1);
}

static void t_from_squeue(void)
{
	static const char *const job[] = {"SLURM_JOB_ID=812", NULL};
	const char *from;
	char err[256] = "";
	double end = 0;

	/* As Slurm 22.05 answers: seconds, given SLURM_TIME_FORMAT=%s and
	 * the job's id; anything else asked is a failure. */
	fake_squeue("[ \"$SLURM_TIME_FORMAT\" = %s ] && [ \"$*\" = "
		    "\"-h -j 812 -o %e\" ] || exit 3; echo 1796628331");
	XY_CHECK_EQ(slurm_end(job, 5, &end, &from, err), 1);
	XY_CHECK(end == 1796628331.0);
	XY_CHECK(!strcmp(from, "squeue"));
	/* A job with no time limit. */
	fake_squeue("echo N/A");
	XY_CHECK_EQ(slurm_end(job, 5, &end, &from, err), 0);
	XY_CHECK(strstr(from, "no end"));
	/* squeue fails, or knows nothing of the job. */
	fake_squeue("echo 'slurm_load_jobs error' >&2; exit 1");
	XY_CHECK_EQ(slurm_end(job, 5, &end, &from, err), -1);
	XY_CHECK(strstr(err, "squeue exited 1"));
	fake_squeue("true");
	XY_CHECK_EQ(slurm_end(job, 5, &end, &from, err), -1);
	XY_CHECK(strstr(err, "does not know job 812"));
	/* One that hangs is killed at the timeout. */
	fake_squeue("exec sleep 30");
	double t0 = xy_mono();
	XY_CHECK_EQ(slurm_end(job, 0.3, &end, &from, err), -1);
	XY_CHECK(xy_mono() - t0 < 5);
	XY_CHECK(strstr(err, "no answer in 0.3 s"));
}

static void t_usable(void)
{
	/* No grace: tasks run to the end. */
	XY_CHECK_EQ(xy_walltime_usable_ms(100000, 60, 0), 100000);
	/* A grace shorter than the lead: what runs is returned 10 s before
	 * the end (a slurm pool's jobs: lead 60, grace 50). */
	XY_CHECK_EQ(xy_walltime_usable_ms(100000, 60, 50), 90000);
	/* A grace past the end: the end. */
	XY_CHECK_EQ(xy_walltime_usable_ms(100000, 60, 90), 100000);
	/* Never 0 (no end) when there is one. */
	XY_CHECK_EQ(xy_walltime_usable_ms(5000, 60, 50), 1);
	XY_CHECK_EQ(xy_walltime_usable_ms(-3, 0, 0), 1);
}

int main(int argc, char **argv)
{
	static const struct xy_test tests[] = {
		XY_TEST(t_parse_epoch),
		XY_TEST(t_from_the_environment),
		XY_TEST(t_from_squeue),
		XY_TEST(t_usable),
		{0},
	};
	return xy_test_main(argc, argv, tests);
}
