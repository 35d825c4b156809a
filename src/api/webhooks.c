/*
 * webhooks.c - an organisation's webhook endpoints: create, list, read,
 * change, delete, rotate the secret (admins; api.md "Webhooks").
 *
 * SECURITY: All queries MUST include organisation_id filter. Failure to do so
 * will result in data leakage between tenants.
 *
 * A URL is checked before anything is written (src/webhooks/egress.c): its
 * form, then every address its host resolves to. Resolving a name may take
 * seconds, so that check and the statements after it run on an offload
 * thread (nx_req_offload), in a tenant transaction of that thread's own
 * connection whose user check runs first, alone: only an admin of the
 * organisation makes the server resolve a name. Secrets are 32 random bytes
 * made here, stored as bytes and shown once, as "whsec_" + base64, in the
 * answer that made them.
 * "At most NX_WEBHOOK_MAX_ENDPOINTS per organisation" is the create
 * statement's own condition, behind a transaction advisory lock on the
 * organisation taken by the statement before it (a new snapshot then sees
 * every endpoint a concurrent create committed).
 */
#include "core/nx.h"
#include "api/webhooks_api.h"
#include "api/api.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/util.h"
#include "db/db.h"
#include "webhooks/webhooks.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#define DESCRIPTION_MAX 500

static const char *const event_types[] = {"job.completed", "job.failed", "credits.low"};

static const nx_stmt_t st_lock = {
    "api_webhooks_lock",
    "SELECT pg_advisory_xact_lock(hashtextextended('nexus.webhooks:' || $1::text, 0))",
    1,
};

static const nx_stmt_t st_create = {
    "api_webhooks_create",
    "INSERT INTO webhook_endpoints AS w (organisation_id, url, events, description, secret)"
    " SELECT $1::uuid, $2, ARRAY(SELECT jsonb_array_elements_text($3::jsonb)), $4,"
    " decode($5, 'hex')"
    " WHERE (SELECT count(*) FROM webhook_endpoints e WHERE e.organisation_id = $1::uuid)"
    " < $6::int"
    " RETURNING w.id, nx_webhook_json(w)::text",
    6,
};

static const nx_stmt_t st_list = {
    "api_webhooks_list",
    "SELECT nx_webhook_json(w)::text, (extract(epoch FROM w.created_at) * 1000000)::bigint::text,"
    " w.id::text FROM webhook_endpoints w WHERE w.organisation_id = $1 AND ($2::bigint IS NULL OR"
    " (w.created_at, w.id) > (timestamptz 'epoch' + ($2::bigint / 1000000) * interval '1 second'"
    " + ($2::bigint % 1000000) * interval '1 microsecond', $3::uuid))"
    " ORDER BY w.created_at, w.id LIMIT $4::int",
    4,
};

static const nx_stmt_t st_get = {
    "api_webhooks_get",
    "SELECT nx_webhook_json(w)::text FROM webhook_endpoints w"
    " WHERE w.organisation_id = $1 AND w.id = $2::uuid",
    2,
};

/* $3 url, $4 events (JSON array), $5 description given, $6 description,
 * $7 enabled; NULL: unchanged. Enabling clears the reason and the failure
 * streak; an admin's disabling says so. */
static const nx_stmt_t st_patch = {
    "api_webhooks_patch",
    "UPDATE webhook_endpoints w SET url = coalesce($3, w.url),"
    " events = CASE WHEN $4::jsonb IS NULL THEN w.events"
    " ELSE ARRAY(SELECT jsonb_array_elements_text($4::jsonb)) END,"
    " description = CASE WHEN $5::boolean THEN $6 ELSE w.description END,"
    " enabled = coalesce($7::boolean, w.enabled),"
    " disabled_reason = CASE WHEN $7::boolean THEN NULL"
    " WHEN NOT $7::boolean AND w.enabled THEN 'Disabled by an admin.'"
    " ELSE w.disabled_reason END,"
    " failing_since = CASE WHEN $7::boolean AND NOT w.enabled THEN NULL ELSE w.failing_since END"
    " WHERE w.organisation_id = $1 AND w.id = $2::uuid RETURNING nx_webhook_json(w)::text",
    7,
};

static const nx_stmt_t st_delete = {
    "api_webhooks_delete",
    "DELETE FROM webhook_endpoints w WHERE w.organisation_id = $1 AND w.id = $2::uuid"
    " RETURNING w.id",
    2,
};

static const nx_stmt_t st_rotate = {
    "api_webhooks_rotate",
    "UPDATE webhook_endpoints w SET previous_secret = w.secret,"
    " previous_secret_expires_at = now() + interval '24 hours', secret = decode($3, 'hex')"
    " WHERE w.organisation_id = $1 AND w.id = $2::uuid"
    " RETURNING nx_ts(w.previous_secret_expires_at)",
    3,
};

/* What a create or a change asks for, checked; NULL members are absent. */
struct input {
    const char *url;
    const char *events;      /* JSON array text */
    bool has_description;
    const char *description; /* NULL: null */
    const char *enabled;     /* "true" / "false" */
    const char *id;          /* PATCH: the endpoint */
    char secret_hex[2 * NX_WEBHOOK_SECRET_LEN + 1];
    char secret[NX_WEBHOOK_SECRET_TEXT];
};

/* ---- input ---------------------------------------------------------------------- */

static bool known_event(const char *s)
{
    for (size_t i = 0; i < NX_ARRAY_LEN(event_types); i++)
        if (strcmp(s, event_types[i]) == 0)
            return true;
    return false;
}

/* "events": a non-empty array of distinct event types, as JSON text. */
static void events_member(nx_req_t *req, json_t *v, struct input *in, nx_err_t *err)
{
    size_t i, k;
    json_t *e;
    bool ok = json_is_array(v) && json_array_size(v) > 0;
    nx_buf_t b;
    nx_buf_init(&b, req->arena, 256);
    int rc = nx_buf_puts(&b, "[");
    json_array_foreach(v, i, e) {
        ok = ok && json_is_string(e) && known_event(json_string_value(e));
        for (k = 0; ok && k < i; k++)
            ok = !json_equal(json_array_get(v, k), e);
        if (ok && !rc) /* known names: nothing to escape */
            rc = nx_buf_printf(&b, "%s\"%s\"", i ? ", " : "", json_string_value(e));
    }
    if (!ok) {
        nx_err_field(err, "events", "must be a non-empty array of distinct event types: "
                                    "\"job.completed\", \"job.failed\", \"credits.low\"");
        return;
    }
    if (rc || nx_buf_puts(&b, "]"))
        nx_err_set(err, NX_ENOMEM, NULL);
    in->events = b.data;
}

static void description_member(json_t *v, struct input *in, nx_err_t *err)
{
    in->has_description = true;
    if (json_is_null(v))
        return;
    const char *s = json_string_value(v);
    if (!s || nx_utf8_len(s, json_string_length(v)) > DESCRIPTION_MAX)
        nx_err_field(err, "description", "must be a string of at most %d characters, or null",
                     DESCRIPTION_MAX);
    else
        in->description = s;
}

/* Reads the body's members; required ones must be there for a create. */
static int parse_input(nx_req_t *req, bool create, struct input *in, nx_err_t *err)
{
    const char *key;
    json_t *v;
    json_object_foreach(req->json, key, v) {
        if (strcmp(key, "url") == 0) {
            in->url = json_string_value(v);
            if (!in->url)
                nx_err_field(err, "url", "must be a string");
        } else if (strcmp(key, "events") == 0) {
            events_member(req, v, in, err);
        } else if (strcmp(key, "description") == 0) {
            description_member(v, in, err);
        } else if (strcmp(key, "enabled") == 0 && !create) {
            if (!json_is_boolean(v))
                nx_err_field(err, "enabled", "must be true or false");
            in->enabled = json_is_true(v) ? "true" : "false";
        } else {
            nx_err_field(err, key, "is not a member of a webhook%s", create ? "" : " change");
        }
    }
    if (create && !in->url && !json_object_get(req->json, "url"))
        nx_err_field(err, "url", "is required");
    if (create && !in->events && !json_object_get(req->json, "events"))
        nx_err_field(err, "events", "is required");
    /* the form needs no lookup: refused here, before any offloading */
    const char *why = NULL;
    if (!err->code && in->url && nx_webhook_url_check(req->arena, in->url, false, &why))
        why ? nx_err_field(err, "url", "%s", why) : (void)nx_err_set(err, NX_ENOMEM, NULL);
    return err->code;
}

/* A fresh secret: hex for the statement, "whsec_..." for the answer. */
static int new_secret(struct input *in, nx_err_t *err)
{
    unsigned char raw[NX_WEBHOOK_SECRET_LEN];
    if (nx_random_bytes(raw, sizeof(raw)) != NX_OK)
        return nx_err_set(err, NX_EINTERNAL, NULL);
    nx_hex(raw, sizeof(raw), in->secret_hex);
    nx_webhook_secret_text(raw, in->secret);
    return NX_OK;
}

/* ---- offloaded work: the URL's addresses, then the statements ------------------- */

/* A tenant transaction of the request on this (offload) thread's connection. */
static nx_tx_t *offload_tx(nx_req_t *req, nx_err_t *err)
{
    nx_tx_t *tx = nx_api_tenant_tx(req, err);
    if (!tx)
        return NULL;
    req->tx = tx; /* the caller stage reads whether its check ran */
    /* the request counts against its organisation's rate limit: the
     * reservation rides the first of these transactions (the request's own
     * never runs) */
    if (nx_api_ratelimit_queue(req, tx) != NX_OK) {
        nx_err_set(err, NX_ENOMEM, NULL);
        return NULL;
    }
    return tx;
}

/*
 * The transaction for the statements, once the caller is known to be an
 * admin of the organisation (that check runs alone first, in its own
 * transaction: a member never makes us resolve a name, and no transaction
 * stays open while we do) and once every address the URL's host resolves
 * to is one webhooks may reach.
 */
static nx_tx_t *checked_tx(nx_req_t *req, const char *url, nx_err_t *err)
{
    nx_tx_t *check = offload_tx(req, err);
    if (!check || nx_tx_run(check, err) != NX_OK)
        return NULL;
    const char *why = NULL;
    int rc = nx_webhook_url_check(req->arena, url, true, &why);
    if (rc == NX_EVALIDATION)
        nx_err_field(err, "url", "%s", why);
    else if (rc)
        nx_err_set(err, rc, NULL);
    return rc ? NULL : offload_tx(req, err);
}

static const char *location(nx_req_t *req, const char *id)
{
    return nx_arena_sprintf(req->arena, "/api/v%d/webhooks/%s",
                            req->api_version >= 2 ? 2 : 1, id);
}

static int create_run(nx_req_t *req, nx_tx_t *tx, const struct input *in, nx_err_t *err)
{
    int rc;
    char max[8];
    snprintf(max, sizeof(max), "%d", NX_WEBHOOK_MAX_ENDPOINTS);
    const char *lock[] = {req->auth.org_id};
    const char *p[] = {req->auth.org_id, in->url, in->events, in->description,
                       in->secret_hex, max};
    int idx = nx_tx_add(tx, &st_lock, lock) < 0 ? -1 : nx_tx_add(tx, &st_create, p);
    if (idx < 0)
        return nx_err_set(err, NX_ENOMEM, NULL);
    if ((rc = nx_tx_run(tx, err)) != NX_OK)
        return rc;
    nx_res_t *r = nx_tx_res(tx, idx);
    if (nx_res_rows(r) != 1)
        return nx_err_set(err, NX_ECONFLICT, "An organisation has at most %d webhook "
                          "endpoints: delete one first.", NX_WEBHOOK_MAX_ENDPOINTS);
    /* the Webhook and, this once, its secret: spliced before the last brace */
    const char *w = nx_res_get(r, 0, 1);
    int n = nx_res_len(r, 0, 1);
    while (n > 1 && w[n - 1] != '}')
        n--;
    char *body = nx_arena_sprintf(req->arena, "%.*s, \"secret\" : \"%s\"}", n - 1, w,
                                  in->secret);
    const char *loc = location(req, nx_res_get(r, 0, 0));
    if (!body || !loc || nx_resp_header(req, "Location", loc) != NX_OK)
        return nx_err_set(err, NX_ENOMEM, NULL);
    return nx_resp_json(req, 201, body, strlen(body));
}

/* An Idempotency-Key is claimed in this thread's transaction, and the
 * answer stored with the endpoint before the thread lets the request go:
 * its connection is this thread's. */
static int create_work(nx_req_t *req, void *ud, nx_err_t *err)
{
    struct input *in = ud;
    nx_tx_t *tx = checked_tx(req, in->url, err);
    if (!tx)
        return err->code;
    if (nx_api_idempotency_queue(req, tx) != NX_OK)
        return nx_err_set(err, NX_ENOMEM, NULL);
    create_run(req, tx, in, err);
    nx_api_stage_idempotency_store(req, err);
    return err->code;
}

/* The change itself, in tx. */
static int patch_run(nx_req_t *req, nx_tx_t *tx, const struct input *in, nx_err_t *err)
{
    const char *p[] = {req->auth.org_id, in->id, in->url, in->events,
                       in->has_description ? "true" : "false", in->description, in->enabled};
    int idx = nx_tx_add(tx, &st_patch, p);
    if (idx < 0)
        return nx_err_set(err, NX_ENOMEM, NULL);
    int rc = nx_tx_run(tx, err);
    if (rc != NX_OK)
        return rc;
    nx_res_t *r = nx_tx_res(tx, idx);
    if (nx_res_rows(r) != 1)
        return nx_err_set(err, NX_ENOTFOUND, "No such webhook.");
    return nx_resp_json(req, 200, nx_res_get(r, 0, 0), (size_t)nx_res_len(r, 0, 0));
}

static int patch_work(nx_req_t *req, void *ud, nx_err_t *err)
{
    struct input *in = ud;
    nx_tx_t *tx = checked_tx(req, in->url, err);
    return tx ? patch_run(req, tx, in, err) : err->code;
}

/* ---- handlers -------------------------------------------------------------------- */

int nx_api_webhooks_create(nx_req_t *req, nx_err_t *err)
{
    struct input *in = nx_arena_calloc(req->arena, sizeof(*in));
    if (!in)
        return nx_err_set(err, NX_ENOMEM, NULL);
    int rc = parse_input(req, true, in, err);
    if (rc == NX_OK)
        rc = new_secret(in, err);
    return rc != NX_OK ? rc : nx_req_offload(req, create_work, in);
}

int nx_api_webhooks_list(nx_req_t *req, nx_err_t *err)
{
    return nx_api_list(req, &st_list, NULL, 0, err);
}

int nx_api_webhooks_get(nx_req_t *req, nx_err_t *err)
{
    return nx_api_get_by_id(req, &st_get, "No such webhook.", err);
}

int nx_api_webhooks_patch(nx_req_t *req, nx_err_t *err)
{
    struct input *in = nx_arena_calloc(req->arena, sizeof(*in));
    if (!in)
        return nx_err_set(err, NX_ENOMEM, NULL);
    int rc = nx_api_uuid_param(req, 0, &in->id, err);
    if (rc == NX_OK)
        rc = parse_input(req, false, in, err);
    if (rc != NX_OK)
        return rc;
    if (in->url)
        return nx_req_offload(req, patch_work, in);
    nx_tx_t *tx = nx_api_tx(req, err);
    return tx ? patch_run(req, tx, in, err) : err->code;
}

int nx_api_webhooks_delete(nx_req_t *req, nx_err_t *err)
{
    const char *id;
    int rc = nx_api_uuid_param(req, 0, &id, err);
    if (rc != NX_OK)
        return rc;
    const char *p[] = {req->auth.org_id, id};
    nx_res_t *r;
    if ((rc = nx_api_tx_one(req, &st_delete, p, &r, err)) != NX_OK)
        return rc;
    if (nx_res_rows(r) != 1)
        return nx_err_set(err, NX_ENOTFOUND, "No such webhook.");
    return nx_resp_send(req, 204, NULL, NULL, 0);
}

int nx_api_webhooks_rotate(nx_req_t *req, nx_err_t *err)
{
    struct input in = {0};
    int rc = nx_api_uuid_param(req, 0, &in.id, err);
    if (rc == NX_OK)
        rc = new_secret(&in, err);
    if (rc != NX_OK)
        return rc;
    const char *p[] = {req->auth.org_id, in.id, in.secret_hex};
    nx_res_t *r;
    if ((rc = nx_api_tx_one(req, &st_rotate, p, &r, err)) != NX_OK)
        return rc;
    if (nx_res_rows(r) != 1)
        return nx_err_set(err, NX_ENOTFOUND, "No such webhook.");
    char *body = nx_arena_sprintf(req->arena, "{\"secret\" : \"%s\", "
                                              "\"previous_secret_expires_at\" : \"%s\"}",
                                  in.secret, nx_res_get(r, 0, 0));
    return body ? nx_resp_json(req, 200, body, strlen(body)) : nx_err_set(err, NX_ENOMEM, NULL);
}
