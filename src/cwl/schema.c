/*
 * schema.c: CWL types. Normalizes the type forms a document may use into
 * the canonical ones of cwl.h ("T?", "T[]", named SchemaDefRequirement
 * types, map forms of record fields), checks a value against a type, and
 * builds the job's input object from the job file and the defaults. The
 * File work on the values (completion, secondaryFiles, format) is in
 * fileobj.c; load.c drives both.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cwl.h"
#include "util.h"

/* SchemaDefRequirement types may refer to each other; no sane chain is
 * longer than this, and a cycle would otherwise recurse forever. */
#define TYPE_DEPTH_MAX 32
/* Names expanded in one type at most: a record whose fields name other
 * records can double the work at each level, so depth alone does not
 * bound it (32 levels of two fields each would be 2^32 copies). */
#define TYPE_EXPANSIONS_MAX 10000

static const char *const primitives[] = {
	"null", "boolean", "int", "long", "float", "double", "string",
	"File", "Directory", "Any", NULL,
};

const char *cwl_short_name(const char *s)
{
	const char *h = strrchr(s, '#'), *sl;

	if (h)
		s = h + 1;
	sl = strrchr(s, '/');
	return sl ? sl + 1 : s;
}

static int is_primitive(const char *s)
{
	int i;

	for (i = 0; primitives[i]; i++)
		if (strcmp(s, primitives[i]) == 0)
			return 1;
	return 0;
}

/* The primitive a namespaced name stands for, e.g.
 * "https://w3id.org/cwl/cwl#File" or "xsd:string"; NULL if none. */
static const char *primitive_of(const char *s)
{
	const char *c = strrchr(s, ':');
	const char *tail = cwl_short_name(s);

	if (is_primitive(s))
		return s;
	if (strchr(s, '#') && is_primitive(tail))
		return tail;
	if (c && !strchr(s, '/') && is_primitive(c + 1))
		return c + 1;
	return NULL;
}

struct norm {
	const json_t *defs; /* short name -> raw definition */
	const json_t *ns;   /* $namespaces */
	int output;
	int depth;       /* names being expanded, one inside another */
	long expansions; /* names expanded so far, in all */
	char *err;
	size_t errlen;
};

static json_t *norm_type(struct norm *n, const json_t *t, const json_t *at);
static json_t *field_norm(struct norm *n, const json_t *f);

static int fail(struct norm *n, const json_t *at, const char *what,
		const json_t *v)
{
	char where[512];
	char *dump = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;

	snprintf(n->err, n->errlen, "%s: %s%s%s",
		 cwl_where(at, where, sizeof where), what, dump ? ": " : "",
		 dump ? dump : "");
	free(dump);
	errno = EINVAL;
	return -1;
}

/* "T[]" and "T?" as the spec's type DSL reads them: '?' last. */
static json_t *norm_name(struct norm *n, const char *s, const json_t *at)
{
	size_t len = strlen(s);
	const json_t *def;
	const char *prim;
	json_t *inner, *out;
	char *base;

	if (len > 1 && (s[len - 1] == '?' ||
			(len > 2 && strcmp(s + len - 2, "[]") == 0))) {
		int opt = s[len - 1] == '?';

		base = strndup(s, len - (opt ? 1 : 2));
		inner = base ? norm_name(n, base, at) : NULL;
		free(base);
		if (!inner)
			return NULL;
		if (opt)
			return json_pack("[so]", "null", inner);
		return json_pack("{s:s,s:o}", "type", "array", "items", inner);
	}
	if ((prim = primitive_of(s)))
		return json_string(prim);
	def = json_object_get(n->defs, cwl_short_name(s));
	if (!def) {
		json_t *name = json_string(s);

		fail(n, at, "unknown type name (expected a CWL type or a "
		     "SchemaDefRequirement name)", name);
		json_decref(name);
		return NULL;
	}
	if (n->depth >= TYPE_DEPTH_MAX) {
		fail(n, at, "type definitions nest too deeply", NULL);
		return NULL;
	}
	if (++n->expansions > TYPE_EXPANSIONS_MAX) {
		fail(n, at, "type definitions expand to too many types", NULL);
		return NULL;
	}
	n->depth++;
	out = norm_type(n, def, def);
	n->depth--;
	return out;
}

static int copy_where(json_t *to, const json_t *from, const json_t *at)
{
	cwl_where_copy(to, json_is_object(from) || json_is_array(from) ?
		       from : at);
	return 0;
}

/* Fields as a list of {name, type, ...} or as a map name -> type or
 * name -> {type, ...}. */
static json_t *norm_fields(struct norm *n, const json_t *fields,
			   const json_t *at)
{
	json_t *out = json_array(), *f, *rec;
	const json_t *v;
	const char *k;
	size_t i;

	if (json_is_object(fields)) {
		json_object_foreach((json_t *)fields, k, v) {
			if (json_is_object(v) && json_object_get(v, "type"))
				rec = json_deep_copy(v);
			else
				rec = json_pack("{s:O}", "type", v);
			json_object_set_new(rec, "name", json_string(k));
			copy_where(rec, v, fields);
			f = field_norm(n, rec);
			json_decref(rec);
			if (!f || json_array_append_new(out, f) < 0)
				goto fail;
		}
		return out;
	}
	if (!json_is_array(fields)) {
		fail(n, at, "record 'fields' must be a list or a map", fields);
		goto fail;
	}
	json_array_foreach(fields, i, v) {
		f = field_norm(n, v);
		if (!f || json_array_append_new(out, f) < 0)
			goto fail;
	}
	return out;
fail:
	json_decref(out);
	return NULL;
}

static json_t *norm_symbols(struct norm *n, const json_t *syms,
			    const json_t *at)
{
	json_t *out = json_array();
	const json_t *v;
	size_t i;

	if (!json_is_array(syms)) {
		fail(n, at, "enum 'symbols' must be a list of strings", syms);
		json_decref(out);
		return NULL;
	}
	json_array_foreach(syms, i, v) {
		if (!json_is_string(v)) {
			fail(n, at, "enum symbol must be a string", v);
			json_decref(out);
			return NULL;
		}
		json_array_append_new(out, json_string(cwl_short_name(
			json_string_value(v))));
	}
	return out;
}

static json_t *norm_object(struct norm *n, const json_t *t)
{
	const char *kind = json_string_value(json_object_get(t, "type"));
	const char *name = json_string_value(json_object_get(t, "name"));
	json_t *out, *sub;

	if (!kind)
		return norm_type(n, json_object_get(t, "type"), t);
	out = json_deep_copy(t);
	cwl_where_copy(out, t);
	if (name)
		json_object_set_new(out, "name",
				    json_string(cwl_short_name(name)));
	if (strcmp(kind, "array") == 0) {
		if (!json_object_get(t, "items"))
			goto missing;
		sub = norm_type(n, json_object_get(t, "items"), t);
		if (!sub)
			goto fail;
		json_object_set_new(out, "items", sub);
	} else if (strcmp(kind, "record") == 0) {
		sub = norm_fields(n, json_object_get(t, "fields"), t);
		if (!sub)
			goto fail;
		json_object_set_new(out, "fields", sub);
	} else if (strcmp(kind, "enum") == 0) {
		sub = norm_symbols(n, json_object_get(t, "symbols"), t);
		if (!sub)
			goto fail;
		json_object_set_new(out, "symbols", sub);
	} else {
		/* {"type": "File"} and the like: the inner type is the type. */
		json_decref(out);
		return norm_type(n, json_object_get(t, "type"), t);
	}
	return out;
missing:
	fail(n, t, "array type without 'items'", NULL);
fail:
	json_decref(out);
	return NULL;
}

static json_t *norm_type(struct norm *n, const json_t *t, const json_t *at)
{
	json_t *out, *sub;
	const json_t *v;
	size_t i;

	if (json_is_string(t))
		return norm_name(n, json_string_value(t), at);
	if (json_is_object(t))
		return norm_object(n, t);
	if (!json_is_array(t)) {
		fail(n, at, "a type must be a name, a list or a map", t);
		return NULL;
	}
	out = json_array();
	cwl_where_copy(out, t);
	json_array_foreach(t, i, v) {
		sub = norm_type(n, v, t);
		if (!sub) {
			json_decref(out);
			return NULL;
		}
		json_array_append_new(out, sub);
	}
	return out;
}

json_t *cwl_type_norm(const json_t *t, const json_t *defs, const json_t *ns,
		      int output, const json_t *at, char *err, size_t errlen)
{
	struct norm n = {.defs = defs, .ns = ns, .output = output,
			 .err = err, .errlen = errlen};

	return norm_type(&n, t, at);
}

/* ------------------------------------------- secondaryFiles and format */

static json_t *sf_entry(const json_t *v, int output, const json_t *at,
			char *err, size_t errlen)
{
	char where[512];
	const char *s;
	size_t len;

	if (json_is_string(v)) {
		s = json_string_value(v);
		len = strlen(s);
		if (len > 0 && s[len - 1] == '?')
			return json_pack("{s:s%,s:b}", "pattern", s, len - 1,
					 "required", 0);
		return json_pack("{s:s,s:b}", "pattern", s, "required",
				 !output);
	}
	if (json_is_object(v) && json_is_string(json_object_get(v, "pattern"))) {
		const json_t *req = json_object_get(v, "required");
		json_t *e = json_pack("{s:O}", "pattern",
				      json_object_get(v, "pattern"));

		if (json_is_boolean(req) || json_is_string(req))
			json_object_set(e, "required", (json_t *)req);
		else
			json_object_set_new(e, "required",
					    json_boolean(!output));
		return e;
	}
	xy_fail(err, errlen, EINVAL, "%s: secondaryFiles entry must be a pattern "
		 "string or {pattern, required}",
		 cwl_where(json_is_object(v) ? v : at, where, sizeof where));
	return NULL;
}

json_t *cwl_secondary_norm(const json_t *sf, int output, const json_t *at,
			   char *err, size_t errlen)
{
	json_t *out = json_array(), *e;
	const json_t *v;
	size_t i;

	if (!json_is_array(sf)) {
		e = sf_entry(sf, output, at, err, errlen);
		if (!e || json_array_append_new(out, e) < 0)
			goto fail;
		return out;
	}
	json_array_foreach(sf, i, v) {
		e = sf_entry(v, output, sf, err, errlen);
		if (!e || json_array_append_new(out, e) < 0)
			goto fail;
	}
	return out;
fail:
	json_decref(out);
	return NULL;
}

json_t *cwl_format_expand(const json_t *fmt, const json_t *ns)
{
	const char *s, *colon, *uri;
	json_t *out;
	const json_t *v;
	size_t i;
	char *key;

	if (json_is_array(fmt)) {
		out = json_array();
		json_array_foreach(fmt, i, v)
			json_array_append_new(out, cwl_format_expand(v, ns));
		return out;
	}
	s = json_string_value(fmt);
	colon = s ? strchr(s, ':') : NULL;
	if (!colon || cwl_expr_has(s) > 0 || strncmp(colon, "://", 3) == 0)
		return json_incref((json_t *)fmt);
	key = strndup(s, colon - s);
	uri = key ? json_string_value(json_object_get(ns, key)) : NULL;
	free(key);
	if (!uri)
		return json_incref((json_t *)fmt);
	return json_sprintf("%s%s", uri, colon + 1);
}

/* Shared by inputs, outputs and record fields: the name key made short,
 * the type normalized, secondaryFiles made canonical, format expanded. */
/* The fields of a record are normalised inside the record's own
 * normalisation (n): the depth and the count of names expanded carry on,
 * so a type that names itself through a field ends at TYPE_DEPTH_MAX
 * instead of recursing until the stack overflows. */
static int param_norm(struct norm *n, json_t *p, const char *key)
{
	const char *name = json_string_value(json_object_get(p, key));
	const json_t *v;
	json_t *t;

	if (name)
		json_object_set_new(p, key, json_string(cwl_short_name(name)));
	if ((v = json_object_get(p, "type"))) {
		t = norm_type(n, v, p);
		if (!t)
			return -1;
		json_object_set_new(p, "type", t);
	}
	if ((v = json_object_get(p, "secondaryFiles"))) {
		t = cwl_secondary_norm(v, n->output, p, n->err, n->errlen);
		if (!t)
			return -1;
		json_object_set_new(p, "secondaryFiles", t);
	}
	if ((v = json_object_get(p, "format")))
		json_object_set_new(p, "format", cwl_format_expand(v, n->ns));
	return 0;
}

static json_t *field_norm(struct norm *n, const json_t *f)
{
	char where[512];
	json_t *out;

	if (!json_is_object(f) || !json_is_string(json_object_get(f, "name")) ||
	    !json_object_get(f, "type")) {
		xy_fail(n->err, n->errlen, EINVAL, "%s: a record field needs a "
			"'name' and a 'type'", cwl_where(f, where, sizeof where));
		return NULL;
	}
	out = json_deep_copy(f);
	cwl_where_copy(out, f);
	if (param_norm(n, out, "name") < 0) {
		json_decref(out);
		return NULL;
	}
	return out;
}

json_t *cwl_field_norm(const json_t *f, const json_t *defs, const json_t *ns,
		       int output, char *err, size_t errlen)
{
	struct norm n = {.defs = defs, .ns = ns, .output = output,
			 .err = err, .errlen = errlen};

	return field_norm(&n, f);
}

int cwl_param_norm(json_t *p, const json_t *defs, const json_t *ns,
		   int output, char *err, size_t errlen)
{
	struct norm n = {.defs = defs, .ns = ns, .output = output,
			 .err = err, .errlen = errlen};

	return param_norm(&n, p, "id");
}

/* ------------------------------------------------------- input object */

static json_t *input_value(const json_t *p, const json_t *given,
			   const char *tooldir, int *from_default)
{
	const json_t *def = json_object_get(p, "default");
	json_t *v;

	*from_default = 0;
	if (given && !json_is_null(given))
		return json_incref((json_t *)given);
	if (!def || json_is_null(def))
		return json_null();
	*from_default = 1;
	v = json_deep_copy(def);
	cwl_files_resolve(v, tooldir);
	return v;
}

static void describe(char *buf, size_t len, const json_t *v)
{
	char *d = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

	snprintf(buf, len, "%s", d ? d : "?");
	if (strlen(buf) > 200)
		strcpy(buf + 197, "...");
	free(d);
}

/* Record fields left out of a record value take the field's default, as
 * the reference runner does at binding time. */
static void record_defaults(const json_t *t, json_t *v, const char *tooldir)
{
	const json_t *f, *def;
	const char *name;
	size_t i;

	if (!json_is_object(t) || !json_is_object(v) ||
	    strcmp(json_string_value(json_object_get(t, "type")) ?: "",
		   "record") != 0)
		return;
	json_array_foreach(json_object_get(t, "fields"), i, f) {
		name = json_string_value(json_object_get(f, "name"));
		def = json_object_get(f, "default");
		if (name && def && !json_object_get(v, name)) {
			json_t *d = json_deep_copy(def);

			cwl_files_resolve(d, tooldir);
			json_object_set_new(v, name, d);
		}
	}
}

json_t *cwl_inputs_fill(const json_t *tool, const json_t *job,
			const char *tooldir, char *err, size_t errlen)
{
	json_t *out = json_object(), *v;
	const json_t *p, *t;
	char where[512], got[256], want[256];
	const char *id;
	int from_def;
	size_t i;

	json_array_foreach(json_object_get(tool, "inputs"), i, p) {
		id = json_string_value(json_object_get(p, "id"));
		t = json_object_get(p, "type");
		v = input_value(p, json_object_get(job, id), tooldir, &from_def);
		record_defaults(t, v, tooldir);
		if (t && !cwl_type_match(t, v)) {
			cwl_where(p, where, sizeof where);
			if (json_is_null(v))
				xy_fail(err, errlen, EINVAL, "%s: missing required "
					 "input '%s'", where, id);
			else {
				describe(got, sizeof got, v);
				describe(want, sizeof want, t);
				xy_fail(err, errlen, EINVAL, "%s: input '%s'%s is "
					 "%s, expected type %s", where, id,
					 from_def ? " (default)" : "", got,
					 want);
			}
			json_decref(v);
			json_decref(out);
			return NULL;
		}
		json_object_set_new(out, id, v);
	}
	if ((v = json_object_get(job, "cwl:requirements")))
		json_object_set(out, "cwl:requirements", v);
	return out;
}
