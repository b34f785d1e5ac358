-- The claim takes scheduled task instances by priority, then oldest run,
-- then id. The run's logical date is copied onto its task instances (it
-- never changes) so one partial index holds that order: a claim reads the
-- first rows of the index instead of sorting every scheduled task instance
-- joined to its run (33 ms with 10,000 scheduled, and growing with them).
ALTER TABLE task_instances ADD COLUMN run_logical_date BIGINT NOT NULL DEFAULT 0;
UPDATE task_instances SET run_logical_date =
    (SELECT r.logical_date FROM dag_runs r WHERE r.id = task_instances.dag_run_id);
CREATE INDEX task_instances_claim_order
    ON task_instances (priority DESC, run_logical_date, id) WHERE state = 'scheduled';
