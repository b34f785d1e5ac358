//! The scheduler: DAG model and validation, timetables, the metadata store,
//! the run/task state machine, the scheduling loop and the local executor.
//!
//! Pure logic (DAG parsing and validation, timetables, the state machine,
//! trigger-rule evaluation) does no I/O. I/O sits behind the [`store::Store`]
//! trait (metadata) and the [`operator::Operator`] trait (what a task does).

#[macro_use]
mod text_enum;

pub mod actions;
pub mod backfill;
pub mod conf;
pub mod dag;
pub mod dagbag;
pub mod deps;
pub mod duration;
pub mod error;
pub mod executor;
pub mod model;
pub mod operator;
pub mod runs;
pub mod scheduling;
pub mod secrets;
pub mod state;
pub mod store;
pub mod timetable;

pub use error::{Error, Result};
