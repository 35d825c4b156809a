-- 0016_job_traceparent: the trace a job belongs to.
--
-- The W3C traceparent of the request that submitted the job (its trace id,
-- and the request's span as the parent), so that the job's attempts log
-- under the same trace id and send it on their outbound calls. Written
-- only by the server, from a value it formatted itself, and parsed again
-- by the worker (a malformed one starts a new trace); NULL for jobs from
-- before this migration. A nullable column without a default or a CHECK is
-- added without rewriting or scanning the table.

-- nexus:up

ALTER TABLE jobs ADD COLUMN traceparent text;

-- nexus:down

ALTER TABLE jobs DROP COLUMN IF EXISTS traceparent;
