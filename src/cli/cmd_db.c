/*
 * cmd_db.c - `nexusapi db psql|dump|restore`: PostgreSQL's own tools on the
 * configured database (embedded or DATABASE_URL).
 *
 *   db psql [--as-app] [PSQL-ARGS...]  psql, as the owner (the operator_access
 *                                      policy shows every row) or, with
 *                                      --as-app, as nexus_app, so row-level
 *                                      security can be watched at work
 *   db dump FILE                       pg_dump --format=custom of the database
 *   db restore FILE                    pg_restore of such a dump into an
 *                                      empty database, in one transaction
 *
 * A dump goes to FILE.partial and is renamed to FILE only once pg_dump
 * succeeded, and an existing FILE is never overwritten: an interrupted or
 * failed dump leaves no file that looks like a backup. A restore refuses a
 * database that already holds tables and runs in a single transaction
 * (--exit-on-error): it leaves either all of the dump or nothing. Objects
 * are owned by the restoring role (--no-owner), grants to nexus_app and
 * nexus_worker are kept; the embedded cluster creates those roles when it
 * starts, so a fresh NEXUS_DATA_DIR restores as is.
 * The connection travels in PG* environment variables, never on a command
 * line. The tool runs as a child so an embedded cluster started for it is
 * stopped when it exits; Ctrl-C belongs to the child meanwhile.
 */
#include "core/nx.h"
#include "cli/cli.h"
#include "config/settings.h"
#include "core/arena.h"
#include "core/err.h"
#include "core/mem.h"
#include "db/db.h"
#include "db/target.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define USAGE                                                                                 \
    "nexusapi db psql [--as-app] [PSQL-ARGS...] | db dump FILE | db restore FILE"

/* PGOPTIONS += "-c role=ROLE" (external database without an app login). */
static int add_role_option(const char *role)
{
    const char *old = getenv("PGOPTIONS");
    char opt[512];
    int n = snprintf(opt, sizeof(opt), "%s%s-c role=%s", old ? old : "", old && old[0] ? " " : "",
                     role);
    if (n < 0 || (size_t)n >= sizeof(opt))
        return -1;
    return setenv("PGOPTIONS", opt, 1);
}

/* Runs PG_BINDIR/name (else name on PATH) with args; its exit status. */
static int spawn(const char *bindir, const char *name, char **args, int nargs)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", bindir, name);
    const char *prog = access(path, X_OK) == 0 ? path : name;
    char **argv = nx_calloc((size_t)nargs + 2, sizeof(*argv));
    if (!argv)
        return nx_cli_fail("out of memory");
    argv[0] = (char *)prog;
    for (int i = 0; i < nargs; i++)
        argv[i + 1] = args[i];
    struct sigaction ign = {.sa_handler = SIG_IGN}, old_int, old_quit;
    sigaction(SIGINT, &ign, &old_int);
    sigaction(SIGQUIT, &ign, &old_quit);
    pid_t pid = fork();
    if (pid == 0) {
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGQUIT, &old_quit, NULL);
        execvp(prog, argv);
        fprintf(stderr, "nexusapi: cannot run \"%s\": %s\n", prog, strerror(errno));
        _Exit(127);
    }
    int status = 0, rc;
    if (pid < 0) {
        rc = nx_cli_fail("could not start %s: %s", name, strerror(errno));
    } else {
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        rc = WIFEXITED(status) ? WEXITSTATUS(status) : NX_EXIT_FAIL;
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGQUIT, &old_quit, NULL);
    nx_free(argv);
    return rc;
}

/* pg_dump to FILE.partial, renamed to FILE once complete. */
static int dump(const nx_settings_t *s, const char *file)
{
    struct stat st;
    if (lstat(file, &st) == 0)
        return nx_cli_fail("\"%s\" already exists; dump to a new file", file);
    char partial[4096];
    if (snprintf(partial, sizeof(partial), "%s.partial", file) >= (int)sizeof(partial))
        return nx_cli_fail("the file name is too long");
    /* the tables force row-level security on their owner too: the dump
     * reads them under it (the owner's operator_access policy sees every
     * row); the restore loads the rows before the policies are created */
    char *args[] = {"--format=custom", "--enable-row-security", "--no-password", "--file",
                    partial};
    int rc = spawn(s->pg_bindir, "pg_dump", args, (int)NX_ARRAY_LEN(args));
    if (rc == NX_EXIT_OK && rename(partial, file) != 0)
        rc = nx_cli_fail("cannot rename \"%s\": %s", partial, strerror(errno));
    if (rc != NX_EXIT_OK) {
        unlink(partial);
        return NX_EXIT_FAIL;
    }
    fprintf(stderr, "nexusapi: dumped the database to \"%s\"\n", file);
    return NX_EXIT_OK;
}

/* NX_OK when the database has no table of its own yet. */
static int check_empty(const char *conninfo, nx_err_t *err)
{
    nx_arena_t *a = nx_arena_new(4096);
    nx_db_t *db = NULL;
    nx_res_t *r = NULL;
    int rc = a ? nx_db_connect(&db, conninfo, NULL, err) : nx_err_set(err, NX_ENOMEM, NULL);
    if (rc == NX_OK)
        rc = nx_db_exec_sql(db, a,
                            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON "
                            "n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') AND "
                            "n.nspname NOT IN ('pg_catalog', 'information_schema') AND "
                            "n.nspname NOT LIKE 'pg_toast%'", &r, err);
    if (rc == NX_OK && strcmp(nx_res_get(r, 0, 0), "0") != 0)
        rc = nx_err_set(err, NX_ECONFLICT, "the database already holds tables: restore into a "
                                           "new, empty one (for the embedded database, a new "
                                           "NEXUS_DATA_DIR)");
    nx_db_free(db);
    if (a)
        nx_arena_free(a);
    return rc;
}

/* pg_restore of a custom-format dump, all of it in one transaction. */
static int restore(const nx_settings_t *s, const nx_db_target_t *t, const char *file)
{
    nx_err_t err = {0};
    if (access(file, R_OK) != 0)
        return nx_cli_fail("cannot read \"%s\": %s", file, strerror(errno));
    if (check_empty(t->owner_conninfo, &err) != NX_OK)
        return nx_cli_fail_err(&err);
    char *args[] = {"--single-transaction", "--exit-on-error", "--no-owner", "--no-password",
                    "--dbname", getenv("PGDATABASE"), (char *)file};
    if (!args[5])
        return nx_cli_fail("the database name is unknown");
    int rc = spawn(s->pg_bindir, "pg_restore", args, (int)NX_ARRAY_LEN(args));
    if (rc != NX_EXIT_OK)
        return nx_cli_fail("the restore failed and was rolled back: the database is empty");
    fprintf(stderr, "nexusapi: restored \"%s\"\n", file);
    return NX_EXIT_OK;
}

/* Which subcommand, and where its own arguments start. */
static int parse_args(int argc, char **argv, const char **verb, bool *as_app, int *first)
{
    if (argc < 2)
        return nx_cli_usage(USAGE, "missing subcommand");
    *verb = argv[1];
    *as_app = false;
    *first = 2;
    if (strcmp(*verb, "dump") == 0 || strcmp(*verb, "restore") == 0)
        return argc == 3 ? NX_EXIT_OK : nx_cli_usage(USAGE, "%s takes one FILE", *verb);
    if (strcmp(*verb, "psql") != 0)
        return nx_cli_usage(USAGE, "unknown subcommand \"%s\"", *verb);
    if (argc > 2 && strcmp(argv[2], "--as-app") == 0) {
        *as_app = true;
        *first = 3;
    }
    if (argc > *first && strcmp(argv[*first], "--") == 0)
        (*first)++;
    return NX_EXIT_OK;
}

int cmd_db(int argc, char **argv, nx_settings_t *s)
{
    const char *verb = NULL;
    bool as_app = false;
    int first = 2;
    int rc = parse_args(argc, argv, &verb, &as_app, &first);
    if (rc != NX_EXIT_OK)
        return rc;
    nx_err_t err = {0};
    nx_db_target_t t;
    if (nx_db_target_open(&t, s, &err) != NX_OK)
        return nx_cli_fail_err(&err);
    const char *ci = as_app ? t.app_conninfo : t.owner_conninfo;
    if (nx_db_conninfo_export(ci, &err) != NX_OK)
        rc = nx_cli_fail_err(&err);
    else if (as_app && t.app_role[0] && add_role_option(t.app_role) != 0)
        rc = nx_cli_fail("cannot set PGOPTIONS");
    if (rc == NX_EXIT_OK) {
        setenv("PGAPPNAME", as_app ? "nexusapi db psql --as-app" : "nexusapi db", 1);
        if (strcmp(verb, "dump") == 0)
            rc = dump(s, argv[2]);
        else if (strcmp(verb, "restore") == 0)
            rc = restore(s, &t, argv[2]);
        else
            rc = spawn(s->pg_bindir, "psql", argv + first, argc - first);
    }
    nx_db_target_close(&t);
    return rc;
}
