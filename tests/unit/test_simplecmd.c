/*
 * test_simplecmd.c: which commands run without /bin/sh (simplecmd.h):
 * literal words and single quotes split as sh splits them; everything
 * with a meaning to the shell (variables, globs, redirections, builtins,
 * assignments, several commands) left to it; the program found on the
 * task's PATH as sh finds it. A system test (test_tasks_direct.py) runs
 * both kinds through a real worker.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "simplecmd.h"

#define XY_CHECK_STR(a, b) XY_CHECK(strcmp((a), (b)) == 0)

static int split(const char *cmd, char **argv, char *buf)
{
	return xy_simplecmd_parse(cmd, buf, argv);
}

static void t_words(void)
{
	char buf[256], *argv[XY_SIMPLECMD_MAX_WORDS + 1];

	XY_CHECK_EQ(split("/bin/echo a  b\tc", argv, buf), 4);
	XY_CHECK_STR(argv[0], "/bin/echo");
	XY_CHECK_STR(argv[3], "c");
	XY_CHECK(argv[4] == NULL);
	/* Single quotes: literal, joined to the unquoted parts around. */
	XY_CHECK_EQ(split("  'x y'z'$HOME;|' -n=3 '' ", argv, buf), 3);
	XY_CHECK_STR(argv[0], "x yz$HOME;|");
	XY_CHECK_STR(argv[1], "-n=3");
	XY_CHECK_STR(argv[2], "");
	/* A leading exec is the same program. */
	XY_CHECK_EQ(split("exec '/opt/x/xylem-cwl-exec' job.json", argv,
			  buf), 2);
	XY_CHECK_STR(argv[0], "/opt/x/xylem-cwl-exec");
	XY_CHECK_STR(argv[1], "job.json");
	XY_CHECK_EQ(split("python3 -c 'print(1+1)' a,b:c@d%e+f", argv, buf),
		    4);
	XY_CHECK_STR(argv[2], "print(1+1)");
}

static void t_left_to_the_shell(void)
{
	static const char *const shells[] = {
		"", "   ", "echo hi", "'echo' hi", "true", "exit 3", "cd /",
		"test -f x", "[ -f x ]", "printf %s x", "kill 1", "exec",
		"exec -a x y", "A=1 prog", "a=b", "if true; then :; fi",
		"prog $HOME", "prog \"a\"", "prog *.txt", "prog a?", "prog [ab]",
		"prog > out", "prog < in", "prog | other", "prog; other",
		"prog && other", "prog &", "prog\nother", "prog `id`",
		"prog $(id)", "~/bin/prog", "prog ~", "prog #comment",
		"prog 'unclosed", "prog \\x", "prog {a,b}", "prog !",
		"'' arg", "(prog)", "prog a=b\n", NULL};
	char buf[256], *argv[XY_SIMPLECMD_MAX_WORDS + 1];

	for (int i = 0; shells[i]; i++) {
		if (split(shells[i], argv, buf) != 0)
			fprintf(stderr, "taken without the shell: [%s]\n",
				shells[i]);
		XY_CHECK_EQ(split(shells[i], argv, buf), 0);
	}
}

static void t_too_many_words(void)
{
	char cmd[1024] = "prog", buf[1024];
	char *argv[XY_SIMPLECMD_MAX_WORDS + 1];

	for (int i = 1; i < XY_SIMPLECMD_MAX_WORDS; i++)
		strcat(cmd, " a");
	XY_CHECK_EQ(split(cmd, argv, buf), XY_SIMPLECMD_MAX_WORDS);
	strcat(cmd, " a");
	XY_CHECK_EQ(split(cmd, argv, buf), 0);
}

static void t_find(void)
{
	const char *dir = xy_test_tmpdir();
	char prog[PATH_MAX], plain[PATH_MAX];
	char path[PATH_MAX], envpath[2 * PATH_MAX];
	char *env[] = {"HOME=/nowhere", envpath, NULL};
	FILE *f;

	snprintf(prog, sizeof prog, "%s/prog", dir);
	snprintf(plain, sizeof plain, "%s/plain", dir);
	XY_CHECK((f = fopen(prog, "w")) != NULL);
	fclose(f);
	XY_CHECK((f = fopen(plain, "w")) != NULL);
	fclose(f);
	XY_CHECK_EQ(chmod(prog, 0755), 0);
	XY_CHECK_EQ(chmod(plain, 0644), 0);

	snprintf(envpath, sizeof envpath, "PATH=/nonexistent:%s:/usr/bin",
		 dir);
	XY_CHECK_EQ(xy_simplecmd_find("prog", env, path, sizeof path), 0);
	XY_CHECK_STR(path, prog);
	/* Not executable here, a directory, absent: the shell decides. */
	XY_CHECK_EQ(xy_simplecmd_find("plain", env, path, sizeof path), -1);
	XY_CHECK_EQ(xy_simplecmd_find("xy-simplecmd-no-such", env, path,
				      sizeof path), -1);
	/* Found further along PATH: /usr/bin/env. */
	XY_CHECK_EQ(xy_simplecmd_find("env", env, path, sizeof path), 0);
	XY_CHECK_STR(path, "/usr/bin/env");
	/* A name with a '/' is taken as it is (sh does not search). */
	XY_CHECK_EQ(xy_simplecmd_find("./prog", env, path, sizeof path), 0);
	XY_CHECK_STR(path, "./prog");
	/* A relative or empty directory before the match: the shell's. */
	snprintf(envpath, sizeof envpath, "PATH=bin:%s", dir);
	XY_CHECK_EQ(xy_simplecmd_find("prog", env, path, sizeof path), -1);
	snprintf(envpath, sizeof envpath, "PATH=:%s", dir);
	XY_CHECK_EQ(xy_simplecmd_find("prog", env, path, sizeof path), -1);
	/* No PATH at all. */
	env[1] = NULL;
	XY_CHECK_EQ(xy_simplecmd_find("prog", env, path, sizeof path), -1);
	/* Too long for path. */
	snprintf(envpath, sizeof envpath, "PATH=%s", dir);
	env[1] = envpath;
	XY_CHECK_EQ(xy_simplecmd_find("prog", env, path, 8), -1);
}

int main(int argc, char **argv)
{
	static const struct xy_test tests[] = {
		XY_TEST(t_words),
		XY_TEST(t_left_to_the_shell),
		XY_TEST(t_too_many_words),
		XY_TEST(t_find),
		{0},
	};
	return xy_test_main(argc, argv, tests);
}
