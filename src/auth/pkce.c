/*
 * pkce.c - PKCE S256 (RFC 7636) and the random tokens of a sign-in attempt.
 *
 * State, nonce and code verifier are 32 CSPRNG bytes each, base64url encoded
 * (43 characters, inside the 43-128 the RFC allows for a verifier).
 */
#include "core/nx.h"
#include "auth/auth.h"
#include "core/util.h"

#include <openssl/sha.h>
#include <string.h>

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void nx_b64url(const unsigned char *in, size_t n, char *out, size_t size)
{
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 6 && o + 1 < size) {
            bits -= 6;
            out[o++] = b64url_alphabet[(acc >> bits) & 0x3f];
        }
    }
    if (bits > 0 && o + 1 < size)
        out[o++] = b64url_alphabet[(acc << (6 - bits)) & 0x3f];
    if (size)
        out[o < size ? o : size - 1] = '\0';
}

int nx_pkce_random(char *out, size_t size, size_t n)
{
    unsigned char raw[64];
    if (n > sizeof(raw) || size < (4 * n) / 3 + 2)
        return NX_EINTERNAL;
    if (nx_random_bytes(raw, n) != NX_OK)
        return NX_EINTERNAL;
    nx_b64url(raw, n, out, size);
    return NX_OK;
}

void nx_pkce_challenge(const char *verifier, char out[44])
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)verifier, strlen(verifier), md);
    nx_b64url(md, sizeof(md), out, 44);
}
