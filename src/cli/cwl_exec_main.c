/*
 * cwl_exec_main.c: the `xylem-cwl-exec` program, `xylem cwl-exec` alone
 * (cwl_exec.c), so that the task of each CWL tool run loads only the
 * libraries the runner needs (docs/cwl.md).
 */
#include "cli.h"

int main(int argc, char **argv)
{
	return xy_cli_cwl_exec(argc, argv);
}
