/*
 * fuzz_jwt.c - the access-token verifier (auth/jwt.c): the header pin, the
 * canonical signature, cjose's import and verification under the current
 * and a previous secret, and the claims. The first byte picks the pinned
 * algorithm, the rest is the token. A token that verifies must carry
 * claims of the shapes the verifier promises.
 */
#include "core/nx.h"
#include "fuzz.h"
#include "auth/auth.h"
#include "core/err.h"
#include "core/util.h"

#define SECRET "fuzz-secret-0123456789abcdef0123456789abcdef"
#define PREVIOUS "fuzz-previous-0123456789abcdef0123456789abc"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    nx_fuzz_quiet();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int alg = data[0] % 3;
    char *token = nx_fuzz_str(data + 1, size - 1);
    const char *const keys[] = {SECRET, PREVIOUS};
    nx_claims_t c;
    nx_err_t err = {0};
    int rc = nx_jwt_verify_keys(keys, 2, alg, token, size - 1, 1800000000LL, &c, &err);
    if (rc == NX_OK && (!nx_uuid_valid(c.sub) || !nx_uuid_valid(c.org_id) ||
                        (strcmp(c.role, "admin") != 0 && strcmp(c.role, "member") != 0)))
        abort();
    if (rc != NX_OK && rc != NX_EUNAUTHORIZED && rc != NX_ENOMEM)
        abort();
    free(token);
    return 0;
}
