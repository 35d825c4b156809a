/*
 * notify.c - LISTEN/NOTIFY wake-ups for the job workers.
 *
 * The worker LISTENs on its queue connection when that is a session of its
 * own, or on a connection of its own (DATABASE_LISTEN_URL) when the queue
 * goes through a transaction pooler; without either it only polls.
 * Notifications that arrive while a query runs are buffered by libpq, so
 * the wait first drains those, then polls the socket together with the
 * caller's wake-up fd.
 */
#include "core/nx.h"
#include "db/notify.h"
#include "db/db.h"
#include "db/db_int.h"
#include "core/err.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

static int drain(PGconn *pg)
{
    int got = 0;
    PGnotify *n;
    while ((n = PQnotifies(pg)) != NULL) {
        PQfreemem(n);
        got++;
    }
    return got;
}

int nx_db_listen(nx_db_t *db, const char *channel, nx_err_t *err)
{
    if (!nx_db_ok(db))
        return nx_err_set(err, NX_EUNAVAILABLE, "The database is unavailable.");
    char *ident = PQescapeIdentifier(db->pg, channel, strlen(channel));
    if (!ident)
        return nx_err_set(err, NX_ENOMEM, NULL);
    char sql[128];
    snprintf(sql, sizeof(sql), "LISTEN %s", ident);
    PQfreemem(ident);
    return nx_db_exec_sql(db, NULL, sql, NULL, err);
}

int nx_db_listen_open(nx_db_t **out, const char *conninfo, const char *channel, nx_err_t *err)
{
    nx_db_t *db = NULL;
    *out = NULL;
    if (nx_db_connect(&db, conninfo, NULL, err) != NX_OK)
        return err->code;
    int pooled = nx_db_pooled(db, err);
    int rc = pooled < 0 ? pooled : NX_OK;
    if (pooled > 0)
        rc = nx_err_set(err, NX_EINVAL,
                        "DATABASE_LISTEN_URL goes through a connection pooler, where LISTEN "
                        "would stay on a server session other clients use; it needs a direct "
                        "connection to PostgreSQL");
    if (rc == NX_OK)
        rc = nx_db_listen(db, channel, err);
    if (rc != NX_OK) {
        nx_db_free(db);
        return rc;
    }
    *out = db;
    return NX_OK;
}

int nx_db_wait_notify(nx_db_t *db, int wake_fd, int timeout_ms, nx_err_t *err)
{
    if (!db) {
        struct pollfd fd = {wake_fd, POLLIN, 0};
        poll(&fd, wake_fd >= 0 ? 1 : 0, timeout_ms);
        return 0;
    }
    if (!nx_db_ok(db))
        return nx_err_set(err, NX_EUNAVAILABLE, "The database is unavailable.");
    if (drain(db->pg))
        return 1;
    struct pollfd fds[2] = {{PQsocket(db->pg), POLLIN, 0}, {wake_fd, POLLIN, 0}};
    int rc = poll(fds, wake_fd >= 0 ? 2 : 1, timeout_ms);
    if (rc < 0 && errno != EINTR) {
        nx_err_log(err, "poll: errno %d", errno);
        return nx_err_set(err, NX_EUNAVAILABLE, "The database is unavailable.");
    }
    if (rc > 0 && fds[0].revents) {
        if (!PQconsumeInput(db->pg) || PQstatus(db->pg) != CONNECTION_OK) {
            db->broken = true;
            nx_err_log(err, "listen: %s", PQerrorMessage(db->pg));
            return nx_err_set(err, NX_EUNAVAILABLE, "The database is unavailable.");
        }
    }
    return drain(db->pg) > 0;
}
