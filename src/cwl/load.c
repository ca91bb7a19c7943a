/*
 * load.c: turns a CWL CommandLineTool document into the canonical tool of
 * cwl.h, and a job file into the checked input object. yaml.c reads the
 * text, schema.c normalizes types and fills inputs, fileobj.c completes
 * File and Directory values; this file picks the process out of the
 * document ($graph, #fragment), applies the map forms and shortcuts of the
 * spec, and sorts requirements from hints.
 */
#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cwl.h"
#include "load_int.h"
#include "util.h"

/* The requirement classes this runner knows. DockerRequirement is known
 * but refused as a requirement (there is no container runtime here). */
static const char *const known_classes[] = {
	"InlineJavascriptRequirement", "SchemaDefRequirement",
	"LoadListingRequirement", "DockerRequirement", "SoftwareRequirement",
	"InitialWorkDirRequirement", "EnvVarRequirement",
	"ShellCommandRequirement", "ResourceRequirement", "WorkReuse",
	"NetworkAccess", "InplaceUpdateRequirement", "ToolTimeLimit",
	"SubworkflowFeatureRequirement", "ScatterFeatureRequirement",
	"MultipleInputFeatureRequirement", "StepInputExpressionRequirement",
	"InlinePythonRequirement", /* Xylem's own (XYLEM_NS) */
	NULL,
};



static int bad(struct tl *t, const json_t *at, const char *fmt,
	       const char *arg);

static int bad(struct tl *t, const json_t *at, const char *fmt,
	       const char *arg)
{
	char where[512], what[512];

	snprintf(what, sizeof what, fmt, arg ? arg : "");
	snprintf(t->err, t->errlen, "%s: %s", cwl_where(at, where,
						       sizeof where), what);
	t->status = CWL_PERMANENT_FAIL;
	errno = EINVAL;
	return -1;
}

/* --------------------------------------------------- picking the tool */

static int id_matches(const json_t *p, const char *frag)
{
	const char *id = json_string_value(json_object_get(p, "id"));
	const char *h;

	if (!id)
		return 0;
	h = strrchr(id, '#');
	return strcmp(h ? h + 1 : id, frag) == 0;
}

static int pick(struct tl *t, const char *frag)
{
	const json_t *graph = json_object_get(t->root, "$graph"), *p;
	size_t i;

	if (!json_is_object(t->root) && !json_is_array(graph))
		return bad(t, t->root, "a CWL document must be a map%s", NULL);
	if (!graph) {
		t->proc = t->root;
		if (frag && !id_matches(t->root, frag) &&
		    strcmp(frag, "main") != 0)
			return bad(t, t->root, "no process '#%s' in the "
				   "document", frag);
		return 0;
	}
	if (!json_is_array(graph))
		return bad(t, t->root, "$graph must be a list%s", NULL);
	json_array_foreach(graph, i, p)
		if (json_is_object(p) && id_matches(p, frag ? frag : "main")) {
			t->proc = p;
			return 0;
		}
	if (!frag && json_array_size(graph) == 1) {
		t->proc = json_array_get(graph, 0);
		return 0;
	}
	return bad(t, graph, "no process '#%s' in $graph", frag ? frag :
		   "main");
}

static int check_class(struct tl *t)
{
	const char *cls = json_string_value(json_object_get(t->proc, "class"));
	const char *ver = json_string_value(json_object_get(t->proc,
							    "cwlVersion"));

	if (!ver)
		ver = json_string_value(json_object_get(t->root, "cwlVersion"));
	if (!cls)
		return bad(t, t->proc, "missing 'class' (expected "
			   "CommandLineTool)%s", NULL);
	if (strcmp(cls, "Operation") == 0) {
		bad(t, t->proc, "class %s is not supported by this runner "
		    "(it has no implementation to run)", cls);
		t->status = CWL_UNSUPPORTED;
		return -1;
	}
	if (strcmp(cls, "CommandLineTool") != 0 &&
	    strcmp(cls, "ExpressionTool") != 0 && strcmp(cls, "Workflow") != 0)
		return bad(t, t->proc, "unknown class '%s' (expected "
			   "CommandLineTool, ExpressionTool or Workflow)", cls);
	if (!ver)
		return bad(t, t->proc, "missing 'cwlVersion' (expected "
			   "v1.2)%s", NULL);
	if (strcmp(ver, "v1.0") != 0 && strcmp(ver, "v1.1") != 0 &&
	    strncmp(ver, "v1.2", 4) != 0)
		return bad(t, t->proc, "unsupported cwlVersion '%s' (expected "
			   "v1.0, v1.1 or v1.2)", ver);
	json_object_set_new(t->out, "class", json_string(cls));
	json_object_set_new(t->out, "cwlVersion", json_string(ver));
	return 0;
}

/* The fields of a CommandLineTool (v1.0 to v1.2). */
static const char *const tool_fields[] = {
	"class", "cwlVersion", "id", "label", "doc", "intent", "inputs",
	"outputs", "requirements", "hints", "baseCommand", "arguments",
	"stdin", "stdout", "stderr", "successCodes", "temporaryFailCodes",
	"permanentFailCodes", NULL,
};
static const char *const exprtool_fields[] = {
	"class", "cwlVersion", "id", "label", "doc", "intent", "inputs",
	"outputs", "requirements", "hints", "expression", NULL,
};
static const char *const workflow_fields[] = {
	"class", "cwlVersion", "id", "label", "doc", "intent", "inputs",
	"outputs", "requirements", "hints", "steps", NULL,
};

/* A field that is not the spec's is an error, as in the reference
 * runner, so that a typo (baseComand) fails at load rather than as an
 * empty command line at run time. Fields in a namespace (s:author) and
 * directives ($namespaces) are the document's own and pass. */
static int check_fields(struct tl *t)
{
	const char *key, *hint;
	const char *cls = json_string_value(json_object_get(t->proc, "class"));
	const char *const *fields = !strcmp(cls, "Workflow") ? workflow_fields
		: !strcmp(cls, "ExpressionTool") ? exprtool_fields : tool_fields;
	const json_t *v;
	char what[160];

	json_object_foreach((json_t *)t->proc, key, v) {
		size_t best = 3, d;
		const char *const *f;

		if (key[0] == '$' || strchr(key, ':'))
			continue;
		hint = NULL;
		for (f = fields; *f; f++) {
			d = xy_edit_distance(key, *f);
			if (d == 0)
				break;
			if (d < best) {
				best = d;
				hint = *f;
			}
		}
		if (*f)
			continue;
		if (hint)
			snprintf(what, sizeof what, "unknown field '%.64s' (did"
				 " you mean '%s'?)", key, hint);
		else
			snprintf(what, sizeof what, "unknown field '%.64s' of a"
				 " %s", key, cls);
		return bad(t, v, "%s", what);
	}
	return 0;
}

/* ------------------------------------------------------- requirements */

/* The class without a namespace, or NULL when it lives in a namespace
 * other than CWL's (an extension this runner does not know). */
static const char *class_short(const char *cls)
{
	const char *h = strrchr(cls, '#');

	if (strncmp(cls, "cwl:", 4) == 0)
		return cls + 4;
	/* Xylem's extensions, as xylem:NAME (with $namespaces giving
	 * XYLEM_NS for "xylem") or in full. */
	if (strncmp(cls, "xylem:", 6) == 0)
		return cls + 6;
	if (strncmp(cls, XYLEM_NS, strlen(XYLEM_NS)) == 0)
		return cls + strlen(XYLEM_NS);
	if (h && strstr(cls, "w3id.org/cwl"))
		return h + 1;
	if (strchr(cls, ':') || strchr(cls, '#') || strchr(cls, '/'))
		return NULL;
	return cls;
}

static int is_known(const char *cls)
{
	int i;

	for (i = 0; cls && known_classes[i]; i++)
		if (strcmp(cls, known_classes[i]) == 0)
			return 1;
	return 0;
}

/* envDef and packages may be maps (name -> value). */
static void req_map_forms(json_t *r, const char *cls)
{
	const char *field = NULL, *key = NULL, *pred = NULL, *k;
	json_t *v, *list, *m;

	if (strcmp(cls, "EnvVarRequirement") == 0)
		field = "envDef", key = "envName", pred = "envValue";
	else if (strcmp(cls, "SoftwareRequirement") == 0)
		field = "packages", key = "package", pred = "specs";
	m = field ? json_object_get(r, field) : NULL;
	if (!json_is_object(m))
		return;
	list = json_array();
	json_object_foreach(m, k, v) {
		json_t *e = json_is_object(v) ? json_deep_copy(v) :
			    json_pack("{s:O}", pred, v);

		json_object_set_new(e, key, json_string(k));
		json_array_append_new(list, e);
	}
	json_object_set_new(r, field, list);
}

static int req_check(struct tl *t, const json_t *r, const char *cls)
{
	const json_t *v = json_object_get(r, "timelimit");

	if (strcmp(cls, "ToolTimeLimit") == 0 && !json_is_string(v) &&
	    !(json_is_integer(v) && json_integer_value(v) >= 0))
		return bad(t, r, "ToolTimeLimit 'timelimit' must be a "
			   "non-negative int or an expression%s", NULL);
	if (strcmp(cls, "ResourceRequirement") == 0 && !cwl__load_v12(t)) {
		const char *k;

		/* Fractional resources came with v1.2; before, they are
		 * longs, as the reference runner checks. */
		json_object_foreach((json_t *)r, k, v)
			if (json_is_real(v) && json_real_value(v) !=
			    (double)(json_int_t)json_real_value(v))
				return bad(t, r, "ResourceRequirement '%s' must"
					   " be a whole number before cwlVersion"
					   " v1.2", k);
	}
	return 0;
}

static int req_add(struct tl *t, json_t *map, const json_t *r,
		   const char *cls, int hint)
{
	const char *s = class_short(cls);
	json_t *copy;

	if (!is_known(s)) {
		if (hint)
			return 0;
		bad(t, r, "requirement '%s' is not supported by this runner",
		    cls);
		t->status = CWL_UNSUPPORTED;
		return -1;
	}
	if (!hint && strcmp(s, "DockerRequirement") == 0) {
		bad(t, r, "DockerRequirement: this runner has no container "
		    "runtime%s", NULL);
		t->status = CWL_UNSUPPORTED;
		return -1;
	}
	if (!hint && req_check(t, r, s) < 0)
		return -1;
	copy = json_is_object(r) ? json_deep_copy(r) : json_object();
	cwl_where_copy(copy, r);
	json_object_set_new(copy, "class", json_string(s));
	req_map_forms(copy, s);
	return json_object_set_new(map, s, copy);
}

static json_t *reqs(struct tl *t, const json_t *v, int hint)
{
	json_t *map = json_object();
	const json_t *r;
	const char *k;
	size_t i;

	if (!v || json_is_null(v))
		return map;
	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, k, r)
			if (req_add(t, map, r, k, hint) < 0)
				goto fail;
		return map;
	}
	if (!json_is_array(v)) {
		bad(t, t->proc, "'%s' must be a list or a map", hint ? "hints" :
		    "requirements");
		goto fail;
	}
	json_array_foreach(v, i, r) {
		const char *cls = json_string_value(json_object_get(r, "class"));

		if (!cls && hint)
			continue;
		if (!cls) {
			bad(t, json_is_object(r) ? r : v, "a requirement needs "
			    "a 'class'%s", NULL);
			goto fail;
		}
		if (req_add(t, map, r, cls, hint) < 0)
			goto fail;
	}
	return map;
fail:
	json_decref(map);
	return NULL;
}

/* Named types from SchemaDefRequirement, including named records and
 * enums nested inside them, by short name. */
static void defs_collect(json_t *defs, const json_t *t)
{
	const char *name = json_string_value(json_object_get(t, "name"));
	const char *kind = json_string_value(json_object_get(t, "type"));
	const char *k;
	const json_t *v;
	size_t i;

	if (json_is_object(t) && name && kind &&
	    (strcmp(kind, "record") == 0 || strcmp(kind, "enum") == 0) &&
	    !json_object_get(defs, cwl_short_name(name)))
		json_object_set(defs, cwl_short_name(name), (json_t *)t);
	if (json_is_object(t)) {
		json_object_foreach((json_t *)t, k, v)
			defs_collect(defs, v);
	} else if (json_is_array(t)) {
		json_array_foreach(t, i, v)
			defs_collect(defs, v);
	}
}

/* SchemaDefRequirement's own types are given in canonical form too. */
static int schema_defs_norm(struct tl *t, json_t *req)
{
	const json_t *types = json_object_get(req, "types"), *x;
	json_t *out, *n;
	size_t i;

	if (!req)
		return 0;
	if (!json_is_array(types))
		return bad(t, req, "SchemaDefRequirement needs a list of "
			   "'types'%s", NULL);
	out = json_array();
	json_array_foreach(types, i, x) {
		n = cwl_type_norm(x, t->defs, t->ns, 0, types, t->err,
				  t->errlen);
		if (!n) {
			json_decref(out);
			t->status = CWL_PERMANENT_FAIL;
			return -1;
		}
		json_array_append_new(out, n);
	}
	json_object_set_new(req, "types", out);
	return 0;
}

static int requirements(struct tl *t)
{
	json_t *r = reqs(t, json_object_get(t->proc, "requirements"), 0);
	json_t *h = r ? reqs(t, json_object_get(t->proc, "hints"), 1) : NULL;
	const char *k;
	json_t *v;
	void *tmp;

	if (!h) {
		json_decref(r);
		return -1;
	}
	json_object_foreach_safe(h, tmp, k, v)
		if (json_object_get(r, k))
			json_object_del(h, k);
	json_object_set_new(t->out, "requirements", r);
	json_object_set_new(t->out, "hints", h);
	defs_collect(t->defs, json_object_get(json_object_get(
		r, "SchemaDefRequirement"), "types"));
	defs_collect(t->defs, json_object_get(json_object_get(
		h, "SchemaDefRequirement"), "types"));
	return schema_defs_norm(t, json_object_get(r, "SchemaDefRequirement"));
}

/* --------------------------------------------------------- parameters */

/* In map form `x: {type: ...}` is the parameter itself, unless the map
 * is a type definition (`x: {type: array, items: ...}`); anything else is
 * the parameter's type. */
static json_t *param_from_map(const char *id, const json_t *v)
{
	const char *kind = json_string_value(json_object_get(v, "type"));
	json_t *p;

	if (json_is_object(v) && !(kind && (json_object_get(v, "items") ||
					    json_object_get(v, "fields") ||
					    json_object_get(v, "symbols"))))
		p = json_deep_copy(v);
	else
		p = json_pack("{s:O}", "type", v);
	cwl_where_copy(p, v);
	json_object_set_new(p, "id", json_string(id));
	return p;
}

/* A stable name for captured stdout or stderr when the tool gives none:
 * the hex sha1 of the tool's URI and the stream. */
static json_t *stream_name(struct tl *t, const char *stream)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int len = 0, i;
	char hex[2 * EVP_MAX_MD_SIZE + 1], *in;

	if (asprintf(&in, "%s %s", t->uri, stream) < 0)
		return NULL;
	EVP_Digest(in, strlen(in), md, &len, EVP_sha1(), NULL);
	free(in);
	for (i = 0; i < len; i++)
		sprintf(hex + 2 * i, "%02x", md[i]);
	return json_string(hex);
}

/* Output type stdout/stderr: a File globbed from the captured stream;
 * input type stdin: a File whose path becomes the tool's stdin. */
static int stream_param(struct tl *t, json_t *p, int output)
{
	const char *type = json_string_value(json_object_get(p, "type"));
	const char *id = json_string_value(json_object_get(p, "id"));
	json_t *name;

	if (!type)
		return 0;
	if (!output && strcmp(type, "stdin") == 0) {
		json_object_set_new(p, "type", json_string("File"));
		if (!json_object_get(t->out, "stdin"))
			json_object_set_new(t->out, "stdin", json_sprintf(
				"$(inputs.%s.path)", id));
		return 0;
	}
	if (!output || (strcmp(type, "stdout") != 0 &&
			strcmp(type, "stderr") != 0))
		return 0;
	name = json_object_get(t->out, type);
	if (!name) {
		name = stream_name(t, type);
		json_object_set_new(t->out, type, name);
	}
	json_object_set_new(p, "type", json_string("File"));
	json_object_set_new(p, "outputBinding", json_pack("{s:O}", "glob",
							  name));
	return 0;
}

static int param_one(struct tl *t, json_t *p, int output, json_t *list)
{
	const char *id = json_string_value(json_object_get(p, "id"));
	const json_t *q, *ib = json_object_get(p, "inputBinding");
	size_t i;

	if (!id)
		return bad(t, p, "a parameter needs an 'id'%s", NULL);
	if (!json_object_get(p, "type"))
		return bad(t, p, "parameter '%s' needs a 'type'", id);
	if (ib && !json_is_object(ib))
		return bad(t, p, "parameter '%s': inputBinding must be a map",
			   id);
	if (stream_param(t, p, output) < 0 ||
	    cwl_param_norm(p, t->defs, t->ns, output, t->err, t->errlen) < 0) {
		t->status = CWL_PERMANENT_FAIL;
		return -1;
	}
	id = json_string_value(json_object_get(p, "id"));
	json_array_foreach(list, i, q)
		if (strcmp(json_string_value(json_object_get(q, "id")), id) ==
		    0)
			return bad(t, p, "parameter '%s' is defined twice", id);
	return 0;
}

static json_t *params(struct tl *t, const char *key, int output)
{
	const json_t *v = json_object_get(t->proc, key), *x;
	json_t *list = json_array(), *p;
	const char *k;
	size_t i;

	if (!v) {
		bad(t, t->proc, "missing '%s'", key);
		goto fail;
	}
	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, k, x) {
			p = param_from_map(k, x);
			if (param_one(t, p, output, list) < 0) {
				json_decref(p);
				goto fail;
			}
			json_array_append_new(list, p);
		}
		return list;
	}
	if (!json_is_array(v)) {
		bad(t, t->proc, "'%s' must be a list or a map", key);
		goto fail;
	}
	json_array_foreach(v, i, x) {
		if (!json_is_object(x)) {
			bad(t, v, "each of '%s' must be a map", key);
			goto fail;
		}
		p = json_deep_copy(x);
		cwl_where_copy(p, x);
		if (param_one(t, p, output, list) < 0) {
			json_decref(p);
			goto fail;
		}
		json_array_append_new(list, p);
	}
	return list;
fail:
	json_decref(list);
	return NULL;
}

/* ------------------------------------------------- command and codes */

static int base_command(struct tl *t)
{
	const json_t *v = json_object_get(t->proc, "baseCommand"), *x;
	size_t i;

	if (!v) {
		json_object_set_new(t->out, "baseCommand", json_array());
		return 0;
	}
	if (json_is_string(v)) {
		json_object_set_new(t->out, "baseCommand", json_pack("[O]", v));
		return 0;
	}
	if (!json_is_array(v))
		return bad(t, t->proc, "baseCommand must be a string or a list "
			   "of strings%s", NULL);
	json_array_foreach(v, i, x)
		if (!json_is_string(x))
			return bad(t, v, "baseCommand must be a list of "
				   "strings%s", NULL);
	json_object_set(t->out, "baseCommand", (json_t *)v);
	return 0;
}

static int arguments(struct tl *t)
{
	const json_t *v = json_object_get(t->proc, "arguments"), *x;
	json_t *out = json_array(), *a;
	size_t i;

	json_object_set_new(t->out, "arguments", out);
	if (!v)
		return 0;
	if (!json_is_array(v))
		return bad(t, t->proc, "arguments must be a list%s", NULL);
	json_array_foreach(v, i, x) {
		if (json_is_string(x)) {
			a = json_pack("{s:O}", "valueFrom", x);
		} else if (json_is_object(x)) {
			a = json_deep_copy(x);
			cwl_where_copy(a, x);
		} else if (json_is_number(x)) {
			char *s = json_dumps(x, JSON_ENCODE_ANY);

			a = json_pack("{s:s}", "valueFrom", s ? s : "");
			free(s);
		} else {
			return bad(t, v, "each argument must be a string or a "
				   "CommandLineBinding map%s", NULL);
		}
		json_array_append_new(out, a);
	}
	return 0;
}

static int codes(struct tl *t, const char *key)
{
	const json_t *v = json_object_get(t->proc, key), *x;
	size_t i;

	if (!v)
		return 0;
	if (!json_is_array(v))
		return bad(t, t->proc, "'%s' must be a list of ints", key);
	json_array_foreach(v, i, x)
		if (!json_is_integer(x))
			return bad(t, v, "'%s' must be a list of ints", key);
	json_object_set(t->out, key, (json_t *)v);
	return 0;
}

static int streams(struct tl *t)
{
	static const char *const keys[] = {"stdin", "stdout", "stderr"};
	const json_t *v;
	int i;

	for (i = 0; i < 3; i++) {
		v = json_object_get(t->proc, keys[i]);
		if (!v)
			continue;
		if (!json_is_string(v))
			return bad(t, t->proc, "'%s' must be a string",
				   keys[i]);
		json_object_set(t->out, keys[i], (json_t *)v);
	}
	return 0;
}

/* ------------------------------------------------------------- driver */

static void tool_id(struct tl *t, const char *frag)
{
	const char *id = json_string_value(json_object_get(t->proc, "id"));
	const char *h = id ? strrchr(id, '#') : NULL;

	if (frag || id)
		json_object_set_new(t->out, "id", json_sprintf("%s#%s", t->uri,
			frag ? frag : (h ? h + 1 : cwl_short_name(id))));
	else
		json_object_set_new(t->out, "id", json_string(t->uri));
}

static void copy_meta(struct tl *t)
{
	static const char *const keys[] = {"label", "doc", "$schemas"};
	const json_t *v;
	int i;

	for (i = 0; i < 3; i++) {
		v = json_object_get(t->proc, keys[i]);
		if (!v)
			v = json_object_get(t->root, keys[i]);
		if (v)
			json_object_set(t->out, keys[i], (json_t *)v);
	}
	if (t->ns)
		json_object_set(t->out, "$namespaces", (json_t *)t->ns);
}

/* The process t->proc (picked, or embedded in a workflow) into t->out. */
static int build_proc(struct tl *t, const char *frag)
{
	const char *cls;
	json_t *in, *out;

	if (check_class(t) < 0 || check_fields(t) < 0)
		return -1;
	t->ns = json_object_get(t->proc, "$namespaces");
	if (!t->ns)
		t->ns = json_object_get(t->root, "$namespaces");
	tool_id(t, frag);
	copy_meta(t);
	cls = json_string_value(json_object_get(t->out, "class"));
	if (requirements(t) < 0)
		return -1;
	if (strcmp(cls, "CommandLineTool") != 0)
		return cwl__load_other(t);
	if (streams(t) < 0)
		return -1;
	in = params(t, "inputs", 0);
	if (!in)
		return -1;
	json_object_set_new(t->out, "inputs", in);
	out = params(t, "outputs", 1);
	if (!out)
		return -1;
	json_object_set_new(t->out, "outputs", out);
	if (base_command(t) < 0 || arguments(t) < 0 ||
	    codes(t, "successCodes") < 0 || codes(t, "temporaryFailCodes") < 0 ||
	    codes(t, "permanentFailCodes") < 0)
		return -1;
	cwl_where_copy(t->out, t->proc);
	return 0;
}

static int build(struct tl *t, const char *frag)
{
	if (pick(t, frag) < 0)
		return -1;
	return build_proc(t, frag);
}

/* The document's absolute path and the fragment after '#', if any. */
static int split_ref(struct tl *t, const char *tool, char **frag)
{
	char *file = strdup(tool), *h, *abs;

	*frag = NULL;
	if (!file)
		return -1;
	h = strrchr(file, '#');
	/* A '#' is a fragment only when the part before it is a file. */
	if (h && access(file, F_OK) != 0) {
		*h = '\0';
		*frag = strdup(h + 1);
	}
	abs = realpath(file, NULL);
	if (!abs) {
		snprintf(t->err, t->errlen, "%s: cannot open: no such file",
			 file);
		free(file);
		free(*frag);
		*frag = NULL;
		return -1;
	}
	free(file);
	t->path = abs;
	t->uri = cwl_path_to_uri(abs);
	return t->uri ? 0 : -1;
}

json_t *cwl_load_tool(const char *tool, int *status, char *err,
		      size_t errlen)
{
	return cwl__load_file(tool, 0, status, err, errlen);
}

json_t *cwl__load_file(const char *tool, int depth, int *status, char *err,
		       size_t errlen)
{
	struct tl t = {.err = err, .errlen = errlen,
		       .status = CWL_PERMANENT_FAIL, .depth = depth};
	char *frag = NULL;
	json_t *out = NULL;

	if (errlen)
		err[0] = '\0';
	t.defs = json_object();
	t.out = json_object();
	if (split_ref(&t, tool, &frag) == 0) {
		t.root = cwl_yaml_load(t.path, err, errlen);
		if (t.root && build(&t, frag && *frag ? frag : NULL) == 0) {
			out = t.out;
			t.out = NULL;
			t.status = CWL_OK;
		}
	}
	*status = t.status;
	json_decref(t.out);
	json_decref(t.defs);
	json_decref(t.root);
	free(t.path);
	free(t.uri);
	free(frag);
	return out;
}

/* ---------------------------------------------------------------- job */

static char *dir_of(const char *path)
{
	char *abs = realpath(path, NULL), *slash;

	if (!abs)
		return NULL;
	slash = strrchr(abs, '/');
	if (slash == abs)
		slash[1] = '\0';
	else
		*slash = '\0';
	return abs;
}

/* The tool's directory, from its id (a file:// URI). */
static char *tool_dir(const json_t *tool)
{
	const char *id = json_string_value(json_object_get(tool, "id"));
	char *path, *h, *slash;

	if (!id)
		return NULL;
	path = cwl_uri_to_path(id);
	if (!path)
		return NULL;
	h = strchr(path, '#');
	if (h)
		*h = '\0';
	slash = strrchr(path, '/');
	if (slash)
		*(slash == path ? slash + 1 : slash) = '\0';
	return path;
}

static json_t *job_read(const char *job, char *err, size_t errlen)
{
	char where[512];
	json_t *raw;

	if (!job)
		return json_object();
	raw = cwl_yaml_load(job, err, errlen);
	if (raw && json_is_null(raw)) {
		json_decref(raw);
		return json_object();
	}
	if (raw && !json_is_object(raw)) {
		xy_fail(err, errlen, EINVAL, "%s: a job must be a map of input "
			 "names to values", cwl_where(raw, where, sizeof where));
		json_decref(raw);
		return NULL;
	}
	return raw;
}

json_t *cwl_load_job(const json_t *tool, const char *job, const json_t *args,
		     const char *scratch, char *err, size_t errlen)
{
	json_t *raw, *filled = NULL;
	char *jdir = job ? dir_of(job) : NULL, *tdir = tool_dir(tool);

	if (errlen)
		err[0] = '\0';
	raw = job_read(job, err, errlen);
	if (raw) {
		cwl_files_resolve(raw, jdir);
		if (args)
			json_object_update(raw, (json_t *)args);
		filled = cwl_inputs_fill(tool, raw, tdir, err, errlen);
	}
	if (filled && cwl_inputs_files(tool, filled, scratch, err,
				       errlen) < 0) {
		json_decref(filled);
		filled = NULL;
	}
	json_decref(raw);
	free(jdir);
	free(tdir);
	return filled;
}

const json_t *cwl_requirement(const json_t *tool, const char *cls, int *hint)
{
	const json_t *r = json_object_get(json_object_get(tool,
							  "requirements"), cls);

	if (hint)
		*hint = 0;
	if (r)
		return r;
	r = json_object_get(json_object_get(tool, "hints"), cls);
	if (r && hint)
		*hint = 1;
	return r;
}

/* ------------------------------------------------ for wfload.c */

int cwl__load_bad(struct tl *t, const json_t *at, const char *fmt,
		  const char *arg)
{
	return bad(t, at, fmt, arg);
}

json_t *cwl__load_params(struct tl *t, const char *key, int output)
{
	return params(t, key, output);
}

json_t *cwl__load_reqs(struct tl *t, const json_t *v, int hint)
{
	return reqs(t, v, hint);
}

int cwl__load_id_matches(const json_t *p, const char *frag)
{
	return id_matches(p, frag);
}

json_t *cwl__load_embedded(struct tl *parent, const json_t *proc)
{
	struct tl t = {.err = parent->err, .errlen = parent->errlen,
		       .status = CWL_PERMANENT_FAIL, .root = parent->root,
		       .proc = proc};
	json_t *out = NULL;

	t.depth = parent->depth + 1;
	t.path = strdup(parent->path);
	t.uri = strdup(parent->uri);
	t.defs = json_deep_copy(parent->defs);
	t.out = json_object();
	if (t.path && t.uri && t.defs && build_proc(&t, NULL) == 0) {
		out = t.out;
		t.out = NULL;
		t.status = CWL_OK;
	}
	parent->status = t.status;
	json_decref(t.out);
	json_decref(t.defs);
	free(t.path);
	free(t.uri);
	return out;
}

int cwl__load_v12(const struct tl *t)
{
	const char *v = json_string_value(json_object_get(t->out,
							  "cwlVersion"));

	return !v || strncmp(v, "v1.2", 4) == 0;
}
