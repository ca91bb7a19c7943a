/*
 * simplecmd.c: a command that /bin/sh would only split into words, split
 * here; see simplecmd.h.
 */
#include "simplecmd.h"

#include <string.h>

/* Characters that mean nothing to sh outside quotes, in any position of
 * a word after the first ('~' and '#' mean something at a word's start,
 * so they are not here at all). */
static int plain_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || strchr("_./,:+@%=-", c);
}

int xy_simplecmd_parse(const char *command, char *buf, char **argv)
{
	const char *s = command;
	char *out = buf;
	int n = 0;

	for (;;) {
		while (*s == ' ' || *s == '\t')
			s++;
		if (!*s)
			break;
		if (n == XY_SIMPLECMD_MAX_WORDS)
			return 0;
		argv[n++] = out;
		while (*s && *s != ' ' && *s != '\t') {
			if (*s == '\'') {
				const char *end = strchr(s + 1, '\'');

				if (!end)
					return 0;
				memcpy(out, s + 1, (size_t)(end - s - 1));
				out += end - s - 1;
				s = end + 1;
			} else if (plain_char(*s)) {
				*out++ = *s++;
			} else {
				return 0;
			}
		}
		*out++ = '\0';
	}
	argv[n] = NULL;
	if (n > 1 && !strcmp(argv[0], "exec") && argv[1][0] != '-') {
		memmove(argv, argv + 1, (size_t)n * sizeof *argv);
		n--;
	}
	/* A program named by a path: no PATH search, and no builtin,
	 * reserved word or function has such a name. One with '=' may be
	 * an assignment. */
	if (n == 0 || !strchr(argv[0], '/') || strchr(argv[0], '='))
		return 0;
	return n;
}

static int name_char(char c, int first)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
	       (!first && c >= '0' && c <= '9');
}

int xy_simplecmd_env_plain(char *const *env)
{
	for (size_t i = 0; env && env[i]; i++) {
		const char *eq = strchr(env[i], '=');
		size_t len;

		if (!eq || eq == env[i])
			return 0;
		len = (size_t)(eq - env[i]);
		for (size_t k = 0; k < len; k++)
			if (!name_char(env[i][k], k == 0))
				return 0;
		for (size_t j = 0; j < i; j++)
			if (!strncmp(env[j], env[i], len + 1))
				return 0;
	}
	return 1;
}
