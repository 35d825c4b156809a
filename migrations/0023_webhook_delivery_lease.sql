-- 0023_webhook_delivery_lease: a delivery's lease in a column of its own.
--
-- SECURITY: All queries MUST include organisation_id filter. Failure to do so
-- will result in data leakage between tenants.
--
-- The claim used to push run_at past the lease. run_at is a key of the
-- partial index of due deliveries, so every claim wrote a second entry there
-- for each delivery, in the very leaf page that the claim's own index scan
-- had just read; a page changed under a scan loses the scan's marks of dead
-- entries, so none were ever marked, and each claim read every delivery
-- finished since the last vacuum again (W1: 11,531 entries for 43 due
-- deliveries, 2 ms a claim, growing until autovacuum came). The lease now
-- lives in lease_expires_at, which no index holds: the claim's update is
-- HOT, each delivery leaves one dead entry, and the next scan marks it.
-- A leased delivery is due again once run_at and the lease have both passed.

-- nexus:up
ALTER TABLE webhook_deliveries ADD COLUMN lease_expires_at timestamptz;
UPDATE webhook_deliveries SET lease_expires_at = run_at WHERE lease_owner IS NOT NULL;
GRANT UPDATE (lease_expires_at) ON webhook_deliveries TO nexus_worker;
CREATE OR REPLACE FUNCTION nx_webhook_delivery_json(d webhook_deliveries, type text) RETURNS json
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT json_build_object('id', d.id, 'event_id', nx_webhook_event_id(d.event_id),
                                   'event_type', type, 'status', d.status,
                                   'attempts', d.attempts,
                                   'next_attempt_at', CASE WHEN d.status = 'pending'
                                       THEN nx_ts(greatest(d.run_at, d.lease_expires_at)) END,
                                   'created_at', nx_ts(d.created_at)) $$;

-- nexus:down
CREATE OR REPLACE FUNCTION nx_webhook_delivery_json(d webhook_deliveries, type text) RETURNS json
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT json_build_object('id', d.id, 'event_id', nx_webhook_event_id(d.event_id),
                                   'event_type', type, 'status', d.status,
                                   'attempts', d.attempts,
                                   'next_attempt_at', CASE WHEN d.status = 'pending'
                                                           THEN nx_ts(d.run_at) END,
                                   'created_at', nx_ts(d.created_at)) $$;
UPDATE webhook_deliveries SET run_at = greatest(run_at, lease_expires_at)
    WHERE lease_owner IS NOT NULL;
ALTER TABLE webhook_deliveries DROP COLUMN lease_expires_at;
