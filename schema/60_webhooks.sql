-- Webhooks: endpoints, the transactional outbox of events, deliveries.
--
-- SECURITY: All queries MUST include organisation_id filter. Failure to do so
-- will result in data leakage between tenants.
--
-- An event row is written by the same statement that moves a job to its
-- final state (src/jobs/queue.c) or debits credits below the threshold, so
-- an event exists if and only if that change committed; its body is
-- rendered once, then and there, and stored: the bytes signed and sent are
-- these. Each event fans out to one delivery per subscribed, enabled
-- endpoint of its organisation. Workers (src/webhooks/) claim deliveries
-- with SKIP LOCKED and a lease, at most one endpoint's deliveries in flight
-- at a time (the endpoint row carries that lease), and write each attempt
-- back into the delivery's log.

CREATE TABLE webhook_endpoints (
    id                         uuid NOT NULL DEFAULT gen_random_uuid(),
    organisation_id            uuid NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    url                        text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    description                text CHECK (length(description) <= 500),
    events                     text[] NOT NULL
                               CHECK (cardinality(events) BETWEEN 1 AND 3 AND
                                      events <@ ARRAY['job.completed', 'job.failed',
                                                      'credits.low']::text[]),
    enabled                    boolean NOT NULL DEFAULT true,
    disabled_reason            text,
    -- HMAC keys: the current one, and the one it replaced while it still signs
    secret                     bytea NOT NULL CHECK (length(secret) = 32),
    previous_secret            bytea CHECK (length(previous_secret) = 32),
    previous_secret_expires_at timestamptz,
    -- the first failed attempt since the last success (auto-disable)
    failing_since              timestamptz,
    -- the worker delivering to this endpoint now: one at a time
    lease_owner                text,
    lease_expires_at           timestamptz,
    created_at                 timestamptz NOT NULL DEFAULT now(),
    updated_at                 timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organisation_id, id)
) WITH (
    -- the lease columns change at every claim: keep those updates HOT
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 50,
    autovacuum_vacuum_cost_delay = 0,
    fillfactor = 50
);

-- updated_at moves when what the API shows changes, not with the leases.
CREATE TRIGGER webhook_endpoints_touch BEFORE UPDATE ON webhook_endpoints
    FOR EACH ROW WHEN ((OLD.url, OLD.description, OLD.events, OLD.enabled, OLD.disabled_reason,
                        OLD.secret)
                       IS DISTINCT FROM
                       (NEW.url, NEW.description, NEW.events, NEW.enabled, NEW.disabled_reason,
                        NEW.secret))
    EXECUTE FUNCTION nx_touch_updated_at();

CREATE TABLE webhook_events (
    id              uuid NOT NULL DEFAULT gen_random_uuid(),
    organisation_id uuid NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    type            text NOT NULL
                    CHECK (type IN ('job.completed', 'job.failed', 'credits.low', 'webhook.test')),
    body            text NOT NULL, -- exactly the bytes that are signed and sent
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organisation_id, id),
    traceparent     text -- W3C trace context of what caused it; NULL: none known
);
-- the retention prune, oldest first
CREATE INDEX webhook_events_created_at_idx ON webhook_events (created_at);

CREATE TABLE webhook_deliveries (
    id              uuid NOT NULL DEFAULT gen_random_uuid(),
    organisation_id uuid NOT NULL,
    endpoint_id     uuid NOT NULL,
    event_id        uuid NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempt_count   integer NOT NULL DEFAULT 0 CHECK (attempt_count >= 0),
    -- NULL: WEBHOOK_MAX_ATTEMPTS; a manual retry allows one attempt more
    max_attempts    integer CHECK (max_attempts >= 1),
    -- the attempt log: [{"at", "status_code", "duration_ms", "error", "response_excerpt"}]
    attempts        jsonb NOT NULL DEFAULT '[]'::jsonb,
    -- when pending: when it is due (the next attempt)
    run_at          timestamptz NOT NULL DEFAULT now(),
    -- the worker delivering it now (until lease_expires_at)
    lease_owner     text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organisation_id, id),
    CONSTRAINT webhook_deliveries_endpoint_fkey FOREIGN KEY (organisation_id, endpoint_id)
        REFERENCES webhook_endpoints (organisation_id, id) ON DELETE CASCADE,
    CONSTRAINT webhook_deliveries_event_fkey FOREIGN KEY (organisation_id, event_id)
        REFERENCES webhook_events (organisation_id, id) ON DELETE CASCADE,
    CONSTRAINT webhook_deliveries_lease_check CHECK (lease_owner IS NULL OR status = 'pending'),
    -- not in any index, so that a claim's update stays HOT (migration 0023)
    lease_expires_at timestamptz
) WITH (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 200,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0,
    fillfactor = 80
);
-- an endpoint's due deliveries, oldest first: the claim (partial, so
-- finished rows never slow it)
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (organisation_id, endpoint_id, run_at)
    WHERE status = 'pending';
-- an endpoint's deliveries, newest first: the API's list
CREATE INDEX webhook_deliveries_endpoint_created_at_idx
    ON webhook_deliveries (organisation_id, endpoint_id, created_at DESC, id DESC);
-- an event's deliveries: the prune and the cascade from events
CREATE INDEX webhook_deliveries_event_idx ON webhook_deliveries (organisation_id, event_id);

CREATE TRIGGER webhook_deliveries_touch BEFORE UPDATE ON webhook_deliveries
    FOR EACH ROW EXECUTE FUNCTION nx_touch_updated_at();

ALTER TABLE webhook_endpoints ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_endpoints FORCE ROW LEVEL SECURITY;
ALTER TABLE webhook_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_events FORCE ROW LEVEL SECURITY;
ALTER TABLE webhook_deliveries ENABLE ROW LEVEL SECURITY;
ALTER TABLE webhook_deliveries FORCE ROW LEVEL SECURITY;

-- nexus_app: its organisation's rows only (the admin routes; credits.low and
-- test events in a request's transaction).
CREATE POLICY tenant_isolation ON webhook_endpoints TO nexus_app
    USING (organisation_id = NULLIF(current_setting('nexus.org_id', true), '')::uuid)
    WITH CHECK (organisation_id = NULLIF(current_setting('nexus.org_id', true), '')::uuid);
CREATE POLICY tenant_isolation ON webhook_events TO nexus_app
    USING (organisation_id = NULLIF(current_setting('nexus.org_id', true), '')::uuid)
    WITH CHECK (organisation_id = NULLIF(current_setting('nexus.org_id', true), '')::uuid);
CREATE POLICY tenant_isolation ON webhook_deliveries TO nexus_app
    USING (organisation_id = NULLIF(current_setting('nexus.org_id', true), '')::uuid)
    WITH CHECK (organisation_id = NULLIF(current_setting('nexus.org_id', true), '')::uuid);
-- The workers' door across tenants, per command: job events are written by
-- the statement that completes a batch of jobs of any organisation; claims
-- read endpoints, deliveries and events of any organisation and update
-- endpoints (their lease and failure state) and deliveries; the retention
-- prune deletes old events (their deliveries go with them). nexus_worker
-- inherits nexus_app's column grants on endpoints, so its door checks that
-- what an endpoint's owner set - URL, events, description, secrets - is
-- what it was.
CREATE POLICY worker_read ON webhook_endpoints FOR SELECT TO nexus_worker USING (true);
CREATE POLICY worker_update ON webhook_endpoints FOR UPDATE TO nexus_worker
    USING (true)
    WITH CHECK (EXISTS (SELECT 1 FROM webhook_endpoints o
                        WHERE o.organisation_id = webhook_endpoints.organisation_id
                        AND o.id = webhook_endpoints.id
                        AND (o.url, o.description, o.events, o.secret, o.previous_secret,
                             o.previous_secret_expires_at)
                            IS NOT DISTINCT FROM
                            (webhook_endpoints.url, webhook_endpoints.description,
                             webhook_endpoints.events, webhook_endpoints.secret,
                             webhook_endpoints.previous_secret,
                             webhook_endpoints.previous_secret_expires_at)));
CREATE POLICY worker_read ON webhook_events FOR SELECT TO nexus_worker USING (true);
CREATE POLICY worker_outbox ON webhook_events FOR INSERT TO nexus_worker WITH CHECK (true);
CREATE POLICY worker_prune ON webhook_events FOR DELETE TO nexus_worker USING (true);
CREATE POLICY worker_read ON webhook_deliveries FOR SELECT TO nexus_worker USING (true);
CREATE POLICY worker_outbox ON webhook_deliveries FOR INSERT TO nexus_worker WITH CHECK (true);
CREATE POLICY worker_update ON webhook_deliveries FOR UPDATE TO nexus_worker
    USING (status NOT IN ('succeeded', 'failed')) WITH CHECK (true); -- pending: see jobs
CREATE POLICY operator_access ON webhook_endpoints TO CURRENT_USER USING (true) WITH CHECK (true);
CREATE POLICY operator_access ON webhook_events TO CURRENT_USER USING (true) WITH CHECK (true);
CREATE POLICY operator_access ON webhook_deliveries TO CURRENT_USER USING (true) WITH CHECK (true);

-- An event's public id: "evt_" and the row's uuid in hex.
CREATE FUNCTION nx_webhook_event_id(id uuid) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT 'evt_' || replace(id::text, '-', '') $$;

-- An event's body, rendered once when the event is written.
CREATE FUNCTION nx_webhook_body(id uuid, type text, at timestamptz, org uuid, data json)
    RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT json_build_object('id', nx_webhook_event_id(id), 'type', type,
                                   'created_at', nx_ts(at), 'organisation_id', org,
                                   'data', data)::text $$;

-- api.md's Webhook shape (never the secrets).
CREATE FUNCTION nx_webhook_json(w webhook_endpoints) RETURNS json
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT json_build_object('id', w.id, 'url', w.url, 'events', to_json(w.events),
                                   'description', w.description, 'enabled', w.enabled,
                                   'disabled_reason', w.disabled_reason,
                                   'created_at', nx_ts(w.created_at),
                                   'updated_at', nx_ts(w.updated_at)) $$;

-- api.md's Delivery shape; type is its event's.
CREATE FUNCTION nx_webhook_delivery_json(d webhook_deliveries, type text) RETURNS json
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT json_build_object('id', d.id, 'event_id', nx_webhook_event_id(d.event_id),
                                   'event_type', type, 'status', d.status,
                                   'attempts', d.attempts,
                                   'next_attempt_at', CASE WHEN d.status = 'pending'
                                       THEN nx_ts(greatest(d.run_at, d.lease_expires_at)) END,
                                   'created_at', nx_ts(d.created_at)) $$;

-- nexus_app: the admin routes change what an endpoint's owner may change;
-- credits.low and test events are written in a request's transaction; a
-- retry makes a delivery due again.
GRANT SELECT, INSERT, DELETE ON webhook_endpoints TO nexus_app;
GRANT UPDATE (url, description, events, enabled, disabled_reason, secret, previous_secret,
              previous_secret_expires_at, failing_since) ON webhook_endpoints TO nexus_app;
GRANT SELECT, INSERT ON webhook_events TO nexus_app;
GRANT SELECT, INSERT ON webhook_deliveries TO nexus_app;
GRANT UPDATE (status, max_attempts, run_at) ON webhook_deliveries TO nexus_app;
-- nexus_worker (a member of nexus_app): leases, attempts and failure state;
-- the prune.
GRANT UPDATE (enabled, disabled_reason, failing_since, lease_owner, lease_expires_at)
    ON webhook_endpoints TO nexus_worker;
GRANT UPDATE (status, attempt_count, attempts, run_at, lease_owner, lease_expires_at)
    ON webhook_deliveries TO nexus_worker;
GRANT DELETE ON webhook_events TO nexus_worker;
GRANT EXECUTE ON FUNCTION nx_webhook_event_id(uuid),
                          nx_webhook_body(uuid, text, timestamptz, uuid, json),
                          nx_webhook_json(webhook_endpoints),
                          nx_webhook_delivery_json(webhook_deliveries, text) TO nexus_app;
