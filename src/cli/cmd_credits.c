/*
 * cmd_credits.c - `nexusapi credits grant|show`: operator verbs for an
 * organisation's credits. ORG is the organisation's id or its domain.
 *
 * SECURITY: All queries MUST include organisation_id filter. Failure to do so
 * will result in data leakage between tenants.
 * (Operator verbs run as the database owner through operator_access; every
 * statement here names one organisation.)
 *
 * Credits enter only as GRANT transactions: `grant` adds the GRANT row and
 * the balance in ONE statement, so the ledger (grants - deductions +
 * refunds) always equals the balance.
 */
#include "core/nx.h"
#include "cli/cli.h"
#include "cli/session.h"
#include "core/err.h"
#include "core/util.h"
#include "db/db.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#define USAGE_GRANT "nexusapi credits grant ORG AMOUNT [--reason TEXT]"
#define USAGE_SHOW "nexusapi credits show ORG"
#define USAGE USAGE_GRANT " | " USAGE_SHOW
#define GRANT_MAX 1000000000LL

static const nx_stmt_t st_grant = {
    "cli_credits_grant",
    "WITH org AS ("
    " SELECT o.id FROM organisations o WHERE o.id = $1::uuid"
    "), up AS ("
    " INSERT INTO org_credits (organisation_id, balance) SELECT org.id, $2::int FROM org"
    " ON CONFLICT (organisation_id)"
    " DO UPDATE SET balance = org_credits.balance + EXCLUDED.balance"
    " RETURNING organisation_id, balance"
    "), grant_tx AS ("
    " INSERT INTO credit_transactions (organisation_id, amount, type, description)"
    " SELECT up.organisation_id, $2::int, 'GRANT', $3 FROM up"
    ")"
    " SELECT organisation_id, balance FROM up",
    3,
};

static const nx_stmt_t st_show = {
    "cli_credits_show",
    "SELECT o.id, o.name, coalesce(o.domain, '-'),"
    " coalesce((SELECT c.balance FROM org_credits c WHERE c.organisation_id = o.id), 0),"
    " coalesce(l.grants, 0), coalesce(l.deductions, 0), coalesce(l.refunds, 0)"
    " FROM organisations o LEFT JOIN LATERAL ("
    "  SELECT sum(t.amount) FILTER (WHERE t.type = 'GRANT') AS grants,"
    "   sum(t.amount) FILTER (WHERE t.type = 'DEDUCTION') AS deductions,"
    "   sum(t.amount) FILTER (WHERE t.type = 'REFUND') AS refunds"
    "  FROM credit_transactions t WHERE t.organisation_id = o.id) l ON true"
    " WHERE o.id = $1::uuid",
    1,
};

static const nx_stmt_t st_recent = {
    "cli_credits_recent",
    "SELECT nx_ts(t.created_at), t.type, t.amount::text, coalesce(t.job_id::text, '-'),"
    " coalesce(t.description, '')"
    " FROM credit_transactions t WHERE t.organisation_id = $1::uuid"
    " ORDER BY t.created_at DESC, t.id DESC LIMIT 10",
    1,
};

/* The session, the organisation's id and ORG as given (for messages). */
struct run {
    nx_cli_session_t *cs;
    const char *org_id;
    const char *org_arg;
};

static int grant(struct run *r, long long amount, const char *reason)
{
    char amt[24];
    snprintf(amt, sizeof(amt), "%lld", amount);
    const char *p[] = {r->org_id, amt, reason};
    nx_err_t err = {0};
    nx_res_t *res;
    if (nx_db_exec(r->cs->owner, r->cs->arena, &st_grant, p, &res, &err) != NX_OK)
        return nx_cli_fail_err(&err);
    if (nx_res_rows(res) != 1)
        return nx_cli_fail("no organisation \"%s\"", r->org_arg);
    printf("granted %lld credits to %s; balance %s\n", amount, nx_res_get(res, 0, 0),
           nx_res_get(res, 0, 1));
    return NX_EXIT_OK;
}

static int show(struct run *r)
{
    const char *p[] = {r->org_id};
    nx_err_t err = {0};
    nx_res_t *res, *recent;
    if (nx_db_exec(r->cs->owner, r->cs->arena, &st_show, p, &res, &err) != NX_OK)
        return nx_cli_fail_err(&err);
    if (nx_res_rows(res) != 1)
        return nx_cli_fail("no organisation \"%s\"", r->org_arg);
    const char *id = nx_res_get(res, 0, 0);
    printf("organisation  %s (%s, domain %s)\n", id, nx_res_get(res, 0, 1), nx_res_get(res, 0, 2));
    printf("balance       %s\n", nx_res_get(res, 0, 3));
    printf("ledger        grants %s - deductions %s + refunds %s\n", nx_res_get(res, 0, 4),
           nx_res_get(res, 0, 5), nx_res_get(res, 0, 6));
    const char *p2[] = {id};
    if (nx_db_exec(r->cs->owner, r->cs->arena, &st_recent, p2, &recent, &err) != NX_OK)
        return nx_cli_fail_err(&err);
    if (nx_res_rows(recent) > 0)
        printf("\n%-27s  %-9s  %6s  %-36s  %s\n", "created_at", "type", "amount", "job_id",
               "description");
    for (int i = 0; i < nx_res_rows(recent); i++)
        printf("%-27s  %-9s  %6s  %-36s  %s\n", nx_res_get(recent, i, 0),
               nx_res_get(recent, i, 1), nx_res_get(recent, i, 2), nx_res_get(recent, i, 3),
               nx_res_get(recent, i, 4));
    return NX_EXIT_OK;
}

/* Opens the configured database as the owner, finds ORG and runs the
 * subcommand (amount 0: show). */
static int with_owner(nx_settings_t *s, const char *org, long long amount, const char *reason)
{
    nx_cli_session_t cs;
    int rc = nx_cli_session_open(&cs, s);
    if (rc != NX_EXIT_OK)
        return rc;
    struct run r = {.cs = &cs, .org_arg = org};
    rc = nx_cli_lookup_org(&cs, org, &r.org_id);
    if (rc == NX_EXIT_OK && !r.org_id)
        rc = nx_cli_fail("no organisation \"%s\"", org);
    else if (rc == NX_EXIT_OK)
        rc = amount > 0 ? grant(&r, amount, reason) : show(&r);
    nx_cli_session_close(&cs);
    return rc;
}

static int cmd_grant(int argc, char **argv, nx_settings_t *s)
{
    const char *org = NULL, *amount_arg = NULL, *reason = "operator grant";
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--reason") == 0) {
            if (i + 1 >= argc)
                return nx_cli_usage(USAGE_GRANT, "--reason needs a value");
            reason = argv[++i];
        } else if (argv[i][0] == '-' && argv[i][1] != '\0' && !isdigit((unsigned char)argv[i][1])) {
            return nx_cli_usage(USAGE_GRANT, "unknown argument \"%s\"", argv[i]);
        } else if (!org) {
            org = argv[i];
        } else if (!amount_arg) {
            amount_arg = argv[i];
        } else {
            return nx_cli_usage(USAGE_GRANT, "unexpected argument \"%s\"", argv[i]);
        }
    }
    if (!org || !amount_arg)
        return nx_cli_usage(USAGE_GRANT, "ORG and AMOUNT are required");
    long long amount;
    if (nx_parse_int(amount_arg, 1, GRANT_MAX, &amount) != NX_OK)
        return nx_cli_usage(USAGE_GRANT, "AMOUNT must be an integer from 1 to %lld", GRANT_MAX);
    size_t n = strlen(reason);
    if (n == 0 || !nx_utf8_valid(reason, n) || nx_utf8_len(reason, n) > 500)
        return nx_cli_usage(USAGE_GRANT, "--reason must be 1 to 500 characters of UTF-8");
    return with_owner(s, org, amount, reason);
}

int cmd_credits(int argc, char **argv, nx_settings_t *s)
{
    if (argc < 2)
        return nx_cli_usage(USAGE, "missing subcommand");
    if (strcmp(argv[1], "grant") == 0)
        return cmd_grant(argc, argv, s);
    if (strcmp(argv[1], "show") == 0) {
        if (argc < 3)
            return nx_cli_usage(USAGE_SHOW, "ORG is required");
        if (argc > 3)
            return nx_cli_usage(USAGE_SHOW, "unexpected argument \"%s\"", argv[3]);
        return with_owner(s, argv[2], 0, NULL);
    }
    return nx_cli_usage(USAGE, "unknown subcommand \"%s\"", argv[1]);
}
