/*
 * mtls.c: the manager's TLS setup (mtls.h). The certificate files are
 * made by tls.c; this file picks the directory, loads the server
 * context, and says in the log what runs without TLS.
 */
#include "mtls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "tls.h"
#include "util.h"
#include "xylem.h"

#define WHO "manager"

struct xy_mtls {
	SSL_CTX *ctx;
	int private_dir; /* made here: removed by destroy */
	char dir[4096];
	char ca[4200];
	char env[4300];
};

static int make_private_dir(struct xy_mtls *t, char *err, size_t errlen)
{
	const char *base = getenv("TMPDIR");
	snprintf(t->dir, sizeof t->dir, "%s/xylem-tls-XXXXXX",
		 base && *base ? base : "/tmp");
	if (!mkdtemp(t->dir))
		return xy_fail(err, errlen, errno,
			       "cannot make a TLS directory in %s: %s",
			       base && *base ? base : "/tmp", strerror(errno));
	t->private_dir = 1;
	return 0;
}

struct xy_mtls *xy_mtls_create(const struct xy_manager_options *opt,
			       char *err, size_t errlen)
{
	struct xy_mtls *t = calloc(1, sizeof *t);
	if (!t) {
		xy_fail(err, errlen, ENOMEM, "out of memory");
		return NULL;
	}
	if (opt->no_tls) {
		XY_LOGW(WHO, "TLS is OFF (--no-tls): commands, files and"
			" results cross the network in plain text, and anyone"
			" on the path can read or change them");
		snprintf(t->env, sizeof t->env, "XYLEM_NO_TLS=1");
		return t;
	}
	if (opt->tls_dir)
		snprintf(t->dir, sizeof t->dir, "%s", opt->tls_dir);
	else if (make_private_dir(t, err, errlen) < 0)
		goto error;
	snprintf(t->ca, sizeof t->ca, "%s/" XY_TLS_CA_CERT, t->dir);
	if (!(t->ctx = xy_tls_manager_ctx(t->dir, opt->host, err, errlen)))
		goto error;
	snprintf(t->env, sizeof t->env, "XYLEM_TLS_CA=%s", t->ca);
	XY_LOGI(WHO, "TLS 1.3: workers and clients verify this manager"
		" against %s", t->ca);
	return t;
error:
	xy_mtls_destroy(t);
	return NULL;
}

void xy_mtls_destroy(struct xy_mtls *t)
{
	if (!t)
		return;
	SSL_CTX_free(t->ctx);
	if (t->private_dir)
		xy_rm_rf(t->dir);
	free(t);
}

SSL_CTX *xy_mtls_ctx(const struct xy_mtls *t)
{
	return t ? t->ctx : NULL;
}

const char *xy_mtls_ca(const struct xy_mtls *t)
{
	return t && t->ctx ? t->ca : NULL;
}

const char *xy_mtls_env(const struct xy_mtls *t)
{
	return t->env;
}
