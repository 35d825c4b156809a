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

int nx_provider_run(nx_arena_t *a, const char *job_type, const char *text, size_t len,
                    char **out, nx_err_t *err)
{
    bool summarise = strcmp(job_type, "summarise") == 0;
    if (!summarise && strcmp(job_type, "analyse") != 0)
        return nx_err_set(err, NX_EINTERNAL, "unknown job type \"%s\"", job_type);
    if (nx_cfg && nx_cfg->ai_provider == NX_AI_GEMINI)
        return nx_provider_gemini_run(a, job_type, text, len, out, err);
    return summarise ? nx_provider_local_summarise(a, text, len, out, err)
                     : nx_provider_local_analyse(a, text, len, out, err);
}
