/*
 * session.h - what an operator verb (org, user, credits, token) holds while
 * it runs: the database target, one connection as the owner and the run's
 * arena, plus the lookups and the table output those verbs share.
 */
#ifndef NX_CLI_SESSION_H
#define NX_CLI_SESSION_H

#include "core/nx.h"
#include "db/target.h"

typedef struct nx_cli_session {
    nx_db_target_t target;
    nx_db_t *owner;    /* connected as the owner (operator_access) */
    nx_arena_t *arena; /* the run's arena: results and strings below */
} nx_cli_session_t;

/* Opens the target, the arena and the owner connection. Returns 0, or the
 * exit status (1, or 2 for NX_EINVAL) with the one-line error printed and
 * nothing left open. */
int nx_cli_session_open(nx_cli_session_t *cs, nx_settings_t *s);
/* Frees the arena, the owner connection and the target. Idempotent; safe on
 * a zeroed session. */
void nx_cli_session_close(nx_cli_session_t *cs);

/* Sets *id to the id (arena string) of the organisation ORG names - its id,
 * or its domain in any case - or to NULL when there is none. Returns 0, or
 * the exit status with the error printed when the query fails. */
int nx_cli_lookup_org(nx_cli_session_t *cs, const char *org, const char **id);
/* The same, but absence is a failure: returns the id (arena string), or NULL
 * with the error (`organisation "ORG" not found`) printed and *exit_status set. */
const char *nx_cli_find_org(nx_cli_session_t *cs, const char *org, int *exit_status);

/* A user of the database, found by email (and organisation). */
typedef struct nx_cli_user {
    const char *id, *org_id, *role; /* arena strings */
} nx_cli_user_t;

/* Finds the one user with this email (any case), in ORG (an id or domain)
 * when org is not NULL, into *u. Returns 0, or the exit status with the
 * error printed: no such user, or (without org) an email used in several
 * organisations, listed with the --org to choose one. */
int nx_cli_find_user(nx_cli_session_t *cs, const char *email, const char *org,
                     nx_cli_user_t *u);

/* Prints r to stdout as columns aligned under heads (at most 16 columns). */
void nx_cli_print_table(const nx_res_t *r, const char *const *heads, int ncols);

#endif
