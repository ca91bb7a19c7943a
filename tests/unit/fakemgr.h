/*
 * fakemgr.h: a fake manager for the worker's unit tests (test_worker.c,
 * test_library.c). It listens with conn.h, serves files from a directory
 * of its own through a transfer server, starts a real worker (the test
 * program run again as `--as-worker worker ...`, see fm_worker_main), and
 * lets a test send messages and wait for the replies, every wait bounded
 * by WAIT_MS.
 */
#ifndef XY_TEST_FAKEMGR_H
#define XY_TEST_FAKEMGR_H

#include <limits.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "conn.h"
#include "proto.h"
#include "xfer.h"

#define SECRET "test-secret"
#define WAIT_MS 10000

struct got {
	unsigned type;
	union xy_msg m;
	struct got *next;
};

struct fm {
	uv_loop_t loop;
	uv_tcp_t server;
	uv_timer_t timer;
	struct xy_conn *conn;
	int port;
	int closed;
	struct got *head, *tail;
	pid_t worker;
	char dir[PATH_MAX];  /* files the manager serves */
	char cache[PATH_MAX];
	struct xy_xfer_server *xfer;
	uint16_t worker_xfer_port;
};

/* snprintf that fails the test instead of truncating. */
void fm_pathf(char *out, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Starts listening (and serving f->dir), then a worker with the secret
 * and one extra argument (may be NULL); own_cache gives it a cache
 * directory under the test's tmpdir, else its default. */
void fm_start(struct fm *f, const char *secret, const char *extra,
	      int own_cache);
/* Starts (again) the worker process alone, for f as fm_start made it. */
void fm_start_worker(struct fm *f, const char *secret, const char *extra);

/* Runs the manager's loop for ms milliseconds, so what it queued goes
 * out. */
void fm_pump(struct fm *f, int ms);
/* Runs the loop until a message of this type arrives; returns it (the
 * caller frees it with fm_got_free). */
struct got *fm_wait_for(struct fm *f, unsigned type);
void fm_got_free(struct got *g);
void fm_send(struct fm *f, unsigned type, union xy_msg *m);
/* Waits for HELLO and checks what it says. */
void fm_hello(struct fm *f);
/* Waits for the worker to exit, serving the connection meanwhile;
 * returns its exit status. */
int fm_wait_exit(struct fm *f);
/* Tells the worker to shut down and checks that it exits 0. */
void fm_shutdown(struct fm *f);

/* A TASK without files running cmd on one core. */
void fm_task_msg(union xy_msg *m, uint64_t id, const char *cmd);
/* Sends a task without files and waits for its TASK_DONE. */
struct got *fm_run(struct fm *f, uint64_t id, const char *cmd);
/* Puts text in the manager's directory under its id. */
void fm_serve_text(struct fm *f, const char *text, uint8_t id[XY_ID_LEN],
		   uint64_t *size);
/* A FETCH of a file object from the transfer server on port. */
void fm_fetch_msg(union xy_msg *m, const uint8_t id[XY_ID_LEN],
		  uint64_t size, int port);

/* Sandboxes are removed on the worker's thread pool, after the reply:
 * a check of what is left polls system(cmd) for up to 10 s. */
int fm_eventually(const char *cmd);
/* 1 if the directory at path has no entries. */
int fm_dir_empty(const char *path);

/* The worker half of fm_start, for main(): returns -1 unless argv says
 * `--as-worker`, else the worker's exit status. */
int fm_worker_main(int argc, char **argv);

#endif
