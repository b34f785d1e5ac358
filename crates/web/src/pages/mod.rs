//! The HTML pages, one file per page group: the DAG list and a DAG's grid
//! and code ([`dags`]), the trigger form ([`trigger`]), backfills
//! ([`backfills`]), a run and its actions ([`runs`]), a task instance with
//! its live log ([`tasks`]), streams ([`streams`]), SQL over the lake ([`query`]), the API reference
//! ([`api_docs`]) and the login page ([`login`]); what they share (chrome, rendering, error pages, links) is in
//! [`layout`]. Templates live in `crates/web/templates/` and escape every
//! value; links are built in Rust, with each path segment percent-encoded.
//! Reads and changes shared with the JSON API go through `crate::service`.

mod api_docs;
mod backfills;
mod dags;
pub(crate) mod layout;
mod login;
mod query;
mod runs;
mod streams;
mod tasks;
mod trigger;

pub(crate) use api_docs::api_reference;
pub(crate) use backfills::{backfill_cancel, backfill_submit, backfills};
pub(crate) use dags::{dag_code, dag_grid, dag_list, pause};
pub(crate) use layout::{css, js, not_found};
pub(crate) use login::{login_form, login_submit, logout};
pub(crate) use query::{query_csv, query_page};
pub(crate) use runs::{run_clear, run_mark, run_page, task_clear, task_mark};
pub(crate) use streams::streams;
pub(crate) use tasks::{log_stream, task_page};
pub(crate) use trigger::{trigger_form, trigger_submit};
