-- taskpack store, SQLite, version 1: run history, jobs, schedule fire claims.
CREATE TABLE runs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    task TEXT NOT NULL,
    trigger TEXT NOT NULL,
    payload_hash TEXT NOT NULL,
    started_at REAL NOT NULL,
    finished_at REAL NOT NULL,
    duration_ms REAL NOT NULL,
    attempts INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    error TEXT,
    host TEXT NOT NULL DEFAULT '',
    payload TEXT,
    result TEXT,
    traceback TEXT,
    job_id TEXT
);
CREATE INDEX runs_task_seq ON runs (task, seq);
CREATE INDEX runs_outcome_seq ON runs (outcome, seq);
CREATE INDEX runs_trigger_seq ON runs (trigger, seq);
CREATE TABLE jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    task TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL,
    run_at REAL NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 1,
    queue TEXT,
    key TEXT,
    priority INTEGER NOT NULL DEFAULT 0,
    trigger TEXT NOT NULL DEFAULT 'job',
    locked_by TEXT,
    locked_until REAL,
    last_error TEXT,
    traceback TEXT,
    result TEXT
);
CREATE INDEX jobs_due ON jobs (status, priority, run_at, seq);
CREATE UNIQUE INDEX jobs_pending_key ON jobs (key) WHERE status = 'pending' AND key IS NOT NULL;
CREATE INDEX jobs_queue_running ON jobs (queue, status) WHERE queue IS NOT NULL;
CREATE INDEX jobs_task_seq ON jobs (task, seq);
CREATE TABLE fire_claims (
    schedule TEXT NOT NULL,
    fire_ms INTEGER NOT NULL,
    host TEXT NOT NULL,
    claimed_at REAL NOT NULL,
    PRIMARY KEY (schedule, fire_ms)
);
