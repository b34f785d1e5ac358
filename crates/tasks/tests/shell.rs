//! The `shell` operator against real bash processes.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use scheduler::operator::{Operator, TaskContext, TaskError, TaskLog, TaskOutcome};
use scheduler::timetable::DataInterval;
use serde_json::json;
use tasks::shell::{Shell, ShellSettings};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio_util::sync::CancellationToken;

fn shell(command: &str, env: &[(&str, &str)]) -> Shell {
    Shell(ShellSettings {
        command: command.into(),
        env: env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
        cwd: None,
        skip_exit_code: Some(99),
    })
}

fn ctx() -> (TaskContext, UnboundedReceiver<String>) {
    let (log, rx) = TaskLog::channel();
    let start = Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap();
    let params = json!({"name": "Zoë", "rows": 5})
        .as_object()
        .unwrap()
        .clone();
    let ctx = TaskContext {
        dag_id: "d".into(),
        run_id: "manual__x".into(),
        task_id: "t".into(),
        try_number: 2,
        logical_date: start,
        data_interval: DataInterval {
            start,
            end: start + chrono::Duration::days(1),
        },
        conf: json!({"name": "Zoë"}),
        params,
        log,
        cancel: CancellationToken::new(),
    };
    (ctx, rx)
}

fn lines(rx: &mut UnboundedReceiver<String>) -> Vec<String> {
    let mut v = Vec::new();
    while let Ok(l) = rx.try_recv() {
        v.push(l);
    }
    v
}

#[tokio::test]
async fn passes_run_coordinates_and_params() {
    let (c, mut rx) = ctx();
    let cmd = "echo \"$TRIBUTARY_DAG_ID|$TRIBUTARY_RUN_ID|$TRIBUTARY_TASK_ID|$TRIBUTARY_TRY_NUMBER\"; \
               echo \"$TRIBUTARY_DATA_INTERVAL_START|$TRIBUTARY_DATA_INTERVAL_END\"; \
               echo \"$TRIBUTARY_PARAM_NAME|$TRIBUTARY_PARAM_ROWS|$TRIBUTARY_CONF\"; echo oops >&2";
    assert_eq!(shell(cmd, &[]).execute(c).await, Ok(TaskOutcome::Success));
    let out = lines(&mut rx);
    assert!(out.contains(&"d|manual__x|t|2".to_string()), "{out:?}");
    assert!(
        out.contains(&"2026-11-20T00:00:00Z|2026-11-21T00:00:00Z".to_string()),
        "{out:?}"
    );
    assert!(
        out.contains(&"Zoë|5|{\"name\":\"Zoë\"}".to_string()),
        "{out:?}"
    );
    assert!(
        out.contains(&"oops".to_string()),
        "stderr is logged too: {out:?}"
    );
}

#[tokio::test]
async fn exit_codes_decide_the_outcome() {
    let (c, _rx) = ctx();
    assert_eq!(
        shell("exit 99", &[]).execute(c).await,
        Ok(TaskOutcome::Skipped)
    );
    let (c, _rx) = ctx();
    let e = shell("exit 3", &[]).execute(c).await.unwrap_err();
    assert_eq!(e, TaskError::Retryable("command exited with code 3".into()));
}

#[tokio::test]
async fn secrets_resolve_at_run_time_and_are_masked() {
    // A missing variable is a fatal error naming it.
    let (c, _) = ctx();
    let e = shell("echo x", &[("TOKEN", "${TRIBUTARY_TEST_UNSET_VARIABLE}")])
        .execute(c)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, TaskError::Fatal(m) if m.contains("TRIBUTARY_TEST_UNSET_VARIABLE is not set")),
        "{e:?}"
    );
    // A value from the environment reaches the command and is masked in the log.
    let home = std::env::var("HOME").expect("HOME is set");
    assert!(home.len() >= 3);
    let (c, mut rx) = ctx();
    let op = shell(
        "echo \"token=$TOKEN\"; test \"$TOKEN\" = \"$HOME\"",
        &[("TOKEN", "${HOME}")],
    );
    assert_eq!(
        op.execute(c).await,
        Ok(TaskOutcome::Success),
        "the command saw the real value"
    );
    let out = lines(&mut rx);
    assert!(out.contains(&"token=***".to_string()), "{out:?}");
    assert!(
        !out.iter().any(|l| l.contains(&home)),
        "secret leaked: {out:?}"
    );
    // A fallback is not a secret.
    let (c, mut rx) = ctx();
    let op = shell(
        "echo \"token=$TOKEN\"",
        &[("TOKEN", "${TRIBUTARY_TEST_UNSET_VARIABLE:-fallback}")],
    );
    assert_eq!(op.execute(c).await, Ok(TaskOutcome::Success));
    assert!(lines(&mut rx).contains(&"token=fallback".to_string()));
}

#[tokio::test]
async fn cancellation_kills_the_whole_process_group() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("child.pid");
    let (c, _rx) = ctx();
    let cancel = c.cancel.clone();
    let cmd = format!("sleep 300 & echo $! > {}; wait", pidfile.display());
    let task = tokio::spawn(async move { shell(&cmd, &[]).execute(c).await });
    // Wait until the grandchild exists (an event, polled on the file system).
    let pid: i32 = loop {
        if let Ok(s) = std::fs::read_to_string(&pidfile)
            && let Ok(p) = s.trim().parse()
        {
            break p;
        }
        tokio::task::yield_now().await;
    };
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    cancel.cancel();
    let r = tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(r, Err(TaskError::Retryable(_))), "{r:?}");
    // The background sleep goes with its group. Signals are delivered
    // asynchronously, so wait (bounded) for it to be gone or a zombie.
    let gone = || {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        state.is_empty() || state.contains(") Z")
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !gone() {
        assert!(
            std::time::Instant::now() < deadline,
            "sleep {pid} survived the cancellation"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn leftover_background_processes_do_not_hang_the_task() {
    let (c, _rx) = ctx();
    let r = tokio::time::timeout(
        Duration::from_secs(20),
        shell("sleep 300 & echo started", &[]).execute(c),
    )
    .await;
    assert_eq!(r.expect("returned promptly"), Ok(TaskOutcome::Success));
}
