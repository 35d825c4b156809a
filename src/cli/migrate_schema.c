/*
 * migrate_schema.c - `migrate revision --autogenerate` and the drift check
 * of `migrate check`: the declared schema (schema/) against the migrations.
 *
 * Both compare through db/schema.h, which builds two scratch databases on
 * the configured server and always drops them. The stop signals (SIGINT,
 * SIGTERM) are blocked by the caller and polled, so an interrupted run still
 * drops them, writes nothing and exits 128+N.
 *
 * Autogenerate holds an exclusive lock on the migrations directory from
 * before it reads the migrations until the new file is written, so two runs
 * on one directory take turns: the second sees the first one's file (and
 * usually finds nothing left to write). The file itself is created with
 * O_EXCL, so nothing is ever overwritten.
 */
#include "core/nx.h"
#include "cli/cli_int.h"
#include "cli/cli.h"
#include "core/arena.h"
#include "core/err.h"
#include "db/cluster.h"
#include "db/migrate.h"
#include "db/schema.h"
#include "db/target.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static bool stop_pending(void *ctx)
{
    sigset_t pending;
    NX_UNUSED(ctx);
    if (sigpending(&pending) != 0)
        return false;
    return sigismember(&pending, SIGINT) == 1 || sigismember(&pending, SIGTERM) == 1;
}

int nx_cli_take_stop_signal(sigset_t *stop_signals)
{
    if (!stop_pending(stop_signals))
        return 0;
    struct timespec zero = {0, 0};
    int sig = sigtimedwait(stop_signals, NULL, &zero);
    return sig > 0 ? 128 + sig : 0;
}

/* Prints the readable difference, each line indented. */
static void print_changes(FILE *f, const nx_schema_plan_t *p, const char *indent)
{
    for (size_t i = 0; i < p->nchanges; i++) {
        for (const char *s = p->changes[i]; *s;) {
            size_t n = strcspn(s, "\n");
            fprintf(f, "%s%.*s\n", indent, (int)n, s);
            s += n + (s[n] == '\n');
        }
    }
}

/* A failed plan: the message, or the exit status of the signal that
 * stopped it. */
static int plan_failed(const nx_err_t *err, sigset_t *stop_signals)
{
    int sig = nx_cli_take_stop_signal(stop_signals);
    if (sig) {
        fprintf(stderr, "nexusapi: interrupted: the scratch databases were dropped and nothing "
                        "was written\n");
        return sig;
    }
    return nx_cli_fail("%s", err->detail[0] ? err->detail : nx_err_title(err->code));
}

/* ---- drift --------------------------------------------------------------- */

int nx_cli_migrate_drift(const char *conninfo, const char *schema, const char *mig_dir,
                         sigset_t *stop_signals)
{
    const char *dir = schema ? schema : "schema";
    struct stat st;
    if (!schema && stat(dir, &st) != 0) {
        fprintf(stdout, "drift not checked: no ./schema directory here (--schema DIR names "
                        "one)\n");
        return NX_EXIT_OK;
    }
    nx_arena_t *a = nx_arena_new(64u << 10);
    if (!a)
        return nx_cli_fail("out of memory");
    nx_err_t err = {0};
    nx_schema_plan_t p;
    nx_schema_opts_t o = {.conninfo = conninfo, .schema_dir = dir, .mig_dir = mig_dir,
                          .stop = stop_pending, .stop_ctx = stop_signals};
    int rc = NX_EXIT_OK;
    if (nx_schema_plan(a, &o, &p, &err) != NX_OK) {
        rc = plan_failed(&err, stop_signals);
    } else if (nx_schema_plan_empty(&p)) {
        fprintf(stdout, "ok: %s/ and the migrations agree (at %s)\n", dir, p.head);
    } else {
        fprintf(stderr, "nexusapi: check failed: %s/ and the migrations (at %s) disagree; + is "
                        "only in %s/, - only in the migrations, ~ differs:\n", dir, p.head, dir);
        print_changes(stderr, &p, "  ");
        fprintf(stderr, "nexusapi: write the missing migration with `nexusapi migrate revision "
                        "--autogenerate -m MESSAGE`, or bring %s/ in line\n", dir);
        rc = NX_EXIT_FAIL;
    }
    nx_arena_free(a);
    return rc;
}

/* ---- autogenerate -------------------------------------------------------- */

/* Takes the migrations directory's lock, polling so that a stop signal
 * still ends the wait. -1 when stopped or the directory cannot be opened. */
static int lock_dir(const char *dir, sigset_t *stop_signals)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        nx_cli_fail("cannot open \"%s\": %s", dir, strerror(errno));
        return -1;
    }
    bool said = false;
    while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK && errno != EINTR) {
            nx_cli_fail("cannot lock \"%s\": %s", dir, strerror(errno));
            close(fd);
            return -1;
        }
        if (stop_pending(stop_signals)) {
            close(fd);
            return -1;
        }
        if (!said)
            fprintf(stderr, "waiting for another autogenerate in \"%s\"\n", dir);
        said = true;
        usleep(50000);
    }
    return fd;
}

/* Creates path (never overwriting) with text; on failure removes it. */
static int write_new(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0)
        return nx_cli_fail("cannot create \"%s\": %s", path, strerror(errno));
    size_t len = strlen(text), done = 0;
    while (done < len) {
        ssize_t n = write(fd, text + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        done += (size_t)n;
    }
    if (close(fd) != 0 || done < len) {
        unlink(path);
        return nx_cli_fail("cannot write \"%s\"", path);
    }
    return NX_EXIT_OK;
}

static void report(const nx_schema_plan_t *p, const char *schema)
{
    fprintf(stderr, "detected (+ only in %s/, - only in the migrations, ~ differs):\n", schema);
    print_changes(stderr, p, "  ");
    for (size_t i = 0; i < p->nhazards; i++)
        fprintf(stderr, "hazard: %s\n", p->hazards[i]);
    for (size_t i = 0; i < p->nnotes; i++)
        fprintf(stderr, "note: %s\n", p->notes[i]);
}

/* Writes the plan as the next migration: the transactional part, then the
 * no-transaction part numbered after it. Paths go to stdout. */
static int write_plan(nx_arena_t *a, const nx_cli_autogen_t *o, const nx_schema_plan_t *p)
{
    nx_err_t err = {0};
    nx_migrate_t m;
    if (nx_migrate_load(&m, o->dir, &err) != NX_OK)
        return nx_cli_fail("%s", err.detail);
    long long next = m.nfiles ? m.files[m.nfiles - 1].vnum + 1 : 1;
    nx_migrate_release(&m);
    bool tx = p->up[0] || p->down[0], notx = p->cup[0] || p->cdown[0];
    char *first = NULL;
    for (int part = 0; part < 2; part++) {
        if (!(part == 0 ? tx : notx))
            continue;
        char *text = nx_schema_render_file(a, p, o->message, part == 1);
        char *path = nx_arena_sprintf(a, "%s/%04lld_%s%s.sql", o->dir, next++, o->slug,
                                      part == 1 && tx ? "_concurrently" : "");
        if (!text || !path || write_new(path, text) != NX_EXIT_OK) {
            if (first)
                unlink(first);
            return text && path ? NX_EXIT_FAIL : nx_cli_fail("out of memory");
        }
        first = path;
        fprintf(stdout, "%s\n", path);
    }
    return NX_EXIT_OK;
}

static int autogen_locked(const nx_cli_autogen_t *o, const char *conninfo, sigset_t *stop)
{
    nx_arena_t *a = nx_arena_new(64u << 10);
    if (!a)
        return nx_cli_fail("out of memory");
    nx_err_t err = {0};
    nx_schema_plan_t p;
    nx_schema_opts_t so = {.conninfo = conninfo, .schema_dir = o->schema, .mig_dir = o->dir,
                           .renames = o->renames, .nrenames = o->nrenames,
                           .stop = stop_pending, .stop_ctx = stop};
    int rc = NX_EXIT_OK;
    if (nx_schema_plan(a, &so, &p, &err) != NX_OK) {
        rc = plan_failed(&err, stop);
    } else if (nx_schema_plan_empty(&p)) {
        fprintf(stderr, "nothing to do: %s/ and the migrations agree (at %s); no file written\n",
                o->schema, p.head);
    } else {
        report(&p, o->schema);
        if (o->fail_on_hazard && p.nhazards)
            rc = nx_cli_fail("%zu hazard(s) and --fail-on-hazard: no file written", p.nhazards);
        else
            rc = write_plan(a, o, &p);
    }
    nx_arena_free(a);
    return rc;
}

int nx_cli_migrate_autogen(const nx_cli_autogen_t *o, nx_settings_t *s)
{
    sigset_t stop;
    nx_cli_block_stop_signals(&stop);
    struct stat st;
    if (stat(o->schema, &st) != 0 || !S_ISDIR(st.st_mode))
        return nx_cli_fail("cannot autogenerate: \"%s\" is not a directory (use --schema)",
                           o->schema);
    int fd = lock_dir(o->dir, &stop);
    if (fd < 0) {
        int sig = nx_cli_take_stop_signal(&stop);
        return sig ? sig : NX_EXIT_FAIL;
    }
    nx_err_t err = {0};
    nx_db_target_t t;
    int rc;
    if (nx_db_target_open(&t, s, &err) != NX_OK) {
        rc = nx_cli_fail_err(&err);
    } else {
        rc = autogen_locked(o, t.owner_conninfo, &stop);
        nx_db_target_close(&t);
    }
    close(fd); /* releases the lock */
    return rc;
}
