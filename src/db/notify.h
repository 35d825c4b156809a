/*
 * notify.h - waiting for LISTEN/NOTIFY notifications (the job workers'
 * wake-up call). Kept apart from db.h: only the job queue needs it.
 */
#ifndef NX_DB_NOTIFY_H
#define NX_DB_NOTIFY_H

#include "core/nx.h"

/*
 * Waits up to timeout_ms for a notification on db (one that arrived during
 * an earlier query counts at once) or for wake_fd (-1: none) to become
 * readable; the caller drains wake_fd. Consumes every pending notification.
 * Returns 1 when notified, 0 on timeout or wake_fd, NX_EUNAVAILABLE when the
 * connection was lost.
 */
int nx_db_wait_notify(nx_db_t *db, int wake_fd, int timeout_ms, nx_err_t *err);

#endif
