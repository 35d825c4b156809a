/*
 * test_migrate_parse.c - migration file parsing, statement splitting and
 * checksums (db/migrate.c), no database needed.
 */
#include "core/nx.h"
#include "db/migrate.h"
#include "auth/digest.h"
#include "core/err.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static int parse(nx_mig_t *m, const char *file, const char *text, nx_err_t *err)
{
    memset(err, 0, sizeof(*err));
    return nx_mig_parse(m, file, text, strlen(text), err);
}

static void test_sections(void **state)
{
    (void)state;
    const char *text = "-- adds a table\n"
                       "\n"
                       "-- nexus:up\n"
                       "CREATE TABLE t (id int);\n"
                       "-- nexus:down\n"
                       "DROP TABLE t;\n";
    nx_mig_t m;
    nx_err_t err;
    assert_int_equal(parse(&m, "0007_add_t.sql", text, &err), NX_OK);
    assert_string_equal(m.version, "0007");
    assert_int_equal(m.vnum, 7);
    assert_string_equal(m.name, "add_t");
    assert_string_equal(m.file, "0007_add_t.sql");
    assert_string_equal(m.up, "CREATE TABLE t (id int);\n");
    assert_string_equal(m.down, "DROP TABLE t;\n");
    assert_false(m.no_tx);
    nx_mig_release(&m);
}

static void test_markers_tolerant(void **state)
{
    (void)state;
    /* CRLF line ends, extra spaces, no final newline, empty sections */
    const char *text = "--nexus:up  \r\n--   nexus:down\r\nSELECT 1;";
    nx_mig_t m;
    nx_err_t err;
    assert_int_equal(parse(&m, "12_x.sql", text, &err), NX_OK);
    assert_string_equal(m.up, "");
    assert_string_equal(m.down, "SELECT 1;");
    assert_string_equal(m.version, "12");
    nx_mig_release(&m);
}

static void test_no_transaction(void **state)
{
    (void)state;
    const char *text = "-- nexus:no-transaction\n-- nexus:up\n"
                       "CREATE INDEX CONCURRENTLY i ON t (id);\n-- nexus:down\n"
                       "DROP INDEX CONCURRENTLY i;\n";
    nx_mig_t m;
    nx_err_t err;
    assert_int_equal(parse(&m, "0003_idx.sql", text, &err), NX_OK);
    assert_true(m.no_tx);
    nx_mig_release(&m);

    /* the marker after the up marker is a mistake, not a silent no-op */
    const char *late = "-- nexus:up\n-- nexus:no-transaction\nSELECT 1;\n-- nexus:down\n";
    assert_int_equal(parse(&m, "0003_idx.sql", late, &err), NX_EINVAL);
    assert_non_null(strstr(err.detail, "no-transaction"));
}

static void test_bad_files(void **state)
{
    (void)state;
    struct {
        const char *file, *text, *expect;
    } bad[] = {
        {"0001_x.sql", "SELECT 1;\n", "SQL before"},
        {"0001_x.sql", "-- just a comment\n", "no \"-- nexus:up\""},
        {"0001_x.sql", "-- nexus:up\nSELECT 1;\n", "no \"-- nexus:down\""},
        {"0001_x.sql", "-- nexus:down\n-- nexus:up\n", "nexus:down"},
        {"0001_x.sql", "-- nexus:up\n-- nexus:down\n-- nexus:down\n", "nexus:down"},
        {"0001_x.sql", "-- nexus:up\n-- nexus:up\n-- nexus:down\n", "twice"},
        {"0001_x.sql", "CREATE TABLE a();\n-- nexus:up\n-- nexus:down\n", "SQL before"},
        {"0001_x.sql", "-- nexus:upp\n-- nexus:down\n", "unknown marker"},
        {"x_0001.sql", "-- nexus:up\n-- nexus:down\n", "NNNN_name.sql"},
        {"0001.sql", "-- nexus:up\n-- nexus:down\n", "NNNN_name.sql"},
        {"0001_.sql", "-- nexus:up\n-- nexus:down\n", "NNNN_name.sql"},
        {"0001_x.txt", "-- nexus:up\n-- nexus:down\n", "NNNN_name.sql"},
        {"0001_a b.sql", "-- nexus:up\n-- nexus:down\n", "name may only"},
    };
    for (size_t i = 0; i < NX_ARRAY_LEN(bad); i++) {
        nx_mig_t m;
        nx_err_t err;
        int rc = parse(&m, bad[i].file, bad[i].text, &err);
        if (rc != NX_EINVAL || !strstr(err.detail, bad[i].expect))
            fail_msg("case %zu (%s): rc %d, detail \"%s\"", i, bad[i].file, rc, err.detail);
        assert_null(m.up);
        assert_null(m.down);
    }

    /* a NUL byte inside the text */
    nx_mig_t m;
    nx_err_t err = {0};
    const char nul[] = "-- nexus:up\nSELECT\0 1;\n-- nexus:down\n";
    assert_int_equal(nx_mig_parse(&m, "0001_x.sql", nul, sizeof(nul) - 1, &err), NX_EINVAL);
}

static void test_checksum(void **state)
{
    (void)state;
    char hex[NX_SHA256_HEX_LEN + 1];
    assert_int_equal(nx_sha256_hex("abc", 3, hex), NX_OK);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(nx_sha256_hex("", 0, hex), NX_OK);
    assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");

    /* the checksum covers the whole file, markers included */
    const char *text = "-- nexus:up\nSELECT 1;\n-- nexus:down\n";
    nx_mig_t m;
    nx_err_t err;
    assert_int_equal(parse(&m, "0001_x.sql", text, &err), NX_OK);
    assert_int_equal(nx_sha256_hex(text, strlen(text), hex), NX_OK);
    assert_string_equal(m.checksum, hex);
    /* sha256sum of the same bytes */
    assert_string_equal(m.checksum,
                        "50437db2351ceef9ff8387a7d7355a2baeb46a4e8175e1172e77d4fb8cea3528");
    nx_mig_release(&m);

    /* one changed byte, a different checksum */
    const char *edited = "-- nexus:up\nSELECT 2;\n-- nexus:down\n";
    nx_mig_t m2;
    assert_int_equal(parse(&m2, "0001_x.sql", edited, &err), NX_OK);
    assert_string_not_equal(m2.checksum, hex);
    nx_mig_release(&m2);
}

struct collect {
    char out[8][128];
    int n;
};

static int collect(void *ctx, const char *s, size_t n)
{
    struct collect *c = ctx;
    while (n > 0 && (*s == ' ' || *s == '\n'))
        s++, n--;
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\n'))
        n--;
    if (c->n >= 8 || n >= 128)
        return -1;
    memcpy(c->out[c->n], s, n);
    c->out[c->n++][n] = '\0';
    return 0;
}

static void test_split(void **state)
{
    (void)state;
    struct collect c = {0};
    const char *sql = "CREATE INDEX CONCURRENTLY i ON t (id);\n"
                      "-- a comment; with a semicolon\n"
                      "INSERT INTO t VALUES ('a;b', E'c\\';d');\n"
                      "/* block; /* nested; */ still; */\n"
                      "CREATE FUNCTION f() RETURNS int AS $body$ SELECT 1; $body$ LANGUAGE sql;\n"
                      "DO $$ BEGIN PERFORM 1; END $$;\n"
                      "SELECT \"we;ird\" FROM t;\n"
                      "   \n-- trailing comment only\n";
    assert_int_equal(nx_mig_split(sql, collect, &c), 0);
    assert_int_equal(c.n, 5);
    assert_string_equal(c.out[0], "CREATE INDEX CONCURRENTLY i ON t (id)");
    assert_non_null(strstr(c.out[1], "INSERT INTO t VALUES ('a;b', E'c\\';d')"));
    assert_non_null(strstr(c.out[2], "$body$ SELECT 1; $body$ LANGUAGE sql"));
    assert_string_equal(c.out[3], "DO $$ BEGIN PERFORM 1; END $$");
    assert_string_equal(c.out[4], "SELECT \"we;ird\" FROM t");

    struct collect none = {0};
    assert_int_equal(nx_mig_split("  -- nothing\n/* here */ ;\n", collect, &none), 0);
    assert_int_equal(none.n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sections),
        cmocka_unit_test(test_markers_tolerant),
        cmocka_unit_test(test_no_transaction),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_checksum),
        cmocka_unit_test(test_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
