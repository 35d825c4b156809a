/*
 * cluster.c - a private PostgreSQL cluster for development and tests.
 *
 * With no DATABASE_URL, every nexusapi process that needs the database
 * calls nx_cluster_open: under an exclusive flock on DATA_DIR/lock it
 * initialises the cluster on first use (initdb into pg.init, renamed to pg
 * when complete, so a crash mid-way leaves nothing half-made), starts it
 * with pg_ctl unless a live postmaster answers on its socket, makes sure the
 * roles and the database exist, then holds DATA_DIR/inuse shared for as long
 * as it uses the cluster. On close, under the same exclusive lock, a process
 * that can turn its shared hold into an exclusive one is the last user and
 * stops the cluster if nexusapi started it (pg.started names the postmaster).
 * So `serve` and `migrate` run side by side, a crashed process's cluster is
 * stopped by the next one out, and two starts never race initdb or pg_ctl.
 *
 * Postgres refuses to run as root: as root, every PostgreSQL program runs as
 * NEXUS_PG_USER (posix_spawn of setpriv), the cluster directory is owned by
 * it and DATA_DIR itself stays ours (it also holds jwt_secret).
 */
#include "core/nx.h"
#include "db/cluster.h"
#include "config/settings.h"
#include "core/err.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/util.h"
#include "db/migrate.h"
#include "db/target.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libpq-fe.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PG_PORT 5432
#define PG_SUPERUSER "postgres"
#define WAIT_SECONDS 60
#define SETPRIV "/usr/bin/setpriv" /* util-linux, essential on Debian */

extern char **environ;

struct nx_cluster {
    char base[PATH_MAX];    /* absolute NEXUS_DATA_DIR: locks, secret */
    char home[PATH_MAX];    /* the cluster's files: base, or a directory under
                               /var/lib/nexusapi when root's base is private */
    char pgdata[PATH_MAX + 8];
    char log[PATH_MAX + 8];
    char sockdir[PATH_MAX + 8];
    char bindir[PATH_MAX];
    char user[64];
    int port;
    bool root;
    uid_t uid;
    gid_t gid;
    int lock_fd;
    int use_fd;
    bool started_here;
};

/* ---- running PostgreSQL programs ----------------------------------------- */

/*
 * Runs argv (argv[0] an absolute path) as the cluster account, with output
 * appended to the log (or discarded); returns the exit status, or -1 if it
 * could not run. posix_spawn, not fork: `serve` may have threads when it
 * closes, and as root the privilege drop is util-linux's setpriv, so no
 * code of ours runs between fork and exec.
 */
static int run_tool(const nx_cluster_t *c, char *const argv[], bool quiet)
{
    char *envp[256], *args[32], ruid[32], rgid[32];
    size_t n = 0, k = 0;
    for (char **e = environ; *e && n < NX_ARRAY_LEN(envp) - 1; e++)
        if (strncmp(*e, "PG", 2) != 0)
            envp[n++] = *e;
    envp[n] = NULL;
    if (c->root) {
        snprintf(ruid, sizeof(ruid), "--reuid=%lu", (unsigned long)c->uid);
        snprintf(rgid, sizeof(rgid), "--regid=%lu", (unsigned long)c->gid);
        args[k++] = SETPRIV;
        args[k++] = ruid;
        args[k++] = rgid;
        args[k++] = "--init-groups";
        args[k++] = "--";
    }
    for (size_t i = 0; argv[i] && k < NX_ARRAY_LEN(args) - 1; i++)
        args[k++] = argv[i];
    args[k] = NULL;

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none, dfl;
    sigemptyset(&none);
    sigemptyset(&dfl);
    int sigs[] = {SIGPIPE, SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGCHLD, SIGUSR1, SIGUSR2};
    for (size_t i = 0; i < NX_ARRAY_LEN(sigs); i++)
        sigaddset(&dfl, sigs[i]);
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &dfl);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (quiet)
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    else
        posix_spawn_file_actions_addopen(&fa, 1, c->log, O_WRONLY | O_APPEND | O_CREAT, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawn_file_actions_addchdir_np(&fa, c->home);
    pid_t pid;
    int rc = posix_spawn(&pid, args[0], &fa, &at, args, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (rc != 0)
        return -1;
    int st = 0;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* True when the cluster account passes test(1) flag ("-x", "-w") on path,
 * so ACLs and groups count. */
static bool account_can_use(const nx_cluster_t *c, const char *path, const char *flag)
{
    char *argv[] = {"/usr/bin/test", (char *)flag, (char *)path, NULL};
    return !c->root || run_tool(c, argv, true) == 0;
}

static void bin(const nx_cluster_t *c, const char *tool, char *out, size_t size)
{
    snprintf(out, size, "%s/%s", c->bindir, tool);
}

/* ---- files and directories ----------------------------------------------- */

static int mkdir_p(const char *path, mode_t mode)
{
    char tmp[PATH_MAX];
    snprintf(tmp, sizeof(tmp), "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(tmp, mode) != 0 && errno != EEXIST ? -1 : 0;
}

static int give(const nx_cluster_t *c, const char *path)
{
    return c->root ? chown(path, c->uid, c->gid) : 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    NX_UNUSED(st);
    NX_UNUSED(ftw);
    return (flag == FTW_DP ? rmdir(path) : unlink(path)) == 0 || errno == ENOENT ? 0 : -1;
}

static int rm_rf(const char *path)
{
    return nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS) == 0 || errno == ENOENT ? 0 : -1;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static int write_file(const nx_cluster_t *c, const char *path, const char *text, bool append)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (append ? O_APPEND : O_TRUNC), 0600);
    if (fd < 0)
        return -1;
    size_t n = strlen(text);
    ssize_t w = write(fd, text, n);
    int rc = (w == (ssize_t)n && fsync(fd) == 0) ? 0 : -1;
    if (rc == 0 && !append && c && c->root && fchown(fd, c->uid, c->gid) != 0)
        rc = -1;
    close(fd);
    return rc;
}

/* The socket directory: DATA_DIR/run, or /tmp/nexus-<hash> when the socket
 * path would pass the kernel's limit. Owned by the cluster account, 0700. */
static int prepare_sockdir(nx_cluster_t *c, nx_err_t *err)
{
    struct sockaddr_un sa;
    snprintf(c->sockdir, sizeof(c->sockdir), "%s/run", c->home);
    if (strlen(c->sockdir) + strlen("/.s.PGSQL.5432") >= sizeof(sa.sun_path))
        snprintf(c->sockdir, sizeof(c->sockdir), "/tmp/nexus-%016llx",
                 (unsigned long long)nx_hash_str(c->base));
    bool made = mkdir(c->sockdir, 0700) == 0;
    struct stat st;
    if (lstat(c->sockdir, &st) != 0 || !S_ISDIR(st.st_mode))
        return nx_err_set(err, NX_EUNAVAILABLE, "cannot use \"%s\" for the database socket",
                          c->sockdir);
    if (made && give(c, c->sockdir) != 0)
        return nx_err_set(err, NX_EUNAVAILABLE, "cannot hand \"%s\" to account \"%s\"",
                          c->sockdir, c->user);
    uid_t want = c->root ? c->uid : geteuid();
    if (!made && st.st_uid != want && !(c->root && st.st_uid == 0 && give(c, c->sockdir) == 0))
        return nx_err_set(err, NX_EUNAVAILABLE, "socket directory \"%s\" belongs to another "
                          "account; remove it", c->sockdir);
    chmod(c->sockdir, 0700);
    return NX_OK;
}

static int prepare_dirs(nx_cluster_t *c, const nx_settings_t *s, nx_err_t *err)
{
    if (mkdir_p(s->data_dir, 0700) != 0)
        return nx_err_set(err, NX_EUNAVAILABLE, "cannot create the data directory \"%s\": %s",
                          s->data_dir, strerror(errno));
    if (!realpath(s->data_dir, c->base))
        return nx_err_set(err, NX_EUNAVAILABLE, "cannot resolve the data directory \"%s\"",
                          s->data_dir);
    snprintf(c->home, sizeof(c->home), "%s", c->base);
    if (c->root) {
        struct stat st;
        /* the account must traverse DATA_DIR; it gets no rights to list it */
        if (stat(c->base, &st) == 0 && (st.st_mode & 0111) != 0111)
            chmod(c->base, (st.st_mode & 07777) | 0111);
        if (!account_can_use(c, c->base, "-x")) {
            /* A checkout under a private home (/root): keep the cluster's
             * files where the account can reach them, one directory per
             * data directory. Locks and the JWT secret stay in DATA_DIR. */
            snprintf(c->home, sizeof(c->home), "/var/lib/nexusapi/%016llx",
                     (unsigned long long)nx_hash_str(c->base));
            if (mkdir_p(c->home, 0700) != 0 || give(c, c->home) != 0)
                return nx_err_set(err, NX_EUNAVAILABLE, "cannot create \"%s\"", c->home);
            chmod("/var/lib/nexusapi", 0755);
            nx_log(NX_LOG_DEBUG, "cluster files kept outside the data directory",
                   NX_LS("dir", c->home));
        }
    }
    snprintf(c->pgdata, sizeof(c->pgdata), "%s/pg", c->home);
    snprintf(c->log, sizeof(c->log), "%s/pg.log", c->home);
    if (c->root) {
        int fd = open(c->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd < 0 || fchown(fd, c->uid, c->gid) != 0) {
            if (fd >= 0)
                close(fd);
            return nx_err_set(err, NX_EUNAVAILABLE, "cannot create \"%s\"", c->log);
        }
        close(fd);
        if (!account_can_use(c, c->home, "-x") || !account_can_use(c, c->log, "-w"))
            return nx_err_set(err, NX_EUNAVAILABLE,
                              "the data directory \"%s\" is not reachable by the account \"%s\" "
                              "that runs PostgreSQL as root; make every parent directory "
                              "searchable by it (chmod o+x) or set NEXUS_DATA_DIR elsewhere "
                              "(e.g. under /var/lib or /srv)", c->home, c->user);
    }
    return prepare_sockdir(c, err);
}

/* ---- state of the cluster ------------------------------------------------ */

/* Reads postmaster.pid: pid, port and socket directory. 0 when absent. */
static pid_t read_pidfile(const nx_cluster_t *c, int *port, char *sock, size_t size)
{
    char path[PATH_MAX + 32], buf[4096];
    snprintf(path, sizeof(path), "%s/postmaster.pid", c->pgdata);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    char *lines[6] = {0};
    char *save = NULL, *p = buf;
    for (int i = 0; i < 6; i++, p = NULL) {
        lines[i] = strtok_r(p, "\n", &save);
        if (!lines[i])
            break;
    }
    long pid = lines[0] ? strtol(lines[0], NULL, 10) : 0;
    *port = lines[3] ? (int)strtol(lines[3], NULL, 10) : PG_PORT;
    if (sock)
        snprintf(sock, size, "%s", lines[4] && lines[4][0] ? lines[4] : c->sockdir);
    return pid > 0 ? (pid_t)pid : 0;
}

static bool pid_alive(pid_t pid)
{
    return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

/* True when pid is a postgres process working in our cluster directory (pid
 * reuse after a crash is common in containers, where a stale postmaster.pid
 * often names a live stranger). Unknown counts as yes. */
static bool pid_is_ours(const nx_cluster_t *c, pid_t pid)
{
    char path[64], comm[64] = "", cwd[PATH_MAX];
    snprintf(path, sizeof(path), "/proc/%ld/comm", (long)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return true;
    ssize_t n = read(fd, comm, sizeof(comm) - 1);
    close(fd);
    comm[n > 0 ? n : 0] = '\0';
    if (strncmp(comm, "postgres", 8) != 0 && strncmp(comm, "postmaster", 10) != 0)
        return false;
    snprintf(path, sizeof(path), "/proc/%ld/cwd", (long)pid);
    n = readlink(path, cwd, sizeof(cwd) - 1);
    if (n <= 0)
        return true;
    cwd[n] = '\0';
    return strcmp(cwd, c->pgdata) == 0;
}

static void quote_conn(char *out, size_t size, const char *v)
{
    size_t o = 0;
    if (size < 3)
        return;
    out[o++] = '\'';
    for (; *v && o + 3 < size; v++) {
        if (*v == '\'' || *v == '\\')
            out[o++] = '\\';
        out[o++] = *v;
    }
    out[o++] = '\'';
    out[o] = '\0';
}

static void conninfo(const char *sock, int port, const char *db, const char *user, char *out,
                     size_t size)
{
    char host[PATH_MAX * 2 + 8];
    quote_conn(host, sizeof(host), sock);
    snprintf(out, size, "host=%s port=%d dbname=%s user=%s connect_timeout=10", host, port, db,
             user);
}

static PGPing ping(const nx_cluster_t *c)
{
    char ci[PATH_MAX * 2 + 128];
    conninfo(c->sockdir, c->port, "postgres", PG_SUPERUSER, ci, sizeof(ci));
    return PQping(ci);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/*
 * Decides whether a postmaster is already serving the cluster. Waits (bounded)
 * for one that is starting up or shutting down; removes a pid file that names
 * a process which is not postgres. True: running, c->sockdir/port set from
 * its pid file.
 */
static bool is_running(nx_cluster_t *c)
{
    time_t deadline = time(NULL) + WAIT_SECONDS;
    for (;;) {
        char sock[PATH_MAX + 8];
        int port = PG_PORT;
        pid_t pid = read_pidfile(c, &port, sock, sizeof(sock));
        if (!pid || !pid_alive(pid))
            return false; /* none, or stale: postgres removes it at start */
        if (!pid_is_ours(c, pid)) {
            char path[PATH_MAX + 32];
            snprintf(path, sizeof(path), "%s/postmaster.pid", c->pgdata);
            unlink(path);
            return false;
        }
        char saved[PATH_MAX + 8];
        int saved_port = c->port;
        snprintf(saved, sizeof(saved), "%s", c->sockdir);
        snprintf(c->sockdir, sizeof(c->sockdir), "%s", sock);
        c->port = port;
        if (ping(c) == PQPING_OK)
            return true;
        snprintf(c->sockdir, sizeof(c->sockdir), "%s", saved);
        c->port = saved_port;
        if (time(NULL) > deadline)
            return false;
        sleep_ms(100);
    }
}

/* ---- first use ----------------------------------------------------------- */

static int init_cluster(nx_cluster_t *c, nx_err_t *err)
{
    char tmp[PATH_MAX + 16], path[PATH_MAX + 32], initdb[PATH_MAX + 16];
    snprintf(tmp, sizeof(tmp), "%s/pg.init", c->home);
    if (rm_rf(tmp) != 0)
        return nx_err_set(err, NX_EUNAVAILABLE, "cannot remove a partial \"%s\"", tmp);
    if (exists(c->pgdata) && rmdir(c->pgdata) != 0)
        return nx_err_set(err, NX_EUNAVAILABLE, "\"%s\" exists but is not a PostgreSQL data "
                          "directory; move it away", c->pgdata);
    if (mkdir(tmp, 0700) != 0 || give(c, tmp) != 0)
        return nx_err_set(err, NX_EUNAVAILABLE, "cannot create \"%s\"", tmp);
    nx_log(NX_LOG_INFO, "initialising the embedded database", NX_LS("dir", c->pgdata));
    bin(c, "initdb", initdb, sizeof(initdb));
    char *argv[] = {initdb, "-D", tmp, "-U", PG_SUPERUSER, "--auth-local=trust",
                    "--auth-host=reject", "-E", "UTF8", "--locale=C.UTF-8",
                    "--no-instructions", NULL};
    if (run_tool(c, argv, false) != 0)
        return nx_err_set(err, NX_EUNAVAILABLE, "could not initialise the embedded database; "
                          "see %s", c->log);
    snprintf(path, sizeof(path), "%s/postgresql.conf", tmp);
    if (write_file(NULL, path, "\n# nexusapi: socket and listen settings\n"
                               "include_if_exists = 'nexus.conf'\n", true) != 0 ||
        rename(tmp, c->pgdata) != 0)
        return nx_err_set(err, NX_EUNAVAILABLE, "could not finish initialising \"%s\"",
                          c->pgdata);
    return NX_OK;
}

/* A socket lock file left by a crash whose pid now names another process
 * makes postgres refuse to start: remove it (the directory is private and
 * we hold the start lock, so nothing else of ours can be using it). */
static void clear_stale_socket_lock(const nx_cluster_t *c)
{
    char path[PATH_MAX + 32], buf[64];
    snprintf(path, sizeof(path), "%s/.s.PGSQL.%d.lock", c->sockdir, PG_PORT);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    pid_t pid = (pid_t)strtol(buf, NULL, 10);
    if (pid_alive(pid) && pid_is_ours(c, pid))
        return;
    unlink(path);
    snprintf(path, sizeof(path), "%s/.s.PGSQL.%d", c->sockdir, PG_PORT);
    unlink(path);
}

static int start_cluster(nx_cluster_t *c, nx_err_t *err)
{
    char conf[PATH_MAX * 2 + 512], path[PATH_MAX + 32], sock[PATH_MAX * 2 + 8];
    char pgctl[PATH_MAX + 16];
    size_t o = 0;
    for (const char *p = c->sockdir; *p && o + 2 < sizeof(sock); p++) {
        if (*p == '\'')
            sock[o++] = '\'';
        sock[o++] = *p;
    }
    sock[o] = '\0';
    c->port = PG_PORT;
    clear_stale_socket_lock(c);
    snprintf(conf, sizeof(conf),
             "# written by nexusapi at every start; edit postgresql.conf instead\n"
             "listen_addresses = ''\nport = %d\nunix_socket_directories = '%s'\n"
             "unix_socket_permissions = 0700\n", c->port, sock);
    snprintf(path, sizeof(path), "%s/nexus.conf", c->pgdata);
    if (write_file(c, path, conf, false) != 0)
        return nx_err_set(err, NX_EUNAVAILABLE, "cannot write \"%s\"", path);
    bin(c, "pg_ctl", pgctl, sizeof(pgctl));
    char timeout[16];
    snprintf(timeout, sizeof(timeout), "%d", WAIT_SECONDS);
    char *argv[] = {pgctl, "-D", c->pgdata, "-l", c->log, "-w", "-t", timeout, "-s", "start",
                    NULL};
    nx_log(NX_LOG_INFO, "starting the embedded database", NX_LS("dir", c->pgdata));
    if (run_tool(c, argv, false) != 0 || ping(c) != PQPING_OK)
        return nx_err_set(err, NX_EUNAVAILABLE, "could not start the embedded database; see %s",
                          c->log);
    c->started_here = true;
    int port;
    char pid[32];
    snprintf(pid, sizeof(pid), "%ld\n", (long)read_pidfile(c, &port, NULL, 0));
    snprintf(path, sizeof(path), "%s/pg.started", c->base);
    write_file(NULL, path, pid, false);
    return NX_OK;
}

/* Roles and database; idempotent, run under the lock on every open. */
static int bootstrap(nx_cluster_t *c, nx_err_t *err)
{
    static const char roles[] =
        "DO $$ BEGIN\n"
        "  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'nexus') THEN\n"
        "    CREATE ROLE nexus LOGIN CREATEROLE CREATEDB;\n" /* CREATEDB: autogenerate's */
        "  ELSE ALTER ROLE nexus CREATEDB; END IF;\n"       /* scratch databases */
        "  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'nexus_app') THEN\n"
        "    CREATE ROLE nexus_app LOGIN;\n"
        "  ELSE ALTER ROLE nexus_app LOGIN; END IF;\n"
        "  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'nexus_worker') THEN\n"
        "    CREATE ROLE nexus_worker LOGIN;\n"
        "  ELSE ALTER ROLE nexus_worker LOGIN; END IF;\n"
        "END $$";
    char ci[PATH_MAX * 2 + 128];
    conninfo(c->sockdir, c->port, "postgres", PG_SUPERUSER, ci, sizeof(ci));
    PGconn *pc = PQconnectdb(ci);
    int rc = NX_OK;
    PGresult *r = NULL;
    if (PQstatus(pc) != CONNECTION_OK) {
        rc = NX_EUNAVAILABLE;
    } else {
        r = PQexec(pc, roles);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            rc = NX_EUNAVAILABLE;
        PQclear(r);
        r = rc ? NULL : PQexec(pc, "SELECT 1 FROM pg_database WHERE datname = 'nexus'");
        if (r && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 0) {
            PQclear(r);
            r = PQexec(pc, "CREATE DATABASE nexus OWNER nexus");
            if (PQresultStatus(r) != PGRES_COMMAND_OK)
                rc = NX_EUNAVAILABLE;
        } else if (r && PQresultStatus(r) != PGRES_TUPLES_OK) {
            rc = NX_EUNAVAILABLE;
        }
        PQclear(r);
    }
    if (rc != NX_OK) {
        nx_err_set(err, rc, "could not set up the embedded database: %.*s",
                   (int)strcspn(PQerrorMessage(pc), "\n"), PQerrorMessage(pc));
    }
    PQfinish(pc);
    return rc;
}

/* ---- open / close -------------------------------------------------------- */

static int resolve_account(nx_cluster_t *c, const nx_settings_t *s, nx_err_t *err)
{
    c->root = geteuid() == 0;
    snprintf(c->bindir, sizeof(c->bindir), "%s", s->pg_bindir);
    if (!c->root)
        return NX_OK;
    struct passwd *pw = getpwnam(s->pg_user);
    if (!pw)
        return nx_err_set(err, NX_EINVAL, "NEXUS_PG_USER: no such account \"%s\"", s->pg_user);
    if (pw->pw_uid == 0)
        return nx_err_set(err, NX_EINVAL, "NEXUS_PG_USER: PostgreSQL cannot run as \"%s\" "
                          "(uid 0)", s->pg_user);
    snprintf(c->user, sizeof(c->user), "%s", pw->pw_name);
    c->uid = pw->pw_uid;
    c->gid = pw->pw_gid;
    if (access(SETPRIV, X_OK) != 0)
        return nx_err_set(err, NX_EUNAVAILABLE, "cannot run PostgreSQL as \"%s\": %s (util-linux) "
                          "is missing", c->user, SETPRIV);
    return NX_OK;
}

static int open_locked(nx_cluster_t *c, nx_err_t *err)
{
    char initdb[PATH_MAX + 16], path[PATH_MAX + 32];
    bin(c, "initdb", initdb, sizeof(initdb));
    if (access(initdb, X_OK) != 0)
        return nx_err_set(err, NX_EUNAVAILABLE, "PostgreSQL 15 is not installed: \"%s\" not "
                          "found (install postgresql or set PG_BINDIR)", initdb);
    snprintf(path, sizeof(path), "%s/PG_VERSION", c->pgdata);
    if (!exists(path) && init_cluster(c, err) != NX_OK)
        return err->code;
    if (!is_running(c) && start_cluster(c, err) != NX_OK)
        return err->code;
    return bootstrap(c, err);
}

int nx_cluster_open(nx_cluster_t **out, const nx_settings_t *s, nx_err_t *err)
{
    nx_cluster_t *c = nx_calloc(1, sizeof(*c));
    if (!c)
        return nx_err_set(err, NX_ENOMEM, "out of memory");
    c->lock_fd = c->use_fd = -1;
    c->port = PG_PORT;
    char path[PATH_MAX + 32];
    int rc = resolve_account(c, s, err);
    if (rc == NX_OK)
        rc = prepare_dirs(c, s, err);
    if (rc == NX_OK) {
        snprintf(path, sizeof(path), "%s/lock", c->base);
        c->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        snprintf(path, sizeof(path), "%s/inuse", c->base);
        c->use_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (c->lock_fd < 0 || c->use_fd < 0 || flock(c->lock_fd, LOCK_EX) != 0)
            rc = nx_err_set(err, NX_EUNAVAILABLE, "cannot lock \"%s\"", c->base);
    }
    if (rc == NX_OK) {
        rc = open_locked(c, err);
        if (rc == NX_OK && flock(c->use_fd, LOCK_SH) != 0)
            rc = nx_err_set(err, NX_EUNAVAILABLE, "cannot lock \"%s\"", c->base);
        flock(c->lock_fd, LOCK_UN);
    }
    if (rc != NX_OK) {
        nx_cluster_close(c); /* stops a cluster started here, if no one else uses it */
        return rc;
    }
    *out = c;
    return NX_OK;
}

void nx_cluster_conninfo(const nx_cluster_t *c, const char *user, char *out, size_t size)
{
    conninfo(c->sockdir, c->port, "nexus", user, out, size);
}

bool nx_cluster_started_here(const nx_cluster_t *c)
{
    return c && c->started_here;
}

/* pid recorded by the nexusapi process that started the running postmaster */
static pid_t started_pid(const nx_cluster_t *c)
{
    char path[PATH_MAX + 32], buf[32];
    snprintf(path, sizeof(path), "%s/pg.started", c->base);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return (pid_t)strtol(buf, NULL, 10);
}

static void stop_if_last(nx_cluster_t *c)
{
    flock(c->use_fd, LOCK_UN);
    if (flock(c->use_fd, LOCK_EX | LOCK_NB) != 0)
        return; /* another nexusapi process still uses it */
    int port;
    pid_t pid = read_pidfile(c, &port, NULL, 0);
    if (!pid || !pid_alive(pid))
        return;
    if (!c->started_here && started_pid(c) != pid)
        return; /* someone else's postmaster: leave it alone */
    char pgctl[PATH_MAX + 16], timeout[16], path[PATH_MAX + 32];
    bin(c, "pg_ctl", pgctl, sizeof(pgctl));
    snprintf(timeout, sizeof(timeout), "%d", WAIT_SECONDS);
    char *argv[] = {pgctl, "-D", c->pgdata, "-m", "fast", "-w", "-t", timeout, "-s", "stop",
                    NULL};
    nx_log(NX_LOG_INFO, "stopping the embedded database", NX_LS("dir", c->pgdata));
    if (run_tool(c, argv, false) == 0) {
        snprintf(path, sizeof(path), "%s/pg.started", c->base);
        unlink(path);
    }
}

void nx_cluster_close(nx_cluster_t *c)
{
    if (!c)
        return;
    if (c->lock_fd >= 0 && c->use_fd >= 0 && flock(c->lock_fd, LOCK_EX) == 0) {
        stop_if_last(c);
        flock(c->use_fd, LOCK_UN);
        flock(c->lock_fd, LOCK_UN);
    }
    if (c->lock_fd >= 0)
        close(c->lock_fd);
    if (c->use_fd >= 0)
        close(c->use_fd);
    nx_free(c);
}
