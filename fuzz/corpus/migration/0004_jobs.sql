-- 0004_jobs: the job queue, and credit transactions linked to jobs.
--
-- SECURITY: All queries MUST include organisation_id filter. Failure to do so
-- will result in data leakage between tenants.
--
-- jobs rows change only through src/jobs/queue.c: create (debit + job +
-- DEDUCTION in one statement), claim (SKIP LOCKED, with a lease), complete,
-- fail (retry, or final failure + REFUND in one statement). A job has at
-- most one DEDUCTION and at most one REFUND: a unique index says so, not
-- just the code.
--
-- The worker role nexus_worker is a member of nexus_app (so it has the
-- tenant policies everywhere) plus one policy of its own on jobs alone, so
-- it can claim across tenants; its refunds run in the job's tenant context.

-- nexus:up

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'nexus_worker') THEN
        BEGIN
            CREATE ROLE nexus_worker NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL; -- created concurrently by a migrator of another database
        END;
    END IF;
    IF NOT pg_catalog.pg_has_role('nexus_worker', 'nexus_app', 'MEMBER') THEN
        GRANT nexus_app TO nexus_worker;
    END IF;
    IF NOT pg_catalog.pg_has_role(current_user, 'nexus_worker', 'MEMBER') THEN
        EXECUTE format('GRANT nexus_worker TO %I', current_user);
    END IF;
END
$$;

-- The key is (organisation_id, id), so that the table can be distributed by
-- organisation (Citus) and credit_transactions can reference a job of the
-- same organisation only.
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
    PRIMARY KEY (organisation_id, id),
    -- a running job always has a lease; no other state has one
    CONSTRAINT jobs_lease_check CHECK ((status = 'running') =
        (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL)),
    CONSTRAINT jobs_completed_check CHECK ((status = 'completed') = (completed_at IS NOT NULL)),
    CONSTRAINT jobs_failed_check CHECK ((status = 'failed') = (failed_at IS NOT NULL))
);

-- The API's lists: the organisation's jobs newest first, optionally by status.
CREATE INDEX jobs_organisation_id_created_at_idx ON jobs (organisation_id, created_at DESC, id DESC);
CREATE INDEX jobs_organisation_id_status_created_at_idx
    ON jobs (organisation_id, status, created_at DESC, id DESC);

-- The two exceptions to "every index leads with organisation_id": the claim
-- is the one query that must find the oldest due job of ANY organisation
-- (under Citus it runs per shard, where the shard already is the tenant
-- slice). Both are partial, so they hold only the live head of the queue:
-- a plain (run_at) index collapsed from 3,600 to 9 claims/s once a million
-- finished rows piled up in it (architecture.md).
CREATE INDEX jobs_claim_idx ON jobs (run_at) WHERE status = 'pending';
-- running jobs whose worker died: claimable again once the lease expires
CREATE INDEX jobs_lease_idx ON jobs (lease_expires_at) WHERE status = 'running';

-- Every job row is updated 2-4 times and then deleted by age: vacuum early
-- and without throttling, or dead tuples pile up at the head of the claim
-- index (with the defaults, throughput halved within 60 s).
ALTER TABLE jobs SET (
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 200,
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_analyze_scale_factor = 0.02,
    autovacuum_vacuum_cost_delay = 0,
    fillfactor = 80
);

CREATE TRIGGER jobs_touch BEFORE UPDATE ON jobs
    FOR EACH ROW EXECUTE FUNCTION nx_touch_updated_at();

-- Transactions name their job (kept when the job is pruned: job_id becomes
-- NULL, the ledger row stays). At most one DEDUCTION and one REFUND per job.
ALTER TABLE credit_transactions ADD COLUMN job_id uuid;
ALTER TABLE credit_transactions ADD CONSTRAINT credit_transactions_job_fkey
    FOREIGN KEY (organisation_id, job_id) REFERENCES jobs (organisation_id, id)
    ON DELETE SET NULL (job_id);
CREATE UNIQUE INDEX credit_transactions_job_id_type_key
    ON credit_transactions (organisation_id, job_id, type) WHERE job_id IS NOT NULL;

ALTER TABLE jobs ENABLE ROW LEVEL SECURITY;
ALTER TABLE jobs FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON jobs TO nexus_app
    USING (organisation_id = NULLIF(current_setting('nexus.org_id', true), '')::uuid)
    WITH CHECK (organisation_id = NULLIF(current_setting('nexus.org_id', true), '')::uuid);
-- The workers' narrow door: claim, complete and prune across tenants, on
-- jobs only. Refunds touch org_credits and credit_transactions, where only
-- tenant_isolation (inherited through nexus_app) applies.
CREATE POLICY worker_queue ON jobs TO nexus_worker USING (true) WITH CHECK (true);
DO $$
BEGIN
    EXECUTE format('CREATE POLICY operator_access ON jobs TO %I USING (true) WITH CHECK (true)',
                   current_user);
END
$$;

-- api.md's Job and Transaction shapes, built by PostgreSQL.
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

CREATE FUNCTION nx_credit_tx_json(t credit_transactions) RETURNS json
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT json_build_object('id', t.id, 'amount', t.amount, 'type', t.type,
                                   'job_id', t.job_id, 'description', t.description,
                                   'created_at', nx_ts(t.created_at)) $$;

GRANT SELECT, INSERT, UPDATE ON jobs TO nexus_app;
GRANT DELETE ON jobs TO nexus_worker;
GRANT EXECUTE ON FUNCTION nx_job_json(jobs), nx_credit_tx_json(credit_transactions) TO nexus_app;

-- nexus:down

DROP FUNCTION IF EXISTS nx_credit_tx_json(credit_transactions);
DROP FUNCTION IF EXISTS nx_job_json(jobs);
DROP INDEX IF EXISTS credit_transactions_job_id_type_key;
ALTER TABLE credit_transactions DROP CONSTRAINT IF EXISTS credit_transactions_job_fkey;
ALTER TABLE credit_transactions DROP COLUMN IF EXISTS job_id;
DROP TABLE IF EXISTS jobs;
-- nexus_worker is cluster-wide and may serve other databases: never dropped.
