/*
 * scatter.c: the values that flow along a workflow's links (workflow.c):
 * a step input's or a workflow output's value from its sources, with
 * linkMerge, pickValue and default, as the reference runner gives them;
 * and scatter, which splits a step's input object into one per job
 * (dotproduct, nested_crossproduct, flat_crossproduct) and gathers their
 * outputs back into arrays of the matching shape.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cwl.h"
#include "util.h"

static json_t *pick_value(json_t *v, const char *how, const char *id,
			  char *err, size_t errlen)
{
	json_t *x, *out = NULL;
	size_t i;

	if (!strcmp(how, "all_non_null")) {
		out = json_array();
		json_array_foreach(v, i, x)
			if (!json_is_null(x))
				json_array_append(out, x);
		json_decref(v);
		return out;
	}
	json_array_foreach(v, i, x) {
		if (json_is_null(x))
			continue;
		if (out && !strcmp(how, "the_only_non_null")) {
			json_decref(v);
			json_decref(out);
			xy_fail(err, errlen, EINVAL, "pickValue the_only_non_null"
				" of '%s': more than one source is non-null", id);
			return NULL;
		}
		if (!out)
			out = json_incref(x);
		if (!strcmp(how, "first_non_null"))
			break;
	}
	json_decref(v);
	if (!out)
		xy_fail(err, errlen, EINVAL, "pickValue %s of '%s': every "
			"source is null", how, id);
	return out;
}

json_t *cwl__link_value(const json_t *state, const json_t *param,
			const char *srckey, char *err, size_t errlen)
{
	const json_t *srcs = json_object_get(param, srckey), *s, *sv;
	const char *merge = json_string_value(json_object_get(param,
							      "linkMerge"));
	const char *pick = json_string_value(json_object_get(param,
							     "pickValue"));
	const char *id = json_string_value(json_object_get(param, "id"));
	const json_t *def = json_object_get(param, "default");
	json_t *v = NULL;
	size_t i, n = json_array_size(srcs);

	if (!merge && n > 1)
		merge = "merge_nested";
	if (n && !merge) {
		sv = json_object_get(state, json_string_value(
			json_array_get(srcs, 0)));
		v = json_deep_copy(sv ? sv : json_null());
	} else if (n) {
		v = json_array();
		json_array_foreach(srcs, i, s) {
			sv = json_object_get(state, json_string_value(s));
			if (!sv)
				sv = json_null();
			if (!strcmp(merge, "merge_flattened") &&
			    json_is_array(sv)) {
				json_t *items = json_deep_copy(sv);

				json_array_extend(v, items);
				json_decref(items);
			} else
				json_array_append_new(v, json_deep_copy(sv));
		}
	}
	if (pick && json_is_array(v) &&
	    !(v = pick_value(v, pick, id ? id : "?", err, errlen)))
		return NULL;
	if ((!v || json_is_null(v)) && def) {
		json_decref(v);
		v = json_deep_copy(def);
	}
	return v ? v : json_null();
}

json_t *cwl__scatter_jobs(const json_t *io, const json_t *names,
			  const char *method, json_t **dims, char *err,
			  size_t errlen)
{
	size_t k, n = json_array_size(names), total = 1, len0 = 0;
	json_t *jobs = json_array(), *job;
	size_t idx[64] = {0};

	*dims = json_array();
	if (!method)
		method = "dotproduct";
	if (n > 64) {
		xy_fail(err, errlen, EINVAL, "scatter over more than 64 "
			"inputs");
		goto fail;
	}
	for (k = 0; k < n; k++) {
		const char *name = json_string_value(json_array_get(names, k));
		const json_t *v = json_object_get(io, name);

		if (!json_is_array(v)) {
			xy_fail(err, errlen, EINVAL, "scatter input '%s' is "
				"not an array", name);
			goto fail;
		}
		if (k && !strcmp(method, "dotproduct") &&
		    json_array_size(v) != len0) {
			xy_fail(err, errlen, EINVAL, "dotproduct scatter: "
				"'%s' has %zu items, not %zu", name,
				json_array_size(v), len0);
			goto fail;
		}
		if (!k)
			len0 = json_array_size(v);
		total *= json_array_size(v);
		json_array_append_new(*dims, json_integer(
			(json_int_t)json_array_size(v)));
	}
	if (!strcmp(method, "dotproduct"))
		total = n ? len0 : 1;
	else if (strcmp(method, "nested_crossproduct") &&
		 strcmp(method, "flat_crossproduct")) {
		xy_fail(err, errlen, EINVAL, "unknown scatterMethod '%s'",
			method);
		goto fail;
	}
	for (size_t j = 0; j < total; j++) {
		job = json_deep_copy(io);
		for (k = 0; k < n; k++) {
			const char *name = json_string_value(
				json_array_get(names, k));
			size_t at = !strcmp(method, "dotproduct") ? j : idx[k];

			json_object_set(job, name, json_array_get(
				json_object_get(io, name), at));
		}
		json_array_append_new(jobs, job);
		/* The next index, the last input varying fastest. */
		for (k = n; k-- > 0;) {
			if (++idx[k] < (size_t)json_integer_value(
				    json_array_get(*dims, k)))
				break;
			idx[k] = 0;
		}
	}
	if (strcmp(method, "nested_crossproduct") || n < 2) {
		json_decref(*dims);
		*dims = NULL;
	}
	return jobs;
fail:
	json_decref(*dims);
	*dims = NULL;
	json_decref(jobs);
	return NULL;
}

/* flat[*at ...] grouped by dims[d...]. */
static json_t *nest(const json_t *flat, const json_t *dims, size_t d,
		    size_t *at)
{
	size_t n = (size_t)json_integer_value(json_array_get(dims, d));
	json_t *out = json_array();

	for (size_t i = 0; i < n; i++) {
		if (d + 1 == json_array_size(dims))
			json_array_append(out, json_array_get(flat, (*at)++));
		else
			json_array_append_new(out, nest(flat, dims, d + 1, at));
	}
	return out;
}

json_t *cwl__scatter_gather(const json_t *flat, const json_t *dims)
{
	size_t at = 0;

	if (!dims)
		return json_deep_copy(flat);
	return nest(flat, dims, 0, &at);
}
