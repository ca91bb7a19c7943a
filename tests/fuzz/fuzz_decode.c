/*
 * fuzz_decode.c: libFuzzer target for the message decoder. The first byte
 * picks the message type and the rest is the payload; the first eight
 * bytes are also parsed as a frame header. Decoding must never read out of
 * bounds, leak, or succeed on something that does not encode back to the
 * same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size >= XY_FRAME_HEADER) {
		uint32_t len;
		uint16_t type;
		xy_frame_parse(data, &len, &type);
	}
	if (size < 1)
		return 0;
	unsigned type = data[0];
	union xy_msg m;
	char err[256];
	if (xy_msg_decode(type, data + 1, size - 1, &m, err, sizeof err) < 0)
		return 0;
	/* What decodes must encode back to the same payload. */
	struct xy_buf b;
	xy_buf_init(&b);
	if (xy_msg_encode(&b, type, &m) == 0 &&
	    (b.len - XY_FRAME_HEADER != size - 1 ||
	     memcmp(b.data + XY_FRAME_HEADER, data + 1, size - 1) != 0))
		abort();
	xy_buf_free(&b);
	xy_msg_free(type, &m);
	return 0;
}
