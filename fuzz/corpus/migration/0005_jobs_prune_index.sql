-- 0005_jobs_prune_index: finished jobs by age, for the retention prune.
--
-- The prune (src/jobs/queue.c) deletes completed and failed jobs whose
-- updated_at is past JOB_RETENTION_DAYS, a batch at a time. Without this
-- index each batch scans the whole table; with it a batch reads only the
-- oldest finished rows. Built concurrently so that adding it to a large,
-- busy jobs table does not block submissions or workers.

-- nexus:no-transaction
-- nexus:up

CREATE INDEX CONCURRENTLY IF NOT EXISTS jobs_finished_updated_at_idx
    ON jobs (updated_at) WHERE status IN ('completed', 'failed');

-- nexus:down

DROP INDEX CONCURRENTLY IF EXISTS jobs_finished_updated_at_idx;
