/*
 * digest.c - SHA-256 through OpenSSL's EVP interface.
 *
 * Used for the checksums of migration files, and to compare a presented
 * secret with the configured one (METRICS_TOKEN) in constant time; kept
 * here because auth/ is the only module that talks to the crypto library.
 */
#include "core/nx.h"
#include "auth/digest.h"
#include "core/util.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <string.h>

int nx_sha256_hex(const void *data, size_t n, char out[NX_SHA256_HEX_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;

    out[0] = '\0';
    if (EVP_Digest(data, n, md, &len, EVP_sha256(), NULL) != 1 || len != 32)
        return NX_EINTERNAL;
    nx_hex(md, len, out);
    return NX_OK;
}

bool nx_secret_equal(const char *given, const char *want)
{
    unsigned char a[EVP_MAX_MD_SIZE], b[EVP_MAX_MD_SIZE];
    unsigned int alen = 0, blen = 0;
    if (!given || !want)
        return false;
    /* digests of equal length: neither the content nor the length of the
     * secret shows in how long the comparison takes */
    if (EVP_Digest(given, strlen(given), a, &alen, EVP_sha256(), NULL) != 1 ||
        EVP_Digest(want, strlen(want), b, &blen, EVP_sha256(), NULL) != 1 || alen != blen)
        return false;
    return CRYPTO_memcmp(a, b, alen) == 0;
}
