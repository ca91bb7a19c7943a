/*
 * object.h: content-addressed objects. An object is a file or a directory;
 * its id is the SHA-256 of its stream. A file's stream is its content. A
 * directory's stream is canonical (docs/protocol.md, "Directory stream"):
 *
 *   "XYDIR1\0\0", then one entry per path in sorted order, parents first:
 *     u8 type (1 file, 2 dir, 3 symlink), u32 mode (permission bits),
 *     str relative path, then for a file u64 size and the bytes,
 *     for a symlink str target;
 *   and u8 0xff to end.
 *
 * The same code hashes a path, sends it, and receives and verifies it, so a
 * receiver never keeps a byte that does not hash to the id it asked for.
 */
#ifndef XY_OBJECT_H
#define XY_OBJECT_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

/* A sink for stream bytes; returns 0, or -1 to stop. */
typedef int (*xy_sink_fn)(void *arg, const void *p, size_t n);

/* Writes the stream of the object at path to sink. For a plain file, if
 * fd_out >= 0 the bytes go there with sendfile and sink is not called.
 * Returns 0, or -1 with a reason in err. */
int xy_object_stream(const char *path, uint8_t kind, xy_sink_fn sink,
		     void *arg, int fd_out, char *err, size_t errlen);

/* Stats path: its kind (file or dir; symlinks are followed at the top) and
 * its stream size. */
int xy_object_stat(const char *path, uint8_t *kind, uint64_t *size,
		   char *err, size_t errlen);

/* Hashes path: id, kind and stream size. */
int xy_object_hash(const char *path, uint8_t id[XY_ID_LEN], uint8_t *kind,
		   uint64_t *size, char *err, size_t errlen);

/* As xy_object_hash, and also the chunk list (proto.h, struct
 * xy_chunks) with chunks of xy_chunk_size_for(size) bytes. An object of
 * one chunk or less gets none (n == 0, hash NULL). chunks->hash is the
 * caller's to free. */
int xy_object_hash_chunks(const char *path, uint8_t id[XY_ID_LEN],
			  uint8_t *kind, uint64_t *size,
			  struct xy_chunks *chunks, char *err, size_t errlen);

/* Reads a stream of exactly size bytes from fd (timeout_ms per read) and
 * materialises it at dest, which must not exist: written under
 * "dest.part" and renamed into place only if the SHA-256 of the stream
 * equals id. Paths inside a directory stream are checked with
 * xy_check_sandbox_name. If readonly (a cache's copy), a plain-file
 * object becomes 0555 (its stream has no mode, and an input script must
 * run), files in a directory 0444 or 0555 by their recorded mode, and
 * directories 0555; otherwise a plain file is 0644. Returns an XY_OBJ_* status: OK,
 * CORRUPT (hash mismatch or malformed stream), or FAILED (I/O), with a
 * reason in err. Nothing is left at dest or dest.part on failure. If
 * local is not NULL, *local is set to 1 when the failure was this host's
 * own (creating or writing under dest: a full disk, most often) rather
 * than the stream's (it broke, stalled or was malformed), else to 0. */
int xy_object_recv(int fd, uint8_t kind, uint64_t size,
		   const uint8_t id[XY_ID_LEN], const char *dest, int readonly,
		   int timeout_ms, int *local, char *err, size_t errlen);

/* The XY_OBJ_* status of a failure to create or write a received
 * object with errno err: NO_ROOM for a full disk or quota (ENOSPC,
 * EDQUOT, EFBIG), else FAILED. */
int xy_object_write_status(int err);

/* Makes a tree read-only as above (for outputs moved into a cache). */
int xy_object_make_readonly(const char *path);

#endif
