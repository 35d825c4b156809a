-- Users: the members of an organisation.
--
-- SECURITY: All queries MUST include organisation_id filter. Failure to do so
-- will result in data leakage between tenants.
--
-- The key is (organisation_id, id), so that the table can be distributed by
-- organisation (Citus) and a row referring to a user names the user's
-- organisation too. google_id stays unique across organisations: sign-in
-- finds a Google account before it knows the organisation (docs/scaling.md).

CREATE TABLE users (
    id              uuid NOT NULL DEFAULT gen_random_uuid(),
    organisation_id uuid NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    email           varchar(255) NOT NULL,
    name            varchar(255),
    google_id       varchar(255) UNIQUE,
    role            varchar(16) NOT NULL DEFAULT 'member' CHECK (role IN ('admin', 'member')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    avatar_url      varchar(500), -- a Google profile picture URL
    PRIMARY KEY (organisation_id, id),
    CONSTRAINT users_organisation_id_email_key UNIQUE (organisation_id, email)
);
CREATE INDEX users_organisation_id_created_at_idx ON users (organisation_id, created_at, id);

-- updated_at moves only when a column changes.
CREATE TRIGGER users_touch BEFORE UPDATE ON users
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION nx_touch_updated_at();

ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE users FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON users TO nexus_app
    USING (organisation_id = NULLIF(current_setting('nexus.org_id', true), '')::uuid)
    WITH CHECK (organisation_id = NULLIF(current_setting('nexus.org_id', true), '')::uuid);
CREATE POLICY operator_access ON users TO CURRENT_USER USING (true) WITH CHECK (true);

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

-- api.md's User shape, built by PostgreSQL.
CREATE FUNCTION nx_user_json(u users) RETURNS json
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT json_build_object('id', u.id, 'organisation_id', u.organisation_id,
                                   'email', u.email, 'name', u.name, 'role', u.role,
                                   'avatar_url', u.avatar_url, 'created_at', nx_ts(u.created_at),
                                   'updated_at', nx_ts(u.updated_at)) $$;

-- users are created by the owner or the sign-in door; the API changes a
-- role and removes a user
GRANT SELECT, UPDATE (role), DELETE ON users TO nexus_app;
GRANT EXECUTE ON FUNCTION nx_tenant_begin(uuid, uuid, text), nx_user_json(users) TO nexus_app;
