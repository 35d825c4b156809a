/*
 * cli.h - the verbs of the nexusapi command line, one file per verb.
 *
 * A verb gets its own arguments (argv[0] is the verb) and the loaded
 * settings, and returns the process exit status: 0 success, 1 failure at
 * run time, 2 bad usage or configuration. Only main.c calls exit().
 */
#ifndef NX_CLI_CLI_H
#define NX_CLI_CLI_H

#include "core/nx.h"

#include <signal.h>

#define NX_EXIT_OK 0
#define NX_EXIT_FAIL 1
#define NX_EXIT_USAGE 2

typedef int (*nx_cmd_cb)(int argc, char **argv, nx_settings_t *s);

int cmd_serve(int argc, char **argv, nx_settings_t *s);
int cmd_worker(int argc, char **argv, nx_settings_t *s);
int cmd_migrate(int argc, char **argv, nx_settings_t *s);
int cmd_org(int argc, char **argv, nx_settings_t *s);
int cmd_user(int argc, char **argv, nx_settings_t *s);
int cmd_db(int argc, char **argv, nx_settings_t *s);
int cmd_token(int argc, char **argv, nx_settings_t *s);
int cmd_login_link(int argc, char **argv, nx_settings_t *s);
int cmd_credits(int argc, char **argv, nx_settings_t *s);
int cmd_config(int argc, char **argv, nx_settings_t *s);

/* Prints "nexusapi: <message>" and the usage line to stderr; returns 2. */
int nx_cli_usage(const char *usage, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A --name value without its surrounding blanks (argv is changed in place),
 * or NULL when that leaves it empty, not UTF-8, or over 255 characters. */
char *nx_cli_name(char *arg);
/* Prints "nexusapi: <message>" to stderr; returns 1. */
int nx_cli_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prints "nexusapi: <err detail>" (and log detail when DEBUG); returns 1,
 * or 2 for NX_EINVAL. */
int nx_cli_fail_err(const nx_err_t *err);
/* For the long-running verbs (serve, worker): blocks SIGTERM and SIGINT in
 * the calling thread - call it before any thread exists, so every thread
 * inherits the mask and the caller alone waits for them with sigwait on
 * *stop_signals - and ignores SIGPIPE. */
void nx_cli_block_stop_signals(sigset_t *stop_signals);

#endif
