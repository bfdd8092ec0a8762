-- taskpack store, PostgreSQL, version 1: run history, jobs, schedule fire claims.
CREATE TABLE taskpack_runs (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    task TEXT NOT NULL,
    trigger TEXT NOT NULL,
    payload_hash TEXT NOT NULL,
    started_at DOUBLE PRECISION NOT NULL,
    finished_at DOUBLE PRECISION NOT NULL,
    duration_ms DOUBLE PRECISION NOT NULL,
    attempts INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    error TEXT,
    host TEXT NOT NULL DEFAULT '',
    payload TEXT,
    result TEXT,
    traceback TEXT,
    job_id TEXT
);
CREATE INDEX taskpack_runs_task_seq ON taskpack_runs (task, seq);
CREATE INDEX taskpack_runs_outcome_seq ON taskpack_runs (outcome, seq);
CREATE INDEX taskpack_runs_trigger_seq ON taskpack_runs (trigger, seq);
CREATE TABLE taskpack_jobs (
    seq BIGSERIAL PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    task TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    run_at DOUBLE PRECISION NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 1,
    queue TEXT,
    key TEXT,
    priority INTEGER NOT NULL DEFAULT 0,
    trigger TEXT NOT NULL DEFAULT 'job',
    locked_by TEXT,
    locked_until DOUBLE PRECISION,
    last_error TEXT,
    traceback TEXT,
    result TEXT
);
CREATE INDEX taskpack_jobs_due ON taskpack_jobs (priority, run_at, seq) WHERE status = 'pending';
CREATE INDEX taskpack_jobs_running ON taskpack_jobs (locked_until) WHERE status = 'running';
CREATE UNIQUE INDEX taskpack_jobs_pending_key ON taskpack_jobs (key)
    WHERE status = 'pending' AND key IS NOT NULL;
CREATE INDEX taskpack_jobs_queue_running ON taskpack_jobs (queue)
    WHERE queue IS NOT NULL AND status = 'running';
CREATE INDEX taskpack_jobs_status_seq ON taskpack_jobs (status, seq);
CREATE INDEX taskpack_jobs_task_seq ON taskpack_jobs (task, seq);
CREATE TABLE taskpack_fire_claims (
    schedule TEXT NOT NULL,
    fire_ms BIGINT NOT NULL,
    host TEXT NOT NULL,
    claimed_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (schedule, fire_ms)
);
