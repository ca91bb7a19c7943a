/*
 * harness.c: runs each unit test case in a child process with a timeout;
 * see harness.h.
 */
#include "harness.h"

#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

static char tmpdir[4096];

const char *xy_test_tmpdir(void)
{
	return tmpdir;
}

char *xy_test_path(const char *rel)
{
	static char bufs[8][8192];
	static int next;
	char *p = bufs[next++ % 8];
	snprintf(p, sizeof bufs[0], "%s/%s", tmpdir, rel);
	return p;
}

/* Present when built with the leak sanitizer. */
int __lsan_do_recoverable_leak_check(void) __attribute__((weak));

void xy_test_check_no_leaks(void)
{
	if (__lsan_do_recoverable_leak_check)
		XY_CHECK_EQ(__lsan_do_recoverable_leak_check(), 0);
}

static int run_one(const struct xy_test *t)
{
	snprintf(tmpdir, sizeof tmpdir, "%s/xytest-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		return 1;
	}
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0) {
		perror("fork");
		return 1;
	}
	if (pid == 0) {
		alarm(t->timeout_s ? t->timeout_s : 30);
		t->fn();
		fflush(NULL);
		_exit(0);
	}
	int status = 0;
	while (waitpid(pid, &status, 0) < 0)
		;
	xy_rm_rf(tmpdir);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (WIFSIGNALED(status))
		fprintf(stderr, "%s: killed by signal %d%s\n", t->name,
			WTERMSIG(status),
			WTERMSIG(status) == SIGALRM ? " (timeout)" : "");
	return 1;
}

int xy_test_main(int argc, char **argv, const struct xy_test *tests)
{
	int passed = 0, failed = 0;
	for (const struct xy_test *t = tests; t->name; t++) {
		if (argc > 1 && !strstr(t->name, argv[1]))
			continue;
		int bad = run_one(t);
		printf("%s %s\n", bad ? "FAIL" : "ok  ", t->name);
		if (bad)
			failed++;
		else
			passed++;
	}
	printf("%d passed, %d failed\n", passed, failed);
	return failed ? 1 : 0;
}
