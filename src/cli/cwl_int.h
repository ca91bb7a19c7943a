/*
 * cwl_int.h: what `xylem cwl` (cwl.c, one tool as one task) shares with
 * its workflow driver (cwlwf.c, many tasks). Internal to the command.
 */
#ifndef XY_CLI_CWL_INT_H
#define XY_CLI_CWL_INT_H

#include <jansson.h>
#include <limits.h>

#include "cwl.h"
#include "local.h"

#define JOB_FILE "cwl-job.json"
#define RESULT_FILE "cwl-result.json"
#define SUBDIR_MAX (PATH_MAX + 8) /* the sandbox's out/ and tmp/ */
#define WAIT_SLICE_S 0.25

struct cwl_opts {
	const char *tool, *job;
	char **inputs;  /* after the tool: --INPUT VALUE ..., n_inputs of them */
	int n_inputs;
	const char *outdir;
	const char *secret_file;
	const char *scratch; /* where literal files go; NULL: the run's own */
	const char *manager; /* HOST:PORT of a standing manager, or NULL */
	const char *tls_ca;  /* --tls-ca: verifies that manager */
	int no_tls;
	int quiet, print_tool, print_job, prepare;
	const char *deliver; /* --deliver: a task's returned directory */
};

/* The files and directories to stage, as task inputs. */
struct staging {
	json_t *roots; /* [{path, base, name, k}]: source, basename, sandbox
			* name, its directory's number */
	json_t *names; /* sandbox names taken -> their source path */
	json_int_t next_k;
};

struct cwl_run {
	struct cwl_opts o;
	struct xy_local local;
	struct xy_manager *m;
	json_t *tool, *job;
	struct cwl_runtime rt;
	char outdir[PATH_MAX];
	/* The task's command on this run's own local workers: TASK_COMMAND,
	 * or (cwl__start) that command with the path of xylem-cwl-exec
	 * written in, which the worker runs without a shell. */
	char command[PATH_MAX + 64];
};

/* A job document that fits (JOB_ENV_MAX bytes) may come in this
 * environment variable of the task instead of as JOB_FILE. */
#define JOB_ENV "XYLEM_CWL_JOB"
#define JOB_ENV_MAX (32 * 1024)

/* With RESULT_ENV set in its environment, cwl-exec also prints the
 * output object as the last line of its output, after RESULT_MARK, so
 * that it comes back with the task's captured output (cwlwf.c). */
#define RESULT_ENV "XYLEM_CWL_RESULT_LINE"
#define RESULT_MARK "\036xylem-cwl-result "

/* The task's command and outputs, wherever it is submitted from. */
/* xylem-cwl-exec beside the worker's program if it is there (it loads
 * far fewer libraries than xylem: a tool run starts faster), else the
 * worker's own `xylem cwl-exec`. */
#define TASK_COMMAND                                                      \
	"e=\"${XYLEM_EXE%/*}/xylem-cwl-exec\"; [ -x \"$e\" ] || "        \
	"exec \"$XYLEM_EXE\" cwl-exec " JOB_FILE "; exec \"$e\" " JOB_FILE
extern const char *const cwl__task_outputs[2];

typedef int (*visit_fn)(json_t *obj, int nested, void *arg);

/* Calls fn on every File and Directory in v, depth first, the object
 * before its secondary files and listing; `nested` says it lies inside a
 * Directory's listing. A non-zero return stops the walk. */
int cwl__walk(json_t *v, int nested, visit_fn fn, void *arg);
/* Sets path, location and dirname of obj from path. */
int cwl__set_path(json_t *obj, const char *path);
/* The inputs to stage for job and tool, [[path, sandbox name]]; their
 * paths are rewritten to those names. */
json_t *cwl__plan_inputs(json_t *job, json_t *tool);
json_t *cwl__runtime_json(const struct cwl_runtime *rt);
/* The output object as the reference runner prints it. */
void cwl__print_value(FILE *out, const json_t *v, int depth);
/* Moves src to dst, making dst's directory. */
int cwl__move(const char *src, const char *dst, char *err, size_t errlen);
/* A manager on 127.0.0.1 for the run, its one worker not started yet;
 * r->command set for that worker. */
int cwl__start(struct cwl_run *r);

/* cwlwf.c: runs a Workflow or an ExpressionTool (r->tool, r->job),
 * locally or on --manager, delivers its outputs and prints them.
 * Returns the CWL exit status. */
int cwl__run_workflow(struct cwl_run *r);

/* --manager: its address into host and *port, the secret into r->local,
 * the TLS context that verifies it into *tls (the caller frees it).
 * -1 to go on, or the exit status (said on stderr). */
struct ssl_ctx_st;
int cwl__remote_setup(struct cwl_run *r, char *host, size_t len, int *port,
		      struct ssl_ctx_st **tls);

#endif
