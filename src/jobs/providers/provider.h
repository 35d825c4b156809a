/*
 * provider.h - the AI providers a job attempt calls (local or Gemini).
 *
 * A provider turns a job's input text into its output JSON (api.md's
 * summarise/analyse shapes). It allocates only from the attempt's arena and
 * keeps no state between calls, so any number of worker threads can call it
 * at once. A failure fills err->detail with the job's error_message.
 */
#ifndef NX_JOBS_PROVIDERS_PROVIDER_H
#define NX_JOBS_PROVIDERS_PROVIDER_H

#include "core/nx.h"

#define NX_LOCAL_MODEL "nexus-extractive-1"

/* Text statistics shared by both providers (Gemini does not count words). */
typedef struct nx_text_stats {
    long words;
    long sentences;
    long syllables;
    long reading_time_seconds; /* at 200 words per minute, rounded up */
    double flesch;             /* Flesch reading ease, 2 decimals */
} nx_text_stats_t;

/* One-time process set-up (httpc, libcurl). Call before starting worker threads. */
void nx_provider_global_init(void);
/* Makes outbound calls in flight give up at once (the drain timeout passed);
 * on = false clears it. nx_provider_aborting reads it. */
void nx_provider_abort(bool on);
bool nx_provider_aborting(void);

/* The configured provider (nx_cfg->ai_provider) for one job type, on
 * text[0..len): the job registry's entry points. On NX_OK *out is the
 * output JSON (arena-owned); otherwise an NX_E* code with err->detail set. */
int nx_provider_summarise(nx_arena_t *a, const char *text, size_t len, char **out,
                          nx_err_t *err);
int nx_provider_analyse(nx_arena_t *a, const char *text, size_t len, char **out, nx_err_t *err);

/* The local provider: deterministic and offline. Output JSON on the arena.
 * NX_ENOMEM only. */
int nx_provider_local_summarise(nx_arena_t *a, const char *text, size_t len, char **out,
                                nx_err_t *err);
int nx_provider_local_analyse(nx_arena_t *a, const char *text, size_t len, char **out,
                              nx_err_t *err);
/* Word, sentence and syllable counts, reading time and Flesch ease. */
int nx_provider_local_stats(nx_arena_t *a, const char *text, size_t len,
                            nx_text_stats_t *st);

/* The Gemini provider (generateContent through httpc). NX_EUNAVAILABLE for
 * HTTP errors and timeouts, NX_EINTERNAL for a malformed answer,
 * NX_ENOTCONFIGURED without GEMINI_API_KEY. */
int nx_provider_gemini_run(nx_arena_t *a, const char *job_type, const char *text, size_t len,
                           char **out, nx_err_t *err);

#endif
