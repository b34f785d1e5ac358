-- Tributary metadata schema (SQLite). Timestamps are microseconds since
-- the Unix epoch (UTC) in BIGINT, identical on both backends; flags are 0/1.
CREATE TABLE dags (
    dag_id            TEXT PRIMARY KEY,
    fileloc           TEXT NOT NULL,
    source_hash       TEXT NOT NULL,
    source            TEXT NOT NULL,
    description       TEXT NOT NULL DEFAULT '',
    schedule          TEXT NOT NULL DEFAULT 'none',
    timezone          TEXT NOT NULL DEFAULT 'UTC',
    tags              TEXT NOT NULL DEFAULT '[]',
    max_active_runs   BIGINT NOT NULL,
    max_active_tasks  BIGINT NOT NULL,
    is_paused         BIGINT NOT NULL DEFAULT 0,
    is_active         BIGINT NOT NULL DEFAULT 1,
    updated_at        BIGINT NOT NULL
);

CREATE TABLE dag_runs (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    dag_id               TEXT NOT NULL,
    run_id               TEXT NOT NULL,
    run_type             TEXT NOT NULL,
    logical_date         BIGINT NOT NULL,
    data_interval_start  BIGINT NOT NULL,
    data_interval_end    BIGINT NOT NULL,
    state                TEXT NOT NULL,
    conf                 TEXT NOT NULL DEFAULT '{}',
    created_at           BIGINT NOT NULL,
    start_date           BIGINT,
    end_date             BIGINT,
    backfill_id          BIGINT,
    UNIQUE (dag_id, run_id),
    UNIQUE (dag_id, logical_date)
);
CREATE INDEX dag_runs_state ON dag_runs (state) WHERE state IN ('queued', 'running');
CREATE INDEX dag_runs_dag_date ON dag_runs (dag_id, logical_date DESC);

CREATE TABLE task_instances (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    dag_run_id     BIGINT NOT NULL REFERENCES dag_runs (id) ON DELETE CASCADE,
    dag_id         TEXT NOT NULL,
    run_id         TEXT NOT NULL,
    task_id        TEXT NOT NULL,
    state          TEXT NOT NULL,
    try_number     BIGINT NOT NULL DEFAULT 0,
    max_tries      BIGINT NOT NULL,
    pool           TEXT NOT NULL,
    priority       BIGINT NOT NULL DEFAULT 1,
    queued_at      BIGINT,
    start_date     BIGINT,
    end_date       BIGINT,
    duration_ms    BIGINT,
    hostname       TEXT,
    pid            BIGINT,
    next_retry_at  BIGINT,
    heartbeat_at   BIGINT,
    lease_owner    TEXT,
    error          TEXT,
    UNIQUE (dag_run_id, task_id)
);
CREATE INDEX task_instances_active ON task_instances (state)
    WHERE state IN ('scheduled', 'queued', 'running', 'up_for_retry');
CREATE INDEX task_instances_dag_run ON task_instances (dag_id, run_id);

CREATE TABLE task_logs (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    ti_id        BIGINT NOT NULL REFERENCES task_instances (id) ON DELETE CASCADE,
    try_number   BIGINT NOT NULL,
    ts           BIGINT NOT NULL,
    line         TEXT NOT NULL
);
CREATE INDEX task_logs_ti_try ON task_logs (ti_id, try_number, id);

CREATE TABLE pools (
    name         TEXT PRIMARY KEY,
    slots        BIGINT NOT NULL,
    description  TEXT NOT NULL DEFAULT ''
);
INSERT INTO pools (name, slots, description) VALUES ('default_pool', 128, 'Used by tasks that name no pool');

CREATE TABLE import_errors (
    fileloc     TEXT PRIMARY KEY,
    message     TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
