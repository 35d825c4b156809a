/*
 * cmd_serve.c - `nexusapi serve [--migrate]`: the HTTP API.
 *
 * Order of start-up: resolve (and, embedded, start) the database; bring the
 * schema to head or refuse (check_schema); point the per-thread runtime
 * connections at nexus_app; start the HTTP server; log "listening on
 * http://HOST:PORT".
 * Then the main thread waits for SIGTERM/SIGINT (blocked in every thread
 * and taken with sigwait, so no handler runs at an awkward moment), and
 * shuts down in reverse: stop accepting, drain in-flight requests for up to
 * DRAIN_TIMEOUT seconds, stop the server (pool threads close their database
 * connections as they exit), stop the embedded cluster, exit 0.
 */
#include "core/nx.h"
#include "cli/cli.h"
#include "auth/auth.h"
#include "api/api.h"
#include "api/routes.h"
#include "config/settings.h"
#include "core/err.h"
#include "core/log.h"
#include "db/db.h"
#include "db/migrate.h"
#include "db/roles.h"
#include "db/target.h"
#include "http/server.h"
#include "jobs/jobs.h"
#include "webhooks/webhooks.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

static const char usage[] = "nexusapi serve [--migrate]";

/* Every connection is a descriptor: lift the soft limit to the hard one. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* --migrate upgrades to head in both modes. Without it, an embedded
 * database that is fresh or behind is upgraded too - unless an operator
 * pinned it with a downgrade - and an external one behind head is refused:
 * a shared database is upgraded on purpose. A refusal is one line naming
 * the versions and the commands that fix it. */
static int check_schema(const nx_db_target_t *t, bool migrate, nx_err_t *err)
{
    if (!migrate && !t->embedded)
        return nx_migrate_require_head(t->owner_conninfo, err);
    nx_migrate_change_t chg;
    if (nx_migrate_head(t->owner_conninfo, !migrate, &chg, err) != NX_OK)
        return err->code;
    if (chg.steps > 0) {
        char msg[80];
        snprintf(msg, sizeof(msg), "database migrated from %s to %s", chg.from, chg.to);
        nx_log(NX_LOG_INFO, msg, NX_LS("from", chg.from), NX_LS("to", chg.to),
               NX_LI("migrations", chg.steps));
    }
    return NX_OK;
}

static int serve(const nx_settings_t *s, const sigset_t *signals, nx_db_target_t *t)
{
    nx_err_t err = {0};
    if (nx_db_check_roles(t, true, s->worker_concurrency > 0, &err) != NX_OK ||
        nx_webhooks_egress_init(s, s->port, &err) != NX_OK)
        return nx_cli_fail_err(&err);
    nx_db_set_runtime(t->app_conninfo, t->app_role[0] ? t->app_role : NULL, t->pooled);

    nx_http_opts_t o = {
        .host = s->host,
        .port = s->port,
        .threads = s->http_threads,
        .max_connections = s->http_max_connections,
        .per_ip_connections = s->http_per_ip_connections,
        .connection_timeout = s->http_connection_timeout,
        .offload_threads = s->http_offload_threads,
        .groups = nx_api_route_groups,
        .ngroups = nx_api_route_groups_count,
        .stages = nx_api_pipeline,
        .nstages = nx_api_pipeline_count,
    };
    int port = 0;
    if (nx_http_start(&o, &port, &err) != NX_OK)
        return nx_cli_fail_err(&err);

    nx_webhooks_egress_port(port); /* PORT=0: the one picked */
    /* In-process job and webhook workers (WORKER_CONCURRENCY, 0 for none)
     * stop after the HTTP server, so requests in flight can still enqueue. */
    if (nx_jobs_start(s, t, &err) != NX_OK || nx_webhooks_start(s, t, &err) != NX_OK) {
        nx_http_shutdown(0);
        nx_jobs_stop(0);
        return nx_cli_fail_err(&err);
    }

    char url[300];
    bool v6 = strchr(s->host, ':') != NULL;
    snprintf(url, sizeof(url), "http://%s%s%s:%d", v6 ? "[" : "", s->host, v6 ? "]" : "",
             port);
    /* A wildcard address is not something to type in a browser. */
    bool any = strcmp(s->host, "0.0.0.0") == 0 || strcmp(s->host, "::") == 0;
    char msg[400];
    if (any)
        snprintf(msg, sizeof(msg), "listening on %s (open http://localhost:%d/docs)", url, port);
    else
        snprintf(msg, sizeof(msg), "listening on %s", url);
    nx_log(NX_LOG_INFO, msg, NX_LS("url", url), NX_LI("port", port),
           NX_LI("threads", s->http_threads), NX_LS("version", NX_VERSION));
    /* Without Google, say how to get into the dashboard at all. */
    if (nx_oidc_missing_settings())
        nx_log0(NX_LOG_INFO, "dashboard sign-in without Google: nexusapi login-link EMAIL "
                             "prints a one-time link");

    int sig = 0;
    while (sigwait(signals, &sig) != 0)
        ;
    nx_log(NX_LOG_INFO, "shutting down", NX_LS("signal", sig == SIGINT ? "SIGINT" : "SIGTERM"),
           NX_LI("drain_timeout", s->drain_timeout), NX_LI("in_flight", nx_http_inflight()));
    int left = nx_http_shutdown(s->drain_timeout);
    nx_log(NX_LOG_INFO, "http server stopped", NX_LI("abandoned", left));
    nx_jobs_stop(s->drain_timeout);
    nx_webhooks_stop(s->drain_timeout);
    return NX_EXIT_OK;
}

int cmd_serve(int argc, char **argv, nx_settings_t *s)
{
    bool migrate = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--migrate") == 0)
            migrate = true;
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
        {
            printf("usage: %s\n\n  --migrate  upgrade the database to the latest migration "
                   "first; without it,\n             an external database behind it, or one "
                   "pinned by a downgrade,\n             is refused\n",
                   usage);
            return NX_EXIT_OK;
        }
        else
            return nx_cli_usage(usage, "unknown argument \"%s\"", argv[i]);
    }

    sigset_t signals;
    nx_cli_block_stop_signals(&signals); /* before any thread exists */
    raise_fd_limit();

    nx_err_t err = {0};
    nx_db_target_t t = {0};
    if (nx_db_target_open(&t, s, &err) != NX_OK)
        return nx_cli_fail_err(&err);
    int rc;
    if (check_schema(&t, migrate, &err) != NX_OK || nx_auth_init(s, &err) != NX_OK)
        rc = nx_cli_fail_err(&err);
    else
        rc = serve(s, &signals, &t);
    nx_db_thread_close();
    nx_db_target_close(&t);
    if (rc == NX_EXIT_OK)
        nx_log0(NX_LOG_INFO, "stopped");
    return rc;
}
