/*
 * main.c: the `xylem` command. Looks up the subcommand in a table and hands
 * it the rest of the arguments; `worker` goes to the worker daemon
 * (src/worker), the others to the files beside this one.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "proto.h"
#include "worker.h"
#include "xylem.h"

struct command {
	const char *name;
	int (*main)(int argc, char **argv);
	const char *summary;
};

static int cmd_version(int argc, char **argv);
static int cmd_help(int argc, char **argv);

static const struct command commands[] = {
	{"run", xy_cli_run, "run a workflow file on local or remote workers"},
	{"manager", xy_cli_manager, "run a standing manager that clients submit to"},
	{"cwl", xy_cli_cwl, "run a CWL tool or workflow, locally or on a manager"},
	{"cwl-exec", xy_cli_cwl_exec, "run a CWL tool in a task (xylem cwl runs it)"},
	{"endpoint", xy_cli_endpoint, "serve several users, each with a manager of their own"},
	{"status", xy_cli_status, "show a running manager's tasks and workers"},
	{"report", xy_cli_report, "write a run's history as one HTML page"},
	{"worker", xy_worker_main, "run a worker that connects to a manager"},
	{"version", cmd_version, "print the version"},
	{"help", cmd_help, "show this help, or a command's (xylem help run)"},
	{NULL, NULL, NULL},
};

static void usage(FILE *out)
{
	fprintf(out, "xylem: a data-aware workflow engine\n\n"
		     "usage: xylem COMMAND [ARGUMENTS]\n\ncommands:\n");
	for (const struct command *c = commands; c->name; c++)
		fprintf(out, "  %-9s %s\n", c->name, c->summary);
	fprintf(out, "\n'xylem COMMAND --help' describes a command."
		     " Documentation: docs/cli.md.\n");
}

int xy_cli_int(const char *who, const char *opt, const char *s, int lo,
	       int hi, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi) {
		fprintf(stderr, "%s: %s wants a number from %d to %d, not"
			" '%s'\n", who, opt, lo, hi, s);
		return -1;
	}
	*out = (int)v;
	return 0;
}

double xy_cli_reconnect_window(const char *who)
{
	const char *env = getenv("XYLEM_RECONNECT");
	char *end;

	if (!env)
		return 120;
	/* Whole seconds, bounded: atof took "x" for 0 (no wait at all)
	 * and "nan" for a wait that never ends. */
	errno = 0;
	long n = strtol(env, &end, 10);
	if (errno || end == env || *end || n < 0 || n > 86400) {
		fprintf(stderr, "%s: XYLEM_RECONNECT wants seconds from 0 to"
			" 86400, not '%s': 120 it is\n", who, env);
		return 120;
	}
	return (double)n;
}

int xy_cli_wants_help(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--") == 0)
			return 0;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
			return 1;
	}
	return 0;
}

static const struct command *find(const char *name)
{
	for (const struct command *c = commands; c->name; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

static int cmd_version(int argc, char **argv)
{
	if (xy_cli_wants_help(argc, argv)) {
		printf("usage: xylem version\n\nPrints the version of xylem"
		       " and of its wire protocol.\n");
		return XY_EXIT_OK;
	}
	if (argc > 1) {
		fprintf(stderr, "xylem version: takes no arguments\n");
		return XY_EXIT_USAGE;
	}
	printf("xylem %d.%d.%d (protocol %d)\n", XY_VERSION_MAJOR,
	       XY_VERSION_MINOR, XY_VERSION_PATCH, XY_PROTO_VERSION);
	return XY_EXIT_OK;
}

/* `xylem help CMD` is `xylem CMD --help`. */
static int cmd_help(int argc, char **argv)
{
	const struct command *c;
	char help[] = "--help";

	if (argc < 2 || strcmp(argv[1], "help") == 0 ||
	    xy_cli_wants_help(argc, argv)) {
		usage(stdout);
		return XY_EXIT_OK;
	}
	c = find(argv[1]);
	if (!c) {
		fprintf(stderr, "xylem help: unknown command '%s'\n\n", argv[1]);
		usage(stderr);
		return XY_EXIT_USAGE;
	}
	char *sub[] = {argv[1], help, NULL};
	return c->main(2, sub);
}

int main(int argc, char **argv)
{
	const struct command *c;

	/* A peer that goes away must not kill us on the next write. */
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2) {
		usage(stderr);
		return XY_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return XY_EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0)
		return cmd_version(1, argv + 1);
	c = find(argv[1]);
	if (!c) {
		fprintf(stderr, "xylem: unknown command '%s'\n\n", argv[1]);
		usage(stderr);
		return XY_EXIT_USAGE;
	}
	return c->main(argc - 1, argv + 1);
}
