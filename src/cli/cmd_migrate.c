/* cmd_migrate.c - placeholder until the verb lands. */
#include "core/nx.h"
#include "cli/cli.h"

int cmd_migrate(int argc, char **argv, nx_settings_t *s)
{
    NX_UNUSED(argc);
    NX_UNUSED(argv);
    NX_UNUSED(s);
    return nx_cli_fail("\"migrate\" is not available yet");
}
