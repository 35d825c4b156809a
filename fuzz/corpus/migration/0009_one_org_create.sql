-- 0009_one_org_create: one place creates an organisation.
--
-- Sign-in (nx_sign_in_new_org, 0003) and the operator's `nexusapi org
-- create` each wrote their own INSERTs of the organisation and its credits
-- row. nx_org_create is now the one that does: the organisation, its
-- credits row, and a GRANT of the opening credits when there are any.
-- nx_sign_in_new_org keeps its name and signature (nx_sign_in calls it)
-- and passes through. Owner only, like the door it serves.

-- nexus:up

CREATE FUNCTION nx_org_create(p_name text, p_domain text, p_credits integer, p_reason text)
    RETURNS public.organisations
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public
    AS $$
DECLARE
    o public.organisations;
    c integer := greatest(coalesce(p_credits, 0), 0);
BEGIN
    INSERT INTO public.organisations (name, domain) VALUES (left(p_name, 255), p_domain)
        RETURNING * INTO o;
    INSERT INTO public.org_credits (organisation_id, balance) VALUES (o.id, c);
    IF c > 0 THEN
        INSERT INTO public.credit_transactions (organisation_id, amount, type, description)
            VALUES (o.id, c, 'GRANT', p_reason);
    END IF;
    RETURN o;
END
$$;
REVOKE ALL ON FUNCTION nx_org_create(text, text, integer, text) FROM PUBLIC;

CREATE OR REPLACE FUNCTION nx_sign_in_new_org(p_name text, p_domain text, p_credits integer)
    RETURNS public.organisations
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, public
    AS $$ SELECT public.nx_org_create(p_name, p_domain, p_credits, 'Sign-up grant') $$;

-- nexus:down

CREATE OR REPLACE FUNCTION nx_sign_in_new_org(p_name text, p_domain text, p_credits integer)
    RETURNS public.organisations
    LANGUAGE plpgsql VOLATILE
    SET search_path = pg_catalog, public
    AS $$
DECLARE
    o public.organisations;
    c integer := greatest(coalesce(p_credits, 0), 0);
BEGIN
    INSERT INTO public.organisations (name, domain) VALUES (left(p_name, 255), p_domain)
        RETURNING * INTO o;
    INSERT INTO public.org_credits (organisation_id, balance) VALUES (o.id, c);
    IF c > 0 THEN
        INSERT INTO public.credit_transactions (organisation_id, amount, type, description)
            VALUES (o.id, c, 'GRANT', 'Sign-up grant');
    END IF;
    RETURN o;
END
$$;
DROP FUNCTION IF EXISTS nx_org_create(text, text, integer, text);
