/*
 * fuzz.h - shared by the libFuzzer targets of fuzz/: quiet logging and a
 * NUL-terminated copy of the input.
 */
#ifndef NX_FUZZ_FUZZ_H
#define NX_FUZZ_FUZZ_H

#include "core/nx.h"
#include "core/log.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Nothing is logged while fuzzing: lines would cost more than the code. */
static inline void nx_fuzz_quiet(void) { nx_log_configure(NX_LOG_ERROR + 1, false); }

/* data[0..size) as a heap string (cut at its first NUL); free() it. */
static inline char *nx_fuzz_str(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        abort();
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

#endif
