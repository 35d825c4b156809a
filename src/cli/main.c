/*
 * main.c - entry point and verb table (git's commands[], systemd's verbs[]).
 *
 * Loads and validates the settings once, configures logging, then hands the
 * remaining arguments to the verb. The only place that calls exit().
 */
#include "core/nx.h"
#include "cli/cli.h"
#include "config/settings.h"
#include "core/err.h"
#include "core/log.h"
#include "core/util.h"

#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct verb {
    const char *name;
    nx_cmd_cb fn;
    const char *summary;
};

static const struct verb verbs[] = {
    {"serve", cmd_serve, "run the HTTP API (and job workers); the default verb"},
    {"worker", cmd_worker, "run job workers only"},
    {"migrate", cmd_migrate, "upgrade, downgrade, history, current, revision, check"},
    {"org", cmd_org, "create and list organisations"},
    {"user", cmd_user, "add and list users"},
    {"credits", cmd_credits, "grant and show an organisation's credits"},
    {"token", cmd_token, "mint an access token for a user"},
    {"login-link", cmd_login_link, "print a one-time sign-in link to the dashboard"},
    {"db", cmd_db, "open psql on the configured database"},
    {"config", cmd_config, "print the effective settings (secrets masked)"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: nexusapi [VERB] [ARGS...]\n\nverbs:\n");
    for (size_t i = 0; i < NX_ARRAY_LEN(verbs); i++)
        fprintf(f, "  %-10s %s\n", verbs[i].name, verbs[i].summary);
    fprintf(f, "\nSettings come from the environment and ./.env; see .env.example.\n");
}

int nx_cli_usage(const char *use, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("nexusapi: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    if (use)
        fprintf(stderr, "usage: %s\n", use);
    return NX_EXIT_USAGE;
}

char *nx_cli_name(char *arg)
{
    size_t n;
    char *name = (char *)nx_name_check(arg, strlen(arg), &n);
    if (name)
        name[n] = '\0';
    return name;
}

int nx_cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("nexusapi: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return NX_EXIT_FAIL;
}

int nx_cli_fail_err(const nx_err_t *err)
{
    const char *msg = err->detail[0] ? err->detail : nx_err_title(err->code);
    if (err->log_detail[0] && nx_cfg && nx_cfg->debug)
        fprintf(stderr, "nexusapi: %s (%s)\n", msg, err->log_detail);
    else
        fprintf(stderr, "nexusapi: %s\n", msg);
    for (int i = 0; i < err->nfields; i++)
        fprintf(stderr, "  %s: %s\n", err->fields[i].field, err->fields[i].message);
    return err->code == NX_EINVAL ? NX_EXIT_USAGE : NX_EXIT_FAIL;
}

void nx_cli_block_stop_signals(sigset_t *stop_signals)
{
    sigemptyset(stop_signals);
    sigaddset(stop_signals, SIGTERM);
    sigaddset(stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int main(int argc, char **argv)
{
    const char *name = argc > 1 ? argv[1] : "serve";
    if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "help") == 0) {
        usage(stdout);
        return NX_EXIT_OK;
    }
    if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
        printf("nexusapi %s\n", NX_VERSION);
        return NX_EXIT_OK;
    }
    const struct verb *v = NULL;
    for (size_t i = 0; i < NX_ARRAY_LEN(verbs); i++)
        if (strcmp(verbs[i].name, name) == 0)
            v = &verbs[i];
    if (!v) {
        fprintf(stderr, "nexusapi: unknown verb \"%s\"\n", name);
        usage(stderr);
        return NX_EXIT_USAGE;
    }

    static nx_settings_t settings;
    nx_err_t err = {0};
    if (nx_settings_load(&settings, &err) != NX_OK) {
        fprintf(stderr, "nexusapi: configuration error: %s\n", err.detail);
        return NX_EXIT_USAGE;
    }
    nx_settings_publish(&settings);
    nx_log_configure(settings.log_level, settings.log_text);

    int sub_argc = argc > 1 ? argc - 1 : 1;
    char *fallback[] = {(char *)name, NULL};
    char **sub_argv = argc > 1 ? argv + 1 : fallback;
    int rc = v->fn(sub_argc, sub_argv, &settings);
    nx_settings_release(&settings);
    return rc;
}
