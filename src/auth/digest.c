/*
 * digest.c - SHA-256, HMAC-SHA256 and base64 through OpenSSL.
 *
 * Used for the checksums of migration files, the signatures of webhooks,
 * and to compare a presented secret with the configured one
 * (METRICS_TOKEN) in constant time; kept here because auth/ is the only
 * module that talks to the crypto library.
 */
#include "core/nx.h"
#include "auth/digest.h"
#include "core/util.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <pthread.h>
#include <string.h>

/* The HMAC implementation, fetched once (a fetch per call takes locks). */
static EVP_MAC *hmac;
static pthread_once_t hmac_once = PTHREAD_ONCE_INIT;
static void hmac_fetch(void) { hmac = EVP_MAC_fetch(NULL, "HMAC", NULL); }

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

int nx_hmac_sha256(const void *key, size_t keylen, const void *const *parts,
                   const size_t *lens, int nparts, unsigned char out[NX_SHA256_LEN])
{
    pthread_once(&hmac_once, hmac_fetch);
    EVP_MAC_CTX *ctx = hmac ? EVP_MAC_CTX_new(hmac) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", "SHA256", 0),
                           OSSL_PARAM_construct_end()};
    size_t len = 0;
    int ok = ctx && EVP_MAC_init(ctx, key, keylen, params) == 1;
    for (int i = 0; ok && i < nparts; i++)
        ok = EVP_MAC_update(ctx, parts[i], lens[i]) == 1;
    ok = ok && EVP_MAC_final(ctx, out, &len, NX_SHA256_LEN) == 1 && len == NX_SHA256_LEN;
    EVP_MAC_CTX_free(ctx);
    return ok ? NX_OK : NX_EINTERNAL;
}

size_t nx_base64(const unsigned char *in, size_t n, char *out, size_t size)
{
    NX_ASSERT(size >= 4 * ((n + 2) / 3) + 1 && n <= (size_t)INT32_MAX);
    return (size_t)EVP_EncodeBlock((unsigned char *)out, in, (int)n);
}
