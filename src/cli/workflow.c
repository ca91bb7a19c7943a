/*
 * workflow.c: parses and validates the workflow file of `xylem run` (see
 * workflow.h and docs/workflow.md). Validation is strict on purpose: an
 * unknown key, a refused sandbox name or a second writer of a path stops
 * the run before any task starts, with a message that names the task, the
 * key and the value at fault.
 */
#include "workflow.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "util.h"

#define MAX_WORKFLOW_BYTES (1u << 30)

/* ------------------------------------------------------------ string map */

/* An open-addressing map from borrowed strings to indexes, for task ids and
 * paths, so that validation stays linear in the size of the workflow. */
struct strmap {
	const char **keys;
	size_t *vals;
	size_t cap, n;
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h;
}

static long strmap_get(const struct strmap *m, const char *key)
{
	if (!m->cap)
		return -1;
	for (size_t i = hash_str(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		if (!m->keys[i])
			return -1;
		if (strcmp(m->keys[i], key) == 0)
			return (long)m->vals[i];
	}
}

static int strmap_grow(struct strmap *m)
{
	size_t cap = m->cap ? m->cap * 2 : 64;
	const char **keys = calloc(cap, sizeof(*keys));
	size_t *vals = calloc(cap, sizeof(*vals));

	if (!keys || !vals) {
		free(keys);
		free(vals);
		return -1;
	}
	for (size_t i = 0; i < m->cap; i++) {
		if (!m->keys[i])
			continue;
		size_t j = hash_str(m->keys[i]) & (cap - 1);
		while (keys[j])
			j = (j + 1) & (cap - 1);
		keys[j] = m->keys[i];
		vals[j] = m->vals[i];
	}
	free(m->keys);
	free(m->vals);
	m->keys = keys;
	m->vals = vals;
	m->cap = cap;
	return 0;
}

/* Adds key (not copied; it must outlive the map), which must be absent. */
static int strmap_put(struct strmap *m, const char *key, size_t val)
{
	size_t i;

	if ((m->n + 1) * 2 > m->cap && strmap_grow(m) < 0)
		return -1;
	i = hash_str(key) & (m->cap - 1);
	while (m->keys[i])
		i = (i + 1) & (m->cap - 1);
	m->keys[i] = key;
	m->vals[i] = val;
	m->n++;
	return 0;
}

static void strmap_free(struct strmap *m)
{
	free(m->keys);
	free(m->vals);
}

/* ------------------------------------------------------------- messages */

struct parse {
	const char *label;   /* the file's name, first in every message */
	const char *basedir; /* relative paths start here */
	char *err;
	size_t errlen;
	struct xy_workflow *w;
	struct strmap ids;   /* task id -> task index */
	struct strmap paths; /* full path -> path index */
};

static int perr(struct parse *ps, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Writes "LABEL: message" into the caller's error buffer; returns -1. */
static int perr(struct parse *ps, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return xy_fail(ps->err, ps->errlen, EINVAL, "%s: %s", ps->label, msg);
}

static int oom(struct parse *ps)
{
	return xy_fail(ps->err, ps->errlen, ENOMEM, "%s: out of memory",
		       ps->label);
}

/* Every key of obj must be in known (NULL-terminated). */
static int check_keys(struct parse *ps, json_t *obj, const char *const *known,
		      const char *where)
{
	const char *key, *hint;
	json_t *val;

	json_object_foreach(obj, key, val) {
		size_t best = 3;
		int found = 0;

		hint = NULL;
		for (const char *const *k = known; *k && !found; k++) {
			size_t d = xy_edit_distance(key, *k);
			found = d == 0;
			if (d < best) {
				best = d;
				hint = *k;
			}
		}
		if (found)
			continue;
		if (hint)
			return perr(ps, "%s: unknown key \"%s\" (did you mean \"%s\"?)",
				    where, key, hint);
		return perr(ps, "%s: unknown key \"%s\"", where, key);
	}
	return 0;
}

/* ---------------------------------------------------------- field types */

/* A string without NUL bytes, copied into *out. */
static int get_string(struct parse *ps, json_t *v, const char *where,
		      const char *key, char **out)
{
	if (!json_is_string(v))
		return perr(ps, "%s: \"%s\" must be a string", where, key);
	if (strlen(json_string_value(v)) != json_string_length(v))
		return perr(ps, "%s: \"%s\" contains a NUL byte", where, key);
	*out = strdup(json_string_value(v));
	return *out ? 0 : oom(ps);
}

static int get_int(struct parse *ps, json_t *v, const char *where,
		   const char *key, long long lo, long long hi, long long *out)
{
	if (!json_is_integer(v) || json_integer_value(v) < lo ||
	    json_integer_value(v) > hi)
		return perr(ps, "%s: \"%s\" must be an integer from %lld to %lld",
			    where, key, lo, hi);
	*out = json_integer_value(v);
	return 0;
}

static const char *const cache_names[] = {"task", "workflow", "worker",
					  "forever"};

const char *xy_wf_cache_name(xy_cache_level level)
{
	if ((unsigned)level < 4)
		return cache_names[level];
	return "?";
}

static int get_cache(struct parse *ps, json_t *v, const char *where,
		     xy_cache_level *out)
{
	const char *s = json_is_string(v) ? json_string_value(v) : "";

	for (int i = 0; i < 4; i++) {
		if (strcmp(s, cache_names[i]) == 0) {
			*out = (xy_cache_level)i;
			return 0;
		}
	}
	return perr(ps, "%s: \"cache\" must be one of \"task\", \"workflow\","
		    " \"worker\", \"forever\"", where);
}

/* ------------------------------------------------------------- paths */

/* Joins p to base unless it is absolute, then removes empty and "."
 * components and resolves ".." lexically: "a/./b/../c" is "a/c". Two
 * spellings of one path then compare equal (symbolic links aside). */
static char *resolve_path(const char *base, const char *p)
{
	size_t n = strlen(base) + strlen(p) + 2, len = 0;
	char *joined = malloc(n), *out = malloc(n), *save = NULL, *c;

	if (!joined || !out) {
		free(joined);
		free(out);
		return NULL;
	}
	if (p[0] == '/')
		snprintf(joined, n, "%s", p);
	else
		snprintf(joined, n, "%s/%s", base, p);
	for (c = strtok_r(joined, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		if (strcmp(c, ".") == 0)
			continue;
		if (strcmp(c, "..") == 0) {
			while (len > 0 && out[--len] != '/')
				;
			continue;
		}
		len += sprintf(out + len, "/%s", c);
	}
	if (len == 0)
		out[len++] = '/';
	out[len] = '\0';
	free(joined);
	return out;
}

/* Finds or adds the distinct path for entry f, keeping the longest cache
 * level asked for it. */
static int intern_path(struct parse *ps, struct xy_wf_file *f)
{
	struct xy_workflow *w = ps->w;
	struct xy_wf_path *p, *grown;
	int url = strstr(f->path, "://") != NULL;
	char *full = url ? strdup(f->path) : resolve_path(ps->basedir, f->path);
	long i;

	if (!full)
		return oom(ps);
	i = strmap_get(&ps->paths, full);
	if (i >= 0) {
		free(full);
		f->ref = (size_t)i;
		if (f->cache > w->paths[i].cache)
			w->paths[i].cache = f->cache;
		w->paths[i].temp |= f->temp;
		return 0;
	}
	grown = realloc(w->paths, (w->n_paths + 1) * sizeof(*grown));
	if (!grown) {
		free(full);
		return oom(ps);
	}
	w->paths = grown;
	p = &w->paths[w->n_paths];
	*p = (struct xy_wf_path){full, f->path, f->cache, -1, f->temp, url};
	if (strmap_put(&ps->paths, p->full, w->n_paths) < 0) {
		free(full);
		return oom(ps);
	}
	f->ref = w->n_paths++;
	return 0;
}

/* ------------------------------------------------------------- tasks */

static const char *const file_keys[] = {"path", "url", "as", "cache",
					"temp", "unpack", NULL};
static const char *const task_keys[] = {
	"id", "command", "inputs", "outputs", "env", "resources", "retries",
	"priority", "time_limit", "array", NULL};
static const char *const array_keys[] = {"range", "lines", NULL};
static const char *const resource_keys[] = {"cores", "memory", "disk",
					    "gpus", NULL};
static const char *const top_keys[] = {"name", "tasks", NULL};

/* An input may be a URL ("url" instead of "path") and an archive to
 * mount expanded ("unpack": true); an output is neither. */
static int url_and_unpack(struct parse *ps, json_t *v, const char *where,
			  const char *dir, struct xy_wf_file *f)
{
	json_t *u = json_object_get(v, "unpack");
	int input = !strcmp(dir, "input");

	if (json_object_get(v, "url") && json_object_get(v, "path"))
		return perr(ps, "%s: give \"path\" or \"url\", not both",
			    where);
	if (!input && (u || json_object_get(v, "url")))
		return perr(ps, "%s: only an input may have \"%s\"", where,
			    u ? "unpack" : "url");
	if (u && !json_is_boolean(u))
		return perr(ps, "%s: \"unpack\" must be true or false", where);
	f->unpack = u && json_is_true(u);
	return 0;
}

/* One entry of "inputs" or "outputs"; dir is "input" or "output". */
static int parse_file(struct parse *ps, json_t *v, const char *who,
		      const char *dir, struct xy_wf_file *f)
{
	char where[600], why[512]; /* who (512) and a suffix */
	json_t *c;
	const char *key;

	snprintf(where, sizeof where, "%s: %s", who, dir);
	f->cache = XY_CACHE_WORKFLOW;
	if (!json_is_object(v))
		return perr(ps, "%s: each entry must be an object with \"path\""
			    " and \"as\"", where);
	if (check_keys(ps, v, file_keys, where) < 0 ||
	    url_and_unpack(ps, v, where, dir, f) < 0)
		return -1;
	key = json_object_get(v, "url") ? "url" : "path";
	if (!json_object_get(v, key) || !json_object_get(v, "as"))
		return perr(ps, "%s: an entry lacks \"%s\"", where,
			    json_object_get(v, key) ? "as" : key);
	if (get_string(ps, json_object_get(v, key), where, key,
		       &f->path) < 0 ||
	    get_string(ps, json_object_get(v, "as"), where, "as", &f->as) < 0)
		return -1;
	if (!f->path[0])
		return perr(ps, "%s: \"%s\" is empty", where, key);
	if ((strstr(f->path, "://") != NULL) != !strcmp(key, "url"))
		return perr(ps, "%s: \"%s\" is %s URL: give it as \"%s\"",
			    where, f->path, *key == 'u' ? "not a" : "a",
			    *key == 'u' ? "path" : "url");
	if (xy_check_sandbox_name(f->as, why, sizeof why) < 0)
		return perr(ps, "%s \"as\": \"%s\" is refused: %s", where, f->as,
			    why);
	c = json_object_get(v, "cache");
	if (c && get_cache(ps, c, where, &f->cache) < 0)
		return -1;
	c = json_object_get(v, "temp");
	if (c && !json_is_boolean(c))
		return perr(ps, "%s \"temp\": must be true or false", where);
	f->temp = c && json_is_true(c);
	return intern_path(ps, f);
}

static int parse_files(struct parse *ps, json_t *arr, const char *who,
		       const char *dir, struct xy_wf_file **out, size_t *n)
{
	size_t i;
	json_t *v;

	if (!json_is_array(arr))
		return perr(ps, "%s: \"%ss\" must be an array", who, dir);
	*out = calloc(json_array_size(arr) + 1, sizeof(**out));
	if (!*out)
		return oom(ps);
	json_array_foreach(arr, i, v) {
		*n = i + 1;
		if (parse_file(ps, v, who, dir, &(*out)[i]) < 0)
			return -1;
	}
	return 0;
}

static int parse_env(struct parse *ps, json_t *obj, const char *who,
		     struct xy_wf_task *t)
{
	const char *key;
	json_t *v;

	if (!json_is_object(obj))
		return perr(ps, "%s: \"env\" must be an object of strings", who);
	t->env = calloc(json_object_size(obj) + 1, sizeof(*t->env));
	if (!t->env)
		return oom(ps);
	json_object_foreach(obj, key, v) {
		struct xy_wf_env *e = &t->env[t->n_env];

		if (!key[0] || strchr(key, '='))
			return perr(ps, "%s: env name \"%s\" is not valid", who,
				    key);
		if (!json_is_string(v))
			return perr(ps, "%s: env \"%s\" must be a string", who,
				    key);
		e->name = strdup(key);
		t->n_env++;
		if (!e->name || get_string(ps, v, who, key, &e->value) < 0)
			return e->name ? -1 : oom(ps);
	}
	return 0;
}

static int parse_resources(struct parse *ps, json_t *obj, const char *who,
			   struct xy_wf_task *t)
{
	char where[600]; /* who (512) and a suffix */
	long long v;
	json_t *x;

	snprintf(where, sizeof where, "%s: resources", who);
	if (!json_is_object(obj))
		return perr(ps, "%s: \"resources\" must be an object", who);
	if (check_keys(ps, obj, resource_keys, where) < 0)
		return -1;
	if ((x = json_object_get(obj, "cores"))) {
		if (get_int(ps, x, where, "cores", 1, 1 << 20, &v) < 0)
			return -1;
		t->cores = (int)v;
	}
	if ((x = json_object_get(obj, "memory"))) {
		if (get_int(ps, x, where, "memory", 0, 1ll << 40, &v) < 0)
			return -1;
		t->memory_mb = v;
	}
	if ((x = json_object_get(obj, "disk"))) {
		if (get_int(ps, x, where, "disk", 0, 1ll << 40, &v) < 0)
			return -1;
		t->disk_mb = v;
	}
	if ((x = json_object_get(obj, "gpus"))) {
		if (get_int(ps, x, where, "gpus", 0, 1 << 16, &v) < 0)
			return -1;
		t->gpus = (int)v;
	}
	return 0;
}

/* retries, priority and time_limit. */
static int parse_policies(struct parse *ps, json_t *obj, const char *who,
			  struct xy_wf_task *t)
{
	long long v;
	json_t *x;

	if ((x = json_object_get(obj, "retries"))) {
		if (get_int(ps, x, who, "retries", 0, 1000000, &v) < 0)
			return -1;
		t->retries = (int)v;
	}
	if ((x = json_object_get(obj, "priority"))) {
		if (!json_is_number(x))
			return perr(ps, "%s: \"priority\" must be a number", who);
		t->has_priority = 1;
		t->priority = json_number_value(x);
	}
	if ((x = json_object_get(obj, "time_limit"))) {
		if (!json_is_number(x) || !(json_number_value(x) > 0))
			return perr(ps, "%s: \"time_limit\" must be a number of"
				    " seconds above 0", who);
		t->time_limit = json_number_value(x);
	}
	return 0;
}

/* The id and command, and the task's name for later messages. Unknown keys
 * are checked before a missing id is reported, so that "Id" is called a
 * typo rather than an absence. */
static int parse_head(struct parse *ps, json_t *obj, size_t index,
		      struct xy_wf_task *t, char *who, size_t wholen)
{
	json_t *id = json_object_get(obj, "id");
	json_t *cmd = json_object_get(obj, "command");
	long other;

	snprintf(who, wholen, "task #%zu", index + 1);
	if (id) {
		if (get_string(ps, id, who, "id", &t->id) < 0)
			return -1;
		if (!t->id[0])
			return perr(ps, "%s: \"id\" is empty", who);
		snprintf(who, wholen, "task \"%s\"", t->id);
	}
	if (check_keys(ps, obj, task_keys, who) < 0)
		return -1;
	if (!id)
		return perr(ps, "%s has no \"id\"", who);
	other = strmap_get(&ps->ids, t->id);
	if (other >= 0)
		return perr(ps, "%s: the id is used twice (tasks #%ld and #%zu)",
			    who, other + 1, index + 1);
	if (strmap_put(&ps->ids, t->id, index) < 0)
		return oom(ps);
	if (!cmd)
		return perr(ps, "%s has no \"command\"", who);
	if (get_string(ps, cmd, who, "command", &t->command) < 0)
		return -1;
	if (!t->command[0])
		return perr(ps, "%s: \"command\" is empty", who);
	return 0;
}

/* No two entries of one task may share a sandbox name. */
static int check_names(struct parse *ps, const struct xy_wf_task *t,
		       const char *who)
{
	size_t n = t->n_inputs + t->n_outputs;
	struct strmap seen = {0};
	int rc = 0;

	for (size_t i = 0; i < n && rc == 0; i++) {
		const struct xy_wf_file *f = i < t->n_inputs
			? &t->inputs[i] : &t->outputs[i - t->n_inputs];

		if (strmap_get(&seen, f->as) >= 0)
			rc = perr(ps, "%s: sandbox name \"%s\" is used twice",
				  who, f->as);
		else if (strmap_put(&seen, f->as, i) < 0)
			rc = oom(ps);
	}
	strmap_free(&seen);
	return rc;
}

/* Lines of a file, as an array of {"lines": FILE} counts them: each
 * newline ends one, and a last line without one counts too. Returns 0,
 * -1 with errno set, or -2 if path is not a regular file. */
static int count_lines(const char *path, uint64_t *n)
{
	FILE *f = fopen(path, "r");
	char buf[65536];
	size_t got;
	int last = '\n';
	struct stat st;

	if (!f)
		return -1;
	/* A regular file only: a device or a pipe may never end. */
	if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode)) {
		int e = errno;

		fclose(f);
		errno = e;
		return -2;
	}
	*n = 0;
	while ((got = fread(buf, 1, sizeof buf, f)) > 0) {
		for (size_t i = 0; i < got; i++)
			*n += buf[i] == '\n';
		last = buf[got - 1];
	}
	*n += last != '\n';
	fclose(f);
	return 0;
}

/* "array": {"range": N} or {"lines": FILE}. */
static int parse_array(struct parse *ps, json_t *obj, const char *who,
		       struct xy_wf_task *t)
{
	json_t *range, *lines;
	long long n;
	char *path;

	if (!json_is_object(obj))
		return perr(ps, "%s: \"array\" must be an object", who);
	if (check_keys(ps, obj, array_keys, who) < 0)
		return -1;
	range = json_object_get(obj, "range");
	lines = json_object_get(obj, "lines");
	if (!range == !lines)
		return perr(ps, "%s: \"array\" takes one of \"range\" and"
			    " \"lines\"", who);
	if (range) {
		if (get_int(ps, range, who, "range", 1, 1000000000, &n) < 0)
			return -1;
		t->array_n = (uint64_t)n;
		return 0;
	}
	if (get_string(ps, lines, who, "lines", &path) < 0)
		return -1;
	t->array_lines = resolve_path(ps->basedir, path);
	free(path);
	if (!t->array_lines)
		return oom(ps);
	switch (count_lines(t->array_lines, &t->array_n)) {
	case -1:
		return perr(ps, "%s: array lines \"%s\": %s", who,
			    t->array_lines, strerror(errno));
	case -2:
		return perr(ps, "%s: array lines \"%s\" is not a regular"
			    " file", who, t->array_lines);
	}
	if (t->array_n == 0)
		return perr(ps, "%s: array lines \"%s\" is empty", who,
			    t->array_lines);
	return 0;
}

static int parse_task(struct parse *ps, json_t *obj, size_t index)
{
	struct xy_wf_task *t = &ps->w->tasks[index];
	char who[512];
	json_t *x;

	t->cores = t->gpus = t->retries = -1;
	t->memory_mb = t->disk_mb = -1;
	ps->w->n_tasks = index + 1;
	if (!json_is_object(obj))
		return perr(ps, "task #%zu must be an object", index + 1);
	if (parse_head(ps, obj, index, t, who, sizeof who) < 0)
		return -1;
	if ((x = json_object_get(obj, "inputs")) &&
	    parse_files(ps, x, who, "input", &t->inputs, &t->n_inputs) < 0)
		return -1;
	if ((x = json_object_get(obj, "outputs")) &&
	    parse_files(ps, x, who, "output", &t->outputs, &t->n_outputs) < 0)
		return -1;
	if ((x = json_object_get(obj, "env")) && parse_env(ps, x, who, t) < 0)
		return -1;
	if ((x = json_object_get(obj, "resources")) &&
	    parse_resources(ps, x, who, t) < 0)
		return -1;
	if (parse_policies(ps, obj, who, t) < 0)
		return -1;
	if ((x = json_object_get(obj, "array")) && parse_array(ps, x, who, t) < 0)
		return -1;
	return check_names(ps, t, who);
}

/* ------------------------------------------------------ whole workflow */

/* Sets each path's producer: at most one task writes a path, and no task
 * reads what it writes. */
static int link_producers(struct parse *ps)
{
	struct xy_workflow *w = ps->w;

	for (size_t i = 0; i < w->n_tasks; i++) {
		struct xy_wf_task *t = &w->tasks[i];

		for (size_t j = 0; j < t->n_outputs; j++) {
			struct xy_wf_path *p = &w->paths[t->outputs[j].ref];

			if (p->producer == (long)i)
				return perr(ps, "task \"%s\" writes \"%s\" twice",
					    t->id, t->outputs[j].path);
			if (p->producer >= 0)
				return perr(ps, "tasks \"%s\" and \"%s\" both"
					    " write \"%s\" (%s)",
					    w->tasks[p->producer].id, t->id,
					    t->outputs[j].path, p->full);
			p->producer = (long)i;
		}
	}
	for (size_t i = 0; i < w->n_tasks; i++) {
		struct xy_wf_task *t = &w->tasks[i];

		for (size_t j = 0; j < t->n_inputs; j++) {
			struct xy_wf_path *p = &w->paths[t->inputs[j].ref];

			if (p->producer == (long)i)
				return perr(ps, "task \"%s\" reads \"%s\", which"
					    " it writes itself", t->id,
					    t->inputs[j].path);
			if (p->temp && p->producer < 0)
				return perr(ps, "task \"%s\" reads temp \"%s\","
					    " which no task writes", t->id,
					    t->inputs[j].path);
		}
	}
	return 0;
}

/* Names the tasks of one cycle among those Kahn's algorithm could not
 * order (indeg > 0): each has a producer that is not ordered either, so
 * following such producers from any of them must come back to a task
 * already seen, which lies on a cycle. */
static long unordered_producer(const struct xy_workflow *w, size_t u,
			       const size_t *indeg)
{
	for (size_t j = 0; j < w->tasks[u].n_inputs; j++) {
		long p = w->paths[w->tasks[u].inputs[j].ref].producer;

		if (p >= 0 && indeg[p] > 0)
			return p;
	}
	return -1;
}

static int report_cycle(struct parse *ps, const size_t *indeg)
{
	struct xy_workflow *w = ps->w;
	char *seen = calloc(w->n_tasks, 1), msg[768];
	size_t u = 0, v, len = 0;

	if (!seen)
		return oom(ps);
	while (indeg[u] == 0)
		u++;
	while (!seen[u]) {
		seen[u] = 1;
		u = (size_t)unordered_producer(w, u, indeg);
	}
	free(seen);
	msg[0] = '\0';
	v = u;
	do {
		if (len < sizeof msg - 80)
			len += snprintf(msg + len, sizeof msg - len,
					"\"%s\" reads from ", w->tasks[v].id);
		v = (size_t)unordered_producer(w, v, indeg);
	} while (v != u);
	return perr(ps, "dependency cycle: %s\"%s\"", msg, w->tasks[u].id);
}

/* Kahn's algorithm over the producer -> consumer edges. The consumers of
 * each path sit in one array, path p's in cons[start[p] .. start[p+1]). */
static int check_cycles(struct parse *ps)
{
	struct xy_workflow *w = ps->w;
	size_t *indeg = calloc(w->n_tasks + 1, sizeof(*indeg));
	size_t *queue = calloc(w->n_tasks + 1, sizeof(*queue));
	size_t *start = calloc(w->n_paths + 1, sizeof(*start));
	size_t *cons = NULL, head = 0, tail = 0;
	int rc = 0;

	if (!indeg || !queue || !start)
		goto nomem;
	for (size_t i = 0; i < w->n_tasks; i++)
		for (size_t j = 0; j < w->tasks[i].n_inputs; j++)
			start[w->tasks[i].inputs[j].ref]++;
	for (size_t p = 1; p <= w->n_paths; p++)
		start[p] += start[p - 1];
	cons = calloc(start[w->n_paths] + 1, sizeof(*cons));
	if (!cons)
		goto nomem;
	for (size_t i = 0; i < w->n_tasks; i++)
		for (size_t j = 0; j < w->tasks[i].n_inputs; j++) {
			size_t p = w->tasks[i].inputs[j].ref;

			cons[--start[p]] = i;
			indeg[i] += w->paths[p].producer >= 0;
		}
	for (size_t i = 0; i < w->n_tasks; i++)
		if (indeg[i] == 0)
			queue[tail++] = i;
	while (head < tail) {
		struct xy_wf_task *t = &w->tasks[queue[head++]];

		for (size_t j = 0; j < t->n_outputs; j++) {
			size_t p = t->outputs[j].ref;

			for (size_t k = start[p]; k < start[p + 1]; k++)
				if (--indeg[cons[k]] == 0)
					queue[tail++] = cons[k];
		}
	}
	if (tail < w->n_tasks)
		rc = report_cycle(ps, indeg);
	goto out;
nomem:
	rc = oom(ps);
out:
	free(indeg);
	free(queue);
	free(start);
	free(cons);
	return rc;
}

static int parse_top(struct parse *ps, json_t *root)
{
	json_t *tasks, *v;
	size_t i;

	if (!json_is_object(root))
		return perr(ps, "the workflow must be a JSON object with"
			    " \"tasks\"");
	if (check_keys(ps, root, top_keys, "workflow") < 0)
		return -1;
	if ((v = json_object_get(root, "name")) &&
	    get_string(ps, v, "workflow", "name", &ps->w->name) < 0)
		return -1;
	tasks = json_object_get(root, "tasks");
	if (!json_is_array(tasks))
		return perr(ps, "\"tasks\" must be an array of tasks");
	ps->w->tasks = calloc(json_array_size(tasks) + 1, sizeof(*ps->w->tasks));
	if (!ps->w->tasks)
		return oom(ps);
	json_array_foreach(tasks, i, v)
		if (parse_task(ps, v, i) < 0)
			return -1;
	if (link_producers(ps) < 0)
		return -1;
	return check_cycles(ps);
}

struct xy_workflow *xy_workflow_parse(const char *text, size_t len,
				      const char *label, const char *basedir,
				      char *err, size_t errlen)
{
	struct parse ps = {.label = label, .basedir = basedir ? basedir : "/",
			   .err = err, .errlen = errlen};
	json_error_t jerr;
	json_t *root;

	root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		xy_fail(err, errlen, EINVAL,
			"%s: line %d, column %d: invalid JSON: %s", label,
			jerr.line, jerr.column, jerr.text);
		return NULL;
	}
	ps.w = calloc(1, sizeof(*ps.w));
	if (!ps.w || parse_top(&ps, root) < 0) {
		if (!ps.w)
			oom(&ps);
		xy_workflow_free(ps.w);
		ps.w = NULL;
	}
	json_decref(root);
	strmap_free(&ps.ids);
	strmap_free(&ps.paths);
	return ps.w;
}

struct xy_workflow *xy_workflow_load(const char *path, char *err,
				     size_t errlen)
{
	struct xy_workflow *w = NULL;
	char *text, base[4096];
	size_t len = 0;

	text = xy_read_file(path, MAX_WORKFLOW_BYTES, &len);
	if (!text) {
		xy_fail(err, errlen, errno, "cannot read workflow %s: %s", path,
			strerror(errno));
		return NULL;
	}
	/* Relative paths start at the current directory, as a shell's do. */
	if (!getcwd(base, sizeof base))
		xy_fail(err, errlen, errno, "cannot find the current directory: %s",
			strerror(errno));
	else
		w = xy_workflow_parse(text, len, path, base, err, errlen);
	free(text);
	return w;
}

static void free_files(struct xy_wf_file *f, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(f[i].path);
		free(f[i].as);
	}
	free(f);
}

void xy_workflow_free(struct xy_workflow *w)
{
	if (!w)
		return;
	for (size_t i = 0; i < w->n_tasks; i++) {
		struct xy_wf_task *t = &w->tasks[i];

		free(t->id);
		free(t->command);
		free(t->array_lines);
		free_files(t->inputs, t->n_inputs);
		free_files(t->outputs, t->n_outputs);
		for (size_t j = 0; j < t->n_env; j++) {
			free(t->env[j].name);
			free(t->env[j].value);
		}
		free(t->env);
	}
	for (size_t i = 0; i < w->n_paths; i++)
		free(w->paths[i].full);
	free(w->tasks);
	free(w->paths);
	free(w->name);
	free(w);
}

/* Outputs land at their paths when their tasks end: the directories that
 * will hold them are made before any task runs (temps have none). */
int xy_workflow_output_dirs(const struct xy_workflow *wf, const char *who)
{
	for (size_t i = 0; i < wf->n_paths; i++) {
		const struct xy_wf_path *p = &wf->paths[i];
		char *dir, *slash;
		int rc;

		if (p->producer < 0 || p->temp)
			continue;
		dir = strdup(p->full);
		if (!dir)
			return -1;
		slash = strrchr(dir, '/');
		if (slash && slash != dir)
			*slash = '\0';
		rc = slash && slash != dir ? xy_mkdir_p(dir) : 0;
		if (rc < 0)
			fprintf(stderr, "%s: cannot make directory %s for"
				" \"%s\": %s\n", who, dir, p->written,
				strerror(errno));
		free(dir);
		if (rc < 0)
			return -1;
	}
	return 0;
}

char *xy_wf_subst(const char *s, const char *index, const char *line)
{
	size_t cap = strlen(s) + 1, len = 0;
	char *out = malloc(cap);

	while (out && *s) {
		const char *v = NULL;
		size_t skip = 1, n;

		if (!strncmp(s, XY_WF_INDEX_MARK, strlen(XY_WF_INDEX_MARK)))
			v = index, skip = strlen(XY_WF_INDEX_MARK);
		else if (line && !strncmp(s, XY_WF_LINE_MARK,
					  strlen(XY_WF_LINE_MARK)))
			v = line, skip = strlen(XY_WF_LINE_MARK);
		n = v ? strlen(v) : 1;
		if (len + n + 1 > cap) {
			char *grown = realloc(out, (cap = 2 * (len + n + 1)));

			if (!grown)
				free(out);
			out = grown;
			if (!out)
				break;
		}
		memcpy(out + len, v ? v : s, n);
		len += n;
		s += skip;
	}
	if (out)
		out[len] = '\0';
	return out;
}
