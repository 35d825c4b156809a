/*
 * conn.c - connections, the per-thread runtime connection, and the
 * per-connection prepared-statement cache.
 *
 * SECURITY: All queries MUST include organisation_id filter. Failure to do so
 * will result in data leakage between tenants.
 * (This file runs no query on a tenant table; it only sets the role.)
 *
 * Each worker thread owns one runtime connection (nx_db_thread), opened on
 * first use as the owner or app login and switched to nexus_app with SET
 * ROLE. A connection found broken, or closed by the server while idle, is
 * closed and re-opened on the next call, so a database restart costs only
 * the requests in flight at that moment, not the process and not the first
 * request after it.
 * Statements are prepared lazily: the cache records which nx_stmt_t names
 * this connection has prepared, and a new connection starts empty. Through
 * a pooler in transaction mode nothing is prepared by name (the next
 * transaction may run on another server session): statements go unnamed.
 */
#include "core/nx.h"
#include "db/db.h"
#include "db/db_int.h"
#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/util.h"
#include "metrics/metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONNECT_TIMEOUT "5"
#define STMT_SLOTS_MIN 64

/* ---- connections --------------------------------------------------------- */

/* The first line of a libpq message, for the operator log. */
static void log_pq_message(nx_err_t *err, const char *what, const char *msg)
{
    const char *m = msg ? msg : "";
    size_t n = strcspn(m, "\n");
    nx_err_log(err, "%s: %.*s", what, (int)n, m);
}

/* Server notices (RAISE NOTICE, "... skipping") go to the log, not stderr.
 * libpq also hands over here an error that arrives while the connection is
 * idle: a FATAL then is the server saying why it is closing the connection
 * (shutdown, restart, pg_terminate_backend), so the connection is done. */
static void on_notice(void *arg, const PGresult *r)
{
    nx_db_t *db = arg;
    const char *severity = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
    bool fatal = severity && (strcmp(severity, "FATAL") == 0 || strcmp(severity, "PANIC") == 0);
    if (fatal)
        db->broken = true;
    const char *msg = PQresultErrorMessage(r);
    size_t n = strcspn(msg, "\n");
    char line[256];
    snprintf(line, sizeof(line), "%.*s", (int)(n < sizeof(line) ? n : sizeof(line) - 1), msg);
    nx_log(fatal ? NX_LOG_WARN : NX_LOG_DEBUG,
           fatal ? "database closed an idle connection" : "database notice",
           NX_LS("message", line));
}

static int set_role(nx_db_t *db, const char *role, nx_err_t *err)
{
    char *ident = PQescapeIdentifier(db->pg, role, strlen(role));
    if (!ident)
        return nx_err_set(err, NX_ENOMEM, NULL);
    char sql[160];
    snprintf(sql, sizeof(sql), "SET ROLE %s", ident);
    PQfreemem(ident);
    PGresult *r = PQexec(db->pg, sql);
    int rc = NX_OK;
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        rc = nx_err_set(err, NX_EUNAVAILABLE, "The database is unavailable.");
        log_pq_message(err, "could not assume the runtime role", PQerrorMessage(db->pg));
    }
    PQclear(r);
    return rc;
}

PGconn *nx_db_pg_connect(const char *conninfo)
{
    /* Keywords before dbname are defaults the conninfo string may override.
     * GSSAPI encryption only when the URL or PGGSSENCMODE asks for it:
     * libpq's own default (prefer) probes Kerberos on every TCP connection,
     * reading krb5.conf and keeping 0.8 MB of libkrb5 resident for nothing. */
    const char *keys[6] = {"fallback_application_name", "connect_timeout", "client_encoding"};
    const char *vals[6] = {"nexusapi", CONNECT_TIMEOUT, "UTF8"};
    int n = 3;
    if (!getenv("PGGSSENCMODE")) {
        keys[n] = "gssencmode";
        vals[n++] = "disable";
    }
    keys[n] = "dbname";
    vals[n] = conninfo ? conninfo : "";
    return PQconnectdbParams(keys, vals, 1);
}

int nx_db_connect(nx_db_t **out, const char *conninfo, const char *role, nx_err_t *err)
{
    *out = NULL;
    nx_db_t *db = nx_calloc(1, sizeof(*db));
    if (!db)
        return nx_err_set(err, NX_ENOMEM, NULL);
    db->pg = nx_db_pg_connect(conninfo);
    if (!db->pg) {
        nx_free(db);
        return nx_err_set(err, NX_ENOMEM, NULL);
    }
    if (PQstatus(db->pg) != CONNECTION_OK) {
        nx_err_set(err, NX_EUNAVAILABLE, "The database is unavailable.");
        log_pq_message(err, "could not connect to the database", PQerrorMessage(db->pg));
        nx_db_free(db);
        return NX_EUNAVAILABLE;
    }
    PQsetNoticeReceiver(db->pg, on_notice, db);
    if (role && role[0] && set_role(db, role, err) != NX_OK) {
        int rc = err ? err->code : NX_EUNAVAILABLE;
        nx_db_free(db);
        return rc;
    }
    *out = db;
    return NX_OK;
}

void nx_db_free(nx_db_t *db)
{
    if (!db)
        return;
    nx_db_stmt_forget_all(db);
    nx_free(db->slots);
    if (db->pg)
        PQfinish(db->pg);
    nx_free(db);
}

void nx_db_set_unnamed(nx_db_t *db) { db->unnamed = true; }

int nx_db_pg_pooled(PGconn *c, nx_err_t *err)
{
    PGresult *r = PQexec(c, "SELECT pg_backend_pid()");
    int rc;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        rc = strtol(PQgetvalue(r, 0, 0), NULL, 10) != PQbackendPID(c);
    } else {
        rc = nx_err_set(err, NX_EUNAVAILABLE, "The database is unavailable.");
        log_pq_message(err, "could not read the server process id", PQerrorMessage(c));
    }
    PQclear(r);
    return rc;
}

int nx_db_pooled(nx_db_t *db, nx_err_t *err)
{
    if (!nx_db_ok(db))
        return nx_err_set(err, NX_EUNAVAILABLE, "The database is unavailable.");
    return nx_db_pg_pooled(db->pg, err);
}

bool nx_db_ok(const nx_db_t *db)
{
    return db && db->pg && !db->broken && PQstatus(db->pg) == CONNECTION_OK;
}

const char *nx_db_constraint(const nx_db_t *db)
{
    return db && db->constraint[0] ? db->constraint : NULL;
}

int nx_db_conninfo_export(const char *conninfo, nx_err_t *err)
{
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo ? conninfo : "", &msg);
    if (!opts) {
        nx_err_set(err, NX_EINVAL, "invalid database connection string");
        log_pq_message(err, "could not parse the connection string", msg);
        PQfreemem(msg);
        return NX_EINVAL;
    }
    for (PQconninfoOption *o = opts; o->keyword; o++)
        if (o->envvar && o->val && o->val[0])
            setenv(o->envvar, o->val, 1);
    PQconninfoFree(opts);
    return NX_OK;
}

/* ---- the per-thread runtime connection ----------------------------------- */

static char runtime_conninfo[2048];
static char runtime_role[64];
static bool runtime_unnamed;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static pthread_key_t key;
static _Thread_local nx_db_t *thread_db;
static _Thread_local bool thread_lost; /* a connection was lost and not yet replaced */

static void thread_exit(void *p)
{
    nx_db_free(p);
    thread_db = NULL;
}

static void key_init(void) { pthread_key_create(&key, thread_exit); }

void nx_db_set_runtime(const char *conninfo, const char *role, bool unnamed)
{
    snprintf(runtime_conninfo, sizeof(runtime_conninfo), "%s", conninfo ? conninfo : "");
    snprintf(runtime_role, sizeof(runtime_role), "%s", role ? role : "");
    runtime_unnamed = unnamed;
}

/* Reads what the server sent while the connection sat idle. A server that
 * shut down or restarted has sent a FATAL and closed the socket: finding
 * that now, before anything is sent, lets the request run on a new
 * connection instead of failing. One non-blocking recv (libpq's socket
 * never blocks); PQisBusy parses what came, handing a FATAL to on_notice. */
static bool idle_connection_alive(nx_db_t *db)
{
    if (!PQconsumeInput(db->pg))
        return false;
    (void)PQisBusy(db->pg);
    return !db->broken && PQstatus(db->pg) == CONNECTION_OK;
}

nx_db_t *nx_db_thread(nx_err_t *err)
{
    pthread_once(&key_once, key_init);
    if (thread_db && nx_db_ok(thread_db) && idle_connection_alive(thread_db))
        return thread_db;
    thread_lost = thread_lost || thread_db != NULL; /* it had one, and lost it */
    nx_db_thread_close();
    nx_db_t *db;
    int64_t t0 = nx_time_mono_us();
    int rc = nx_db_connect(&db, runtime_conninfo, runtime_role, err);
    nx_metrics_db_connect(thread_lost, rc == NX_OK, nx_time_mono_us() - t0);
    if (rc != NX_OK)
        return NULL;
    thread_lost = false;
    db->unnamed = runtime_unnamed;
    thread_db = db;
    pthread_setspecific(key, db);
    return db;
}

void nx_db_thread_close(void)
{
    pthread_once(&key_once, key_init);
    if (!thread_db)
        return;
    nx_db_free(thread_db);
    thread_db = NULL;
    pthread_setspecific(key, NULL);
}

/* ---- prepared-statement cache -------------------------------------------- */

static struct stmt_slot *find_slot(struct stmt_slot *slots, size_t nslots, const char *name)
{
    size_t mask = nslots - 1;
    for (size_t i = (size_t)nx_hash_str(name) & mask;; i = (i + 1) & mask)
        if (!slots[i].name || strcmp(slots[i].name, name) == 0)
            return &slots[i];
}

static int grow(nx_db_t *db)
{
    size_t n = db->nslots ? db->nslots * 2 : STMT_SLOTS_MIN;
    struct stmt_slot *slots = nx_calloc(n, sizeof(*slots));
    if (!slots)
        return NX_ENOMEM;
    for (size_t i = 0; i < db->nslots; i++)
        if (db->slots[i].name)
            *find_slot(slots, n, db->slots[i].name) = db->slots[i];
    nx_free(db->slots);
    db->slots = slots;
    db->nslots = n;
    return NX_OK;
}

bool nx_db_stmt_known(nx_db_t *db, const nx_stmt_t *st)
{
    if (!db->nslots)
        return false;
    struct stmt_slot *s = find_slot(db->slots, db->nslots, st->name);
    if (!s->name)
        return false;
    /* Two different statements sharing one name is a programmer bug. */
    NX_ASSERT(s->sql_hash == (size_t)nx_hash_str(st->sql));
    return true;
}

int nx_db_stmt_remember(nx_db_t *db, const nx_stmt_t *st)
{
    if ((db->nused + 1) * 2 > db->nslots && grow(db) != NX_OK)
        return NX_ENOMEM;
    struct stmt_slot *s = find_slot(db->slots, db->nslots, st->name);
    if (s->name)
        return NX_OK;
    s->name = nx_strdup(st->name);
    if (!s->name)
        return NX_ENOMEM;
    s->sql_hash = (size_t)nx_hash_str(st->sql);
    db->nused++;
    return NX_OK;
}

void nx_db_stmt_forget_all(nx_db_t *db)
{
    for (size_t i = 0; i < db->nslots; i++) {
        nx_free(db->slots[i].name);
        db->slots[i].name = NULL;
    }
    db->nused = 0;
}
