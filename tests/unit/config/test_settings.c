/*
 * test_settings.c - configuration parsing and validation.
 */
#include "core/nx.h"
#include "config/settings.h"
#include "core/err.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static const char *const managed[] = {
    "DATABASE_URL", "DEBUG", "JWT_SECRET_KEY", "JWT_ALGORITHM", "JWT_EXPIRATION_MINUTES",
    "PORT", "HTTP_THREADS", "LOG_LEVEL", "LOG_FORMAT", "PUBLIC_URL", "AI_PROVIDER",
    "NEXUS_DATA_DIR", "APP_NAME", "HOST", "JWT_PREVIOUS_SECRET_KEY",
    "JWT_PREVIOUS_SECRET_UNTIL", "METRICS_TOKEN", "WORKER_METRICS_PORT",
    "DATABASE_POOL_MODE", "DATABASE_LISTEN_URL",
};

static char tmpdir[64];
static char oldcwd[4096];

static int setup(void **state)
{
    (void)state;
    for (size_t i = 0; i < NX_ARRAY_LEN(managed); i++)
        unsetenv(managed[i]);
    /* run in an empty directory so no stray .env is read */
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/nx-settings-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    assert_non_null(getcwd(oldcwd, sizeof(oldcwd)));
    assert_int_equal(chdir(tmpdir), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    assert_int_equal(chdir(oldcwd), 0);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static int load(nx_settings_t *s, nx_err_t *err)
{
    nx_err_clear(err);
    return nx_settings_load(s, err);
}

static void test_defaults(void **state)
{
    (void)state;
    nx_settings_t s;
    nx_err_t err;
    assert_int_equal(load(&s, &err), NX_OK);
    assert_null(s.database_url);
    assert_false(s.debug);
    assert_string_equal(s.app_name, "NexusAPI");
    assert_int_equal(s.jwt_algorithm, NX_JWT_HS256);
    assert_int_equal(s.jwt_expiration_minutes, 60);
    assert_string_equal(s.host, "0.0.0.0");
    assert_int_equal(s.port, 8000);
    assert_string_equal(s.data_dir, "./.nexus");
    assert_int_equal(s.job_max_attempts, 3);
    assert_int_equal(s.job_retry_delay, 5);
    assert_int_equal(s.db_pool_mode, NX_DB_POOL_SESSION);
    assert_null(s.listen_database_url);
    nx_settings_release(&s);
}

static void expect_error(const char *name, const char *value, const char *needle)
{
    nx_settings_t s;
    nx_err_t err;
    setenv(name, value, 1);
    assert_int_equal(load(&s, &err), NX_EINVAL);
    unsetenv(name);
    if (!strstr(err.detail, name) || !strstr(err.detail, needle))
        fail_msg("detail \"%s\" lacks \"%s\" / \"%s\"", err.detail, name, needle);
    assert_null(strchr(err.detail, '\n'));
}

static void test_bad_values(void **state)
{
    (void)state;
    expect_error("PORT", "abc", "integer");
    expect_error("PORT", "70000", "between 0 and 65535");
    expect_error("PORT", "", "integer");
    expect_error("PORT", "80x", "integer");
    expect_error("HTTP_THREADS", "0", "between");
    expect_error("DEBUG", "maybe", "true or false");
    expect_error("JWT_ALGORITHM", "RS256", "HS256, HS384, HS512");
    expect_error("JWT_ALGORITHM", "none", "one of");
    expect_error("LOG_LEVEL", "loud", "one of");
    expect_error("PUBLIC_URL", "ftp://x", "URL");
    expect_error("AI_PROVIDER", "openai", "local, gemini");
    expect_error("JWT_EXPIRATION_MINUTES", "-5", "between");
    expect_error("DATABASE_POOL_MODE", "statement", "session, transaction");
    /* a pooler is in front of an external database only */
    expect_error("DATABASE_POOL_MODE", "transaction", "DATABASE_URL");
}

static void test_secret_rules(void **state)
{
    (void)state;
    nx_settings_t s;
    nx_err_t err;
    setenv("JWT_SECRET_KEY", "short", 1);
    assert_int_equal(load(&s, &err), NX_EINVAL);
    assert_non_null(strstr(err.detail, "JWT_SECRET_KEY"));
    assert_null(strstr(err.detail, "short")); /* never echo a secret */

    setenv("JWT_SECRET_KEY", "change-me-in-production-use-strong-secret", 1);
    assert_int_equal(load(&s, &err), NX_EINVAL);
    assert_non_null(strstr(err.detail, "placeholder"));

    /* DEBUG=true does not skip the check (issue 11, item 12): a weak secret
     * is refused on any address others can reach, and allowed, with a
     * warning, only while the server listens on loopback */
    setenv("DEBUG", "true", 1);
    const char *reachable[] = {NULL, "0.0.0.0", "::", "192.0.2.1", "2001:db8::1", "example.com"};
    const char *weak[] = {"change-me-in-production-use-strong-secret", "short"};
    for (size_t w = 0; w < NX_ARRAY_LEN(weak); w++) {
        setenv("JWT_SECRET_KEY", weak[w], 1);
        for (size_t h = 0; h < NX_ARRAY_LEN(reachable); h++) {
            if (reachable[h])
                setenv("HOST", reachable[h], 1);
            else
                unsetenv("HOST");
            if (load(&s, &err) != NX_EINVAL)
                fail_msg("DEBUG let \"%s\" through on HOST %s", weak[w],
                         reachable[h] ? reachable[h] : "(default)");
            assert_non_null(strstr(err.detail, "JWT_SECRET_KEY"));
            assert_non_null(strstr(err.detail, "loopback"));
        }
        const char *loopback[] = {"127.0.0.1", "127.1.2.3", "::1", "localhost"};
        for (size_t h = 0; h < NX_ARRAY_LEN(loopback); h++) {
            setenv("HOST", loopback[h], 1);
            assert_int_equal(load(&s, &err), NX_OK);
            assert_int_equal(nx_settings_finish_secret(&s, &err), NX_OK);
            nx_settings_release(&s);
        }
    }
    unsetenv("HOST");
    unsetenv("DEBUG");

    setenv("JWT_SECRET_KEY", "0123456789abcdef0123456789abcdef", 1);
    assert_int_equal(load(&s, &err), NX_OK);
    assert_int_equal(nx_settings_finish_secret(&s, &err), NX_OK);
    nx_settings_release(&s);
    unsetenv("JWT_SECRET_KEY");
}

/* A secret rotation: the previous secret needs the end of its grace period,
 * must be strong and differ from the current one; it counts only until that
 * end. */
static void test_previous_secret_rules(void **state)
{
    (void)state;
    nx_settings_t s;
    nx_err_t err;
    setenv("JWT_SECRET_KEY", "current-secret-0123456789abcdef0123456789", 1);
    setenv("JWT_PREVIOUS_SECRET_KEY", "previous-secret-0123456789abcdef012345678", 1);
    assert_int_equal(load(&s, &err), NX_EINVAL);
    assert_string_equal(err.detail, "JWT_PREVIOUS_SECRET_UNTIL: must be set with "
                                    "JWT_PREVIOUS_SECRET_KEY: the end of its grace period");
    setenv("JWT_PREVIOUS_SECRET_UNTIL", "2031-01-02T03:04:05Z", 1);
    assert_int_equal(load(&s, &err), NX_OK);
    assert_int_equal(nx_settings_finish_secret(&s, &err), NX_OK);
    assert_int_equal(s.jwt_previous_until, 1925089445LL);
    assert_string_equal(nx_settings_previous_secret(&s, 1925089444LL),
                        "previous-secret-0123456789abcdef012345678");
    assert_null(nx_settings_previous_secret(&s, 1925089445LL)); /* the grace period is over */
    nx_settings_release(&s);

    setenv("JWT_PREVIOUS_SECRET_KEY", "current-secret-0123456789abcdef0123456789", 1);
    assert_int_equal(load(&s, &err), NX_EINVAL);
    assert_string_equal(err.detail, "JWT_PREVIOUS_SECRET_KEY: must differ from JWT_SECRET_KEY");
    setenv("JWT_PREVIOUS_SECRET_KEY", "weak", 1);
    assert_int_equal(load(&s, &err), NX_EINVAL);
    assert_string_equal(err.detail, "JWT_PREVIOUS_SECRET_KEY: must be at least 32 bytes long");
    unsetenv("JWT_PREVIOUS_SECRET_KEY");
    assert_int_equal(load(&s, &err), NX_EINVAL);
    assert_string_equal(err.detail, "JWT_PREVIOUS_SECRET_UNTIL: is set but "
                                    "JWT_PREVIOUS_SECRET_KEY is not");
    setenv("JWT_PREVIOUS_SECRET_UNTIL", "soon", 1);
    assert_int_equal(load(&s, &err), NX_EINVAL);
    assert_non_null(strstr(err.detail, "JWT_PREVIOUS_SECRET_UNTIL: must be an RFC 3339"));
    unsetenv("JWT_PREVIOUS_SECRET_UNTIL");
    unsetenv("JWT_SECRET_KEY");
}

static void test_metrics_settings(void **state)
{
    (void)state;
    nx_settings_t s;
    nx_err_t err;
    assert_int_equal(load(&s, &err), NX_OK);
    assert_null(s.metrics_token);
    assert_int_equal(s.worker_metrics_port, 0); /* off */
    nx_settings_release(&s);
    setenv("METRICS_TOKEN", "0123456789abcde", 1); /* 15 */
    assert_int_equal(load(&s, &err), NX_EINVAL);
    assert_string_equal(err.detail, "METRICS_TOKEN: must be at least 16 characters long");
    assert_null(strstr(err.detail, "0123456789abcde")); /* never echo a secret */
    setenv("METRICS_TOKEN", "0123456789abcdef", 1);
    setenv("WORKER_METRICS_PORT", "9464", 1);
    assert_int_equal(load(&s, &err), NX_OK);
    assert_int_equal(s.worker_metrics_port, 9464);
    nx_settings_release(&s);
    setenv("WORKER_METRICS_PORT", "70000", 1);
    assert_int_equal(load(&s, &err), NX_EINVAL);
    assert_non_null(strstr(err.detail, "WORKER_METRICS_PORT"));
    unsetenv("METRICS_TOKEN");
    unsetenv("WORKER_METRICS_PORT");
}

static void test_generated_secret_is_kept(void **state)
{
    (void)state;
    nx_settings_t s;
    nx_err_t err;
    setenv("NEXUS_DATA_DIR", "./data", 1);
    assert_int_equal(load(&s, &err), NX_OK);
    assert_int_equal(nx_settings_finish_secret(&s, &err), NX_OK);
    char first[128];
    snprintf(first, sizeof(first), "%s", s.jwt_secret);
    assert_true(strlen(first) >= 32);
    nx_settings_release(&s);

    assert_int_equal(load(&s, &err), NX_OK);
    assert_int_equal(nx_settings_finish_secret(&s, &err), NX_OK);
    assert_string_equal(s.jwt_secret, first);
    nx_settings_release(&s);
    unsetenv("NEXUS_DATA_DIR");

    /* with an external database the secret must be given */
    setenv("DATABASE_URL", "postgresql://x@127.0.0.1/db", 1);
    assert_int_equal(load(&s, &err), NX_OK);
    assert_int_equal(nx_settings_finish_secret(&s, &err), NX_EINVAL);
    assert_non_null(strstr(err.detail, "JWT_SECRET_KEY"));
    nx_settings_release(&s);
    unsetenv("DATABASE_URL");
}

static void test_dotenv(void **state)
{
    (void)state;
    FILE *f = fopen(".env", "w");
    assert_non_null(f);
    fputs("# comment\n\nPORT=9001\nexport APP_NAME=\"Nexus Test\"\nLOG_LEVEL=debug # trailing\n"
          "HTTP_THREADS = 3\n",
          f);
    fclose(f);
    nx_settings_t s;
    nx_err_t err;
    setenv("HTTP_THREADS", "5", 1); /* the environment wins over .env */
    assert_int_equal(load(&s, &err), NX_OK);
    assert_int_equal(s.port, 9001);
    assert_string_equal(s.app_name, "Nexus Test");
    assert_int_equal(s.log_level, 0);
    assert_int_equal(s.http_threads, 5);
    nx_settings_release(&s);
    unsetenv("HTTP_THREADS");

    f = fopen(".env", "w");
    fputs("PORT=1\nthis line is wrong\n", f);
    fclose(f);
    assert_int_equal(load(&s, &err), NX_EINVAL);
    assert_non_null(strstr(err.detail, ".env: line 2"));
    unlink(".env");
}

static void test_dump_masks_secrets(void **state)
{
    (void)state;
    nx_settings_t s;
    nx_err_t err;
    setenv("JWT_SECRET_KEY", "super-secret-value-0123456789abcdef", 1);
    setenv("DATABASE_URL", "postgresql://u:pw@127.0.0.1/db", 1);
    assert_int_equal(load(&s, &err), NX_OK);
    FILE *f = tmpfile();
    nx_settings_dump(&s, fileno(f));
    rewind(f);
    char text[8192] = {0};
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    assert_true(n > 0);
    assert_null(strstr(text, "super-secret"));
    assert_null(strstr(text, "pw@"));
    assert_non_null(strstr(text, "JWT_SECRET_KEY=********"));
    nx_settings_release(&s);
    unsetenv("JWT_SECRET_KEY");
    unsetenv("DATABASE_URL");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_secret_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_previous_secret_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_generated_secret_is_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dotenv, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dump_masks_secrets, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
