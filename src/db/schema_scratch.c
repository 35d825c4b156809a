/*
 * schema_scratch.c - nx_schema_plan: the two scratch databases and the
 * comparison of their catalogs.
 *
 * One scratch database gets schema/ applied (the declared schema), the
 * other the migrations up to head, both on the server of the owner
 * connection, created from template0 under names no other run can pick
 * (nexus_scratch_<pid>_<random>). Both are dropped on every way out: an
 * error, a failing schema file, or the caller's stop callback (a signal),
 * which is polled while the server works and cancels the running statement.
 * Nothing else on the server changes.
 *
 * Schema files run statement by statement outside a transaction (a file
 * may hold CREATE INDEX CONCURRENTLY), split like no-transaction migrations,
 * so that an error names its file and line.
 */
#include "core/nx.h"
#include "db/schema.h"
#include "db/schema_int.h"
#include "core/arena.h"
#include "core/buf.h"
#include "core/err.h"
#include "core/mem.h"
#include "core/util.h"
#include "db/db_int.h"
#include "db/migrate.h"

#include <dirent.h>
#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_SCHEMA_FILE (8u << 20)
#define MAX_SCHEMA_FILES 1000
#define POLL_MS 100

enum { DECLARED = 0, HEAD = 1 };

struct scratch {
    char name[64];
    char *conninfo;
    PGconn *conn;
    bool created;
};

struct run {
    nx_arena_t *a;
    const nx_schema_opts_t *o;
    nx_err_t *err;
    PGconn *admin; /* the owner's own database: creates and drops the scratch ones */
    struct scratch db[2];
    bool stopped;
};

struct schema_file {
    char *path; /* "schema/10_organisations.sql", as the messages name it */
    char *text;
    size_t len;
};

/* ---- talking to the server ------------------------------------------------ */

static void quiet_notices(void *arg, const char *message)
{
    NX_UNUSED(arg);
    NX_UNUSED(message);
}

static bool stop_asked(struct run *r)
{
    if (!r->stopped && r->o->stop && r->o->stop(r->o->stop_ctx))
        r->stopped = true;
    return r->stopped;
}

static int interrupted(struct run *r)
{
    return nx_err_set(r->err, NX_EUNAVAILABLE, "interrupted");
}

/* Runs one statement, polling the stop callback while the server works (a
 * stop cancels the statement). Returns the result, an error result
 * included; NULL with err set when interrupted or the send failed. */
static PGresult *exec_polled(struct run *r, PGconn *c, const char *sql, int nparams,
                             const char *const *params)
{
    if (stop_asked(r)) {
        interrupted(r);
        return NULL;
    }
    int sent = nparams ? PQsendQueryParams(c, sql, nparams, NULL, params, NULL, NULL, 0)
                       : PQsendQuery(c, sql);
    if (!sent) {
        nx_err_set(r->err, NX_EUNAVAILABLE, "could not reach the database: %.*s",
                   (int)strcspn(PQerrorMessage(c), "\n"), PQerrorMessage(c));
        return NULL;
    }
    bool cancelled = false;
    while (PQisBusy(c)) {
        struct pollfd p = {.fd = PQsocket(c), .events = POLLIN};
        if (poll(&p, 1, POLL_MS) < 0 && errno != EINTR)
            break;
        if (!cancelled && stop_asked(r)) {
            char buf[256];
            PGcancel *cn = PQgetCancel(c);
            if (cn) {
                PQcancel(cn, buf, sizeof(buf));
                PQfreeCancel(cn);
            }
            cancelled = true;
        }
        if (!PQconsumeInput(c))
            break;
    }
    PGresult *res, *keep = NULL;
    while ((res = PQgetResult(c)) != NULL) {
        if (!keep || PQresultStatus(keep) != PGRES_FATAL_ERROR) {
            PQclear(keep);
            keep = res;
        } else {
            PQclear(res);
        }
    }
    if (r->stopped) {
        PQclear(keep);
        interrupted(r);
        return NULL;
    }
    if (!keep)
        nx_err_set(r->err, NX_EUNAVAILABLE, "could not reach the database: %.*s",
                   (int)strcspn(PQerrorMessage(c), "\n"), PQerrorMessage(c));
    return keep;
}

static bool res_ok(const PGresult *res)
{
    ExecStatusType st = PQresultStatus(res);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY;
}

static const char *res_message(const PGresult *res)
{
    const char *m = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    return m ? m : res ? PQresultErrorMessage(res) : "";
}

/* The query callback of the catalog reader. */
static void *catalog_query(void *ctx, void *conn, const char *sql, nx_err_t *err)
{
    struct run *r = ctx;
    PGresult *res = exec_polled(r, conn, sql, 0, NULL);
    if (res && PQresultStatus(res) != PGRES_TUPLES_OK) {
        nx_err_set(err, NX_EINTERNAL, "could not read the catalog: %.200s", res_message(res));
        PQclear(res);
        return NULL;
    }
    return res;
}

static PGconn *connect_to(struct run *r, const char *conninfo)
{
    PGconn *c = nx_db_pg_connect(conninfo);
    if (!c) {
        nx_err_set(r->err, NX_ENOMEM, "out of memory");
        return NULL;
    }
    if (PQstatus(c) != CONNECTION_OK) {
        nx_err_set(r->err, NX_EUNAVAILABLE, "could not connect to the database: %.*s",
                   (int)strcspn(PQerrorMessage(c), "\n"), PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeProcessor(c, quiet_notices, NULL);
    return c;
}

/* ---- scratch databases ---------------------------------------------------- */

/* The owner's conninfo with another database name, as key='value' pairs. */
static char *conninfo_for(struct run *r, const char *dbname)
{
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(r->o->conninfo, &errmsg);
    if (!opts) {
        nx_err_set(r->err, NX_EINVAL, "bad connection string: %.*s",
                   errmsg ? (int)strcspn(errmsg, "\n") : 0, errmsg ? errmsg : "");
        PQfreemem(errmsg);
        return NULL;
    }
    nx_buf_t b;
    nx_buf_init(&b, r->a, 64u << 10);
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        const char *v = strcmp(o->keyword, "dbname") == 0 ? dbname : o->val;
        if (!v)
            continue;
        nx_buf_printf(&b, "%s%s='", b.len ? " " : "", o->keyword);
        for (; *v; v++)
            nx_buf_printf(&b, "%s%c", *v == '\'' || *v == '\\' ? "\\" : "", *v);
        nx_buf_puts(&b, "'");
    }
    PQconninfoFree(opts);
    if (nx_buf_puts(&b, "") != NX_OK || !b.data) {
        nx_err_set(r->err, NX_ENOMEM, "out of memory");
        return NULL;
    }
    return b.data;
}

static int scratch_create(struct run *r, struct scratch *s, const char *suffix)
{
    uint32_t rnd = 0;
    nx_random_bytes(&rnd, sizeof(rnd));
    snprintf(s->name, sizeof(s->name), "nexus_scratch_%ld_%08x_%s", (long)getpid(), rnd, suffix);
    char sql[160];
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s TEMPLATE template0", s->name);
    s->created = true; /* from here on, dropped on the way out whatever happens */
    PGresult *res = exec_polled(r, r->admin, sql, 0, NULL);
    if (!res)
        return r->err->code;
    if (!res_ok(res)) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (state && strcmp(state, "42501") == 0)
            nx_err_set(r->err, NX_EFORBIDDEN, "cannot create a scratch database: the owner role "
                       "needs the CREATEDB privilege (ALTER ROLE ... CREATEDB)");
        else
            nx_err_set(r->err, NX_EUNAVAILABLE, "could not create a scratch database: %.200s",
                       res_message(res));
        PQclear(res);
        return r->err->code;
    }
    PQclear(res);
    s->conninfo = conninfo_for(r, s->name);
    if (!s->conninfo)
        return r->err->code;
    s->conn = connect_to(r, s->conninfo);
    return s->conn ? NX_OK : r->err->code;
}

/* Drops a scratch database; never polls the stop callback, which may well
 * be what brought us here. A plain DROP DATABASE also makes an autovacuum
 * worker leave (and waits for our closed sessions to end); WITH (FORCE)
 * comes second, as it must be allowed to terminate every session in the
 * database, an autovacuum worker's (the superuser's) included. */
static void scratch_drop(struct run *r, struct scratch *s)
{
    if (s->conn)
        PQfinish(s->conn);
    s->conn = NULL;
    if (!s->created || !r->admin)
        return;
    if (PQstatus(r->admin) != CONNECTION_OK)
        PQreset(r->admin);
    char sql[160];
    PGresult *res = NULL;
    for (int force = 0; force < 2 && !res_ok(res); force++) {
        PQclear(res);
        snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s%s", s->name,
                 force ? " WITH (FORCE)" : "");
        res = PQexec(r->admin, sql);
    }
    if (!res_ok(res))
        nx_err_set(r->err, NX_EUNAVAILABLE, "could not drop the scratch database \"%s\": %.150s; "
                   "drop it by hand", s->name, res_message(res));
    PQclear(res);
    s->created = false;
}

/* ---- the declared schema -------------------------------------------------- */

static int cmp_file(const void *x, const void *y)
{
    return strcmp(((const struct schema_file *)x)->path, ((const struct schema_file *)y)->path);
}

static int read_file(struct run *r, struct schema_file *f)
{
    FILE *fp = fopen(f->path, "rb");
    struct stat st;
    if (!fp || fstat(fileno(fp), &st) != 0) {
        int e = errno;
        if (fp)
            fclose(fp);
        return nx_err_set(r->err, NX_EINVAL, "cannot read \"%s\": %s", f->path, strerror(e));
    }
    if (st.st_size > (off_t)MAX_SCHEMA_FILE) {
        fclose(fp);
        return nx_err_set(r->err, NX_EINVAL, "\"%s\" is larger than 8 MiB", f->path);
    }
    f->text = nx_arena_alloc(r->a, (size_t)st.st_size + 1);
    f->len = f->text ? fread(f->text, 1, (size_t)st.st_size, fp) : 0;
    bool bad = ferror(fp) || f->len != (size_t)st.st_size;
    fclose(fp);
    if (!f->text)
        return nx_err_set(r->err, NX_ENOMEM, "out of memory");
    if (bad)
        return nx_err_set(r->err, NX_EINVAL, "cannot read \"%s\"", f->path);
    if (memchr(f->text, '\0', f->len))
        return nx_err_set(r->err, NX_EINVAL, "\"%s\" contains a NUL byte", f->path);
    f->text[f->len] = '\0';
    return NX_OK;
}

/* The *.sql files of the schema directory, in name order, read. */
static int list_schema(struct run *r, struct schema_file **out, size_t *n)
{
    const char *dir = r->o->schema_dir;
    DIR *dp = opendir(dir);
    if (!dp)
        return nx_err_set(r->err, NX_EINVAL, "cannot read the schema directory \"%s\": %s", dir,
                          strerror(errno));
    struct schema_file *files = nx_arena_calloc(r->a, MAX_SCHEMA_FILES * sizeof(*files));
    struct dirent *e;
    *n = 0;
    while (files && (e = readdir(dp)) != NULL && *n < MAX_SCHEMA_FILES) {
        size_t len = strlen(e->d_name);
        struct stat st;
        char *path = nx_arena_sprintf(r->a, "%s/%s", dir, e->d_name);
        if (e->d_name[0] == '.' || len < 5 || strcmp(e->d_name + len - 4, ".sql") != 0 ||
            !path || stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        files[(*n)++].path = path;
    }
    closedir(dp);
    if (!files)
        return nx_err_set(r->err, NX_ENOMEM, "out of memory");
    if (*n == 0)
        return nx_err_set(r->err, NX_EINVAL, "the schema directory \"%s\" has no .sql files",
                          dir);
    qsort(files, *n, sizeof(*files), cmp_file);
    for (size_t i = 0; i < *n; i++)
        if (read_file(r, &files[i]) != NX_OK)
            return r->err->code;
    *out = files;
    return NX_OK;
}

struct applying {
    struct run *r;
    const struct schema_file *f;
    PGconn *c;
};

static int line_of(const char *text, const char *at)
{
    int line = 1;
    for (const char *p = text; p < at && *p; p++)
        line += *p == '\n';
    return line;
}

/* Where a statement's SQL starts: past blanks and "--" comments. */
static const char *statement_start(const char *s, size_t n)
{
    const char *p = s, *end = s + n;
    while (p < end) {
        if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
            p++;
        else if (p + 1 < end && p[0] == '-' && p[1] == '-')
            while (p < end && *p != '\n')
                p++;
        else
            break;
    }
    return p;
}

/* s advanced by n characters (the server counts characters, not bytes). */
static const char *advance_chars(const char *s, const char *end, long n)
{
    while (s < end && n-- > 0)
        for (s++; s < end && ((unsigned char)*s & 0xC0) == 0x80; s++)
            ;
    return s;
}

static int apply_stmt(void *ctx, const char *s, size_t n)
{
    struct applying *ap = ctx;
    struct run *r = ap->r;
    char *sql = nx_malloc(n + 1);
    if (!sql)
        return nx_err_set(r->err, NX_ENOMEM, "out of memory");
    memcpy(sql, s, n);
    sql[n] = '\0';
    PGresult *res = exec_polled(r, ap->c, sql, 0, NULL);
    nx_free(sql);
    if (!res)
        return r->err->code;
    int rc = NX_OK;
    if (!res_ok(res)) {
        const char *pos = PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION);
        const char *at = pos ? advance_chars(s, s + n, strtol(pos, NULL, 10) - 1)
                             : statement_start(s, n);
        rc = nx_err_set(r->err, NX_EINVAL, "%s:%d: %.180s", ap->f->path,
                        line_of(ap->f->text, at), res_message(res));
        nx_err_log(r->err, "%s", PQresultErrorMessage(res));
    }
    PQclear(res);
    return rc;
}

static int build_declared(struct run *r, const struct schema_file *files, size_t n)
{
    struct scratch *s = &r->db[DECLARED];
    if (scratch_create(r, s, "s") != NX_OK)
        return r->err->code;
    for (size_t i = 0; i < n; i++) {
        struct applying ap = {.r = r, .f = &files[i], .c = s->conn};
        int rc = nx_mig_split(files[i].text, apply_stmt, &ap);
        if (rc != NX_OK)
            return rc;
    }
    return NX_OK;
}

/* ---- the migrations ------------------------------------------------------- */

static int build_head(struct run *r, nx_migrate_t *m)
{
    struct scratch *s = &r->db[HEAD];
    if (scratch_create(r, s, "m") != NX_OK || nx_migrate_connect(m, s->conninfo, r->err) != NX_OK)
        return r->err->code;
    nx_migrate_opts_t up = {.dir = NX_MIGRATE_UP, .target = "head"};
    if (nx_migrate_run(m, &up, NULL, r->err) != NX_OK)
        return r->err->code;
    return stop_asked(r) ? interrupted(r) : NX_OK;
}

/* Renames the columns of --rename in the head database, so that the
 * comparison sees one column, and fills rn[i]. */
static int rename_columns(struct run *r, nx_sc_rename_t *rn)
{
    static const char sql[] =
        "SELECT format('ALTER TABLE %I RENAME COLUMN %I TO %I', $1::text, $2::text, $3::text), "
        "format('ALTER TABLE %I RENAME COLUMN %I TO %I', $1::text, $3::text, $2::text), "
        "quote_ident($1::text), quote_ident($3::text)";
    for (size_t i = 0; i < r->o->nrenames; i++) {
        const nx_schema_rename_t *o = &r->o->renames[i];
        const char *params[3] = {o->table, o->from, o->to};
        PGresult *res = exec_polled(r, r->db[HEAD].conn, sql, 3, params);
        if (!res)
            return r->err->code;
        if (!res_ok(res)) {
            nx_err_set(r->err, NX_EINTERNAL, "--rename: %.200s", res_message(res));
            PQclear(res);
            return r->err->code;
        }
        const char **out[4] = {&rn[i].up, &rn[i].down, &rn[i].table, &rn[i].to};
        rn[i].from = o->from;
        bool oom = false;
        for (int k = 0; k < 4; k++)
            oom |= !(*out[k] = nx_arena_strdup(r->a, PQgetvalue(res, 0, k)));
        PQclear(res);
        if (oom)
            return nx_err_set(r->err, NX_ENOMEM, "out of memory");
        res = exec_polled(r, r->db[HEAD].conn, rn[i].up, 0, NULL);
        if (!res)
            return r->err->code;
        if (!res_ok(res))
            nx_err_set(r->err, NX_EINVAL, "--rename %s.%s=%s: %.180s (at the migrations' head)",
                       o->table, o->from, o->to, res_message(res));
        PQclear(res);
        if (r->err->code)
            return r->err->code;
    }
    return NX_OK;
}

/* ---- the comparison ------------------------------------------------------- */

static int check_renames(struct run *r, const nx_sc_model_t *declared, const nx_sc_rename_t *rn)
{
    for (size_t i = 0; i < r->o->nrenames; i++) {
        const nx_sc_table_t *t = nx_sc_table_find(declared, rn[i].table);
        if (!t || !nx_sc_column_find(t, rn[i].to))
            return nx_err_set(r->err, NX_EINVAL, "--rename %s.%s=%s: schema/ has no column "
                              "%s.%s", r->o->renames[i].table, r->o->renames[i].from,
                              r->o->renames[i].to, rn[i].table, rn[i].to);
    }
    return NX_OK;
}

static const char *head_name(nx_arena_t *a, const nx_migrate_t *m)
{
    if (m->nfiles == 0)
        return "base";
    const nx_mig_t *h = &m->files[m->nfiles - 1];
    const char *s = nx_arena_sprintf(a, "%s %s", h->version, h->name);
    return s ? s : "head";
}

/* Everything that needs the server, once the inputs are read. */
static int plan_on_server(struct run *r, const struct schema_file *files, size_t nfiles,
                          nx_migrate_t *m, nx_schema_plan_t *p)
{
    nx_sc_model_t declared, head;
    nx_sc_rename_t *rn = nx_arena_calloc(r->a, (r->o->nrenames + 1) * sizeof(*rn));
    if (!rn)
        return nx_err_set(r->err, NX_ENOMEM, "out of memory");
    r->admin = connect_to(r, r->o->conninfo);
    if (!r->admin || build_declared(r, files, nfiles) != NX_OK || build_head(r, m) != NX_OK ||
        rename_columns(r, rn) != NX_OK)
        return r->err->code;
    if (nx_sc_catalog_read(r->a, r->db[DECLARED].conn, catalog_query, r, &declared, r->err) !=
            NX_OK ||
        nx_sc_catalog_read(r->a, r->db[HEAD].conn, catalog_query, r, &head, r->err) != NX_OK ||
        check_renames(r, &declared, rn) != NX_OK)
        return r->err->code;
    if (nx_sc_plan_models(r->a, &declared, &head, rn, r->o->nrenames, p) != NX_OK)
        return nx_err_set(r->err, NX_ENOMEM, "out of memory");
    return NX_OK;
}

int nx_schema_plan(nx_arena_t *a, const nx_schema_opts_t *o, nx_schema_plan_t *p,
                   nx_err_t *err)
{
    struct run r = {.a = a, .o = o, .err = err};
    struct schema_file *files = NULL;
    size_t nfiles = 0;
    nx_migrate_t m;
    memset(p, 0, sizeof(*p));
    p->up = p->down = p->cup = p->cdown = "";
    p->head = "base";
    memset(&m, 0, sizeof(m));
    int rc = list_schema(&r, &files, &nfiles);
    if (rc == NX_OK)
        rc = nx_migrate_load(&m, o->mig_dir, err);
    if (rc == NX_OK) {
        p->head = head_name(a, &m);
        rc = plan_on_server(&r, files, nfiles, &m, p);
    }
    nx_migrate_release(&m); /* closes its connection to the head database */
    scratch_drop(&r, &r.db[DECLARED]);
    scratch_drop(&r, &r.db[HEAD]);
    if (r.admin)
        PQfinish(r.admin);
    return rc != NX_OK ? rc : err->code;
}
