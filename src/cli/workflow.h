/*
 * workflow.h: the workflow file of `xylem run` (docs/workflow.md), parsed
 * with jansson into plain structs and validated before anything runs:
 * required keys, unknown keys, sandbox names, duplicate task ids, two
 * writers of one path, and dependency cycles. run.c turns the result into
 * manager calls; nothing here talks to a manager.
 */
#ifndef XY_WORKFLOW_H
#define XY_WORKFLOW_H

#include <stddef.h>
#include <stdint.h>

#include "xylem.h"

/* One entry of a task's "inputs" or "outputs". */
struct xy_wf_file {
	char *path;           /* as written in the file */
	char *as;             /* the sandbox name, validated */
	xy_cache_level cache; /* as asked by this entry */
	size_t ref;           /* index into xy_workflow.paths */
	int temp;             /* "temp": true */
	int unpack;           /* an input archive, mounted expanded */
};

/* A distinct local path, named by one or more entries. */
struct xy_wf_path {
	char *full;           /* absolute and lexically normalised */
	char *written;        /* as first written, for messages */
	xy_cache_level cache; /* the longest level any entry asked for */
	long producer;        /* index of the task that writes it, or -1 */
	int temp;             /* a temp: stays on workers, never written */
	int url;              /* full is a URL that workers fetch */
};

struct xy_wf_env {
	char *name;
	char *value;
};

struct xy_wf_task {
	char *id;
	char *command;
	struct xy_wf_file *inputs;
	size_t n_inputs;
	struct xy_wf_file *outputs;
	size_t n_outputs;
	struct xy_wf_env *env;
	size_t n_env;
	/* Resources and policies; -1 (or has_priority == 0) means "not
	 * given", so the manager's defaults apply. */
	int cores;
	int64_t memory_mb;
	int64_t disk_mb;
	int gpus;
	int retries;
	int has_priority;
	double priority;
	double time_limit; /* seconds; 0: none */
	/* "array": its number of tasks (0: not an array), and with
	 * {"lines": FILE} the file, made absolute (else NULL). */
	uint64_t array_n;
	char *array_lines;
};

/* The marks that an array task's paths and sandbox names may hold,
 * replaced by its index and its line (docs/workflow.md). */
#define XY_WF_INDEX_MARK "${XY_INDEX}"
#define XY_WF_LINE_MARK "${XY_LINE}"

struct xy_workflow {
	char *name; /* the optional top-level "name", or NULL */
	struct xy_wf_task *tasks;
	size_t n_tasks;
	struct xy_wf_path *paths;
	size_t n_paths;
};

/* Reads and validates the workflow file at path. Relative paths in it are
 * taken from the current directory. Returns NULL with errno set
 * and a one-line reason in err that starts with the file's name, and names
 * the task, the key and the value at fault (or the line and column of a
 * JSON syntax error). The caller frees the result with xy_workflow_free. */
struct xy_workflow *xy_workflow_load(const char *path, char *err,
				     size_t errlen);

/* The same from text in memory; label names it in messages, and relative
 * paths are taken from basedir (which should be absolute). */
struct xy_workflow *xy_workflow_parse(const char *text, size_t len,
				      const char *label, const char *basedir,
				      char *err, size_t errlen);

/* Makes the directory of every path a task of wf writes (temps aside):
 * 0, or -1 said on stderr after who. */
int xy_workflow_output_dirs(const struct xy_workflow *wf, const char *who);

/* Frees w and everything it holds. xy_workflow_free(NULL) does nothing. */
void xy_workflow_free(struct xy_workflow *w);

/* s with every mark replaced by index and line (line NULL: that mark
 * stays): a new string, or NULL without memory. */
char *xy_wf_subst(const char *s, const char *index, const char *line);

/* The name of a cache level as written in a workflow ("workflow"). */
const char *xy_wf_cache_name(xy_cache_level level);

#endif
