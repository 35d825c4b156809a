/*
 * cmd_db.c - `nexusapi db psql [--as-app] [PSQL-ARGS...]`: psql on the
 * configured database (embedded or DATABASE_URL).
 *
 * As the owner by default (the operator_access policy shows every row); with
 * --as-app as nexus_app, so row-level security can be watched at work:
 * `SELECT * FROM users;` shows nothing until
 * `SELECT set_config('nexus.org_id', '<org id>', false);`.
 * The connection travels in PG* environment variables, never on psql's
 * command line. psql runs as a child so an embedded cluster started for it is
 * stopped when it exits; Ctrl-C belongs to psql meanwhile.
 */
#include "core/nx.h"
#include "cli/cli.h"
#include "config/settings.h"
#include "core/err.h"
#include "core/mem.h"
#include "db/db.h"
#include "db/target.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define USAGE "nexusapi db psql [--as-app] [PSQL-ARGS...]"

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

static int spawn_psql(const char *bindir, char **args, int nargs)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/psql", bindir);
    const char *prog = access(path, X_OK) == 0 ? path : "psql";
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
        rc = nx_cli_fail("could not start psql: %s", strerror(errno));
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

int cmd_db(int argc, char **argv, nx_settings_t *s)
{
    if (argc < 2)
        return nx_cli_usage(USAGE, "missing subcommand");
    if (strcmp(argv[1], "psql") != 0)
        return nx_cli_usage(USAGE, "unknown subcommand \"%s\"", argv[1]);
    int first = 2;
    bool as_app = false;
    if (argc > 2 && strcmp(argv[2], "--as-app") == 0) {
        as_app = true;
        first = 3;
    }
    if (argc > first && strcmp(argv[first], "--") == 0)
        first++;
    nx_err_t err = {0};
    nx_db_target_t t;
    if (nx_db_target_open(&t, s, &err) != NX_OK)
        return nx_cli_fail_err(&err);
    const char *ci = as_app ? t.app_conninfo : t.owner_conninfo;
    int rc = NX_EXIT_OK;
    if (nx_db_conninfo_export(ci, &err) != NX_OK)
        rc = nx_cli_fail_err(&err);
    else if (as_app && t.app_role[0] && add_role_option(t.app_role) != 0)
        rc = nx_cli_fail("cannot set PGOPTIONS");
    if (rc == NX_EXIT_OK) {
        setenv("PGAPPNAME", as_app ? "nexusapi db psql --as-app" : "nexusapi db psql", 1);
        rc = spawn_psql(s->pg_bindir, argv + first, argc - first);
    }
    nx_db_target_close(&t);
    return rc;
}
