/*
 * webhooks_int.h - private to src/webhooks/: a claimed run of deliveries
 * and the queue functions the delivery dispatcher calls.
 */
#ifndef NX_WEBHOOKS_WEBHOOKS_INT_H
#define NX_WEBHOOKS_WEBHOOKS_INT_H

#include "core/nx.h"
#include "webhooks/webhooks.h"
#include "core/trace.h"

#define NX_WH_CHAIN_MAX 16 /* deliveries of one endpoint claimed together */

/* What became of one delivery's attempt. */
enum nx_wh_outcome {
    NX_WH_NONE = 0, /* not attempted yet */
    NX_WH_OK,       /* 2xx: succeeded */
    NX_WH_RETRY,    /* failed; tried again after retry_ms */
    NX_WH_FAILED,   /* failed for good: last attempt, or refused by egress */
    NX_WH_RELEASE,  /* not attempted after all: given back, attempt not counted */
};

/* One claimed delivery; strings on its chain's arena. */
typedef struct nx_delivery {
    char org_id[37];
    char id[37];
    char endpoint_id[37];
    char event_id[40];   /* "evt_" + 32 hex: webhook-id */
    char event_type[16];
    int attempt;         /* attempt_count after the claim (1-based) */
    int max_attempts;
    const char *url;
    const char *body;    /* the stored event body: the bytes signed and sent */
    size_t len;
    unsigned char secret[NX_WEBHOOK_SECRET_LEN];
    unsigned char previous[NX_WEBHOOK_SECRET_LEN];
    bool has_previous;   /* a rotation's overlap: sign with both */
    int64_t due_us;      /* monotonic: claimed at */
    nx_trace_t trace;    /* the event's trace; this attempt is a span of it */
    /* the attempt, set by the sender */
    int outcome;         /* enum nx_wh_outcome */
    long long retry_ms;
    char at[40];         /* RFC 3339 start of the attempt */
    long status;         /* HTTP status; 0 when none arrived */
    long duration_ms;
    const char *error;   /* NULL on success */
    const char *excerpt; /* the answer's first NX_WEBHOOK_EXCERPT_MAX bytes, UTF-8 */
    size_t answer_len;   /* bytes of the answer read */
    bool truncated;      /* the answer went on past NX_WEBHOOK_ANSWER_MAX */
    bool recorded;       /* set by nx_whq_record: the row took the outcome */
} nx_delivery_t;

/* The deliveries of one endpoint claimed together, delivered one after the
 * other (at most one in flight per endpoint), on their own arena. */
typedef struct nx_chain {
    nx_arena_t *arena;
    char org_id[37];
    char endpoint_id[37];
    nx_delivery_t v[NX_WH_CHAIN_MAX];
    int n;
    bool disabled;       /* set by nx_whq_record: this write disabled the endpoint */
    struct nx_chain *next;
} nx_chain_t;

nx_chain_t *nx_chain_new(void);
void nx_chain_free(nx_chain_t *c);

/* claim: up to `endpoints` enabled endpoints with due deliveries and no
 * delivery in flight, least recently served first, and up to per_endpoint
 * due deliveries of each (oldest first); the endpoints and deliveries are
 * leased to owner for lease_s seconds, each attempt counted. Chains are
 * appended to *list; *n is how many. max_attempts is WEBHOOK_MAX_ATTEMPTS,
 * for deliveries that do not set their own. */
int nx_whq_claim(nx_db_t *db, nx_arena_t *scratch, const char *owner, int lease_s,
                 int endpoints, int per_endpoint, int max_attempts, nx_chain_t **list, int *n,
                 nx_err_t *err);
/* record: writes every outcome of v[0..n) in one statement (the attempt
 * log, the next attempt or the final status; releases not counted), frees
 * the endpoints' leases and keeps their failure state: an endpoint whose
 * deliveries all failed for disable_hours (0: never) is disabled with a
 * reason. Sets each delivery's `recorded` and each chain's `disabled`.
 * NX_EUNAVAILABLE when the connection is lost (nothing written). */
int nx_whq_record(nx_db_t *db, nx_arena_t *scratch, const char *owner, int disable_hours,
                  nx_chain_t **v, int n, nx_err_t *err);
/* Extends the leases of the chains still held by owner. */
int nx_whq_renew(nx_db_t *db, nx_arena_t *scratch, const char *owner, int lease_s,
                 nx_chain_t **v, int n, nx_err_t *err);
/* Deletes up to limit events older than days (their deliveries with them),
 * but none with a delivery in flight; *deleted. */
int nx_whq_prune(nx_db_t *db, nx_arena_t *scratch, int days, int limit, long *deleted,
                 nx_err_t *err);

#endif
