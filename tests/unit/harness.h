/*
 * harness.h: the unit test harness. Each test case runs in a forked child
 * with an alarm, so a crash or a hang fails that case alone. A test program
 * lists its cases with XY_TEST and calls xy_test_main from main.
 *
 *   static void t_reader_short(void) { XY_CHECK(x == 1); }
 *   int main(int argc, char **argv) {
 *       static const struct xy_test tests[] = { XY_TEST(t_reader_short), {0} };
 *       return xy_test_main(argc, argv, tests);
 *   }
 *
 * The program prints one line per case and ends with "N passed, N failed".
 * An argument runs only the cases whose names contain it.
 */
#ifndef XY_HARNESS_H
#define XY_HARNESS_H

#include <stdio.h>
#include <stdlib.h>

struct xy_test {
	const char *name;
	void (*fn)(void);
	int timeout_s; /* 0: 30 seconds */
};

#define XY_TEST(fn) {#fn, fn, 0}
#define XY_TEST_T(fn, secs) {#fn, fn, secs}

#define XY_CHECK(cond)                                                      \
	do {                                                                \
		if (!(cond)) {                                              \
			fprintf(stderr, "%s:%d: check failed: %s\n",        \
				__FILE__, __LINE__, #cond);                 \
			exit(1);                                            \
		}                                                           \
	} while (0)

#define XY_CHECK_EQ(a, b)                                                   \
	do {                                                                \
		long long xa_ = (long long)(a), xb_ = (long long)(b);       \
		if (xa_ != xb_) {                                           \
			fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", \
				__FILE__, __LINE__, #a, #b, xa_, xb_);      \
			exit(1);                                            \
		}                                                           \
	} while (0)

int xy_test_main(int argc, char **argv, const struct xy_test *tests);

/* A fresh temporary directory for the current case (removed afterwards by
 * the harness). */
const char *xy_test_tmpdir(void);
/* tmpdir/rel, in one of 8 rotating static buffers. */
char *xy_test_path(const char *rel);
/* Fails the case if the leak sanitizer (when built in) finds a leak now:
 * the harness ends cases with _exit, which skips the usual check. */
void xy_test_check_no_leaks(void);

#endif
