/*
 * test_cwl_expr.c: unit tests for the CWL runner's expressions
 * (src/cwl/expr.c): JSON written as the reference runner writes it,
 * parameter references without JavaScript, escapes, interpolation, and
 * JavaScript with an expressionLib on Duktape. Tools are built by hand as
 * the loader's canonical form.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cwl.h"
#include "harness.h"

static char err[1024];

static json_t *parse(const char *text)
{
	json_error_t je;
	json_t *v = json_loads(text, JSON_DECODE_ANY, &je);
	if (!v)
		fprintf(stderr, "bad test JSON: %s\n", je.text);
	XY_CHECK(v != NULL);
	return v;
}

/* cwl_json_dumps(v) must be want. */
static void dumps_is(const char *json, const char *want)
{
	json_t *v = parse(json);
	char *s = cwl_json_dumps(v);
	if (!s || strcmp(s, want))
		fprintf(stderr, "dumps %s: got %s, want %s\n", json,
			s ? s : "(null)", want);
	XY_CHECK(s && !strcmp(s, want));
	free(s);
	json_decref(v);
}

static void t_json_dumps(void)
{
	dumps_is("{\"b\": [1, 2.5, null], \"a\": {\"y\": true, \"x\": false}}",
		 "{\"a\": {\"x\": false, \"y\": true}, \"b\": [1, 2.5, null]}");
	dumps_is("1.0", "1.0");
	dumps_is("0.0001", "0.0001");
	dumps_is("0.00001", "1e-05");
	dumps_is("1.23e-05", "1.23e-05");
	dumps_is("1e16", "1e+16");
	dumps_is("1234567890123456.0", "1234567890123456.0");
	dumps_is("4.2", "4.2");
	dumps_is("-0.0", "-0.0");
	dumps_is("1.5e300", "1.5e+300");
	dumps_is("0.1", "0.1");
	dumps_is("\"caf\\u00e9 \\ud83d\\ude00 \\\"q\\\" \\\\ \\n\\u0001\"",
		 "\"caf\\u00e9 \\ud83d\\ude00 \\\"q\\\" \\\\ \\n\\u0001\"");
	dumps_is("[]", "[]");
	dumps_is("{}", "{}");
}

/* eval(text) with x must give the JSON want (compared as values). */
static void eval_is(struct cwl_expr *x, const char *text, const json_t *inputs,
		    const json_t *self, const char *want)
{
	json_t *rt = parse("{\"outdir\": \"/out\", \"cores\": 2}");
	json_t *v = cwl_expr_eval(x, text, inputs, self, rt, err, sizeof err);
	json_t *w = parse(want);
	if (!v || !json_equal(v, w)) {
		char *got = v ? cwl_json_dumps(v) : NULL;
		fprintf(stderr, "eval %s: got %s (%s), want %s\n", text,
			got ? got : "NULL", err, want);
		free(got);
	}
	XY_CHECK(v && json_equal(v, w));
	json_decref(v);
	json_decref(w);
	json_decref(rt);
}

static void eval_fails(struct cwl_expr *x, const char *text,
		       const json_t *inputs, const char *needle)
{
	err[0] = 0;
	json_t *v = cwl_expr_eval(x, text, inputs, NULL, NULL, err, sizeof err);
	if (v || !strstr(err, needle))
		fprintf(stderr, "eval %s: want failure with '%s', got '%s'\n",
			text, needle, err);
	XY_CHECK(v == NULL && strstr(err, needle));
}

static const char *inputs_json =
	"{\"a\": {\"b\": \"B\", \"it's\": 1}, \"n\": 3, \"f\": 2.5,"
	" \"list\": [10, 20, 30], \"none\": null, \"rec\": {\"length\": 7},"
	" \"file\": {\"class\": \"File\", \"path\": \"/d/x.txt\"}}";

static void t_param_refs(void)
{
	json_t *tool = parse("{\"class\": \"CommandLineTool\", \"cwlVersion\":"
			     " \"v1.2\", \"inputs\": [], \"outputs\": []}");
	json_t *in = parse(inputs_json);
	json_t *self = parse("[{\"v\": 1}]");
	struct cwl_expr *x = cwl_expr_new(tool, err, sizeof err);
	XY_CHECK(x != NULL);
	eval_is(x, "$(inputs.a.b)", in, NULL, "\"B\"");
	eval_is(x, "$(inputs['a'][\"b\"])", in, NULL, "\"B\"");
	eval_is(x, "$(inputs.a['it\\'s'])", in, NULL, "1");
	eval_is(x, "$(inputs.list[1])", in, NULL, "20");
	eval_is(x, "$(inputs.list.length)", in, NULL, "3");
	eval_is(x, "$(inputs.rec.length)", in, NULL, "7");
	eval_is(x, "$(inputs.a)", in, NULL, "{\"b\": \"B\", \"it's\": 1}");
	eval_is(x, "$(self[0].v)", in, self, "1");
	eval_is(x, "$(runtime.outdir)", in, NULL, "\"/out\"");
	eval_is(x, "$(null)", in, NULL, "null");
	eval_is(x, "  $(inputs.n)\n", in, NULL, "3");
	eval_is(x, "n=$(inputs.n) f=$(inputs.f) x=$(inputs.none)", in, NULL,
		"\"n=3 f=2.5 x=null\"");
	eval_is(x, "$(inputs.a)!", in, NULL,
		"\"{\\\"b\\\": \\\"B\\\", \\\"it's\\\": 1}!\"");
	eval_is(x, "$(inputs.file.path)/$(inputs.n)", in, NULL,
		"\"/d/x.txt/3\"");
	eval_is(x, "plain text", in, NULL, "\"plain text\"");
	eval_is(x, "$ and $x and (y)", in, NULL, "\"$ and $x and (y)\"");
	eval_fails(x, "$(inputs.missing)", in, "missing");
	eval_fails(x, "$(inputs.n.length)", in, "length");
	eval_fails(x, "$(1 + 2)", in, "InlineJavascriptRequirement");
	eval_fails(x, "$(inputs.n", in, "unfinished");
	cwl_expr_free(x);
	json_decref(self);
	json_decref(in);
	json_decref(tool);
	xy_test_check_no_leaks();
}

static void t_escapes(void)
{
	json_t *tool = parse("{\"cwlVersion\": \"v1.2\"}");
	json_t *old = parse("{\"cwlVersion\": \"v1.0\"}");
	json_t *in = parse(inputs_json);
	struct cwl_expr *x = cwl_expr_new(tool, err, sizeof err);
	struct cwl_expr *o = cwl_expr_new(old, err, sizeof err);
	XY_CHECK(x && o);
	eval_is(x, "\\$(inputs.n) is $(inputs.n)", in, NULL,
		"\"$(inputs.n) is 3\"");
	eval_is(x, "a\\\\b $(inputs.n)", in, NULL, "\"a\\\\b 3\"");
	eval_is(x, "a\\qb $(inputs.n)", in, NULL, "\"a\\\\qb 3\"");
	eval_is(o, "a\\qb $(inputs.n)", in, NULL, "\"aqb 3\"");
	XY_CHECK(cwl_expr_has("x $(y)"));
	XY_CHECK(cwl_expr_has("${return 1;}"));
	XY_CHECK(!cwl_expr_has("x \\$(y)"));
	XY_CHECK(!cwl_expr_has("no dollars $ here"));
	cwl_expr_free(x);
	cwl_expr_free(o);
	json_decref(in);
	json_decref(old);
	json_decref(tool);
}

static void t_keep_space(void)
{
	json_t *in = parse(inputs_json);
	json_t *v = cwl_expr_eval_keep_space(NULL, "$(inputs.a)\n", in, NULL,
					     NULL, err, sizeof err);
	XY_CHECK(v && !strcmp(json_string_value(v),
			      "{\"b\": \"B\", \"it's\": 1}\n"));
	json_decref(v);
	v = cwl_expr_eval(NULL, "$(inputs.a)\n", in, NULL, NULL, err,
			  sizeof err);
	XY_CHECK(json_is_object(v));
	json_decref(v);
	json_t *n = json_integer(5);
	v = cwl_expr_eval_value(NULL, n, in, NULL, NULL, err, sizeof err);
	XY_CHECK(v == n);
	json_decref(v);
	json_decref(n);
	json_decref(in);
}

static void t_javascript(void)
{
	json_t *tool = parse(
		"{\"cwlVersion\": \"v1.2\", \"requirements\": "
		"{\"InlineJavascriptRequirement\": {\"class\": "
		"\"InlineJavascriptRequirement\", \"expressionLib\": "
		"[\"function twice(v) { return v * 2; }\", "
		"\"var greeting = 'hi';\"]}}}");
	json_t *in = parse(inputs_json);
	struct cwl_expr *x = cwl_expr_new(tool, err, sizeof err);
	if (!x)
		fprintf(stderr, "cwl_expr_new: %s\n", err);
	XY_CHECK(x != NULL);
	eval_is(x, "$(1 + 2)", in, NULL, "3");
	eval_is(x, "$(twice(inputs.n))", in, NULL, "6");
	eval_is(x, "${ return greeting + ' ' + inputs.a.b; }", in, NULL,
		"\"hi B\"");
	eval_is(x, "$(inputs.list.map(function(v) { return v / 4; }))", in,
		NULL, "[2.5, 5, 7.5]");
	eval_is(x, "$(')' + \"(\")", in, NULL, "\")(\"");
	eval_is(x, "${ return; }", in, NULL, "null");
	eval_is(x, "v=$({'k': [1, 'x']})", in, NULL,
		"\"v={\\\"k\\\": [1, \\\"x\\\"]}\"");
	eval_is(x, "$(inputs.n.length)", in, NULL, "null");
	eval_is(x, "$(runtime.cores * 2)", in, NULL, "4");
	eval_is(x, "$(1e21)", in, NULL, "1e21");
	eval_is(x, "$(\"caf\\u00e9\")", in, NULL, "\"caf\\u00e9\"");
	eval_fails(x, "${ throw new Error('boom'); }", in, "boom");
	eval_fails(x, "$(undefined_name)", in, "undefined_name");
	eval_fails(x, "$(1 +)", in, "failed");
	/* Strict mode, as the reference runner uses. */
	eval_fails(x, "${ leaked = 1; return leaked; }", in, "leaked");
	cwl_expr_free(x);
	json_decref(in);
	json_decref(tool);
	xy_test_check_no_leaks();
}

static void t_bad_lib(void)
{
	json_t *tool = parse(
		"{\"requirements\": {\"InlineJavascriptRequirement\": "
		"{\"expressionLib\": [\"function (\"]}}}");
	XY_CHECK(cwl_expr_new(tool, err, sizeof err) == NULL);
	XY_CHECK(strstr(err, "expressionLib") != NULL);
	json_decref(tool);
	cwl_expr_free(NULL);
}

int main(int argc, char **argv)
{
	static const struct xy_test tests[] = {
		XY_TEST(t_json_dumps),
		XY_TEST(t_param_refs),
		XY_TEST(t_escapes),
		XY_TEST(t_keep_space),
		XY_TEST(t_javascript),
		XY_TEST(t_bad_lib),
		{0},
	};
	return xy_test_main(argc, argv, tests);
}
