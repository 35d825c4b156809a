-- 0017_webhook_traceparent: the trace a webhook event belongs to.
--
-- The W3C traceparent of the request or job attempt that caused the event
-- (the job's for job.completed and job.failed, the request's for
-- credits.low and webhook.test), so that its deliveries log under the same
-- trace id and send it on. NULL when none was known. A nullable column
-- without a default is added without rewriting the table.

-- nexus:up
ALTER TABLE webhook_events ADD COLUMN traceparent text;

-- nexus:down
ALTER TABLE webhook_events DROP COLUMN traceparent;
