/*
 * buf.h: a growable byte buffer for encoding, and a bounds-checked reader
 * for decoding. The protocol codec (proto.c) is written on these two; every
 * read checks what is left, so a short or hostile payload sets an error flag
 * instead of reading past the end.
 */
#ifndef XY_BUF_H
#define XY_BUF_H

#include <stddef.h>
#include <stdint.h>

struct xy_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
	int oom; /* set when a grow failed; later puts do nothing */
};

void xy_buf_init(struct xy_buf *b);
void xy_buf_free(struct xy_buf *b);      /* frees data, leaves b empty */
void xy_buf_reset(struct xy_buf *b);     /* len = 0, keeps the memory */
int xy_buf_reserve(struct xy_buf *b, size_t extra); /* -1 on ENOMEM */
/* Integers are written little-endian. */
void xy_buf_put_u8(struct xy_buf *b, uint8_t v);
void xy_buf_put_u16(struct xy_buf *b, uint16_t v);
void xy_buf_put_u32(struct xy_buf *b, uint32_t v);
void xy_buf_put_u64(struct xy_buf *b, uint64_t v);
void xy_buf_put_i64(struct xy_buf *b, int64_t v);
void xy_buf_put_f64(struct xy_buf *b, double v);
void xy_buf_put_raw(struct xy_buf *b, const void *p, size_t n);
/* u32 length, then the bytes (no NUL). s may be NULL: length 0. */
void xy_buf_put_str(struct xy_buf *b, const char *s);
void xy_buf_put_bytes(struct xy_buf *b, const void *p, size_t n);
/* Writes a u32 at offset off (for back-patching a length). */
void xy_buf_patch_u32(struct xy_buf *b, size_t off, uint32_t v);

struct xy_reader {
	const uint8_t *p;
	size_t left;
	int err; /* set by the first failed read; every later read fails too */
};

void xy_reader_init(struct xy_reader *r, const void *p, size_t n);
uint8_t xy_get_u8(struct xy_reader *r);
uint16_t xy_get_u16(struct xy_reader *r);
uint32_t xy_get_u32(struct xy_reader *r);
uint64_t xy_get_u64(struct xy_reader *r);
int64_t xy_get_i64(struct xy_reader *r);
double xy_get_f64(struct xy_reader *r);
/* Copies n raw bytes to out. */
void xy_get_raw(struct xy_reader *r, void *out, size_t n);
/* A length-prefixed string of at most max bytes, returned as a fresh
 * NUL-terminated malloc'd copy; NULL (and err set) if too long, short, or
 * if it contains a NUL byte. */
char *xy_get_str(struct xy_reader *r, size_t max);
/* A length-prefixed byte string of at most max bytes, malloc'd (one extra
 * NUL byte appended, not counted in *len). */
void *xy_get_bytes(struct xy_reader *r, size_t max, size_t *len);
/* A count (u32) that must be <= max; sets err otherwise. */
uint32_t xy_get_count(struct xy_reader *r, uint32_t max);

#endif
