/*
 * cmd_migrate.c - `nexusapi migrate`: the migration verbs, Alembic-style.
 *
 *   upgrade [head|REV] [--sql]      apply pending migrations up to REV
 *   downgrade -N|REV|base [--sql]   revert the newest N, those above REV, or all
 *   history                         every known version, newest first
 *   current                         the database's version
 *   check [--schema DIR]            exit 1 when behind head, a file changed, or
 *                                   schema/ and the migrations disagree (drift)
 *   revision -m MESSAGE             write the next NNNN_message.sql
 *   revision --autogenerate -m MESSAGE [--schema DIR] [--rename T.OLD=NEW]...
 *            [--fail-on-hazard]     write it from schema/ (migrate_schema.c)
 *   --dir PATH                      read migrations from PATH, not the binary
 *
 * Works on the owner connection of db/target.h; with no DATABASE_URL that is
 * the embedded cluster, started for the command if it is not running. A
 * downgrade pins the database below head until an upgrade reaches head
 * again (db/migrate.h); current, history and upgrade/downgrade show the pin.
 */
#include "core/nx.h"
#include "cli/cli.h"
#include "cli/cli_int.h"
#include "config/settings.h"
#include "core/buf.h"
#include "core/err.h"
#include "db/migrate.h"
#include "db/target.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage[] =
    "nexusapi migrate upgrade [head|REV] [--sql] | downgrade -N|REV|base [--sql] | history | "
    "current | check [--schema DIR] | revision -m MESSAGE [--autogenerate [--schema DIR] "
    "[--rename TABLE.OLD=NEW]... [--fail-on-hazard]]   [--dir PATH]";

#define MAX_RENAMES 32

struct args {
    const char *verb;
    const char *target;
    const char *message;
    const char *dir;
    const char *schema;
    bool sql;
    bool autogenerate;
    bool fail_on_hazard;
    nx_schema_rename_t renames[MAX_RENAMES];
    size_t nrenames;
};

/* TABLE.OLD=NEW, split in place. */
static int parse_rename(struct args *a, char *s)
{
    char *dot = strchr(s, '.'), *eq = dot ? strchr(dot, '=') : NULL;
    if (!dot || !eq || dot == s || eq == dot + 1 || !eq[1] || strchr(eq + 1, '=') ||
        strchr(eq + 1, '.'))
        return nx_cli_usage(usage, "--rename needs TABLE.OLD=NEW, not \"%s\"", s);
    if (a->nrenames == MAX_RENAMES)
        return nx_cli_usage(usage, "at most %d --rename options", MAX_RENAMES);
    *dot = *eq = '\0';
    a->renames[a->nrenames++] = (nx_schema_rename_t){s, dot + 1, eq + 1};
    return NX_EXIT_OK;
}

/* Parses argv[*i] when it is an option of autogenerate or the drift check
 * (*taken true, *i moved past its value); returns the exit status. */
static int parse_schema_option(int argc, char **argv, int *i, struct args *a, bool *taken)
{
    char *s = argv[*i];
    *taken = true;
    if (strcmp(s, "--autogenerate") == 0) {
        a->autogenerate = true;
    } else if (strcmp(s, "--fail-on-hazard") == 0) {
        a->fail_on_hazard = true;
    } else if (strcmp(s, "--schema") == 0 || strcmp(s, "--rename") == 0) {
        if (*i + 1 >= argc)
            return nx_cli_usage(usage, "option \"%s\" needs a value", s);
        if (s[2] == 's')
            a->schema = argv[++*i];
        else
            return parse_rename(a, argv[++*i]);
    } else if (strncmp(s, "--schema=", 9) == 0) {
        a->schema = s + 9;
    } else if (strncmp(s, "--rename=", 9) == 0) {
        return parse_rename(a, s + 9);
    } else {
        *taken = false;
    }
    return NX_EXIT_OK;
}

static int check_schema_options(const struct args *a)
{
    bool rev = strcmp(a->verb, "revision") == 0;
    if (a->autogenerate && !rev)
        return nx_cli_usage(usage, "--autogenerate applies to revision only");
    if ((a->nrenames || a->fail_on_hazard) && !a->autogenerate)
        return nx_cli_usage(usage, "--rename and --fail-on-hazard apply to revision "
                            "--autogenerate only");
    if (a->schema && !a->autogenerate && strcmp(a->verb, "check") != 0)
        return nx_cli_usage(usage, "--schema applies to check and revision --autogenerate only");
    if (a->schema && !a->schema[0])
        return nx_cli_usage(usage, "--schema needs a path");
    return NX_EXIT_OK;
}

static int parse_args(int argc, char **argv, struct args *a)
{
    memset(a, 0, sizeof(*a));
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        bool taken;
        int rc = parse_schema_option(argc, argv, &i, a, &taken);
        if (rc != NX_EXIT_OK)
            return rc;
        if (taken)
            continue;
        if (strcmp(s, "--dir") == 0 || strcmp(s, "-m") == 0 || strcmp(s, "--message") == 0) {
            if (i + 1 >= argc)
                return nx_cli_usage(usage, "option \"%s\" needs a value", s);
            if (s[1] == 'm' || s[2] == 'm')
                a->message = argv[++i];
            else
                a->dir = argv[++i];
        } else if (strncmp(s, "--dir=", 6) == 0) {
            a->dir = s + 6;
        } else if (strncmp(s, "--message=", 10) == 0) {
            a->message = s + 10;
        } else if (strcmp(s, "--sql") == 0) {
            a->sql = true;
        } else if (s[0] == '-' && !isdigit((unsigned char)s[1])) {
            return nx_cli_usage(usage, "unknown option \"%s\"", s);
        } else if (!a->verb) {
            a->verb = s;
        } else if (!a->target) {
            a->target = s;
        } else {
            return nx_cli_usage(usage, "unexpected argument \"%s\"", s);
        }
    }
    if (!a->verb)
        return nx_cli_usage(usage, "migrate needs a verb");
    bool updown = strcmp(a->verb, "upgrade") == 0 || strcmp(a->verb, "downgrade") == 0;
    bool rev = strcmp(a->verb, "revision") == 0;
    if (!updown && !rev && strcmp(a->verb, "history") != 0 && strcmp(a->verb, "current") != 0 &&
        strcmp(a->verb, "check") != 0)
        return nx_cli_usage(usage, "unknown migrate verb \"%s\"", a->verb);
    if (a->sql && !updown)
        return nx_cli_usage(usage, "--sql applies to upgrade and downgrade only");
    if (a->message && !rev)
        return nx_cli_usage(usage, "-m applies to revision only");
    if (a->target && !updown)
        return nx_cli_usage(usage, "unexpected argument \"%s\"", a->target);
    if (strcmp(a->verb, "downgrade") == 0 && !a->target)
        return nx_cli_usage(usage, "downgrade needs a target: -1, -N, REV or base");
    if (rev && (!a->message || !a->message[0]))
        return nx_cli_usage(usage, "revision needs -m MESSAGE");
    if (a->dir && !a->dir[0])
        return nx_cli_usage(usage, "--dir needs a path");
    return check_schema_options(a);
}

/* ---- revision (no database unless --autogenerate) ------------------------- */

static int revision(const struct args *a, nx_settings_t *s)
{
    char slug[64];
    size_t n = 0;
    for (const char *p = a->message; *p && n < sizeof(slug) - 1; p++) {
        if (isalnum((unsigned char)*p))
            slug[n++] = (char)tolower((unsigned char)*p);
        else if (n > 0 && slug[n - 1] != '_')
            slug[n++] = '_';
    }
    while (n > 0 && slug[n - 1] == '_')
        n--;
    slug[n] = '\0';
    if (n == 0)
        return nx_cli_usage(usage, "the message must contain letters or digits");

    const char *dir = a->dir ? a->dir : "migrations";
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return nx_cli_fail("cannot write a revision: \"%s\" is not a directory (use --dir)",
                           dir);
    if (a->autogenerate) {
        nx_cli_autogen_t o = {.message = a->message, .slug = slug, .dir = dir,
                              .schema = a->schema ? a->schema : "schema",
                              .renames = a->renames, .nrenames = a->nrenames,
                              .fail_on_hazard = a->fail_on_hazard};
        return nx_cli_migrate_autogen(&o, s);
    }
    nx_err_t err = {0};
    nx_migrate_t m;
    if (nx_migrate_load(&m, dir, &err) != NX_OK)
        return nx_cli_fail("%s", err.detail);
    long long next = m.nfiles ? m.files[m.nfiles - 1].vnum + 1 : 1;
    nx_migrate_release(&m);

    char path[4096];
    snprintf(path, sizeof(path), "%s/%04lld_%s.sql", dir, next, slug);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return nx_cli_fail("cannot create \"%s\": %s", path, strerror(errno));
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        return nx_cli_fail("cannot write \"%s\"", path);
    }
    fprintf(f, "-- %s\n-- nexus:up\n\n-- nexus:down\n\n", a->message);
    if (fclose(f) != 0)
        return nx_cli_fail("cannot write \"%s\"", path);
    fprintf(stdout, "%s\n", path);
    return NX_EXIT_OK;
}

/* ---- reports ------------------------------------------------------------- */

static const nx_mig_t *head(const nx_migrate_t *m)
{
    return m->nfiles ? &m->files[m->nfiles - 1] : NULL;
}

static size_t pending(const nx_migrate_t *m)
{
    size_t n = 0;
    for (size_t i = 0; i < m->nfiles; i++)
        if (!nx_migrate_applied_find(m, m->files[i].version))
            n++;
    return n;
}

/* "0002 add_avatar_url_to_users (head)" for the newest applied version. */
static void describe_current(const nx_migrate_t *m, char *out, size_t size)
{
    if (m->napplied == 0) {
        snprintf(out, size, "base (no migrations applied)");
        return;
    }
    const nx_mig_applied_t *a = &m->applied[m->napplied - 1];
    const nx_mig_t *h = head(m);
    bool is_head = h && h->vnum == a->vnum;
    snprintf(out, size, "%s %s%s", a->version, a->name, is_head ? " (head)" : "");
}

/* "; pinned by a downgrade at T: ..." when a downgrade pinned the database,
 * else "". */
static void describe_pin(const nx_migrate_t *m, char *out, size_t size)
{
    if (!m->pinned)
        snprintf(out, size, "%s", "");
    else
        snprintf(out, size, "; pinned by a downgrade at %s: serve leaves it there until "
                 "\"nexusapi migrate upgrade head\"", m->pinned_at);
}

/* History's mark on the version a pinned database is at. */
static const char *pin_mark(const nx_migrate_t *m, const nx_mig_applied_t *a)
{
    return m->pinned && a && a == &m->applied[m->napplied - 1] ? "  PINNED by a downgrade" : "";
}

static int history(const nx_migrate_t *m)
{
    /* newest first, like alembic history: files and applied rows merged */
    size_t i = m->nfiles, j = m->napplied;
    const nx_mig_t *h = head(m);
    while (i > 0 || j > 0) {
        const nx_mig_t *f = i > 0 ? &m->files[i - 1] : NULL;
        const nx_mig_applied_t *a = j > 0 ? &m->applied[j - 1] : NULL;
        if (f && (!a || f->vnum >= a->vnum)) {
            const nx_mig_applied_t *ap = nx_migrate_applied_find(m, f->version);
            fprintf(stdout, "%s %s%s  %s%s%s%s%s\n", f->version, f->name,
                    f == h ? " (head)" : "", ap ? "applied " : "pending", ap ? ap->applied_at : "",
                    ap && strcmp(ap->checksum, f->checksum) != 0 ? "  CHANGED since applied"
                                                                  : "",
                    f->no_tx ? "  [no-transaction]" : "", pin_mark(m, ap));
            if (a && a->vnum == f->vnum)
                j--;
            i--;
        } else if (a) { /* always: f is NULL or older, so j > 0 */
            fprintf(stdout, "%s %s  applied %s  (no such file)%s\n", a->version, a->name,
                    a->applied_at, pin_mark(m, a));
            j--;
        }
    }
    if (m->pinned && m->napplied == 0)
        fprintf(stdout, "base  PINNED by a downgrade\n");
    return NX_EXIT_OK;
}

static int current(const nx_migrate_t *m)
{
    char cur[256], pin[256];
    describe_current(m, cur, sizeof(cur));
    describe_pin(m, pin, sizeof(pin));
    size_t p = pending(m);
    if (p)
        fprintf(stdout, "%s; %zu pending%s\n", cur, p, pin);
    else
        fprintf(stdout, "%s%s\n", cur, pin);
    return NX_EXIT_OK;
}

static int check(const nx_migrate_t *m)
{
    nx_err_t err = {0};
    if (nx_migrate_verify(m, &err) != NX_OK)
        return nx_cli_fail("check failed: %s", err.detail);
    for (size_t j = 0; j < m->napplied; j++)
        if (!nx_migrate_file_find(m, m->applied[j].version))
            return nx_cli_fail("check failed: the database has migration %s (%s), which these "
                               "files do not include", m->applied[j].version,
                               m->applied[j].name);
    char cur[256];
    describe_current(m, cur, sizeof(cur));
    size_t p = pending(m);
    if (p) {
        const nx_mig_t *h = head(m);
        return nx_cli_fail("check failed: the database is behind: at %s, %zu pending up to "
                           "%s %s; run `nexusapi migrate upgrade head`", cur, p, h->version,
                           h->name);
    }
    fprintf(stdout, "ok: the database is up to date at %s\n", cur);
    return NX_EXIT_OK;
}

/* ---- upgrade / downgrade ------------------------------------------------- */

static void note(void *ctx, const nx_mig_t *mig, int dir)
{
    NX_UNUSED(ctx);
    fprintf(stdout, "%s %s %s\n", dir == NX_MIGRATE_UP ? "applied" : "reverted", mig->version,
            mig->name);
    fflush(stdout);
}

static int updown(nx_migrate_t *m, const struct args *a)
{
    nx_err_t err = {0};
    nx_buf_t sql;
    nx_buf_init(&sql, NULL, 64u << 20);
    nx_migrate_opts_t o = {
        .dir = strcmp(a->verb, "upgrade") == 0 ? NX_MIGRATE_UP : NX_MIGRATE_DOWN,
        .target = a->target ? a->target : "head",
        .sql = a->sql ? &sql : NULL,
        .note = a->sql ? NULL : note,
    };
    size_t n = 0;
    int rc = nx_migrate_run(m, &o, &n, &err);
    if (rc == NX_OK && a->sql && sql.data)
        fputs(sql.data, stdout);
    nx_buf_release(&sql);
    if (rc != NX_OK)
        return err.code == NX_EINVAL ? nx_cli_usage(usage, "%s", err.detail)
                                     : nx_cli_fail_err(&err);
    if (!a->sql) {
        char cur[256], pin[256];
        describe_current(m, cur, sizeof(cur));
        describe_pin(m, pin, sizeof(pin));
        fprintf(stdout, "%sthe database is at %s%s\n", n ? "" : "nothing to do: ", cur, pin);
    }
    return NX_EXIT_OK;
}

int cmd_migrate(int argc, char **argv, nx_settings_t *s)
{
    struct args a;
    int rc = parse_args(argc, argv, &a);
    if (rc != NX_EXIT_OK)
        return rc;
    if (strcmp(a.verb, "revision") == 0)
        return revision(&a, s);
    bool drift = strcmp(a.verb, "check") == 0;
    sigset_t stop;
    if (drift) /* the drift check's scratch databases are dropped on SIGINT too */
        nx_cli_block_stop_signals(&stop);

    nx_err_t err = {0};
    nx_migrate_t m;
    if (nx_migrate_load(&m, a.dir, &err) != NX_OK)
        return nx_cli_fail("%s", err.detail); /* a bad file: a failure, not bad usage */
    nx_db_target_t t;
    if (nx_db_target_open(&t, s, &err) != NX_OK) {
        nx_migrate_release(&m);
        return nx_cli_fail_err(&err);
    }
    if (nx_migrate_connect(&m, t.owner_conninfo, &err) != NX_OK) {
        rc = nx_cli_fail_err(&err);
    } else if (strcmp(a.verb, "history") == 0) {
        rc = history(&m);
    } else if (strcmp(a.verb, "current") == 0) {
        rc = current(&m);
    } else if (drift) {
        rc = check(&m);
        int drc = nx_cli_migrate_drift(t.owner_conninfo, a.schema, a.dir, &stop);
        rc = drc > rc ? drc : rc;
    } else {
        rc = updown(&m, &a);
    }
    nx_migrate_release(&m);
    nx_db_target_close(&t);
    return rc;
}
