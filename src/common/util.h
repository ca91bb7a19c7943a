/*
 * util.h: small helpers shared by every part of Xylem: the error text
 * convention, clocks, path checks, and file utilities.
 */
#ifndef XY_UTIL_H
#define XY_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdarg.h>

/* Writes a formatted reason into err (if err is non-NULL and errlen > 0),
 * sets errno to e, and returns -1. The one helper for the error convention
 * of docs/errors.md. */
int xy_fail(char *err, size_t errlen, int e, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Wall clock, seconds since the epoch, and monotonic microseconds. */
double xy_now(void);
/* Seconds on the monotonic clock, for timeouts and durations: an NTP
 * step of the wall clock (xy_now) neither stretches nor cuts them. */
double xy_mono(void);
uint64_t xy_mono_us(void);

/* 0 if `name` is a safe sandbox-relative path: not empty, not absolute, no
 * "." or ".." component, no empty component, no NUL, at most 4096 bytes.
 * Otherwise -1 with a reason in err that quotes the name. */
int xy_check_sandbox_name(const char *name, char *err, size_t errlen);

/* mkdir -p with mode 0755. Returns -1 with errno on failure. */
int xy_mkdir_p(const char *path);
/* rm -rf; tolerates a missing path; makes read-only directories writable
 * before removing them. Returns -1 with errno on failure. */
int xy_rm_rf(const char *path);
/* Writes all n bytes to a blocking fd, again after EINTR and short
 * writes: 0, or -1 with errno. */
int xy_write_all(int fd, const void *p, size_t n);
/* Reads a whole file (at most max bytes) into a malloc'd NUL-terminated
 * buffer. */
char *xy_read_file(const char *path, size_t max, size_t *len);
/* Reads a secret file; trailing newlines are stripped. */
char *xy_read_secret(const char *path, size_t *len, char *err, size_t errlen);

/* Lowercase hex of n bytes into out (2n+1 bytes). */
void xy_hex(const uint8_t *p, size_t n, char *out);
/* The value of one hex digit, or -1. */
int xy_hexval(int c);
/* Parses 2n hex digits into n bytes. Returns -1 if malformed. */
int xy_unhex(const char *s, uint8_t *out, size_t n);

/* Splits "HOST:PORT" (HOST may be [v6]). Returns -1 if malformed. host
 * receives at most hostlen-1 bytes. */
int xy_parse_hostport(const char *s, char *host, size_t hostlen, int *port);

/* The value of the environment variable name (a malloc'd copy, its
 * length in *len), taken out of the environment: the bytes of the value
 * are overwritten where they were (so that /proc/PID/environ, which
 * other processes of the same user can read, no longer shows them) and
 * the variable is unset (so that children do not inherit it). NULL if
 * it is not set or empty (errno 0), or memory is short (ENOMEM). */
char *xy_env_take(const char *name, size_t *len);

/* A named crash point for durability tests (docs/durability.md): kills
 * this process with SIGKILL if the environment's XYLEM_CRASH_POINT is
 * name, at its XYLEM_CRASH_AFTER-th visit (default: the first). */
void xy_crash_point(const char *name);
#define XY_CRASH_POINT(name) xy_crash_point(name)

/* CRC-32C (Castagnoli) of n bytes, continuing from crc (0 to start). */
uint32_t xy_crc32c(uint32_t crc, const void *p, size_t n);

/* The edit distance between a and b, for "did you mean" hints; 64 for
 * strings of 64 bytes or more. */
size_t xy_edit_distance(const char *a, const char *b);

#endif
