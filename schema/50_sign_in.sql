-- Google sign-in: the narrow cross-tenant doors.
--
-- The runtime role (nexus_app) cannot see across organisations, yet sign-in
-- must find a user by google_id, link an operator-created user by email, and
-- find or create the organisation of a Workspace domain. These SECURITY
-- DEFINER functions (owned by the owner, fixed search_path, EXECUTE for
-- nexus_app only) do exactly that and nothing more.
--
-- Races: sign-ins of one Google account are serialised by a transaction
-- advisory lock on its google_id, first sign-ins of one domain by a lock on
-- the domain (the UNIQUE constraints on google_id and domain back this up).

-- Sign-in attempts already used (the state of the signed login cookie), so
-- each is usable once on any node. Rows expire with the cookie.
CREATE TABLE used_login_states (
    state      text PRIMARY KEY,
    expires_at timestamptz NOT NULL
);
CREATE INDEX used_login_states_expires_at_idx ON used_login_states (expires_at);
ALTER TABLE used_login_states ENABLE ROW LEVEL SECURITY; -- no policy: nexus_app sees nothing
REVOKE ALL ON used_login_states FROM PUBLIC;

-- True the first time a state is presented, false on every replay.
CREATE FUNCTION nx_login_state_consume(p_state text, p_expires timestamptz) RETURNS boolean
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
BEGIN
    IF p_state IS NULL OR length(p_state) NOT BETWEEN 16 AND 128 THEN
        RETURN false;
    END IF;
    DELETE FROM public.used_login_states WHERE expires_at < now() - interval '5 minutes';
    INSERT INTO public.used_login_states (state, expires_at)
        VALUES (p_state, greatest(p_expires, now())) ON CONFLICT (state) DO NOTHING;
    RETURN FOUND;
END
$$;

-- The one place that creates an organisation: its credits row, and a GRANT
-- of the opening credits when there are any (sign-in and `org create`;
-- owner only).
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

-- A new organisation of a sign-in, with the sign-up grant (called by
-- nx_sign_in only; not executable by nexus_app).
CREATE FUNCTION nx_sign_in_new_org(p_name text, p_domain text, p_credits integer)
    RETURNS public.organisations
    LANGUAGE sql VOLATILE
    SET search_path = pg_catalog, public
    AS $$ SELECT public.nx_org_create(p_name, p_domain, p_credits, 'Sign-up grant') $$;

-- Sign-in rules 1-3 of api.md for a verified Google identity. status is
-- 'ok' (with the user, organisation and the User/Organisation JSON as
-- {"user": ..., "organisation": ...}) or 'auto_join_off' (the domain's
-- organisation refuses domain sign-ups; nothing was written).
CREATE FUNCTION nx_sign_in(p_google_id text, p_email text, p_name text, p_avatar_url text,
                           p_hd text, p_signup_credits integer)
    RETURNS TABLE (status text, user_id uuid, organisation_id uuid, role text, body text)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
#variable_conflict use_column
DECLARE
    u public.users;
    o public.organisations;
    v_name text := left(nullif(btrim(p_name), ''), 255);
    v_avatar text := left(nullif(btrim(p_avatar_url), ''), 500);
    v_domain text := lower(nullif(btrim(p_hd), ''));
BEGIN
    IF coalesce(p_google_id, '') = '' OR coalesce(p_email, '') = '' THEN
        RAISE EXCEPTION 'google_id and email are required' USING ERRCODE = '22023';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtextextended('nexus.sign_in.sub:' || p_google_id, 0));

    -- Rule 1: a known Google account; name and avatar refreshed.
    SELECT * INTO u FROM public.users WHERE google_id = p_google_id;
    IF FOUND THEN
        UPDATE public.users SET name = coalesce(v_name, users.name), avatar_url = v_avatar
            WHERE organisation_id = u.organisation_id AND id = u.id RETURNING * INTO u;
    ELSE
        -- Rule 1: an operator-created user with this verified email, not yet
        -- linked (preferring the one in the token's Workspace domain).
        SELECT x.* INTO u FROM public.users x
            LEFT JOIN public.organisations xo ON xo.id = x.organisation_id
            WHERE lower(x.email) = lower(p_email) AND x.google_id IS NULL
            ORDER BY (xo.domain IS NOT DISTINCT FROM v_domain) DESC, x.created_at, x.id
            LIMIT 1 FOR UPDATE OF x;
        IF FOUND THEN
            UPDATE public.users SET google_id = p_google_id,
                                    name = coalesce(v_name, users.name), avatar_url = v_avatar
                WHERE organisation_id = u.organisation_id AND id = u.id
                RETURNING * INTO u;
        ELSIF v_domain IS NOT NULL THEN
            -- Rules 2 and 4: the domain's organisation, created once.
            PERFORM pg_advisory_xact_lock(hashtextextended('nexus.sign_in.domain:' || v_domain, 0));
            SELECT * INTO o FROM public.organisations WHERE domain = v_domain;
            IF FOUND THEN
                IF NOT o.auto_join THEN
                    RETURN QUERY SELECT 'auto_join_off'::text, NULL::uuid, o.id, NULL::text,
                                        NULL::text;
                    RETURN;
                END IF;
                INSERT INTO public.users (organisation_id, email, name, google_id, role, avatar_url)
                    VALUES (o.id, p_email, v_name, p_google_id, 'member', v_avatar)
                    RETURNING * INTO u;
            ELSE
                o := public.nx_sign_in_new_org(v_domain, v_domain, p_signup_credits);
                INSERT INTO public.users (organisation_id, email, name, google_id, role, avatar_url)
                    VALUES (o.id, p_email, v_name, p_google_id, 'admin', v_avatar)
                    RETURNING * INTO u;
            END IF;
        ELSE
            -- Rule 3: no hd - a personal organisation, never a shared one.
            o := public.nx_sign_in_new_org(coalesce(v_name, p_email), NULL, p_signup_credits);
            INSERT INTO public.users (organisation_id, email, name, google_id, role, avatar_url)
                VALUES (o.id, p_email, v_name, p_google_id, 'admin', v_avatar)
                RETURNING * INTO u;
        END IF;
    END IF;

    SELECT * INTO o FROM public.organisations WHERE id = u.organisation_id;
    RETURN QUERY SELECT 'ok'::text, u.id, o.id, u.role::text,
        json_build_object('user', public.nx_user_json(u),
                          'organisation', public.nx_org_json(o))::text;
END
$$;

REVOKE ALL ON FUNCTION nx_login_state_consume(text, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION nx_sign_in_new_org(text, text, integer) FROM PUBLIC;
REVOKE ALL ON FUNCTION nx_sign_in(text, text, text, text, text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION nx_login_state_consume(text, timestamptz) TO nexus_app;
GRANT EXECUTE ON FUNCTION nx_sign_in(text, text, text, text, text, integer) TO nexus_app;

