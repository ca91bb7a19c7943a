/*
 * simplecmd.h: a task's command that /bin/sh would only split into words
 * and run, run without the shell.
 *
 * Every command task is `/bin/sh -c COMMAND`. For a command that is one
 * simple command of literal words ('/opt/bin/tool' 'in.txt' -n 3), the
 * shell's whole part is to split it and find the program on PATH: about
 * a millisecond of CPU a task (a CWL step is three process starts, one of
 * them this shell). xy_simplecmd_parse recognises exactly the commands
 * whose meaning under POSIX sh is that, and nothing else: words of
 * unquoted characters from a set with no meaning to the shell
 * ([A-Za-z0-9_./,:+@%=-]) and single-quoted parts, separated by blanks,
 * with an optional leading `exec`; the first word neither an assignment
 * (it holds no '='), nor a reserved word, nor one of dash's builtins
 * (`echo` as a builtin is not /usr/bin/echo). Anything else (variables,
 * double quotes, globs, redirections, several commands, a newline
 * outside quotes) is left to the shell.
 */
#ifndef XY_SIMPLECMD_H
#define XY_SIMPLECMD_H

#include <stddef.h>

#define XY_SIMPLECMD_MAX_WORDS 64

/* The words of command, unquoted, into buf (at least strlen(command) + 1
 * bytes) and argv (XY_SIMPLECMD_MAX_WORDS + 1 entries, NULL-terminated).
 * Returns the number of words, or 0 when the command is not one the
 * shell would only split (or has more words than that): then run it
 * through the shell. */
int xy_simplecmd_parse(const char *command, char *buf, char **argv);

/* The program that argv0 names, as sh would find it: argv0 itself when
 * it holds a '/'; else the first executable regular file argv0 in the
 * directories of PATH taken from env (NULL-terminated NAME=VALUE). Into
 * path (size pathlen). Returns 0, or -1 when the shell should decide:
 * not found, no PATH in env, a directory of PATH that is empty or not
 * absolute (relative to the task's directory, which sh would use), or a
 * name too long. */
int xy_simplecmd_find(const char *argv0, char *const *env, char *path,
		      size_t pathlen);

#endif
