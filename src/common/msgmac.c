/*
 * msgmac.c: per-message MACs for control connections without TLS
 * (msgmac.h). One AES-256-GCM context per direction, keyed once for the
 * connection's life; each tag only sets the nonce. GMAC rather than
 * HMAC-SHA256: with AES-NI it costs a fraction of the HMAC's two
 * SHA-256 passes a message (bench_tls_records).
 */
#include "msgmac.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "auth.h"
#include "log.h"

struct xy_msgmac {
	EVP_CIPHER_CTX *ctx; /* AES-256-GCM, keyed once */
	uint64_t seq;
};

void xy_msgmac_destroy(struct xy_msgmac *m)
{
	if (!m)
		return;
	EVP_CIPHER_CTX_free(m->ctx);
	free(m);
}

struct xy_msgmac *xy_msgmac_create(const void *secret, size_t secret_len,
				   char dir, const uint8_t nonce_s[XY_NONCE_LEN],
				   const uint8_t nonce_c[XY_NONCE_LEN])
{
	struct xy_msgmac *m = calloc(1, sizeof *m);
	uint8_t key[XY_MAC_LEN];

	if (!m)
		return NULL;
	/* A key OpenSSL could not compute is random (auth.c, fails
	 * closed): the peer's tags then fail. */
	xy_auth_msg_key(secret, secret_len, dir, nonce_s, nonce_c, key);
	if (!(m->ctx = EVP_CIPHER_CTX_new()) ||
	    EVP_EncryptInit_ex(m->ctx, EVP_aes_256_gcm(), NULL, key, NULL) !=
		    1) {
		XY_LOGE("conn", "cannot set up the message MAC: %s",
			ERR_reason_error_string(ERR_peek_error())
				? ERR_reason_error_string(ERR_peek_error())
				: "OpenSSL error");
		ERR_clear_error();
		OPENSSL_cleanse(key, sizeof key);
		xy_msgmac_destroy(m);
		return NULL;
	}
	OPENSSL_cleanse(key, sizeof key);
	return m;
}

/* GMAC: AES-256-GCM over nothing, with the frame as associated data and
 * the sequence number as the nonce (never repeated under one key: each
 * key is one direction of one connection). */
static int compute(struct xy_msgmac *m, const uint8_t *data, size_t n,
		   uint8_t tag[XY_MSGMAC_TAG])
{
	uint8_t iv[12] = {0};
	int len;

	for (int i = 0; i < 8; i++)
		iv[4 + i] = (uint8_t)(m->seq >> (8 * i));
	if (n > INT_MAX ||
	    EVP_EncryptInit_ex(m->ctx, NULL, NULL, NULL, iv) != 1 ||
	    EVP_EncryptUpdate(m->ctx, NULL, &len, data, (int)n) != 1 ||
	    EVP_EncryptFinal_ex(m->ctx, iv, &len) != 1 ||
	    EVP_CIPHER_CTX_ctrl(m->ctx, EVP_CTRL_GCM_GET_TAG, XY_MSGMAC_TAG,
				tag) != 1) {
		ERR_clear_error();
		return -1;
	}
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
