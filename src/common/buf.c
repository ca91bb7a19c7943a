/*
 * buf.c: the growable encode buffer and the bounds-checked decode reader of
 * buf.h. Integers are little-endian on the wire whatever the host order.
 */
#include "buf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void xy_buf_init(struct xy_buf *b)
{
	memset(b, 0, sizeof *b);
}

void xy_buf_free(struct xy_buf *b)
{
	free(b->data);
	memset(b, 0, sizeof *b);
}

void xy_buf_reset(struct xy_buf *b)
{
	b->len = 0;
	b->oom = 0;
}

int xy_buf_reserve(struct xy_buf *b, size_t extra)
{
	if (b->oom) {
		errno = ENOMEM;
		return -1;
	}
	if (extra <= b->cap - b->len)
		return 0;
	if (extra > SIZE_MAX / 2 - b->len) {
		b->oom = 1;
		errno = ENOMEM;
		return -1;
	}
	size_t need = b->len + extra;
	size_t cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap *= 2;
	uint8_t *p = realloc(b->data, cap);
	if (!p) {
		b->oom = 1;
		errno = ENOMEM;
		return -1;
	}
	b->data = p;
	b->cap = cap;
	return 0;
}

void xy_buf_put_raw(struct xy_buf *b, const void *p, size_t n)
{
	if (n == 0 || xy_buf_reserve(b, n) < 0)
		return;
	memcpy(b->data + b->len, p, n);
	b->len += n;
}

static void put_le(struct xy_buf *b, uint64_t v, int n)
{
	uint8_t tmp[8];
	for (int i = 0; i < n; i++)
		tmp[i] = (uint8_t)(v >> (8 * i));
	xy_buf_put_raw(b, tmp, n);
}

void xy_buf_put_u8(struct xy_buf *b, uint8_t v)
{
	put_le(b, v, 1);
}

void xy_buf_put_u16(struct xy_buf *b, uint16_t v)
{
	put_le(b, v, 2);
}

void xy_buf_put_u32(struct xy_buf *b, uint32_t v)
{
	put_le(b, v, 4);
}

void xy_buf_put_u64(struct xy_buf *b, uint64_t v)
{
	put_le(b, v, 8);
}

void xy_buf_put_i64(struct xy_buf *b, int64_t v)
{
	put_le(b, (uint64_t)v, 8);
}

void xy_buf_put_f64(struct xy_buf *b, double v)
{
	uint64_t u;
	memcpy(&u, &v, sizeof u);
	put_le(b, u, 8);
}

void xy_buf_put_bytes(struct xy_buf *b, const void *p, size_t n)
{
	if (n > UINT32_MAX) {
		b->oom = 1;
		return;
	}
	xy_buf_put_u32(b, (uint32_t)n);
	xy_buf_put_raw(b, p, n);
}

void xy_buf_put_str(struct xy_buf *b, const char *s)
{
	xy_buf_put_bytes(b, s, s ? strlen(s) : 0);
}

void xy_buf_patch_u32(struct xy_buf *b, size_t off, uint32_t v)
{
	if (b->oom || off > b->len || b->len - off < 4)
		return;
	for (int i = 0; i < 4; i++)
		b->data[off + i] = (uint8_t)(v >> (8 * i));
}

void xy_reader_init(struct xy_reader *r, const void *p, size_t n)
{
	r->p = p;
	r->left = n;
	r->err = 0;
}

/* Returns a pointer to the next n bytes and consumes them, or NULL (and
 * sets err) if fewer are left. */
static const uint8_t *take(struct xy_reader *r, size_t n)
{
	if (r->err || n > r->left) {
		r->err = 1;
		return NULL;
	}
	const uint8_t *p = r->p;
	r->p += n;
	r->left -= n;
	return p;
}

static uint64_t get_le(struct xy_reader *r, int n)
{
	const uint8_t *p = take(r, n);
	uint64_t v = 0;
	if (!p)
		return 0;
	for (int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

uint8_t xy_get_u8(struct xy_reader *r)
{
	return (uint8_t)get_le(r, 1);
}

uint16_t xy_get_u16(struct xy_reader *r)
{
	return (uint16_t)get_le(r, 2);
}

uint32_t xy_get_u32(struct xy_reader *r)
{
	return (uint32_t)get_le(r, 4);
}

uint64_t xy_get_u64(struct xy_reader *r)
{
	return get_le(r, 8);
}

int64_t xy_get_i64(struct xy_reader *r)
{
	return (int64_t)get_le(r, 8);
}

double xy_get_f64(struct xy_reader *r)
{
	uint64_t u = get_le(r, 8);
	double v;
	memcpy(&v, &u, sizeof v);
	return v;
}

void xy_get_raw(struct xy_reader *r, void *out, size_t n)
{
	const uint8_t *p = take(r, n);
	if (p)
		memcpy(out, p, n);
	else
		memset(out, 0, n);
}

void *xy_get_bytes(struct xy_reader *r, size_t max, size_t *len)
{
	uint32_t n = xy_get_u32(r);
	if (r->err || n > max || n > r->left) {
		r->err = 1;
		return NULL;
	}
	const uint8_t *p = take(r, n);
	char *s = malloc((size_t)n + 1);
	if (!s) {
		r->err = 1;
		return NULL;
	}
	if (n)
		memcpy(s, p, n);
	s[n] = 0;
	if (len)
		*len = n;
	return s;
}

char *xy_get_str(struct xy_reader *r, size_t max)
{
	size_t n = 0;
	char *s = xy_get_bytes(r, max, &n);
	if (s && memchr(s, 0, n)) {
		free(s);
		r->err = 1;
		return NULL;
	}
	return s;
}

uint32_t xy_get_count(struct xy_reader *r, uint32_t max)
{
	uint32_t n = xy_get_u32(r);
	if (r->err || n > max) {
		r->err = 1;
		return 0;
	}
	return n;
}
