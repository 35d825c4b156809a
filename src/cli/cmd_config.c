/*
 * cmd_config.c - `nexusapi config`: print the effective settings.
 */
#include "core/nx.h"
#include "cli/cli.h"
#include "config/settings.h"

#include <unistd.h>

int cmd_config(int argc, char **argv, nx_settings_t *s)
{
    if (argc > 1)
        return nx_cli_usage("nexusapi config", "unexpected argument \"%s\"", argv[1]);
    nx_settings_dump(s, STDOUT_FILENO);
    return NX_EXIT_OK;
}
