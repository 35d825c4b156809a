/*
 * provider.c - picks the configured provider (AI_PROVIDER) for an attempt.
 */
#include "core/nx.h"
#include "jobs/providers/provider.h"
#include "config/settings.h"
#include "core/err.h"

#include <stdatomic.h>
#include <string.h>

static atomic_bool aborting;

void nx_provider_abort(bool on) { atomic_store(&aborting, on); }
bool nx_provider_aborting(void) { return atomic_load(&aborting); }

/* The registry's entry points (jobs/registry.c): the configured provider. */
int nx_provider_summarise(nx_arena_t *a, const char *text, size_t len, char **out,
                          nx_err_t *err)
{
    if (nx_cfg && nx_cfg->ai_provider == NX_AI_GEMINI)
        return nx_provider_gemini_run(a, "summarise", text, len, out, err);
    return nx_provider_local_summarise(a, text, len, out, err);
}

int nx_provider_analyse(nx_arena_t *a, const char *text, size_t len, char **out, nx_err_t *err)
{
    if (nx_cfg && nx_cfg->ai_provider == NX_AI_GEMINI)
        return nx_provider_gemini_run(a, "analyse", text, len, out, err);
    return nx_provider_local_analyse(a, text, len, out, err);
}
