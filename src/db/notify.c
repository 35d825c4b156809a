/*
 * notify.c - LISTEN/NOTIFY wake-ups for the job workers.
 *
 * The worker's queue connection also LISTENs; notifications that arrive
 * while it runs a query are buffered by libpq, so the wait first drains
 * those, then polls the socket together with the caller's wake-up fd.
 */
#include "core/nx.h"
#include "db/notify.h"
#include "db/db.h"
#include "db/db_int.h"
#include "core/err.h"

#include <errno.h>
#include <poll.h>

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

int nx_db_wait_notify(nx_db_t *db, int wake_fd, int timeout_ms, nx_err_t *err)
{
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
