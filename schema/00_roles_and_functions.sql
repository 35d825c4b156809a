-- The declared schema: what the database looks like at the newest migration.
--
-- This directory is the one place to edit the schema. After an edit,
-- `nexusapi migrate revision --autogenerate -m "what changed"` writes the
-- migration that takes a database from the previous state to this one, and
-- `nexusapi migrate check` fails while the two disagree. The files are
-- applied in name order to an empty database by its owner.
--
-- Roles are cluster-wide and shared by every database of the cluster, so
-- they are created when missing, never dropped, and left out of the
-- comparison; the grants to them are compared.

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
    -- The job workers: nexus_app's rights plus their own policy on jobs.
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'nexus_worker') THEN
        BEGIN
            CREATE ROLE nexus_worker NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;
        END;
    END IF;
    IF NOT pg_catalog.pg_has_role('nexus_worker', 'nexus_app', 'MEMBER') THEN
        GRANT nexus_app TO nexus_worker;
    END IF;
    IF NOT pg_catalog.pg_has_role(current_user, 'nexus_worker', 'MEMBER') THEN
        EXECUTE format('GRANT nexus_worker TO %I', current_user);
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

GRANT EXECUTE ON FUNCTION nx_ts(timestamptz) TO nexus_app;
