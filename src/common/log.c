/*
 * log.c: one-line log records on stderr (log.h). The threshold is the only
 * global state in the common layer; it is an atomic, so threads may log
 * while another sets it. Each record is written with a single write(2) so
 * that lines from different threads do not interleave.
 */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LEVEL_UNSET (-1)

static atomic_int threshold = LEVEL_UNSET;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

/* The level named by XYLEM_LOG, or -1 if unset or not a level name. */
static int env_level(void)
{
	const char *s = getenv("XYLEM_LOG");
	if (!s)
		return -1;
	for (int i = 0; i <= XY_LOG_DEBUG; i++)
		if (!strcasecmp(s, level_names[i]))
			return i;
	if (!strcasecmp(s, "warning"))
		return XY_LOG_WARN;
	return -1;
}

static int current_level(void)
{
	int l = atomic_load(&threshold);
	if (l != LEVEL_UNSET)
		return l;
	l = env_level();
	if (l < 0)
		l = XY_LOG_WARN;
	atomic_store(&threshold, l);
	return l;
}

void xy_log_set_level(int level)
{
	int l = env_level();
	if (l < 0) {
		if (level < XY_LOG_ERROR)
			level = XY_LOG_ERROR;
		if (level > XY_LOG_DEBUG)
			level = XY_LOG_DEBUG;
		l = level;
	}
	atomic_store(&threshold, l);
}

int xy_log_enabled(int level)
{
	return level <= current_level();
}

/* The length after snprintf wrote k more bytes at n, truncated to fit. */
static size_t advance(size_t n, int k, size_t size)
{
	if (k <= 0)
		return n;
	return (size_t)k < size - n ? n + (size_t)k : size - 1;
}

void xy_log(int level, const char *who, const char *fmt, ...)
{
	if (!xy_log_enabled(level))
		return;
	if (level < XY_LOG_ERROR)
		level = XY_LOG_ERROR;
	if (level > XY_LOG_DEBUG)
		level = XY_LOG_DEBUG;

	char line[2048];
	struct timeval tv;
	struct tm tm;
	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	size_t n = strftime(line, sizeof line, "%Y-%m-%d %H:%M:%S", &tm);
	int k = snprintf(line + n, sizeof line - n, ".%03ld %s %s: ",
			 (long)tv.tv_usec / 1000, level_names[level],
			 who ? who : "xylem");
	n = advance(n, k, sizeof line);

	va_list ap;
	va_start(ap, fmt);
	k = vsnprintf(line + n, sizeof line - n, fmt, ap);
	va_end(ap);
	n = advance(n, k, sizeof line);
	/* Always end with a newline, replacing the last byte if truncated. */
	if (n >= sizeof line - 1)
		n = sizeof line - 2;
	line[n++] = '\n';

	ssize_t w = write(STDERR_FILENO, line, n);
	(void)w;
}
