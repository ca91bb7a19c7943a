/*
 * msgmac.c: per-message MACs for control connections without TLS
 * (msgmac.h). One keyed HMAC-SHA256 context per direction, kept for the
 * connection's life: each tag re-initialises it with the same key, which
 * costs a hash block rather than a key schedule.
 */
#include "msgmac.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "auth.h"
#include "log.h"

struct xy_msgmac {
	EVP_MAC_CTX *ctx;
	uint64_t seq;
};

void xy_msgmac_destroy(struct xy_msgmac *m)
{
	if (!m)
		return;
	EVP_MAC_CTX_free(m->ctx);
	free(m);
}

struct xy_msgmac *xy_msgmac_create(const void *secret, size_t secret_len,
				   char dir, const uint8_t nonce_s[XY_NONCE_LEN],
				   const uint8_t nonce_c[XY_NONCE_LEN])
{
	struct xy_msgmac *m = calloc(1, sizeof *m);
	uint8_t key[XY_MAC_LEN];
	EVP_MAC *mac = NULL;
	OSSL_PARAM params[2];
	char digest[] = "SHA256";

	if (!m)
		return NULL;
	/* A key OpenSSL could not compute is random (auth.c, fails
	 * closed): the peer's tags then fail. */
	xy_auth_msg_key(secret, secret_len, dir, nonce_s, nonce_c, key);
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
						     digest, 0);
	params[1] = OSSL_PARAM_construct_end();
	if (!(mac = EVP_MAC_fetch(NULL, "HMAC", NULL)) ||
	    !(m->ctx = EVP_MAC_CTX_new(mac)) ||
	    EVP_MAC_init(m->ctx, key, sizeof key, params) != 1)
		goto error;
	EVP_MAC_free(mac);
	OPENSSL_cleanse(key, sizeof key);
	return m;
error:
	XY_LOGE("conn", "cannot set up the message MAC: %s",
		ERR_reason_error_string(ERR_get_error())
			? ERR_reason_error_string(ERR_get_error())
			: "OpenSSL error");
	ERR_clear_error();
	EVP_MAC_free(mac);
	OPENSSL_cleanse(key, sizeof key);
	xy_msgmac_destroy(m);
	return NULL;
}

/* HMAC(key, seq || data), truncated. */
static int compute(struct xy_msgmac *m, const uint8_t *data, size_t n,
		   uint8_t tag[XY_MSGMAC_TAG])
{
	uint8_t seq[8], full[EVP_MAX_MD_SIZE];
	size_t len = 0;

	for (int i = 0; i < 8; i++)
		seq[i] = (uint8_t)(m->seq >> (8 * i));
	/* A NULL key re-initialises with the key set at create. */
	if (EVP_MAC_init(m->ctx, NULL, 0, NULL) != 1 ||
	    EVP_MAC_update(m->ctx, seq, sizeof seq) != 1 ||
	    EVP_MAC_update(m->ctx, data, n) != 1 ||
	    EVP_MAC_final(m->ctx, full, &len, sizeof full) != 1 ||
	    len < XY_MSGMAC_TAG) {
		ERR_clear_error();
		return -1;
	}
	memcpy(tag, full, XY_MSGMAC_TAG);
	return 0;
}

int xy_msgmac_sign(struct xy_msgmac *m, const uint8_t *data, size_t n,
		   uint8_t tag[XY_MSGMAC_TAG])
{
	if (compute(m, data, n, tag) < 0)
		return -1;
	m->seq++;
	return 0;
}

int xy_msgmac_verify(struct xy_msgmac *m, const uint8_t *data, size_t n,
		     const uint8_t tag[XY_MSGMAC_TAG])
{
	uint8_t want[XY_MSGMAC_TAG];

	if (compute(m, data, n, want) < 0 ||
	    CRYPTO_memcmp(want, tag, XY_MSGMAC_TAG) != 0)
		return -1;
	m->seq++;
	return 0;
}

uint64_t xy_msgmac_seq(const struct xy_msgmac *m)
{
	return m->seq;
}
