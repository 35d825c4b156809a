/*
 * server.h - starting and stopping the HTTP server (used by `serve`).
 *
 * libmicrohttpd with an internal thread pool on epoll. Stopping is two-step:
 * nx_http_shutdown stops accepting, lets in-flight requests finish (bounded by
 * the drain timeout), then closes every connection and joins the threads.
 */
#ifndef NX_HTTP_SERVER_H
#define NX_HTTP_SERVER_H

#include "core/nx.h"
#include "http/http.h"

typedef struct nx_http_opts {
    const char *host;          /* numeric IPv4/IPv6 address or "localhost" */
    int port;                  /* 0: an ephemeral port */
    int threads;               /* pool threads (HTTP_THREADS) */
    int max_connections;       /* HTTP_MAX_CONNECTIONS */
    int per_ip_connections;    /* HTTP_PER_IP_CONNECTIONS, 0 = unlimited */
    int connection_timeout;    /* seconds idle before a connection is closed */
    int offload_threads;       /* HTTP_OFFLOAD_THREADS: threads for nx_req_offload */
    const nx_route_group_t *groups; /* the route table (static) */
    size_t ngroups;
    const nx_stage_t *stages;  /* the request pipeline (static) */
    size_t nstages;
} nx_http_opts_t;

/* Starts the server; *bound_port receives the actual port. NX_EINVAL for a
 * bad host, route table or stage table, NX_EUNAVAILABLE when the port cannot be bound. */
int nx_http_start(const nx_http_opts_t *opts, int *bound_port, nx_err_t *err);
/* Stops accepting, waits up to drain_seconds for in-flight requests, then
 * stops the daemon (closing idle connections, joining pool threads).
 * Returns the number of requests still in flight when the wait ended. */
int nx_http_shutdown(int drain_seconds);
/* Requests currently in flight (started, not yet completed). */
int nx_http_inflight(void);

#endif
