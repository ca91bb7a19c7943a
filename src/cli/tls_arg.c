/*
 * tls_arg.c: how a client command (xylem status, xylem cwl --manager)
 * reaches a manager: over TLS, verifying it against --tls-ca (else
 * XYLEM_TLS_CA), or in plain text with --no-tls (or XYLEM_NO_TLS=1).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "log.h"
#include "tls.h"

int xy_cli_tls_client(const char *who, const char *ca, int no_tls,
		      SSL_CTX **out)
{
	const char *env = getenv("XYLEM_TLS_CA");
	const char *off = getenv("XYLEM_NO_TLS");
	char err[1024];

	*out = NULL;
	if (!ca && !no_tls && off && !strcmp(off, "1"))
		no_tls = 1;
	if (no_tls) {
		if (ca) {
			fprintf(stderr, "%s: --tls-ca and --no-tls: give one\n",
				who);
			return -1;
		}
		XY_LOGW("tls", "TLS is OFF (--no-tls): what this command"
			" sends and receives crosses the network in plain"
			" text");
		return 0;
	}
	if (!ca && env && *env)
		ca = env;
	if (!ca) {
		fprintf(stderr, "%s: no CA to verify the manager with: give"
			" --tls-ca F (the manager's ca.crt, which it names when"
			" it starts), or --no-tls\n", who);
		return -1;
	}
	if (!(*out = xy_tls_client_ctx(ca, err, sizeof err))) {
		fprintf(stderr, "%s: %s\n", who, err);
		return -1;
	}
	return 0;
}
