/*
 * sign.c - Standard Webhooks signatures (standardwebhooks.com), exactly as
 * its reference libraries verify them:
 *
 *   webhook-id:        the event id (the same on every retry)
 *   webhook-timestamp: Unix seconds of the attempt
 *   webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>
 *
 * where key is the secret's bytes (the part of "whsec_..." after the
 * prefix, base64-decoded) and body the bytes sent. During a rotation's
 * overlap the header carries the signature under the new secret and, after
 * a space, the one under the previous secret, so receivers holding either
 * accept the message. The HMAC itself is OpenSSL's, through auth/digest.h.
 */
#include "core/nx.h"
#include "webhooks/webhooks.h"
#include "auth/digest.h"
#include "core/arena.h"
#include "core/err.h"

#include <stdio.h>
#include <string.h>

#define SIG_B64 45 /* base64 of 32 bytes + NUL */

void nx_webhook_secret_text(const unsigned char secret[NX_WEBHOOK_SECRET_LEN],
                            char out[NX_WEBHOOK_SECRET_TEXT])
{
    memcpy(out, "whsec_", 6);
    nx_base64(secret, NX_WEBHOOK_SECRET_LEN, out + 6, NX_WEBHOOK_SECRET_TEXT - 6);
}

static int sign_one(const unsigned char *key, const char *msg_id, const char *ts,
                    const char *body, size_t len, char out[SIG_B64])
{
    const void *parts[] = {msg_id, ".", ts, ".", body};
    const size_t lens[] = {strlen(msg_id), 1, strlen(ts), 1, len};
    unsigned char mac[NX_SHA256_LEN];
    int rc = nx_hmac_sha256(key, NX_WEBHOOK_SECRET_LEN, parts, lens, 5, mac);
    if (rc == NX_OK)
        nx_base64(mac, sizeof(mac), out, SIG_B64);
    return rc;
}

int nx_webhook_sign(nx_arena_t *arena, const unsigned char *secret,
                    const unsigned char *previous, const char *msg_id, long long ts,
                    const char *body, size_t len, char **out)
{
    char stamp[24], cur[SIG_B64], prev[SIG_B64];
    snprintf(stamp, sizeof(stamp), "%lld", ts);
    if (sign_one(secret, msg_id, stamp, body, len, cur) != NX_OK ||
        (previous && sign_one(previous, msg_id, stamp, body, len, prev) != NX_OK))
        return NX_EINTERNAL;
    *out = previous ? nx_arena_sprintf(arena, "v1,%s v1,%s", cur, prev)
                    : nx_arena_sprintf(arena, "v1,%s", cur);
    return *out ? NX_OK : NX_ENOMEM;
}
