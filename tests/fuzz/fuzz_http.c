/*
 * fuzz_http.c: libFuzzer target for the dashboard's request parser
 * (httpparse.h). The input is what a client sends: it is parsed as the
 * server does, request after request, with every span checked to lie
 * inside the input, and the parameter lookups run over what came out.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "httpparse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void inside(struct xy_http_str s, const char *buf, size_t len)
{
	if (s.p && (s.p < buf || s.p + s.n > buf + len))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A copy of exactly size bytes, so that ASan sees any overread. */
	char *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	size_t pos = 0;
	while (pos < size) {
		struct xy_http_req r;
		int status = 0;
		long n = xy_http_parse(buf + pos, size - pos, &r, &status);
		if (n <= 0) {
			if (n < 0 && status < 400)
				abort();
			break;
		}
		const char *b = buf + pos;
		size_t len = size - pos;
		if ((size_t)n > len)
			abort();
		struct xy_http_str all[] = {r.method, r.target, r.path, r.query,
					    r.host, r.cookie, r.authorization,
					    r.last_event_id};
		for (size_t i = 0; i < sizeof all / sizeof *all; i++)
			inside(all[i], b, (size_t)n);
		inside(xy_http_param(r.query, '&', "token"), b, (size_t)n);
		inside(xy_http_param(r.cookie, ';', "xylem_token"), b,
		       (size_t)n);
		pos += (size_t)n;
		if (r.body > size - pos)
			break;
		pos += r.body;
	}
	free(buf);
	return 0;
}
