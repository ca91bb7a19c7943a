/*
 * log.h: one-line log records on stderr, "time level who: message". The
 * level comes from XYLEM_LOG (error, warn, info, debug; default warn for
 * libraries and info for daemons, set by xy_log_set_level).
 */
#ifndef XY_LOG_H
#define XY_LOG_H

enum { XY_LOG_ERROR = 0, XY_LOG_WARN = 1, XY_LOG_INFO = 2, XY_LOG_DEBUG = 3 };

/* Sets the threshold unless XYLEM_LOG is set in the environment. */
void xy_log_set_level(int level);
int xy_log_enabled(int level);
void xy_log(int level, const char *who, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define XY_LOGE(who, ...) xy_log(XY_LOG_ERROR, who, __VA_ARGS__)
#define XY_LOGW(who, ...) xy_log(XY_LOG_WARN, who, __VA_ARGS__)
#define XY_LOGI(who, ...) xy_log(XY_LOG_INFO, who, __VA_ARGS__)
#define XY_LOGD(who, ...)                                                   \
	do {                                                                \
		if (xy_log_enabled(XY_LOG_DEBUG))                           \
			xy_log(XY_LOG_DEBUG, who, __VA_ARGS__);             \
	} while (0)

#endif
