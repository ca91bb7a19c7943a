/*
 * test_simplecmd.c: which commands run without /bin/sh (simplecmd.h):
 * literal words and single quotes split as sh splits them, for a program
 * named by a path; everything with a meaning to the shell (variables,
 * globs, redirections, builtins, a PATH search, assignments, several
 * commands) left to it; and an environment the shell would change
 * (invalid or repeated names) left to it too. A system test
 * (test_direct_exec.py) runs both kinds through a real worker.
 */
#include <string.h>

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
	XY_CHECK_EQ(split("  './x y'z'$HOME;|' -n=3 '' ", argv, buf), 3);
	XY_CHECK_STR(argv[0], "./x yz$HOME;|");
	XY_CHECK_STR(argv[1], "-n=3");
	XY_CHECK_STR(argv[2], "");
	/* A leading exec is the same program. */
	XY_CHECK_EQ(split("exec '/opt/x/xylem-cwl-exec' job.json", argv,
			  buf), 2);
	XY_CHECK_STR(argv[0], "/opt/x/xylem-cwl-exec");
	XY_CHECK_STR(argv[1], "job.json");
	XY_CHECK_EQ(split("/usr/bin/python3 -c 'print(1+1)' a,b:c@d%e+f",
			  argv, buf), 4);
	XY_CHECK_STR(argv[2], "print(1+1)");
	XY_CHECK_EQ(split("bin/run", argv, buf), 1);
}

static void t_left_to_the_shell(void)
{
	static const char *const shells[] = {
		/* Not a path: a PATH search, a builtin, a reserved word
		 * (dash's or bash's: time, function, ...). */
		"", "   ", "prog a", "python3 x.py", "echo hi", "'echo' hi",
		"true", "exit 3", "cd /", "test -f x", "[ -f x ]", "time /p",
		"exec", "exec -a x /p", "exec prog",
		/* Assignments. */
		"A=1 /p", "a=b", "/x=1/p", "./a=b",
		/* The shell's syntax. */
		"if true; then :; fi", "/p $HOME", "/p \"a\"", "/p *.txt",
		"/p a?", "/p [ab]", "/p > out", "/p < in", "/p | other",
		"/p; other", "/p && other", "/p &", "/p\nother", "/p `id`",
		"/p $(id)", "~/bin/prog", "/p ~", "/p #comment",
		"/p 'unclosed", "/p \\x", "/p {a,b}", "/p !", "'' /p", "(/p)",
		"/p a=b\n", "/p\r", NULL};
	char buf[256], *argv[XY_SIMPLECMD_MAX_WORDS + 1];

	for (int i = 0; shells[i]; i++) {
		int n = split(shells[i], argv, buf);

		if (n != 0)
			fprintf(stderr, "taken without the shell: [%s]\n",
				shells[i]);
		XY_CHECK_EQ(n, 0);
	}
}

static void t_too_many_words(void)
{
	char cmd[1024] = "/p", buf[1024];
	char *argv[XY_SIMPLECMD_MAX_WORDS + 1];

	for (int i = 1; i < XY_SIMPLECMD_MAX_WORDS; i++)
		strcat(cmd, " a");
	XY_CHECK_EQ(split(cmd, argv, buf), XY_SIMPLECMD_MAX_WORDS);
	strcat(cmd, " a");
	XY_CHECK_EQ(split(cmd, argv, buf), 0);
}

static void t_env(void)
{
	char *plain[] = {"PATH=/usr/bin", "HOME=/h", "_x1=", "A=b=c", NULL};
	char *repeated[] = {"PATH=/a", "HOME=/h", "PATH=/b", NULL};
	char *prefix[] = {"PATH=/a", "PATHX=/b", "PAT=/c", NULL};
	char *bad[][3] = {
		{"A-B=1", NULL}, {"ODD", NULL}, {"BASH_FUNC_m%%=() {}", NULL},
		{"1A=x", NULL}, {"=x", NULL}, {"A B=1", NULL}};

	XY_CHECK_EQ(xy_simplecmd_env_plain(plain), 1);
	XY_CHECK_EQ(xy_simplecmd_env_plain(prefix), 1);
	XY_CHECK_EQ(xy_simplecmd_env_plain(repeated), 0);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		XY_CHECK_EQ(xy_simplecmd_env_plain(bad[i]), 0);
}

int main(int argc, char **argv)
{
	static const struct xy_test tests[] = {
		XY_TEST(t_words),
		XY_TEST(t_left_to_the_shell),
		XY_TEST(t_too_many_words),
		XY_TEST(t_env),
		{0},
	};
	return xy_test_main(argc, argv, tests);
}
