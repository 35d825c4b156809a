-- 0008_job_metadata_v2: API v2's job metadata and its Job shape.
--
-- POST /api/v2/jobs stores the client's metadata (a JSON object of at most
-- 20 string members, checked by the API) with the job; jobs submitted
-- through v1 have none ({}). json, not jsonb: it is returned as given, its
-- members in the client's order. Adding a column with a constant default
-- does not rewrite the table. nx_job_v2_json renders api.md's v2 Job, as
-- nx_job_json renders v1's; both read the same rows, so a job submitted
-- through either version is readable through both.

-- nexus:up

ALTER TABLE jobs ADD COLUMN metadata json NOT NULL DEFAULT '{}'::json
    CONSTRAINT jobs_metadata_check CHECK (json_typeof(metadata) = 'object');

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

GRANT EXECUTE ON FUNCTION nx_job_v2_json(jobs) TO nexus_app;

-- nexus:down

DROP FUNCTION IF EXISTS nx_job_v2_json(jobs);
ALTER TABLE jobs DROP COLUMN IF EXISTS metadata;
