-- One row per try of a task instance: what that try did, kept after the
-- next try starts (the task_instances row holds only the latest try).
-- Written by the executor when a try starts and when it ends; a try that
-- shutdown interrupted ends as 'interrupted' and is not counted.
CREATE TABLE task_tries (
    ti_id        BIGINT NOT NULL REFERENCES task_instances (id) ON DELETE CASCADE,
    try_number   BIGINT NOT NULL,
    state        TEXT NOT NULL,
    start_date   BIGINT NOT NULL,
    end_date     BIGINT,
    duration_ms  BIGINT,
    hostname     TEXT,
    pid          BIGINT,
    error        TEXT,
    PRIMARY KEY (ti_id, try_number)
);
