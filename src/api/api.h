/*
 * api.h - the API's pipeline stages (tenant.c, versions.c) and the helpers
 * shared by its handlers.
 *
 * Every authenticated handler touches the database through the request's
 * tenant transaction (req->tx, opened by the tenant stage): it carries the
 * caller's organisation and the user/role check, so the check costs no
 * extra round trip. Handlers add their statements and run it.
 */
#ifndef NX_API_API_H
#define NX_API_API_H

#include "core/nx.h"
#include "http/http.h"

#define NX_PAGE_DEFAULT 20
#define NX_PAGE_MAX 100

/* What the API's stages note on a request (req->app; on its arena). */
typedef struct nx_api_req {
    /* rate limit (ratelimit.c) */
    int rl_take;           /* > 0: hits to reserve with the request's transaction */
    bool rl_owns;          /* ... and this process's next reservation is that one */
    long long rl_back_id;  /* a reservation to give unused hits back to */
    int rl_back_n;
    nx_tx_t *rl_tx;        /* the transaction that carries the reservation */
    int rl_idx;            /* ... its statement there */
    bool rl_counted;       /* the request counts: the RateLimit headers go out */
    int rl_remaining, rl_reset;
    /* idempotency (idempotency.c) */
    const char *idem_key, *idem_hash;
    nx_tx_t *idem_tx;      /* the transaction that claims the key (held open) */
    int idem_idx;          /* ... the claim's statement there */
    bool idem_folded;      /* the handler's statement stores the answer itself */
    bool idem_stored;      /* ... and it did */
} nx_api_req_t;

/* The request's notes, made on first use; NULL on ENOMEM. */
nx_api_req_t *nx_api_req(nx_req_t *req);

/* The request pipeline (api/pipeline.c): every stage, in order. */
extern const nx_stage_t nx_api_pipeline[];
extern const size_t nx_api_pipeline_count;

/* ---- stages (tenant.c, versions.c) ----------------------------------------- */

/* REQUEST: opens req->tx for routes that run in a tenant (no I/O). */
int nx_api_stage_tenant(nx_req_t *req, nx_err_t *err);
/* RESPONSE: on any other 4xx for an authenticated caller (400, 404, 413,
 * 415, 422...) before the user check ran, runs the check alone so that a
 * 401 or 403 replaces it. */
int nx_api_stage_caller(nx_req_t *req, nx_err_t *err);
/* RESPONSE: Deprecation, Sunset and Link on v1 answers when configured. */
int nx_api_stage_versions(nx_req_t *req, nx_err_t *err);

/* ---- production patterns (ratelimit.c, idempotency.c, caching.c) ---------- */

/* HEADERS: the organisation's rate limit; 429 when this process knows the
 * window is full, else admitted from its reservation or a reservation to
 * take (nx_api_ratelimit_queue). */
int nx_api_stage_rate_limit(nx_req_t *req, nx_err_t *err);
/* Queues the request's reservation, if it needs one, on tx. NX_ENOMEM. */
int nx_api_ratelimit_queue(nx_req_t *req, nx_tx_t *tx);
/* Hits this process reserved for org_id and has not used yet (the window
 * counts them already). */
int nx_api_ratelimit_unused(const char *org_id);
/* RESPONSE: books what the database granted; RateLimit-Policy and
 * RateLimit on every counted answer. */
int nx_api_stage_rate_limit_answer(nx_req_t *req, nx_err_t *err);
/* REQUEST (before the handler): an Idempotency-Key on a POST: 400 for a
 * bad key; else the key's claim is queued in the request's transaction,
 * which is held open so that the answer is stored with the effects. No
 * I/O: the claim rides the handler's round trip. */
int nx_api_stage_idempotency(nx_req_t *req, nx_err_t *err);
/* Moves the key's claim to tx, for a handler that runs its statements in a
 * transaction of its own (on an offload thread); that handler then ends it
 * with nx_api_stage_idempotency_store on the same thread. NX_ENOMEM. */
int nx_api_idempotency_queue(nx_req_t *req, nx_tx_t *tx);
/* For a handler whose own statement stores its answer with the key (a job
 * submission: its 202 is rendered in SQL), before its first run: the claim,
 * reduced to the key's lock, stays queued ahead of that statement, and the
 * transaction is no longer held, so all of it commits in one round trip.
 * The statement's insert of the answer must fail on a key that has one. Returns the key, with
 * *hash (the request's) to store beside it; NULL when there is no key.
 * After the run, nx_api_idempotency_stored says the statement stored it;
 * when it did not (it changed nothing: a 402), the store stage stores the
 * answer in a transaction of its own. */
const char *nx_api_idempotency_fold(nx_req_t *req, const char **hash);
void nx_api_idempotency_stored(nx_req_t *req);
/* RESPONSE: a new key's answer stored and committed with the effects, in
 * one round trip; for a key that has an answer already, the stored answer
 * replayed (or 422 when it was for another request); 409 while in use. */
int nx_api_stage_idempotency_store(nx_req_t *req, nx_err_t *err);
/* RESPONSE (after respond): ETag and Cache-Control on a 200 GET under
 * /api/, and 304 when If-None-Match matches. */
int nx_api_stage_etag(nx_req_t *req, nx_err_t *err);

/* ---- the tenant transaction (tenant.c) -------------------------------------- */

/* A new tenant transaction for the caller at the route's level (member or
 * admin), on this thread's connection, nothing queued yet; NULL with err set
 * (the database unavailable, ENOMEM). For a route that runs in a tenant. */
nx_tx_t *nx_api_tenant_tx(nx_req_t *req, nx_err_t *err);
/* The request's tenant transaction; NULL with NX_EINTERNAL set when the
 * route runs in no tenant (a bug in the route table). */
nx_tx_t *nx_api_tx(nx_req_t *req, nx_err_t *err);
/* Runs one statement in the request's tenant transaction; *out is its
 * result (arena). NX_EUNAUTHORIZED/NX_EFORBIDDEN from the user check, or
 * the statement's mapped error. */
int nx_api_tx_one(nx_req_t *req, const nx_stmt_t *st, const char *const *params,
                  nx_res_t **out, nx_err_t *err);
/* Runs one statement that yields one JSON row and sends it with 200; no row
 * is the error missing with detail (e.g. NX_ENOTFOUND, "No such user."). */
int nx_api_send_row(nx_req_t *req, const nx_stmt_t *st, const char *const *params,
                    int missing, const char *detail, nx_err_t *err);

/* ---- lists and ids (common.c) --------------------------------------------- */

/* A page request: ?limit= (1-100, default 20) and ?cursor= (opaque). */
typedef struct nx_page {
    int limit;
    const char *after_us; /* cursor position: created_at in epoch microseconds */
    const char *after_id; /* ... and the row id breaking ties; NULL: first page */
} nx_page_t;

/* Parses ?limit and ?cursor. NX_EVALIDATION (field "limit"/"cursor"). */
int nx_api_page_parse(nx_req_t *req, nx_page_t *page, nx_err_t *err);
/* Reads a cursor ("<tag>_<epoch microseconds>_<uuid>") issued for the list
 * tagged tag into page's position (after_us on arena, after_id borrowed
 * from cursor). NX_EVALIDATION naming "cursor" for anything else. */
int nx_api_cursor_parse(nx_arena_t *arena, const char *tag, const char *cursor, nx_page_t *page,
                        nx_err_t *err);
/* Renders a cursor for the row at (epoch microseconds, id); arena string. */
const char *nx_api_cursor(nx_req_t *req, const char *epoch_us, const char *id);

/* Sends {"items": [...], "next_cursor": ...} with status 200 from rows of
 * (item json, created_at epoch microseconds, id) fetched with LIMIT
 * page->limit + 1: the extra row only says that another page exists. Items
 * whose JSON would take the body past 4 MiB are left to the next page
 * (next_cursor follows the last item served); a page has at least one. */
int nx_api_send_page(nx_req_t *req, nx_res_t *r, const nx_page_t *page, nx_err_t *err);

/* A list route: parses ?limit and ?cursor, runs st with $1 the caller's
 * organisation, $2/$3 the cursor position, $4 limit + 1 and then the
 * extra parameters (nextra of them), and sends the page. */
int nx_api_list(nx_req_t *req, const nx_stmt_t *st, const char *const *extra, int nextra,
                nx_err_t *err);

/* Writes row `row` of r as one list item, from plain columns. */
typedef int (*nx_api_item_fn)(nx_buf_t *b, nx_res_t *r, int row);

/* nx_api_list for a statement of plain columns, which item renders (1 and
 * 2 are still the cursor's): rendering in C from plain columns costs the
 * database less than building each row's JSON in SQL. */
int nx_api_list_items(nx_req_t *req, const nx_stmt_t *st, nx_api_item_fn item, nx_err_t *err);

/* Writes {"key" : "text", ...}: keys[k] with row's column cols[k] as a
 * JSON string, or null. The layout is PostgreSQL's json_build_object's, so
 * a resource reads the same whichever side rendered it. */
int nx_api_json_fields(nx_buf_t *b, nx_res_t *r, int row, const char *const *keys,
                       const int *cols, int n);

/* A read of one resource: runs st with $1 the caller's organisation and $2
 * the {id} path parameter, and sends its one JSON row, or a 404 with
 * `missing` as detail (another organisation's rows are invisible). */
int nx_api_get_by_id(nx_req_t *req, const nx_stmt_t *st, const char *missing, nx_err_t *err);

/* A path parameter that must be a UUID; anything else is NX_ENOTFOUND
 * (answered after the caller check: conn.c asks before sending it). */
int nx_api_uuid_param(nx_req_t *req, int i, const char **out, nx_err_t *err);

#endif
