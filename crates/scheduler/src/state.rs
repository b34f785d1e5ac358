//! The run and task-instance state machines: pure, table-driven.
//!
//! States are stored in the database as their lowercase text
//! ([`TaskState::as_str`]); the only way to change a state is
//! [`TaskState::apply`] / [`RunState::apply`], which look the move up in the
//! transition tables below. The store persists the result with a conditional
//! update (`WHERE state = <from>`), so two actors can never both win the same
//! transition.

/// A transition the state machine forbids.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("illegal {machine} transition: {event} from state {from}")]
pub struct IllegalTransition {
    /// `"task"` or `"run"`.
    pub machine: &'static str,
    /// The state the entity was in.
    pub from: String,
    /// The event that was applied.
    pub event: String,
}

text_enum!(
    /// State of a DAG run.
    RunState {
        /// Created, waiting for a slot under `max_active_runs`.
        Queued = "queued",
        /// Its tasks are being scheduled and run.
        Running = "running",
        /// Every leaf task ended in success or skipped.
        Success = "success",
        /// A leaf task failed or was upstream_failed (or an operator marked it).
        Failed = "failed",
    }
);

text_enum!(
    /// What happens to a run.
    RunEvent {
        /// A slot under `max_active_runs` is free.
        Start = "start",
        /// All tasks ended and the leaves succeeded.
        Succeed = "succeed",
        /// All tasks ended and a leaf failed.
        Fail = "fail",
        /// An operator cleared tasks: the run goes back to running.
        Clear = "clear",
        /// An operator marked the run success.
        MarkSuccess = "mark_success",
        /// An operator marked the run failed.
        MarkFailed = "mark_failed",
    }
);

text_enum!(
    /// State of a task instance. `pending` is the state of a task whose
    /// upstream tasks have not finished yet (Airflow shows it as "no status").
    TaskState {
        /// Waiting for its upstream tasks.
        Pending = "pending",
        /// Its trigger rule is met; waiting for an executor slot, a pool slot
        /// and `max_active_tasks`.
        Scheduled = "scheduled",
        /// Handed to an executor.
        Queued = "queued",
        /// A try is executing.
        Running = "running",
        /// Finished successfully.
        Success = "success",
        /// Failed with no tries left (or a fatal error).
        Failed = "failed",
        /// A try failed; another one starts after the retry delay.
        UpForRetry = "up_for_retry",
        /// Its trigger rule can no longer be met because upstream tasks failed.
        UpstreamFailed = "upstream_failed",
        /// Skipped by its trigger rule or by the task itself.
        Skipped = "skipped",
    }
);

text_enum!(
    /// What happens to a task instance.
    TaskEvent {
        /// The trigger rule is met.
        Schedule = "schedule",
        /// An executor accepted it.
        Queue = "queue",
        /// A try starts.
        Start = "start",
        /// The try succeeded.
        Succeed = "succeed",
        /// The try failed and tries remain (retryable error).
        Retry = "retry",
        /// The try failed with no tries left or a fatal error.
        Fail = "fail",
        /// The task skipped itself, or its trigger rule says skip.
        Skip = "skip",
        /// Upstream failures make the trigger rule unreachable.
        UpstreamFail = "upstream_fail",
        /// The retry delay elapsed.
        RetryDue = "retry_due",
        /// The executor gave the task back without running it to the end
        /// (shutdown): it is scheduled again.
        Requeue = "requeue",
        /// An operator cleared it: it will run again as a new try.
        Clear = "clear",
        /// An operator marked it success.
        MarkSuccess = "mark_success",
        /// An operator marked it failed.
        MarkFailed = "mark_failed",
    }
);

impl RunState {
    /// Whether the run has ended.
    pub fn is_finished(self) -> bool {
        matches!(self, RunState::Success | RunState::Failed)
    }

    /// Applies `event`, per [`RUN_TRANSITIONS`].
    pub fn apply(self, event: RunEvent) -> Result<RunState, IllegalTransition> {
        lookup(RUN_TRANSITIONS, self, event).ok_or_else(|| IllegalTransition {
            machine: "run",
            from: self.to_string(),
            event: event.to_string(),
        })
    }
}

impl TaskState {
    /// Whether no further try will happen without an operator's action.
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            TaskState::Success | TaskState::Failed | TaskState::UpstreamFailed | TaskState::Skipped
        )
    }

    /// Whether the task holds (or is about to hold) an executor or pool slot.
    pub fn holds_slot(self) -> bool {
        matches!(self, TaskState::Queued | TaskState::Running)
    }

    /// Applies `event`, per [`TASK_TRANSITIONS`].
    pub fn apply(self, event: TaskEvent) -> Result<TaskState, IllegalTransition> {
        lookup(TASK_TRANSITIONS, self, event).ok_or_else(|| IllegalTransition {
            machine: "task",
            from: self.to_string(),
            event: event.to_string(),
        })
    }
}

fn lookup<S: Copy + PartialEq, E: Copy + PartialEq>(
    table: &[(S, E, S)],
    from: S,
    event: E,
) -> Option<S> {
    table
        .iter()
        .find(|(f, e, _)| *f == from && *e == event)
        .map(|(_, _, to)| *to)
}

use RunEvent as RE;
use RunState as R;
use TaskEvent as TE;
use TaskState as T;

/// Every legal run transition: (from, event, to).
pub const RUN_TRANSITIONS: &[(RunState, RunEvent, RunState)] = &[
    (R::Queued, RE::Start, R::Running),
    (R::Running, RE::Succeed, R::Success),
    (R::Running, RE::Fail, R::Failed),
    (R::Success, RE::Clear, R::Running),
    (R::Failed, RE::Clear, R::Running),
    (R::Running, RE::Clear, R::Running),
    (R::Queued, RE::Clear, R::Queued),
    (R::Queued, RE::MarkSuccess, R::Success),
    (R::Running, RE::MarkSuccess, R::Success),
    (R::Failed, RE::MarkSuccess, R::Success),
    (R::Queued, RE::MarkFailed, R::Failed),
    (R::Running, RE::MarkFailed, R::Failed),
    (R::Success, RE::MarkFailed, R::Failed),
];

/// Every legal task transition: (from, event, to).
pub const TASK_TRANSITIONS: &[(TaskState, TaskEvent, TaskState)] = &[
    (T::Pending, TE::Schedule, T::Scheduled),
    (T::Pending, TE::Skip, T::Skipped),
    (T::Pending, TE::UpstreamFail, T::UpstreamFailed),
    (T::Scheduled, TE::Queue, T::Queued),
    // A scheduled task whose pool was deleted fails without running.
    (T::Scheduled, TE::Fail, T::Failed),
    (T::Queued, TE::Start, T::Running),
    (T::Queued, TE::Requeue, T::Scheduled),
    (T::Running, TE::Succeed, T::Success),
    (T::Running, TE::Retry, T::UpForRetry),
    (T::Running, TE::Fail, T::Failed),
    (T::Running, TE::Skip, T::Skipped),
    (T::Running, TE::Requeue, T::Scheduled),
    (T::UpForRetry, TE::RetryDue, T::Scheduled),
    // Clearing makes any task run again (a new try); running ones are left alone.
    (T::Pending, TE::Clear, T::Pending),
    (T::Scheduled, TE::Clear, T::Pending),
    (T::Success, TE::Clear, T::Pending),
    (T::Failed, TE::Clear, T::Pending),
    (T::UpForRetry, TE::Clear, T::Pending),
    (T::UpstreamFailed, TE::Clear, T::Pending),
    (T::Skipped, TE::Clear, T::Pending),
    // Operators may force an outcome on anything that is not executing.
    (T::Pending, TE::MarkSuccess, T::Success),
    (T::Scheduled, TE::MarkSuccess, T::Success),
    (T::Failed, TE::MarkSuccess, T::Success),
    (T::UpForRetry, TE::MarkSuccess, T::Success),
    (T::UpstreamFailed, TE::MarkSuccess, T::Success),
    (T::Skipped, TE::MarkSuccess, T::Success),
    (T::Pending, TE::MarkFailed, T::Failed),
    (T::Scheduled, TE::MarkFailed, T::Failed),
    (T::Success, TE::MarkFailed, T::Failed),
    (T::UpForRetry, TE::MarkFailed, T::Failed),
    (T::UpstreamFailed, TE::MarkFailed, T::Failed),
    (T::Skipped, TE::MarkFailed, T::Failed),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// The table has no duplicate (from, event) pair, so `apply` is a function.
    #[test]
    fn tables_are_functions() {
        let mut seen = HashSet::new();
        for (f, e, _) in TASK_TRANSITIONS {
            assert!(seen.insert((*f, *e)), "duplicate task row {f} {e}");
        }
        let mut seen = HashSet::new();
        for (f, e, _) in RUN_TRANSITIONS {
            assert!(seen.insert((*f, *e)), "duplicate run row {f} {e}");
        }
    }

    /// Every (state, event) pair: exactly the table's answer, or an error.
    #[test]
    fn task_transitions_exhaustive() {
        let expect = |from: TaskState, ev: TaskEvent| -> Option<TaskState> {
            use TaskEvent::*;
            use TaskState::*;
            Some(match (from, ev) {
                (Pending, Schedule) => Scheduled,
                (Pending, Skip) => Skipped,
                (Pending, UpstreamFail) => UpstreamFailed,
                (Scheduled, Queue) => Queued,
                (Scheduled, Fail) => Failed,
                (Queued, Start) => Running,
                (Queued, Requeue) | (Running, Requeue) => Scheduled,
                (Running, Succeed) => Success,
                (Running, Retry) => UpForRetry,
                (Running, Fail) => Failed,
                (Running, Skip) => Skipped,
                (UpForRetry, RetryDue) => Scheduled,
                (Queued | Running, Clear | MarkSuccess | MarkFailed) => return None,
                (_, Clear) => Pending,
                (Success, MarkSuccess) | (Failed, MarkFailed) => return None,
                (_, MarkSuccess) => Success,
                (_, MarkFailed) => Failed,
                _ => return None,
            })
        };
        let mut legal = 0;
        for &s in TaskState::ALL {
            for &e in TaskEvent::ALL {
                match (s.apply(e), expect(s, e)) {
                    (Ok(got), Some(want)) => {
                        assert_eq!(got, want, "{s} + {e}");
                        legal += 1;
                    }
                    (Err(err), None) => {
                        assert_eq!(err.from, s.as_str());
                        assert!(err.to_string().contains(e.as_str()));
                    }
                    (got, want) => panic!("{s} + {e}: got {got:?}, want {want:?}"),
                }
            }
        }
        assert_eq!(legal, TASK_TRANSITIONS.len());
    }

    #[test]
    fn run_transitions_exhaustive() {
        let expect = |from: RunState, ev: RunEvent| -> Option<RunState> {
            use RunEvent::*;
            use RunState::*;
            Some(match (from, ev) {
                (Queued, Start) => Running,
                (Running, Succeed) => Success,
                (Running, Fail) => Failed,
                (Queued, Clear) => Queued,
                (_, Clear) => Running,
                (Success, MarkSuccess) | (Failed, MarkFailed) => return None,
                (_, MarkSuccess) => Success,
                (_, MarkFailed) => Failed,
                _ => return None,
            })
        };
        for &s in RunState::ALL {
            for &e in RunEvent::ALL {
                assert_eq!(s.apply(e).ok(), expect(s, e), "{s} + {e}");
            }
        }
    }

    #[test]
    fn text_round_trips() {
        for &s in TaskState::ALL {
            assert_eq!(s.as_str().parse::<TaskState>().unwrap(), s);
        }
        for &s in RunState::ALL {
            assert_eq!(s.as_str().parse::<RunState>().unwrap(), s);
        }
        assert!(
            "runing"
                .parse::<TaskState>()
                .unwrap_err()
                .contains("expected one of")
        );
    }

    /// Finished states only leave through an operator's action.
    #[test]
    fn finished_states_need_an_operator() {
        for &s in TaskState::ALL.iter().filter(|s| s.is_finished()) {
            for &e in TaskEvent::ALL {
                if s.apply(e).is_ok() {
                    assert!(
                        matches!(
                            e,
                            TaskEvent::Clear | TaskEvent::MarkSuccess | TaskEvent::MarkFailed
                        ),
                        "{s} left by {e}"
                    );
                }
            }
        }
    }
}
