/*
 * outputs.c: a CommandLineTool's output object (cwl.h), collected from its
 * output directory after it ran. Pairs with exec.c, which calls it, and
 * fileobj.c, which completes each File and Directory found.
 *
 * As the reference runner does it: cwl.output.json, when the tool writes
 * one, is the whole answer; otherwise each output's glob is matched in the
 * output directory, outputEval sees the matches as self, a File-typed
 * output takes its single match, and secondaryFiles and format are added.
 * Then every File and Directory is resolved against the output directory,
 * completed (size, sha1 checksum, deep listing) and the object is checked
 * against the output types.
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cwl.h"
#include "util.h"

struct collector {
	struct cwl_expr *x;
	const json_t *tool;
	const json_t *inputs;
	const json_t *runtime;
	const char *outdir;
	char *err;
	size_t errlen;
	int copies;      /* files brought in under outdir, for their names */
	int listed;      /* inside a listing made by finish() */
	char *real_outdir; /* outdir with its links resolved */
};

/* Python's truth of a value: null, false, 0, "", [] and {} are false. */
static int truthy(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return json_object_size(v) > 0;
	case JSON_ARRAY:
		return json_array_size(v) > 0;
	case JSON_STRING:
		return json_string_length(v) > 0;
	case JSON_INTEGER:
		return json_integer_value(v) != 0;
	case JSON_REAL:
		return json_real_value(v) != 0;
	case JSON_TRUE:
		return 1;
	default:
		return 0;
	}
}

/* ------------------------------------------------------------- globs */

/* Appends the sorted matches of one pattern, relative to outdir. */
static int glob_pattern(struct collector *c, const char *pat, json_t *found)
{
	size_t olen = strlen(c->outdir);
	char *full;
	if (!strncmp(pat, c->outdir, olen) && pat[olen] == '/')
		pat += olen + 1;
	else if (!strcmp(pat, c->outdir))
		pat = ".";
	if (!strcmp(pat, ".") || !*pat)
		full = strdup(c->outdir);
	else if (pat[0] == '/')
		return xy_fail(c->err, c->errlen, EINVAL,
			       "glob pattern %s must not start with '/'", pat);
	else if (asprintf(&full, "%s/%s", c->outdir, pat) < 0)
		full = NULL;
	if (!full)
		return xy_fail(c->err, c->errlen, ENOMEM, "no memory");
	glob_t g;
	int rc = glob(full, 0, NULL, &g);
	free(full);
	if (rc == GLOB_NOMATCH)
		return 0;
	if (rc)
		return xy_fail(c->err, c->errlen, EIO, "glob %s failed", pat);
	for (size_t i = 0; i < g.gl_pathc; i++) {
		struct stat st;
		if (stat(g.gl_pathv[i], &st))
			continue;
		json_array_append_new(
			found, json_pack("{ssss}", "class",
					 S_ISDIR(st.st_mode) ? "Directory"
							     : "File",
					 "path", g.gl_pathv[i]));
	}
	globfree(&g);
	return 0;
}

/* The patterns of a glob: a string or an expression giving a string or
 * a list of strings; a list of those. */
static int glob_patterns(struct collector *c, const json_t *glob, json_t *pats)
{
	size_t i;
	json_t *g;
	if (json_is_array(glob)) {
		json_array_foreach(glob, i, g)
			if (glob_patterns(c, g, pats))
				return -1;
		return 0;
	}
	json_t *v = cwl_expr_eval_value(c->x, glob, c->inputs, NULL,
					c->runtime, c->err, c->errlen);
	if (!v)
		return -1;
	int bad = 0;
	if (json_is_string(v) && json_string_length(v)) {
		json_array_append(pats, v);
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, g) {
			bad |= !json_is_string(g);
			json_array_append(pats, g);
		}
	} else {
		bad = truthy(v);
	}
	json_decref(v);
	if (bad)
		return xy_fail(c->err, c->errlen, EINVAL,
			       "a glob must give strings or lists of strings");
	return 0;
}

/* How deep a globbed Directory is listed for outputEval: the binding's
 * loadListing, else LoadListingRequirement's; NULL for no listing. */
static const char *listing_depth(struct collector *c, const json_t *binding)
{
	const char *d = json_string_value(json_object_get(binding, "loadListing"));
	if (!d)
		d = json_string_value(json_object_get(
			cwl_requirement(c->tool, "LoadListingRequirement", NULL),
			"loadListing"));
	return d && strcmp(d, "no_listing") ? d : NULL;
}

/* The Files and Directories a binding's glob matches, completed (with
 * contents when loadContents asks for them). */
static json_t *glob_all(struct collector *c, const json_t *binding)
{
	json_t *pats = json_array(), *found = json_array(), *p;
	size_t i;
	const json_t *g = json_object_get(binding, "glob");
	if (g && glob_patterns(c, g, pats))
		goto error;
	json_array_foreach(pats, i, p)
		if (glob_pattern(c, json_string_value(p), found))
			goto error;
	int contents = json_is_true(json_object_get(binding, "loadContents"));
	const char *depth = listing_depth(c, binding);
	json_array_foreach(found, i, p) {
		if (cwl_file_complete(p, 1, c->err, c->errlen))
			goto error;
		if (contents && cwl_is_class(p, "File") &&
		    cwl_file_load_contents(p, c->err, c->errlen))
			goto error;
		if (depth && cwl_is_class(p, "Directory") &&
		    cwl_dir_listing(p, depth, c->err, c->errlen))
			goto error;
	}
	json_decref(pats);
	return found;
error:
	json_decref(pats);
	json_decref(found);
	return NULL;
}

/* ------------------------------------------------------ one output */

static int type_has(const json_t *type, const char *name)
{
	size_t i;
	json_t *t;
	if (json_is_string(type))
		return !strcmp(json_string_value(type), name);
	json_array_foreach(type, i, t)
		if (json_is_string(t) && !strcmp(json_string_value(t), name))
			return 1;
	return 0;
}

/* Adds one secondary file (a name beside primary, or an object) if it
 * exists; a missing required one is an error. */
static int add_secondary(struct collector *c, json_t *primary, json_t *sf,
			 int required)
{
	json_t *obj;
	if (json_is_string(sf)) {
		const char *p = json_string_value(json_object_get(primary, "path"));
		const char *slash = p ? strrchr(p, '/') : NULL;
		obj = json_pack("{ss#+}", "path", p ? p : "",
				slash ? (int)(slash - p + 1) : 0,
				json_string_value(sf));
	} else if (json_is_object(sf)) {
		obj = json_deep_copy(sf);
	} else {
		return 0;
	}
	const char *path = json_string_value(json_object_get(obj, "path"));
	struct stat st;
	if (!path || stat(path, &st)) {
		json_decref(obj);
		if (required)
			return xy_fail(c->err, c->errlen, ENOENT,
				       "missing required secondary file %s",
				       path ? path : "(no path)");
		return 0;
	}
	json_object_set_new(obj, "class",
			    json_string(S_ISDIR(st.st_mode) ? "Directory"
							    : "File"));
	json_array_append_new(json_object_get(primary, "secondaryFiles"), obj);
	return 0;
}

static int secondaries(struct collector *c, const json_t *port, json_t *primary)
{
	size_t i, j;
	json_t *sf, *item;
	if (!json_is_object(primary))
		return 0;
	if (!json_object_get(primary, "secondaryFiles"))
		json_object_set_new(primary, "secondaryFiles", json_array());
	json_array_foreach(json_object_get(port, "secondaryFiles"), i, sf) {
		const json_t *req = json_object_get(sf, "required");
		json_t *r = req ? cwl_expr_eval_value(c->x, req, c->inputs,
						      primary, c->runtime,
						      c->err, c->errlen)
				: json_false();
		const char *pat = json_string_value(json_object_get(sf, "pattern"));
		json_t *names = NULL;
		if (r && pat && cwl_expr_has(pat)) {
			names = cwl_expr_eval(c->x, pat, c->inputs, primary,
					      c->runtime, c->err, c->errlen);
		} else if (r && pat) {
			const char *base = json_string_value(
				json_object_get(primary, "basename"));
			char *n = cwl_secondary_name(base ? base : "", pat);
			names = n ? json_string(n) : NULL;
			free(n);
		}
		int rc = names ? 0 : -1;
		if (names && !json_is_array(names))
			names = json_pack("[o]", names);
		json_array_foreach(names, j, item)
			if (!rc && truthy(item))
				rc = add_secondary(c, primary, item,
						   json_is_true(r));
		json_decref(names);
		json_decref(r);
		if (rc)
			return -1;
	}
	return 0;
}

static int set_format(struct collector *c, const json_t *format, json_t *obj)
{
	if (!json_is_object(obj))
		return 0;
	json_t *f = cwl_expr_eval_value(c->x, format, c->inputs, obj,
					c->runtime, c->err, c->errlen);
	if (!f)
		return -1;
	if (!json_is_string(f)) {
		json_decref(f);
		return xy_fail(c->err, c->errlen, EINVAL,
			       "format must give a string");
	}
	json_object_set_new(obj, "format", f);
	return 0;
}

/* Applies fn to v, or to each item of v if it is a list. */
static int each(struct collector *c, const json_t *arg, json_t *v,
		int (*fn)(struct collector *, const json_t *, json_t *))
{
	size_t i;
	json_t *item;
	if (!json_is_array(v))
		return fn(c, arg, v);
	json_array_foreach(v, i, item)
		if (fn(c, arg, item))
			return -1;
	return 0;
}

static json_t *collect_port(struct collector *c, const json_t *port);

/* A glob's matches as the output's value: outputEval, the single File
 * of a File output, secondary files and format. */
static json_t *from_binding(struct collector *c, const json_t *port,
			    const json_t *binding)
{
	const json_t *type = json_object_get(port, "type");
	json_t *found = glob_all(c, binding), *result;
	const json_t *oe = json_object_get(binding, "outputEval");
	if (!found)
		return NULL;
	result = oe ? cwl_expr_eval_value(c->x, oe, c->inputs, found,
					  c->runtime, c->err, c->errlen)
		    : json_incref(found);
	json_decref(found);
	if (!result)
		return NULL;
	int optional = json_is_array(type) && type_has(type, "null");
	int single = type_has(type, "File") || type_has(type, "Directory");
	if (single && !truthy(result) && !optional) {
		json_decref(result);
		xy_fail(c->err, c->errlen, ENOENT,
			"did not find an output file for %s",
			json_string_value(json_object_get(port, "id")));
		return NULL;
	}
	if (single && json_is_array(result) && json_array_size(result) > 1) {
		json_decref(result);
		xy_fail(c->err, c->errlen, EINVAL,
			"several files match output %s, which takes one",
			json_string_value(json_object_get(port, "id")));
		return NULL;
	}
	if (single && json_is_array(result) && json_array_size(result) == 1) {
		json_t *one = json_incref(json_array_get(result, 0));
		json_decref(result);
		result = one;
	}
	const json_t *format = json_object_get(port, "format");
	if ((json_array_size(json_object_get(port, "secondaryFiles")) &&
	     each(c, port, result, secondaries)) ||
	    (format && each(c, format, result, set_format))) {
		json_decref(result);
		return NULL;
	}
	/* An optional output's empty list becomes null; a zero, a false or
	 * an empty string stays. */
	if (optional && (json_is_null(result) ||
			 (json_is_array(result) && !json_array_size(result)) ||
			 (json_is_object(result) && !json_object_size(result)))) {
		json_decref(result);
		return json_null();
	}
	return result;
}

/* A record output without a value of its own: each field collected. */
static json_t *from_fields(struct collector *c, const json_t *rec)
{
	json_t *out = json_object(), *f;
	size_t i;
	json_array_foreach(json_object_get(rec, "fields"), i, f) {
		json_t *v = collect_port(c, f);
		if (!v) {
			json_decref(out);
			return NULL;
		}
		json_object_set_new(out,
				    json_string_value(json_object_get(f, "name")),
				    v);
	}
	return out;
}

static json_t *collect_port(struct collector *c, const json_t *port)
{
	const json_t *binding = json_object_get(port, "outputBinding");
	const json_t *type = json_object_get(port, "type");
	json_t *result = binding ? from_binding(c, port, binding) : json_null();
	if (!result)
		return NULL;
	const char *tn = json_string_value(json_object_get(type, "type"));
	if (!truthy(result) && tn && !strcmp(tn, "record")) {
		json_decref(result);
		result = from_fields(c, type);
	}
	return result;
}

/* --------------------------------------------------------- finishing */

/* Brings a File or Directory in under outdir as base: one from outside
 * it, since every output must lie under outdir, or one whose basename
 * differs from its file's name, since the caller moves files by their
 * names. A hard link where possible, else a copy. */
static int bring_in(struct collector *c, json_t *obj, const char *path,
		    const char *base)
{
	char *dir = NULL, *dst = NULL;
	size_t plen = strlen(path);
	int rc = 0;
	if (!strncmp(c->outdir, path, plen) && c->outdir[plen] == '/')
		return xy_fail(c->err, c->errlen, EINVAL,
			       "output %s holds the output directory", path);
	if (asprintf(&dir, "%s/.xylem-out-%d", c->outdir, ++c->copies) < 0 ||
	    asprintf(&dst, "%s/%s", dir, base) < 0) {
		free(dir);
		return xy_fail(c->err, c->errlen, ENOMEM, "no memory");
	}
	if (xy_mkdir_p(dir))
		rc = xy_fail(c->err, c->errlen, errno, "mkdir %s: %s", dir,
			     strerror(errno));
	else if (linkat(AT_FDCWD, path, AT_FDCWD, dst, AT_SYMLINK_FOLLOW))
		rc = cwl_copy_path(path, dst, c->err, c->errlen);
	if (!rc)
		json_object_set_new(obj, "path", json_string(dst));
	free(dir);
	free(dst);
	return rc;
}

/* A symbolic link among the outputs must point inside outdir (the
 * reference runner refuses the others); it is replaced by a copy of its
 * target, which the caller can move on its own. */
static int resolve_link(struct collector *c, const char *path)
{
	struct stat st;
	if (lstat(path, &st) || !S_ISLNK(st.st_mode))
		return 0;
	char *real = realpath(path, NULL);
	size_t n = strlen(c->real_outdir);
	int rc = 0;
	if (!real || strncmp(real, c->real_outdir, n) || real[n] != '/')
		rc = xy_fail(c->err, c->errlen, EPERM,
			     "output %s links outside the output directory",
			     path);
	else if (unlink(path) || cwl_copy_path(real, path, c->err, c->errlen))
		rc = xy_fail(c->err, c->errlen, errno, "cannot copy %s to %s",
			     real, path);
	free(real);
	return rc;
}

/* True if the directory holding path lies outside outdir once links are
 * resolved: the tool reached it through a symbolic link (`cp -r` copies
 * a linked input directory as a link). Such an object is brought in as a
 * copy, never left to be moved by the caller, which would move it out of
 * the input it belongs to: a worker's cached object. */
static int through_link(struct collector *c, const char *path)
{
	char *dir = strdup(path), *slash = dir ? strrchr(dir, '/') : NULL;
	char *real = NULL;
	size_t n = strlen(c->real_outdir);
	int out;

	if (slash && slash != dir)
		*slash = 0;
	real = slash ? realpath(dir, NULL) : NULL;
	out = real && strcmp(real, c->real_outdir) &&
	      (strncmp(real, c->real_outdir, n) || real[n] != '/');
	free(real);
	free(dir);
	return out;
}

/* The absolute path an output object names: a relative path or location
 * is taken from outdir, as the reference runner reads cwl.output.json. */
static char *object_path(struct collector *c, const json_t *obj)
{
	const char *p = json_string_value(json_object_get(obj, "path"));
	const char *loc = json_string_value(json_object_get(obj, "location"));
	char *out = NULL;
	if (!p && loc && !strncmp(loc, "file://", 7))
		p = loc + 7;
	else if (!p)
		p = loc;
	if (!p)
		return NULL;
	if (p[0] == '/')
		return strdup(p);
	if (asprintf(&out, "%s/%s", c->outdir, p) < 0)
		return NULL;
	return out;
}

/* Whether an input object holds real (a path with links resolved). */
static int holds(const json_t *v, const char *real)
{
	const char *k;
	json_t *x;
	size_t i;

	if (json_is_array(v)) {
		json_array_foreach(v, i, x)
			if (holds(x, real))
				return 1;
		return 0;
	}
	if (!json_is_object(v))
		return 0;
	if (cwl_is_fileobj(v)) {
		const char *p = json_string_value(json_object_get(v, "path"));
		char *r = p ? realpath(p, NULL) : NULL;
		int in = r && cwl_path_within(real, r);

		free(r);
		if (in)
			return 1;
	}
	json_object_foreach((json_t *)v, k, x)
		if (holds(x, real))
			return 1;
	return 0;
}

/* An output must lie in the output directory, or be one of the inputs
 * (passed through): anything else, such as a cwl.output.json naming
 * "../../etc", is refused before any file is copied or moved. */
static int may_leave(struct collector *c, const char *path)
{
	char *real = realpath(path, NULL);
	int ok = real && (cwl_path_within(real, c->real_outdir) ||
			  holds(c->inputs, real));

	if (!real)
		xy_fail(c->err, c->errlen, errno, "output %s: %s", path,
			strerror(errno));
	else if (!ok)
		xy_fail(c->err, c->errlen, EPERM, "output %s is outside the"
			" output directory and is not an input", path);
	free(real);
	return ok ? 0 : -1;
}

static int finish(struct collector *c, json_t *v);

static int finish_object(struct collector *c, json_t *obj)
{
	char *path = object_path(c, obj);
	size_t olen = strlen(c->outdir);
	int rc = 0;
	if (!path)
		return xy_fail(c->err, c->errlen, EINVAL,
			       "an output File or Directory has no path");
	const char *name = strrchr(path, '/') + 1;
	const char *base = json_string_value(json_object_get(obj, "basename"));
	if (may_leave(c, path) < 0 ||
	    (base && *base && cwl_check_basename(base, c->err, c->errlen))) {
		free(path);
		return -1;
	}
	json_object_set_new(obj, "path", json_string(path));
	json_object_del(obj, "location");
	json_object_del(obj, "dirname");
	if (strncmp(path, c->outdir, olen) ||
	    (path[olen] != '/' && path[olen] != 0) ||
	    (base && *base && strcmp(base, name)) ||
	    (path[olen] == '/' && through_link(c, path)))
		rc = bring_in(c, obj, path, base && *base ? base : name);
	else
		rc = resolve_link(c, path);
	free(path);
	if (!rc)
		rc = cwl_file_complete(obj, 1, c->err, c->errlen);
	/* The caller gets every Directory listed in full, as the reference
	 * runner gives it; a listing made here already is. */
	if (!rc && cwl_is_class(obj, "Directory") && !c->listed) {
		json_object_del(obj, "listing");
		rc = cwl_dir_listing(obj, "deep_listing", c->err, c->errlen);
	}
	if (!rc)
		rc = finish(c, json_object_get(obj, "secondaryFiles"));
	if (!rc && json_object_get(obj, "listing")) {
		int was = c->listed;
		c->listed = 1;
		rc = finish(c, json_object_get(obj, "listing"));
		c->listed = was;
	}
	return rc;
}

/* Resolves and completes every File and Directory in v. */
static int finish(struct collector *c, json_t *v)
{
	size_t i;
	const char *k;
	json_t *item;
	if (cwl_is_fileobj(v))
		return finish_object(c, v);
	if (json_is_array(v)) {
		json_array_foreach(v, i, item)
			if (finish(c, item))
				return -1;
	} else if (json_is_object(v)) {
		json_object_foreach(v, k, item)
			if (finish(c, item))
				return -1;
	}
	return 0;
}

static json_t *custom_output(struct collector *c, const char *path)
{
	json_error_t je;
	json_t *out = json_load_file(path, 0, &je);
	if (!out)
		xy_fail(c->err, c->errlen, EINVAL, "%s:%d: %s", path, je.line,
			je.text);
	return out;
}

static int check_types(struct collector *c, const json_t *out)
{
	size_t i;
	json_t *port;
	json_array_foreach(json_object_get(c->tool, "outputs"), i, port) {
		const char *id = json_string_value(json_object_get(port, "id"));
		if (!cwl_type_match(json_object_get(port, "type"),
				    json_object_get(out, id ? id : "")))
			return xy_fail(c->err, c->errlen, EINVAL,
				       "output %s does not match its type", id);
	}
	return 0;
}

/* Each output from its binding. */
static json_t *collect_ports(struct collector *c)
{
	json_t *out = json_object(), *port;
	size_t i;
	json_array_foreach(json_object_get(c->tool, "outputs"), i, port) {
		json_t *v = collect_port(c, port);
		if (!v) {
			json_decref(out);
			return NULL;
		}
		json_object_set_new(
			out, json_string_value(json_object_get(port, "id")), v);
	}
	return out;
}

json_t *cwl_collect_outputs(struct cwl_expr *x, const json_t *tool,
			    const json_t *inputs, const json_t *runtime,
			    const char *outdir, char *err, size_t errlen)
{
	struct collector c = {x, tool, inputs, runtime, outdir, err, errlen,
			      0, 0, realpath(outdir, NULL)};
	char *custom = NULL;
	json_t *out = NULL;
	if (!c.real_outdir || asprintf(&custom, "%s/cwl.output.json",
				       outdir) < 0) {
		xy_fail(err, errlen, errno, "output directory %s: %s", outdir,
			strerror(errno));
		custom = NULL;
		goto done;
	}
	out = access(custom, F_OK) == 0 ? custom_output(&c, custom)
					: collect_ports(&c);
	if (out && !json_is_object(out)) {
		json_decref(out);
		out = NULL;
		xy_fail(err, errlen, EINVAL, "%s is not an object", custom);
	}
	if (out && (finish(&c, out) || check_types(&c, out))) {
		json_decref(out);
		out = NULL;
	}
done:
	free(custom);
	free(c.real_outdir);
	return out;
}
