/*
 * simplecmd.c: a command that /bin/sh would only split into words, split
 * here; see simplecmd.h.
 */
#include "simplecmd.h"

#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Characters that mean nothing to sh outside quotes, in any position of
 * a word after the first ('~' and '#' mean something at a word's start,
 * so they are not here at all). */
static int plain_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || strchr("_./,:+@%=-", c);
}

/* Names the shell runs itself, whatever PATH holds: the reserved words
 * and dash's builtins. */
static int shell_own(const char *w)
{
	static const char *const own[] = {
		"!", "{", "}", "case", "do", "done", "elif", "else", "esac",
		"fi", "for", "if", "in", "then", "until", "while", ".", ":",
		"[", "alias", "bg", "break", "cd", "chdir", "command",
		"continue", "echo", "eval", "exec", "exit", "export", "false",
		"fc", "fg", "getopts", "hash", "jobs", "kill", "local",
		"printf", "pwd", "read", "readonly", "return", "set", "shift",
		"test", "times", "trap", "true", "type", "ulimit", "umask",
		"unalias", "unset", "wait", NULL};

	for (int i = 0; own[i]; i++)
		if (!strcmp(w, own[i]))
			return 1;
	return 0;
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
	/* An empty first word ('') is "not found" to sh; one with '=' may be
	 * an assignment; the shell's own names stay the shell's. */
	if (n == 0 || !argv[0][0] || strchr(argv[0], '=') ||
	    shell_own(argv[0]))
		return 0;
	return n;
}

static int executable_file(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
	       access(path, X_OK) == 0;
}

int xy_simplecmd_find(const char *argv0, char *const *env, char *path,
		      size_t pathlen)
{
	const char *dirs = NULL;
	size_t name = strlen(argv0);

	if (strchr(argv0, '/')) {
		if (name >= pathlen)
			return -1;
		memcpy(path, argv0, name + 1);
		return 0;
	}
	for (char *const *e = env; e && *e; e++) /* the last, as dash */
		if (!strncmp(*e, "PATH=", 5))
			dirs = *e + 5;
	if (!dirs)
		return -1;
	for (;;) {
		const char *end = strchr(dirs, ':');
		size_t len = end ? (size_t)(end - dirs) : strlen(dirs);

		if (len == 0 || dirs[0] != '/')
			return -1;
		if (len + 1 + name < pathlen) {
			memcpy(path, dirs, len);
			path[len] = '/';
			memcpy(path + len + 1, argv0, name + 1);
			if (executable_file(path))
				return 0;
		}
		if (!end)
			return -1;
		dirs = end + 1;
	}
}
