"""Citus-ready keys (issue 18, item 5; migration 0018): every primary key,
unique constraint and foreign key of a tenant table includes
organisation_id, except the uniqueness that is global by design
(docs/scaling.md). Against a real PostgreSQL: a database with a row in
every table is upgraded through 0018, downgraded and upgraded again, its
keys read from the catalogs and its rows compared at each step; the
statements that look a row up by (organisation_id, id) still use an
index."""

ORG_A = "11111111-1111-4111-8111-111111111111"
ORG_B = "22222222-2222-4222-8222-222222222222"
ADA = "aaaaaaaa-0000-4000-8000-000000000001"   # admin of A
BOB = "bbbbbbbb-0000-4000-8000-000000000002"   # member of B
JOB = "cccccccc-0000-4000-8000-000000000003"
ENDPOINT = "dddddddd-0000-4000-8000-000000000004"
EVENT = "eeeeeeee-0000-4000-8000-000000000005"

# Every table of the schema but the migration engine's own.
TABLES = ["organisations", "users", "org_credits", "credit_transactions", "jobs",
          "rate_limit_hits", "idempotency_keys", "login_links", "used_login_states",
          "webhook_endpoints", "webhook_events", "webhook_deliveries"]

# Uniqueness that stays global by design, and why (docs/scaling.md): sign-in
# finds a Google account, and spends a link, before it knows the organisation.
GLOBAL = {"users_google_id_key", "login_links_token_sha256_key"}

FILL = f"""
INSERT INTO organisations (id, name, domain) VALUES
    ('{ORG_A}', 'Acme', 'acme.test'), ('{ORG_B}', 'Globex', NULL);
INSERT INTO organisations (id, name, domain)
    SELECT ('00000000-0000-4000-8000-' || lpad(g::text, 12, '0'))::uuid, 'Org ' || g,
           'org' || g || '.test' FROM generate_series(1, 60) g;
INSERT INTO users (id, organisation_id, email, name, google_id, role) VALUES
    ('{ADA}', '{ORG_A}', 'ada@acme.test', 'Ada', 'g-ada', 'admin'),
    ('{BOB}', '{ORG_B}', 'bob@globex.test', 'Bob', NULL, 'member');
INSERT INTO users (organisation_id, email, google_id)
    SELECT o.id, 'u' || g || '@' || o.domain, 'g-' || o.domain || '-' || g
    FROM organisations o, generate_series(1, 50) g WHERE o.name LIKE 'Org %';
INSERT INTO org_credits (organisation_id, balance) SELECT id, 100 FROM organisations;
INSERT INTO jobs (id, organisation_id, job_type, credits_charged, input_data, metadata)
    VALUES ('{JOB}', '{ORG_A}', 'summarise', 1, '{{"text": "hello"}}', '{{"b": 1, "a": 2}}');
INSERT INTO credit_transactions (organisation_id, amount, type, description)
    SELECT id, 101, 'GRANT', 'opening' FROM organisations;
INSERT INTO credit_transactions (organisation_id, amount, type, job_id)
    VALUES ('{ORG_A}', 1, 'DEDUCTION', '{JOB}');
INSERT INTO rate_limit_hits (organisation_id, n, until_ms) VALUES ('{ORG_A}', 3, 99999999999999);
INSERT INTO idempotency_keys (organisation_id, key, request_hash, status, body)
    VALUES ('{ORG_A}', 'k1', 'h1', 202, '{{}}');
INSERT INTO login_links (organisation_id, token_sha256, user_id, expires_at)
    VALUES ('{ORG_A}', repeat('a', 64), '{ADA}', now() + interval '1 hour');
INSERT INTO used_login_states (state, expires_at)
    VALUES (repeat('s', 32), now() + interval '1 hour');
INSERT INTO webhook_endpoints (id, organisation_id, url, events, secret)
    VALUES ('{ENDPOINT}', '{ORG_A}', 'https://hooks.example/x', ARRAY['job.completed'],
            decode(repeat('ab', 32), 'hex'));
INSERT INTO webhook_events (id, organisation_id, type, body, traceparent)
    VALUES ('{EVENT}', '{ORG_A}', 'job.completed', '{{"id": "evt"}}', NULL);
INSERT INTO webhook_deliveries (organisation_id, endpoint_id, event_id)
    VALUES ('{ORG_A}', '{ENDPOINT}', '{EVENT}');
"""

# The keys, and what could change with them, as the catalogs say.
KEYS = ("SELECT string_agg(c.relname || ' ' || k.conname || ' ' || pg_get_constraintdef(k.oid) "
        "|| ' ' || k.convalidated, E'\\n' ORDER BY c.relname, k.conname) "
        "FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid "
        "WHERE c.relnamespace = 'public'::regnamespace AND k.contype IN ('p', 'u', 'f')")
INDEXES = ("SELECT string_agg(pg_get_indexdef(x.indexrelid) || ' ' || x.indisvalid, E'\\n' "
           "ORDER BY x.indexrelid::regclass::text) "
           "FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid "
           "WHERE c.relnamespace = 'public'::regnamespace")
FUNCTIONS = ("SELECT md5(string_agg(pg_get_functiondef(p.oid), '' "
             "ORDER BY p.oid::regprocedure::text)) "
             "FROM pg_proc p WHERE p.pronamespace = 'public'::regnamespace")


def ok(r):
    assert r.returncode == 0, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    return r


def columns(db):
    """Each table's columns now: rows() reads these after later migrations
    have added columns of their own (0023 adds one to webhook_deliveries)."""
    return {t: db.sql(f"SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) "
                      f"FROM pg_attribute WHERE attrelid = '{t}'::regclass AND attnum > 0 "
                      "AND NOT attisdropped") for t in TABLES}


def rows(db, cols):
    """Every table's rows (its columns in cols), as text, in a stable order."""
    return {t: db.sql(f"SELECT count(*) || ' ' || md5(coalesce(string_agg(r::text, '|' "
                      f"ORDER BY r::text), '')) FROM (SELECT ROW({cols[t]}) AS r FROM {t}) x")
            for t in TABLES}


def schema(db):
    return "\n=====\n".join(db.sql(q) for q in (KEYS, INDEXES, FUNCTIONS))


def applied(db):
    return db.sql("SELECT string_agg(version, ' ' ORDER BY version) FROM schema_migrations")


def not_citus_ready(db):
    """The keys of tenant tables (those with organisation_id) that would
    not distribute by organisation: a primary key or unique index without
    organisation_id, a foreign key that does not map organisation_id to
    organisation_id (organisations, the reference table, excepted)."""
    out = db.sql("""
        WITH tenant AS (
            SELECT c.oid, a.attnum AS org FROM pg_class c
            JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'organisation_id'
            WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r')
        SELECT i.indexrelid::regclass::text FROM pg_index i JOIN tenant t ON t.oid = i.indrelid
            WHERE i.indisunique AND NOT t.org = ANY (i.indkey::int2[])
        UNION ALL
        SELECT k.conname FROM pg_constraint k JOIN tenant t ON t.oid = k.conrelid
            WHERE k.contype = 'f' AND k.confrelid <> 'organisations'::regclass
            AND NOT EXISTS (
                SELECT 1 FROM unnest(k.conkey, k.confkey) AS m(src, dst)
                JOIN pg_attribute d ON d.attrelid = k.confrelid AND d.attnum = m.dst
                WHERE m.src = t.org AND d.attname = 'organisation_id')
        UNION ALL
        SELECT k.conname FROM pg_constraint k JOIN tenant t ON t.oid = k.conrelid
            WHERE k.contype = 'f' AND k.confrelid = 'organisations'::regclass
            AND k.conkey <> ARRAY[t.org]
        ORDER BY 1""")
    return set(out.split()) - GLOBAL


def cross_organisation_link(db):
    """A link of organisation B naming A's user: 0017 takes it."""
    return db.pg.psql(f"INSERT INTO login_links (organisation_id, token_sha256, user_id, "
                      f"expires_at) VALUES ('{ORG_B}', repeat('x', 64), '{ADA}', now())",
                      dbname=db.name, user=db.name, check=False)


def test_issue18_keys_migration_keeps_every_row_both_ways(fresh_db):
    db = fresh_db
    ok(db.cli("migrate", "upgrade", "0017"))
    db.sql(FILL)
    before = schema(db)
    assert not_citus_ready(db) == {"users_pkey", "credit_transactions_pkey",
                                   "login_links_user_id_fkey"}

    # a link naming another organisation's user stops the upgrade at the
    # validation, with the constraint named; removed, the upgrade runs again
    assert cross_organisation_link(db).returncode == 0
    r = db.cli("migrate", "upgrade", "head")
    assert r.returncode != 0 and "login_links_user_fkey" in r.stderr, r.stderr
    assert applied(db).split()[-1] == "0017"
    db.sql("DELETE FROM login_links WHERE token_sha256 = repeat('x', 64)")
    cols = columns(db)
    data = rows(db, cols)

    ok(db.cli("migrate", "upgrade", "head"))
    assert "0018" in applied(db).split()
    assert rows(db, cols) == data
    assert not_citus_ready(db) == set()
    keys = db.sql(KEYS)
    for line in ("users users_pkey PRIMARY KEY (organisation_id, id) true",
                 "credit_transactions credit_transactions_pkey "
                 "PRIMARY KEY (organisation_id, id) true",
                 "login_links login_links_user_fkey FOREIGN KEY (organisation_id, user_id) "
                 "REFERENCES users(organisation_id, id) ON DELETE CASCADE true",
                 "users users_google_id_key UNIQUE (google_id) true"):
        assert line in keys.splitlines(), keys
    assert "login_links_user_id_fkey" not in keys
    after = schema(db)

    # what the composite key adds: a link names a user of its own organisation
    r = cross_organisation_link(db)
    assert r.returncode != 0 and "login_links_user_fkey" in r.stderr, r.stderr
    # and what it keeps: removing a user still removes the user's links
    db.sql(f"INSERT INTO users (id, organisation_id, email) VALUES "
           f"('{BOB[:-1]}9', '{ORG_A}', 'tmp@acme.test'); "
           f"INSERT INTO login_links (organisation_id, token_sha256, user_id, expires_at) "
           f"VALUES ('{ORG_A}', repeat('t', 64), '{BOB[:-1]}9', now()); "
           f"DELETE FROM users WHERE organisation_id = '{ORG_A}' AND id = '{BOB[:-1]}9'")
    assert db.sql("SELECT count(*) FROM login_links WHERE token_sha256 = repeat('t', 64)") == "0"
    assert rows(db, cols) == data

    ok(db.cli("migrate", "downgrade", "0017"))
    assert applied(db).split()[-1] == "0017"
    assert rows(db, cols) == data
    assert schema(db) == before

    ok(db.cli("migrate", "upgrade", "head"))
    assert rows(db, cols) == data
    assert schema(db) == after


def test_issue18_lookups_by_organisation_and_id_use_the_new_keys(fresh_db):
    """The plans on a filled database: a user, the user check of every
    tenant transaction and a credit transaction are found through the
    composite keys, not by a scan."""
    db = fresh_db
    ok(db.cli("migrate", "upgrade", "head"))
    db.sql(FILL)
    db.sql("INSERT INTO credit_transactions (organisation_id, amount, type) "
           "SELECT o.id, 1, 'GRANT' FROM organisations o, generate_series(1, 50)")
    db.sql("ANALYZE")
    for sql, index in (
            (f"SELECT nx_user_json(u) FROM users u WHERE u.organisation_id = '{ORG_A}' "
             f"AND u.id = '{ADA}'", "users_pkey"),
            (f"UPDATE users u SET role = 'admin' WHERE u.organisation_id = '{ORG_A}' "
             f"AND u.id = '{ADA}'", "users_pkey"),
            (f"SELECT t.id FROM credit_transactions t WHERE t.organisation_id = '{ORG_A}' "
             f"AND t.id = '{ADA}'", "credit_transactions_pkey")):
        p = db.sql(f"SET ROLE nexus_app; SELECT set_config('nexus.org_id', '{ORG_A}', false); "
                   f"EXPLAIN (COSTS OFF) {sql}")
        assert f"Index Scan using {index}" in p or f"Index Only Scan using {index}" in p, p
    # the sign-in door's update of a known account, through its own function
    out = db.sql("SET ROLE nexus_app; SELECT status, user_id FROM "
                 "nx_sign_in('g-ada', 'ada@acme.test', 'Ada L', NULL, 'acme.test', 0)")
    assert out == f"ok|{ADA}"
    assert db.sql(f"SELECT name FROM users WHERE id = '{ADA}'") == "Ada L"
    # and the link door finds the user by organisation and id
    out = db.sql("SET ROLE nexus_app; SELECT status, user_id, organisation_id FROM "
                 "nx_login_link_consume(repeat('a', 64))")
    assert out == f"ok|{ADA}|{ORG_A}"
