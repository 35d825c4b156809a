/*
 * webhooks_api.h - handlers of the webhook routes (webhooks.c): an
 * organisation's endpoints and their deliveries. Admin routes: members get
 * 403, and another organisation's endpoint or delivery is invisible under
 * row-level security and answers 404.
 */
#ifndef NX_API_WEBHOOKS_API_H
#define NX_API_WEBHOOKS_API_H

#include "core/nx.h"
#include "http/http.h"

/* POST /webhooks {"url", "events", "description"}: 201 Webhook + "secret";
 * 422 naming the field (url: form, scheme, or an address webhooks may not
 * reach); 409 past NX_WEBHOOK_MAX_ENDPOINTS. */
int nx_api_webhooks_create(nx_req_t *req, nx_err_t *err);
/* GET /webhooks (cursor pages, oldest first), GET /webhooks/{id}. */
int nx_api_webhooks_list(nx_req_t *req, nx_err_t *err);
int nx_api_webhooks_get(nx_req_t *req, nx_err_t *err);
/* PATCH /webhooks/{id} {"url", "events", "description", "enabled"}. */
int nx_api_webhooks_patch(nx_req_t *req, nx_err_t *err);
/* DELETE /webhooks/{id}: 204, its deliveries with it. */
int nx_api_webhooks_delete(nx_req_t *req, nx_err_t *err);
/* POST /webhooks/{id}/rotate-secret: 200 {"secret", "previous_secret_expires_at"}. */
int nx_api_webhooks_rotate(nx_req_t *req, nx_err_t *err);
/* POST /webhooks/{id}/test: 202 Delivery of a webhook.test event; 409 when
 * the endpoint is disabled. */
int nx_api_webhooks_test(nx_req_t *req, nx_err_t *err);
/* GET /webhooks/{id}/deliveries (?status=; cursor pages, newest first). */
int nx_api_webhooks_deliveries(nx_req_t *req, nx_err_t *err);
/* POST /webhooks/{id}/deliveries/{delivery_id}/retry: 202 Delivery, due now
 * (one more attempt for a finished one); 409 while it is being attempted or
 * its endpoint is disabled. */
int nx_api_webhooks_retry(nx_req_t *req, nx_err_t *err);

#endif
