/*
 * test_buf.c: unit tests for the encode buffer and the bounds-checked
 * reader of buf.h.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "harness.h"

static void t_put_get_round_trip(void)
{
	struct xy_buf b;
	xy_buf_init(&b);
	xy_buf_put_u8(&b, 0xab);
	xy_buf_put_u16(&b, 0x1234);
	xy_buf_put_u32(&b, 0xdeadbeef);
	xy_buf_put_u64(&b, 0x0102030405060708ull);
	xy_buf_put_i64(&b, -42);
	xy_buf_put_f64(&b, 3.5);
	xy_buf_put_str(&b, "hello");
	xy_buf_put_str(&b, NULL);
	xy_buf_put_bytes(&b, "a\0b", 3);
	XY_CHECK(!b.oom);

	struct xy_reader r;
	xy_reader_init(&r, b.data, b.len);
	XY_CHECK_EQ(xy_get_u8(&r), 0xab);
	XY_CHECK_EQ(xy_get_u16(&r), 0x1234);
	XY_CHECK_EQ(xy_get_u32(&r), 0xdeadbeef);
	XY_CHECK(xy_get_u64(&r) == 0x0102030405060708ull);
	XY_CHECK_EQ(xy_get_i64(&r), -42);
	XY_CHECK(xy_get_f64(&r) == 3.5);
	char *s = xy_get_str(&r, 100);
	XY_CHECK(s && !strcmp(s, "hello"));
	free(s);
	s = xy_get_str(&r, 100);
	XY_CHECK(s && !strcmp(s, ""));
	free(s);
	size_t n = 0;
	char *p = xy_get_bytes(&r, 100, &n);
	XY_CHECK(p && n == 3 && !memcmp(p, "a\0b", 3) && p[3] == 0);
	free(p);
	XY_CHECK_EQ(r.left, 0);
	XY_CHECK(!r.err);
	xy_buf_free(&b);
	XY_CHECK(b.data == NULL && b.len == 0);
}

static void t_little_endian(void)
{
	struct xy_buf b;
	xy_buf_init(&b);
	xy_buf_put_u32(&b, 0x04030201);
	xy_buf_put_u16(&b, 0x0605);
	static const uint8_t want[] = {1, 2, 3, 4, 5, 6};
	XY_CHECK_EQ(b.len, 6);
	XY_CHECK(!memcmp(b.data, want, 6));
	xy_buf_patch_u32(&b, 0, 0x0a0b0c0d);
	XY_CHECK_EQ(b.data[0], 0x0d);
	XY_CHECK_EQ(b.data[3], 0x0a);
	/* A patch past the end does nothing. */
	xy_buf_patch_u32(&b, 4, 0xffffffff);
	XY_CHECK_EQ(b.data[4], 5);
	xy_buf_free(&b);
}

static void t_grow_and_reset(void)
{
	struct xy_buf b;
	xy_buf_init(&b);
	for (uint32_t i = 0; i < 100000; i++)
		xy_buf_put_u32(&b, i);
	XY_CHECK_EQ(b.len, 400000);
	XY_CHECK(b.cap >= b.len);
	struct xy_reader r;
	xy_reader_init(&r, b.data, b.len);
	for (uint32_t i = 0; i < 100000; i++)
		XY_CHECK_EQ(xy_get_u32(&r), i);
	size_t cap = b.cap;
	xy_buf_reset(&b);
	XY_CHECK_EQ(b.len, 0);
	XY_CHECK_EQ(b.cap, cap);
	XY_CHECK_EQ(xy_buf_reserve(&b, 10), 0);
	XY_CHECK(xy_buf_reserve(&b, SIZE_MAX) < 0);
	XY_CHECK(b.oom);
	xy_buf_put_u8(&b, 1); /* ignored once oom */
	XY_CHECK_EQ(b.len, 0);
	xy_buf_free(&b);
}

static void t_short_reads_set_err(void)
{
	static const uint8_t data[] = {1, 2, 3};
	struct xy_reader r;
	xy_reader_init(&r, data, sizeof data);
	XY_CHECK_EQ(xy_get_u16(&r), 0x0201);
	XY_CHECK_EQ(xy_get_u32(&r), 0);
	XY_CHECK(r.err);
	/* Sticky: even a read that would fit now fails. */
	XY_CHECK_EQ(xy_get_u8(&r), 0);
	XY_CHECK(r.err);
	uint8_t out[4] = {9, 9, 9, 9};
	xy_get_raw(&r, out, 4);
	XY_CHECK_EQ(out[0], 0);
}

static void t_str_limits(void)
{
	struct xy_buf b;
	xy_buf_init(&b);
	xy_buf_put_str(&b, "abcdef");
	struct xy_reader r;
	xy_reader_init(&r, b.data, b.len);
	XY_CHECK(xy_get_str(&r, 5) == NULL);
	XY_CHECK(r.err);

	/* A length larger than what is left. */
	xy_buf_reset(&b);
	xy_buf_put_u32(&b, 1000);
	xy_buf_put_raw(&b, "abc", 3);
	xy_reader_init(&r, b.data, b.len);
	XY_CHECK(xy_get_str(&r, 100000) == NULL);
	XY_CHECK(r.err);

	/* A NUL inside a string is refused; bytes allow it. */
	xy_buf_reset(&b);
	xy_buf_put_bytes(&b, "a\0b", 3);
	xy_reader_init(&r, b.data, b.len);
	XY_CHECK(xy_get_str(&r, 10) == NULL);
	XY_CHECK(r.err);
	xy_buf_free(&b);
}

static void t_count(void)
{
	struct xy_buf b;
	xy_buf_init(&b);
	xy_buf_put_u32(&b, 7);
	xy_buf_put_u32(&b, 8);
	struct xy_reader r;
	xy_reader_init(&r, b.data, b.len);
	XY_CHECK_EQ(xy_get_count(&r, 7), 7);
	XY_CHECK(!r.err);
	XY_CHECK_EQ(xy_get_count(&r, 7), 0);
	XY_CHECK(r.err);
	xy_buf_free(&b);
}

static void t_f64_special(void)
{
	struct xy_buf b;
	xy_buf_init(&b);
	xy_buf_put_f64(&b, -0.0);
	xy_buf_put_f64(&b, INFINITY);
	struct xy_reader r;
	xy_reader_init(&r, b.data, b.len);
	double z = xy_get_f64(&r);
	XY_CHECK(z == 0.0 && signbit(z));
	XY_CHECK(isinf(xy_get_f64(&r)));
	xy_buf_free(&b);
}

int main(int argc, char **argv)
{
	static const struct xy_test tests[] = {
		XY_TEST(t_put_get_round_trip),
		XY_TEST(t_little_endian),
		XY_TEST(t_grow_and_reset),
		XY_TEST(t_short_reads_set_err),
		XY_TEST(t_str_limits),
		XY_TEST(t_count),
		XY_TEST(t_f64_special),
		{0},
	};
	return xy_test_main(argc, argv, tests);
}
