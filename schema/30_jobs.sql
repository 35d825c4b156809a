-- The job queue.
--
-- SECURITY: All queries MUST include organisation_id filter. Failure to do so
-- will result in data leakage between tenants.
--
-- jobs rows change only through src/jobs/queue.c: create (debit + job +
-- DEDUCTION in one statement), claim (SKIP LOCKED, with a lease), complete,
-- fail (retry, or final failure + REFUND in one statement).
--
-- The key is (organisation_id, id), so that the table can be distributed by
-- organisation (Citus) and credit_transactions can reference a job of the
-- same organisation only.
--
-- Every job row is updated 2-4 times and then deleted by age: vacuum early
-- and without throttling, or dead tuples pile up at the head of the claim
-- index (with the defaults, throughput halved within 60 s).
CREATE TABLE jobs (
    id               uuid NOT NULL DEFAULT gen_random_uuid(),
    organisation_id  uuid NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    job_type         varchar(16) NOT NULL CHECK (job_type IN ('summarise', 'analyse')),
    status           varchar(16) NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'running', 'completed', 'failed')),
    attempt_count    integer NOT NULL DEFAULT 0 CHECK (attempt_count >= 0),
    max_attempts     integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    credits_charged  integer NOT NULL CHECK (credits_charged >= 0),
    input_data       jsonb NOT NULL,
    output           jsonb,
    error_message    text,
    run_at           timestamptz NOT NULL DEFAULT now(),
    lease_owner      text,
    lease_expires_at timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    completed_at     timestamptz,
    failed_at        timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    -- API v2's metadata, returned as given (json keeps the client's order)
    metadata         json NOT NULL DEFAULT '{}'::json
                     CONSTRAINT jobs_metadata_check CHECK (json_typeof(metadata) = 'object'),
    -- SHA-256 of the text: the AI-result cache finds identical jobs by it
    input_hash       bytea,
    -- the W3C traceparent of the request that submitted the job: its
    -- attempts log under that trace and send it on their outbound calls
    traceparent      text,
    PRIMARY KEY (organisation_id, id),
    -- a running job always has a lease; no other state has one
    CONSTRAINT jobs_lease_check CHECK ((status = 'running') =
        (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL)),
    CONSTRAINT jobs_completed_check CHECK ((status = 'completed') = (completed_at IS NOT NULL)),
    CONSTRAINT jobs_failed_check CHECK ((status = 'failed') = (failed_at IS NOT NULL))
) WITH (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 200,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0,
    fillfactor = 80
);

-- The API's lists: the organisation's jobs newest first, optionally by status.
CREATE INDEX jobs_organisation_id_created_at_idx ON jobs (organisation_id, created_at DESC, id DESC);
CREATE INDEX jobs_organisation_id_status_created_at_idx
    ON jobs (organisation_id, status, created_at DESC, id DESC);

-- The exceptions to "every index leads with organisation_id": the claim is
-- the one query that must find the oldest due job of ANY organisation. All
-- are partial, so they hold only the rows their query wants: a plain
-- (run_at) index collapsed from 3,600 to 9 claims/s once a million finished
-- rows piled up in it (architecture.md).
CREATE INDEX jobs_claim_idx ON jobs (run_at) WHERE status = 'pending';
-- running jobs whose worker died: claimable again once the lease expires
CREATE INDEX jobs_lease_idx ON jobs (lease_expires_at) WHERE status = 'running';
-- the AI-result cache: an organisation's completed jobs by type and text
CREATE INDEX jobs_result_cache_idx ON jobs (organisation_id, job_type, input_hash, completed_at)
    WHERE status = 'completed';
-- finished jobs by age, for the retention prune
CREATE INDEX jobs_finished_updated_at_idx
    ON jobs (updated_at) WHERE status IN ('completed', 'failed');

CREATE TRIGGER jobs_touch BEFORE UPDATE ON jobs
    FOR EACH ROW EXECUTE FUNCTION nx_touch_updated_at();

ALTER TABLE jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE jobs FORCE ROW LEVEL SECURITY;
-- nexus_app reads its organisation's jobs and submits new ones; it never
-- changes or deletes a job.
CREATE POLICY tenant_isolation_read ON jobs FOR SELECT TO nexus_app
    USING (organisation_id = NULLIF(current_setting('nexus.org_id', true), '')::uuid);
CREATE POLICY tenant_isolation_insert ON jobs FOR INSERT TO nexus_app
    WITH CHECK (organisation_id = NULLIF(current_setting('nexus.org_id', true), '')::uuid);
-- The workers' narrow door across tenants, on jobs only, one policy per
-- command src/jobs/queue.c needs: read every job (claims, the prune), update
-- live jobs (claim, renew, complete, fail, release), delete finished ones
-- (the retention prune), insert none. Refunds touch org_credits and
-- credit_transactions, where only tenant_isolation (through nexus_app)
-- applies.
CREATE POLICY worker_read ON jobs FOR SELECT TO nexus_worker USING (true);
-- (live rows, said as "not finished": with IN, the planner multiplied the
-- door's test with a claim's own status test and estimated one pending job
-- whatever the queue held; migration 0022)
CREATE POLICY worker_update ON jobs FOR UPDATE TO nexus_worker
    USING (status NOT IN ('completed', 'failed')) WITH CHECK (true);
CREATE POLICY worker_prune ON jobs FOR DELETE TO nexus_worker
    USING (status IN ('completed', 'failed'));
CREATE POLICY operator_access ON jobs TO CURRENT_USER USING (true) WITH CHECK (true);

-- api.md's Job shape, built by PostgreSQL.
CREATE FUNCTION nx_job_json(j jobs) RETURNS json
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT json_build_object('id', j.id, 'job_type', j.job_type, 'status', j.status,
                                   'attempt_count', j.attempt_count,
                                   'max_attempts', j.max_attempts,
                                   'credits_charged', j.credits_charged, 'output', j.output,
                                   'error_message', j.error_message,
                                   'created_at', nx_ts(j.created_at),
                                   'started_at', nx_ts(j.started_at),
                                   'completed_at', nx_ts(j.completed_at),
                                   'failed_at', nx_ts(j.failed_at),
                                   'updated_at', nx_ts(j.updated_at)) $$;

-- API v2's Job shape: the same row, readable through both versions.
CREATE FUNCTION nx_job_v2_json(j jobs) RETURNS json
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT json_build_object('id', j.id, 'type', j.job_type, 'status', j.status,
                                   'attempts', json_build_object('count', j.attempt_count,
                                                                 'max', j.max_attempts),
                                   'credits_charged', j.credits_charged, 'result', j.output,
                                   'error', CASE WHEN j.error_message IS NULL THEN NULL
                                                 ELSE json_build_object('message', j.error_message)
                                            END,
                                   'metadata', j.metadata,
                                   'created_at', nx_ts(j.created_at),
                                   'started_at', nx_ts(j.started_at),
                                   'completed_at', nx_ts(j.completed_at),
                                   'failed_at', nx_ts(j.failed_at),
                                   'updated_at', nx_ts(j.updated_at)) $$;

GRANT SELECT, INSERT ON jobs TO nexus_app;
GRANT UPDATE (status, attempt_count, run_at, lease_owner, lease_expires_at, started_at,
              completed_at, failed_at, output, error_message) ON jobs TO nexus_worker;
GRANT DELETE ON jobs TO nexus_worker;
GRANT EXECUTE ON FUNCTION nx_job_json(jobs), nx_job_v2_json(jobs) TO nexus_app;
