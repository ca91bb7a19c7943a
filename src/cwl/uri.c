/*
 * uri.c: file:// URIs, paths and names (cwl.h). CWL names every File by a
 * location URI and a path; the two must agree for names with spaces,
 * '#', '%' or non-ASCII bytes, which the conformance suite uses.
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cwl.h"
#include "util.h"

/* Unreserved characters and the path's own separators stay as they are. */
static int keep(unsigned char c)
{
	return isalnum(c) || strchr("-._~/!$&'()*+,;=:@", c) != NULL;
}

char *cwl_path_to_uri(const char *path)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(path);
	char *uri = malloc(7 + 3 * n + 1), *o;

	if (!uri)
		return NULL;
	memcpy(uri, "file://", 7);
	o = uri + 7;
	for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
		if (keep(*p)) {
			*o++ = (char)*p;
			continue;
		}
		*o++ = '%';
		*o++ = hex[*p >> 4];
		*o++ = hex[*p & 15];
	}
	*o = '\0';
	return uri;
}

char *cwl_uri_to_path(const char *uri)
{
	const char *p = uri;
	char *path, *end;

	if (strncmp(uri, "file://", 7) != 0)
		return strdup(uri);
	p += 7;
	if (*p != '/') /* file://host/path: the host is ours or empty */
		p = strchr(p, '/') ? strchr(p, '/') : p + strlen(p);
	path = strdup(p);
	if (!path)
		return NULL;
	if ((end = strpbrk(path, "?#"))) /* not part of the path */
		*end = '\0';
	p = path;
	path = cwl_percent_decode(p);
	free((char *)p);
	return path;
}

int cwl_check_basename(const char *base, char *err, size_t errlen)
{
	if (!base || !*base || strchr(base, '/') || !strcmp(base, ".") ||
	    !strcmp(base, ".."))
		return xy_fail(err, errlen, EINVAL, "basename \"%s\" is not a"
			       " plain file name", base ? base : "");
	return 0;
}

int cwl_path_within(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	if (strncmp(path, dir, n))
		return 0;
	return path[n] == '\0' || path[n] == '/' || (n && dir[n - 1] == '/');
}

int cwl_is_class(const json_t *v, const char *cls)
{
	const char *c = json_string_value(json_object_get(v, "class"));

	return c && !strcmp(c, cls);
}

int cwl_is_fileobj(const json_t *v)
{
	return cwl_is_class(v, "File") || cwl_is_class(v, "Directory");
}
