/*
 * xfer_probe.c: a client that tests a transfer server's token checks
 * across the network, for tests/netns/test_tokens.py. It knows the shared
 * secret (it passes the connection's handshake, as a worker would) and
 * makes its own tokens with it, then asks for one object with:
 *
 *   forged      a token of random bytes
 *   other-name  a genuine token made for another receiver
 *   expired     a genuine token whose expiry has passed
 *   fresh-1..3  one genuine token, used three times
 *
 * It prints "<case> <status>" per attempt (status: ok, denied, not-found,
 * failed, corrupt) and exits 0; 2 on bad usage.
 *
 * Usage: xfer_probe SECRET_FILE HOST PORT ID_HEX NAME DIR
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "auth.h"
#include "proto.h"
#include "util.h"
#include "xfer.h"

static const char *status_name(int st)
{
	switch (st) {
	case XY_OBJ_OK:
		return "ok";
	case XY_OBJ_DENIED:
		return "denied";
	case XY_OBJ_NOT_FOUND:
		return "not-found";
	case XY_OBJ_CORRUPT:
		return "corrupt";
	default:
		return "failed";
	}
}

static uint64_t now_us(void)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	return (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}

struct probe {
	const char *host, *name, *dir;
	int port;
	char *secret;
	size_t secret_len;
	uint8_t id[XY_ID_LEN];
	int n;
};

static void try(struct probe *p, const char *what, const uint8_t *tok)
{
	char dest[4200], err[512] = "";
	uint64_t bytes = 0;
	snprintf(dest, sizeof dest, "%s/probe-%d", p->dir, p->n++);
	/* TLS as the workers run it (keyed by the secret), unless the
	 * test runs without it. */
	const char *off = getenv("XYLEM_NO_TLS");
	int tls = !(off && !strcmp(off, "1"));
	int st = xy_xfer_fetch(p->host, p->port, p->secret, p->secret_len, tls,
			       p->id, tok, p->name, dest, 0, &bytes, err,
			       sizeof err);
	printf("%s %s\n", what, status_name(st));
	if (st != XY_OBJ_OK)
		fprintf(stderr, "%s: %s\n", what, err);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	struct probe p = {0};
	uint8_t tok[XY_TOKEN_LEN];
	char err[512];
	if (argc != 7 || xy_unhex(argv[4], p.id, XY_ID_LEN) < 0) {
		fprintf(stderr, "usage: xfer_probe SECRET_FILE HOST PORT ID_HEX"
			" NAME DIR\n");
		return 2;
	}
	p.secret = xy_read_secret(argv[1], &p.secret_len, err, sizeof err);
	if (!p.secret) {
		fprintf(stderr, "xfer_probe: %s\n", err);
		return 2;
	}
	p.host = argv[2];
	p.port = atoi(argv[3]);
	p.name = argv[5];
	p.dir = argv[6];
	srand((unsigned)now_us());
	for (size_t i = 0; i < sizeof tok; i++)
		tok[i] = (uint8_t)rand();
	try(&p, "forged", tok);
	xy_token_make(p.secret, p.secret_len, p.id, now_us() + 60000000u,
		      "someone-else", tok);
	try(&p, "other-name", tok);
	xy_token_make(p.secret, p.secret_len, p.id, now_us() - 1000000u,
		      p.name, tok);
	try(&p, "expired", tok);
	xy_token_make(p.secret, p.secret_len, p.id, now_us() + 60000000u,
		      p.name, tok);
	try(&p, "fresh-1", tok);
	try(&p, "fresh-2", tok);
	try(&p, "fresh-3", tok);
	free(p.secret);
	return 0;
}
