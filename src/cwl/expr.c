/*
 * expr.c: CWL parameter references and JavaScript expressions (cwl.h), on
 * Duktape. Pairs with cmdline.c, outputs.c and exec.c, which evaluate every
 * expression-valued field through cwl_expr_eval.
 *
 * The reference runner's behaviour is the standard here, since the
 * conformance suite checks its output byte for byte: a text is trimmed,
 * scanned for $(...), ${...} and backslash escapes; a parameter reference
 * ("inputs.a['b'][0]") is looked up without JavaScript even when
 * JavaScript is on; and a value put into a longer string is written as
 * Python's json.dumps(sort_keys=True) would write it (cwl_json_dumps).
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <duktape.h>

#include "buf.h"
#include "cwl.h"
#include "util.h"

struct cwl_expr {
	duk_context *ctx; /* NULL: parameter references only */
	struct cwl_py *py; /* xylem:InlinePythonRequirement: Python instead */
	int old_escapes;  /* v1.0, v1.1: a backslash escapes any character */
};

/* The three names an expression sees. */
struct scope {
	const json_t *inputs;
	const json_t *self;
	const json_t *runtime;
};

static void put_str(struct xy_buf *b, const char *s)
{
	xy_buf_put_raw(b, s, strlen(s));
}

/* Takes the buffer's bytes as a NUL-terminated string; NULL on ENOMEM. */
static char *take_str(struct xy_buf *b)
{
	xy_buf_put_raw(b, "", 1);
	if (b->oom) {
		xy_buf_free(b);
		return NULL;
	}
	char *s = (char *)b->data;
	xy_buf_init(b);
	return s;
}

/* -------------------------------------------------------------- JSON */

/* Python's repr of a float: the shortest digits that read back as d, in
 * fixed notation for 1e-4 <= |d| < 1e16 and as d.ddde+XX otherwise. */
static void float_repr(struct xy_buf *b, double d)
{
	if (isnan(d)) {
		put_str(b, "NaN");
		return;
	}
	if (isinf(d)) {
		put_str(b, d < 0 ? "-Infinity" : "Infinity");
		return;
	}
	char tmp[40];
	for (int p = 1; p <= 17; p++) {
		snprintf(tmp, sizeof tmp, "%.*e", p - 1, d);
		if (strtod(tmp, NULL) == d)
			break;
	}
	/* tmp is [-]D[.DDD]e[+-]XX: gather the digits and the exponent. */
	char digits[32];
	int n = 0;
	const char *p = tmp;
	if (*p == '-') {
		xy_buf_put_raw(b, "-", 1);
		p++;
	}
	for (; *p && *p != 'e'; p++)
		if (*p != '.')
			digits[n++] = *p;
	int e = atoi(p + 1);
	while (n > 1 && digits[n - 1] == '0')
		n--;
	int point = e + 1; /* digits before the decimal point */
	if (point > -4 && point <= 16) {
		if (point <= 0) {
			put_str(b, "0.");
			for (int i = 0; i < -point; i++)
				put_str(b, "0");
			xy_buf_put_raw(b, digits, n);
		} else if (point >= n) {
			xy_buf_put_raw(b, digits, n);
			for (int i = n; i < point; i++)
				put_str(b, "0");
			put_str(b, ".0");
		} else {
			xy_buf_put_raw(b, digits, point);
			put_str(b, ".");
			xy_buf_put_raw(b, digits + point, n - point);
		}
		return;
	}
	xy_buf_put_raw(b, digits, 1);
	if (n > 1) {
		put_str(b, ".");
		xy_buf_put_raw(b, digits + 1, n - 1);
	}
	snprintf(tmp, sizeof tmp, "e%c%02d", e < 0 ? '-' : '+', abs(e));
	put_str(b, tmp);
}

/* Decodes one UTF-8 character at s (n bytes left); U+FFFD for a bad one. */
static unsigned long utf8_next(const unsigned char *s, size_t n, size_t *used)
{
	int len = s[0] >= 0xf0 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc0 ? 2 : 1;
	unsigned long c = len == 1 ? s[0] : s[0] & (0x3f >> (len - 1));
	if (len == 1 || (size_t)len > n) {
		*used = 1;
		return s[0] < 0x80 ? c : 0xfffd;
	}
	for (int i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80) {
			*used = 1;
			return 0xfffd;
		}
		c = (c << 6) | (s[i] & 0x3f);
	}
	*used = len;
	return c;
}

/* A string as json.dumps(ensure_ascii=True) writes it. */
static void dump_string(struct xy_buf *b, const char *s, size_t n)
{
	char tmp[32];
	xy_buf_put_raw(b, "\"", 1);
	for (size_t i = 0; i < n;) {
		unsigned char c = (unsigned char)s[i];
		const char *esc = c == '"'    ? "\\\""
				  : c == '\\' ? "\\\\"
				  : c == '\n' ? "\\n"
				  : c == '\r' ? "\\r"
				  : c == '\t' ? "\\t"
				  : c == '\b' ? "\\b"
				  : c == '\f' ? "\\f"
					      : NULL;
		if (esc) {
			put_str(b, esc);
			i++;
			continue;
		}
		if (c >= 0x20 && c < 0x7f) {
			xy_buf_put_raw(b, &s[i++], 1);
			continue;
		}
		size_t used;
		unsigned long u = utf8_next((const unsigned char *)s + i,
					    n - i, &used);
		i += used;
		if (u >= 0x10000) { /* a surrogate pair, as Python writes it */
			u -= 0x10000;
			snprintf(tmp, sizeof tmp, "\\u%04lx\\u%04lx",
				 0xd800 + (u >> 10), 0xdc00 + (u & 0x3ff));
		} else {
			snprintf(tmp, sizeof tmp, "\\u%04lx", u);
		}
		put_str(b, tmp);
	}
	xy_buf_put_raw(b, "\"", 1);
}

static int cmp_keys(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void dump(struct xy_buf *b, const json_t *v);

static void dump_object(struct xy_buf *b, const json_t *v)
{
	size_t n = json_object_size(v), i = 0;
	const char **keys = malloc((n ? n : 1) * sizeof *keys);
	if (!keys) {
		b->oom = 1;
		return;
	}
	const char *k;
	json_t *item;
	json_object_foreach((json_t *)v, k, item)
		keys[i++] = k;
	qsort(keys, n, sizeof *keys, cmp_keys);
	xy_buf_put_raw(b, "{", 1);
	for (i = 0; i < n; i++) {
		if (i)
			put_str(b, ", ");
		dump_string(b, keys[i], strlen(keys[i]));
		put_str(b, ": ");
		dump(b, json_object_get(v, keys[i]));
	}
	xy_buf_put_raw(b, "}", 1);
	free(keys);
}

static void dump(struct xy_buf *b, const json_t *v)
{
	char tmp[32];
	size_t i;
	json_t *item;
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		dump_object(b, v);
		break;
	case JSON_ARRAY:
		xy_buf_put_raw(b, "[", 1);
		json_array_foreach(v, i, item) {
			if (i)
				put_str(b, ", ");
			dump(b, item);
		}
		xy_buf_put_raw(b, "]", 1);
		break;
	case JSON_STRING:
		dump_string(b, json_string_value(v), json_string_length(v));
		break;
	case JSON_INTEGER:
		snprintf(tmp, sizeof tmp, "%" JSON_INTEGER_FORMAT,
			 json_integer_value(v));
		put_str(b, tmp);
		break;
	case JSON_REAL:
		float_repr(b, json_real_value(v));
		break;
	case JSON_TRUE:
		put_str(b, "true");
		break;
	case JSON_FALSE:
		put_str(b, "false");
		break;
	default:
		put_str(b, "null");
	}
}

char *cwl_json_dumps(const json_t *v)
{
	struct xy_buf b;
	xy_buf_init(&b);
	if (v)
		dump(&b, v);
	else
		put_str(&b, "null");
	return take_str(&b);
}

/* ------------------------------------------------ parameter references */

static int is_word(char c)
{
	unsigned char u = (unsigned char)c;
	return u >= 0x80 || u == '_' || (u >= '0' && u <= '9') ||
	       ((u | 0x20) >= 'a' && (u | 0x20) <= 'z');
}

/* The length of the segment at s[i] (".name", "['key']", "[\"key\"]" or
 * "[12]"), 0 if there is none. */
static size_t segment_len(const char *s, size_t i, size_t end)
{
	size_t j = i + 1;
	if (s[i] == '.') {
		while (j < end && is_word(s[j]))
			j++;
		return j > i + 1 ? j - i : 0;
	}
	if (s[i] != '[' || j >= end)
		return 0;
	char q = s[j];
	if (q == '\'' || q == '"') {
		for (j++; j + 1 < end; j++) {
			if (s[j] == '\\' && s[j + 1] == q)
				j++;
			else if (s[j] == q && s[j + 1] == ']')
				return j > i + 2 ? j + 2 - i : 0;
		}
		return 0;
	}
	while (j < end && s[j] >= '0' && s[j] <= '9')
		j++;
	return j > i + 1 && j < end && s[j] == ']' ? j + 1 - i : 0;
}

/* One segment applied to cur: the value it names, a new reference, or
 * NULL with err. */
static json_t *apply_segment(const json_t *cur, const char *seg, size_t len,
			     int last, char *err, size_t errlen)
{
	if (seg[0] == '[' && seg[1] != '\'' && seg[1] != '"') {
		size_t idx = strtoul(seg + 1, NULL, 10);
		if (!json_is_array(cur) || idx >= json_array_size(cur)) {
			xy_fail(err, errlen, EINVAL, "cannot index on int %zu",
				idx);
			return NULL;
		}
		return json_incref(json_array_get(cur, idx));
	}
	char key[1024];
	size_t n = 0;
	size_t from = seg[0] == '.' ? 1 : 2, to = seg[0] == '.' ? len : len - 2;
	for (size_t i = from; i < to && n + 1 < sizeof key; i++) {
		if (seg[i] == '\\' && i + 1 < to &&
		    (seg[i + 1] == '\'' || seg[i + 1] == '"'))
			i++;
		key[n++] = seg[i];
	}
	key[n] = 0;
	if (json_is_array(cur) && last && !strcmp(key, "length"))
		return json_integer((json_int_t)json_array_size(cur));
	json_t *v = json_object_get(cur, key);
	if (!v) {
		xy_fail(err, errlen, EINVAL, "%s key '%s'",
			json_is_object(cur) ? "no" : "cannot look up", key);
		return NULL;
	}
	return json_incref(v);
}

/* ex is "(sym.seg...)". Returns 1 and *out if it has the form of a
 * parameter reference and could be looked up, 0 if it does not have the
 * form, -1 with err if a lookup failed. */
static int param_ref(const char *ex, size_t len, const struct scope *sc,
		     json_t **out, char *err, size_t errlen)
{
	size_t end = len - 1, i = 1;
	if (len < 3 || ex[0] != '(' || ex[end] != ')')
		return 0;
	while (i < end && is_word(ex[i]))
		i++;
	size_t sym = i - 1;
	if (sym == 0)
		return 0;
	for (size_t j = i, n; j < end; j += n)
		if (!(n = segment_len(ex, j, end)))
			return 0;
	const json_t *root;
	if (sym == 4 && !memcmp(ex + 1, "null", 4) && i == end) {
		*out = json_null();
		return 1;
	} else if (sym == 6 && !memcmp(ex + 1, "inputs", 6)) {
		root = sc->inputs;
	} else if (sym == 4 && !memcmp(ex + 1, "self", 4)) {
		root = sc->self;
	} else if (sym == 7 && !memcmp(ex + 1, "runtime", 7)) {
		root = sc->runtime;
	} else {
		xy_fail(err, errlen, EINVAL, "'%.*s' is unexpected", (int)sym,
			ex + 1);
		return -1;
	}
	json_t *cur = json_incref(root ? (json_t *)root : json_null());
	for (size_t n; i < end && cur; i += n) {
		n = segment_len(ex, i, end);
		json_t *next = apply_segment(cur, ex + i, n, i + n == end, err,
					     errlen);
		json_decref(cur);
		cur = next;
	}
	if (!cur)
		return -1;
	*out = cur;
	return 1;
}

/* -------------------------------------------------------- JavaScript */

static void fatal(void *udata, const char *msg)
{
	fprintf(stderr, "xylem: JavaScript engine failure: %s\n",
		msg ? msg : "unknown");
	abort();
}

/* What one protected call into Duktape needs. */
struct js_job {
	const char *json[3]; /* inputs, self, runtime */
	const char *code;
	size_t len;
};

/* Runs inside duk_safe_call, so any JavaScript error is caught: binds the
 * three names, runs the code, leaves its result as JSON text (or
 * undefined) on the stack. */
static duk_ret_t js_run(duk_context *ctx, void *udata)
{
	static const char *const names[] = {"inputs", "self", "runtime"};
	const struct js_job *j = udata;
	duk_push_global_object(ctx);
	for (int i = 0; i < 3; i++) {
		duk_push_string(ctx, j->json[i]);
		duk_json_decode(ctx, -1);
		duk_put_prop_string(ctx, -2, names[i]);
	}
	duk_pop(ctx);
	duk_eval_lstring(ctx, j->code, j->len);
	duk_json_encode(ctx, -1);
	return 1;
}

/* JSON text from the engine as a value; integers past 64 bits (which
 * JavaScript prints in full below 1e21) are read as reals. */
static json_t *from_js(const char *text, char *err, size_t errlen)
{
	json_error_t je;
	json_t *v = json_loads(text, JSON_DECODE_ANY, &je);
	if (!v)
		v = json_loads(text, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL,
			       &je);
	if (!v)
		xy_fail(err, errlen, EINVAL, "expression result: %s", je.text);
	return v;
}

/*
 * Debian's Duktape is built without its interrupt check, so a runaway
 * expression ($(while(1){})) cannot be stopped from inside. The process
 * is: an expression that runs past JS_TIMEOUT_S ends the command (xylem
 * cwl, or cwl-exec in the task) with a message and permanentFail. It is
 * process state, set and restored around each evaluation, in a runner
 * that is one process per tool.
 */
#define JS_TIMEOUT_S 30 /* XYLEM_CWL_JS_TIMEOUT overrides (tests) */

static struct sigaction watchdog_old;
static char watchdog_msg[96]; /* written whole from the handler */

static void watchdog_fire(int sig)
{
	if (write(2, watchdog_msg, strlen(watchdog_msg)) < 0)
		_exit(CWL_PERMANENT_FAIL);
	_exit(CWL_PERMANENT_FAIL);
}

static void watchdog_arm(void)
{
	const char *env = getenv("XYLEM_CWL_JS_TIMEOUT");
	unsigned s = env && atoi(env) > 0 ? (unsigned)atoi(env) : JS_TIMEOUT_S;
	struct sigaction sa;

	snprintf(watchdog_msg, sizeof watchdog_msg, "xylem: a JavaScript "
		 "expression ran past %u s; stopped\n", s);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = watchdog_fire;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, &watchdog_old);
	alarm(s);
}

static void watchdog_disarm(void)
{
	alarm(0);
	sigaction(SIGALRM, &watchdog_old, NULL);
}

static json_t *js_eval(struct cwl_expr *x, const char *ex, size_t len,
		       const struct scope *sc, char *err, size_t errlen)
{
	const json_t *vals[3] = {sc->inputs, sc->self, sc->runtime};
	struct js_job j = {{NULL}, NULL, 0};
	struct xy_buf code;
	json_t *out = NULL;
	xy_buf_init(&code);
	/* As the reference runner wraps it: ${...} is a function body and
	 * $(...) the value of a function that returns it. */
	put_str(&code, "\"use strict\";\n(function()");
	if (ex[0] != '{')
		put_str(&code, "{return ");
	xy_buf_put_raw(&code, ex, len);
	if (ex[0] != '{')
		put_str(&code, ";}");
	put_str(&code, ")()");
	for (int i = 0; i < 3; i++)
		j.json[i] = vals[i] ? json_dumps(vals[i], JSON_ENCODE_ANY |
						 JSON_COMPACT) : NULL;
	if (code.oom || (sc->inputs && !j.json[0]) ||
	    (sc->self && !j.json[1]) || (sc->runtime && !j.json[2])) {
		xy_fail(err, errlen, ENOMEM, "out of memory");
		goto done;
	}
	for (int i = 0; i < 3; i++)
		if (!j.json[i])
			j.json[i] = "null";
	j.code = (const char *)code.data;
	j.len = code.len;
	watchdog_arm();
	int rc = duk_safe_call(x->ctx, js_run, &j, 0, 1);
	watchdog_disarm();
	if (rc != DUK_EXEC_SUCCESS)
		xy_fail(err, errlen, EINVAL, "expression %.*s failed: %s",
			(int)(len > 200 ? 200 : len), ex,
			duk_safe_to_string(x->ctx, -1));
	else if (duk_is_string(x->ctx, -1))
		out = from_js(duk_get_string(x->ctx, -1), err, errlen);
	else
		out = json_null(); /* undefined, or a function */
	duk_pop(x->ctx);
done:
	for (int i = 0; i < 3; i++)
		if (vals[i])
			free((char *)j.json[i]);
	xy_buf_free(&code);
	return out;
}

/* The InlineJavascriptRequirement's expressionLib, run once as global
 * code, with the global object as `this` (libraries such as underscore
 * attach themselves to it), so that its functions and variables stay
 * visible. */
static int load_lib(struct cwl_expr *x, const json_t *lib, char *err,
		    size_t errlen)
{
	struct xy_buf code;
	size_t i;
	json_t *item;
	xy_buf_init(&code);
	put_str(&code, "\"use strict\";\n");
	json_array_foreach(lib, i, item) {
		if (json_is_string(item))
			put_str(&code, json_string_value(item));
		put_str(&code, "\n");
	}
	int rc = 0;
	if (code.oom) {
		rc = xy_fail(err, errlen, ENOMEM, "out of memory");
	} else if (duk_pcompile_lstring(x->ctx, 0, (const char *)code.data,
					code.len) ||
		   (duk_push_global_object(x->ctx),
		    duk_pcall_method(x->ctx, 0))) {
		rc = xy_fail(err, errlen, EINVAL, "expressionLib: %s",
			     duk_safe_to_string(x->ctx, -1));
	}
	duk_pop(x->ctx);
	xy_buf_free(&code);
	return rc;
}

struct cwl_expr *cwl_expr_new(const json_t *tool, char *err, size_t errlen)
{
	struct cwl_expr *x = calloc(1, sizeof *x);
	if (!x) {
		xy_fail(err, errlen, ENOMEM, "out of memory");
		return NULL;
	}
	const char *v = json_string_value(json_object_get(tool, "cwlVersion"));
	x->old_escapes = v && (!strcmp(v, "v1.0") || !strcmp(v, "v1.1"));
	const json_t *py = tool ? cwl_requirement(tool,
			"InlinePythonRequirement", NULL) : NULL;
	if (py) {
		x->py = cwl_py_start(py, err, errlen);
		if (!x->py)
			goto error;
		return x;
	}
	const json_t *req =
		tool ? cwl_requirement(tool, "InlineJavascriptRequirement",
				       NULL)
		     : NULL;
	if (!req)
		return x;
	x->ctx = duk_create_heap(NULL, NULL, NULL, NULL, fatal);
	if (!x->ctx) {
		xy_fail(err, errlen, ENOMEM, "cannot start JavaScript engine");
		goto error;
	}
	if (load_lib(x, json_object_get(req, "expressionLib"), err, errlen))
		goto error;
	return x;
error:
	cwl_expr_free(x);
	return NULL;
}

void cwl_expr_free(struct cwl_expr *x)
{
	if (!x)
		return;
	if (x->ctx)
		duk_destroy_heap(x->ctx);
	cwl_py_stop(x->py);
	free(x);
}

/* ------------------------------------------------------ interpolation */

enum { S_TEXT, S_DOLLAR, S_PAREN, S_BRACE, S_SQUOTE, S_DQUOTE, S_BSLASH };

/* One step of the scanner's state machine over character c at i; returns
 * 1 when a $(...), ${...} or backslash escape ends at i. */
static int scan_step(unsigned char *st, size_t *top, size_t *i, char c,
		     size_t *from)
{
	unsigned char s = st[*top];
	if (s == S_TEXT) {
		if (c == '$' || c == '\\')
			st[++*top] = c == '$' ? S_DOLLAR : S_BSLASH;
	} else if (s == S_BSLASH) {
		--*top;
		return st[*top] == S_TEXT;
	} else if (s == S_DOLLAR) {
		if (c == '(' || c == '{') {
			*from = *i - 1;
			st[++*top] = c == '(' ? S_PAREN : S_BRACE;
		} else {
			--*top; /* not an expression: read c again as text */
			--*i;
		}
	} else if (s == S_PAREN || s == S_BRACE) {
		char open = s == S_PAREN ? '(' : '{';
		char close = s == S_PAREN ? ')' : '}';
		if (c == open) {
			st[++*top] = s;
		} else if (c == close) {
			--*top;
			return st[*top] == S_DOLLAR;
		} else if (c == '\'' || c == '"') {
			st[++*top] = c == '\'' ? S_SQUOTE : S_DQUOTE;
		}
	} else if ((s == S_SQUOTE && c == '\'') || (s == S_DQUOTE && c == '"')) {
		--*top;
	} else if (c == '\\') {
		st[++*top] = S_BSLASH;
	}
	return 0;
}

/* Finds the next expression or escape in s[0..n): 1 and [*a, *b) if one
 * is found, 0 if none, -1 if an expression is not closed. */
static int scan(const char *s, size_t n, size_t *a, size_t *b)
{
	unsigned char *st = malloc(n + 2);
	size_t top = 0, from = 0;
	if (!st)
		return -1;
	st[0] = S_TEXT;
	for (size_t i = 0; i < n; i++) {
		if (scan_step(st, &top, &i, s[i], &from)) {
			*a = st[top] == S_TEXT ? i - 1 : from;
			*b = i + 1;
			free(st);
			return 1;
		}
	}
	int open = top > 1 || (top == 1 && st[1] != S_BSLASH &&
			       st[1] != S_DOLLAR);
	free(st);
	return open ? -1 : 0;
}

/* Writes what the escape at s[a..b) stands for; returns where scanning
 * resumes. */
static size_t unescape(const struct cwl_expr *x, const char *s, size_t n,
		       size_t a, size_t b, struct xy_buf *out)
{
	if (x && x->old_escapes) {
		xy_buf_put_raw(out, s + b - 1, 1);
		return b;
	}
	if (b < n && s[a + 1] == '$' && (s[b] == '(' || s[b] == '{')) {
		xy_buf_put_raw(out, s + a + 1, 2);
		return b + 1;
	}
	xy_buf_put_raw(out, s + a, s[a + 1] == '\\' ? 1 : 2);
	return b;
}

static json_t *evaluate(struct cwl_expr *x, const char *ex, size_t len,
			const struct scope *sc, char *err, size_t errlen)
{
	json_t *v = NULL;
	int r = param_ref(ex, len, sc, &v, err, errlen);
	if (r == 1)
		return v;
	if (x && x->py)
		return cwl_py_eval(x->py, ex, len, sc->inputs, sc->self,
				   sc->runtime, err, errlen);
	if (x && x->ctx)
		return js_eval(x, ex, len, sc, err, errlen);
	if (r == 0)
		xy_fail(err, errlen, EINVAL,
			"syntax error in parameter reference '%.*s' (JavaScript "
			"needs InlineJavascriptRequirement)",
			(int)(len > 200 ? 200 : len), ex);
	return NULL;
}

static json_t *interpolate(struct cwl_expr *x, const char *s, int strip,
			   const struct scope *sc, char *err, size_t errlen)
{
	size_t n = strlen(s), a, b;
	if (strip) {
		while (n && strchr(" \t\n\r\f\v", *s)) {
			s++;
			n--;
		}
		while (n && strchr(" \t\n\r\f\v", s[n - 1]))
			n--;
	}
	struct xy_buf out;
	int r, first = 1;
	xy_buf_init(&out);
	while ((r = scan(s, n, &a, &b)) == 1) {
		xy_buf_put_raw(&out, s, a);
		if (s[a] != '$') {
			b = unescape(x, s, n, a, b, &out);
		} else {
			json_t *v = evaluate(x, s + a + 1, b - a - 1, sc, err,
					     errlen);
			if (!v || (first && a == 0 && b == n)) {
				xy_buf_free(&out);
				return v;
			}
			if (json_is_string(v)) {
				xy_buf_put_raw(&out, json_string_value(v),
					       json_string_length(v));
			} else {
				char *j = cwl_json_dumps(v);
				if (j)
					put_str(&out, j);
				free(j);
			}
			json_decref(v);
		}
		first = 0;
		s += b;
		n -= b;
	}
	if (r < 0) {
		xy_fail(err, errlen, EINVAL, "unfinished expression in '%.*s'",
			(int)(n > 200 ? 200 : n), s);
		xy_buf_free(&out);
		return NULL;
	}
	xy_buf_put_raw(&out, s, n);
	json_t *v = out.oom ? NULL
			    : json_stringn((const char *)out.data, out.len);
	if (!v)
		xy_fail(err, errlen, ENOMEM, "out of memory");
	xy_buf_free(&out);
	return v;
}

int cwl_expr_has(const char *text)
{
	size_t n = strlen(text), a, b;
	while (scan(text, n, &a, &b) == 1) {
		if (text[a] == '$')
			return 1;
		text += b;
		n -= b;
	}
	return 0;
}

/* Both forms of evaluation: strip as the reference runner does for every
 * field but InitialWorkDir's entry. */
static json_t *eval_text(struct cwl_expr *x, const char *text, int strip,
			 const json_t *inputs, const json_t *self,
			 const json_t *runtime, char *err, size_t errlen)
{
	struct scope sc = {inputs, self, runtime};
	if (!strstr(text, "$(") && !strstr(text, "${"))
		return json_string(text);
	return interpolate(x, text, strip, &sc, err, errlen);
}

json_t *cwl_expr_eval(struct cwl_expr *x, const char *text,
		      const json_t *inputs, const json_t *self,
		      const json_t *runtime, char *err, size_t errlen)
{
	return eval_text(x, text, 1, inputs, self, runtime, err, errlen);
}

json_t *cwl_expr_eval_keep_space(struct cwl_expr *x, const char *text,
				 const json_t *inputs, const json_t *self,
				 const json_t *runtime, char *err,
				 size_t errlen)
{
	return eval_text(x, text, 0, inputs, self, runtime, err, errlen);
}

json_t *cwl_expr_eval_value(struct cwl_expr *x, const json_t *v,
			    const json_t *inputs, const json_t *self,
			    const json_t *runtime, char *err, size_t errlen)
{
	if (json_is_string(v))
		return cwl_expr_eval(x, json_string_value(v), inputs, self,
				     runtime, err, errlen);
	return json_incref((json_t *)v);
}
