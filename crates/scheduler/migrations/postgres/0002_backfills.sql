-- Backfills: recorded here and executed by the schedulers, so they survive
-- the CLI exiting and any scheduler restart.
CREATE TABLE backfills (
    id               BIGSERIAL PRIMARY KEY,
    dag_id           TEXT NOT NULL,
    from_date        BIGINT NOT NULL,
    to_date          BIGINT NOT NULL,
    reprocess        TEXT NOT NULL,
    max_active_runs  BIGINT NOT NULL,
    reverse          BIGINT NOT NULL DEFAULT 0,
    conf             TEXT NOT NULL DEFAULT '{}',
    state            TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    completed_at     BIGINT
);
CREATE INDEX backfills_dag ON backfills (dag_id, id DESC);

-- One row per logical date of a backfill: what to do with it and how far it got.
CREATE TABLE backfill_dates (
    backfill_id        BIGINT NOT NULL REFERENCES backfills (id) ON DELETE CASCADE,
    logical_date       BIGINT NOT NULL,
    data_interval_end  BIGINT NOT NULL,
    action             TEXT NOT NULL,
    state              TEXT NOT NULL,
    dag_run_id         BIGINT,
    PRIMARY KEY (backfill_id, logical_date)
);
CREATE INDEX backfill_dates_pending ON backfill_dates (backfill_id, state, logical_date);
