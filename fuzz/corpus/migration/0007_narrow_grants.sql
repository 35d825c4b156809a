-- 0007_narrow_grants: the runtime roles get the rights the code uses, no more.
--
-- SECURITY: All queries MUST include organisation_id filter. Failure to do so
-- will result in data leakage between tenants.
--
-- nexus_app (HTTP requests) reads its organisation's rows and changes only
-- what the API changes: an organisation's name and auto_join (PATCH
-- /api/v1/organisation), a user's role (PATCH /api/v1/users/{id}) and
-- removal, a balance (a job's debit), new jobs and credit transactions.
-- Rows are created by the owner (operator verbs) or by the SECURITY DEFINER
-- sign-in functions, never by nexus_app itself; jobs change only in workers.
--
-- nexus_worker's cross-tenant door on jobs was one FOR ALL policy, which
-- also let it insert jobs into any organisation and rewrite or delete any
-- job. It is now one policy per command, each what src/jobs/queue.c needs:
-- read every job (claims find due and expired ones, the prune finished
-- ones, and an update's new row must stay visible), update live jobs
-- (claim, renew, complete, fail, release: a finished job never changes
-- again), delete finished jobs (the retention prune), insert none. The
-- tenant policy on jobs is split likewise (read and insert: nexus_app
-- neither updates nor deletes jobs), so that a worker acting in a tenant's
-- context - a final failure and its refund - gains nothing more on jobs.

-- nexus:up

REVOKE UPDATE ON organisations FROM nexus_app;
GRANT UPDATE (name, auto_join) ON organisations TO nexus_app;

REVOKE INSERT, UPDATE ON users FROM nexus_app;
GRANT UPDATE (role) ON users TO nexus_app;

REVOKE INSERT, UPDATE ON org_credits FROM nexus_app;
GRANT UPDATE (balance) ON org_credits TO nexus_app;

REVOKE UPDATE ON jobs FROM nexus_app;
GRANT UPDATE (status, attempt_count, run_at, lease_owner, lease_expires_at, started_at,
              completed_at, failed_at, output, error_message) ON jobs TO nexus_worker;

DROP POLICY tenant_isolation ON jobs;
CREATE POLICY tenant_isolation_read ON jobs FOR SELECT TO nexus_app
    USING (organisation_id = NULLIF(current_setting('nexus.org_id', true), '')::uuid);
CREATE POLICY tenant_isolation_insert ON jobs FOR INSERT TO nexus_app
    WITH CHECK (organisation_id = NULLIF(current_setting('nexus.org_id', true), '')::uuid);

DROP POLICY worker_queue ON jobs;
CREATE POLICY worker_read ON jobs FOR SELECT TO nexus_worker USING (true);
CREATE POLICY worker_update ON jobs FOR UPDATE TO nexus_worker
    USING (status IN ('pending', 'running')) WITH CHECK (true);
CREATE POLICY worker_prune ON jobs FOR DELETE TO nexus_worker
    USING (status IN ('completed', 'failed'));

-- nexus:down

DROP POLICY worker_prune ON jobs;
DROP POLICY worker_update ON jobs;
DROP POLICY worker_read ON jobs;
CREATE POLICY worker_queue ON jobs TO nexus_worker USING (true) WITH CHECK (true);

DROP POLICY tenant_isolation_insert ON jobs;
DROP POLICY tenant_isolation_read ON jobs;
CREATE POLICY tenant_isolation ON jobs TO nexus_app
    USING (organisation_id = NULLIF(current_setting('nexus.org_id', true), '')::uuid)
    WITH CHECK (organisation_id = NULLIF(current_setting('nexus.org_id', true), '')::uuid);

REVOKE UPDATE (status, attempt_count, run_at, lease_owner, lease_expires_at, started_at,
               completed_at, failed_at, output, error_message) ON jobs FROM nexus_worker;
GRANT UPDATE ON jobs TO nexus_app;

REVOKE UPDATE (balance) ON org_credits FROM nexus_app;
GRANT INSERT, UPDATE ON org_credits TO nexus_app;

REVOKE UPDATE (role) ON users FROM nexus_app;
GRANT INSERT, UPDATE ON users TO nexus_app;

REVOKE UPDATE (name, auto_join) ON organisations FROM nexus_app;
GRANT UPDATE ON organisations TO nexus_app;
