/*
 * jwt.c - our access tokens: HS256/384/512 JWS built and checked with cjose.
 *
 * The algorithm is pinned by configuration (RFC 8725 3.1): the header is
 * read before cjose sees the token and must name exactly that algorithm and
 * typ "at+jwt", so "none", RS256 with our secret as an "RSA key", or a
 * Google ID token never reach signature verification. Claims are checked by
 * this file, not by the library. Everything that can be wrong with a token
 * is NX_EUNAUTHORIZED; the detail never echoes the token.
 */
#include "core/nx.h"
#include "auth/auth.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/mem.h"
#include "core/util.h"

#include <cjose/cjose.h>
#include <jansson.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char *const alg_names[] = {"HS256", "HS384", "HS512"};

const char *nx_jwt_alg_name(int alg)
{
    if (alg < 0 || alg >= (int)NX_ARRAY_LEN(alg_names))
        return NULL;
    return alg_names[alg];
}

static const char *cjose_alg(int alg)
{
    switch (alg) {
    case 0: return CJOSE_HDR_ALG_HS256;
    case 1: return CJOSE_HDR_ALG_HS384;
    case 2: return CJOSE_HDR_ALG_HS512;
    default: return NULL;
    }
}

static int bad(nx_err_t *err, const char *why)
{
    return nx_err_set(err, NX_EUNAUTHORIZED, "The access token is invalid: %s.", why);
}

int nx_jwt_mint(nx_arena_t *arena, const char *secret, int alg, const char *user_id,
                const char *org_id, const char *role, long long ttl_seconds, char **out,
                nx_err_t *err)
{
    const char *calg = cjose_alg(alg);
    if (!calg || !secret || !*secret || !nx_uuid_valid(user_id) || !nx_uuid_valid(org_id) ||
        !role || (strcmp(role, "admin") != 0 && strcmp(role, "member") != 0) ||
        ttl_seconds <= 0)
        return nx_err_set(err, NX_EINVAL, "cannot mint an access token from these claims");

    char jti[NX_UUID_LEN + 1];
    nx_uuid_v4(jti);
    long long now = (long long)time(NULL);
    json_t *claims = json_pack("{s:s, s:s, s:s, s:I, s:I, s:s, s:s}", "sub", user_id,
                               "org_id", org_id, "role", role, "iat", (json_int_t)now, "exp",
                               (json_int_t)(now + ttl_seconds), "iss", NX_JWT_ISSUER, "jti", jti);
    char *payload = claims ? json_dumps(claims, JSON_COMPACT) : NULL;
    json_decref(claims);
    if (!payload)
        return nx_err_set(err, NX_ENOMEM, NULL);

    int rc = NX_OK;
    cjose_err cerr;
    cjose_jwk_t *jwk = cjose_jwk_create_oct_spec((const uint8_t *)secret, strlen(secret), &cerr);
    cjose_header_t *hdr = cjose_header_new(&cerr);
    cjose_jws_t *jws = NULL;
    const char *compact = NULL;
    if (!jwk || !hdr || !cjose_header_set(hdr, CJOSE_HDR_ALG, calg, &cerr) ||
        !cjose_header_set(hdr, "typ", "at+jwt", &cerr) ||
        !(jws = cjose_jws_sign(jwk, hdr, (const uint8_t *)payload, strlen(payload), &cerr)) ||
        !cjose_jws_export(jws, &compact, &cerr)) {
        nx_err_log(err, "cjose: %s", cerr.message ? cerr.message : "?");
        rc = nx_err_set(err, NX_EINTERNAL, "could not sign the access token");
    } else if (!(*out = nx_arena_strdup(arena, compact))) {
        rc = nx_err_set(err, NX_ENOMEM, NULL);
    }
    cjose_jws_release(jws);
    cjose_header_release(hdr);
    cjose_jwk_release(jwk);
    nx_free(payload);
    return rc;
}

/* ---- verification ------------------------------------------------------- */

static bool b64url_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_';
}

/* Splits "h.p.s" (base64url parts, none empty but the signature). */
static int split(const char *t, size_t len, size_t *dot1, size_t *dot2)
{
    int dots = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c == '.') {
            if (dots == 0)
                *dot1 = i;
            else if (dots == 1)
                *dot2 = i;
            if (++dots > 2)
                return -1;
        } else if (!b64url_char(c)) {
            return -1;
        }
    }
    if (dots != 2 || *dot1 == 0 || *dot2 == *dot1 + 1 || *dot2 + 1 >= len)
        return -1;
    return 0;
}

static unsigned b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '-' ? 62 : 63;
}

/* The signature must be the one spelling of the HMAC: its exact unpadded
 * length, and no stray bits in the last character. A lenient decoder drops
 * those bits, so without this check "...A" and "...B" would both verify and
 * a token would have several accepted forms. */
static bool canonical_signature(const char *sig, size_t n, int alg)
{
    static const struct {
        size_t chars;
        unsigned spare_bits_mask;
    } form[] = {
        {43, 0x3}, /* HS256, 32 bytes: 258 bits written, 2 spare */
        {64, 0x0}, /* HS384, 48 bytes: no spare bits */
        {86, 0xf}, /* HS512, 64 bytes: 516 bits written, 4 spare */
    };
    return n == form[alg].chars &&
           (b64url_value((unsigned char)sig[n - 1]) & form[alg].spare_bits_mask) == 0;
}

/* Decodes a base64url segment and parses it as a JSON object (caller decrefs). */
static json_t *segment_json(const char *s, size_t n)
{
    uint8_t *raw = NULL;
    size_t rawlen = 0;
    cjose_err cerr;
    if (!cjose_base64url_decode(s, n, &raw, &rawlen, &cerr))
        return NULL;
    json_t *j = json_loadb((const char *)raw, rawlen, JSON_REJECT_DUPLICATES, NULL);
    cjose_get_dealloc()(raw);
    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

static bool typ_ok(const char *typ)
{
    return typ && (strcasecmp(typ, "at+jwt") == 0 || strcasecmp(typ, "application/at+jwt") == 0);
}

/* The header check that pins the algorithm before any cryptography. */
static int check_header(const char *token, size_t dot1, int alg, nx_err_t *err)
{
    json_t *h = segment_json(token, dot1);
    if (!h)
        return bad(err, "malformed header");
    const char *halg = json_string_value(json_object_get(h, "alg"));
    const char *typ = json_string_value(json_object_get(h, "typ"));
    int rc = NX_OK;
    if (!halg || strcmp(halg, nx_jwt_alg_name(alg)) != 0)
        rc = bad(err, "unexpected signing algorithm");
    else if (!typ_ok(typ))
        rc = bad(err, "not an access token");
    else if (json_object_get(h, "crit"))
        rc = bad(err, "unsupported critical header");
    json_decref(h);
    return rc;
}

static bool num_claim(json_t *c, const char *name, long long *out)
{
    json_t *v = json_object_get(c, name);
    if (!v)
        return false;
    if (json_is_integer(v)) {
        *out = (long long)json_integer_value(v);
        return true;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d != d || d < -9.2e18 || d > 9.2e18)
            return false;
        *out = (long long)d;
        return true;
    }
    return false;
}

static int copy_str(json_t *c, const char *name, char *out, size_t size)
{
    const char *v = json_string_value(json_object_get(c, name));
    if (!v || !*v || strlen(v) >= size)
        return -1;
    memcpy(out, v, strlen(v) + 1);
    return 0;
}

static int check_claims(json_t *c, long long now, nx_claims_t *out, nx_err_t *err)
{
    const char *iss = json_string_value(json_object_get(c, "iss"));
    if (!iss || strcmp(iss, NX_JWT_ISSUER) != 0)
        return bad(err, "wrong issuer");
    long long exp, iat, nbf;
    if (!num_claim(c, "exp", &exp) || !num_claim(c, "iat", &iat))
        return bad(err, "missing exp or iat");
    if (exp + NX_JWT_LEEWAY <= now)
        return nx_err_set(err, NX_EUNAUTHORIZED, "The access token has expired.");
    if (iat > now + NX_JWT_LEEWAY)
        return bad(err, "issued in the future");
    if (json_object_get(c, "nbf") && (!num_claim(c, "nbf", &nbf) || nbf > now + NX_JWT_LEEWAY))
        return bad(err, "not valid yet");
    if (copy_str(c, "sub", out->sub, sizeof(out->sub)) || !nx_uuid_valid(out->sub) ||
        copy_str(c, "org_id", out->org_id, sizeof(out->org_id)) || !nx_uuid_valid(out->org_id))
        return bad(err, "missing or malformed sub or org_id");
    if (copy_str(c, "role", out->role, sizeof(out->role)) ||
        (strcmp(out->role, "admin") != 0 && strcmp(out->role, "member") != 0))
        return bad(err, "missing or unknown role");
    if (copy_str(c, "jti", out->jti, sizeof(out->jti)))
        return bad(err, "missing jti");
    out->iat = iat;
    out->exp = exp;
    return NX_OK;
}

/* Checks the signature against each secret in turn (the current one, then a
 * previous one in its grace period). NX_OK when one verifies. */
static int verify_signature(cjose_jws_t *jws, const char *const *secrets, int n, nx_err_t *err)
{
    cjose_err cerr;
    for (int i = 0; i < n; i++) {
        if (!secrets[i] || !*secrets[i])
            continue;
        cjose_jwk_t *jwk = cjose_jwk_create_oct_spec((const uint8_t *)secrets[i],
                                                     strlen(secrets[i]), &cerr);
        if (!jwk)
            return nx_err_set(err, NX_ENOMEM, NULL);
        bool ok = cjose_jws_verify(jws, jwk, &cerr);
        cjose_jwk_release(jwk);
        if (ok)
            return NX_OK;
    }
    return bad(err, "bad signature");
}

int nx_jwt_verify_keys(const char *const *secrets, int nsecrets, int alg, const char *token,
                       size_t len, long long now, nx_claims_t *out, nx_err_t *err)
{
    memset(out, 0, sizeof(*out));
    if (!cjose_alg(alg) || nsecrets < 1 || !secrets[0] || !*secrets[0])
        return nx_err_set(err, NX_EINTERNAL, "access tokens are not configured");
    if (!token || len == 0)
        return nx_err_set(err, NX_EUNAUTHORIZED, "An access token is required.");
    if (len > NX_JWT_MAX_LEN)
        return bad(err, "too long");
    size_t dot1 = 0, dot2 = 0;
    if (split(token, len, &dot1, &dot2) != 0)
        return bad(err, "malformed");
    int rc = check_header(token, dot1, alg, err);
    if (rc != NX_OK)
        return rc;
    if (!canonical_signature(token + dot2 + 1, len - dot2 - 1, alg))
        return bad(err, "bad signature");

    cjose_err cerr;
    cjose_jws_t *jws = cjose_jws_import(token, len, &cerr);
    uint8_t *pt = NULL;
    size_t ptlen = 0;
    json_t *claims = NULL;
    if (!jws) {
        rc = bad(err, "malformed");
    } else {
        /* cjose decides the algorithm from the header it parsed: make sure it
         * is the same header we pinned above. */
        const char *calg = cjose_header_get(cjose_jws_get_protected(jws), CJOSE_HDR_ALG, &cerr);
        if (!calg || strcmp(calg, cjose_alg(alg)) != 0)
            rc = bad(err, "unexpected signing algorithm");
        else if ((rc = verify_signature(jws, secrets, nsecrets, err)) != NX_OK)
            ;
        else if (!cjose_jws_get_plaintext(jws, &pt, &ptlen, &cerr))
            rc = bad(err, "malformed");
        else if (!(claims = json_loadb((const char *)pt, ptlen, JSON_REJECT_DUPLICATES, NULL)) ||
                 !json_is_object(claims))
            rc = bad(err, "malformed claims");
        else
            rc = check_claims(claims, now ? now : (long long)time(NULL), out, err);
    }
    json_decref(claims);
    cjose_jws_release(jws);
    if (rc != NX_OK)
        memset(out, 0, sizeof(*out));
    return rc;
}

int nx_jwt_verify(const char *secret, int alg, const char *token, size_t len, long long now,
                  nx_claims_t *out, nx_err_t *err)
{
    const char *const secrets[] = {secret};
    return nx_jwt_verify_keys(secrets, 1, alg, token, len, now, out, err);
}
