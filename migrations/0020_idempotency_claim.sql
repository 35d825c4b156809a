-- 0020_idempotency_claim: an Idempotency-Key checked in the request's own
-- round trip.
--
-- SECURITY: All queries MUST include organisation_id filter. Failure to do so
-- will result in data leakage between tenants.
--
-- nx_idempotency_claim is queued in the request's transaction just before
-- the handler's statements. Like nx_idempotency_begin it takes the key's
-- transaction advisory lock without waiting (NX409 while another request
-- holds it), but it returns only when the key is new, so the statements
-- after it run in the same pipeline. A key that already has a stored answer
-- raises NXKEY, which aborts those statements; the server then reads the
-- answer (replay or mismatch) with nx_idempotency_begin. The common case, a
-- new key, so costs no round trip of its own.

-- nexus:up
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

GRANT EXECUTE ON FUNCTION nx_idempotency_claim(uuid, text) TO nexus_app;

-- nexus:down
DROP FUNCTION IF EXISTS nx_idempotency_claim(uuid, text);
