/*
 * cli_int.h - helpers shared by the verbs of src/cli/, private to it.
 */
#ifndef NX_CLI_CLI_INT_H
#define NX_CLI_CLI_INT_H

#include "core/nx.h"
#include "db/schema.h"

#include <signal.h>

/* `migrate revision --autogenerate`. */
typedef struct nx_cli_autogen {
    const char *message;  /* -m, as given: heads the file */
    const char *slug;     /* the file name's part after NNNN_ */
    const char *dir;      /* migrations directory (must exist) */
    const char *schema;   /* schema directory */
    const nx_schema_rename_t *renames;
    size_t nrenames;
    bool fail_on_hazard;
} nx_cli_autogen_t;

/* Writes the next migration(s) from the difference between the schema and
 * the migrations of o (migrate_schema.c). Returns the exit status: 0, 1 on
 * failure or a hazard with fail_on_hazard, 128+N when signal N stopped it. */
int nx_cli_migrate_autogen(const nx_cli_autogen_t *o, nx_settings_t *s);

/* The drift half of `migrate check`: compares the schema directory (schema
 * NULL: ./schema, skipped with a note when there is none) with the
 * migrations of mig_dir (NULL: compiled in) on the server of conninfo.
 * stop_signals are blocked; a pending one stops the run. Returns the exit
 * status (0, 1, or 128+N). */
int nx_cli_migrate_drift(const char *conninfo, const char *schema, const char *mig_dir,
                         sigset_t *stop_signals);

/* 128 + the stop signal taken from the pending ones, or 0 when none. */
int nx_cli_take_stop_signal(sigset_t *stop_signals);

#endif
