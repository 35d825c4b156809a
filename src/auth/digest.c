/*
 * digest.c - SHA-256 through OpenSSL's EVP interface.
 *
 * Used for the checksums of migration files; kept here because auth/ is the
 * only module that talks to the crypto library.
 */
#include "core/nx.h"
#include "auth/digest.h"
#include "core/util.h"

#include <openssl/evp.h>

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
