-- Organisations: the tenants.
--
-- Every tenant table has row-level security enabled and forced (FORCE binds
-- the owner too): nexus_app sees only the organisation in nexus.org_id
-- (NULLIF: a setting reset at transaction end reads back as '', not NULL),
-- no tenant set means zero rows; the owner sees everything through
-- operator_access.

CREATE TABLE organisations (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        varchar(255) NOT NULL,
    domain      varchar(255) UNIQUE CHECK (domain = lower(domain)),
    auto_join   boolean NOT NULL DEFAULT true,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- updated_at moves only when a column changes.
CREATE TRIGGER organisations_touch BEFORE UPDATE ON organisations
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION nx_touch_updated_at();

ALTER TABLE organisations ENABLE ROW LEVEL SECURITY;
ALTER TABLE organisations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON organisations TO nexus_app
    USING (id = NULLIF(current_setting('nexus.org_id', true), '')::uuid)
    WITH CHECK (id = NULLIF(current_setting('nexus.org_id', true), '')::uuid);
CREATE POLICY operator_access ON organisations TO CURRENT_USER USING (true) WITH CHECK (true);

-- api.md's Organisation shape, built by PostgreSQL.
CREATE FUNCTION nx_org_json(o organisations) RETURNS json
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT json_build_object('id', o.id, 'name', o.name, 'domain', o.domain,
                                   'auto_join', o.auto_join, 'created_at', nx_ts(o.created_at),
                                   'updated_at', nx_ts(o.updated_at)) $$;

-- the API changes an organisation's name and auto_join, nothing else
GRANT SELECT, UPDATE (name, auto_join) ON organisations TO nexus_app;
GRANT EXECUTE ON FUNCTION nx_org_json(organisations) TO nexus_app;
