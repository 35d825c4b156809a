/*
 * idempotency.c - Idempotency-Key on the API's POSTs.
 *
 * SECURITY: All queries MUST include organisation_id filter. Failure to do so
 * will result in data leakage between tenants.
 *
 * A POST under /api/ may carry Idempotency-Key (1-255 visible ASCII
 * characters, else 400). Before its handler, the request's tenant
 * transaction is marked held (db/tx.c: it stays open after its round trips
 * until committed) and nx_idempotency_claim (migration 0020) is queued in it,
 * so it travels in the handler's own round trip, just before the handler's
 * statements. It takes the key's advisory lock without waiting and:
 *   - in use by a request still in progress: 409, Retry-After: 1;
 *   - new: returns, the handler's statements run in the open transaction,
 *     and before the answer goes out its status and body are stored with
 *     the key and committed with the request's effects, in one round trip;
 *   - has an answer: raises, so the handler's statements never run; the
 *     answer is then read with nx_idempotency_begin (migration 0010) in a
 *     transaction of its own. Used for this request: the stored answer -
 *     status and body, byte for byte - is replayed with
 *     Idempotent-Replayed: true. Used for another (method, path or body
 *     differ): 422.
 * A request whose transaction failed, or a 5xx, stores nothing: a retry runs
 * again; so does one refused before its statements ran (a 400 or 422 for
 * what it sent). Keys are per organisation and kept IDEMPOTENCY_TTL_HOURS
 * (pruned by the workers). A keyed POST costs one more round trip than an
 * unkeyed one (the store and COMMIT), but for a job submission (below);
 * docs/internals/patterns.md counts them.
 *
 * A job submission, the hot keyed POST, folds the store into its own
 * statement (nx_api_idempotency_fold): its 202 is rendered in SQL, so the
 * statement stores it and the transaction is not held; the keyed submission
 * costs no round trip more than an unkeyed one. Its claim takes the key's
 * lock only; a key with an answer makes the statement's insert of its
 * answer fail, which aborts the submission, and the answer is read as above. When it stored nothing (a
 * short balance: nothing changed), its 402 is stored after the commit with
 * nx_idempotency_store (migration 0021), which waits for the key's lock
 * and keeps the first answer stored, which the client then gets.
 */
#include "core/nx.h"
#include "api/api.h"
#include "auth/digest.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "db/db.h"

#include <stdio.h>
#include <string.h>

#define KEY_MAX 255

static const char key_reused[] = "This Idempotency-Key was used for another request (another "
                                 "method, path or body); use a new key for a new request.";

static const nx_stmt_t st_begin = {
    "api_idempotency_begin",
    "SELECT state, status, content_type, location, body "
    "FROM nx_idempotency_begin($1::uuid, $2, $3)",
    3,
};

static const nx_stmt_t st_claim = {
    "api_idempotency_claim",
    "SELECT nx_idempotency_claim($1::uuid, $2)",
    2,
};

/* A folded handler's claim: the key's lock alone, with no PL/pgSQL call
 * and no probe of the key on the way. A key that has an answer is found by
 * the handler's statement itself: its insert of the answer fails on the
 * key and takes the statement's effects with it. A refused lock calls
 * nx_idempotency_claim, whose try of the same lock fails too and raises
 * NX409 (the lock's key must be spelt as there). */
static const nx_stmt_t st_lock = {
    "api_idempotency_lock",
    "SELECT CASE WHEN NOT pg_try_advisory_xact_lock(hashtextextended("
    "'nexus.idempotency:' || $1::uuid::text || ':' || $2, 0))"
    " THEN nx_idempotency_claim($1::uuid, $2) END",
    2,
};

static const nx_stmt_t st_store = {
    "api_idempotency_store",
    "INSERT INTO idempotency_keys (organisation_id, key, request_hash, status, content_type,"
    " location, body) VALUES ($1::uuid, $2, $3, $4::int, $5, $6, $7)",
    7,
};

static const nx_stmt_t st_store_late = {
    "api_idempotency_store_late",
    "SELECT state, status, content_type, location, body "
    "FROM nx_idempotency_store($1::uuid, $2, $3, $4::int, $5, $6, $7)",
    7,
};

static bool key_ok(const char *k)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)k; *p; p++, n++)
        if (*p < 0x21 || *p > 0x7e || n >= KEY_MAX)
            return false;
    return n > 0;
}

/* SHA-256 of what makes the request this request: method, path and body. */
static const char *request_hash(nx_req_t *req)
{
    size_t n = strlen(req->method) + strlen(req->path) + 2 + req->body_len;
    char *buf = nx_arena_alloc(req->arena, n + 1);
    char *hex = nx_arena_alloc(req->arena, NX_SHA256_HEX_LEN + 1);
    if (!buf || !hex)
        return NULL;
    int k = snprintf(buf, n + 1, "%s %s\n", req->method, req->path);
    if (req->body_len)
        memcpy(buf + k, req->body, req->body_len);
    return nx_sha256_hex(buf, (size_t)k + req->body_len, hex) == NX_OK ? hex : NULL;
}

/* The stored answer, as the first request sent it. */
static int replay(nx_req_t *req, nx_res_t *r, nx_err_t *err)
{
    long long status;
    if (nx_parse_int(nx_res_get(r, 0, 1), 100, 599, &status) != NX_OK)
        return nx_err_set(err, NX_EINTERNAL, NULL);
    const char *type = nx_res_null(r, 0, 2) ? NULL : nx_res_get(r, 0, 2);
    if ((!nx_res_null(r, 0, 3) && nx_resp_header(req, "Location", nx_res_get(r, 0, 3)) != NX_OK) ||
        nx_resp_header(req, "Idempotent-Replayed", "true") != NX_OK ||
        nx_resp_send(req, (int)status, type ? type : "application/json", nx_res_get(r, 0, 4),
                     (size_t)nx_res_len(r, 0, 4)) != NX_OK)
        return nx_err_set(err, NX_ENOMEM, NULL);
    return NX_OK;
}

int nx_api_stage_idempotency(nx_req_t *req, nx_err_t *err)
{
    const char *key = nx_req_header(req, "Idempotency-Key");
    if (!key || strcmp(req->method, "POST") != 0 || !req->tx)
        return NX_OK;
    if (!key_ok(key))
        return nx_err_set(err, NX_EINVAL, "The Idempotency-Key header must be 1 to %d visible "
                                          "ASCII characters.", KEY_MAX);
    nx_api_req_t *ax = nx_api_req(req);
    const char *hash = ax ? request_hash(req) : NULL;
    if (!hash)
        return nx_err_set(err, NX_ENOMEM, NULL);
    ax->idem_key = key;
    ax->idem_hash = hash;
    if (nx_api_idempotency_queue(req, req->tx) != NX_OK)
        return nx_err_set(err, NX_ENOMEM, NULL);
    return NX_OK;
}

int nx_api_idempotency_queue(nx_req_t *req, nx_tx_t *tx)
{
    nx_api_req_t *ax = req->app;
    if (!ax || !ax->idem_key)
        return NX_OK;
    nx_tx_hold(tx, true);
    const char *p[] = {req->auth.org_id, ax->idem_key};
    ax->idem_idx = nx_tx_add(tx, &st_claim, p);
    ax->idem_tx = tx;
    return ax->idem_idx < 0 ? NX_ENOMEM : NX_OK;
}

const char *nx_api_idempotency_fold(nx_req_t *req, const char **hash)
{
    nx_api_req_t *ax = req->app;
    if (!ax || !ax->idem_tx)
        return NULL;
    nx_tx_hold(ax->idem_tx, false);
    nx_tx_swap(ax->idem_tx, ax->idem_idx, &st_lock);
    ax->idem_folded = true;
    *hash = ax->idem_hash;
    return ax->idem_key;
}

void nx_api_idempotency_stored(nx_req_t *req)
{
    nx_api_req_t *ax = req->app;
    if (ax && ax->idem_folded)
        ax->idem_stored = true;
}

/* The key already has an answer (the claim raised NXKEY, and the request's
 * statements did not run): the answer is read in a transaction of its own,
 * which also carries the request's rate-limit hit, so that a replay counts
 * like any request. */
static int answered(nx_req_t *req, nx_api_req_t *ax, nx_err_t *err)
{
    nx_err_clear(err);
    nx_tx_t *tx = nx_api_tenant_tx(req, err);
    if (!tx)
        return err->code;
    ax->rl_tx = NULL; /* the first reservation was rolled back with its request */
    const char *p[] = {req->auth.org_id, ax->idem_key, ax->idem_hash};
    int idx = nx_api_ratelimit_queue(req, tx) == NX_OK ? nx_tx_add(tx, &st_begin, p) : -1;
    if (idx < 0)
        return nx_err_set(err, NX_ENOMEM, NULL);
    int rc = nx_tx_run(tx, err);
    if (rc != NX_OK)
        return rc; /* 409 in use, 401/403, 429... */
    nx_res_t *r = nx_tx_res(tx, idx);
    const char *state = nx_res_rows(r) == 1 ? nx_res_get(r, 0, 0) : "";
    if (strcmp(state, "mismatch") == 0)
        return nx_err_set(err, NX_EKEYREUSED, "%s", key_reused);
    if (strcmp(state, "replay") == 0)
        return replay(req, r, err);
    /* the answer went away in between (pruned): the client tries again */
    err->retry_after = 1;
    return nx_err_set(err, NX_EKEYINUSE, "A request with this Idempotency-Key is still being "
                                         "processed; retry shortly.");
}

/* The answer as the client gets it, as the store's parameters 3 to 6 (after
 * organisation, key and hash); false on ENOMEM. */
static bool answer_params(nx_req_t *req, nx_api_req_t *ax, const char *p[7])
{
    size_t len;
    const char *type;
    const char *body = nx_resp_body(req, &len, &type);
    char *status = nx_arena_sprintf(req->arena, "%d", nx_resp_status(req));
    const char *copy = nx_arena_strndup(req->arena, body ? body : "", body ? len : 0);
    const char *v[] = {req->auth.org_id, ax->idem_key, ax->idem_hash, status, type,
                       nx_resp_header_value(req, "Location"), copy};
    memcpy(p, v, sizeof(v));
    return status && copy;
}

/* A folded handler's answer that its statement did not store (it changed
 * nothing): stored now, unless another request with the key stored one
 * after this one's transaction ended; the client then gets that answer. */
static void store_late(nx_req_t *req, nx_api_req_t *ax, nx_err_t *err)
{
    nx_http_stage_respond(req, err);
    const char *p[7];
    nx_err_t e = {0};
    nx_tx_t *tx = answer_params(req, ax, p) ? nx_api_tenant_tx(req, &e) : NULL;
    int idx = tx ? nx_tx_add(tx, &st_store_late, p) : -1;
    if (idx < 0 || nx_tx_run(tx, &e) != NX_OK) {
        /* it changed nothing, so the answer may go out unstored: a retry runs again */
        nx_log(NX_LOG_WARN, "could not store an idempotent answer",
               NX_LS("error", e.log_detail[0] ? e.log_detail : e.detail));
        return;
    }
    nx_res_t *r = nx_tx_res(tx, idx);
    const char *state = nx_res_rows(r) == 1 ? nx_res_get(r, 0, 0) : "";
    if (strcmp(state, "stored") == 0)
        return;
    nx_err_clear(err);
    if (strcmp(state, "replay") != 0 || replay(req, r, err) != NX_OK) {
        if (!err->code)
            nx_err_set(err, NX_EKEYREUSED, "%s", key_reused);
        nx_http_stage_respond(req, err);
    }
}

int nx_api_stage_idempotency_store(nx_req_t *req, nx_err_t *err)
{
    nx_api_req_t *ax = req->app;
    if (!ax || !ax->idem_tx)
        return NX_OK; /* no key */
    nx_tx_t *tx = ax->idem_tx;
    /* the key has an answer: the claim said so, or, folded, the handler's
     * insert of its answer failed on the key (the only unique value it
     * writes that is not new) */
    if ((err->code == NX_EKEYREUSED && nx_tx_failed(tx) == ax->idem_idx) ||
        (ax->idem_folded && err->code == NX_ECONFLICT && nx_tx_failed(tx) > ax->idem_idx)) {
        ax->idem_tx = NULL;
        answered(req, ax, err);
        return NX_OK;
    }
    if (ax->idem_folded) {
        if (!ax->idem_stored && nx_tx_committed(tx) &&
            !(err->code && nx_err_status(err->code) >= 500))
            store_late(req, ax, err);
        return NX_OK;
    }
    if (!nx_tx_open(tx))
        return NX_OK; /* never run, stored already, or failed and rolled back */
    if (err->code && nx_err_status(err->code) >= 500) {
        nx_tx_rollback(tx);
        return NX_OK;
    }
    nx_http_stage_respond(req, err); /* a problem is stored as the client gets it */
    const char *p[7];
    nx_err_t e = {0};
    int rc = answer_params(req, ax, p) && nx_tx_add(tx, &st_store, p) >= 0
                 ? nx_tx_commit(tx, &e)
                 : nx_err_set(&e, NX_ENOMEM, NULL);
    if (rc != NX_OK) { /* nothing committed: the effects are gone, the client must retry */
        nx_tx_rollback(tx);
        nx_err_clear(err);
        nx_err_set(err, NX_EUNAVAILABLE, "The request could not be completed; retry it with the "
                                         "same Idempotency-Key.");
        nx_err_log(err, "%s", e.log_detail[0] ? e.log_detail : e.detail);
        err->retry_after = 1;
        nx_http_stage_respond(req, err);
    }
    return NX_OK;
}
