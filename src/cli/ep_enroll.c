/*
 * ep_enroll.c: `xylem endpoint enroll` and `xylem endpoint revoke`
 * (ep_tls.h, docs/endpoint.md, "Remote users").
 *
 * enroll runs as the user, on the login node, over their ordinary SSH
 * login: it makes a key here, sends a certificate request through the
 * endpoint's Unix socket (where the kernel says who is asking), and
 * writes the key, the certificate the endpoint signed and the endpoint's
 * CA to ~/.xylem/endpoint-client, 0600. revoke runs as root, on the
 * endpoint's state directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "cli.h"
#include "ep_ca.h"
#include "ep_tls.h"
#include "util.h"

#define WHO "xylem endpoint"
#define ANSWER_MAX 65536

static void enroll_usage(FILE *out)
{
	fprintf(out,
		"usage: xylem endpoint enroll --socket PATH [--dir DIR]\n\n"
		"Asks the endpoint at PATH (its Unix socket, on this login"
		" node) for a client\ncertificate, for the account you are"
		" logged in as. The key is made here and\nnever leaves this"
		" machine but in the files you copy. Writes client.key,\n"
		"client.crt and ca.crt (0600) to DIR (default"
		" ~/.xylem/endpoint-client) and\nsays what to copy to your"
		" laptop. Enrolling again revokes the previous\ncertificate.\n"
		"\nExit status: 0 enrolled, 1 refused or failed, 2 a bad"
		" command line.\n");
}

static void revoke_usage(FILE *out)
{
	fprintf(out,
		"usage: xylem endpoint revoke [--state DIR] USER|SERIAL\n\n"
		"Revokes USER's current client certificate, or the one with"
		" SERIAL (hex), in\nthe endpoint's state directory DIR"
		" (default /var/lib/xylem/endpoint). The\nendpoint refuses it"
		" from its next connection on, and cuts the connections\n"
		"open with it within about a second.\n\n"
		"Exit status: 0 revoked, 1 failed, 2 a bad command line.\n");
}

/* Makes d (0700, the user's, not a link), and ~/.xylem above it if
 * home is given (the default place). */
static int own_dir(const char *home, const char *d)
{
	char top[4200];
	struct stat st;

	snprintf(top, sizeof top, "%s/.xylem", home ? home : "");
	if (home && mkdir(top, 0700) < 0 && errno != EEXIST)
		return -1;
	if (mkdir(d, 0700) < 0 && errno != EEXIST)
		return -1;
	if (lstat(d, &st) < 0 || !S_ISDIR(st.st_mode) ||
	    st.st_uid != getuid() || (st.st_mode & 077)) {
		errno = EPERM;
		return -1;
	}
	return 0;
}

/* Writes n bytes of data to dir/name, 0600, through a new file renamed
 * into place. */
static int write_private(const char *dir, const char *name,
			 const char *data, size_t n)
{
	char path[4300], tmp[4400];
	int fd, rc;

	snprintf(path, sizeof path, "%s/%s", dir, name);
	snprintf(tmp, sizeof tmp, "%s.new", path);
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		  0600);
	if (fd < 0)
		return -1;
	rc = xy_write_all(fd, data, n);
	if (fsync(fd) < 0 || close(fd) < 0 || rc < 0 || rename(tmp, path) < 0)
		return -1;
	return 0;
}

/* A new P-256 key into *key and a request for it (DER, base64) into b64
 * (malloc'd). The subject is informational: the endpoint ignores it. */
static char *make_request(const char *name, EVP_PKEY **key)
{
	X509_REQ *req = X509_REQ_new();
	unsigned char *der = NULL;
	char *b64 = NULL;
	int n;

	*key = EVP_EC_gen("P-256");
	if (!req || !*key || X509_REQ_set_pubkey(req, *key) != 1 ||
	    X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req), "CN",
				       MBSTRING_ASC,
				       (const unsigned char *)name, -1, -1,
				       0) != 1 ||
	    !X509_REQ_sign(req, *key, EVP_sha256()) ||
	    (n = i2d_X509_REQ(req, &der)) <= 0 ||
	    !(b64 = malloc((size_t)n * 2 + 8)))
		goto done;
	EVP_EncodeBlock((unsigned char *)b64, der, n);
done:
	OPENSSL_free(der);
	X509_REQ_free(req);
	return b64;
}

/* Sends "enroll B64" to the endpoint at path; its whole answer into a
 * malloc'd string, or NULL (said on stderr). */
static char *ask_enroll(const char *path, const char *b64)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = 30};
	char *ans = malloc(ANSWER_MAX + 1);
	size_t n = 0;
	ssize_t k;
	int fd;

	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (!ans || fd < 0 ||
	    connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		fprintf(stderr, WHO ": cannot reach the endpoint at %s: %s\n",
			path, strerror(errno));
		if (fd >= 0)
			close(fd);
		free(ans);
		return NULL;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	/* One write: the front looks at the line when it is whole. */
	char *line = malloc(strlen(b64) + 9);
	if (line)
		sprintf(line, "enroll %s\n", b64);
	if (!line || xy_write_all(fd, line, strlen(line)) < 0) {
		free(line);
		fprintf(stderr, WHO ": the endpoint at %s closed: %s\n", path,
			strerror(errno));
		close(fd);
		free(ans);
		return NULL;
	}
	free(line);
	while (n < ANSWER_MAX && (k = read(fd, ans + n, ANSWER_MAX - n)) > 0)
		n += (size_t)k;
	close(fd);
	ans[n] = '\0';
	return ans;
}

static int enroll(const char *sock, const char *dir_opt)
{
	struct passwd *pw = getpwuid(getuid());
	char dir[4200], name[64], serial[XY_EP_SERIAL_MAX], listen[300];
	EVP_PKEY *key = NULL;
	char *b64, *ans = NULL, *pem, *ca, *keypem = NULL;
	BIO *kb = NULL;
	long kn;
	int rc = XY_EXIT_FAIL;

	if (!pw || pw->pw_dir[0] != '/') {
		fprintf(stderr, WHO ": uid %ld has no home here\n",
			(long)getuid());
		return XY_EXIT_FAIL;
	}
	if (dir_opt)
		snprintf(dir, sizeof dir, "%s", dir_opt);
	else
		snprintf(dir, sizeof dir, "%s/.xylem/endpoint-client",
			 pw->pw_dir);
	if (own_dir(dir_opt ? NULL : pw->pw_dir, dir) < 0) {
		fprintf(stderr, WHO ": %s must be a directory of yours, 0700, "
			"not a link: %s\n", dir, strerror(errno));
		return XY_EXIT_FAIL;
	}
	if (!(b64 = make_request(pw->pw_name, &key))) {
		fprintf(stderr, WHO ": cannot make a key and a request\n");
		goto done;
	}
	if (!(ans = ask_enroll(sock, b64)))
		goto done;
	if (strncmp(ans, "error ", 6) == 0) {
		fprintf(stderr, WHO ": refused: %s", ans + 6);
		goto done;
	}
	pem = strchr(ans, '\n');
	ca = pem ? strstr(pem + 1, "-----BEGIN CERTIFICATE-----") : NULL;
	ca = ca ? strstr(ca + 1, "-----BEGIN CERTIFICATE-----") : NULL;
	if (!ca || sscanf(ans, "ok enrolled %63s %63s %299s", name, serial,
			  listen) != 3) {
		fprintf(stderr, WHO ": no answer from the endpoint at %s%s\n",
			sock, ans[0] ? " (a garbled one)" : "");
		goto done;
	}
	pem++;
	if (!(kb = BIO_new(BIO_s_mem())) ||
	    PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL) != 1 ||
	    (kn = BIO_get_mem_data(kb, &keypem)) <= 0 ||
	    write_private(dir, "client.key", keypem, (size_t)kn) < 0 ||
	    write_private(dir, "client.crt", pem, (size_t)(ca - pem)) < 0 ||
	    write_private(dir, "ca.crt", ca, strlen(ca)) < 0) {
		fprintf(stderr, WHO ": cannot write to %s: %s\n", dir,
			strerror(errno));
		goto done;
	}
	printf("Enrolled: a client certificate for %s (serial %s) for the "
	       "endpoint at %s.\n"
	       "Written to %s, 0600:\n"
	       "  client.key  your private key (made here; it has not left this "
	       "machine)\n"
	       "  client.crt  your certificate\n"
	       "  ca.crt      the endpoint's CA\n\n"
	       "Copy the three files to ~/.xylem/endpoint-client/ on your "
	       "laptop (mode 0600),\ne.g. there: scp -p 'LOGIN-NODE:%s/*' "
	       "~/.xylem/endpoint-client/\nand use the endpoint from Python"
	       " with\n"
	       "  xylem.Executor(endpoint=\"%s\")\n"
	       "(or name the files with tls_cert=, tls_key=, tls_ca=, or "
	       "XYLEM_ENDPOINT_CERT,\nXYLEM_ENDPOINT_KEY, XYLEM_ENDPOINT_CA)."
	       " Enrolling again revokes this certificate.\n",
	       name, serial, listen, dir, dir, listen);
	rc = XY_EXIT_OK;
done:
	BIO_free(kb);
	EVP_PKEY_free(key);
	free(b64);
	free(ans);
	return rc;
}

int xy_cli_endpoint_enroll(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"socket", required_argument, NULL, 's'},
		{"dir", required_argument, NULL, 'd'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *sock = NULL, *dir = NULL;
	int c;

	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 's': sock = optarg; break;
		case 'd': dir = optarg; break;
		case 'h': enroll_usage(stdout); return XY_EXIT_OK;
		default:
			fprintf(stderr, WHO " enroll: unknown option or "
				"missing value: '%s'\n", argv[optind - 1]);
			return XY_EXIT_USAGE;
		}
	}
	if (!sock || optind < argc) {
		enroll_usage(stderr);
		return XY_EXIT_USAGE;
	}
	return enroll(sock, dir);
}

int xy_cli_endpoint_revoke(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"state", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	char state[4200], serial[XY_EP_SERIAL_MAX], err[512];
	int c;

	xy_ep_ca_default_state(state, sizeof state);
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 's': snprintf(state, sizeof state, "%s", optarg); break;
		case 'h': revoke_usage(stdout); return XY_EXIT_OK;
		default:
			fprintf(stderr, WHO " revoke: unknown option or "
				"missing value: '%s'\n", argv[optind - 1]);
			return XY_EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		revoke_usage(stderr);
		return XY_EXIT_USAGE;
	}
	if (xy_ep_ca_revoke(state, argv[optind], serial, err, sizeof err) <
	    0) {
		fprintf(stderr, WHO " revoke: %s\n", err);
		return XY_EXIT_FAIL;
	}
	printf("revoked certificate %s (%s): the endpoint refuses it from its"
	       " next connection on, and cuts those open with it\n", serial,
	       argv[optind]);
	return XY_EXIT_OK;
}
