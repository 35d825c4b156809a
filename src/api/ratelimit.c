/*
 * ratelimit.c - per-organisation rate limits, exact across server processes.
 *
 * SECURITY: All queries MUST include organisation_id filter. Failure to do so
 * will result in data leakage between tenants.
 *
 * The window lives in PostgreSQL (rate_limit_hits, migration 0010): every
 * admitted request holds a recorded hit that counts for the whole window
 * (RATE_LIMIT_WINDOW_SECONDS), so at most RATE_LIMIT_REQUESTS pass in any
 * window, whichever processes serve them - a true sliding window. Writing
 * a hit per request would cost every request a write, so a process
 * reserves k hits at once (nx_rate_take) and admits the next k requests of
 * that organisation itself, within a short hold; the reserved hits count
 * until the hold's end plus the window, so they never over-admit, and what
 * the hold did not use is given back with the next reservation. k adapts:
 * 1 while the window has little left (every request then takes its own
 * hit, exactly), larger while the organisation is busy and far from its
 * limit.
 *
 * A reservation is a statement of the request's own tenant transaction
 * (queued by the tenant stage, or by the caller stage's check for a request
 * refused before its transaction ran): no extra round trip. A full window
 * makes it raise, which aborts the request's statements: a refused request
 * records nothing, and gets 429 with Retry-After (seconds until one more
 * is admitted). Every counted answer carries RateLimit-Policy and
 * RateLimit (IETF httpapi draft).
 *
 * Stages: rate_limit (HEADERS, after auth) decides from this process's
 * reservation or asks for one; rate_limit_answer (RESPONSE) books what the
 * database granted and adds the headers.
 */
#include "core/nx.h"
#include "api/api.h"
#include "config/settings.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/util.h"
#include "db/db.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define ORGS 4096             /* organisations tracked per process */
#define HOLD_US 1000000LL     /* how long reserved hits may be used here */
#define TAKE_MAX 256

static const nx_stmt_t st_take = {
    "api_rate_take",
    "SELECT granted, reservation, remaining, reset_ms FROM "
    "nx_rate_take($1::uuid, $2::int, $3::bigint, $4::int, $5::bigint, $6::bigint, $7::int)",
    7,
};

/* What this process holds for one organisation. */
struct org {
    char id[37];
    int64_t used_us;         /* last use, to pick a slot to reuse */
    int slots;               /* reserved hits not used yet */
    int64_t hold_until_us;   /* ... usable until then */
    long long reservation;   /* the row they belong to */
    int remaining;           /* what the window had left after that reservation */
    int64_t reset_at_us;     /* when the window's next hit expires */
    int64_t refused_until_us;
    int take;                /* the size of the next reservation */
    int64_t taking_us;       /* a reservation is on its way since then (0: none) */
};

/* A reservation asked for longer ago than this is taken as lost (its
 * request ended before its answer: the client went away). */
#define TAKING_STALE_US 5000000LL

static struct {
    pthread_mutex_t mu;
    struct org t[ORGS];
} rl = {.mu = PTHREAD_MUTEX_INITIALIZER};

static bool limited(const nx_req_t *req)
{
    return nx_cfg && nx_cfg->rate_limit_requests > 0 && req->route_entry &&
           (req->route_entry->flags & (NX_ROUTE_AUTH | NX_ROUTE_ADMIN)) && req->auth.org_id[0];
}

/* The organisation's entry (caller holds rl.mu): found, or a slot reused. */
static struct org *entry(const char *id, int64_t now)
{
    size_t h = (size_t)nx_hash_str(id) % ORGS, oldest = h;
    for (size_t i = 0; i < 8; i++) {
        struct org *o = &rl.t[(h + i) % ORGS];
        if (strcmp(o->id, id) == 0)
            return o;
        if (!o->id[0] || o->used_us < rl.t[oldest].used_us)
            oldest = (h + i) % ORGS;
    }
    struct org *o = &rl.t[oldest];
    /* a forgotten reservation's unused hits run out with their window */
    *o = (struct org){.take = 1, .used_us = now};
    memcpy(o->id, id, sizeof(o->id));
    return o;
}

static int seconds_up(int64_t us) { return us <= 0 ? 0 : (int)((us + 999999) / 1000000); }

int nx_api_stage_rate_limit(nx_req_t *req, nx_err_t *err)
{
    if (!limited(req))
        return NX_OK;
    nx_api_req_t *ax = nx_api_req(req);
    if (!ax)
        return nx_err_set(err, NX_ENOMEM, NULL);
    int64_t now = nx_time_mono_us();
    pthread_mutex_lock(&rl.mu);
    struct org *o = entry(req->auth.org_id, now);
    o->used_us = now;
    if (o->refused_until_us > now) { /* the database said full: no need to ask again */
        int wait = seconds_up(o->refused_until_us - now);
        pthread_mutex_unlock(&rl.mu);
        ax->rl_counted = true;
        ax->rl_remaining = 0;
        ax->rl_reset = wait;
        err->retry_after = wait;
        return nx_err_set(err, NX_ERATELIMIT, "The organisation's request limit is reached; "
                                              "retry after the time in Retry-After.");
    }
    if (o->slots > 0 && now < o->hold_until_us) { /* admitted from our reservation */
        o->slots--;
        ax->rl_counted = true;
        ax->rl_remaining = o->remaining + o->slots;
        ax->rl_reset = seconds_up(o->reset_at_us - now);
        pthread_mutex_unlock(&rl.mu);
        return NX_OK;
    }
    /* ask the database, giving back what an ended hold left unused */
    bool taking = o->taking_us && now - o->taking_us < TAKING_STALE_US;
    ax->rl_take = taking ? 1 : o->take;
    if (o->slots > 0 && !taking) {
        ax->rl_back_id = o->reservation;
        ax->rl_back_n = o->slots;
        o->slots = 0;
    }
    ax->rl_owns = !taking;
    if (!taking)
        o->taking_us = now;
    pthread_mutex_unlock(&rl.mu);
    return NX_OK;
}

int nx_api_ratelimit_queue(nx_req_t *req, nx_tx_t *tx)
{
    nx_api_req_t *ax = req->app;
    if (!ax || ax->rl_take <= 0 || (ax->rl_tx && nx_tx_checked(ax->rl_tx)))
        return NX_OK;
    char lim[16], win[24], want[16], hold[24], back[24], back_n[16];
    snprintf(lim, sizeof(lim), "%d", nx_cfg->rate_limit_requests);
    snprintf(win, sizeof(win), "%lld", (long long)nx_cfg->rate_limit_window * 1000);
    snprintf(want, sizeof(want), "%d", ax->rl_take);
    snprintf(hold, sizeof(hold), "%lld", ax->rl_take > 1 ? HOLD_US / 1000 : 0LL);
    snprintf(back, sizeof(back), "%lld", ax->rl_back_id);
    snprintf(back_n, sizeof(back_n), "%d", ax->rl_back_n);
    const char *p[] = {req->auth.org_id, lim, win, want, hold,
                       ax->rl_back_n > 0 ? back : NULL, back_n};
    ax->rl_idx = nx_tx_add(tx, &st_take, p);
    ax->rl_tx = tx;
    return ax->rl_idx < 0 ? NX_ENOMEM : NX_OK;
}

/* The next reservation's size: small near the limit, larger while far. */
static int next_take(int remaining)
{
    int k = remaining / 16;
    return k < 1 ? 1 : k > TAKE_MAX ? TAKE_MAX : k;
}

/* Books what the database answered for this request's reservation. */
static void book(nx_req_t *req, nx_api_req_t *ax, const nx_err_t *err)
{
    /* a reservation counts once its transaction committed (a held one may
     * still have been rolled back after the statement ran) */
    nx_res_t *r = ax->rl_tx && nx_tx_committed(ax->rl_tx) ? nx_tx_res(ax->rl_tx, ax->rl_idx)
                                                         : NULL;
    int64_t now = nx_time_mono_us();
    pthread_mutex_lock(&rl.mu);
    struct org *o = entry(req->auth.org_id, now);
    if (ax->rl_owns)
        o->taking_us = 0;
    if (r && nx_res_rows(r) == 1) {
        long long granted = 0, id = 0, remaining = 0, reset = 0;
        nx_parse_int(nx_res_get(r, 0, 0), 0, TAKE_MAX, &granted);
        nx_parse_int(nx_res_get(r, 0, 1), 0, INT64_MAX, &id);
        nx_parse_int(nx_res_get(r, 0, 2), 0, 1LL << 31, &remaining);
        nx_parse_int(nx_res_get(r, 0, 3), -(1LL << 40), 1LL << 40, &reset);
        if (ax->rl_owns && granted > 1) {
            o->slots = (int)granted - 1;
            o->reservation = id;
            o->hold_until_us = now + HOLD_US;
        }
        o->remaining = (int)remaining;
        o->reset_at_us = now + reset * 1000;
        o->take = next_take((int)remaining);
        o->refused_until_us = 0;
        ax->rl_counted = true;
        ax->rl_remaining = (int)remaining + (ax->rl_owns ? o->slots : 0);
        ax->rl_reset = seconds_up(reset * 1000);
    } else if (err->code == NX_ERATELIMIT) {
        /* the exact wait: Retry-After is rounded up to whole seconds */
        int ms = err->retry_after_ms > 0 ? err->retry_after_ms : err->retry_after * 1000;
        o->refused_until_us = now + (int64_t)ms * 1000;
        o->take = 1;
        ax->rl_counted = true;
        ax->rl_remaining = 0;
        ax->rl_reset = err->retry_after;
    }
    pthread_mutex_unlock(&rl.mu);
}

int nx_api_stage_rate_limit_answer(nx_req_t *req, nx_err_t *err)
{
    nx_api_req_t *ax = req->app;
    if (!ax || !limited(req))
        return NX_OK;
    if (ax->rl_take > 0)
        book(req, ax, err);
    if (!ax->rl_counted)
        return NX_OK;
    char policy[64], now[64];
    snprintf(policy, sizeof(policy), "\"org\";q=%d;w=%d", nx_cfg->rate_limit_requests,
             nx_cfg->rate_limit_window);
    snprintf(now, sizeof(now), "\"org\";r=%d;t=%d", ax->rl_remaining, ax->rl_reset);
    if (nx_resp_header(req, "RateLimit-Policy", policy) != NX_OK ||
        nx_resp_header(req, "RateLimit", now) != NX_OK)
        return nx_err_set(err, NX_ENOMEM, NULL);
    return NX_OK;
}

int nx_api_ratelimit_unused(const char *org_id)
{
    int64_t now = nx_time_mono_us();
    int n = 0;
    pthread_mutex_lock(&rl.mu);
    size_t h = (size_t)nx_hash_str(org_id) % ORGS;
    for (size_t i = 0; i < 8; i++) {
        struct org *o = &rl.t[(h + i) % ORGS];
        if (strcmp(o->id, org_id) == 0) {
            n = now < o->hold_until_us ? o->slots : 0;
            break;
        }
    }
    pthread_mutex_unlock(&rl.mu);
    return n;
}
