/*
 * webhooks.h - signed outbound webhooks: the egress rules, the Standard
 * Webhooks signature, and the delivery workers.
 *
 * Events are written by the statements that change what they report (the
 * outbox: src/jobs/queue.c for job.completed, job.failed and credits.low,
 * src/api/webhooks.c for webhook.test); this module delivers them. Every
 * address a delivery connects to is checked first (egress.c), at
 * registration and again at each attempt.
 */
#ifndef NX_WEBHOOKS_WEBHOOKS_H
#define NX_WEBHOOKS_WEBHOOKS_H

#include "core/nx.h"
#include "db/target.h"

#include <sys/socket.h>

#define NX_WEBHOOKS_CHANNEL "nexus_webhooks"
#define NX_WEBHOOK_SECRET_LEN 32       /* bytes of an HMAC key */
#define NX_WEBHOOK_SECRET_TEXT 52      /* "whsec_" + base64 of 32 bytes + NUL */
#define NX_WEBHOOK_URL_MAX 2048
#define NX_WEBHOOK_MAX_ENDPOINTS 10    /* per organisation */
#define NX_WEBHOOK_EXCERPT_MAX 1024    /* bytes of an answer kept in the log */
#define NX_WEBHOOK_ANSWER_MAX 65536    /* bytes of an answer read at most */

/* ---- egress (egress.c) ------------------------------------------------------ */

/*
 * Sets the process's egress policy from the settings: WEBHOOK_ALLOW_HTTP,
 * WEBHOOK_ALLOW_NETWORKS, and this server's own listening address (HOST,
 * every local address when HOST is a wildcard) at port. Call once at
 * start-up, before any check. NX_EINVAL (a bad WEBHOOK_ALLOW_NETWORKS).
 */
int nx_webhooks_egress_init(const nx_settings_t *s, int port, nx_err_t *err);
/* The listening port, once known when PORT=0 picked one. */
void nx_webhooks_egress_port(int port);

/*
 * Why webhooks may not reach the address addr (4 or 16 bytes of family
 * AF_INET or AF_INET6) by its class alone - "loopback", "private",
 * "link-local", ... - or NULL when it is a public address. Ignores the
 * allow-list.
 */
const char *nx_webhook_addr_class(int family, const unsigned char *addr);

/*
 * Checks a webhook URL: an absolute http(s) URL (https only unless
 * WEBHOOK_ALLOW_HTTP), at most NX_WEBHOOK_URL_MAX bytes, no credentials, a
 * host that is a name, a dotted-decimal IPv4 or a bracketed IPv6 address
 * (never 2130706433, 0x7f.1 or 017700000001). With resolve, the host is
 * resolved and every address checked as nx_webhook_addr_allowed does.
 * NX_EVALIDATION with *why (arena, a sentence fragment for the field error
 * "url"), or NX_ENOMEM.
 */
int nx_webhook_url_check(nx_arena_t *arena, const char *url, bool resolve, const char **why);

/* True when a connection to sa may be made: a public address, or one
 * inside WEBHOOK_ALLOW_NETWORKS, and never this server's own listening
 * address. *why (static) says why not. */
bool nx_webhook_addr_allowed(const struct sockaddr *sa, const char **why);

/* ---- signatures (sign.c) ------------------------------------------------------- */

/* "whsec_" + base64 of secret: the form shown to the endpoint's owner. */
void nx_webhook_secret_text(const unsigned char secret[NX_WEBHOOK_SECRET_LEN],
                            char out[NX_WEBHOOK_SECRET_TEXT]);

/*
 * The webhook-signature header value of a message (Standard Webhooks):
 * "v1,<base64 HMAC-SHA256(secret, "<msg_id>.<ts>.<body>")>", and a second
 * one, space-separated, under previous when it is non-NULL (a rotation's
 * overlap). *out on the arena. NX_ENOMEM, NX_EINTERNAL.
 */
int nx_webhook_sign(nx_arena_t *arena, const unsigned char *secret,
                    const unsigned char *previous, const char *msg_id, long long ts,
                    const char *body, size_t len, char **out);

/* ---- delivery (delivery.c) ------------------------------------------------------ */

/*
 * Starts this process's delivery workers (WEBHOOK_CONCURRENCY at a time,
 * none when it or WORKER_CONCURRENCY is 0): a dispatcher with one
 * database connection as the worker role of target, and sender threads.
 * NX_ENOMEM.
 */
int nx_webhooks_start(const nx_settings_t *settings, const nx_db_target_t *target,
                      nx_err_t *err);
/* Stops them: no new claims; deliveries under way get up to drain_seconds,
 * then are abandoned and given back (their attempt not counted). */
void nx_webhooks_stop(int drain_seconds);

/*
 * After a transaction that wrote deliveries committed, outside it: wakes
 * this process's dispatcher, and sends NOTIFY on db at most once per short
 * interval for workers elsewhere. Never fails.
 */
void nx_webhooks_committed(nx_db_t *db, nx_arena_t *arena);

#endif
