/*
 * exprtool.c: runs an ExpressionTool on the submitting side (workflow.c
 * calls it as a step, `xylem cwl` as a whole process): its expression is
 * evaluated with the tool's JavaScript (or Xylem's inline Python) on the
 * checked input object, and the object it gives is the output object,
 * Files in it completed and checked against the output types.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cwl.h"
#include "util.h"

json_t *cwl__exprtool_run(const json_t *tool, const json_t *inputs,
			  const char *scratch, char *err, size_t errlen)
{
	const char *ex = json_string_value(json_object_get(tool,
							   "expression"));
	struct cwl_runtime rt;
	struct cwl_expr *x;
	json_t *runtime = NULL, *v = NULL, *out = NULL, *fake = NULL;
	const json_t *p;
	size_t i;

	if (cwl_resources(tool, inputs, &rt, err, errlen) < 0)
		return NULL;
	runtime = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I}", "outdir",
			    scratch, "tmpdir", scratch, "cores",
			    (json_int_t)rt.cores, "ram", (json_int_t)rt.ram,
			    "outdirSize", (json_int_t)rt.outdir_size,
			    "tmpdirSize", (json_int_t)rt.tmpdir_size);
	if (!(x = cwl_expr_new(tool, err, errlen)))
		goto out;
	v = cwl_expr_eval(x, ex ? ex : "", inputs, NULL, runtime, err, errlen);
	cwl_expr_free(x);
	if (!v)
		goto out;
	if (!json_is_object(v)) {
		xy_fail(err, errlen, EINVAL, "the ExpressionTool's expression "
			"gave %s, not an object", json_is_null(v) ? "null" :
			"a value that is not an object");
		goto out;
	}
	out = json_object();
	json_array_foreach(json_object_get(tool, "outputs"), i, p) {
		const char *id = json_string_value(json_object_get(p, "id"));
		json_t *o = json_object_get(v, id);

		json_object_set(out, id, o ? o : json_null());
	}
	/* The outputs are completed as inputs are: a tool whose inputs are
	 * these outputs (literals written, sizes, checksums). */
	fake = json_pack("{s:O, s:O, s:O, s:O}", "class",
			 json_object_get(tool, "class"), "id",
			 json_object_get(tool, "id"), "inputs",
			 json_object_get(tool, "outputs"), "requirements",
			 json_object_get(tool, "requirements"));
	if (cwl__inputs_files(fake, out, scratch, 1, err, errlen) < 0)
		goto fail;
	json_array_foreach(json_object_get(tool, "outputs"), i, p) {
		const char *id = json_string_value(json_object_get(p, "id"));

		const json_t *t = json_object_get(p, "type");

		/* Any takes null as an output (the reference runner's
		 * reading), though not as an input. */
		if (!(json_is_string(t) && !strcmp(json_string_value(t), "Any"))
		    && !cwl_type_match(json_object_get(p, "type"),
				    json_object_get(out, id))) {
			xy_fail(err, errlen, EINVAL, "the ExpressionTool's "
				"output '%s' does not match its type", id);
			goto fail;
		}
	}
	goto out;
fail:
	json_decref(out);
	out = NULL;
out:
	json_decref(fake);
	json_decref(v);
	json_decref(runtime);
	return out;
}
