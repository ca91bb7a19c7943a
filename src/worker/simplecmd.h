/*
 * simplecmd.h: a task's command that /bin/sh would only split into words
 * and run, run without the shell.
 *
 * Every command task is `/bin/sh -c COMMAND`. For a command that is one
 * simple command of literal words naming its program by a path
 * ('/opt/bin/tool' 'in.txt' -n 3, ./run.sh x), the shell's whole part is
 * to split it: about a millisecond of CPU a task (a CWL step is three
 * process starts, one of them this shell). xy_simplecmd_parse recognises
 * exactly the commands whose meaning under POSIX sh is that, and nothing
 * else: words of unquoted characters from a set with no meaning to the
 * shell ([A-Za-z0-9_./,:+@%=-]) and single-quoted parts, separated by
 * blanks, with an optional leading `exec`; the first word holds a '/'
 * (so no PATH search: that would stat PATH's directories, perhaps on a
 * network filesystem, on the worker's loop; and no builtin, reserved
 * word or function, of dash or of bash, can have that name) and no '='
 * (an assignment). Anything else (variables, double quotes, globs,
 * redirections, several commands, a newline outside quotes) is left to
 * the shell. xy_simplecmd_env_plain says whether an environment is one
 * the shell would pass on as it is.
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

/* 1 if env (NULL-terminated NAME=VALUE) is passed on by sh as it is:
 * every entry a valid name and no name twice (dash drops the invalid ones
 * and keeps the last of a repeated one); else 0, and the command goes to
 * the shell. */
int xy_simplecmd_env_plain(char *const *env);

#endif
