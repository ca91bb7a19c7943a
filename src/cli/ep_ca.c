/*
 * ep_ca.c: the shared endpoint's certificate authority (ep_ca.h): its
 * files, the listener's context, client certificates issued from a
 * request, the spawner's check of a certificate the front passed, and
 * revocation. The CA itself is tls.c's (xy_tls_manager_ctx makes it the
 * way a manager's is made); what is here is the client side of it.
 */
#include "ep_ca.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "tls.h"
#include "util.h"

#define PATH_LEN 4200
#define LIST_MAX (16 << 20) /* issued and revoked, read whole */

static int ssl_fail(char *err, size_t len, const char *what)
{
	char why[256];
	xy_tls_error(NULL, why, sizeof why);
	return xy_fail(err, len, EPROTO, "%s: %s", what, why);
}

static void path_of(char *out, const char *state, const char *file)
{
	snprintf(out, PATH_LEN, "%s/%s", state, file);
}

int xy_ep_ca_init(const char *state, char *err, size_t len)
{
	char tls[PATH_LEN];
	struct stat st;
	SSL_CTX *ctx;
	char parent[PATH_LEN], *slash;
	int p[2], status = 0;
	size_t n = 0;
	ssize_t k;
	pid_t pid;

	snprintf(parent, sizeof parent, "%s", state);
	if ((slash = strrchr(parent, '/')) && slash != parent) {
		*slash = '\0';
		xy_mkdir_p(parent); /* /var/lib/xylem, 0755 */
	}
	if (mkdir(state, 0711) < 0 && errno != EEXIST)
		return xy_fail(err, len, errno, "cannot make %s: %s", state,
			       strerror(errno));
	if (lstat(state, &st) < 0 || !S_ISDIR(st.st_mode) ||
	    st.st_uid != geteuid() || (st.st_mode & 022))
		return xy_fail(err, len, EPERM, "%s must be a directory of "
			       "uid %ld that nobody else may write", state,
			       (long)geteuid());
	/* Made (or read) at start: a CA of tls.c's making, whose server
	 * context is dropped; the listener makes its own. In a child, as
	 * server_pem() does: the caller becomes the front, and the CA's
	 * key never enters its memory. The child's error comes by a pipe. */
	path_of(tls, state, "tls");
	if (pipe2(p, O_CLOEXEC) < 0 || (pid = fork()) < 0)
		return xy_fail(err, len, errno, "cannot fork: %s",
			       strerror(errno));
	if (pid == 0) {
		close(p[0]);
		ctx = xy_tls_manager_ctx(tls, NULL, err, len);
		if (!ctx)
			(void)xy_write_all(p[1], err, strlen(err));
		_exit(ctx ? 0 : 1);
	}
	close(p[1]);
	err[0] = '\0';
	while ((k = read(p[0], err + n, len - 1 - n)) != 0 && n < len - 1)
		if (k > 0)
			n += (size_t)k;
		else if (errno != EINTR)
			break;
	err[n] = '\0';
	close(p[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (!n)
		snprintf(err, len, "cannot make or read the CA in %s", tls);
	return -1;
}

/* The listener's certificate and key, PEM, made by a child: the CA's key
 * is read there, never in the front (which keeps this process's memory
 * when it drops root). The child's exit status says if it went well. */
static char *server_pem(const char *state, const char *host, size_t *n,
			char *err, size_t len)
{
	char tls[PATH_LEN], *buf = malloc(65536);
	int p[2], status = 0;
	pid_t pid;

	*n = 0;
	path_of(tls, state, "tls");
	if (!buf || pipe2(p, O_CLOEXEC) < 0 || (pid = fork()) < 0) {
		free(buf);
		xy_fail(err, len, errno, "cannot fork: %s", strerror(errno));
		return NULL;
	}
	if (pid == 0) {
		SSL_CTX *c = xy_tls_manager_ctx(tls, host, err, len);
		FILE *f = c ? fdopen(p[1], "w") : NULL;
		int ok = f && PEM_write_X509(f, SSL_CTX_get0_certificate(c)) &&
			 PEM_write_PrivateKey(f, SSL_CTX_get0_privatekey(c),
					      NULL, NULL, 0, NULL, NULL) &&
			 fflush(f) == 0;
		if (!c)
			fprintf(stderr, "xylem endpoint: %s\n", err);
		_exit(ok ? 0 : 1);
	}
	close(p[1]);
	for (ssize_t k; *n < 65535 &&
			(k = read(p[0], buf + *n, 65535 - *n)) != 0;)
		if (k > 0)
			*n += (size_t)k;
		else if (errno != EINTR)
			break;
	close(p[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		OPENSSL_cleanse(buf, 65536);
		free(buf);
		xy_fail(err, len, EIO, "cannot make the listener's certificate");
		return NULL;
	}
	return buf;
}

SSL_CTX *xy_ep_ca_listener_ctx(const char *state, const char *host,
			       char *err, size_t len)
{
	char ca[PATH_LEN];
	size_t n;
	char *pem = server_pem(state, host, &n, err, len);
	BIO *b = pem ? BIO_new_mem_buf(pem, (int)n) : NULL;
	X509 *cert = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
	EVP_PKEY *key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
	SSL_CTX *ctx = NULL;
	STACK_OF(X509_NAME) *names = NULL;

	if (!pem)
		return NULL;
	path_of(ca, state, "tls/" XY_TLS_CA_CERT);
	if (!cert || !key || !(ctx = SSL_CTX_new(TLS_server_method())) ||
	    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
	    SSL_CTX_use_certificate(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey(ctx, key) != 1 ||
	    SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1 ||
	    !(names = SSL_load_client_CA_file(ca))) {
		ssl_fail(err, len, "cannot make the listener's TLS context");
		SSL_CTX_free(ctx);
		ctx = NULL;
		goto done;
	}
	/* As tls.c's contexts: no tickets, no resumption, no
	 * renegotiation; a client certificate of the CA, for client use. */
	SSL_CTX_set_num_tickets(ctx, 0);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
	SSL_CTX_set_client_CA_list(ctx, names);
	SSL_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER |
			   SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
done:
	BIO_free(b);
	X509_free(cert);
	EVP_PKEY_free(key);
	OPENSSL_cleanse(pem, 65536);
	free(pem);
	return ctx;
}

int xy_ep_ca_serial(X509 *cert, char serial[XY_EP_SERIAL_MAX])
{
	BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), NULL);
	char *hex = bn ? BN_bn2hex(bn) : NULL;
	int rc = hex && strlen(hex) < XY_EP_SERIAL_MAX ? 0 : -1;

	if (rc == 0)
		snprintf(serial, XY_EP_SERIAL_MAX, "%s", hex);
	OPENSSL_free(hex);
	BN_free(bn);
	return rc;
}

/* ------------------------------------------------------------ the lists */

/* In list (lines of words), the line whose word number col (0 or 1) is
 * key: the other word into other (may be NULL). 1 found, 0 not, -1 the
 * file cannot be read (a missing one is empty). */
static int list_find(const char *path, int col, const char *key,
		     char *other, size_t olen)
{
	size_t n;
	char *data = xy_read_file(path, LIST_MAX, &n), *save, *line;
	int found = 0;

	if (!data)
		return errno == ENOENT ? 0 : -1;
	for (line = strtok_r(data, "\n", &save); line && !found;
	     line = strtok_r(NULL, "\n", &save)) {
		char a[256], b[256];
		if (sscanf(line, "%255s %255s", a, b) != 2)
			continue;
		/* Account names are case-sensitive; serials are hex. */
		if ((col ? strcasecmp(b, key) : strcmp(a, key)) == 0) {
			found = 1;
			if (other)
				snprintf(other, olen, "%s", col ? a : b);
		}
	}
	free(data);
	return found;
}

int xy_ep_ca_revoked(const char *state, const char *serial)
{
	char path[PATH_LEN];

	path_of(path, state, "revoked");
	return list_find(path, 0, serial, NULL, 0);
}

/* Appends "SERIAL NAME" to the revocation list (0644: the front, which
 * is not root, reads it on every connection). */
static int revoke_add(const char *state, const char *serial,
		      const char *name, char *err, size_t len)
{
	char path[PATH_LEN], line[512];
	int fd, n;

	path_of(path, state, "revoked");
	fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC,
		  0644);
	if (fd < 0)
		return xy_fail(err, len, errno, "cannot write %s: %s", path,
			       strerror(errno));
	fchmod(fd, 0644);
	n = snprintf(line, sizeof line, "%s %s\n", serial, name);
	int rc = xy_write_all(fd, line, (size_t)n);
	if (fsync(fd) < 0 || close(fd) < 0 || rc < 0)
		return xy_fail(err, len, EIO, "cannot write %s", path);
	return 0;
}

/* Sets name's current serial in the issued list (a new file renamed over
 * the old), and says the one it replaces in old ("" if none). */
static int issued_set(const char *state, const char *name,
		      const char *serial, char old[XY_EP_SERIAL_MAX],
		      char *err, size_t len)
{
	char path[PATH_LEN], tmp[PATH_LEN];
	size_t n = 0;
	char *data, *save, *line;
	FILE *f;
	int fd;

	old[0] = '\0';
	path_of(path, state, "issued");
	path_of(tmp, state, "issued.new");
	data = xy_read_file(path, LIST_MAX, &n);
	if (!data && errno != ENOENT)
		return xy_fail(err, len, errno, "cannot read %s", path);
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		  0600);
	if (fd < 0 || !(f = fdopen(fd, "w"))) {
		if (fd >= 0)
			close(fd);
		free(data);
		return xy_fail(err, len, errno, "cannot write %s", tmp);
	}
	for (line = data ? strtok_r(data, "\n", &save) : NULL; line;
	     line = strtok_r(NULL, "\n", &save)) {
		char a[256], b[256];
		if (sscanf(line, "%255s %255s", a, b) != 2)
			continue;
		if (strcmp(a, name) == 0)
			snprintf(old, XY_EP_SERIAL_MAX, "%.*s",
				 (int)XY_EP_SERIAL_MAX - 1, b);
		else
			fprintf(f, "%s %s\n", a, b);
	}
	fprintf(f, "%s %s\n", name, serial);
	free(data);
	if (fflush(f) != 0 || fsync(fileno(f)) < 0) {
		fclose(f);
		unlink(tmp);
		return xy_fail(err, len, EIO, "cannot write %s", tmp);
	}
	if (fclose(f) != 0 || rename(tmp, path) < 0) {
		unlink(tmp);
		return xy_fail(err, len, EIO, "cannot write %s", path);
	}
	return 0;
}

/* Holds STATE/tls/lock while the lists change: two enrollments, or an
 * enrollment and `xylem endpoint revoke`, do not interleave. */
static int lock_state(const char *state)
{
	char path[PATH_LEN];
	int fd;

	path_of(path, state, "tls/lock");
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd >= 0 && flock(fd, LOCK_EX) < 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

int xy_ep_ca_revoke(const char *state, const char *what,
		    char serial[XY_EP_SERIAL_MAX], char *err, size_t len)
{
	char path[PATH_LEN], name[256] = "-";
	int lock, found, rc;

	path_of(path, state, "issued");
	if ((lock = lock_state(state)) < 0)
		return xy_fail(err, len, errno, "cannot lock %s/tls/lock: %s",
			       state, strerror(errno));
	found = list_find(path, 0, what, serial, XY_EP_SERIAL_MAX);
	if (found == 1) {
		snprintf(name, sizeof name, "%s", what);
	} else {
		size_t i = 0;
		while (what[i] && isxdigit((unsigned char)what[i]))
			i++;
		if (found < 0) {
			close(lock);
			return xy_fail(err, len, errno, "cannot read %s: %s",
				       path, strerror(errno));
		}
		if (i == 0 || what[i] || i >= XY_EP_SERIAL_MAX) {
			close(lock);
			return xy_fail(err, len, EINVAL, "'%s' is neither an "
				       "enrolled account nor a serial", what);
		}
		for (i = 0; what[i]; i++)
			serial[i] = (char)toupper((unsigned char)what[i]);
		serial[i] = '\0';
		list_find(path, 1, serial, name, sizeof name);
	}
	rc = revoke_add(state, serial, name, err, len);
	close(lock);
	return rc;
}

/* -------------------------------------------------------------- issuing */

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ex;
	int rc;

	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	if (!(ex = X509V3_EXT_conf_nid(NULL, &ctx, nid, value)))
		return -1;
	rc = X509_add_ext(cert, ex, -1) == 1 ? 0 : -1;
	X509_EXTENSION_free(ex);
	return rc;
}

/* A key the request may carry: EC (P-256 and up) or RSA of 2048 bits
 * and more. */
static int key_ok(EVP_PKEY *k)
{
	int id = EVP_PKEY_get_base_id(k), bits = EVP_PKEY_get_bits(k);
	return (id == EVP_PKEY_EC && bits >= 256) ||
	       (id == EVP_PKEY_RSA && bits >= 2048);
}

static X509 *client_cert(EVP_PKEY *pub, const char *name, int days,
			 X509 *ca, EVP_PKEY *ca_key)
{
	X509 *c = X509_new();
	uint8_t raw[16];
	BIGNUM *bn = NULL;
	X509_NAME *subj;

	if (!c || RAND_bytes(raw, sizeof raw) != 1)
		goto error;
	raw[0] = (raw[0] & 0x7f) | 0x10; /* positive, 32 hex digits */
	subj = X509_get_subject_name(c);
	if (!(bn = BN_bin2bn(raw, sizeof raw, NULL)) ||
	    !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(c)) ||
	    X509_set_version(c, 2) != 1 ||
	    !X509_gmtime_adj(X509_getm_notBefore(c), -300) ||
	    !X509_gmtime_adj(X509_getm_notAfter(c), days * 86400L) ||
	    X509_set_pubkey(c, pub) != 1 ||
	    X509_NAME_add_entry_by_txt(subj, "O", MBSTRING_ASC,
				       (const unsigned char *)"xylem endpoint",
				       -1, -1, 0) != 1 ||
	    X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_ASC,
				       (const unsigned char *)name, -1, -1,
				       0) != 1 ||
	    X509_set_issuer_name(c, X509_get_subject_name(ca)) != 1 ||
	    add_ext(c, ca, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
	    add_ext(c, ca, NID_key_usage, "critical,digitalSignature") < 0 ||
	    add_ext(c, ca, NID_ext_key_usage, "clientAuth") < 0 ||
	    add_ext(c, ca, NID_subject_key_identifier, "hash") < 0 ||
	    add_ext(c, ca, NID_authority_key_identifier, "keyid:always") < 0 ||
	    !X509_sign(c, ca_key, EVP_sha256()))
		goto error;
	BN_free(bn);
	return c;
error:
	BN_free(bn);
	X509_free(c);
	return NULL;
}

static X509 *read_cert(const char *path)
{
	FILE *f = fopen(path, "re");
	X509 *c = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	if (f)
		fclose(f);
	return c;
}

/* cert and then ca as PEM, in one malloc'd string. */
static char *pem_pair(X509 *cert, X509 *ca)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p = NULL, *out = NULL;
	long n;

	if (b && PEM_write_bio_X509(b, cert) == 1 &&
	    PEM_write_bio_X509(b, ca) == 1 &&
	    (n = BIO_get_mem_data(b, &p)) > 0 && (out = malloc((size_t)n + 1))) {
		memcpy(out, p, (size_t)n);
		out[n] = '\0';
	}
	BIO_free(b);
	return out;
}

int xy_ep_ca_issue(const char *state, const char *name, const uint8_t *csr,
		   size_t n, int days, char **pem,
		   char serial[XY_EP_SERIAL_MAX], char *err, size_t len)
{
	char path[PATH_LEN], old[XY_EP_SERIAL_MAX];
	const unsigned char *p = csr;
	X509_REQ *req = d2i_X509_REQ(NULL, &p, (long)n);
	EVP_PKEY *pub = req ? X509_REQ_get0_pubkey(req) : NULL, *ca_key = NULL;
	X509 *ca = NULL, *cert = NULL;
	FILE *f;
	int rc = -1, lock = -1;

	*pem = NULL;
	if (!req || p != csr + n || !pub) {
		xy_fail(err, len, EINVAL, "the request is not a certificate "
			"request (PKCS#10, DER)");
		goto done;
	}
	if (X509_REQ_verify(req, pub) != 1 || !key_ok(pub)) {
		xy_fail(err, len, EINVAL, "the request's signature does not "
			"hold, or its key is weak (want EC P-256 or RSA 2048)");
		goto done;
	}
	path_of(path, state, "tls/" XY_TLS_CA_KEY);
	if ((f = fopen(path, "re"))) {
		ca_key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
	}
	path_of(path, state, "tls/" XY_TLS_CA_CERT);
	if (!ca_key || !(ca = read_cert(path))) {
		ssl_fail(err, len, "cannot read the endpoint's CA");
		goto done;
	}
	if (!(cert = client_cert(pub, name, days, ca, ca_key)) ||
	    xy_ep_ca_serial(cert, serial) < 0 || !(*pem = pem_pair(cert, ca))) {
		ssl_fail(err, len, "cannot make the certificate");
		goto done;
	}
	if ((lock = lock_state(state)) < 0) {
		xy_fail(err, len, errno, "cannot lock the CA: %s",
			strerror(errno));
		goto done;
	}
	/* The new one counts from here; the one it replaces is revoked. */
	if (issued_set(state, name, serial, old, err, len) < 0 ||
	    (old[0] && revoke_add(state, old, name, err, len) < 0))
		goto done;
	rc = 0;
done:
	if (lock >= 0)
		close(lock);
	if (rc < 0) {
		free(*pem);
		*pem = NULL;
	}
	X509_REQ_free(req);
	EVP_PKEY_free(ca_key);
	X509_free(ca);
	X509_free(cert);
	return rc;
}

/* ------------------------------------------------------------- checking */

int xy_ep_ca_check(const char *state, const uint8_t *der, size_t n,
		   char *name, size_t namelen, char *err, size_t len)
{
	char path[PATH_LEN], serial[XY_EP_SERIAL_MAX], cur[XY_EP_SERIAL_MAX];
	const unsigned char *p = der;
	X509 *cert = d2i_X509(NULL, &p, (long)n), *ca = NULL;
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *vctx = X509_STORE_CTX_new();
	int rc = -1, k;

	path_of(path, state, "tls/" XY_TLS_CA_CERT);
	if (!cert || p != der + n) {
		xy_fail(err, len, EINVAL, "not a certificate");
		goto done;
	}
	if (!store || !vctx || !(ca = read_cert(path)) ||
	    X509_STORE_add_cert(store, ca) != 1 ||
	    X509_STORE_CTX_init(vctx, store, cert, NULL) != 1 ||
	    X509_STORE_CTX_set_purpose(vctx, X509_PURPOSE_SSL_CLIENT) != 1) {
		ssl_fail(err, len, "cannot check the certificate");
		goto done;
	}
	if (X509_verify_cert(vctx) != 1) {
		xy_fail(err, len, EACCES, "the certificate does not verify: "
			"%s", X509_verify_cert_error_string(
				X509_STORE_CTX_get_error(vctx)));
		goto done;
	}
	k = X509_NAME_get_text_by_NID(X509_get_subject_name(cert),
				      NID_commonName, name, (int)namelen);
	if (k <= 0 || (size_t)k >= namelen || strlen(name) != (size_t)k ||
	    xy_ep_ca_serial(cert, serial) < 0) {
		xy_fail(err, len, EACCES, "the certificate names no account");
		goto done;
	}
	if ((k = xy_ep_ca_revoked(state, serial)) != 0) {
		xy_fail(err, len, k < 0 ? EIO : EACCES, k < 0 ? "the "
			"revocation list cannot be read" : "the certificate "
			"(serial %s) is revoked", serial);
		goto done;
	}
	path_of(path, state, "issued");
	if ((k = list_find(path, 0, name, cur, sizeof cur)) < 0) {
		xy_fail(err, len, EIO, "the list of issued certificates "
			"cannot be read");
		goto done;
	}
	if (k != 1 || strcasecmp(cur, serial)) {
		xy_fail(err, len, EACCES, "the certificate (serial %s) is not "
			"%s's current one", serial, name);
		goto done;
	}
	rc = 0;
done:
	X509_STORE_CTX_free(vctx);
	X509_STORE_free(store);
	X509_free(cert);
	X509_free(ca);
	ERR_clear_error();
	return rc;
}

const char *xy_ep_ca_default_state(char *buf, size_t len)
{
	const char *home = getenv("HOME");

	if (geteuid() == 0 || !home || home[0] != '/')
		snprintf(buf, len, "/var/lib/xylem/endpoint");
	else
		snprintf(buf, len, "%s/.xylem/endpoint-ca", home);
	return buf;
}
