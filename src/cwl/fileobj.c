/*
 * fileobj.c: CWL File and Directory objects. Resolves locations (file://
 * URIs through uri.c, relative ones percent-decoded) to paths, completes
 * objects from the file system (names, size, sha1 checksum), reads
 * contents and listings, writes File and Directory literals under the
 * scratch directory, and, for a job's inputs, finds secondaryFiles and
 * checks formats. load.c
 * calls cwl_inputs_files after schema.c has built the input object.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cwl.h"
#include "util.h"

/* Literal trees and listings deeper than this are refused. */
#define TREE_DEPTH_MAX 64

/* ------------------------------------------------ locations and paths */

char *cwl_percent_decode(const char *s)
{
	char *out = malloc(strlen(s) + 1), *o = out;

	if (!out)
		return NULL;
	for (; *s; s++) {
		if (*s == '%' && xy_hexval(s[1]) >= 0 && xy_hexval(s[2]) >= 0) {
			*o++ = (char)(xy_hexval(s[1]) * 16 + xy_hexval(s[2]));
			s += 2;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
	return out;
}

static int has_scheme(const char *s)
{
	return strstr(s, "://") != NULL;
}

/* path made absolute against base (NULL: the working directory). */
static char *absolute(const char *path, const char *base)
{
	char cwd[PATH_MAX], *out;

	if (path[0] == '/')
		return strdup(path);
	if (!base)
		base = getcwd(cwd, sizeof cwd) ? cwd : ".";
	if (strncmp(path, "./", 2) == 0)
		path += 2;
	if (asprintf(&out, "%s/%s", base, path) < 0)
		return NULL;
	return out;
}

static void set_path(json_t *obj, char *path)
{
	char *uri = path ? cwl_path_to_uri(path) : NULL;

	if (uri) {
		json_object_set_new(obj, "path", json_string(path));
		json_object_set_new(obj, "location", json_string(uri));
	}
	free(uri);
	free(path);
}

static void resolve_one(json_t *obj, const char *base)
{
	const char *loc = json_string_value(json_object_get(obj, "location"));
	const char *path = json_string_value(json_object_get(obj, "path"));
	char *dec;

	if (loc && has_scheme(loc)) {
		if (strncmp(loc, "file://", 7) == 0)
			set_path(obj, cwl_uri_to_path(loc));
	} else if (loc) {
		dec = cwl_percent_decode(loc);
		set_path(obj, dec ? absolute(dec, base) : NULL);
		free(dec);
	} else if (path) {
		set_path(obj, absolute(path, base));
	}
}

void cwl_files_resolve(json_t *v, const char *base)
{
	const char *cls, *k;
	json_t *x;
	size_t i;

	if (json_is_array(v)) {
		json_array_foreach(v, i, x)
			cwl_files_resolve(x, base);
		return;
	}
	if (!json_is_object(v))
		return;
	cls = json_string_value(json_object_get(v, "class"));
	if (cls && (strcmp(cls, "File") == 0 || strcmp(cls, "Directory") == 0))
		resolve_one(v, base);
	json_object_foreach(v, k, x)
		cwl_files_resolve(x, base);
}

/* ---------------------------------------------------------- completion */

/* Python's os.path.splitext on a basename: leading dots do not start an
 * extension. */
static void name_parts(json_t *obj, const char *base)
{
	const char *s = base, *dot;

	while (*s == '.')
		s++;
	dot = strrchr(s, '.');
	if (!dot)
		dot = base + strlen(base);
	json_object_set_new(obj, "nameroot", json_stringn(base, dot - base));
	json_object_set_new(obj, "nameext", json_string(dot));
}

static int sha1_file(const char *path, char out[41])
{
	unsigned char md[EVP_MAX_MD_SIZE], buf[65536];
	unsigned int mdlen = 0, i;
	EVP_MD_CTX *ctx;
	int fd = open(path, O_RDONLY | O_CLOEXEC), rc = -1;
	ssize_t n;

	if (fd < 0)
		return -1;
	ctx = EVP_MD_CTX_new();
	if (ctx && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL)) {
		while ((n = read(fd, buf, sizeof buf)) > 0)
			EVP_DigestUpdate(ctx, buf, (size_t)n);
		if (n == 0 && EVP_DigestFinal_ex(ctx, md, &mdlen))
			rc = 0;
	}
	EVP_MD_CTX_free(ctx);
	close(fd);
	for (i = 0; rc == 0 && i < mdlen; i++)
		sprintf(out + 2 * i, "%02x", md[i]);
	return rc;
}

static char *object_path(const json_t *obj)
{
	const char *path = json_string_value(json_object_get(obj, "path"));
	const char *loc = json_string_value(json_object_get(obj, "location"));
	char *dec, *abs;

	if (path)
		return absolute(path, NULL);
	if (!loc || (has_scheme(loc) && strncmp(loc, "file://", 7) != 0))
		return NULL;
	dec = has_scheme(loc) ? cwl_uri_to_path(loc) : cwl_percent_decode(loc);
	abs = dec ? absolute(dec, NULL) : NULL;
	free(dec);
	return abs;
}

static void file_names(json_t *obj, const char *path)
{
	const char *slash = strrchr(path, '/');
	const char *base = json_string_value(json_object_get(obj, "basename"));

	if (!base) {
		json_object_set_new(obj, "basename", json_string(slash + 1));
		base = slash + 1;
	}
	json_object_set_new(obj, "dirname",
			    json_stringn(path, slash > path ? slash - path : 1));
	name_parts(obj, json_string_value(json_object_get(obj, "basename")));
}

int cwl_file_complete(json_t *obj, int checksum, char *err, size_t errlen)
{
	const char *cls = json_string_value(json_object_get(obj, "class"));
	int dir = cls && strcmp(cls, "Directory") == 0;
	char *path = object_path(obj), sum[41];
	struct stat st;

	if (!path) {
		xy_fail(err, errlen, EINVAL, "%s has no local path or location",
			 dir ? "Directory" : "File");
		return -1;
	}
	if (stat(path, &st) < 0 || (dir ? !S_ISDIR(st.st_mode) :
				     !S_ISREG(st.st_mode))) {
		xy_fail(err, errlen, EINVAL, "%s not found: %s", dir ? "Directory" :
			 "File", path);
		free(path);
		return -1;
	}
	json_object_set_new(obj, "class", json_string(dir ? "Directory" :
						      "File"));
	if (dir) {
		if (!json_object_get(obj, "basename"))
			json_object_set_new(obj, "basename",
					    json_string(strrchr(path, '/') + 1));
	} else {
		file_names(obj, path);
		json_object_set_new(obj, "size", json_integer(st.st_size));
		if (checksum && sha1_file(path, sum) == 0)
			json_object_set_new(obj, "checksum",
					    json_sprintf("sha1$%s", sum));
	}
	set_path(obj, path);
	return 0;
}

int cwl_file_load_contents(json_t *file, char *err, size_t errlen)
{
	char *path = object_path(file), *buf;
	ssize_t n = -1;
	json_t *s = NULL;
	int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;

	buf = malloc(CWL_CONTENTS_MAX + 1);
	if (fd >= 0 && buf) {
		size_t got = 0;

		while (got <= CWL_CONTENTS_MAX &&
		       (n = read(fd, buf + got, CWL_CONTENTS_MAX + 1 - got)) > 0)
			got += (size_t)n;
		n = n < 0 ? -1 : (ssize_t)got;
	}
	if (n > CWL_CONTENTS_MAX)
		xy_fail(err, errlen, EINVAL, "loadContents: %s is larger than %d "
			 "bytes", path, CWL_CONTENTS_MAX);
	else if (n >= 0 && !(s = json_stringn(buf, (size_t)n)))
		xy_fail(err, errlen, EINVAL, "loadContents: %s is not UTF-8 text",
			 path);
	else if (n < 0)
		xy_fail(err, errlen, EINVAL, "loadContents: cannot read %s: %s",
			 path ? path : "a File without a path", strerror(errno));
	if (fd >= 0)
		close(fd);
	free(buf);
	free(path);
	if (!s)
		return -1;
	json_object_set_new(file, "contents", s);
	return 0;
}

/* ------------------------------------------------------------ listing */

static int listing_at(json_t *dir, const char *path, int deep, int depth,
		      char *err, size_t errlen);

/* One entry of a listing, completed, and listed itself when deep. */
static json_t *listing_entry(const char *p, int deep, int depth, char *err,
			     size_t errlen)
{
	struct stat st;
	json_t *e;

	if (stat(p, &st) < 0) {
		xy_fail(err, errlen, EINVAL, "listing %s: %s", p, strerror(errno));
		return NULL;
	}
	e = json_pack("{s:s,s:s}", "class", S_ISDIR(st.st_mode) ?
		      "Directory" : "File", "path", p);
	if (cwl_file_complete(e, 0, err, errlen) < 0)
		goto fail;
	if (deep && S_ISDIR(st.st_mode)) {
		if (depth >= TREE_DEPTH_MAX) {
			xy_fail(err, errlen, EINVAL, "listing %s: too deep", p);
			goto fail;
		}
		if (listing_at(e, p, deep, depth + 1, err, errlen) < 0)
			goto fail;
	}
	return e;
fail:
	json_decref(e);
	return NULL;
}

static int listing_at(json_t *dir, const char *path, int deep, int depth,
		      char *err, size_t errlen)
{
	struct dirent **ents = NULL;
	json_t *list = json_array(), *e;
	int n = scandir(path, &ents, NULL, alphasort), i, rc = 0;
	char *p;

	if (n < 0) {
		xy_fail(err, errlen, EINVAL, "listing %s: %s", path, strerror(errno));
		json_decref(list);
		return -1;
	}
	for (i = 0; i < n; i++) {
		const char *name = ents[i]->d_name;

		if (!rc && strcmp(name, ".") != 0 && strcmp(name, "..") != 0 &&
		    asprintf(&p, "%s/%s", path, name) >= 0) {
			e = listing_entry(p, deep, depth, err, errlen);
			if (!e)
				rc = -1;
			else
				json_array_append_new(list, e);
			free(p);
		}
		free(ents[i]);
	}
	free(ents);
	json_object_set_new(dir, "listing", list);
	return rc;
}

int cwl_dir_listing(json_t *dir, const char *depth, char *err, size_t errlen)
{
	char *path;
	int rc;

	if (!depth || strcmp(depth, "no_listing") == 0)
		return 0;
	path = object_path(dir);
	if (!path) {
		xy_fail(err, errlen, EINVAL, "listing a Directory without a path");
		return -1;
	}
	rc = listing_at(dir, path, strcmp(depth, "deep_listing") == 0, 0,
			err, errlen);
	free(path);
	return rc;
}

char *cwl_secondary_name(const char *basename, const char *pattern)
{
	size_t len = strlen(basename);
	char *out;

	/* Each '^' drops one extension; with none left to drop, the rest of
	 * the pattern is simply appended. */
	while (*pattern == '^') {
		const char *dot = memrchr(basename, '.', len);

		pattern++;
		if (!dot) {
			while (*pattern == '^')
				pattern++;
			break;
		}
		len = (size_t)(dot - basename);
	}
	if (asprintf(&out, "%.*s%s", (int)len, basename, pattern) < 0)
		return NULL;
	return out;
}

/* ------------------------------------------------------------ literals */

static int write_text(const char *path, const json_t *contents, char *err,
		      size_t errlen)
{
	const char *s = json_string_value(contents);
	size_t len = json_string_length(contents);
	FILE *f = fopen(path, "wb");
	int rc;

	if (!f) {
		xy_fail(err, errlen, EINVAL, "writing %s: %s", path, strerror(errno));
		return -1;
	}
	rc = (len && fwrite(s ? s : "", 1, len, f) != len) ? -1 : 0;
	if (fclose(f) != 0 || rc < 0) {
		xy_fail(err, errlen, EINVAL, "writing %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static int place(json_t *obj, const char *dir, int depth, char *err,
		 size_t errlen);

static int place_dir(json_t *obj, const char *target, int depth, char *err,
		     size_t errlen)
{
	json_t *e;
	size_t i;

	if (mkdir(target, 0755) < 0 && errno != EEXIST) {
		xy_fail(err, errlen, EINVAL, "mkdir %s: %s", target, strerror(errno));
		return -1;
	}
	json_array_foreach(json_object_get(obj, "listing"), i, e)
		if (place(e, target, depth + 1, err, errlen) < 0)
			return -1;
	return 0;
}

/* Puts obj (a literal, or an existing File or Directory named in a
 * literal Directory's listing) into dir under its basename, and points
 * obj at the new place. */
static int place(json_t *obj, const char *dir, int depth, char *err,
		 size_t errlen)
{
	const char *cls = json_string_value(json_object_get(obj, "class"));
	const char *base = json_string_value(json_object_get(obj, "basename"));
	char *src = object_path(obj), *target = NULL;
	int isdir = cls && strcmp(cls, "Directory") == 0, rc = -1;

	if (!base && src)
		base = strrchr(src, '/') + 1;
	if (base && cwl_check_basename(base, err, errlen) < 0) {
		free(src);
		return -1;
	}
	if (depth > TREE_DEPTH_MAX || !json_is_object(obj) || !cls) {
		xy_fail(err, errlen, EINVAL, "a Directory literal's listing holds "
			 "something that is not a File or Directory");
	} else if (asprintf(&target, "%s/%s", dir, base ? base : (isdir ?
			    "dir" : "literal")) < 0) {
		target = NULL;
	} else if (isdir && !src) {
		rc = place_dir(obj, target, depth, err, errlen);
	} else if (isdir) {
		rc = symlink(src, target);
		if (rc < 0)
			xy_fail(err, errlen, EINVAL, "linking %s: %s", target,
				 strerror(errno));
	} else if (!src) {
		rc = write_text(target, json_object_get(obj, "contents"), err,
				errlen);
	} else {
		rc = cwl_copy_path(src, target, err, errlen);
	}
	if (rc == 0) {
		json_object_del(obj, "path");
		json_object_del(obj, "location");
		set_path(obj, target);
		target = NULL;
		rc = cwl_file_complete(obj, !isdir, err, errlen);
	}
	free(target);
	free(src);
	return rc;
}

static int is_literal(const json_t *obj)
{
	return !json_object_get(obj, "location") &&
	       !json_object_get(obj, "path");
}

/* A File given by its contents or a Directory by its listing gets a real
 * file under scratch, so that every object reaching exec has a path. */
static int write_literal(json_t *obj, const char *scratch, char *err,
			 size_t errlen)
{
	char *dir;
	int rc;

	if (!scratch) {
		xy_fail(err, errlen, EINVAL, "a File or Directory literal needs a "
			 "scratch directory");
		return -1;
	}
	if (asprintf(&dir, "%s/literalXXXXXX", scratch) < 0)
		return -1;
	if (!mkdtemp(dir)) {
		xy_fail(err, errlen, EINVAL, "mkdtemp %s: %s", dir, strerror(errno));
		free(dir);
		return -1;
	}
	rc = place(obj, dir, 0, err, errlen);
	free(dir);
	return rc;
}

/* ------------------------------------------------------- job's inputs */

struct walk {
	const json_t *tool;
	json_t *job;
	const char *scratch;
	struct cwl_expr *x;
	int phase; /* 1: complete and read; 2: secondaryFiles and format */
	int attached; /* secondaryFiles must be there already (a step's) */
	char *err;
	size_t errlen;
};

static int walk(struct walk *w, json_t *v, const json_t *t,
		const json_t *holder);

static struct cwl_expr *expr(struct walk *w)
{
	if (!w->x)
		w->x = cwl_expr_new(w->tool, w->err, w->errlen);
	return w->x;
}

/* The value of a field that may be an expression, evaluated with self. */
static json_t *eval(struct walk *w, const json_t *v, const json_t *self)
{
	if (!json_is_string(v) || cwl_expr_has(json_string_value(v)) <= 0)
		return json_incref((json_t *)v);
	if (!expr(w))
		return NULL;
	return cwl_expr_eval(w->x, json_string_value(v), w->job, self, NULL,
			     w->err, w->errlen);
}

/* In a step's job (w->attached), an object that an earlier step or the
 * workflow's own inputs completed is taken as it is: its file may live
 * only on a worker (a temp, docs/cwl.md "Workflows"). */
static int trusted(const struct walk *w, const json_t *o)
{
	return w->attached && json_is_string(json_object_get(o, "path")) &&
	       json_is_string(json_object_get(o, "basename")) &&
	       (!cwl_is_class(o, "File") ||
		(json_object_get(o, "size") && json_object_get(o, "checksum")));
}

static int file_phase1(struct walk *w, json_t *f, const json_t *holder)
{
	const json_t *ib = json_object_get(holder, "inputBinding");
	json_t *sf;
	size_t i;

	if (trusted(w, f)) {
		/* as completed before */
	} else if (is_literal(f)) {
		if (write_literal(f, w->scratch, w->err, w->errlen) < 0)
			return -1;
	} else if (cwl_file_complete(f, 1, w->err, w->errlen) < 0) {
		return -1;
	}
	json_array_foreach(json_object_get(f, "secondaryFiles"), i, sf) {
		if (trusted(w, sf))
			continue;
		if (is_literal(sf) ?
		    write_literal(sf, w->scratch, w->err, w->errlen) < 0 :
		    cwl_file_complete(sf, 1, w->err, w->errlen) < 0)
			return -1;
	}
	if (json_is_true(json_object_get(holder, "loadContents")) ||
	    json_is_true(json_object_get(ib, "loadContents")))
		return cwl_file_load_contents(f, w->err, w->errlen);
	return 0;
}

static int has_secondary(const json_t *f, const char *basename)
{
	const json_t *s;
	size_t i;

	json_array_foreach(json_object_get(f, "secondaryFiles"), i, s) {
		const char *b = json_string_value(json_object_get(s,
								  "basename"));

		if (b && strcmp(b, basename) == 0)
			return 1;
	}
	return 0;
}

/* One name a secondaryFiles pattern gave: a string (a file beside the
 * primary) or a File/Directory object. */
static int add_secondary(struct walk *w, json_t *f, const json_t *name,
			 int required)
{
	const char *dir = json_string_value(json_object_get(f, "dirname"));
	json_t *sfs = json_object_get(f, "secondaryFiles"), *o;
	struct stat st;
	char *p;

	if (json_is_object(name)) {
		o = json_deep_copy(name);
		if (is_literal(o) ? write_literal(o, w->scratch, w->err,
						  w->errlen) < 0 :
		    cwl_file_complete(o, 1, w->err, w->errlen) < 0) {
			json_decref(o);
			return -1;
		}
		return json_array_append_new(sfs, o);
	}
	if (!json_is_string(name) || !json_string_length(name))
		return 0;
	if (has_secondary(f, json_string_value(name)))
		return 0;
	if (w->attached) {
		if (required)
			snprintf(w->err, w->errlen, "missing required secondary "
				 "file '%s' of %s", json_string_value(name),
				 json_string_value(json_object_get(f, "path")));
		return required ? -1 : 0;
	}
	if (asprintf(&p, "%s/%s", dir, json_string_value(name)) < 0)
		return -1;
	if (stat(p, &st) < 0) {
		if (required)
			snprintf(w->err, w->errlen, "missing required secondary "
				 "file '%s' of %s", json_string_value(name),
				 json_string_value(json_object_get(f, "path")));
		free(p);
		return required ? -1 : 0;
	}
	o = json_pack("{s:s,s:s}", "class", S_ISDIR(st.st_mode) ? "Directory" :
		      "File", "path", p);
	free(p);
	if (cwl_file_complete(o, 1, w->err, w->errlen) < 0) {
		json_decref(o);
		return -1;
	}
	return json_array_append_new(sfs, o);
}

static int secondary_one(struct walk *w, json_t *f, const json_t *entry)
{
	const char *pat = json_string_value(json_object_get(entry, "pattern"));
	json_t *req = eval(w, json_object_get(entry, "required"), f);
	json_t *names, *n;
	int required, rc = 0;
	size_t i;

	if (!req)
		return -1;
	required = json_is_true(req) || (json_is_string(req) &&
					  json_string_length(req));
	json_decref(req);
	if (cwl_expr_has(pat) > 0) {
		names = eval(w, json_object_get(entry, "pattern"), f);
		if (!names)
			return -1;
	} else {
		char *s = cwl_secondary_name(json_string_value(json_object_get(
			f, "basename")), pat);

		names = json_string(s ? s : "");
		free(s);
	}
	if (json_is_array(names)) {
		json_array_foreach(names, i, n)
			if (rc == 0)
				rc = add_secondary(w, f, n, required);
	} else if (!json_is_null(names)) {
		rc = add_secondary(w, f, names, required);
	}
	json_decref(names);
	return rc;
}

/* The formats a parameter allows, expanded; NULL with err on failure. */
static json_t *allowed_formats(struct walk *w, const json_t *fmt)
{
	json_t *v = eval(w, fmt, NULL), *out;

	if (!v)
		return NULL;
	out = cwl_format_expand(v, json_object_get(w->tool, "$namespaces"));
	json_decref(v);
	if (json_is_string(out)) {
		json_t *a = json_array();

		json_array_append_new(a, out);
		out = a;
	}
	return out;
}

/* The file's format must be one the parameter allows. Without an
 * ontology reasoner a mismatch is let through when the tool names
 * ontologies ($schemas), since the format may be a subclass there. */
static int check_format(struct walk *w, json_t *f, const json_t *fmt)
{
	const json_t *ns = json_object_get(w->tool, "$namespaces");
	json_t *allowed = allowed_formats(w, fmt), *have, *a;
	int ok = 0;
	size_t i;

	if (!allowed)
		return -1;
	if (!json_object_get(f, "format")) {
		snprintf(w->err, w->errlen, "File %s has no 'format'; expected "
			 "one of the parameter's formats",
			 json_string_value(json_object_get(f, "path")));
		json_decref(allowed);
		return -1;
	}
	have = cwl_format_expand(json_object_get(f, "format"), ns);
	json_object_set(f, "format", have);
	json_array_foreach(allowed, i, a)
		if (json_equal(a, have))
			ok = 1;
	if (!ok && !json_object_get(w->tool, "$schemas")) {
		char *d = json_dumps(allowed, JSON_COMPACT);

		snprintf(w->err, w->errlen, "File %s has format %s, expected "
			 "one of %s", json_string_value(json_object_get(f,
			 "path")), json_string_value(have), d ? d : "?");
		free(d);
	}
	ok = ok || json_object_get(w->tool, "$schemas");
	json_decref(have);
	json_decref(allowed);
	return ok ? 0 : -1;
}

static int file_phase2(struct walk *w, json_t *f, const json_t *holder)
{
	const json_t *sfs = json_object_get(holder, "secondaryFiles"), *e;
	const json_t *fmt = json_object_get(holder, "format");
	size_t i;

	if (json_array_size(sfs) && !json_object_get(f, "secondaryFiles"))
		json_object_set_new(f, "secondaryFiles", json_array());
	json_array_foreach(sfs, i, e)
		if (secondary_one(w, f, e) < 0)
			return -1;
	if (fmt && !json_is_null(fmt))
		return check_format(w, f, fmt);
	return 0;
}

static const char *listing_depth(struct walk *w, const json_t *holder)
{
	const json_t *req = cwl_requirement(w->tool, "LoadListingRequirement",
					    NULL);
	const char *d = json_string_value(json_object_get(holder,
							  "loadListing"));

	if (!d)
		d = json_string_value(json_object_get(req, "loadListing"));
	return d;
}

/* A listing the job gives for an existing Directory is kept, its entries
 * completed. */
static int complete_listing(struct walk *w, json_t *d, int depth)
{
	json_t *e;
	size_t i;

	if (depth > TREE_DEPTH_MAX)
		return 0;
	json_array_foreach(json_object_get(d, "listing"), i, e) {
		if (trusted(w, e))
			continue;
		if (is_literal(e) || cwl_file_complete(e, 0, w->err,
						       w->errlen) < 0 ||
		    complete_listing(w, e, depth + 1) < 0) {
			if (is_literal(e))
				snprintf(w->err, w->errlen, "a literal in the "
					 "listing of an existing Directory");
			return -1;
		}
	}
	return 0;
}

static int dir_in(struct walk *w, json_t *d, const json_t *holder)
{
	const char *depth = listing_depth(w, holder);

	if (w->phase != 1)
		return 0;
	if (is_literal(d) && !trusted(w, d))
		return write_literal(d, w->scratch, w->err, w->errlen);
	if ((!trusted(w, d) && cwl_file_complete(d, 0, w->err, w->errlen) < 0)
	    || complete_listing(w, d, 0) < 0)
		return -1;
	if (depth && strcmp(depth, "no_listing") != 0 &&
	    !json_object_get(d, "listing"))
		return cwl_dir_listing(d, depth, w->err, w->errlen);
	return 0;
}

/* An Any value: every File and Directory in it is completed. */
static int walk_any(struct walk *w, json_t *v)
{
	const char *cls = json_string_value(json_object_get(v, "class"));
	const char *k;
	json_t *x;
	size_t i;

	if (cls && strcmp(cls, "File") == 0)
		return w->phase == 1 ? file_phase1(w, v, NULL) : 0;
	if (cls && strcmp(cls, "Directory") == 0)
		return dir_in(w, v, NULL);
	if (json_is_array(v)) {
		json_array_foreach(v, i, x)
			if (walk_any(w, x) < 0)
				return -1;
	} else if (json_is_object(v)) {
		json_object_foreach(v, k, x)
			if (walk_any(w, x) < 0)
				return -1;
	}
	return 0;
}

static int walk_record(struct walk *w, json_t *v, const json_t *t)
{
	const json_t *f;
	json_t *fv;
	size_t i;

	json_array_foreach(json_object_get(t, "fields"), i, f) {
		fv = json_object_get(v, json_string_value(json_object_get(f,
								       "name")));
		if (fv && walk(w, fv, json_object_get(f, "type"), f) < 0)
			return -1;
	}
	return 0;
}

static int walk(struct walk *w, json_t *v, const json_t *t,
		const json_t *holder)
{
	const char *kind;
	const json_t *alt;
	json_t *x;
	size_t i;

	if (json_is_null(v) || !t)
		return 0;
	if (json_is_array(t)) {
		json_array_foreach(t, i, alt)
			if (cwl_type_match(alt, v))
				return walk(w, v, alt, holder);
		return 0;
	}
	kind = json_is_string(t) ? json_string_value(t) :
	       json_string_value(json_object_get(t, "type"));
	if (!kind)
		return 0;
	if (strcmp(kind, "File") == 0)
		return w->phase == 1 ? file_phase1(w, v, holder) :
		       file_phase2(w, v, holder);
	if (strcmp(kind, "Directory") == 0)
		return dir_in(w, v, holder);
	if (strcmp(kind, "Any") == 0)
		return walk_any(w, v);
	if (strcmp(kind, "record") == 0)
		return walk_record(w, v, t);
	if (strcmp(kind, "array") == 0 && json_is_array(v))
		json_array_foreach(v, i, x)
			if (walk(w, x, json_object_get(t, "items"), holder) < 0)
				return -1;
	return 0;
}

int cwl_inputs_files(const json_t *tool, json_t *job, const char *scratch,
		     char *err, size_t errlen)
{
	return cwl__inputs_files(tool, job, scratch, 0, err, errlen);
}

int cwl__inputs_files(const json_t *tool, json_t *job, const char *scratch,
		      int attached, char *err, size_t errlen)
{
	struct walk w = {.tool = tool, .job = job, .scratch = scratch,
			 .attached = attached, .err = err, .errlen = errlen};
	const json_t *p;
	char where[512];
	size_t i;
	int rc = 0;

	for (w.phase = 1; rc == 0 && w.phase <= 2; w.phase++) {
		json_array_foreach(json_object_get(tool, "inputs"), i, p) {
			const char *id = json_string_value(json_object_get(p,
									   "id"));

			if (walk(&w, json_object_get(job, id),
				 json_object_get(p, "type"), p) < 0) {
				char *why = strdup(err);

				xy_fail(err, errlen, EINVAL, "%s: input '%s': %s",
					 cwl_where(p, where, sizeof where), id,
					 why ? why : "");
				free(why);
				rc = -1;
				break;
			}
		}
	}
	cwl_expr_free(w.x);
	return rc;
}
