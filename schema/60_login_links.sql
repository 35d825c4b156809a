-- One-time sign-in links (`nexusapi login-link EMAIL`).
--
-- A link carries a random token; only its SHA-256 is stored, so a copy of
-- the table signs no one in. The operator's verb creates a row as the owner
-- (operator_access); the runtime role never sees the table: it spends a
-- link through nx_login_link_consume, a SECURITY DEFINER door that marks
-- the link used in the same statement that reads it, so a link signs in at
-- most once whatever the concurrency, and never after it expires.

CREATE TABLE login_links (
    organisation_id uuid NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    token_sha256    char(64) NOT NULL,
    user_id         uuid NOT NULL,
    expires_at      timestamptz NOT NULL,
    used_at         timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organisation_id, token_sha256),
    CONSTRAINT login_links_user_fkey FOREIGN KEY (organisation_id, user_id)
        REFERENCES users (organisation_id, id) ON DELETE CASCADE
);
-- A link is spent by its token alone, before its organisation is known: the
-- hash stays unique across organisations (docs/scaling.md, Citus).
CREATE UNIQUE INDEX login_links_token_sha256_key ON login_links (token_sha256);
-- the cascade when a user is removed
CREATE INDEX login_links_organisation_id_user_id_idx ON login_links (organisation_id, user_id);

ALTER TABLE login_links ENABLE ROW LEVEL SECURITY;
ALTER TABLE login_links FORCE ROW LEVEL SECURITY;
CREATE POLICY operator_access ON login_links TO CURRENT_USER USING (true) WITH CHECK (true);
REVOKE ALL ON login_links FROM PUBLIC;

-- Spends the link whose token hashes to p_sha256. status: 'ok' with the
-- user, organisation and current role; 'used' or 'expired' (nothing
-- changes); 'unknown'. Links that ended more than a day ago are deleted.
CREATE FUNCTION nx_login_link_consume(p_sha256 text)
    RETURNS TABLE (status text, user_id uuid, organisation_id uuid, role text)
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path = pg_catalog, public
    AS $$
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
$$;
REVOKE ALL ON FUNCTION nx_login_link_consume(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION nx_login_link_consume(text) TO nexus_app;
