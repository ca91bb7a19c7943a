/*
 * bench.h: what the C benchmarks share: a manager on loopback with the
 * benchmarks' secret, or the process ends saying why. It runs TLS, as
 * managers do, unless XYLEM_NO_TLS=1.
 */
#ifndef XY_BENCH_H
#define XY_BENCH_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xylem.h"

#define SECRET "bench-secret"

static inline struct xy_manager *bench_manager(void)
{
	char err[256];
	const char *off = getenv("XYLEM_NO_TLS");
	struct xy_manager_options o = {.host = "127.0.0.1",
				       .secret = SECRET,
				       .secret_len = strlen(SECRET),
				       .no_tls = off && !strcmp(off, "1")};
	struct xy_manager *m = xy_manager_create(&o, err, sizeof err);
	if (!m) {
		fprintf(stderr, "manager: %s\n", err);
		exit(1);
	}
	return m;
}

#endif
