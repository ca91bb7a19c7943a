/*
 * wfload.c: the canonical forms of an ExpressionTool and a Workflow
 * (cwl.h), after load.c has picked the process and read its class, id
 * and requirements. A step's `run` is loaded here too, whether inline, a
 * `#id` of the same $graph document or another file, so that a workflow
 * is checked whole before anything runs.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cwl.h"
#include "load_int.h"
#include "util.h"

/* Documents nested deeper than this through steps' run are refused (a
 * document that names itself would never end). */
#define RUN_DEPTH_MAX 32

static int expression(struct tl *t)
{
	const json_t *e = json_object_get(t->proc, "expression");

	if (!json_is_string(e))
		return cwl__load_bad(t, t->proc, "an ExpressionTool needs an "
				     "'expression' string%s", NULL);
	json_object_set(t->out, "expression", (json_t *)e);
	return 0;
}

/* A list of strings (one string alone is a list of one), short or as
 * given. */
static json_t *str_list(const json_t *v, int shorten)
{
	json_t *out = json_array(), *x;
	size_t i;

	if (json_is_string(v))
		v = json_pack("[O]", v);
	else
		json_incref((json_t *)v);
	json_array_foreach(v, i, x) {
		const char *s = json_string_value(x);

		if (!s && json_is_object(x))
			s = json_string_value(json_object_get(x, "id"));
		if (s)
			json_array_append_new(out, json_string(
				shorten ? cwl_short_name(s) : s));
	}
	json_decref((json_t *)v);
	return out;
}

/* A step's `in`, list or map form, as [{id, source: [..], ...}]. */
static json_t *step_in(struct tl *t, const json_t *v)
{
	json_t *out = json_array(), *p, *x;
	const char *k;
	size_t i;

	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, k, x) {
			if (json_is_object(x))
				p = json_deep_copy(x);
			else
				p = json_pack("{s:O}", "source", x);
			cwl_where_copy(p, json_is_object(x) ? x : v);
			json_object_set_new(p, "id", json_string(k));
			json_array_append_new(out, p);
		}
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, x) {
			if (!json_is_object(x) ||
			    !json_is_string(json_object_get(x, "id"))) {
				json_decref(out);
				cwl__load_bad(t, v, "each of a step's 'in' needs"
					      " an 'id'%s", NULL);
				return NULL;
			}
			p = json_deep_copy(x);
			cwl_where_copy(p, x);
			json_array_append_new(out, p);
		}
	} else if (v && !json_is_null(v)) {
		json_decref(out);
		cwl__load_bad(t, t->proc, "a step's 'in' must be a list or a "
			      "map%s", NULL);
		return NULL;
	}
	json_array_foreach(out, i, p) {
		const json_t *src = json_object_get(p, "source");

		json_object_set_new(p, "id", json_string(cwl_short_name(
			json_string_value(json_object_get(p, "id")))));
		json_object_set_new(p, "source", src ? str_list(src, 0) :
				    json_array());
	}
	return out;
}

/* The directory of the document, for relative references. */
static void doc_dir(const struct tl *t, char *dir, size_t len)
{
	const char *slash = strrchr(t->path, '/');

	snprintf(dir, len, "%.*s", slash ? (int)(slash - t->path) : 0,
		 t->path);
}

/* A step's run: an inline process, "#id" in this $graph, or a file
 * (relative to this document), perhaps with #id. */
static json_t *step_run(struct tl *t, const json_t *step)
{
	const json_t *run = json_object_get(step, "run"), *p;
	const json_t *graph = json_object_get(t->root, "$graph");
	const char *ref = json_string_value(run);
	char dir[PATH_MAX], path[2 * PATH_MAX], *file;
	size_t i;
	json_t *out;

	if (t->depth >= RUN_DEPTH_MAX) {
		cwl__load_bad(t, step, "steps' run nest more than 32 "
			      "documents deep%s", NULL);
		return NULL;
	}
	if (json_is_object(run))
		return cwl__load_embedded(t, run);
	if (!ref) {
		cwl__load_bad(t, step, "a step needs a 'run'%s", NULL);
		return NULL;
	}
	if (ref[0] == '#' || (strncmp(ref, t->uri, strlen(t->uri)) == 0 &&
			      ref[strlen(t->uri)] == '#')) {
		const char *frag = strchr(ref, '#') + 1;

		json_array_foreach(graph, i, p)
			if (cwl__load_id_matches(p, frag))
				return cwl__load_embedded(t, p);
		cwl__load_bad(t, step, "run '%s' names no process of the "
			      "document", ref);
		return NULL;
	}
	if (strncmp(ref, "file://", 7) == 0) {
		file = cwl_uri_to_path(ref);
		snprintf(path, sizeof path, "%s", file ? file : ref);
		free(file);
	} else {
		file = cwl_percent_decode(ref);
		doc_dir(t, dir, sizeof dir);
		snprintf(path, sizeof path, "%s/%s", dir, file ? file : ref);
		free(file);
	}
	out = cwl__load_file(path, t->depth + 1, &t->status, t->err,
			     t->errlen);
	return out;
}

/* Does step `name` of steps have output `out`? */
static int has_output(const json_t *steps, const char *name, const char *out)
{
	const json_t *s, *o;
	size_t i, j;

	json_array_foreach(steps, i, s) {
		if (strcmp(json_string_value(json_object_get(s, "id")), name))
			continue;
		json_array_foreach(json_object_get(s, "out"), j, o)
			if (!strcmp(json_string_value(o), out))
				return 1;
	}
	return 0;
}

static int has_input(const json_t *inputs, const char *name)
{
	const json_t *p;
	size_t i;

	json_array_foreach(inputs, i, p)
		if (!strcmp(json_string_value(json_object_get(p, "id")), name))
			return 1;
	return 0;
}

/* A source as "INPUT" or "STEP/OUTPUT": "#main/step/out", "step/out",
 * "file.cwl#step/out" and "inp" all name one of this workflow's. */
static int source_norm(struct tl *t, json_t *list, const json_t *at)
{
	const json_t *steps = json_object_get(t->out, "steps");
	const json_t *inputs = json_object_get(t->out, "inputs");
	char buf[1024], *slash, *prev;
	json_t *x;
	size_t i;

	json_array_foreach(list, i, x) {
		const char *s = json_string_value(x), *h = strrchr(s, '#');

		snprintf(buf, sizeof buf, "%s", h ? h + 1 : s);
		slash = strrchr(buf, '/');
		if (slash) {
			*slash = '\0';
			prev = strrchr(buf, '/');
			prev = prev ? prev + 1 : buf;
			if (has_output(steps, prev, slash + 1)) {
				json_array_set_new(list, i, json_sprintf(
					"%s/%s", prev, slash + 1));
				continue;
			}
			*slash = '/';
		}
		s = cwl_short_name(buf);
		if (!has_input(inputs, s))
			return cwl__load_bad(t, at, "source '%s' names no input"
					     " of the workflow and no step's "
					     "output", json_string_value(x));
		json_array_set_new(list, i, json_string(s));
	}
	return 0;
}

static const char *const step_fields[] = {
	"id", "in", "out", "run", "requirements", "hints", "label", "doc",
	"scatter", "scatterMethod", "when", NULL,
};
static const char *const step_in_fields[] = {
	"id", "source", "linkMerge", "pickValue", "loadContents",
	"loadListing", "label", "default", "valueFrom", NULL,
};

/* A field the spec does not define is refused with the one it resembles,
 * as a tool's are (load.c); namespaced fields and $ directives pass. */
static int check_keys(struct tl *t, const json_t *m, const char *const *ok,
		      const char *what)
{
	const char *key, *best_name;
	const json_t *v;
	char msg[256];

	json_object_foreach((json_t *)m, key, v) {
		size_t best = 3, d;
		const char *const *f;

		if (key[0] == '$' || strchr(key, ':'))
			continue;
		best_name = NULL;
		for (f = ok; *f; f++) {
			if ((d = xy_edit_distance(key, *f)) == 0)
				break;
			if (d < best) {
				best = d;
				best_name = *f;
			}
		}
		if (*f)
			continue;
		if (best_name)
			snprintf(msg, sizeof msg, "unknown field '%.64s' of %s "
				 "(did you mean '%s'?)", key, what, best_name);
		else
			snprintf(msg, sizeof msg, "unknown field '%.64s' of %s",
				 key, what);
		return cwl__load_bad(t, json_is_object(v) ? v : m, "%s", msg);
	}
	return 0;
}

static json_t *step_one(struct tl *t, const json_t *s, const char *id)
{
	char dir[PATH_MAX];
	json_t *st = json_object(), *in, *run, *r, *h;
	const json_t *v;
	size_t i;

	json_object_set_new(st, "id", json_string(cwl_short_name(id)));
	cwl_where_copy(st, s);
	if (!json_is_object(s)) {
		cwl__load_bad(t, t->proc, "step '%s' must be a map", id);
		goto fail;
	}
	if (check_keys(t, s, step_fields, "a workflow step") < 0 ||
	    !(in = step_in(t, json_object_get(s, "in"))))
		goto fail;
	json_array_foreach(in, i, v)
		if (check_keys(t, v, step_in_fields, "a step input") < 0) {
			json_decref(in);
			goto fail;
		}
	doc_dir(t, dir, sizeof dir);
	json_array_foreach(in, i, v)
		cwl_files_resolve(json_object_get(v, "default"), dir);
	json_object_set_new(st, "in", in);
	json_object_set_new(st, "out", str_list(json_object_get(s, "out"), 1));
	if (!(r = cwl__load_reqs(t, json_object_get(s, "requirements"), 0)))
		goto fail;
	json_object_set_new(st, "requirements", r);
	if (!(h = cwl__load_reqs(t, json_object_get(s, "hints"), 1)))
		goto fail;
	json_object_set_new(st, "hints", h);
	if ((v = json_object_get(s, "scatter")))
		json_object_set_new(st, "scatter", str_list(v, 1));
	if ((v = json_object_get(s, "scatterMethod")))
		json_object_set(st, "scatterMethod", (json_t *)v);
	if ((v = json_object_get(s, "when"))) {
		if (!cwl__load_v12(t)) {
			cwl__load_bad(t, s, "a step's 'when' needs cwlVersion "
				      "v1.2%s", NULL);
			goto fail;
		}
		json_object_set(st, "when", (json_t *)v);
	}
	if (!(run = step_run(t, s)))
		goto fail;
	json_object_set_new(st, "run", run);
	return st;
fail:
	if (t->status == CWL_OK)
		t->status = CWL_PERMANENT_FAIL;
	json_decref(st);
	return NULL;
}

static int steps(struct tl *t)
{
	const json_t *v = json_object_get(t->proc, "steps"), *s;
	json_t *list = json_array(), *st;
	const char *k;
	size_t i;

	json_object_set_new(t->out, "steps", list);
	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, k, s) {
			if (!(st = step_one(t, s, k)))
				return -1;
			json_array_append_new(list, st);
		}
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, s) {
			const char *id = json_string_value(json_object_get(s,
									   "id"));
			if (!id)
				return cwl__load_bad(t, s, "a step needs an "
						     "'id'%s", NULL);
			if (!(st = step_one(t, s, id)))
				return -1;
			json_array_append_new(list, st);
		}
	} else {
		return cwl__load_bad(t, t->proc, "a Workflow needs 'steps', a"
				     " list or a map%s", NULL);
	}
	return 0;
}

/* Sources, outputSources and scatter names checked and normalized once
 * every step is known. */
static int links(struct tl *t)
{
	const json_t *s, *p, *x;
	size_t i, j, k;

	json_array_foreach(json_object_get(t->out, "steps"), i, s) {
		json_array_foreach(json_object_get(s, "in"), j, p)
			if (source_norm(t, json_object_get(p, "source"), s) < 0)
				return -1;
		json_array_foreach(json_object_get(s, "scatter"), j, x) {
			json_array_foreach(json_object_get(s, "in"), k, p)
				if (!strcmp(json_string_value(json_object_get(
					p, "id")), json_string_value(x)))
					break;
			if (k == json_array_size(json_object_get(s, "in")))
				return cwl__load_bad(t, s, "scatter names '%s',"
						     " not an input of the "
						     "step", json_string_value(x));
		}
	}
	json_array_foreach(json_object_get(t->out, "outputs"), i, s) {
		json_t *src = json_object_get(s, "outputSource");

		src = str_list(src ? src : json_null(), 0);
		json_object_set_new((json_t *)s, "outputSource", src);
		if (source_norm(t, src, s) < 0)
			return -1;
	}
	return 0;
}

int cwl__load_other(struct tl *t)
{
	const char *cls = json_string_value(json_object_get(t->out, "class"));
	json_t *in = cwl__load_params(t, "inputs", 0), *out;

	if (!in)
		return -1;
	json_object_set_new(t->out, "inputs", in);
	if (!(out = cwl__load_params(t, "outputs", 1)))
		return -1;
	json_object_set_new(t->out, "outputs", out);
	if (strcmp(cls, "ExpressionTool") == 0)
		return expression(t);
	if (steps(t) < 0 || links(t) < 0)
		return -1;
	cwl_where_copy(t->out, t->proc);
	return 0;
}
