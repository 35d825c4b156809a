/*
 * cmd_worker.c - `nexusapi worker`: job workers only, no HTTP.
 *
 * Runs WORKER_CONCURRENCY attempts at a time (and WEBHOOK_CONCURRENCY
 * webhook deliveries) against the configured database (any number of these processes, on any host, may share one
 * database: claims use FOR UPDATE SKIP LOCKED and leases). The main thread
 * waits for SIGTERM/SIGINT (blocked everywhere, taken with sigwait); then
 * running attempts get DRAIN_TIMEOUT seconds to finish, the rest are
 * released, and the process exits 0. A worker killed outright loses
 * nothing: its leases expire and other workers claim the jobs again.
 *
 * With WORKER_METRICS_PORT set, the process also serves GET /metrics on
 * HOST:WORKER_METRICS_PORT (same access rule as `serve`): src/http with a
 * route table of one route and a pipeline of the stages it needs.
 */
#include "core/nx.h"
#include "cli/cli.h"
#include "config/settings.h"
#include "core/err.h"
#include "core/log.h"
#include "db/migrate.h"
#include "db/roles.h"
#include "db/target.h"
#include "http/server.h"
#include "jobs/jobs.h"
#include "metrics/metrics.h"
#include "webhooks/webhooks.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static const char usage[] = "nexusapi worker";

static const nx_route_t metrics_routes[] = {
    {"GET", "/metrics", nx_metrics_get, NX_ROUTE_PUBLIC | NX_ROUTE_UNDOCUMENTED},
};

static const nx_route_group_t metrics_groups[] = {
    {"", 0, metrics_routes, NX_ARRAY_LEN(metrics_routes)},
};

static const nx_stage_t metrics_pipeline[] = {
    {"trace", NX_STAGE_HEADERS, nx_http_stage_trace},
    {"request_id", NX_STAGE_HEADERS, nx_http_stage_request_id},
    {"route", NX_STAGE_HEADERS, nx_http_stage_route},
    {"handler", NX_STAGE_REQUEST, nx_http_stage_handler},
    {"security_headers", NX_STAGE_RESPONSE, nx_http_stage_security_headers},
    {"respond", NX_STAGE_RESPONSE, nx_http_stage_respond},
    {"access_log", NX_STAGE_DONE, nx_http_stage_access_log},
    {"metrics", NX_STAGE_DONE, nx_metrics_stage_http},
};

/* GET /metrics on HOST:WORKER_METRICS_PORT, when set. */
static int start_metrics(const nx_settings_t *s, nx_err_t *err)
{
    if (s->worker_metrics_port <= 0)
        return NX_OK;
    nx_http_opts_t o = {
        .host = s->host,
        .port = s->worker_metrics_port,
        .threads = 1,
        .max_connections = 64,
        .per_ip_connections = 16,
        .connection_timeout = s->http_connection_timeout,
        .offload_threads = 1,
        .groups = metrics_groups,
        .ngroups = NX_ARRAY_LEN(metrics_groups),
        .stages = metrics_pipeline,
        .nstages = NX_ARRAY_LEN(metrics_pipeline),
    };
    int port = 0;
    if (nx_http_start(&o, &port, err) != NX_OK)
        return err->code;
    nx_log(NX_LOG_INFO, "metrics listening", NX_LS("host", s->host), NX_LI("port", port));
    return NX_OK;
}

static int run(nx_settings_t *s, const sigset_t *signals, nx_db_target_t *t)
{
    nx_err_t err = {0};
    /* workers never change the schema: serve or `migrate upgrade` does; the
     * roles the schema creates are checked once it is known to be there */
    if (nx_migrate_require_head(t->owner_conninfo, &err) != NX_OK ||
        nx_db_check_roles(t, false, true, &err) != NX_OK ||
        nx_webhooks_egress_init(s, s->port, &err) != NX_OK || start_metrics(s, &err) != NX_OK)
        return nx_cli_fail_err(&err);
    if (nx_jobs_start(s, t, &err) != NX_OK) {
        nx_http_shutdown(0);
        return nx_cli_fail_err(&err);
    }
    if (nx_webhooks_start(s, t, &err) != NX_OK) {
        nx_jobs_stop(0);
        nx_http_shutdown(0);
        return nx_cli_fail_err(&err);
    }
    int sig = 0;
    while (sigwait(signals, &sig) != 0)
        ;
    nx_log(NX_LOG_INFO, "worker shutting down",
           NX_LS("signal", sig == SIGINT ? "SIGINT" : "SIGTERM"),
           NX_LI("drain_timeout", s->drain_timeout));
    nx_jobs_stop(s->drain_timeout);
    nx_webhooks_stop(s->drain_timeout);
    nx_http_shutdown(0); /* no server: nothing to do */
    return NX_EXIT_OK;
}

int cmd_worker(int argc, char **argv, nx_settings_t *s)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            printf("usage: %s\n\nRuns WORKER_CONCURRENCY job workers against the configured "
                   "database until SIGTERM.\n",
                   usage);
            return NX_EXIT_OK;
        }
        return nx_cli_usage(usage, "unknown argument \"%s\"", argv[i]);
    }
    if (s->worker_concurrency <= 0)
        return nx_cli_usage(usage, "WORKER_CONCURRENCY is 0: there is nothing to run");

    sigset_t signals;
    nx_cli_block_stop_signals(&signals); /* before any thread exists */

    nx_err_t err = {0};
    nx_db_target_t t = {0};
    if (nx_db_target_open(&t, s, &err) != NX_OK)
        return nx_cli_fail_err(&err);
    int rc = run(s, &signals, &t);
    nx_db_target_close(&t);
    if (rc == NX_EXIT_OK)
        nx_log0(NX_LOG_INFO, "worker stopped");
    return rc;
}
