/*
 * errmap.c - the one reader of SQLSTATE.
 *
 * Maps PostgreSQL's five-character error codes to NX_E* codes (and so to
 * HTTP statuses). Exact codes are matched first, then whole classes; anything
 * unknown is an internal error, never something the client gets to see.
 */
#include "core/nx.h"
#include "db/db.h"

#include <string.h>

struct code_map {
    const char *state; /* five characters, or a two-character class */
    int code;
};

static const struct code_map exact[] = {
    {"23505", NX_ECONFLICT},    /* unique_violation */
    {"23503", NX_ECONFLICT},    /* foreign_key_violation */
    {"23514", NX_ECONFLICT},    /* check_violation (e.g. balance >= 0) */
    {"23P01", NX_ECONFLICT},    /* exclusion_violation */
    {"40001", NX_ERETRY},       /* serialization_failure */
    {"40P01", NX_ERETRY},       /* deadlock_detected */
    {"57P01", NX_EUNAVAILABLE}, /* admin_shutdown */
    {"57P02", NX_EUNAVAILABLE}, /* crash_shutdown */
    {"57P03", NX_EUNAVAILABLE}, /* cannot_connect_now */
    {"53300", NX_EUNAVAILABLE}, /* too_many_connections */
    {"28000", NX_EUNAUTHORIZED}, /* nx_tenant_begin: user not in organisation */
    {"42501", NX_EFORBIDDEN},   /* insufficient_privilege; nx_tenant_begin: not admin */
    {"22P02", NX_EINVAL},       /* invalid_text_representation (a bad uuid) */
    {"22001", NX_EINVAL},       /* string_data_right_truncation (too long) */
    {"22003", NX_EINVAL},       /* numeric_value_out_of_range */
    {"NX429", NX_ERATELIMIT},   /* nx_rate_take: the window is full (DETAIL: retry ms) */
    {"NX409", NX_EKEYINUSE},    /* nx_idempotency_begin/claim: the key is in use */
    {"NXKEY", NX_EKEYREUSED},   /* nx_idempotency_claim: the key has an answer already */
};

static const struct code_map classes[] = {
    {"08", NX_EUNAVAILABLE}, /* connection_exception */
};

int nx_db_errmap(const char *sqlstate)
{
    if (!sqlstate || strlen(sqlstate) != 5)
        return NX_EINTERNAL;
    for (size_t i = 0; i < NX_ARRAY_LEN(exact); i++)
        if (memcmp(sqlstate, exact[i].state, 5) == 0)
            return exact[i].code;
    for (size_t i = 0; i < NX_ARRAY_LEN(classes); i++)
        if (memcmp(sqlstate, classes[i].state, 2) == 0)
            return classes[i].code;
    return NX_EINTERNAL;
}
