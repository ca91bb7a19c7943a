/*
 * cwl_exec_main.c: the `xylem-cwl-exec` program, `xylem cwl-exec` alone
 * (cwl_exec.c), so that the task of each CWL tool run loads only the
 * libraries the runner needs (docs/cwl.md).
 */
#include <openssl/crypto.h>

#include "cli.h"

int main(int argc, char **argv)
{
	/* The runner uses OpenSSL for SHA-1 checksums only. Its default
	 * start reads openssl.cnf and registers every cipher and digest by
	 * name, which took about 1 ms of each tool run's 8 (bench
	 * cwl_scatter.py, perf): none of that is needed to hash. */
	OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG |
				    OPENSSL_INIT_NO_ADD_ALL_CIPHERS |
				    OPENSSL_INIT_NO_ADD_ALL_DIGESTS,
			    NULL);
	return xy_cli_cwl_exec(argc, argv);
}
