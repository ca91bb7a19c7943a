/*
 * mtls.h: the manager's TLS (docs/security.md): its CA directory, the
 * server context its control listener accepts with, and the path of the
 * CA certificate that workers and clients are given.
 */
#ifndef XY_MTLS_H
#define XY_MTLS_H

#include <stddef.h>

#include <openssl/ssl.h>

struct xy_manager_options;
struct xy_mtls;

/* Sets up TLS as opt says (tls_dir, no_tls). With no_tls, returns a
 * context whose ctx is NULL, after a warning. NULL with a reason in err
 * on failure. */
struct xy_mtls *xy_mtls_create(const struct xy_manager_options *opt,
			       char *err, size_t errlen);
/* Frees it, and removes a private directory it made. NULL: nothing. */
void xy_mtls_destroy(struct xy_mtls *t);
/* The server context (NULL: plain TCP). */
SSL_CTX *xy_mtls_ctx(const struct xy_mtls *t);
/* The CA certificate's path (NULL: plain TCP). */
const char *xy_mtls_ca(const struct xy_mtls *t);
/* "XYLEM_TLS_CA=path", or "XYLEM_NO_TLS=1": the environment entry that
 * tells a worker started by a pool how to reach the manager. */
const char *xy_mtls_env(const struct xy_mtls *t);

#endif
