-- Credits: each organisation's balance and its ledger.
--
-- SECURITY: All queries MUST include organisation_id filter. Failure to do so
-- will result in data leakage between tenants.
--
-- For every organisation, balance = grants - deductions + refunds. A job has
-- at most one DEDUCTION and at most one REFUND: a unique index says so, not
-- just the code. A transaction keeps its row when its job is pruned (job_id
-- becomes NULL).
--
-- Every key leads with organisation_id (Citus: distributed by organisation).

CREATE TABLE org_credits (
    organisation_id uuid PRIMARY KEY REFERENCES organisations (id) ON DELETE CASCADE,
    balance         integer NOT NULL DEFAULT 0 CHECK (balance >= 0),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TRIGGER org_credits_touch BEFORE UPDATE ON org_credits
    FOR EACH ROW EXECUTE FUNCTION nx_touch_updated_at();

CREATE TABLE credit_transactions (
    id              uuid NOT NULL DEFAULT gen_random_uuid(),
    organisation_id uuid NOT NULL REFERENCES organisations (id) ON DELETE CASCADE,
    amount          integer NOT NULL CHECK (amount > 0),
    type            varchar(16) NOT NULL CHECK (type IN ('GRANT', 'DEDUCTION', 'REFUND')),
    description     text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    job_id          uuid,
    PRIMARY KEY (organisation_id, id),
    CONSTRAINT credit_transactions_job_fkey
        FOREIGN KEY (organisation_id, job_id) REFERENCES jobs (organisation_id, id)
        ON DELETE SET NULL (job_id)
);
CREATE INDEX credit_transactions_organisation_id_created_at_idx
    ON credit_transactions (organisation_id, created_at DESC, id DESC);
CREATE UNIQUE INDEX credit_transactions_job_id_type_key
    ON credit_transactions (organisation_id, job_id, type) WHERE job_id IS NOT NULL;

ALTER TABLE org_credits ENABLE ROW LEVEL SECURITY;
ALTER TABLE org_credits FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON org_credits TO nexus_app
    USING (organisation_id = NULLIF(current_setting('nexus.org_id', true), '')::uuid)
    WITH CHECK (organisation_id = NULLIF(current_setting('nexus.org_id', true), '')::uuid);
CREATE POLICY operator_access ON org_credits TO CURRENT_USER USING (true) WITH CHECK (true);

ALTER TABLE credit_transactions ENABLE ROW LEVEL SECURITY;
ALTER TABLE credit_transactions FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON credit_transactions TO nexus_app
    USING (organisation_id = NULLIF(current_setting('nexus.org_id', true), '')::uuid)
    WITH CHECK (organisation_id = NULLIF(current_setting('nexus.org_id', true), '')::uuid);
CREATE POLICY operator_access ON credit_transactions TO CURRENT_USER USING (true) WITH CHECK (true);

-- api.md's Transaction shape, built by PostgreSQL.
CREATE FUNCTION nx_credit_tx_json(t credit_transactions) RETURNS json
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT json_build_object('id', t.id, 'amount', t.amount, 'type', t.type,
                                   'job_id', t.job_id, 'description', t.description,
                                   'created_at', nx_ts(t.created_at)) $$;

-- a job's debit changes the balance; credits rows are created by the owner
GRANT SELECT, UPDATE (balance) ON org_credits TO nexus_app;
GRANT SELECT, INSERT ON credit_transactions TO nexus_app;
GRANT EXECUTE ON FUNCTION nx_credit_tx_json(credit_transactions) TO nexus_app;
