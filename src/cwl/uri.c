/*
 * uri.c: file:// URIs and paths (cwl.h). CWL names every File by a
 * location URI and a path; the two must agree for names with spaces,
 * '#', '%' or non-ASCII bytes, which the conformance suite uses.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "cwl.h"

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

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

char *cwl_uri_to_path(const char *uri)
{
	const char *p = uri;
	char *path, *o;

	if (strncmp(uri, "file://", 7) != 0)
		return strdup(uri);
	p += 7;
	if (*p != '/') /* file://host/path: the host is ours or empty */
		p = strchr(p, '/') ? strchr(p, '/') : p + strlen(p);
	path = malloc(strlen(p) + 1);
	if (!path)
		return NULL;
	for (o = path; *p && *p != '?' && *p != '#'; p++) {
		int hi, lo;

		if (*p == '%' && (hi = hexval(p[1])) >= 0 &&
		    (lo = hexval(p[2])) >= 0) {
			*o++ = (char)(hi << 4 | lo);
			p += 2;
		} else {
			*o++ = *p;
		}
	}
	*o = '\0';
	return path;
}
