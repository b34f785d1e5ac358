//! Dependency evaluation: given the states of a run's task instances, which
//! tasks become scheduled, skipped or upstream_failed, and whether the run
//! has ended. Pure; the scheduling loop persists the result.

use crate::dag::{Dag, TriggerRule};
use crate::state::{RunState, TaskState};

/// What a pending task's trigger rule says, given its upstream states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Run it.
    Schedule,
    /// The rule can no longer be met and the reason is a skip.
    Skip,
    /// The rule can no longer be met because upstream tasks failed.
    UpstreamFail,
    /// Not decided yet: wait for more upstream tasks.
    Wait,
}

#[derive(Default)]
struct Counts {
    total: usize,
    success: usize,
    failed: usize,
    upstream_failed: usize,
    skipped: usize,
}

impl Counts {
    fn of(states: &[TaskState]) -> Counts {
        let mut c = Counts {
            total: states.len(),
            ..Counts::default()
        };
        for s in states {
            match s {
                TaskState::Success => c.success += 1,
                TaskState::Failed => c.failed += 1,
                TaskState::UpstreamFailed => c.upstream_failed += 1,
                TaskState::Skipped => c.skipped += 1,
                _ => {}
            }
        }
        c
    }
    fn done(&self) -> usize {
        self.success + self.failed + self.upstream_failed + self.skipped
    }
    fn all_done(&self) -> bool {
        self.done() == self.total
    }
    fn any_failed(&self) -> bool {
        self.failed + self.upstream_failed > 0
    }
}

/// Applies a trigger rule to the states of a task's upstream tasks
/// (Airflow's semantics; a task with no upstream always runs).
pub fn evaluate(rule: TriggerRule, upstream: &[TaskState]) -> Decision {
    use Decision::*;
    if upstream.is_empty() {
        return Schedule;
    }
    let c = Counts::of(upstream);
    match rule {
        TriggerRule::Always => Schedule,
        TriggerRule::AllSuccess => {
            if c.any_failed() {
                UpstreamFail
            } else if c.skipped > 0 {
                Skip
            } else if c.success == c.total {
                Schedule
            } else {
                Wait
            }
        }
        TriggerRule::AllFailed => {
            if c.success + c.skipped > 0 {
                Skip
            } else if c.all_done() {
                Schedule
            } else {
                Wait
            }
        }
        TriggerRule::AllDone => {
            if c.all_done() {
                Schedule
            } else {
                Wait
            }
        }
        TriggerRule::OneSuccess => {
            if c.success > 0 {
                Schedule
            } else if !c.all_done() {
                Wait
            } else if c.any_failed() {
                UpstreamFail
            } else {
                Skip
            }
        }
        TriggerRule::OneFailed => {
            if c.any_failed() {
                Schedule
            } else if c.all_done() {
                Skip
            } else {
                Wait
            }
        }
        TriggerRule::NoneFailed => {
            if c.any_failed() {
                UpstreamFail
            } else if c.all_done() {
                Schedule
            } else {
                Wait
            }
        }
        TriggerRule::NoneFailedMinOneSuccess => {
            if c.any_failed() {
                UpstreamFail
            } else if !c.all_done() {
                Wait
            } else if c.success > 0 {
                Schedule
            } else {
                Skip
            }
        }
    }
}

/// What the scheduler should do with one run now.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunPlan {
    /// Positions of tasks to move pending → scheduled.
    pub schedule: Vec<usize>,
    /// Positions of tasks to move pending → skipped.
    pub skip: Vec<usize>,
    /// Positions of tasks to move pending → upstream_failed.
    pub upstream_failed: Vec<usize>,
    /// The run's end state, once every task has finished.
    pub outcome: Option<RunState>,
}

impl RunPlan {
    /// Whether the plan changes anything.
    pub fn is_empty(&self) -> bool {
        self.schedule.is_empty()
            && self.skip.is_empty()
            && self.upstream_failed.is_empty()
            && self.outcome.is_none()
    }
}

/// Plans one run: `states[i]` is the state of `dag.tasks[i]`. Skips and
/// upstream failures cascade through the whole graph in one pass (tasks are in
/// topological order). The run fails when a leaf failed or was upstream_failed.
pub fn plan_run(dag: &Dag, states: &[TaskState]) -> RunPlan {
    let mut st = states.to_vec();
    let mut plan = RunPlan::default();
    for i in 0..dag.tasks.len() {
        if st[i] != TaskState::Pending {
            continue;
        }
        let ups: Vec<TaskState> = dag.upstream_of(i).iter().map(|&u| st[u]).collect();
        match evaluate(dag.tasks[i].trigger_rule, &ups) {
            Decision::Schedule => {
                plan.schedule.push(i);
                st[i] = TaskState::Scheduled;
            }
            Decision::Skip => {
                plan.skip.push(i);
                st[i] = TaskState::Skipped;
            }
            Decision::UpstreamFail => {
                plan.upstream_failed.push(i);
                st[i] = TaskState::UpstreamFailed;
            }
            Decision::Wait => {}
        }
    }
    if st.iter().all(|s| s.is_finished()) {
        let leaf_failed = (0..st.len()).any(|i| {
            dag.is_leaf(i) && matches!(st[i], TaskState::Failed | TaskState::UpstreamFailed)
        });
        plan.outcome = Some(if leaf_failed {
            RunState::Failed
        } else {
            RunState::Success
        });
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use Decision::*;
    use TaskState::*;

    #[test]
    fn all_success() {
        let r = TriggerRule::AllSuccess;
        assert_eq!(evaluate(r, &[Success, Success]), Schedule);
        assert_eq!(evaluate(r, &[Success, Running]), Wait);
        assert_eq!(evaluate(r, &[Failed, Running]), UpstreamFail, "fails fast");
        assert_eq!(evaluate(r, &[UpstreamFailed, Success]), UpstreamFail);
        assert_eq!(evaluate(r, &[Skipped, Success]), Skip);
        assert_eq!(
            evaluate(r, &[UpForRetry, Success]),
            Wait,
            "a retry may still succeed"
        );
        assert_eq!(evaluate(r, &[]), Schedule);
    }

    #[test]
    fn all_failed() {
        let r = TriggerRule::AllFailed;
        assert_eq!(evaluate(r, &[Failed, UpstreamFailed]), Schedule);
        assert_eq!(evaluate(r, &[Failed, Running]), Wait);
        assert_eq!(evaluate(r, &[Failed, Success]), Skip);
        assert_eq!(evaluate(r, &[Skipped]), Skip);
    }

    #[test]
    fn all_done() {
        let r = TriggerRule::AllDone;
        assert_eq!(
            evaluate(r, &[Failed, Success, Skipped, UpstreamFailed]),
            Schedule
        );
        assert_eq!(evaluate(r, &[Failed, UpForRetry]), Wait);
    }

    #[test]
    fn one_success() {
        let r = TriggerRule::OneSuccess;
        assert_eq!(
            evaluate(r, &[Success, Running]),
            Schedule,
            "does not wait for the others"
        );
        assert_eq!(evaluate(r, &[Failed, Running]), Wait);
        assert_eq!(evaluate(r, &[Failed, Skipped]), UpstreamFail);
        assert_eq!(evaluate(r, &[Skipped, Skipped]), Skip);
    }

    #[test]
    fn one_failed() {
        let r = TriggerRule::OneFailed;
        assert_eq!(evaluate(r, &[Failed, Running]), Schedule);
        assert_eq!(evaluate(r, &[UpstreamFailed]), Schedule);
        assert_eq!(evaluate(r, &[Success, Running]), Wait);
        assert_eq!(evaluate(r, &[Success, Skipped]), Skip);
    }

    #[test]
    fn none_failed() {
        let r = TriggerRule::NoneFailed;
        assert_eq!(evaluate(r, &[Success, Skipped]), Schedule);
        assert_eq!(evaluate(r, &[Skipped, Skipped]), Schedule);
        assert_eq!(evaluate(r, &[Success, Running]), Wait);
        assert_eq!(evaluate(r, &[Failed, Running]), UpstreamFail);
    }

    #[test]
    fn none_failed_min_one_success() {
        let r = TriggerRule::NoneFailedMinOneSuccess;
        assert_eq!(evaluate(r, &[Success, Skipped]), Schedule);
        assert_eq!(evaluate(r, &[Skipped, Skipped]), Skip);
        assert_eq!(evaluate(r, &[Success, Queued]), Wait);
        assert_eq!(evaluate(r, &[UpstreamFailed, Success]), UpstreamFail);
    }

    #[test]
    fn always() {
        assert_eq!(evaluate(TriggerRule::Always, &[Running, Pending]), Schedule);
    }

    /// Every rule answers for every combination of two upstream states, and
    /// never schedules a task while it would wait on an unfinished upstream
    /// unless the rule is decided early by design.
    #[test]
    fn exhaustive_pairs_are_consistent() {
        let rules = [
            TriggerRule::AllSuccess,
            TriggerRule::AllFailed,
            TriggerRule::AllDone,
            TriggerRule::OneSuccess,
            TriggerRule::OneFailed,
            TriggerRule::NoneFailed,
            TriggerRule::NoneFailedMinOneSuccess,
            TriggerRule::Always,
        ];
        let early = [
            TriggerRule::OneSuccess,
            TriggerRule::OneFailed,
            TriggerRule::Always,
        ];
        for rule in rules {
            for &a in TaskState::ALL {
                for &b in TaskState::ALL {
                    let d = evaluate(rule, &[a, b]);
                    let both_done = a.is_finished() && b.is_finished();
                    if both_done {
                        assert_ne!(d, Wait, "{rule:?} waits on finished upstreams {a} {b}");
                    } else if d == Schedule {
                        assert!(
                            early.contains(&rule),
                            "{rule:?} scheduled with {a} {b} unfinished"
                        );
                    }
                }
            }
        }
    }
}
