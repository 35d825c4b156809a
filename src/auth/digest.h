/*
 * digest.h - message digests, MACs and base64 (OpenSSL stays inside
 * src/auth/).
 */
#ifndef NX_AUTH_DIGEST_H
#define NX_AUTH_DIGEST_H

#include "core/nx.h"

#define NX_SHA256_HEX_LEN 64
#define NX_SHA256_LEN 32

/* Writes the lower-case hex SHA-256 of data[0..n) and a NUL into
 * out[65]. NX_OK, or NX_EINTERNAL when OpenSSL fails (out is then ""). */
int nx_sha256_hex(const void *data, size_t n, char out[NX_SHA256_HEX_LEN + 1]);

/* True when given equals want, compared in constant time (their SHA-256
 * digests through CRYPTO_memcmp, so the length does not show either).
 * False when either is NULL. */
bool nx_secret_equal(const char *given, const char *want);
/* HMAC-SHA256 under key[0..keylen) of the concatenation of the nparts
 * parts[i][0..lens[i]) (no copy is made of them) into out[32]. NX_OK, or
 * NX_EINTERNAL when OpenSSL fails. */
int nx_hmac_sha256(const void *key, size_t keylen, const void *const *parts,
                   const size_t *lens, int nparts, unsigned char out[NX_SHA256_LEN]);

/* Standard base64 (RFC 4648 section 4, with padding) of in[0..n) and a NUL
 * into out; size must be at least 4 * ((n + 2) / 3) + 1. Returns the
 * length written. */
size_t nx_base64(const unsigned char *in, size_t n, char *out, size_t size);

#endif
