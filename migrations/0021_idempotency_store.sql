-- 0021_idempotency_store: an answer stored after its request's transaction.
--
-- SECURITY: All queries MUST include organisation_id filter. Failure to do so
-- will result in data leakage between tenants.
--
-- A job submission stores its 202 with its Idempotency-Key inside its own
-- statement, so claim, submission, answer and COMMIT go in one round trip.
-- When the balance was short that statement changed nothing and stored
-- nothing; its 402 is stored afterwards with nx_idempotency_store, in a
-- transaction of its own. Between the two, another request with the key
-- may have run (the claim's lock ended with the first transaction), so this
-- waits for the key's lock and stores only when no answer is there: it
-- returns 'stored', or the answer that is there as nx_idempotency_begin
-- does ('replay' with it, or 'mismatch'), which the client then gets, so
-- that every answer given for a key is the stored one.

-- nexus:up
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

GRANT EXECUTE ON FUNCTION
    nx_idempotency_store(uuid, text, text, integer, text, text, text) TO nexus_app;

-- nexus:down
DROP FUNCTION IF EXISTS nx_idempotency_store(uuid, text, text, integer, text, text, text);
