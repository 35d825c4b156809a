/*
 * digest.h - message digests (OpenSSL stays inside src/auth/).
 */
#ifndef NX_AUTH_DIGEST_H
#define NX_AUTH_DIGEST_H

#include "core/nx.h"

#define NX_SHA256_HEX_LEN 64

/* Writes the lower-case hex SHA-256 of data[0..n) and a NUL into
 * out[65]. NX_OK, or NX_EINTERNAL when OpenSSL fails (out is then ""). */
int nx_sha256_hex(const void *data, size_t n, char out[NX_SHA256_HEX_LEN + 1]);

/* True when given equals want, compared in constant time (their SHA-256
 * digests through CRYPTO_memcmp, so the length does not show either).
 * False when either is NULL. */
bool nx_secret_equal(const char *given, const char *want);

#endif
