/*
 * test_ep_ca.c: unit tests for the shared endpoint's CA (src/cli/ep_ca.h):
 * certificates issued for the name the endpoint gives, whatever the
 * request says; the spawner's check (the CA, the current certificate, the
 * revocation list); revocation by account and by serial.
 */
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "ep_ca.h"
#include "harness.h"

/* A request (DER, malloc'd, its length in *n) for a new key, whose
 * subject says cn. */
static unsigned char *request(const char *cn, int *n)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509_REQ *req = X509_REQ_new();
	unsigned char *der = NULL;

	XY_CHECK(key && req);
	XY_CHECK(X509_REQ_set_pubkey(req, key) == 1);
	XY_CHECK(X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req),
					    "CN", MBSTRING_ASC,
					    (const unsigned char *)cn, -1, -1,
					    0) == 1);
	XY_CHECK(X509_REQ_sign(req, key, EVP_sha256()) > 0);
	*n = i2d_X509_REQ(req, &der);
	XY_CHECK(*n > 0);
	X509_REQ_free(req);
	EVP_PKEY_free(key);
	return der;
}

/* The first certificate of pem, DER (malloc'd), its CN into cn. */
static unsigned char *first_cert(const char *pem, int *n, char cn[64])
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *c = PEM_read_bio_X509(b, NULL, NULL, NULL);
	unsigned char *der = NULL;

	XY_CHECK(c);
	X509_NAME_get_text_by_NID(X509_get_subject_name(c), NID_commonName, cn,
				  64);
	*n = i2d_X509(c, &der);
	X509_free(c);
	BIO_free(b);
	return der;
}

static const char *state(const char *name)
{
	char err[256];
	const char *d = xy_test_path(name);
	XY_CHECK(xy_ep_ca_init(d, err, sizeof err) == 0);
	return d;
}

/* Issues a certificate for name; its DER into *der. */
static void issue(const char *st, const char *claim, const char *name,
		  unsigned char **der, int *n, char serial[XY_EP_SERIAL_MAX])
{
	char err[256], cn[64] = "", *pem = NULL;
	int rn;
	unsigned char *req = request(claim, &rn);

	XY_CHECK(xy_ep_ca_issue(st, name, req, (size_t)rn, 30, &pem, serial,
				err, sizeof err) == 0);
	*der = first_cert(pem, n, cn);
	XY_CHECK(strcmp(cn, name) == 0);
	/* The certificate, then the CA's. */
	XY_CHECK(strstr(strstr(pem, "BEGIN CERTIFICATE") + 1,
			"BEGIN CERTIFICATE"));
	free(pem);
	OPENSSL_free(req);
}

static void t_init_modes(void)
{
	const char *st = state("st");
	char p[4200];
	struct stat s;

	XY_CHECK(stat(st, &s) == 0 && (s.st_mode & 0777) == 0711);
	snprintf(p, sizeof p, "%s/tls", st);
	XY_CHECK(stat(p, &s) == 0 && (s.st_mode & 0777) == 0700);
	snprintf(p, sizeof p, "%s/tls/ca.key", st);
	XY_CHECK(stat(p, &s) == 0 && (s.st_mode & 0777) == 0600);
}

static void t_issued_for_the_name_given(void)
{
	const char *st = state("st");
	char serial[XY_EP_SERIAL_MAX], name[64], err[256];
	unsigned char *der;
	int n;

	/* The request says bob; the endpoint says alice. */
	issue(st, "bob", "alice", &der, &n, serial);
	XY_CHECK(xy_ep_ca_check(st, der, (size_t)n, name, sizeof name, err,
				sizeof err) == 0);
	XY_CHECK(strcmp(name, "alice") == 0);
	XY_CHECK_EQ(xy_ep_ca_revoked(st, serial), 0);
	OPENSSL_free(der);
}

static void t_reenroll_revokes_the_previous(void)
{
	const char *st = state("st");
	char s1[XY_EP_SERIAL_MAX], s2[XY_EP_SERIAL_MAX], name[64], err[256];
	unsigned char *d1, *d2;
	int n1, n2;

	issue(st, "alice", "alice", &d1, &n1, s1);
	issue(st, "alice", "alice", &d2, &n2, s2);
	XY_CHECK(strcmp(s1, s2) != 0);
	XY_CHECK_EQ(xy_ep_ca_revoked(st, s1), 1);
	XY_CHECK(xy_ep_ca_check(st, d1, (size_t)n1, name, sizeof name, err,
				sizeof err) < 0);
	XY_CHECK(strstr(err, "revoked"));
	XY_CHECK(xy_ep_ca_check(st, d2, (size_t)n2, name, sizeof name, err,
				sizeof err) == 0);
	OPENSSL_free(d1);
	OPENSSL_free(d2);
}

static void t_revoke_by_account_and_serial(void)
{
	const char *st = state("st");
	char sa[XY_EP_SERIAL_MAX], sb[XY_EP_SERIAL_MAX], got[XY_EP_SERIAL_MAX];
	char name[64], err[256], lower[XY_EP_SERIAL_MAX];
	unsigned char *da, *db;
	int na, nb;

	issue(st, "x", "alice", &da, &na, sa);
	issue(st, "x", "bob", &db, &nb, sb);
	XY_CHECK(xy_ep_ca_revoke(st, "alice", got, err, sizeof err) == 0);
	XY_CHECK(strcmp(got, sa) == 0);
	XY_CHECK(xy_ep_ca_check(st, da, (size_t)na, name, sizeof name, err,
				sizeof err) < 0);
	XY_CHECK(xy_ep_ca_check(st, db, (size_t)nb, name, sizeof name, err,
				sizeof err) == 0);
	/* By serial, in either case. */
	for (size_t i = 0; i <= strlen(sb); i++)
		lower[i] = (char)(sb[i] >= 'A' && sb[i] <= 'F' ? sb[i] + 32
								 : sb[i]);
	XY_CHECK(xy_ep_ca_revoke(st, lower, got, err, sizeof err) == 0);
	XY_CHECK(xy_ep_ca_check(st, db, (size_t)nb, name, sizeof name, err,
				sizeof err) < 0);
	XY_CHECK(xy_ep_ca_revoke(st, "nobody-here", got, err, sizeof err) < 0);
	OPENSSL_free(da);
	OPENSSL_free(db);
}

static void t_another_cas_certificate(void)
{
	const char *a = state("a"), *b = state("b");
	char serial[XY_EP_SERIAL_MAX], name[64], err[256];
	unsigned char *der;
	int n;

	issue(b, "alice", "alice", &der, &n, serial);
	XY_CHECK(xy_ep_ca_check(a, der, (size_t)n, name, sizeof name, err,
				sizeof err) < 0);
	XY_CHECK(strstr(err, "does not verify"));
	OPENSSL_free(der);
}

static void t_bad_requests(void)
{
	const char *st = state("st");
	char serial[XY_EP_SERIAL_MAX], err[256], *pem = NULL;
	int n;
	unsigned char *req = request("alice", &n);

	XY_CHECK(xy_ep_ca_issue(st, "alice", (const uint8_t *)"junk", 4, 30,
				&pem, serial, err, sizeof err) < 0);
	XY_CHECK(!pem);
	/* A request whose signature does not hold: the asker need not
	 * hold the key. */
	req[n - 3] ^= 0x55;
	XY_CHECK(xy_ep_ca_issue(st, "alice", req, (size_t)n, 30, &pem, serial,
				err, sizeof err) < 0);
	XY_CHECK(!pem);
	/* Trailing bytes. */
	OPENSSL_free(req);
	req = request("alice", &n);
	unsigned char *more = malloc((size_t)n + 1);
	memcpy(more, req, (size_t)n);
	more[n] = 0;
	XY_CHECK(xy_ep_ca_issue(st, "alice", more, (size_t)n + 1, 30, &pem,
				serial, err, sizeof err) < 0);
	free(more);
	OPENSSL_free(req);
}

int main(int argc, char **argv)
{
	static const struct xy_test tests[] = {
		XY_TEST(t_init_modes),
		XY_TEST(t_issued_for_the_name_given),
		XY_TEST(t_reenroll_revokes_the_previous),
		XY_TEST(t_revoke_by_account_and_serial),
		XY_TEST(t_another_cas_certificate),
		XY_TEST(t_bad_requests),
		{0},
	};
	return xy_test_main(argc, argv, tests);
}
