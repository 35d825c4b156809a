-- seed.sql - the benchmark's data, run as the database owner after
-- `nexusapi migrate upgrade head` (psql variables: orgs, users, credits).
--
-- Organisation k and its users have ids derived from k (md5 -> uuid), so the
-- harness knows them without a lookup: org k = md5('nexus-bench-org-k'),
-- user u of org k = md5('nexus-bench-user-k-u'). User 1 is the admin, the
-- others members; user 2 of every organisation is the one the harness mints a
-- token for (`nexusapi token u2@orgk.bench.example`). created_at is spread so
-- pages are ordered as in real use. Every organisation gets one GRANT of
-- :credits, its balance, so the credit invariant holds.

BEGIN;

INSERT INTO organisations (id, name, domain, created_at, updated_at)
SELECT md5('nexus-bench-org-' || o)::uuid, 'Bench organisation ' || o,
       'org' || o || '.bench.example', now() - interval '30 days', now() - interval '30 days'
FROM generate_series(1, :orgs) AS o;

INSERT INTO users (id, organisation_id, email, name, role, created_at, updated_at)
SELECT md5('nexus-bench-user-' || o || '-' || u)::uuid, md5('nexus-bench-org-' || o)::uuid,
       'u' || u || '@org' || o || '.bench.example', 'Bench user ' || o || '-' || u,
       CASE WHEN u = 1 THEN 'admin' ELSE 'member' END,
       now() - interval '30 days' + u * interval '1 minute',
       now() - interval '30 days' + u * interval '1 minute'
FROM generate_series(1, :orgs) AS o, generate_series(1, :users) AS u;

INSERT INTO org_credits (organisation_id, balance)
SELECT md5('nexus-bench-org-' || o)::uuid, :credits FROM generate_series(1, :orgs) AS o;

INSERT INTO credit_transactions (organisation_id, amount, type, description)
SELECT md5('nexus-bench-org-' || o)::uuid, :credits, 'GRANT', 'benchmark seed'
FROM generate_series(1, :orgs) AS o;

COMMIT;

ANALYZE organisations;
ANALYZE users;
ANALYZE org_credits;
ANALYZE credit_transactions;
