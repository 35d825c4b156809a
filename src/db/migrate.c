/*
 * migrate.c - the migration engine: files, schema_migrations, the lock.
 *
 * Files come compiled in (core/embed.h) or from a directory. Parsing is pure
 * (unit-tested without a database). Running takes a session advisory lock
 * (polled, see take_lock) so concurrent migrators (two `upgrade head`, or
 * two embedded starts) serialise, then re-reads schema_migrations under the
 * lock: the second one finds nothing left to do. Each step is BEGIN; body; bookkeeping; COMMIT,
 * or statement by statement for "-- nexus:no-transaction" files, whose
 * statements (CREATE INDEX CONCURRENTLY) refuse a transaction block. Bodies
 * run through PQexec, the simple protocol, which takes many statements.
 * The pin (migrate.h) lives in the database, not in a file, so it holds for
 * every process and for an external DATABASE_URL alike. The lock belongs to
 * a server session, so the engine refuses a connection through a pooler
 * (PgBouncer): there the next transaction may run in another session, and
 * the lock would serialise nothing.
 */
#include "core/nx.h"
#include "db/migrate.h"
#include "auth/digest.h"
#include "core/buf.h"
#include "core/embed.h"
#include "core/err.h"
#include "core/mem.h"
#include "db/db_int.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOCK_KEY "7954884580446636391" /* "nexusMig" as a bigint */
#define MAX_FILE (8u << 20)
#define MAX_SQL_OUT (64u << 20)

static const char create_table_sql[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations (\n"
    "    version text PRIMARY KEY,\n"
    "    name text NOT NULL,\n"
    "    checksum text NOT NULL,\n"
    "    applied_at timestamptz NOT NULL DEFAULT now()\n"
    ")";

/* Written with each reverted version; dropped by an upgrade that ends at
 * head. A table of its own: schema_migrations keeps one row per version. */
static const char pin_sql[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations_pin (pinned_at timestamptz NOT NULL);\n"
    "DELETE FROM schema_migrations_pin;\n"
    "INSERT INTO schema_migrations_pin (pinned_at) VALUES (now());\n";
static const char unpin_sql[] = "DROP TABLE IF EXISTS schema_migrations_pin;\n";

/* ---- parsing ------------------------------------------------------------- */

enum marker { M_NONE = 0, M_UP, M_DOWN, M_NOTX, M_UNKNOWN };

/* Classifies one line (without its newline). */
static int line_marker(const char *s, size_t n)
{
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    while (n > 0 && (*s == ' ' || *s == '\t'))
        s++, n--;
    if (n < 2 || s[0] != '-' || s[1] != '-')
        return M_NONE;
    s += 2, n -= 2;
    while (n > 0 && (*s == ' ' || *s == '\t'))
        s++, n--;
    if (n < 6 || strncmp(s, "nexus:", 6) != 0)
        return M_NONE;
    s += 6, n -= 6;
    if (n == 2 && strncmp(s, "up", 2) == 0)
        return M_UP;
    if (n == 4 && strncmp(s, "down", 4) == 0)
        return M_DOWN;
    if (n == 14 && strncmp(s, "no-transaction", 14) == 0)
        return M_NOTX;
    return M_UNKNOWN;
}

/* True for blank lines and "--" comments. */
static bool line_is_comment(const char *s, size_t n)
{
    while (n > 0 && isspace((unsigned char)*s))
        s++, n--;
    return n == 0 || (n >= 2 && s[0] == '-' && s[1] == '-');
}

static int parse_filename(nx_mig_t *m, const char *file, nx_err_t *err)
{
    size_t len = strlen(file), digits = 0;
    while (isdigit((unsigned char)file[digits]))
        digits++;
    if (len >= sizeof(m->file) || len < 4 || strcmp(file + len - 4, ".sql") != 0 ||
        digits == 0 || digits >= sizeof(m->version) || file[digits] != '_' ||
        digits + 1 >= len - 4)
        return nx_err_set(err, NX_EINVAL,
                          "migration file \"%s\": name must be NNNN_name.sql", file);
    size_t nlen = len - 4 - digits - 1;
    for (size_t i = digits + 1; i < len - 4; i++)
        if (!isalnum((unsigned char)file[i]) && file[i] != '_' && file[i] != '-' &&
            file[i] != '.')
            return nx_err_set(err, NX_EINVAL,
                              "migration file \"%s\": name may only contain letters, digits, "
                              "'_', '-' and '.'", file);
    if (nlen >= sizeof(m->name))
        return nx_err_set(err, NX_EINVAL, "migration file \"%s\": name is too long", file);
    memcpy(m->version, file, digits);
    m->version[digits] = '\0';
    memcpy(m->name, file + digits + 1, nlen);
    m->name[nlen] = '\0';
    snprintf(m->file, sizeof(m->file), "%s", file);
    m->vnum = strtoll(m->version, NULL, 10);
    return NX_OK;
}

int nx_mig_parse(nx_mig_t *m, const char *file, const char *text, size_t len, nx_err_t *err)
{
    memset(m, 0, sizeof(*m));
    if (parse_filename(m, file, err) != NX_OK)
        return err->code;
    if (memchr(text, '\0', len))
        return nx_err_set(err, NX_EINVAL, "migration file \"%s\": contains a NUL byte", file);

    int state = 0; /* 0 preamble, 1 up, 2 down */
    size_t up_start = 0, up_end = 0, down_start = 0;
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - text) : len;
        size_t next = nl ? end + 1 : len;
        int mk = line_marker(text + pos, end - pos);
        if (mk == M_UNKNOWN)
            return nx_err_set(err, NX_EINVAL, "migration file \"%s\": unknown marker \"%.*s\"",
                              file, (int)(end - pos > 40 ? 40 : end - pos), text + pos);
        if (mk == M_NOTX) {
            if (state != 0)
                return nx_err_set(err, NX_EINVAL, "migration file \"%s\": "
                                  "\"-- nexus:no-transaction\" must come before \"-- nexus:up\"",
                                  file);
            m->no_tx = true;
        } else if (mk == M_UP) {
            if (state != 0)
                return nx_err_set(err, NX_EINVAL,
                                  "migration file \"%s\": \"-- nexus:up\" appears twice or "
                                  "after \"-- nexus:down\"", file);
            state = 1;
            up_start = next;
        } else if (mk == M_DOWN) {
            if (state != 1)
                return nx_err_set(err, NX_EINVAL, "migration file \"%s\": \"-- nexus:down\" "
                                  "must come once, after \"-- nexus:up\"", file);
            state = 2;
            up_end = pos;
            down_start = next;
        } else if (state == 0 && !line_is_comment(text + pos, end - pos)) {
            return nx_err_set(err, NX_EINVAL,
                              "migration file \"%s\": SQL before \"-- nexus:up\"", file);
        }
        pos = next;
    }
    if (state == 0)
        return nx_err_set(err, NX_EINVAL, "migration file \"%s\": no \"-- nexus:up\" section",
                          file);
    if (state == 1)
        return nx_err_set(err, NX_EINVAL,
                          "migration file \"%s\": no \"-- nexus:down\" section", file);

    if (nx_sha256_hex(text, len, m->checksum) != NX_OK)
        return nx_err_set(err, NX_EINTERNAL, "could not compute a checksum");
    m->up = nx_malloc(up_end - up_start + 1);
    m->down = nx_malloc(len - down_start + 1);
    if (!m->up || !m->down) {
        nx_mig_release(m);
        return nx_err_set(err, NX_ENOMEM, "out of memory");
    }
    memcpy(m->up, text + up_start, up_end - up_start);
    m->up[up_end - up_start] = '\0';
    memcpy(m->down, text + down_start, len - down_start);
    m->down[len - down_start] = '\0';
    return NX_OK;
}

void nx_mig_release(nx_mig_t *m)
{
    nx_free(m->up);
    nx_free(m->down);
    m->up = m->down = NULL;
}

/* ---- statement splitting (no-transaction files) --------------------------- */

static bool ident_char(char c)
{
    return isalnum((unsigned char)c) || c == '_' || c == '$';
}

/* Returns the position just past a quoted/commented run starting at p, or
 * p itself when p starts none. */
static const char *skip_special(const char *start, const char *p)
{
    if (p[0] == '-' && p[1] == '-') {
        while (*p && *p != '\n')
            p++;
        return p;
    }
    if (p[0] == '/' && p[1] == '*') {
        int depth = 0;
        while (*p) {
            if (p[0] == '/' && p[1] == '*')
                depth++, p += 2;
            else if (p[0] == '*' && p[1] == '/') {
                p += 2;
                if (--depth == 0)
                    break;
            } else
                p++;
        }
        return p;
    }
    if (*p == '\'') {
        bool esc = p > start && (p[-1] == 'E' || p[-1] == 'e') &&
                   (p - 1 == start || !ident_char(p[-2]));
        p++;
        while (*p) {
            if (esc && *p == '\\' && p[1])
                p += 2;
            else if (*p == '\'' && p[1] == '\'')
                p += 2;
            else if (*p == '\'')
                return p + 1;
            else
                p++;
        }
        return p;
    }
    if (*p == '"') {
        p++;
        while (*p && *p != '"')
            p++;
        return *p ? p + 1 : p;
    }
    if (*p == '$' && (p == start || !ident_char(p[-1]))) {
        const char *t = p + 1;
        if (isalpha((unsigned char)*t) || *t == '_')
            while (isalnum((unsigned char)*t) || *t == '_')
                t++;
        if (*t != '$')
            return p;
        size_t tlen = (size_t)(t - p) + 1;
        const char *close;
        for (close = t + 1; *close; close++)
            if (strncmp(close, p, tlen) == 0)
                return close + tlen;
        return close;
    }
    return p;
}

int nx_mig_split(const char *sql, int (*fn)(void *ctx, const char *s, size_t n), void *ctx)
{
    const char *p = sql, *stmt = sql;
    bool content = false;
    while (*p) {
        const char *q = skip_special(sql, p);
        if (q != p) {
            if (!(p[0] == '-' && p[1] == '-') && !(p[0] == '/' && p[1] == '*'))
                content = true;
            p = q;
            continue;
        }
        if (*p == ';') {
            if (content) {
                int rc = fn(ctx, stmt, (size_t)(p - stmt));
                if (rc)
                    return rc;
            }
            stmt = p + 1;
            content = false;
        } else if (!isspace((unsigned char)*p)) {
            content = true;
        }
        p++;
    }
    return content ? fn(ctx, stmt, (size_t)(p - stmt)) : 0;
}

/* ---- loading ------------------------------------------------------------- */

static int cmp_mig(const void *a, const void *b)
{
    const nx_mig_t *x = a, *y = b;
    if (x->vnum != y->vnum)
        return x->vnum < y->vnum ? -1 : 1;
    return strcmp(x->version, y->version);
}

static int cmp_applied(const void *a, const void *b)
{
    const nx_mig_applied_t *x = a, *y = b;
    if (x->vnum != y->vnum)
        return x->vnum < y->vnum ? -1 : 1;
    return strcmp(x->version, y->version);
}

static int add_file(nx_migrate_t *m, const char *name, const char *text, size_t len,
                    nx_err_t *err)
{
    nx_mig_t *v = nx_realloc(m->files, (m->nfiles + 1) * sizeof(*v));
    if (!v)
        return nx_err_set(err, NX_ENOMEM, "out of memory");
    m->files = v;
    if (nx_mig_parse(&v[m->nfiles], name, text, len, err) != NX_OK)
        return err->code;
    m->nfiles++;
    return NX_OK;
}

static int read_file(const char *path, char **out, size_t *outlen, nx_err_t *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return nx_err_set(err, NX_EINVAL, "cannot read \"%s\": %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > MAX_FILE) {
        close(fd);
        return nx_err_set(err, NX_EINVAL, "cannot read \"%s\": not a regular file under 8 MiB",
                          path);
    }
    char *buf = nx_malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (buf && got < (size_t)st.st_size) {
        ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (!buf)
        return nx_err_set(err, NX_ENOMEM, "out of memory");
    buf[got] = '\0';
    *out = buf;
    *outlen = got;
    return NX_OK;
}

static int load_dir(nx_migrate_t *m, const char *dir, nx_err_t *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return nx_err_set(err, NX_EINVAL, "cannot open migrations directory \"%s\": %s", dir,
                          strerror(errno));
    struct dirent *e;
    int rc = NX_OK;
    while (rc == NX_OK && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (!isdigit((unsigned char)e->d_name[0]) || n < 5 ||
            strcmp(e->d_name + n - 4, ".sql") != 0)
            continue;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        char *text = NULL;
        size_t len = 0;
        rc = read_file(path, &text, &len, err);
        if (rc == NX_OK)
            rc = add_file(m, e->d_name, text, len, err);
        nx_free(text);
    }
    closedir(d);
    return rc;
}

int nx_migrate_load(nx_migrate_t *m, const char *dir, nx_err_t *err)
{
    memset(m, 0, sizeof(*m));
    int rc = NX_OK;
    if (dir) {
        rc = load_dir(m, dir, err);
    } else {
        for (size_t i = 0; rc == NX_OK && i < nx_embed_migrations_count; i++) {
            const nx_embed_file_t *f = &nx_embed_migrations[i];
            const char *base = strrchr(f->name, '/');
            rc = add_file(m, base ? base + 1 : f->name, (const char *)f->start,
                          (size_t)(f->end - f->start), err);
        }
    }
    if (rc == NX_OK && m->nfiles > 1) {
        qsort(m->files, m->nfiles, sizeof(*m->files), cmp_mig);
        for (size_t i = 1; i < m->nfiles; i++)
            if (m->files[i].vnum == m->files[i - 1].vnum)
                rc = nx_err_set(err, NX_EINVAL, "two migrations have version %lld: \"%s\" and "
                                "\"%s\"", m->files[i].vnum, m->files[i - 1].file,
                                m->files[i].file);
    }
    if (rc != NX_OK)
        nx_migrate_release(m);
    return rc;
}

void nx_migrate_release(nx_migrate_t *m)
{
    if (m->priv)
        PQfinish(m->priv);
    for (size_t i = 0; i < m->nfiles; i++)
        nx_mig_release(&m->files[i]);
    nx_free(m->files);
    nx_free(m->applied);
    memset(m, 0, sizeof(*m));
}

const nx_mig_t *nx_migrate_file_find(const nx_migrate_t *m, const char *version)
{
    long long v = strtoll(version, NULL, 10);
    for (size_t i = 0; i < m->nfiles; i++)
        if (m->files[i].vnum == v)
            return &m->files[i];
    return NULL;
}

const nx_mig_applied_t *nx_migrate_applied_find(const nx_migrate_t *m, const char *version)
{
    long long v = strtoll(version, NULL, 10);
    for (size_t i = 0; i < m->napplied; i++)
        if (m->applied[i].vnum == v)
            return &m->applied[i];
    return NULL;
}

int nx_migrate_verify(const nx_migrate_t *m, nx_err_t *err)
{
    for (size_t i = 0; i < m->napplied; i++) {
        const nx_mig_t *f = nx_migrate_file_find(m, m->applied[i].version);
        if (f && strcmp(f->checksum, m->applied[i].checksum) != 0)
            return nx_err_set(err, NX_ECONFLICT,
                              "migration %s (\"%s\") was changed after it was applied: its "
                              "checksum differs from the one recorded in schema_migrations; "
                              "restore the file or write a new migration", f->version, f->file);
    }
    return NX_OK;
}

/* ---- database ------------------------------------------------------------ */

static void quiet_notices(void *arg, const char *message)
{
    NX_UNUSED(arg);
    NX_UNUSED(message);
}

/* The first line of libpq's or the server's message. */
static void set_pg_error(nx_err_t *err, int code, const char *what, const char *msg)
{
    size_t n = strcspn(msg ? msg : "", "\n");
    nx_err_set(err, code, "%s: %.*s", what, (int)(n > 180 ? 180 : n), msg ? msg : "");
    nx_err_log(err, "%s", msg ? msg : "");
}

static bool res_ok(PGresult *r)
{
    ExecStatusType st = PQresultStatus(r);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY;
}

/* Runs sql; on failure sets err with what and the server's message. On
 * success the result is the caller's (out) or cleared (out NULL). */
static int query(PGconn *c, const char *sql, const char *what, PGresult **out, nx_err_t *err)
{
    PGresult *r = PQexec(c, sql);
    if (!res_ok(r)) {
        const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
        set_pg_error(err, NX_EINTERNAL, what, msg ? msg : PQerrorMessage(c));
        PQclear(r);
        return err->code;
    }
    if (out)
        *out = r;
    else
        PQclear(r);
    return NX_OK;
}

static int exec_sql(PGconn *c, const char *sql, const char *what, nx_err_t *err)
{
    return query(c, sql, what, NULL, err);
}

/* One row of one column, or NX_EUNAVAILABLE naming what was read. */
static int read_one(PGconn *c, const char *sql, const char *what, PGresult **out,
                    nx_err_t *err)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        set_pg_error(err, NX_EUNAVAILABLE, what, PQerrorMessage(c));
        PQclear(r);
        return err->code;
    }
    *out = r;
    return NX_OK;
}

/* Sets m->pinned and m->pinned_at from schema_migrations_pin. */
static int read_pin(nx_migrate_t *m, nx_err_t *err)
{
    static const char what[] = "could not read schema_migrations_pin";
    PGconn *c = m->priv;
    PGresult *r = NULL;
    m->pinned = false;
    m->pinned_at[0] = '\0';
    if (read_one(c, "SELECT to_regclass('schema_migrations_pin') IS NOT NULL", what, &r,
                 err) != NX_OK)
        return err->code;
    bool exists = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (!exists)
        return NX_OK;
    if (read_one(c, "SELECT to_char(max(pinned_at) AT TIME ZONE 'UTC', "
                    "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM schema_migrations_pin",
                 what, &r, err) != NX_OK)
        return err->code;
    if (!PQgetisnull(r, 0, 0)) {
        m->pinned = true;
        snprintf(m->pinned_at, sizeof(m->pinned_at), "%s", PQgetvalue(r, 0, 0));
    }
    PQclear(r);
    return NX_OK;
}

static int read_applied(nx_migrate_t *m, nx_err_t *err)
{
    PGconn *c = m->priv;
    nx_free(m->applied);
    m->applied = NULL;
    m->napplied = 0;
    if (read_pin(m, err) != NX_OK)
        return err->code;
    PGresult *r = PQexec(c, "SELECT to_regclass('schema_migrations') IS NOT NULL");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        set_pg_error(err, NX_EUNAVAILABLE, "could not read schema_migrations",
                     PQerrorMessage(c));
        PQclear(r);
        return err->code;
    }
    bool exists = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    if (!exists)
        return NX_OK;
    r = PQexec(c, "SELECT version, name, checksum, to_char(applied_at AT TIME ZONE 'UTC', "
                  "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM schema_migrations");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        set_pg_error(err, NX_EUNAVAILABLE, "could not read schema_migrations",
                     PQerrorMessage(c));
        PQclear(r);
        return err->code;
    }
    int n = PQntuples(r);
    m->applied = nx_calloc((size_t)(n ? n : 1), sizeof(*m->applied));
    if (!m->applied) {
        PQclear(r);
        return nx_err_set(err, NX_ENOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        nx_mig_applied_t *a = &m->applied[i];
        snprintf(a->version, sizeof(a->version), "%s", PQgetvalue(r, i, 0));
        snprintf(a->name, sizeof(a->name), "%s", PQgetvalue(r, i, 1));
        snprintf(a->checksum, sizeof(a->checksum), "%s", PQgetvalue(r, i, 2));
        snprintf(a->applied_at, sizeof(a->applied_at), "%s", PQgetvalue(r, i, 3));
        a->vnum = strtoll(a->version, NULL, 10);
    }
    m->napplied = (size_t)n;
    PQclear(r);
    qsort(m->applied, m->napplied, sizeof(*m->applied), cmp_applied);
    return NX_OK;
}

int nx_migrate_connect(nx_migrate_t *m, const char *conninfo, nx_err_t *err)
{
    PGconn *c = nx_db_pg_connect(conninfo);
    if (!c)
        return nx_err_set(err, NX_ENOMEM, "out of memory");
    if (PQstatus(c) != CONNECTION_OK) {
        set_pg_error(err, NX_EUNAVAILABLE, "could not connect to the database",
                     PQerrorMessage(c));
        PQfinish(c);
        return err->code;
    }
    PQsetNoticeProcessor(c, quiet_notices, NULL);
    m->priv = c;
    return read_applied(m, err);
}

/* ---- planning ------------------------------------------------------------ */

/* Index of the file a REV names ("2", "0002", "0002_name"), or -1. */
static long find_rev(const nx_migrate_t *m, const char *rev)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(rev, &end, 10);
    if (end == rev || errno != 0 || v < 0)
        return -1;
    for (size_t i = 0; i < m->nfiles; i++) {
        const nx_mig_t *f = &m->files[i];
        if (f->vnum != v)
            continue;
        if (*end == '\0')
            return (long)i;
        size_t n = strlen(f->file) - 4;
        if (*end == '_' && (strcmp(rev, f->file) == 0 ||
                            (strlen(rev) == n && strncmp(rev, f->file, n) == 0)))
            return (long)i;
    }
    return -1;
}

/* Fills steps (indexes into files) for an upgrade to target. */
static int plan_up(const nx_migrate_t *m, const char *target, size_t *steps, size_t *n,
                   nx_err_t *err)
{
    *n = 0;
    if (m->nfiles == 0)
        return NX_OK;
    long last = (long)m->nfiles - 1;
    if (target && strcmp(target, "head") != 0) {
        last = find_rev(m, target);
        if (last < 0)
            return nx_err_set(err, NX_EINVAL, "unknown revision \"%s\"", target);
    }
    for (long i = 0; i <= last; i++)
        if (!nx_migrate_applied_find(m, m->files[i].version))
            steps[(*n)++] = (size_t)i;
    return NX_OK;
}

static int plan_down(const nx_migrate_t *m, const char *target, size_t *steps, size_t *n,
                     nx_err_t *err)
{
    *n = 0;
    size_t count = 0;
    if (!target)
        return nx_err_set(err, NX_EINVAL, "downgrade needs a target: -N, REV or base");
    if (strcmp(target, "base") == 0) {
        count = m->napplied;
    } else if (target[0] == '-') {
        long long k;
        char *end = NULL;
        k = strtoll(target + 1, &end, 10);
        if (end == target + 1 || *end || k < 1)
            return nx_err_set(err, NX_EINVAL, "bad relative revision \"%s\"", target);
        if ((size_t)k > m->napplied)
            return nx_err_set(err, NX_EINVAL, "cannot downgrade %lld step(s): only %zu "
                              "migration(s) are applied", k, m->napplied);
        count = (size_t)k;
    } else {
        long idx = find_rev(m, target);
        long long v;
        if (idx >= 0)
            v = m->files[idx].vnum;
        else if (nx_migrate_applied_find(m, target) && isdigit((unsigned char)target[0]))
            v = nx_migrate_applied_find(m, target)->vnum;
        else
            return nx_err_set(err, NX_EINVAL, "unknown revision \"%s\"", target);
        for (size_t i = 0; i < m->napplied; i++)
            if (m->applied[i].vnum > v)
                count++;
    }
    /* newest first */
    for (size_t i = 0; i < count; i++) {
        const nx_mig_applied_t *a = &m->applied[m->napplied - 1 - i];
        const nx_mig_t *f = nx_migrate_file_find(m, a->version);
        if (!f)
            return nx_err_set(err, NX_EINVAL, "cannot downgrade migration %s: no such file "
                              "(use --dir with the directory that has it)", a->version);
        steps[(*n)++] = (size_t)(f - m->files);
    }
    return NX_OK;
}

/* ---- running ------------------------------------------------------------- */

static int exec_stmt(void *ctx, const char *s, size_t n)
{
    void **a = ctx;
    PGconn *c = a[0];
    nx_err_t *err = a[1];
    char *sql = nx_malloc(n + 1);
    if (!sql)
        return nx_err_set(err, NX_ENOMEM, "out of memory");
    memcpy(sql, s, n);
    sql[n] = '\0';
    int rc = exec_sql(c, sql, a[2], err);
    nx_free(sql);
    return rc;
}

static int run_step(PGconn *c, const nx_mig_t *f, int dir, nx_err_t *err)
{
    char what[256];
    snprintf(what, sizeof(what), "migration %s (%s) failed", f->version, f->name);
    const char *body = dir == NX_MIGRATE_UP ? f->up : f->down;
    const char *up_params[3] = {f->version, f->name, f->checksum};
    int rc = NX_OK;

    if (!f->no_tx && exec_sql(c, "BEGIN", what, err) != NX_OK)
        return err->code;
    if (f->no_tx) {
        void *ctx[3] = {c, err, what};
        rc = nx_mig_split(body, exec_stmt, ctx);
    } else {
        rc = exec_sql(c, body, what, err);
    }
    if (rc == NX_OK) {
        PGresult *r = dir == NX_MIGRATE_UP
            ? PQexecParams(c, "INSERT INTO schema_migrations (version, name, checksum, "
                              "applied_at) VALUES ($1, $2, $3, now())",
                           3, NULL, up_params, NULL, NULL, 0)
            : PQexecParams(c, "DELETE FROM schema_migrations WHERE version = $1", 1, NULL,
                           up_params, NULL, NULL, 0);
        if (!res_ok(r)) {
            const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
            set_pg_error(err, NX_EINTERNAL, what, msg ? msg : PQerrorMessage(c));
            rc = err->code;
        }
        PQclear(r);
    }
    if (rc == NX_OK && dir == NX_MIGRATE_DOWN)
        rc = exec_sql(c, pin_sql, what, err);
    if (!f->no_tx) {
        if (rc == NX_OK)
            rc = exec_sql(c, "COMMIT", what, err);
        else
            PQclear(PQexec(c, "ROLLBACK"));
    }
    return rc;
}

static void sql_literal(nx_buf_t *b, const char *s)
{
    nx_buf_puts(b, "'");
    for (; *s; s++) {
        nx_buf_append(b, s, 1);
        if (*s == '\'')
            nx_buf_append(b, s, 1);
    }
    nx_buf_puts(b, "'");
}

static void render_body(nx_buf_t *b, const char *body)
{
    size_t n = strlen(body);
    while (n > 0 && isspace((unsigned char)body[n - 1]))
        n--;
    size_t s = 0;
    while (s < n && (body[s] == '\n' || body[s] == '\r'))
        s++;
    if (s == n)
        return;
    nx_buf_append(b, body + s, n - s);
    nx_buf_puts(b, body[n - 1] == ';' ? "\n" : "\n;\n");
}

static void render_step(nx_buf_t *b, const nx_mig_t *f, int dir)
{
    nx_buf_printf(b, "\n-- %s %s: %s (%s)%s\n", dir == NX_MIGRATE_UP ? "upgrade" : "downgrade",
                  f->version, f->name, f->file, f->no_tx ? ", no transaction" : "");
    if (!f->no_tx)
        nx_buf_puts(b, "BEGIN;\n");
    render_body(b, dir == NX_MIGRATE_UP ? f->up : f->down);
    if (dir == NX_MIGRATE_UP) {
        nx_buf_puts(b, "INSERT INTO schema_migrations (version, name, checksum, applied_at) "
                       "VALUES (");
        sql_literal(b, f->version);
        nx_buf_puts(b, ", ");
        sql_literal(b, f->name);
        nx_buf_puts(b, ", ");
        sql_literal(b, f->checksum);
        nx_buf_puts(b, ", now());\n");
    } else {
        nx_buf_puts(b, "DELETE FROM schema_migrations WHERE version = ");
        sql_literal(b, f->version);
        nx_buf_puts(b, ";\n");
        nx_buf_puts(b, pin_sql);
    }
    if (!f->no_tx)
        nx_buf_puts(b, "COMMIT;\n");
}

size_t nx_migrate_pending(const nx_migrate_t *m)
{
    size_t n = 0;
    for (size_t i = 0; i < m->nfiles; i++)
        if (!nx_migrate_applied_find(m, m->files[i].version))
            n++;
    return n;
}

/* After an upgrade that ends at head: the pin goes (rendered, or dropped). */
static int unpin(nx_migrate_t *m, const nx_migrate_opts_t *o, nx_err_t *err)
{
    if (o->sql) {
        nx_buf_printf(o->sql, "\n%s", unpin_sql);
        return NX_OK;
    }
    if (!m->pinned)
        return NX_OK;
    if (exec_sql(m->priv, unpin_sql, "could not drop schema_migrations_pin", err) != NX_OK)
        return err->code;
    m->pinned = false;
    m->pinned_at[0] = '\0';
    return NX_OK;
}

static int run_locked(nx_migrate_t *m, const nx_migrate_opts_t *o, size_t *done, nx_err_t *err)
{
    PGconn *c = m->priv;
    if (!o->sql && read_applied(m, err) != NX_OK) /* what others did before we got the lock */
        return err->code;
    if (nx_migrate_verify(m, err) != NX_OK)
        return err->code;
    if (o->unless_pinned && o->dir == NX_MIGRATE_UP && m->pinned && nx_migrate_pending(m) > 0)
        return nx_migrate_behind(m, err);
    size_t *steps = nx_calloc(m->nfiles + m->napplied + 1, sizeof(*steps));
    size_t n = 0;
    if (!steps)
        return nx_err_set(err, NX_ENOMEM, "out of memory");
    int rc = o->dir == NX_MIGRATE_UP ? plan_up(m, o->target, steps, &n, err)
                                     : plan_down(m, o->target, steps, &n, err);
    bool ends_at_head = rc == NX_OK && o->dir == NX_MIGRATE_UP && nx_migrate_pending(m) == n;
    if (rc == NX_OK && o->sql) {
        nx_buf_printf(o->sql, "-- nexusapi migrate %s %s: %zu step(s); generated, not run\n",
                      o->dir == NX_MIGRATE_UP ? "upgrade" : "downgrade",
                      o->target ? o->target : "head", n);
        if (o->dir == NX_MIGRATE_UP && n > 0)
            nx_buf_printf(o->sql, "\n%s;\n", create_table_sql);
    }
    if (rc == NX_OK && !o->sql && n > 0)
        rc = exec_sql(c, create_table_sql, "could not create schema_migrations", err);
    for (size_t i = 0; rc == NX_OK && i < n; i++) {
        const nx_mig_t *f = &m->files[steps[i]];
        if (o->sql)
            render_step(o->sql, f, o->dir);
        else
            rc = run_step(c, f, o->dir, err);
        if (rc == NX_OK) {
            (*done)++;
            if (o->note)
                o->note(o->ctx, f, o->dir);
        }
    }
    nx_free(steps);
    if (!o->sql && read_applied(m, err) != NX_OK)
        rc = err->code;
    if (rc == NX_OK && ends_at_head)
        rc = unpin(m, o, err);
    return rc;
}

/* Takes the migration lock by asking again and again rather than by
 * waiting inside pg_advisory_lock: a session blocked in that statement holds
 * a snapshot, and CREATE INDEX CONCURRENTLY in the session that has the
 * lock waits for every older snapshot to go - a deadlock. Between tries
 * this session has no transaction open, so the index build goes on. */
static int take_lock(PGconn *c, nx_err_t *err)
{
    long pause_us = 10000;
    int pooled = nx_db_pg_pooled(c, err);
    if (pooled < 0)
        return pooled;
    if (pooled)
        return nx_err_set(err, NX_ECONFLICT,
                          "DATABASE_URL goes through a connection pooler; migrations hold a "
                          "session lock and need a direct connection to PostgreSQL");
    for (;;) {
        PGresult *r = NULL;
        if (query(c, "SELECT pg_try_advisory_lock(" LOCK_KEY ")",
                  "could not take the migration lock", &r, err) != NX_OK)
            return err->code;
        bool got = PQgetvalue(r, 0, 0)[0] == 't';
        PQclear(r);
        if (got)
            return NX_OK;
        usleep((useconds_t)pause_us);
        if (pause_us < 200000)
            pause_us *= 2;
    }
}

int nx_migrate_run(nx_migrate_t *m, const nx_migrate_opts_t *o, size_t *nsteps, nx_err_t *err)
{
    PGconn *c = m->priv;
    size_t done = 0;
    if (nsteps)
        *nsteps = 0;
    if (!c)
        return nx_err_set(err, NX_EINTERNAL, "not connected");
    if (!o->sql && take_lock(c, err) != NX_OK)
        return err->code;
    int rc = run_locked(m, o, &done, err);
    if (!o->sql)
        PQclear(PQexec(c, "SELECT pg_advisory_unlock(" LOCK_KEY ")"));
    if (nsteps)
        *nsteps = done;
    return rc;
}
