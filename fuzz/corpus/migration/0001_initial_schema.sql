-- 0001_initial_schema: organisations, users, credits; roles and row-level security.
--
-- SECURITY: All queries MUST include organisation_id filter. Failure to do so
-- will result in data leakage between tenants.
--
-- The owner (whoever runs migrations) owns every table. The runtime role
-- nexus_app has no BYPASSRLS; every tenant table has RLS enabled and forced,
-- with the policy tenant_isolation for nexus_app and operator_access for the
-- owner (FORCE binds the owner too). Roles are cluster-wide and shared by
-- databases, so they are created when missing and never dropped.

-- nexus:up

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'nexus_app') THEN
        BEGIN
            CREATE ROLE nexus_app NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL; -- created concurrently by a migrator of another database
        END;
    END IF;
    IF NOT pg_catalog.pg_has_role(current_user, 'nexus_app', 'MEMBER') THEN
        EXECUTE format('GRANT nexus_app TO %I', current_user);
    END IF;
END
$$;

-- RFC 3339 in UTC with a Z suffix, e.g. 2026-11-24T01:50:00.123456Z.
CREATE FUNCTION nx_ts(ts timestamptz) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') $$;

-- Keeps updated_at current on every UPDATE.
CREATE FUNCTION nx_touch_updated_at() RETURNS trigger
    LANGUAGE plpgsql
    AS $$ BEGIN NEW.updated_at := now(); RETURN NEW; END $$;

CREATE TABLE organisations (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        varchar(255) NOT NULL,
    domain      varchar(255) UNIQUE CHECK (domain = lower(domain)),
    auto_join   boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organisation_id uuid NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    email           varchar(255) NOT NULL,
    name            varchar(255),
    google_id       varchar(255) UNIQUE,
    role            varchar(16) NOT NULL DEFAULT 'member' CHECK (role IN ('admin', 'member')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_organisation_id_email_key UNIQUE (organisation_id, email)
);
CREATE INDEX users_organisation_id_created_at_idx ON users (organisation_id, created_at, id);

CREATE TABLE org_credits (
    organisation_id uuid PRIMARY KEY REFERENCES organisations (id) ON DELETE CASCADE,
    balance         integer NOT NULL DEFAULT 0 CHECK (balance >= 0),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE credit_transactions (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organisation_id uuid NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    amount          integer NOT NULL CHECK (amount > 0),
    type            varchar(16) NOT NULL CHECK (type IN ('GRANT', 'DEDUCTION', 'REFUND')),
    description     text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX credit_transactions_organisation_id_created_at_idx
    ON credit_transactions (organisation_id, created_at DESC, id DESC);

CREATE TRIGGER organisations_touch BEFORE UPDATE ON organisations
    FOR EACH ROW EXECUTE FUNCTION nx_touch_updated_at();
CREATE TRIGGER users_touch BEFORE UPDATE ON users
    FOR EACH ROW EXECUTE FUNCTION nx_touch_updated_at();
CREATE TRIGGER org_credits_touch BEFORE UPDATE ON org_credits
    FOR EACH ROW EXECUTE FUNCTION nx_touch_updated_at();

-- Row-level security: nexus_app sees only the organisation in nexus.org_id
-- (NULLIF: a setting reset at transaction end reads back as '', not NULL);
-- no tenant set means zero rows, not an error. The owner sees everything.
ALTER TABLE organisations ENABLE ROW LEVEL SECURITY;
ALTER TABLE organisations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON organisations TO nexus_app
    USING (id = NULLIF(current_setting('nexus.org_id', true), '')::uuid)
    WITH CHECK (id = NULLIF(current_setting('nexus.org_id', true), '')::uuid);

DO $$
DECLARE
    t text;
BEGIN
    FOREACH t IN ARRAY ARRAY['users', 'org_credits', 'credit_transactions'] LOOP
        EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
        EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
        EXECUTE format('CREATE POLICY tenant_isolation ON %I TO nexus_app '
                       'USING (organisation_id = NULLIF(current_setting(''nexus.org_id'', true), '''')::uuid) '
                       'WITH CHECK (organisation_id = NULLIF(current_setting(''nexus.org_id'', true), '''')::uuid)', t);
    END LOOP;
    FOREACH t IN ARRAY ARRAY['organisations', 'users', 'org_credits', 'credit_transactions'] LOOP
        EXECUTE format('CREATE POLICY operator_access ON %I TO %I USING (true) WITH CHECK (true)',
                       t, current_user);
    END LOOP;
END
$$;

-- The first statement of every tenant transaction (invoker rights, so RLS
-- applies): sets the tenant for this transaction only, then, unless need is
-- NULL or 'none', checks that the user belongs to the organisation (SQLSTATE
-- 28000 -> 401) and, for need = 'admin', is an admin (42501 -> 403).
-- Returns the user's role, or NULL when no check was asked for.
CREATE FUNCTION nx_tenant_begin(org uuid, usr uuid, need text) RETURNS text
    LANGUAGE plpgsql VOLATILE
    AS $$
DECLARE
    r text;
BEGIN
    PERFORM pg_catalog.set_config('nexus.org_id', coalesce(org::text, ''), true);
    IF usr IS NULL OR need IS NULL OR need = 'none' THEN
        RETURN NULL;
    END IF;
    SELECT u.role INTO r FROM public.users u
        WHERE u.organisation_id = org AND u.id = usr;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'user is not a member of the organisation' USING ERRCODE = '28000';
    END IF;
    IF need = 'admin' AND r IS DISTINCT FROM 'admin' THEN
        RAISE EXCEPTION 'admin role required' USING ERRCODE = '42501';
    END IF;
    RETURN r;
END
$$;

-- api.md's User and Organisation shapes, built by PostgreSQL.
-- (0002 redefines nx_user_json with the real avatar_url.)
CREATE FUNCTION nx_user_json(u users) RETURNS json
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT json_build_object('id', u.id, 'organisation_id', u.organisation_id,
                                   'email', u.email, 'name', u.name, 'role', u.role,
                                   'avatar_url', NULL, 'created_at', nx_ts(u.created_at),
                                   'updated_at', nx_ts(u.updated_at)) $$;

CREATE FUNCTION nx_org_json(o organisations) RETURNS json
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT json_build_object('id', o.id, 'name', o.name, 'domain', o.domain,
                                   'auto_join', o.auto_join, 'created_at', nx_ts(o.created_at),
                                   'updated_at', nx_ts(o.updated_at)) $$;

GRANT SELECT, UPDATE ON organisations TO nexus_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON users TO nexus_app;
GRANT SELECT, INSERT, UPDATE ON org_credits TO nexus_app;
GRANT SELECT, INSERT ON credit_transactions TO nexus_app;
GRANT EXECUTE ON FUNCTION nx_ts(timestamptz), nx_tenant_begin(uuid, uuid, text),
    nx_user_json(users), nx_org_json(organisations) TO nexus_app;

-- nexus:down

DROP FUNCTION IF EXISTS nx_org_json(organisations);
DROP FUNCTION IF EXISTS nx_user_json(users);
DROP FUNCTION IF EXISTS nx_tenant_begin(uuid, uuid, text);
DROP TABLE IF EXISTS credit_transactions;
DROP TABLE IF EXISTS org_credits;
DROP TABLE IF EXISTS users;
DROP TABLE IF EXISTS organisations;
DROP FUNCTION IF EXISTS nx_touch_updated_at();
DROP FUNCTION IF EXISTS nx_ts(timestamptz);
-- nexus_app is cluster-wide and may serve other databases: never dropped.
