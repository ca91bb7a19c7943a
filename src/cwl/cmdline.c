/*
 * cmdline.c: a CommandLineTool's command line (cwl.h), built from
 * baseCommand, arguments and the inputs' bindings. Pairs with exec.c,
 * which runs it.
 *
 * The walk over the inputs follows the reference runner's, because the
 * order of arguments with equal positions is decided by the sort keys it
 * makes: every binding gets a key, a list of ints and names (an input's
 * position, then its name; an array item's index before its array's
 * key; a record's key before its fields'), and the bindings are sorted
 * stably by comparing keys element by element, a name against a number
 * as text.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cwl.h"
#include "util.h"

struct binder {
	struct cwl_expr *x;
	const json_t *inputs;
	const json_t *runtime;
	char *err;
	size_t errlen;
};

/* Schema keys that an array or a type carries down to its items. */
static const char *const carried[] = {"secondaryFiles", "format",
				      "streamable", "loadContents"};

static int match_named(const char *t, const json_t *v)
{
	if (!strcmp(t, "null"))
		return json_is_null(v);
	if (!strcmp(t, "Any"))
		return !json_is_null(v);
	if (!strcmp(t, "boolean"))
		return json_is_boolean(v);
	if (!strcmp(t, "int") || !strcmp(t, "long"))
		return json_is_integer(v);
	if (!strcmp(t, "float") || !strcmp(t, "double"))
		return json_is_number(v);
	if (!strcmp(t, "string"))
		return json_is_string(v);
	if (!strcmp(t, "File") || !strcmp(t, "Directory"))
		return cwl_is_class(v, t);
	return 0;
}

int cwl_type_match(const json_t *type, const json_t *v)
{
	size_t i;
	json_t *item;
	if (!v)
		v = json_null();
	if (json_is_string(type))
		return match_named(json_string_value(type), v);
	if (json_is_array(type)) {
		json_array_foreach(type, i, item)
			if (cwl_type_match(item, v))
				return 1;
		return 0;
	}
	const json_t *t = json_object_get(type, "type");
	const char *tn = json_string_value(t);
	if (!tn)
		return t && cwl_type_match(t, v);
	if (!strcmp(tn, "array")) {
		if (!json_is_array(v))
			return 0;
		json_array_foreach(v, i, item)
			if (!cwl_type_match(json_object_get(type, "items"), item))
				return 0;
		return 1;
	}
	if (!strcmp(tn, "record")) {
		if (!json_is_object(v) || cwl_is_class(v, "File") ||
		    cwl_is_class(v, "Directory"))
			return 0;
		json_array_foreach(json_object_get(type, "fields"), i, item) {
			const char *name =
				json_string_value(json_object_get(item, "name"));
			if (!name || !cwl_type_match(json_object_get(item, "type"),
						     json_object_get(v, name)))
				return 0;
		}
		return 1;
	}
	if (!strcmp(tn, "enum")) {
		json_array_foreach(json_object_get(type, "symbols"), i, item)
			if (json_is_string(v) && json_equal(item, v))
				return 1;
		return 0;
	}
	return match_named(tn, v);
}

/* ----------------------------------------------------------- binding */

/* The binding object for inputBinding ib on datum: a copy with its sort
 * key ("position": lead + [position] + tail) and "datum". */
static json_t *make_binding(struct binder *b, const json_t *ib, json_t *datum,
			    const json_t *lead, const json_t *tail)
{
	json_t *bd = json_deep_copy(ib);
	json_t *key = json_deep_copy(lead);
	const json_t *pos = json_object_get(ib, "position");
	if (!bd || !key)
		goto error;
	if (json_is_string(pos)) {
		json_t *v = cwl_expr_eval(b->x, json_string_value(pos),
					  b->inputs, datum, b->runtime, b->err,
					  b->errlen);
		if (!v)
			goto error;
		if (!json_is_integer(v)) {
			json_decref(v);
			xy_fail(b->err, b->errlen, EINVAL,
				"position %s must give an int",
				json_string_value(pos));
			goto error;
		}
		json_array_append_new(key, v);
	} else if (json_is_array(pos)) {
		json_array_extend(key, (json_t *)pos);
	} else {
		json_array_append_new(key, json_integer(json_integer_value(pos)));
	}
	json_array_extend(key, (json_t *)tail);
	json_object_set_new(bd, "position", key);
	json_object_set(bd, "datum", datum ? datum : json_null());
	return bd;
error:
	json_decref(bd);
	json_decref(key);
	return NULL;
}

/* Drops the bindings appended after `start`. */
static void truncate_to(json_t *out, size_t start)
{
	while (json_array_size(out) > start)
		json_array_remove(out, json_array_size(out) - 1);
}

static void carry(json_t *to, const json_t *from)
{
	for (size_t i = 0; i < sizeof carried / sizeof *carried; i++) {
		json_t *v = json_object_get(from, carried[i]);
		if (v)
			json_object_set(to, carried[i], v);
	}
}

static int bind_input(struct binder *b, const json_t *schema, json_t *datum,
		      const json_t *lead, const json_t *tail, json_t *out);

static int bind_union(struct binder *b, const json_t *schema, json_t *datum,
		      const json_t *lead, const json_t *tail, json_t *out,
		      int vfe)
{
	size_t i, start = json_array_size(out);
	json_t *t;
	json_array_foreach(json_object_get(schema, "type"), i, t) {
		if (!cwl_type_match(t, datum))
			continue;
		json_t *s2 = json_copy((json_t *)schema);
		if (!s2)
			return xy_fail(b->err, b->errlen, ENOMEM, "no memory");
		json_object_set(s2, "type", t);
		int rc = bind_input(b, s2, datum, lead, tail, out);
		json_decref(s2);
		/* With valueFrom the binding's own datum is the whole value,
		 * so what lies under it does not reach the command line. */
		if (vfe)
			truncate_to(out, start);
		return rc;
	}
	return xy_fail(b->err, b->errlen, EINVAL,
		       "a value does not match any type of its union");
}

/* A type given as an object ({"type": "array"...}): bound as its own
 * schema, with an array's items bound one by one unless they are joined
 * with itemSeparator. */
static int bind_typedef(struct binder *b, const json_t *schema, json_t *datum,
			const json_t *lead, const json_t *tail, json_t *out,
			const json_t *binding)
{
	size_t start = json_array_size(out);
	json_t *st = json_deep_copy(json_object_get(schema, "type"));
	if (!st)
		return xy_fail(b->err, b->errlen, ENOMEM, "no memory");
	const char *tn = json_string_value(json_object_get(st, "type"));
	if (binding && !json_object_get(st, "inputBinding") && tn &&
	    !strcmp(tn, "array") && !json_object_get(binding, "itemSeparator"))
		json_object_set_new(st, "inputBinding", json_object());
	carry(st, schema);
	int rc = bind_input(b, st, datum, lead, tail, out);
	json_decref(st);
	if (binding && json_object_get(binding, "valueFrom"))
		truncate_to(out, start);
	return rc;
}

static int bind_record(struct binder *b, const json_t *schema, json_t *datum,
		       const json_t *lead, json_t *out)
{
	size_t i;
	json_t *f;
	json_array_foreach(json_object_get(schema, "fields"), i, f) {
		json_t *name = json_object_get(f, "name");
		if (!name)
			name = json_object_get(f, "id");
		json_t *v = json_object_get(datum, json_string_value(name));
		if (!v || json_is_null(v))
			continue;
		json_t *tail = json_pack("[O]", name);
		int rc = tail ? bind_input(b, f, v, lead, tail, out) : -1;
		json_decref(tail);
		if (rc)
			return rc;
	}
	return 0;
}

/* Each item is bound with a copy of the array's binding, keyed by its
 * index in front. */
static int bind_array(struct binder *b, const json_t *schema, json_t *datum,
		      const json_t *tail, json_t *out, const json_t *binding)
{
	size_t n;
	json_t *item;
	json_array_foreach(datum, n, item) {
		json_t *is = json_pack("{sO}", "type",
				       json_object_get(schema, "items"));
		json_t *lead = json_pack("[I]", (json_int_t)n);
		if (is && binding) {
			json_t *b2 = json_deep_copy(binding);
			json_object_set(b2, "datum", item);
			json_object_set_new(is, "inputBinding", b2);
		}
		if (is)
			carry(is, schema);
		int rc = is && lead ? bind_input(b, is, item, lead, tail, out)
				    : -1;
		json_decref(is);
		json_decref(lead);
		if (rc)
			return rc;
	}
	return 0;
}

/* Any takes the shape of its value: a File, a Directory, an array of
 * Any; an object's fields have no bindings. */
static int bind_named(struct binder *b, const json_t *schema, json_t *datum,
		      const json_t *lead, const json_t *tail, json_t *out,
		      json_t **binding)
{
	const char *tn = json_string_value(json_object_get(schema, "type"));
	if (!tn)
		return 0;
	if (!strcmp(tn, "Any") && json_is_array(datum)) {
		json_t *s2 = json_copy((json_t *)schema);
		json_object_set_new(s2, "type", json_string("array"));
		json_object_set_new(s2, "items", json_string("Any"));
		int rc = bind_named(b, s2, datum, lead, tail, out, binding);
		json_decref(s2);
		return rc;
	}
	if (!strcmp(tn, "record") && json_is_object(datum))
		return bind_record(b, schema, datum, lead, out);
	if (!strcmp(tn, "array") && json_is_array(datum)) {
		int rc = bind_array(b, schema, datum, tail, out, *binding);
		json_decref(*binding);
		*binding = NULL; /* the items stand for the array */
		return rc;
	}
	return 0;
}

/* Appends to out the bindings of datum under schema (a parameter, a
 * field, a type), as the reference runner's bind_input does. */
static int bind_input(struct binder *b, const json_t *schema, json_t *datum,
		      const json_t *lead, const json_t *tail, json_t *out)
{
	size_t start = json_array_size(out), i;
	json_t *binding = NULL, *bi;
	const json_t *ib = json_object_get(schema, "inputBinding");
	const json_t *type = json_object_get(schema, "type");
	int rc;
	if (json_is_object(ib) &&
	    !(binding = make_binding(b, ib, datum, lead, tail)))
		return -1;
	if (json_is_array(type)) {
		int vfe = binding && json_object_get(binding, "valueFrom");
		rc = bind_union(b, schema, datum, lead, tail, out, vfe);
		if (rc || !vfe) {
			json_decref(binding);
			return rc;
		}
	} else if (json_is_object(type)) {
		rc = bind_typedef(b, schema, datum, lead, tail, out, binding);
	} else {
		rc = bind_named(b, schema, datum, lead, tail, out, &binding);
	}
	if (rc == 0 && binding) {
		json_t *key = json_object_get(binding, "position");
		for (i = start; i < json_array_size(out); i++) {
			bi = json_array_get(out, i);
			json_t *k = json_deep_copy(key);
			json_array_extend(k, json_object_get(bi, "position"));
			json_object_set_new(bi, "position", k);
		}
		json_array_append(out, binding);
	}
	json_decref(binding);
	return rc;
}

/* --------------------------------------------------------- the order */

static const char *key_text(const json_t *v, char *buf, size_t len)
{
	if (json_is_string(v))
		return json_string_value(v);
	snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
	return buf;
}

/* Python 2's order of two sort keys, as the reference runner compares
 * them: element by element, a shorter key first, a name against a
 * number as text. */
static int cmp_keys(const json_t *a, const json_t *b)
{
	size_t na = json_array_size(a), nb = json_array_size(b);
	for (size_t i = 0; i < na || i < nb; i++) {
		if (i >= na)
			return -1;
		if (i >= nb)
			return 1;
		const json_t *x = json_array_get(a, i), *y = json_array_get(b, i);
		if (json_equal((json_t *)x, (json_t *)y))
			continue;
		if (json_is_string(x) || json_is_string(y)) {
			char bx[32], by[32];
			return strcmp(key_text(x, bx, sizeof bx),
				      key_text(y, by, sizeof by)) > 0
				       ? 1
				       : -1;
		}
		return json_integer_value(x) > json_integer_value(y) ? 1 : -1;
	}
	return 0;
}

struct sorted {
	json_t *binding;
	size_t seq;
};

static int cmp_sorted(const void *pa, const void *pb)
{
	const struct sorted *a = pa, *b = pb;
	int c = cmp_keys(json_object_get(a->binding, "position"),
			 json_object_get(b->binding, "position"));
	if (c)
		return c;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

/* ------------------------------------------------------ the arguments */

/* A number as the reference runner puts a float on the command line: in
 * decimals, never with an exponent, an integral value without ".0". */
static char *float_text(double d)
{
	json_t *r = json_real(d);
	char *s = cwl_json_dumps(r), *e;
	json_decref(r);
	if (!s || !(e = strchr(s, 'e'))) {
		size_t n = s ? strlen(s) : 0;
		if (n > 2 && !strcmp(s + n - 2, ".0"))
			s[n - 2] = 0;
		return s;
	}
	int exp = atoi(e + 1), neg = s[0] == '-';
	char digits[32];
	int n = 0;
	for (const char *p = s + neg; p < e; p++)
		if (*p != '.' && n < 31)
			digits[n++] = *p;
	struct xy_buf b;
	xy_buf_init(&b);
	if (neg)
		xy_buf_put_raw(&b, "-", 1);
	if (exp < 0) {
		xy_buf_put_raw(&b, "0.", 2);
		for (int i = 1; i < -exp; i++)
			xy_buf_put_raw(&b, "0", 1);
		xy_buf_put_raw(&b, digits, n);
	} else {
		for (int i = 0; i <= exp || i < n; i++) {
			if (i == exp + 1)
				xy_buf_put_raw(&b, ".", 1);
			xy_buf_put_raw(&b, i < n ? &digits[i] : "0", 1);
		}
	}
	xy_buf_put_raw(&b, "", 1);
	free(s);
	return (char *)b.data;
}

/* One value as command-line text; NULL with err for a File without a
 * path. */
static char *to_text(struct binder *b, const json_t *v)
{
	char tmp[32];
	if (cwl_is_class(v, "File") || cwl_is_class(v, "Directory")) {
		const char *p = json_string_value(json_object_get(v, "path"));
		if (!p)
			xy_fail(b->err, b->errlen, EINVAL,
				"a File or Directory has no path");
		return p ? strdup(p) : NULL;
	}
	switch (json_typeof(v)) {
	case JSON_STRING:
		return strdup(json_string_value(v));
	case JSON_INTEGER:
		snprintf(tmp, sizeof tmp, "%" JSON_INTEGER_FORMAT,
			 json_integer_value(v));
		return strdup(tmp);
	case JSON_REAL:
		return float_text(json_real_value(v));
	case JSON_TRUE:
		return strdup("True");
	case JSON_FALSE:
		return strdup("False");
	case JSON_NULL:
		return strdup("None");
	default:
		return cwl_json_dumps(v);
	}
}

static int add_text(json_t *args, const char *prefix, char *s, int sep)
{
	if (!s)
		return -1;
	if (prefix && sep)
		json_array_append_new(args, json_string(prefix));
	if (prefix && !sep) {
		json_array_append_new(args, json_sprintf("%s%s", prefix, s));
	} else {
		json_array_append_new(args, json_string(s));
	}
	free(s);
	return 0;
}

/* The items of a list joined with itemSeparator. */
static char *join_items(struct binder *b, const json_t *list, const char *sep)
{
	struct xy_buf out;
	size_t i;
	json_t *item;
	xy_buf_init(&out);
	json_array_foreach(list, i, item) {
		char *s = to_text(b, item);
		if (!s) {
			xy_buf_free(&out);
			return NULL;
		}
		if (i)
			xy_buf_put_raw(&out, sep, strlen(sep));
		xy_buf_put_raw(&out, s, strlen(s));
		free(s);
	}
	xy_buf_put_raw(&out, "", 1);
	return (char *)out.data;
}

static int list_args(struct binder *b, const json_t *binding,
		     const json_t *value, const char *prefix, int sep,
		     json_t *args)
{
	const char *isep =
		json_string_value(json_object_get(binding, "itemSeparator"));
	size_t i, n = json_array_size(value);
	json_t *item;
	if (isep && *isep && n)
		return add_text(args, prefix, join_items(b, value, isep), sep);
	const json_t *vf = json_object_get(binding, "valueFrom");
	if (vf && (!json_is_string(vf) || json_string_length(vf))) {
		if (prefix)
			json_array_append_new(args, json_string(prefix));
		json_array_foreach(value, i, item)
			if (add_text(args, NULL, to_text(b, item), 1))
				return -1;
		return 0;
	}
	if (prefix && n)
		json_array_append_new(args, json_string(prefix));
	return 0;
}

/* The words one binding gives (the reference runner's generate_arg). */
static int binding_args(struct binder *b, const json_t *binding, json_t *args)
{
	json_t *datum = json_object_get(binding, "datum");
	const json_t *vf = json_object_get(binding, "valueFrom");
	const char *prefix =
		json_string_value(json_object_get(binding, "prefix"));
	int sep = !json_is_false(json_object_get(binding, "separate")), rc = 0;
	json_t *value = vf ? cwl_expr_eval_value(b->x, vf, b->inputs, datum,
						 b->runtime, b->err, b->errlen)
			   : json_incref(datum ? datum : json_null());
	if (!value)
		return -1;
	if (!prefix && !sep)
		rc = xy_fail(b->err, b->errlen, EINVAL,
			     "'separate' needs a prefix");
	else if (json_is_array(value))
		rc = list_args(b, binding, value, prefix, sep, args);
	else if (cwl_is_class(value, "File") || cwl_is_class(value, "Directory"))
		rc = add_text(args, prefix, to_text(b, value), sep);
	else if (json_is_object(value) || json_is_true(value)) {
		if (prefix)
			json_array_append_new(args, json_string(prefix));
	} else if (!json_is_boolean(value) && !json_is_null(value))
		rc = add_text(args, prefix, to_text(b, value), sep);
	json_decref(value);
	return rc;
}

/* A word as POSIX sh reads it back (Python's shlex.quote). */
static json_t *shell_quote(const char *s)
{
	static const char safe[] = "@%+=:,./-_";
	int plain = *s != 0;
	for (const char *p = s; *p && plain; p++)
		plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
			(*p >= '0' && *p <= '9') || strchr(safe, *p);
	if (plain)
		return json_string(s);
	struct xy_buf b;
	xy_buf_init(&b);
	xy_buf_put_raw(&b, "'", 1);
	for (const char *p = s; *p; p++) {
		if (*p == '\'')
			xy_buf_put_raw(&b, "'\"'\"'", 5);
		else
			xy_buf_put_raw(&b, p, 1);
	}
	xy_buf_put_raw(&b, "'", 1);
	json_t *v = json_stringn((const char *)b.data, b.len);
	xy_buf_free(&b);
	return v;
}

/* ------------------------------------------------------- the whole */

static int tool_bindings(struct binder *b, const json_t *tool, json_t *all)
{
	json_t *schema = json_pack("{ss sO}", "type", "record", "fields",
				   json_object_get(tool, "inputs"));
	json_t *none = json_array(), *v;
	int rc = schema && none ? bind_input(b, schema, (json_t *)b->inputs,
					     none, none, all)
				: -1;
	json_decref(schema);
	json_decref(none);
	size_t i;
	json_array_foreach(json_object_get(tool, "baseCommand"), i, v)
		json_array_append_new(all, json_pack("{s[iI]sO}", "position",
						     -1000000, (json_int_t)i,
						     "datum", v));
	json_array_foreach(json_object_get(tool, "arguments"), i, v) {
		if (rc)
			break;
		json_t *arg = json_deep_copy(v);
		json_t *pos = json_object_get(arg, "position"), *p;
		p = json_is_string(pos)
			    ? cwl_expr_eval(b->x, json_string_value(pos),
					    b->inputs, NULL, b->runtime, b->err,
					    b->errlen)
			    : json_incref(pos);
		if (json_is_string(pos) && !p)
			rc = -1;
		json_object_set_new(arg, "position",
				    json_pack("[Io]", json_integer_value(p),
					      json_integer((json_int_t)i)));
		json_decref(p);
		json_array_append_new(all, arg);
	}
	return rc;
}

static json_t *generate(struct binder *b, struct sorted *s, size_t n,
			int shell)
{
	json_t *words = json_array(), *args = json_array();
	for (size_t i = 0; i < n; i++) {
		json_array_clear(args);
		if (binding_args(b, s[i].binding, args)) {
			json_decref(words);
			words = NULL;
			break;
		}
		int quote = !json_is_false(
			json_object_get(s[i].binding, "shellQuote"));
		size_t j;
		json_t *w;
		json_array_foreach(args, j, w)
			json_array_append_new(
				words, shell && quote
					       ? shell_quote(json_string_value(w))
					       : json_incref(w));
	}
	json_decref(args);
	if (!words || !shell)
		return words;
	struct xy_buf line;
	size_t j;
	json_t *w;
	xy_buf_init(&line);
	json_array_foreach(words, j, w) {
		if (j)
			xy_buf_put_raw(&line, " ", 1);
		xy_buf_put_raw(&line, json_string_value(w),
			       json_string_length(w));
	}
	json_t *cmd = json_pack("[sss%]", "/bin/sh", "-c",
				line.data ? (const char *)line.data : "",
				line.len);
	xy_buf_free(&line);
	json_decref(words);
	return cmd;
}

json_t *cwl_command_line(struct cwl_expr *x, const json_t *tool,
			 const json_t *inputs, const json_t *runtime,
			 char *err, size_t errlen)
{
	struct binder b = {x, inputs, runtime, err, errlen};
	json_t *all = json_array(), *cmd = NULL;
	struct sorted *s = NULL;
	if (!all || tool_bindings(&b, tool, all))
		goto done;
	size_t n = json_array_size(all);
	s = calloc(n ? n : 1, sizeof *s);
	if (!s) {
		xy_fail(err, errlen, ENOMEM, "no memory");
		goto done;
	}
	for (size_t i = 0; i < n; i++)
		s[i] = (struct sorted){json_array_get(all, i), i};
	qsort(s, n, sizeof *s, cmp_sorted);
	cmd = generate(&b, s, n,
		       cwl_requirement(tool, "ShellCommandRequirement", NULL) !=
			       NULL);
done:
	free(s);
	json_decref(all);
	return cmd;
}
