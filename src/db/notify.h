/*
 * notify.h - LISTEN/NOTIFY for the job workers' wake-up call. Kept apart
 * from db.h: only the job queue needs it. LISTEN is session state, so it
 * is issued here and nowhere else, on a connection that is a server session
 * of its own (never one through a transaction pooler).
 */
#ifndef NX_DB_NOTIFY_H
#define NX_DB_NOTIFY_H

#include "core/nx.h"

/* LISTENs on channel (an identifier) on db. NX_EUNAVAILABLE. */
int nx_db_listen(nx_db_t *db, const char *channel, nx_err_t *err);
/*
 * Opens a connection of its own to LISTEN on (DATABASE_LISTEN_URL) and
 * LISTENs on channel. NX_EINVAL with a one-line detail when conninfo goes
 * through a connection pooler, where the LISTEN would stay behind on a
 * server session other clients then use; NX_EUNAVAILABLE. The caller frees
 * *out with nx_db_free.
 */
int nx_db_listen_open(nx_db_t **out, const char *conninfo, const char *channel, nx_err_t *err);
/*
 * Waits up to timeout_ms for a notification on db (one that arrived during
 * an earlier query counts at once) or for wake_fd (-1: none) to become
 * readable; the caller drains wake_fd. db may be NULL: then only wake_fd and
 * the timeout end the wait (workers that poll). Consumes every pending
 * notification. Returns 1 when notified, 0 on timeout or wake_fd,
 * NX_EUNAVAILABLE when the connection was lost.
 */
int nx_db_wait_notify(nx_db_t *db, int wake_fd, int timeout_ms, nx_err_t *err);

#endif
