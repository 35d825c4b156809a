-- Rate limits and idempotency keys (src/api/ratelimit.c, src/api/idempotency.c).
--
-- SECURITY: All queries MUST include organisation_id filter. Failure to do so
-- will result in data leakage between tenants.
--
-- rate_limit_hits is each organisation's sliding window: n admitted
-- requests that count until until_ms (epoch milliseconds). UNLOGGED: a read
-- request that records a hit waits for no WAL flush (a crash of PostgreSQL
-- empties the windows). nx_rate_take serialises an organisation's takers on
-- a transaction advisory lock and raises NX429 (retry-after milliseconds as
-- its DETAIL) when the window is full.
--
-- idempotency_keys keeps the first answer to a POST with an Idempotency-Key,
-- stored in the same transaction as its effects; nx_idempotency_begin takes
-- the key's lock without waiting (NX409 while in use).


CREATE UNLOGGED TABLE rate_limit_hits (
    organisation_id uuid NOT NULL,
    id              bigint GENERATED ALWAYS AS IDENTITY,
    n               integer NOT NULL CHECK (n > 0),
    until_ms        bigint NOT NULL,
    PRIMARY KEY (organisation_id, id)
) WITH (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 100,
    autovacuum_vacuum_cost_delay = 0
);
ALTER TABLE rate_limit_hits ENABLE ROW LEVEL SECURITY;
ALTER TABLE rate_limit_hits FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON rate_limit_hits TO nexus_app
    USING (organisation_id = NULLIF(current_setting('nexus.org_id', true), '')::uuid)
    WITH CHECK (organisation_id = NULLIF(current_setting('nexus.org_id', true), '')::uuid);
CREATE POLICY operator_access ON rate_limit_hits TO CURRENT_USER USING (true) WITH CHECK (true);
GRANT SELECT, INSERT, UPDATE (n), DELETE ON rate_limit_hits TO nexus_app;

-- Takes up to `want` hits for org out of `lim` per `window_ms`, counting
-- until now + hold_ms + window_ms; gives back `back_n` of reservation
-- `back_id` first (slots reserved earlier and not used). Returns what it
-- granted (>= 1), the reservation's id, what the window has left, and the
-- milliseconds until its next slot frees. Raises NX429 when none is free.
CREATE FUNCTION nx_rate_take(org uuid, lim integer, window_ms bigint, want integer,
                             hold_ms bigint, back_id bigint, back_n integer,
                             OUT granted integer, OUT reservation bigint,
                             OUT remaining integer, OUT reset_ms bigint)
    LANGUAGE plpgsql VOLATILE
    AS $$
DECLARE
    now_ms bigint;
    used integer;
    acc integer := 0;
    h record;
BEGIN
    PERFORM pg_catalog.pg_advisory_xact_lock(hashtextextended('nexus.rate:' || org::text, 0));
    now_ms := (extract(epoch FROM clock_timestamp()) * 1000)::bigint;
    IF back_id IS NOT NULL AND back_n > 0 THEN
        UPDATE public.rate_limit_hits r SET n = r.n - back_n
            WHERE r.organisation_id = org AND r.id = back_id AND r.n > back_n;
        IF NOT FOUND THEN
            DELETE FROM public.rate_limit_hits r
                WHERE r.organisation_id = org AND r.id = back_id AND r.n <= back_n;
        END IF;
    END IF;
    DELETE FROM public.rate_limit_hits r WHERE r.organisation_id = org AND r.until_ms <= now_ms;
    SELECT coalesce(sum(r.n), 0)::integer INTO used
        FROM public.rate_limit_hits r WHERE r.organisation_id = org;
    IF used >= lim THEN
        -- the first moment enough hits have expired for one more
        FOR h IN SELECT r.n, r.until_ms FROM public.rate_limit_hits r
                 WHERE r.organisation_id = org ORDER BY r.until_ms LOOP
            acc := acc + h.n;
            EXIT WHEN used - acc < lim;
        END LOOP;
        RAISE EXCEPTION 'rate limit reached' USING ERRCODE = 'NX429',
            DETAIL = greatest(coalesce(h.until_ms, now_ms) - now_ms, 1)::text;
    END IF;
    granted := least(want, lim - used);
    INSERT INTO public.rate_limit_hits (organisation_id, n, until_ms)
        VALUES (org, granted, now_ms + hold_ms + window_ms) RETURNING id INTO reservation;
    remaining := lim - used - granted;
    SELECT min(r.until_ms) - now_ms INTO reset_ms
        FROM public.rate_limit_hits r WHERE r.organisation_id = org;
END
$$;

-- An admin's view of the window: hits counted now and when the next frees.
CREATE FUNCTION nx_rate_use(org uuid, OUT used integer, OUT reset_ms bigint)
    LANGUAGE sql STABLE
    AS $$ SELECT coalesce(sum(r.n), 0)::integer,
                 min(r.until_ms) - (extract(epoch FROM clock_timestamp()) * 1000)::bigint
          FROM public.rate_limit_hits r
          WHERE r.organisation_id = org
            AND r.until_ms > (extract(epoch FROM clock_timestamp()) * 1000)::bigint $$;

CREATE TABLE idempotency_keys (
    organisation_id uuid NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    key             text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_hash    text NOT NULL,
    status          integer NOT NULL,
    content_type    text,
    location        text,
    body            text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organisation_id, key)
);
-- the workers' prune, oldest first, across organisations
CREATE INDEX idempotency_keys_created_at_idx ON idempotency_keys (created_at);
ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE idempotency_keys FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation_read ON idempotency_keys FOR SELECT TO nexus_app
    USING (organisation_id = NULLIF(current_setting('nexus.org_id', true), '')::uuid);
CREATE POLICY tenant_isolation_insert ON idempotency_keys FOR INSERT TO nexus_app
    WITH CHECK (organisation_id = NULLIF(current_setting('nexus.org_id', true), '')::uuid);
-- the workers prune expired keys of every organisation, and do nothing else
CREATE POLICY worker_read ON idempotency_keys FOR SELECT TO nexus_worker USING (true);
CREATE POLICY worker_prune ON idempotency_keys FOR DELETE TO nexus_worker USING (true);
CREATE POLICY operator_access ON idempotency_keys TO CURRENT_USER USING (true) WITH CHECK (true);
GRANT SELECT, INSERT ON idempotency_keys TO nexus_app;
GRANT SELECT, DELETE ON idempotency_keys TO nexus_worker;

-- The key's state for this request: 'new', 'replay' (with the stored
-- answer) or 'mismatch' (the key was used for another request). Raises
-- NX409 when a request with the key is still in progress.
CREATE FUNCTION nx_idempotency_begin(org uuid, p_key text, p_hash text,
                                     OUT state text, OUT status integer,
                                     OUT content_type text, OUT location text, OUT body text)
    LANGUAGE plpgsql VOLATILE
    AS $$
DECLARE
    k public.idempotency_keys;
BEGIN
    IF NOT pg_catalog.pg_try_advisory_xact_lock(
            hashtextextended('nexus.idempotency:' || org::text || ':' || p_key, 0)) THEN
        RAISE EXCEPTION 'idempotency key in use' USING ERRCODE = 'NX409';
    END IF;
    SELECT * INTO k FROM public.idempotency_keys i
        WHERE i.organisation_id = org AND i.key = p_key;
    IF NOT FOUND THEN
        state := 'new';
    ELSIF k.request_hash <> p_hash THEN
        state := 'mismatch';
    ELSE
        state := 'replay';
        status := k.status;
        content_type := k.content_type;
        location := k.location;
        body := k.body;
    END IF;
END
$$;

-- Returns only when the key is new, so that the request's statements queued
-- after it run in the same round trip; NX409 while the key is in use, NXKEY
-- when it already has an answer (read it with nx_idempotency_begin).
CREATE FUNCTION nx_idempotency_claim(org uuid, p_key text) RETURNS void
    LANGUAGE plpgsql VOLATILE
    AS $$
BEGIN
    IF NOT pg_catalog.pg_try_advisory_xact_lock(
            hashtextextended('nexus.idempotency:' || org::text || ':' || p_key, 0)) THEN
        RAISE EXCEPTION 'idempotency key in use' USING ERRCODE = 'NX409';
    END IF;
    IF EXISTS (SELECT 1 FROM public.idempotency_keys i
               WHERE i.organisation_id = org AND i.key = p_key) THEN
        RAISE EXCEPTION 'idempotency key has an answer' USING ERRCODE = 'NXKEY';
    END IF;
END
$$;

-- Stores an answer after its request's transaction (a job submission's 402:
-- the statement that stores its 202 stored nothing): waits for the key's
-- lock, stores unless an answer is there; 'stored', or that answer as
-- nx_idempotency_begin reads it ('replay', 'mismatch').
CREATE FUNCTION nx_idempotency_store(org uuid, p_key text, p_hash text, p_status integer,
                                     p_type text, p_location text, p_body text,
                                     OUT state text, OUT status integer,
                                     OUT content_type text, OUT location text, OUT body text)
    LANGUAGE plpgsql VOLATILE
    AS $$
BEGIN
    -- wait for a request that holds the key; nx_idempotency_begin then takes
    -- the same lock again (held already) and reads what is stored
    PERFORM pg_catalog.pg_advisory_xact_lock(
        hashtextextended('nexus.idempotency:' || org::text || ':' || p_key, 0));
    SELECT b.state, b.status, b.content_type, b.location, b.body
        INTO state, status, content_type, location, body
        FROM public.nx_idempotency_begin(org, p_key, p_hash) b;
    IF state = 'new' THEN
        INSERT INTO public.idempotency_keys (organisation_id, key, request_hash, status,
                                             content_type, location, body)
            VALUES (org, p_key, p_hash, p_status, p_type, p_location, p_body);
        state := 'stored';
    END IF;
END
$$;

GRANT EXECUTE ON FUNCTION nx_rate_take(uuid, integer, bigint, integer, bigint, bigint, integer),
    nx_rate_use(uuid),
    nx_idempotency_begin(uuid, text, text),
    nx_idempotency_claim(uuid, text),
    nx_idempotency_store(uuid, text, text, integer, text, text, text) TO nexus_app;
