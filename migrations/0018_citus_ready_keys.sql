-- 0018_citus_ready_keys: every key of a tenant table leads with organisation_id.
--
-- So that the tenant tables can be distributed by organisation (Citus,
-- docs/scaling.md): users and credit_transactions take the primary key
-- (organisation_id, id), and login_links refers to its user by
-- (organisation_id, user_id), so a link can only name a user of its own
-- organisation. The sign-in doors that update or read a user by id name its
-- organisation too, so they keep an index. What stays global by design
-- (users.google_id, organisations.domain, login_links.token_sha256) and
-- why: docs/scaling.md.
--
-- Written from schema/ by `migrate revision --autogenerate`, then by hand
-- into one file without a transaction, so that no step holds a lock while
-- it reads a table: the new keys' indexes are built CONCURRENTLY, the keys
-- are swapped in one DO statement (one transaction, a short ACCESS
-- EXCLUSIVE lock, no scan: the columns are NOT NULL already and the
-- indexes exist), and the foreign key is validated last under a lock that
-- lets writes go on. The swap gives up after lock_timeout rather than queue
-- every request behind it. Every step can run again: should the file stop
-- halfway, run the upgrade again (drop an index a failed build left
-- INVALID first). The down section does the same in reverse.

-- nexus:no-transaction
-- nexus:up

CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS users_organisation_id_id_key
    ON public.users USING btree (organisation_id, id);

CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS credit_transactions_organisation_id_id_key
    ON public.credit_transactions USING btree (organisation_id, id);

CREATE INDEX CONCURRENTLY IF NOT EXISTS login_links_organisation_id_user_id_idx
    ON public.login_links USING btree (organisation_id, user_id);

-- The doors name the user's organisation: served by either key.
CREATE OR REPLACE FUNCTION public.nx_sign_in(p_google_id text, p_email text, p_name text, p_avatar_url text, p_hd text, p_signup_credits integer)
 RETURNS TABLE(status text, user_id uuid, organisation_id uuid, role text, body text)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public'
AS $function$
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
$function$;

CREATE OR REPLACE FUNCTION public.nx_login_link_consume(p_sha256 text)
 RETURNS TABLE(status text, user_id uuid, organisation_id uuid, role text)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public'
AS $function$
#variable_conflict use_column
DECLARE
    l public.login_links;
BEGIN
    DELETE FROM public.login_links
        WHERE coalesce(used_at, expires_at) < now() - interval '1 day';
    UPDATE public.login_links SET used_at = now()
        WHERE token_sha256 = p_sha256 AND used_at IS NULL AND expires_at > now()
        RETURNING * INTO l;
    IF FOUND THEN
        RETURN QUERY SELECT 'ok'::text, u.id, u.organisation_id, u.role::text
            FROM public.users u
            WHERE u.organisation_id = l.organisation_id AND u.id = l.user_id;
        RETURN;
    END IF;
    SELECT * INTO l FROM public.login_links WHERE token_sha256 = p_sha256;
    RETURN QUERY SELECT CASE WHEN NOT FOUND THEN 'unknown'
                             WHEN l.used_at IS NOT NULL THEN 'used'
                             ELSE 'expired' END, NULL::uuid, NULL::uuid, NULL::text;
END
$function$;

DO $$
BEGIN
    PERFORM pg_catalog.set_config('lock_timeout', '10s', true);
    ALTER TABLE login_links DROP CONSTRAINT IF EXISTS login_links_user_id_fkey,
        DROP CONSTRAINT IF EXISTS login_links_user_fkey;
    ALTER TABLE users DROP CONSTRAINT users_pkey,
        ADD CONSTRAINT users_pkey PRIMARY KEY USING INDEX users_organisation_id_id_key;
    ALTER TABLE credit_transactions DROP CONSTRAINT credit_transactions_pkey,
        ADD CONSTRAINT credit_transactions_pkey PRIMARY KEY
            USING INDEX credit_transactions_organisation_id_id_key;
    ALTER TABLE login_links ADD CONSTRAINT login_links_user_fkey
        FOREIGN KEY (organisation_id, user_id) REFERENCES users (organisation_id, id)
        ON DELETE CASCADE NOT VALID;
    DROP INDEX IF EXISTS login_links_user_id_idx;
END
$$;

-- fails, and the upgrade with it, if a link names a user of another
-- organisation: delete that link and run the upgrade again
ALTER TABLE login_links VALIDATE CONSTRAINT login_links_user_fkey;

-- nexus:down

CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS users_id_key ON public.users USING btree (id);

CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS credit_transactions_id_key
    ON public.credit_transactions USING btree (id);

CREATE INDEX CONCURRENTLY IF NOT EXISTS login_links_user_id_idx
    ON public.login_links USING btree (user_id);

DO $$
BEGIN
    PERFORM pg_catalog.set_config('lock_timeout', '10s', true);
    ALTER TABLE login_links DROP CONSTRAINT IF EXISTS login_links_user_fkey,
        DROP CONSTRAINT IF EXISTS login_links_user_id_fkey;
    ALTER TABLE users DROP CONSTRAINT users_pkey,
        ADD CONSTRAINT users_pkey PRIMARY KEY USING INDEX users_id_key;
    ALTER TABLE credit_transactions DROP CONSTRAINT credit_transactions_pkey,
        ADD CONSTRAINT credit_transactions_pkey PRIMARY KEY USING INDEX credit_transactions_id_key;
    ALTER TABLE login_links ADD CONSTRAINT login_links_user_id_fkey
        FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE NOT VALID;
END
$$;

ALTER TABLE login_links VALIDATE CONSTRAINT login_links_user_id_fkey;

CREATE OR REPLACE FUNCTION public.nx_sign_in(p_google_id text, p_email text, p_name text, p_avatar_url text, p_hd text, p_signup_credits integer)
 RETURNS TABLE(status text, user_id uuid, organisation_id uuid, role text, body text)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public'
AS $function$
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
            WHERE id = u.id RETURNING * INTO u;
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
                WHERE id = u.id RETURNING * INTO u;
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
$function$;

CREATE OR REPLACE FUNCTION public.nx_login_link_consume(p_sha256 text)
 RETURNS TABLE(status text, user_id uuid, organisation_id uuid, role text)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'public'
AS $function$
#variable_conflict use_column
DECLARE
    l public.login_links;
BEGIN
    DELETE FROM public.login_links
        WHERE coalesce(used_at, expires_at) < now() - interval '1 day';
    UPDATE public.login_links SET used_at = now()
        WHERE token_sha256 = p_sha256 AND used_at IS NULL AND expires_at > now()
        RETURNING * INTO l;
    IF FOUND THEN
        RETURN QUERY SELECT 'ok'::text, u.id, u.organisation_id, u.role::text
            FROM public.users u WHERE u.id = l.user_id;
        RETURN;
    END IF;
    SELECT * INTO l FROM public.login_links WHERE token_sha256 = p_sha256;
    RETURN QUERY SELECT CASE WHEN NOT FOUND THEN 'unknown'
                             WHEN l.used_at IS NOT NULL THEN 'used'
                             ELSE 'expired' END, NULL::uuid, NULL::uuid, NULL::text;
END
$function$;

DROP INDEX CONCURRENTLY IF EXISTS login_links_organisation_id_user_id_idx;
