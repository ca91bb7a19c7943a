/*
 * yaml.c: reads a CWL document or job (YAML 1.2 or JSON) into jansson
 * values, resolving $import and $include, and remembers where each node
 * came from so that load.c and schema.c can say "FILE:LINE" in messages.
 *
 * The position table is process-wide (one table, no context argument),
 * because cwl_where must work on any json_t without threading a context
 * through every caller: `xylem cwl` is one process per tool. It is keyed by
 * the node's address, so a node freed and reallocated may report a stale
 * position; positions only feed messages, so that is harmless.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "cwl.h"
#include "util.h"

/* $import chains deeper than this are taken as a cycle. */
#define IMPORT_DEPTH_MAX 16
/* Nesting deeper than this is refused rather than risking the stack. */
#define NODES_MAX 1000000 /* nodes in one document, aliases expanded */
#define NEST_MAX 512

/* ------------------------------------------------------ position table */

struct pos {
	const json_t *node;
	int file; /* index into pos_files */
	int line;
};

static struct pos *pos_tab;     /* open addressing, pos_cap a power of 2 */
static size_t pos_cap, pos_len;
static char **pos_files;
static int pos_nfiles;

static size_t pos_hash(const json_t *node)
{
	uintptr_t h = (uintptr_t)node;

	h ^= h >> 17;
	h *= 0x9E3779B97F4A7C15ull;
	return (size_t)(h ^ (h >> 29));
}

static int pos_grow(void)
{
	size_t ncap = pos_cap ? pos_cap * 2 : 1024, i;
	struct pos *n = calloc(ncap, sizeof *n);

	if (!n)
		return -1;
	for (i = 0; i < pos_cap; i++) {
		size_t j;

		if (!pos_tab[i].node)
			continue;
		j = pos_hash(pos_tab[i].node) & (ncap - 1);
		while (n[j].node)
			j = (j + 1) & (ncap - 1);
		n[j] = pos_tab[i];
	}
	free(pos_tab);
	pos_tab = n;
	pos_cap = ncap;
	return 0;
}

static int pos_file(const char *path)
{
	char **n;
	int i;

	for (i = pos_nfiles - 1; i >= 0; i--)
		if (strcmp(pos_files[i], path) == 0)
			return i;
	n = realloc(pos_files, (pos_nfiles + 1) * sizeof *n);
	if (!n)
		return -1;
	pos_files = n;
	pos_files[pos_nfiles] = strdup(path);
	if (!pos_files[pos_nfiles])
		return -1;
	return pos_nfiles++;
}

static void pos_put(const json_t *node, int file, int line)
{
	size_t j;

	if (!node || file < 0 || json_is_true(node) || json_is_false(node) ||
	    json_is_null(node))
		return;
	if ((pos_len + 1) * 2 > pos_cap && pos_grow() < 0)
		return;
	j = pos_hash(node) & (pos_cap - 1);
	while (pos_tab[j].node && pos_tab[j].node != node)
		j = (j + 1) & (pos_cap - 1);
	if (!pos_tab[j].node)
		pos_len++;
	pos_tab[j].node = node;
	pos_tab[j].file = file;
	pos_tab[j].line = line;
}

static const struct pos *pos_get(const json_t *node)
{
	size_t j;

	if (!pos_cap || !node)
		return NULL;
	j = pos_hash(node) & (pos_cap - 1);
	while (pos_tab[j].node) {
		if (pos_tab[j].node == node)
			return &pos_tab[j];
		j = (j + 1) & (pos_cap - 1);
	}
	return NULL;
}

const char *cwl_where(const json_t *node, char *buf, size_t len)
{
	const struct pos *p = pos_get(node);

	if (!len)
		return buf;
	if (p)
		snprintf(buf, len, "%s:%d", pos_files[p->file], p->line);
	else
		snprintf(buf, len, "%s", pos_nfiles ? pos_files[0] : "-");
	return buf;
}

void cwl_where_copy(const json_t *to, const json_t *from)
{
	const struct pos *p = pos_get(from);

	if (p && to != from)
		pos_put(to, p->file, p->line);
}

/* ------------------------------------------------------------- parser */

struct anchor {
	char *name;
	json_t *node;
	size_t weight; /* the nodes it stands for, aliases expanded */
};

struct ld {
	yaml_parser_t parser;
	const char *path;
	int file;
	int depth;  /* $import depth */
	struct anchor *anchors;
	size_t nanchors;
	size_t nodes; /* read so far, each alias counted as what it names */
	char *err;
	size_t errlen;
};

static json_t *doc_load(const char *path, int depth, char *err,
			size_t errlen);

static int next(struct ld *l, yaml_event_t *ev)
{
	if (yaml_parser_parse(&l->parser, ev))
		return 0;
	snprintf(l->err, l->errlen, "%s:%zu: invalid YAML: %s %s", l->path,
		 l->parser.problem_mark.line + 1,
		 l->parser.problem ? l->parser.problem : "syntax error",
		 l->parser.context ? l->parser.context : "");
	return -1;
}

/* Names node for later aliases. It is called once the node is complete,
 * so that an alias inside a node cannot name the node itself (a cycle). */
static int anchor_add(struct ld *l, const yaml_char_t *name, json_t *node,
		      size_t weight)
{
	struct anchor *n;
	char *copy;

	if (!name)
		return 0;
	n = realloc(l->anchors, (l->nanchors + 1) * sizeof *n);
	if (!n)
		return -1;
	l->anchors = n;
	if (!(copy = strdup((const char *)name)))
		return -1;
	n[l->nanchors].name = copy;
	n[l->nanchors].node = json_incref(node);
	n[l->nanchors].weight = weight;
	l->nanchors++;
	return 0;
}

/* An alias shares its node. What later stages make of the document
 * (copies, walks, dumps) grows with the aliases expanded, so their sum
 * is bounded: a "billion laughs" document is refused, not expanded. */
static json_t *alias(struct ld *l, const yaml_event_t *ev)
{
	const char *name = (const char *)ev->data.alias.anchor;
	size_t i;

	for (i = l->nanchors; i > 0; i--) {
		struct anchor *a = &l->anchors[i - 1];

		if (strcmp(a->name, name) != 0)
			continue;
		l->nodes += a->weight;
		if (l->nodes > NODES_MAX) {
			snprintf(l->err, l->errlen, "%s:%zu: aliases expand to"
				 " more than %d nodes", l->path,
				 ev->start_mark.line + 1, NODES_MAX);
			return NULL;
		}
		return json_incref(a->node);
	}
	snprintf(l->err, l->errlen, "%s:%zu: unknown YAML alias '*%s'"
		 " (or one that names the node it is in)", l->path,
		 ev->start_mark.line + 1, name);
	return NULL;
}

static int all_digits(const char *s, const char *set)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!strchr(set, *s))
			return 0;
	return 1;
}

/* A YAML 1.2 core-schema float: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static int is_float(const char *s)
{
	int digits = 0;

	if (*s == '-' || *s == '+')
		s++;
	while (*s >= '0' && *s <= '9')
		s++, digits++;
	if (*s == '.') {
		s++;
		while (*s >= '0' && *s <= '9')
			s++, digits++;
	}
	if (!digits)
		return 0;
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '-' || *s == '+')
			s++;
		if (!(*s >= '0' && *s <= '9'))
			return 0;
		while (*s >= '0' && *s <= '9')
			s++;
	}
	return *s == '\0';
}

static json_t *plain_number(const char *s)
{
	const char *d = (*s == '-' || *s == '+') ? s + 1 : s;
	long long v;
	char *end;

	if (all_digits(d, "0123456789")) {
		errno = 0;
		v = strtoll(s, &end, 10);
		if (errno == ERANGE)
			return json_real(strtod(s, NULL));
		return json_integer(v);
	}
	if (strncmp(s, "0o", 2) == 0 && all_digits(s + 2, "01234567"))
		return json_integer(strtoll(s + 2, NULL, 8));
	if (strncmp(s, "0x", 2) == 0 &&
	    all_digits(s + 2, "0123456789abcdefABCDEF"))
		return json_integer(strtoll(s + 2, NULL, 16));
	if (is_float(s)) {
		double f = strtod(s, NULL);

		if (isfinite(f))
			return json_real(f);
	}
	return NULL;
}

/* A plain scalar by the core schema; anything else is a string. NaN and
 * infinities stay strings, since JSON cannot hold them. */
static json_t *plain(const char *s)
{
	static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
	static const char *const trues[] = {"true", "True", "TRUE"};
	static const char *const falses[] = {"false", "False", "FALSE"};
	json_t *n;
	size_t i;

	for (i = 0; i < 5; i++)
		if (strcmp(s, nulls[i]) == 0)
			return json_null();
	for (i = 0; i < 3; i++) {
		if (strcmp(s, trues[i]) == 0)
			return json_true();
		if (strcmp(s, falses[i]) == 0)
			return json_false();
	}
	n = plain_number(s);
	return n ? n : json_string(s);
}

static json_t *scalar(struct ld *l, const yaml_event_t *ev)
{
	const char *s = (const char *)ev->data.scalar.value;
	const char *tag = (const char *)ev->data.scalar.tag;
	json_t *v;

	if (tag && strcmp(tag, YAML_STR_TAG) == 0)
		v = json_stringn(s, ev->data.scalar.length);
	else if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		v = json_stringn(s, ev->data.scalar.length);
	else
		v = plain(s);
	if (!v) {
		snprintf(l->err, l->errlen, "%s:%zu: scalar is not valid UTF-8",
			 l->path, ev->start_mark.line + 1);
		return NULL;
	}
	pos_put(v, l->file, (int)ev->start_mark.line + 1);
	l->nodes++;
	if (anchor_add(l, ev->data.scalar.anchor, v, 1) < 0) {
		json_decref(v);
		return NULL;
	}
	return v;
}

static json_t *node(struct ld *l, yaml_event_t *ev, int nest);

static json_t *sequence(struct ld *l, yaml_event_t *start, int nest)
{
	json_t *a = json_array(), *item;
	yaml_event_t ev;
	size_t before = l->nodes++;

	pos_put(a, l->file, (int)start->start_mark.line + 1);
	for (;;) {
		if (next(l, &ev) < 0)
			goto fail;
		if (ev.type == YAML_SEQUENCE_END_EVENT) {
			yaml_event_delete(&ev);
			if (anchor_add(l, start->data.sequence_start.anchor, a,
				       l->nodes - before) < 0)
				goto fail;
			return a;
		}
		item = node(l, &ev, nest + 1);
		yaml_event_delete(&ev);
		if (!item || json_array_append_new(a, item) < 0)
			goto fail;
	}
fail:
	json_decref(a);
	return NULL;
}

/* A mapping key must be a scalar; its text is the key whatever it looks
 * like (YAML `1: x` gives the key "1"). */
static char *mapping_key(struct ld *l, yaml_event_t *ev)
{
	json_t *k;
	char *s;

	if (ev->type == YAML_SCALAR_EVENT)
		return strdup((const char *)ev->data.scalar.value);
	if (ev->type == YAML_ALIAS_EVENT) {
		k = alias(l, ev);
		if (!k)
			return NULL;
		s = json_is_string(k) ? strdup(json_string_value(k)) : NULL;
		json_decref(k);
		if (s)
			return s;
	}
	snprintf(l->err, l->errlen, "%s:%zu: a mapping key must be a scalar",
		 l->path, ev->start_mark.line + 1);
	return NULL;
}

static json_t *directive(struct ld *l, json_t *o, int line);

static json_t *mapping(struct ld *l, yaml_event_t *start, int nest)
{
	json_t *o = json_object(), *v;
	yaml_event_t ev;
	int line = (int)start->start_mark.line + 1;
	char *key;

	size_t before = l->nodes++;

	pos_put(o, l->file, line);
	for (;;) {
		if (next(l, &ev) < 0)
			goto fail;
		if (ev.type == YAML_MAPPING_END_EVENT) {
			yaml_event_delete(&ev);
			break;
		}
		key = mapping_key(l, &ev);
		yaml_event_delete(&ev);
		if (!key || next(l, &ev) < 0) {
			free(key);
			goto fail;
		}
		v = node(l, &ev, nest + 1);
		yaml_event_delete(&ev);
		if (!v || json_object_set_new(o, key, v) < 0) {
			free(key);
			goto fail;
		}
		free(key);
	}
	if (json_object_size(o) == 1 && (json_object_get(o, "$import") ||
					 json_object_get(o, "$include")))
		o = directive(l, o, line);
	if (o && anchor_add(l, start->data.mapping_start.anchor, o,
			    l->nodes - before) < 0)
		goto fail;
	return o;
fail:
	json_decref(o);
	return NULL;
}

static json_t *node(struct ld *l, yaml_event_t *ev, int nest)
{
	if (nest > NEST_MAX) {
		snprintf(l->err, l->errlen, "%s:%zu: nested too deeply",
			 l->path, ev->start_mark.line + 1);
		return NULL;
	}
	switch (ev->type) {
	case YAML_SCALAR_EVENT:
		return scalar(l, ev);
	case YAML_ALIAS_EVENT:
		return alias(l, ev);
	case YAML_SEQUENCE_START_EVENT:
		return sequence(l, ev, nest);
	case YAML_MAPPING_START_EVENT:
		return mapping(l, ev, nest);
	default:
		snprintf(l->err, l->errlen, "%s:%zu: unexpected YAML event",
			 l->path, ev->start_mark.line + 1);
		return NULL;
	}
}

/* ------------------------------------------------- $import, $include */

/* The file a reference names: a file:// URI or a path relative to the
 * directory of the document holding it. */
static char *ref_path(const char *doc, const char *ref)
{
	const char *slash = strrchr(doc, '/');
	char *out;

	if (strncmp(ref, "file://", 7) == 0)
		return cwl_uri_to_path(ref);
	if (ref[0] == '/' || !slash)
		return strdup(ref);
	if (asprintf(&out, "%.*s/%s", (int)(slash - doc), doc, ref) < 0)
		return NULL;
	return out;
}

static json_t *include_text(struct ld *l, const char *file, int line)
{
	FILE *f = fopen(file, "rb");
	char *buf = NULL;
	size_t len = 0;
	json_t *s = NULL;
	FILE *m;

	if (!f) {
		snprintf(l->err, l->errlen, "%s:%d: $include '%s': %s",
			 l->path, line, file, strerror(errno));
		return NULL;
	}
	m = open_memstream(&buf, &len);
	if (m) {
		char chunk[8192];
		size_t n;

		while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
			fwrite(chunk, 1, n, m);
		fclose(m);
		s = json_stringn(buf, len);
	}
	fclose(f);
	free(buf);
	if (!s)
		snprintf(l->err, l->errlen, "%s:%d: $include '%s': not text",
			 l->path, line, file);
	return s;
}

/* The node of doc whose "id" or "name" is the fragment, searching
 * depth first. */
static json_t *find_fragment(json_t *doc, const char *frag)
{
	const char *id, *k;
	json_t *v, *hit;
	size_t i;

	if (json_is_object(doc)) {
		id = json_string_value(json_object_get(doc, "id"));
		if (!id)
			id = json_string_value(json_object_get(doc, "name"));
		if (id) {
			const char *h = strrchr(id, '#');

			if (strcmp(h ? h + 1 : id, frag) == 0)
				return doc;
		}
		json_object_foreach(doc, k, v)
			if ((hit = find_fragment(v, frag)))
				return hit;
	} else if (json_is_array(doc)) {
		json_array_foreach(doc, i, v)
			if ((hit = find_fragment(v, frag)))
				return hit;
	}
	return NULL;
}

static json_t *import_doc(struct ld *l, const char *ref, int line)
{
	char *r = strdup(ref), *hash, *file;
	json_t *doc = NULL, *hit;

	if (!r)
		return NULL;
	hash = strchr(r, '#');
	if (hash)
		*hash++ = '\0';
	file = ref_path(l->path, r);
	if (file)
		doc = doc_load(file, l->depth + 1, l->err, l->errlen);
	if (doc && hash && *hash) {
		hit = find_fragment(doc, hash);
		if (!hit)
			snprintf(l->err, l->errlen,
				 "%s:%d: $import '%s': no '#%s' in it",
				 l->path, line, ref, hash);
		json_incref(hit);
		json_decref(doc);
		doc = hit;
	}
	free(file);
	free(r);
	return doc;
}

/* Replaces {"$import": ref} by the document ref names and
 * {"$include": ref} by that file's text. */
static json_t *directive(struct ld *l, json_t *o, int line)
{
	const json_t *imp = json_object_get(o, "$import");
	const json_t *ref = imp ? imp : json_object_get(o, "$include");
	json_t *out = NULL;
	char *file;

	if (!json_is_string(ref)) {
		snprintf(l->err, l->errlen, "%s:%d: %s expects a string",
			 l->path, line, imp ? "$import" : "$include");
	} else if (l->depth >= IMPORT_DEPTH_MAX) {
		snprintf(l->err, l->errlen, "%s:%d: $import nested too deeply",
			 l->path, line);
	} else if (imp) {
		out = import_doc(l, json_string_value(ref), line);
	} else {
		file = ref_path(l->path, json_string_value(ref));
		if (file)
			out = include_text(l, file, line);
		free(file);
	}
	json_decref(o);
	return out;
}

/* ---------------------------------------------------------- documents */

static json_t *yaml_doc(struct ld *l)
{
	yaml_event_t ev;
	json_t *root = NULL;

	for (;;) {
		if (next(l, &ev) < 0)
			break;
		if (ev.type == YAML_STREAM_END_EVENT) {
			yaml_event_delete(&ev);
			if (!root)
				root = json_null();
			break;
		}
		if (ev.type == YAML_SCALAR_EVENT ||
		    ev.type == YAML_SEQUENCE_START_EVENT ||
		    ev.type == YAML_MAPPING_START_EVENT ||
		    ev.type == YAML_ALIAS_EVENT) {
			/* Only the first document of a stream counts. */
			if (root) {
				yaml_event_delete(&ev);
				break;
			}
			root = node(l, &ev, 0);
			if (!root) {
				yaml_event_delete(&ev);
				break;
			}
		}
		yaml_event_delete(&ev);
	}
	return root;
}

static json_t *doc_load(const char *path, int depth, char *err,
			size_t errlen)
{
	struct ld l = {.path = path, .depth = depth, .err = err,
		       .errlen = errlen};
	json_error_t jerr;
	json_t *root;
	size_t i;
	FILE *f = fopen(path, "rb");

	if (!f) {
		xy_fail(err, errlen, EINVAL, "%s: cannot open: %s", path,
			 strerror(errno));
		return NULL;
	}
	l.file = pos_file(path);
	yaml_parser_initialize(&l.parser);
	yaml_parser_set_input_file(&l.parser, f);
	root = yaml_doc(&l);
	yaml_parser_delete(&l.parser);
	fclose(f);
	for (i = 0; i < l.nanchors; i++) {
		free(l.anchors[i].name);
		json_decref(l.anchors[i].node);
	}
	free(l.anchors);
	/* libyaml is YAML 1.1 and refuses a little valid JSON (tabs as
	 * indentation, for one); jansson gets a second try. */
	if (!root && strstr(err, "invalid YAML")) {
		root = json_load_file(path, JSON_DECODE_ANY, &jerr);
		if (root)
			pos_put(root, l.file, 1);
	}
	return root;
}

json_t *cwl_yaml_load(const char *path, char *err, size_t errlen)
{
	if (errlen)
		err[0] = '\0';
	return doc_load(path, 0, err, errlen);
}
