/*
 * cwl.h: the CWL v1.2 runner (docs/cwl.md): CommandLineTools, and the
 * ExpressionTools and Workflows of the "workflow" part at the end.
 *
 * Three stages, each a file group:
 *
 *   load    (load.c, yaml.c, schema.c): a .cwl document, YAML or JSON, with
 *           $import, $include, $graph and #fragments resolved, turned into
 *           the canonical tool below and checked; a job object loaded,
 *           checked against the tool's inputs, defaults filled, File and
 *           Directory objects completed (fileobj.c).
 *   expr    (expr.c): parameter references and JavaScript expressions, on
 *           Duktape.
 *   exec    (cmdline.c, outputs.c, exec.c): the command line built from
 *           the bindings, the process run in its output directory, the
 *           output object collected.
 *
 * `xylem cwl` (src/cli/cwl.c) loads on the manager's side, stages the
 * job's files as task inputs, and runs `xylem cwl-exec` as the task; that
 * runs exec on the worker, in the task's sandbox.
 *
 * Every value is a jansson json_t. A function that fails returns NULL or
 * -1 and writes one line to err: "FILE:LINE: what was wrong, what was
 * expected" where a position is known.
 *
 * The canonical tool (what cwl_load_tool returns, what exec reads):
 *
 *   class        "CommandLineTool" ("ExpressionTool" and "Workflow": see
 *                "workflow" below; "Operation" is refused with
 *                CWL_UNSUPPORTED)
 *   cwlVersion   "v1.2" (v1.0 and v1.1 are accepted as they are)
 *   id           the document's URI, with its fragment
 *   inputs       array of parameters: {"id": short name, "type": T, and
 *                as given: inputBinding, default, format, loadContents,
 *                loadListing, streamable, label, doc}; "secondaryFiles"
 *                always an array of {"pattern": str, "required": bool|str}
 *   outputs      array, likewise, with outputBinding; an output of type
 *                stdout or stderr becomes File with a glob of the stdout
 *                (stderr) name, which is then always set
 *   baseCommand  array of strings (absent: [])
 *   arguments    array of bindings: a plain string s becomes
 *                {"valueFrom": s}
 *   stdin, stdout, stderr    strings, as given (may be expressions)
 *   successCodes, temporaryFailCodes, permanentFailCodes   arrays of ints
 *   requirements object: class name (no namespace) -> the requirement
 *   hints        object: class name -> the hint, only the classes the
 *                runner knows; requirements win over hints
 *   $namespaces  as given, for formats
 *
 *   A type T is one of: a name ("null", "boolean", "int", "long", "float",
 *   "double", "string", "File", "Directory", "Any"); an array of T, a
 *   union; {"type": "array", "items": T, "inputBinding"?};
 *   {"type": "record", "name"?, "fields": [{"name": short, "type": T,
 *   "inputBinding"?, "secondaryFiles"?, "format"?, ...}]};
 *   {"type": "enum", "name"?, "symbols": [short names], "inputBinding"?}.
 *   "T?" and "T[]" are expanded, SchemaDefRequirement names are replaced
 *   by copies of their definitions, and field and symbol names are short
 *   (the part after the last '/' or '#').
 *
 * A File object after cwl_load_job: class, location (file:// URI), path
 * (absolute), basename, dirname, nameroot, nameext, size, checksum
 * ("sha1$..."), and where they apply format (a full URI), contents
 * (loadContents), secondaryFiles. A Directory: class, location, path,
 * basename, and listing when loadListing asks for it. A File or Directory
 * literal (contents or listing, no location) is written under the scratch
 * directory passed to cwl_load_job, so that every object has a path.
 */
#ifndef XY_CWL_H
#define XY_CWL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

/* Process exit statuses, as cwltest reads them. */
#define CWL_OK 0
#define CWL_PERMANENT_FAIL 1
#define CWL_USAGE 2
#define CWL_TEMPORARY_FAIL 75
#define CWL_UNSUPPORTED 33

/* The namespace of Xylem's extensions (xylem:InlinePythonRequirement). */
#define XYLEM_NS "https://xylem.dev/cwl#"

/* loadContents reads at most this much. */
#define CWL_CONTENTS_MAX (64 * 1024)

/* ------------------------------------------------------------------ load */

/* Parses one YAML or JSON file into JSON, with $import and $include
 * resolved relative to it. Scalars follow YAML 1.2's core schema for
 * plain scalars (true/false, null/~, ints, floats), quoted ones are
 * strings. Positions are kept: see cwl_where. */
json_t *cwl_yaml_load(const char *path, char *err, size_t errlen);

/* Where a node came from, for messages: "FILE:LINE" of a container (object
 * or array) that cwl_yaml_load made, or of the nearest enclosing one that
 * the caller passes instead; "FILE" if unknown. Returns buf. */
const char *cwl_where(const json_t *node, char *buf, size_t len);

/* Loads TOOL (a path, optionally with "#fragment"), resolves it into the
 * canonical tool and checks it. *status is CWL_OK, CWL_PERMANENT_FAIL for
 * a bad document or CWL_UNSUPPORTED for a class or requirement this
 * runner does not run. The caller owns the result (a new reference). */
json_t *cwl_load_tool(const char *tool, int *status, char *err,
		      size_t errlen);

/* Loads the job (JOB NULL: an empty one), with the values of args (NULL:
 * none; from cwl_job_args) over its own, checks every input against its
 * type, fills defaults and completes File and Directory objects (paths in
 * the job are relative to the job file's directory; defaults' to the
 * tool's). Literal files go under scratch. The caller owns the result. */
json_t *cwl_load_job(const json_t *tool, const char *job, const json_t *args,
		     const char *scratch, char *err, size_t errlen);

/* A job's values from command-line arguments (jobargs.c): argv holds
 * argc of `--INPUT VALUE` and `--INPUT=VALUE`, each read by the input's
 * type (a path relative to the current directory for a File or a
 * Directory, made absolute; a boolean input's flag alone is true; an
 * array input takes one item each time). NULL with the reason in err for
 * an input the tool lacks, a missing value or one of the wrong type. The
 * caller owns the result. */
json_t *cwl_job_args(const json_t *tool, int argc, char *const *argv,
		     char *err, size_t errlen);

/* A requirement of the tool by class name, falling back to a hint of that
 * class; NULL if neither. *hint (may be NULL) says which. */
const json_t *cwl_requirement(const json_t *tool, const char *cls, int *hint);

/* ------------------------------------------------------ load internals */
/* Shared by yaml.c, load.c, schema.c and fileobj.c; exec may use them. */

/* Gives `to` the position recorded for `from` (for nodes built from
 * document nodes, so that later messages can still say FILE:LINE). */
void cwl_where_copy(const json_t *to, const json_t *from);

/* The part of a name after its last '#', then after its last '/'. */
const char *cwl_short_name(const char *s);

/* s with its %XX escapes decoded (a relative location in a job or a
 * document is a URI reference). The caller frees the result. */
char *cwl_percent_decode(const char *s);

/* Makes the location and path of every File and Directory in v absolute
 * against base (a relative location is percent-decoded first). */
void cwl_files_resolve(json_t *v, const char *base);

/* A type normalized as the top comment says; defs maps short names to
 * SchemaDefRequirement types; at gives the position for messages. A new
 * reference, or NULL with err. */
json_t *cwl_type_norm(const json_t *t, const json_t *defs, const json_t *ns,
		      int output, const json_t *at, char *err, size_t errlen);

/* Normalizes a parameter in place: "id" short, type, secondaryFiles
 * (required defaults to true for inputs, false for outputs) and format
 * (namespace prefixes expanded). cwl_field_norm does the same to a copy
 * of a record field ("name" instead of "id"). */
int cwl_param_norm(json_t *p, const json_t *defs, const json_t *ns,
		   int output, char *err, size_t errlen);
json_t *cwl_field_norm(const json_t *f, const json_t *defs, const json_t *ns,
		       int output, char *err, size_t errlen);
json_t *cwl_secondary_norm(const json_t *sf, int output, const json_t *at,
			   char *err, size_t errlen);

/* A format (string or list) with "prefix:" replaced by its $namespaces
 * URI; expressions and unknown prefixes stay. A new reference. */
json_t *cwl_format_expand(const json_t *fmt, const json_t *ns);

/* The input object: each input's value from job, else its default
 * (Files resolved against tooldir), else null, checked against its type.
 * A job's "cwl:requirements" is carried over as it is. */
json_t *cwl_inputs_fill(const json_t *tool, const json_t *job,
			const char *tooldir, char *err, size_t errlen);

/* Completes every File and Directory of the input object (literals
 * written under scratch, contents, listings), then finds secondaryFiles
 * and checks formats, evaluating expressions with the whole object. */
int cwl_inputs_files(const json_t *tool, json_t *job, const char *scratch,
		     char *err, size_t errlen);

/* As cwl_inputs_files, for a workflow step's job: with attached set, a
 * secondary file the tool requires must already be among the File's
 * secondaryFiles (as the reference runner checks a step's inputs), not
 * looked for beside it. */
int cwl__inputs_files(const json_t *tool, json_t *job, const char *scratch,
		      int attached, char *err, size_t errlen);

/* -------------------------------------------------------- File objects */

/* Completes a File or Directory object that has a path or location:
 * path, location, basename, dirname, nameroot, nameext, and for a File
 * size and (with checksum set) its sha1 checksum. Returns -1 if it does
 * not exist (err names it). */
int cwl_file_complete(json_t *obj, int checksum, char *err, size_t errlen);

/* Reads up to CWL_CONTENTS_MAX bytes of a File into its "contents".
 * A larger file is an error, as the spec says. */
int cwl_file_load_contents(json_t *file, char *err, size_t errlen);

/* Fills a Directory's "listing": "shallow_listing" one level,
 * "deep_listing" all of it, "no_listing" nothing. */
int cwl_dir_listing(json_t *dir, const char *depth, char *err, size_t errlen);

/* The name secondary-file pattern `pattern` gives for primary `basename`:
 * each leading '^' takes off one extension, the rest is appended. */
char *cwl_secondary_name(const char *basename, const char *pattern);

/* "file://" and the path, percent-encoded where RFC 3986 asks; and back
 * (a plain path is returned as it is). The caller frees the result. */
char *cwl_path_to_uri(const char *path);
char *cwl_uri_to_path(const char *uri);

/* 0 if base can name a file in a directory: not empty, no '/', not "."
 * or "..". Else -1 with EINVAL and a reason. Every basename that becomes
 * a path (literals, outputs brought into outdir) passes through it; names
 * with directories in them (InitialWorkDir entrynames, stdout) pass
 * xy_check_sandbox_name instead. */
int cwl_check_basename(const char *base, char *err, size_t errlen);

/* 1 if v is an object of class cls; 1 if v is a File or Directory. */
int cwl_is_class(const json_t *v, const char *cls);
int cwl_is_fileobj(const json_t *v);

/* 1 if path is dir or lies below it (both absolute, links resolved). */
int cwl_path_within(const char *path, const char *dir);

/* ------------------------------------------------------------------ expr */

struct cwl_expr;

/* A Duktape context for the tool, with InlineJavascriptRequirement's
 * expressionLib loaded when the tool has it. */
struct cwl_expr *cwl_expr_new(const json_t *tool, char *err, size_t errlen);
void cwl_expr_free(struct cwl_expr *x);

/* True if text holds a $(...) or ${...} that is not escaped. */
int cwl_expr_has(const char *text);

/* Evaluates text with `inputs`, `self` and `runtime` bound (any may be
 * NULL: null). A text that is one whole $(...) or ${...} gives that
 * value; otherwise each expression is put in the string, strings as they
 * are and other values as JSON in the reference runner's format
 * (cwl_json_dumps). A text without expressions gives itself. Returns a new
 * reference, or NULL with err. */
json_t *cwl_expr_eval(struct cwl_expr *x, const char *text,
		      const json_t *inputs, const json_t *self,
		      const json_t *runtime, char *err, size_t errlen);

/* As cwl_expr_eval, but the text is not trimmed first: the reference
 * runner keeps the white space around an InitialWorkDir entry, so that
 * "$(x)\n" is a string with x's JSON in it, not x. */
json_t *cwl_expr_eval_keep_space(struct cwl_expr *x, const char *text,
				 const json_t *inputs, const json_t *self,
				 const json_t *runtime, char *err,
				 size_t errlen);

/* Evaluates v if it is a string with an expression, else returns a new
 * reference to v. */
json_t *cwl_expr_eval_value(struct cwl_expr *x, const json_t *v,
			    const json_t *inputs, const json_t *self,
			    const json_t *runtime, char *err, size_t errlen);

/* Python expressions (xylem:InlinePythonRequirement, pyexpr.c): an
 * interpreter process for one tool run, with the requirement's
 * expressionLib run in it; ex is "(expression)" or "{body}". */
struct cwl_py;
struct cwl_py *cwl_py_start(const json_t *req, char *err, size_t errlen);
json_t *cwl_py_eval(struct cwl_py *p, const char *ex, size_t len,
		    const json_t *inputs, const json_t *self,
		    const json_t *runtime, char *err, size_t errlen);
void cwl_py_stop(struct cwl_py *p);

/* JSON as the reference runner writes it into strings and files (Python's
 * json.dumps with sort_keys=True): ", " and ": " separators, keys sorted.
 * The caller frees the result. */
char *cwl_json_dumps(const json_t *v);

/* ------------------------------------------------------------------ exec */

struct cwl_runtime {
	const char *outdir; /* absolute; the tool's working directory */
	const char *tmpdir; /* absolute */
	int64_t cores;
	int64_t ram;         /* MiB */
	int64_t outdir_size; /* MiB */
	int64_t tmpdir_size; /* MiB */
	double time_limit;   /* seconds, 0: none (ToolTimeLimit) */
};

/* The resources the tool asks for (ResourceRequirement, evaluated with
 * the job's inputs), rounded up as the spec says; defaults 1 core,
 * 256 MiB ram, 1024 MiB outdir and tmpdir. */
int cwl_resources(const json_t *tool, const json_t *job, struct cwl_runtime *rt,
		  char *err, size_t errlen);

/* Runs the tool on the job here: InitialWorkDir staged into rt->outdir,
 * the command line built, the process run with rt->outdir as its working
 * directory, HOME and tmpdir as TMPDIR (EnvVarRequirement applied),
 * stdin/stdout/stderr redirected, the exit code classed, the outputs
 * collected. Returns the output object (paths absolute, every output
 * File and Directory under rt->outdir) and *status CWL_OK, or NULL and
 * *status CWL_PERMANENT_FAIL, CWL_TEMPORARY_FAIL or CWL_UNSUPPORTED with
 * a reason in err. The caller owns the result (a new reference). The
 * tool's own stderr goes to this process's stderr unless captured. */
json_t *cwl_exec_tool(const json_t *tool, const json_t *job,
		      const struct cwl_runtime *rt, int *status, char *err,
		      size_t errlen);

/* The pieces of cwl_exec_tool, shared between its files. `runtime` is
 * the runtime object expressions see. */

/* 1 if value v has type T (cwl.h's canonical types), as the reference
 * runner picks a union's branch: ints are accepted as floats, records
 * may carry extra keys. */
int cwl_type_match(const json_t *type, const json_t *v);

/* The command line (cmdline.c): an array of strings from baseCommand,
 * arguments and the inputs' bindings, sorted as the spec says; with
 * ShellCommandRequirement ["/bin/sh", "-c", LINE]. */
json_t *cwl_command_line(struct cwl_expr *x, const json_t *tool,
			 const json_t *inputs, const json_t *runtime,
			 char *err, size_t errlen);

/* Copies a file or a directory tree (exec.c); symbolic links are
 * followed. */
int cwl_copy_path(const char *src, const char *dst, char *err, size_t errlen);

/* The output object (outputs.c) from outdir after the tool ran: from
 * cwl.output.json if the tool wrote one, else from each output's
 * binding; Files completed with size and checksum, Directories listed
 * deeply, everything checked against the output types. */
json_t *cwl_collect_outputs(struct cwl_expr *x, const json_t *tool,
			    const json_t *inputs, const json_t *runtime,
			    const char *outdir, char *err, size_t errlen);

/* -------------------------------------------------------------- workflow */

/* Workflows and ExpressionTools (workflow.c, scatter.c, exprtool.c,
 * docs/cwl.md "Workflows"). The canonical Workflow adds to a tool's
 * class, cwlVersion, id, inputs, outputs, requirements and hints:
 *
 *   outputs[].outputSource   array of sources (below), maybe empty
 *   steps    array of {"id": short, "in": [{"id": short, "source": [..],
 *            and as given linkMerge, pickValue, default, valueFrom,
 *            loadContents}], "out": [short ids], "run": the canonical
 *            process, "requirements", "hints" (maps, as a tool's),
 *            "scatter": [input ids]?, "scatterMethod"?, "when"?}
 *
 * A source is "INPUT" (the workflow's) or "STEP/OUTPUT". An ExpressionTool
 * has "expression" (a string) where a tool has its command.
 *
 * The engine runs one process, evaluating steps as their sources become
 * known: ExpressionTools and subworkflows here, each CommandLineTool
 * handed to ops->submit, which makes it a task and later reports it with
 * cwl_wf_task_done. Nothing blocks: the caller waits for its tasks. */
struct cwl_wf_ops {
	/* Starts tool (effective requirements merged in) on job (checked,
	 * Files completed). Returns a handle > 0, or 0 with err. */
	uint64_t (*submit)(void *arg, const json_t *tool, const json_t *job,
			   char *err, size_t errlen);
	void *arg;
	const char *scratch; /* where literals go; outlives the run */
	/* May be NULL. Makes every File and Directory in v readable here
	 * (their files may live only on workers until then): called before
	 * the engine reads files itself (loadContents, loadListing). 0, or -1
	 * with err. */
	int (*localize)(void *arg, const json_t *v, char *err, size_t errlen);
};

struct cwl_wf;

/* An engine for process on inputs (the checked input object, as
 * cwl_load_job gives it). Neither is taken; both must outlive it. */
struct cwl_wf *cwl_wf_new(const json_t *process, const json_t *inputs,
			  const struct cwl_wf_ops *ops);
void cwl_wf_free(struct cwl_wf *w);

/* Evaluates everything that can be evaluated now, submitting the tools
 * whose inputs are ready. Returns 1 when the process has finished (its
 * output object in cwl_wf_outputs), 0 when it waits on submitted tasks,
 * -1 when it failed (err; *status the CWL exit status). */
int cwl_wf_advance(struct cwl_wf *w, int *status, char *err, size_t errlen);

/* The task handle came back: outputs (taken; paths absolute) or, when it
 * failed, NULL and its CWL status (the run is over then: nothing more is
 * evaluated; the caller stops with that status). Returns -1 for an
 * unknown handle or a failed task. An output that a tool updated in place
 * carries "xylem:updates", the path of the input it replaces (cwl-exec
 * marks it; the engine takes the mark off). */
int cwl_wf_task_done(struct cwl_wf *w, uint64_t handle, json_t *outputs,
		     int status);

/* Tasks submitted and not reported yet. */
size_t cwl_wf_running(const struct cwl_wf *w);

/* The output object once cwl_wf_advance returned 1 (borrowed). */
const json_t *cwl_wf_outputs(const struct cwl_wf *w);

/* Internal to the engine's files. */
json_t *cwl__link_value(const json_t *state, const json_t *param,
			const char *srckey, char *err, size_t errlen);
json_t *cwl__scatter_jobs(const json_t *io, const json_t *names,
			  const char *method, json_t **dims, char *err,
			  size_t errlen);
json_t *cwl__scatter_gather(const json_t *flat, const json_t *dims);
json_t *cwl__exprtool_run(const json_t *tool, const json_t *inputs,
			  const char *scratch, char *err, size_t errlen);

#endif
