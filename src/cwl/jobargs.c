/*
 * jobargs.c: a job from the command line, as the reference runner reads
 * one: `xylem cwl TOOL --INPUT VALUE ...` (cwl.h, cwl_job_args). Each
 * value is read by the input's type: a path for a File or a Directory
 * (relative to the current directory), a number, a boolean (a flag alone
 * is true), a string or an enum symbol; an array input takes the option
 * once per item. load.c then checks the job as it checks one read from a
 * file.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cwl.h"
#include "util.h"

/* The input of tool whose short id is name, or NULL. */
static const json_t *input_named(const json_t *tool, const char *name,
				 size_t len)
{
	const json_t *p;
	size_t i;

	json_array_foreach(json_object_get(tool, "inputs"), i, p) {
		const char *id = cwl_short_name(json_string_value(
			json_object_get(p, "id")));
		if (id && strlen(id) == len && strncmp(id, name, len) == 0)
			return p;
	}
	return NULL;
}

/* "no input NAME" with the inputs there are, or the one it resembles. */
static int no_such_input(const json_t *tool, const char *arg, char *err,
			 size_t errlen)
{
	char names[512] = "";
	const char *hint = NULL;
	size_t best = 3, used = 0;
	const json_t *p;
	size_t i;

	json_array_foreach(json_object_get(tool, "inputs"), i, p) {
		const char *id = cwl_short_name(json_string_value(
			json_object_get(p, "id")));
		size_t d = id ? xy_edit_distance(arg, id) : 64;
		if (!id)
			continue;
		if (d < best) {
			best = d;
			hint = id;
		}
		if (used < sizeof names)
			used += (size_t)snprintf(names + used,
						 sizeof names - used, "%s--%s",
						 used ? ", " : "", id);
	}
	if (hint)
		return xy_fail(err, errlen, EINVAL, "the tool has no input --%s"
			       " (did you mean --%s?)", arg, hint);
	return xy_fail(err, errlen, EINVAL, "the tool has no input --%s (its "
		       "inputs: %s)", arg, used ? names : "none");
}

/* The type a value given for type t is read as: a union that admits a
 * string reads it as a string (as CWLApp does in Python, cwl.py), else
 * as its first member other than null. */
static const json_t *value_type(const json_t *t)
{
	const json_t *x, *first = NULL;
	size_t i;

	if (!json_is_array(t))
		return t;
	json_array_foreach(t, i, x) {
		const char *n = json_string_value(x);
		if (n && !strcmp(n, "string"))
			return x;
		if (!first && (!n || strcmp(n, "null")))
			first = x;
	}
	return first ? first : t;
}

static const char *type_name(const json_t *t)
{
	if (json_is_object(t))
		return json_string_value(json_object_get(t, "type"));
	return json_string_value(t);
}

/* The job value for text s, given for type t; NULL with err set. */
static json_t *read_value(const json_t *t, const char *s, const char *cwd,
			  char *err, size_t errlen)
{
	const char *n = type_name(value_type(t));
	char *end;

	if (!n || !strcmp(n, "string") || !strcmp(n, "Any") ||
	    !strcmp(n, "enum"))
		return json_string(s);
	if (!strcmp(n, "File") || !strcmp(n, "Directory")) {
		json_t *obj = json_pack("{s:s, s:s}", "class", n, "path", s);
		cwl_files_resolve(obj, cwd);
		return obj;
	}
	errno = 0;
	if (!strcmp(n, "int") || !strcmp(n, "long")) {
		long long v = strtoll(s, &end, 10);
		if (*s && !*end && !errno)
			return json_integer(v);
	} else if (!strcmp(n, "float") || !strcmp(n, "double")) {
		double v = strtod(s, &end);
		if (*s && !*end && !errno)
			return json_real(v);
	} else if (!strcmp(n, "boolean")) {
		if (!strcmp(s, "true") || !strcmp(s, "false"))
			return json_boolean(!strcmp(s, "true"));
	} else {
		xy_fail(err, errlen, EINVAL, "a %s cannot be given on the "
			"command line; write it in a job file", n);
		return NULL;
	}
	xy_fail(err, errlen, EINVAL, "'%s' is not of type %s", s, n);
	return NULL;
}

/* Adds one --NAME[=VALUE] (VALUE from argv[*i + 1] if needed) to job. */
static int one_arg(const json_t *tool, json_t *job, char *const *argv,
		   int argc, int *i, const char *cwd, char *err, size_t errlen)
{
	const char *a = argv[*i] + 2, *eq = strchr(a, '=');
	size_t len = eq ? (size_t)(eq - a) : strlen(a);
	char name[128];
	const json_t *p, *t, *items = NULL;
	const char *value = eq ? eq + 1 : NULL;
	json_t *v;

	snprintf(name, sizeof name, "%.*s", (int)(len < 127 ? len : 127), a);
	if (!(p = input_named(tool, a, len)))
		return no_such_input(tool, name, err, errlen);
	t = value_type(json_object_get(p, "type"));
	if (json_is_object(t) && !strcmp(type_name(t), "array"))
		items = json_object_get(t, "items");
	if (!value && !items && type_name(t) &&
	    !strcmp(type_name(t), "boolean") &&
	    (*i + 1 >= argc || !strncmp(argv[*i + 1], "--", 2)))
		value = "true"; /* a flag alone */
	if (!value && *i + 1 >= argc)
		return xy_fail(err, errlen, EINVAL, "--%s wants a value",
			       name);
	if (!value)
		value = argv[++*i];
	v = read_value(items ? items : t, value, cwd, err, errlen);
	if (!v) {
		char why[256];
		snprintf(why, sizeof why, "%s", err);
		return xy_fail(err, errlen, EINVAL, "--%s: %s", name, why);
	}
	if (!items)
		return json_object_set_new(job, name, v);
	if (!json_object_get(job, name))
		json_object_set_new(job, name, json_array());
	return json_array_append_new(json_object_get(job, name), v);
}

json_t *cwl_job_args(const json_t *tool, int argc, char *const *argv,
		     char *err, size_t errlen)
{
	char cwd[PATH_MAX];
	json_t *job = json_object();

	if (!job || !getcwd(cwd, sizeof cwd)) {
		xy_fail(err, errlen, errno ? errno : ENOMEM, "%s",
			"cannot read the current directory");
		json_decref(job);
		return NULL;
	}
	for (int i = 0; i < argc; i++) {
		if (strncmp(argv[i], "--", 2) != 0 || !argv[i][2]) {
			xy_fail(err, errlen, EINVAL, "'%s' is not --INPUT VALUE"
				" (a job file goes right after the tool)",
				argv[i]);
			json_decref(job);
			return NULL;
		}
		if (one_arg(tool, job, argv, argc, &i, cwd, err, errlen) < 0) {
			json_decref(job);
			return NULL;
		}
	}
	return job;
}
