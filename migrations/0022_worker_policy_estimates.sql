-- 0022_worker_policy_estimates: the workers' update doors say what they
-- refuse (finished rows) instead of what they admit (live rows).
--
-- SECURITY: All queries MUST include organisation_id filter. Failure to do so
-- will result in data leakage between tenants.
--
-- The same rows either way: a job's status is one of pending, running,
-- completed and failed, a delivery's one of pending, succeeded and failed
-- (CHECK constraints), never NULL. But a policy's USING is added to every
-- SELECT ... FOR UPDATE the worker runs, and the planner multiplies it with
-- the statement's own status test as if they were independent: `status =
-- 'pending'` beside `status IN ('pending', 'running')` made the claim's
-- estimate of pending jobs one row whatever the queue held, so its plan
-- read every pending job through a bitmap and sorted them all for each claim
-- of ten (tests/e2e/test_jobs.py::test_claim_walks_a_deep_queue_in_order).
-- A NOT IN leaves the estimate almost whole, and the claim walks the pending
-- index in run order, stopping at its limit.

-- nexus:up
ALTER POLICY worker_update ON jobs USING (status NOT IN ('completed', 'failed'));
ALTER POLICY worker_update ON webhook_deliveries USING (status NOT IN ('succeeded', 'failed'));

-- nexus:down
ALTER POLICY worker_update ON webhook_deliveries USING (status = 'pending');
ALTER POLICY worker_update ON jobs USING (status IN ('pending', 'running'));
