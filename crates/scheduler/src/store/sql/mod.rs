//! [`SqlStore`]: the [`Store`] on PostgreSQL or SQLite through sqlx's `Any`
//! driver. The SQL is shared; only migrations (identity columns), connection
//! set-up and change notification differ per backend.
//!
//! One file per table group; this one maps each [`Store`] method to the
//! function that implements it, so it reads as the store's table of
//! contents.

mod backfills;
mod changes;
mod claim;
mod codec;
mod connection;
mod dags;
mod logs;
mod migrations;
mod origin;
mod pools;
mod runs;
mod task_instances;
mod tries;
mod try_batch;
mod try_batch_pg;
mod try_queue;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

pub use changes::{Changes, Wake, Woken};
pub use codec::redact_url;
pub use connection::{SqlStore, check_database_url, sqlite_path};

use crate::Result;
use crate::model::{
    BackfillDate, BackfillRecord, BackfillState, Claim, DagRecord, DateAction, DateState,
    ImportError, LogLine, NewBackfill, NewRun, PoolRecord, RunProgress, RunRecord, SlotUsage,
    StateChange, TaskInstance, TaskSeed, TiPatch, TryRecord, TryTransition,
};
use crate::state::{RunState, TaskState};
use crate::store::{Backend, Store};
use crate::timetable::DataInterval;

#[async_trait]
impl Store for SqlStore {
    fn backend(&self) -> Backend {
        self.backend
    }

    async fn migrate(&self) -> Result<()> {
        connection::migrate(self).await
    }

    async fn sync_dags(&self, dags: &[DagRecord], errors: &[ImportError]) -> Result<()> {
        dags::sync_dags(self, dags, errors).await
    }

    async fn list_dags(&self) -> Result<Vec<DagRecord>> {
        dags::list_dags(self).await
    }

    async fn get_dag(&self, dag_id: &str) -> Result<Option<DagRecord>> {
        dags::get_dag(self, dag_id).await
    }

    async fn set_paused(&self, dag_id: &str, paused: bool) -> Result<bool> {
        dags::set_paused(self, dag_id, paused).await
    }

    async fn import_errors(&self) -> Result<Vec<ImportError>> {
        dags::import_errors(self).await
    }

    async fn create_run(&self, run: &NewRun, tasks: &[TaskSeed]) -> Result<RunRecord> {
        runs::create_run(self, run, tasks).await
    }

    async fn add_task_instances(&self, run: &RunRecord, tasks: &[TaskSeed]) -> Result<()> {
        runs::add_task_instances(self, run, tasks).await
    }

    async fn get_run(&self, dag_id: &str, run_id: &str) -> Result<Option<RunRecord>> {
        runs::get_run(self, dag_id, run_id).await
    }

    async fn list_runs(&self, dag_id: &str, limit: i64) -> Result<Vec<RunRecord>> {
        runs::list_runs(self, dag_id, limit).await
    }

    async fn run_counts(&self) -> Result<Vec<(String, RunState, i64)>> {
        runs::run_counts(self).await
    }

    async fn runs_before(
        &self,
        dag_id: &str,
        before: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<RunRecord>> {
        runs::runs_before(self, dag_id, before, limit).await
    }

    async fn active_runs(&self) -> Result<Vec<RunRecord>> {
        runs::active_runs(self).await
    }

    async fn last_scheduled_run(&self, dag_id: &str) -> Result<Option<RunRecord>> {
        runs::last_scheduled_run(self, dag_id).await
    }

    async fn runs_of_every_dag(&self, limit: i64) -> Result<crate::store::RunsByDag> {
        runs::runs_of_every_dag(self, limit).await
    }

    async fn set_run_state(
        &self,
        run_pk: i64,
        from: RunState,
        to: RunState,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        runs::set_run_state(self, run_pk, from, to, at).await
    }

    async fn task_instances(&self, run_pks: &[i64]) -> Result<Vec<TaskInstance>> {
        task_instances::task_instances(self, run_pks).await
    }

    async fn run_progress(
        &self,
        run_pks: &[i64],
    ) -> Result<std::collections::HashMap<i64, RunProgress>> {
        task_instances::run_progress(self, run_pks).await
    }

    async fn get_task_instance(
        &self,
        dag_id: &str,
        run_id: &str,
        task_id: &str,
    ) -> Result<Option<TaskInstance>> {
        task_instances::get_task_instance(self, dag_id, run_id, task_id).await
    }

    async fn update_ti(
        &self,
        ti_id: i64,
        from: TaskState,
        to: TaskState,
        patch: &TiPatch,
    ) -> Result<bool> {
        task_instances::update_ti(&mut *self.pool.acquire().await?, ti_id, from, to, patch).await
    }

    async fn set_states(&self, changes: &[StateChange], at: DateTime<Utc>) -> Result<u64> {
        task_instances::set_states(self, changes, at).await
    }

    async fn transition_try(&self, t: &TryTransition) -> Result<bool> {
        try_batch::transition_try(self, t).await
    }

    async fn scheduled_tis(&self, limit: i64) -> Result<Vec<TaskInstance>> {
        task_instances::scheduled_tis(self, limit).await
    }

    async fn claim(&self, owner: &str, now: DateTime<Utc>, max: usize) -> Result<Claim> {
        claim::claim(self, owner, now, max).await
    }

    async fn due_retries(&self, now: DateTime<Utc>) -> Result<Vec<TaskInstance>> {
        task_instances::due_retries(self, now).await
    }

    async fn next_retry_at(&self) -> Result<Option<DateTime<Utc>>> {
        task_instances::next_retry_at(self).await
    }

    async fn slot_usage(&self) -> Result<SlotUsage> {
        claim::slot_usage(self).await
    }

    async fn expired_leases(&self, cutoff: DateTime<Utc>) -> Result<Vec<TaskInstance>> {
        task_instances::expired_leases(self, cutoff).await
    }

    async fn heartbeat(&self, owner: &str, at: DateTime<Utc>) -> Result<u64> {
        task_instances::heartbeat(self, owner, at).await
    }

    async fn append_logs(
        &self,
        ti_id: i64,
        try_number: u32,
        lines: &[(DateTime<Utc>, String)],
    ) -> Result<()> {
        logs::append_logs(&mut *self.pool.acquire().await?, ti_id, try_number, lines).await
    }

    async fn read_logs(&self, ti_id: i64, try_number: u32, after: i64) -> Result<Vec<LogLine>> {
        logs::read_logs(self, ti_id, try_number, after).await
    }

    async fn record_try(&self, t: &TryRecord) -> Result<()> {
        tries::record_try(&mut *self.pool.acquire().await?, t).await
    }

    async fn tries(&self, ti_ids: &[i64]) -> Result<Vec<TryRecord>> {
        tries::tries(self, ti_ids).await
    }

    async fn list_pools(&self) -> Result<Vec<PoolRecord>> {
        pools::list_pools(self).await
    }

    async fn set_pool(&self, pool: &PoolRecord) -> Result<()> {
        pools::set_pool(self, pool).await
    }

    async fn delete_pool(&self, name: &str) -> Result<bool> {
        pools::delete_pool(self, name).await
    }

    async fn runs_between(
        &self,
        dag_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<RunRecord>> {
        runs::runs_between(self, dag_id, from, to).await
    }

    async fn run_at(&self, dag_id: &str, logical_date: DateTime<Utc>) -> Result<Option<RunRecord>> {
        runs::run_at(self, dag_id, logical_date).await
    }

    async fn run_by_pk(&self, run_pk: i64) -> Result<Option<RunRecord>> {
        runs::run_by_pk(self, run_pk).await
    }

    async fn set_run_backfill(&self, run_pk: i64, backfill_id: i64) -> Result<()> {
        runs::set_run_backfill(self, run_pk, backfill_id).await
    }

    async fn create_backfill(
        &self,
        nb: &NewBackfill,
        dates: &[(DataInterval, DateAction)],
    ) -> Result<BackfillRecord> {
        backfills::create_backfill(self, nb, dates).await
    }

    async fn get_backfill(&self, id: i64) -> Result<Option<BackfillRecord>> {
        backfills::get_backfill(self, id).await
    }

    async fn list_backfills(
        &self,
        dag_id: Option<&str>,
        state: Option<BackfillState>,
        limit: i64,
    ) -> Result<Vec<BackfillRecord>> {
        backfills::list_backfills(self, dag_id, state, limit).await
    }

    async fn set_backfill_state(
        &self,
        id: i64,
        from: BackfillState,
        to: BackfillState,
        at: DateTime<Utc>,
    ) -> Result<bool> {
        backfills::set_backfill_state(self, id, from, to, at).await
    }

    async fn backfill_dates(
        &self,
        id: i64,
        only: Option<DateState>,
        limit: Option<i64>,
        reverse: bool,
    ) -> Result<Vec<BackfillDate>> {
        backfills::backfill_dates(self, id, only, limit, reverse).await
    }

    async fn set_backfill_date(
        &self,
        id: i64,
        logical_date: DateTime<Utc>,
        state: DateState,
        run_pk: Option<i64>,
    ) -> Result<()> {
        backfills::set_backfill_date(self, id, logical_date, state, run_pk).await
    }

    async fn notify(&self) -> Result<()> {
        changes::notify(self).await
    }

    async fn changes(&self, wake: Wake) -> Result<Changes> {
        changes::changes(self, wake).await
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
        // A password with '@' or ':' in it is hidden whole.
        assert_eq!(
            redact_url("postgres://u:p%40ss:w@h:5432/db?sslmode=require"),
            "postgres://u:***@h:5432/db?sslmode=require"
        );
        // Not a URL: still nothing between the scheme and the '@'.
        assert_eq!(
            redact_url("postgres://u:p@ss@[h/db"),
            "postgres://***@[h/db"
        );
    }
}
