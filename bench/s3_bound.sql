-- s3_bound.sql - the bound of S3 (POST /api/v1/summarise, 1 KB text): the
-- tenant check and the one-statement submission (debit, job, DEDUCTION) as
-- one pipeline, like the server. Also used to queue Q1's jobs.
-- Variables: :org, :user, :need_member = 'member', :cost_summarise (from
-- the job registry, src/jobs/registry.c), :job_summarise = 'summarise',
-- :max_attempts (the JOB_MAX_ATTEMPTS default), :text (the same 1 KB text as
-- the wrk body), :no_metadata = '{}', :api_v1 = 1 (v1's answer shape),
-- :credits_low (the CREDITS_LOW_THRESHOLD default, for the webhook outbox);
-- no Idempotency-Key (the last three).
\startpipeline
-- @stmt nx_tenant_begin :org :user :need_member
-- @stmt jobs_create :org :cost_summarise :job_summarise :max_attempts :text :no_metadata :api_v1 NULL :credits_low NULL NULL NULL
\endpipeline
