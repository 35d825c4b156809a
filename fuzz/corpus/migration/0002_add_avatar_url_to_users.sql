-- 0002_add_avatar_url_to_users: the seed's Task 2 column (a Google profile
-- picture URL), and the User JSON shape that shows it.

-- nexus:up

ALTER TABLE users ADD COLUMN avatar_url varchar(500);

CREATE OR REPLACE FUNCTION nx_user_json(u users) RETURNS json
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT json_build_object('id', u.id, 'organisation_id', u.organisation_id,
                                   'email', u.email, 'name', u.name, 'role', u.role,
                                   'avatar_url', u.avatar_url, 'created_at', nx_ts(u.created_at),
                                   'updated_at', nx_ts(u.updated_at)) $$;

-- nexus:down

-- The 0001 shape first: the function body must not name a dropped column.
CREATE OR REPLACE FUNCTION nx_user_json(u users) RETURNS json
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT json_build_object('id', u.id, 'organisation_id', u.organisation_id,
                                   'email', u.email, 'name', u.name, 'role', u.role,
                                   'avatar_url', NULL, 'created_at', nx_ts(u.created_at),
                                   'updated_at', nx_ts(u.updated_at)) $$;

ALTER TABLE users DROP COLUMN avatar_url;
